/* expert_store.c — the file location and slot destination of every routed expert part (expert_store.h). */
#include "expert_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "quant.h"

struct qn_es {
    int n_layers, n_experts;
    struct qn_es_part *part;          /* [L, E, QN_ES_PARTS] */
    char **paths;
    int n_files;
    uint64_t slot_bytes[QN_ES_SETS];
    uint64_t max_expert;
};

static const char *const part_name[QN_ES_PARTS] = { "gate_proj", "up_proj", "down_proj" };

static int es_new(qn_es **out, const qn_config *c, const uint64_t slot_bytes[QN_ES_SETS])
{
    *out = NULL;
    if (c->num_layers <= 0 || c->num_experts <= 0)
        return qn_fail(-EINVAL, "expert store: %d layers x %d experts", c->num_layers, c->num_experts);
    qn_es *s = calloc(1, sizeof *s);
    size_t n = (size_t)c->num_layers * (size_t)c->num_experts * QN_ES_PARTS;
    if (!s || !(s->part = calloc(n, sizeof *s->part))) {
        free(s);
        return qn_fail(-ENOMEM, "expert store: out of memory for %zu parts", n);
    }
    s->n_layers = c->num_layers;
    s->n_experts = c->num_experts;
    memcpy(s->slot_bytes, slot_bytes, sizeof s->slot_bytes);
    *out = s;
    return 0;
}

void qn_es_free(qn_es **ps)
{
    qn_es *s = *ps;
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) free(s->paths[i]);
    free(s->paths);
    free(s->part);
    free(s);
    *ps = NULL;
}

/* Index of `path` in the store's files (added on first sight; the last one is checked first). */
static int file_of(qn_es *s, const char *path)
{
    for (int i = s->n_files - 1; i >= 0; i--)
        if (!strcmp(s->paths[i], path)) return i;
    char **p = realloc(s->paths, sizeof *p * (size_t)(s->n_files + 1));
    if (!p) return qn_fail(-ENOMEM, "out of memory");
    s->paths = p;
    if (!(p[s->n_files] = strdup(path))) return qn_fail(-ENOMEM, "out of memory");
    return s->n_files++;
}

static struct qn_es_part *part_at(const qn_es *s, int l, int e, int p)
{
    return &s->part[((size_t)l * (size_t)s->n_experts + (size_t)e) * QN_ES_PARTS + (size_t)p];
}

/* Record part p of (l, e) and check it fits its slot region [slot_off, end). */
static int put(qn_es *s, int l, int e, int p, int file, uint32_t set, uint64_t off, uint64_t len, uint64_t slot_off,
               uint64_t end, const char *what)
{
    if (slot_off + len > end)
        return qn_fail(QN_E_FORMAT, "expert store: %s (layer %d, expert %d, %s) is %llu bytes; its slot region holds "
                       "%llu", what, l, e, part_name[p], (unsigned long long)len,
                       (unsigned long long)(end - slot_off));
    *part_at(s, l, e, p) = (struct qn_es_part){ .file = file, .set = set, .off = off, .len = len, .slot_off = slot_off };
    return 0;
}

static void finish(qn_es *s)
{
    s->max_expert = 0;
    for (int l = 0; l < s->n_layers; l++)
        for (int e = 0; e < s->n_experts; e++) {
            uint64_t b = qn_es_expert_bytes(s, l, e);
            if (b > s->max_expert) s->max_expert = b;
        }
}

int qn_es_from_st(qn_es **out, const qn_st_store *st, const qn_config *c, qn_dtype dt, const uint64_t part_bytes[3],
                  uint64_t slot_bytes)
{
    const uint64_t sb[QN_ES_SETS] = { slot_bytes, 0 };
    qn_es *s;
    int rc = es_new(&s, c, sb);
    for (int l = 0; !rc && l < c->num_layers; l++)
        for (int e = 0; !rc && e < c->num_experts; e++) {
            uint64_t at = 0;
            for (int p = 0; !rc && p < QN_ES_PARTS; p++) {
                char name[160];
                snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.%s.weight", l, e, part_name[p]);
                qn_st_loc loc;
                rc = qn_st_locate(st, name, &loc);
                if (rc) break;
                if (loc.dtype != dt || loc.nbytes != part_bytes[p]) {
                    rc = qn_fail(QN_E_UNSUPPORTED, "streaming reads experts as stored: '%s' in %s is %s (%llu bytes), "
                                 "the slots hold %s (%llu bytes); convert the checkpoint or keep every expert "
                                 "resident", name, loc.path, qn_dtype_name(loc.dtype), (unsigned long long)loc.nbytes,
                                 qn_dtype_name(dt), (unsigned long long)part_bytes[p]);
                    break;
                }
                int f = file_of(s, loc.path);
                rc = f < 0 ? f : put(s, l, e, p, f, QN_ES_POOLS, loc.offset, loc.nbytes, at, slot_bytes, name);
                at += part_bytes[p];
            }
        }
    if (rc) {
        qn_es_free(&s);
        return rc;
    }
    finish(s);
    *out = s;
    return 0;
}

/* Destination (set, slot offset, region end) of GGUF part p. */
static void gguf_dest(int p, uint64_t up_off, const uint64_t sb[QN_ES_SETS], uint64_t f32_part, uint32_t *set,
                      uint64_t *at, uint64_t *end)
{
    if (!up_off) { /* f32: gate | up | down in one slot */
        *set = QN_ES_POOLS;
        *at = (uint64_t)p * f32_part;
        *end = p == 2 ? sb[0] : *at + f32_part;
        return;
    }
    *set = p == 2 ? QN_ES_DPOOLS : QN_ES_POOLS;
    *at = p == 1 ? up_off : 0;
    *end = p == 0 ? up_off : sb[*set];
}

/* The expert tensor that makes the loader convert a GGUF's experts to f32: the first whose type no expert kernel
 * reads (else `first`, e.g. gate and up of different block types). */
static const qn_gguf_tensor *why_f32(const qn_q3n *q, const qn_config *c, const qn_gguf_tensor *first)
{
    for (int l = 0; l < c->num_layers; l++)
        for (int p = 0; p < QN_ES_PARTS; p++) {
            char name[160];
            qn_q3n_src src;
            snprintf(name, sizeof name, "model.layers.%d.mlp.experts.0.%s.weight", l, part_name[p]);
            uint32_t t = qn_q3n_find(q, name, &src) ? QN_GGML_F32 : src.t->type;
            if (t != QN_GGML_F32 && t != QN_GGML_Q8_0 && t != QN_GGML_Q4_0 && t != QN_GGML_Q4_K && t != QN_GGML_Q5_K &&
                t != QN_GGML_Q6_K)
                return src.t;
        }
    return first;
}

int qn_es_from_gguf(qn_es **out, const char *path, const qn_q3n *q, const qn_config *c, uint64_t up_off,
                    uint64_t slot_bytes, uint64_t d_slot_bytes)
{
    const uint64_t sb[QN_ES_SETS] = { slot_bytes, up_off ? d_slot_bytes : 0 };
    uint64_t f32_part = (uint64_t)c->moe_inter * (uint64_t)c->hidden_size * sizeof(float);
    if (up_off && (up_off >= slot_bytes || !d_slot_bytes))
        return qn_fail(-EINVAL, "expert store: up at %llu of a %llu-byte slot, down slots of %llu bytes",
                       (unsigned long long)up_off, (unsigned long long)slot_bytes, (unsigned long long)d_slot_bytes);
    qn_es *s;
    int rc = es_new(&s, c, sb);
    int f = rc ? rc : file_of(s, path);
    if (f < 0) rc = f;
    for (int l = 0; !rc && l < c->num_layers; l++)
        for (int p = 0; !rc && p < QN_ES_PARTS; p++) {
            char name[160];
            qn_q3n_src src;
            snprintf(name, sizeof name, "model.layers.%d.mlp.experts.0.%s.weight", l, part_name[p]);
            rc = qn_q3n_find(q, name, &src);
            if (rc) {
                rc = qn_fail(rc, "GGUF %s: no tensor for '%s'", path, name);
                break;
            }
            if (!up_off && src.t->type != QN_GGML_F32) {
                src.t = why_f32(q, c, src.t);
                rc = qn_fail(QN_E_UNSUPPORTED, "GGUF %s: streaming reads experts as stored, but this file's experts "
                             "are converted to f32 on load ('%s' is %s; the expert kernels read F32, or Q8_0, Q4_0, "
                             "Q4_K, Q5_K, Q6_K with gate and up of one type); keep every expert resident", path,
                             src.t->name, qn_ggml_type_name(src.t->type));
                break;
            }
            uint32_t set;
            uint64_t at, end;
            gguf_dest(p, up_off, sb, f32_part, &set, &at, &end);
            for (int e = 0; !rc && e < c->num_experts; e++) {
                qn_file_span sp;
                rc = qn_q3n_expert_span(q, l, (enum qn_q3n_proj)p, e, 0, &sp);
                if (!rc) rc = put(s, l, e, p, f, set, sp.off, sp.nbytes, at, end, src.t->name);
            }
        }
    if (rc) {
        qn_es_free(&s);
        return rc;
    }
    finish(s);
    *out = s;
    return 0;
}

const struct qn_es_part *qn_es_parts(const qn_es *s, int layer, int expert)
{
    if (layer < 0 || layer >= s->n_layers || expert < 0 || expert >= s->n_experts) return NULL;
    return part_at(s, layer, expert, 0);
}

int qn_es_n_files(const qn_es *s) { return s->n_files; }
const char *qn_es_path(const qn_es *s, int file) { return file >= 0 && file < s->n_files ? s->paths[file] : NULL; }
int qn_es_n_layers(const qn_es *s) { return s->n_layers; }
int qn_es_n_experts(const qn_es *s) { return s->n_experts; }
uint64_t qn_es_slot_bytes(const qn_es *s, int set) { return set >= 0 && set < QN_ES_SETS ? s->slot_bytes[set] : 0; }
uint64_t qn_es_entry_bytes(const qn_es *s) { return s->slot_bytes[0] + s->slot_bytes[1]; }
uint64_t qn_es_entry_off(const qn_es *s, int set) { return set == QN_ES_DPOOLS ? s->slot_bytes[0] : 0; }
uint64_t qn_es_max_expert_bytes(const qn_es *s) { return s->max_expert; }

uint64_t qn_es_expert_bytes(const qn_es *s, int layer, int expert)
{
    const struct qn_es_part *p = qn_es_parts(s, layer, expert);
    return p ? p[0].len + p[1].len + p[2].len : 0;
}
