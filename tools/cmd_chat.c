/* cmd_chat.c — `qnext chat`: an interactive conversation. Each turn appends the user's message and the
 * model's answer to the history; the session (KV cache, Gated DeltaNet states) carries over, so a turn
 * feeds only its new tokens: the conversation is re-rendered with the chat template, and what follows the
 * text the session has already seen is encoded and prefilled (generate_loop.h keeps that text exact).
 *
 * Input: one line per message; a line ending in '\' continues on the next line, and a line starting with
 * """ opens a block that ends at a line ending with """. Commands: /reset, /exit (/quit), /help. Ctrl-C
 * during an answer stops it (the partial answer stays in the history, closed like a full one); Ctrl-C at
 * an empty prompt, or Ctrl-D, quits. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "gen_cli.h"
#include "qn_err.h"

int qn_cmd_chat(int argc, char **argv);

static const char help[] =
    "usage: qnext chat -m DIR [options]\n\n"
    "An interactive conversation with the model, read from standard input one message at a time.\n"
    "Each turn reuses the session: only the new tokens are run, not the whole conversation again.\n\n"
    "  A line ending with \\ continues on the next line; \"\"\" on a line of its own starts and ends a block.\n"
    "  /reset     forget the conversation (and the session)\n"
    "  /exit      quit (also /quit, Ctrl-D, or Ctrl-C at an empty prompt)\n"
    "  Ctrl-C     stop the current answer; what was written stays in the conversation\n\n"
    QN_GEN_HELP
    QN_CLI_COMMON_HELP
    "      (--stats prints the numbers of every turn: new tokens prefilled, speeds, context used)\n"
    "  -h, --help             this text\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct convo {
    qn_chat_msg *msgs;  /* contents malloc'd */
    int n, cap;
    char *seen;         /* the rendered text the session holds (plus a pending token's text) */
    size_t seen_len;
    int turns;          /* answers since the last reset (seeds the sampler) */
};

static int convo_push(struct convo *c, enum qn_chat_role role, char *content)
{
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        qn_chat_msg *m = realloc(c->msgs, sizeof *m * (size_t)cap);
        if (!m) {
            free(content);
            return qn_fail(-ENOMEM, "out of memory");
        }
        c->msgs = m, c->cap = cap;
    }
    c->msgs[c->n++] = (qn_chat_msg){ role, content, NULL, 0 };
    return 0;
}

static void convo_pop(struct convo *c) { free((char *)c->msgs[--c->n].content); }

/* Back to the system turn only, and an empty session. */
static void convo_reset(struct convo *c, qn_gen *g, const char *system)
{
    while (c->n > (system ? 1 : 0)) convo_pop(c);
    free(c->seen);
    c->seen = NULL, c->seen_len = 0, c->turns = 0;
    qn_gen_reset(g);
}

static void convo_free(struct convo *c)
{
    while (c->n) convo_pop(c);
    free(c->msgs);
    free(c->seen);
}

/* ---- input ---- */

enum { IN_TEXT, IN_EOF, IN_CLEARED };

/* Lines from standard input, read with read(2) so that Ctrl-C cannot slip between the check of the flag
 * and the wait: SIGINT stays blocked except inside ppoll(). */
struct line_in {
    char *buf;
    size_t start, len, cap;  /* unread bytes: buf[start .. len) */
};

static void prompt(const char *p)
{
    if (isatty(STDIN_FILENO)) {
        fputs(p, stdout);
        fflush(stdout);
    }
}

/* Wait until standard input is readable: 0, or -1 after Ctrl-C (now or before the call). */
static int wait_input(void)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    int r = -1;
    if (!interrupted) {
        struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
        sigset_t during = old;
        sigdelset(&during, SIGINT);
        r = ppoll(&p, 1, NULL, &during) < 0 ? -1 : 0;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return r < 0 && (interrupted || errno == EINTR) ? -1 : 0;
}

/* Next line without its newline (valid until the next call); -1 at EOF, -2 at Ctrl-C (pending input dropped). */
static ssize_t read_line(struct line_in *in, char **line)
{
    for (;;) {
        char *nl = in->len > in->start ? memchr(in->buf + in->start, '\n', in->len - in->start) : NULL;
        if (nl) {
            char *s = in->buf + in->start;
            ssize_t n = nl - s;
            *nl = 0;
            in->start += (size_t)n + 1;
            if (n > 0 && s[n - 1] == '\r') s[--n] = 0;
            *line = s;
            return n;
        }
        if (in->start) {
            memmove(in->buf, in->buf + in->start, in->len - in->start);
            in->len -= in->start, in->start = 0;
        }
        if (in->cap - in->len < 4096) {
            char *b = realloc(in->buf, in->cap = in->cap * 2 + 4096);
            if (!b) return -1;
            in->buf = b;
        }
        ssize_t got = wait_input() < 0 ? -1 : read(STDIN_FILENO, in->buf + in->len, in->cap - in->len - 1);
        if (got < 0 && (interrupted || errno == EINTR)) {
            in->start = in->len = 0;
            return -2;
        }
        if (got <= 0) { /* EOF (or a read error): a last line without a newline still counts */
            if (!in->len) return -1;
            in->buf[in->len++] = '\n';
            continue;
        }
        in->len += (size_t)got;
    }
}

static int append(char **buf, size_t *len, const char *s, size_t n)
{
    char *b = realloc(*buf, *len + n + 2);
    if (!b) return -1;
    memcpy(b + *len, s, n);
    *len += n;
    b[*len] = 0;
    *buf = b;
    return 0;
}

static bool ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && !memcmp(s + n - k, suf, k);
}

/* Add one piece of a message (joined to the previous one with '\n'). */
static int add_piece(char **msg, size_t *len, const char *s, size_t n)
{
    return (*msg && append(msg, len, "\n", 1)) || append(msg, len, s, n) ? -ENOMEM : 0;
}

/* Read one message (continuation lines and """ blocks joined with '\n') into *out (malloc'd). */
static int read_message(struct line_in *in, char **out)
{
    char *line, *msg = NULL;
    size_t len = 0;
    bool block = false, more = true;
    int rc = IN_TEXT;
    *out = NULL;
    interrupted = 0; /* a Ctrl-C from now on is one at the prompt */
    prompt(">>> ");
    while (more && rc == IN_TEXT) {
        ssize_t n = read_line(in, &line);
        if (n < 0) { /* Ctrl-C clears a started message and quits at an empty prompt; EOF sends what there is */
            rc = n == -2 ? (msg || block ? IN_CLEARED : IN_EOF) : msg ? IN_TEXT : IN_EOF;
            break;
        }
        char *s = line;
        bool opening = !block && !msg && n >= 3 && !strncmp(s, "\"\"\"", 3);
        if (opening) block = true, s += 3, n -= 3;
        if (block) {
            more = !(n >= 3 && ends_with(s, (size_t)n, "\"\"\""));
            if (!more) n -= 3;
            if (n == 0 && (opening || !more)) { /* the """ lines themselves */
                if (more) prompt("... ");
                continue;
            }
        } else {
            more = n > 0 && s[n - 1] == '\\';
            n -= more;
        }
        if (add_piece(&msg, &len, s, (size_t)n)) rc = IN_EOF;
        else if (more) prompt("... ");
    }
    if (rc == IN_TEXT && !msg) msg = strdup("");
    if (rc == IN_TEXT) *out = msg;
    else free(msg);
    if (rc == IN_CLEARED) fputs("\n(input cleared)\n", stdout);
    return rc;
}

/* ---- one turn ---- */

/* The text to feed for the conversation rendered with a generation prompt: what follows c->seen. When the
 * rendering does not start with it (it always should), the session starts over with the whole text. */
static int new_text(struct convo *c, qn_gen *g, const char **text, char **render)
{
    int rc = qn_chat_render(c->msgs, c->n, NULL, render);
    if (rc) return rc;
    if (c->seen_len && strncmp(*render, c->seen, c->seen_len)) {
        fprintf(stderr, "qnext chat: the conversation no longer matches the session; running it again\n");
        qn_gen_reset(g);
        c->seen_len = 0;
    }
    *text = *render + c->seen_len;
    return 0;
}

static void print_stats(const qn_gen *g)
{
    char line[512];
    qn_gen_stats_line(g, line, sizeof line);
    fprintf(stderr, "[qnext chat: %s]\n", line);
}

/* Keep the answer (decoded) as the assistant turn; the session now holds render + answer. */
static int keep_answer(struct convo *c, const qn_gen *g, const qn_tok *tok, char *render)
{
    int n;
    const int32_t *ids = qn_gen_answer_ids(g, &n);
    char *answer = NULL;
    size_t alen = 0;
    int rc = qn_tok_decode(tok, ids, n, false, &answer, &alen);
    if (!rc) rc = convo_push(c, QN_CHAT_ASSISTANT, answer);
    if (!rc) {
        size_t rlen = strlen(render);
        char *seen = realloc(render, rlen + alen + 1);
        if (!seen) {
            free(render);
            return qn_fail(-ENOMEM, "out of memory");
        }
        memcpy(seen + rlen, answer, alen + 1);
        free(c->seen);
        c->seen = seen, c->seen_len = rlen + alen;
        return 0;
    }
    free(render);
    return rc;
}

static int turn(struct convo *c, const struct qn_gen_cli *o, qn_tok *tok, qn_gen *g, char *msg)
{
    const char *text;
    char *render = NULL;
    int32_t *ids = NULL;
    int n = 0, rc = convo_push(c, QN_CHAT_USER, msg);
    if (rc) return rc;
    rc = new_text(c, g, &text, &render);
    if (!rc) rc = qn_gen_cli_encode(o, tok, text, &ids, &n);
    if (!rc) rc = qn_gen_answer(g, ids, n, o->g.sample.seed + (uint64_t)c->turns, qn_gen_cli_emit_stdout, NULL,
                                &interrupted);
    free(ids);
    if (rc) {
        free(render);
        convo_pop(c);
        return rc;
    }
    c->turns++;
    const struct qn_gen_turn *t = qn_gen_last(g);
    fputs(t->stop == QN_GEN_INTERRUPTED ? "\n[stopped]\n"
          : t->stop == QN_GEN_CTX_FULL  ? "\n[the context is full: type /reset to start a new conversation]\n"
                                        : "\n", stdout);
    fflush(stdout);
    if (o->c.stats) print_stats(g);
    rc = keep_answer(c, g, tok, render);
    if (rc) qn_gen_reset(g); /* the session holds the answer, the history does not: start over */
    return rc;
}

/* A failed turn: the message, and what state the conversation is in. */
static void turn_failed(struct convo *c, const struct qn_gen_cli *o, qn_gen *g, int rc)
{
    qn_cli_report("chat", rc);
    if (rc == -ENOSPC) {
        fprintf(stderr, "qnext chat: the conversation is too long for the context (%d tokens); type /reset to "
                        "start a new one, or restart with a larger --ctx\n", o->g.ctx);
    } else if (qn_gen_pos(g) == 0 && c->seen_len) {
        fprintf(stderr, "qnext chat: the session was reset; the next turn runs the whole conversation again\n");
        c->seen_len = 0;
    }
}

/* ---- the loop ---- */

static int command(const char *msg, struct convo *c, const struct qn_gen_cli *o, qn_gen *g)
{
    if (!strcmp(msg, "/exit") || !strcmp(msg, "/quit") || !strcmp(msg, "/bye")) return 1;
    if (!strcmp(msg, "/reset") || !strcmp(msg, "/clear")) {
        convo_reset(c, g, o->system);
        printf("(conversation cleared)\n");
    } else if (!strcmp(msg, "/help") || !strcmp(msg, "/?")) {
        printf("/reset  forget the conversation\n/exit   quit\n"
               "A line ending with \\ continues; \"\"\" starts and ends a block. Ctrl-C stops an answer.\n");
    } else {
        printf("unknown command '%s' (try /help)\n", msg);
    }
    fflush(stdout);
    return 0;
}

static bool blank(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    return !*s;
}

static int repl(struct qn_gen_cli *o, qn_tok *tok, qn_gen *g)
{
    struct convo c = { 0 };
    struct line_in in = { 0 };
    char *sys = o->system ? strdup(o->system) : NULL;
    if (o->system && (!sys || convo_push(&c, QN_CHAT_SYSTEM, sys))) return qn_cli_report("chat", -ENOMEM);
    struct sigaction sa = { .sa_handler = on_sigint }; /* no SA_RESTART: Ctrl-C interrupts a read */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    for (;;) {
        char *msg;
        int r = read_message(&in, &msg);
        if (r == IN_EOF) { /* end the prompt's line */
            if (isatty(STDIN_FILENO)) putchar('\n');
            break;
        }
        if (r == IN_CLEARED || blank(msg)) {
            free(msg);
            continue;
        }
        if (msg[0] == '/' && !strchr(msg, '\n')) {
            r = command(msg, &c, o, g);
            free(msg);
            if (r) break;
            continue;
        }
        interrupted = 0;
        int rc = turn(&c, o, tok, g, msg);
        if (rc) turn_failed(&c, o, g, rc);
    }
    signal(SIGINT, SIG_DFL);
    convo_free(&c);
    free(in.buf);
    return 0;
}

int qn_cmd_chat(int argc, char **argv)
{
    static const struct option longopts[] = {
        QN_CLI_COMMON_LONGOPTS, QN_GEN_LONGOPTS,
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    struct qn_gen_cli o;
    int opt;
    qn_gen_cli_defaults(&o);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:t:vh", longopts, NULL)) != -1) {
        int r = qn_gen_cli_opt(&o, "chat", opt, optarg);
        if (r < 0) return 2;
        if (r) continue;
        if (opt == 'h') {
            fputs(help, stdout);
            return 0;
        }
        return qn_cli_usage_error("chat");
    }
    if (optind < argc) {
        fprintf(stderr, "qnext chat: unexpected argument '%s'\n", argv[optind]);
        return qn_cli_usage_error("chat");
    }
    size_t bad;
    if (o.system && qn_utf8_check(o.system, strlen(o.system), &bad) < 0) {
        fprintf(stderr, "qnext chat: --system is not valid UTF-8 (byte offset %zu)\n", bad);
        return 2;
    }
    qn_tok *tok = NULL;
    qn_engine *e = NULL;
    qn_gen *g = NULL;
    int rc = qn_gen_cli_prepare(&o, "chat", &tok) || qn_gen_cli_open(&o, "chat", tok, &e, &g) ? 1 : 0;
    if (!rc) {
        if (o.c.stats && o.g.sample.temperature > 0)
            fprintf(stderr, "[qnext chat: seed %llu]\n", (unsigned long long)o.g.sample.seed);
        rc = repl(&o, tok, g);
    }
    qn_gen_free(&g);
    qn_engine_close(&e);
    qn_tok_free(&tok);
    return rc;
}
