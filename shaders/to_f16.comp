#version 450
// to_f16.comp — the operands of matmul_cm_h.comp: a weight decoded from its ggml blocks (QN_Q8_0 | QN_Q4_0 |
// QN_Q4_K | QN_Q5_K | QN_Q6_K, the values of loader/quant.c through common/qtile.glsl, rounded to f16) or f32
// activations (QN_X_F32: clamped to +-65504, rounded to f16), written as f16 [rows][cols].
// Bindings: 0 source (blocks: the binding at row 0, a multiple of 16 bytes for Q4_K / Q5_K; or f32), 1 f16
//           output as uvec4 (8 halves).
// Push:     qn_pc_to_f16 { rows, cols, ld, off, out8 } (ld and off: f32 source only; cols a multiple of 8).
// Spec:     0 QN_WG (default 256). Dispatch: ceil(rows * cols / 8 / QN_WG) groups (qn_vk_grid); one invocation per
//           8 values.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
#include "pc.h"
#include "grid.glsl"
#include "types.glsl"

layout(push_constant) uniform PC { qn_pc_to_f16 pc; };
layout(binding = 0, std430) readonly buffer S4 { uvec4 s4[]; };
layout(binding = 0, std430) readonly buffer S1 { uint s1[]; };
layout(binding = 1, std430) writeonly buffer O { uvec4 o4[]; };

#if !defined(QN_X_F32)
#define QN_QW(i) s1[i]
#define QN_QW4(i) s4[i]
#include "qtile.glsl"
#endif

void main()
{
    uint i = qn_group_id() * QN_WG + gl_LocalInvocationIndex, cg = pc.cols / 8u;
    if (i >= pc.rows * cg) return;
    uint r = i / cg, c = (i % cg) * 8u;
    vec4 a, b;
#if defined(QN_X_F32)
    uint o = pc.off + r * pc.ld + c;
    for (uint k = 0u; k < 4u; k++) {
        a[k] = uintBitsToFloat(s1[o + k]);
        b[k] = uintBitsToFloat(s1[o + 4u + k]);
    }
    a = clamp(a, vec4(-65504.0), vec4(65504.0));
    b = clamp(b, vec4(-65504.0), vec4(65504.0));
#else
    uint rb = r * (pc.cols / QT_QK) * QT_BB;
    qt_decode(qt_fetch(rb, c), rb, c, a, b);
#endif
    o4[pc.out8 + i] = qn_pack_f16x8(a, b);
}
