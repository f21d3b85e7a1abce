/* test_qmatmul.c — quantized prefill matmul Y[M, N] = X[M, K] · W[N, K]^T (qmatmul_q8_0 / q4_0 / q4_k /
 * q5_k / q6_k: weight tiles decoded from ggml blocks in shared memory, f32 FMAs) against a double-precision
 * C reference on the dequantized weights (loader/quant.h): odd and real shapes, several tile layouts,
 * strided/offset X and Y (element-load paths), the accumulate flag.
 *
 * `test_qmatmul --bench` (a real GPU; not part of the test): GPU time and TFLOP/s of every format at the
 * Qwen3-Next-80B prefill shapes (512 tokens), next to the bf16 matmul (matmul.comp) on the same shape.
 *
 * Tolerance: the GPU decodes the same f32 weight values as the reference (up to one fused multiply-add
 * rounding for the K-quants) and sums the K products of each output in ascending order in f32, so the error
 * scales with S = sum_k |w_k x_k| per output; the bound is 1e-6 + 1e-6 * S. Measured max |err| / S on
 * lavapipe: 1.7e-7 .. 2.9e-7 at every K from 32 to 2048 (printed at the end as "worst"). One quant level
 * off in one weight moves an output by ~|x| * block range / 15 (4-bit) to / 127 (Q8_0): ~8e-3 at K 2048,
 * where S ~ 770 gives a bound of 7.7e-4. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
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

/* random weights with per-32-group scale (0.05 .. 2) and offset (-0.5 .. 0.5), so block scales, K-quant
 * sub-block scales and mins all vary; quantized into raw (row-major blocks), dequantized into deq */
static uint8_t *make_weights(struct qn_h *h, uint32_t type, uint32_t N, uint32_t K, float **deq, size_t *bytes)
{
    uint64_t rb;
    qn_h_ok(h, qn_ggml_row_bytes(type, K, &rb), "row bytes");
    size_t n = (size_t)N * K, wbytes = rb * N, padded = (wbytes + 15) & ~(size_t)15;
    float *w = qn_h_alloc(h, n), g[2];
    qn_h_random(h, w, n, -1, 1);
    for (size_t i = 0; i < n; i += 32) {
        qn_h_random(h, g, 2, 0, 1);
        float sc = 0.05f + 1.95f * g[0], off = g[1] - 0.5f;
        for (size_t j = i; j < i + 32; j++) w[j] = sc * (w[j] + off);
    }
    uint8_t *raw = qn_h_alloc_bytes(h, padded);
    memset(raw, 0, padded);
    *deq = qn_h_alloc(h, n);
    for (uint32_t r = 0; r < N; r++) {
        qn_h_ok(h, qn_quant_row(type, w + (size_t)r * K, raw + r * rb, K), "quantize");
        qn_h_ok(h, qn_dequant_row(type, raw + r * rb, *deq + (size_t)r * K, K), "dequantize");
    }
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
    uint64_t groups = (uint64_t)((c.M + L[1] - 1) / L[1]) * ((c.N + L[2] - 1) / L[2]);
    qn_h_run(h, p, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, groups);
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
    return qn_h_close(&h);
}
