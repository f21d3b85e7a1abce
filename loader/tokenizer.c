/* tokenizer.c — byte-level BPE from a Hugging Face tokenizer.json: loading, encoding, decoding.
 *
 * Layout of a loaded tokenizer:
 *   - every id's decoded bytes live in one arena (off[id], len[id]); vocab strings in the file are
 *     GPT-2 "byte-level" text (each byte shown as one printable code point) and are mapped back to
 *     raw bytes at load, so encoding works on raw bytes throughout;
 *   - vocab map: raw bytes -> id (open addressing), used to find merge results at load;
 *   - merge map: (left id, right id) -> (rank, merged id), the hot path of BPE;
 *   - added tokens, grouped by first byte, longest first (leftmost-longest literal matching);
 *   - a cache of encoded pieces (piece bytes -> ids), cleared when it fills up. */
#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "qn_err.h"
#include "qn_file.h"
#include "qn_log.h"

/* Used when the file names no pre-tokenizer regex: the Qwen2 pattern (spec section 11). */
static const char qwen2_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* ByteLevel pre-tokenizer with use_regex = true (GPT-2). */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum { TF_PRESENT = 1, TF_ADDED = 2, TF_SPECIAL = 4 };
#define MAX_IDS (1 << 24)
#define CACHE_MAX_PIECE 96       /* longer pieces are not cached */
#define CACHE_SLOTS (1u << 16)   /* cleared when half full */
#define EMPTY32 UINT32_MAX

typedef struct { uint32_t off, len, id; } vocab_slot;
typedef struct { uint64_t key; uint32_t rank, id; } merge_slot;
typedef struct { uint64_t hash; uint32_t key_off, key_len, val_off, val_n; } cache_slot;
typedef struct { uint32_t id, off, len; } added_tok;
typedef struct { uint32_t rank, pos; int32_t id, left, right; } heap_ent;

typedef struct { uint8_t *p; size_t n, cap; } bytebuf;
typedef struct { int32_t *p; size_t n, cap; } idbuf;

struct qn_tok {
    char *path;
    int n_vocab;
    uint32_t *off, *len;       /* [n_vocab] decoded bytes of each id in `arena` */
    uint8_t *flags;            /* [n_vocab] TF_* */
    bytebuf arena;
    vocab_slot *vmap; uint32_t vmask;
    merge_slot *mmap; uint32_t mmask;
    int32_t byte_id[256];      /* id of each single-byte token */
    added_tok *added; int n_added;   /* sorted: first byte, then longest first */
    uint16_t added_at[257];    /* added[added_at[b] .. added_at[b+1]) start with byte b */
    bytebuf added_text;        /* contents of added tokens (what is matched in text) */
    char *regex;
    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
    bool jit, nfc;
    /* encode state */
    cache_slot *cache; uint32_t cache_n;
    bytebuf cache_keys; idbuf cache_vals;
    int32_t *sym_id; int32_t *sym_prev, *sym_next; size_t sym_cap;
    heap_ent *heap; size_t heap_cap;
    bytebuf norm;              /* NFC output of the segment being encoded */
};

/* ---------------------------------------------------------------- small buffers */

static int bb_reserve(bytebuf *b, size_t extra)
{
    if (b->n + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return qn_fail(-ENOMEM, "tokenizer: out of memory (%zu bytes)", cap);
    b->p = p, b->cap = cap;
    return 0;
}

static int bb_put(bytebuf *b, const void *s, size_t n)
{
    int rc = bb_reserve(b, n + 1);
    if (rc < 0) return rc;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

static int ib_put(idbuf *b, int32_t v)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        int32_t *p = realloc(b->p, cap * sizeof *p);
        if (!p) return qn_fail(-ENOMEM, "tokenizer: out of memory (%zu ids)", cap);
        b->p = p, b->cap = cap;
    }
    b->p[b->n++] = v;
    return 0;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
        p += 8, n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, p, n);
    h = (h ^ v) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h | 1; /* 0 marks an empty cache slot */
}

static uint32_t hash_pair(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

/* An open-addressing table for n keys (power-of-two size >= 1.5 n, all slots 0xff = empty) and its mask;
 * NULL when out of memory. */
static void *new_table(size_t n, size_t slot_bytes, uint32_t *mask)
{
    uint32_t size = 1024;
    while (size < n + n / 2) size *= 2;
    void *tab = malloc(size * slot_bytes);
    if (tab) memset(tab, 0xff, size * slot_bytes);
    *mask = size - 1;
    return tab;
}

/* ---------------------------------------------------------------- UTF-8 */

enum { U8_OK, U8_TRUNC, U8_BAD };

/* Classify the sequence at s[0..avail): U8_OK with *n its length; U8_TRUNC when the bytes so far
 * are a valid start but the buffer ends (*n = avail); U8_BAD with *n the length of the maximal
 * invalid subpart (the unit one U+FFFD replaces). */
static int u8_next(const uint8_t *s, size_t avail, int *n, uint32_t *cp)
{
    uint8_t b = s[0];
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b < 0x80) { *n = 1; if (cp) *cp = b; return U8_OK; }
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b >= 0xE0 && b <= 0xEF) { need = 2; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { need = 3; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
    else { *n = 1; return U8_BAD; }
    uint32_t c = b & (0x3F >> need);
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= avail) { *n = (int)avail; return U8_TRUNC; }
        uint8_t x = s[i];
        if (x < lo || x > hi) { *n = i; return U8_BAD; }
        lo = 0x80, hi = 0xBF;
        c = (c << 6) | (x & 0x3F);
    }
    *n = need + 1;
    if (cp) *cp = c;
    return U8_OK;
}

int qn_utf8_check(const char *s, size_t n, size_t *bad_offset)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) { i++; continue; }
        int k;
        if (u8_next(p + i, n - i, &k, NULL) != U8_OK) {
            if (bad_offset) *bad_offset = i;
            return -EINVAL;
        }
        i += (size_t)k;
    }
    return 0;
}

/* Append s[0..n) to out as valid UTF-8, each maximal invalid subpart as U+FFFD. When !final, a
 * truncated sequence at the end is not consumed; returns the number of bytes consumed. */
static int u8_lossy(bytebuf *out, const uint8_t *s, size_t n, bool final, size_t *consumed)
{
    static const uint8_t fffd[3] = { 0xEF, 0xBF, 0xBD };
    int rc = bb_reserve(out, n + n / 2 + 4); /* worst case: every byte becomes 3 */
    if (rc < 0) return rc;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] < 0x80) j++;
        if (j > i) {
            if ((rc = bb_put(out, s + i, j - i)) < 0) return rc;
            i = j;
            continue;
        }
        int k, st = u8_next(s + i, n - i, &k, NULL);
        if (st == U8_TRUNC && !final) break;
        rc = st == U8_OK ? bb_put(out, s + i, (size_t)k) : bb_put(out, fffd, 3);
        if (rc < 0) return rc;
        i += (size_t)k;
    }
    *consumed = i;
    return 0;
}

/* ---------------------------------------------------------------- GPT-2 byte <-> code point map */

/* Printable bytes stand for themselves; the others (controls, space, 0x7F-0xA0, 0xAD) are shifted
 * to U+0100.. in byte order. */
static void byte_map(uint16_t b2u[256], int16_t u2b[324])
{
    int next = 256;
    for (int i = 0; i < 324; i++) u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        b2u[b] = (uint16_t)(keep ? b : next++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

/* Byte-level string (UTF-8 of mapped code points) -> raw bytes appended to out. Returns 0, or
 * 1 when some code point is outside the map (the caller decides). */
static int unmap_bytes(const int16_t u2b[324], const char *s, bytebuf *out, int *rc)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s), i = 0;
    *rc = bb_reserve(out, n + 1);
    if (*rc < 0) return 0;
    while (i < n) {
        int k;
        uint32_t cp = 0;
        if (u8_next(p + i, n - i, &k, &cp) != U8_OK || cp >= 324 || u2b[cp] < 0) return 1;
        out->p[out->n++] = (uint8_t)u2b[cp];
        i += (size_t)k;
    }
    return 0;
}

/* ---------------------------------------------------------------- maps */

static int32_t vocab_get(const qn_tok *t, const uint8_t *s, size_t n)
{
    uint32_t i = (uint32_t)hash_bytes(s, n) & t->vmask;
    for (;; i = (i + 1) & t->vmask) {
        const vocab_slot *v = &t->vmap[i];
        if (v->id == EMPTY32) return -1;
        if (v->len == n && !memcmp(t->arena.p + v->off, s, n)) return (int32_t)v->id;
    }
}

static void vocab_put(qn_tok *t, uint32_t off, uint32_t len, uint32_t id)
{
    uint32_t i = (uint32_t)hash_bytes(t->arena.p + off, len) & t->vmask;
    for (;; i = (i + 1) & t->vmask) {
        vocab_slot *v = &t->vmap[i];
        if (v->id == EMPTY32 || (v->len == len && !memcmp(t->arena.p + v->off, t->arena.p + off, len))) {
            *v = (vocab_slot){ off, len, id };
            return;
        }
    }
}

static inline const merge_slot *merge_get(const qn_tok *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = hash_pair(key) & t->mmask;
    for (;; i = (i + 1) & t->mmask) {
        const merge_slot *m = &t->mmap[i];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
    }
}

static void merge_put(qn_tok *t, int32_t a, int32_t b, uint32_t rank, uint32_t id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = hash_pair(key) & t->mmask;
    for (;; i = (i + 1) & t->mmask) {
        merge_slot *m = &t->mmap[i];
        if (m->key == key || m->key == UINT64_MAX) { /* a repeated pair: the later one wins, as in HF */
            *m = (merge_slot){ key, rank, id };
            return;
        }
    }
}

/* ---------------------------------------------------------------- loading */

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int json_id(const qn_tok *t, const cJSON *v, const char *what, const char *name)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= MAX_IDS ||
        v->valuedouble != (double)(int)v->valuedouble)
        return qn_fail(QN_E_FORMAT, "%s: %s '%s' has an id that is not an integer in [0, %d)", t->path, what,
                       name, MAX_IDS);
    return (int)v->valuedouble;
}

/* Largest id in model.vocab and added_tokens, and checks that both are well formed. */
static int count_ids(qn_tok *t, const cJSON *vocab, const cJSON *added)
{
    int max = -1, rc;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if ((rc = json_id(t, e, "model.vocab entry", e->string)) < 0) return rc;
        if (rc > max) max = rc;
    }
    cJSON_ArrayForEach(e, added) {
        const char *c = jstr(e, "content");
        if (!c) return qn_fail(QN_E_FORMAT, "%s: an added_tokens entry has no \"content\" string", t->path);
        if ((rc = json_id(t, cJSON_GetObjectItemCaseSensitive(e, "id"), "added token", c)) < 0) return rc;
        if (rc > max) max = rc;
    }
    if (max < 0) return qn_fail(QN_E_FORMAT, "%s: model.vocab is empty", t->path);
    t->n_vocab = max + 1;
    return 0;
}

static int load_vocab(qn_tok *t, const cJSON *vocab, const int16_t u2b[324])
{
    size_t n = (size_t)cJSON_GetArraySize(vocab);
    t->vmap = new_table(n, sizeof *t->vmap, &t->vmask);
    if (!t->vmap) return qn_fail(-ENOMEM, "%s: out of memory", t->path);
    const cJSON *e;
    int rc;
    cJSON_ArrayForEach(e, vocab) {
        int id = (int)e->valuedouble;
        uint32_t off = (uint32_t)t->arena.n;
        if (unmap_bytes(u2b, e->string, &t->arena, &rc))
            return qn_fail(QN_E_FORMAT, "%s: model.vocab entry '%s' (id %d) has a character outside the "
                           "byte-level alphabet (not a byte-level BPE vocabulary?)", t->path, e->string, id);
        if (rc < 0) return rc;
        t->off[id] = off, t->len[id] = (uint32_t)t->arena.n - off, t->flags[id] = TF_PRESENT;
        vocab_put(t, off, t->len[id], (uint32_t)id);
    }
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        if ((t->byte_id[b] = vocab_get(t, &c, 1)) < 0)
            return qn_fail(QN_E_UNSUPPORTED, "%s: model.vocab has no token for byte 0x%02x (byte-level BPE "
                           "needs all 256)", t->path, b);
    }
    return 0;
}

/* One merge: ["a", "b"] (current format) or "a b" (older format). */
static int merge_parts(const qn_tok *t, const cJSON *m, int i, char **a, char **b, char *tmp, size_t cap)
{
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
        cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring, *b = m->child->next->valuestring;
        return 0;
    }
    if (cJSON_IsString(m)) {
        const char *sp = strchr(m->valuestring, ' ');
        size_t n = strlen(m->valuestring);
        if (sp && !strchr(sp + 1, ' ') && n < cap) {
            memcpy(tmp, m->valuestring, n + 1);
            tmp[sp - m->valuestring] = 0;
            *a = tmp, *b = tmp + (sp - m->valuestring) + 1;
            return 0;
        }
    }
    return qn_fail(QN_E_FORMAT, "%s: model.merges[%d] is neither [\"a\", \"b\"] nor \"a b\"", t->path, i);
}

static int load_merges(qn_tok *t, const cJSON *merges, const int16_t u2b[324])
{
    size_t n = (size_t)cJSON_GetArraySize(merges);
    t->mmap = new_table(n, sizeof *t->mmap, &t->mmask);
    if (!t->mmap) return qn_fail(-ENOMEM, "%s: out of memory", t->path);
    bytebuf tmp = { 0 };
    char line[1024];
    int i = 0, rc = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        char *a = NULL, *b = NULL;
        int bad_a = 0, bad_b = 0;
        if ((rc = merge_parts(t, m, i, &a, &b, line, sizeof line)) < 0) break;
        tmp.n = 0;
        bad_a = unmap_bytes(u2b, a, &tmp, &rc);
        size_t na = tmp.n;
        if (!bad_a && rc >= 0) bad_b = unmap_bytes(u2b, b, &tmp, &rc);
        if (rc < 0) break;
        int32_t ia = -1, ib = -1, im = -1;
        if (!bad_a && !bad_b) {
            ia = vocab_get(t, tmp.p, na), ib = vocab_get(t, tmp.p + na, tmp.n - na), im = vocab_get(t, tmp.p, tmp.n);
        }
        if (ia < 0 || ib < 0 || im < 0) {
            rc = qn_fail(QN_E_FORMAT, "%s: model.merges[%d] ('%s' + '%s'): %s is not in model.vocab", t->path, i,
                         a, b, ia < 0 ? "the left part" : ib < 0 ? "the right part" : "the merged token");
            break;
        }
        merge_put(t, ia, ib, (uint32_t)i, (uint32_t)im);
        i++;
    }
    free(tmp.p);
    return rc;
}

static int cmp_added(const void *pa, const void *pb, void *ctx)
{
    const added_tok *a = pa, *b = pb;
    const uint8_t *text = ctx;
    if (text[a->off] != text[b->off]) return text[a->off] - text[b->off];
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void sort_added(qn_tok *t)
{
    /* insertion sort: there are a few dozen added tokens */
    for (int i = 1; i < t->n_added; i++) {
        added_tok x = t->added[i];
        int j = i - 1;
        while (j >= 0 && cmp_added(&t->added[j], &x, t->added_text.p) > 0) {
            t->added[j + 1] = t->added[j];
            j--;
        }
        t->added[j + 1] = x;
    }
    int k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < t->n_added && t->added_text.p[t->added[k].off] < b) k++;
        t->added_at[b] = (uint16_t)k;
    }
}

/* An added token decodes like HF's ByteLevel decoder does: through the byte map when every
 * character is in it, else as its UTF-8 text. */
static int load_added(qn_tok *t, const cJSON *added, const int16_t u2b[324])
{
    int n = cJSON_GetArraySize(added);
    if (n > 60000) return qn_fail(QN_E_UNSUPPORTED, "%s: %d added tokens (at most 60000)", t->path, n);
    if (n && !(t->added = calloc((size_t)n, sizeof *t->added))) return qn_fail(-ENOMEM, "%s: out of memory", t->path);
    const cJSON *e;
    int rc;
    cJSON_ArrayForEach(e, added) {
        const char *c = jstr(e, "content");
        int id = (int)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        size_t cl = strlen(c);
        if (!cl) return qn_fail(QN_E_FORMAT, "%s: added token id %d has empty content", t->path, id);
        if (qn_utf8_check(c, cl, NULL) < 0)
            return qn_fail(QN_E_FORMAT, "%s: added token id %d is not valid UTF-8", t->path, id);
        added_tok *a = &t->added[t->n_added++];
        a->id = (uint32_t)id, a->off = (uint32_t)t->added_text.n, a->len = (uint32_t)cl;
        if ((rc = bb_put(&t->added_text, c, cl)) < 0) return rc;
        uint32_t off = (uint32_t)t->arena.n;
        if (unmap_bytes(u2b, c, &t->arena, &rc)) {
            t->arena.n = off;
            if ((rc = bb_put(&t->arena, c, cl)) < 0) return rc;
        }
        if (rc < 0) return rc;
        t->off[id] = off, t->len[id] = (uint32_t)t->arena.n - off;
        t->flags[id] = TF_PRESENT | TF_ADDED | (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? TF_SPECIAL : 0);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "lstrip")) ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "rstrip")) ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "single_word")))
            QN_WARN("%s: added token '%s': lstrip/rstrip/single_word are ignored (matched literally)", t->path, c);
    }
    sort_added(t);
    return 0;
}

static int load_normalizer(qn_tok *t, const cJSON *norm)
{
    if (!norm || cJSON_IsNull(norm)) return 0;
    const char *type = jstr(norm, "type");
    if (type && !strcmp(type, "NFC")) {
        t->nfc = true;
        return 0;
    }
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(norm, "normalizers")) {
            int rc = load_normalizer(t, e);
            if (rc < 0) return rc;
        }
        return 0;
    }
    return qn_fail(QN_E_UNSUPPORTED, "%s: normalizer type '%s' is not supported (only NFC)", t->path,
                   type ? type : "?");
}

/* Finds the split regex: Split{Regex, Isolated} and/or ByteLevel{add_prefix_space false}. */
static int load_pretok(qn_tok *t, const cJSON *pt, const char **regex)
{
    if (!pt || cJSON_IsNull(pt)) return 0;
    const char *type = jstr(pt, "type");
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers")) {
            int rc = load_pretok(t, e, regex);
            if (rc < 0) return rc;
        }
        return 0;
    }
    if (type && !strcmp(type, "Split")) {
        const char *re = jstr(cJSON_GetObjectItemCaseSensitive(pt, "pattern"), "Regex");
        const char *beh = jstr(pt, "behavior");
        if (!re || (beh && strcmp(beh, "Isolated")) || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pt, "invert")))
            return qn_fail(QN_E_UNSUPPORTED, "%s: pre_tokenizer Split is supported only with a Regex pattern, "
                           "behavior Isolated, invert false", t->path);
        if (*regex) return qn_fail(QN_E_UNSUPPORTED, "%s: more than one Split pre-tokenizer", t->path);
        *regex = re;
        return 0;
    }
    if (type && !strcmp(type, "ByteLevel")) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pt, "add_prefix_space")))
            return qn_fail(QN_E_UNSUPPORTED, "%s: ByteLevel add_prefix_space = true is not supported", t->path);
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(pt, "use_regex");
        if ((!ur || cJSON_IsTrue(ur)) && !*regex) *regex = gpt2_regex;
        return 0;
    }
    return qn_fail(QN_E_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported", t->path, type ? type : "?");
}

static int compile_regex(qn_tok *t, const char *src)
{
    int err;
    PCRE2_SIZE at;
    if (!(t->regex = strdup(src))) return qn_fail(-ENOMEM, "%s: out of memory", t->path);
    t->re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return qn_fail(QN_E_UNSUPPORTED, "%s: pre-tokenizer regex does not compile at offset %zu: %s", t->path,
                       (size_t)at, (char *)msg);
    }
    const char *nojit = getenv("QNEXT_NO_JIT"); /* tests: exercise the interpreter path */
    t->jit = !(nojit && *nojit && strcmp(nojit, "0")) && pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
    t->mctx = pcre2_match_context_create(NULL);
    if (!t->md || !t->mctx) return qn_fail(-ENOMEM, "%s: out of memory", t->path);
    if (t->jit) {
        if (!(t->jstack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL)))
            return qn_fail(-ENOMEM, "%s: out of memory", t->path);
        pcre2_jit_stack_assign(t->mctx, NULL, t->jstack);
    }
    return 0;
}

static int check_model(qn_tok *t, const cJSON *model)
{
    const char *type = jstr(model, "type");
    if (type && strcmp(type, "BPE"))
        return qn_fail(QN_E_UNSUPPORTED, "%s: model.type is '%s'; only BPE is supported", t->path, type);
    const char *pre = jstr(model, "continuing_subword_prefix"), *suf = jstr(model, "end_of_word_suffix");
    if ((pre && *pre) || (suf && *suf))
        return qn_fail(QN_E_UNSUPPORTED, "%s: BPE with a subword prefix/suffix is not supported", t->path);
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(drop) && drop->valuedouble > 0)
        return qn_fail(QN_E_UNSUPPORTED, "%s: BPE dropout is not supported", t->path);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges")))
        return qn_fail(QN_E_UNSUPPORTED, "%s: BPE ignore_merges = true is not supported", t->path);
    return 0;
}

static int load_json(qn_tok *t, const cJSON *root)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    uint16_t b2u[256];
    int16_t u2b[324];
    const char *regex = NULL;
    int rc;
    if (!cJSON_IsObject(model)) return qn_fail(QN_E_FORMAT, "%s: no \"model\" object", t->path);
    if (!cJSON_IsObject(vocab)) return qn_fail(QN_E_FORMAT, "%s: model.vocab is missing or not an object", t->path);
    if (!cJSON_IsArray(merges)) return qn_fail(QN_E_FORMAT, "%s: model.merges is missing or not an array", t->path);
    if (added && !cJSON_IsArray(added)) return qn_fail(QN_E_FORMAT, "%s: added_tokens is not an array", t->path);
    if ((rc = check_model(t, model)) < 0 || (rc = count_ids(t, vocab, added)) < 0) return rc;
    t->off = calloc((size_t)t->n_vocab, sizeof *t->off);
    t->len = calloc((size_t)t->n_vocab, sizeof *t->len);
    t->flags = calloc((size_t)t->n_vocab, 1);
    if (!t->off || !t->len || !t->flags) return qn_fail(-ENOMEM, "%s: out of memory", t->path);
    byte_map(b2u, u2b);
    if ((rc = load_vocab(t, vocab, u2b)) < 0 || (rc = load_merges(t, merges, u2b)) < 0 ||
        (rc = load_added(t, added, u2b)) < 0)
        return rc;
    if ((rc = load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"))) < 0 ||
        (rc = load_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &regex)) < 0)
        return rc;
    if (!regex) {
        QN_WARN("%s: no pre-tokenizer regex in the file; using the Qwen2 pattern", t->path);
        regex = qwen2_regex;
    }
    return compile_regex(t, regex);
}

int qn_tok_load(qn_tok **out, const char *path)
{
    *out = NULL;
    struct stat st;
    char dirpath[4096];
    if (!stat(path, &st) && S_ISDIR(st.st_mode)) { /* a model folder */
        snprintf(dirpath, sizeof dirpath, "%s/tokenizer.json", path);
        path = dirpath;
    }
    qn_tok *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return qn_fail(-ENOMEM, "%s: out of memory", path);
    }
    char *buf = NULL;
    size_t n = 0;
    int rc = qn_read_file(path, (size_t)1 << 30, &buf, &n); /* tokenizer.json: ~10 MiB */
    if (rc < 0) {
        qn_tok_free(&t);
        return rc;
    }
    cJSON *root = cJSON_ParseWithLength(buf, n);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= buf && at <= buf + n ? (size_t)(at - buf) : n;
        rc = qn_fail(QN_E_FORMAT, "%s: not valid JSON (%s at byte %zu of %zu)", path,
                     n - off <= 16 ? "ends early, truncated?" : "syntax error", off, n);
    } else if (!cJSON_IsObject(root)) {
        rc = qn_fail(QN_E_FORMAT, "%s: top level is not a JSON object", path);
    } else {
        rc = load_json(t, root);
    }
    cJSON_Delete(root);
    free(buf);
    if (rc < 0) {
        qn_tok_free(&t);
        return rc;
    }
    *out = t;
    return 0;
}

void qn_tok_free(qn_tok **tp)
{
    qn_tok *t = tp ? *tp : NULL;
    if (!t) return;
    free(t->path), free(t->off), free(t->len), free(t->flags), free(t->arena.p);
    free(t->vmap), free(t->mmap), free(t->added), free(t->added_text.p), free(t->regex);
    if (t->md) pcre2_match_data_free(t->md);
    if (t->mctx) pcre2_match_context_free(t->mctx);
    if (t->jstack) pcre2_jit_stack_free(t->jstack);
    if (t->re) pcre2_code_free(t->re);
    free(t->cache), free(t->cache_keys.p), free(t->cache_vals.p);
    free(t->sym_id), free(t->sym_prev), free(t->sym_next), free(t->heap), free(t->norm.p);
    free(t);
    *tp = NULL;
}

/* ---------------------------------------------------------------- lookups */

int qn_tok_n_vocab(const qn_tok *t) { return t->n_vocab; }

const char *qn_tok_regex(const qn_tok *t, bool *jit)
{
    if (jit) *jit = t->jit;
    return t->regex;
}

static bool id_ok(const qn_tok *t, int32_t id) { return id >= 0 && id < t->n_vocab && (t->flags[id] & TF_PRESENT); }

const char *qn_tok_bytes(const qn_tok *t, int32_t id, size_t *len)
{
    if (!id_ok(t, id)) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->len[id];
    return (const char *)t->arena.p + t->off[id];
}

bool qn_tok_is_added(const qn_tok *t, int32_t id) { return id_ok(t, id) && (t->flags[id] & TF_ADDED); }
bool qn_tok_is_special(const qn_tok *t, int32_t id) { return id_ok(t, id) && (t->flags[id] & TF_SPECIAL); }

int32_t qn_tok_find(const qn_tok *t, const char *s)
{
    size_t n = strlen(s);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && !memcmp(t->added_text.p + t->added[i].off, s, n)) return (int32_t)t->added[i].id;
    return n ? vocab_get(t, (const uint8_t *)s, n) : -1;
}

/* ---------------------------------------------------------------- BPE */

static int bpe_reserve(qn_tok *t, size_t n)
{
    if (n <= t->sym_cap) return 0;
    size_t cap = t->sym_cap ? t->sym_cap : 64;
    while (cap < n) cap *= 2;
    int32_t *a = realloc(t->sym_id, cap * sizeof *a);
    if (a) t->sym_id = a;
    int32_t *b = realloc(t->sym_prev, cap * sizeof *b);
    if (b) t->sym_prev = b;
    int32_t *c = realloc(t->sym_next, cap * sizeof *c);
    if (c) t->sym_next = c;
    heap_ent *h = realloc(t->heap, 3 * cap * sizeof *h);
    if (h) t->heap = h;
    if (!a || !b || !c || !h) return qn_fail(-ENOMEM, "tokenizer: out of memory (piece of %zu bytes)", n);
    t->sym_cap = cap, t->heap_cap = 3 * cap;
    return 0;
}

static inline bool heap_less(const heap_ent *a, const heap_ent *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(heap_ent *h, size_t *n, heap_ent e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static heap_ent heap_pop(heap_ent *h, size_t *n)
{
    heap_ent top = h[0], last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

/* Queue the merge of symbol `pos` with its right neighbour, if there is one in the merge table. */
static void bpe_queue(qn_tok *t, size_t *nh, int32_t pos)
{
    int32_t nx = pos < 0 ? -1 : t->sym_next[pos];
    if (nx < 0) return;
    int32_t l = t->sym_id[pos], r = t->sym_id[nx];
    const merge_slot *m = merge_get(t, l, r);
    if (m && *nh < t->heap_cap) heap_push(t->heap, nh, (heap_ent){ m->rank, (uint32_t)pos, (int32_t)m->id, l, r });
}

/* Merge the bytes p[0..n) by rank (lowest first, leftmost among equals) and append the ids. The
 * heap holds candidate merges; a popped entry is skipped if its pair has changed since (a symbol
 * only ever grows, so "same two ids" means "same pair"). */
static int bpe(qn_tok *t, const uint8_t *p, size_t n, idbuf *out)
{
    int rc = bpe_reserve(t, n);
    if (rc < 0) return rc;
    int32_t *id = t->sym_id, *prev = t->sym_prev, *next = t->sym_next;
    for (size_t i = 0; i < n; i++) {
        id[i] = t->byte_id[p[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < n; i++) bpe_queue(t, &nh, (int32_t)i);
    while (nh) {
        heap_ent e = heap_pop(t->heap, &nh);
        int32_t pos = (int32_t)e.pos, nx = next[pos];
        if (id[pos] != e.left || nx < 0 || id[nx] != e.right) continue;
        id[pos] = e.id;
        id[nx] = -1;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = pos;
        if (prev[pos] >= 0) bpe_queue(t, &nh, prev[pos]);
        bpe_queue(t, &nh, pos);
    }
    for (int32_t i = 0; i >= 0; i = next[i])
        if ((rc = ib_put(out, id[i])) < 0) return rc;
    return 0;
}

/* ---------------------------------------------------------------- piece cache */

static void cache_clear(qn_tok *t)
{
    if (t->cache) memset(t->cache, 0, CACHE_SLOTS * sizeof *t->cache);
    t->cache_n = 0, t->cache_keys.n = 0, t->cache_vals.n = 0;
}

static int encode_piece(qn_tok *t, const uint8_t *p, size_t n, idbuf *out)
{
    if (n == 1) return ib_put(out, t->byte_id[p[0]]);
    if (n > CACHE_MAX_PIECE) return bpe(t, p, n, out);
    if (!t->cache && !(t->cache = calloc(CACHE_SLOTS, sizeof *t->cache)))
        return qn_fail(-ENOMEM, "tokenizer: out of memory (cache)");
    uint64_t h = hash_bytes(p, n);
    uint32_t i = (uint32_t)h & (CACHE_SLOTS - 1);
    for (;; i = (i + 1) & (CACHE_SLOTS - 1)) {
        cache_slot *c = &t->cache[i];
        if (!c->hash) break;
        if (c->hash == h && c->key_len == n && !memcmp(t->cache_keys.p + c->key_off, p, n)) {
            for (uint32_t k = 0; k < c->val_n; k++) {
                int rc = ib_put(out, t->cache_vals.p[c->val_off + k]);
                if (rc < 0) return rc;
            }
            return 0;
        }
    }
    size_t first = out->n;
    int rc = bpe(t, p, n, out);
    if (rc < 0) return rc;
    if (t->cache_n >= CACHE_SLOTS / 2) cache_clear(t); /* the slot found above stays empty */
    uint32_t koff = (uint32_t)t->cache_keys.n, voff = (uint32_t)t->cache_vals.n;
    if ((rc = bb_put(&t->cache_keys, p, n)) < 0) return rc;
    for (size_t k = first; k < out->n; k++)
        if ((rc = ib_put(&t->cache_vals, out->p[k])) < 0) return rc;
    if (t->cache_n == 0) { /* cleared: find the slot again */
        i = (uint32_t)h & (CACHE_SLOTS - 1);
        while (t->cache[i].hash) i = (i + 1) & (CACHE_SLOTS - 1);
    }
    t->cache[i] = (cache_slot){ h, koff, (uint32_t)n, voff, (uint32_t)(out->n - first) };
    t->cache_n++;
    return 0;
}

/* ---------------------------------------------------------------- encoding */

/* Code points that are NFC-stable and never combine with a neighbour (NFC_QC = Yes, ccc = 0): a
 * segment made only of these is already NFC and skips utf8proc. Conservative: anything else goes
 * through utf8proc. */
static bool nfc_inert(uint32_t c)
{
    static const uint32_t r[][2] = {
        { 0x0000, 0x02FF }, { 0x0388, 0x03CE }, { 0x0400, 0x0482 }, { 0x048A, 0x052F }, { 0x0620, 0x064A },
        { 0x200B, 0x2027 }, { 0x2700, 0x27BF }, { 0x3000, 0x3029 }, { 0x3041, 0x3096 }, { 0x30A0, 0x30FF },
        { 0x3400, 0x4DBF }, { 0x4E00, 0x9FFF }, { 0xAC00, 0xD7A3 }, { 0xFE00, 0xFE0F }, { 0xFF01, 0xFF5E },
        { 0x1F000, 0x1FAFF },
    }; /* checked with Python's unicodedata: NFC-stable, combining class 0, never a composition's 2nd part */
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (c <= r[i][1]) return c >= r[i][0];
    return false;
}

/* Start of the first code point at or after `i` that is not NFC-inert, or n. Sets *k to its length. */
static size_t next_active(const uint8_t *s, size_t n, size_t i, size_t *last_inert, int *k)
{
    while (i < n) {
        if (s[i] < 0xCC) { /* every code point below U+0300: 1 byte, or 2 with lead 0xC2..0xCB */
            *last_inert = i;
            i += s[i] < 0x80 ? 1 : 2;
            continue;
        }
        uint32_t cp;
        u8_next(s + i, n - i, k, &cp);
        if (!nfc_inert(cp)) return i;
        *last_inert = i;
        i += (size_t)*k;
    }
    return n;
}

/* NFC of s[0..n) into dst. Only the stretches around non-inert code points go through utf8proc:
 * from the inert character just before one (it may compose with what follows) to the next inert
 * character (a boundary nothing composes or reorders across). */
static int nfc_spans(const uint8_t *s, size_t n, size_t first, size_t last_inert, int k, bytebuf *dst)
{
    size_t done = 0, i = first;
    int rc;
    dst->n = 0;
    while (i < n) {
        size_t a = last_inert < i ? last_inert : i, j = i + (size_t)k;
        size_t end = next_active(s, n, j, &last_inert, &k);
        while (end < n && end == j) { /* extend over consecutive non-inert code points */
            j = end + (size_t)k;
            end = next_active(s, n, j, &last_inert, &k);
        }
        /* [a, j) holds the active run; the next inert character starts at j */
        utf8proc_uint8_t *norm = NULL;
        utf8proc_ssize_t nn = utf8proc_map(s + a, (utf8proc_ssize_t)(j - a), &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (nn < 0) return qn_fail(-EINVAL, "tokenizer: NFC normalisation failed: %s", utf8proc_errmsg(nn));
        rc = bb_put(dst, s + done, a - done);
        if (rc >= 0) rc = bb_put(dst, norm, (size_t)nn);
        free(norm);
        if (rc < 0) return rc;
        done = j, i = end;
    }
    return bb_put(dst, s + done, n - done);
}

static int split_segment(qn_tok *t, const uint8_t *s, size_t n, idbuf *out)
{
    size_t at = 0;
    int rc;
    while (at < n) {
        int m = t->jit ? pcre2_jit_match(t->re, s, n, at, PCRE2_NO_UTF_CHECK, t->md, t->mctx)
                       : pcre2_match(t->re, s, n, at, PCRE2_NO_UTF_CHECK, t->md, t->mctx);
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            return qn_fail(-EINVAL, "tokenizer: pre-tokenizer regex failed near byte %zu: %s", at, (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        size_t b = ov[0], e = ov[1];
        if (b > at && (rc = encode_piece(t, s + at, b - at, out)) < 0) return rc; /* unmatched gap */
        if (e == b) { /* empty match: step over one character */
            int k;
            if (e >= n) break;
            u8_next(s + e, n - e, &k, NULL);
            e += (size_t)k;
            if ((rc = encode_piece(t, s + b, e - b, out)) < 0) return rc;
        } else if ((rc = encode_piece(t, s + b, e - b, out)) < 0) {
            return rc;
        }
        at = e;
    }
    return at < n ? encode_piece(t, s + at, n - at, out) : 0;
}

static int encode_segment(qn_tok *t, const uint8_t *s, size_t n, idbuf *out)
{
    size_t last_inert = 0;
    int k;
    size_t first = t->nfc ? next_active(s, n, 0, &last_inert, &k) : n;
    if (first == n) return split_segment(t, s, n, out);
    int rc = nfc_spans(s, n, first, last_inert, k, &t->norm);
    return rc < 0 ? rc : split_segment(t, t->norm.p, t->norm.n, out);
}

/* Leftmost-longest added token in s[from..n): its start, or n when there is none. */
static size_t find_added(const qn_tok *t, const uint8_t *s, size_t n, size_t from, const added_tok **hit)
{
    for (size_t i = from; i < n; i++) {
        int lo = t->added_at[s[i]], hi = t->added_at[s[i] + 1];
        for (int k = lo; k < hi; k++) {
            const added_tok *a = &t->added[k];
            if (a->len <= n - i && !memcmp(s + i, t->added_text.p + a->off, a->len)) {
                *hit = a;
                return i;
            }
        }
    }
    return n;
}

int qn_tok_encode_flags(qn_tok *t, const char *text, size_t len, unsigned flags, int32_t **ids, int *n)
{
    *ids = NULL, *n = 0;
    if (!text && len) return qn_fail(-EINVAL, "tokenizer: NULL text");
    size_t bad;
    if (qn_utf8_check(text, len, &bad) < 0)
        return qn_fail(-EINVAL, "text is not valid UTF-8: byte 0x%02x at offset %zu", (uint8_t)text[bad], bad);
    const uint8_t *s = (const uint8_t *)text;
    idbuf out = { 0 };
    size_t at = 0;
    int rc = 0;
    while (at < len && rc >= 0) {
        const added_tok *hit = NULL;
        size_t b = (flags & QN_TOK_NO_SPECIAL) || !t->n_added ? len : find_added(t, s, len, at, &hit);
        rc = encode_segment(t, s + at, b - at, &out);
        if (rc >= 0 && hit) rc = ib_put(&out, (int32_t)hit->id);
        at = hit ? b + hit->len : len;
    }
    if (rc >= 0 && out.n > INT32_MAX) rc = qn_fail(-ERANGE, "tokenizer: more than 2^31 tokens");
    if (rc < 0) {
        free(out.p);
        return rc;
    }
    *ids = out.p, *n = (int)out.n;
    return 0;
}

int qn_tok_encode(qn_tok *t, const char *text, size_t len, int32_t **ids, int *n)
{
    return qn_tok_encode_flags(t, text, len, 0, ids, n);
}

/* ---------------------------------------------------------------- decoding */

static bool decode_keep(const qn_tok *t, int32_t id, bool skip_special)
{
    return id_ok(t, id) && !(skip_special && (t->flags[id] & TF_SPECIAL));
}

int qn_tok_decode(const qn_tok *t, const int32_t *ids, int n, bool skip_special, char **text, size_t *len)
{
    bytebuf raw = { 0 }, out = { 0 };
    size_t used;
    int rc = 0;
    *text = NULL;
    for (int i = 0; i < n && rc >= 0; i++)
        if (decode_keep(t, ids[i], skip_special)) rc = bb_put(&raw, t->arena.p + t->off[ids[i]], t->len[ids[i]]);
    if (rc >= 0) rc = u8_lossy(&out, raw.p ? raw.p : (const uint8_t *)"", raw.n, true, &used);
    if (rc >= 0) rc = bb_reserve(&out, 1);
    free(raw.p);
    if (rc < 0) {
        free(out.p);
        return rc;
    }
    out.p[out.n] = 0;
    *text = (char *)out.p;
    if (len) *len = out.n;
    return 0;
}

struct qn_tok_stream {
    const qn_tok *tok;
    bool skip_special;
    uint8_t held[4];
    int n_held;
    bytebuf in, out;
};

int qn_tok_stream_create(qn_tok_stream **out, const qn_tok *tok, bool skip_special)
{
    if (!(*out = calloc(1, sizeof **out))) return qn_fail(-ENOMEM, "tokenizer: out of memory");
    (*out)->tok = tok, (*out)->skip_special = skip_special;
    return 0;
}

void qn_tok_stream_free(qn_tok_stream **s)
{
    if (!s || !*s) return;
    free((*s)->in.p), free((*s)->out.p), free(*s);
    *s = NULL;
}

/* held bytes + new bytes -> complete UTF-8 out; a truncated tail (at most 3 bytes) is held again. */
static int stream_run(qn_tok_stream *s, const uint8_t *p, size_t n, bool final, const char **text, size_t *len)
{
    size_t used;
    s->in.n = 0, s->out.n = 0;
    int rc = bb_put(&s->in, s->held, (size_t)s->n_held);
    if (rc >= 0) rc = bb_put(&s->in, p, n);
    if (rc >= 0) rc = u8_lossy(&s->out, s->in.p, s->in.n, final, &used);
    if (rc >= 0) rc = bb_reserve(&s->out, 1);
    if (rc < 0) return rc;
    s->n_held = (int)(s->in.n - used);
    memcpy(s->held, s->in.p + used, (size_t)s->n_held);
    s->out.p[s->out.n] = 0;
    *text = (const char *)s->out.p;
    *len = s->out.n;
    return 0;
}

int qn_tok_stream_push(qn_tok_stream *s, int32_t id, const char **text, size_t *len)
{
    const qn_tok *t = s->tok;
    if (!decode_keep(t, id, s->skip_special)) return stream_run(s, NULL, 0, false, text, len);
    return stream_run(s, t->arena.p + t->off[id], t->len[id], false, text, len);
}

int qn_tok_stream_flush(qn_tok_stream *s, const char **text, size_t *len)
{
    return stream_run(s, NULL, 0, true, text, len);
}
