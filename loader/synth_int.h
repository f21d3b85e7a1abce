/* synth_int.h — what the synth files (synth_plan.c, synth.c, synth_vocab.c) share; not a public header. */
#ifndef QN_SYNTH_INT_H
#define QN_SYNTH_INT_H

#include <stdint.h>

#include "config.h"
#include "gguf_write.h"
#include "synth.h"

enum { QN_SD_NORMAL = 0, QN_SD_LOG_U = 1, QN_SD_NEG_U = 2 };

/* tokenizer.ggml.* contents (synth_vocab.c) */
typedef struct qn_synth_vocab {
    uint32_t n;                 /* = vocab_size */
    char **tokens;
    int32_t *types;
    uint32_t n_merges;
    char **merges;
    int64_t bos, eos, pad;      /* -1 if none */
    int add_bos;                /* -1 if unknown */
    char *chat_template;        /* NULL if none */
    uint64_t meta_bytes;        /* bytes these keys take in a GGUF */
} qn_synth_vocab;

struct qn_synth_plan {
    qn_config cfg;
    qn_synth_opts opts;
    char *tok_path;
    qn_synth_tensor *t;
    int n, cap;
    int nfiles;
    char (*files)[64];
    uint64_t data_bytes, file_bytes;
    qn_synth_vocab *vocab;      /* gguf only */
    int n_fallback;             /* tensors whose type is not the one the mix chose (rows do not fit its block) */
};

/* The vocabulary of n_vocab ids from a tokenizer.json (path) or a placeholder (path NULL). */
int qn_synth_vocab_make(qn_synth_vocab **out, const char *path, const qn_config *c);
void qn_synth_vocab_free(qn_synth_vocab **v);
int qn_synth_vocab_write(qn_gguf_writer *w, const qn_synth_vocab *v);

/* The qwen3next.* / general.* metadata (synth_plan.c) and its approximate size in bytes. */
int qn_synth_gguf_meta(qn_gguf_writer *w, const qn_synth_plan *p);

/* Rows of t: the product of every dimension but the last (the row length). */
uint64_t qn_synth_rows(const qn_synth_tensor *t);
/* t's tensor-info entry in a GGUF being written (dimensions in GGUF order: the row length first). */
int qn_synth_gguf_tensor(qn_gguf_writer *w, const qn_synth_tensor *t);

#endif
