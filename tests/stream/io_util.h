/* io_util.h — helpers shared by the IO tests and the IO benchmark: a scratch directory on the repo's
 * filesystem, random files whose bytes are kept in memory, an engine over one file, and check macros. */
#ifndef QN_TEST_IO_UTIL_H
#define QN_TEST_IO_UTIL_H

#include "qn_err.h"
#include "qn_rng.h"
#include "runtime/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                             \
            fprintf(stderr, " [last error: %s]\n", qn_errmsg());                      \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#define TMPFS_MAGIC_ 0x01021994

/* mkdir -p `dir` (one level is enough: it lives in the build dir); warn loudly if it is tmpfs. */
static inline void tio_scratch_dir(const char *dir)
{
    CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", dir, strerror(errno));
    struct statfs sf;
    CHECK(statfs(dir, &sf) == 0, "statfs %s", dir);
    if ((unsigned long)sf.f_type == TMPFS_MAGIC_)
        fprintf(stderr, "WARNING: %s is tmpfs: O_DIRECT alignment is not enforced there, direct-IO checks "
                        "prove less\n", dir);
}

/* Write `size` random bytes to dir/name.<pid>; returns the malloc'd bytes, path in `path`. */
static inline uint8_t *tio_make_file(const char *dir, const char *name, size_t size, uint64_t seed, char *path,
                                     size_t path_n)
{
    snprintf(path, path_n, "%s/%s.%d", dir, name, (int)getpid());
    uint8_t *data = malloc(size ? size : 1);
    CHECK(data, "malloc %zu", size);
    qn_rng r;
    qn_rng_seed(&r, seed);
    for (size_t i = 0; i < size; i += 8) {
        uint64_t v = qn_rng_u64(&r);
        memcpy(data + i, &v, size - i < 8 ? size - i : 8);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0, "create %s: %s", path, strerror(errno));
    for (size_t off = 0; off < size;) {
        ssize_t w = write(fd, data + off, size - off);
        CHECK(w > 0, "write %s: %s", path, strerror(errno));
        off += (size_t)w;
    }
    CHECK(fsync(fd) == 0, "fsync %s", path);
    close(fd);
    return data;
}

/* Evict the file's clean pages from the page cache (no root needed). */
static inline void tio_drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0, "open %s", path);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* IO engine parameters of the given mode and engine with the QNEXT_IO_FAULTS variable ignored (the cases that
 * inject faults set their own). */
static inline struct qn_io_params tio_params(enum qn_io_mode mode, enum qn_io_engine engine)
{
    struct qn_io_params p;
    qn_io_default_params(&p);
    p.mode = mode;
    p.engine = engine;
    p.no_env_faults = true;
    return p;
}

/* An engine of params p (NULL: the defaults) over the one file at path, its id in *f (NULL: not wanted); `what`
 * names the case in a failure. */
static inline qn_io *tio_open(const struct qn_io_params *p, const char *path, const char *what, int *f)
{
    qn_io *io;
    CHECK(qn_io_open(&io, p) == 0, "open (%s)", what);
    int id = qn_io_add_file(io, path);
    CHECK(id >= 0, "add_file (%s): %d", what, id);
    if (f) *f = id;
    return io;
}

#endif
