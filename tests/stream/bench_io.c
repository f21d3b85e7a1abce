/* bench_io.c — expert read throughput of the IO engine, direct vs buffered, from a cold page cache.
 *
 * usage: bench_io DIR [FILE_MIB=1024] [READ_KIB=1900] [BATCH=10] [QD=16] [CHUNK_KIB=1024] [ROUNDS=3]
 * Writes a FILE_MIB file in DIR (on the filesystem to measure), then for each mode drops the file's
 * pages from the page cache and reads the whole file once in expert-sized READ_KIB requests in random
 * order, BATCH requests at a time (one layer's misses: submit BATCH, wait for all), and reports GB/s
 * (1e9 bytes/s, wall time of the whole pass) and the engine's own busy-time figure; ROUNDS alternating
 * direct/buffered passes. On a VM the first pass after writing can be served from the host's cache, so
 * look at the later rounds. Not a test. */
#include "qn_time.h"
#include "io_util.h"
#include "runtime/stream.h"

#include <time.h>

static long arg(int argc, char **argv, int i, long def) { return argc > i ? atol(argv[i]) : def; }

static void pass(const char *path, const uint8_t *data, enum qn_io_mode mode, size_t n_reads, size_t read_b,
                 int batch, int qd, uint32_t chunk)
{
    struct qn_io_params p = tio_params(mode, QN_IO_ENGINE_AUTO);
    p.queue_depth = qd;
    p.chunk_bytes = chunk;
    qn_io *io = tio_open(&p, path, qn_io_mode_name(mode), NULL);
    size_t *order = malloc(n_reads * sizeof *order);
    for (size_t i = 0; i < n_reads; i++) order[i] = i;
    qn_rng r;
    qn_rng_seed(&r, 31);
    for (size_t i = n_reads - 1; i > 0; i--) {
        size_t j = (size_t)(qn_rng_u64(&r) % (i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint8_t *buf = aligned_alloc(4096, (size_t)batch * ((read_b + 4095) / 4096 * 4096));
    tio_drop_cache(path);
    double t0 = qn_now_s();
    for (size_t i = 0; i < n_reads; i += (size_t)batch) {
        int n = (int)(n_reads - i < (size_t)batch ? n_reads - i : (size_t)batch);
        struct qn_io_req rq[256];
        for (int j = 0; j < n; j++)
            rq[j] = (struct qn_io_req){ 0, 0, order[i + j] * read_b, read_b, buf + (size_t)j * ((read_b + 4095) / 4096 * 4096), (uint64_t)j };
        CHECK(qn_io_submit(io, rq, n) == 0, "submit");
        struct qn_io_cqe cq[256];
        for (int got = 0; got < n;) {
            int k = qn_io_wait(io, cq, 256, n - got, 60ll * 1000000000ll);
            CHECK(k > 0, "wait");
            for (int j = 0; j < k; j++) CHECK(cq[j].status == 0, "read: %s", cq[j].msg);
            got += k;
        }
        if (i == 0) CHECK(!memcmp(buf, data + order[0] * read_b, read_b), "bytes");   /* spot check */
    }
    double dt = qn_now_s() - t0;
    struct qn_io_stats st;
    qn_io_get_stats(io, &st);
    printf("%-8s %-9s %zu reads of %.0f KiB, batch %d, qd %d, chunk %u KiB: %.3f s, %.2f GB/s (busy %.2f GB/s), "
           "mean latency %.2f ms, %.1f MiB copied\n", qn_io_mode_name(mode), qn_io_engine_name(io), n_reads,
           (double)read_b / 1024.0, batch, qd, chunk >> 10, dt, (double)st.bytes / dt / 1e9, qn_io_stats_gbps(&st),
           (double)st.lat_ns_sum / (double)st.requests / 1e6, (double)st.bytes_copied / 1048576.0);
    free(buf);
    free(order);
    qn_io_close(&io);
}

int main(int argc, char **argv)
{
    CHECK(argc >= 2, "usage: bench_io DIR [FILE_MIB=1024] [READ_KIB=1900] [BATCH=10] [QD=16] [CHUNK_KIB=1024] [ROUNDS=3]");
    size_t file_b = (size_t)arg(argc, argv, 2, 1024) << 20, read_b = (size_t)arg(argc, argv, 3, 1900) << 10;
    int batch = (int)arg(argc, argv, 4, 10), qd = (int)arg(argc, argv, 5, 16);
    uint32_t chunk = (uint32_t)arg(argc, argv, 6, 1024) << 10;
    int rounds = (int)arg(argc, argv, 7, 3);
    CHECK(batch >= 1 && batch <= 256 && read_b > 0 && file_b >= read_b, "bad arguments");
    tio_scratch_dir(argv[1]);
    char path[4096];
    double t0 = qn_now_s();
    uint8_t *data = tio_make_file(argv[1], "bench-io", file_b, 0xbe4c, path, sizeof path);
    printf("file %s: %.0f MiB written in %.2f s\n", path, (double)file_b / 1048576.0, qn_now_s() - t0);
    size_t n_reads = file_b / read_b;
    for (int i = 0; i < rounds; i++) {
        pass(path, data, QN_IO_DIRECT, n_reads, read_b, batch, qd, chunk);
        pass(path, data, QN_IO_BUFFERED, n_reads, read_b, batch, qd, chunk);
    }
    unlink(path);
    free(data);
    return 0;
}
