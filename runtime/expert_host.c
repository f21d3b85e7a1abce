/* expert_host.c — checks and the report of the host-memory expert tier (expert_host.h). */
#include "expert_host.h"

#include <errno.h>
#include <stdio.h>

#include "qn_err.h"

#define GIB(x) ((double)(x) / 1073741824.0)

int qn_eh_check(const struct qn_model_params *p)
{
    if (p->experts_host && p->expert_cache)
        return qn_fail(-EINVAL, "--experts host keeps every routed expert in system memory; --expert-cache (a VRAM "
                       "cache in front of it) does not combine with it yet");
    return 0;
}

void qn_eh_describe(const qn_model *m, char *buf, size_t n)
{
    if (n) buf[0] = 0;
    if (!m->experts_host || !m->pools[0]) return;
    const struct qn_caps *c = qn_vk_caps(m->v);
    struct qn_mem_stats ms;
    qn_mem_stats(m->v, &ms);
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < m->n_pools; i++) bytes += m->pools[i]->size;
    for (uint32_t i = 0; i < m->d_n_pools; i++) bytes += m->dpools[i] ? m->dpools[i]->size : 0;
    const qn_buf *b = m->pools[0];
    unsigned f = (unsigned)c->types[b->type].flags;
    snprintf(buf, n, "host tier: %u routed experts (%.2f GiB) in %u+%u system-memory pools (memory type %u: %s%s%s, "
             "heap %u), read by the GPU over PCIe; VRAM in use %.2f GiB (dense weights %.2f GiB), host-visible "
             "memory in use %.2f GiB", m->n_slots, GIB(bytes), m->n_pools, m->d_n_pools, b->type,
             f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT ? "device-local " : "",
             f & VK_MEMORY_PROPERTY_HOST_CACHED_BIT ? "host-cached" : "uncached",
             f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT ? " coherent" : "", b->heap, GIB(ms.device_used),
             GIB(m->dense_bytes), GIB(ms.host_used));
}
