/* gguf_convert.h — a Hugging Face qwen3_next checkpoint -> a llama.cpp `qwen3next` GGUF (`qnext quantize`).
 *
 * What llama.cpp's converter + llama-quantize produce: the tensor list, names, metadata and per-tensor type
 * mix come from the synth GGUF plan (synth.h, llama-quant.cpp's rules); the values come from the checkpoint
 * with the converter's transforms (docs/gguf-qwen3next.md §3): norms stored 1 + w (not linear_attn.norm),
 * ssm_a = -exp(A_log), conv1d squeezed, in_proj_qkvz split into attn_qkv (flat q|k|v) + attn_gate (z) — the
 * row layout is the inverse of qn_q3n_qkvz_row, so it has one home —, experts stacked expert by expert.
 * Streams rows in bounded chunks (a few MiB; never a whole tensor), reports progress in input bytes, and
 * removes the partial output when anything fails or the progress callback cancels. */
#ifndef QN_GGUF_CONVERT_H
#define QN_GGUF_CONVERT_H

#include <stdint.h>

#include "config.h"
#include "synth.h"

typedef struct qn_conv_opts {
    int ftype;                   /* enum qn_synth_ftype */
    const char *tokenizer_json;  /* NULL: <hf_dir>/tokenizer.json when present, else a placeholder vocabulary */
    /* Called every few MiB with input bytes read so far / in total; non-zero cancels (-ECANCELED). */
    int (*progress)(void *user, uint64_t done, uint64_t total);
    void *user;
    int threads;                 /* quantizer threads (0 = one per online CPU, at most 64) */
} qn_conv_opts;

typedef struct qn_conv qn_conv;

/* Open the checkpoint (config.json must say qwen3_next, every tensor must be present with a float dtype:
 * F32, F16 or BF16) and build the output plan. */
int qn_conv_open(qn_conv **out, const char *hf_dir, const qn_conv_opts *o);
void qn_conv_close(qn_conv **c);

const qn_config *qn_conv_config(const qn_conv *c);
const qn_synth_plan *qn_conv_plan(const qn_conv *c);   /* output tensors, types, sizes */
uint64_t qn_conv_input_bytes(const qn_conv *c);         /* checkpoint tensor bytes that are read */
const char *qn_conv_tokenizer(const qn_conv *c);        /* tokenizer.json used, NULL = placeholder */
/* Tensors whose rows do not fit the block of the type the mix chose (t->want) and that got another type
 * (t->type), in file order: llama.cpp's tensor_type_fallback Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then
 * F16 when 32 does not divide the row; Q8_0/Q4_0 -> F16 (qn_synth_plan_fallbacks). */
int qn_conv_fallback_count(const qn_conv *c);
const qn_synth_tensor *qn_conv_fallback_at(const qn_conv *c, int i);

/* Write the GGUF to `path` (replaced if present; the caller decides about overwriting). */
int qn_conv_write(qn_conv *c, const char *path);

#endif
