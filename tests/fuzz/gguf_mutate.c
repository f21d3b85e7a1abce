/* gguf_mutate.c — deterministic fuzz driver for fuzz_gguf.c, run as a normal test: builds seed GGUFs with the
 * writer (every metadata type + several tensor types; a complete micro qwen3next model with tokenizer keys),
 * checks the seeds parse, then feeds N mutants from a fixed seed (bit flips, interesting bytes and u64s over
 * length/count/offset fields, truncation, deleted/duplicated/inserted ranges). A crash, sanitizer report or
 * abort() in the target fails the test.
 * usage: gguf_mutate [N_MUTANTS] [SEED] [--write-seeds DIR]   (the seeds make a libFuzzer corpus) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_qwen3next.h"
#include "gguf_write.h"
#include "qn_err.h"
#include "qn_file.h"
#include "qn_rng.h"
#include "quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct blob { uint8_t *p; size_t n; } blob;

static qn_rng rng;

static int slurp(const char *path, blob *b)
{
    char *p;
    int rc = qn_read_file(path, 64u << 20, &p, &b->n);
    b->p = (uint8_t *)p;
    return rc;
}

/* Declare + write one F32/Q8_0 tensor of random values (negative ones for ssm_a). */
static void tensor(qn_gguf_writer *w, int pass, const char *name, uint32_t type, uint32_t nd, uint64_t a, uint64_t b,
                   uint64_t c)
{
    uint64_t ne[3] = {a, b, c}, n = a * (nd > 1 ? b : 1) * (nd > 2 ? c : 1), rb;
    if (!pass) { qn_gguf_w_tensor(w, name, type, nd, ne); return; }
    float *x = malloc(n * 4);
    for (uint64_t i = 0; i < n; i++) x[i] = strstr(name, "ssm_a") ? -0.5f - qn_rng_uniform(&rng) : qn_rng_range(&rng, -1, 1);
    qn_ggml_row_bytes(type, a, &rb);
    uint8_t *q = malloc(rb * (n / a));
    qn_quant_row(type, x, q, n);
    qn_gguf_w_data(w, q, rb * (n / a));
    free(x);
    free(q);
}

/* hidden 32, layer 0 Gated DeltaNet, layer 1 full attention, 2 experts of width 8, vocabulary 8. */
static void micro_tensors(qn_gguf_writer *w, int pass)
{
    char nm[64];
#define T(type, nd, a, b, c, ...) (snprintf(nm, sizeof nm, __VA_ARGS__), tensor(w, pass, nm, type, nd, a, b, c))
    T(QN_GGML_Q8_0, 2, 32, 8, 0, "token_embd.weight");
    T(QN_GGML_F32, 1, 32, 0, 0, "output_norm.weight");
    T(QN_GGML_F16, 2, 32, 8, 0, "output.weight");
    for (int i = 0; i < 2; i++) {
        T(QN_GGML_F32, 1, 32, 0, 0, "blk.%d.attn_norm.weight", i);
        T(QN_GGML_F32, 1, 32, 0, 0, "blk.%d.post_attention_norm.weight", i);
        if (i == 0) {
            T(QN_GGML_Q8_0, 2, 32, 8, 0, "blk.0.attn_qkv.weight");
            T(QN_GGML_F32, 2, 32, 4, 0, "blk.0.attn_gate.weight");
            T(QN_GGML_F32, 2, 32, 4, 0, "blk.0.ssm_ba.weight");
            T(QN_GGML_F32, 2, 2, 8, 0, "blk.0.ssm_conv1d.weight");
            T(QN_GGML_F32, 1, 2, 0, 0, "blk.0.ssm_dt.bias");
            T(QN_GGML_F32, 1, 2, 0, 0, "blk.0.ssm_a");
            T(QN_GGML_F32, 1, 2, 0, 0, "blk.0.ssm_norm.weight");
            T(QN_GGML_F32, 2, 4, 32, 0, "blk.0.ssm_out.weight");
        } else {
            T(QN_GGML_F32, 2, 32, 8, 0, "blk.1.attn_q.weight");
            T(QN_GGML_F32, 2, 32, 4, 0, "blk.1.attn_k.weight");
            T(QN_GGML_F32, 2, 32, 4, 0, "blk.1.attn_v.weight");
            T(QN_GGML_F32, 2, 4, 32, 0, "blk.1.attn_output.weight");
            T(QN_GGML_F32, 1, 4, 0, 0, "blk.1.attn_q_norm.weight");
            T(QN_GGML_F32, 1, 4, 0, 0, "blk.1.attn_k_norm.weight");
        }
        T(QN_GGML_F32, 2, 32, 2, 0, "blk.%d.ffn_gate_inp.weight", i);
        T(QN_GGML_Q8_0, 3, 32, 8, 2, "blk.%d.ffn_gate_exps.weight", i);
        T(QN_GGML_F32, 3, 32, 8, 2, "blk.%d.ffn_up_exps.weight", i);
        T(QN_GGML_F32, 3, 8, 32, 2, "blk.%d.ffn_down_exps.weight", i);
        T(QN_GGML_F32, 1, 32, 0, 0, "blk.%d.ffn_gate_inp_shexp.weight", i);
        T(QN_GGML_F32, 2, 32, 8, 0, "blk.%d.ffn_gate_shexp.weight", i);
        T(QN_GGML_F32, 2, 32, 8, 0, "blk.%d.ffn_up_shexp.weight", i);
        T(QN_GGML_F32, 2, 8, 32, 0, "blk.%d.ffn_down_shexp.weight", i);
    }
#undef T
}

static int write_micro(const char *path)
{
    static const char *const toks[8] = {"a", "b", "c", "ab", "bc", "Ġx", "<|im_start|>", "<|im_end|>"};
    static const char *const merges[2] = {"a b", "b c"};
    static const int32_t types[8] = {1, 1, 1, 1, 1, 1, 3, 3};
    static const struct { const char *k; uint32_t v; } u[] = {
        {"block_count", 2}, {"context_length", 4096}, {"embedding_length", 32}, {"attention.head_count", 1},
        {"attention.head_count_kv", 1}, {"attention.key_length", 4}, {"rope.dimension_count", 2},
        {"expert_count", 2}, {"expert_used_count", 1}, {"expert_feed_forward_length", 8},
        {"expert_shared_feed_forward_length", 8}, {"ssm.conv_kernel", 2}, {"ssm.state_size", 2},
        {"ssm.group_count", 1}, {"ssm.time_step_rank", 2}, {"ssm.inner_size", 4}, {"full_attention_interval", 2},
    };
    qn_gguf_writer *w;
    int rc = qn_gguf_writer_open(&w, path, 0);
    if (rc) return rc;
    qn_gguf_w_str(w, "general.architecture", "qwen3next");
    char key[96];
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        snprintf(key, sizeof key, "qwen3next.%s", u[i].k);
        qn_gguf_w_u32(w, key, u[i].v);
    }
    qn_gguf_w_f32(w, "qwen3next.rope.freq_base", 1e7f);
    qn_gguf_w_f32(w, "qwen3next.attention.layer_norm_rms_epsilon", 1e-6f);
    qn_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    qn_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 8);
    qn_gguf_w_arr(w, "tokenizer.ggml.token_type", QN_GGUF_I32, types, 8);
    qn_gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, 2);
    qn_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 7);
    micro_tensors(w, 0);
    micro_tensors(w, 1);
    return qn_gguf_writer_close(&w);
}

static int write_generic(const char *path)
{
    static const char *const strs[3] = {"x", "", "yz"};
    static const int16_t i16s[3] = {-1, 2, 300};
    qn_gguf_val inner[2] = {{.type = QN_GGUF_ARR, .elem_type = QN_GGUF_I16, .n = 3, .raw = i16s},
                            {.type = QN_GGUF_ARR, .elem_type = QN_GGUF_STR, .n = 3, .strs = strs}};
    qn_gguf_writer *w;
    int rc = qn_gguf_writer_open(&w, path, 64);
    if (rc) return rc;
    qn_gguf_w_str(w, "general.architecture", "generic");
    qn_gguf_w_val(w, "g.i8", &(qn_gguf_val){.type = QN_GGUF_I8, .i = -3});
    qn_gguf_w_val(w, "g.f64", &(qn_gguf_val){.type = QN_GGUF_F64, .f = 2.5});
    qn_gguf_w_u64(w, "g.u64", 1ull << 40);
    qn_gguf_w_bool(w, "g.b", 1);
    qn_gguf_w_arr_str(w, "g.strs", strs, 3);
    qn_gguf_w_val(w, "g.nested", &(qn_gguf_val){.type = QN_GGUF_ARR, .elem_type = QN_GGUF_ARR, .n = 2, .items = inner});
    static const struct { const char *n; uint32_t type, nd; uint64_t a, b; } t[] = {
        {"q4k", QN_GGML_Q4_K, 2, 256, 2}, {"q5k", QN_GGML_Q5_K, 1, 256, 1}, {"q6k", QN_GGML_Q6_K, 1, 256, 1},
        {"q40", QN_GGML_Q4_0, 2, 32, 3}, {"bf16", QN_GGML_BF16, 2, 3, 5}, {"empty", QN_GGML_F32, 2, 4, 0},
        {"q50", QN_GGML_Q5_0, 2, 64, 3}, {"q51", QN_GGML_Q5_1, 2, 32, 2},
    };
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) tensor(w, pass, t[i].n, t[i].type, t[i].nd, t[i].a, t[i].b, 0);
    return qn_gguf_writer_close(&w);
}

/* ---------------------------------------------------------------- mutation */

static size_t pick(size_t n) { return n ? (size_t)(qn_rng_u64(&rng) % n) : 0; }

static size_t mutate(uint8_t *b, size_t n, size_t cap, size_t hot)
{
    static const uint64_t big[] = {0, 1, 2, 3, 4, 5, 7, 8, 31, 32, 33, 63, 64, 255, 256, 4096, 65535, 1ull << 31,
                                   1ull << 32, (1ull << 32) + 1, 1ull << 62, 1ull << 63, ~0ull, ~0ull - 7};
    size_t at = qn_rng_u64(&rng) % 5 ? pick(hot < n ? hot : n) : pick(n), len = 1 + pick(32);
    switch (qn_rng_u64(&rng) % 8) {
    case 0: if (n) b[at] ^= (uint8_t)(1u << pick(8)); break;
    case 1: if (n) b[at] = (uint8_t)big[pick(sizeof big / sizeof big[0])]; break;
    case 2: case 3: {   /* an interesting u32/u64 over a (probably) length, count, type or offset field */
        uint64_t v = big[pick(sizeof big / sizeof big[0])];
        size_t w = qn_rng_u64(&rng) & 1 ? 8 : 4;
        if (at + w <= n) memcpy(b + at, &v, w);
    } break;
    case 4: if (n > 1) n = 1 + pick(n - 1); break;
    case 5: if (at + len <= n) { memmove(b + at, b + at + len, n - at - len); n -= len; } break;
    case 6: if (n + len <= cap && at + len <= n) { memmove(b + at + len, b + at, n - at); n += len; } break;
    default: if (n + 1 <= cap) { memmove(b + at + 1, b + at, n - at); b[at] = (uint8_t)qn_rng_u64(&rng); n++; } break;
    }
    return n;
}

int main(int argc, char **argv)
{
    long mutants = argc > 1 ? atol(argv[1]) : 20000;
    qn_rng_seed(&rng, argc > 2 ? strtoull(argv[2], NULL, 0) : 2026);
    const char *seed_dir = argc > 4 && !strcmp(argv[3], "--write-seeds") ? argv[4] : NULL;
    char dir[64] = "/tmp/qn_gguf_fuzz_XXXXXX", path[2][128];
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    snprintf(path[0], sizeof path[0], "%s/%s", seed_dir ? seed_dir : dir, "seed_qwen3next_micro.gguf");
    snprintf(path[1], sizeof path[1], "%s/%s", seed_dir ? seed_dir : dir, "seed_generic.gguf");
    blob seed[2];
    size_t hot[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        int rc = i ? write_generic(path[i]) : write_micro(path[i]);
        if (rc || slurp(path[i], &seed[i])) { printf("FAIL: seed %s: %s\n", path[i], qn_errmsg()); return 1; }
        if (!seed_dir) unlink(path[i]);
        /* the seeds must be valid, the micro model must map */
        qn_gguf *g;
        qn_q3n *q = NULL;
        if (qn_gguf_open_mem(&g, seed[i].p, seed[i].n, path[i]) || (i == 0 && qn_q3n_open(&q, g))) {
            printf("FAIL: seed %s does not open: %s\n", path[i], qn_errmsg());
            return 1;
        }
        hot[i] = (size_t)qn_gguf_data_offset(g) + 64;   /* mutate mostly the header, metadata and infos */
        qn_q3n_close(&q);
        qn_gguf_close(&g);
        LLVMFuzzerTestOneInput(seed[i].p, seed[i].n);
    }
    rmdir(dir);
    size_t cap = seed[0].n + seed[1].n + 4096;
    uint8_t *buf = malloc(cap);
    long opened = 0;
    for (long k = 0; k < mutants; k++) {
        const blob *s = &seed[k & 1];
        memcpy(buf, s->p, s->n);
        size_t n = s->n;
        for (int e = 0, ne = 1 + (int)pick(4); e < ne; e++) n = mutate(buf, n, cap, hot[k & 1]);
        qn_gguf *g;
        if (!qn_gguf_open_mem(&g, buf, n, "mutant")) { opened++; qn_gguf_close(&g); }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("gguf_mutate: 2 seeds, %ld mutants, %ld of them still parse\n", mutants, opened);
    free(buf);
    free(seed[0].p);
    free(seed[1].p);
    return 0;
}
