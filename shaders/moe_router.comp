#version 450
// moe_router.comp — per token: softmax top-K routing over the E router logits, plus the shared expert's gate
// and GLU activation, all read from the row of the fused W_moe product m.
//
//   l[e]    = m[t, e] (rounded to bf16 when flags & QN_MOE_ROUND_BF16), e < E
//   ids[t]  = the K largest l (ties: lower expert id first), sorted descending; NaN logits rank last
//   w[t,j]  = softmax(l)[ids[t,j]] in f32, divided by sum_j' w[t,j'] (j' = 0..K-1 in order) when
//             flags & QN_MOE_NORM_TOPK
//   sg[t]   = sigmoid(m[t, E + 2 Is])
//   act[t, K, i] = silu(m[t, E + i]) * m[t, E + Is + i], i < Is   (the shared expert's row of act)
//
// Variants (defines): QN_SUBGROUP (top-K through a bound with subgroupMax, subgroupAdd for the softmax
//   denominator; needs QN_WG >= 32), else the exact rank of every expert and a shared-memory tree.
// Bindings: 0 m   f32 [T, m_stride]
//           1 ids int32 [T, K]   (may be a host-visible buffer: streaming mode reads it on the host)
//           2 w   f32 [T, K]
//           3 sg  f32 [T]
//           4 act f32 [T, K + 1, act_stride]  (only rows K are written)
// Push:     qn_pc_moe (T, E, K, Is, m_stride, act_stride, flags)
// Spec:     0 QN_WG workgroup size (default 256), 1 QN_RT_DEBUG (above)
// Flags:    pc.flags QN_MOE_NORM_TOPK, QN_MOE_ROUND_BF16
// Dispatch: T groups (qn_vk_grid), one token each. Limits: K <= E <= QN_MOE_MAX_E (1024),
//           K <= QN_MOE_MAX_K (64); outside them the token gets ids -1 and NaN weights.
// Ranking: an expert's rank is the number of experts that beat it (larger key, or equal key and lower id),
// an exact total order independent of the workgroup and subgroup sizes. The subgroup variant takes each subgroup's
// best key (ceil(K / subgroups) of them), the K-th best of those as a bound, and ranks only the elements with a key
// at or above it (typically K and a few; moe_route.glsl select_topk) instead of every expert.
// The routing itself is common/moe_route.glsl, shared with matvec.comp's QN_ROUTE variant (decode folds the
// router into the W_moe matvec).
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
// 1 QN_RT_DEBUG: bench only (test_mv_norm --bench-route: the tail's phases), default 0: bit 0 skips the shared
//   expert's sg / act, bit 1 the top-K selection (ids 0 .. K-1)
layout(constant_id = 1) const uint QN_RT_DEBUG = 0;
#define QN_RT_DEBUG_SPEC
#include "pc.h"
#include "types.glsl"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer M { float m[]; };
layout(binding = 1, std430) writeonly buffer Ids { int ids[]; };
layout(binding = 2, std430) writeonly buffer Wt { float w[]; };
layout(binding = 3, std430) writeonly buffer Sg { float sg[]; };
layout(binding = 4, std430) writeonly buffer Act { float act[]; };

float qn_rt_m(uint t, uint i) { return m[t * pc.m_stride + i]; }
#include "moe_route.glsl"

void main()
{
    uint t = qn_group_id();
    if (t >= pc.T) return; // uniform over the workgroup
    qn_route(t, gl_LocalInvocationIndex, pc.E, pc.K, pc.Is, pc.act_stride, pc.flags);
}
