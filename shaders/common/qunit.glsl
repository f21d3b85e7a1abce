// qunit.glsl — one quant.glsl unit (32 weights of a block: runs a and b of 16) decoded ONCE to f32, for kernels
// that apply each weight to several tokens (moe_qsmall.comp, moe_qmt.comp): quant bytes become floats through the
// exponent trick and w = fma(byte, A, B) with per-run (A, B) (scale, offset), so every weight costs one fma after
// its conversion, and each token then costs 4 fmas per vec4 of weights.
// Include after quant.glsl with one format define (QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K).
//   qn_unit_q(u, k, qa, qb, ab)  unit k's bytes of run a (qa) and b (qb) (byte i of word c = element 4c + i of the
//                                run) and ab = (A_a, B_a, A_b, B_b): weight = byte * A + B
//   qn_deq4(word, A, B)          the 4 weights of one word
//   qn_fma4(w, x, a)             a + w · x, summed x, y, z, w in that order (a fixed order: bit-stable results)
#ifndef QN_QUNIT_GLSL
#define QN_QUNIT_GLSL

void qn_unit_q(qn_qu u, uint k, out uvec4 qa, out uvec4 qb, out vec4 ab)
{
    const uint M = 0x0f0f0f0fu;
#if defined(QN_Q8_0)
    qa = u.a ^ 0x80808080u; qb = u.b ^ 0x80808080u; // q + 128
    ab = vec4(u.d, -128.0 * u.d, u.d, -128.0 * u.d);
#elif defined(QN_Q4_0)
    qa = u.q & M; qb = (u.q >> 4u) & M;
    ab = vec4(u.d, -8.0 * u.d, u.d, -8.0 * u.d);
#elif defined(QN_Q4_K) || defined(QN_Q5_K)
#if defined(QN_Q4_K)
    qa = u.q & M; qb = (u.q >> 4u) & M;
#else
    const uint B = 0x01010101u;
    uint c2 = 2u * (k >> 1u);
    qa = (u.q & M) | (((u.qh >> c2) & B) << 4u);
    qb = ((u.q >> 4u) & M) | (((u.qh >> (c2 + 1u)) & B) << 4u);
#endif
    vec2 d = unpackHalf2x16(u.h.x);
    vec4 s = qn_qk_scales(u.h, k); // sc_a, sc_b, m_a, m_b
    ab = vec4(d.x * s.x, -(d.y * s.z), d.x * s.y, -(d.y * s.w));
#elif defined(QN_Q6_K)
    const uint B = 0x03030303u;
    uint s = 2u * ((k >> 1u) & 1u);
    qa = (u.ql & M) | (((u.qh >> s) & B) << 4u);
    qb = ((u.ql >> 4u) & M) | (((u.qh >> (s + 4u)) & B) << 4u);
    ab = vec4(u.da, -32.0 * u.da, u.db, -32.0 * u.db);
#endif
}

vec4 qn_deq4(uint w, float A, float B)
{
    vec4 f = uintBitsToFloat(uvec4(w & 0xffu, (w >> 8u) & 0xffu, (w >> 16u) & 0xffu, w >> 24u) | 0x4B000000u) -
             8388608.0;
    return fma(f, vec4(A), vec4(B));
}

float qn_fma4(vec4 w, vec4 x, float a) { return fma(w.w, x.w, fma(w.z, x.z, fma(w.y, x.y, fma(w.x, x.x, a)))); }

#endif
