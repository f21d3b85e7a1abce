/* testutil.h — small helpers shared by the plain-C tests (header-only): a CHECK macro that counts failures
 * into `failures`, DIE, and reading a golden fixture's expected tensors from expected.safetensors. */
#ifndef QN_TESTUTIL_H
#define QN_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "crash_report.h"

#include "qn_err.h"

static int failures;

/* Count a failure and print where and why when cond is false; the test goes on. */
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

/* Abort the test with the qnext error message (infrastructure failures, not checks). */
#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, ": %s\n", qn_errmsg()); exit(1); } while (0)

/* Relative L2 error of a against the reference b (absolute when b is all zeros). */
static inline double rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        d += e * e;
        r += (double)b[i] * b[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

static inline void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

/* Remove a test's temporary folder and everything in it (a note when that fails). */
static inline void rm_tmpdir(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "note: could not remove %s\n", dir);
}

/* Index of the largest of x[0..n) (the first on ties): the host's greedy choice. */
static inline int argmax_f32(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

#ifdef QN_SAFETENSORS_H
/* Read an expected tensor as f32 / i32 into a malloc'd array; returns the element count, 0 when absent. */
static inline size_t get_f32(const qn_st_store *e, const char *name, float **out)
{
    const qn_st_tensor *t = qn_st_find(e, name);
    if (!t) return 0;
    size_t n = (size_t)qn_st_numel(t);
    *out = xmalloc(n * sizeof **out);
    if (qn_st_read_f32(e, name, *out, n)) DIE("reading %s", name);
    return n;
}

static inline size_t get_i32(const qn_st_store *e, const char *name, int32_t **out)
{
    const qn_st_tensor *t = qn_st_find(e, name);
    if (!t) return 0;
    size_t n = (size_t)qn_st_numel(t);
    *out = xmalloc(n * sizeof **out);
    if (qn_st_read_i32(e, name, *out, n)) DIE("reading %s", name);
    return n;
}

/* The fixture's prompt `which`: prefill<which>.input_ids -> *ids and HF's logits [T, V] -> *logits; returns T,
 * 0 (nothing read) when the fixture has no such prompt. */
static inline int get_prefill(const qn_st_store *e, int which, int32_t **ids, float **logits)
{
    char name[64];
    snprintf(name, sizeof name, "prefill%d.input_ids", which);
    int T = (int)get_i32(e, name, ids);
    if (!T) return 0;
    snprintf(name, sizeof name, "prefill%d.logits", which);
    if (!get_f32(e, name, logits)) DIE("fixture has %s but not its logits", name);
    return T;
}

/* The fixture's greedy run: the prompt (*P ids), HF's greedy tokens and their logits [N, V]; returns N (dies
 * when the fixture lacks them). */
static inline int get_greedy(const qn_st_store *e, int32_t **prompt, int *P, int32_t **toks, float **logits)
{
    *P = (int)get_i32(e, "greedy.prompt", prompt);
    int N = (int)get_i32(e, "greedy.tokens", toks);
    if (!*P || !N || !get_f32(e, "greedy.logits", logits)) DIE("fixture has no greedy.* tensors");
    return N;
}
#endif

#endif
