#version 450
// copy.comp — dst = src in 16-byte words, grid-stride: the memory-bandwidth ceiling that
// `qnext selftest --bench` quotes next to the matvec numbers (vkCmdCopyBuffer is no ceiling on some drivers).
//
// Bindings: 0 src uvec4 [n]
//           1 dst uvec4 [n]
// Push:     qn_pc_copy { n }   (count of 16-byte words)
// Spec:     0 QN_WG  workgroup size (default 256)
// Dispatch: any number of groups G (qn_vk_grid over x/y; e.g. 8 per multiprocessor); with N = G * QN_WG
//           invocations, invocation i copies words i, i + N, i + 2N, ...: each step issues 4 independent
//           uvec4 loads before their stores, and a warp's accesses are 512 contiguous bytes.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
#include "pc.h"

layout(push_constant) uniform PC { qn_pc_copy pc; };
layout(binding = 0, std430) readonly buffer S { uvec4 src[]; };
layout(binding = 1, std430) writeonly buffer D { uvec4 dst[]; };

void main()
{
    uint N = gl_NumWorkGroups.x * gl_NumWorkGroups.y * QN_WG;
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * QN_WG + gl_LocalInvocationIndex;
    for (; i + 3u * N < pc.n; i += 4u * N) {
        uvec4 a = src[i], b = src[i + N], c = src[i + 2u * N], d = src[i + 3u * N];
        dst[i] = a;
        dst[i + N] = b;
        dst[i + 2u * N] = c;
        dst[i + 3u * N] = d;
    }
    for (; i < pc.n; i += N) dst[i] = src[i];
}
