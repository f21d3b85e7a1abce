/* env.c — numeric environment knobs (qn_env.h). */
#include "qn_env.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qn_log.h"

#define MAX_WARNED 32

/* Warn once per variable name (names are string literals: pointer identity, then contents). */
static void warn_once(const char *name, const char *value, uint64_t def, uint64_t lo, uint64_t hi)
{
    static const char *warned[MAX_WARNED];
    static int n;
    for (int i = 0; i < n; i++)
        if (warned[i] == name || !strcmp(warned[i], name)) return;
    if (n < MAX_WARNED) warned[n++] = name;
    QN_WARN("%s='%s' is not a whole number in [%llu, %llu]; using the default %llu", name, value,
            (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)def);
}

uint64_t qn_env_u64(const char *name, uint64_t def, uint64_t lo, uint64_t hi)
{
    const char *e = getenv(name);
    if (!e || !*e) return def;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(e, &end, 0);
    if (strchr(e, '-') || *end || end == e || errno == ERANGE || v < lo || v > hi) {
        warn_once(name, e, def, lo, hi);
        return def;
    }
    return (uint64_t)v;
}
