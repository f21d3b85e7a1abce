/* cmd.c — command recording: dispatches (all descriptor mechanics live here), barriers, copies, fills,
 * GPU timestamp regions, submit + fence wait; a recording can be submitted any number of times. Also the
 * transfer queue's command buffers and timeline semaphores (waits and signals around a submit).
 * Descriptors: pushed into the command buffer with VK_KHR_push_descriptor when present, else sets from
 * per-recording pools (reset at qn_cmd_begin), written at record time. */
#include <math.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_log.h"
#include "qn_time.h"
#include "vk_internal.h"

#define QN_CMD_MAX_STAMPS 2048
#define QN_POOL_SETS 256
#define QN_POOL_DESCRIPTORS (QN_POOL_SETS * 8)

struct qn_cmd {
    qn_vk *v;
    VkQueue queue;             /* compute, or the transfer queue (qn_cmd_create_on) */
    bool xfer_only;            /* a transfer-only family: copies, fills, barriers */
    VkPipelineStageFlags stages;   /* what barriers may name on this queue */
    VkCommandPool pool;
    VkCommandBuffer cb;
    VkFence fence;
    bool recording, recorded, pending;
    int err;                   /* first record-time error since begin */
    char errmsg[512];
    VkPipeline bound;          /* last pipeline bound in this recording */

    VkDescriptorPool *dpools;  /* grown on demand, reset at begin */
    uint32_t ndpools, cur_dpool;

    VkQueryPool qpool;         /* timestamps (NULL when the queue has none) */
    uint32_t nstamps;
    bool region_open;
    bool per_dispatch;         /* QNEXT_PROFILE_DISPATCH=1: one region per dispatch while profiling */
    uint64_t spin_ns;          /* QNEXT_WAIT_SPIN_US: poll the fence this long before blocking on it */
    bool spin_env;             /* spin_ns came from QNEXT_WAIT_SPIN_US */
    bool compute;              /* made for the compute queue (waits may poll) */
    uint64_t submit_ns;        /* when the pending submission went in */
    uint64_t last_ns;          /* submit to signal of the previous one (0: none yet): the next wait sleeps until
                                * shortly before that, then polls */
    char labels[QN_CMD_MAX_STAMPS][48]; /* labels[i]: region starting at stamp i ("" = none) */
    uint32_t nregions;
    uint32_t ndispatch;        /* dispatches recorded since begin */
    char skip[256];            /* QNEXT_DIAG_SKIP at begin: kernels whose names contain a listed part are not recorded */
    uint32_t region_stamp[QN_CMD_MAX_STAMPS];
    double region_ms[QN_CMD_MAX_STAMPS];
};

/* Remember the first recording error (with its message) and return it. */
static int rec_fail(qn_cmd *c, int code, const char *fmt, ...) QN_PRINTF(3, 4);
static int rec_fail(qn_cmd *c, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!c->err) {
        c->err = code;
        snprintf(c->errmsg, sizeof c->errmsg, "%s", msg);
    }
    return qn_fail(code, "%s", msg);
}

int qn_cmd_create(qn_vk *v, qn_cmd **out) { return qn_cmd_create_on(v, QN_QUEUE_COMPUTE, out); }

int qn_cmd_create_on(qn_vk *v, enum qn_queue q, qn_cmd **out)
{
    int rc = 0;
    *out = NULL;
    qn_cmd *c = calloc(1, sizeof *c);
    if (!c) return qn_fail(-ENOMEM, "out of memory");
    c->v = v;
    c->xfer_only = q == QN_QUEUE_TRANSFER && v->xsep;
    c->queue = q == QN_QUEUE_TRANSFER ? v->xqueue : v->queue;
    const char *pd = getenv("QNEXT_PROFILE_DISPATCH");
    c->per_dispatch = pd && *pd && strcmp(pd, "0");
    /* Compute-queue waits poll the fence first on discrete GPUs (a blocked waiter wakes tens of microseconds after
     * the GPU is done: H100 run 44, decode +1.3%, a 16-token prefill +6%, measured polling from the submit); not on
     * integrated GPUs, whose CPU cores share the power budget. Since then a wait sleeps (a timed fence wait) until
     * 0.3 ms before the previous run's time and polls from there, so long calls do not burn a core: never slower
     * than the blocking wait, not yet timed on the H100. Env QNEXT_WAIT_SPIN_US: the poll's cap in microseconds
     * (0: block at once). */
    const char *sp = getenv("QNEXT_WAIT_SPIN_US");
    c->compute = q == QN_QUEUE_COMPUTE;
    c->spin_env = c->compute && sp && *sp;
    if (c->compute)
        c->spin_ns = c->spin_env ? strtoull(sp, NULL, 10) * 1000ull
                                 : v->caps.type == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU ? 20000000ull : 0;
    c->stages = c->xfer_only ? VK_PIPELINE_STAGE_TRANSFER_BIT
                             : VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    VkCommandPoolCreateInfo pi = { .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = c->xfer_only ? v->xfamily : v->caps.compute_family };
    QN_VK_TRY(vkCreateCommandPool(v->dev, &pi, NULL, &c->pool));
    VkCommandBufferAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = c->pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1 };
    QN_VK_TRY(vkAllocateCommandBuffers(v->dev, &ai, &c->cb));
    VkFenceCreateInfo fi = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
    QN_VK_TRY(vkCreateFence(v->dev, &fi, NULL, &c->fence));
    if (v->caps.timestamps && !c->xfer_only) {
        VkQueryPoolCreateInfo qi = { .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                     .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = QN_CMD_MAX_STAMPS };
        QN_VK_TRY(vkCreateQueryPool(v->dev, &qi, NULL, &c->qpool));
    }
    *out = c;
done:
    if (rc < 0) qn_cmd_destroy(&c);
    return rc;
}

int qn_cmd_create_xq(qn_vk *v, uint32_t index, qn_cmd **out)
{
    int rc = qn_cmd_create_on(v, QN_QUEUE_TRANSFER, out);
    if (!rc && v->xsep) (*out)->queue = v->xqueues[index % qn_vk_transfer_queues(v)];
    return rc;
}

void qn_cmd_destroy(qn_cmd **pc)
{
    qn_cmd *c = pc ? *pc : NULL;
    if (!c) return;
    VkDevice dev = c->v->dev;
    if (c->pending) vkWaitForFences(dev, 1, &c->fence, VK_TRUE, UINT64_MAX);
    for (uint32_t i = 0; i < c->ndpools; i++) vkDestroyDescriptorPool(dev, c->dpools[i], NULL);
    free(c->dpools);
    if (c->qpool) vkDestroyQueryPool(dev, c->qpool, NULL);
    if (c->fence) vkDestroyFence(dev, c->fence, NULL);
    if (c->pool) vkDestroyCommandPool(dev, c->pool, NULL); /* frees c->cb */
    free(c);
    *pc = NULL;
}

int qn_cmd_begin(qn_cmd *c)
{
    int rc = 0;
    if (c->pending) QN_TRY(qn_cmd_wait(c));
    for (uint32_t i = 0; i < c->ndpools; i++) QN_VK_TRY(vkResetDescriptorPool(c->v->dev, c->dpools[i], 0));
    c->cur_dpool = 0;
    c->err = 0;
    c->errmsg[0] = 0;
    c->bound = VK_NULL_HANDLE;
    c->nstamps = 0;
    c->nregions = 0;
    c->ndispatch = 0;
    const char *sk = getenv("QNEXT_DIAG_SKIP"); /* read per recording: prefill-ab's variants set it in between */
    snprintf(c->skip, sizeof c->skip, "%s", sk ? sk : "");
    c->region_open = false;
    c->recorded = false;
    VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO };
    QN_VK_TRY(vkBeginCommandBuffer(c->cb, &bi));
    if (c->qpool) vkCmdResetQueryPool(c->cb, c->qpool, 0, QN_CMD_MAX_STAMPS);
    c->recording = true;
done:
    return rc;
}

/* A descriptor set for layout dsl from this recording's pools (adds a pool when they are full). */
static int alloc_set(qn_cmd *c, VkDescriptorSetLayout dsl, VkDescriptorSet *set)
{
    int rc = 0;
    for (;;) {
        if (c->cur_dpool == c->ndpools) {
            VkDescriptorPool *np = realloc(c->dpools, sizeof *np * (c->ndpools + 1));
            if (!np) return rec_fail(c, -ENOMEM, "out of memory for descriptor pools");
            c->dpools = np;
            VkDescriptorPoolSize ps = { VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, QN_POOL_DESCRIPTORS };
            VkDescriptorPoolCreateInfo pi = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                              .maxSets = QN_POOL_SETS, .poolSizeCount = 1, .pPoolSizes = &ps };
            QN_VK_TRY(vkCreateDescriptorPool(c->v->dev, &pi, NULL, &c->dpools[c->ndpools]));
            c->ndpools++;
        }
        VkDescriptorSetAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                           .descriptorPool = c->dpools[c->cur_dpool], .descriptorSetCount = 1,
                                           .pSetLayouts = &dsl };
        VkResult r = vkAllocateDescriptorSets(c->v->dev, &ai, set);
        if (r == VK_SUCCESS) return 0;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) QN_VK_TRY(r);
        c->cur_dpool++;
    }
done:
    if (rc < 0) rec_fail(c, rc, "%s", qn_errmsg());
    return rc;
}

/* Check bindings against the kernel and the device limits; fill buffer infos. */
static int check_binds(qn_cmd *c, const struct qn_kernel_info *ki, const struct qn_bind *b, uint32_t nb,
                       VkDescriptorBufferInfo *bi)
{
    const struct qn_caps *caps = &c->v->caps;
    if (nb != ki->nbind)
        return rec_fail(c, -EINVAL, "kernel '%s' has %u bindings, %u given", ki->name, ki->nbind, nb);
    for (uint32_t i = 0; i < nb; i++) {
        const qn_buf *buf = b[i].buf;
        if (!buf) return rec_fail(c, -EINVAL, "kernel '%s': binding %u has no buffer", ki->name, i);
        uint64_t range = b[i].range ? b[i].range : (b[i].off < buf->size ? buf->size - b[i].off : 0);
        if (b[i].off >= buf->size || range > buf->size - b[i].off)
            return rec_fail(c, -ERANGE, "kernel '%s': binding %u: bytes [%llu, +%llu) are outside buffer '%s' "
                            "(%llu bytes)", ki->name, i, (unsigned long long)b[i].off, (unsigned long long)range,
                            buf->name, (unsigned long long)buf->size);
        if (caps->min_storage_align && b[i].off % caps->min_storage_align)
            return rec_fail(c, -EINVAL, "kernel '%s': binding %u: offset %llu into '%s' is not a multiple of "
                            "minStorageBufferOffsetAlignment (%u)", ki->name, i, (unsigned long long)b[i].off,
                            buf->name, caps->min_storage_align);
        if (range > caps->max_storage_range)
            return rec_fail(c, -ERANGE, "kernel '%s': binding %u: %llu bytes of '%s' exceed maxStorageBufferRange "
                            "(%llu); bind the tensor in pieces", ki->name, i, (unsigned long long)range, buf->name,
                            (unsigned long long)caps->max_storage_range);
        bi[i] = (VkDescriptorBufferInfo){ buf->buf, b[i].off, range };
    }
    return 0;
}

/* QNEXT_DIAG_SKIP=PART[,PART...] (timing only, results are WRONG): does kernel `name` contain one of the parts? What
 * a stage costs inside the whole step is the step's time with and without it (docs/perf.md run 119). */
static bool diag_skip(qn_cmd *c, const char *name)
{
    static bool warned;
    if (!c->skip[0]) return false;
    if (!warned) QN_WARN("QNEXT_DIAG_SKIP=%s: those kernels are not recorded, results are WRONG (timing only)", c->skip);
    warned = true;
    char list[256], *save = NULL;
    snprintf(list, sizeof list, "%s", c->skip);
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (*t && strstr(name, t)) return true;
    return false;
}

int qn_cmd_dispatch(qn_cmd *c, const qn_pipe *p, const struct qn_bind *b, uint32_t nb, const void *push,
                    uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz)
{
    int rc;
    if (!c->recording) return rec_fail(c, -EINVAL, "qn_cmd_dispatch: not recording (call qn_cmd_begin first)");
    if (!p) return rec_fail(c, -EINVAL, "qn_cmd_dispatch: no pipeline");
    if (c->xfer_only) return rec_fail(c, -EINVAL, "qn_cmd_dispatch: a transfer-queue command buffer runs no dispatches");
    if ((rc = qn_pipe_wait(p)) < 0) return rec_fail(c, rc, "%s", qn_errmsg());
    const struct qn_kernel_info *ki = qn_pipe_info(p);
    const struct qn_caps *caps = &c->v->caps;
    if (push_size != ki->push_size || (push_size && !push))
        return rec_fail(c, -EINVAL, "kernel '%s': push constants of %u bytes given, the shader has %u (pc.h and the "
                        "shader disagree?)", ki->name, push_size, ki->push_size);
    if (gx > caps->max_wg_count[0] || gy > caps->max_wg_count[1] || gz > caps->max_wg_count[2])
        return rec_fail(c, -ERANGE, "kernel '%s': %u x %u x %u workgroups exceed the device's %u x %u x %u "
                        "(use qn_cmd_dispatch_n)", ki->name, gx, gy, gz, caps->max_wg_count[0], caps->max_wg_count[1],
                        caps->max_wg_count[2]);
    VkDescriptorBufferInfo bi[QN_MAX_BIND];
    VkWriteDescriptorSet w[QN_MAX_BIND];
    VkDescriptorSet set = VK_NULL_HANDLE;
    if ((rc = check_binds(c, ki, b, nb, bi)) < 0) return rc;
    if (!gx || !gy || !gz || diag_skip(c, ki->name)) return 0;
    bool pushd = c->v->push_desc;
    if (nb && !pushd && (rc = alloc_set(c, p->dsl, &set)) < 0) return rc;
    for (uint32_t i = 0; i < nb; i++)
        w[i] = (VkWriteDescriptorSet){ .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set,
                                       .dstBinding = i, .descriptorCount = 1,
                                       .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &bi[i] };
    if (nb && !pushd) vkUpdateDescriptorSets(c->v->dev, nb, w, 0, NULL);
    if (c->bound != p->pipeline) {
        vkCmdBindPipeline(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipeline);
        c->bound = p->pipeline;
    }
    if (nb && pushd) vkCmdPushDescriptorSetKHR(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, nb, w);
    else if (nb) vkCmdBindDescriptorSets(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    if (push_size) vkCmdPushConstants(c->cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
    if (c->per_dispatch && c->region_open) { /* region = this dispatch and the barrier after it */
        char label[48];
        snprintf(label, sizeof label, "%s %ux%u", ki->name, gx * gy, gz);
        qn_cmd_mark(c, label);
    }
    vkCmdDispatch(c->cb, gx, gy, gz);
    c->ndispatch++;
    return 0;
}

int qn_cmd_dispatch_nz(qn_cmd *c, const qn_pipe *p, const struct qn_bind *b, uint32_t nb, const void *push,
                       uint32_t push_size, uint64_t groups, uint32_t gz)
{
    uint32_t gx, gy;
    qn_vk_grid(c->v, groups, &gx, &gy);
    return qn_cmd_dispatch(c, p, b, nb, push, push_size, groups ? gx : 0, gy, gz);
}

int qn_cmd_dispatch_n(qn_cmd *c, const qn_pipe *p, const struct qn_bind *b, uint32_t nb, const void *push,
                      uint32_t push_size, uint64_t groups)
{
    return qn_cmd_dispatch_nz(c, p, b, nb, push, push_size, groups, 1);
}

/* On a transfer-only queue the shader stage and accesses do not exist: they are masked out. */
static void barrier_to(qn_cmd *c, VkPipelineStageFlags dst_stage, VkAccessFlags dst_access)
{
    VkAccessFlags shader = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                           .dstAccessMask = dst_access };
    if (c->xfer_only) {
        mb.srcAccessMask &= ~shader;
        mb.dstAccessMask &= ~shader;
        dst_stage &= ~(VkPipelineStageFlags)VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT;
    }
    vkCmdPipelineBarrier(c->cb, c->stages, dst_stage, 0, 1, &mb, 0, NULL, 0, NULL);
}

void qn_cmd_barrier(qn_cmd *c)
{
    if (!c->recording) { rec_fail(c, -EINVAL, "qn_cmd_barrier: not recording"); return; }
    barrier_to(c, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
               VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
               VK_ACCESS_TRANSFER_WRITE_BIT);
}

static int check_span(qn_cmd *c, const char *what, const qn_buf *b, uint64_t off, uint64_t n)
{
    if (!b) return rec_fail(c, -EINVAL, "%s: no buffer", what);
    if (!n || off > b->size || n > b->size - off)
        return rec_fail(c, -ERANGE, "%s: bytes [%llu, +%llu) are outside buffer '%s' (%llu bytes)", what,
                        (unsigned long long)off, (unsigned long long)n, b->name, (unsigned long long)b->size);
    return 0;
}

int qn_cmd_copy(qn_cmd *c, const qn_buf *src, uint64_t src_off, const qn_buf *dst, uint64_t dst_off, uint64_t n)
{
    int rc;
    if (!c->recording) return rec_fail(c, -EINVAL, "qn_cmd_copy: not recording");
    if ((rc = check_span(c, "copy source", src, src_off, n)) < 0 ||
        (rc = check_span(c, "copy destination", dst, dst_off, n)) < 0)
        return rc;
    if (src == dst && src_off < dst_off + n && dst_off < src_off + n)
        return rec_fail(c, -EINVAL, "copy within buffer '%s': ranges overlap", src->name);
    VkBufferCopy r = { src_off, dst_off, n };
    vkCmdCopyBuffer(c->cb, src->buf, dst->buf, 1, &r);
    return 0;
}

int qn_cmd_fill(qn_cmd *c, const qn_buf *dst, uint64_t off, uint64_t n, uint32_t word)
{
    int rc;
    if (!c->recording) return rec_fail(c, -EINVAL, "qn_cmd_fill: not recording");
    if ((rc = check_span(c, "fill", dst, off, n)) < 0) return rc;
    if (off % 4 || n % 4)
        return rec_fail(c, -EINVAL, "fill of '%s': offset %llu and size %llu must be multiples of 4", dst->name,
                        (unsigned long long)off, (unsigned long long)n);
    vkCmdFillBuffer(c->cb, dst->buf, off, n, word);
    return 0;
}

int qn_cmd_mark(qn_cmd *c, const char *label)
{
    if (!c->recording) return rec_fail(c, -EINVAL, "qn_cmd_mark: not recording");
    if (!c->qpool) return 0;
    if (!label && !c->region_open) return 0;
    if (c->nstamps == QN_CMD_MAX_STAMPS)
        return rec_fail(c, -ENOSPC, "qn_cmd_mark('%s'): more than %d timestamps in one recording", label ? label : "",
                        QN_CMD_MAX_STAMPS);
    vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, c->qpool, c->nstamps);
    snprintf(c->labels[c->nstamps], sizeof c->labels[0], "%s", label ? label : "");
    c->nstamps++;
    c->region_open = label != NULL;
    return 0;
}

int qn_cmd_end(qn_cmd *c)
{
    int rc = 0;
    if (!c->recording) return qn_fail(-EINVAL, "qn_cmd_end: not recording");
    if (c->region_open) qn_cmd_mark(c, NULL);
    barrier_to(c, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    c->recording = false;
    QN_VK_TRY(vkEndCommandBuffer(c->cb));
    if (c->err) { rc = qn_fail(c->err, "%s", c->errmsg); goto done; }
    c->recorded = true;
done:
    return rc;
}

int qn_cmd_submit(qn_cmd *c) { return qn_cmd_submit_tl(c, NULL, 0, NULL); }

#define QN_MAX_WAITS 8

static void timeline_signals(const qn_timeline *t, uint64_t value);

int qn_cmd_submit_tl(qn_cmd *c, const struct qn_tl_point *wait, uint32_t nwait, const struct qn_tl_point *signal)
{
    int rc = 0;
    if (!c->recorded) return qn_fail(-EINVAL, "qn_cmd_submit: nothing recorded (or the recording had errors)");
    if (nwait > QN_MAX_WAITS) return qn_fail(-EINVAL, "qn_cmd_submit_tl: %u waits (at most %d)", nwait, QN_MAX_WAITS);
    VkSemaphore ws[QN_MAX_WAITS], ss = VK_NULL_HANDLE;
    uint64_t wv[QN_MAX_WAITS], sv = 0;
    VkPipelineStageFlags wst[QN_MAX_WAITS];
    for (uint32_t i = 0; i < nwait; i++) {
        ws[i] = qn_timeline_vk(wait[i].tl);
        wv[i] = wait[i].value;
        wst[i] = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT;
    }
    if (signal) {
        ss = qn_timeline_vk(signal->tl);
        sv = signal->value;
    }
    if (c->pending) QN_TRY(qn_cmd_wait(c));
    QN_VK_TRY(vkResetFences(c->v->dev, 1, &c->fence));
    VkTimelineSemaphoreSubmitInfo ti = { .sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO,
                                         .waitSemaphoreValueCount = nwait, .pWaitSemaphoreValues = wv,
                                         .signalSemaphoreValueCount = signal ? 1 : 0, .pSignalSemaphoreValues = &sv };
    VkSubmitInfo si = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .pNext = nwait || signal ? &ti : NULL,
                        .waitSemaphoreCount = nwait, .pWaitSemaphores = ws, .pWaitDstStageMask = wst,
                        .commandBufferCount = 1, .pCommandBuffers = &c->cb,
                        .signalSemaphoreCount = signal ? 1 : 0, .pSignalSemaphores = &ss };
    QN_VK_TRY(vkQueueSubmit(c->queue, 1, &si, c->fence));
    c->pending = true;
    c->submit_ns = qn_now_ns();
    if (signal) timeline_signals(signal->tl, sv); /* only a submission that went in will signal */
done:
    return rc;
}

static int read_stamps(qn_cmd *c)
{
    int rc = 0;
    uint64_t t[QN_CMD_MAX_STAMPS];
    c->nregions = 0;
    if (!c->qpool || c->nstamps == 0) return 0;
    QN_VK_TRY(vkGetQueryPoolResults(c->v->dev, c->qpool, 0, c->nstamps, sizeof t, t, sizeof t[0],
                                    VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
    uint64_t mask = c->v->caps.timestamp_bits >= 64 ? UINT64_MAX : (1ull << c->v->caps.timestamp_bits) - 1;
    for (uint32_t i = 0; i + 1 < c->nstamps; i++) {
        if (!c->labels[i][0]) continue;
        uint64_t d = ((t[i + 1] & mask) - (t[i] & mask)) & mask;
        c->region_stamp[c->nregions] = i;
        c->region_ms[c->nregions] = (double)d * c->v->caps.timestamp_period * 1e-6;
        c->nregions++;
    }
done:
    return rc;
}

int qn_cmd_wait(qn_cmd *c)
{
    int rc = 0;
    if (!c->pending) return 0;
    if (c->spin_ns) { /* sleep until shortly before the last run's time, then poll (qn_cmd_create_on) */
        const uint64_t margin = 300000; /* a timed sleep's oversleep and the run-to-run spread */
        uint64_t t0 = qn_now_ns(), el = t0 - c->submit_ns;
        VkResult r = VK_NOT_READY;
        if (c->last_ns > el + margin)
            QN_VK_TRY(r = vkWaitForFences(c->v->dev, 1, &c->fence, VK_TRUE, c->last_ns - el - margin));
        if (r != VK_SUCCESS) {
            t0 = qn_now_ns();
            while ((r = vkGetFenceStatus(c->v->dev, c->fence)) == VK_NOT_READY && qn_now_ns() - t0 < c->spin_ns) {}
            if (r < 0) QN_VK_TRY(r);
        }
    }
    QN_VK_TRY(vkWaitForFences(c->v->dev, 1, &c->fence, VK_TRUE, UINT64_MAX));
    c->last_ns = qn_now_ns() - c->submit_ns;
    c->pending = false;
    QN_TRY(read_stamps(c));
done:
    return rc;
}

int qn_cmd_run(qn_cmd *c)
{
    int rc = qn_cmd_submit(c);
    return rc < 0 ? rc : qn_cmd_wait(c);
}

uint32_t qn_cmd_nregions(const qn_cmd *c) { return c->nregions; }
uint32_t qn_cmd_ndispatch(const qn_cmd *c) { return c->ndispatch; }
uint64_t qn_cmd_spin_us(const qn_cmd *c) { return c->spin_ns / 1000u; }
uint64_t qn_cmd_last_run_us(const qn_cmd *c) { return c->last_ns / 1000u; }

void qn_cmd_set_spin_default(qn_cmd *c, uint64_t us)
{
    if (c->compute && !c->spin_env) c->spin_ns = us * 1000u;
}

double qn_cmd_region(const qn_cmd *c, uint32_t i, const char **label)
{
    if (i >= c->nregions) {
        if (label) *label = "";
        return NAN;
    }
    if (label) *label = c->labels[c->region_stamp[i]];
    return c->region_ms[i];
}

VkCommandBuffer qn_cmd_vk(const qn_cmd *c) { return c->cb; }

/* ---- timeline semaphores ----------------------------------------------------------------------------- */

struct qn_timeline {
    qn_vk *v;
    VkSemaphore sem;
    char name[48];
    _Atomic uint64_t signaled;   /* the highest value a submission signals (qn_cmd_submit_tl) */
};

int qn_timeline_create(qn_vk *v, const char *name, qn_timeline **out)
{
    int rc = 0;
    *out = NULL;
    qn_timeline *t = calloc(1, sizeof *t);
    if (!t) return qn_fail(-ENOMEM, "out of memory");
    t->v = v;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "timeline");
    VkSemaphoreTypeCreateInfo ti = { .sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO,
                                     .semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE, .initialValue = 0 };
    VkSemaphoreCreateInfo si = { .sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO, .pNext = &ti };
    QN_VK_TRY(vkCreateSemaphore(v->dev, &si, NULL, &t->sem));
    *out = t;
    t = NULL;
done:
    free(t);
    return rc;
}

/* A submission signals t to value: remember the highest for qn_timeline_destroy (a bookkeeping field; timelines are
 * const to the submit's callers). */
static void timeline_signals(const qn_timeline *t, uint64_t value)
{
    _Atomic uint64_t *hi = &((qn_timeline *)t)->signaled;
    uint64_t cur = atomic_load(hi);
    while (cur < value && !atomic_compare_exchange_weak(hi, &cur, value)) {}
}

void qn_timeline_destroy(qn_timeline **pt)
{
    qn_timeline *t = pt ? *pt : NULL;
    if (!t) return;
    /* Every signal submitted must have landed before the destroy, on the semaphore itself: lavapipe (Mesa 22.3)
     * signals a batch's fence before its queue thread has finished broadcasting the timeline's new value, so a
     * destroy right after the fence wait freed the condition variable under that thread (ThreadSanitizer in
     * test_stream's host-tier cases; CI saw a SIGSEGV there). */
    uint64_t hi = atomic_load(&t->signaled);
    if (hi && qn_timeline_wait(t, hi, 10ll * 1000000000ll) < 0)
        QN_WARN("destroying timeline '%s': %s", t->name, qn_errmsg());
    vkDestroySemaphore(t->v->dev, t->sem, NULL);
    free(t);
    *pt = NULL;
}

VkSemaphore qn_timeline_vk(const qn_timeline *t) { return t->sem; }

int qn_timeline_value(const qn_timeline *t, uint64_t *value)
{
    int rc = 0;
    QN_VK_TRY(vkGetSemaphoreCounterValue(t->v->dev, t->sem, value));
done:
    return rc;
}

int qn_timeline_wait(const qn_timeline *t, uint64_t value, int64_t timeout_ns)
{
    int rc = 0;
    VkSemaphoreWaitInfo wi = { .sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO, .semaphoreCount = 1,
                               .pSemaphores = &t->sem, .pValues = &value };
    VkResult r = vkWaitSemaphores(t->v->dev, &wi, timeout_ns < 0 ? UINT64_MAX : (uint64_t)timeout_ns);
    if (r == VK_TIMEOUT)
        return qn_fail(-ETIMEDOUT, "timeline '%s' did not reach %llu in %.3f s", t->name, (unsigned long long)value,
                       (double)timeout_ns * 1e-9);
    QN_VK_TRY(r);
done:
    return rc;
}
