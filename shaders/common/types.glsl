// types.glsl — unpacking 16-bit float formats stored in 32-bit words (no 16-bit storage feature needed), and packing f16.
// A uint holds two elements: element 2k in the low half, 2k+1 in the high half (little-endian files).
#ifndef QN_TYPES_GLSL
#define QN_TYPES_GLSL

// bf16 is the top half of an f32
vec2 qn_bf16x2(uint u) { return vec2(uintBitsToFloat(u << 16), uintBitsToFloat(u & 0xffff0000u)); }
float qn_bf16_lo(uint u) { return uintBitsToFloat(u << 16); }
float qn_bf16_hi(uint u) { return uintBitsToFloat(u & 0xffff0000u); }
// IEEE half
vec2 qn_f16x2(uint u) { return unpackHalf2x16(u); }

// 8 bf16 / f16 in a uvec4 -> two vec4 (elements 0..3, 4..7)
void qn_bf16x8(uvec4 u, out vec4 a, out vec4 b)
{
    a = vec4(qn_bf16x2(u.x), qn_bf16x2(u.y));
    b = vec4(qn_bf16x2(u.z), qn_bf16x2(u.w));
}
void qn_f16x8(uvec4 u, out vec4 a, out vec4 b)
{
    a = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
    b = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
}

// two vec4 (elements 0..3, 4..7) as 8 f16 in a uvec4: the one f32 -> f16 conversion of the tensor-core tiles and of
// to_f16.comp's copies (so the f16 path rounds exactly as the in-loop conversions do); callers clamp to +-65504 first
// where the values may exceed f16's range
uvec4 qn_pack_f16x8(vec4 a, vec4 b)
{
    return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}

// Element i of a packed 16-bit array viewed as uint[] (any i, also odd row starts).
float qn_bf16_at(uint w, uint i) { return (i & 1u) != 0u ? qn_bf16_hi(w) : qn_bf16_lo(w); }
float qn_f16_at(uint w, uint i) { return unpackHalf2x16(w)[i & 1u]; }

float qn_sigmoid(float x) { return 1.0 / (1.0 + exp(-x)); }
float qn_silu(float x) { return x / (1.0 + exp(-x)); }

#endif
