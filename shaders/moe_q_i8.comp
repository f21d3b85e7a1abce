#version 450
// moe_q_i8.comp — the int8-dot twin of moe_q.comp's decode gate_up (QN_MOE_GU) for GGUF block expert slots:
//   act[t, k, i] = silu(gate_e[i] · dq(x_t)) * (up_e[i] · dq(x_t))
// with x_t quantized to int8 per 32 elements in the prologue (dq: the int8 round trip; common/quant_i8.glsl) and each
// 32-weight unit on 8 packed 4x8-bit OpSDot. Env QNEXT_IDOT=2 (forward_pipes.c), for an in-model A/B.
// Same bindings, push block, spec constants and dispatch as moe_q.comp's GU (the same layout):
// Bindings: 0 x f32 [T, H], 1 ids int32 [T, K], 2 table, 3 act f32 [T, K + 1, act_stride], 4..11 pools,
//           12 chain uint32 (common/moe_chain.glsl; used only with QN_MOE_CHAIN_IN / QN_MOE_CHAIN_OUT in pc.flags)
// Push:     qn_pc_moe
// Spec:     0 QN_WG (128), 1 QN_UP_OFF, 2 unused, 3 QN_ROWS (8), 4 QN_SGROWS (1), 5 QN_UNROLL (2), 6 QN_XSH: x capacity
//           in vec4s, REQUIRED >= H / 4 (x is always staged; a smaller one gives NaN), 7 QN_PRE (1: each team's first
//           batch of weights in flight before the staging)
// Dispatch: K * ceil(I / QN_ROWS) groups (group g: k = g / ceil(I / QN_ROWS), row block g % ..), T in z.
// Layout as moe_q.comp's GU: each team (subgroup, or the workgroup) takes sets of QN_SGROWS rows i, its lanes on
// consecutive units of the set's gate and up rows, one x run pair per unit for all of them. An absent slot (table -1,
// bad id) gives NaN rows. Each output is one fixed-order sum: streaming == resident bit for bit.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_UP_OFF = 0;
layout(constant_id = 2) const uint QN_DN_OFF = 0;
layout(constant_id = 3) const uint QN_ROWS = 8;
layout(constant_id = 4) const uint QN_SGROWS = 1;
layout(constant_id = 5) const uint QN_UNROLL = 2;
layout(constant_id = 6) const uint QN_XSH = 512;
layout(constant_id = 7) const uint QN_PRE = 1;
#include "pc.h"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1, std430) readonly buffer Ids { int ids[]; };
layout(binding = 3, std430) writeonly buffer Act { float act[]; };
#define QN_TABLE_BIND 2
#define QN_POOL_BIND 4
#define QN_W_F32 // moe_w.glsl's element helpers are unused here; only its pools and slot table
#include "moe_w.glsl"
#include "quant.glsl"
#include "quant_i8.glsl"
#define QN_CHAIN_BIND 12
#include "moe_chain.glsl"

const uint QN_I8_RUNS = QN_XSH / 4u; // 16-element runs the stage holds
shared uvec4 qn_i8x[QN_I8_RUNS + 1u];
shared vec2 qn_i8s[QN_I8_RUNS + 1u];

// the team of this invocation: a full subgroup, or the whole workgroup (no subgroups / too small a group)
struct qn_team { uint id, lane, lanes, n; };
qn_team qn_get_team()
{
#ifdef QN_SUBGROUP
    uint nfull = QN_WG / gl_SubgroupSize;
    if (nfull > 0u) return qn_team(gl_SubgroupID, gl_SubgroupInvocationID, gl_SubgroupSize, nfull);
#endif
    return qn_team(0u, gl_LocalInvocationIndex, QN_WG, 1u);
}
float qn_team_sum(float v)
{
#ifdef QN_SUBGROUP
    if (QN_WG / gl_SubgroupSize > 0u) return subgroupAdd(v);
#endif
    return qn_wg_sum(v);
}
bool qn_team_leader(qn_team tm)
{
#ifdef QN_SUBGROUP
    if (QN_WG / gl_SubgroupSize > 0u) return subgroupElect();
#endif
    return tm.lane == 0u;
}

float acc_g[QN_SGROWS], acc_u[QN_SGROWS];
qn_qu qn_rg[QN_UNROLL * QN_SGROWS], qn_ru[QN_UNROLL * QN_SGROWS]; // the batch in flight

// loads of QN_UNROLL units (v + u * step, clamped) of the set's gate and up rows (first bytes gb[j]) from pool arrays
#define QN_GU_LOADS(P4, P1)                                                                       \
    [[unroll]] for (uint u = 0u; u < QN_UNROLL; u++) {                                            \
        uint vv = min(v + u * step, nu - 1u), bo = vv / QN_QUPB * QN_QBB;                          \
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {                                        \
            qn_rg[u * QN_SGROWS + j] = QN_Q_LOAD(P4, P1, gb[j] + bo, vv % QN_QUPB);               \
            qn_ru[u * QN_SGROWS + j] = QN_Q_LOAD(P4, P1, gb[j] + QN_UP_OFF + bo, vv % QN_QUPB);   \
        }                                                                                         \
    }

// acc_g / acc_u += the dots of the batch (units v + u * step < nu) with the staged x
void gu_use(uint v, uint step, uint nu)
{
    [[unroll]] for (uint u = 0u; u < QN_UNROLL; u++) {
        uint vv = v + u * step;
        if (vv < nu) {
            uint b = vv / QN_QUPB, k = vv % QN_QUPB, e0, e1;
            qn_q_xrun(k, e0, e1);
            uint ra = qn_i8_slot((b * QN_QK + e0) / 16u), rb = qn_i8_slot((b * QN_QK + e1) / 16u);
            uvec4 xa = qn_i8x[ra], xb = qn_i8x[rb];
            vec2 sa = qn_i8s[ra], sb = qn_i8s[rb];
            [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {
                acc_g[j] += qn_i8_dot(qn_rg[u * QN_SGROWS + j], k, xa, xb, sa, sb);
                acc_u[j] += qn_i8_dot(qn_ru[u * QN_SGROWS + j], k, xa, xb, sa, sb);
            }
        }
    }
}

// this lane's share of the set's rows (first weight byte of each gate row: gb[j]); pre: its first batch is loaded
void gu_set(uint p, uint gb[QN_SGROWS], uint lane, uint step, bool pre)
{
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) acc_g[j] = acc_u[j] = 0.0;
    uint nu = pc.H / 32u;
    for (uint v = lane; v < nu; v += QN_UNROLL * step) {
        if (!pre) QN_POOL_SWITCH(p, QN_GU_LOADS)
        pre = false;
        gu_use(v, step, nu);
    }
}

// first weight bytes of the gate rows of set st (rows past I clamped to the last)
void gu_rows(uint sb, uint i0, uint st, uint rowb, out uint gb[QN_SGROWS])
{
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) gb[j] = sb + min(i0 + st * QN_SGROWS + j, pc.I - 1u) * rowb;
}

void gu_main(uint nblk, uint g, uint k, uint t)
{
    uint i0 = (g % nblk) * QN_ROWS, lid = gl_LocalInvocationIndex;
    uint ab = (t * (pc.K + 1u) + k) * pc.act_stride, xb4 = t * pc.H / 4u;
    int s = qn_moe_slot(ids[t * pc.K + k]);
    if (s < 0 || pc.H > 4u * QN_XSH) { // uniform: an absent slot, or x does not fit the stage
        for (uint r = lid; r < QN_ROWS; r += QN_WG)
            if (i0 + r < pc.I) act[ab + i0 + r] = uintBitsToFloat(0x7fc00000u);
        return;
    }
    uint p = qn_slot_pool(s), sb = qn_slot_byte(s), rowb = pc.H / QN_QK * QN_QBB;
    qn_team tm = qn_get_team();
    const uint sets = (QN_ROWS + QN_SGROWS - 1u) / QN_SGROWS;
    bool pre = QN_PRE != 0u && tm.id < tm.n; // the team's first batch of its first set in flight before the staging
    if (pre) {
        uint gb[QN_SGROWS], v = tm.lane, step = tm.lanes, nu = pc.H / 32u;
        gu_rows(sb, i0, min(tm.id, sets - 1u), rowb, gb);
        QN_POOL_SWITCH(p, QN_GU_LOADS)
    }
#define QN_I8_XG(i) x4[xb4 + (i)]
    QN_I8_STAGE(qn_i8x, qn_i8s, QN_I8_XG, lid, pc.H / 32u, QN_WG)
    barrier();
    // teams past the last set redo it without storing (no team leaves early: see moe_q.comp)
    for (uint st0 = tm.id; st0 < max(sets, tm.n) && tm.id < tm.n; st0 += tm.n) {
        uint st = min(st0, sets - 1u);
        bool store = st0 < sets && qn_team_leader(tm);
        uint gb[QN_SGROWS];
        gu_rows(sb, i0, st, rowb, gb);
        gu_set(p, gb, tm.lane, tm.lanes, pre && st0 == tm.id);
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {
            float gs = qn_team_sum(acc_g[j]), us = qn_team_sum(acc_u[j]);
            uint r = st * QN_SGROWS + j;
            if (store && r < QN_ROWS && i0 + r < pc.I) act[ab + i0 + r] = qn_silu(gs) * us;
        }
    }
}

QN_CHAIN_GU_MAIN
