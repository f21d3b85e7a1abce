/* test_mv_parts.c — mv_parts.comp (a GGUF mixed-type weight's row parts, f32 or any block type, under one RMSNorm
 * in one decode dispatch) against the C reference: the zero-centred RMSNorm of x in double, then each part's rows
 * (block parts: qn_matvec_ref over their blocks, f32 parts: double sums). Random x ~ U(-1, 1) and weights (block
 * parts quantized from U(-1, 1) values), T = 1 and 2 tokens (z), xn written by workgroup 0 when asked. Layouts:
 * forward_pipes.c's two defaults and smaller ones where rows split over teams (np > 1) or teams take several rows.
 * Tolerance: |err| <= 1e-6 + 5e-7 * 3 * cols absolute (|xn| <= ~3, |w| <= 1: f32 sums over cols terms), 1e-5
 * relative, as test_mv_norm's route-stage parts.
 * The int8 variant (mv_parts_i8, QN_I8: block parts dot int8 x quantized per 32 elements of x * (nw + 1)) is checked
 * twice, as test_qmatvec_i8.c does: tight against the rows times dq(x * (nw + 1)) (x quantized here as the kernel
 * does: amax, q = rint(x * (127 / amax)), dx = amax / 127, in f32) scaled by the norm, bound 1e-6 + 1e-6 * cols (f32
 * rounding of sums whose terms are at most |dq x| (|w| + block range) <= ~5; seen: 2e-5 at 2048 columns); loose against the unquantized reference, bound
 * the tight one plus the largest row's quantization bound rsqrt(..) * sum |w| dx / 2 (printed as a ratio). f32 parts
 * are exact f32 in both (checked at the tight bound). Skipped (printed) on a device without shaderIntegerDotProduct. */
#include <math.h>
#include <stdio.h>
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

static double worst_loose; /* int8 cases: max |y - unquantized ref| / quantization bound */

/* xq[n] = x quantized as the int8 kernels do (per 32: amax, q = rint(x * (127 / amax)), dx = amax / 127); dx[n / 32] */
static void quant_x8(const float *x, uint32_t n, float *xq, float *dx)
{
    for (uint32_t b = 0; b < n / 32; b++) {
        float amax = 0;
        for (uint32_t i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
        float id = amax > 0 ? 127.0f / amax : 0.0f, d = amax / 127.0f;
        dx[b] = d;
        for (uint32_t i = 0; i < 32; i++) xq[32 * b + i] = d * rintf(x[32 * b + i] * id);
    }
}

/* int8 references for token t: tight[r] = n * (row r . dq(x (nw + 1))) for block parts (f32 parts: unquantized), and
 * the largest n * sum |w| dx / 2 over the block rows (returned) */
static double ref_i8(const struct pspec *ps, uint32_t np, uint32_t cols, const float *x, const float *nw, double n,
                     const float *deq, float *tight)
{
    float *xw = qn_h_alloc(&H, cols), *xq = qn_h_alloc(&H, cols), *dx = qn_h_alloc(&H, cols / 32);
    for (uint32_t c = 0; c < cols; c++) xw[c] = x[c] * (nw[c] + 1.0f);
    quant_x8(xw, cols, xq, dx);
    double qmax = 0;
    for (uint32_t i = 0, r = 0; i < np; i++)
        for (uint32_t k = 0; k < ps[i].rows; k++, r++) {
            const float *w = deq + (size_t)r * cols, *xs = ps[i].type ? xq : xw;
            double a = 0, q = 0;
            for (uint32_t c = 0; c < cols; c++) a += (double)w[c] * xs[c], q += fabs((double)w[c]) * dx[c / 32] * 0.5;
            tight[r] = (float)(a * n);
            if (ps[i].type && q * n > qmax) qmax = q * n;
        }
    return qmax;
}

static void parts_case(const struct pspec *ps, uint32_t np, uint32_t cols, uint32_t T, const uint32_t spec[5], bool xn_flag,
                       bool i8)
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
    float *tight = i8 ? qn_h_alloc(&H, (size_t)T * rows) : NULL;
    double qb = 0;
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
        if (i8) {
            double q = ref_i8(ps, np, cols, x + (size_t)t * cols, nw, n, deq, tight + (size_t)t * rows);
            qb = q > qb ? q : qb;
        }
    }
    qn_buf *xb = qn_h_upload(&H, "x", x, (size_t)T * cols * 4), *nwb = qn_h_upload(&H, "nw", nw, cols * 4);
    qn_buf *y = qn_h_output(&H, "y", (size_t)T * rows), *xn = qn_h_output(&H, "xn", (size_t)T * cols);
    uint32_t sp[7] = { spec[0], spec[1], spec[2], spec[3], spec[4], (cols + 3) / 4, types | (0xffffu << (4 * np) & 0xffffu) };
    qn_pipe *p = qn_h_pipe_spec(&H, i8 ? QN_K_MV_PARTS_I8 : QN_K_MV_PARTS, sp, 7);
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
    int k = snprintf(what, sizeof what, "mv_parts%s(%u,%u,%u,%u,%u) cols=%u T=%u parts", i8 ? "_i8" : "", spec[0], spec[1], spec[2],
                     spec[3], spec[4], cols, T);
    for (uint32_t i = 0; i < np && k < (int)sizeof what; i++)
        k += snprintf(what + k, sizeof what - k, " %s:%u", ps[i].type ? qn_ggml_type(ps[i].type)->name : "f32", ps[i].rows);
    snprintf(what + k, sizeof what - k, " (%u workgroups): y", groups);
    if (i8) {
        double tb = 1e-6 + 1e-6 * cols;
        qn_h_check(&H, what, y, tight, (size_t)T * rows, tb, 0);
        float *got = qn_h_read(&H, y, (size_t)T * rows);
        double worst = 0;
        for (size_t i = 0; i < (size_t)T * rows; i++) worst = fmax(worst, fabs((double)got[i] - ref[i]));
        strcat(what, " vs W.x (unquantized)");
        qn_h_check_host(&H, what, got, ref, (size_t)T * rows, tb + qb, 0);
        worst_loose = fmax(worst_loose, worst / qb);
    } else {
        qn_h_check(&H, what, y, ref, (size_t)T * rows, 1e-6 + 5e-7 * 3.0 * cols, 1e-5);
    }
    if (xn_flag) {
        snprintf(strstr(what, "): y") + 3, 8, "xn");
        qn_h_check(&H, what, xn, xr, (size_t)T * cols, 2e-6, 2e-6);
    }
    qn_h_reset(&H);
}

int main(int argc, char **argv)
{
    qn_h_open(&H, "mv_parts", argc, argv);
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
    bool i8 = !(qn_kernel_infos[QN_K_MV_PARTS_I8].features & ~qn_vk_caps(H.v)->features);
    for (int v = 0; v < (i8 ? 2 : 1); v++) {
        for (int l = 0; l < 4; l++) {
            parts_case(inproj, 3, 512, 1, lay[l], l % 2 == 0, v);
            parts_case(all4, 4, 256, l % 2 ? 2 : 1, lay[l], true, v);
        }
        parts_case(inproj, 3, 2048, 1, lay[0], true, v);
        parts_case(inproj4, 3, 2048, 2, lay[1], false, v);
        parts_case(one, 1, 768, 1, lay[2], true, v);
        parts_case(two, 2, 96, 2, lay[3], true, v);
    }
    if (i8) printf("mv_parts_i8: worst |y - W.x| / quantization bound %.3f (must be < 1)\n", worst_loose);
    else printf("SKIP (part) mv_parts_i8: the device has no shaderIntegerDotProduct\n");
    return qn_h_close(&H);
}
