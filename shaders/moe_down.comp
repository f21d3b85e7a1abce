#version 450
// moe_down.comp — decode (small T) expert down projections, weighted sum and residual add:
//   y[t, h] += sum_{k<K} w[t,k] · (down_{e_k}[h] · act[t,k])  +  sg[t] · (down_s[h] · act[t,K])
// where e_k = ids[t, k] through the slot table, down_e = the [H, I] third of the slot, down_s the shared
// expert's down_proj [H, Is] (a dense binding).
//
// Summation order (fixed, independent of slot placement and timing, so streaming == resident bit for bit):
// each invocation keeps acc = sum over k = 0..K-1 of w[t,k] · (its partial dot over its chunks of row h of
// expert k), then + sg[t] · (its partial of the shared row); its team (a subgroup: subgroupAdd, or the
// workgroup: qn_wg_sum) sums acc over invocations and y[t, h] = y[t, h] + total.
//
// Variants (defines): QN_W_BF16 | QN_W_F16 | QN_W_F32 (dtype of the expert slots AND of down_s);
//   QN_SUBGROUP (subgroup teams, below), else the workgroup-wide layout with shared-memory reductions.
// Bindings: 0 act    f32 [T, K + 1, act_stride]
//           1 ids    int32 [T, K]
//           2 table  int32 [L, E]
//           3 w      f32 [T, K]
//           4 sg     f32 [T]
//           5 down_s [H, Is] in the weight dtype
//           6 y      f32 [T, H]  (the residual stream, read and written)
//           7..14 pool0..pool7 (unused pools: bind pool0 again)
// Push:     qn_pc_moe (T, H, I, Is, E, K, layer, n_slots, slots_per_pool, slot_bytes, act_stride)
// Spec:     0 QN_WG     workgroup size (default 128)
//           1 QN_ROWS   output rows h per workgroup (default 4)
//           2 QN_UNROLL experts whose chunks a lane loads before using them (subgroup layout; default 4)
// Dispatch: ceil(H / QN_ROWS) groups (qn_vk_grid), times T in z (one token per z).
// Layout: the K slots are looked up once into shared memory (one barrier). QN_SUBGROUP (vector path): each
// full subgroup is a team that computes rows h0 + team, h0 + team + teams, ...; its lanes stride over the
// row's 16-byte chunks of QN_UNROLL experts at a time (all those loads in flight: a decode token reads only
// ~2 MB per expert, so latency, not bandwidth, is the limit), then subgroupAdd. Otherwise the whole
// workgroup strides over each row, two experts per step, reduced by qn_wg_sum; a scalar path handles
// I, Is or act_stride that are not whole chunks.
// An absent slot (table -1, bad id) or K > QN_MOE_MAX_K makes the token's outputs NaN instead of reading out
// of bounds.
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
layout(binding = 0, std430) readonly buffer A4 { vec4 a4[]; };
layout(binding = 0, std430) readonly buffer A1 { float a1[]; };
layout(binding = 1, std430) readonly buffer Ids { int ids[]; };
layout(binding = 3, std430) readonly buffer Wt { float w[]; };
layout(binding = 4, std430) readonly buffer Sg { float sg[]; };
layout(binding = 5, std430) readonly buffer DS4 { uvec4 ds4[]; };
layout(binding = 5, std430) readonly buffer DS1 { uint ds1[]; };
layout(binding = 6, std430) buffer Y { float y[]; };
#define QN_TABLE_BIND 2
#define QN_POOL_BIND 7
#include "moe_w.glsl"

float acc[QN_ROWS], part[QN_ROWS], part2[QN_ROWS];
shared int s_slot[QN_MOE_MAX_K]; // the K slots, looked up once (in parallel) before the weight loop

#ifdef QN_SUBGROUP
// the subgroup-team layout; false when it does not apply (the caller uses the workgroup-wide one)
bool down_teams(uint h0, uint t, bool absent)
{
    uint S = gl_SubgroupSize, teams = QN_WG / S, team = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint I = pc.I, H = pc.H, K = pc.K, n = I / QN_CW, ns = pc.Is / QN_CW;
    if (teams == 0u || pc.act_stride % 4u != 0u || I % QN_CW != 0u || pc.Is % QN_CW != 0u) return false;
    uint wdown = 2u * I * H / QN_CW, as4 = pc.act_stride / 4u, ab4 = t * (K + 1u) * as4;
    for (uint hh = team; hh < QN_ROWS && team < teams; hh += teams) {
        uint h = h0 + hh;
        if (h >= H) break;
        float acc1 = 0.0;
        for (uint k0 = 0u; k0 < K && !absent; k0 += QN_UNROLL) {
            float pt[QN_UNROLL];
            uint pl[QN_UNROLL], wb[QN_UNROLL];
            [[unroll]] for (uint j = 0u; j < QN_UNROLL; j++) {
                int s = s_slot[min(k0 + j, K - 1u)]; // past K: the last expert again (loaded, not used)
                pl[j] = qn_slot_pool(s);
                wb[j] = qn_slot_byte(s) / 16u + wdown + h * n;
                pt[j] = 0.0;
            }
            for (uint c = lane; c < n; c += S) {
                uvec4 wv[QN_UNROLL];
                [[unroll]] for (uint j = 0u; j < QN_UNROLL; j++) wv[j] = qn_pool4(pl[j], wb[j] + c);
                [[unroll]] for (uint j = 0u; j < QN_UNROLL; j++) {
                    uint xa4 = ab4 + (k0 + j) * as4 + c * (QN_CW / 4u);
                    if (k0 + j < K)
                        pt[j] += qn_w_chunk_dot(wv[j], a4[xa4], QN_CW == 8u ? a4[xa4 + 1u] : vec4(0.0));
                }
            }
            [[unroll]] for (uint j = 0u; j < QN_UNROLL; j++)
                if (k0 + j < K) acc1 += w[t * K + k0 + j] * pt[j];
        }
        float ps = 0.0; // the shared expert
        uint sa4 = ab4 + K * as4;
        for (uint c = lane; c < ns; c += S)
            ps += qn_w_chunk_dot(ds4[h * ns + c], a4[sa4 + c * (QN_CW / 4u)],
                                 QN_CW == 8u ? a4[sa4 + c * 2u + 1u] : vec4(0.0));
        acc1 += sg[t] * ps;
        acc1 = subgroupAdd(acc1);
        if (subgroupElect()) {
            uint i = t * H + h;
            y[i] = absent ? uintBitsToFloat(0x7fc00000u) : y[i] + acc1;
        }
    }
    return true;
}
#endif

// part[r] = this invocation's share of row (h0 + r) · act row, rows of n chunks starting at chunk w4
#define QN_DOWN_VEC(P4, P1)                                                                 \
    for (uint c = lid; c < n; c += QN_WG) {                                                 \
        vec4 xa = a4[ab4 + c * (QN_CW / 4u)];                                               \
        vec4 xb = QN_CW == 8u ? a4[ab4 + c * 2u + 1u] : vec4(0.0);                          \
        for (uint r = 0u; r < QN_ROWS; r++)                                                 \
            if (h0 + r < pc.H) part[r] += qn_w_chunk_dot(P4[w4 + r * n + c], xa, xb);       \
    }
#define QN_DOWN_SCALAR(P4, P1)                                                              \
    for (uint c = lid; c < n; c += QN_WG) {                                                 \
        float xv = a1[ab + c];                                                              \
        for (uint r = 0u; r < QN_ROWS; r++)                                                 \
            if (h0 + r < pc.H) part[r] += qn_w_word(P1[(we + r * n + c) / QN_EPW], we + r * n + c) * xv; \
    }

void main()
{
    uint lid = gl_LocalInvocationIndex;
    uint h0 = qn_group_id() * QN_ROWS, t = gl_WorkGroupID.z;
    if (h0 >= pc.H) return; // uniform over the workgroup
    uint I = pc.I, H = pc.H, K = pc.K;
    bool vec_ok = pc.act_stride % 4u == 0u;
    bool absent = K > QN_MOE_MAX_K;
    for (uint k = lid; k < min(K, QN_MOE_MAX_K); k += QN_WG) s_slot[k] = qn_moe_slot(ids[t * K + k]);
    barrier();
    for (uint k = 0u; k < min(K, QN_MOE_MAX_K); k++) absent = absent || s_slot[k] < 0;
#ifdef QN_SUBGROUP
    if (down_teams(h0, t, absent)) return;
#endif
    for (uint r = 0u; r < QN_ROWS; r++) acc[r] = 0.0;
    if (vec_ok && I % QN_CW == 0u) {
        // two experts per step: the loads of both are in flight together (decode is latency-bound otherwise)
        uint n = I / QN_CW, wdown = 2u * I * H / QN_CW + h0 * n;
        for (uint k = 0u; k < K && !absent; k += 2u) {
            bool two = k + 1u < K;
            int s0 = s_slot[k], s1 = two ? s_slot[k + 1u] : s0;
            if (s0 < 0 || s1 < 0) { absent = true; break; }
            uint p0 = qn_slot_pool(s0), p1 = qn_slot_pool(s1);
            uint w0 = qn_slot_byte(s0) / 16u + wdown, w1 = qn_slot_byte(s1) / 16u + wdown;
            uint a0 = (t * (K + 1u) + k) * pc.act_stride / 4u, a1 = a0 + pc.act_stride / 4u;
            for (uint r = 0u; r < QN_ROWS; r++) part[r] = part2[r] = 0.0;
            for (uint c = lid; c < n; c += QN_WG) {
                uvec4 u0[QN_ROWS], u1[QN_ROWS];
                for (uint r = 0u; r < QN_ROWS; r++) {
                    u0[r] = h0 + r < H ? qn_pool4(p0, w0 + r * n + c) : uvec4(0u);
                    u1[r] = two && h0 + r < H ? qn_pool4(p1, w1 + r * n + c) : uvec4(0u);
                }
                vec4 x0a = a4[a0 + c * (QN_CW / 4u)], x0b = QN_CW == 8u ? a4[a0 + c * 2u + 1u] : vec4(0.0);
                vec4 x1a = two ? a4[a1 + c * (QN_CW / 4u)] : vec4(0.0);
                vec4 x1b = two && QN_CW == 8u ? a4[a1 + c * 2u + 1u] : vec4(0.0);
                for (uint r = 0u; r < QN_ROWS; r++) {
                    part[r] += qn_w_chunk_dot(u0[r], x0a, x0b);
                    part2[r] += qn_w_chunk_dot(u1[r], x1a, x1b);
                }
            }
            float wk = w[t * K + k];
            for (uint r = 0u; r < QN_ROWS; r++) acc[r] += wk * part[r];
            if (two) {
                wk = w[t * K + k + 1u];
                for (uint r = 0u; r < QN_ROWS; r++) acc[r] += wk * part2[r];
            }
        }
    } else {
        for (uint k = 0u; k < K && !absent; k++) {
            int s = s_slot[k];
            if (s < 0) { absent = true; break; }
            uint p = qn_slot_pool(s), n = I;
            uint ab = (t * (K + 1u) + k) * pc.act_stride, we = qn_slot_byte(s) / QN_ESZ + 2u * I * H + h0 * I;
            for (uint r = 0u; r < QN_ROWS; r++) part[r] = 0.0;
            QN_POOL_SWITCH(p, QN_DOWN_SCALAR)
            float wk = w[t * K + k];
            for (uint r = 0u; r < QN_ROWS; r++) acc[r] += wk * part[r];
        }
    }
    { // the shared expert (a dense [H, Is] weight)
        uint n = pc.Is, ab = (t * (K + 1u) + K) * pc.act_stride;
        for (uint r = 0u; r < QN_ROWS; r++) part[r] = 0.0;
        if (vec_ok && n % QN_CW == 0u) {
            n /= QN_CW;
            uint ab4 = ab / 4u, w4 = h0 * n;
            QN_DOWN_VEC(ds4, ds1)
        } else {
            uint we = h0 * n;
            QN_DOWN_SCALAR(ds4, ds1)
        }
        float s = sg[t];
        for (uint r = 0u; r < QN_ROWS; r++) acc[r] += s * part[r];
    }
    for (uint r = 0u; r < QN_ROWS; r++) {
        float tot = qn_wg_sum(acc[r]);
        if (lid == 0u && h0 + r < H) {
            uint i = t * H + h0 + r;
            y[i] = absent ? uintBitsToFloat(0x7fc00000u) : y[i] + tot;
        }
    }
}
