/* config.c — parse, validate and write qwen3_next config.json files (see config.h). */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qn_err.h"
#include "qn_file.h"

#define CFG_MAX_BYTES (16u << 20) /* a config.json is a few KiB; refuse absurd files */

/* ---- field readers: each names the file and the field on error ---- */

static int get_num(const cJSON *o, const char *key, const char *name, bool required, double lo, double hi,
                   double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return qn_fail(QN_E_FORMAT, "%s: required field '%s' is missing", name, key);
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return qn_fail(QN_E_FORMAT, "%s: field '%s' must be a number", name, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return qn_fail(QN_E_FORMAT, "%s: field '%s' = %.15g is outside [%.15g, %.15g]", name, key, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 1;
}

static int get_int(const cJSON *o, const char *key, const char *name, bool required, long lo, long hi, int *out)
{
    double d = 0;
    int rc = get_num(o, key, name, required, (double)lo, (double)hi, &d);
    if (rc <= 0) return rc;
    if (d != floor(d)) return qn_fail(QN_E_FORMAT, "%s: field '%s' = %g must be an integer", name, key, d);
    *out = (int)d;
    return 1;
}

static int get_i64(const cJSON *o, const char *key, const char *name, bool required, int64_t *out)
{
    double d = 0;
    int rc = get_num(o, key, name, required, 1, 9.0e15, &d);
    if (rc <= 0) return rc;
    if (d != floor(d)) return qn_fail(QN_E_FORMAT, "%s: field '%s' = %g must be an integer", name, key, d);
    *out = (int64_t)d;
    return 1;
}

static int get_bool(const cJSON *o, const char *key, const char *name, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return qn_fail(QN_E_FORMAT, "%s: field '%s' must be true or false", name, key);
    *out = cJSON_IsTrue(v);
    return 1;
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#define TRY(x) do { int rc_ = (x); if (rc_ < 0) return rc_; } while (0)

/* ---- parts of the config ---- */

static int parse_sizes(qn_config *c, const cJSON *j, const char *n)
{
    TRY(get_int(j, "hidden_size", n, true, 1, 1 << 20, &c->hidden_size));
    TRY(get_int(j, "num_hidden_layers", n, true, 1, QN_CFG_MAX_LAYERS, &c->num_layers));
    TRY(get_int(j, "vocab_size", n, true, 1, 1 << 24, &c->vocab_size));
    TRY(get_int(j, "num_attention_heads", n, true, 1, 4096, &c->num_heads));
    TRY(get_int(j, "num_key_value_heads", n, true, 1, 4096, &c->num_kv_heads));
    TRY(get_int(j, "head_dim", n, true, 2, 65536, &c->head_dim));
    TRY(get_int(j, "linear_num_key_heads", n, true, 1, 4096, &c->lin_k_heads));
    TRY(get_int(j, "linear_num_value_heads", n, true, 1, 4096, &c->lin_v_heads));
    TRY(get_int(j, "linear_key_head_dim", n, true, 1, 65536, &c->lin_k_dim));
    TRY(get_int(j, "linear_value_head_dim", n, true, 1, 65536, &c->lin_v_dim));
    TRY(get_int(j, "linear_conv_kernel_dim", n, true, 1, 64, &c->conv_kernel));
    TRY(get_int(j, "num_experts", n, true, 1, 65536, &c->num_experts));
    TRY(get_int(j, "num_experts_per_tok", n, true, 1, 65536, &c->top_k));
    TRY(get_int(j, "moe_intermediate_size", n, true, 1, 1 << 20, &c->moe_inter));
    TRY(get_int(j, "shared_expert_intermediate_size", n, true, 1, 1 << 20, &c->shared_inter));
    TRY(get_int(j, "intermediate_size", n, false, 1, 1 << 20, &c->intermediate_size));
    double eps = 1e-6;
    TRY(get_num(j, "rms_norm_eps", n, false, 1e-30, 1.0, &eps));
    c->rms_norm_eps = (float)eps;
    TRY(get_bool(j, "norm_topk_prob", n, &c->norm_topk_prob));
    TRY(get_bool(j, "tie_word_embeddings", n, &c->tie_word_embeddings));
    TRY(get_i64(j, "max_position_embeddings", n, false, &c->max_position_embeddings));
    return 0;
}

/* Features of the wider Qwen MoE family that qwen3_next checkpoints do not use: refuse them clearly. */
static int check_unsupported(const cJSON *j, const char *n)
{
    int step = 1;
    bool bias = false;
    TRY(get_int(j, "decoder_sparse_step", n, false, 1, 1 << 20, &step));
    if (step != 1) return qn_fail(QN_E_UNSUPPORTED, "%s: decoder_sparse_step = %d (dense MLP layers) is not supported", n, step);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "mlp_only_layers");
    if (m && !cJSON_IsNull(m) && (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 0))
        return qn_fail(QN_E_UNSUPPORTED, "%s: mlp_only_layers must be empty (dense MLP layers are not supported)", n);
    const char *act = get_str(j, "hidden_act");
    if (act && strcmp(act, "silu"))
        return qn_fail(QN_E_UNSUPPORTED, "%s: hidden_act '%s' is not supported (only silu)", n, act);
    TRY(get_bool(j, "attention_bias", n, &bias));
    if (bias) return qn_fail(QN_E_UNSUPPORTED, "%s: attention_bias = true is not supported", n);
    return 0;
}

static int parse_yarn(qn_config *c, const cJSON *r, const char *n)
{
    double f = 0, mscale = 0, mscale_all = 0, af = 0;
    c->rope_type = QN_ROPE_YARN;
    TRY(get_num(r, "factor", n, true, 1.0, 1e6, &f));
    c->yarn_factor = f;
    c->yarn_orig_max_pos = c->max_position_embeddings;
    TRY(get_i64(r, "original_max_position_embeddings", n, false, &c->yarn_orig_max_pos));
    TRY(get_num(r, "beta_fast", n, false, 1e-6, 1e6, &c->yarn_beta_fast));
    TRY(get_num(r, "beta_slow", n, false, 1e-6, 1e6, &c->yarn_beta_slow));
    TRY(get_bool(r, "truncate", n, &c->yarn_truncate));
    int has_ms = get_num(r, "mscale", n, false, 0, 1e6, &mscale);
    int has_msa = get_num(r, "mscale_all_dim", n, false, 0, 1e6, &mscale_all);
    int has_af = get_num(r, "attention_factor", n, false, 1e-6, 1e6, &af);
    TRY(has_ms);
    TRY(has_msa);
    TRY(has_af);
    /* HF: explicit attention_factor, else mscale(f, mscale) / mscale(f, mscale_all_dim), else 0.1 ln f + 1 */
    double base = f <= 1 ? 0 : 0.1 * log(f);
    if (has_af) c->rope_attn_factor = af;
    else if (mscale != 0 && mscale_all != 0)
        c->rope_attn_factor = (f <= 1 ? 1.0 : (base * mscale + 1.0) / (base * mscale_all + 1.0));
    else c->rope_attn_factor = base + 1.0;
    return 0;
}

/* The rope parameter object: legacy rope_scaling (may be null) or the newer rope_parameters. */
static int parse_rope_obj(qn_config *c, const cJSON *r, const char *n)
{
    const char *type = get_str(r, "rope_type");
    if (!type) type = get_str(r, "type");
    TRY(get_num(r, "rope_theta", n, false, 1.0 + 1e-9, 1e30, &c->rope_theta));
    TRY(get_num(r, "partial_rotary_factor", n, false, 1e-6, 1.0, &c->partial_rotary_factor));
    if (!type || !strcmp(type, "default")) return 0;
    if (!strcmp(type, "yarn")) return parse_yarn(c, r, n);
    return qn_fail(QN_E_UNSUPPORTED, "%s: rope type '%s' is not supported (only default and yarn)", n, type);
}

static int parse_rope(qn_config *c, const cJSON *j, const char *n)
{
    c->rope_theta = 0;
    TRY(get_num(j, "rope_theta", n, false, 1.0 + 1e-9, 1e30, &c->rope_theta));
    TRY(get_num(j, "partial_rotary_factor", n, false, 1e-6, 1.0, &c->partial_rotary_factor));
    const char *keys[2] = { "rope_parameters", "rope_scaling" };
    for (int i = 0; i < 2; i++) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
        if (!r || cJSON_IsNull(r)) continue;
        if (!cJSON_IsObject(r)) return qn_fail(QN_E_FORMAT, "%s: field '%s' must be an object or null", n, keys[i]);
        const cJSON *per = cJSON_GetObjectItemCaseSensitive(r, "full_attention"); /* per-layer-type form */
        if (cJSON_IsObject(per)) r = per;
        char where[4200];
        snprintf(where, sizeof where, "%s (in '%s')", n, keys[i]);
        TRY(parse_rope_obj(c, r, where));
        break;
    }
    if (!(c->rope_theta > 1.0)) return qn_fail(QN_E_FORMAT, "%s: required field 'rope_theta' is missing", n);
    return 0;
}

static int parse_layers(qn_config *c, const cJSON *j, const char *n)
{
    TRY(get_int(j, "full_attention_interval", n, false, 1, QN_CFG_MAX_LAYERS, &c->full_attention_interval));
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    if (!lt || cJSON_IsNull(lt)) {
        for (int i = 0; i < c->num_layers; i++)
            c->layer_types[i] = (i + 1) % c->full_attention_interval ? QN_LAYER_LINEAR : QN_LAYER_FULL;
        return 0;
    }
    if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != c->num_layers)
        return qn_fail(QN_E_FORMAT, "%s: field 'layer_types' must be an array of num_hidden_layers (%d) strings", n,
                       c->num_layers);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lt) {
        const char *s = cJSON_IsString(e) ? e->valuestring : "";
        if (!strcmp(s, "linear_attention")) c->layer_types[i] = QN_LAYER_LINEAR;
        else if (!strcmp(s, "full_attention")) c->layer_types[i] = QN_LAYER_FULL;
        else return qn_fail(QN_E_FORMAT, "%s: layer_types[%d] must be \"linear_attention\" or \"full_attention\"", n, i);
        i++;
    }
    return 0;
}

static int parse_tokens(qn_config *c, const cJSON *j, const char *n)
{
    TRY(get_int(j, "bos_token_id", n, false, 0, INT32_MAX, &c->bos_token_id));
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
    if (!e || cJSON_IsNull(e)) return 0;
    if (cJSON_IsNumber(e)) {
        TRY(get_int(j, "eos_token_id", n, false, 0, INT32_MAX, &c->eos_token_ids[0]));
        c->n_eos = 1;
        return 0;
    }
    if (!cJSON_IsArray(e)) return qn_fail(QN_E_FORMAT, "%s: field 'eos_token_id' must be an integer or a list", n);
    const cJSON *x;
    cJSON_ArrayForEach(x, e) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > INT32_MAX || x->valuedouble != floor(x->valuedouble))
            return qn_fail(QN_E_FORMAT, "%s: field 'eos_token_id' must hold token ids", n);
        if (c->n_eos < QN_CFG_MAX_EOS) c->eos_token_ids[c->n_eos++] = (int)x->valuedouble;
    }
    return 0;
}

void qn_cfg_defaults(qn_config *c)
{
    memset(c, 0, sizeof *c);
    c->rms_norm_eps = 1e-6f;
    c->norm_topk_prob = true;
    c->max_position_embeddings = 32768;
    c->partial_rotary_factor = 0.25;
    c->rope_type = QN_ROPE_DEFAULT;
    c->yarn_factor = 1.0;
    c->yarn_beta_fast = 32.0;
    c->yarn_beta_slow = 1.0;
    c->yarn_truncate = true;
    c->rope_attn_factor = 1.0;
    c->full_attention_interval = 4;
    c->bos_token_id = -1;
}

int qn_cfg_parse(qn_config *c, const char *json, size_t len, const char *name)
{
    qn_cfg_defaults(c);
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= json && at <= json + len ? (long)(at - json) : -1;
        return qn_fail(QN_E_FORMAT, "%s: invalid JSON (near byte %ld)", name, off);
    }
    int rc = 0;
    const char *mt = get_str(j, "model_type");
    if (!cJSON_IsObject(j)) rc = qn_fail(QN_E_FORMAT, "%s: the top level is not a JSON object", name);
    else if (!mt) rc = qn_fail(QN_E_FORMAT, "%s: field 'model_type' is missing (expected \"qwen3_next\")", name);
    else if (strcmp(mt, "qwen3_next"))
        rc = qn_fail(QN_E_UNSUPPORTED, "%s: model_type is \"%s\", not \"qwen3_next\"", name, mt);
    if (!rc) rc = parse_sizes(c, j, name);
    if (!rc) rc = check_unsupported(j, name);
    if (!rc) rc = parse_rope(c, j, name);
    if (!rc) rc = parse_layers(c, j, name);
    if (!rc) rc = parse_tokens(c, j, name);
    cJSON_Delete(j);
    if (rc < 0) return rc;
    return qn_cfg_validate(c, name);
}

int qn_cfg_load(qn_config *c, const char *path)
{
    char file[4096];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(file, sizeof file, "%s/config.json", path);
    else snprintf(file, sizeof file, "%s", path);
    char *buf;
    size_t n;
    int rc = qn_read_file(file, CFG_MAX_BYTES, &buf, &n);
    if (rc) return rc;
    rc = qn_cfg_parse(c, buf, n, file);
    free(buf);
    return rc;
}

int qn_cfg_rot_dim(const qn_config *c)
{
    return (int)((double)c->head_dim * c->partial_rotary_factor);
}

int qn_cfg_count_full(const qn_config *c)
{
    int n = 0;
    for (int i = 0; i < c->num_layers; i++) n += c->layer_types[i] == QN_LAYER_FULL;
    return n;
}

int qn_cfg_validate(const qn_config *c, const char *n)
{
    int rot = qn_cfg_rot_dim(c);
    if (c->num_layers < 1 || c->num_layers > QN_CFG_MAX_LAYERS)
        return qn_fail(QN_E_FORMAT, "%s: num_hidden_layers = %d is outside [1, %d]", n, c->num_layers, QN_CFG_MAX_LAYERS);
    if (c->hidden_size < 1 || c->vocab_size < 1 || c->head_dim < 2 || c->num_heads < 1 || c->num_kv_heads < 1 ||
        c->lin_k_heads < 1 || c->lin_v_heads < 1 || c->lin_k_dim < 1 || c->lin_v_dim < 1 || c->conv_kernel < 1 ||
        c->num_experts < 1 || c->top_k < 1 || c->moe_inter < 1 || c->shared_inter < 1)
        return qn_fail(QN_E_FORMAT, "%s: a size field is zero or negative", n);
    if (c->num_heads % c->num_kv_heads)
        return qn_fail(QN_E_FORMAT, "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", n,
                       c->num_heads, c->num_kv_heads);
    if (c->lin_v_heads % c->lin_k_heads)
        return qn_fail(QN_E_FORMAT, "%s: linear_num_value_heads (%d) is not a multiple of linear_num_key_heads (%d)", n,
                       c->lin_v_heads, c->lin_k_heads);
    if (c->top_k > c->num_experts)
        return qn_fail(QN_E_FORMAT, "%s: num_experts_per_tok (%d) exceeds num_experts (%d)", n, c->top_k, c->num_experts);
    if (rot < 2 || rot % 2 || rot > c->head_dim)
        return qn_fail(QN_E_FORMAT, "%s: rotary dims head_dim * partial_rotary_factor = %d must be even and in [2, %d]",
                       n, rot, c->head_dim);
    if (!(c->rms_norm_eps > 0) || !(c->rope_theta > 1.0))
        return qn_fail(QN_E_FORMAT, "%s: rms_norm_eps must be > 0 and rope_theta > 1", n);
    if (c->rope_type == QN_ROPE_YARN && (!(c->yarn_factor >= 1.0) || c->yarn_orig_max_pos < 1 ||
                                        !(c->rope_attn_factor > 0)))
        return qn_fail(QN_E_FORMAT, "%s: YaRN needs factor >= 1 and original_max_position_embeddings >= 1", n);
    if ((int64_t)c->lin_v_heads * c->lin_v_dim * 2 + (int64_t)c->lin_k_heads * c->lin_k_dim * 2 > INT32_MAX / 2 ||
        (int64_t)c->num_heads * c->head_dim * 2 > INT32_MAX / 2)
        return qn_fail(QN_E_FORMAT, "%s: projection sizes overflow", n);
    if (c->max_position_embeddings < 1)
        return qn_fail(QN_E_FORMAT, "%s: max_position_embeddings must be >= 1", n);
    return 0;
}

void qn_config_default_80b(qn_config *c)
{
    qn_cfg_defaults(c);
    c->hidden_size = 2048;
    c->num_layers = 48;
    c->vocab_size = 151936;
    c->max_position_embeddings = 262144;
    c->num_heads = 16;
    c->num_kv_heads = 2;
    c->head_dim = 256;
    c->lin_k_heads = 16;
    c->lin_v_heads = 32;
    c->lin_k_dim = 128;
    c->lin_v_dim = 128;
    c->conv_kernel = 4;
    c->num_experts = 512;
    c->top_k = 10;
    c->moe_inter = 512;
    c->shared_inter = 512;
    c->intermediate_size = 5120;
    c->rope_theta = 1e7;
    c->full_attention_interval = 4;
    for (int i = 0; i < c->num_layers; i++) c->layer_types[i] = (i + 1) % 4 ? QN_LAYER_LINEAR : QN_LAYER_FULL;
    c->bos_token_id = 151643;
    c->eos_token_ids[0] = 151645;
    c->n_eos = 1;
}

/* ---- writer ---- */

static bool layers_follow_interval(const qn_config *c)
{
    int k = c->full_attention_interval;
    if (k < 1) return false;
    for (int i = 0; i < c->num_layers; i++)
        if (c->layer_types[i] != ((i + 1) % k ? QN_LAYER_LINEAR : QN_LAYER_FULL)) return false;
    return true;
}

static void add_rope(cJSON *j, const qn_config *c)
{
    cJSON_AddNumberToObject(j, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(j, "partial_rotary_factor", c->partial_rotary_factor);
    if (c->rope_type != QN_ROPE_YARN) {
        cJSON_AddNullToObject(j, "rope_scaling");
        return;
    }
    cJSON *r = cJSON_AddObjectToObject(j, "rope_scaling");
    cJSON_AddStringToObject(r, "rope_type", "yarn");
    cJSON_AddNumberToObject(r, "factor", c->yarn_factor);
    cJSON_AddNumberToObject(r, "original_max_position_embeddings", (double)c->yarn_orig_max_pos);
    cJSON_AddNumberToObject(r, "beta_fast", c->yarn_beta_fast);
    cJSON_AddNumberToObject(r, "beta_slow", c->yarn_beta_slow);
    if (!c->yarn_truncate) cJSON_AddFalseToObject(r, "truncate");
    cJSON_AddNumberToObject(r, "attention_factor", c->rope_attn_factor);
}

static void add_layers_tokens(cJSON *j, const qn_config *c)
{
    cJSON_AddNumberToObject(j, "full_attention_interval", c->full_attention_interval);
    if (!layers_follow_interval(c)) {
        cJSON *lt = cJSON_AddArrayToObject(j, "layer_types");
        for (int i = 0; i < c->num_layers; i++)
            cJSON_AddItemToArray(lt, cJSON_CreateString(qn_cfg_is_full(c, i) ? "full_attention" : "linear_attention"));
    }
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(j, "bos_token_id", c->bos_token_id);
    if (c->n_eos == 1) cJSON_AddNumberToObject(j, "eos_token_id", c->eos_token_ids[0]);
    else if (c->n_eos > 1) cJSON_AddItemToObject(j, "eos_token_id", cJSON_CreateIntArray(c->eos_token_ids, c->n_eos));
}

char *qn_cfg_to_json(const qn_config *c)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON *arch = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("Qwen3NextForCausalLM"));
    cJSON_AddStringToObject(j, "model_type", "qwen3_next");
    cJSON_AddNumberToObject(j, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddNumberToObject(j, "max_position_embeddings", (double)c->max_position_embeddings);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(j, "linear_num_key_heads", c->lin_k_heads);
    cJSON_AddNumberToObject(j, "linear_num_value_heads", c->lin_v_heads);
    cJSON_AddNumberToObject(j, "linear_key_head_dim", c->lin_k_dim);
    cJSON_AddNumberToObject(j, "linear_value_head_dim", c->lin_v_dim);
    cJSON_AddNumberToObject(j, "linear_conv_kernel_dim", c->conv_kernel);
    cJSON_AddNumberToObject(j, "num_experts", c->num_experts);
    cJSON_AddNumberToObject(j, "num_experts_per_tok", c->top_k);
    cJSON_AddNumberToObject(j, "moe_intermediate_size", c->moe_inter);
    cJSON_AddNumberToObject(j, "shared_expert_intermediate_size", c->shared_inter);
    if (c->intermediate_size > 0) cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate_size);
    cJSON_AddBoolToObject(j, "norm_topk_prob", c->norm_topk_prob);
    cJSON_AddNumberToObject(j, "decoder_sparse_step", 1);
    cJSON_AddArrayToObject(j, "mlp_only_layers");
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddFalseToObject(j, "attention_bias");
    cJSON_AddStringToObject(j, "torch_dtype", "bfloat16");
    add_rope(j, c);
    add_layers_tokens(j, c);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    return s;
}

int qn_cfg_write(const qn_config *c, const char *path)
{
    char *s = qn_cfg_to_json(c);
    if (!s) return qn_fail(-ENOMEM, "%s: out of memory", path);
    FILE *f = fopen(path, "wb");
    if (!f) {
        int e = errno;
        free(s);
        return qn_fail(-e, "%s: cannot create: %s", path, strerror(e));
    }
    size_t n = strlen(s);
    size_t w = fwrite(s, 1, n, f);
    int bad = fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    free(s);
    if (w != n || bad) return qn_fail(-EIO, "%s: write failed", path);
    return 0;
}
