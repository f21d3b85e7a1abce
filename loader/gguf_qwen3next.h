/* gguf_qwen3next.h — a llama.cpp `qwen3next` GGUF seen through Hugging Face names.
 *
 * qn_q3n_open() checks general.architecture, fills a qn_config from the qwen3next.* metadata, and checks
 * that every tensor the HF checkpoint would have (tensors.h) is present with the right shape. Then
 * qn_q3n_find() says, for an HF tensor name, where its bytes are in the GGUF and which transform recovers
 * the HF layout and values. What the llama.cpp converter does to each tensor (and the sources) is written
 * down in docs/gguf-qwen3next.md. */
#ifndef QN_GGUF_QWEN3NEXT_H
#define QN_GGUF_QWEN3NEXT_H

#include <stdint.h>

#include "config.h"
#include "gguf.h"

typedef struct qn_q3n qn_q3n;

enum qn_q3n_xform {
    QN_Q3N_COPY = 0,    /* the bytes are the HF tensor (HF row-major [out, in] == GGUF ne {in, out}) */
    QN_Q3N_NORM_PLUS1,  /* GGUF holds 1 + w (converter folds the zero-centred norm offset): w_hf = v - 1 */
    QN_Q3N_NEG_EXP,     /* GGUF ssm_a = -exp(A_log): A_log = log(-v) */
    QN_Q3N_QKVZ_SPLIT,  /* HF in_proj_qkvz rows gathered from attn_qkv (flat q|k|v) and attn_gate (flat z) */
};

/* Where an HF tensor lives. Rows are ne[0]-long rows of the GGUF tensor with all higher dims flattened
 * (expert e of a stacked [E, ff, H] tensor is rows e*ff .. e*ff+ff-1, one contiguous byte range). */
typedef struct qn_q3n_src {
    const qn_gguf_tensor *t;    /* the GGUF tensor */
    const qn_gguf_tensor *t2;   /* QKVZ_SPLIT: attn_gate (t is attn_qkv); NULL otherwise */
    uint64_t row0, nrows;       /* row range of t (QKVZ_SPLIT: all rows of t and t2) */
    enum qn_q3n_xform xform;
    int ndim;
    int64_t shape[3];           /* HF shape */
} qn_q3n_src;

/* File byte range of one routed expert matrix, plus the O_DIRECT-aligned range covering it. */
typedef struct qn_file_span {
    uint64_t off, nbytes;       /* absolute offset and size of the data */
    uint64_t dio_off, dio_len;  /* align-down(off), align-up(off + nbytes) - dio_off (may pass EOF) */
    uint32_t dio_head;          /* off - dio_off */
} qn_file_span;

enum qn_q3n_proj { QN_Q3N_GATE = 0, QN_Q3N_UP = 1, QN_Q3N_DOWN = 2 };

int qn_q3n_open(qn_q3n **out, const qn_gguf *g);
void qn_q3n_close(qn_q3n **m);
/* Only the config from metadata (no tensor checks): usable for `qnext info` on partial files. */
int qn_q3n_read_config(const qn_gguf *g, qn_config *c, int *n_nextn);

const qn_config *qn_q3n_config(const qn_q3n *m);
int qn_q3n_n_nextn(const qn_q3n *m);     /* MTP (nextn) blocks after the main layers (0 if none) */
int qn_q3n_qkvz_legacy(const qn_q3n *m); /* 1 if the file has fused ssm_in (older converter), 0 if split */

/* Resolve an HF name ("model.layers.3.self_attn.q_proj.weight", "mtp.fc.weight" ...). -ENOENT if the
 * name is not part of the model or the GGUF lacks it. */
int qn_q3n_find(const qn_q3n *m, const char *hf_name, qn_q3n_src *src);
/* Bytes of the stored data behind src (what qn_q3n_read_raw() produces). */
uint64_t qn_q3n_src_bytes(const qn_q3n_src *src);
/* The HF-layout tensor in its GGUF storage type (rows permuted for QKVZ_SPLIT; value transforms NOT
 * applied: norms stay 1+w, A_log stays -exp(A_log)). QKVZ_SPLIT whose two parts differ in type (llama.cpp
 * Q4_K_M makes attn_qkv Q6_K on some layers, attn_gate Q4_K) is QN_E_UNSUPPORTED: use the parts (src.t,
 * src.t2) directly, they are already the flat [q|k|v] and [z] blocks, or qn_q3n_read_f32. */
int qn_q3n_read_raw(const qn_q3n *m, const qn_q3n_src *src, void *dst, size_t cap);
/* The HF tensor as float32 values (dequantized, every transform applied); n = element count. */
int qn_q3n_read_f32(const qn_q3n *m, const qn_q3n_src *src, float *dst, uint64_t n);

/* Row r of HF in_proj_qkvz comes from row *row of attn_qkv (*part 0) or attn_gate (*part 1). */
int qn_q3n_qkvz_row(const qn_config *c, uint64_t hf_row, int *part, uint64_t *row);
/* Byte range of expert `expert`'s gate/up/down matrix in layer `layer`; dio_align is a power of two
 * (e.g. 4096) or 0/1 for none. */
int qn_q3n_expert_span(const qn_q3n *m, int layer, enum qn_q3n_proj p, int expert, uint32_t dio_align,
                       qn_file_span *out);

#endif
