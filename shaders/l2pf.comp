#version 450
// l2pf.comp — an L2 prefetch of a byte range of one buffer (a weight the next kernels read): each lane loads one word
// per 32-byte sector (the DRAM / L2 sector), and each group writes the xor of its words into its own float of a small
// scratch, so no load is dead code. forward.c records it with no barrier before it or after the dispatch it runs
// beside (env QNEXT_NEXT_PF: the next layer's input projection beside the split expert down), so it only warms L2.
// Bindings: 0 src (bound at the range's first byte), 1 scratch f32 [>= 1] (float g % its length per group)
// Push:     qn_pc_copy { n: bytes of the range (a multiple of 4) }
// Spec:     0 QN_WG (256), 1 QN_LOADS: loads per lane (8; a chunk = 32 QN_WG QN_LOADS bytes per group)
// Dispatch: ceil(n / chunk) groups.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_LOADS = 8;
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_copy pc; };
layout(binding = 0, std430) readonly buffer Src { uint src[]; };
layout(binding = 1, std430) writeonly buffer Scr { float scr[]; };

shared uint qn_acc;

void main()
{
    uint g = qn_group_id(), lid = gl_LocalInvocationIndex, o0 = g * 32u * QN_WG * QN_LOADS, v = 0u;
    if (lid == 0u) qn_acc = 0u;
    barrier();
    if (o0 + 4u > pc.n) return; // grid padding (uniform)
    uint w[QN_LOADS];
    [[unroll]] for (uint j = 0u; j < QN_LOADS; j++) w[j] = src[min(o0 + 32u * (lid + QN_WG * j), pc.n - 4u) >> 2u];
    [[unroll]] for (uint j = 0u; j < QN_LOADS; j++) v ^= w[j];
    atomicXor(qn_acc, v);
    barrier();
    if (lid == 0u) scr[g % uint(scr.length())] = uintBitsToFloat(qn_acc & 0x7fffffu);
}
