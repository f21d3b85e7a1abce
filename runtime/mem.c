/* mem.c — budgeted buffer allocation (device-local, upload staging, readback, UMA zero-copy, system memory) and
 * synchronous host <-> buffer transfers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_log.h"
#include "vk_internal.h"

#define QN_STAGING_CHUNK (64ull << 20)
#define MIB(x) ((double)(x) / (1024.0 * 1024.0))

static bool heap_is_device(const qn_vk *v, uint32_t heap)
{
    return (v->caps.heaps[heap].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0;
}

void qn_mem_init(qn_vk *v)
{
    v->dev_budget = v->host_budget = 0;
    for (uint32_t i = 0; i < v->caps.nheaps; i++) {
        if (heap_is_device(v, i)) v->dev_budget += v->caps.heaps[i].budget;
        else v->host_budget += v->caps.heaps[i].budget;
    }
}

void qn_mem_stats(const qn_vk *v, struct qn_mem_stats *s)
{
    s->device_used = v->dev_used;
    s->device_budget = v->dev_budget;
    s->host_used = v->host_used;
    s->host_budget = v->host_budget;
    s->nbuffers = v->nbuffers;
}

int qn_mem_set_budget(qn_vk *v, uint64_t device_bytes)
{
    uint64_t max = 0;
    for (uint32_t i = 0; i < v->caps.nheaps; i++)
        if (heap_is_device(v, i)) max += v->caps.heaps[i].budget;
    if (device_bytes > max)
        QN_WARN("memory budget %.0f MiB is more than the device's %.0f MiB; using %.0f MiB", MIB(device_bytes),
                MIB(max), MIB(max));
    v->dev_budget = device_bytes < max ? device_bytes : max;
    return 0;
}

/* Best memory type among `bits` having all of `need`: prefer `want`, then avoid `avoid`. -1 if none. */
static int pick_type(const qn_vk *v, uint32_t bits, VkMemoryPropertyFlags need, VkMemoryPropertyFlags want,
                     VkMemoryPropertyFlags avoid)
{
    int best = -1, best_score = -1;
    for (uint32_t i = 0; i < v->caps.ntypes; i++) {
        VkMemoryPropertyFlags f = v->caps.types[i].flags;
        if (!(bits & (1u << i)) || (f & need) != need) continue;
        int score = ((f & want) == want ? 2 : 0) + ((f & avoid) ? 0 : 1);
        if (score > best_score) { best = (int)i; best_score = score; }
    }
    return best;
}

static int choose_type(const qn_vk *v, enum qn_mem kind, uint32_t bits)
{
    const VkMemoryPropertyFlags DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
                                HC = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, CA = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    int t = -1;
    switch (kind) {
    case QN_MEM_DEVICE:
        if (v->caps.uma && v->uma_zero_copy) t = pick_type(v, bits, DL | HV | HC, 0, 0);
        if (t < 0) t = pick_type(v, bits, DL, 0, HV);
        if (t < 0) t = pick_type(v, bits, 0, 0, 0);
        break;
    case QN_MEM_UPLOAD: t = pick_type(v, bits, HV | HC, 0, v->caps.uma ? 0 : DL); break;
    case QN_MEM_READBACK: t = pick_type(v, bits, HV | HC, CA, v->caps.uma ? 0 : DL); break;
    case QN_MEM_DEVICE_MAPPED: t = pick_type(v, bits, DL | HV | HC, 0, 0); break;
    case QN_MEM_HOST: {
        const char *e = getenv("QNEXT_HOST_MEM");
        bool cached = e && !strcmp(e, "cached");
        t = pick_type(v, bits, HV | HC, cached ? CA : 0, cached ? DL : DL | CA);
        break;
    }
    case QN_MEM_IMPORTED: /* host-cached first: a driver cannot remap the caller's pages write-combined */
        t = pick_type(v, bits, 0, HV | HC | CA, DL);
        break;
    }
    return t;
}

static const char *kind_name(enum qn_mem k)
{
    return k == QN_MEM_DEVICE ? "device" : k == QN_MEM_UPLOAD ? "upload" : k == QN_MEM_READBACK ? "readback"
           : k == QN_MEM_HOST ? "host (system memory)" : k == QN_MEM_IMPORTED ? "imported host memory"
           : "device-local host-visible";
}

static int check_budget(qn_vk *v, const char *name, uint64_t size, bool device)
{
    uint64_t used = device ? v->dev_used : v->host_used, budget = device ? v->dev_budget : v->host_budget;
    if (used + size <= budget) return 0;
    return qn_fail(-ENOMEM, "buffer '%s' (%.1f MiB) does not fit the %s memory budget: %.1f of %.1f MiB in use "
                   "(lower the cache sizes or pick a board profile with a larger budget)", name, MIB(size),
                   device ? "device-local" : "host-visible", MIB(used), MIB(budget));
}

/* A storage buffer's create info (STORAGE | TRANSFER_SRC | TRANSFER_DST); fams holds the queue families. */
static VkBufferCreateInfo storage_buffer_info(const qn_vk *v, uint64_t size, uint32_t fams[2])
{
    VkBufferCreateInfo bi = { .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE };
    fams[0] = v->caps.compute_family;
    fams[1] = v->xfamily;
    if (v->xsep) { /* copies on the transfer-only queue, reads on the compute queue: no ownership transfers */
        bi.sharingMode = VK_SHARING_MODE_CONCURRENT;
        bi.queueFamilyIndexCount = 2;
        bi.pQueueFamilyIndices = fams;
    }
    return bi;
}

int qn_buf_create(qn_vk *v, enum qn_mem kind, uint64_t size, const char *name, qn_buf **out)
{
    int rc = 0;
    *out = NULL;
    name = name ? name : "(unnamed)";
    if (size == 0) return qn_fail(-EINVAL, "buffer '%s': size 0", name);
    if (v->caps.max_alloc && size > v->caps.max_alloc)
        return qn_fail(-ENOMEM, "buffer '%s' (%.1f MiB) exceeds maxMemoryAllocationSize (%.1f MiB)", name, MIB(size),
                       MIB(v->caps.max_alloc));
    qn_buf *b = calloc(1, sizeof *b);
    if (!b) return qn_fail(-ENOMEM, "out of memory");
    snprintf(b->name, sizeof b->name, "%s", name);
    b->size = size;
    b->kind = kind;
    uint32_t fams[2];
    VkBufferCreateInfo bi = storage_buffer_info(v, size, fams);
    QN_VK_TRY(vkCreateBuffer(v->dev, &bi, NULL, &b->buf));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(v->dev, b->buf, &req);
    int t = choose_type(v, kind, req.memoryTypeBits);
    if (t < 0) {
        rc = qn_fail(QN_E_UNSUPPORTED, "buffer '%s': no %s memory type fits", name, kind_name(kind));
        goto done;
    }
    b->type = (uint32_t)t;
    b->heap = v->caps.types[t].heap;
    bool device = heap_is_device(v, b->heap);
    QN_TRY(check_budget(v, name, req.size, device));
    VkMemoryAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                .memoryTypeIndex = b->type };
    VkResult r = vkAllocateMemory(v->dev, &ai, NULL, &b->mem);
    if (r < 0) {
        rc = qn_fail(r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? -ENOMEM : QN_E_VULKAN,
                     "allocating buffer '%s' (%.1f MiB, %s): %s", name, MIB(req.size), kind_name(kind),
                     qn_vk_result_name(r));
        goto done;
    }
    QN_VK_TRY(vkBindBufferMemory(v->dev, b->buf, b->mem, 0));
    if (v->caps.types[t].flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
        QN_VK_TRY(vkMapMemory(v->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map));
    b->charged = req.size;
    if (device) v->dev_used += req.size;
    else v->host_used += req.size;
    v->nbuffers++;
    *out = b;
done:
    if (rc < 0) {
        if (b->mem) vkFreeMemory(v->dev, b->mem, NULL);
        if (b->buf) vkDestroyBuffer(v->dev, b->buf, NULL);
        free(b);
    }
    return rc;
}

void qn_buf_destroy(qn_vk *v, qn_buf **pb)
{
    qn_buf *b = pb ? *pb : NULL;
    if (!b) return;
    if (heap_is_device(v, b->heap)) v->dev_used -= b->charged;
    else v->host_used -= b->charged;
    v->nbuffers--;
    if (b->map && b->kind != QN_MEM_IMPORTED) vkUnmapMemory(v->dev, b->mem);
    vkDestroyBuffer(v->dev, b->buf, NULL);
    vkFreeMemory(v->dev, b->mem, NULL);
    free(b);
    *pb = NULL;
}

uint64_t qn_buf_import_align(const qn_vk *v)
{
    if (!v->caps.external_memory_host) return 0;
    VkPhysicalDeviceExternalMemoryHostPropertiesEXT hp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT };
    VkPhysicalDeviceProperties2 p2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &hp };
    vkGetPhysicalDeviceProperties2(v->pd, &p2);
    return hp.minImportedHostPointerAlignment;
}

uint32_t qn_buf_import_types(qn_vk *v, void *ptr, bool foreign)
{
    VkMemoryHostPointerPropertiesEXT hpp = { .sType = VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT };
    VkExternalMemoryHandleTypeFlagBits ht = foreign ? VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_MAPPED_FOREIGN_MEMORY_BIT_EXT
                                                    : VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT;
    if (!v->caps.external_memory_host || vkGetMemoryHostPointerPropertiesEXT(v->dev, ht, ptr, &hpp) < 0) return 0;
    return hpp.memoryTypeBits;
}

/* One try: the memory of type t imported at ptr, bound to b->buf. A VkResult. */
static VkResult import_try(qn_vk *v, qn_buf *b, void *ptr, VkExternalMemoryHandleTypeFlagBits ht, int t, bool dedicated)
{
    VkMemoryDedicatedAllocateInfo da = { .sType = VK_STRUCTURE_TYPE_MEMORY_DEDICATED_ALLOCATE_INFO, .buffer = b->buf };
    VkImportMemoryHostPointerInfoEXT imp = { .sType = VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT,
                                             .pNext = dedicated ? &da : NULL, .handleType = ht, .pHostPointer = ptr };
    VkMemoryAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = &imp,
                                .allocationSize = b->size, .memoryTypeIndex = (uint32_t)t };
    VkResult r = vkAllocateMemory(v->dev, &ai, NULL, &b->mem);
    if (r < 0) {
        b->mem = VK_NULL_HANDLE;
        return r;
    }
    b->type = (uint32_t)t;
    b->heap = v->caps.types[t].heap;
    return vkBindBufferMemory(v->dev, b->buf, b->mem, 0);
}

/* The buffer and memory of an import (b->buf, b->mem, b->type); see qn_buf_import_host_ex. Automatic type: the
 * preferred one (host-visible coherent, not device-local) first, then every other the pointer allows. */
static int import_bind(qn_vk *v, qn_buf *b, void *ptr, const struct qn_import_opts *o)
{
    VkExternalMemoryHandleTypeFlagBits ht = o->foreign ? VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_MAPPED_FOREIGN_MEMORY_BIT_EXT
                                                       : VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT;
    uint32_t bits = qn_buf_import_types(v, ptr, o->foreign);
    if (!bits)
        return qn_fail(QN_E_UNSUPPORTED, "importing '%s': vkGetMemoryHostPointerPropertiesEXT refused the pointer %p "
                       "(no memory type)", b->name, ptr);
    VkExternalMemoryBufferCreateInfo eb = { .sType = VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO,
                                            .handleTypes = (VkExternalMemoryHandleTypeFlags)ht };
    uint32_t fams[2];
    VkBufferCreateInfo bi = storage_buffer_info(v, b->size, fams);
    bi.pNext = &eb;
    if (o->exclusive) bi.sharingMode = VK_SHARING_MODE_EXCLUSIVE, bi.queueFamilyIndexCount = 0;
    int rc = 0;
    QN_VK_TRY(vkCreateBuffer(v->dev, &bi, NULL, &b->buf));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(v->dev, b->buf, &req);
    uint32_t ok = req.memoryTypeBits & bits & (o->mem_type >= 0 ? 1u << o->mem_type : ~0u);
    int first = choose_type(v, QN_MEM_IMPORTED, ok);
    char tried[160] = "";
    VkResult r = VK_ERROR_FEATURE_NOT_PRESENT;
    for (int k = -1, t; r < 0 && k < (int)v->caps.ntypes; k++) {
        if ((t = k < 0 ? first : k) < 0 || (k >= 0 && (k == first || !(ok & (1u << k))))) continue;
        r = import_try(v, b, ptr, ht, t, o->dedicated);
        size_t n = strlen(tried);
        snprintf(tried + n, sizeof tried - n, "%s%d: %s", n ? ", " : "", t, qn_vk_result_name(r));
    }
    if (r < 0 || req.size > b->size)
        rc = qn_fail(r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? -ENOMEM : QN_E_UNSUPPORTED,
                     "importing '%s' (%.1f MiB at %p): memory types 0x%x for the pointer, 0x%x for the buffer (needs %llu "
                     "bytes); vkAllocateMemory per type: %s", b->name, MIB(b->size), ptr, bits, req.memoryTypeBits,
                     (unsigned long long)req.size, tried[0] ? tried : "none tried");
done:
    return rc;
}

int qn_buf_import_host_ex(qn_vk *v, void *ptr, uint64_t size, const struct qn_import_opts *o, const char *name,
                          qn_buf **out)
{
    *out = NULL;
    name = name ? name : "(unnamed)";
    uint64_t al = qn_buf_import_align(v);
    if (!al) return qn_fail(QN_E_UNSUPPORTED, "importing '%s': the device lacks VK_EXT_external_memory_host", name);
    if (!size || size % al || (uintptr_t)ptr % al)
        return qn_fail(-EINVAL, "importing '%s': pointer %p and size %llu must be nonzero multiples of the import "
                       "alignment %llu", name, ptr, (unsigned long long)size, (unsigned long long)al);
    qn_buf *b = calloc(1, sizeof *b);
    if (!b) return qn_fail(-ENOMEM, "out of memory");
    snprintf(b->name, sizeof b->name, "%s", name);
    b->size = size;
    b->kind = QN_MEM_IMPORTED;
    int rc = import_bind(v, b, ptr, o);
    if (rc < 0) {
        if (b->mem) vkFreeMemory(v->dev, b->mem, NULL);
        if (b->buf) vkDestroyBuffer(v->dev, b->buf, NULL);
        free(b);
        return rc;
    }
    b->map = ptr;
    v->nbuffers++;
    *out = b;
    return 0;
}

int qn_buf_import_host(qn_vk *v, void *ptr, uint64_t size, bool foreign, const char *name, qn_buf **out)
{
    struct qn_import_opts o = { .foreign = foreign, .mem_type = -1 };
    return qn_buf_import_host_ex(v, ptr, size, &o, name, out);
}

static int check_range(const qn_buf *b, uint64_t off, uint64_t n, const char *what)
{
    if (off > b->size || n > b->size - off)
        return qn_fail(-ERANGE, "%s buffer '%s': bytes [%llu, +%llu) are outside its %llu bytes", what, b->name,
                       (unsigned long long)off, (unsigned long long)n, (unsigned long long)b->size);
    return 0;
}

/* Copy between host memory and an unmapped buffer through a staging buffer, in chunks. */
static int staged(qn_vk *v, qn_buf *b, uint64_t off, void *host, uint64_t n, bool to_device)
{
    int rc = 0;
    qn_buf *st = NULL;
    uint64_t chunk = n < QN_STAGING_CHUNK ? n : QN_STAGING_CHUNK;
    QN_TRY(qn_buf_create(v, to_device ? QN_MEM_UPLOAD : QN_MEM_READBACK, chunk, "staging", &st));
    for (uint64_t done_n = 0; done_n < n; done_n += chunk) {
        uint64_t m = n - done_n < chunk ? n - done_n : chunk;
        if (to_device) memcpy(st->map, (char *)host + done_n, m);
        QN_TRY(qn_cmd_begin(v->xfer));
        if (to_device) qn_cmd_copy(v->xfer, st, 0, b, off + done_n, m);
        else qn_cmd_copy(v->xfer, b, off + done_n, st, 0, m);
        QN_TRY(qn_cmd_end(v->xfer));
        QN_TRY(qn_cmd_run(v->xfer));
        if (!to_device) memcpy((char *)host + done_n, st->map, m);
    }
done:
    qn_buf_destroy(v, &st);
    return rc;
}

int qn_buf_write(qn_vk *v, qn_buf *b, uint64_t off, const void *src, uint64_t n)
{
    int rc = check_range(b, off, n, "writing");
    if (rc < 0 || n == 0) return rc;
    if (b->map) {
        memcpy((char *)b->map + off, src, n);
        return 0;
    }
    return staged(v, b, off, (void *)src, n, true);
}

int qn_buf_read(qn_vk *v, const qn_buf *b, uint64_t off, void *dst, uint64_t n)
{
    int rc = check_range(b, off, n, "reading");
    if (rc < 0 || n == 0) return rc;
    if (b->map) {
        memcpy(dst, (const char *)b->map + off, n);
        return 0;
    }
    return staged(v, (qn_buf *)b, off, dst, n, false);
}

int qn_buf_fill(qn_vk *v, qn_buf *b, uint64_t off, uint64_t n, uint32_t word)
{
    int rc = check_range(b, off, n, "filling");
    if (rc < 0 || n == 0) return rc;
    QN_TRY(qn_cmd_begin(v->xfer));
    qn_cmd_fill(v->xfer, b, off, n, word);
    QN_TRY(qn_cmd_end(v->xfer));
    QN_TRY(qn_cmd_run(v->xfer));
done:
    return rc;
}
