/* model_stream.h — streaming mode of a qn_model: the routed experts live in fewer slots than there are
 * experts and are read from the model files on demand (docs/streaming.md, "Streaming on the Vulkan side").
 *
 * model.c calls qn_mst_plan() when --expert-cache is below the experts' bytes (slot count from the budget, or
 * the clear error naming both numbers) and qn_mst_open() once the checkpoint is open (file locations of every
 * expert tensor, the IO engine, the slot cache; the device slot table starts all -1). The session then, per
 * layer, submits the ROUTE segment, reads the router ids and calls qn_mst_layer() before submitting the
 * EXPERTS segment: misses are read (qn_io) into a host-visible staging buffer laid out exactly like a slot,
 * and one command buffer per layer copies them into their slots and rewrites the layer's slot-table row. Synchronous per layer: every earlier
 * submission has completed when qn_mst_layer runs, so every slot not named by this call is evictable. */
#ifndef QN_MODEL_STREAM_H
#define QN_MODEL_STREAM_H

#include <stdint.h>
#include <stdio.h>

#include "expert_store.h"
#include "experts.h"
#include "model.h"
#include "stream.h"

struct qn_mst;

/* Device bytes of one slot: m->slot_bytes (pools) + m->d_slot_bytes (GGUF block experts' dpools; else 0). */
uint64_t qn_mst_slot_bytes(const qn_model *m);
/* --expert-cache `budget` below m->expert_bytes: m->n_slots / m->expert_bytes for that many slots of
 * qn_mst_slot_bytes(m), or -ENOSPC with the message of qn_exp_slots_for_budget (budget, slot size, minimum:
 * top_k + p->prefetch). */
int qn_mst_plan(qn_model *m, uint64_t budget, const struct qn_model_params *p);
/* Streaming over the expert store `es` (expert_store.h: where every part is in the files and in its slot; this
 * takes ownership, also on failure): the IO engine (p->io_mode: enum qn_io_mode) and the slot cache; sets
 * m->stream. p->prefetch > 0: after layer L's experts are resident, guess layer L + 1's (the ids it used in the
 * previous call, at most p->prefetch new slots) and start those reads while the GPU runs; the minimum becomes
 * top_k + prefetch. */
int qn_mst_open(qn_model *m, struct qn_es *es, const struct qn_model_params *p);
void qn_mst_close(struct qn_mst **s);

/* The most tokens one call may run so that a layer's union of routed experts always fits the slots:
 * max(1, (n_slots - n_prefetch) / top_k). */
uint32_t qn_mst_max_tokens(const qn_model *m);
/* Make the experts named by ids[0..n) (a [T, K] router output, duplicates allowed) of `layer` resident and
 * the device slot table's row for the layer current. Errors (IO, truncated file, bad ids) name the file,
 * offset or id; after an error the sequence state is undefined, no garbage slot is ever marked resident. */
int qn_mst_layer(const qn_model *m, int layer, const int32_t *ids, int n);

/* The slot cache's totals (every layer) and the IO engine's; -EINVAL when m is not streaming. */
int qn_mst_stats(const qn_model *m, struct qn_exp_stats *es, struct qn_io_stats *is);
/* Totals since load: hit rate, bytes read, read GB/s, IO stall per token (`tokens` = tokens run). */
void qn_mst_print_stats(const qn_model *m, uint64_t tokens, FILE *out);

#endif
