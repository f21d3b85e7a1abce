// qtile.glsl — ggml block formats decoded 8 consecutive weights at a time, for the tiled prefill kernels
// (qmatmul.comp, moe_qgrouped.comp) that decode a weight tile into shared memory once per k-step and then
// reuse every decoded weight for a whole tile of tokens. (quant.glsl is the matvec side: dot products of
// 32-weight units with x; this file decodes values.) Block layouts: loader/quant.h, values: loader/quant.c.
//
// The includer defines, before including:
//     QN_QW(i)   uint word i of the weight buffer (bytes 4i .. 4i+3)
//     QN_QW4(i)  optional: uvec4 i (bytes 16i .. 16i+15), else four QN_QW reads
// and one of QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K. Provides:
//     QT_QK, QT_BB                    elements and bytes per block
//     qt_raw qt_fetch(rb, e)          the raw words holding weights e .. e+7 (e % 8 == 0) of the row whose
//                                     first block starts at byte rb (rb even; a multiple of 16 for Q4_K/Q5_K)
//     qt_decode(raw, rb, e, a, b)     those 8 weights as f32 (a = e..e+3, b = e+4..e+7): the C dequantizer's
//                                     values, computed the same way (Q4_K/Q5_K (d*sc)*q - dmin*m, Q6_K
//                                     (d*sc)*(q-32)); the compiler may fuse the Q4_K/Q5_K multiply-add (one f32 rounding)
//     qt_addr(rb, e, ia, ib)          the word indices qt_fetch loads: raw.a = words ia (QT_A4: the aligned
//                                     uvec4 ia.x / 4), raw.b = the first QT_NB words of ib; QT_FETCH_FROM(P4, P1,
//                                     ia, ib) loads them from the arrays P4 (uvec4) / P1 (uint) (kernels whose
//                                     weights sit in one of several buffers: the loads of many fetches inside one
//                                     switch over the buffers, moe_w.glsl's QN_POOL_SWITCH)
// fetch only loads (no arithmetic on the loaded words), so a kernel can issue the next step's loads and
// decode them after computing the current step. Reads stay inside the block: 8 weights never straddle a
// block (QK is a multiple of 8), and a run of 8 bytes at an even offset is read as the 2 or 3 words that
// hold it. Every 8-weight group shares one scale (Q6_K: 16 per scale; the others 32 or more).
#ifndef QN_QTILE_GLSL
#define QN_QTILE_GLSL

#ifndef QN_QW4
#define QN_QW4(i) uvec4(QN_QW(4u * (i)), QN_QW(4u * (i) + 1u), QN_QW(4u * (i) + 2u), QN_QW(4u * (i) + 3u))
#endif

struct qt_raw { uvec4 a, b; };

// four unsigned bytes as exact floats (2^23 + b has b in its low mantissa bits)
vec4 qt_u8x4(uint w)
{
    return uintBitsToFloat(uvec4(w & 0xffu, (w >> 8) & 0xffu, (w >> 16) & 0xffu, w >> 24) | 0x4B000000u) - 8388608.0;
}
// 8 bytes at even byte offset o out of the 3 words around them (words o/4, o/4 + 1, (o + 7)/4; the third is the
// second again when o % 4 == 0) as 2 words (little-endian)
uvec2 qt_bytes8(uvec3 w, uint o)
{
    return (o & 2u) != 0u ? uvec2((w.x >> 16) | (w.y << 16), (w.y >> 16) | (w.z << 16)) : w.xy;
}
// the f16 at even byte offset o inside word w
float qt_f16(uint w, uint o) { return unpackHalf2x16(w >> ((o & 2u) * 8u)).x; }

#if defined(QN_Q8_0)
// 34 B / 32: f16 d, int8 qs[32]; w = d * q
const uint QT_QK = 32u, QT_BB = 34u;
const bool QT_A4 = false;
const uint QT_NB = 0u;
void qt_addr(uint rb, uint e, out uvec4 ia, out uvec4 ib)
{
    uint bo = rb + (e / 32u) * 34u, o = bo + 2u + e % 32u;
    ia = uvec4(o >> 2u, (o >> 2u) + 1u, (o + 7u) >> 2u, bo >> 2u);
    ib = ia;
}
void qt_decode(qt_raw r, uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bo = rb + (e / 32u) * 34u, o = bo + 2u + e % 32u;
    uvec2 q = qt_bytes8(r.a.xyz, o) ^ 0x80808080u; // q + 128 as unsigned bytes
    float d = qt_f16(r.a.w, bo);
    a = d * (qt_u8x4(q.x) - 128.0);
    b = d * (qt_u8x4(q.y) - 128.0);
}
#elif defined(QN_Q4_0)
// 18 B / 32: f16 d, qs[16]: element i < 16 low nibble of qs[i], element 16 + i its high nibble; w = d (q - 8)
const uint QT_QK = 32u, QT_BB = 18u;
const bool QT_A4 = false;
const uint QT_NB = 0u;
void qt_addr(uint rb, uint e, out uvec4 ia, out uvec4 ib)
{
    uint bo = rb + (e / 32u) * 18u, o = bo + 2u + e % 16u;
    ia = uvec4(o >> 2u, (o >> 2u) + 1u, (o + 7u) >> 2u, bo >> 2u);
    ib = ia;
}
void qt_decode(qt_raw r, uint rb, uint e, out vec4 a, out vec4 b)
{
    uint i = e % 32u, bo = rb + (e / 32u) * 18u, o = bo + 2u + i % 16u;
    uvec2 q = (qt_bytes8(r.a.xyz, o) >> (4u * (i / 16u))) & 0x0f0f0f0fu;
    float d = qt_f16(r.a.w, bo);
    a = d * (qt_u8x4(q.x) - 8.0);
    b = d * (qt_u8x4(q.y) - 8.0);
}
#elif defined(QN_Q4_K) || defined(QN_Q5_K)
// 256 elements; header uvec4 = f16 d, f16 dmin, scales[12] (6-bit scale and min per 32-element sub-block);
// element 64c + 32h + l: sub-block j = 2c + h, low 4 bits = nibble h of qs[32c + l]; Q5_K: 5th bit =
// bit j of qh[l]. w = (d * sc_j) * q - dmin * m_j.
const uint QT_QK = 256u;
#if defined(QN_Q4_K)
const uint QT_BB = 144u, QT_QS = 16u;
#else
const uint QT_BB = 176u, QT_QS = 48u; // qh[32] at 16, qs[128] at 48
#endif
uint qt_sbyte(uvec4 h, uint i) { return (h[1u + (i >> 2u)] >> ((i & 3u) * 8u)) & 0xffu; } // scales[i]
const bool QT_A4 = true;
#if defined(QN_Q4_K)
const uint QT_NB = 2u;
#else
const uint QT_NB = 4u;
#endif
void qt_addr(uint rb, uint e, out uvec4 ia, out uvec4 ib)
{
    uint i = e % 256u, bo = rb + (e / 256u) * QT_BB, l = i % 32u;
    uint qo = (bo + QT_QS + 32u * (i / 64u) + l) >> 2u, ho = (bo + 16u + l) >> 2u; // ho: Q5_K's qh
    ia = uvec4(bo >> 2u) + uvec4(0u, 1u, 2u, 3u);
    ib = uvec4(qo, qo + 1u, ho, ho + 1u);
}
void qt_decode(qt_raw r, uint rb, uint e, out vec4 a, out vec4 b)
{
    uint i = e % 256u, j = i / 32u, hh = j & 1u;
    uvec2 q = (r.b.xy >> (4u * hh)) & 0x0f0f0f0fu;
#if defined(QN_Q5_K)
    q |= ((r.b.zw >> j) & 0x01010101u) << 4u;
#endif
    uvec4 h = r.a;
    uint sc, mn;
    if (j < 4u) {
        sc = qt_sbyte(h, j) & 63u;
        mn = qt_sbyte(h, j + 4u) & 63u;
    } else {
        uint x = qt_sbyte(h, j + 4u);
        sc = (x & 15u) | ((qt_sbyte(h, j - 4u) >> 6u) << 4u);
        mn = (x >> 4u) | ((qt_sbyte(h, j) >> 6u) << 4u);
    }
    vec2 dd = unpackHalf2x16(h.x);
    float ds = dd.x * float(sc), dm = dd.y * float(mn);
    a = ds * qt_u8x4(q.x) - dm;
    b = ds * qt_u8x4(q.y) - dm;
}
#elif defined(QN_Q6_K)
// 210 B / 256: ql[128], qh[64], int8 scales[16], f16 d at 208. Element 128h + 32k + l: low 4 bits =
// nibble (k >> 1) of ql[64h + 32 (k & 1) + l], high 2 bits (qh[32h + l] >> 2k) & 3, scale 8h + 2k + l / 16;
// w = (d * scale) * (q - 32).
const uint QT_QK = 256u, QT_BB = 210u;
const bool QT_A4 = false;
const uint QT_NB = 4u;
void qt_addr(uint rb, uint e, out uvec4 ia, out uvec4 ib)
{
    uint i = e % 256u, bo = rb + (e / 256u) * 210u, hh = i / 128u, k = (i / 32u) & 3u, l = i % 32u;
    uint lo = bo + 64u * hh + 32u * (k & 1u) + l, ho = bo + 128u + 32u * hh + l;
    uint so = bo + 192u + 8u * hh + 2u * k + l / 16u;
    ia = uvec4(lo >> 2u, (lo >> 2u) + 1u, (lo + 7u) >> 2u, so >> 2u);
    ib = uvec4(ho >> 2u, (ho >> 2u) + 1u, (ho + 7u) >> 2u, (bo + 208u) >> 2u);
}
void qt_decode(qt_raw r, uint rb, uint e, out vec4 a, out vec4 b)
{
    uint i = e % 256u, bo = rb + (e / 256u) * 210u, hh = i / 128u, k = (i / 32u) & 3u, l = i % 32u;
    uint lo = bo + 64u * hh + 32u * (k & 1u) + l, ho = bo + 128u + 32u * hh + l;
    uint so = bo + 192u + 8u * hh + 2u * k + l / 16u;
    uvec2 q = (qt_bytes8(r.a.xyz, lo) >> (4u * (k >> 1u))) & 0x0f0f0f0fu;
    q |= ((qt_bytes8(r.b.xyz, ho) >> (2u * k)) & 0x03030303u) << 4u;
    int sc = bitfieldExtract(int(r.a.w), int((so & 3u) * 8u), 8);
    float ds = qt_f16(r.b.w, bo + 208u) * float(sc);
    a = ds * (qt_u8x4(q.x) - 32.0);
    b = ds * (qt_u8x4(q.y) - 32.0);
}
#else
#error "qtile.glsl: define QN_Q8_0, QN_Q4_0, QN_Q4_K, QN_Q5_K or QN_Q6_K"
#endif

// the raw words at qt_addr's indices, from the arrays P4 / P1 (QT_A4, QT_NB are constants: no dead loads)
#define QT_FETCH_FROM(P4, P1, ia, ib)                                                                          \
    qt_raw(QT_A4 ? P4[(ia).x >> 2u] : uvec4(P1[(ia).x], P1[(ia).y], P1[(ia).z], P1[(ia).w]),                  \
           uvec4(QT_NB > 0u ? P1[(ib).x] : 0u, QT_NB > 1u ? P1[(ib).y] : 0u, QT_NB > 2u ? P1[(ib).z] : 0u,     \
                 QT_NB > 3u ? P1[(ib).w] : 0u))
qt_raw qt_fetch(uint rb, uint e)
{
    uvec4 ia, ib;
    qt_addr(rb, e, ia, ib);
    return qt_raw(QT_A4 ? QN_QW4(ia.x >> 2u) : uvec4(QN_QW(ia.x), QN_QW(ia.y), QN_QW(ia.z), QN_QW(ia.w)),
                  uvec4(QT_NB > 0u ? QN_QW(ib.x) : 0u, QT_NB > 1u ? QN_QW(ib.y) : 0u, QT_NB > 2u ? QN_QW(ib.z) : 0u,
                        QT_NB > 3u ? QN_QW(ib.w) : 0u));
}

#endif
