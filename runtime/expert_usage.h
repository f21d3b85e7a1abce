/* expert_usage.h — how often each routed expert was used, and the expert-cache options built on it.
 *
 * A usage table counts, per (layer, expert), the router's choices (every token's top-k ids, duplicates of a
 * call included) of a streaming run. `--expert-trace FILE` writes it when the model is freed; a later run's
 * `--expert-hot N --expert-hot-from FILE` pins the N most used experts of FILE in the slot cache (never
 * evicted, read once at load), and `--expert-policy lru|lfu` picks the replacement policy for the other slots
 * (docs/streaming.md, "Choosing the cache policy and a pinned hot set").
 *
 * The file is text, one record per line ('#' starts a comment line):
 *     qnext-expert-usage 1
 *     layers 48 experts 512
 *     LAYER EXPERT COUNT          (any order, each pair at most once, pairs not listed count 0)
 * Errors name the file and the line. Files are written to FILE.tmp and renamed. */
#ifndef QN_EXPERT_USAGE_H
#define QN_EXPERT_USAGE_H

#include <stdint.h>

#include "experts.h"

struct qn_model_params;

typedef struct qn_eu qn_eu;

int qn_eu_create(qn_eu **out, int n_layers, int n_experts);
void qn_eu_free(qn_eu **u);   /* safe on NULL */
/* Count ids[0..n) of `layer` (ids outside [0, E) are ignored). */
void qn_eu_count(qn_eu *u, int layer, const int32_t *ids, int n);
uint64_t qn_eu_get(const qn_eu *u, int layer, int expert);
/* Write the counts (pairs with count 0 are left out); `note` goes into a comment line (may be NULL). */
int qn_eu_write(const qn_eu *u, const char *path, const char *note);
/* Read a usage file written for the same shape (replaces the counts). -ENOENT / QN_E_FORMAT / -EINVAL with
 * "FILE:LINE: why" (or "FILE: why"). */
int qn_eu_read(qn_eu *u, const char *path);
/* The (at most) n most used pairs with a count > 0, most used first (ties: lower layer, then lower expert),
 * into pairs[2 * n] as (layer, expert); returns how many. */
int qn_eu_top(const qn_eu *u, int n, int32_t *pairs);

/* The replacement policy named by --expert-policy (NULL name: *out = NULL, LRU). Error: a name other than lru, lfu. */
int qn_eu_policy(const char *name, const struct qn_exp_policy **out);

/* The slot cache's policy and hot set from qn_model_params (expert_policy, expert_hot, expert_hot_from):
 * policy NULL = LRU; hot = malloc'd pairs (free() it), n_hot of them (0 and NULL without --expert-hot).
 * Errors: an unknown policy name, --expert-hot without --expert-hot-from (or the reverse), a bad file. */
struct qn_eu_cache_opts {
    const struct qn_exp_policy *policy;
    int32_t *hot;
    int n_hot;
};
int qn_eu_cache_opts(const struct qn_model_params *p, int n_layers, int n_experts, struct qn_eu_cache_opts *out);

#endif
