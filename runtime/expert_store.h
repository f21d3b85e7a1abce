/* expert_store.h — where each routed expert's bytes live in the model files and where they go in its slot.
 *
 * An expert (layer, expert) is QN_ES_PARTS = 3 parts (gate, up, down). For each part the store records the
 * file (an index into the store's own file list), the absolute byte offset and length in that file, the slot
 * set that receives it and the byte offset inside that set's slot:
 *   - safetensors (qn_es_from_st): three separate tensors per expert -> one slot of set QN_ES_POOLS at 0,
 *     g and g + u (g, u = the gate and up bytes);
 *   - GGUF (qn_es_from_gguf): expert e is a slice of the stacked ffn_{gate,up,down}_exps tensors (or the fused
 *     ffn_gate_up_exps) at e * bytes-per-expert; block experts go gate -> QN_ES_POOLS at 0, up -> QN_ES_POOLS
 *     at up_off, down -> QN_ES_DPOOLS at 0 (types and lengths may differ per layer, e.g. Q6_K down in some
 *     Q4_K_M layers: a part's length is at most its set's slot size); F32 GGUF experts go to one QN_ES_POOLS
 *     slot like safetensors.
 * The same slot number indexes both sets (model.h: pools / dpools). The store is host only (no Vulkan, no IO):
 * model_stream.c turns (file, offset, length) into qn_io requests and (set, slot_off) into copy destinations.
 *
 * A staging entry that mirrors one expert's slots is laid out [set 0 slot | set 1 slot]: qn_es_entry_bytes()
 * bytes, set s at qn_es_entry_off(s), part p at qn_es_entry_off(set) + slot_off. Every entry offset and slot
 * size is a multiple of 16. */
#ifndef QN_EXPERT_STORE_H
#define QN_EXPERT_STORE_H

#include <stdint.h>

#include "config.h"
#include "gguf_qwen3next.h"
#include "safetensors.h"

#define QN_ES_PARTS 3   /* gate, up, down */
#define QN_ES_SETS 2

enum qn_es_set { QN_ES_POOLS = 0, QN_ES_DPOOLS = 1 };

struct qn_es_part {
    int32_t file;       /* index into the store's files (qn_es_path) */
    uint32_t set;       /* enum qn_es_set */
    uint64_t off;       /* absolute byte offset in the file */
    uint64_t len;       /* bytes */
    uint64_t slot_off;  /* byte offset inside the slot of `set` */
};

typedef struct qn_es qn_es;

/* Safetensors: every expert tensor stored in dtype `dt` with part_bytes[p] bytes (streaming reads experts as
 * stored; a tensor in another dtype or size is refused, naming it, its file and both dtypes). slot_bytes: the
 * QN_ES_POOLS slot size (>= the sum of the parts). */
int qn_es_from_st(qn_es **out, const qn_st_store *st, const qn_config *c, qn_dtype dt, const uint64_t part_bytes[3],
                  uint64_t slot_bytes);
/* GGUF at `path`. Block experts (up_off > 0): gate at 0 and up at up_off of a QN_ES_POOLS slot of slot_bytes,
 * down at 0 of a QN_ES_DPOOLS slot of d_slot_bytes. up_off == 0: F32 experts, gate | up | down contiguous in a
 * QN_ES_POOLS slot of slot_bytes (d_slot_bytes must be 0); other stored types are refused (they would need a
 * conversion while streaming). Each part must fit its slot region (else QN_E_FORMAT naming the tensor). */
int qn_es_from_gguf(qn_es **out, const char *path, const qn_q3n *q, const qn_config *c, uint64_t up_off,
                    uint64_t slot_bytes, uint64_t d_slot_bytes);
void qn_es_free(qn_es **s);   /* safe on NULL; sets *s = NULL */

/* The QN_ES_PARTS parts of (layer, expert), in the order gate, up, down; NULL if out of range. */
const struct qn_es_part *qn_es_parts(const qn_es *s, int layer, int expert);
int qn_es_n_files(const qn_es *s);
const char *qn_es_path(const qn_es *s, int file);
int qn_es_n_layers(const qn_es *s);
int qn_es_n_experts(const qn_es *s);
uint64_t qn_es_slot_bytes(const qn_es *s, int set);   /* 0: the set is not used */
uint64_t qn_es_entry_bytes(const qn_es *s);           /* sum of the sets' slot bytes */
uint64_t qn_es_entry_off(const qn_es *s, int set);    /* 0 for set 0, slot_bytes(0) for set 1 */
uint64_t qn_es_expert_bytes(const qn_es *s, int layer, int expert);   /* sum of its parts' lengths */
uint64_t qn_es_max_expert_bytes(const qn_es *s);      /* the largest of those over every expert */

#endif
