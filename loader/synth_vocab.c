/* synth_vocab.c — tokenizer.ggml.* metadata for a synthetic qwen3next GGUF, as llama.cpp's converter writes it
 * for a Qwen BPE tokenizer (convert_hf_to_gguf get_vocab_base + gguf-py SpecialVocab): model "gpt2", pre
 * "qwen2", every id below vocab_size a token (ids the tokenizer lacks are "[PAD<id>]", type UNUSED), added
 * tokens CONTROL when special or shaped "<|...|>" (else USER_DEFINED), merges as "left right" strings,
 * special ids and the chat template from tokenizer_config.json next to tokenizer.json.
 * Without a tokenizer.json: a placeholder of the right size (the 256 byte-level tokens, "<|endoftext|>" at
 * the bos id, "<|im_end|>" at the eos id, "[PAD<id>]" elsewhere, no merges). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "qn_file.h"
#include "synth_int.h"

enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5 };

static cJSON *parse_file(const char *path)
{
    size_t len;
    char *txt;
    if (qn_read_file(path, 512u << 20, &txt, &len)) return NULL;
    cJSON *j = cJSON_ParseWithLength(txt, len);
    free(txt);
    if (!j) qn_fail(QN_E_FORMAT, "%s: invalid JSON", path);
    return j;
}

static int alloc_vocab(qn_synth_vocab *v, uint32_t n)
{
    v->n = n;
    v->tokens = calloc(n, sizeof *v->tokens);
    v->types = calloc(n, sizeof *v->types);
    return v->tokens && v->types ? 0 : qn_fail(-ENOMEM, "synth: out of memory for %u tokens", n);
}

static int set_tok(qn_synth_vocab *v, int64_t id, const char *s, int type)
{
    if (id < 0 || id >= v->n) return qn_fail(QN_E_FORMAT, "token '%s' has id %lld, outside the model's vocabulary "
                                             "of %u", s, (long long)id, v->n);
    free(v->tokens[id]);
    if (!(v->tokens[id] = strdup(s))) return qn_fail(-ENOMEM, "synth: out of memory");
    v->types[id] = type;
    return 0;
}

static int fill_pads(qn_synth_vocab *v)
{
    char pad[32];
    for (uint32_t i = 0; i < v->n; i++) {
        if (v->tokens[i]) continue;
        snprintf(pad, sizeof pad, "[PAD%u]", i);
        if (!(v->tokens[i] = strdup(pad))) return qn_fail(-ENOMEM, "synth: out of memory");
        v->types[i] = TT_UNUSED;
    }
    return 0;
}

/* GPT-2 byte-level alphabet: byte b -> code point (printable bytes map to themselves, others to 256 + k). */
static int byte_tokens(qn_synth_vocab *v)
{
    int k = 0;
    for (int b = 0; b < 256 && (uint32_t)b < v->n; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)k++;
        char s[4] = {0};
        if (cp < 0x80) s[0] = (char)cp;
        else { s[0] = (char)(0xc0 | (cp >> 6)); s[1] = (char)(0x80 | (cp & 0x3f)); }
        int rc = set_tok(v, b, s, TT_NORMAL);
        if (rc) return rc;
    }
    return 0;
}

static int placeholder(qn_synth_vocab *v, const qn_config *c)
{
    int rc = byte_tokens(v);
    v->bos = c->bos_token_id >= 0 && c->bos_token_id < (int64_t)v->n ? c->bos_token_id : -1;
    v->eos = c->n_eos && c->eos_token_ids[0] >= 0 && c->eos_token_ids[0] < (int64_t)v->n ? c->eos_token_ids[0] : -1;
    v->pad = v->bos;
    if (!rc && v->bos >= 256) rc = set_tok(v, v->bos, "<|endoftext|>", TT_CONTROL);
    if (!rc && v->eos >= 256 && v->eos != v->bos) rc = set_tok(v, v->eos, "<|im_end|>", TT_CONTROL);
    return rc ? rc : fill_pads(v);
}

static int looks_special(const char *s)
{
    size_t n = strlen(s);
    return n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>");
}

static int read_vocab(qn_synth_vocab *v, const cJSON *j, const char *path)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model"), *e;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsObject(vocab) || (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE"))))
        return qn_fail(QN_E_UNSUPPORTED, "%s: not a BPE tokenizer.json (model.type BPE with a model.vocab object)", path);
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e)) return qn_fail(QN_E_FORMAT, "%s: model.vocab['%s'] is not an id", path, e->string);
        int rc = set_tok(v, (int64_t)e->valuedouble, e->string, TT_NORMAL);
        if (rc) return qn_fail_ctx(rc, "%s: ", path);
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "added_tokens")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id"), *s = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(s)) return qn_fail(QN_E_FORMAT, "%s: an added token lacks id/content", path);
        int special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) || looks_special(s->valuestring);
        int rc = set_tok(v, (int64_t)id->valuedouble, s->valuestring, special ? TT_CONTROL : TT_USER);
        if (rc) return qn_fail_ctx(rc, "%s: ", path);
    }
    return 0;
}

/* merges: "a b" strings (older files) or ["a", "b"] pairs (newer). */
static int read_merges(qn_synth_vocab *v, const cJSON *j, const char *path)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "model"), "merges"), *e;
    int n = cJSON_GetArraySize(m);
    if (!n) return 0;
    if (!(v->merges = calloc((size_t)n, sizeof *v->merges))) return qn_fail(-ENOMEM, "synth: out of memory");
    cJSON_ArrayForEach(e, m) {
        char *s = NULL;
        if (cJSON_IsString(e)) s = strdup(e->valuestring);
        else if (cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                 cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            const char *a = cJSON_GetArrayItem(e, 0)->valuestring, *b = cJSON_GetArrayItem(e, 1)->valuestring;
            if ((s = malloc(strlen(a) + strlen(b) + 2))) sprintf(s, "%s %s", a, b);
        } else {
            return qn_fail(QN_E_FORMAT, "%s: merge %u is neither \"a b\" nor [a, b]", path, v->n_merges);
        }
        if (!s) return qn_fail(-ENOMEM, "synth: out of memory");
        v->merges[v->n_merges++] = s;
    }
    return 0;
}

/* A special token of tokenizer_config.json ("eos_token": "<|im_end|>" or {"content": ...}) -> its id. */
static int64_t special_id(const qn_synth_vocab *v, const cJSON *cfg, const char *key)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(e)) e = cJSON_GetObjectItemCaseSensitive(e, "content");
    if (!cJSON_IsString(e)) return -1;
    for (uint32_t i = 0; i < v->n; i++)
        if (v->types[i] == TT_CONTROL && !strcmp(v->tokens[i], e->valuestring)) return i;
    return -1;
}

static int read_config(qn_synth_vocab *v, const char *tok_path, const qn_config *c)
{
    char path[4096];
    const char *slash = strrchr(tok_path, '/');
    snprintf(path, sizeof path, "%.*stokenizer_config.json", slash ? (int)(slash - tok_path + 1) : 0, tok_path);
    FILE *f = fopen(path, "rb");
    cJSON *cfg = NULL;
    if (f) {
        fclose(f);
        if (!(cfg = parse_file(path))) return qn_fail_ctx(QN_E_FORMAT, "tokenizer config: ");
    }
    v->bos = special_id(v, cfg, "bos_token");
    if (v->bos < 0 && c->bos_token_id >= 0 && c->bos_token_id < (int64_t)v->n) v->bos = c->bos_token_id;
    v->eos = special_id(v, cfg, "eos_token");
    if (v->eos < 0 && c->n_eos && c->eos_token_ids[0] >= 0 && c->eos_token_ids[0] < (int64_t)v->n) v->eos = c->eos_token_ids[0];
    v->pad = special_id(v, cfg, "pad_token");
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    v->add_bos = cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : -1;
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    int rc = cJSON_IsString(tpl) && !(v->chat_template = strdup(tpl->valuestring)) ? qn_fail(-ENOMEM, "out of memory") : 0;
    cJSON_Delete(cfg);
    return rc;
}

static int from_json(qn_synth_vocab *v, const char *path, const qn_config *c)
{
    cJSON *j = parse_file(path);
    if (!j) return qn_fail_ctx(QN_E_FORMAT, "tokenizer: ");
    int rc = read_vocab(v, j, path);
    if (!rc) rc = read_merges(v, j, path);
    cJSON_Delete(j);
    if (!rc) rc = read_config(v, path, c);
    return rc ? rc : fill_pads(v);
}

static void count_bytes(qn_synth_vocab *v)
{
    uint64_t b = 1024 + (v->chat_template ? strlen(v->chat_template) + 8 : 0) + 4u * v->n;
    for (uint32_t i = 0; i < v->n; i++) b += 8 + strlen(v->tokens[i]);
    for (uint32_t i = 0; i < v->n_merges; i++) b += 8 + strlen(v->merges[i]);
    v->meta_bytes = b;
}

int qn_synth_vocab_make(qn_synth_vocab **out, const char *path, const qn_config *c)
{
    qn_synth_vocab *v = calloc(1, sizeof *v);
    int rc = v ? alloc_vocab(v, (uint32_t)c->vocab_size) : qn_fail(-ENOMEM, "synth: out of memory");
    if (!rc) {
        v->add_bos = -1;
        rc = path ? from_json(v, path, c) : placeholder(v, c);
    }
    if (rc) {
        qn_synth_vocab_free(&v);
        return rc;
    }
    count_bytes(v);
    *out = v;
    return 0;
}

void qn_synth_vocab_free(qn_synth_vocab **pv)
{
    qn_synth_vocab *v = *pv;
    if (!v) return;
    for (uint32_t i = 0; v->tokens && i < v->n; i++) free(v->tokens[i]);
    for (uint32_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
    free(v->chat_template);
    free(v);
    *pv = NULL;
}

int qn_synth_vocab_write(qn_gguf_writer *w, const qn_synth_vocab *v)
{
    int rc = qn_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    if (!rc) rc = qn_gguf_w_str(w, "tokenizer.ggml.pre", "qwen2");
    if (!rc) rc = qn_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, v->n);
    if (!rc) rc = qn_gguf_w_arr(w, "tokenizer.ggml.token_type", QN_GGUF_I32, v->types, v->n);
    if (!rc) rc = qn_gguf_w_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, v->n_merges);
    if (!rc && v->eos >= 0) rc = qn_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (!rc && v->pad >= 0) rc = qn_gguf_w_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
    if (!rc && v->bos >= 0) rc = qn_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (!rc && v->add_bos >= 0) rc = qn_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    if (!rc && v->chat_template) rc = qn_gguf_w_str(w, "tokenizer.chat_template", v->chat_template);
    return rc;
}
