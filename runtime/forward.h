/* forward.h — the Qwen3-Next graph on the GPU: pipelines, per-sequence state and activation buffers, and the
 * recording of one forward call (T tokens) into a command buffer. Used by session.c, which owns the
 * recordings, submits them and reads results back; nothing here touches descriptors or submits.
 *
 * A call runs T tokens at positions pos[0] .. pos[0] + T - 1 (pos is a host-visible word the session writes
 * before each submit, so one recording serves every position), reading token ids from `tok` and continuing
 * the state (KV caches, conv and delta-rule states) left by earlier calls. T == 1 is the decode graph
 * (matvec, recurrent delta rule, split-K attention, per-token MoE); larger T the prefill graph (tiled matmul,
 * chunked delta rule, causal flash attention, grouped MoE). Each layer is recorded by its own functions in
 * two segments — up to and including the router, then the experts — so a streaming mode can submit them
 * separately and read the router's ids in between. */
#ifndef QN_FORWARD_H
#define QN_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "moe_small.h"
#include "vk.h"

/* What a call produces besides the new state. */
enum qn_fwd_out {
    QN_FWD_NONE = 0,        /* nothing (an early prompt chunk) */
    QN_FWD_LOGITS_LAST,     /* logits of the last token -> rb_logits [V] */
    QN_FWD_LOGITS_ALL,      /* logits of every token -> rb_logits [T, V] */
    QN_FWD_ARGMAX,          /* greedy id of the last token -> rb_tok[0], its logit -> rb_tok[1] */
    QN_FWD_TOPK,            /* top-k (value bits, id) pairs of the last token's logits -> rb_cand [k] */
};

struct qn_fwd_tune {
    uint32_t matvec_wg, matvec_rows, norm_wg;  /* board profile values (0 = kernel defaults) */
    uint32_t small_t;       /* calls of up to this many tokens use matvec / per-token MoE (default 4) */
    bool router_bf16;       /* round router logits to bf16 (HF with bf16 weights); default off (f32) */
    uint32_t matmul[6];     /* matmul spec constants WG, BM, BN, BK, TM, TN (all 0 = the kernel's defaults) */
    uint64_t max_bind;      /* bind weights in row pieces of at most this many bytes (0 = the device's
                               maxStorageBufferRange; tests lower it to exercise the piecewise path) */
    bool guess_next;        /* streaming prefetch: each ROUTE segment of layer l < L - 1 also applies layer l + 1's
                               router to layer l's MoE input xn -> rb_guess [T, K] (the guess for l + 1's experts) */
    int coopmat;            /* prefill matmuls on tensor cores where the device has them (QN_FEAT_COOPMAT_NV:
                               qmatmul_cm.comp / moe_qgrouped_cm.comp, f16 operands, f32 sums; ~1e-3 relative
                               error per matmul) instead of the f32-FMA kernels: QN_FWD_CM_OFF, QN_FWD_CM_BLOCKS
                               (GGUF block-format weights and experts only), QN_FWD_CM_ALL (bf16 / f16 / f32 weights
                               too); env QNEXT_COOPMAT=0 / blocks / 1 overrides. Default QN_FWD_CM_BLOCKS
                               (qn_fwd_default_tune; a zeroed tune is OFF); used only after a self-check
                               (qn_cm_selfcheck) passes on the device */
    bool no_norm_fuse;      /* keep the separate rmsnorm dispatches in decode (default: folded into the next
                               matvec; also set by QNEXT_NORM_FUSE=0) */
    bool no_route_fold;     /* the router as its own dispatch after a barrier (also set by QNEXT_ROUTE_FOLD=0) */
    uint32_t wy_seg;        /* chunks of 64 tokens per segment of the prefill delta rule's two passes (board profile
                               value; 0 = 16; env QNEXT_GDN_WY_SEG overrides); the scratch holds one segment */
};
enum { QN_FWD_CM_OFF = 0, QN_FWD_CM_BLOCKS = 1, QN_FWD_CM_ALL = 2 };
void qn_fwd_default_tune(struct qn_fwd_tune *t);

struct qn_fwd_call {
    uint32_t T;             /* tokens, 1 .. tmax */
    enum qn_fwd_out out;
    uint32_t k;             /* QN_FWD_TOPK: candidates (1 .. 256, <= vocab) */
    bool hidden;            /* also copy every layer's output to rb_hidden [(L + 1), T, H] */
    bool profile;           /* timestamp regions per op family (qn_cmd_mark) */
};

struct qn_fwd_layer_state {
    qn_buf *kc, *vc;        /* attention: f32 [Hkv][cap][D] */
    qn_buf *conv, *S;       /* Gated DeltaNet: f32 [CD][K-1], f32 [Hv][dk][dv] */
    qn_buf *router_b16;     /* env QNEXT_ROUTER_BF16W=1: W_moe's f32 router part as bf16 [E, H] for route_mixed; else NULL */
};

typedef struct qn_fwd {
    const qn_model *m;
    qn_vk *v;
    struct qn_fwd_tune tune;
    uint32_t tmax, cap, logit_rows, kmax, splits;

    /* pipelines */
    qn_pipe *embed, *rmsnorm, *matvec[3], *matmul[3], *argmax[2], *topk;
    qn_pipe *matvec_norm[3]; /* matvec with the RMSNorm prologue (bf16, f16, f32): decode folds the norms into it */
    qn_pipe *matvec_norm_route[3]; /* ... plus the MoE router as epilogue (W_moe in decode); NULL if WG < 32 */
    qn_pipe *qmatvec_norm[5]; /* qmatvec with the RMSNorm prologue, by q_index; NULL where qmatvec[i] is */
    qn_pipe *qmatvec_norm_route[5]; /* ... and the router epilogue (parts of a GGUF W_moe) */
    qn_pipe *mv_parts[8];   /* mv_parts.comp: a GGUF mixed-type weight's parts under one RMSNorm in one decode dispatch,
                               one pipeline per parts signature (spec 6, qn_fwd_parts_sig) the model has, made
                               only without the int8-dot matvecs; NULL: one matvec_norm dispatch per part (always
                               with them; env QNEXT_MV_PARTS=0 without them too) */
    qn_pipe *route_one[5];  /* route_mixed: a GGUF W_moe's f32 parts + parts of block type i, one dispatch; NULL if none */
    qn_pipe *moe_qgu[5], *moe_qdn[5]; /* GGUF block experts (qn_mlayer.exp_qtype), by q_index; NULL when unused */
    qn_pipe *moe_qdnx[5];   /* ... their down split over the experts (default; NULL with QNEXT_MOEQ_DN=rows) */
    qn_pipe *qmatvec[5];    /* GGUF block weights (qn_wt.qtype): Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; NULL when unused */
    qn_pipe *qmatmul[5];    /* their prefill matmuls (qmatmul.comp), same index; NULL when unused */
    qn_pipe *matmul_sk;     /* the f32 parts of mixed-type fusions in prefill (router, shared-expert gate, GDN ba) in
                               another matmul_f32 tile (env QNEXT_MM_F32_TILE; NULL: f->matmul[2]) */
    qn_pipe *matmul_sl;     /* ... and those calls with >= mm_f32_large_min (512) of its larger tiles
                               (QNEXT_MM_F32_TILE_LARGE, QNEXT_MM_F32_LARGE_MIN; NULL: none) */
    uint32_t mm_f32_large_min;
    qn_pipe *moe_qgu_g[5], *moe_qdn_g[5]; /* grouped prefill over GGUF block experts (moe_qgrouped.comp) */
    qn_pipe *qmatmul_cm[5], *matmul_cm[3]; /* tensor-core prefill matmuls (qmatmul_cm.comp); NULL without coopmat */
    qn_pipe *moe_qgu_gcm[5], *moe_qdn_gcm[5]; /* ... and grouped block-expert MoE (moe_qgrouped_cm.comp) */
    /* the grouped tensor-core MoE in a second layout for calls of fewer than cm_moe_big_pairs (token, expert) pairs
     * per expert (T K < cm_moe_big_pairs E; qn_cm_moe_spec_small: env QNEXT_CM_MOE_TILE_SMALL); NULL when off */
    qn_pipe *moe_qgu_gcm2[5], *moe_qdn_gcm2[5];
    uint32_t cm_moe_big_pairs;
    bool moe_sh_early;      /* the grouped down of the shared expert (f32 act rows: the router's) recorded beside the
                               routed gate_up in the default layout's f16 path, the other tiles' down after it (env
                               QNEXT_MOE_SHARED_EARLY=0: off); it runs in the gate_up's last wave */
    /* prefill of a router fusion (W_moe): its block-type parts (the shared expert's gate / up) on the tensor cores
     * (router_cm, env QNEXT_ROUTER_CM); its f32 parts (router, shared_expert_gate) on the f32-FMA matmul */
    bool router_cm;
    uint32_t moe_token_t;   /* GGUF block experts of calls up to max(this, tune.small_t) tokens run on the per-token
                               decode kernels (moe_q.comp, tokens in z) in prefill too (env QNEXT_MOE_TOKEN_T; 160) */
    /* prefill over GGUF block experts with few tokens per expert (moe_qsmall.comp), by token-slot width
     * (qn_moe_small_nts index) and q_index; NULL when unused */
    qn_pipe *moe_qgu_s[QN_MOE_SMALL_NNT][5], *moe_qdn_s[QN_MOE_SMALL_NNT][5];
    /* ... and the multi-token grouped matvec (moe_qmt.comp; qn_moe_mt_take: env QNEXT_MOE_MT_PAIRS), by q_index; NULL
     * when off or where the device lacks its subgroup features */
    qn_pipe *moe_qgu_mt[5], *moe_qdn_mt[5];
    bool moe_mt_i8;         /* ... which are the int8 twins (their own QNEXT_MOE_MT_PAIRS default) */
    bool chain;             /* decode MoE chain (common/moe_chain.glsl): route -> gate_up -> down without barriers,
                               env QNEXT_MOE_CHAIN (forward.c chain_env) */
    bool chain_route;       /* ... with the route -> gate_up link (QNEXT_MOE_CHAIN=2: without) */
    bool chain_down;        /* ... with the gate_up -> split down link (QNEXT_MOE_CHAIN=3: without) */
    int coopmat;            /* the tensor-core policy in use (QN_FWD_CM_*) */
    qn_pipe *qmatmul_cmb[5], *matmul_cmb[3]; /* the same with the 128 x 128 tile, for calls with many tiles */
    /* the f16 path of prefill projections (forward.c h_linear; env QNEXT_MM_H): the weight decoded into hw and X
     * converted into hx by to_f16.comp, then matmul_cm_h.comp, whose k loop only moves f16 chunks */
    qn_pipe *to_f16[5];     /* by q_index: blocks -> f16 */
    qn_pipe *to_f16_x;      /* f32 -> f16 (X, and a fusion's f32 parts) */
    qn_pipe *mm_h, *mm_hb, *mm_hm; /* matmul_cm_h at 128 x 64, the large and (where the large has other tile sizes
                             * than qn_mm_h_spec[2], e.g. QNEXT_MM_H_LAYOUT's) the 128 x 128 tiles, each for calls with
                             * >= 256 of its tiles; QNEXT_MM_H=2: the f32-FMA matmul_f16 on hw and f32 X (any device:
                             * tests the decode and its barriers); NULL: path off */
    bool mm_h_x;            /* mm_h takes f16 X (hx); false: f32 X as is (QNEXT_MM_H=2) */
    uint32_t h_min_t;       /* calls of at least this many tokens take it (env QNEXT_MM_H_MIN_T, default 256) */
    uint64_t hw_elems;      /* hw holds the largest projection (rows x cols halves) */
    qn_pipe *moe_qgu_gcm_h[5], *moe_qdn_gcm_h[5]; /* the grouped gate_up's / down's twins reading x / act from hx in
                                  f16 (QN_X_F16; moe_q*_gcm's layout, not the small-call one: neutral there, H100 run
                                  66), with mm_h_x */
    qn_buf *hw, *hx;        /* f16 scratch: [rows, cols] of one weight; [tmax, max cols] of X or the experts' act
                             * rows (forward.c h_x_halves) */
    qn_pipe *conv_dec, *conv_pre, *rule_rec, *rule_chunk, *gnorm;
    qn_pipe *gdn_dec;       /* gdn_decode.comp: a decode token's conv + delta rule (+ gated norm when its spec 4 is 1)
                               in one dispatch (env QNEXT_GDN_FUSE=1|2); NULL: three dispatches (0, the default) */
    qn_pipe *wy_a, *wy_b;   /* the two-pass chunked delta rule for prefill (gdn_chunk_wy_inv: per-chunk factors of
                               all chunks at once, gdn_chunk_state: the walk over the chunks; env QNEXT_GDN_WY); NULL:
                               gdn_chunked */
    uint32_t wy_seg;        /* chunks per segment of the two passes (env QNEXT_GDN_WY_SEG; the scratch holds one) */
    uint32_t wy_min_t;      /* the two passes for prefill calls of at least this many tokens (env QNEXT_GDN_WY) */
    qn_pipe *prep, *dec, *comb, *pre;
    qn_pipe *pre_cm;        /* attn_prefill_cm (flash attention on tensor cores) or its emulated twin in attn_prefill's
                               place (env QNEXT_ATTN_CM=1 | emu, forward_pipes.c make_attn_cm_pipe); NULL: attn_prefill */
    qn_pipe *dec_prep;      /* attn_decode_prep: the decode step's attn_prep folded into the split pass (env
                               QNEXT_ATTN_FOLD=1); NULL: attn_prep + attn_decode (the default) */
    qn_pipe *router, *gate_up, *down, *sort, *gate_up_g, *down_g, *combine;
    /* decode matvecs whose default layout has at most mv_small_wgs workgroups (or, if set, weights and parts of at
     * most mv_small_rows rows; forward_pipes.c, env QNEXT_MV_SMALL*): the same kernels in a layout with fewer rows
     * per workgroup, so that they fill the GPU; NULL when off */
    qn_pipe *matvec_s[3], *matvec_norm_s[3], *matvec_norm_route_s[3];
    qn_pipe *qmatvec_s[5], *qmatvec_norm_s[5], *qmatvec_norm_route_s[5];
    uint32_t mv_small_rows, mv_small_wgs;
    /* env QNEXT_IDOT=1 on a device with shaderIntegerDotProduct: the int8-dot twins (qmatvec_i8.comp, x quantized per
     * 32 elements) of qmatvec, qmatvec_s, qmatvec_norm, qmatvec_norm_s in the same layouts, by q_index, which
     * mv_pick() takes in their place; all NULL when off or when a dense block weight has more columns than they stage */
    qn_pipe *qmv_i8[4][5];
    qn_pipe *moe_qgu_i8[5]; /* QNEXT_IDOT=2: also the routed gate_up's twins (moe_q_i8.comp, moe_qgu's layout) */

    /* per-sequence state (zeroed by qn_fwd_reset) */
    struct qn_fwd_layer_state *st;  /* [num_layers] */
    qn_buf *pos;            /* uint32 [1], host-visible: position of the call's first token */
    qn_buf *tok;            /* int32 [tmax], host-visible: the call's token ids */

    /* activations, sized for tmax tokens */
    qn_buf *x, *xn, *xl;    /* f32 [tmax, H] residual, normed; [H] last row */
    qn_buf *proj;           /* f32 [tmax, max(GDN in, attention in)] */
    qn_buf *qkv;            /* f32 [tmax, CD] conv output */
    qn_buf *o;              /* f32 [tmax, max(VD, QD)] GDN / attention output */
    qn_buf *q;              /* f32 [tmax, QD] roped queries */
    qn_buf *part;           /* attention decode partials */
    qn_buf *mm;             /* f32 [tmax, E + 2 Is + 1] MoE dense product */
    qn_buf *ids, *w, *sg;   /* int32 [tmax, K], f32 [tmax, K], f32 [tmax] */
    qn_buf *gscr;           /* gdn_decode's counters (zero between calls) and per-block sums; NULL without gdn_dec */
    qn_buf *wy_scr;         /* gdn_chunk_wy_inv's records of one segment (pc_gdn.h); NULL without wy_a */
    qn_buf *rcnt;           /* uint32 [tmax] finished-workgroup counts of matvec_norm_route (zero between calls) */
    qn_buf *dxs;            /* split down (moe_qdnx): QN_MOE_CHAIN_WORDS uint32 chain words (the decode chain's),
                               f32 partials [dxs_t, K + 1, H], then uint32 row-block counters
                             * at the end of the buffer (zero between calls); NULL without moe_qdnx */
    uint32_t dxs_t;         /* tokens dxs holds (larger calls on the per-token kernels use moe_qdn) */
    qn_buf *act;            /* f32 [tmax, K + 1, act_stride] */
    qn_buf *list, *tiles, *d; /* grouped MoE: int32 [T K + T], int32 [max_tiles, 4], f32 [tmax, K + 1, H] */
    qn_buf *logits;         /* f32 [logit_rows, V] */
    qn_buf *amax_part;      /* argmax partials */
    qn_buf *cand[2];        /* top-k ping-pong */
    uint32_t act_stride, max_tiles, tile_t;

    /* results for the host */
    qn_buf *rb_logits;      /* f32 [logit_rows, V] */
    qn_buf *rb_tok;         /* int32 [2]: greedy id, its logit (f32 bits) */
    qn_buf *rb_cand;        /* uint32 [kmax, 2] */
    qn_buf *rb_hidden;      /* f32 [(L + 1), tmax, H], only when asked for (qn_fwd_want_hidden) */
    qn_buf *rb_guess;       /* int32 [tmax, K] guessed expert ids of the next layer (tune.guess_next), else NULL */
    qn_buf *rb_lids;        /* int32 [L, tmax, K] every layer's routed ids for the host tier's VRAM cache (set and
                             * freed by session.c when the model has one; expert_host.h), else NULL */
    qn_pipe *gather;        /* the host tier's decode gather (expert_gather.comp; set by session.c), else NULL */
    qn_buf *g_mm, *g_w, *g_sg; /* the guess's logits f32 [tmax, E] (+ 4 spare), weights, shared-gate scratch */
} qn_fwd;

/* Pipelines and state for model m; tmax tokens per call, a KV cache of cap positions. */
int qn_fwd_init(qn_fwd *f, const qn_model *m, const struct qn_fwd_tune *tune, uint32_t tmax, uint32_t cap);
void qn_fwd_free(qn_fwd *f);
/* Zero the recurrent states (conv, delta rule); the KV cache needs no clearing (rows past the position
 * are never read before being written). */
int qn_fwd_reset(qn_fwd *f);
/* Grow the KV cache to at least `cap` positions, keeping the first `keep` rows. Invalidates recordings. */
int qn_fwd_grow(qn_fwd *f, uint32_t cap, uint32_t keep);
/* Make sure rb_logits holds `rows` rows, rb_cand k entries and rb_hidden exists when `hidden`.
 * Returns 1 when buffers were reallocated (recordings that use them are invalid), 0 when nothing changed. */
int qn_fwd_outputs(qn_fwd *f, uint32_t rows, uint32_t k, bool hidden);

/* Device memory per token of tmax (activations; ~260 KB for the 80B model): a prefill chunk of T tokens takes about
 * T times this (plus T x vocab x 4 bytes twice when the call returns every token's logits). */
uint64_t qn_fwd_token_bytes(const qn_model *m);

/* Record one call into c (between qn_cmd_begin and qn_cmd_end, which the caller does). */
int qn_fwd_record(qn_fwd *f, qn_cmd *c, const struct qn_fwd_call *call);

/* The same call in segments, for a caller that submits them separately (streaming: read a layer's expert ids
 * after its ROUTE segment, fill missing slots, then submit its EXPERTS segment). qn_fwd_record() records
 * EMBED, then ROUTE and EXPERTS of every layer in order, then HEAD. */
enum qn_fwd_seg {
    QN_FWD_SEG_EMBED = 0,   /* x = embed_tokens[tok] */
    QN_FWD_SEG_ROUTE,       /* layer l: x += mixer(norm(x)); xn = norm(x); MoE dense product; router -> ids, w, sg */
    QN_FWD_SEG_EXPERTS,     /* layer l: x += routed experts (through the slot table) + shared expert */
    QN_FWD_SEG_HEAD,        /* final norm, lm_head, argmax / top-k / logits */
};
int qn_fwd_record_seg(qn_fwd *f, qn_cmd *c, const struct qn_fwd_call *call, enum qn_fwd_seg seg, int layer);

/* Workgroups (tiles) of a matmul pipeline (spec 1 BM, 2 BN: matmul.comp and its tensor-core twins) for an M x N output */
static inline uint64_t qn_mm_tiles(const qn_pipe *p, uint32_t M, uint32_t N)
{
    uint32_t bm = qn_pipe_spec(p, 1), bn = qn_pipe_spec(p, 2);
    return (uint64_t)((M + bm - 1) / bm) * ((N + bn - 1) / bn);
}
/* Run the tensor-core matmul pipeline p (a matmul_cm_f32 variant) on a case whose exact result is known
 * (cm_check.c): 0 if every output matches, else a negative code with a message naming the first wrong one. */
int qn_cm_selfcheck(qn_vk *v, const qn_pipe *p);
/* Run the tensor-core prefill attention cm (attn_prefill_cm or its emulated twin) and attn_prefill fma on one random
 * case of head shape Hq, Hkv, D (attn_cm_check.c): 0 if they agree within the f16 rounding, else a negative code
 * with a message naming the first output that does not. */
int qn_attn_cm_selfcheck(qn_vk *v, const qn_pipe *cm, const qn_pipe *fma, uint32_t Hq, uint32_t Hkv, uint32_t D);
/* The same for the grouped-expert tensor-core kernels (moe_qgrouped_cm.comp, Q8_0 variants, the layout
 * qn_cm_moe_spec picks, fragment width cn). */
int qn_cm_moe_selfcheck(qn_vk *v, uint32_t cn);
/* Its case on given pipelines (test hook: gate_up made with its up part at byte 4352 of the slot; gu_groups /
 * dn_groups row blocks of workgroups cover the 64 gate_up / 64 down output rows of a tile) */
int qn_cm_moe_check_pipes(qn_vk *v, const qn_pipe *gu, const qn_pipe *dn, uint64_t gu_groups, uint64_t dn_groups);
/* moe_qgrouped_cm.comp's spec constants {WG, BK, PART_OFF, CN, BT, NBUF, PSW, TS} (WG x TS invocations; output rows
 * per workgroup: WG / 2 for gate_up, WG for down): qn_cm_moe_parse reads "WG,BK,BT,NBUF[,PSW[,TS]]" (PSW 0 or 1;
 * fields left out and s NULL: 128,32,128,2,1,4) and checks it against the device (-EINVAL with a message);
 * qn_cm_moe_spec takes env QNEXT_CM_MOE_TILE (a warning and the defaults when it is wrong), by default
 * 256,32,128,1,1,2 where the device fits it, else 128,32,128,2,1,4; qn_cm_moe_shared: the variant's shared memory in bytes. */
enum { QN_CM_MOE_NSPEC = 8 };

/* matmul_cm_h's layouts in the f16 path (spec WG, BM, BN, BK, WTM, WTN, NBUF): [0] 128 x 64 tiles of 32 x 32 subgroup
 * tiles; for calls of >= 256 large tiles [1] 128 x 128 of 64 x 32 at BK 64 in one tile buffer where the device fits
 * it (H100 run 113), else [2] 128 x 128 of 64 x 32 at BK 32 double-buffered (run 63), which would beside a larger [1]
 * take the calls with >= 256 of its own tiles but fewer large ones (run 91: 512 tokens); test_qmatmul checks all
 * three */
enum { QN_MM_H_NSPEC = 7 };
extern const uint32_t qn_mm_h_spec[3][QN_MM_H_NSPEC];
/* Does layout spec fit device c (WG = 32 (BM / WTM) (BN / WTN), multiples of 16, invocations, shared memory)? */
bool qn_mm_h_fits(const struct qn_caps *c, const uint32_t *spec);
int qn_cm_moe_parse(const struct qn_caps *c, const char *s, uint32_t part_off, uint32_t spec[QN_CM_MOE_NSPEC]);
void qn_cm_moe_spec(const struct qn_caps *c, uint32_t part_off, uint32_t spec[QN_CM_MOE_NSPEC]);
uint32_t qn_cm_moe_shared(const uint32_t spec[QN_CM_MOE_NSPEC]);
/* Bytes of shared memory of gdn_chunk_state with BV value columns per workgroup (DK_MAX dkmax), and of
 * gdn_chunk_wy_inv with CB columns per block (their headers) */
uint32_t qn_gdn_wy_state_shared(uint32_t dkmax, uint32_t bv);
uint32_t qn_gdn_wy_inv_shared(uint32_t cb);
/* The second grouped-expert layout for calls of few (token, expert) pairs per expert: false when there is none (env
 * QNEXT_CM_MOE_TILE_SMALL=WG,BK,BT,NBUF[,PSW[,TS]], default 256,32,64,1,1,2; "0": none); qn_cm_moe_big_pairs: the pairs per expert (T K / E) at
 * and above which the default layout runs instead (env QNEXT_CM_MOE_BIG_PAIRS, default 60); qn_cm_moe_selfcheck_spec:
 * qn_cm_moe_selfcheck's case in layout spec (its part offset is replaced). */
bool qn_cm_moe_spec_small(const struct qn_caps *c, uint32_t part_off, uint32_t spec[QN_CM_MOE_NSPEC]);
uint32_t qn_cm_moe_big_pairs(void);
int qn_cm_moe_selfcheck_spec(qn_vk *v, const uint32_t spec[QN_CM_MOE_NSPEC]);

#endif
