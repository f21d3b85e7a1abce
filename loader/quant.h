/* quant.h — ggml tensor types: ids, block sizes, byte layouts of the block formats qnext reads
 * (F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), C reference dequantizers, quantizers and row dot
 * products (dequantize-on-the-fly, the oracle for GPU matvec shaders).
 *
 * Type ids and (block size, bytes per block) are ggml's (gguf-py/gguf/constants.py GGML_QUANT_SIZES,
 * ggml/include/ggml.h); block layouts are ggml-common.h's. All multi-byte fields are little-endian. */
#ifndef QN_QUANT_H
#define QN_QUANT_H

#include <stddef.h>
#include <stdint.h>

enum qn_ggml_type {
    QN_GGML_F32 = 0, QN_GGML_F16 = 1, QN_GGML_Q4_0 = 2, QN_GGML_Q4_1 = 3, QN_GGML_Q5_0 = 6,
    QN_GGML_Q5_1 = 7, QN_GGML_Q8_0 = 8, QN_GGML_Q8_1 = 9, QN_GGML_Q2_K = 10, QN_GGML_Q3_K = 11,
    QN_GGML_Q4_K = 12, QN_GGML_Q5_K = 13, QN_GGML_Q6_K = 14, QN_GGML_Q8_K = 15,
    QN_GGML_IQ2_XXS = 16, QN_GGML_IQ2_XS = 17, QN_GGML_IQ3_XXS = 18, QN_GGML_IQ1_S = 19,
    QN_GGML_IQ4_NL = 20, QN_GGML_IQ3_S = 21, QN_GGML_IQ2_S = 22, QN_GGML_IQ4_XS = 23,
    QN_GGML_I8 = 24, QN_GGML_I16 = 25, QN_GGML_I32 = 26, QN_GGML_I64 = 27, QN_GGML_F64 = 28,
    QN_GGML_IQ1_M = 29, QN_GGML_BF16 = 30, QN_GGML_TQ1_0 = 34, QN_GGML_TQ2_0 = 35,
    QN_GGML_MXFP4 = 39, QN_GGML_NVFP4 = 40, QN_GGML_Q1_0 = 41,
};

#define QN_QK_K 256 /* super-block size of the K-quants */

/* Block layouts (sizes asserted in quant.c). Values: see the dequantizers in quant.c. */
typedef struct qn_block_q8_0 { uint16_t d; int8_t qs[32]; } qn_block_q8_0;            /* 34 B / 32  */
typedef struct qn_block_q4_0 { uint16_t d; uint8_t qs[16]; } qn_block_q4_0;           /* 18 B / 32  */
/* Q5_0 / Q5_1: element j < 16 is the low nibble of qs[j], element j + 16 the high nibble; the 5th bit of
 * element i is bit i of qh read as a little-endian u32. Q5_0: d * (q - 16); Q5_1: d * q + m. */
typedef struct qn_block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } qn_block_q5_0;          /* 22 B / 32 */
typedef struct qn_block_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } qn_block_q5_1;       /* 24 B / 32 */
typedef struct qn_block_q4_K {                                                         /* 144 B / 256 */
    uint16_t d, dmin;       /* f16 super-block scales for the 6-bit sub-block scales and mins */
    uint8_t scales[12];     /* 8 scales + 8 mins, 6 bits each, packed (qn_q4k_scale_min) */
    uint8_t qs[128];        /* 4-bit quants: byte l of chunk c holds element 64c+l (low) and 64c+32+l (high) */
} qn_block_q4_K;
typedef struct qn_block_q5_K {                                                         /* 176 B / 256 */
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[32];         /* 5th bits: bit 2c of qh[l] -> element 64c+l, bit 2c+1 -> 64c+32+l */
    uint8_t qs[128];        /* low 4 bits, as Q4_K */
} qn_block_q5_K;
typedef struct qn_block_q6_K {                                                         /* 210 B / 256 */
    uint8_t ql[128];        /* low 4 bits */
    uint8_t qh[64];         /* high 2 bits */
    int8_t scales[16];      /* one 8-bit scale per 16 elements */
    uint16_t d;             /* f16 super-block scale (last field) */
} qn_block_q6_K;

typedef struct qn_ggml_type_info {
    const char *name;
    uint32_t blck;          /* elements per block */
    uint32_t bytes;         /* bytes per block */
    int dequant;            /* 1 if qn_dequant_row handles it */
    int quant;              /* 1 if qn_quant_row handles it */
} qn_ggml_type_info;

/* Traits of a ggml type id, NULL for ids this build does not know (unknown or removed types). */
const qn_ggml_type_info *qn_ggml_type(uint32_t type);
const char *qn_ggml_type_name(uint32_t type); /* "Q4_K", or "type#77" in a static buffer per thread */

/* Bytes of one row of `ne0` elements; QN_E_FORMAT if ne0 is not a multiple of the block size, the type is
 * unknown, or the size overflows. */
int qn_ggml_row_bytes(uint32_t type, uint64_t ne0, uint64_t *out);

/* 6-bit (scale, min) j (0..7) of a Q4_K / Q5_K `scales[12]` field. */
void qn_q4k_scale_min(int j, const uint8_t *scales, uint8_t *sc, uint8_t *mn);

/* Dequantize n elements (n a multiple of the block size) of a row stored as `type` into dst. */
int qn_dequant_row(uint32_t type, const void *src, float *dst, uint64_t n);
/* Quantize n floats (n a multiple of the block size) into `type` blocks. Non-finite input is an error.
 * Q8_0, Q5_0 and Q5_1 are byte-identical to ggml's reference quantizers (quantize_row_*_ref, which
 * llama-quantize uses without an importance matrix); Q4_0 and the K-quants are our own (see quant.c). */
int qn_quant_row(uint32_t type, const float *src, void *dst, uint64_t n);
/* *out = sum_i dequant(row)[i] * x[i] over n elements, accumulated in double (reference for shaders). */
int qn_dot_row(uint32_t type, const void *row, const float *x, uint64_t n, float *out);
/* y[r] = dot(row r of W, x) for a row-major [rows, cols] matrix stored as `type`. */
int qn_matvec_ref(uint32_t type, const void *w, uint64_t rows, uint64_t cols, const float *x, float *y);

#endif
