/* qblocks.h — random ggml block-format matrices for the quantized kernel tests (header-only). */
#ifndef QN_TEST_QBLOCKS_H
#define QN_TEST_QBLOCKS_H

#include "harness.h"
#include "quant.h"

/* Quantize a random [rows, cols] matrix (per-32 scale and offset, so blocks see varied ranges) into dst in
 * ggml block format `type`; its dequantized copy into deq (if not NULL). */
static void qn_h_quant_matrix(struct qn_h *h, uint32_t type, uint32_t rows, uint32_t cols, uint8_t *dst, float *deq)
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

#endif
