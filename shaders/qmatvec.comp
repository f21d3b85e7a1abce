#version 450
// qmatvec.comp — y[rows] = W[rows, cols] · x[cols] with W in a ggml block format, f32 math and accumulation
// (decode projections of GGUF models: Q4_K_M / Q5_K_M / Q6_K / Q8_0 files).
//
// Variants (defines): QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K (block format, decoding in
//   common/quant.glsl); QN_SUBGROUP (subgroupAdd reduction, else a shared-memory tree); QN_NORM (RMSNorm
//   prologue, common/mv_norm.glsl: y = W · rmsnorm(x); push qn_pc_mv_norm, bindings 3 and 4 below); QN_ROUTE
//   (with QN_NORM: a part of the W_moe product with the MoE router as epilogue, common/mv_route.glsl; push
//   qn_pc_mv_route, bindings 5-9 there).
// Bindings: 0 W   raw blocks, row-major: row r is blocks [r * cols / QK, (r + 1) * cols / QK) (QK = 32 for
//                 Q8_0 / Q4_0, 256 for the K-quants); the binding offset a multiple of 16 bytes and its
//                 range rounded up to a multiple of 4 bytes
//           1 x   f32 [T, cols]
//           2 y   f32 [T, rows]   (read too when flags & QN_MATVEC_ACCUMULATE)
//           3 w   f32 [cols]     QN_NORM only: the norm weight
//           4 xn  f32 [T, cols]  QN_NORM only: normed x, written by workgroup 0 when flags & QN_MATVEC_WRITE_XN
// Push:     qn_pc_matvec { rows, cols, flags }; cols must be a multiple of QK (the caller checks; a partial
//           last block would be ignored)
// Spec:     0 QN_WG     workgroup size (default 256)
//           1 QN_ROWS   rows per workgroup (default 16)
//           2 QN_UNROLL units (32 elements) each invocation loads per row before using them (default 2)
//           3 QN_SGROWS rows one team (subgroup) computes together, sharing each x run (default 2)
//           4 QN_XSH    x staging in shared memory: capacity in vec4 (0 = read x through L1; default 1024)
//           5 QN_PRE    1: the first batch of weights is loaded before the x staging (mv_sched.glsl; default 1);
//                       + 4: the norm's sum of squares taken while x is staged (QN_NORM; mv_sched.glsl)
// Dispatch: ceil(rows / QN_ROWS) groups spread over x/y (qn_vk_grid), times T in z (one token per z).
// Layout: as matvec.comp (mv_sched.glsl), with "units" of 32 weights (quant.glsl) in place of 16-byte
// chunks: lanes take consecutive units, so a team reads consecutive 16-byte pieces of each row of its set
// (K-quants: one aligned uvec4 of quants per unit + the block header, a broadcast among the block's 8
// lanes). Per unit a lane reads 2 runs of 16 floats of x and uses them for all QN_SGROWS rows of its set.
// Staged x (QN_XSH >= cols / 4): the workgroup copies x of its token into shared memory once, in the
// bank-conflict-free slot order of quant.glsl (qn_qxs_slot), together with the sum of every 16-float run
// (qn_qxsum: the quant offsets and K-quant mins are applied through these sums), behind one barrier.
// Unstaged: x runs are read from the buffer through L1 and summed per unit.
// Every read of x goes through QN_QMV_X4(xb4, i) (vec4 i of the token whose x starts at vec4 xb4), the
// place for a prologue (e.g. a folded RMSNorm) that transforms x on the way in.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_ROWS = 16;
layout(constant_id = 2) const uint QN_UNROLL = 2;
layout(constant_id = 3) const uint QN_SGROWS = 2;
layout(constant_id = 4) const uint QN_XSH = 1024;
#include "pc.h"
#include "reduce.glsl"
#include "grid.glsl"

#if defined(QN_ROUTE)
layout(push_constant) uniform PC { qn_pc_mv_route pc; };
#define QN_MV_EPILOGUE
#define QN_Y_QUAL coherent
#define QN_MV_YB(z) ((z) * pc.m_rows + pc.row0)
#elif defined(QN_NORM)
layout(push_constant) uniform PC { qn_pc_mv_norm pc; };
#else
layout(push_constant) uniform PC { qn_pc_matvec pc; };
#endif
layout(binding = 0, std430) readonly buffer W4 { uvec4 w4[]; };
layout(binding = 0, std430) readonly buffer W1 { uint w1[]; };
#include "quant.glsl"

// staging of x into qn_xs (mv_sched.glsl calls it for a staged workgroup, then barrier())
void qn_qmv_stage(uint xb);
#define QN_MV_STAGE(xb) qn_qmv_stage(xb)
#include "mv_sched.glsl"

#ifdef QN_NORM
#include "mv_norm.glsl"
#define QN_QMV_X4(xb4, i) qn_norm4(xb4, i) // x times the norm weight; the scale is applied at the store
#else
#define QN_QMV_X4(xb4, i) x4[(xb4) + (i)]
#endif

shared float qn_qxsum[QN_XSH / 4u + 1u]; // sum of each 16-float run of the staged x

void qn_qmv_stage(uint xb)
{
    uint xb4 = xb / 4u;
#define QN_QMV_XT(i) QN_QMV_X4(xb4, i)
    QN_QX_STAGE(qn_xs, qn_qxsum, QN_QMV_XT, gl_LocalInvocationIndex, pc.cols / 16u, QN_WG)
}

// x run of 16 floats at vec4 s (a multiple of 4) and its sum, from the staged copy or the buffer
void qn_qmv_xrun_s(uint s, uint xb4, out vec4 x[4], out float sum) QN_QX_RUN_S(qn_xs, qn_qxsum, s, x, sum)
void qn_qmv_xrun_g(uint s, uint xb4, out vec4 x[4], out float sum) QN_QX_RUN_G(QN_QMV_XT, s, x, sum)

// acc[j] += unit v of row j, RAW(j) its loaded data, x runs read through XRUN
#define QN_QMV_UNIT(XRUN, RAW, v)                                                                 \
    {                                                                                             \
        uint b_ = (v) / QN_QUPB, k_ = (v) % QN_QUPB, e0_, e1_;                                    \
        qn_q_xrun(k_, e0_, e1_);                                                                  \
        vec4 xa_[4], xb_[4];                                                                      \
        float sa_, sb_;                                                                           \
        XRUN((b_ * QN_QK + e0_) / 4u, xb4, xa_, sa_);                                             \
        XRUN((b_ * QN_QK + e1_) / 4u, xb4, xb_, sb_);                                             \
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) qn_acc[j] += qn_q_dot(RAW, k_, xa_, xb_, sa_, sb_); \
    }

// One batch: QN_UNROLL units of each row of the set from unit v on (units past the row end load unit v
// instead; they are skipped).
qn_qu qn_pre[QN_UNROLL * QN_SGROWS]; // the prefetched first batch (mv_sched.glsl's qn_mv_prefetch)
#define QN_QMV_LOAD(RAW, rowb, v, step, nu)                                                       \
    [[unroll]] for (uint u_ = 0u; u_ < QN_UNROLL; u_++) {                                         \
        uint vv_ = (v) + u_ * (step) < (nu) ? (v) + u_ * (step) : (v);                            \
        [[unroll]] for (uint j_ = 0u; j_ < QN_SGROWS; j_++)                                       \
            RAW[u_ * QN_SGROWS + j_] = QN_Q_LOAD(w4, w1, (rowb[j_] + vv_ / QN_QUPB) * QN_QBB, vv_ % QN_QUPB); \
    }
#define QN_QMV_ROWS(rowb, rbase)                                                                  \
    [[unroll]] for (uint j_ = 0u; j_ < QN_SGROWS; j_++) rowb[j_] = min((rbase) + j_, pc.rows - 1u) * (pc.cols / QN_QK);
void qn_mv_prefetch(uint rbase, uint lane, uint lanes, uint part, uint nparts)
{
    uint rowb[QN_SGROWS], v = part * lanes + lane, nu = pc.cols / QN_QK * QN_QUPB;
    QN_QMV_ROWS(rowb, rbase)
    if (v >= nu) return;
    QN_QMV_LOAD(qn_pre, rowb, v, nparts * lanes, nu)
    qn_pre_ok = true;
}

// The unit loop, once per x source: each iteration first loads a batch (the first one may have been
// prefetched), then uses it.
#define QN_QMV_UNITS(NAME, XRUN)                                                                  \
void NAME(uint rowb[QN_SGROWS], uint v, uint step, uint nu, uint xb4)                             \
{                                                                                                 \
    for (; v < nu; v += QN_UNROLL * step) {                                                       \
        qn_qu raw[QN_UNROLL * QN_SGROWS];                                                         \
        if (qn_pre_ok) [[unroll]] for (uint i_ = 0u; i_ < QN_UNROLL * QN_SGROWS; i_++) raw[i_] = qn_pre[i_]; \
        else { QN_QMV_LOAD(raw, rowb, v, step, nu) }                                            \
        qn_pre_ok = false;                                                                        \
        [[unroll]] for (uint u = 0u; u < QN_UNROLL; u++)                                          \
            if (v + u * step < nu) QN_QMV_UNIT(XRUN, raw[u * QN_SGROWS + j], v + u * step)        \
    }                                                                                             \
}
QN_QMV_UNITS(qn_qmv_units_s, qn_qmv_xrun_s)
QN_QMV_UNITS(qn_qmv_units_g, qn_qmv_xrun_g)

void qn_mv_partial(uint rbase, uint lane, uint lanes, uint part, uint nparts, uint xb)
{
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) qn_acc[j] = 0.0;
    uint rowb[QN_SGROWS];
    QN_QMV_ROWS(rowb, rbase)
    uint v = part * lanes + lane, step = nparts * lanes, nu = pc.cols / QN_QK * QN_QUPB;
    if (qn_xsh) qn_qmv_units_s(rowb, v, step, nu, 0u);
    else qn_qmv_units_g(rowb, v, step, nu, xb / 4u);
}

#ifdef QN_ROUTE
#include "mv_route.glsl"
#endif
