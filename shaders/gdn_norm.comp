#version 450
// gdn_norm.comp — gated RMSNorm of the Gated DeltaNet output (linear_attn.norm), per (token, value head):
//   y = w * (o * rsqrt(mean(o^2) + eps)) * silu(z)      plain weight w (not 1 + w), all f32
//
// Variants (defines): QN_SUBGROUP (subgroupAdd reduction, else shared-memory tree).
// Bindings: 0 o    f32 [rows][dim]                 rows = T*heads, row = t*heads + h
//           1 proj f32, rows of proj_stride         z of (t, h) at proj[t*proj_stride + z_off + h*dim + j]
//           2 w    f32 [dim]                        shared by all heads
//           3 y    f32 [rows][dim]                  (may be the same buffer range as o: in place is safe)
// Push:     qn_pc_gdn_norm { rows, heads, dim, proj_stride, z_off, eps }
// Spec:     0 QN_WG workgroup size (default 128); dispatch `rows` groups (qn_vk_grid), one row each.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
#include "pc.h"
#include "types.glsl"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_gdn_norm pc; };
layout(binding = 0, std430) readonly buffer O { float o[]; };
layout(binding = 1, std430) readonly buffer Proj { float proj[]; };
layout(binding = 2, std430) readonly buffer Wt { float w[]; };
layout(binding = 3, std430) writeonly buffer Y { float y[]; };

void main()
{
    uint row = qn_group_id();
    if (row >= pc.rows) return; // uniform over the workgroup
    uint lid = gl_LocalInvocationIndex;
    uint base = row * pc.dim;
    uint zb = (row / pc.heads) * pc.proj_stride + pc.z_off + (row % pc.heads) * pc.dim;
    float ss = 0.0;
    for (uint i = lid; i < pc.dim; i += QN_WG) {
        float v = o[base + i];
        ss += v * v;
    }
    float r = inversesqrt(qn_wg_sum(ss) / float(pc.dim) + pc.eps);
    for (uint i = lid; i < pc.dim; i += QN_WG) y[base + i] = w[i] * (o[base + i] * r) * qn_silu(proj[zb + i]);
}
