#version 450
// topk.comp — top-k (value, id) candidates of the logits for the host sampler, deterministic: ordered by
// value descending, then id ascending; NaN counts as -inf. One pass reduces every segment of QN_SEG
// candidates to its best k; the host repeats passes (src = candidates) until a single group remains.
//
// Bindings: 0 x     f32 logits [n]                         (src = QN_TOPK_SRC_LOGITS: id = index)
//           1 cin   (value bits, id) uvec2 [n]              (src = QN_TOPK_SRC_CAND)
//           2 cout  (value bits, id) uvec2 [groups * k]; group g writes its best k at g * k, sorted
// Push:     qn_pc_topk { n, k, src }   (k <= QN_SEG / 2 so each pass shrinks the list)
// Spec:     0 QN_WG workgroup size (default 256)
//           1 QN_SEG candidates per group, a power of two (default 2048; 8 bytes of shared memory each)
// Dispatch: ceil(n / QN_SEG) groups (qn_vk_grid). Padding entries are (-inf, 0xffffffff).
// Method: a bitonic sort of the segment in shared memory (log2(SEG) * (log2(SEG) + 1) / 2 steps).
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_SEG = 2048;
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_topk pc; };
layout(binding = 0, std430) readonly buffer X { float x[]; };
layout(binding = 1, std430) readonly buffer Cin { uvec2 cin[]; };
layout(binding = 2, std430) writeonly buffer Cout { uvec2 cout_[]; };

shared float sv[QN_SEG];
shared uint si[QN_SEG];

const uint NONE = 0xffffffffu;
#define NEG_INF uintBitsToFloat(0xff800000u) // -inf

// candidate a comes before candidate b
bool before(float av, uint ai, float bv, uint bi) { return av > bv || (av == bv && ai < bi); }

void main()
{
    uint g = qn_group_id();
    uint ngroups = (pc.n + QN_SEG - 1u) / QN_SEG;
    if (g >= ngroups) return; // uniform over the workgroup
    uint lid = gl_LocalInvocationIndex;
    for (uint j = lid; j < QN_SEG; j += QN_WG) {
        uint idx = g * QN_SEG + j;
        float v = NEG_INF;
        uint id = NONE;
        if (idx < pc.n) {
            if (pc.src == QN_TOPK_SRC_LOGITS) {
                v = x[idx];
                id = idx;
            } else {
                v = uintBitsToFloat(cin[idx].x);
                id = cin[idx].y;
            }
            if (isnan(v)) v = NEG_INF;
        }
        sv[j] = v;
        si[j] = id;
    }
    barrier();
    for (uint size = 2u; size <= QN_SEG; size <<= 1u) {
        for (uint stride = size >> 1u; stride > 0u; stride >>= 1u) {
            for (uint t = lid; t < QN_SEG / 2u; t += QN_WG) {
                uint lo = 2u * t - (t & (stride - 1u)), hi = lo + stride;
                bool first = (lo & size) == 0u; // this block sorts best-first
                float lv = sv[lo], hv = sv[hi];
                uint li = si[lo], hi_id = si[hi];
                bool swap = first ? before(hv, hi_id, lv, li) : before(lv, li, hv, hi_id);
                if (swap) {
                    sv[lo] = hv; si[lo] = hi_id;
                    sv[hi] = lv; si[hi] = li;
                }
            }
            barrier();
        }
    }
    for (uint j = lid; j < pc.k; j += QN_WG) cout_[g * pc.k + j] = uvec2(floatBitsToUint(sv[j]), si[j]);
}
