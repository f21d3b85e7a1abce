/* model_stream.c — streaming mode of a qn_model (see model_stream.h): expert locations, reads, slot uploads. */
#include "model_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expert_store.h"
#include "experts.h"
#include "qn_err.h"
#include "qn_log.h"
#include "stream.h"

#define NSTAGE 16             /* experts read per IO batch (staging = NSTAGE slots) */
#define NPEND (NSTAGE + QN_EXP_MAX_K)
#define IO_TIMEOUT_NS (120ll * 1000000000ll)

struct qn_mst {
    qn_vk *v;
    qn_io *io;
    qn_exp_cache *cache;
    qn_es *es;                /* where every expert part is in the files and in its slot (expert_store.h) */
    int *iofile;              /* [qn_es_n_files] io file id of each store file */
    uint64_t entry;           /* bytes of one staging entry (qn_es_entry_bytes: [pools slot | dpools slot]) */
    /* one host-visible upload buffer: NSTAGE demand entries | n_prefetch prefetch entries | a table row, each
     * laid out like the expert's slots; reads land there and one command buffer per layer copies them into
     * the slots */
    qn_buf *up;
    qn_cmd *cmd;
    bool cmd_open;
    int32_t pend[NPEND];      /* slots whose copy is recorded in cmd, marked filled once it has run */
    int n_pend;
    uint64_t pf_at, row_at;   /* byte offsets of the prefetch entries and the table row in `up` */
    unsigned char *stage;     /* = up's mapping */
    int32_t *uni;             /* [E] distinct ids of a call */
    unsigned char *seen;      /* [E] */
    uint64_t seq;
    /* prefetch: guesses for layer L + 1 (the ids it used for the previous call) read while the GPU runs
     * layer L's experts and layer L + 1's route; drained at the start of the next qn_mst_layer */
    int n_prefetch;
    unsigned char *pf_stage;  /* = stage + pf_at */
    struct qn_exp_fill pf[QN_EXP_MAX_K];
    int n_pf;                 /* prefetch fills in flight */
    int32_t *last;            /* [L, QN_EXP_MAX_K] distinct ids of the layer's previous call */
    int *n_last;              /* [L] */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t qn_mst_slot_bytes(const qn_model *m) { return m->slot_bytes + m->d_slot_bytes; }

int qn_mst_plan(qn_model *m, uint64_t budget, const struct qn_model_params *p)
{
    int n = 0, K = m->c.top_k;
    int64_t total = (int64_t)m->c.num_layers * m->c.num_experts;
    int rc = qn_exp_slots_for_budget(budget, qn_mst_slot_bytes(m), K, p->prefetch, 0, total, &n);
    if (rc) return rc;
    m->n_slots = (uint32_t)n;
    m->expert_bytes = (uint64_t)n * qn_mst_slot_bytes(m);
    return 0;
}

/* The device buffer and byte offset of slot `slot` of set `set` (model.h: pools, or GGUF's dpools). */
static qn_buf *slot_dst(const qn_model *m, uint32_t set, uint32_t slot, uint64_t *off)
{
    if (set != QN_ES_DPOOLS) return qn_model_slot(m, slot, off);
    *off = (uint64_t)(slot % m->d_slots_per_pool) * m->d_slot_bytes;
    return m->dpools[slot / m->d_slots_per_pool];
}

/* Every store file added to the IO engine. */
static int add_files(struct qn_mst *s)
{
    int n = qn_es_n_files(s->es);
    if (!(s->iofile = calloc((size_t)(n ? n : 1), sizeof *s->iofile))) return qn_fail(-ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        int id = qn_io_add_file(s->io, qn_es_path(s->es, i));
        if (id < 0) return id;
        s->iofile[i] = id;
    }
    return 0;
}

int qn_mst_open(qn_model *m, qn_es *es, const struct qn_model_params *p)
{
    struct qn_mst *s = calloc(1, sizeof *s);
    if (!s) {
        qn_es_free(&es);
        return qn_fail(-ENOMEM, "out of memory");
    }
    m->stream = s;
    s->v = m->v;
    s->es = es;
    size_t L = (size_t)m->c.num_layers, E = (size_t)m->c.num_experts;
    if ((size_t)qn_es_n_layers(es) != L || (size_t)qn_es_n_experts(es) != E ||
        qn_es_slot_bytes(es, QN_ES_POOLS) != m->slot_bytes || qn_es_slot_bytes(es, QN_ES_DPOOLS) != m->d_slot_bytes)
        return qn_fail(-EINVAL, "streaming: the expert store does not match the model's slots");
    s->entry = qn_es_entry_bytes(es);
    s->uni = malloc(sizeof *s->uni * E);
    s->seen = malloc(E);
    s->n_prefetch = p->prefetch < 0 ? 0 : p->prefetch > QN_EXP_MAX_K ? QN_EXP_MAX_K : p->prefetch;
    s->last = malloc(sizeof *s->last * L * QN_EXP_MAX_K);
    s->n_last = calloc(L, sizeof *s->n_last);
    if (!s->uni || !s->seen || !s->last || !s->n_last) return qn_fail(-ENOMEM, "out of memory");
    s->pf_at = (uint64_t)NSTAGE * s->entry;
    s->row_at = s->pf_at + (uint64_t)s->n_prefetch * s->entry;
    int rc = qn_buf_create(m->v, QN_MEM_UPLOAD, s->row_at + E * 4, "expert staging", &s->up);
    if (!rc) rc = qn_cmd_create(m->v, &s->cmd);
    if (rc) return rc;
    s->stage = s->up->map;
    s->pf_stage = s->stage + s->pf_at;
    memset(s->stage, 0, (size_t)s->row_at);
    struct qn_io_params ip;
    qn_io_default_params(&ip);
    ip.mode = (enum qn_io_mode)p->io_mode;
    rc = qn_io_open(&s->io, &ip);
    if (!rc) rc = add_files(s);
    if (rc) return rc;
    struct qn_exp_params ep = { .n_layers = (int)L, .n_experts = (int)E, .top_k = m->c.top_k,
                                .n_prefetch = s->n_prefetch, .expert_bytes = qn_es_max_expert_bytes(es),
                                .n_slots = (int)m->n_slots };
    if ((rc = qn_exp_create(&s->cache, &ep))) return rc;
    QN_INFO("streaming experts: %u slots of %.2f MiB (%.1f%% of %lld experts), io %s, prefetch %d", m->n_slots,
            (double)qn_mst_slot_bytes(m) / 1048576.0, 100.0 * m->n_slots / (double)(L * E), (long long)(L * E),
            qn_io_engine_name(s->io), s->n_prefetch);
    return 0;
}

void qn_mst_close(struct qn_mst **ps)
{
    struct qn_mst *s = *ps;
    if (!s) return;
    qn_io_close(&s->io);   /* no read lands in `up` after this */
    qn_cmd_destroy(&s->cmd);
    qn_buf_destroy(s->v, &s->up);
    qn_exp_destroy(&s->cache);
    qn_es_free(&s->es);
    free(s->iofile);
    free(s->uni);
    free(s->seen);
    free(s->last);
    free(s->n_last);
    free(s);
    *ps = NULL;
}

uint32_t qn_mst_max_tokens(const qn_model *m)
{
    /* prefetched slots pinned for this layer but not among its ids hold up to n_prefetch slots */
    uint32_t K = (uint32_t)m->c.top_k, n = K ? (m->n_slots - (uint32_t)m->stream->n_prefetch) / K : 1;
    return n ? n : 1;
}

/* Wait for n requests; the first failure's status and message win. status[tag] (if not NULL) gets each one's. */
static int collect(struct qn_mst *s, int n, int *status)
{
    struct qn_io_cqe cq[NSTAGE * 3];
    int err = 0, got = 0;
    char msg[240] = "";
    while (got < n) {
        int k = qn_io_wait(s->io, cq, NSTAGE * 3, 1, IO_TIMEOUT_NS);
        if (k == -ETIMEDOUT) {
            qn_io_cancel(s->io, IO_TIMEOUT_NS);
            return qn_fail(-ETIMEDOUT, "streaming: expert reads did not complete in %lld s",
                           (long long)(IO_TIMEOUT_NS / 1000000000ll));
        }
        if (k < 0) return k;
        for (int i = 0; i < k; i++) {
            if (status && cq[i].tag < (uint64_t)(QN_EXP_MAX_K * 3)) status[cq[i].tag] = cq[i].status;
            if (cq[i].status < 0 && !err) {
                err = cq[i].status;
                snprintf(msg, sizeof msg, "%s", cq[i].msg);
            }
        }
        got += k;
    }
    return err ? qn_fail(err, "streaming an expert: %s", msg) : 0;
}

/* The three reads (gate, up, down) of fill i into staging entry i of `stage` (each part where the store puts
 * it in the entry), tags 3i .. 3i + 2. */
static void fill_reqs(const struct qn_mst *s, const struct qn_exp_fill *fl, int n, unsigned char *stage,
                      struct qn_io_req *req)
{
    for (int i = 0; i < n; i++) {
        const struct qn_es_part *pt = qn_es_parts(s->es, fl[i].layer, fl[i].expert);
        unsigned char *entry = stage + (uint64_t)i * s->entry;
        for (int p = 0; p < QN_ES_PARTS; p++)
            req[i * 3 + p] = (struct qn_io_req){ .file = s->iofile[pt[p].file], .offset = pt[p].off,
                                                 .length = pt[p].len,
                                                 .dst = entry + qn_es_entry_off(s->es, (int)pt[p].set) + pt[p].slot_off,
                                                 .tag = (uint64_t)(i * 3 + p) };
    }
}

/* Record a copy `up`[src, +n) -> dst[off, +n) into this layer's command buffer (begun on first use). */
static int cmd_copy(struct qn_mst *s, uint64_t src, const qn_buf *dst, uint64_t off, uint64_t n)
{
    if (!s->cmd_open) {
        int rc = qn_cmd_begin(s->cmd);
        if (rc) return rc;
        s->cmd_open = true;
    }
    return qn_cmd_copy(s->cmd, s->up, src, dst, off, n);
}

/* Copy the staging entry at `src` of `up` into slot `slot` of every set in use; it counts as filled once the
 * command buffer has run. */
static int cmd_slot(const qn_model *m, struct qn_mst *s, int32_t slot, uint64_t src)
{
    int rc = s->n_pend < NPEND ? 0 : qn_fail(-EFAULT, "streaming: too many slot copies pending");
    for (uint32_t set = 0; !rc && set < QN_ES_SETS; set++) {
        uint64_t n = qn_es_slot_bytes(s->es, (int)set), off;
        if (!n) continue;
        qn_buf *pool = slot_dst(m, set, (uint32_t)slot, &off);
        rc = cmd_copy(s, src + qn_es_entry_off(s->es, (int)set), pool, off, n);
    }
    if (rc) {
        qn_exp_fill_failed(s->cache, slot);
        return rc;
    }
    s->pend[s->n_pend++] = slot;
    return 0;
}

/* Run the recorded copies (a barrier orders them before every later submission) and mark their slots
 * filled; on failure (or abort) free those slots: no garbage is ever resident. */
static int cmd_flush(struct qn_mst *s, bool abort)
{
    int rc = 0;
    if (s->cmd_open) {
        qn_cmd_barrier(s->cmd);
        rc = qn_cmd_end(s->cmd);
        if (!rc && !abort) rc = qn_cmd_run(s->cmd);
        s->cmd_open = false;
    }
    for (int i = 0; i < s->n_pend; i++)
        if (rc || abort) qn_exp_fill_failed(s->cache, s->pend[i]);
        else qn_exp_fill_done(s->cache, s->pend[i]);
    s->n_pend = 0;
    return rc;
}

/* Read up to NSTAGE fills into the demand staging entries and record their copies. The entries are reused:
 * copies recorded from them earlier are run first. */
static int fill_batch(const qn_model *m, struct qn_mst *s, const struct qn_exp_fill *fl, int n)
{
    struct qn_io_req req[NSTAGE * 3];
    int rc = cmd_flush(s, false);
    if (!rc) {
        fill_reqs(s, fl, n, s->stage, req);
        rc = qn_io_submit(s->io, req, n * 3);
    }
    if (!rc) rc = collect(s, n * 3, NULL);
    if (rc) {
        for (int i = 0; i < n; i++) qn_exp_fill_failed(s->cache, fl[i].slot);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        if ((rc = cmd_slot(m, s, fl[i].slot, (uint64_t)i * s->entry))) {
            for (int j = i + 1; j < n; j++) qn_exp_fill_failed(s->cache, fl[j].slot);
            return rc;
        }
    }
    return 0;
}

/* Distinct ids of the call into s->uni; returns their count or a negative error. */
static int distinct(const qn_model *m, struct qn_mst *s, int layer, const int32_t *ids, int n)
{
    int E = m->c.num_experts, nu = 0;
    memset(s->seen, 0, (size_t)E);
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= E)
            return qn_fail(-ERANGE, "streaming: the router of layer %d chose expert %d (of %d)", layer, id, E);
        if (!s->seen[id]) s->seen[id] = 1, s->uni[nu++] = id;
    }
    if (nu > (int)m->n_slots)
        return qn_fail(-ENOSPC, "streaming: layer %d needs %d experts at once but only %u slots exist", layer, nu,
                       m->n_slots);
    return nu;
}

/* Finish the prefetch reads in flight: copy the good ones into their slots, free the slots of failed ones
 * (a later lookup misses and reads them again, failing the call then if the file is really bad). */
static int pf_drain(const qn_model *m, struct qn_mst *s)
{
    if (!s->n_pf) return 0;
    int status[QN_EXP_MAX_K * 3];
    memset(status, 0, sizeof status);
    int n = s->n_pf, rc = collect(s, n * 3, status);
    s->n_pf = 0;
    if (rc == -ETIMEDOUT) return rc;
    rc = 0;
    for (int i = 0; i < n; i++) {
        bool ok = !status[3 * i] && !status[3 * i + 1] && !status[3 * i + 2];
        if (ok && !rc) rc = cmd_slot(m, s, s->pf[i].slot, s->pf_at + (uint64_t)i * s->entry);
        else qn_exp_fill_failed(s->cache, s->pf[i].slot);
    }
    return rc;
}

/* Guess layer + 1's experts (its ids of the previous call) and start reading the absent ones. */
static int pf_start(const qn_model *m, struct qn_mst *s, int layer)
{
    int next = layer + 1, n = next < m->c.num_layers ? s->n_last[next] : 0;
    if (!s->n_prefetch || !n) return 0;
    struct qn_exp_result r;
    int rc = qn_exp_prefetch(s->cache, next, s->last + (size_t)next * QN_EXP_MAX_K, n, s->seq + 1, s->seq - 1, &r);
    if (rc || !r.n_fill) return rc;
    struct qn_io_req req[QN_EXP_MAX_K * 3];
    s->n_pf = r.n_fill < s->n_prefetch ? r.n_fill : s->n_prefetch;   /* the allowance bounds it already */
    memcpy(s->pf, r.fill, sizeof *s->pf * (size_t)s->n_pf);
    for (int i = s->n_pf; i < r.n_fill; i++) qn_exp_fill_failed(s->cache, r.fill[i].slot);
    fill_reqs(s, s->pf, s->n_pf, s->pf_stage, req);
    rc = qn_io_submit(s->io, req, s->n_pf * 3);
    if (rc) {
        for (int i = 0; i < s->n_pf; i++) qn_exp_fill_failed(s->cache, s->pf[i].slot);
        s->n_pf = 0;
    }
    return rc;
}

/* Reads, copies and the table row of one layer (see qn_mst_layer). */
static int layer_fill(const qn_model *m, struct qn_mst *s, int layer, const int32_t *ids, int n)
{
    int E = m->c.num_experts;
    int rc0 = pf_drain(m, s);
    if (rc0) return rc0;
    int nu = distinct(m, s, layer, ids, n);
    if (nu < 0) return nu;
    s->n_last[layer] = nu < QN_EXP_MAX_K ? nu : QN_EXP_MAX_K;
    memcpy(s->last + (size_t)layer * QN_EXP_MAX_K, s->uni, sizeof *s->uni * (size_t)s->n_last[layer]);
    uint64_t use = ++s->seq;
    for (int at = 0; at < nu; at += QN_EXP_MAX_K) {
        struct qn_exp_result r;
        int k = nu - at < QN_EXP_MAX_K ? nu - at : QN_EXP_MAX_K;
        int rc = qn_exp_lookup(s->cache, layer, s->uni + at, k, use, use - 1, &r);
        for (int b = 0; !rc && b < r.n_fill; b += NSTAGE)
            rc = fill_batch(m, s, r.fill + b, r.n_fill - b < NSTAGE ? r.n_fill - b : NSTAGE);
        if (rc) return rc;
    }
    if (qn_exp_table_dirty(s->cache, layer)) {
        memcpy(s->stage + s->row_at, qn_exp_table(s->cache) + (size_t)layer * (size_t)E, (size_t)E * 4u);
        int rc = cmd_copy(s, s->row_at, m->slot_table, (uint64_t)layer * (uint64_t)E * 4u, (uint64_t)E * 4u);
        if (rc) return rc;
        qn_exp_table_clean(s->cache, layer);
    }
    return cmd_flush(s, false);
}

int qn_mst_layer(const qn_model *m, int layer, const int32_t *ids, int n)
{
    struct qn_mst *s = m->stream;
    uint64_t t0 = now_ns();
    int rc = layer_fill(m, s, layer, ids, n);
    if (rc) {
        cmd_flush(s, true);   /* copies not run: their slots are freed; dirty rows stay dirty (uploaded next time) */
        return rc;
    }
    qn_exp_note_stall(s->cache, layer, now_ns() - t0);
    return pf_start(m, s, layer);
}

int qn_mst_stats(const qn_model *m, struct qn_exp_stats *es, struct qn_io_stats *is)
{
    if (!m->stream) return qn_fail(-EINVAL, "the model is not streaming its experts");
    qn_exp_get_stats(m->stream->cache, -1, es);
    qn_io_get_stats(m->stream->io, is);
    return 0;
}

void qn_mst_print_stats(const qn_model *m, uint64_t tokens, FILE *out)
{
    const struct qn_mst *s = m->stream;
    if (!s) {
        fprintf(out, "qnext stats: every routed expert resident (%u slots), no streaming\n", m->n_slots);
        return;
    }
    struct qn_exp_stats es;
    struct qn_io_stats is;
    qn_exp_get_stats(s->cache, -1, &es);
    qn_io_get_stats(s->io, &is);
    fprintf(out, "qnext stats: streaming %u slots of %.2f MiB, io %s\n", m->n_slots, (double)qn_mst_slot_bytes(m) / 1048576.0,
            qn_io_engine_name(s->io));
    fprintf(out, "  expert hit rate %.4f (%llu hits, %llu misses, %llu evictions)\n", qn_exp_hit_rate(&es),
            (unsigned long long)es.hits, (unsigned long long)es.misses, (unsigned long long)es.evictions);
    fprintf(out, "  read %.2f MiB in %llu requests, %.3f GB/s while busy\n", (double)is.bytes / 1048576.0,
            (unsigned long long)is.requests, qn_io_stats_gbps(&is));
    fprintf(out, "  stall (reads + slot uploads) %.3f ms per token over %llu tokens\n",
            tokens ? (double)es.stall_ns / 1e6 / (double)tokens : 0.0, (unsigned long long)tokens);
    if (es.pf_guessed)
        fprintf(out, "  prefetch precision %.3f recall %.3f\n", qn_exp_precision(&es), qn_exp_recall(&es));
}
