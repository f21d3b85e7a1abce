/* test_host_read.c — the GPU reading system memory (QN_MEM_HOST, the host expert tier of issue #5): random
 * words in a host buffer are copied into device memory by vkCmdCopyBuffer on the compute queue, by the copy
 * kernel (copy.comp: the shaders' own reads over PCIe, what the expert kernels do in --experts host) and by a
 * transfer-queue copy, and every copy is compared word for word. With --bench [MiB] (default 1024) each is
 * timed (minimum of --iters runs, default 5; GPU timestamps, wall time on the transfer queue) for the
 * uncached and the host-cached memory type (QNEXT_HOST_MEM): the PCIe read ceiling for --experts host, i.e.
 * expert bytes per token / this GB/s is the best decode time the host tier can reach. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "host_read", argc, argv);
    bool bench = false;
    long mib = 8, iters = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bench")) {
            bench = true;
            mib = i + 1 < argc && argv[i + 1][0] != '-' ? atol(argv[++i]) : 1024;
        } else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atol(argv[++i]);
    }
    uint64_t n = (uint64_t)(mib > 0 ? mib : 8) << 20, range = qn_vk_caps(h.v)->max_storage_range & ~(uint64_t)15;
    if (n + 64 > range) n = range - 64;
    n += 48;   /* not a power of two: the kernel's grid-stride tail runs too */
    run_memtype(&h, false, n, (int)iters, bench);
    run_memtype(&h, true, n, (int)iters, bench);
    return qn_h_close(&h);
}
