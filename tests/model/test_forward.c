/* test_forward.c — the Vulkan forward pass (runtime/session.h) against Hugging Face's outputs
 * (tests/data/golden/<fixture>) and against itself.
 *
 * usage: test_forward FIXTURE_DIR [--device SEL] [--dtype f16|f32] [--max-bind BYTES]
 * --dtype runs everything on a copy of the checkpoint with the matrices converted (the f16 / f32 kernels);
 * --max-bind binds weights in row pieces of at most BYTES (the path for tensors over maxStorageBufferRange).
 * Checks (relative L2 = |a - b| / |b| over the whole array):
 *   prefill0 / prefill1 logits at every position vs HF                      < 1e-3 (f32 compute: ~1e-5 expected)
 *   prefill0 per-layer hidden states vs HF                                  < 1e-3
 *   greedy: prefill, then one token at a time with the argmax on the GPU: ids identical to HF's (a mismatch
 *     only counts as a near-tie when HF's own top-1 margin there is below 1e-3); per-step logits < 1e-3
 *   prefill0 in chunks of 7 and of 64 vs one chunk                           < 1e-4
 *   prefill0 split into calls of 1, 3, 70, 2, rest (state carry-over) vs one call  < 1e-4
 *   prefill + decode vs one long prefill over prompt + generated tokens      < 1e-4
 *   session reset and reuse: the same call again gives identical logits (bit for bit)
 *   top-k (k = 1, 20) of the last logits = the host's sort of the same logits (ids and values exact)
 *   loading refuses a model over the memory budget and an --expert-cache below the streaming minimum (top_k slots)
 *   a call recorded in segments (per-layer route / experts submissions, as streaming will) == recorded whole
 * The self-consistency bounds cover different but fixed f32 summation orders (matvec vs matmul, recurrent vs
 * chunked delta rule, split-K vs flash attention); a wrong state carry-over gives 1e-2 and more. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "qn_log.h"
#include "safetensors.h"
#include "session.h"
#include "../testutil.h"

#define TOL_HF 1e-3
#define TOL_SELF 1e-4

static double worst_hf;

static void check(const char *what, double err, double tol, bool vs_hf)
{
    int ok = err < tol && isfinite(err);
    printf("%-4s %-52s rel L2 %.3e (tolerance %.0e)\n", ok ? "ok" : "FAIL", what, err, tol);
    if (!ok) failures++;
    if (vs_hf && err > worst_hf) worst_hf = err;
}


static uint64_t max_bind; /* --max-bind: weights bound in row pieces of at most this many bytes */

static qn_session *session(const qn_model *m, uint32_t chunk)
{
    struct qn_session_params p;
    qn_session_default_params(&p);
    p.tune.max_bind = max_bind;
    p.chunk = chunk;
    p.ctx = getenv("QN_CTX") ? (uint32_t)atoi(getenv("QN_CTX")) : 64; /* small on purpose: the prompts make the KV cache grow (and the recordings be redone) */
    qn_session *s;
    if (qn_session_new(&s, m, &p)) DIE("session (chunk %u)", chunk);
    return s;
}

static void run(qn_session *s, const int32_t *ids, int n, float *logits, int all, float *hidden)
{
    if (qn_session_forward(s, ids, n, logits, all, hidden)) DIE("forward over %d tokens", n);
}

static void test_prefill(const qn_model *m, const qn_st_store *e, int which, qn_session *s)
{
    const qn_config *c = &m->c;
    char what[128];
    int32_t *ids;
    float *want, *hs_want = NULL;
    int T = get_prefill(e, which, &ids, &want);
    if (!T) return;
    size_t V = (size_t)c->vocab_size, NH = (size_t)T * (size_t)c->hidden_size, TV = (size_t)T * V;
    float *got = xmalloc(TV * 4), *other = xmalloc(TV * 4), *hs = xmalloc(NH * (size_t)(c->num_layers + 1) * 4);
    if (qn_session_reset(s)) DIE("reset");
    run(s, ids, T, got, 1, which == 0 ? hs : NULL);
    snprintf(what, sizeof what, "prefill%d logits [%d x %zu] vs HF", which, T, V);
    check(what, rel_l2(got, want, TV), TOL_HF, true);
    if (getenv("QN_DEBUG"))
        for (int t = 0; t < T; t++) printf("  row %d: %.3e\n", t, rel_l2(got + t * V, want + t * V, V));
    if (which == 0 && get_f32(e, "prefill0.hidden_states", &hs_want)) {
        double worst = 0;
        for (int l = 0; l <= c->num_layers; l++) {
            double err = rel_l2(hs + l * NH, hs_want + l * NH, NH);
            snprintf(what, sizeof what, "prefill0 hidden state %d%s vs HF", l, l == c->num_layers ? " (final norm)" : "");
            if (err >= TOL_HF || !isfinite(err)) check(what, err, TOL_HF, true);
            if (err > worst) worst = err;
        }
        check("prefill0 hidden states, worst layer, vs HF", worst, TOL_HF, true);
        free(hs_want);
    }
    /* reset and reuse: bit for bit */
    if (qn_session_reset(s)) DIE("reset");
    run(s, ids, T, other, 1, NULL);
    bool same = !memcmp(other, got, TV * 4);
    printf("%-4s prefill%d after reset: %s\n", same ? "ok" : "FAIL", which, same ? "identical" : "differs");
    if (!same) failures++;
    if (which == 0) {
        /* the prompt in chunks of 7 and of 64 (one session each) */
        static const uint32_t chunks[] = { 7, 64 };
        for (int i = 0; i < 2; i++) {
            qn_session *cs = session(m, chunks[i]);
            run(cs, ids, T, other, 1, NULL);
            snprintf(what, sizeof what, "prefill0 in chunks of %u vs one chunk", chunks[i]);
            check(what, rel_l2(other, got, TV), TOL_SELF, false);
            qn_session_free(&cs);
        }
        /* several calls: 1 token, then pieces that straddle delta-rule chunk boundaries */
        if (qn_session_reset(s)) DIE("reset");
        int cuts[] = { 1, 3, 70, 2, 1 << 30 }, at = 0;
        for (int i = 0; at < T; i++) {
            int len = cuts[i] < T - at ? cuts[i] : T - at;
            run(s, ids + at, len, other + (size_t)at * V, 1, NULL);
            at += len;
        }
        check("prefill0 split into calls 1,3,70,2,.. vs one call", rel_l2(other, got, TV), TOL_SELF, false);
    }
    free(ids); free(want); free(got); free(other); free(hs);
}

/* top-1 margin of a logit row */
static float margin(const float *x, int n)
{
    int b = argmax_f32(x, n);
    float second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != b && x[i] > second) second = x[i];
    return x[b] - second;
}

struct cand { float v; int32_t id; };
static int cand_cmp(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void test_topk(qn_session *s, const int32_t *prompt, int P, int V)
{
    float *logits = xmalloc((size_t)V * 4);
    struct cand *ref = xmalloc(sizeof *ref * (size_t)V);
    int32_t ids[20];
    float vals[20];
    for (int k = 1; k <= 20; k += 19) {
        if (qn_session_reset(s)) DIE("reset");
        run(s, prompt, P, logits, 0, NULL);
        if (qn_session_reset(s) || qn_session_topk(s, prompt, P, k, ids, vals)) DIE("top-k");
        for (int i = 0; i < V; i++) ref[i] = (struct cand){ logits[i], i };
        qsort(ref, (size_t)V, sizeof *ref, cand_cmp);
        int bad = -1;
        for (int i = 0; i < k && bad < 0; i++)
            if (ids[i] != ref[i].id || vals[i] != ref[i].v) bad = i;
        printf("%-4s top-%d of the last logits (GPU) = host sort%s\n", bad < 0 ? "ok" : "FAIL", k,
               bad < 0 ? "" : " (differs)");
        if (bad >= 0) failures++;
    }
    free(logits);
    free(ref);
}

static void test_greedy(const qn_model *m, const qn_st_store *e, qn_session *s)
{
    const qn_config *c = &m->c;
    int32_t *prompt, *toks;
    float *want;
    int P, N = get_greedy(e, &prompt, &P, &toks, &want);
    size_t V = (size_t)c->vocab_size;
    float *got = xmalloc((size_t)N * V * 4), *full = xmalloc((size_t)(P + N) * V * 4);
    int32_t *seq = xmalloc(sizeof *seq * (size_t)(P + N));
    memcpy(seq, prompt, sizeof *seq * (size_t)P);
    /* greedy ids from the GPU argmax, following HF's tokens so later steps stay comparable */
    if (qn_session_reset(s)) DIE("reset");
    int same = 1, ties = 0;
    for (int i = 0; i < N; i++) {
        int32_t next;
        if (i == 0 ? qn_session_greedy(s, prompt, P, &next, NULL) : qn_session_greedy(s, &toks[i - 1], 1, &next, NULL))
            DIE("greedy step %d", i);
        if (next != toks[i]) {
            float mg = margin(want + (size_t)i * V, (int)V);
            if (mg < 1e-3f) ties++;
            else if (same) printf("FAIL greedy step %d: token %d, HF chose %d (HF margin %.4f)\n", i, next, toks[i], mg);
            if (mg >= 1e-3f) same = 0;
        }
        seq[P + i] = toks[i];
    }
    printf("%-4s greedy tokens on the GPU (%d steps): %s (%d near-ties)\n", same ? "ok" : "FAIL", N,
           same ? "identical to HF" : "differ", ties);
    if (!same) failures++;
    /* the same steps with logits read back */
    if (qn_session_reset(s)) DIE("reset");
    run(s, prompt, P, got, 0, NULL);
    for (int i = 0; i + 1 < N; i++) run(s, &toks[i], 1, got + (size_t)(i + 1) * V, 0, NULL);
    check("greedy per-step logits (cached decode) vs HF", rel_l2(got, want, (size_t)N * V), TOL_HF, true);
    if (qn_session_reset(s)) DIE("reset");
    run(s, seq, P + N - 1, full, 1, NULL);
    check("decode vs one long prefill", rel_l2(got, full + (size_t)(P - 1) * V, (size_t)N * V), TOL_SELF, false);
    test_topk(s, prompt, P, (int)V);
    free(prompt); free(toks); free(want); free(got); free(full); free(seq);
}

/* One call recorded in segments (embed, route / experts per layer, head), each its own submission as streaming
 * will do it, gives the same logits bit for bit as the call recorded whole; the router ids are readable
 * after each ROUTE segment. */
static void test_segments(const qn_model *m, const int32_t *ids, int T)
{
    const qn_config *c = &m->c;
    size_t V = (size_t)c->vocab_size;
    qn_fwd f;
    if (qn_fwd_init(&f, m, NULL, (uint32_t)T, 64) || qn_fwd_outputs(&f, 1, 0, false) < 0) DIE("forward state");
    struct qn_fwd_call call = { .T = (uint32_t)T, .out = QN_FWD_LOGITS_LAST };
    float *a = xmalloc(V * 4), *b = xmalloc(V * 4);
    int32_t *rid = xmalloc(sizeof *rid * (size_t)T * (size_t)c->top_k);
    uint32_t pos = 0;
    qn_cmd *cmd;
    if (qn_cmd_create(m->v, &cmd)) DIE("command buffer");
    memcpy(f.tok->map, ids, sizeof *ids * (size_t)T);
    memcpy(f.pos->map, &pos, sizeof pos);
    if (qn_cmd_begin(cmd) || qn_fwd_record(&f, cmd, &call) || qn_cmd_end(cmd) || qn_cmd_run(cmd)) DIE("whole call");
    memcpy(a, f.rb_logits->map, V * 4);
    if (qn_fwd_reset(&f)) DIE("reset");
    int nseg = 2 * c->num_layers + 2, bad_ids = 0;
    for (int i = 0; i < nseg; i++) {
        enum qn_fwd_seg seg = i == 0 ? QN_FWD_SEG_EMBED : i == nseg - 1 ? QN_FWD_SEG_HEAD
                            : (i - 1) % 2 ? QN_FWD_SEG_EXPERTS : QN_FWD_SEG_ROUTE;
        if (qn_cmd_begin(cmd) || qn_fwd_record_seg(&f, cmd, &call, seg, (i - 1) / 2) || qn_cmd_end(cmd) ||
            qn_cmd_run(cmd))
            DIE("segment %d", i);
        if (seg == QN_FWD_SEG_ROUTE) {
            if (qn_buf_read(m->v, f.ids, 0, rid, sizeof *rid * (size_t)T * (size_t)c->top_k)) DIE("router ids");
            for (int j = 0; j < T * c->top_k; j++) bad_ids += rid[j] < 0 || rid[j] >= c->num_experts;
        }
    }
    memcpy(b, f.rb_logits->map, V * 4);
    bool same = !memcmp(a, b, V * 4) && !bad_ids;
    printf("%-4s %d tokens recorded in %d segments == recorded whole (bit for bit), router ids valid\n",
           same ? "ok" : "FAIL", T, nseg);
    failures += !same;
    qn_cmd_destroy(&cmd);
    qn_fwd_free(&f);
    free(a); free(b); free(rid);
}

/* Loading refuses what does not fit, with a message that says how much is needed and what the budget is. */
static void test_budget(qn_vk *v, const char *dir)
{
    struct qn_mem_stats ms;
    qn_mem_stats(v, &ms);
    struct qn_model_params mp;
    qn_model_default_params(&mp);
    mp.progress = 0;
    qn_model *m = NULL;
    qn_mem_set_budget(v, ms.device_used + (1u << 20));          /* 1 MiB left */
    int rc = qn_model_load(&m, v, dir, &mp);
    bool ok = rc == -ENOMEM && strstr(qn_errmsg(), "does not fit") && strstr(qn_errmsg(), "--expert-cache");
    printf("%-4s model over the memory budget refused: %.150s\n", ok ? "ok" : "FAIL", qn_errmsg());
    failures += !ok;
    qn_model_free(&m);
    qn_mem_set_budget(v, ms.device_budget);
    /* no --expert-cache and experts that do not fit the MoE kernels' pool bindings (each pool capped at 5
     * slots here, 8 pools = 40 slots): the load switches to streaming by itself, with fewer slots than experts */
    rc = qn_model_load(&m, v, dir, &mp);
    uint64_t slot = m ? m->slot_bytes : 0;
    uint32_t all = m ? m->n_slots : 0;
    qn_model_free(&m);
    mp.pool_bytes_max = 5 * slot;
    rc = rc ? rc : qn_model_load(&m, v, dir, &mp);
    mp.pool_bytes_max = 0;
    ok = !rc && m && m->stream && m->n_slots < all && m->n_slots >= (uint32_t)m->c.top_k;
    printf("%-4s no --expert-cache, experts beyond the pool bindings: streams through %u of %u slots%s%s\n", ok ? "ok" : "FAIL",
           m ? m->n_slots : 0, all, rc ? ": " : "", rc ? qn_errmsg() : "");
    failures += !ok;
    qn_model_free(&m);
    qn_mem_set_budget(v, ms.device_budget);
    mp.expert_cache = 4096;                    /* below top_k slots: too small even for streaming (tests/stream) */
    rc = qn_model_load(&m, v, dir, &mp);
    ok = rc == -ENOSPC && strstr(qn_errmsg(), "at least");
    printf("%-4s --expert-cache below the streaming minimum refused: %.150s\n", ok ? "ok" : "FAIL", qn_errmsg());
    failures += !ok;
    qn_model_free(&m);
}

/* A copy of the fixture's checkpoint with every matrix (2-D and up) stored as `dt` in a temporary folder (1-D
 * tensors keep their dtype), so the f16 / f32 kernel variants run the whole model. Returns the folder. */
static char *convert_checkpoint(const char *dir, qn_dtype dt)
{
    static char tmp[] = "/tmp/qnext-fwd-XXXXXX";
    char src[4096], dst[4096];
    if (!mkdtemp(tmp)) DIE("mkdtemp");
    snprintf(src, sizeof src, "%s/config.json", dir);
    snprintf(dst, sizeof dst, "%s/config.json", tmp);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    if (!in || !out) DIE("copying %s", src);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    if (fclose(out)) DIE("writing %s", dst);
    qn_st_store *st;
    snprintf(src, sizeof src, "%s/model.safetensors", dir);
    if (qn_st_open(&st, src)) DIE("opening %s", src);
    int nt = qn_st_count(st);
    qn_st_wtensor *wt = xmalloc(sizeof *wt * (size_t)nt);
    for (int i = 0; i < nt; i++) {
        const qn_st_tensor *t = qn_st_at(st, i);
        wt[i] = (qn_st_wtensor){ .name = t->name, .dtype = t->ndim >= 2 ? dt : t->dtype, .ndim = t->ndim };
        memcpy(wt[i].shape, t->shape, sizeof t->shape);
    }
    qn_st_writer *w;
    snprintf(dst, sizeof dst, "%s/model.safetensors", tmp);
    if (qn_st_writer_open(&w, dst, wt, nt, NULL)) DIE("creating %s", dst);
    for (int i = 0; i < nt; i++) {
        const qn_st_tensor *t = qn_st_at(st, i);
        size_t ne = (size_t)qn_st_numel(t);
        float *x = xmalloc(ne * 4);
        if (qn_st_read_f32(st, t->name, x, ne) || qn_st_writer_put_f32(w, x, ne)) DIE("converting %s", t->name);
        free(x);
    }
    if (qn_st_writer_close(&w)) DIE("writing %s", dst);
    qn_st_close(&st);
    free(wt);
    return tmp;
}

static void remove_checkpoint(const char *tmp)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", tmp);
    remove(p);
    snprintf(p, sizeof p, "%s/model.safetensors", tmp);
    remove(p);
    remove(tmp);
}

int main(int argc, char **argv)
{
    qn_test_crash_report();
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR [--device SEL] [--dtype f16|f32] [--max-bind BYTES]\n", argv[0]);
        return 2;
    }
    struct qn_vk_params vp;
    qn_vk_default_params(&vp);
    const char *model_dir = argv[1], *conv = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--device")) vp.device = argv[i + 1];
        else if (!strcmp(argv[i], "--dtype")) conv = argv[i + 1];
        else if (!strcmp(argv[i], "--max-bind")) max_bind = strtoull(argv[i + 1], NULL, 0);
    }
    qn_log_set(NULL, NULL, QN_LOG_WARN);
    qn_vk *v;
    int rc = qn_vk_open(&v, &vp);
    if (rc == QN_E_SKIP || rc == QN_E_NODEV) {
        fprintf(stderr, "\n*** SKIP test_forward: %s ***\n\n", qn_errmsg());
        return 77;
    }
    if (rc) DIE("opening the Vulkan device");
    char path[4096];
    qn_model *m;
    qn_st_store *e;
    struct qn_model_params mp;
    qn_model_default_params(&mp);
    mp.progress = 0;
    char *tmp = NULL;
    if (conv) { /* matrices as f16 or f32 */
        tmp = convert_checkpoint(argv[1], !strcmp(conv, "f16") ? QN_DT_F16 : QN_DT_F32);
        model_dir = tmp;
        printf("checkpoint converted: matrices as %s in %s\n", conv, tmp);
    } else {
        test_budget(v, argv[1]);
    }
    if (qn_model_load(&m, v, model_dir, &mp)) DIE("loading %s", model_dir);
    if (tmp) remove_checkpoint(tmp);
    snprintf(path, sizeof path, "%s/expected.safetensors", argv[1]);
    if (qn_st_open(&e, path)) DIE("opening %s", path);
    printf("fixture %s on '%s' (validation %s)\n", argv[1], qn_vk_caps(v)->name, qn_vk_validating(v) ? "on" : "off");
    qn_session *s = session(m, 512);
    test_prefill(m, e, 0, s);
    test_prefill(m, e, 1, s);
    test_greedy(m, e, s);
    int32_t *pids;
    int np = (int)get_i32(e, "prefill0.input_ids", &pids);
    test_segments(m, pids, np < 9 ? np : 9); /* T = 9: the prefill kernels */
    test_segments(m, pids, 1);               /* T = 1: the decode kernels */
    free(pids);
    qn_session_free(&s);
    qn_st_close(&e);
    qn_model_free(&m);
    qn_vk_close(&v);
    uint32_t vmsgs = qn_vk_validation_count();
    if (vmsgs) {
        printf("FAIL %u validation message(s)\n", vmsgs);
        failures++;
    }
    printf("%s: %d failure(s); worst error vs HF %.3e\n", argv[1], failures, worst_hf);
    return failures ? 1 : 0;
}
