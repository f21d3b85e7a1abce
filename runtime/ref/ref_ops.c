/* ref_ops.c — plain-C float reference of every Qwen3-Next op (see ref_ops.h and shared/spec/qwen3next-forward.md).
 * Clarity first; dot products accumulate in double so the reference sits below float32 noise. */
#include "ref_ops.h"

#include <math.h>
#include <string.h>

#include "qn_num.h"

/* ---- scalar activations ---- */

float qn_ref_sigmoid(float x) { return (float)(1.0 / (1.0 + exp(-(double)x))); }
float qn_ref_silu(float x) { return (float)((double)x / (1.0 + exp(-(double)x))); }
float qn_ref_softplus(float x) { return x > 20.0f ? x : (float)log1p(exp((double)x)); }

/* ---- dense linear algebra ---- */

static double dot(const float *a, const float *b, int n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)a[i] * b[i];
        s1 += (double)a[i + 1] * b[i + 1];
        s2 += (double)a[i + 2] * b[i + 2];
        s3 += (double)a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += (double)a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

void qn_ref_matvec(float *y, const float *W, const float *x, int out, int in)
{
    for (int o = 0; o < out; o++) y[o] = (float)dot(W + (int64_t)o * in, x, in);
}

void qn_ref_matmul(float *Y, const float *X, const float *W, int T, int out, int in)
{
    for (int t = 0; t < T; t++) qn_ref_matvec(Y + (int64_t)t * out, W, X + (int64_t)t * in, out, in);
}

void qn_ref_axpy(float *y, float a, const float *x, int n)
{
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

void qn_ref_mul_sigmoid(float *x, const float *gate, int n)
{
    for (int i = 0; i < n; i++) x[i] *= qn_ref_sigmoid(gate[i]);
}

/* ---- norms ---- */

static float rms_scale(const float *x, int n, float eps)
{
    return (float)(1.0 / sqrt(dot(x, x, n) / n + (double)eps));
}

void qn_ref_rmsnorm_zc(float *y, const float *x, const float *w, int n, float eps)
{
    float r = rms_scale(x, n, eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * (1.0f + w[i]);
}

void qn_ref_rmsnorm_zc_rows(float *y, const float *x, const float *w, int rows, int n, float eps)
{
    for (int r = 0; r < rows; r++) qn_ref_rmsnorm_zc(y + (int64_t)r * n, x + (int64_t)r * n, w, n, eps);
}

void qn_ref_rmsnorm_gated(float *y, const float *o, const float *z, const float *w, int n, float eps)
{
    float r = rms_scale(o, n, eps);
    for (int i = 0; i < n; i++) y[i] = w[i] * (o[i] * r) * qn_ref_silu(z[i]);
}

void qn_ref_l2norm(float *y, const float *x, int n, float eps)
{
    float r = (float)(1.0 / sqrt(dot(x, x, n) + (double)eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * r;
}

/* ---- Gated DeltaNet input split and gates ---- */

void qn_ref_gdn_split(float *mixed, float *z, float *b, float *a, const float *qkvz, const float *ba,
                      int Hk, int Hv, int dk, int dv)
{
    int r = Hv / Hk, group = 2 * dk + 2 * r * dv, key_dim = Hk * dk;
    float *q = mixed, *k = mixed + key_dim, *v = mixed + 2 * key_dim;
    for (int g = 0; g < Hk; g++) {
        const float *src = qkvz + (int64_t)g * group;
        memcpy(q + g * dk, src, sizeof *q * (size_t)dk);
        memcpy(k + g * dk, src + dk, sizeof *k * (size_t)dk);
        memcpy(v + g * r * dv, src + 2 * dk, sizeof *v * (size_t)(r * dv));
        memcpy(z + g * r * dv, src + 2 * dk + r * dv, sizeof *z * (size_t)(r * dv));
        for (int j = 0; j < r; j++) {
            b[g * r + j] = ba[g * 2 * r + j];
            a[g * r + j] = ba[g * 2 * r + r + j];
        }
    }
}

void qn_ref_gdn_gates(float *g, float *beta, const float *a, const float *b, const float *A_log,
                      const float *dt_bias, int Hv)
{
    for (int h = 0; h < Hv; h++) {
        beta[h] = qn_ref_sigmoid(b[h]);
        g[h] = -expf(A_log[h]) * qn_ref_softplus(a[h] + dt_bias[h]);
    }
}

void qn_ref_gdn_qk_norm(float *q, float *k, int Hk, int dk)
{
    float scale = (float)(1.0 / sqrt((double)dk));
    for (int h = 0; h < Hk; h++) {
        qn_ref_l2norm(q + h * dk, q + h * dk, dk, 1e-6f);
        qn_ref_l2norm(k + h * dk, k + h * dk, dk, 1e-6f);
        for (int i = 0; i < dk; i++) q[h * dk + i] *= scale;
    }
}

/* ---- causal depthwise conv1d + SiLU ---- */

void qn_ref_conv1d_step(float *y, float *state, const float *x, const float *w, int C, int K)
{
    for (int c = 0; c < C; c++) {
        float *st = state + (int64_t)c * (K - 1);
        const float *wc = w + (int64_t)c * K;
        double u = (double)wc[K - 1] * x[c];
        for (int j = 0; j < K - 1; j++) u += (double)wc[j] * st[j];
        for (int j = 0; j + 1 < K - 1; j++) st[j] = st[j + 1];
        if (K > 1) st[K - 2] = x[c];
        y[c] = qn_ref_silu((float)u);
    }
}

void qn_ref_conv1d_seq(float *y, float *state, const float *x, const float *w, int T, int C, int K)
{
    for (int t = 0; t < T; t++) qn_ref_conv1d_step(y + (int64_t)t * C, state, x + (int64_t)t * C, w, C, K);
}

/* ---- gated delta rule, token by token ---- */

/* One head: S [dk][dv], q/k [dk], v/o [dv]. */
static void gdn_head_step(float *o, float *S, const float *q, const float *k, const float *v, float g, float beta,
                          int dk, int dv)
{
    float decay = expf(g);
    for (int i = 0; i < dk * dv; i++) S[i] *= decay;
    for (int j = 0; j < dv; j++) {
        double m = 0;
        for (int i = 0; i < dk; i++) m += (double)S[i * dv + j] * k[i];
        float d = beta * (v[j] - (float)m);
        double acc = 0;
        for (int i = 0; i < dk; i++) {
            S[i * dv + j] += k[i] * d;
            acc += (double)S[i * dv + j] * q[i];
        }
        o[j] = (float)acc;
    }
}

void qn_ref_gdn_step(float *o, float *S, const float *q, const float *k, const float *v, const float *g,
                     const float *beta, int Hk, int Hv, int dk, int dv)
{
    int r = Hv / Hk;
    for (int h = 0; h < Hv; h++)
        gdn_head_step(o + h * dv, S + (int64_t)h * dk * dv, q + (h / r) * dk, k + (h / r) * dk, v + h * dv, g[h],
                      beta[h], dk, dv);
}

void qn_ref_gdn_recurrent(float *o, float *S, const float *q, const float *k, const float *v, const float *g,
                          const float *beta, int T, int Hk, int Hv, int dk, int dv)
{
    for (int t = 0; t < T; t++)
        qn_ref_gdn_step(o + (int64_t)t * Hv * dv, S, q + (int64_t)t * Hk * dk, k + (int64_t)t * Hk * dk,
                        v + (int64_t)t * Hv * dv, g + (int64_t)t * Hv, beta + (int64_t)t * Hv, Hk, Hv, dk, dv);
}

/* ---- gated delta rule, chunked form (§4) ---- */

int64_t qn_ref_gdn_chunked_scratch(int chunk, int dk, int dv)
{
    return (int64_t)chunk * chunk + (int64_t)chunk * (dk + dv) + chunk;
}

/* Strided views of one head's rows inside [T][H][d] tensors. */
struct gdn_view {
    const float *q, *k, *v, *g, *beta; /* row t of head: q + t*qs ... */
    float *o;
    int64_t qs, vs, gs;                /* strides between tokens: q/k, v/o, g/beta */
};

/* One chunk of n tokens for one head; S [dk][dv] in/out. */
static void gdn_head_chunk(const struct gdn_view *x, float *S, int n, int dk, int dv, float *scratch, int chunk)
{
    float *L = scratch, *U = L + (int64_t)chunk * chunk, *W = U + (int64_t)chunk * dv, *G = W + (int64_t)chunk * dk;
    double acc = 0;
    for (int i = 0; i < n; i++) G[i] = (float)(acc += x->g[i * x->gs]);
    /* L_ij = beta_i (k_i . k_j) e^{G_i - G_j}, j < i */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            L[i * chunk + j] = (float)(x->beta[i * x->gs] * dot(x->k + i * x->qs, x->k + j * x->qs, dk) *
                                       exp((double)G[i] - G[j]));
    /* (I + L) U = beta V, (I + L) W = beta e^G K: forward substitution */
    for (int i = 0; i < n; i++) {
        float bi = x->beta[i * x->gs], eg = (float)(bi * exp((double)G[i]));
        for (int d = 0; d < dv; d++) U[i * dv + d] = bi * x->v[i * x->vs + d];
        for (int d = 0; d < dk; d++) W[i * dk + d] = eg * x->k[i * x->qs + d];
        for (int j = 0; j < i; j++) {
            qn_ref_axpy(U + i * dv, -L[i * chunk + j], U + j * dv, dv);
            qn_ref_axpy(W + i * dk, -L[i * chunk + j], W + j * dk, dk);
        }
    }
    /* Vnew = U - W S0 (into U) */
    for (int i = 0; i < n; i++)
        for (int d = 0; d < dv; d++) {
            double m = 0;
            for (int e = 0; e < dk; e++) m += (double)W[i * dk + e] * S[e * dv + d];
            U[i * dv + d] -= (float)m;
        }
    /* O_i = e^{G_i} q_i S0 + sum_{j<=i} (q_i . k_j) e^{G_i - G_j} Vnew_j */
    for (int i = 0; i < n; i++) {
        float *o = x->o + i * x->vs;
        const float *qi = x->q + i * x->qs;
        float eg = (float)exp((double)G[i]);
        for (int d = 0; d < dv; d++) {
            double m = 0;
            for (int e = 0; e < dk; e++) m += (double)qi[e] * S[e * dv + d];
            o[d] = eg * (float)m;
        }
        for (int j = 0; j <= i; j++)
            qn_ref_axpy(o, (float)(dot(qi, x->k + j * x->qs, dk) * exp((double)G[i] - G[j])), U + j * dv, dv);
    }
    /* S_next = e^{G_last} S0 + sum_j e^{G_last - G_j} k_j (x) Vnew_j */
    float glast = G[n - 1], dlast = (float)exp((double)glast);
    for (int e = 0; e < dk * dv; e++) S[e] *= dlast;
    for (int j = 0; j < n; j++) {
        float c = (float)exp((double)glast - G[j]);
        for (int e = 0; e < dk; e++) qn_ref_axpy(S + e * dv, c * x->k[j * x->qs + e], U + j * dv, dv);
    }
}

void qn_ref_gdn_chunked(float *o, float *S, const float *q, const float *k, const float *v, const float *g,
                        const float *beta, int T, int Hk, int Hv, int dk, int dv, int chunk, float *scratch)
{
    int r = Hv / Hk;
    for (int h = 0; h < Hv; h++) {
        for (int t0 = 0; t0 < T; t0 += chunk) {
            int n = T - t0 < chunk ? T - t0 : chunk;
            struct gdn_view x = {
                .q = q + ((int64_t)t0 * Hk + h / r) * dk, .k = k + ((int64_t)t0 * Hk + h / r) * dk,
                .v = v + ((int64_t)t0 * Hv + h) * dv, .o = o + ((int64_t)t0 * Hv + h) * dv,
                .g = g + (int64_t)t0 * Hv + h, .beta = beta + (int64_t)t0 * Hv + h,
                .qs = (int64_t)Hk * dk, .vs = (int64_t)Hv * dv, .gs = Hv,
            };
            gdn_head_chunk(&x, S + (int64_t)h * dk * dv, n, dk, dv, scratch, chunk);
        }
    }
}

/* ---- rotary position embedding ---- */

void qn_ref_rope_inv_freq(float *inv_freq, int rot, double theta, double yarn_factor, double orig_max_pos,
                          double beta_fast, double beta_slow, int truncate)
{
    int half = rot / 2;
    for (int p = 0; p < half; p++) inv_freq[p] = 1.0f / powf((float)theta, (float)(2 * p) / (float)rot);
    if (!(yarn_factor > 1.0)) return;
    /* YaRN (§10): blend extrapolation (inv_freq) and interpolation (inv_freq / factor) by a linear ramp. */
    double lo = rot * log(orig_max_pos / (beta_fast * 2 * M_PI)) / (2 * log(theta));
    double hi = rot * log(orig_max_pos / (beta_slow * 2 * M_PI)) / (2 * log(theta));
    if (truncate) {
        lo = floor(lo);
        hi = ceil(hi);
    }
    if (lo < 0) lo = 0;
    if (hi > rot - 1) hi = rot - 1;
    if (lo == hi) hi += 0.001;
    for (int p = 0; p < half; p++) {
        float pos_freq = powf((float)theta, (float)(2 * p) / (float)rot);
        float extrap = 1.0f / pos_freq, interp = 1.0f / ((float)yarn_factor * pos_freq);
        float ramp = ((float)p - (float)lo) / ((float)hi - (float)lo);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        float ef = 1.0f - ramp;
        inv_freq[p] = interp * (1.0f - ef) + extrap * ef;
    }
}

float qn_ref_yarn_mscale(double factor)
{
    return factor <= 1.0 ? 1.0f : (float)(0.1 * log(factor) + 1.0);
}

void qn_ref_rope(float *x, int H, int head_dim, int rot, int64_t pos, const float *inv_freq, float attn_factor)
{
    int half = rot / 2;
    for (int p = 0; p < half; p++) {
        float ang = (float)pos * inv_freq[p];
        float c = (float)cos((double)ang) * attn_factor, s = (float)sin((double)ang) * attn_factor;
        for (int h = 0; h < H; h++) {
            float *xh = x + (int64_t)h * head_dim;
            float a = xh[p], b = xh[p + half];
            xh[p] = a * c - b * s;
            xh[p + half] = b * c + a * s;
        }
    }
}

/* ---- attention ---- */

void qn_ref_attn_decode(float *out, const float *q, const float *kc, const float *vc, int n_keys, int cap,
                        int Hq, int Hkv, int hd, float scale, float *scratch)
{
    int group = Hq / Hkv;
    for (int h = 0; h < Hq; h++) {
        const float *qh = q + (int64_t)h * hd;
        const float *K = kc + (int64_t)(h / group) * cap * hd, *V = vc + (int64_t)(h / group) * cap * hd;
        float mx = -INFINITY;
        for (int s = 0; s < n_keys; s++) {
            scratch[s] = (float)dot(qh, K + (int64_t)s * hd, hd) * scale;
            if (scratch[s] > mx) mx = scratch[s];
        }
        double sum = 0;
        for (int s = 0; s < n_keys; s++) sum += (scratch[s] = expf(scratch[s] - mx));
        float *oh = out + (int64_t)h * hd;
        memset(oh, 0, sizeof *oh * (size_t)hd);
        for (int s = 0; s < n_keys; s++) qn_ref_axpy(oh, (float)(scratch[s] / sum), V + (int64_t)s * hd, hd);
    }
}

/* ---- sparse MoE ---- */

void qn_ref_router(int *idx, float *w, const float *logits, int E, int k, int norm_topk, int round_bf16)
{
    double mx = -INFINITY, sum = 0;
    for (int e = 0; e < E; e++) {
        float l = round_bf16 ? qn_round_bf16(logits[e]) : logits[e];
        if (l > mx) mx = l;
    }
    for (int e = 0; e < E; e++) sum += exp((round_bf16 ? qn_round_bf16(logits[e]) : logits[e]) - mx);
    /* top-k by selection on the logits (softmax is monotonic), lower index first on ties */
    for (int j = 0; j < k; j++) {
        int best = -1;
        float bl = 0;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int i = 0; i < j; i++) taken |= idx[i] == e;
            float l = round_bf16 ? qn_round_bf16(logits[e]) : logits[e];
            if (!taken && (best < 0 || l > bl)) best = e, bl = l;
        }
        idx[j] = best;
        w[j] = (float)(exp(bl - mx) / sum);
    }
    if (norm_topk) {
        double s = 0;
        for (int j = 0; j < k; j++) s += w[j];
        for (int j = 0; j < k; j++) w[j] = (float)(w[j] / s);
    }
}

void qn_ref_expert_glu(float *y, const float *x, const float *Wg, const float *Wu, const float *Wd, int H, int I,
                       float *scratch)
{
    float *g = scratch, *u = scratch + I;
    qn_ref_matvec(g, Wg, x, I, H);
    qn_ref_matvec(u, Wu, x, I, H);
    for (int i = 0; i < I; i++) g[i] = qn_ref_silu(g[i]) * u[i];
    qn_ref_matvec(y, Wd, g, H, I);
}

void qn_ref_shared_expert(float *y, const float *x, const float *Wg, const float *Wu, const float *Wd,
                          const float *gate_w, int H, int I, float *scratch)
{
    qn_ref_expert_glu(y, x, Wg, Wu, Wd, H, I, scratch);
    float s = qn_ref_sigmoid((float)dot(gate_w, x, H));
    for (int i = 0; i < H; i++) y[i] *= s;
}
