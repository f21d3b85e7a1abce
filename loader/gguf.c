/* gguf.c — GGUF v2/v3 reader. Every length, count, dimension and offset read from the file is checked
 * against the file size before it is used; errors name the file, the key or tensor and the byte offset.
 * Metadata and tensor infos are parsed through a small pread window into an arena; tensor data is only
 * read on request (qn_gguf_read), never mapped. */
#include "gguf.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_err.h"
#include "quant.h"

#define WINDOW (256u << 10)

typedef struct chunk { struct chunk *next; size_t used, cap; max_align_t data[]; } chunk;

struct qn_gguf {
    char *path;
    int fd;                 /* -1 when parsing memory */
    const uint8_t *mem;
    uint64_t size;
    uint32_t version, alignment;
    uint64_t data_off, n_kv, n_tensors;
    qn_gguf_kv *kv;
    qn_gguf_tensor *tensors;
    uint64_t *kv_hash, *t_hash;     /* open addressing, index + 1, capacity a power of two */
    uint64_t kv_hcap, t_hcap;
    chunk *arena;
};

/* A read cursor over the file with a pread window. `what` describes the item being parsed. */
typedef struct cur {
    qn_gguf *g;
    uint64_t pos;
    uint8_t *win;
    uint64_t win_off;
    size_t win_len;
    char what[96];
} cur;

/* ---------------------------------------------------------------- arena, source */

static void *arena_alloc(qn_gguf *g, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!g->arena || g->arena->cap - g->arena->used < n) {
        size_t cap = g->size < (1u << 20) ? (size_t)g->size + 4096 : (1u << 20);   /* small files: small chunks */
        if (cap < n) cap = n;
        chunk *c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = g->arena;
        c->used = 0;
        c->cap = cap;
        g->arena = c;
    }
    void *p = (char *)g->arena->data + g->arena->used;
    g->arena->used += n;
    return p;
}

static int src_read(const qn_gguf *g, uint64_t off, void *dst, size_t n)
{
    if (g->fd < 0) {
        memcpy(dst, g->mem + off, n);
        return 0;
    }
    uint8_t *p = dst;
    while (n) {
        ssize_t r = pread(g->fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return qn_fail(-errno, "%s: read of %zu bytes at byte %" PRIu64 " failed: %s", g->path, n, off,
                                  strerror(errno));
        if (r == 0) return qn_fail(-EIO, "%s: unexpected end of file at byte %" PRIu64, g->path, off);
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* ---------------------------------------------------------------- cursor */

static int cur_fail(cur *c, uint64_t at, const char *fmt, const char *detail)
{
    return qn_fail(QN_E_FORMAT, "%s: %s at byte %" PRIu64 ": %s%s", c->g->path, c->what, at, fmt, detail ? detail : "");
}

static uint64_t cur_left(const cur *c) { return c->g->size - c->pos; }

static int cur_read(cur *c, void *dst, uint64_t n)
{
    if (n > cur_left(c)) {
        char d[96];
        snprintf(d, sizeof d, "%" PRIu64 " bytes needed, %" PRIu64 " left in the file", n, cur_left(c));
        return cur_fail(c, c->pos, "truncated: ", d);
    }
    uint8_t *p = dst;
    while (n) {
        if (c->pos >= c->win_off && c->pos < c->win_off + c->win_len) {
            size_t k = (size_t)(c->win_off + c->win_len - c->pos);
            if (k > n) k = (size_t)n;
            memcpy(p, c->win + (c->pos - c->win_off), k);
            p += k; n -= k; c->pos += k;
        } else if (n >= WINDOW) {
            int rc = src_read(c->g, c->pos, p, (size_t)n);
            if (rc) return rc;
            c->pos += n;
            n = 0;
        } else {
            size_t k = cur_left(c) < WINDOW ? (size_t)cur_left(c) : WINDOW;
            int rc = src_read(c->g, c->pos, c->win, k);
            if (rc) return rc;
            c->win_off = c->pos;
            c->win_len = k;
        }
    }
    return 0;
}

static int rd_u32(cur *c, uint32_t *v) { return cur_read(c, v, 4); }
static int rd_u64(cur *c, uint64_t *v) { return cur_read(c, v, 8); }

/* Read a GGUF string (u64 length + bytes) into the arena, NUL-terminated. */
static int rd_str(cur *c, const char **s, uint64_t *len, uint64_t max_len)
{
    uint64_t at = c->pos, n;
    int rc = rd_u64(c, &n);
    if (rc) return rc;
    if (n > cur_left(c) || n > max_len) {
        char d[96];
        snprintf(d, sizeof d, "string length %" PRIu64 " exceeds %s (%" PRIu64 ")", n,
                 n > max_len ? "the limit" : "the rest of the file", n > max_len ? max_len : cur_left(c));
        return cur_fail(c, at, "", d);
    }
    char *p = arena_alloc(c->g, (size_t)n + 1);
    if (!p) return qn_fail(-ENOMEM, "%s: out of memory for a %" PRIu64 "-byte string", c->g->path, n);
    if ((rc = cur_read(c, p, n))) return rc;
    p[n] = 0;
    *s = p;
    if (len) *len = n;
    return 0;
}

/* ---------------------------------------------------------------- values */

size_t qn_gguf_vtype_size(uint32_t t)
{
    static const uint8_t sz[QN_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < QN_GGUF_NTYPES ? sz[t] : 0;
}

const char *qn_gguf_vtype_name(uint32_t t)
{
    static const char *const nm[QN_GGUF_NTYPES] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                                    "string", "array", "u64", "i64", "f64"};
    return t < QN_GGUF_NTYPES ? nm[t] : "unknown";
}

static int is_signed(uint32_t t) { return t == QN_GGUF_I8 || t == QN_GGUF_I16 || t == QN_GGUF_I32 || t == QN_GGUF_I64; }

/* Decode one scalar of type t from raw little-endian bytes. */
static void scalar_from_raw(uint32_t t, const uint8_t *b, qn_gguf_val *v)
{
    v->type = t;
    v->n = 1;
    switch (t) {
    case QN_GGUF_U8: case QN_GGUF_BOOL: v->u = b[0]; break;
    case QN_GGUF_I8: v->i = (int8_t)b[0]; break;
    case QN_GGUF_U16: { uint16_t x; memcpy(&x, b, 2); v->u = x; } break;
    case QN_GGUF_I16: { int16_t x; memcpy(&x, b, 2); v->i = x; } break;
    case QN_GGUF_U32: { uint32_t x; memcpy(&x, b, 4); v->u = x; } break;
    case QN_GGUF_I32: { int32_t x; memcpy(&x, b, 4); v->i = x; } break;
    case QN_GGUF_F32: { float x; memcpy(&x, b, 4); v->f = x; } break;
    case QN_GGUF_U64: memcpy(&v->u, b, 8); break;
    case QN_GGUF_I64: memcpy(&v->i, b, 8); break;
    case QN_GGUF_F64: memcpy(&v->f, b, 8); break;
    default: break;
    }
}

static int rd_value(cur *c, uint32_t type, int depth, qn_gguf_val *v);

/* Smallest encoding of one element of type t (for count checks before allocating). */
static uint64_t min_elem_bytes(uint32_t t) { return t == QN_GGUF_STR ? 8 : t == QN_GGUF_ARR ? 12 : qn_gguf_vtype_size(t); }

static int rd_array(cur *c, int depth, qn_gguf_val *v)
{
    uint64_t at = c->pos, n;
    uint32_t et;
    int rc = rd_u32(c, &et);
    if (!rc) rc = rd_u64(c, &n);
    if (rc) return rc;
    char d[128];
    if (et >= QN_GGUF_NTYPES) {
        snprintf(d, sizeof d, "array element type %u is not a GGUF value type", et);
        return cur_fail(c, at, "", d);
    }
    if (et == QN_GGUF_ARR && depth + 1 >= QN_GGUF_MAX_DEPTH) return cur_fail(c, at, "arrays nested too deeply", NULL);
    if (n > cur_left(c) / min_elem_bytes(et)) {
        snprintf(d, sizeof d, "array of %" PRIu64 " %s does not fit in the %" PRIu64 " bytes left", n,
                 qn_gguf_vtype_name(et), cur_left(c));
        return cur_fail(c, at, "", d);
    }
    v->type = QN_GGUF_ARR;
    v->elem_type = et;
    v->n = n;
    if (et == QN_GGUF_STR) {
        const char **s = arena_alloc(c->g, n * sizeof *s + 1);
        uint64_t *l = arena_alloc(c->g, n * sizeof *l + 1);
        if (!s || !l) return qn_fail(-ENOMEM, "%s: out of memory for %" PRIu64 " strings", c->g->path, n);
        for (uint64_t i = 0; i < n && !rc; i++) rc = rd_str(c, &s[i], &l[i], UINT64_MAX);
        v->strs = s;
        v->lens = l;
    } else if (et == QN_GGUF_ARR) {
        qn_gguf_val *items = arena_alloc(c->g, n * sizeof *items + 1);
        if (!items) return qn_fail(-ENOMEM, "%s: out of memory for %" PRIu64 " arrays", c->g->path, n);
        memset(items, 0, n * sizeof *items);
        for (uint64_t i = 0; i < n && !rc; i++) rc = rd_value(c, QN_GGUF_ARR, depth + 1, &items[i]);
        v->items = items;
    } else {
        uint64_t bytes = n * qn_gguf_vtype_size(et);
        void *raw = arena_alloc(c->g, (size_t)bytes + 1);
        if (!raw) return qn_fail(-ENOMEM, "%s: out of memory for a %" PRIu64 "-byte array", c->g->path, bytes);
        rc = cur_read(c, raw, bytes);
        v->raw = raw;
    }
    return rc;
}

static int rd_value(cur *c, uint32_t type, int depth, qn_gguf_val *v)
{
    if (type == QN_GGUF_STR) {
        v->type = QN_GGUF_STR;
        v->n = 1;
        return rd_str(c, &v->str, &v->len, UINT64_MAX);
    }
    if (type == QN_GGUF_ARR) return rd_array(c, depth, v);
    size_t sz = qn_gguf_vtype_size(type);
    if (!sz) {
        char d[64];
        snprintf(d, sizeof d, "value type %u is not a GGUF value type", type);
        return cur_fail(c, c->pos - 4, "", d);
    }
    uint8_t b[8];
    int rc = cur_read(c, b, sz);
    if (!rc) scalar_from_raw(type, b, v);
    return rc;
}

/* ---------------------------------------------------------------- hash index */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static int hash_build(qn_gguf *g, uint64_t n, uint64_t **tab, uint64_t *cap)
{
    uint64_t c = 16;
    while (c < 2 * n + 1) c <<= 1;
    *tab = calloc(c, sizeof **tab);
    if (!*tab) return qn_fail(-ENOMEM, "%s: out of memory for an index of %" PRIu64 " names", g->path, n);
    *cap = c;
    return 0;
}

/* Insert name i; returns the index of an earlier equal name, or -1. */
static int64_t hash_insert(uint64_t *tab, uint64_t cap, const char *name, uint64_t i,
                           const char *(*name_at)(const qn_gguf *, uint64_t), const qn_gguf *g)
{
    for (uint64_t h = fnv1a(name) & (cap - 1);; h = (h + 1) & (cap - 1)) {
        if (!tab[h]) { tab[h] = i + 1; return -1; }
        if (!strcmp(name_at(g, tab[h] - 1), name)) return (int64_t)(tab[h] - 1);
    }
}

static int64_t hash_find(const uint64_t *tab, uint64_t cap, const char *name,
                         const char *(*name_at)(const qn_gguf *, uint64_t), const qn_gguf *g)
{
    if (!tab) return -1;
    for (uint64_t h = fnv1a(name) & (cap - 1); tab[h]; h = (h + 1) & (cap - 1))
        if (!strcmp(name_at(g, tab[h] - 1), name)) return (int64_t)(tab[h] - 1);
    return -1;
}

static const char *kv_name(const qn_gguf *g, uint64_t i) { return g->kv[i].key; }
static const char *t_name(const qn_gguf *g, uint64_t i) { return g->tensors[i].name; }

/* ---------------------------------------------------------------- header, kv, tensor infos */

static int parse_header(qn_gguf *g, cur *c)
{
    uint32_t magic;
    snprintf(c->what, sizeof c->what, "header");
    int rc = rd_u32(c, &magic);
    if (rc) return rc;
    if (magic != QN_GGUF_MAGIC) {
        char d[64];
        snprintf(d, sizeof d, "bad magic 0x%08x (expected \"GGUF\")", magic);
        return cur_fail(c, 0, "", d);
    }
    if ((rc = rd_u32(c, &g->version))) return rc;
    if (g->version == 1) return qn_fail(QN_E_UNSUPPORTED, "%s: GGUF version 1 is not supported", g->path);
    if (g->version != 2 && g->version != 3)
        return qn_fail(QN_E_UNSUPPORTED, "%s: GGUF version %u is not supported%s", g->path, g->version,
                       (g->version & 0xffff) == 0 ? " (a big-endian file?)" : "");
    if ((rc = rd_u64(c, &g->n_tensors)) || (rc = rd_u64(c, &g->n_kv))) return rc;
    if (g->n_kv > cur_left(c) / 13 || g->n_tensors > cur_left(c) / 24)
        return qn_fail(QN_E_FORMAT, "%s: header claims %" PRIu64 " tensors and %" PRIu64
                       " metadata keys, more than the %" PRIu64 "-byte file can hold", g->path, g->n_tensors, g->n_kv,
                       g->size);
    return 0;
}

static int parse_kvs(qn_gguf *g, cur *c)
{
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    int rc = g->kv ? hash_build(g, g->n_kv, &g->kv_hash, &g->kv_hcap)
                   : qn_fail(-ENOMEM, "%s: out of memory for %" PRIu64 " keys", g->path, g->n_kv);
    for (uint64_t i = 0; i < g->n_kv && !rc; i++) {
        qn_gguf_kv *kv = &g->kv[i];
        kv->file_off = c->pos;
        snprintf(c->what, sizeof c->what, "metadata key #%" PRIu64, i);
        uint32_t type;
        if ((rc = rd_str(c, &kv->key, NULL, 65535)) || (rc = rd_u32(c, &type))) break;
        snprintf(c->what, sizeof c->what, "metadata key '%.60s'", kv->key);
        if ((rc = rd_value(c, type, 0, &kv->val))) break;
        if (hash_insert(g->kv_hash, g->kv_hcap, kv->key, i, kv_name, g) >= 0)
            rc = qn_fail(QN_E_FORMAT, "%s: duplicate metadata key '%s' at byte %" PRIu64, g->path, kv->key, kv->file_off);
    }
    return rc;
}

static int parse_alignment(qn_gguf *g)
{
    g->alignment = QN_GGUF_DEFAULT_ALIGNMENT;
    const qn_gguf_kv *kv = qn_gguf_find_kv(g, "general.alignment");
    if (!kv) return 0;
    uint32_t a;
    int rc = qn_gguf_get_u32(g, "general.alignment", &a);
    if (rc) return rc;
    if (a == 0 || (a & (a - 1)) || a > (1u << 30))
        return qn_fail(QN_E_FORMAT, "%s: general.alignment = %u at byte %" PRIu64 " is not a power of two up to 2^30",
                       g->path, a, kv->file_off);
    g->alignment = a;
    return 0;
}

/* Shape, type and size of one tensor info (already holding name and dims). */
static int check_tensor_shape(qn_gguf *g, cur *c, qn_gguf_tensor *t)
{
    char d[160];
    uint64_t elems = 1;
    for (uint32_t k = 0; k < QN_GGUF_MAX_DIMS; k++) {
        if (t->ne[k] > (uint64_t)INT64_MAX || (t->ne[k] && elems > (uint64_t)INT64_MAX / t->ne[k])) {
            snprintf(d, sizeof d, "dimensions overflow (ne[%u] = %" PRIu64 ")", k, t->ne[k]);
            return cur_fail(c, t->info_off, "", d);
        }
        elems *= t->ne[k];
    }
    const qn_ggml_type_info *ti = qn_ggml_type(t->type);
    if (!ti) {
        snprintf(d, sizeof d, "unknown tensor type %u", t->type);
        return cur_fail(c, t->info_off, "", d);
    }
    if (t->ne[0] % ti->blck) {
        snprintf(d, sizeof d, "row length %" PRIu64 " is not a multiple of the %s block size %u", t->ne[0], ti->name,
                 ti->blck);
        return cur_fail(c, t->info_off, "", d);
    }
    t->row_bytes = t->ne[0] / ti->blck * ti->bytes;
    uint64_t rows = elems && t->ne[0] ? elems / t->ne[0] : 0;
    if (rows && t->row_bytes > UINT64_MAX / rows) return cur_fail(c, t->info_off, "data size overflows", NULL);
    t->nbytes = t->row_bytes * rows;
    if (t->offset % g->alignment) {
        snprintf(d, sizeof d, "data offset %" PRIu64 " is not a multiple of the alignment %u", t->offset, g->alignment);
        return cur_fail(c, t->info_off, "", d);
    }
    return 0;
}

static int parse_tensor_info(qn_gguf *g, cur *c, uint64_t i)
{
    qn_gguf_tensor *t = &g->tensors[i];
    t->info_off = c->pos;
    snprintf(c->what, sizeof c->what, "tensor info #%" PRIu64, i);
    uint64_t len;
    int rc = rd_str(c, &t->name, &len, QN_GGUF_MAX_NAME);
    if (rc) return rc;
    if (strlen(t->name) != len) return cur_fail(c, t->info_off, "tensor name contains a NUL byte", NULL);
    snprintf(c->what, sizeof c->what, "tensor '%s'", t->name);
    if ((rc = rd_u32(c, &t->n_dims))) return rc;
    if (t->n_dims > QN_GGUF_MAX_DIMS) {
        char d[64];
        snprintf(d, sizeof d, "n_dims = %u (at most %d)", t->n_dims, QN_GGUF_MAX_DIMS);
        return cur_fail(c, t->info_off, "", d);
    }
    for (uint32_t k = 0; k < QN_GGUF_MAX_DIMS; k++) t->ne[k] = 1;
    for (uint32_t k = 0; k < t->n_dims && !rc; k++) rc = rd_u64(c, &t->ne[k]);
    if (!rc) rc = rd_u32(c, &t->type);
    if (!rc) rc = rd_u64(c, &t->offset);
    if (!rc) rc = check_tensor_shape(g, c, t);
    if (!rc && hash_insert(g->t_hash, g->t_hcap, t->name, i, t_name, g) >= 0)
        rc = qn_fail(QN_E_FORMAT, "%s: duplicate tensor name '%s' at byte %" PRIu64, g->path, t->name, t->info_off);
    return rc;
}

typedef struct span { uint64_t off; uint64_t idx; } span;
static int cmp_span(const void *a, const void *b)
{
    uint64_t x = ((const span *)a)->off, y = ((const span *)b)->off;
    return x < y ? -1 : x > y;
}

/* Make offsets absolute; every tensor within the file, none overlapping. */
static int place_tensors(qn_gguf *g)
{
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        qn_gguf_tensor *t = &g->tensors[i];
        uint64_t rel = t->offset;
        if (rel > g->size || g->data_off > g->size - rel || t->nbytes > g->size - g->data_off - rel)
            return qn_fail(QN_E_FORMAT, "%s: tensor '%s' (info at byte %" PRIu64 "): data at relative offset %" PRIu64
                           " + %" PRIu64 " bytes lies beyond the end of the file (%" PRIu64 " bytes, data section at %"
                           PRIu64 ")", g->path, t->name, t->info_off, rel, t->nbytes, g->size, g->data_off);
        t->offset = g->data_off + rel;
    }
    span *ord = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *ord);
    if (!ord) return qn_fail(-ENOMEM, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < g->n_tensors; i++) ord[i] = (span){g->tensors[i].offset, i};
    qsort(ord, g->n_tensors, sizeof *ord, cmp_span);
    int rc = 0;
    const qn_gguf_tensor *a = NULL;   /* the non-empty tensor reaching furthest so far */
    for (uint64_t k = 0; k < g->n_tensors && !rc; k++) {
        const qn_gguf_tensor *b = &g->tensors[ord[k].idx];
        if (!b->nbytes) continue;
        if (a && a->offset + a->nbytes > b->offset)
            rc = qn_fail(QN_E_FORMAT, "%s: tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64 ", %" PRIu64
                         ") overlap", g->path, a->name, a->offset, a->offset + a->nbytes, b->name, b->offset,
                         b->offset + b->nbytes);
        if (!a || b->offset + b->nbytes > a->offset + a->nbytes) a = b;
    }
    free(ord);
    return rc;
}

static int parse_all(qn_gguf *g)
{
    cur c = {.g = g};
    c.win = malloc(g->size < WINDOW ? (size_t)g->size + 1 : WINDOW);
    if (!c.win) return qn_fail(-ENOMEM, "%s: out of memory", g->path);
    int rc = parse_header(g, &c);
    if (!rc) rc = parse_kvs(g, &c);
    if (!rc) rc = parse_alignment(g);
    if (!rc) {
        g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
        rc = g->tensors ? hash_build(g, g->n_tensors, &g->t_hash, &g->t_hcap)
                        : qn_fail(-ENOMEM, "%s: out of memory for %" PRIu64 " tensors", g->path, g->n_tensors);
    }
    for (uint64_t i = 0; !rc && i < g->n_tensors; i++) rc = parse_tensor_info(g, &c, i);
    free(c.win);
    if (rc) return rc;
    g->data_off = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors && g->data_off > g->size)
        return qn_fail(QN_E_FORMAT, "%s: data section at byte %" PRIu64 " starts beyond the end of the file (%" PRIu64
                       " bytes)", g->path, g->data_off, g->size);
    return place_tensors(g);
}

/* ---------------------------------------------------------------- open/close */

static int finish_open(qn_gguf *g, qn_gguf **out)
{
    int rc = parse_all(g);
    if (rc) {
        qn_gguf_close(&g);
        return rc;
    }
    *out = g;
    return 0;
}

int qn_gguf_open(qn_gguf **out, const char *path)
{
    *out = NULL;
    qn_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        return qn_fail(-ENOMEM, "%s: out of memory", path);
    }
    g->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (g->fd < 0 || fstat(g->fd, &st) != 0) {
        int e = errno;
        qn_gguf_close(&g);
        return qn_fail(-e, "%s: cannot open: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        qn_gguf_close(&g);
        return qn_fail(-EINVAL, "%s: not a regular file", path);
    }
    g->size = (uint64_t)st.st_size;
    return finish_open(g, out);
}

int qn_gguf_open_mem(qn_gguf **out, const void *buf, size_t size, const char *name)
{
    *out = NULL;
    qn_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name ? name : "<memory>"))) {
        free(g);
        return qn_fail(-ENOMEM, "out of memory");
    }
    g->fd = -1;
    g->mem = buf;
    g->size = size;
    return finish_open(g, out);
}

void qn_gguf_close(qn_gguf **pg)
{
    qn_gguf *g = pg ? *pg : NULL;
    if (!g) return;
    if (g->fd >= 0) close(g->fd);
    while (g->arena) {
        chunk *n = g->arena->next;
        free(g->arena);
        g->arena = n;
    }
    free(g->kv);
    free(g->tensors);
    free(g->kv_hash);
    free(g->t_hash);
    free(g->path);
    free(g);
    *pg = NULL;
}

/* ---------------------------------------------------------------- accessors */

const char *qn_gguf_path(const qn_gguf *g) { return g->path; }
uint32_t qn_gguf_version(const qn_gguf *g) { return g->version; }
uint32_t qn_gguf_alignment(const qn_gguf *g) { return g->alignment; }
uint64_t qn_gguf_data_offset(const qn_gguf *g) { return g->data_off; }
uint64_t qn_gguf_file_size(const qn_gguf *g) { return g->size; }
uint64_t qn_gguf_n_kv(const qn_gguf *g) { return g->n_kv; }
uint64_t qn_gguf_n_tensors(const qn_gguf *g) { return g->n_tensors; }
const qn_gguf_kv *qn_gguf_kv_at(const qn_gguf *g, uint64_t i) { return i < g->n_kv ? &g->kv[i] : NULL; }
const qn_gguf_tensor *qn_gguf_tensor_at(const qn_gguf *g, uint64_t i) { return i < g->n_tensors ? &g->tensors[i] : NULL; }

const qn_gguf_kv *qn_gguf_find_kv(const qn_gguf *g, const char *key)
{
    int64_t i = hash_find(g->kv_hash, g->kv_hcap, key, kv_name, g);
    return i < 0 ? NULL : &g->kv[i];
}

const qn_gguf_tensor *qn_gguf_find_tensor(const qn_gguf *g, const char *name)
{
    int64_t i = hash_find(g->t_hash, g->t_hcap, name, t_name, g);
    return i < 0 ? NULL : &g->tensors[i];
}

static int get_kv(const qn_gguf *g, const char *key, const qn_gguf_kv **kv)
{
    *kv = qn_gguf_find_kv(g, key);
    return *kv ? 0 : qn_fail(-ENOENT, "%s: metadata key '%s' is missing", g->path, key);
}

static int wrong_type(const qn_gguf *g, const qn_gguf_kv *kv, const char *want)
{
    return qn_fail(QN_E_FORMAT, "%s: metadata key '%s' (byte %" PRIu64 ") is %s, expected %s", g->path, kv->key,
                   kv->file_off, qn_gguf_vtype_name(kv->val.type), want);
}

/* Integer value of a scalar as (negative flag, magnitude) checks. */
static int int_range(const qn_gguf *g, const qn_gguf_kv *kv, int64_t lo, uint64_t hi, uint64_t *u, int64_t *s)
{
    const qn_gguf_val *v = &kv->val;
    if (v->type >= QN_GGUF_NTYPES || v->type == QN_GGUF_F32 || v->type == QN_GGUF_F64 || v->type == QN_GGUF_STR ||
        v->type == QN_GGUF_ARR)
        return wrong_type(g, kv, "an integer");
    int neg = is_signed(v->type) && v->i < 0;
    if ((neg && v->i < lo) || (!neg && v->u > hi))
        return qn_fail(QN_E_FORMAT, "%s: metadata key '%s' (byte %" PRIu64 ") value is out of range", g->path, kv->key,
                       kv->file_off);
    if (u) *u = v->u;
    if (s) *s = neg ? v->i : (int64_t)v->u;
    return 0;
}

int qn_gguf_get_u32(const qn_gguf *g, const char *key, uint32_t *out)
{
    const qn_gguf_kv *kv;
    uint64_t u = 0;
    int rc = get_kv(g, key, &kv);
    if (!rc) rc = int_range(g, kv, 0, UINT32_MAX, &u, NULL);
    if (!rc) *out = (uint32_t)u;
    return rc;
}

int qn_gguf_get_u64(const qn_gguf *g, const char *key, uint64_t *out)
{
    const qn_gguf_kv *kv;
    int rc = get_kv(g, key, &kv);
    return rc ? rc : int_range(g, kv, 0, UINT64_MAX, out, NULL);
}

int qn_gguf_get_i64(const qn_gguf *g, const char *key, int64_t *out)
{
    const qn_gguf_kv *kv;
    int rc = get_kv(g, key, &kv);
    return rc ? rc : int_range(g, kv, INT64_MIN, INT64_MAX, NULL, out);
}

int qn_gguf_get_f32(const qn_gguf *g, const char *key, float *out)
{
    const qn_gguf_kv *kv;
    int rc = get_kv(g, key, &kv);
    if (rc) return rc;
    if (kv->val.type == QN_GGUF_F32 || kv->val.type == QN_GGUF_F64) {
        *out = (float)kv->val.f;
        return 0;
    }
    int64_t s;
    if (int_range(g, kv, INT64_MIN, INT64_MAX, NULL, &s)) return wrong_type(g, kv, "a number");
    *out = (float)s;
    return 0;
}

int qn_gguf_get_bool(const qn_gguf *g, const char *key, int *out)
{
    const qn_gguf_kv *kv;
    int rc = get_kv(g, key, &kv);
    if (rc) return rc;
    if (kv->val.type != QN_GGUF_BOOL) return wrong_type(g, kv, "bool");
    *out = kv->val.u != 0;
    return 0;
}

int qn_gguf_get_str(const qn_gguf *g, const char *key, const char **out)
{
    const qn_gguf_kv *kv;
    int rc = get_kv(g, key, &kv);
    if (rc) return rc;
    if (kv->val.type != QN_GGUF_STR) return wrong_type(g, kv, "string");
    *out = kv->val.str;
    return 0;
}

int qn_gguf_get_arr(const qn_gguf *g, const char *key, int elem_type, const qn_gguf_val **out)
{
    const qn_gguf_kv *kv;
    int rc = get_kv(g, key, &kv);
    if (rc) return rc;
    if (kv->val.type != QN_GGUF_ARR || (elem_type >= 0 && kv->val.elem_type != (uint32_t)elem_type)) {
        char want[48];
        snprintf(want, sizeof want, "array of %s", elem_type >= 0 ? qn_gguf_vtype_name((uint32_t)elem_type) : "any");
        if (kv->val.type == QN_GGUF_ARR)
            return qn_fail(QN_E_FORMAT, "%s: metadata key '%s' (byte %" PRIu64 ") is an array of %s, expected %s",
                           g->path, key, kv->file_off, qn_gguf_vtype_name(kv->val.elem_type), want);
        return wrong_type(g, kv, want);
    }
    *out = &kv->val;
    return 0;
}

int qn_gguf_arr_int(const qn_gguf_val *arr, uint64_t i, int64_t *out)
{
    uint32_t t = arr->elem_type;
    size_t sz = qn_gguf_vtype_size(t);
    if (arr->type != QN_GGUF_ARR || !sz || t == QN_GGUF_F32 || t == QN_GGUF_F64 || i >= arr->n)
        return qn_fail(-EINVAL, "array element %" PRIu64 " is not an integer element", i);
    qn_gguf_val v;
    scalar_from_raw(t, (const uint8_t *)arr->raw + i * sz, &v);
    if (!is_signed(t) && v.u > (uint64_t)INT64_MAX) return qn_fail(QN_E_FORMAT, "array element %" PRIu64 " overflows", i);
    *out = is_signed(t) ? v.i : (int64_t)v.u;
    return 0;
}

int qn_gguf_read(const qn_gguf *g, uint64_t off, void *dst, size_t n)
{
    if (off > g->size || n > g->size - off)
        return qn_fail(-EINVAL, "%s: read of %zu bytes at byte %" PRIu64 " is beyond the end of the file (%" PRIu64 ")",
                       g->path, n, off, g->size);
    return src_read(g, off, dst, n);
}

int qn_gguf_read_tensor(const qn_gguf *g, const qn_gguf_tensor *t, void *dst, size_t cap)
{
    if (t->nbytes > cap)
        return qn_fail(-EINVAL, "%s: tensor '%s' has %" PRIu64 " bytes, buffer holds %zu", g->path, t->name, t->nbytes, cap);
    return qn_gguf_read(g, t->offset, dst, (size_t)t->nbytes);
}
