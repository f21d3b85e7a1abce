#version 450
// qmatvec_i8.comp — decode matvec y[rows] = W[rows, cols] · x[cols] with W in a ggml block format and x quantized
// to int8 per 32-element block in the prologue, the dot products on packed 4x8-bit integer dot instructions
// (common/quant_i8.glsl; env QNEXT_IDOT=1, forward_pipes.c). The twin of qmatvec.comp (same bindings, push block,
// spec constants 0-5, dispatch and work split: common/mv_sched.glsl), for an in-model A/B.
//
// Variants (defines): QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K; QN_SUBGROUP; QN_NORM (the RMSNorm prologue of
// common/mv_norm.glsl: x * (w + w_add) is what gets quantized, the token's rsqrt scale is applied at the store).
// Bindings: 0 W, 1 x f32 [T, cols], 2 y f32 [T, rows], QN_NORM: 3 w, 4 xn   (as qmatvec.comp)
// Push:     qn_pc_matvec (QN_NORM: qn_pc_mv_norm)
// Spec:     0 QN_WG, 1 QN_ROWS, 2 QN_UNROLL, 3 QN_SGROWS as qmatvec.comp; 4 QN_XSH: x capacity in vec4s, REQUIRED
//           >= cols / 4 (x is always staged: a call with cols > 4 * QN_XSH writes NaN, the caller must not make
//           one); 5 QN_PRE: 1 (default) = the first batch of weights loaded before the staging, 0 = after; + 4: the
//           norm's sum of squares taken while staging (QN_NORM); + 8 (QN_WG a multiple of 4): x quantized by 4
//           invocations per block (quant_i8.glsl's QN_I8_STAGE4_SW: the same bytes, a quarter of the serial work)
// Prologue: each invocation quantizes whole 32-element blocks of x (strided over the workgroup): max |x| of the
// block, q = roundEven(x * (127 / max |x|)) (0 for an all-zero block), dx = max |x| / 127, into shared memory as
// 16-byte runs (quant_i8.glsl's slots) with vec2(dx, dx * sum q) per run, behind the staging barrier. Each unit
// (32 weights, quant.glsl) then costs 8 OpSDot plus a few scale products instead of 32 byte conversions and FMAs.
// Accuracy: y equals W · dq(x) (dq: the int8 round trip, relative error per element <= 1 / 254 of its block's
// max |x|) up to f32 rounding; test_qmatvec_i8.c checks both against the C reference.
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

#if defined(QN_NORM)
layout(push_constant) uniform PC { qn_pc_mv_norm pc; };
#else
layout(push_constant) uniform PC { qn_pc_matvec pc; };
#endif
layout(binding = 0, std430) readonly buffer W4 { uvec4 w4[]; };
layout(binding = 0, std430) readonly buffer W1 { uint w1[]; };
#include "quant.glsl"
#include "quant_i8.glsl"

void qn_i8_stage(uint xb);
#define QN_MV_STAGE(xb) qn_i8_stage(xb)
#include "mv_sched.glsl"
#ifdef QN_NORM
#include "mv_norm.glsl"
#endif

const uint QN_I8_RUNS = QN_XSH / 4u; // 16-element runs the stage holds
shared uvec4 qn_i8x[QN_I8_RUNS + 1u]; // run slots: 16 signed bytes
shared vec2 qn_i8s[QN_I8_RUNS + 1u];  // (dx, dx * sum q) of each run slot
shared float qn_i8pm[QN_WG];          // QN_PRE bit 8: the quads' partial max |x| and run-half sums
shared int qn_i8ps[QN_WG];

// quantize the token's x (from element xb) into the run slots (mv_sched.glsl calls it, then barrier())
void qn_i8_stage(uint xb)
{
    uint xb4 = xb / 4u;
#define QN_I8_XIN(i) QN_MV_XIN(xb4, i)
    if ((QN_PRE & 8u) != 0u && QN_WG % 4u == 0u) {
        QN_I8_STAGE4_SW(qn_i8x, qn_i8s, QN_I8_XIN, gl_LocalInvocationIndex, pc.cols / 32u, QN_WG, QN_I8_SW, qn_i8pm, qn_i8ps)
    } else {
        QN_I8_STAGE(qn_i8x, qn_i8s, QN_I8_XIN, gl_LocalInvocationIndex, pc.cols / 32u, QN_WG)
    }
}

// acc[j] += unit v of row j, RAW(j) its loaded data
#define QN_I8_UNIT(RAW, v)                                                                        \
    {                                                                                             \
        uint b_ = (v) / QN_QUPB, k_ = (v) % QN_QUPB, e0_, e1_;                                    \
        qn_q_xrun(k_, e0_, e1_);                                                                  \
        uint ra_ = qn_i8_slot((b_ * QN_QK + e0_) / 16u), rb_ = qn_i8_slot((b_ * QN_QK + e1_) / 16u); \
        uvec4 xa_ = qn_i8x[ra_], xq_ = qn_i8x[rb_];                                               \
        vec2 sa_ = qn_i8s[ra_], sb_ = qn_i8s[rb_];                                                \
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) qn_acc[j] += qn_i8_dot(RAW, k_, xa_, xq_, sa_, sb_); \
    }

// One batch: QN_UNROLL units of each row of the set from unit v on (units past the row end load unit v instead;
// they are skipped). The prefetched first batch (mv_sched.glsl's qn_mv_prefetch) waits in qn_pre.
qn_qu qn_pre[QN_UNROLL * QN_SGROWS];
#define QN_I8_LOAD(RAW, rowb, v, step, nu)                                                        \
    [[unroll]] for (uint u_ = 0u; u_ < QN_UNROLL; u_++) {                                         \
        uint vv_ = (v) + u_ * (step) < (nu) ? (v) + u_ * (step) : (v);                            \
        [[unroll]] for (uint j_ = 0u; j_ < QN_SGROWS; j_++)                                       \
            RAW[u_ * QN_SGROWS + j_] = QN_Q_LOAD(w4, w1, (rowb[j_] + vv_ / QN_QUPB) * QN_QBB, vv_ % QN_QUPB); \
    }
#define QN_I8_ROWS(rowb, rbase)                                                                   \
    [[unroll]] for (uint j_ = 0u; j_ < QN_SGROWS; j_++) rowb[j_] = min((rbase) + j_, pc.rows - 1u) * (pc.cols / QN_QK);

void qn_mv_prefetch(uint rbase, uint lane, uint lanes, uint part, uint nparts)
{
    uint rowb[QN_SGROWS], v = part * lanes + lane, nu = pc.cols / QN_QK * QN_QUPB;
    QN_I8_ROWS(rowb, rbase)
    if (v >= nu) return;
    QN_I8_LOAD(qn_pre, rowb, v, nparts * lanes, nu)
    qn_pre_ok = true;
}

void qn_mv_partial(uint rbase, uint lane, uint lanes, uint part, uint nparts, uint xb)
{
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) qn_acc[j] = 0.0;
    if (!qn_xsh) { // x not staged (cols > 4 * QN_XSH): not supported, NaN marks the misuse
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) qn_acc[j] = uintBitsToFloat(0x7fc00000u);
        return;
    }
    uint rowb[QN_SGROWS];
    QN_I8_ROWS(rowb, rbase)
    uint v = part * lanes + lane, step = nparts * lanes, nu = pc.cols / QN_QK * QN_QUPB;
    for (; v < nu; v += QN_UNROLL * step) {
        qn_qu raw[QN_UNROLL * QN_SGROWS];
        if (qn_pre_ok) [[unroll]] for (uint i = 0u; i < QN_UNROLL * QN_SGROWS; i++) raw[i] = qn_pre[i];
        else { QN_I8_LOAD(raw, rowb, v, step, nu) }
        qn_pre_ok = false;
        [[unroll]] for (uint u = 0u; u < QN_UNROLL; u++)
            if (v + u * step < nu) QN_I8_UNIT(raw[u * QN_SGROWS + j], v + u * step)
    }
}
