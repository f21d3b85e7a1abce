/* test_usage.c — expert usage counts (runtime/expert_usage.h): the file --expert-trace writes round-trips,
 * the hot set is the most used pairs, every malformed file is refused naming the file and line, the cache
 * options from qn_model_params, and a pinned hot set is never evicted under LRU and LFU (host only).
 *
 * usage: test_usage SCRATCH_DIR */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "expert_usage.h"
#include "experts.h"
#include "model.h"
#include "qn_err.h"
#include "qn_rng.h"
#include "tests/testutil.h"

#define L 6
#define E 40

static char dir[4096];

static const char *path_of(const char *name)
{
    static char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(path_of(name), "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) DIE("writing %s", path_of(name));
}

/* Random counts (a third of the pairs unused), written and read back; the top list against a brute force. */
static void test_roundtrip(qn_eu *u)
{
    qn_rng r;
    qn_rng_seed(&r, 11);
    for (int l = 0; l < L; l++)
        for (int e = 0; e < E; e++) {
            int32_t id = e;
            int n = qn_rng_u64(&r) % 3 ? (int)(qn_rng_u64(&r) % 50) : 0;
            for (int i = 0; i < n; i++) qn_eu_count(u, l, &id, 1);
        }
    int32_t junk[3] = { -1, E, E + 7 }; /* ignored */
    qn_eu_count(u, 0, junk, 3);
    qn_eu_count(u, L, junk, 1);
    const char *p = path_of("usage.txt");
    CHECK(!qn_eu_write(u, p, "test"), "write: %s", qn_errmsg());
    qn_eu *v;
    if (qn_eu_create(&v, L, E)) DIE("create");
    CHECK(!qn_eu_read(v, p), "read back: %s", qn_errmsg());
    int diff = 0;
    uint64_t total = 0;
    for (int l = 0; l < L; l++)
        for (int e = 0; e < E; e++) {
            diff += qn_eu_get(u, l, e) != qn_eu_get(v, l, e);
            total += qn_eu_get(u, l, e);
        }
    CHECK(diff == 0 && total > 0, "round trip: %d of %d counts differ", diff, L * E);
    printf("ok   usage file round-trips (%d pairs, %llu choices)\n", L * E, (unsigned long long)total);
    int32_t top[2 * L * E];
    int n = qn_eu_top(v, L * E, top), bad = 0, nz = 0;
    for (int i = 0; i < L * E; i++) nz += qn_eu_get(u, i / E, i % E) > 0;
    for (int i = 1; i < n; i++) {
        uint64_t a = qn_eu_get(v, top[2 * i - 2], top[2 * i - 1]), b = qn_eu_get(v, top[2 * i], top[2 * i + 1]);
        int later = top[2 * i] * E + top[2 * i + 1] > top[2 * i - 2] * E + top[2 * i - 1];
        bad += a < b || (a == b && !later) || !b;
    }
    CHECK(n == nz && !bad, "top: %d pairs (expected %d non-zero), %d out of order", n, nz, bad);
    CHECK(qn_eu_top(v, 5, top) == 5, "top 5");
    printf("ok   the hot set is the most used pairs, ties to the lower (layer, expert)\n");
    qn_eu_free(&v);
}

/* A malformed file: refused, and the message has `want` (file:line). */
static void bad_file(const char *name, const char *text, const char *want)
{
    write_text(name, text);
    qn_eu *u;
    if (qn_eu_create(&u, L, E)) DIE("create");
    int rc = qn_eu_read(u, path_of(name));
    char expect[4300];
    snprintf(expect, sizeof expect, "%s%s", path_of(name), want);
    CHECK(rc < 0 && strstr(qn_errmsg(), expect), "%s: rc %d, message '%s' lacks '%s'", name, rc, qn_errmsg(), expect);
    if (rc < 0 && strstr(qn_errmsg(), expect)) printf("ok   %s refused: %s\n", name, qn_errmsg());
    qn_eu_free(&u);
}

static void test_bad_files(void)
{
    const char *hdr = "qnext-expert-usage 1\nlayers 6 experts 40\n";
    char t[512];
    bad_file("empty.txt", "", ": the file ends after 0 line(s), before its 'qnext-expert-usage 1' line");
    bad_file("magic.txt", "layer expert count\n0 1 2\n", ":1: not a qnext expert usage file");
    bad_file("version.txt", "# c\nqnext-expert-usage 2\nlayers 6 experts 40\n", ":2: unsupported version");
    bad_file("shape.txt", "qnext-expert-usage 1\nlayers 6 experts 41\n", ":2: the counts are for 6 layers x 41");
    bad_file("shape2.txt", "qnext-expert-usage 1\nexperts 40\n", ":2: expected 'layers N experts M'");
    static const struct { const char *name, *rows, *want; } after_hdr[] = { /* files of hdr + rows */
        { "two.txt", "0 1 5\n# fine\n\n2 3\n", ":6: expected 'LAYER EXPERT COUNT'" },
        { "four.txt", "0 1 5 9\n", ":3: expected 'LAYER EXPERT COUNT'" },
        { "negative.txt", "0 1 -5\n", ":3: expected" },
        { "garbage.txt", "0 1 5x\n", ":3: expected" },
        { "layer.txt", "6 1 5\n", ":3: layer 6 expert 1 is outside" },
        { "expert.txt", "0 40 5\n", ":3: layer 0 expert 40 is outside" },
        { "dup.txt", "0 1 5\n1 1 2\n0 1 3\n", ":5: layer 0 expert 1 is listed twice" },
        { "overflow.txt", "0 1 99999999999999999999999\n", ":3: expected" },
    };
    for (size_t i = 0; i < sizeof after_hdr / sizeof after_hdr[0]; i++) {
        snprintf(t, sizeof t, "%s%s", hdr, after_hdr[i].rows);
        bad_file(after_hdr[i].name, t, after_hdr[i].want);
    }
    qn_eu *u;
    if (qn_eu_create(&u, L, E)) DIE("create");
    int rc = qn_eu_read(u, path_of("missing.txt"));
    CHECK(rc == -ENOENT && strstr(qn_errmsg(), "missing.txt"), "missing file: %d %s", rc, qn_errmsg());
    rc = qn_eu_write(u, "/nonexistent-dir/x.txt", NULL);
    CHECK(rc < 0 && strstr(qn_errmsg(), "/nonexistent-dir/x.txt"), "unwritable: %d %s", rc, qn_errmsg());
    qn_eu_free(&u);
    printf("ok   missing and unwritable files are named\n");
}

static void test_opts(void)
{
    struct qn_model_params p;
    struct qn_eu_cache_opts o;
    qn_model_default_params(&p);
    CHECK(!qn_eu_cache_opts(&p, L, E, &o) && !o.policy && !o.hot && !o.n_hot, "defaults");
    p.expert_policy = "lfu";
    CHECK(!qn_eu_cache_opts(&p, L, E, &o) && o.policy == &qn_exp_policy_lfu, "lfu");
    p.expert_policy = "mru";
    CHECK(qn_eu_cache_opts(&p, L, E, &o) == -EINVAL && strstr(qn_errmsg(), "'mru'"), "bad policy: %s", qn_errmsg());
    p.expert_policy = "lru";
    p.expert_hot = 4;
    CHECK(qn_eu_cache_opts(&p, L, E, &o) == -EINVAL && strstr(qn_errmsg(), "--expert-hot-from"), "hot without file");
    p.expert_hot = 0;
    p.expert_hot_from = path_of("usage.txt");
    CHECK(qn_eu_cache_opts(&p, L, E, &o) == -EINVAL && strstr(qn_errmsg(), "--expert-hot N"), "file without hot");
    p.expert_hot = 1000;   /* more than the pairs used: only those */
    int rc = qn_eu_cache_opts(&p, L, E, &o);
    CHECK(!rc && o.policy == &qn_exp_policy_lru && o.n_hot > 0 && o.n_hot < L * E, "hot 1000: rc %d n %d", rc, o.n_hot);
    free(o.hot);
    p.expert_hot_from = path_of("dup.txt");
    CHECK(qn_eu_cache_opts(&p, L, E, &o) < 0 && strstr(qn_errmsg(), "dup.txt:5"), "bad file through the options");
    printf("ok   cache options: policy names, --expert-hot needs --expert-hot-from and the reverse\n");
}

/* A hot set of 12 pairs from the usage file, pinned in a 30-slot cache, survives a long Zipf trace under each
 * policy: the hot slots keep their pairs, stay READY and fixed, and every lookup of them hits. */
static void test_pinned(void)
{
    struct qn_model_params p;
    qn_model_default_params(&p);
    p.expert_hot = 12;
    p.expert_hot_from = path_of("usage.txt");
    const char *pol[2] = { "lru", "lfu" };
    for (int k = 0; k < 2; k++) {
        p.expert_policy = pol[k];
        struct qn_eu_cache_opts o;
        if (qn_eu_cache_opts(&p, L, E, &o)) DIE("cache opts");
        struct qn_exp_params ep = { .n_layers = L, .n_experts = E, .top_k = 4, .n_slots = 30, .expert_bytes = 1,
                                    .policy = o.policy, .hot = o.hot, .n_hot = o.n_hot };
        qn_exp_cache *c;
        if (qn_exp_create(&c, &ep)) DIE("cache");
        struct qn_exp_trace t;
        if (qn_exp_trace_synth(&t, L, E, 4, 200, 1.0, 5)) DIE("trace");
        struct qn_exp_replay_opts ro = { .lag = 1, .check = true };
        int rc = qn_exp_replay(c, &t, &ro);
        struct qn_exp_stats st;
        qn_exp_get_stats(c, -1, &st);
        int moved = 0;
        for (int i = 0; i < o.n_hot; i++) {
            struct qn_exp_slot_info si;
            qn_exp_slot_get(c, i, &si);
            moved += si.layer != o.hot[2 * i] || si.expert != o.hot[2 * i + 1] || si.state != QN_EXP_SLOT_READY ||
                     !si.fixed || qn_exp_table(c)[o.hot[2 * i] * E + o.hot[2 * i + 1]] != i;
        }
        CHECK(!rc && !moved && st.evictions > 0, "%s: replay rc %d, %d hot slots moved, %llu evictions", pol[k], rc,
              moved, (unsigned long long)st.evictions);
        printf("ok   %s + %d pinned: after %llu evictions every hot expert is still in its slot (hit rate %.3f)\n",
               pol[k], o.n_hot, (unsigned long long)st.evictions, qn_exp_hit_rate(&st));
        qn_exp_trace_free(&t);
        qn_exp_destroy(&c);
        free(o.hot);
    }
}

int main(int argc, char **argv)
{
    qn_test_crash_report();
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/usage", argv[1]);
    mkdir(argv[1], 0755);
    mkdir(dir, 0755);
    qn_eu *u;
    if (qn_eu_create(&u, L, E)) DIE("create");
    test_roundtrip(u);
    qn_eu_free(&u);
    test_bad_files();
    test_opts();
    test_pinned();
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
