/* vk_internal.h — the qn_vk context as seen by the Vulkan core files (device, mem, pipeline, cmd).
 * Nothing outside runtime/{device,caps,quirks,mem,pipeline,cmd}.c includes this. */
#ifndef QN_VK_INTERNAL_H
#define QN_VK_INTERNAL_H

#include <stdatomic.h>

#include "vk.h"

struct qn_pipe {
    struct qn_pipe *next;          /* other specializations of the same kernel */
    enum qn_kernel kernel;         /* actual kernel (after fallback) */
    uint32_t spec[QN_MAX_SPEC];    /* all values, defaults filled in */
    VkPipeline pipeline;
    VkPipelineLayout layout;       /* shared per kernel */
    VkDescriptorSetLayout dsl;     /* shared per kernel */
    qn_vk *v;
    _Atomic int pending;           /* 1 while a pool thread compiles it (pipeline_pool.c) */
    VkResult res;                  /* its vkCreateComputePipelines result (< 0: pipeline is VK_NULL_HANDLE) */
};

/* One pipeline to compile: the create info and everything it points to (pipeline.c fills it, qn_pipe_compile runs
 * it on the caller's thread or a pool thread). */
struct qn_pipe_job {
    struct qn_pipe_job *next;
    qn_vk *v;
    qn_pipe *p;
    VkSpecializationMapEntry me[QN_MAX_SPEC];
    VkSpecializationInfo si;
    VkPipelineCreationFeedback fb, fbs;
    VkPipelineCreationFeedbackCreateInfo fci;
    VkComputePipelineCreateInfo ci;
};
#define QN_PIPE_MAX_THREADS 8

struct qn_kernel_slot {            /* per enum qn_kernel */
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkShaderModule module;
    struct qn_pipe *pipes;
};

struct qn_vk {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice pd;
    VkDevice dev;
    VkQueue queue;
    VkQueue xqueue;                /* QN_QUEUE_TRANSFER: a transfer-only family's queue, else = queue */
    uint32_t xfamily;              /* its family */
    VkQueue xqueues[QN_MAX_XQUEUES];   /* the transfer queues (QNEXT_TRANSFER_QUEUES); xqueues[0] = xqueue */
    uint32_t n_xqueues;
    bool xsep;                     /* xqueue is a separate family (buffers are CONCURRENT over both) */
    struct qn_caps caps;
    bool validation, skip_calls, subgroups, uma_zero_copy, push_desc;

    /* memory accounting (mem.c) */
    uint64_t dev_used, dev_budget, host_used, host_budget;
    uint32_t nbuffers;

    /* pipelines (pipeline.c) */
    VkPipelineCache pcache;
    char pcache_path[1024];
    size_t pcache_disk;            /* bytes of the cache file as loaded or last saved (0: none) */
    _Atomic uint32_t pipes_made, pipes_hit; /* pipelines created; of them, found in the cache (creation feedback) */
    _Atomic uint64_t pipes_ns;     /* time spent in vkCreateComputePipelines, summed over threads */
    struct qn_pipe_pool *ppool;    /* compile threads between qn_pipe_async_begin and _end (pipeline_pool.c) */
    struct qn_kernel_slot kern[QN_K_COUNT];

    /* one-shot transfers for qn_buf_write/read/fill (mem.c) */
    qn_cmd *xfer;
};

/* caps.c */
bool qn_caps_has_ext(VkPhysicalDevice pd, const char *name);
/* pipeline.c */
int qn_pipe_cache_open(qn_vk *v, int enabled, const char *dir);
void qn_pipe_cache_close(qn_vk *v);
void qn_pipe_destroy_all(qn_vk *v);
void qn_pipe_compile(struct qn_pipe_job *j); /* vkCreateComputePipelines for j->p, counted in the stats */
/* pipeline_pool.c */
bool qn_pipe_submit(qn_vk *v, struct qn_pipe_job *j); /* false: no pool, compile here (j stays the caller's) */
int qn_pipe_wait(const qn_pipe *p);                   /* until p is compiled; its creation error, if any */
/* mem.c */
void qn_mem_init(qn_vk *v);
/* cmd.c */
VkSemaphore qn_timeline_vk(const qn_timeline *t);

#endif
