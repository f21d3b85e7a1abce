/* test_safetensors.c — safetensors writer -> reader round trips (loader/safetensors*.c).
 *
 * Every dtype's table entry (shape, offsets, sizes) and conversion to f32 / i32, FP8 E4M3 decoding of known
 * codes, FP8 block-scale dequantisation, hash lookup over thousands of names, the writer's byte accounting,
 * and a duplicate name in a hand-made header. Files go to a temporary folder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qn_err.h"
#include "qn_num.h"
#include "qn_rng.h"
#include "safetensors.h"
#include "../testutil.h"

static char dir[] = "/tmp/qn_st_test_XXXXXX";

static void check(int ok, const char *what)
{
    printf("%-4s %s\n", ok ? "ok" : "FAIL", what);
    if (!ok && *qn_errmsg()) printf("     (%s)\n", qn_errmsg());
    failures += !ok;
}

static void path_of(char *p, size_t n, const char *name) { snprintf(p, n, "%s/%s", dir, name); }

static void roundtrip(void)
{
    char path[256];
    path_of(path, sizeof path, "all.safetensors");
    qn_rng r;
    qn_rng_seed(&r, 7);
    float v[24];
    for (int i = 0; i < 24; i++) v[i] = qn_rng_normal(&r) * 3;
    const qn_st_wtensor decl[] = {
        { "a.f32", QN_DT_F32, 2, { 4, 6 } },   { "b.bf16", QN_DT_BF16, 3, { 2, 3, 4 } }, { "c.f16", QN_DT_F16, 1, { 24 } },
        { "d.empty", QN_DT_F32, 2, { 0, 5 } }, { "e.scalar", QN_DT_I32, 0, { 0 } },      { "f.i64", QN_DT_I64, 1, { 3 } },
        { "g.u8", QN_DT_U8, 1, { 4 } },        { "h.f8", QN_DT_F8_E4M3, 1, { 6 } },      { "i.f64", QN_DT_F64, 1, { 2 } },
    };
    qn_st_writer *w;
    int rc = qn_st_writer_open(&w, path, decl, 9, "{\"format\":\"pt\"}");
    if (!rc) rc = qn_st_writer_put_f32(w, v, 24);
    if (!rc) rc = qn_st_writer_put_f32(w, v, 24);
    if (!rc) rc = qn_st_writer_put_f32(w, v, 24);
    int32_t s = -77;
    int64_t l[3] = { 5, -6, 1ll << 40 };
    uint8_t u[4] = { 0, 1, 200, 255 }, f8[6] = { 0x38, 0x7e, 0x01, 0xb8, 0x00, 0x40 };
    double d[2] = { 0.1, -2.5 };
    if (!rc) rc = qn_st_writer_put(w, &s, 4);
    if (!rc) rc = qn_st_writer_put(w, l, 24);
    if (!rc) rc = qn_st_writer_put(w, u, 4);
    if (!rc) rc = qn_st_writer_put(w, f8, 6);
    if (!rc) rc = qn_st_writer_put(w, d, 16);
    if (!rc) rc = qn_st_writer_close(&w);
    check(!rc, "writer: 9 tensors of 9 dtypes (incl. empty and 0-d) written");
    qn_st_store *st;
    rc = qn_st_open(&st, path);
    check(!rc && qn_st_count(st) == 9, "reader: 9 tensors in the table");
    if (rc) return;
    const qn_st_tensor *t = qn_st_find(st, "b.bf16");
    check(t && t->dtype == QN_DT_BF16 && t->ndim == 3 && t->shape[2] == 4 && t->nbytes == 48, "b.bf16: dtype, shape, nbytes");
    float got[24], e = 0;
    rc = qn_st_read_f32(st, "a.f32", got, 24);
    for (int i = 0; i < 24; i++) e = fmaxf(e, fabsf(got[i] - v[i]));
    check(!rc && e == 0, "F32 exact");
    rc = qn_st_read_f32(st, "b.bf16", got, 24);
    e = 0;
    for (int i = 0; i < 24; i++) e = fmaxf(e, fabsf(got[i] - qn_round_bf16(v[i])));
    check(!rc && e == 0, "BF16 = round-to-nearest-even of the f32 values");
    rc = qn_st_read_f32(st, "c.f16", got, 24);
    e = 0;
    for (int i = 0; i < 24; i++) e = fmaxf(e, fabsf(got[i] - v[i]) / fabsf(v[i]));
    check(!rc && e < 1e-3f, "F16 within half precision");
    check(qn_st_read_f32(st, "a.f32", got, 23) < 0 && strstr(qn_errmsg(), "expected 23"), "element count mismatch refused");
    check(qn_st_find(st, "d.empty")->nbytes == 0 && !qn_st_read_f32(st, "d.empty", got, 0), "empty tensor");
    int32_t iv[4];
    check(!qn_st_read_i32(st, "e.scalar", iv, 1) && iv[0] == -77, "0-d I32 scalar");
    check(!qn_st_read_i32(st, "f.i64", iv, 3) && iv[0] == 5 && iv[1] == -6 && iv[2] == INT32_MAX, "I64 -> I32 (clamped)");
    check(!qn_st_read_f32(st, "g.u8", got, 4) && got[2] == 200 && got[3] == 255, "U8 -> f32");
    rc = qn_st_read_f32(st, "h.f8", got, 6);
    check(!rc && got[0] == 1.0f && got[1] == 448.0f && got[2] == ldexpf(1, -9) && got[3] == -1.0f && got[4] == 0 &&
              got[5] == 2.0f, "F8_E4M3 codes 0x38=1, 0x7e=448, 0x01=2^-9, 0xb8=-1, 0x40=2");
    check(!qn_st_read_f32(st, "i.f64", got, 2) && got[0] == 0.1f && got[1] == -2.5f, "F64 -> f32");
    check(qn_st_read_i32(st, "a.f32", iv, 1) < 0, "float tensor refused as int");
    qn_st_loc loc;
    check(!qn_st_locate(st, "c.f16", &loc) && loc.nbytes == 48 && loc.dtype == QN_DT_F16 && loc.fd >= 0 &&
              !strcmp(loc.path, path), "locate: fd, path, offset, size, dtype");
    check(qn_st_locate(st, "nope", &loc) == -ENOENT, "locate of an absent name -> -ENOENT");
    qn_st_close(&st);
    check(!st, "close NULLs the handle");
}

static void dequant(void)
{
    char path[256];
    path_of(path, sizeof path, "fp8.safetensors");
    const qn_st_wtensor decl[] = { { "w.weight", QN_DT_F8_E4M3, 2, { 256, 130 } },
                                   { "w.weight_scale_inv", QN_DT_F32, 2, { 2, 2 } } };
    uint8_t *q = malloc(256 * 130);
    memset(q, 0x38, 256 * 130); /* all 1.0 */
    float sc[4] = { 1, 2, 3, 4 };
    qn_st_writer *w;
    int rc = qn_st_writer_open(&w, path, decl, 2, NULL);
    if (!rc) rc = qn_st_writer_put(w, q, 256 * 130);
    if (!rc) rc = qn_st_writer_put_f32(w, sc, 4);
    if (!rc) rc = qn_st_writer_close(&w);
    qn_st_store *st;
    float *out = malloc(sizeof(float) * 256 * 130);
    if (!rc) rc = qn_st_open(&st, path);
    if (!rc) rc = qn_st_read_f32_dequant(st, "w.weight", out, 256 * 130);
    int ok = !rc && out[0] == 1 && out[129] == 2 && out[128 * 130] == 3 && out[255 * 130 + 129] == 4 && out[127 * 130 + 127] == 1;
    check(ok, "FP8 E4M3 weight x 128x128 block scale_inv (partial last block)");
    if (!rc) qn_st_close(&st);
    free(q);
    free(out);
}

static void many_names(void)
{
    enum { N = 5000 };
    char path[256];
    path_of(path, sizeof path, "many.safetensors");
    qn_st_wtensor *decl = calloc(N, sizeof *decl);
    char (*names)[48] = calloc(N, 48);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 48, "model.layers.%d.mlp.experts.%d.up_proj.weight", i / 100, i % 100);
        decl[i] = (qn_st_wtensor){ names[i], QN_DT_BF16, 1, { 1 } };
    }
    uint16_t *data = malloc(2 * N);
    for (int i = 0; i < N; i++) data[i] = qn_f32_to_bf16((float)i);
    qn_st_writer *w;
    qn_st_store *st = NULL;
    int rc = qn_st_writer_open(&w, path, decl, N, NULL);
    if (!rc) rc = qn_st_writer_put(w, data, 2 * N);
    if (!rc) rc = qn_st_writer_close(&w);
    if (!rc) rc = qn_st_open(&st, path);
    int found = 0;
    for (int i = 0; !rc && i < N; i++) {
        float x;
        found += !qn_st_read_f32(st, names[i], &x, 1) && x == qn_round_bf16((float)i);
    }
    check(!rc && found == N && !qn_st_find(st, "model.layers.0.mlp.experts.0.up_proj.weigh"),
          "hash lookup: 5000 names all found with their own data, a near-miss not found");
    qn_st_close(&st);
    free(decl);
    free(names);
    free(data);
}

static void writer_accounting(void)
{
    char path[256];
    path_of(path, sizeof path, "short.safetensors");
    const qn_st_wtensor decl[] = { { "x", QN_DT_F32, 1, { 4 } } };
    float v[5] = { 1, 2, 3, 4, 5 };
    qn_st_writer *w;
    int rc = qn_st_writer_open(&w, path, decl, 1, NULL);
    check(!rc && qn_st_writer_put(w, v, 20) < 0, "writer refuses more bytes than declared");
    check(!rc && !qn_st_writer_put(w, v, 8) && qn_st_writer_close(&w) < 0 && !w &&
              strstr(qn_errmsg(), "8 of 16 declared data bytes"), "writer close reports missing bytes");
    const qn_st_wtensor dup[] = { { "__metadata__", QN_DT_F32, 1, { 4 } } };
    check(qn_st_writer_open(&w, path, dup, 1, NULL) < 0, "writer refuses the name __metadata__");
    /* a hand-made header with a duplicate name */
    const char hdr[] = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    uint64_t n = sizeof hdr - 1;
    FILE *f = fopen(path, "wb");
    fwrite(&n, 8, 1, f);
    fwrite(hdr, 1, n, f);
    fwrite(v, 4, 2, f);
    fclose(f);
    qn_st_store *st;
    check(qn_st_open(&st, path) == QN_E_FORMAT && strstr(qn_errmsg(), "'x' appears twice"), "duplicate tensor name refused");
}

int main(void)
{
    qn_test_crash_report();
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    roundtrip();
    dequant();
    many_names();
    writer_accounting();
    rm_tmpdir(dir);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
