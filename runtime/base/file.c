/* file.c — a whole file into memory (qn_file.h). */
#include "qn_file.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qn_err.h"

int qn_read_file(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return qn_fail(-errno, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    int rc = 0;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode))
        rc = qn_fail(-EINVAL, "%s: not a regular file", path);
    else if ((uint64_t)st.st_size > max)
        rc = qn_fail(QN_E_FORMAT, "%s: larger than %zu bytes (%lld)", path, max, (long long)st.st_size);
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        rc = qn_fail(-ENOMEM, "%s: out of memory (%lld bytes)", path, (long long)st.st_size);
    else if ((n = fread(buf, 1, (size_t)st.st_size, f)) != (size_t)st.st_size)
        rc = qn_fail(-EIO, "%s: short read (%zu of %lld bytes)", path, n, (long long)st.st_size);
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}
