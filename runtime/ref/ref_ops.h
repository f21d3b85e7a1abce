/* ref_ops.h — the plain-C float reference of every Qwen3-Next op (the oracle GPU kernels are tested against).
 *
 * Each op is one small function over plain float pointers and sizes, all float32, row-major, no allocation
 * (scratch space, where needed, is passed in). Math follows shared/spec/qwen3next-forward.md (section numbers
 * in the comments). Matrices use the PyTorch convention: W is [out][in] and y = W x. Unless stated otherwise an
 * output must not alias an input. */
#ifndef QN_REF_OPS_H
#define QN_REF_OPS_H

#include <stdint.h>

/* ---- scalar activations ---- */
float qn_ref_silu(float x);     /* x * sigmoid(x) */
float qn_ref_sigmoid(float x);  /* 1 / (1 + e^-x) */
float qn_ref_softplus(float x); /* log(1 + e^x); x for x > 20 (as PyTorch) */

/* ---- dense linear algebra ---- */
/* y[out] = W[out][in] · x[in] (double accumulation per row) */
void qn_ref_matvec(float *y, const float *W, const float *x, int out, int in);
/* Y[T][out] = X[T][in] · W[out][in]^T */
void qn_ref_matmul(float *Y, const float *X, const float *W, int T, int out, int in);
/* y[i] += a * x[i] */
void qn_ref_axpy(float *y, float a, const float *x, int n);
/* x[i] *= sigmoid(gate[i])  (attention output gate, §6.7) */
void qn_ref_mul_sigmoid(float *x, const float *gate, int n);

/* ---- norms (§5, §4) ---- */
/* Zero-centred RMSNorm: y = x * rsqrt(mean(x^2) + eps) * (1 + w). y may alias x. */
void qn_ref_rmsnorm_zc(float *y, const float *x, const float *w, int n, float eps);
/* The same applied to `rows` consecutive vectors of n (q_norm / k_norm per head, a [T][H] block). y may alias x. */
void qn_ref_rmsnorm_zc_rows(float *y, const float *x, const float *w, int rows, int n, float eps);
/* Gated RMSNorm (linear_attn.norm): y = w * (o * rsqrt(mean(o^2) + eps)) * silu(z). Plain w, not 1 + w.
 * y may alias o. */
void qn_ref_rmsnorm_gated(float *y, const float *o, const float *z, const float *w, int n, float eps);
/* L2 norm: y = x / sqrt(sum(x^2) + eps); the delta rule uses eps = 1e-6. y may alias x. */
void qn_ref_l2norm(float *y, const float *x, int n, float eps);

/* ---- Gated DeltaNet input split (§2) ----
 * qkvz [2*Hk*dk + 2*Hv*dv] = in_proj_qkvz(x) of one token, ba [2*Hv] = in_proj_ba(x), both in the checkpoint's
 * per-key-head interleaved order. Outputs: mixed [2*Hk*dk + Hv*dv] = [q_flat | k_flat | v_flat] (conv channel
 * order), z [Hv*dv], b [Hv], a [Hv] (value-head-major). */
void qn_ref_gdn_split(float *mixed, float *z, float *b, float *a, const float *qkvz, const float *ba,
                      int Hk, int Hv, int dk, int dv);
/* Per value head h: beta[h] = sigmoid(b[h]); g[h] = -exp(A_log[h]) * softplus(a[h] + dt_bias[h]) (log decay). */
void qn_ref_gdn_gates(float *g, float *beta, const float *a, const float *b, const float *A_log,
                      const float *dt_bias, int Hv);
/* q [Hk*dk], k [Hk*dk] in place: per head L2-norm (eps 1e-6); q additionally scaled by dk^-0.5. */
void qn_ref_gdn_qk_norm(float *q, float *k, int Hk, int dk);

/* ---- causal depthwise conv1d + SiLU (§3) ----
 * C channels, kernel K, w [C][K] (conv1d.weight[c][0][j]; tap K-1 multiplies the current input).
 * state [C][K-1]: the previous K-1 RAW inputs of each channel, oldest first (zeros at sequence start);
 * both functions update it. */
/* One token: x [C] raw inputs, y [C] = silu(conv). */
void qn_ref_conv1d_step(float *y, float *state, const float *x, const float *w, int C, int K);
/* T tokens: x [T][C], y [T][C]; equal to T calls of qn_ref_conv1d_step. */
void qn_ref_conv1d_seq(float *y, float *state, const float *x, const float *w, int T, int C, int K);

/* ---- gated delta rule (§4) ----
 * Value head h reads query/key head h / (Hv/Hk). q̂ must already be L2-normed and scaled, k̂ L2-normed
 * (qn_ref_gdn_qk_norm). S [Hv][dk][dv] is the fp32 recurrent state (zeros at sequence start), updated in place. */
/* One token: q, k [Hk][dk]; v [Hv][dv]; g, beta [Hv]; o [Hv][dv]. */
void qn_ref_gdn_step(float *o, float *S, const float *q, const float *k, const float *v, const float *g,
                     const float *beta, int Hk, int Hv, int dk, int dv);
/* T tokens, token by token: q, k [T][Hk][dk]; v [T][Hv][dv]; g, beta [T][Hv]; o [T][Hv][dv]. */
void qn_ref_gdn_recurrent(float *o, float *S, const float *q, const float *k, const float *v, const float *g,
                          const float *beta, int T, int Hk, int Hv, int dk, int dv);
/* The same result by the chunked (WY / UT-transform) form with chunk length `chunk` (64 in HF/FLA).
 * scratch: at least qn_ref_gdn_chunked_scratch(chunk, dk, dv) floats. */
void qn_ref_gdn_chunked(float *o, float *S, const float *q, const float *k, const float *v, const float *g,
                        const float *beta, int T, int Hk, int Hv, int dk, int dv, int chunk, float *scratch);
int64_t qn_ref_gdn_chunked_scratch(int chunk, int dk, int dv);

/* ---- rotary position embedding (§6.4, §10, §12) ----
 * inv_freq [rot/2]: HF's fp32 inverse frequencies 1 / theta^(2p/rot). With yarn_factor > 1 (YaRN), blended
 * between extrapolation and interpolation (factor) by a ramp from beta_fast/beta_slow over orig_max_pos
 * (truncate != 0: floor/ceil the correction range as HF's default). */
void qn_ref_rope_inv_freq(float *inv_freq, int rot, double theta, double yarn_factor, double orig_max_pos,
                          double beta_fast, double beta_slow, int truncate);
/* YaRN attention factor (mscale) for a factor: 0.1 * ln(factor) + 1, or 1 when factor <= 1. */
float qn_ref_yarn_mscale(double factor);
/* Partial NeoX RoPE in place on H heads x [H][head_dim] at absolute position pos: dims 0..rot-1 rotated with
 * pairing p <-> p + rot/2, angle = (float)pos * inv_freq[p] in fp32, cos and sin both multiplied by
 * attn_factor (1 without YaRN); dims rot..head_dim-1 unchanged. */
void qn_ref_rope(float *x, int H, int head_dim, int rot, int64_t pos, const float *inv_freq, float attn_factor);

/* ---- attention (§6) ----
 * Single query row against a KV cache. q [Hq][hd]; kc, vc [Hkv][cap][hd] (row s of kv head j at
 * (j*cap + s)*hd); keys 0..n_keys-1 are visible; q head h uses kv head h / (Hq/Hkv); softmax(q·k*scale)·v.
 * out [Hq][hd]. scratch: n_keys floats. */
void qn_ref_attn_decode(float *out, const float *q, const float *kc, const float *vc, int n_keys, int cap,
                        int Hq, int Hkv, int hd, float scale, float *scratch);

/* ---- sparse MoE (§7) ---- */
/* Router on logits [E] (already computed as gate(x)): optionally round them to bf16 first (round_bf16, as HF
 * with bf16 weights), softmax in fp32, pick the top k (ties: lower index first, sorted by weight descending),
 * renormalise the k weights when norm_topk. idx [k], w [k]. */
void qn_ref_router(int *idx, float *w, const float *logits, int E, int k, int norm_topk, int round_bf16);
/* One expert: y[H] = Wd[H][I] · (silu(Wg[I][H]·x) * (Wu[I][H]·x)). scratch: 2*I floats. */
void qn_ref_expert_glu(float *y, const float *x, const float *Wg, const float *Wu, const float *Wd, int H, int I,
                       float *scratch);
/* Shared expert: y[H] = sigmoid(gate_w[H]·x) * expert_glu(x). scratch: 2*I floats. */
void qn_ref_shared_expert(float *y, const float *x, const float *Wg, const float *Wu, const float *Wd,
                          const float *gate_w, int H, int I, float *scratch);

#endif
