#version 450
// qmatvec.comp — y[rows] = W[rows, cols] · x[cols] with W in a ggml block format, f32 math and accumulation
// (decode projections of GGUF models: Q4_K_M / Q5_K_M / Q6_K / Q8_0 files).
//
// Variants (defines): QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K (block format, decoding in
//   common/quant.glsl); QN_SUBGROUP (subgroupAdd reduction, else a shared-memory tree).
// Bindings: 0 W   raw blocks, row-major: row r is blocks [r * cols / QK, (r + 1) * cols / QK) (QK = 32 for
//                 Q8_0 / Q4_0, 256 for the K-quants); the binding offset a multiple of 16 bytes and its
//                 range rounded up to a multiple of 4 bytes
//           1 x   f32 [T, cols]
//           2 y   f32 [T, rows]   (read too when flags & QN_MATVEC_ACCUMULATE)
// Push:     qn_pc_matvec { rows, cols, flags }; cols must be a multiple of QK (the caller checks; a partial
//           last block would be ignored)
// Spec:     0 QN_WG     workgroup size (default 128)
//           1 QN_ROWS   rows per workgroup (default 2)
//           2 QN_UNROLL units (32 elements) each invocation loads per row before using them (default 2)
//           3 QN_SGROWS rows one team (subgroup) computes together, sharing each x run (default 1)
//           4 QN_XSH    x staging in shared memory: capacity in vec4 (0 = read x through L1; default 0)
// Dispatch: ceil(rows / QN_ROWS) groups spread over x/y (qn_vk_grid), times T in z (one token per z).
// Layout: as matvec.comp (mv_sched.glsl), with "units" of 32 weights (quant.glsl) in place of 16-byte
// chunks: lanes take consecutive units, so a team reads consecutive bytes of the row; per unit a lane
// reads its 16 (Q4_0) to 32 (Q8_0) bytes of quants plus the block's scales, and 2 x runs of 16 floats.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_ROWS = 2;
layout(constant_id = 2) const uint QN_UNROLL = 2;
layout(constant_id = 3) const uint QN_SGROWS = 1;
layout(constant_id = 4) const uint QN_XSH = 0;
#include "pc.h"
#include "reduce.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_matvec pc; };
layout(binding = 0, std430) readonly buffer W4 { uvec4 w4[]; };
layout(binding = 0, std430) readonly buffer W1 { uint w1[]; };
#define QN_QW(i) w1[i]
#define QN_QW4(i) w4[i]
#include "quant.glsl"
#include "mv_sched.glsl"

#define QN_XS(i) qn_xs[i]
#define QN_XG(i) x4[xb4 + (i)]

// acc[j] += unit v of row j (block row start rowb[j]), x runs read through SRC
#define QN_QMV_UNIT(SRC, RAW, v)                                                                  \
    {                                                                                             \
        uint b_ = (v) / QN_QUPB, k_ = (v) % QN_QUPB, e0_, e1_;                                    \
        qn_q_xrun(k_, e0_, e1_);                                                                  \
        uint a_ = (b_ * QN_QK + e0_) / 4u, c_ = (b_ * QN_QK + e1_) / 4u;                          \
        vec4 xa_[4] = vec4[4](SRC(a_), SRC(a_ + 1u), SRC(a_ + 2u), SRC(a_ + 3u));                 \
        vec4 xb_[4] = vec4[4](SRC(c_), SRC(c_ + 1u), SRC(c_ + 2u), SRC(c_ + 3u));                 \
        float sa_ = dot(xa_[0] + xa_[1] + xa_[2] + xa_[3], vec4(1.0));                           \
        float sb_ = dot(xb_[0] + xb_[1] + xb_[2] + xb_[3], vec4(1.0));                           \
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) qn_acc[j] += qn_q_dot(RAW, k_, xa_, xb_, sa_, sb_);  \
    }

// The unit loop, once per x source: each iteration first loads QN_UNROLL units of each row of the set.
#define QN_QMV_UNITS(NAME, SRC)                                                                   \
void NAME(uint rowb[QN_SGROWS], uint v, uint step, uint nu, uint xb4)                             \
{                                                                                                 \
    for (; v + (QN_UNROLL - 1u) * step < nu; v += QN_UNROLL * step) {                             \
        qn_qu raw[QN_UNROLL * QN_SGROWS];                                                         \
        [[unroll]] for (uint u = 0u; u < QN_UNROLL; u++)                                                     \
            [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {                                               \
                uint vv = v + u * step;                                                           \
                raw[u * QN_SGROWS + j] = qn_q_load((rowb[j] + vv / QN_QUPB) * QN_QBB, vv % QN_QUPB); \
            }                                                                                     \
        [[unroll]] for (uint u = 0u; u < QN_UNROLL; u++) QN_QMV_UNIT(SRC, raw[u * QN_SGROWS + j], v + u * step) \
    }                                                                                             \
    for (; v < nu; v += step)                                                                     \
        QN_QMV_UNIT(SRC, qn_q_load((rowb[j] + v / QN_QUPB) * QN_QBB, v % QN_QUPB), v)              \
}
QN_QMV_UNITS(qn_qmv_units_s, QN_XS)
QN_QMV_UNITS(qn_qmv_units_g, QN_XG)

void qn_mv_partial(uint rbase, uint lane, uint lanes, uint part, uint nparts, uint xb)
{
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) qn_acc[j] = 0.0;
    uint nb = pc.cols / QN_QK, rowb[QN_SGROWS];
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) rowb[j] = min(rbase + j, pc.rows - 1u) * nb;
    uint v = part * lanes + lane, step = nparts * lanes, nu = nb * QN_QUPB;
    if (qn_xsh) qn_qmv_units_s(rowb, v, step, nu, 0u);
    else qn_qmv_units_g(rowb, v, step, nu, xb / 4u);
}
