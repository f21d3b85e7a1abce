#version 450
// matvec.comp — y[rows] = W[rows, cols] · x[cols], f32 accumulation.
//
// Variants (defines): QN_W_BF16 | QN_W_F16 | QN_W_F32 (weight dtype); QN_SUBGROUP (subgroupAdd reduction,
//   else a shared-memory tree).
// Bindings: 0 W   row-major [rows, cols] of the weight dtype (16-bit values packed two per uint)
//           1 x   f32 [T, cols]
//           2 y   f32 [T, rows]   (read too when flags & QN_MATVEC_ACCUMULATE)
// Push:     qn_pc_matvec { rows, cols, flags }
// Spec:     0 QN_WG   workgroup size (default 128)
//           1 QN_ROWS rows per workgroup (default 2)
// Dispatch: ceil(rows / QN_ROWS) groups spread over x/y (qn_vk_grid), times T in z (one token per z;
//           small T only: each token re-reads W — prefill uses matmul).
// Layout: workgroup g owns rows [g*QN_ROWS, +QN_ROWS). Its invocations stride together over the row in
// 16-byte chunks (8 bf16/f16 or 4 f32 per uvec4 load, coalesced); each x chunk is loaded once and used
// for all QN_ROWS rows. When cols is not a multiple of the chunk width, a scalar path handles the row
// (any alignment). With subgroups, all rows are reduced together behind one barrier; without, row by
// row with qn_wg_sum (reduce.glsl).
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_ROWS = 2;
#include "pc.h"
#include "types.glsl"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_matvec pc; };
layout(binding = 0, std430) readonly buffer W4 { uvec4 w4[]; };
layout(binding = 0, std430) readonly buffer W1 { uint w1[]; };
layout(binding = 1, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1, std430) readonly buffer X1 { float x1[]; };
layout(binding = 2, std430) buffer Y { float y[]; };

#if defined(QN_W_F32)
const uint CW = 4u; // elements per 16-byte chunk
float w_at(uint e) { return uintBitsToFloat(w1[e]); }
float chunk_dot(uvec4 w, uint c, uint xb4) { return dot(uintBitsToFloat(w), x4[xb4 + c]); }
#else
const uint CW = 8u;
#if defined(QN_W_BF16)
float w_at(uint e) { return qn_bf16_at(w1[e >> 1], e); }
#define UNPACK8 qn_bf16x8
#else
float w_at(uint e) { return qn_f16_at(w1[e >> 1], e); }
#define UNPACK8 qn_f16x8
#endif
float chunk_dot(uvec4 w, uint c, uint xb4)
{
    vec4 a, b;
    UNPACK8(w, a, b);
    return dot(a, x4[xb4 + 2u * c]) + dot(b, x4[xb4 + 2u * c + 1u]);
}
#endif

void main()
{
    uint lid = gl_LocalInvocationIndex;
    uint r0 = qn_group_id() * QN_ROWS;
    if (r0 >= pc.rows) return; // uniform over the workgroup
    uint xb = gl_WorkGroupID.z * pc.cols, yb = gl_WorkGroupID.z * pc.rows; // token t = z
    float acc[QN_ROWS];
    for (uint r = 0u; r < QN_ROWS; r++) acc[r] = 0.0;

    if (pc.cols % CW == 0u) {
        uint nch = pc.cols / CW;
        for (uint c = lid; c < nch; c += QN_WG)
            for (uint r = 0u; r < QN_ROWS; r++)
                if (r0 + r < pc.rows) acc[r] += chunk_dot(w4[(r0 + r) * nch + c], c, xb / 4u);
    } else {
        for (uint c = lid; c < pc.cols; c += QN_WG) {
            float xv = x1[xb + c];
            for (uint r = 0u; r < QN_ROWS; r++)
                if (r0 + r < pc.rows) acc[r] += w_at((r0 + r) * pc.cols + c) * xv;
        }
    }
#ifdef QN_SUBGROUP
    // All rows at once: one subgroupAdd per row, partials to shared memory, ONE barrier, then invocation
    // r adds up row r. Needs QN_ROWS * (number of subgroups) <= QN_WG slots of qn_red (reduce.glsl),
    // i.e. QN_ROWS <= subgroup size; otherwise the per-row reduction below is used.
    uint nsub = (QN_WG + gl_SubgroupSize - 1u) / gl_SubgroupSize;
    if (QN_ROWS * nsub <= QN_WG) {
        for (uint r = 0u; r < QN_ROWS; r++) {
            float s = subgroupAdd(acc[r]);
            if (subgroupElect()) qn_red[r * nsub + gl_SubgroupID] = s;
        }
        barrier();
        if (lid < QN_ROWS && r0 + lid < pc.rows) {
            float s = 0.0;
            for (uint i = 0u; i < nsub; i++) s += qn_red[lid * nsub + i];
            uint i = yb + r0 + lid;
            y[i] = (pc.flags & QN_MATVEC_ACCUMULATE) != 0u ? y[i] + s : s;
        }
        return;
    }
#endif
    for (uint r = 0u; r < QN_ROWS; r++) {
        float s = qn_wg_sum(acc[r]);
        if (lid == 0u && r0 + r < pc.rows) {
            uint i = yb + r0 + r;
            y[i] = (pc.flags & QN_MATVEC_ACCUMULATE) != 0u ? y[i] + s : s;
        }
    }
}
