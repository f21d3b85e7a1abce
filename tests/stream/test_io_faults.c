/* test_io_faults.c — the IO engine under injected faults: delays, jitter, short reads and EAGAIN still
 * give byte-exact data; EIO and a file truncated under the engine give clear errors naming the file and
 * offset; cancel, timeouts and close with reads in flight never hang (every wait is bounded, and an
 * alarm turns a deadlock into a failure).
 *
 * usage: test_io_faults SCRATCH_DIR */
#include "qn_time.h"
#include "io_util.h"
#include "runtime/stream.h"

#include <time.h>

#define FILE_SIZE ((size_t)6 * 1048576 + 777)
#define WAIT_NS (20ll * 1000000000ll)

static const char *g_path;
static const uint8_t *g_file;
static bool g_direct_ok;

static qn_io *open_io(enum qn_io_mode mode, enum qn_io_engine engine, const char *spec, int qd)
{
    struct qn_io_faults f;
    CHECK(qn_io_faults_parse(spec, &f) == 0, "parse '%s'", spec);
    struct qn_io_params p = tio_params(mode, engine);
    p.queue_depth = qd;
    p.chunk_bytes = 128 << 10;
    p.faults = &f;
    qn_io *io = tio_open(&p, g_path, spec, NULL);
    CHECK(strstr(qn_io_engine_name(io), "+faults"), "engine %s is not wrapped", qn_io_engine_name(io));
    return io;
}

/* Submit n random requests and collect them all; returns how many failed; checks the successful ones. */
struct run { int n, failed, eio, cancelled; uint64_t seed; bool cancel_early; };

static void run_requests(qn_io *io, struct run *rn, const char *what)
{
    qn_rng r;
    qn_rng_seed(&r, rn->seed);
    struct qn_io_req *rq = calloc((size_t)rn->n, sizeof *rq);
    uint8_t **bufs = calloc((size_t)rn->n, sizeof *bufs);
    for (int i = 0; i < rn->n; i++) {
        size_t len = 1 + qn_rng_u64(&r) % (600 << 10);
        uint64_t off = qn_rng_u64(&r) % (FILE_SIZE - len + 1);
        bufs[i] = malloc(len);
        rq[i] = (struct qn_io_req){ 0, 0, off, len, bufs[i], (uint64_t)i };
    }
    CHECK(qn_io_submit(io, rq, rn->n) == 0, "%s: submit", what);
    if (rn->cancel_early) CHECK(qn_io_cancel(io, WAIT_NS) == 0, "%s: cancel: %s", what, qn_errmsg());
    rn->failed = rn->eio = rn->cancelled = 0;
    for (int got = 0; got < rn->n;) {
        struct qn_io_cqe cq[16];
        int k = qn_io_wait(io, cq, 16, 1, WAIT_NS);
        CHECK(k > 0, "%s: wait returned %d after %d of %d", what, k, got, rn->n);
        for (int j = 0; j < k; j++) {
            const struct qn_io_req *q = &rq[cq[j].tag];
            if (cq[j].status == 0) {
                CHECK(!memcmp(q->dst, g_file + q->offset, q->length), "%s: bytes differ at [%llu, +%llu)", what,
                      (unsigned long long)q->offset, (unsigned long long)q->length);
            } else {
                rn->failed++;
                rn->eio += cq[j].status == -EIO;
                rn->cancelled += cq[j].status == -ECANCELED;
                CHECK(cq[j].status == -EIO || cq[j].status == -ECANCELED, "%s: status %d: %s", what, cq[j].status,
                      cq[j].msg);
                CHECK(cq[j].status != -EIO || (strstr(cq[j].msg, g_path) && strstr(cq[j].msg, "offset")),
                      "%s: EIO message must name file and offset: '%s'", what, cq[j].msg);
            }
        }
        got += k;
    }
    CHECK(qn_io_pending(io) == 0, "%s: still %d pending", what, qn_io_pending(io));
    for (int i = 0; i < rn->n; i++) free(bufs[i]);
    free(bufs);
    free(rq);
}

static void test_parse(void)
{
    struct qn_io_faults f;
    CHECK(qn_io_faults_parse("delay_us=200,short=0.3,eio_at=5", &f) == 0, "parse");
    CHECK(f.delay_us == 200 && f.short_p > 0.29 && f.short_p < 0.31 && f.eio_at == 5 && f.seed == 1, "fields");
    CHECK(qn_io_faults_active(&f), "active");
    CHECK(qn_io_faults_parse("", &f) == 0 && !qn_io_faults_active(&f), "empty spec is inactive");
    CHECK(qn_io_faults_parse("delay=5", &f) == -EINVAL && strstr(qn_errmsg(), "delay"), "unknown key");
    CHECK(qn_io_faults_parse("short=1.5", &f) == -EINVAL, "probability above 1");
    CHECK(qn_io_faults_parse("eio_at", &f) == -EINVAL, "missing value");
    CHECK(qn_io_faults_parse("eio_at=x", &f) == -EINVAL, "bad number");
}

/* Delays + jitter + short reads + EAGAIN: everything still arrives byte-exact. */
static void test_noisy(enum qn_io_mode mode, enum qn_io_engine engine, const char *what)
{
    qn_io *io = open_io(mode, engine, "delay_us=150,jitter_us=1500,short=0.4,eagain=0.15,seed=9", 6);
    struct run rn = { .n = 80, .seed = 77 };
    run_requests(io, &rn, what);
    CHECK(rn.failed == 0, "%s: %d requests failed", what, rn.failed);
    struct qn_io_stats st;
    qn_io_get_stats(io, &st);
    CHECK(st.short_reads > 10 && st.retries > 5, "%s: faults not exercised (%llu short, %llu retries)", what,
          (unsigned long long)st.short_reads, (unsigned long long)st.retries);
    printf("%-22s ok: %llu reads, %llu short, %llu retries\n", what, (unsigned long long)st.reads,
           (unsigned long long)st.short_reads, (unsigned long long)st.retries);
    qn_io_close(&io);
}

/* EIO on the 5th backend read: exactly one request fails, clearly; every 7th read: no hang. */
static void test_eio(enum qn_io_mode mode, enum qn_io_engine engine, const char *what)
{
    qn_io *io = open_io(mode, engine, "eio_at=5,delay_us=100", 4);
    struct run rn = { .n = 12, .seed = 5 };
    run_requests(io, &rn, what);
    CHECK(rn.failed == 1 && rn.eio == 1, "%s: eio_at=5 failed %d requests (%d EIO)", what, rn.failed, rn.eio);
    qn_io_close(&io);
    io = open_io(mode, engine, "eio_every=7,jitter_us=300,short=0.2", 4);
    rn = (struct run){ .n = 60, .seed = 6 };
    run_requests(io, &rn, what);
    CHECK(rn.eio > 3 && rn.eio < rn.n, "%s: eio_every=7 failed %d of %d", what, rn.eio, rn.n);
    printf("%-22s ok: eio_at=5 -> 1 failed; eio_every=7 -> %d of %d failed\n", what, rn.eio, rn.n);
    qn_io_close(&io);
}

static void expect_eof(qn_io *io, uint64_t off, uint64_t len, const char *at, const char *what)
{
    uint8_t *buf = malloc(len);
    struct qn_io_req rq = { 0, 0, off, len, buf, 42 };
    CHECK(qn_io_submit(io, &rq, 1) == 0, "%s: submit", what);
    struct qn_io_cqe cq;
    CHECK(qn_io_wait(io, &cq, 1, 1, WAIT_NS) == 1, "%s: wait", what);
    CHECK(cq.tag == 42 && cq.status == -ENODATA && cq.bytes == 0, "%s: status %d (%s)", what, cq.status, cq.msg);
    char want[64];
    snprintf(want, sizeof want, "end of file at offset %s ", at);
    CHECK(strstr(cq.msg, g_path) && strstr(cq.msg, want),
          "%s: message must name the file and offset %s: '%s'", what, at, cq.msg);
    printf("%-22s ok: %s\n", what, cq.msg);
    free(buf);
}

/* The file shrinks between qn_io_add_file and the reads. */
static void test_truncated(const char *dir, enum qn_io_mode mode, const char *what)
{
    char path[4096];
    size_t size = 4u << 20;
    uint8_t *data = tio_make_file(dir, "io-trunc", size, 0x7a0c, path, sizeof path);
    struct qn_io_params p = tio_params(mode, QN_IO_ENGINE_AUTO);
    qn_io *io = tio_open(&p, path, what, NULL);
    CHECK(truncate(path, (1u << 20) + 100) == 0, "truncate");
    const char *saved = g_path;
    g_path = path;
    expect_eof(io, 2u << 20, 1u << 20, "2097152", what);              /* wholly past the new end */
    expect_eof(io, 1u << 20, 300000, "1048676", what);                /* straddles it: runs out at 1 MiB + 100 */
    uint8_t buf[5000];
    struct qn_io_req rq = { 0, 0, (1u << 20) - 4000, 4100, buf, 7 };  /* still inside: fine */
    struct qn_io_cqe cq;
    CHECK(qn_io_submit(io, &rq, 1) == 0 && qn_io_wait(io, &cq, 1, 1, WAIT_NS) == 1, "%s: read inside", what);
    CHECK(cq.status == 0 && !memcmp(buf, data + rq.offset, rq.length), "%s: inside read: %s", what, cq.msg);
    g_path = saved;
    qn_io_close(&io);
    unlink(path);
    free(data);
}

static void test_env(void)
{
    setenv("QNEXT_IO_FAULTS", "eio_at=1", 1);
    struct qn_io_params p;
    qn_io_default_params(&p);
    p.mode = QN_IO_BUFFERED;
    qn_io *io;
    CHECK(qn_io_open(&io, &p) == 0 && qn_io_add_file(io, g_path) == 0, "open with env faults");
    CHECK(strstr(qn_io_engine_name(io), "+faults"), "env faults not applied: %s", qn_io_engine_name(io));
    uint8_t buf[100];
    struct qn_io_req rq = { 0, 0, 1000, 100, buf, 1 };
    struct qn_io_cqe cq;
    CHECK(qn_io_submit(io, &rq, 1) == 0 && qn_io_wait(io, &cq, 1, 1, WAIT_NS) == 1, "env: read");
    CHECK(cq.status == -EIO, "env: eio_at=1 gave status %d", cq.status);
    qn_io_close(&io);
    setenv("QNEXT_IO_FAULTS", "bogus=1", 1);
    CHECK(qn_io_open(&io, &p) == -EINVAL && strstr(qn_errmsg(), "bogus"), "bad env spec must fail open");
    p.no_env_faults = true;
    CHECK(qn_io_open(&io, &p) == 0, "no_env_faults ignores the env");
    qn_io_close(&io);
    unsetenv("QNEXT_IO_FAULTS");
    printf("%-22s ok\n", "env QNEXT_IO_FAULTS");
}

/* Cancel with most reads queued; timeouts; close with reads in flight. */
static void test_cancel_timeout(enum qn_io_mode mode, const char *what)
{
    qn_io *io = open_io(mode, QN_IO_ENGINE_AUTO, "delay_us=20000", 2);
    struct run rn = { .n = 40, .seed = 8, .cancel_early = true };
    double t0 = qn_now_s();
    run_requests(io, &rn, what);
    CHECK(rn.cancelled >= 20 && rn.failed == rn.cancelled, "%s: cancel: %d cancelled, %d failed", what, rn.cancelled,
          rn.failed);
    CHECK(qn_now_s() - t0 < 10, "%s: cancel took %.1f s", what, qn_now_s() - t0);
    qn_io_close(&io);

    io = open_io(mode, QN_IO_ENGINE_AUTO, "delay_us=300000", 2);
    uint8_t buf[4096];
    struct qn_io_req rq = { 0, 0, 8192, 4096, buf, 3 };
    struct qn_io_cqe cq;
    CHECK(qn_io_submit(io, &rq, 1) == 0, "submit");
    t0 = qn_now_s();
    int rc = qn_io_wait(io, &cq, 1, 1, 20 * 1000000ll);
    double dt = qn_now_s() - t0;
    CHECK(rc == -ETIMEDOUT && dt < 0.25, "%s: wait(20 ms) returned %d after %.3f s", what, rc, dt);
    CHECK(qn_io_wait(io, &cq, 1, 0, 0) == 0, "%s: poll returns 0 while in flight", what);
    CHECK(qn_io_wait(io, &cq, 1, 1, WAIT_NS) == 1 && cq.status == 0 && !memcmp(buf, g_file + 8192, 4096),
          "%s: late completion", what);
    for (int i = 0; i < 8; i++) {                       /* leave these in flight and close */
        static uint8_t many[8][65536];
        rq = (struct qn_io_req){ 0, 0, (uint64_t)i * 65536, 65536, many[i], (uint64_t)i };
        CHECK(qn_io_submit(io, &rq, 1) == 0, "submit");
    }
    t0 = qn_now_s();
    qn_io_close(&io);
    CHECK(qn_now_s() - t0 < 5, "%s: close took %.1f s", what, qn_now_s() - t0);
    printf("%-22s ok: %d of 40 cancelled, timeout after %.0f ms\n", what, rn.cancelled, dt * 1e3);
}

static bool direct_works(void)
{
    struct qn_io_params p = tio_params(QN_IO_DIRECT, QN_IO_ENGINE_AUTO);
    qn_io *io;
    bool ok = qn_io_open(&io, &p) == 0 && qn_io_add_file(io, g_path) == 0;
    qn_io_close(&io);
    return ok;
}

int main(int argc, char **argv)
{
    CHECK(argc == 2, "usage: test_io_faults SCRATCH_DIR");
    alarm(150);                                   /* a deadlock fails the test instead of hanging CI */
    unsetenv("QNEXT_IO_FAULTS");
    tio_scratch_dir(argv[1]);
    char path[4096];
    uint8_t *file = tio_make_file(argv[1], "io-faults", FILE_SIZE, 0xfa17, path, sizeof path);
    g_path = path;
    g_file = file;
    g_direct_ok = direct_works();
    if (!g_direct_ok) fprintf(stderr, "WARNING: O_DIRECT unavailable on %s: direct cases skipped\n", argv[1]);
    test_parse();
    test_env();
    test_noisy(QN_IO_BUFFERED, QN_IO_ENGINE_POOL, "noisy buffered/pool");
    test_eio(QN_IO_BUFFERED, QN_IO_ENGINE_POOL, "eio buffered/pool");
    test_truncated(argv[1], QN_IO_BUFFERED, "truncated buffered");
    test_cancel_timeout(QN_IO_BUFFERED, "cancel buffered");
    if (g_direct_ok) {
        test_noisy(QN_IO_DIRECT, QN_IO_ENGINE_URING, "noisy direct/uring");
        test_noisy(QN_IO_DIRECT, QN_IO_ENGINE_POOL, "noisy direct/pool");
        test_eio(QN_IO_DIRECT, QN_IO_ENGINE_URING, "eio direct/uring");
        test_truncated(argv[1], QN_IO_DIRECT, "truncated direct");
        test_cancel_timeout(QN_IO_DIRECT, "cancel direct");
    }
    unlink(path);
    free(file);
    printf("test_io_faults: OK\n");
    return 0;
}
