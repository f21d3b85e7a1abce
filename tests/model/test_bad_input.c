/* test_bad_input.c — broken checkpoints and configs give a clear error naming the file/tensor, never a crash.
 *
 * usage: test_bad_input FIXTURE_DIR QNEXT
 * Makes every bad file from the (tiny) fixture in a temporary folder: sharded copy (checked to load and give
 * the same logits as the single file), missing shard, truncated file, header offsets that lie (overlap, wrong
 * size, past the end, header length), wrong shape, unknown dtype, missing tensor, config of another model,
 * invalid JSON, missing config field, token id out of range. Each case is checked twice: through the library
 * (qn_ref_model_load returns < 0 with the expected words in qn_errmsg()) and through
 * `qnext logits ... --backend cpu` (exit status 1..127, the same words on stderr). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qn_err.h"
#include "ref_model.h"
#include "safetensors.h"
#include "../testutil.h"

static char tmp[256];
static const char *fixture, *qnext;


static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) DIE("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) DIE("cannot read %s", path);
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static void write_file(const char *path, const void *a, size_t na, const void *b, size_t nb)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f)) DIE("cannot write %s", path);
}

/* A fresh case folder tmp/NAME holding the fixture's config.json; returns its path (static buffer per call). */
static const char *case_dir(const char *name, char *out, size_t n)
{
    char src[4096], dst[4096];
    size_t len;
    snprintf(out, n, "%s/%s", tmp, name);
    mkdir(out, 0755);
    snprintf(src, sizeof src, "%s/config.json", fixture);
    snprintf(dst, sizeof dst, "%s/config.json", out);
    char *c = read_file(src, &len);
    write_file(dst, c, len, NULL, 0);
    free(c);
    return out;
}

/* ---- safetensors header surgery ---- */

struct stfile { char *raw; size_t len; uint64_t hlen; cJSON *hdr; };

static void st_load(struct stfile *s, const char *path)
{
    s->raw = read_file(path, &s->len);
    memcpy(&s->hlen, s->raw, 8);
    s->hdr = cJSON_ParseWithLength(s->raw + 8, (size_t)s->hlen);
    if (!s->hdr) DIE("bad fixture header %s", path);
}

/* Write header `h` and the original data section (optionally cut short by `cut` bytes). */
static void st_save(const struct stfile *s, const cJSON *h, const char *path, size_t cut)
{
    char *txt = cJSON_PrintUnformatted(h);
    uint64_t n = strlen(txt);
    char *buf = malloc(8 + n);
    memcpy(buf, &n, 8);
    memcpy(buf + 8, txt, n);
    size_t data = s->len - 8 - (size_t)s->hlen;
    write_file(path, buf, 8 + n, s->raw + 8 + s->hlen, data - cut);
    free(buf);
    free(txt);
}

static cJSON *entry(cJSON *h, const char *name)
{
    cJSON *e = cJSON_GetObjectItemCaseSensitive(h, name);
    if (!e) DIE("fixture has no tensor %s", name);
    return e;
}

static void set_offsets(cJSON *e, double b, double en)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    cJSON_SetNumberValue(cJSON_GetArrayItem(o, 0), b);
    cJSON_SetNumberValue(cJSON_GetArrayItem(o, 1), en);
}

static double off(cJSON *e, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "data_offsets"), i)->valuedouble;
}

/* ---- checks ---- */

static int contains(const char *hay, const char *a, const char *b)
{
    return strstr(hay, a) && (!b || strstr(hay, b));
}

static void expect_fail(const char *what, const char *dir, const char *w1, const char *w2)
{
    qn_ref_model *m = NULL;
    int rc = qn_ref_model_load(&m, dir);
    char msg[1100];
    snprintf(msg, sizeof msg, "%s", qn_errmsg());
    int ok = rc < 0 && !m && contains(msg, w1, w2);
    printf("%-4s %-26s library: rc %d \"%s\"\n", ok ? "ok" : "FAIL", what, rc, msg);
    failures += !ok;
    qn_ref_model_free(&m);

    char cmd[8192], errf[512];
    snprintf(errf, sizeof errf, "%s/stderr.txt", tmp);
    snprintf(cmd, sizeof cmd, "'%s' logits -m '%s' --tokens 1,2 --backend cpu -o '%s/o.npy' 2>'%s'", qnext, dir, tmp, errf);
    int st = system(cmd);
    size_t n;
    char *err = read_file(errf, &n);
    ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) > 0 && WEXITSTATUS(st) < 128 && contains(err, w1, w2);
    printf("%-4s %-26s qnext logits: exit %d\n", ok ? "ok" : "FAIL", what, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    failures += !ok;
    free(err);
}

/* ---- a sharded copy (written with the streaming writer) ---- */

static void write_shards(const char *dir, int nshards)
{
    char path[4096];
    qn_st_store *s;
    snprintf(path, sizeof path, "%s/model.safetensors", fixture);
    if (qn_st_open(&s, path)) DIE("open %s", path);
    int n = qn_st_count(s), per = (n + nshards - 1) / nshards;
    cJSON *idx = cJSON_CreateObject(), *wm = cJSON_AddObjectToObject(idx, "weight_map");
    cJSON_AddObjectToObject(idx, "metadata");
    for (int k = 0; k < nshards; k++) {
        int a = k * per, b = a + per < n ? a + per : n;
        qn_st_wtensor *decl = calloc((size_t)(b - a), sizeof *decl);
        char shard[64];
        snprintf(shard, sizeof shard, "model-%05d-of-%05d.safetensors", k + 1, nshards);
        for (int i = a; i < b; i++) {
            const qn_st_tensor *t = qn_st_at(s, i);
            decl[i - a].name = t->name;
            decl[i - a].dtype = t->dtype;
            decl[i - a].ndim = t->ndim;
            memcpy(decl[i - a].shape, t->shape, sizeof t->shape);
            cJSON_AddStringToObject(wm, t->name, shard);
        }
        qn_st_writer *w;
        snprintf(path, sizeof path, "%s/%s", dir, shard);
        if (qn_st_writer_open(&w, path, decl, b - a, "{\"format\":\"pt\"}")) DIE("writer %s", path);
        for (int i = a; i < b; i++) {
            const qn_st_tensor *t = qn_st_at(s, i);
            void *buf = malloc(t->nbytes + 1);
            if (qn_st_read_raw(s, t, 0, buf, t->nbytes) || qn_st_writer_put(w, buf, t->nbytes)) DIE("copy %s", t->name);
            free(buf);
        }
        if (qn_st_writer_close(&w)) DIE("close %s", path);
        free(decl);
    }
    char *txt = cJSON_Print(idx);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_file(path, txt, strlen(txt), NULL, 0);
    free(txt);
    cJSON_Delete(idx);
    qn_st_close(&s);
}

static float *logits_of(const char *dir, int32_t *ids, int n)
{
    qn_ref_model *m;
    qn_ref_session *s;
    if (qn_ref_model_load(&m, dir)) DIE("load %s", dir);
    int V = qn_ref_model_config(m)->vocab_size;
    float *l = malloc(sizeof *l * (size_t)V * (size_t)n);
    if (qn_ref_session_new(&s, m, NULL) || qn_ref_forward(s, ids, n, l, 1, NULL)) DIE("forward %s", dir);
    /* a token id out of range is refused, and the session is still usable */
    int32_t bad = V;
    int rc = qn_ref_forward(s, &bad, 1, l, 0, NULL);
    int ok = rc == -ERANGE && strstr(qn_errmsg(), "outside the vocabulary");
    printf("%-4s token id out of range -> rc %d \"%s\"\n", ok ? "ok" : "FAIL", rc, qn_errmsg());
    failures += !ok;
    qn_ref_session_free(&s);
    qn_ref_model_free(&m);
    return l;
}

static void test_sharded(void)
{
    char d[512], path[4096];
    case_dir("sharded", d, sizeof d);
    write_shards(d, 3);
    int32_t ids[5] = { 3, 141, 59, 26, 5 };
    float *a = logits_of(fixture, ids, 5), *b = logits_of(d, ids, 5);
    int V = 0;
    qn_config c;
    qn_cfg_load(&c, fixture);
    V = c.vocab_size;
    int same = !memcmp(a, b, sizeof *a * (size_t)V * 5);
    printf("%-4s sharded copy (3 shards) loads and gives bit-identical logits\n", same ? "ok" : "FAIL");
    failures += !same;
    /* locate: an expert's bytes come from its shard and match the original */
    qn_st_store *s1, *s2;
    qn_st_loc loc;
    const char *nm = "model.layers.2.mlp.experts.7.up_proj.weight";
    snprintf(path, sizeof path, "%s/model.safetensors", fixture);
    if (qn_st_open(&s1, path) || qn_st_open(&s2, d) || qn_st_locate(s2, nm, &loc)) DIE("locate");
    const qn_st_tensor *t = qn_st_find(s1, nm);
    char *x = malloc(t->nbytes), *y = malloc(t->nbytes);
    int ok = loc.nbytes == t->nbytes && pread(loc.fd, y, loc.nbytes, (off_t)loc.offset) == (ssize_t)loc.nbytes &&
             !qn_st_read_raw(s1, t, 0, x, t->nbytes) && !memcmp(x, y, t->nbytes) && strstr(loc.path, "-of-00003");
    printf("%-4s qn_st_locate: %s in %s at byte %llu, %llu bytes, same data\n", ok ? "ok" : "FAIL", nm, loc.path,
           (unsigned long long)loc.offset, (unsigned long long)loc.nbytes);
    failures += !ok;
    free(x); free(y); free(a); free(b);
    qn_st_close(&s1);
    qn_st_close(&s2);
    /* missing shard */
    char m[512];
    case_dir("missing_shard", m, sizeof m);
    write_shards(m, 3);
    snprintf(path, sizeof path, "%s/model-00002-of-00003.safetensors", m);
    unlink(path);
    expect_fail("missing shard", m, "model-00002-of-00003.safetensors", "missing");
}

/* One case: a copy of the fixture's model.safetensors with `edit` applied to its header. */
static void header_case(const char *name, void (*edit)(cJSON *h, const struct stfile *s), size_t cut, const char *w1,
                        const char *w2)
{
    char d[512], path[4096];
    struct stfile s;
    snprintf(path, sizeof path, "%s/model.safetensors", fixture);
    st_load(&s, path);
    case_dir(name, d, sizeof d);
    if (edit) edit(s.hdr, &s);
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    st_save(&s, s.hdr, path, cut);
    expect_fail(name, d, w1, w2);
    cJSON_Delete(s.hdr);
    free(s.raw);
}

static void ed_overlap(cJSON *h, const struct stfile *s)
{
    cJSON *a = entry(h, "model.layers.1.linear_attn.dt_bias"), *b = entry(h, "model.layers.1.linear_attn.A_log");
    set_offsets(a, off(b, 0), off(b, 0) + (off(a, 1) - off(a, 0)));
}
static void ed_size(cJSON *h, const struct stfile *s) { cJSON *e = entry(h, "model.norm.weight"); set_offsets(e, off(e, 0), off(e, 1) - 2); }
static void ed_past_end(cJSON *h, const struct stfile *s)
{
    cJSON *e = entry(h, "model.norm.weight");
    double n = off(e, 1) - off(e, 0), end = (double)(s->len - 8 - s->hlen);
    set_offsets(e, end - n + 64, end + 64);
}
static void ed_shape(cJSON *h, const struct stfile *s)
{
    cJSON *sh = cJSON_GetObjectItemCaseSensitive(entry(h, "model.layers.0.linear_attn.in_proj_ba.weight"), "shape");
    cJSON_SetNumberValue(cJSON_GetArrayItem(sh, 0), 4);
    cJSON_SetNumberValue(cJSON_GetArrayItem(sh, 1), 256);
}
static void ed_dtype(cJSON *h, const struct stfile *s)
{
    cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(entry(h, "model.norm.weight"), "dtype"), "Q4_K");
}
static void ed_dtype_size(cJSON *h, const struct stfile *s)
{
    cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(entry(h, "lm_head.weight"), "dtype"), "F32");
}
static void ed_missing(cJSON *h, const struct stfile *s) { cJSON_DeleteItemFromObject(h, "model.layers.3.self_attn.k_norm.weight"); }

static void test_header_lies(void)
{
    header_case("truncated", NULL, 1000, "past the end of the file", "truncated/model.safetensors: tensor");
    header_case("overlap", ed_overlap, 0, "overlaps", "model.layers.1.linear_attn");
    header_case("size_mismatch", ed_size, 0, "model.norm.weight", "hold 254 bytes but BF16 x shape needs 256");
    header_case("offset_past_end", ed_past_end, 0, "model.norm.weight", "past the end of the file");
    header_case("wrong_shape", ed_shape, 0, "in_proj_ba.weight", "has shape [4, 256], the config needs [8, 128]");
    header_case("unknown_dtype", ed_dtype, 0, "model.norm.weight", "unknown dtype 'Q4_K'");
    header_case("dtype_vs_size", ed_dtype_size, 0, "lm_head.weight", "F32 x shape needs");
    header_case("missing_tensor", ed_missing, 0, "model.layers.3.self_attn.k_norm.weight", "is missing");
    /* header length field larger than the file */
    char d[512], path[4096];
    size_t n;
    snprintf(path, sizeof path, "%s/model.safetensors", fixture);
    char *raw = read_file(path, &n);
    uint64_t big = (uint64_t)n;
    memcpy(raw, &big, 8);
    case_dir("header_length", d, sizeof d);
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    write_file(path, raw, n, NULL, 0);
    expect_fail("header length", d, "header length", "byte offset 0");
    write_file(path, raw, 5, NULL, 0);
    expect_fail("5-byte file", d, "too short", NULL);
    free(raw);
}

/* Config cases: the fixture's model file (linked) with an edited config.json. */
static void config_case(const char *name, const char *from, const char *to, size_t cut, const char *w1, const char *w2)
{
    char d[512], src[4096], dst[4096];
    size_t n;
    case_dir(name, d, sizeof d);
    snprintf(src, sizeof src, "%s/config.json", fixture);
    char *c = read_file(src, &n);
    char *p = from ? strstr(c, from) : NULL;
    char out[16384];
    if (from && !p) DIE("config has no '%s'", from);
    if (p) snprintf(out, sizeof out, "%.*s%s%s", (int)(p - c), c, to, p + strlen(from));
    else snprintf(out, sizeof out, "%.*s", (int)(n - cut), c);
    snprintf(dst, sizeof dst, "%s/config.json", d);
    write_file(dst, out, strlen(out), NULL, 0);
    snprintf(src, sizeof src, "%s/model.safetensors", fixture);
    snprintf(dst, sizeof dst, "%s/model.safetensors", d);
    char *abs = realpath(src, NULL);
    if (!abs || (symlink(abs, dst) && errno != EEXIST)) DIE("symlink %s", dst);
    free(abs);
    expect_fail(name, d, w1, w2);
    free(c);
}

static void test_configs(void)
{
    config_case("not_qwen3_next", "\"qwen3_next\"", "\"qwen3_moe\"", 0, "config.json", "\"qwen3_moe\", not \"qwen3_next\"");
    config_case("invalid_json", NULL, NULL, 40, "config.json", "invalid JSON");
    config_case("missing_field", "\"num_experts\":", "\"num_expertz\":", 0, "config.json", "'num_experts' is missing");
    config_case("bad_field", "\"linear_num_value_heads\": 4", "\"linear_num_value_heads\": 3", 0, "config.json",
                "not a multiple of linear_num_key_heads");
    config_case("bad_rope", "\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"longrope\"}", 0,
                "rope_scaling", "'longrope' is not supported");
}

int main(int argc, char **argv)
{
    qn_test_crash_report();
    if (argc != 3) {
        fprintf(stderr, "usage: %s FIXTURE_DIR QNEXT\n", argv[0]);
        return 2;
    }
    fixture = argv[1];
    qnext = argv[2];
    snprintf(tmp, sizeof tmp, "/tmp/qn_bad_input_XXXXXX");
    if (!mkdtemp(tmp)) DIE("mkdtemp");
    test_sharded();
    test_header_lies();
    test_configs();
    rm_tmpdir(tmp);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
