/* generate_loop.h — the token loop shared by `qnext run` and `qnext chat` (and later `serve`): feed new
 * tokens into the engine's session, then sample one token at a time until a stop token, the token budget,
 * a full context or an interrupt, streaming the decoded text (complete UTF-8 only) to a callback.
 *
 * The session carries over between answers: the conversation's KV cache and Gated DeltaNet states stay in
 * the engine, and each answer feeds only its new tokens. The last token of an answer that did not end with
 * a stop token (budget, interrupt, full context) was sampled but not yet run; it stays "pending" and is fed
 * first by the next answer, so the text the caller keeps (prompt + answer) is always exactly what the
 * session has seen or will see next.
 *
 * Sampling goes through qn_engine_topk() (K candidates, K chosen so the sampler's result equals sampling
 * from the full vector; see sample.h), or through the full logits when top-k is off. */
#ifndef QN_GENERATE_LOOP_H
#define QN_GENERATE_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "sample.h"
#include "tokenizer.h"

enum qn_gen_stop {
    QN_GEN_STOP_TOKEN,   /* a stop token was sampled (<|im_end|>, <|endoftext|>); it is not part of the answer */
    QN_GEN_MAX_TOKENS,   /* the answer reached max_tokens */
    QN_GEN_INTERRUPTED,  /* *stop was set (Ctrl-C) */
    QN_GEN_CTX_FULL,     /* the conversation takes all ctx positions (the last token pending) */
};

struct qn_gen_opts {
    qn_sample_params sample;
    int max_tokens;      /* per answer, >= 1 */
    int ctx;             /* positions the session may hold, >= 1 */
};

/* What the latest answer did. */
struct qn_gen_turn {
    int prefill;          /* tokens fed before the first sample (the new ones only, a pending token included) */
    int pos;              /* positions the session holds after the answer (a pending token included) */
    double prefill_s;     /* wall time from the start to the first sampled token */
    int generated;        /* tokens of the answer (a stop token not counted) */
    double decode_s;      /* wall time from the first sampled token to the last */
    enum qn_gen_stop stop;
    int32_t stop_id;      /* the stop token (QN_GEN_STOP_TOKEN) */
    int approx;           /* steps where the candidates could not prove the sample exact (see .c) */
};

/* Receives decoded text (complete UTF-8, not NUL-terminated); a negative return aborts the answer. */
typedef int (*qn_gen_emit)(void *user, const char *text, size_t len);

typedef struct qn_gen qn_gen;

/* `e` and `tok` stay owned by the caller and must outlive the generator. The stop tokens are looked up in
 * `tok` (qn_chat_stop_ids). */
int qn_gen_new(qn_gen **out, qn_engine *e, const qn_tok *tok, const struct qn_gen_opts *o);
void qn_gen_free(qn_gen **g);
/* Empty session (engine reset, no pending token). */
void qn_gen_reset(qn_gen *g);
/* Positions the conversation takes: tokens run plus a pending one. */
int qn_gen_pos(const qn_gen *g);

/* Feed ids[0..n) (after a pending token) and generate one answer. The answer's sampler is reseeded with
 * `seed` (same seed, same session, same ids -> same answer). When the new tokens do not fit in the
 * context, returns -ENOSPC with a message and changes nothing. After any other error the session is empty
 * (as after qn_gen_reset). `stop` may be NULL. */
int qn_gen_answer(qn_gen *g, const int32_t *ids, int n, uint64_t seed, qn_gen_emit emit, void *user,
                  volatile sig_atomic_t *stop);
/* The latest answer: its ids (the stop token excluded; valid until the next answer) and its numbers. */
const int32_t *qn_gen_answer_ids(const qn_gen *g, int *n);
const struct qn_gen_turn *qn_gen_last(const qn_gen *g);

/* "prompt 12 tokens, prefill 310.2 tok/s; generated 40 tokens, decode 25.3 tok/s; stop <|im_end|>"
 * plus "; expert cache 93.1% hits" when the engine keeps one, for the latest answer. */
void qn_gen_stats_line(const qn_gen *g, char *buf, size_t size);
const char *qn_gen_stop_name(enum qn_gen_stop s);

#endif
