/* pc_matmul.h — push constants of the tiled prefill matmul (shaders/matmul.comp). */
#ifndef QN_PC_MATMUL_H
#define QN_PC_MATMUL_H

/* matmul: Y[m, n] = sum_k X[m, k] * W[n, k]  (+ Y[m, n] if flags & QN_MATMUL_ACCUMULATE)
 * for m < M (tokens), n < N (weight rows), k < K.
 * X f32 at x[x_off + m * ldx + k]; W row-major [N, K] of the kernel's dtype (the binding starts at row 0);
 * Y f32 at y[y_off + m * ldy + n]. Offsets and strides are in elements. */
QN_CONST(QN_MATMUL_ACCUMULATE, 1u)
QN_STRUCT(qn_pc_matmul)
    QN_U32 M;
    QN_U32 N;
    QN_U32 K;
    QN_U32 ldx;
    QN_U32 ldy;
    QN_U32 x_off;
    QN_U32 y_off;
    QN_U32 flags;
QN_STRUCT_END(qn_pc_matmul)
#if defined(__STDC__) || defined(__cplusplus)
/* matmul.comp's tile rule for spec constants { WG, BM, BN, BK, TM, TN }: TM, TN multiples of 4, BK of 8,
 * WG = BM / TM * BN / TN */
static inline int qn_matmul_tile_ok(const uint32_t v[6])
{
    return v[4] && v[5] && v[4] % 4 == 0 && v[5] % 4 == 0 && v[3] && v[3] % 8 == 0 && v[1] % v[4] == 0 &&
           v[2] % v[5] == 0 && (v[1] / v[4]) * (v[2] / v[5]) == v[0];
}
#endif

/* to_f16: rows x cols values into f16 [rows][cols] (cols a multiple of 8) from output chunk out8 (8 halves a
 * chunk) on, read from a weight in its ggml blocks (rows of whole blocks, the binding at row 0) or from f32 at
 * x[off + r * ld + c] (values clamped to +-65504); matmul_cm_h.comp multiplies the results. */
QN_STRUCT(qn_pc_to_f16)
    QN_U32 rows;
    QN_U32 cols;
    QN_U32 ld;
    QN_U32 off;
    QN_U32 out8;
QN_STRUCT_END(qn_pc_to_f16)

#endif
