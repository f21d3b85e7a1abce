/* gguf.h — GGUF (v2/v3, little-endian) reader: header, every metadata value type (nested arrays too),
 * tensor infos, alignment and data offset, all bounds-checked. Metadata is parsed once into memory;
 * tensor data is never mapped: callers read byte ranges with qn_gguf_read() (pread) or open the path
 * themselves (O_DIRECT expert streaming) using the absolute offsets in qn_gguf_tensor.
 * Format facts: ggml/src/gguf.cpp and gguf-py (see docs/gguf-qwen3next.md). */
#ifndef QN_GGUF_H
#define QN_GGUF_H

#include <stddef.h>
#include <stdint.h>

#define QN_GGUF_MAGIC 0x46554747u   /* "GGUF" read as a little-endian u32 */
#define QN_GGUF_DEFAULT_ALIGNMENT 32
#define QN_GGUF_MAX_DIMS 4
#define QN_GGUF_MAX_NAME 63         /* ggml GGML_MAX_NAME (64) including the NUL */
#define QN_GGUF_MAX_DEPTH 8         /* nesting limit for arrays of arrays */

enum qn_gguf_vtype {
    QN_GGUF_U8 = 0, QN_GGUF_I8 = 1, QN_GGUF_U16 = 2, QN_GGUF_I16 = 3, QN_GGUF_U32 = 4, QN_GGUF_I32 = 5,
    QN_GGUF_F32 = 6, QN_GGUF_BOOL = 7, QN_GGUF_STR = 8, QN_GGUF_ARR = 9, QN_GGUF_U64 = 10, QN_GGUF_I64 = 11,
    QN_GGUF_F64 = 12, QN_GGUF_NTYPES
};

/* A metadata value. Scalars: the union member matching `type` (integers widened into u/i, floats into f,
 * bool into u). Strings: str/len (NUL-terminated copy; may contain NULs, len is authoritative).
 * Arrays: elem_type and n; numeric/bool elements packed in `raw` (element size per type, host order),
 * string elements in strs/lens, nested arrays in `items`. */
typedef struct qn_gguf_val {
    uint32_t type;
    uint32_t elem_type;
    uint64_t n;
    union {
        uint64_t u;
        int64_t i;
        double f;
        struct { const char *str; uint64_t len; };
        const void *raw;
        struct { const char *const *strs; const uint64_t *lens; };
        const struct qn_gguf_val *items;
    };
} qn_gguf_val;

typedef struct qn_gguf_kv {
    const char *key;
    qn_gguf_val val;
    uint64_t file_off;      /* byte offset of the key/value record in the file */
} qn_gguf_kv;

typedef struct qn_gguf_tensor {
    const char *name;
    uint32_t type;          /* ggml type id (quant.h) */
    uint32_t n_dims;
    uint64_t ne[QN_GGUF_MAX_DIMS];  /* ne[0] is the fastest-varying (row length); unused dims are 1 */
    uint64_t offset;        /* ABSOLUTE file offset of the data */
    uint64_t nbytes;
    uint64_t row_bytes;     /* bytes of one ne[0] row */
    uint64_t info_off;      /* file offset of the tensor-info record (for messages) */
} qn_gguf_tensor;

typedef struct qn_gguf qn_gguf;

/* Open and validate a file (the fd stays open for qn_gguf_read). */
int qn_gguf_open(qn_gguf **out, const char *path);
/* Parse a GGUF held in memory (the buffer must outlive the handle); `name` is used in messages. */
int qn_gguf_open_mem(qn_gguf **out, const void *buf, size_t size, const char *name);
void qn_gguf_close(qn_gguf **g);

const char *qn_gguf_path(const qn_gguf *g);
uint32_t qn_gguf_version(const qn_gguf *g);
uint32_t qn_gguf_alignment(const qn_gguf *g);
uint64_t qn_gguf_data_offset(const qn_gguf *g);    /* absolute offset of the data section */
uint64_t qn_gguf_file_size(const qn_gguf *g);

uint64_t qn_gguf_n_kv(const qn_gguf *g);
const qn_gguf_kv *qn_gguf_kv_at(const qn_gguf *g, uint64_t i);
const qn_gguf_kv *qn_gguf_find_kv(const qn_gguf *g, const char *key);   /* NULL if absent */

uint64_t qn_gguf_n_tensors(const qn_gguf *g);
const qn_gguf_tensor *qn_gguf_tensor_at(const qn_gguf *g, uint64_t i);
const qn_gguf_tensor *qn_gguf_find_tensor(const qn_gguf *g, const char *name);  /* NULL if absent */

/* Typed getters: -ENOENT (with a message) if the key is absent, QN_E_FORMAT if the stored type does not
 * convert (integers convert between widths when the value fits; get_f32/f64 also take integers). */
int qn_gguf_get_u32(const qn_gguf *g, const char *key, uint32_t *out);
int qn_gguf_get_u64(const qn_gguf *g, const char *key, uint64_t *out);
int qn_gguf_get_i64(const qn_gguf *g, const char *key, int64_t *out);
int qn_gguf_get_f32(const qn_gguf *g, const char *key, float *out);
int qn_gguf_get_bool(const qn_gguf *g, const char *key, int *out);
int qn_gguf_get_str(const qn_gguf *g, const char *key, const char **out);
/* Array getter: checks type ARR and elem_type (any element type when elem_type < 0). */
int qn_gguf_get_arr(const qn_gguf *g, const char *key, int elem_type, const qn_gguf_val **out);

/* Integer element i of a numeric/bool array value as int64 (u64 elements above INT64_MAX fail). */
int qn_gguf_arr_int(const qn_gguf_val *arr, uint64_t i, int64_t *out);
/* Size in bytes of one scalar of type t (0 for STR/ARR/unknown). */
size_t qn_gguf_vtype_size(uint32_t t);
const char *qn_gguf_vtype_name(uint32_t t);

/* Read n bytes at absolute offset off (bounds-checked against the file size). */
int qn_gguf_read(const qn_gguf *g, uint64_t off, void *dst, size_t n);
/* Read a whole tensor into dst (cap bytes available). */
int qn_gguf_read_tensor(const qn_gguf *g, const qn_gguf_tensor *t, void *dst, size_t cap);

#endif
