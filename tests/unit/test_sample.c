/* test_sample.c — the host sampler (runtime/sample.c) against a plain reference written the way Hugging
 * Face's warpers are (masks to -inf over the whole list: temperature, top-k with ties, top-p on the
 * ascending cumulative sum, min-p), plus the presence penalty, greedy, seeds and bad input.
 *
 * Distributions: qn_sampler_dist must equal the reference to 1e-6 (absolute), and 200,000 draws must
 * match it: every token within 5 standard deviations (|f - p| <= 5 sqrt(p(1-p)/N) + 1e-4), chi-square
 * below dof + 7 sqrt(2 dof), and no draw outside the kept set. Seeds are fixed, so results repeat. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "qn_rng.h"
#include "sample.h"

#include "../testutil.h"

#define DRAWS 200000

static int cmp_double_asc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* softmax over the unmasked entries of l[0..n) into q */
static void ref_softmax(const double *l, int n, double *q)
{
    double mx = -INFINITY, z = 0;
    for (int i = 0; i < n; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < n; i++) z += q[i] = l[i] == -INFINITY ? 0 : exp(l[i] - mx);
    for (int i = 0; i < n; i++) q[i] /= z;
}

/* Reference distribution over positions 0..n of `logit` (penalised where seen[i]). */
static void ref_dist(const float *logit, const bool *seen, int n, const qn_sample_params *sp, double *q)
{
    double *l = malloc(sizeof *l * (size_t)n), *tmp = malloc(sizeof *tmp * (size_t)n);
    for (int i = 0; i < n; i++) l[i] = (double)logit[i] - (seen && seen[i] ? sp->presence_penalty : 0);
    if (sp->temperature == 0) {
        int best = 0;
        for (int i = 1; i < n; i++) best = l[i] > l[best] ? i : best;
        for (int i = 0; i < n; i++) q[i] = i == best;
        free(l), free(tmp);
        return;
    }
    for (int i = 0; i < n; i++) l[i] /= sp->temperature;
    if (sp->top_k > 0 && sp->top_k < n) { /* remove scores < k-th largest */
        memcpy(tmp, l, sizeof *tmp * (size_t)n);
        qsort(tmp, (size_t)n, sizeof *tmp, cmp_double_asc);
        double kth = tmp[n - sp->top_k];
        for (int i = 0; i < n; i++) if (l[i] < kth) l[i] = -INFINITY;
    }
    ref_softmax(l, n, q);
    if (sp->top_p < 1) { /* ascending order, cumulative sum, remove cum <= 1 - top_p except the largest */
        int *idx = malloc(sizeof *idx * (size_t)n);
        for (int i = 0; i < n; i++) idx[i] = i;
        for (int i = 1; i < n; i++) /* insertion sort by q ascending */
            for (int j = i; j > 0 && q[idx[j - 1]] > q[idx[j]]; j--) {
                int t = idx[j];
                idx[j] = idx[j - 1], idx[j - 1] = t;
            }
        double cum = 0;
        for (int r = 0; r < n - 1; r++) {
            cum += q[idx[r]];
            if (cum <= 1 - sp->top_p) l[idx[r]] = -INFINITY;
        }
        free(idx);
        ref_softmax(l, n, q);
    }
    if (sp->min_p > 0) {
        double mx = 0;
        for (int i = 0; i < n; i++) mx = q[i] > mx ? q[i] : mx;
        for (int i = 0; i < n; i++) if (q[i] < sp->min_p * mx) l[i] = -INFINITY;
        ref_softmax(l, n, q);
    }
    free(l), free(tmp);
}

/* Candidate list: k random logits (normal * scale) with shuffled, distinct ids. */
static void make_cands(qn_rng *r, qn_cand *c, int k, float scale, int n_vocab)
{
    for (int i = 0; i < k; i++) {
        c[i].id = (int32_t)(qn_rng_u64(r) % (uint64_t)n_vocab);
        for (int j = 0; j < i; j++)
            if (c[j].id == c[i].id) { c[i].id = (c[i].id + 1) % n_vocab; j = -1; }
        c[i].logit = scale * qn_rng_normal(r);
    }
}

/* Check dist and sampling of one configuration against the reference. */
static void check_config(const char *name, const qn_sample_params *sp, const qn_cand *cand, int k, const float *full,
                         int n_vocab, const int32_t *accepted, int n_acc)
{
    qn_sampler *s = NULL;
    CHECK(qn_sampler_create(&s, sp, n_vocab) == 0, "%s: create: %s", name, qn_errmsg());
    if (!s) return;
    int n = full ? n_vocab : k;
    float *l = malloc(sizeof *l * (size_t)n);
    bool *seen = calloc((size_t)n, 1);
    int32_t *ids = malloc(sizeof *ids * (size_t)n);
    double *q = malloc(sizeof *q * (size_t)n), *f = calloc((size_t)n, sizeof *f);
    for (int i = 0; i < n; i++) ids[i] = full ? i : cand[i].id, l[i] = full ? full[i] : cand[i].logit;
    for (int a = 0; a < n_acc; a++) {
        qn_sampler_accept(s, accepted[a]);
        for (int i = 0; i < n; i++) seen[i] |= ids[i] == accepted[a];
    }
    ref_dist(l, seen, n, sp, q);
    qn_prob *d = malloc(sizeof *d * (size_t)n);
    int nd = 0, kept = 0;
    CHECK(qn_sampler_dist(s, cand, k, full, full ? n_vocab : 0, d, &nd) == 0, "%s: dist: %s", name, qn_errmsg());
    for (int i = 0; i < n; i++) kept += q[i] > 0;
    CHECK(nd == kept, "%s: dist keeps %d tokens, reference %d", name, nd, kept);
    double maxd = 0;
    for (int j = 0; j < nd; j++)
        for (int i = 0; i < n; i++)
            if (ids[i] == d[j].id) maxd = fmax(maxd, fabs(d[j].p - q[i]));
    CHECK(maxd < 1e-6, "%s: dist differs from the reference by %g", name, maxd);
    int outside = 0;
    for (int t = 0; t < DRAWS; t++) {
        int32_t id = -1;
        qn_sampler_sample(s, cand, k, full, full ? n_vocab : 0, &id);
        int pos = -1;
        for (int i = 0; i < n && pos < 0; i++) pos = ids[i] == id ? i : -1;
        if (pos < 0 || q[pos] == 0) outside++;
        else f[pos] += 1.0 / DRAWS;
    }
    double chi2 = 0, worst = 0;
    for (int i = 0; i < n; i++) {
        if (q[i] == 0) continue;
        double sd = sqrt(q[i] * (1 - q[i]) / DRAWS), e = fabs(f[i] - q[i]);
        worst = fmax(worst, e / (5 * sd + 1e-4));
        chi2 += (f[i] - q[i]) * (f[i] - q[i]) * DRAWS / q[i];
    }
    double dof = kept - 1, bound = dof + 7 * sqrt(2 * (dof > 1 ? dof : 1));
    CHECK(outside == 0, "%s: %d draws outside the kept set", name, outside);
    CHECK(worst <= 1, "%s: a frequency is %.2f x the 5-sigma bound off", name, worst);
    CHECK(chi2 <= bound, "%s: chi-square %.1f > %.1f (dof %.0f)", name, chi2, bound, dof);
    printf("%-28s kept %3d of %5d  dist err %.1e  chi2 %6.1f (bound %6.1f)  worst %.2f of 5 sigma\n", name, kept, n,
           maxd, chi2, bound, worst);
    free(l), free(seen), free(ids), free(q), free(f), free(d);
    qn_sampler_free(&s);
}

static void distributions(void)
{
    qn_rng r;
    qn_rng_seed(&r, 99);
    qn_cand c[64], flat[64];
    make_cands(&r, c, 64, 2.5f, 151936);
    make_cands(&r, flat, 64, 0.8f, 151936);
    qn_sample_params def = qn_sample_default_params();
    check_config("defaults 0.7/20/0.8/0", &def, flat, 64, NULL, 151936, NULL, 0);
    qn_sample_params p = { 1.0f, 10, 1.0f, 0.0f, 0.0f, 5 };
    check_config("top-k 10", &p, c, 64, NULL, 151936, NULL, 0);
    p = (qn_sample_params){ 1.0f, 0, 0.9f, 0.0f, 0.0f, 6 };
    check_config("top-p 0.9", &p, c, 64, NULL, 151936, NULL, 0);
    p = (qn_sample_params){ 1.5f, 0, 1.0f, 0.05f, 0.0f, 7 };
    check_config("min-p 0.05 (T 1.5)", &p, c, 64, NULL, 151936, NULL, 0);
    p = (qn_sample_params){ 0.8f, 30, 0.95f, 0.02f, 0.0f, 8 };
    check_config("all four", &p, flat, 64, NULL, 151936, NULL, 0);
    int32_t acc[] = { c[0].id, c[3].id, c[7].id, c[11].id, 123 };
    p = (qn_sample_params){ 1.0f, 0, 1.0f, 0.0f, 1.3f, 9 };
    check_config("presence penalty 1.3", &p, c, 64, NULL, 151936, acc, 5);
    /* full vector: exact top-k selection over 3000 logits, penalty on some of the largest */
    int nv = 3000;
    float *full = malloc(sizeof *full * (size_t)nv);
    for (int i = 0; i < nv; i++) full[i] = 3.0f * qn_rng_normal(&r);
    int32_t best[4] = { 0 };
    for (int i = 0; i < nv; i++) /* four of the largest logits get penalised */
        for (int b = 0; b < 4; b++)
            if (full[i] > full[best[b]]) {
                memmove(best + b + 1, best + b, sizeof *best * (size_t)(3 - b));
                best[b] = i;
                break;
            }
    qn_sample_params fp = def;
    fp.presence_penalty = 0.7f;
    check_config("full vector, defaults + pp", &fp, NULL, 0, full, nv, best, 4);
    free(full);
}

/* top-k keeps every tie at the k-th logit (HF compares with the k-th value). */
static void ties(void)
{
    qn_cand c[6] = { { 10, 1.0f }, { 11, 0.0f }, { 12, 1.0f }, { 13, 1.0f }, { 14, -1.0f }, { 15, 1.0f } };
    qn_sample_params p = { 1.0f, 2, 1.0f, 0.0f, 0.0f, 1 };
    qn_sampler *s = NULL;
    qn_sampler_create(&s, &p, 100);
    qn_prob d[6];
    int n = 0;
    qn_sampler_dist(s, c, 6, NULL, 0, d, &n);
    CHECK(n == 4, "top-k 2 with four tied logits kept %d", n);
    for (int i = 0; i < n; i++) CHECK(fabsf(d[i].p - 0.25f) < 1e-6f && d[i].id != 11 && d[i].id != 14, "tie %d", i);
    qn_sampler_free(&s);
}

static void greedy_and_penalty(void)
{
    qn_cand c[5] = { { 7, 2.0f }, { 3, 5.0f }, { 9, 5.0f }, { 4, 4.5f }, { 1, -3.0f } };
    qn_sample_params p = qn_sample_default_params();
    p.temperature = 0;
    qn_sampler *s = NULL;
    qn_sampler_create(&s, &p, 16);
    int32_t id = -1;
    for (int t = 0; t < 10; t++) {
        qn_sampler_sample(s, c, 5, NULL, 0, &id);
        CHECK(id == 3, "greedy picked %d, want 3 (lowest id among tied maxima)", id);
    }
    float full[16];
    for (int i = 0; i < 16; i++) full[i] = (float)(i % 5);
    qn_sampler_sample(s, NULL, 0, full, 16, &id);
    CHECK(id == 4, "greedy over the full vector picked %d, want 4", id);
    qn_sampler_free(&s);
    p.presence_penalty = 1.0f; /* 3 and 9 lose 1.0 -> 4 (4.5) wins */
    qn_sampler_create(&s, &p, 16);
    qn_sampler_accept(s, 3), qn_sampler_accept(s, 9);
    qn_sampler_sample(s, c, 5, NULL, 0, &id);
    CHECK(id == 4, "greedy with presence penalty picked %d, want 4", id);
    qn_sampler_free(&s);
    /* the penalty shifts exactly the seen tokens' logits: log p_i - logit_i is one constant for the
     * unseen tokens and that constant - 0.75 for the seen ones */
    qn_rng r;
    qn_rng_seed(&r, 3);
    qn_cand cc[40];
    make_cands(&r, cc, 40, 1.5f, 1000);
    p = (qn_sample_params){ 1.0f, 0, 1.0f, 0.0f, 0.75f, 2 };
    qn_sampler_create(&s, &p, 1000);
    for (int i = 0; i < 40; i += 3) qn_sampler_accept(s, cc[i].id);
    qn_prob d[40];
    int n = 0;
    qn_sampler_dist(s, cc, 40, NULL, 0, d, &n);
    CHECK(n == 40, "no filter, yet %d of 40 kept", n);
    double c0 = NAN, err = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < 40; i++)
            if (cc[i].id == d[j].id) {
                double off = log((double)d[j].p) - cc[i].logit + (i % 3 == 0 ? 0.75 : 0.0);
                if (isnan(c0)) c0 = off;
                err = fmax(err, fabs(off - c0));
            }
    CHECK(err < 1e-5, "presence penalty: log p - (logit - penalty) varies by %g", err);
    qn_sampler_free(&s);
}

static void seeds(void)
{
    qn_rng r;
    qn_rng_seed(&r, 17);
    qn_cand c[32];
    make_cands(&r, c, 32, 1.0f, 5000);
    qn_sample_params p = qn_sample_default_params();
    p.top_p = 1.0f, p.seed = 42;
    qn_sampler *a = NULL, *b = NULL, *x = NULL;
    qn_sampler_create(&a, &p, 5000), qn_sampler_create(&b, &p, 5000);
    p.seed = 43;
    qn_sampler_create(&x, &p, 5000);
    int32_t first[500];
    int same = 1, differ = 0;
    for (int t = 0; t < 500; t++) {
        int32_t ia, ib, ix;
        qn_sampler_sample(a, c, 32, NULL, 0, &ia), qn_sampler_sample(b, c, 32, NULL, 0, &ib);
        qn_sampler_sample(x, c, 32, NULL, 0, &ix);
        first[t] = ia;
        same &= ia == ib, differ += ia != ix;
    }
    CHECK(same, "two samplers with seed 42 disagree");
    CHECK(differ > 100, "seeds 42 and 43 agree on %d of 500 draws", 500 - differ);
    qn_sampler_reset(a, 42);
    for (int t = 0; t < 500; t++) {
        int32_t ia;
        qn_sampler_sample(a, c, 32, NULL, 0, &ia);
        if (ia != first[t]) {
            CHECK(0, "reset(42) does not repeat the sequence (draw %d)", t);
            break;
        }
    }
    qn_sampler_free(&a), qn_sampler_free(&b), qn_sampler_free(&x);
}

static void bad_input(void)
{
    qn_sampler *s = NULL;
    qn_sample_params p = qn_sample_default_params();
    qn_sample_params bad[5] = { p, p, p, p, p };
    bad[0].temperature = -1, bad[1].top_p = 0, bad[2].top_p = 1.5f, bad[3].min_p = 2, bad[4].top_k = -1;
    for (int i = 0; i < 5; i++) CHECK(qn_sampler_create(&s, &bad[i], 100) == -EINVAL && !s, "bad params %d", i);
    CHECK(qn_sampler_create(&s, NULL, 100) == 0, "NULL params = defaults");
    qn_cand c[QN_SAMPLE_MAX_K + 1];
    for (int i = 0; i <= QN_SAMPLE_MAX_K; i++) c[i] = (qn_cand){ i % 100, (float)i };
    int32_t id;
    CHECK(qn_sampler_sample(s, c, 0, NULL, 0, &id) == -EINVAL, "0 candidates");
    CHECK(qn_sampler_sample(s, c, QN_SAMPLE_MAX_K + 1, NULL, 0, &id) == -EINVAL, "too many candidates");
    qn_cand nan_c[2] = { { 1, 0.0f }, { 2, NAN } };
    CHECK(qn_sampler_sample(s, nan_c, 2, NULL, 0, &id) == -EINVAL && strstr(qn_errmsg(), "NaN"), "NaN logit");
    qn_cand inf_c[2] = { { 1, -INFINITY }, { 2, -INFINITY } };
    CHECK(qn_sampler_sample(s, inf_c, 2, NULL, 0, &id) == -EINVAL, "all -inf");
    qn_cand far[1] = { { 100, 1.0f } };
    CHECK(qn_sampler_sample(s, far, 1, NULL, 0, &id) == -EINVAL && strstr(qn_errmsg(), "100"), "id out of range");
    CHECK(qn_sampler_accept(s, 100) == -EINVAL && qn_sampler_accept(s, -1) == -EINVAL, "accept out of range");
    float full[3] = { 0, 1, 2 };
    CHECK(qn_sampler_sample(s, NULL, 0, full, 101, &id) == -EINVAL, "more logits than the vocabulary");
    qn_cand one[1] = { { 5, -INFINITY } }, two[2] = { { 5, -INFINITY }, { 6, 0.0f } };
    CHECK(qn_sampler_sample(s, one, 1, NULL, 0, &id) == -EINVAL, "single -inf candidate");
    CHECK(qn_sampler_sample(s, two, 2, NULL, 0, &id) == 0 && id == 6, "-inf candidate must never be drawn");
    qn_sampler_free(&s);
    CHECK(s == NULL, "free must NULL the handle");
}

int main(void)
{
    qn_test_crash_report();
    distributions();
    ties();
    greedy_and_penalty();
    seeds();
    bad_input();
    printf("%s\n", failures ? "FAILED" : "OK");
    return failures ? 1 : 0;
}
