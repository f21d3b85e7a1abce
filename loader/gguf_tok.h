/* gguf_tok.h — tokenizer metadata of a GGUF (tokenizer.ggml.*) as plain arrays, independent of the
 * qn_gguf handle (everything is copied), for adapting to the tokenizer built from tokenizer.json.
 * Keys: gguf-py/gguf/constants.py Keys.Tokenizer. Token types: 1 normal, 2 unknown, 3 control,
 * 4 user-defined, 5 unused, 6 byte. */
#ifndef QN_GGUF_TOK_H
#define QN_GGUF_TOK_H

#include <stdint.h>

#include "gguf.h"

typedef struct qn_gguf_vocab {
    const char *model;          /* tokenizer.ggml.model ("gpt2" for Qwen BPE), "" if absent */
    const char *pre;            /* tokenizer.ggml.pre ("qwen2"), "" if absent */
    uint32_t n_tokens;
    const char **tokens;        /* tokenizer.ggml.tokens, byte-level BPE strings as stored */
    const uint32_t *token_len;  /* lengths (tokens may in principle hold NULs) */
    const int32_t *token_type;  /* NULL if absent */
    const float *scores;        /* NULL if absent */
    uint32_t n_merges;
    const char **merges;        /* "left right" pairs, rank order; NULL if absent */
    int64_t bos_id, eos_id, eot_id, eom_id, pad_id, unk_id, sep_id;  /* -1 if absent */
    int add_bos, add_eos;       /* -1 if absent, else 0/1 */
    const char *chat_template;  /* tokenizer.chat_template, NULL if absent */
    void *mem_;                 /* single allocation backing everything above */
} qn_gguf_vocab;

/* Extract (tokens are required; every other key is optional). Array lengths are checked: token_type and
 * scores must match the token count; ids must be < n_tokens. */
int qn_gguf_vocab_get(const qn_gguf *g, qn_gguf_vocab *v);
void qn_gguf_vocab_free(qn_gguf_vocab *v);

#endif
