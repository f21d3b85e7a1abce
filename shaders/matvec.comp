#version 450
// matvec.comp — y[rows] = W[rows, cols] · x[cols], f32 accumulation (the decode projections, lm_head).
//
// Variants (defines): QN_W_BF16 | QN_W_F16 | QN_W_F32 (weight dtype); QN_SUBGROUP (subgroupAdd reduction,
//   else a shared-memory tree); QN_NORM (RMSNorm prologue, common/mv_norm.glsl: y = W · norm(x), norm
//   computed per workgroup; push qn_pc_mv_norm, bindings 3 and 4 below); QN_ROUTE (with QN_NORM: the MoE
//   router as epilogue, y = m = W_moe · norm(x); the last workgroup of a token to finish routes it:
//   common/mv_route.glsl; push qn_pc_mv_route, bindings 5-9 below).
// Bindings: 0 W   row-major [rows, cols] of the weight dtype (16-bit values packed two per uint)
//           1 x   f32 [T, cols]
//           2 y   f32 [T, rows]   (read too when flags & QN_MATVEC_ACCUMULATE)
//           3 w   f32 [cols]     QN_NORM only: the norm weight
//           4 xn  f32 [T, cols]  QN_NORM only: normed x, written by workgroup 0 when flags & QN_MATVEC_WRITE_XN
//           5 ids int32 [T, K], 6 w f32 [T, K], 7 sg f32 [T], 8 act f32 [T, K + 1, act_stride]: QN_ROUTE only
//           9 cnt uint32 [T]  QN_ROUTE only: finished workgroups per token, zero before the dispatch (the
//                             last workgroup sets it back to zero)
// Push:     qn_pc_matvec { rows, cols, flags }; QN_NORM: qn_pc_mv_norm { rows, cols, flags, eps, w_add };
//           QN_ROUTE: qn_pc_mv_route (qn_pc_mv_norm's members, then E, K, Is, act_stride, rflags)
// Spec:     0 QN_WG     workgroup size (default 128)
//           1 QN_ROWS   rows per workgroup (default 2)
//           2 QN_UNROLL 16-byte W chunks each invocation loads per row before using them (default 4)
//           3 QN_SGROWS rows one team (subgroup) computes together, sharing each x chunk (default 1)
//           4 QN_XSH    x staging in shared memory: capacity in vec4 (0 = read x through L1; default 0)
//           5 QN_PRE    1: the first batch of weights is loaded before the x staging (mv_sched.glsl; default 1)
// Dispatch: ceil(rows / QN_ROWS) groups spread over x/y (qn_vk_grid), times T in z (one token per z;
//           small T only: each token re-reads W — prefill uses matmul).
// Layout: see mv_sched.glsl (rows -> sets -> subgroup teams; subgroupAdd only, or one barrier when a set
// is split over several subgroups). Within a team, lanes stride over the row in 16-byte chunks (8 bf16/f16
// or 4 f32 per uvec4 load, coalesced across lanes); each loop iteration first issues QN_UNROLL *
// QN_SGROWS independent uvec4 loads, then does the math, so that many loads are in flight per lane. Rows
// of the set past `rows` are clamped to the last row (loaded, never stored). When cols is not a multiple
// of the chunk width, a scalar path handles the row (any alignment). The last batch of a lane may be partial: its
// chunks past the row end re-load the batch's first chunk (cached) and are skipped.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_ROWS = 2;
layout(constant_id = 2) const uint QN_UNROLL = 4;
layout(constant_id = 3) const uint QN_SGROWS = 1;
layout(constant_id = 4) const uint QN_XSH = 0;
#include "pc.h"
#include "types.glsl"
#include "reduce.glsl"
#include "grid.glsl"

#if defined(QN_ROUTE)
layout(push_constant) uniform PC { qn_pc_mv_route pc; };
#define QN_MV_EPILOGUE       // mv_sched.glsl's main becomes qn_mv_main; main() below adds the router
#define QN_Y_QUAL coherent   // the routing workgroup reads the rows the others wrote
#define QN_MV_YB(z) ((z) * pc.m_rows + pc.row0) // this dispatch's rows of all of m
#elif defined(QN_NORM)
layout(push_constant) uniform PC { qn_pc_mv_norm pc; };
#else
layout(push_constant) uniform PC { qn_pc_matvec pc; };
#endif
layout(binding = 0, std430) readonly buffer W4 { uvec4 w4[]; };
layout(binding = 0, std430) readonly buffer W1 { uint w1[]; };
#include "mv_sched.glsl"
#ifdef QN_NORM
#include "mv_norm.glsl"
#endif

#if defined(QN_W_F32)
const uint CW = 4u; // elements per 16-byte chunk
float w_at(uint e) { return uintBitsToFloat(w1[e]); }
float qn_cdot(uvec4 w, vec4 xa, vec4 xb) { return dot(uintBitsToFloat(w), xa); }
#define QN_XLOAD(SRC, c, xa, xb) xa = SRC(c)
#else
const uint CW = 8u;
#if defined(QN_W_BF16)
float w_at(uint e) { return qn_bf16_at(w1[e >> 1], e); }
#define UNPACK8 qn_bf16x8
#else
float w_at(uint e) { return qn_f16_at(w1[e >> 1], e); }
#define UNPACK8 qn_f16x8
#endif
float qn_cdot(uvec4 w, vec4 xa, vec4 xb)
{
    vec4 a, b;
    UNPACK8(w, a, b);
    return dot(a, xa) + dot(b, xb);
}
#define QN_XLOAD(SRC, c, xa, xb) xa = SRC(2u * (c)); xb = SRC(2u * (c) + 1u)
#endif

// x vec4 i of the token, from shared memory or from the buffer (xb4 = first vec4 of the token)
#define QN_XS(i) qn_xs[i]
#ifdef QN_NORM
#define QN_XG(i) qn_norm4(xb4, i)
#define QN_X1(c) qn_norm1(xb, c)
#else
#define QN_XG(i) x4[xb4 + (i)]
#define QN_X1(c) x1[xb + (c)]
#endif

// One batch: QN_UNROLL chunks of each row of the set from chunk c on (chunks past the row end load chunk c
// instead; they are skipped), and its prefetch (mv_sched.glsl).
uvec4 qn_pre[QN_UNROLL * QN_SGROWS];
#define QN_MV_LOAD(WV, rowc, c, step, nch)                                                        \
    [[unroll]] for (uint u_ = 0u; u_ < QN_UNROLL; u_++) {                                         \
        uint cc_ = (c) + u_ * (step) < (nch) ? (c) + u_ * (step) : (c);                           \
        [[unroll]] for (uint j_ = 0u; j_ < QN_SGROWS; j_++) WV[u_ * QN_SGROWS + j_] = w4[rowc[j_] + cc_]; \
    }
void qn_mv_prefetch(uint rbase, uint lane, uint lanes, uint part, uint nparts)
{
    uint c = part * lanes + lane, step = nparts * lanes, nch = pc.cols / CW, rowc[QN_SGROWS];
    if (pc.cols % CW != 0u || c >= nch) return; // the scalar path, or no chunk for this lane
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) rowc[j] = min(rbase + j, pc.rows - 1u) * nch;
    QN_MV_LOAD(qn_pre, rowc, c, step, nch)
    qn_pre_ok = true;
}

// The chunked loop, once per x source (a compile-time choice inside the loop): each iteration first loads a
// batch (the first one may have been prefetched), then uses it.
#define QN_MV_CHUNKS(NAME, SRC)                                                                   \
void NAME(uint rowc[QN_SGROWS], uint c, uint step, uint nch, uint xb4)                            \
{                                                                                                 \
    for (; c < nch; c += QN_UNROLL * step) {                                                      \
        uvec4 wv[QN_UNROLL * QN_SGROWS];                                                          \
        if (qn_pre_ok) [[unroll]] for (uint i_ = 0u; i_ < QN_UNROLL * QN_SGROWS; i_++) wv[i_] = qn_pre[i_]; \
        else { QN_MV_LOAD(wv, rowc, c, step, nch) }                                             \
        qn_pre_ok = false;                                                                        \
        [[unroll]] for (uint u = 0u; u < QN_UNROLL; u++) {                                        \
            if (c + u * step >= nch) continue;                                                    \
            vec4 xa, xb = vec4(0.0);                                                              \
            QN_XLOAD(SRC, c + u * step, xa, xb);                                                  \
            [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) qn_acc[j] += qn_cdot(wv[u * QN_SGROWS + j], xa, xb); \
        }                                                                                         \
    }                                                                                             \
}
QN_MV_CHUNKS(qn_mv_chunks_s, QN_XS)
QN_MV_CHUNKS(qn_mv_chunks_g, QN_XG)

void qn_mv_partial(uint rbase, uint lane, uint lanes, uint part, uint nparts, uint xb)
{
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) qn_acc[j] = 0.0;
    uint c = part * lanes + lane, step = nparts * lanes;
    if (pc.cols % CW == 0u) {
        uint nch = pc.cols / CW, rowc[QN_SGROWS];
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) rowc[j] = min(rbase + j, pc.rows - 1u) * nch;
        if (qn_xsh) qn_mv_chunks_s(rowc, c, step, nch, 0u);
        else qn_mv_chunks_g(rowc, c, step, nch, xb / 4u);
    } else {
        for (; c < pc.cols; c += step) {
            float xv = QN_X1(c);
            [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) qn_acc[j] += w_at(min(rbase + j, pc.rows - 1u) * pc.cols + c) * xv;
        }
    }
}

#ifdef QN_ROUTE
#include "mv_route.glsl"
#endif
