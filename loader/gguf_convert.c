/* gguf_convert.c — HF qwen3_next checkpoint -> llama.cpp qwen3next GGUF (see gguf_convert.h).
 *
 * Each output tensor is a list of segments: a run of rows of one checkpoint tensor (HF row = last dim) plus a
 * value transform. Segments are read in chunks of whole rows, converted to float, transformed, encoded in the
 * planned type and appended to the GGUF writer. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_convert.h"
#include "gguf_qwen3next.h"
#include "gguf_write.h"
#include "qn_err.h"
#include "qn_num.h"
#include "quant.h"
#include "safetensors.h"
#include "synth_int.h"

#define CHUNK_FLOATS (4u << 20)   /* rows read per step: at most this many values (or one row) */
#define MAX_THREADS 64

enum { XF_NONE = 0, XF_PLUS1, XF_NEG_EXP };

struct qn_conv {
    qn_config cfg;
    qn_st_store *st;
    qn_synth_plan *plan;
    qn_conv_opts o;
    char *tok;
    uint64_t in_bytes, done;
    int nfb;
    const qn_synth_tensor **fb;
    uint32_t *qkvz_inv[2];        /* attn_qkv / attn_gate row -> in_proj_qkvz row (inverse of qn_q3n_qkvz_row) */
    uint64_t qkvz_n[2];
    float *f;                     /* CHUNK_FLOATS (or one row) */
    uint8_t *raw, *enc;
    uint64_t fcap;
    int nthreads;
    qn_gguf_writer *w;
};

typedef struct seg {
    char hf[160];
    uint64_t row0, nrows;         /* rows of the HF tensor */
    int xf;
} seg;

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

/* ---------------------------------------------------------------- names */

static const struct { const char *gg, *hf; int xf; } names[] = {
    {"attn_norm.weight", "input_layernorm.weight", XF_PLUS1},
    {"post_attention_norm.weight", "post_attention_layernorm.weight", XF_PLUS1},
    {"attn_q.weight", "self_attn.q_proj.weight", XF_NONE}, {"attn_k.weight", "self_attn.k_proj.weight", XF_NONE},
    {"attn_v.weight", "self_attn.v_proj.weight", XF_NONE}, {"attn_output.weight", "self_attn.o_proj.weight", XF_NONE},
    {"attn_q_norm.weight", "self_attn.q_norm.weight", XF_PLUS1}, {"attn_k_norm.weight", "self_attn.k_norm.weight", XF_PLUS1},
    {"ssm_ba.weight", "linear_attn.in_proj_ba.weight", XF_NONE}, {"ssm_conv1d.weight", "linear_attn.conv1d.weight", XF_NONE},
    {"ssm_dt.bias", "linear_attn.dt_bias", XF_NONE}, {"ssm_a", "linear_attn.A_log", XF_NEG_EXP},
    {"ssm_norm.weight", "linear_attn.norm.weight", XF_NONE}, {"ssm_out.weight", "linear_attn.out_proj.weight", XF_NONE},
    {"ffn_gate_inp.weight", "mlp.gate.weight", XF_NONE}, {"ffn_gate_inp_shexp.weight", "mlp.shared_expert_gate.weight", XF_NONE},
    {"ffn_gate_shexp.weight", "mlp.shared_expert.gate_proj.weight", XF_NONE},
    {"ffn_up_shexp.weight", "mlp.shared_expert.up_proj.weight", XF_NONE},
    {"ffn_down_shexp.weight", "mlp.shared_expert.down_proj.weight", XF_NONE},
    {"ffn_gate_exps.weight", "gate_proj", XF_NONE}, {"ffn_up_exps.weight", "up_proj", XF_NONE},
    {"ffn_down_exps.weight", "down_proj", XF_NONE},
};

/* The segments of GGUF tensor `name`, calling fn for each in order. */
static int segments(qn_conv *cv, const char *name, int (*fn)(qn_conv *, const seg *, void *), void *u)
{
    seg s = {.xf = XF_NONE};
    int l = -1, off = 0;
    if (!strcmp(name, "token_embd.weight")) snprintf(s.hf, sizeof s.hf, "model.embed_tokens.weight");
    else if (!strcmp(name, "output.weight")) snprintf(s.hf, sizeof s.hf, "lm_head.weight");
    else if (!strcmp(name, "output_norm.weight")) { snprintf(s.hf, sizeof s.hf, "model.norm.weight"); s.xf = XF_PLUS1; }
    else if (sscanf(name, "blk.%d.%n", &l, &off) != 1 || l < 0 || !off)
        return qn_fail(-EINVAL, "convert: no checkpoint source for GGUF tensor '%s'", name);
    if (l < 0) { s.nrows = UINT64_MAX; return fn(cv, &s, u); }
    const char *rest = name + off;
    int part = !strcmp(rest, "attn_qkv.weight") ? 0 : !strcmp(rest, "attn_gate.weight") ? 1 : -1;
    if (part >= 0) {   /* runs of the inverse table */
        snprintf(s.hf, sizeof s.hf, "model.layers.%d.linear_attn.in_proj_qkvz.weight", l);
        const uint32_t *inv = cv->qkvz_inv[part];
        for (uint64_t r = 0; r < cv->qkvz_n[part];) {
            uint64_t k = 1;
            while (r + k < cv->qkvz_n[part] && inv[r + k] == inv[r] + k) k++;
            s.row0 = inv[r];
            s.nrows = k;
            TRY(fn(cv, &s, u));
            r += k;
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(rest, names[i].gg)) continue;
        s.xf = names[i].xf;
        s.nrows = UINT64_MAX;
        if (!strstr(rest, "_exps.")) {
            snprintf(s.hf, sizeof s.hf, "model.layers.%d.%s", l, names[i].hf);
            return fn(cv, &s, u);
        }
        for (int e = 0; e < cv->cfg.num_experts; e++) {   /* stacked, expert by expert */
            snprintf(s.hf, sizeof s.hf, "model.layers.%d.mlp.experts.%d.%s.weight", l, e, names[i].hf);
            TRY(fn(cv, &s, u));
        }
        return 0;
    }
    return qn_fail(-EINVAL, "convert: no checkpoint source for GGUF tensor '%s'", name);
}

static int build_qkvz_inverse(qn_conv *cv)
{
    const qn_config *c = &cv->cfg;
    uint64_t n = (uint64_t)qn_cfg_qkvz_dim(c);
    cv->qkvz_n[0] = (uint64_t)qn_cfg_conv_dim(c);
    cv->qkvz_n[1] = (uint64_t)qn_cfg_value_dim(c);
    for (int p = 0; p < 2; p++)
        if (!(cv->qkvz_inv[p] = malloc(cv->qkvz_n[p] * sizeof(uint32_t)))) return qn_fail(-ENOMEM, "convert: out of memory");
    for (uint64_t h = 0; h < n; h++) {
        int part;
        uint64_t row;
        TRY(qn_q3n_qkvz_row(c, h, &part, &row));
        if (part < 0 || part > 1 || row >= cv->qkvz_n[part]) return qn_fail(-EINVAL, "convert: internal: qkvz row %" PRIu64, h);
        cv->qkvz_inv[part][row] = (uint32_t)h;
    }
    return 0;
}

/* ---------------------------------------------------------------- reading and writing rows */

static uint64_t hf_rowlen(const qn_st_tensor *t) { return t->ndim ? (uint64_t)t->shape[t->ndim - 1] : 1; }

static int to_f32(const qn_st_tensor *t, const uint8_t *src, float *dst, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h;
        if (t->dtype == QN_DT_F32) { memcpy(&dst[i], src + 4 * i, 4); continue; }
        memcpy(&h, src + 2 * i, 2);
        dst[i] = t->dtype == QN_DT_F16 ? qn_f16_to_f32(h) : qn_bf16_to_f32(h);
    }
    return 0;
}

static void xform(int xf, float *d, uint64_t n)
{
    for (uint64_t i = 0; xf && i < n; i++) d[i] = xf == XF_PLUS1 ? d[i] + 1.0f : -expf(d[i]);
}

/* Quantize `rows` rows of `len` values from cv->f into cv->enc, split over the threads (K-quant quantizers
 * run at a few M values/s per core). A failed part is redone on this thread for its error message. */
typedef struct qjob { uint32_t type; const float *src; uint8_t *dst; uint64_t n; int rc; } qjob;

static void *qjob_run(void *a)
{
    qjob *j = a;
    j->rc = qn_quant_row(j->type, j->src, j->dst, j->n);
    return NULL;
}

static int quant_par(qn_conv *cv, uint32_t type, uint64_t rows, uint64_t len, uint64_t rb)
{
    uint64_t T = qn_ggml_type(type)->blck == 1 ? 1 : (uint64_t)cv->nthreads;
    if (T > rows) T = rows;
    if (T < 1) T = 1;
    uint64_t per = (rows + T - 1) / T;
    qjob j[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    int nt = 0, started[MAX_THREADS] = {0};
    for (uint64_t r = 0; r < rows; r += per, nt++)
        j[nt] = (qjob){type, cv->f + r * len, cv->enc + r * rb, (rows - r < per ? rows - r : per) * len, 0};
    for (int i = 1; i < nt; i++) started[i] = !pthread_create(&th[i], NULL, qjob_run, &j[i]);
    qjob_run(&j[0]);
    for (int i = 1; i < nt; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else qjob_run(&j[i]);
    }
    for (int i = 0; i < nt; i++)
        if (j[i].rc) return qn_quant_row(type, j[i].src, j[i].dst, j[i].n);
    return 0;
}

typedef struct wstate {
    const qn_synth_tensor *t;
    uint64_t rows_done, rows_total;
} wstate;

static int put_seg(qn_conv *cv, const seg *s, void *u)
{
    wstate *ws = u;
    const qn_st_tensor *t = qn_st_find(cv->st, s->hf);
    if (!t) return qn_fail(-ENOENT, "convert: checkpoint lacks %s (for %s)", s->hf, ws->t->name);
    uint64_t len = hf_rowlen(t), nrows = (uint64_t)qn_st_numel(t) / len, ne0 = (uint64_t)ws->t->shape[ws->t->ndim - 1];
    uint64_t n = s->nrows == UINT64_MAX ? nrows : s->nrows, ds = (uint64_t)qn_dtype_size(t->dtype), rb;
    if (len != ne0 || s->row0 + n > nrows || ws->rows_done + n > ws->rows_total)
        return qn_fail(QN_E_FORMAT, "convert: %s: rows of %" PRIu64 " values do not fit %s (rows of %" PRIu64 ")", s->hf,
                       len, ws->t->name, ne0);
    TRY(qn_ggml_row_bytes(ws->t->type, ne0, &rb));
    uint64_t step = cv->fcap / len;
    for (uint64_t r = 0; r < n; r += step) {
        uint64_t k = n - r < step ? n - r : step;
        TRY(qn_st_read_raw(cv->st, t, (s->row0 + r) * len * ds, cv->raw, k * len * ds));
        to_f32(t, cv->raw, cv->f, k * len);
        xform(s->xf, cv->f, k * len);
        int rc = quant_par(cv, ws->t->type, k, len, rb);
        if (rc) return qn_fail_ctx(rc, "convert: %s (from %s): ", ws->t->name, s->hf);
        TRY(qn_gguf_w_data(cv->w, cv->enc, (size_t)(k * rb)));
        cv->done += k * len * ds;
        if (cv->o.progress && cv->o.progress(cv->o.user, cv->done, cv->in_bytes))
            return qn_fail(-ECANCELED, "convert: cancelled at %s", ws->t->name);
    }
    ws->rows_done += n;
    return 0;
}

static int write_tensor(qn_conv *cv, const qn_synth_tensor *t)
{
    wstate ws = {.t = t, .rows_total = qn_synth_rows(t)};
    TRY(segments(cv, t->name, put_seg, &ws));
    if (ws.rows_done != ws.rows_total)
        return qn_fail(QN_E_FORMAT, "convert: %s: %" PRIu64 " rows from the checkpoint, %" PRIu64 " expected", t->name,
                       ws.rows_done, ws.rows_total);
    return 0;
}

/* ---------------------------------------------------------------- open */

static int count_seg(qn_conv *cv, const seg *s, void *u)
{
    const qn_st_tensor *t = qn_st_find(cv->st, s->hf);
    if (!t) return qn_fail(-ENOENT, "convert: checkpoint lacks %s", s->hf);
    if (t->dtype != QN_DT_F32 && t->dtype != QN_DT_F16 && t->dtype != QN_DT_BF16)
        return qn_fail(QN_E_UNSUPPORTED, "convert: %s is %s (F32, F16 or BF16 expected)", s->hf, qn_dtype_name(t->dtype));
    uint64_t len = hf_rowlen(t), n = s->nrows == UINT64_MAX ? (uint64_t)qn_st_numel(t) / len : s->nrows;
    *(uint64_t *)u += n * len * (uint64_t)qn_dtype_size(t->dtype);
    if (len > cv->fcap) cv->fcap = len;
    return 0;
}

/* The tensors whose rows did not fit the type the mix chose (the plan's tensor_type_fallback). */
static int find_fallbacks(qn_conv *cv)
{
    int n = qn_synth_plan_count(cv->plan);
    if (!(cv->fb = calloc((size_t)n + 1, sizeof *cv->fb))) return qn_fail(-ENOMEM, "convert: out of memory");
    for (int i = 0; i < n; i++) {
        const qn_synth_tensor *t = qn_synth_plan_at(cv->plan, i);
        if (t->type != t->want) cv->fb[cv->nfb++] = t;
    }
    return 0;
}

static int plan(qn_conv *cv, const char *dir)
{
    char tok[4096], nb[4096], name[160];
    const char *tj = cv->o.tokenizer_json;
    if (!tj && (size_t)snprintf(tok, sizeof tok, "%s/tokenizer.json", dir) < sizeof tok && !access(tok, R_OK)) tj = tok;
    if (tj && !(cv->tok = strdup(tj))) return qn_fail(-ENOMEM, "convert: out of memory");
    size_t n = strlen(dir) < sizeof nb ? strlen(dir) : sizeof nb - 1;   /* general.name: the folder's base name */
    memcpy(nb, dir, n);
    nb[n] = 0;
    while (n > 1 && nb[n - 1] == '/') nb[--n] = 0;
    const char *base = strrchr(nb, '/');
    snprintf(name, sizeof name, "%.150s", base && base[1] ? base + 1 : nb);
    qn_synth_opts so = {.format = QN_SYNTH_GGUF, .ftype = cv->o.ftype, .tokenizer_json = cv->tok, .name = name};
    TRY(qn_synth_plan_make(&cv->plan, &cv->cfg, &so));
    cv->fcap = CHUNK_FLOATS;
    for (int i = 0; i < qn_synth_plan_count(cv->plan); i++)
        TRY(segments(cv, qn_synth_plan_at(cv->plan, i)->name, count_seg, &cv->in_bytes));
    cv->f = malloc(cv->fcap * 4);
    cv->raw = malloc(cv->fcap * 4);
    cv->enc = malloc(cv->fcap * 4);
    if (!cv->f || !cv->raw || !cv->enc) return qn_fail(-ENOMEM, "convert: out of memory");
    return find_fallbacks(cv);
}

int qn_conv_open(qn_conv **out, const char *hf_dir, const qn_conv_opts *o)
{
    *out = NULL;
    if (!qn_synth_ftype_name(o->ftype)) return qn_fail(-EINVAL, "convert: unknown file type %d", o->ftype);
    qn_conv *cv = calloc(1, sizeof *cv);
    if (!cv) return qn_fail(-ENOMEM, "convert: out of memory");
    cv->o = *o;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cv->nthreads = o->threads > 0 ? o->threads : ncpu > 0 ? (int)ncpu : 1;
    if (cv->nthreads > MAX_THREADS) cv->nthreads = MAX_THREADS;
    int rc = qn_cfg_load(&cv->cfg, hf_dir);
    if (!rc) rc = qn_st_open(&cv->st, hf_dir);
    if (!rc) rc = qn_st_check_model(cv->st, &cv->cfg, 1);
    if (!rc) rc = build_qkvz_inverse(cv);
    if (!rc) rc = plan(cv, hf_dir);
    if (rc) {
        qn_conv_close(&cv);
        return rc;
    }
    *out = cv;
    return 0;
}

void qn_conv_close(qn_conv **pc)
{
    qn_conv *cv = *pc;
    if (!cv) return;
    if (cv->w) qn_gguf_writer_abort(&cv->w);
    qn_st_close(&cv->st);
    qn_synth_plan_free(&cv->plan);
    free(cv->tok);
    free(cv->fb);
    free(cv->qkvz_inv[0]);
    free(cv->qkvz_inv[1]);
    free(cv->f);
    free(cv->raw);
    free(cv->enc);
    free(cv);
    *pc = NULL;
}

const qn_config *qn_conv_config(const qn_conv *c) { return &c->cfg; }
const qn_synth_plan *qn_conv_plan(const qn_conv *c) { return c->plan; }
uint64_t qn_conv_input_bytes(const qn_conv *c) { return c->in_bytes; }
const char *qn_conv_tokenizer(const qn_conv *c) { return c->tok; }
int qn_conv_fallback_count(const qn_conv *c) { return c->nfb; }
const qn_synth_tensor *qn_conv_fallback_at(const qn_conv *c, int i) { return i >= 0 && i < c->nfb ? c->fb[i] : NULL; }

/* ---------------------------------------------------------------- write */

int qn_conv_write(qn_conv *cv, const char *path)
{
    const qn_synth_plan *p = cv->plan;
    int n = qn_synth_plan_count(p);
    cv->done = 0;
    int rc = qn_gguf_writer_open(&cv->w, path, 0);
    if (!rc) rc = qn_synth_gguf_meta(cv->w, p);
    for (int i = 0; !rc && i < n; i++) rc = qn_synth_gguf_tensor(cv->w, qn_synth_plan_at(p, i));
    for (int i = 0; !rc && i < n; i++) rc = write_tensor(cv, qn_synth_plan_at(p, i));
    if (rc) {
        if (cv->w) qn_gguf_writer_abort(&cv->w);
        return rc;
    }
    return qn_gguf_writer_close(&cv->w);
}
