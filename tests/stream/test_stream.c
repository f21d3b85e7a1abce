/* test_stream.c — streaming mode (runtime/model_stream.h) against resident mode on a golden fixture, bit for bit.
 *
 * usage: test_stream FIXTURE_DIR [MODEL]
 * MODEL (default FIXTURE_DIR) may be a GGUF file made from the fixture (tests/stream/stream_gguf.py): its experts
 * stream as slices of the stacked GGUF tensors (expert_store.h); the prompt comes from FIXTURE_DIR either way.
 * A model loaded with --expert-cache below the experts' bytes keeps only N slots and reads experts from the
 * file as layers route to them. Checks, for N = all - 1, about half, 2K, K + 1 and K (the minimum = top_k):
 *   prefill over prefill0's prompt: logits of every position memcmp-identical to a resident session with the
 *     same chunking (streaming caps a call at max(1, (N - prefetch) / K) tokens so a layer's union fits);
 *   greedy decode, 6 steps one token at a time: same ids and memcmp-identical logits;
 *   the slot cache really streamed (misses > 0, and evictions > 0 below all - 1);
 * and at the minimum with QNEXT_IO_FAULTS delays, jitter, short reads and EAGAIN: still identical;
 *   eio_at=3: the forward fails with -EIO and a message naming the model file and an offset (no hang);
 *   a budget of K slots minus one byte: refused with -ENOSPC naming both numbers;
 *   the checkpoint copied to a temp folder and truncated after load: -ENODATA naming the file and offset;
 *   --io buffered (the pread pool) at 2K slots: identical;
 * then with prefetch (K / 2 guess slots; minimum K + K / 2): identical at half, 2K + P and K + P slots, under
 * faults, eio_at and too small a budget again; the guesses (layer l + 1's router applied to layer l's MoE input)
 * were made and have precision and recall above 0.5 (chance is top_k / E <= 0.25 on the fixtures); and the
 * expert usage trace / pinned hot set / LFU policy (test_hot); --experts host (test_host): identical to resident. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "expert_host.h"
#include "expert_usage.h"
#include "experts.h"
#include "model_gguf.h"
#include "model_stream.h"
#include "qn_err.h"
#include "qn_log.h"
#include "session.h"
#include "../testutil.h"

#define NDEC 6

static void ok_if(bool ok, const char *what, const char *detail)
{
    printf("%-4s %s%s%.200s\n", ok ? "ok" : "FAIL", what, detail ? ": " : "", detail ? detail : "");
    if (!ok) failures++;
}

/* What one run produces: prefill logits [T, V], then NDEC greedy steps (ids and last-token logits). */
struct result {
    float *pre;
    int32_t tok[NDEC];
    float *dec;   /* [NDEC, V] */
};

static int prefetch;   /* qn_model_params.prefetch of the streaming loads */
static bool gguf;      /* MODEL is a GGUF file */
static const char *model_file = "model.safetensors";   /* the file named by read errors */
static int io_mode;    /* qn_model_params.io_mode (enum qn_io_mode) */

static struct qn_model_params extra;   /* expert_policy / expert_hot / expert_hot_from / expert_trace of the loads */

static int load(qn_vk *v, const char *dir, uint64_t budget, qn_model **m)
{
    struct qn_model_params mp = extra;   /* qn_model_default_params: zero but progress */
    mp.progress = 0;
    mp.expert_cache = budget;
    mp.prefetch = budget ? prefetch : 0;
    mp.io_mode = io_mode;
    return qn_model_load(m, v, dir, &mp);
}

/* Prefill + NDEC decode steps; 0 or the first error. */
static int run(const qn_model *m, uint32_t chunk, const int32_t *ids, int T, struct result *r)
{
    size_t V = (size_t)m->c.vocab_size;
    struct qn_session_params p;
    qn_session_default_params(&p);
    p.chunk = chunk;
    p.ctx = 64;
    qn_session *s;
    memset(r, 0, sizeof *r);
    int rc = qn_session_new(&s, m, &p);
    if (rc) return rc;
    r->pre = xmalloc((size_t)T * V * 4);
    r->dec = xmalloc(NDEC * V * 4);
    rc = qn_session_forward(s, ids, T, r->pre, 1, NULL);
    int32_t t = argmax_f32(r->pre + (size_t)(T - 1) * V, (int)V);
    for (int i = 0; !rc && i < NDEC; i++) {
        rc = qn_session_forward(s, &t, 1, r->dec + (size_t)i * V, 0, NULL);
        r->tok[i] = t = argmax_f32(r->dec + (size_t)i * V, (int)V);
    }
    if (!rc && m->stream) { /* the --stats text: every line present, numbers from this run */
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (f) {
            qn_session_stats(s, f);
            fclose(f);
        }
        char tokens[64];
        snprintf(tokens, sizeof tokens, "over %d tokens", T + NDEC);
        bool ok = text && strstr(text, "expert hit rate") && strstr(text, "GB/s") && strstr(text, tokens) &&
                  (!m->stream || !prefetch || strstr(text, "prefetch precision"));
        if (!ok || getenv("QN_STATS")) printf("%s", text ? text : "(no stats text)\n");
        if (!ok) ok_if(false, "qn_session_stats text", NULL);
        free(text);
    }
    qn_session_free(&s);
    return rc;
}

static void result_free(struct result *r)
{
    free(r->pre);
    free(r->dec);
}

static void compare(const char *what, const struct result *a, const struct result *b, size_t TV, size_t V)
{
    char msg[400];
    bool pre = !memcmp(a->pre, b->pre, TV * 4);
    bool tok = !memcmp(a->tok, b->tok, sizeof a->tok), dec = !memcmp(a->dec, b->dec, NDEC * V * 4);
    snprintf(msg, sizeof msg, "%s: prefill logits %s, decode ids %s, decode logits %s", what,
             pre ? "identical" : "DIFFER", tok ? "identical" : "DIFFER", dec ? "identical" : "DIFFER");
    ok_if(pre && tok && dec, msg, NULL);
}

static uint32_t chunk_for(const qn_model *m, int n_slots)
{
    /* a layer's union over a call is at most min(T K, E): no cap once E slots are free */
    int K = m->c.top_k, c = n_slots - prefetch >= m->c.num_experts ? 512 : (n_slots - prefetch) / K;
    return c < 1 ? 1 : c > 512 ? 512 : (uint32_t)c;
}

/* Resident reference for a chunk size (cached per chunk). */
static const struct result *reference(const qn_model *res, uint32_t chunk, const int32_t *ids, int T)
{
    static struct result ref[8];
    static uint32_t chunks[8];
    static int n;
    for (int i = 0; i < n; i++)
        if (chunks[i] == chunk) return &ref[i];
    if (n == 8) DIE("too many chunk sizes");
    if (run(res, chunk, ids, T, &ref[n])) DIE("resident run (chunk %u)", chunk);
    chunks[n] = chunk;
    return &ref[n++];
}

static void test_budget(qn_vk *v, const char *dir, const qn_model *res, int n_slots, const int32_t *ids, int T)
{
    size_t V = (size_t)res->c.vocab_size;
    int total = res->c.num_layers * res->c.num_experts;
    qn_model *m;
    if (load(v, dir, (uint64_t)n_slots * qn_mst_slot_bytes(res), &m)) DIE("streaming load with %d slots", n_slots);
    char what[128];
    snprintf(what, sizeof what, "%d of %d slots: streaming mode, table starts empty", n_slots, total);
    ok_if(m->stream && (int)m->n_slots == n_slots && m->table[0] == -1, what, NULL);
    uint32_t chunk = chunk_for(m, n_slots), cap = qn_mst_max_tokens(m);
    snprintf(what, sizeof what, "  call cap %u tokens (%s)", cap, n_slots - prefetch >= m->c.num_experts
             ? "none: E slots are free, a layer's union fits any call" : "(slots - prefetch) / top_k");
    ok_if(n_slots - prefetch >= m->c.num_experts ? cap == UINT32_MAX : cap == chunk, what, NULL);
    struct result r;
    if (run(m, chunk, ids, T, &r)) DIE("streaming run with %d slots", n_slots);
    snprintf(what, sizeof what, "%d slots, prefetch %d (calls of <= %u tokens)", n_slots, prefetch, chunk);
    compare(what, &r, reference(res, chunk, ids, T), (size_t)T * V, V);
    struct qn_exp_stats es;
    struct qn_io_stats is;
    qn_mst_stats(m, &es, &is);
    char det[200];
    snprintf(det, sizeof det, "hit rate %.3f, %llu misses, %llu evictions, %llu bytes read; prefetch %llu fills, "
             "%llu used, precision %.3f, recall %.3f", qn_exp_hit_rate(&es), (unsigned long long)es.misses,
             (unsigned long long)es.evictions, (unsigned long long)is.bytes, (unsigned long long)es.pf_fills,
             (unsigned long long)es.pf_fills_used, qn_exp_precision(&es), qn_exp_recall(&es));
    /* GGUF experts may differ in size per layer (Q6_K down in some Q4_K_M layers): bytes_read counts the largest;
     * with unused guesses' reads dropped (qn_mst_drops_unused: QNEXT_STREAM_PF_DROP, on by default off UMA) the cache
     * still counts them as prefetch fills, while the IO engine counts the pieces already in, and again when a later
     * lookup needs the guess (read again) */
    bool drop = qn_mst_drops_unused(m);
    ok_if(es.misses > 0 && (drop ? is.bytes > 0 : gguf ? is.bytes <= es.bytes_read && is.bytes > 0 : is.bytes == es.bytes_read) &&
          (n_slots == total - 1 || es.evictions > 0) &&
          (!prefetch || es.pf_guessed > 0), "  experts were streamed", det);
    /* the guess is layer l + 1's router on layer l's MoE input: far better than chance (top_k / E <= 0.25 here) */
    if (prefetch && prefetch <= res->c.top_k)
        ok_if(qn_exp_precision(&es) > 0.5 && qn_exp_recall(&es) > 0.5 && es.pf_fills_used > 0,
              "  prefetch guesses (next layer's router on this layer's input) mostly right", det);
    else if (prefetch) /* wider than top-k: more of the used experts guessed, at the cost of precision */
        ok_if(qn_mst_guess_width(m) == prefetch && qn_exp_recall(&es) > 0.6 && es.pf_fills_used > 0,
              "  wide guesses (top prefetch of the next layer's router logits, ranked on the host) mostly cover", det);
    result_free(&r);
    qn_model_free(&m);
}

/* Every 29th backend read fails, prefetch reads included (a failed guess frees its slot; one a lookup already
 * needs is read again): the run either fails with EIO naming the file or gives the resident results, and either
 * way the slot cache is consistent afterwards with no fill left pending (no slot leaked, nothing half filled);
 * the model is freed with reads and copies possibly still in flight. */
static void test_eio_every(qn_vk *v, const char *dir, const qn_model *res, const int32_t *ids, int T)
{
    size_t V = (size_t)res->c.vocab_size;
    int K = res->c.top_k;
    qn_model *m;
    setenv("QNEXT_IO_FAULTS", "eio_every=29,delay_us=50,jitter_us=200,seed=3", 1);
    int rc = load(v, dir, (uint64_t)(2 * K + prefetch) * qn_mst_slot_bytes(res), &m);
    unsetenv("QNEXT_IO_FAULTS");
    if (rc) DIE("streaming load with eio_every");
    struct result r;
    rc = run(m, 1, ids, T, &r);
    if (!rc) compare("eio_every=29 with prefetch: no miss failed", &r, reference(res, 1, ids, T), (size_t)T * V, V);
    else ok_if(rc == -EIO && strstr(qn_errmsg(), model_file), "eio_every=29 with prefetch: EIO naming the file",
               qn_errmsg());
    const qn_exp_cache *c = qn_mst_cache(m);
    int filling = 0;
    for (int i = 0; i < qn_exp_n_slots(c); i++) {
        struct qn_exp_slot_info si;
        filling += !qn_exp_slot_get(c, i, &si) && si.state == QN_EXP_SLOT_FILLING;
    }
    ok_if(!qn_exp_check(c) && !filling, "  after it the slot cache is consistent, no fill left pending", NULL);
    result_free(&r);
    qn_model_free(&m);
}

static void test_faults(qn_vk *v, const char *dir, const qn_model *res, const int32_t *ids, int T)
{
    size_t V = (size_t)res->c.vocab_size;
    int K = res->c.top_k;
    qn_model *m;
    setenv("QNEXT_IO_FAULTS", "delay_us=100,jitter_us=300,short=0.3,eagain=0.1,seed=7", 1);
    int rc = load(v, dir, (uint64_t)(K + prefetch) * qn_mst_slot_bytes(res), &m);
    unsetenv("QNEXT_IO_FAULTS");
    if (rc) DIE("streaming load with faults");
    struct result r;
    if (run(m, chunk_for(m, K + prefetch), ids, T, &r)) DIE("streaming run with faults");
    compare("minimum slots with delays, jitter, short reads, EAGAIN", &r, reference(res, chunk_for(m, K + prefetch), ids, T),
            (size_t)T * V, V);
    result_free(&r);
    qn_model_free(&m);

    setenv("QNEXT_IO_FAULTS", "eio_at=3", 1);
    rc = load(v, dir, (uint64_t)(K + prefetch) * qn_mst_slot_bytes(res), &m);
    unsetenv("QNEXT_IO_FAULTS");
    if (rc) DIE("streaming load with eio_at");
    rc = run(m, 1, ids, T, &r);
    ok_if(rc == -EIO && strstr(qn_errmsg(), model_file) && strstr(qn_errmsg(), "offset"),
          "eio_at=3: the forward fails with EIO naming the file and offset", qn_errmsg());
    result_free(&r);
    qn_model_free(&m);
    if (prefetch) test_eio_every(v, dir, res, ids, T);
}

static void test_too_small(qn_vk *v, const char *dir, const qn_model *res)
{
    qn_model *m = NULL;
    int K = res->c.top_k;
    int rc = load(v, dir, (uint64_t)(K + prefetch) * qn_mst_slot_bytes(res) - 1, &m);
    char num[32];
    snprintf(num, sizeof num, "%d", K + prefetch);
    ok_if(rc == -ENOSPC && !m && strstr(qn_errmsg(), "at least") && strstr(qn_errmsg(), num),
          prefetch ? "a budget below top_k + prefetch slots is refused" : "a budget below top_k slots is refused",
          qn_errmsg());
    qn_model_free(&m);
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int rc = a && b ? 0 : -1;
    while (!rc && (n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) rc = -1;
    if (a) fclose(a);
    if (b && fclose(b)) rc = -1;
    return rc;
}

static void test_truncated(qn_vk *v, const char *dir, const qn_model *res, const int32_t *ids, int T)
{
    char tmp[] = "/tmp/qnext-stream-XXXXXX", a[4200], b[4200];
    if (!mkdtemp(tmp)) DIE("mkdtemp");
    const char *names[2] = { "config.json", "model.safetensors" };
    for (int i = gguf; i < 2; i++) { /* GGUF: the file itself */
        snprintf(a, sizeof a, "%s/%s", dir, names[i]);
        if (gguf) snprintf(a, sizeof a, "%s", dir);
        snprintf(b, sizeof b, "%s/%s", tmp, gguf ? model_file : names[i]);
        if (copy_file(a, b)) DIE("copying %s", a);
    }
    qn_model *m;
    if (load(v, gguf ? b : tmp, (uint64_t)(res->c.top_k + prefetch) * qn_mst_slot_bytes(res), &m)) DIE("streaming load of the copy");
    if (truncate(b, 4096)) DIE("truncating %s", b);
    struct result r;
    int rc = run(m, 1, ids, T, &r);
    ok_if(rc == -ENODATA && strstr(qn_errmsg(), tmp) && strstr(qn_errmsg(), "offset"),
          "model file truncated after load: the forward fails naming the file and offset", qn_errmsg());
    result_free(&r);
    qn_model_free(&m);
    remove(b);
    snprintf(a, sizeof a, "%s/config.json", tmp);
    remove(a);
    rmdir(tmp);
}

/* --experts host --expert-hot: the hot set pinned in the VRAM cache in front of the host tier (no gather, then the
 * gather): identical logits token by token, the hot slots still hold the top experts after the run and their table
 * entries point at them; a cache below top_k + hot slots, and a hot set without --expert-cache, are refused. */
static void host_run(const qn_model *m, const qn_model *res, const int32_t *ids, int T, const char *what, int n);

static void hot_host(qn_vk *v, const char *dir, const qn_model *res, const int32_t *ids, int T, const int32_t *top,
                     int nh)
{
    const char *he = getenv("QNEXT_TEST_STREAM_HOST");   /* 0: the larger fixtures skip the host tier */
    if (he && !strcmp(he, "0")) return;
    int K = res->c.top_k, E = res->c.num_experts;
    uint64_t slot = qn_mst_slot_bytes(res);
    qn_model *m;
    extra.experts_host = true;
    for (int g = 0; g < 2; g++) {
        setenv("QNEXT_HOST_GATHER", g ? "1" : "0", 1);
        if (load(v, dir, (uint64_t)(K + nh) * slot, &m)) DIE("--experts host load with %d hot experts", nh);
        char what[320];
        snprintf(what, sizeof what, "--experts host, %d pinned experts in %d VRAM slots%s", nh, K + nh,
                 g ? " QNEXT_HOST_GATHER=1" : "");
        host_run(m, res, ids, T, what, 1);
        int moved = 0;
        for (int i = 0; i < nh; i++)
            moved += m->table[(size_t)top[2 * i] * (size_t)E + (size_t)top[2 * i + 1]] != i;
        struct qn_eh_stats st;
        qn_eh_get_stats(m, &st);
        snprintf(what, sizeof what, "  every pinned expert's table entry points at its VRAM slot; %llu of %llu expert "
                 "reads from VRAM", (unsigned long long)st.vram_hits, (unsigned long long)st.accesses);
        ok_if(!moved && st.vram_hits > 0, what, NULL);
        qn_model_free(&m);
    }
    int rc = load(v, dir, (uint64_t)(K + nh) * slot - 1, &m);
    ok_if(rc == -ENOSPC && strstr(qn_errmsg(), "hot set"), "--experts host: a cache below top_k + hot slots is refused",
          qn_errmsg());
    qn_model_free(&m);
    rc = load(v, dir, 0, &m);
    ok_if(rc == -EINVAL && strstr(qn_errmsg(), "--expert-cache"), "--experts host: a hot set without --expert-cache is "
          "refused", qn_errmsg());
    qn_model_free(&m);
    unsetenv("QNEXT_HOST_GATHER");
    extra.experts_host = false;
}

/* --expert-trace then --expert-hot: a streaming run writes its usage file (every routed choice counted: tokens x
 * top_k x layers); a run that pins the most used experts (LFU for the rest) at the minimum budget top_k + hot is
 * bit-identical, its hot slots still hold those experts after the run; one byte less is refused naming the hot
 * set; a malformed file, or --expert-trace on a resident model, is refused with a clear message. */
static void test_hot(qn_vk *v, const char *dir, const qn_model *res, const int32_t *ids, int T)
{
    int K = res->c.top_k, L = res->c.num_layers, E = res->c.num_experts, nh = K;
    size_t V = (size_t)res->c.vocab_size;
    char tmp[] = "/tmp/qnext-hot-XXXXXX", trace[4200], bad[4200];
    if (!mkdtemp(tmp)) DIE("mkdtemp");
    snprintf(trace, sizeof trace, "%s/usage.txt", tmp);
    snprintf(bad, sizeof bad, "%s/bad.txt", tmp);
    qn_model *m;
    struct result r;
    extra.expert_trace = trace;
    if (load(v, dir, (uint64_t)(2 * K) * qn_mst_slot_bytes(res), &m)) DIE("streaming load with --expert-trace");
    if (run(m, chunk_for(m, 2 * K), ids, T, &r)) DIE("streaming run with --expert-trace");
    result_free(&r);
    qn_model_free(&m);
    extra.expert_trace = NULL;
    qn_eu *u;
    if (qn_eu_create(&u, L, E)) DIE("usage");
    int rc = qn_eu_read(u, trace);
    uint64_t sum = 0;
    for (int l = 0; l < L; l++)
        for (int e = 0; e < E; e++) sum += qn_eu_get(u, l, e);
    char det[200];
    snprintf(det, sizeof det, "%llu choices = %d tokens x top-k %d x %d layers", (unsigned long long)sum, T + NDEC, K, L);
    ok_if(!rc && sum == (uint64_t)(T + NDEC) * K * L, "--expert-trace wrote every routed choice", rc ? qn_errmsg() : det);
    int32_t top[2 * QN_EXP_MAX_K];
    nh = qn_eu_top(u, nh, top);
    qn_eu_free(&u);

    extra.expert_policy = "lfu";
    extra.expert_hot = nh;
    extra.expert_hot_from = trace;
    if (load(v, dir, (uint64_t)(K + nh) * qn_mst_slot_bytes(res), &m)) DIE("streaming load with %d hot experts", nh);
    uint32_t chunk = qn_mst_max_tokens(m) < 512 ? qn_mst_max_tokens(m) : 512;   /* UINT32_MAX: no cap */
    if (run(m, chunk, ids, T, &r)) DIE("streaming run with a hot set");
    char what[160];
    snprintf(what, sizeof what, "lfu + %d pinned experts at the minimum %d slots (calls of <= %u tokens)", nh, K + nh, chunk);
    compare(what, &r, reference(res, chunk, ids, T), (size_t)T * V, V);
    const qn_exp_cache *c = qn_mst_cache(m);
    int moved = 0;
    for (int i = 0; i < nh; i++) {
        struct qn_exp_slot_info si;
        qn_exp_slot_get(c, i, &si);
        moved += si.layer != top[2 * i] || si.expert != top[2 * i + 1] || !si.fixed || si.state != QN_EXP_SLOT_READY;
    }
    struct qn_exp_stats es;
    qn_exp_get_stats(c, -1, &es);
    snprintf(det, sizeof det, "%llu evictions, hit rate %.3f", (unsigned long long)es.evictions, qn_exp_hit_rate(&es));
    ok_if(!moved && es.evictions > 0, "  every pinned expert is still in its slot", det);
    result_free(&r);
    qn_model_free(&m);

    rc = load(v, dir, (uint64_t)(K + nh) * qn_mst_slot_bytes(res) - 1, &m);
    ok_if(rc == -ENOSPC && strstr(qn_errmsg(), "hot"), "a budget below top_k + hot slots is refused", qn_errmsg());
    qn_model_free(&m);
    hot_host(v, dir, res, ids, T, top, nh);
    FILE *f = fopen(bad, "w");
    if (!f || fprintf(f, "qnext-expert-usage 1\nlayers %d experts %d\n0 1\n", L, E) < 0 || fclose(f)) DIE("writing %s", bad);
    extra.expert_hot_from = bad;
    rc = load(v, dir, (uint64_t)(K + nh) * qn_mst_slot_bytes(res), &m);
    char where[4300];
    snprintf(where, sizeof where, "%s:3:", bad);
    ok_if(rc < 0 && !m && strstr(qn_errmsg(), where), "a malformed usage file is refused naming file and line", qn_errmsg());
    qn_model_free(&m);
    memset(&extra, 0, sizeof extra);
    extra.expert_trace = trace;
    rc = load(v, dir, 0, &m);
    ok_if(rc == -EINVAL && !m && strstr(qn_errmsg(), "--expert-trace"), "--expert-trace on a resident model is refused",
          qn_errmsg());
    qn_model_free(&m);
    memset(&extra, 0, sizeof extra);
    remove(trace);
    remove(bad);
    rmdir(tmp);
}

/* No --expert-cache and experts beyond the pool bindings (each pool capped at 2 slots, 8 pools = 16 slots): the
 * load streams by itself through the largest cache that binds, bit-identical to resident (GGUF; the safetensors
 * case is in tests/model/test_forward). */
static void test_auto(qn_vk *v, const char *dir, const qn_model *res, const int32_t *ids, int T)
{
    size_t V = (size_t)res->c.vocab_size;
    uint32_t all = (uint32_t)(res->c.num_layers * res->c.num_experts);
    qn_model *m;
    extra.pool_bytes_max = 2 * res->slot_bytes;
    int rc = load(v, dir, 0, &m);
    extra.pool_bytes_max = 0;
    if (rc) DIE("load with pools capped at 2 slots");
    char what[160];
    snprintf(what, sizeof what, "no --expert-cache, experts beyond the pool bindings: streams through %u of %u slots",
             m->n_slots, all);
    ok_if(m->stream && m->n_slots < all && m->n_slots >= (uint32_t)res->c.top_k && m->table[0] == -1, what, NULL);
    uint32_t chunk = qn_mst_max_tokens(m) < 512 ? qn_mst_max_tokens(m) : 512;   /* UINT32_MAX: no cap */
    struct result r;
    if (run(m, chunk, ids, T, &r)) DIE("automatic streaming run");
    snprintf(what, sizeof what, "  automatic streaming (calls of <= %u tokens)", chunk);
    compare(what, &r, reference(res, chunk, ids, T), (size_t)T * V, V);
    result_free(&r);
    qn_model_free(&m);
}

/* --experts host (expert_host.h): every expert resident in system-memory pools (QN_MEM_HOST), the table in
 * device memory; logits identical to resident mode at a full chunk and token by token. Then with a VRAM cache in
 * front of it (--expert-cache): none (less than a slot), top-k slots, and 7 pools' worth (pools capped at 2 E slots:
 * several VRAM pools, binding 7 the layer's host slab): identical logits, copies made, and the large cache serves
 * reads from VRAM; and the decode gather into VRAM staging (QNEXT_HOST_GATHER=1 and 2) next to top-k cache slots. */
static void host_run(const qn_model *m, const qn_model *res, const int32_t *ids, int T, const char *what, int n)
{
    size_t V = (size_t)res->c.vocab_size;
    uint32_t chunks[2] = { 1, 512 };   /* token by token (every call admits and gathers), then (n = 2) a full chunk */
    for (int i = 0; i < n; i++) {
        struct result r;
        if (run(m, chunks[i], ids, T, &r)) DIE("%s run", what);
        char msg[200];
        snprintf(msg, sizeof msg, "  %s, calls of <= %u tokens", what, chunks[i]);
        compare(msg, &r, reference(res, chunks[i], ids, T), (size_t)T * V, V);
        result_free(&r);
    }
}

/* QNEXT_HOST_MMAP=1: the host tier on the model files' page cache (expert_map.h: each layer's experts imported
 * from a read-only mapping, no fill, no system-memory pools; every call gathers, prefill the union of its routed
 * experts): identical logits token by token and at a full chunk, with no VRAM cache and with top-k + 4 cache slots
 * (admissions copied part by part from the import); less host-visible memory in use than the experts' bytes. */
static void host_mmap(qn_vk *v, const char *dir, const qn_model *res, const int32_t *ids, int T)
{
    if (!qn_buf_import_align(v)) {
        printf("SKIP QNEXT_HOST_MMAP cases: the device lacks VK_EXT_external_memory_host\n");
        return;
    }
    uint64_t slot = qn_mst_slot_bytes(res), budgets[2] = { 0, (uint64_t)(res->c.top_k + 4) * slot };
    setenv("QNEXT_HOST_MMAP", "1", 1);
    for (int b = 0; b < 2; b++) {
        qn_model *m;
        if (load(v, dir, budgets[b], &m)) DIE("load with --experts host QNEXT_HOST_MMAP=1");
        struct qn_mem_stats ms;
        qn_mem_stats(v, &ms);
        struct qn_eh_stats st;
        qn_eh_get_stats(m, &st);
        char what[240];
        snprintf(what, sizeof what, "QNEXT_HOST_MMAP=1 --expert-cache %.1f KiB: the page cache imported, %u VRAM slots, "
                 "host-visible memory in use %.1f KiB < the experts' %.1f KiB", budgets[b] / 1024.0, st.n_vram,
                 ms.host_used / 1024.0, res->expert_bytes / 1024.0);
        ok_if(qn_eh_mapped(m) && ms.host_used < res->expert_bytes && (b == 0) == (st.n_vram == 0), what, NULL);
        host_run(m, res, ids, T, b ? "  QNEXT_HOST_MMAP=1 with a VRAM cache" : "  QNEXT_HOST_MMAP=1", 2);
        if (b) {
            qn_eh_get_stats(m, &st);
            snprintf(what, sizeof what, "  %llu admitted from the page cache, %llu of %llu reads from VRAM",
                     (unsigned long long)st.fills, (unsigned long long)st.vram_hits, (unsigned long long)st.accesses);
            ok_if(st.fills > 0 && st.vram_hits > 0, what, NULL);
        }
        qn_model_free(&m);
    }
    unsetenv("QNEXT_HOST_MMAP");
}

static void test_host(qn_vk *v, const char *dir, const qn_model *res, const int32_t *ids, int T)
{
    uint32_t all = (uint32_t)(res->c.num_layers * res->c.num_experts), E = (uint32_t)res->c.num_experts;
    uint32_t K = (uint32_t)res->c.top_k;
    uint64_t slot = qn_mst_slot_bytes(res);
    qn_model *m;
    extra.experts_host = true;
    setenv("QNEXT_HOST_GATHER", "0", 1); /* (the default is 1: the gather cases are the last two) */
    if (load(v, dir, 0, &m)) DIE("load with --experts host");
    bool id = true;
    for (uint32_t i = 0; i < all; i++) id = id && m->table[i] == (int32_t)i;
    ok_if(!m->stream && !m->host_tier && m->experts_host && m->n_slots == all && id &&
          m->pools[0]->kind == QN_MEM_HOST && (!m->d_n_pools || m->dpools[0]->kind == QN_MEM_HOST) &&
          m->slot_table->kind != QN_MEM_HOST,
          "--experts host: every expert resident in QN_MEM_HOST pools (slot = l * E + e), the table in VRAM", NULL);
    host_run(m, res, ids, T, "--experts host", 2);
    qn_model_free(&m);
    /* the last two: the decode gather into VRAM staging next to top-k cache slots, QNEXT_HOST_GATHER=1 (K staging
     * slots, admissions from system memory) and 2 (per-layer staging, admissions copied from it in VRAM) */
    uint64_t budgets[5] = { 1, K * slot, (uint64_t)all * slot, K * slot, K * slot };
    uint32_t want[5] = { 0, K, 7 * 2 * E < all ? 7 * 2 * E : all, K, K };
    for (int b = 0; b < 5; b++) {
        setenv("QNEXT_HOST_GATHER", b < 3 ? "0" : b == 3 ? "1" : "2", 1);
        extra.pool_bytes_max = b == 2 ? 2 * E * res->slot_bytes : 0;
        int rc = load(v, dir, budgets[b], &m);
        extra.pool_bytes_max = 0;
        if (rc) DIE("load with --experts host --expert-cache %llu", (unsigned long long)budgets[b]);
        struct qn_eh_stats st;
        qn_eh_get_stats(m, &st);
        char what[200];
        snprintf(what, sizeof what, "--experts host --expert-cache %.1f KiB%s: %u VRAM slots in %u pools (want %u)",
                 budgets[b] / 1024.0, b == 3 ? " QNEXT_HOST_GATHER=1" : b == 4 ? " QNEXT_HOST_GATHER=2" : "",
                 st.n_vram, m->n_pools, want[b]);
        ok_if(m->host_tier && !m->stream && st.n_vram == want[b] && m->table[0] >= (int32_t)(7 * m->slots_per_pool),
              what, NULL);
        host_run(m, res, ids, T, what, 1);
        qn_eh_get_stats(m, &st);
        snprintf(what, sizeof what, "  %u VRAM slots: %llu expert reads, %llu from VRAM, %llu admitted, %llu evicted",
                 st.n_vram, (unsigned long long)st.accesses, (unsigned long long)st.vram_hits,
                 (unsigned long long)st.fills, (unsigned long long)st.evictions);
        ok_if(st.accesses > 0 && (b == 0 ? st.fills == 0 && st.vram_hits == 0 : st.fills > 0) &&
              (b != 2 || st.vram_hits > 0), what, NULL);
        if (b >= 3) { /* the last call (a decode step) gathered: some entries point at the staging pool */
            int32_t *tab = xmalloc(sizeof *tab * all);
            uint32_t lo = (m->n_pools - 1) * m->slots_per_pool, hi = 7 * m->slots_per_pool, staged = 0;
            if (qn_buf_read(v, m->slot_table, 0, tab, sizeof *tab * all)) DIE("reading the slot table");
            for (uint32_t i = 0; i < all; i++) staged += tab[i] >= (int32_t)lo && tab[i] < (int32_t)hi;
            snprintf(what, sizeof what, "  the gather redirected %u table entries to staging slots", staged);
            ok_if(staged > 0, what, NULL);
            free(tab);
        }
        qn_model_free(&m);
    }
    unsetenv("QNEXT_HOST_GATHER");
    host_mmap(v, dir, res, ids, T);
    extra.experts_host = false;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    qn_test_crash_report();
    const char *dir = argc > 2 ? argv[2] : argv[1];
    gguf = qn_model_path_is_gguf(dir);
    if (gguf) model_file = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    struct qn_vk_params vp;
    qn_vk_default_params(&vp);
    qn_log_set(NULL, NULL, QN_LOG_WARN);
    qn_vk *v;
    int rc = qn_vk_open(&v, &vp);
    if (rc == QN_E_SKIP || rc == QN_E_NODEV) {
        fprintf(stderr, "\n*** SKIP test_stream: %s ***\n\n", qn_errmsg());
        return 77;
    }
    if (rc) DIE("opening the Vulkan device");
    qn_model *res;
    if (load(v, dir, 0, &res)) DIE("resident load of %s", dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/expected.safetensors", argv[1]);
    qn_st_store *e;
    if (qn_st_open(&e, path)) DIE("opening %s", path);
    const qn_st_tensor *t = qn_st_find(e, "prefill0.input_ids");
    if (!t) DIE("prefill0.input_ids missing");
    int T = (int)qn_st_numel(t);
    int32_t *ids = xmalloc((size_t)T * 4);
    if (qn_st_read_i32(e, "prefill0.input_ids", ids, (size_t)T)) DIE("reading prompt");
    qn_st_close(&e);
    if (T > 24) T = 24;   /* runtime on lavapipe: the minimum budget runs token by token */
    int K = res->c.top_k, total = res->c.num_layers * res->c.num_experts;
    printf("fixture %s: %d layers x %d experts, top-k %d, slot %.1f KiB; minimum budget = top_k = %d slots; "
           "prompt of %d tokens, %d decode steps\n", dir, res->c.num_layers, res->c.num_experts, K,
           (double)qn_mst_slot_bytes(res) / 1024.0, K, T, NDEC);
    ok_if(!res->stream, "--expert-cache 0: every expert resident", NULL);
    /* QNEXT_TEST_STREAM_QUICK=1 (variants of a path the full run covers: staged / BAR pools): three budgets,
     * faults, buffered reads and prefetch only */
    const char *qk = getenv("QNEXT_TEST_STREAM_QUICK");
    bool quick = qk && !strcmp(qk, "1");
    int budgets[5] = { total - 1, total / 2, 2 * K, K + 1, K };
    for (int i = 0; i < 5; i++)
        if (budgets[i] >= K && budgets[i] < total && (i == 0 || budgets[i] != budgets[i - 1]) &&
            (!quick || i == 1 || i == 4))
            test_budget(v, dir, res, budgets[i], ids, T);
    test_faults(v, dir, res, ids, T);
    if (!quick) {
        test_too_small(v, dir, res);
        test_truncated(v, dir, res, ids, T);
        test_hot(v, dir, res, ids, T);
        if (gguf) test_auto(v, dir, res, ids, T);
        const char *he = getenv("QNEXT_TEST_STREAM_HOST");   /* 0: the larger fixtures skip the host tier */
        if (!(he && !strcmp(he, "0"))) test_host(v, dir, res, ids, T);
    }
    io_mode = QN_IO_BUFFERED;   /* the pread pool on the page cache (auto picks direct on this filesystem) */
    test_budget(v, dir, res, 2 * K, ids, T);
    io_mode = QN_IO_AUTO;
    /* prefetch on: K / 2 slots of guesses (the ids the next layer used for the previous call) */
    prefetch = K / 2 > 0 ? K / 2 : 1;
    printf("prefetch %d: minimum budget = top_k + prefetch = %d slots\n", prefetch, K + prefetch);
    int pbud[3] = { total / 2, 2 * K + prefetch, K + prefetch };
    for (int i = 0; i < 3; i++)
        if (pbud[i] < total && (i == 0 || pbud[i] != pbud[i - 1]) && (!quick || i == 2))
            test_budget(v, dir, res, pbud[i], ids, T);
    test_faults(v, dir, res, ids, T);
    if (!quick) test_too_small(v, dir, res);
    /* more guesses than top-k (qn_mst_guess_top: the host ranks the guess node's logits) */
    prefetch = K + (K / 2 > 0 ? K / 2 : 1);
    if (K + prefetch < total) {
        printf("prefetch %d (wider than top-k %d): minimum budget %d slots\n", prefetch, K, K + prefetch);
        test_budget(v, dir, res, K + prefetch, ids, T);
    }
    free(ids);
    qn_model_free(&res);
    qn_vk_close(&v);
    uint32_t vmsgs = qn_vk_validation_count();
    if (vmsgs) {
        printf("FAIL %u validation message(s)\n", vmsgs);
        failures++;
    }
    printf("%s: %d failure(s)\n", dir, failures);
    return failures ? 1 : 0;
}
