/* test_experts.c — the expert slot cache (runtime/experts.c).
 *   - minimum budget rule (message names both numbers) and parameter checks;
 *   - property test over random traces with random completion lags, late and failed fills and random
 *     prefetches, for every policy: a slot read by a submission that has not completed is never given
 *     away, nothing is evicted unless evictable, results match the table, invariants hold after every
 *     call, and -EAGAIN's wait_for is enough and never a future submission;
 *   - at exactly the minimum slot count the decode protocol never gets stuck;
 *   - hit rates: LFU and the pinned hot set beat LRU on a skewed trace, all match on a uniform one;
 *   - prefetch precision/recall arithmetic on a constructed trace. */
#include "io_util.h"
#include "runtime/experts.h"

#include <math.h>

static struct qn_exp_params params(int L, int E, int k, int pf, int slots, const struct qn_exp_policy *pol)
{
    return (struct qn_exp_params){ .n_layers = L, .n_experts = E, .top_k = k, .n_prefetch = pf,
                                   .expert_bytes = 1000, .n_slots = slots, .policy = pol };
}

static void test_budget(void)
{
    int n = 0;
    uint64_t eb = 1945600;   /* ~1.9 MB: one Q4_K expert */
    CHECK(qn_exp_slots_for_budget(11 * eb + eb / 2, eb, 10, 2, 0, 512 * 48, &n) == -ENOSPC, "11 slots < 12");
    CHECK(strstr(qn_errmsg(), "holds 11 slots") && strstr(qn_errmsg(), "at least 12"), "message: %s", qn_errmsg());
    CHECK(qn_exp_slots_for_budget(12 * eb, eb, 10, 2, 0, 512 * 48, &n) == 0 && n == 12, "exactly 12: %d", n);
    CHECK(qn_exp_slots_for_budget(8ull << 30, eb, 10, 2, 0, 512 * 48, &n) == 0 && n == 4415, "8 GiB: %d", n);
    CHECK(qn_exp_slots_for_budget(1ull << 50, eb, 10, 2, 0, 512 * 48, &n) == 0 && n == 512 * 48, "capped: %d", n);
    CHECK(qn_exp_slots_for_budget(20 * eb, eb, 10, 2, 9, 512 * 48, &n) == -ENOSPC && strstr(qn_errmsg(), "21"),
          "hot slots count: %s", qn_errmsg());
    CHECK(qn_exp_min_slots(10, 2, 0) == 12, "min");
    qn_exp_cache *c;
    struct qn_exp_params p = params(4, 32, 10, 2, 11, NULL);
    CHECK(qn_exp_create(&c, &p) == -ENOSPC && !c && strstr(qn_errmsg(), "11 slots"), "create below min: %s",
          qn_errmsg());
    p.n_slots = 12;
    CHECK(qn_exp_create(&c, &p) == 0, "create at min");
    int32_t ids[10] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 8 };
    struct qn_exp_result r;
    CHECK(qn_exp_lookup(c, 0, ids, 10, 1, 0, &r) == -EINVAL && strstr(qn_errmsg(), "repeated"), "duplicate id");
    ids[9] = 32;
    CHECK(qn_exp_lookup(c, 0, ids, 10, 1, 0, &r) == -EINVAL, "id out of range");
    ids[9] = 9;
    CHECK(qn_exp_lookup(c, 4, ids, 10, 1, 0, &r) == -EINVAL, "layer out of range");
    CHECK(qn_exp_lookup(c, 0, ids, 10, 1, 1, &r) == -EINVAL, "use must be after completed");
    CHECK(qn_exp_lookup(c, 0, ids, 10, 1, 0, &r) == 0 && r.n_fill == 10, "first lookup");
    CHECK(qn_exp_table_dirty(c, 0) && !qn_exp_table_dirty(c, 1), "dirty flags");
    qn_exp_table_clean(c, -1);
    for (int i = 0; i < 10; i++) CHECK(qn_exp_fill_done(c, r.fill[i].slot) == 0, "fill done");
    CHECK(qn_exp_fill_done(c, r.fill[0].slot) == -EINVAL, "double fill done");
    CHECK(qn_exp_lookup(c, 0, ids, 10, 2, 1, &r) == 0 && r.n_hit == 10 && !qn_exp_table_dirty(c, 0), "all hits");
    const int32_t *tab = qn_exp_table(c);
    for (int i = 0; i < 10; i++) CHECK(tab[ids[i]] == r.slot[i], "device table");
    CHECK(tab[32 + 0] == -1, "absent is -1");
    /* another layer needs 10 new slots but only 2 are free and the rest is pinned by value 2 */
    int32_t ids2[10] = { 10, 11, 12, 13, 14, 15, 16, 17, 18, 19 };
    CHECK(qn_exp_lookup(c, 1, ids2, 10, 3, 1, &r) == -EAGAIN && r.wait_for == 2, "EAGAIN wait_for %llu",
          (unsigned long long)r.wait_for);
    CHECK(qn_exp_check(c) == 0, "unchanged after EAGAIN: %s", qn_errmsg());
    CHECK(qn_exp_lookup(c, 1, ids2, 10, 3, 2, &r) == 0 && r.n_fill == 10, "after waiting");
    qn_exp_destroy(&c);
    CHECK(!c, "destroy NULLs");
    printf("budget/params ok\n");
}

/* ---- property test ---------------------------------------------------------------------------- */

#define MAXSUB 64

struct sub { uint64_t value; int n; int32_t slot[QN_EXP_MAX_K], layer[QN_EXP_MAX_K], expert[QN_EXP_MAX_K]; };
struct pend { int32_t slot; int64_t due; };

struct sim {
    qn_exp_cache *c;
    qn_rng r;
    int n_slots;
    struct qn_exp_slot_info *snap;
    struct sub subs[MAXSUB];
    int n_subs;
    struct pend *pend;
    int n_pend;
    uint64_t completed;
    int64_t step;
    long eagain, enospc, evictions_checked;
};

static void snapshot(struct sim *s)
{
    for (int i = 0; i < s->n_slots; i++) qn_exp_slot_get(s->c, i, &s->snap[i]);
}

/* Every slot that changed owner since the snapshot was free or evictable at the call's completed value. */
static void check_evictions(struct sim *s, uint64_t completed, const char *what)
{
    for (int i = 0; i < s->n_slots; i++) {
        struct qn_exp_slot_info now, *was = &s->snap[i];
        qn_exp_slot_get(s->c, i, &now);
        if (was->state == QN_EXP_SLOT_FREE || (now.layer == was->layer && now.expert == was->expert)) continue;
        s->evictions_checked++;
        CHECK(was->state == QN_EXP_SLOT_READY && !was->fixed && was->stamp <= completed,
              "%s step %lld: slot %d (%d,%d) state %d stamp %llu fixed %d evicted at completed %llu", what,
              (long long)s->step, i, was->layer, was->expert, was->state, (unsigned long long)was->stamp, was->fixed,
              (unsigned long long)completed);
    }
}

/* Slots read by submissions that have not completed still hold what they read. */
static void check_subs(struct sim *s)
{
    int w = 0;
    for (int i = 0; i < s->n_subs; i++) {
        struct sub *b = &s->subs[i];
        if (b->value <= s->completed) continue;
        for (int j = 0; j < b->n; j++) {
            struct qn_exp_slot_info in;
            qn_exp_slot_get(s->c, b->slot[j], &in);
            CHECK(in.layer == b->layer[j] && in.expert == b->expert[j] && in.stamp >= b->value,
                  "step %lld: slot %d read by in-flight value %llu now holds (%d,%d), expected (%d,%d)",
                  (long long)s->step, b->slot[j], (unsigned long long)b->value, in.layer, in.expert, b->layer[j],
                  b->expert[j]);
        }
        s->subs[w++] = *b;
    }
    s->n_subs = w;
}

static void add_sub(struct sim *s, uint64_t value, int32_t layer, const struct qn_exp_result *r, const int32_t *ids)
{
    CHECK(s->n_subs < MAXSUB, "too many subs");
    struct sub *b = &s->subs[s->n_subs++];
    b->value = value;
    b->n = 0;
    for (int i = 0; i < r->k; i++) {
        if (r->slot[i] < 0) continue;
        b->slot[b->n] = r->slot[i];
        b->layer[b->n] = layer;
        b->expert[b->n++] = ids[i];
    }
}

static void add_fills(struct sim *s, const struct qn_exp_result *r)
{
    for (int i = 0; i < r->n_fill; i++) {
        struct qn_exp_slot_info in;
        qn_exp_slot_get(s->c, r->fill[i].slot, &in);
        CHECK(in.state == QN_EXP_SLOT_FILLING && in.layer == r->fill[i].layer && in.expert == r->fill[i].expert,
              "fill slot state");
        s->pend[s->n_pend++] = (struct pend){ r->fill[i].slot, s->step + (int64_t)(qn_rng_u64(&s->r) % 4) };
    }
}

static void finish_fills(struct sim *s, bool all)
{
    int w = 0;
    for (int i = 0; i < s->n_pend; i++) {
        if (!all && s->pend[i].due > s->step) {
            s->pend[w++] = s->pend[i];
            continue;
        }
        bool fail = !all && qn_rng_uniform(&s->r) < 0.03f;
        CHECK((fail ? qn_exp_fill_failed : qn_exp_fill_done)(s->c, s->pend[i].slot) == 0, "fill end");
        /* a failed fill frees the slot: drop it from the in-flight reads that would have read it */
        for (int j = 0; fail && j < s->n_subs; j++) {
            struct sub *b = &s->subs[j];
            for (int q = 0; q < b->n; q++)
                if (b->slot[q] == s->pend[i].slot) {
                    b->n--;
                    b->slot[q] = b->slot[b->n];
                    b->layer[q] = b->layer[b->n];
                    b->expert[q] = b->expert[b->n];
                    q--;
                }
        }
    }
    s->n_pend = w;
}

static void check_result(struct sim *s, int32_t layer, const int32_t *ids, const struct qn_exp_result *r)
{
    int fills = 0;
    for (int i = 0; i < r->k; i++) {
        if (r->kind[i] == QN_EXP_SKIP) continue;
        struct qn_exp_slot_info in;
        CHECK(qn_exp_slot_get(s->c, r->slot[i], &in) == 0, "slot");
        CHECK(in.layer == layer && in.expert == ids[i], "result slot %d holds (%d,%d), not (%d,%d)", r->slot[i],
              in.layer, in.expert, layer, ids[i]);
        CHECK(r->kind[i] != QN_EXP_HIT || in.state == QN_EXP_SLOT_READY, "HIT but not ready");
        CHECK(r->kind[i] != QN_EXP_PENDING || in.state == QN_EXP_SLOT_FILLING, "PENDING but not filling");
        if (r->kind[i] == QN_EXP_MISS) CHECK(r->fill[fills++].slot == r->slot[i], "fill order");
    }
    CHECK(fills == r->n_fill, "fill count");
}

/* One lookup with the retry protocol: -EAGAIN -> wait (completed = wait_for), -ENOSPC -> finish fills. */
static void sim_lookup(struct sim *s, int32_t layer, const int32_t *ids, int k, uint64_t use)
{
    struct qn_exp_result r;
    for (int tries = 0;; tries++) {
        CHECK(tries < 8, "lookup never succeeds");
        snapshot(s);
        int rc = qn_exp_lookup(s->c, layer, ids, k, use, s->completed, &r);
        CHECK(qn_exp_check(s->c) == 0, "invariants after lookup rc %d: %s", rc, qn_errmsg());
        if (rc == -EAGAIN) {
            s->eagain++;
            CHECK(r.wait_for > s->completed && r.wait_for < use, "wait_for %llu, completed %llu, use %llu",
                  (unsigned long long)r.wait_for, (unsigned long long)s->completed, (unsigned long long)use);
            s->completed = r.wait_for;
            check_subs(s);
            continue;
        }
        if (rc == -ENOSPC) {
            s->enospc++;
            finish_fills(s, true);
            continue;
        }
        CHECK(rc == 0, "lookup failed: %s", qn_errmsg());
        check_evictions(s, s->completed, "lookup");
        check_result(s, layer, ids, &r);
        add_sub(s, use, layer, &r, ids);
        add_fills(s, &r);
        return;
    }
}

static void sim_prefetch(struct sim *s, int32_t layer, const int32_t *truth, int k, uint64_t use, int n_experts)
{
    int32_t g[QN_EXP_MAX_K];
    int n = 0;
    for (int i = 0; i < k; i++) {            /* half right, half random distinct guesses */
        int32_t id = qn_rng_u64(&s->r) & 1 ? truth[i] : (int32_t)(qn_rng_u64(&s->r) % (uint64_t)n_experts);
        bool dup = false;
        for (int j = 0; j < n; j++) dup |= g[j] == id;
        if (!dup) g[n++] = id;
    }
    struct qn_exp_result r;
    snapshot(s);
    CHECK(qn_exp_prefetch(s->c, layer, g, n, use, s->completed, &r) == 0, "prefetch: %s", qn_errmsg());
    CHECK(qn_exp_check(s->c) == 0, "invariants after prefetch: %s", qn_errmsg());
    check_evictions(s, s->completed, "prefetch");
    check_result(s, layer, g, &r);
    struct qn_exp_result pinned = r;         /* only prefetch fills are pinned by `use` */
    for (int i = 0; i < r.k; i++)
        if (r.kind[i] != QN_EXP_MISS) pinned.slot[i] = -1;
    add_sub(s, use, layer, &pinned, g);
    add_fills(s, &r);
}

static void property(const struct qn_exp_policy *pol, uint64_t seed)
{
    const int L = 6, E = 40, k = 6, pf = 4;
    struct qn_exp_trace t;
    CHECK(qn_exp_trace_synth(&t, L, E, k, 400, 0.8, seed) == 0, "synth");
    struct sim s = { 0 };
    qn_rng_seed(&s.r, seed * 7 + 1);
    int32_t hot[2 * 8];
    int n_hot = pol == &qn_exp_policy_pinned ? qn_exp_hot_from_trace(&t, 8, hot) : 0;
    int min = qn_exp_min_slots(k, pf, n_hot);
    s.n_slots = min + (int)(qn_rng_u64(&s.r) % 40);
    struct qn_exp_params p = params(L, E, k, pf, s.n_slots, pol);
    p.hot = hot;
    p.n_hot = n_hot;
    CHECK(qn_exp_create(&s.c, &p) == 0, "create: %s", qn_errmsg());
    s.snap = calloc((size_t)s.n_slots, sizeof *s.snap);
    s.pend = calloc((size_t)s.n_slots * 4 + 64, sizeof *s.pend);
    struct qn_exp_fill hf[8];
    int nh = qn_exp_hot_fills(s.c, hf, 8);
    CHECK(nh == n_hot, "hot fills %d", nh);
    for (int i = 0; i < nh; i++) s.pend[s.n_pend++] = (struct pend){ hf[i].slot, 2 };
    uint64_t value = 0;
    for (s.step = 0; s.step < t.n_steps; s.step++) {
        uint64_t use = ++value;
        uint64_t lag = qn_rng_u64(&s.r) % 5;                 /* earlier submissions still running */
        if (use - 1 > lag && use - 1 - lag > s.completed) s.completed = use - 1 - lag;
        check_subs(&s);
        finish_fills(&s, false);
        const int32_t *ids = &t.ids[s.step * k];
        sim_lookup(&s, t.layer[s.step], ids, k, use);
        if (s.step + 1 < t.n_steps && qn_rng_uniform(&s.r) < 0.4f)
            sim_prefetch(&s, t.layer[s.step + 1], &t.ids[(s.step + 1) * k], k, value + 1, E);
        check_subs(&s);
    }
    struct qn_exp_stats st;
    qn_exp_get_stats(s.c, -1, &st);
    CHECK(st.lookups == (uint64_t)t.n_steps && st.hits + st.misses == st.accesses, "stats add up");
    CHECK(s.evictions_checked > 100, "too few evictions exercised (%ld)", s.evictions_checked);
    printf("property %-6s slots %3d: %lld steps, %ld evictions checked, %ld EAGAIN, %ld ENOSPC, hit %.3f, "
           "prefetch precision %.2f recall %.2f\n", pol->name, s.n_slots, (long long)t.n_steps, s.evictions_checked,
           s.eagain, s.enospc, qn_exp_hit_rate(&st), qn_exp_precision(&st), qn_exp_recall(&st));
    free(s.snap);
    free(s.pend);
    qn_exp_destroy(&s.c);
    qn_exp_trace_free(&t);
}

/* At exactly the minimum size the decode protocol (the previous layer's dispatch completes before the
 * next router result is known; prefetch for the next layer pins with that layer's value) never sticks. */
static void minimum_protocol(const struct qn_exp_policy *pol)
{
    const int L = 8, E = 64, k = 10, pf = 3;
    struct qn_exp_trace t;
    CHECK(qn_exp_trace_synth(&t, L, E, k, 100, 0.5, 99) == 0, "synth");
    int32_t hot[4];
    int n_hot = pol == &qn_exp_policy_pinned ? qn_exp_hot_from_trace(&t, 2, hot) : 0;
    struct qn_exp_params p = params(L, E, k, pf, qn_exp_min_slots(k, pf, n_hot), pol);
    p.hot = hot;
    p.n_hot = n_hot;
    qn_exp_cache *c;
    CHECK(qn_exp_create(&c, &p) == 0, "create");
    struct qn_exp_fill hf[2];
    for (int i = 0, n = qn_exp_hot_fills(c, hf, 2); i < n; i++) qn_exp_fill_done(c, hf[i].slot);
    struct qn_exp_result r;
    long waits = 0;
    for (int64_t s = 0; s < t.n_steps; s++) {
        uint64_t use = (uint64_t)s + 1, completed = use - 2 + (s == 0);   /* layer s-1's dispatch may still run */
        int rc = qn_exp_lookup(c, t.layer[s], &t.ids[s * k], k, use, completed, &r);
        if (rc == -EAGAIN) {
            waits++;
            CHECK(r.wait_for == use - 1, "minimum: wait_for %llu at use %llu", (unsigned long long)r.wait_for,
                  (unsigned long long)use);
            rc = qn_exp_lookup(c, t.layer[s], &t.ids[s * k], k, use, r.wait_for, &r);
        }
        CHECK(rc == 0, "minimum: step %lld: %s", (long long)s, qn_errmsg());
        for (int i = 0; i < r.n_fill; i++) qn_exp_fill_done(c, r.fill[i].slot);
        if (s + 1 < t.n_steps) {   /* guess the next layer: its first 3 true ids and 3 wrong ones */
            int32_t g[6] = { t.ids[(s + 1) * k], t.ids[(s + 1) * k + 1], t.ids[(s + 1) * k + 2], -1, -1, -1 };
            int n = 3;
            for (int32_t id = 0; n < 6; id++) {
                bool in = false;
                for (int j = 0; j < k; j++) in |= t.ids[(s + 1) * k + j] == id;
                if (!in) g[n++] = id;
            }
            CHECK(qn_exp_prefetch(c, t.layer[s + 1], g, 6, use + 1, use - 1, &r) == 0, "prefetch");
            for (int i = 0; i < r.n_fill; i++) qn_exp_fill_done(c, r.fill[i].slot);
        }
        CHECK(qn_exp_check(c) == 0, "invariants: %s", qn_errmsg());
    }
    struct qn_exp_stats st;
    qn_exp_get_stats(c, -1, &st);
    CHECK(st.pf_fills > 0 && waits > 0, "minimum: prefetch %llu fills, %ld waits", (unsigned long long)st.pf_fills,
          waits);
    printf("minimum %-6s %d slots: %lld steps ok, %ld waits for the previous layer\n", pol->name, p.n_slots,
           (long long)t.n_steps, waits);
    qn_exp_destroy(&c);
    qn_exp_trace_free(&t);
}

/* ---- policies on the same trace ------------------------------------------------------------- */

static double replay_hit(const struct qn_exp_policy *pol, const struct qn_exp_trace *t, const struct qn_exp_trace *train,
                         int n_slots, int n_hot, int64_t warmup, int lag)
{
    int32_t *hot = calloc((size_t)(2 * (n_hot + 1)), sizeof *hot);
    if (n_hot) CHECK(qn_exp_hot_from_trace(train, n_hot, hot) == n_hot, "hot set");
    struct qn_exp_params p = params(t->n_layers, t->n_experts, t->top_k, 0, n_slots, pol);
    p.hot = hot;
    p.n_hot = n_hot;
    qn_exp_cache *c;
    CHECK(qn_exp_create(&c, &p) == 0, "create: %s", qn_errmsg());
    struct qn_exp_replay_opts o = { .warmup_steps = warmup, .lag = lag, .check = lag > 0 };
    CHECK(qn_exp_replay(c, t, &o) == 0, "replay: %s", qn_errmsg());
    struct qn_exp_stats st;
    qn_exp_get_stats(c, -1, &st);
    CHECK(st.accesses == (uint64_t)(t->n_steps - warmup) * (uint64_t)t->top_k, "accesses");
    double hr = qn_exp_hit_rate(&st);
    for (int l = 0; l < t->n_layers; l++) {
        struct qn_exp_stats ls;
        qn_exp_get_stats(c, l, &ls);
        CHECK(ls.accesses > 0 && fabs(qn_exp_hit_rate(&ls) - hr) < 0.2, "layer %d hit %.3f vs %.3f", l,
              qn_exp_hit_rate(&ls), hr);
    }
    qn_exp_destroy(&c);
    free(hot);
    return hr;
}

static void policies(void)
{
    const int L = 4, E = 128, k = 8, tokens = 3000, train_tokens = 1000;
    const int slots = L * E / 4, hot = slots * 3 / 4;
    struct qn_exp_trace t, train;
    /* the same seed gives the same popularity and a prefix: train on the first 1000 tokens, measure after */
    CHECK(qn_exp_trace_synth(&t, L, E, k, tokens, 1.0, 4242) == 0, "synth");
    CHECK(qn_exp_trace_synth(&train, L, E, k, train_tokens, 1.0, 4242) == 0, "synth");
    CHECK(!memcmp(t.ids, train.ids, (size_t)train.n_steps * k * sizeof *t.ids), "training trace is a prefix");
    int64_t warm = train.n_steps;
    double lru = replay_hit(&qn_exp_policy_lru, &t, &train, slots, 0, warm, 0);
    double lfu = replay_hit(&qn_exp_policy_lfu, &t, &train, slots, 0, warm, 0);
    double pin = replay_hit(&qn_exp_policy_pinned, &t, &train, slots, hot, warm, 0);
    printf("skewed  (zipf 1.0, %d of %d experts cached): hit LRU %.3f  LFU %.3f  pinned %.3f\n", slots, L * E, lru,
           lfu, pin);
    CHECK(lfu > lru + 0.04 && pin > lru + 0.04, "skewed: LFU %.3f and pinned %.3f must beat LRU %.3f by 0.04", lfu,
          pin, lru);
    double lru_lag = replay_hit(&qn_exp_policy_lru, &t, &train, slots, 0, warm, 3);
    CHECK(fabs(lru_lag - lru) < 0.03, "lag 3 changes LRU hit %.3f -> %.3f", lru, lru_lag);
    qn_exp_trace_free(&t);
    qn_exp_trace_free(&train);

    CHECK(qn_exp_trace_synth(&t, L, E, k, tokens, 0.0, 777) == 0, "synth");
    CHECK(qn_exp_trace_synth(&train, L, E, k, train_tokens, 0.0, 777) == 0, "synth");
    lru = replay_hit(&qn_exp_policy_lru, &t, &train, slots, 0, warm, 0);
    lfu = replay_hit(&qn_exp_policy_lfu, &t, &train, slots, 0, warm, 0);
    pin = replay_hit(&qn_exp_policy_pinned, &t, &train, slots, hot, warm, 0);
    printf("uniform (%d of %d experts cached, expect %.3f): hit LRU %.3f  LFU %.3f  pinned %.3f\n", slots, L * E,
           (double)slots / (L * E), lru, lfu, pin);
    /* Slightly under slots/experts: layers take turns, so a layer is looked up right after the other
     * layers' misses pushed some of its experts out. */
    double expect = (double)slots / (L * E);
    CHECK(fabs(lru - lfu) < 0.02 && fabs(lru - pin) < 0.02, "uniform: hit rates %.3f %.3f %.3f must agree within 0.02",
          lru, lfu, pin);
    CHECK(lru > expect - 0.04 && lru < expect + 0.01, "uniform: LRU hit %.3f vs capacity fraction %.3f", lru, expect);
    qn_exp_trace_free(&t);
    qn_exp_trace_free(&train);
}

/* ---- prefetch arithmetic ---------------------------------------------------------------------- */

static void near(double got, double want, const char *what)
{
    CHECK(fabs(got - want) < 1e-12, "%s: %.6f, expected %.6f", what, got, want);
}

static void prefetch_arith(void)
{
    qn_exp_cache *c;
    struct qn_exp_params p = params(3, 16, 4, 3, 12, NULL);
    CHECK(qn_exp_create(&c, &p) == 0, "create");
    struct qn_exp_result r;
    struct qn_exp_stats st;
    /* layer 0: guess {1,2,3,4}; the allowance is 3 slots, so 4 is skipped */
    CHECK(qn_exp_prefetch(c, 0, (int32_t[]){ 1, 2, 3, 4 }, 4, 1, 0, &r) == 0, "prefetch 0");
    CHECK(r.n_fill == 3 && r.kind[3] == QN_EXP_SKIP && r.slot[3] == -1, "allowance: %d fills", r.n_fill);
    int32_t s1 = r.slot[0], s3 = r.slot[2];
    qn_exp_fill_done(c, s1);                                   /* 2 and 3 still in flight */
    CHECK(qn_exp_lookup(c, 0, (int32_t[]){ 2, 1, 5, 6 }, 4, 1, 0, &r) == 0, "lookup 0");
    CHECK(r.kind[0] == QN_EXP_PENDING && r.kind[1] == QN_EXP_HIT && r.kind[2] == QN_EXP_MISS && r.kind[3] == QN_EXP_MISS,
          "kinds %d %d %d %d", r.kind[0], r.kind[1], r.kind[2], r.kind[3]);
    qn_exp_get_stats(c, 0, &st);
    CHECK(st.pf_guessed == 4 && st.pf_correct == 2 && st.pf_used == 4, "layer 0 counts");
    near(qn_exp_precision(&st), 0.5, "layer 0 precision");
    near(qn_exp_recall(&st), 0.5, "layer 0 recall");
    CHECK(st.hits == 2 && st.pending == 1 && st.misses == 2 && st.pf_fills == 3 && st.pf_fills_used == 2 &&
          st.bytes_read == 5000, "layer 0 stats: hits %llu pending %llu misses %llu pf_fills %llu used %llu bytes %llu",
          (unsigned long long)st.hits, (unsigned long long)st.pending, (unsigned long long)st.misses,
          (unsigned long long)st.pf_fills, (unsigned long long)st.pf_fills_used, (unsigned long long)st.bytes_read);
    for (int i = 0; i < r.n_fill; i++) qn_exp_fill_done(c, r.fill[i].slot);
    CHECK(qn_exp_fill_done(c, r.slot[0]) == 0 && qn_exp_fill_done(c, s3) == 0, "finish prefetch fills");
    /* layer 1: guess {7,8}, used {7,9,10,11} */
    CHECK(qn_exp_prefetch(c, 1, (int32_t[]){ 7, 8 }, 2, 2, 1, &r) == 0 && r.n_fill == 2, "prefetch 1");
    for (int i = 0; i < r.n_fill; i++) qn_exp_fill_done(c, r.fill[i].slot);
    CHECK(qn_exp_lookup(c, 1, (int32_t[]){ 7, 9, 10, 11 }, 4, 2, 1, &r) == 0, "lookup 1");
    for (int i = 0; i < r.n_fill; i++) qn_exp_fill_done(c, r.fill[i].slot);
    qn_exp_get_stats(c, 1, &st);
    near(qn_exp_precision(&st), 0.5, "layer 1 precision");
    near(qn_exp_recall(&st), 0.25, "layer 1 recall");
    /* layer 2: a lookup without a guess changes nothing; then a replaced guess counts only the last one */
    CHECK(qn_exp_lookup(c, 2, (int32_t[]){ 0, 1, 2, 3 }, 4, 3, 2, &r) == 0, "lookup 2");
    for (int i = 0; i < r.n_fill; i++) qn_exp_fill_done(c, r.fill[i].slot);
    qn_exp_get_stats(c, -1, &st);
    CHECK(st.pf_guessed == 6 && st.pf_correct == 3 && st.pf_used == 8, "totals");
    near(qn_exp_precision(&st), 0.5, "total precision");
    near(qn_exp_recall(&st), 0.375, "total recall");
    CHECK(qn_exp_prefetch(c, 2, (int32_t[]){ 9, 10 }, 2, 4, 3, &r) == 0, "prefetch 2a");
    for (int i = 0; i < r.n_fill; i++) qn_exp_fill_done(c, r.fill[i].slot);
    CHECK(qn_exp_prefetch(c, 2, (int32_t[]){ 4 }, 1, 4, 3, &r) == 0, "prefetch 2b");
    for (int i = 0; i < r.n_fill; i++) qn_exp_fill_done(c, r.fill[i].slot);
    CHECK(qn_exp_check(c) == 0, "replaced guess releases its allowance: %s", qn_errmsg());
    CHECK(qn_exp_lookup(c, 2, (int32_t[]){ 4, 5, 6, 7 }, 4, 4, 3, &r) == 0, "lookup 2b");
    for (int i = 0; i < r.n_fill; i++) qn_exp_fill_done(c, r.fill[i].slot);
    qn_exp_get_stats(c, 2, &st);
    CHECK(st.pf_guessed == 1 && st.pf_correct == 1 && st.pf_used == 4, "replaced guess counts");
    /* the unused layer-0 guess (3) is wasted once it is evicted: churn layer 1 */
    for (int i = 0; i < 40 && qn_exp_table(c)[3] >= 0; i++) {
        int32_t ids[4] = { (4 * i) % 16, (4 * i + 1) % 16, (4 * i + 2) % 16, (4 * i + 3) % 16 };
        CHECK(qn_exp_lookup(c, 1 + i % 2, ids, 4, 5 + (uint64_t)i, 4 + (uint64_t)i, &r) == 0, "churn: %s", qn_errmsg());
        for (int j = 0; j < r.n_fill; j++) qn_exp_fill_done(c, r.fill[j].slot);
    }
    CHECK(qn_exp_table(c)[3] == -1, "guess 3 never evicted");
    qn_exp_get_stats(c, 0, &st);
    CHECK(st.pf_fills_wasted == 1 && st.pf_fills_used == 2, "wasted %llu used %llu",
          (unsigned long long)st.pf_fills_wasted, (unsigned long long)st.pf_fills_used);
    qn_exp_destroy(&c);
    printf("prefetch arithmetic ok\n");
}

int main(void)
{
    test_budget();
    prefetch_arith();
    const struct qn_exp_policy *pols[] = { &qn_exp_policy_lru, &qn_exp_policy_lfu, &qn_exp_policy_pinned };
    for (int i = 0; i < 3; i++) {
        CHECK(qn_exp_policy_by_name(pols[i]->name) == pols[i], "by name");
        for (uint64_t seed = 1; seed <= 3; seed++) property(pols[i], seed * 1000 + (uint64_t)i);
        minimum_protocol(pols[i]);
    }
    policies();
    printf("test_experts: OK\n");
    return 0;
}
