/* gguf_write.c — streaming GGUF v3 writer. Metadata and tensor infos are buffered in memory (they are
 * small) and written before the first data byte; tensor data streams through a 1 MiB buffer in declaration
 * order, each tensor padded with zeros to the alignment (the layout ggml's gguf.cpp checks: tensor i at
 * relative offset sum of the padded sizes of tensors 0..i-1). */
#include "gguf_write.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qn_err.h"
#include "quant.h"

#define OUTBUF (1u << 20)

typedef struct wtensor {
    char name[QN_GGUF_MAX_NAME + 1];
    uint32_t type, n_dims;
    uint64_t ne[QN_GGUF_MAX_DIMS];
    uint64_t rel, nbytes;
} wtensor;

typedef struct bytes { uint8_t *p; size_t n, cap; } bytes;

struct qn_gguf_writer {
    char *path;
    int fd, err, header_done;
    uint32_t alignment;
    bytes meta;             /* serialized key/value records */
    uint64_t n_kv;
    char **keys;            /* for duplicate checks */
    wtensor *t;
    uint64_t n_t, cap_t, data_size;
    uint64_t cur, cur_done; /* streaming position: tensor index, bytes of it written */
    uint8_t *out;
    size_t out_n;
    uint64_t file_pos;
};

/* ---------------------------------------------------------------- buffers and output */

static int fail(qn_gguf_writer *w, int code) { if (!w->err) w->err = code; return code; }

static int put(qn_gguf_writer *w, bytes *b, const void *p, size_t n)
{
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n < n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) return fail(w, qn_fail(-ENOMEM, "%s: out of memory for metadata", w->path));
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static int put_u32(qn_gguf_writer *w, bytes *b, uint32_t v) { return put(w, b, &v, 4); }
static int put_u64(qn_gguf_writer *w, bytes *b, uint64_t v) { return put(w, b, &v, 8); }
static int put_str(qn_gguf_writer *w, bytes *b, const char *s, uint64_t n)
{
    int rc = put_u64(w, b, n);
    return rc ? rc : put(w, b, s, (size_t)n);
}

static int flush_out(qn_gguf_writer *w)
{
    size_t off = 0;
    while (off < w->out_n) {
        ssize_t r = write(w->fd, w->out + off, w->out_n - off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail(w, qn_fail(-errno, "%s: write at byte %" PRIu64 " failed: %s", w->path,
                                          w->file_pos + off, strerror(errno)));
        off += (size_t)r;
    }
    w->file_pos += w->out_n;
    w->out_n = 0;
    return 0;
}

static int emit(qn_gguf_writer *w, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n) {
        size_t k = OUTBUF - w->out_n < n ? OUTBUF - w->out_n : n;
        memcpy(w->out + w->out_n, s, k);
        w->out_n += k; s += k; n -= k;
        if (w->out_n == OUTBUF && flush_out(w)) return w->err;
    }
    return 0;
}

static int emit_zeros(qn_gguf_writer *w, uint64_t n)
{
    static const uint8_t z[256];
    while (n) {
        size_t k = n < sizeof z ? (size_t)n : sizeof z;
        if (emit(w, z, k)) return w->err;
        n -= k;
    }
    return 0;
}

static uint64_t pad_to(uint64_t x, uint32_t a) { return (x + a - 1) / a * a; }

/* ---------------------------------------------------------------- open */

int qn_gguf_writer_open(qn_gguf_writer **out, const char *path, uint32_t alignment)
{
    *out = NULL;
    if (!alignment) alignment = QN_GGUF_DEFAULT_ALIGNMENT;
    if (alignment & (alignment - 1) || alignment > (1u << 30))
        return qn_fail(-EINVAL, "%s: alignment %u is not a power of two up to 2^30", path, alignment);
    qn_gguf_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path)) || !(w->out = malloc(OUTBUF))) {
        if (w) { free(w->path); free(w); }
        return qn_fail(-ENOMEM, "%s: out of memory", path);
    }
    w->alignment = alignment;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        free(w->out); free(w->path); free(w);
        return qn_fail(-e, "%s: cannot create: %s", path, strerror(e));
    }
    *out = w;
    if (alignment != QN_GGUF_DEFAULT_ALIGNMENT) return qn_gguf_w_u32(w, "general.alignment", alignment);
    return 0;
}

/* ---------------------------------------------------------------- metadata */

static int begin_kv(qn_gguf_writer *w, const char *key, uint32_t type)
{
    if (w->err) return w->err;
    if (w->header_done) return fail(w, qn_fail(-EINVAL, "%s: metadata '%s' added after tensor data started", w->path, key));
    size_t len = key ? strlen(key) : 0;
    if (!len || len > 65535) return fail(w, qn_fail(-EINVAL, "%s: metadata key must be 1..65535 bytes", w->path));
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key)) return fail(w, qn_fail(-EINVAL, "%s: duplicate metadata key '%s'", w->path, key));
    char **k = realloc(w->keys, (w->n_kv + 1) * sizeof *k);
    if (!k || !(k[w->n_kv] = strdup(key))) {
        if (k) w->keys = k;
        return fail(w, qn_fail(-ENOMEM, "%s: out of memory", w->path));
    }
    w->keys = k;
    w->n_kv++;
    int rc = put_str(w, &w->meta, key, len);
    return rc ? rc : put_u32(w, &w->meta, type);
}

static int put_value(qn_gguf_writer *w, const qn_gguf_val *v, int depth);

static int put_array(qn_gguf_writer *w, const qn_gguf_val *v, int depth)
{
    uint32_t et = v->elem_type;
    if (et >= QN_GGUF_NTYPES || (et == QN_GGUF_ARR && depth + 1 >= QN_GGUF_MAX_DEPTH))
        return fail(w, qn_fail(-EINVAL, "%s: bad array element type %u (or nested too deeply)", w->path, et));
    int rc = put_u32(w, &w->meta, et);
    if (!rc) rc = put_u64(w, &w->meta, v->n);
    if (et == QN_GGUF_STR) {
        for (uint64_t i = 0; i < v->n && !rc; i++)
            rc = put_str(w, &w->meta, v->strs[i], v->lens ? v->lens[i] : strlen(v->strs[i]));
    } else if (et == QN_GGUF_ARR) {
        for (uint64_t i = 0; i < v->n && !rc; i++) {
            if (v->items[i].type != QN_GGUF_ARR)
                return fail(w, qn_fail(-EINVAL, "%s: element %" PRIu64 " of an array of arrays is not an array", w->path, i));
            rc = put_value(w, &v->items[i], depth + 1);
        }
    } else if (!rc && v->n) {
        size_t sz = qn_gguf_vtype_size(et);
        if (v->n > SIZE_MAX / sz) return fail(w, qn_fail(-EINVAL, "%s: array too large", w->path));
        rc = put(w, &w->meta, v->raw, (size_t)(v->n * sz));
    }
    return rc;
}

static int put_value(qn_gguf_writer *w, const qn_gguf_val *v, int depth)
{
    uint8_t b[8];
    switch (v->type) {
    case QN_GGUF_U8: case QN_GGUF_I8: case QN_GGUF_BOOL: b[0] = (uint8_t)v->u; return put(w, &w->meta, b, 1);
    case QN_GGUF_U16: case QN_GGUF_I16: { uint16_t x = (uint16_t)v->u; return put(w, &w->meta, &x, 2); }
    case QN_GGUF_U32: case QN_GGUF_I32: { uint32_t x = (uint32_t)v->u; return put(w, &w->meta, &x, 4); }
    case QN_GGUF_F32: { float x = (float)v->f; return put(w, &w->meta, &x, 4); }
    case QN_GGUF_U64: case QN_GGUF_I64: return put_u64(w, &w->meta, v->u);
    case QN_GGUF_F64: return put(w, &w->meta, &v->f, 8);
    case QN_GGUF_STR: return put_str(w, &w->meta, v->str, v->len);
    case QN_GGUF_ARR: return put_array(w, v, depth);
    default: return fail(w, qn_fail(-EINVAL, "%s: bad value type %u", w->path, v->type));
    }
}

int qn_gguf_w_val(qn_gguf_writer *w, const char *key, const qn_gguf_val *v)
{
    int rc = begin_kv(w, key, v->type);
    return rc ? rc : put_value(w, v, 0);
}

int qn_gguf_w_u32(qn_gguf_writer *w, const char *key, uint32_t v)
{
    return qn_gguf_w_val(w, key, &(qn_gguf_val){.type = QN_GGUF_U32, .u = v});
}
int qn_gguf_w_i32(qn_gguf_writer *w, const char *key, int32_t v)
{
    return qn_gguf_w_val(w, key, &(qn_gguf_val){.type = QN_GGUF_I32, .i = v});
}
int qn_gguf_w_u64(qn_gguf_writer *w, const char *key, uint64_t v)
{
    return qn_gguf_w_val(w, key, &(qn_gguf_val){.type = QN_GGUF_U64, .u = v});
}
int qn_gguf_w_f32(qn_gguf_writer *w, const char *key, float v)
{
    return qn_gguf_w_val(w, key, &(qn_gguf_val){.type = QN_GGUF_F32, .f = v});
}
int qn_gguf_w_bool(qn_gguf_writer *w, const char *key, int v)
{
    return qn_gguf_w_val(w, key, &(qn_gguf_val){.type = QN_GGUF_BOOL, .u = v != 0});
}
int qn_gguf_w_str(qn_gguf_writer *w, const char *key, const char *s)
{
    return qn_gguf_w_val(w, key, &(qn_gguf_val){.type = QN_GGUF_STR, .str = s, .len = strlen(s)});
}
int qn_gguf_w_arr(qn_gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n)
{
    if (elem_type == QN_GGUF_STR || elem_type == QN_GGUF_ARR || !qn_gguf_vtype_size(elem_type))
        return fail(w, qn_fail(-EINVAL, "%s: qn_gguf_w_arr '%s' needs a numeric element type", w->path, key));
    return qn_gguf_w_val(w, key, &(qn_gguf_val){.type = QN_GGUF_ARR, .elem_type = elem_type, .n = n, .raw = data});
}
int qn_gguf_w_arr_str(qn_gguf_writer *w, const char *key, const char *const *strs, uint64_t n)
{
    return qn_gguf_w_val(w, key, &(qn_gguf_val){.type = QN_GGUF_ARR, .elem_type = QN_GGUF_STR, .n = n, .strs = strs});
}

/* ---------------------------------------------------------------- tensors and data */

int qn_gguf_w_tensor(qn_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne)
{
    if (w->err) return w->err;
    if (w->header_done) return fail(w, qn_fail(-EINVAL, "%s: tensor '%s' declared after data started", w->path, name));
    size_t len = strlen(name);
    if (!len || len > QN_GGUF_MAX_NAME)
        return fail(w, qn_fail(-EINVAL, "%s: tensor name '%s' must be 1..%d bytes", w->path, name, QN_GGUF_MAX_NAME));
    if (n_dims < 1 || n_dims > QN_GGUF_MAX_DIMS)
        return fail(w, qn_fail(-EINVAL, "%s: tensor '%s': n_dims %u not in 1..4", w->path, name, n_dims));
    for (uint64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return fail(w, qn_fail(-EINVAL, "%s: duplicate tensor '%s'", w->path, name));
    wtensor t = {.type = type, .n_dims = n_dims, .rel = w->data_size};
    memcpy(t.name, name, len + 1);
    uint64_t rows = 1;
    for (uint32_t k = 0; k < QN_GGUF_MAX_DIMS; k++) {
        t.ne[k] = k < n_dims ? ne[k] : 1;
        if (t.ne[k] > (uint64_t)INT64_MAX || (k && t.ne[k] && rows > (uint64_t)INT64_MAX / t.ne[k]))
            return fail(w, qn_fail(-EINVAL, "%s: tensor '%s': dimensions overflow", w->path, name));
        if (k) rows *= t.ne[k];
    }
    uint64_t rb;
    if (qn_ggml_row_bytes(type, t.ne[0], &rb) || (rows && rb > UINT64_MAX / 2 / rows))
        return fail(w, qn_fail_ctx(-EINVAL, "%s: tensor '%s': ", w->path, name));
    t.nbytes = rb * rows;
    if (w->n_t == w->cap_t) {
        uint64_t cap = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *p = realloc(w->t, cap * sizeof *p);
        if (!p) return fail(w, qn_fail(-ENOMEM, "%s: out of memory", w->path));
        w->t = p;
        w->cap_t = cap;
    }
    w->t[w->n_t++] = t;
    w->data_size = t.rel + pad_to(t.nbytes, w->alignment);
    return 0;
}

static int write_header(qn_gguf_writer *w)
{
    bytes info = {0};
    int rc = 0;
    for (uint64_t i = 0; i < w->n_t && !rc; i++) {
        const wtensor *t = &w->t[i];
        rc = put_str(w, &info, t->name, strlen(t->name));
        if (!rc) rc = put_u32(w, &info, t->n_dims);
        for (uint32_t k = 0; k < t->n_dims && !rc; k++) rc = put_u64(w, &info, t->ne[k]);
        if (!rc) rc = put_u32(w, &info, t->type);
        if (!rc) rc = put_u64(w, &info, t->rel);
    }
    uint32_t hdr[2] = {QN_GGUF_MAGIC, 3};
    uint64_t counts[2] = {w->n_t, w->n_kv};
    if (!rc) rc = emit(w, hdr, sizeof hdr);
    if (!rc) rc = emit(w, counts, sizeof counts);
    if (!rc) rc = emit(w, w->meta.p, w->meta.n);
    if (!rc) rc = emit(w, info.p, info.n);
    uint64_t at = sizeof hdr + sizeof counts + w->meta.n + info.n;
    if (!rc) rc = emit_zeros(w, pad_to(at, w->alignment) - at);
    free(info.p);
    w->header_done = 1;
    return rc;
}

/* Move past finished (and empty) tensors, writing their padding. */
static int advance(qn_gguf_writer *w)
{
    while (w->cur < w->n_t && w->cur_done == w->t[w->cur].nbytes) {
        uint64_t nb = w->t[w->cur].nbytes;
        if (emit_zeros(w, pad_to(nb, w->alignment) - nb)) return w->err;
        w->cur++;
        w->cur_done = 0;
    }
    return 0;
}

int qn_gguf_w_data(qn_gguf_writer *w, const void *p, size_t n)
{
    if (w->err) return w->err;
    if (!w->header_done && write_header(w)) return w->err;
    const uint8_t *s = p;
    while (n) {
        if (advance(w)) return w->err;
        if (w->cur >= w->n_t)
            return fail(w, qn_fail(-EINVAL, "%s: %zu bytes of data beyond the last declared tensor", w->path, n));
        uint64_t left = w->t[w->cur].nbytes - w->cur_done;
        size_t k = left < n ? (size_t)left : n;
        if (emit(w, s, k)) return w->err;
        w->cur_done += k; s += k; n -= k;
    }
    return advance(w);
}

static void writer_free(qn_gguf_writer *w)
{
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    free(w->meta.p);
    free(w->t);
    free(w->out);
    free(w->path);
    free(w);
}

int qn_gguf_writer_close(qn_gguf_writer **pw)
{
    qn_gguf_writer *w = *pw;
    if (!w) return 0;
    *pw = NULL;
    int rc = w->err;
    if (!rc && !w->header_done) rc = write_header(w);
    if (!rc) rc = advance(w);
    if (!rc && w->cur < w->n_t)
        rc = qn_fail(-EINVAL, "%s: tensor '%s' got %" PRIu64 " of %" PRIu64 " bytes", w->path, w->t[w->cur].name,
                     w->cur_done, w->t[w->cur].nbytes);
    if (!rc) rc = flush_out(w);
    if (close(w->fd) != 0 && !rc) rc = qn_fail(-errno, "%s: close failed: %s", w->path, strerror(errno));
    if (rc) unlink(w->path);
    writer_free(w);
    return rc;
}

void qn_gguf_writer_abort(qn_gguf_writer **pw)
{
    qn_gguf_writer *w = *pw;
    if (!w) return;
    *pw = NULL;
    close(w->fd);
    unlink(w->path);
    writer_free(w);
}
