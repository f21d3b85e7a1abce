// quant_i8.glsl — ggml block weights dotted with int8-quantized x on packed 4x8-bit integer dot products
// (SPV_KHR_integer_dot_product's OpSDot, reached through GL_EXT_spirv_intrinsics: Debian 12's glslang 12 does not
// know GL_EXT_integer_dot_product). Used by qmatvec_i8.comp; needs the shaderIntegerDotProduct feature
// (QN_FEAT_INT_DOT in the kernel registry).
//
// x format ("Q8 runs"): x is cut into runs of 16 consecutive elements; the two runs of each aligned 32-element
// block share one scale dx = max |x| / 127 over the block, and run r holds q = roundEven(x * 127 / max |x|) as
// 16 signed bytes (uvec4, byte i of word t = element 4t + i) plus vec2(dx, dx * sum q). The weight side uses
// quant.glsl's unit model and loads unchanged: unit k of a block pairs two 16-weight runs with the x runs at
// block elements e0 and e1 (qn_q_xrun); every weight quant is 0 .. 63 (< 128), so its bytes are valid signed
// bytes and one signed x signed OpSDot per 4 bytes serves every format. Quant offsets (-8, -32, the K-quant
// mins) go through the runs' dx * sum q, the block / sub-block scales once per run.
//
//     qn_i8_dot(u, k, xa, xb, sa, sb) -> float   sum over unit k of dequant(w) * dx * q for the x runs xa, xb
//                                               (uvec4 of bytes) with sa, sb = their vec2(dx, dx * sum q)
// The result equals the unit's dot product with the dequantized x (dx * q) up to f32 rounding of the per-run
// scale products: the integer sums are exact.
#ifndef QN_QUANT_I8_GLSL
#define QN_QUANT_I8_GLSL
#extension GL_EXT_spirv_intrinsics : require

// OpSDot (4450) on two 32-bit words of 4 packed signed bytes (fmt 0 = PackedVectorFormat4x8Bit); capabilities
// DotProduct (6019) and DotProductInput4x8BitPacked (6018)
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int qn_sdot4x8(uint a, uint b, spirv_literal int fmt);

// sum over 16 bytes of q (signed) times x (signed)
int qn_i8_dot16(uvec4 q, uvec4 x)
{
    return (qn_sdot4x8(q.x, x.x, 0) + qn_sdot4x8(q.y, x.y, 0)) + (qn_sdot4x8(q.z, x.z, 0) + qn_sdot4x8(q.w, x.w, 0));
}
// the two runs' scaled integer dots: vec2(dx_a * Ia, dx_b * Ib)
vec2 qn_i8_runs(uvec4 qa, uvec4 qb, uvec4 xa, uvec4 xb, vec2 sa, vec2 sb)
{
    return vec2(sa.x * float(qn_i8_dot16(qa, xa)), sb.x * float(qn_i8_dot16(qb, xb)));
}

// 4 signed ints (-128 .. 127) as packed bytes
uint qn_i8_pack(ivec4 q)
{
    uvec4 u = uvec4(q) & 0xffu;
    return u.x | (u.y << 8u) | (u.z << 16u) | (u.w << 24u);
}

// One overload per block format (quant.glsl's unit structs are distinct types), all always defined: a kernel of one
// format (QN_Q4_K, ...) calls its own, mv_parts.comp (QN_I8) every format the pipeline's parts have.
float qn_i8_dot(qn_q8_0_u u, uint k, uvec4 xa, uvec4 xb, vec2 sa, vec2 sb)
{
    vec2 r = qn_i8_runs(u.a, u.b, xa, xb, sa, sb); // Q8_0 quants are signed bytes already
    return u.d * (r.x + r.y);
}
float qn_i8_dot(qn_q4_0_u u, uint k, uvec4 xa, uvec4 xb, vec2 sa, vec2 sb)
{
    const uint M = 0x0f0f0f0fu;
    vec2 r = qn_i8_runs(u.q & M, (u.q >> 4u) & M, xa, xb, sa, sb);
    return u.d * ((r.x + r.y) - 8.0 * (sa.y + sb.y));
}
float qn_i8_qk(uvec4 h, uint k, uvec4 qa, uvec4 qb, uvec4 xa, uvec4 xb, vec2 sa, vec2 sb)
{
    vec2 d = unpackHalf2x16(h.x); // (d, dmin)
    vec4 s = qn_qk_scales(h, k);  // (sc_a, sc_b, m_a, m_b)
    vec2 r = qn_i8_runs(qa, qb, xa, xb, sa, sb);
    return d.x * (s.x * r.x + s.y * r.y) - d.y * (s.z * sa.y + s.w * sb.y);
}
float qn_i8_dot(qn_q4_k_u u, uint k, uvec4 xa, uvec4 xb, vec2 sa, vec2 sb)
{
    const uint M = 0x0f0f0f0fu;
    return qn_i8_qk(u.h, k, u.q & M, (u.q >> 4u) & M, xa, xb, sa, sb);
}
float qn_i8_dot(qn_q5_k_u u, uint k, uvec4 xa, uvec4 xb, vec2 sa, vec2 sb)
{
    const uint M = 0x0f0f0f0fu, B = 0x01010101u;
    uint c2 = 2u * (k >> 1u);
    uvec4 qa = (u.q & M) | (((u.qh >> c2) & B) << 4u);
    uvec4 qb = ((u.q >> 4u) & M) | (((u.qh >> (c2 + 1u)) & B) << 4u);
    return qn_i8_qk(u.h, k, qa, qb, xa, xb, sa, sb);
}
float qn_i8_dot(qn_q6_k_u w, uint u, uvec4 xa, uvec4 xb, vec2 sa, vec2 sb)
{
    const uint M = 0x0f0f0f0fu, B = 0x03030303u;
    uint s = 2u * ((u >> 1u) & 1u);
    uvec4 qa = (w.ql & M) | (((w.qh >> s) & B) << 4u);
    uvec4 qb = ((w.ql >> 4u) & M) | (((w.qh >> (s + 4u)) & B) << 4u);
    vec2 r = qn_i8_runs(qa, qb, xa, xb, sa, sb);
    return w.da * (r.x - 32.0 * sa.y) + w.db * (r.y - 32.0 * sb.y);
}

// Staging: quantize the 32-element blocks b = first, first + stride, .. < nblk of x (X4AT(i) = vec4 i of the
// token's x) into the run slots XQ[] (uvec4 of bytes) and XS[] (vec2(dx, dx * sum q)), qn_i8_slot order. Per block:
// amax = max |x|, q = roundEven(x * (127 / amax)) (0 for an all-zero block), dx = amax / 127. The caller puts a
// barrier after it.
#define QN_I8_STAGE(XQ, XS, X4AT, first, nblk, stride) QN_I8_STAGE_SW(XQ, XS, X4AT, first, nblk, stride, QN_I8_SW)
// ... with the slot swizzle SW given (qn_i8_slot_sw; mv_parts.comp: per part type, qn_i8_sw_of)
#define QN_I8_STAGE_SW(XQ, XS, X4AT, first, nblk, stride, SW)                                     \
    for (uint b_ = (first); b_ < (nblk); b_ += (stride)) {                                        \
        vec4 v_[8];                                                                               \
        [[unroll]] for (uint i_ = 0u; i_ < 8u; i_++) v_[i_] = X4AT(8u * b_ + i_);                 \
        vec4 m_ = max(max(max(abs(v_[0]), abs(v_[1])), max(abs(v_[2]), abs(v_[3]))),              \
                      max(max(abs(v_[4]), abs(v_[5])), max(abs(v_[6]), abs(v_[7]))));             \
        float am_ = max(max(m_.x, m_.y), max(m_.z, m_.w));                                         \
        float id_ = am_ > 0.0 ? 127.0 / am_ : 0.0, dx_ = am_ / 127.0;                              \
        [[unroll]] for (uint h_ = 0u; h_ < 2u; h_++) {                                            \
            ivec4 q0_ = ivec4(roundEven(v_[4u * h_] * id_)), q1_ = ivec4(roundEven(v_[4u * h_ + 1u] * id_)); \
            ivec4 q2_ = ivec4(roundEven(v_[4u * h_ + 2u] * id_)), q3_ = ivec4(roundEven(v_[4u * h_ + 3u] * id_)); \
            ivec4 s4_ = (q0_ + q1_) + (q2_ + q3_);                                                \
            uint sl_ = qn_i8_slot_sw(2u * b_ + h_, SW);                                           \
            XQ[sl_] = uvec4(qn_i8_pack(q0_), qn_i8_pack(q1_), qn_i8_pack(q2_), qn_i8_pack(q3_));  \
            XS[sl_] = vec2(dx_, dx_ * float((s4_.x + s4_.y) + (s4_.z + s4_.w)));                  \
        }                                                                                         \
    }

// The same staging with 4 invocations per 32-element block (QN_I8_STAGE4_SW; qmatvec_i8 QN_PRE bit 8, mv_parts_i8 spec
// 7): invocation i of the workgroup's pass takes vec4s 2k, 2k + 1 (k = i % 4) of block i / 4, its partial max |x| and
// integer run-half sums meet the quad's through shared memory (PM float[WG], PS int[WG]; two barriers per pass of WG
// / 4 blocks). Every byte and scale equals QN_I8_STAGE's (the max and the integer sums do not depend on the order);
// each invocation has a quarter of the serial work. EVERY invocation must run it (barriers), WG a multiple of 4; the
// caller's staging barrier still follows.
#define QN_I8_STAGE4_SW(XQ, XS, X4AT, lid, nblk, WG, SW, PM, PS)                                   \
    for (uint p_ = 0u; p_ < 4u * (nblk); p_ += (WG)) {                                            \
        uint i_ = p_ + (lid), b_ = i_ >> 2u, k_ = i_ & 3u;                                        \
        bool on_ = i_ < 4u * (nblk);                                                              \
        vec4 v0_ = vec4(0.0), v1_ = vec4(0.0);                                                    \
        if (on_) v0_ = X4AT(8u * b_ + 2u * k_), v1_ = X4AT(8u * b_ + 2u * k_ + 1u);                \
        vec4 m_ = max(abs(v0_), abs(v1_));                                                        \
        PM[lid] = max(max(m_.x, m_.y), max(m_.z, m_.w));                                          \
        barrier();                                                                                \
        uint q_ = (lid) & ~3u;                                                                    \
        float am_ = max(max(PM[q_], PM[q_ + 1u]), max(PM[q_ + 2u], PM[q_ + 3u]));                 \
        float id_ = am_ > 0.0 ? 127.0 / am_ : 0.0, dx_ = am_ / 127.0;                              \
        ivec4 q0_ = ivec4(roundEven(v0_ * id_)), q1_ = ivec4(roundEven(v1_ * id_)), s4_ = q0_ + q1_; \
        uint sl_ = qn_i8_slot_sw(2u * b_ + (k_ >> 1u), SW);                                       \
        if (on_ && (k_ & 1u) == 0u) XQ[sl_].xy = uvec2(qn_i8_pack(q0_), qn_i8_pack(q1_));         \
        if (on_ && (k_ & 1u) != 0u) XQ[sl_].zw = uvec2(qn_i8_pack(q0_), qn_i8_pack(q1_));         \
        PS[lid] = (s4_.x + s4_.y) + (s4_.z + s4_.w);                                              \
        barrier();                                                                                \
        if (on_ && (k_ & 1u) == 0u) XS[sl_] = vec2(dx_, dx_ * float(PS[lid] + PS[(lid) + 1u]));   \
    }

// Shared-memory slot of x run r: r XOR (bit 3 of r) * QN_I8_SW, a permutation within each aligned group of 16 runs
// (cols / 16 is even, so a partial last group keeps its pairs). With it the 8 lanes of one K-quant block (or of 8
// consecutive Q8_0 / Q4_0 blocks) read 8 runs whose 16-byte slots fall in 8 distinct bank groups.
#if defined(QN_Q8_0) || defined(QN_Q4_0)
const uint QN_I8_SW = 1u; // lanes read runs 2v (+1): 0, 2, .., 14
#elif defined(QN_Q6_K)
const uint QN_I8_SW = 4u; // runs 0-3, 8-11 (+4)
#else
const uint QN_I8_SW = 2u; // runs 0, 1, 4, 5, 8, 9, 12, 13 (+2)
#endif
uint qn_i8_slot_sw(uint r, uint sw) { return r ^ (((r >> 3u) & 1u) * sw); }
uint qn_i8_slot(uint r) { return qn_i8_slot_sw(r, QN_I8_SW); }

#endif
