/* test_synth.c — `qnext synth`'s library (loader/synth.h) against outside facts and qnext's own readers.
 *
 *  - plans, nothing written: the real 80B Q4_K_M GGUF has llama.cpp's own count (361 F32 + 409 Q4_K + 73 Q6_K,
 *    45.15 GiB, as llama.cpp reported for the peer benchmark's file) and the use_more_bits layers in Q6_K;
 *    Q8_0 / Q4_K_S / Q5_K_M / Q6_K mixes; 80B safetensors: 74 391 tensors, 2 bytes x 79.67 B params, shards;
 *  - the tiny golden config written as safetensors: qn_st_open + qn_st_check_model, value statistics per kind
 *    (std within 10% of the target over >= 4096 values), determinism (same seed same bytes, other seed not);
 *  - sharded write: index.json valid, loads, and every tensor equals the unsharded write (values do not
 *    depend on the sharding);
 *  - GGUF q8_0 (tiny) and q4_k_m (a K-quant-friendly small config, 8 layers): qn_gguf_open + qn_q3n_open
 *    accept them, the config read back equals the input, every HF tensor read through the mapping is finite
 *    with the right statistics after the inverse transforms, the type of named tensors is llama.cpp's;
 *    tokenizer metadata: placeholder, and the real Qwen3 tokenizer.json when given;
 *  - cancel from the progress callback and a failing path remove everything; the disk-space rule.
 * Usage: test_synth <golden/tiny folder> [tokenizer.json] */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "gguf.h"
#include "gguf_qwen3next.h"
#include "gguf_tok.h"
#include "qn_err.h"
#include "quant.h"
#include "safetensors.h"
#include "synth.h"
#include "tensors.h"
#include "../testutil.h"

static char tmp[256];

static qn_synth_plan *plan(const qn_config *c, qn_synth_format f, int ft, uint64_t shard, const char *tok)
{
    qn_synth_opts o = {.format = f, .ftype = ft, .seed = 7, .shard_size = shard, .tokenizer_json = tok};
    qn_synth_plan *p = NULL;
    int rc = qn_synth_plan_make(&p, c, &o);
    CHECK(!rc, "plan (format %d, type %d): %s", (int)f, ft, qn_errmsg());
    return p;
}

static uint32_t type_of(const qn_synth_plan *p, const char *name)
{
    const qn_synth_tensor *t = qn_synth_plan_find(p, name);
    CHECK(t, "plan lacks %s", name);
    return t ? t->type : 9999;
}

/* the type `got` of tensor `name` is ty (got evaluated once) */
#define TYPE_EQ(got, name, ty)                                                                                     \
    do {                                                                                                           \
        uint32_t got_ = (got);                                                                                     \
        CHECK(got_ == (ty), "%s is %s, expected %s", name, qn_ggml_type_name(got_), qn_ggml_type_name(ty));        \
    } while (0)
#define TYPE_IS(p, name, ty) TYPE_EQ(type_of(p, name), name, ty)

/* ---------------------------------------------------------------- plans of the real model */

static void count_types(const qn_synth_plan *p, int *n)
{
    memset(n, 0, 64 * sizeof *n);
    for (int i = 0; i < qn_synth_plan_count(p); i++) n[qn_synth_plan_at(p, i)->type & 63]++;
}

static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static void test_plan_80b(void)
{
    qn_config c;
    qn_config_default_80b(&c);
    int n[64];
    qn_synth_plan *p = plan(&c, QN_SYNTH_GGUF, QN_FT_Q4_K_M, 0, NULL);
    if (!p) return;
    count_types(p, n);
    CHECK(n[QN_GGML_F32] == 361 && n[QN_GGML_Q4_K] == 409 && n[QN_GGML_Q6_K] == 73 && qn_synth_plan_count(p) == 843,
          "80B Q4_K_M: %d F32 + %d Q4_K + %d Q6_K of %d, llama.cpp has 361 + 409 + 73", n[QN_GGML_F32],
          n[QN_GGML_Q4_K], n[QN_GGML_Q6_K], qn_synth_plan_count(p));
    double gib = (double)qn_synth_plan_data_bytes(p) / (1024.0 * 1024 * 1024);
    printf("80B Q4_K_M plan: %d F32 + %d Q4_K + %d Q6_K, %.3f GiB of data, %.2f GB file\n", n[QN_GGML_F32],
           n[QN_GGML_Q4_K], n[QN_GGML_Q6_K], gib, (double)qn_synth_plan_file_bytes(p) / 1e9);
    CHECK(fabs(gib - 45.15) < 0.006, "80B Q4_K_M data %.4f GiB, llama.cpp reports 45.15 GiB", gib);
    CHECK(qn_synth_plan_fallbacks(p) == 0, "80B needs no fallbacks");
    TYPE_IS(p, "output.weight", QN_GGML_Q6_K);
    TYPE_IS(p, "token_embd.weight", QN_GGML_Q4_K);
    TYPE_IS(p, "output_norm.weight", QN_GGML_F32);
    for (int i = 0; i < 48; i++) {
        char a[64], d[64], s[64];
        snprintf(a, sizeof a, (i + 1) % 4 ? "blk.%d.attn_qkv.weight" : "blk.%d.attn_v.weight", i);
        snprintf(d, sizeof d, "blk.%d.ffn_down_exps.weight", i);
        snprintf(s, sizeof s, "blk.%d.ffn_down_shexp.weight", i);
        uint32_t want = more_bits(i, 48) ? QN_GGML_Q6_K : QN_GGML_Q4_K;
        TYPE_IS(p, a, want);
        TYPE_IS(p, d, want);
        TYPE_IS(p, s, want);
    }
    TYPE_IS(p, "blk.8.attn_qkv.weight", QN_GGML_Q6_K);    /* (8 - 6) % 3 == 2 */
    TYPE_IS(p, "blk.9.attn_qkv.weight", QN_GGML_Q4_K);
    TYPE_IS(p, "blk.0.attn_gate.weight", QN_GGML_Q4_K);
    TYPE_IS(p, "blk.0.ssm_ba.weight", QN_GGML_Q4_K);
    TYPE_IS(p, "blk.0.ssm_out.weight", QN_GGML_Q4_K);
    TYPE_IS(p, "blk.0.ffn_gate_exps.weight", QN_GGML_Q4_K);
    TYPE_IS(p, "blk.3.attn_output.weight", QN_GGML_Q4_K);
    TYPE_IS(p, "blk.3.attn_k.weight", QN_GGML_Q4_K);
    TYPE_IS(p, "blk.0.ffn_gate_inp.weight", QN_GGML_F32);
    TYPE_IS(p, "blk.0.ffn_gate_inp_shexp.weight", QN_GGML_F32);
    TYPE_IS(p, "blk.0.ssm_conv1d.weight", QN_GGML_F32);
    TYPE_IS(p, "blk.0.ssm_a", QN_GGML_F32);
    TYPE_IS(p, "blk.0.ssm_dt.bias", QN_GGML_F32);
    /* llama-quantize's order: globals, then by layer (numerically), then by name */
    CHECK(!strcmp(qn_synth_plan_at(p, 0)->name, "output.weight") &&
          !strcmp(qn_synth_plan_at(p, 3)->name, "blk.0.attn_gate.weight") &&
          !strcmp(qn_synth_plan_at(p, qn_synth_plan_count(p) - 1)->name, "blk.47.post_attention_norm.weight"),
          "order: %s, %s ... %s", qn_synth_plan_at(p, 0)->name, qn_synth_plan_at(p, 3)->name,
          qn_synth_plan_at(p, qn_synth_plan_count(p) - 1)->name);
    qn_synth_plan_free(&p);

    p = plan(&c, QN_SYNTH_GGUF, QN_FT_Q8_0, 0, NULL);
    count_types(p, n);
    CHECK(n[QN_GGML_F32] == 361 && n[QN_GGML_Q8_0] == 482, "80B Q8_0: %d F32 + %d Q8_0", n[QN_GGML_F32], n[QN_GGML_Q8_0]);
    qn_synth_plan_free(&p);
    p = plan(&c, QN_SYNTH_GGUF, QN_FT_Q6_K, 0, NULL);
    count_types(p, n);
    CHECK(n[QN_GGML_F32] == 361 && n[QN_GGML_Q6_K] == 482, "80B Q6_K: %d F32 + %d Q6_K", n[QN_GGML_F32], n[QN_GGML_Q6_K]);
    qn_synth_plan_free(&p);
    p = plan(&c, QN_SYNTH_GGUF, QN_FT_Q4_K_S, 0, NULL);   /* attn_v-like i < 4 and ffn_down layers < 6: Q5_K */
    count_types(p, n);
    CHECK(n[QN_GGML_Q5_K] == 4 + 12 && n[QN_GGML_Q6_K] == 1, "80B Q4_K_S: %d Q5_K, %d Q6_K", n[QN_GGML_Q5_K], n[QN_GGML_Q6_K]);
    qn_synth_plan_free(&p);
    p = plan(&c, QN_SYNTH_GGUF, QN_FT_Q5_K_M, 0, NULL);
    count_types(p, n);
    CHECK(n[QN_GGML_Q6_K] == 73 && n[QN_GGML_Q5_K] == 409, "80B Q5_K_M: %d Q6_K, %d Q5_K", n[QN_GGML_Q6_K], n[QN_GGML_Q5_K]);
    qn_synth_plan_free(&p);

    p = plan(&c, QN_SYNTH_SAFETENSORS, QN_FT_BF16, 5ull << 30, NULL);
    uint64_t params = 0;
    for (int i = 0; i < qn_synth_plan_count(p); i++) {
        const qn_synth_tensor *t = qn_synth_plan_at(p, i);
        uint64_t k = 1;
        for (int d = 0; d < t->ndim; d++) k *= (uint64_t)t->shape[d];
        params += k;
    }
    CHECK(qn_synth_plan_count(p) == 74391 && qn_synth_plan_count(p) == qn_cfg_tensor_count(&c), "80B: %d tensors",
          qn_synth_plan_count(p));
    CHECK(fabs((double)params / 1e9 - 79.67) < 0.01 && qn_synth_plan_data_bytes(p) == 2 * params,
          "80B: %.3f B params (spec 79.67), %llu bytes", (double)params / 1e9, (unsigned long long)qn_synth_plan_data_bytes(p));
    int nf = qn_synth_plan_nfiles(p);
    printf("80B bf16 safetensors plan: %d tensors, %.4f B params, %d shards of <= 5 GiB\n", qn_synth_plan_count(p),
           (double)params / 1e9, nf);
    CHECK(nf == 30 && !strcmp(qn_synth_plan_file_name(p, 0), "model-00001-of-00030.safetensors"),
          "80B bf16 in 5 GiB shards: %d files, first %s", nf, qn_synth_plan_file_name(p, 0));
    qn_synth_plan_free(&p);
}

/* ---------------------------------------------------------------- reading back */

typedef struct stat_acc { double n, sum, sq, min, max; int bad; } stat_acc;

static void acc(stat_acc *s, const float *v, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) { s->bad++; continue; }
        if (!s->n || v[i] < s->min) s->min = v[i];
        if (!s->n || v[i] > s->max) s->max = v[i];
        s->n++;
        s->sum += v[i];
        s->sq += (double)v[i] * v[i];
    }
}

/* HF tensor values against the distribution synth promises (after any inverse transform). */
static void check_values(const char *name, const int64_t *shape, int ndim, const float *v, uint64_t n, int hidden)
{
    stat_acc s = {0};
    acc(&s, v, n);
    CHECK(!s.bad, "%s: %d non-finite values", name, s.bad);
    double mean = s.sum / s.n, sd = sqrt(s.sq / s.n - mean * mean), want_sd, want_mean = 0;
    size_t L = strlen(name);
    if (L > 6 && !strcmp(name + L - 6, ".A_log")) {
        CHECK(s.min >= 0 && s.max <= logf(16.0f) + 1e-3, "%s: A_log outside [0, log 16]: %g..%g", name, s.min, s.max);
        return;
    }
    if (!strcmp(name, "model.embed_tokens.weight")) want_sd = 1;
    else if (!strcmp(name, "lm_head.weight")) want_sd = 2 / sqrt(hidden);
    else if (strstr(name, "dt_bias") || strstr(name, "conv1d")) want_sd = 0.5;
    else if (ndim == 1) { want_sd = 0.2; want_mean = strstr(name, "linear_attn.norm") ? 1 : 0; }
    else want_sd = 1 / sqrt((double)shape[ndim - 1]);
    if (n < 4096) {   /* too few values for a tight statistic: a range check */
        CHECK(fabs(mean - want_mean) < 6 * want_sd && sd < 2 * want_sd, "%s: mean %g sd %g (want %g, %g)", name, mean, sd,
              want_mean, want_sd);
        return;
    }
    CHECK(fabs(sd / want_sd - 1) < 0.1 && fabs(mean - want_mean) < 0.1 * want_sd + 1e-3,
          "%s: mean %g sd %g, want %g and %g", name, mean, sd, want_mean, want_sd);
}

typedef struct st_walk { const qn_st_store *a, *b; int hidden, compared; } st_walk;

static int st_one(void *user, const qn_tensor_spec *t)
{
    st_walk *w = user;
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
    float *x = malloc(n * 4), *y = malloc(n * 4);
    CHECK(!qn_st_read_f32(w->a, t->name, x, n), "read %s: %s", t->name, qn_errmsg());
    check_values(t->name, t->shape, t->ndim, x, n, w->hidden);
    if (w->b) {
        CHECK(!qn_st_read_f32(w->b, t->name, y, n) && !memcmp(x, y, n * 4), "%s differs between the writes", t->name);
        w->compared++;
    }
    free(x);
    free(y);
    return 0;
}

static int write_plan(const qn_config *c, qn_synth_format f, int ft, uint64_t seed, uint64_t shard, const char *out,
                      const char *tok)
{
    qn_synth_opts o = {.format = f, .ftype = ft, .seed = seed, .shard_size = shard, .tokenizer_json = tok};
    qn_synth_plan *p = NULL;
    int rc = qn_synth_plan_make(&p, c, &o);
    if (!rc) rc = qn_synth_write(p, out);
    CHECK(!rc, "write %s: %s", out, qn_errmsg());
    qn_synth_plan_free(&p);
    return rc;
}

static int files_equal(const char *a, const char *b)
{
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    int eq = x && y, ca, cb;
    while (eq && (ca = fgetc(x)) != EOF) eq = ca == (cb = fgetc(y));
    if (eq) eq = fgetc(y) == EOF;
    if (x) fclose(x);
    if (y) fclose(y);
    return eq;
}

static void check_index(const char *dir, const qn_config *c)
{
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "rb");
    char *txt = malloc(1 << 20);
    size_t n = f ? fread(txt, 1, (1 << 20) - 1, f) : 0;
    if (f) fclose(f);
    txt[n] = 0;
    cJSON *j = cJSON_Parse(txt);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "metadata"), "total_size");
    CHECK(cJSON_IsObject(wm) && cJSON_GetArraySize(wm) == qn_cfg_tensor_count(c) && cJSON_IsNumber(ts),
          "index.json: %d entries, total_size %s", cJSON_GetArraySize(wm), cJSON_IsNumber(ts) ? "ok" : "missing");
    cJSON_Delete(j);
    free(txt);
}

static void test_safetensors(const char *tiny)
{
    qn_config c;
    if (qn_cfg_load(&c, tiny)) { CHECK(0, "config: %s", qn_errmsg()); return; }
    char a[300], b[300], s[300], p[400];
    snprintf(a, sizeof a, "%s/a", tmp);
    snprintf(b, sizeof b, "%s/b", tmp);
    snprintf(s, sizeof s, "%s/sharded", tmp);
    if (write_plan(&c, QN_SYNTH_SAFETENSORS, QN_FT_BF16, 1, 0, a, NULL)) return;
    qn_st_store *st = NULL, *sh = NULL;
    CHECK(!qn_st_open(&st, a), "open %s: %s", a, qn_errmsg());
    if (!st) return;
    CHECK(!qn_st_check_model(st, &c, 0), "check_model: %s", qn_errmsg());
    qn_config back;
    CHECK(!qn_cfg_load(&back, a) && back.num_layers == c.num_layers && back.num_experts == c.num_experts &&
          back.hidden_size == c.hidden_size, "config.json round trip");
    /* the same seed gives the same file, another seed another */
    write_plan(&c, QN_SYNTH_SAFETENSORS, QN_FT_BF16, 1, 0, b, NULL);
    snprintf(p, sizeof p, "%s/model.safetensors", a);
    char q[400];
    snprintf(q, sizeof q, "%s/model.safetensors", b);
    CHECK(files_equal(p, q), "same seed, different bytes");
    write_plan(&c, QN_SYNTH_SAFETENSORS, QN_FT_BF16, 2, 0, b, NULL);
    CHECK(!files_equal(p, q), "another seed, same bytes");
    /* sharded: 200 kB shards -> many files; same values as the single file */
    write_plan(&c, QN_SYNTH_SAFETENSORS, QN_FT_BF16, 1, 200000, s, NULL);
    check_index(s, &c);
    CHECK(!qn_st_open(&sh, s) && qn_st_nfiles(sh) > 10, "sharded open: %s (%d files)", qn_errmsg(),
          sh ? qn_st_nfiles(sh) : 0);
    if (sh) CHECK(!qn_st_check_model(sh, &c, 0), "sharded check_model: %s", qn_errmsg());
    st_walk w = {st, sh, c.hidden_size, 0};
    qn_cfg_tensors(&c, st_one, &w);
    CHECK(!sh || w.compared == qn_cfg_tensor_count(&c), "compared %d tensors", w.compared);
    printf("safetensors: %d tensors checked, %d shards equal to the single file\n", w.compared, sh ? qn_st_nfiles(sh) : 0);
    qn_st_close(&st);
    qn_st_close(&sh);
}

/* ---------------------------------------------------------------- gguf */

typedef struct g_walk { const qn_q3n *q; int hidden, n; } g_walk;

static int g_one(void *user, const qn_tensor_spec *t)
{
    g_walk *w = user;
    qn_q3n_src s;
    if (qn_q3n_find(w->q, t->name, &s)) { CHECK(0, "mapping lacks %s: %s", t->name, qn_errmsg()); return 0; }
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
    float *x = malloc(n * 4);
    CHECK(!qn_q3n_read_f32(w->q, &s, x, n), "read %s: %s", t->name, qn_errmsg());
    check_values(t->name, t->shape, t->ndim, x, n, w->hidden);
    free(x);
    w->n++;
    return 0;
}

static void same_config(const qn_config *a, const qn_config *b)
{
#define EQ(f) CHECK(a->f == b->f, "config " #f ": gguf %g vs input %g", (double)a->f, (double)b->f)
    EQ(hidden_size); EQ(num_layers); EQ(vocab_size); EQ(num_heads); EQ(num_kv_heads); EQ(head_dim); EQ(lin_k_heads);
    EQ(lin_v_heads); EQ(lin_k_dim); EQ(lin_v_dim); EQ(conv_kernel); EQ(num_experts); EQ(top_k); EQ(moe_inter);
    EQ(shared_inter); EQ(rope_type); EQ(full_attention_interval); EQ(rms_norm_eps); EQ(tie_word_embeddings);
#undef EQ
    CHECK(qn_cfg_rot_dim(a) == qn_cfg_rot_dim(b), "rot dim");
    CHECK(!memcmp(a->layer_types, b->layer_types, (size_t)b->num_layers), "layer types");
}

/* Open a synthesized GGUF through qnext's reader and mapping; every HF tensor finite with its statistics. */
static qn_gguf *open_gguf(const char *path, const qn_config *c)
{
    qn_gguf *g = NULL;
    qn_q3n *q = NULL;
    CHECK(!qn_gguf_open(&g, path), "gguf open %s: %s", path, qn_errmsg());
    if (!g) return NULL;
    CHECK(!qn_q3n_open(&q, g), "qwen3next mapping refuses %s: %s", path, qn_errmsg());
    if (q) {
        same_config(qn_q3n_config(q), c);
        g_walk w = {q, c->hidden_size, 0};
        qn_cfg_tensors(c, g_one, &w);
        CHECK(w.n == qn_cfg_tensor_count(c), "%d of %lld HF tensors read", w.n, (long long)qn_cfg_tensor_count(c));
        printf("%s: accepted by qn_q3n_open, %d HF tensors read back through the mapping\n", path, w.n);
    }
    qn_q3n_close(&q);
    return g;
}

static uint32_t gtype(const qn_gguf *g, const char *name)
{
    const qn_gguf_tensor *t = qn_gguf_find_tensor(g, name);
    CHECK(t, "gguf lacks %s", name);
    return t ? t->type : 9999;
}

#define GTYPE_IS(g, name, ty) TYPE_EQ(gtype(g, name), name, ty)

static void test_gguf_q8(const char *tiny)
{
    qn_config c;
    char path[300];
    if (qn_cfg_load(&c, tiny)) return;
    snprintf(path, sizeof path, "%s/tiny-q8_0.gguf", tmp);
    if (write_plan(&c, QN_SYNTH_GGUF, QN_FT_Q8_0, 3, 0, path, NULL)) return;
    qn_gguf *g = open_gguf(path, &c);
    if (!g) return;
    GTYPE_IS(g, "token_embd.weight", QN_GGML_Q8_0);
    GTYPE_IS(g, "output.weight", QN_GGML_Q8_0);
    GTYPE_IS(g, "blk.0.attn_qkv.weight", QN_GGML_Q8_0);
    GTYPE_IS(g, "blk.0.ffn_gate_exps.weight", QN_GGML_Q8_0);
    GTYPE_IS(g, "blk.0.ffn_down_exps.weight", QN_GGML_F16);    /* rows of 48: the converter's F16 fallback */
    GTYPE_IS(g, "blk.0.attn_norm.weight", QN_GGML_F32);
    GTYPE_IS(g, "blk.0.ffn_gate_inp.weight", QN_GGML_F32);
    GTYPE_IS(g, "blk.0.ssm_conv1d.weight", QN_GGML_F32);
    GTYPE_IS(g, "blk.3.attn_q_norm.weight", QN_GGML_F32);
    uint32_t ft = 0;
    const char *arch = NULL;
    CHECK(!qn_gguf_get_u32(g, "general.file_type", &ft) && ft == 7, "general.file_type %u", ft);
    CHECK(!qn_gguf_get_str(g, "general.architecture", &arch) && !strcmp(arch, "qwen3next"), "architecture");
    qn_gguf_vocab v;
    CHECK(!qn_gguf_vocab_get(g, &v), "placeholder vocab: %s", qn_errmsg());
    CHECK(v.n_tokens == (uint32_t)c.vocab_size && !strcmp(v.model, "gpt2") && !strcmp(v.pre, "qwen2") &&
          !strcmp(v.tokens[300], "[PAD300]") && v.token_type[300] == 5 && !strcmp(v.tokens[65], "A") &&
          !strcmp(v.tokens[32], "\xc4\xa0"), "placeholder vocab contents");
    qn_gguf_vocab_free(&v);
    qn_gguf_close(&g);
}

static void small_kquant_config(qn_config *c, int vocab)
{
    qn_config_default_80b(c);
    c->num_layers = 8;
    c->hidden_size = 256;
    c->vocab_size = vocab;
    c->num_heads = 4;
    c->num_kv_heads = 2;
    c->head_dim = 64;
    c->lin_k_heads = 2;
    c->lin_v_heads = 4;
    c->lin_k_dim = 64;
    c->lin_v_dim = 64;
    c->num_experts = 16;
    c->top_k = 4;
    c->moe_inter = 256;
    c->shared_inter = 256;
}

static void test_gguf_q4km(const char *tok)
{
    qn_config c;
    char path[300];
    small_kquant_config(&c, tok ? 151936 : 1024);
    snprintf(path, sizeof path, "%s/small-q4_k_m.gguf", tmp);
    if (write_plan(&c, QN_SYNTH_GGUF, QN_FT_Q4_K_M, 4, 0, path, tok)) return;
    qn_gguf *g = open_gguf(path, &c);
    if (!g) return;
    GTYPE_IS(g, "output.weight", QN_GGML_Q6_K);
    GTYPE_IS(g, "token_embd.weight", QN_GGML_Q4_K);
    for (int i = 0; i < 8; i++) {   /* n = 8: use_more_bits layers 0, 3, 6, 7 */
        char a[64], d[64];
        uint32_t want = i == 0 || i == 3 || i == 6 || i == 7 ? QN_GGML_Q6_K : QN_GGML_Q4_K;
        snprintf(a, sizeof a, (i + 1) % 4 ? "blk.%d.attn_qkv.weight" : "blk.%d.attn_v.weight", i);
        snprintf(d, sizeof d, "blk.%d.ffn_down_exps.weight", i);
        GTYPE_IS(g, a, want);
        GTYPE_IS(g, d, want);
    }
    GTYPE_IS(g, "blk.1.attn_gate.weight", QN_GGML_Q4_K);
    GTYPE_IS(g, "blk.1.ffn_up_exps.weight", QN_GGML_Q4_K);
    GTYPE_IS(g, "blk.3.attn_q.weight", QN_GGML_Q4_K);
    GTYPE_IS(g, "blk.1.ssm_a", QN_GGML_F32);
    qn_gguf_vocab v;
    CHECK(!qn_gguf_vocab_get(g, &v), "vocab: %s", qn_errmsg());
    if (tok) {
        CHECK(v.n_tokens == 151936 && v.n_merges == 151387 && !strcmp(v.tokens[151643], "<|endoftext|>") &&
              v.token_type[151643] == 3 && v.eos_id == 151645 && v.pad_id == 151643 && v.bos_id == 151643 &&
              v.add_bos == 0 && v.chat_template && strstr(v.chat_template, "<|im_start|>") &&
              !strcmp(v.tokens[151935], "[PAD151935]") && v.token_type[151935] == 5 && v.token_type[100] == 1,
              "real tokenizer metadata (%u tokens, %u merges)", v.n_tokens, v.n_merges);
        printf("real tokenizer: %u tokens, %u merges, eos %lld, template %zu bytes\n", v.n_tokens, v.n_merges,
               (long long)v.eos_id, v.chat_template ? strlen(v.chat_template) : 0);
    } else {
        CHECK(v.n_tokens == 1024 && v.n_merges == 0, "placeholder of 1024 tokens");
    }
    qn_gguf_vocab_free(&v);
    qn_gguf_close(&g);
}

/* ---------------------------------------------------------------- failures */

static int cancel_after_first(void *user, uint64_t done, uint64_t total)
{
    (void)done; (void)total;
    return ++*(int *)user >= 1;
}

static void test_failures(void)
{
    qn_config c;
    small_kquant_config(&c, 65536);   /* 16.8 M embedding values: several progress calls */
    char out[300], gg[300];
    snprintf(out, sizeof out, "%s/cancelled", tmp);
    snprintf(gg, sizeof gg, "%s/cancelled.gguf", tmp);
    for (int f = 0; f < 2; f++) {
        int calls = 0;
        qn_synth_opts o = {.format = f ? QN_SYNTH_GGUF : QN_SYNTH_SAFETENSORS, .ftype = f ? QN_FT_Q8_0 : QN_FT_F32,
                           .progress = cancel_after_first, .user = &calls};
        qn_synth_plan *p = NULL;
        int rc = qn_synth_plan_make(&p, &c, &o);
        if (!rc) rc = qn_synth_write(p, f ? gg : out);
        CHECK(rc == -ECANCELED && calls == 1, "cancel: rc %d after %d calls (%s)", rc, calls, qn_errmsg());
        CHECK(access(f ? gg : out, F_OK), "%s left behind after a cancel", f ? gg : out);
        qn_synth_plan_free(&p);
    }
    /* a parent that is a file: clear error, nothing created */
    char bad[400];
    snprintf(bad, sizeof bad, "%s/tiny-q8_0.gguf/sub", tmp);
    qn_synth_opts o = {.format = QN_SYNTH_SAFETENSORS, .ftype = QN_FT_BF16};
    qn_synth_plan *p = NULL;
    int rc = qn_synth_plan_make(&p, &c, &o);
    if (!rc) rc = qn_synth_write(p, bad);
    CHECK(rc == -ENOTDIR && strstr(qn_errmsg(), "sub"), "unwritable path: rc %d, '%s'", rc, qn_errmsg());
    qn_synth_plan_free(&p);
    /* options refused with a message */
    o.ftype = QN_FT_Q4_K_M;
    CHECK(qn_synth_plan_make(&p, &c, &o) == -EINVAL && strstr(qn_errmsg(), "gguf"), "q4_k_m safetensors: %s", qn_errmsg());
    o = (qn_synth_opts){.format = QN_SYNTH_GGUF, .ftype = QN_FT_Q8_0, .tokenizer_json = "/nonexistent/tokenizer.json"};
    CHECK(qn_synth_plan_make(&p, &c, &o) < 0 && strstr(qn_errmsg(), "nonexistent"), "missing tokenizer: %s", qn_errmsg());
    c.top_k = 99;
    o.tokenizer_json = NULL;
    CHECK(qn_synth_plan_make(&p, &c, &o) == QN_E_FORMAT, "bad config accepted");
    CHECK(qn_synth_ftype_parse("Q4_K_M") == QN_FT_Q4_K_M && qn_synth_ftype_parse("q3_k") < 0, "ftype names");
    /* the disk-space rule */
    CHECK(qn_synth_space_check(1000000000ull, 2000000000ull, "x") == 0, "space: 1 GB fits in 2 GB");
    CHECK(qn_synth_space_check(1000000000ull, 1000000000ull, "out") == -ENOSPC && strstr(qn_errmsg(), "needs 1.03 GB") &&
          strstr(qn_errmsg(), "has 1.00 GB"), "space: '%s'", qn_errmsg());
    uint64_t avail = 0;
    CHECK(!qn_synth_space_avail(tmp, &avail) && avail > 0, "statvfs");
}

int main(int argc, char **argv)
{
    qn_test_crash_report();
    if (argc < 2) {
        fprintf(stderr, "usage: test_synth <golden/tiny> [tokenizer.json]\n");
        return 2;
    }
    const char *tok = argc > 2 && !access(argv[2], R_OK) ? argv[2] : NULL;
    if (argc > 2 && !tok) printf("note: %s is absent: the real-tokenizer GGUF check is skipped\n", argv[2]);
    snprintf(tmp, sizeof tmp, "/tmp/qn_test_synth_XXXXXX");
    if (!mkdtemp(tmp)) return 2;
    test_plan_80b();
    test_safetensors(argv[1]);
    test_gguf_q8(argv[1]);
    test_gguf_q4km(NULL);
    if (tok) test_gguf_q4km(tok);
    test_failures();
    rm_tmpdir(tmp);
    printf("%s (%d failures)\n", failures ? "FAIL" : "ok", failures);
    return failures ? 1 : 0;
}
