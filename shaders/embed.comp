#version 450
// embed.comp — gather rows of the token-embedding table into the f32 residual stream.
//
// Variants (defines): QN_W_BF16 | QN_W_F16 | QN_W_F32 (table dtype), or a GGUF block type QN_Q8_0 | QN_Q4_0 |
//           QN_Q4_K | QN_Q5_K | QN_Q6_K: the table's rows in their blocks (row bytes = H / QK block bytes), each
//           element dequantized as loader/quant.c's C reference does (same operations in the same order, no
//           contraction: `precise`), so the 80B Q4_K_M's table stays 175 MB instead of 1.24 GB of f32.
// Bindings: 0 table  rows [row0, row0 + rows) of embed_tokens [V, H], the variant's dtype (16-bit values
//                    packed two per uint, element i of the piece at bits 16 * (i & 1) of word i / 2; blocks as
//                    bytes, little-endian in the words)
//                    (the binding must cover whole 32-bit words: pad 16-bit and block tables to 4 bytes)
//           1 ids    int32 [T]
//           2 x      f32 [T, H]; row t is written only when row0 <= ids[t] < row0 + rows
// Push:     qn_pc_embed { T, H, row0, rows }
// Spec:     0 QN_WG workgroup size (default 256)
// Dispatch: ceil(H / QN_WG) groups (qn_vk_grid) x T in z (token t = gl_WorkGroupID.z).
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_embed pc; };
layout(binding = 0, std430) readonly buffer Tab { uint tab[]; };
layout(binding = 1, std430) readonly buffer Ids { int ids[]; };
layout(binding = 2, std430) writeonly buffer X { float x[]; };

#if defined(QN_Q8_0) || defined(QN_Q4_0) || defined(QN_Q4_K) || defined(QN_Q5_K) || defined(QN_Q6_K)
#define QN_EMBED_BLOCKS
#include "quant.glsl" // QN_QBYTE / QN_QF16 (byte, f16 at a byte offset), QN_QK / QN_QBB (the variant's block)
uint qn_byte(uint off) { return QN_QBYTE(tab, off); }
int qn_sbyte(uint off) { return int(qn_byte(off) << 24u) >> 24; }
float qn_half(uint off) { return QN_QF16(tab, off); } // off even

// element j (< QN_QK) of the block at byte offset b
float qn_deq(uint b, uint j)
{
#if defined(QN_Q8_0)
    return qn_half(b) * float(qn_sbyte(b + 2u + j));
#elif defined(QN_Q4_0)
    uint q = qn_byte(b + 2u + (j & 15u));
    return qn_half(b) * float(int(j < 16u ? q & 15u : q >> 4u) - 8);
#elif defined(QN_Q4_K) || defined(QN_Q5_K)
    uint c = j / 64u, h = (j / 32u) & 1u, l = j & 31u, sb = 2u * c + h, s = b + 4u, sc, mn;
    if (sb < 4u) {
        sc = qn_byte(s + sb) & 63u;
        mn = qn_byte(s + sb + 4u) & 63u;
    } else {
        sc = (qn_byte(s + sb + 4u) & 15u) | ((qn_byte(s + sb - 4u) >> 6u) << 4u);
        mn = (qn_byte(s + sb + 4u) >> 4u) | ((qn_byte(s + sb) >> 6u) << 4u);
    }
#if defined(QN_Q5_K)
    uint qs = b + 48u, hb = (qn_byte(b + 16u + l) >> sb) & 1u;
#else
    uint qs = b + 16u, hb = 0u;
#endif
    uint qq = qn_byte(qs + 32u * c + l), q = (h != 0u ? qq >> 4u : qq & 15u) + 16u * hb;
    precise float ds = qn_half(b) * float(sc), dm = qn_half(b + 2u) * float(mn);
    precise float v = ds * float(q) - dm;
    return v;
#else // Q6_K: ql[128], qh[64], scales[16] (int8), d
    uint h = j / 128u, k = (j / 32u) & 3u, l = j & 31u;
    uint lo = qn_byte(b + 64u * h + l + ((k & 1u) != 0u ? 32u : 0u));
    lo = (k & 2u) != 0u ? lo >> 4u : lo & 15u;
    int q = int(lo | (((qn_byte(b + 128u + 32u * h + l) >> (2u * k)) & 3u) << 4u)) - 32;
    precise float v = qn_half(b + 208u) * float(qn_sbyte(b + 192u + 8u * h + 2u * k + l / 16u)) * float(q);
    return v;
#endif
}
#endif

void main()
{
    uint t = gl_WorkGroupID.z;
    uint i = qn_group_id() * QN_WG + gl_LocalInvocationIndex;
    if (t >= pc.T || i >= pc.H) return;
    int id = ids[t];
    if (id < int(pc.row0) || uint(id) - pc.row0 >= pc.rows) return; // another piece holds this row
#if defined(QN_EMBED_BLOCKS)
    float v = qn_deq((uint(id) - pc.row0) * (pc.H / QN_QK * QN_QBB) + i / QN_QK * QN_QBB, i % QN_QK);
#else
    uint e = (uint(id) - pc.row0) * pc.H + i;
#if defined(QN_W_F32)
    float v = uintBitsToFloat(tab[e]);
#elif defined(QN_W_BF16)
    float v = qn_bf16_at(tab[e >> 1], e);
#else
    float v = qn_f16_at(tab[e >> 1], e);
#endif
#endif
    x[t * pc.H + i] = v;
}
