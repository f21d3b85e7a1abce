/* pc_attn.h — push constants of the gated full-attention kernels (attn_prep.comp, attn_decode.comp,
 * attn_prefill.comp), shared by C and GLSL (included at the end of pc.h), plus C helpers for the sizes
 * the caller must allocate.
 *
 * Layouts (f32 unless noted; D = head_dim, G = Hq / Hkv):
 *   proj  [T][proj_stride]  attention projection output, row = [query Hq*D | gate Hq*D | k Hkv*D | v Hkv*D]
 *   q     [T][Hq][D]        normed + roped queries (attn_prep output)
 *   kcache, vcache [Hkv][cap][D]   row s of kv head j at (j*cap + s)*D; k normed + roped, v raw;
 *                           f32, or f16 for the *_f16kv kernels (shaders/common/attn_kv.glsl)
 *   out   [T][Hq*D]         softmax(q k^T * scale) v * sigmoid(gate), index t*Hq*D + h*D + d
 *   pos   uint32 [>= 1]     device-side base position (used only with QN_ATTN_POS_DEVICE)
 *
 * Positions. Every kernel takes a base position `base`: 0, or pos[0] read from the `pos` binding when
 * flags & QN_ATTN_POS_DEVICE (so one pre-recorded decode command buffer serves every step: the host
 * writes the token's position into a host-visible word before each submit). Then:
 *   attn_prep:    token t is at position base + pos0 + t
 *   attn_decode:  n_keys = base + n_keys field (decode after prep at position P: n_keys = P + 1)
 *   attn_prefill: query t is at position base + pos0 + t and sees cache rows 0 .. base + pos0 + t */
#ifndef QN_PC_ATTN_H
#define QN_PC_ATTN_H

QN_CONST(QN_ATTN_POS_DEVICE, 1u) /* flags: add pos[0] (binding `pos`) to the positions / n_keys */

/* attn_prep: per token t < T and head: zero-centred RMSNorm (1 + w) of q and k heads over D, partial
 * rotate-half RoPE on the first `rot` dims (angle = float(position) * inv_freq[p] in f32, cos and sin
 * times attn_factor), q -> q[t], k -> kcache row, v copied raw -> vcache row (rows >= cap are skipped). */
QN_STRUCT(qn_pc_attn_prep)
    QN_U32 T;
    QN_U32 Hq;
    QN_U32 Hkv;
    QN_U32 D;           /* head_dim, multiple of 4, <= spec QN_DMAX */
    QN_U32 rot;         /* rotary dims R (even, <= D); inv_freq has R/2 entries */
    QN_U32 cap;         /* KV cache rows per kv head */
    QN_U32 pos0;        /* position of token 0 (plus pos[0] with QN_ATTN_POS_DEVICE) */
    QN_U32 flags;
    QN_U32 proj_stride; /* floats per proj row (2*Hq*D + 2*Hkv*D for the fused projection) */
    QN_F32 eps;         /* rms_norm_eps */
    QN_F32 attn_factor; /* YaRN mscale, 1 without YaRN */
QN_STRUCT_END(qn_pc_attn_prep)

/* attn_decode (split pass) and attn_decode_combine: one query (T = 1) against cache rows 0..n_keys-1,
 * keys split into `splits` chunks of qn_attn_decode_chunk() keys; the combine merges the splits in
 * order 0, 1, ... and multiplies by sigmoid(gate), gate[h*D + d] = proj[gate_off + h*D + d]. */
QN_STRUCT(qn_pc_attn_decode)
    QN_U32 Hq;
    QN_U32 Hkv;
    QN_U32 D;        /* multiple of 4, <= spec QN_DMAX */
    QN_U32 cap;
    QN_U32 n_keys;   /* visible keys (plus pos[0] with QN_ATTN_POS_DEVICE); >= 1 and <= cap */
    QN_U32 splits;   /* S: split workgroups per kv head (dispatch width); partials sized for S */
    QN_U32 flags;
    QN_U32 gate_off; /* float index of the gate in proj (Hq*D for token 0 of the fused projection) */
    QN_F32 scale;    /* softmax scale, 1/sqrt(D) */
QN_STRUCT_END(qn_pc_attn_decode)

/* attn_decode_prep (attn_decode.comp with QN_ATTN_PREP): attn_prep's work for the one decode token folded into the
 * split pass: q of the workgroup's G heads normed + roped from proj (row [query | gate | k | v]), and the split whose
 * keys hold the new position also writes its kv head's k (normed + roped) and v there. The first nine members are
 * qn_pc_attn_decode's (the combine takes that struct); then attn_prep's rot, eps, attn_factor. */
QN_STRUCT(qn_pc_attn_dprep)
    QN_U32 Hq;
    QN_U32 Hkv;
    QN_U32 D;
    QN_U32 cap;
    QN_U32 n_keys;
    QN_U32 splits;
    QN_U32 flags;
    QN_U32 gate_off;
    QN_F32 scale;
    QN_U32 rot;
    QN_F32 eps;
    QN_F32 attn_factor;
QN_STRUCT_END(qn_pc_attn_dprep)

/* attn_prefill: T query tokens at positions base+pos0+t, each over cache rows 0..base+pos0+t (causal),
 * times sigmoid(gate), gate of token t at proj[t*proj_stride + gate_off + h*D + d]. */
QN_STRUCT(qn_pc_attn_prefill)
    QN_U32 T;
    QN_U32 Hq;
    QN_U32 Hkv;
    QN_U32 D;           /* multiple of 4, <= spec QN_DMAX */
    QN_U32 cap;
    QN_U32 pos0;
    QN_U32 flags;
    QN_U32 proj_stride;
    QN_U32 gate_off;    /* Hq*D for the fused projection */
    QN_F32 scale;
QN_STRUCT_END(qn_pc_attn_prefill)

#if defined(__STDC__) || defined(__cplusplus)
/* Shapes the attention kernels take, given their specialization constants (defaults: dmax 256 for all,
 * gmax 8 and wg 128 for attn_decode, wg 256 for attn_prefill): Hq a multiple of Hkv, G = Hq/Hkv <= gmax,
 * D a multiple of 4 with D <= dmax and D <= 4*wg, rot even and <= D. Kernels given other shapes write
 * nothing, so the graph must check this once at setup. */
static inline int qn_attn_shape_ok(uint32_t Hq, uint32_t Hkv, uint32_t D, uint32_t rot, uint32_t dmax,
                                   uint32_t gmax, uint32_t wg)
{
    return Hkv > 0 && Hq % Hkv == 0 && Hq / Hkv <= gmax && D % 4 == 0 && D > 0 && D <= dmax && D <= 4 * wg &&
           rot % 2 == 0 && rot <= D;
}
/* Shared memory of attn_prefill_cm.comp with key tile bc (16 or 32) and K / V in one buffer or two (kv2): the tile
 * buffer (bc or 2 bc rows of 264 halves), P (64 rows of bc + 8 halves), S (64 rows of bc + 4 floats, at least the
 * 8 warps' 16 x 16 blocks), two floats per row. 31744 bytes at 32 / one buffer, 48640 at 32 / two. */
static inline uint32_t qn_attn_cm_shared_bytes(uint32_t bc, int kv2)
{
    uint32_t s = 64u * (bc + 4u);
    return (kv2 ? 2u : 1u) * bc * 33u * 16u + 64u * ((bc + 8u) / 8u) * 16u + (s > 2048u ? s : 2048u) * 4u + 512u;
}
/* Default key tile of attn_decode (spec constant 3, QN_TK); a split's chunk is a multiple of it. */
#define QN_ATTN_DECODE_TK 16u
/* Keys per split: ceil(n_keys / splits) rounded up to a multiple of tk (the decode kernel's QN_TK). */
static inline uint32_t qn_attn_decode_chunk(uint32_t n_keys, uint32_t splits, uint32_t tk)
{
    uint32_t c = (n_keys + splits - 1) / splits;
    return (c + tk - 1) / tk * tk;
}
/* A good split count for up to n_keys keys: about 32 keys per split, at most 256 splits per kv head
 * (Hkv * 256 workgroups keep a large GPU busy; the partials traffic stays < 1/8 of the K/V bytes). A
 * pre-recorded decode uses the count for its largest context (splits past the keys exit at once). */
static inline uint32_t qn_attn_decode_splits(uint32_t n_keys)
{
    uint32_t s = (n_keys + 31) / 32;
    return s < 1 ? 1 : s > 256 ? 256 : s;
}
/* Bytes of the partials buffer for Hq query heads, head_dim D and S splits (f32): acc [Hq][S][D], then
 * (max, sum) [Hq][S][2], then one uint (splits used), rounded up to 16 bytes. */
static inline uint64_t qn_attn_decode_partials_bytes(uint32_t Hq, uint32_t D, uint32_t splits)
{
    return ((uint64_t)Hq * splits * (D + 2u) * 4u + 4u + 15u) / 16u * 16u;
}
#endif

#endif
