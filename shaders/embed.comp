#version 450
// embed.comp — gather rows of the token-embedding table into the f32 residual stream.
//
// Variants (defines): QN_W_BF16 | QN_W_F16 | QN_W_F32 (table dtype).
// Bindings: 0 table  rows [row0, row0 + rows) of embed_tokens [V, H], the variant's dtype (16-bit values
//                    packed two per uint, element i of the piece at bits 16 * (i & 1) of word i / 2)
//                    (the binding must cover whole 32-bit words: pad 16-bit tables of odd size)
//           1 ids    int32 [T]
//           2 x      f32 [T, H]; row t is written only when row0 <= ids[t] < row0 + rows
// Push:     qn_pc_embed { T, H, row0, rows }
// Spec:     0 QN_WG workgroup size (default 256)
// Dispatch: ceil(H / QN_WG) groups (qn_vk_grid) x T in z (token t = gl_WorkGroupID.z).
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_embed pc; };
layout(binding = 0, std430) readonly buffer Tab { uint tab[]; };
layout(binding = 1, std430) readonly buffer Ids { int ids[]; };
layout(binding = 2, std430) writeonly buffer X { float x[]; };

void main()
{
    uint t = gl_WorkGroupID.z;
    uint i = qn_group_id() * QN_WG + gl_LocalInvocationIndex;
    if (t >= pc.T || i >= pc.H) return;
    int id = ids[t];
    if (id < int(pc.row0) || uint(id) - pc.row0 >= pc.rows) return; // another piece holds this row
    uint e = (uint(id) - pc.row0) * pc.H + i;
#if defined(QN_W_F32)
    float v = uintBitsToFloat(tab[e]);
#elif defined(QN_W_BF16)
    float v = qn_bf16_at(tab[e >> 1], e);
#else
    float v = qn_f16_at(tab[e >> 1], e);
#endif
    x[t * pc.H + i] = v;
}
