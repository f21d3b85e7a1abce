/* cmd_generate.c — `qnext generate`: greedy continuation of a token list (one prefill, then one token at a
 * time through the cache), printed as ids. The acceptance checks compare the ids with Hugging Face's. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "engine.h"
#include "qn_err.h"

int qn_cmd_generate(int argc, char **argv);

enum { OPT_TOKENS = QN_OPT_FIRST_FREE, OPT_GREEDY, OPT_IDS };

static const char help[] =
    "usage: qnext generate -m DIR --tokens IDS -n N [--greedy] [--ids] [--backend cpu|vulkan] [options]\n\n"
    "Feeds the prompt ids in one forward pass, then generates N new tokens one at a time with the cache, and\n"
    "prints the N new ids space-separated on one line of standard output. No stop token: exactly N ids.\n\n"
    "      --tokens IDS       the prompt: comma-separated token ids (each must be < vocab_size)\n"
    "  -n, --new N            number of tokens to generate (1 .. 1000000)\n"
    "      --greedy           pick the most likely token each step (the only mode this command has;\n"
    "                         sampled text generation is 'qnext run')\n"
    "      --ids              print token ids (the only output format of this command)\n"
    QN_CLI_COMMON_HELP
    "  -h, --help             this text\n";

/* One prefill over the prompt, then n_new - 1 single-token steps; writes n_new ids to out. Each step's choice
 * is the engine's top-1 candidate (the GPU argmax on Vulkan: only the id comes back). */
static int generate(qn_engine *e, const int32_t *prompt, int n, int n_new, int32_t *out)
{
    qn_cand best;
    int rc = qn_engine_forward(e, prompt, n, NULL, 0);
    for (int i = 0; !rc && i < n_new; i++) {
        rc = qn_engine_topk(e, &best, 1);
        if (rc) break;
        out[i] = best.id;
        if (i + 1 < n_new) rc = qn_engine_forward(e, &out[i], 1, NULL, 0);
    }
    return rc;
}

int qn_cmd_generate(int argc, char **argv)
{
    static const struct option longopts[] = {
        QN_CLI_COMMON_LONGOPTS,
        { "tokens", required_argument, 0, OPT_TOKENS },
        { "new", required_argument, 0, 'n' },
        { "greedy", no_argument, 0, OPT_GREEDY },
        { "ids", no_argument, 0, OPT_IDS },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    struct qn_cli_common c;
    const char *tokens = NULL;
    long n_new = -1;
    int opt;
    qn_cli_common_defaults(&c);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:n:vh", longopts, NULL)) != -1) {
        int r = qn_cli_common_opt(&c, opt, optarg);
        if (r < 0) return 2;
        if (r) continue;
        switch (opt) {
        case OPT_TOKENS: tokens = optarg; break;
        case 'n':
            if (qn_cli_int("generate", "-n", optarg, 1, 1000000, &n_new) < 0) return 2;
            break;
        case OPT_GREEDY: case OPT_IDS: break;
        case 'h': fputs(help, stdout); return 0;
        default: return qn_cli_usage_error("generate");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qnext generate: unexpected argument '%s'\n", argv[optind]);
        return qn_cli_usage_error("generate");
    }
    if (n_new < 1) {
        fprintf(stderr, "qnext generate: how many tokens? (-n N)\n");
        return qn_cli_usage_error("generate");
    }
    int32_t *ids = NULL, *out = malloc(sizeof *out * (size_t)n_new);
    int n = 0;
    if (!out || qn_engine_tokens("generate", &c, tokens, &ids, &n) < 0) {
        free(out);
        return 1;
    }
    qn_engine *e = NULL;
    int rc = qn_engine_open(&e, &c);
    if (!rc) rc = generate(e, ids, n, (int)n_new, out);
    if (!rc) {
        for (long i = 0; i < n_new; i++) printf("%s%d", i ? " " : "", out[i]);
        printf("\n");
    }
    qn_engine_close(&e);
    free(ids);
    free(out);
    return qn_cli_report("generate", rc);
}
