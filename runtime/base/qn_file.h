/* qn_file.h — reading a whole (small) file: configs, tokenizers, shard indexes. */
#ifndef QN_FILE_H
#define QN_FILE_H

#include <stddef.h>

/* The regular file at path into a malloc'd buffer *out of its *len bytes plus a NUL after them (the bytes may
 * hold NULs themselves). Fails, naming the path (qn_err.h; *out NULL), when it cannot be opened, is not a regular
 * file, is larger than max bytes (QN_E_FORMAT), memory runs out or the read comes up short. */
int qn_read_file(const char *path, size_t max, char **out, size_t *len);

#endif
