/* pc_mv_norm.h — push constants of the matvec with an RMSNorm prologue (matvec.comp built with QN_NORM,
 * see common/mv_norm.glsl): y[t, r] (+)= sum_c W[r, c] * xn[t, c] with xn = x * rsqrt(mean(x^2) + eps) * (w + w_add).
 * The first three members are qn_pc_matvec's (mv_sched.glsl reads them by name). */
#ifndef QN_PC_MV_NORM_H
#define QN_PC_MV_NORM_H

QN_CONST(QN_MATVEC_WRITE_XN, 2u) /* workgroup 0 of each token also writes xn[t, :] (binding 4) */

QN_STRUCT(qn_pc_mv_norm)
    QN_U32 rows;
    QN_U32 cols;
    QN_U32 flags;  /* QN_MATVEC_ACCUMULATE | QN_MATVEC_WRITE_XN */
    QN_F32 eps;
    QN_F32 w_add;  /* 1: zero-centred (1 + w) norm of Qwen3-Next; 0: plain weight */
QN_STRUCT_END(qn_pc_mv_norm)

/* matvec_norm_route (matvec.comp / qmatvec.comp with QN_NORM and QN_ROUTE): rows row0 .. row0 + rows of the
 * W_moe product m = W_moe · norm(x) as above (m_rows = E + 2 Is + 1 = m's row stride), then the last of the
 * `groups` workgroups of a token (over every dispatch writing m) routes it (common/mv_route.glsl): ids, w, sg
 * and the shared expert's act row, as moe_router does. */
QN_STRUCT(qn_pc_mv_route)
    QN_U32 rows;
    QN_U32 cols;
    QN_U32 flags;      /* QN_MATVEC_ACCUMULATE must be off; QN_MATVEC_WRITE_XN */
    QN_F32 eps;
    QN_F32 w_add;
    QN_U32 E;
    QN_U32 K;
    QN_U32 Is;
    QN_U32 act_stride;
    QN_U32 rflags;     /* QN_MOE_NORM_TOPK | QN_MOE_ROUND_BF16 */
    QN_U32 row0;       /* this dispatch's first row of m (rows = its row count) */
    QN_U32 m_rows;     /* rows of m, its row stride (E + 2 Is + 1) */
    QN_U32 groups;     /* workgroups per token of all the dispatches that write m (the last one routes) */
QN_STRUCT_END(qn_pc_mv_route)

/* mv_parts (mv_parts.comp): y[t, row0_i + r] = sum_c W_i[r, c] * xn[t, c] as qn_pc_mv_norm's, for a weight given as
 * nparts (1..4) row parts of different types in one dispatch (the types: the pipeline's spec constant 6). */
QN_STRUCT(qn_pc_mv_parts)
    QN_U32 rows;       /* rows of y (its row stride); the parts cover [0, rows) */
    QN_U32 cols;       /* a multiple of 16 and of every part's block size, at most 4 * spec QN_XSH */
    QN_U32 flags;      /* QN_MATVEC_WRITE_XN (QN_MATVEC_ACCUMULATE is not supported) */
    QN_F32 eps;
    QN_F32 w_add;
    QN_U32 groups;     /* workgroups per token: sum over the parts of ceil(rows_i / rows per workgroup of its kind) */
    QN_U32 nparts;
    QN_U32 row0_0;     /* part i: rows row0_i .. row0_i + rows_i of y, weights in binding 0 / 5 / 6 / 7 */
    QN_U32 rows_0;
    QN_U32 row0_1;
    QN_U32 rows_1;
    QN_U32 row0_2;
    QN_U32 rows_2;
    QN_U32 row0_3;
    QN_U32 rows_3;
QN_STRUCT_END(qn_pc_mv_parts)

#endif
