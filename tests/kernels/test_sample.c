/* test_sample.c — on-GPU token choice: argmax (two passes) and topk_logits (repeated segment sorts) against a
 * C reference, with planted ties (lowest id must win / come first), NaN logits (never chosen) and vocabulary
 * sizes from 1 to Qwen3-Next's 151936. Both results are exact (no arithmetic), so the checks are equality. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "qn_num.h"

static int n_fail;

static void verdict(struct qn_h *h, bool ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    h->checks++;
    if (!ok) h->failures++, n_fail++;
}

/* logits with ties: values on a coarse grid, the maximum planted at `nmax` places, `nnan` NaNs */
static float *make_logits(struct qn_h *h, uint32_t n, uint32_t nmax, uint32_t nnan)
{
    float *x = qn_h_alloc(h, n);
    for (uint32_t i = 0; i < n; i++) x[i] = roundf(qn_rng_range(&h->rng, -8, 8) * 4) / 4; /* many ties */
    for (uint32_t j = 0; j < nmax; j++) x[qn_rng_u64(&h->rng) % n] = 9.5f;
    for (uint32_t j = 0; j < nnan; j++) x[qn_rng_u64(&h->rng) % n] = qn_bits_f32(0x7fc00000u);
    return x;
}

static int ref_argmax(const float *x, uint32_t n)
{
    int b = -1;
    for (uint32_t i = 0; i < n; i++)
        if (!isnan(x[i]) && (b < 0 || x[i] > x[b])) b = (int)i;
    return b;
}

static void run_argmax(struct qn_h *h, const float *x_h, uint32_t n, uint32_t per_group, uint32_t wg, const char *tag)
{
    uint32_t ng = (n + per_group - 1) / per_group;
    qn_buf *x = qn_h_upload(h, "logits", x_h, sizeof(float) * n);
    qn_buf *part = qn_h_buffer(h, "part", 8ull * ng);
    int32_t poison[4] = { 12345, 12345, 12345, 12345 };
    qn_buf *out = qn_h_upload(h, "out", poison, sizeof poison);
    qn_pipe *p0 = qn_h_pipe(h, QN_K_ARGMAX, wg, 0), *p1 = qn_h_pipe(h, QN_K_ARGMAX, wg, 1);
    qn_pc_argmax pc = { .n = n, .per_group = per_group, .ngroups = ng, .out_index = 1 };
    qn_h_ok(h, qn_cmd_begin(h->cmd), "begin");
    qn_cmd_dispatch_n(h->cmd, p0, QN_BINDS(QN_BIND(x), QN_BIND(part), QN_BIND(out)), &pc, sizeof pc, ng);
    qn_cmd_barrier(h->cmd);
    qn_cmd_dispatch_n(h->cmd, p1, QN_BINDS(QN_BIND(x), QN_BIND(part), QN_BIND(out)), &pc, sizeof pc, 1);
    qn_h_ok(h, qn_cmd_end(h->cmd), "recording");
    qn_h_ok(h, qn_cmd_run(h->cmd), "running");
    int32_t got[4];
    qn_h_ok(h, qn_buf_read(h->v, out, 0, got, sizeof got), "reading");
    int want = ref_argmax(x_h, n);
    float wantv = want >= 0 ? x_h[want] : -INFINITY;
    char what[160];
    snprintf(what, sizeof what, "argmax n %u per group %u wg %u %s: got %d want %d", n, per_group, wg, tag, got[1],
             want);
    verdict(h, got[1] == want && qn_bits_f32((uint32_t)got[2]) == wantv && got[0] == 12345 && got[3] == 12345, what);
}

struct cand { float v; uint32_t id; };

static int cand_cmp(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void run_topk(struct qn_h *h, const float *x_h, uint32_t n, uint32_t k, uint32_t wg, uint32_t seg,
                     const char *tag)
{
    uint32_t ng0 = (n + seg - 1) / seg;
    qn_buf *x = qn_h_upload(h, "logits", x_h, sizeof(float) * n);
    qn_buf *cb[2] = { qn_h_buffer(h, "cand0", 8ull * ng0 * k), qn_h_buffer(h, "cand1", 8ull * ng0 * k) };
    qn_pipe *p = qn_h_pipe(h, QN_K_TOPK_LOGITS, wg, seg);
    qn_h_ok(h, qn_cmd_begin(h->cmd), "begin");
    uint32_t cur = n, src = QN_TOPK_SRC_LOGITS, w = 0, passes = 0;
    for (;;) {
        uint32_t ng = (cur + seg - 1) / seg;
        qn_pc_topk pc = { .n = cur, .k = k, .src = src };
        qn_cmd_dispatch_n(h->cmd, p, QN_BINDS(QN_BIND(x), QN_BIND(cb[1 - w]), QN_BIND(cb[w])), &pc, sizeof pc, ng);
        qn_cmd_barrier(h->cmd);
        passes++;
        if (ng == 1) break;
        cur = ng * k;
        src = QN_TOPK_SRC_CAND;
        w = 1 - w;
    }
    qn_h_ok(h, qn_cmd_end(h->cmd), "recording");
    qn_h_ok(h, qn_cmd_run(h->cmd), "running");
    uint32_t *got = qn_h_alloc_bytes(h, 8ull * k);
    qn_h_ok(h, qn_buf_read(h->v, cb[w], 0, got, 8ull * k), "reading");
    struct cand *ref = qn_h_alloc_bytes(h, sizeof *ref * (n > k ? n : k));
    for (uint32_t i = 0; i < n; i++) ref[i] = (struct cand){ isnan(x_h[i]) ? -INFINITY : x_h[i], i };
    for (uint32_t i = n; i < k; i++) ref[i] = (struct cand){ -INFINITY, 0xffffffffu }; /* padding */
    qsort(ref, n, sizeof *ref, cand_cmp);
    uint32_t bad = k;
    for (uint32_t i = 0; i < k && bad == k; i++)
        if (got[2 * i + 1] != ref[i].id || qn_bits_f32(got[2 * i]) != ref[i].v) bad = i;
    char what[200];
    snprintf(what, sizeof what, "topk n %u k %u wg %u seg %u (%u passes) %s%s", n, k, wg, seg, passes, tag,
             bad == k ? "" : ": first difference at rank");
    if (bad < k)
        snprintf(what + strlen(what), sizeof what - strlen(what), " %u (id %u value %g, want id %u value %g)", bad,
                 got[2 * bad + 1], qn_bits_f32(got[2 * bad]), ref[bad].id, ref[bad].v);
    verdict(h, bad == k, what);
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "sample", argc, argv);
    static const uint32_t ns[] = { 1, 5, 1000, 4097, 151936 };
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        uint32_t n = ns[i];
        float *x = make_logits(&h, n, n > 3 ? 3 : 1, n > 100 ? 7 : 0);
        run_argmax(&h, x, n, 4096, 256, "3-way tie at the top, NaNs");
        run_argmax(&h, x, n, 1000, 100, "");
        run_argmax(&h, x, n, 64, 64, "");
        static const uint32_t ks[] = { 1, 20, 256 };
        for (size_t j = 0; j < 3; j++) {
            if (ks[j] > n && n > 5) continue;
            run_topk(&h, x, n, ks[j], 256, 2048, ks[j] > n ? "(padding past n)" : "");
            if (n <= 5000) run_topk(&h, x, n, ks[j], 100, 512, "");
        }
        qn_h_reset(&h);
    }
    /* every logit NaN: -1; every logit -inf: id 0 */
    float *nan_x = qn_h_alloc(&h, 300), *inf_x = qn_h_alloc(&h, 300);
    for (int i = 0; i < 300; i++) nan_x[i] = qn_bits_f32(0x7fc00000u), inf_x[i] = -INFINITY;
    run_argmax(&h, nan_x, 300, 64, 64, "all NaN");
    run_argmax(&h, inf_x, 300, 64, 64, "all -inf");
    run_topk(&h, inf_x, 300, 20, 64, 128, "all -inf");
    return qn_h_close(&h);
}
