/* ref_model.h — the whole Qwen3-Next forward pass in plain C float (the oracle for the Vulkan forward).
 *
 * Weights are loaded once as float32 (refused with a clear message when that copy would not fit in RAM).
 * A session holds one sequence's state: KV cache of the attention layers, conv and recurrent states of the
 * Gated DeltaNet layers, and the position. qn_ref_forward() runs any number of tokens and continues from the
 * state left by the previous call (the mathematically correct carry-over, spec §3), so one call over a
 * prompt, the prompt split into several calls and prefill followed by one-token decode all agree. */
#ifndef QN_REF_MODEL_H
#define QN_REF_MODEL_H

#include <stdint.h>

#include "config.h"

typedef struct qn_ref_model qn_ref_model;
typedef struct qn_ref_session qn_ref_session;

/* `path`: a Hugging Face folder (config.json + model.safetensors or its shard index). */
int qn_ref_model_load(qn_ref_model **out, const char *path);
void qn_ref_model_free(qn_ref_model **m);
const qn_config *qn_ref_model_config(const qn_ref_model *m);
/* Bytes the float32 weights of config c take (what load would allocate). */
uint64_t qn_ref_model_bytes(const qn_config *c);

typedef struct qn_ref_opts {
    int gdn_chunk;    /* delta rule over a multi-token call: 0 = token by token, N = chunked form with chunk N (64) */
    int router_bf16;  /* 1: round router logits to bf16 before the softmax (HF on bf16 weights); 0: fp32 (default) */
} qn_ref_opts;

void qn_ref_opts_default(qn_ref_opts *o); /* chunk 64, router fp32 */

int qn_ref_session_new(qn_ref_session **out, const qn_ref_model *m, const qn_ref_opts *opts /* NULL = default */);
void qn_ref_session_free(qn_ref_session **s);
/* Back to an empty sequence (position 0, zero states, empty cache). */
void qn_ref_session_reset(qn_ref_session *s);
int64_t qn_ref_session_pos(const qn_ref_session *s);

/* Run n tokens at positions pos .. pos+n-1 and advance. logits: NULL, [vocab] (all_logits = 0: last token only)
 * or [n][vocab] (all_logits = 1). hidden: NULL or [(num_layers + 1)][n][hidden] in HF's output_hidden_states
 * convention (entry 0 = embeddings, entry i = output of layer i-1, the last entry with the final norm applied).
 * Token ids outside [0, vocab) are refused (-ERANGE) before anything changes; after any other error the
 * session's state is undefined until qn_ref_session_reset(). */
int qn_ref_forward(qn_ref_session *s, const int32_t *tokens, int n, float *logits, int all_logits, float *hidden);

#endif
