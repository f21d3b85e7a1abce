/* safetensors.c — open, validate and read safetensors files and sharded checkpoints (see safetensors.h).
 * Layout: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets[begin,end]},
 * "__metadata__": {...}}, then the data section; offsets are relative to the data section. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_err.h"
#include "qn_file.h"
#include "qn_num.h"

#define ST_MAX_HEADER (100ull << 20) /* the format's own limit on header size */
#define ST_MAX_NAME 1024
#define ST_CHUNK (1u << 18)          /* bytes per pread when converting */

struct qn_st_store {
    int nfiles;
    char **paths;
    int *fds;
    uint64_t *fsize;
    qn_st_tensor *t;
    int n, cap;
    int *slots;      /* open addressing: tensor index + 1, 0 = empty */
    uint32_t nslots; /* power of two */
};

/* ---- dtypes ---- */

static const struct { const char *name; int size; } dtypes[QN_DT_COUNT] = {
    [QN_DT_F32] = { "F32", 4 },     [QN_DT_F16] = { "F16", 2 },   [QN_DT_BF16] = { "BF16", 2 },
    [QN_DT_F64] = { "F64", 8 },     [QN_DT_F8_E4M3] = { "F8_E4M3", 1 }, [QN_DT_F8_E5M2] = { "F8_E5M2", 1 },
    [QN_DT_I64] = { "I64", 8 },     [QN_DT_I32] = { "I32", 4 },   [QN_DT_I16] = { "I16", 2 },
    [QN_DT_I8] = { "I8", 1 },       [QN_DT_U8] = { "U8", 1 },     [QN_DT_BOOL] = { "BOOL", 1 },
};

const char *qn_dtype_name(qn_dtype t) { return (unsigned)t < QN_DT_COUNT ? dtypes[t].name : "?"; }
int qn_dtype_size(qn_dtype t) { return (unsigned)t < QN_DT_COUNT ? dtypes[t].size : 0; }

int qn_dtype_parse(const char *name, qn_dtype *out)
{
    for (int i = 0; i < QN_DT_COUNT; i++)
        if (!strcmp(name, dtypes[i].name)) {
            *out = (qn_dtype)i;
            return 0;
        }
    return -1;
}

int64_t qn_st_numel(const qn_st_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* ---- name lookup ---- */

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s) h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

static int index_rebuild(qn_st_store *s)
{
    uint32_t want = 16;
    while (want < (uint32_t)s->n * 2u) want *= 2;
    int *slots = calloc(want, sizeof *slots);
    if (!slots) return qn_fail(-ENOMEM, "safetensors: out of memory for the tensor index");
    free(s->slots);
    s->slots = slots;
    s->nslots = want;
    for (int i = 0; i < s->n; i++) {
        uint32_t h = hash_name(s->t[i].name) & (want - 1);
        while (slots[h]) {
            if (!strcmp(s->t[slots[h] - 1].name, s->t[i].name))
                return qn_fail(QN_E_FORMAT, "%s: tensor '%s' appears twice (also in %s)", s->paths[s->t[i].file],
                               s->t[i].name, s->paths[s->t[slots[h] - 1].file]);
            h = (h + 1) & (want - 1);
        }
        slots[h] = i + 1;
    }
    return 0;
}

const qn_st_tensor *qn_st_find(const qn_st_store *s, const char *name)
{
    if (!s->nslots) return NULL;
    uint32_t h = hash_name(name) & (s->nslots - 1);
    while (s->slots[h]) {
        const qn_st_tensor *t = &s->t[s->slots[h] - 1];
        if (!strcmp(t->name, name)) return t;
        h = (h + 1) & (s->nslots - 1);
    }
    return NULL;
}

int qn_st_count(const qn_st_store *s) { return s->n; }
const qn_st_tensor *qn_st_at(const qn_st_store *s, int i) { return i >= 0 && i < s->n ? &s->t[i] : NULL; }
int qn_st_nfiles(const qn_st_store *s) { return s->nfiles; }
const char *qn_st_file_path(const qn_st_store *s, int file) { return file >= 0 && file < s->nfiles ? s->paths[file] : ""; }

/* ---- header parsing ---- */

static int json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != (double)(uint64_t)v->valuedouble)
        return -1;
    *out = (uint64_t)v->valuedouble;
    return 0;
}

/* Fill t from one header entry; data_size bounds the offsets; base = absolute offset of the data section. */
static int parse_entry(qn_st_tensor *t, const cJSON *e, const char *path, uint64_t base, uint64_t data_size)
{
    const char *nm = e->string;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of))
        return qn_fail(QN_E_FORMAT, "%s: tensor '%s': header entry needs dtype, shape and data_offsets", path, nm);
    if (qn_dtype_parse(dt->valuestring, &t->dtype))
        return qn_fail(QN_E_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, nm, dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > QN_ST_MAX_DIMS) return qn_fail(QN_E_FORMAT, "%s: tensor '%s' has %d dims (max %d)", path, nm, nd, QN_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(cJSON_GetArrayItem(sh, i), &d))
            return qn_fail(QN_E_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", path, nm, i);
        if (d && numel > UINT64_MAX / 16 / d)
            return qn_fail(QN_E_FORMAT, "%s: tensor '%s': shape overflows", path, nm);
        numel *= d;
        t->shape[i] = (int64_t)d;
    }
    uint64_t b, en;
    if (cJSON_GetArraySize(of) != 2 || json_u64(cJSON_GetArrayItem(of, 0), &b) || json_u64(cJSON_GetArrayItem(of, 1), &en))
        return qn_fail(QN_E_FORMAT, "%s: tensor '%s': data_offsets must be two non-negative integers", path, nm);
    uint64_t want = numel * (uint64_t)qn_dtype_size(t->dtype);
    if (en < b || en - b != want)
        return qn_fail(QN_E_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but %s x shape needs %llu",
                       path, nm, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
                       dtypes[t->dtype].name, (unsigned long long)want);
    if (en > data_size)
        return qn_fail(QN_E_FORMAT, "%s: tensor '%s': data ends at byte %llu, past the end of the file (%llu)", path, nm,
                       (unsigned long long)(base + en), (unsigned long long)(base + data_size));
    t->offset = base + b;
    t->nbytes = want;
    return 0;
}

static int cmp_offset(const void *a, const void *b)
{
    const qn_st_tensor *x = *(const qn_st_tensor *const *)a, *y = *(const qn_st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Tensors [first, s->n) all belong to one file: their byte ranges must not overlap. */
static int check_overlaps(qn_st_store *s, int first, const char *path)
{
    int m = s->n - first;
    if (m < 2) return 0;
    const qn_st_tensor **v = malloc(sizeof *v * (size_t)m);
    if (!v) return qn_fail(-ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < m; i++) v[i] = &s->t[first + i];
    qsort(v, (size_t)m, sizeof *v, cmp_offset);
    int rc = 0;
    for (int i = 1; i < m && !rc; i++)
        if (v[i]->nbytes && v[i - 1]->offset + v[i - 1]->nbytes > v[i]->offset)
            rc = qn_fail(QN_E_FORMAT, "%s: tensor '%s' (bytes %llu..%llu) overlaps tensor '%s' at byte offset %llu", path,
                         v[i]->name, (unsigned long long)v[i]->offset, (unsigned long long)(v[i]->offset + v[i]->nbytes),
                         v[i - 1]->name, (unsigned long long)v[i - 1]->offset);
    free(v);
    return rc;
}

static int add_tensor_slot(qn_st_store *s)
{
    if (s->n < s->cap) return 0;
    int cap = s->cap ? s->cap * 2 : 256;
    qn_st_tensor *t = realloc(s->t, sizeof *t * (size_t)cap);
    if (!t) return qn_fail(-ENOMEM, "safetensors: out of memory for %d tensors", cap);
    s->t = t;
    s->cap = cap;
    return 0;
}

static int parse_header(qn_st_store *s, int file, const char *hdr, uint64_t hlen)
{
    const char *path = s->paths[file];
    cJSON *j = cJSON_ParseWithLength(hdr, (size_t)hlen);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return qn_fail(QN_E_FORMAT, "%s: the header (bytes 8..%llu) is not a JSON object", path,
                       (unsigned long long)(8 + hlen));
    }
    uint64_t base = 8 + hlen, data_size = s->fsize[file] - base;
    int first = s->n, rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        if (!strcmp(e->string, "__metadata__")) continue;
        size_t len = strlen(e->string);
        if (!len || len >= ST_MAX_NAME) {
            rc = qn_fail(QN_E_FORMAT, "%s: a tensor name is empty or longer than %d bytes", path, ST_MAX_NAME);
            break;
        }
        if ((rc = add_tensor_slot(s))) break;
        qn_st_tensor *t = &s->t[s->n];
        memset(t, 0, sizeof *t);
        t->file = file;
        if ((rc = parse_entry(t, e, path, base, data_size))) break;
        if (!(t->name = strdup(e->string))) {
            rc = qn_fail(-ENOMEM, "%s: out of memory", path);
            break;
        }
        s->n++;
    }
    cJSON_Delete(j);
    return rc ? rc : check_overlaps(s, first, path);
}

static int add_file(qn_st_store *s, const char *path)
{
    int i = s->nfiles;
    char **p = realloc(s->paths, sizeof *p * (size_t)(i + 1));
    if (p) s->paths = p;
    int *f = realloc(s->fds, sizeof *f * (size_t)(i + 1));
    if (f) s->fds = f;
    uint64_t *z = realloc(s->fsize, sizeof *z * (size_t)(i + 1));
    if (z) s->fsize = z;
    if (!p || !f || !z || !(s->paths[i] = strdup(path))) return qn_fail(-ENOMEM, "%s: out of memory", path);
    s->fds[i] = -1;
    s->nfiles++;
    return i;
}

static int open_file(qn_st_store *s, const char *path)
{
    int file = add_file(s, path);
    if (file < 0) return file;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qn_fail(-errno, "%s: cannot open: %s", path, strerror(errno));
    s->fds[file] = fd;
    struct stat st;
    if (fstat(fd, &st)) return qn_fail(-errno, "%s: cannot stat: %s", path, strerror(errno));
    s->fsize[file] = (uint64_t)st.st_size;
    unsigned char le[8];
    if (s->fsize[file] < 8 || pread(fd, le, 8, 0) != 8)
        return qn_fail(QN_E_FORMAT, "%s: %llu bytes is too short for a safetensors file", path,
                       (unsigned long long)s->fsize[file]);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | le[i];
    if (hlen > s->fsize[file] - 8 || hlen > ST_MAX_HEADER || hlen < 2)
        return qn_fail(QN_E_FORMAT, "%s: header length %llu at byte offset 0 does not fit the file size %llu", path,
                       (unsigned long long)hlen, (unsigned long long)s->fsize[file]);
    char *hdr = malloc(hlen);
    if (!hdr) return qn_fail(-ENOMEM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)hlen);
    ssize_t got = pread(fd, hdr, hlen, 8);
    int rc = got == (ssize_t)hlen ? parse_header(s, file, hdr, hlen)
                                  : qn_fail(-EIO, "%s: cannot read the header at byte offset 8", path);
    free(hdr);
    return rc;
}

/* ---- shards ---- */

static int open_shard_named(qn_st_store *s, const char *dir, const char *shard, const char *index)
{
    if (!*shard || strchr(shard, '/') || !strcmp(shard, "..") || !strcmp(shard, "."))
        return qn_fail(QN_E_FORMAT, "%s: shard name '%s' is not a plain file name", index, shard);
    for (int i = 0; i < s->nfiles; i++) {
        const char *b = strrchr(s->paths[i], '/');
        if (!strcmp(b ? b + 1 : s->paths[i], shard)) return 0;
    }
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, shard) >= (int)sizeof path)
        return qn_fail(-ENAMETOOLONG, "%s: shard path too long", index);
    int rc = open_file(s, path);
    if (rc == -ENOENT) return qn_fail(-ENOENT, "%s: shard '%s' listed in %s is missing", path, shard, index);
    return rc < 0 ? rc : 0;
}

static int open_index(qn_st_store *s, const char *index)
{
    size_t len;
    char *txt;
    if (qn_read_file(index, 256u << 20, &txt, &len)) return qn_fail_ctx(QN_E_FORMAT, "reading the shard index");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", index);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    cJSON *j = cJSON_ParseWithLength(txt, len);
    free(txt);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    int rc = 0;
    if (!j) rc = qn_fail(QN_E_FORMAT, "%s: invalid JSON", index);
    else if (!cJSON_IsObject(wm)) rc = qn_fail(QN_E_FORMAT, "%s: no 'weight_map' object", index);
    const cJSON *e;
    if (!rc) cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e)) { rc = qn_fail(QN_E_FORMAT, "%s: weight_map['%s'] is not a file name", index, e->string); break; }
        if ((rc = open_shard_named(s, dir, e->valuestring, index))) break;
    }
    if (!rc) rc = index_rebuild(s);
    if (!rc) cJSON_ArrayForEach(e, wm) {
        const qn_st_tensor *t = qn_st_find(s, e->string);
        const char *b = t ? strrchr(s->paths[t->file], '/') : NULL;
        if (!t || strcmp(b ? b + 1 : s->paths[t->file], e->valuestring)) {
            rc = qn_fail(QN_E_FORMAT, "%s: tensor '%s' is listed in shard '%s' but not found there", index, e->string,
                         e->valuestring);
            break;
        }
    }
    cJSON_Delete(j);
    return rc;
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int qn_st_open(qn_st_store **out, const char *path)
{
    *out = NULL;
    qn_st_store *s = calloc(1, sizeof *s);
    if (!s) return qn_fail(-ENOMEM, "out of memory");
    struct stat st;
    char p[4096];
    int rc;
    size_t len = strlen(path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
        if (exists(p)) rc = open_index(s, p);
        else {
            snprintf(p, sizeof p, "%s/model.safetensors", path);
            rc = exists(p) ? open_file(s, p)
                           : qn_fail(-ENOENT, "%s: no model.safetensors or model.safetensors.index.json here", path);
        }
    } else if (len > 11 && !strcmp(path + len - 11, ".index.json")) {
        rc = open_index(s, path);
    } else {
        rc = open_file(s, path);
    }
    if (!rc && s->nfiles == 1) rc = index_rebuild(s);
    if (rc) {
        qn_st_close(&s);
        return rc;
    }
    *out = s;
    return 0;
}

void qn_st_close(qn_st_store **ps)
{
    qn_st_store *s = *ps;
    if (!s) return;
    for (int i = 0; i < s->nfiles; i++) {
        if (s->fds[i] >= 0) close(s->fds[i]);
        free(s->paths[i]);
    }
    for (int i = 0; i < s->n; i++) free((char *)s->t[i].name);
    free(s->paths);
    free(s->fds);
    free(s->fsize);
    free(s->t);
    free(s->slots);
    free(s);
    *ps = NULL;
}

/* ---- reading ---- */

int qn_st_locate(const qn_st_store *s, const char *name, qn_st_loc *loc)
{
    const qn_st_tensor *t = qn_st_find(s, name);
    if (!t) return qn_fail(-ENOENT, "%s: no tensor '%s'", s->nfiles ? s->paths[0] : "safetensors", name);
    loc->fd = s->fds[t->file];
    loc->path = s->paths[t->file];
    loc->offset = t->offset;
    loc->nbytes = t->nbytes;
    loc->dtype = t->dtype;
    return 0;
}

int qn_st_read_raw(const qn_st_store *s, const qn_st_tensor *t, uint64_t off, void *dst, uint64_t n)
{
    if (off > t->nbytes || n > t->nbytes - off)
        return qn_fail(-EINVAL, "%s: tensor '%s': read of %llu bytes at %llu is outside its %llu bytes", s->paths[t->file],
                       t->name, (unsigned long long)n, (unsigned long long)off, (unsigned long long)t->nbytes);
    uint64_t done = 0;
    while (done < n) {
        ssize_t r = pread(s->fds[t->file], (char *)dst + done, n - done, (off_t)(t->offset + off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return qn_fail(r < 0 ? -errno : -EIO, "%s: tensor '%s': read failed at byte offset %llu%s", s->paths[t->file],
                           t->name, (unsigned long long)(t->offset + off + done), r == 0 ? " (file truncated?)" : "");
        done += (uint64_t)r;
    }
    return 0;
}

static float f8_e4m3_to_f32(uint8_t b)
{
    int sign = b >> 7, e = (b >> 3) & 15, m = b & 7;
    float v;
    if (e == 15 && m == 7) return NAN;
    if (e == 0) v = ldexpf((float)m, -9);            /* subnormal: m/8 * 2^-6 */
    else v = ldexpf((float)(8 + m), e - 10);         /* (1 + m/8) * 2^(e-7) */
    return sign ? -v : v;
}

static void convert_f32(float *dst, const uint8_t *src, size_t n, qn_dtype dt)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = src + i * (size_t)dtypes[dt].size;
        uint16_t h; uint32_t u; uint64_t q; double d; int16_t s16; int32_t s32; int64_t s64;
        switch (dt) {
        case QN_DT_F32: memcpy(&u, p, 4); dst[i] = qn_bits_f32(u); break;
        case QN_DT_F16: memcpy(&h, p, 2); dst[i] = qn_f16_to_f32(h); break;
        case QN_DT_BF16: memcpy(&h, p, 2); dst[i] = qn_bf16_to_f32(h); break;
        case QN_DT_F64: memcpy(&q, p, 8); memcpy(&d, &q, 8); dst[i] = (float)d; break;
        case QN_DT_F8_E4M3: dst[i] = f8_e4m3_to_f32(*p); break;
        case QN_DT_F8_E5M2: dst[i] = qn_f16_to_f32((uint16_t)(*p << 8)); break;
        case QN_DT_I64: memcpy(&s64, p, 8); dst[i] = (float)s64; break;
        case QN_DT_I32: memcpy(&s32, p, 4); dst[i] = (float)s32; break;
        case QN_DT_I16: memcpy(&s16, p, 2); dst[i] = (float)s16; break;
        case QN_DT_I8: dst[i] = (float)(int8_t)*p; break;
        default: dst[i] = (float)*p; break; /* U8, BOOL */
        }
    }
}

typedef void (*convert_fn)(void *dst, size_t at, const uint8_t *src, size_t n, qn_dtype dt);

static void conv_f32_at(void *dst, size_t at, const uint8_t *src, size_t n, qn_dtype dt)
{
    convert_f32((float *)dst + at, src, n, dt);
}

static int read_converted(const qn_st_store *s, const char *name, void *dst, size_t count, convert_fn fn)
{
    const qn_st_tensor *t = qn_st_find(s, name);
    if (!t) return qn_fail(-ENOENT, "%s: no tensor '%s'", s->nfiles ? s->paths[0] : "safetensors", name);
    if ((uint64_t)qn_st_numel(t) != count)
        return qn_fail(QN_E_FORMAT, "%s: tensor '%s' has %lld elements, expected %zu", s->paths[t->file], name,
                       (long long)qn_st_numel(t), count);
    int es = dtypes[t->dtype].size;
    size_t per = ST_CHUNK / (size_t)es;
    uint8_t *buf = malloc(ST_CHUNK);
    if (!buf) return qn_fail(-ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < count && !rc; i += per) {
        size_t n = count - i < per ? count - i : per;
        rc = qn_st_read_raw(s, t, (uint64_t)i * (uint64_t)es, buf, (uint64_t)n * (uint64_t)es);
        if (!rc) fn(dst, i, buf, n, t->dtype);
    }
    free(buf);
    return rc;
}

int qn_st_read_f32(const qn_st_store *s, const char *name, float *dst, size_t count)
{
    return read_converted(s, name, dst, count, conv_f32_at);
}

static void conv_i32_at(void *dst, size_t at, const uint8_t *src, size_t n, qn_dtype dt)
{
    int32_t *d = (int32_t *)dst + at;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = src + i * (size_t)dtypes[dt].size;
        int64_t v = 0; int32_t v32; int16_t v16;
        switch (dt) {
        case QN_DT_I64: memcpy(&v, p, 8); break;
        case QN_DT_I32: memcpy(&v32, p, 4); v = v32; break;
        case QN_DT_I16: memcpy(&v16, p, 2); v = v16; break;
        case QN_DT_I8: v = (int8_t)*p; break;
        default: v = *p; break;
        }
        d[i] = v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
    }
}

int qn_st_read_i32(const qn_st_store *s, const char *name, int32_t *dst, size_t count)
{
    const qn_st_tensor *t = qn_st_find(s, name);
    if (t && t->dtype != QN_DT_I64 && t->dtype != QN_DT_I32 && t->dtype != QN_DT_I16 && t->dtype != QN_DT_I8 &&
        t->dtype != QN_DT_U8 && t->dtype != QN_DT_BOOL)
        return qn_fail(QN_E_FORMAT, "%s: tensor '%s' is %s, not an integer type", s->paths[t->file], name,
                       dtypes[t->dtype].name);
    return read_converted(s, name, dst, count, conv_i32_at);
}

int qn_st_read_f32_dequant(const qn_st_store *s, const char *name, float *dst, size_t count)
{
    int rc = qn_st_read_f32(s, name, dst, count);
    char sname[ST_MAX_NAME + 16];
    snprintf(sname, sizeof sname, "%s_scale_inv", name);
    const qn_st_tensor *t = qn_st_find(s, name), *sc = qn_st_find(s, sname);
    if (rc || !sc) return rc;
    if (t->ndim != 2 || sc->ndim != 2 || sc->shape[0] < 1 || sc->shape[1] < 1)
        return qn_fail(QN_E_FORMAT, "%s: block scales '%s' need a 2-D weight and 2-D scales", s->paths[sc->file], sname);
    int64_t rows = t->shape[0], cols = t->shape[1], so = sc->shape[0], si = sc->shape[1];
    int64_t bo = (rows + so - 1) / so, bi = (cols + si - 1) / si;
    if ((rows + 127) / 128 == so) bo = 128;
    if ((cols + 127) / 128 == si) bi = 128;
    if ((rows + bo - 1) / bo != so || (cols + bi - 1) / bi != si)
        return qn_fail(QN_E_FORMAT, "%s: scales '%s' [%lld, %lld] do not tile the weight [%lld, %lld]", s->paths[sc->file],
                       sname, (long long)so, (long long)si, (long long)rows, (long long)cols);
    float *scale = malloc(sizeof *scale * (size_t)(so * si));
    if (!scale) return qn_fail(-ENOMEM, "out of memory");
    rc = qn_st_read_f32(s, sname, scale, (size_t)(so * si));
    for (int64_t r = 0; r < rows && !rc; r++)
        for (int64_t c = 0; c < cols; c++) dst[r * cols + c] *= scale[(r / bo) * si + c / bi];
    free(scale);
    return rc;
}
