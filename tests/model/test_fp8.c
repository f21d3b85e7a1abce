/* test_fp8.c — FP8 (E4M3 + 128x128 weight_scale_inv block scales) checkpoints through the loader and the reference.
 *
 * usage: test_fp8 FIXTURE_DIR
 * Quantises every *_proj.weight of the fixture to F8_E4M3 with per-128x128-block scales (the layout of the
 * hub's FP8 release: w = q * weight_scale_inv) and writes two checkpoints into a temp folder: the FP8 one and
 * the same weights dequantised to F32. The reference must give bit-identical logits on both (the dequant path
 * is exact), and stay near Hugging Face's bf16 logits (FP8 rounding: relative L2 < 0.25; tiny measures 0.13). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_err.h"
#include "ref_model.h"
#include "safetensors.h"
#include "../testutil.h"

static float e4m3[127]; /* values of codes 0x00..0x7e, increasing */

static float decode(int c)
{
    int e = (c >> 3) & 15, m = c & 7;
    return e ? ldexpf((float)(8 + m), e - 10) : ldexpf((float)m, -9);
}

/* Nearest E4M3 code (ties to the even code), saturating at 448. */
static uint8_t encode(float x)
{
    float a = fabsf(x);
    int lo = 0, hi = 126;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (e4m3[mid] <= a) lo = mid;
        else hi = mid;
    }
    int c = a - e4m3[lo] < e4m3[hi] - a ? lo : a - e4m3[lo] > e4m3[hi] - a ? hi : (lo & 1 ? hi : lo);
    if (a >= e4m3[126]) c = 126;
    return (uint8_t)(c | (x < 0 ? 0x80 : 0));
}

static int is_proj(const qn_st_tensor *t)
{
    size_t n = strlen(t->name);
    return t->ndim == 2 && n > 12 && !strcmp(t->name + n - 12, "_proj.weight");
}

/* Write FP8 (fp8 = 1) or the dequantised F32 copy (fp8 = 0) of the fixture into dir. */
static void write_copy(const qn_st_store *s, const char *dir, int fp8)
{
    int n = qn_st_count(s), k = 0;
    qn_st_wtensor *decl = calloc((size_t)n * 2, sizeof *decl);
    char (*snames)[160] = calloc((size_t)n, 160);
    for (int i = 0; i < n; i++) {
        const qn_st_tensor *t = qn_st_at(s, i);
        decl[k] = (qn_st_wtensor){ t->name, is_proj(t) ? (fp8 ? QN_DT_F8_E4M3 : QN_DT_F32) : t->dtype, t->ndim, { 0 } };
        memcpy(decl[k++].shape, t->shape, sizeof t->shape);
        if (is_proj(t) && fp8) {
            snprintf(snames[i], 160, "%s_scale_inv", t->name);
            decl[k++] = (qn_st_wtensor){ snames[i], QN_DT_F32, 2, { (t->shape[0] + 127) / 128, (t->shape[1] + 127) / 128 } };
        }
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    qn_st_writer *w;
    if (qn_st_writer_open(&w, path, decl, k, NULL)) DIE("writer");
    for (int i = 0; i < n; i++) {
        const qn_st_tensor *t = qn_st_at(s, i);
        size_t cnt = (size_t)qn_st_numel(t);
        float *v = malloc(sizeof *v * cnt + 4);
        if (qn_st_read_f32(s, t->name, v, cnt)) DIE("read %s", t->name);
        if (!is_proj(t)) {
            void *raw = malloc(t->nbytes + 1);
            if (qn_st_read_raw(s, t, 0, raw, t->nbytes) || qn_st_writer_put(w, raw, t->nbytes)) DIE("copy");
            free(raw);
            free(v);
            continue;
        }
        int64_t R = t->shape[0], C = t->shape[1], bo = (R + 127) / 128, bi = (C + 127) / 128;
        float *sc = calloc((size_t)(bo * bi), sizeof *sc);
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++) sc[(r / 128) * bi + c / 128] = fmaxf(sc[(r / 128) * bi + c / 128], fabsf(v[r * C + c]));
        for (int64_t b = 0; b < bo * bi; b++) sc[b] = sc[b] > 0 ? sc[b] / 448.0f : 1.0f;
        uint8_t *q = malloc(cnt);
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++) {
                float s8 = sc[(r / 128) * bi + c / 128];
                q[r * C + c] = encode(v[r * C + c] / s8);
                v[r * C + c] = decode(q[r * C + c] & 0x7f) * (q[r * C + c] & 0x80 ? -1.0f : 1.0f) * s8;
            }
        int rc = fp8 ? qn_st_writer_put(w, q, cnt) || qn_st_writer_put_f32(w, sc, (size_t)(bo * bi))
                     : qn_st_writer_put_f32(w, v, cnt);
        if (rc) DIE("write %s", t->name);
        free(q);
        free(sc);
        free(v);
    }
    if (qn_st_writer_close(&w)) DIE("close");
    free(decl);
    free(snames);
}

static float *logits(const char *dir, const int32_t *ids, int n, int *V)
{
    qn_ref_model *m;
    qn_ref_session *s;
    if (qn_ref_model_load(&m, dir)) DIE("load %s", dir);
    *V = qn_ref_model_config(m)->vocab_size;
    float *l = malloc(sizeof *l * (size_t)*V * (size_t)n);
    if (qn_ref_session_new(&s, m, NULL) || qn_ref_forward(s, ids, n, l, 1, NULL)) DIE("forward");
    qn_ref_session_free(&s);
    qn_ref_model_free(&m);
    return l;
}

static void link_config(const char *fixture, const char *dir)
{
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/config.json", fixture);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    char *abs = realpath(src, NULL);
    if (!abs || symlink(abs, dst)) DIE("symlink");
    free(abs);
}

int main(int argc, char **argv)
{
    qn_test_crash_report();
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    for (int c = 0; c < 127; c++) e4m3[c] = decode(c);
    char tmp[] = "/tmp/qn_fp8_XXXXXX", d8[64], d32[64], path[4096];
    if (!mkdtemp(tmp)) DIE("mkdtemp");
    snprintf(d8, sizeof d8, "%s/fp8", tmp);
    snprintf(d32, sizeof d32, "%s/f32", tmp);
    mkdir(d8, 0755);
    mkdir(d32, 0755);
    snprintf(path, sizeof path, "%s/model.safetensors", argv[1]);
    qn_st_store *s, *e;
    if (qn_st_open(&s, path)) DIE("open");
    write_copy(s, d8, 1);
    write_copy(s, d32, 0);
    qn_st_close(&s);
    link_config(argv[1], d8);
    link_config(argv[1], d32);

    snprintf(path, sizeof path, "%s/expected.safetensors", argv[1]);
    if (qn_st_open(&e, path)) DIE("open expected");
    int32_t *ids;
    float *want;
    int T = get_prefill(e, 0, &ids, &want), V;
    if (!T) DIE("%s has no prefill0", path);
    float *a = logits(d8, ids, T, &V), *b = logits(d32, ids, T, &V);
    double err = rel_l2(a, want, (size_t)T * V);
    int same = !memcmp(a, b, sizeof *a * (size_t)T * V), near = err < 0.25;
    printf("%-4s FP8 + block scales == dequantised F32 copy: logits %s\n", same ? "ok" : "FAIL", same ? "bit-identical" : "differ");
    printf("%-4s FP8 checkpoint vs HF bf16 logits: relative L2 %.3e (tolerance 0.25: FP8 rounding)\n", near ? "ok" : "FAIL",
           err);
    failures += !same + !near;
    qn_st_close(&e);
    rm_tmpdir(tmp);
    free(a); free(b); free(want); free(ids);
    return failures ? 1 : 0;
}
