/* session.h — one sequence on the GPU: its state (KV caches, conv and delta-rule states, position) and the
 * calls that advance it. Prompts are split into chunks (bounded memory); every shape of call is recorded
 * once into its own command buffer and re-submitted (the position and the token ids live in small
 * host-visible buffers written before each submit), so a decode step is one submit and one small read:
 * the greedy id, the top-k candidates, or the logits.
 *
 * Like the reference (runtime/ref/ref_model.h), a call continues from the state the previous call left, so
 * one call over a prompt, the prompt in several calls, and prefill followed by decode all agree (within
 * f32 rounding: chunked and token-by-token paths sum in different, fixed orders). */
#ifndef QN_SESSION_H
#define QN_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "forward.h"
#include "model.h"

typedef struct qn_session qn_session;

struct qn_session_params {
    uint32_t ctx;              /* initial KV-cache positions (grows by doubling when needed); 0 = 4096 */
    uint32_t chunk;            /* prompt tokens per submission; 0 (the default) = the session picks 512 .. 4096 from the
                                  device memory free after the model (session.c auto_chunk: ~260 KB a token for the
                                  80B model, 1.07 GB at 4096); env QNEXT_CHUNK=N or auto overrides */
    bool profile;              /* GPU time per op family (qn_session_profile) */
    struct qn_fwd_tune tune;
};
void qn_session_default_params(struct qn_session_params *p);

int qn_session_new(qn_session **out, const qn_model *m, const struct qn_session_params *p /* NULL = defaults */);
void qn_session_free(qn_session **s);
/* Back to an empty sequence (position 0, zero states). */
int qn_session_reset(qn_session *s);
int64_t qn_session_pos(const qn_session *s);
uint32_t qn_session_chunk(const qn_session *s); /* prompt tokens per call in use (after auto / caps) */

/* Run n tokens at positions pos .. pos + n - 1 and advance, as qn_ref_forward: logits NULL, [vocab] (last
 * token, all = 0) or [n][vocab] (all = 1); hidden NULL or [(num_layers + 1)][n][hidden] (HF's
 * output_hidden_states). Ids outside [0, vocab) are refused (-ERANGE) before anything runs; after any other
 * error the state is undefined until qn_session_reset(). */
int qn_session_forward(qn_session *s, const int32_t *tokens, int n, float *logits, int all, float *hidden);
/* Run n tokens; *next = the greedy choice after the last one (argmax on the GPU, ties -> lowest id) and
 * *logit (if not NULL) its logit. */
int qn_session_greedy(qn_session *s, const int32_t *tokens, int n, int32_t *next, float *logit);
/* Run n tokens; the k (1 .. 256) largest logits of the last one, descending (ties: lower id first). */
int qn_session_topk(qn_session *s, const int32_t *tokens, int n, int k, int32_t *ids, float *vals);

/* Streaming statistics since load (expert hit rate, bytes and GB/s read, IO stall per token) to out; one line
 * saying every expert is resident otherwise. The totals belong to the model, the token count to this session. */
void qn_session_stats(const qn_session *s, FILE *out);

/* GPU milliseconds per token for each op family so far (decode and prompt calls separately). */
void qn_session_profile(const qn_session *s, FILE *out);

#endif
