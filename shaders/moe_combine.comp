#version 450
// moe_combine.comp — prefill MoE epilogue: the weighted sum of the grouped expert outputs plus the residual,
//   y[t, h] = y[t, h] + ((sum_{k=0..K-1} w[t,k] · d[t,k,h]) + sg[t] · d[t,K,h])
// summed in exactly that order (k ascending in the router's order, then the shared expert), so the result
// does not depend on how moe_sort grouped the pairs or where the experts sit.
//
// Bindings: 0 d  f32 [T, K + 1, H]   (moe_grouped QN_MOE_DOWN)
//           1 w  f32 [T, K]
//           2 sg f32 [T]
//           3 y  f32 [T, H]           (the residual stream, read and written)
// Push:     qn_pc_moe (T, H, K)
// Spec:     0 QN_WG workgroup size (default 256)
// Dispatch: ceil(T · H / QN_WG) groups (qn_vk_grid).
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer D { float d[]; };
layout(binding = 1, std430) readonly buffer Wt { float w[]; };
layout(binding = 2, std430) readonly buffer Sg { float sg[]; };
layout(binding = 3, std430) buffer Y { float y[]; };

void main()
{
    uint i = qn_group_id() * QN_WG + gl_LocalInvocationIndex;
    if (i >= pc.T * pc.H) return;
    uint t = i / pc.H, h = i % pc.H, K = pc.K;
    uint db = t * (K + 1u) * pc.H + h;
    float s = 0.0;
    for (uint k = 0u; k < K; k++) s += w[t * K + k] * d[db + k * pc.H];
    s += sg[t] * d[db + K * pc.H];
    y[i] = y[i] + s;
}
