/* engine_vk.c — the Vulkan backend of the qn_engine interface (engine.h): device (--device), board profile
 * (--board: memory reserve and kernel tuning), the model resident on the GPU (runtime/model.h) and one
 * session (runtime/session.h). A forward call without logits is kept pending and run by the next top-k call,
 * so a sampled or greedy step reads back only the candidates (k = 1: the GPU argmax) instead of the logits.
 * --profile prints GPU time per op family at close; --stats the expert-streaming totals (hit rate, bytes and
 * GB/s read, IO stall per token) when --expert-cache is below the experts' bytes; --io picks the read mode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "qn_err.h"
#include "model_stream.h"
#include "session.h"
#include "vk_stack.h"

struct vk_impl {
    struct qn_vk_stack st; /* device, board, model, session */
    qn_model *m;           /* = st.m */
    qn_session *s;         /* = st.s */
    int32_t *pend;       /* tokens of a forward call made without logits, not run yet */
    int npend, cap;
    float *last;         /* [vocab] last-position logits of the latest call that returned logits */
    bool have_last;
    bool profile;
    bool stats;
};

/* Run the pending tokens with no output (a forward call follows that needs the state). */
static int flush(struct vk_impl *p)
{
    if (!p->npend) return 0;
    int rc = qn_session_forward(p->s, p->pend, p->npend, NULL, 0, NULL);
    p->npend = 0;
    return rc;
}

static int vk_forward(void *impl, const int32_t *tokens, int n, float *logits, int all)
{
    struct vk_impl *p = impl;
    int V = p->m->c.vocab_size;
    p->have_last = false;
    if (!logits) { /* keep them for the next top-k call */
        for (int t = 0; t < n; t++)
            if (tokens[t] < 0 || tokens[t] >= V)
                return qn_fail(-ERANGE, "token id %d (position %d) is outside the vocabulary [0, %d)", tokens[t], t, V);
        if (p->npend + n > p->cap) {
            int cap = (p->npend + n) * 2;
            int32_t *q = realloc(p->pend, sizeof *q * (size_t)cap);
            if (!q) return qn_fail(-ENOMEM, "out of memory");
            p->pend = q;
            p->cap = cap;
        }
        memcpy(p->pend + p->npend, tokens, sizeof *tokens * (size_t)n);
        p->npend += n;
        return 0;
    }
    int rc = flush(p);
    if (!rc) rc = qn_session_forward(p->s, tokens, n, logits, all, NULL);
    if (!rc) {
        memcpy(p->last, logits + (all ? (size_t)(n - 1) * (size_t)V : 0), sizeof *p->last * (size_t)V);
        p->have_last = true;
    }
    return rc;
}

static int vk_topk(void *impl, qn_cand *cand, int k)
{
    struct vk_impl *p = impl;
    int V = p->m->c.vocab_size;
    if (k < 1 || k > QN_SAMPLE_MAX_K || k > V)
        return qn_fail(-EINVAL, "top-k: %d candidates asked from %d logits (1 .. %d)", k, V, QN_SAMPLE_MAX_K);
    if (p->have_last) return qn_engine_topk_host(p->last, V, cand, k);
    if (!p->npend) return qn_fail(-EINVAL, "top-k: no forward call to take the candidates from");
    int rc, n = p->npend;
    p->npend = 0;
    if (k == 1) { /* greedy: the argmax kernel */
        rc = qn_session_greedy(p->s, p->pend, n, &cand[0].id, &cand[0].logit);
        return rc;
    }
    int32_t ids[QN_SAMPLE_MAX_K];
    float vals[QN_SAMPLE_MAX_K];
    rc = qn_session_topk(p->s, p->pend, n, k, ids, vals);
    for (int i = 0; !rc && i < k; i++) {
        if (vals[i] != vals[i]) return qn_fail(-EINVAL, "top-k: the logit of id %d is NaN", ids[i]);
        cand[i] = (qn_cand){ ids[i], vals[i] };
    }
    return rc;
}

static void vk_reset(void *impl)
{
    struct vk_impl *p = impl;
    p->npend = 0;
    p->have_last = false;
    qn_session_reset(p->s);
}

static void vk_close(void *impl)
{
    struct vk_impl *p = impl;
    if (p->profile && p->s) qn_session_profile(p->s, stderr);
    if (p->stats && p->s) qn_session_stats(p->s, stderr);
    qn_vk_stack_close(&p->st);
    free(p->pend);
    free(p->last);
    free(p);
}

static const qn_config *vk_config(const void *impl) { return &((const struct vk_impl *)impl)->m->c; }

static int vk_expert_stats(void *impl, uint64_t *hits, uint64_t *misses)
{
    struct qn_exp_stats es = { 0 };
    struct qn_io_stats is;
    const qn_model *m = ((struct vk_impl *)impl)->m;
    if (m->stream) qn_mst_stats(m, &es, &is);   /* resident: no misses, nothing to report */
    *hits = es.hits;
    *misses = es.misses;
    return 0;
}

static const struct qn_engine_ops vk_ops = {
    .name = "vulkan", .forward = vk_forward, .reset = vk_reset, .close = vk_close, .config = vk_config,
    .topk = vk_topk, .expert_stats = vk_expert_stats,
};

int qn_engine_vk_open(void **out, const struct qn_engine_ops **ops, const struct qn_cli_common *o)
{
    struct vk_impl *p = calloc(1, sizeof *p);
    if (!p) return qn_fail(-ENOMEM, "out of memory");
    struct qn_session_params sp;
    qn_session_default_params(&sp);
    p->stats = o->stats;
    p->profile = o->profile;
    int rc = qn_vk_stack_open(&p->st, o, sp);
    p->m = p->st.m;
    p->s = p->st.s;
    if (!rc && !(p->last = calloc((size_t)p->m->c.vocab_size, sizeof *p->last))) rc = qn_fail(-ENOMEM, "out of memory");
    if (rc) {
        vk_close(p);
        return rc;
    }
    *out = p;
    *ops = &vk_ops;
    return 0;
}
