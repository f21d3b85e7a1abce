/* npy.c — write and read NumPy .npy (version 1.0) float32 / int32 arrays. */
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

int qn_npy_write(const char *path, const void *data, int is_int, int ndim, const int64_t *shape)
{
    char hdr[256], dims[160] = "";
    size_t count = 1;
    int len = 0;
    for (int i = 0; i < ndim; i++) {
        len += snprintf(dims + len, sizeof dims - (size_t)len, "%lld%s", (long long)shape[i],
                        ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
        count *= (size_t)shape[i];
    }
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<%s', 'fortran_order': False, 'shape': (%s), }",
                     is_int ? "i4" : "f4", dims);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) return qn_fail(-errno, "%s: cannot create: %s", path, strerror(errno));
    unsigned short hlen = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    size_t w = fwrite(data, 4, count, f);
    if (fclose(f) != 0 || w != count) return qn_fail(-EIO, "%s: write failed", path);
    return 0;
}

int qn_npy_read_f32(const char *path, float **data, int *ndim, int64_t shape[8])
{
    unsigned char pre[10];
    char hdr[1024];
    FILE *f = fopen(path, "rb");
    int rc = QN_E_FORMAT;
    if (!f) return qn_fail(-errno, "%s: cannot open: %s", path, strerror(errno));
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY\x01", 7)) {
        qn_fail(rc, "%s: not a .npy v1 file", path);
        goto out;
    }
    size_t hlen = pre[8] | (size_t)pre[9] << 8;
    if (hlen >= sizeof hdr || fread(hdr, 1, hlen, f) != hlen) {
        qn_fail(rc, "%s: truncated header", path);
        goto out;
    }
    hdr[hlen] = 0;
    if (!strstr(hdr, "'<f4'") || strstr(hdr, "'fortran_order': True")) {
        qn_fail(rc, "%s: only little-endian float32 C-order arrays are read", path);
        goto out;
    }
    const char *p = strstr(hdr, "'shape': (");
    if (!p) { qn_fail(rc, "%s: no shape in header", path); goto out; }
    p += 10;
    size_t count = 1;
    *ndim = 0;
    while (*p && *p != ')' && *ndim < 8) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) break;
        shape[(*ndim)++] = v;
        count *= (size_t)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    *data = malloc(count * 4 + 4);
    if (!*data) { rc = qn_fail(-ENOMEM, "%s: out of memory", path); goto out; }
    if (fread(*data, 4, count, f) != count) {
        free(*data);
        *data = NULL;
        qn_fail(rc, "%s: truncated data", path);
        goto out;
    }
    rc = 0;
out:
    fclose(f);
    return rc;
}
