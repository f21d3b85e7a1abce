/* gguf_qwen3next.c — map a llama.cpp `qwen3next` GGUF onto Hugging Face tensor names and config.
 *
 * Converter facts used here (ggml-org/llama.cpp conversion/qwen.py Qwen3NextModel, src/models/qwen3next.cpp,
 * src/llama-arch.cpp; details and citations in docs/gguf-qwen3next.md):
 *   - every "*norm.weight" except linear_attn.norm is stored as 1 + w;
 *   - A_log is stored as ssm_a = -exp(A_log); dt_bias is ssm_dt.bias; conv1d [C,1,K] is squeezed to ne {K, C};
 *   - in_proj_qkvz is split into attn_qkv (flat [q | k | v], head-major) + attn_gate (flat z); older files
 *     keep it fused and HF-ordered as ssm_in; in_proj_ba is ssm_ba, unchanged (per-key-head [b | a] groups);
 *   - routed experts are stacked 3-D: ffn_{gate,up}_exps ne {H, ff, E}, ffn_down_exps ne {ff, H, E}, or fused
 *     ffn_gate_up_exps ne {H, 2 ff, E} (gate rows first);
 *   - MTP ("nextn") blocks, if present, follow the main layers (block_count includes them). */
#include "gguf_qwen3next.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "quant.h"
#include "tensors.h"

#define ARCH "qwen3next"
#define NOT_MODEL 1   /* internal: the name is not one of the model's tensors */

typedef struct layer_t {
    const qn_gguf_tensor *exps[3];      /* gate, up, down stacked experts (gate/up NULL when fused) */
    const qn_gguf_tensor *gate_up;      /* fused gate_up experts, or NULL */
} layer_t;

struct qn_q3n {
    const qn_gguf *g;
    qn_config cfg;
    int n_nextn, legacy_qkvz;
    layer_t layers[QN_CFG_MAX_LAYERS + 8];
};

/* ---------------------------------------------------------------- metadata -> qn_config */

static int get_u32(const qn_gguf *g, const char *key, int required, uint32_t dflt, uint32_t *out)
{
    char k[128];
    snprintf(k, sizeof k, ARCH ".%s", key);
    *out = dflt;
    if (!qn_gguf_find_kv(g, k)) return required ? qn_fail(QN_E_FORMAT, "%s: required key '%s' is missing",
                                                           qn_gguf_path(g), k) : 0;
    int rc = qn_gguf_get_u32(g, k, out);
    if (!rc && *out > (1u << 30)) rc = qn_fail(QN_E_FORMAT, "%s: %s = %u is out of range", qn_gguf_path(g), k, *out);
    return rc;
}

static int get_f32(const qn_gguf *g, const char *key, float dflt, float *out)
{
    char k[128];
    snprintf(k, sizeof k, ARCH ".%s", key);
    *out = dflt;
    return qn_gguf_find_kv(g, k) ? qn_gguf_get_f32(g, k, out) : 0;
}

static int check_arch(const qn_gguf *g)
{
    const char *arch;
    int rc = qn_gguf_get_str(g, "general.architecture", &arch);
    if (rc) return rc;
    if (strcmp(arch, ARCH))
        return qn_fail(QN_E_UNSUPPORTED, "%s: general.architecture is '%s', expected '" ARCH "'", qn_gguf_path(g), arch);
    return 0;
}

static int read_sizes(const qn_gguf *g, qn_config *c, int *n_nextn)
{
    uint32_t v[16], inner;
    int rc = 0;
    rc = rc ? rc : get_u32(g, "block_count", 1, 0, &v[0]);
    rc = rc ? rc : get_u32(g, "nextn_predict_layers", 0, 0, &v[1]);
    rc = rc ? rc : get_u32(g, "embedding_length", 1, 0, &v[2]);
    rc = rc ? rc : get_u32(g, "attention.head_count", 1, 0, &v[3]);
    rc = rc ? rc : get_u32(g, "attention.head_count_kv", 0, v[3], &v[4]);
    rc = rc ? rc : get_u32(g, "attention.key_length", 0, v[3] ? v[2] / v[3] : 0, &v[5]);
    rc = rc ? rc : get_u32(g, "ssm.conv_kernel", 1, 0, &v[6]);
    rc = rc ? rc : get_u32(g, "ssm.state_size", 1, 0, &v[7]);
    rc = rc ? rc : get_u32(g, "ssm.group_count", 1, 0, &v[8]);
    rc = rc ? rc : get_u32(g, "ssm.time_step_rank", 1, 0, &v[9]);
    rc = rc ? rc : get_u32(g, "ssm.inner_size", 1, 0, &inner);
    rc = rc ? rc : get_u32(g, "expert_count", 1, 0, &v[10]);
    rc = rc ? rc : get_u32(g, "expert_used_count", 1, 0, &v[11]);
    rc = rc ? rc : get_u32(g, "feed_forward_length", 0, 0, &v[12]);
    rc = rc ? rc : get_u32(g, "expert_feed_forward_length", 0, v[11] ? v[12] / v[11] : 0, &v[13]);
    rc = rc ? rc : get_u32(g, "expert_shared_feed_forward_length", 0, v[12], &v[14]);
    rc = rc ? rc : get_u32(g, "full_attention_interval", 0, 4, &v[15]);
    if (rc) return rc;
    if (v[1] >= v[0] || !v[9] || inner % v[9] || !v[15])
        return qn_fail(QN_E_FORMAT, "%s: inconsistent sizes (block_count %u, nextn %u, ssm.inner_size %u, "
                       "ssm.time_step_rank %u, full_attention_interval %u)", qn_gguf_path(g), v[0], v[1], inner, v[9], v[15]);
    *n_nextn = (int)v[1];
    c->num_layers = (int)(v[0] - v[1]);
    c->hidden_size = (int)v[2];
    c->num_heads = (int)v[3];
    c->num_kv_heads = (int)v[4];
    c->head_dim = (int)v[5];
    c->conv_kernel = (int)v[6];
    c->lin_k_dim = (int)v[7];
    c->lin_k_heads = (int)v[8];
    c->lin_v_heads = (int)v[9];
    c->lin_v_dim = (int)(inner / v[9]);
    c->num_experts = (int)v[10];
    c->top_k = (int)v[11];
    c->intermediate_size = (int)v[12];
    c->moe_inter = (int)v[13];
    c->shared_inter = (int)v[14];
    c->full_attention_interval = (int)v[15];
    return 0;
}

static int read_rope(const qn_gguf *g, qn_config *c)
{
    uint32_t rot, ctx, orig;
    float theta, eps;
    int rc = get_u32(g, "rope.dimension_count", 0, (uint32_t)c->head_dim, &rot);
    rc = rc ? rc : get_u32(g, "context_length", 0, 262144, &ctx);
    rc = rc ? rc : get_f32(g, "rope.freq_base", 10000.0f, &theta);
    rc = rc ? rc : get_f32(g, "attention.layer_norm_rms_epsilon", 0, &eps);
    if (rc) return rc;
    if (!qn_gguf_find_kv(g, ARCH ".attention.layer_norm_rms_epsilon"))
        return qn_fail(QN_E_FORMAT, "%s: required key '" ARCH ".attention.layer_norm_rms_epsilon' is missing",
                       qn_gguf_path(g));
    c->rope_theta = theta;
    c->rms_norm_eps = eps;
    c->max_position_embeddings = ctx;
    c->partial_rotary_factor = c->head_dim ? (double)rot / c->head_dim : 0;
    const char *type = NULL;
    if (qn_gguf_find_kv(g, ARCH ".rope.scaling.type") && (rc = qn_gguf_get_str(g, ARCH ".rope.scaling.type", &type)))
        return rc;
    if (!type || !strcmp(type, "none")) return 0;
    if (strcmp(type, "yarn"))
        return qn_fail(QN_E_UNSUPPORTED, "%s: rope scaling '%s' is not supported (only yarn)", qn_gguf_path(g), type);
    float f, bf, bs, af;
    rc = get_f32(g, "rope.scaling.factor", 1.0f, &f);
    rc = rc ? rc : get_u32(g, "rope.scaling.original_context_length", 0, ctx, &orig);
    rc = rc ? rc : get_f32(g, "rope.scaling.yarn_beta_fast", 32.0f, &bf);
    rc = rc ? rc : get_f32(g, "rope.scaling.yarn_beta_slow", 1.0f, &bs);
    rc = rc ? rc : get_f32(g, "rope.scaling.attn_factor", f > 1 ? 0.1f * logf(f) + 1.0f : 1.0f, &af);
    c->rope_type = QN_ROPE_YARN;
    c->yarn_factor = f;
    c->yarn_orig_max_pos = orig;
    c->yarn_beta_fast = bf;
    c->yarn_beta_slow = bs;
    c->rope_attn_factor = af;
    return rc;
}

static void read_tokens(const qn_gguf *g, qn_config *c)
{
    int64_t id;
    if (qn_gguf_find_kv(g, "tokenizer.ggml.bos_token_id") && !qn_gguf_get_i64(g, "tokenizer.ggml.bos_token_id", &id) &&
        id >= 0 && id < INT32_MAX)
        c->bos_token_id = (int)id;
    if (qn_gguf_find_kv(g, "tokenizer.ggml.eos_token_id") && !qn_gguf_get_i64(g, "tokenizer.ggml.eos_token_id", &id) &&
        id >= 0 && id < INT32_MAX)
        c->eos_token_ids[c->n_eos++] = (int)id;
}

static const qn_gguf_tensor *tensor_fmt(const qn_gguf *g, const char *fmt, ...) QN_PRINTF(2, 3);
static const qn_gguf_tensor *tensor_fmt(const qn_gguf *g, const char *fmt, ...)
{
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return qn_gguf_find_tensor(g, name);
}

/* Layer types from the tensors present (the truth), falling back to full_attention_interval. */
static void read_layer_types(const qn_gguf *g, qn_config *c)
{
    for (int i = 0; i < c->num_layers; i++) {
        int full = (i + 1) % c->full_attention_interval == 0;
        if (tensor_fmt(g, "blk.%d.attn_output.weight", i)) full = 1;
        else if (tensor_fmt(g, "blk.%d.ssm_out.weight", i)) full = 0;
        c->layer_types[i] = full ? QN_LAYER_FULL : QN_LAYER_LINEAR;
    }
}

int qn_q3n_read_config(const qn_gguf *g, qn_config *c, int *n_nextn)
{
    qn_cfg_defaults(c); /* sizes, eps, context and rotary fraction are read below; norm_topk_prob stays true
                           (llama.cpp's qwen3next graph always renormalises the top-k weights) */
    int rc = check_arch(g);
    if (!rc) rc = read_sizes(g, c, n_nextn);
    if (!rc && c->num_layers + *n_nextn > QN_CFG_MAX_LAYERS)
        rc = qn_fail(QN_E_FORMAT, "%s: %d layers is more than %d", qn_gguf_path(g), c->num_layers, QN_CFG_MAX_LAYERS);
    if (!rc) rc = read_rope(g, c);
    if (rc) return rc;
    const qn_gguf_tensor *emb = qn_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return qn_fail(QN_E_FORMAT, "%s: tensor 'token_embd.weight' is missing", qn_gguf_path(g));
    if (emb->ne[1] > INT32_MAX) return qn_fail(QN_E_FORMAT, "%s: vocabulary too large", qn_gguf_path(g));
    c->vocab_size = (int)emb->ne[1];
    c->tie_word_embeddings = !qn_gguf_find_tensor(g, "output.weight");
    read_tokens(g, c);
    read_layer_types(g, c);
    return qn_cfg_validate(c, qn_gguf_path(g));
}

/* ---------------------------------------------------------------- tensor checks */

/* Find a tensor (first of up to three names) and check its ne (trailing 1s ignored). */
static int need(const qn_q3n *m, const qn_gguf_tensor **out, int optional, uint64_t ne0, uint64_t ne1, uint64_t ne2,
                const char *const *names, int layer)
{
    char name[96] = "";
    *out = NULL;
    for (int k = 0; k < 3 && names[k] && !*out; k++) {
        snprintf(name, sizeof name, names[k], layer);
        *out = qn_gguf_find_tensor(m->g, name);
    }
    if (!*out) {
        if (optional) return 0;
        snprintf(name, sizeof name, names[0], layer);
        return qn_fail(QN_E_FORMAT, "%s: tensor '%s' is missing", qn_gguf_path(m->g), name);
    }
    const qn_gguf_tensor *t = *out;
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1)
        return qn_fail(QN_E_FORMAT, "%s: tensor '%s' has ne {%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64
                       "}, expected {%" PRIu64 ", %" PRIu64 ", %" PRIu64 "}", qn_gguf_path(m->g), t->name, t->ne[0],
                       t->ne[1], t->ne[2], t->ne[3], ne0, ne1, ne2);
    return 0;
}

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL, NULL})

static int check_experts(qn_q3n *m, int i)
{
    const qn_config *c = &m->cfg;
    uint64_t H = (uint64_t)c->hidden_size, F = (uint64_t)c->moe_inter, E = (uint64_t)c->num_experts;
    layer_t *L = &m->layers[i];
    int rc = need(m, &L->gate_up, 1, H, 2 * F, E, NAMES("blk.%d.ffn_gate_up_exps.weight"), i);
    if (!rc && !L->gate_up) rc = need(m, &L->exps[0], 0, H, F, E, NAMES("blk.%d.ffn_gate_exps.weight"), i);
    if (!rc && !L->gate_up) rc = need(m, &L->exps[1], 0, H, F, E, NAMES("blk.%d.ffn_up_exps.weight"), i);
    if (!rc) rc = need(m, &L->exps[2], 0, F, H, E, NAMES("blk.%d.ffn_down_exps.weight"), i);
    return rc;
}

/* The rest is checked through qn_q3n_find on every HF name (shapes of the sources vs tensors.h). */
typedef struct walk { qn_q3n *m; } walk;

static int check_one(void *user, const qn_tensor_spec *spec)
{
    walk *w = user;
    qn_q3n_src s;
    int rc = qn_q3n_find(w->m, spec->name, &s);
    if (rc) return rc;
    if (s.ndim != spec->ndim || memcmp(s.shape, spec->shape, (size_t)spec->ndim * sizeof s.shape[0]))
        return qn_fail(QN_E_FORMAT, "%s: '%s' resolves to '%s' with a different shape", qn_gguf_path(w->m->g),
                       spec->name, s.t->name);
    return 0;
}

int qn_q3n_open(qn_q3n **out, const qn_gguf *g)
{
    *out = NULL;
    qn_q3n *m = calloc(1, sizeof *m);
    if (!m) return qn_fail(-ENOMEM, "out of memory");
    m->g = g;
    int rc = qn_q3n_read_config(g, &m->cfg, &m->n_nextn);
    for (int i = 0; !rc && i < m->cfg.num_layers; i++)
        if (!qn_cfg_is_full(&m->cfg, i)) {
            m->legacy_qkvz = tensor_fmt(g, "blk.%d.ssm_in.weight", i) != NULL;
            break;
        }
    for (int i = 0; !rc && i < m->cfg.num_layers + m->n_nextn; i++) rc = check_experts(m, i);
    walk w = {m};
    if (!rc) rc = qn_cfg_tensors(&m->cfg, check_one, &w);
    if (rc) {
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void qn_q3n_close(qn_q3n **m)
{
    if (!m) return;
    free(*m);
    *m = NULL;
}

const qn_config *qn_q3n_config(const qn_q3n *m) { return &m->cfg; }
int qn_q3n_n_nextn(const qn_q3n *m) { return m->n_nextn; }
int qn_q3n_qkvz_legacy(const qn_q3n *m) { return m->legacy_qkvz; }

/* ---------------------------------------------------------------- HF name -> source */

static void set_shape(qn_q3n_src *s, int ndim, int64_t a, int64_t b, int64_t c)
{
    s->ndim = ndim;
    s->shape[0] = a;
    s->shape[1] = b;
    s->shape[2] = c;
}

/* A whole tensor as an HF [rows, ne0] matrix (or 1-D when the HF tensor is 1-D). */
static int whole(const qn_q3n *m, qn_q3n_src *s, enum qn_q3n_xform x, int hf_1d, const char *const *names, int layer)
{
    char name[96];
    for (int k = 0; k < 3 && names[k]; k++) {
        snprintf(name, sizeof name, names[k], layer);
        const qn_gguf_tensor *t = qn_gguf_find_tensor(m->g, name);
        if (!t) continue;
        uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        *s = (qn_q3n_src){.t = t, .row0 = 0, .nrows = rows, .xform = x};
        if (hf_1d) set_shape(s, 1, (int64_t)(t->ne[0] * rows), 0, 0);
        else set_shape(s, 2, (int64_t)rows, (int64_t)t->ne[0], 0);
        return 0;
    }
    snprintf(name, sizeof name, names[0], layer);
    return qn_fail(-ENOENT, "%s: tensor '%s' is missing", qn_gguf_path(m->g), name);
}

/* Rows [r0, r0 + n) of a tensor as an HF [n, ne0] matrix. */
static int rows_of(const qn_q3n *m, qn_q3n_src *s, const char *fmt, int layer, uint64_t r0, uint64_t n)
{
    int rc = whole(m, s, QN_Q3N_COPY, 0, NAMES(fmt), layer);
    if (rc) return rc;
    if (r0 + n > s->nrows)
        return qn_fail(QN_E_FORMAT, "%s: tensor '%s' has %" PRIu64 " rows, rows [%" PRIu64 ", %" PRIu64 ") requested",
                       qn_gguf_path(m->g), s->t->name, s->nrows, r0, r0 + n);
    s->row0 = r0;
    s->nrows = n;
    set_shape(s, 2, (int64_t)n, (int64_t)s->t->ne[0], 0);
    return 0;
}

static int find_expert(const qn_q3n *m, int layer, int e, const char *proj, qn_q3n_src *s)
{
    const qn_config *c = &m->cfg;
    const layer_t *L = &m->layers[layer];
    uint64_t F = (uint64_t)c->moe_inter;
    int p = !strcmp(proj, "gate_proj") ? 0 : !strcmp(proj, "up_proj") ? 1 : !strcmp(proj, "down_proj") ? 2 : -1;
    if (p < 0 || e < 0 || e >= c->num_experts) return NOT_MODEL;
    const qn_gguf_tensor *t = p == 2 || !L->gate_up ? L->exps[p] : L->gate_up;
    if (!t) return NOT_MODEL;
    uint64_t per = t->ne[1];    /* rows per expert */
    *s = (qn_q3n_src){.t = t, .row0 = (uint64_t)e * per + (p == 1 && L->gate_up ? F : 0),
                      .nrows = p == 2 ? per : F, .xform = QN_Q3N_COPY};
    set_shape(s, 2, (int64_t)s->nrows, (int64_t)t->ne[0], 0);
    return 0;
}

static int find_full_attn(const qn_q3n *m, int i, const char *suf, qn_q3n_src *s)
{
    const qn_config *c = &m->cfg;
    uint64_t q = 2 * (uint64_t)qn_cfg_q_dim(c), kv = (uint64_t)qn_cfg_kv_dim(c);
    int fused = tensor_fmt(m->g, "blk.%d.attn_qkv.weight", i) != NULL;
    if (!strcmp(suf, "self_attn.q_proj.weight"))
        return fused ? rows_of(m, s, "blk.%d.attn_qkv.weight", i, 0, q) : whole(m, s, 0, 0, NAMES("blk.%d.attn_q.weight"), i);
    if (!strcmp(suf, "self_attn.k_proj.weight"))
        return fused ? rows_of(m, s, "blk.%d.attn_qkv.weight", i, q, kv) : whole(m, s, 0, 0, NAMES("blk.%d.attn_k.weight"), i);
    if (!strcmp(suf, "self_attn.v_proj.weight"))
        return fused ? rows_of(m, s, "blk.%d.attn_qkv.weight", i, q + kv, kv)
                     : whole(m, s, 0, 0, NAMES("blk.%d.attn_v.weight"), i);
    if (!strcmp(suf, "self_attn.o_proj.weight")) return whole(m, s, 0, 0, NAMES("blk.%d.attn_output.weight"), i);
    if (!strcmp(suf, "self_attn.q_norm.weight")) return whole(m, s, QN_Q3N_NORM_PLUS1, 1, NAMES("blk.%d.attn_q_norm.weight"), i);
    if (!strcmp(suf, "self_attn.k_norm.weight")) return whole(m, s, QN_Q3N_NORM_PLUS1, 1, NAMES("blk.%d.attn_k_norm.weight"), i);
    return NOT_MODEL;
}

static int find_qkvz(const qn_q3n *m, int i, qn_q3n_src *s)
{
    int rc = whole(m, s, QN_Q3N_COPY, 0, NAMES("blk.%d.ssm_in.weight"), i);
    if (!rc) return 0;
    qn_q3n_src z;
    if ((rc = whole(m, s, QN_Q3N_QKVZ_SPLIT, 0, NAMES("blk.%d.attn_qkv.weight"), i)) ||
        (rc = whole(m, &z, QN_Q3N_COPY, 0, NAMES("blk.%d.attn_gate.weight"), i)))
        return rc;
    if (z.t->ne[0] != s->t->ne[0])
        return qn_fail(QN_E_FORMAT, "%s: attn_qkv and attn_gate of layer %d differ in row length", qn_gguf_path(m->g), i);
    s->t2 = z.t;
    set_shape(s, 2, (int64_t)(s->nrows + z.nrows), (int64_t)s->t->ne[0], 0);
    return 0;
}

static int find_linear_attn(const qn_q3n *m, int i, const char *suf, qn_q3n_src *s)
{
    if (!strcmp(suf, "linear_attn.in_proj_qkvz.weight")) return find_qkvz(m, i, s);
    if (!strcmp(suf, "linear_attn.in_proj_ba.weight"))
        return whole(m, s, 0, 0, NAMES("blk.%d.ssm_ba.weight", "blk.%d.ssm_beta_alpha.weight"), i);
    if (!strcmp(suf, "linear_attn.conv1d.weight")) {
        int rc = whole(m, s, 0, 0, NAMES("blk.%d.ssm_conv1d.weight"), i);
        if (!rc) set_shape(s, 3, s->shape[0], 1, s->shape[1]);
        return rc;
    }
    if (!strcmp(suf, "linear_attn.dt_bias")) return whole(m, s, 0, 1, NAMES("blk.%d.ssm_dt.bias", "blk.%d.ssm_dt"), i);
    if (!strcmp(suf, "linear_attn.A_log")) return whole(m, s, QN_Q3N_NEG_EXP, 1, NAMES("blk.%d.ssm_a"), i);
    if (!strcmp(suf, "linear_attn.norm.weight")) return whole(m, s, 0, 1, NAMES("blk.%d.ssm_norm.weight"), i);
    if (!strcmp(suf, "linear_attn.out_proj.weight")) return whole(m, s, 0, 0, NAMES("blk.%d.ssm_out.weight"), i);
    return NOT_MODEL;
}

static int find_layer(const qn_q3n *m, int i, const char *suf, qn_q3n_src *s)
{
    int e;
    char proj[16];
    int n = 0;
    if (sscanf(suf, "mlp.experts.%d.%15[a-z_].weight%n", &e, proj, &n) == 2 && n && !suf[n])
        return find_expert(m, i, e, proj, s);
    if (!strcmp(suf, "input_layernorm.weight")) return whole(m, s, QN_Q3N_NORM_PLUS1, 1, NAMES("blk.%d.attn_norm.weight"), i);
    if (!strcmp(suf, "post_attention_layernorm.weight"))
        return whole(m, s, QN_Q3N_NORM_PLUS1, 1, NAMES("blk.%d.post_attention_norm.weight"), i);
    if (!strcmp(suf, "mlp.gate.weight")) return whole(m, s, 0, 0, NAMES("blk.%d.ffn_gate_inp.weight"), i);
    if (!strcmp(suf, "mlp.shared_expert.gate_proj.weight")) return whole(m, s, 0, 0, NAMES("blk.%d.ffn_gate_shexp.weight"), i);
    if (!strcmp(suf, "mlp.shared_expert.up_proj.weight")) return whole(m, s, 0, 0, NAMES("blk.%d.ffn_up_shexp.weight"), i);
    if (!strcmp(suf, "mlp.shared_expert.down_proj.weight")) return whole(m, s, 0, 0, NAMES("blk.%d.ffn_down_shexp.weight"), i);
    if (!strcmp(suf, "mlp.shared_expert_gate.weight")) {
        int rc = whole(m, s, 0, 0, NAMES("blk.%d.ffn_gate_inp_shexp.weight"), i);
        if (!rc) set_shape(s, 2, 1, (int64_t)s->t->ne[0] * (int64_t)s->nrows, 0);  /* HF [1, H]; GGUF ne {H} */
        return rc;
    }
    int full = i >= m->cfg.num_layers || qn_cfg_is_full(&m->cfg, i);
    return full ? find_full_attn(m, i, suf, s) : find_linear_attn(m, i, suf, s);
}

static int find_mtp(const qn_q3n *m, const char *suf, qn_q3n_src *s)
{
    int L = m->cfg.num_layers, k, n = 0;
    if (!m->n_nextn) return NOT_MODEL;
    if (sscanf(suf, "layers.%d.%n", &k, &n) == 1 && n && k >= 0 && k < m->n_nextn) return find_layer(m, L + k, suf + n, s);
    if (!strcmp(suf, "fc.weight")) return whole(m, s, 0, 0, NAMES("blk.%d.nextn.eh_proj.weight"), L);
    if (!strcmp(suf, "pre_fc_norm_embedding.weight")) return whole(m, s, QN_Q3N_NORM_PLUS1, 1, NAMES("blk.%d.nextn.enorm.weight"), L);
    if (!strcmp(suf, "pre_fc_norm_hidden.weight")) return whole(m, s, QN_Q3N_NORM_PLUS1, 1, NAMES("blk.%d.nextn.hnorm.weight"), L);
    if (!strcmp(suf, "norm.weight")) return whole(m, s, QN_Q3N_NORM_PLUS1, 1, NAMES("blk.%d.nextn.shared_head_norm.weight"), L);
    return NOT_MODEL;
}

int qn_q3n_find(const qn_q3n *m, const char *hf, qn_q3n_src *s)
{
    int i, n = 0, rc = NOT_MODEL;
    memset(s, 0, sizeof *s);
    if (!strcmp(hf, "model.embed_tokens.weight")) rc = whole(m, s, 0, 0, NAMES("token_embd.weight"), 0);
    else if (!strcmp(hf, "model.norm.weight")) rc = whole(m, s, QN_Q3N_NORM_PLUS1, 1, NAMES("output_norm.weight"), 0);
    else if (!strcmp(hf, "lm_head.weight")) rc = whole(m, s, 0, 0, NAMES("output.weight", "token_embd.weight"), 0);
    else if (!strncmp(hf, "mtp.", 4)) rc = find_mtp(m, hf + 4, s);
    else if (sscanf(hf, "model.layers.%d.%n", &i, &n) == 1 && n && i >= 0 && i < m->cfg.num_layers)
        rc = find_layer(m, i, hf + n, s);
    if (rc == NOT_MODEL) return qn_fail(-ENOENT, "%s: '%s' is not a tensor of this qwen3next model", qn_gguf_path(m->g), hf);
    return rc;
}

/* ---------------------------------------------------------------- reading */

static uint64_t t_rows(const qn_gguf_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

uint64_t qn_q3n_src_bytes(const qn_q3n_src *s)
{
    return s->t->row_bytes * s->nrows + (s->t2 ? s->t2->row_bytes * t_rows(s->t2) : 0);
}

int qn_q3n_qkvz_row(const qn_config *c, uint64_t r, int *part, uint64_t *row)
{
    uint64_t dk = (uint64_t)c->lin_k_dim, hk = (uint64_t)c->lin_k_heads, vg = (uint64_t)(c->lin_v_heads / c->lin_k_heads) *
                                                                                   (uint64_t)c->lin_v_dim;
    uint64_t G = 2 * dk + 2 * vg, g = r / G, p = r % G, key_dim = hk * dk;
    if (!G || g >= hk) return qn_fail(-EINVAL, "in_proj_qkvz row %" PRIu64 " is out of range", r);
    *part = p >= 2 * dk + vg;
    if (p < dk) *row = g * dk + p;                                  /* q of key head g */
    else if (p < 2 * dk) *row = key_dim + g * dk + (p - dk);        /* k of key head g */
    else if (p < 2 * dk + vg) *row = 2 * key_dim + g * vg + (p - 2 * dk);   /* v of value heads g*r .. */
    else *row = g * vg + (p - 2 * dk - vg);                         /* z (attn_gate) */
    return 0;
}

static int read_rows(const qn_q3n *m, const qn_gguf_tensor *t, uint64_t r0, uint64_t n, void *dst)
{
    return qn_gguf_read(m->g, t->offset + r0 * t->row_bytes, dst, (size_t)(n * t->row_bytes));
}

/* Gather HF in_proj_qkvz rows (each `rb` bytes) from the attn_qkv rows at a and the attn_gate rows at b. */
static int gather_qkvz(const qn_q3n *m, const qn_q3n_src *s, const uint8_t *a, const uint8_t *b, size_t rb, uint8_t *dst)
{
    uint64_t n1 = t_rows(s->t), n2 = t_rows(s->t2);
    for (uint64_t r = 0; r < n1 + n2; r++) {
        int part;
        uint64_t row;
        int rc = qn_q3n_qkvz_row(&m->cfg, r, &part, &row);
        if (!rc && row >= (part ? n2 : n1)) rc = qn_fail(QN_E_FORMAT, "'%s': qkvz row %" PRIu64 " out of range", s->t->name, r);
        if (rc) return rc;
        memcpy(dst + r * rb, (part ? b : a) + row * rb, rb);
    }
    return 0;
}

/* Both parts read (and dequantized to f32 when f32 != 0), then rows gathered into HF order. */
static int read_qkvz(const qn_q3n *m, const qn_q3n_src *s, void *dst, int f32)
{
    uint64_t n1 = t_rows(s->t), n2 = t_rows(s->t2), ne0 = s->t->ne[0];
    uint64_t rb1 = s->t->row_bytes, rb2 = s->t2->row_bytes, out_rb = f32 ? ne0 * 4 : rb1;
    uint8_t *raw = malloc((size_t)(n1 * rb1 + n2 * rb2)), *rows = f32 ? malloc((size_t)((n1 + n2) * out_rb)) : raw;
    int rc = raw && rows ? 0 : qn_fail(-ENOMEM, "out of memory reading '%s'", s->t->name);
    if (!rc) rc = read_rows(m, s->t, 0, n1, raw);
    if (!rc) rc = read_rows(m, s->t2, 0, n2, raw + n1 * rb1);
    if (!rc && f32) rc = qn_dequant_row(s->t->type, raw, (float *)rows, n1 * ne0);
    if (!rc && f32) rc = qn_dequant_row(s->t2->type, raw + n1 * rb1, (float *)(rows + n1 * out_rb), n2 * ne0);
    if (!rc) rc = gather_qkvz(m, s, rows, rows + n1 * out_rb, (size_t)out_rb, dst);
    if (rows != raw) free(rows);
    free(raw);
    return rc;
}

int qn_q3n_read_raw(const qn_q3n *m, const qn_q3n_src *s, void *dst, size_t cap)
{
    uint64_t need_bytes = qn_q3n_src_bytes(s);
    if (need_bytes > cap)
        return qn_fail(-EINVAL, "'%s': %" PRIu64 " bytes needed, buffer holds %zu", s->t->name, need_bytes, cap);
    if (s->xform == QN_Q3N_QKVZ_SPLIT && s->t2->type != s->t->type)
        return qn_fail(QN_E_UNSUPPORTED, "%s: '%s' (%s) and '%s' (%s) differ in type: read them separately or use "
                       "qn_q3n_read_f32", qn_gguf_path(m->g), s->t->name, qn_ggml_type_name(s->t->type), s->t2->name,
                       qn_ggml_type_name(s->t2->type));
    if (s->xform == QN_Q3N_QKVZ_SPLIT) return read_qkvz(m, s, dst, 0);
    return read_rows(m, s->t, s->row0, s->nrows, dst);
}

int qn_q3n_read_f32(const qn_q3n *m, const qn_q3n_src *s, float *dst, uint64_t n)
{
    uint64_t elems = (s->nrows + (s->t2 ? t_rows(s->t2) : 0)) * s->t->ne[0];
    if (n != elems)
        return qn_fail(-EINVAL, "'%s': %" PRIu64 " elements, caller expects %" PRIu64, s->t->name, elems, n);
    if (s->xform == QN_Q3N_QKVZ_SPLIT) return read_qkvz(m, s, dst, 1);
    uint64_t bytes = qn_q3n_src_bytes(s);
    void *raw = malloc(bytes ? (size_t)bytes : 1);
    if (!raw) return qn_fail(-ENOMEM, "out of memory reading '%s'", s->t->name);
    int rc = qn_q3n_read_raw(m, s, raw, (size_t)bytes);
    if (!rc) rc = qn_dequant_row(s->t->type, raw, dst, n);
    free(raw);
    for (uint64_t i = 0; !rc && i < n; i++) {
        if (s->xform == QN_Q3N_NORM_PLUS1) dst[i] -= 1.0f;
        else if (s->xform == QN_Q3N_NEG_EXP) {
            if (!(dst[i] < 0)) rc = qn_fail(QN_E_FORMAT, "%s: '%s'[%" PRIu64 "] = %g, but ssm_a = -exp(A_log) must be < 0",
                                            qn_gguf_path(m->g), s->t->name, i, (double)dst[i]);
            else dst[i] = logf(-dst[i]);
        }
    }
    return rc;
}

int qn_q3n_expert_span(const qn_q3n *m, int layer, enum qn_q3n_proj p, int expert, uint32_t align, qn_file_span *out)
{
    static const char *const proj[3] = {"gate_proj", "up_proj", "down_proj"};
    qn_q3n_src s;
    if (layer < 0 || layer >= m->cfg.num_layers + m->n_nextn || (unsigned)p > 2 ||
        (align > 1 && (align & (align - 1))))
        return qn_fail(-EINVAL, "expert span: bad layer %d, projection %d or alignment %u", layer, (int)p, align);
    if (find_expert(m, layer, expert, proj[p], &s))
        return qn_fail(-EINVAL, "expert span: layer %d has no expert %d", layer, expert);
    if (align < 1) align = 1;
    out->off = s.t->offset + s.row0 * s.t->row_bytes;
    out->nbytes = s.nrows * s.t->row_bytes;
    out->dio_off = out->off & ~(uint64_t)(align - 1);
    out->dio_len = ((out->off + out->nbytes + align - 1) & ~(uint64_t)(align - 1)) - out->dio_off;
    out->dio_head = (uint32_t)(out->off - out->dio_off);
    return 0;
}
