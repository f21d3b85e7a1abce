/* quirks.c — known driver behaviour as a table: (vendor, driver, version range, name) -> QN_QUIRK_* flags.
 *
 * Each entry says why it exists. Code asks `caps->quirks & QN_QUIRK_X` instead of testing vendors, so a
 * new driver bug is one line here. Driver versions are the raw VkPhysicalDeviceProperties::driverVersion
 * (vendor-specific encoding); 0 means "any". */
#include <string.h>
#include <strings.h>

#include "vk_internal.h"

struct qn_quirk_entry {
    uint32_t vendor_id;     /* 0: any */
    VkDriverId driver_id;   /* 0: any */
    uint32_t min_driver, max_driver; /* 0: unbounded */
    const char *name_sub;   /* case-insensitive substring of deviceName, NULL: any */
    uint32_t flags;
};

#define VENDOR_NVIDIA 0x10deu
#define VENDOR_INTEL 0x8086u
#define VENDOR_AMD 0x1002u

static const struct qn_quirk_entry qn_quirk_table[] = {
    /* lavapipe (Mesa llvmpipe): compiles shaders at first dispatch, does not enforce its advertised heap
     * size or maxStorageBufferRange (only the validation layer notices), and workgroup barriers run as
     * coroutine switches on the CPU (verified: research/toolchain.md sections 3-5). */
    { 0, VK_DRIVER_ID_MESA_LLVMPIPE, 0, 0, NULL,
      QN_QUIRK_LAZY_PIPELINES | QN_QUIRK_IGNORES_HEAP_SIZE | QN_QUIRK_IGNORES_STORAGE_RANGE | QN_QUIRK_SLOW_BARRIERS },
    /* Intel (ANV and the Windows driver): the compiler picks SIMD8/16/32 per shader, so gl_SubgroupSize
     * can differ from the reported subgroupSize unless a required size is set (subgroup size control). */
    { VENDOR_INTEL, 0, 0, 0, NULL, QN_QUIRK_VARYING_SUBGROUP },
    /* NVIDIA without resizable BAR: DEVICE_LOCAL|HOST_VISIBLE memory is a 256 MiB window; never place
     * weights or large staging there. (mem.c only maps device memory on UMA devices.) */
    { VENDOR_NVIDIA, VK_DRIVER_ID_NVIDIA_PROPRIETARY, 0, 0, NULL, QN_QUIRK_SMALL_HOST_VISIBLE_VRAM },
    /* AMD (RADV / AMDVLK) without resizable BAR: the same 256 MiB host-visible VRAM window. */
    { VENDOR_AMD, 0, 0, 0, NULL, QN_QUIRK_SMALL_HOST_VISIBLE_VRAM },
};

static bool entry_matches(const struct qn_quirk_entry *e, const struct qn_caps *c)
{
    if (e->vendor_id && e->vendor_id != c->vendor_id) return false;
    if (e->driver_id && e->driver_id != c->driver_id) return false;
    if (e->min_driver && c->driver_version < e->min_driver) return false;
    if (e->max_driver && c->driver_version > e->max_driver) return false;
    if (e->name_sub) {
        size_t n = strlen(e->name_sub);
        bool found = false;
        for (const char *h = c->name; *h && !found; h++) found = !strncasecmp(h, e->name_sub, n);
        if (!found) return false;
    }
    return true;
}

uint32_t qn_quirks_match(const struct qn_caps *c)
{
    uint32_t f = 0;
    for (size_t i = 0; i < sizeof qn_quirk_table / sizeof qn_quirk_table[0]; i++)
        if (entry_matches(&qn_quirk_table[i], c)) f |= qn_quirk_table[i].flags;
    return f;
}

static const struct { const char *name, *why; } qn_quirk_text[QN_QUIRK_COUNT_] = {
    { "lazy_pipelines", "shaders compile at the first dispatch: warm up before timing" },
    { "ignores_heap_size", "allocations beyond the heap size succeed: qnext enforces its own budget" },
    { "ignores_storage_range", "bindings beyond maxStorageBufferRange work here but not on GPUs" },
    { "slow_barriers", "workgroup barriers are expensive: prefer subgroup reductions" },
    { "varying_subgroup", "the compiler may choose another subgroup size than subgroupSize" },
    { "small_host_visible_vram", "host-visible VRAM is a small BAR window: stage through host memory" },
};

static int bit_index(uint32_t bit)
{
    for (int i = 0; i < QN_QUIRK_COUNT_; i++)
        if (bit == (1u << i)) return i;
    return -1;
}

const char *qn_quirk_name(uint32_t bit)
{
    int i = bit_index(bit);
    return i < 0 ? "unknown" : qn_quirk_text[i].name;
}

const char *qn_quirk_why(uint32_t bit)
{
    int i = bit_index(bit);
    return i < 0 ? "" : qn_quirk_text[i].why;
}
