/* npy.h — NumPy .npy files (format 1.0): float32 / int32 arrays in C order. */
#ifndef QN_NPY_H
#define QN_NPY_H

#include <stdint.h>

/* Write `data` (float32 when is_int == 0, int32 otherwise) with the given shape to `path`. */
int qn_npy_write(const char *path, const void *data, int is_int, int ndim, const int64_t *shape);

/* Read a float32 array; *data is malloc'd, shape[] receives up to 8 dims. */
int qn_npy_read_f32(const char *path, float **data, int *ndim, int64_t shape[8]);

#endif
