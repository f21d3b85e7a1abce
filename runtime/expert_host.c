/* expert_host.c — the host-memory expert tier (expert_host.h): option checks, the report, and the VRAM cache in
 * front of the host tier (pools, host slabs, slot table, admission between calls on the transfer queue). */
#include "expert_host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expert_usage.h"
#include "expert_map.h"
#include "experts.h"
#include "model_stream.h"
#include "qn_env.h"
#include "qn_err.h"
#include "qn_log.h"

#define GIB(x) ((double)(x) / 1073741824.0)
#define MIB(x) ((double)(x) / 1048576.0)
#define NBATCH 4            /* copy batches in flight at most (a fifth waits for the oldest) */
#define HOST_POOL (QN_MODEL_MAX_POOLS - 1)   /* the binding that holds a layer's host slab */

struct batch {
    qn_cmd *cmd;
    uint64_t value;         /* transfer timeline value it signals */
    int32_t *slots;         /* VRAM slots it fills */
    int n;
    bool busy;
};

struct qn_eh {
    uint32_t L, E, K, spp, n_vram;
    uint64_t sb, db;        /* slot bytes: gate|up (or the whole f32 slot), GGUF down parts (0: none) */
    qn_buf **host, **dhost; /* [L] host slabs of E slots */
    qn_buf *dpools[HOST_POOL];
    qn_exp_cache *cache;    /* the VRAM slots' owners (NULL: no VRAM slots) */
    qn_timeline *tx;
    uint64_t tx_next;       /* last value a batch signals */
    struct batch b[NBATCH];
    int next;
    uint32_t admit_t, admit_max, start;
    uint32_t stage_pool, gather_g;   /* gather: the staging pool's index (0: no gather), workgroups per id */
    uint32_t n_stage;       /* staging slots: K, or L K (QNEXT_HOST_GATHER=2: per layer, admissions from VRAM), or
                               E (QNEXT_HOST_MMAP: prefill gathers a layer's union into staging slot e) */
    bool per_layer;         /* QNEXT_HOST_GATHER=2's per-layer staging (n_stage = L K) */
    uint32_t n_hot;         /* pinned hot set (--expert-hot N --expert-hot-from FILE): VRAM slots [0, n_hot) */
    bool mapped;            /* QNEXT_HOST_MMAP=1: the host memory is the model files' page cache (expert_map.h) */
    struct qn_emap *map;    /* (mapped) the imports, after qn_eh_map */
    qn_buf *flags;          /* (mapped) uint32 [E]: the prefill gather's union of a layer's routed experts */
    bool gathered;          /* a gather may have redirected table entries to staging slots since the last write */
    uint64_t seq;
    bool changed;           /* cache state changed since the table was last derived */
    struct qn_eh_stats st;
};

int qn_eh_check(const struct qn_model_params *p)
{
    if (p->experts_host && p->expert_trace)
        return qn_fail(-EINVAL, "--experts host keeps every routed expert in system memory; --expert-trace belongs to "
                       "streaming from the model file and does not combine with it");
    if (p->experts_host && (p->expert_hot || p->expert_hot_from) && !p->expert_cache)
        return qn_fail(-EINVAL, "--experts host: %s pins experts in the VRAM cache in front of the host tier; give it "
                       "one with --expert-cache SIZE (top-k + the hot set's slots at least)",
                       p->expert_hot ? "--expert-hot" : "--expert-hot-from");
    if (p->experts_host && p->prefetch)
        QN_WARN("--experts host: --prefetch %d has nothing to read ahead (every expert is in memory); ignored",
                p->prefetch);
    return 0;
}

void qn_eh_describe(const qn_model *m, char *buf, size_t n)
{
    if (n) buf[0] = 0;
    const struct qn_eh *h = m->host_tier;
    if (h && h->map) {
        struct qn_mem_stats ms;
        qn_mem_stats(m->v, &ms);
        snprintf(buf, n, "host tier on the page cache (QNEXT_HOST_MMAP): %u routed experts read from %.2f GiB of the "
                 "model files' mapping, imported (no copy in system memory); %u VRAM cache slots, %u gather staging "
                 "slots; VRAM in use %.2f GiB (dense weights %.2f GiB)", h->L * h->E,
                 (double)qn_emap_bytes(h->map) / 1073741824.0, h->n_vram, h->n_stage, GIB(ms.device_used),
                 GIB(m->dense_bytes));
        return;
    }
    const qn_buf *b = h ? h->host[0] : m->pools[0];
    if (!m->experts_host || !b) return;
    const struct qn_caps *c = qn_vk_caps(m->v);
    struct qn_mem_stats ms;
    qn_mem_stats(m->v, &ms);
    uint64_t bytes = 0, vram = 0;
    uint32_t np = h ? h->L : m->n_pools, nd = h ? (h->db ? h->L : 0) : m->d_n_pools;
    for (uint32_t i = 0; i < np; i++) bytes += h ? h->host[i]->size : m->pools[i]->size;
    for (uint32_t i = 0; i < nd; i++) bytes += h ? h->dhost[i]->size : m->dpools[i] ? m->dpools[i]->size : 0;
    for (uint32_t i = 0; h && i < m->n_pools; i++) vram += m->pools[i]->size + (m->dpools[i] ? m->dpools[i]->size : 0);
    unsigned f = (unsigned)c->types[b->type].flags;
    char cache[120] = "";
    if (h)
        snprintf(cache, sizeof cache, "; a VRAM cache of %u slots (%.2f GiB) in front of it", h->n_vram, GIB(vram));
    snprintf(buf, n, "host tier: %u routed experts (%.2f GiB) in %u+%u system-memory pools (memory type %u: %s%s%s, "
             "heap %u), read by the GPU over PCIe%s; VRAM in use %.2f GiB (dense weights %.2f GiB), host-visible "
             "memory in use %.2f GiB", m->c.num_layers * m->c.num_experts, GIB(bytes), np, nd, b->type,
             f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT ? "device-local " : "",
             f & VK_MEMORY_PROPERTY_HOST_CACHED_BIT ? "host-cached" : "uncached",
             f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT ? " coherent" : "", b->heap, cache, GIB(ms.device_used),
             GIB(m->dense_bytes), GIB(ms.host_used));
}

/* ---- the load's fill -------------------------------------------------------------------------------- */

static struct { qn_buf *b; void *map; } *g_fill;   /* the mappings hidden during a staged fill (load time only) */
static uint32_t g_nfill;

static void fill_hide(qn_buf *b)
{
    if (!b || !b->map || b->kind != QN_MEM_HOST) return;
    g_fill[g_nfill].b = b;
    g_fill[g_nfill++].map = b->map;
    b->map = NULL;
}

void qn_eh_fill_begin(qn_model *m)
{
    const char *e = getenv("QNEXT_HOST_FILL");
    const struct qn_eh *h = m->host_tier;
    if (!m->experts_host || (e && !strcmp(e, "direct")) || g_fill) return;
    uint32_t n = h ? 2 * h->L : 2 * QN_MODEL_MAX_POOLS;
    if (!(g_fill = calloc(n, sizeof *g_fill))) return;   /* out of memory: the direct fill */
    g_nfill = 0;
    for (uint32_t i = 0; h && i < h->L; i++) {
        fill_hide(h->host[i]);
        fill_hide(h->dhost[i]);
    }
    for (uint32_t i = 0; !h && i < QN_MODEL_MAX_POOLS; i++) {
        fill_hide(m->pools[i]);
        fill_hide(m->dpools[i]);
    }
}

void qn_eh_fill_end(qn_model *m)
{
    for (uint32_t i = 0; i < g_nfill; i++) g_fill[i].b->map = g_fill[i].map;
    free(g_fill);
    g_fill = NULL;
    g_nfill = 0;
    (void)m;
}

/* ---- allocation ---------------------------------------------------------------------------------- */

/* Numeric knobs (qn_env.h: a malformed or out-of-range value warns and gives the default). */
static uint32_t env_u32(const char *name, uint32_t def, uint32_t hi)
{
    return (uint32_t)qn_env_u64(name, def, 0, hi);
}

/* Slots per pool for both sets (one number: host slot 7 * spp + e lands on binding 7 for both); gather: the decode
 * gather's staging pool takes one of the 7 VRAM pool bindings. */
static int plan(const qn_model *m, const struct qn_model_params *p, uint32_t gather, uint32_t *spp, uint32_t *nv)
{
    const qn_config *c = &m->c;
    uint64_t sb = m->slot_bytes, db = m->d_slot_bytes, cap = qn_model_pool_cap(m), per = cap / sb;
    uint64_t E = (uint64_t)c->num_experts, all = (uint64_t)c->num_layers * E;
    if (db && cap / db < per) per = cap / db;
    if (per > (1u << 26)) per = 1u << 26;   /* slot numbers 8 * spp stay int32 */
    if (per < E)
        return qn_fail(QN_E_UNSUPPORTED, "--experts host with --expert-cache: one layer's %llu experts (%.1f MiB) must "
                       "fit one pool binding, at most %.1f MiB on '%s'", (unsigned long long)E,
                       MIB(E * (sb > db ? sb : db)), MIB(cap), qn_vk_caps(m->v)->name);
    uint64_t n = p->expert_cache / (sb + db);
    uint64_t pools = HOST_POOL - (gather ? 1u : 0u);   /* the gather's staging pool */
    if (n > pools * per) n = pools * per;
    if (n > all) n = all;
    if (n && n < (uint64_t)c->top_k)
        return qn_fail(-ENOSPC, "--expert-cache %.2f MiB holds %llu VRAM slots of %.2f MiB in front of the host tier; "
                       "at least top-k = %d are needed (%.2f MiB), or less than one slot for none",
                       MIB(p->expert_cache), (unsigned long long)n, MIB(sb + db), c->top_k,
                       MIB((double)c->top_k * (double)(sb + db)));
    *spp = (uint32_t)per;
    *nv = (uint32_t)n;
    return 0;
}

static int alloc_pools(qn_model *m, struct qn_eh *h)
{
    int rc = 0;
    m->n_pools = m->d_n_pools = (h->n_vram + h->spp - 1) / h->spp;
    if (h->gather_g) {   /* K staging slots of the decode gather: a pool of their own after the cache's */
        h->stage_pool = m->n_pools;
        rc = qn_buf_create(m->v, QN_MEM_DEVICE, (uint64_t)h->n_stage * h->sb, "gather staging", &m->pools[h->stage_pool]);
        if (!rc && h->db) rc = qn_buf_create(m->v, QN_MEM_DEVICE, (uint64_t)h->n_stage * h->db, "gather staging (down)",
                                             &h->dpools[h->stage_pool]);
        m->dpools[h->stage_pool] = h->dpools[h->stage_pool];
        m->n_pools = m->d_n_pools = h->stage_pool + 1;
    }
    uint32_t nc = (h->n_vram + h->spp - 1) / h->spp;   /* cache pools */
    for (uint32_t i = 0; !rc && i < nc; i++) {
        uint64_t ns = i + 1 < nc ? h->spp : h->n_vram - i * h->spp;
        char name[64];
        snprintf(name, sizeof name, "expert cache %u/%u", i + 1, nc);
        rc = qn_buf_create(m->v, QN_MEM_DEVICE, ns * h->sb, name, &m->pools[i]);
        if (!rc && h->db) rc = qn_buf_create(m->v, QN_MEM_DEVICE, ns * h->db, "expert cache (down)", &h->dpools[i]);
        m->dpools[i] = h->dpools[i];
    }
    if (!rc && h->mapped)
        rc = qn_buf_create(m->v, QN_MEM_DEVICE, sizeof(uint32_t) * h->E, "gather union", &h->flags);
    enum qn_mem hk = QN_MEM_HOST;
    for (uint32_t l = 0; !rc && !h->mapped && l < h->L; l++) {
        rc = qn_mst_pool_create(m->v, &hk, (uint64_t)h->E * h->sb, "host experts", &h->host[l]);
        if (!rc && h->db) rc = qn_mst_pool_create(m->v, &hk, (uint64_t)h->E * h->db, "host experts (down)", &h->dhost[l]);
    }
    return rc;
}

static int alloc_table(qn_model *m, struct qn_eh *h)
{
    size_t nt = (size_t)h->L * h->E;
    if (!(m->table = malloc(sizeof *m->table * nt))) return qn_fail(-ENOMEM, "out of memory");
    for (size_t i = 0; i < nt; i++) m->table[i] = (int32_t)(HOST_POOL * h->spp + i % h->E);
    /* mapped (BAR / UMA) where it can be: rows are rewritten between calls */
    int rc = qn_buf_create(m->v, QN_MEM_DEVICE_MAPPED, sizeof *m->table * nt, "slot table", &m->slot_table);
    if (rc) rc = qn_buf_create(m->v, QN_MEM_DEVICE, sizeof *m->table * nt, "slot table", &m->slot_table);
    return rc ? rc : qn_buf_write(m->v, m->slot_table, 0, m->table, sizeof *m->table * nt);
}

static int alloc_cache(qn_model *m, struct qn_eh *h, const struct qn_model_params *p)
{
    struct qn_eu_cache_opts o;   /* --expert-policy; --expert-hot N --expert-hot-from FILE (expert_usage.h) */
    int rc = h->n_vram ? qn_eu_cache_opts(p, (int)h->L, (int)h->E, &o) : 0;
    if (rc || !h->n_vram) return rc;
    if (o.n_hot && h->n_vram < (uint32_t)o.n_hot + h->K)
        rc = qn_fail(-ENOSPC, "--experts host --expert-cache %.2f MiB holds %u VRAM slots; the pinned hot set of %d "
                     "experts (--expert-hot) needs top-k %u more beside it: at least %u slots (%.2f MiB)",
                     MIB(p->expert_cache), h->n_vram, o.n_hot, h->K, o.n_hot + h->K,
                     MIB((double)(o.n_hot + h->K) * (double)(h->sb + h->db)));
    struct qn_exp_params ep = { .n_layers = (int)h->L, .n_experts = (int)h->E, .top_k = (int)h->K,
                                .expert_bytes = h->sb + h->db, .n_slots = (int)h->n_vram, .policy = o.policy,
                                .hot = o.hot, .n_hot = o.n_hot };
    h->n_hot = (uint32_t)o.n_hot;
    if (!rc) rc = qn_exp_create(&h->cache, &ep);
    free(o.hot);
    if (!rc) rc = qn_timeline_create(m->v, "host tier copies", &h->tx);
    for (int i = 0; !rc && i < NBATCH; i++) {
        /* copies from per-layer staging run on the compute queue before the next call (which waits for them) */
        rc = qn_cmd_create_on(m->v, h->per_layer ? QN_QUEUE_COMPUTE : QN_QUEUE_TRANSFER, &h->b[i].cmd);
        if (!rc && !(h->b[i].slots = malloc(sizeof(int32_t) * h->n_vram))) rc = qn_fail(-ENOMEM, "out of memory");
    }
    return rc;
}

int qn_eh_alloc(qn_model *m, const struct qn_model_params *p)
{
    uint32_t spp = 0, nv = 0, gather = env_u32("QNEXT_HOST_GATHER", 1, 2);   /* read once, here */
    bool mapped = p->experts_host && env_u32("QNEXT_HOST_MMAP", 0, 1);
    if (mapped && gather != 1) {   /* the expert kernels cannot read the files' layout: every call gathers */
        QN_INFO("QNEXT_HOST_MMAP: the gather copies every routed expert out of the page cache (QNEXT_HOST_GATHER=1)");
        gather = 1;
    }
    if (!p->experts_host || (!p->expert_cache && !gather)) return 0;        /* step 1: the loader's host pools */
    int rc = plan(m, p, gather, &spp, &nv);
    if (rc) return rc;
    struct qn_eh *h = calloc(1, sizeof *h);
    if (!h) return qn_fail(-ENOMEM, "out of memory");
    m->host_tier = h;
    h->L = (uint32_t)m->c.num_layers;
    h->E = (uint32_t)m->c.num_experts;
    h->K = (uint32_t)m->c.top_k;
    h->spp = spp;
    h->n_vram = nv;
    h->sb = m->slot_bytes;
    h->db = m->d_slot_bytes;
    h->admit_t = env_u32("QNEXT_HOST_ADMIT_T", 4, UINT32_MAX);
    h->admit_max = env_u32("QNEXT_HOST_ADMIT", 64, UINT32_MAX);   /* 0: no cap */
    h->gather_g = gather ? env_u32("QNEXT_HOST_GATHER_G", 64, 65535) : 0;
    if (gather && !h->gather_g) h->gather_g = 64;   /* 0 workgroups per id: the default */
    /* QNEXT_HOST_GATHER=2: a layer's K staging slots of its own (they still hold the token's gathered experts after
     * the call), admissions copied from them VRAM -> VRAM on the compute queue after 1-token calls */
    h->per_layer = gather == 2 && spp >= h->L * h->K;
    h->n_stage = h->per_layer ? h->L * h->K : h->K;
    if (h->per_layer) h->admit_t = 1;
    h->mapped = mapped;
    if (mapped && h->E > h->n_stage) h->n_stage = h->E;   /* prefill: a layer's union into staging slot e */
    h->host = calloc(h->L, sizeof *h->host);
    h->dhost = calloc(h->L, sizeof *h->dhost);
    if (!h->host || !h->dhost) return qn_fail(-ENOMEM, "out of memory");
    m->slots_per_pool = m->d_slots_per_pool = spp;
    m->n_slots = (HOST_POOL + 1) * spp;   /* the kernels' slot-number range */
    rc = alloc_pools(m, h);
    if (!rc) rc = alloc_table(m, h);
    if (!rc) rc = alloc_cache(m, h, p);
    if (!rc)
        QN_INFO("host tier: %u VRAM cache slots of %.2f MiB (%u pools of %u slots) in front of %u experts in system "
                "memory; admissions after calls of <= %u tokens%s%s", nv, MIB(h->sb + h->db), m->n_pools, spp,
                h->L * h->E, h->admit_t, h->admit_max ? " (capped per call: QNEXT_HOST_ADMIT)" : "",
                h->gather_g ? "; decode gathers host experts into VRAM staging (QNEXT_HOST_GATHER)" : "");
    return rc;
}

void qn_eh_close(qn_model *m)
{
    struct qn_eh *h = m->host_tier;
    if (!h) return;
    for (int i = 0; i < NBATCH; i++) {
        qn_cmd_destroy(&h->b[i].cmd);   /* waits for its copies */
        free(h->b[i].slots);
    }
    qn_timeline_destroy(&h->tx);
    qn_exp_destroy(&h->cache);
    qn_emap_close(&h->map, m->v);
    qn_buf_destroy(m->v, &h->flags);
    for (uint32_t l = 0; l < h->L; l++) {
        if (h->host) qn_buf_destroy(m->v, &h->host[l]);
        if (h->dhost) qn_buf_destroy(m->v, &h->dhost[l]);
    }
    for (int i = 0; i < HOST_POOL; i++) {
        qn_buf_destroy(m->v, &h->dpools[i]);
        m->dpools[i] = NULL;
    }
    free(h->host);
    free(h->dhost);
    free(h);
    m->host_tier = NULL;
}

qn_buf *qn_eh_home(const qn_model *m, int l, int e, bool down, uint64_t *off)
{
    const struct qn_eh *h = m->host_tier;
    *off = (uint64_t)e * (down ? h->db : h->sb);
    return down ? h->dhost[l] : h->host[l];
}

const qn_buf *qn_eh_binding(const qn_model *m, int l, uint32_t i, bool down)
{
    const struct qn_eh *h = m->host_tier;
    if (i < m->n_pools) return down && h->db ? m->dpools[i] : m->pools[i];
    if (h->mapped) return h->map ? qn_emap_layer(h->map, l) : m->pools[0];   /* never read: every call gathers */
    return down && h->db ? h->dhost[l] : h->host[l];
}

static void copy_from_host(const qn_model *m, const struct qn_eh *h, qn_cmd *cmd, const struct qn_exp_fill *f);

int qn_eh_loaded(const qn_model *m)
{
    struct qn_eh *h = m->host_tier;
    if (!h || !h->n_hot) return 0;
    struct qn_exp_fill *f = malloc(sizeof *f * h->n_hot);
    if (!f) return qn_fail(-ENOMEM, "out of memory");
    int n = qn_exp_hot_fills(h->cache, f, (int)h->n_hot), rc = qn_cmd_begin(h->b[0].cmd);
    for (int i = 0; !rc && i < n; i++) copy_from_host(m, h, h->b[0].cmd, &f[i]);
    if (!rc) rc = qn_cmd_end(h->b[0].cmd);
    if (!rc) rc = qn_cmd_run(h->b[0].cmd);
    for (int i = 0; !rc && i < n; i++) rc = qn_exp_fill_done(h->cache, f[i].slot);
    free(f);
    h->changed = true;   /* the first call's table points the hot experts at their VRAM slots */
    QN_INFO("host tier: %d pinned hot experts copied into VRAM slots [0, %d)", n, n);
    return rc;
}

/* ---- between calls ------------------------------------------------------------------------------- */

/* Batches whose copies the timeline says are done: their slots become READY. */
static int poll_batches(struct qn_eh *h)
{
    uint64_t done = 0;
    int rc = qn_timeline_value(h->tx, &done);
    for (int i = 0; !rc && i < NBATCH; i++) {
        struct batch *b = &h->b[i];
        if (!b->busy || b->value > done) continue;
        for (int j = 0; !rc && j < b->n; j++) rc = qn_exp_fill_done(h->cache, b->slots[j]);
        b->busy = false;
        h->changed = true;
    }
    return rc;
}

/* The table from the cache: an expert in a READY VRAM slot points there, every other at its host slot; rows that
 * changed are written to the device table. */
static int write_table(const qn_model *m, struct qn_eh *h)   /* (a whole write also undoes gather redirects) */
{
    const int32_t *ct = qn_exp_table(h->cache);
    int rc = 0;
    bool dirty = false;
    for (uint32_t l = 0; l < h->L; l++)
        for (uint32_t e = 0; e < h->E; e++) {
            size_t i = (size_t)l * h->E + e;
            int32_t s = ct[i], v = (int32_t)(HOST_POOL * h->spp + e);
            struct qn_exp_slot_info si;
            if (s >= 0 && !qn_exp_slot_get(h->cache, s, &si) && si.state == QN_EXP_SLOT_READY) v = s;
            if (m->table[i] != v) {
                m->table[i] = v;
                dirty = true;
            }
        }
    if (dirty) rc = qn_buf_write(m->v, m->slot_table, 0, m->table, sizeof *m->table * (uint64_t)h->L * h->E);
    h->changed = false;
    return rc;
}

int qn_eh_before(const qn_model *m, uint32_t T, struct qn_tl_point *wait)
{
    struct qn_eh *h = m->host_tier;
    *wait = (struct qn_tl_point){ 0 };
    if (!h) return 0;
    int rc = 0;
    if (h->gathered && T != 1) {   /* entries redirected to staging slots: the host's table again */
        rc = qn_buf_write(m->v, m->slot_table, 0, m->table, sizeof *m->table * (uint64_t)h->L * h->E);
        h->gathered = false;
    }
    h->gathered = h->gathered || (h->gather_g && (T == 1 || h->mapped));
    if (rc || !h->cache) return rc;
    rc = poll_batches(h);
    if (!rc && h->changed) rc = write_table(m, h);
    uint64_t done = 0;
    if (!rc) rc = qn_timeline_value(h->tx, &done);
    if (h->per_layer) done = h->tx_next;   /* the next gather overwrites the staging they copy from */
    *wait = (struct qn_tl_point){ .tl = h->tx, .value = done };
    return rc;
}

static void count(const qn_model *m, struct qn_eh *h, const int32_t *ids, uint32_t T, uint32_t t_stride)
{
    for (uint32_t l = 0; l < h->L; l++)
        for (uint32_t t = 0; t < T; t++)
            for (uint32_t k = 0; k < h->K; k++) {
                int32_t e = ids[((size_t)l * t_stride + t) * h->K + k];
                if (e < 0 || (uint32_t)e >= h->E) continue;
                bool vram = m->table[(size_t)l * h->E + (uint32_t)e] < (int32_t)(HOST_POOL * h->spp);
                h->st.accesses++;
                h->st.bytes += h->sb + h->db;
                h->st.vram_hits += vram;
                h->st.vram_bytes += vram ? h->sb + h->db : 0;
            }
}

/* Record the copy host slab -> VRAM slot of one fill. */
static void copy_from_host(const qn_model *m, const struct qn_eh *h, qn_cmd *cmd, const struct qn_exp_fill *f)
{
    uint32_t s = (uint32_t)f->slot, p = s / h->spp;
    uint64_t at = (uint64_t)(s % h->spp);
    for (int j = 0; h->map && j < QN_ES_PARTS; j++) {   /* the page cache: each part from its file offset */
        uint32_t words, sw;
        bool down;
        qn_emap_part(h->map, f->layer, j, &words, &sw, &down);
        if (words)
            qn_cmd_copy(cmd, qn_emap_layer(h->map, f->layer), 16ull * qn_emap_offset(h->map, f->layer, f->expert, j),
                        down ? h->dpools[p] : m->pools[p], at * (down ? h->db : h->sb) + 16ull * sw, 16ull * words);
    }
    if (h->map) return;
    qn_cmd_copy(cmd, h->host[f->layer], (uint64_t)f->expert * h->sb, m->pools[p], at * h->sb, h->sb);
    if (h->db) qn_cmd_copy(cmd, h->dhost[f->layer], (uint64_t)f->expert * h->db, h->dpools[p], at * h->db, h->db);
}

/* Record the copies host slab -> VRAM slot of one lookup's fills into b. */
static void record_fills(const qn_model *m, struct qn_eh *h, struct batch *b, const struct qn_exp_result *res,
                         const int32_t *ids)
{
    for (int j = 0; j < res->n_fill; j++) {
        const struct qn_exp_fill *f = &res->fill[j];
        uint32_t s = (uint32_t)f->slot, p = s / h->spp, k = 0;
        uint64_t at = (uint64_t)(s % h->spp);
        while (k + 1 < h->K && ids[k] != f->expert) k++;
        if (h->per_layer) { /* per-layer staging: the call gathered it into VRAM slot l K + k (a miss was host) */
            uint64_t st = (uint64_t)f->layer * h->K + k;
            qn_cmd_copy(b->cmd, m->pools[h->stage_pool], st * h->sb, m->pools[p], at * h->sb, h->sb);
            if (h->db) qn_cmd_copy(b->cmd, h->dpools[h->stage_pool], st * h->db, h->dpools[p], at * h->db, h->db);
        } else {
            copy_from_host(m, h, b->cmd, f);
        }
        b->slots[b->n++] = f->slot;
        h->st.fills++;
        h->st.fill_bytes += h->sb + h->db;
    }
}

/* A batch that is not in flight, or NULL when all are (the copies lag: admit nothing now rather than wait). */
static int free_batch(struct qn_eh *h, struct batch **out)
{
    struct batch *b = &h->b[h->next];
    int rc = b->busy ? poll_batches(h) : 0;
    *out = NULL;
    if (rc || b->busy) return rc;
    h->next = (h->next + 1) % NBATCH;
    b->n = 0;
    *out = b;
    return 0;
}

int qn_eh_after(const qn_model *m, const int32_t *ids, uint32_t T, uint32_t t_stride)
{
    struct qn_eh *h = m->host_tier;
    if (!h) return 0;
    count(m, h, ids, T, t_stride);
    if (!h->cache || T > h->admit_t) return 0;
    struct batch *b;
    int rc = free_batch(h, &b);
    if (rc || !b) {
        h->st.busy_calls += !rc;
        return rc;
    }
    rc = qn_cmd_begin(b->cmd);
    h->seq++;   /* calls are synchronous: every earlier reader has completed */
    uint32_t l0 = h->start++ % h->L;   /* with a cap per call, the first layer rotates */
    for (uint32_t i = 0; !rc && i < h->L; i++)
        for (uint32_t t = 0; !rc && t < T; t++) {
            if (h->admit_max && (uint32_t)b->n >= h->admit_max) break;
            uint32_t l = (l0 + i) % h->L;
            struct qn_exp_result res;
            int r = qn_exp_lookup(h->cache, (int32_t)l, ids + ((size_t)l * t_stride + t) * h->K, (int)h->K,
                                  h->seq + 1, h->seq, &res);   /* read by the next call; all before it done */
            if (r == -EAGAIN || r == -ENOSPC) h->st.skipped++;   /* too many slots still filling: next call */
            else if (r < 0) rc = r;
            else record_fills(m, h, b, &res, ids + ((size_t)l * t_stride + t) * h->K);
            h->changed = h->changed || (r == 0 && res.n_fill > 0);
        }
    if (!rc) rc = qn_cmd_end(b->cmd);
    if (!rc && b->n) {
        b->value = ++h->tx_next;
        b->busy = true;
        h->st.copy_batches++;
        rc = qn_cmd_submit_tl(b->cmd, NULL, 0, &(struct qn_tl_point){ .tl = h->tx, .value = b->value });
    }
    return rc;
}

bool qn_eh_mapped(const qn_model *m)
{
    return m->host_tier && m->host_tier->mapped;
}

int qn_eh_map(qn_model *m, const qn_es *es)
{
    struct qn_eh *h = m->host_tier;
    if (!h || !h->mapped || h->map) return qn_fail(-EINVAL, "qn_eh_map: not a page-cache host tier, or mapped twice");
    if (qn_es_n_layers(es) != (int)h->L || qn_es_n_experts(es) != (int)h->E)
        return qn_fail(-EINVAL, "qn_eh_map: the expert store has %d x %d experts, the model %u x %u",
                       qn_es_n_layers(es), qn_es_n_experts(es), h->L, h->E);
    return qn_emap_open(&h->map, m->v, es);
}

bool qn_eh_gather_info(const qn_model *m, int l, struct qn_eh_gather *g)
{
    const struct qn_eh *h = m->host_tier;
    if (!h || !h->gather_g) return false;
    *g = (struct qn_eh_gather){ .src = h->host[l], .dst = m->pools[h->stage_pool],
                                .dsrc = h->db ? h->dhost[l] : h->host[l], .ddst = m->pools[h->stage_pool],
                                .groups = h->gather_g };
    if (h->db) g->ddst = h->dpools[h->stage_pool];
    uint32_t at = h->per_layer ? (uint32_t)l * h->K : 0;   /* per-layer staging slots */
    g->pc = (qn_pc_gather){ .layer = (uint32_t)l, .E = h->E, .n = h->K, .stage_base = h->stage_pool * h->spp + at,
                            .slot_words = (uint32_t)(h->sb / 16), .dslot_words = (uint32_t)(h->db / 16),
                            .stage_at = at };
    g->offs = m->slot_table;   /* binding 6: read only when mapped */
    if (!h->map) return true;
    g->src = g->dsrc = qn_emap_layer(h->map, l);
    g->offs = qn_emap_offsets(h->map);
    g->flags = h->flags;
    g->pc.mapped = 1;
    uint32_t *pw[3] = { &g->pc.pw0, &g->pc.pw1, &g->pc.pw2 }, *pd[3] = { &g->pc.pd0, &g->pc.pd1, &g->pc.pd2 };
    for (int j = 0; j < QN_ES_PARTS; j++) {
        bool down;
        qn_emap_part(h->map, l, j, pw[j], pd[j], &down);
        g->pc.pset |= down ? 1u << j : 0u;
    }
    return true;
}

void qn_eh_get_stats(const qn_model *m, struct qn_eh_stats *s)
{
    const struct qn_eh *h = m->host_tier;
    memset(s, 0, sizeof *s);
    if (!h) return;
    *s = h->st;
    s->n_vram = h->n_vram;
    if (h->cache) {
        struct qn_exp_stats es;
        qn_exp_get_stats(h->cache, -1, &es);
        s->evictions = es.evictions;
    }
}

void qn_eh_print_stats(const qn_model *m, FILE *out)
{
    struct qn_eh_stats s;
    qn_eh_get_stats(m, &s);
    if (!m->host_tier) return;
    fprintf(out, "  host tier: served from VRAM %.4f of the expert bytes read (%llu of %llu expert reads; hit rate), "
            "%u VRAM slots; admitted %llu experts (%.2f GiB copied in %llu batches), %llu evictions, %llu lookups "
            "deferred, %llu calls admitted nothing (copies still in flight)\n",
            s.bytes ? (double)s.vram_bytes / (double)s.bytes : 0.0, (unsigned long long)s.vram_hits,
            (unsigned long long)s.accesses, s.n_vram, (unsigned long long)s.fills, GIB(s.fill_bytes),
            (unsigned long long)s.copy_batches, (unsigned long long)s.evictions, (unsigned long long)s.skipped,
            (unsigned long long)s.busy_calls);
}
