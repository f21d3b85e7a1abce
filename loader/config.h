/* config.h — the qwen3_next model configuration (Hugging Face config.json) as a plain struct.
 *
 * Reads both the hub's legacy form (rope_theta, rope_scaling {rope_type|type, factor, ...},
 * partial_rotary_factor, full_attention_interval) and the newer transformers form (rope_parameters,
 * layer_types). Writes the legacy form (qn_cfg_write), used by `qnext synth`. */
#ifndef QN_CONFIG_H
#define QN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QN_CFG_MAX_LAYERS 512
#define QN_CFG_MAX_EOS 8

enum qn_layer_type { QN_LAYER_LINEAR = 0, QN_LAYER_FULL = 1 }; /* Gated DeltaNet / gated full attention */
enum qn_rope_type { QN_ROPE_DEFAULT = 0, QN_ROPE_YARN = 1 };

typedef struct qn_config {
    /* trunk */
    int hidden_size;              /* 2048 */
    int num_layers;               /* num_hidden_layers: 48 */
    int vocab_size;               /* 151936 */
    float rms_norm_eps;           /* 1e-6 */
    bool tie_word_embeddings;     /* false: separate lm_head */
    int64_t max_position_embeddings; /* 262144 */
    /* gated full attention */
    int num_heads;                /* num_attention_heads: 16 */
    int num_kv_heads;             /* num_key_value_heads: 2 */
    int head_dim;                 /* 256 */
    /* Gated DeltaNet */
    int lin_k_heads;              /* linear_num_key_heads: 16 */
    int lin_v_heads;              /* linear_num_value_heads: 32 */
    int lin_k_dim;                /* linear_key_head_dim: 128 */
    int lin_v_dim;                /* linear_value_head_dim: 128 */
    int conv_kernel;              /* linear_conv_kernel_dim: 4 */
    /* MoE */
    int num_experts;              /* 512 */
    int top_k;                    /* num_experts_per_tok: 10 */
    int moe_inter;                /* moe_intermediate_size: 512 */
    int shared_inter;             /* shared_expert_intermediate_size: 512 */
    int intermediate_size;        /* dense MLP size (unused: every layer is MoE), kept for round trips */
    bool norm_topk_prob;          /* renormalise the top-k weights */
    /* RoPE */
    double rope_theta;            /* 1e7 */
    double partial_rotary_factor; /* 0.25 */
    enum qn_rope_type rope_type;
    double yarn_factor;           /* YaRN only: factor (4) */
    int64_t yarn_orig_max_pos;    /* YaRN only: original_max_position_embeddings */
    double yarn_beta_fast;        /* 32 */
    double yarn_beta_slow;        /* 1 */
    bool yarn_truncate;           /* true */
    double rope_attn_factor;      /* resolved attention factor (mscale): 1 without YaRN */
    /* layers */
    int full_attention_interval;  /* 4 (informational when layer_types was given) */
    uint8_t layer_types[QN_CFG_MAX_LAYERS]; /* enum qn_layer_type per layer */
    /* tokens */
    int bos_token_id;             /* -1 when absent */
    int eos_token_ids[QN_CFG_MAX_EOS];
    int n_eos;
} qn_config;

/* Zero c, then the defaults config.json leaves out (transformers' Qwen3NextConfig: eps 1e-6, 32768 positions,
 * rotary factor 0.25, full attention every 4th layer, normalised top-k, plain RoPE, no BOS). */
void qn_cfg_defaults(qn_config *c);
/* Load `path` (a config.json file, or a folder holding one). Messages name the file and the field. */
int qn_cfg_load(qn_config *c, const char *path);
/* Parse config JSON text of `len` bytes; `name` is used in messages (usually the file path). */
int qn_cfg_parse(qn_config *c, const char *json, size_t len, const char *name);
/* Check sizes and their relations (heads divide, rot dim even ...); `name` for messages. */
int qn_cfg_validate(const qn_config *c, const char *name);
/* Write `c` as config.json (hub legacy form). `path` is the file to create. */
int qn_cfg_write(const qn_config *c, const char *path);
/* The same as malloc'd text (free() it); NULL on out-of-memory. */
char *qn_cfg_to_json(const qn_config *c);
/* The real Qwen3-Next-80B-A3B(-Instruct) values. */
void qn_config_default_80b(qn_config *c);

/* Derived sizes. */
static inline int qn_cfg_key_dim(const qn_config *c) { return c->lin_k_heads * c->lin_k_dim; }
static inline int qn_cfg_value_dim(const qn_config *c) { return c->lin_v_heads * c->lin_v_dim; }
static inline int qn_cfg_conv_dim(const qn_config *c) { return 2 * qn_cfg_key_dim(c) + qn_cfg_value_dim(c); }
static inline int qn_cfg_qkvz_dim(const qn_config *c) { return 2 * qn_cfg_key_dim(c) + 2 * qn_cfg_value_dim(c); }
static inline int qn_cfg_ba_dim(const qn_config *c) { return 2 * c->lin_v_heads; }
static inline int qn_cfg_q_dim(const qn_config *c) { return c->num_heads * c->head_dim; }   /* attention output */
static inline int qn_cfg_kv_dim(const qn_config *c) { return c->num_kv_heads * c->head_dim; }
/* rotary dims per head: int(head_dim * partial_rotary_factor) (64) */
int qn_cfg_rot_dim(const qn_config *c);
static inline bool qn_cfg_is_full(const qn_config *c, int layer) { return c->layer_types[layer] == QN_LAYER_FULL; }
int qn_cfg_count_full(const qn_config *c);

#endif
