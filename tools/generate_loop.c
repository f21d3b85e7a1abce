/* generate_loop.c — feed new tokens, sample an answer token by token, stream its text (see generate_loop.h).
 *
 * Candidates: after each forward call the engine returns the K largest logits. The sampler's top-k (or
 * greedy's argmax) over K candidates equals the one over the full vector when at least `need` candidates
 * (top_k, or 1 for greedy) keep, after the presence penalty, a logit above the K-th original logit: every
 * token outside the list has an original logit <= that value and the penalty only lowers logits. The loop
 * checks this at every step and counts the steps where it does not hold (ties over the whole list, or a
 * penalty that pushed too many candidates down) in turn.approx; K is 64 (or top_k + 16) without a
 * penalty and 256 with one. With top-k off the loop asks for the full logits instead. */
#include "qn_time.h"
#include "generate_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "qn_err.h"
#include "qn_log.h"

struct qn_gen {
    qn_engine *e;
    const qn_tok *tok;
    struct qn_gen_opts o;
    int vocab;
    int32_t stops[2];
    int n_stops;
    qn_sampler *sampler;
    qn_tok_stream *stream;

    bool full;           /* sample from the full logits (top-k off) */
    int k, need;         /* candidates per step, and how many must be provably in the top */
    qn_cand cand[QN_SAMPLE_MAX_K];
    float *logits;       /* [vocab] when full */
    uint64_t *seen;      /* bit per id: generated in this answer (the sampler's presence-penalty set) */

    int fed;             /* tokens run in the session */
    int32_t pending;     /* sampled, not yet run; -1 if none */
    int32_t *ans;        /* the latest answer's ids */
    int n_ans, cap_ans;
    struct qn_gen_turn turn;
};

static void plan_candidates(qn_gen *g)
{
    const qn_sample_params *p = &g->o.sample;
    g->need = p->temperature == 0 ? 1 : p->top_k;
    if (g->vocab <= QN_SAMPLE_MAX_K) { /* the whole vocabulary fits in one candidate list */
        g->full = false, g->k = g->vocab;
        return;
    }
    g->full = g->need == 0 || g->need + 16 > QN_SAMPLE_MAX_K;
    g->k = p->presence_penalty != 0 ? QN_SAMPLE_MAX_K : g->need + 16 > 64 ? g->need + 16 : 64;
}

int qn_gen_new(qn_gen **out, qn_engine *e, const qn_tok *tok, const struct qn_gen_opts *o)
{
    *out = NULL;
    if (o->max_tokens < 1 || o->ctx < 1)
        return qn_fail(-EINVAL, "generate: max_tokens %d and ctx %d must be >= 1", o->max_tokens, o->ctx);
    qn_gen *g = calloc(1, sizeof *g);
    if (!g) return qn_fail(-ENOMEM, "out of memory");
    g->e = e, g->tok = tok, g->o = *o, g->pending = -1;
    g->vocab = (int)qn_engine_config(e)->vocab_size;
    g->n_stops = qn_chat_stop_ids(tok, g->stops);
    plan_candidates(g);
    int rc = qn_sampler_create(&g->sampler, &o->sample, g->vocab);
    if (!rc) rc = qn_tok_stream_create(&g->stream, tok, false);
    if (!rc) {
        g->seen = calloc(((size_t)g->vocab + 63) / 64, sizeof *g->seen);
        g->logits = g->full ? malloc(sizeof *g->logits * (size_t)g->vocab) : NULL;
        if (!g->seen || (g->full && !g->logits)) rc = qn_fail(-ENOMEM, "out of memory (vocabulary %d)", g->vocab);
    }
    if (rc) {
        qn_gen_free(&g);
        return rc;
    }
    *out = g;
    return 0;
}

void qn_gen_free(qn_gen **pg)
{
    qn_gen *g = *pg;
    if (!g) return;
    qn_sampler_free(&g->sampler);
    qn_tok_stream_free(&g->stream);
    free(g->logits), free(g->seen), free(g->ans), free(g);
    *pg = NULL;
}

void qn_gen_reset(qn_gen *g)
{
    qn_engine_reset(g->e);
    g->fed = 0;
    g->pending = -1;
}

int qn_gen_pos(const qn_gen *g) { return g->fed + (g->pending >= 0); }

static bool is_stop(const qn_gen *g, int32_t id)
{
    for (int i = 0; i < g->n_stops; i++)
        if (g->stops[i] == id) return true;
    return false;
}

static bool seen(const qn_gen *g, int32_t id) { return (g->seen[id >> 6] >> (id & 63)) & 1; }

/* Whether the K candidates decide the sample exactly (see the file comment). */
static bool candidates_exact(const qn_gen *g)
{
    if (g->k >= g->vocab) return true;
    float floor = g->cand[g->k - 1].logit, pp = g->o.sample.presence_penalty;
    int above = 0;
    for (int i = 0; i < g->k; i++) {
        float v = g->cand[i].logit - (pp != 0 && seen(g, g->cand[i].id) ? pp : 0);
        above += v > floor;
    }
    return above >= g->need;
}

/* Run tokens (the logits of the last one are then ready). */
static int feed(qn_gen *g, const int32_t *ids, int n)
{
    int rc = qn_engine_forward(g->e, ids, n, g->full ? g->logits : NULL, 0);
    if (!rc) g->fed += n;
    return rc;
}

/* Sample the next id from the logits of the latest forward call. */
static int pick(qn_gen *g, int32_t *id)
{
    if (g->full) return qn_sampler_sample(g->sampler, NULL, 0, g->logits, g->vocab, id);
    int rc = qn_engine_topk(g->e, g->cand, g->k);
    if (rc) return rc;
    if (!candidates_exact(g) && g->turn.approx++ == 0)
        qn_log(QN_LOG_DEBUG, "generate: %d candidates do not cover the sampler's top %d at token %d", g->k, g->need,
               g->n_ans);
    return qn_sampler_sample(g->sampler, g->cand, g->k, NULL, 0, id);
}

static int push_answer(qn_gen *g, int32_t id)
{
    if (g->n_ans == g->cap_ans) {
        int cap = g->cap_ans ? 2 * g->cap_ans : 256;
        int32_t *a = realloc(g->ans, sizeof *a * (size_t)cap);
        if (!a) return qn_fail(-ENOMEM, "out of memory (answer of %d tokens)", g->n_ans);
        g->ans = a, g->cap_ans = cap;
    }
    g->ans[g->n_ans++] = id;
    g->seen[id >> 6] |= 1ull << (id & 63);
    return qn_sampler_accept(g->sampler, id);
}

static int emit_token(qn_gen *g, int32_t id, qn_gen_emit emit, void *user)
{
    const char *text;
    size_t len;
    int rc = qn_tok_stream_push(g->stream, id, &text, &len);
    if (!rc && len && emit) rc = emit(user, text, len);
    return rc;
}

/* The first forward call of an answer: the pending token, then the new ids. */
static int prefill(qn_gen *g, const int32_t *ids, int n)
{
    int rc = 0;
    if (g->pending >= 0) {
        int32_t p = g->pending;
        g->pending = -1;
        if (n == 0) return feed(g, &p, 1);
        int32_t *all = malloc(sizeof *all * ((size_t)n + 1));
        if (!all) return qn_fail(-ENOMEM, "out of memory (%d tokens)", n + 1);
        all[0] = p;
        memcpy(all + 1, ids, sizeof *all * (size_t)n);
        rc = feed(g, all, n + 1);
        free(all);
        return rc;
    }
    return feed(g, ids, n);
}

/* Sample until a stop condition; each non-stop token is emitted and, to continue, run. */
static int decode(qn_gen *g, qn_gen_emit emit, void *user, volatile sig_atomic_t *stop, double t0)
{
    double t1 = 0;
    for (;;) {
        int32_t id;
        int rc = pick(g, &id);
        if (rc) return rc;
        if (g->n_ans == 0 && !t1) g->turn.prefill_s = (t1 = qn_now_s()) - t0;
        g->turn.decode_s = qn_now_s() - t1;
        if (is_stop(g, id)) {
            g->turn.stop = QN_GEN_STOP_TOKEN, g->turn.stop_id = id;
            return 0;
        }
        if ((rc = push_answer(g, id)) || (rc = emit_token(g, id, emit, user))) return rc;
        int why = g->n_ans >= g->o.max_tokens ? QN_GEN_MAX_TOKENS
                : stop && *stop               ? QN_GEN_INTERRUPTED
                : g->fed + 1 >= g->o.ctx      ? QN_GEN_CTX_FULL /* feeding id would leave no room for the next */
                                              : -1;
        if (why >= 0) {
            g->turn.stop = (enum qn_gen_stop)why;
            g->pending = id;
            return 0;
        }
        if ((rc = feed(g, &id, 1))) return rc;
    }
}

int qn_gen_answer(qn_gen *g, const int32_t *ids, int n, uint64_t seed, qn_gen_emit emit, void *user,
                  volatile sig_atomic_t *stop)
{
    int add = n + (g->pending >= 0);
    if (n < 0 || add == 0) return qn_fail(-EINVAL, "generate: nothing to feed (%d tokens)", n);
    if (g->fed + add >= g->o.ctx) /* room for the new tokens and at least one answer token */
        return qn_fail(-ENOSPC, "%d new tokens and an answer do not fit: the context holds %d positions and %d "
                       "are used (--ctx)", add, g->o.ctx, g->fed);
    double t0 = qn_now_s();
    memset(&g->turn, 0, sizeof g->turn);
    memset(g->seen, 0, ((size_t)g->vocab + 63) / 64 * sizeof *g->seen);
    qn_sampler_reset(g->sampler, seed);
    g->turn.prefill = add;
    g->n_ans = 0;
    int rc = add ? prefill(g, ids, n) : 0;
    if (!rc) rc = decode(g, emit, user, stop, t0);
    const char *text;
    size_t len;
    int frc = qn_tok_stream_flush(g->stream, &text, &len);
    if (!rc && !frc && len && emit) rc = emit(user, text, len);
    if (!rc) rc = frc;
    g->turn.generated = g->n_ans;
    if (rc) qn_gen_reset(g);
    g->turn.pos = qn_gen_pos(g);
    return rc;
}

const int32_t *qn_gen_answer_ids(const qn_gen *g, int *n)
{
    *n = g->n_ans;
    return g->ans;
}

const struct qn_gen_turn *qn_gen_last(const qn_gen *g) { return &g->turn; }

const char *qn_gen_stop_name(enum qn_gen_stop s)
{
    switch (s) {
    case QN_GEN_STOP_TOKEN: return "stop token";
    case QN_GEN_MAX_TOKENS: return "max tokens";
    case QN_GEN_INTERRUPTED: return "interrupted";
    case QN_GEN_CTX_FULL: return "context full";
    }
    return "?";
}

void qn_gen_stats_line(const qn_gen *g, char *buf, size_t size)
{
    const struct qn_gen_turn *t = &g->turn;
    size_t n = 0;
#define ADD(...) (n += (size_t)snprintf(buf + (n < size ? n : size), n < size ? size - n : 0, __VA_ARGS__))
    ADD("prompt %d tokens, prefill %.1f tok/s; generated %d tokens", t->prefill,
        t->prefill_s > 0 ? t->prefill / t->prefill_s : 0.0, t->generated);
    if (t->generated > 1 && t->decode_s > 0) ADD(", decode %.1f tok/s", (t->generated - 1) / t->decode_s);
    ADD("; stop: %s", qn_gen_stop_name(t->stop));
    if (t->stop == QN_GEN_STOP_TOKEN) {
        size_t blen = 0;
        const char *b = qn_tok_bytes(g->tok, t->stop_id, &blen);
        ADD(" %.*s", b ? (int)blen : 0, b ? b : "");
    }
    ADD("; context %d/%d", t->pos, g->o.ctx);
    uint64_t hits, misses;
    if (qn_engine_expert_stats(g->e, &hits, &misses) == 0 && hits + misses > 0)
        ADD("; expert cache %.1f%% hits", 100.0 * (double)hits / (double)(hits + misses));
    if (t->approx) ADD("; %d steps sampled from candidates that may miss a tie", t->approx);
#undef ADD
}
