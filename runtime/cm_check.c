/* cm_check.c — a self-check of a tensor-core matmul pipeline (qmatmul_cm.comp) at pipeline setup: forward.c
 * uses the tensor-core prefill only if this passes, so a driver that lists a cooperative-matrix shape but
 * computes something else falls back to the f32-FMA kernels instead of producing wrong tokens.
 *
 * The case: Y[96, 80] = X[96, 96] · W[80, 96]^T with f32 weights (matmul_cm_f32), odd against the 64 and 128
 * tiles (partial tiles in m and n), values k / 256 for integers |k| <= 256: exact in f16, their products exact
 * in f32, and every partial sum (a multiple of 2^-16 below 96 in magnitude) exact too, so the GPU result must
 * equal the C sum bit for bit in any summation order. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "forward.h"
#include "qn_err.h"
#include "qn_rng.h"

enum { CM_M = 96, CM_N = 80, CM_K = 96 };

static void fill_exact(qn_rng *rng, float *a, size_t n)
{
    for (size_t i = 0; i < n; i++) a[i] = (float)((int)(qn_rng_u64(rng) % 513u) - 256) / 256.0f;
}

static int run_check(qn_vk *v, const qn_pipe *p, const float *x, const float *w, float *y)
{
    qn_buf *bx = NULL, *bw = NULL, *by = NULL;
    qn_cmd *c = NULL;
    qn_pc_matmul pc = { .M = CM_M, .N = CM_N, .K = CM_K, .ldx = CM_K, .ldy = CM_N };
    uint64_t groups = (uint64_t)((CM_M + qn_pipe_spec(p, 1) - 1) / qn_pipe_spec(p, 1)) *
                      ((CM_N + qn_pipe_spec(p, 2) - 1) / qn_pipe_spec(p, 2));
    int rc = qn_buf_create(v, QN_MEM_DEVICE, sizeof(float) * CM_M * CM_K, "cm check x", &bx);
    if (!rc) rc = qn_buf_create(v, QN_MEM_DEVICE, sizeof(float) * CM_N * CM_K, "cm check w", &bw);
    if (!rc) rc = qn_buf_create(v, QN_MEM_DEVICE, sizeof(float) * CM_M * CM_N, "cm check y", &by);
    if (!rc) rc = qn_buf_write(v, bx, 0, x, sizeof(float) * CM_M * CM_K);
    if (!rc) rc = qn_buf_write(v, bw, 0, w, sizeof(float) * CM_N * CM_K);
    if (!rc) rc = qn_buf_fill(v, by, 0, sizeof(float) * CM_M * CM_N, 0x7fc00000u); /* NaN where nothing is written */
    if (!rc) rc = qn_cmd_create(v, &c);
    if (!rc) rc = qn_cmd_begin(c);
    if (!rc) rc = qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND(bw), QN_BIND(bx), QN_BIND(by)), &pc, sizeof pc, groups);
    if (!rc) rc = qn_cmd_end(c);
    if (!rc) rc = qn_cmd_run(c);
    if (!rc) rc = qn_buf_read(v, by, 0, y, sizeof(float) * CM_M * CM_N);
    qn_cmd_destroy(&c);
    qn_buf_destroy(v, &bx);
    qn_buf_destroy(v, &bw);
    qn_buf_destroy(v, &by);
    return rc;
}

int qn_cm_selfcheck(qn_vk *v, const qn_pipe *p)
{
    float *x = malloc(sizeof(float) * CM_M * CM_K), *w = malloc(sizeof(float) * CM_N * CM_K);
    float *y = malloc(sizeof(float) * CM_M * CM_N);
    int rc = x && w && y ? 0 : qn_fail(-ENOMEM, "out of memory");
    qn_rng rng;
    qn_rng_seed(&rng, 0x636d6368ull);
    if (!rc) {
        fill_exact(&rng, x, (size_t)CM_M * CM_K);
        fill_exact(&rng, w, (size_t)CM_N * CM_K);
        rc = run_check(v, p, x, w, y);
    }
    for (int m = 0; !rc && m < CM_M; m++)
        for (int n = 0; !rc && n < CM_N; n++) {
            double s = 0;
            for (int k = 0; k < CM_K; k++) s += (double)x[m * CM_K + k] * w[n * CM_K + k];
            if (!(y[m * CM_N + n] == (float)s))
                rc = qn_fail(QN_E_UNSUPPORTED, "tensor-core matmul self-check (%s): Y[%d, %d] = %g, expected %g",
                             qn_pipe_info(p)->name, m, n, (double)y[m * CM_N + n], s);
        }
    free(x);
    free(w);
    free(y);
    return rc;
}
