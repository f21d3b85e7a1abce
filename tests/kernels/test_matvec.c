/* test_matvec.c — matvec (bf16 / f16 / f32 weights, f32 accumulate) against a double-precision C
 * reference over odd shapes, several workgroup layouts and the accumulate flag. */
#include <math.h>
#include <stdio.h>

#include "harness.h"

static const struct { uint32_t rows, cols; } shapes[] = {
    { 1, 7 }, { 1, 8 }, { 3, 16 }, { 33, 129 }, { 64, 64 }, { 257, 1000 }, { 512, 2048 }, { 100, 2056 },
};
static const struct { uint32_t wg, rows_per_wg; } layouts[] = { { 128, 2 }, { 64, 1 }, { 32, 4 }, { 256, 3 } };
static const struct { enum qn_kernel k; const char *name; int kind; } dtypes[] = {
    { QN_K_MATVEC_BF16, "bf16", 0 }, { QN_K_MATVEC_F16, "f16", 1 }, { QN_K_MATVEC_F32, "f32", 2 },
};

static void run_case(struct qn_h *h, int d, uint32_t rows, uint32_t cols, int layout, bool acc)
{
    size_t n = (size_t)rows * cols;
    float *w_h, *x_h, *y0_h = NULL;
    qn_buf *w = dtypes[d].kind == 0 ? qn_h_input_bf16(h, "W", n, -1, 1, &w_h)
              : dtypes[d].kind == 1 ? qn_h_input_f16(h, "W", n, -1, 1, &w_h)
                                    : qn_h_input_f32(h, "W", n, -1, 1, &w_h);
    qn_buf *x = qn_h_input_f32(h, "x", cols, -1, 1, &x_h);
    qn_buf *y = acc ? qn_h_input_f32(h, "y", rows, -2, 2, &y0_h) : qn_h_output(h, "y", rows);
    uint32_t wg = layouts[layout].wg, rpw = layouts[layout].rows_per_wg;
    qn_pipe *p = qn_h_pipe(h, dtypes[d].k, wg, rpw);
    qn_pc_matvec pc = { .rows = rows, .cols = cols, .flags = acc ? QN_MATVEC_ACCUMULATE : 0 };
    qn_h_run(h, p, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, (rows + rpw - 1) / rpw);
    float *ref = qn_h_alloc(h, rows);
    double sum_abs = 0;
    for (uint32_t r = 0; r < rows; r++) {
        double s = 0;
        for (uint32_t c = 0; c < cols; c++) s += (double)w_h[(size_t)r * cols + c] * x_h[c];
        ref[r] = (float)(s + (acc ? y0_h[r] : 0.0));
    }
    for (uint32_t c = 0; c < cols; c++) sum_abs += fabs(x_h[c]);
    char what[128];
    snprintf(what, sizeof what, "%s %ux%u wg %u rows/wg %u%s (%s)", dtypes[d].name, rows, cols, wg, rpw,
             acc ? " accumulate" : "", qn_pipe_info(p)->name);
    /* f32 accumulation of `cols` products bounded by |x|: error ~ eps * sum|x| (weights in [-1, 1]) */
    qn_h_check(h, what, y, ref, rows, 4e-7 * sum_abs + 1e-6, 1e-5);
    qn_h_reset(h);
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "matvec", argc, argv);
    for (int d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int l = 0; l < 4; l++)
                if (l == 0 || shapes[s].rows * shapes[s].cols <= 300000) /* keep lavapipe time small */
                    run_case(&h, d, shapes[s].rows, shapes[s].cols, l, false);
    for (int d = 0; d < 3; d++) run_case(&h, d, 33, 129, 0, true), run_case(&h, d, 20, 256, 2, true);
    return qn_h_close(&h);
}
