/* expert_usage.c — per (layer, expert) usage counts, their file, the hot set and the cache options
 * (expert_usage.h). */
#include "expert_usage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "qn_err.h"

#define MAGIC "qnext-expert-usage"

struct qn_eu {
    int L, E;
    uint64_t *count;   /* [L, E] */
};

int qn_eu_create(qn_eu **out, int n_layers, int n_experts)
{
    *out = NULL;
    if (n_layers < 1 || n_experts < 1) return qn_fail(-EINVAL, "expert usage: %d layers x %d experts", n_layers, n_experts);
    qn_eu *u = calloc(1, sizeof *u);
    if (!u || !(u->count = calloc((size_t)n_layers * (size_t)n_experts, sizeof *u->count))) {
        free(u);
        return qn_fail(-ENOMEM, "out of memory");
    }
    u->L = n_layers;
    u->E = n_experts;
    *out = u;
    return 0;
}

void qn_eu_free(qn_eu **pu)
{
    if (!*pu) return;
    free((*pu)->count);
    free(*pu);
    *pu = NULL;
}

void qn_eu_count(qn_eu *u, int layer, const int32_t *ids, int n)
{
    if (!u || layer < 0 || layer >= u->L) return;
    uint64_t *row = u->count + (size_t)layer * (size_t)u->E;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < u->E) row[ids[i]]++;
}

uint64_t qn_eu_get(const qn_eu *u, int layer, int expert)
{
    if (layer < 0 || layer >= u->L || expert < 0 || expert >= u->E) return 0;
    return u->count[(size_t)layer * (size_t)u->E + (size_t)expert];
}

int qn_eu_write(const qn_eu *u, const char *path, const char *note)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return qn_fail(-errno, "expert usage: cannot create %s: %s", tmp, strerror(errno));
    fprintf(f, MAGIC " 1\n# routed-expert choices per (layer, expert) of a qnext run%s%s\n", note ? ": " : "",
            note ? note : "");
    fprintf(f, "layers %d experts %d\n# layer expert count\n", u->L, u->E);
    for (int l = 0; l < u->L; l++)
        for (int e = 0; e < u->E; e++) {
            uint64_t c = u->count[(size_t)l * (size_t)u->E + (size_t)e];
            if (c) fprintf(f, "%d %d %llu\n", l, e, (unsigned long long)c);
        }
    int bad = ferror(f);
    if (fclose(f) || bad) {
        remove(tmp);
        return qn_fail(-EIO, "expert usage: writing %s failed", tmp);
    }
    if (rename(tmp, path)) {
        int e = errno;
        remove(tmp);
        return qn_fail(-e, "expert usage: cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    return 0;
}

/* Up to `max` unsigned integers of line s (space separated, nothing else); returns how many or -1. */
static int parse_uints(const char *s, unsigned long long *v, int max)
{
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s || *s == '\n' || *s == '\r') return n;
        if (n == max || *s < '0' || *s > '9') return -1;
        char *end;
        errno = 0;
        v[n++] = strtoull(s, &end, 10);
        if (errno || (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')) return -1;
        s = end;
    }
}

/* One record of the file (after the two header records): "LAYER EXPERT COUNT". */
static int read_record(qn_eu *u, const char *path, long ln, const char *s, unsigned char *seen)
{
    unsigned long long v[3];
    if (parse_uints(s, v, 3) != 3)
        return qn_fail(QN_E_FORMAT, "%s:%ld: expected 'LAYER EXPERT COUNT' (three unsigned integers), got '%.60s'",
                       path, ln, s);
    if (v[0] >= (unsigned long long)u->L || v[1] >= (unsigned long long)u->E)
        return qn_fail(-EINVAL, "%s:%ld: layer %llu expert %llu is outside the model's %d layers x %d experts", path,
                       ln, v[0], v[1], u->L, u->E);
    size_t i = (size_t)v[0] * (size_t)u->E + (size_t)v[1];
    if (seen[i]) return qn_fail(QN_E_FORMAT, "%s:%ld: layer %llu expert %llu is listed twice", path, ln, v[0], v[1]);
    seen[i] = 1;
    u->count[i] = v[2];
    return 0;
}

/* The header records: line 0 = magic and version, line 1 = the shape, which must be the model's. */
static int read_header(const qn_eu *u, const char *path, long ln, const char *s, int which)
{
    if (which == 0) {
        unsigned long long ver;
        size_t n = strlen(MAGIC);
        if (strncmp(s, MAGIC, n) || (s[n] != ' ' && s[n] != '\t'))
            return qn_fail(QN_E_FORMAT, "%s:%ld: not a qnext expert usage file (it starts '%.40s'; expected '" MAGIC
                           " 1', as written by --expert-trace)", path, ln, s);
        if (parse_uints(s + n, &ver, 1) != 1 || ver != 1)
            return qn_fail(QN_E_FORMAT, "%s:%ld: unsupported version '%.20s' (this qnext reads version 1)", path, ln,
                           s + n + 1);
        return 0;
    }
    int L, E, end = 0;
    if (sscanf(s, "layers %d experts %d %n", &L, &E, &end) != 2 || s[end])
        return qn_fail(QN_E_FORMAT, "%s:%ld: expected 'layers N experts M', got '%.60s'", path, ln, s);
    if (L != u->L || E != u->E)
        return qn_fail(-EINVAL, "%s:%ld: the counts are for %d layers x %d experts; this model has %d x %d", path, ln,
                       L, E, u->L, u->E);
    return 0;
}

int qn_eu_read(qn_eu *u, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return qn_fail(-errno, "expert usage: cannot open %s: %s", path, strerror(errno));
    unsigned char *seen = calloc((size_t)u->L * (size_t)u->E, 1);
    char *line = NULL;
    size_t cap = 0;
    long ln = 0;
    int rec = 0, rc = seen ? 0 : qn_fail(-ENOMEM, "out of memory");
    memset(u->count, 0, sizeof *u->count * (size_t)u->L * (size_t)u->E);
    while (!rc && getline(&line, &cap, f) >= 0) {
        ln++;
        line[strcspn(line, "\r\n")] = 0;
        const char *s = line + strspn(line, " \t");
        if (!*s || *s == '#') continue;
        rc = rec < 2 ? read_header(u, path, ln, s, rec) : read_record(u, path, ln, s, seen);
        rec++;
    }
    if (!rc && ferror(f)) rc = qn_fail(-EIO, "expert usage: reading %s failed", path);
    if (!rc && rec < 2)
        rc = qn_fail(QN_E_FORMAT, "%s: the file ends after %ld line(s), before its '%s' line", path, ln,
                     rec ? "layers N experts M" : MAGIC " 1");
    free(line);
    free(seen);
    fclose(f);
    return rc;
}

static const qn_eu *sort_u;

static int by_count(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    uint64_t ci = sort_u->count[i], cj = sort_u->count[j];
    return ci != cj ? (ci < cj ? 1 : -1) : (i > j) - (i < j);
}

int qn_eu_top(const qn_eu *u, int n, int32_t *pairs)
{
    size_t N = (size_t)u->L * (size_t)u->E, m = 0;
    size_t *idx = malloc(sizeof *idx * (N ? N : 1));
    if (!idx) return qn_fail(-ENOMEM, "out of memory");
    for (size_t i = 0; i < N; i++)
        if (u->count[i]) idx[m++] = i;
    sort_u = u; /* one caller thread (model load) */
    qsort(idx, m, sizeof *idx, by_count);
    int k = (size_t)n < m ? n : (int)m;
    for (int i = 0; i < k; i++) {
        pairs[2 * i] = (int32_t)(idx[i] / (size_t)u->E);
        pairs[2 * i + 1] = (int32_t)(idx[i] % (size_t)u->E);
    }
    free(idx);
    return k;
}

int qn_eu_policy(const char *name, const struct qn_exp_policy **out)
{
    *out = NULL;
    if (name && ((strcmp(name, "lru") && strcmp(name, "lfu")) || !(*out = qn_exp_policy_by_name(name))))
        return qn_fail(-EINVAL, "--expert-policy: '%s' is not one of lru, lfu", name);
    return 0;
}

int qn_eu_cache_opts(const struct qn_model_params *p, int n_layers, int n_experts, struct qn_eu_cache_opts *out)
{
    memset(out, 0, sizeof *out);
    int rc = qn_eu_policy(p->expert_policy, &out->policy);
    if (rc) return rc;
    if (!p->expert_hot && !p->expert_hot_from) return 0;
    if (!p->expert_hot || !p->expert_hot_from)
        return qn_fail(-EINVAL, "%s: a pinned hot set needs both --expert-hot N (how many experts) and "
                       "--expert-hot-from FILE (usage counts written by --expert-trace)",
                       p->expert_hot ? "--expert-hot" : "--expert-hot-from");
    qn_eu *u;
    rc = qn_eu_create(&u, n_layers, n_experts);
    if (!rc) rc = qn_eu_read(u, p->expert_hot_from);
    if (!rc && !(out->hot = malloc(sizeof *out->hot * 2 * (size_t)p->expert_hot))) rc = qn_fail(-ENOMEM, "out of memory");
    if (!rc) rc = qn_eu_top(u, p->expert_hot, out->hot);
    if (rc >= 0) out->n_hot = rc, rc = 0;
    qn_eu_free(&u);
    if (rc) {
        free(out->hot);
        out->hot = NULL;
    }
    return rc;
}
