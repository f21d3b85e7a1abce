/* pc_moe.h — push constants of the sparse-MoE family (shaders/moe_*.comp), shared by C and GLSL.
 *
 * One struct serves every MoE kernel (router, gate_up, down, sort, grouped gate_up/down, combine), so the
 * graph fills it once per layer (only `layer` changes between layers) and passes it to each dispatch;
 * a kernel reads only the members it needs. Shapes: T tokens, H hidden, E experts, K experts per token,
 * I routed intermediate, Is shared intermediate.
 *
 * Buffers the kernels share (f32 unless said otherwise):
 *   m     [T, m_stride]        the W_moe product: [router (E) | shared gate (Is) | shared up (Is) | sg logit (1)]
 *   ids   int32 [T, K]         routed experts, sorted by weight descending (ties: lower id first)
 *   w     [T, K]               their weights;  sg [T] = sigmoid(shared_expert_gate logit)
 *   act   [T, K + 1, act_stride] GLU activations: rows 0..K-1 routed (moe_gate_up), row K shared (moe_router)
 *   table int32 [L, E]         slot of (layer, expert), -1 = absent
 *   pools slot s lives in pool s / slots_per_pool at byte (s % slots_per_pool) * slot_bytes and holds
 *         gate [I, H] | up [I, H] | down [H, I] in the weight dtype of the kernel variant.
 * Grouped (prefill) path only:
 *   list  int32 [T*K + T]      (t, k) pairs as t*(K+1)+k, grouped by expert (ascending expert, then token),
 *                              then the shared pseudo-expert E: t*(K+1)+K for every t
 *   tiles int32 [max_tiles, 4] (expert, first list entry, count <= tile_t, 0); expert -1 = unused tile
 *   d     [T, K + 1, H]        unweighted expert outputs, summed by moe_combine
 * max_tiles must be >= QN_MOE_MAX_TILES(T, E, K, tile_t). */
#ifndef QN_PC_MOE_H
#define QN_PC_MOE_H

/* flags */
QN_CONST(QN_MOE_NORM_TOPK, 1u)   /* router: renormalise the K weights to sum 1 (norm_topk_prob) */
QN_CONST(QN_MOE_ROUND_BF16, 2u)  /* router: round the logits to bf16 before softmax / top-k (HF bf16 Linear) */
QN_CONST(QN_MOE_SHARED_Q, 4u)    /* decode down (moe_q*.comp): down_s holds GGUF blocks of the kernel's down type */
QN_CONST(QN_MOE_CHAIN_IN, 8u)    /* decode chain (common/moe_chain.glsl): wait for the producer's count, no barrier */
QN_CONST(QN_MOE_CHAIN_OUT, 16u)  /* decode chain: count this dispatch's workgroups for the consumer */
QN_CONST(QN_MOE_CHAIN_WORDS, 64u) /* the split down's scratch starts with the chain's uint32 words (3 per token), its
                                     partials after them */
QN_CONST(QN_MOE_SHARED_ONLY, 32u) /* grouped down (moe_qgrouped_cm.comp): only the shared pseudo-expert E's tiles
                                     (workgroups from its first tile on: tile_groups = its tile count) */
QN_CONST(QN_MOE_SKIP_SHARED, 64u) /* grouped down: every tile but expert E's (a QN_MOE_SHARED_ONLY dispatch did them) */
QN_CONST(QN_MOE_MAX_POOLS, 8u)   /* pool bindings per kernel */
QN_CONST(QN_MOE_MAX_E, 1024u)    /* router / sort limit on E */
QN_CONST(QN_MOE_MAX_K, 64u)      /* router limit on K */

QN_STRUCT(qn_pc_moe)
    QN_U32 T;
    QN_U32 H;
    QN_U32 I;
    QN_U32 Is;
    QN_U32 E;
    QN_U32 K;
    QN_U32 layer;          /* row of the slot table */
    QN_U32 n_slots;        /* slots in all pools together (bounds check) */
    QN_U32 slots_per_pool;
    QN_U32 slot_bytes;     /* multiple of 16 */
    QN_U32 act_stride;     /* floats per act row, >= max(I, Is); a multiple of 4 keeps the vector path */
    QN_U32 m_stride;       /* floats per row of m (E + 2*Is + 1 for the fused W_moe) */
    QN_U32 flags;          /* QN_MOE_* */
    QN_U32 tile_t;         /* grouped: tokens per tile (= the grouped kernels' token tile) */
    QN_U32 max_tiles;      /* grouped: entries of the tile list */
    QN_U32 tile_groups;    /* grouped: workgroups along the tile list (0 = max_tiles, one tile each) */
    QN_U32 chain_n;        /* decode chain (QN_MOE_CHAIN_IN on the down): the gate_up workgroups it waits for */
QN_STRUCT_END(qn_pc_moe)

/* An upper bound on the tiles of a grouped call: sum_e ceil(cnt_e / tile_t) over the routed experts plus
 * the shared pseudo-expert's ceil(T / tile_t). */
#define QN_MOE_MAX_TILES(T, E, K, tile_t) \
    (((T) * (K) + (tile_t) - 1u) / (tile_t) + ((E) < (T) * (K) ? (E) : (T) * (K)) + ((T) + (tile_t) - 1u) / (tile_t))

#endif
