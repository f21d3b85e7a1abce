/* chat.c — renders chat messages in the Qwen3-Next-Instruct ChatML format (see chat.h), and the small
 * JSON re-serialiser the template's `tojson` needs (Python json.dumps style). */
#include "chat.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

#define MAX_DEPTH 200

typedef struct { char *p; size_t n, cap; int err; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->err) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->err = qn_fail(-ENOMEM, "chat: out of memory");
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s ? s : "", s ? strlen(s) : 0); }

/* ---------------------------------------------------------------- JSON, Python style */

typedef struct {
    const char *s;
    size_t i, n;
    sbuf *out;
    const char *what;  /* for messages: "tool 2", "tool call 'f' arguments" */
} jparse;

static int jerr(jparse *p, const char *why)
{
    return qn_fail(-EINVAL, "%s: not valid JSON: %s at byte %zu", p->what, why, p->i);
}

static void jws(jparse *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int hex4(const char *s, uint32_t *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v * 16 + (uint32_t)d;
    }
    return 0;
}

static void put_utf8(sbuf *b, uint32_t c)
{
    char u[4];
    size_t n;
    if (c < 0x80) u[0] = (char)c, n = 1;
    else if (c < 0x800) u[0] = (char)(0xC0 | c >> 6), u[1] = (char)(0x80 | (c & 0x3F)), n = 2;
    else if (c < 0x10000)
        u[0] = (char)(0xE0 | c >> 12), u[1] = (char)(0x80 | ((c >> 6) & 0x3F)), u[2] = (char)(0x80 | (c & 0x3F)), n = 3;
    else
        u[0] = (char)(0xF0 | c >> 18), u[1] = (char)(0x80 | ((c >> 12) & 0x3F)), u[2] = (char)(0x80 | ((c >> 6) & 0x3F)),
        u[3] = (char)(0x80 | (c & 0x3F)), n = 4;
    sb_put(b, u, n);
}

/* One escaped or plain code point of a JSON string, written the way json.dumps writes it. */
static void put_py_char(sbuf *b, uint32_t c)
{
    char esc[8];
    switch (c) {
    case '"': sb_str(b, "\\\""); return;
    case '\\': sb_str(b, "\\\\"); return;
    case '\n': sb_str(b, "\\n"); return;
    case '\r': sb_str(b, "\\r"); return;
    case '\t': sb_str(b, "\\t"); return;
    case '\b': sb_str(b, "\\b"); return;
    case '\f': sb_str(b, "\\f"); return;
    default: break;
    }
    if (c < 0x20) {
        snprintf(esc, sizeof esc, "\\u%04x", c);
        sb_str(b, esc);
    } else {
        put_utf8(b, c);
    }
}

static int j_escape(jparse *p, uint32_t *c)
{
    char e = p->s[p->i++];
    switch (e) {
    case '"': case '\\': case '/': *c = (uint32_t)e; return 0;
    case 'b': *c = '\b'; return 0;
    case 'f': *c = '\f'; return 0;
    case 'n': *c = '\n'; return 0;
    case 'r': *c = '\r'; return 0;
    case 't': *c = '\t'; return 0;
    case 'u': break;
    default: p->i--; return jerr(p, "bad escape");
    }
    if (p->i + 4 > p->n || hex4(p->s + p->i, c)) return jerr(p, "bad \\u escape");
    p->i += 4;
    if (*c >= 0xDC00 && *c <= 0xDFFF) return jerr(p, "lone low surrogate");
    if (*c >= 0xD800 && *c <= 0xDBFF) {
        uint32_t lo;
        if (p->i + 6 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' || hex4(p->s + p->i + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF)
            return jerr(p, "lone high surrogate");
        p->i += 6;
        *c = 0x10000 + ((*c - 0xD800) << 10) + (lo - 0xDC00);
    }
    return 0;
}

static int j_string(jparse *p)
{
    p->i++; /* opening quote */
    sb_put(p->out, "\"", 1);
    while (p->i < p->n) {
        unsigned char ch = (unsigned char)p->s[p->i];
        uint32_t c = 0;
        if (ch == '"') {
            p->i++;
            sb_put(p->out, "\"", 1);
            return 0;
        }
        if (ch < 0x20) return jerr(p, "control character in a string");
        if (ch == '\\') {
            p->i++;
            int rc = j_escape(p, &c);
            if (rc < 0) return rc;
            put_py_char(p->out, c);
            continue;
        }
        size_t k = 1; /* copy one whole UTF-8 character (validated beforehand) */
        while (p->i + k < p->n && ((unsigned char)p->s[p->i + k] & 0xC0) == 0x80) k++;
        sb_put(p->out, p->s + p->i, k);
        p->i += k;
    }
    return jerr(p, "unterminated string");
}

/* Python's repr() of a float: shortest digits that round-trip, fixed notation for exponents
 * -4..15, else d.ddde+XX. */
static void py_float(sbuf *b, double v)
{
    char buf[64], digits[24], out[64];
    if (isinf(v)) {
        sb_str(b, v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    if (v == 0) {
        sb_str(b, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v) break;
    }
    const char *s = buf + (buf[0] == '-');
    int nd = 0, e = atoi(strchr(s, 'e') + 1);
    for (const char *q = s; *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    digits[nd] = 0;
    char *o = out;
    if (buf[0] == '-') *o++ = '-';
    if (e >= -4 && e < 16) {
        if (e < 0) {
            o += sprintf(o, "0.");
            for (int k = 0; k < -e - 1; k++) *o++ = '0';
            o += sprintf(o, "%s", digits);
        } else {
            for (int k = 0; k <= e; k++) *o++ = k < nd ? digits[k] : '0';
            *o++ = '.';
            if (nd > e + 1) o += sprintf(o, "%s", digits + e + 1);
            else *o++ = '0';
        }
        *o = 0;
    } else {
        *o++ = digits[0];
        if (nd > 1) o += sprintf(o, ".%s", digits + 1);
        sprintf(o, "e%+03d", e);
    }
    sb_str(b, out);
}

static int j_number(jparse *p)
{
    size_t a = p->i;
    bool is_float = false;
    if (p->s[p->i] == '-') p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return jerr(p, "bad number");
    if (p->s[p->i] == '0') p->i++;
    else while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        is_float = true;
        if (++p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return jerr(p, "bad fraction");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        is_float = true;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return jerr(p, "bad exponent");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (!is_float) { /* Python int: digits as written, but -0 is 0 */
        bool neg_zero = p->i - a == 2 && p->s[a] == '-' && p->s[a + 1] == '0';
        sb_put(p->out, p->s + a + neg_zero, p->i - a - neg_zero);
        return 0;
    }
    char tmp[512];
    size_t len = p->i - a < sizeof tmp - 1 ? p->i - a : sizeof tmp - 1;
    memcpy(tmp, p->s + a, len);
    tmp[len] = 0;
    py_float(p->out, strtod(tmp, NULL));
    return 0;
}

static int j_value(jparse *p, int depth);

/* object or array: elements separated by ", ", key and value by ": ". */
static int j_container(jparse *p, int depth)
{
    char open = p->s[p->i], close = open == '{' ? '}' : ']';
    if (depth > MAX_DEPTH) return jerr(p, "nested too deeply");
    p->i++;
    sb_put(p->out, &open, 1);
    jws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        sb_put(p->out, &close, 1);
        return 0;
    }
    for (;;) {
        int rc;
        jws(p);
        if (open == '{') {
            if (p->i >= p->n || p->s[p->i] != '"') return jerr(p, "expected a key");
            if ((rc = j_string(p)) < 0) return rc;
            jws(p);
            if (p->i >= p->n || p->s[p->i] != ':') return jerr(p, "expected ':'");
            p->i++;
            sb_put(p->out, ": ", 2);
            jws(p);
        }
        if ((rc = j_value(p, depth + 1)) < 0) return rc;
        jws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            sb_put(p->out, ", ", 2);
            continue;
        }
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            sb_put(p->out, &close, 1);
            return 0;
        }
        return jerr(p, open == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int j_value(jparse *p, int depth)
{
    static const char *lits[] = { "true", "false", "null" };
    if (p->i >= p->n) return jerr(p, "unexpected end");
    char c = p->s[p->i];
    if (c == '{' || c == '[') return j_container(p, depth);
    if (c == '"') return j_string(p);
    if (c == '-' || (c >= '0' && c <= '9')) return j_number(p);
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if (p->n - p->i >= l && !memcmp(p->s + p->i, lits[k], l)) {
            sb_put(p->out, lits[k], l);
            p->i += l;
            return 0;
        }
    }
    return jerr(p, "unexpected character");
}

/* Append json.dumps(json.loads(json)) to out. */
static int py_dump(sbuf *out, const char *json, const char *what)
{
    size_t n = strlen(json), bad;
    if (qn_utf8_check(json, n, &bad) < 0)
        return qn_fail(-EINVAL, "%s: not valid UTF-8 at byte offset %zu", what, bad);
    jparse p = { json, 0, n, out, what };
    jws(&p);
    int rc = j_value(&p, 0);
    if (rc < 0) return rc;
    jws(&p);
    if (p.i != n) return jerr(&p, "extra text after the value");
    return out->err;
}

int qn_chat_json_dump(const char *json, char **out)
{
    sbuf b = { 0 };
    *out = NULL;
    int rc = py_dump(&b, json, "json");
    if (rc >= 0 && !b.p) sb_put(&b, "", 0);
    if (rc < 0 || b.err) {
        free(b.p);
        return rc < 0 ? rc : b.err;
    }
    *out = b.p;
    return 0;
}

/* ---------------------------------------------------------------- the template */

qn_chat_opts qn_chat_default_opts(void) { return (qn_chat_opts){ .add_generation_prompt = true }; }

static const char *role_names[] = { "system", "user", "assistant", "tool" };

int qn_chat_role_parse(const char *s, enum qn_chat_role *role)
{
    for (int r = 0; r < 4; r++)
        if (s && !strcmp(s, role_names[r])) {
            *role = (enum qn_chat_role)r;
            return 0;
        }
    return qn_fail(-EINVAL, "chat: role '%s' is not one of system, user, assistant, tool", s ? s : "(null)");
}

const char *qn_chat_role_name(enum qn_chat_role role)
{
    return (unsigned)role < 4 ? role_names[role] : "?";
}

static int render_tools(sbuf *b, const qn_chat_msg *msgs, int n, const qn_chat_opts *o)
{
    char what[64];
    sb_str(b, "<|im_start|>system\n");
    if (n > 0 && msgs[0].role == QN_CHAT_SYSTEM) {
        sb_str(b, msgs[0].content);
        sb_str(b, "\n\n");
    }
    sb_str(b, "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
              "You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
    for (int t = 0; t < o->n_tools; t++) {
        snprintf(what, sizeof what, "chat: tool %d", t);
        sb_str(b, "\n");
        int rc = py_dump(b, o->tools[t] ? o->tools[t] : "null", what);
        if (rc < 0) return rc;
    }
    sb_str(b, "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
              "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
              "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n");
    return 0;
}

static int render_assistant(sbuf *b, const qn_chat_msg *m, int index)
{
    const char *content = m->content ? m->content : "";
    char what[160];
    sb_str(b, "<|im_start|>assistant\n");
    sb_str(b, content);
    for (int k = 0; k < m->n_tool_calls; k++) {
        const qn_chat_tool_call *tc = &m->tool_calls[k];
        if (k > 0 || *content) sb_str(b, "\n");
        sb_str(b, "<tool_call>\n{\"name\": \"");
        sb_str(b, tc->name);
        sb_str(b, "\", \"arguments\": ");
        const char *args = tc->arguments ? tc->arguments : "{}";
        if (tc->arguments_verbatim) {
            sb_str(b, args);
        } else {
            snprintf(what, sizeof what, "chat: message %d tool call '%.60s' arguments", index, tc->name ? tc->name : "");
            int rc = py_dump(b, args, what);
            if (rc < 0) return rc;
        }
        sb_str(b, "}\n</tool_call>");
    }
    sb_str(b, "<|im_end|>\n");
    return 0;
}

static int render_messages(sbuf *b, const qn_chat_msg *msgs, int n)
{
    for (int i = 0; i < n; i++) {
        const qn_chat_msg *m = &msgs[i];
        int rc = 0;
        if (m->role == QN_CHAT_SYSTEM && i == 0) continue; /* rendered in the header */
        switch (m->role) {
        case QN_CHAT_SYSTEM: /* a later system message is a turn of its own */
        case QN_CHAT_USER:
            sb_str(b, "<|im_start|>");
            sb_str(b, role_names[m->role]);
            sb_str(b, "\n");
            sb_str(b, m->content);
            sb_str(b, "<|im_end|>\n");
            break;
        case QN_CHAT_ASSISTANT: rc = render_assistant(b, m, i); break;
        case QN_CHAT_TOOL:
            if (i == 0 || msgs[i - 1].role != QN_CHAT_TOOL) sb_str(b, "<|im_start|>user");
            sb_str(b, "\n<tool_response>\n");
            sb_str(b, m->content);
            sb_str(b, "\n</tool_response>");
            if (i == n - 1 || msgs[i + 1].role != QN_CHAT_TOOL) sb_str(b, "<|im_end|>\n");
            break;
        default: return qn_fail(-EINVAL, "chat: message %d has an unknown role %d", i, (int)m->role);
        }
        if (rc < 0) return rc;
    }
    return 0;
}

static int check_text(const qn_chat_msg *msgs, int n)
{
    size_t bad;
    for (int i = 0; i < n; i++) {
        const char *c = msgs[i].content;
        if (c && qn_utf8_check(c, strlen(c), &bad) < 0)
            return qn_fail(-EINVAL, "chat: message %d content is not valid UTF-8 at byte offset %zu", i, bad);
        for (int k = 0; k < msgs[i].n_tool_calls; k++) {
            const char *name = msgs[i].tool_calls[k].name;
            if (!name || !*name) return qn_fail(-EINVAL, "chat: message %d tool call %d has no name", i, k);
            if (qn_utf8_check(name, strlen(name), &bad) < 0)
                return qn_fail(-EINVAL, "chat: message %d tool call %d name is not valid UTF-8", i, k);
        }
        if (msgs[i].n_tool_calls && msgs[i].role != QN_CHAT_ASSISTANT)
            return qn_fail(-EINVAL, "chat: message %d has tool calls but is not an assistant turn", i);
    }
    return 0;
}

int qn_chat_render(const qn_chat_msg *msgs, int n, const qn_chat_opts *opts, char **out)
{
    qn_chat_opts def = qn_chat_default_opts();
    const qn_chat_opts *o = opts ? opts : &def;
    sbuf b = { 0 };
    *out = NULL;
    if (n < 0 || (n > 0 && !msgs)) return qn_fail(-EINVAL, "chat: bad message list (%d messages)", n);
    int rc = check_text(msgs, n);
    if (rc < 0) return rc;
    if (o->n_tools > 0) rc = render_tools(&b, msgs, n, o);
    else if (n > 0 && msgs[0].role == QN_CHAT_SYSTEM) {
        sb_str(&b, "<|im_start|>system\n");
        sb_str(&b, msgs[0].content);
        sb_str(&b, "<|im_end|>\n");
    }
    if (rc >= 0) rc = render_messages(&b, msgs, n);
    if (rc >= 0 && o->add_generation_prompt) sb_str(&b, "<|im_start|>assistant\n");
    if (rc >= 0) sb_put(&b, "", 0);
    if (rc >= 0) rc = b.err;
    if (rc < 0) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    return 0;
}

int qn_chat_stop_ids(const qn_tok *tok, int32_t ids[2])
{
    int n = 0;
    static const char *stops[] = { "<|im_end|>", "<|endoftext|>" };
    for (int k = 0; k < 2; k++) {
        int32_t id = qn_tok_find(tok, stops[k]);
        if (id >= 0) ids[n++] = id;
    }
    return n;
}
