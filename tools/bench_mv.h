/* bench_mv.h — bandwidth measurements behind `qnext selftest --bench [--sweep]`: matvec (bf16 and the ggml
 * block formats) on real decode shapes, a compute-shader copy as the ceiling, and a sweep over the matvec
 * specialization constants so a board profile can be tuned from measurements.
 *
 * Honesty rules: weights of one measured matrix set exceed the GPU's L2 many times (a matrix smaller than
 * QN_BENCH_ROTATE_BYTES is replicated into N distinct copies that are multiplied in turn, with a barrier
 * between dispatches as in a decode step); times are the minimum over `iters` runs that follow, in the same
 * submission, about `warm_ms` of the same work (a GPU that idled while a pipeline compiled or a result was
 * read back runs at low clocks for a while: without it the sweep read 3x below the bench lines on an H100);
 * GB/s counts bytes that must cross the memory bus once (weights + x + y); every result is checked
 * against the C reference, so a fast but wrong configuration is reported as FAIL. The bench lines and the
 * sweep share one measuring function, and the sweep's first row per kernel is the bench lines' layout. */
#ifndef QN_BENCH_MV_H
#define QN_BENCH_MV_H

#include <stdbool.h>
#include <stdint.h>

#include "qn_rng.h"
#include "vk.h"

#define QN_BENCH_ROTATE_BYTES (256ull << 20) /* >= 5x the 50 MB L2 of an H100 */
/* default warm-up of --bench / --sweep (env QNEXT_BENCH_WARM_MS). 200, not 50: H100 run 17 (50 ms) read the sweep's
 * first row, the board's layout, at 753 / 551 / 359 GB/s against 1336 in the bench line for the same layout and
 * ~1250 / 890 / 555 for its grid neighbours; run 18b (200 ms) read it at 1334 / 955 / 584, the bench line 1336, and
 * the same layout measured again after the others ("again") 1335 / 952 / 577: a warm-up effect after the idle
 * time of the problem uploads, not the kernel or the memory placement */
#define QN_BENCH_WARM_MS 200.0
#define QN_BENCH_WARM_DISPATCHES 20000u  /* at most this many dispatches of warm-up per measurement */

struct qn_bench {
    qn_vk *v;
    qn_cmd *cmd;
    qn_rng *rng;
    int iters;              /* timed runs (the minimum is reported) */
    double warm_ms;         /* GPU time of the same matvecs before the timed runs (0: one matvec) */
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
/* --sweep: every matvec kernel over the board's layout and a grid of (workgroup size, rows per workgroup,
 * unroll, rows per subgroup, x staging) on the lm_head and two per-layer shapes; one line per configuration
 * (the board's first, with the bench line's detail) and the best ones at the end. */
int qn_bench_sweep(struct qn_bench *b);

#endif
