/* cmd_logits.c — `qnext logits`: one forward pass over a token list, logits of every position to a .npy file
 * (float32 [T, vocab]). The acceptance checks compare this file with Hugging Face's logits. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "engine.h"
#include "npy.h"
#include "qn_err.h"

int qn_cmd_logits(int argc, char **argv);

enum { OPT_TOKENS = QN_OPT_FIRST_FREE, OPT_LAST };

static const char help[] =
    "usage: qnext logits -m DIR --tokens IDS -o OUT.npy [--last] [--backend cpu|vulkan] [options]\n\n"
    "Runs one forward pass over the token ids (from an empty sequence) and writes the logits as a NumPy\n"
    "float32 array [T, vocab] (row t = logits after token t), or [1, vocab] of the last token with --last.\n\n"
    "      --tokens IDS       comma-separated token ids, e.g. 1,2,3 (each must be < vocab_size)\n"
    "  -o, --output PATH      the .npy file to write\n"
    "      --last             only the last position's logits\n"
    QN_CLI_COMMON_HELP
    "  -h, --help             this text\n";

int qn_cmd_logits(int argc, char **argv)
{
    static const struct option longopts[] = {
        QN_CLI_COMMON_LONGOPTS,
        { "tokens", required_argument, 0, OPT_TOKENS },
        { "output", required_argument, 0, 'o' },
        { "last", no_argument, 0, OPT_LAST },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    struct qn_cli_common c;
    const char *tokens = NULL, *out = NULL;
    int last = 0, opt;
    qn_cli_common_defaults(&c);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:o:vh", longopts, NULL)) != -1) {
        int r = qn_cli_common_opt(&c, opt, optarg);
        if (r < 0) return 2;
        if (r) continue;
        switch (opt) {
        case OPT_TOKENS: tokens = optarg; break;
        case 'o': out = optarg; break;
        case OPT_LAST: last = 1; break;
        case 'h': fputs(help, stdout); return 0;
        default: return qn_cli_usage_error("logits");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qnext logits: unexpected argument '%s'\n", argv[optind]);
        return qn_cli_usage_error("logits");
    }
    if (!out) {
        fprintf(stderr, "qnext logits: no output file given (-o OUT.npy)\n");
        return qn_cli_usage_error("logits");
    }
    int32_t *ids = NULL;
    int n = 0;
    if (qn_engine_tokens("logits", &c, tokens, &ids, &n) < 0) return 1;
    qn_engine *e = NULL;
    float *logits = NULL;
    int rc = qn_engine_open(&e, &c);
    if (!rc) {
        int64_t V = qn_engine_config(e)->vocab_size, rows = last ? 1 : n;
        int64_t shape[2] = { rows, V };
        logits = malloc(sizeof *logits * (size_t)(rows * V));
        rc = logits ? qn_engine_forward(e, ids, n, logits, !last) : qn_fail(-ENOMEM, "out of memory for %lld logits",
                                                                           (long long)(rows * V));
        if (!rc) rc = qn_npy_write(out, logits, 0, 2, shape);
    }
    qn_engine_close(&e);
    free(logits);
    free(ids);
    return qn_cli_report("logits", rc);
}
