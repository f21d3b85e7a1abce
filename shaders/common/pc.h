/* pc.h — the push-constant ABI of every kernel, shared by C (runtime, tests) and GLSL (shaders).
 * One struct per kernel family; see qn_abi.h for the rules. Add new families at the end. */
#ifndef QN_PC_H
#define QN_PC_H

#include "qn_abi.h"

/* matvec: y[r] = sum_c W[r, c] * x[c] (+ y[r] if flags & QN_MATVEC_ACCUMULATE), r < rows, c < cols.
 * W row-major; its dtype is chosen by the kernel variant (bf16, f16, f32); x and y are f32. */
QN_CONST(QN_MATVEC_ACCUMULATE, 1u)
QN_STRUCT(qn_pc_matvec)
    QN_U32 rows;
    QN_U32 cols;
    QN_U32 flags;
QN_STRUCT_END(qn_pc_matvec)

/* rmsnorm: for each of `rows` rows of `dim` f32: y = x * rsqrt(mean(x^2) + eps) * (w + w_add).
 * w_add = 1 gives the zero-centred (1 + w) norm of Qwen3-Next, w_add = 0 the plain-weight norm. */
QN_STRUCT(qn_pc_rmsnorm)
    QN_U32 rows;
    QN_U32 dim;
    QN_F32 eps;
    QN_F32 w_add;
QN_STRUCT_END(qn_pc_rmsnorm)

/* eltwise: y[i] = op(a[i], b[i]) for i < n (f32); the op is specialization constant 1 (QN_EW_*). */
QN_CONST(QN_EW_ADD, 0u)          /* a + b */
QN_CONST(QN_EW_MUL, 1u)          /* a * b */
QN_CONST(QN_EW_SILU, 2u)         /* a * sigmoid(a)          (b unused) */
QN_CONST(QN_EW_SIGMOID_GATE, 3u) /* a * sigmoid(b) */
QN_CONST(QN_EW_SILU_MUL, 4u)     /* silu(a) * b  (SwiGLU) */
QN_CONST(QN_EW_COUNT, 5u)
QN_STRUCT(qn_pc_eltwise)
    QN_U32 n;
QN_STRUCT_END(qn_pc_eltwise)

#include "pc_embed.h"
#include "pc_matmul.h"
#include "pc_sample.h"
#include "pc_attn.h"
#include "pc_copy.h"
#include "pc_gdn.h"
#include "pc_moe.h"
#include "pc_mv_norm.h"
#include "pc_route.h"
#endif
