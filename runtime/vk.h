/* vk.h — the Vulkan core of qnext: device, capabilities, quirks, buffers, pipelines, command recording.
 *
 * Everything above this layer (forward.c, experts.c, tests, tools) talks to the GPU only through the
 * functions below; descriptor sets, layouts, pools and pipeline objects never leave runtime/cmd.c and
 * runtime/pipeline.c. A dispatch is one line:
 *
 *     qn_pipe *mv;                                   // once, at setup: kernel + specialization constants
 *     QN_CHECK(qn_pipe_get(v, QN_K_MATVEC_BF16, (uint32_t[]){ 128, 2 }, 2, &mv));
 *     qn_pc_matvec pc = { .rows = R, .cols = C };    // push constants: shaders/common/pc.h
 *     qn_cmd_dispatch_n(cmd, mv, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc,
 *                       (R + 1) / 2);                // number of workgroups, spread over x/y as needed
 *     qn_cmd_barrier(cmd);                           // before the next dispatch reads y
 *
 * Threading: one qn_vk and its qn_cmd objects are used from one thread at a time.
 * Errors: every int function returns 0 or a negative code set with qn_fail() (message via qn_errmsg()). */
#ifndef QN_VK_H
#define QN_VK_H

#include <stdbool.h>
#include <stdint.h>
#include <volk.h>

#include "qn_err.h"
#include "qn_kernels.h"
#include "pc.h"

/* ---- errors -------------------------------------------------------------------------------------- */

/* VkResult as its enum name ("VK_ERROR_OUT_OF_DEVICE_MEMORY"). */
const char *qn_vk_result_name(VkResult r);
/* Set the error message "<what>: <VkResult name> (file:line)" and return QN_E_VULKAN
 * (QN_E_NODEV for VK_ERROR_INCOMPATIBLE_DRIVER / INITIALIZATION_FAILED, -ENOMEM for out-of-memory). */
int qn_vk_fail(VkResult r, const char *what, const char *file, int line);

/* In a function with `int rc` and a `done:` cleanup label: run a Vulkan call, on failure record it and jump. */
#define QN_VK_TRY(call)                                                          \
    do {                                                                         \
        VkResult qn_vkr_ = (call);                                               \
        if (qn_vkr_ < 0) { rc = qn_vk_fail(qn_vkr_, #call, __FILE__, __LINE__); goto done; } \
    } while (0)
/* Same for qnext calls returning int. */
#define QN_TRY(call)                                                             \
    do {                                                                         \
        int qn_r_ = (call);                                                      \
        if (qn_r_ < 0) { rc = qn_r_; goto done; }                                \
    } while (0)

/* ---- capabilities (caps.c) ----------------------------------------------------------------------- */

#define QN_MAX_HEAPS 16
#define QN_MAX_MEMTYPES 32

struct qn_caps {
    uint32_t index;                 /* position in vkEnumeratePhysicalDevices */
    char name[256];
    uint32_t vendor_id, device_id;
    VkPhysicalDeviceType type;
    uint32_t api_version, driver_version;
    VkDriverId driver_id;
    char driver_name[256], driver_info[256];
    uint8_t device_uuid[VK_UUID_SIZE], driver_uuid[VK_UUID_SIZE], cache_uuid[VK_UUID_SIZE];

    /* arithmetic and storage types */
    bool fp16, bf16, int8, int16, int64, fp64;
    bool storage16, storage8, push16, push8;
    bool int_dot, int_dot_accel;    /* shaderIntegerDotProduct; 4x8-bit packed signed dot accelerated (the int8-dot
                                       kernels' OpSDot, QNEXT_IDOT) */
    bool int_dot_mixed_accel;       /* ... and the 4x8-bit packed mixed-signedness dot accelerated */
    bool coopmat;                   /* VK_KHR_cooperative_matrix or VK_NV_cooperative_matrix present */
    bool coopmat_nv;                /* VK_NV_cooperative_matrix usable by qnext's coopmat kernels: the extension,
                                       its cooperativeMatrix feature and an f16 x f16 + f32 -> f32 subgroup shape
                                       M 16 K 16, N 16 or 8 (QN_FEAT_COOPMAT_NV; enabled at device creation) */
    uint32_t coopmat_nv_n;          /* that shape's N: 16 when listed, else 8 (the kernels' spec constant CN) */
    uint32_t n_cm_shapes;           /* every subgroup-scope shape VK_NV_cooperative_matrix lists (qnext devices) */
    struct qn_cm_shape { uint8_t m, n, k, a, b, c, d; } cm_shapes[32];   /* sizes, VkComponentTypeNV of A B C D */
    bool float_atomic_add;          /* VK_EXT_shader_atomic_float shaderBufferFloat32AtomicAdd */
    bool int64_atomics, bda, memory_model, timeline;

    /* subgroups */
    uint32_t subgroup_size, subgroup_min, subgroup_max;
    VkSubgroupFeatureFlags subgroup_ops;
    VkShaderStageFlags subgroup_stages;
    bool subgroup_size_control, full_subgroups, subgroup_ext_types;

    /* compute limits */
    uint32_t max_shared, max_wg_invocations, max_wg_size[3], max_wg_count[3], max_push;
    uint64_t max_storage_range, max_alloc, max_buffer;
    uint32_t min_storage_align, max_alloc_count;

    /* memory */
    uint32_t nheaps, ntypes;
    struct { uint64_t size, budget, usage; VkMemoryHeapFlags flags; } heaps[QN_MAX_HEAPS];
    struct { VkMemoryPropertyFlags flags; uint32_t heap; } types[QN_MAX_MEMTYPES];
    bool mem_budget;                /* VK_EXT_memory_budget: heaps[].budget/usage are live numbers */
    bool uma;                       /* integrated/CPU device whose device-local memory is host-visible */
    uint64_t device_local_bytes;    /* sum of DEVICE_LOCAL heaps */

    /* queues and timing */
    uint32_t compute_family;        /* family used for everything */
    bool transfer_queue;            /* a transfer-only family exists (DMA engine) */
    uint32_t transfer_family;
    bool async_compute;             /* a compute family without graphics besides compute_family (qnext devices shows it;
                                       slot copies there lost on the H100, run 35: docs/perf-runs-07-45.md) */
    uint32_t async_family;
    bool timestamps;                /* compute family has timestampValidBits > 0 */
    uint32_t timestamp_bits;
    float timestamp_period;         /* ns per tick */

    /* extensions qnext uses */
    bool push_descriptor, external_memory_host;

    uint32_t features;              /* QN_FEAT_* bits usable by kernels (qn_kernel.h) */
    uint32_t quirks;                /* QN_QUIRK_* bits (quirks.c) */
};

struct qn_board_device;
/* The fields board profiles match on (boards/board.h); d->name points into c. */
void qn_caps_board_device(const struct qn_caps *c, struct qn_board_device *d);
/* Fill `c` for one physical device (instance-level functions must be loaded). */
int qn_caps_query(VkPhysicalDevice pd, uint32_t index, struct qn_caps *c);
const char *qn_caps_type_name(VkPhysicalDeviceType t); /* "discrete", "integrated", "virtual", "cpu", "other" */
const char *qn_cm_type_name(uint32_t t);   /* a VkComponentTypeNV: "f16", "f32", "s8", ... ("?" past u64) */
void qn_cm_shape_str(const struct qn_cm_shape *sh, char *buf, size_t n);   /* "16x16x16 f16*f16+f32->f32" */
/* "ARITH SHUFFLE ..." into buf */
void qn_caps_subgroup_ops_str(VkSubgroupFeatureFlags ops, char *buf, size_t n);
/* names of QN_FEAT_* bits set in `feats`, space-separated, into buf */
void qn_caps_feat_str(uint32_t feats, char *buf, size_t n);

/* ---- quirks (quirks.c): known driver behaviour, as data ------------------------------------------- */

enum qn_quirk {
    QN_QUIRK_LAZY_PIPELINES = 1u << 0,        /* compiles at first dispatch: warm up before timing */
    QN_QUIRK_IGNORES_HEAP_SIZE = 1u << 1,     /* allocations past the heap size succeed: enforce our budget */
    QN_QUIRK_IGNORES_STORAGE_RANGE = 1u << 2, /* binds past maxStorageBufferRange work: rely on validation */
    QN_QUIRK_SLOW_BARRIERS = 1u << 3,         /* workgroup barriers are costly: prefer subgroup reductions */
    QN_QUIRK_VARYING_SUBGROUP = 1u << 4,      /* real subgroup size may differ from subgroupSize */
    QN_QUIRK_SMALL_HOST_VISIBLE_VRAM = 1u << 5, /* DEVICE_LOCAL|HOST_VISIBLE is a small BAR window */
    QN_QUIRK_COUNT_ = 6
};
/* OR of the flags of every table entry matching the device */
uint32_t qn_quirks_match(const struct qn_caps *c);
const char *qn_quirk_name(uint32_t bit);
const char *qn_quirk_why(uint32_t bit);

/* ---- device (device.c) --------------------------------------------------------------------------- */

typedef struct qn_vk qn_vk;

struct qn_vk_params {
    const char *device;          /* "2" (index) or a name substring; NULL = best: discrete > integrated >
                                    virtual > CPU */
    int validation;              /* 1 on, 0 off, -1 (default) from env QNEXT_VALIDATION=1 */
    bool validation_skip_calls;  /* planted-error tests: invalid calls are skipped by the layer */
    int pipeline_cache;          /* 1 on, 0 off, -1 (default) on unless env QNEXT_PIPELINE_CACHE=0 */
    const char *cache_dir;       /* NULL: $QNEXT_CACHE_DIR, else $XDG_CACHE_HOME/qnext, else ~/.cache/qnext */
    int subgroups;               /* 1 use subgroup kernels where supported, 0 force *_nosg fallbacks,
                                    -1 (default) from env: QNEXT_NO_SUBGROUP=1 forces the fallbacks */
    int uma_zero_copy;           /* 1 map device-local memory on UMA devices, 0 never, -1 (default) on
                                    unless env QNEXT_UMA=0 */
    int push_descriptors;        /* 1 use VK_KHR_push_descriptor where present, 0 descriptor pools,
                                    -1 (default) on unless env QNEXT_PUSH_DESCRIPTORS=0 */
};
void qn_vk_default_params(struct qn_vk_params *p);

/* Load Vulkan, create the instance (+ validation when asked), choose a device, create it.
 * QN_E_NODEV: no loader / no device / bad --device selection. QN_E_SKIP: validation asked for but the
 * layer is not installed (a loud message says so; tests exit 77 on it). */
int qn_vk_open(qn_vk **out, const struct qn_vk_params *p);
/* Wait idle, save the pipeline cache, destroy everything; sets *v = NULL. Safe on NULL. */
void qn_vk_close(qn_vk **v);

const struct qn_caps *qn_vk_caps(const qn_vk *v);
bool qn_vk_validating(const qn_vk *v);
bool qn_vk_push_descriptors(const qn_vk *v); /* dispatches push their descriptors (else: pooled sets) */
/* Validation ERROR + WARNING messages (VALIDATION/PERFORMANCE types) seen by this process so far,
 * including those raised while closing. Tests fail when this is non-zero. */
uint32_t qn_vk_validation_count(void);
/* The decode MoE chain (common/moe_chain.glsl) is in use: from now on sync validation's hazards at its consumer
 * kernels' dispatches are expected (device.c) and counted here instead of as validation messages. */
void qn_vk_expect_chain_hazards(void);
uint32_t qn_vk_chain_hazard_count(void);

/* Probe every device without opening one (for 'qnext devices'): *out is malloc'd (free() it). */
int qn_vk_enumerate(struct qn_caps **out, uint32_t *n);

/* Spread `groups` workgroups over x and y within maxComputeWorkGroupCount (shaders use qn_group_id()). */
void qn_vk_grid(const qn_vk *v, uint64_t groups, uint32_t *gx, uint32_t *gy);

/* raw handles (tests that plant errors; new core code) */
VkDevice qn_vk_device(const qn_vk *v);
VkPhysicalDevice qn_vk_physical(const qn_vk *v);

/* ---- memory (mem.c) ------------------------------------------------------------------------------ */

enum qn_mem {
    QN_MEM_DEVICE = 0, /* device-local; on UMA devices also host-visible and mapped (zero-copy) */
    QN_MEM_UPLOAD,     /* host-visible, coherent, mapped: staging for uploads */
    QN_MEM_READBACK,   /* host-visible, coherent, cached where possible, mapped: results to the host */
    QN_MEM_DEVICE_MAPPED, /* device-local AND host-visible, mapped (resizable BAR, UMA): host writes land in device
                             memory; QN_E_UNSUPPORTED when no such memory type exists (callers fall back) */
    QN_MEM_HOST,       /* system memory the GPU reads over PCIe: host-visible, coherent, mapped, not device-local
                          where such a type exists (pinned by the driver; the host expert tier); uncached
                          (write-combined) first, QNEXT_HOST_MEM=cached prefers a host-cached type */
    QN_MEM_IMPORTED,   /* caller's host memory imported by qn_buf_import_host (VK_EXT_external_memory_host): never
                          allocated, mapped or charged to a budget by qn_buf; the caller keeps it alive */
};

typedef struct qn_buf {
    VkBuffer buf;
    VkDeviceMemory mem;
    uint64_t size;       /* bytes */
    uint64_t charged;    /* bytes of memory charged to the budget (>= size) */
    void *map;           /* host pointer when mapped (UPLOAD, READBACK, DEVICE on UMA), else NULL */
    enum qn_mem kind;
    uint32_t type, heap; /* memory type and heap index */
    char name[64];
} qn_buf;

/* Allocate a storage buffer (usage STORAGE | TRANSFER_SRC | TRANSFER_DST). Refused with -ENOMEM and a
 * message naming the buffer, size, and budget when it would exceed the budget of its memory class. */
int qn_buf_create(qn_vk *v, enum qn_mem kind, uint64_t size, const char *name, qn_buf **out);
void qn_buf_destroy(qn_vk *v, qn_buf **b); /* safe on NULL; sets *b = NULL */
/* Import `size` bytes of host memory at `ptr` as a storage buffer (VK_EXT_external_memory_host; e.g. an mmap
 * of a model file: the page cache itself, read by the GPU over PCIe). ptr and size must be multiples of
 * qn_buf_import_align(); `foreign` picks the HOST_MAPPED_FOREIGN_MEMORY handle type instead of HOST_ALLOCATION.
 * QN_E_UNSUPPORTED without the extension; a driver refusal fails naming the step (pointer properties, no memory
 * type, allocation) and its VkResult. b->map = ptr. The caller must keep the memory mapped until the buffer is
 * destroyed and every GPU use has finished. */
int qn_buf_import_host(qn_vk *v, void *ptr, uint64_t size, bool foreign, const char *name, qn_buf **out);
uint64_t qn_buf_import_align(const qn_vk *v); /* minImportedHostPointerAlignment; 0 without the extension */
/* The probe's knobs (test_host_read --matrix): mem_type -1 tries the preferred type, then every other the pointer
 * allows (qn_buf_import_host does); exclusive: VK_SHARING_MODE_EXCLUSIVE even with a transfer-only family;
 * dedicated: VkMemoryDedicatedAllocateInfo. */
struct qn_import_opts { bool foreign, exclusive, dedicated; int mem_type; };
int qn_buf_import_host_ex(qn_vk *v, void *ptr, uint64_t size, const struct qn_import_opts *o, const char *name,
                          qn_buf **out);
uint32_t qn_buf_import_types(qn_vk *v, void *ptr, bool foreign);   /* memory types the driver allows; 0: refused */
/* Synchronous host <-> buffer copies: memcpy when mapped, else through a staging buffer + GPU copy. */
int qn_buf_write(qn_vk *v, qn_buf *b, uint64_t off, const void *src, uint64_t n);
int qn_buf_read(qn_vk *v, const qn_buf *b, uint64_t off, void *dst, uint64_t n);
/* Synchronous fill with a 32-bit pattern (off, n multiples of 4; e.g. a NaN poison 0x7fc00000+k). */
int qn_buf_fill(qn_vk *v, qn_buf *b, uint64_t off, uint64_t n, uint32_t word);

struct qn_mem_stats {
    uint64_t device_used, device_budget; /* allocations in DEVICE_LOCAL heaps */
    uint64_t host_used, host_budget;     /* allocations in other heaps */
    uint32_t nbuffers;
};
void qn_mem_stats(const qn_vk *v, struct qn_mem_stats *s);
/* Lower (or raise, up to what the device reports) the budget for DEVICE_LOCAL allocations. */
int qn_mem_set_budget(qn_vk *v, uint64_t device_bytes);

/* ---- pipelines (pipeline.c) ---------------------------------------------------------------------- */

typedef struct qn_pipe qn_pipe;

/* The pipeline of kernel `k` with specialization constants spec[0..nspec-1] (ids 0..nspec-1; ids not
 * given take the shader's defaults; id 0 is the workgroup size x). Created on first use, then cached in
 * `v` (same arguments -> same object; owned by v, freed by qn_vk_close). When the device lacks a feature
 * the kernel needs, its *_nosg fallback is used if there is one, else QN_E_UNSUPPORTED. */
int qn_pipe_get(qn_vk *v, enum qn_kernel k, const uint32_t *spec, uint32_t nspec, qn_pipe **out);
uint32_t qn_pipe_spec(const qn_pipe *p, uint32_t id); /* effective value of specialization constant `id` */
enum qn_kernel qn_pipe_kernel(const qn_pipe *p);      /* the kernel actually used (maybe a fallback) */
const struct qn_kernel_info *qn_pipe_info(const qn_pipe *p);
VkPipeline qn_pipe_vk(const qn_pipe *p); /* raw handle (planted-error tests) */

/* Pipelines created by this qn_vk so far, how many of them the driver found in the pipeline cache (counted where
 * Vulkan 1.3 creation feedback says so, else 0), the time spent creating them (summed over the compile threads),
 * and the cache file's bytes as loaded or last saved (0: empty, or the cache is off). */
struct qn_pipe_stats {
    uint32_t made, hits;
    double ms;
    size_t cache_bytes;
    bool cache_on;
};
void qn_pipe_stats(const qn_vk *v, struct qn_pipe_stats *s);
/* Between these two, qn_pipe_get returns pipelines that compile on min(cores, 8) threads (env QNEXT_PIPE_THREADS;
 * 0 or 1: none) while the caller goes on; a dispatch or qn_pipe_vk waits for its pipeline. Kernels that need
 * VK_NV_cooperative_matrix still compile at once (their callers fall back when that fails). _end waits for all and
 * returns the first creation error. qn_vk_close ends it too. */
int qn_pipe_async_begin(qn_vk *v);
int qn_pipe_async_end(qn_vk *v);
/* Write the pipeline cache file now if the cache grew since it was loaded or last saved (temp file + rename:
 * a concurrent or killed process never leaves a torn file). qn_vk_close calls it too. */
void qn_pipe_cache_save(qn_vk *v);

/* ---- command recording (cmd.c) ------------------------------------------------------------------- */

typedef struct qn_cmd qn_cmd;

/* One storage-buffer binding: bytes [off, off + range) of buf; range 0 = to the end of the buffer.
 * off must be a multiple of minStorageBufferOffsetAlignment (16 on most devices), range at most
 * maxStorageBufferRange: larger tensors are bound in pieces. */
struct qn_bind {
    const qn_buf *buf;
    uint64_t off, range;
};
#define QN_BIND(b) ((struct qn_bind){ (b), 0, 0 })
#define QN_BIND_RANGE(b, o, r) ((struct qn_bind){ (b), (o), (r) })
/* QN_BINDS(a, b, c) expands to "array, count" for qn_cmd_dispatch */
#define QN_BINDS(...) ((const struct qn_bind[]){ __VA_ARGS__ }), \
    (uint32_t)(sizeof((const struct qn_bind[]){ __VA_ARGS__ }) / sizeof(struct qn_bind))

int qn_cmd_create(qn_vk *v, qn_cmd **out);
void qn_cmd_destroy(qn_cmd **c); /* waits for it if in flight; safe on NULL */

/* Start (re)recording; waits for a previous submit and drops its descriptor sets and timestamps. */
int qn_cmd_begin(qn_cmd *c);
/* Record a dispatch of pipeline p with bindings b[0..nb-1] (nb must equal the kernel's binding count)
 * and push constants (push_size must equal the kernel's push block size; NULL/0 when it has none).
 * Descriptors are recorded into the command buffer (VK_KHR_push_descriptor) or allocated from this
 * recording's pools at record time, so a recording stays valid for many submits either way. */
int qn_cmd_dispatch(qn_cmd *c, const qn_pipe *p, const struct qn_bind *b, uint32_t nb,
                    const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz);
/* Same with `groups` workgroups spread over x/y by qn_vk_grid (the shader must use qn_group_id()). */
int qn_cmd_dispatch_n(qn_cmd *c, const qn_pipe *p, const struct qn_bind *b, uint32_t nb,
                      const void *push, uint32_t push_size, uint64_t groups);
/* Same, repeated gz times in z (e.g. one z per token or head; the shader reads gl_WorkGroupID.z). */
int qn_cmd_dispatch_nz(qn_cmd *c, const qn_pipe *p, const struct qn_bind *b, uint32_t nb,
                       const void *push, uint32_t push_size, uint64_t groups, uint32_t gz);
/* Full memory barrier between compute/transfer work recorded before and after it. Call it between a
 * dispatch/copy that writes a buffer and one that reads or writes it (sync validation checks this). */
void qn_cmd_barrier(qn_cmd *c);
int qn_cmd_copy(qn_cmd *c, const qn_buf *src, uint64_t src_off, const qn_buf *dst, uint64_t dst_off, uint64_t n);
int qn_cmd_fill(qn_cmd *c, const qn_buf *dst, uint64_t off, uint64_t n, uint32_t word);
/* GPU timestamps: close the open region (if any) and open one named `label` (NULL: only close).
 * Region times are read by qn_cmd_wait. No-op (times NaN) on queues without timestamps. */
int qn_cmd_mark(qn_cmd *c, const char *label);
/* Finish recording (closes an open region and makes results visible to host reads). Returns the first
 * error of any record call since qn_cmd_begin, so callers may check only here. */
int qn_cmd_end(qn_cmd *c);
/* Submit the recording (may be called any number of times per recording; waits for the previous one). */
int qn_cmd_submit(qn_cmd *c);
int qn_cmd_wait(qn_cmd *c);   /* wait for the last submit and read its timestamps */
int qn_cmd_run(qn_cmd *c);    /* submit + wait */
/* Timestamp regions of the last completed submit: count, then label and milliseconds of region i. */
uint32_t qn_cmd_nregions(const qn_cmd *c);
uint32_t qn_cmd_ndispatch(const qn_cmd *c); /* dispatches recorded since qn_cmd_begin */
uint64_t qn_cmd_spin_us(const qn_cmd *c);   /* how long a wait polls the fence before blocking (QNEXT_WAIT_SPIN_US) */
void qn_cmd_set_spin_default(qn_cmd *c, uint64_t us); /* that poll's cap where QNEXT_WAIT_SPIN_US is unset (compute) */
uint64_t qn_cmd_last_run_us(const qn_cmd *c); /* submit to signal of the last waited submission (0: none): a wait
                                               * that polls first sleeps until 0.3 ms before the last run's time */
double qn_cmd_region(const qn_cmd *c, uint32_t i, const char **label);
VkCommandBuffer qn_cmd_vk(const qn_cmd *c); /* raw handle (planted-error tests) */

/* ---- queues and timeline semaphores (cmd.c; docs/streaming.md) ------------------------------------- */

/* QN_QUEUE_TRANSFER is a queue of a transfer-only family (the DMA engines: copies run beside compute) when
 * the device has one and env QNEXT_TRANSFER_QUEUE is not "0"; otherwise it is the compute queue itself
 * (lavapipe, most integrated GPUs). With a separate family every buffer is created VK_SHARING_MODE_CONCURRENT
 * over both families, so no ownership transfers are needed. */
enum qn_queue { QN_QUEUE_COMPUTE = 0, QN_QUEUE_TRANSFER = 1 };
bool qn_vk_transfer_queue(const qn_vk *v);   /* true: a separate transfer-only queue family is in use */
/* A command buffer for queue q (qn_cmd_create = QN_QUEUE_COMPUTE). On a transfer-only queue only copies,
 * fills and barriers may be recorded (no dispatches, no timestamps). */
int qn_cmd_create_on(qn_vk *v, enum qn_queue q, qn_cmd **out);
/* Several transfer queues of the transfer-only family (env QNEXT_TRANSFER_QUEUES=N at qn_vk_open, default 1,
 * capped by the family's queue count and QN_MAX_XQUEUES; 1 without such a family): each may run on its own copy
 * engine. qn_cmd_create_xq makes a command buffer for transfer queue `index` mod qn_vk_transfer_queues(v)
 * (index 0 = QN_QUEUE_TRANSFER). */
#define QN_MAX_XQUEUES 8
uint32_t qn_vk_transfer_queues(const qn_vk *v);
int qn_cmd_create_xq(qn_vk *v, uint32_t index, qn_cmd **out);

/* A timeline semaphore (Vulkan 1.2 core): a 64-bit counter that submissions signal and that submissions
 * and the host wait on. Values only grow; it starts at 0. */
typedef struct qn_timeline qn_timeline;
int qn_timeline_create(qn_vk *v, const char *name, qn_timeline **out);
void qn_timeline_destroy(qn_timeline **t);     /* waits for nothing: the caller makes sure no submit uses it */
int qn_timeline_value(const qn_timeline *t, uint64_t *value);   /* the counter now (no wait) */
/* Block until the counter reaches `value` or timeout_ns passes (<0: no limit): 0 or -ETIMEDOUT. */
int qn_timeline_wait(const qn_timeline *t, uint64_t value, int64_t timeout_ns);
struct qn_tl_point {
    const qn_timeline *tl;
    uint64_t value;
};
/* Submit the recording like qn_cmd_submit, first waiting (on the GPU, all commands) until every
 * wait[i].tl >= wait[i].value and signalling signal->tl = signal->value when it completes (signal may be
 * NULL). Values signalled on one timeline must increase in submission order. */
int qn_cmd_submit_tl(qn_cmd *c, const struct qn_tl_point *wait, uint32_t nwait, const struct qn_tl_point *signal);

#endif
