/* gen_cli.c — options and set-up shared by `qnext run` and `qnext chat` (see gen_cli.h). */
#include "gen_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qn_err.h"

#define DEFAULT_CTX 32768
#define DEFAULT_MAX_TOKENS 2048

void qn_gen_cli_defaults(struct qn_gen_cli *o)
{
    memset(o, 0, sizeof *o);
    qn_cli_common_defaults(&o->c);
    o->g.sample = qn_sample_default_params();
    o->g.max_tokens = DEFAULT_MAX_TOKENS;
}

static int opt_float(const char *cmd, const char *name, const char *arg, double lo, double hi, float *out)
{
    double v;
    if (qn_cli_float(cmd, name, arg, lo, hi, &v) < 0) return -1;
    *out = (float)v;
    return 1;
}

static int opt_int(const char *cmd, const char *name, const char *arg, long lo, long hi, int *out)
{
    long v;
    if (qn_cli_int(cmd, name, arg, lo, hi, &v) < 0) return -1;
    *out = (int)v;
    return 1;
}

int qn_gen_cli_opt(struct qn_gen_cli *o, const char *cmd, int opt, const char *arg)
{
    qn_sample_params *s = &o->g.sample;
    int r = qn_cli_common_opt(&o->c, opt, arg);
    if (r) return r;
    switch (opt) {
    case 't': o->tokenizer = arg; return 1;
    case QN_GEN_OPT_SYSTEM: o->system = arg; return 1;
    case QN_GEN_OPT_TEMP: return opt_float(cmd, "--temp", arg, 0, 100, &s->temperature);
    case QN_GEN_OPT_TOP_K: return opt_int(cmd, "--top-k", arg, 0, 1 << 30, &s->top_k);
    case QN_GEN_OPT_MIN_P: return opt_float(cmd, "--min-p", arg, 0, 1, &s->min_p);
    case QN_GEN_OPT_PRESENCE: return opt_float(cmd, "--presence-penalty", arg, -2, 2, &s->presence_penalty);
    case QN_GEN_OPT_MAX_TOKENS: return opt_int(cmd, "--max-tokens", arg, 1, 1 << 30, &o->g.max_tokens);
    case QN_GEN_OPT_CTX: return opt_int(cmd, "--ctx", arg, 1, 1 << 30, &o->g.ctx);
    case QN_GEN_OPT_TOP_P:
        if (opt_float(cmd, "--top-p", arg, 0, 1, &s->top_p) < 0) return -1;
        if (s->top_p > 0) return 1;
        fprintf(stderr, "qnext %s: --top-p: must be above 0 (1 = off)\n", cmd);
        return -1;
    case QN_GEN_OPT_SEED: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(arg, &end, 0);
        if (errno || end == arg || *end || *arg == '-') {
            fprintf(stderr, "qnext %s: --seed: '%s' is not a non-negative integer\n", cmd, arg);
            return -1;
        }
        s->seed = v;
        o->seed_set = true;
        return 1;
    }
    default: return 0;
    }
}

/* tokenizer.json in the model folder (or next to a model file). */
static int tokenizer_path(const struct qn_gen_cli *o, char *buf, size_t size)
{
    struct stat st;
    const char *m = o->c.model;
    int len = (int)strlen(m);
    if (stat(m, &st) == 0 && !S_ISDIR(st.st_mode)) {
        const char *slash = strrchr(m, '/');
        len = slash ? (int)(slash - m) : 1;
        if (!slash) m = ".";
    }
    if (snprintf(buf, size, "%.*s/tokenizer.json", len, m) >= (int)size)
        return qn_fail(-ENAMETOOLONG, "model path too long: %s", o->c.model);
    return 0;
}

static uint64_t clock_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);
}

int qn_gen_cli_prepare(struct qn_gen_cli *o, const char *cmd, qn_tok **tok)
{
    char path[4096];
    *tok = NULL;
    if (!o->c.model) {
        fprintf(stderr, "qnext %s: no model given (-m DIR)\n", cmd);
        return -EINVAL;
    }
    int rc = qn_cfg_load(&o->cfg, o->c.model);
    if (rc) return qn_cli_report(cmd, rc), rc;
    if (!o->g.ctx)
        o->g.ctx = o->cfg.max_position_embeddings > 0 && o->cfg.max_position_embeddings < DEFAULT_CTX
                     ? (int)o->cfg.max_position_embeddings : DEFAULT_CTX;
    if (!o->seed_set) o->g.sample.seed = clock_seed();
    if (!o->tokenizer && (rc = tokenizer_path(o, path, sizeof path))) return qn_cli_report(cmd, rc), rc;
    const char *tp = o->tokenizer ? o->tokenizer : path;
    rc = qn_tok_load(tok, tp);
    if (rc) {
        qn_cli_report(cmd, rc);
        if (!o->tokenizer) fprintf(stderr, "qnext %s: the model folder needs a tokenizer.json (or pass -t FILE)\n", cmd);
    }
    return rc;
}

int qn_gen_cli_encode(const struct qn_gen_cli *o, qn_tok *tok, const char *text, int32_t **ids, int *n)
{
    int rc = qn_tok_encode(tok, text, strlen(text), ids, n);
    if (rc) return rc;
    for (int i = 0; i < *n; i++) {
        if ((*ids)[i] < o->cfg.vocab_size) continue;
        rc = qn_fail(-ERANGE, "token %d of the prompt has id %d, outside the model's vocabulary (vocab_size %d): "
                     "the tokenizer does not belong to this model", i, (*ids)[i], o->cfg.vocab_size);
        free(*ids);
        *ids = NULL;
        return rc;
    }
    return 0;
}

int qn_gen_cli_open(struct qn_gen_cli *o, const char *cmd, const qn_tok *tok, qn_engine **e, qn_gen **g)
{
    *g = NULL;
    int rc = qn_engine_open(e, &o->c);
    if (!rc) rc = qn_gen_new(g, *e, tok, &o->g);
    if (rc) {
        qn_engine_close(e);
        qn_cli_report(cmd, rc);
    }
    return rc;
}

int qn_gen_cli_emit_stdout(void *user, const char *text, size_t len)
{
    (void)user;
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout))
        return qn_fail(-EIO, "writing to standard output: %s", strerror(errno));
    return 0;
}
