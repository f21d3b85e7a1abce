/* test_quant.c — ggml block formats: dequantizers against hand-built blocks (exact values), Q5_0/Q5_1/Q8_0
 * quantizers against blocks derived by hand from ggml's reference rounding (exact bytes), quantize ->
 * dequantize error bounds on random rows with odd block counts, dot products, and bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "qn_num.h"
#include "qn_rng.h"
#include "quant.h"
#include "../testutil.h"

static void check_exact(const char *what, const float *got, const float *want, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (got[i] != want[i] && bad++ < 3) printf("  %s[%d] = %.9g, want %.9g\n", what, i, got[i], want[i]);
    CHECK(!bad, "%s: %d of %d values differ", what, bad, n);
}

/* ---------------------------------------------------------------- hand-built blocks */

static void test_f16_bf16(void)
{
    uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001}, b[3] = {0x3f80, 0xc0a0, 0x0000};
    float want_h[4] = {1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f}, want_b[3] = {1.0f, -5.0f, 0.0f}, y[4];
    CHECK(!qn_dequant_row(QN_GGML_F16, h, y, 4), "f16");
    check_exact("f16", y, want_h, 4);
    CHECK(!qn_dequant_row(QN_GGML_BF16, b, y, 3), "bf16");
    check_exact("bf16", y, want_b, 3);
}

static void test_q8_0_q4_0(void)
{
    qn_block_q8_0 a = {.d = 0x3800};           /* 0.5 */
    qn_block_q4_0 b = {.d = 0x3400};           /* 0.25 */
    float y[32], want[32];
    for (int i = 0; i < 32; i++) { a.qs[i] = (int8_t)(i * 8 - 128); want[i] = 0.5f * (float)(i * 8 - 128); }
    CHECK(!qn_dequant_row(QN_GGML_Q8_0, &a, y, 32), "q8_0");
    check_exact("q8_0", y, want, 32);
    /* Q4_0: byte j holds element j (low nibble) and element j + 16 (high nibble), value d * (q - 8) */
    for (int j = 0; j < 16; j++) {
        int lo = (j * 5 + 1) & 15, hi = 15 - j;
        b.qs[j] = (uint8_t)(lo | hi << 4);
        want[j] = 0.25f * (float)(lo - 8);
        want[j + 16] = 0.25f * (float)(hi - 8);
    }
    CHECK(!qn_dequant_row(QN_GGML_Q4_0, &b, y, 32), "q4_0");
    check_exact("q4_0", y, want, 32);
}

/* Pack 8 six-bit scales and mins the way ggml-common.h's block_q4_K documents them (get_scale_min_k4). */
static void pack_scales(const int *sc, const int *mn, uint8_t *s)
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
}

static void test_q4_K_q5_K(void)
{
    int sc[8], mn[8];
    for (int j = 0; j < 8; j++) { sc[j] = 10 + 7 * j; mn[j] = 63 - 5 * j; }
    qn_block_q4_K a = {.d = 0x3c00, .dmin = 0x3800};   /* 1.0, 0.5 */
    qn_block_q5_K b = {.d = 0x3400, .dmin = 0x2c00};   /* 0.25, 0.0625 */
    pack_scales(sc, mn, a.scales);
    pack_scales(sc, mn, b.scales);
    float y[256], wa[256], wb[256];
    /* element e = 64c + 32h + l: q from byte 32c + l (low nibble for h = 0, high for h = 1); Q5_K adds
     * 16 * bit (2c + h) of qh[l]; sub-block 2c + h: value = d * sc * q - dmin * m */
    for (int e = 0; e < 256; e++) {
        int c = e / 64, h = (e / 32) & 1, l = e & 31, j = 2 * c + h;
        int q4 = (e * 7 + 3) & 15, q5 = (e * 11 + 5) & 31;
        a.qs[32 * c + l] |= (uint8_t)(q4 << (4 * h));
        b.qs[32 * c + l] |= (uint8_t)((q5 & 15) << (4 * h));
        b.qh[l] |= (uint8_t)((q5 >> 4) << j);
        wa[e] = 1.0f * (float)sc[j] * (float)q4 - 0.5f * (float)mn[j];
        wb[e] = 0.25f * (float)sc[j] * (float)q5 - 0.0625f * (float)mn[j];
    }
    CHECK(!qn_dequant_row(QN_GGML_Q4_K, &a, y, 256), "q4_K");
    check_exact("q4_K", y, wa, 256);
    CHECK(!qn_dequant_row(QN_GGML_Q5_K, &b, y, 256), "q5_K");
    check_exact("q5_K", y, wb, 256);
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        qn_q4k_scale_min(j, a.scales, &s, &m);
        CHECK(s == sc[j] && m == mn[j], "scale_min(%d) = %u/%u, want %d/%d", j, s, m, sc[j], mn[j]);
    }
}

static void test_q6_K(void)
{
    qn_block_q6_K b = {.d = 0x3000};   /* 0.125 */
    float y[256], want[256];
    for (int j = 0; j < 16; j++) b.scales[j] = (int8_t)(j * 9 - 70);
    /* element e = 128h + 32k + l: low 4 bits in ql[64h + l + 32(k&1)] (high nibble when k >= 2), high 2 bits
     * at bits 2k of qh[32h + l]; scale 8h + 2k + l/16; value d * scale * (q - 32) */
    for (int e = 0; e < 256; e++) {
        int h = e / 128, k = (e / 32) & 3, l = e & 31, q = (e * 13 + 5) & 63;
        b.ql[64 * h + l + 32 * (k & 1)] |= (uint8_t)((q & 15) << (k >= 2 ? 4 : 0));
        b.qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * k));
        want[e] = 0.125f * (float)b.scales[8 * h + 2 * k + l / 16] * (float)(q - 32);
    }
    CHECK(!qn_dequant_row(QN_GGML_Q6_K, &b, y, 256), "q6_K");
    check_exact("q6_K", y, want, 256);
}

/* Q5_0 / Q5_1 blocks written out byte by byte (derived by hand from ggml-common.h's layout and
 * ggml-quants.c's quantize_row_q5_{0,1}_ref rounding; docs/gguf-qwen3next.md §2):
 * Q5_0 from x = {2, -2, 1/16, -1/16, 3/16, 1, 0 ...}: max (largest |x|, sign kept) = 2, d = max / -16 =
 * -0.125 (f16 0xb000), level = trunc(x * -8 + 16.5) capped at 31: {0, 32 -> 31, 16, 17, 15, 8, 16 ...}
 * (halves go up: -0.5 -> 16, +0.5 -> 17, -1.5 -> 15; round-to-even would give 16, 16, 14). Low nibbles:
 * qs[j] = L[j] & 15 | (L[j + 16] & 15) << 4; 5th bits: bit i of qh = L[i] >> 4 -> 0xffffffce.
 * Q5_1 from x = {-1, 2.875, -15/16, -13/16, -11/16, 1, 0 ...}: m = min = -1 (0xbc00), d = 3.875 / 31 =
 * 0.125 (0x3000), level = trunc((x + 1) * 8 + 0.5): {0, 31, 1, 2, 3, 16, 8 ...} (1.5 -> 2, 2.5 -> 3);
 * qh = bits 1 and 5 = 0x22. */
static const uint8_t q5_0_bytes[22] = {0x00, 0xb0, 0xce, 0xff, 0xff, 0xff, 0x00, 0x0f, 0x00, 0x01, 0x0f, 0x08};
static const uint8_t q5_1_bytes[24] = {0x00, 0x30, 0x00, 0xbc, 0x22, 0x00, 0x00, 0x00, 0x80, 0x8f, 0x81, 0x82,
                                       0x83, 0x80, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};

static void check_bytes(const char *what, const uint8_t *got, const uint8_t *want, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (got[i] != want[i] && bad++ < 4) printf("  %s byte %d = 0x%02x, want 0x%02x\n", what, i, got[i], want[i]);
    CHECK(!bad, "%s: %d of %d bytes differ", what, bad, n);
}

static void test_ggml_rounding(void)
{
    float x0[32] = {2.0f, -2.0f, 0.0625f, -0.0625f, 0.1875f, 1.0f}, x1[32] = {-1.0f, 2.875f, -0.9375f, -0.8125f, -0.6875f, 1.0f};
    float w0[32] = {2.0f, -1.875f, 0.0f, -0.125f, 0.125f, 1.0f}, w1[32] = {-1.0f, 2.875f, -0.875f, -0.75f, -0.625f, 1.0f};
    uint8_t b[24];
    float y[32];
    for (int i = 6; i < 32; i++) { x1[i] = 0.0f; w1[i] = 0.0f; }   /* level 8: 8 * 0.125 - 1 */
    CHECK(!qn_quant_row(QN_GGML_Q5_0, x0, b, 32), "q5_0 quant: %s", qn_errmsg());
    check_bytes("q5_0 block", b, q5_0_bytes, 22);
    CHECK(!qn_dequant_row(QN_GGML_Q5_0, q5_0_bytes, y, 32), "q5_0 dequant");
    check_exact("q5_0", y, w0, 32);
    CHECK(!qn_quant_row(QN_GGML_Q5_1, x1, b, 32), "q5_1 quant: %s", qn_errmsg());
    check_bytes("q5_1 block", b, q5_1_bytes, 24);
    CHECK(!qn_dequant_row(QN_GGML_Q5_1, q5_1_bytes, y, 32), "q5_1 dequant");
    check_exact("q5_1", y, w1, 32);
    /* Every level once: x = 0.125 * (L - 16) with L = 7i mod 32, the -2 (L = 0) first -> d = +0.125 and the
     * levels come back unchanged; the dequantizer reads every nibble and every qh bit. */
    float x[64], want[64];
    uint8_t two[44];
    for (int i = 0; i < 64; i++) {
        int L = (7 * i) % 32;
        x[i] = (i < 32 ? 0.125f : 0.25f) * (float)(L - 16);
        want[i] = x[i];
    }
    float z[64];
    CHECK(!qn_quant_row(QN_GGML_Q5_0, x, two, 64), "q5_0 levels");
    CHECK(!qn_dequant_row(QN_GGML_Q5_0, two, z, 64), "q5_0 two blocks");
    check_exact("q5_0 every level", z, want, 64);
    for (int i = 0; i < 32; i++) want[i] = x[i] = 0.5f + 0.25f * (float)((11 * i) % 32);   /* min 0.5, d 0.25 */
    CHECK(!qn_quant_row(QN_GGML_Q5_1, x, two, 32) && !qn_dequant_row(QN_GGML_Q5_1, two, z, 32), "q5_1 levels");
    check_exact("q5_1 every level", z, want, 32);
    /* Q8_0 (quantize_row_q8_0_ref): d = amax / 127 = 7.9375 / 127 = 1/16 (f16 0x2c00), q = roundf(x * 16), halves
     * away from zero: 0.5 -> 1, -0.5 -> -1, 1.5 -> 2, 2.5 -> 3 (round-to-even: 0, 0, 2, 2) */
    float x8[32] = {7.9375f, 0.03125f, -0.03125f, 0.09375f, 0.15625f, -7.9375f};
    qn_block_q8_0 b8;
    CHECK(!qn_quant_row(QN_GGML_Q8_0, x8, &b8, 32), "q8_0 quant");
    static const int8_t q8[6] = {127, 1, -1, 2, 3, -127};
    int bad8 = b8.d != 0x2c00;
    for (int i = 0; i < 32; i++) bad8 += b8.qs[i] != (i < 6 ? q8[i] : 0);
    CHECK(!bad8, "q8_0 block: d 0x%04x, qs %d %d %d %d %d %d", b8.d, b8.qs[0], b8.qs[1], b8.qs[2], b8.qs[3], b8.qs[4],
          b8.qs[5]);
}

/* ---------------------------------------------------------------- quantize -> dequantize */

typedef struct qcase { uint32_t type; int n; double max_rel_rms[2]; } qcase;

static double rel_rms(const float *x, const float *y, int n)
{
    double e = 0, s = 0;
    for (int i = 0; i < n; i++) { e += (double)(x[i] - y[i]) * (x[i] - y[i]); s += (double)x[i] * x[i]; }
    return sqrt(e / s);
}

/* Rows with odd block counts: [0] Gaussian, [1] Gaussian plus a 7.5-sigma outlier every 97 values.
 * Bounds are ~1.25x what these quantizers reach (seeded data; for reference, 4-bit affine min/max rounding
 * of a 32-value Gaussian sub-block gives ~0.08, 6-bit symmetric of 16 values ~0.02). */
static void test_roundtrip(void)
{
    static const qcase cases[] = {
        {QN_GGML_F32, 33, {0.0, 0.0}},           {QN_GGML_F16, 35, {4e-4, 4e-4}},
        {QN_GGML_BF16, 37, {2.5e-3, 2.5e-3}},    {QN_GGML_Q8_0, 32 * 57, {0.007, 0.011}},
        {QN_GGML_Q4_0, 32 * 57, {0.10, 0.17}},   {QN_GGML_Q4_K, 256 * 7, {0.085, 0.115}},
        {QN_GGML_Q5_0, 32 * 57, {0.054, 0.085}}, {QN_GGML_Q5_1, 32 * 57, {0.047, 0.059}},
        {QN_GGML_Q5_K, 256 * 7, {0.044, 0.058}}, {QN_GGML_Q6_K, 256 * 7, {0.021, 0.031}},
    };
    qn_rng r0, r5;   /* Q5_0/Q5_1 (added later) draw from their own stream: the others keep their data */
    qn_rng_seed(&r0, 1234);
    qn_rng_seed(&r5, 5678);
    for (int dist = 0; dist < 2; dist++) {
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const qcase *q = &cases[c];
            qn_rng *rp = q->type == QN_GGML_Q5_0 || q->type == QN_GGML_Q5_1 ? &r5 : &r0;
            const qn_ggml_type_info *ti = qn_ggml_type(q->type);
            uint64_t rb;
            CHECK(!qn_ggml_row_bytes(q->type, (uint64_t)q->n, &rb), "row bytes %s", ti->name);
            float *x = malloc((size_t)q->n * 4), *y = malloc((size_t)q->n * 4), *v = malloc((size_t)q->n * 4);
            uint8_t *blk = malloc((size_t)rb);
            for (int i = 0; i < q->n; i++) x[i] = 0.02f * qn_rng_normal(rp) + (dist && i % 97 == 5 ? 0.15f : 0.0f);
            for (int i = 0; i < q->n; i++) v[i] = qn_rng_range(rp, -1, 1);
            CHECK(!qn_quant_row(q->type, x, blk, (uint64_t)q->n), "quant %s: %s", ti->name, qn_errmsg());
            CHECK(!qn_dequant_row(q->type, blk, y, (uint64_t)q->n), "dequant %s", ti->name);
            double e = rel_rms(x, y, q->n), bound = q->max_rel_rms[dist];
            printf("%-5s n=%-5d %-9s rel rms error %.5f (bound %.4f)\n", ti->name, q->n, dist ? "outliers" : "gaussian",
                   e, bound);
            CHECK(e <= bound, "%s: relative rms error %.5f > %.4f", ti->name, e, bound);
            /* the dot product helper equals the dot of the dequantized row */
            double want = 0;
            for (int i = 0; i < q->n; i++) want += (double)y[i] * v[i];
            float got;
            CHECK(!qn_dot_row(q->type, blk, v, (uint64_t)q->n, &got), "dot %s", ti->name);
            CHECK(fabs(got - want) <= 1e-5 * (fabs(want) + 1e-3), "dot %s: %.8g vs %.8g", ti->name, got, want);
            free(x); free(y); free(v); free(blk);
        }
    }
}

/* Awkward inputs: all zero, constant positive, tiny (f16-subnormal scales), huge outlier, all negative. */
static void test_edge_inputs(void)
{
    static const uint32_t types[] = {QN_GGML_Q8_0, QN_GGML_Q4_0, QN_GGML_Q5_0, QN_GGML_Q5_1, QN_GGML_Q4_K, QN_GGML_Q5_K,
                                     QN_GGML_Q6_K};
    float x[256], y[256];
    uint8_t blk[256 * 4];
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const char *nm = qn_ggml_type_name(types[t]);
        for (int kind = 0; kind < 5; kind++) {
            for (int i = 0; i < 256; i++) {
                x[i] = kind == 0 ? 0.0f : kind == 1 ? 0.75f : kind == 2 ? 1e-7f * (float)((i % 7) - 3)
                     : kind == 3 ? (i == 77 ? 1000.0f : 0.01f * (float)(i % 5)) : -0.5f - 0.001f * (float)i;
            }
            CHECK(!qn_quant_row(types[t], x, blk, 256), "%s kind %d", nm, kind);
            CHECK(!qn_dequant_row(types[t], blk, y, 256), "%s kind %d", nm, kind);
            double amax = 0, emax = 0;
            for (int i = 0; i < 256; i++) {
                CHECK(isfinite(y[i]), "%s kind %d: y[%d] not finite", nm, kind, i);
                amax = fmax(amax, fabs(x[i]));
                emax = fmax(emax, fabs(x[i] - y[i]));
            }
            if (kind == 0) CHECK(emax == 0, "%s: zeros do not stay zero (%g)", nm, emax);
            /* Q5_1 (ggml's rounding): d = range / 31 underflows f16 to 0 here, so every value becomes m = min */
            else if (kind == 2) CHECK(emax <= (types[t] == QN_GGML_Q5_1 ? 2 : 1) * amax, "%s: tiny inputs blow up (%g for "
                                      "|x| <= %g)", nm, emax, amax);
            else if (kind != 3) CHECK(emax <= 0.25 * amax, "%s kind %d: max error %g for |x| <= %g", nm, kind, emax, amax);
        }
    }
}

static void test_errors(void)
{
    uint64_t rb;
    float x[256] = {0}, y[256];
    uint8_t blk[512];
    CHECK(qn_ggml_row_bytes(QN_GGML_Q4_K, 100, &rb) == QN_E_FORMAT, "Q4_K row of 100 accepted");
    CHECK(qn_ggml_row_bytes(77, 32, &rb) == QN_E_FORMAT, "unknown type accepted");
    CHECK(qn_ggml_row_bytes(QN_GGML_Q6_K, 512, &rb) == 0 && rb == 420, "Q6_K row bytes");
    CHECK(qn_ggml_type(31) == NULL && qn_ggml_type(QN_GGML_Q2_K) != NULL, "type table");
    CHECK(!strcmp(qn_ggml_type_name(99), "type#99"), "type name of an unknown id");
    x[3] = NAN;
    CHECK(qn_quant_row(QN_GGML_Q8_0, x, blk, 32) == -EINVAL, "NaN input accepted");
    x[3] = INFINITY;
    CHECK(qn_quant_row(QN_GGML_F16, x, blk, 8) == -EINVAL, "inf input accepted");
    CHECK(qn_quant_row(QN_GGML_Q8_0, y, blk, 33) == -EINVAL, "partial block accepted");
    CHECK(qn_dequant_row(QN_GGML_Q2_K, blk, y, 256) == QN_E_UNSUPPORTED, "Q2_K dequant claimed");
    CHECK(qn_quant_row(QN_GGML_I32, y, blk, 4) == QN_E_UNSUPPORTED, "I32 quant claimed");
}

int main(void)
{
    qn_test_crash_report();
    test_f16_bf16();
    test_q8_0_q4_0();
    test_q4_K_q5_K();
    test_q6_K();
    test_ggml_rounding();
    test_roundtrip();
    test_edge_inputs();
    test_errors();
    printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
