/* gen_cli.h — options and set-up shared by the text-generation commands (`qnext run`, `qnext chat`): the
 * sampling and context options, the tokenizer next to the model, prompt encoding checked against the
 * model's vocabulary, and opening the engine with its generator (generate_loop.h).
 *
 * A command builds its getopt_long table from QN_CLI_COMMON_LONGOPTS, QN_GEN_LONGOPTS and its own options
 * (numbered from QN_GEN_OPT_FIRST_FREE), and hands every option it does not know to qn_gen_cli_opt(). */
#ifndef QN_GEN_CLI_H
#define QN_GEN_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "config.h"
#include "engine.h"
#include "generate_loop.h"
#include "tokenizer.h"

struct qn_gen_cli {
    struct qn_cli_common c;
    struct qn_gen_opts g;    /* sampling, --max-tokens, --ctx (0 until qn_gen_cli_prepare) */
    const char *tokenizer;   /* -t FILE (NULL: tokenizer.json next to the model) */
    const char *system;      /* --system TEXT (NULL: no system turn) */
    bool seed_set;           /* --seed given (else a seed from the clock, printed with --stats) */
    qn_config cfg;           /* the model's config.json (after qn_gen_cli_prepare) */
};

enum {
    QN_GEN_OPT_TEMP = QN_OPT_FIRST_FREE + 0x80, QN_GEN_OPT_TOP_K, QN_GEN_OPT_TOP_P, QN_GEN_OPT_MIN_P,
    QN_GEN_OPT_PRESENCE, QN_GEN_OPT_SEED, QN_GEN_OPT_MAX_TOKENS, QN_GEN_OPT_CTX, QN_GEN_OPT_SYSTEM,
    QN_GEN_OPT_FIRST_FREE /* a command's own long options start here */
};

#define QN_GEN_LONGOPTS                                                   \
    { "tokenizer", required_argument, 0, 't' },                          \
    { "temp", required_argument, 0, QN_GEN_OPT_TEMP },                   \
    { "temperature", required_argument, 0, QN_GEN_OPT_TEMP },            \
    { "top-k", required_argument, 0, QN_GEN_OPT_TOP_K },                 \
    { "top-p", required_argument, 0, QN_GEN_OPT_TOP_P },                 \
    { "min-p", required_argument, 0, QN_GEN_OPT_MIN_P },                 \
    { "presence-penalty", required_argument, 0, QN_GEN_OPT_PRESENCE },   \
    { "seed", required_argument, 0, QN_GEN_OPT_SEED },                   \
    { "max-tokens", required_argument, 0, QN_GEN_OPT_MAX_TOKENS },       \
    { "ctx", required_argument, 0, QN_GEN_OPT_CTX },                     \
    { "system", required_argument, 0, QN_GEN_OPT_SYSTEM }

#define QN_GEN_HELP                                                                                      \
    "      --system TEXT      a system turn before the first user turn (default: none, as the model card)\n" \
    "      --temp T           temperature (default 0.7); 0 = greedy (always the most likely token)\n"        \
    "      --top-k K          keep the K most likely tokens (default 20; 0 = off)\n"                         \
    "      --top-p P          keep the smallest set with probability >= P (default 0.8; 1 = off)\n"         \
    "      --min-p P          drop tokens below P x the best one's probability (default 0 = off)\n"          \
    "      --presence-penalty X  subtract X from the logit of every token already in the answer (default 0)\n" \
    "      --seed N           sampling seed (default: from the clock); same seed, same text\n"              \
    "      --max-tokens N     at most N tokens per answer (default 2048)\n"                                  \
    "      --ctx N            context length in tokens (default min(32768, max_position_embeddings))\n"      \
    "  -t, --tokenizer FILE   tokenizer.json (default: the one in the model folder)\n"

void qn_gen_cli_defaults(struct qn_gen_cli *o);
/* 1 if `opt` was a generation or common option (parsed), 0 if not, <0 on a bad value (message printed). */
int qn_gen_cli_opt(struct qn_gen_cli *o, const char *cmd, int opt, const char *arg);

/* Before any weights load: read config.json, settle the --ctx default and the seed, load the tokenizer.
 * Prints "qnext CMD: why" and returns <0 on failure. */
int qn_gen_cli_prepare(struct qn_gen_cli *o, const char *cmd, qn_tok **tok);

/* Encode text (added tokens such as <|im_start|> matched) into *ids (malloc'd) and check every id against
 * the model's vocabulary. Errors set qn_errmsg() (the caller reports them). */
int qn_gen_cli_encode(const struct qn_gen_cli *o, qn_tok *tok, const char *text, int32_t **ids, int *n);

/* Open the engine and a generator over it. Prints the reason on failure. */
int qn_gen_cli_open(struct qn_gen_cli *o, const char *cmd, const qn_tok *tok, qn_engine **e, qn_gen **g);

/* Writes decoded text to stdout and flushes (a qn_gen_emit; user is unused). */
int qn_gen_cli_emit_stdout(void *user, const char *text, size_t len);

#endif
