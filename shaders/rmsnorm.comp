#version 450
// rmsnorm.comp — per row: y = x * rsqrt(mean(x^2) + eps) * (w + w_add), all f32.
//   w_add = 1: zero-centred RMSNorm of Qwen3-Next (1 + w); w_add = 0: plain weight.
//
// Variants (defines): QN_SUBGROUP (subgroupAdd reduction, else shared-memory tree); QN_HX: y also written as f16
//   (clamped to +-65504, rounded as to_f16.comp's QN_X_F32 does) into binding 3, for the f16 prefill matmuls
//   (forward.c norm(): one pass instead of rmsnorm + to_f16_f32); dim a multiple of 4 and x, w, y 16-byte aligned
//   (vec4 moves). Same y either way.
// Bindings: 0 x f32 [rows, dim]
//           1 w f32 [dim]        (shared by all rows)
//           2 y f32 [rows, dim]  (may be the same buffer range as x: in place is safe)
//           3 hx f16 [rows, dim] as uvec2 (4 halves), QN_HX only
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
#if defined(QN_HX)
layout(binding = 0, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1, std430) readonly buffer W4 { vec4 w4[]; };
layout(binding = 2, std430) writeonly buffer Y4 { vec4 y4[]; };
layout(binding = 3, std430) writeonly buffer H { uvec2 h2[]; };
#endif

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
#if defined(QN_HX)
    for (uint q = lid; q < pc.dim / 4u; q += QN_WG) { // 4 values per invocation, consecutive invocations adjacent
        vec4 v = x4[base / 4u + q], g = w4[q];
        vec4 o;
        for (uint k = 0u; k < 4u; k++) o[k] = v[k] * r * (g[k] + pc.w_add);
        y4[base / 4u + q] = o;
        o = clamp(o, vec4(-65504.0), vec4(65504.0));
        h2[base / 4u + q] = uvec2(packHalf2x16(o.xy), packHalf2x16(o.zw));
    }
#else
    for (uint i = lid; i < pc.dim; i += QN_WG) y[base + i] = x[base + i] * r * (w[i] + pc.w_add);
#endif
}
