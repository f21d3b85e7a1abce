/* gguf_write.h — streaming GGUF v3 writer (for `qnext quantize` and `qnext synth --format gguf`).
 *
 * Use: open; add metadata (any order); declare every tensor in the order its data will follow; then
 * stream the data with qn_gguf_w_data (any chunking; the writer pads each tensor to the alignment, so
 * offsets are the contiguous layout ggml's gguf loader requires); close. The header, metadata and tensor
 * infos are written at the first qn_gguf_w_data (or at close). Errors are sticky: after one, every call
 * returns it, and close removes the partial file. */
#ifndef QN_GGUF_WRITE_H
#define QN_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct qn_gguf_writer qn_gguf_writer;

/* alignment 0 means the GGUF default 32; any other power of two is written as general.alignment. */
int qn_gguf_writer_open(qn_gguf_writer **out, const char *path, uint32_t alignment);

int qn_gguf_w_u32(qn_gguf_writer *w, const char *key, uint32_t v);
int qn_gguf_w_i32(qn_gguf_writer *w, const char *key, int32_t v);
int qn_gguf_w_u64(qn_gguf_writer *w, const char *key, uint64_t v);
int qn_gguf_w_f32(qn_gguf_writer *w, const char *key, float v);
int qn_gguf_w_bool(qn_gguf_writer *w, const char *key, int v);
int qn_gguf_w_str(qn_gguf_writer *w, const char *key, const char *s);
/* Array of n numeric/bool elements of elem_type, packed little-endian in data. */
int qn_gguf_w_arr(qn_gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n);
/* Array of n NUL-terminated strings. */
int qn_gguf_w_arr_str(qn_gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Any value, including arrays of arrays (strings use v->len; string arrays use v->lens or strlen if NULL). */
int qn_gguf_w_val(qn_gguf_writer *w, const char *key, const qn_gguf_val *v);

/* Declare the next tensor: ne[0] is the row length (fastest), n_dims 1..4. */
int qn_gguf_w_tensor(qn_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne);
/* Append n bytes of tensor data (continuing the current tensor, then the next ...). */
int qn_gguf_w_data(qn_gguf_writer *w, const void *p, size_t n);
/* Finish the file; fails (and removes the file) if a declared tensor did not get all its bytes. */
int qn_gguf_writer_close(qn_gguf_writer **w);
/* Drop the writer and remove the partial file. */
void qn_gguf_writer_abort(qn_gguf_writer **w);

#endif
