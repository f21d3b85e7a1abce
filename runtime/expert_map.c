/* expert_map.c — the model files' page cache imported as the host tier's memory (expert_map.h). */
#include "expert_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_err.h"
#include "qn_log.h"
#include "qn_time.h"

struct fmap {
    void *resv;       /* reserved range (MAP_FAILED: none) */
    size_t len;
    char *at;         /* the file's byte 0, aligned to the import alignment */
    uint64_t size;    /* file bytes */
    uint64_t mapped;  /* bytes mapped at `at` (the file's size rounded up to a page) */
    int fd;
};

struct qn_emap {
    int L, E, nf;
    struct fmap *f;
    qn_buf **imp;     /* [L] */
    uint32_t *off;    /* [L, E, 3] word offsets in the layer's import */
    uint32_t *pw;     /* [L, 3] part words */
    uint32_t pd[QN_ES_PARTS];
    bool down[QN_ES_PARTS];
    qn_buf *offs;
    uint64_t bytes;
};

/* Map file i of the store read-only at an address aligned to `al` (the import needs it). */
static int map_file(struct fmap *m, const char *path, uint64_t al)
{
    m->resv = MAP_FAILED;
    m->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (m->fd < 0 || fstat(m->fd, &st))
        return qn_fail(-errno, "QNEXT_HOST_MMAP: opening %s: %s", path, strerror(errno));
    m->size = (uint64_t)st.st_size;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), n = (m->size + page - 1) / page * page;
    m->len = (size_t)(n + al);
    m->resv = mmap(NULL, m->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m->resv == MAP_FAILED) return qn_fail(-errno, "QNEXT_HOST_MMAP: reserving %zu bytes of address space for %s",
                                              m->len, path);
    m->at = (char *)(((uintptr_t)m->resv + al - 1) & ~(uintptr_t)(al - 1));
    m->mapped = n;
    if (mmap(m->at, (size_t)n, PROT_READ, MAP_SHARED | MAP_FIXED, m->fd, 0) == MAP_FAILED)
        return qn_fail(-errno, "QNEXT_HOST_MMAP: mapping %s (%llu bytes): %s", path, (unsigned long long)m->size,
                       strerror(errno));
    return 0;
}

/* Layer l's parts: one file, 16-byte multiples, one length per part; [*lo, *hi) covers them. */
static int layer_span(struct qn_emap *mp, const qn_es *es, int l, int *file, uint64_t *lo, uint64_t *hi)
{
    *lo = UINT64_MAX;
    *hi = 0;
    for (int e = 0; e < mp->E; e++) {
        const struct qn_es_part *pt = qn_es_parts(es, l, e);
        for (int p = 0; p < QN_ES_PARTS; p++) {
            if (!pt[p].len) continue;
            if (*lo == UINT64_MAX) *file = pt[p].file;
            uint32_t *pw = &mp->pw[l * QN_ES_PARTS + p];
            if (pt[p].file != *file || pt[p].off % 16 || pt[p].len % 16 || pt[p].slot_off % 16 ||
                (*pw && *pw != pt[p].len / 16))
                return qn_fail(QN_E_UNSUPPORTED, "QNEXT_HOST_MMAP: layer %d expert %d part %d (%s, bytes %llu +%llu) "
                               "is in another file than the layer's first, not at a multiple of 16 bytes, or of "
                               "another length than the layer's other experts", l, e, p, qn_es_path(es, pt[p].file),
                               (unsigned long long)pt[p].off, (unsigned long long)pt[p].len);
            *pw = (uint32_t)(pt[p].len / 16);
            mp->pd[p] = (uint32_t)(pt[p].slot_off / 16);
            mp->down[p] = pt[p].set == QN_ES_DPOOLS;
            *lo = pt[p].off < *lo ? pt[p].off : *lo;
            *hi = pt[p].off + pt[p].len > *hi ? pt[p].off + pt[p].len : *hi;
        }
    }
    return *lo == UINT64_MAX ? qn_fail(QN_E_FORMAT, "QNEXT_HOST_MMAP: layer %d has no expert bytes", l) : 0;
}

/* Import layer l's page range and note its experts' word offsets. */
static int import_layer(struct qn_emap *mp, qn_vk *v, const qn_es *es, int l, uint64_t al)
{
    int file = 0;
    uint64_t lo, hi;
    int rc = layer_span(mp, es, l, &file, &lo, &hi);
    if (rc) return rc;
    const struct fmap *f = &mp->f[file];
    uint64_t a = lo / al * al, b = (hi + al - 1) / al * al, range = qn_vk_caps(v)->max_storage_range;
    if (b > f->mapped || b - a > range || (b - a) / 16 > UINT32_MAX)
        return qn_fail(QN_E_UNSUPPORTED, "QNEXT_HOST_MMAP: layer %d's experts span bytes [%llu, %llu) of %s: more "
                       "than one storage buffer binds (%llu bytes) or past the mapping", l, (unsigned long long)lo,
                       (unsigned long long)hi, qn_es_path(es, file), (unsigned long long)range);
    char name[64];
    snprintf(name, sizeof name, "page cache, layer %d", l);
    if ((rc = qn_buf_import_host(v, f->at + a, b - a, false, name, &mp->imp[l]))) return rc;
    mp->bytes += b - a;
    for (int e = 0; e < mp->E; e++) {
        const struct qn_es_part *pt = qn_es_parts(es, l, e);
        for (int p = 0; p < QN_ES_PARTS; p++)
            mp->off[((size_t)l * mp->E + e) * QN_ES_PARTS + p] = pt[p].len ? (uint32_t)((pt[p].off - a) / 16) : 0;
    }
    return 0;
}

/* A driver may count its pins of imported pages against RLIMIT_MEMLOCK (8 MiB by default): raise the soft limit to
 * unlimited where permitted (root), else to the hard limit. */
static void raise_memlock(void)
{
    struct rlimit rl, inf = { RLIM_INFINITY, RLIM_INFINITY };
    if (getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY || !setrlimit(RLIMIT_MEMLOCK, &inf)) return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur != RLIM_INFINITY)
        QN_INFO("QNEXT_HOST_MMAP: RLIMIT_MEMLOCK is %lld bytes (not unlimited); a driver that counts its pins may "
                "refuse the imports", (long long)rl.rlim_cur);
}

int qn_emap_open(struct qn_emap **out, qn_vk *v, const qn_es *es)
{
    *out = NULL;
    uint64_t al = qn_buf_import_align(v);
    if (!al) return qn_fail(QN_E_UNSUPPORTED, "QNEXT_HOST_MMAP: the device lacks VK_EXT_external_memory_host");
    struct qn_emap *mp = calloc(1, sizeof *mp);
    if (!mp) return qn_fail(-ENOMEM, "out of memory");
    *out = mp;
    mp->L = qn_es_n_layers(es);
    mp->E = qn_es_n_experts(es);
    mp->nf = qn_es_n_files(es);
    size_t n = (size_t)mp->L * mp->E * QN_ES_PARTS;
    mp->f = calloc((size_t)mp->nf, sizeof *mp->f);
    mp->imp = calloc((size_t)mp->L, sizeof *mp->imp);
    mp->off = calloc(n, sizeof *mp->off);
    mp->pw = calloc((size_t)mp->L * QN_ES_PARTS, sizeof *mp->pw);
    if (!mp->f || !mp->imp || !mp->off || !mp->pw) return qn_fail(-ENOMEM, "out of memory");
    for (int i = 0; i < mp->nf; i++) mp->f[i] = (struct fmap){ .resv = MAP_FAILED, .fd = -1 };
    double t0 = qn_now_s();
    int rc = 0;
    raise_memlock();
    for (int i = 0; !rc && i < mp->nf; i++) rc = map_file(&mp->f[i], qn_es_path(es, i), al);
    for (int l = 0; !rc && l < mp->L; l++) rc = import_layer(mp, v, es, l, al);
    if (!rc) rc = qn_buf_create(v, QN_MEM_DEVICE, n * sizeof *mp->off, "page-cache expert offsets", &mp->offs);
    if (!rc) rc = qn_buf_write(v, mp->offs, 0, mp->off, n * sizeof *mp->off);
    if (!rc)
        QN_INFO("host tier on the page cache (QNEXT_HOST_MMAP): %d file(s) mapped, %d layer imports of %.2f GiB in "
                "%.1f s (the driver pinning the pages); no copy of the experts in system memory", mp->nf, mp->L,
                (double)mp->bytes / 1073741824.0, qn_now_s() - t0);
    return rc;
}

void qn_emap_close(struct qn_emap **pm, qn_vk *v)
{
    struct qn_emap *mp = *pm;
    if (!mp) return;
    for (int l = 0; mp->imp && l < mp->L; l++) qn_buf_destroy(v, &mp->imp[l]);
    qn_buf_destroy(v, &mp->offs);
    for (int i = 0; mp->f && i < mp->nf; i++) {
        if (mp->f[i].resv != MAP_FAILED) munmap(mp->f[i].resv, mp->f[i].len);
        if (mp->f[i].fd >= 0) close(mp->f[i].fd);
    }
    free(mp->f);
    free(mp->imp);
    free(mp->off);
    free(mp->pw);
    free(mp);
    *pm = NULL;
}

const qn_buf *qn_emap_layer(const struct qn_emap *mp, int l) { return mp->imp[l]; }
const qn_buf *qn_emap_offsets(const struct qn_emap *mp) { return mp->offs; }
uint64_t qn_emap_bytes(const struct qn_emap *mp) { return mp->bytes; }

uint32_t qn_emap_offset(const struct qn_emap *mp, int l, int e, int p)
{
    return mp->off[((size_t)l * mp->E + e) * QN_ES_PARTS + p];
}

void qn_emap_part(const struct qn_emap *mp, int l, int p, uint32_t *words, uint32_t *slot_word, bool *down)
{
    *words = mp->pw[l * QN_ES_PARTS + p];
    *slot_word = mp->pd[p];
    *down = mp->down[p];
}
