/* sample.c — host-side token sampling: presence penalty, temperature, top-k, top-p, min-p (in Hugging
 * Face's order), then one draw. See sample.h. */
#include "sample.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "qn_rng.h"

struct qn_sampler {
    qn_sample_params p;
    int n_vocab;
    uint64_t *seen;  /* bit per id: generated before */
    qn_rng rng;
    qn_cand *work;   /* working list (n_vocab entries, for full-vector input) */
    double *prob;
};

typedef struct { qn_cand *c; double *p; int n; } wlist;

qn_sample_params qn_sample_default_params(void)
{
    return (qn_sample_params){ .temperature = 0.7f, .top_k = 20, .top_p = 0.8f, .min_p = 0.0f };
}

int qn_sampler_create(qn_sampler **out, const qn_sample_params *p, int n_vocab)
{
    *out = NULL;
    qn_sample_params d = qn_sample_default_params();
    if (!p) p = &d;
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return qn_fail(-EINVAL, "sampler: temperature %g must be >= 0", p->temperature);
    if (p->top_k < 0) return qn_fail(-EINVAL, "sampler: top_k %d must be >= 0", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1)) return qn_fail(-EINVAL, "sampler: top_p %g must be in (0, 1]", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1)) return qn_fail(-EINVAL, "sampler: min_p %g must be in [0, 1]", p->min_p);
    if (!isfinite(p->presence_penalty))
        return qn_fail(-EINVAL, "sampler: presence_penalty %g is not finite", p->presence_penalty);
    if (n_vocab <= 0) return qn_fail(-EINVAL, "sampler: n_vocab %d must be > 0", n_vocab);
    qn_sampler *s = calloc(1, sizeof *s);
    size_t nw = (size_t)n_vocab > QN_SAMPLE_MAX_K ? (size_t)n_vocab : QN_SAMPLE_MAX_K;
    if (s) {
        s->seen = calloc(((size_t)n_vocab + 63) / 64, sizeof *s->seen);
        s->work = malloc(nw * sizeof *s->work);
        s->prob = malloc(nw * sizeof *s->prob);
    }
    if (!s || !s->seen || !s->work || !s->prob) {
        qn_sampler_free(&s);
        return qn_fail(-ENOMEM, "sampler: out of memory (vocabulary %d)", n_vocab);
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    qn_rng_seed(&s->rng, p->seed);
    *out = s;
    return 0;
}

void qn_sampler_free(qn_sampler **sp)
{
    qn_sampler *s = sp ? *sp : NULL;
    if (!s) return;
    free(s->seen), free(s->work), free(s->prob), free(s);
    *sp = NULL;
}

void qn_sampler_reset(qn_sampler *s, uint64_t seed)
{
    memset(s->seen, 0, ((size_t)s->n_vocab + 63) / 64 * sizeof *s->seen);
    qn_rng_seed(&s->rng, seed);
}

int qn_sampler_accept(qn_sampler *s, int32_t id)
{
    if (id < 0 || id >= s->n_vocab) return qn_fail(-EINVAL, "sampler: id %d outside [0, %d)", id, s->n_vocab);
    s->seen[id >> 6] |= 1ull << (id & 63);
    return 0;
}

static bool seen(const qn_sampler *s, int32_t id) { return (s->seen[id >> 6] >> (id & 63)) & 1; }

static int cmp_desc(const void *a, const void *b)
{
    const qn_cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Copy the input into the working list with the presence penalty applied. */
static int gather(qn_sampler *s, const qn_cand *cand, int k, const float *logits, int n, wlist *w)
{
    const float pp = s->p.presence_penalty;
    w->c = s->work, w->p = s->prob, w->n = 0;
    if (logits) {
        if (n <= 0 || n > s->n_vocab) return qn_fail(-EINVAL, "sampler: %d logits for a vocabulary of %d", n, s->n_vocab);
        for (int i = 0; i < n; i++) w->c[i] = (qn_cand){ i, logits[i] };
        w->n = n;
    } else {
        if (!cand || k <= 0 || k > QN_SAMPLE_MAX_K)
            return qn_fail(-EINVAL, "sampler: %d candidates (want 1..%d)", k, QN_SAMPLE_MAX_K);
        for (int i = 0; i < k; i++) {
            if (cand[i].id < 0 || cand[i].id >= s->n_vocab)
                return qn_fail(-EINVAL, "sampler: candidate %d has id %d outside [0, %d)", i, cand[i].id, s->n_vocab);
            w->c[i] = cand[i];
        }
        w->n = k;
    }
    bool any = false;
    for (int i = 0; i < w->n; i++) {
        if (isnan(w->c[i].logit)) return qn_fail(-EINVAL, "sampler: the logit of id %d is NaN", w->c[i].id);
        if (pp != 0 && seen(s, w->c[i].id)) w->c[i].logit -= pp;
        any |= w->c[i].logit > -INFINITY;
    }
    return any ? 0 : qn_fail(-EINVAL, "sampler: no candidate has a finite logit");
}

static void argmax(wlist *w)
{
    int best = 0;
    for (int i = 1; i < w->n; i++) /* ties: the lowest id, as torch.argmax over the vocabulary */
        if (w->c[i].logit > w->c[best].logit ||
            (w->c[i].logit == w->c[best].logit && w->c[i].id < w->c[best].id))
            best = i;
    w->c[0] = w->c[best];
    w->p[0] = 1.0;
    w->n = 1;
}

/* Keep every entry whose logit is >= the k-th largest (ties at the boundary stay, as in HF). Moves
 * them to the front, unsorted. Uses quickselect on the logits so full vectors stay linear. */
static void top_k(wlist *w, int k)
{
    if (k <= 0 || k >= w->n) return;
    qn_cand *c = w->c;
    int lo = 0, hi = w->n - 1, want = k - 1; /* position of the k-th largest in descending order */
    while (lo < hi) {
        float pivot = c[(lo + hi) / 2].logit;
        int i = lo, j = hi;
        while (i <= j) {
            while (c[i].logit > pivot) i++;
            while (c[j].logit < pivot) j--;
            if (i <= j) {
                qn_cand t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    float kth = c[want].logit;
    int m = 0;
    for (int i = 0; i < w->n; i++)
        if (c[i].logit >= kth) {
            qn_cand t = c[m];
            c[m++] = c[i];
            c[i] = t;
        }
    w->n = m;
}

/* p = softmax(logits) over the list (sorted, most likely first). */
static void softmax(wlist *w)
{
    double z = 0, mx = w->c[0].logit;
    for (int i = 0; i < w->n; i++) z += w->p[i] = exp((double)w->c[i].logit - mx);
    for (int i = 0; i < w->n; i++) w->p[i] /= z;
}

/* HF TopP: drop tokens whose mass, counted from the least likely up to and including them, is
 * <= 1 - top_p; the most likely token always stays. */
static void top_p(wlist *w, double top_p)
{
    if (top_p >= 1) return;
    double tail = 0;
    int keep = w->n;
    for (int i = w->n - 1; i > 0; i--) {
        tail += w->p[i];
        if (tail <= 1 - top_p) keep = i;
        else break;
    }
    w->n = keep;
    softmax(w);
}

/* HF MinP: drop tokens with p < min_p * p_max. */
static void min_p(wlist *w, double min_p)
{
    if (min_p <= 0) return;
    double cut = min_p * w->p[0];
    int keep = 1;
    while (keep < w->n && w->p[keep] >= cut) keep++;
    w->n = keep;
    softmax(w);
}

/* The filtered distribution in w (sorted, most likely first). */
static int build(qn_sampler *s, const qn_cand *cand, int k, const float *logits, int n, wlist *w)
{
    int rc = gather(s, cand, k, logits, n, w);
    if (rc < 0) return rc;
    if (s->p.temperature == 0) {
        argmax(w);
        return 0;
    }
    const float inv_t = 1.0f / s->p.temperature;
    for (int i = 0; i < w->n; i++) w->c[i].logit *= inv_t;
    top_k(w, s->p.top_k);
    qsort(w->c, (size_t)w->n, sizeof *w->c, cmp_desc);
    while (w->n > 1 && w->c[w->n - 1].logit == -INFINITY) w->n--;
    softmax(w);
    top_p(w, s->p.top_p);
    min_p(w, s->p.min_p);
    return 0;
}

int qn_sampler_sample(qn_sampler *s, const qn_cand *cand, int k, const float *logits, int n, int32_t *id)
{
    wlist w;
    int rc = build(s, cand, k, logits, n, &w);
    if (rc < 0) return rc;
    double u = (double)(qn_rng_u64(&s->rng) >> 11) * (1.0 / 9007199254740992.0), acc = 0;
    int pick = w.n - 1; /* if rounding leaves u above the last partial sum */
    for (int i = 0; i < w.n; i++) {
        acc += w.p[i];
        if (u < acc) {
            pick = i;
            break;
        }
    }
    *id = w.c[pick].id;
    return 0;
}

int qn_sampler_dist(qn_sampler *s, const qn_cand *cand, int k, const float *logits, int n, qn_prob *out, int *n_out)
{
    wlist w;
    int rc = build(s, cand, k, logits, n, &w);
    if (rc < 0) return rc;
    for (int i = 0; i < w.n; i++) out[i] = (qn_prob){ w.c[i].id, (float)w.p[i] };
    *n_out = w.n;
    return 0;
}
