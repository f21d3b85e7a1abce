/* device.c — Vulkan instance (with optional Khronos validation), device choice, device creation, teardown. */
#include <ctype.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qn_log.h"
#include "vk_internal.h"

#define QN_VALIDATION_LAYER "VK_LAYER_KHRONOS_validation"

static atomic_uint qn_validation_msgs, qn_chain_hazards, qn_chain_on;

uint32_t qn_vk_validation_count(void) { return atomic_load(&qn_validation_msgs); }
void qn_vk_expect_chain_hazards(void) { atomic_store(&qn_chain_on, 1); }
uint32_t qn_vk_chain_hazard_count(void) { return atomic_load(&qn_chain_hazards); }

/* A synchronization-validation hazard the decode MoE chain causes by design (common/moe_chain.glsl): once a forward
 * pass uses the chain (qn_vk_expect_chain_hazards), a SYNC-HAZARD message at a dispatch of a chain consumer kernel
 * (moe_q_gu_{fmt}, moe_q_gu_i8_{fmt}, moe_q_dnx_{fmt}: the decode gate_up after the route, the split down after the
 * gate_up; not the prefill kernels), recorded with no barrier before it because its workgroups wait for the
 * producer's count in memory, which sync validation does not see. Any other message, and these before the chain is
 * on, count as validation failures. */
static bool chain_hazard(const VkDebugUtilsMessengerCallbackDataEXT *d)
{
    if (!atomic_load(&qn_chain_on) || !d || !d->pMessageIdName || strncmp(d->pMessageIdName, "SYNC-HAZARD-", 12))
        return false;
    /* the layer names the dispatch's pipeline in the text ("VkPipeline 0x...[name]"; pipeline.c names them) */
    const char *p = d->pMessage ? strstr(d->pMessage, "VkPipeline 0x") : NULL, *n = p ? strchr(p, '[') : NULL;
    return n && (!strncmp(n + 1, "moe_q_gu_q", 10) || !strncmp(n + 1, "moe_q_gu_i8_q", 13) ||
                 !strncmp(n + 1, "moe_q_dnx_q", 11));
}

const char *qn_vk_result_name(VkResult r)
{
    switch (r) {
#define N(x) case x: return #x;
    N(VK_SUCCESS) N(VK_NOT_READY) N(VK_TIMEOUT) N(VK_INCOMPLETE)
    N(VK_ERROR_OUT_OF_HOST_MEMORY) N(VK_ERROR_OUT_OF_DEVICE_MEMORY) N(VK_ERROR_INITIALIZATION_FAILED)
    N(VK_ERROR_DEVICE_LOST) N(VK_ERROR_MEMORY_MAP_FAILED) N(VK_ERROR_LAYER_NOT_PRESENT)
    N(VK_ERROR_EXTENSION_NOT_PRESENT) N(VK_ERROR_FEATURE_NOT_PRESENT) N(VK_ERROR_INCOMPATIBLE_DRIVER)
    N(VK_ERROR_TOO_MANY_OBJECTS) N(VK_ERROR_FORMAT_NOT_SUPPORTED) N(VK_ERROR_FRAGMENTED_POOL)
    N(VK_ERROR_UNKNOWN) N(VK_ERROR_OUT_OF_POOL_MEMORY) N(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    N(VK_ERROR_FRAGMENTATION) N(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS) N(VK_PIPELINE_COMPILE_REQUIRED)
    N(VK_ERROR_VALIDATION_FAILED_EXT) N(VK_ERROR_INVALID_SHADER_NV)
#undef N
    default: return "VK_ERROR_(unknown)";
    }
}

int qn_vk_fail(VkResult r, const char *what, const char *file, int line)
{
    int code = QN_E_VULKAN;
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED) code = QN_E_NODEV;
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) code = -ENOMEM;
    const char *base = strrchr(file, '/');
    return qn_fail(code, "%s failed: %s (%s:%d)", what, qn_vk_result_name(r), base ? base + 1 : file, line);
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *d, void *user)
{
    const bool *skip_calls = user;
    bool counts = (type & (VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT)) != 0;
    bool err = sev >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    bool warn = sev >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT;
    const char *msg = d && d->pMessage ? d->pMessage : "(no message)";
    if (counts && warn && chain_hazard(d)) {
        atomic_fetch_add(&qn_chain_hazards, 1);
        qn_log(QN_LOG_DEBUG, "vulkan validation (the decode chain's shader-side synchronization): %s", msg);
        return VK_FALSE;
    }
    if (counts && warn) {
        atomic_fetch_add(&qn_validation_msgs, 1);
        qn_log(err ? QN_LOG_ERROR : QN_LOG_WARN, "vulkan validation %s: %s", err ? "ERROR" : "WARNING", msg);
    } else {
        qn_log(QN_LOG_DEBUG, "vulkan: %s", msg); /* the loader's GENERAL notices */
    }
    return (skip_calls && *skip_calls && counts && err) ? VK_TRUE : VK_FALSE;
}

static bool env_is(const char *name, const char *val)
{
    const char *e = getenv(name);
    return e && !strcmp(e, val);
}

void qn_vk_default_params(struct qn_vk_params *p)
{
    memset(p, 0, sizeof *p);
    p->validation = -1;
    p->pipeline_cache = -1;
    p->subgroups = -1;
    p->uma_zero_copy = -1;
    p->push_descriptors = -1;
}

static int check_layer(void)
{
    uint32_t n = 0;
    VkLayerProperties *l = NULL;
    bool found = false;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) >= 0 && n) {
        l = calloc(n, sizeof *l);
        if (l && vkEnumerateInstanceLayerProperties(&n, l) >= 0)
            for (uint32_t i = 0; i < n; i++) found |= !strcmp(l[i].layerName, QN_VALIDATION_LAYER);
        free(l);
    }
    if (found) return 0;
    QN_ERROR("*** SKIP: QNEXT_VALIDATION=1 asks for %s, which is not installed "
             "(apt-get install vulkan-validationlayers). Nothing was validated. ***", QN_VALIDATION_LAYER);
    return qn_fail(QN_E_SKIP, "validation requested but %s is not installed "
                   "(apt-get install vulkan-validationlayers)", QN_VALIDATION_LAYER);
}

static bool has_instance_ext(const char *layer, const char *ext)
{
    uint32_t n = 0;
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, NULL) < 0 || !n) return false;
    VkExtensionProperties *e = calloc(n, sizeof *e);
    if (e && vkEnumerateInstanceExtensionProperties(layer, &n, e) >= 0)
        for (uint32_t i = 0; i < n; i++) found |= !strcmp(e[i].extensionName, ext);
    free(e);
    return found;
}

/* The system loader (libvulkan.so.1), or the one named by QNEXT_VULKAN_LOADER (a custom or test loader). */
static int load_vulkan(void)
{
    const char *path = getenv("QNEXT_VULKAN_LOADER");
    if (path && *path) {
        void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        PFN_vkGetInstanceProcAddr gipa = lib ? (PFN_vkGetInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr") : NULL;
        if (!gipa)
            return qn_fail(QN_E_NODEV, "no Vulkan device: the Vulkan loader %s (QNEXT_VULKAN_LOADER) could not be "
                           "loaded: %s", path, dlerror());
        volkInitializeCustom(gipa);
        return 0;
    }
    VkResult r = volkInitialize();
    if (r < 0)
        return qn_fail(QN_E_NODEV, "no Vulkan device: the Vulkan loader (libvulkan.so.1) could not be loaded "
                       "(apt-get install libvulkan1 mesa-vulkan-drivers)");
    return 0;
}

/* Create the instance; with validation: the layer by name, sync validation, and a messenger. */
static int create_instance(qn_vk *v)
{
    int rc = 0;
    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_message,
        .pUserData = &v->skip_calls,
    };
    VkValidationFeatureEnableEXT enables[] = { VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT };
    VkValidationFeaturesEXT feats = {
        .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
        .pNext = &dbg,
        .enabledValidationFeatureCount = 1,
        .pEnabledValidationFeatures = enables,
    };
    const char *layers[] = { QN_VALIDATION_LAYER };
    const char *exts[2];
    uint32_t next = 0;
    uint32_t api = VK_API_VERSION_1_2;
    if (vkEnumerateInstanceVersion && vkEnumerateInstanceVersion(&api) >= 0 && api >= VK_API_VERSION_1_3)
        api = VK_API_VERSION_1_3;
    else
        api = VK_API_VERSION_1_2;
    VkApplicationInfo app = { .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "qnext",
                              .pEngineName = "qnext", .apiVersion = api };
    VkInstanceCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app };
    if (v->validation) {
        QN_TRY(check_layer());
        exts[next++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
        if (has_instance_ext(QN_VALIDATION_LAYER, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME)) {
            exts[next++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
            ci.pNext = &feats;
        } else {
            QN_WARN("validation layer lacks %s: synchronization validation is off",
                    VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
            ci.pNext = &dbg;
        }
        ci.enabledLayerCount = 1;
        ci.ppEnabledLayerNames = layers;
        ci.enabledExtensionCount = next;
        ci.ppEnabledExtensionNames = exts;
    }
    VkResult r = vkCreateInstance(&ci, NULL, &v->instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED) {
        rc = qn_fail(QN_E_NODEV, "no Vulkan device: vkCreateInstance found no driver (%s); install a Vulkan "
                     "driver (lavapipe: apt-get install mesa-vulkan-drivers)", qn_vk_result_name(r));
        goto done;
    }
    QN_VK_TRY(r);
    volkLoadInstanceOnly(v->instance);
    if (v->validation) QN_VK_TRY(vkCreateDebugUtilsMessengerEXT(v->instance, &dbg, NULL, &v->messenger));
done:
    return rc;
}

static int list_devices(VkInstance inst, VkPhysicalDevice **pds, uint32_t *n)
{
    int rc = 0;
    *pds = NULL;
    *n = 0;
    QN_VK_TRY(vkEnumeratePhysicalDevices(inst, n, NULL));
    if (!*n) return qn_fail(QN_E_NODEV, "no Vulkan device: the loader found no physical device "
                            "(install a driver, e.g. mesa-vulkan-drivers for lavapipe)");
    *pds = calloc(*n, sizeof **pds);
    if (!*pds) return qn_fail(-ENOMEM, "out of memory listing devices");
    QN_VK_TRY(vkEnumeratePhysicalDevices(inst, n, *pds));
done:
    if (rc < 0) { free(*pds); *pds = NULL; }
    return rc;
}

static int type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n)) return true;
    return n == 0;
}

/* Pick a device index from caps[0..n-1]: by index, by name substring, or the best type. */
static int choose(const struct qn_caps *caps, uint32_t n, const char *sel, uint32_t *out)
{
    if (sel && *sel) {
        char *end;
        long idx = strtol(sel, &end, 10);
        if (!*end && isdigit((unsigned char)sel[0])) {
            if (idx < 0 || (uint32_t)idx >= n)
                return qn_fail(QN_E_NODEV, "device index %ld is out of range: %u device(s), indices 0..%u "
                               "(see 'qnext devices')", idx, n, n - 1);
            *out = (uint32_t)idx;
            return 0;
        }
        for (uint32_t i = 0; i < n; i++)
            if (contains_nocase(caps[i].name, sel)) { *out = i; return 0; }
        return qn_fail(QN_E_NODEV, "no Vulkan device name contains '%s' (%u device(s); see 'qnext devices')",
                       sel, n);
    }
    int best = -1, rank = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (caps[i].api_version < VK_API_VERSION_1_2) continue;
        if (type_rank(caps[i].type) > rank) { rank = type_rank(caps[i].type); best = (int)i; }
    }
    if (best < 0) return qn_fail(QN_E_NODEV, "no Vulkan 1.2 device (%u device(s) found, all older)", n);
    *out = (uint32_t)best;
    return 0;
}

static int probe_all(VkInstance inst, VkPhysicalDevice **pds, struct qn_caps **caps, uint32_t *n)
{
    int rc = list_devices(inst, pds, n);
    if (rc < 0) return rc;
    *caps = calloc(*n, sizeof **caps);
    if (!*caps) return qn_fail(-ENOMEM, "out of memory probing devices");
    for (uint32_t i = 0; i < *n; i++)
        if ((rc = qn_caps_query((*pds)[i], i, &(*caps)[i])) < 0) return rc;
    return 0;
}

int qn_vk_enumerate(struct qn_caps **out, uint32_t *n)
{
    qn_vk v = { 0 };
    VkPhysicalDevice *pds = NULL;
    *out = NULL;
    *n = 0;
    int rc = load_vulkan();
    if (rc < 0) return rc;
    if ((rc = create_instance(&v)) < 0) return rc;
    rc = probe_all(v.instance, &pds, out, n);
    if (rc < 0) { free(*out); *out = NULL; *n = 0; }
    free(pds);
    vkDestroyInstance(v.instance, NULL);
    return rc;
}

/* Feature structs of the device, queried and then trimmed to what qnext enables. */
struct feats {
    VkPhysicalDeviceFeatures2 f2;
    VkPhysicalDeviceVulkan11Features f11;
    VkPhysicalDeviceVulkan12Features f12;
    VkPhysicalDeviceVulkan13Features f13;
};

static void chain_feats(struct feats *f, bool v13)
{
    memset(f, 0, sizeof *f);
    f->f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    f->f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES;
    f->f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
    f->f13.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES;
    f->f2.pNext = &f->f11;
    f->f11.pNext = &f->f12;
    if (v13) f->f12.pNext = &f->f13;
}

/* Keep only features kernels may use (never robustBufferAccess & co., which cost speed). */
static void trim_feats(const struct feats *have, struct feats *want, bool v13)
{
    chain_feats(want, v13);
    const VkPhysicalDeviceFeatures *a = &have->f2.features;
    VkPhysicalDeviceFeatures *b = &want->f2.features;
    b->shaderInt16 = a->shaderInt16;
    b->shaderInt64 = a->shaderInt64;
    b->shaderFloat64 = a->shaderFloat64;
    want->f11.storageBuffer16BitAccess = have->f11.storageBuffer16BitAccess;
    want->f11.uniformAndStorageBuffer16BitAccess = have->f11.uniformAndStorageBuffer16BitAccess;
    want->f11.storagePushConstant16 = have->f11.storagePushConstant16;
    const VkPhysicalDeviceVulkan12Features *c = &have->f12;
    VkPhysicalDeviceVulkan12Features *d = &want->f12;
    d->storageBuffer8BitAccess = c->storageBuffer8BitAccess;
    d->uniformAndStorageBuffer8BitAccess = c->uniformAndStorageBuffer8BitAccess;
    d->storagePushConstant8 = c->storagePushConstant8;
    d->shaderBufferInt64Atomics = c->shaderBufferInt64Atomics;
    d->shaderSharedInt64Atomics = c->shaderSharedInt64Atomics;
    d->shaderFloat16 = c->shaderFloat16;
    d->shaderInt8 = c->shaderInt8;
    d->scalarBlockLayout = c->scalarBlockLayout;
    d->timelineSemaphore = c->timelineSemaphore;
    d->bufferDeviceAddress = c->bufferDeviceAddress;
    d->vulkanMemoryModel = c->vulkanMemoryModel;
    d->vulkanMemoryModelDeviceScope = c->vulkanMemoryModelDeviceScope;
    d->shaderSubgroupExtendedTypes = c->shaderSubgroupExtendedTypes;
    d->hostQueryReset = c->hostQueryReset;
    if (v13) {
        want->f13.subgroupSizeControl = have->f13.subgroupSizeControl;
        want->f13.computeFullSubgroups = have->f13.computeFullSubgroups;
        want->f13.synchronization2 = have->f13.synchronization2;
        want->f13.maintenance4 = have->f13.maintenance4;
        want->f13.shaderIntegerDotProduct = have->f13.shaderIntegerDotProduct;
    }
}

/* Queues to create in the transfer-only family: env QNEXT_TRANSFER_QUEUES=N (default 1), at most the family's
 * queue count and QN_MAX_XQUEUES (each may drive its own copy engine: docs/streaming.md). */
static uint32_t transfer_queue_count(const qn_vk *v)
{
    uint32_t nf = 0, want = 1;
    vkGetPhysicalDeviceQueueFamilyProperties(v->pd, &nf, NULL);
    VkQueueFamilyProperties *fp = calloc(nf ? nf : 1, sizeof *fp);
    if (!fp) return 1;
    vkGetPhysicalDeviceQueueFamilyProperties(v->pd, &nf, fp);
    uint32_t have = v->xfamily < nf ? fp[v->xfamily].queueCount : 1;
    free(fp);
    const char *e = getenv("QNEXT_TRANSFER_QUEUES");
    if (e && *e) want = (uint32_t)strtoul(e, NULL, 10);
    want = want < 1 ? 1 : want > QN_MAX_XQUEUES ? QN_MAX_XQUEUES : want;
    if (want > have) QN_INFO("vulkan: QNEXT_TRANSFER_QUEUES=%s but the transfer family %u has %u queue(s)", e,
                             v->xfamily, have);
    return want < have ? want : have ? have : 1;
}

static int create_device(qn_vk *v)
{
    int rc = 0;
    bool v13 = v->caps.api_version >= VK_API_VERSION_1_3;
    struct feats have, want;
    chain_feats(&have, v13);
    vkGetPhysicalDeviceFeatures2(v->pd, &have.f2);
    trim_feats(&have, &want, v13);
    const char *exts[6];
    uint32_t next = 0;
    if (v->caps.mem_budget) exts[next++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    if (v->caps.external_memory_host) exts[next++] = VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME; /* qn_buf_import_host */
    if (v->push_desc) exts[next++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    if (v->caps.float_atomic_add)
        exts[next++] = VK_EXT_SHADER_ATOMIC_FLOAT_EXTENSION_NAME;
    if (v->caps.coopmat_nv) exts[next++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME; /* caps.c checked feature + shape */
    VkPhysicalDeviceShaderAtomicFloatFeaturesEXT af = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_ATOMIC_FLOAT_FEATURES_EXT,
        .shaderBufferFloat32AtomicAdd = v->caps.float_atomic_add,
    };
    if (v->caps.float_atomic_add) { af.pNext = want.f2.pNext; want.f2.pNext = &af; }
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV, .cooperativeMatrix = VK_TRUE };
    if (v->caps.coopmat_nv) { cm.pNext = want.f2.pNext; want.f2.pNext = &cm; }
    float prio[QN_MAX_XQUEUES] = { 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f };
    v->n_xqueues = v->xsep ? transfer_queue_count(v) : 1;
    VkDeviceQueueCreateInfo q[2] = {
        { .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = v->caps.compute_family,
          .queueCount = 1, .pQueuePriorities = prio },
        { .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = v->xfamily,
          .queueCount = v->n_xqueues, .pQueuePriorities = prio },
    };
    VkDeviceCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &want.f2,
                              .queueCreateInfoCount = v->xsep ? 2 : 1, .pQueueCreateInfos = q,
                              .enabledExtensionCount = next, .ppEnabledExtensionNames = exts };
    QN_VK_TRY(vkCreateDevice(v->pd, &ci, NULL, &v->dev));
    volkLoadDevice(v->dev);
    vkGetDeviceQueue(v->dev, v->caps.compute_family, 0, &v->queue);
    v->xqueue = v->queue;
    if (v->xsep) vkGetDeviceQueue(v->dev, v->xfamily, 0, &v->xqueue);
    v->xqueues[0] = v->xqueue;
    for (uint32_t i = 1; i < v->n_xqueues; i++) vkGetDeviceQueue(v->dev, v->xfamily, i, &v->xqueues[i]);
done:
    return rc;
}

static int env_or(int param, const char *env, const char *on_value, int def_if_unset)
{
    if (param >= 0) return param;
    const char *e = getenv(env);
    if (!e) return def_if_unset;
    return !strcmp(e, on_value);
}

int qn_vk_open(qn_vk **out, const struct qn_vk_params *p)
{
    struct qn_vk_params defaults;
    VkPhysicalDevice *pds = NULL;
    struct qn_caps *caps = NULL;
    uint32_t n = 0, pick = 0;
    int rc = 0;
    *out = NULL;
    if (!p) { qn_vk_default_params(&defaults); p = &defaults; }
    qn_vk *v = calloc(1, sizeof *v);
    if (!v) return qn_fail(-ENOMEM, "out of memory");
    v->validation = p->validation >= 0 ? p->validation == 1 : env_is("QNEXT_VALIDATION", "1");
    v->skip_calls = p->validation_skip_calls;
    v->subgroups = p->subgroups >= 0 ? p->subgroups == 1 : !env_is("QNEXT_NO_SUBGROUP", "1");
    v->uma_zero_copy = env_or(p->uma_zero_copy, "QNEXT_UMA", "1", 1);
    v->push_desc = env_or(p->push_descriptors, "QNEXT_PUSH_DESCRIPTORS", "1", 1);
    QN_TRY(load_vulkan());
    QN_TRY(create_instance(v));
    QN_TRY(probe_all(v->instance, &pds, &caps, &n));
    QN_TRY(choose(caps, n, p->device, &pick));
    v->pd = pds[pick];
    v->caps = caps[pick];
    if (v->caps.api_version < VK_API_VERSION_1_2) {
        rc = qn_fail(QN_E_NODEV, "device %u '%s' supports Vulkan %u.%u; qnext needs 1.2", pick, v->caps.name,
                     VK_API_VERSION_MAJOR(v->caps.api_version), VK_API_VERSION_MINOR(v->caps.api_version));
        goto done;
    }
    if (!v->subgroups) v->caps.features &= ~(uint32_t)(QN_FEAT_SG_ARITH | QN_FEAT_SG_BASIC | QN_FEAT_SG_VOTE |
        QN_FEAT_SG_BALLOT | QN_FEAT_SG_SHUFFLE | QN_FEAT_SG_SHUFFLE_REL | QN_FEAT_SG_CLUSTERED | QN_FEAT_SG_QUAD);
    v->push_desc = v->push_desc && v->caps.push_descriptor;
    if (!v->caps.timeline) {   /* core in 1.2 and required there; a driver without it is broken */
        rc = qn_fail(QN_E_NODEV, "device %u '%s' lacks timelineSemaphore (Vulkan 1.2 core)", pick, v->caps.name);
        goto done;
    }
    v->xsep = v->caps.transfer_queue && env_or(-1, "QNEXT_TRANSFER_QUEUE", "1", 1);  /* QNEXT_TRANSFER_QUEUE=0: off */
    v->xfamily = v->xsep ? v->caps.transfer_family : v->caps.compute_family;
    QN_TRY(create_device(v));
    qn_mem_init(v);
    QN_TRY(qn_pipe_cache_open(v, env_or(p->pipeline_cache, "QNEXT_PIPELINE_CACHE", "1", 1), p->cache_dir));
    QN_TRY(qn_cmd_create(v, &v->xfer));
    QN_INFO("vulkan: device %u '%s' (%s, %s)%s, copies on %s", pick, v->caps.name, qn_caps_type_name(v->caps.type),
            v->caps.driver_info, v->validation ? ", validation on" : "",
            v->xsep ? v->n_xqueues > 1 ? "transfer-only queues" : "a transfer-only queue" : "the compute queue");
done:
    free(pds);
    free(caps);
    if (rc < 0) qn_vk_close(&v);
    *out = v;
    return rc;
}

void qn_vk_close(qn_vk **pv)
{
    qn_vk *v = pv ? *pv : NULL;
    if (!v) return;
    if (v->dev) vkDeviceWaitIdle(v->dev);
    qn_cmd_destroy(&v->xfer);
    if (v->dev) {
        qn_pipe_destroy_all(v);
        qn_pipe_cache_close(v);
        if (v->nbuffers) QN_WARN("vulkan: closing with %u buffer(s) not destroyed", v->nbuffers);
        vkDestroyDevice(v->dev, NULL);
    }
    if (v->messenger) vkDestroyDebugUtilsMessengerEXT(v->instance, v->messenger, NULL);
    if (v->instance) vkDestroyInstance(v->instance, NULL);
    free(v);
    *pv = NULL;
}

const struct qn_caps *qn_vk_caps(const qn_vk *v) { return &v->caps; }
bool qn_vk_validating(const qn_vk *v) { return v->validation; }
bool qn_vk_push_descriptors(const qn_vk *v) { return v->push_desc; }
VkDevice qn_vk_device(const qn_vk *v) { return v->dev; }
VkPhysicalDevice qn_vk_physical(const qn_vk *v) { return v->pd; }
bool qn_vk_transfer_queue(const qn_vk *v) { return v->xsep; }
uint32_t qn_vk_transfer_queues(const qn_vk *v) { return v->n_xqueues ? v->n_xqueues : 1; }

void qn_vk_grid(const qn_vk *v, uint64_t groups, uint32_t *gx, uint32_t *gy)
{
    uint64_t maxx = v->caps.max_wg_count[0] ? v->caps.max_wg_count[0] : 65535;
    if (groups == 0) groups = 1;
    uint64_t x = groups < maxx ? groups : maxx;
    *gx = (uint32_t)x;
    *gy = (uint32_t)((groups + x - 1) / x);
}
