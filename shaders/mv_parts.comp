#version 450
// mv_parts.comp — y = W · rmsnorm(x) in ONE dispatch for a weight given as up to 4 row parts of different types
// (a GGUF mixed-type fusion at decode: the 80B Q4_K_M file's GDN in_proj is attn_qkv in Q4_K or Q6_K, attn_gate in
// Q4_K and the f32 ssm_ba rows), each part in its own binding. Replaces one matvec_norm dispatch per part.
//
//     y[t, row0_i + r] = qn_nr · sum_c W_i[r, c] · x[t, c] · (nw[c] + w_add),  qn_nr = rsqrt(mean(x[t]^2) + eps)
//
// Part i's type is the 4-bit code (spec QN_TYPES >> 4i) & 15: 0 f32, 1 Q8_0, 2 Q4_0, 3 Q4_K, 4 Q5_K, 5 Q6_K (block
// decoding in common/quant.glsl), 15 none. A spec constant, so that the driver compiles only the decoders of the
// pipeline's parts (the module holds every format for each of the 4 bindings). Subgroup arithmetic is required (no
// _nosg variant: the host keeps the per-part dispatches without it).
// Bindings: 0 W part 0, 5 W part 1, 6 W part 2, 7 W part 3: f32 row-major [rows_i, cols] or raw blocks (range
//             rounded up to 4 bytes); a part not used (i >= nparts) may bind any buffer
//           1 x f32 [T, cols], 2 y f32 [T, rows], 3 nw f32 [cols], 4 xn f32 [T, cols] (QN_MATVEC_WRITE_XN)
// Push:     qn_pc_mv_parts (pc_mv_norm.h)
// Spec:     0 QN_WG      workgroup size (default 256; a multiple of the subgroup size)
//           1 QN_FROWS   f32 rows per workgroup (default 4)
//           2 QN_QROWS   block-type rows per workgroup (default 8)
//           3 QN_FUNROLL 16-byte f32 chunks per lane per batch (default 8)
//           4 QN_QUNROLL block units (32 weights) per lane per batch (default 2)
//           5 QN_XSH     x staging capacity in vec4 (default 512: cols <= 2048); the host checks cols <= 4 QN_XSH
//           6 QN_TYPES   the parts' type codes, 4 bits each, part 0 lowest (default 0xff53: Q6_K, Q4_K, f32)
// (cols: a multiple of 16 and of every part's block size; the host checks)
// Dispatch: pc.groups workgroups (qn_vk_grid) times T in z. Part i takes ceil(rows_i / ROWS) consecutive
//           workgroups (ROWS = QN_QROWS for block parts, QN_FROWS for f32), parts in order.
// Layout (route_mixed.comp's, without its routing tail): the workgroup's nr rows go to its P teams (full
// subgroups); with nr < P each row is split over np = P / nr teams on interleaved unit ranges, and invocation r < nr
// adds row r's np partials in a fixed order (y is the same bit for bit in every run). Each lane issues its first
// batch of weight loads before x is staged (x · (nw + w_add): plain vec4 order for f32 parts, quant.glsl's slots
// with the 16-float run sums for block parts); the sum of squares is taken in the same pass, qn_nr at the store.
// (Its int8-x twin, mv_parts_i8, lost its H100 A/Bs: with the int8 dot on, one qmatvec_i8 norm dispatch per part is
// the default instead.)
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
layout(constant_id = 6) const uint QN_TYPES = 0xff53;
#include "pc.h"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_mv_parts pc; };
layout(binding = 0, std430) readonly buffer WA4 { uvec4 wa4[]; };
layout(binding = 0, std430) readonly buffer WA1 { uint wa1[]; };
layout(binding = 5, std430) readonly buffer WB4 { uvec4 wb4[]; };
layout(binding = 5, std430) readonly buffer WB1 { uint wb1[]; };
layout(binding = 6, std430) readonly buffer WC4 { uvec4 wc4[]; };
layout(binding = 6, std430) readonly buffer WC1 { uint wc1[]; };
layout(binding = 7, std430) readonly buffer WD4 { uvec4 wd4[]; };
layout(binding = 7, std430) readonly buffer WD1 { uint wd1[]; };
layout(binding = 1, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 2, std430) writeonly buffer Y { float y[]; };
layout(binding = 3, std430) readonly buffer NW4 { vec4 nw4[]; };
layout(binding = 4, std430) writeonly buffer XN4 { vec4 xn4[]; };
#include "quant.glsl"

const uint QN_MP_RMAX = QN_FROWS > QN_QROWS ? QN_FROWS : QN_QROWS;
const uint QN_MP_TMAX = QN_WG / 4u + 1u; // teams: full subgroups of >= 4 invocations
shared vec4 qn_xs[QN_XSH + 1u];
shared float qn_xsum[QN_XSH / 4u + 1u];
shared float qn_part[QN_MP_TMAX > QN_MP_RMAX ? QN_MP_TMAX : QN_MP_RMAX]; // work item i's partial: [range][row]
float qn_nr, qn_mp_ss;

// x · (nw + w_add), vec4 i of the token; adds x^2 to this invocation's share of the sum of squares
vec4 qn_mp_x(uint xb4, uint i)
{
    vec4 a = x4[xb4 + i];
    qn_mp_ss += dot(a, a);
    return a * (nw4[i] + pc.w_add);
}

// Stage x of the token (the block slots when q, else f32 order) with the sum of squares in the same pass, then
// qn_nr in subgroup order (the same bits in every workgroup: both layouts visit the same runs of 16 per invocation);
// workgroup 0 writes xn when asked. Every invocation (one barrier).
void qn_mp_stage(bool q, uint xb4)
{
    uint lid = gl_LocalInvocationIndex;
    qn_mp_ss = 0.0;
#define QN_MP_XT(i) qn_mp_x(xb4, i)
    if (q) {
        QN_QX_STAGE(qn_xs, qn_xsum, QN_MP_XT, lid, pc.cols / 16u, QN_WG)
    } else {
        for (uint r = lid; r < pc.cols / 16u; r += QN_WG)
            [[unroll]] for (uint k = 0u; k < 4u; k++) qn_xs[4u * r + k] = QN_MP_XT(4u * r + k);
    }
    float v = subgroupAdd(qn_mp_ss);
    if (subgroupElect()) qn_red[gl_SubgroupID] = v;
    barrier();
    uint nsub = (QN_WG + gl_SubgroupSize - 1u) / gl_SubgroupSize; // not gl_NumSubgroups (see reduce.glsl)
    float t = 0.0;
    for (uint i = 0u; i < nsub; i++) t += qn_red[i];
    qn_nr = inversesqrt(t / float(pc.cols) + pc.eps);
    if ((pc.flags & QN_MATVEC_WRITE_XN) == 0u || qn_group_id() != 0u) return;
    for (uint i = lid; i < pc.cols / 4u; i += QN_WG) xn4[xb4 + i] = x4[xb4 + i] * qn_nr * (nw4[i] + pc.w_add);
}

// A team's work items i = team, team + P, ... < nr * np: row i % nr of the workgroup, range i / nr of np.
// f32 part over binding WB (uvec4 view): rows r0 .. r0 + nr of the part.
#define QN_MP_F32(NAME, WB)                                                                       \
void NAME(uint r0, uint nr, uint team, uint P, uint lane, uint lanes, uint xb4)                   \
{                                                                                                 \
    uint np = max(1u, P / nr), nit = nr * np, nch = pc.cols / 4u;                                 \
    uvec4 wv[QN_FUNROLL];                                                                         \
    bool pre = team < nit && (team / nr) * lanes + lane < nch;                                    \
    if (pre) {                                                                                    \
        uint rb = (r0 + team % nr) * nch, c = (team / nr) * lanes + lane, step = np * lanes;      \
        [[unroll]] for (uint u = 0u; u < QN_FUNROLL; u++)                                         \
            wv[u] = WB[rb + (c + u * step < nch ? c + u * step : c)];                             \
    }                                                                                             \
    qn_mp_stage(false, xb4);                                                                      \
    for (uint i = team; i < nit; i += P) {                                                        \
        uint rb = (r0 + i % nr) * nch, c = (i / nr) * lanes + lane, step = np * lanes;            \
        float acc = 0.0;                                                                          \
        for (; c < nch; c += QN_FUNROLL * step) {                                                 \
            if (!pre) [[unroll]] for (uint u = 0u; u < QN_FUNROLL; u++)                           \
                wv[u] = WB[rb + (c + u * step < nch ? c + u * step : c)];                         \
            pre = false;                                                                          \
            [[unroll]] for (uint u = 0u; u < QN_FUNROLL; u++)                                     \
                if (c + u * step < nch) acc += dot(uintBitsToFloat(wv[u]), qn_xs[c + u * step]);  \
        }                                                                                         \
        pre = false;                                                                              \
        acc = subgroupAdd(acc);                                                                   \
        if (subgroupElect()) qn_part[i] = acc;                                                    \
    }                                                                                             \
}

// acc += unit k (weights RAW) times the x runs at elements ea, eb of the token (quant.glsl's DOT)
#define QN_MP_QDOT(acc, RAW, DOT, ea, eb, k)                                                      \
    {                                                                                             \
        vec4 xa_[4], xb_[4];                                                                      \
        float sa_, sb_;                                                                           \
        QN_QX_RUN_S(qn_xs, qn_xsum, (ea) / 4u, xa_, sa_);                                         \
        QN_QX_RUN_S(qn_xs, qn_xsum, (eb) / 4u, xb_, sb_);                                         \
        acc += DOT(RAW, k, xa_, xb_, sa_, sb_);                                                   \
    }

// Block part of format F (quant.glsl's qn_F_u, QN_F_LOAD, qn_F_dot, qn_F_xrun; QK elements and QBB bytes per
// block) over bindings (P4, P1): rows r0 .. r0 + nr of the part, units of 32 weights.
#define QN_MP_Q(NAME, P4, P1, U, LOAD, DOT, XRUN, QK, QBB)                                        \
void NAME(uint r0, uint nr, uint team, uint P, uint lane, uint lanes, uint xb4)                   \
{                                                                                                 \
    const uint upb = (QK) / 32u;                                                                  \
    uint np = max(1u, P / nr), nit = nr * np, nb = pc.cols / (QK), nu = nb * upb;                 \
    U raw[QN_QUNROLL];                                                                            \
    bool pre = team < nit && (team / nr) * lanes + lane < nu;                                     \
    if (pre) {                                                                                    \
        uint rb = (r0 + team % nr) * nb * (QBB), v = (team / nr) * lanes + lane, step = np * lanes; \
        [[unroll]] for (uint u = 0u; u < QN_QUNROLL; u++) {                                       \
            uint vv = v + u * step < nu ? v + u * step : v;                                       \
            raw[u] = LOAD(P4, P1, rb + (vv / upb) * (QBB), vv % upb);                             \
        }                                                                                         \
    }                                                                                             \
    qn_mp_stage(true, xb4);                                                                       \
    for (uint i = team; i < nit; i += P) {                                                        \
        uint rb = (r0 + i % nr) * nb * (QBB), v = (i / nr) * lanes + lane, step = np * lanes;     \
        float acc = 0.0;                                                                          \
        for (; v < nu; v += QN_QUNROLL * step) {                                                  \
            if (!pre) [[unroll]] for (uint u = 0u; u < QN_QUNROLL; u++) {                         \
                uint vv = v + u * step < nu ? v + u * step : v;                                   \
                raw[u] = LOAD(P4, P1, rb + (vv / upb) * (QBB), vv % upb);                         \
            }                                                                                     \
            pre = false;                                                                          \
            [[unroll]] for (uint u = 0u; u < QN_QUNROLL; u++) {                                   \
                uint vu = v + u * step;                                                           \
                if (vu < nu) {                                                                    \
                    uint b = vu / upb, k = vu % upb, e0, e1;                                      \
                    XRUN(k, e0, e1);                                                              \
                    QN_MP_QDOT(acc, raw[u], DOT, b * (QK) + e0, b * (QK) + e1, k)                  \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        pre = false;                                                                              \
        acc = subgroupAdd(acc);                                                                   \
        if (subgroupElect()) qn_part[i] = acc;                                                    \
    }                                                                                             \
}

// every format over one binding pair; qn_mp_run_<B> picks by the part's type code TY (a spec constant)
#define QN_MP_BINDING(B, TY, P4, P1)                                                                           \
QN_MP_F32(qn_mp_f32_##B, P4)                                                                                 \
QN_MP_Q(qn_mp_q8_0_##B, P4, P1, qn_q8_0_u, QN_Q8_0_LOAD, qn_q8_0_dot, qn_q8_0_xrun, 32u, 34u)                  \
QN_MP_Q(qn_mp_q4_0_##B, P4, P1, qn_q4_0_u, QN_Q4_0_LOAD, qn_q4_0_dot, qn_q4_0_xrun, 32u, 18u)                  \
QN_MP_Q(qn_mp_q4_k_##B, P4, P1, qn_q4_k_u, QN_Q4_K_LOAD, qn_q4_k_dot, qn_q4_k_xrun, 256u, 144u)                \
QN_MP_Q(qn_mp_q5_k_##B, P4, P1, qn_q5_k_u, QN_Q5_K_LOAD, qn_q5_k_dot, qn_q5_k_xrun, 256u, 176u)                \
QN_MP_Q(qn_mp_q6_k_##B, P4, P1, qn_q6_k_u, QN_Q6_K_LOAD, qn_q6_k_dot, qn_q6_k_xrun, 256u, 210u)                \
void qn_mp_run_##B(uint r0, uint nr, uint team, uint P, uint lane, uint lanes, uint xb4)            \
{                                                                                                            \
    if (TY == 0u) qn_mp_f32_##B(r0, nr, team, P, lane, lanes, xb4);                                          \
    else if (TY == 1u) qn_mp_q8_0_##B(r0, nr, team, P, lane, lanes, xb4);                                    \
    else if (TY == 2u) qn_mp_q4_0_##B(r0, nr, team, P, lane, lanes, xb4);                                    \
    else if (TY == 3u) qn_mp_q4_k_##B(r0, nr, team, P, lane, lanes, xb4);                                    \
    else if (TY == 4u) qn_mp_q5_k_##B(r0, nr, team, P, lane, lanes, xb4);                                    \
    else if (TY == 5u) qn_mp_q6_k_##B(r0, nr, team, P, lane, lanes, xb4);                                    \
}
const uint QN_T0 = QN_TYPES & 15u, QN_T1 = (QN_TYPES >> 4u) & 15u, QN_T2 = (QN_TYPES >> 8u) & 15u;
const uint QN_T3 = (QN_TYPES >> 12u) & 15u;
QN_MP_BINDING(0, QN_T0, wa4, wa1)
QN_MP_BINDING(1, QN_T1, wb4, wb1)
QN_MP_BINDING(2, QN_T2, wc4, wc1)
QN_MP_BINDING(3, QN_T3, wd4, wd1)

uint qn_mp_row0(uint i) { return i == 0u ? pc.row0_0 : i == 1u ? pc.row0_1 : i == 2u ? pc.row0_2 : pc.row0_3; }
uint qn_mp_rows(uint i) { return i == 0u ? pc.rows_0 : i == 1u ? pc.rows_1 : i == 2u ? pc.rows_2 : pc.rows_3; }

void main()
{
    uint g = qn_group_id(), t = gl_WorkGroupID.z, xb4 = t * (pc.cols / 4u);
    if (g >= pc.groups) return; // grid padding (uniform)
    uint part = 0u, g0 = 0u, rpw = 1u, ty = 0u; // this workgroup's part and rows (uniform)
    for (; part < pc.nparts; part++) {
        ty = (QN_TYPES >> (4u * part)) & 15u;
        rpw = ty != 0u ? QN_QROWS : QN_FROWS;
        uint n = (qn_mp_rows(part) + rpw - 1u) / rpw;
        if (g < g0 + n) break;
        g0 += n;
    }
    if (part >= pc.nparts) return; // a count that does not match the parts (the host checks)
    uint r0 = (g - g0) * rpw, nr = min(rpw, qn_mp_rows(part) - r0);
    uint P = max(1u, QN_WG / gl_SubgroupSize), team = gl_SubgroupID < P ? gl_SubgroupID : ~0u;
    uint lane = gl_SubgroupInvocationID, lanes = gl_SubgroupSize;
    if (part == 0u) qn_mp_run_0(r0, nr, team, P, lane, lanes, xb4);
    else if (part == 1u) qn_mp_run_1(r0, nr, team, P, lane, lanes, xb4);
    else if (part == 2u) qn_mp_run_2(r0, nr, team, P, lane, lanes, xb4);
    else qn_mp_run_3(r0, nr, team, P, lane, lanes, xb4);
    barrier(); // the teams' partials
    uint r = gl_LocalInvocationIndex, np = max(1u, P / nr);
    if (r >= nr) return;
    float s = 0.0;
    for (uint p = 0u; p < np; p++) s += qn_part[p * nr + r];
    y[t * pc.rows + qn_mp_row0(part) + r0 + r] = s * qn_nr;
}
