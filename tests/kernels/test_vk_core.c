/* test_vk_core.c — the Vulkan core's contracts: a recording submitted many times, timestamp regions,
 * bindings by range (how tensors larger than maxStorageBufferRange are split), the memory budget, the
 * pipeline cache on disk, pipeline identity and fallbacks, device selection errors, and record-time
 * argument checks (each must fail with a clear message and without any validation message). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "qn_log.h"

static int expect_err(struct qn_h *h, const char *what, int rc, const char *needle)
{
    bool ok = rc < 0 && strstr(qn_errmsg(), needle);
    h->checks++;
    if (!ok) h->failures++;
    printf("%-4s %s -> %s: %s\n", ok ? "ok" : "FAIL", what, qn_errname(rc), rc < 0 ? qn_errmsg() : "(no error)");
    return ok ? 0 : 1;
}

static void expect(struct qn_h *h, const char *what, bool cond)
{
    h->checks++;
    if (!cond) h->failures++;
    printf("%-4s %s\n", cond ? "ok" : "FAIL", what);
}

/* y += W x recorded once, submitted 5 times; W bound in two row ranges (offset + range). */
static void resubmit_and_ranges(struct qn_h *h)
{
    const uint32_t rows = 64, cols = 256, half = rows / 2;
    float *w_h, *x_h, *y_h;
    qn_buf *w = qn_h_input_f32(h, "W", (size_t)rows * cols, -1, 1, &w_h);
    qn_buf *x = qn_h_input_f32(h, "x", cols, -1, 1, &x_h);
    qn_buf *y = qn_h_input_f32(h, "y", rows, -1, 1, &y_h);
    qn_pipe *p = qn_h_pipe(h, QN_K_MATVEC_F32, 64, 2);
    qn_pc_matvec pc = { .rows = half, .cols = cols, .flags = QN_MATVEC_ACCUMULATE };
    uint64_t wbytes = (uint64_t)half * cols * 4, ybytes = half * 4;
    qn_cmd *c = h->cmd;
    qn_h_ok(h, qn_cmd_begin(c), "begin");
    qn_cmd_mark(c, "top half");
    qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND_RANGE(w, 0, wbytes), QN_BIND(x), QN_BIND_RANGE(y, 0, ybytes)), &pc,
                      sizeof pc, half / 2);
    qn_cmd_mark(c, "bottom half");
    qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND_RANGE(w, wbytes, 0), QN_BIND(x), QN_BIND_RANGE(y, ybytes, ybytes)), &pc,
                      sizeof pc, half / 2);
    qn_h_ok(h, qn_cmd_end(c), "end");
    for (int i = 0; i < 5; i++) qn_h_ok(h, qn_cmd_run(c), "run");
    float *ref = qn_h_alloc(h, rows);
    for (uint32_t r = 0; r < rows; r++) {
        double s = 0;
        for (uint32_t k = 0; k < cols; k++) s += (double)w_h[(size_t)r * cols + k] * x_h[k];
        ref[r] = (float)(y_h[r] + 5 * s);
    }
    qn_h_check(h, "record once, submit 5x (y += Wx), W bound in two ranges", y, ref, rows, 5e-5, 1e-5);
    const char *l0 = "", *l1 = "";
    double t0 = qn_cmd_region(c, 0, &l0), t1 = qn_cmd_region(c, 1, &l1);
    if (qn_vk_caps(h->v)->timestamps) {
        expect(h, "two timestamp regions with their labels and finite times",
               qn_cmd_nregions(c) == 2 && !strcmp(l0, "top half") && !strcmp(l1, "bottom half") && t0 >= 0 &&
               t1 >= 0 && isfinite(t0) && isfinite(t1));
        printf("     regions: %s %.3f ms, %s %.3f ms\n", l0, t0, l1, t1);
    }
    qn_h_reset(h);
}

static void record_errors(struct qn_h *h)
{
    qn_buf *a = qn_h_output(h, "a", 256), *y = qn_h_output(h, "y", 256);
    qn_pipe *p = qn_h_pipe(h, QN_K_ELTWISE, 64, QN_EW_ADD);
    qn_pc_eltwise pc = { .n = 256 };
    qn_cmd *c = h->cmd;
    qn_h_ok(h, qn_cmd_begin(c), "begin");
    expect_err(h, "binding past the end of a buffer", qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND_RANGE(a, 512, 1024),
               QN_BIND(a), QN_BIND(y)), &pc, sizeof pc, 4), "outside buffer 'a'");
    expect_err(h, "misaligned binding offset", qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND_RANGE(a, 4, 64), QN_BIND(a),
               QN_BIND(y)), &pc, sizeof pc, 4), "minStorageBufferOffsetAlignment");
    expect_err(h, "too few bindings", qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND(a), QN_BIND(y)), &pc, sizeof pc, 4),
               "has 3 bindings, 2 given");
    expect_err(h, "wrong push-constant size", qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND(a), QN_BIND(a), QN_BIND(y)),
               &pc, 8, 4), "push constants of 8 bytes");
    expect_err(h, "too many workgroups in x", qn_cmd_dispatch(c, p, QN_BINDS(QN_BIND(a), QN_BIND(a), QN_BIND(y)), &pc,
               sizeof pc, 0xffffffffu, 1, 1), "exceed the device");
    expect_err(h, "copy out of range", qn_cmd_copy(c, a, 0, y, 512, 1024), "outside buffer 'y'");
    expect_err(h, "end reports the first recording error", qn_cmd_end(c), "outside buffer 'a'");
    expect_err(h, "submit of a failed recording is refused", qn_cmd_submit(c), "nothing recorded");
    qn_h_reset(h);
}

static void budget(struct qn_h *h)
{
    struct qn_mem_stats s0;
    qn_mem_stats(h->v, &s0);
    qn_buf *b = NULL;
    qn_h_ok(h, qn_mem_set_budget(h->v, s0.device_used + (1u << 20)), "set budget");
    expect_err(h, "allocation over the budget is refused", qn_buf_create(h->v, QN_MEM_DEVICE, 2u << 20, "big", &b),
               "does not fit the device-local memory budget");
    qn_h_ok(h, qn_buf_create(h->v, QN_MEM_DEVICE, 512u << 10, "small", &b), "allocation within the budget");
    struct qn_mem_stats s1;
    qn_mem_stats(h->v, &s1);
    expect(h, "budget accounting counts the buffer", s1.device_used >= s0.device_used + (512u << 10) &&
           s1.nbuffers == s0.nbuffers + 1);
    qn_buf_destroy(h->v, &b);
    qn_h_ok(h, qn_mem_set_budget(h->v, s0.device_budget), "restore budget");
    expect_err(h, "zero-size buffer", qn_buf_create(h->v, QN_MEM_DEVICE, 0, "empty", &b), "size 0");
}

static void pipelines(struct qn_h *h)
{
    qn_pipe *a, *b, *c;
    qn_h_ok(h, qn_pipe_get(h->v, QN_K_ELTWISE, (uint32_t[]){ 128, QN_EW_MUL }, 2, &a), "pipe");
    qn_h_ok(h, qn_pipe_get(h->v, QN_K_ELTWISE, (uint32_t[]){ 128, QN_EW_MUL }, 2, &b), "pipe");
    qn_h_ok(h, qn_pipe_get(h->v, QN_K_ELTWISE, (uint32_t[]){ 128, QN_EW_ADD }, 2, &c), "pipe");
    expect(h, "same specialization -> same pipeline, other -> another", a == b && a != c);
    qn_h_ok(h, qn_pipe_get(h->v, QN_K_MATVEC_BF16, NULL, 0, &a), "pipe");
    expect(h, "defaults come from the SPIR-V (matvec: wg 128, 2 rows)", qn_pipe_spec(a, 0) == 128 &&
           qn_pipe_spec(a, 1) == 2);
    expect_err(h, "workgroup size 0", qn_pipe_get(h->v, QN_K_ELTWISE, (uint32_t[]){ 0 }, 1, &a), "workgroup size 0");
    expect_err(h, "workgroup size above the device limit",
               qn_pipe_get(h->v, QN_K_ELTWISE, (uint32_t[]){ 1u << 20 }, 1, &a), "is outside 1..");
    expect_err(h, "too many specialization constants",
               qn_pipe_get(h->v, QN_K_ELTWISE, (uint32_t[]){ 1, 2, 3 }, 3, &a), "has 2 specialization constants");
    expect_err(h, "kernel id out of range", qn_pipe_get(h->v, (enum qn_kernel)QN_K_COUNT, NULL, 0, &a),
               "not in the registry");
    /* compile threads: the same identity while pending, every handle there after _end */
    setenv("QNEXT_PIPE_THREADS", "4", 1);
    qn_h_ok(h, qn_pipe_async_begin(h->v), "async begin");
    unsetenv("QNEXT_PIPE_THREADS");
    qn_pipe *q[6];
    for (uint32_t i = 0; i < 6; i++)
        qn_h_ok(h, qn_pipe_get(h->v, QN_K_ELTWISE, (uint32_t[]){ 32u << (i % 3), QN_EW_ADD }, 2, &q[i]), "pipe");
    qn_h_ok(h, qn_pipe_async_end(h->v), "async end");
    bool same = true;
    for (uint32_t i = 0; i < 6; i++) same = same && q[i] == q[i % 3] && qn_pipe_vk(q[i]) != VK_NULL_HANDLE;
    expect(h, "pipelines from the compile threads: same specialization -> same pipeline, all created",
           same && q[0] != q[1] && q[1] != q[2]);
}

/* Size of the pipelines-*.bin file in dir (-1: none); *tmp counts leftover *.tmp files. */
static long cache_file_size(const char *dir, int *tmp)
{
    long n = -1;
    *tmp = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[512];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (strstr(e->d_name, ".tmp")) (*tmp)++;
        else if (!strncmp(e->d_name, "pipelines-", 10) && stat(path, &st) == 0) n = (long)st.st_size;
    }
    if (d) closedir(d);
    return n;
}

/* Warnings about the cache file being ignored, counted (the log is quiet otherwise). */
static int ignored_warnings;
static void count_ignored(void *user, enum qn_log_level level, const char *msg)
{
    (void)user;
    if (level == QN_LOG_WARN && strstr(msg, "pipeline cache") && strstr(msg, "ignored")) ignored_warnings++;
}

/* A second device: subgroups off (fallback kernels), a private pipeline-cache directory. */
static void second_device(struct qn_h *h)
{
    char dir[] = "/tmp/qnext-pcache-XXXXXX";
    if (!mkdtemp(dir)) { expect(h, "mkdtemp", false); return; }
    struct qn_vk_params p;
    qn_vk_default_params(&p);
    p.subgroups = 0;
    p.pipeline_cache = 1;
    p.cache_dir = dir;
    qn_vk *v = NULL;
    qn_pipe *mv;
    qn_h_ok(h, qn_vk_open(&v, &p), "second device");
    qn_h_ok(h, qn_pipe_get(v, QN_K_MATVEC_BF16, NULL, 0, &mv), "pipe");
    expect(h, "no subgroups -> matvec_bf16 falls back to matvec_bf16_nosg", qn_pipe_kernel(mv) == QN_K_MATVEC_BF16_NOSG);
    int tmp;
    expect(h, "no cache file before the first save", cache_file_size(dir, &tmp) < 0);
    qn_pipe_cache_save(v); /* what a session does once its pipelines exist: the file is there before exit */
    long saved = cache_file_size(dir, &tmp);
    expect(h, "pipeline cache file written by qn_pipe_cache_save, before close, no temp file left",
           saved >= 32 && tmp == 0); /* lavapipe (Mesa 22.3) writes the 32-byte header only */
    struct qn_pipe_stats st;
    qn_pipe_stats(v, &st);
    expect(h, "stats: 1 pipeline made, cache bytes = the file's", st.made == 1 && st.cache_bytes == (size_t)saved);
    qn_vk_close(&v);
    expect(h, "an unchanged cache is not rewritten on close", cache_file_size(dir, &tmp) == saved);
    qn_h_ok(h, qn_vk_open(&v, &p), "reopen");
    qn_pipe_stats(v, &st);
    expect(h, "the saved file loads on the next open", st.cache_bytes == (size_t)saved && st.made == 0);
    qn_vk_close(&v);
    /* truncate it, then corrupt it: each next open must warn, go on, and rewrite it once pipelines are made */
    const char *bad[2] = { "head -c 20 $f", "head -c 40 /dev/urandom" };
    for (int i = 0; i < 2; i++) {
        char cmdline[512];
        snprintf(cmdline, sizeof cmdline, "for f in %s/pipelines-*.bin; do %s > $f.x && mv $f.x $f; done", dir, bad[i]);
        expect(h, i ? "corrupting the cache file" : "truncating the cache file", system(cmdline) == 0);
        ignored_warnings = 0;
        qn_log_set(count_ignored, NULL, QN_LOG_WARN);
        int rc = qn_vk_open(&v, &p);
        qn_log_set(NULL, NULL, QN_LOG_ERROR);
        expect(h, "a bad cache file is a warning (ignored), not an error", rc == 0 && ignored_warnings == 1);
        if (rc == 0) qn_h_ok(h, qn_pipe_get(v, QN_K_MATVEC_BF16, NULL, 0, &mv), "pipe");
        qn_vk_close(&v);
        expect(h, "the bad file is rewritten on close", cache_file_size(dir, &tmp) == saved && tmp == 0);
    }
    int rc;
    char cmdline[256];
    snprintf(cmdline, sizeof cmdline, "rm -rf %s", dir);
    if (system(cmdline) != 0) printf("note: could not remove %s\n", dir);

    p.cache_dir = "/proc/qnext-cannot-write-here";
    rc = qn_vk_open(&v, &p);
    expect(h, "an unwritable cache directory is a warning, not an error", rc == 0);
    qn_vk_close(&v);

    qn_vk_default_params(&p);
    p.device = "99";
    expect_err(h, "device index out of range", qn_vk_open(&v, &p), "out of range");
    p.device = "no-such-gpu-name";
    expect_err(h, "device name that matches nothing", qn_vk_open(&v, &p), "no Vulkan device name contains");
}

/* qnext devices' cooperative-matrix shape list: the wording of a shape, and every listed shape has sizes */
static void cm_shapes(struct qn_h *h)
{
    char buf[64];
    qn_cm_shape_str(&(struct qn_cm_shape){ 16, 8, 32, 3, 3, 5, 5 }, buf, sizeof buf);
    expect(h, "cooperative-matrix shape wording (16x8x32 s8*s8+s32->s32)", !strcmp(buf, "16x8x32 s8*s8+s32->s32"));
    qn_cm_shape_str(&(struct qn_cm_shape){ 16, 16, 16, 0, 0, 1, 1 }, buf, sizeof buf);
    expect(h, "cooperative-matrix shape wording (16x16x16 f16*f16+f32->f32)", !strcmp(buf, "16x16x16 f16*f16+f32->f32"));
    expect(h, "an unknown component type is '?'", !strcmp(qn_cm_type_name(99), "?"));
    const struct qn_caps *c = qn_vk_caps(h->v);
    bool sized = c->n_cm_shapes <= 32;
    for (uint32_t i = 0; i < c->n_cm_shapes && i < 32; i++)
        sized = sized && c->cm_shapes[i].m && c->cm_shapes[i].n && c->cm_shapes[i].k;
    expect(h, "the device's listed cooperative-matrix shapes have sizes", sized);
    expect(h, "the tensor-core kernels' shape is among them", !c->coopmat_nv || c->n_cm_shapes > 0);
}

/* QNEXT_WAIT_SPIN_US: a compute command buffer polls its fence up to that long, then blocks; the default polls 20 ms
 * on discrete GPUs only, a caller may change that default (qn_cmd_set_spin_default: streaming segments 0) but not
 * the env; transfer-queue waits never poll. A polling wait after the first sleeps until 0.3 ms before the last run's
 * time (a run of ~1 ms or more here, so runs 2 and 3 take that path). Results are the same either way (y = Wx run
 * 3 times). */
static void spin_wait(struct qn_h *h)
{
    const uint32_t rows = 1024, cols = 1024; /* a run of a millisecond or more on lavapipe: later waits sleep first */
    float *w_h, *x_h, *y_h;
    qn_buf *w = qn_h_input_f32(h, "W", (size_t)rows * cols, -1, 1, &w_h);
    qn_buf *x = qn_h_input_f32(h, "x", cols, -1, 1, &x_h);
    qn_buf *y = qn_h_input_f32(h, "y", rows, -1, 1, &y_h);
    qn_pipe *p = qn_h_pipe(h, QN_K_MATVEC_F32, 64, 2);
    qn_pc_matvec pc = { .rows = rows, .cols = cols };
    float *ref = qn_h_alloc(h, rows);
    for (uint32_t r = 0; r < rows; r++) {
        double s = 0;
        for (uint32_t k = 0; k < cols; k++) s += (double)w_h[(size_t)r * cols + k] * x_h[k];
        ref[r] = (float)s;
    }
    const char *env[3] = { "1000000", "0", NULL };
    uint64_t want[3] = { 1000000, 0, qn_vk_caps(h->v)->type == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU ? 20000 : 0 };
    for (int i = 0; i < 3; i++) {
        if (env[i]) setenv("QNEXT_WAIT_SPIN_US", env[i], 1);
        else unsetenv("QNEXT_WAIT_SPIN_US");
        qn_cmd *c = NULL, *xc = NULL;
        qn_h_ok(h, qn_cmd_create(h->v, &c), "create");
        qn_h_ok(h, qn_cmd_create_on(h->v, QN_QUEUE_TRANSFER, &xc), "create on the transfer queue");
        char what[160];
        snprintf(what, sizeof what, "QNEXT_WAIT_SPIN_US=%s: compute waits poll %llu us (want %llu), transfer waits 0",
                 env[i] ? env[i] : "(unset)", (unsigned long long)qn_cmd_spin_us(c), (unsigned long long)want[i]);
        expect(h, what, qn_cmd_spin_us(c) == want[i] && qn_cmd_spin_us(xc) == 0);
        qn_cmd_set_spin_default(c, 7);
        qn_cmd_set_spin_default(xc, 7);
        snprintf(what, sizeof what,
                 "  a caller's default of 7 us (the env wins over it): compute %llu (want %llu), transfer %llu",
                 (unsigned long long)qn_cmd_spin_us(c), (unsigned long long)(env[i] ? want[i] : 7),
                 (unsigned long long)qn_cmd_spin_us(xc));
        expect(h, what, qn_cmd_spin_us(c) == (env[i] ? want[i] : 7) && qn_cmd_spin_us(xc) == 0);
        qn_h_ok(h, qn_cmd_begin(c), "begin");
        qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, rows / 2);
        qn_h_ok(h, qn_cmd_end(c), "end");
        for (int r = 0; r < 3; r++) qn_h_ok(h, qn_cmd_run(c), "run");
        snprintf(what, sizeof what, "y = Wx submitted 3x with QNEXT_WAIT_SPIN_US=%s (last run %llu us)",
                 env[i] ? env[i] : "(unset)", (unsigned long long)qn_cmd_last_run_us(c));
        qn_h_check(h, what, y, ref, rows, 5e-5, 1e-5);
        expect(h, "  the last run's time is recorded", qn_cmd_last_run_us(c) > 0);
        qn_cmd_destroy(&c);
        qn_cmd_destroy(&xc);
    }
    unsetenv("QNEXT_WAIT_SPIN_US");
    qn_h_reset(h);
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "vk_core", argc, argv);
    cm_shapes(&h);
    resubmit_and_ranges(&h);
    spin_wait(&h);
    record_errors(&h);
    budget(&h);
    pipelines(&h);
    qn_log_set(NULL, NULL, QN_LOG_ERROR); /* the cache warnings below are expected */
    second_device(&h);
    return qn_h_close(&h);
}
