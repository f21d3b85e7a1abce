/* tokenizer.h — byte-level BPE tokenizer read from a Hugging Face tokenizer.json (Qwen2/Qwen3 family).
 *
 * Encoding: added tokens (<|im_start|> ...) are matched literally first (leftmost-longest), the text
 * between them is NFC-normalised, split with the pre-tokenizer regex found in the file (PCRE2, JIT),
 * and each piece's UTF-8 bytes are merged by rank. Decoding: ids -> bytes -> UTF-8, invalid bytes
 * replaced by U+FFFD per maximal subpart (what HF's decode / Python's errors="replace" give).
 *
 *     qn_tok *tok;
 *     if ((rc = qn_tok_load(&tok, "tokenizer.json")) < 0) ... qn_errmsg() says why
 *     int32_t *ids; int n;
 *     rc = qn_tok_encode(tok, text, strlen(text), &ids, &n);   // free(ids)
 *
 * A qn_tok is used by one thread at a time for encoding (it keeps a cache of encoded pieces and
 * scratch space); decoding and the lookups only read it. */
#ifndef QN_TOKENIZER_H
#define QN_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qn_tok qn_tok;

/* Encode flags. */
#define QN_TOK_NO_SPECIAL 1u /* treat added-token strings in the text as plain text (untrusted input) */

/* Load `path` (a tokenizer.json). Errors name the file and what is wrong (-ENOENT, QN_E_FORMAT,
 * QN_E_UNSUPPORTED for a valid file of a kind we do not handle). */
int qn_tok_load(qn_tok **out, const char *path);
void qn_tok_free(qn_tok **tok);

/* Number of ids (largest id in the file + 1; 151669 for Qwen3). Ids in [0, n) may still be unused. */
int qn_tok_n_vocab(const qn_tok *tok);
/* The pre-tokenizer regex in use and whether PCRE2's JIT compiled it. */
const char *qn_tok_regex(const qn_tok *tok, bool *jit);

/* Encode `len` bytes of UTF-8 `text`. *ids is malloc'd (NULL when *n == 0). Invalid UTF-8 is an
 * error (-EINVAL) naming the byte offset. */
int qn_tok_encode(qn_tok *tok, const char *text, size_t len, int32_t **ids, int *n);
int qn_tok_encode_flags(qn_tok *tok, const char *text, size_t len, unsigned flags, int32_t **ids, int *n);

/* Decode ids into a malloc'd NUL-terminated string (*len bytes, may be NULL). Ids outside the
 * vocabulary decode to nothing (as HF does); skip_special drops added tokens marked "special". */
int qn_tok_decode(const qn_tok *tok, const int32_t *ids, int n, bool skip_special, char **text, size_t *len);

/* The bytes one id decodes to (not NUL-terminated; may be an incomplete UTF-8 sequence).
 * NULL for an id outside the vocabulary. */
const char *qn_tok_bytes(const qn_tok *tok, int32_t id, size_t *len);
/* Whether `id` is an added token (matched literally), and whether it is marked special. */
bool qn_tok_is_added(const qn_tok *tok, int32_t id);
bool qn_tok_is_special(const qn_tok *tok, int32_t id);
/* The id of an added token with exactly this content ("<|im_end|>"), else of a vocabulary token
 * whose bytes are exactly `s`; -1 if none. */
int32_t qn_tok_find(const qn_tok *tok, const char *s);

/* Streaming decoder: feed ids one at a time, get back only complete UTF-8. A token that ends inside
 * a multi-byte character is held back until the rest arrives; feeding a whole sequence id by id and
 * then flushing gives exactly qn_tok_decode() of the sequence. */
typedef struct qn_tok_stream qn_tok_stream;
int qn_tok_stream_create(qn_tok_stream **out, const qn_tok *tok, bool skip_special);
void qn_tok_stream_free(qn_tok_stream **s);
/* Add one id; *text (valid until the next call on this stream) receives the bytes now complete,
 * *len their count (often 0). */
int qn_tok_stream_push(qn_tok_stream *s, int32_t id, const char **text, size_t *len);
/* End of sequence: whatever is held back comes out (an incomplete sequence as U+FFFD). The stream
 * is then empty and can be reused. */
int qn_tok_stream_flush(qn_tok_stream *s, const char **text, size_t *len);

/* UTF-8 helper shared with the chat template and the CLI: 0 if s[0..n) is valid UTF-8, else
 * -EINVAL with *bad_offset set to the first offending byte. */
int qn_utf8_check(const char *s, size_t n, size_t *bad_offset);

#endif
