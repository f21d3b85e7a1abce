/* cli.c — shared argument parsing and error reporting for the subcommands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "qn_log.h"

void qn_cli_common_defaults(struct qn_cli_common *c)
{
    memset(c, 0, sizeof *c);
    c->backend = QN_BACKEND_VULKAN;
    c->io = "auto";
}

int qn_cli_common_opt(struct qn_cli_common *c, int opt, const char *arg)
{
    switch (opt) {
    case 'm': c->model = arg; return 1;
    case 'v': c->verbose++; qn_log_set(NULL, NULL, c->verbose >= 2 ? QN_LOG_DEBUG : QN_LOG_INFO); return 1;
    case QN_OPT_BACKEND:
        if (!strcmp(arg, "vulkan")) c->backend = QN_BACKEND_VULKAN;
        else if (!strcmp(arg, "cpu")) c->backend = QN_BACKEND_CPU;
        else { fprintf(stderr, "qnext: --backend: '%s' is not one of vulkan, cpu\n", arg); return -1; }
        return 1;
    case QN_OPT_DEVICE: c->device = arg; return 1;
    case QN_OPT_BOARD: c->board = arg; return 1;
    case QN_OPT_EXPERT_CACHE: return qn_cli_size("", "--expert-cache", arg, &c->expert_cache) < 0 ? -1 : 1;
    case QN_OPT_IO:
        if (strcmp(arg, "direct") && strcmp(arg, "buffered") && strcmp(arg, "auto")) {
            fprintf(stderr, "qnext: --io: '%s' is not one of direct, buffered, auto\n", arg);
            return -1;
        }
        c->io = arg;
        return 1;
    case QN_OPT_STATS: c->stats = true; return 1;
    case QN_OPT_PREFETCH: {
        long n;
        if (qn_cli_int("", "--prefetch", arg, 0, 64, &n) < 0) return -1;
        c->prefetch = (int)n;
        return 1;
    }
    case QN_OPT_EXPERT_POLICY:
        if (strcmp(arg, "lru") && strcmp(arg, "lfu")) {
            fprintf(stderr, "qnext: --expert-policy: '%s' is not one of lru, lfu\n", arg);
            return -1;
        }
        c->expert_policy = arg;
        return 1;
    case QN_OPT_EXPERT_HOT: {
        long n;
        if (qn_cli_int("", "--expert-hot", arg, 1, 1L << 24, &n) < 0) return -1;
        c->expert_hot = (int)n;
        return 1;
    }
    case QN_OPT_EXPERT_HOT_FROM: c->expert_hot_from = arg; return 1;
    case QN_OPT_EXPERT_TRACE: c->expert_trace = arg; return 1;
    case QN_OPT_EXPERTS:
        if (strcmp(arg, "device") && strcmp(arg, "host")) {
            fprintf(stderr, "qnext: --experts: '%s' is not one of device, host\n", arg);
            return -1;
        }
        c->experts = arg;
        return 1;
    case QN_OPT_PROFILE: c->profile = true; return 1;
    default: return 0;
    }
}

static const char *sep(const char *cmd) { return cmd && *cmd ? " " : ""; }

int qn_cli_int(const char *cmd, const char *name, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "qnext%s%s: %s: '%s' is not an integer\n", sep(cmd), cmd, name, s);
        return -EINVAL;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "qnext%s%s: %s: %ld is outside [%ld, %ld]\n", sep(cmd), cmd, name, v, lo, hi);
        return -ERANGE;
    }
    *out = v;
    return 0;
}

int qn_cli_float(const char *cmd, const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        fprintf(stderr, "qnext%s%s: %s: '%s' is not a number\n", sep(cmd), cmd, name, s);
        return -EINVAL;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "qnext%s%s: %s: %g is outside [%g, %g]\n", sep(cmd), cmd, name, v, lo, hi);
        return -ERANGE;
    }
    *out = v;
    return 0;
}

int qn_cli_size(const char *cmd, const char *name, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    if (!errno && end != s) {
        switch (*end) {
        case 'k': case 'K': mul = 1024.0; end++; break;
        case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
        case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
        case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
        default: break;
        }
        if (*end == 'i' && end[1] == 'B') end += 2;
        else if (*end == 'B') end++;
    }
    if (errno || end == s || *end || !(v >= 0) || v * mul > 1.8e19) {
        fprintf(stderr, "qnext%s%s: %s: '%s' is not a size (e.g. 6G, 512M, 4096)\n", sep(cmd), cmd, name, s);
        return -EINVAL;
    }
    *out = (uint64_t)(v * mul);
    return 0;
}

int qn_cli_tokens(const char *cmd, const char *s, int64_t limit, int32_t **ids, int *n)
{
    int cap = 16, cnt = 0;
    int32_t *a = malloc(sizeof *a * (size_t)cap);
    const char *p = s;
    if (!a) return -ENOMEM;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || (*end && *end != ',')) {
            fprintf(stderr, "qnext%s%s: --tokens: '%s' is not a comma-separated list of token ids\n", sep(cmd), cmd, s);
            free(a);
            return -EINVAL;
        }
        if (v < 0 || v > INT32_MAX || (limit > 0 && v >= limit)) {
            fprintf(stderr, "qnext%s%s: --tokens: token id %lld (position %d) is outside the vocabulary [0, %lld)\n",
                    sep(cmd), cmd, v, cnt, (long long)limit);
            free(a);
            return -ERANGE;
        }
        if (cnt == cap) {
            int32_t *b = realloc(a, sizeof *a * (size_t)(cap *= 2));
            if (!b) { free(a); return -ENOMEM; }
            a = b;
        }
        a[cnt++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (!cnt) {
        fprintf(stderr, "qnext%s%s: --tokens: the list is empty\n", sep(cmd), cmd);
        free(a);
        return -EINVAL;
    }
    *ids = a;
    *n = cnt;
    return 0;
}

int qn_cli_report(const char *cmd, int code)
{
    if (code >= 0) return 0;
    const char *m = qn_errmsg();
    fprintf(stderr, "qnext %s: %s\n", cmd, *m ? m : qn_errname(code));
    return 1;
}

int qn_cli_usage_error(const char *cmd)
{
    fprintf(stderr, "Try 'qnext %s --help'.\n", cmd);
    return 2;
}

const char *qn_cli_bytes(uint64_t b, char *buf, size_t cap)
{
    if (b >= 1000000000ull) snprintf(buf, cap, "%.2f GB", (double)b / 1e9);
    else if (b >= 1000000ull) snprintf(buf, cap, "%.2f MB", (double)b / 1e6);
    else if (b >= 1000ull) snprintf(buf, cap, "%.1f kB", (double)b / 1e3);
    else snprintf(buf, cap, "%llu B", (unsigned long long)b);
    return buf;
}
