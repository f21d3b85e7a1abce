/* qn_num.h — scalar conversions between f32 and the 16-bit float formats (bf16, IEEE half). */
#ifndef QN_NUM_H
#define QN_NUM_H

#include <stdint.h>
#include <string.h>

static inline uint32_t qn_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float qn_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* bf16 is the top half of an f32. */
static inline float qn_bf16_to_f32(uint16_t h) { return qn_bits_f32((uint32_t)h << 16); }

/* Round to nearest even; NaN stays NaN (quiet). */
static inline uint16_t qn_f32_to_bf16(float f)
{
    uint32_t u = qn_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float qn_round_bf16(float f) { return qn_bf16_to_f32(qn_f32_to_bf16(f)); }

float qn_f16_to_f32(uint16_t h);
uint16_t qn_f32_to_f16(float f); /* round to nearest even, overflow -> inf */

#endif
