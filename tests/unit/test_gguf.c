/* test_gguf.c — GGUF writer -> reader round trip with every metadata type (nested arrays, string arrays,
 * non-default alignment, several tensor types), hand-built bad files (each must fail with a message naming
 * the problem, never crash), every truncation of a valid file, writer misuse, typed getters and the
 * tokenizer metadata extraction. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_tok.h"
#include "gguf_write.h"
#include "qn_err.h"
#include "qn_rng.h"
#include "quant.h"
#include "../testutil.h"

static char tmpdir[64];

/* ---------------------------------------------------------------- a byte builder for hand-made files */

typedef struct buf { uint8_t *p; size_t n, cap; } buf;

static void b_put(buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void b_u32(buf *b, uint32_t v) { b_put(b, &v, 4); }
static void b_u64(buf *b, uint64_t v) { b_put(b, &v, 8); }
static void b_str(buf *b, const char *s) { b_u64(b, strlen(s)); b_put(b, s, strlen(s)); }
static void b_pad(buf *b, size_t a) { while (b->n % a) { uint8_t z = 0; b_put(b, &z, 1); } }
static void b_hdr(buf *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
    b_u32(b, 0x46554747u); b_u32(b, version); b_u64(b, nt); b_u64(b, nkv);
}
static void b_kv_str(buf *b, const char *k, const char *v) { b_str(b, k); b_u32(b, QN_GGUF_STR); b_str(b, v); }
static void b_kv_u32(buf *b, const char *k, uint32_t v) { b_str(b, k); b_u32(b, QN_GGUF_U32); b_u32(b, v); }
static void b_tinfo(buf *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off)
{
    b_str(b, name); b_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++) b_u64(b, ne[i]);
    b_u32(b, type); b_u64(b, off);
}
static void b_data(buf *b, size_t n) { for (size_t i = 0; i < n; i++) { uint8_t v = (uint8_t)(i * 7); b_put(b, &v, 1); } }

/* A valid file: 2 keys, tensors "a" F32 [8] (32 B) at 0 and "b" Q8_0 [32, 3] (102 B -> padded 128) at 32,
 * "c" F16 [16] (32 B) at 160 ending exactly at EOF. */
static buf good_file(void)
{
    buf b = {0};
    b_hdr(&b, 3, 3, 2);
    b_kv_str(&b, "general.architecture", "test");
    b_kv_u32(&b, "test.count", 7);
    b_tinfo(&b, "a", 1, (uint64_t[]){8}, QN_GGML_F32, 0);
    b_tinfo(&b, "b", 2, (uint64_t[]){32, 3}, QN_GGML_Q8_0, 32);
    b_tinfo(&b, "c", 1, (uint64_t[]){16}, QN_GGML_F16, 160);
    b_pad(&b, 32);
    b_data(&b, 192);
    return b;
}

static void expect_fail(buf *b, const char *what, const char *needle)
{
    qn_gguf *g = NULL;
    int rc = qn_gguf_open_mem(&g, b->p, b->n, "bad.gguf");
    CHECK(rc < 0 && !g, "%s: opened (rc %d)", what, rc);
    CHECK(rc >= 0 || strstr(qn_errmsg(), needle), "%s: message '%s' lacks '%s'", what, qn_errmsg(), needle);
    CHECK(rc >= 0 || strstr(qn_errmsg(), "bad.gguf"), "%s: message '%s' lacks the file name", what, qn_errmsg());
    qn_gguf_close(&g);
    free(b->p);
}

static void test_good_and_truncations(void)
{
    buf b = good_file();
    qn_gguf *g;
    int rc = qn_gguf_open_mem(&g, b.p, b.n, "good.gguf");
    CHECK(!rc, "good file: %s", qn_errmsg());
    if (!rc) {
        const qn_gguf_tensor *t = qn_gguf_find_tensor(g, "b");
        CHECK(t && t->nbytes == 102 && t->row_bytes == 34 && t->ne[1] == 3 && t->offset == qn_gguf_data_offset(g) + 32,
              "tensor b info");
        CHECK(qn_gguf_data_offset(g) % 32 == 0, "data offset aligned");
        uint8_t x[4];
        CHECK(!qn_gguf_read(g, t->offset, x, 4) && x[0] == (uint8_t)(32 * 7) && x[1] == (uint8_t)(33 * 7), "read");
        CHECK(qn_gguf_read(g, qn_gguf_file_size(g) - 2, x, 4) == -EINVAL, "read past EOF accepted");
        qn_gguf_close(&g);
        CHECK(g == NULL, "close NULLs");
    }
    /* every proper prefix fails cleanly */
    int opened = 0;
    for (size_t n = 0; n < b.n; n++) {
        if (!qn_gguf_open_mem(&g, b.p, n, "trunc.gguf")) { opened++; qn_gguf_close(&g); }
    }
    CHECK(!opened, "%d truncated prefixes opened", opened);
    /* every single-byte corruption: no crash; the ones that open still give in-bounds tensors */
    for (size_t i = 0; i < b.n - 192; i++) {
        uint8_t save = b.p[i];
        for (int k = 0; k < 3; k++) {
            b.p[i] = k == 0 ? (uint8_t)~save : k == 1 ? 0xff : 0x80;
            if (!qn_gguf_open_mem(&g, b.p, b.n, "flip.gguf")) {
                for (uint64_t j = 0; j < qn_gguf_n_tensors(g); j++) {
                    const qn_gguf_tensor *t = qn_gguf_tensor_at(g, j);
                    CHECK(t->offset + t->nbytes <= b.n, "flip %zu: tensor out of bounds", i);
                }
                qn_gguf_close(&g);
            }
        }
        b.p[i] = save;
    }
    free(b.p);
}

static void test_bad_files(void)
{
    buf b = good_file();
    memcpy(b.p, "GGUG", 4);
    expect_fail(&b, "bad magic", "bad magic");

    b = good_file(); b.p[4] = 1;
    expect_fail(&b, "version 1", "version 1");
    b = good_file(); b.p[4] = 0; b.p[7] = 3;
    expect_fail(&b, "big-endian", "big-endian");

    b = (buf){0}; b_hdr(&b, 3, 0, 1ull << 40);
    expect_fail(&b, "huge kv count", "more than");
    b = (buf){0}; b_hdr(&b, 3, 1ull << 40, 0);
    expect_fail(&b, "huge tensor count", "more than");

    b = (buf){0}; b_hdr(&b, 3, 0, 1); b_u64(&b, 1ull << 63); b_data(&b, 64);
    expect_fail(&b, "huge key length", "string length");
    b = (buf){0}; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, QN_GGUF_STR); b_u64(&b, 0xffffffffffull);
    expect_fail(&b, "huge string value", "string length");
    b = (buf){0}; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, QN_GGUF_ARR); b_u32(&b, QN_GGUF_U64);
    b_u64(&b, 1ull << 61); b_data(&b, 64);
    expect_fail(&b, "huge array count", "does not fit");
    b = (buf){0}; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, 13); b_u32(&b, 0);
    expect_fail(&b, "unknown value type", "not a GGUF value type");
    b = (buf){0}; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, QN_GGUF_ARR); b_u32(&b, 99); b_u64(&b, 1);
    expect_fail(&b, "unknown array element type", "not a GGUF value type");
    b = (buf){0}; b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, QN_GGUF_ARR);
    for (int d = 0; d < 12; d++) { b_u32(&b, QN_GGUF_ARR); b_u64(&b, 1); }
    b_u32(&b, QN_GGUF_U8); b_u64(&b, 0);
    expect_fail(&b, "deep nesting", "nested too deeply");
    b = (buf){0}; b_hdr(&b, 3, 0, 2); b_kv_u32(&b, "k", 1); b_kv_u32(&b, "k", 2);
    expect_fail(&b, "duplicate key", "duplicate metadata key 'k'");

    const char *bad_align[] = {"0", "48", "str"};
    for (int i = 0; i < 3; i++) {
        b = (buf){0}; b_hdr(&b, 3, 0, 1);
        if (i == 2) b_kv_str(&b, "general.alignment", "32");
        else b_kv_u32(&b, "general.alignment", (uint32_t)atoi(bad_align[i]));
        expect_fail(&b, "bad alignment", i == 2 ? "expected an integer" : "power of two");
    }

    static const struct { const char *name; uint32_t nd; uint64_t ne[4]; uint32_t type; uint64_t off; const char *needle; }
    tc[] = {
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1, {8}, 0, 0, "exceeds the limit"},
        {"t", 5, {1, 1, 1, 1}, 0, 0, "n_dims = 5"},
        {"t", 3, {1ull << 32, 1ull << 32, 1ull << 32}, 0, 0, "overflow"},
        {"t", 1, {1ull << 63}, 0, 0, "overflow"},
        {"t", 1, {8}, 77, 0, "unknown tensor type 77"},
        {"t", 1, {8}, 31, 0, "unknown tensor type 31"},
        {"t", 2, {100, 2}, QN_GGML_Q4_K, 0, "not a multiple of the Q4_K block"},
        {"t", 2, {48, 2}, QN_GGML_Q5_0, 0, "not a multiple of the Q5_0 block"},
        {"t", 1, {40}, QN_GGML_Q5_1, 0, "not a multiple of the Q5_1 block"},
        {"t", 2, {32, 3}, QN_GGML_Q5_0, 0, "beyond the end of the file"},    /* 66 bytes, 64 present */
        {"t", 2, {64, 2}, QN_GGML_Q5_1, 0, "beyond the end of the file"},    /* 96 bytes */
        {"t", 1, {8}, 0, 4, "not a multiple of the alignment"},
        {"t", 1, {8}, 0, 1024, "beyond the end of the file"},
        {"t", 2, {8, 1ull << 40}, 0, 0, "beyond the end of the file"},
    };
    for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
        b = (buf){0}; b_hdr(&b, 3, 1, 0);
        b_tinfo(&b, tc[i].name, tc[i].nd, tc[i].ne, tc[i].type, tc[i].off);
        b_pad(&b, 32); b_data(&b, 64);
        expect_fail(&b, tc[i].needle, tc[i].needle);
    }
    b = (buf){0}; b_hdr(&b, 3, 2, 0);
    b_tinfo(&b, "x", 1, (uint64_t[]){16}, 0, 0); b_tinfo(&b, "y", 1, (uint64_t[]){16}, 0, 32);
    b_pad(&b, 32); b_data(&b, 128);
    expect_fail(&b, "overlap", "overlap");
    b = (buf){0}; b_hdr(&b, 3, 3, 0);
    b_tinfo(&b, "x", 1, (uint64_t[]){64}, 0, 0); b_tinfo(&b, "z", 1, (uint64_t[]){0}, 0, 96);
    b_tinfo(&b, "y", 1, (uint64_t[]){8}, 0, 128);
    b_pad(&b, 32); b_data(&b, 256);
    expect_fail(&b, "overlap across an empty tensor", "overlap");
    b = (buf){0}; b_hdr(&b, 3, 2, 0);
    b_tinfo(&b, "x", 1, (uint64_t[]){8}, 0, 0); b_tinfo(&b, "x", 1, (uint64_t[]){8}, 0, 32);
    b_pad(&b, 32); b_data(&b, 64);
    expect_fail(&b, "duplicate tensor", "duplicate tensor name 'x'");
    b = (buf){0}; b_hdr(&b, 3, 1, 0);
    b_u64(&b, 3); b_put(&b, "a\0b", 3); b_u32(&b, 1); b_u64(&b, 8); b_u32(&b, 0); b_u64(&b, 0);
    b_pad(&b, 32); b_data(&b, 64);
    expect_fail(&b, "NUL in name", "NUL");

    /* a bad file on disk: the message names the path */
    char path[128];
    snprintf(path, sizeof path, "%s/half.gguf", tmpdir);
    b = good_file();
    FILE *f = fopen(path, "wb");
    fwrite(b.p, 1, b.n / 2, f);
    fclose(f);
    qn_gguf *g;
    CHECK(qn_gguf_open(&g, path) < 0 && strstr(qn_errmsg(), path), "truncated file: '%s'", qn_errmsg());
    CHECK(qn_gguf_open(&g, "/nonexistent/x.gguf") == -ENOENT, "missing file");
    free(b.p);
}

/* ---------------------------------------------------------------- writer -> reader round trip */

static const char *const strs[] = {"alpha", "", "γειά σου", "tab\tand\nnewline"};
static const int32_t ints[] = {-5, 0, 7, 2147483647};
static const uint8_t u8s[] = {0, 1, 255};
static const double f64s[] = {1.5, -2.25e300};

static void write_all_values(qn_gguf_writer *w)
{
    qn_gguf_w_str(w, "general.architecture", "roundtrip");
    qn_gguf_w_val(w, "v.u8", &(qn_gguf_val){.type = QN_GGUF_U8, .u = 200});
    qn_gguf_w_val(w, "v.i8", &(qn_gguf_val){.type = QN_GGUF_I8, .i = -100});
    qn_gguf_w_val(w, "v.u16", &(qn_gguf_val){.type = QN_GGUF_U16, .u = 65000});
    qn_gguf_w_val(w, "v.i16", &(qn_gguf_val){.type = QN_GGUF_I16, .i = -32000});
    qn_gguf_w_u32(w, "v.u32", 4000000000u);
    qn_gguf_w_i32(w, "v.i32", -2000000000);
    qn_gguf_w_f32(w, "v.f32", 3.25f);
    qn_gguf_w_bool(w, "v.bool", 1);
    qn_gguf_w_str(w, "v.str", "héllo");
    qn_gguf_w_u64(w, "v.u64", 18000000000000000000ull);
    qn_gguf_w_val(w, "v.i64", &(qn_gguf_val){.type = QN_GGUF_I64, .i = -9000000000000000000ll});
    qn_gguf_w_val(w, "v.f64", &(qn_gguf_val){.type = QN_GGUF_F64, .f = -1e-300});
    qn_gguf_w_arr(w, "a.i32", QN_GGUF_I32, ints, 4);
    qn_gguf_w_arr(w, "a.u8", QN_GGUF_U8, u8s, 3);
    qn_gguf_w_arr(w, "a.f64", QN_GGUF_F64, f64s, 2);
    qn_gguf_w_arr(w, "a.empty", QN_GGUF_F32, NULL, 0);
    qn_gguf_w_arr_str(w, "a.str", strs, 4);
    qn_gguf_val inner[3] = {
        {.type = QN_GGUF_ARR, .elem_type = QN_GGUF_I32, .n = 4, .raw = ints},
        {.type = QN_GGUF_ARR, .elem_type = QN_GGUF_STR, .n = 4, .strs = strs},
        {.type = QN_GGUF_ARR, .elem_type = QN_GGUF_U8, .n = 0, .raw = NULL},
    };
    qn_gguf_val mid[2] = {
        {.type = QN_GGUF_ARR, .elem_type = QN_GGUF_ARR, .n = 3, .items = inner},
        {.type = QN_GGUF_ARR, .elem_type = QN_GGUF_ARR, .n = 0, .items = NULL},
    };
    qn_gguf_w_val(w, "a.nested", &(qn_gguf_val){.type = QN_GGUF_ARR, .elem_type = QN_GGUF_ARR, .n = 2, .items = mid});
}

static void check_str_arr(const qn_gguf_val *v, const char *what)
{
    CHECK(v->type == QN_GGUF_ARR && v->elem_type == QN_GGUF_STR && v->n == 4, "%s: string array header", what);
    for (int i = 0; i < 4 && v->n == 4; i++)
        CHECK(v->lens[i] == strlen(strs[i]) && !strcmp(v->strs[i], strs[i]), "%s[%d] = '%s'", what, i, v->strs[i]);
}

static void check_all_values(const qn_gguf *g)
{
    const qn_gguf_kv *kv;
    uint32_t u32; uint64_t u64; int64_t i64; float f; int bl; const char *s;
#define KV(k) (kv = qn_gguf_find_kv(g, k))
    CHECK(KV("v.u8") && kv->val.type == QN_GGUF_U8 && kv->val.u == 200, "u8");
    CHECK(KV("v.i8") && kv->val.type == QN_GGUF_I8 && kv->val.i == -100, "i8");
    CHECK(KV("v.u16") && kv->val.type == QN_GGUF_U16 && kv->val.u == 65000, "u16");
    CHECK(KV("v.i16") && kv->val.type == QN_GGUF_I16 && kv->val.i == -32000, "i16");
    CHECK(!qn_gguf_get_u32(g, "v.u32", &u32) && u32 == 4000000000u, "u32");
    CHECK(KV("v.i32") && kv->val.type == QN_GGUF_I32 && kv->val.i == -2000000000, "i32");
    CHECK(!qn_gguf_get_f32(g, "v.f32", &f) && f == 3.25f, "f32");
    CHECK(!qn_gguf_get_bool(g, "v.bool", &bl) && bl == 1, "bool");
    CHECK(!qn_gguf_get_str(g, "v.str", &s) && !strcmp(s, "héllo"), "str");
    CHECK(!qn_gguf_get_u64(g, "v.u64", &u64) && u64 == 18000000000000000000ull, "u64");
    CHECK(!qn_gguf_get_i64(g, "v.i64", &i64) && i64 == -9000000000000000000ll, "i64");
    CHECK(KV("v.f64") && kv->val.type == QN_GGUF_F64 && kv->val.f == -1e-300, "f64");
    const qn_gguf_val *a;
    CHECK(!qn_gguf_get_arr(g, "a.i32", QN_GGUF_I32, &a) && a->n == 4 && !memcmp(a->raw, ints, sizeof ints), "a.i32");
    for (int i = 0; i < 4; i++) CHECK(!qn_gguf_arr_int(a, (uint64_t)i, &i64) && i64 == ints[i], "arr_int %d", i);
    CHECK(!qn_gguf_get_arr(g, "a.u8", QN_GGUF_U8, &a) && a->n == 3 && !memcmp(a->raw, u8s, 3), "a.u8");
    CHECK(!qn_gguf_get_arr(g, "a.f64", QN_GGUF_F64, &a) && a->n == 2 && !memcmp(a->raw, f64s, 16), "a.f64");
    CHECK(!qn_gguf_get_arr(g, "a.empty", QN_GGUF_F32, &a) && a->n == 0, "a.empty");
    CHECK(!qn_gguf_get_arr(g, "a.str", QN_GGUF_STR, &a), "a.str");
    check_str_arr(a, "a.str");
    CHECK(!qn_gguf_get_arr(g, "a.nested", QN_GGUF_ARR, &a) && a->n == 2, "a.nested");
    if (a->n == 2) {
        const qn_gguf_val *m0 = &a->items[0];
        CHECK(m0->elem_type == QN_GGUF_ARR && m0->n == 3 && a->items[1].n == 0, "nested middle level");
        if (m0->n == 3) {
            CHECK(m0->items[0].elem_type == QN_GGUF_I32 && !memcmp(m0->items[0].raw, ints, sizeof ints), "nested i32");
            check_str_arr(&m0->items[1], "nested strings");
            CHECK(m0->items[2].elem_type == QN_GGUF_U8 && m0->items[2].n == 0, "nested empty");
        }
    }
    /* typed getter conversions and refusals */
    CHECK(qn_gguf_get_u32(g, "v.i32", &u32) == QN_E_FORMAT, "negative i32 as u32");
    CHECK(qn_gguf_get_u32(g, "v.u64", &u32) == QN_E_FORMAT, "big u64 as u32");
    CHECK(qn_gguf_get_i64(g, "v.u64", &i64) == QN_E_FORMAT, "big u64 as i64");
    CHECK(!qn_gguf_get_i64(g, "v.i16", &i64) && i64 == -32000, "i16 as i64");
    CHECK(!qn_gguf_get_f32(g, "v.u16", &f) && f == 65000.0f, "u16 as f32");
    CHECK(qn_gguf_get_str(g, "v.u8", &s) == QN_E_FORMAT && strstr(qn_errmsg(), "'v.u8'"), "u8 as str");
    CHECK(qn_gguf_get_bool(g, "v.u8", &bl) == QN_E_FORMAT, "u8 as bool");
    CHECK(qn_gguf_get_arr(g, "a.i32", QN_GGUF_F32, &a) == QN_E_FORMAT, "i32 array as f32 array");
    CHECK(qn_gguf_get_u32(g, "no.such.key", &u32) == -ENOENT && strstr(qn_errmsg(), "no.such.key"), "missing key");
#undef KV
}

typedef struct tdef { const char *name; uint32_t type, nd; uint64_t ne[4]; } tdef;

static void test_roundtrip(uint32_t alignment)
{
    static const tdef td[] = {
        {"f32.vec", QN_GGML_F32, 1, {3}},             {"f16.mat", QN_GGML_F16, 2, {5, 3}},
        {"q8.mat", QN_GGML_Q8_0, 2, {96, 5}},         {"q4k.3d", QN_GGML_Q4_K, 3, {256, 3, 2}},
        {"bf16.4d", QN_GGML_BF16, 4, {2, 3, 1, 2}},   {"q6k.row", QN_GGML_Q6_K, 1, {512}},
        {"q5k.mat", QN_GGML_Q5_K, 2, {256, 1}},       {"q4_0.mat", QN_GGML_Q4_0, 2, {64, 3}},
        {"q5_0.mat", QN_GGML_Q5_0, 2, {64, 3}},       {"q5_1.3d", QN_GGML_Q5_1, 3, {96, 2, 2}},
    };
    enum { NT = sizeof td / sizeof td[0] };
    char path[128];
    snprintf(path, sizeof path, "%s/rt%u.gguf", tmpdir, alignment);
    qn_gguf_writer *w;
    CHECK(!qn_gguf_writer_open(&w, path, alignment), "writer open: %s", qn_errmsg());
    write_all_values(w);
    uint8_t *data[NT];
    uint64_t size[NT];
    qn_rng r;
    qn_rng_seed(&r, alignment);
    for (int i = 0; i < NT; i++) {
        uint64_t rb, rows = td[i].ne[1] * (td[i].nd > 2 ? td[i].ne[2] : 1) * (td[i].nd > 3 ? td[i].ne[3] : 1);
        if (td[i].nd < 2) rows = 1;
        qn_ggml_row_bytes(td[i].type, td[i].ne[0], &rb);
        size[i] = rb * rows;
        data[i] = malloc(size[i]);
        for (uint64_t k = 0; k < size[i]; k++) data[i][k] = (uint8_t)qn_rng_u64(&r);
        CHECK(!qn_gguf_w_tensor(w, td[i].name, td[i].type, td[i].nd, td[i].ne), "declare %s: %s", td[i].name, qn_errmsg());
    }
    for (int i = 0; i < NT; i++) {   /* stream in uneven chunks */
        for (uint64_t k = 0; k < size[i];) {
            uint64_t c = 1 + qn_rng_u64(&r) % 97;
            if (c > size[i] - k) c = size[i] - k;
            CHECK(!qn_gguf_w_data(w, data[i] + k, (size_t)c), "data %s: %s", td[i].name, qn_errmsg());
            k += c;
        }
    }
    CHECK(!qn_gguf_writer_close(&w), "writer close: %s", qn_errmsg());
    qn_gguf *g;
    int rc = qn_gguf_open(&g, path);
    CHECK(!rc, "reopen: %s", qn_errmsg());
    if (rc) return;
    uint32_t a = alignment ? alignment : 32;
    CHECK(qn_gguf_version(g) == 3 && qn_gguf_alignment(g) == a && qn_gguf_data_offset(g) % a == 0, "header");
    CHECK(qn_gguf_n_tensors(g) == NT, "tensor count");
    check_all_values(g);
    uint64_t rel = 0;
    for (int i = 0; i < NT; i++) {
        const qn_gguf_tensor *t = qn_gguf_tensor_at(g, (uint64_t)i);
        CHECK(!strcmp(t->name, td[i].name) && t->type == td[i].type && t->n_dims == td[i].nd, "info %d", i);
        for (uint32_t k = 0; k < td[i].nd; k++) CHECK(t->ne[k] == td[i].ne[k], "%s ne[%u]", t->name, k);
        /* the contiguous padded layout ggml's gguf.cpp requires */
        CHECK(t->offset == qn_gguf_data_offset(g) + rel && t->nbytes == size[i], "%s placement", t->name);
        rel += (size[i] + a - 1) / a * a;
        uint8_t *back = malloc(size[i]);
        CHECK(!qn_gguf_read_tensor(g, t, back, size[i]) && !memcmp(back, data[i], size[i]), "%s data", t->name);
        CHECK(qn_gguf_read_tensor(g, t, back, size[i] - 1) == -EINVAL, "short buffer accepted");
        free(back);
        free(data[i]);
    }
    CHECK(qn_gguf_file_size(g) == qn_gguf_data_offset(g) + rel, "file ends after the last padded tensor");
    qn_gguf_close(&g);
}

static void test_writer_misuse(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/misuse.gguf", tmpdir);
    qn_gguf_writer *w;
    CHECK(qn_gguf_writer_open(&w, path, 24) == -EINVAL, "alignment 24 accepted");
    CHECK(!qn_gguf_writer_open(&w, path, 0), "open");
    CHECK(!qn_gguf_w_u32(w, "k", 1), "first key");
    CHECK(qn_gguf_w_u32(w, "k", 2) == -EINVAL, "duplicate key accepted");
    qn_gguf_writer_abort(&w);
    CHECK(access(path, F_OK) != 0, "abort leaves the file");
    CHECK(!qn_gguf_writer_open(&w, path, 0), "open");
    CHECK(qn_gguf_w_tensor(w, "t", QN_GGML_Q4_K, 1, (uint64_t[]){100}) < 0, "Q4_K row of 100 accepted");
    qn_gguf_writer_abort(&w);
    CHECK(!qn_gguf_writer_open(&w, path, 0), "open");
    CHECK(qn_gguf_w_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123", 0, 1,
                           (uint64_t[]){4}) < 0, "64-byte name accepted");
    qn_gguf_writer_abort(&w);
    CHECK(!qn_gguf_writer_open(&w, path, 0), "open");
    CHECK(!qn_gguf_w_tensor(w, "t", QN_GGML_F32, 1, (uint64_t[]){4}), "declare");
    CHECK(qn_gguf_w_tensor(w, "t", QN_GGML_F32, 1, (uint64_t[]){4}) == -EINVAL, "duplicate tensor accepted");
    qn_gguf_writer_abort(&w);
    float v[8] = {0};
    CHECK(!qn_gguf_writer_open(&w, path, 0), "open");
    CHECK(!qn_gguf_w_tensor(w, "t", QN_GGML_F32, 1, (uint64_t[]){4}), "declare");
    CHECK(!qn_gguf_w_data(w, v, 8), "partial data");
    CHECK(qn_gguf_w_u32(w, "late", 1) == -EINVAL, "metadata after data accepted");
    CHECK(qn_gguf_writer_close(&w) == -EINVAL, "close after the sticky error");
    CHECK(access(path, F_OK) != 0, "failed close leaves the file");
    CHECK(!qn_gguf_writer_open(&w, path, 0), "open");
    CHECK(!qn_gguf_w_tensor(w, "t", QN_GGML_F32, 1, (uint64_t[]){4}), "declare");
    CHECK(!qn_gguf_w_data(w, v, 8), "partial data");
    CHECK(qn_gguf_writer_close(&w) == -EINVAL && strstr(qn_errmsg(), "got 8 of 16"), "incomplete: %s", qn_errmsg());
    CHECK(!qn_gguf_writer_open(&w, path, 0), "open");
    CHECK(!qn_gguf_w_tensor(w, "t", QN_GGML_F32, 1, (uint64_t[]){4}), "declare");
    CHECK(qn_gguf_w_data(w, v, 32) == -EINVAL, "data past the last tensor accepted");
    qn_gguf_writer_abort(&w);
}

/* ---------------------------------------------------------------- tokenizer metadata */

static int write_vocab(const char *path, int bad)
{
    static const char *const toks[] = {"a", "b", "ab", "Ġthe", "<|im_end|>"};
    static const char *const merges[] = {"a b", "Ġ t"};
    int32_t types[5] = {1, 1, 1, 1, 3};
    qn_gguf_writer *w;
    int rc = qn_gguf_writer_open(&w, path, 0);
    if (rc) return rc;
    qn_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    qn_gguf_w_str(w, "tokenizer.ggml.pre", "qwen2");
    qn_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 5);
    qn_gguf_w_arr(w, "tokenizer.ggml.token_type", QN_GGUF_I32, types, bad == 1 ? 4 : 5);
    qn_gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, 2);
    qn_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", bad == 2 ? 5 : 4);
    qn_gguf_w_u32(w, "tokenizer.ggml.padding_token_id", 0);
    qn_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 0);
    qn_gguf_w_str(w, "tokenizer.chat_template", "{{ x }}");
    return qn_gguf_writer_close(&w);
}

static void test_vocab(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/vocab.gguf", tmpdir);
    qn_gguf *g;
    qn_gguf_vocab v;
    CHECK(!write_vocab(path, 0) && !qn_gguf_open(&g, path), "vocab file: %s", qn_errmsg());
    int rc = qn_gguf_vocab_get(g, &v);
    qn_gguf_close(&g);   /* the vocabulary is a copy */
    CHECK(!rc, "vocab get: %s", qn_errmsg());
    if (!rc) {
        CHECK(!strcmp(v.model, "gpt2") && !strcmp(v.pre, "qwen2"), "model/pre");
        CHECK(v.n_tokens == 5 && !strcmp(v.tokens[3], "Ġthe") && v.token_len[3] == strlen("Ġthe"), "tokens");
        CHECK(v.token_type && v.token_type[4] == 3 && v.token_type[0] == 1, "token types");
        CHECK(v.n_merges == 2 && !strcmp(v.merges[1], "Ġ t"), "merges");
        CHECK(v.eos_id == 4 && v.pad_id == 0 && v.bos_id == -1 && v.add_bos == 0 && v.add_eos == -1, "ids");
        CHECK(v.scores == NULL && v.chat_template && !strcmp(v.chat_template, "{{ x }}"), "optional fields");
        qn_gguf_vocab_free(&v);
    }
    for (int bad = 1; bad <= 2; bad++) {
        CHECK(!write_vocab(path, bad) && !qn_gguf_open(&g, path), "bad vocab file");
        CHECK(qn_gguf_vocab_get(g, &v) == QN_E_FORMAT, "bad vocab %d accepted", bad);
        CHECK(strstr(qn_errmsg(), bad == 1 ? "token_type" : "eos_token_id"), "message '%s'", qn_errmsg());
        qn_gguf_close(&g);
    }
}

int main(void)
{
    qn_test_crash_report();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qn_gguf_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_good_and_truncations();
    test_bad_files();
    test_roundtrip(0);
    test_roundtrip(64);
    test_writer_misuse();
    test_vocab();
    rm_tmpdir(tmpdir);
    printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
