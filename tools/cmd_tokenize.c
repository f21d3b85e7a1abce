/* cmd_tokenize.c — `qnext tokenize` (text -> ids, and a throughput benchmark) and `qnext detokenize`
 * (ids -> text). Both read the model's tokenizer.json; neither needs a GPU. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qn_time.h"
#include "cli.h"
#include "qn_err.h"
#include "tokenizer.h"

int qn_cmd_tokenize(int argc, char **argv);
int qn_cmd_detokenize(int argc, char **argv);

enum { OPT_JSON = QN_OPT_FIRST_FREE, OPT_STDIN, OPT_BENCH, OPT_REPEAT, OPT_NO_SPECIAL, OPT_SKIP_SPECIAL };

static const char tokenize_help[] =
    "usage: qnext tokenize -t TOKENIZER [--json] [--no-special] (--stdin | TEXT...)\n"
    "       qnext tokenize -t TOKENIZER --bench FILE [--repeat N]\n\n"
    "Prints the token ids of TEXT (several TEXT arguments are joined with one space), or of all of\n"
    "standard input with --stdin.\n\n"
    "  -t, --tokenizer PATH   tokenizer.json (or a model folder that holds one)\n"
    "  -m, --model DIR        same as -t DIR\n"
    "      --json             print a JSON array instead of space-separated ids\n"
    "      --stdin            read the text from standard input (exact bytes)\n"
    "      --no-special       treat <|im_start|> and other added tokens in the text as plain text\n"
    "      --bench FILE       measure encoding speed on FILE (MB/s; first pass with an empty piece\n"
    "                         cache, then the best of --repeat passes) and decoding speed\n"
    "      --repeat N         passes for --bench (default 3)\n"
    "  -h, --help             this text\n";

static const char detokenize_help[] =
    "usage: qnext detokenize -t TOKENIZER [--skip-special] (--stdin | IDS...)\n\n"
    "Prints the text of the token ids, exactly (no newline is added). Ids may be separated by spaces or\n"
    "commas, and may come as a JSON array (the output of 'qnext tokenize --json').\n\n"
    "  -t, --tokenizer PATH   tokenizer.json (or a model folder that holds one)\n"
    "  -m, --model DIR        same as -t DIR\n"
    "      --stdin            read the ids from standard input\n"
    "      --skip-special     drop special tokens (<|im_end|>, <|endoftext|> ...)\n"
    "  -h, --help             this text\n";

static int read_stream(FILE *f, const char *what, char **out, size_t *n)
{
    size_t cap = 1 << 16, len = 0, got;
    char *buf = malloc(cap + 1);
    if (!buf) return qn_fail(-ENOMEM, "out of memory");
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *b = realloc(buf, (cap *= 2) + 1);
            if (!b) {
                free(buf);
                return qn_fail(-ENOMEM, "%s: out of memory (%zu bytes)", what, cap);
            }
            buf = b;
        }
    }
    if (ferror(f)) {
        free(buf);
        return qn_fail(-EIO, "%s: read error", what);
    }
    buf[len] = 0;
    *out = buf, *n = len;
    return 0;
}

static int read_path(const char *path, char **out, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return qn_fail(-errno, "%s: cannot open: %s", path, strerror(errno));
    int rc = read_stream(f, path, out, n);
    fclose(f);
    return rc;
}

/* TEXT... joined with single spaces. */
static char *join_args(int argc, char **argv, size_t *n)
{
    size_t len = 0;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    char *s = malloc(len + 1), *p = s;
    if (!s) return NULL;
    for (int i = 0; i < argc; i++) {
        if (i) *p++ = ' ';
        size_t k = strlen(argv[i]);
        memcpy(p, argv[i], k);
        p += k;
    }
    *p = 0;
    *n = (size_t)(p - s);
    return s;
}

static void print_ids(const int32_t *ids, int n, int json)
{
    if (json) putchar('[');
    for (int i = 0; i < n; i++) printf(i ? (json ? ", %d" : " %d") : "%d", ids[i]);
    puts(json ? "]" : "");
}

static int bench(const char *tok_path, const char *file, int repeat)
{
    char *text = NULL, *back = NULL;
    size_t n = 0, nback = 0;
    int32_t *ids = NULL;
    int nid = 0, rc;
    qn_tok *tok = NULL;
    double t0 = qn_now_s();
    if ((rc = qn_tok_load(&tok, tok_path)) < 0) return rc;
    double t_load = qn_now_s() - t0, best = 1e30, cold = 0;
    if ((rc = read_path(file, &text, &n)) < 0) goto done;
    for (int r = 0; r <= repeat && rc >= 0; r++) { /* pass 0: empty piece cache */
        free(ids);
        ids = NULL;
        t0 = qn_now_s();
        rc = qn_tok_encode(tok, text, n, &ids, &nid);
        double dt = qn_now_s() - t0;
        if (r == 0) cold = dt;
        else if (dt < best) best = dt;
    }
    if (rc < 0) goto done;
    t0 = qn_now_s();
    if ((rc = qn_tok_decode(tok, ids, nid, false, &back, &nback)) < 0) goto done;
    double t_dec = qn_now_s() - t0, mb = (double)n / 1e6;
    bool jit;
    qn_tok_regex(tok, &jit);
    printf("file        %s: %.2f MB, %d tokens (%.2f bytes/token)\n", file, mb, nid, (double)n / (nid ? nid : 1));
    printf("load        %.3f s (%s, regex JIT %s)\n", t_load, tok_path, jit ? "on" : "off");
    printf("encode      %.2f MB/s (best of %d; %.3f s, %.0f tokens/s)\n", mb / best, repeat, best, nid / best);
    printf("encode cold %.2f MB/s (first pass, empty piece cache)\n", mb / cold);
    printf("decode      %.2f MB/s\n", mb / (t_dec > 0 ? t_dec : 1e-9));
    printf("round trip  %s\n", nback == n && !memcmp(back, text, n) ? "identical" : "differs (NFC changed the text)");
done:
    free(text), free(ids), free(back);
    qn_tok_free(&tok);
    return rc;
}

int qn_cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        { "tokenizer", required_argument, 0, 't' }, { "model", required_argument, 0, 'm' },
        { "json", no_argument, 0, OPT_JSON }, { "stdin", no_argument, 0, OPT_STDIN },
        { "bench", required_argument, 0, OPT_BENCH }, { "repeat", required_argument, 0, OPT_REPEAT },
        { "no-special", no_argument, 0, OPT_NO_SPECIAL }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *path = NULL, *bench_file = NULL, *cmd = "tokenize";
    int json = 0, from_stdin = 0, c, rc;
    unsigned flags = 0;
    long repeat = 3;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:m:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': case 'm': path = optarg; break;
        case OPT_JSON: json = 1; break;
        case OPT_STDIN: from_stdin = 1; break;
        case OPT_BENCH: bench_file = optarg; break;
        case OPT_REPEAT: if (qn_cli_int(cmd, "--repeat", optarg, 1, 1000, &repeat) < 0) return 2; break;
        case OPT_NO_SPECIAL: flags |= QN_TOK_NO_SPECIAL; break;
        case 'h': fputs(tokenize_help, stdout); return 0;
        default: return qn_cli_usage_error(cmd);
        }
    }
    if (!path) {
        fprintf(stderr, "qnext tokenize: -t TOKENIZER is required\n");
        return qn_cli_usage_error(cmd);
    }
    if (bench_file) return qn_cli_report(cmd, bench(path, bench_file, (int)repeat));
    if (from_stdin == (optind < argc)) {
        fprintf(stderr, "qnext tokenize: give either TEXT or --stdin\n");
        return qn_cli_usage_error(cmd);
    }
    char *text;
    size_t n;
    if (from_stdin) {
        if ((rc = read_stream(stdin, "standard input", &text, &n)) < 0) return qn_cli_report(cmd, rc);
    } else if (!(text = join_args(argc - optind, argv + optind, &n))) {
        return qn_cli_report(cmd, qn_fail(-ENOMEM, "out of memory"));
    }
    qn_tok *tok = NULL;
    int32_t *ids = NULL;
    int nid = 0;
    rc = qn_tok_load(&tok, path);
    if (rc >= 0) rc = qn_tok_encode_flags(tok, text, n, flags, &ids, &nid);
    if (rc >= 0) print_ids(ids, nid, json);
    free(text), free(ids);
    qn_tok_free(&tok);
    return qn_cli_report(cmd, rc);
}

/* Ids separated by spaces, commas, newlines, optionally inside [ ]. */
static int parse_ids(const char *s, int n_vocab, int32_t **ids, int *n)
{
    size_t cap = 64, cnt = 0;
    int32_t *a = malloc(cap * sizeof *a);
    if (!a) return qn_fail(-ENOMEM, "out of memory");
    const char *p = s;
    for (;;) {
        while (*p && (isspace((unsigned char)*p) || *p == ',' || *p == '[' || *p == ']')) p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || (*end && !isspace((unsigned char)*end) && *end != ',' && *end != ']')) {
            free(a);
            return qn_fail(-EINVAL, "'%.20s' (offset %zu) is not a token id", p, (size_t)(p - s));
        }
        if (v < 0 || v >= n_vocab) {
            free(a);
            return qn_fail(-ERANGE, "token id %lld (position %zu) is outside the vocabulary [0, %d)", v, cnt, n_vocab);
        }
        if (cnt == cap) {
            int32_t *b = realloc(a, (cap *= 2) * sizeof *a);
            if (!b) {
                free(a);
                return qn_fail(-ENOMEM, "out of memory");
            }
            a = b;
        }
        a[cnt++] = (int32_t)v;
        p = end;
    }
    *ids = a, *n = (int)cnt;
    return 0;
}

int qn_cmd_detokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        { "tokenizer", required_argument, 0, 't' }, { "model", required_argument, 0, 'm' },
        { "stdin", no_argument, 0, OPT_STDIN }, { "skip-special", no_argument, 0, OPT_SKIP_SPECIAL },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *path = NULL, *cmd = "detokenize";
    int from_stdin = 0, skip = 0, c, rc;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:m:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': case 'm': path = optarg; break;
        case OPT_STDIN: from_stdin = 1; break;
        case OPT_SKIP_SPECIAL: skip = 1; break;
        case 'h': fputs(detokenize_help, stdout); return 0;
        default: return qn_cli_usage_error(cmd);
        }
    }
    if (!path || from_stdin == (optind < argc)) {
        fprintf(stderr, "qnext detokenize: give -t TOKENIZER and either IDS or --stdin\n");
        return qn_cli_usage_error(cmd);
    }
    char *src = NULL, *text = NULL;
    size_t n = 0;
    int32_t *ids = NULL;
    int nid = 0;
    qn_tok *tok = NULL;
    if (from_stdin) rc = read_stream(stdin, "standard input", &src, &n);
    else rc = (src = join_args(argc - optind, argv + optind, &n)) ? 0 : qn_fail(-ENOMEM, "out of memory");
    if (rc >= 0) rc = qn_tok_load(&tok, path);
    if (rc >= 0) rc = parse_ids(src, qn_tok_n_vocab(tok), &ids, &nid);
    if (rc >= 0) rc = qn_tok_decode(tok, ids, nid, skip, &text, &n);
    if (rc >= 0) fwrite(text, 1, n, stdout);
    free(src), free(ids), free(text);
    qn_tok_free(&tok);
    return qn_cli_report(cmd, rc);
}
