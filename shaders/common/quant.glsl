// quant.glsl — ggml block formats (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) decoded for dot products with f32 x.
// Layouts and value formulas: loader/quant.h / quant.c (the C reference these must match).
//
// Loads are macros over the weight arrays, so one kernel can read several bindings (the MoE expert pools)
// with the same code: P4 names a uvec4[] and P1 a uint[] view of the same buffer (bytes 16i.. / 4i..).
// The buffer's readable range must be rounded up to a multiple of 4 bytes (the last block's f16 may share
// a word with padding).
//
// Unit model (same for every format): a "unit" is 32 elements of one block, made of two runs of 16
// consecutive elements starting at block elements e0 and e1 (qn_q*_xrun). A block of QK elements has
// UPB = QK / 32 units, so a row of `cols` elements has cols / 32 units. Per format:
//     qn_<f>_u    raw unit data (struct)
//     QN_<F>_LOAD(P4, P1, boff, k) -> qn_<f>_u    unit k of the block at byte offset boff of the buffer
//     qn_<f>_dot(u, k, xa[4], xb[4], sa, sb) -> float   sum over the unit of dequant(w) * x, where xa / xb
//                        are the x values of the runs at e0 / e1 (4 vec4 each) and sa / sb their sums
//     qn_<f>_xrun(k, e0, e1)
// Unit k's weight bytes are 16 consecutive bytes at 16 k (+ a fixed offset) of its block, so lanes on
// consecutive units read consecutive bytes. e0 and e1 are multiples of 16, and the x runs of the 8 units
// of 256 elements (one K-quant block, or 8 consecutive 32-element blocks) are 8 distinct 64-byte pieces:
// qn_qxs_slot gives a shared-memory layout of x where such 8 lanes read their runs without bank conflicts.
// Block byte offsets: multiples of 16 for Q4_K (144 B) and Q5_K (176 B), even for Q8_0 (34 B), Q4_0 (18 B)
// and Q6_K (210 B), i.e. what row-major [rows, cols / QK] blocks from a 16-byte-aligned start give.
// Defining one of QN_Q8_0, QN_Q4_0, QN_Q4_K, QN_Q5_K, QN_Q6_K also maps the generic names qn_qu,
// QN_Q_LOAD, qn_q_dot, qn_q_xrun and the constants QN_QK (elements per block), QN_QBB (bytes per block),
// QN_QUPB (units per block) to that format.
//
// Arithmetic: quants become floats through the exponent trick (0x4B000000 | q is the float 2^23 + q,
// exact for q < 2^23), which avoids slow int->float conversions; offsets (-8, -32, -128, the K-quant
// mins) are applied once per run through sa / sb, and the block / sub-block scales once per run. f32
// throughout; the result differs from the C reference (double sums of the dequantized values) only by f32
// rounding. No dynamic indexing of vectors and no lane-divergent branches (both are slow on GPUs): loads
// at 2-byte-aligned offsets read 5 words and select, K-quant scales are decoded with shifts and selects.
#ifndef QN_QUANT_GLSL
#define QN_QUANT_GLSL

// Shared-memory slot of x vec4 s (x staged as vec4s): s XOR a Gray code of s / 8 in its low 3 bits, a
// permutation within each aligned group of 8 vec4s. The 8 lanes of one block's units (K-quants) or of 8
// consecutive 32-element blocks (Q8_0 / Q4_0) then read 8 distinct 16-byte bank groups per load. Slot of
// s + i (i < 4, s a multiple of 4) = slot(s) ^ i.
uint qn_qxs_slot(uint s) { return s ^ (((s >> 3u) ^ (s >> 4u)) & 7u); }
// Staging x into that layout: runs r = first, first + stride, ... < n16 of 16 floats; X4AT(i) = vec4 i of the
// source; XS = the shared vec4 array, XSUM = a shared float array that gets each run's sum. The reader:
// QN_QX_RUN_S(XS, XSUM, s, x, sum) sets x[4] / sum to the run at vec4 s (a multiple of 4).
#define QN_QX_STAGE(XS, XSUM, X4AT, first, n16, stride)                                          \
    for (uint r_ = (first); r_ < (n16); r_ += (stride)) {                                         \
        vec4 a_ = X4AT(4u * r_), b_ = X4AT(4u * r_ + 1u), c_ = X4AT(4u * r_ + 2u), d_ = X4AT(4u * r_ + 3u); \
        uint s_ = qn_qxs_slot(4u * r_);                                                           \
        XS[s_] = a_, XS[s_ ^ 1u] = b_, XS[s_ ^ 2u] = c_, XS[s_ ^ 3u] = d_;                         \
        XSUM[r_] = dot((a_ + b_) + (c_ + d_), vec4(1.0));                                         \
    }
#define QN_QX_RUN_S(XS, XSUM, s, x, sum)                                                          \
    {                                                                                             \
        uint p_ = qn_qxs_slot(s);                                                                 \
        x = vec4[4](XS[p_], XS[p_ ^ 1u], XS[p_ ^ 2u], XS[p_ ^ 3u]);                               \
        sum = XSUM[(s) >> 2u];                                                                    \
    }
// the same run from a vec4 source directly (unstaged), summed here
#define QN_QX_RUN_G(X4AT, s, x, sum)                                                              \
    {                                                                                             \
        x = vec4[4](X4AT(s), X4AT((s) + 1u), X4AT((s) + 2u), X4AT((s) + 3u));                     \
        sum = dot((x[0] + x[1]) + (x[2] + x[3]), vec4(1.0));                                      \
    }

// sum over the 16 bytes of v (byte i of v[t] pairs with x[t][i]) of byte * x. Odd bytes are converted in
// place, as 256 * byte (2^23 + 256 b is exact too), and their sum is scaled by 1/256 once: one mask-or
// (a single LOP3 on NVIDIA) + one subtract + one fma per byte, plus one shift per word.
float qn_qdot1(uint w, vec4 x, inout float o)
{
    uint h = w >> 16u;
    vec4 f = uintBitsToFloat(uvec4(w & 0xffu, w & 0xff00u, h & 0xffu, h & 0xff00u) | 0x4B000000u) - 8388608.0;
    o = fma(f.y, x.y, fma(f.w, x.w, o));
    return fma(f.x, x.x, f.z * x.z);
}
float qn_qdot4(uvec4 v, vec4 x[4])
{
    float o = 0.0;
    float e = qn_qdot1(v.x, x[0], o) + qn_qdot1(v.y, x[1], o) + qn_qdot1(v.z, x[2], o) + qn_qdot1(v.w, x[3], o);
    return e + o * (1.0 / 256.0);
}
// byte / f16 / 16 bytes at a byte offset of P1 (the f16 and the 16 bytes at an even offset). QN_QLD16 reads
// the 4 words from boff / 4 and a fifth only when boff is not 4-aligned (never past the 16 bytes' last word).
#define QN_QBYTE(P1, boff) ((P1[(boff) >> 2u] >> (((boff) & 3u) * 8u)) & 0xffu)
#define QN_QF16(P1, boff) unpackHalf2x16(P1[(boff) >> 2u] >> (((boff) & 2u) * 8u)).x
#define QN_QLD16(P1, boff)                                                                        \
    qn_qsel16(P1[(boff) >> 2u], P1[((boff) >> 2u) + 1u], P1[((boff) >> 2u) + 2u], P1[((boff) >> 2u) + 3u], \
              P1[((boff) >> 2u) + 3u + (((boff) >> 1u) & 1u)], ((boff) >> 1u) & 1u)
uvec4 qn_qsel16(uint a, uint b, uint c, uint d, uint e, uint m)
{
    uvec4 v = uvec4(a, b, c, d);
    uvec4 f = (v >> 16u) | (uvec4(b, c, d, e) << 16u);
    return m != 0u ? f : v;
}

// ---- Q8_0: 34 B / 32: f16 d, int8 qs[32]; w = d * q. One unit per block (runs 0 and 16).
struct qn_q8_0_u { float d; uvec4 a, b; };
#define QN_Q8_0_LOAD(P4, P1, boff, k) qn_q8_0_u(QN_QF16(P1, boff), QN_QLD16(P1, (boff) + 2u), QN_QLD16(P1, (boff) + 18u))
void qn_q8_0_xrun(uint k, out uint e0, out uint e1) { e0 = 0u; e1 = 16u; }
float qn_q8_0_dot(qn_q8_0_u u, uint k, vec4 xa[4], vec4 xb[4], float sa, float sb)
{
    // q + 128 = byte ^ 0x80 (unsigned), so sum q x = sum (byte ^ 0x80) x - 128 sum x
    const uint F = 0x80808080u;
    return u.d * (qn_qdot4(u.a ^ F, xa) + qn_qdot4(u.b ^ F, xb) - 128.0 * (sa + sb));
}

// ---- Q4_0: 18 B / 32: f16 d, qs[16]: element i low nibble of qs[i], element i + 16 high; w = d (q - 8).
struct qn_q4_0_u { float d; uvec4 q; };
#define QN_Q4_0_LOAD(P4, P1, boff, k) qn_q4_0_u(QN_QF16(P1, boff), QN_QLD16(P1, (boff) + 2u))
void qn_q4_0_xrun(uint k, out uint e0, out uint e1) { e0 = 0u; e1 = 16u; }
float qn_q4_0_dot(qn_q4_0_u u, uint k, vec4 xa[4], vec4 xb[4], float sa, float sb)
{
    const uint M = 0x0f0f0f0fu;
    return u.d * (qn_qdot4(u.q & M, xa) + qn_qdot4((u.q >> 4u) & M, xb) - 8.0 * (sa + sb));
}

// ---- Q4_K / Q5_K: 256 elements; header uvec4 = f16 d, f16 dmin, 12 bytes of 6-bit scales/mins;
// element 64c + 32h + l (c < 4, h < 2, l < 32) has sub-block 2c + h: w = d sc q - dmin m.
// Unit k (< 8): c = k / 2, l in [16 (k % 2), +16): runs e0 = 64c + 16 (k % 2) (low nibbles, h = 0) and
// e1 = e0 + 32 (high nibbles, h = 1); its 16 qs bytes are the block's qs uvec4 k.
// Scales (qn_q4k_scale_min in quant.c), sub-blocks j = 2c and 2c + 1 together (bytes j, j + 1 of each
// word, i.e. the word shifted by 16 (c & 1)): c < 2: sc = h.y & 63, m = h.z & 63; c >= 2:
// sc = (h.w & 15) | (h.y >> 6) << 4, m = (h.w >> 4) | (h.z >> 6) << 4.
// -> vec4(sc_j, sc_j+1, m_j, m_j+1)
vec4 qn_qk_scales(uvec4 h, uint k)
{
    uint c = k >> 1u, s = (c & 1u) * 16u;
    uint a = h.y >> s, b = h.z >> s, e = h.w >> s;
    uint sc = c < 2u ? a & 0x3f3fu : (e & 0x0f0fu) | ((a >> 2u) & 0x3030u);
    uint mn = c < 2u ? b & 0x3f3fu : ((e >> 4u) & 0x0f0fu) | ((b >> 2u) & 0x3030u);
    return uintBitsToFloat(uvec4(sc & 0xffu, (sc >> 8u) & 0xffu, mn & 0xffu, (mn >> 8u) & 0xffu) | 0x4B000000u) -
           8388608.0;
}
void qn_qk_xrun(uint k, out uint e0, out uint e1) { e0 = 64u * (k >> 1u) + 16u * (k & 1u); e1 = e0 + 32u; }
// both sub-blocks of unit k, given the (5-bit for Q5_K) quants of the two runs as bytes
float qn_qk_dot(uvec4 h, uint k, uvec4 qa, uvec4 qb, vec4 xa[4], vec4 xb[4], float sa, float sb)
{
    vec2 d = unpackHalf2x16(h.x); // (d, dmin)
    vec4 s = qn_qk_scales(h, k);
    return d.x * (s.x * qn_qdot4(qa, xa) + s.y * qn_qdot4(qb, xb)) - d.y * (s.z * sa + s.w * sb);
}

struct qn_q4_k_u { uvec4 h, q; };
#define QN_Q4_K_LOAD(P4, P1, boff, k) qn_q4_k_u(P4[(boff) >> 4u], P4[((boff) >> 4u) + 1u + (k)])
void qn_q4_k_xrun(uint k, out uint e0, out uint e1) { qn_qk_xrun(k, e0, e1); }
float qn_q4_k_dot(qn_q4_k_u u, uint k, vec4 xa[4], vec4 xb[4], float sa, float sb)
{
    const uint M = 0x0f0f0f0fu;
    return qn_qk_dot(u.h, k, u.q & M, (u.q >> 4u) & M, xa, xb, sa, sb);
}

// Q5_K: 176 B: header uvec4, qh[32] (uvec4 1-2), qs[128] (uvec4 3-10); bit 2c of qh[l] is the 5th bit of
// element 64c + l, bit 2c + 1 that of 64c + 32 + l.
struct qn_q5_k_u { uvec4 h, qh, q; };
#define QN_Q5_K_LOAD(P4, P1, boff, k) \
    qn_q5_k_u(P4[(boff) >> 4u], P4[((boff) >> 4u) + 1u + ((k) & 1u)], P4[((boff) >> 4u) + 3u + (k)])
void qn_q5_k_xrun(uint k, out uint e0, out uint e1) { qn_qk_xrun(k, e0, e1); }
float qn_q5_k_dot(qn_q5_k_u u, uint k, vec4 xa[4], vec4 xb[4], float sa, float sb)
{
    const uint M = 0x0f0f0f0fu, B = 0x01010101u;
    uint c2 = 2u * (k >> 1u);
    uvec4 qa = (u.q & M) | (((u.qh >> c2) & B) << 4u);
    uvec4 qb = ((u.q >> 4u) & M) | (((u.qh >> (c2 + 1u)) & B) << 4u);
    return qn_qk_dot(u.h, k, qa, qb, xa, xb, sa, sb);
}

// ---- Q6_K: 210 B / 256: ql[128], qh[64], int8 scales[16], f16 d (at 208). Element 128h + 32k + l:
// low 4 bits from ql[64h + l + 32 (k & 1)] (high nibble if k & 2), 2 high bits (qh[32h + l] >> 2k) & 3,
// scale index 8h + 2k + l / 16; w = d * scale * (q - 32).
// Unit u (< 8) = (h = u / 4, kk = (u / 2) % 2, lh = u % 2): ql bytes [16u, +16) (l in [16 lh, +16)):
// low nibbles are k = kk (run e0 = 128h + 32kk + 16lh), high nibbles k = kk + 2 (run e1 = e0 + 64).
struct qn_q6_k_u { uvec4 ql, qh; float da, db; };
// scale index of unit u's low-nibble run (+4: its high-nibble run)
uint qn_q6_si(uint u) { return 8u * (u >> 2u) + 2u * ((u >> 1u) & 1u) + (u & 1u); }
qn_q6_k_u qn_q6_k_make(uvec4 ql, uvec4 qh, float d, uint sa, uint sb)
{
    return qn_q6_k_u(ql, qh, d * float(int(sa << 24u) >> 24), d * float(int(sb << 24u) >> 24));
}
#define QN_Q6_K_LOAD(P4, P1, boff, u)                                                             \
    qn_q6_k_make(QN_QLD16(P1, (boff) + 16u * (u)), QN_QLD16(P1, (boff) + 128u + 32u * ((u) >> 2u) + 16u * ((u) & 1u)), \
                 QN_QF16(P1, (boff) + 208u), QN_QBYTE(P1, (boff) + 192u + qn_q6_si(u)),                \
                 QN_QBYTE(P1, (boff) + 196u + qn_q6_si(u)))
void qn_q6_k_xrun(uint u, out uint e0, out uint e1)
{
    e0 = 128u * (u >> 2u) + 32u * ((u >> 1u) & 1u) + 16u * (u & 1u);
    e1 = e0 + 64u;
}
float qn_q6_k_dot(qn_q6_k_u w, uint u, vec4 xa[4], vec4 xb[4], float sa, float sb)
{
    const uint M = 0x0f0f0f0fu, B = 0x03030303u;
    uint s = 2u * ((u >> 1u) & 1u);
    uvec4 qa = (w.ql & M) | (((w.qh >> s) & B) << 4u);
    uvec4 qb = ((w.ql >> 4u) & M) | (((w.qh >> (s + 4u)) & B) << 4u);
    return w.da * (qn_qdot4(qa, xa) - 32.0 * sa) + w.db * (qn_qdot4(qb, xb) - 32.0 * sb);
}

// ---- generic names for the format of this variant
#if defined(QN_Q8_0)
#define QN_QK 32u
#define QN_QBB 34u
#define qn_qu qn_q8_0_u
#define QN_Q_LOAD QN_Q8_0_LOAD
#define qn_q_dot qn_q8_0_dot
#define qn_q_xrun qn_q8_0_xrun
#elif defined(QN_Q4_0)
#define QN_QK 32u
#define QN_QBB 18u
#define qn_qu qn_q4_0_u
#define QN_Q_LOAD QN_Q4_0_LOAD
#define qn_q_dot qn_q4_0_dot
#define qn_q_xrun qn_q4_0_xrun
#elif defined(QN_Q4_K)
#define QN_QK 256u
#define QN_QBB 144u
#define qn_qu qn_q4_k_u
#define QN_Q_LOAD QN_Q4_K_LOAD
#define qn_q_dot qn_q4_k_dot
#define qn_q_xrun qn_q4_k_xrun
#elif defined(QN_Q5_K)
#define QN_QK 256u
#define QN_QBB 176u
#define qn_qu qn_q5_k_u
#define QN_Q_LOAD QN_Q5_K_LOAD
#define qn_q_dot qn_q5_k_dot
#define qn_q_xrun qn_q5_k_xrun
#elif defined(QN_Q6_K)
#define QN_QK 256u
#define QN_QBB 210u
#define qn_qu qn_q6_k_u
#define QN_Q_LOAD QN_Q6_K_LOAD
#define qn_q_dot qn_q6_k_dot
#define qn_q_xrun qn_q6_k_xrun
#endif
#ifdef QN_QK
#define QN_QUPB (QN_QK / 32u)
#endif

#endif
