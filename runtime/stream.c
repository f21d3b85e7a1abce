/* stream.c — the expert IO engine: requests split into backend reads, O_DIRECT alignment and bounce
 * buffers, continuation of short reads, retries, errors that name the file and offset, statistics;
 * backends: io_uring, a pread thread pool, and a fault-injection wrapper around either.
 * The protocol around it (staging ring, timeline values, slots) is in docs/streaming.md. */
#include "stream.h"

#include "qn_err.h"
#include "qn_log.h"
#include "qn_rng.h"
#include "qn_time.h"

#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IO_MAX_RETRIES 1000
#define IO_FALLBACK_ALIGN 4096u
#define IO_CLOSE_TIMEOUT_NS (60ll * 1000000000ll)

static uint64_t align_down(uint64_t x, uint64_t a) { return x - x % a; }
static uint64_t align_up(uint64_t x, uint64_t a) { return align_down(x + a - 1, a); }

/* ------------------------------------------------------------------------------------------------ */
/* Internal types: a request (job) becomes one or more backend reads (ops).                          */

struct io_job;

struct io_op {
    /* what the backend sees: one read(2)-like call; res = bytes or -errno */
    int fd;
    uint32_t len;
    uint64_t off;
    uint8_t *buf;
    int res;
    uint64_t ready_ns;        /* fault layer: completion held until then */
    struct io_op *next;       /* list link (backlog, pool queues, fault hold list) */
    /* what the front end keeps */
    struct io_job *job;
    uint64_t start, end;      /* file range [start, end) this op covers; base[0] holds offset `start` */
    uint64_t want0, want1;    /* the requested bytes inside it (the rest is alignment widening) */
    uint8_t *base;            /* caller memory or a bounce buffer (NULL until one is taken) */
    uint32_t align;           /* continuations restart at start + a multiple of this (1 for buffered) */
    uint32_t retries;
    bool bounce;
    atomic_int dropped;       /* qn_io_drop: a pool worker that has not started it skips the read */
};

struct io_job {
    struct qn_io_req req;
    int ops_left, n_ops, status;
    uint32_t reads;
    uint64_t t0, lat, err_at;
    char msg[240];
    struct io_job *next;      /* done list */
    struct io_job *aprev, *anext;   /* active list (submitted, not complete) */
    struct io_op ops[];
};

struct io_backend {
    const char *name;
    int (*submit)(struct io_backend *be, struct io_op **ops, int n);
    /* Up to max finished ops into out; blocks until min are available or timeout_ns (<0: forever). */
    int (*reap)(struct io_backend *be, struct io_op **out, int max, int min, int64_t timeout_ns);
    void (*destroy)(struct io_backend *be);
};

struct io_file {
    char *path;
    int fd;
    bool direct;
    uint32_t off_align, mem_align;
    uint64_t size;
};

struct qn_io {
    struct qn_io_params p;
    struct qn_io_faults faults;
    bool has_faults, direct, resolved, cancelling;
    struct io_backend *be;
    char name[32];
    struct io_file *files;
    int n_files, cap_files;
    struct io_op *bl_head, *bl_tail;     /* backlog: ops not yet issued */
    struct io_op *bl_urg;                /* the last QN_IO_URGENT op at the backlog's front (NULL: none) */
    struct io_op **batch;                /* queue_depth scratch */
    int inflight;                        /* ops inside the backend */
    int active;                          /* jobs not yet complete */
    int pending;                         /* jobs not yet returned by qn_io_wait */
    struct io_job *done_head, *done_tail;
    struct io_job *act_head;             /* jobs not yet complete (qn_io_drop) */
    uint8_t **bounce_free;               /* free bounce buffers (chunk_bytes each) */
    int n_bounce_free, n_bounce;
    uint64_t busy_t0;
    struct qn_io_stats st;
};

/* ------------------------------------------------------------------------------------------------ */
/* Modes and fault specs.                                                                            */

int qn_io_mode_parse(const char *s, enum qn_io_mode *out)
{
    if (!s || !strcmp(s, "auto")) *out = QN_IO_AUTO;
    else if (!strcmp(s, "direct")) *out = QN_IO_DIRECT;
    else if (!strcmp(s, "buffered")) *out = QN_IO_BUFFERED;
    else return qn_fail(-EINVAL, "--io '%s': expected direct, buffered or auto", s);
    return 0;
}

const char *qn_io_mode_name(enum qn_io_mode m)
{
    return m == QN_IO_DIRECT ? "direct" : m == QN_IO_BUFFERED ? "buffered" : "auto";
}

static int fault_kv(struct qn_io_faults *f, const char *key, const char *val)
{
    char *end;
    double d = strtod(val, &end);
    if (end == val || *end || d < 0) return qn_fail(-EINVAL, "QNEXT_IO_FAULTS: bad value '%s' for '%s'", val, key);
    if (!strcmp(key, "delay_us")) f->delay_us = (uint32_t)d;
    else if (!strcmp(key, "jitter_us")) f->jitter_us = (uint32_t)d;
    else if (!strcmp(key, "short")) f->short_p = d;
    else if (!strcmp(key, "eagain")) f->eagain_p = d;
    else if (!strcmp(key, "eio_at")) f->eio_at = (uint64_t)d;
    else if (!strcmp(key, "eio_every")) f->eio_every = (uint64_t)d;
    else if (!strcmp(key, "seed")) f->seed = (uint64_t)d;
    else return qn_fail(-EINVAL, "QNEXT_IO_FAULTS: unknown key '%s' (delay_us, jitter_us, short, eagain, "
                        "eio_at, eio_every, seed)", key);
    if ((f->short_p > 1 || f->eagain_p > 1))
        return qn_fail(-EINVAL, "QNEXT_IO_FAULTS: probability '%s=%s' is above 1", key, val);
    return 0;
}

int qn_io_faults_parse(const char *spec, struct qn_io_faults *out)
{
    memset(out, 0, sizeof *out);
    out->seed = 1;
    if (!spec) return 0;
    char buf[512];
    if (strlen(spec) >= sizeof buf) return qn_fail(-EINVAL, "QNEXT_IO_FAULTS: spec longer than %zu", sizeof buf);
    strcpy(buf, spec);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return qn_fail(-EINVAL, "QNEXT_IO_FAULTS: '%s' is not key=value", tok);
        *eq = 0;
        int rc = fault_kv(out, tok, eq + 1);
        if (rc < 0) return rc;
    }
    return 0;
}

bool qn_io_faults_active(const struct qn_io_faults *f)
{
    return f && (f->delay_us || f->jitter_us || f->short_p > 0 || f->eagain_p > 0 || f->eio_at || f->eio_every);
}

/* ------------------------------------------------------------------------------------------------ */
/* Backend: io_uring.                                                                                */

struct uring_be {
    struct io_backend be;
    struct io_uring ring;
};

static int uring_submit(struct io_backend *be, struct io_op **ops, int n)
{
    struct uring_be *u = (struct uring_be *)be;
    for (int i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
        if (!sqe) return qn_fail(-EBUSY, "io_uring: submission queue full (%d reads queued)", n);
        io_uring_prep_read(sqe, ops[i]->fd, ops[i]->buf, ops[i]->len, ops[i]->off);
        io_uring_sqe_set_data(sqe, ops[i]);
    }
    for (int tries = 0; io_uring_sq_ready(&u->ring) > 0;) {
        int rc = io_uring_submit(&u->ring);
        if (rc >= 0) continue;
        if ((rc == -EINTR || rc == -EAGAIN || rc == -EBUSY) && ++tries < IO_MAX_RETRIES) {
            if (rc != -EINTR) usleep(50);
            continue;
        }
        /* The SQEs stay in the ring; they would be issued by a later submit, so the engine is broken. */
        return qn_fail(rc, "io_uring_submit failed: %s", strerror(-rc));
    }
    return 0;
}

static int uring_reap(struct io_backend *be, struct io_op **out, int max, int min, int64_t timeout_ns)
{
    struct uring_be *u = (struct uring_be *)be;
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : qn_now_ns() + (uint64_t)timeout_ns;
    int got = 0;
    for (;;) {
        struct io_uring_cqe *cqes[64];
        unsigned want = (unsigned)(max - got) < 64 ? (unsigned)(max - got) : 64;
        unsigned k = io_uring_peek_batch_cqe(&u->ring, cqes, want);
        for (unsigned i = 0; i < k; i++) {
            struct io_op *op = io_uring_cqe_get_data(cqes[i]);
            op->res = cqes[i]->res;
            out[got++] = op;
        }
        io_uring_cq_advance(&u->ring, k);
        if (got >= min || got == max) return got;
        struct io_uring_cqe *cqe;
        int rc;
        if (timeout_ns < 0) {
            rc = io_uring_wait_cqe(&u->ring, &cqe);
        } else {
            uint64_t t = qn_now_ns();
            if (t >= deadline) return got;
            struct __kernel_timespec ts = { .tv_sec = (long long)((deadline - t) / 1000000000ull),
                                            .tv_nsec = (long long)((deadline - t) % 1000000000ull) };
            rc = io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
        }
        if (rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc >= 0) continue;
        return qn_fail(rc, "io_uring wait failed: %s", strerror(-rc));
    }
}

static void uring_destroy(struct io_backend *be)
{
    struct uring_be *u = (struct uring_be *)be;
    io_uring_queue_exit(&u->ring);
    free(u);
}

static int uring_create(int depth, struct io_backend **out)
{
    struct uring_be *u = calloc(1, sizeof *u);
    if (!u) return qn_fail(-ENOMEM, "io_uring: out of memory");
    int rc = io_uring_queue_init((unsigned)depth, &u->ring, 0);
    if (rc < 0) {
        free(u);
        return qn_fail(rc, "io_uring_queue_init(%d) failed: %s", depth, strerror(-rc));
    }
    u->be = (struct io_backend){ "io_uring", uring_submit, uring_reap, uring_destroy };
    *out = &u->be;
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Backend: pread thread pool.                                                                       */

struct pool_be {
    struct io_backend be;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    struct io_op *q_head, *q_tail, *q_urg, *d_head, *d_tail;
    bool stop;
    int n_threads;
    int plain_max, n_plain;   /* at most plain_max threads read plain (not urgent) ops at once */
    pthread_t th[];
};

static void list_push(struct io_op **head, struct io_op **tail, struct io_op *op)
{
    op->next = NULL;
    if (*tail) (*tail)->next = op;
    else *head = op;
    *tail = op;
}

/* QN_IO_URGENT ops go after the urgent ops already at the list's front (*urg: the last of them, NULL: none),
 * before every other op. */
static bool op_urgent(const struct io_op *op) { return op->job && (op->job->req.flags & QN_IO_URGENT); }
static void list_push_urgent(struct io_op **head, struct io_op **tail, struct io_op **urg, struct io_op *op)
{
    if (*urg) {
        op->next = (*urg)->next;
        (*urg)->next = op;
    } else {
        op->next = *head;
        *head = op;
    }
    if (!op->next) *tail = op;
    *urg = op;
}

static struct io_op *list_pop(struct io_op **head, struct io_op **tail)
{
    struct io_op *op = *head;
    if (op) {
        *head = op->next;
        if (!*head) *tail = NULL;
        op->next = NULL;
    }
    return op;
}

static void *pool_worker(void *arg)
{
    struct pool_be *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        /* urgent ops (at the queue's front) any time; plain ones while fewer than plain_max threads read them */
        while (!p->stop && !p->q_urg && !(p->q_head && p->n_plain < p->plain_max))
            pthread_cond_wait(&p->work_cv, &p->mu);
        bool plain = !p->q_urg;
        struct io_op *op = list_pop(&p->q_head, &p->q_tail);
        if (!op) break;                                   /* stop requested and queue empty */
        if (op == p->q_urg) p->q_urg = NULL;
        if (plain) p->n_plain++;
        pthread_mutex_unlock(&p->mu);
        if (atomic_load_explicit(&op->dropped, memory_order_relaxed)) {
            op->res = -ECANCELED;
        } else {
            ssize_t r = pread(op->fd, op->buf, op->len, (off_t)op->off);
            op->res = r < 0 ? -errno : (int)r;
        }
        pthread_mutex_lock(&p->mu);
        if (plain && p->n_plain-- >= p->plain_max) pthread_cond_signal(&p->work_cv);   /* a plain slot is free */
        list_push(&p->d_head, &p->d_tail, op);
        pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int pool_submit(struct io_backend *be, struct io_op **ops, int n)
{
    struct pool_be *p = (struct pool_be *)be;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < n; i++)
        if (op_urgent(ops[i])) list_push_urgent(&p->q_head, &p->q_tail, &p->q_urg, ops[i]);
        else list_push(&p->q_head, &p->q_tail, ops[i]);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static int pool_reap(struct io_backend *be, struct io_op **out, int max, int min, int64_t timeout_ns)
{
    struct pool_be *p = (struct pool_be *)be;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    if (timeout_ns > 0) {
        uint64_t ns = (uint64_t)dl.tv_nsec + (uint64_t)timeout_ns;
        dl.tv_sec += (time_t)(ns / 1000000000ull);
        dl.tv_nsec = (long)(ns % 1000000000ull);
    }
    int got = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (got < max && p->d_head) out[got++] = list_pop(&p->d_head, &p->d_tail);
        if (got >= min || got == max || timeout_ns == 0) break;
        int rc = timeout_ns < 0 ? pthread_cond_wait(&p->done_cv, &p->mu)
                                : pthread_cond_timedwait(&p->done_cv, &p->mu, &dl);
        if (rc == ETIMEDOUT) {
            while (got < max && p->d_head) out[got++] = list_pop(&p->d_head, &p->d_tail);
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return got;
}

static void pool_destroy(struct io_backend *be)
{
    struct pool_be *p = (struct pool_be *)be;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static int pool_create(int threads, int reserve, struct io_backend **out)
{
    struct pool_be *p = calloc(1, sizeof *p + (size_t)threads * sizeof(pthread_t));
    if (!p) return qn_fail(-ENOMEM, "io pool: out of memory");
    p->plain_max = threads - (reserve > 0 ? reserve : 0);
    p->plain_max = p->plain_max < 1 ? 1 : p->plain_max;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, &ca);
    pthread_cond_init(&p->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    p->be = (struct io_backend){ "pool", pool_submit, pool_reap, pool_destroy };
    for (int i = 0; i < threads; i++) {
        int rc = pthread_create(&p->th[i], NULL, pool_worker, p);
        if (rc) {
            p->n_threads = i;
            pool_destroy(&p->be);
            return qn_fail(-rc, "io pool: pthread_create failed: %s", strerror(rc));
        }
        p->n_threads = i + 1;
    }
    *out = &p->be;
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Backend wrapper: fault injection. Decides each read's fate at issue time; holds completions until  */
/* their ready time so delays and reordering happen without blocking the submitter.                   */

struct fault_be {
    struct io_backend be;
    struct io_backend *inner;
    struct qn_io_faults f;
    qn_rng rng;
    uint64_t issued;
    int in_inner;
    struct io_op *held, **fwd, **tmp;
    int cap;
};

static void fault_shorten(struct fault_be *fb, struct io_op *op)
{
    uint32_t a = op->align > 1 ? op->align : 1;
    uint32_t blocks = op->len / a;
    if (op->len % a || blocks < 2) return;             /* cannot cut an aligned read shorter */
    op->len = (uint32_t)(1 + qn_rng_u64(&fb->rng) % (blocks - 1)) * a;
}

static int fault_submit(struct io_backend *be, struct io_op **ops, int n)
{
    struct fault_be *fb = (struct fault_be *)be;
    int m = 0;
    uint64_t t = qn_now_ns();
    for (int i = 0; i < n; i++) {
        struct io_op *op = ops[i];
        uint64_t k = ++fb->issued;
        op->ready_ns = t + 1000ull * fb->f.delay_us;
        if (fb->f.jitter_us) op->ready_ns += qn_rng_u64(&fb->rng) % (1000ull * fb->f.jitter_us + 1);
        if (k == fb->f.eio_at || (fb->f.eio_every && k % fb->f.eio_every == 0)) op->res = -EIO;
        else if (fb->f.eagain_p > 0 && qn_rng_uniform(&fb->rng) < fb->f.eagain_p) op->res = -EAGAIN;
        else {
            if (fb->f.short_p > 0 && qn_rng_uniform(&fb->rng) < fb->f.short_p) fault_shorten(fb, op);
            fb->fwd[m++] = op;
            continue;
        }
        op->next = fb->held;
        fb->held = op;
    }
    int rc = fb->inner->submit(fb->inner, fb->fwd, m);
    if (rc == 0) fb->in_inner += m;
    return rc;
}

static int fault_pull(struct fault_be *fb, int min, int64_t timeout_ns)
{
    int k = fb->inner->reap(fb->inner, fb->tmp, fb->cap, min, timeout_ns);
    if (k < 0) return k;
    fb->in_inner -= k;
    for (int i = 0; i < k; i++) {
        fb->tmp[i]->next = fb->held;
        fb->held = fb->tmp[i];
    }
    return 0;
}

static int fault_reap(struct io_backend *be, struct io_op **out, int max, int min, int64_t timeout_ns)
{
    struct fault_be *fb = (struct fault_be *)be;
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : qn_now_ns() + (uint64_t)timeout_ns;
    int got = 0;
    for (;;) {
        int rc = fb->in_inner ? fault_pull(fb, 0, 0) : 0;
        if (rc < 0) return rc;
        uint64_t t = qn_now_ns(), next = UINT64_MAX;
        for (struct io_op **pp = &fb->held; *pp && got < max;) {
            struct io_op *op = *pp;
            if (op->ready_ns <= t) {
                *pp = op->next;
                out[got++] = op;
            } else {
                if (op->ready_ns < next) next = op->ready_ns;
                pp = &op->next;
            }
        }
        if (got >= min || got == max || t >= deadline) return got;
        uint64_t until = next < deadline ? next : deadline;
        if (fb->in_inner) {
            int64_t wait = until == UINT64_MAX ? -1 : (int64_t)(until - t);
            if ((rc = fault_pull(fb, 1, wait)) < 0) return rc;
        } else if (until == UINT64_MAX) {
            return got;                                   /* nothing anywhere: caller bug, do not hang */
        } else {
            struct timespec ts = { (time_t)((until - t) / 1000000000ull), (long)((until - t) % 1000000000ull) };
            nanosleep(&ts, NULL);
        }
    }
}

static void fault_destroy(struct io_backend *be)
{
    struct fault_be *fb = (struct fault_be *)be;
    fb->inner->destroy(fb->inner);
    free(fb->fwd);
    free(fb->tmp);
    free(fb);
}

static int fault_wrap(struct io_backend *inner, const struct qn_io_faults *f, int depth, struct io_backend **out)
{
    struct fault_be *fb = calloc(1, sizeof *fb);
    if (fb) {
        fb->fwd = calloc((size_t)depth, sizeof *fb->fwd);
        fb->tmp = calloc((size_t)depth, sizeof *fb->tmp);
    }
    if (!fb || !fb->fwd || !fb->tmp) {
        if (fb) { free(fb->fwd); free(fb->tmp); free(fb); }
        inner->destroy(inner);
        return qn_fail(-ENOMEM, "io faults: out of memory");
    }
    fb->inner = inner;
    fb->f = *f;
    fb->cap = depth;
    qn_rng_seed(&fb->rng, f->seed);
    fb->be = (struct io_backend){ "faults", fault_submit, fault_reap, fault_destroy };
    *out = &fb->be;
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Engine setup and files.                                                                           */

int qn_io_default_threads(void)
{
    const char *e = getenv("QNEXT_IO_THREADS");
    char *end;
    long v = e && *e ? strtol(e, &end, 10) : 0;
    if (e && *e && !*end && v >= 1 && v <= 256) return (int)v;
    long n = sysconf(_SC_NPROCESSORS_ONLN);   /* page-cache copies scale with threads up to about the cores */
    return n < 4 ? 4 : n > 32 ? 32 : (int)n;
}

void qn_io_default_params(struct qn_io_params *p)
{
    memset(p, 0, sizeof *p);
    p->mode = QN_IO_AUTO;
    p->engine = QN_IO_ENGINE_AUTO;
    p->queue_depth = 16;
    p->threads = qn_io_default_threads();
    p->chunk_bytes = 1u << 20;
}

int qn_io_open(qn_io **out, const struct qn_io_params *params)
{
    struct qn_io_params p;
    if (params) p = *params;
    else qn_io_default_params(&p);
    *out = NULL;
    if (p.queue_depth < 1 || p.queue_depth > 4096)
        return qn_fail(-EINVAL, "io: queue depth %d outside 1..4096", p.queue_depth);
    if (p.threads < 1 || p.threads > 256) return qn_fail(-EINVAL, "io: %d threads outside 1..256", p.threads);
    if (p.chunk_bytes < 4096 || p.chunk_bytes > (1u << 30))
        return qn_fail(-EINVAL, "io: chunk of %u bytes outside 4 KiB..1 GiB", p.chunk_bytes);
    p.chunk_bytes = (uint32_t)align_up(p.chunk_bytes, 4096);
    qn_io *io = calloc(1, sizeof *io);
    if (!io || !(io->batch = calloc((size_t)p.queue_depth, sizeof *io->batch)) ||
        !(io->bounce_free = calloc((size_t)p.queue_depth, sizeof *io->bounce_free))) {
        if (io) free(io->batch);
        free(io);
        return qn_fail(-ENOMEM, "io: out of memory");
    }
    io->p = p;
    int rc = 0;
    if (p.faults) io->faults = *p.faults;
    else if (!p.no_env_faults) rc = qn_io_faults_parse(getenv("QNEXT_IO_FAULTS"), &io->faults);
    if (rc < 0) {
        free(io->bounce_free);
        free(io->batch);
        free(io);
        return rc;
    }
    io->has_faults = qn_io_faults_active(&io->faults);
    *out = io;
    return 0;
}

/* Alignment that O_DIRECT needs for this fd (statx DIOALIGN where the kernel reports it). */
static void direct_align(int fd, uint32_t *off_align, uint32_t *mem_align)
{
    struct statx sx;
    *off_align = *mem_align = IO_FALLBACK_ALIGN;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN) &&
        sx.stx_dio_offset_align && sx.stx_dio_mem_align) {
        *off_align = sx.stx_dio_offset_align;
        *mem_align = sx.stx_dio_mem_align;
    }
}

/* Open with O_DIRECT and prove it with real reads. Returns 0 and the fd when direct IO works, sets
 * *enforced when a misaligned read is refused (the filesystem really bypasses the page cache). */
static int probe_direct(struct io_file *f, bool *enforced)
{
    int fd = open(f->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) return -errno;
    direct_align(fd, &f->off_align, &f->mem_align);
    uint32_t a = f->off_align > f->mem_align ? f->off_align : f->mem_align;
    if (a < IO_FALLBACK_ALIGN) a = IO_FALLBACK_ALIGN;
    uint8_t *buf = aligned_alloc(a, 2 * (size_t)a);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    ssize_t r = pread(fd, buf, f->off_align, 0);
    int err = r < 0 ? -errno : 0;
    if (!err && f->size > f->off_align) {
        ssize_t m = pread(fd, buf, f->off_align, 1);   /* offset 1: refused iff alignment is enforced */
        *enforced = m < 0 && errno == EINVAL;
    } else {
        *enforced = !err;                              /* too small to tell: trust the aligned read */
    }
    free(buf);
    if (err) {
        close(fd);
        return err;
    }
    f->fd = fd;
    return 0;
}

static int start_backend(qn_io *io)
{
    bool uring = io->p.engine == QN_IO_ENGINE_URING || (io->p.engine == QN_IO_ENGINE_AUTO && io->direct);
    int rc = -1;
    if (uring) {
        rc = uring_create(io->p.queue_depth, &io->be);
        if (rc < 0 && io->p.engine == QN_IO_ENGINE_URING) return rc;
        if (rc < 0) QN_WARN("io: %s; using the pread pool", qn_errmsg());
    }
    if (rc < 0 && (rc = pool_create(io->p.threads, io->p.urgent_reserve, &io->be)) < 0) return rc;
    snprintf(io->name, sizeof io->name, "%s%s", io->be->name, io->has_faults ? "+faults" : "");
    if (io->has_faults) return fault_wrap(io->be, &io->faults, io->p.queue_depth, &io->be);
    return 0;
}

/* First file: decide QN_IO_AUTO and start the backend. */
static int resolve_mode(qn_io *io, struct io_file *f)
{
    if (io->p.mode == QN_IO_BUFFERED) {
        io->direct = false;
    } else {
        bool enforced = false;
        int rc = probe_direct(f, &enforced);
        if (io->p.mode == QN_IO_DIRECT && rc < 0)
            return qn_fail(rc, "--io direct: %s: O_DIRECT read failed (%s); use --io buffered or auto",
                           f->path, strerror(-rc));
        io->direct = io->p.mode == QN_IO_DIRECT || (rc == 0 && enforced);
        if (rc == 0 && !io->direct) {
            close(f->fd);
            f->fd = -1;
        }
        if (io->p.mode == QN_IO_AUTO)
            QN_DEBUG("io auto: %s: O_DIRECT %s -> %s", f->path,
                     rc < 0 ? "unsupported" : enforced ? "enforced" : "accepted without alignment (page cache)",
                     io->direct ? "direct" : "buffered");
    }
    io->resolved = true;
    return start_backend(io);
}

int qn_io_add_file(qn_io *io, const char *path)
{
    if (io->n_files == io->cap_files) {
        int cap = io->cap_files ? 2 * io->cap_files : 8;
        struct io_file *nf = realloc(io->files, (size_t)cap * sizeof *nf);
        if (!nf) return qn_fail(-ENOMEM, "io: out of memory adding %s", path);
        io->files = nf;
        io->cap_files = cap;
    }
    struct io_file f = { .path = strdup(path), .fd = -1, .off_align = 1, .mem_align = 1 };
    struct stat sb;
    if (!f.path) return qn_fail(-ENOMEM, "io: out of memory adding %s", path);
    if (stat(path, &sb) < 0) {
        int e = errno;
        free(f.path);
        return qn_fail(-e, "%s: %s", path, strerror(e));
    }
    f.size = (uint64_t)sb.st_size;
    int rc = io->resolved ? 0 : resolve_mode(io, &f);
    if (rc == 0 && io->direct && f.fd < 0) {
        bool enforced;
        if (probe_direct(&f, &enforced) < 0) QN_WARN("io: %s: O_DIRECT unavailable, reading it buffered", path);
    }
    uint32_t a = f.off_align > f.mem_align ? f.off_align : f.mem_align;
    if (rc == 0 && f.fd >= 0 && (a > io->p.chunk_bytes || io->p.chunk_bytes % a)) {
        QN_WARN("io: %s: direct-IO alignment %u does not divide the %u-byte chunk; reading it buffered", path, a,
                io->p.chunk_bytes);
        close(f.fd);
        f.fd = -1;
    }
    f.direct = f.fd >= 0;
    if (rc == 0 && f.fd < 0) {
        f.off_align = f.mem_align = 1;
        if ((f.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) rc = qn_fail(-errno, "%s: %s", path, strerror(errno));
    }
    if (rc < 0) {
        if (f.fd >= 0) close(f.fd);
        free(f.path);
        return rc;
    }
    io->files[io->n_files] = f;
    return io->n_files++;
}

const char *qn_io_engine_name(const qn_io *io) { return io->resolved ? io->name : "unresolved"; }

static const struct io_file *file_at(const qn_io *io, int file)
{
    return file >= 0 && file < io->n_files ? &io->files[file] : NULL;
}

bool qn_io_is_direct(const qn_io *io, int file)
{
    const struct io_file *f = file_at(io, file);
    return f && f->direct;
}

uint32_t qn_io_align(const qn_io *io, int file)
{
    const struct io_file *f = file_at(io, file);
    if (!f) return 1;
    return f->off_align > f->mem_align ? f->off_align : f->mem_align;
}

uint64_t qn_io_file_size(const qn_io *io, int file)
{
    const struct io_file *f = file_at(io, file);
    return f ? f->size : 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Planning: a request -> ops. Buffered: chunks straight into dst. Direct: see the header / the doc. */

struct plan {
    struct io_job *job;   /* NULL: count only */
    int n;
    uint32_t chunk;
};

static void plan_emit(struct plan *pl, const struct io_file *f, uint64_t start, uint64_t end, uint8_t *base,
                      uint64_t want0, uint64_t want1, bool bounce)
{
    if (pl->job) {
        struct io_op *op = &pl->job->ops[pl->n];
        memset(op, 0, sizeof *op);
        op->fd = f->fd;
        op->job = pl->job;
        op->start = start;
        op->end = end;
        op->want0 = want0;
        op->want1 = want1;
        op->base = bounce ? NULL : base;
        op->bounce = bounce;
        op->align = f->off_align > f->mem_align ? f->off_align : f->mem_align;
    }
    pl->n++;
}

/* Aligned range [s, e) in chunks; `base` holds file offset s (NULL with bounce); wanted bytes [w0, w1). */
static void plan_range(struct plan *pl, const struct io_file *f, uint64_t s, uint64_t e, uint8_t *base,
                       uint64_t w0, uint64_t w1, bool bounce)
{
    for (uint64_t p = s; p < e; p += pl->chunk) {
        uint64_t q = e - p < pl->chunk ? e : p + pl->chunk;
        plan_emit(pl, f, p, q, base ? base + (p - s) : NULL, p > w0 ? p : w0, q < w1 ? q : w1, bounce);
    }
}

static void plan_request(struct plan *pl, const struct io_file *f, const struct qn_io_req *r)
{
    uint64_t off = r->offset, end = r->offset + r->length;
    uint8_t *dst = r->dst;
    if (!f->direct) {
        plan_range(pl, f, off, end, dst, off, end, false);
        return;
    }
    uint64_t A = f->off_align, M = f->mem_align;
    uint64_t a0 = align_down(off, A), a1 = align_up(end, A);
    if (r->flags & QN_IO_BOUNCE) {
        plan_range(pl, f, a0, a1, NULL, off, end, true);   /* every byte through bounce buffers */
        return;
    }
    if ((r->flags & QN_IO_SLACK) && ((uintptr_t)dst - (off - a0)) % M == 0) {
        plan_range(pl, f, a0, a1, dst - (off - a0), off, end, false);   /* zero copy, widened in place */
        return;
    }
    uint64_t m0 = align_up(off, A), m1 = align_down(end, A);
    if (off % A) plan_emit(pl, f, a0, a0 + A, NULL, off, end < a0 + A ? end : a0 + A, true);   /* head block */
    if (m1 > m0) {
        bool aligned = ((uintptr_t)(dst + (m0 - off))) % M == 0;
        plan_range(pl, f, m0, m1, aligned ? dst + (m0 - off) : NULL, m0, m1, !aligned);
    }
    if (end % A && m1 >= m0) plan_emit(pl, f, m1, m1 + A, NULL, m1, end, true);              /* tail block */
}

/* ------------------------------------------------------------------------------------------------ */
/* Submission, completion processing.                                                                */

/* A continuation back to the backlog's front (behind the urgent ops unless it is one). */
static void bl_push_front(qn_io *io, struct io_op *op)
{
    struct io_op *after = op_urgent(op) ? NULL : io->bl_urg;
    op->next = after ? after->next : io->bl_head;
    if (after) after->next = op;
    else io->bl_head = op;
    if (!op->next) io->bl_tail = op;
    if (op_urgent(op) && !io->bl_urg) io->bl_urg = op;
}

/* The backlog's first op is leaving it. */
static void bl_pop(qn_io *io, struct io_op *op)
{
    io->bl_head = op->next;
    if (!io->bl_head) io->bl_tail = NULL;
    if (op == io->bl_urg) io->bl_urg = NULL;
}

static uint8_t *bounce_get(qn_io *io)
{
    if (io->n_bounce_free) return io->bounce_free[--io->n_bounce_free];
    if (io->n_bounce >= io->p.queue_depth) return NULL;
    uint8_t *b = aligned_alloc(4096, io->p.chunk_bytes);
    if (b) io->n_bounce++;
    return b;
}

/* Record a failure at file offset `at`. The first error wins, except that an error of the same kind at a
 * lower offset replaces it (several reads of one request can run out at the end of a truncated file). */
static void job_fail(struct io_job *job, int code, uint64_t at, const char *fmt, ...) QN_PRINTF(4, 5);
static void job_fail(struct io_job *job, int code, uint64_t at, const char *fmt, ...)
{
    if (job->status < 0 && (code != job->status || at >= job->err_at)) return;
    job->err_at = at;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->msg, sizeof job->msg, fmt, ap);
    va_end(ap);
    job->status = code;
}

static void job_complete(qn_io *io, struct io_job *job)
{
    uint64_t t = qn_now_ns();
    io->active--;
    if (io->active == 0) io->st.busy_ns += t - io->busy_t0;
    io->st.requests++;
    if (job->status < 0) io->st.failed++;
    else io->st.bytes += job->req.length;
    uint64_t lat = t - job->t0;
    io->st.lat_ns_sum += lat;
    if (lat > io->st.lat_ns_max) io->st.lat_ns_max = lat;
    job->lat = lat;
    if (job->aprev) job->aprev->anext = job->anext;
    else io->act_head = job->anext;
    if (job->anext) job->anext->aprev = job->aprev;
    job->next = NULL;
    if (io->done_tail) io->done_tail->next = job;
    else io->done_head = job;
    io->done_tail = job;
}

static void op_finish(qn_io *io, struct io_op *op)
{
    struct io_job *job = op->job;
    if (op->bounce && op->base) {
        if (job->status == 0) {
            memcpy((uint8_t *)job->req.dst + (op->want0 - job->req.offset), op->base + (op->want0 - op->start),
                   op->want1 - op->want0);
            io->st.bytes_copied += op->want1 - op->want0;
        }
        io->bounce_free[io->n_bounce_free++] = op->base;
        op->base = NULL;
    }
    if (--job->ops_left == 0) job_complete(io, job);
}

static void op_eof(qn_io *io, struct io_op *op, uint64_t pos)
{
    const struct io_file *f = &io->files[op->job->req.file];
    struct stat sb;
    long long now = fstat(f->fd, &sb) == 0 ? (long long)sb.st_size : -1;
    job_fail(op->job, -ENODATA, pos, "%s: unexpected end of file at offset %llu reading [%llu, %llu): the file is "
             "%lld bytes now, %llu when opened (truncated?)", f->path, (unsigned long long)pos,
             (unsigned long long)op->job->req.offset, (unsigned long long)(op->job->req.offset + op->job->req.length),
             now, (unsigned long long)f->size);
}

/* A backend read finished with op->res. Returns true if the op must be issued again. */
static bool op_result(qn_io *io, struct io_op *op)
{
    const struct io_file *f = &io->files[op->job->req.file];
    op->job->reads++;
    if (op->res == -EINTR || op->res == -EAGAIN) {
        io->st.retries++;
        if (++op->retries <= IO_MAX_RETRIES && !io->cancelling) return true;
        job_fail(op->job, op->res, op->off, "%s: read at offset %llu: still %s after %d retries", f->path,
                 (unsigned long long)op->off, strerror(-op->res), IO_MAX_RETRIES);
        return false;
    }
    if (op->res < 0) {
        job_fail(op->job, op->res, op->off, "%s: read of %u bytes at offset %llu failed: %s", f->path, op->len,
                 (unsigned long long)op->off, strerror(-op->res));
        return false;
    }
    uint64_t pos = op->off + (uint64_t)op->res;
    io->st.bytes_device += (uint64_t)op->res;
    if (pos >= op->end || pos >= op->want1) return false;      /* everything wanted has arrived */
    uint64_t next = op->start + align_down(pos - op->start, op->align);
    if (op->res == 0 || next <= op->off) {
        struct stat sb;
        if (op->res == 0 || fstat(f->fd, &sb) < 0 || (uint64_t)sb.st_size < op->want1) {
            op_eof(io, op, pos);
            return false;
        }
        io->st.retries++;                                       /* odd sub-block short read: redo it */
        if (++op->retries > IO_MAX_RETRIES) {
            op_eof(io, op, pos);
            return false;
        }
    }
    if (op->res) io->st.short_reads++;
    if (io->cancelling) {
        job_fail(op->job, -ECANCELED, pos, "%s: read at offset %llu cancelled", f->path, (unsigned long long)pos);
        return false;
    }
    op->off = next;
    return true;
}

static void prepare_op(struct io_op *op)
{
    uint64_t len = op->end - op->off;
    op->len = (uint32_t)len;
    op->buf = op->base + (op->off - op->start);
    op->res = 0;
}

/* Issue backlog ops while the backend has room. Returns 0 or a fatal backend error. */
static int pump(qn_io *io)
{
    int n = 0;
    while (io->bl_head && io->inflight + n < io->p.queue_depth) {
        struct io_op *op = io->bl_head;
        if (op->job->status < 0 || io->cancelling) {           /* its request already failed: skip */
            job_fail(op->job, -ECANCELED, op->off, "%s: read at offset %llu cancelled",
                     io->files[op->job->req.file].path, (unsigned long long)op->off);
            bl_pop(io, op);
            op_finish(io, op);
            continue;
        }
        if (op->bounce && !op->base && !(op->base = bounce_get(io))) break;
        bl_pop(io, op);
        prepare_op(op);
        io->batch[n++] = op;
    }
    if (!n) return 0;
    int rc = io->be->submit(io->be, io->batch, n);
    if (rc < 0) {
        for (int i = 0; i < n; i++) {
            job_fail(io->batch[i]->job, rc, io->batch[i]->off, "%s: submitting a read failed: %s", io->files[io->batch[i]->job->req.file].path,
                     qn_errmsg());
            op_finish(io, io->batch[i]);
        }
        return rc;
    }
    io->inflight += n;
    io->st.reads += (uint64_t)n;
    return 0;
}

static int check_req(const qn_io *io, const struct qn_io_req *r, int i)
{
    const struct io_file *f = file_at(io, r->file);
    if (!f) return qn_fail(-EINVAL, "io: request %d: no file %d (%d added)", i, r->file, io->n_files);
    if (!r->dst || !r->length)
        return qn_fail(-EINVAL, "io: request %d (%s @ %llu): empty length or NULL destination", i, f->path,
                       (unsigned long long)r->offset);
    if (r->offset + r->length < r->offset || r->offset + r->length > f->size)
        return qn_fail(-ERANGE, "%s: read [%llu, %llu) is past the end of the file (%llu bytes when opened)",
                       f->path, (unsigned long long)r->offset, (unsigned long long)(r->offset + r->length),
                       (unsigned long long)f->size);
    return 0;
}

int qn_io_submit(qn_io *io, const struct qn_io_req *reqs, int n)
{
    for (int i = 0; i < n; i++) {
        int rc = check_req(io, &reqs[i], i);
        if (rc < 0) return rc;
    }
    for (int i = 0; i < n; i++) {
        const struct io_file *f = &io->files[reqs[i].file];
        struct plan pl = { NULL, 0, io->p.chunk_bytes };
        plan_request(&pl, f, &reqs[i]);
        struct io_job *job = calloc(1, sizeof *job + (size_t)pl.n * sizeof(struct io_op));
        if (!job) return qn_fail(-ENOMEM, "io: out of memory (%d of %d requests queued)", i, n);
        job->req = reqs[i];
        job->ops_left = job->n_ops = pl.n;
        job->t0 = qn_now_ns();
        pl = (struct plan){ job, 0, io->p.chunk_bytes };
        plan_request(&pl, f, &reqs[i]);
        for (int k = 0; k < pl.n; k++) {
            job->ops[k].off = job->ops[k].start;
            job->ops[k].next = NULL;
            atomic_init(&job->ops[k].dropped, 0);
            if (reqs[i].flags & QN_IO_URGENT) {
                list_push_urgent(&io->bl_head, &io->bl_tail, &io->bl_urg, &job->ops[k]);
                continue;
            }
            if (io->bl_tail) io->bl_tail->next = &job->ops[k];
            else io->bl_head = &job->ops[k];
            io->bl_tail = &job->ops[k];
        }
        job->anext = io->act_head;
        if (io->act_head) io->act_head->aprev = job;
        io->act_head = job;
        if (io->active++ == 0) io->busy_t0 = job->t0;
        io->pending++;
    }
    return pump(io);
}

/* Reap from the backend (blocking up to timeout_ns) and process what finished. */
static int reap_some(qn_io *io, int min, int64_t timeout_ns)
{
    int k = io->be->reap(io->be, io->batch, io->p.queue_depth, min, timeout_ns);
    if (k < 0) return k;
    io->inflight -= k;
    for (int i = 0; i < k; i++) {
        struct io_op *op = io->batch[i];
        if (op_result(io, op)) bl_push_front(io, op);
        else op_finish(io, op);
    }
    return pump(io);
}

static void fill_cqe(struct qn_io_cqe *c, const struct io_job *job)
{
    c->tag = job->req.tag;
    c->status = job->status;
    c->reads = job->reads;
    c->bytes = job->status < 0 ? 0 : job->req.length;
    c->ns = job->lat;
    memcpy(c->msg, job->msg, sizeof c->msg);
}

int qn_io_wait(qn_io *io, struct qn_io_cqe *out, int max, int min_complete, int64_t timeout_ns)
{
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : qn_now_ns() + (uint64_t)timeout_ns;
    int got = 0;
    bool polled = false;   /* at the deadline the backend is still polled once (timeout 0 = a non-blocking poll) */
    if (min_complete > max) min_complete = max;
    for (;;) {
        while (got < max && io->done_head) {
            struct io_job *job = io->done_head;
            io->done_head = job->next;
            if (!io->done_head) io->done_tail = NULL;
            fill_cqe(&out[got++], job);
            io->pending--;
            free(job);
        }
        if (got >= min_complete || got == max || io->active == 0) return got;
        if (!io->inflight) {
            int rc = pump(io);
            if (rc < 0) return rc;
            if (!io->inflight && !io->done_head) return qn_fail(-EIO, "io: %d requests stuck (no read in flight)", io->active);
            continue;
        }
        uint64_t t = qn_now_ns();
        if (t >= deadline && !polled) {
            polled = true;
            int rc = reap_some(io, 0, 0);
            if (rc < 0) return rc;
            continue;
        }
        if (t >= deadline) {
            if (got == 0 && min_complete > 0)
                return qn_fail(-ETIMEDOUT, "io: no read completed within %.3f ms (%d in flight, %d pending)",
                               (double)timeout_ns / 1e6, io->inflight, io->pending);
            return got;
        }
        int rc = reap_some(io, 1, deadline == UINT64_MAX ? -1 : (int64_t)(deadline - t));
        if (rc < 0) return rc;
    }
}

int qn_io_pending(const qn_io *io) { return io->pending; }

int qn_io_drop(qn_io *io, uint64_t mask, uint64_t value)
{
    int n = 0;
    for (struct io_job *job = io->act_head; job; job = job->anext) {
        if ((job->req.tag & mask) != value) continue;
        job_fail(job, -ECANCELED, job->req.offset, "%s: read [%llu, +%llu) dropped by the caller",
                 io->files[job->req.file].path, (unsigned long long)job->req.offset,
                 (unsigned long long)job->req.length);
        for (int k = 0; k < job->n_ops; k++) atomic_store_explicit(&job->ops[k].dropped, 1, memory_order_relaxed);
        n++;
    }
    return n;
}

int qn_io_cancel(qn_io *io, int64_t timeout_ns)
{
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : qn_now_ns() + (uint64_t)timeout_ns;
    io->cancelling = true;
    int rc = 0;
    while (io->bl_head) {
        struct io_op *op = io->bl_head;
        io->bl_head = op->next;
        job_fail(op->job, -ECANCELED, op->start, "%s: read at offset %llu cancelled", io->files[op->job->req.file].path,
                 (unsigned long long)op->start);
        op_finish(io, op);
    }
    io->bl_tail = io->bl_urg = NULL;
    while (io->inflight) {
        uint64_t t = qn_now_ns();
        if (t >= deadline) {
            rc = qn_fail(-ETIMEDOUT, "io: %d reads still in flight after cancel", io->inflight);
            break;
        }
        if ((rc = reap_some(io, 1, deadline == UINT64_MAX ? -1 : (int64_t)(deadline - t))) < 0) break;
    }
    io->cancelling = false;
    return rc;
}

void qn_io_close(qn_io **pio)
{
    qn_io *io = *pio;
    if (!io) return;
    if (io->be) {
        if (qn_io_cancel(io, IO_CLOSE_TIMEOUT_NS) < 0)
            QN_ERROR("io close: %s; leaking its buffers", qn_errmsg());
        io->be->destroy(io->be);
        if (io->inflight) { *pio = NULL; return; }  /* reads may still land in the buffers: keep them */
    }
    while (io->done_head) {
        struct io_job *job = io->done_head;
        io->done_head = job->next;
        free(job);
    }
    for (int i = 0; i < io->n_bounce_free; i++) free(io->bounce_free[i]);
    for (int i = 0; i < io->n_files; i++) {
        if (io->files[i].fd >= 0) close(io->files[i].fd);
        free(io->files[i].path);
    }
    free(io->files);
    free(io->bounce_free);
    free(io->batch);
    free(io);
    *pio = NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Statistics.                                                                                       */

void qn_io_get_stats(const qn_io *io, struct qn_io_stats *out)
{
    *out = io->st;
    if (io->active) out->busy_ns += qn_now_ns() - io->busy_t0;
}

void qn_io_reset_stats(qn_io *io)
{
    memset(&io->st, 0, sizeof io->st);
    if (io->active) io->busy_t0 = qn_now_ns();
}

double qn_io_stats_gbps(const struct qn_io_stats *s)
{
    return s->busy_ns ? (double)s->bytes / (double)s->busy_ns : 0.0;
}
