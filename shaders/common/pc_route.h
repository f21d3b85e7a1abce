/* pc_route.h — push constants of route_mixed.comp: the whole decode route stage of one MoE layer in ONE dispatch.
 * m = W_moe · norm(x) where W_moe is given as up to 4 row parts (a GGUF mixed-type fusion: the f32 router, the
 * shared expert's gate and up in a block type, the f32 shared-expert gate row), each in its own binding, then the
 * last workgroup of the token routes it (common/mv_route.glsl: ids, w, sg, the shared expert's act row).
 * The first five members are qn_pc_mv_norm's (rows = m_rows), the next five qn_pc_mv_route's router members. */
#ifndef QN_PC_ROUTE_H
#define QN_PC_ROUTE_H

/* route_mixed's own flags (pc.flags, beside QN_MATVEC_WRITE_XN = 2) */
QN_CONST(QN_ROUTE_NO_COUNT, 4u)    /* m and xn only: no count, no routing (test_mv_norm --bench-route: the matvec's
                                      share of the stage) */

QN_STRUCT(qn_pc_route_one)
    QN_U32 m_rows;     /* rows of m (E + 2 Is + 1), its row stride; the parts cover [0, m_rows) */
    QN_U32 cols;       /* H: a multiple of 16 and of the block size, at most 4 * spec QN_XSH */
    QN_U32 flags;      /* QN_MATVEC_WRITE_XN: workgroup 0 of each token also writes xn; QN_ROUTE_* */
    QN_F32 eps;
    QN_F32 w_add;
    QN_U32 E;
    QN_U32 K;
    QN_U32 Is;
    QN_U32 act_stride;
    QN_U32 rflags;     /* QN_MOE_NORM_TOPK | QN_MOE_ROUND_BF16 | QN_MOE_CHAIN_OUT (route_mixed: binding 13) */
    QN_U32 groups;     /* workgroups per token: sum over the parts of ceil(rows_i / rows per workgroup of its kind) */
    QN_U32 nparts;     /* 1 .. 4 */
    QN_U32 qmask;      /* bit i: part i is in the variant's block type (else f32) */
    QN_U32 row0_0;     /* part i: rows row0_i .. row0_i + rows_i of m, weights in binding 0 / 10 / 11 / 12 */
    QN_U32 rows_0;
    QN_U32 row0_1;
    QN_U32 rows_1;
    QN_U32 row0_2;
    QN_U32 rows_2;
    QN_U32 row0_3;
    QN_U32 rows_3;
    QN_U32 bmask;      /* bit 0: part 0 is bf16 (two per 32-bit word, low half first; not with qmask bit 0) */
QN_STRUCT_END(qn_pc_route_one)

#endif
