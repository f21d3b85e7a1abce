#version 450
// route_mixed.comp — the decode route stage of one MoE layer in ONE dispatch: m = W_moe · rmsnorm(x) for a
// W_moe given as up to 4 row parts of different types (a GGUF mixed-type fusion; the 80B Q4_K_M file: the f32
// router 512 rows, the shared expert's gate and up 512 rows each in Q4_K, the f32 shared-expert gate 1 row), each
// part in its own binding, then the last workgroup of the token routes it (common/mv_route.glsl: ids, w, sg,
// the shared expert's act row). Replaces one matvec_norm_route dispatch per part (the count spanned them).
//
//     m[t, row0_i + r] = qn_nr · sum_c W_i[r, c] · x[t, c] · (nw[c] + w_add),  qn_nr = rsqrt(mean(x[t]^2) + eps)
//
// Variants (defines): QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K: the block type of the parts with bit i
//   of pc.qmask set (common/quant.glsl); the other parts are f32, except part 0 with pc.bmask bit 0: bf16 (the
//   router converted at load, env QNEXT_ROUTER_BF16W=1; QN_FROWS rows per workgroup as f32). Subgroup
//   arithmetic is required (no _nosg).
// Bindings: 0 W part 0, 10 W part 1, 11 W part 2, 12 W part 3: f32 (bf16) row-major [rows_i, cols] or raw blocks
//             (range rounded up to 4 bytes); a part not used (i >= nparts) may bind any buffer
//           1 x f32 [T, cols], 2 m f32 [T, m_rows], 3 nw f32 [cols], 4 xn f32 [T, cols] (QN_MATVEC_WRITE_XN),
//           5-9 ids, w, sg, act, cnt as mv_route.glsl (cnt[t] zero before, zero again after)
//           13 chain uint32 (common/moe_chain.glsl; written only with QN_MOE_CHAIN_OUT in pc.rflags)
// Push:     qn_pc_route_one (pc_route.h); flags QN_ROUTE_NO_COUNT: m and xn only (bindings 5-9 untouched; the
//           bench's share of the matvec)
// Spec:     0 QN_WG      workgroup size (default 256; a multiple of the subgroup size)
//           1 QN_FROWS   f32 rows per workgroup (default 4)
//           2 QN_QROWS   block-type rows per workgroup (default 8)
//           3 QN_FUNROLL 16-byte f32 chunks per lane per batch (default 8)
//           4 QN_QUNROLL block units (32 weights) per lane per batch (default 2)
//           5 QN_XSH     x staging capacity in vec4 (default 512: cols <= 2048); the host checks cols <= 4 QN_XSH
// (cols: a multiple of 16; the host checks the block size)
// Dispatch: pc.groups workgroups (qn_vk_grid) times T in z. Part i takes ceil(rows_i / ROWS) consecutive
//           workgroups (ROWS = QN_QROWS for block parts, QN_FROWS for f32), parts in order.
// Layout: the workgroup's nr rows are computed by its P teams (full subgroups): with nr >= P team s takes rows
// s, s + P, ...; with nr < P each row is split over np = P / nr teams (interleaved chunk ranges). Each team
// reduces with subgroupAdd into shared partials, one barrier, then invocation r < nr adds row r's np partials in
// a fixed order (m is the same bit for bit in every run). Every lane issues its first batch of weight loads
// before the x staging (the DRAM latency overlaps the norm), and all QN_*UNROLL loads of a batch before using
// them. x is staged once per workgroup as x · (nw + w_add): plain vec4 order for f32 parts, quant.glsl's
// bank-conflict-free slots with the 16-float run sums for block parts; qn_nr is applied at the store.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_FROWS = 4;
layout(constant_id = 2) const uint QN_QROWS = 8;
layout(constant_id = 3) const uint QN_FUNROLL = 8;
layout(constant_id = 4) const uint QN_QUNROLL = 2;
layout(constant_id = 5) const uint QN_XSH = 512;
#include "pc.h"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_route_one pc; };
layout(binding = 0, std430) readonly buffer WA4 { uvec4 wa4[]; };
layout(binding = 0, std430) readonly buffer WA1 { uint wa1[]; };
layout(binding = 10, std430) readonly buffer WB4 { uvec4 wb4[]; };
layout(binding = 10, std430) readonly buffer WB1 { uint wb1[]; };
layout(binding = 11, std430) readonly buffer WC4 { uvec4 wc4[]; };
layout(binding = 11, std430) readonly buffer WC1 { uint wc1[]; };
layout(binding = 12, std430) readonly buffer WD4 { uvec4 wd4[]; };
layout(binding = 12, std430) readonly buffer WD1 { uint wd1[]; };
layout(binding = 1, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 2, std430) coherent buffer Y { float y[]; }; // m: the routing workgroup reads the others' rows
layout(binding = 3, std430) readonly buffer NW4 { vec4 nw4[]; };
layout(binding = 4, std430) writeonly buffer XN4 { vec4 xn4[]; };
#include "quant.glsl"
#define QN_CHAIN_BIND 13
#include "mv_route.glsl"

const uint QN_RT_RMAX = QN_FROWS > QN_QROWS ? QN_FROWS : QN_QROWS;
const uint QN_RT_TMAX = QN_WG / 4u + 1u; // teams: full subgroups of >= 4 invocations
shared vec4 qn_xs[QN_XSH + 1u];
shared float qn_xsum[QN_XSH / 4u + 1u];
shared float qn_part[QN_RT_TMAX > QN_RT_RMAX ? QN_RT_TMAX : QN_RT_RMAX]; // work item i's partial: [part][row]
float qn_nr;

// x · (nw + w_add), vec4 i of the token; adds x^2 to this invocation's share of the sum of squares
float qn_rt_ss;
vec4 qn_rt_x(uint xb4, uint i)
{
    vec4 a = x4[xb4 + i];
    qn_rt_ss += dot(a, a);
    return a * (nw4[i] + pc.w_add);
}

// After the staging barrier: qn_nr in subgroup order (the same bits in every workgroup: both stagings visit the
// same elements per invocation in the same order); workgroup 0 writes xn
void qn_rt_norm(uint xb4)
{
    uint nsub = (QN_WG + gl_SubgroupSize - 1u) / gl_SubgroupSize; // not gl_NumSubgroups (see reduce.glsl)
    float t = 0.0;
    for (uint i = 0u; i < nsub; i++) t += qn_red[i];
    qn_nr = inversesqrt(t / float(pc.cols) + pc.eps);
    if ((pc.flags & QN_MATVEC_WRITE_XN) == 0u || qn_group_id() != 0u) return;
    for (uint i = gl_LocalInvocationIndex; i < pc.cols / 4u; i += QN_WG)
        xn4[xb4 + i] = x4[xb4 + i] * qn_nr * (nw4[i] + pc.w_add);
}

// Stage x of the token (f32 order or the block slots) and take the sum of squares in the same pass (one read of
// x and nw per element): runs of 16 floats r = lid, lid + QN_WG, ... in both layouts. Every invocation (one barrier).
void qn_rt_stage(bool q, uint xb4)
{
    qn_rt_ss = 0.0;
#define QN_RT_XT(i) qn_rt_x(xb4, i)
    if (q) {
        QN_QX_STAGE(qn_xs, qn_xsum, QN_RT_XT, gl_LocalInvocationIndex, pc.cols / 16u, QN_WG)
    } else {
        for (uint r = gl_LocalInvocationIndex; r < pc.cols / 16u; r += QN_WG) {
            vec4 a = QN_RT_XT(4u * r), b = QN_RT_XT(4u * r + 1u), c = QN_RT_XT(4u * r + 2u), d = QN_RT_XT(4u * r + 3u);
            qn_xs[4u * r] = a, qn_xs[4u * r + 1u] = b, qn_xs[4u * r + 2u] = c, qn_xs[4u * r + 3u] = d;
        }
    }
    float v = subgroupAdd(qn_rt_ss);
    if (subgroupElect()) qn_red[gl_SubgroupID] = v;
    barrier();
    qn_rt_norm(xb4);
}

// After the teams' partials: one barrier, invocation r < nr adds row r's np partials in order and stores it
void qn_rt_store(uint mrow0, uint nr, uint np, uint t)
{
    barrier();
    uint r = gl_LocalInvocationIndex;
    if (r >= nr) return;
    float s = 0.0;
    for (uint p = 0u; p < np; p++) s += qn_part[p * nr + r];
    y[t * pc.m_rows + mrow0 + r] = s * qn_nr;
}

// A team's work items i = team, team + P, ... < nr * np: row i % nr of the workgroup, chunk range i / nr of np.
// Dense part over binding WB (uvec4 view): rows r0 .. r0 + nr of the part; CPV weights per 16-byte chunk (f32 4,
// bf16 8) and DOT(w, c) the chunk's dot with the staged x (chunk c of the row).
#define QN_RT_DENSE(NAME, WB, CPV, DOT)                                                           \
void NAME(uint r0, uint nr, uint team, uint P, uint lane, uint lanes, uint xb4)                   \
{                                                                                                 \
    uint np = max(1u, P / nr), nit = nr * np, nch = pc.cols / CPV;                                \
    uvec4 wv[QN_FUNROLL];                                                                         \
    bool pre = team < nit && (team / nr) * lanes + lane < nch;                                    \
    if (pre) {                                                                                    \
        uint rb = (r0 + team % nr) * nch, c = (team / nr) * lanes + lane, step = np * lanes;      \
        [[unroll]] for (uint u = 0u; u < QN_FUNROLL; u++) {                                       \
            uint cc = c + u * step;                                                               \
            wv[u] = WB[rb + (cc < nch ? cc : c)];                                                 \
        }                                                                                         \
    }                                                                                             \
    qn_rt_stage(false, xb4);                                                                      \
    for (uint i = team; i < nit; i += P) {                                                        \
        uint rb = (r0 + i % nr) * nch, c = (i / nr) * lanes + lane, step = np * lanes;            \
        float acc = 0.0;                                                                          \
        for (; c < nch; c += QN_FUNROLL * step) {                                                 \
            if (!pre) [[unroll]] for (uint u = 0u; u < QN_FUNROLL; u++) {                         \
                uint cc = c + u * step;                                                           \
                wv[u] = WB[rb + (cc < nch ? cc : c)];                                             \
            }                                                                                     \
            pre = false;                                                                          \
            [[unroll]] for (uint u = 0u; u < QN_FUNROLL; u++)                                     \
                if (c + u * step < nch) acc += DOT(wv[u], c + u * step);                          \
        }                                                                                         \
        pre = false;                                                                              \
        acc = subgroupAdd(acc);                                                                   \
        if (subgroupElect()) qn_part[i] = acc; /* i = (i / nr) * nr + i % nr: [part][row] */        \
    }                                                                                             \
}

#define QN_RT_DOT_F32(w, c) dot(uintBitsToFloat(w), qn_xs[c])
// bf16 pairs, low half first: chunk c holds x elements 8c .. 8c + 7 (staged vec4s 2c, 2c + 1)
float qn_rt_dot_b16(uvec4 w, uint c)
{
    vec4 lo = uintBitsToFloat(uvec4(w.x << 16, w.x & 0xffff0000u, w.y << 16, w.y & 0xffff0000u));
    vec4 hi = uintBitsToFloat(uvec4(w.z << 16, w.z & 0xffff0000u, w.w << 16, w.w & 0xffff0000u));
    return dot(lo, qn_xs[2u * c]) + dot(hi, qn_xs[2u * c + 1u]);
}
#define QN_RT_F32(NAME, WB) QN_RT_DENSE(NAME, WB, 4u, QN_RT_DOT_F32)

// Block part over bindings (P4, P1): rows r0 .. r0 + nr of the part, units of 32 weights (quant.glsl)
#define QN_RT_Q(NAME, P4, P1)                                                                     \
void NAME(uint r0, uint nr, uint team, uint P, uint lane, uint lanes, uint xb4)                   \
{                                                                                                 \
    uint np = max(1u, P / nr), nit = nr * np, nb = pc.cols / QN_QK, nu = nb * QN_QUPB;            \
    qn_qu raw[QN_QUNROLL];                                                                        \
    bool pre = team < nit && (team / nr) * lanes + lane < nu;                                     \
    if (pre) {                                                                                    \
        uint rb = (r0 + team % nr) * nb * QN_QBB, v = (team / nr) * lanes + lane, step = np * lanes; \
        [[unroll]] for (uint u = 0u; u < QN_QUNROLL; u++) {                                       \
            uint vv = v + u * step < nu ? v + u * step : v;                                       \
            raw[u] = QN_Q_LOAD(P4, P1, rb + (vv / QN_QUPB) * QN_QBB, vv % QN_QUPB);               \
        }                                                                                         \
    }                                                                                             \
    qn_rt_stage(true, xb4);                                                                       \
    for (uint i = team; i < nit; i += P) {                                                        \
        uint rb = (r0 + i % nr) * nb * QN_QBB, v = (i / nr) * lanes + lane, step = np * lanes;    \
        float acc = 0.0;                                                                          \
        for (; v < nu; v += QN_QUNROLL * step) {                                                  \
            if (!pre) [[unroll]] for (uint u = 0u; u < QN_QUNROLL; u++) {                         \
                uint vv = v + u * step < nu ? v + u * step : v;                                   \
                raw[u] = QN_Q_LOAD(P4, P1, rb + (vv / QN_QUPB) * QN_QBB, vv % QN_QUPB);           \
            }                                                                                     \
            pre = false;                                                                          \
            [[unroll]] for (uint u = 0u; u < QN_QUNROLL; u++) {                                   \
                uint vu = v + u * step;                                                           \
                if (vu < nu) {                                                                    \
                    uint b = vu / QN_QUPB, k = vu % QN_QUPB, e0, e1;                              \
                    qn_q_xrun(k, e0, e1);                                                         \
                    vec4 xa[4], xb[4];                                                            \
                    float sa, sb;                                                                 \
                    QN_QX_RUN_S(qn_xs, qn_xsum, (b * QN_QK + e0) / 4u, xa, sa);                    \
                    QN_QX_RUN_S(qn_xs, qn_xsum, (b * QN_QK + e1) / 4u, xb, sb);                    \
                    acc += qn_q_dot(raw[u], k, xa, xb, sa, sb);                                   \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        pre = false;                                                                              \
        acc = subgroupAdd(acc);                                                                   \
        if (subgroupElect()) qn_part[i] = acc; /* i = (i / nr) * nr + i % nr: [part][row] */        \
    }                                                                                             \
}

QN_RT_F32(qn_rt_f32_0, wa4)
QN_RT_F32(qn_rt_f32_1, wb4)
QN_RT_F32(qn_rt_f32_2, wc4)
QN_RT_F32(qn_rt_f32_3, wd4)
QN_RT_DENSE(qn_rt_b16_0, wa4, 8u, qn_rt_dot_b16) // bf16: part 0 only (the router, pc.bmask bit 0)
QN_RT_Q(qn_rt_q_0, wa4, wa1)
QN_RT_Q(qn_rt_q_1, wb4, wb1)
QN_RT_Q(qn_rt_q_2, wc4, wc1)
QN_RT_Q(qn_rt_q_3, wd4, wd1)

uint qn_rt_row0(uint i) { return i == 0u ? pc.row0_0 : i == 1u ? pc.row0_1 : i == 2u ? pc.row0_2 : pc.row0_3; }
uint qn_rt_rows(uint i) { return i == 0u ? pc.rows_0 : i == 1u ? pc.rows_1 : i == 2u ? pc.rows_2 : pc.rows_3; }

void main()
{
    uint g = qn_group_id(), t = gl_WorkGroupID.z, xb4 = t * (pc.cols / 4u);
    if (g >= pc.groups) return; // grid padding (uniform)
    // this workgroup's part and rows (uniform)
    uint part = 0u, g0 = 0u, rpw = 1u;
    for (; part < pc.nparts; part++) {
        rpw = (pc.qmask & (1u << part)) != 0u ? QN_QROWS : QN_FROWS;
        uint n = (qn_rt_rows(part) + rpw - 1u) / rpw;
        if (g < g0 + n) break;
        g0 += n;
    }
    if (part >= pc.nparts) return; // a count that does not match the parts: nobody routes (the host checks)
    bool q = (pc.qmask & (1u << part)) != 0u, b16 = part == 0u && (pc.bmask & 1u) != 0u;
    uint r0 = (g - g0) * rpw, nr = min(rpw, qn_rt_rows(part) - r0);
    uint P = max(1u, QN_WG / gl_SubgroupSize), team = gl_SubgroupID < P ? gl_SubgroupID : ~0u;
    uint lane = gl_SubgroupInvocationID, lanes = gl_SubgroupSize;
    if (q) {
        if (part == 0u) qn_rt_q_0(r0, nr, team, P, lane, lanes, xb4);
        else if (part == 1u) qn_rt_q_1(r0, nr, team, P, lane, lanes, xb4);
        else if (part == 2u) qn_rt_q_2(r0, nr, team, P, lane, lanes, xb4);
        else qn_rt_q_3(r0, nr, team, P, lane, lanes, xb4);
    } else if (b16) {
        qn_rt_b16_0(r0, nr, team, P, lane, lanes, xb4);
    } else {
        if (part == 0u) qn_rt_f32_0(r0, nr, team, P, lane, lanes, xb4);
        else if (part == 1u) qn_rt_f32_1(r0, nr, team, P, lane, lanes, xb4);
        else if (part == 2u) qn_rt_f32_2(r0, nr, team, P, lane, lanes, xb4);
        else qn_rt_f32_3(r0, nr, team, P, lane, lanes, xb4);
    }
    qn_rt_store(qn_rt_row0(part) + r0, nr, max(1u, P / nr), t);
    if ((pc.flags & QN_ROUTE_NO_COUNT) != 0u) return; // m and xn only (uniform)
    qn_rt_count(t);
}
