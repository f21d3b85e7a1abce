/* test_rmsnorm.c — RMSNorm (zero-centred (1 + w) and plain w) against a double-precision C reference,
 * including odd row lengths, several workgroup sizes and in-place use. */
#include <math.h>
#include <stdio.h>

#include "harness.h"

static void run_case(struct qn_h *h, uint32_t rows, uint32_t dim, uint32_t wg, float w_add, bool in_place)
{
    size_t n = (size_t)rows * dim;
    float *x_h, *w_h;
    qn_buf *x = qn_h_input_f32(h, "x", n, -3, 3, &x_h);
    qn_buf *w = qn_h_input_f32(h, "w", dim, -0.5f, 0.5f, &w_h);
    qn_buf *y = in_place ? x : qn_h_output(h, "y", n);
    qn_pipe *p = qn_h_pipe(h, QN_K_RMSNORM, wg);
    qn_pc_rmsnorm pc = { .rows = rows, .dim = dim, .eps = 1e-6f, .w_add = w_add };
    qn_h_run(h, p, QN_BINDS(QN_BIND(x), QN_BIND(w), QN_BIND(y)), &pc, sizeof pc, rows);
    float *ref = qn_h_alloc(h, n);
    for (uint32_t r = 0; r < rows; r++) {
        const float *xr = x_h + (size_t)r * dim;
        double ss = 0;
        for (uint32_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        double inv = 1.0 / sqrt(ss / dim + 1e-6);
        for (uint32_t i = 0; i < dim; i++) ref[(size_t)r * dim + i] = (float)(xr[i] * inv * (w_h[i] + w_add));
    }
    char what[128];
    snprintf(what, sizeof what, "%ux%u wg %u w_add %g%s (%s)", rows, dim, wg, w_add, in_place ? " in place" : "",
             qn_pipe_info(p)->name);
    qn_h_check(h, what, y, ref, n, 2e-6, 2e-5);
    qn_h_reset(h);
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "rmsnorm", argc, argv);
    static const uint32_t dims[][2] = { { 1, 7 }, { 3, 2048 }, { 16, 256 }, { 5, 1000 }, { 2, 128 }, { 7, 33 } };
    static const uint32_t wgs[] = { 256, 64, 100, 32 };
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (size_t g = 0; g < sizeof wgs / sizeof wgs[0]; g++)
            run_case(&h, dims[d][0], dims[d][1], wgs[g], g % 2 ? 0.0f : 1.0f, false);
    run_case(&h, 4, 512, 128, 1.0f, true);
    return qn_h_close(&h);
}
