#version 450
// moe_q.comp — routed experts whose slots hold GGUF blocks (gate | up | down as the file stores them, each
// part in its own ggml type): the decode kernels of moe_gate_up.comp / moe_down.comp for quantized slots.
//   QN_MOE_GU: act[t, k, i] = silu(gate_e[i] · x_t) * (up_e[i] · x_t)
//   QN_MOE_DN: y[t, h] += sum_{k<K} w[t,k] · (down_{e_k}[h] · act[t,k]) + sg[t] · (down_s[h] · act[t,K])
// with e = ids[t, k] and the slot from the table (moe_w.glsl). Block decoding: common/quant.glsl, one
// block-type define per variant (QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K): the type of gate and
// up (GU; they must agree) or of down (DN). down_s (the shared expert's down_proj) is f32 here.
// Bindings GU: 0 x f32 [T, H], 1 ids int32 [T, K], 2 table, 3 act f32 [T, K + 1, act_stride], 4..11 pools
//          DN: 0 act, 1 ids, 2 table, 3 w f32 [T, K], 4 sg f32 [T], 5 down_s f32 [H, Is], 6 y f32 [T, H],
//              7..14 pools
// Push:    qn_pc_moe
// Spec:    0 QN_WG       workgroup size (default 64)
//          1 QN_UP_OFF   byte offset of the up part in a slot (= gate bytes; a multiple of 16)
//          2 QN_DN_OFF   byte offset of the down part in a slot (a multiple of 16)
// Dispatch: GU K · I groups (group g: k = g / I, row i = g % I), DN H groups (row h); times T in z.
// Layout: one row per workgroup; GU: its invocations stride over the gate and up rows' 32-element units; DN:
// over the units of the K experts' rows h together (slots looked up once into shared memory); qn_wg_sum.
// A simple first version (correct for every T: prefill runs it with T in z, re-reading the experts per token).
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
layout(binding = 6, std430) buffer Y { float y[]; };
layout(binding = 0, std430) readonly buffer A1 { float a1[]; };
#define QN_TABLE_BIND 2
#define QN_POOL_BIND 7
#else
#error "moe_q.comp: define QN_MOE_GU or QN_MOE_DN"
#endif
#define QN_W_F32 // moe_w.glsl's element helpers are unused here; only its pools and slot table
#include "moe_w.glsl"

uint qn_cur_pool;
#if defined(QN_MOE_DN)
shared int qn_slots[QN_MOE_MAX_K];
shared bool qn_absent;
#endif
#define QN_QW(i) qn_pool1(qn_cur_pool, i)
#define QN_QW4(i) qn_pool4(qn_cur_pool, i)
#include "quant.glsl"

// partial dot of this invocation over the units of the row whose first block is at byte `rb` of pool
// qn_cur_pool, with x starting at float xb (a multiple of 4)
float row_part(uint rb, uint cols, uint xb)
{
    float acc = 0.0;
    uint nu = cols / 32u;
    for (uint v = gl_LocalInvocationIndex; v < nu; v += QN_WG) {
        uint b = v / QN_QUPB, k = v % QN_QUPB, e0, e1;
        qn_q_xrun(k, e0, e1);
        uint a = (xb + b * QN_QK + e0) / 4u, c = (xb + b * QN_QK + e1) / 4u;
        vec4 xa[4] = vec4[4](x4[a], x4[a + 1u], x4[a + 2u], x4[a + 3u]);
        vec4 xc[4] = vec4[4](x4[c], x4[c + 1u], x4[c + 2u], x4[c + 3u]);
        float sa = dot(xa[0] + xa[1] + xa[2] + xa[3], vec4(1.0));
        float sc = dot(xc[0] + xc[1] + xc[2] + xc[3], vec4(1.0));
        acc += qn_q_dot(qn_q_load(rb + b * QN_QBB, k), k, xa, xc, sa, sc);
    }
    return acc;
}

void main()
{
    uint g = qn_group_id(), t = gl_WorkGroupID.z;
#if defined(QN_MOE_GU)
    if (g >= pc.K * pc.I) return;
    uint k = g / pc.I, i = g % pc.I, nb = pc.H / QN_QK;
    int s = qn_moe_slot(ids[t * pc.K + k]);
    float gs = 0.0, us = 0.0;
    if (s >= 0) {
        qn_cur_pool = qn_slot_pool(s);
        uint sb = qn_slot_byte(s);
        gs = row_part(sb + i * nb * QN_QBB, pc.H, t * pc.H);
        us = row_part(sb + QN_UP_OFF + i * nb * QN_QBB, pc.H, t * pc.H);
    }
    gs = qn_wg_sum(gs);
    us = qn_wg_sum(us);
    uint ab = (t * (pc.K + 1u) + k) * pc.act_stride;
    if (gl_LocalInvocationIndex == 0u) act[ab + i] = s >= 0 ? qn_silu(gs) * us : uintBitsToFloat(0x7fc00000u);
#else
    if (g >= pc.H) return;
    uint h = g, nb = pc.I / QN_QK, nu = pc.I / 32u, lid = gl_LocalInvocationIndex;
    if (lid == 0u) {
        qn_absent = pc.K > QN_MOE_MAX_K;
        for (uint k = 0u; k < pc.K && !qn_absent; k++) {
            int s = qn_moe_slot(ids[t * pc.K + k]);
            qn_absent = s < 0;
            qn_slots[k] = s;
        }
    }
    barrier();
    bool absent = qn_absent;
    float acc = 0.0;
    // the K rows' units spread over the workgroup: unit v of expert k = v / nu
    for (uint v = lid; v < pc.K * nu && !absent; v += QN_WG) {
        uint k = v / nu, u = v % nu, b = u / QN_QUPB, kk = u % QN_QUPB, e0, e1;
        int s = qn_slots[k];
        qn_cur_pool = qn_slot_pool(s);
        uint xb = (t * (pc.K + 1u) + k) * pc.act_stride;
        qn_q_xrun(kk, e0, e1);
        uint a = (xb + b * QN_QK + e0) / 4u, c = (xb + b * QN_QK + e1) / 4u;
        vec4 xa[4] = vec4[4](x4[a], x4[a + 1u], x4[a + 2u], x4[a + 3u]);
        vec4 xc[4] = vec4[4](x4[c], x4[c + 1u], x4[c + 2u], x4[c + 3u]);
        float sa = dot(xa[0] + xa[1] + xa[2] + xa[3], vec4(1.0));
        float sc = dot(xc[0] + xc[1] + xc[2] + xc[3], vec4(1.0));
        uint rb = qn_slot_byte(s) + QN_DN_OFF + h * nb * QN_QBB;
        acc += w[t * pc.K + k] * qn_q_dot(qn_q_load(rb + b * QN_QBB, kk), kk, xa, xc, sa, sc);
    }
    float ps = 0.0;
    uint sa = (t * (pc.K + 1u) + pc.K) * pc.act_stride;
    for (uint j = gl_LocalInvocationIndex; j < pc.Is; j += QN_WG) ps += down_s[h * pc.Is + j] * a1[sa + j];
    acc += sg[t] * ps;
    acc = qn_wg_sum(acc);
    if (gl_LocalInvocationIndex == 0u) y[t * pc.H + h] = absent ? uintBitsToFloat(0x7fc00000u) : y[t * pc.H + h] + acc;
#endif
}
