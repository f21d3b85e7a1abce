/* log.c — the logging sink. */
#include "qn_log.h"

#include <stdio.h>

static const char *const level_names[] = { "error", "warning", "info", "debug" };

static void log_stderr(void *user, enum qn_log_level level, const char *msg)
{
    (void)user;
    fprintf(stderr, "qnext: %s: %s\n", level_names[level], msg);
}

static qn_log_fn sink = log_stderr;
static void *sink_user;
static enum qn_log_level max_level = QN_LOG_WARN;

void qn_log_set(qn_log_fn fn, void *user, enum qn_log_level level)
{
    sink = fn ? fn : log_stderr;
    sink_user = user;
    max_level = level;
}

enum qn_log_level qn_log_level(void) { return max_level; }

void qn_log(enum qn_log_level level, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    if (level > max_level) return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sink(sink_user, level, buf);
}
