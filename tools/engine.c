/* engine.c — backend choice behind the qn_engine interface (see engine.h). */
#include "engine.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_gguf.h"
#include "qn_err.h"
#include "ref_model.h"

struct qn_engine {
    const struct qn_engine_ops *ops;
    void *impl;
};

/* ---- cpu: the plain-C reference model ---- */

struct cpu_impl {
    qn_ref_model *m;
    qn_ref_session *s;
    float *last;  /* [vocab] logits of the last position of the latest call (for topk) */
    int vocab;
};

static int cpu_forward(void *p, const int32_t *tokens, int n, float *logits, int all)
{
    struct cpu_impl *c = p;
    int rc = qn_ref_forward(c->s, tokens, n, logits ? logits : c->last, logits ? all : 0, NULL);
    if (!rc && logits) memcpy(c->last, logits + (all ? (size_t)(n - 1) * (size_t)c->vocab : 0), sizeof *c->last * (size_t)c->vocab);
    return rc;
}

static void cpu_reset(void *p) { qn_ref_session_reset(((struct cpu_impl *)p)->s); }

static void cpu_close(void *p)
{
    struct cpu_impl *c = p;
    qn_ref_session_free(&c->s);
    qn_ref_model_free(&c->m);
    free(c->last);
    free(c);
}

static const qn_config *cpu_config(const void *p) { return qn_ref_model_config(((const struct cpu_impl *)p)->m); }

static int cpu_topk(void *p, qn_cand *cand, int k)
{
    struct cpu_impl *c = p;
    return qn_engine_topk_host(c->last, c->vocab, cand, k);
}

static const struct qn_engine_ops cpu_ops = {
    .name = "cpu", .forward = cpu_forward, .reset = cpu_reset, .close = cpu_close, .config = cpu_config,
    .topk = cpu_topk,
};

static int cpu_open(void **out, const struct qn_cli_common *o)
{
    struct cpu_impl *c = calloc(1, sizeof *c);
    if (!c) return qn_fail(-ENOMEM, "out of memory");
    int rc = qn_ref_model_load(&c->m, o->model);
    if (!rc) rc = qn_ref_session_new(&c->s, c->m, NULL);
    if (!rc) {
        c->vocab = (int)qn_ref_model_config(c->m)->vocab_size;
        c->last = calloc((size_t)c->vocab, sizeof *c->last);
        if (!c->last) rc = qn_fail(-ENOMEM, "out of memory (logits of %d ids)", c->vocab);
    }
    if (rc) {
        cpu_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- the interface ---- */

int qn_engine_open(qn_engine **out, const struct qn_cli_common *c)
{
    *out = NULL;
    if (!c->model) return qn_fail(-EINVAL, "no model given (-m DIR)");
    qn_engine *e = calloc(1, sizeof *e);
    if (!e) return qn_fail(-ENOMEM, "out of memory");
    int rc;
    switch (c->backend) {
    case QN_BACKEND_CPU:
        e->ops = &cpu_ops;
        rc = cpu_open(&e->impl, c);
        break;
    default:
        rc = qn_engine_vk_open(&e->impl, &e->ops, c);
        break;
    }
    if (rc) {
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void qn_engine_close(qn_engine **pe)
{
    qn_engine *e = *pe;
    if (!e) return;
    e->ops->close(e->impl);
    free(e);
    *pe = NULL;
}

const qn_config *qn_engine_config(const qn_engine *e) { return e->ops->config(e->impl); }
const char *qn_engine_name(const qn_engine *e) { return e->ops->name; }

int qn_engine_forward(qn_engine *e, const int32_t *tokens, int n, float *logits, int all)
{
    return e->ops->forward(e->impl, tokens, n, logits, all);
}

void qn_engine_reset(qn_engine *e) { e->ops->reset(e->impl); }

/* ---- sampling support: top-k candidates and expert-cache counters ---- */

/* a before b in the candidate order: larger logit, then lower id */
static int cand_before(float la, int32_t ia, float lb, int32_t ib) { return la > lb || (la == lb && ia < ib); }

int qn_engine_topk_host(const float *x, int n, qn_cand *cand, int k)
{
    if (k < 1 || k > QN_SAMPLE_MAX_K || k > n)
        return qn_fail(-EINVAL, "top-k: %d candidates asked from %d logits (1 .. %d)", k, n, QN_SAMPLE_MAX_K);
    int m = 0; /* cand[0..m) sorted, best first */
    for (int i = 0; i < n; i++) {
        float v = x[i];
        if (isnan(v)) return qn_fail(-EINVAL, "top-k: the logit of id %d is NaN", i);
        if (m == k && !cand_before(v, i, cand[k - 1].logit, cand[k - 1].id)) continue;
        int j = m < k ? m++ : k - 1;
        for (; j > 0 && cand_before(v, i, cand[j - 1].logit, cand[j - 1].id); j--) cand[j] = cand[j - 1];
        cand[j] = (qn_cand){ i, v };
    }
    return 0;
}

int qn_engine_topk(qn_engine *e, qn_cand *cand, int k)
{
    if (!e->ops->topk) return qn_fail(QN_E_UNSUPPORTED, "the %s backend has no top-k call", e->ops->name);
    return e->ops->topk(e->impl, cand, k);
}

int qn_engine_expert_stats(qn_engine *e, uint64_t *hits, uint64_t *misses)
{
    if (!e->ops->expert_stats) return qn_fail(QN_E_UNSUPPORTED, "the %s backend keeps no expert cache", e->ops->name);
    return e->ops->expert_stats(e->impl, hits, misses);
}

int qn_engine_tokens(const char *cmd, const struct qn_cli_common *c, const char *list, int32_t **ids, int *n)
{
    qn_config cfg;
    if (!c->model) {
        fprintf(stderr, "qnext %s: no model given (-m DIR)\n", cmd);
        return -EINVAL;
    }
    if (!list) {
        fprintf(stderr, "qnext %s: no prompt given (--tokens 1,2,3)\n", cmd);
        return -EINVAL;
    }
    int rc = qn_model_path_is_gguf(c->model) ? qn_model_gguf_config(c->model, &cfg) : qn_cfg_load(&cfg, c->model);
    if (rc) {
        qn_cli_report(cmd, rc);
        return rc;
    }
    return qn_cli_tokens(cmd, list, cfg.vocab_size, ids, n);
}
