/* test_gguf_qwen3next.c — the qwen3next GGUF mapping against a real (tiny, random-weight) HF checkpoint.
 *
 * A small converter below writes the golden "tiny" model as a llama.cpp qwen3next GGUF, doing what
 * llama.cpp's converter does (conversion/qwen.py Qwen3NextModel, written here as forward loops, independent
 * of the library's inverse mapping): norms + 1 (not linear_attn.norm), ssm_a = -exp(A_log), conv1d squeezed,
 * in_proj_qkvz split into attn_qkv (flat q|k|v) + attn_gate (flat z) or kept fused as ssm_in, experts
 * stacked (optionally gate_up fused), full-attention q/k/v separate or fused. Then every HF tensor read
 * back through qn_q3n_* must equal the checkpoint (exactly, or after the same row-wise quantization), the
 * config must equal config.json, expert byte spans must match, and broken files must be refused.
 * Usage: test_gguf_qwen3next <golden/tiny folder> */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "gguf.h"
#include "gguf_qwen3next.h"
#include "gguf_write.h"
#include "qn_err.h"
#include "qn_rng.h"
#include "quant.h"
#include "safetensors.h"
#include "tensors.h"
#include "../testutil.h"

/* ---------------------------------------------------------------- the mini converter */

typedef struct mk_opts {
    int legacy_qkvz, fuse_gate_up, fuse_attn_qkv;
    uint32_t mat_type;          /* weights whose rows fit its block; F16 otherwise */
    uint32_t gate_type;         /* attn_gate type when non-zero (llama.cpp Q4_K_M mixes Q6_K qkv + Q4_K gate) */
    const char *arch;           /* general.architecture, default qwen3next */
    const char *drop;           /* a GGUF tensor to leave out */
    int bad_router;             /* write ffn_gate_inp of layer 0 with one expert too few */
    int vocab;                  /* add a placeholder gpt2 vocabulary (token i = "t<i>") so llama.cpp loads it */
    uint32_t embd_type;         /* token_embd / output type when non-zero */
} mk_opts;

typedef struct mk {
    const qn_config *c;
    const qn_st_store *st;
    const mk_opts *o;
    qn_gguf_writer *w;
    int pass;                   /* 0: declare tensors, 1: write data */
    int rc;
} mk;

static float *hf(mk *m, const char *fmt, int a, int b, uint64_t *n_out)
{
    char name[160];
    snprintf(name, sizeof name, fmt, a, b);
    const qn_st_tensor *t = qn_st_find(m->st, name);
    if (!t) { m->rc = qn_fail(-ENOENT, "checkpoint lacks %s", name); return NULL; }
    uint64_t n = (uint64_t)qn_st_numel(t);
    float *d = malloc(n * 4);
    if (qn_st_read_f32(m->st, name, d, n)) { m->rc = -EIO; free(d); return NULL; }
    if (n_out) *n_out = n;
    return d;
}

/* Declare or write one tensor (data: float32, ne[0]-long rows). Takes ownership of data. */
static void put(mk *m, const char *name, uint32_t nd, uint64_t ne0, uint64_t ne1, uint64_t ne2, uint32_t type, float *data)
{
    if (m->rc || (m->o->drop && !strcmp(name, m->o->drop))) { free(data); return; }
    uint64_t ne[3] = {ne0, ne1, ne2}, rb, rows = (nd > 1 ? ne1 : 1) * (nd > 2 ? ne2 : 1);
    const qn_ggml_type_info *ti = qn_ggml_type(type);
    if (ne0 % ti->blck) type = QN_GGML_F16;
    if (m->pass == 0) {
        m->rc = qn_gguf_w_tensor(m->w, name, type, nd, ne);
    } else if (data) {
        qn_ggml_row_bytes(type, ne0, &rb);
        uint8_t *q = malloc(rb * rows);
        m->rc = qn_quant_row(type, data, q, ne0 * rows);
        if (!m->rc) m->rc = qn_gguf_w_data(m->w, q, rb * rows);
        free(q);
    }
    free(data);
}

#define LNAME(buf, fmt, i) (snprintf(buf, sizeof buf, fmt, i), buf)

static void add_one(float *d, uint64_t n) { for (uint64_t i = 0; i < n; i++) d[i] += 1.0f; }

static void mk_norm(mk *m, const char *gg, const char *hf_fmt, int i, int plus1)
{
    uint64_t n;
    char name[96];
    float *d = m->pass ? hf(m, hf_fmt, i, 0, &n) : NULL;
    if (d && plus1) add_one(d, n);
    uint64_t len = strstr(hf_fmt, "linear_attn.norm") ? (uint64_t)m->c->lin_v_dim
                 : strstr(hf_fmt, "_norm.weight") && strstr(hf_fmt, "self_attn") ? (uint64_t)m->c->head_dim
                 : (uint64_t)m->c->hidden_size;
    put(m, LNAME(name, gg, i), 1, len, 0, 0, QN_GGML_F32, d);
}

static void mk_mat(mk *m, const char *gg, const char *hf_fmt, int i, uint64_t out, uint64_t in, uint32_t type)
{
    char name[96];
    put(m, LNAME(name, gg, i), 2, in, out, 0, type, m->pass ? hf(m, hf_fmt, i, 0, NULL) : NULL);
}

/* in_proj_qkvz [Hk * (2dk + 2vg), H] -> attn_qkv [q (Hk*dk) | k (Hk*dk) | v (Hk*vg)] + attn_gate [z (Hk*vg)] */
static void mk_qkvz(mk *m, int i)
{
    const qn_config *c = m->c;
    uint64_t H = (uint64_t)c->hidden_size, dk = (uint64_t)c->lin_k_dim, hk = (uint64_t)c->lin_k_heads;
    uint64_t vg = (uint64_t)(c->lin_v_heads / c->lin_k_heads) * (uint64_t)c->lin_v_dim, G = 2 * dk + 2 * vg;
    char name[96];
    float *w = m->pass ? hf(m, "model.layers.%d.linear_attn.in_proj_qkvz.weight", i, 0, NULL) : NULL;
    if (m->o->legacy_qkvz) { put(m, LNAME(name, "blk.%d.ssm_in.weight", i), 2, H, hk * G, 0, m->o->mat_type, w); return; }
    float *qkv = w ? malloc(hk * (2 * dk + vg) * H * 4) : NULL, *z = w ? malloc(hk * vg * H * 4) : NULL;
    for (uint64_t g = 0; w && g < hk; g++) {
        const float *grp = w + g * G * H;
        memcpy(qkv + (g * dk) * H, grp, dk * H * 4);                                  /* q */
        memcpy(qkv + (hk * dk + g * dk) * H, grp + dk * H, dk * H * 4);               /* k */
        memcpy(qkv + (2 * hk * dk + g * vg) * H, grp + 2 * dk * H, vg * H * 4);        /* v */
        memcpy(z + (g * vg) * H, grp + (2 * dk + vg) * H, vg * H * 4);                /* z */
    }
    free(w);
    put(m, LNAME(name, "blk.%d.attn_qkv.weight", i), 2, H, hk * (2 * dk + vg), 0, m->o->mat_type, qkv);
    put(m, LNAME(name, "blk.%d.attn_gate.weight", i), 2, H, hk * vg, 0, m->o->gate_type ? m->o->gate_type : m->o->mat_type, z);
}

static void mk_linear(mk *m, int i)
{
    const qn_config *c = m->c;
    uint64_t H = (uint64_t)c->hidden_size, Hv = (uint64_t)c->lin_v_heads, n;
    char name[96];
    mk_qkvz(m, i);
    mk_mat(m, "blk.%d.ssm_ba.weight", "model.layers.%d.linear_attn.in_proj_ba.weight", i, 2 * Hv, H, m->o->mat_type);
    put(m, LNAME(name, "blk.%d.ssm_conv1d.weight", i), 2, (uint64_t)c->conv_kernel, (uint64_t)qn_cfg_conv_dim(c), 0,
        QN_GGML_F32, m->pass ? hf(m, "model.layers.%d.linear_attn.conv1d.weight", i, 0, NULL) : NULL);
    put(m, LNAME(name, "blk.%d.ssm_dt.bias", i), 1, Hv, 0, 0, QN_GGML_F32,
        m->pass ? hf(m, "model.layers.%d.linear_attn.dt_bias", i, 0, NULL) : NULL);
    float *a = m->pass ? hf(m, "model.layers.%d.linear_attn.A_log", i, 0, &n) : NULL;
    for (uint64_t k = 0; a && k < n; k++) a[k] = -expf(a[k]);
    put(m, LNAME(name, "blk.%d.ssm_a", i), 1, Hv, 0, 0, QN_GGML_F32, a);
    mk_norm(m, "blk.%d.ssm_norm.weight", "model.layers.%d.linear_attn.norm.weight", i, 0);
    mk_mat(m, "blk.%d.ssm_out.weight", "model.layers.%d.linear_attn.out_proj.weight", i, H, (uint64_t)qn_cfg_value_dim(c),
           m->o->mat_type);
}

static void mk_full(mk *m, int i)
{
    const qn_config *c = m->c;
    uint64_t H = (uint64_t)c->hidden_size, q = 2 * (uint64_t)qn_cfg_q_dim(c), kv = (uint64_t)qn_cfg_kv_dim(c);
    char name[96];
    if (m->o->fuse_attn_qkv) {
        float *d = NULL;
        if (m->pass) {
            float *a = hf(m, "model.layers.%d.self_attn.q_proj.weight", i, 0, NULL);
            float *b = hf(m, "model.layers.%d.self_attn.k_proj.weight", i, 0, NULL);
            float *v = hf(m, "model.layers.%d.self_attn.v_proj.weight", i, 0, NULL);
            d = malloc((q + 2 * kv) * H * 4);
            if (a && b && v) {
                memcpy(d, a, q * H * 4); memcpy(d + q * H, b, kv * H * 4); memcpy(d + (q + kv) * H, v, kv * H * 4);
            }
            free(a); free(b); free(v);
        }
        put(m, LNAME(name, "blk.%d.attn_qkv.weight", i), 2, H, q + 2 * kv, 0, m->o->mat_type, d);
    } else {
        mk_mat(m, "blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", i, q, H, m->o->mat_type);
        mk_mat(m, "blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", i, kv, H, m->o->mat_type);
        mk_mat(m, "blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", i, kv, H, m->o->mat_type);
    }
    mk_mat(m, "blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", i, H, q / 2, m->o->mat_type);
    mk_norm(m, "blk.%d.attn_q_norm.weight", "model.layers.%d.self_attn.q_norm.weight", i, 1);
    mk_norm(m, "blk.%d.attn_k_norm.weight", "model.layers.%d.self_attn.k_norm.weight", i, 1);
}

/* Stack experts: gate/up [E][F][H], down [E][H][F]; fused gate_up [E][gate F | up F][H]. */
static float *stack(mk *m, int i, const char *p1, const char *p2, uint64_t per)
{
    const qn_config *c = m->c;
    uint64_t E = (uint64_t)c->num_experts, k = p2 ? 2 : 1;
    float *d = malloc(E * k * per * 4);
    char fmt[96];
    for (uint64_t e = 0; e < E && !m->rc; e++) {
        for (uint64_t j = 0; j < k; j++) {
            snprintf(fmt, sizeof fmt, "model.layers.%%d.mlp.experts.%%d.%s.weight", j ? p2 : p1);
            float *x = hf(m, fmt, i, (int)e, NULL);
            if (x) memcpy(d + (e * k + j) * per, x, per * 4);
            free(x);
        }
    }
    return d;
}

static void mk_moe(mk *m, int i)
{
    const qn_config *c = m->c;
    uint64_t H = (uint64_t)c->hidden_size, E = (uint64_t)c->num_experts, F = (uint64_t)c->moe_inter;
    uint64_t S = (uint64_t)c->shared_inter;
    char name[96];
    float *r = m->pass ? hf(m, "model.layers.%d.mlp.gate.weight", i, 0, NULL) : NULL;
    put(m, LNAME(name, "blk.%d.ffn_gate_inp.weight", i), 2, H, E - (m->o->bad_router && !i), 0, QN_GGML_F32, r);
    if (m->o->fuse_gate_up) {
        put(m, LNAME(name, "blk.%d.ffn_gate_up_exps.weight", i), 3, H, 2 * F, E, m->o->mat_type,
            m->pass ? stack(m, i, "gate_proj", "up_proj", F * H) : NULL);
    } else {
        put(m, LNAME(name, "blk.%d.ffn_gate_exps.weight", i), 3, H, F, E, m->o->mat_type,
            m->pass ? stack(m, i, "gate_proj", NULL, F * H) : NULL);
        put(m, LNAME(name, "blk.%d.ffn_up_exps.weight", i), 3, H, F, E, m->o->mat_type,
            m->pass ? stack(m, i, "up_proj", NULL, F * H) : NULL);
    }
    put(m, LNAME(name, "blk.%d.ffn_down_exps.weight", i), 3, F, H, E, m->o->mat_type,
        m->pass ? stack(m, i, "down_proj", NULL, F * H) : NULL);
    put(m, LNAME(name, "blk.%d.ffn_gate_inp_shexp.weight", i), 1, H, 0, 0, QN_GGML_F32,
        m->pass ? hf(m, "model.layers.%d.mlp.shared_expert_gate.weight", i, 0, NULL) : NULL);
    mk_mat(m, "blk.%d.ffn_gate_shexp.weight", "model.layers.%d.mlp.shared_expert.gate_proj.weight", i, S, H, m->o->mat_type);
    mk_mat(m, "blk.%d.ffn_up_shexp.weight", "model.layers.%d.mlp.shared_expert.up_proj.weight", i, S, H, m->o->mat_type);
    mk_mat(m, "blk.%d.ffn_down_shexp.weight", "model.layers.%d.mlp.shared_expert.down_proj.weight", i, H, S, m->o->mat_type);
}

static void mk_tensors(mk *m)
{
    const qn_config *c = m->c;
    uint64_t H = (uint64_t)c->hidden_size, V = (uint64_t)c->vocab_size;
    uint32_t et = m->o->embd_type ? m->o->embd_type : m->o->mat_type;
    put(m, "token_embd.weight", 2, H, V, 0, et, m->pass ? hf(m, "model.embed_tokens.weight", 0, 0, NULL) : NULL);
    mk_norm(m, "output_norm.weight", "model.norm.weight", 0, 1);
    put(m, "output.weight", 2, H, V, 0, et, m->pass ? hf(m, "lm_head.weight", 0, 0, NULL) : NULL);
    for (int i = 0; i < c->num_layers && !m->rc; i++) {
        mk_norm(m, "blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", i, 1);
        mk_norm(m, "blk.%d.post_attention_norm.weight", "model.layers.%d.post_attention_layernorm.weight", i, 1);
        if (qn_cfg_is_full(c, i)) mk_full(m, i);
        else mk_linear(m, i);
        mk_moe(m, i);
    }
}

static void mk_meta(mk *m)
{
    const qn_config *c = m->c;
    qn_gguf_writer *w = m->w;
#define K(x) "qwen3next." x
    qn_gguf_w_str(w, "general.architecture", m->o->arch ? m->o->arch : "qwen3next");
    qn_gguf_w_u32(w, K("block_count"), (uint32_t)c->num_layers);
    qn_gguf_w_u32(w, K("context_length"), (uint32_t)c->max_position_embeddings);
    qn_gguf_w_u32(w, K("embedding_length"), (uint32_t)c->hidden_size);
    qn_gguf_w_u32(w, K("feed_forward_length"), (uint32_t)c->intermediate_size);
    qn_gguf_w_u32(w, K("attention.head_count"), (uint32_t)c->num_heads);
    qn_gguf_w_u32(w, K("attention.head_count_kv"), (uint32_t)c->num_kv_heads);
    qn_gguf_w_f32(w, K("rope.freq_base"), (float)c->rope_theta);
    qn_gguf_w_f32(w, K("attention.layer_norm_rms_epsilon"), c->rms_norm_eps);
    qn_gguf_w_u32(w, K("expert_count"), (uint32_t)c->num_experts);
    qn_gguf_w_u32(w, K("expert_used_count"), (uint32_t)c->top_k);
    qn_gguf_w_u32(w, K("attention.key_length"), (uint32_t)c->head_dim);
    qn_gguf_w_u32(w, K("attention.value_length"), (uint32_t)c->head_dim);
    qn_gguf_w_u32(w, K("expert_feed_forward_length"), (uint32_t)c->moe_inter);
    qn_gguf_w_u32(w, K("expert_shared_feed_forward_length"), (uint32_t)c->shared_inter);
    qn_gguf_w_u32(w, K("ssm.conv_kernel"), (uint32_t)c->conv_kernel);
    qn_gguf_w_u32(w, K("ssm.state_size"), (uint32_t)c->lin_k_dim);
    qn_gguf_w_u32(w, K("ssm.group_count"), (uint32_t)c->lin_k_heads);
    qn_gguf_w_u32(w, K("ssm.time_step_rank"), (uint32_t)c->lin_v_heads);
    qn_gguf_w_u32(w, K("ssm.inner_size"), (uint32_t)qn_cfg_value_dim(c));
    qn_gguf_w_u32(w, K("full_attention_interval"), (uint32_t)c->full_attention_interval);
    qn_gguf_w_u32(w, K("rope.dimension_count"), (uint32_t)qn_cfg_rot_dim(c));
    if (m->o->vocab) {   /* ids only matter to llama.cpp; eos = the last id, which the golden greedy run avoids */
        uint32_t V = (uint32_t)c->vocab_size;
        char **toks = malloc(V * sizeof *toks);
        int32_t *types = malloc(V * sizeof *types);
        for (uint32_t i = 0; i < V; i++) {
            toks[i] = malloc(16);
            snprintf(toks[i], 16, "t%u", i);
            types[i] = 1;
        }
        static const char *const merges[1] = {"t 1"};
        qn_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
        qn_gguf_w_str(w, "tokenizer.ggml.pre", "qwen2");
        qn_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, V);
        qn_gguf_w_arr(w, "tokenizer.ggml.token_type", QN_GGUF_I32, types, V);
        qn_gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, 1);
        qn_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", V - 1);
        qn_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", V - 1);
        qn_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 0);
        for (uint32_t i = 0; i < V; i++) free(toks[i]);
        free(toks);
        free(types);
    } else {
        if (c->bos_token_id >= 0) qn_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_token_id);
        if (c->n_eos) qn_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_token_ids[0]);
    }
#undef K
}

static int mkgguf(const char *dir, const char *out, const mk_opts *o, qn_config *cfg)
{
    qn_st_store *st;
    int rc = qn_cfg_load(cfg, dir);
    if (!rc) rc = qn_st_open(&st, dir);
    if (rc) return rc;
    mk m = {.c = cfg, .st = st, .o = o};
    rc = qn_gguf_writer_open(&m.w, out, 0);
    if (!rc) {
        mk_meta(&m);
        mk_tensors(&m);
        m.pass = 1;
        if (!m.rc) mk_tensors(&m);
        rc = m.rc;
        if (rc) qn_gguf_writer_abort(&m.w);
        else rc = qn_gguf_writer_close(&m.w);
    }
    qn_st_close(&st);
    return rc;
}

/* ---------------------------------------------------------------- checks */

typedef struct cmp {
    const qn_config *cfg;
    const qn_q3n *q;
    const qn_st_store *st;
    int counts[4];              /* per xform */
    int by_type[64];
    int mixed;
} cmp;

/* Every HF tensor through the mapping vs the checkpoint: COPY / QKVZ_SPLIT exactly equal to the checkpoint
 * after quantize+dequantize row by row in the stored type; NORM_PLUS1 / NEG_EXP within float rounding. */
static int cmp_one(void *user, const qn_tensor_spec *spec)
{
    cmp *c = user;
    qn_q3n_src s;
    int rc = qn_q3n_find(c->q, spec->name, &s);
    CHECK(!rc, "find %s: %s", spec->name, qn_errmsg());
    if (rc) return 0;
    uint64_t n = 1;
    for (int k = 0; k < spec->ndim; k++) n *= (uint64_t)spec->shape[k];
    float *got = malloc(n * 4), *want = malloc(n * 4), *rt = malloc(n * 4);
    uint8_t *q = malloc(n * 8 + 64);
    CHECK(!qn_q3n_read_f32(c->q, &s, got, n), "read %s: %s", spec->name, qn_errmsg());
    CHECK(!qn_st_read_f32(c->st, spec->name, want, n), "checkpoint %s", spec->name);
    c->counts[s.xform]++;
    c->by_type[s.t->type & 63]++;
    int bad = 0;
    if (s.xform == QN_Q3N_QKVZ_SPLIT && s.t2->type != s.t->type) {
        /* mixed types: z rows (offset >= 2 dk + vg inside each key-head group) went through attn_gate's type */
        const qn_config *f = c->cfg;
        uint64_t H = (uint64_t)f->hidden_size, dk = (uint64_t)f->lin_k_dim;
        uint64_t vg = (uint64_t)(f->lin_v_heads / f->lin_k_heads * f->lin_v_dim), G = 2 * dk + 2 * vg;
        for (uint64_t r = 0; r < n / H; r++) {
            uint32_t ty = r % G >= 2 * dk + vg ? s.t2->type : s.t->type;
            qn_quant_row(ty, want + r * H, q, H);
            qn_dequant_row(ty, q, rt + r * H, H);
        }
        for (uint64_t i = 0; i < n; i++) bad += got[i] != rt[i];
        CHECK(qn_q3n_read_raw(c->q, &s, q, n * 8) == QN_E_UNSUPPORTED && strstr(qn_errmsg(), "differ in type"),
              "%s: raw read of mixed-type parts: %s", spec->name, qn_errmsg());
        c->mixed++;
    } else if (s.xform == QN_Q3N_COPY || s.xform == QN_Q3N_QKVZ_SPLIT) {
        qn_quant_row(s.t->type, want, q, n);
        qn_dequant_row(s.t->type, q, rt, n);
        for (uint64_t i = 0; i < n; i++) bad += got[i] != rt[i];
        /* the raw bytes in HF order are the row-wise quantization of the HF tensor */
        uint8_t *raw = malloc(qn_q3n_src_bytes(&s));
        CHECK(!qn_q3n_read_raw(c->q, &s, raw, qn_q3n_src_bytes(&s)) && !memcmp(raw, q, qn_q3n_src_bytes(&s)),
              "%s: raw bytes differ", spec->name);
        free(raw);
    } else {
        for (uint64_t i = 0; i < n; i++) bad += !(fabsf(got[i] - want[i]) <= 2e-6f * (1.0f + fabsf(want[i])));
    }
    CHECK(!bad, "%s (%s, xform %d): %d of %llu values differ", spec->name, s.t->name, (int)s.xform, bad,
          (unsigned long long)n);
    free(got); free(want); free(rt); free(q);
    return 0;
}

static void check_config(const qn_config *a, const qn_config *b)
{
#define EQ(f) CHECK(a->f == b->f, "config " #f ": gguf %g vs config.json %g", (double)a->f, (double)b->f)
    EQ(hidden_size); EQ(num_layers); EQ(vocab_size); EQ(tie_word_embeddings); EQ(max_position_embeddings);
    EQ(num_heads); EQ(num_kv_heads); EQ(head_dim); EQ(lin_k_heads); EQ(lin_v_heads); EQ(lin_k_dim); EQ(lin_v_dim);
    EQ(conv_kernel); EQ(num_experts); EQ(top_k); EQ(moe_inter); EQ(shared_inter); EQ(intermediate_size);
    EQ(norm_topk_prob); EQ(rope_type); EQ(full_attention_interval); EQ(bos_token_id); EQ(n_eos);
    EQ(partial_rotary_factor);
#undef EQ
    CHECK(a->rms_norm_eps == b->rms_norm_eps, "rms_norm_eps");
    CHECK(fabs(a->rope_theta - b->rope_theta) <= 1e-6 * b->rope_theta, "rope_theta %g vs %g", a->rope_theta, b->rope_theta);
    CHECK(!memcmp(a->layer_types, b->layer_types, (size_t)b->num_layers), "layer types");
    CHECK(a->n_eos < 1 || a->eos_token_ids[0] == b->eos_token_ids[0], "eos id");
}

static int check_spans(const qn_q3n *q, const qn_gguf *g)
{
    const qn_config *c = qn_q3n_config(q);
    int bad = 0;
    for (int i = 0; i < c->num_layers; i++) {
        for (int e = 0; e < c->num_experts; e += 5) {
            for (int p = 0; p < 3; p++) {
                static const char *const nm[3] = {"gate_proj", "up_proj", "down_proj"};
                char name[128];
                snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.%s.weight", i, e, nm[p]);
                qn_file_span sp;
                qn_q3n_src s;
                if (qn_q3n_expert_span(q, i, (enum qn_q3n_proj)p, e, 4096, &sp) || qn_q3n_find(q, name, &s)) { bad++; continue; }
                uint64_t n = qn_q3n_src_bytes(&s);
                uint8_t *a = malloc(n), *b = malloc(n);
                bad += sp.nbytes != n || qn_gguf_read(g, sp.off, a, n) || qn_q3n_read_raw(q, &s, b, n) || memcmp(a, b, n);
                bad += sp.dio_off % 4096 || sp.dio_len % 4096 || sp.dio_off + sp.dio_head != sp.off ||
                       sp.dio_head + sp.nbytes > sp.dio_len || sp.dio_len - sp.dio_head - sp.nbytes >= 4096;
                free(a); free(b);
            }
        }
    }
    qn_file_span sp;
    bad += qn_q3n_expert_span(q, 0, QN_Q3N_GATE, c->num_experts, 0, &sp) != -EINVAL;
    bad += qn_q3n_expert_span(q, c->num_layers, QN_Q3N_GATE, 0, 0, &sp) != -EINVAL;
    bad += qn_q3n_expert_span(q, 0, QN_Q3N_GATE, 0, 3000, &sp) != -EINVAL;
    return bad;
}

static void run_variant(const char *dir, const char *tmp, const char *label, const mk_opts *o, int want_legacy)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.gguf", tmp, label);
    qn_config cfg;
    int rc = mkgguf(dir, path, o, &cfg);
    CHECK(!rc, "%s: convert: %s", label, qn_errmsg());
    qn_gguf *g;
    qn_q3n *q;
    if (rc || (rc = qn_gguf_open(&g, path))) { CHECK(!rc, "%s: open: %s", label, qn_errmsg()); return; }
    rc = qn_q3n_open(&q, g);
    CHECK(!rc, "%s: q3n open: %s", label, qn_errmsg());
    if (!rc) {
        check_config(qn_q3n_config(q), &cfg);
        CHECK(qn_q3n_qkvz_legacy(q) == want_legacy && qn_q3n_n_nextn(q) == 0, "%s: legacy flag", label);
        qn_st_store *st;
        qn_st_open(&st, dir);
        cmp c = {.cfg = &cfg, .q = q, .st = st};
        qn_cfg_tensors(&cfg, cmp_one, &c);
        qn_st_close(&st);
        printf("%s: %d copied, %d norm+1, %d -exp, %d qkvz-split tensors; Q8_0 %d, F16 %d, F32 %d\n", label,
               c.counts[0], c.counts[1], c.counts[2], c.counts[3], c.by_type[QN_GGML_Q8_0], c.by_type[QN_GGML_F16],
               c.by_type[QN_GGML_F32]);
        CHECK(c.counts[1] > 0 && c.counts[2] > 0 && (want_legacy || c.counts[3] > 0), "%s: transforms exercised", label);
        CHECK(o->mat_type != QN_GGML_Q8_0 || c.by_type[QN_GGML_Q8_0] > 100, "%s: quantized path exercised", label);
        CHECK(!check_spans(q, g), "%s: expert spans", label);
        CHECK(!o->gate_type || c.mixed == 3, "%s: %d mixed-type qkvz tensors", label, c.mixed);
        qn_q3n_src s;
        CHECK(qn_q3n_find(q, "model.layers.99.input_layernorm.weight", &s) == -ENOENT &&
              strstr(qn_errmsg(), "not a tensor"), "unknown layer: %s", qn_errmsg());
        CHECK(qn_q3n_find(q, "model.layers.0.mlp.experts.16.gate_proj.weight", &s) == -ENOENT, "expert 16");
        CHECK(qn_q3n_find(q, "mtp.fc.weight", &s) == -ENOENT, "mtp without nextn");
        CHECK(qn_q3n_find(q, "model.layers.3.linear_attn.A_log", &s) == -ENOENT, "A_log of a full layer");
        qn_q3n_close(&q);
    }
    qn_gguf_close(&g);
}

static void expect_refused(const char *dir, const char *tmp, const mk_opts *o, int code, const char *needle)
{
    char path[256];
    snprintf(path, sizeof path, "%s/bad.gguf", tmp);
    qn_config cfg;
    qn_gguf *g;
    qn_q3n *q = NULL;
    int rc = mkgguf(dir, path, o, &cfg);
    if (!rc) rc = qn_gguf_open(&g, path);
    CHECK(!rc, "bad variant '%s' not written: %s", needle, qn_errmsg());
    if (rc) return;
    rc = qn_q3n_open(&q, g);
    CHECK(rc == code && !q && strstr(qn_errmsg(), needle), "expected %d '%s', got %d '%s'", code, needle, rc, qn_errmsg());
    qn_q3n_close(&q);
    qn_gguf_close(&g);
}

/* qkvz_row is a bijection onto attn_qkv rows + attn_gate rows (tiny config and the real 80B one). */
static void check_qkvz_perm(const qn_config *c)
{
    uint64_t n1 = (uint64_t)qn_cfg_conv_dim(c), n2 = (uint64_t)qn_cfg_value_dim(c), n = n1 + n2;
    char *hit = calloc(n, 1);
    int bad = 0;
    for (uint64_t r = 0; r < n; r++) {
        int part;
        uint64_t row;
        if (qn_q3n_qkvz_row(c, r, &part, &row) || row >= (part ? n2 : n1)) { bad++; continue; }
        bad += hit[part ? n1 + row : row]++ != 0;
    }
    int part;
    uint64_t row;
    CHECK(!bad && qn_q3n_qkvz_row(c, n, &part, &row) == -EINVAL, "qkvz permutation (%d bad)", bad);
    /* spec §2 spot checks for 80B: v head 5 dim 3 is HF row 768*2 + 256 + 128 + 3; z head 5 dim 3 at +512 */
    if (c->lin_k_heads == 16 && c->lin_v_dim == 128) {
        CHECK(!qn_q3n_qkvz_row(c, 768 * 2 + 256 + 128 + 3, &part, &row) && part == 0 && row == 4096 + 5 * 128 + 3, "v row");
        CHECK(!qn_q3n_qkvz_row(c, 768 * 2 + 512 + 128 + 3, &part, &row) && part == 1 && row == 5 * 128 + 3, "z row");
        CHECK(!qn_q3n_qkvz_row(c, 768 * 7 + 128 + 9, &part, &row) && part == 0 && row == 2048 + 7 * 128 + 9, "k row");
    }
    free(hit);
}

/* ---------------------------------------------------------------- cross-check helpers (not run by the test)
 * --synth-hf DIR          random HF checkpoint whose every row length is a multiple of 256 (K-quants fit)
 * --gguf-to-hf GGUF DIR   every HF tensor read back through the mapping, written as an F32 HF folder
 * With them, llama.cpp's greedy output on a K-quant GGUF can be compared with qnext's reference model on the
 * same dequantized weights (see the helper report for the commands). */

typedef struct spec_list { qn_tensor_spec *v; int n, cap; } spec_list;

static int collect(void *user, const qn_tensor_spec *t)
{
    spec_list *l = user;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n++] = *t;
    return 0;
}

typedef float *(*get_fn)(void *user, const qn_tensor_spec *t, uint64_t n);

static int write_hf(const char *dir, const qn_config *c, get_fn get, void *user)
{
    char path[512];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = qn_cfg_write(c, path);
    spec_list l = {0};
    qn_cfg_tensors(c, collect, &l);
    qn_st_wtensor *wt = calloc((size_t)l.n, sizeof *wt);
    for (int i = 0; i < l.n; i++) {
        wt[i].name = l.v[i].name;
        wt[i].dtype = QN_DT_F32;
        wt[i].ndim = l.v[i].ndim;
        memcpy(wt[i].shape, l.v[i].shape, sizeof l.v[i].shape);
    }
    qn_st_writer *w = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = qn_st_writer_open(&w, path, wt, l.n, NULL);
    for (int i = 0; !rc && i < l.n; i++) {
        uint64_t n = 1;
        for (int k = 0; k < l.v[i].ndim; k++) n *= (uint64_t)l.v[i].shape[k];
        float *d = get(user, &l.v[i], n);
        rc = d ? qn_st_writer_put_f32(w, d, n) : -EIO;
        free(d);
    }
    if (w) { int rc2 = qn_st_writer_close(&w); if (!rc) rc = rc2; }
    free(wt);
    free(l.v);
    return rc;
}

static float *synth_get(void *user, const qn_tensor_spec *t, uint64_t n)
{
    qn_rng *r = user;
    float *d = malloc(n * 4);
    const char *nm = t->name;
    for (uint64_t i = 0; i < n; i++) {
        float g = qn_rng_normal(r);
        d[i] = strstr(nm, "A_log") ? logf(qn_rng_range(r, 1, 16)) : strstr(nm, "dt_bias") ? qn_rng_range(r, 0.5f, 1.5f)
             : strstr(nm, "linear_attn.norm") ? 1.0f + 0.1f * g : strstr(nm, "norm") ? 0.1f * g
             : strstr(nm, "conv1d") ? 0.3f * g : strstr(nm, "embed_tokens") ? g : 0.05f * g;
    }
    return d;
}

static float *gguf_get(void *user, const qn_tensor_spec *t, uint64_t n)
{
    qn_q3n_src s;
    float *d = malloc(n * 4);
    if (qn_q3n_find(user, t->name, &s) || qn_q3n_read_f32(user, &s, d, n)) { free(d); return NULL; }
    return d;
}

static int tool_main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[2], "--synth-hf")) {
        qn_config c;
        int rc = qn_cfg_load(&c, argv[1]);
        c.hidden_size = 256; c.head_dim = 64; c.lin_k_dim = 64; c.lin_v_dim = 64; c.moe_inter = 256;
        c.shared_inter = 256; c.intermediate_size = 512; c.num_experts = 8; c.top_k = 2;
        qn_rng r;
        qn_rng_seed(&r, 7);
        if (!rc) rc = write_hf(argv[3], &c, synth_get, &r);
        if (rc) fprintf(stderr, "%s\n", qn_errmsg());
        return rc ? 1 : 0;
    }
    qn_gguf *g;
    qn_q3n *q;
    int rc = qn_gguf_open(&g, argv[3]);
    if (!rc && !(rc = qn_q3n_open(&q, g))) {
        rc = write_hf(argv[4], qn_q3n_config(q), gguf_get, q);
        qn_q3n_close(&q);
    }
    if (rc) fprintf(stderr, "%s\n", qn_errmsg());
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    qn_test_crash_report();
    if (argc < 2) { fprintf(stderr, "usage: %s <golden/tiny folder> [--write-gguf OUT [f32|f16|q8_0|q4_0|q4_k|q5_k|q6_k] | --synth-hf DIR | "
                                    "--gguf-to-hf GGUF DIR]\n", argv[0]); return 2; }
    if ((argc >= 4 && !strcmp(argv[2], "--synth-hf")) || (argc >= 5 && !strcmp(argv[2], "--gguf-to-hf")))
        return tool_main(argc, argv);
    if (argc >= 4 && !strcmp(argv[2], "--write-gguf")) {   /* for checking the converter facts with llama.cpp */
        static const struct { const char *n; uint32_t t; } ty[] = {{"f32", QN_GGML_F32}, {"f16", QN_GGML_F16},
            {"q8_0", QN_GGML_Q8_0}, {"q4_0", QN_GGML_Q4_0}, {"q4_k", QN_GGML_Q4_K}, {"q5_k", QN_GGML_Q5_K},
            {"q6_k", QN_GGML_Q6_K}};
        mk_opts o = {.vocab = 1, .mat_type = QN_GGML_F32};
        for (size_t i = 0; argc > 4 && i < sizeof ty / sizeof ty[0]; i++) if (!strcmp(argv[4], ty[i].n)) o.mat_type = ty[i].t;
        for (size_t i = 0; argc > 5 && i < sizeof ty / sizeof ty[0]; i++) if (!strcmp(argv[5], ty[i].n)) o.embd_type = ty[i].t;
        qn_config cfg;
        int rc = mkgguf(argv[1], argv[3], &o, &cfg);
        if (rc) fprintf(stderr, "%s\n", qn_errmsg());
        return rc ? 1 : 0;
    }
    char tmp[64] = "/tmp/qn_q3n_XXXXXX";
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
    run_variant(argv[1], tmp, "f32-split", &(mk_opts){.mat_type = QN_GGML_F32}, 0);
    run_variant(argv[1], tmp, "q8-legacy-fused",
                &(mk_opts){.mat_type = QN_GGML_Q8_0, .legacy_qkvz = 1, .fuse_gate_up = 1, .fuse_attn_qkv = 1}, 1);
    run_variant(argv[1], tmp, "q8-split", &(mk_opts){.mat_type = QN_GGML_Q8_0}, 0);
    run_variant(argv[1], tmp, "q8-split-f16-gate", &(mk_opts){.mat_type = QN_GGML_Q8_0, .gate_type = QN_GGML_F16}, 0);
    expect_refused(argv[1], tmp, &(mk_opts){.mat_type = QN_GGML_F16, .arch = "llama"}, QN_E_UNSUPPORTED,
                   "general.architecture is 'llama'");
    expect_refused(argv[1], tmp, &(mk_opts){.mat_type = QN_GGML_F16, .drop = "blk.2.ffn_down_shexp.weight"}, -ENOENT,
                   "'blk.2.ffn_down_shexp.weight' is missing");
    expect_refused(argv[1], tmp, &(mk_opts){.mat_type = QN_GGML_F16, .drop = "blk.1.ffn_up_exps.weight"}, QN_E_FORMAT,
                   "'blk.1.ffn_up_exps.weight' is missing");
    expect_refused(argv[1], tmp, &(mk_opts){.mat_type = QN_GGML_F16, .bad_router = 1}, QN_E_FORMAT,
                   "different shape");
    qn_config c;
    if (!qn_cfg_load(&c, argv[1])) check_qkvz_perm(&c);
    qn_config_default_80b(&c);
    check_qkvz_perm(&c);
    rm_tmpdir(tmp);
    printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
