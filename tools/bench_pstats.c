/* bench_pstats.c — what the driver made of a kernel: VK_KHR_pipeline_executable_properties statistics (on NVIDIA:
 * register count, shared memory, local memory / spills where the driver reports them) for kernels of the registry
 * at given specialization constants. A diagnostic for the GPU machine (helper route: is route_mixed register-bound?);
 * it opens its own Vulkan device with the extension, every feature the device has (robust buffer access off), and
 * touches nothing else of qnext.
 *
 *     bench_pstats KERNEL[:S0,S1,...] ...     e.g. bench_pstats route_mixed_q4_k:512,8,16,8,2,512 moe_router:256
 *
 * Exit 0 when every named kernel was compiled and its statistics printed, 77 when the device (the first that is not a
 * CPU, or QNEXT_DEVICE=N) lacks the extension, 1 on an unknown kernel name or a failed pipeline. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <volk.h>

#include "qn_kernels.h"

#define PS_TRY(x)                                                                                                    \
    do {                                                                                                              \
        VkResult r_ = (x);                                                                                            \
        if (r_ < 0) {                                                                                                 \
            fprintf(stderr, "bench_pstats: %s failed (%d)\n", #x, (int)r_);                                          \
            return 1;                                                                                                 \
        }                                                                                                             \
    } while (0)

struct ps_dev {
    VkInstance inst;
    VkPhysicalDevice pd;
    VkDevice dev;
};

static bool has_ext(VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL);
    VkExtensionProperties *e = calloc(n ? n : 1, sizeof *e);
    bool found = false;
    if (e && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, e) >= 0)
        for (uint32_t i = 0; i < n && !found; i++) found = !strcmp(e[i].extensionName, name);
    free(e);
    return found;
}

/* The device with every core 1.0-1.3 feature it has (not robustBufferAccess) and the statistics extension;
 * 77 when it lacks the extension. */
static int open_dev(struct ps_dev *d)
{
    PS_TRY(volkInitialize());
    VkApplicationInfo ai = { .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "bench_pstats",
                             .apiVersion = VK_API_VERSION_1_3 };
    VkInstanceCreateInfo ii = { .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &ai };
    PS_TRY(vkCreateInstance(&ii, NULL, &d->inst));
    volkLoadInstance(d->inst);
    VkPhysicalDevice pds[16];
    uint32_t n = 16;
    PS_TRY(vkEnumeratePhysicalDevices(d->inst, &n, pds));
    const char *e = getenv("QNEXT_DEVICE");
    uint32_t want = e ? (uint32_t)strtoul(e, NULL, 10) : 0;
    VkPhysicalDeviceProperties pp;
    for (uint32_t i = 0; !e && i < n; i++) { /* default: the first device that is not a CPU */
        vkGetPhysicalDeviceProperties(pds[i], &pp);
        if (pp.deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU) { want = i; break; }
    }
    if (!n || want >= n) return fprintf(stderr, "bench_pstats: no device %u (%u found)\n", want, n), 1;
    d->pd = pds[want];
    vkGetPhysicalDeviceProperties(d->pd, &pp);
    printf("bench_pstats: device '%s' (driver 0x%x)\n", pp.deviceName, pp.driverVersion);
    if (!has_ext(d->pd, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME)) {
        printf("bench_pstats: SKIP: the device lacks VK_KHR_pipeline_executable_properties\n");
        return 77;
    }
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR pe = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR };
    VkPhysicalDeviceVulkan13Features f13 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES, .pNext = &pe };
    VkPhysicalDeviceVulkan12Features f12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = &f13 };
    VkPhysicalDeviceVulkan11Features f11 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12 };
    VkPhysicalDeviceFeatures2 f2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11 };
    vkGetPhysicalDeviceFeatures2(d->pd, &f2);
    f2.features.robustBufferAccess = VK_FALSE; /* as qnext's device: it would change the code */
    f13.robustImageAccess = VK_FALSE;
    pe.pipelineExecutableInfo = VK_TRUE;
    float prio = 1.0f;
    VkDeviceQueueCreateInfo q = { .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = 0,
                                  .queueCount = 1, .pQueuePriorities = &prio };
    const char *ext = VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME;
    VkDeviceCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &f2, .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &q, .enabledExtensionCount = 1, .ppEnabledExtensionNames = &ext };
    PS_TRY(vkCreateDevice(d->pd, &ci, NULL, &d->dev));
    volkLoadDevice(d->dev);
    return 0;
}

/* "NAME[:S0,S1,...]" -> kernel index and its specialization constants (the registry's defaults where not given) */
static int parse_arg(const char *arg, uint32_t spec[QN_MAX_SPEC])
{
    char name[128];
    const char *colon = strchr(arg, ':');
    size_t len = colon ? (size_t)(colon - arg) : strlen(arg);
    if (len >= sizeof name) return -1;
    memcpy(name, arg, len);
    name[len] = 0;
    for (int k = 0; k < QN_K_COUNT; k++) {
        if (strcmp(qn_kernel_infos[k].name, name)) continue;
        memcpy(spec, qn_kernel_infos[k].spec_default, sizeof(uint32_t) * QN_MAX_SPEC);
        for (uint32_t i = 0; colon && i < qn_kernel_infos[k].nspec; i++) {
            char *end;
            spec[i] = (uint32_t)strtoul(colon + 1, &end, 10);
            if (*end != ',') break;
            colon = end;
        }
        return k;
    }
    return -1;
}

static int pipe_of(const struct ps_dev *d, int k, const uint32_t *spec, VkPipeline *pl, VkPipelineLayout *lay)
{
    const struct qn_kernel_info *ki = &qn_kernel_infos[k];
    VkShaderModule mod;
    VkShaderModuleCreateInfo mi = { .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                    .codeSize = (size_t)ki->spirv_words * 4, .pCode = ki->spirv };
    PS_TRY(vkCreateShaderModule(d->dev, &mi, NULL, &mod));
    VkDescriptorSetLayoutBinding b[32];
    for (uint32_t i = 0; i < ki->nbind && i < 32; i++)
        b[i] = (VkDescriptorSetLayoutBinding){ .binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                               .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT };
    VkDescriptorSetLayoutCreateInfo di = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = ki->nbind, .pBindings = b };
    VkDescriptorSetLayout dsl;
    PS_TRY(vkCreateDescriptorSetLayout(d->dev, &di, NULL, &dsl));
    VkPushConstantRange pr = { .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = ki->push_size };
    VkPipelineLayoutCreateInfo li = { .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &dsl, .pushConstantRangeCount = ki->push_size ? 1 : 0,
                                      .pPushConstantRanges = &pr };
    PS_TRY(vkCreatePipelineLayout(d->dev, &li, NULL, lay));
    VkSpecializationMapEntry me[QN_MAX_SPEC];
    for (uint32_t i = 0; i < ki->nspec; i++) me[i] = (VkSpecializationMapEntry){ i, i * 4, 4 };
    VkSpecializationInfo si = { .mapEntryCount = ki->nspec, .pMapEntries = me, .dataSize = ki->nspec * 4, .pData = spec };
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO, .flags = VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR,
        .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                   .module = mod, .pName = "main", .pSpecializationInfo = ki->nspec ? &si : NULL },
        .layout = *lay,
    };
    PS_TRY(vkCreateComputePipelines(d->dev, VK_NULL_HANDLE, 1, &ci, NULL, pl));
    return 0;
}

/* One line per executable: its name and every statistic */
static int print_stats(const struct ps_dev *d, VkPipeline pl, const char *what)
{
    VkPipelineInfoKHR pi = { .sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, .pipeline = pl };
    VkPipelineExecutablePropertiesKHR props[4];
    uint32_t ne = 4;
    for (uint32_t i = 0; i < ne; i++) props[i] = (VkPipelineExecutablePropertiesKHR){
        .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR };
    PS_TRY(vkGetPipelineExecutablePropertiesKHR(d->dev, &pi, &ne, props));
    for (uint32_t e = 0; e < ne; e++) {
        VkPipelineExecutableInfoKHR ei = { .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, .pipeline = pl,
                                           .executableIndex = e };
        VkPipelineExecutableStatisticKHR st[32];
        uint32_t ns = 32;
        for (uint32_t i = 0; i < ns; i++) st[i] = (VkPipelineExecutableStatisticKHR){
            .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR };
        PS_TRY(vkGetPipelineExecutableStatisticsKHR(d->dev, &ei, &ns, st));
        printf("pstats %s [%s, subgroup %u]:", what, props[e].name, props[e].subgroupSize);
        for (uint32_t i = 0; i < ns; i++) {
            printf(" %s=", st[i].name);
            switch (st[i].format) {
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: printf("%s", st[i].value.b32 ? "yes" : "no"); break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: printf("%lld", (long long)st[i].value.i64); break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: printf("%llu", (unsigned long long)st[i].value.u64); break;
            default: printf("%g", st[i].value.f64); break;
            }
        }
        printf("\n");
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_pstats KERNEL[:S0,S1,...] ...\n");
        return 1;
    }
    struct ps_dev d = { 0 };
    int rc = open_dev(&d);
    if (rc) return rc;
    for (int a = 1; a < argc; a++) {
        uint32_t spec[QN_MAX_SPEC];
        int k = parse_arg(argv[a], spec);
        if (k < 0) {
            fprintf(stderr, "bench_pstats: no kernel '%s' in the registry\n", argv[a]);
            rc = 1;
            continue;
        }
        VkPipeline pl;
        VkPipelineLayout lay;
        if (pipe_of(&d, k, spec, &pl, &lay) || print_stats(&d, pl, argv[a])) rc = 1;
    }
    return rc;
}
