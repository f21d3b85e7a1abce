/* board.c — parse and schema-check board profiles (cJSON), pick one for a device, split the memory budget. */
#include "board.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qn_err.h"

#define BAD(...) qn_fail(QN_E_FORMAT, __VA_ARGS__)

static int check_keys(const cJSON *obj, const char *where, const char *origin, const char *const *allowed)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(it->string, *a);
        if (!ok) return BAD("board %s: %s: unknown key '%s' (see boards/README.md)", origin, where, it->string);
    }
    return 0;
}

static const cJSON *need_obj(const cJSON *root, const char *key, const char *origin, int *rc)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsObject(o)) *rc = BAD("board %s: '%s' must be an object", origin, key);
    return o;
}

static int get_num(const cJSON *obj, const char *sect, const char *key, double lo, double hi, const char *origin,
                   double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return BAD("board %s: %s.%s is missing", origin, sect, key);
    if (!cJSON_IsNumber(v)) return BAD("board %s: %s.%s must be a number", origin, sect, key);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return BAD("board %s: %s.%s: %g is outside [%g, %g]", origin, sect, key, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int get_uint(const cJSON *obj, const char *sect, const char *key, uint32_t lo, uint32_t hi, const char *origin,
                    uint32_t *out)
{
    double d = 0; /* set by get_num on success (a release build cannot see that qn_fail is negative) */
    int rc = get_num(obj, sect, key, lo, hi, origin, &d);
    if (rc < 0) return rc;
    if (d != (double)(uint32_t)d) return BAD("board %s: %s.%s: %g is not an integer", origin, sect, key, d);
    *out = (uint32_t)d;
    return 0;
}

/* "0x10de", "4318" or a JSON integer */
static int parse_id(const cJSON *v, const char *what, const char *origin, uint32_t *out)
{
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 4294967295.0) {
        *out = (uint32_t)v->valuedouble;
        return 0;
    }
    if (cJSON_IsString(v) && *v->valuestring) {
        char *end;
        errno = 0;
        unsigned long x = strtoul(v->valuestring, &end, 0);
        if (!errno && !*end && x <= 0xffffffffUL) { *out = (uint32_t)x; return 0; }
    }
    return BAD("board %s: %s must be an id like \"0x10de\"", origin, what);
}

static int parse_type(const cJSON *v, const char *origin, int *out)
{
    static const struct { const char *s; int t; } t[] = {
        { "any", QN_BOARD_ANY }, { "discrete", QN_BOARD_DISCRETE }, { "integrated", QN_BOARD_INTEGRATED },
        { "virtual", QN_BOARD_VIRTUAL }, { "cpu", QN_BOARD_CPU }, { "other", QN_BOARD_OTHER },
    };
    for (size_t i = 0; cJSON_IsString(v) && i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(v->valuestring, t[i].s)) { *out = t[i].t; return 0; }
    return BAD("board %s: match.device_type must be one of any, discrete, integrated, virtual, cpu, other", origin);
}

static int parse_match(const cJSON *m, const char *origin, struct qn_board *b)
{
    static const char *const keys[] = { "vendor_id", "device_ids", "name_contains", "device_type", "comment", NULL };
    int rc = check_keys(m, "match", origin, keys);
    const cJSON *v;
    b->match.device_type = QN_BOARD_ANY;
    if (rc < 0) return rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "vendor_id"))) {
        if ((rc = parse_id(v, "match.vendor_id", origin, &b->match.vendor_id)) < 0) return rc;
        b->match.has_vendor = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "device_ids"))) {
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > QN_BOARD_MAX_IDS)
            return BAD("board %s: match.device_ids must be an array of at most %d ids", origin, QN_BOARD_MAX_IDS);
        const cJSON *id;
        cJSON_ArrayForEach(id, v)
            if ((rc = parse_id(id, "match.device_ids[]", origin, &b->match.device_ids[b->match.ndevice_ids++])) < 0)
                return rc;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "name_contains"))) {
        if (!cJSON_IsString(v) || !*v->valuestring || strlen(v->valuestring) >= sizeof b->match.name_contains)
            return BAD("board %s: match.name_contains must be a non-empty string", origin);
        snprintf(b->match.name_contains, sizeof b->match.name_contains, "%s", v->valuestring);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "device_type")) && (rc = parse_type(v, origin, &b->match.device_type)) < 0)
        return rc;
    return 0;
}

static int parse_memory(const cJSON *m, const char *origin, struct qn_board *b)
{
    static const char *const keys[] = { "weights_fraction", "kv_fraction", "expert_cache_fraction", "reserve_mib",
                                        "comment", NULL };
    double reserve;
    int rc;
    if ((rc = check_keys(m, "memory", origin, keys)) < 0 ||
        (rc = get_num(m, "memory", "weights_fraction", 0, 1, origin, &b->mem.weights_fraction)) < 0 ||
        (rc = get_num(m, "memory", "kv_fraction", 0, 1, origin, &b->mem.kv_fraction)) < 0 ||
        (rc = get_num(m, "memory", "expert_cache_fraction", 0, 1, origin, &b->mem.expert_cache_fraction)) < 0 ||
        (rc = get_num(m, "memory", "reserve_mib", 0, 1 << 20, origin, &reserve)) < 0)
        return rc;
    double sum = b->mem.weights_fraction + b->mem.kv_fraction + b->mem.expert_cache_fraction;
    if (sum > 1.0 + 1e-9) return BAD("board %s: memory fractions add up to %g (more than 1)", origin, sum);
    b->mem.reserve_bytes = (uint64_t)(reserve * 1024 * 1024);
    return 0;
}

/* The optional matvec keys (see board.h, tune.mv_spec): "matvec_" + unroll|sgrows|xsh and "qmatvec_" + all five. */
static int parse_mv_spec(const cJSON *t, const char *origin, struct qn_board *b)
{
    static const char *const names[5] = { "wg", "rows", "unroll", "sgrows", "xsh" };
    static const uint32_t lo[5] = { 1, 1, 1, 1, 0 }, hi[5] = { 1024, 16, 16, 16, 2048 }, unroll[2] = { 4, 2 };
    for (int q = 0; q < 2; q++) {
        uint32_t *sp = b->tune.mv_spec[q];
        sp[0] = b->tune.matvec_wg, sp[1] = b->tune.matvec_rows, sp[2] = unroll[q], sp[3] = 1, sp[4] = 0;
        for (int i = q ? 0 : 2; i < 5; i++) {
            char key[32];
            snprintf(key, sizeof key, "%smatvec_%s", q ? "q" : "", names[i]);
            uint32_t top = q && i == 1 ? 64 : hi[i]; /* qmatvec_rows: up to 64 (its sweep tries 32) */
            int rc = cJSON_GetObjectItemCaseSensitive(t, key) ? get_uint(t, "tuning", key, lo[i], top, origin, &sp[i]) : 0;
            if (rc < 0) return rc;
        }
        if (sp[3] > sp[1])
            return BAD("board %s: tuning.%smatvec_sgrows (%u) is more than the rows per workgroup (%u)", origin,
                       q ? "q" : "", sp[3], sp[1]);
    }
    return 0;
}

static int parse_tuning(const cJSON *t, const char *origin, struct qn_board *b)
{
    static const char *const keys[] = { "matvec_wg", "matvec_rows", "norm_wg", "eltwise_wg", "subgroup", "comment",
                                        "matvec_unroll", "matvec_sgrows", "matvec_xsh", "qmatvec_wg", "qmatvec_rows",
                                        "qmatvec_unroll", "qmatvec_sgrows", "qmatvec_xsh", "gdn_wy_seg", NULL };
    int rc;
    if ((rc = check_keys(t, "tuning", origin, keys)) < 0 ||
        (rc = get_uint(t, "tuning", "matvec_wg", 1, 1024, origin, &b->tune.matvec_wg)) < 0 ||
        (rc = get_uint(t, "tuning", "matvec_rows", 1, 16, origin, &b->tune.matvec_rows)) < 0 ||
        (rc = get_uint(t, "tuning", "norm_wg", 1, 1024, origin, &b->tune.norm_wg)) < 0 ||
        (rc = get_uint(t, "tuning", "eltwise_wg", 1, 1024, origin, &b->tune.eltwise_wg)) < 0)
        return rc;
    const cJSON *sg = cJSON_GetObjectItemCaseSensitive(t, "subgroup");
    if (!cJSON_IsString(sg) || (strcmp(sg->valuestring, "prefer") && strcmp(sg->valuestring, "avoid")))
        return BAD("board %s: tuning.subgroup must be \"prefer\" or \"avoid\"", origin);
    b->tune.prefer_subgroup = !strcmp(sg->valuestring, "prefer");
    if (cJSON_GetObjectItemCaseSensitive(t, "gdn_wy_seg") &&
        (rc = get_uint(t, "tuning", "gdn_wy_seg", 1, 256, origin, &b->tune.gdn_wy_seg)) < 0)
        return rc;
    return parse_mv_spec(t, origin, b);
}

static int parse_root(const cJSON *root, const char *origin, struct qn_board *b)
{
    static const char *const keys[] = { "name", "description", "match", "memory", "tuning", "comment", NULL };
    int rc = 0;
    if (!cJSON_IsObject(root)) return BAD("board %s: the top level must be a JSON object", origin);
    if ((rc = check_keys(root, "top level", origin, keys)) < 0) return rc;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (!cJSON_IsString(name) || !*name->valuestring || strlen(name->valuestring) >= sizeof b->name)
        return BAD("board %s: 'name' must be a non-empty string (at most %zu characters)", origin, sizeof b->name - 1);
    for (const char *p = name->valuestring; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            return BAD("board %s: name '%s' may only use a-z 0-9 - _ .", origin, name->valuestring);
    snprintf(b->name, sizeof b->name, "%s", name->valuestring);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "description");
    if (d && !cJSON_IsString(d)) return BAD("board %s: 'description' must be a string", origin);
    snprintf(b->description, sizeof b->description, "%s", d ? d->valuestring : "");
    const cJSON *m = need_obj(root, "match", origin, &rc), *mem = need_obj(root, "memory", origin, &rc),
                *t = need_obj(root, "tuning", origin, &rc);
    if (rc < 0) return rc;
    if ((rc = parse_match(m, origin, b)) < 0 || (rc = parse_memory(mem, origin, b)) < 0 ||
        (rc = parse_tuning(t, origin, b)) < 0)
        return rc;
    return 0;
}

int qn_board_parse(const char *json, const char *origin, struct qn_board *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->origin, sizeof out->origin, "%s", origin);
    const char *err = NULL;
    cJSON *root = cJSON_ParseWithOpts(json ? json : "", &err, 1);
    if (!root) {
        long off = err && json ? (long)(err - json) : 0;
        return BAD("board %s: not valid JSON (near byte %ld)", origin, off);
    }
    int rc = parse_root(root, origin, out);
    cJSON_Delete(root);
    return rc;
}

int qn_board_load_file(const char *path, struct qn_board *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return qn_fail(-ENOENT, "board file %s: %s", path, strerror(errno));
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || n > (1 << 20) || fseek(f, 0, SEEK_SET) != 0 || !(buf = malloc((size_t)n + 1)) ||
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return qn_fail(n > (1 << 20) ? QN_E_FORMAT : -EIO, "board file %s: cannot read it (or larger than 1 MiB)", path);
    }
    fclose(f);
    buf[n] = 0;
    int rc = qn_board_parse(buf, path, out);
    free(buf);
    return rc;
}

static struct qn_board *builtin;
static unsigned nbuiltin;

int qn_board_builtin(const struct qn_board **list, unsigned *n)
{
    if (!builtin) {
        struct qn_board *b = calloc(qn_board_nsrcs ? qn_board_nsrcs : 1, sizeof *b);
        if (!b) return qn_fail(-ENOMEM, "out of memory");
        for (unsigned i = 0; i < qn_board_nsrcs; i++) {
            char origin[200];
            snprintf(origin, sizeof origin, "%s (built in)", qn_board_srcs[i].path);
            int rc = qn_board_parse(qn_board_srcs[i].json, origin, &b[i]);
            if (rc < 0) { free(b); return rc; }
            for (unsigned j = 0; j < i; j++)
                if (!strcmp(b[j].name, b[i].name)) {
                    rc = BAD("board %s: name '%s' is also used by %s", origin, b[i].name, b[j].origin);
                    free(b);
                    return rc;
                }
        }
        builtin = b;
        nbuiltin = qn_board_nsrcs;
    }
    *list = builtin;
    *n = nbuiltin;
    return 0;
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; hay && *hay; hay++)
        if (!strncasecmp(hay, needle, n)) return true;
    return false;
}

int qn_board_score(const struct qn_board *b, const struct qn_board_device *d)
{
    int s = 0;
    if (b->match.ndevice_ids) {
        bool hit = false;
        for (uint32_t i = 0; i < b->match.ndevice_ids; i++) hit |= b->match.device_ids[i] == d->device_id;
        if (!hit) return -1;
        s += 8;
    }
    if (b->match.name_contains[0]) {
        if (!contains_nocase(d->name, b->match.name_contains)) return -1;
        s += 4;
    }
    if (b->match.has_vendor) {
        if (b->match.vendor_id != d->vendor_id) return -1;
        s += 2;
    }
    if (b->match.device_type != QN_BOARD_ANY) {
        if (b->match.device_type != d->type) return -1;
        s += 1;
    }
    return s;
}

static int find_named(const char *name, struct qn_board *out)
{
    const struct qn_board *list;
    unsigned n;
    int rc = qn_board_builtin(&list, &n);
    if (rc < 0) return rc;
    for (unsigned i = 0; i < n; i++)
        if (!strcmp(list[i].name, name)) { *out = list[i]; return 0; }
    char names[512] = "";
    for (unsigned i = 0; i < n; i++) {
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", i ? ", " : "", list[i].name);
    }
    return qn_fail(-ENOENT, "unknown board '%s' (built in: %s; or give a path to a .json profile)", name, names);
}

int qn_board_select(const char *override, const struct qn_board_device *d, struct qn_board *out)
{
    if (override && *override) {
        size_t l = strlen(override);
        if (strchr(override, '/') || (l > 5 && !strcmp(override + l - 5, ".json")))
            return qn_board_load_file(override, out);
        return find_named(override, out);
    }
    const struct qn_board *list;
    unsigned n;
    int rc = qn_board_builtin(&list, &n), best = -1, best_score = -1;
    if (rc < 0) return rc;
    for (unsigned i = 0; i < n; i++) {
        int s = qn_board_score(&list[i], d);
        if (s > best_score) { best = (int)i; best_score = s; }
    }
    if (best < 0) return qn_fail(-ENOENT, "no board profile matches device '%s' (and no fallback profile)", d->name);
    *out = list[best];
    return 0;
}

void qn_board_split(const struct qn_board *b, uint64_t device_budget, struct qn_board_split *s)
{
    uint64_t avail = device_budget > b->mem.reserve_bytes ? device_budget - b->mem.reserve_bytes : 0;
    s->reserve = device_budget - avail;
    s->weights = (uint64_t)((double)avail * b->mem.weights_fraction);
    s->kv = (uint64_t)((double)avail * b->mem.kv_fraction);
    s->expert_cache = (uint64_t)((double)avail * b->mem.expert_cache_fraction);
}
