/* caps.c — probe one physical device once into struct qn_caps (types, subgroups, limits, memory, queues). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "board.h"
#include "vk_internal.h"

const char *qn_caps_type_name(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

static void append(char *buf, size_t n, const char *s)
{
    size_t len = strlen(buf);
    if (len + strlen(s) + 2 > n) return;
    if (len) strcat(buf, " ");
    strcat(buf, s);
}

void qn_caps_subgroup_ops_str(VkSubgroupFeatureFlags ops, char *buf, size_t n)
{
    static const struct { VkSubgroupFeatureFlags bit; const char *name; } t[] = {
        { VK_SUBGROUP_FEATURE_BASIC_BIT, "basic" }, { VK_SUBGROUP_FEATURE_VOTE_BIT, "vote" },
        { VK_SUBGROUP_FEATURE_ARITHMETIC_BIT, "arithmetic" }, { VK_SUBGROUP_FEATURE_BALLOT_BIT, "ballot" },
        { VK_SUBGROUP_FEATURE_SHUFFLE_BIT, "shuffle" }, { VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT, "shuffle_relative" },
        { VK_SUBGROUP_FEATURE_CLUSTERED_BIT, "clustered" }, { VK_SUBGROUP_FEATURE_QUAD_BIT, "quad" },
    };
    buf[0] = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (ops & t[i].bit) append(buf, n, t[i].name);
}

void qn_caps_feat_str(uint32_t f, char *buf, size_t n)
{
    static const char *names[] = { "fp16", "int8", "int16", "int64", "fp64", "storage16", "storage8",
                                   "sg_basic", "sg_vote", "sg_arith", "sg_ballot", "sg_shuffle",
                                   "sg_shuffle_rel", "sg_clustered", "sg_quad", "int_dot", "int64_atomics",
                                   "memory_model", "bda", "float_atomic_add", "coopmat_nv" };
    buf[0] = 0;
    for (uint32_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (f & (1u << i)) append(buf, n, names[i]);
}

static void ext_flags(VkPhysicalDevice pd, struct qn_caps *c)
{
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) < 0 || !n) return;
    VkExtensionProperties *e = calloc(n, sizeof *e);
    if (!e || vkEnumerateDeviceExtensionProperties(pd, NULL, &n, e) < 0) { free(e); return; }
    for (uint32_t i = 0; i < n; i++) {
        const char *s = e[i].extensionName;
        if (!strcmp(s, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME)) c->mem_budget = true;
        if (!strcmp(s, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME)) c->push_descriptor = true;
        if (!strcmp(s, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME)) c->external_memory_host = true;
        if (!strcmp(s, "VK_KHR_cooperative_matrix") || !strcmp(s, "VK_NV_cooperative_matrix")) c->coopmat = true;
        if (!strcmp(s, "VK_KHR_shader_bfloat16")) c->bf16 = true;
        if (!strcmp(s, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME)) c->coopmat_nv = true; /* checked in coopmat_nv() */
    }
    free(e);
}

bool qn_caps_has_ext(VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    bool found = false;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) < 0 || !n) return false;
    VkExtensionProperties *e = calloc(n, sizeof *e);
    if (e && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, e) >= 0)
        for (uint32_t i = 0; i < n; i++) found |= !strcmp(e[i].extensionName, name);
    free(e);
    return found;
}

static void query_features(VkPhysicalDevice pd, struct qn_caps *c)
{
    VkPhysicalDeviceShaderAtomicFloatFeaturesEXT af = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_ATOMIC_FLOAT_FEATURES_EXT };
    VkPhysicalDeviceVulkan13Features f13 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES };
    VkPhysicalDeviceVulkan12Features f12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES };
    VkPhysicalDeviceVulkan11Features f11 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                             .pNext = &f12 };
    VkPhysicalDeviceFeatures2 f2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11 };
    void **tail = &f12.pNext;
    if (c->api_version >= VK_API_VERSION_1_3) { *tail = &f13; tail = &f13.pNext; }
    bool has_af = qn_caps_has_ext(pd, VK_EXT_SHADER_ATOMIC_FLOAT_EXTENSION_NAME);
    if (has_af) *tail = &af;
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    c->int16 = f2.features.shaderInt16;
    c->int64 = f2.features.shaderInt64;
    c->fp64 = f2.features.shaderFloat64;
    c->storage16 = f11.storageBuffer16BitAccess;
    c->push16 = f11.storagePushConstant16;
    c->storage8 = f12.storageBuffer8BitAccess;
    c->push8 = f12.storagePushConstant8;
    c->fp16 = f12.shaderFloat16;
    c->int8 = f12.shaderInt8;
    c->int64_atomics = f12.shaderBufferInt64Atomics;
    c->bda = f12.bufferDeviceAddress;
    c->memory_model = f12.vulkanMemoryModel;
    c->timeline = f12.timelineSemaphore;
    c->subgroup_ext_types = f12.shaderSubgroupExtendedTypes;
    c->subgroup_size_control = f13.subgroupSizeControl;
    c->full_subgroups = f13.computeFullSubgroups;
    c->int_dot = f13.shaderIntegerDotProduct;
    c->float_atomic_add = has_af && af.shaderBufferFloat32AtomicAdd;
}

/* VK_NV_cooperative_matrix: keep c->coopmat_nv only with the feature on and a shape the coopmat kernels can use
 * (A, B f16; C, D f32; M = K = 16, N = 16 or else 8; subgroup scope) among the device's listed shapes. */
static void coopmat_nv(VkPhysicalDevice pd, struct qn_caps *c)
{
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cf = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV };
    VkPhysicalDeviceFeatures2 f2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &cf };
    uint32_t n = 0, shape = 0;
    if (c->coopmat_nv && vkGetPhysicalDeviceCooperativeMatrixPropertiesNV) {
        vkGetPhysicalDeviceFeatures2(pd, &f2);
        if (vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &n, NULL) >= 0 && n) {
            VkCooperativeMatrixPropertiesNV *p = calloc(n, sizeof *p);
            for (uint32_t i = 0; p && i < n; i++) p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
            if (p && vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &n, p) >= 0)
                for (uint32_t i = 0; i < n; i++) {
                    if (p[i].scope == VK_SCOPE_SUBGROUP_NV && c->n_cm_shapes < 32 && p[i].MSize < 256 &&
                        p[i].NSize < 256 && p[i].KSize < 256)
                        c->cm_shapes[c->n_cm_shapes++] = (struct qn_cm_shape){
                            (uint8_t)p[i].MSize, (uint8_t)p[i].NSize, (uint8_t)p[i].KSize, (uint8_t)p[i].AType,
                            (uint8_t)p[i].BType, (uint8_t)p[i].CType, (uint8_t)p[i].DType };
                    if (p[i].MSize == 16 && (p[i].NSize == 16 || p[i].NSize == 8) && p[i].KSize == 16 &&
                        p[i].AType == VK_COMPONENT_TYPE_FLOAT16_NV && p[i].BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                        p[i].CType == VK_COMPONENT_TYPE_FLOAT32_NV && p[i].DType == VK_COMPONENT_TYPE_FLOAT32_NV &&
                        p[i].scope == VK_SCOPE_SUBGROUP_NV && p[i].NSize > shape)
                        shape = p[i].NSize;
                }
            free(p);
        }
    }
    c->coopmat_nv = c->coopmat_nv && cf.cooperativeMatrix && shape;
    c->coopmat_nv_n = c->coopmat_nv ? shape : 0;
}

const char *qn_cm_type_name(uint32_t t)
{
    static const char *names[] = { "f16", "f32", "f64", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64" };
    return t < sizeof names / sizeof names[0] ? names[t] : "?";
}

void qn_cm_shape_str(const struct qn_cm_shape *sh, char *buf, size_t n)
{
    snprintf(buf, n, "%ux%ux%u %s*%s+%s->%s", sh->m, sh->n, sh->k, qn_cm_type_name(sh->a), qn_cm_type_name(sh->b),
             qn_cm_type_name(sh->c), qn_cm_type_name(sh->d));
}

static void query_properties(VkPhysicalDevice pd, struct qn_caps *c)
{
    VkPhysicalDeviceShaderIntegerDotProductProperties dot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES };
    VkPhysicalDeviceSubgroupSizeControlProperties ssc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES };
    VkPhysicalDeviceVulkan12Properties p12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES };
    VkPhysicalDeviceVulkan11Properties p11 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES,
                                               .pNext = &p12 };
    VkPhysicalDeviceProperties2 p2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &p11 };
    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    if (base.apiVersion >= VK_API_VERSION_1_3) { p12.pNext = &ssc; ssc.pNext = &dot; }
    vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceProperties *p = &p2.properties;
    const VkPhysicalDeviceLimits *l = &p->limits;
    snprintf(c->name, sizeof c->name, "%s", p->deviceName);
    c->vendor_id = p->vendorID;
    c->device_id = p->deviceID;
    c->type = p->deviceType;
    c->api_version = p->apiVersion;
    c->driver_version = p->driverVersion;
    memcpy(c->cache_uuid, p->pipelineCacheUUID, VK_UUID_SIZE);
    memcpy(c->device_uuid, p11.deviceUUID, VK_UUID_SIZE);
    memcpy(c->driver_uuid, p11.driverUUID, VK_UUID_SIZE);
    c->driver_id = p12.driverID;
    snprintf(c->driver_name, sizeof c->driver_name, "%s", p12.driverName);
    snprintf(c->driver_info, sizeof c->driver_info, "%s", p12.driverInfo);
    c->subgroup_size = p11.subgroupSize;
    c->subgroup_ops = p11.subgroupSupportedOperations;
    c->subgroup_stages = p11.subgroupSupportedStages;
    c->subgroup_min = ssc.minSubgroupSize ? ssc.minSubgroupSize : p11.subgroupSize;
    c->subgroup_max = ssc.maxSubgroupSize ? ssc.maxSubgroupSize : p11.subgroupSize;
    c->int_dot_accel = dot.integerDotProduct4x8BitPackedSignedAccelerated;
    c->int_dot_mixed_accel = dot.integerDotProduct4x8BitPackedMixedSignednessAccelerated;
    c->max_shared = l->maxComputeSharedMemorySize;
    c->max_wg_invocations = l->maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; i++) {
        c->max_wg_size[i] = l->maxComputeWorkGroupSize[i];
        c->max_wg_count[i] = l->maxComputeWorkGroupCount[i];
    }
    c->max_push = l->maxPushConstantsSize;
    c->max_storage_range = l->maxStorageBufferRange;
    c->min_storage_align = (uint32_t)l->minStorageBufferOffsetAlignment;
    c->max_alloc_count = l->maxMemoryAllocationCount;
    c->max_alloc = p11.maxMemoryAllocationSize;
    c->max_buffer = UINT64_MAX;
    c->timestamp_period = l->timestampPeriod;
}

static void query_memory(VkPhysicalDevice pd, struct qn_caps *c)
{
    VkPhysicalDeviceMemoryBudgetPropertiesEXT bud = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT };
    VkPhysicalDeviceMemoryProperties2 m2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
                                             .pNext = c->mem_budget ? &bud : NULL };
    vkGetPhysicalDeviceMemoryProperties2(pd, &m2);
    const VkPhysicalDeviceMemoryProperties *m = &m2.memoryProperties;
    c->nheaps = m->memoryHeapCount < QN_MAX_HEAPS ? m->memoryHeapCount : QN_MAX_HEAPS;
    c->ntypes = m->memoryTypeCount < QN_MAX_MEMTYPES ? m->memoryTypeCount : QN_MAX_MEMTYPES;
    c->device_local_bytes = 0;
    for (uint32_t i = 0; i < c->nheaps; i++) {
        c->heaps[i].size = m->memoryHeaps[i].size;
        c->heaps[i].flags = m->memoryHeaps[i].flags;
        c->heaps[i].budget = c->mem_budget && bud.heapBudget[i] ? bud.heapBudget[i] : m->memoryHeaps[i].size;
        c->heaps[i].usage = c->mem_budget ? bud.heapUsage[i] : 0;
        if (c->heaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) c->device_local_bytes += c->heaps[i].size;
    }
    bool dl_hv = false;
    for (uint32_t i = 0; i < c->ntypes; i++) {
        c->types[i].flags = m->memoryTypes[i].propertyFlags;
        c->types[i].heap = m->memoryTypes[i].heapIndex;
        VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                     VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        if ((c->types[i].flags & want) == want) dl_hv = true;
    }
    c->uma = dl_hv && (c->type == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU || c->type == VK_PHYSICAL_DEVICE_TYPE_CPU);
}

static void query_queues(VkPhysicalDevice pd, struct qn_caps *c)
{
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties *q = calloc(n ? n : 1, sizeof *q);
    if (!q) return;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
    int compute = -1, compute_only = -1;
    for (uint32_t i = 0; i < n; i++) {
        VkQueueFlags f = q[i].queueFlags;
        if ((f & VK_QUEUE_COMPUTE_BIT) && compute < 0) compute = (int)i;
        if ((f & VK_QUEUE_COMPUTE_BIT) && !(f & VK_QUEUE_GRAPHICS_BIT) && q[i].queueCount && compute_only < 0)
            compute_only = (int)i;
        if ((f & VK_QUEUE_TRANSFER_BIT) && !(f & (VK_QUEUE_COMPUTE_BIT | VK_QUEUE_GRAPHICS_BIT)) && !c->transfer_queue) {
            c->transfer_queue = true;
            c->transfer_family = i;
        }
    }
    /* the graphics+compute family is the "main" queue everywhere; it also has timestamps most reliably */
    c->compute_family = compute >= 0 ? (uint32_t)compute : 0;
    c->async_compute = compute_only >= 0 && (uint32_t)compute_only != c->compute_family;
    c->async_family = c->async_compute ? (uint32_t)compute_only : c->compute_family;
    c->timestamp_bits = n ? q[c->compute_family].timestampValidBits : 0;
    c->timestamps = c->timestamp_bits > 0 && c->timestamp_period > 0;
    free(q);
}

static uint32_t feature_bits(const struct qn_caps *c)
{
    uint32_t f = 0;
    bool sg = (c->subgroup_stages & VK_SHADER_STAGE_COMPUTE_BIT) != 0;
    f |= c->fp16 ? QN_FEAT_FP16 : 0;
    f |= c->int8 ? QN_FEAT_INT8 : 0;
    f |= c->int16 ? QN_FEAT_INT16 : 0;
    f |= c->int64 ? QN_FEAT_INT64 : 0;
    f |= c->fp64 ? QN_FEAT_FP64 : 0;
    f |= c->storage16 ? QN_FEAT_STORAGE16 : 0;
    f |= c->storage8 ? QN_FEAT_STORAGE8 : 0;
    f |= c->int_dot ? QN_FEAT_INT_DOT : 0;
    f |= c->int64_atomics ? QN_FEAT_INT64_ATOMICS : 0;
    f |= c->memory_model ? QN_FEAT_MEMORY_MODEL : 0;
    f |= c->bda ? QN_FEAT_BDA : 0;
    f |= c->float_atomic_add ? QN_FEAT_FLOAT_ATOMIC_ADD : 0;
    f |= c->coopmat_nv ? QN_FEAT_COOPMAT_NV : 0;
    if (sg) {
        static const struct { VkSubgroupFeatureFlags vk; uint32_t qn; } m[] = {
            { VK_SUBGROUP_FEATURE_BASIC_BIT, QN_FEAT_SG_BASIC }, { VK_SUBGROUP_FEATURE_VOTE_BIT, QN_FEAT_SG_VOTE },
            { VK_SUBGROUP_FEATURE_ARITHMETIC_BIT, QN_FEAT_SG_ARITH },
            { VK_SUBGROUP_FEATURE_BALLOT_BIT, QN_FEAT_SG_BALLOT },
            { VK_SUBGROUP_FEATURE_SHUFFLE_BIT, QN_FEAT_SG_SHUFFLE },
            { VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT, QN_FEAT_SG_SHUFFLE_REL },
            { VK_SUBGROUP_FEATURE_CLUSTERED_BIT, QN_FEAT_SG_CLUSTERED }, { VK_SUBGROUP_FEATURE_QUAD_BIT, QN_FEAT_SG_QUAD },
        };
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
            if (c->subgroup_ops & m[i].vk) f |= m[i].qn;
    }
    return f;
}

int qn_caps_query(VkPhysicalDevice pd, uint32_t index, struct qn_caps *c)
{
    memset(c, 0, sizeof *c);
    c->index = index;
    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    c->api_version = base.apiVersion;
    ext_flags(pd, c);
    if (c->api_version >= VK_API_VERSION_1_2) {
        query_properties(pd, c);
        query_features(pd, c);
        coopmat_nv(pd, c);
    } else {
        snprintf(c->name, sizeof c->name, "%s", base.deviceName);
        c->vendor_id = base.vendorID;
        c->device_id = base.deviceID;
        c->type = base.deviceType;
        c->driver_version = base.driverVersion;
    }
    query_memory(pd, c);
    query_queues(pd, c);
    c->features = feature_bits(c);
    c->quirks = qn_quirks_match(c);
    return 0;
}

void qn_caps_board_device(const struct qn_caps *c, struct qn_board_device *d)
{
    d->vendor_id = c->vendor_id;
    d->device_id = c->device_id;
    d->name = c->name;
    d->type = (int)c->type; /* enum qn_board_devtype uses the VkPhysicalDeviceType numbers */
}
