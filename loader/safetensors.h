/* safetensors.h — read (and write) safetensors checkpoints: one file or shards listed by
 * model.safetensors.index.json.
 *
 * Opening parses and fully validates every header (length vs file size, dtype, shape, offsets inside the data
 * section and consistent with dtype x shape, no overlaps) and builds one tensor table with a hash lookup by
 * name. Data is never mapped: reads are pread()s into caller buffers, so a streaming reader can take a
 * tensor's (fd, absolute offset, nbytes) from qn_st_locate() and read expert byte ranges itself.
 * Every error message names the file, the tensor and the byte offset where that applies. */
#ifndef QN_SAFETENSORS_H
#define QN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef enum qn_dtype {
    QN_DT_F32 = 0, QN_DT_F16, QN_DT_BF16, QN_DT_F64, QN_DT_F8_E4M3, QN_DT_F8_E5M2,
    QN_DT_I64, QN_DT_I32, QN_DT_I16, QN_DT_I8, QN_DT_U8, QN_DT_BOOL,
    QN_DT_COUNT
} qn_dtype;

#define QN_ST_MAX_DIMS 8

typedef struct qn_st_tensor {
    const char *name;
    qn_dtype dtype;
    int ndim;
    int64_t shape[QN_ST_MAX_DIMS];
    int file;           /* index into the store's files */
    uint64_t offset;    /* absolute byte offset in that file */
    uint64_t nbytes;
} qn_st_tensor;

/* Where a tensor's bytes are, for readers that do their own I/O (expert streaming). */
typedef struct qn_st_loc {
    int fd;             /* open read-only; owned by the store */
    const char *path;
    uint64_t offset;    /* absolute */
    uint64_t nbytes;
    qn_dtype dtype;
} qn_st_loc;

typedef struct qn_st_store qn_st_store;

/* `path`: a .safetensors file, a model.safetensors.index.json, or a folder holding either. */
int qn_st_open(qn_st_store **out, const char *path);
void qn_st_close(qn_st_store **s);

int qn_st_count(const qn_st_store *s);
const qn_st_tensor *qn_st_at(const qn_st_store *s, int i);     /* i in [0, count) */
const qn_st_tensor *qn_st_find(const qn_st_store *s, const char *name); /* NULL if absent */
int qn_st_nfiles(const qn_st_store *s);
const char *qn_st_file_path(const qn_st_store *s, int file);
int qn_st_locate(const qn_st_store *s, const char *name, qn_st_loc *loc);

/* Raw bytes [off, off + n) of tensor t into dst. */
int qn_st_read_raw(const qn_st_store *s, const qn_st_tensor *t, uint64_t off, void *dst, uint64_t n);
/* The whole tensor converted to float32; `count` must equal its element count.
 * Converts F32, F16, BF16, F64, F8_E4M3, F8_E5M2 and the integer types. */
int qn_st_read_f32(const qn_st_store *s, const char *name, float *dst, size_t count);
/* The whole tensor as int32 (I32, or I64 / I16 / I8 / U8 / BOOL within range). */
int qn_st_read_i32(const qn_st_store *s, const char *name, int32_t *dst, size_t count);
/* An F8_E4M3 weight [out][in] with its `<name>_scale_inv` block scales ([ceil(out/bo)][ceil(in/bi)], f32/bf16),
 * dequantised to float32 (w * scale_inv); plain f32 conversion when there is no scale tensor. */
int qn_st_read_f32_dequant(const qn_st_store *s, const char *name, float *dst, size_t count);

/* Check that every tensor a qwen3_next model of config `c` needs is present with the right shape and a float
 * dtype (mtp.* is recognised and ignored). Unknown extra tensors are reported as errors unless allow_extra. */
int qn_st_check_model(const qn_st_store *s, const qn_config *c, int allow_extra);

const char *qn_dtype_name(qn_dtype t);
int qn_dtype_size(qn_dtype t);                /* bytes per element */
int qn_dtype_parse(const char *name, qn_dtype *out); /* 0 or -1 for an unknown name */
int64_t qn_st_numel(const qn_st_tensor *t);

/* ---- writer (safetensors_write.c): header first, then the data of every tensor in order ----
 * Declare all tensors up front; then append their bytes in declaration order with any number of
 * qn_st_writer_put() calls; qn_st_writer_close() checks the byte count and closes. */
typedef struct qn_st_wtensor {
    const char *name;
    qn_dtype dtype;
    int ndim;
    int64_t shape[QN_ST_MAX_DIMS];
} qn_st_wtensor;

typedef struct qn_st_writer qn_st_writer;

/* metadata_json: NULL or a JSON object text for "__metadata__" (string values). */
int qn_st_writer_open(qn_st_writer **out, const char *path, const qn_st_wtensor *tensors, int n,
                      const char *metadata_json);
int qn_st_writer_put(qn_st_writer *w, const void *data, uint64_t nbytes);
/* Convert float32 values to the dtype of the tensor being written and append them. */
int qn_st_writer_put_f32(qn_st_writer *w, const float *data, size_t count);
/* Returns <0 if fewer or more bytes were put than declared; always frees *w. */
int qn_st_writer_close(qn_st_writer **w);

#endif
