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
#include "rope.glsl"

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
