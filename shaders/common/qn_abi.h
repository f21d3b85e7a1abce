/* qn_abi.h — a tiny macro layer so one struct text compiles as C and as GLSL.
 *
 * Push-constant structs are written once (pc.h) with these macros:
 *     QN_STRUCT(qn_pc_foo)
 *         QN_U32 n;
 *         QN_F32 eps;
 *     QN_STRUCT_END(qn_pc_foo)
 * Rules (so the C and std430 layouts agree byte for byte): 32-bit scalars only (QN_U32, QN_I32, QN_F32),
 * no vectors, no arrays, at most 128 bytes (the minimum maxPushConstantsSize). The pipeline layer checks at
 * dispatch time that sizeof(struct) equals the size glslang gave the shader's push block. */
#ifndef QN_ABI_H
#define QN_ABI_H

#if defined(__STDC__) || defined(__cplusplus)
#include <stdint.h>
#define QN_U32 uint32_t
#define QN_I32 int32_t
#define QN_F32 float
#define QN_STRUCT(name) typedef struct name {
#define QN_STRUCT_END(name) } name;
#define QN_CONST(name, value) enum { name = value };
#else /* GLSL */
#define QN_U32 uint
#define QN_I32 int
#define QN_F32 float
#define QN_STRUCT(name) struct name {
#define QN_STRUCT_END(name) };
#define QN_CONST(name, value) const uint name = value;
#endif

#endif
