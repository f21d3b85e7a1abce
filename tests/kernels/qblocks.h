/* qblocks.h — random inputs for the quantized kernel tests (header-only): ggml block-format matrices and the
 * routed expert ids of the MoE tests. */
#ifndef QN_TEST_QBLOCKS_H
#define QN_TEST_QBLOCKS_H

#include <string.h>

#include "harness.h"
#include "quant.h"

/* Quantize a random [rows, cols] matrix (per-32 scale and offset, so blocks see varied ranges) into dst in
 * ggml block format `type`; its dequantized copy into deq (if not NULL). */
static inline void qn_h_quant_matrix(struct qn_h *h, uint32_t type, uint32_t rows, uint32_t cols, uint8_t *dst, float *deq)
{
    uint64_t rb;
    qn_h_ok(h, qn_ggml_row_bytes(type, cols, &rb), "row bytes");
    float *w = qn_h_alloc(h, (size_t)rows * cols), g[2];
    qn_h_random(h, w, (size_t)rows * cols, -1, 1);
    for (size_t i = 0; i < (size_t)rows * cols; i += 32) {
        qn_h_random(h, g, 2, 0, 1);
        for (size_t j = i; j < i + 32; j++) w[j] = (0.05f + 1.95f * g[0]) * (w[j] + g[1] - 0.5f);
    }
    for (uint32_t r = 0; r < rows; r++) {
        qn_h_ok(h, qn_quant_row(type, w + (size_t)r * cols, dst + r * rb, cols), "quantize");
        if (deq) qn_h_ok(h, qn_dequant_row(type, dst + r * rb, deq + (size_t)r * cols, cols), "dequantize");
    }
}

/* E routed experts quantized into slots, for the MoE kernel tests: gate|up (type tgu, [I, H] each, up at byte
 * up_off) in `pools` slots of slot_b bytes, down (tdn, [H, I]) in `dpools` slots of dslot_b bytes; E + 1 slots (one
 * spare) placed at random over npools host pools of spp slots. table int32 [2, E]: layer 1 the real one (expert
 * `absent` -> -1), layer 0 a wrong one that must not be read. dg/du/dd [E, ...]: the dequantized parts. */
struct qn_h_qexp {
    uint32_t up_off, slot_b, dslot_b, spp, npools;
    uint8_t *pools, *dpools;
    int32_t *table;
    float *dg, *du, *dd;
};

static inline void qn_h_qexp_make(struct qn_h *h, uint32_t tgu, uint32_t tdn, uint32_t H, uint32_t I, uint32_t E, int absent,
                           struct qn_h_qexp *q)
{
    uint64_t rgu, rdn;
    qn_h_ok(h, qn_ggml_row_bytes(tgu, H, &rgu), "row bytes");
    qn_h_ok(h, qn_ggml_row_bytes(tdn, I, &rdn), "row bytes");
    q->up_off = (uint32_t)((rgu * I + 15) / 16 * 16);
    q->slot_b = (uint32_t)((q->up_off + rgu * I + 15) / 16 * 16), q->dslot_b = (uint32_t)((rdn * H + 15) / 16 * 16);
    q->spp = (E + 2) / 3 + 1, q->npools = (E + 1 + q->spp - 1) / q->spp; /* 2-3 pools */
    q->dg = qn_h_alloc(h, (size_t)E * I * H), q->du = qn_h_alloc(h, (size_t)E * I * H);
    q->dd = qn_h_alloc(h, (size_t)E * H * I);
    q->pools = qn_h_alloc_bytes(h, (size_t)q->npools * q->spp * q->slot_b);
    q->dpools = qn_h_alloc_bytes(h, (size_t)q->npools * q->spp * q->dslot_b);
    memset(q->pools, 0, (size_t)q->npools * q->spp * q->slot_b);
    memset(q->dpools, 0, (size_t)q->npools * q->spp * q->dslot_b);
    q->table = qn_h_alloc_bytes(h, (size_t)2 * E * 4);
    uint32_t *perm = qn_h_alloc_bytes(h, (size_t)(E + 1) * 4);
    for (uint32_t i = 0; i <= E; i++) perm[i] = i;
    for (uint32_t i = E; i > 0; i--) { /* random slot placement */
        uint32_t j = (uint32_t)(qn_rng_u64(&h->rng) % (i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (uint32_t e = 0; e < E; e++) {
        uint32_t s = perm[e];
        uint8_t *gu = q->pools + (size_t)s * q->slot_b, *dn = q->dpools + (size_t)s * q->dslot_b;
        qn_h_quant_matrix(h, tgu, I, H, gu, q->dg + (size_t)e * I * H);
        qn_h_quant_matrix(h, tgu, I, H, gu + q->up_off, q->du + (size_t)e * I * H);
        qn_h_quant_matrix(h, tdn, H, I, dn, q->dd + (size_t)e * H * I);
        q->table[E + e] = (int)e == absent ? -1 : (int32_t)s; /* layer 1 */
        q->table[e] = (int32_t)perm[(e + 1) % E];              /* layer 0: a wrong table (must not be read) */
    }
}

/* K distinct random expert ids < E per token, token t's at ids[t * stride]. */
static inline void qn_h_random_ids(struct qn_h *h, int32_t *ids, uint32_t T, uint32_t K, uint32_t E, uint32_t stride)
{
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t k = 0; k < K; k++) {
            int32_t e;
            bool dup;
            do {
                e = (int32_t)(qn_rng_u64(&h->rng) % E);
                dup = false;
                for (uint32_t j = 0; j < k; j++) dup |= ids[t * stride + j] == e;
            } while (dup);
            ids[t * stride + k] = e;
        }
}

#endif
