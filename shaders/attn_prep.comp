#version 450
// attn_prep.comp — gated-attention input preparation, per token and head (spec §6.3-6.4, §10, §12):
//   q heads:  RMSNorm_zc(q_norm) then partial RoPE -> q[t][h]
//   k heads:  RMSNorm_zc(k_norm) then partial RoPE -> kcache[j][position]
//   v heads:  copied raw                            -> vcache[j][position]
// RoPE: rotate-half on dims 0..rot-1 (p <-> p + rot/2), angle = float(position) * inv_freq[p] rounded
// to f32 exactly like the C reference (`precise`: no fused multiply), cos/sin of that f32 angle computed
// here with an exact range reduction (float-float Cody-Waite, valid for |angle| < 3.2e6, i.e. positions
// up to ~3.2 million since inv_freq[0] = 1) and Taylor polynomials (|error| < 1e-7), so results do not
// depend on the driver's sin/cos, which GPUs evaluate poorly at large angles. cos and sin are multiplied by attn_factor (YaRN mscale).
//
// Variants (defines): QN_SUBGROUP (subgroupAdd reduction, else shared-memory tree);
//   QN_KV_F16 (f16 KV cache, else f32; see common/attn_kv.glsl).
// Bindings: 0 proj     f32 [T][proj_stride]   row = [query Hq*D | gate Hq*D | k Hkv*D | v Hkv*D]
//           1 q_norm   f32 [D]
//           2 k_norm   f32 [D]
//           3 inv_freq f32 [rot/2]  (host: qn_ref_rope_inv_freq, YaRN included)
//           4 pos      uint32 [1]   (read only with QN_ATTN_POS_DEVICE)
//           5 q        f32 [T][Hq][D]
//           6 kcache   f32 (f16 with QN_KV_F16) [Hkv][cap][D]
//           7 vcache   f32 (f16 with QN_KV_F16) [Hkv][cap][D]
// Push:     qn_pc_attn_prep (pc_attn.h)
// Spec:     0 QN_WG   workgroup size (default 64)
//           1 QN_DMAX largest head_dim (default 256; shared memory 2*QN_DMAX floats)
// Dispatch: Hq + 2*Hkv groups (qn_vk_grid) times T in z: group u < Hq is q head u, then Hkv k heads,
//           then Hkv v heads; z = token.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 64;
layout(constant_id = 1) const uint QN_DMAX = 256;
#include "pc.h"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_attn_prep pc; };
layout(binding = 0, std430) readonly buffer Proj { float proj[]; };
layout(binding = 1, std430) readonly buffer QNorm { float qnw[]; };
layout(binding = 2, std430) readonly buffer KNorm { float knw[]; };
layout(binding = 3, std430) readonly buffer InvFreq { float inv_freq[]; };
layout(binding = 4, std430) readonly buffer Pos { uint posbuf[]; };
layout(binding = 5, std430) writeonly buffer Q { float qo[]; };
#define QN_KV_WRITE
#include "attn_kv.glsl"

shared float xs[QN_DMAX]; // the normed head
shared float ys[QN_DMAX]; // the output row

// Knuth's two-sum: s + e == a + b exactly (no fused or reassociated operations: `precise`).
void two_sum(float a, float b, out float s, out float e)
{
    precise float ss = a + b;
    precise float bb = ss - a;
    precise float ee = (a - (ss - bb)) + (b - bb);
    s = ss;
    e = ee;
}

// cos and sin of an f32 angle a >= 0. k = nearest integer to a / (pi/2), split as kh*2048 + kl (at most
// 10 + 11 bits); pi/2 = P0 + P1 + P2 + P3 with at most 13 significant bits each, so every product
// kh*Pi, kl*Pi is exact in f32 and the sum a - k*pi/2 is carried exactly in float-float.
vec2 qn_cos_sin(float a)
{
    const float P0 = 1.57080078125, P1 = -4.454515874385834e-06;
    const float P2 = 6.076561476220377e-11, P3 = 5.390653201597928e-15;
    uint k = uint(floor(a * 0.63661977236758134 + 0.5));
    precise float kh = float(k >> 11) * 2048.0, kl = float(k & 2047u);
    float s = a, e = 0.0, err;
    precise float p;
    p = kh * P0; two_sum(s, -p, s, err); e += err;
    p = kl * P0; two_sum(s, -p, s, err); e += err;
    p = kh * P1; two_sum(s, -p, s, err); e += err;
    p = kl * P1; two_sum(s, -p, s, err); e += err;
    p = kh * P2; two_sum(s, -p, s, err); e += err;
    p = kl * P2; two_sum(s, -p, s, err); e += err;
    p = kh * P3 + kl * P3;
    float r = s + (e - p); // |r| <= pi/4 (+ a rounding of k)
    float r2 = r * r;
    // Taylor series to x^9 / x^10: truncation < 2e-9 on |r| <= 0.8
    float sn = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0)))));
    float cs = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0)))));
    uint qd = k & 3u;
    if (qd == 0u) return vec2(cs, sn);
    if (qd == 1u) return vec2(-sn, cs);
    if (qd == 2u) return vec2(-cs, -sn);
    return vec2(sn, -cs);
}

void main()
{
    uint u = qn_group_id(), t = gl_WorkGroupID.z;
    uint nh = pc.Hq + 2u * pc.Hkv;
    if (u >= nh || t >= pc.T) return; // uniform over the workgroup
    // shapes the kernel cannot take (the host checks them with qn_attn_shape_ok): write nothing
    if (pc.D % 4u != 0u || pc.D > QN_DMAX || pc.rot > pc.D || pc.rot % 2u != 0u) return;
    uint lid = gl_LocalInvocationIndex, D = pc.D;
    uint base = (pc.flags & QN_ATTN_POS_DEVICE) != 0u ? posbuf[0] : 0u;
    uint pos = base + pc.pos0 + t;
    uint row = t * pc.proj_stride;
    bool is_q = u < pc.Hq, is_v = u >= pc.Hq + pc.Hkv;
    uint j = is_q ? u : u - pc.Hq - (is_v ? pc.Hkv : 0u); // head index within its kind
    // source: q heads at h*D; k heads after [query | gate]; v heads after k
    uint src = row + (is_q ? j * D : 2u * pc.Hq * D + (is_v ? pc.Hkv * D : 0u) + j * D);
    uint dst = is_q ? (t * pc.Hq + j) * D : (j * pc.cap + pos) * D;
    if (is_v) {
        for (uint i = lid; i < D; i += QN_WG) ys[i] = proj[src + i];
    } else {
        // zero-centred RMSNorm over the head
        float ss = 0.0;
        for (uint i = lid; i < D; i += QN_WG) {
            float v = proj[src + i];
            ss += v * v;
        }
        float r = inversesqrt(qn_wg_sum(ss) / float(D) + pc.eps);
        for (uint i = lid; i < D; i += QN_WG) xs[i] = proj[src + i] * r * (1.0 + (is_q ? qnw[i] : knw[i]));
        barrier();
        // partial RoPE on dims < rot, pairs (p, p + rot/2); the other dims pass through
        uint half_ = pc.rot / 2u;
        for (uint i = lid; i < D; i += QN_WG) {
            float y = xs[i];
            if (i < pc.rot) {
                uint p = i < half_ ? i : i - half_;
                precise float ang = float(pos) * inv_freq[p];
                vec2 c = qn_cos_sin(ang) * pc.attn_factor;
                y = i < half_ ? xs[i] * c.x - xs[i + half_] * c.y : xs[i] * c.x + xs[p] * c.y;
            }
            ys[i] = y;
        }
    }
    barrier(); // is_v is uniform over the workgroup
    if (is_q) {
        for (uint i = lid; i < D; i += QN_WG) qo[dst + i] = ys[i];
    } else if (pos < pc.cap) {
        for (uint i = lid; i < D / 2u; i += QN_WG) kv_put(is_v, dst / 2u + i, vec2(ys[2u * i], ys[2u * i + 1u]));
    }
}
