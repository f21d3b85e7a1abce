/* upload.h — model-load uploads through two host-visible staging buffers used in turn (double buffering: the
 * host fills one while the GPU copies the other), with a progress line on stderr for loads over a second.
 *
 * qn_upl_put() hands out a host pointer for n bytes that will land at dst + off: on zero-copy devices the
 * destination's own mapping, else room in the current staging buffer with the copy already recorded (it runs
 * when the buffer is full or at qn_upl_close). Callers read or convert straight into that pointer. */
#ifndef QN_UPLOAD_H
#define QN_UPLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "vk.h"

#define QN_UPL_STAGE_MAX (64ull << 20)   /* bytes of one staging buffer */

struct qn_upl {
    qn_vk *v;
    qn_buf *st[2];
    qn_cmd *cmd[2];
    uint64_t cap, used;
    int cur;
    bool open;
    /* progress */
    const char *path;   /* shown in the progress line */
    uint64_t total, done;
    double t0, last;
    int progress;       /* 1: progress line for loads over a second; 0: never */
    bool shown;
};

/* Staging for `total` bytes (cap = min(total, QN_UPL_STAGE_MAX)); u->path and u->progress set by the caller. */
int qn_upl_open(struct qn_upl *u, qn_vk *v, uint64_t total);
/* n <= u->cap bytes at dst + off: *p to write them to (see above). */
int qn_upl_put(struct qn_upl *u, qn_buf *dst, uint64_t off, uint64_t n, void **p);
/* Host bytes to dst + off, in staging-sized chunks. */
int qn_upl_host(struct qn_upl *u, const void *src, qn_buf *dst, uint64_t off, uint64_t n);
/* Submit what is recorded, wait for everything, free the staging. Returns rc or the first error. Safe after a
 * failed or no qn_upl_open. */
int qn_upl_close(struct qn_upl *u, int rc);

#endif
