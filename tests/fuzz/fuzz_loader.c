/* fuzz_loader.c — libFuzzer entry point for the loader's parsers of untrusted files.
 *
 * Input: one selector byte, then the file. 'S' (or any even other byte): a safetensors file (opened through a
 * memfd, so the real open/pread path runs), every small tensor read and converted, the table checked against a
 * micro qwen3_next config. 'C' (or odd): config.json text; a config that parses must survive
 * write -> parse -> write unchanged (abort otherwise). Built as a libFuzzer target with -Dfuzz=true (clang) and,
 * always, into fuzz_replay (a deterministic corpus + mutation driver run as a normal test). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* hidden 4, 2 layers (linear + full), 2 experts: the corpus seed st_micro holds exactly its tensors */
static const char micro_cfg[] =
    "{\"model_type\":\"qwen3_next\",\"hidden_size\":4,\"num_hidden_layers\":2,\"vocab_size\":8,"
    "\"num_attention_heads\":1,\"num_key_value_heads\":1,\"head_dim\":4,\"partial_rotary_factor\":0.5,"
    "\"linear_num_key_heads\":1,\"linear_num_value_heads\":1,\"linear_key_head_dim\":2,\"linear_value_head_dim\":2,"
    "\"linear_conv_kernel_dim\":2,\"num_experts\":2,\"num_experts_per_tok\":1,\"moe_intermediate_size\":2,"
    "\"shared_expert_intermediate_size\":2,\"full_attention_interval\":2,\"rope_theta\":10000.0}";

static void fuzz_safetensors(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.safetensors", 0);
    if (fd < 0) return;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    qn_st_store *s;
    if (qn_st_open(&s, path) == 0) {
        float buf[4096];
        int32_t ib[4096];
        for (int i = 0; i < qn_st_count(s); i++) {
            const qn_st_tensor *t = qn_st_at(s, i);
            int64_t n = qn_st_numel(t);
            if (n > 4096) continue;
            qn_st_read_f32(s, t->name, buf, (size_t)n);
            qn_st_read_i32(s, t->name, ib, (size_t)n);
            if (n <= 1024) qn_st_read_f32_dequant(s, t->name, buf, (size_t)n);
            if (qn_st_find(s, t->name) != t) abort(); /* the index must find every table entry */
        }
        qn_config c;
        if (qn_cfg_parse(&c, micro_cfg, sizeof micro_cfg - 1, "micro") == 0) qn_st_check_model(s, &c, 0);
        qn_st_close(&s);
    }
    close(fd);
}

static void fuzz_config(const uint8_t *data, size_t size)
{
    qn_config c, d;
    if (qn_cfg_parse(&c, (const char *)data, size, "fuzz") != 0) return;
    char *a = qn_cfg_to_json(&c);
    if (!a) return;
    if (qn_cfg_parse(&d, a, strlen(a), "fuzz-rt") != 0) abort(); /* what we write, we must read */
    char *b = qn_cfg_to_json(&d);
    if (!b || strcmp(a, b)) abort();
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int st = data[0] == 'S' || (data[0] != 'C' && !(data[0] & 1));
    if (st) fuzz_safetensors(data + 1, size - 1);
    else fuzz_config(data + 1, size - 1);
    return 0;
}
