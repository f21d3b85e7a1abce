/* model_gguf.c — a llama.cpp qwen3next GGUF onto the GPU (model_gguf.h): every HF tensor located through
 * loader/gguf_qwen3next, fused into model.c's layouts (GDN w_in, attention w_qkv, MoE w_moe; see model.h),
 * in GGUF blocks where a kernel reads them, else dequantized to f32 (on QNEXT_LOAD_THREADS threads, default one
 * per CPU up to 16), one buffer per dense tensor; routed experts in slots (blocks: gate|up pools + down pools; or
 * f32 gate|up|down): every expert resident (slot images read through the expert store straight into staging on
 * those threads), or, with --expert-cache below their size or when they do not fit, as many slots as the budget
 * holds and streaming (model_stream.c). Every upload goes through upload.h's double-buffered staging. */
#include "model_gguf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "expert_host.h"
#include "expert_store.h"
#include "experts.h"
#include "gguf.h"
#include "gguf_qwen3next.h"
#include "qn_err.h"
#include "qn_log.h"
#include "qn_time.h"
#include "model_stream.h"
#include "quant.h"
#include "upload.h"

#define GIB(x) ((double)(x) / 1073741824.0)
#define MAXP 4

enum perm { PERM_NONE = 0, PERM_GDN, PERM_QPROJ };

struct gl {
    qn_model *m;
    const qn_q3n *q;
    uint32_t cap;
    uint32_t nq;    /* tensors kept in blocks */
    uint64_t qbytes;
    bool quant;     /* keep qmatvec-readable matrices in their blocks (QNEXT_GGUF_F32=1: dequantize everything) */
    const qn_gguf *gf;
    struct qn_upl u;  /* every upload goes through its double-buffered staging */
    int nthreads;     /* dequantization threads */
    uint64_t total;   /* bytes to upload (estimate, for the progress line) */
    uint64_t exp_file_bytes;  /* routed experts' bytes in the file */
};

/* ---- dequantization on several threads ------------------------------------------------------------ */

#define MAXT 16

struct deq_job {
    const qn_q3n *q;
    qn_q3n_src s;
    float *dst;
    int rc;
    char msg[300];
};

static void *deq_run(void *arg)
{
    struct deq_job *j = arg;
    j->rc = qn_q3n_read_f32(j->q, &j->s, j->dst, j->s.nrows * j->s.t->ne[0]);
    if (j->rc) snprintf(j->msg, sizeof j->msg, "%s", qn_errmsg());
    return NULL;
}

/* qn_q3n_read_f32 with the rows split over g->nthreads threads (row transforms are elementwise; the
 * QKVZ_SPLIT gather and small tensors stay on this thread). */
static int read_f32_mt(const struct gl *g, const qn_q3n_src *s, float *dst, uint64_t n)
{
    int nt = g->nthreads;
    if (s->xform == QN_Q3N_QKVZ_SPLIT || nt < 2 || n < (1u << 18) || s->nrows < (uint64_t)nt * 4)
        return qn_q3n_read_f32(g->q, s, dst, n);
    if (n != s->nrows * s->t->ne[0]) return qn_q3n_read_f32(g->q, s, dst, n); /* its message */
    struct deq_job job[MAXT];
    pthread_t th[MAXT];
    bool started[MAXT] = { false };
    uint64_t per = (s->nrows + (uint64_t)nt - 1) / (uint64_t)nt, cols = s->t->ne[0];
    for (int i = 0; i < nt; i++) {
        uint64_t r0 = (uint64_t)i * per, nr = r0 < s->nrows ? (s->nrows - r0 < per ? s->nrows - r0 : per) : 0;
        job[i] = (struct deq_job){ .q = g->q, .s = *s, .dst = dst + r0 * cols };
        job[i].s.row0 = s->row0 + r0;
        job[i].s.nrows = nr;
        if (nr && i > 0) started[i] = !pthread_create(&th[i], NULL, deq_run, &job[i]);
        if (nr && i > 0 && !started[i]) deq_run(&job[i]); /* no thread: do it here */
    }
    deq_run(&job[0]);
    int rc = 0;
    for (int i = 0; i < nt; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        if (job[i].rc && !rc) rc = qn_fail(job[i].rc, "%s", job[i].msg);
    }
    return rc;
}

static int n_threads(void)
{
    const char *ev = getenv("QNEXT_LOAD_THREADS");
    long n = ev && *ev ? strtol(ev, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAXT ? MAXT : (int)n;
}

bool qn_model_path_is_gguf(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n > 5 && !strcmp(path + n - 5, ".gguf");
}

int qn_model_gguf_config(const char *path, qn_config *c)
{
    qn_gguf *g = NULL;
    int nn = 0;
    int rc = qn_gguf_open(&g, path);
    if (!rc) rc = qn_q3n_read_config(g, c, &nn);
    qn_gguf_close(&g);
    return rc;
}

/* HF tensor `name` as f32 (malloc'd) with its row count (shape[0]) and columns (the rest). */
static int read_hf(const struct gl *g, const char *name, float **out, uint32_t *rows, uint32_t *cols)
{
    qn_q3n_src s;
    int rc = qn_q3n_find(g->q, name, &s);
    if (rc) return qn_fail(rc, "GGUF: no tensor for '%s'", name);
    uint64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= (uint64_t)s.shape[i];
    float *p = malloc(sizeof *p * (n ? n : 1));
    if (!p) return qn_fail(-ENOMEM, "out of memory reading '%s'", name);
    if ((rc = read_f32_mt(g, &s, p, n))) {
        free(p);
        return rc;
    }
    *out = p;
    *rows = (uint32_t)s.shape[0];
    *cols = (uint32_t)(n / (uint64_t)s.shape[0]);
    return 0;
}

/* Room for one more buffer in m->arenas. */
static int arena_room(struct gl *g)
{
    qn_model *m = g->m;
    if (m->n_arenas == g->cap) {
        uint32_t cap = g->cap ? g->cap * 2 : 64;
        qn_buf **a = realloc(m->arenas, sizeof *a * cap);
        if (!a) return qn_fail(-ENOMEM, "out of memory");
        memset(a + g->cap, 0, sizeof *a * (cap - g->cap));
        m->arenas = a;
        g->cap = cap;
    }
    return 0;
}

/* A device buffer of its own for bytes [0, n) of src, kept in m->arenas so qn_model_free releases it. */
static int new_buf(struct gl *g, const void *src, uint64_t n, const char *what, qn_buf **out)
{
    qn_model *m = g->m;
    int rc = arena_room(g);
    if (!rc) rc = qn_buf_create(m->v, QN_MEM_DEVICE, n ? n : 16, what, &m->arenas[m->n_arenas]);
    if (rc) return rc;
    *out = m->arenas[m->n_arenas++];
    return src ? qn_upl_host(&g->u, src, *out, 0, n) : 0;
}

/* Source (part, row) of destination row r (the same orders as model.c's fused tensors). */
static void src_row(const qn_config *c, enum perm perm, const uint32_t *prow, int nparts, uint32_t r, int *part,
                    uint32_t *row)
{
    if (perm == PERM_GDN) {
        *row = (uint32_t)qn_model_gdn_src_row(c, (int)r, part);
        return;
    }
    uint32_t QD = (uint32_t)qn_cfg_q_dim(c), D = (uint32_t)c->head_dim;
    if (perm == PERM_QPROJ && r < 2 * QD) { /* per head [query D | gate D] -> [all query | all gate] */
        *part = 0;
        *row = (r % QD) / D * 2 * D + r / QD * D + r % D;
        return;
    }
    int p = 0;
    while (p + 1 < nparts && r >= prow[p]) r -= prow[p++];
    *part = p;
    *row = r;
}

static bool qmv_type(uint32_t t)
{
    return t == QN_GGML_Q8_0 || t == QN_GGML_Q4_0 || t == QN_GGML_Q4_K || t == QN_GGML_Q5_K || t == QN_GGML_Q6_K;
}

/* The block type all parts share when they can stay quantized on the device (a qmatvec format, no value
 * transform, attn_qkv and attn_gate of one type), else 0. */
static uint32_t raw_type(const struct gl *g, int nparts, const qn_q3n_src *s)
{
    uint32_t t = s[0].t->type;
    for (int i = 0; i < nparts; i++)
        if (s[i].t->type != t || (s[i].t2 && s[i].t2->type != t) ||
            (s[i].xform != QN_Q3N_COPY && s[i].xform != QN_Q3N_QKVZ_SPLIT))
            return 0;
    return g->quant && qmv_type(t) ? t : 0;
}

/* fuse() keeping the GGUF blocks: rows (whole blocks) gathered in the fused order. */
static int fuse_raw(struct gl *g, qn_wt *dst, enum perm perm, int nparts, const qn_q3n_src *s, uint32_t qt)
{
    char *pt[MAXP] = { 0 }, *out = NULL;
    uint32_t prow[MAXP], rows = 0, cols = (uint32_t)(s[0].shape[1] * (s[0].ndim > 2 ? s[0].shape[2] : 1));
    uint64_t rowb = 0;
    int rc = qn_ggml_row_bytes(qt, cols, &rowb);
    for (int i = 0; !rc && i < nparts; i++) {
        uint64_t n = qn_q3n_src_bytes(&s[i]);
        prow[i] = (uint32_t)s[i].shape[0];
        rows += prow[i];
        if (!(pt[i] = malloc(n ? n : 1))) rc = qn_fail(-ENOMEM, "out of memory reading '%s'", s[i].t->name);
        if (!rc) rc = qn_q3n_read_raw(g->q, &s[i], pt[i], n);
    }
    uint64_t bytes = (uint64_t)rows * rowb;
    if (!rc && !(out = malloc(bytes ? bytes : 1))) rc = qn_fail(-ENOMEM, "out of memory fusing '%s'", s[0].t->name);
    for (uint32_t r = 0; !rc && r < rows; r++) {
        int part;
        uint32_t row;
        src_row(&g->m->c, perm, prow, nparts, r, &part, &row);
        memcpy(out + (size_t)r * rowb, pt[part] + (size_t)row * rowb, rowb);
    }
    if (!rc) {
        *dst = (qn_wt){ .off = 0, .bytes = bytes, .dtype = QN_DT_F32, .rows = rows, .cols = cols, .qtype = qt };
        rc = new_buf(g, out, bytes, s[0].t->name, &dst->buf);
        g->m->dense_bytes += bytes;
        g->nq++;
        g->qbytes += bytes;
    }
    for (int i = 0; i < nparts; i++) free(pt[i]);
    free(out);
    return rc;
}

/* One decode sub-tensor of dst: destination rows [row0, row0 + rows) from the rows of source `s` (in the HF
 * order qn_q3n_read_raw gives), gathered through src_row for part `part`. F32 sources make an f32 sub. */
static int add_sub(struct gl *g, qn_wt *dst, enum perm perm, const uint32_t *prow, int nparts, int part,
                   const qn_q3n_src *s, uint32_t row0, uint32_t rows)
{
    uint32_t qt = s->t->type == QN_GGML_F32 ? 0 : s->t->type;
    uint64_t n = qn_q3n_src_bytes(s), rowb = n / (s->nrows ? s->nrows : 1);
    char *raw = malloc(n ? n : 1), *out = malloc((uint64_t)rows * rowb + 1);
    int rc = raw && out ? qn_q3n_read_raw(g->q, s, raw, n) : qn_fail(-ENOMEM, "out of memory");
    for (uint32_t r = 0; !rc && r < rows; r++) {
        int pp = part;
        uint32_t row = r;
        if (perm != PERM_NONE) src_row(&g->m->c, perm, prow, nparts, row0 + r, &pp, &row);
        if (pp != part || row >= s->nrows) {
            rc = qn_fail(QN_E_FORMAT, "GGUF: '%s': fused row %u maps outside its part", s->t->name, row0 + r);
            break;
        }
        memcpy(out + (size_t)r * rowb, raw + (size_t)row * rowb, rowb);
    }
    struct qn_wsub *w = &dst->sub[dst->nsub];
    if (!rc) rc = new_buf(g, out, (uint64_t)rows * rowb, s->t->name, &w->buf);
    if (!rc) {
        *w = (struct qn_wsub){ .buf = w->buf, .bytes = (uint64_t)rows * rowb, .row0 = row0, .rows = rows, .qtype = qt };
        dst->nsub++;
        g->m->dense_bytes += w->bytes;
        g->nq++;
        g->qbytes += w->bytes;
    }
    free(raw);
    free(out);
    return rc;
}

/* The parts of a mixed-type fused tensor as decode sub-tensors in their own types (fuse() keeps the f32
 * fused tensor for prefill). Only when every part is a qmatvec block type or F32, has no value transform,
 * and every sub starts at a row offset the device can bind. attn_qkv / attn_gate are separate subs (they
 * are already the flat [q|k|v] and [z] rows). */
static int make_subs(struct gl *g, qn_wt *dst, enum perm perm, int nparts, const qn_q3n_src *s)
{
    qn_q3n_src ps[MAXP + 1];
    bool flat[MAXP + 1];
    uint32_t prow[MAXP], n = 0, row0[MAXP + 1], r = 0, align = qn_vk_caps(g->m->v)->min_storage_align;
    for (int i = 0; i < nparts; i++) {
        prow[i] = (uint32_t)s[i].shape[0];
        if (s[i].xform == QN_Q3N_QKVZ_SPLIT) { /* attn_qkv rows, then attn_gate rows */
            ps[n] = (qn_q3n_src){ .t = s[i].t, .row0 = 0, .nrows = s[i].t->ne[1], .xform = QN_Q3N_COPY };
            ps[n + 1] = (qn_q3n_src){ .t = s[i].t2, .row0 = 0, .nrows = s[i].t2->ne[1], .xform = QN_Q3N_COPY };
            flat[n] = flat[n + 1] = true;
            row0[n] = r;
            row0[n + 1] = r + (uint32_t)s[i].t->ne[1];
            n += 2;
        } else if (s[i].xform == QN_Q3N_COPY) {
            ps[n] = s[i];
            flat[n] = false;
            row0[n++] = r;
        } else {
            return 0;
        }
        r += prow[i];
    }
    if (n > 4) return 0;
    for (uint32_t i = 0; i < n; i++)
        if ((!qmv_type(ps[i].t->type) && ps[i].t->type != QN_GGML_F32) || (align && (row0[i] * 4u) % align)) return 0;
    int rc = 0;
    for (uint32_t i = 0; !rc && i < n; i++) {
        int part = 0;
        uint32_t acc = 0;
        for (; part + 1 < nparts && row0[i] >= acc + prow[part]; part++) acc += prow[part];
        uint32_t rows = flat[i] ? (uint32_t)ps[i].nrows : prow[part];
        rc = add_sub(g, dst, flat[i] ? PERM_NONE : perm, prow, nparts, part, &ps[i], row0[i], rows);
    }
    if (rc) dst->nsub = 0;
    return rc;
}

/* One HF tensor as f32 straight into staging in row chunks, dequantized on g->nthreads threads (no host copy
 * of the whole tensor: the 80B's embedding is 1.2 GB as f32). *done = false when the tensor needs the general
 * path (QKVZ gather). */
static int fuse_direct(struct gl *g, qn_wt *dst, const char *name, bool *done)
{
    qn_q3n_src s;
    int rc = qn_q3n_find(g->q, name, &s);
    if (rc) return qn_fail(rc, "GGUF: no tensor for '%s'", name);
    uint64_t n = 1, cols = s.t->ne[0];
    for (int i = 0; i < s.ndim; i++) n *= (uint64_t)s.shape[i];
    *done = s.xform != QN_Q3N_QKVZ_SPLIT && !s.t2 && n == s.nrows * cols && cols * 4 <= g->u.cap && n;
    if (!*done) return 0;
    *dst = (qn_wt){ .off = 0, .bytes = n * 4, .dtype = QN_DT_F32, .rows = (uint32_t)s.shape[0],
                    .cols = (uint32_t)(n / (uint64_t)s.shape[0]) };
    rc = new_buf(g, NULL, n * 4, name, &dst->buf);
    g->m->dense_bytes += n * 4;
    uint64_t per = g->u.cap / (cols * 4);
    for (uint64_t r = 0; !rc && r < s.nrows; r += per) {
        uint64_t k = s.nrows - r < per ? s.nrows - r : per;
        void *p;
        qn_q3n_src sub = s;
        sub.row0 = s.row0 + r;
        sub.nrows = k;
        rc = qn_upl_put(&g->u, dst->buf, r * cols * 4, k * cols * 4, &p);
        if (!rc) rc = read_f32_mt(g, &sub, p, k * cols);
    }
    return rc;
}

/* Device tensor dst = the named HF tensors (printf formats with the layer) stacked by rows, permuted: in
 * their GGUF block format when `quant` and raw_type() allow, else dequantized to f32. */
static int fuse(struct gl *g, qn_wt *dst, enum perm perm, int layer, int nparts, const char *const *fmts, bool quant)
{
    if (quant) {
        qn_q3n_src s[MAXP];
        for (int i = 0; i < nparts; i++) {
            char name[160];
            snprintf(name, sizeof name, fmts[i], layer);
            int rc = qn_q3n_find(g->q, name, &s[i]);
            if (rc) return qn_fail(rc, "GGUF: no tensor for '%s'", name);
        }
        uint32_t qt = raw_type(g, nparts, s);
        if (qt) return fuse_raw(g, dst, perm, nparts, s, qt);
        /* A mixed-type fusion: its parts in their own types only (decode matvecs per part or mv_parts / route_mixed,
         * prefill matmuls per part: forward.c sub_matmul); an f32 copy only when the parts cannot be subs, or with
         * env QNEXT_GGUF_F32_FUSED=1 (the old layout, kept for A/Bs: 2.7 GiB more VRAM on the 80B Q4_K_M) */
        const char *keep = getenv("QNEXT_GGUF_F32_FUSED");
        qn_wt w = { .dtype = QN_DT_F32, .cols = (uint32_t)(s[0].shape[1] * (s[0].ndim > 2 ? s[0].shape[2] : 1)) };
        bool copy = nparts == 1 || (keep && !strcmp(keep, "1")); /* one part (e.g. an F32 file's): f32 + its sub */
        int rc = copy ? fuse(g, &w, perm, layer, nparts, fmts, false) : 0;
        if (!rc) rc = make_subs(g, &w, perm, nparts, s);
        if (rc || (!w.nsub && !w.buf)) return rc ? rc : fuse(g, dst, perm, layer, nparts, fmts, false);
        for (int i = 0; !w.buf && i < nparts; i++) w.rows += (uint32_t)s[i].shape[0];
        *dst = w;
        return 0;
    }
    if (nparts == 1 && perm == PERM_NONE) {
        char name[160];
        bool done;
        snprintf(name, sizeof name, fmts[0], layer);
        int rc = fuse_direct(g, dst, name, &done);
        if (rc || done) return rc;
    }
    float *pt[MAXP] = { 0 }, *out = NULL;
    uint32_t prow[MAXP], cols = 0, rows = 0;
    int rc = 0;
    for (int i = 0; !rc && i < nparts; i++) {
        char name[160];
        uint32_t c;
        snprintf(name, sizeof name, fmts[i], layer);
        rc = read_hf(g, name, &pt[i], &prow[i], &c);
        if (!rc && i > 0 && c != cols) rc = qn_fail(QN_E_FORMAT, "GGUF: '%s' has %u columns, expected %u", name, c, cols);
        cols = c;
        rows += prow[i];
    }
    uint64_t bytes = (uint64_t)rows * cols * sizeof(float);
    if (!rc && nparts == 1 && perm == PERM_NONE) out = pt[0], pt[0] = NULL;
    else if (!rc && !(out = malloc(bytes ? bytes : 1))) rc = qn_fail(-ENOMEM, "out of memory fusing layer %d", layer);
    for (uint32_t r = 0; !rc && pt[0] && r < rows; r++) {
        int part;
        uint32_t row;
        src_row(&g->m->c, perm, prow, nparts, r, &part, &row);
        memcpy(out + (size_t)r * cols, pt[part] + (size_t)row * cols, sizeof(float) * cols);
    }
    if (!rc) {
        *dst = (qn_wt){ .off = 0, .bytes = bytes, .dtype = QN_DT_F32, .rows = rows, .cols = cols };
        rc = new_buf(g, out, bytes, fmts[0], &dst->buf);
        g->m->dense_bytes += bytes;
    }
    for (int i = 0; i < nparts; i++) free(pt[i]);
    free(out);
    return rc;
}

/* The token-embedding table: in its GGUF blocks when it is a kernel block type (embed.comp dequantizes the rows it
 * gathers; 175 MB instead of 1.24 GB of f32 for the 80B Q4_K_M), else dequantized to f32. */
static int embed_table(struct gl *g, qn_wt *dst, const char *const *name)
{
    qn_q3n_src s;
    int rc = qn_q3n_find(g->q, name[0], &s);
    if (rc) return qn_fail(rc, "GGUF: no tensor for '%s'", name[0]);
    uint32_t qt = raw_type(g, 1, &s);
    return qt ? fuse_raw(g, dst, PERM_NONE, 1, &s, qt) : fuse(g, dst, PERM_NONE, 0, 1, name, false);
}

#define FUSE(dst, perm, layer, ...) FUSEQ(dst, perm, false, layer, __VA_ARGS__)
#define FUSEQ(dst, perm, quant, layer, ...) \
    do { \
        static const char *const names_[] = { __VA_ARGS__ }; \
        int rc_ = fuse(g, (dst), (perm), (layer), (int)(sizeof names_ / sizeof names_[0]), names_, (quant)); \
        if (rc_) return rc_; \
    } while (0)

/* The shared expert's down_proj [H, Is] once more in its GGUF blocks, as the decode sub-tensor sub[0] (all rows):
 * the decode down kernels (moe_q.comp / moe_q7.comp, QN_MOE_SHARED_Q) read it instead of the f32 tensor when its
 * type is the layer's routed down type (forward.c), 0.86 MB instead of 4.2 MB per layer for the 80B Q4_K_M. The
 * f32 tensor stays for prefill (the grouped kernels read f32). Nothing when the file has no kernel type there. */
static int shared_down_blocks(struct gl *g, qn_wt *dst, int layer)
{
    char name[160];
    snprintf(name, sizeof name, "model.layers.%d.mlp.shared_expert.down_proj.weight", layer);
    qn_q3n_src s;
    int rc = qn_q3n_find(g->q, name, &s);
    if (rc) return qn_fail(rc, "GGUF: no tensor for '%s'", name);
    if (!g->quant || !qmv_type(s.t->type) || s.xform != QN_Q3N_COPY || s.t2 || s.nrows != dst->rows) return 0;
    uint32_t prow = dst->rows;
    return add_sub(g, dst, PERM_NONE, &prow, 1, 0, &s, 0, dst->rows);
}

static int load_layer(struct gl *g, struct qn_mlayer *l, int i)
{
    l->full = qn_cfg_is_full(&g->m->c, i);
    FUSE(&l->in_norm, PERM_NONE, i, "model.layers.%d.input_layernorm.weight");
    FUSE(&l->post_norm, PERM_NONE, i, "model.layers.%d.post_attention_layernorm.weight");
    if (l->full) {
        FUSEQ(&l->w_qkv, PERM_QPROJ, true, i, "model.layers.%d.self_attn.q_proj.weight",
             "model.layers.%d.self_attn.k_proj.weight", "model.layers.%d.self_attn.v_proj.weight");
        FUSE(&l->q_norm, PERM_NONE, i, "model.layers.%d.self_attn.q_norm.weight");
        FUSE(&l->k_norm, PERM_NONE, i, "model.layers.%d.self_attn.k_norm.weight");
        FUSEQ(&l->w_o, PERM_NONE, true, i, "model.layers.%d.self_attn.o_proj.weight");
    } else {
        FUSEQ(&l->w_in, PERM_GDN, true, i, "model.layers.%d.linear_attn.in_proj_qkvz.weight",
             "model.layers.%d.linear_attn.in_proj_ba.weight");
        FUSE(&l->conv_w, PERM_NONE, i, "model.layers.%d.linear_attn.conv1d.weight");
        FUSE(&l->A_log, PERM_NONE, i, "model.layers.%d.linear_attn.A_log");
        FUSE(&l->dt_bias, PERM_NONE, i, "model.layers.%d.linear_attn.dt_bias");
        FUSE(&l->gnorm, PERM_NONE, i, "model.layers.%d.linear_attn.norm.weight");
        FUSEQ(&l->w_out, PERM_NONE, true, i, "model.layers.%d.linear_attn.out_proj.weight");
    }
    FUSEQ(&l->w_moe, PERM_NONE, true, i, "model.layers.%d.mlp.gate.weight",
         "model.layers.%d.mlp.shared_expert.gate_proj.weight", "model.layers.%d.mlp.shared_expert.up_proj.weight",
         "model.layers.%d.mlp.shared_expert_gate.weight");
    FUSE(&l->shared_down, PERM_NONE, i, "model.layers.%d.mlp.shared_expert.down_proj.weight");
    return shared_down_blocks(g, &l->shared_down, i);
}

static const char *const exp_fmt[3] = {
    "model.layers.%d.mlp.experts.%d.gate_proj.weight",
    "model.layers.%d.mlp.experts.%d.up_proj.weight",
    "model.layers.%d.mlp.experts.%d.down_proj.weight",
};

static uint64_t al16(uint64_t x) { return (x + 15) / 16 * 16; }

/* Pools of `size`-byte slots for n slots (m->pools, or dpools kept in m->arenas so qn_model_free frees them) in
 * memory *kind (streaming: maybe device-local host-visible, qn_mst_pool_mem; *kind falls back on failure). */
static int make_pools(struct gl *g, uint64_t size, uint32_t n, uint32_t *per, uint32_t *np, qn_buf **pools,
                      const char *what, enum qn_mem *kind)
{
    uint64_t cap = qn_model_pool_cap(g->m);
    if (cap < size) return qn_fail(QN_E_UNSUPPORTED, "GGUF: one expert's %s is larger than a storage buffer", what);
    *per = (uint32_t)(cap / size) < n ? (uint32_t)(cap / size) : n;
    *np = (n + *per - 1) / *per;
    if (*np > QN_MODEL_MAX_POOLS)
        return qn_fail(QN_E_UNSUPPORTED, "GGUF: the experts' %s (%.2f GiB) need %u buffers of at most %.2f GiB; the MoE "
                       "kernels bind %d", what, GIB((double)size * n), *np, GIB(cap), QN_MODEL_MAX_POOLS);
    int rc = 0;
    for (uint32_t i = 0; !rc && i < *np; i++) {
        uint32_t ns = i + 1 < *np ? *per : n - i * *per;
        bool arena = pools != g->m->pools;   /* dpools: freed as arenas */
        if (arena && (rc = arena_room(g))) break;
        rc = qn_mst_pool_create(g->m->v, kind, (uint64_t)ns * size, what, &pools[i]);
        if (!rc && arena) g->m->arenas[g->m->n_arenas++] = pools[i];
    }
    return rc;
}

/* Per-layer block types of the experts when every layer can keep them (gate = up, qmatvec formats). */
static int exp_types(struct gl *g, uint64_t maxb[3], bool *ok)
{
    qn_model *m = g->m;
    *ok = g->quant;
    for (int l = 0; *ok && l < m->c.num_layers; l++)
        for (int k = 0; k < 3; k++) {
            char name[160];
            qn_q3n_src s;
            snprintf(name, sizeof name, exp_fmt[k], l, 0);
            int rc = qn_q3n_find(g->q, name, &s);
            if (rc) return qn_fail(rc, "GGUF: no tensor for '%s'", name);
            m->L[l].exp_qtype[k] = s.t->type;
            uint64_t b = qn_q3n_src_bytes(&s);
            if (b > maxb[k]) maxb[k] = b;
            if (!qmv_type(s.t->type) || (k == 1 && m->L[l].exp_qtype[0] != m->L[l].exp_qtype[1])) *ok = false;
        }
    if (!*ok)
        for (int l = 0; l < m->c.num_layers; l++) memset(m->L[l].exp_qtype, 0, sizeof m->L[l].exp_qtype);
    return 0;
}

/* ---- resident block experts: slot images read straight into staging, on several threads ------------ */

#define NREAD 4096

struct rd_job {
    const qn_gguf *gf;
    const struct qn_es_part *const *part;
    unsigned char *const *dst;
    int i0, n, rc;
    char msg[300];
};

static void *rd_run(void *arg)
{
    struct rd_job *j = arg;
    for (int i = j->i0; !j->rc && i < j->i0 + j->n; i++) {
        j->rc = qn_gguf_read(j->gf, j->part[i]->off, j->dst[i], (size_t)j->part[i]->len);
        if (j->rc) snprintf(j->msg, sizeof j->msg, "%s", qn_errmsg());
    }
    return NULL;
}

/* The pending part reads (file range -> staging pointer), split over g->nthreads threads. */
struct rd_batch {
    const struct qn_es_part *part[NREAD];
    unsigned char *dst[NREAD];
    int n;
};

static int rd_flush(const struct gl *g, const qn_gguf *gf, struct rd_batch *b)
{
    int nt = b->n < g->nthreads ? b->n : g->nthreads, rc = 0;
    struct rd_job job[MAXT];
    pthread_t th[MAXT];
    bool started[MAXT] = { false };
    for (int i = 0; i < nt; i++) {
        int i0 = (int)((int64_t)b->n * i / nt), i1 = (int)((int64_t)b->n * (i + 1) / nt);
        job[i] = (struct rd_job){ .gf = gf, .part = b->part, .dst = b->dst, .i0 = i0, .n = i1 - i0 };
        if (i > 0) started[i] = !pthread_create(&th[i], NULL, rd_run, &job[i]);
        if (i > 0 && !started[i]) rd_run(&job[i]);
    }
    if (nt > 0) rd_run(&job[0]);
    for (int i = 0; i < nt; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        if (job[i].rc && !rc) rc = qn_fail(job[i].rc, "%s", job[i].msg);
    }
    b->n = 0;
    return rc;
}

/* Staging room for expert e's slot of `set` (zeroed) and its parts' reads queued; the queued reads run before
 * the staging buffer they land in is submitted. */
static int qexpert_set(struct gl *g, const qn_gguf *gf, struct rd_batch *b, const qn_es *es, int l, int e, int set)
{
    qn_model *m = g->m;
    uint32_t slot = (uint32_t)(l * m->c.num_experts + e);
    uint64_t size = qn_es_slot_bytes(es, set), off = 0;
    if (!size) return 0;
    qn_buf *dst = set == QN_ES_DPOOLS ? m->dpools[slot / m->d_slots_per_pool] : qn_model_slot(m, slot, &off);
    if (set == QN_ES_DPOOLS) off = (uint64_t)(slot % m->d_slots_per_pool) * m->d_slot_bytes;
    if (m->host_tier) dst = qn_eh_home(m, l, e, set == QN_ES_DPOOLS, &off);   /* VRAM cache + host tier */
    int rc = 0;
    if ((!dst->map && g->u.used + size > g->u.cap) || b->n + QN_ES_PARTS > NREAD) rc = rd_flush(g, gf, b);
    void *p = NULL;
    if (!rc) rc = qn_upl_put(&g->u, dst, off, size, &p);
    if (rc) return rc;
    memset(p, 0, (size_t)size);
    const struct qn_es_part *pt = qn_es_parts(es, l, e);
    for (int k = 0; k < QN_ES_PARTS; k++)
        if ((int)pt[k].set == set) {
            b->part[b->n] = &pt[k];
            b->dst[b->n++] = (unsigned char *)p + pt[k].slot_off;
        }
    return 0;
}

/* Every expert's gate|up into its pools slot and down into its dpools slot (resident: slot = l * E + e), as
 * the expert store locates them (the same map streaming reads through). */
static int upload_qexperts(struct gl *g)
{
    const qn_gguf *gf = g->gf;
    qn_model *m = g->m;
    qn_es *es = NULL;
    struct rd_batch *b = calloc(1, sizeof *b);
    int rc = b ? qn_es_from_gguf(&es, m->path, g->q, &m->c, m->qexp_up_off, m->slot_bytes, m->d_slot_bytes)
               : qn_fail(-ENOMEM, "out of memory");
    for (int l = 0; !rc && l < m->c.num_layers; l++)
        for (int e = 0; !rc && e < m->c.num_experts; e++)
            for (int set = 0; !rc && set < QN_ES_SETS; set++) rc = qexpert_set(g, gf, b, es, l, e, set);
    if (!rc && b->n) rc = rd_flush(g, gf, b);
    qn_es_free(&es);
    free(b);
    return rc;
}

/* Every expert as f32 gate | up | down in its slot (resident: slot = l * E + e). */
static int upload_f32_experts(struct gl *g)
{
    const char *const *fmt = exp_fmt;
    qn_model *m = g->m;
    int rc = 0;
    for (int l = 0; !rc && l < m->c.num_layers; l++)
        for (int e = 0; !rc && e < m->c.num_experts; e++) {
            uint64_t off;
            qn_buf *pool = m->host_tier ? qn_eh_home(m, l, e, false, &off)   /* VRAM cache + host tier */
                                        : qn_model_slot(m, m->table[(size_t)l * m->c.num_experts + e], &off);
            for (int k = 0; !rc && k < 3; k++) {
                char name[160];
                float *p = NULL;
                uint32_t r, c;
                snprintf(name, sizeof name, fmt[k], l, e);
                rc = read_hf(g, name, &p, &r, &c);
                if (!rc && (uint64_t)r * c * sizeof(float) != m->exp_part_bytes[k])
                    rc = qn_fail(QN_E_FORMAT, "GGUF: '%s' is [%u, %u], not the config's expert shape", name, r, c);
                if (!rc) rc = qn_upl_host(&g->u, p, pool, off + (uint64_t)k * m->exp_part_bytes[k], m->exp_part_bytes[k]);
                free(p);
            }
        }
    return rc;
}

/* Slot sizes: GGUF blocks (gate|up in pools with up at qexp_up_off, down in dpools; the largest of each over
 * the layers) or f32 gate|up|down. */
static void slot_sizes(qn_model *m, bool q, const uint64_t maxb[3])
{
    const qn_config *c = &m->c;
    m->exp_dtype = QN_DT_F32;
    if (q) {
        m->qexp_up_off = (uint32_t)al16(maxb[0]);
        memcpy(m->exp_part_bytes, maxb, sizeof m->exp_part_bytes);
        m->slot_bytes = al16(m->qexp_up_off + maxb[1]);
        m->d_slot_bytes = al16(maxb[2]);
    } else {
        uint64_t IH = (uint64_t)c->moe_inter * (uint64_t)c->hidden_size * sizeof(float);
        m->exp_part_bytes[0] = m->exp_part_bytes[1] = m->exp_part_bytes[2] = IH;
        m->slot_bytes = al16(3 * IH);
        m->qexp_up_off = 0;
        m->d_slot_bytes = 0;
    }
    m->n_slots = (uint32_t)c->num_layers * (uint32_t)c->num_experts;
    m->expert_bytes = (uint64_t)m->n_slots * qn_mst_slot_bytes(m);
}

/* Device bytes left for experts now (the dense weights are loaded), less an eighth for the KV cache and
 * activations, and at most what QN_MODEL_MAX_POOLS pool buffers of each slot set can bind. */
static uint64_t expert_room(const qn_model *m, const struct qn_model_params *p)
{
    struct qn_mem_stats ms;
    qn_mem_stats(m->v, &ms);
    uint64_t budget = ms.device_budget > p->reserve_bytes ? ms.device_budget - p->reserve_bytes : 0;
    uint64_t avail = budget > ms.device_used ? budget - ms.device_used : 0;
    avail -= avail / 8;
    uint64_t cap = qn_model_pool_cap(m), per = cap / m->slot_bytes;
    if (m->d_slot_bytes && cap / m->d_slot_bytes < per) per = cap / m->d_slot_bytes;
    uint64_t bind = per * QN_MODEL_MAX_POOLS * qn_mst_slot_bytes(m);
    return avail < bind ? avail : bind;
}

/* --expert-cache below the experts' bytes, or no --expert-cache and they do not fit: streaming with fewer
 * slots (m->n_slots from the budget); else every expert resident. */
static int plan_slots(struct gl *g, const struct qn_model_params *p)
{
    qn_model *m = g->m;
    if (m->experts_host) return 0;   /* host tier: every expert resident in system memory */
    uint64_t cache = p->expert_cache, room = expert_room(m, p);
    if (!cache && m->expert_bytes <= room) return 0;
    if (cache >= m->expert_bytes) {
        if (m->expert_bytes <= room) return 0;
        return qn_fail(-ENOMEM, "%s: the routed experts (%.2f GiB) do not fit on '%s' next to the dense weights "
                       "(%.2f GiB free for them); a smaller --expert-cache streams them", m->path,
                       GIB(m->expert_bytes), qn_vk_caps(m->v)->name, GIB(room));
    }
    if (!cache) {
        uint64_t min = (uint64_t)qn_exp_min_slots(m->c.top_k, p->prefetch, 0) * qn_mst_slot_bytes(m);
        if (room < min)
            return qn_fail(-ENOMEM, "%s: after the dense weights %.2f GiB are left on '%s' for routed experts; "
                           "streaming them needs at least %.2f MiB (top-k %d slots of %.2f MiB)", m->path, GIB(room),
                           qn_vk_caps(m->v)->name, (double)min / 1048576.0, m->c.top_k,
                           (double)qn_mst_slot_bytes(m) / 1048576.0);
        QN_INFO("the routed experts (%.2f GiB) do not fit on '%s' next to the dense weights: streaming them through "
                "a %.2f GiB expert cache (--expert-cache chooses the size)", GIB(m->expert_bytes),
                qn_vk_caps(m->v)->name, GIB(room));
        cache = room;
    }
    return qn_mst_plan(m, cache, p);
}

/* The host tier's fill (expert_host.h: staged by default), timed: allocating the system memory took t1 - t0. */
static int host_fill(struct gl *g, bool q, double t0, double t1)
{
    if (qn_eh_mapped(g->m)) {   /* QNEXT_HOST_MMAP: no fill, the page cache is imported */
        qn_es *es = NULL;
        qn_model *m = g->m;
        int rc = qn_es_from_gguf(&es, m->path, g->q, &m->c, m->qexp_up_off, m->slot_bytes, m->d_slot_bytes);
        if (!rc) rc = qn_eh_map(m, es);
        qn_es_free(&es);
        return rc;
    }
    qn_eh_fill_begin(g->m);
    int rc = q ? upload_qexperts(g) : upload_f32_experts(g);
    qn_eh_fill_end(g->m);
    QN_INFO("host tier: %.1f s to allocate the experts' system memory, %.1f s to fill it (%s)", t1 - t0,
            qn_now_s() - t1, getenv("QNEXT_HOST_FILL") && !strcmp(getenv("QNEXT_HOST_FILL"), "direct")
                                 ? "read straight into the mappings" : "staged, GPU copies");
    return rc;
}

/* Slot pools and the slot table for the routed experts; resident: every expert uploaded (slot l * E + e);
 * streaming: the table starts all -1 and model_stream.c reads experts from the file on demand. */
static int load_experts(struct gl *g, const struct qn_model_params *p)
{
    qn_model *m = g->m;
    uint64_t maxb[3] = { 0, 0, 0 };
    bool q;
    int rc = exp_types(g, maxb, &q);
    if (rc) return rc;
    slot_sizes(m, q, maxb);
    if ((rc = plan_slots(g, p))) return rc;
    double t0 = qn_now_s(), t1 = t0;
    if ((rc = qn_eh_alloc(m, p)) || m->host_tier) {   /* VRAM cache / gather in front of the host tier */
        t1 = qn_now_s();
        return rc ? rc : host_fill(g, q, t0, t1);
    }
    bool stream = m->n_slots < (uint32_t)m->c.num_layers * (uint32_t)m->c.num_experts;
    enum qn_mem pk = m->experts_host ? QN_MEM_HOST : stream ? qn_mst_pool_mem(m) : QN_MEM_DEVICE; /* BAR: misses
                                                                                        read into the slots */
    rc = make_pools(g, m->slot_bytes, m->n_slots, &m->slots_per_pool, &m->n_pools, m->pools, q ? "gate|up" : "experts",
                    &pk);
    if (!rc && q)
        rc = make_pools(g, m->d_slot_bytes, m->n_slots, &m->d_slots_per_pool, &m->d_n_pools, m->dpools, "down", &pk);
    size_t nt = (size_t)m->c.num_layers * (size_t)m->c.num_experts;
    if (!rc && !(m->table = malloc(sizeof *m->table * nt))) rc = qn_fail(-ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < nt; i++) m->table[i] = stream ? -1 : (int32_t)i;
    if (pk == QN_MEM_HOST) pk = QN_MEM_DEVICE;   /* host tier: the table stays in VRAM */
    if (!rc) rc = qn_mst_pool_create(m->v, &pk, sizeof *m->table * nt, "slot table", &m->slot_table);
    if (!rc) rc = qn_buf_write(m->v, m->slot_table, 0, m->table, sizeof *m->table * nt);
    if (rc) return rc;
    if (m->experts_host) return host_fill(g, q, t0, qn_now_s());
    if (!stream) return q ? upload_qexperts(g) : upload_f32_experts(g);
    g->u.total = g->u.total > g->exp_file_bytes ? g->u.total - g->exp_file_bytes : g->u.done; /* progress */
    qn_es *es = NULL;
    rc = qn_es_from_gguf(&es, m->path, g->q, &m->c, m->qexp_up_off, m->slot_bytes, m->d_slot_bytes);
    return rc ? rc : qn_mst_open(m, es, p);
}

/* Device bytes the dense weights need (blocks kept, else f32) against the budget left; the routed experts
 * are planned after the dense weights are loaded (plan_slots: resident or streaming). */
static int check_budget(struct gl *g, const qn_gguf *gf, const struct qn_model_params *p)
{
    const qn_model *m = g->m;
    uint64_t need = 0;
    g->exp_file_bytes = 0;
    for (uint64_t i = 0; i < qn_gguf_n_tensors(gf); i++) {
        const qn_gguf_tensor *t = qn_gguf_tensor_at(gf, i);
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) n *= t->ne[d];
        if (strstr(t->name, "_exps.")) { /* routed experts */
            g->exp_file_bytes += t->nbytes;
            continue;
        }
        need += g->quant && qmv_type(t->type) ? t->nbytes : n * sizeof(float); /* blocks kept, or f32 */
    }
    struct qn_mem_stats ms;
    qn_mem_stats(m->v, &ms);
    uint64_t budget = ms.device_budget > p->reserve_bytes ? ms.device_budget - p->reserve_bytes : 0;
    uint64_t avail = budget > ms.device_used ? budget - ms.device_used : 0;
    g->total = need + g->exp_file_bytes;
    if (need > avail)
        return qn_fail(-ENOMEM, "%s does not fit on '%s': its dense weights alone need about %.2f GiB of device "
                       "memory (qmatvec block types kept, other weights as f32) and %.2f GiB are available", m->path,
                       qn_vk_caps(m->v)->name, GIB(need), GIB(avail));
    return 0;
}

int qn_model_gguf_load(qn_model *m, const struct qn_model_params *p)
{
    qn_gguf *gf = NULL;
    qn_q3n *q = NULL;
    const char *ev = getenv("QNEXT_GGUF_F32");
    struct gl g = { .m = m, .quant = !(ev && *ev && strcmp(ev, "0")) };
    int rc = qn_gguf_open(&gf, m->path);
    if (!rc) rc = qn_q3n_open(&q, gf);
    if (!rc) {
        m->c = *qn_q3n_config(q);
        g.q = q;
        g.gf = gf;
        g.nthreads = n_threads();
        g.u.path = m->path;
        g.u.progress = p->progress < 0 ? isatty(2) : p->progress;
        rc = check_budget(&g, gf, p);
    }
    if (!rc) rc = qn_upl_open(&g.u, m->v, g.total);
    if (!rc && !(m->L = calloc((size_t)m->c.num_layers, sizeof *m->L))) rc = qn_fail(-ENOMEM, "out of memory");
    static const char *const embed[] = { "model.embed_tokens.weight" }, *const norm[] = { "model.norm.weight" },
                             *const head[] = { "lm_head.weight" };
    double t0 = qn_now_s();
    if (!rc) rc = embed_table(&g, &m->embed, embed);
    double t1 = qn_now_s();
    if (!rc) rc = fuse(&g, &m->norm, PERM_NONE, 0, 1, norm, false);
    if (!rc && m->c.tie_word_embeddings) m->lm_head = m->embed;
    else if (!rc) rc = fuse(&g, &m->lm_head, PERM_NONE, 0, 1, head, true);
    double t2 = qn_now_s();
    for (int i = 0; !rc && i < m->c.num_layers; i++) rc = load_layer(&g, &m->L[i], i);
    double t3 = qn_now_s();
    if (!rc) rc = load_experts(&g, p);
    rc = qn_upl_close(&g.u, rc);
    QN_DEBUG("GGUF load (%d threads): embedding %.2f s, norm + lm_head %.2f s, layers %.2f s, experts %.2f s",
             g.nthreads, t1 - t0, t2 - t1, t3 - t2, qn_now_s() - t3);
    if (!rc)
        QN_INFO("%s: %u dense matrices in GGUF blocks (%.1f MiB), dense f32 %.1f MiB (vectors, shared down; tensors of "
                "types without kernels); "
                "routed experts %s (%.1f MiB%s)", m->path, g.nq, (double)g.qbytes / 1048576.0,
                (double)(m->dense_bytes - g.qbytes) / 1048576.0,
                m->L[0].exp_qtype[0] ? "in GGUF blocks" : "as f32", (double)m->expert_bytes / 1048576.0,
                m->stream ? " of streaming slots" : "");
    qn_q3n_close(&q);
    qn_gguf_close(&gf);
    return rc;
}
