/* cmd_quantize.c — `qnext quantize`: a Hugging Face qwen3_next checkpoint -> a llama.cpp qwen3next GGUF of a
 * chosen file type. The work is loader/gguf_convert.h; this file parses options, guards the output (no
 * overwrite without --force, free space), shows progress, reports type fallbacks, and turns Ctrl-C into a
 * clean stop that removes the partial output. */
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
#include "gguf_convert.h"
#include "qn_err.h"
#include "quant.h"
#include "synth.h"

int qn_cmd_quantize(int argc, char **argv);

enum { OPT_TYPE = QN_OPT_FIRST_FREE, OPT_TOKENIZER, OPT_FORCE, OPT_PROGRESS, OPT_NO_PROGRESS, OPT_THREADS };

static const char help[] =
    "usage: qnext quantize -m HF_DIR -o OUT.gguf --type TYPE [--tokenizer FILE] [--force] [-v]\n\n"
    "Converts a Hugging Face qwen3_next checkpoint (config.json + safetensors, F32/F16/BF16) into a llama.cpp\n"
    "'qwen3next' GGUF as llama.cpp's converter and llama-quantize would write it: names, metadata, transforms\n"
    "(norms stored 1 + w, ssm_a = -exp(A_log), in_proj_qkvz split into attn_qkv + attn_gate, stacked experts)\n"
    "and llama.cpp's stock type mix for TYPE. Streams tensor by tensor (experts one at a time) in bounded memory.\n\n"
    "  -m, --model DIR        the checkpoint folder\n"
    "  -o, --output PATH      the GGUF file to write\n"
    "      --type TYPE        one of f32, f16, bf16, q8_0, q4_0, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k\n"
    "      --tokenizer FILE   tokenizer.json for tokenizer.ggml.* (default: DIR/tokenizer.json when present,\n"
    "                         else a placeholder vocabulary of the right size)\n"
    "      --force            replace an existing output\n"
    "      --progress         progress bar on stderr even when it is not a terminal (--no-progress: never)\n"
    "      --threads N        quantizer threads (default: one per CPU; K-quants run at a few MB/s per core)\n"
    "  -v, --verbose          name every tensor that fell back to another type (default: the first 10)\n"
    "  -h, --help             this text\n\n"
    "Rows that do not fit the type's block (K-quants need multiples of 256 values) fall back as llama-quantize\n"
    "does: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 when 32 does not divide the row either (Q8_0 and\n"
    "Q4_0 rows: F16). Each such tensor is named with its shape and the type it got (the first 10; -v: all).\n";

typedef struct opts {
    const char *model, *out, *type, *tokenizer;
    int force, progress, verbose;
    long threads;
} opts;



/* 0 = go on, 1 = --help printed, 2 = usage error. */
static int parse(opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"output", required_argument, 0, 'o'},
        {"type", required_argument, 0, OPT_TYPE}, {"tokenizer", required_argument, 0, OPT_TOKENIZER},
        {"force", no_argument, 0, OPT_FORCE}, {"progress", no_argument, 0, OPT_PROGRESS},
        {"no-progress", no_argument, 0, OPT_NO_PROGRESS}, {"verbose", no_argument, 0, 'v'},
        {"threads", required_argument, 0, OPT_THREADS},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:o:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': o->model = optarg; break;
        case 'o': o->out = optarg; break;
        case OPT_TYPE: o->type = optarg; break;
        case OPT_TOKENIZER: o->tokenizer = optarg; break;
        case OPT_FORCE: o->force = 1; break;
        case OPT_PROGRESS: o->progress = 1; break;
        case OPT_NO_PROGRESS: o->progress = 0; break;
        case 'v': o->verbose = 1; break;
        case OPT_THREADS:
            if (qn_cli_int("quantize", "--threads", optarg, 1, 64, &o->threads)) return 2;
            break;
        case 'h': fputs(help, stdout); return 1;
        default: return qn_cli_usage_error("quantize");
        }
    }
    const char *miss = optind < argc ? NULL : !o->model ? "no model folder (-m DIR)" : !o->out ? "no output (-o OUT.gguf)"
                     : !o->type ? "no --type" : NULL;
    if (optind < argc) fprintf(stderr, "qnext quantize: unexpected argument '%s'\n", argv[optind]);
    if (miss) fprintf(stderr, "qnext quantize: %s\n", miss);
    if (optind < argc || miss) return qn_cli_usage_error("quantize");
    if (qn_synth_ftype_parse(o->type) < 0) {
        fprintf(stderr, "qnext quantize: --type: '%s' is not one of %s\n", o->type, qn_synth_ftype_list());
        return qn_cli_usage_error("quantize");
    }
    return 0;
}

/* Refuse an existing output without --force; `where` receives the folder whose free space counts. */
static int guard_output(const char *out, int force, char *where, size_t cap)
{
    struct stat st;
    snprintf(where, cap, "%s", out);
    char *slash = strrchr(where, '/');
    if (slash) slash[slash == where] = 0;
    else snprintf(where, cap, ".");
    if (stat(out, &st)) return 0;
    if (S_ISDIR(st.st_mode)) return qn_fail(-EISDIR, "%s is a folder (the output is a GGUF file)", out);
    if (!force) return qn_fail(-EEXIST, "%s exists (use --force to replace it)", out);
    return 0;
}

static int convert_job(void *arg)
{
    void **a = arg;
    return qn_conv_write(a[0], a[1]);
}

static void describe(const qn_conv *cv, const opts *o)
{
    const qn_synth_plan *p = qn_conv_plan(cv);
    const qn_config *c = qn_conv_config(cv);
    char a[32], b[32];
    printf("qnext quantize: %s -> %s: %s, %d layers, %d experts, hidden %d: %d tensors, %s in, %s out; tokenizer: %s\n",
           o->model, o->out, o->type, c->num_layers, c->num_experts, c->hidden_size, qn_synth_plan_count(p),
           qn_cli_bytes(qn_conv_input_bytes(cv), a, sizeof a), qn_cli_bytes(qn_synth_plan_file_bytes(p), b, sizeof b),
           qn_conv_tokenizer(cv) ? qn_conv_tokenizer(cv) : "placeholder vocabulary");
    if (!c->norm_topk_prob)
        printf("qnext quantize: note: the checkpoint has norm_topk_prob false; GGUF has no key for it and llama.cpp's "
               "qwen3next graph always renormalises the top-k expert weights, so outputs will differ from HF's\n");
    int nfb = qn_conv_fallback_count(cv), show = o->verbose || nfb <= 12 ? nfb : 10;
    char line[256];
    if (nfb)
        printf("qnext quantize: %d tensors have rows that do not fit the block of their %s type and fell back "
               "(llama.cpp's rule):\n", nfb, o->type);
    for (int i = 0; i < show; i++) printf("  %s\n", qn_synth_fallback_desc(qn_conv_fallback_at(cv, i), line, sizeof line));
    if (show < nfb) printf("  ... and %d more (-v names them all)\n", nfb - show);
    fflush(stdout);
}

static int convert(qn_conv *cv, const opts *o, qn_progress *pr)
{
    char where[4096];
    uint64_t avail = 0;
    int rc = guard_output(o->out, o->force, where, sizeof where);
    if (!rc) rc = qn_synth_space_avail(where, &avail);
    if (!rc) rc = qn_synth_space_check(qn_synth_plan_file_bytes(qn_conv_plan(cv)), avail, o->out);
    if (rc) return rc;
    double el = 0;
    void *job[2] = { cv, (void *)o->out };
    rc = qn_progress_run(pr, convert_job, job, &el);
    char a[32];
    if (!rc)
        printf("qnext quantize: wrote %s in %.2f s (%.1f MB/s of input)\n",
               qn_cli_bytes(qn_synth_plan_file_bytes(qn_conv_plan(cv)), a, sizeof a), el,
               el > 0 ? (double)qn_conv_input_bytes(cv) / 1e6 / el : 0.0);
    return rc;
}

int qn_cmd_quantize(int argc, char **argv)
{
    opts o = {.progress = isatty(2)};
    int r = parse(&o, argc, argv);
    if (r) return r == 1 ? 0 : r;
    qn_progress pr = {.show = o.progress};
    qn_conv_opts co = {.ftype = qn_synth_ftype_parse(o.type), .tokenizer_json = o.tokenizer, .progress = qn_progress_cb,
                       .user = &pr, .threads = (int)o.threads};
    qn_conv *cv = NULL;
    int rc = qn_conv_open(&cv, o.model, &co);
    if (!rc) describe(cv, &o);
    if (!rc) rc = convert(cv, &o, &pr);
    qn_conv_close(&cv);
    if (rc == -ECANCELED) {
        fprintf(stderr, "qnext quantize: interrupted; the partial output was removed\n");
        return 130;
    }
    return qn_cli_report("quantize", rc);
}
