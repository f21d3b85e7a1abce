/* test_host_read.c — the GPU reading system memory (QN_MEM_HOST, the host expert tier of issue #5): random
 * words in a host buffer are copied into device memory by vkCmdCopyBuffer on the compute queue, by the copy
 * kernel (copy.comp: the shaders' own reads over PCIe, what the expert kernels do in --experts host) and by a
 * transfer-queue copy, and every copy is compared word for word. With --bench [MiB] (default 1024) each is
 * timed (minimum of --iters runs, default 5; GPU timestamps, wall time on the transfer queue) for the
 * uncached and the host-cached memory type (QNEXT_HOST_MEM): the PCIe read ceiling for --experts host, i.e.
 * expert bytes per token / this GB/s is the best decode time the host tier can reach.
 * The import probe (issue #5's page-cache path): a file mapped (a) MAP_SHARED PROT_READ of an O_RDONLY fd,
 * (b) MAP_SHARED PROT_READ|WRITE of an O_RDWR fd (never written), (c) MAP_PRIVATE PROT_READ, and (d) anonymous
 * memory holding the same bytes (the control) is imported with VK_EXT_external_memory_host (HOST_ALLOCATION, and
 * HOST_MAPPED_FOREIGN_MEMORY at the smallest size), read by the copy kernel and compared word for word with
 * pread() of the file. Without arguments it probes a temporary file of random words (a failed control import or
 * any differing word fails); `--mmap FILE [--sizes MiB,..] [--ways abcd] [--bench]` probes FILE (e.g. the 80B GGUF, in the
 * page cache) and times the import (the driver pinning the pages) and the GPU's reads out of the mapping;
 * RssAnon / RssFile before and after tell whether the import pinned the page cache or made a private copy.
 * `--mmap FILE --matrix`: which imports the driver takes at all — sources (aligned_alloc, anonymous mmap, the file
 * mapped MAP_SHARED read-only, the same with MAP_POPULATE) x sizes 4 KiB .. 256 MiB x every memory type the pointer
 * allows x concurrent / exclusive sharing x plain / dedicated allocation, one line per source and size. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "qn_time.h"

enum { COPY_CMD, COPY_KERNEL, COPY_XFER, NWAYS };
static const char *const way_name[NWAYS] = { "vkCmdCopyBuffer (compute queue)", "copy kernel (shader reads)",
                                             "vkCmdCopyBuffer (transfer queue)" };

/* Record `iters` + 1 copies of n bytes src -> dst (the first a warm-up), run them; the fastest in ms. */
static double copy_runs(struct qn_h *h, qn_cmd *c, int way, const qn_buf *src, const qn_buf *dst, uint64_t n,
                        int iters)
{
    qn_pipe *p = way == COPY_KERNEL ? qn_h_pipe(h, QN_K_COPY, 256) : NULL;
    double best = NAN;
    for (int i = 0; i <= iters; i++) {
        qn_h_ok(h, qn_cmd_begin(c), "begin");
        if (way != COPY_XFER) qn_cmd_mark(c, "copy");
        qn_pc_copy pc = { .n = (uint32_t)(n / 16) };
        if (way == COPY_KERNEL) qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND(src), QN_BIND(dst)), &pc, sizeof pc, 4096);
        else qn_cmd_copy(c, src, 0, dst, 0, n);
        qn_h_ok(h, qn_cmd_end(c), "end");
        double t0 = qn_now_s();
        qn_h_ok(h, qn_cmd_run(c), "run");
        double ms = way == COPY_XFER ? (qn_now_s() - t0) * 1e3 : qn_cmd_region(c, 0, NULL);
        if (i > 0 && (isnan(best) || ms < best)) best = ms;
    }
    return best;
}

static void check_words(struct qn_h *h, const char *what, const qn_buf *dst, const uint32_t *want, uint64_t n)
{
    uint32_t *got = qn_h_alloc_bytes(h, (size_t)n);
    qn_h_ok(h, qn_buf_read(h->v, dst, 0, got, n), "read back");
    uint64_t bad = 0, first = 0;
    for (uint64_t i = 0; i < n / 4; i++)
        if (got[i] != want[i] && !bad++) first = i;
    h->checks++;
    if (bad) h->failures++;
    printf("%-4s %s: %llu bytes, %llu words differ%s", bad ? "FAIL" : "ok", what, (unsigned long long)n,
           (unsigned long long)bad, bad ? " (first at word " : "\n");
    if (bad) printf("%llu)\n", (unsigned long long)first);
}

static void run_memtype(struct qn_h *h, bool cached, uint64_t n, int iters, bool bench)
{
    setenv("QNEXT_HOST_MEM", cached ? "cached" : "uncached", 1);
    qn_buf *src = NULL, *dst = qn_h_buffer(h, "dst", (size_t)n);
    qn_h_ok(h, qn_buf_create(h->v, QN_MEM_HOST, n, "host src", &src), "host buffer");
    uint32_t *words = qn_h_alloc_bytes(h, (size_t)n);
    for (uint64_t i = 0; i < n / 4; i++) words[i] = (uint32_t)qn_rng_u64(&h->rng) | 1u;   /* never zero */
    qn_h_ok(h, qn_buf_write(h->v, src, 0, words, n), "fill host buffer");
    VkMemoryPropertyFlags f = qn_vk_caps(h->v)->types[src->type].flags;
    printf("host buffer: memory type %u (%s%s), heap %u, %s\n", src->type,
           f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT ? "device-local, " : "",
           f & VK_MEMORY_PROPERTY_HOST_CACHED_BIT ? "host-cached" : "uncached", src->heap, cached ? "asked cached" :
           "asked uncached");
    qn_cmd *x = NULL;
    qn_h_ok(h, qn_cmd_create_on(h->v, QN_QUEUE_TRANSFER, &x), "transfer command buffer");
    for (int way = 0; way < NWAYS; way++) {
        qn_h_ok(h, qn_buf_fill(h->v, dst, 0, n, 0), "clear dst");
        double ms = copy_runs(h, way == COPY_XFER ? x : h->cmd, way, src, dst, n, bench ? iters : 0);
        char what[160];
        snprintf(what, sizeof what, "host -> device, %s", way_name[way]);
        check_words(h, what, dst, words, n);
        if (bench)
            printf("     -> %.3f ms for %.0f MiB: %.2f GB/s read from %s system memory\n", ms, n / 1048576.0,
                   n / (ms * 1e6), f & VK_MEMORY_PROPERTY_HOST_CACHED_BIT ? "cached" : "uncached");
    }
    qn_cmd_destroy(&x);
    qn_buf_destroy(h->v, &src);
    qn_h_reset(h);
}

/* ---- importing a mapping of a file ------------------------------------------------------------------- */

enum { WAY_A, WAY_B, WAY_C, WAY_ANON, NWAYS_MAP };
static const char *const map_name[NWAYS_MAP] = { "(a) MAP_SHARED PROT_READ, O_RDONLY", "(b) MAP_SHARED PROT_READ|WRITE, O_RDWR",
                                             "(c) MAP_PRIVATE PROT_READ, O_RDONLY", "(d) anonymous copy (control)" };
#define MAX_CHUNKS 512
#define VERIFY_BYTES (64ull << 20)

struct fmap {
    void *resv;   /* the reserved range (MAP_FAILED when none) */
    size_t len;
    char *at;     /* the mapping, aligned to the import alignment */
    int fd;
};

static void fmap_close(struct fmap *m)
{
    if (m->resv != MAP_FAILED) munmap(m->resv, m->len);
    if (m->fd >= 0) close(m->fd);
    m->resv = MAP_FAILED;
    m->fd = -1;
}

/* Map bytes [0, n) of `path` the way `how` says at an address aligned to `al`; false (errno printed) on failure. */
static bool fmap_open(struct fmap *m, const char *path, int how, uint64_t n, uint64_t al)
{
    m->fd = -1;
    m->len = (size_t)(n + al);
    m->resv = mmap(NULL, m->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m->resv == MAP_FAILED) { perror("reserving address space"); return false; }
    m->at = (char *)(((uintptr_t)m->resv + al - 1) & ~(uintptr_t)(al - 1));
    m->fd = open(path, how == WAY_B ? O_RDWR : O_RDONLY);
    if (m->fd < 0) { fprintf(stderr, "%s: %s: ", map_name[how], path); perror("open"); fmap_close(m); return false; }
    void *p;
    if (how == WAY_ANON) {
        p = mmap(m->at, (size_t)n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        for (uint64_t o = 0; p != MAP_FAILED && o < n;) {
            ssize_t r = pread(m->fd, m->at + o, (size_t)(n - o), (off_t)o);
            if (r <= 0) { perror("pread"); fmap_close(m); return false; }
            o += (uint64_t)r;
        }
    } else {
        int prot = how == WAY_B ? PROT_READ | PROT_WRITE : PROT_READ;
        p = mmap(m->at, (size_t)n, prot, (how == WAY_C ? MAP_PRIVATE : MAP_SHARED) | MAP_FIXED, m->fd, 0);
    }
    if (p == MAP_FAILED) { fprintf(stderr, "%s: ", map_name[how]); perror("mmap"); fmap_close(m); return false; }
    return true;
}

/* RssAnon and RssFile of this process in MiB (from /proc/self/status; -1 where unknown). */
static void rss_mib(double *anon, double *file)
{
    *anon = *file = -1;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "RssAnon: %ld", &kb) == 1) *anon = kb / 1024.0;
        if (sscanf(line, "RssFile: %ld", &kb) == 1) *file = kb / 1024.0;
    }
    if (f) fclose(f);
}

/* Import [at, at + n) in chunks of at most `chunk` bytes; the wall ms, or -1 (message printed) if any fails. */
static double import_chunks(struct qn_h *h, char *at, uint64_t n, uint64_t chunk, bool foreign, qn_buf **b, int *nb)
{
    double t0 = qn_now_s();
    *nb = 0;
    for (uint64_t o = 0; o < n && *nb < MAX_CHUNKS; o += chunk) {
        uint64_t m = n - o < chunk ? n - o : chunk;
        int rc = qn_buf_import_host(h->v, at + o, m, foreign, "imported mapping", &b[*nb]);
        if (rc < 0) { printf("     import refused at byte %llu: %s\n", (unsigned long long)o, qn_errmsg()); return -1; }
        (*nb)++;
    }
    if ((uint64_t)*nb * chunk < n) { printf("     more than %d chunks: not probed\n", MAX_CHUNKS); return -1; }
    return (qn_now_s() - t0) * 1e3;
}

/* Copy the first bytes of the import into VRAM with the copy kernel and compare them with pread() of the file. */
static void verify_import(struct qn_h *h, const char *what, qn_buf *src, int fd, uint64_t off, qn_buf *dst)
{
    uint64_t n = src->size < VERIFY_BYTES ? src->size : VERIFY_BYTES;
    uint32_t *want = qn_h_alloc_bytes(h, (size_t)n);
    if (pread(fd, want, (size_t)n, (off_t)off) != (ssize_t)n) { perror("pread"); h->failures++; return; }
    qn_h_ok(h, qn_buf_fill(h->v, dst, 0, n, 0), "clear dst");
    copy_runs(h, h->cmd, COPY_KERNEL, src, dst, n, 0);
    check_words(h, what, dst, want, n);
}

/* GB/s of the GPU reading every chunk of an import: copy kernel over all chunks (the best of `iters` each), and
 * vkCmdCopyBuffer on the compute and the transfer queue for the first. */
static void bench_import(struct qn_h *h, qn_buf **b, int nb, qn_buf *dst, int iters)
{
    double ms = 0, bytes = 0;
    for (int i = 0; i < nb; i++) {
        ms += copy_runs(h, h->cmd, COPY_KERNEL, b[i], dst, b[i]->size, iters);
        bytes += (double)b[i]->size;
    }
    printf("     copy kernel reads the import: %.3f ms for %.0f MiB: %.2f GB/s\n", ms, bytes / 1048576.0, bytes / (ms * 1e6));
    qn_cmd *x = NULL;
    qn_h_ok(h, qn_cmd_create_on(h->v, QN_QUEUE_TRANSFER, &x), "transfer command buffer");
    for (int way = COPY_CMD; way < NWAYS; way += 2) {
        double m = copy_runs(h, way == COPY_XFER ? x : h->cmd, way, b[0], dst, b[0]->size, iters);
        printf("     %s, first chunk: %.2f GB/s\n", way_name[way], b[0]->size / (m * 1e6));
    }
    qn_cmd_destroy(&x);
}

struct probe {
    const char *path;
    uint64_t chunk, al;
    qn_buf *dst;
    bool bench;
    const char *ways;   /* letters of the mapping ways to probe ("abcd") */
    int iters, ok[NWAYS_MAP];
};

/* A second import of pages already imported (from the second page on, one chunk or less): can two buffers share
 * pages, as imports of neighbouring tensors would at their shared boundary page? */
static void overlap_import(struct qn_h *h, struct probe *pr, struct fmap *m, uint64_t n)
{
    if (n < 2 * pr->al) return;
    uint64_t len = n - pr->al < pr->chunk ? n - pr->al : pr->chunk;
    qn_buf *b = NULL;
    int rc = qn_buf_import_host(h->v, m->at + pr->al, len, false, "overlapping import", &b);
    if (rc < 0) printf("     overlapping import refused: %s\n", qn_errmsg());
    else verify_import(h, "overlapping import (pages imported twice)", b, m->fd, pr->al, pr->dst);
    qn_buf_destroy(h->v, &b);
}

/* One mapping way x handle type x size: map, import (timed, with the RSS before/after), verify, bench, release. */
static void probe_one(struct qn_h *h, struct probe *pr, int how, bool foreign, uint64_t n)
{
    struct fmap m;
    printf("%s, %s, %.0f MiB:\n", map_name[how], foreign ? "HOST_MAPPED_FOREIGN_MEMORY" : "HOST_ALLOCATION",
           n / 1048576.0);
    if (!fmap_open(&m, pr->path, how, n, pr->al)) return;
    qn_buf *b[MAX_CHUNKS];
    int nb = 0;
    double a0, f0, a1, f1;
    rss_mib(&a0, &f0);
    double ms = import_chunks(h, m.at, n, pr->chunk, foreign, b, &nb);
    rss_mib(&a1, &f1);
    if (ms >= 0) {
        printf("     imported in %d chunk(s), %.1f ms (%.2f GB/s); memory type %u, heap %u; RssAnon %+.0f MiB, "
               "RssFile %+.0f MiB\n", nb, ms, n / (ms * 1e6), b[0]->type, b[0]->heap, a1 - a0, f1 - f0);
        char what[160];
        snprintf(what, sizeof what, "import %s %s", map_name[how], foreign ? "foreign" : "host allocation");
        int before = h->failures;
        verify_import(h, what, b[0], m.fd, 0, pr->dst);
        if (h->failures == before) pr->ok[how]++;
        overlap_import(h, pr, &m, n);
        if (pr->bench) bench_import(h, b, nb, pr->dst, pr->iters);
    }
    for (int i = nb - 1; i >= 0; i--) qn_buf_destroy(h->v, &b[i]);
    fmap_close(&m);
    qn_h_reset(h);
}

static void probe_file(struct qn_h *h, struct probe *pr, const uint64_t *sizes, int ns)
{
    uint64_t range = qn_vk_caps(h->v)->max_storage_range;
    pr->chunk = (range < (1ull << 30) ? range : 1ull << 30) / pr->al * pr->al;
    printf("import probe of %s: VK_EXT_external_memory_host, minImportedHostPointerAlignment %llu, chunks of "
           "%.0f MiB\n", pr->path, (unsigned long long)pr->al, pr->chunk / 1048576.0);
    for (int how = 0; how < NWAYS_MAP; how++)
        for (int s = 0; s < ns && strchr(pr->ways, 'a' + how); s++) {
            uint64_t n = sizes[s] / pr->al * pr->al;
            if (how == WAY_ANON && n > (1ull << 30)) continue;   /* the control needs that much RAM */
            pr->dst = qn_h_buffer(h, "dst", (size_t)(n < pr->chunk ? n : pr->chunk));
            probe_one(h, pr, how, false, n);
            if (s == 0) {
                pr->dst = qn_h_buffer(h, "dst", (size_t)(n < pr->chunk ? n : pr->chunk));
                probe_one(h, pr, how, true, n);
            }
        }
}

/* ---- the import matrix (--matrix) ------------------------------------------------------------------- */

enum { SRC_MALLOC, SRC_ANON, SRC_FILE, SRC_FILE_POP, NSRC };
static const char *const src_name[NSRC] = { "aligned_alloc", "anon mmap", "file MAP_SHARED RO", "file +POPULATE" };

static void *matrix_src(int src, int fd, uint64_t n, uint64_t al)
{
    void *p = NULL;
    if (src == SRC_MALLOC && (p = aligned_alloc((size_t)al, (size_t)n))) memset(p, 1, (size_t)n);
    if (src == SRC_ANON) {
        p = mmap(NULL, (size_t)n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) memset(p, 1, (size_t)n);
    }
    if (src >= SRC_FILE) p = mmap(NULL, (size_t)n, PROT_READ, MAP_SHARED | (src == SRC_FILE_POP ? MAP_POPULATE : 0), fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void matrix_line(struct qn_h *h, int src, void *p, uint64_t n)
{
    uint32_t bits = qn_buf_import_types(h->v, p, false);
    char line[1024], first[400] = "";
    int at = snprintf(line, sizeof line, "%-18s %8.0f KiB: types 0x%x", src_name[src], n / 1024.0, bits);
    for (int t = -1; t < (int)qn_vk_caps(h->v)->ntypes; t++) {
        if (t >= 0 && !(bits & (1u << t))) continue;
        VkMemoryPropertyFlags f = t >= 0 ? qn_vk_caps(h->v)->types[t].flags : 0;
        at += snprintf(line + at, sizeof line - (size_t)at, " | %s%d%s%s%s:", t < 0 ? "auto" : "t", t < 0 ? 0 : t,
                       f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT ? " DL" : "",
                       f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT ? " HC" : "",
                       f & VK_MEMORY_PROPERTY_HOST_CACHED_BIT ? " CA" : "");
        for (int k = 0; k < 4 && at < (int)sizeof line - 16; k++) {
            struct qn_import_opts o = { .mem_type = t, .exclusive = k & 1, .dedicated = k >> 1 };
            qn_buf *b = NULL;
            int rc = qn_buf_import_host_ex(h->v, p, n, &o, "matrix", &b);
            if (rc < 0 && !first[0]) snprintf(first, sizeof first, "%s", qn_errmsg());
            at += snprintf(line + at, sizeof line - (size_t)at, " %s%s=%s", k & 1 ? "E" : "C", k >> 1 ? "D" : "",
                           rc >= 0 ? "ok" : rc == -ENOMEM ? "oom" : "no");
            qn_buf_destroy(h->v, &b);
        }
        if (t < 0 && !bits) break;
    }
    printf("%s\n", line);
    if (first[0]) printf("     first failure: %s\n", first);
}

static void import_matrix(struct qn_h *h, const char *path)
{
    uint64_t al = qn_buf_import_align(h->v), sizes[5] = { 4096, 65536, 2u << 20, 64u << 20, 256u << 20 };
    struct rlimit rl;
    getrlimit(RLIMIT_MEMLOCK, &rl);
    printf("import matrix: minImportedHostPointerAlignment %llu, RLIMIT_MEMLOCK %lld / %lld bytes, page %ld; C/E = "
           "concurrent / exclusive sharing, D = dedicated allocation\n", (unsigned long long)al,
           (long long)rl.rlim_cur, (long long)rl.rlim_max, sysconf(_SC_PAGESIZE));
    int fd = open(path, O_RDONLY);
    if (fd < 0 || !al) { perror(path); h->failures++; return; }
    uint64_t fsize = (uint64_t)lseek(fd, 0, SEEK_END);
    for (int pass = 0; pass < 2; pass++)   /* then with RLIMIT_MEMLOCK raised (a driver may account its pins) */
        for (int src = 0; src < NSRC; src++)
            for (int i = pass ? 2 : 0; i < 5; i++) {
                if (pass && src == 0 && i == 2) {
                    struct rlimit inf = { RLIM_INFINITY, RLIM_INFINITY };
                    int r = setrlimit(RLIMIT_MEMLOCK, &inf);
                    getrlimit(RLIMIT_MEMLOCK, &rl);
                    if (src == 0) printf("RLIMIT_MEMLOCK raised to unlimited: %s (now %lld)\n", r ? "refused" : "ok",
                                         (long long)rl.rlim_cur);
                }
                uint64_t n = sizes[i] < fsize ? sizes[i] / al * al : fsize / al * al;
                void *p = n ? matrix_src(src, fd, n, al) : NULL;
                if (!p) { printf("%s %llu bytes: no memory\n", src_name[src], (unsigned long long)n); continue; }
                matrix_line(h, src, p, n);
                if (src == SRC_MALLOC) free(p);
                else munmap(p, (size_t)n);
            }
    close(fd);
}

/* Without --mmap: a temporary file of random words (not a multiple of the chunk size), every way probed. */
static void probe_selftest(struct qn_h *h)
{
    struct probe pr = { .iters = 1, .ways = "abcd", .al = qn_buf_import_align(h->v) };
    if (!pr.al) { printf("SKIP import probe: the device lacks VK_EXT_external_memory_host\n"); return; }
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/qn_import_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    uint64_t n = (8ull << 20) + 3 * pr.al;
    uint32_t *words = qn_h_alloc_bytes(h, (size_t)n);
    for (uint64_t i = 0; i < n / 4; i++) words[i] = (uint32_t)qn_rng_u64(&h->rng) | 1u;
    if (fd < 0 || write(fd, words, (size_t)n) != (ssize_t)n) {
        perror(path);
        h->failures++;
    } else {
        pr.path = path;
        probe_file(h, &pr, &n, 1);
        if (!pr.ok[WAY_ANON]) { printf("FAIL the control import (anonymous memory) did not work\n"); h->failures++; }
    }
    if (fd >= 0) { close(fd); unlink(path); }
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "host_read", argc, argv);
    bool bench = false;
    long mib = 8, iters = 5;
    const char *file = NULL, *sizes_arg = "256,1024,4096,8192", *ways = "abcd";
    bool matrix = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bench")) {
            bench = true;
            mib = i + 1 < argc && argv[i + 1][0] != '-' ? atol(argv[++i]) : 1024;
        } else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atol(argv[++i]);
        else if (!strcmp(argv[i], "--mmap") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) sizes_arg = argv[++i];
        else if (!strcmp(argv[i], "--ways") && i + 1 < argc) ways = argv[++i];
        else if (!strcmp(argv[i], "--matrix")) matrix = true;
    }
    if (file && matrix) {
        import_matrix(&h, file);
        return qn_h_close(&h);
    }
    if (file) {   /* the import probe of a given file only */
        struct probe pr = { .path = file, .bench = bench, .ways = ways, .iters = (int)iters,
                            .al = qn_buf_import_align(h.v) };
        uint64_t sizes[16], fsize = 0;
        int ns = 0;
        int fd = open(file, O_RDONLY);
        if (fd >= 0) { fsize = (uint64_t)lseek(fd, 0, SEEK_END); close(fd); }
        for (const char *p = sizes_arg; *p && ns < 16; p += strspn(p, ","))
            sizes[ns++] = (uint64_t)strtoull(p, (char **)&p, 10) << 20;
        for (int i = 0; i < ns; i++) sizes[i] = sizes[i] < fsize ? sizes[i] : fsize;
        if (!pr.al) printf("SKIP import probe: the device lacks VK_EXT_external_memory_host\n");
        else if (!fsize) { perror(file); h.failures++; }
        else probe_file(&h, &pr, sizes, ns);
        return qn_h_close(&h);
    }
    uint64_t n = (uint64_t)(mib > 0 ? mib : 8) << 20, range = qn_vk_caps(h.v)->max_storage_range & ~(uint64_t)15;
    if (n + 64 > range) n = range - 64;
    n += 48;   /* not a power of two: the kernel's grid-stride tail runs too */
    run_memtype(&h, false, n, (int)iters, bench);
    run_memtype(&h, true, n, (int)iters, bench);
    probe_selftest(&h);
    return qn_h_close(&h);
}
