/* test_qmatmul.c — quantized prefill matmul Y[M, N] = X[M, K] · W[N, K]^T (qmatmul_q8_0 / q4_0 / q4_k /
 * q5_k / q6_k: weight tiles decoded from ggml blocks in shared memory, f32 FMAs) against a double-precision
 * C reference on the dequantized weights (loader/quant.h): odd and real shapes, several tile layouts,
 * strided/offset X and Y (element-load paths), the accumulate flag.
 *
 * Also the self-check forward.c runs before using tensor cores (qn_cm_selfcheck), on the FMA kernel.
 * The tensor-core variants (qmatmul_cm_* for the block formats, matmul_cm_bf16/f16/f32; qmatmul_cm.comp:
 * VK_NV_cooperative_matrix, f16 tiles, f32 accumulators) run only where the device has QN_FEAT_COOPMAT_NV and
 * subgroups of 32 (NVIDIA); elsewhere the test prints a SKIP line for them (lavapipe has no cooperative
 * matrices) and tests the rest.
 *
 * `test_qmatmul --bench [ITERS]` (a real GPU; not part of the test): GPU time and TFLOP/s of every format at
 * the Qwen3-Next-80B prefill shapes (512 tokens), next to the bf16 matmul (matmul.comp) on the same shape,
 * and the tensor-core variants with several tiles where the device has them.
 *
 * Tolerance: the GPU decodes the same f32 weight values as the reference (up to one fused multiply-add
 * rounding for the K-quants) and sums the K products of each output in ascending order in f32, so the error
 * scales with S = sum_k |w_k x_k| per output; the bound is 1e-6 + 1e-6 * S. Measured max |err| / S on
 * lavapipe: 1.7e-7 .. 2.9e-7 at every K from 32 to 2048 (printed at the end as "worst"). One quant level
 * off in one weight moves an output by ~|x| * block range / 15 (4-bit) to / 127 (Q8_0): ~8e-3 at K 2048,
 * where S ~ 770 gives a bound of 7.7e-4.
 * Tensor-core variants: X and the weights are rounded to f16 (round to nearest even) before f32 products and
 * sums, so they are checked against a reference on f16-rounded X and W with the same bound 1e-6 + 1e-6 * S
 * (f32 summation only), and against the exact reference with 1e-6 + 1e-3 * S (the f16 rounding of two
 * factors moves each product by at most 2 * 2^-11 of itself: 9.8e-4 * S in the worst case); the measured
 * err / S of both is printed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "harness.h"
#include "qblocks.h"
#include "qn_num.h"
#include "quant.h"

static const struct { uint32_t type; enum qn_kernel k; } fmts[] = {
    { QN_GGML_Q8_0, QN_K_QMATMUL_Q8_0 }, { QN_GGML_Q4_0, QN_K_QMATMUL_Q4_0 }, { QN_GGML_Q4_K, QN_K_QMATMUL_Q4_K },
    { QN_GGML_Q5_K, QN_K_QMATMUL_Q5_K }, { QN_GGML_Q6_K, QN_K_QMATMUL_Q6_K },
};
#define NFMTS (sizeof fmts / sizeof fmts[0])

/* { WG, BM, BN, BK, TM, TN }: (BM / TM) * (BN / TN) == WG, TM and TN multiples of 4, BK of 8 */
static const uint32_t layouts[][6] = {
    { 256, 64, 64, 32, 4, 4 }, { 64, 32, 32, 8, 4, 4 }, { 128, 64, 32, 16, 4, 4 }, { 256, 128, 128, 16, 8, 8 },
    { 256, 64, 64, 48, 4, 4 },
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

static double worst_ratio;

struct qcase {
    uint32_t f, M, N, K, layout;
    bool acc;
    uint32_t ldx, x_off, ldy, y_off; /* 0: dense (K, 0, N, 0) */
};

/* random weights (qblocks.h qn_h_quant_matrix: per-32-group scale and offset, so block scales, K-quant sub-block
 * scales and mins all vary) quantized into raw (row-major blocks, padded to 16 bytes), dequantized into deq */
static uint8_t *make_weights(struct qn_h *h, uint32_t type, uint32_t N, uint32_t K, float **deq, size_t *bytes)
{
    uint64_t rb;
    qn_h_ok(h, qn_ggml_row_bytes(type, K, &rb), "row bytes");
    size_t padded = (rb * N + 15) & ~(size_t)15;
    uint8_t *raw = qn_h_alloc_bytes(h, padded);
    memset(raw, 0, padded);
    *deq = qn_h_alloc(h, (size_t)N * K);
    qn_h_quant_matrix(h, type, N, K, raw, *deq);
    *bytes = padded;
    return raw;
}

static void run_case(struct qn_h *h, struct qcase c)
{
    uint32_t ldx = c.ldx ? c.ldx : c.K, ldy = c.ldy ? c.ldy : c.N;
    size_t nx = (size_t)c.x_off + (size_t)c.M * ldx, ny = (size_t)c.y_off + (size_t)c.M * ldy, wbytes;
    float *deq, *x_h, *y0_h;
    uint8_t *raw = make_weights(h, fmts[c.f].type, c.N, c.K, &deq, &wbytes);
    qn_buf *w = qn_h_upload(h, "W", raw, wbytes);
    qn_buf *x = qn_h_input_f32(h, "X", nx, -1, 1, &x_h);
    qn_buf *y = qn_h_input_f32(h, "Y", ny, -2, 2, &y0_h); /* outside the output it must stay as it was */
    const uint32_t *L = layouts[c.layout];
    qn_pipe *p = qn_h_pipe(h, fmts[c.f].k, L[0], L[1], L[2], L[3], L[4], L[5]);
    qn_pc_matmul pc = { .M = c.M, .N = c.N, .K = c.K, .ldx = ldx, .ldy = ldy, .x_off = c.x_off, .y_off = c.y_off,
                        .flags = c.acc ? QN_MATMUL_ACCUMULATE : 0 };
    qn_h_run(h, p, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, qn_mm_tiles(p, c.M, c.N));
    float *got = qn_h_read(h, y, ny), *ref = qn_h_alloc(h, ny);
    memcpy(ref, y0_h, ny * sizeof *ref);
    double max_s = 0, ratio = 0;
    for (uint32_t m = 0; m < c.M; m++)
        for (uint32_t n = 0; n < c.N; n++) {
            double sum = 0, s = 0;
            const float *wr = deq + (size_t)n * c.K, *xr = x_h + c.x_off + (size_t)m * ldx;
            for (uint32_t k = 0; k < c.K; k++) {
                sum += (double)wr[k] * xr[k];
                s += fabs((double)wr[k] * xr[k]);
            }
            size_t o = c.y_off + (size_t)m * ldy + n;
            ref[o] = (float)(sum + (c.acc ? y0_h[o] : 0.0));
            max_s = fmax(max_s, s);
            double e = fabs((double)got[o] - ref[o]);
            if (isfinite(e) && s > 0) ratio = fmax(ratio, e / s);
        }
    worst_ratio = fmax(worst_ratio, ratio);
    char what[200];
    snprintf(what, sizeof what, "%s M%u N%u K%u tile %ux%ux%u/%ux%u wg %u%s%s (%s) err/S %.2g",
             qn_ggml_type_name(fmts[c.f].type), c.M, c.N, c.K, L[1], L[2], L[3], L[4], L[5], L[0],
             c.acc ? " accumulate" : "", c.ldx || c.x_off || c.ldy || c.y_off ? " strided" : "", qn_pipe_info(p)->name,
             ratio);
    qn_h_check_host(h, what, got, ref, ny, 1e-6 + 1e-6 * max_s, 0);
    qn_h_reset(h);
}

/* ---- tensor-core variants (qmatmul_cm.comp) ---- */

#define NCM 8 /* the 5 block formats, then bf16, f16, f32 weights */
static const enum qn_kernel cm_k[NCM] = { QN_K_QMATMUL_CM_Q8_0, QN_K_QMATMUL_CM_Q4_0, QN_K_QMATMUL_CM_Q4_K,
                                          QN_K_QMATMUL_CM_Q5_K, QN_K_QMATMUL_CM_Q6_K, QN_K_MATMUL_CM_BF16,
                                          QN_K_MATMUL_CM_F16, QN_K_MATMUL_CM_F32 };
/* { WG, BM, BN, BK, NBUF }: WG = 32 (BM / 32) (BN / 32); NBUF 2: double-buffered shared tiles */
static const uint32_t cm_layouts[][5] = { { 128, 64, 64, 32, 1 }, { 256, 128, 64, 32, 1 }, { 256, 64, 128, 16, 1 },
                                          { 512, 128, 128, 32, 1 }, { 128, 64, 64, 32, 2 }, { 256, 128, 64, 32, 2 } };
#define NCML (sizeof cm_layouts / sizeof cm_layouts[0])
static double cm_worst16, cm_worst_exact;

static bool has_coopmat(const struct qn_h *h)
{
    const struct qn_caps *c = qn_vk_caps(h->v);
    return !(qn_kernel_infos[QN_K_QMATMUL_CM_Q4_K].features & ~c->features) && c->subgroup_size == 32 &&
           c->subgroup_min == 32 && c->subgroup_max == 32;
}

static float f16r(float v) { return qn_f16_to_f32(qn_f32_to_f16(v)); }

static void cm_case(struct qn_h *h, struct qcase c)
{
    uint32_t ldx = c.ldx ? c.ldx : c.K, ldy = c.ldy ? c.ldy : c.N;
    size_t nx = (size_t)c.x_off + (size_t)c.M * ldx, ny = (size_t)c.y_off + (size_t)c.M * ldy, nw = (size_t)c.N * c.K;
    float *deq, *x_h, *y0_h;
    qn_buf *w;
    if (c.f < NFMTS) {
        size_t wbytes;
        uint8_t *raw = make_weights(h, fmts[c.f].type, c.N, c.K, &deq, &wbytes);
        w = qn_h_upload(h, "W", raw, wbytes);
    } else {
        w = c.f == 5 ? qn_h_input_bf16(h, "W", nw, -2, 2, &deq) : c.f == 6 ? qn_h_input_f16(h, "W", nw, -2, 2, &deq)
                                                                         : qn_h_input_f32(h, "W", nw, -2, 2, &deq);
    }
    qn_buf *x = qn_h_input_f32(h, "X", nx, -1, 1, &x_h);
    qn_buf *y = qn_h_input_f32(h, "Y", ny, -2, 2, &y0_h);
    const uint32_t *L = cm_layouts[c.layout];
    qn_pipe *p = qn_h_pipe(h, cm_k[c.f], L[0], L[1], L[2], L[3], qn_vk_caps(h->v)->coopmat_nv_n, L[4]);
    qn_pc_matmul pc = { .M = c.M, .N = c.N, .K = c.K, .ldx = ldx, .ldy = ldy, .x_off = c.x_off, .y_off = c.y_off,
                        .flags = c.acc ? QN_MATMUL_ACCUMULATE : 0 };
    qn_h_run(h, p, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, qn_mm_tiles(p, c.M, c.N));
    float *got = qn_h_read(h, y, ny), *ref = qn_h_alloc(h, ny), *ref16 = qn_h_alloc(h, ny);
    memcpy(ref, y0_h, ny * sizeof *ref);
    memcpy(ref16, y0_h, ny * sizeof *ref16);
    double max_s = 0, r16 = 0, rex = 0;
    for (uint32_t m = 0; m < c.M; m++)
        for (uint32_t n = 0; n < c.N; n++) {
            double sum = 0, sum16 = 0, s = 0;
            const float *wr = deq + (size_t)n * c.K, *xr = x_h + c.x_off + (size_t)m * ldx;
            for (uint32_t k = 0; k < c.K; k++) {
                sum += (double)wr[k] * xr[k];
                sum16 += (double)f16r(wr[k]) * f16r(xr[k]);
                s += fabs((double)wr[k] * xr[k]);
            }
            size_t o = c.y_off + (size_t)m * ldy + n;
            ref[o] = (float)(sum + (c.acc ? y0_h[o] : 0.0));
            ref16[o] = (float)(sum16 + (c.acc ? y0_h[o] : 0.0));
            max_s = fmax(max_s, s);
            if (s > 0 && isfinite(got[o])) {
                r16 = fmax(r16, fabs((double)got[o] - ref16[o]) / s);
                rex = fmax(rex, fabs((double)got[o] - ref[o]) / s);
            }
        }
    cm_worst16 = fmax(cm_worst16, r16);
    cm_worst_exact = fmax(cm_worst_exact, rex);
    const char *tn = c.f < NFMTS ? qn_ggml_type_name(fmts[c.f].type) : c.f == 5 ? "bf16" : c.f == 6 ? "f16" : "f32";
    char what[220];
    snprintf(what, sizeof what, "coopmat %s M%u N%u K%u tile %ux%ux%u%s%s%s (%s) err/S vs f16-rounded %.2g",
             tn, c.M, c.N, c.K, L[1], L[2], L[3], L[4] == 2 ? " 2 buffers" : "", c.acc ? " accumulate" : "",
             c.ldx || c.x_off || c.ldy || c.y_off ? " strided" : "", qn_pipe_info(p)->name, r16);
    qn_h_check_host(h, what, got, ref16, ny, 1e-6 + 1e-6 * max_s, 0);
    snprintf(what, sizeof what, "coopmat %s M%u N%u K%u vs exact: err/S %.2g (f16 rounding)", tn, c.M, c.N, c.K, rex);
    qn_h_check_host(h, what, got, ref, ny, 1e-6 + 1e-3 * max_s, 0);
    qn_h_reset(h);
}

static void cm_tests(struct qn_h *h)
{
    if (!has_coopmat(h)) {
        const struct qn_caps *c = qn_vk_caps(h->v);
        printf("SKIP coopmat: device '%s' has no VK_NV_cooperative_matrix with an f16 16x16x16 / 16x8x16 subgroup shape "
               "(or subgroups are not 32 wide: %u): the tensor-core variants qmatmul_cm_* / matmul_cm_* are NOT "
               "tested here\n", c->name, c->subgroup_size);
        return;
    }
    for (uint32_t f = 0; f < NCM; f++) {
        uint32_t qk = f < NFMTS ? qn_ggml_type(fmts[f].type)->blck : 8;
        static const uint32_t Ms[] = { 1, 17, 64, 100 }, Ns[] = { 1, 40, 64, 129 };
        for (size_t m = 0; m < 4; m++)
            for (size_t n = 0; n < 4; n++)
                for (uint32_t l = 0; l < NCML; l++)
                    if (l == 0 || (m + n) % 3 == l % 3)
                        cm_case(h, (struct qcase){ .f = f, .M = Ms[m], .N = Ns[n], .K = (qk == 8 ? 5 : 1) * qk,
                                                   .layout = l });
        cm_case(h, (struct qcase){ .f = f, .M = 130, .N = 257, .K = 2048, .layout = 0 });
        cm_case(h, (struct qcase){ .f = f, .M = 512, .N = 512, .K = 512, .layout = 3 });
        cm_case(h, (struct qcase){ .f = f, .M = 200, .N = 300, .K = 1024, .layout = 4 });
        cm_case(h, (struct qcase){ .f = f, .M = 33, .N = 70, .K = qk == 8 ? 264 : 8 * qk, .layout = 5, .acc = true });
        cm_case(h, (struct qcase){ .f = f, .M = 33, .N = 70, .K = qk == 8 ? 264 : 8 * qk, .layout = 1, .acc = true });
        cm_case(h, (struct qcase){ .f = f, .M = 20, .N = 40, .K = 2 * qk * (qk == 8 ? 4 : 1), .layout = 2,
                                   .acc = true, .ldx = 2 * qk * (qk == 8 ? 4 : 1) + 3, .x_off = 3, .ldy = 41,
                                   .y_off = 1 });
    }
    printf("qmatmul coopmat (fragments 16x%ux16): worst err / S = %.3g vs the f16-rounded reference, %.3g vs the exact one\n",
           qn_vk_caps(h->v)->coopmat_nv_n, cm_worst16, cm_worst_exact);
}

/* ---- to_f16.comp: matmul_cm_h's operands (any device) ---- */

static const enum qn_kernel tof16_k[NFMTS] = { QN_K_TO_F16_Q8_0, QN_K_TO_F16_Q4_0, QN_K_TO_F16_Q4_K,
                                               QN_K_TO_F16_Q5_K, QN_K_TO_F16_Q6_K };

/* got: n halves read back from out; each must be ref rounded to f16 (one f16 rounding: the kernel's f32 value
 * may differ from the C one by an f32 rounding, so within 1e-3 relative) */
static void check_halves(struct qn_h *h, const char *what, const qn_buf *out, const float *ref, size_t n)
{
    const uint16_t *hv = (const uint16_t *)qn_h_read(h, out, n / 2);
    float *got = qn_h_alloc(h, n), *want = qn_h_alloc(h, n);
    for (size_t i = 0; i < n; i++) {
        got[i] = qn_f16_to_f32(hv[i]);
        want[i] = f16r(fminf(fmaxf(ref[i], -65504.0f), 65504.0f));
    }
    qn_h_check_host(h, what, got, want, n, 1e-7, 1e-3);
}

static void tof16_tests(struct qn_h *h)
{
    static const uint32_t shapes[][2] = { { 1, 1 }, { 3, 2 }, { 37, 8 }, { 130, 8 } }; /* rows, blocks */
    for (uint32_t f = 0; f < NFMTS; f++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            uint32_t qk = qn_ggml_type(fmts[f].type)->blck, N = shapes[s][0], K = shapes[s][1] * qk;
            size_t wbytes;
            float *deq;
            uint8_t *raw = make_weights(h, fmts[f].type, N, K, &deq, &wbytes);
            qn_buf *w = qn_h_upload(h, "W", raw, wbytes), *o = qn_h_buffer(h, "O", (size_t)N * K * 2);
            qn_pc_to_f16 pc = { .rows = N, .cols = K };
            qn_h_run(h, qn_h_pipe_default(h, tof16_k[f]), QN_BINDS(QN_BIND(w), QN_BIND(o)), &pc, sizeof pc,
                     ((uint64_t)N * K / 8 + 255) / 256);
            char what[120];
            snprintf(what, sizeof what, "to_f16 %s rows %u cols %u", qn_ggml_type_name(fmts[f].type), N, K);
            check_halves(h, what, o, deq, (size_t)N * K);
            qn_h_reset(h);
        }
    /* f32 rows with a stride and an offset, a few values beyond the f16 range (clamped) */
    uint32_t rows = 70, cols = 136, ld = 141, off = 5;
    float *x_h = qn_h_alloc(h, off + (size_t)rows * ld);
    qn_h_random(h, x_h, off + (size_t)rows * ld, -1, 1);
    for (uint32_t i = 0; i < 5; i++) x_h[off + i * 997] = (i & 1 ? -1 : 1) * 1e5f * (float)(i + 1);
    qn_buf *xb = qn_h_upload(h, "X", x_h, (off + (size_t)rows * ld) * sizeof(float));
    qn_buf *o = qn_h_buffer(h, "O", (size_t)rows * cols * 2);
    qn_pc_to_f16 pc = { .rows = rows, .cols = cols, .ld = ld, .off = off };
    qn_h_run(h, qn_h_pipe_default(h, QN_K_TO_F16_F32), QN_BINDS(QN_BIND(xb), QN_BIND(o)), &pc, sizeof pc,
             ((uint64_t)rows * cols / 8 + 255) / 256);
    float *ref = qn_h_alloc(h, (size_t)rows * cols);
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t c = 0; c < cols; c++) ref[(size_t)r * cols + c] = x_h[off + (size_t)r * ld + c];
    check_halves(h, "to_f16 f32 rows 70 cols 136 ld 141 off 5 (5 values beyond +-65504)", o, ref, (size_t)rows * cols);
    qn_h_reset(h);
}

/* ---- matmul_cm_h.comp: f16 X and W, no decode in the k loop ---- */

/* { WG, BM, BN, BK, WTM, WTN, NBUF }: the model's three (forward.h qn_mm_h_spec), then other layouts for the bench */
static const uint32_t cmh_extra[][QN_MM_H_NSPEC] = {
    { 256, 128, 128, 32, 32, 64, 2 }, { 128, 128, 128, 32, 64, 64, 2 }, { 128, 64, 64, 32, 32, 32, 2 },
    { 128, 64, 64, 64, 32, 32, 2 },   { 128, 64, 128, 32, 32, 64, 2 },  { 128, 64, 64, 16, 32, 32, 2 },
    { 512, 128, 256, 32, 64, 32, 1 }, { 256, 128, 128, 32, 64, 32, 1 }, { 512, 256, 128, 32, 64, 32, 1 },
    { 256, 128, 128, 64, 32, 64, 1 }, { 384, 128, 192, 48, 64, 32, 1 }, { 128, 128, 128, 64, 64, 64, 1 },
};
#define NCMH (3 + sizeof cmh_extra / sizeof cmh_extra[0])
static const uint32_t *cmh_layout(uint32_t l) { return l < 3 ? qn_mm_h_spec[l] : cmh_extra[l - 3]; }

static qn_pipe *cmh_pipe(struct qn_h *h, uint32_t l)
{
    const uint32_t *L = cmh_layout(l);
    return qn_h_pipe(h, QN_K_MATMUL_CM_H, L[0], L[1], L[2], L[3], L[4], L[5], L[6]);
}


static void cmh_case(struct qn_h *h, uint32_t l, uint32_t M, uint32_t N, uint32_t K, bool acc)
{
    size_t nx = (size_t)M * K, ny = (size_t)M * N, nw = (size_t)N * K;
    float *w_h, *x_h, *y0_h;
    qn_buf *w = qn_h_input_f16(h, "W", nw, -2, 2, &w_h), *x = qn_h_input_f16(h, "X", nx, -1, 1, &x_h);
    qn_buf *y = qn_h_input_f32(h, "Y", ny, -2, 2, &y0_h);
    qn_pc_matmul pc = { .M = M, .N = N, .K = K, .ldx = K, .ldy = N, .flags = acc ? QN_MATMUL_ACCUMULATE : 0 };
    qn_pipe *p = cmh_pipe(h, l);
    qn_h_run(h, p, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, qn_mm_tiles(p, M, N));
    float *got = qn_h_read(h, y, ny), *ref = qn_h_alloc(h, ny);
    double max_s = 0;
    for (uint32_t m = 0; m < M; m++)
        for (uint32_t n = 0; n < N; n++) {
            double sum = 0, sa = 0;
            for (uint32_t k = 0; k < K; k++) {
                double p = (double)w_h[(size_t)n * K + k] * x_h[(size_t)m * K + k];
                sum += p;
                sa += fabs(p);
            }
            ref[(size_t)m * N + n] = (float)(sum + (acc ? y0_h[(size_t)m * N + n] : 0.0));
            max_s = fmax(max_s, sa);
        }
    const uint32_t *L = cmh_layout(l);
    char what[200];
    snprintf(what, sizeof what, "matmul_cm_h M%u N%u K%u tile %ux%ux%u sub %ux%u nbuf %u%s", M, N, K, L[1], L[2], L[3],
             L[4], L[5], L[6], acc ? " accumulate" : "");
    qn_h_check_host(h, what, got, ref, ny, 1e-6 + 1e-6 * max_s, 0);
    qn_h_reset(h);
}

static void cmh_tests(struct qn_h *h)
{
    if (!has_coopmat(h)) return; /* cm_tests printed the SKIP */
    for (uint32_t l = 0; l < NCMH; l++) {
        const uint32_t *L = cmh_layout(l);
        if (!qn_mm_h_fits(qn_vk_caps(h->v), L)) { /* (a pipeline past the shared memory lost the H100: run 118) */
            printf("skip matmul_cm_h tile %u,%u,%u sub %ux%u nbuf %u: does not fit the device\n", L[1], L[2], L[3], L[4],
                   L[5], L[6]);
            continue;
        }
        cmh_case(h, l, 1, 40, 64, false);
        cmh_case(h, l, 100, 129, 96, l % 2 == 0);
        cmh_case(h, l, 130, 257, 512, l % 2 == 1);
    }
}

/* ---- --bench: GPU time at the real prefill shapes (for a real GPU; not part of the test) ---- */

static double time_min(struct qn_h *h, const qn_pipe *p, const struct qn_bind *b, uint32_t nb, const void *pc,
                       uint32_t ps, uint64_t groups, int iters)
{
    double best = INFINITY;
    for (int i = 0; i < iters; i++) {
        double ms = qn_h_run(h, p, b, nb, pc, ps, groups);
        if (ms < best) best = ms;
    }
    return best;
}

static void bench(struct qn_h *h, int iters)
{
    /* (M tokens, N outputs, K inputs): GDN in_proj, out_proj, attention qkv, MoE dense part, lm_head slice */
    static const uint32_t shapes[][3] = {
        { 512, 12352, 2048 }, { 512, 2048, 4096 }, { 512, 9216, 2048 }, { 512, 1537, 2048 }, { 2048, 2048, 4096 },
        { 4096, 12352, 2048 },
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint32_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        double flop = 2.0 * M * N * K;
        qn_pc_matmul pc = { .M = M, .N = N, .K = K, .ldx = K, .ldy = N };
        qn_buf *x = qn_h_input_f32(h, "X", (size_t)M * K, -1, 1, NULL), *y = qn_h_output(h, "Y", (size_t)M * N);
        qn_buf *wb = qn_h_input_bf16(h, "W", (size_t)N * K, -1, 1, NULL);
        qn_pipe *p = qn_h_pipe_default(h, QN_K_MATMUL_BF16);
        uint64_t groups = (uint64_t)((M + 63) / 64) * ((N + 63) / 64);
        double ms = time_min(h, p, QN_BINDS(QN_BIND(wb), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, groups, iters);
        printf("bench %-16s M%-5u N%-6u K%-5u %8.4f ms %6.2f TFLOP/s\n", "matmul_bf16", M, N, K, ms, flop / ms * 1e-9);
        for (uint32_t l = 0; has_coopmat(h) && l < NCML; l++) {
            const uint32_t *L = cm_layouts[l];
            qn_pipe *c = qn_h_pipe(h, QN_K_MATMUL_CM_BF16, L[0], L[1], L[2], L[3], qn_vk_caps(h->v)->coopmat_nv_n, L[4]);
            ms = time_min(h, c, QN_BINDS(QN_BIND(wb), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, qn_mm_tiles(c, M, N), iters);
            printf("bench %-16s M%-5u N%-6u K%-5u %8.4f ms %6.2f TFLOP/s  tile %u,%u,%u,%u (QNEXT_CM_TILE)\n",
                   "matmul_cm_bf16", M, N, K, ms, flop / ms * 1e-9, L[1], L[2], L[3], L[4]);
        }
        qn_buf *wh = qn_h_input_f16(h, "Wh", (size_t)N * K, -1, 1, NULL);
        qn_buf *xh = qn_h_input_f16(h, "Xh", (size_t)M * K, -1, 1, NULL);
        for (uint32_t l = 0; has_coopmat(h) && l < NCMH; l++) {
            const uint32_t *L = cmh_layout(l);
            if (!qn_mm_h_fits(qn_vk_caps(h->v), L)) continue;
            qn_pipe *hp = cmh_pipe(h, l);
            ms = time_min(h, hp, QN_BINDS(QN_BIND(wh), QN_BIND(xh), QN_BIND(y)), &pc, sizeof pc, qn_mm_tiles(hp, M, N),
                          iters);
            printf("bench %-16s M%-5u N%-6u K%-5u %8.4f ms %6.2f TFLOP/s  tile %u,%u,%u sub %ux%u nbuf %u\n",
                   "matmul_cm_h", M, N, K, ms, flop / ms * 1e-9, L[1], L[2], L[3], L[4], L[5], L[6]);
        }
        for (uint32_t f = 0; f < NFMTS; f++) {
            uint64_t rb;
            qn_h_ok(h, qn_ggml_row_bytes(fmts[f].type, K, &rb), "row bytes");
            size_t bytes = ((size_t)rb * N + 15) & ~(size_t)15;
            uint8_t *raw = qn_h_alloc_bytes(h, bytes);
            float *row = qn_h_alloc(h, K);
            qn_h_random(h, row, K, -1, 1);      /* one random row, repeated (timing only) */
            qn_h_ok(h, qn_quant_row(fmts[f].type, row, raw, K), "quantize");
            for (uint32_t r = 1; r < N; r++) memcpy(raw + (size_t)r * rb, raw, rb);
            memset(raw + (size_t)N * rb, 0, bytes - (size_t)N * rb);
            qn_buf *w = NULL;
            w = qn_h_upload(h, "Wq", raw, bytes);
            qn_pipe *q = qn_h_pipe_default(h, fmts[f].k);
            ms = time_min(h, q, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, groups, iters);
            printf("bench %-16s M%-5u N%-6u K%-5u %8.4f ms %6.2f TFLOP/s\n", qn_pipe_info(q)->name, M, N, K, ms,
                   flop / ms * 1e-9);
            for (uint32_t l = 0; has_coopmat(h) && l < NCML; l++) {
                const uint32_t *L = cm_layouts[l];
                qn_pipe *c = qn_h_pipe(h, cm_k[f], L[0], L[1], L[2], L[3], qn_vk_caps(h->v)->coopmat_nv_n, L[4]);
                ms = time_min(h, c, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, qn_mm_tiles(c, M, N),
                              iters);
                printf("bench %-16s M%-5u N%-6u K%-5u %8.4f ms %6.2f TFLOP/s  tile %u,%u,%u,%u (QNEXT_CM_TILE)\n",
                       qn_pipe_info(c)->name, M, N, K, ms, flop / ms * 1e-9, L[1], L[2], L[3], L[4]);
            }
        }
        qn_h_reset(h);
    }
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "qmatmul", argc, argv);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench")) {
            bench(&h, i + 1 < argc ? atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 10 : 10);
            return qn_h_close(&h);
        }
    static const uint32_t Ms[] = { 1, 7, 65 }, Ns[] = { 1, 33, 70 }, nblocks[] = { 1, 3 };
    for (uint32_t f = 0; f < NFMTS; f++) {
        uint32_t qk = qn_ggml_type(fmts[f].type)->blck;
        /* odd shapes: every layout on small ones */
        for (size_t m = 0; m < sizeof Ms / sizeof Ms[0]; m++)
            for (size_t n = 0; n < sizeof Ns / sizeof Ns[0]; n++)
                for (size_t b = 0; b < sizeof nblocks / sizeof nblocks[0]; b++)
                    for (uint32_t l = 0; l < NLAYOUTS; l++)
                        if (l == 0 || (size_t)Ms[m] * Ns[n] * nblocks[b] * qk <= 200000)
                            run_case(&h, (struct qcase){ .f = f, .M = Ms[m], .N = Ns[n], .K = nblocks[b] * qk, .layout = l });
        /* real row lengths: hidden 2048 in (projections), 512 in (shared down), a chunk of tokens */
        run_case(&h, (struct qcase){ .f = f, .M = 100, .N = 257, .K = 2048, .layout = 0 });
        run_case(&h, (struct qcase){ .f = f, .M = 64, .N = 136, .K = 2048, .layout = 3 });
        run_case(&h, (struct qcase){ .f = f, .M = 130, .N = 96, .K = 512, .layout = 4 });
        /* accumulate; strided / offset X and Y (vector path: multiples of 4; element path: odd) */
        run_case(&h, (struct qcase){ .f = f, .M = 33, .N = 70, .K = 8 * qk, .layout = 0, .acc = true });
        run_case(&h, (struct qcase){ .f = f, .M = 20, .N = 40, .K = 2 * qk, .layout = 2, .ldx = 2 * qk + 8,
                                     .x_off = 8, .ldy = 48, .y_off = 4 });
        run_case(&h, (struct qcase){ .f = f, .M = 20, .N = 40, .K = 2 * qk, .layout = 1, .acc = true,
                                     .ldx = 2 * qk + 3, .x_off = 3, .ldy = 41, .y_off = 1 });
    }
    printf("qmatmul: worst max err / S = %.3g\n", worst_ratio);
    /* the self-check forward.c runs before it uses tensor cores (qn_cm_selfcheck), here on the f32-FMA kernel
     * with the same bindings: its exact case must pass; a kernel reading the f32 weights as bf16 must fail */
    int rc1 = qn_cm_selfcheck(h.v, qn_h_pipe_default(&h, QN_K_MATMUL_F32));
    int rc2 = qn_cm_selfcheck(h.v, qn_h_pipe_default(&h, QN_K_MATMUL_BF16));
    h.checks += 2;
    h.failures += (rc1 != 0) + (rc2 == 0);
    printf("%-4s self-check on matmul_f32 passes (rc %d)\n%-4s self-check on a wrong kernel fails (rc %d)\n",
           rc1 ? "FAIL" : "ok", rc1, rc2 ? "ok" : "FAIL", rc2);
    tof16_tests(&h);
    /* the f16 path's layouts fit the kernel (any device: a spec list of the wrong length fails only at pipeline creation,
     * which needs tensor cores), and the same for the MoE twins the path copies its layouts into */
    h.checks += 2;
    h.failures += (qn_kernel_infos[QN_K_MATMUL_CM_H].nspec != QN_MM_H_NSPEC) +
                  (qn_kernel_infos[QN_K_MOE_Q_GU_GROUPED_CM_H_Q4_K].nspec != QN_CM_MOE_NSPEC);
    printf("%-4s matmul_cm_h takes %u spec constants, the model gives %u; moe_q_gu_grouped_cm_h %u, the model %u\n",
           qn_kernel_infos[QN_K_MATMUL_CM_H].nspec == QN_MM_H_NSPEC &&
                   qn_kernel_infos[QN_K_MOE_Q_GU_GROUPED_CM_H_Q4_K].nspec == QN_CM_MOE_NSPEC
               ? "ok"
               : "FAIL",
           qn_kernel_infos[QN_K_MATMUL_CM_H].nspec, (unsigned)QN_MM_H_NSPEC,
           qn_kernel_infos[QN_K_MOE_Q_GU_GROUPED_CM_H_Q4_K].nspec, (unsigned)QN_CM_MOE_NSPEC);
    cm_tests(&h);
    cmh_tests(&h);
    return qn_h_close(&h);
}
