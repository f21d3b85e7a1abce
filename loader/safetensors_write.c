/* safetensors_write.c — streaming safetensors writer: the header is written first (all tensors declared up front),
 * then each tensor's bytes are appended in declaration order, so a checkpoint of any size is written with
 * O(1) memory (used by `qnext synth` and by tests that make bad files). */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "qn_num.h"

struct qn_st_writer {
    FILE *f;
    char *path;
    qn_st_wtensor *t; /* names are not owned: only dtype/size are used after open */
    uint64_t *ends;   /* cumulative end offset of each tensor */
    int n, cur;
    uint64_t written, total;
};

static uint64_t wt_bytes(const qn_st_wtensor *t)
{
    uint64_t n = (uint64_t)qn_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    return n;
}

/* JSON header text, padded with spaces to a multiple of 8 bytes (as the reference implementation does). */
static char *build_header(const qn_st_wtensor *t, int n, const char *meta, const char *path, size_t *len)
{
    cJSON *j = cJSON_CreateObject();
    if (meta) {
        cJSON *m = cJSON_Parse(meta);
        if (!cJSON_IsObject(m)) {
            cJSON_Delete(m);
            cJSON_Delete(j);
            qn_fail(-EINVAL, "%s: __metadata__ must be a JSON object", path);
            return NULL;
        }
        cJSON_AddItemToObject(j, "__metadata__", m);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(j, t[i].name);
        cJSON_AddStringToObject(e, "dtype", qn_dtype_name(t[i].dtype));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t[i].ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i].shape[d]));
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        off += wt_bytes(&t[i]);
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) {
        qn_fail(-ENOMEM, "%s: out of memory for the header", path);
        return NULL;
    }
    size_t l = strlen(s), pad = (8 - l % 8) % 8;
    char *p = realloc(s, l + pad + 1);
    if (!p) {
        free(s);
        qn_fail(-ENOMEM, "%s: out of memory for the header", path);
        return NULL;
    }
    memset(p + l, ' ', pad);
    p[l + pad] = 0;
    *len = l + pad;
    return p;
}

static int check_decl(const qn_st_wtensor *t, int n, const char *path)
{
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !*t[i].name || !strcmp(t[i].name, "__metadata__"))
            return qn_fail(-EINVAL, "%s: tensor %d has no usable name", path, i);
        if ((unsigned)t[i].dtype >= QN_DT_COUNT || t[i].ndim < 0 || t[i].ndim > QN_ST_MAX_DIMS)
            return qn_fail(-EINVAL, "%s: tensor '%s': bad dtype or ndim", path, t[i].name);
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 0) return qn_fail(-EINVAL, "%s: tensor '%s': negative dim", path, t[i].name);
    }
    return 0;
}

int qn_st_writer_open(qn_st_writer **out, const char *path, const qn_st_wtensor *tensors, int n,
                      const char *metadata_json)
{
    *out = NULL;
    int rc = check_decl(tensors, n, path);
    if (rc) return rc;
    qn_st_writer *w = calloc(1, sizeof *w);
    size_t hlen = 0;
    char *hdr = w ? build_header(tensors, n, metadata_json, path, &hlen) : NULL;
    if (!hdr) {
        free(w);
        return w ? QN_E_FORMAT : qn_fail(-ENOMEM, "%s: out of memory", path);
    }
    w->t = malloc(sizeof *w->t * (size_t)(n ? n : 1));
    w->ends = malloc(sizeof *w->ends * (size_t)(n ? n : 1));
    w->path = strdup(path);
    w->n = n;
    if (!w->t || !w->ends || !w->path) rc = qn_fail(-ENOMEM, "%s: out of memory", path);
    for (int i = 0; !rc && i < n; i++) {
        w->t[i] = tensors[i];
        w->ends[i] = (w->total += wt_bytes(&tensors[i]));
    }
    if (!rc && !(w->f = fopen(path, "wb"))) rc = qn_fail(-errno, "%s: cannot create: %s", path, strerror(errno));
    if (!rc) {
        unsigned char le[8];
        for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
        if (fwrite(le, 1, 8, w->f) != 8 || fwrite(hdr, 1, hlen, w->f) != hlen)
            rc = qn_fail(-EIO, "%s: cannot write the header", path);
    }
    free(hdr);
    if (rc) {
        qn_st_writer_close(&w);
        return rc;
    }
    *out = w;
    return 0;
}

int qn_st_writer_put(qn_st_writer *w, const void *data, uint64_t nbytes)
{
    if (nbytes > w->total - w->written)
        return qn_fail(-EINVAL, "%s: %llu more bytes than the declared tensors hold", w->path,
                       (unsigned long long)(nbytes - (w->total - w->written)));
    if (nbytes && fwrite(data, 1, (size_t)nbytes, w->f) != nbytes)
        return qn_fail(-EIO, "%s: write failed at data byte %llu", w->path, (unsigned long long)w->written);
    w->written += nbytes;
    while (w->cur < w->n && w->ends[w->cur] <= w->written) w->cur++;
    return 0;
}

int qn_st_writer_put_f32(qn_st_writer *w, const float *data, size_t count)
{
    /* skip empty tensors so `cur` names the tensor these values belong to */
    while (w->cur < w->n && w->ends[w->cur] <= w->written) w->cur++;
    if (w->cur >= w->n) return qn_fail(-EINVAL, "%s: all declared tensors are already written", w->path);
    qn_dtype dt = w->t[w->cur].dtype;
    int es = qn_dtype_size(dt);
    unsigned char buf[4096];
    size_t per = sizeof buf / (size_t)es;
    for (size_t i = 0; i < count; i += per) {
        size_t n = count - i < per ? count - i : per;
        for (size_t k = 0; k < n; k++) {
            float v = data[i + k];
            uint16_t h;
            switch (dt) {
            case QN_DT_F32: memcpy(buf + k * 4, &v, 4); break;
            case QN_DT_BF16: h = qn_f32_to_bf16(v); memcpy(buf + k * 2, &h, 2); break;
            case QN_DT_F16: h = qn_f32_to_f16(v); memcpy(buf + k * 2, &h, 2); break;
            default:
                return qn_fail(QN_E_UNSUPPORTED, "%s: tensor '%s': float values cannot be written as %s", w->path,
                               w->t[w->cur].name, qn_dtype_name(dt));
            }
        }
        int rc = qn_st_writer_put(w, buf, (uint64_t)n * (uint64_t)es);
        if (rc) return rc;
    }
    return 0;
}

int qn_st_writer_close(qn_st_writer **pw)
{
    qn_st_writer *w = *pw;
    int rc = 0;
    if (!w) return 0;
    if (w->f) {
        if (w->written != w->total)
            rc = qn_fail(-EINVAL, "%s: %llu of %llu declared data bytes were written", w->path,
                         (unsigned long long)w->written, (unsigned long long)w->total);
        if (fclose(w->f) != 0 && !rc) rc = qn_fail(-EIO, "%s: write failed on close", w->path);
    }
    free(w->t);
    free(w->ends);
    free(w->path);
    free(w);
    *pw = NULL;
    return rc;
}
