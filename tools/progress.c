/* progress.c — the progress bar and the Ctrl-C cancel of long tool work. */
#include "qn_time.h"
#include "progress.h"

#include <signal.h>
#include <stdio.h>
#include <time.h>

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

int qn_progress_cb(void *user, uint64_t done, uint64_t total)
{
    qn_progress *p = user;
    double t = qn_now_s();
    if (p->show && (t - p->last >= 0.2 || done == total)) {
        double el = t - p->t0, rate = el > 0 ? (double)done / el : 0;
        int w = total ? (int)(30.0 * (double)done / (double)total) : 30;
        fprintf(stderr, "\r  [%-30.*s] %3.0f%%  %8.2f / %.2f GB  %5.2f GB/s  ETA %4.0f s ", w,
                "##############################", total ? 100.0 * (double)done / (double)total : 100.0,
                (double)done / 1e9, (double)total / 1e9, rate / 1e9, rate > 0 ? (double)(total - done) / rate : 0.0);
        p->last = t;
    }
    return interrupted;
}

int qn_progress_run(qn_progress *p, int (*work)(void *arg), void *arg, double *seconds)
{
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    p->t0 = p->last = qn_now_s();
    int rc = work(arg);
    *seconds = qn_now_s() - p->t0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (p->show) fputc('\n', stderr);
    return rc;
}
