/* test_io.c — the expert IO engine reads exactly the file's bytes.
 *
 * usage: test_io SCRATCH_DIR   (a directory on the repo's filesystem, created if missing)
 * For each configuration (direct+io_uring, direct+pool, buffered+pool, buffered+io_uring, auto) it
 * reads a random file with random, often unaligned, offsets/lengths/destinations, many requests in
 * flight, and checks every byte, that nothing around a destination was written (guard bytes; with
 * QN_IO_SLACK only beyond the allowed slack), the tags, and the stats; with QN_IO_BOUNCE on every request
 * (destinations O_DIRECT cannot target: BAR mappings) every byte goes through bounce buffers. Also: bad
 * requests are refused with messages naming the file, and auto resolves to direct on a filesystem that
 * enforces O_DIRECT. QN_IO_URGENT requests overtake queued ones (one pread thread; in the pool's queue and in
 * the backlog), with their bytes intact; polling with timeout 0 makes progress; qn_io_drop cancels requests. */
#include "io_util.h"
#include "runtime/stream.h"

#define FILE_SIZE ((size_t)24 * 1048576 + 1234)   /* not a multiple of any block size */
#define GUARD 8192
#define N_REQ 240
#define BATCH 24
#define WAIT_NS (20ll * 1000000000ll)

struct tbuf {
    uint8_t *region, *saved, *dst;
    size_t len, size;
    bool slack;
    uint64_t off;
};

static void tbuf_make(struct tbuf *b, qn_rng *r, uint64_t off, size_t len, uint32_t align, bool slack)
{
    b->size = len + 2 * GUARD;
    b->region = aligned_alloc(4096, (b->size + 4095) / 4096 * 4096);
    b->saved = malloc(b->size);
    CHECK(b->region && b->saved, "malloc");
    for (size_t i = 0; i < b->size; i++) b->region[i] = (uint8_t)qn_rng_u64(r);
    memcpy(b->saved, b->region, b->size);
    /* destination misalignment: matched to the file offset (zero-copy possible) or random */
    size_t mis = (qn_rng_u64(r) & 1) ? (size_t)(off % align) : (size_t)(qn_rng_u64(r) % 4096);
    b->dst = b->region + GUARD + mis;
    b->len = len;
    b->off = off;
    b->slack = slack;
}

static void tbuf_check(const struct tbuf *b, const uint8_t *file, uint32_t align, const char *cfg)
{
    CHECK(!memcmp(b->dst, file + b->off, b->len), "%s: bytes differ for [%llu, +%zu)", cfg,
          (unsigned long long)b->off, b->len);
    size_t lo = (size_t)(b->dst - b->region), hi = lo + b->len;
    size_t slack = b->slack ? align - 1 : 0;
    for (size_t i = 0; i + slack < lo; i++)
        CHECK(b->region[i] == b->saved[i], "%s: byte %zu before the destination was written (off %llu len %zu)", cfg,
              lo - i, (unsigned long long)b->off, b->len);
    for (size_t i = hi + slack; i < b->size; i++)
        CHECK(b->region[i] == b->saved[i], "%s: byte %zu after the destination was written (off %llu len %zu)", cfg,
              i - hi, (unsigned long long)b->off, b->len);
}

static void tbuf_free(struct tbuf *b)
{
    free(b->region);
    free(b->saved);
}

/* A random request: mixes tiny, block-sized, expert-sized, aligned, unaligned and end-of-file ranges. */
static void random_range(qn_rng *r, uint64_t *off, size_t *len)
{
    uint64_t kind = qn_rng_u64(r) % 6;
    size_t max = 3u << 20;
    *len = kind == 0 ? 1 + qn_rng_u64(r) % 100 : kind == 1 ? 4096 * (1 + qn_rng_u64(r) % 4) : 1 + qn_rng_u64(r) % max;
    *off = qn_rng_u64(r) % (FILE_SIZE - *len + 1);
    if (kind == 2) *off -= *off % 4096;                    /* aligned start */
    if (kind == 3) *off = FILE_SIZE - *len;                /* ends exactly at EOF (unaligned end) */
}

/* bounce: every request QN_IO_BOUNCE (memory O_DIRECT cannot target, e.g. a BAR mapping): every byte copied. */
static void run_config(const char *path, const uint8_t *file, enum qn_io_mode mode, enum qn_io_engine engine,
                       uint64_t seed, bool bounce)
{
    char cfg[64];
    snprintf(cfg, sizeof cfg, "%s/%s%s", qn_io_mode_name(mode),
             engine == QN_IO_ENGINE_URING ? "uring" : engine == QN_IO_ENGINE_POOL ? "pool" : "auto",
             bounce ? "+bounce" : "");
    struct qn_io_params p = tio_params(mode, engine);
    p.queue_depth = 8;
    p.chunk_bytes = 256 << 10;   /* small chunks: requests split into several reads */
    int f;
    qn_io *io = tio_open(&p, path, cfg, &f);
    CHECK(f == 0, "%s: add_file returned %d", cfg, f);
    uint32_t align = qn_io_align(io, f);
    bool direct = qn_io_is_direct(io, f);
    CHECK(direct == (mode != QN_IO_BUFFERED), "%s: direct=%d (auto must resolve to direct on ext4)", cfg, direct);
    CHECK(!direct || align >= 512, "%s: direct alignment %u", cfg, align);
    qn_rng r;
    qn_rng_seed(&r, seed);
    static struct tbuf bufs[N_REQ];
    uint64_t total = 0;
    for (int base = 0; base < N_REQ; base += BATCH) {
        struct qn_io_req reqs[BATCH];
        for (int i = 0; i < BATCH; i++) {
            uint64_t off;
            size_t len;
            random_range(&r, &off, &len);
            bool slack = qn_rng_u64(&r) % 3 == 0;
            tbuf_make(&bufs[base + i], &r, off, len, direct ? align : 4096, slack);
            reqs[i] = (struct qn_io_req){ f, (slack ? QN_IO_SLACK : 0) | (bounce ? QN_IO_BOUNCE : 0), off, len,
                                          bufs[base + i].dst,
                                          0x5000u + (uint64_t)(base + i) };
            total += len;
        }
        CHECK(qn_io_submit(io, reqs, BATCH) == 0, "%s: submit", cfg);
        int seen[BATCH] = { 0 }, got = 0;
        while (got < BATCH) {
            struct qn_io_cqe cq[BATCH];
            int n = qn_io_wait(io, cq, BATCH, 1, WAIT_NS);
            CHECK(n > 0, "%s: wait returned %d", cfg, n);
            for (int i = 0; i < n; i++) {
                int k = (int)(cq[i].tag - 0x5000u) - base;
                CHECK(k >= 0 && k < BATCH && !seen[k], "%s: bad or repeated tag %llx", cfg, (unsigned long long)cq[i].tag);
                CHECK(cq[i].status == 0, "%s: request failed: %s", cfg, cq[i].msg);
                CHECK(cq[i].bytes == bufs[base + k].len, "%s: bytes %llu", cfg, (unsigned long long)cq[i].bytes);
                seen[k] = 1;
                tbuf_check(&bufs[base + k], file, direct ? align : 1, cfg);
                tbuf_free(&bufs[base + k]);
            }
            got += n;
        }
        CHECK(qn_io_pending(io) == 0, "%s: %d pending", cfg, qn_io_pending(io));
    }
    struct qn_io_stats st;
    qn_io_get_stats(io, &st);
    CHECK(st.requests == N_REQ && st.failed == 0 && st.bytes == total, "%s: stats %llu req %llu failed %llu bytes",
          cfg, (unsigned long long)st.requests, (unsigned long long)st.failed, (unsigned long long)st.bytes);
    CHECK(st.reads >= N_REQ && st.bytes_device >= total, "%s: stats reads %llu device bytes %llu", cfg,
          (unsigned long long)st.reads, (unsigned long long)st.bytes_device);
    CHECK(direct || st.bytes_copied == 0, "%s: buffered mode copied %llu bytes", cfg, (unsigned long long)st.bytes_copied);
    CHECK(!direct || st.bytes_copied > 0, "%s: direct mode never used a bounce buffer", cfg);
    CHECK(!direct || !bounce || st.bytes_copied == total, "%s: QN_IO_BOUNCE copied %llu of %llu bytes", cfg,
          (unsigned long long)st.bytes_copied, (unsigned long long)total);
    printf("%-16s engine %-9s align %4u: %d requests, %.1f MiB, %llu reads, %.1f MiB device, %.1f MiB copied, "
           "%.2f GB/s\n", cfg, qn_io_engine_name(io), align, N_REQ, (double)total / 1048576.0,
           (unsigned long long)st.reads, (double)st.bytes_device / 1048576.0, (double)st.bytes_copied / 1048576.0,
           qn_io_stats_gbps(&st));
    qn_io_close(&io);
    CHECK(io == NULL, "close must NULL the handle");
}

static void bad_requests(const char *path)
{
    int f;
    qn_io *io = tio_open(NULL, path, "bad requests", &f);
    CHECK(qn_io_add_file(io, "/nonexistent/qnext-expert-file") < 0, "adding a missing file must fail");
    CHECK(strstr(qn_errmsg(), "/nonexistent/qnext-expert-file"), "message names the file: %s", qn_errmsg());
    uint8_t buf[64];
    struct qn_io_req rq = { f + 7, 0, 0, 16, buf, 1 };
    CHECK(qn_io_submit(io, &rq, 1) == -EINVAL, "unknown file id");
    rq = (struct qn_io_req){ f, 0, FILE_SIZE - 10, 16, buf, 1 };
    CHECK(qn_io_submit(io, &rq, 1) == -ERANGE, "range past the end");
    char at[32];
    snprintf(at, sizeof at, "%zu", FILE_SIZE - 10);
    CHECK(strstr(qn_errmsg(), path) && strstr(qn_errmsg(), at), "message names file and offset: %s", qn_errmsg());
    CHECK(qn_io_pending(io) == 0, "nothing queued after a refused batch");
    struct qn_io_cqe cq;
    CHECK(qn_io_wait(io, &cq, 1, 1, 1000000) == 0, "wait with nothing pending returns 0 at once");
    qn_io_close(&io);
    enum qn_io_mode m;
    CHECK(qn_io_mode_parse("direct", &m) == 0 && m == QN_IO_DIRECT, "parse direct");
    CHECK(qn_io_mode_parse("buffered", &m) == 0 && m == QN_IO_BUFFERED, "parse buffered");
    CHECK(qn_io_mode_parse("auto", &m) == 0 && m == QN_IO_AUTO, "parse auto");
    CHECK(qn_io_mode_parse("fast", &m) == -EINVAL && strstr(qn_errmsg(), "fast"), "parse bad");
}

/* 16 plain 1 MiB reads, then one QN_IO_URGENT (or, as the control, plain) read, on one pread thread: the
 * urgent one completes among the first few (the thread may already hold 1-2 plain reads), the plain one last. */
static int urgent_position(const char *path, const uint8_t *file, int depth, bool urgent, int threads, int reserve)
{
    struct qn_io_params ip = tio_params(QN_IO_BUFFERED, QN_IO_ENGINE_POOL);
    ip.threads = threads;
    ip.urgent_reserve = reserve;
    ip.queue_depth = depth;
    int f;
    qn_io *io = tio_open(&ip, path, "urgent", &f);
    enum { N = 16, MB = 1048576 };
    uint8_t *buf = malloc((size_t)(N + 1) * MB);
    CHECK(buf, "malloc");
    struct qn_io_req rq[N + 1];
    for (int i = 0; i <= N; i++)
        rq[i] = (struct qn_io_req){ .file = f, .offset = (uint64_t)(i * 7 % (N + 1)) * MB + 3, .length = MB - 5,
                                    .dst = buf + (size_t)i * MB, .tag = (uint64_t)i };
    rq[N].flags = urgent ? QN_IO_URGENT : 0;
    CHECK(qn_io_submit(io, rq, N) == 0 && qn_io_submit(io, &rq[N], 1) == 0, "submit (urgent)");
    int pos = -1;
    for (int got = 0; got <= N;) {
        struct qn_io_cqe cq[N + 1];
        int k = qn_io_wait(io, cq, N + 1, 1, WAIT_NS);
        CHECK(k > 0, "wait (urgent): %d %s", k, qn_errmsg());
        for (int i = 0; i < k; i++, got++) {
            CHECK(cq[i].status == 0, "read %llu: %s", (unsigned long long)cq[i].tag, cq[i].msg);
            if (cq[i].tag == N) pos = got;
        }
    }
    for (int i = 0; i <= N; i++)
        CHECK(!memcmp(buf + (size_t)i * MB, file + rq[i].offset, rq[i].length), "bytes of read %d (urgent)", i);
    free(buf);
    qn_io_close(&io);
    return pos;
}

/* qn_io_wait with timeout 0 is a non-blocking poll that still collects what the backend finished (a caller
 * that only polls, QNEXT_STREAM_SPIN=2, must see its reads complete). */
static void poll_progress(const char *path, const uint8_t *file)
{
    for (int engine = QN_IO_ENGINE_URING; engine <= QN_IO_ENGINE_POOL; engine++) {
        struct qn_io_params ip = tio_params(QN_IO_BUFFERED, (enum qn_io_engine)engine);
        int f;
        qn_io *io = tio_open(&ip, path, "poll", &f);
        uint8_t buf[4][4096];
        struct qn_io_req rq[4];
        for (int i = 0; i < 4; i++)
            rq[i] = (struct qn_io_req){ .file = f, .offset = 1000u + 5000u * (unsigned)i, .length = 4096, .dst = buf[i],
                                        .tag = (uint64_t)i };
        CHECK(qn_io_submit(io, rq, 4) == 0, "submit (poll)");
        int got = 0;
        for (long spins = 0; got < 4 && spins < 20000000; spins++) {
            struct qn_io_cqe cq[4];
            int k = qn_io_wait(io, cq, 4, 1, 0);
            CHECK(k >= 0 || k == -ETIMEDOUT, "poll: %d %s", k, qn_errmsg());
            for (int i = 0; i < k; i++) CHECK(cq[i].status == 0, "poll read: %s", cq[i].msg);
            got += k > 0 ? k : 0;
        }
        CHECK(got == 4, "engine %d: polling with timeout 0 collected %d of 4 reads", engine, got);
        for (int i = 0; i < 4; i++) CHECK(!memcmp(buf[i], file + rq[i].offset, 4096), "bytes of polled read %d", i);
        qn_io_close(&io);
    }
    printf("ok polling with timeout 0 collects finished reads (io_uring, pool)\n");
}

/* qn_io_drop: the dropped requests (tag group 1) complete with -ECANCELED and most of their reads are never
 * issued (one pread thread, so they wait in its queue); the others deliver their bytes. */
static uint64_t drop_requests(const char *path, const uint8_t *file)
{
    struct qn_io_params ip = tio_params(QN_IO_BUFFERED, QN_IO_ENGINE_POOL);
    ip.threads = 1;
    ip.queue_depth = 64;
    int f;
    qn_io *io = tio_open(&ip, path, "drop", &f);
    enum { N = 16, MB = 1048576 };
    uint8_t *buf = malloc((size_t)N * MB);
    CHECK(buf, "malloc");
    struct qn_io_req rq[N];
    for (int i = 0; i < N; i++)   /* groups 0 1 0 1 ...: every other request dropped */
        rq[i] = (struct qn_io_req){ .file = f, .offset = (uint64_t)i * MB + 11, .length = MB - 20,
                                    .dst = buf + (size_t)i * MB, .tag = (uint64_t)(i % 2) << 32 | (uint64_t)i };
    CHECK(qn_io_submit(io, rq, N) == 0, "submit (drop)");
    int nd = qn_io_drop(io, 0xffffffff00000000ull, 1ull << 32);
    CHECK(nd == N / 2, "dropped %d requests, expected %d", nd, N / 2);
    int got = 0, cancelled = 0;
    while (got < N) {
        struct qn_io_cqe cq[N];
        int k = qn_io_wait(io, cq, N, 1, WAIT_NS);
        CHECK(k > 0, "wait (drop): %d %s", k, qn_errmsg());
        for (int i = 0; i < k; i++, got++) {
            int idx = (int)(cq[i].tag & 0xffffffffu);
            if (cq[i].tag >> 32) {
                CHECK(cq[i].status == -ECANCELED && strstr(cq[i].msg, "dropped"), "dropped read %d: %d %s", idx,
                      cq[i].status, cq[i].msg);
                cancelled++;
            } else {
                CHECK(cq[i].status == 0, "kept read %d: %s", idx, cq[i].msg);
                CHECK(!memcmp(buf + (size_t)idx * MB, file + rq[idx].offset, rq[idx].length), "bytes of kept read %d", idx);
            }
        }
    }
    struct qn_io_stats st;
    qn_io_get_stats(io, &st);
    CHECK(cancelled == N / 2, "cancelled %d", cancelled);
    free(buf);
    qn_io_close(&io);
    return st.bytes_device;
}

/* The skipped reads: a few tries (this thread may be preempted after the submit while the pread thread reads
 * everything on a loaded machine); in one of them at most 2 MiB of the dropped 8 may have been read. */
static void drop_check(const char *path, const uint8_t *file)
{
    uint64_t b = UINT64_MAX;
    for (int t = 0; t < 5 && b > 10u * 1048576u; t++) b = drop_requests(path, file);
    CHECK(b <= 10u * 1048576u, "dropped reads were issued anyway: %llu bytes read", (unsigned long long)b);
    printf("ok dropped 8 of 16 requests: %.1f MiB read of 16\n", (double)b / 1048576.0);
}

static void urgent_order(const char *path, const uint8_t *file)
{
    for (int depth = 2; depth <= 64; depth += 62) {
        int u = 16, c = urgent_position(path, file, depth, false, 1, 0);
        /* the reads before it may all finish while this thread is preempted between its two submits (a loaded
         * machine): a few tries, any of them must put it near the front */
        for (int t = 0; t < 5 && u > 3; t++) u = urgent_position(path, file, depth, true, 1, 0);
        CHECK(u >= 0 && u <= 3, "queue depth %d: the urgent read completed %d-th of 17", depth, u + 1);
        CHECK(c == 16, "queue depth %d: the plain read completed %d-th of 17 (FIFO expected)", depth, c + 1);
        printf("ok urgent read at queue depth %d: completed %d-th of 17 (plain: %d-th)\n", depth, u + 1, c + 1);
    }
    /* one of 2 threads kept for urgent reads (plain ones one at a time), and a reserve of every thread (clamped:
     * one still reads plain ops): every read completes with its bytes, the urgent one near the front */
    int u = 16;
    for (int t = 0; t < 5 && u > 3; t++) u = urgent_position(path, file, 64, true, 2, 1);
    CHECK(u <= 3, "2 threads, 1 reserved: the urgent read completed %d-th of 17", u + 1);
    CHECK(urgent_position(path, file, 64, false, 2, 2) >= 0, "every thread reserved");
    printf("ok urgent reserve: the urgent read completed %d-th of 17 with 1 of 2 threads reserved\n", u + 1);
}

/* The filesystem under test must really enforce O_DIRECT alignment, or the direct runs prove little. */
static bool direct_enforced(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECT);
    if (fd < 0) return false;
    uint8_t *b = aligned_alloc(4096, 8192);
    ssize_t ok = pread(fd, b, 4096, 0), bad = pread(fd, b, 4096, 1);
    int e = errno;
    free(b);
    close(fd);
    return ok == 4096 && bad < 0 && e == EINVAL;
}

/* auto must not pick direct on tmpfs: it accepts O_DIRECT without enforcing alignment (page cache anyway). */
static void auto_on_tmpfs(void)
{
    struct statfs sf;
    if (statfs("/dev/shm", &sf) != 0 || (unsigned long)sf.f_type != TMPFS_MAGIC_ || access("/dev/shm", W_OK) != 0) {
        printf("auto on tmpfs: no writable tmpfs at /dev/shm, not checked\n");
        return;
    }
    char path[4096];
    uint8_t *data = tio_make_file("/dev/shm", "qnext-io-auto", 100000, 3, path, sizeof path);
    qn_io *io;
    CHECK(qn_io_open(&io, NULL) == 0 && qn_io_add_file(io, path) == 0, "open on tmpfs");
    CHECK(!qn_io_is_direct(io, 0) && qn_io_align(io, 0) == 1, "auto chose direct on tmpfs (%s)", qn_io_engine_name(io));
    uint8_t buf[777];
    struct qn_io_req rq = { 0, 0, 4097, sizeof buf, buf, 1 };
    struct qn_io_cqe cq;
    CHECK(qn_io_submit(io, &rq, 1) == 0 && qn_io_wait(io, &cq, 1, 1, WAIT_NS) == 1 && cq.status == 0 &&
          !memcmp(buf, data + 4097, sizeof buf), "tmpfs read");
    printf("auto on tmpfs: %s, buffered\n", qn_io_engine_name(io));
    qn_io_close(&io);
    unlink(path);
    free(data);
}

int main(int argc, char **argv)
{
    CHECK(argc == 2, "usage: test_io SCRATCH_DIR");
    tio_scratch_dir(argv[1]);
    char path[4096];
    uint8_t *file = tio_make_file(argv[1], "io-data", FILE_SIZE, 0x10f11e, path, sizeof path);
    bad_requests(path);
    urgent_order(path, file);
    poll_progress(path, file);
    drop_check(path, file);
    auto_on_tmpfs();
    bool enforced = direct_enforced(path);
    if (!enforced)
        fprintf(stderr, "WARNING: %s does not enforce O_DIRECT alignment; direct and auto runs are skipped\n", argv[1]);
    run_config(path, file, QN_IO_BUFFERED, QN_IO_ENGINE_POOL, 1, false);
    run_config(path, file, QN_IO_BUFFERED, QN_IO_ENGINE_URING, 2, false);
    if (enforced) {
        run_config(path, file, QN_IO_DIRECT, QN_IO_ENGINE_URING, 3, false);
        run_config(path, file, QN_IO_DIRECT, QN_IO_ENGINE_POOL, 4, false);
        run_config(path, file, QN_IO_AUTO, QN_IO_ENGINE_AUTO, 5, false);
        run_config(path, file, QN_IO_DIRECT, QN_IO_ENGINE_URING, 6, true);   /* BAR slots: bounce everything */
    }
    unlink(path);
    free(file);
    printf("test_io: OK%s\n", enforced ? "" : " (direct skipped)");
    return 0;
}
