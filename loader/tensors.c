/* tensors.c — enumerate the tensors of a qwen3_next checkpoint (spec §1) and check a store against them. */
#include "tensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "safetensors.h"

struct emit {
    int (*fn)(void *user, const qn_tensor_spec *t);
    void *user;
    int layer, expert;
};

static int emit(struct emit *e, int64_t d0, int64_t d1, int64_t d2, const char *fmt, ...) QN_PRINTF(5, 6);

/* d1 / d2 = 0 mean "fewer dims". */
static int emit(struct emit *e, int64_t d0, int64_t d1, int64_t d2, const char *fmt, ...)
{
    qn_tensor_spec t;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t.name, sizeof t.name, fmt, ap);
    va_end(ap);
    t.ndim = d2 ? 3 : d1 ? 2 : 1;
    t.shape[0] = d0;
    t.shape[1] = d1;
    t.shape[2] = d2;
    t.layer = e->layer;
    t.expert = e->expert;
    return e->fn(e->user, &t);
}

#define EMIT(...) do { int rc_ = emit(e, __VA_ARGS__); if (rc_) return rc_; } while (0)

static int linear_attn(struct emit *e, const qn_config *c, int i)
{
    const char *p = "model.layers";
    int H = c->hidden_size;
    EMIT(qn_cfg_qkvz_dim(c), H, 0, "%s.%d.linear_attn.in_proj_qkvz.weight", p, i);
    EMIT(qn_cfg_ba_dim(c), H, 0, "%s.%d.linear_attn.in_proj_ba.weight", p, i);
    EMIT(qn_cfg_conv_dim(c), 1, c->conv_kernel, "%s.%d.linear_attn.conv1d.weight", p, i);
    EMIT(c->lin_v_heads, 0, 0, "%s.%d.linear_attn.dt_bias", p, i);
    EMIT(c->lin_v_heads, 0, 0, "%s.%d.linear_attn.A_log", p, i);
    EMIT(c->lin_v_dim, 0, 0, "%s.%d.linear_attn.norm.weight", p, i);
    EMIT(H, qn_cfg_value_dim(c), 0, "%s.%d.linear_attn.out_proj.weight", p, i);
    return 0;
}

static int full_attn(struct emit *e, const qn_config *c, int i)
{
    const char *p = "model.layers";
    int H = c->hidden_size;
    EMIT(2 * qn_cfg_q_dim(c), H, 0, "%s.%d.self_attn.q_proj.weight", p, i);
    EMIT(qn_cfg_kv_dim(c), H, 0, "%s.%d.self_attn.k_proj.weight", p, i);
    EMIT(qn_cfg_kv_dim(c), H, 0, "%s.%d.self_attn.v_proj.weight", p, i);
    EMIT(H, qn_cfg_q_dim(c), 0, "%s.%d.self_attn.o_proj.weight", p, i);
    EMIT(c->head_dim, 0, 0, "%s.%d.self_attn.q_norm.weight", p, i);
    EMIT(c->head_dim, 0, 0, "%s.%d.self_attn.k_norm.weight", p, i);
    return 0;
}

static int moe(struct emit *e, const qn_config *c, int i)
{
    const char *p = "model.layers";
    int H = c->hidden_size, I = c->moe_inter, S = c->shared_inter;
    EMIT(c->num_experts, H, 0, "%s.%d.mlp.gate.weight", p, i);
    for (int x = 0; x < c->num_experts; x++) {
        e->expert = x;
        EMIT(I, H, 0, "%s.%d.mlp.experts.%d.gate_proj.weight", p, i, x);
        EMIT(I, H, 0, "%s.%d.mlp.experts.%d.up_proj.weight", p, i, x);
        EMIT(H, I, 0, "%s.%d.mlp.experts.%d.down_proj.weight", p, i, x);
    }
    e->expert = -1;
    EMIT(S, H, 0, "%s.%d.mlp.shared_expert.gate_proj.weight", p, i);
    EMIT(S, H, 0, "%s.%d.mlp.shared_expert.up_proj.weight", p, i);
    EMIT(H, S, 0, "%s.%d.mlp.shared_expert.down_proj.weight", p, i);
    EMIT(1, H, 0, "%s.%d.mlp.shared_expert_gate.weight", p, i);
    return 0;
}

int qn_cfg_tensors(const qn_config *c, int (*fn)(void *user, const qn_tensor_spec *t), void *user)
{
    struct emit st = { fn, user, -1, -1 }, *e = &st;
    int H = c->hidden_size;
    EMIT(c->vocab_size, H, 0, "model.embed_tokens.weight");
    EMIT(H, 0, 0, "model.norm.weight");
    if (!c->tie_word_embeddings) EMIT(c->vocab_size, H, 0, "lm_head.weight");
    for (int i = 0; i < c->num_layers; i++) {
        e->layer = i;
        EMIT(H, 0, 0, "model.layers.%d.input_layernorm.weight", i);
        EMIT(H, 0, 0, "model.layers.%d.post_attention_layernorm.weight", i);
        int rc = qn_cfg_is_full(c, i) ? full_attn(e, c, i) : linear_attn(e, c, i);
        if (rc) return rc;
        if ((rc = moe(e, c, i))) return rc;
    }
    return 0;
}

static int count_one(void *user, const qn_tensor_spec *t)
{
    (void)t;
    ++*(int64_t *)user;
    return 0;
}

int64_t qn_cfg_tensor_count(const qn_config *c)
{
    int64_t n = 0;
    qn_cfg_tensors(c, count_one, &n);
    return n;
}

/* ---- checking a store ---- */

struct check {
    const qn_st_store *s;
    unsigned char *seen; /* per store tensor */
};

static int check_one(void *user, const qn_tensor_spec *want)
{
    struct check *k = user;
    const qn_st_tensor *t = qn_st_find(k->s, want->name);
    const char *f0 = qn_st_file_path(k->s, 0);
    if (!t) return qn_fail(QN_E_FORMAT, "%s: tensor '%s' is missing", f0, want->name);
    const char *f = qn_st_file_path(k->s, t->file);
    k->seen[t - qn_st_at(k->s, 0)] = 1;
    int ok = t->ndim == want->ndim;
    for (int d = 0; ok && d < want->ndim; d++) ok = t->shape[d] == want->shape[d];
    if (!ok) {
        char got[96] = "", exp[96] = "";
        for (int d = 0; d < t->ndim && d < 4; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        for (int d = 0; d < want->ndim; d++)
            snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%lld", d ? ", " : "", (long long)want->shape[d]);
        return qn_fail(QN_E_FORMAT, "%s: tensor '%s' (at byte offset %llu) has shape [%s], the config needs [%s]", f,
                       want->name, (unsigned long long)t->offset, got, exp);
    }
    if (t->dtype != QN_DT_F32 && t->dtype != QN_DT_F16 && t->dtype != QN_DT_BF16 && t->dtype != QN_DT_F8_E4M3)
        return qn_fail(QN_E_UNSUPPORTED, "%s: tensor '%s' has dtype %s (expected BF16, F16, F32 or F8_E4M3)", f,
                       want->name, qn_dtype_name(t->dtype));
    return 0;
}

static int known_extra(const qn_st_store *s, const char *name)
{
    if (!strncmp(name, "mtp.", 4)) return 1; /* the MTP module: recognised, ignored (spec §9) */
    size_t n = strlen(name);
    if (n > 10 && !strcmp(name + n - 10, "_scale_inv")) { /* FP8 block scales of a present weight */
        char base[1024];
        snprintf(base, sizeof base, "%.*s", (int)(n - 10), name);
        return qn_st_find(s, base) != NULL;
    }
    return 0;
}

int qn_st_check_model(const qn_st_store *s, const qn_config *c, int allow_extra)
{
    struct check k = { s, calloc((size_t)qn_st_count(s) + 1, 1) };
    if (!k.seen) return qn_fail(-ENOMEM, "out of memory");
    int rc = qn_cfg_tensors(c, check_one, &k);
    for (int i = 0; !rc && i < qn_st_count(s); i++) {
        const qn_st_tensor *t = qn_st_at(s, i);
        if (k.seen[i] || known_extra(s, t->name)) continue;
        if (!allow_extra)
            rc = qn_fail(QN_E_FORMAT, "%s: tensor '%s' is not part of a qwen3_next model with this config",
                         qn_st_file_path(s, t->file), t->name);
    }
    free(k.seen);
    return rc;
}
