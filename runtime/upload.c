/* upload.c — double-buffered staging uploads for model loads (upload.h); used by model.c and model_gguf.c. */
#include "upload.h"

#include <stdio.h>
#include <string.h>

#include "qn_time.h"

#define GIB(x) ((double)(x) / 1073741824.0)

static void progress(struct qn_upl *u, bool final)
{
    double t = qn_now_s(), el = t - u->t0;
    if (!u->progress || (!final && (el < 1.0 || t - u->last < 0.2)) || (final && !u->shown)) return;
    u->last = t;
    u->shown = true;
    fprintf(stderr, "\rqnext: loading %s: %3.0f%% (%.2f of %.2f GiB, %.2f GiB/s)%s", u->path,
            u->total ? 100.0 * (double)u->done / (double)u->total : 100.0, GIB(u->done), GIB(u->total),
            el > 0 ? GIB(u->done) / el : 0.0, final ? "\n" : "");
    fflush(stderr);
}

int qn_upl_open(struct qn_upl *u, qn_vk *v, uint64_t total)
{
    u->v = v;
    u->total = total;
    u->t0 = qn_now_s();
    u->cap = total < QN_UPL_STAGE_MAX ? (total + 15) / 16 * 16 : QN_UPL_STAGE_MAX;
    if (u->cap < 4096) u->cap = 4096;
    for (int i = 0; i < 2; i++) {
        int rc = qn_buf_create(v, QN_MEM_UPLOAD, u->cap, "staging (model load)", &u->st[i]);
        if (!rc) rc = qn_cmd_create(v, &u->cmd[i]);
        if (rc) return rc;
    }
    return 0;
}

static int flush(struct qn_upl *u)
{
    if (!u->open) return 0;
    u->open = false;
    int rc = qn_cmd_end(u->cmd[u->cur]);
    if (!rc) rc = qn_cmd_submit(u->cmd[u->cur]);
    u->cur ^= 1;
    u->used = 0;
    return rc;
}

int qn_upl_put(struct qn_upl *u, qn_buf *dst, uint64_t off, uint64_t n, void **p)
{
    int rc;
    u->done += n;
    progress(u, false);
    if (dst->map) {
        *p = (char *)dst->map + off;
        return 0;
    }
    if (u->used + n > u->cap && (rc = flush(u))) return rc;
    if (!u->open) {
        if ((rc = qn_cmd_begin(u->cmd[u->cur]))) return rc; /* waits for this staging buffer's last copies */
        u->open = true;
    }
    if ((rc = qn_cmd_copy(u->cmd[u->cur], u->st[u->cur], u->used, dst, off, n))) return rc;
    *p = (char *)u->st[u->cur]->map + u->used;
    u->used += (n + 15) / 16 * 16;
    return 0;
}

int qn_upl_host(struct qn_upl *u, const void *src, qn_buf *dst, uint64_t off, uint64_t n)
{
    for (uint64_t at = 0; at < n;) {
        uint64_t k = n - at < u->cap ? n - at : u->cap;
        void *p;
        int rc = qn_upl_put(u, dst, off + at, k, &p);
        if (rc) return rc;
        memcpy(p, (const char *)src + at, k);
        at += k;
    }
    return 0;
}

int qn_upl_close(struct qn_upl *u, int rc)
{
    if (!rc) rc = flush(u);
    for (int i = 0; i < 2; i++) {
        if (u->cmd[i]) {
            int r = qn_cmd_wait(u->cmd[i]);
            if (!rc) rc = r;
        }
        qn_cmd_destroy(&u->cmd[i]);
        qn_buf_destroy(u->v, &u->st[i]);
    }
    if (!rc) progress(u, true);
    else if (u->shown) fputc('\n', stderr);
    return rc;
}
