/* cmd_run.c — `qnext run`: one prompt in, the model's answer streamed out. The prompt is rendered with the
 * chat template (or taken raw), encoded, prefilled, then sampled token by token (generate_loop.h) until a
 * stop token or the budget; a line of numbers goes to stderr at the end. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "gen_cli.h"
#include "qn_err.h"

int qn_cmd_run_prompt(int argc, char **argv);

enum { OPT_RAW = QN_GEN_OPT_FIRST_FREE };

static const char help[] =
    "usage: qnext run -m DIR [-p PROMPT | -f FILE] [options]\n\n"
    "Renders the prompt as one user turn of the chat template, generates the answer and streams it to\n"
    "standard output. Without -p or -f the prompt is read from standard input (when it is not a terminal).\n"
    "Stops at <|im_end|> or <|endoftext|>, after --max-tokens tokens, when the context is full, or at\n"
    "Ctrl-C (a second Ctrl-C quits at once). Prompt and answer numbers go to standard error at the end.\n\n"
    "  -p, --prompt TEXT      the prompt\n"
    "  -f, --file FILE        read the prompt from FILE ('-' = standard input)\n"
    "      --raw              feed the prompt as it is, without the chat template\n"
    QN_GEN_HELP
    QN_CLI_COMMON_HELP
    "  -h, --help             this text\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Whole stream into a malloc'd NUL-terminated buffer (*len bytes; the text may hold NULs). */
static int read_all(FILE *f, const char *name, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        char *nb = realloc(b, cap *= 2);
        if (!nb) free(b);
        b = nb;
    }
    if (!b) return qn_fail(-ENOMEM, "%s: out of memory", name);
    if (ferror(f)) {
        free(b);
        return qn_fail(-EIO, "%s: read error", name);
    }
    b[n] = 0;
    *out = b, *len = n;
    return 0;
}

static int read_prompt(const char *prompt, const char *file, char **out, size_t *len)
{
    if (prompt) {
        *len = strlen(prompt);
        *out = strdup(prompt);
        return *out ? 0 : qn_fail(-ENOMEM, "out of memory");
    }
    if (!file || !strcmp(file, "-")) return read_all(stdin, "standard input", out, len);
    FILE *f = fopen(file, "rb");
    if (!f) return qn_fail(-errno, "%s: %s", file, strerror(errno));
    int rc = read_all(f, file, out, len);
    fclose(f);
    return rc;
}

/* Empty, NUL inside, or invalid UTF-8: a message with the byte offset. */
static int check_prompt(const char *p, size_t len)
{
    size_t bad;
    if (len == 0) return qn_fail(-EINVAL, "the prompt is empty");
    if (strlen(p) != len) return qn_fail(-EINVAL, "the prompt contains a NUL byte at byte offset %zu", strlen(p));
    if (qn_utf8_check(p, len, &bad) < 0) return qn_fail(-EINVAL, "the prompt is not valid UTF-8 (byte offset %zu)", bad);
    return 0;
}

/* Prompt text -> ids: chat template (system turn + one user turn) unless raw; fits the context. */
static int prompt_ids(const struct qn_gen_cli *o, qn_tok *tok, const char *prompt, bool raw, int32_t **ids, int *n)
{
    char *text = NULL;
    int rc = 0;
    if (!raw) {
        qn_chat_msg m[2] = { { QN_CHAT_SYSTEM, o->system, NULL, 0 }, { QN_CHAT_USER, prompt, NULL, 0 } };
        rc = o->system ? qn_chat_render(m, 2, NULL, &text) : qn_chat_render(m + 1, 1, NULL, &text);
    }
    if (!rc) rc = qn_gen_cli_encode(o, tok, raw ? prompt : text, ids, n);
    free(text);
    if (!rc && *n >= o->g.ctx) {
        rc = qn_fail(-ENOSPC, "the prompt has %d tokens: too long for a context of %d (--ctx)", *n, o->g.ctx);
        free(*ids);
        *ids = NULL;
    }
    return rc;
}

static int generate(struct qn_gen_cli *o, const qn_tok *tok, const int32_t *ids, int n)
{
    qn_engine *e = NULL;
    qn_gen *g = NULL;
    int rc = qn_gen_cli_open(o, "run", tok, &e, &g);
    if (rc) return 1;
    struct sigaction sa = { .sa_handler = on_sigint, .sa_flags = SA_RESETHAND };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    rc = qn_gen_answer(g, ids, n, o->g.sample.seed, qn_gen_cli_emit_stdout, NULL, &interrupted);
    signal(SIGINT, SIG_DFL);
    if (!rc) {
        char line[512];
        qn_gen_stats_line(g, line, sizeof line);
        if (isatty(STDOUT_FILENO)) putchar('\n');
        fflush(stdout);
        fprintf(stderr, "qnext run: %s", line);
        if (o->g.sample.temperature > 0) fprintf(stderr, "; seed %llu", (unsigned long long)o->g.sample.seed);
        fprintf(stderr, "\n");
    }
    qn_gen_free(&g);
    qn_engine_close(&e);
    return qn_cli_report("run", rc);
}

int qn_cmd_run_prompt(int argc, char **argv)
{
    static const struct option longopts[] = {
        QN_CLI_COMMON_LONGOPTS, QN_GEN_LONGOPTS,
        { "prompt", required_argument, 0, 'p' },
        { "file", required_argument, 0, 'f' },
        { "raw", no_argument, 0, OPT_RAW },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    struct qn_gen_cli o;
    const char *prompt = NULL, *file = NULL;
    bool raw = false;
    int opt;
    qn_gen_cli_defaults(&o);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:t:p:f:vh", longopts, NULL)) != -1) {
        int r = qn_gen_cli_opt(&o, "run", opt, optarg);
        if (r < 0) return 2;
        if (r) continue;
        switch (opt) {
        case 'p': prompt = optarg; break;
        case 'f': file = optarg; break;
        case OPT_RAW: raw = true; break;
        case 'h': fputs(help, stdout); return 0;
        default: return qn_cli_usage_error("run");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qnext run: unexpected argument '%s' (the prompt goes after -p)\n", argv[optind]);
        return qn_cli_usage_error("run");
    }
    if (prompt && file) {
        fprintf(stderr, "qnext run: give the prompt with -p or -f, not both\n");
        return 2;
    }
    if (raw && o.system) {
        fprintf(stderr, "qnext run: --system needs the chat template (drop --raw)\n");
        return 2;
    }
    if (!prompt && !file && isatty(STDIN_FILENO)) {
        fprintf(stderr, "qnext run: no prompt (-p TEXT, -f FILE, or text on standard input)\n");
        return qn_cli_usage_error("run");
    }
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    int n = 0, rc = read_prompt(prompt, file, &text, &len);
    if (!rc) rc = check_prompt(text, len);
    if (rc) {
        free(text);
        return qn_cli_report("run", rc);
    }
    qn_tok *tok = NULL;
    rc = qn_gen_cli_prepare(&o, "run", &tok) ? 1 : qn_cli_report("run", prompt_ids(&o, tok, text, raw, &ids, &n));
    if (!rc) rc = generate(&o, tok, ids, n);
    free(ids);
    free(text);
    qn_tok_free(&tok);
    return rc;
}
