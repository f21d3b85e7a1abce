// attn_kv.glsl — the KV cache element type of the attention kernels (attn_*.comp), in one place.
// Layout [Hkv][cap][D] either way; addresses below are in units of 4 elements (vec4 index) for reads and
// of 2 elements (pair index) for writes, so D must be a multiple of 4.
//   default      f32 cache: 4 bytes per element
//   QN_KV_F16    f16 cache: 2 bytes per element (IEEE half, two per uint, element 2k in the low half)
// Include after declaring QN_KV_READ (attn_decode/attn_prefill: bindings 1 = kcache, 2 = vcache),
// QN_KV_WRITE (attn_prep: bindings 6 = kcache, 7 = vcache) or QN_KV_RW (attn_decode's prep variant: bindings 1 and 2,
// read and written).
#ifndef QN_ATTN_KV_GLSL
#define QN_ATTN_KV_GLSL

#if defined(QN_KV_READ)
#ifdef QN_KV_F16
layout(binding = 1, std430) readonly buffer KC { uvec2 kc2[]; };
layout(binding = 2, std430) readonly buffer VC { uvec2 vc2[]; };
vec4 k_at(uint i4) { uvec2 u = kc2[i4]; return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y)); }
vec4 v_at(uint i4) { uvec2 u = vc2[i4]; return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y)); }
#else
layout(binding = 1, std430) readonly buffer KC { vec4 kc4[]; };
layout(binding = 2, std430) readonly buffer VC { vec4 vc4[]; };
vec4 k_at(uint i4) { return kc4[i4]; }
vec4 v_at(uint i4) { return vc4[i4]; }
#endif
#endif

#if defined(QN_KV_RW)
#ifdef QN_KV_F16
layout(binding = 1, std430) buffer KC { uvec2 kc2[]; };
layout(binding = 1, std430) buffer KCW { uint kc1[]; };
layout(binding = 2, std430) buffer VC { uvec2 vc2[]; };
layout(binding = 2, std430) buffer VCW { uint vc1[]; };
vec4 k_at(uint i4) { uvec2 u = kc2[i4]; return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y)); }
vec4 v_at(uint i4) { uvec2 u = vc2[i4]; return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y)); }
void kv_put(bool v, uint i2, vec2 x)
{
    if (v) vc1[i2] = packHalf2x16(x);
    else kc1[i2] = packHalf2x16(x);
}
#else
layout(binding = 1, std430) buffer KC { vec4 kc4[]; };
layout(binding = 1, std430) buffer KCW { vec2 kc2w[]; };
layout(binding = 2, std430) buffer VC { vec4 vc4[]; };
layout(binding = 2, std430) buffer VCW { vec2 vc2w[]; };
vec4 k_at(uint i4) { return kc4[i4]; }
vec4 v_at(uint i4) { return vc4[i4]; }
void kv_put(bool v, uint i2, vec2 x)
{
    if (v) vc2w[i2] = x;
    else kc2w[i2] = x;
}
#endif
#endif

#if defined(QN_KV_WRITE)
#ifdef QN_KV_F16
layout(binding = 6, std430) writeonly buffer KC { uint kc1[]; };
layout(binding = 7, std430) writeonly buffer VC { uint vc1[]; };
void kv_put(bool v, uint i2, vec2 x)
{
    if (v) vc1[i2] = packHalf2x16(x);
    else kc1[i2] = packHalf2x16(x);
}
#else
layout(binding = 6, std430) writeonly buffer KC { vec2 kc2[]; };
layout(binding = 7, std430) writeonly buffer VC { vec2 vc2[]; };
void kv_put(bool v, uint i2, vec2 x)
{
    if (v) vc2[i2] = x;
    else kc2[i2] = x;
}
#endif
#endif

#endif
