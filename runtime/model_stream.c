/* model_stream.c — streaming mode of a qn_model (see model_stream.h): the pipeline that reads routed experts
 * into a ring of host-visible staging entries (or, on UMA, straight into the mapped slots), copies each piece
 * into its slot on the transfer queue as soon as it has arrived, and orders the GPU work with two timeline
 * semaphores — `tc` signalled by the compute segments, `tx` by the copy batches (docs/streaming.md). */
#include "model_stream.h"
#include "expert_host.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "expert_store.h"
#include "expert_usage.h"
#include "experts.h"
#include "qn_env.h"
#include "qn_err.h"
#include "qn_log.h"
#include "qn_time.h"
#include "stream.h"

#define IO_TIMEOUT_NS (120ll * 1000000000ll)
#define POLL_NS 50000ll               /* while waiting for a route: look at the reads in flight this often */
#define NXCMD 64                      /* transfer command buffers in rotation */
#define BATCH_BYTES (2u << 20)        /* a copy batch is submitted at this size (QNEXT_STREAM_BATCH), or when nothing more is due */
#define PIECE_DEFAULT (1u << 20)      /* parts are read and copied in pieces ending at multiples of this */
#define RING_BYTES_MAX (1ull << 30)   /* default ring: at most this much host-visible staging */
#define NCQE 64

/* One expert being filled: its reads (pieces) in flight, then its copies. */
struct job {
    int32_t layer, expert, slot;
    int entry;                 /* staging ring entry; -1: the reads go straight into the slot (UMA) */
    int n_pieces, left;        /* pieces, pieces not completed yet */
    int status;                /* the first failed piece's status (0 = fine so far) */
    bool prefetch;             /* started by a guess */
    bool need;                 /* the layer being prepared waits for it */
    bool in_batch;             /* has copies in the open transfer batch */
    bool retried;              /* a failed prefetch read that a lookup needed was read again once */
    uint64_t x_last;           /* the last copy batch holding copies of its pieces (0: none; a job whose last piece
                                  failed finishes with x 0 while its earlier pieces' copies may still be in flight) */
    bool live;                 /* in use (not on the free list) */
    char msg[240];
};

struct qn_mst {
    const qn_model *m;
    qn_vk *v;
    qn_io *io;
    qn_exp_cache *cache;
    qn_es *es;                /* where every expert part is in the files and in its slot (expert_store.h) */
    int *iofile;              /* [qn_es_n_files] io file id of each store file */
    uint64_t entry;           /* bytes of one staging entry (qn_es_entry_bytes: [pools slot | dpools slot]) */
    uint64_t piece;           /* read / copy granularity */
    uint64_t dpiece;          /* the same for demand misses (QNEXT_STREAM_DPIECE; default: piece) */
    bool direct;              /* UMA: reads land in the mapped slots, no staging, no copies */
    bool bar;                 /* direct into device-local host-visible pools (a resizable BAR), not UMA */
    bool bounce;              /* direct slots that O_DIRECT cannot target: QN_IO_BOUNCE on direct files */
    bool hybrid;              /* direct, but prefetches staged through a ring and copied (default on BAR; QNEXT_STREAM_HYBRID) */
    /* host-visible staging: n_ring entries laid out like the expert's slots | table rows [L, E] */
    qn_buf *up;
    unsigned char *stage;
    uint64_t row_at;
    int n_ring, ring_next;
    uint64_t *ring_x;         /* [n_ring] transfer value of the last copy that read the entry */
    bool *ring_busy;          /* [n_ring] a job owns it */
    /* jobs */
    struct job *job;
    int n_jobs, *free_jobs, n_free;
    int32_t *job_of_slot;     /* [n_slots] the job filling the slot, -1 */
    uint64_t *slot_x;         /* [n_slots] transfer value of the batch that copied the slot's data */
    struct qn_io_req *req;    /* scratch: one job's requests */
    int max_pieces;
    /* timelines: compute (route / experts / embed / head segments) and transfer (copy batches). Batch x goes
     * to copy stream x mod n_txq (its own transfer queue where the device has several: QNEXT_TRANSFER_QUEUES)
     * and signals that stream's timeline tx[x mod n_txq] = x; "tx >= x" below means every batch <= x is done. */
    qn_timeline *tc, *tx[QN_MAX_XQUEUES];
    int n_txq;
    uint64_t batch_bytes;     /* BATCH_BYTES or QNEXT_STREAM_BATCH */
    uint64_t c_val, c_done, x_val, x_done;   /* last value submitted / known complete */
    qn_cmd *xcmd[QN_MAX_XQUEUES][NXCMD];
    int xcur[QN_MAX_XQUEUES];
    bool xopen;
    uint64_t xbytes;          /* bytes the open batch copies */
    int *bjobs, n_bjobs;      /* jobs with copies in the open batch */
    bool brow;                /* the open batch copies the table row of the layer being prepared */
    /* the layer being prepared */
    struct qn_exp_fill *todo; /* misses waiting for a ring entry */
    int n_todo, n_need, err;
    struct qn_exp_fill pf_todo[QN_EXP_MAX_K];   /* prefetch fills waiting for a ring entry (after the misses) */
    int n_pf_todo;
    char errmsg[300];
    uint64_t need_x;          /* its EXPERTS segment waits for tx >= need_x */
    int32_t *uni, *gids;      /* [E] distinct ids of a call / of a guess */
    int32_t *gtop;            /* guess_top's output (wide guesses), n_gtop entries */
    size_t n_gtop;
    uint64_t route_ns, batches, copy_bytes;   /* stats: waiting for routes, copy batches and their bytes */
    struct qn_mst_times t;    /* the route wait split (qn_mst_times) */
    uint64_t t_x0;            /* copies outstanding since (host clock), while x_done < x_val */
    uint64_t exp_sub_ns, exp_x;   /* the last EXPERTS submission: when, and the tx value it waits for */
    bool spin;                /* QNEXT_STREAM_SPIN=1: poll the timelines instead of blocking waits */
    bool spin_io;             /* QNEXT_STREAM_SPIN=2: that, and poll the reads a layer waits for too */
    bool urgent;              /* QNEXT_STREAM_URGENT=1: demand reads go before queued prefetch reads */
    bool ring_bar;            /* QNEXT_STREAM_RING_MEM=bar: the staging ring in device-local host-visible memory
                                 (reads write over PCIe, the copies into the slots are device to device) */
    bool pf_drop;             /* QNEXT_STREAM_PF_DROP=1: pf_drop() */
    bool tuned;               /* QNEXT_STREAM_TUNED (stream_env) */
    bool skip_done;           /* QNEXT_STREAM_SKIP_DONE=1: an EXPERTS segment waits on the GPU only for the copy
                                 batches the host has not yet seen complete (none: no cross-queue wait), and a
                                 copy batch does not wait for the compute submissions the host saw complete */
    int split;                /* hybrid, QNEXT_STREAM_SPLIT=N: every N-th miss is staged + copied (DMA) while
                                 the others are read straight into their slots: both PCIe paths at once */
    unsigned n_miss;          /* misses started (the split's counter) */
    int pf_split;             /* hybrid, QNEXT_STREAM_PF_SPLIT=N: every N-th guess is read straight into its slot
                                 (CPU writes into the BAR) instead of staged + copied: balances the two paths */
    unsigned n_pf;            /* guesses started (pf_split's counter) */
    uint64_t t_fill, t_last_miss;   /* the layer's lookup began; its last demand miss's reads completed */
    int n_hot;                /* pinned hot set (--expert-hot), slots [0, n_hot) */
    qn_eu *usage;             /* --expert-trace: router choices per (layer, expert), written at close */
    char *trace;
    unsigned char *seen;      /* [E] */
    int n_prefetch;
};

uint64_t qn_mst_slot_bytes(const qn_model *m) { return m->slot_bytes + m->d_slot_bytes; }

#define GIB(x) ((double)(x) / 1073741824.0)

/* The largest heap with a device-local, host-visible, coherent memory type (a resizable BAR; 0: none). */
static uint64_t bar_heap_bytes(const struct qn_caps *c)
{
    const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                       VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    uint64_t best = 0;
    for (uint32_t i = 0; i < c->ntypes; i++)
        if ((c->types[i].flags & want) == want && c->heaps[c->types[i].heap].size > best)
            best = c->heaps[c->types[i].heap].size;
    return best;
}

/* Why the slots of a discrete GPU are staged (for the log and --stats). */
static void staged_why(const qn_model *m, char *buf, size_t n)
{
    const char *e = getenv("QNEXT_STREAM_BAR"), *st = getenv("QNEXT_STREAM_STAGED");
    uint64_t need = (uint64_t)m->n_slots * qn_mst_slot_bytes(m), heap = bar_heap_bytes(qn_vk_caps(m->v));
    if (st && !strcmp(st, "1")) snprintf(buf, n, "QNEXT_STREAM_STAGED=1");
    else if (e && !strcmp(e, "0")) snprintf(buf, n, "QNEXT_STREAM_BAR=0");
    else if (!heap) snprintf(buf, n, "no device-local host-visible memory");
    else if (need + need / 8 > heap)
        snprintf(buf, n, "no resizable BAR? the device-local host-visible heap holds %.2f GiB, the slots need %.2f GiB",
                 GIB(heap), GIB(need));
    else snprintf(buf, n, "the BAR allocation failed");
}

enum qn_mem qn_mst_pool_mem(const qn_model *m)
{
    const struct qn_caps *c = qn_vk_caps(m->v);
    const char *e = getenv("QNEXT_STREAM_BAR");
    uint64_t need = (uint64_t)m->n_slots * qn_mst_slot_bytes(m), heap = bar_heap_bytes(c);
    if (e && !strcmp(e, "0")) {
        QN_INFO("QNEXT_STREAM_BAR=0: expert slots in device memory, misses staged and copied");
        return QN_MEM_DEVICE;
    }
    if (e && !strcmp(e, "1")) {
        QN_INFO("QNEXT_STREAM_BAR=1: expert slots (%.2f GiB) in device-local host-visible memory (largest such heap "
                "%.2f GiB)", GIB(need), GIB(heap));
        return QN_MEM_DEVICE_MAPPED;
    }
    if (c->uma) return QN_MEM_DEVICE;   /* mapped already: reads land in the slots */
    if (heap && need + need / 8 <= heap) {
        QN_INFO("expert slots (%.2f GiB) in device-local host-visible memory (a %.2f GiB heap: resizable BAR): misses "
                "are read straight into the slots, no staging copies (QNEXT_STREAM_BAR=0: staged)", GIB(need),
                GIB(heap));
        return QN_MEM_DEVICE_MAPPED;
    }
    char why[160];
    staged_why(m, why, sizeof why);
    QN_INFO("expert slots (%.2f GiB) in device memory, misses staged and copied (%s; QNEXT_STREAM_BAR=1 tries "
            "device-local host-visible memory anyway)", GIB(need), why);
    return QN_MEM_DEVICE;
}

int qn_mst_pool_create(qn_vk *v, enum qn_mem *kind, uint64_t size, const char *name, qn_buf **out)
{
    int rc = qn_buf_create(v, *kind, size, name, out);
    if (rc && *kind == QN_MEM_HOST)
        return qn_fail_ctx(rc, "--experts host: %.2f GiB (%llu bytes) of system memory for expert pool '%s' could "
                           "not be allocated", GIB(size), (unsigned long long)size, name);
    if (rc && *kind == QN_MEM_DEVICE_MAPPED) {
        QN_WARN("expert pool '%s' in device-local host-visible memory: %s; this and the next pools go to device "
                "memory (misses staged and copied)", name, qn_errmsg());
        *kind = QN_MEM_DEVICE;
        rc = qn_buf_create(v, *kind, size, name, out);
    }
    return rc;
}

int qn_mst_plan(qn_model *m, uint64_t budget, const struct qn_model_params *p)
{
    int n = 0, K = m->c.top_k;
    int64_t total = (int64_t)m->c.num_layers * m->c.num_experts;
    struct qn_eu_cache_opts o;   /* the pinned hot set needs slots of its own */
    int rc = qn_eu_cache_opts(p, m->c.num_layers, m->c.num_experts, &o);
    free(o.hot);
    if (!rc) rc = qn_exp_slots_for_budget(budget, qn_mst_slot_bytes(m), K, p->prefetch, o.n_hot, total, &n);
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

/* Knobs from the environment (qn_env.h: unset or empty gives the default; a malformed or out-of-range value gives
 * the default with a warning). Each caller states what 0 means: sizes and counts take 0 as "the default" (silently),
 * switches and modes take 0 as a value (off). */
static uint64_t env_count(const char *name, uint64_t def)
{
    uint64_t v = qn_env_u64(name, def, 0, UINT64_MAX);
    return v ? v : def;
}
#define ENV_COUNT(name, def) env_count(name, def)                     /* sizes, counts: > 0; 0 gives def */
#define ENV_MODE(name, def) (int)qn_env_u64(name, def, 0, 1u << 20) /* switches, modes: 0 .. 2^20; 0 = off */

/* ---- pieces: a part is read in pieces that end at file offsets that are multiples of `piece` ---------- */

static uint64_t part_pieces(uint64_t piece, const struct qn_es_part *pt)
{
    return pt->len ? (pt->off + pt->len - 1) / piece - pt->off / piece + 1 : 0;
}

/* Piece i of an expert: part *p, bytes [*at, *at + *len) of it. False past the last piece. */
static bool piece_at(uint64_t piece, const struct qn_es_part *pt, int i, int *p, uint64_t *at, uint64_t *len)
{
    for (int k = 0; k < QN_ES_PARTS; k++) {
        uint64_t np = part_pieces(piece, &pt[k]);
        if ((uint64_t)i >= np) {
            i -= (int)np;
            continue;
        }
        uint64_t o = pt[k].off, end = o + pt[k].len, a = (o / piece + (uint64_t)i) * piece, b = a + piece;
        a = a < o ? o : a;
        b = b > end ? end : b;
        *p = k;
        *at = a - o;
        *len = b - a;
        return true;
    }
    return false;
}

/* Where piece bytes [at, +n) of part pt land on the host: the staging entry, or the mapped slot (UMA). */
static unsigned char *piece_dst(const struct qn_mst *s, const struct job *j, const struct qn_es_part *pt, uint64_t at)
{
    if (j->entry < 0) {
        uint64_t off;
        qn_buf *b = slot_dst(s->m, pt->set, (uint32_t)j->slot, &off);
        return (unsigned char *)b->map + off + pt->slot_off + at;
    }
    return s->stage + (uint64_t)j->entry * s->entry + qn_es_entry_off(s->es, (int)pt->set) + pt->slot_off + at;
}

/* A job's piece size: demand misses may be read in smaller pieces (more readers at once) than guesses. */
static uint64_t job_piece(const struct qn_mst *s, const struct job *j) { return j->prefetch ? s->piece : s->dpiece; }

/* ---- the staging ring and the transfer batches ------------------------------------------------------- */

/* The host saw tx >= v: closes the interval with copies outstanding when every batch is done. */
static void x_seen(struct qn_mst *s, uint64_t v)
{
    if (v <= s->x_done) return;
    bool was_busy = s->x_done < s->x_val;
    s->x_done = v;
    if (was_busy && v >= s->x_val) s->t.copy_busy_ns += qn_now_ns() - s->t_x0;
}

/* The copy stream of batch x, and the largest batch value <= x that stream q signals (0: none). */
static int xq_of(const struct qn_mst *s, uint64_t x) { return (int)(x % (uint64_t)s->n_txq); }
static uint64_t xq_last(const struct qn_mst *s, int q, uint64_t x)
{
    uint64_t n = (uint64_t)s->n_txq, d = (x % n + n - (uint64_t)q) % n;
    return x >= d ? x - d : 0;
}

/* *out: the largest x such that every batch <= x has completed (one stream: its timeline's value). */
static int tx_value(struct qn_mst *s, uint64_t *out)
{
    uint64_t done = s->x_val;
    for (int q = 0; q < s->n_txq; q++) {
        uint64_t last = xq_last(s, q, s->x_val), v;
        if (last <= s->x_done) continue;
        int rc = qn_timeline_value(s->tx[q], &v);
        if (rc) return rc;
        uint64_t pend = xq_last(s, q, v + (uint64_t)s->n_txq);   /* the stream's first batch not done */
        if (v < last && pend - 1 < done) done = pend - 1;
    }
    *out = done > s->x_done ? done : s->x_done;
    return 0;
}

/* Block until every batch <= x has completed (or timeout_ns passes on one stream: -ETIMEDOUT). */
static int tx_wait(struct qn_mst *s, uint64_t x, int64_t timeout_ns)
{
    for (int q = 0; q < s->n_txq; q++) {
        uint64_t last = xq_last(s, q, x);
        int rc = last > s->x_done ? qn_timeline_wait(s->tx[q], last, timeout_ns) : 0;
        if (rc) return rc;
    }
    return 0;
}

/* The open batch's command buffer (its stream is that of the value it will signal). */
static qn_cmd *xcmd_open(struct qn_mst *s)
{
    int q = xq_of(s, s->x_val + 1);
    return s->xcmd[q][s->xcur[q]];
}

/* A ring entry no job owns whose last copy has completed, or -1. */
static int entry_get(struct qn_mst *s)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < s->n_ring; i++) {
            int e = (s->ring_next + i) % s->n_ring;
            if (!s->ring_busy[e] && s->ring_x[e] <= s->x_done) {
                s->ring_busy[e] = true;
                s->ring_next = (e + 1) % s->n_ring;
                return e;
            }
        }
        uint64_t v;
        if (pass == 0 && tx_value(s, &v)) return -1;
        if (pass == 0) x_seen(s, v);
    }
    return -1;
}

/* qn_cmd_submit_tl, its host time counted (--stats: host time in vkQueueSubmit per token) */
static int submit(struct qn_mst *s, qn_cmd *c, const struct qn_tl_point *w, uint32_t nw, const struct qn_tl_point *sig)
{
    uint64_t t0 = qn_now_ns();
    int rc = qn_cmd_submit_tl(c, w, nw, sig);
    s->t.submit_ns += qn_now_ns() - t0;
    s->t.submits++;
    return rc;
}

/* Record a copy up[src, +n) -> dst[off, +n) into the open transfer batch (begun on first use). */
static int batch_copy(struct qn_mst *s, uint64_t src, const qn_buf *dst, uint64_t off, uint64_t n)
{
    if (!s->xopen) {
        int rc = qn_cmd_begin(xcmd_open(s));   /* waits for its previous submit (NXCMD of its stream ago) */
        if (rc) return rc;
        s->xopen = true;
        s->xbytes = 0;
    }
    s->xbytes += n;
    return qn_cmd_copy(xcmd_open(s), s->up, src, dst, off, n);
}

static void job_finish(struct qn_mst *s, int j, uint64_t x);

/* Submit the open batch: it waits (on the GPU) for every compute submission the host knows has completed (the
 * readers of the slots it overwrites) and signals tx = ++x_val; then finish the jobs whose pieces are all in. */
static int batch_submit(struct qn_mst *s)
{
    if (!s->xopen) return 0;
    int q = xq_of(s, s->x_val + 1);
    qn_cmd *c = s->xcmd[q][s->xcur[q]];
    qn_cmd_barrier(c);
    int rc = qn_cmd_end(c);
    struct qn_tl_point w = { s->tc, s->c_done }, sig = { s->tx[q], s->x_val + 1 };
    /* (QNEXT_STREAM_SKIP_DONE=1: no wait; the host saw those readers complete before this submit, which orders
     * their reads before these writes) */
    if (!rc) rc = submit(s, c, &w, s->c_done && !s->skip_done ? 1 : 0, &sig);
    if (!rc && s->x_done >= s->x_val) s->t_x0 = qn_now_ns();   /* copies outstanding from now */
    s->xopen = false;
    s->xcur[q] = (s->xcur[q] + 1) % NXCMD;
    if (!rc) s->x_val++, s->batches++, s->copy_bytes += s->xbytes;
    if (s->brow && !rc && s->x_val > s->need_x) s->need_x = s->x_val;
    s->brow = false;
    for (int i = 0; i < s->n_bjobs; i++) {
        struct job *jb = &s->job[s->bjobs[i]];
        jb->in_batch = false;
        if (rc && !jb->status) {
            jb->status = rc;
            snprintf(jb->msg, sizeof jb->msg, "%s", qn_errmsg());
        }
        if (!rc) jb->x_last = s->x_val;
        if (!jb->left) job_finish(s, s->bjobs[i], rc ? 0 : s->x_val);
    }
    s->n_bjobs = 0;
    return rc;
}

/* ---- jobs ---------------------------------------------------------------------------------------------- */

static void set_err(struct qn_mst *s, int code, const char *msg)
{
    if (s->err) return;
    s->err = code;
    snprintf(s->errmsg, sizeof s->errmsg, "streaming an expert: %s", msg);
}

/* Queue the reads of every piece of job j (tags j << 32 | piece). */
static int job_reads(struct qn_mst *s, int j)
{
    struct job *jb = &s->job[j];
    const struct qn_es_part *pt = qn_es_parts(s->es, jb->layer, jb->expert);
    int p, n = 0;
    uint64_t at, len;
    for (int i = 0; piece_at(job_piece(s, jb), pt, i, &p, &at, &len); i++)
        s->req[n++] = (struct qn_io_req){ .file = s->iofile[pt[p].file], .offset = pt[p].off + at, .length = len,
                                          .dst = piece_dst(s, jb, &pt[p], at),
                                          .flags = (s->bounce && (jb->entry < 0 || s->ring_bar) ? QN_IO_BOUNCE : 0u) |
                                                   (s->urgent && jb->need ? QN_IO_URGENT : 0u),
                                          .tag = (uint64_t)j << 32 | (uint64_t)i };
    jb->n_pieces = jb->left = n;
    jb->status = 0;
    return qn_io_submit(s->io, s->req, n);
}

/* Start filling f (a slot the cache assigned) through ring entry `entry` (-1 on UMA). */
static int job_start(struct qn_mst *s, const struct qn_exp_fill *f, int entry, bool prefetch)
{
    if (!s->n_free) return qn_fail(-EFAULT, "streaming: no job left for expert %d of layer %d", f->expert, f->layer);
    int j = s->free_jobs[--s->n_free];
    s->job[j] = (struct job){ .layer = f->layer, .expert = f->expert, .slot = f->slot, .entry = entry,
                              .prefetch = prefetch, .need = !prefetch, .live = true };
    s->job_of_slot[f->slot] = j;
    if (!prefetch) s->n_need++, s->t.miss_fills++;
    int rc = job_reads(s, j);
    if (rc) {   /* nothing was queued */
        s->job[j].status = rc;
        snprintf(s->job[j].msg, sizeof s->job[j].msg, "%s", qn_errmsg());
        s->job[j].left = 0;
        job_finish(s, j, 0);
    }
    return 0;
}

/* Every piece of job j is in (or failed) and none of its copies waits in the open batch: the slot is filled
 * (its copies signal x) or freed. A needed prefetch that failed is read once more before that counts. */
static void job_finish(struct qn_mst *s, int j, uint64_t x)
{
    struct job *jb = &s->job[j];
    if (jb->status && jb->need && jb->prefetch && !jb->retried) {
        jb->retried = true;
        int rc = job_reads(s, j);
        if (!rc) return;
        jb->status = rc;
        jb->left = 0;
        snprintf(jb->msg, sizeof jb->msg, "%s", qn_errmsg());
    }
    if (jb->status && jb->need) set_err(s, jb->status, jb->msg);
    if (jb->need) s->n_need--;
    if (!jb->prefetch) s->t_last_miss = qn_now_ns();
    x = x > jb->x_last ? x : jb->x_last;   /* (a failed last piece: the batches of its earlier pieces) */
    if (x > s->slot_x[jb->slot]) s->slot_x[jb->slot] = x;
    if (jb->entry >= 0 && x > s->ring_x[jb->entry]) s->ring_x[jb->entry] = x;
    if (!jb->status) qn_exp_fill_done(s->cache, jb->slot);
    else qn_exp_fill_failed(s->cache, jb->slot);
    if (jb->entry >= 0) s->ring_busy[jb->entry] = false;
    s->job_of_slot[jb->slot] = -1;
    jb->live = false;
    s->free_jobs[s->n_free++] = j;
}

/* A piece arrived (or failed): record its copy into the open batch; finish the job after its last piece. */
static void on_piece(struct qn_mst *s, const struct qn_io_cqe *c)
{
    int j = (int)(c->tag >> 32), i = (int)(c->tag & 0xffffffffu), p = 0;
    struct job *jb = &s->job[j];
    uint64_t at = 0, len = 0;
    if (c->status < 0 && !jb->status) {
        jb->status = c->status;
        snprintf(jb->msg, sizeof jb->msg, "%s", c->msg);
    } else if (!c->status && !jb->status && jb->entry >= 0) {
        const struct qn_es_part *pt = qn_es_parts(s->es, jb->layer, jb->expert);
        if (!piece_at(job_piece(s, jb), pt, i, &p, &at, &len)) {   /* tags come from job_reads: cannot happen */
            jb->status = qn_fail(-EFAULT, "streaming: piece %d of layer %d expert %d does not exist", i, jb->layer,
                                 jb->expert);
            snprintf(jb->msg, sizeof jb->msg, "%s", qn_errmsg());
            if (--jb->left == 0 && !jb->in_batch) job_finish(s, j, 0);
            return;
        }
        uint64_t off, src = (uint64_t)jb->entry * s->entry + qn_es_entry_off(s->es, (int)pt[p].set) + pt[p].slot_off + at;
        qn_buf *dst = slot_dst(s->m, pt[p].set, (uint32_t)jb->slot, &off);
        int rc = batch_copy(s, src, dst, off + pt[p].slot_off + at, len);
        if (rc) {
            jb->status = rc;
            snprintf(jb->msg, sizeof jb->msg, "%s", qn_errmsg());
        }
        if (!jb->in_batch) {   /* also after a failed record: the batch may hold its earlier copies */
            jb->in_batch = true;
            s->bjobs[s->n_bjobs++] = j;
        }
    }
    if (--jb->left == 0 && !jb->in_batch) job_finish(s, j, 0);
}

static int issue_todo(struct qn_mst *s);

/* A fill the layer being prepared waits for still has reads in flight. */
static bool need_reads(const struct qn_mst *s)
{
    for (int j = 0; j < s->n_jobs; j++)
        if (s->job[j].live && s->job[j].need && s->job[j].left) return true;
    return false;
}

/* Collect the reads that completed (waiting up to timeout_ns for one when any is pending), record their copies
 * and submit them as one batch, then start fills waiting for ring entries. -ETIMEDOUT only when timeout_ns is the
 * IO timeout (reads stuck). */
static int service(struct qn_mst *s, int64_t timeout_ns)
{
    struct qn_io_cqe cq[NCQE];
    int k = qn_io_pending(s->io) ? qn_io_wait(s->io, cq, NCQE, 1, timeout_ns) : 0;
    if (k == -ETIMEDOUT && timeout_ns < IO_TIMEOUT_NS) k = 0;
    if (k == -ETIMEDOUT) {
        qn_io_cancel(s->io, IO_TIMEOUT_NS);
        return qn_fail(-ETIMEDOUT, "streaming: expert reads did not complete in %lld s",
                       (long long)(IO_TIMEOUT_NS / 1000000000ll));
    }
    if (k < 0) return k;
    for (int i = 0; i < k; i++) on_piece(s, &cq[i]);
    int rc = 0;
    /* else more pieces are due soon: fewer, larger batches (a poll, timeout 0, that found nothing says nothing about
     * that: spinning would submit a batch per piece, H100 run 18c: 4x the batches, 17.5 vs 21.2 tok/s) */
    if (s->xopen && (s->xbytes >= s->batch_bytes || (k == 0 && timeout_ns > 0) || !qn_io_pending(s->io) ||
                     (s->n_need && !need_reads(s))))
        rc = batch_submit(s);
    return rc || (!s->n_todo && !s->n_pf_todo) ? rc : issue_todo(s);
}

/* The compute timeline's value, or (copies) the copy batches' (tx_value); a blocking wait on either. */
static int tl_value(struct qn_mst *s, bool copies, uint64_t *v)
{
    return copies ? tx_value(s, v) : qn_timeline_value(s->tc, v);
}
static int tl_wait(struct qn_mst *s, bool copies, uint64_t value, int64_t timeout_ns)
{
    return copies ? tx_wait(s, value, timeout_ns) : qn_timeline_wait(s->tc, value, timeout_ns);
}

/* Wait until the compute timeline (or the copies) reaches `value` (*done: what the host knows it reached),
 * handling reads in flight (prefetches) meanwhile: blocking waits of POLL_NS while reads are pending, or with
 * QNEXT_STREAM_SPIN=1 polls of the counter without sleeping. */
static int wait_tl(struct qn_mst *s, bool copies, uint64_t value, uint64_t *done)
{
    uint64_t t0 = qn_now_ns();
    while (*done < value) {
        int rc;
        bool busy = qn_io_pending(s->io) || s->xopen || s->n_pf_todo;
        if (s->spin) {
            uint64_t v;
            if ((rc = tl_value(s, copies, &v))) return rc;
            if (v >= value) *done = v;
            else if (busy && (rc = service(s, 0))) return rc;
            else if (qn_now_ns() - t0 > (uint64_t)IO_TIMEOUT_NS)
                return qn_fail(-ETIMEDOUT, "streaming: the GPU did not reach step %llu in %lld s",
                               (unsigned long long)value, (long long)(IO_TIMEOUT_NS / 1000000000ll));
        } else if (busy) {   /* the timeline first, the reads every POLL_NS */
            rc = tl_wait(s, copies, value, POLL_NS);
            if (!rc) *done = value;
            else if (rc != -ETIMEDOUT || (rc = service(s, 1000))) return rc;   /* what is done by now */
        } else {
            if ((rc = tl_wait(s, copies, value, IO_TIMEOUT_NS))) return rc;
            *done = value;
        }
    }
    return 0;
}

/* Wait until the compute timeline reaches `value`, handling reads in flight (prefetches) meanwhile. */
static int wait_compute(struct qn_mst *s, uint64_t value) { return wait_tl(s, false, value, &s->c_done); }

/* The copies the last EXPERTS segment waits for (its tail after submission: qn_mst_times.tx_tail_ns). */
static int wait_copies(struct qn_mst *s)
{
    if (s->exp_x <= s->x_done) return 0;
    uint64_t v = s->x_done;
    int rc = wait_tl(s, true, s->exp_x, &v);
    if (!rc) {
        x_seen(s, v);
        s->t.tx_tail_ns += qn_now_ns() - s->exp_sub_ns;
    }
    return rc;
}

/* QNEXT_STREAM_PF_DROP=1: the guesses for `layer` that its lookup did not use and whose reads are not all in
 * are dropped from the IO queue (their reads come back cancelled and free their slots; one a later lookup needs
 * is read again), so the misses and the next layer's guesses get the bandwidth. */
static void pf_drop(struct qn_mst *s, int layer)
{
    for (int j = 0; s->pf_drop && j < s->n_jobs; j++) {
        const struct job *jb = &s->job[j];
        if (jb->live && jb->prefetch && !jb->need && jb->layer == layer && jb->left)
            s->t.pf_dropped += qn_io_drop(s->io, 0xffffffff00000000ull, (uint64_t)j << 32) > 0;
    }
}

/* Wait until every read has completed and every copy is submitted (errors of needed jobs land in s->err). */
static int drain(struct qn_mst *s)
{
    int rc = 0;
    while (!rc && qn_io_pending(s->io)) rc = service(s, IO_TIMEOUT_NS);
    return rc ? rc : batch_submit(s);
}

/* Hybrid: a direct read may overwrite slot `slot` only once its last copy (an unused prefetch's, which no
 * EXPERTS segment waited for) has landed. */
static int slot_copied(struct qn_mst *s, int32_t slot)
{
    uint64_t v;
    if (s->slot_x[slot] <= s->x_done) return 0;
    int rc = tx_value(s, &v);
    if (!rc && v < s->slot_x[slot]) rc = tx_wait(s, v = s->slot_x[slot], IO_TIMEOUT_NS);
    if (!rc) x_seen(s, v);
    return rc;
}

/* Whether the next fill goes through a ring entry: always on the staged path, never on the direct one; in the
 * hybrid the guesses (but every QNEXT_STREAM_PF_SPLIT-th, read straight into its slot) and every
 * QNEXT_STREAM_SPLIT-th miss. */
static bool want_entry(struct qn_mst *s, bool prefetch)
{
    if (!s->direct) return true;
    if (!s->hybrid) return false;
    if (prefetch) return !(s->pf_split && s->n_pf++ % (unsigned)s->pf_split == 0);
    return s->split && s->n_miss++ % (unsigned)s->split == 0;
}

/* Start fills waiting in q[0..*n) while ring entries are free (all of them on UMA). */
static int issue(struct qn_mst *s, struct qn_exp_fill *q, int *n, bool prefetch)
{
    int done = 0, rc = 0;
    while (!rc && done < *n) {
        int e = want_entry(s, prefetch) ? entry_get(s) : -1;
        if (!s->direct && e < 0) break;
        if (e < 0 && s->hybrid && (rc = slot_copied(s, q[done].slot))) break;   /* hybrid: no entry, read direct */
        rc = job_start(s, &q[done++], e, prefetch);
    }
    memmove(q, q + done, sizeof *q * (size_t)(*n - done));
    *n -= done;
    return rc;
}

/* The misses first; the prefetch fills only once no miss waits. */
static int issue_todo(struct qn_mst *s)
{
    int rc = s->n_todo ? issue(s, s->todo, &s->n_todo, false) : 0;
    return rc || s->n_todo || !s->n_pf_todo ? rc : issue(s, s->pf_todo, &s->n_pf_todo, true);
}

/* Prefetch fills never started: their slots are freed (a later lookup misses them). layer < 0: all of them,
 * else those of `layer` and earlier ones (their guess was consumed). */
static void pf_cancel(struct qn_mst *s, int layer)
{
    int k = 0;
    for (int i = 0; i < s->n_pf_todo; i++)
        if (layer < 0 || s->pf_todo[i].layer <= layer) qn_exp_fill_failed(s->cache, s->pf_todo[i].slot);
        else s->pf_todo[k++] = s->pf_todo[i];
    s->n_pf_todo = k;
}

/* No entry is free and no read is pending: wait for the oldest copy out of an entry no job owns. */
static int wait_entry(struct qn_mst *s)
{
    int rc = batch_submit(s);
    uint64_t want = UINT64_MAX;
    for (int e = 0; e < s->n_ring; e++)
        if (!s->ring_busy[e] && s->ring_x[e] > s->x_done && s->ring_x[e] < want) want = s->ring_x[e];
    if (rc || want == UINT64_MAX) return rc ? rc : qn_fail(-EFAULT, "streaming: every staging entry is owned and no read is in flight");
    if ((rc = tx_wait(s, want, IO_TIMEOUT_NS))) return rc;
    x_seen(s, want);
    return 0;
}

/* Until every miss is read and copied and every needed prefetch too; stops at the first needed failure. With
 * QNEXT_STREAM_SPIN=2 the reads are polled without sleeping (no wake-up latency after the last one). */
static int drive(struct qn_mst *s)
{
    int rc = 0;
    uint64_t t0 = s->spin_io ? qn_now_ns() : 0;
    while (!rc && !s->err && (s->n_todo || s->n_need)) {
        if (s->n_todo && (rc = issue_todo(s))) break;
        if (s->spin_io && qn_io_pending(s->io) && qn_now_ns() - t0 < (uint64_t)IO_TIMEOUT_NS) rc = service(s, 0);
        else if (qn_io_pending(s->io) || s->xopen) rc = service(s, IO_TIMEOUT_NS);
        else if (s->n_todo) rc = wait_entry(s);
        else if (s->n_need) rc = qn_fail(-EFAULT, "streaming: %d expert fills outstanding, no read in flight", s->n_need);
    }
    return rc;
}

/* ---- one layer --------------------------------------------------------------------------------------- */

/* Distinct valid ids of ids[0..n) into out (at most max); bad ids are an error when `strict`, else skipped. */
static int distinct(struct qn_mst *s, int layer, const int32_t *ids, int n, int32_t *out, int max, bool strict)
{
    int E = s->m->c.num_experts, nu = 0;
    memset(s->seen, 0, (size_t)E);
    for (int i = 0; i < n && nu < max; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= E) {
            if (!strict) continue;
            return qn_fail(-ERANGE, "streaming: the router of layer %d chose expert %d (of %d)", layer, id, E);
        }
        if (!s->seen[id]) s->seen[id] = 1, out[nu++] = id;
    }
    return nu;
}

/* Lookup of ids (distinct, k <= QN_EXP_MAX_K) for the next compute submission: misses go to todo, pending
 * prefetches become needed. */
static int lookup(struct qn_mst *s, int layer, const int32_t *ids, int k)
{
    struct qn_exp_result r;
    int rc;
    bool drained = false;
    for (;;) {
        rc = qn_exp_lookup(s->cache, layer, ids, k, s->c_val + 1, s->c_done, &r);
        if (rc == -EAGAIN) rc = wait_compute(s, r.wait_for);
        else if (rc == -ENOSPC && !drained) pf_cancel(s, -1), rc = drain(s), drained = true;
        else break;
        if (rc) return rc;
    }
    if (rc) return rc;
    for (int i = 0; i < r.k; i++) {
        int32_t slot = r.slot[i], j = s->job_of_slot[slot];
        if (r.kind[i] == QN_EXP_PENDING && j < 0) {   /* a guess still waiting for an entry: now a miss */
            int q = 0;
            while (q < s->n_pf_todo && s->pf_todo[q].slot != slot) q++;
            if (q == s->n_pf_todo)
                return qn_fail(-EFAULT, "streaming: slot %d of layer %d expert %d is filling without a read", slot,
                               layer, ids[i]);
            s->todo[s->n_todo++] = s->pf_todo[q];
            s->pf_todo[q] = s->pf_todo[--s->n_pf_todo];
        } else if (r.kind[i] == QN_EXP_PENDING && !s->job[j].need) {
            s->job[j].need = true;
            s->n_need++;
            if (s->job[j].left) s->t.pf_inflight++;
        }
    }
    memcpy(s->todo + s->n_todo, r.fill, sizeof *r.fill * (size_t)r.n_fill);
    s->n_todo += r.n_fill;
    return 0;
}

/* The guess for layer `next` (its router applied to this layer's MoE input): the resident ones are pinned for
 * it, the absent ones get slots while the prefetch allowance lasts and wait for ring entries behind the misses;
 * their reads queue behind the misses'. */
static int prefetch(struct qn_mst *s, int next, const int32_t *guess, int n)
{
    if (!s->n_prefetch || !guess || n <= 0 || next >= s->m->c.num_layers) return 0;
    int ng = distinct(s, next, guess, n, s->gids, QN_EXP_MAX_K, false);
    struct qn_exp_result r;
    int rc = ng > 0 ? qn_exp_prefetch(s->cache, next, s->gids, ng, s->c_val + 3, s->c_done, &r) : 0;
    for (int i = 0; !rc && ng > 0 && i < r.n_fill; i++) {
        if (s->n_pf_todo < QN_EXP_MAX_K) s->pf_todo[s->n_pf_todo++] = r.fill[i];
        else qn_exp_fill_failed(s->cache, r.fill[i].slot);
    }
    return rc ? rc : issue_todo(s);
}

/* The layer's slot-table row to the device if it changed: written in place when the table is mapped (UMA),
 * else copied from its own staging row in the next batch. */
static int table_row(struct qn_mst *s, int layer)
{
    const qn_model *m = s->m;
    uint64_t E = (uint64_t)m->c.num_experts, at = (uint64_t)layer * E * 4u;
    if (!qn_exp_table_dirty(s->cache, layer)) return 0;
    const int32_t *row = qn_exp_table(s->cache) + (uint64_t)layer * E;
    int rc = 0;
    if (m->slot_table->map) {
        memcpy((char *)m->slot_table->map + at, row, (size_t)E * 4u);
    } else {
        memcpy(s->stage + s->row_at + at, row, (size_t)E * 4u);
        rc = batch_copy(s, s->row_at + at, m->slot_table, at, E * 4u);
        s->brow = true;
    }
    if (!rc) qn_exp_table_clean(s->cache, layer);
    return rc;
}

/* After a failure: no read may still land and no copy may be half recorded; needed slots end filled or freed. */
static void abort_layer(struct qn_mst *s)
{
    qn_io_cancel(s->io, IO_TIMEOUT_NS);
    drain(s);
    for (int i = 0; i < s->n_todo; i++) qn_exp_fill_failed(s->cache, s->todo[i].slot);
    s->n_todo = 0;
    pf_cancel(s, -1);
    s->n_need = 0;
    for (int j = 0; j < s->n_jobs; j++) s->job[j].need = false;
}

/* The copies of every slot the layer reads (tx value for its EXPERTS segment). */
static void layer_need_x(struct qn_mst *s, int layer, int nu)
{
    const int32_t *row = qn_exp_table(s->cache) + (size_t)layer * (size_t)s->m->c.num_experts;
    s->need_x = 0;
    for (int i = 0; i < nu; i++) {
        int32_t slot = row[s->uni[i]];
        if (slot >= 0 && s->slot_x[slot] > s->need_x) s->need_x = s->slot_x[slot];
    }
}

static int layer_fill(struct qn_mst *s, int layer, const int32_t *ids, int n, const int32_t *guess, int ng)
{
    int rc = 0, nu = distinct(s, layer, ids, n, s->uni, s->m->c.num_experts, true);
    if (nu < 0) return nu;
    qn_eu_count(s->usage, layer, ids, n);
    if (nu > (int)s->m->n_slots)
        return qn_fail(-ENOSPC, "streaming: layer %d needs %d experts at once but only %u slots exist", layer, nu,
                       s->m->n_slots);
    s->need_x = 0;
    s->err = 0;
    s->t_fill = s->t_last_miss = qn_now_ns();
    for (int at = 0; !rc && at < nu; at += QN_EXP_MAX_K)
        rc = lookup(s, layer, s->uni + at, nu - at < QN_EXP_MAX_K ? nu - at : QN_EXP_MAX_K);
    pf_cancel(s, layer);   /* guesses for this layer that never got an entry: not needed after all */
    if (!rc) pf_drop(s, layer);
    if (!rc) rc = issue_todo(s);
    if (!rc) rc = prefetch(s, layer + 1, guess, ng);
    if (!rc) rc = drive(s);
    s->t.miss_ns += s->t_last_miss - s->t_fill;
    if (!rc && !s->err) layer_need_x(s, layer, nu);
    if (!rc && !s->err) rc = table_row(s, layer);
    if (!rc && !s->err) rc = batch_submit(s);
    if (!rc && s->err) rc = qn_fail(s->err, "%s", s->errmsg);
    return rc;
}

/* a ranks before b: larger logit, ties to the lower id, NaN last */
static bool beats(float a, int ia, float b, int ib)
{
    if (a != a) return false;
    if (b != b) return true;
    return a > b || (a == b && ia < ib);
}

/* The top qn_mst_guess_width experts of each of T rows of logits [T, E], rank-major, into s->gtop (*out). */
static int guess_top(const qn_model *m, const float *logits, int T, const int32_t **out)
{
    struct qn_mst *s = m->stream;
    int E = m->c.num_experts, G = qn_mst_guess_width(m);
    G = G > E ? E : G;
    if (G <= 0 || T <= 0) return 0;
    if ((size_t)T * (size_t)G > s->n_gtop) {
        int32_t *p = realloc(s->gtop, sizeof *p * (size_t)T * (size_t)G);
        if (!p) return 0;   /* no guess this time: prefetch is best effort */
        s->gtop = p;
        s->n_gtop = (size_t)T * (size_t)G;
    }
    int32_t best[QN_EXP_MAX_K];
    for (int t = 0; t < T; t++) {   /* insertion into a sorted list of G (G <= 64, E = 512: cheap) */
        const float *l = logits + (size_t)t * (size_t)E;
        int n = 0;
        for (int e = 0; e < E; e++) {
            if (n == G && !beats(l[e], e, l[best[G - 1]], best[G - 1])) continue;
            int j = n < G ? n++ : G - 1;
            while (j > 0 && beats(l[e], e, l[best[j - 1]], best[j - 1])) best[j] = best[j - 1], j--;
            best[j] = e;
        }
        for (int r = 0; r < G; r++) s->gtop[(size_t)r * (size_t)T + (size_t)t] = best[r];
    }
    *out = s->gtop;
    return T * G;
}

int qn_mst_layer(const qn_model *m, int layer, const int32_t *ids, int n, const struct qn_mst_guess *g)
{
    struct qn_mst *s = m->stream;
    const int32_t *guess = g ? g->ids : NULL;
    int ng = g && g->ids ? g->n : 0;
    uint64_t t0 = qn_now_ns();
    uint64_t xv;                             /* copies done by now (closes the 'outstanding' interval early) */
    if (s->x_done < s->x_val && !tx_value(s, &xv)) x_seen(s, xv);
    if (layer == 0) s->exp_x = 0;            /* the previous call's last experts: its head was waited */
    int rc = wait_copies(s);                 /* the last experts segment's copies (the route needs them) */
    if (!rc) rc = wait_compute(s, s->c_val); /* the route segment (the GPU's time, not a stall) */
    s->route_ns += qn_now_ns() - t0;
    s->t.layers++;
    t0 = qn_now_ns();
    if (!rc && g && g->logits) ng = guess_top(m, g->logits, g->T, &guess);   /* the route is done: logits valid */
    if (!rc) rc = layer_fill(s, layer, ids, n, guess, ng);
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", qn_errmsg());
        abort_layer(s);
        return qn_fail(rc, "%s", msg);
    }
    qn_exp_note_stall(s->cache, layer, qn_now_ns() - t0);
    return 0;
}

int qn_mst_submit(const qn_model *m, qn_cmd *seg, int experts_layer)
{
    struct qn_mst *s = m->stream;
    struct qn_tl_point w[QN_MAX_XQUEUES] = { { 0 } }, sig = { s->tc, s->c_val + 1 };
    uint32_t nw = 0;
    uint64_t xv;
    if (s->skip_done && experts_layer >= 0 && s->need_x > s->x_done && !tx_value(s, &xv)) x_seen(s, xv);
    for (int q = 0; experts_layer >= 0 && s->need_x && q < s->n_txq; q++) {   /* every batch <= need_x */
        uint64_t last = xq_last(s, q, s->need_x);
        if (last && !(s->skip_done && last <= s->x_done)) w[nw++] = (struct qn_tl_point){ s->tx[q], last };
    }
    int rc = submit(s, seg, w, nw, &sig);
    if (!rc) s->c_val++;
    if (!rc && experts_layer >= 0) s->exp_sub_ns = qn_now_ns(), s->exp_x = s->need_x;
    return rc;
}

/* ---- open / close -------------------------------------------------------------------------------------- */

/* UMA (or pools in BAR memory, QNEXT_STREAM_BAR=1 in model.c): every pool the experts use is mapped, so reads
 * can land in the slots (unless QNEXT_STREAM_STAGED=1). */
static bool slots_mapped(const qn_model *m)
{
    const char *e = getenv("QNEXT_STREAM_STAGED");
    if (e && !strcmp(e, "1")) return false;
    for (uint32_t i = 0; i < m->n_pools; i++)
        if (!m->pools[i]->map) return false;
    for (uint32_t i = 0; m->d_slot_bytes && i < m->d_n_pools; i++)
        if (!m->dpools[i]->map) return false;
    return m->n_pools > 0;
}

/* Most pieces any expert takes (sizes the request scratch). */
static int max_pieces(const struct qn_mst *s)
{
    uint64_t most = 1;
    for (int l = 0; l < qn_es_n_layers(s->es); l++)
        for (int e = 0; e < qn_es_n_experts(s->es); e++) {
            const struct qn_es_part *pt = qn_es_parts(s->es, l, e);
            uint64_t pc = s->piece < s->dpiece ? s->piece : s->dpiece;
            uint64_t n = part_pieces(pc, &pt[0]) + part_pieces(pc, &pt[1]) + part_pieces(pc, &pt[2]);
            most = n > most ? n : most;
        }
    return most > (1u << 20) ? -1 : (int)most;
}

/* Staging ring, job table, per-slot state. Ring: QNEXT_STREAM_RING entries, else 4 top_k + prefetch (at
 * least 16) within RING_BYTES_MAX; none on UMA. */
static int alloc_pipeline(struct qn_mst *s)
{
    const qn_model *m = s->m;
    size_t L = (size_t)m->c.num_layers, E = (size_t)m->c.num_experts, N = m->n_slots;
    uint64_t ring = (uint64_t)(4 * m->c.top_k + s->n_prefetch), cap = RING_BYTES_MAX / (s->entry ? s->entry : 1);
    ring = ring < 16 ? 16 : ring;
    ring = ring > cap ? cap : ring;
    ring = ENV_COUNT("QNEXT_STREAM_RING", ring ? ring : 1);
    s->n_ring = s->direct && !s->hybrid ? 0 : ring > 4096 ? 4096 : (int)ring;
    s->n_jobs = s->direct ? (int)E + 2 * QN_EXP_MAX_K : s->n_ring;
    if ((s->max_pieces = max_pieces(s)) < 0) return qn_fail(-EINVAL, "streaming: an expert of over a million pieces");
    s->ring_x = calloc((size_t)s->n_ring + 1, sizeof *s->ring_x);
    s->ring_busy = calloc((size_t)s->n_ring + 1, sizeof *s->ring_busy);
    s->job = calloc((size_t)s->n_jobs, sizeof *s->job);
    s->free_jobs = malloc(sizeof *s->free_jobs * (size_t)s->n_jobs);
    s->bjobs = malloc(sizeof *s->bjobs * (size_t)s->n_jobs);
    s->job_of_slot = malloc(sizeof *s->job_of_slot * N);
    s->slot_x = calloc(N, sizeof *s->slot_x);
    s->req = malloc(sizeof *s->req * (size_t)s->max_pieces);
    s->todo = malloc(sizeof *s->todo * (E > N ? E : N));
    s->uni = malloc(sizeof *s->uni * E);
    s->gids = malloc(sizeof *s->gids * E);
    s->seen = malloc(E);
    if (!s->ring_x || !s->ring_busy || !s->job || !s->free_jobs || !s->bjobs || !s->job_of_slot || !s->slot_x ||
        !s->req || !s->todo || !s->uni || !s->gids || !s->seen)
        return qn_fail(-ENOMEM, "out of memory");
    for (int j = 0; j < s->n_jobs; j++) s->free_jobs[s->n_free++] = s->n_jobs - 1 - j;
    for (size_t i = 0; i < N; i++) s->job_of_slot[i] = -1;
    s->row_at = (uint64_t)s->n_ring * s->entry;
    const char *rm = getenv("QNEXT_STREAM_RING_MEM");
    int rc = -1;
    if (rm && !strcmp(rm, "bar") && s->n_ring) {   /* falls back to host memory when it cannot be had */
        rc = qn_buf_create(m->v, QN_MEM_DEVICE_MAPPED, s->row_at + L * E * 4, "expert staging (BAR)", &s->up);
        if (rc) QN_WARN("QNEXT_STREAM_RING_MEM=bar: %s; the staging ring stays in host memory", qn_errmsg());
        s->ring_bar = !rc;
    }
    if (rc && (rc = qn_buf_create(m->v, QN_MEM_UPLOAD, s->row_at + L * E * 4, "expert staging", &s->up))) return rc;
    s->stage = s->up->map;
    memset(s->stage, 0, (size_t)s->up->size);
    if ((rc = qn_timeline_create(m->v, "streaming compute", &s->tc))) return rc;
    for (int q = 0; !rc && q < s->n_txq; q++) rc = qn_timeline_create(m->v, "streaming copies", &s->tx[q]);
    for (int q = 0; !rc && q < s->n_txq; q++)   /* stream q on transfer queue q (mod the queues there are) */
        for (int i = 0; !rc && i < NXCMD; i++) rc = qn_cmd_create_xq(m->v, (uint32_t)q, &s->xcmd[q][i]);
    return rc;
}

/* Zero buffer b: in place on UMA, else in the open transfer batch (so the slot copies and every EXPERTS
 * segment, which waits for tx >= its slots' values >= this batch's, are ordered after it on the GPU). */
static int zero(struct qn_mst *s, qn_buf *b)
{
    if (s->direct) return qn_buf_fill(s->v, b, 0, b->size, 0);
    if (!s->xopen) {
        int rc = qn_cmd_begin(xcmd_open(s));
        if (rc) return rc;
        s->xopen = true;
        s->xbytes = 0;
    }
    return qn_cmd_fill(xcmd_open(s), b, 0, b->size, 0);
}

/* Slots start zeroed (bytes past the parts are never read, but stay defined); the pinned hot set (if the
 * cache has one) is read now. */
static int init_slots(struct qn_mst *s)
{
    const qn_model *m = s->m;
    int rc = 0;
    for (uint32_t i = 0; !rc && i < m->n_pools; i++) rc = zero(s, m->pools[i]);
    for (uint32_t i = 0; !rc && m->d_slot_bytes && i < m->d_n_pools; i++) rc = zero(s, m->dpools[i]);
    if (!rc && s->xopen && !(rc = batch_submit(s))) {
        for (uint32_t i = 0; i < m->n_slots; i++) s->slot_x[i] = s->x_val;
        if (!(rc = tx_wait(s, s->x_val, IO_TIMEOUT_NS))) x_seen(s, s->x_val);   /* at load: no stats */
        s->t.copy_busy_ns = 0;
    }
    int E = m->c.num_experts;
    for (;;) {
        int n = rc ? 0 : qn_exp_hot_fills(s->cache, s->todo, E);
        if (n <= 0) return rc;
        s->n_todo = n;
        if (!(rc = drive(s)) && s->err) rc = qn_fail(s->err, "loading the hot experts: %s", s->errmsg);
    }
}

/* The tuned set (QNEXT_STREAM_TUNED=1; docs/streaming.md): the pipeline knobs below that won the H100 A/B.
 * Each knob's own variable still overrides it; QNEXT_STREAM_TUNED=0 gives the previous pipeline. */
#define TUNED_DEFAULT 1        /* run 18d: 22.0/21.1/23.2 vs 21.7/20.9/22.8 tok/s at 4/2/8 GiB; discrete GPUs only, never on UMA (lavapipe, integrated) unless asked for */
#define TUNED_SPIN 0           /* run 18c: SPIN=2 17.5 vs 21.2 tok/s (a batch per piece, a core taken from the readers) */
#define TUNED_URGENT 1
#define TUNED_SKIP_DONE 1
#define TUNED_PF_DROP 1
#define TUNED_PF_SPLIT 0

/* The pipeline's knobs from the environment: read / copy granularity, copy streams, spinning, urgent misses,
 * split misses and guesses, skipped copy waits, dropped guesses. */
static void stream_env(struct qn_mst *s)
{
    bool tuned = ENV_MODE("QNEXT_STREAM_TUNED", TUNED_DEFAULT && !qn_vk_caps(s->v)->uma) == 1;
    s->piece = ENV_COUNT("QNEXT_STREAM_PIECE", PIECE_DEFAULT);
    s->dpiece = ENV_COUNT("QNEXT_STREAM_DPIECE", s->piece);
    s->batch_bytes = ENV_COUNT("QNEXT_STREAM_BATCH", BATCH_BYTES);
    uint64_t nq = ENV_COUNT("QNEXT_STREAM_TXQ", qn_vk_transfer_queues(s->v));   /* copy streams (tests: > queues) */
    s->n_txq = nq > QN_MAX_XQUEUES ? QN_MAX_XQUEUES : (int)nq;
    int spin = ENV_MODE("QNEXT_STREAM_SPIN", tuned ? TUNED_SPIN : 0);
    s->spin = spin == 1 || spin == 2;
    s->spin_io = spin == 2;
    s->urgent = ENV_MODE("QNEXT_STREAM_URGENT", tuned ? TUNED_URGENT : 0) == 1;
    s->split = ENV_MODE("QNEXT_STREAM_SPLIT", 0);
    s->pf_split = ENV_MODE("QNEXT_STREAM_PF_SPLIT", tuned ? TUNED_PF_SPLIT : 0);
    s->skip_done = ENV_MODE("QNEXT_STREAM_SKIP_DONE", tuned ? TUNED_SKIP_DONE : 0) == 1;
    s->pf_drop = ENV_MODE("QNEXT_STREAM_PF_DROP", tuned ? TUNED_PF_DROP : 0) == 1;
    s->tuned = tuned;
}

int qn_mst_open(qn_model *m, qn_es *es, const struct qn_model_params *p)
{
    struct qn_mst *s = calloc(1, sizeof *s);
    if (!s) {
        qn_es_free(&es);
        return qn_fail(-ENOMEM, "out of memory");
    }
    m->stream = s;
    s->m = m;
    s->v = m->v;
    s->es = es;
    size_t L = (size_t)m->c.num_layers, E = (size_t)m->c.num_experts;
    if ((size_t)qn_es_n_layers(es) != L || (size_t)qn_es_n_experts(es) != E ||
        qn_es_slot_bytes(es, QN_ES_POOLS) != m->slot_bytes || qn_es_slot_bytes(es, QN_ES_DPOOLS) != m->d_slot_bytes)
        return qn_fail(-EINVAL, "streaming: the expert store does not match the model's slots");
    s->entry = qn_es_entry_bytes(es);
    s->n_prefetch = p->prefetch < 0 ? 0 : p->prefetch > QN_EXP_MAX_K ? QN_EXP_MAX_K : p->prefetch;
    s->direct = slots_mapped(m);
    stream_env(s);
    s->bar = s->direct && !qn_vk_caps(m->v)->uma;
    const char *hy = getenv("QNEXT_STREAM_HYBRID");
    /* discrete GPUs (BAR slots): hybrid by default (H100 run 14: 22.8 tok/s vs 17.1 direct, 14.8 staged) */
    s->hybrid = s->direct && (hy && *hy ? !strcmp(hy, "1") : s->bar);
    int rc = alloc_pipeline(s);
    struct qn_io_params ip;
    qn_io_default_params(&ip);
    ip.mode = (enum qn_io_mode)p->io_mode;
    ip.queue_depth = ip.threads * 4 > 64 ? ip.threads * 4 : 64;   /* keeps every reader busy between polls */
    ip.urgent_reserve = s->urgent ? ENV_MODE("QNEXT_IO_RESERVE", 0) : 0;   /* readers kept for demand misses */
    if (!rc) rc = qn_io_open(&s->io, &ip);
    if (!rc) rc = add_files(s);
    if (rc) return rc;
    /* O_DIRECT into a BAR mapping fails (the kernel cannot pin PFN-mapped pages): direct files read through
     * the engine's bounce buffers there (QNEXT_STREAM_BOUNCE=1 forces it: tests) */
    const char *bo = getenv("QNEXT_STREAM_BOUNCE");
    for (int i = 0; s->direct && i < qn_es_n_files(es); i++)
        if (qn_io_is_direct(s->io, s->iofile[i]) && (s->bar || (bo && !strcmp(bo, "1")))) s->bounce = true;
    for (int i = 0; s->ring_bar && i < qn_es_n_files(es); i++)   /* a BAR ring: every direct read bounces */
        if (qn_io_is_direct(s->io, s->iofile[i])) s->bounce = true;
    struct qn_eu_cache_opts o;   /* --expert-policy, --expert-hot N --expert-hot-from FILE (expert_usage.h) */
    if ((rc = qn_eu_cache_opts(p, (int)L, (int)E, &o))) return rc;
    struct qn_exp_params ep = { .n_layers = (int)L, .n_experts = (int)E, .top_k = m->c.top_k,
                                .n_prefetch = s->n_prefetch, .expert_bytes = qn_es_max_expert_bytes(es),
                                .n_slots = (int)m->n_slots, .policy = o.policy, .hot = o.hot, .n_hot = o.n_hot };
    s->n_hot = o.n_hot;
    rc = qn_exp_create(&s->cache, &ep);
    free(o.hot);
    if (!rc && p->expert_trace && !(s->trace = strdup(p->expert_trace))) rc = qn_fail(-ENOMEM, "out of memory");
    if (!rc && p->expert_trace) rc = qn_eu_create(&s->usage, (int)L, (int)E);
    if (rc || (rc = init_slots(s))) return rc;
    if (o.n_hot || o.policy)
        QN_INFO("expert cache: policy %s, %d pinned experts (the most used of %s)", o.policy ? o.policy->name : "lru",
                o.n_hot, o.n_hot ? p->expert_hot_from : "-");
    QN_INFO("streaming experts: %u slots of %.2f MiB (%.1f%% of %lld experts), io %s (%d threads), prefetch %d, %s",
            m->n_slots, (double)qn_mst_slot_bytes(m) / 1048576.0, 100.0 * m->n_slots / (double)(L * E),
            (long long)(L * E), qn_io_engine_name(s->io), ip.threads, s->n_prefetch,
            s->direct ? (s->bar ? s->bounce ? "reads into the BAR-mapped slots (O_DIRECT through bounce buffers)"
                                            : "reads straight into the BAR-mapped slots"
                                 : "reads straight into the mapped slots")
            : qn_vk_transfer_queue(m->v)
            ? "staging ring, copies on the transfer queue" : "staging ring, copies on the compute queue");
    return 0;
}

void qn_mst_close(struct qn_mst **ps)
{
    struct qn_mst *s = *ps;
    if (!s) return;
    qn_io_close(&s->io);   /* no read lands in `up` or a slot after this */
    if (s->trace && qn_eu_write(s->usage, s->trace, "--expert-trace"))
        QN_ERROR("--expert-trace: %s", qn_errmsg());
    else if (s->trace)
        QN_INFO("--expert-trace: expert usage written to %s", s->trace);
    qn_eu_free(&s->usage);
    free(s->trace);
    if (s->xopen) qn_cmd_end(xcmd_open(s));
    if (s->tc) qn_timeline_wait(s->tc, s->c_val, IO_TIMEOUT_NS);
    for (int q = 0; q < s->n_txq; q++) {
        uint64_t last = xq_last(s, q, s->x_val);
        if (s->tx[q] && last) qn_timeline_wait(s->tx[q], last, IO_TIMEOUT_NS);
    }
    for (int q = 0; q < s->n_txq; q++)
        for (int i = 0; i < NXCMD; i++) qn_cmd_destroy(&s->xcmd[q][i]);
    qn_timeline_destroy(&s->tc);
    for (int q = 0; q < s->n_txq; q++) qn_timeline_destroy(&s->tx[q]);
    qn_buf_destroy(s->v, &s->up);
    qn_exp_destroy(&s->cache);
    qn_es_free(&s->es);
    void *arrays[] = { s->iofile, s->ring_x, s->ring_busy, s->job, s->free_jobs, s->bjobs, s->job_of_slot,
                       s->slot_x, s->req, s->todo, s->uni, s->gids, s->seen, s->gtop };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
    free(s);
    *ps = NULL;
}

uint32_t qn_mst_max_tokens(const qn_model *m)
{
    /* prefetched slots pinned for this layer but not among its ids hold up to n_prefetch slots; hot ones n_hot;
     * a layer's union over the call is at most min(T * K, E): with E free slots any call fits */
    const struct qn_mst *s = m->stream;
    uint32_t K = (uint32_t)m->c.top_k, free = m->n_slots - (uint32_t)s->n_prefetch - (uint32_t)s->n_hot;
    if (free >= (uint32_t)m->c.num_experts) return UINT32_MAX;
    uint32_t n = K ? free / K : 1;
    return n ? n : 1;
}

bool qn_mst_wants_guess(const qn_model *m) { return m->stream && m->stream->n_prefetch > 0; }
bool qn_mst_drops_unused(const qn_model *m) { return m->stream && m->stream->pf_drop; }

int qn_mst_guess_width(const qn_model *m)
{
    const struct qn_mst *s = m->stream;
    return s && s->n_prefetch > m->c.top_k ? s->n_prefetch : 0;
}


/* ---- statistics ---------------------------------------------------------------------------------------- */

const qn_exp_cache *qn_mst_cache(const qn_model *m) { return m->stream ? m->stream->cache : NULL; }

int qn_mst_stats(const qn_model *m, struct qn_exp_stats *es, struct qn_io_stats *is)
{
    if (!m->stream) return qn_fail(-EINVAL, "the model is not streaming its experts");
    qn_exp_get_stats(m->stream->cache, -1, es);
    qn_io_get_stats(m->stream->io, is);
    return 0;
}

const char *qn_mst_path(const qn_model *m)
{
    const struct qn_mst *s = m->stream;
    if (!s) return "resident";
    if (!s->direct) return "staged";
    if (s->hybrid) return s->bar ? "bar+hybrid" : "uma+hybrid";
    return !s->bar ? "uma" : s->bounce ? "bar+bounce" : "bar";
}

int qn_mst_times(const qn_model *m, struct qn_mst_times *t)
{
    const struct qn_mst *s = m->stream;
    if (!s) return qn_fail(-EINVAL, "the model is not streaming its experts");
    *t = s->t;
    t->route_ns = s->route_ns;
    t->copy_bytes = s->copy_bytes;
    t->batches = s->batches;
    return 0;
}

void qn_mst_note_gpu(const qn_model *m, double route_ms, double experts_ms, double other_ms, double in_wait_ms)
{
    struct qn_mst *s = m->stream;
    if (!s) return;
    s->t.gpu_calls++;
    s->t.gpu_route_ms += route_ms == route_ms ? route_ms : 0;
    s->t.gpu_experts_ms += experts_ms == experts_ms ? experts_ms : 0;
    s->t.gpu_other_ms += other_ms == other_ms ? other_ms : 0;
    s->t.gpu_wait_ms += in_wait_ms == in_wait_ms ? in_wait_ms : 0;
}

/* The route wait split and the copy speed, per token. */
static void print_times(const struct qn_mst *s, double tk, FILE *out)
{
    const struct qn_mst_times *t = &s->t;
    double gpu = t->gpu_wait_ms, route = (double)s->route_ns / 1e6, tail = (double)t->tx_tail_ns / 1e6;
    if (t->gpu_calls)
        fprintf(out, "  GPU busy %.3f ms per token (timestamps: route segments %.3f, experts %.3f, embed + head %.3f)\n",
                (t->gpu_route_ms + t->gpu_experts_ms + t->gpu_other_ms) / tk, t->gpu_route_ms / tk,
                t->gpu_experts_ms / tk, t->gpu_other_ms / tk);
    fprintf(out, "  route wait %.3f ms per token = copies after the experts segment's submit (tx tail) %.3f + GPU "
            "meanwhile %s%.3f + host wake-up / queue latency (rest) %.3f%s\n", route / tk, tail / tk,
            t->gpu_calls ? "" : "(no timestamps) ", gpu / tk, (route - tail - gpu) / tk, s->spin ? " (spinning)" : "");
    fprintf(out, "  host time in vkQueueSubmit %.3f ms per token (%.1f submits per token)\n",
            (double)t->submit_ns / 1e6 / tk, (double)t->submits / tk);
    if (s->batches)
        fprintf(out, "  copies %.2f MiB per token, outstanding %.3f ms per token: %.2f GB/s while outstanding (%d copy "
                "stream%s on %u transfer queue%s)\n", (double)s->copy_bytes / 1048576.0 / tk,
                (double)t->copy_busy_ns / 1e6 / tk, t->copy_busy_ns ? (double)s->copy_bytes / (double)t->copy_busy_ns : 0.0,
                s->n_txq, s->n_txq > 1 ? "s" : "", qn_vk_transfer_queues(s->m->v), qn_vk_transfer_queues(s->m->v) > 1 ? "s" : "");
}

void qn_mst_print_stats(const qn_model *m, uint64_t tokens, FILE *out)
{
    const struct qn_mst *s = m->stream;
    if (!s) {
        char line[400];
        qn_eh_describe(m, line, sizeof line);
        fprintf(out, "qnext stats: every routed expert resident (%u slots), no streaming%s%s\n",
                m->host_tier ? (uint32_t)(m->c.num_layers * m->c.num_experts) : m->n_slots,
                *line ? "; " : "", line);
        qn_eh_print_stats(m, out);   /* the host tier's VRAM cache, if any */
        return;
    }
    struct qn_exp_stats es;
    struct qn_io_stats is;
    qn_exp_get_stats(s->cache, -1, &es);
    qn_io_get_stats(s->io, &is);
    fprintf(out, "qnext stats: streaming %u slots of %.2f MiB, io %s, ", m->n_slots,
            (double)qn_mst_slot_bytes(m) / 1048576.0, qn_io_engine_name(s->io));
    if (s->direct)
        fprintf(out, "reads straight into the mapped slots (%s%s%s)\n", s->bar ? "BAR" : "UMA",
                s->bounce ? "; O_DIRECT through bounce buffers, copied by the host" : "",
                s->hybrid ? "; hybrid: prefetches through a staging ring and transfer-queue copies" : "");
    else {
        char why[160];
        staged_why(m, why, sizeof why);
        fprintf(out, "staging ring of %d entries%s, copies on the %s queue (staged: %s)\n", s->n_ring,
                s->ring_bar ? " in device-local host-visible memory" : "",
                qn_vk_transfer_queue(m->v) ? "transfer" : "compute", why);
    }
    fprintf(out, "  pipeline: tuned %d, spin %d, urgent misses %d, skip seen copies %d, drop unused guesses %d, "
            "every Nth guess direct %d, every Nth miss staged %d, %d copy stream(s), pieces %llu KiB (misses %llu)\n",
            s->tuned, s->spin_io ? 2 : s->spin, s->urgent, s->skip_done, s->pf_drop, s->pf_split, s->split, s->n_txq,
            (unsigned long long)(s->piece >> 10), (unsigned long long)(s->dpiece >> 10));
    fprintf(out, "  expert hit rate %.4f (%llu hits, %llu misses, %llu evictions)\n", qn_exp_hit_rate(&es),
            (unsigned long long)es.hits, (unsigned long long)es.misses, (unsigned long long)es.evictions);
    fprintf(out, "  read %.2f MiB in %llu requests, %.3f GB/s while busy\n", (double)is.bytes / 1048576.0,
            (unsigned long long)is.requests, qn_io_stats_gbps(&is));
    fprintf(out, "  stall (reads + slot uploads) %.3f ms per token over %llu tokens\n",
            tokens ? (double)es.stall_ns / 1e6 / (double)tokens : 0.0, (unsigned long long)tokens);
    double tk = tokens ? (double)tokens : 1.0;
    fprintf(out, "  waiting for routes (GPU, prefetch reads meanwhile) %.3f ms per token; %.1f copy batches of %.2f MiB "
            "per token\n", (double)s->route_ns / 1e6 / tk, (double)s->batches / tk,
            s->batches ? (double)s->copy_bytes / 1048576.0 / (double)s->batches : 0.0);
    print_times(s, tk, out);
    if (es.pf_guessed)
        fprintf(out, "  prefetch precision %.3f recall %.3f (%llu reads, %llu used, %llu evicted unused)\n",
                qn_exp_precision(&es), qn_exp_recall(&es), (unsigned long long)es.pf_fills,
                (unsigned long long)es.pf_fills_used, (unsigned long long)es.pf_fills_wasted);
}
