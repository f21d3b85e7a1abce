/* cmd_pfab.c — `qnext prefill-ab`: prefill speed of several environment variants in ONE process, the model loaded
 * once. The forward pass reads its A/B switches (QNEXT_CM_MOE_TILE_SMALL, QNEXT_ROUTER_CM, QNEXT_MOE_TOKEN_T, ...)
 * when a session makes its pipelines, so each --variant "NAME=VALUE ..." sets its variables, opens a new session,
 * times greedy prefill of pseudo-random prompts of every --prompts size (best of --reps; the first repetition also
 * compiles pipelines), and unsets them again. A variant "-" is the environment as given. One line per (variant,
 * prompt): seconds, tok/s, and the chunk the session used. A word PROFILE=N in a variant instead profiles one prompt
 * of N tokens (after one unprofiled warm-up call) and prints the session's GPU time per op family (per dispatch with
 * QNEXT_PROFILE_DISPATCH=1 in the same variant). Before the first variant an unmeasured warm-up (QNEXT_BENCH_WARM_MS,
 * default 2000 ms) brings the GPU to its clocks. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qn_err.h"
#include "qn_rng.h"
#include "qn_time.h"
#include "session.h"
#include "vk_stack.h"

int qn_cmd_prefill_ab(int argc, char **argv);

enum { OPT_PROMPTS = QN_OPT_FIRST_FREE, OPT_REPS, OPT_CHUNK, OPT_VARIANT, OPT_DECODE };
enum { MAX_VARIANTS = 16, MAX_PROMPTS = 16, MAX_VARS = 8 };

static const char help[] =
    "usage: qnext prefill-ab -m MODEL [--prompts N,N,..] [--reps R] [--chunk C] [--decode D] --variant \"A=1 B=2\" ...\n\n"
    "Loads the model once, then for each --variant (space-separated NAME=VALUE environment settings; \"-\": none)\n"
    "opens a session and times the prefill of pseudo-random prompts of each size (best of R), and with --decode D\n"
    "also D greedy decode steps after the last prompt. A word PROFILE=N profiles one N-token prompt instead.\n"
    "Before the first variant, QNEXT_BENCH_WARM_MS (default 2000) ms of unmeasured prefill and decode warm the GPU.\n\n"
    "      --prompts N,..     prompt sizes (default 32,128,512,2048,4096)\n"
    "      --reps R           repetitions per prompt (default 2)\n"
    "      --chunk C          prompt tokens per submission (default: the session's choice)\n"
    "      --decode D         decode steps timed after the last prompt (default 0)\n"
    "      --variant \"A=1 ..\" environment settings of one variant (up to 16)\n"
    QN_CLI_COMMON_HELP
    "  -h, --help             this text\n";

struct pfab_opts {
    struct qn_cli_common c;
    long prompts[MAX_PROMPTS], reps, chunk, decode;
    int nprompts, nvar;
    const char *var[MAX_VARIANTS];
};

static int parse_prompts(const char *s, struct pfab_opts *o)
{
    o->nprompts = 0;
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 65536 || o->nprompts == MAX_PROMPTS) return -1; /* no silent truncation */
        o->prompts[o->nprompts++] = v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return o->nprompts ? 0 : -1;
}

static int parse_args(int argc, char **argv, struct pfab_opts *o)
{
    static const struct option longopts[] = {
        QN_CLI_COMMON_LONGOPTS,
        { "prompts", required_argument, 0, OPT_PROMPTS }, { "reps", required_argument, 0, OPT_REPS },
        { "chunk", required_argument, 0, OPT_CHUNK }, { "variant", required_argument, 0, OPT_VARIANT },
        { "decode", required_argument, 0, OPT_DECODE }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int opt, bad = 0;
    optind = 1;
    while (!bad && (opt = getopt_long(argc, argv, "m:vh", longopts, NULL)) != -1) {
        int r = qn_cli_common_opt(&o->c, opt, optarg);
        if (r) { bad = r < 0; continue; }
        switch (opt) {
        case OPT_PROMPTS:
            if ((bad = parse_prompts(optarg, o) < 0)) fprintf(stderr, "qnext prefill-ab: --prompts N,N,.. (1 .. 65536, at most %d sizes)\n", MAX_PROMPTS);
            break;
        case OPT_REPS: bad = qn_cli_int("prefill-ab", "--reps", optarg, 1, 100, &o->reps) < 0; break;
        case OPT_CHUNK: bad = qn_cli_int("prefill-ab", "--chunk", optarg, 1, 1 << 16, &o->chunk) < 0; break;
        case OPT_DECODE: bad = qn_cli_int("prefill-ab", "--decode", optarg, 0, 4096, &o->decode) < 0; break;
        case OPT_VARIANT:
            if (o->nvar >= MAX_VARIANTS) { fprintf(stderr, "qnext prefill-ab: at most %d variants\n", MAX_VARIANTS); bad = 1; }
            else o->var[o->nvar++] = optarg;
            break;
        case 'h': fputs(help, stdout); return 1;
        default: return -qn_cli_usage_error("prefill-ab");
        }
    }
    if (bad) return -2;
    if (!o->c.model || optind < argc || o->c.backend != QN_BACKEND_VULKAN) {
        fprintf(stderr, "qnext prefill-ab: needs -m MODEL, the Vulkan backend and no other arguments\n");
        return -qn_cli_usage_error("prefill-ab");
    }
    if (!o->nvar) o->var[o->nvar++] = "-";
    return 0;
}

/* Set (on) or unset the NAME=VALUE words of a variant. */
static int apply_env(const char *spec, bool on)
{
    char buf[512], *save = NULL;
    if (strlen(spec) >= sizeof buf) return qn_fail(-EINVAL, "variant '%s' is too long", spec);
    strcpy(buf, spec);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(w, '=');
        if (!strcmp(w, "-") || !strncmp(w, "PROFILE=", 8)) continue;
        if (!eq || eq == w) return qn_fail(-EINVAL, "variant word '%s' is not NAME=VALUE", w);
        *eq = 0;
        if (on ? setenv(w, eq + 1, 1) : unsetenv(w)) return qn_fail(-errno, "setenv %s: %s", w, strerror(errno));
    }
    return 0;
}

/* The N of a PROFILE=N word in a variant (0: none). */
static long profile_tokens(const char *var)
{
    const char *p = strstr(var, "PROFILE=");
    return p && (p == var || p[-1] == ' ') ? strtol(p + 8, NULL, 10) : 0;
}

/* A PROFILE=N variant: one unprofiled call, then the profiled N-token prompt and the profile. */
static int profile_variant(const struct qn_vk_stack *st, struct qn_session_params sp, const char *var, long n,
                           const int32_t *ids)
{
    qn_session *s = NULL;
    int32_t next;
    sp.profile = true;
    if (n + 1 > (long)sp.ctx) sp.ctx = (uint32_t)n + 1;
    int rc = qn_session_new(&s, st->m, &sp);
    if (!rc) rc = qn_session_greedy(s, ids, (int)n, &next, NULL); /* pipelines, clocks (counted too: see below) */
    qn_session_free(&s);
    if (!rc) rc = qn_session_new(&s, st->m, &sp);
    double a = qn_now_s();
    if (!rc) rc = qn_session_greedy(s, ids, (int)n, &next, NULL);
    double b = qn_now_s();
    if (!rc) {
        printf("prefill-ab [%s] profiled prompt %ld: %.4f s = %.0f tok/s (chunk %u)\n", var, n, b - a, n / (b - a),
               qn_session_chunk(s));
        qn_session_profile(s, stdout);
    }
    qn_session_free(&s);
    return rc;
}

/* One variant: a session with its environment, each prompt size best of reps, then decode steps. */
static int run_variant(const struct pfab_opts *o, const struct qn_vk_stack *st, const char *var, const int32_t *ids,
                       double tps[MAX_PROMPTS])
{
    struct qn_session_params sp;
    qn_session_default_params(&sp);
    sp.chunk = (uint32_t)o->chunk;
    qn_vk_stack_tune(&st->board, &sp.tune);
    for (int i = 0; i < o->nprompts; i++)
        if ((uint64_t)o->prompts[i] + (uint64_t)o->decode > sp.ctx) sp.ctx = (uint32_t)(o->prompts[i] + o->decode);
    qn_session *s = NULL;
    int rc = apply_env(var, true);
    long pn = profile_tokens(var);
    if (pn > 0) {
        if (!rc) rc = profile_variant(st, sp, var, pn, ids);
        int rc2 = apply_env(var, false);
        return rc ? rc : rc2;
    }
    if (!rc) rc = qn_session_new(&s, st->m, &sp);
    for (int i = 0; !rc && i < o->nprompts; i++) {
        int n = (int)o->prompts[i];
        double best = 1e30;
        int32_t next = -1;
        for (int rep = 0; !rc && rep < o->reps; rep++) {
            double a = qn_now_s();
            if (!(rc = qn_session_reset(s))) rc = qn_session_greedy(s, ids, n, &next, NULL);
            double b = qn_now_s();
            if (b - a < best) best = b - a;
        }
        if (!rc) tps[i] = n / best;
        if (!rc)
            printf("prefill-ab [%s] prompt %5d: %.4f s = %7.0f tok/s (chunk %u, next %d)\n", var, n, best, n / best,
                   qn_session_chunk(s), next);
        if (!rc && i + 1 == o->nprompts && o->decode > 0) {
            double a = qn_now_s();
            for (long d = 0; !rc && d < o->decode; d++) rc = qn_session_greedy(s, &next, 1, &next, NULL);
            double b = qn_now_s();
            if (!rc) printf("prefill-ab [%s] decode %ld tokens: %.2f tok/s\n", var, o->decode, o->decode / (b - a));
        }
        fflush(stdout);
    }
    qn_session_free(&s);
    int rc2 = apply_env(var, false);
    return rc ? rc : rc2;
}

/* Unmeasured work before the first variant (H100 run 18b: the first variant of a list read ~8% slow while the GPU
 * clocked up): greedy prefill of up to 512 prompt tokens plus 16 decode steps, repeated for QNEXT_BENCH_WARM_MS
 * (default 2000) ms of wall time, at least once, in a session with the environment as given. */
static int warm_up(const struct qn_vk_stack *st, const int32_t *ids, long maxp)
{
    const char *e = getenv("QNEXT_BENCH_WARM_MS");
    double until = qn_now_s() + (e && *e ? atof(e) : 2000.0) / 1000.0;
    struct qn_session_params sp;
    qn_session_default_params(&sp);
    qn_vk_stack_tune(&st->board, &sp.tune);
    qn_session *s = NULL;
    int n = maxp < 512 ? (int)maxp : 512, rc = qn_session_new(&s, st->m, &sp);
    do {
        int32_t next = -1;
        if (!rc && !(rc = qn_session_reset(s))) rc = qn_session_greedy(s, ids, n, &next, NULL);
        for (int d = 0; !rc && d < 16; d++) rc = qn_session_greedy(s, &next, 1, &next, NULL);
    } while (!rc && qn_now_s() < until);
    qn_session_free(&s);
    return rc;
}

/* The tok/s of every (variant, prompt) as one table (profiled variants and failed cells: -). */
static void print_table(const struct pfab_opts *o, double tps[MAX_VARIANTS][MAX_PROMPTS])
{
    printf("prefill-ab table (prompt tok/s)\n  %-8s", "prompt");
    for (int i = 0; i < o->nprompts; i++) printf(" %7ld", o->prompts[i]);
    printf("  variant\n");
    for (int v = 0; v < o->nvar; v++) {
        if (profile_tokens(o->var[v]) > 0) continue;
        printf("  %-8s", "");
        for (int i = 0; i < o->nprompts; i++) {
            if (tps[v][i] > 0) printf(" %7.0f", tps[v][i]);
            else printf(" %7s", "-");
        }
        printf("  %s\n", o->var[v]);
    }
}

static int prefill_ab(const struct pfab_opts *o)
{
    struct qn_session_params sp;
    qn_session_default_params(&sp);
    sp.chunk = 512; /* the stack's own session only loads; each variant opens its own */
    struct qn_vk_stack st;
    int rc = qn_vk_stack_open(&st, &o->c, sp);
    if (rc) return rc;
    qn_session_free(&st.s);
    printf("prefill-ab: '%s', model loaded in %.1f s\n", qn_vk_caps(st.v)->name, st.load_s);
    long maxp = 0;
    for (int i = 0; i < o->nprompts; i++) maxp = o->prompts[i] > maxp ? o->prompts[i] : maxp;
    for (int v = 0; v < o->nvar; v++) maxp = profile_tokens(o->var[v]) > maxp ? profile_tokens(o->var[v]) : maxp;
    int32_t *ids = malloc(sizeof *ids * (size_t)maxp);
    if (!ids) rc = qn_fail(-ENOMEM, "out of memory");
    qn_rng rng;
    qn_rng_seed(&rng, 1234);
    for (long i = 0; ids && i < maxp; i++) ids[i] = (int32_t)(qn_rng_u64(&rng) % (uint64_t)st.m->c.vocab_size);
    double tps[MAX_VARIANTS][MAX_PROMPTS] = { { 0 } };
    if (!rc) rc = warm_up(&st, ids, maxp);
    for (int v = 0; !rc && v < o->nvar; v++) {
        rc = run_variant(o, &st, o->var[v], ids, tps[v]);
        if (rc) { /* report and go on: one broken variant should not hide the others */
            printf("prefill-ab [%s] FAILED: %s\n", o->var[v], qn_errmsg());
            rc = 0;
        }
    }
    print_table(o, tps);
    free(ids);
    qn_vk_stack_close(&st);
    return rc;
}

int qn_cmd_prefill_ab(int argc, char **argv)
{
    struct pfab_opts o = { .reps = 2 };
    qn_cli_common_defaults(&o.c);
    static const long defp[] = { 32, 128, 512, 2048, 4096 };
    for (int i = 0; i < 5; i++) o.prompts[i] = defp[i];
    o.nprompts = 5;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc > 0 ? 0 : -rc;
    return qn_cli_report("prefill-ab", prefill_ab(&o));
}
