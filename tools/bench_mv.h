/* bench_mv.h — bandwidth measurements behind `qnext selftest --bench [--sweep]`: matvec (bf16 and the ggml
 * block formats) on real decode shapes, a compute-shader copy as the ceiling, and a sweep over the matvec
 * specialization constants so a board profile can be tuned from measurements.
 *
 * Honesty rules: weights of one measured matrix set exceed the GPU's L2 many times (a matrix smaller than
 * QN_BENCH_ROTATE_BYTES is replicated into N distinct copies that are multiplied in turn, with a barrier
 * between dispatches as in a decode step); times are the minimum over `iters` runs after a warm-up run;
 * GB/s counts bytes that must cross the memory bus once (weights + x + y); every result is checked
 * against the C reference, so a fast but wrong configuration is reported as FAIL. */
#ifndef QN_BENCH_MV_H
#define QN_BENCH_MV_H

#include <stdbool.h>
#include <stdint.h>

#include "qn_rng.h"
#include "vk.h"

#define QN_BENCH_ROTATE_BYTES (256ull << 20) /* >= 5x the 50 MB L2 of an H100 */

struct qn_bench {
    qn_vk *v;
    qn_cmd *cmd;
    qn_rng *rng;
    int iters;              /* timed runs (the minimum is reported) */
    bool quick;             /* small shapes (CI / lavapipe) */
    const char *sweep_only; /* --sweep: only kernels whose name contains one of these comma-separated words */
    uint32_t spec[2][5];    /* board tuning (qn_board tune.mv_spec): [0] matvec bf16, [1] block formats */
    int passed, failed;     /* result checks */
};

/* The quantized matvecs (Q8_0 Q6_K Q5_K Q4_K Q4_0) at 512x2048 with the board's tuning, checked
 * against loader/quant.h's reference: one selftest line each. */
int qn_bench_check(struct qn_bench *b);
/* The plain --bench lines: matvec bf16 on a layer shape and the lm_head, the quantized matvecs on the
 * lm_head shape, vkCmdCopyBuffer and the copy kernel. */
int qn_bench_run(struct qn_bench *b);
/* --sweep: every matvec kernel over a grid of (workgroup size, rows per workgroup, unroll, rows per
 * subgroup, x staging) on the lm_head and two per-layer shapes; one line per configuration and the best
 * ones at the end. */
int qn_bench_sweep(struct qn_bench *b);

#endif
