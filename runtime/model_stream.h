/* model_stream.h — streaming mode of a qn_model: the routed experts live in fewer slots than there are
 * experts and are read from the model files on demand (docs/streaming.md, "Streaming on the Vulkan side").
 *
 * model.c calls qn_mst_plan() when --expert-cache is below the experts' bytes (slot count from the budget, or
 * the clear error naming both numbers) and qn_mst_open() once the checkpoint is open (file locations of every
 * expert tensor, the IO engine, the slot cache; the device slot table starts all -1). The session submits
 * every segment of a streaming call through qn_mst_submit() (they signal a compute timeline) and, per layer,
 * after the ROUTE segment calls qn_mst_layer(): it waits for that route (handling prefetch reads meanwhile),
 * looks the ids up, reads every miss at once into a ring of host-visible staging entries (on UMA straight
 * into the mapped slots), copies each piece into its slot on the transfer queue as soon as it has arrived
 * (batches signal a transfer timeline), starts the reads of the guessed next layer's experts, and returns
 * once the layer's copies are submitted; the EXPERTS segment then waits for them on the GPU. */
#ifndef QN_MODEL_STREAM_H
#define QN_MODEL_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "expert_store.h"
#include "experts.h"
#include "model.h"
#include "stream.h"

struct qn_mst;

/* Device bytes of one slot: m->slot_bytes (pools) + m->d_slot_bytes (GGUF block experts' dpools; else 0). */
uint64_t qn_mst_slot_bytes(const qn_model *m);
/* Memory for the slot pools (and the slot table) of a streaming model of m->n_slots slots: QN_MEM_DEVICE_MAPPED
 * (device-local and host-visible: a resizable BAR) on a discrete GPU when such a heap holds them, so misses are
 * read straight into the slots as on UMA (no staging, no copies); else QN_MEM_DEVICE (staged). Env
 * QNEXT_STREAM_BAR=0 forces the staged path, =1 asks for BAR memory even where the heap looks too small. Logs
 * the choice and why (once per call). */
enum qn_mem qn_mst_pool_mem(const qn_model *m);
/* qn_buf_create(kind) for a slot pool; when a QN_MEM_DEVICE_MAPPED allocation fails it warns and falls back to
 * QN_MEM_DEVICE, and sets *kind to it so the next pools go there directly. */
int qn_mst_pool_create(qn_vk *v, enum qn_mem *kind, uint64_t size, const char *name, qn_buf **out);
/* --expert-cache `budget` below m->expert_bytes: m->n_slots / m->expert_bytes for that many slots of
 * qn_mst_slot_bytes(m), or -ENOSPC with the message of qn_exp_slots_for_budget (budget, slot size, minimum:
 * top_k + p->prefetch). */
int qn_mst_plan(qn_model *m, uint64_t budget, const struct qn_model_params *p);
/* Streaming over the expert store `es` (expert_store.h: where every part is in the files and in its slot; this
 * takes ownership, also on failure): the IO engine (p->io_mode: enum qn_io_mode) and the slot cache; sets
 * m->stream. p->prefetch > 0: the guesses for layer L + 1 that qn_mst_layer gets (layer L + 1's router
 * applied to layer L's MoE input, forward.c) take at most p->prefetch slots, read while the GPU runs; the
 * minimum becomes top_k + prefetch. Env (tests): QNEXT_STREAM_STAGED=1 stages even on UMA,
 * QNEXT_STREAM_RING=N staging entries, QNEXT_STREAM_PIECE=BYTES read/copy granularity (default 1 MiB). */
int qn_mst_open(qn_model *m, struct qn_es *es, const struct qn_model_params *p);
void qn_mst_close(struct qn_mst **s);

/* The most tokens one call may run so that a layer's union of routed experts (at most min(T * top_k, E)) always
 * fits the slots next to the prefetch and hot ones: UINT32_MAX (no cap) when F = n_slots - n_prefetch - n_hot
 * >= E, else max(1, F / top_k). */
uint32_t qn_mst_max_tokens(const qn_model *m);
/* Submit segment `seg` of a streaming call on the compute queue; it signals the next compute timeline value.
 * experts_layer >= 0: it is that layer's EXPERTS segment and first waits (on the GPU) for the copies of every
 * slot the layer reads and of its slot-table row. */
int qn_mst_submit(const qn_model *m, qn_cmd *seg, int experts_layer);
/* The guess for layer + 1 that qn_mst_layer starts reading: the GPU's top-k ids ids[0..n) (ids outside [0, E)
 * are ignored), or, when `logits` is set (wide guesses, qn_mst_guess_width), the top qn_mst_guess_width experts
 * of each of its T rows of router logits [T, E], ranked on the host once the route segment has completed (ties
 * to the lower id, NaN last; rank-major over the tokens so the prefetch allowance keeps the likeliest). */
struct qn_mst_guess {
    const int32_t *ids;
    int n;
    const float *logits;
    int T;
};
/* After the ROUTE segment of `layer` was submitted: wait for it, then make the experts named by ids[0..n) (its
 * [T, K] router output in host-visible memory, read after the wait, duplicates allowed) resident and the
 * device slot table's row current, and start reading the guess g for layer + 1 (NULL or empty: none). Errors
 * (IO, truncated file, bad ids) name the file, offset or id; after an error the sequence state is undefined,
 * but no garbage slot is ever marked resident. */
int qn_mst_layer(const qn_model *m, int layer, const int32_t *ids, int n, const struct qn_mst_guess *g);
/* The streaming model takes guesses (prefetch on): the session records the guess node. */
bool qn_mst_wants_guess(const qn_model *m);
/* Reads of guesses no lookup used are dropped (QNEXT_STREAM_PF_DROP, on by default where the tuned pipeline is:
 * discrete GPUs): the IO engine's bytes then differ from the cache's fills. */
bool qn_mst_drops_unused(const qn_model *m);
/* Guesses per token wider than the router's top-k: --prefetch P > top_k takes the top P of layer L + 1's router
 * logits (the guess node's [T, E] product, which the session copies to the host: qn_mst_guess.logits) instead
 * of its top-k ids; 0 when the top-k ids are used (prefetch off or P <= top_k). */
int qn_mst_guess_width(const qn_model *m);

/* The slot cache's totals (every layer) and the IO engine's; -EINVAL when m is not streaming. */
int qn_mst_stats(const qn_model *m, struct qn_exp_stats *es, struct qn_io_stats *is);
/* The slot cache (tests: residency, pinned slots); NULL when m is not streaming. */
const qn_exp_cache *qn_mst_cache(const qn_model *m);
/* Where a streaming token's time goes besides the stall (totals since load; bench takes differences).
 * route_ns is the time qn_mst_layer waited for its route; tx_tail_ns the part of it spent waiting for the copies
 * of the previous EXPERTS segment after that segment was submitted (the GPU cannot start it earlier); the GPU's
 * busy time comes from timestamps around every segment (qn_mst_note_gpu, session.c); the rest of route_ns,
 * route_ns - tx_tail_ns - gpu_wait_ms, is host wake-up, submission and queue latency. */
struct qn_mst_times {
    uint64_t layers;            /* route waits */
    uint64_t route_ns;          /* waiting for routes (the --stats line) */
    uint64_t tx_tail_ns;        /* of which: copies still outstanding after the experts segment's submission */
    uint64_t copy_busy_ns;      /* host-observed time with copy batches outstanding */
    uint64_t copy_bytes, batches;   /* copied host -> device (staged path) */
    uint64_t gpu_calls;         /* calls with segment timestamps */
    double gpu_route_ms, gpu_experts_ms, gpu_other_ms;   /* GPU busy: route, experts, embed + head segments */
    double gpu_wait_ms;         /* GPU busy inside route waits: embed, routes, experts but the last layer's */
    /* the stall split (diagnostics): per layer, from the lookup until its last demand miss's reads are in */
    uint64_t miss_ns;
    uint64_t miss_fills;        /* demand misses started */
    uint64_t pf_inflight;       /* guesses a lookup needed while their reads were still in flight */
    uint64_t pf_dropped;        /* unused guesses whose reads were dropped (QNEXT_STREAM_PF_DROP=1) */
    uint64_t submit_ns, submits;   /* host time in vkQueueSubmit (segments, copy batches) */
};
int qn_mst_times(const qn_model *m, struct qn_mst_times *t);   /* -EINVAL when m is not streaming */
/* How misses reach the slots: "uma", "bar", "bar+bounce" (O_DIRECT through bounce buffers), "bar+hybrid" /
 * "uma+hybrid" (QNEXT_STREAM_HYBRID=1: prefetches staged), "staged" (ring + copies), or "resident". */
const char *qn_mst_path(const qn_model *m);
/* The session's GPU segment times of one call (ms): route, experts, embed + head segments, and the part of
 * them that runs while the host waits for a route (every segment before the last layer's experts). */
void qn_mst_note_gpu(const qn_model *m, double route_ms, double experts_ms, double other_ms, double in_wait_ms);

/* Totals since load: hit rate, bytes read, read GB/s, IO stall per token (`tokens` = tokens run). */
void qn_mst_print_stats(const qn_model *m, uint64_t tokens, FILE *out);

#endif
