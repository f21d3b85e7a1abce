// moe_w.glsl — how the MoE kernels read expert weights: the slot table, the 8 pool bindings, and the
// weight dtype (one variant per define). Keep every dtype-specific line here, so a quantized format
// (GGUF blocks) is one more #elif block with the same functions.
//
// Before including: QN_POOL_BIND (first of 8 consecutive pool bindings), QN_TABLE_BIND (int32 slot table),
// one of QN_W_BF16 | QN_W_F16 | QN_W_F32, and `layout(push_constant) uniform PC { qn_pc_moe pc; };`.
// Provides:
//   QN_CW                          elements per 16-byte chunk (8 for 16-bit types, 4 for f32)
//   QN_EPW                         elements per 32-bit word
//   qn_w_unpack(uvec4, a, b)       a chunk as f32 (elements 0..3 in a, 4..7 in b; b = 0 for f32)
//   qn_w_chunk_dot(uvec4, xa, xb)  dot of a chunk with x[0..3] = xa, x[4..7] = xb (xb unused for f32)
//   qn_w_word(word, e)             element e (index in the buffer) out of its 32-bit word
//   qn_pool4(p, i) / qn_pool1(p, i)  uvec4 / uint i of pool p (a uniform switch; hot loops use QN_POOL_SWITCH)
//   QN_POOL_SWITCH(p, BODY)        expands BODY(P4, P1) once per pool with that pool's uvec4 and uint arrays
//   qn_moe_slot(e)                 slot of expert e in pc.layer, or -1 (absent, bad id, or out of the pools)
#ifndef QN_MOE_W_GLSL
#define QN_MOE_W_GLSL

#include "types.glsl"

#if defined(QN_W_F32)
const uint QN_CW = 4u;
const uint QN_EPW = 1u;
void qn_w_unpack(uvec4 u, out vec4 a, out vec4 b) { a = uintBitsToFloat(u); b = vec4(0.0); }
float qn_w_chunk_dot(uvec4 u, vec4 xa, vec4 xb) { return dot(uintBitsToFloat(u), xa); }
float qn_w_word(uint w, uint e) { return uintBitsToFloat(w); }
#elif defined(QN_W_BF16)
const uint QN_CW = 8u;
const uint QN_EPW = 2u;
void qn_w_unpack(uvec4 u, out vec4 a, out vec4 b) { qn_bf16x8(u, a, b); }
float qn_w_chunk_dot(uvec4 u, vec4 xa, vec4 xb)
{
    vec4 a, b;
    qn_bf16x8(u, a, b);
    return dot(a, xa) + dot(b, xb);
}
float qn_w_word(uint w, uint e) { return qn_bf16_at(w, e); }
#elif defined(QN_W_F16)
const uint QN_CW = 8u;
const uint QN_EPW = 2u;
void qn_w_unpack(uvec4 u, out vec4 a, out vec4 b) { qn_f16x8(u, a, b); }
float qn_w_chunk_dot(uvec4 u, vec4 xa, vec4 xb)
{
    vec4 a, b;
    qn_f16x8(u, a, b);
    return dot(a, xa) + dot(b, xb);
}
float qn_w_word(uint w, uint e) { return qn_f16_at(w, e); }
#else
#error "moe_w.glsl: define QN_W_BF16, QN_W_F16 or QN_W_F32"
#endif
const uint QN_ESZ = 4u / QN_EPW; // bytes per element

#define QN_POOL_DECL(n)                                                                           \
    layout(binding = QN_POOL_BIND + n, std430) readonly buffer Pool##n##V { uvec4 qn_pool##n##_4[]; }; \
    layout(binding = QN_POOL_BIND + n, std430) readonly buffer Pool##n##S { uint qn_pool##n##_1[]; };
QN_POOL_DECL(0)
QN_POOL_DECL(1)
QN_POOL_DECL(2)
QN_POOL_DECL(3)
QN_POOL_DECL(4)
QN_POOL_DECL(5)
QN_POOL_DECL(6)
QN_POOL_DECL(7)
layout(binding = QN_TABLE_BIND, std430) readonly buffer SlotTable { int qn_table[]; };

#define QN_POOL_SWITCH(p, BODY)                               \
    switch (p) {                                              \
    case 0u: BODY(qn_pool0_4, qn_pool0_1) break;              \
    case 1u: BODY(qn_pool1_4, qn_pool1_1) break;              \
    case 2u: BODY(qn_pool2_4, qn_pool2_1) break;              \
    case 3u: BODY(qn_pool3_4, qn_pool3_1) break;              \
    case 4u: BODY(qn_pool4_4, qn_pool4_1) break;              \
    case 5u: BODY(qn_pool5_4, qn_pool5_1) break;              \
    case 6u: BODY(qn_pool6_4, qn_pool6_1) break;              \
    default: BODY(qn_pool7_4, qn_pool7_1) break;              \
    }

#define QN_POOL_GET4_(P4, P1) r = P4[i];
#define QN_POOL_GET1_(P4, P1) r = P1[i];
uvec4 qn_pool4(uint p, uint i)
{
    uvec4 r;
    QN_POOL_SWITCH(p, QN_POOL_GET4_)
    return r;
}
uint qn_pool1(uint p, uint i)
{
    uint r;
    QN_POOL_SWITCH(p, QN_POOL_GET1_)
    return r;
}
// element e (index counted in elements from the start of pool p)
float qn_pool_elem(uint p, uint e) { return qn_w_word(qn_pool1(p, e / QN_EPW), e); }

int qn_moe_slot(int e)
{
    if (e < 0 || uint(e) >= pc.E) return -1;
    int s = qn_table[pc.layer * pc.E + uint(e)];
    if (s < 0 || uint(s) >= pc.n_slots || uint(s) / pc.slots_per_pool >= QN_MOE_MAX_POOLS) return -1;
    return s;
}
uint qn_slot_pool(int s) { return uint(s) / pc.slots_per_pool; }
uint qn_slot_byte(int s) { return (uint(s) % pc.slots_per_pool) * pc.slot_bytes; } // in its pool

#endif
