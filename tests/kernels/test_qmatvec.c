/* test_qmatvec.c — quantized matvec (matvec_q8_0 / q4_0 / q4_k / q5_k / q6_k) against the C reference of
 * loader/quant.h: random f32 weights quantized with qn_quant_row, then y = W x on the GPU vs qn_matvec_ref
 * (dequantized rows dotted with x in double). Odd shapes (rows 1 .. 257, 1 / 3 / 8 blocks per row), real
 * row lengths (512, 2048), several workgroup layouts (weight prefetch off and on), the accumulate flag and T > 1
 * tokens in z.
 *
 * Tolerance: the reference is exact up to its double summation; the GPU sums in f32 per 32-weight unit
 * and applies the quant offsets (-8, -32, -128, K-quant mins) through the sums of x, so its error scales
 * with S = sum_i |x_i| * (|w_i| + |block range|) per row. Measured on lavapipe (subgroups 4 / 8, and the
 * tree reduction): max |error| / S = 6e-8 (printed at the end as "worst"); the bound 1e-6 + 5e-7 * S keeps
 * an 8x margin. For scale, one quant level off in one weight moves a row by about |x| * range / 127 (Q8_0)
 * to |x| * range / 15 (Q4), i.e. about S / (190 cols) or more: 2.6e-6 S at cols 2048, above the bound. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "qblocks.h"
#include "quant.h"

static const struct { uint32_t type; enum qn_kernel k; float offset; } fmts[] = {
    /* offset: |quant offset| relative to the block scale times levels, for the error scale S */
    { QN_GGML_Q8_0, QN_K_MATVEC_Q8_0, 128.0f / 127.0f }, { QN_GGML_Q4_0, QN_K_MATVEC_Q4_0, 1.0f },
    { QN_GGML_Q4_K, QN_K_MATVEC_Q4_K, 1.0f }, { QN_GGML_Q5_K, QN_K_MATVEC_Q5_K, 1.0f },
    { QN_GGML_Q6_K, QN_K_MATVEC_Q6_K, 1.0f },
};
#define NFMTS (sizeof fmts / sizeof fmts[0])

/* wg, rows/wg, unroll, rows/subgroup, x stage (vec4s): see test_matvec.c for what each one covers; x is
 * staged (swizzled slots + run sums) when cols <= 4 * xsh, else read from the buffer */
static const struct { uint32_t wg, rpw, unroll, sgrows, xsh, pre; } layouts[] = {
    { 128, 2, 2, 1, 0, 1 }, { 64, 8, 2, 4, 512, 1 }, { 32, 16, 4, 2, 1024, 1 }, { 100, 5, 1, 3, 64, 1 }, { 4, 3, 2, 2, 0, 1 },
    { 256, 16, 2, 2, 1024, 1 }, /* the kernel's defaults */
    /* forward_pipes.c's small-row layout (one row per subgroup), without the prefetch, and split sets */
    { 128, 4, 2, 1, 1024, 1 }, { 128, 4, 2, 1, 1024, 0 }, { 128, 8, 2, 4, 0, 1 }, { 256, 4, 4, 1, 1024, 0 },
};
#define NLAYOUTS_OLD 6 /* the layouts of the odd-shape sweep (the last one: real shapes), then the small-row ones */
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

static double worst_ratio; /* max |err| / S over all checks, printed at the end */

struct qcase {
    uint32_t f, rows, cols, layout, T;
    bool acc;
};

static void run_case(struct qn_h *h, struct qcase c)
{
    const qn_ggml_type_info *ti = qn_ggml_type(fmts[c.f].type);
    uint64_t rb;
    qn_h_ok(h, qn_ggml_row_bytes(fmts[c.f].type, c.cols, &rb), "row bytes");
    size_t wbytes = rb * c.rows, padded = (wbytes + 3) & ~(size_t)3;
    uint8_t *raw = qn_h_alloc_bytes(h, padded);
    memset(raw, 0, padded);
    float *deq = qn_h_alloc(h, (size_t)c.rows * c.cols); /* random weights (qblocks.h), dequantized */
    qn_h_quant_matrix(h, fmts[c.f].type, c.rows, c.cols, raw, deq);
    qn_buf *wb = qn_h_upload(h, "W", raw, padded);
    float *x_h, *y0_h = NULL;
    qn_buf *x = qn_h_input_f32(h, "x", (size_t)c.T * c.cols, -1, 1, &x_h);
    size_t ny = (size_t)c.T * c.rows;
    qn_buf *y = c.acc ? qn_h_input_f32(h, "y", ny, -2, 2, &y0_h) : qn_h_output(h, "y", ny);
    uint32_t rpw = layouts[c.layout].rpw;
    qn_pipe *p = qn_h_pipe(h, fmts[c.f].k, layouts[c.layout].wg, rpw, layouts[c.layout].unroll,
                           layouts[c.layout].sgrows, layouts[c.layout].xsh, layouts[c.layout].pre);
    qn_pc_matvec pc = { .rows = c.rows, .cols = c.cols, .flags = c.acc ? QN_MATVEC_ACCUMULATE : 0 };
    qn_h_run_z(h, p, QN_BINDS(QN_BIND(wb), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, (c.rows + rpw - 1) / rpw, c.T);
    float *got = qn_h_read(h, y, ny), *ref = qn_h_alloc(h, ny);
    double max_s = 0, max_err_ratio = 0;
    for (uint32_t t = 0; t < c.T; t++) {
        const float *xt = x_h + (size_t)t * c.cols;
        qn_h_ok(h, qn_matvec_ref(fmts[c.f].type, raw, c.rows, c.cols, xt, ref + (size_t)t * c.rows), "reference");
        for (uint32_t r = 0; r < c.rows; r++) {
            size_t i = (size_t)t * c.rows + r;
            if (c.acc) ref[i] += y0_h[i];
            const float *dr = deq + (size_t)r * c.cols;
            /* S: |w| plus the offset part of each weight (about the block's range) */
            double s = 0, bmax = 0;
            for (uint32_t k = 0; k < c.cols; k++) {
                if (k % ti->blck == 0) {
                    bmax = 0;
                    for (uint32_t m = k; m < k + ti->blck; m++) bmax = fmax(bmax, fabsf(dr[m]));
                }
                s += fabs((double)xt[k]) * (fabsf(dr[k]) + fmts[c.f].offset * bmax);
            }
            max_s = fmax(max_s, s);
            double e = fabs((double)got[i] - ref[i]);
            if (isfinite(e) && s > 0) max_err_ratio = fmax(max_err_ratio, e / s);
        }
    }
    worst_ratio = fmax(worst_ratio, max_err_ratio);
    char what[160];
    snprintf(what, sizeof what, "%s %ux%u T=%u wg %u rows/wg %u unroll %u sgrows %u xsh %u pre %u%s (%s) max err/S %.2g",
             ti->name, c.rows, c.cols, c.T, layouts[c.layout].wg, rpw, layouts[c.layout].unroll,
             layouts[c.layout].sgrows, layouts[c.layout].xsh, layouts[c.layout].pre,
             c.acc ? " accumulate" : "",
             qn_pipe_info(p)->name, max_err_ratio);
    qn_h_check_host(h, what, got, ref, ny, 1e-6 + 5e-7 * max_s, 0);
    qn_h_reset(h);
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "qmatvec", argc, argv);
    static const uint32_t rows[] = { 1, 7, 33, 257 }, nblocks[] = { 1, 3, 8 };
    for (uint32_t f = 0; f < NFMTS; f++) {
        uint32_t qk = qn_ggml_type(fmts[f].type)->blck;
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
            for (size_t b = 0; b < sizeof nblocks / sizeof nblocks[0]; b++)
                for (uint32_t l = 0; l + 1 < NLAYOUTS_OLD; l++) /* the last layout: real shapes below */
                    if (l == 0 || (size_t)rows[r] * nblocks[b] * qk <= 9000) /* keep lavapipe time small */
                        run_case(&h, (struct qcase){ f, rows[r], nblocks[b] * qk, l, 1, false });
        /* real row lengths: shared-expert gate/up (512 x 2048) and down (2048 x 512) */
        run_case(&h, (struct qcase){ f, 512, 2048, 1, 1, false });
        run_case(&h, (struct qcase){ f, 2048, 512, 0, 1, false });
        run_case(&h, (struct qcase){ f, 300, 2048, 5, 1, false }); /* the defaults, staged, partial last set */
        run_case(&h, (struct qcase){ f, 33, 2048, 2, 1, true });   /* accumulate, x staged */
        run_case(&h, (struct qcase){ f, 20, 4 * qk, 3, 3, true }); /* T = 3 in z, partial subgroup */
        run_case(&h, (struct qcase){ f, 9, 2048, 0, 2, false });   /* T = 2, split sets */
        /* the small-row layouts: 1, 3, 5 rows (partial workgroups) at 1 and 3 blocks, a real row length with a
         * partial last workgroup (the forward default; 1024 columns for the others), out projection columns */
        static const uint32_t srows[] = { 1, 3, 5 };
        for (uint32_t l = NLAYOUTS_OLD; l < NLAYOUTS; l++) {
            for (size_t r = 0; r < sizeof srows / sizeof srows[0]; r++) {
                run_case(&h, (struct qcase){ f, srows[r], qk, l, 1, false });
                run_case(&h, (struct qcase){ f, srows[r], 3 * qk, l, 1, r == 1 });
            }
            if (l == NLAYOUTS_OLD) run_case(&h, (struct qcase){ f, 130, 2048, l, 1, false });
            else run_case(&h, (struct qcase){ f, 37, 1024, l, 1, false }); /* keep lavapipe time small */
        }
        run_case(&h, (struct qcase){ f, 17, 4096, NLAYOUTS_OLD, 1, false });
        run_case(&h, (struct qcase){ f, 6, 2048, NLAYOUTS_OLD + 1, 2, true }); /* T = 2, accumulate, no prefetch */
    }
    printf("qmatvec: worst max err / S = %.3g (bound 5e-7)\n", worst_ratio);
    return qn_h_close(&h);
}
