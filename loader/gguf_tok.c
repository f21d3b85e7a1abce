/* gguf_tok.c — copy tokenizer.ggml.* metadata out of a GGUF into plain arrays (one allocation). */
#include "gguf_tok.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

typedef struct bump { char *p; size_t used, cap; } bump;

static void *take(bump *b, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (!b->p) { b->cap += n; return NULL; }   /* sizing pass */
    void *r = b->p + b->used;
    b->used += n;
    return r;
}

static const char *copy_str(bump *b, const char *s, uint64_t n)
{
    char *d = take(b, (size_t)n + 1);
    if (d) { memcpy(d, s, (size_t)n); d[n] = 0; }
    return d;
}

static const char *opt_str(const qn_gguf *g, bump *b, const char *key, const char *dflt)
{
    const qn_gguf_kv *kv = qn_gguf_find_kv(g, key);
    if (!kv || kv->val.type != QN_GGUF_STR) return dflt;
    return copy_str(b, kv->val.str, kv->val.len);
}

/* Optional integer id; -1 if absent; error if present but not an id below n. */
static int opt_id(const qn_gguf *g, const char *key, uint32_t n, int64_t *out)
{
    *out = -1;
    if (!qn_gguf_find_kv(g, key)) return 0;
    int64_t v;
    int rc = qn_gguf_get_i64(g, key, &v);
    if (rc) return rc;
    if (v < 0 || v >= (int64_t)n)
        return qn_fail(QN_E_FORMAT, "%s: %s = %" PRId64 " is not a token id (vocabulary of %u)", qn_gguf_path(g), key, v, n);
    *out = v;
    return 0;
}

static int opt_bool(const qn_gguf *g, const char *key, int *out)
{
    *out = -1;
    return qn_gguf_find_kv(g, key) ? qn_gguf_get_bool(g, key, out) : 0;
}

/* The arrays; run twice (sizing with b->p == NULL, then filling). */
static int fill(const qn_gguf *g, qn_gguf_vocab *v, bump *b, const qn_gguf_val *tok, const qn_gguf_val *tt,
                const qn_gguf_val *sc, const qn_gguf_val *mg)
{
    uint32_t n = (uint32_t)tok->n;
    v->n_tokens = n;
    v->model = opt_str(g, b, "tokenizer.ggml.model", "");
    v->pre = opt_str(g, b, "tokenizer.ggml.pre", "");
    v->chat_template = opt_str(g, b, "tokenizer.chat_template", NULL);
    const char **toks = take(b, n * sizeof *toks);
    uint32_t *lens = take(b, n * sizeof *lens);
    for (uint32_t i = 0; i < n; i++) {
        const char *s = copy_str(b, tok->strs[i], tok->lens[i]);
        if (toks) { toks[i] = s; lens[i] = (uint32_t)tok->lens[i]; }
    }
    v->tokens = toks;
    v->token_len = lens;
    int32_t *types = tt ? take(b, n * sizeof *types) : NULL;
    for (uint32_t i = 0; types && i < n; i++) {
        int64_t t;
        int rc = qn_gguf_arr_int(tt, i, &t);
        if (rc) return qn_fail_ctx(rc, "%s: tokenizer.ggml.token_type: ", qn_gguf_path(g));
        types[i] = (int32_t)t;
    }
    v->token_type = types;
    float *scores = sc ? take(b, n * sizeof *scores) : NULL;
    if (scores) memcpy(scores, sc->raw, n * sizeof *scores);
    v->scores = scores;
    v->n_merges = mg ? (uint32_t)mg->n : 0;
    const char **merges = mg ? take(b, v->n_merges * sizeof *merges) : NULL;
    for (uint32_t i = 0; i < v->n_merges; i++) {
        const char *s = copy_str(b, mg->strs[i], mg->lens[i]);
        if (merges) merges[i] = s;
    }
    v->merges = merges;
    return 0;
}

static int opt_arr(const qn_gguf *g, const char *key, int elem_type, uint64_t n, const qn_gguf_val **out)
{
    *out = NULL;
    if (!qn_gguf_find_kv(g, key)) return 0;
    int rc = qn_gguf_get_arr(g, key, elem_type, out);
    if (!rc && n != UINT64_MAX && (*out)->n != n)
        rc = qn_fail(QN_E_FORMAT, "%s: %s has %" PRIu64 " entries for %" PRIu64 " tokens", qn_gguf_path(g), key,
                     (*out)->n, n);
    return rc;
}

int qn_gguf_vocab_get(const qn_gguf *g, qn_gguf_vocab *v)
{
    memset(v, 0, sizeof *v);
    const qn_gguf_val *tok, *tt, *sc, *mg;
    int rc = qn_gguf_get_arr(g, "tokenizer.ggml.tokens", QN_GGUF_STR, &tok);
    if (!rc && tok->n > UINT32_MAX / 2) rc = qn_fail(QN_E_FORMAT, "%s: too many tokens", qn_gguf_path(g));
    if (!rc) rc = opt_arr(g, "tokenizer.ggml.token_type", -1, tok->n, &tt);
    if (!rc) rc = opt_arr(g, "tokenizer.ggml.scores", QN_GGUF_F32, tok->n, &sc);
    if (!rc) rc = opt_arr(g, "tokenizer.ggml.merges", QN_GGUF_STR, UINT64_MAX, &mg);
    if (!rc && mg && mg->n > UINT32_MAX / 2) rc = qn_fail(QN_E_FORMAT, "%s: too many merges", qn_gguf_path(g));
    if (rc) return rc;
    uint32_t n = (uint32_t)tok->n;
    static const struct { const char *key; size_t off; } ids[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(qn_gguf_vocab, bos_id)},
        {"tokenizer.ggml.eos_token_id", offsetof(qn_gguf_vocab, eos_id)},
        {"tokenizer.ggml.eot_token_id", offsetof(qn_gguf_vocab, eot_id)},
        {"tokenizer.ggml.eom_token_id", offsetof(qn_gguf_vocab, eom_id)},
        {"tokenizer.ggml.padding_token_id", offsetof(qn_gguf_vocab, pad_id)},
        {"tokenizer.ggml.unknown_token_id", offsetof(qn_gguf_vocab, unk_id)},
        {"tokenizer.ggml.seperator_token_id", offsetof(qn_gguf_vocab, sep_id)},   /* sic, as in gguf-py */
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0] && !rc; i++)
        rc = opt_id(g, ids[i].key, n, (int64_t *)((char *)v + ids[i].off));
    if (!rc) rc = opt_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos);
    if (!rc) rc = opt_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos);
    bump b = {0};
    if (!rc) rc = fill(g, v, &b, tok, tt, sc, mg);
    if (rc) return rc;
    if (!(b.p = malloc(b.cap ? b.cap : 1))) return qn_fail(-ENOMEM, "%s: out of memory for the vocabulary", qn_gguf_path(g));
    v->mem_ = b.p;
    rc = fill(g, v, &b, tok, tt, sc, mg);
    if (rc) qn_gguf_vocab_free(v);
    return rc;
}

void qn_gguf_vocab_free(qn_gguf_vocab *v)
{
    free(v->mem_);
    memset(v, 0, sizeof *v);
    v->bos_id = v->eos_id = v->eot_id = v->eom_id = v->pad_id = v->unk_id = v->sep_id = -1;
}
