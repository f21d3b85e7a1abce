/* attn_check.h — the gated causal prefill attention reference shared by test_attn's and test_attn_cm's prefill
 * cases (header-only): T queries q [T][Hq][D] at positions pos0.. (query t sees cache rows 0..pos0+t of kc / vc
 * [Hkv][cap][D]), each qn_ref_attn_decode, then gated by sigmoid of the proj row's gate part (proj rows of
 * `stride` floats, the gate at Hq * D). */
#ifndef QN_TEST_ATTN_CHECK_H
#define QN_TEST_ATTN_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "ref_ops.h"

static void attn_ref_gated(uint32_t Hq, uint32_t Hkv, uint32_t D, uint32_t stride, const float *q, const float *kc,
                           const float *vc, const float *proj, uint32_t T, uint32_t pos0, uint32_t cap, float *out)
{
    uint32_t HD = Hq * D;
    float *scratch = malloc(sizeof(float) * (pos0 + T));
    for (uint32_t t = 0; t < T; t++) {
        float *o = out + (size_t)t * HD;
        qn_ref_attn_decode(o, q + (size_t)t * HD, kc, vc, (int)(pos0 + t + 1), (int)cap, (int)Hq, (int)Hkv, (int)D,
                           1.0f / sqrtf((float)D), scratch);
        qn_ref_mul_sigmoid(o, proj + (size_t)t * stride + HD, (int)HD);
    }
    free(scratch);
}

#endif
