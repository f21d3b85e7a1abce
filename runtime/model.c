/* model.c — load a Qwen3-Next checkpoint onto the GPU (see model.h): plan every device tensor (fused
 * layouts, dtypes, sizes), check the memory budget, pack dense weights into a few arena buffers, give every
 * routed expert a slot, and upload everything through double-buffered staging with a progress line. */
#include "qn_time.h"
#include "model.h"
#include "model_gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "expert_host.h"
#include "expert_store.h"
#include "experts.h"
#include "qn_log.h"
#include "qn_num.h"
#include "model_stream.h"
#include "ref_ops.h"
#include "upload.h"

#define GIB(x) ((double)(x) / 1073741824.0)
#define ALIGN 256u
#define ARENA_MAX (1ull << 30)
#define MAXPARTS 4

/* ---- the plan: one entry per device tensor ------------------------------------------------------ */

enum perm { PERM_NONE = 0, PERM_GDN, PERM_QPROJ };

struct wdesc {
    qn_wt *dst;
    bool vec;                        /* small vector / conv weight: always f32 */
    bool exp_dtype;                  /* in the routed experts' dtype (down_s: the MoE down kernels read both) */
    enum perm perm;
    int nparts;
    const qn_st_tensor *part[MAXPARTS];
    uint32_t rows, cols;
};

struct plan {
    struct wdesc *d;
    int n, cap;
};

static int64_t numel(const qn_st_tensor *t) { return qn_st_numel(t); }

static bool native(qn_dtype t) { return t == QN_DT_BF16 || t == QN_DT_F16 || t == QN_DT_F32; }

/* The dtype of a device tensor built from these parts: their common dtype if the kernels read it, else f32. */
static qn_dtype pick_dtype(const struct wdesc *w)
{
    if (w->vec) return QN_DT_F32;
    qn_dtype t = w->part[0]->dtype;
    for (int i = 1; i < w->nparts; i++)
        if (w->part[i]->dtype != t) return QN_DT_F32;
    return native(t) ? t : QN_DT_F32;
}

static int find(const qn_st_store *st, const qn_st_tensor **out, const char *fmt, int layer)
{
    char name[160];
    snprintf(name, sizeof name, fmt, layer);
    *out = qn_st_find(st, name);
    if (!*out) return qn_fail(-ENOENT, "tensor '%s' is missing from the checkpoint", name);
    return 0;
}

/* Add a device tensor made of the named parts (printf formats with the layer number) stacked by rows. */
static int add(struct plan *p, const qn_st_store *st, qn_wt *dst, bool vec, enum perm perm, int layer, int nparts,
               const char *const *names)
{
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 256;
        struct wdesc *d = realloc(p->d, sizeof *d * (size_t)cap);
        if (!d) return qn_fail(-ENOMEM, "out of memory");
        p->d = d;
        p->cap = cap;
    }
    struct wdesc *w = &p->d[p->n];
    memset(w, 0, sizeof *w);
    w->dst = dst;
    w->vec = vec;
    w->perm = perm;
    w->nparts = nparts;
    int64_t rows = 0;
    for (int i = 0; i < nparts; i++) {
        int rc = find(st, &w->part[i], names[i], layer);
        if (rc) return rc;
        const qn_st_tensor *t = w->part[i];
        int64_t r = t->shape[0] ? t->shape[0] : 1, c = numel(t) / r;
        if (vec && t->ndim == 1) r = numel(t), c = 1;       /* norms, A_log, dt_bias: [n] */
        else if (vec) c = numel(t) / r;                      /* conv1d.weight [CD, 1, K] -> [CD, K] */
        if (i > 0 && c != w->cols)
            return qn_fail(QN_E_FORMAT, "tensor '%s' has %lld columns, '%s' has %u: they cannot be fused", t->name,
                           (long long)c, w->part[0]->name, w->cols);
        w->cols = (uint32_t)c;
        rows += r;
    }
    w->rows = (uint32_t)rows;
    p->n++;
    return 0;
}

#define ADD(dst, vec, perm, layer, ...) \
    do { \
        static const char *const names_[] = { __VA_ARGS__ }; \
        int rc_ = add(p, st, (dst), (vec), (perm), (layer), (int)(sizeof names_ / sizeof names_[0]), names_); \
        if (rc_) return rc_; \
    } while (0)

static int plan_layer(struct plan *p, const qn_st_store *st, const qn_config *c, struct qn_mlayer *l, int i)
{
    l->full = qn_cfg_is_full(c, i);
    ADD(&l->in_norm, true, PERM_NONE, i, "model.layers.%d.input_layernorm.weight");
    ADD(&l->post_norm, true, PERM_NONE, i, "model.layers.%d.post_attention_layernorm.weight");
    if (l->full) {
        ADD(&l->w_qkv, false, PERM_QPROJ, i, "model.layers.%d.self_attn.q_proj.weight",
            "model.layers.%d.self_attn.k_proj.weight", "model.layers.%d.self_attn.v_proj.weight");
        ADD(&l->q_norm, true, PERM_NONE, i, "model.layers.%d.self_attn.q_norm.weight");
        ADD(&l->k_norm, true, PERM_NONE, i, "model.layers.%d.self_attn.k_norm.weight");
        ADD(&l->w_o, false, PERM_NONE, i, "model.layers.%d.self_attn.o_proj.weight");
    } else {
        ADD(&l->w_in, false, PERM_GDN, i, "model.layers.%d.linear_attn.in_proj_qkvz.weight",
            "model.layers.%d.linear_attn.in_proj_ba.weight");
        ADD(&l->conv_w, true, PERM_NONE, i, "model.layers.%d.linear_attn.conv1d.weight");
        ADD(&l->A_log, true, PERM_NONE, i, "model.layers.%d.linear_attn.A_log");
        ADD(&l->dt_bias, true, PERM_NONE, i, "model.layers.%d.linear_attn.dt_bias");
        ADD(&l->gnorm, true, PERM_NONE, i, "model.layers.%d.linear_attn.norm.weight");
        ADD(&l->w_out, false, PERM_NONE, i, "model.layers.%d.linear_attn.out_proj.weight");
    }
    ADD(&l->w_moe, false, PERM_NONE, i, "model.layers.%d.mlp.gate.weight",
        "model.layers.%d.mlp.shared_expert.gate_proj.weight", "model.layers.%d.mlp.shared_expert.up_proj.weight",
        "model.layers.%d.mlp.shared_expert_gate.weight");
    ADD(&l->shared_down, false, PERM_NONE, i, "model.layers.%d.mlp.shared_expert.down_proj.weight");
    p->d[p->n - 1].exp_dtype = true;
    return 0;
}

static int plan_model(struct plan *p, const qn_st_store *st, qn_model *m)
{
    const qn_config *c = &m->c;
    ADD(&m->embed, false, PERM_NONE, 0, "model.embed_tokens.weight");
    ADD(&m->norm, true, PERM_NONE, 0, "model.norm.weight");
    if (!c->tie_word_embeddings) ADD(&m->lm_head, false, PERM_NONE, 0, "lm_head.weight");
    for (int i = 0; i < c->num_layers; i++) {
        int rc = plan_layer(p, st, c, &m->L[i], i);
        if (rc) return rc;
    }
    for (int i = 0; i < p->n; i++) {
        struct wdesc *w = &p->d[i];
        w->dst->dtype = w->exp_dtype ? m->exp_dtype : pick_dtype(w);
        w->dst->rows = w->rows;
        w->dst->cols = w->cols;
        w->dst->bytes = (uint64_t)w->rows * w->cols * (uint64_t)qn_dtype_size(w->dst->dtype);
    }
    return 0;
}

/* ---- fused row orders ---------------------------------------------------------------------------- */

int qn_model_gdn_src_row(const qn_config *c, int r, int *which)
{
    int Hk = c->lin_k_heads, Hv = c->lin_v_heads, dk = c->lin_k_dim, dv = c->lin_v_dim, rr = Hv / Hk;
    int KD = Hk * dk, VD = Hv * dv, G = 2 * dk + 2 * rr * dv; /* rows per key-head group of in_proj_qkvz */
    *which = 0;
    if (r < KD) return (r / dk) * G + r % dk;                                 /* q head g, dim d */
    if ((r -= KD) < KD) return (r / dk) * G + dk + r % dk;                    /* k */
    if ((r -= KD) < VD) { int h = r / dv; return (h / rr) * G + 2 * dk + (h % rr) * dv + r % dv; }       /* v */
    if ((r -= VD) < VD) { int h = r / dv; return (h / rr) * G + 2 * dk + rr * dv + (h % rr) * dv + r % dv; } /* z */
    r -= VD;
    *which = 1;
    if (r < Hv) return (r / rr) * 2 * rr + r % rr;                            /* b[h] */
    r -= Hv;
    return (r / rr) * 2 * rr + rr + r % rr;                                   /* a[h] */
}

/* Source (part, row) of destination row r of a fused tensor. */
static void src_row(const qn_config *c, const struct wdesc *w, uint32_t r, int *part, uint32_t *row)
{
    if (w->perm == PERM_GDN) {
        *row = (uint32_t)qn_model_gdn_src_row(c, (int)r, part);
        return;
    }
    uint32_t QD = (uint32_t)qn_cfg_q_dim(c), D = (uint32_t)c->head_dim;
    if (w->perm == PERM_QPROJ && r < 2 * QD) { /* per head [query D | gate D] -> [all query | all gate] */
        uint32_t g = r / QD, h = (r % QD) / D, d = r % D;
        *part = 0;
        *row = h * 2 * D + g * D + d;
        return;
    }
    int p = 0;
    while (p + 1 < w->nparts && r >= (uint32_t)w->part[p]->shape[0]) r -= (uint32_t)w->part[p++]->shape[0];
    *part = p;
    *row = r;
}

/* ---- staging uploads (upload.h) ------------------------------------------------------------------ */

/* Raw bytes [0, n) of file tensor t to dst + off, in staging-sized chunks. */
static int upl_raw(struct qn_upl *u, const qn_st_store *st, const qn_st_tensor *t, qn_buf *dst, uint64_t off, uint64_t n)
{
    for (uint64_t at = 0; at < n;) {
        uint64_t k = n - at < u->cap ? n - at : u->cap;
        void *p;
        int rc = qn_upl_put(u, dst, off + at, k, &p);
        if (!rc) rc = qn_st_read_raw(st, t, at, p, k);
        if (rc) return rc;
        at += k;
    }
    return 0;
}


/* ---- building tensors on the host when they need conversion or row permutation -------------------- */

struct scratch {
    void *p[MAXPARTS + 1];
    size_t n[MAXPARTS + 1];
};

static void *scratch_get(struct scratch *s, int i, size_t bytes)
{
    if (s->n[i] < bytes) {
        void *q = realloc(s->p[i], bytes);
        if (!q) return NULL;
        s->p[i] = q;
        s->n[i] = bytes;
    }
    return s->p[i];
}

/* Whole tensor t in dtype `to` (its own bytes when the dtypes agree, else through f32) into dst. */
static int read_as(const qn_st_store *st, const qn_st_tensor *t, qn_dtype to, void *dst)
{
    size_t n = (size_t)numel(t);
    if (t->dtype == to) return qn_st_read_raw(st, t, 0, dst, t->nbytes);
    if (to == QN_DT_F32) return qn_st_read_f32_dequant(st, t->name, dst, n);
    float *tmp = malloc(sizeof *tmp * (n ? n : 1));
    if (!tmp) return qn_fail(-ENOMEM, "out of memory converting '%s'", t->name);
    int rc = qn_st_read_f32_dequant(st, t->name, tmp, n);
    uint16_t *o = dst;
    for (size_t i = 0; !rc && i < n; i++) o[i] = to == QN_DT_BF16 ? qn_f32_to_bf16(tmp[i]) : qn_f32_to_f16(tmp[i]);
    free(tmp);
    return rc;
}

static int upload_desc(struct qn_upl *u, const qn_st_store *st, const qn_config *c, const struct wdesc *w,
                       struct scratch *s)
{
    qn_wt *d = w->dst;
    if (w->nparts == 1 && w->perm == PERM_NONE && w->part[0]->dtype == d->dtype)
        return upl_raw(u, st, w->part[0], d->buf, d->off, d->bytes);
    size_t es = (size_t)qn_dtype_size(d->dtype), rowb = (size_t)w->cols * es;
    for (int i = 0; i < w->nparts; i++) {
        void *p = scratch_get(s, i, (size_t)numel(w->part[i]) * es);
        if (!p) return qn_fail(-ENOMEM, "out of memory reading '%s'", w->part[i]->name);
        int rc = read_as(st, w->part[i], d->dtype, p);
        if (rc) return rc;
    }
    char *out = scratch_get(s, MAXPARTS, (size_t)d->bytes);
    if (!out) return qn_fail(-ENOMEM, "out of memory building a %.1f MiB tensor", (double)d->bytes / 1048576.0);
    for (uint32_t r = 0; r < w->rows; r++) {
        int part;
        uint32_t row;
        src_row(c, w, r, &part, &row);
        memcpy(out + (size_t)r * rowb, (const char *)s->p[part] + (size_t)row * rowb, rowb);
    }
    return qn_upl_host(u, out, d->buf, d->off, d->bytes);
}

/* ---- experts ------------------------------------------------------------------------------------- */

static const char *const exp_names[3] = {
    "model.layers.%d.mlp.experts.%d.gate_proj.weight",
    "model.layers.%d.mlp.experts.%d.up_proj.weight",
    "model.layers.%d.mlp.experts.%d.down_proj.weight",
};

static const qn_st_tensor *exp_tensor(const qn_st_store *st, int l, int e, int part)
{
    char name[160];
    snprintf(name, sizeof name, exp_names[part], l, e);
    return qn_st_find(st, name);
}

/* The slot dtype: the experts' common dtype if the kernels read it, else f32. */
static int plan_experts(const qn_config *c, const qn_st_store *st, qn_dtype *dt, uint64_t part_bytes[3])
{
    const qn_st_tensor *t0 = exp_tensor(st, 0, 0, 0);
    if (!t0) return qn_fail(-ENOENT, "expert tensors are missing from the checkpoint (model.layers.0.mlp.experts.0...)");
    qn_dtype t = t0->dtype;
    for (int l = 0; l < c->num_layers; l++)
        for (int e = 0; e < c->num_experts; e++)
            for (int k = 0; k < 3; k++) {
                const qn_st_tensor *x = exp_tensor(st, l, e, k);
                if (!x) {
                    char name[160];
                    snprintf(name, sizeof name, exp_names[k], l, e);
                    return qn_fail(-ENOENT, "tensor '%s' is missing from the checkpoint", name);
                }
                if (x->dtype != t) t = QN_DT_COUNT;
            }
    *dt = t != QN_DT_COUNT && native(t) ? t : QN_DT_F32;
    uint64_t IH = (uint64_t)c->moe_inter * (uint64_t)c->hidden_size * (uint64_t)qn_dtype_size(*dt);
    part_bytes[0] = part_bytes[1] = part_bytes[2] = IH;
    return 0;
}

static int upload_expert(struct qn_upl *u, const qn_st_store *st, qn_model *m, int l, int e, struct scratch *s)
{
    uint64_t off;
    qn_buf *pool = m->host_tier ? qn_eh_home(m, l, e, false, &off)   /* VRAM cache + host tier: its host slot */
                                : qn_model_slot(m, (uint32_t)m->table[(size_t)l * m->c.num_experts + e], &off);
    for (int k = 0; k < 3; k++) {
        const qn_st_tensor *t = exp_tensor(st, l, e, k);
        int rc;
        if (t->dtype == m->exp_dtype) {
            rc = upl_raw(u, st, t, pool, off, m->exp_part_bytes[k]);
        } else {
            void *p = scratch_get(s, 0, (size_t)m->exp_part_bytes[k]);
            rc = p ? read_as(st, t, m->exp_dtype, p) : qn_fail(-ENOMEM, "out of memory");
            if (!rc) rc = qn_upl_host(u, p, pool, off, m->exp_part_bytes[k]);
        }
        if (rc) return rc;
        off += m->exp_part_bytes[k];
    }
    return 0;
}

/* ---- sizes, budget, allocation --------------------------------------------------------------------- */

static uint64_t arena_cap(const qn_vk *v)
{
    const struct qn_caps *c = qn_vk_caps(v);
    uint64_t cap = ARENA_MAX;
    if (c->max_storage_range && c->max_storage_range < cap) cap = c->max_storage_range;
    if (c->max_alloc && c->max_alloc < cap) cap = c->max_alloc;
    return cap / ALIGN * ALIGN;
}

/* Assign arena offsets (tensors larger than `cap` get an arena of their own); returns the arena count. */
static uint32_t pack(struct plan *p, uint64_t cap, uint64_t *sizes)
{
    uint32_t na = 0;
    uint64_t at = 0;
    bool any = false;
    for (int i = 0; i < p->n; i++) {
        qn_wt *d = p->d[i].dst;
        uint64_t b = (d->bytes + ALIGN - 1) / ALIGN * ALIGN;
        if (any && at + b > cap) { /* close the current arena */
            if (sizes) sizes[na] = at;
            na++;
            at = 0;
        }
        d->off = at;
        d->buf = (qn_buf *)(uintptr_t)(na + 1); /* arena index + 1 until allocated */
        at += b;
        any = true;
    }
    if (any) {
        if (sizes) sizes[na] = at;
        na++;
    }
    return na;
}

static int plan_all(qn_model *m, const qn_st_store *st, uint64_t cap, struct plan *p, uint64_t **sizes)
{
    const qn_config *c = &m->c;
    m->L = calloc((size_t)c->num_layers, sizeof *m->L);
    if (!m->L) return qn_fail(-ENOMEM, "out of memory");
    int rc = plan_experts(c, st, &m->exp_dtype, m->exp_part_bytes);
    if (!rc) rc = plan_model(p, st, m);
    if (rc) return rc;
    m->n_arenas = pack(p, cap, NULL);
    *sizes = calloc(m->n_arenas ? m->n_arenas : 1, sizeof **sizes);
    if (!*sizes) return qn_fail(-ENOMEM, "out of memory");
    pack(p, cap, *sizes);
    m->dense_bytes = 0;
    for (uint32_t i = 0; i < m->n_arenas; i++) m->dense_bytes += (*sizes)[i];
    m->slot_bytes = (m->exp_part_bytes[0] + m->exp_part_bytes[1] + m->exp_part_bytes[2] + 15) / 16 * 16;
    m->n_slots = (uint32_t)c->num_layers * (uint32_t)c->num_experts;
    m->expert_bytes = (uint64_t)m->n_slots * m->slot_bytes;
    return 0;
}

static int check_budget(const qn_model *m, const struct qn_model_params *p)
{
    struct qn_mem_stats ms;
    qn_mem_stats(m->v, &ms);
    uint64_t budget = ms.device_budget > p->reserve_bytes ? ms.device_budget - p->reserve_bytes : 0;
    uint64_t avail = budget > ms.device_used ? budget - ms.device_used : 0;
    uint64_t need = m->dense_bytes + (m->experts_host ? 0 : m->expert_bytes) + (uint64_t)m->c.num_layers *
                    m->c.num_experts * 4u;   /* host tier: the experts' pools are system memory */
    if (need > avail)
        return qn_fail(-ENOMEM, "%s does not fit on '%s': it needs %.2f GiB of device memory (dense weights %.2f GiB + "
                       "routed experts %.2f GiB) plus the KV cache, but the budget is %.2f GiB (%.2f GiB device budget, "
                       "%.2f GiB reserved, %.2f GiB in use). A smaller --expert-cache streams the routed experts from "
                       "disk into that many bytes of slots (at least top-k = %d slots of %.2f MiB)", m->path,
                       qn_vk_caps(m->v)->name, GIB(need), GIB(m->dense_bytes), GIB(m->expert_bytes), GIB(avail),
                       GIB(ms.device_budget), GIB(p->reserve_bytes), GIB(ms.device_used), m->c.top_k,
                       (double)m->slot_bytes / 1048576.0);
    return 0;
}

/* --expert-cache below the experts' bytes: streaming with fewer slots (model_stream.c). */
static uint32_t n_experts_total(const qn_model *m) { return (uint32_t)m->c.num_layers * (uint32_t)m->c.num_experts; }

uint64_t qn_model_pool_cap(const qn_model *m)
{
    const struct qn_caps *caps = qn_vk_caps(m->v);
    uint64_t cap = caps->max_storage_range;
    if (m->pool_bytes_max && m->pool_bytes_max < cap) cap = m->pool_bytes_max;
    if (caps->max_alloc && caps->max_alloc < cap) cap = caps->max_alloc;
    if (cap > 0xffffffffull) cap = 0xffffffffull; /* MoE kernels address a pool with 32-bit byte offsets */
    return cap;
}

/* No --expert-cache: every expert resident when they fit both the device budget (after the dense weights, an
 * eighth kept for the KV cache and activations) and the MoE kernels' pool bindings; otherwise stream them
 * through the largest cache that fits. */
static uint64_t auto_expert_cache(const qn_model *m, const struct qn_model_params *p)
{
    struct qn_mem_stats ms;
    qn_mem_stats(m->v, &ms);
    uint64_t budget = ms.device_budget > p->reserve_bytes ? ms.device_budget - p->reserve_bytes : 0;
    uint64_t used = ms.device_used + m->dense_bytes;
    uint64_t avail = budget > used ? budget - used : 0;
    avail -= avail / 8;
    uint64_t slots = qn_model_pool_cap(m) / (m->slot_bytes ? m->slot_bytes : 1);
    uint64_t bind = slots * QN_MODEL_MAX_POOLS * m->slot_bytes;
    uint64_t cap = avail < bind ? avail : bind;
    return m->expert_bytes <= cap ? 0 : cap;
}

static int plan_streaming(qn_model *m, const struct qn_model_params *p)
{
    if (m->experts_host) return 0;   /* host tier: every expert resident in system memory */
    uint64_t cache = p->expert_cache ? p->expert_cache : auto_expert_cache(m, p);
    uint64_t min_bytes = (uint64_t)qn_exp_min_slots(m->c.top_k, p->prefetch, 0) * m->slot_bytes;
    if (!p->expert_cache && cache < min_bytes) return 0; /* not even streaming fits: check_budget says why */
    if (!cache || cache >= m->expert_bytes) return 0;
    if (!p->expert_cache)
        QN_INFO("the routed experts (%.2f GiB) do not fit on '%s' next to the dense weights: streaming them through "
                "a %.2f GiB expert cache (--expert-cache chooses the size)", GIB(m->expert_bytes),
                qn_vk_caps(m->v)->name, GIB(cache));
    return qn_mst_plan(m, cache, p);
}

/* Streaming: every expert part located in the safetensors files (expert_store.h), then model_stream.c. */
static int open_stream(qn_model *m, const qn_st_store *st, const struct qn_model_params *p)
{
    qn_es *es = NULL;
    int rc = qn_es_from_st(&es, st, &m->c, m->exp_dtype, m->exp_part_bytes, m->slot_bytes);
    return rc ? rc : qn_mst_open(m, es, p);
}

/* QNEXT_HOST_MMAP: the host tier reads the experts out of the files' page cache (expert_host.h). */
static int map_experts(qn_model *m, const qn_st_store *st)
{
    qn_es *es = NULL;
    int rc = qn_es_from_st(&es, st, &m->c, m->exp_dtype, m->exp_part_bytes, m->slot_bytes);
    if (!rc) rc = qn_eh_map(m, es);
    qn_es_free(&es);
    return rc;
}

static int alloc_all(qn_model *m, struct plan *p, const uint64_t *sizes, const struct qn_model_params *prm)
{
    int rc;
    const qn_config *c = &m->c;
    m->arenas = calloc(m->n_arenas ? m->n_arenas : 1, sizeof *m->arenas);
    if (!m->arenas) return qn_fail(-ENOMEM, "out of memory");
    for (uint32_t i = 0; i < m->n_arenas; i++) {
        char name[64];
        snprintf(name, sizeof name, "weights %u/%u", i + 1, m->n_arenas);
        if ((rc = qn_buf_create(m->v, QN_MEM_DEVICE, sizes[i], name, &m->arenas[i]))) return rc;
    }
    for (int i = 0; i < p->n; i++) p->d[i].dst->buf = m->arenas[(uintptr_t)p->d[i].dst->buf - 1];
    if (c->tie_word_embeddings) m->lm_head = m->embed;
    if ((rc = qn_eh_alloc(m, prm)) || m->host_tier) return rc;   /* host tier's VRAM cache / gather (expert_host.h) */
    /* expert pools */
    const struct qn_caps *caps = qn_vk_caps(m->v);
    uint64_t cap = qn_model_pool_cap(m);
    if (cap < m->slot_bytes)
        return qn_fail(QN_E_UNSUPPORTED, "one expert (%.1f MiB) is larger than a storage buffer may be on '%s' "
                       "(%.1f MiB)", (double)m->slot_bytes / 1048576.0, caps->name, (double)cap / 1048576.0);
    m->slots_per_pool = (uint32_t)(cap / m->slot_bytes);
    if (m->slots_per_pool > m->n_slots) m->slots_per_pool = m->n_slots;
    m->n_pools = (m->n_slots + m->slots_per_pool - 1) / m->slots_per_pool;
    if (m->n_pools > QN_MODEL_MAX_POOLS)
        return qn_fail(QN_E_UNSUPPORTED, "the routed experts (%.2f GiB) need %u pool buffers of at most %.2f GiB on '%s'; "
                       "the MoE kernels bind at most %d", GIB(m->expert_bytes), m->n_pools, GIB(cap), caps->name,
                       QN_MODEL_MAX_POOLS);
    /* streaming: pools in device-local host-visible memory (resizable BAR) where such a heap holds them, so
     * expert reads land in the slots directly (model_stream.c's UMA path); plain device memory otherwise */
    enum qn_mem pk = m->experts_host ? QN_MEM_HOST
                     : m->n_slots < (uint64_t)c->num_layers * (uint64_t)c->num_experts ? qn_mst_pool_mem(m)
                                                                                       : QN_MEM_DEVICE;
    for (uint32_t i = 0; i < m->n_pools; i++) {
        uint32_t ns = i + 1 < m->n_pools ? m->slots_per_pool : m->n_slots - i * m->slots_per_pool;
        char name[64];
        snprintf(name, sizeof name, "experts %u/%u", i + 1, m->n_pools);
        if ((rc = qn_mst_pool_create(m->v, &pk, (uint64_t)ns * m->slot_bytes, name, &m->pools[i]))) return rc;
    }
    /* slot table: resident, slot = layer * E + expert */
    size_t nt = (size_t)c->num_layers * (size_t)c->num_experts;
    if (!(m->table = malloc(sizeof *m->table * nt))) return qn_fail(-ENOMEM, "out of memory");
    for (size_t i = 0; i < nt; i++) m->table[i] = nt == m->n_slots ? (int32_t)i : -1; /* streaming: all absent */
    if (pk == QN_MEM_HOST) pk = QN_MEM_DEVICE;   /* host tier: the table stays in VRAM */
    if ((rc = qn_mst_pool_create(m->v, &pk, sizeof *m->table * nt, "slot table", &m->slot_table))) return rc;
    return qn_buf_write(m->v, m->slot_table, 0, m->table, sizeof *m->table * nt);
}

static int upload_all(qn_model *m, const qn_st_store *st, struct plan *p, const struct qn_model_params *prm)
{
    struct qn_upl u = { .path = m->path };
    struct scratch s = { 0 };
    u.progress = prm->progress < 0 ? isatty(2) : prm->progress;
    int rc = qn_upl_open(&u, m->v, m->dense_bytes + m->expert_bytes);
    for (int i = 0; !rc && i < p->n; i++) rc = upload_desc(&u, st, &m->c, &p->d[i], &s);
    qn_eh_fill_begin(m);   /* host tier: staged fill (expert_host.h) */
    for (int l = 0; !rc && !m->stream && !qn_eh_mapped(m) && l < m->c.num_layers; l++)   /* (page cache: no fill) */
        for (int e = 0; !rc && e < m->c.num_experts; e++) rc = upload_expert(&u, st, m, l, e, &s);
    qn_eh_fill_end(m);
    rc = qn_upl_close(&u, rc);
    for (int i = 0; i <= MAXPARTS; i++) free(s.p[i]);
    return rc;
}

/* RoPE inverse frequencies (the reference's formula, YaRN included) as a small f32 tensor. */
static int upload_rope(qn_model *m)
{
    const qn_config *c = &m->c;
    int rot = qn_cfg_rot_dim(c), n = rot / 2 > 0 ? rot / 2 : 1;
    float *f = calloc((size_t)n, sizeof *f);
    if (!f) return qn_fail(-ENOMEM, "out of memory");
    bool yarn = c->rope_type == QN_ROPE_YARN;
    qn_ref_rope_inv_freq(f, rot, c->rope_theta, yarn ? c->yarn_factor : 1.0, (double)c->yarn_orig_max_pos,
                         c->yarn_beta_fast, c->yarn_beta_slow, c->yarn_truncate);
    m->attn_factor = yarn ? (float)c->rope_attn_factor : 1.0f;
    m->inv_freq = (qn_wt){ .bytes = sizeof *f * (size_t)n, .dtype = QN_DT_F32, .rows = (uint32_t)n, .cols = 1 };
    int rc = qn_buf_create(m->v, QN_MEM_DEVICE, m->inv_freq.bytes, "rope inv_freq", &m->inv_freq.buf);
    if (!rc) rc = qn_buf_write(m->v, m->inv_freq.buf, 0, f, m->inv_freq.bytes);
    free(f);
    return rc;
}

/* ---- the interface ------------------------------------------------------------------------------- */

void qn_model_default_params(struct qn_model_params *p)
{
    memset(p, 0, sizeof *p);
    p->progress = -1;
    const char *e = getenv("QNEXT_EXPERTS");   /* A/B without a command-line change; --experts overrides it */
    p->experts_host = e && !strcmp(e, "host");
}

int qn_model_plan_bytes(const qn_config *c, const qn_st_store *st, uint64_t *dense, uint64_t *experts)
{
    qn_model m = { .c = *c };
    struct plan p = { 0 };
    uint64_t *sizes = NULL;
    int rc = plan_all(&m, st, ARENA_MAX, &p, &sizes);
    if (!rc) {
        *dense = m.dense_bytes;
        *experts = m.expert_bytes;
    }
    free(sizes);
    free(p.d);
    free(m.L);
    return rc;
}

int qn_model_load(qn_model **out, qn_vk *v, const char *path, const struct qn_model_params *prm)
{
    struct qn_model_params dp;
    if (!prm) {
        qn_model_default_params(&dp);
        prm = &dp;
    }
    *out = NULL;
    qn_model *m = calloc(1, sizeof *m);
    if (!m) return qn_fail(-ENOMEM, "out of memory");
    m->v = v;
    m->pool_bytes_max = prm->pool_bytes_max;
    m->experts_host = prm->experts_host;
    snprintf(m->path, sizeof m->path, "%s", path);
    qn_st_store *st = NULL;
    struct plan p = { 0 };
    uint64_t *sizes = NULL;
    double t0 = qn_now_s();
    bool gguf = qn_model_path_is_gguf(path); /* model_gguf.c fills config, weights and experts */
    int rc = qn_eh_check(prm);
    if (!rc) rc = gguf ? qn_model_gguf_load(m, prm) : qn_cfg_load(&m->c, path);
    if (!rc && !gguf) rc = qn_st_open(&st, path);
    if (!rc && !gguf) rc = qn_st_check_model(st, &m->c, 1);
    if (!rc && !gguf) rc = plan_all(m, st, arena_cap(v), &p, &sizes);
    if (!rc && !gguf) rc = plan_streaming(m, prm);
    if (!rc && !gguf) rc = check_budget(m, prm);
    if (!rc && !gguf) rc = alloc_all(m, &p, sizes, prm);
    if (!rc) rc = upload_rope(m);
    if (!rc && !gguf && m->n_slots < n_experts_total(m)) rc = open_stream(m, st, prm);
    if (!rc && !gguf) rc = upload_all(m, st, &p, prm);
    if (!rc && !gguf && qn_eh_mapped(m)) rc = map_experts(m, st);   /* host tier on the page cache */
    if (!rc) rc = qn_eh_loaded(m);   /* host tier: the pinned hot set into its VRAM slots */
    if (!rc && !m->stream && prm->expert_trace)
        rc = qn_fail(-EINVAL, "--expert-trace counts the experts a streaming run routes to, but every routed expert "
                     "of %s is resident here (an --expert-cache below %.1f MiB streams them)", path,
                     (double)m->expert_bytes / 1048576.0);
    if (!rc && !m->stream && !m->host_tier && (prm->expert_hot || prm->expert_policy))
        QN_INFO("every routed expert is resident: --expert-policy and --expert-hot have nothing to do");
    m->load_seconds = qn_now_s() - t0;
    free(sizes);
    free(p.d);
    qn_st_close(&st);
    if (rc) {
        qn_model_free(&m);
        return rc;
    }
    QN_INFO("model %s: %.2f GiB dense weights in %u buffers, %u experts of %.2f MiB (%s) in %u pools, loaded in "
            "%.1f s", path, GIB(m->dense_bytes), m->n_arenas,
            m->host_tier ? (uint32_t)(m->c.num_layers * m->c.num_experts) : m->n_slots,
            (double)qn_mst_slot_bytes(m) / 1048576.0,
            m->L && m->L[0].exp_qtype[0] ? "GGUF blocks" : qn_dtype_name(m->exp_dtype), m->n_pools, m->load_seconds);
    if (m->experts_host) {
        char line[400];
        qn_eh_describe(m, line, sizeof line);
        QN_INFO("%s", line);
    }
    *out = m;
    return 0;
}

void qn_model_free(qn_model **pm)
{
    qn_model *m = *pm;
    if (!m) return;
    qn_mst_close(&m->stream);   /* first: its reads and copies into the pools and slot table finish there */
    qn_eh_close(m);             /* the host tier's copies, slabs and down pools */
    for (uint32_t i = 0; m->arenas && i < m->n_arenas; i++) qn_buf_destroy(m->v, &m->arenas[i]);
    for (uint32_t i = 0; i < QN_MODEL_MAX_POOLS; i++) qn_buf_destroy(m->v, &m->pools[i]);
    qn_buf_destroy(m->v, &m->slot_table);
    qn_buf_destroy(m->v, &m->inv_freq.buf);
    free(m->arenas);
    free(m->table);
    free(m->L);
    free(m);
    *pm = NULL;
}
