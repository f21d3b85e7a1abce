/* expert_host.h — the host-memory expert tier (issue #5, docs/streaming.md "The host tier").
 *
 * --experts host (qn_model_params.experts_host, env QNEXT_EXPERTS=host): every routed expert is resident in pinned
 * system memory the GPU reads over PCIe; the slot table and dense weights stay in VRAM; a token is one submission
 * as in resident mode.
 *   - without --expert-cache (step 1): QN_MEM_HOST pools laid out exactly like resident mode's device pools
 *     (slot = l * E + e), allocated and filled by model.c / model_gguf.c;
 *   - with --expert-cache SIZE (step 2, this file's qn_eh_*): a VRAM cache in front of the host tier. Pools 0..6
 *     (and dpools 0..6) hold SIZE bytes of VRAM slots [0, n_vram); binding 7 (pool and dpool) is bound per layer
 *     to that layer's host slab of E slots, so expert (l, e) is always at slot 7 * spp + e of layer l's dispatches
 *     (spp = slots per pool = d_slots_per_pool, the same for both sets here; m->n_slots = 8 * spp). The slot table
 *     row of layer l points each expert at its VRAM slot when it is cached there, else at its host slot.
 *     Admission and eviction happen BETWEEN calls, off the critical path: after a call (qn_eh_after) the routed ids
 *     it read back (one [T, K] copy per layer into a host buffer) go through runtime/experts.c's cache (LRU/LFU,
 *     --expert-policy): a miss gets a VRAM slot (free first, then the policy's victim; the victim's row entry goes
 *     back to its host slot before the next call) and its copy host slab -> VRAM slot is submitted on the transfer
 *     queue (signalling a timeline value); before a call (qn_eh_before) the fills whose copies the timeline says
 *     are done become READY and their row entries point at the VRAM slot. A slot being filled is never pointed at
 *     and never chosen as a victim; a victim was last read by a call that has completed (calls are synchronous). */
#ifndef QN_EXPERT_HOST_H
#define QN_EXPERT_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "expert_store.h"
#include "model.h"

struct qn_eh;

/* Option combinations the host tier refuses: 0 or -EINVAL. --expert-trace (streaming only); --expert-hot /
 * --expert-hot-from without --expert-cache (the hot set is pinned in the VRAM cache in front of the host tier); a
 * --prefetch is ignored with a warning (so a streaming command line runs as is with --experts host added). */
int qn_eh_check(const struct qn_model_params *p);
/* One line (no newline) saying where the experts live: host tier with its bytes, pools and memory type, the VRAM
 * cache and the VRAM in use; empty when the experts are not in the host tier. */
void qn_eh_describe(const qn_model *m, char *buf, size_t n);

/* The load's fill of the host pools (both steps). By default through upload.h's staging and GPU copies, as device
 * pools are filled (begin hides the pools' mappings from the loader, end gives them back); env
 * QNEXT_HOST_FILL=direct reads every part straight into the mapped pools instead (H100 run 21: 65 s for 46.7 GiB
 * of uncached memory, against 15.9 s for a resident load through staging). */
void qn_eh_fill_begin(qn_model *m);
void qn_eh_fill_end(qn_model *m);
/* After the fill has completed (the upload closed): a pinned hot set (--expert-hot N --expert-hot-from FILE, VRAM
 * cache only) is copied from the host slabs into VRAM slots [0, N), where it stays (never a victim). */
int qn_eh_loaded(const qn_model *m);

/* ---- step 2: the VRAM cache in front of the host tier (p->experts_host && p->expert_cache) -------------- */

/* After m->slot_bytes / d_slot_bytes are known (model load, instead of the resident pools), with --experts host:
 * the step-2 layout when there is an --expert-cache or the decode gather is on (env QNEXT_HOST_GATHER, read here
 * once: 0 off, 1 (default) K staging slots, 2 per-layer staging; the gather needs its staging pool; no
 * --expert-cache = no cache slots); otherwise 0 with m->host_tier NULL (step 1: the loader allocates the host
 * pools). The step-2 layout: VRAM pools for
 * p->expert_cache bytes of slots, one host slab (and down slab) per layer, the slot table (every expert at its
 * host slot), the slot cache and the transfer queue's command buffers; sets m->host_tier, m->pools / dpools,
 * slots_per_pool, n_pools, n_slots, m->table. Errors name the bytes asked. */
int qn_eh_alloc(qn_model *m, const struct qn_model_params *p);
void qn_eh_close(qn_model *m);   /* waits for the copies in flight; frees what qn_eh_alloc made but m->pools */
/* Expert (l, e)'s home for the load's fill: its host slab (down = the GGUF down parts' slab) and byte offset. */
qn_buf *qn_eh_home(const qn_model *m, int l, int e, bool down, uint64_t *off);
/* The buffer bound at pool binding i (0..7) of layer l's expert dispatches (down: the dpools set). */
const qn_buf *qn_eh_binding(const qn_model *m, int l, uint32_t i, bool down);

/* Before a call of T tokens: fills whose copies are done become READY, the table is written when it changed (or,
 * before a call without the gather, when a gather redirected entries to staging slots); *wait is the
 * transfer timeline point the call's submission waits on (already reached: no stall; it orders the copies before
 * the reads for the validation layer). */
int qn_eh_before(const qn_model *m, uint32_t T, struct qn_tl_point *wait);
/* After a call of T tokens: ids = the routed ids read back, [L][t_stride][K]; counts the bytes served from VRAM
 * and, for calls of at most QNEXT_HOST_ADMIT_T tokens (default 4), admits the misses (copies submitted), at most
 * QNEXT_HOST_ADMIT (default 64; 0 = all) per call; nothing while every copy batch is still in flight (no waits). */
int qn_eh_after(const qn_model *m, const int32_t *ids, uint32_t T, uint32_t t_stride);

/* The decode gather (env QNEXT_HOST_GATHER=1 at load; shaders/expert_gather.comp): before layer l's expert kernels
 * of a 1-token call, the routed experts that are not in a VRAM cache slot are copied from the host slab into K VRAM
 * staging slots (a pool of their own after the cache pools) by a copy kernel, and their table entries point there.
 * qn_eh_gather_info: false when the model does not gather; else the buffers, push constants and workgroups per id
 * (QNEXT_HOST_GATHER_G, default 64) of layer l's dispatch. */
struct qn_eh_gather {
    const qn_buf *src, *dst, *dsrc, *ddst, *offs;   /* offs: binding 6 (the page-cache offsets when mapped) */
    const qn_buf *flags;   /* QNEXT_HOST_MMAP: uint32 [E], calls of T > 1 gather their union too; else NULL */
    qn_pc_gather pc;
    uint32_t groups;
};
bool qn_eh_gather_info(const qn_model *m, int l, struct qn_eh_gather *g);

/* QNEXT_HOST_MMAP=1 (with --experts host; read once by qn_eh_alloc; docs/streaming.md): the host tier's memory is
 * the model files' page cache, imported (expert_map.h) instead of pinned pools filled at load. The loaders call
 * qn_eh_map with the model's expert store instead of the fill (qn_eh_mapped says so); the gather is forced on and
 * also runs for calls of T > 1 (the union of a layer's routed experts into staging slot e: E staging slots), since
 * the expert kernels cannot read the files' layout; VRAM cache admissions and the hot set copy each part from its
 * file offset. */
bool qn_eh_mapped(const qn_model *m);
int qn_eh_map(qn_model *m, const qn_es *es);

struct qn_eh_stats {
    uint32_t n_vram;               /* VRAM slots */
    uint64_t accesses, vram_hits;  /* routed (token, layer, k) reads, those served from a VRAM slot */
    uint64_t bytes, vram_bytes;    /* their expert bytes */
    uint64_t fills, fill_bytes, evictions, copy_batches, skipped;   /* admissions; lookups skipped (no slot) */
    uint64_t busy_calls;           /* calls that admitted nothing: every copy batch still in flight */
};
void qn_eh_get_stats(const qn_model *m, struct qn_eh_stats *s);   /* zeros when there is no VRAM cache */
void qn_eh_print_stats(const qn_model *m, FILE *out);

#endif
