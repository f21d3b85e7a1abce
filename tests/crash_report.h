/* crash_report.h — for tests whose stdout is a pipe (meson): qn_test_crash_report() line-buffers stdout, so a crash
 * does not swallow the lines printed before it, and on a fatal signal prints "crashed on signal N" and a backtrace
 * (addresses: `addr2line -e BINARY -f OFFSET`) on stderr before the default action (header-only). */
#ifndef QN_CRASH_REPORT_H
#define QN_CRASH_REPORT_H

#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* On SIGSEGV / SIGBUS / SIGFPE / SIGILL / SIGABRT: "crashed on signal N" and the backtrace on stderr, then the
 * default action (the exit status still says which signal). */
static inline void qn_test_crash_handler(int sig)
{
    void *bt[64];
    char msg[64];
    int n = snprintf(msg, sizeof msg, "\ncrashed on signal %d (%s); backtrace:\n", sig, strsignal(sig));
    if (write(STDERR_FILENO, msg, (size_t)n) < 0) {}
    backtrace_symbols_fd(bt, backtrace(bt, 64), STDERR_FILENO);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Line-buffered stdout and the handler above on the fatal signals. */
static inline void qn_test_crash_report(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    void *bt[1];
    backtrace(bt, 1); /* loads libgcc now, not inside the handler */
    const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) signal(sigs[i], qn_test_crash_handler);
}

#endif
