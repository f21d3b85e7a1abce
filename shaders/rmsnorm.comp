#version 450
// rmsnorm.comp — per row: y = x * rsqrt(mean(x^2) + eps) * (w + w_add), all f32.
//   w_add = 1: zero-centred RMSNorm of Qwen3-Next (1 + w); w_add = 0: plain weight.
//
// Variants (defines): QN_SUBGROUP (subgroupAdd reduction, else shared-memory tree).
// Bindings: 0 x f32 [rows, dim]
//           1 w f32 [dim]        (shared by all rows)
//           2 y f32 [rows, dim]  (may be the same buffer range as x: in place is safe)
// Push:     qn_pc_rmsnorm { rows, dim, eps, w_add }
// Spec:     0 QN_WG workgroup size (default 256); dispatch `rows` groups (qn_vk_grid), one row each.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
#include "pc.h"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_rmsnorm pc; };
layout(binding = 0, std430) readonly buffer X { float x[]; };
layout(binding = 1, std430) readonly buffer Wt { float w[]; };
layout(binding = 2, std430) writeonly buffer Y { float y[]; };

void main()
{
    uint row = qn_group_id();
    if (row >= pc.rows) return; // uniform over the workgroup
    uint lid = gl_LocalInvocationIndex;
    uint base = row * pc.dim;
    float ss = 0.0;
    for (uint i = lid; i < pc.dim; i += QN_WG) {
        float v = x[base + i];
        ss += v * v;
    }
    float r = inversesqrt(qn_wg_sum(ss) / float(pc.dim) + pc.eps);
    for (uint i = lid; i < pc.dim; i += QN_WG) y[base + i] = x[base + i] * r * (w[i] + pc.w_add);
}
