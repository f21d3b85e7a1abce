#version 450
// moe_q7.comp — run 7's decode expert kernels (the moe_q.comp of df27c22, which decoded the full 80B Q4_K_M
// at 158.7 tok/s on the H100 with moe.experts 2.20 ms/token), kept beside the row-set kernels of moe_q.comp
// so that both can be timed in one run (QNEXT_MOEQ_KERNEL=v7 in the model, `test_moe_q --bench`). Same
// math, bindings, push constants and outputs as moe_q.comp (one of the two goes once the H100 has decided):
//   QN_MOE_GU: act[t, k, i] = silu(gate_e[i] · x_t) * (up_e[i] · x_t)
//   QN_MOE_DN: y[t, h] += sum_{k<K} w[t,k] · (down_{e_k}[h] · act[t,k]) + sg[t] · (down_s[h] · act[t,K])
// Block decoding: common/quant.glsl, one block-type define per variant (QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K |
// QN_Q6_K). down_s (the shared expert's down_proj [H, Is]) is f32, or, with pc.flags & QN_MOE_SHARED_Q, rows
// of Is / QK blocks of the variant's type (the model's GGUF shared expert when its type is the routed down's).
// Bindings GU: 0 x f32 [T, H], 1 ids int32 [T, K], 2 table, 3 act f32 [T, K + 1, act_stride], 4..11 pools
//          DN: 0 act, 1 ids, 2 table, 3 w f32 [T, K], 4 sg f32 [T], 5 down_s, 6 y f32 [T, H], 7..14 pools
// Push:    qn_pc_moe (act_stride a multiple of 4; H, I, Is multiples of the block size)
// Spec:    0 QN_WG       workgroup size (default 64, run 7's)
//          1 QN_UP_OFF   byte offset of the up part in a slot (= gate bytes; a multiple of 16)
//          2 QN_DN_OFF   byte offset of the down part in a slot (a multiple of 16)
// Dispatch: GU K · I groups (group g: k = g / I, row i = g % I), DN H groups (row h); times T in z.
// Layout: one row per workgroup, no subgroup operations (qn_wg_sum); x read through L1 with each run's sum
// computed where it is used. GU: the invocations stride over the gate row's 32-element units, then over the up
// row's (the expert's pool is uniform: one switch around each loop). DN: over the units of the K experts' rows
// h together (unit v of expert v / nu; the K slots looked up in parallel into shared memory (run 7: one invocation
// looked them up in turn); the pool switch per unit), the
// block shared row's units after them (weight sg), or the f32 shared row after the loop.
// An absent slot (table -1, bad id) gives NaN instead of reading out of bounds.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 64;
layout(constant_id = 1) const uint QN_UP_OFF = 0;
layout(constant_id = 2) const uint QN_DN_OFF = 0;
#include "pc.h"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
#if defined(QN_MOE_GU)
layout(binding = 0, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1, std430) readonly buffer Ids { int ids[]; };
layout(binding = 3, std430) writeonly buffer Act { float act[]; };
#define QN_TABLE_BIND 2
#define QN_POOL_BIND 4
#elif defined(QN_MOE_DN)
layout(binding = 0, std430) readonly buffer X4 { vec4 x4[]; }; // act
layout(binding = 1, std430) readonly buffer Ids { int ids[]; };
layout(binding = 3, std430) readonly buffer Wt { float w[]; };
layout(binding = 4, std430) readonly buffer Sg { float sg[]; };
layout(binding = 5, std430) readonly buffer Ds { float down_s[]; };
layout(binding = 5, std430) readonly buffer DsQ4 { uvec4 dsq4[]; }; // QN_MOE_SHARED_Q: the same binding as blocks
layout(binding = 5, std430) readonly buffer DsQ1 { uint dsq1[]; };
layout(binding = 6, std430) buffer Y { float y[]; };
layout(binding = 0, std430) readonly buffer A1 { float a1[]; };
#define QN_TABLE_BIND 2
#define QN_POOL_BIND 7
#else
#error "moe_q7.comp: define QN_MOE_GU or QN_MOE_DN"
#endif
#define QN_W_F32 // moe_w.glsl's element helpers are unused here; only its pools and slot table
#include "moe_w.glsl"
#include "quant.glsl"

#define QN7_X4(i) x4[i]

// acc += this invocation's part of the dot of the row whose first block is at byte RB of pool arrays P4 / P1
// with x from vec4 XB4
#define QN7_ROW(P4, P1, RB, XB4, acc)                                                             \
    for (uint v = gl_LocalInvocationIndex; v < nu; v += QN_WG) {                                  \
        uint b = v / QN_QUPB, kq = v % QN_QUPB, e0, e1;                                           \
        qn_q_xrun(kq, e0, e1);                                                                    \
        vec4 xa[4], xc[4];                                                                        \
        float sa, sc;                                                                             \
        QN_QX_RUN_G(QN7_X4, (XB4) + (b * QN_QK + e0) / 4u, xa, sa)                                \
        QN_QX_RUN_G(QN7_X4, (XB4) + (b * QN_QK + e1) / 4u, xc, sc)                                \
        acc += qn_q_dot(QN_Q_LOAD(P4, P1, (RB) + b * QN_QBB, kq), kq, xa, xc, sa, sc);            \
    }

#if defined(QN_MOE_GU)
#define QN7_GU(P4, P1) { QN7_ROW(P4, P1, gb, xb4, gs) QN7_ROW(P4, P1, gb + QN_UP_OFF, xb4, us) }

void main()
{
    uint g = qn_group_id(), t = gl_WorkGroupID.z;
    if (g >= pc.K * pc.I) return;
    uint k = g / pc.I, i = g % pc.I, nu = pc.H / 32u, xb4 = t * pc.H / 4u;
    int s = qn_moe_slot(ids[t * pc.K + k]);
    float gs = 0.0, us = 0.0;
    if (s >= 0) {
        uint gb = qn_slot_byte(s) + i * (pc.H / QN_QK) * QN_QBB;
        QN_POOL_SWITCH(qn_slot_pool(s), QN7_GU)
    }
    gs = qn_wg_sum(gs);
    us = qn_wg_sum(us);
    uint ab = (t * (pc.K + 1u) + k) * pc.act_stride;
    if (gl_LocalInvocationIndex == 0u) act[ab + i] = s >= 0 ? qn_silu(gs) * us : uintBitsToFloat(0x7fc00000u);
}

#else // QN_MOE_DN

shared int qn_slots[QN_MOE_MAX_K];

#define QN7_DN_LOAD(P4, P1) raw = QN_Q_LOAD(P4, P1, rb, kq);

void main()
{
    uint g = qn_group_id(), t = gl_WorkGroupID.z;
    if (g >= pc.H) return;
    uint h = g, nu = pc.I / 32u, lid = gl_LocalInvocationIndex;
    for (uint k = lid; k < min(pc.K, QN_MOE_MAX_K); k += QN_WG) qn_slots[k] = qn_moe_slot(ids[t * pc.K + k]);
    barrier();
    bool absent = pc.K > QN_MOE_MAX_K, shq = (pc.flags & QN_MOE_SHARED_Q) != 0u;
    for (uint k = 0u; k < pc.K && !absent; k++) absent = qn_slots[k] < 0;
    uint nr = pc.K * nu, nus = shq ? pc.Is / 32u : 0u;
    float acc = 0.0;
    // the K rows' units spread over the workgroup (unit v of expert v / nu), then the block shared row's
    for (uint v = lid; v < nr + nus && !absent; v += QN_WG) {
        bool sh = v >= nr;
        uint k = sh ? pc.K : v / nu, u = sh ? v - nr : v % nu, b = u / QN_QUPB, kq = u % QN_QUPB, e0, e1, rb;
        qn_q_xrun(kq, e0, e1);
        uint xb4 = (t * (pc.K + 1u) + k) * pc.act_stride / 4u;
        vec4 xa[4], xc[4];
        float sa, sc;
        QN_QX_RUN_G(QN7_X4, xb4 + (b * QN_QK + e0) / 4u, xa, sa)
        QN_QX_RUN_G(QN7_X4, xb4 + (b * QN_QK + e1) / 4u, xc, sc)
        qn_qu raw;
        if (sh) {
            rb = h * (pc.Is / QN_QK) * QN_QBB + b * QN_QBB;
            raw = QN_Q_LOAD(dsq4, dsq1, rb, kq);
        } else {
            int s = qn_slots[k];
            rb = qn_slot_byte(s) + QN_DN_OFF + (h * (pc.I / QN_QK) + b) * QN_QBB;
            QN_POOL_SWITCH(qn_slot_pool(s), QN7_DN_LOAD)
        }
        acc += (sh ? sg[t] : w[t * pc.K + k]) * qn_q_dot(raw, kq, xa, xc, sa, sc);
    }
    float ps = 0.0;
    uint sa = (t * (pc.K + 1u) + pc.K) * pc.act_stride;
    if (!shq)
        for (uint j = lid; j < pc.Is; j += QN_WG) ps += down_s[h * pc.Is + j] * a1[sa + j];
    acc += sg[t] * ps;
    acc = qn_wg_sum(acc);
    if (lid == 0u) y[t * pc.H + h] = absent ? uintBitsToFloat(0x7fc00000u) : y[t * pc.H + h] + acc;
}
#endif
