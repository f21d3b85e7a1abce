#version 450
// moe_sort.comp — prefill MoE: group the (token, k) pairs by expert and cut them into tiles for the grouped
// kernels (moe_grouped.comp). Deterministic: no order depends on timing (the only atomics are integer
// counts in shared memory).
//
// Workgroup e (0 <= e <= E; e = E is the shared expert, which every token uses once):
//   1. counts every expert's pairs (histogram of ids over all T·K entries; cnt[E] = T),
//   2. off  = sum_{e' < e} cnt[e'],  toff = sum_{e' < e} ceil(cnt[e'] / tile_t)  (exact: counts < 2^24),
//   3. writes its tiles[toff + j] = (e, off + j·tile_t, min(tile_t, cnt[e] - j·tile_t), 0),
//      and workgroup E marks the unused tiles[.. max_tiles) with expert -1,
//   4. compacts its pairs into list[off ..] in ascending token order: list entry = t·(K+1) + k
//      (the shared expert: t·(K+1) + K for every t).
// ids of one token must be distinct (the router's are); ids outside [0, E) are dropped.
//
// Bindings: 0 ids   int32 [T, K]
//           1 list  int32 [T·K + T]
//           2 tiles int32 [max_tiles, 4]
// Push:     qn_pc_moe (T, E, K, tile_t, max_tiles); max_tiles >= QN_MOE_MAX_TILES(T, E, K, tile_t)
// Spec:     0 QN_WG workgroup size (default 256)
// Dispatch: E + 1 groups (qn_vk_grid). Limits: E <= QN_MOE_MAX_E, T·K < 2^24.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
#include "pc.h"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer Ids { int ids[]; };
layout(binding = 1, std430) writeonly buffer List { int list[]; };
layout(binding = 2, std430) writeonly buffer Tiles { int tiles[]; };

shared uint s_cnt[QN_MOE_MAX_E + 1u];
shared uint s_scan[QN_WG];

// inclusive prefix sum of v over the workgroup (every invocation must call it)
uint scan_incl(uint v, uint lid)
{
    s_scan[lid] = v;
    barrier();
    for (uint o = 1u; o < QN_WG; o <<= 1u) {
        uint a = lid >= o ? s_scan[lid - o] : 0u;
        barrier();
        s_scan[lid] += a;
        barrier();
    }
    return s_scan[lid];
}

void write_tiles(uint e, uint off, uint toff, uint lid)
{
    uint cnt = s_cnt[e], tt = pc.tile_t, nt = (cnt + tt - 1u) / tt;
    for (uint j = lid; j < nt; j += QN_WG) {
        uint i = toff + j;
        if (i >= pc.max_tiles) break;
        tiles[4u * i] = int(e);
        tiles[4u * i + 1u] = int(off + j * tt);
        tiles[4u * i + 2u] = int(min(tt, cnt - j * tt));
        tiles[4u * i + 3u] = 0;
    }
    if (e == pc.E)
        for (uint i = toff + nt + lid; i < pc.max_tiles; i += QN_WG) {
            tiles[4u * i] = -1;
            tiles[4u * i + 1u] = 0;
            tiles[4u * i + 2u] = 0;
            tiles[4u * i + 3u] = 0;
        }
}

void main()
{
    uint e = qn_group_id();
    uint E = pc.E, K = pc.K, T = pc.T;
    if (e > E || E > QN_MOE_MAX_E || pc.tile_t == 0u) return; // uniform over the workgroup
    uint lid = gl_LocalInvocationIndex;
    for (uint i = lid; i <= E; i += QN_WG) s_cnt[i] = i == E ? T : 0u;
    barrier();
    for (uint j = lid; j < T * K; j += QN_WG) {
        int x = ids[j];
        if (x >= 0 && uint(x) < E) atomicAdd(s_cnt[uint(x)], 1u);
    }
    barrier();
    float po = 0.0, pt = 0.0;
    for (uint i = lid; i < e; i += QN_WG) {
        po += float(s_cnt[i]);
        pt += float((s_cnt[i] + pc.tile_t - 1u) / pc.tile_t);
    }
    uint off = uint(qn_wg_sum(po)), toff = uint(qn_wg_sum(pt));
    write_tiles(e, off, toff, lid);
    if (e == E) {
        for (uint t = lid; t < T; t += QN_WG) list[off + t] = int(t * (K + 1u) + K);
        return;
    }
    uint run = 0u;
    for (uint base = 0u; base < T; base += QN_WG) {
        uint t = base + lid, flag = 0u, kk = 0u;
        if (t < T)
            for (uint k = 0u; k < K; k++)
                if (ids[t * K + k] == int(e)) { flag = 1u; kk = k; }
        uint incl = scan_incl(flag, lid);
        if (flag != 0u) list[off + run + incl - 1u] = int(t * (K + 1u) + kk);
        run += s_scan[QN_WG - 1u];
        barrier(); // s_scan is rewritten by the next round
    }
}
