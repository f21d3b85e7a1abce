#version 450
// expert_gather.comp — the host tier's gather (runtime/expert_host.h, QNEXT_HOST_GATHER=1): before layer `layer`'s
// expert kernels, every routed expert whose slot-table entry is not a VRAM cache slot (its host slot, or a staging
// slot left by an earlier gather) is copied from the layer's host memory (read over PCIe in large coalesced uvec4
// runs) into a VRAM staging slot, and its table entry is pointed there; the expert kernels then read VRAM only.
// Entries of VRAM cache slots stay as they are. The host rewrites the whole table before a call without a gather.
//
// Sources: mapped = 0: the layer's host slab (E slots of slot_words, in slot layout) and down slab; mapped = 1
// (QNEXT_HOST_MMAP: the model file's page cache imported): part p (gate, up, down) of expert e at word
// offs[(layer E + e) 3 + p] of src, pw<p> words, to word pd<p> of its slot (the down set where bit p of pset).
// Modes: 0 (decode): ids[0..n), staging slot stage_base + i (buffer slot stage_at + i); 1 (mark, prefill): flags
// bound at binding 1, flags[ids[j]] = 1 for j < n; 2 (prefill): every expert e with flags[e] != 0 (flags bound at
// binding 0, n = E) into staging slot stage_base + e.
//
// Bindings: 0 ids int32 [n] (mode 2: flags [E])   1 table int32 [L, E] (mode 1: flags [E], written)
//           2 src uvec4    3 dst uvec4 (staging pool)    4 dsrc uvec4    5 ddst uvec4 (staging down pool)
//           6 offs uint [L, E, 3] (mapped; any buffer otherwise)
// Push:     qn_pc_gather (pc_copy.h)
// Spec:     0 QN_WG workgroup size (default 256)
// Dispatch: modes 0 / 2: (G, n); workgroup (g, i) copies words g*WG + lane, + G*WG, ... of expert i's parts.
//           mode 1: (ceil(n / WG), 1).
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
layout(binding = 6, std430) readonly buffer Offs { uint offs[]; };

// Part p of the expert at table index `at` into buffer slot `sl` (mapped sources).
void copy_part(uint p, uint at, uint sl, uint g, uint G, uint lane)
{
    uint n = p == 0 ? pc.pw0 : p == 1 ? pc.pw1 : pc.pw2, d = p == 0 ? pc.pd0 : p == 1 ? pc.pd1 : pc.pd2;
    uint so = offs[at * 3 + p];
    if (((pc.pset >> p) & 1u) != 0) {
        uint doff = sl * pc.dslot_words + d;
        for (uint w = g * QN_WG + lane; w < n; w += G * QN_WG) ddst[doff + w] = src[so + w];
    } else {
        uint doff = sl * pc.slot_words + d;
        for (uint w = g * QN_WG + lane; w < n; w += G * QN_WG) dst[doff + w] = src[so + w];
    }
}

void main()
{
    uint i = gl_WorkGroupID.y, g = gl_WorkGroupID.x, G = gl_NumWorkGroups.x, lane = gl_LocalInvocationIndex;
    if (pc.mode == 1) {
        uint j = g * QN_WG + lane;
        if (j < pc.n && ids[j] >= 0 && uint(ids[j]) < pc.E) tab[ids[j]] = 1;
        return;
    }
    int e = pc.mode == 2 ? int(i) : ids[i];
    if (i >= pc.n || e < 0 || uint(e) >= pc.E || (pc.mode == 2 && ids[i] == 0)) return;
    uint at = pc.layer * pc.E + uint(e), sl = pc.stage_at + i;
    int s = tab[at];
    if (s >= 0 && uint(s) < pc.stage_base) return;   // a VRAM cache slot: read in place
    barrier();                                       // every lane has read the entry before lane 0 rewrites it
    if (g == 0 && lane == 0) tab[at] = int(pc.stage_base + i);
    if (pc.mapped != 0) {
        copy_part(0, at, sl, g, G, lane);
        copy_part(1, at, sl, g, G, lane);
        copy_part(2, at, sl, g, G, lane);
        return;
    }
    uint n = pc.slot_words, so = uint(e) * n, doff = sl * n;
    for (uint w = g * QN_WG + lane; w < n; w += G * QN_WG) dst[doff + w] = src[so + w];
    n = pc.dslot_words;
    so = uint(e) * n;
    doff = sl * n;
    for (uint w = g * QN_WG + lane; w < n; w += G * QN_WG) ddst[doff + w] = dsrc[so + w];
}
