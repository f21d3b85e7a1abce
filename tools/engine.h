/* engine.h — one small interface over the forward-pass backends, so every subcommand that runs the model
 * (logits, generate, run, chat, serve, bench) is written once: the Vulkan forward (--backend vulkan, the
 * default; engine_vk.c) and the plain-C reference (--backend cpu) implement the same calls. */
#ifndef QN_ENGINE_H
#define QN_ENGINE_H

#include <stdint.h>

#include "cli.h"
#include "config.h"
#include "sample.h"

typedef struct qn_engine qn_engine;

/* Open the model named in c->model with the backend c->backend. */
int qn_engine_open(qn_engine **out, const struct qn_cli_common *c);
void qn_engine_close(qn_engine **e);
const qn_config *qn_engine_config(const qn_engine *e);
const char *qn_engine_name(const qn_engine *e); /* "cpu", "vulkan" */
/* Run n tokens continuing the sequence; logits: [n][vocab] (all = 1) or [vocab] of the last token (all = 0). */
int qn_engine_forward(qn_engine *e, const int32_t *tokens, int n, float *logits, int all);
/* Start a new sequence. */
void qn_engine_reset(qn_engine *e);

/* ---- sampling support (run, chat, serve) ---- */
/* The k (1 .. QN_SAMPLE_MAX_K, <= vocab) largest logits of the last position of the latest
 * qn_engine_forward() call, largest first, ties lower id first. Call it once per forward call; the
 * forward call may pass logits = NULL (a backend may then run the tokens lazily, here). NaN logits:
 * an error. */
int qn_engine_topk(qn_engine *e, qn_cand *cand, int k);
/* Routed-expert cache counters since open (streaming backends); QN_E_UNSUPPORTED when the backend keeps
 * no expert cache (cpu). */
int qn_engine_expert_stats(qn_engine *e, uint64_t *hits, uint64_t *misses);
/* The top-k selection on the host over logits x[0..n) (same order and checks), for backends that have
 * the logits in host memory. */
int qn_engine_topk_host(const float *x, int n, qn_cand *cand, int k);

/* Parse --tokens LIST for command `cmd` and check every id against the vocabulary in c->model's config.json
 * (before any weights are loaded). Prints the reason and returns <0 on bad input; *ids is malloc'd. */
int qn_engine_tokens(const char *cmd, const struct qn_cli_common *c, const char *list, int32_t **ids, int *n);

/* Backend entry points (one per implementation): fill *impl and *ops. */
struct qn_engine_ops {
    const char *name;
    int (*forward)(void *impl, const int32_t *tokens, int n, float *logits, int all);
    void (*reset)(void *impl);
    void (*close)(void *impl);
    const qn_config *(*config)(const void *impl);
    /* optional (NULL: not available) */
    int (*topk)(void *impl, qn_cand *cand, int k);
    int (*expert_stats)(void *impl, uint64_t *hits, uint64_t *misses);
};
/* The Vulkan backend (engine_vk.c). */
int qn_engine_vk_open(void **impl, const struct qn_engine_ops **ops, const struct qn_cli_common *c);

#endif
