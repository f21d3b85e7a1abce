#version 450
// moe_router.comp — per token: softmax top-K routing over the E router logits, plus the shared expert's gate
// and GLU activation, all read from the row of the fused W_moe product m.
//
//   l[e]    = m[t, e] (rounded to bf16 when flags & QN_MOE_ROUND_BF16), e < E
//   ids[t]  = the K largest l (ties: lower expert id first), sorted descending; NaN logits rank last
//   w[t,j]  = softmax(l)[ids[t,j]] in f32, divided by sum_j' w[t,j'] (j' = 0..K-1 in order) when
//             flags & QN_MOE_NORM_TOPK
//   sg[t]   = sigmoid(m[t, E + 2 Is])
//   act[t, K, i] = silu(m[t, E + i]) * m[t, E + Is + i], i < Is   (the shared expert's row of act)
//
// Variants (defines): QN_SUBGROUP (top-K in two stages with subgroupMax/Min, subgroupAdd for the softmax
//   denominator; needs QN_WG >= 32), else the exact rank of every expert and a shared-memory tree.
// Bindings: 0 m   f32 [T, m_stride]
//           1 ids int32 [T, K]   (may be a host-visible buffer: streaming mode reads it on the host)
//           2 w   f32 [T, K]
//           3 sg  f32 [T]
//           4 act f32 [T, K + 1, act_stride]  (only rows K are written)
// Push:     qn_pc_moe (T, E, K, Is, m_stride, act_stride, flags)
// Spec:     0 QN_WG workgroup size (default 256)
// Dispatch: T groups (qn_vk_grid), one token each. Limits: K <= E <= QN_MOE_MAX_E (1024),
//           K <= QN_MOE_MAX_K (64); outside them the token gets ids -1 and NaN weights.
// Ranking: an expert's rank is the number of experts that beat it (larger key, or equal key and lower id),
// an exact total order independent of the workgroup and subgroup sizes. The subgroup variant first keeps
// each subgroup's local top K (K rounds of subgroup max, no barriers), then ranks only those candidates
// (~(QN_WG / subgroup size) · K of them): O(K + candidates) steps per invocation instead of O(E^2 / QN_WG).
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
#include "pc.h"
#include "types.glsl"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer M { float m[]; };
layout(binding = 1, std430) writeonly buffer Ids { int ids[]; };
layout(binding = 2, std430) writeonly buffer Wt { float w[]; };
layout(binding = 3, std430) writeonly buffer Sg { float sg[]; };
layout(binding = 4, std430) writeonly buffer Act { float act[]; };

shared float s_l[QN_MOE_MAX_E];   // the (rounded) logits
shared int s_sel[QN_MOE_MAX_K];   // expert of rank j
shared float s_p[QN_MOE_MAX_K];   // its softmax probability

// round to nearest even, as qn_f32_to_bf16 (NaN stays a quiet NaN)
float round_bf16(float x)
{
    uint u = floatBitsToUint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uintBitsToFloat((u & 0xffff0000u) | 0x00400000u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return uintBitsToFloat(u & 0xffff0000u);
}

float rank_key(float l) { return isnan(l) ? uintBitsToFloat(0xff800000u) : l; } // NaN ranks as -inf
// (key a, expert ia) ranks before (key b, expert ib)
bool beats(float a, uint ia, float b, uint ib) { return a > b || (a == b && ia < ib); }

#ifdef QN_SUBGROUP
const uint EPT = (QN_MOE_MAX_E + QN_WG - 1u) / QN_WG; // most elements per invocation (needs QN_WG >= 32)
// candidate slots: subgroups (at most QN_WG / 4 + 1 of at least 4 invocations, together < QN_WG + 128) times
// min(K <= 64, subgroup size · EPT)
const uint CA = 16u * QN_WG + 64u, CB = (QN_WG + 128u) * EPT;
const uint CMAX = CA < CB ? CA : CB;
shared uint s_cand[CMAX];  // expert ids of the candidates (~0u: none)
shared float s_ckey[CMAX]; // their keys

// Stage 1: each subgroup picks its own top Q = min(K, S·EPT) among the elements e = lid + j·QN_WG of its
// invocations, by Q rounds of subgroupMax / subgroupMin, into candidate slots [sg·Q, sg·Q + Q).
// Returns the number of candidate slots. No barrier: the subgroups run independently.
uint pick_candidates(uint lid, uint E, uint K)
{
    uint Q = min(K, gl_SubgroupSize * EPT), base = gl_SubgroupID * Q, taken = 0u;
    for (uint r = 0u; r < Q; r++) {
        float bk = uintBitsToFloat(0xff800000u);
        uint bi = ~0u;
        for (uint j = 0u; j < EPT; j++) {
            uint e = lid + j * QN_WG;
            if (e < E && (taken & (1u << j)) == 0u) {
                float k = rank_key(s_l[e]);
                if (bi == ~0u || beats(k, e, bk, bi)) { bk = k; bi = e; }
            }
        }
        float mk = subgroupMax(bk);
        uint win = subgroupMin(bk == mk ? bi : ~0u);
        if (subgroupElect()) { s_cand[base + r] = win; s_ckey[base + r] = mk; }
        if (bi != ~0u && win == bi) taken |= 1u << ((bi - lid) / QN_WG);
    }
    return ((QN_WG + gl_SubgroupSize - 1u) / gl_SubgroupSize) * Q;
}

// Stage 2: the global top K are among the candidates (an element in the top K has fewer than K elements
// beating it, so it is in its subgroup's top Q), and every element beating a candidate in the top K is a
// candidate too: ranking the candidates among themselves gives the global ranks.
void select_topk(uint lid, uint E, uint K)
{
    uint C = pick_candidates(lid, E, K);
    barrier();
    for (uint c = lid; c < C; c += QN_WG) {
        uint e = s_cand[c];
        if (e == ~0u) continue;
        float k = s_ckey[c];
        uint r = 0u;
        for (uint j = 0u; j < C; j++) r += (s_cand[j] != ~0u && beats(s_ckey[j], s_cand[j], k, e)) ? 1u : 0u;
        if (r < K) s_sel[r] = int(e);
    }
}
#else
// the rank of each expert = the number of experts beating it: O(E^2 / QN_WG) shared reads
void select_topk(uint lid, uint E, uint K)
{
    for (uint e = lid; e < E; e += QN_WG) {
        float le = rank_key(s_l[e]);
        uint r = 0u;
        for (uint j = 0u; j < E; j++) r += beats(rank_key(s_l[j]), j, le, e) ? 1u : 0u;
        if (r < K) s_sel[r] = int(e);
    }
}
#endif

void shared_expert(uint t, uint lid)
{
    uint mb = t * pc.m_stride + pc.E;
    if (lid == 0u) sg[t] = qn_sigmoid(m[mb + 2u * pc.Is]);
    uint ab = (t * (pc.K + 1u) + pc.K) * pc.act_stride;
    for (uint i = lid; i < pc.Is; i += QN_WG) act[ab + i] = qn_silu(m[mb + i]) * m[mb + pc.Is + i];
}

void main()
{
    uint t = qn_group_id();
    if (t >= pc.T) return; // uniform over the workgroup
    uint lid = gl_LocalInvocationIndex;
    uint E = pc.E, K = pc.K;
    shared_expert(t, lid);
    if (E > QN_MOE_MAX_E || K > QN_MOE_MAX_K || K > E || K == 0u) {
        for (uint j = lid; j < K; j += QN_WG) {
            ids[t * K + j] = -1;
            w[t * K + j] = uintBitsToFloat(0x7fc00000u);
        }
        return;
    }
    bool rb = (pc.flags & QN_MOE_ROUND_BF16) != 0u;
    for (uint e = lid; e < E; e += QN_WG) {
        float l = m[t * pc.m_stride + e];
        s_l[e] = rb ? round_bf16(l) : l;
    }
    barrier();
    select_topk(lid, E, K);
    barrier();
    float mx = s_l[s_sel[0]];
    float part = 0.0;
    for (uint e = lid; e < E; e += QN_WG) part += exp(s_l[e] - mx);
    float sum = qn_wg_sum(part);
    for (uint j = lid; j < K; j += QN_WG) s_p[j] = exp(s_l[s_sel[j]] - mx) / sum;
    barrier();
    float norm = 1.0;
    if ((pc.flags & QN_MOE_NORM_TOPK) != 0u) {
        float s = 0.0;
        for (uint j = 0u; j < K; j++) s += s_p[j];
        norm = s;
    }
    for (uint j = lid; j < K; j += QN_WG) {
        ids[t * K + j] = s_sel[j];
        w[t * K + j] = (pc.flags & QN_MOE_NORM_TOPK) != 0u ? s_p[j] / norm : s_p[j];
    }
}
