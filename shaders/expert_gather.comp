#version 450
// expert_gather.comp — the host tier's decode gather (runtime/expert_host.h, QNEXT_HOST_GATHER=1): before layer
// `layer`'s expert kernels, every routed expert whose slot-table entry is not a VRAM cache slot (its host slot, or
// a staging slot left by an earlier gather) is copied from the layer's host slab (system memory, read over PCIe in
// large coalesced uvec4 runs) into VRAM staging slot `stage_base + i` (i = its index among the call's ids), and its
// table entry is pointed there; the expert kernels then read VRAM only. Entries of VRAM cache slots stay as they
// are. The host rewrites the whole table before a call that runs without a gather.
//
// Bindings: 0 ids int32 [n]            routed expert ids of the call (T = 1: n = K; distinct)
//           1 table int32 [L, E]       slot table (read, and written for the gathered ids)
//           2 src uvec4                layer's host slab, E slots of slot_words
//           3 dst uvec4                staging pool: staging slot stage_base + i at (stage_at + i) * slot_words
//           4 dsrc uvec4               layer's host down slab, E slots of dslot_words (any buffer when 0)
//           5 ddst uvec4               staging down pool
// Push:     qn_pc_gather { layer, E, n, stage_base, slot_words, dslot_words, stage_at }
// Spec:     0 QN_WG workgroup size (default 256)
// Dispatch: (G, n): workgroup (g, i) copies words g*WG + lane, + G*WG, ... of id i's slots.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
#include "pc.h"

layout(push_constant) uniform PC { qn_pc_gather pc; };
layout(binding = 0, std430) readonly buffer Ids { int ids[]; };
layout(binding = 1, std430) buffer Tab { int tab[]; };
layout(binding = 2, std430) readonly buffer Src { uvec4 src[]; };
layout(binding = 3, std430) writeonly buffer Dst { uvec4 dst[]; };
layout(binding = 4, std430) readonly buffer DSrc { uvec4 dsrc[]; };
layout(binding = 5, std430) writeonly buffer DDst { uvec4 ddst[]; };

void main()
{
    uint i = gl_WorkGroupID.y, g = gl_WorkGroupID.x, G = gl_NumWorkGroups.x, lane = gl_LocalInvocationIndex;
    int e = ids[i];
    if (i >= pc.n || e < 0 || uint(e) >= pc.E) return;
    uint at = pc.layer * pc.E + uint(e);
    int s = tab[at];
    if (s >= 0 && uint(s) < pc.stage_base) return;   // a VRAM cache slot: read in place
    barrier();                                       // every lane has read the entry before lane 0 rewrites it
    if (g == 0 && lane == 0) tab[at] = int(pc.stage_base + i);
    uint n = pc.slot_words, so = uint(e) * n, doff = (pc.stage_at + i) * n;
    for (uint w = g * QN_WG + lane; w < n; w += G * QN_WG) dst[doff + w] = src[so + w];
    n = pc.dslot_words;
    so = uint(e) * n;
    doff = (pc.stage_at + i) * n;
    for (uint w = g * QN_WG + lane; w < n; w += G * QN_WG) ddst[doff + w] = dsrc[so + w];
}
