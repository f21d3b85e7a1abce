#version 450
// eltwise.comp — y[i] = op(a[i], b[i]) for i < n, f32.
//
// Bindings: 0 a f32 [n]
//           1 b f32 [n]   (unused by QN_EW_SILU; bind any buffer, e.g. a again)
//           2 y f32 [n]   (may alias a or b: in place is safe)
// Push:     qn_pc_eltwise { n }
// Spec:     0 QN_WG workgroup size (default 256)
//           1 QN_OP one of QN_EW_ADD, QN_EW_MUL, QN_EW_SILU, QN_EW_SIGMOID_GATE, QN_EW_SILU_MUL (pc.h)
// Dispatch ceil(n / QN_WG) groups (qn_vk_grid).
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_OP = 0;
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_eltwise pc; };
layout(binding = 0, std430) readonly buffer A { float a[]; };
layout(binding = 1, std430) readonly buffer B { float b[]; };
layout(binding = 2, std430) writeonly buffer Y { float y[]; };

void main()
{
    uint i = qn_group_id() * QN_WG + gl_LocalInvocationIndex;
    if (i >= pc.n) return;
    float av = a[i];
    float r;
    if (QN_OP == QN_EW_ADD) r = av + b[i];
    else if (QN_OP == QN_EW_MUL) r = av * b[i];
    else if (QN_OP == QN_EW_SILU) r = qn_silu(av);
    else if (QN_OP == QN_EW_SIGMOID_GATE) r = av * qn_sigmoid(b[i]);
    else r = qn_silu(av) * b[i];
    y[i] = r;
}
