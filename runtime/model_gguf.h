/* model_gguf.h — load a llama.cpp `qwen3next` GGUF (loader/gguf_qwen3next.h) into a qn_model (model.h), so
 * `-m FILE.gguf` runs on the Vulkan backend (model.c dispatches on the .gguf suffix).
 *
 * Where each weight goes (the values are always exactly the GGUF's dequantized values, so the CPU reference on
 * the dequantized weights — tests/unit/test_gguf_qwen3next --gguf-to-hf — is the oracle):
 *   - routed experts: kept in their blocks when every layer's gate/up/down is Q8_0/Q4_0/Q4_K/Q5_K/Q6_K with
 *     gate = up type (down may differ, per layer too): gate|up slots in m->pools, down slots in m->dpools,
 *     run by moe_q.comp (tokens in z for every T); else f32 slots and the ordinary MoE kernels;
 *   - dense matrices of one such block type (o_proj, out_proj, lm_head, ... and fusions whose parts agree):
 *     kept in blocks (qn_wt.qtype), matvec_q* for every T (prefill with tokens in z: correct, not fast);
 *   - fusions whose parts differ in type (llama.cpp's Q4_K_M mixes them: Q6_K attn_qkv + Q4_K attn_gate, F32
 *     router + Q4_K shared experts): only the per-part sub-tensors in their own types (qn_wt.sub; no buffer of
 *     the whole: decode reads them per part or in one mv_parts / route_mixed dispatch, prefill runs one matmul per
 *     part); an f32 fusion only when the parts cannot be subs, or with env QNEXT_GGUF_F32_FUSED=1 (A/Bs);
 *   - the embedding table in its blocks when it is one of those types (embed.comp's block variants), else f32;
 *   - norms (v - 1 applied), A_log (log(-ssm_a)), conv1d, dt_bias: f32; the shared expert's down: f32 (prefill)
 *     plus its blocks as a sub (decode).
 * QNEXT_GGUF_F32=1 dequantizes everything to f32 (debugging). */
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
