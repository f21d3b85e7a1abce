/* qn_kernel.h — what the generated kernel registry (qn_kernels.h / qn_kernels.c, made by gen_registry.py
 * from the table in shaders/meson.build) tells the runtime about each compute kernel.
 *
 * Every field except the name and the fallback is read from the compiled SPIR-V itself, so it cannot
 * drift from the shader: the bindings (all storage buffers in set 0, numbered 0..nbind-1), the size of
 * the push-constant block, the specialization constants with their defaults, and the capabilities the
 * module declares (mapped to QN_FEAT_* bits the device must support). */
#ifndef QN_KERNEL_H
#define QN_KERNEL_H

#include <stdint.h>

#define QN_MAX_BIND 16 /* storage-buffer bindings per kernel */
#define QN_MAX_SPEC 8  /* specialization constants per kernel (ids 0..7; id 0 = workgroup size x) */

/* device features a kernel's SPIR-V may require */
enum qn_feat {
    QN_FEAT_FP16 = 1u << 0,          /* shaderFloat16 */
    QN_FEAT_INT8 = 1u << 1,          /* shaderInt8 */
    QN_FEAT_INT16 = 1u << 2,         /* shaderInt16 */
    QN_FEAT_INT64 = 1u << 3,         /* shaderInt64 */
    QN_FEAT_FP64 = 1u << 4,          /* shaderFloat64 */
    QN_FEAT_STORAGE16 = 1u << 5,     /* storageBuffer16BitAccess */
    QN_FEAT_STORAGE8 = 1u << 6,      /* storageBuffer8BitAccess */
    QN_FEAT_SG_BASIC = 1u << 7,      /* subgroup basic ops in compute */
    QN_FEAT_SG_VOTE = 1u << 8,
    QN_FEAT_SG_ARITH = 1u << 9,      /* subgroupAdd ... */
    QN_FEAT_SG_BALLOT = 1u << 10,
    QN_FEAT_SG_SHUFFLE = 1u << 11,
    QN_FEAT_SG_SHUFFLE_REL = 1u << 12,
    QN_FEAT_SG_CLUSTERED = 1u << 13,
    QN_FEAT_SG_QUAD = 1u << 14,
    QN_FEAT_INT_DOT = 1u << 15,      /* shaderIntegerDotProduct */
    QN_FEAT_INT64_ATOMICS = 1u << 16,/* shaderBufferInt64Atomics */
    QN_FEAT_MEMORY_MODEL = 1u << 17, /* vulkanMemoryModel */
    QN_FEAT_BDA = 1u << 18,          /* bufferDeviceAddress */
    QN_FEAT_FLOAT_ATOMIC_ADD = 1u << 19, /* VK_EXT_shader_atomic_float shaderBufferFloat32AtomicAdd */
    QN_FEAT_COOPMAT_NV = 1u << 20,   /* VK_NV_cooperative_matrix with an f16 x f16 + f32 16x{16,8}x16 subgroup shape */
    QN_FEAT_UNKNOWN = 1u << 31       /* a capability the generator does not know (never supported) */
};

struct qn_kernel_info {
    const char *name;        /* table name, e.g. "matvec_bf16" */
    const char *source;      /* shader file, e.g. "matvec.comp" */
    const char *defines;     /* "-DQN_W_BF16 -DQN_SUBGROUP" as compiled */
    const uint32_t *spirv;
    uint32_t spirv_words;
    uint32_t nbind;          /* storage buffers at set 0, bindings 0..nbind-1 */
    uint32_t write_mask;     /* bit b set if binding b is written by the shader */
    uint32_t push_size;      /* bytes of the push-constant block (0 = none) */
    uint32_t features;       /* QN_FEAT_* bits */
    uint32_t nspec;          /* specialization constants 0..nspec-1 */
    uint32_t spec_default[QN_MAX_SPEC];
    int fallback;            /* kernel to use when `features` are missing on the device (-1: none) */
};

#endif
