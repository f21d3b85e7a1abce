/* ref_model.c — Qwen3-Next forward pass in plain C float over the ops of ref_ops.c (spec §8 reads top to bottom
 * in qn_ref_forward). Weights: float32 copies loaded from safetensors, or from a llama.cpp qwen3next GGUF
 * dequantized through qn_q3n_read_f32 (every converter transform undone); state: per session. */
#include "ref_model.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_qwen3next.h"
#include "qn_err.h"
#include "qn_log.h"
#include "ref_ops.h"
#include "safetensors.h"
#include "tensors.h"

struct ref_layer {
    float *in_norm, *post_norm;                                 /* [H] */
    /* Gated DeltaNet */
    float *qkvz, *ba, *conv_w, *dt_bias, *A_log, *gnorm, *out_proj;
    /* gated attention */
    float *q_proj, *k_proj, *v_proj, *o_proj, *q_norm, *k_norm;
    /* MoE */
    float *router;                                              /* [E][H] */
    float **eg, **eu, **ed;                                     /* per expert [I][H], [I][H], [H][I] */
    float *sg, *su, *sd, *sgate;                                /* shared expert, its gate [1][H] */
};

struct qn_ref_model {
    qn_config c;
    float *embed, *norm, *lm_head;
    struct ref_layer *L;
    float *inv_freq;    /* [rot/2] */
    float attn_factor;  /* YaRN mscale, 1 otherwise */
    float **all;        /* every allocation, for freeing */
    int nall, capall;
};

struct ref_state {
    float *conv;        /* linear: [conv_dim][K-1] */
    float *S;           /* linear: [Hv][dk][dv] */
    float *kc, *vc;     /* full: [Hkv][cap][hd] */
};

struct qn_ref_session {
    const qn_ref_model *m;
    qn_ref_opts o;
    struct ref_state *st;
    int64_t pos, cap;
};

/* ---- loading ---- */

static int64_t numel_spec(const qn_tensor_spec *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static int add_bytes(void *user, const qn_tensor_spec *t)
{
    *(uint64_t *)user += (uint64_t)numel_spec(t) * 4u;
    return 0;
}

uint64_t qn_ref_model_bytes(const qn_config *c)
{
    uint64_t b = 0;
    qn_cfg_tensors(c, add_bytes, &b);
    return b;
}

struct loader {
    qn_ref_model *m;
    const qn_st_store *st;
    const qn_q3n *q3n;      /* GGUF source instead of st */
};

static float **weight_slot(qn_ref_model *m, const qn_tensor_spec *t)
{
    const char *n = t->name;
    if (t->layer < 0) return !strcmp(n, "model.embed_tokens.weight") ? &m->embed
                           : !strcmp(n, "model.norm.weight") ? &m->norm : &m->lm_head;
    struct ref_layer *l = &m->L[t->layer];
    const char *s = strchr(n + strlen("model.layers."), '.') + 1; /* after "model.layers.N." */
    if (t->expert >= 0) {
        const char *p = strstr(s, "_proj");
        return p[-2] == 't' ? &l->eg[t->expert] : p[-2] == 'u' ? &l->eu[t->expert] : &l->ed[t->expert];
    }
    static const struct { const char *name; size_t off; } map[] = {
#define F(s, f) { s, offsetof(struct ref_layer, f) }
        F("input_layernorm.weight", in_norm), F("post_attention_layernorm.weight", post_norm),
        F("linear_attn.in_proj_qkvz.weight", qkvz), F("linear_attn.in_proj_ba.weight", ba),
        F("linear_attn.conv1d.weight", conv_w), F("linear_attn.dt_bias", dt_bias), F("linear_attn.A_log", A_log),
        F("linear_attn.norm.weight", gnorm), F("linear_attn.out_proj.weight", out_proj),
        F("self_attn.q_proj.weight", q_proj), F("self_attn.k_proj.weight", k_proj),
        F("self_attn.v_proj.weight", v_proj), F("self_attn.o_proj.weight", o_proj),
        F("self_attn.q_norm.weight", q_norm), F("self_attn.k_norm.weight", k_norm), F("mlp.gate.weight", router),
        F("mlp.shared_expert.gate_proj.weight", sg), F("mlp.shared_expert.up_proj.weight", su),
        F("mlp.shared_expert.down_proj.weight", sd), F("mlp.shared_expert_gate.weight", sgate),
#undef F
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(s, map[i].name)) return (float **)((char *)l + map[i].off);
    return NULL;
}

static float *track(qn_ref_model *m, size_t nfloats)
{
    if (m->nall == m->capall) {
        int cap = m->capall ? m->capall * 2 : 1024;
        float **a = realloc(m->all, sizeof *a * (size_t)cap);
        if (!a) return NULL;
        m->all = a;
        m->capall = cap;
    }
    float *p = malloc(sizeof *p * (nfloats ? nfloats : 1));
    if (p) m->all[m->nall++] = p;
    return p;
}

static int load_one(void *user, const qn_tensor_spec *t)
{
    struct loader *ld = user;
    float **slot = weight_slot(ld->m, t);
    if (!slot) return qn_fail(-EINVAL, "ref: internal: no slot for tensor '%s'", t->name);
    int64_t n = numel_spec(t);
    if (!(*slot = track(ld->m, (size_t)n)))
        return qn_fail(-ENOMEM, "ref: out of memory for tensor '%s' (%lld floats)", t->name, (long long)n);
    if (!ld->q3n) return qn_st_read_f32_dequant(ld->st, t->name, *slot, (size_t)n);
    qn_q3n_src src;
    int rc = qn_q3n_find(ld->q3n, t->name, &src);
    return rc ? rc : qn_q3n_read_f32(ld->q3n, &src, *slot, (uint64_t)n);
}

static int check_ram(const qn_config *c, const char *path)
{
    uint64_t need = qn_ref_model_bytes(c);
    long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    uint64_t avail = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    if (avail && need > avail / 10 * 9)
        return qn_fail(-ENOMEM,
                       "%s: the CPU reference keeps float32 weights: %.2f GiB needed, %.2f GiB of RAM available. "
                       "It is meant for small models; use --backend vulkan for this one",
                       path, need / 1073741824.0, avail / 1073741824.0);
    return 0;
}

static int alloc_layers(qn_ref_model *m)
{
    const qn_config *c = &m->c;
    m->L = calloc((size_t)c->num_layers, sizeof *m->L);
    if (!m->L) return qn_fail(-ENOMEM, "ref: out of memory");
    for (int i = 0; i < c->num_layers; i++) {
        m->L[i].eg = calloc((size_t)c->num_experts * 3, sizeof(float *));
        if (!m->L[i].eg) return qn_fail(-ENOMEM, "ref: out of memory");
        m->L[i].eu = m->L[i].eg + c->num_experts;
        m->L[i].ed = m->L[i].eu + c->num_experts;
    }
    return 0;
}

static int setup_rope(qn_ref_model *m)
{
    const qn_config *c = &m->c;
    int rot = qn_cfg_rot_dim(c);
    if (!(m->inv_freq = track(m, (size_t)rot / 2))) return qn_fail(-ENOMEM, "ref: out of memory");
    int yarn = c->rope_type == QN_ROPE_YARN;
    qn_ref_rope_inv_freq(m->inv_freq, rot, c->rope_theta, yarn ? c->yarn_factor : 1.0, (double)c->yarn_orig_max_pos,
                         c->yarn_beta_fast, c->yarn_beta_slow, c->yarn_truncate);
    m->attn_factor = yarn ? (float)c->rope_attn_factor : 1.0f;
    return 0;
}

/* A file starting with the GGUF magic. */
static int is_gguf(const char *path)
{
    char mag[4] = {0};
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(mag, 1, 4, f) : 0;
    if (f) fclose(f);
    return n == 4 && !memcmp(mag, "GGUF", 4);
}

/* The GGUF branch: config from the qwen3next metadata, every HF tensor dequantized with transforms undone. */
static int load_gguf(qn_ref_model *m, const char *path)
{
    qn_gguf *g = NULL;
    qn_q3n *q = NULL;
    int rc = qn_gguf_open(&g, path);
    if (!rc) rc = qn_q3n_open(&q, g);
    if (!rc) m->c = *qn_q3n_config(q);
    if (!rc) rc = check_ram(&m->c, path);
    if (!rc) rc = alloc_layers(m);
    if (!rc) {
        struct loader ld = { m, NULL, q };
        rc = qn_cfg_tensors(&m->c, load_one, &ld);
    }
    qn_q3n_close(&q);
    qn_gguf_close(&g);
    return rc;
}

int qn_ref_model_load(qn_ref_model **out, const char *path)
{
    *out = NULL;
    qn_ref_model *m = calloc(1, sizeof *m);
    qn_st_store *st = NULL;
    if (!m) return qn_fail(-ENOMEM, "ref: out of memory");
    int gguf = is_gguf(path);
    int rc = gguf ? load_gguf(m, path) : qn_cfg_load(&m->c, path);
    if (!rc && !gguf) rc = check_ram(&m->c, path);
    if (!rc && !gguf) rc = qn_st_open(&st, path);
    if (!rc && !gguf) rc = qn_st_check_model(st, &m->c, 1);
    if (!rc && !gguf) rc = alloc_layers(m);
    if (!rc && !gguf) {
        struct loader ld = { m, st, NULL };
        rc = qn_cfg_tensors(&m->c, load_one, &ld);
    }
    if (!rc && m->c.tie_word_embeddings) m->lm_head = m->embed;
    if (!rc) rc = setup_rope(m);
    qn_st_close(&st);
    if (rc) {
        qn_ref_model_free(&m);
        return rc;
    }
    *out = m;
    return 0;
}

void qn_ref_model_free(qn_ref_model **pm)
{
    qn_ref_model *m = *pm;
    if (!m) return;
    for (int i = 0; i < m->nall; i++) free(m->all[i]);
    free(m->all);
    if (m->L)
        for (int i = 0; i < m->c.num_layers; i++) free(m->L[i].eg);
    free(m->L);
    free(m);
    *pm = NULL;
}

const qn_config *qn_ref_model_config(const qn_ref_model *m) { return &m->c; }

/* ---- sessions ---- */

void qn_ref_opts_default(qn_ref_opts *o)
{
    o->gdn_chunk = 64;
    o->router_bf16 = 0;
}

int qn_ref_session_new(qn_ref_session **out, const qn_ref_model *m, const qn_ref_opts *opts)
{
    const qn_config *c = &m->c;
    *out = NULL;
    qn_ref_session *s = calloc(1, sizeof *s);
    if (!s || !(s->st = calloc((size_t)c->num_layers, sizeof *s->st))) {
        free(s);
        return qn_fail(-ENOMEM, "ref: out of memory for a session");
    }
    s->m = m;
    if (opts) s->o = *opts;
    else qn_ref_opts_default(&s->o);
    for (int i = 0; i < c->num_layers; i++) {
        if (qn_cfg_is_full(c, i)) continue;
        s->st[i].conv = calloc((size_t)qn_cfg_conv_dim(c) * (size_t)(c->conv_kernel > 1 ? c->conv_kernel - 1 : 1), 4);
        s->st[i].S = calloc((size_t)c->lin_v_heads * (size_t)c->lin_k_dim * (size_t)c->lin_v_dim, 4);
        if (!s->st[i].conv || !s->st[i].S) {
            qn_ref_session_free(&s);
            return qn_fail(-ENOMEM, "ref: out of memory for the delta-rule state");
        }
    }
    *out = s;
    return 0;
}

void qn_ref_session_free(qn_ref_session **ps)
{
    qn_ref_session *s = *ps;
    if (!s) return;
    for (int i = 0; i < s->m->c.num_layers; i++) {
        free(s->st[i].conv);
        free(s->st[i].S);
        free(s->st[i].kc);
        free(s->st[i].vc);
    }
    free(s->st);
    free(s);
    *ps = NULL;
}

void qn_ref_session_reset(qn_ref_session *s)
{
    const qn_config *c = &s->m->c;
    for (int i = 0; i < c->num_layers; i++) {
        if (qn_cfg_is_full(c, i)) continue;
        memset(s->st[i].conv, 0, (size_t)qn_cfg_conv_dim(c) * (size_t)(c->conv_kernel > 1 ? c->conv_kernel - 1 : 1) * 4);
        memset(s->st[i].S, 0, (size_t)c->lin_v_heads * (size_t)c->lin_k_dim * (size_t)c->lin_v_dim * 4);
    }
    s->pos = 0; /* the KV cache rows beyond pos are simply overwritten */
}

int64_t qn_ref_session_pos(const qn_ref_session *s) { return s->pos; }

/* Grow every attention layer's KV cache to hold `need` positions (layout [Hkv][cap][hd]). */
static int kv_reserve(qn_ref_session *s, int64_t need)
{
    const qn_config *c = &s->m->c;
    if (need <= s->cap) return 0;
    int64_t cap = s->cap ? s->cap : 64;
    while (cap < need) cap *= 2;
    size_t hd = (size_t)c->head_dim, rows = (size_t)c->num_kv_heads;
    for (int i = 0; i < c->num_layers; i++) {
        if (!qn_cfg_is_full(c, i)) continue;
        float **pp[2] = { &s->st[i].kc, &s->st[i].vc };
        for (int k = 0; k < 2; k++) {
            float *n = calloc(rows * (size_t)cap * hd, 4);
            if (!n) return qn_fail(-ENOMEM, "ref: out of memory for a KV cache of %lld positions", (long long)cap);
            for (size_t h = 0; *pp[k] && h < rows; h++)
                memcpy(n + h * (size_t)cap * hd, *pp[k] + h * (size_t)s->cap * hd, (size_t)s->pos * hd * 4);
            free(*pp[k]);
            *pp[k] = n;
        }
    }
    s->cap = cap;
    return 0;
}

/* ---- the layers, over n tokens ---- */

/* Gated DeltaNet (§2-§4): x [n][H] -> y [n][H]. */
static int gdn_layer(qn_ref_session *s, int li, const float *x, int n, float *y)
{
    const qn_config *c = &s->m->c;
    const struct ref_layer *L = &s->m->L[li];
    struct ref_state *st = &s->st[li];
    int H = c->hidden_size, Hk = c->lin_k_heads, Hv = c->lin_v_heads, dk = c->lin_k_dim, dv = c->lin_v_dim;
    int KD = qn_cfg_key_dim(c), VD = qn_cfg_value_dim(c), CD = qn_cfg_conv_dim(c), QZ = qn_cfg_qkvz_dim(c);
    size_t N = (size_t)n;
    int chunk = s->o.gdn_chunk;
    int64_t scr = chunk > 0 && n > 1 ? qn_ref_gdn_chunked_scratch(chunk, dk, dv) : 0;
    float *buf = malloc(sizeof(float) * (N * (size_t)(QZ + 2 * Hv + 2 * CD + VD + VD + 2 * KD + 4 * Hv) + (size_t)scr));
    if (!buf) return qn_fail(-ENOMEM, "ref: out of memory in layer %d", li);
    float *qkvz = buf, *ba = qkvz + N * QZ, *mixed = ba + N * 2 * Hv, *conv = mixed + N * CD;
    float *z = conv + N * CD, *o = z + N * VD, *q = o + N * VD, *k = q + N * KD;
    float *b = k + N * KD, *a = b + N * Hv, *g = a + N * Hv, *beta = g + N * Hv, *scratch = beta + N * Hv;

    qn_ref_matmul(qkvz, x, L->qkvz, n, QZ, H);                          /* [n][2KD + 2VD], interleaved per key head */
    qn_ref_matmul(ba, x, L->ba, n, 2 * Hv, H);                          /* [n][2Hv] */
    for (int t = 0; t < n; t++)
        qn_ref_gdn_split(mixed + t * CD, z + t * VD, b + t * Hv, a + t * Hv, qkvz + t * QZ, ba + t * 2 * Hv, Hk, Hv, dk, dv);
    qn_ref_conv1d_seq(conv, st->conv, mixed, L->conv_w, n, CD, c->conv_kernel); /* silu(causal conv) [n][CD] */
    float *v = mixed;                                                   /* reuse: [n][VD] */
    for (int t = 0; t < n; t++) {
        memcpy(q + t * KD, conv + t * CD, sizeof(float) * (size_t)KD);
        memcpy(k + t * KD, conv + t * CD + KD, sizeof(float) * (size_t)KD);
        memmove(v + t * VD, conv + t * CD + 2 * KD, sizeof(float) * (size_t)VD);
        qn_ref_gdn_qk_norm(q + t * KD, k + t * KD, Hk, dk);                 /* L2 norm; q * dk^-0.5 */
        qn_ref_gdn_gates(g + t * Hv, beta + t * Hv, a + t * Hv, b + t * Hv, L->A_log, L->dt_bias, Hv);
    }
    if (scr) qn_ref_gdn_chunked(o, st->S, q, k, v, g, beta, n, Hk, Hv, dk, dv, chunk, scratch);
    else qn_ref_gdn_recurrent(o, st->S, q, k, v, g, beta, n, Hk, Hv, dk, dv); /* o [n][Hv][dv] */
    for (int t = 0; t < n; t++)
        for (int h = 0; h < Hv; h++)                                    /* gated RMSNorm per value head */
            qn_ref_rmsnorm_gated(o + t * VD + h * dv, o + t * VD + h * dv, z + t * VD + h * dv, L->gnorm, dv,
                                 c->rms_norm_eps);
    qn_ref_matmul(y, o, L->out_proj, n, H, VD);
    free(buf);
    return 0;
}

/* Gated full attention (§6): x [n][H] -> y [n][H]; positions s->pos .. s->pos + n - 1. */
static int attn_layer(qn_ref_session *s, int li, const float *x, int n, float *y)
{
    const qn_config *c = &s->m->c;
    const struct ref_layer *L = &s->m->L[li];
    struct ref_state *st = &s->st[li];
    int H = c->hidden_size, Hq = c->num_heads, Hkv = c->num_kv_heads, hd = c->head_dim, rot = qn_cfg_rot_dim(c);
    int QD = qn_cfg_q_dim(c), KV = qn_cfg_kv_dim(c);
    size_t N = (size_t)n, cap = (size_t)s->cap;
    float *buf = malloc(sizeof(float) * (N * (size_t)(2 * QD + 2 * KV + QD + QD) + (size_t)(s->pos + n)));
    if (!buf) return qn_fail(-ENOMEM, "ref: out of memory in layer %d", li);
    float *qg = buf, *kk = qg + N * 2 * QD, *vv = kk + N * KV, *q = vv + N * KV, *att = q + N * QD;
    float *scratch = att + N * QD;

    qn_ref_matmul(qg, x, L->q_proj, n, 2 * QD, H);                      /* [n][Hq][query hd | gate hd] */
    qn_ref_matmul(kk, x, L->k_proj, n, KV, H);                          /* [n][Hkv][hd] */
    qn_ref_matmul(vv, x, L->v_proj, n, KV, H);
    for (int t = 0; t < n; t++) {
        int64_t pos = s->pos + t;
        for (int h = 0; h < Hq; h++) memcpy(q + (t * Hq + h) * hd, qg + (t * Hq + h) * 2 * hd, sizeof(float) * (size_t)hd);
        qn_ref_rmsnorm_zc_rows(q + t * QD, q + t * QD, L->q_norm, Hq, hd, c->rms_norm_eps);
        qn_ref_rmsnorm_zc_rows(kk + t * KV, kk + t * KV, L->k_norm, Hkv, hd, c->rms_norm_eps);
        qn_ref_rope(q + t * QD, Hq, hd, rot, pos, s->m->inv_freq, s->m->attn_factor);
        qn_ref_rope(kk + t * KV, Hkv, hd, rot, pos, s->m->inv_freq, s->m->attn_factor);
        for (int h = 0; h < Hkv; h++) {                                 /* append to the cache */
            memcpy(st->kc + ((size_t)h * cap + (size_t)pos) * hd, kk + t * KV + h * hd, sizeof(float) * (size_t)hd);
            memcpy(st->vc + ((size_t)h * cap + (size_t)pos) * hd, vv + t * KV + h * hd, sizeof(float) * (size_t)hd);
        }
    }
    float scale = (float)(1.0 / sqrt((double)hd));
    for (int t = 0; t < n; t++) {
        float *at = att + t * QD;
        qn_ref_attn_decode(at, q + t * QD, st->kc, st->vc, (int)(s->pos + t + 1), (int)cap, Hq, Hkv, hd, scale, scratch);
        for (int h = 0; h < Hq; h++)                                    /* output gate: sigmoid(gate) */
            qn_ref_mul_sigmoid(at + h * hd, qg + (t * Hq + h) * 2 * hd + hd, hd);
    }
    qn_ref_matmul(y, att, L->o_proj, n, H, QD);
    free(buf);
    return 0;
}

/* Sparse MoE + shared expert (§7): x [n][H] -> y [n][H]. */
static int moe_layer(qn_ref_session *s, int li, const float *x, int n, float *y)
{
    const qn_config *c = &s->m->c;
    const struct ref_layer *L = &s->m->L[li];
    int H = c->hidden_size, E = c->num_experts, K = c->top_k;
    int I = c->moe_inter > c->shared_inter ? c->moe_inter : c->shared_inter;
    float *buf = malloc(sizeof(float) * (size_t)(E + K + 2 * I + H));
    int *idx = malloc(sizeof(int) * (size_t)K);
    if (!buf || !idx) {
        free(buf);
        free(idx);
        return qn_fail(-ENOMEM, "ref: out of memory in layer %d", li);
    }
    float *logits = buf, *w = logits + E, *scratch = w + K, *e = scratch + 2 * I;
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * H;
        float *yt = y + (size_t)t * H;
        qn_ref_matvec(logits, L->router, xt, E, H);
        qn_ref_router(idx, w, logits, E, K, c->norm_topk_prob, s->o.router_bf16);
        qn_ref_shared_expert(yt, xt, L->sg, L->su, L->sd, L->sgate, H, c->shared_inter, scratch);
        for (int j = 0; j < K; j++) {
            int ex = idx[j];
            qn_ref_expert_glu(e, xt, L->eg[ex], L->eu[ex], L->ed[ex], H, c->moe_inter, scratch);
            qn_ref_axpy(yt, w[j], e, H);
        }
    }
    free(buf);
    free(idx);
    return 0;
}

/* ---- the model (§8) ---- */

int qn_ref_forward(qn_ref_session *s, const int32_t *tokens, int n, float *logits, int all_logits, float *hidden)
{
    const qn_ref_model *m = s->m;
    const qn_config *c = &m->c;
    int H = c->hidden_size, V = c->vocab_size, NL = c->num_layers;
    size_t NH = (size_t)n * (size_t)H;
    if (n < 1) return qn_fail(-EINVAL, "ref: forward over %d tokens", n);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return qn_fail(-ERANGE, "ref: token id %d (position %d) is outside the vocabulary [0, %d)", tokens[t], t, V);
    int rc = kv_reserve(s, s->pos + n);
    float *h = malloc(sizeof(float) * NH * 3);
    if (rc || !h) {
        free(h);
        return rc ? rc : qn_fail(-ENOMEM, "ref: out of memory for %d tokens", n);
    }
    float *a = h + NH, *r = a + NH;
    for (int t = 0; t < n; t++) memcpy(h + (size_t)t * H, m->embed + (size_t)tokens[t] * H, sizeof(float) * (size_t)H);
    if (hidden) memcpy(hidden, h, sizeof(float) * NH);
    for (int i = 0; i < NL && !rc; i++) {
        qn_ref_rmsnorm_zc_rows(a, h, m->L[i].in_norm, n, H, c->rms_norm_eps);      /* input_layernorm */
        rc = qn_cfg_is_full(c, i) ? attn_layer(s, i, a, n, r) : gdn_layer(s, i, a, n, r);
        for (size_t j = 0; j < NH; j++) h[j] += r[j];                               /* residual */
        qn_ref_rmsnorm_zc_rows(a, h, m->L[i].post_norm, n, H, c->rms_norm_eps);    /* post_attention_layernorm */
        if (!rc) rc = moe_layer(s, i, a, n, r);
        for (size_t j = 0; j < NH; j++) h[j] += r[j];                               /* residual */
        if (hidden && i + 1 < NL) memcpy(hidden + (size_t)(i + 1) * NH, h, sizeof(float) * NH);
    }
    if (!rc) {
        qn_ref_rmsnorm_zc_rows(h, h, m->norm, n, H, c->rms_norm_eps);               /* model.norm */
        if (hidden) memcpy(hidden + (size_t)NL * NH, h, sizeof(float) * NH);
        if (logits && all_logits) qn_ref_matmul(logits, h, m->lm_head, n, V, H);    /* [n][V] */
        else if (logits) qn_ref_matvec(logits, m->lm_head, h + (size_t)(n - 1) * H, V, H);
        s->pos += n;
    }
    free(h);
    return rc;
}
