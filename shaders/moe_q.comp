#version 450
// moe_q.comp — decode (small T) routed experts whose slots hold GGUF blocks (gate | up | down as the file
// stores them, each part in its own ggml type): the per-token kernels of moe_gate_up.comp / moe_down.comp
// for quantized slots.
//   QN_MOE_GU: act[t, k, i] = silu(gate_e[i] · x_t) * (up_e[i] · x_t)
//   QN_MOE_DN: y[t, h] += sum_{k<K} w[t,k] · (down_{e_k}[h] · act[t,k]) + sg[t] · (down_s[h] · act[t,K])
// with e = ids[t, k] and the slot from the table (moe_w.glsl). Block decoding: common/quant.glsl, one
// block-type define per variant (QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K): the type of gate and
// up (GU; they must agree) or of down (DN). down_s (the shared expert's down_proj [H, Is]) is f32, or, with
// pc.flags & QN_MOE_SHARED_Q, rows of Is / QK blocks of the DN variant's type (a GGUF model's shared expert
// when its type is the routed down's: 0.86 MB instead of 4.2 MB per layer for the 80B Q4_K_M).
// QN_DN_XSPLIT (with QN_MOE_DN; kernels moe_q_dnx_*, the model's default): the down split over the experts,
// one group per (row block, expert or the shared one), partials combined by the last group of each row block
// (see "QN_DN_XSPLIT" below). (Its int8-act twin QN_DNX_I8, env QNEXT_MOEQ_DN_I8, was neutral in two H100 A/Bs
// and is gone.)
// QN_SUBGROUP: subgroup teams reduced with subgroupAdd; else the workgroup is one team (qn_wg_sum).
// Bindings GU: 0 x f32 [T, H], 1 ids int32 [T, K], 2 table, 3 act f32 [T, K + 1, act_stride], 4..11 pools,
//              12 chain uint32 (common/moe_chain.glsl: QN_MOE_CHAIN_IN / QN_MOE_CHAIN_OUT in pc.flags)
//          DN: 0 act, 1 ids, 2 table, 3 w f32 [T, K], 4 sg f32 [T], 5 down_s f32 [H, Is], 6 y f32 [T, H],
//              7..14 pools; QN_DN_XSPLIT also 15 scratch: the decode chain's QN_MOE_CHAIN_WORDS uint32 words
//              (common/moe_chain.glsl: QN_MOE_CHAIN_IN waits for pc.chain_n gate_up workgroups), then f32 partials
//              [T, K + 1, H], one uint32 counter per (token, row block) at the end (index length - 1 - (t nblk +
//              block); zero between calls)
// Push:    qn_pc_moe (act_stride a multiple of 4; H, I (and Is with QN_MOE_SHARED_Q) multiples of the block size)
// Spec:    0 QN_WG       workgroup size (default 128; teams past the last set of rows only repeat it)
//          1 QN_UP_OFF   byte offset of the up part in a slot (= gate bytes; a multiple of 16)
//          2 QN_DN_OFF   byte offset of the down part in a slot (a multiple of 16)
//          3 QN_ROWS     GU: rows i per workgroup (default 8); DN: rows h per workgroup (default 8; split 16)
//          4 QN_SGROWS   GU: rows i one team computes together (gate + up: 2x the weight rows; default 1)
//                        DN: rows h each lane computes, sharing each act run (default 1; split 2)
//                        (the defaults decode the full 80B Q4_K_M at 138.8 tok/s on the H100 vs 125.0 with
//                        256/16/2 for GU and 128/16/2 for DN: docs/perf.md run 11; QNEXT_MOEQ_LAYOUT overrides)
//          5 QN_UNROLL   GU: units of each row a lane loads before using them (default 2)
//                        DN: experts whose units a lane loads before using them (default 5); split: units of
//                        each of its rows (default 1)
//          6 QN_XSH      x staging capacity in vec4 (0: read x through L1): GU the token's x (H / 4 needed;
//                        default 512), DN its K routed act rows (K * I / 4 needed; default 0), DN split the
//                        group's act row, staged with the weights (QN_WIMAX; I / 4 needed; default 0)
//          7 QN_PRE      GU: 1 (default) loads each team's first batch of weights before x is staged (the
//                        DRAM latency overlaps the slot lookup's tail, the x reads and the barrier); 0 after
//            QN_WIMAX    DN split (QN_DN_XSPLIT): 0 (default) = weights loaded by the lanes that use them; else a
//                        routed expert's rows (I <= QN_WIMAX) are first copied into shared memory by the whole group
//                        in aligned 16-byte pieces (fewer registers per byte in flight than the unit loads, e.g. Q6_K's
//                        5-word loads at 2-byte offsets), then decoded from there
//            QN_KSPLIT   DN: 1 = each team computes one row h at a time, its lanes spread over the units of all
//                        K experts' rows h (and then the block shared row's), QN_UNROLL units per lane in flight
//                        (run 7's split with subgroup sums; QN_SGROWS unused); 0 (default) = the row sets below
// Dispatch: GU K * ceil(I / QN_ROWS) groups (group g: k = g / ceil(I / QN_ROWS), rows block g % ..), DN
//           ceil(H / QN_ROWS) groups (QN_DN_XSPLIT: (K + 1) ceil(H / QN_ROWS), group g: row block g / (K + 1),
//           expert g % (K + 1)); times T in z (one token per z).
// Layout: as qmatvec.comp: lanes on consecutive 32-weight units of a row (quant.glsl), x runs from the
// staged, bank-conflict-free copy (with run sums) or from the buffer. GU: each team (subgroup) takes sets
// of QN_SGROWS rows i and streams their gate and up rows together (one x run per unit for all 2 QN_SGROWS
// rows). DN: a team splits into G = lanes / min(lanes, I / 32) groups of lanes, each lane one unit
// position of QN_SGROWS rows h (rows h0 + j G + group): per unit position it loads QN_UNROLL experts'
// units of all its rows (all in flight), then accumulates w[t,k] * dot in expert order; a block shared row's
// unit at the same position is loaded before the routed ones and used after them (positions u < Is / 32), an
// f32 shared row is read in vec4s by the whole team after the loop; one subgroupAdd per row. The pool of each expert
// is uniform, so loads are one uniform switch per expert (QN_POOL_SWITCH) around the batch.
// Each output is one fixed-order sum that does not depend on slot placement: streaming == resident bit for
// bit. An absent slot (table -1, bad id) gives NaN instead of reading out of bounds.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
#if defined(QN_MOE_GU)
#define QN_XSH_DEF 512
#define QN_WG_DEF 128
#else
#define QN_XSH_DEF 0
#define QN_WG_DEF 128
#endif
#if defined(QN_DN_XSPLIT)
#define QN_ROWS_DEF 16
#define QN_SGROWS_DEF 2
#else
#define QN_ROWS_DEF 8
#define QN_SGROWS_DEF 1
#endif
layout(constant_id = 0) const uint QN_WG = QN_WG_DEF;
layout(constant_id = 1) const uint QN_UP_OFF = 0;
layout(constant_id = 2) const uint QN_DN_OFF = 0;
layout(constant_id = 3) const uint QN_ROWS = QN_ROWS_DEF;
layout(constant_id = 4) const uint QN_SGROWS = QN_SGROWS_DEF;
#if defined(QN_MOE_GU)
layout(constant_id = 5) const uint QN_UNROLL = 2;
#elif defined(QN_DN_XSPLIT)
layout(constant_id = 5) const uint QN_UNROLL = 1; // I = 512: 16 units per row, one per lane
#else
layout(constant_id = 5) const uint QN_UNROLL = 5; // K = 10: two batches
#endif
layout(constant_id = 6) const uint QN_XSH = QN_XSH_DEF;
#if defined(QN_MOE_GU)
layout(constant_id = 7) const uint QN_PRE = 1;
#elif defined(QN_DN_XSPLIT)
layout(constant_id = 7) const uint QN_WIMAX = 0; // stage the group's weight rows in shared memory for I <= this
#else
layout(constant_id = 7) const uint QN_KSPLIT = 0;
#endif
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
layout(binding = 5, std430) readonly buffer Ds4 { vec4 down_s4[]; };
layout(binding = 5, std430) readonly buffer Ds { float down_s[]; };
layout(binding = 5, std430) readonly buffer DsQ4 { uvec4 dsq4[]; }; // QN_MOE_SHARED_Q: the same binding as blocks
layout(binding = 5, std430) readonly buffer DsQ1 { uint dsq1[]; };
layout(binding = 6, std430) buffer Y { float y[]; };
layout(binding = 0, std430) readonly buffer A1 { float a1[]; };
#if defined(QN_DN_XSPLIT)
layout(binding = 15, std430) coherent buffer Part { float part[]; };  // the last group reads the others' partials
layout(binding = 15, std430) coherent buffer PartCnt { uint pcnt[]; }; // the counters: at the end of the buffer
#endif
#define QN_TABLE_BIND 2
#define QN_POOL_BIND 7
#else
#error "moe_q.comp: define QN_MOE_GU or QN_MOE_DN"
#endif
#define QN_W_F32 // moe_w.glsl's element helpers are unused here; only its pools and slot table
#include "moe_w.glsl"
#include "quant.glsl"
#if defined(QN_MOE_GU)
#define QN_CHAIN_BIND 12
#include "moe_chain.glsl"
#elif defined(QN_DN_XSPLIT)
#define QN_CHAIN_BIND 15 // the scratch's first QN_MOE_CHAIN_WORDS words
#include "moe_chain.glsl"
#endif

shared vec4 qn_xs[QN_XSH + 1u];
shared float qn_xsum[QN_XSH / 4u + 1u];
bool qn_xsh;
#define QN_X4AT(i) x4[xb4 + (i)]
#define QN_X4G(i) x4[i]

// x run at vec4 s of the staged copy (s counted from the staged start) or of x4 from vec4 xb4
void qn_xrun(uint s, uint xb4, out vec4 x[4], out float sum)
{
    if (qn_xsh) QN_QX_RUN_S(qn_xs, qn_xsum, s, x, sum)
    else QN_QX_RUN_G(QN_X4AT, s, x, sum)
}

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
// sum of v over the team (qn_wg_sum: every invocation of the workgroup calls it in uniform control flow)
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

#if defined(QN_MOE_GU)
float acc_g[QN_SGROWS], acc_u[QN_SGROWS];

// loads of QN_UNROLL units (v + u * step, clamped) of the set's gate and up rows (first bytes gb[j]) from pool
// arrays P4 / P1 into RG / RU
#define QN_GU_LOADS_TO(P4, P1, RG, RU)                                                            \
    [[unroll]] for (uint u = 0u; u < QN_UNROLL; u++) {                                            \
        uint vv = min(v + u * step, nu - 1u), bo = vv / QN_QUPB * QN_QBB;                          \
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {                                        \
            RG[u * QN_SGROWS + j] = QN_Q_LOAD(P4, P1, gb[j] + bo, vv % QN_QUPB);                  \
            RU[u * QN_SGROWS + j] = QN_Q_LOAD(P4, P1, gb[j] + QN_UP_OFF + bo, vv % QN_QUPB);      \
        }                                                                                         \
    }
#define QN_GU_LOADS(P4, P1) QN_GU_LOADS_TO(P4, P1, qn_rg, qn_ru)
qn_qu qn_rg[QN_UNROLL * QN_SGROWS], qn_ru[QN_UNROLL * QN_SGROWS]; // the batch in flight

// acc_g / acc_u += the dots of the batch qn_rg / qn_ru (units v + u * step < nu) with x
void gu_use(uint v, uint step, uint nu, uint xb4)
{
    [[unroll]] for (uint u = 0u; u < QN_UNROLL; u++) {
        uint vv = v + u * step;
        if (vv < nu) {
            uint b = vv / QN_QUPB, k = vv % QN_QUPB, e0, e1;
            qn_q_xrun(k, e0, e1);
            vec4 xa[4], xb[4];
            float sa, sb;
            qn_xrun((b * QN_QK + e0) / 4u, xb4, xa, sa);
            qn_xrun((b * QN_QK + e1) / 4u, xb4, xb, sb);
            [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {
                acc_g[j] += qn_q_dot(qn_rg[u * QN_SGROWS + j], k, xa, xb, sa, sb);
                acc_u[j] += qn_q_dot(qn_ru[u * QN_SGROWS + j], k, xa, xb, sa, sb);
            }
        }
    }
}

// this lane's share of the set's rows (first weight byte of each gate row: gb[j]); pre: its first batch is in
// qn_rg / qn_ru already
void gu_set(uint p, uint gb[QN_SGROWS], uint lane, uint step, uint xb4, bool pre)
{
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) acc_g[j] = acc_u[j] = 0.0;
    uint nu = pc.H / 32u;
    for (uint v = lane; v < nu; v += QN_UNROLL * step) {
        if (!pre) QN_POOL_SWITCH(p, QN_GU_LOADS)
        pre = false;
        gu_use(v, step, nu, xb4);
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
    if (s < 0) { // uniform
        for (uint r = lid; r < QN_ROWS; r += QN_WG)
            if (i0 + r < pc.I) act[ab + i0 + r] = uintBitsToFloat(0x7fc00000u);
        return;
    }
    uint p = qn_slot_pool(s), sb = qn_slot_byte(s), rowb = pc.H / QN_QK * QN_QBB;
    qn_team tm = qn_get_team();
    const uint sets = (QN_ROWS + QN_SGROWS - 1u) / QN_SGROWS;
    // QN_PRE: the team's first batch of its first set in flight before x is staged
    bool pre = QN_PRE != 0u && tm.id < tm.n;
    if (pre) {
        uint gb[QN_SGROWS], v = tm.lane, step = tm.lanes, nu = pc.H / 32u;
        gu_rows(sb, i0, min(tm.id, sets - 1u), rowb, gb);
        QN_POOL_SWITCH(p, QN_GU_LOADS)
    }
    qn_xsh = QN_XSH > 0u && pc.H <= 4u * QN_XSH;
    if (qn_xsh) {
        QN_QX_STAGE(qn_xs, qn_xsum, QN_X4AT, lid, pc.H / 16u, QN_WG)
        barrier();
        xb4 = 0u;
    }
    // teams past the last set redo it without storing (no team leaves early: lavapipe's subgroup reductions
    // went wrong when some subgroups of the workgroup had exited)
    for (uint st0 = tm.id; st0 < max(sets, tm.n) && tm.id < tm.n; st0 += tm.n) {
        uint st = min(st0, sets - 1u);
        bool store = st0 < sets && qn_team_leader(tm);
        uint gb[QN_SGROWS];
        gu_rows(sb, i0, st, rowb, gb);
        gu_set(p, gb, tm.lane, tm.lanes, xb4, pre && st0 == tm.id);
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {
            float gs = qn_team_sum(acc_g[j]), us = qn_team_sum(acc_u[j]);
            uint r = st * QN_SGROWS + j;
            if (store && r < QN_ROWS && i0 + r < pc.I) act[ab + i0 + r] = qn_silu(gs) * us;
        }
    }
}

QN_CHAIN_GU_MAIN

#else // QN_MOE_DN

shared int qn_slots[QN_MOE_MAX_K];
float acc[QN_SGROWS];

// loads of unit position u of the set's rows (first weight byte of row j of expert k: dbase + j G rowb)
// for QN_UNROLL experts kk = k0 + e (clamped), each a uniform switch over its pool
#define QN_DN_LOADS(P4, P1)                                                                       \
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++)                                              \
        raw[e * QN_SGROWS + j] = QN_Q_LOAD(P4, P1, rb[j] + bo, u % QN_QUPB);

// QN_KSPLIT: rows h0 + r one per team at a time; the team's lanes over the row's units of the K experts (unit v
// of expert v / nu) and then of the block shared row, QN_UNROLL units per lane loaded before any is used; an f32
// shared row after them (lanes on vec4s); one team sum per row
#define QN_DNK_LOAD(P4, P1) raw[e] = QN_Q_LOAD(P4, P1, rbk, kq);
void dn_ksplit(qn_team tm, uint h0, uint t, uint xb4, uint xrow4)
{
    bool shq = (pc.flags & QN_MOE_SHARED_Q) != 0u, vec_s = pc.Is % 4u == 0u && pc.act_stride % 4u == 0u;
    uint nu = pc.I / 32u, nr = pc.K * nu, nus = shq ? pc.Is / 32u : 0u, ntot = nr + nus;
    uint rowb = nu / QN_QUPB * QN_QBB, rowbs = nus / QN_QUPB * QN_QBB;
    uint sa4 = (t * (pc.K + 1u) + pc.K) * pc.act_stride, sx4 = sa4 / 4u;
    // teams past the last row redo it without storing (no team leaves early)
    for (uint st0 = tm.id; st0 < max(QN_ROWS, tm.n) && tm.id < tm.n; st0 += tm.n) {
        uint r = min(st0, QN_ROWS - 1u), h = min(h0 + r, pc.H - 1u);
        bool store = st0 < QN_ROWS && h0 + r < pc.H && qn_team_leader(tm);
        float a = 0.0, ps = 0.0;
        for (uint v0 = tm.lane; v0 < ntot; v0 += QN_UNROLL * tm.lanes) {
            qn_qu raw[QN_UNROLL];
            [[unroll]] for (uint e = 0u; e < QN_UNROLL; e++) {
                uint v = min(v0 + e * tm.lanes, ntot - 1u), u = v < nr ? v % nu : v - nr, b = u / QN_QUPB, kq = u % QN_QUPB;
                if (v >= nr) {
                    raw[e] = QN_Q_LOAD(dsq4, dsq1, h * rowbs + b * QN_QBB, kq);
                } else {
                    int s = qn_slots[v / nu];
                    uint rbk = qn_slot_byte(s) + QN_DN_OFF + h * rowb + b * QN_QBB;
                    QN_POOL_SWITCH(qn_slot_pool(s), QN_DNK_LOAD)
                }
            }
            [[unroll]] for (uint e = 0u; e < QN_UNROLL; e++) {
                uint v = v0 + e * tm.lanes;
                if (v < ntot) {
                    bool sh = v >= nr;
                    uint k = sh ? pc.K : v / nu, u = sh ? v - nr : v % nu, b = u / QN_QUPB, kq = u % QN_QUPB, e0, e1;
                    qn_q_xrun(kq, e0, e1);
                    vec4 xa[4], xb[4];
                    float sa, sb;
                    if (sh) {
                        QN_QX_RUN_G(QN_X4G, sx4 + (b * QN_QK + e0) / 4u, xa, sa)
                        QN_QX_RUN_G(QN_X4G, sx4 + (b * QN_QK + e1) / 4u, xb, sb)
                    } else {
                        uint xk = xb4 + k * xrow4 + b * QN_QK / 4u;
                        qn_xrun(xk + e0 / 4u, 0u, xa, sa);
                        qn_xrun(xk + e1 / 4u, 0u, xb, sb);
                    }
                    a += (sh ? sg[t] : w[t * pc.K + k]) * qn_q_dot(raw[e], kq, xa, xb, sa, sb);
                }
            }
        }
        if (!shq) {
            if (vec_s)
                for (uint c = tm.lane; c < pc.Is / 4u; c += tm.lanes) ps += dot(down_s4[h * (pc.Is / 4u) + c], x4[sx4 + c]);
            else
                for (uint c = tm.lane; c < pc.Is; c += tm.lanes) ps += down_s[h * pc.Is + c] * a1[sa4 + c];
        }
        float tot = qn_team_sum(a + sg[t] * ps);
        if (store) y[t * pc.H + h0 + r] += tot;
    }
}

#if !defined(QN_DN_XSPLIT)
void main()
{
    uint g = qn_group_id(), h0 = g * QN_ROWS, t = gl_WorkGroupID.z, lid = gl_LocalInvocationIndex;
    if (h0 >= pc.H) return; // uniform
    for (uint k = lid; k < min(pc.K, QN_MOE_MAX_K); k += QN_WG) qn_slots[k] = qn_moe_slot(ids[t * pc.K + k]);
    uint xb4 = t * (pc.K + 1u) * pc.act_stride / 4u, nu = pc.I / 32u, xrow4 = pc.act_stride / 4u;
    qn_xsh = QN_XSH > 0u && pc.K * pc.I <= 4u * QN_XSH;
    if (qn_xsh) { // act rows k < K of token t, packed at vec4 k * I / 4
        for (uint r = lid; r < pc.K * (pc.I / 16u); r += QN_WG) {
            uint k = r / (pc.I / 16u), q = r % (pc.I / 16u), src = xb4 + k * xrow4 + 4u * q, s = qn_qxs_slot(4u * r);
            vec4 a = x4[src], b = x4[src + 1u], c = x4[src + 2u], d = x4[src + 3u];
            qn_xs[s] = a, qn_xs[s ^ 1u] = b, qn_xs[s ^ 2u] = c, qn_xs[s ^ 3u] = d;
            qn_xsum[r] = dot((a + b) + (c + d), vec4(1.0));
        }
        xb4 = 0u, xrow4 = pc.I / 4u;
    }
    barrier();
    bool absent = pc.K > QN_MOE_MAX_K; // the K slots were looked up in parallel above
    for (uint k = 0u; k < pc.K && !absent; k++) absent = qn_slots[k] < 0;
    if (absent) { // uniform
        for (uint r = lid; r < QN_ROWS; r += QN_WG)
            if (h0 + r < pc.H) y[t * pc.H + h0 + r] = uintBitsToFloat(0x7fc00000u);
        return;
    }
    qn_team tm = qn_get_team();
    if (QN_KSPLIT != 0u) {
        dn_ksplit(tm, h0, t, xb4, xrow4);
        return;
    }
    uint lpr = min(tm.lanes, nu), G = tm.lanes / lpr, grp = tm.lane / lpr, ul = tm.lane % lpr;
    uint rows_set = G * QN_SGROWS, sets = (QN_ROWS + rows_set - 1u) / rows_set;
    uint rowb = nu / QN_QUPB * QN_QBB, sa4 = (t * (pc.K + 1u) + pc.K) * pc.act_stride;
    bool vec_s = pc.Is % 4u == 0u && pc.act_stride % 4u == 0u, shq = (pc.flags & QN_MOE_SHARED_Q) != 0u;
    uint nus = shq ? pc.Is / 32u : 0u, rowbs = nus / QN_QUPB * QN_QBB, sx4 = sa4 / 4u;
    // teams past the last set redo it without storing (no team leaves early: lavapipe's subgroup reductions
    // went wrong when some subgroups of the workgroup had exited)
    for (uint st0 = tm.id; st0 < max(sets, tm.n) && tm.id < tm.n; st0 += tm.n) {
        uint st = min(st0, sets - 1u);
        bool store = st0 < sets && qn_team_leader(tm);
        uint hb = h0 + st * rows_set + grp; // this lane's rows: hb + j G
        float ps[QN_SGROWS];
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) acc[j] = ps[j] = 0.0;
        for (uint u = ul; u < max(nu, nus) && grp < G; u += lpr) {
            uint b = u / QN_QUPB, kq = u % QN_QUPB, e0, e1, bo = b * QN_QBB;
            qn_q_xrun(kq, e0, e1);
            qn_qu sraw[QN_SGROWS]; // the block shared row's unit u (QN_MOE_SHARED_Q), in flight with the experts'
            if (u < nus)
                [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++)
                    sraw[j] = QN_Q_LOAD(dsq4, dsq1, min(hb + j * G, pc.H - 1u) * rowbs + bo, kq);
            for (uint k0 = 0u; k0 < pc.K && u < nu; k0 += QN_UNROLL) {
                qn_qu raw[QN_UNROLL * QN_SGROWS];
                [[unroll]] for (uint e = 0u; e < QN_UNROLL; e++) {
                    int s = qn_slots[min(k0 + e, pc.K - 1u)];
                    uint rb[QN_SGROWS];
                    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++)
                        rb[j] = qn_slot_byte(s) + QN_DN_OFF + min(hb + j * G, pc.H - 1u) * rowb;
                    QN_POOL_SWITCH(qn_slot_pool(s), QN_DN_LOADS)
                }
                [[unroll]] for (uint e = 0u; e < QN_UNROLL; e++) {
                    uint k = k0 + e;
                    if (k < pc.K) {
                        vec4 xa[4], xb[4];
                        float sa, sb;
                        uint xk = xb4 + k * xrow4 + b * QN_QK / 4u;
                        qn_xrun(xk + e0 / 4u, 0u, xa, sa);
                        qn_xrun(xk + e1 / 4u, 0u, xb, sb);
                        float wk = w[t * pc.K + k];
                        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++)
                            acc[j] += wk * qn_q_dot(raw[e * QN_SGROWS + j], kq, xa, xb, sa, sb);
                    }
                }
            }
            if (u < nus) {
                vec4 xa[4], xb[4];
                float sa, sb;
                QN_QX_RUN_G(QN_X4G, sx4 + (b * QN_QK + e0) / 4u, xa, sa)
                QN_QX_RUN_G(QN_X4G, sx4 + (b * QN_QK + e1) / 4u, xb, sb)
                [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) ps[j] += qn_q_dot(sraw[j], kq, xa, xb, sa, sb);
            }
        }
        // an f32 shared expert's rows: each lane group its own rows, lanes on consecutive vec4s
        if (grp < G && !shq) {
            uint hr[QN_SGROWS];
            [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) hr[j] = min(hb + j * G, pc.H - 1u);
            if (vec_s)
                for (uint c = ul; c < pc.Is / 4u; c += lpr) {
                    vec4 a = x4[sa4 / 4u + c];
                    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) ps[j] += dot(down_s4[hr[j] * (pc.Is / 4u) + c], a);
                }
            else
                for (uint c = ul; c < pc.Is; c += lpr) {
                    float a = a1[sa4 + c];
                    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) ps[j] += down_s[hr[j] * pc.Is + c] * a;
                }
        }
        // one team sum per row of the set: lanes add their value for the rows that are theirs
        for (uint r = 0u; r < rows_set; r++) {
            float v = 0.0;
            [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) v += r == j * G + grp ? acc[j] + sg[t] * ps[j] : 0.0;
            v = qn_team_sum(v);
            uint h = h0 + st * rows_set + r;
            if (store && st * rows_set + r < QN_ROWS && h < pc.H) y[t * pc.H + h] += v;
        }
    }
}
#else // QN_DN_XSPLIT
// ---- QN_DN_XSPLIT: the down split over the experts. Group g = rb (K + 1) + k computes rows h0 = rb QN_ROWS ..
// + QN_ROWS of expert k's down (k = K: the shared expert's down_s), unweighted, into part[(t (K + 1) + k) H + h];
// then it counts itself on its row block's counter (fence, barrier, one integer atomicAdd: the last-block pattern
// of mv_route.glsl), and the last of the K + 1 groups adds y[t, h] += sum_k w[t, k] part_k[h] + sg[t] part_K[h]
// in expert order (no float atomics: the sum does not depend on which group came last) and sets the counter
// back to 0. Lanes as the row sets above: a team splits into G = lanes / lpr groups (lpr = min(lanes, units per
// row)), lane ul of group grp on units ul, ul + lpr, ... of its QN_SGROWS rows hb + j G, QN_UNROLL units of each
// row loaded before any is used; an f32 shared row is read in vec4s (floats when Is or act_stride is not a
// multiple of 4) in the same lane layout.
shared bool qn_last;
float accx[QN_SGROWS];
qn_qu qn_rx[QN_UNROLL * QN_SGROWS]; // the batch in flight

// QN_WIMAX: the group's rows of a routed expert, staged (uvec4s for the formats that load uvec4s, else words)
const uint QN_WS_N4 = QN_ROWS * (QN_WIMAX / QN_QK) * QN_QBB / 16u + 1u;
const uint QN_WS_PER = (QN_WS_N4 + QN_WG - 1u) / QN_WG; // uvec4s each invocation copies
#if defined(QN_Q4_K) || defined(QN_Q5_K)
shared uvec4 qn_ws4[QN_WS_N4];
#else
shared uint qn_ws1[4u * QN_WS_N4];
#endif

// n16 uvec4s from byte wb (16-byte aligned) of pool P4 into the stage: all loads first, then the stores
#define QN_WS_LOADS(P4, P1)                                                                       \
    [[unroll]] for (uint c = 0u; c < QN_WS_PER; c++) tmp[c] = P4[wb / 16u + min(lid + c * QN_WG, n16 - 1u)];
// (and with QN_XSH >= I / 4 the group's act row from vec4 xb4 into qn_xs / qn_xsum, its loads in flight with
// the weights': the x runs then come from shared memory after the barrier instead of another L2 round trip)
void dnx_stage(int s, uint wb, uint n16, uint lid, uint xb4)
{
    uvec4 tmp[QN_WS_PER];
    QN_POOL_SWITCH(qn_slot_pool(s), QN_WS_LOADS)
    if (qn_xsh) QN_QX_STAGE(qn_xs, qn_xsum, QN_X4AT, lid, pc.I / 16u, QN_WG)
    [[unroll]] for (uint c = 0u; c < QN_WS_PER; c++) {
        uint i = lid + c * QN_WG;
        if (i < n16) {
#if defined(QN_Q4_K) || defined(QN_Q5_K)
            qn_ws4[i] = tmp[c];
#else
            qn_ws1[4u * i] = tmp[c].x, qn_ws1[4u * i + 1u] = tmp[c].y, qn_ws1[4u * i + 2u] = tmp[c].z;
            qn_ws1[4u * i + 3u] = tmp[c].w;
#endif
        }
    }
}

// QN_UNROLL units u + e lpr (clamped) of the rows whose first bytes are rb[j], from pool arrays P4 / P1, into qn_rx
#define QN_DNX_LOADS(P4, P1)                                                                      \
    [[unroll]] for (uint e = 0u; e < QN_UNROLL; e++) {                                            \
        uint uu = min(u + e * lpr, nun - 1u), bo = uu / QN_QUPB * QN_QBB;                          \
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++)                                          \
            qn_rx[e * QN_SGROWS + j] = QN_Q_LOAD(P4, P1, rb[j] + bo, uu % QN_QUPB);                \
    }

// accx[j] += the dots of the batch qn_rx (units u + e lpr < nun) with the act row at vec4 xr4
void dnx_use(uint u, uint lpr, uint nun, uint xr4)
{
    [[unroll]] for (uint e = 0u; e < QN_UNROLL; e++) {
        uint uu = u + e * lpr;
        if (uu < nun) {
            uint b = uu / QN_QUPB, kq = uu % QN_QUPB, e0, e1;
            qn_q_xrun(kq, e0, e1);
            vec4 xa[4], xb[4];
            float sa, sb;
            qn_xrun((b * QN_QK + e0) / 4u, xr4, xa, sa); // staged (qn_xsh) or from x4[xr4 ..]
            qn_xrun((b * QN_QK + e1) / 4u, xr4, xb, sb);
            [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++)
                accx[j] += qn_q_dot(qn_rx[e * QN_SGROWS + j], kq, xa, xb, sa, sb);
        }
    }
}

// first bytes rb[j] of the block rows hb + j G (clamped to H) of expert slot s (sh: the shared expert's rows in down_s;
// ws: of the slot's rows staged from row h0 on)
void dnx_row_starts(bool sh, bool ws, int s, uint h0, uint hb, uint G, out uint rb[QN_SGROWS])
{
    uint rowb = (sh ? pc.Is : pc.I) / QN_QK * QN_QBB, base = sh ? 0u : qn_slot_byte(s) + QN_DN_OFF;
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {
        uint hr = min(hb + j * G, pc.H - 1u);
        rb[j] = ws ? (hr - h0) * rowb : base + hr * rowb;
    }
}

// accx[j] = this lane's part of row hb + j G (clamped to H) of expert slot s (sh: the shared expert's rows: blocks
// when shq, else f32; ws: the slot's rows from h0 on are staged) with the act row starting at float xa; nun units
// (f32: vec4s or floats) per row
void dnx_rows(bool sh, bool shq, bool vec_s, bool ws, int s, uint h0, uint hb, uint G, uint ul, uint lpr, uint nun,
              uint xa, bool pre)
{
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) accx[j] = 0.0;
    uint hr[QN_SGROWS];
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) hr[j] = min(hb + j * G, pc.H - 1u);
    if (sh && !shq) {
        if (vec_s)
            for (uint c = ul; c < nun; c += lpr) {
                vec4 a = x4[xa / 4u + c];
                [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) accx[j] += dot(down_s4[hr[j] * (pc.Is / 4u) + c], a);
            }
        else
            for (uint c = ul; c < nun; c += lpr) {
                float a = a1[xa + c];
                [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) accx[j] += down_s[hr[j] * pc.Is + c] * a;
            }
        return;
    }
    uint rb[QN_SGROWS];
    dnx_row_starts(sh, ws, s, h0, hb, G, rb);
    for (uint u = ul; u < nun; u += QN_UNROLL * lpr) {
        if (pre) { // the first batch is in qn_rx already (dnx_preload)
        } else if (sh) {
            QN_DNX_LOADS(dsq4, dsq1)
        } else if (ws) {
            QN_DNX_LOADS(qn_ws4, qn_ws1)
        } else {
            QN_POOL_SWITCH(qn_slot_pool(s), QN_DNX_LOADS)
        }
        pre = false;
        dnx_use(u, lpr, nun, xa / 4u);
    }
}

// The decode chain: dnx_rows' first batch of weight loads (block rows: routed, or the shared ones with shq) issued
// before the wait for the gate_up's act rows, so the down's DRAM reads overlap the gate_up's tail
void dnx_preload(bool sh, int s, uint hb, uint G, uint ul, uint lpr, uint nun)
{
    uint rb[QN_SGROWS], u = ul;
    dnx_row_starts(sh, false, s, 0u, hb, G, rb);
    if (sh) {
        QN_DNX_LOADS(dsq4, dsq1)
    } else {
        QN_POOL_SWITCH(qn_slot_pool(s), QN_DNX_LOADS)
    }
}

// the last group of row block rbk: y[t, h0 + r] += the K + 1 partials in expert order, weighted
void dnx_combine(uint t, uint h0, uint lid)
{
    uint K1 = pc.K + 1u;
    for (uint r = lid; r < QN_ROWS; r += QN_WG) {
        uint h = h0 + r;
        if (h < pc.H) {
            float v = 0.0;
            for (uint k = 0u; k < pc.K; k++) v += w[t * pc.K + k] * part[QN_MOE_CHAIN_WORDS + (t * K1 + k) * pc.H + h];
            v += sg[t] * part[QN_MOE_CHAIN_WORDS + (t * K1 + pc.K) * pc.H + h];
            y[t * pc.H + h] += v;
        }
    }
}

// this group counts itself on its row block's counter (after its partials); the last of the K + 1 combines
void dnx_finish(uint t, uint h0, uint rbk, uint nblk, uint lid)
{
    memoryBarrierBuffer(); // this group's partials before the count
    barrier();
    uint ci = uint(pcnt.length()) - 1u - (t * nblk + rbk); // counters from the end of the buffer
    if (lid == 0u) qn_last = atomicAdd(pcnt[ci], 1u) == pc.K;
    barrier();
    if (!qn_last) return; // uniform
    memoryBarrierBuffer();
    if (lid == 0u) pcnt[ci] = 0u; // ready for the next use
    dnx_combine(t, h0, lid);
}

// the team's row sets in turn: rows(st, hb) fills accx for the lane's rows hb + j G of set st; then one team sum per
// row of the set into the group's partials (NaN when absent)
#define QN_DNX_SETS(ROWS_CALL)                                                                    \
    for (uint st0 = tm.id; st0 < max(sets, tm.n) && tm.id < tm.n; st0 += tm.n) {                 \
        uint st = min(st0, sets - 1u);                                                            \
        bool store = st0 < sets && qn_team_leader(tm);                                            \
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) accx[j] = 0.0;                           \
        if (!absent && grp < G) ROWS_CALL;                                                        \
        for (uint r = 0u; r < rows_set; r++) {                                                    \
            float v = 0.0;                                                                        \
            [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) v += r == j * G + grp && grp < G ? accx[j] : 0.0; \
            v = qn_team_sum(v);                                                                   \
            uint h = h0 + st * rows_set + r;                                                      \
            if (store && st * rows_set + r < QN_ROWS && h < pc.H)                                 \
                part[pb + h] = absent ? uintBitsToFloat(0x7fc00000u) : v;                         \
        }                                                                                         \
    }

void main()
{
    uint g = qn_group_id(), K1 = pc.K + 1u, nblk = (pc.H + QN_ROWS - 1u) / QN_ROWS;
    uint rbk = g / K1, k = g % K1, h0 = rbk * QN_ROWS, t = gl_WorkGroupID.z, lid = gl_LocalInvocationIndex;
    if (rbk >= nblk) return; // grid padding (uniform; not counted)
    // the decode chain: the route's ids first (its mark, or a gate_up's count: the last gate_up clears the mark), then
    // this group's first weights in flight, then the gate_up's act rows (pc.chain_n groups counted)
    bool chained = (pc.flags & QN_MOE_CHAIN_IN) != 0u;
    if (chained) qn_chain_wait_any(3u * t, 3u * t + 1u);
    bool sh = k == pc.K, shq = (pc.flags & QN_MOE_SHARED_Q) != 0u;
    bool vec_s = pc.Is % 4u == 0u && pc.act_stride % 4u == 0u;
    int s = sh ? 0 : qn_moe_slot(ids[t * pc.K + k]);
    bool absent = s < 0; // uniform: NaN partials, so the token's y rows become NaN
    uint nun = !sh ? pc.I / 32u : shq ? pc.Is / 32u : vec_s ? pc.Is / 4u : pc.Is;
    uint xa = (t * K1 + k) * pc.act_stride, pb = QN_MOE_CHAIN_WORDS + (t * K1 + k) * pc.H;
    // QN_WIMAX: a routed expert's rows h0 .. h0 + nr staged first (uniform: the slot's rows 16-byte aligned there)
    uint rowb = pc.I / QN_QK * QN_QBB, wb = sh || absent ? 0u : qn_slot_byte(s) + QN_DN_OFF + h0 * rowb;
    bool ws = QN_WIMAX > 0u && !sh && !absent && pc.I <= QN_WIMAX && wb % 16u == 0u;
    qn_xsh = ws && pc.I <= 4u * QN_XSH; // the act row staged with the weights (QN_XSH, spec 6)
    qn_team tm = qn_get_team();
    uint lpr = min(tm.lanes, max(nun, 1u)), G = tm.lanes / lpr, grp = tm.lane / lpr, ul = tm.lane % lpr;
    uint rows_set = G * QN_SGROWS, sets = (QN_ROWS + rows_set - 1u) / rows_set;
    bool pre = chained && !ws && !absent && (!sh || shq) && tm.id < tm.n && grp < G;
    if (pre) dnx_preload(sh, s, h0 + min(tm.id, sets - 1u) * rows_set + grp, G, ul, lpr, nun);
    if (chained && !sh) qn_chain_wait(3u * t + 1u, pc.chain_n); // the shared expert's act row is the route's
    if (ws) {
        dnx_stage(s, wb, (min(QN_ROWS, pc.H - h0) * rowb + 15u) / 16u, lid, xa / 4u);
        barrier();
    }
    // teams past the last set redo it without storing (no team leaves early)
    QN_DNX_SETS(dnx_rows(sh, shq, vec_s, ws, s, h0, h0 + st * rows_set + grp, G, ul, lpr, nun, xa, pre && st0 == tm.id))
    dnx_finish(t, h0, rbk, nblk, lid);
    if (chained) qn_chain_dn_done(K1 * nblk, t);
}
#endif // QN_DN_XSPLIT
#endif
