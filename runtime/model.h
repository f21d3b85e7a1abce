/* model.h — a Qwen3-Next checkpoint resident on the GPU: dense weights in the load-time fused layouts of
 * docs/forward-kernels.md, routed experts in slots, and the per-layer table the forward pass reads.
 *
 * Loading reads config.json + safetensors (loader/), checks every tensor, checks the device-memory budget
 * before allocating, and uploads through staging buffers in large chunks (a progress line on stderr when
 * it takes more than a second). Weights stay in their file dtype (bf16/f16/f32; anything else, or a fused
 * tensor whose parts disagree, becomes f32); small vectors (norms, conv, A_log, dt_bias) become f32.
 *
 * Fusions (rows of one [out, in] matrix, so one matvec/matmul per projection):
 *   GDN   w_in  [2*Hk*dk + 2*Hv*dv + 2*Hv, H] = in_proj_qkvz permuted to flat [q | k | v | z], then
 *               in_proj_ba permuted to [b | a] (spec §2; q, k, v are also conv1d's channel order)
 *   attn  w_qkv [2*Hq*D + 2*Hkv*D, H]        = q_proj de-interleaved to [query | gate], then k_proj, v_proj
 *   MoE   w_moe [E + 2*Is + 1, H]            = [router | shared gate_proj | shared up_proj | shared_expert_gate]
 * Experts: slot = gate [I, H] | up [I, H] | down [H, I] contiguous in one dtype; slots live in up to
 * QN_MODEL_MAX_POOLS pool buffers of at most the device's storage-buffer range; the slot table int32 [L, E]
 * (device copy + host copy) maps (layer, expert) to a slot, -1 = absent. Resident mode gives every expert
 * a slot (slot = layer * E + expert); a slot is one contiguous byte range, so streaming can later fill slots
 * one at a time with a single copy. */
#ifndef QN_MODEL_H
#define QN_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "safetensors.h"
#include "vk.h"

#define QN_MODEL_MAX_POOLS 8 /* expert pool buffers (= the MoE kernels' pool bindings) */

/* One weight tensor on the device: bytes [off, off + bytes) of buf, row-major [rows, cols] of dtype
 * (QN_DT_BF16, QN_DT_F16 or QN_DT_F32). off is a multiple of 256. */
typedef struct qn_wt {
    qn_buf *buf;
    uint64_t off, bytes;
    qn_dtype dtype;
    uint32_t rows, cols;
    uint32_t qtype;   /* 0: plain dtype; else a ggml block type (quant.h; GGUF models): rows of cols / QK blocks */
    /* GGUF: the same rows again as nsub row ranges in their own block types (or f32), for single-token calls
     * (T = 1) while the fused f32 tensor above serves every other call (model_gguf.c); nsub = 0 otherwise */
    struct qn_wsub {
        qn_buf *buf;
        uint64_t bytes;
        uint32_t row0, rows, qtype;   /* qtype 0: f32 */
    } sub[4];
    uint32_t nsub;
} qn_wt;

struct qn_mlayer {
    bool full;                 /* gated full attention (else Gated DeltaNet) */
    qn_wt in_norm, post_norm;  /* f32 [H] */
    /* Gated DeltaNet */
    qn_wt w_in;                /* [2KD + 2VD + 2Hv, H]: q | k | v | z | b | a */
    qn_wt conv_w;              /* f32 [CD, K] */
    qn_wt A_log, dt_bias;      /* f32 [Hv] */
    qn_wt gnorm;               /* f32 [dv] */
    qn_wt w_out;               /* [H, VD] */
    /* gated attention */
    qn_wt w_qkv;               /* [2QD + 2KV, H]: query | gate | k | v */
    qn_wt q_norm, k_norm;      /* f32 [D] */
    qn_wt w_o;                 /* [H, QD] */
    /* MoE */
    qn_wt w_moe;               /* [E + 2Is + 1, H]: router | shared gate | shared up | shared_expert_gate */
    qn_wt shared_down;         /* [H, Is] */
    uint32_t exp_qtype[3];     /* GGUF block experts: ggml types of gate, up, down (0: plain exp_dtype slots) */
};

typedef struct qn_model {
    qn_vk *v;                  /* borrowed */
    qn_config c;
    char path[1024];
    qn_wt embed;               /* [V, H] */
    qn_wt norm;                /* f32 [H] */
    qn_wt lm_head;             /* [V, H] (= embed when tied) */
    qn_wt inv_freq;            /* f32 [rot / 2]: RoPE inverse frequencies (YaRN applied) */
    float attn_factor;         /* YaRN mscale, 1 otherwise */
    struct qn_mlayer *L;       /* [num_layers] */

    /* routed experts */
    qn_dtype exp_dtype;
    uint64_t exp_part_bytes[3];   /* gate, up, down bytes inside a slot (in this order, contiguous) */
    uint64_t slot_bytes;          /* their sum (a multiple of 16) */
    uint32_t n_slots, slots_per_pool, n_pools;
    qn_buf *pools[QN_MODEL_MAX_POOLS];
    uint64_t pool_bytes_max;  /* qn_model_params.pool_bytes_max */
    qn_buf *slot_table;           /* int32 [L, E] on the device */
    int32_t *table;               /* host copy */
    /* GGUF block experts (model_gguf.c; L[l].exp_qtype set): a slot of `pools` holds gate | up (up at byte
     * qexp_up_off), the down parts are slots of d_slot_bytes in `dpools` (same slot numbers; the dpools
     * buffers are also in `arenas`, freed there) */
    uint32_t qexp_up_off;
    uint64_t d_slot_bytes;
    uint32_t d_slots_per_pool, d_n_pools;
    qn_buf *dpools[QN_MODEL_MAX_POOLS];
    struct qn_mst *stream;        /* streaming mode (model_stream.h): fewer slots than experts; NULL = resident */
    bool experts_host;            /* host tier: every expert resident in system memory (QN_MEM_HOST pools), the
                                     GPU reads them over PCIe (qn_model_params.experts_host) */
    struct qn_eh *host_tier;      /* host tier with a VRAM cache in front (expert_host.h; --expert-cache): pools
                                     0..n_pools-1 are VRAM slots, binding 7 a layer's host slab; else NULL */

    /* where the bytes went */
    qn_buf **arenas;              /* dense weights, packed */
    uint32_t n_arenas;
    uint64_t dense_bytes, expert_bytes;
    double load_seconds;
} qn_model;

struct qn_model_params {
    uint64_t reserve_bytes;   /* device memory to leave free (board profile's reserve); 0 = none */
    uint64_t expert_cache;    /* --expert-cache: >= the experts' bytes = every expert resident; below that the
                                 experts stream from the model files into that many bytes of slots; 0 = resident
                                 when they fit the device budget and the pool bindings, else the largest cache
                                 that fits */
    int io_mode;              /* streaming reads: enum qn_io_mode (stream.h), 0 = auto */
    int prefetch;             /* streaming: slots for guessed next-layer experts read ahead (0 = off) */
    int progress;             /* 1: progress line on stderr for loads over a second, 0: never, -1: if stderr is a tty */
    uint64_t pool_bytes_max;  /* tests: cap one expert pool buffer below the device's limit (0 = no cap) */
    bool experts_host;        /* --experts host: every routed expert resident in pinned system memory (QN_MEM_HOST
                                 pools laid out as resident mode's, slot = l * E + e), read by the GPU over PCIe;
                                 the slot table and dense weights stay in VRAM. Default: env QNEXT_EXPERTS=host */
    /* streaming's slot cache (expert_usage.h, docs/streaming.md) */
    const char *expert_policy;   /* --expert-policy lru|lfu: replacement policy (NULL = lru) */
    int expert_hot;              /* --expert-hot N: pin the N most used experts of expert_hot_from (0 = none) */
    const char *expert_hot_from; /* --expert-hot-from FILE: usage counts written by an earlier --expert-trace */
    const char *expert_trace;    /* --expert-trace FILE: write per (layer, expert) router choices when freed */
};
void qn_model_default_params(struct qn_model_params *p);

/* Load the checkpoint at `path` (folder with config.json + model.safetensors or its index) onto device v. */
int qn_model_load(qn_model **out, qn_vk *v, const char *path, const struct qn_model_params *p);
void qn_model_free(qn_model **m); /* safe on NULL; sets *m = NULL; does not close v */

/* Device bytes qn_model_load would allocate for config c with weights of `st` (dense, experts). */
int qn_model_plan_bytes(const qn_config *c, const qn_st_store *st, uint64_t *dense, uint64_t *experts);

/* Row of the checkpoint that fused GDN in-projection row r comes from: *which = 0 (in_proj_qkvz) or
 * 1 (in_proj_ba); returns the source row. Exposed for tests. */
int qn_model_gdn_src_row(const qn_config *c, int r, int *which);

/* Bytes of weights one decoded token reads with its experts resident (model_bytes.c): the embedding row, the
 * final norm and head, every layer's tensors as the decode kernels bind them (a GGUF mixed-type fusion's parts,
 * the shared down's blocks where qn_model_shared_down_q) and top_k routed experts of the layer's own types. */
uint64_t qn_model_decode_bytes(const qn_model *m);
/* Does the decode read layer L's shared-expert down in its GGUF blocks (its sub, in the routed down's type)? */
bool qn_model_shared_down_q(const struct qn_mlayer *L);

/* Bytes one expert pool buffer may hold: the device's binding and allocation limits, 32-bit offsets (the MoE
 * kernels address a pool with them) and qn_model_params.pool_bytes_max. */
uint64_t qn_model_pool_cap(const qn_model *m);

/* Pool buffer and byte offset of slot s. */
static inline qn_buf *qn_model_slot(const qn_model *m, uint32_t s, uint64_t *off)
{
    *off = (uint64_t)(s % m->slots_per_pool) * m->slot_bytes;
    return m->pools[s / m->slots_per_pool];
}

#endif
