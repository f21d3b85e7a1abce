/* sample.h — picking the next token on the host from a short candidate list (or the full logits).
 *
 * The GPU reduces the 151,936 logits to the top K candidates (id, logit); this file turns them into
 * one id the way Hugging Face generate() does with do_sample=True: presence penalty (vLLM/OpenAI
 * semantics: subtract it once from every token already generated), then temperature -> top-k -> top-p
 * -> min-p, softmax, one draw from a seeded PRNG. Temperature 0 is greedy (argmax after the penalty).
 * Defaults are the model card's: temperature 0.7, top-k 20, top-p 0.8, min-p 0, presence penalty 0.
 *
 * With only K candidates the result equals sampling from the full vector as long as K covers every
 * token top-k could keep: K >= top_k (ties at the k-th logit included) and, with a presence penalty,
 * enough extra candidates that no penalised token pushes an unseen one into the top-k. With top_k = 0
 * (off) the candidates stand in for the whole vocabulary (an approximation unless logits are given).
 * No Vulkan here. */
#ifndef QN_SAMPLE_H
#define QN_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#define QN_SAMPLE_MAX_K 256 /* longest candidate list accepted */

typedef struct qn_cand { int32_t id; float logit; } qn_cand;
typedef struct qn_prob { int32_t id; float p; } qn_prob;

typedef struct qn_sample_params {
    float temperature;       /* 0 = greedy */
    int top_k;               /* 0 = off */
    float top_p;             /* 1 = off; in (0, 1] */
    float min_p;             /* 0 = off; in [0, 1] */
    float presence_penalty;  /* subtracted from the logit of every token already accepted */
    uint64_t seed;
} qn_sample_params;

/* temperature 0.7, top_k 20, top_p 0.8, min_p 0, presence_penalty 0, seed 0 */
qn_sample_params qn_sample_default_params(void);

typedef struct qn_sampler qn_sampler;

/* n_vocab: ids are in [0, n_vocab) (151936 for the model's logits). Bad parameters: -EINVAL. */
int qn_sampler_create(qn_sampler **out, const qn_sample_params *p, int n_vocab);
void qn_sampler_free(qn_sampler **s);
/* Forget the generated tokens and restart the PRNG from `seed`. */
void qn_sampler_reset(qn_sampler *s, uint64_t seed);
/* Record a generated token (for the presence penalty). The caller decides which tokens count: vLLM
 * counts only generated ones, not the prompt. */
int qn_sampler_accept(qn_sampler *s, int32_t id);

/* Pick one id from k candidates (any order, k <= QN_SAMPLE_MAX_K) or, when `logits` is not NULL,
 * from the full vector logits[0..n) (candidates ignored). Does not accept the id: call
 * qn_sampler_accept() for it. NaN logits or no finite logit: -EINVAL. */
int qn_sampler_sample(qn_sampler *s, const qn_cand *cand, int k, const float *logits, int n, int32_t *id);

/* The distribution qn_sampler_sample draws from: the kept tokens with their probabilities, most
 * likely first (*n_out <= k, or <= n with full logits; `out` must hold that many). Greedy gives the
 * argmax with p = 1. */
int qn_sampler_dist(qn_sampler *s, const qn_cand *cand, int k, const float *logits, int n, qn_prob *out, int *n_out);

#endif
