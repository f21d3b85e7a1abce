/* quant.c — ggml block formats: type table, reference dequantizers, quantizers and row dot products.
 *
 * Layouts follow ggml-common.h (block_q8_0, block_q4_0, block_q5_0, block_q5_1, block_q4_K, block_q5_K,
 * block_q6_K); the value formulas are those of ggml's dequantize_row_* (see docs/gguf-qwen3next.md for
 * sources). Q8_0, Q5_0 and Q5_1 follow ggml's reference rounding exactly (what llama-quantize writes for
 * the K-quant fallbacks and the converter for q8_0). Q4_0 and the K-quants are our own: a small
 * least-squares search per sub-block, then 6-/8-bit scale quantization per super-block. They write the
 * exact format, so llama.cpp reads their output; they do not use llama.cpp's importance-weighted search,
 * so errors are a little higher than llama-quantize's. */
#include "quant.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qn_err.h"
#include "qn_num.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "quant.c reads little-endian block fields in place; big-endian hosts are not supported"
#endif

_Static_assert(sizeof(qn_block_q8_0) == 34, "q8_0 block size");
_Static_assert(sizeof(qn_block_q4_0) == 18, "q4_0 block size");
_Static_assert(sizeof(qn_block_q5_0) == 22, "q5_0 block size");
_Static_assert(sizeof(qn_block_q5_1) == 24, "q5_1 block size");
_Static_assert(sizeof(qn_block_q4_K) == 144, "q4_K block size");
_Static_assert(sizeof(qn_block_q5_K) == 176, "q5_K block size");
_Static_assert(sizeof(qn_block_q6_K) == 210, "q6_K block size");

/* (block size, bytes per block) per type id: gguf-py/gguf/constants.py GGML_QUANT_SIZES. */
static const qn_ggml_type_info type_table[] = {
    [QN_GGML_F32] = {"F32", 1, 4, 1, 1},         [QN_GGML_F16] = {"F16", 1, 2, 1, 1},
    [QN_GGML_Q4_0] = {"Q4_0", 32, 18, 1, 1},     [QN_GGML_Q4_1] = {"Q4_1", 32, 20, 0, 0},
    [QN_GGML_Q5_0] = {"Q5_0", 32, 22, 1, 1},     [QN_GGML_Q5_1] = {"Q5_1", 32, 24, 1, 1},
    [QN_GGML_Q8_0] = {"Q8_0", 32, 34, 1, 1},     [QN_GGML_Q8_1] = {"Q8_1", 32, 40, 0, 0},
    [QN_GGML_Q2_K] = {"Q2_K", 256, 84, 0, 0},    [QN_GGML_Q3_K] = {"Q3_K", 256, 110, 0, 0},
    [QN_GGML_Q4_K] = {"Q4_K", 256, 144, 1, 1},   [QN_GGML_Q5_K] = {"Q5_K", 256, 176, 1, 1},
    [QN_GGML_Q6_K] = {"Q6_K", 256, 210, 1, 1},   [QN_GGML_Q8_K] = {"Q8_K", 256, 292, 0, 0},
    [QN_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66, 0, 0}, [QN_GGML_IQ2_XS] = {"IQ2_XS", 256, 74, 0, 0},
    [QN_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98, 0, 0}, [QN_GGML_IQ1_S] = {"IQ1_S", 256, 50, 0, 0},
    [QN_GGML_IQ4_NL] = {"IQ4_NL", 32, 18, 0, 0}, [QN_GGML_IQ3_S] = {"IQ3_S", 256, 110, 0, 0},
    [QN_GGML_IQ2_S] = {"IQ2_S", 256, 82, 0, 0},  [QN_GGML_IQ4_XS] = {"IQ4_XS", 256, 136, 0, 0},
    [QN_GGML_I8] = {"I8", 1, 1, 0, 0},           [QN_GGML_I16] = {"I16", 1, 2, 0, 0},
    [QN_GGML_I32] = {"I32", 1, 4, 0, 0},         [QN_GGML_I64] = {"I64", 1, 8, 0, 0},
    [QN_GGML_F64] = {"F64", 1, 8, 0, 0},         [QN_GGML_IQ1_M] = {"IQ1_M", 256, 56, 0, 0},
    [QN_GGML_BF16] = {"BF16", 1, 2, 1, 1},       [QN_GGML_TQ1_0] = {"TQ1_0", 256, 54, 0, 0},
    [QN_GGML_TQ2_0] = {"TQ2_0", 256, 66, 0, 0},  [QN_GGML_MXFP4] = {"MXFP4", 32, 17, 0, 0},
    [QN_GGML_NVFP4] = {"NVFP4", 64, 36, 0, 0},   [QN_GGML_Q1_0] = {"Q1_0", 128, 18, 0, 0},
};

const qn_ggml_type_info *qn_ggml_type(uint32_t type)
{
    if (type >= sizeof type_table / sizeof type_table[0] || !type_table[type].name) return NULL;
    return &type_table[type];
}

const char *qn_ggml_type_name(uint32_t type)
{
    static _Thread_local char buf[24];
    const qn_ggml_type_info *ti = qn_ggml_type(type);
    if (ti) return ti->name;
    snprintf(buf, sizeof buf, "type#%u", type);
    return buf;
}

int qn_ggml_row_bytes(uint32_t type, uint64_t ne0, uint64_t *out)
{
    const qn_ggml_type_info *ti = qn_ggml_type(type);
    if (!ti) return qn_fail(QN_E_FORMAT, "unknown ggml type %u", type);
    if (ne0 % ti->blck) return qn_fail(QN_E_FORMAT, "row of %llu elements is not a multiple of the %s block (%u)",
                                       (unsigned long long)ne0, ti->name, ti->blck);
    uint64_t nb = ne0 / ti->blck;
    if (nb > UINT64_MAX / ti->bytes) return qn_fail(QN_E_FORMAT, "row size overflows");
    *out = nb * ti->bytes;
    return 0;
}

void qn_q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* ---------------------------------------------------------------- dequantizers (one block each) */

static void deq_q8_0(const qn_block_q8_0 *b, float *y)
{
    float d = qn_f16_to_f32(b->d);
    for (int i = 0; i < 32; i++) y[i] = d * b->qs[i];
}

static void deq_q4_0(const qn_block_q4_0 *b, float *y)
{
    float d = qn_f16_to_f32(b->d);
    for (int i = 0; i < 16; i++) {
        y[i] = d * ((b->qs[i] & 0x0f) - 8);
        y[i + 16] = d * ((b->qs[i] >> 4) - 8);
    }
}

/* Q5_0 (m == NULL): d * (q - 16); Q5_1: d * q + m. q = nibble | 16 * bit i of the little-endian u32 qh. */
static void deq_q5(uint16_t d16, const uint16_t *m16, const uint8_t *qh8, const uint8_t *qs, float *y)
{
    float d = qn_f16_to_f32(d16), m = m16 ? qn_f16_to_f32(*m16) : 0.0f;
    uint32_t qh = (uint32_t)qh8[0] | (uint32_t)qh8[1] << 8 | (uint32_t)qh8[2] << 16 | (uint32_t)qh8[3] << 24;
    for (int j = 0; j < 16; j++) {
        int q0 = (qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
        int q1 = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        if (m16) {
            y[j] = (float)q0 * d + m;
            y[j + 16] = (float)q1 * d + m;
        } else {
            y[j] = (float)(q0 - 16) * d;
            y[j + 16] = (float)(q1 - 16) * d;
        }
    }
}

/* Q4_K and Q5_K: element 64c + 32h + l uses sub-block 2c + h: value = d*sc*q - dmin*m. */
static void deq_q45_K(uint16_t d16, uint16_t dmin16, const uint8_t *scales, const uint8_t *qs,
                      const uint8_t *qh, float *y)
{
    float d = qn_f16_to_f32(d16), dmin = qn_f16_to_f32(dmin16);
    for (int c = 0; c < 4; c++) {
        for (int h = 0; h < 2; h++) {
            uint8_t sc, mn;
            qn_q4k_scale_min(2 * c + h, scales, &sc, &mn);
            float ds = d * sc, dm = dmin * mn;
            for (int l = 0; l < 32; l++) {
                int q = h ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 0x0f;
                if (qh && (qh[l] >> (2 * c + h) & 1)) q += 16;
                y[64 * c + 32 * h + l] = ds * q - dm;
            }
        }
    }
}

/* Q6_K: element 128h + 32k + l: low nibble from ql, 2 high bits from qh, scale index 8h + 2k + l/16. */
static void deq_q6_K(const qn_block_q6_K *b, float *y)
{
    float d = qn_f16_to_f32(b->d);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        for (int k = 0; k < 4; k++) {
            for (int l = 0; l < 32; l++) {
                int lo = (k & 1) ? ql[l + 32] : ql[l];
                lo = (k & 2) ? lo >> 4 : lo & 0x0f;
                int q = (lo | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
                y[128 * h + 32 * k + l] = d * b->scales[8 * h + 2 * k + l / 16] * q;
            }
        }
    }
}

/* Dequantize one block of `type` at src into y (type already checked). */
static void deq_block(uint32_t type, const uint8_t *src, float *y)
{
    switch (type) {
    case QN_GGML_F32: memcpy(y, src, 4); break;
    case QN_GGML_F16: { uint16_t h; memcpy(&h, src, 2); y[0] = qn_f16_to_f32(h); } break;
    case QN_GGML_BF16: { uint16_t h; memcpy(&h, src, 2); y[0] = qn_bf16_to_f32(h); } break;
    case QN_GGML_Q8_0: deq_q8_0((const qn_block_q8_0 *)src, y); break;
    case QN_GGML_Q4_0: deq_q4_0((const qn_block_q4_0 *)src, y); break;
    case QN_GGML_Q5_0: {
        const qn_block_q5_0 *b = (const qn_block_q5_0 *)src;
        deq_q5(b->d, NULL, b->qh, b->qs, y);
    } break;
    case QN_GGML_Q5_1: {
        const qn_block_q5_1 *b = (const qn_block_q5_1 *)src;
        deq_q5(b->d, &b->m, b->qh, b->qs, y);
    } break;
    case QN_GGML_Q4_K: {
        const qn_block_q4_K *b = (const qn_block_q4_K *)src;
        deq_q45_K(b->d, b->dmin, b->scales, b->qs, NULL, y);
    } break;
    case QN_GGML_Q5_K: {
        const qn_block_q5_K *b = (const qn_block_q5_K *)src;
        deq_q45_K(b->d, b->dmin, b->scales, b->qs, b->qh, y);
    } break;
    case QN_GGML_Q6_K: deq_q6_K((const qn_block_q6_K *)src, y); break;
    default: break;
    }
}

static int check_row(uint32_t type, uint64_t n, int want_quant, const qn_ggml_type_info **out)
{
    const qn_ggml_type_info *ti = qn_ggml_type(type);
    if (!ti || !(want_quant ? ti->quant : ti->dequant))
        return qn_fail(QN_E_UNSUPPORTED, "%s: type %s is not supported", want_quant ? "quantize" : "dequantize",
                       qn_ggml_type_name(type));
    if (n % ti->blck)
        return qn_fail(-EINVAL, "%s: %llu elements is not a multiple of the %s block size %u",
                       want_quant ? "quantize" : "dequantize", (unsigned long long)n, ti->name, ti->blck);
    *out = ti;
    return 0;
}

int qn_dequant_row(uint32_t type, const void *src, float *dst, uint64_t n)
{
    const qn_ggml_type_info *ti;
    int rc = check_row(type, n, 0, &ti);
    if (rc) return rc;
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n / ti->blck; i++) deq_block(type, p + i * ti->bytes, dst + i * ti->blck);
    return 0;
}

int qn_dot_row(uint32_t type, const void *row, const float *x, uint64_t n, float *out)
{
    const qn_ggml_type_info *ti;
    int rc = check_row(type, n, 0, &ti);
    if (rc) return rc;
    const uint8_t *p = row;
    float tmp[QN_QK_K];
    double acc = 0;
    for (uint64_t i = 0; i < n / ti->blck; i++) {
        deq_block(type, p + i * ti->bytes, tmp);
        for (uint32_t j = 0; j < ti->blck; j++) acc += (double)tmp[j] * x[i * ti->blck + j];
    }
    *out = (float)acc;
    return 0;
}

int qn_matvec_ref(uint32_t type, const void *w, uint64_t rows, uint64_t cols, const float *x, float *y)
{
    uint64_t rb = 0;
    int rc = qn_ggml_row_bytes(type, cols, &rb);
    for (uint64_t r = 0; !rc && r < rows; r++) rc = qn_dot_row(type, (const uint8_t *)w + r * rb, x, cols, &y[r]);
    return rc;
}

/* ---------------------------------------------------------------- quantizers */

static int nearest(float v) { return (int)lrintf(v); }
static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Fit x[0..n) ~ s*q with integer q in [qmin, qmax]; tries scales that map the largest |x| onto the end
 * levels, refines each by least squares, keeps the smallest squared error. Returns s (may be negative). */
static float fit_symmetric(const float *x, int n, int qmin, int qmax)
{
    float vmax = 0;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > fabsf(vmax)) vmax = x[i];
    if (vmax == 0) return 0;
    float best_s = vmax / qmin, best_err = INFINITY;
    for (int t = 0; t <= 16; t++) {
        float den = (t & 1 ? (float)qmax : (float)qmin) * (1.0f - 0.0125f * (float)(t >> 1));
        float s = vmax / den;
        for (int it = 0; it < 2; it++) {
            double sxq = 0, sqq = 0;
            for (int i = 0; i < n; i++) {
                int q = clampi(nearest(x[i] / s), qmin, qmax);
                sxq += (double)x[i] * q;
                sqq += (double)q * q;
            }
            if (sqq > 0 && sxq != 0) s = (float)(sxq / sqq);
        }
        double err = 0;
        for (int i = 0; i < n; i++) {
            float e = s * clampi(nearest(x[i] / s), qmin, qmax) - x[i];
            err += (double)e * e;
        }
        if (err < best_err) { best_err = (float)err; best_s = s; }
    }
    return best_s;
}

/* One candidate of fit_affine: start from (s, b), iterate rounding + least squares (b <= 0). */
static double affine_try(const float *x, int n, int nmax, float *s_io, float *b_io)
{
    float s = *s_io, b = *b_io;
    for (int it = 0; it < 3; it++) {
        double sl = 0, sll = 0, sx = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int q = clampi(nearest((x[i] - b) / s), 0, nmax);
            sl += q; sll += (double)q * q; sx += x[i]; sxl += (double)x[i] * q;
        }
        double det = n * sll - sl * sl;
        if (det <= 0) break;
        double ns = (n * sxl - sl * sx) / det, nb = (sll * sx - sl * sxl) / det;
        if (nb > 0) { nb = 0; ns = sxl / sll; }
        if (!(ns > 0)) break;
        s = (float)ns; b = (float)nb;
    }
    double err = 0;
    for (int i = 0; i < n; i++) {
        float e = s * clampi(nearest((x[i] - b) / s), 0, nmax) + b - x[i];
        err += (double)e * e;
    }
    *s_io = s; *b_io = b;
    return err;
}

/* Fit x ~ s*q - m with q in [0, nmax], s >= 0, m >= 0 (the K-quant sub-block model). */
static void fit_affine(const float *x, int n, int nmax, float *s_out, float *m_out)
{
    float lo = 0, hi = x[0];
    for (int i = 0; i < n; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i]; }
    *s_out = 0; *m_out = -lo;
    if (hi <= lo) return;
    double best = INFINITY;
    for (int t = -4; t <= 8; t++) {
        float s = (hi - lo) / ((float)nmax + 0.125f * (float)t), b = lo;
        double err = affine_try(x, n, nmax, &s, &b);
        if (err < best) { best = err; *s_out = s; *m_out = -b; }
    }
}

/* trunc(v) for the level casts below; 0 where the conversion is undefined in C (|v| huge, inf, NaN: only
 * when 1/d overflows for a subnormal d), which is what x86's cvttss2si + truncation gives ggml there. */
static int trunc_level(float v) { return isfinite(v) && fabsf(v) < 128.0f ? (int)v : 0; }

/* ggml's reference Q8_0 rounding (quantize_row_q8_0_ref; gguf-py's Q8_0 computes the same): d = amax / 127,
 * q = roundf(x * (1/d)) (halves away from zero) with the unrounded d, then d stored as f16. */
static void quant_q8_0(const float *x, qn_block_q8_0 *b)
{
    float amax = 0;
    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = qn_f32_to_f16(d);
    for (int i = 0; i < 32; i++) b->qs[i] = (int8_t)trunc_level(roundf(x[i] * id));
}

static void quant_q4_0(const float *x, qn_block_q4_0 *b)
{
    b->d = qn_f32_to_f16(fit_symmetric(x, 32, -8, 7));
    float d = qn_f16_to_f32(b->d);
    for (int i = 0; i < 16; i++) {
        int q0 = d ? clampi(nearest(x[i] / d), -8, 7) + 8 : 8;
        int q1 = d ? clampi(nearest(x[i + 16] / d), -8, 7) + 8 : 8;
        b->qs[i] = (uint8_t)(q0 | (q1 << 4));
    }
}

/* Packs 32 five-bit levels: low nibbles into qs (element j and j + 16 share byte j), 5th bits into qh. */
static void pack_q5(const uint8_t *L, uint8_t *qh8, uint8_t *qs)
{
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((L[j] & 0x0f) | (L[j + 16] & 0x0f) << 4);
        qh |= (uint32_t)(L[j] >> 4 & 1) << j | (uint32_t)(L[j + 16] >> 4 & 1) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh8[k] = (uint8_t)(qh >> (8 * k));
}

/* ggml's reference Q5_0 rounding: the value of largest magnitude (first one on ties) maps to level 0, so
 * d = max / -16 (sign kept); level = min(31, trunc(x * (1/d) + 16.5)), computed in float with the unrounded
 * d; then d is stored as f16. Rounds halves up and can reach 32 on the side opposite the max (clamped). */
static void quant_q5_0(const float *x, qn_block_q5_0 *b)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < 32; i++)
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    float d = max / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t L[32];
    for (int i = 0; i < 32; i++) {
        int q = trunc_level(x[i] * id + 16.5f);
        L[i] = (uint8_t)(q < 31 ? q : 31);
    }
    b->d = qn_f32_to_f16(d);
    pack_q5(L, b->qh, b->qs);
}

/* ggml's reference Q5_1 rounding: m = min, d = (max - min) / 31, level = trunc((x - min) * (1/d) + 0.5)
 * in float with the unrounded d and min; d and m stored as f16. */
static void quant_q5_1(const float *x, qn_block_q5_1 *b)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int i = 0; i < 32; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    float d = (hi - lo) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t L[32];
    for (int i = 0; i < 32; i++) L[i] = (uint8_t)trunc_level((x[i] - lo) * id + 0.5f);
    b->d = qn_f32_to_f16(d);
    b->m = qn_f32_to_f16(lo);
    pack_q5(L, b->qh, b->qs);
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): fills d, dmin, scales[12] and the levels L[256]. */
static void quant_k_affine(const float *x, int nmax, uint16_t *d16, uint16_t *dmin16, uint8_t *scales, uint8_t *L)
{
    float s[8], m[8], smax = 0, mmax = 0;
    for (int j = 0; j < 8; j++) {
        fit_affine(x + 32 * j, 32, nmax, &s[j], &m[j]);
        smax = fmaxf(smax, s[j]);
        mmax = fmaxf(mmax, m[j]);
    }
    *d16 = qn_f32_to_f16(smax / 63.0f);
    *dmin16 = qn_f32_to_f16(mmax / 63.0f);
    float d = qn_f16_to_f32(*d16), dmin = qn_f16_to_f32(*dmin16);
    memset(scales, 0, 12);
    for (int j = 0; j < 8; j++) {
        int ls = d > 0 ? clampi(nearest(s[j] / d), 0, 63) : 0;
        int lm = dmin > 0 ? clampi(nearest(m[j] / dmin), 0, 63) : 0;
        if (j < 4) {
            scales[j] = (uint8_t)ls;
            scales[j + 4] = (uint8_t)lm;
        } else {
            scales[j + 4] = (uint8_t)((ls & 0x0f) | ((lm & 0x0f) << 4));
            scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        qn_q4k_scale_min(j, scales, &sc, &mn);
        float ds = d * sc, dm = dmin * mn;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)(ds > 0 ? clampi(nearest((x[32 * j + i] + dm) / ds), 0, nmax) : 0);
    }
}

static void quant_q4_K(const float *x, qn_block_q4_K *b)
{
    uint8_t L[256];
    quant_k_affine(x, 15, &b->d, &b->dmin, b->scales, L);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) b->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

static void quant_q5_K(const float *x, qn_block_q5_K *b)
{
    uint8_t L[256];
    quant_k_affine(x, 31, &b->d, &b->dmin, b->scales, L);
    memset(b->qh, 0, sizeof b->qh);
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            int q0 = L[64 * c + l], q1 = L[64 * c + 32 + l];
            b->qs[32 * c + l] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            b->qh[l] |= (uint8_t)(((q0 >> 4) << (2 * c)) | ((q1 >> 4) << (2 * c + 1)));
        }
    }
}

static void quant_q6_K(const float *x, qn_block_q6_K *b)
{
    float s[16], amax = 0;
    for (int j = 0; j < 16; j++) {
        s[j] = fit_symmetric(x + 16 * j, 16, -32, 31);
        amax = fmaxf(amax, fabsf(s[j]));
    }
    b->d = qn_f32_to_f16(amax / 127.0f);
    float d = qn_f16_to_f32(b->d);
    uint8_t L[256];
    for (int j = 0; j < 16; j++) {
        b->scales[j] = (int8_t)(d > 0 ? clampi(nearest(s[j] / d), -127, 127) : 0);
        float ds = d * b->scales[j];
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (uint8_t)((ds != 0 ? clampi(nearest(x[16 * j + i] / ds), -32, 31) : 0) + 32);
    }
    for (int h = 0; h < 2; h++) {
        uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        const uint8_t *q = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((q[l] & 0x0f) | ((q[l + 64] & 0x0f) << 4));
            ql[l + 32] = (uint8_t)((q[l + 32] & 0x0f) | ((q[l + 96] & 0x0f) << 4));
            qh[l] = (uint8_t)((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) | ((q[l + 96] >> 4) << 6));
        }
    }
}

int qn_quant_row(uint32_t type, const float *src, void *dst, uint64_t n)
{
    const qn_ggml_type_info *ti;
    int rc = check_row(type, n, 1, &ti);
    if (rc) return rc;
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(src[i])) return qn_fail(-EINVAL, "quantize %s: element %llu is not finite", ti->name,
                                              (unsigned long long)i);
    uint8_t *p = dst;
    for (uint64_t i = 0; i < n / ti->blck; i++) {
        const float *x = src + i * ti->blck;
        void *b = p + i * ti->bytes;
        switch (type) {
        case QN_GGML_F32: memcpy(b, x, 4); break;
        case QN_GGML_F16: { uint16_t h = qn_f32_to_f16(x[0]); memcpy(b, &h, 2); } break;
        case QN_GGML_BF16: { uint16_t h = qn_f32_to_bf16(x[0]); memcpy(b, &h, 2); } break;
        case QN_GGML_Q8_0: quant_q8_0(x, b); break;
        case QN_GGML_Q4_0: quant_q4_0(x, b); break;
        case QN_GGML_Q5_0: quant_q5_0(x, b); break;
        case QN_GGML_Q5_1: quant_q5_1(x, b); break;
        case QN_GGML_Q4_K: quant_q4_K(x, b); break;
        case QN_GGML_Q5_K: quant_q5_K(x, b); break;
        case QN_GGML_Q6_K: quant_q6_K(x, b); break;
        default: break;
        }
    }
    return 0;
}
