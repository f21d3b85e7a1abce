/* model_gguf.h — load a llama.cpp `qwen3next` GGUF (loader/gguf_qwen3next.h) into a qn_model (model.h).
 *
 * First version: every tensor is dequantized on the host through qn_q3n_read_f32 (all inverse transforms
 * applied: norms v - 1, A_log = log(-ssm_a), in_proj_qkvz rows gathered from attn_qkv + attn_gate) and
 * uploaded as f32 in the same fused layouts as the safetensors path, so every existing kernel runs on it
 * unchanged. Quantized weights are NOT kept in their block format on the device yet: device memory is
 * 4 bytes per parameter (fine for test models; the 80B Q4_K_M needs the quantized path, not built yet). */
#ifndef QN_MODEL_GGUF_H
#define QN_MODEL_GGUF_H

#include <stdbool.h>

#include "model.h"

/* True when `path` names a .gguf file (by its suffix). */
bool qn_model_path_is_gguf(const char *path);

/* Fill m (m->v and m->path set, everything else zero) from the GGUF at m->path: config, dense weights,
 * expert slots and slot table. RoPE frequencies are left to the caller (model.c). */
int qn_model_gguf_load(qn_model *m, const struct qn_model_params *p);

/* The config of the GGUF at path (metadata only). */
int qn_model_gguf_config(const char *path, qn_config *c);

#endif
