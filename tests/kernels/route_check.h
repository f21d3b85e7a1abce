/* route_check.h — compare a router's device outputs (ids, w, sg, shared-expert act) with qn_ref_router on the same
 * logits m [T, E + 2 Is + 1] (test_moe's router kernel and test_mv_norm's route fold; header-only). */
#ifndef QN_TEST_ROUTE_CHECK_H
#define QN_TEST_ROUTE_CHECK_H

#include <stdio.h>

#include "harness.h"
#include "ref_ops.h"

static void check_route(struct qn_h *h, const char *what, const float *m, uint32_t T, uint32_t E, uint32_t K,
                        uint32_t Is, uint32_t as, uint32_t rflags, qn_buf *ids, qn_buf *w, qn_buf *sg, qn_buf *act)
{
    uint32_t ms = E + 2 * Is + 1;
    int *gi = (int *)qn_h_read(h, ids, (size_t)T * K), *ri = qn_h_alloc_bytes(h, (size_t)T * K * sizeof(int));
    float *rw = qn_h_alloc(h, (size_t)T * K), *rsg = qn_h_alloc(h, T), *ract = qn_h_alloc(h, (size_t)T * Is);
    float *gact = qn_h_alloc(h, (size_t)T * Is), *act_h = qn_h_read(h, act, (size_t)T * (K + 1) * as);
    int bad = 0;
    for (uint32_t t = 0; t < T; t++) {
        const float *mt = m + (size_t)t * ms;
        qn_ref_router(ri + t * K, rw + t * K, mt, (int)E, (int)K, !!(rflags & QN_MOE_NORM_TOPK),
                      !!(rflags & QN_MOE_ROUND_BF16));
        rsg[t] = qn_ref_sigmoid(mt[E + 2 * Is]);
        for (uint32_t i = 0; i < Is; i++) {
            ract[t * Is + i] = qn_ref_silu(mt[E + i]) * mt[E + Is + i];
            gact[t * Is + i] = act_h[((size_t)t * (K + 1) + K) * as + i];
        }
    }
    for (uint32_t i = 0; i < T * K; i++) bad += gi[i] != ri[i];
    h->checks++;
    if (bad) h->failures++;
    printf("%-4s %s: router ids %d of %u differ\n", bad ? "FAIL" : "ok", what, bad, T * K);
    char msg[220];
    snprintf(msg, sizeof msg, "%s: router w", what); /* test_moe's bounds: f32 softmax vs double, measured ~3e-7 */
    qn_h_check(h, msg, w, rw, (size_t)T * K, 1e-7, 2e-6);
    snprintf(msg, sizeof msg, "%s: sg", what);
    qn_h_check(h, msg, sg, rsg, T, 1e-7, 1e-6);
    snprintf(msg, sizeof msg, "%s: shared act", what);
    qn_h_check_host(h, msg, gact, ract, (size_t)T * Is, 1e-7, 1e-6);
}

#endif
