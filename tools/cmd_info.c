/* cmd_info.c — `qnext info -m PATH`: what a model is and what running it costs. A Hugging Face folder (or
 * .safetensors / index file) or a llama.cpp qwen3next .gguf: config summary, tensor count, bytes by dtype,
 * resident (dense) bytes vs routed-expert bytes, bytes per expert, bytes read per decoded token, KV cache
 * and recurrent state sizes, and whether qnext's loader accepts the file; --json for scripts. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"
#include "gguf.h"
#include "gguf_qwen3next.h"
#include "qn_err.h"
#include "quant.h"
#include "safetensors.h"
#include "synth.h"

int qn_cmd_info(int argc, char **argv);

enum { OPT_JSON = QN_OPT_FIRST_FREE };

static const char help[] =
    "usage: qnext info -m PATH [--json]\n\n"
    "Describes a qwen3_next model: a Hugging Face folder (config.json + safetensors), a .safetensors or\n"
    "model.safetensors.index.json file, or a llama.cpp qwen3next .gguf. Prints the config, the tensors and\n"
    "their bytes by type, the dense (always resident) bytes and the routed-expert bytes, the bytes of one\n"
    "expert, the weight bytes one decoded token reads (dense without the embedding table, one embedding row,\n"
    "and top_k experts in every layer), the KV cache per token (f16 and f32) and the recurrent state per\n"
    "sequence (f32), and whether qnext's loader accepts the file (check: ok or the reason).\n\n"
    "  -m, --model PATH       the model\n"
    "      --json             one JSON object instead of text\n"
    "  -h, --help             this text\n";

#define MAX_TYPES 48

typedef struct tstat { char name[24]; uint64_t n, bytes; } tstat;

typedef struct info {
    const char *path;
    char format[96], ftype[32], check[512];
    int check_ok, have_cfg, n_mtp_layers, nfiles;
    qn_config cfg;
    uint64_t n_tensors, n_mtp, mtp_bytes, file_bytes;
    tstat types[MAX_TYPES];
    int ntypes;
    uint64_t dense_bytes, expert_bytes, embed_bytes, embed_row_bytes, params, expert_params, layer_expert[QN_CFG_MAX_LAYERS];
} info;

static void add_type(info *in, const char *name, uint64_t bytes)
{
    int i = 0;
    while (i < in->ntypes && strcmp(in->types[i].name, name)) i++;
    if (i == in->ntypes) {
        if (in->ntypes == MAX_TYPES) return;
        snprintf(in->types[in->ntypes++].name, sizeof in->types[0].name, "%s", name);
    }
    in->types[i].n++;
    in->types[i].bytes += bytes;
}

/* One tensor of the main model: layer >= 0 with expert != 0 marks a routed-expert tensor. */
static void add_tensor(info *in, const char *type, uint64_t bytes, uint64_t numel, int layer, int expert)
{
    in->n_tensors++;
    in->params += numel;
    add_type(in, type, bytes);
    if (expert && layer >= 0 && layer < QN_CFG_MAX_LAYERS) {
        in->expert_bytes += bytes;
        in->expert_params += numel;
        in->layer_expert[layer] += bytes;
    } else {
        in->dense_bytes += bytes;
    }
}

static void set_check(info *in, int rc)
{
    in->check_ok = !rc;
    snprintf(in->check, sizeof in->check, "%s", rc ? qn_errmsg() : "ok");
}

/* ---------------------------------------------------------------- safetensors */

static int config_dir(const char *path, char *dir, size_t cap)
{
    struct stat st;
    if (stat(path, &st)) return qn_fail(-errno, "%s: %s", path, strerror(errno));
    snprintf(dir, cap, "%s", path);
    if (!S_ISDIR(st.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, cap, ".");
    }
    return 0;
}

static void st_tensor(info *in, const qn_st_tensor *t)
{
    int layer = -1, n = 0;
    if (!strncmp(t->name, "mtp.", 4)) {
        in->n_mtp++;
        in->mtp_bytes += t->nbytes;
        return;
    }
    sscanf(t->name, "model.layers.%d.%n", &layer, &n);
    int expert = n > 0 && !strncmp(t->name + n, "mlp.experts.", 12);
    if (!strcmp(t->name, "model.embed_tokens.weight")) {
        in->embed_bytes = t->nbytes;
        in->embed_row_bytes = t->ndim == 2 && t->shape[0] ? t->nbytes / (uint64_t)t->shape[0] : 0;
    }
    add_tensor(in, qn_dtype_name(t->dtype), t->nbytes, (uint64_t)qn_st_numel(t), layer, expert);
}

static int info_safetensors(info *in)
{
    char dir[4096];
    int rc = config_dir(in->path, dir, sizeof dir);
    if (!rc) rc = qn_cfg_load(&in->cfg, dir);
    if (rc) return rc;
    in->have_cfg = 1;
    qn_st_store *s;
    if ((rc = qn_st_open(&s, in->path))) return rc;
    in->nfiles = qn_st_nfiles(s);
    for (int f = 0; f < in->nfiles; f++) {
        struct stat st;
        if (!stat(qn_st_file_path(s, f), &st)) in->file_bytes += (uint64_t)st.st_size;
    }
    snprintf(in->format, sizeof in->format, "safetensors (%d file%s)", in->nfiles, in->nfiles == 1 ? "" : "s");
    snprintf(in->ftype, sizeof in->ftype, "-");
    for (int i = 0; i < qn_st_count(s); i++) st_tensor(in, qn_st_at(s, i));
    set_check(in, qn_st_check_model(s, &in->cfg, 0));
    qn_st_close(&s);
    return 0;
}

/* ---------------------------------------------------------------- gguf */

static void gguf_tensor(info *in, const qn_gguf_tensor *t)
{
    int layer = -1;
    sscanf(t->name, "blk.%d.", &layer);
    uint64_t numel = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    if (in->have_cfg && layer >= in->cfg.num_layers) {
        in->n_mtp++;
        in->mtp_bytes += t->nbytes;
        return;
    }
    if (!strcmp(t->name, "token_embd.weight")) {
        in->embed_bytes = t->nbytes;
        in->embed_row_bytes = t->row_bytes;
    }
    add_tensor(in, qn_ggml_type_name(t->type), t->nbytes, numel, layer, strstr(t->name, "_exps.") != NULL);
}

static void gguf_ftype(info *in, const qn_gguf *g)
{
    uint32_t ft;
    const char *n = NULL;
    if (qn_gguf_find_kv(g, "general.file_type") && !qn_gguf_get_u32(g, "general.file_type", &ft))
        n = qn_synth_ftype_name((int)ft);
    snprintf(in->ftype, sizeof in->ftype, "%s", n ? n : qn_gguf_find_kv(g, "general.file_type") ? "other" : "-");
}

static int info_gguf(info *in)
{
    qn_gguf *g;
    int rc = qn_gguf_open(&g, in->path);
    if (rc) return rc;
    in->nfiles = 1;
    in->file_bytes = qn_gguf_file_size(g);
    snprintf(in->format, sizeof in->format, "gguf v%u", qn_gguf_version(g));
    gguf_ftype(in, g);
    rc = qn_q3n_read_config(g, &in->cfg, &in->n_mtp_layers);
    in->have_cfg = !rc;
    if (rc) set_check(in, rc);
    for (uint64_t i = 0; i < qn_gguf_n_tensors(g); i++) gguf_tensor(in, qn_gguf_tensor_at(g, i));
    if (in->have_cfg) {
        qn_q3n *m = NULL;
        set_check(in, qn_q3n_open(&m, g));
        qn_q3n_close(&m);
    }
    qn_gguf_close(&g);
    return 0;
}

/* ---------------------------------------------------------------- derived numbers */

typedef struct derived {
    uint64_t per_expert, per_token, kv_f16, state_ssm, state_conv, active_params;
    int n_full, n_linear;
} derived;

static derived derive(const info *in)
{
    derived d = {0};
    const qn_config *c = &in->cfg;
    if (!in->have_cfg) return d;
    d.n_full = qn_cfg_count_full(c);
    d.n_linear = c->num_layers - d.n_full;
    uint64_t E = (uint64_t)c->num_experts, K = (uint64_t)c->top_k, per_layer_sum = 0;
    for (int l = 0; l < c->num_layers; l++) per_layer_sum += in->layer_expert[l] / E;
    d.per_expert = c->num_layers ? per_layer_sum / (uint64_t)c->num_layers : 0;
    uint64_t embed = c->tie_word_embeddings ? 0 : in->embed_bytes - in->embed_row_bytes;  /* tied: it is lm_head */
    d.per_token = in->dense_bytes - embed + K * per_layer_sum;
    d.kv_f16 = (uint64_t)d.n_full * 2 * (uint64_t)qn_cfg_kv_dim(c) * 2;
    d.state_ssm = (uint64_t)d.n_linear * (uint64_t)c->lin_v_heads * (uint64_t)c->lin_k_dim * (uint64_t)c->lin_v_dim * 4;
    d.state_conv = (uint64_t)d.n_linear * (uint64_t)qn_cfg_conv_dim(c) * (uint64_t)(c->conv_kernel - 1) * 4;
    d.active_params = in->params - in->expert_params + (E ? K * in->expert_params / E : 0);
    return d;
}

/* ---------------------------------------------------------------- output */

/* A parameter count: "79.674 B", "1.692 M", "12.3 k". */
static const char *count_str(uint64_t n, char *buf, size_t cap)
{
    if (n >= 1000000000ull) snprintf(buf, cap, "%.3f B", (double)n / 1e9);
    else if (n >= 1000000ull) snprintf(buf, cap, "%.3f M", (double)n / 1e6);
    else snprintf(buf, cap, "%.1f k", (double)n / 1e3);
    return buf;
}

static void print_config(const qn_config *c, int n_full)
{
    printf("config: %d layers (%d Gated DeltaNet + %d full attention), hidden %d, vocab %d%s\n", c->num_layers,
           c->num_layers - n_full, n_full, c->hidden_size, c->vocab_size, c->tie_word_embeddings ? " (tied lm_head)" : "");
    printf("        attention %d q / %d kv heads x %d (rotary %d), DeltaNet %d k / %d v heads x %d / %d, conv %d\n",
           c->num_heads, c->num_kv_heads, c->head_dim, qn_cfg_rot_dim(c), c->lin_k_heads, c->lin_v_heads, c->lin_k_dim,
           c->lin_v_dim, c->conv_kernel);
    printf("        MoE %d experts, top %d, expert FF %d, shared expert FF %d; rope theta %g%s\n", c->num_experts,
           c->top_k, c->moe_inter, c->shared_inter, c->rope_theta, c->rope_type == QN_ROPE_YARN ? " (YaRN)" : "");
}

static void print_text(const info *in, const derived *d)
{
    char a[32], b[32], e[32];
    printf("model: %s\nformat: %s, file type %s, %s on disk\n", in->path, in->format, in->ftype,
           qn_cli_bytes(in->file_bytes, a, sizeof a));
    if (in->have_cfg) print_config(&in->cfg, d->n_full);
    printf("tensors: %llu", (unsigned long long)in->n_tensors);
    if (in->n_mtp) printf(" (+%llu MTP tensors, %s, not used)", (unsigned long long)in->n_mtp, qn_cli_bytes(in->mtp_bytes, a, sizeof a));
    printf("; by type:");
    for (int i = 0; i < in->ntypes; i++)
        printf("%s %llu %s (%s)", i ? "," : "", (unsigned long long)in->types[i].n, in->types[i].name,
               qn_cli_bytes(in->types[i].bytes, a, sizeof a));
    printf("\nparameters: %s, routed experts %s; active per token %s\n", count_str(in->params, a, sizeof a),
           count_str(in->expert_params, b, sizeof b), count_str(d->active_params, e, sizeof e));
    printf("dense (resident): %s, of which embedding table %s\n", qn_cli_bytes(in->dense_bytes, a, sizeof a),
           qn_cli_bytes(in->embed_bytes, b, sizeof b));
    if (!in->have_cfg) return;
    printf("routed experts: %s; one expert (gate + up + down, one layer): %s\n", qn_cli_bytes(in->expert_bytes, a, sizeof a),
           qn_cli_bytes(d->per_expert, b, sizeof b));
    printf("read per decoded token: %s (dense without the embedding table + one row, + %d experts x %d layers of %s)\n",
           qn_cli_bytes(d->per_token, a, sizeof a), in->cfg.top_k, in->cfg.num_layers, qn_cli_bytes(d->per_expert, e, sizeof e));
    printf("KV cache: %llu B per token at f16 (%d layers x 2 x %d kv heads x %d), %llu at f32\n",
           (unsigned long long)d->kv_f16, d->n_full, in->cfg.num_kv_heads, in->cfg.head_dim,
           (unsigned long long)(2 * d->kv_f16));
    printf("recurrent state per sequence (f32): %s DeltaNet (%d x %d x %d x %d) + %s conv (%d x %d x %d)\n",
           qn_cli_bytes(d->state_ssm, a, sizeof a), d->n_linear, in->cfg.lin_v_heads, in->cfg.lin_k_dim, in->cfg.lin_v_dim,
           qn_cli_bytes(d->state_conv, b, sizeof b), d->n_linear, qn_cfg_conv_dim(&in->cfg), in->cfg.conv_kernel - 1);
    printf("check: %s\n", in->check);
}

static void json_config(cJSON *o, const qn_config *c)
{
    cJSON *j = cJSON_AddObjectToObject(o, "config");
    int v[] = {c->num_layers, c->hidden_size, c->vocab_size, c->num_heads, c->num_kv_heads, c->head_dim, c->lin_k_heads,
               c->lin_v_heads, c->lin_k_dim, c->lin_v_dim, c->conv_kernel, c->num_experts, c->top_k, c->moe_inter,
               c->shared_inter, qn_cfg_count_full(c)};
    const char *k[] = {"num_layers", "hidden_size", "vocab_size", "num_heads", "num_kv_heads", "head_dim",
                       "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
                       "conv_kernel", "num_experts", "top_k", "moe_intermediate_size", "shared_expert_intermediate_size",
                       "full_attention_layers"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) cJSON_AddNumberToObject(j, k[i], v[i]);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_word_embeddings);
}

static void print_json(const info *in, const derived *d)
{
    cJSON *o = cJSON_CreateObject(), *types = cJSON_AddObjectToObject(o, "types");
    cJSON_AddStringToObject(o, "path", in->path);
    cJSON_AddStringToObject(o, "format", in->format);
    cJSON_AddStringToObject(o, "file_type", in->ftype);
    if (in->have_cfg) json_config(o, &in->cfg);
    for (int i = 0; i < in->ntypes; i++) {
        cJSON *t = cJSON_AddObjectToObject(types, in->types[i].name);
        cJSON_AddNumberToObject(t, "tensors", (double)in->types[i].n);
        cJSON_AddNumberToObject(t, "bytes", (double)in->types[i].bytes);
    }
    const char *k[] = {"file_bytes", "tensors", "mtp_tensors", "mtp_bytes", "params", "expert_params", "active_params",
                       "dense_bytes", "embedding_bytes", "expert_bytes", "bytes_per_expert", "bytes_per_token",
                       "kv_bytes_per_token_f16", "kv_bytes_per_token_f32", "state_bytes_deltanet", "state_bytes_conv"};
    uint64_t v[] = {in->file_bytes, in->n_tensors, in->n_mtp, in->mtp_bytes, in->params, in->expert_params,
                    d->active_params, in->dense_bytes, in->embed_bytes, in->expert_bytes, d->per_expert, d->per_token,
                    d->kv_f16, 2 * d->kv_f16, d->state_ssm, d->state_conv};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) cJSON_AddNumberToObject(o, k[i], (double)v[i]);
    cJSON_AddBoolToObject(o, "check_ok", in->check_ok);
    cJSON_AddStringToObject(o, "check", in->check);
    char *s = cJSON_Print(o);
    if (s) puts(s);
    free(s);
    cJSON_Delete(o);
}

/* ---------------------------------------------------------------- main */

static int is_gguf(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char m[4] = {0};
    int yes = f && fread(m, 1, 4, f) == 4 && !memcmp(m, "GGUF", 4);
    if (f) fclose(f);
    return yes;
}

int qn_cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"json", no_argument, 0, OPT_JSON}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    info *in = calloc(1, sizeof *in);
    int json = 0, opt;
    if (!in) return qn_cli_report("info", qn_fail(-ENOMEM, "out of memory"));
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': in->path = optarg; break;
        case OPT_JSON: json = 1; break;
        case 'h': fputs(help, stdout); free(in); return 0;
        default: free(in); return qn_cli_usage_error("info");
        }
    }
    if (optind < argc || !in->path) {
        if (optind < argc) fprintf(stderr, "qnext info: unexpected argument '%s'\n", argv[optind]);
        else fprintf(stderr, "qnext info: no model given (-m PATH)\n");
        free(in);
        return qn_cli_usage_error("info");
    }
    int rc = is_gguf(in->path) ? info_gguf(in) : info_safetensors(in);
    if (!rc) {
        derived d = derive(in);
        if (json) print_json(in, &d);
        else print_text(in, &d);
    }
    free(in);
    return qn_cli_report("info", rc);
}
