/* progress.h — long tool work (synth, quantize): a progress bar on stderr and Ctrl-C / SIGTERM turned into a
 * cancel that the library sees through its progress callback. */
#ifndef QN_PROGRESS_H
#define QN_PROGRESS_H

#include <stdint.h>

typedef struct qn_progress {
    int show;        /* draw the bar (a tty, or --progress) */
    double t0, last; /* start and last redraw, seconds */
} qn_progress;

/* The callback of qn_synth_opts.progress / qn_conv_opts.progress (`user` = the qn_progress): redraws at most
 * five times a second and returns nonzero (cancel) once SIGINT or SIGTERM arrived during qn_progress_run. */
int qn_progress_cb(void *user, uint64_t done, uint64_t total);

/* Run work(arg) with SIGINT/SIGTERM caught as a cancel; *seconds receives how long it took. Returns work's
 * result. The bar's line is ended afterwards. */
int qn_progress_run(qn_progress *p, int (*work)(void *arg), void *arg, double *seconds);

#endif
