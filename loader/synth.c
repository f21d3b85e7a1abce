/* synth.c — write a synth plan (synth.h): the values (generated, or tiled from pools of generated and quantized
 * blocks), the hub folder (config.json, shards, model.safetensors.index.json) or the GGUF file; progress,
 * cancel, fsync, and removal of everything created when a step fails. Disk-space helpers at the end. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "qn_err.h"
#include "qn_num.h"
#include "qn_rng.h"
#include "quant.h"
#include "safetensors.h"
#include "synth_int.h"

#define EXACT_MAX (1u << 18)     /* float tensors up to this many elements are generated value by value */
#define EXACT_QMAX (1u << 15)    /* the same for quantized types (the K-quant quantizers do ~2 M values/s) */
#define POOL_BYTES (8u << 20)    /* per (type, distribution) pool of encoded blocks */
#define SEED_QVALUES (1u << 18)  /* quantized pools: this many values quantized, the rest drawn from those blocks */
#define CHUNK_BYTES (64u << 10)  /* tiles copied from a pool */
#define OUT_BYTES (4u << 20)     /* staging buffer in front of the file writers */
#define MAX_POOLS 64
#define MAX_CREATED 100000

typedef struct pool {
    uint32_t type;
    uint8_t dist;
    float mean, std;
    uint8_t *p;
    uint64_t nblocks;
} pool;

typedef struct wctx {
    const qn_synth_plan *p;
    pool pools[MAX_POOLS];
    int npools;
    float *fbuf;                /* EXACT_MAX floats */
    uint8_t *qbuf;              /* EXACT_MAX encoded values (at most 4 bytes each) */
    uint8_t *out;
    size_t out_n;
    qn_st_writer *st;
    qn_gguf_writer *gw;
    uint64_t done;
    char **created;             /* paths to remove on failure */
    int ncreated, made_dir;
} wctx;

/* ---------------------------------------------------------------- values */

static uint64_t fnv1a(const void *data, size_t n, uint64_t h)
{
    const uint8_t *s = data;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

static void gen(qn_rng *r, uint8_t dist, float mean, float std, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (dist == QN_SD_LOG_U) dst[i] = logf(qn_rng_range(r, 1.0f, 16.0f));
        else if (dist == QN_SD_NEG_U) dst[i] = -qn_rng_range(r, 1.0f, 16.0f);
        else dst[i] = mean + std * qn_rng_normal(r);
    }
}

/* n values (a multiple of the type's block) into the type's bytes. */
static int encode(uint32_t type, const float *src, uint8_t *dst, size_t n)
{
    if (type == QN_GGML_F32) memcpy(dst, src, n * 4);
    else if (type == QN_GGML_F16 || type == QN_GGML_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h = type == QN_GGML_F16 ? qn_f32_to_f16(src[i]) : qn_f32_to_bf16(src[i]);
            memcpy(dst + 2 * i, &h, 2);
        }
    } else {
        return qn_quant_row(type, src, dst, n);
    }
    return 0;
}

static uint64_t block_bytes(uint32_t type) { return qn_ggml_type(type)->bytes; }

static int is_float(uint32_t type) { return type == QN_GGML_F32 || type == QN_GGML_F16 || type == QN_GGML_BF16; }

static pool *get_pool(wctx *x, const qn_synth_tensor *t)
{
    for (int i = 0; i < x->npools; i++) {
        pool *q = &x->pools[i];
        if (q->type == t->type && q->dist == t->dist && q->mean == t->mean && q->std == t->std) return q;
    }
    if (x->npools == MAX_POOLS) { qn_fail(-ENOMEM, "synth: more than %d value pools", MAX_POOLS); return NULL; }
    const qn_ggml_type_info *ti = qn_ggml_type(t->type);
    pool *q = &x->pools[x->npools];
    *q = (pool){.type = t->type, .dist = t->dist, .mean = t->mean, .std = t->std, .nblocks = POOL_BYTES / ti->bytes};
    if (!(q->p = malloc(q->nblocks * ti->bytes))) { qn_fail(-ENOMEM, "synth: out of memory for a value pool"); return NULL; }
    float key[2] = {t->mean, t->std};
    uint64_t h = fnv1a(key, sizeof key, fnv1a(&t->type, 4, fnv1a(&t->dist, 1, 0xcbf29ce484222325ull)));
    qn_rng r;
    qn_rng_seed(&r, x->p->opts.seed ^ h);
    uint64_t per = EXACT_MAX / ti->blck, seed = is_float(t->type) ? q->nblocks : SEED_QVALUES / ti->blck;
    if (seed > q->nblocks) seed = q->nblocks;
    for (uint64_t b = 0; b < seed; b += per) {      /* generated and encoded blocks */
        uint64_t nb = seed - b < per ? seed - b : per;
        gen(&r, t->dist, t->mean, t->std, x->fbuf, (size_t)(nb * ti->blck));
        if (encode(t->type, x->fbuf, q->p + b * ti->bytes, (size_t)(nb * ti->blck))) {
            free(q->p);
            return NULL;
        }
    }
    for (uint64_t b = seed; b < q->nblocks; b++)    /* the rest: random picks among them */
        memcpy(q->p + b * ti->bytes, q->p + (qn_rng_u64(&r) % seed) * ti->bytes, ti->bytes);
    x->npools++;
    return q;
}

/* ---------------------------------------------------------------- staging and progress */

static int flush(wctx *x)
{
    if (!x->out_n) return 0;
    int rc = x->gw ? qn_gguf_w_data(x->gw, x->out, x->out_n) : qn_st_writer_put(x->st, x->out, x->out_n);
    x->out_n = 0;
    if (rc) return rc;
    const qn_synth_opts *o = &x->p->opts;
    if (o->progress && o->progress(o->user, x->done, x->p->data_bytes))
        return qn_fail(-ECANCELED, "synth: cancelled after %" PRIu64 " of %" PRIu64 " bytes", x->done, x->p->data_bytes);
    return 0;
}

static int sink(wctx *x, const uint8_t *s, size_t n)
{
    while (n) {
        size_t k = OUT_BYTES - x->out_n < n ? OUT_BYTES - x->out_n : n;
        memcpy(x->out + x->out_n, s, k);
        x->out_n += k;
        x->done += k;
        s += k;
        n -= k;
        if (x->out_n == OUT_BYTES) {
            int rc = flush(x);
            if (rc) return rc;
        }
    }
    return 0;
}

static int fill_tensor(wctx *x, const qn_synth_tensor *t)
{
    qn_rng r;
    qn_rng_seed(&r, x->p->opts.seed ^ fnv1a(t->name, strlen(t->name), 0xcbf29ce484222325ull));
    uint64_t n = qn_synth_rows(t) * (uint64_t)t->shape[t->ndim - 1];
    if (n <= (is_float(t->type) ? EXACT_MAX : EXACT_QMAX)) {
        gen(&r, t->dist, t->mean, t->std, x->fbuf, (size_t)n);
        int rc = encode(t->type, x->fbuf, x->qbuf, (size_t)n);
        return rc ? qn_fail_ctx(rc, "synth: tensor '%s': ", t->name) : sink(x, x->qbuf, (size_t)t->nbytes);
    }
    pool *q = get_pool(x, t);
    if (!q) return qn_fail_ctx(-ENOMEM, "synth: tensor '%s': ", t->name);
    uint64_t bb = block_bytes(t->type), chunk = CHUNK_BYTES / bb ? CHUNK_BYTES / bb : 1, left = t->nbytes / bb;
    while (left) {
        uint64_t nb = left < chunk ? left : chunk, start = qn_rng_u64(&r) % (q->nblocks - nb + 1);
        int rc = sink(x, q->p + start * bb, (size_t)(nb * bb));
        if (rc) return rc;
        left -= nb;
    }
    return 0;
}

/* ---------------------------------------------------------------- created files */

static int remember(wctx *x, const char *path)
{
    if (x->ncreated == MAX_CREATED) return qn_fail(-EINVAL, "synth: too many output files");
    char **c = realloc(x->created, (size_t)(x->ncreated + 1) * sizeof *c);
    if (!c) return qn_fail(-ENOMEM, "synth: out of memory");
    x->created = c;
    if (!(c[x->ncreated] = strdup(path))) return qn_fail(-ENOMEM, "synth: out of memory");
    x->ncreated++;
    return 0;
}

static void remove_created(wctx *x, const char *dir)
{
    for (int i = 0; i < x->ncreated; i++) unlink(x->created[i]);
    if (x->made_dir) rmdir(dir);
}

static int sync_created(wctx *x)
{
    for (int i = 0; i < x->ncreated; i++) {
        int fd = open(x->created[i], O_RDONLY);
        if (fd < 0 || fsync(fd)) {
            int e = errno;
            if (fd >= 0) close(fd);
            return qn_fail(-e, "%s: fsync failed: %s", x->created[i], strerror(e));
        }
        close(fd);
    }
    return 0;
}

static int join(char *buf, size_t cap, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, cap, "%s/%s", dir, name) >= cap) return qn_fail(-ENAMETOOLONG, "%s: path too long", dir);
    return 0;
}

/* ---------------------------------------------------------------- safetensors */

static int write_shard(wctx *x, const char *dir, int f)
{
    const qn_synth_plan *p = x->p;
    char path[4096];
    int rc = join(path, sizeof path, dir, p->files[f]), n = 0;
    qn_st_wtensor *wt = rc ? NULL : calloc((size_t)p->n, sizeof *wt);
    if (!rc && !wt) rc = qn_fail(-ENOMEM, "synth: out of memory");
    for (int i = 0; !rc && i < p->n; i++) {
        const qn_synth_tensor *t = &p->t[i];
        if (t->file != f) continue;
        wt[n] = (qn_st_wtensor){.name = t->name, .ndim = t->ndim,
                                .dtype = t->type == QN_GGML_F32 ? QN_DT_F32 : t->type == QN_GGML_F16 ? QN_DT_F16 : QN_DT_BF16};
        memcpy(wt[n++].shape, t->shape, sizeof t->shape);
    }
    int existed = !rc && !access(path, F_OK);
    if (!rc) rc = qn_st_writer_open(&x->st, path, wt, n, "{\"format\":\"pt\"}");
    if (!rc || !existed) {
        int r = remember(x, path);
        if (!rc) rc = r;
    }
    for (int i = 0; !rc && i < p->n; i++)
        if (p->t[i].file == f) rc = fill_tensor(x, &p->t[i]);
    if (!rc) rc = flush(x);
    int rc2 = qn_st_writer_close(&x->st);
    free(wt);
    return rc ? rc : rc2;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const qn_synth_tensor *const *)a)->name, (*(const qn_synth_tensor *const *)b)->name);
}

/* model.safetensors.index.json as the hub has it: total_size and the weight map sorted by name. */
static int write_index(wctx *x, const char *dir)
{
    const qn_synth_plan *p = x->p;
    char path[4096];
    int rc = join(path, sizeof path, dir, "model.safetensors.index.json");
    const qn_synth_tensor **s = rc ? NULL : malloc((size_t)p->n * sizeof *s);
    cJSON *j = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(j, "metadata"), *wm = cJSON_AddObjectToObject(j, "weight_map");
    if (!rc && (!s || !wm)) rc = qn_fail(-ENOMEM, "synth: out of memory for the index");
    for (int i = 0; !rc && i < p->n; i++) s[i] = &p->t[i];
    if (!rc) qsort(s, (size_t)p->n, sizeof *s, by_name);
    cJSON_AddNumberToObject(m, "total_size", (double)p->data_bytes);
    for (int i = 0; !rc && i < p->n; i++) cJSON_AddStringToObject(wm, s[i]->name, p->files[s[i]->file]);
    char *txt = rc ? NULL : cJSON_Print(j);
    if (!rc && !txt) rc = qn_fail(-ENOMEM, "synth: out of memory for the index");
    FILE *fp = NULL;
    if (!rc && !(fp = fopen(path, "wb"))) rc = qn_fail(-errno, "%s: cannot create: %s", path, strerror(errno));
    if (fp) {
        int r = remember(x, path);
        if (!rc) rc = r;
    }
    if (fp && (fputs(txt, fp) == EOF || fputc('\n', fp) == EOF) && !rc) rc = qn_fail(-EIO, "%s: write failed", path);
    if (fp && fclose(fp) && !rc) rc = qn_fail(-EIO, "%s: write failed", path);
    free(txt);
    free(s);
    cJSON_Delete(j);
    return rc;
}

static int make_dir(wctx *x, const char *dir)
{
    struct stat st;
    if (!stat(dir, &st)) return S_ISDIR(st.st_mode) ? 0 : qn_fail(-ENOTDIR, "%s: exists and is not a folder", dir);
    if (mkdir(dir, 0777)) return qn_fail(-errno, "%s: cannot create the folder: %s", dir, strerror(errno));
    x->made_dir = 1;
    return 0;
}

static int write_hub(wctx *x, const char *dir)
{
    char path[4096];
    int rc = make_dir(x, dir);
    if (!rc) rc = join(path, sizeof path, dir, "config.json");
    int existed = !rc && !access(path, F_OK);
    if (!rc) rc = qn_cfg_write(&x->p->cfg, path);
    if (!rc || (!existed && !access(path, F_OK))) {
        int r = remember(x, path);
        if (!rc) rc = r;
    }
    for (int f = 0; !rc && f < x->p->nfiles; f++) rc = write_shard(x, dir, f);
    if (!rc && x->p->nfiles > 1) rc = write_index(x, dir);
    return rc;
}

/* ---------------------------------------------------------------- gguf */

static int write_gguf(wctx *x, const char *path)
{
    const qn_synth_plan *p = x->p;
    int existed = !access(path, F_OK);
    int rc = qn_gguf_writer_open(&x->gw, path, 0);
    if (!rc || !existed) {
        int r = remember(x, path);
        if (!rc) rc = r;
    }
    if (!rc) rc = qn_synth_gguf_meta(x->gw, p);
    for (int i = 0; !rc && i < p->n; i++) rc = qn_synth_gguf_tensor(x->gw, &p->t[i]);
    for (int i = 0; !rc && i < p->n; i++) rc = fill_tensor(x, &p->t[i]);
    if (!rc) rc = flush(x);
    if (rc) qn_gguf_writer_abort(&x->gw);
    else rc = qn_gguf_writer_close(&x->gw);
    return rc;
}

int qn_synth_write(const qn_synth_plan *p, const char *out)
{
    wctx x = {.p = p};
    x.fbuf = malloc(EXACT_MAX * sizeof *x.fbuf);
    x.qbuf = malloc(EXACT_MAX * 4u);
    x.out = malloc(OUT_BYTES);
    int rc = x.fbuf && x.qbuf && x.out ? 0 : qn_fail(-ENOMEM, "synth: out of memory");
    if (!rc) rc = p->opts.format == QN_SYNTH_GGUF ? write_gguf(&x, out) : write_hub(&x, out);
    if (!rc && p->opts.sync) rc = sync_created(&x);
    if (rc) {
        if (x.st) qn_st_writer_close(&x.st);
        remove_created(&x, out);
    }
    for (int i = 0; i < x.npools; i++) free(x.pools[i].p);
    for (int i = 0; i < x.ncreated; i++) free(x.created[i]);
    free(x.created);
    free(x.fbuf);
    free(x.qbuf);
    free(x.out);
    return rc;
}

/* ---------------------------------------------------------------- disk space */

int qn_synth_space_check(uint64_t need, uint64_t avail, const char *where)
{
    uint64_t want = need + need / 100 + (16u << 20);
    if (avail >= want) return 0;
    return qn_fail(-ENOSPC, "%s: not enough disk space: needs %.2f GB, has %.2f GB", where, (double)want / 1e9,
                   (double)avail / 1e9);
}

int qn_synth_space_avail(const char *dir, uint64_t *avail)
{
    struct statvfs s;
    if (statvfs(dir, &s)) return qn_fail(-errno, "%s: cannot query free space: %s", dir, strerror(errno));
    *avail = (uint64_t)s.f_bavail * (uint64_t)s.f_frsize;
    return 0;
}
