/* test_config.c — the qwen3_next config.json parser and writer (loader/config.c) and the checkpoint tensor list.
 *
 * usage: test_config GOLDEN_DIR
 * Fixture configs (legacy form) parse to the values their READMEs state; the newer transformers form
 * (rope_parameters + layer_types) parses to the same struct; write -> parse round trips; the 80B defaults give
 * the spec's derived sizes and tensor count; the float32 reference refuses an 80B model for lack of RAM; bad
 * fields are refused with messages that name the field. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "qn_err.h"
#include "ref_model.h"
#include "tensors.h"
#include "../testutil.h"

static void check(int ok, const char *what)
{
    printf("%-4s %s\n", ok ? "ok" : "FAIL", what);
    failures += !ok;
}

static int load(qn_config *c, const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/config.json", dir, name);
    int rc = qn_cfg_load(c, p);
    if (rc) printf("     %s\n", qn_errmsg());
    return rc;
}

static int same_json(const qn_config *a, const qn_config *b)
{
    char *x = qn_cfg_to_json(a), *y = qn_cfg_to_json(b);
    int same = x && y && !strcmp(x, y);
    if (!same) printf("---\n%s\n---\n%s\n", x, y);
    free(x);
    free(y);
    return same;
}

static void fixtures(const char *dir)
{
    qn_config c;
    check(!load(&c, dir, "tiny") && c.hidden_size == 128 && c.num_layers == 4 && c.lin_k_heads == 2 &&
              c.lin_v_heads == 4 && c.num_experts == 16 && c.top_k == 4 && c.norm_topk_prob &&
              c.layer_types[3] == QN_LAYER_FULL && c.layer_types[2] == QN_LAYER_LINEAR && qn_cfg_rot_dim(&c) == 8 &&
              c.rope_type == QN_ROPE_DEFAULT && c.rope_theta == 1e7 && c.eos_token_ids[0] == 151645 && c.n_eos == 1,
          "tiny config: sizes, layer types (layer 3 full), rot dim 8, default RoPE, eos");
    check(!load(&c, dir, "small") && c.num_heads == 16 && c.num_kv_heads == 2 && c.lin_v_heads == 32 &&
              qn_cfg_count_full(&c) == 2 && qn_cfg_conv_dim(&c) == 2 * 256 + 512,
          "small config: 16/2 heads, 2 full-attention layers, conv_dim 1024");
    check(!load(&c, dir, "yarn") && c.rope_type == QN_ROPE_YARN && c.yarn_factor == 4 &&
              c.yarn_orig_max_pos == 262144 && c.yarn_beta_fast == 32 && c.yarn_beta_slow == 1 &&
              fabs(c.rope_attn_factor - 1.1386294) < 1e-6 && c.rope_theta == 1e6 && !c.norm_topk_prob &&
              c.lin_k_dim == 32 && c.lin_v_dim == 48 && c.layer_types[1] == QN_LAYER_FULL &&
              c.layer_types[2] == QN_LAYER_LINEAR && qn_cfg_count_full(&c) == 2,
          "yarn config: YaRN x4 (beta 32/1 defaults, attention factor 1.1386), interval 2, no renormalisation, dk 32 dv 48");
    qn_config w;
    char *txt = qn_cfg_to_json(&c);
    check(txt && !qn_cfg_parse(&w, txt, strlen(txt), "roundtrip") && same_json(&c, &w), "yarn config: write -> parse round trip");
    free(txt);
}

/* The newer transformers form of the tiny config: rope_parameters and layer_types, no top-level rope_theta. */
static const char v5_tiny[] =
    "{\"model_type\": \"qwen3_next\", \"architectures\": [\"Qwen3NextForCausalLM\"], \"hidden_size\": 128,"
    " \"num_hidden_layers\": 4, \"vocab_size\": 512, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"head_dim\": 32, \"linear_num_key_heads\": 2, \"linear_num_value_heads\": 4, \"linear_key_head_dim\": 32,"
    " \"linear_value_head_dim\": 32, \"linear_conv_kernel_dim\": 4, \"num_experts\": 16, \"num_experts_per_tok\": 4,"
    " \"moe_intermediate_size\": 48, \"shared_expert_intermediate_size\": 64, \"intermediate_size\": 256,"
    " \"norm_topk_prob\": true, \"rms_norm_eps\": 1e-06, \"max_position_embeddings\": 262144,"
    " \"tie_word_embeddings\": false, \"bos_token_id\": 151643, \"eos_token_id\": 151645,"
    " \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000000.0, \"partial_rotary_factor\": 0.25},"
    " \"layer_types\": [\"linear_attention\", \"linear_attention\", \"linear_attention\", \"full_attention\"]}";

static void forms(const char *dir)
{
    qn_config a, b;
    int rc = load(&a, dir, "tiny");
    int rc2 = qn_cfg_parse(&b, v5_tiny, strlen(v5_tiny), "v5");
    if (rc2) printf("     %s\n", qn_errmsg());
    check(!rc && !rc2 && same_json(&a, &b), "newer form (rope_parameters, layer_types) == legacy form");
    /* legacy 'type' key for YaRN and explicit mscale / mscale_all_dim */
    const char *y = "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000000.0, \"partial_rotary_factor\": 0.25}";
    char buf[4096];
    const char *p = strstr(v5_tiny, y);
    snprintf(buf, sizeof buf, "%.*s\"rope_theta\": 1e7, \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 2.0,"
             " \"original_max_position_embeddings\": 4096, \"mscale\": 1.0, \"mscale_all_dim\": 0.5}%s",
             (int)(p - v5_tiny), v5_tiny, p + strlen(y));
    rc = qn_cfg_parse(&b, buf, strlen(buf), "legacy-type");
    double want = (0.1 * log(2.0) + 1) / (0.05 * log(2.0) + 1);
    check(!rc && b.rope_type == QN_ROPE_YARN && b.yarn_factor == 2 && b.yarn_orig_max_pos == 4096 &&
              fabs(b.rope_attn_factor - want) < 1e-9,
          "rope_scaling {type: yarn} with mscale/mscale_all_dim -> attention factor ratio");
    /* non-interval layer types round trip through the writer (layer_types written) */
    a.layer_types[0] = QN_LAYER_FULL;
    char *t = qn_cfg_to_json(&a);
    check(t && strstr(t, "layer_types") && !qn_cfg_parse(&b, t, strlen(t), "rt") && same_json(&a, &b),
          "irregular layer_types written and read back");
    free(t);
}

static void defaults_80b(void)
{
    qn_config c;
    qn_config_default_80b(&c);
    check(!qn_cfg_validate(&c, "80b") && qn_cfg_key_dim(&c) == 2048 && qn_cfg_value_dim(&c) == 4096 &&
              qn_cfg_conv_dim(&c) == 8192 && qn_cfg_qkvz_dim(&c) == 12288 && qn_cfg_ba_dim(&c) == 64 &&
              qn_cfg_rot_dim(&c) == 64 && qn_cfg_count_full(&c) == 12 && qn_cfg_is_full(&c, 3) && qn_cfg_is_full(&c, 47) &&
              !qn_cfg_is_full(&c, 46) && qn_cfg_q_dim(&c) == 4096,
          "80B defaults: key 2048, value 4096, conv 8192, qkvz 12288, ba 64, rot 64, 12 full layers (3, 7, ..., 47)");
    long long n = (long long)qn_cfg_tensor_count(&c);
    char what[128];
    snprintf(what, sizeof what, "80B tensor list: %lld tensors (spec: 36*1550 + 12*1549 + 3 = 74391)", n);
    check(n == 74391, what);
    /* write it as a folder and ask the reference to load it: refused for RAM (or, on a huge machine, for the
     * missing weights) with a message, never an attempt to allocate 320 GB */
    char dir[] = "/tmp/qn_cfg80b_XXXXXX", path[64];
    if (!mkdtemp(dir)) return;
    snprintf(path, sizeof path, "%s/config.json", dir);
    qn_ref_model *m = NULL;
    int rc = qn_cfg_write(&c, path) ? -1 : qn_ref_model_load(&m, dir);
    printf("     %s\n", qn_errmsg());
    check(rc < 0 && !m && (strstr(qn_errmsg(), "GiB needed") || strstr(qn_errmsg(), "model.safetensors")),
          "float32 reference refuses the 80B model clearly (RAM)");
    double gib = qn_ref_model_bytes(&c) / 1073741824.0;
    snprintf(what, sizeof what, "80B float32 weights: %.1f GiB (79.67 B params -> ~297 GiB)", gib);
    check(gib > 290 && gib < 300, what);
    unlink(path);
    rmdir(dir);
}

struct bad { const char *from, *to, *needle; };

static void bad_fields(void)
{
    static const struct bad cases[] = {
        { "\"hidden_size\": 128", "\"hidden_size\": \"128\"", "'hidden_size' must be a number" },
        { "\"hidden_size\": 128", "\"hidden_size\": 128.5", "'hidden_size' = 128.5 must be an integer" },
        { "\"num_experts_per_tok\": 4", "\"num_experts_per_tok\": 17", "num_experts_per_tok (17) exceeds num_experts (16)" },
        { "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", "not a multiple of num_key_value_heads" },
        { "\"vocab_size\": 512", "\"vocab_size\": -1", "'vocab_size' = -1 is outside" },
        { "\"model_type\": \"qwen3_next\", ", "", "'model_type' is missing" },
        { "\"norm_topk_prob\": true", "\"norm_topk_prob\": 1", "'norm_topk_prob' must be true or false" },
        { "\"full_attention\"]", "\"sliding_attention\"]", "layer_types[3]" },
        { "\"linear_attention\", \"full_attention\"]", "\"full_attention\"]", "num_hidden_layers (4)" },
        { "\"rope_type\": \"default\"", "\"rope_type\": \"yarn\"", "'factor' is missing" },
        { "\"partial_rotary_factor\": 0.25", "\"partial_rotary_factor\": 0.001", "rotary dims" },
        { "\"eos_token_id\": 151645", "\"eos_token_id\": [151645, \"x\"]", "'eos_token_id' must hold token ids" },
        { "\"tie_word_embeddings\": false", "\"mlp_only_layers\": [1]", "mlp_only_layers" },
        { "\"tie_word_embeddings\": false", "\"hidden_act\": \"gelu\"", "hidden_act 'gelu'" },
        { "{\"model_type\"", "[{\"model_type\"", "invalid JSON" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[4096];
        const char *p = strstr(v5_tiny, cases[i].from);
        if (!p) {
            printf("FAIL case %zu: '%s' not in the base config\n", i, cases[i].from);
            failures++;
            continue;
        }
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - v5_tiny), v5_tiny, cases[i].to, p + strlen(cases[i].from));
        qn_config c;
        int rc = qn_cfg_parse(&c, buf, strlen(buf), "cfg.json");
        char what[1200];
        snprintf(what, sizeof what, "refused: %s -> \"%s\"", cases[i].to, qn_errmsg());
        check(rc < 0 && strstr(qn_errmsg(), cases[i].needle) && strstr(qn_errmsg(), "cfg.json"), what);
    }
    qn_config c;
    int rc = qn_cfg_load(&c, "/nonexistent/dir");
    check(rc == -ENOENT && strstr(qn_errmsg(), "/nonexistent/dir"), "missing config.json: -ENOENT naming the path");
}

int main(int argc, char **argv)
{
    qn_test_crash_report();
    if (argc != 2) {
        fprintf(stderr, "usage: %s GOLDEN_DIR\n", argv[0]);
        return 2;
    }
    fixtures(argv[1]);
    forms(argv[1]);
    defaults_80b();
    bad_fields();
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
