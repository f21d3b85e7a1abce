/* synth.h — random-weight qwen3_next checkpoints for testing and benchmarking (`qnext synth`).
 *
 * A plan lists every tensor of the output for a config, a format and a type: the Hugging Face hub layout
 * (per-expert tensors, config.json, shards + model.safetensors.index.json), or a llama.cpp `qwen3next` GGUF
 * exactly as llama.cpp's converter names and transforms it (stacked experts, split attn_qkv/attn_gate,
 * norms stored as 1 + w, ssm_a = -exp(A_log)) with llama.cpp's stock type mix for the chosen file type
 * (llama-quant.cpp rules: Q4_K_M puts Q6_K on output and on attn_v/attn_qkv/ffn_down of the use_more_bits
 * layers ...). Writing streams tensor by tensor with bounded memory, calls a progress callback that can
 * cancel, and removes every file it created when anything fails.
 *
 * Values (HF meaning; the GGUF holds them after the converter's transforms), as the golden fixtures use:
 * embed N(0,1), lm_head N(0, 2/sqrt(H)), every other matrix N(0, 1/sqrt(fan_in)), zero-centred norms
 * N(0, 0.2) (GGUF: 1 + that), the gated norm 1 + N(0, 0.2), A_log = log U(1,16), dt_bias N(0, 0.5),
 * conv1d N(0, 0.5). Deterministic from the seed. Float tensors above 256 Ki values (quantized ones above
 * 32 Ki) are tiled, in ~64 KiB pieces at random block-aligned offsets, from 8 MiB pools per (type,
 * distribution): float pools are generated value by value; quantized pools hold 256 Ki genuinely generated
 * and quantized values (the K-quant quantizers run at ~2 M values/s) and the rest of the pool is random
 * picks among those blocks. So the full model is written at disk speed; values repeat across the file while
 * every tensor's layout and statistics are real. Smaller tensors are generated value by value. */
#ifndef QN_SYNTH_H
#define QN_SYNTH_H

#include <stdint.h>

#include "config.h"

typedef enum qn_synth_format { QN_SYNTH_SAFETENSORS = 0, QN_SYNTH_GGUF = 1 } qn_synth_format;

/* File types: llama.cpp's LLAMA_FTYPE_* values (general.file_type). The float ones also name the dtype of
 * a safetensors output. */
enum qn_synth_ftype {
    QN_FT_F32 = 0, QN_FT_F16 = 1, QN_FT_Q4_0 = 2, QN_FT_Q8_0 = 7, QN_FT_Q4_K_S = 14, QN_FT_Q4_K_M = 15,
    QN_FT_Q5_K_S = 16, QN_FT_Q5_K_M = 17, QN_FT_Q6_K = 18, QN_FT_BF16 = 32,
};

/* "q4_k_m" -> QN_FT_Q4_K_M (case-insensitive); -1 for an unknown name. */
int qn_synth_ftype_parse(const char *name);
const char *qn_synth_ftype_name(int ftype);    /* "q4_k_m"; NULL for an unknown value */
/* The list of accepted names, for help texts: "f32, f16, bf16, q8_0, ..." */
const char *qn_synth_ftype_list(void);

typedef struct qn_synth_opts {
    qn_synth_format format;
    int ftype;                  /* enum qn_synth_ftype; safetensors takes only f32/f16/bf16 */
    uint64_t seed;
    uint64_t shard_size;        /* safetensors: largest shard in bytes (0 = no limit: one model.safetensors) */
    const char *tokenizer_json; /* gguf: tokenizer.json for tokenizer.ggml.* (its tokenizer_config.json next to
                                 * it adds the chat template and special ids); NULL = placeholder vocabulary */
    int sync;                   /* fsync every file before returning */
    /* Called after every few MiB with the data bytes written so far; a non-zero return cancels (the write
     * then fails with -ECANCELED and removes its files). May be NULL. */
    int (*progress)(void *user, uint64_t done, uint64_t total);
    void *user;
    const char *name;           /* gguf general.name (NULL = a description of the synthetic model); not copied */
} qn_synth_opts;

/* One tensor of the output. shape is outermost-first (safetensors order); a GGUF's ne[] is shape reversed. */
typedef struct qn_synth_tensor {
    char name[96];
    uint32_t type;              /* ggml type id (quant.h); safetensors uses F32/F16/BF16 */
    uint32_t want;              /* gguf: the type the file type's mix chose before the row-length fallback
                                 * (llama.cpp tensor_type_fallback); == type when the rows fit it */
    int ndim;
    int64_t shape[3];
    uint64_t nbytes;
    int file;                   /* shard index (safetensors); 0 for gguf */
    /* value distribution (internal): kind 0 = N(mean, std), 1 = log U(1,16), 2 = -U(1,16) */
    uint8_t dist;
    float mean, std;
} qn_synth_tensor;

typedef struct qn_synth_plan qn_synth_plan;

/* Build the plan (validates the config and options; loads the tokenizer for GGUF). */
int qn_synth_plan_make(qn_synth_plan **out, const qn_config *c, const qn_synth_opts *o);
void qn_synth_plan_free(qn_synth_plan **p);

int qn_synth_plan_count(const qn_synth_plan *p);
const qn_synth_tensor *qn_synth_plan_at(const qn_synth_plan *p, int i);
const qn_synth_tensor *qn_synth_plan_find(const qn_synth_plan *p, const char *name);   /* NULL if absent */
uint64_t qn_synth_plan_data_bytes(const qn_synth_plan *p);  /* tensor data only */
/* Every byte the output will take on disk: data, headers, GGUF padding and metadata, config.json, index. */
uint64_t qn_synth_plan_file_bytes(const qn_synth_plan *p);
/* Number of output files holding tensors (shards; 1 for gguf), and the name of file i ("model.safetensors",
 * "model-00001-of-00004.safetensors"; for gguf the base name of the output path). */
int qn_synth_plan_nfiles(const qn_synth_plan *p);
const char *qn_synth_plan_file_name(const qn_synth_plan *p, int i);
/* Tensors whose rows do not fit the block of the type the mix chose (t->want != t->type): llama.cpp's
 * tensor_type_fallback Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16 when 32 does not divide the row
 * either; Q8_0 / Q4_0 rows that 32 does not divide -> F16. 0 for the real model's shapes. */
int qn_synth_plan_fallbacks(const qn_synth_plan *p);
/* One line about a fallen-back tensor: "blk.0.ffn_down_exps.weight ne {48, 128, 16}: rows of 48 are not a
 * multiple of 256 (Q4_K) -> F16 (32 does not divide 48 either)". Returns buf. */
const char *qn_synth_fallback_desc(const qn_synth_tensor *t, char *buf, size_t cap);

/* Write the output: a folder `out` (created if missing; safetensors) or a file `out` (gguf). Existing
 * files of the same names are replaced (the caller decides about overwriting). On failure or cancel
 * every file this call created is removed. */
int qn_synth_write(const qn_synth_plan *p, const char *out);

/* Disk-space rule: 0 when `avail` bytes hold `need` plus a margin of 1% + 16 MiB, else a -ENOSPC message
 * "WHERE: needs X, has Y" (sizes in GB). */
int qn_synth_space_check(uint64_t need, uint64_t avail, const char *where);
/* Bytes available to an unprivileged writer in the filesystem holding `dir` (statvfs). */
int qn_synth_space_avail(const char *dir, uint64_t *avail);

#endif
