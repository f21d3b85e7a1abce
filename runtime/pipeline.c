/* pipeline.c — compute pipelines from the embedded SPIR-V (kernel registry), specialization constants,
 * per-kernel descriptor-set/pipeline layouts, and the on-disk VkPipelineCache. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_log.h"
#include "qn_time.h"
#include "vk_internal.h"

/* ---- on-disk pipeline cache -------------------------------------------------------------------- */

static int cache_dir(const char *param, char *out, size_t n)
{
    const char *e;
    if (param && *param) return snprintf(out, n, "%s", param) < (int)n ? 0 : -1;
    if ((e = getenv("QNEXT_CACHE_DIR")) && *e) return snprintf(out, n, "%s", e) < (int)n ? 0 : -1;
    if ((e = getenv("XDG_CACHE_HOME")) && *e) return snprintf(out, n, "%s/qnext", e) < (int)n ? 0 : -1;
    if ((e = getenv("HOME")) && *e) return snprintf(out, n, "%s/.cache/qnext", e) < (int)n ? 0 : -1;
    return -1;
}

static int mkdir_p(const char *dir)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -errno;
    return 0;
}

/* Read the cache file if it exists and its header matches this device (else NULL). */
static void *read_cache(const qn_vk *v, const char *path, size_t *size)
{
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *data = NULL;
    long n = 0;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 32 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)n))) {
        if (fread(data, 1, (size_t)n, f) != (size_t)n) { free(data); data = NULL; }
    }
    fclose(f);
    if (!data) {
        QN_WARN("pipeline cache %s: unreadable; ignored", path);
        return NULL;
    }
    const uint32_t *h = data; /* VkPipelineCacheHeaderVersionOne */
    if (h[0] != 32 || h[1] != VK_PIPELINE_CACHE_HEADER_VERSION_ONE || h[2] != v->caps.vendor_id ||
        h[3] != v->caps.device_id || memcmp(&h[4], v->caps.cache_uuid, VK_UUID_SIZE) != 0) {
        QN_WARN("pipeline cache %s: written by another device or driver; ignored", path);
        free(data);
        return NULL;
    }
    *size = (size_t)n;
    return data;
}

int qn_pipe_cache_open(qn_vk *v, int enabled, const char *dir_param)
{
    int rc = 0;
    char dir[900];
    void *data = NULL;
    size_t size = 0;
    v->pcache_path[0] = 0;
    if (enabled && cache_dir(dir_param, dir, sizeof dir) == 0) {
        char uuid[2 * VK_UUID_SIZE + 1];
        for (unsigned i = 0; i < VK_UUID_SIZE; i++) snprintf(uuid + 2 * i, 3, "%02x", v->caps.device_uuid[i]);
        snprintf(v->pcache_path, sizeof v->pcache_path, "%s/pipelines-%s-%08x.bin", dir, uuid, v->caps.driver_version);
        data = read_cache(v, v->pcache_path, &size);
    } else if (enabled) {
        QN_WARN("pipeline cache: no cache directory (set XDG_CACHE_HOME or HOME); not saved");
    }
    VkPipelineCacheCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                     .initialDataSize = size, .pInitialData = data };
    VkResult r = vkCreatePipelineCache(v->dev, &ci, NULL, &v->pcache);
    if (r < 0 && data) { /* a driver that rejects its own old data: start empty */
        QN_WARN("pipeline cache %s: rejected by the driver (%s); starting empty", v->pcache_path, qn_vk_result_name(r));
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        size = 0;
        r = vkCreatePipelineCache(v->dev, &ci, NULL, &v->pcache);
    }
    QN_VK_TRY(r);
    v->pcache_disk = size;
    if (size) QN_DEBUG("pipeline cache: loaded %zu bytes from %s", size, v->pcache_path);
done:
    free(data);
    return rc;
}

static int write_cache(const char *path, const void *data, size_t n)
{
    char dir[1024], tmp[1100];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    int e = mkdir_p(dir);
    if (e < 0) { QN_WARN("pipeline cache: cannot create %s: %s; not saved", dir, strerror(-e)); return -1; }
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(data, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        QN_WARN("pipeline cache: cannot write %s: %s; not saved", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    QN_DEBUG("pipeline cache: saved %zu bytes to %s", n, path);
    return 0;
}

void qn_pipe_cache_save(qn_vk *v)
{
    size_t n = 0;
    void *data = NULL;
    if (v->pcache && v->pcache_path[0] && vkGetPipelineCacheData(v->dev, v->pcache, &n, NULL) >= 0 && n &&
        n != v->pcache_disk && (data = malloc(n)) && vkGetPipelineCacheData(v->dev, v->pcache, &n, data) >= 0 &&
        write_cache(v->pcache_path, data, n) == 0)
        v->pcache_disk = n;
    free(data);
}

void qn_pipe_cache_close(qn_vk *v)
{
    if (!v->pcache) return;
    qn_pipe_cache_save(v);
    vkDestroyPipelineCache(v->dev, v->pcache, NULL);
    v->pcache = VK_NULL_HANDLE;
}

/* ---- pipelines --------------------------------------------------------------------------------- */

/* Shader module and layouts of kernel k, made on first use. */
static int ensure_slot(qn_vk *v, enum qn_kernel k)
{
    int rc = 0;
    struct qn_kernel_slot *s = &v->kern[k];
    const struct qn_kernel_info *ki = &qn_kernel_infos[k];
    if (s->layout) return 0;
    VkShaderModuleCreateInfo mi = { .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                    .codeSize = (size_t)ki->spirv_words * 4, .pCode = ki->spirv };
    QN_VK_TRY(vkCreateShaderModule(v->dev, &mi, NULL, &s->module));
    VkDescriptorSetLayoutBinding b[QN_MAX_BIND];
    for (uint32_t i = 0; i < ki->nbind; i++)
        b[i] = (VkDescriptorSetLayoutBinding){ .binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                               .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT };
    VkDescriptorSetLayoutCreateInfo di = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .flags = v->push_desc ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR : 0,
                                           .bindingCount = ki->nbind, .pBindings = b };
    QN_VK_TRY(vkCreateDescriptorSetLayout(v->dev, &di, NULL, &s->dsl));
    VkPushConstantRange pr = { .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = ki->push_size };
    VkPipelineLayoutCreateInfo li = { .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &s->dsl, .pushConstantRangeCount = ki->push_size ? 1 : 0,
                                      .pPushConstantRanges = &pr };
    QN_VK_TRY(vkCreatePipelineLayout(v->dev, &li, NULL, &s->layout));
done:
    return rc;
}

/* Follow fallbacks until the device has every feature the kernel needs. */
static int resolve(const qn_vk *v, enum qn_kernel k, enum qn_kernel *out)
{
    enum qn_kernel kk = k;
    for (int hops = 0; hops < QN_K_COUNT; hops++) {
        uint32_t missing = qn_kernel_infos[kk].features & ~v->caps.features;
        if (!missing) { *out = kk; return 0; }
        if (qn_kernel_infos[kk].fallback < 0) {
            char names[256];
            qn_caps_feat_str(missing, names, sizeof names);
            return qn_fail(QN_E_UNSUPPORTED, "kernel '%s' needs %s%s, which device '%s' lacks (or which were "
                           "disabled)", qn_kernel_infos[k].name, names, (missing & QN_FEAT_UNKNOWN) ? " (unknown SPIR-V "
                           "capability)" : "", v->caps.name);
        }
        kk = (enum qn_kernel)qn_kernel_infos[kk].fallback;
    }
    return qn_fail(QN_E_UNSUPPORTED, "kernel '%s': fallback loop in the registry", qn_kernel_infos[k].name);
}

static int check_spec(const qn_vk *v, const struct qn_kernel_info *ki, const uint32_t *spec)
{
    uint32_t wg = ki->nspec ? spec[0] : 1;
    if (wg == 0 || wg > v->caps.max_wg_invocations || wg > v->caps.max_wg_size[0])
        return qn_fail(-EINVAL, "kernel '%s': workgroup size %u (specialization constant 0) is outside 1..%u on '%s'",
                       ki->name, wg, v->caps.max_wg_invocations < v->caps.max_wg_size[0] ? v->caps.max_wg_invocations
                       : v->caps.max_wg_size[0], v->caps.name);
    return 0;
}

void qn_pipe_compile(struct qn_pipe_job *j)
{
    qn_vk *v = j->v;
    uint64_t t0 = qn_now_ns();
    j->p->res = vkCreateComputePipelines(v->dev, v->pcache, 1, &j->ci, NULL, &j->p->pipeline);
    atomic_fetch_add(&v->pipes_ns, qn_now_ns() - t0);
    if (j->p->res < 0) return;
    if (v->messenger) { /* validation messages name the kernel (device.c's filter for the decode chain reads it) */
        VkDebugUtilsObjectNameInfoEXT ni = { .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_OBJECT_NAME_INFO_EXT,
                                             .objectType = VK_OBJECT_TYPE_PIPELINE,
                                             .objectHandle = (uint64_t)j->p->pipeline,
                                             .pObjectName = qn_kernel_infos[j->p->kernel].name };
        vkSetDebugUtilsObjectNameEXT(v->dev, &ni);
    }
    atomic_fetch_add(&v->pipes_made, 1);
    if ((j->fb.flags & VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT) &&
        (j->fb.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT))
        atomic_fetch_add(&v->pipes_hit, 1);
}

static int create_pipe(qn_vk *v, enum qn_kernel kk, const uint32_t *spec, qn_pipe **out)
{
    int rc = 0;
    const struct qn_kernel_info *ki = &qn_kernel_infos[kk];
    struct qn_kernel_slot *s = &v->kern[kk];
    qn_pipe *p = calloc(1, sizeof *p);
    struct qn_pipe_job *j = calloc(1, sizeof *j);
    if (!p || !j) { rc = qn_fail(-ENOMEM, "out of memory"); goto done; }
    QN_TRY(ensure_slot(v, kk));
    if (qn_log_level() >= QN_LOG_DEBUG) { /* in bench_pstats' KERNEL:S0,S1,... syntax */
        char sl[QN_MAX_SPEC * 11 + 1] = "";
        for (uint32_t i = 0, o = 0; i < ki->nspec && o < sizeof sl; i++)
            o += (uint32_t)snprintf(sl + o, sizeof sl - o, "%s%u", i ? "," : "", spec[i]);
        QN_DEBUG("pipeline %s%s%s", ki->name, ki->nspec ? ":" : "", sl);
    }
    memcpy(p->spec, spec, sizeof p->spec);
    p->kernel = kk;
    p->layout = s->layout;
    p->dsl = s->dsl;
    p->v = v;
    j->v = v;
    j->p = p;
    for (uint32_t i = 0; i < ki->nspec; i++) j->me[i] = (VkSpecializationMapEntry){ i, i * 4, 4 };
    j->si = (VkSpecializationInfo){ .mapEntryCount = ki->nspec, .pMapEntries = j->me, .dataSize = ki->nspec * 4,
                                    .pData = p->spec };
    j->fci = (VkPipelineCreationFeedbackCreateInfo){ .sType = VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO,
                                                     .pPipelineCreationFeedback = &j->fb,
                                                     .pipelineStageCreationFeedbackCount = 1,
                                                     .pPipelineStageCreationFeedbacks = &j->fbs };
    j->ci = (VkComputePipelineCreateInfo){
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .pNext = v->caps.api_version >= VK_API_VERSION_1_3 ? &j->fci : NULL,
        .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                   .module = s->module, .pName = "main", .pSpecializationInfo = ki->nspec ? &j->si : NULL },
        .layout = s->layout,
    };
    /* the tensor-core kernels compile at once: their callers fall back to other kernels when that fails */
    if (!(ki->features & QN_FEAT_COOPMAT_NV) && qn_pipe_submit(v, j)) {
        j = NULL; /* the pool's now */
    } else {
        qn_pipe_compile(j);
        QN_TRY(qn_pipe_wait(p)); /* not pending: only its creation error, worded in one place */
    }
    p->next = s->pipes;
    s->pipes = p;
    *out = p;
done:
    free(j);
    if (rc < 0) free(p);
    return rc;
}

int qn_pipe_get(qn_vk *v, enum qn_kernel k, const uint32_t *spec, uint32_t nspec, qn_pipe **out)
{
    int rc = 0;
    enum qn_kernel kk = k;
    *out = NULL;
    if ((int)k < 0 || k >= QN_K_COUNT) return qn_fail(-EINVAL, "kernel id %d is not in the registry", (int)k);
    QN_TRY(resolve(v, k, &kk));
    const struct qn_kernel_info *ki = &qn_kernel_infos[kk];
    if (nspec > ki->nspec)
        return qn_fail(-EINVAL, "kernel '%s' has %u specialization constants, %u given", ki->name, ki->nspec, nspec);
    uint32_t vals[QN_MAX_SPEC] = { 0 };
    for (uint32_t i = 0; i < ki->nspec; i++) vals[i] = i < nspec ? spec[i] : ki->spec_default[i];
    QN_TRY(check_spec(v, ki, vals));
    for (qn_pipe *p = v->kern[kk].pipes; p; p = p->next)
        if (!memcmp(p->spec, vals, sizeof vals)) {
            if (!atomic_load(&p->pending) && p->res < 0) QN_TRY(qn_pipe_wait(p)); /* failed on a pool thread */
            *out = p;
            return 0;
        }
    QN_TRY(create_pipe(v, kk, vals, out));
done:
    return rc;
}

uint32_t qn_pipe_spec(const qn_pipe *p, uint32_t id) { return id < QN_MAX_SPEC ? p->spec[id] : 0; }
enum qn_kernel qn_pipe_kernel(const qn_pipe *p) { return p->kernel; }
const struct qn_kernel_info *qn_pipe_info(const qn_pipe *p) { return &qn_kernel_infos[p->kernel]; }
VkPipeline qn_pipe_vk(const qn_pipe *p)
{
    qn_pipe_wait(p); /* a creation error comes back from qn_pipe_async_end */
    return p->pipeline;
}

void qn_pipe_stats(const qn_vk *v, struct qn_pipe_stats *s)
{
    *s = (struct qn_pipe_stats){ .made = v->pipes_made, .hits = v->pipes_hit, .ms = (double)v->pipes_ns * 1e-6,
                                 .cache_bytes = v->pcache_disk, .cache_on = v->pcache_path[0] != 0 };
}

void qn_pipe_destroy_all(qn_vk *v)
{
    qn_pipe_async_end(v);
    for (int k = 0; k < QN_K_COUNT; k++) {
        struct qn_kernel_slot *s = &v->kern[k];
        for (qn_pipe *p = s->pipes, *next; p; p = next) {
            next = p->next;
            vkDestroyPipeline(v->dev, p->pipeline, NULL);
            free(p);
        }
        if (s->layout) vkDestroyPipelineLayout(v->dev, s->layout, NULL);
        if (s->dsl) vkDestroyDescriptorSetLayout(v->dev, s->dsl, NULL);
        if (s->module) vkDestroyShaderModule(v->dev, s->module, NULL);
        memset(s, 0, sizeof *s);
    }
}
