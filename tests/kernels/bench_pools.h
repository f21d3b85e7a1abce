/* bench_pools.h — expert slot pools for the MoE kernel benches (test_moe_q.c, test_moe_qgrouped.c; header-only):
 * n slots of `slot` bytes laid out as model_gguf.c lays them out, spp slots per buffer, at most 8 buffers (the
 * kernels' pool bindings), bindings past the last buffer repeat pool 0. */
#ifndef QN_TEST_BENCH_POOLS_H
#define QN_TEST_BENCH_POOLS_H

#include "harness.h"

/* The largest pool buffer the device takes: maxStorageBufferRange, maxMemoryAllocationSize and 4 GiB - 1 bytes. */
static inline uint64_t qn_bench_pool_cap(struct qn_h *h)
{
    const struct qn_caps *caps = qn_vk_caps(h->v);
    uint64_t cap = caps->max_storage_range;
    if (caps->max_alloc && caps->max_alloc < cap) cap = caps->max_alloc;
    return cap > 0xffffffffull ? 0xffffffffull : cap;
}

/* Slots per pool buffer for n slots of `slot` bytes in buffers of at most cap bytes. */
static inline uint32_t qn_bench_spp(uint64_t slot, uint32_t n, uint64_t cap)
{
    return cap / slot < n ? (uint32_t)(cap / slot) : n;
}

/* pool[0..8): the buffers of n slots, spp per buffer (more than 8 buffers fail the bench), each filled from tmpl (its
 * first slots: at least min(spp, n) of them) or, with tmpl NULL, poisoned (the caller writes the slots it uses). */
static inline void qn_bench_pools(struct qn_h *h, const char *what, uint64_t slot, uint32_t n, uint32_t spp,
                                  const void *tmpl, qn_buf *pool[8])
{
    uint32_t np = (n + spp - 1) / spp;
    if (np > 8)
        qn_h_ok(h, qn_fail(QN_E_UNSUPPORTED, "bench: %u %s slots of %llu bytes need %u buffers (8 at most)", n, what,
                           (unsigned long long)slot, np), "bench pools");
    for (uint32_t p = 0; p < 8; p++) {
        size_t bytes = (size_t)(p + 1 < np ? spp : n - p * spp) * slot;
        pool[p] = p >= np ? pool[0] : tmpl ? qn_h_upload(h, what, tmpl, bytes) : qn_h_buffer(h, what, bytes);
    }
}

#endif
