/* engine.h — one small interface over the forward-pass backends, so every subcommand that runs the model
 * (logits, generate, run, chat, serve, bench) is written once: the plain-C reference (--backend cpu) today,
 * the Vulkan forward (--backend vulkan) as a second implementation of the same five calls. */
#ifndef QN_ENGINE_H
#define QN_ENGINE_H

#include <stdint.h>

#include "cli.h"
#include "config.h"

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
};

#endif
