/* test_mv_parts.c — mv_parts.comp (a GGUF mixed-type weight's row parts, f32 or any block type, under one RMSNorm
 * in one decode dispatch) against the C reference: the zero-centred RMSNorm of x in double, then each part's rows
 * (block parts: qn_matvec_ref over their blocks, f32 parts: double sums). Random x ~ U(-1, 1) and weights (block
 * parts quantized from U(-1, 1) values), T = 1 and 2 tokens (z), xn written by workgroup 0 when asked. Layouts:
 * forward_pipes.c's two defaults and smaller ones where rows split over teams (np > 1) or teams take several rows.
 * Tolerance: |err| <= 1e-6 + 5e-7 * 3 * cols absolute (|xn| <= ~3, |w| <= 1: f32 sums over cols terms), 1e-5
 * relative, as test_mv_norm's route-stage parts.
 * `test_mv_parts --bench` (for a real GPU) times instead the 80B GDN in_proj (2048 columns: Q4_K 8192 + Q4_K 4096 +
 * f32 64 rows, and the Q6_K-qkv mix) per dispatch, back to back with barriers over 8 weight copies (more than the L2),
 * warmed (QNEXT_BENCH_WARM_MS, default 300 ms before the first timing, 50 before each later one): mv_parts for each
 * layout of QNEXT_BENCH_LAYOUTS
 * ("WG,FROWS,QROWS,FUNROLL,QUNROLL;..."; default the forward_pipes.c layout and a few others), next to the single-type
 * int8 norm matvec (matvec_norm_i8_q4_k 256,16,2,2, pre 1 and 9) on the same bytes as one Q4_K weight. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "qblocks.h"
#include "quant.h"

static struct qn_h H;

struct pspec {
    uint32_t type, rows; /* type 0: f32, else a ggml block type */
};

/* the 4-bit type code of mv_parts (its spec 6: 0 f32, 1 Q8_0, 2 Q4_0, 3 Q4_K, 4 Q5_K, 5 Q6_K; 15 no part) */
static uint32_t type_code(uint32_t t)
{
    static const uint32_t order[5] = { QN_GGML_Q8_0, QN_GGML_Q4_0, QN_GGML_Q4_K, QN_GGML_Q5_K, QN_GGML_Q6_K };
    for (uint32_t i = 0; i < 5; i++)
        if (order[i] == t) return i + 1;
    return 0;
}

static void parts_case(const struct pspec *ps, uint32_t np, uint32_t cols, uint32_t T, const uint32_t spec[5], bool xn_flag)
{
    uint32_t rows = 0, groups = 0, types = 0, r0[4] = { 0 }, rn[4] = { 0 };
    qn_buf *W[4];
    for (uint32_t i = 0; i < np; i++) rows += ps[i].rows;
    float *x = qn_h_alloc(&H, (size_t)T * cols), *nw = qn_h_alloc(&H, cols), *deq = qn_h_alloc(&H, (size_t)rows * cols);
    qn_h_random(&H, x, (size_t)T * cols, -1, 1);
    qn_h_random(&H, nw, cols, -0.5f, 0.5f);
    for (uint32_t i = 0, r = 0; i < np; r += ps[i].rows, i++) {
        r0[i] = r, rn[i] = ps[i].rows, types |= type_code(ps[i].type) << (4 * i);
        groups += (ps[i].rows + spec[ps[i].type ? 2 : 1] - 1) / spec[ps[i].type ? 2 : 1];
        float *d = deq + (size_t)r * cols;
        if (!ps[i].type) {
            qn_h_random(&H, d, (size_t)ps[i].rows * cols, -1, 1);
            W[i] = qn_h_upload(&H, "W f32 part", d, (size_t)ps[i].rows * cols * 4);
            continue;
        }
        uint64_t rb;
        qn_h_ok(&H, qn_ggml_row_bytes(ps[i].type, cols, &rb), "row bytes");
        size_t bytes = ((size_t)ps[i].rows * rb + 3) & ~(size_t)3;
        uint8_t *raw = qn_h_alloc_bytes(&H, bytes);
        memset(raw, 0, bytes);
        qn_h_quant_matrix(&H, ps[i].type, ps[i].rows, cols, raw, d);
        W[i] = qn_h_upload(&H, "W block part", raw, bytes);
    }
    for (uint32_t i = np; i < 4; i++) W[i] = W[0];
    /* reference: xr = x * rsqrt(mean(x^2) + eps) * (nw + 1), y = deq · xr */
    float *xr = qn_h_alloc(&H, (size_t)T * cols), *ref = qn_h_alloc(&H, (size_t)T * rows);
    for (uint32_t t = 0; t < T; t++) {
        double ss = 0;
        for (uint32_t c = 0; c < cols; c++) ss += (double)x[t * cols + c] * x[t * cols + c];
        double n = 1.0 / sqrt(ss / cols + 1e-6);
        for (uint32_t c = 0; c < cols; c++) xr[t * cols + c] = (float)(x[t * cols + c] * n * (nw[c] + 1.0));
        for (uint32_t r = 0; r < rows; r++) {
            double a = 0;
            for (uint32_t c = 0; c < cols; c++) a += (double)deq[(size_t)r * cols + c] * xr[t * cols + c];
            ref[(size_t)t * rows + r] = (float)a;
        }
    }
    qn_buf *xb = qn_h_upload(&H, "x", x, (size_t)T * cols * 4), *nwb = qn_h_upload(&H, "nw", nw, cols * 4);
    qn_buf *y = qn_h_output(&H, "y", (size_t)T * rows), *xn = qn_h_output(&H, "xn", (size_t)T * cols);
    uint32_t sp[7] = { spec[0], spec[1], spec[2], spec[3], spec[4], (cols + 3) / 4, types | (0xffffu << (4 * np) & 0xffffu) };
    qn_pipe *p = qn_h_pipe_spec(&H, QN_K_MV_PARTS, sp, 7);
    qn_pc_mv_parts pc = { .rows = rows, .cols = cols, .flags = xn_flag ? QN_MATVEC_WRITE_XN : 0, .eps = 1e-6f,
                          .w_add = 1.0f, .groups = groups, .nparts = np, .row0_0 = r0[0], .rows_0 = rn[0],
                          .row0_1 = r0[1], .rows_1 = rn[1], .row0_2 = r0[2], .rows_2 = rn[2], .row0_3 = r0[3],
                          .rows_3 = rn[3] };
    qn_h_ok(&H, qn_cmd_begin(H.cmd), "begin");
    qn_cmd_dispatch_nz(H.cmd, p, QN_BINDS(QN_BIND(W[0]), QN_BIND(xb), QN_BIND(y), QN_BIND(nwb), QN_BIND(xn), QN_BIND(W[1]),
                                          QN_BIND(W[2]), QN_BIND(W[3])),
                       &pc, sizeof pc, groups, T);
    qn_h_ok(&H, qn_cmd_end(H.cmd), "end");
    qn_h_ok(&H, qn_cmd_run(H.cmd), "run");
    char what[240];
    int k = snprintf(what, sizeof what, "mv_parts(%u,%u,%u,%u,%u) cols=%u T=%u parts", spec[0], spec[1], spec[2], spec[3],
                     spec[4], cols, T);
    for (uint32_t i = 0; i < np && k < (int)sizeof what; i++)
        k += snprintf(what + k, sizeof what - k, " %s:%u", ps[i].type ? qn_ggml_type(ps[i].type)->name : "f32", ps[i].rows);
    snprintf(what + k, sizeof what - k, " (%u workgroups): y", groups);
    qn_h_check(&H, what, y, ref, (size_t)T * rows, 1e-6 + 5e-7 * 3.0 * cols, 1e-5);
    if (xn_flag) {
        snprintf(strstr(what, "): y") + 3, 8, "xn");
        qn_h_check(&H, what, xn, xr, (size_t)T * cols, 2e-6, 2e-6);
    }
    qn_h_reset(&H);
}

/* ---- --bench ---------------------------------------------------------------------------------------------------- */

#define BL 8 /* weight copies (layers) cycled through: 8 x ~15 MB, more than the H100's 50 MB L2 */

/* us per dispatch of pipeline p (NB bindings, W parts at b[0] / b[5..7] replaced per layer by the caller's layers) */
static double bench_time(qn_pipe *p, struct qn_bind b[BL][8], uint32_t nb, const void *pc, uint32_t pcs, uint32_t groups)
{
    const char *er = getenv("QNEXT_BENCH_REPS"); /* passes over the copies per timed run (default 20) */
    const int reps = er && atoi(er) > 0 ? atoi(er) : 20;
    qn_h_ok(&H, qn_cmd_begin(H.cmd), "begin");
    qn_cmd_mark(H.cmd, "bench");
    for (int r = 0; r < reps; r++)
        for (int l = 0; l < BL; l++) {
            qn_cmd_dispatch_nz(H.cmd, p, b[l], nb, pc, pcs, groups, 1);
            qn_cmd_barrier(H.cmd);
        }
    qn_h_ok(&H, qn_cmd_end(H.cmd), "end");
    const char *e = getenv("QNEXT_BENCH_WARM_MS");
    static int calls; /* the GPU stays warm after the first call's warm-up: 50 ms before each later one */
    double warm = e ? atof(e) : calls++ ? 50 : 300, t = 0, best = 1e30;
    for (int i = 0; i < 2000 && t < warm; i++) {
        qn_h_ok(&H, qn_cmd_run(H.cmd), "warm-up");
        t += qn_cmd_region(H.cmd, 0, NULL);
    }
    for (int i = 0; i < (reps > 1 ? 5 : 1); i++) {
        qn_h_ok(&H, qn_cmd_run(H.cmd), "bench run");
        best = fmin(best, qn_cmd_region(H.cmd, 0, NULL) * 1e3 / (reps * BL));
    }
    return best;
}

static void bench_mix(uint32_t t0, const char *layouts)
{
    const uint32_t cols = 2048, rows[3] = { 8192, 4096, 64 }, types[3] = { t0, QN_GGML_Q4_K, 0 };
    uint64_t bytes[3], total = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t rb = (uint64_t)cols * 4;
        if (types[i]) qn_h_ok(&H, qn_ggml_row_bytes(types[i], cols, &rb), "row bytes");
        bytes[i] = (rows[i] * rb + 15) & ~(uint64_t)15, total += bytes[i];
    }
    qn_buf *W[BL][3];
    for (int l = 0; l < BL; l++)
        for (int i = 0; i < 3; i++) {
            W[l][i] = qn_h_buffer(&H, "W", bytes[i]); /* f16 scales 1.0, quants 0: timing only */
            qn_h_ok(&H, qn_buf_fill(H.v, W[l][i], 0, bytes[i], types[i] ? 0x3c003c00u : 0x3f800000u), "fill");
        }
    float *xh = qn_h_alloc(&H, cols);
    qn_h_random(&H, xh, cols, -1, 1);
    qn_buf *x = qn_h_upload(&H, "x", xh, cols * 4), *nw = qn_h_upload(&H, "nw", xh, cols * 4);
    qn_buf *y = qn_h_output(&H, "y", 12352), *xn = qn_h_output(&H, "xn", cols);
    struct qn_bind b[BL][8];
    for (int l = 0; l < BL; l++) {
        struct qn_bind bl[8] = { QN_BIND(W[l][0]), QN_BIND(x), QN_BIND(y), QN_BIND(nw), QN_BIND(xn), QN_BIND(W[l][1]),
                                 QN_BIND(W[l][2]), QN_BIND(W[l][2]) };
        memcpy(b[l], bl, sizeof bl);
    }
    uint32_t sig = type_code(t0) | type_code(QN_GGML_Q4_K) << 4 | 0u << 8 | 0xf000u;
    printf("bench in_proj %s+Q4_K+f32 12352 x 2048 (%.2f MB per dispatch, %d copies):\n", qn_ggml_type(t0)->name,
           total / 1e6, BL);
    for (const char *q = layouts; q && *q;) {
        unsigned v[5];
        if (sscanf(q, "%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4]) == 5) {
            uint32_t groups = (8192 + v[2] - 1) / v[2] + (4096 + v[2] - 1) / v[2] + (64 + v[1] - 1) / v[1];
            uint32_t sp[7] = { v[0], v[1], v[2], v[3], v[4], cols / 4, sig };
            qn_pc_mv_parts pc = { .rows = 12352, .cols = cols, .eps = 1e-6f, .w_add = 1.0f, .groups = groups, .nparts = 3,
                                  .row0_0 = 0, .rows_0 = 8192, .row0_1 = 8192, .rows_1 = 4096, .row0_2 = 12288, .rows_2 = 64 };
            double tf = bench_time(qn_h_pipe_spec(&H, QN_K_MV_PARTS, sp, 7), b, 8, &pc, sizeof pc, groups);
            printf("bench mv_parts %4u,%u,%2u,%2u,%u (%4u workgroups): %6.1f us %5.0f GB/s\n", v[0], v[1], v[2], v[3], v[4],
                   groups, tf, total / tf / 1e3);
        }
        q = strchr(q, ';');
        q = q ? q + 1 : NULL;
    }
    if (t0 == QN_GGML_Q4_K && !(qn_kernel_infos[QN_K_MATVEC_NORM_I8_Q4_K].features & ~qn_vk_caps(H.v)->features)) {
        /* the single-type int8 norm matvec on the two Q4_K parts as one weight (the f32 rows left out) */
        qn_pc_mv_norm pn = { .rows = 12288, .cols = cols, .eps = 1e-6f, .w_add = 1.0f };
        qn_pipe *p = qn_h_pipe(&H, QN_K_MATVEC_NORM_I8_Q4_K, 256, 16, 2, 2, cols / 4, 1), *p4 = qn_h_pipe(&H,
                     QN_K_MATVEC_NORM_I8_Q4_K, 256, 16, 2, 2, cols / 4, 9);
        for (int l = 0; l < BL; l++) {
            qn_buf *w = qn_h_buffer(&H, "W single", bytes[0] + bytes[1]);
            qn_h_ok(&H, qn_buf_fill(H.v, w, 0, w->size, 0x3c003c00u), "fill");
            b[l][0] = QN_BIND(w);
        }
        double t = bench_time(p, b, 5, &pn, sizeof pn, 12288 / 16), t4 = bench_time(p4, b, 5, &pn, sizeof pn, 12288 / 16);
        printf("bench matvec_norm_i8_q4_k 256,16,2,2 on 12288 rows (768 workgroups, %.2f MB): pre 1 %6.1f us %5.0f GB/s | "
               "pre 9 (x by 4) %6.1f us %5.0f GB/s\n", (bytes[0] + bytes[1]) / 1e6, t, (bytes[0] + bytes[1]) / t / 1e3, t4,
               (bytes[0] + bytes[1]) / t4 / 1e3);
    }
    qn_h_reset(&H);
}

int main(int argc, char **argv)
{
    qn_h_open(&H, "mv_parts", argc, argv);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench")) {
            const char *e = getenv("QNEXT_BENCH_LAYOUTS");
            const char *lay = e ? e : "512,8,16,8,2;256,8,8,8,2;1024,8,32,8,2;1024,8,16,8,4;256,8,16,16,4;128,8,4,8,2";
            bench_mix(QN_GGML_Q4_K, lay);
            bench_mix(QN_GGML_Q6_K, lay);
            return qn_h_close(&H);
        }
    if (qn_kernel_infos[QN_K_MV_PARTS].features & ~qn_vk_caps(H.v)->features) {
        printf("SKIP mv_parts: it needs subgroup arithmetic, which this device or QNEXT_NO_SUBGROUP lacks\n");
        qn_h_close(&H);
        return 77;
    }
    /* forward_pipes.c's layouts (512 and 256 invocations), then teams sharing rows and teams taking several */
    static const uint32_t lay[][5] = { { 512, 8, 16, 8, 2 }, { 256, 8, 16, 16, 4 }, { 128, 2, 4, 8, 2 }, { 64, 3, 5, 4, 1 } };
    /* the 80B GDN in_proj's mix at a smaller width (attn_qkv Q6_K or Q4_K, attn_gate Q4_K, ssm_ba f32) */
    const struct pspec inproj[3] = { { QN_GGML_Q6_K, 192 }, { QN_GGML_Q4_K, 128 }, { 0, 16 } };
    const struct pspec inproj4[3] = { { QN_GGML_Q4_K, 192 }, { QN_GGML_Q4_K, 128 }, { 0, 16 } };
    const struct pspec all4[4] = { { 0, 7 }, { QN_GGML_Q8_0, 33 }, { QN_GGML_Q4_0, 65 }, { QN_GGML_Q5_K, 40 } };
    const struct pspec one[1] = { { QN_GGML_Q6_K, 17 } }, two[2] = { { QN_GGML_Q8_0, 50 }, { 0, 3 } };
    for (int l = 0; l < 4; l++) {
        parts_case(inproj, 3, 512, 1, lay[l], l % 2 == 0);
        parts_case(all4, 4, 256, l % 2 ? 2 : 1, lay[l], true);
    }
    parts_case(inproj, 3, 2048, 1, lay[0], true);
    parts_case(inproj4, 3, 2048, 2, lay[1], false);
    parts_case(one, 1, 768, 1, lay[2], true);
    parts_case(two, 2, 96, 2, lay[3], true);
    return qn_h_close(&H);
}
