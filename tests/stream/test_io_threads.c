/* test_io_threads.c — the buffered reader's thread count (runtime/stream.c qn_io_default_threads): the default is
 * the online CPUs clamped to [4, 32]; QNEXT_IO_THREADS=N (1..256) overrides it and bad values fall back to the
 * default; qn_io_default_params uses it. Then one 24 MiB file of random bytes is read through the buffered pool
 * with 1, 4, the default and 16 threads — 96 requests of random offsets and lengths (1 B .. 1 MiB, chunked into
 * 64 KiB backend reads), 48 in flight — and every byte must equal the file's; the GB/s of each is printed (from
 * the page cache; informative, no bound).
 * usage: test_io_threads SCRATCH_DIR */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_rng.h"
#include "qn_time.h"
#include "stream.h"
#include "tests/testutil.h"

#define FILE_BYTES (24u << 20)
#define NREQ 96
#define INFLIGHT 48

static int expected_default(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 4 ? 4 : n > 32 ? 32 : (int)n;
}

static void check_env(const char *value, int want)
{
    if (value) setenv("QNEXT_IO_THREADS", value, 1);
    else unsetenv("QNEXT_IO_THREADS");
    struct qn_io_params p;
    qn_io_default_params(&p);
    int got = qn_io_default_threads();
    CHECK(got == want && p.threads == want, "QNEXT_IO_THREADS=%s: %d threads (params %d), expected %d",
          value ? value : "(unset)", got, p.threads, want);
}

/* Read NREQ random ranges of the file with `threads` pool threads; returns the number of wrong bytes. */
static long read_with(const char *path, const unsigned char *data, int threads, double *gbps)
{
    struct qn_io_params p;
    qn_io_default_params(&p);
    p.mode = QN_IO_BUFFERED;
    p.threads = threads;
    p.queue_depth = 64;
    p.chunk_bytes = 64u << 10;
    p.no_env_faults = true;
    qn_io *io;
    if (qn_io_open(&io, &p)) DIE("qn_io_open with %d threads", threads);
    int f = qn_io_add_file(io, path);
    if (f < 0) DIE("adding %s", path);
    qn_rng rng;
    qn_rng_seed(&rng, (uint64_t)threads);
    unsigned char *buf = xmalloc((size_t)INFLIGHT << 20);
    uint64_t off[INFLIGHT], len[INFLIGHT], bytes = 0;
    long bad = 0;
    int sub = 0, done = 0, free_slot[INFLIGHT], nfree = INFLIGHT; /* a slot is reused only after its completion */
    for (int i = 0; i < INFLIGHT; i++) free_slot[i] = INFLIGHT - 1 - i;
    double t0 = qn_now_s();
    while (done < NREQ) {
        while (sub < NREQ && nfree > 0) {
            int s = free_slot[--nfree];
            len[s] = 1 + qn_rng_u64(&rng) % (1u << 20);
            off[s] = qn_rng_u64(&rng) % (FILE_BYTES - len[s] + 1);
            struct qn_io_req r = { .file = f, .offset = off[s], .length = len[s], .dst = buf + ((size_t)s << 20),
                                   .tag = (uint64_t)s };
            if (qn_io_submit(io, &r, 1)) DIE("submit");
            sub++;
        }
        struct qn_io_cqe c[INFLIGHT];
        int k = qn_io_wait(io, c, INFLIGHT, 1, 30ll * 1000000000ll);
        if (k < 0) DIE("wait");
        for (int i = 0; i < k; i++, done++) {
            int s = (int)c[i].tag;
            CHECK(c[i].status == 0, "request failed: %s", c[i].msg);
            bad += memcmp(buf + ((size_t)s << 20), data + off[s], len[s]) != 0;
            bytes += len[s];
            free_slot[nfree++] = s;
        }
    }
    double t = qn_now_s() - t0;
    *gbps = t > 0 ? (double)bytes / t / 1e9 : 0;
    qn_io_close(&io);
    free(buf);
    return bad;
}

int main(int argc, char **argv)
{
    qn_test_crash_report();
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    int def = expected_default();
    printf("online CPUs %ld -> default %d reader threads\n", sysconf(_SC_NPROCESSORS_ONLN), def);
    check_env(NULL, def);
    check_env("7", 7);
    check_env("1", 1);
    check_env("0", def);
    check_env("300", def);
    check_env("12abc", def);
    unsetenv("QNEXT_IO_THREADS");

    mkdir(argv[1], 0755);
    char path[4200];
    snprintf(path, sizeof path, "%s/io_threads.bin", argv[1]);
    unsigned char *data = xmalloc(FILE_BYTES);
    qn_rng rng;
    qn_rng_seed(&rng, 11);
    for (size_t i = 0; i < FILE_BYTES; i += 8) {
        uint64_t x = qn_rng_u64(&rng);
        memcpy(data + i, &x, 8);
    }
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, FILE_BYTES, fp) != FILE_BYTES || fclose(fp)) DIE("writing %s", path);
    int counts[4] = { 1, 4, def, 16 };
    for (int i = 0; i < 4; i++) {
        double gbps;
        long bad = read_with(path, data, counts[i], &gbps);
        CHECK(!bad, "%d threads: %ld of %d requests read other bytes than the file's", counts[i], bad, NREQ);
        printf("%2d threads: %d random requests, every byte right: %s, %.2f GB/s (page cache)\n", counts[i], NREQ,
               bad ? "NO" : "yes", gbps);
    }
    remove(path);
    free(data);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
