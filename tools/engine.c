/* engine.c — backend choice behind the qn_engine interface (see engine.h). */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

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
};

static int cpu_forward(void *p, const int32_t *tokens, int n, float *logits, int all)
{
    struct cpu_impl *c = p;
    return qn_ref_forward(c->s, tokens, n, logits, all, NULL);
}

static void cpu_reset(void *p) { qn_ref_session_reset(((struct cpu_impl *)p)->s); }

static void cpu_close(void *p)
{
    struct cpu_impl *c = p;
    qn_ref_session_free(&c->s);
    qn_ref_model_free(&c->m);
    free(c);
}

static const qn_config *cpu_config(const void *p) { return qn_ref_model_config(((const struct cpu_impl *)p)->m); }

static const struct qn_engine_ops cpu_ops = { "cpu", cpu_forward, cpu_reset, cpu_close, cpu_config };

static int cpu_open(void **out, const struct qn_cli_common *o)
{
    struct cpu_impl *c = calloc(1, sizeof *c);
    if (!c) return qn_fail(-ENOMEM, "out of memory");
    int rc = qn_ref_model_load(&c->m, o->model);
    if (!rc) rc = qn_ref_session_new(&c->s, c->m, NULL);
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
        rc = qn_fail(QN_E_UNSUPPORTED, "the Vulkan forward pass is not built yet; use --backend cpu");
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
    int rc = qn_cfg_load(&cfg, c->model);
    if (rc) {
        qn_cli_report(cmd, rc);
        return rc;
    }
    return qn_cli_tokens(cmd, list, cfg.vocab_size, ids, n);
}
