/* synth_plan.c — what `qnext synth` writes: the tensor list of a hub checkpoint or of a llama.cpp qwen3next
 * GGUF for a config, each tensor's storage type and value distribution, shards, sizes, and the GGUF metadata.
 *
 * GGUF facts (llama.cpp, see docs/gguf-qwen3next.md): the converter (conversion Qwen3NextModel) writes norms
 * as 1 + w except linear_attn.norm, ssm_a = -exp(A_log), ssm_dt.bias, squeezed conv1d {K, C}, in_proj_qkvz
 * split into attn_qkv (flat q|k|v) + attn_gate (z), in_proj_ba as ssm_ba, experts stacked 3-D; 1-D tensors,
 * norms, ffn_gate_inp and ssm_conv1d stay F32. llama-quantize (src/llama-quant.cpp) then picks each
 * quantizable tensor's type from the file type: output Q6_K; Q4_K_M/Q5_K_M give Q6_K to attn_v/attn_qkv
 * (counted in file order) and ffn_down (by layer) where use_more_bits(i, n); rows that do not fit a
 * 256-block fall back (tensor_type_fallback: Q6_K -> Q8_0, Q4_K -> Q5_0, Q5_K -> Q5_1, then F16 when 32
 * does not divide the row either). Tensors are ordered as
 * llama-quantize writes them: by layer (globals first), then by name. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qn_err.h"
#include "quant.h"
#include "safetensors.h"
#include "synth_int.h"
#include "tensors.h"

/* ---------------------------------------------------------------- file types */

static const struct { const char *name; int ft; uint32_t base; } ftypes[] = {
    {"f32", QN_FT_F32, QN_GGML_F32},       {"f16", QN_FT_F16, QN_GGML_F16},         {"bf16", QN_FT_BF16, QN_GGML_BF16},
    {"q8_0", QN_FT_Q8_0, QN_GGML_Q8_0},    {"q4_0", QN_FT_Q4_0, QN_GGML_Q4_0},      {"q4_k_s", QN_FT_Q4_K_S, QN_GGML_Q4_K},
    {"q4_k_m", QN_FT_Q4_K_M, QN_GGML_Q4_K}, {"q5_k_s", QN_FT_Q5_K_S, QN_GGML_Q5_K}, {"q5_k_m", QN_FT_Q5_K_M, QN_GGML_Q5_K},
    {"q6_k", QN_FT_Q6_K, QN_GGML_Q6_K},
};
#define N_FTYPES ((int)(sizeof ftypes / sizeof ftypes[0]))

int qn_synth_ftype_parse(const char *name)
{
    for (int i = 0; name && i < N_FTYPES; i++)
        if (!strcasecmp(name, ftypes[i].name)) return ftypes[i].ft;
    return -1;
}

static int ftype_index(int ft)
{
    for (int i = 0; i < N_FTYPES; i++)
        if (ftypes[i].ft == ft) return i;
    return -1;
}

const char *qn_synth_ftype_name(int ft) { int i = ftype_index(ft); return i < 0 ? NULL : ftypes[i].name; }

const char *qn_synth_ftype_list(void) { return "f32, f16, bf16, q8_0, q4_0, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k"; }

/* ---------------------------------------------------------------- the tensor list */

static int add(qn_synth_plan *p, int ndim, int64_t d0, int64_t d1, int64_t d2, const char *fmt, ...) QN_PRINTF(6, 7);
static int add(qn_synth_plan *p, int ndim, int64_t d0, int64_t d1, int64_t d2, const char *fmt, ...)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 1024;
        qn_synth_tensor *t = realloc(p->t, (size_t)cap * sizeof *t);
        if (!t) return qn_fail(-ENOMEM, "synth: out of memory for the tensor list");
        p->t = t;
        p->cap = cap;
    }
    qn_synth_tensor *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shape[2] = d2;
    return 0;
}

static int add_spec(void *user, const qn_tensor_spec *s)
{
    return add(user, s->ndim, s->shape[0], s->shape[1], s->shape[2], "%s", s->name);
}

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

static int gguf_linear(qn_synth_plan *p, int i)
{
    const qn_config *c = &p->cfg;
    int64_t H = c->hidden_size, kd = qn_cfg_key_dim(c), vd = qn_cfg_value_dim(c), Hv = c->lin_v_heads;
    TRY(add(p, 2, 2 * kd + vd, H, 0, "blk.%d.attn_qkv.weight", i));
    TRY(add(p, 2, vd, H, 0, "blk.%d.attn_gate.weight", i));
    TRY(add(p, 2, 2 * Hv, H, 0, "blk.%d.ssm_ba.weight", i));
    TRY(add(p, 2, qn_cfg_conv_dim(c), c->conv_kernel, 0, "blk.%d.ssm_conv1d.weight", i));
    TRY(add(p, 1, Hv, 0, 0, "blk.%d.ssm_dt.bias", i));
    TRY(add(p, 1, Hv, 0, 0, "blk.%d.ssm_a", i));
    TRY(add(p, 1, c->lin_v_dim, 0, 0, "blk.%d.ssm_norm.weight", i));
    return add(p, 2, H, vd, 0, "blk.%d.ssm_out.weight", i);
}

static int gguf_full(qn_synth_plan *p, int i)
{
    const qn_config *c = &p->cfg;
    int64_t H = c->hidden_size, q = qn_cfg_q_dim(c), kv = qn_cfg_kv_dim(c);
    TRY(add(p, 2, 2 * q, H, 0, "blk.%d.attn_q.weight", i));
    TRY(add(p, 2, kv, H, 0, "blk.%d.attn_k.weight", i));
    TRY(add(p, 2, kv, H, 0, "blk.%d.attn_v.weight", i));
    TRY(add(p, 2, H, q, 0, "blk.%d.attn_output.weight", i));
    TRY(add(p, 1, c->head_dim, 0, 0, "blk.%d.attn_q_norm.weight", i));
    return add(p, 1, c->head_dim, 0, 0, "blk.%d.attn_k_norm.weight", i);
}

static int gguf_layer(qn_synth_plan *p, int i)
{
    const qn_config *c = &p->cfg;
    int64_t H = c->hidden_size, E = c->num_experts, F = c->moe_inter, S = c->shared_inter;
    TRY(add(p, 1, H, 0, 0, "blk.%d.attn_norm.weight", i));
    TRY(add(p, 1, H, 0, 0, "blk.%d.post_attention_norm.weight", i));
    TRY(qn_cfg_is_full(c, i) ? gguf_full(p, i) : gguf_linear(p, i));
    TRY(add(p, 2, E, H, 0, "blk.%d.ffn_gate_inp.weight", i));
    TRY(add(p, 3, E, F, H, "blk.%d.ffn_gate_exps.weight", i));
    TRY(add(p, 3, E, F, H, "blk.%d.ffn_up_exps.weight", i));
    TRY(add(p, 3, E, H, F, "blk.%d.ffn_down_exps.weight", i));
    TRY(add(p, 1, H, 0, 0, "blk.%d.ffn_gate_inp_shexp.weight", i));
    TRY(add(p, 2, S, H, 0, "blk.%d.ffn_gate_shexp.weight", i));
    TRY(add(p, 2, S, H, 0, "blk.%d.ffn_up_shexp.weight", i));
    return add(p, 2, H, S, 0, "blk.%d.ffn_down_shexp.weight", i);
}

static int layer_of(const char *name)
{
    int l = -1;
    return sscanf(name, "blk.%d.", &l) == 1 ? l : -1;
}

/* llama-quantize's tensor order (llama_model_loader's weight_name_comparer): layer, then name. */
static int by_layer_name(const void *a, const void *b)
{
    const qn_synth_tensor *x = a, *y = b;
    int lx = layer_of(x->name), ly = layer_of(y->name);
    return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x->name, y->name);
}

static int gguf_tensors(qn_synth_plan *p)
{
    const qn_config *c = &p->cfg;
    int64_t H = c->hidden_size, V = c->vocab_size;
    TRY(add(p, 2, V, H, 0, "token_embd.weight"));
    TRY(add(p, 1, H, 0, 0, "output_norm.weight"));
    if (!c->tie_word_embeddings) TRY(add(p, 2, V, H, 0, "output.weight"));
    for (int i = 0; i < c->num_layers; i++) TRY(gguf_layer(p, i));
    qsort(p->t, (size_t)p->n, sizeof *p->t, by_layer_name);
    return 0;
}

/* ---------------------------------------------------------------- value distributions */

static int ends(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static void set_dist(qn_synth_tensor *t, int kind, float mean, float std)
{
    t->dist = (uint8_t)kind;
    t->mean = mean;
    t->std = std;
}

static void dist_hf(qn_synth_tensor *t, const qn_config *c)
{
    float fan = (float)t->shape[t->ndim - 1];
    if (!strcmp(t->name, "model.embed_tokens.weight")) set_dist(t, QN_SD_NORMAL, 0, 1);
    else if (!strcmp(t->name, "lm_head.weight")) set_dist(t, QN_SD_NORMAL, 0, 2.0f / sqrtf((float)c->hidden_size));
    else if (ends(t->name, ".A_log")) set_dist(t, QN_SD_LOG_U, 0, 0);
    else if (ends(t->name, ".dt_bias") || strstr(t->name, ".conv1d.")) set_dist(t, QN_SD_NORMAL, 0, 0.5f);
    else if (t->ndim == 1) set_dist(t, QN_SD_NORMAL, ends(t->name, "linear_attn.norm.weight") ? 1.0f : 0.0f, 0.2f);
    else set_dist(t, QN_SD_NORMAL, 0, 1.0f / sqrtf(fan));
}

/* The same values after the converter's transforms (norms 1 + w, ssm_a = -exp(A_log)). */
static void dist_gguf(qn_synth_tensor *t, const qn_config *c)
{
    float fan = (float)t->shape[t->ndim - 1];
    if (!strcmp(t->name, "token_embd.weight")) set_dist(t, QN_SD_NORMAL, 0, 1);
    else if (!strcmp(t->name, "output.weight")) set_dist(t, QN_SD_NORMAL, 0, 2.0f / sqrtf((float)c->hidden_size));
    else if (ends(t->name, ".ssm_a")) set_dist(t, QN_SD_NEG_U, 0, 0);
    else if (ends(t->name, ".ssm_dt.bias") || ends(t->name, ".ssm_conv1d.weight")) set_dist(t, QN_SD_NORMAL, 0, 0.5f);
    else if (ends(t->name, "_norm.weight")) set_dist(t, QN_SD_NORMAL, 1.0f, 0.2f);
    else set_dist(t, QN_SD_NORMAL, 0, 1.0f / sqrtf(fan));   /* matrices and ffn_gate_inp_shexp {H} */
}

/* ---------------------------------------------------------------- GGUF type mix */

typedef struct mix {
    int ft;
    uint32_t base;
    int n_layer, n_expert, tied;
    int i_wv, n_wv, i_down;
} mix;

/* llama.cpp's tensor_allows_quantization (and the converter's F32 list) for this architecture. */
static int quantizable(const qn_synth_tensor *t)
{
    return t->ndim >= 2 && ends(t->name, "weight") && !strstr(t->name, "_norm.weight") &&
           !strstr(t->name, "ffn_gate_inp.weight") && !strstr(t->name, "ssm_conv1d");
}

static int is_attn_v(const char *n) { return strstr(n, "attn_qkv.weight") || strstr(n, "attn_v.weight"); }

static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static uint32_t blck(uint32_t type) { return qn_ggml_type(type)->blck; }

/* llama.cpp's tensor_type_fallback for the types these mixes produce: rows that do not fit the type's block
 * take Q6_K -> Q8_0, Q4_K -> Q5_0, Q5_K -> Q5_1, and F16 when that block (32) does not fit either. Q8_0 and
 * Q4_0 rows that 32 does not divide: F16, as llama.cpp v0.5.0's llama-quantize and the converter's q8_0 do
 * (newer llama.cpp sources stop with "no tensor type fallback is defined" instead). Verified against the real
 * llama-quantize: tests/peer/llamacpp_quantize.py, docs/gguf-qwen3next.md §5. */
static uint32_t fallback(uint32_t type, int64_t ne0)
{
    if (ne0 % blck(type) == 0) return type;
    uint32_t fb = type == QN_GGML_Q6_K ? QN_GGML_Q8_0 : type == QN_GGML_Q4_K ? QN_GGML_Q5_0
                : type == QN_GGML_Q5_K ? QN_GGML_Q5_1 : QN_GGML_F16;
    return ne0 % blck(fb) ? QN_GGML_F16 : fb;
}

/* llama_tensor_get_type_impl, for the file types listed above and this architecture. */
static uint32_t quant_rule(mix *m, const qn_synth_tensor *t)
{
    const char *n = t->name;
    int64_t ne0 = t->shape[t->ndim - 1];
    uint32_t ty = m->base;
    int ft = m->ft, km = ft == QN_FT_Q4_K_M || ft == QN_FT_Q5_K_M;
    if (!strcmp(n, "output.weight") || (m->tied && !strcmp(n, "token_embd.weight")))
        return ne0 % blck(ty) ? QN_GGML_Q8_0 : ty != QN_GGML_Q8_0 ? QN_GGML_Q6_K : ty;
    if (is_attn_v(n)) {
        if (km && more_bits(m->i_wv, m->n_wv)) ty = QN_GGML_Q6_K;
        else if (ft == QN_FT_Q4_K_S && m->i_wv < 4) ty = QN_GGML_Q5_K;
        if (m->n_expert == 8) ty = QN_GGML_Q8_0;
        m->i_wv++;
    } else if (strstr(n, "attn_k.weight")) {
        if (m->n_expert == 8) ty = QN_GGML_Q8_0;
    } else if (strstr(n, "ffn_down")) {
        int il = m->n_expert > 1 ? layer_of(n) : m->i_down;
        if (km && more_bits(il, m->n_layer)) ty = QN_GGML_Q6_K;
        else if (ft == QN_FT_Q4_K_S && il < m->n_layer / 8) ty = QN_GGML_Q5_K;
        m->i_down++;
    } else if (strstr(n, "attn_output.weight")) {
        if (m->n_expert == 8 && (ft == QN_FT_Q4_K_S || ft == QN_FT_Q4_K_M)) ty = QN_GGML_Q5_K;
    }
    return ty;
}

static void gguf_types(qn_synth_plan *p)
{
    mix m = {.ft = p->opts.ftype, .base = ftypes[ftype_index(p->opts.ftype)].base, .n_layer = p->cfg.num_layers,
             .n_expert = p->cfg.num_experts, .tied = p->cfg.tie_word_embeddings};
    for (int i = 0; i < p->n; i++) m.n_wv += is_attn_v(p->t[i].name) != 0;
    for (int i = 0; i < p->n; i++) {
        qn_synth_tensor *t = &p->t[i];
        int64_t ne0 = t->shape[t->ndim - 1];
        if (!quantizable(t)) t->want = QN_GGML_F32;
        else if (m.ft == QN_FT_F32 || m.ft == QN_FT_F16 || m.ft == QN_FT_BF16) t->want = m.base;
        else if (m.ft == QN_FT_Q8_0) t->want = QN_GGML_Q8_0;   /* the converter's q8_0: F16 where 32 does not fit */
        else t->want = quant_rule(&m, t);
        t->type = fallback(t->want, ne0);
        p->n_fallback += t->type != t->want;
    }
}

/* ---------------------------------------------------------------- sizes and shards */

uint64_t qn_synth_rows(const qn_synth_tensor *t)
{
    uint64_t rows = 1;
    for (int d = 0; d < t->ndim - 1; d++) rows *= (uint64_t)t->shape[d];
    return rows;
}

int qn_synth_gguf_tensor(qn_gguf_writer *w, const qn_synth_tensor *t)
{
    uint64_t ne[sizeof t->shape / sizeof t->shape[0]];
    for (int d = 0; d < t->ndim; d++) ne[d] = (uint64_t)t->shape[t->ndim - 1 - d];
    return qn_gguf_w_tensor(w, t->name, t->type, (uint32_t)t->ndim, ne);
}

static uint64_t tensor_bytes(const qn_synth_tensor *t)
{
    uint64_t rb = 0;
    qn_ggml_row_bytes(t->type, (uint64_t)t->shape[t->ndim - 1], &rb);
    return rb * qn_synth_rows(t);
}

static int set_files(qn_synth_plan *p, int n)
{
    p->files = calloc((size_t)n, sizeof *p->files);
    if (!p->files) return qn_fail(-ENOMEM, "synth: out of memory");
    p->nfiles = n;
    return 0;
}

/* Hub sharding: fill model-0000i-of-0000n.safetensors up to shard_size in tensor order. */
static int shard(qn_synth_plan *p)
{
    int nf = 1;
    uint64_t cur = 0, lim = p->opts.shard_size;
    for (int i = 0; i < p->n; i++) {
        uint64_t b = p->t[i].nbytes;
        if (lim && cur && cur + b > lim) { nf++; cur = 0; }
        p->t[i].file = nf - 1;
        cur += b;
    }
    TRY(set_files(p, nf));
    for (int f = 0; f < nf; f++) {
        if (nf == 1) snprintf(p->files[f], sizeof p->files[f], "model.safetensors");
        else snprintf(p->files[f], sizeof p->files[f], "model-%05d-of-%05d.safetensors", f + 1, nf);
    }
    uint64_t meta = 4096 + 2 * strlen(p->files[0]);   /* config.json + the index's fixed part */
    for (int i = 0; i < p->n; i++) meta += 2 * strlen(p->t[i].name) + 2 * strlen(p->files[0]) + 120;
    p->file_bytes = p->data_bytes + meta + 8u * (uint64_t)nf;
    return 0;
}

static uint64_t gguf_overhead(const qn_synth_plan *p)
{
    uint64_t b = 24 + 4096 + (p->vocab ? p->vocab->meta_bytes : 0) + 32;   /* header, other keys, pad */
    for (int i = 0; i < p->n; i++) b += 8 + strlen(p->t[i].name) + 4 + 8u * (uint64_t)p->t[i].ndim + 12 + 31;
    return b;
}

/* ---------------------------------------------------------------- plan */

static int check_opts(const qn_synth_opts *o)
{
    if (ftype_index(o->ftype) < 0) return qn_fail(-EINVAL, "unknown file type %d", o->ftype);
    if (o->format == QN_SYNTH_SAFETENSORS && o->ftype != QN_FT_F32 && o->ftype != QN_FT_F16 && o->ftype != QN_FT_BF16)
        return qn_fail(-EINVAL, "safetensors holds f32, f16 or bf16, not %s (use --format gguf)",
                       qn_synth_ftype_name(o->ftype));
    if (o->format != QN_SYNTH_SAFETENSORS && o->format != QN_SYNTH_GGUF)
        return qn_fail(-EINVAL, "unknown output format %d", (int)o->format);
    return 0;
}

static int build(qn_synth_plan *p)
{
    int gguf = p->opts.format == QN_SYNTH_GGUF;
    if (gguf) {
        TRY(qn_synth_vocab_make(&p->vocab, p->tok_path, &p->cfg));
        TRY(gguf_tensors(p));
        gguf_types(p);
    } else {
        TRY(qn_cfg_tensors(&p->cfg, add_spec, p));
        uint32_t ty = p->opts.ftype == QN_FT_F32 ? QN_GGML_F32 : p->opts.ftype == QN_FT_F16 ? QN_GGML_F16 : QN_GGML_BF16;
        for (int i = 0; i < p->n; i++) p->t[i].type = p->t[i].want = ty;
    }
    for (int i = 0; i < p->n; i++) {
        qn_synth_tensor *t = &p->t[i];
        if (gguf) dist_gguf(t, &p->cfg);
        else dist_hf(t, &p->cfg);
        t->nbytes = tensor_bytes(t);
        p->data_bytes += t->nbytes;
    }
    if (!gguf) return shard(p);
    TRY(set_files(p, 1));
    p->file_bytes = p->data_bytes + gguf_overhead(p);
    return 0;
}

int qn_synth_plan_make(qn_synth_plan **out, const qn_config *c, const qn_synth_opts *o)
{
    *out = NULL;
    TRY(check_opts(o));
    TRY(qn_cfg_validate(c, "synth config"));
    qn_synth_plan *p = calloc(1, sizeof *p);
    if (!p) return qn_fail(-ENOMEM, "synth: out of memory");
    p->cfg = *c;
    p->opts = *o;
    int rc = 0;
    if (o->tokenizer_json && !(p->tok_path = strdup(o->tokenizer_json))) rc = qn_fail(-ENOMEM, "synth: out of memory");
    p->opts.tokenizer_json = p->tok_path;
    if (!rc) rc = build(p);
    if (rc) {
        qn_synth_plan_free(&p);
        return rc;
    }
    *out = p;
    return 0;
}

void qn_synth_plan_free(qn_synth_plan **pp)
{
    qn_synth_plan *p = *pp;
    if (!p) return;
    qn_synth_vocab_free(&p->vocab);
    free(p->t);
    free(p->files);
    free(p->tok_path);
    free(p);
    *pp = NULL;
}

int qn_synth_plan_count(const qn_synth_plan *p) { return p->n; }
const qn_synth_tensor *qn_synth_plan_at(const qn_synth_plan *p, int i) { return i >= 0 && i < p->n ? &p->t[i] : NULL; }
uint64_t qn_synth_plan_data_bytes(const qn_synth_plan *p) { return p->data_bytes; }
uint64_t qn_synth_plan_file_bytes(const qn_synth_plan *p) { return p->file_bytes; }
int qn_synth_plan_nfiles(const qn_synth_plan *p) { return p->nfiles; }
const char *qn_synth_plan_file_name(const qn_synth_plan *p, int i) { return i >= 0 && i < p->nfiles ? p->files[i] : NULL; }
int qn_synth_plan_fallbacks(const qn_synth_plan *p) { return p->n_fallback; }

const char *qn_synth_fallback_desc(const qn_synth_tensor *t, char *buf, size_t cap)
{
    char ne[80] = "";
    size_t k = 0;
    for (int d = t->ndim - 1; d >= 0 && k < sizeof ne; d--)
        k += (size_t)snprintf(ne + k, sizeof ne - k, "%s%lld", d == t->ndim - 1 ? "" : ", ", (long long)t->shape[d]);
    long long ne0 = (long long)t->shape[t->ndim - 1];
    snprintf(buf, cap, "%s ne {%s}: rows of %lld are not a multiple of %u (%s) -> %s%s", t->name, ne, ne0,
             blck(t->want), qn_ggml_type_name(t->want), qn_ggml_type_name(t->type),
             t->type == QN_GGML_F16 && blck(t->want) > 32 ? " (nor of 32)" : "");
    return buf;
}

const qn_synth_tensor *qn_synth_plan_find(const qn_synth_plan *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->t[i].name, name)) return &p->t[i];
    return NULL;
}

/* ---------------------------------------------------------------- GGUF metadata */

static int meta_rope(qn_gguf_writer *w, const qn_config *c)
{
    int rc = qn_gguf_w_f32(w, "qwen3next.rope.freq_base", (float)c->rope_theta);
    if (!rc) rc = qn_gguf_w_u32(w, "qwen3next.rope.dimension_count", (uint32_t)qn_cfg_rot_dim(c));
    if (rc || c->rope_type != QN_ROPE_YARN) return rc;
    rc = qn_gguf_w_str(w, "qwen3next.rope.scaling.type", "yarn");
    if (!rc) rc = qn_gguf_w_f32(w, "qwen3next.rope.scaling.factor", (float)c->yarn_factor);
    if (!rc) rc = qn_gguf_w_u32(w, "qwen3next.rope.scaling.original_context_length", (uint32_t)c->yarn_orig_max_pos);
    if (!rc) rc = qn_gguf_w_f32(w, "qwen3next.rope.scaling.yarn_beta_fast", (float)c->yarn_beta_fast);
    if (!rc) rc = qn_gguf_w_f32(w, "qwen3next.rope.scaling.yarn_beta_slow", (float)c->yarn_beta_slow);
    return rc;
}

/* The keys llama.cpp's converter writes for Qwen3NextForCausalLM (TextModel, Qwen2MoeModel, Qwen3NextModel). */
int qn_synth_gguf_meta(qn_gguf_writer *w, const qn_synth_plan *p)
{
    const qn_config *c = &p->cfg;
    static const char *const keys[] = {
        "block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
        "attention.head_count_kv", "expert_count", "expert_used_count", "attention.key_length",
        "attention.value_length", "expert_feed_forward_length", "expert_shared_feed_forward_length",
        "ssm.conv_kernel", "ssm.state_size", "ssm.group_count", "ssm.time_step_rank", "ssm.inner_size",
        "full_attention_interval",
    };
    int64_t ctx = c->max_position_embeddings > UINT32_MAX ? UINT32_MAX : c->max_position_embeddings;
    int64_t vals[] = {
        c->num_layers, ctx, c->hidden_size, c->intermediate_size, c->num_heads, c->num_kv_heads, c->num_experts,
        c->top_k, c->head_dim, c->head_dim, c->moe_inter, c->shared_inter, c->conv_kernel, c->lin_k_dim,
        c->lin_k_heads, c->lin_v_heads, qn_cfg_value_dim(c), c->full_attention_interval,
    };
    char name[96], k[96];
    snprintf(name, sizeof name, "Qwen3-Next synthetic (random weights, %d layers, %d experts)", c->num_layers,
             c->num_experts);
    int rc = qn_gguf_w_str(w, "general.architecture", "qwen3next");
    if (!rc) rc = qn_gguf_w_str(w, "general.type", "model");
    if (!rc) rc = qn_gguf_w_str(w, "general.name", p->opts.name ? p->opts.name : name);
    for (size_t i = 0; !rc && i < sizeof keys / sizeof keys[0]; i++) {
        snprintf(k, sizeof k, "qwen3next.%s", keys[i]);
        rc = qn_gguf_w_u32(w, k, (uint32_t)vals[i]);
    }
    if (!rc) rc = qn_gguf_w_f32(w, "qwen3next.attention.layer_norm_rms_epsilon", c->rms_norm_eps);
    if (!rc) rc = meta_rope(w, c);
    if (!rc) rc = qn_gguf_w_u32(w, "general.file_type", (uint32_t)p->opts.ftype);
    if (!rc) rc = qn_gguf_w_u32(w, "general.quantization_version", 2);
    if (!rc) rc = qn_synth_vocab_write(w, p->vocab);
    return rc;
}
