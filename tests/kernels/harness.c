/* harness.c — see harness.h: device setup, random inputs, poisoned outputs, checks, validation verdict. */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../crash_report.h"
#include "qn_log.h"
#include "qn_num.h"

#define QN_H_POISON 0x7fc0dead /* a quiet NaN: any element the kernel leaves alone fails the check */

static void die(struct qn_h *h, const char *what, int rc)
{
    fprintf(stderr, "FAIL %s: %s: %s (%s)\n", h->name, what, qn_errmsg(), qn_errname(rc));
    exit(1);
}

void qn_h_ok(struct qn_h *h, int rc, const char *what)
{
    if (rc < 0) die(h, what, rc);
}

void qn_h_open(struct qn_h *h, const char *name, int argc, char **argv)
{
    qn_test_crash_report();
    memset(h, 0, sizeof *h);
    h->name = name;
    struct qn_vk_params p;
    qn_vk_default_params(&p);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) p.device = argv[++i];
        else if (!strcmp(argv[i], "-v")) h->verbose++;
    }
    qn_log_set(NULL, NULL, h->verbose ? QN_LOG_DEBUG : QN_LOG_WARN);
    const char *seed = getenv("QNEXT_TEST_SEED");
    qn_rng_seed(&h->rng, seed ? strtoull(seed, NULL, 0) : 0x5eed0001u);
    int rc = qn_vk_open(&h->v, &p);
    if (rc == QN_E_SKIP || rc == QN_E_NODEV) {
        fprintf(stderr, "\n*** SKIP %s: %s ***\n\n", name, qn_errmsg());
        exit(77);
    }
    qn_h_ok(h, rc, "opening the Vulkan device");
    qn_h_ok(h, qn_cmd_create(h->v, &h->cmd), "creating a command buffer");
    const struct qn_caps *c = qn_vk_caps(h->v);
    printf("%s: device '%s' (%s), subgroup %u, validation %s, %s descriptors\n", name, c->name, c->driver_info,
           c->subgroup_size, qn_vk_validating(h->v) ? "on" : "OFF", qn_vk_push_descriptors(h->v) ? "push" : "pooled");
}

void qn_h_reset(struct qn_h *h)
{
    for (uint32_t i = 0; i < h->nbufs; i++) qn_buf_destroy(h->v, &h->bufs[i]);
    for (uint32_t i = 0; i < h->nhost; i++) free(h->host[i]);
    h->nbufs = h->nhost = 0;
}

int qn_h_close(struct qn_h *h)
{
    qn_h_reset(h);
    qn_cmd_destroy(&h->cmd);
    bool validated = qn_vk_validating(h->v);
    qn_vk_close(&h->v);
    uint32_t vmsgs = qn_vk_validation_count();
    if (vmsgs) {
        fprintf(stderr, "FAIL %s: %u validation message(s) (see above)\n", h->name, vmsgs);
        return 1;
    }
    if (h->failures) {
        fprintf(stderr, "FAIL %s: %d of %d checks failed\n", h->name, h->failures, h->checks);
        return 1;
    }
    printf("PASS %s: %d checks%s\n", h->name, h->checks, validated ? ", 0 validation messages" : " (NOT validated)");
    return 0;
}

void *qn_h_alloc_bytes(struct qn_h *h, size_t bytes)
{
    if (h->nhost == QN_H_MAX_OBJS) die(h, "too many host arrays (call qn_h_reset between cases)", -ENOSPC);
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) die(h, "host allocation", qn_fail(-ENOMEM, "out of memory (%zu bytes)", bytes));
    h->host[h->nhost++] = p;
    return p;
}

float *qn_h_alloc(struct qn_h *h, size_t n) { return qn_h_alloc_bytes(h, n * sizeof(float)); }

void qn_h_random(struct qn_h *h, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        do v = qn_rng_range(&h->rng, lo, hi);
        while (fabsf(v) < 1e-3f * (hi - lo));
        x[i] = v;
    }
}

void qn_h_quant_i8(const float *x, uint32_t n, float *xq, float *dx)
{
    for (uint32_t b = 0; b < n / 32; b++) {
        float amax = 0;
        for (uint32_t i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
        float id = amax > 0 ? 127.0f / amax : 0.0f, d = amax / 127.0f;
        if (dx) dx[b] = d;
        for (uint32_t i = 0; i < 32; i++) xq[32 * b + i] = d * rintf(x[32 * b + i] * id);
    }
}

qn_buf *qn_h_buffer(struct qn_h *h, const char *name, size_t bytes)
{
    if (h->nbufs == QN_H_MAX_OBJS) die(h, "too many buffers (call qn_h_reset between cases)", -ENOSPC);
    qn_buf *b;
    size_t rounded = (bytes + 3) & ~(size_t)3;
    qn_h_ok(h, qn_buf_create(h->v, QN_MEM_DEVICE, rounded ? rounded : 4, name, &b), name);
    h->bufs[h->nbufs++] = b;
    qn_h_ok(h, qn_buf_fill(h->v, b, 0, b->size, QN_H_POISON), name);
    return b;
}

qn_buf *qn_h_upload(struct qn_h *h, const char *name, const void *data, size_t bytes)
{
    qn_buf *b = qn_h_buffer(h, name, bytes);
    qn_h_ok(h, qn_buf_write(h->v, b, 0, data, bytes), name);
    return b;
}

qn_buf *qn_h_output(struct qn_h *h, const char *name, size_t n) { return qn_h_buffer(h, name, n * sizeof(float)); }

qn_buf *qn_h_input_f32(struct qn_h *h, const char *name, size_t n, float lo, float hi, float **host)
{
    float *x = qn_h_alloc(h, n);
    qn_h_random(h, x, n, lo, hi);
    if (host) *host = x;
    return qn_h_upload(h, name, x, n * sizeof(float));
}

static qn_buf *input16(struct qn_h *h, const char *name, size_t n, float lo, float hi, float **host, bool bf)
{
    float *x = qn_h_alloc(h, n);
    uint16_t *q = qn_h_alloc_bytes(h, n * 2);
    qn_h_random(h, x, n, lo, hi);
    for (size_t i = 0; i < n; i++) {
        q[i] = bf ? qn_f32_to_bf16(x[i]) : qn_f32_to_f16(x[i]);
        x[i] = bf ? qn_bf16_to_f32(q[i]) : qn_f16_to_f32(q[i]);
    }
    if (host) *host = x;
    return qn_h_upload(h, name, q, n * 2);
}

qn_buf *qn_h_input_bf16(struct qn_h *h, const char *name, size_t n, float lo, float hi, float **host)
{
    return input16(h, name, n, lo, hi, host, true);
}

qn_buf *qn_h_input_f16(struct qn_h *h, const char *name, size_t n, float lo, float hi, float **host)
{
    return input16(h, name, n, lo, hi, host, false);
}

float *qn_h_read(struct qn_h *h, const qn_buf *b, size_t n)
{
    float *x = qn_h_alloc(h, n);
    qn_h_ok(h, qn_buf_read(h->v, b, 0, x, n * sizeof(float)), b->name);
    return x;
}

qn_pipe *qn_h_pipe_spec(struct qn_h *h, enum qn_kernel k, const uint32_t *spec, uint32_t nspec)
{
    qn_pipe *p;
    qn_h_ok(h, qn_pipe_get(h->v, k, spec, nspec, &p), qn_kernel_infos[k].name);
    return p;
}

double qn_h_run(struct qn_h *h, const qn_pipe *p, const struct qn_bind *b, uint32_t nb, const void *push,
                uint32_t push_size, uint64_t groups)
{
    return qn_h_run_z(h, p, b, nb, push, push_size, groups, 1);
}

double qn_h_run_z(struct qn_h *h, const qn_pipe *p, const struct qn_bind *b, uint32_t nb, const void *push,
                  uint32_t push_size, uint64_t groups, uint32_t gz)
{
    const char *kn = qn_pipe_info(p)->name;
    qn_h_ok(h, qn_cmd_begin(h->cmd), kn);
    qn_cmd_mark(h->cmd, kn);
    qn_cmd_dispatch_nz(h->cmd, p, b, nb, push, push_size, groups, gz);
    qn_h_ok(h, qn_cmd_end(h->cmd), kn);
    qn_h_ok(h, qn_cmd_run(h->cmd), kn);
    return qn_cmd_region(h->cmd, 0, NULL);
}

int qn_h_check_host(struct qn_h *h, const char *what, const float *got, const float *ref, size_t n, double atol,
                    double rtol)
{
    double max_abs = 0, max_rel = 0;
    size_t worst = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        bool fail = !isfinite(got[i]) || d > atol + rtol * fabs((double)ref[i]);
        if (!isfinite(got[i])) d = INFINITY;
        double rel = d / fmax(fabs((double)ref[i]), 1e-30);
        if (fail && !bad++) worst = i;
        if (!bad && d > max_abs) worst = i;
        max_abs = fmax(max_abs, d);
        max_rel = fmax(max_rel, rel);
    }
    h->checks++;
    if (bad) h->failures++;
    printf("%-4s %s: max abs %.3g, max rel %.3g (atol %.3g, rtol %.3g)", bad ? "FAIL" : "ok", what, max_abs,
           max_rel, atol, rtol);
    if (bad && n) printf(": %zu of %zu wrong, first at %zu: got %.9g want %.9g", bad, n, worst, got[worst], ref[worst]);
    printf("\n");
    return bad ? 1 : 0;
}

int qn_h_check(struct qn_h *h, const char *what, const qn_buf *out, const float *ref, size_t n, double atol,
               double rtol)
{
    return qn_h_check_host(h, what, qn_h_read(h, out, n), ref, n, atol, rtol);
}
