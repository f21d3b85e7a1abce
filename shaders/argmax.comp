#version 450
// argmax.comp — greedy token: the index of the largest logit, in two passes (deterministic: NaN never wins,
// ties go to the lowest id, the result does not depend on the number of workgroups).
//
// Bindings: 0 x     f32 logits [n]                      (pass 0)
//           1 part  (value f32, id u32) pairs [ngroups] (written by pass 0, read by pass 1)
//           2 out   int32; pass 1 writes out[out_index] = id (-1 when every logit is NaN) and
//                   out[out_index + 1] = the bits of its logit (f32)
// Push:     qn_pc_argmax { n, per_group, ngroups, out_index }
// Spec:     0 QN_WG workgroup size (default 256)
//           1 QN_PASS 0 = per-workgroup best of [g * per_group, +per_group), 1 = final (dispatch 1 group)
// Dispatch: pass 0: ngroups = ceil(n / per_group) groups (qn_vk_grid); pass 1: 1 group.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_PASS = 0;
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_argmax pc; };
layout(binding = 0, std430) readonly buffer X { float x[]; };
layout(binding = 1, std430) buffer Part { uvec2 part[]; }; // (floatBitsToUint(value), id)
layout(binding = 2, std430) buffer Out { int outv[]; };

shared float s_val[QN_WG];
shared uint s_id[QN_WG];

const uint NONE = 0xffffffffu;

// (v, i) beats (bv, bi): larger value, or equal value and lower id; NaN never beats anything
bool better(float v, uint i, float bv, uint bi) { return v > bv || (v == bv && i < bi); }

void main()
{
    uint lid = gl_LocalInvocationIndex;
    float bv = uintBitsToFloat(0xff800000u); // -inf
    uint bi = NONE;
    if (QN_PASS == 0u) {
        uint g = qn_group_id();
        if (g >= pc.ngroups) return; // uniform over the workgroup
        uint lo = g * pc.per_group, hi = min(pc.n, lo + pc.per_group);
        for (uint i = lo + lid; i < hi; i += QN_WG) {
            float v = x[i];
            if (better(v, i, bv, bi)) { bv = v; bi = i; }
        }
    } else {
        for (uint g = lid; g < pc.ngroups; g += QN_WG) {
            float v = uintBitsToFloat(part[g].x);
            uint i = part[g].y;
            if (i != NONE && better(v, i, bv, bi)) { bv = v; bi = i; }
        }
    }
    s_val[lid] = bv;
    s_id[lid] = bi;
    barrier();
    for (uint s = 1u; s < QN_WG; s *= 2u) { // tree over any workgroup size; order-independent result
        if (lid % (2u * s) == 0u && lid + s < QN_WG) {
            float v = s_val[lid + s];
            uint i = s_id[lid + s];
            if (i != NONE && (s_id[lid] == NONE || better(v, i, s_val[lid], s_id[lid]))) {
                s_val[lid] = v;
                s_id[lid] = i;
            }
        }
        barrier();
    }
    if (lid == 0u) {
        if (QN_PASS == 0u) part[qn_group_id()] = uvec2(floatBitsToUint(s_val[0]), s_id[0]);
        else {
            outv[pc.out_index] = s_id[0] == NONE ? -1 : int(s_id[0]);
            outv[pc.out_index + 1u] = floatBitsToInt(s_val[0]);
        }
    }
}
