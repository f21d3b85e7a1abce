/* pc_gdn.h — push constants of the Gated DeltaNet family (shaders/gdn_*.comp), shared by C and GLSL.
 * Included at the end of pc.h. All offsets and strides count f32 elements, not bytes. */
#ifndef QN_PC_GDN_H
#define QN_PC_GDN_H

/* gdn_conv: causal depthwise conv1d (kernel K = spec constant 2) + SiLU over `channels` channels.
 * in  [T][in_stride]  (channels 0..channels-1 of each row are the raw conv inputs, e.g. proj)
 * out [T][out_stride] (channels 0..channels-1 written: silu(conv))
 * The conv state [channels][K-1] holds the previous K-1 raw inputs (oldest first) and is updated. */
QN_STRUCT(qn_pc_gdn_conv)
    QN_U32 T;
    QN_U32 channels;
    QN_U32 in_stride;
    QN_U32 out_stride;
QN_STRUCT_END(qn_pc_gdn_conv)

/* gdn_recurrent / gdn_chunked: the gated delta rule over T tokens for Hv value heads.
 * Token t reads (value head h, key head h / (Hv/Hk)):
 *   q[i]  = qkv[t*qkv_stride + q_off + (h/r)*dk + i]   (raw conv output: L2-normed and scaled in the kernel)
 *   k[i]  = qkv[t*qkv_stride + k_off + (h/r)*dk + i]   (raw; L2-normed in the kernel)
 *   v[j]  = qkv[t*qkv_stride + v_off + h*dv + j]
 *   b     = proj[t*proj_stride + b_off + h]            (beta = sigmoid(b))
 *   a     = proj[t*proj_stride + a_off + h]            (g = -exp(A_log[h]) * softplus(a + dt_bias[h]))
 * and writes o[(t*Hv + h)*dv + j]. The state S [Hv][dk][dv] is read at the start and written at the end. */
QN_STRUCT(qn_pc_gdn)
    QN_U32 T;
    QN_U32 Hk;
    QN_U32 Hv;
    QN_U32 dk;
    QN_U32 dv;
    QN_U32 qkv_stride;
    QN_U32 q_off;
    QN_U32 k_off;
    QN_U32 v_off;
    QN_U32 proj_stride;
    QN_U32 b_off;
    QN_U32 a_off;
QN_STRUCT_END(qn_pc_gdn)

/* gdn_chunk_wy_inv / gdn_chunk_state (the two-pass chunked delta rule, chunk 64): the fields of qn_pc_gdn (same
 * meaning) plus the segment: a call of T tokens runs as segments of nc chunks; this dispatch covers the chunks
 * starting at token t0 (t0 a multiple of 64), chunk cl of the segment = tokens t0 + 64 cl .. (at most T).
 * Scratch record (cl * Hv + h) of RS = 2*64*dk + 64*dv + 68 floats: W [64][dk], Q' [64][dk], U [64][dv],
 * kf [64], e^G_last, 3 pad (gdn_chunk_wy.comp). */
QN_STRUCT(qn_pc_gdn_wy)
    QN_U32 T;
    QN_U32 t0;
    QN_U32 nc;
    QN_U32 Hk;
    QN_U32 Hv;
    QN_U32 dk;
    QN_U32 dv;
    QN_U32 qkv_stride;
    QN_U32 q_off;
    QN_U32 k_off;
    QN_U32 v_off;
    QN_U32 proj_stride;
    QN_U32 b_off;
    QN_U32 a_off;
QN_STRUCT_END(qn_pc_gdn_wy)

/* gated_rmsnorm: for each of `rows` = T*Hv rows (row = t*heads + h) of dim f32:
 *   y[row*dim + j] = w[j] * o[row*dim + j] * rsqrt(mean(o_row^2) + eps) * silu(z),
 *   z = proj[t*proj_stride + z_off + h*dim + j]. Plain weight w (not 1 + w). */
QN_STRUCT(qn_pc_gdn_norm)
    QN_U32 rows;
    QN_U32 heads;
    QN_U32 dim;
    QN_U32 proj_stride;
    QN_U32 z_off;
    QN_F32 eps;
QN_STRUCT_END(qn_pc_gdn_norm)

/* gdn_decode: one decode token of conv + delta rule (+ gated norm) in one dispatch. The in_proj row proj holds the
 * conv inputs [q | k | v] at channels 0.. (q of key head hk at hk*dk, k at k_off + hk*dk, v of value head h at
 * v_off + h*dv), z at z_off + h*dv, b at b_off + h, a at a_off + h; proj_stride is unused (one token) but named
 * for gdn.glsl. eps: the gated norm's. */
QN_STRUCT(qn_pc_gdn_dec)
    QN_U32 Hk;
    QN_U32 Hv;
    QN_U32 dk;
    QN_U32 dv;
    QN_U32 proj_stride;
    QN_U32 k_off;
    QN_U32 v_off;
    QN_U32 z_off;
    QN_U32 b_off;
    QN_U32 a_off;
    QN_F32 eps;
QN_STRUCT_END(qn_pc_gdn_dec)

#endif
