/* fuzz_gguf.c — libFuzzer entry point for the GGUF reader and everything layered on it: every metadata value
 * walked, small tensors read and dequantized, tokenizer metadata extracted, and the qwen3next mapping opened
 * with every HF tensor resolved and read. Built as a libFuzzer target with -Dfuzz=true (clang) and, always,
 * into gguf_mutate (a deterministic seed + mutation driver run as a normal test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_qwen3next.h"
#include "gguf_tok.h"
#include "quant.h"
#include "tensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void walk_value(const qn_gguf_val *v)
{
    if (v->type == QN_GGUF_STR) { sink += v->len + (uint8_t)v->str[v->len]; return; }
    if (v->type != QN_GGUF_ARR) { sink += v->u; return; }
    for (uint64_t i = 0; i < v->n; i++) {
        if (v->elem_type == QN_GGUF_STR) sink += v->lens[i] + (uint8_t)v->strs[i][v->lens[i]];
        else if (v->elem_type == QN_GGUF_ARR) walk_value(&v->items[i]);
        else {
            int64_t x;
            if (!qn_gguf_arr_int(v, i, &x)) sink += (uint64_t)x;
            else sink += ((const uint8_t *)v->raw)[i * qn_gguf_vtype_size(v->elem_type)];
        }
    }
}

static void read_tensors(const qn_gguf *g)
{
    static uint8_t buf[1 << 16];
    static float out[1 << 16];
    for (uint64_t i = 0; i < qn_gguf_n_tensors(g); i++) {
        const qn_gguf_tensor *t = qn_gguf_tensor_at(g, i);
        size_t n = t->nbytes < sizeof buf ? (size_t)t->nbytes : sizeof buf;
        if (qn_gguf_read(g, t->offset, buf, n)) abort();   /* the reader promised the bytes are in the file */
        const qn_ggml_type_info *ti = qn_ggml_type(t->type);
        uint64_t elems = t->row_bytes ? t->nbytes / t->row_bytes * t->ne[0] : 0;
        if (ti && ti->dequant && t->nbytes <= sizeof buf && elems <= sizeof out / sizeof out[0])
            if (qn_dequant_row(t->type, buf, out, elems)) abort();
    }
}

typedef struct q3n_walk { const qn_q3n *q; } q3n_walk;

static int read_one(void *user, const qn_tensor_spec *spec)
{
    static float out[1 << 16];
    q3n_walk *w = user;
    qn_q3n_src s;
    if (qn_q3n_find(w->q, spec->name, &s)) abort();   /* open() checked every name */
    uint64_t n = 1;
    for (int k = 0; k < spec->ndim; k++) n *= (uint64_t)spec->shape[k];
    if (n <= sizeof out / sizeof out[0]) qn_q3n_read_f32(w->q, &s, out, n);
    return 0;
}

static void try_qwen3next(const qn_gguf *g)
{
    qn_config c;
    int nextn;
    qn_q3n_read_config(g, &c, &nextn);
    qn_q3n *q;
    if (qn_q3n_open(&q, g)) return;
    q3n_walk w = {q};
    const qn_config *cfg = qn_q3n_config(q);
    if (qn_cfg_tensor_count(cfg) < 4096) qn_cfg_tensors(cfg, read_one, &w);
    qn_file_span sp;
    qn_q3n_expert_span(q, 0, QN_Q3N_DOWN, cfg->num_experts - 1, 4096, &sp);
    qn_q3n_close(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qn_gguf *g;
    if (qn_gguf_open_mem(&g, data, size, "fuzz.gguf")) return 0;
    for (uint64_t i = 0; i < qn_gguf_n_kv(g); i++) walk_value(&qn_gguf_kv_at(g, i)->val);
    read_tensors(g);
    qn_gguf_vocab v;
    if (!qn_gguf_vocab_get(g, &v)) {
        for (uint32_t i = 0; i < v.n_tokens; i++) sink += v.token_len[i];
        qn_gguf_vocab_free(&v);
    }
    try_qwen3next(g);
    qn_gguf_close(&g);
    return 0;
}
