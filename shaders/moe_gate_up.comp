#version 450
// moe_gate_up.comp — decode (small T) routed-expert GLU: for token t and each of its K experts
//   e = ids[t, k], slot = table[layer, e]:  act[t, k, i] = silu(gate_e[i] · x_t) * (up_e[i] · x_t), i < I
// A matvec over the 2·I rows (gate and up) of K experts read through the slot table. Each token re-reads
// the weights, so prefill uses the grouped path (moe_sort + moe_grouped.comp) instead.
//
// Variants (defines): QN_W_BF16 | QN_W_F16 | QN_W_F32 (expert weight dtype, moe_w.glsl);
//   QN_SUBGROUP (subgroup teams, below), else the workgroup-wide layout with shared-memory reductions.
// Bindings: 0 x     f32 [T, H]  (the post-attention-normed hidden state)
//           1 ids   int32 [T, K]
//           2 table int32 [L, E]
//           3 act   f32 [T, K + 1, act_stride]  (rows 0..K-1 written)
//           4..11 pool0..pool7 (unused pools: bind pool0 again)
// Push:     qn_pc_moe (T, H, I, E, K, layer, n_slots, slots_per_pool, slot_bytes, act_stride)
// Spec:     0 QN_WG     workgroup size (default 128)
//           1 QN_ROWS   intermediate rows i per workgroup (default 4; it reads 2·QN_ROWS weight rows)
//           2 QN_UNROLL 16-byte chunks of each of the two rows a lane loads before using them (default 4)
// Dispatch: K · ceil(I / QN_ROWS) groups (qn_vk_grid; group g: k = g / ceil(I/QN_ROWS), rows block g % ..),
//           times T in z (one token per z).
// Layout (QN_SUBGROUP, H % QN_CW == 0): each full subgroup is a team that computes rows i = i0 + team,
// i0 + team + teams, ...: its lanes stride over gate row i and up row i together in 16-byte chunks
// (coalesced; QN_UNROLL independent loads per row in flight per lane), then subgroupAdd: no barriers.
// Otherwise (no subgroups, a workgroup smaller than a subgroup, or H % QN_CW != 0) the whole workgroup strides
// over each row, x chunks loaded once for all 2·QN_ROWS rows, reduced by qn_wg_sum (reduce.glsl); a scalar
// path handles H % QN_CW != 0. Each row's sum has a fixed order that does not depend on the slot, so
// streaming == resident bit for bit. An absent slot (table -1, bad id) gives NaN activations instead of
// reading out of bounds.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_ROWS = 4;
layout(constant_id = 2) const uint QN_UNROLL = 4;
#include "pc.h"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 0, std430) readonly buffer X1 { float x1[]; };
layout(binding = 1, std430) readonly buffer Ids { int ids[]; };
layout(binding = 3, std430) writeonly buffer Act { float act[]; };
#define QN_TABLE_BIND 2
#define QN_POOL_BIND 4
#include "moe_w.glsl"

float acc_g[QN_ROWS], acc_u[QN_ROWS];

// gate row i = chunk row i of the slot, up row i = chunk row I + i (rows are H / QN_CW chunks long)
#define QN_GU_VEC(P4, P1)                                                                   \
    for (uint c = lid; c < nch; c += QN_WG) {                                               \
        vec4 xa = x4[xb4 + c * (QN_CW / 4u)];                                               \
        vec4 xb = QN_CW == 8u ? x4[xb4 + c * 2u + 1u] : vec4(0.0);                          \
        for (uint r = 0u; r < QN_ROWS; r++) {                                               \
            if (i0 + r < pc.I) {                                                            \
                acc_g[r] += qn_w_chunk_dot(P4[g4 + r * nch + c], xa, xb);                   \
                acc_u[r] += qn_w_chunk_dot(P4[u4 + r * nch + c], xa, xb);                   \
            }                                                                               \
        }                                                                                   \
    }

#ifdef QN_SUBGROUP
// one team's gate and up dot products for row i: g4 / u4 = first chunk of the rows, S lanes
#define QN_GU_TEAM(P4, P1)                                                                  \
    for (uint c0 = lane; c0 < nch; c0 += QN_UNROLL * S) {                                   \
        uvec4 wg_[QN_UNROLL], wu_[QN_UNROLL];                                               \
        [[unroll]] for (uint j = 0u; j < QN_UNROLL; j++) {                                  \
            uint c = min(c0 + j * S, nch - 1u); /* clamped: loaded, not used */             \
            wg_[j] = P4[g4 + c];                                                            \
            wu_[j] = P4[u4 + c];                                                            \
        }                                                                                   \
        [[unroll]] for (uint j = 0u; j < QN_UNROLL; j++) {                                  \
            uint c = c0 + j * S;                                                            \
            if (c < nch) {                                                                  \
                vec4 xa = x4[xb4 + c * (QN_CW / 4u)];                                       \
                vec4 xb = QN_CW == 8u ? x4[xb4 + c * 2u + 1u] : vec4(0.0);                  \
                g += qn_w_chunk_dot(wg_[j], xa, xb);                                        \
                u += qn_w_chunk_dot(wu_[j], xa, xb);                                        \
            }                                                                               \
        }                                                                                   \
    }

// the subgroup-team layout; false when it does not apply (the caller uses the workgroup-wide one)
bool gate_up_teams(uint p, uint sb, uint i0, uint t, uint ab)
{
    uint S = gl_SubgroupSize, teams = QN_WG / S, team = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    if (teams == 0u || pc.H % QN_CW != 0u) return false; // uniform
    uint nch = pc.H / QN_CW, xb4 = t * pc.H / 4u;
    for (uint ii = team; ii < QN_ROWS && team < teams; ii += teams) {
        uint i = i0 + ii;
        if (i >= pc.I) break;
        uint g4 = sb / 16u + i * nch, u4 = g4 + pc.I * nch;
        float g = 0.0, u = 0.0;
        QN_POOL_SWITCH(p, QN_GU_TEAM)
        g = subgroupAdd(g);
        u = subgroupAdd(u);
        if (subgroupElect()) act[ab + i] = qn_silu(g) * u;
    }
    return true;
}
#endif

void main()
{
    uint lid = gl_LocalInvocationIndex;
    uint nblk = (pc.I + QN_ROWS - 1u) / QN_ROWS;
    uint g = qn_group_id(), k = g / nblk, i0 = (g % nblk) * QN_ROWS, t = gl_WorkGroupID.z;
    if (k >= pc.K) return; // uniform over the workgroup
    uint ab = (t * (pc.K + 1u) + k) * pc.act_stride;
    int s = qn_moe_slot(ids[t * pc.K + k]);
    if (s < 0) {
        for (uint r = lid; r < QN_ROWS; r += QN_WG)
            if (i0 + r < pc.I) act[ab + i0 + r] = uintBitsToFloat(0x7fc00000u);
        return;
    }
    uint p = qn_slot_pool(s), sb = qn_slot_byte(s), H = pc.H;
#ifdef QN_SUBGROUP
    if (gate_up_teams(p, sb, i0, t, ab)) return;
#endif
    for (uint r = 0u; r < QN_ROWS; r++) acc_g[r] = acc_u[r] = 0.0;
    if (H % QN_CW == 0u) {
        uint nch = H / QN_CW, xb4 = t * H / 4u;
        uint g4 = sb / 16u + i0 * nch, u4 = g4 + pc.I * nch;
        QN_POOL_SWITCH(p, QN_GU_VEC)
    } else {
        uint ge = sb / QN_ESZ + i0 * H, ue = ge + pc.I * H;
        for (uint c = lid; c < H; c += QN_WG) {
            float xv = x1[t * H + c];
            for (uint r = 0u; r < QN_ROWS; r++) {
                if (i0 + r < pc.I) {
                    acc_g[r] += qn_pool_elem(p, ge + r * H + c) * xv;
                    acc_u[r] += qn_pool_elem(p, ue + r * H + c) * xv;
                }
            }
        }
    }
    for (uint r = 0u; r < QN_ROWS; r++) {
        float gs = qn_wg_sum(acc_g[r]);
        float us = qn_wg_sum(acc_u[r]);
        if (lid == 0u && i0 + r < pc.I) act[ab + i0 + r] = qn_silu(gs) * us;
    }
}
