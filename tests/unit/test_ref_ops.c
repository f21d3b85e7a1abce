/* test_ref_ops.c — unit tests of the plain-C reference ops (runtime/ref/ref_ops.c) on random inputs.
 *
 * Invariants and closed forms, each with a stated tolerance: chunked delta rule == token-by-token (several
 * shapes, chunk boundaries, carried state), conv sequence == steps == direct formula, the §2 row mapping of
 * in_proj_qkvz / in_proj_ba, RoPE and YaRN frequencies (§10's numbers), router top-k/renormalisation/bf16,
 * norms, attention and experts against naive double-precision formulas. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_num.h"
#include "qn_rng.h"
#include "ref_ops.h"
#include "../testutil.h"

static qn_rng rng;

static void check(int ok, const char *fmt, double v, double tol)
{
    printf("%-4s ", ok ? "ok" : "FAIL");
    printf(fmt, v, tol);
    printf("\n");
    failures += !ok;
}

static float *rnd(size_t n, float scale)
{
    float *p = malloc(sizeof *p * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = qn_rng_normal(&rng) * scale;
    return p;
}

/* ---- delta rule: chunked == recurrent ---- */

static void gdn_case(int T, int Hk, int Hv, int dk, int dv, int chunk)
{
    size_t nq = (size_t)T * Hk * dk, nv = (size_t)T * Hv * dv, ns = (size_t)Hv * dk * dv, ng = (size_t)T * Hv;
    float *q = rnd(nq, 1), *k = rnd(nq, 1), *v = rnd(nv, 1), *g = rnd(ng, 1), *beta = rnd(ng, 1);
    float *S0 = rnd(ns, 0.3f), *S1 = malloc(ns * 4), *S2 = malloc(ns * 4), *o1 = malloc(nv * 4), *o2 = malloc(nv * 4);
    for (int t = 0; t < T; t++) qn_ref_gdn_qk_norm(q + (size_t)t * Hk * dk, k + (size_t)t * Hk * dk, Hk, dk);
    for (size_t i = 0; i < ng; i++) {
        g[i] = -0.5f * qn_rng_uniform(&rng) * qn_rng_uniform(&rng); /* log decay in (-0.5, 0] */
        beta[i] = qn_rng_uniform(&rng);
    }
    memcpy(S1, S0, ns * 4);
    memcpy(S2, S0, ns * 4);
    float *scratch = malloc(sizeof(float) * (size_t)qn_ref_gdn_chunked_scratch(chunk, dk, dv));
    qn_ref_gdn_recurrent(o1, S1, q, k, v, g, beta, T, Hk, Hv, dk, dv);
    qn_ref_gdn_chunked(o2, S2, q, k, v, g, beta, T, Hk, Hv, dk, dv, chunk, scratch);
    double eo = rel_l2(o2, o1, nv), es = rel_l2(S2, S1, ns);
    char fmt[160];
    snprintf(fmt, sizeof fmt, "delta rule chunked(%d) vs recurrent T=%d Hk=%d Hv=%d dk=%d dv=%d: out %%.2e state %.2e (tol %%.0e)",
             chunk, T, Hk, Hv, dk, dv, es);
    check(eo < 1e-5 && es < 1e-5, fmt, eo, 1e-5);
    /* the same from two calls (state carried): first 37 tokens, then the rest */
    if (T > 37) {
        memcpy(S2, S0, ns * 4);
        qn_ref_gdn_chunked(o2, S2, q, k, v, g, beta, 37, Hk, Hv, dk, dv, chunk, scratch);
        qn_ref_gdn_chunked(o2 + (size_t)37 * Hv * dv, S2, q + (size_t)37 * Hk * dk, k + (size_t)37 * Hk * dk,
                           v + (size_t)37 * Hv * dv, g + 37 * Hv, beta + 37 * Hv, T - 37, Hk, Hv, dk, dv, chunk, scratch);
        eo = rel_l2(o2, o1, nv);
        check(eo < 1e-5, "delta rule chunked in two calls (37 + rest) vs one recurrent: %.2e (tol %.0e)", eo, 1e-5);
    }
    free(q); free(k); free(v); free(g); free(beta); free(S0); free(S1); free(S2); free(o1); free(o2); free(scratch);
}

/* One recurrent step against the §4 formulas written out in double. */
static void gdn_step_formula(void)
{
    int dk = 8, dv = 5;
    float *q = rnd(dk, 1), *k = rnd(dk, 1), *v = rnd(dv, 1), *S = rnd(dk * dv, 1), o[5];
    double Sd[40], od[5], g = -0.3, beta = 0.7;
    qn_ref_gdn_qk_norm(q, k, 1, dk);
    for (int i = 0; i < dk * dv; i++) Sd[i] = S[i] * exp(g);
    for (int j = 0; j < dv; j++) {
        double m = 0;
        for (int i = 0; i < dk; i++) m += Sd[i * dv + j] * k[i];
        for (int i = 0; i < dk; i++) Sd[i * dv + j] += k[i] * beta * (v[j] - m);
        od[j] = 0;
        for (int i = 0; i < dk; i++) od[j] += Sd[i * dv + j] * q[i];
    }
    float gf = (float)g, bf = (float)beta;
    qn_ref_gdn_step(o, S, q, k, v, &gf, &bf, 1, 1, dk, dv);
    double e = 0;
    for (int j = 0; j < dv; j++) e = fmax(e, fabs(o[j] - od[j]));
    check(e < 1e-5, "delta rule step vs §4 formula (decay, read, delta, write, read-after-write): max %.2e (tol %.0e)", e, 1e-5);
    free(q); free(k); free(v); free(S);
}

/* ---- conv1d ---- */

static void conv_tests(void)
{
    int T = 11, C = 6, K = 4;
    float *x = rnd((size_t)T * C, 1), *w = rnd((size_t)C * K, 1), *y1 = malloc(sizeof(float) * T * C),
          *y2 = malloc(sizeof(float) * T * C), st1[6 * 3] = { 0 }, st2[6 * 3] = { 0 };
    qn_ref_conv1d_seq(y1, st1, x, w, T, C, K);
    qn_ref_conv1d_seq(y2, st2, x, w, 5, C, K);                          /* split: 5 + 6 tokens */
    qn_ref_conv1d_seq(y2 + 5 * C, st2, x + 5 * C, w, T - 5, C, K);
    double e = rel_l2(y2, y1, (size_t)T * C), emax = 0;
    check(e < 1e-7, "conv1d sequence split 5 + 6 == one call: %.2e (tol %.0e)", e, 1e-7);
    for (int t = 0; t < T; t++)                                         /* u = sum_j w[j] x[t-3+j], zero padded */
        for (int c = 0; c < C; c++) {
            double u = 0;
            for (int j = 0; j < K; j++)
                if (t - (K - 1) + j >= 0) u += (double)w[c * K + j] * x[(t - (K - 1) + j) * C + c];
            emax = fmax(emax, fabs(y1[t * C + c] - u / (1 + exp(-u))));
        }
    check(emax < 1e-6, "conv1d vs silu(sum_j w[j] x[t-3+j]), zero left padding: max %.2e (tol %.0e)", emax, 1e-6);
    e = 0;
    for (int c = 0; c < C; c++)
        for (int j = 0; j < K - 1; j++) e = fmax(e, fabs(st1[c * 3 + j] - x[(T - 3 + j) * C + c]));
    check(e == 0, "conv1d state = last 3 raw inputs, oldest first: max %.2e (tol %.0e)", e, 0);
    free(x); free(w); free(y1); free(y2);
}

/* ---- §2 row mapping ---- */

static void split_case(int Hk, int Hv, int dk, int dv)
{
    int r = Hv / Hk, QZ = 2 * Hk * dk + 2 * Hv * dv, KD = Hk * dk, VD = Hv * dv;
    float *qkvz = malloc(sizeof(float) * QZ), *ba = malloc(sizeof(float) * 2 * Hv);
    float *mixed = malloc(sizeof(float) * (2 * KD + VD)), *z = malloc(sizeof(float) * VD), b[64], a[64];
    for (int i = 0; i < QZ; i++) qkvz[i] = (float)i;                    /* each value = its row index */
    for (int i = 0; i < 2 * Hv; i++) ba[i] = (float)i;
    qn_ref_gdn_split(mixed, z, b, a, qkvz, ba, Hk, Hv, dk, dv);
    int bad = 0, grp = 2 * dk + 2 * r * dv;
    for (int g = 0; g < Hk; g++)
        for (int d = 0; d < dk; d++) {
            bad += mixed[g * dk + d] != (float)(grp * g + d);
            bad += mixed[KD + g * dk + d] != (float)(grp * g + dk + d);
        }
    for (int h = 0; h < Hv; h++) {
        for (int d = 0; d < dv; d++) {
            bad += mixed[2 * KD + h * dv + d] != (float)(grp * (h / r) + 2 * dk + dv * (h % r) + d);
            bad += z[h * dv + d] != (float)(grp * (h / r) + 2 * dk + r * dv + dv * (h % r) + d);
        }
        bad += b[h] != (float)(2 * r * (h / r) + h % r) || a[h] != (float)(2 * r * (h / r) + r + h % r);
    }
    char fmt[128];
    snprintf(fmt, sizeof fmt, "in_proj_qkvz/ba split Hk=%d Hv=%d dk=%d dv=%d matches the spec rows: %%.0f wrong (tol %%.0f)",
             Hk, Hv, dk, dv);
    check(bad == 0, fmt, bad, 0);
    free(qkvz); free(ba); free(mixed); free(z);
}

/* ---- RoPE / YaRN ---- */

static void rope_tests(void)
{
    float f[32], y[32];
    double e = 0;
    qn_ref_rope_inv_freq(f, 64, 1e7, 1.0, 262144, 32, 1, 1);
    for (int p = 0; p < 32; p++) e = fmax(e, fabs(f[p] * pow(1e7, 2.0 * p / 64) - 1));
    check(e < 1e-6, "inv_freq = 1/1e7^(2p/64): max relative %.2e (tol %.0e)", e, 1e-6);
    qn_ref_rope_inv_freq(y, 64, 1e7, 4.0, 262144, 32, 1, 1);            /* §10: low 14, high 22 */
    e = 0;
    for (int p = 0; p < 32; p++) {
        double ramp = p <= 14 ? 0 : p >= 22 ? 1 : (p - 14) / 8.0;
        double want = f[p] / 4.0 * ramp + f[p] * (1 - ramp);
        e = fmax(e, fabs(y[p] / want - 1));
    }
    check(e < 1e-6, "YaRN x4 inv_freq: p<=14 kept, p>=22 / 4, linear ramp between: max relative %.2e (tol %.0e)", e, 1e-6);
    e = fabs(qn_ref_yarn_mscale(4.0) - 1.1386294);
    check(e < 1e-6, "YaRN attention factor 0.1 ln 4 + 1 = 1.1386294: |diff| %.2e (tol %.0e)", e, 1e-6);

    int H = 3, hd = 16, rot = 8;
    float *x = rnd((size_t)H * hd, 1), *x0 = malloc(sizeof(float) * H * hd), inv[4];
    memcpy(x0, x, sizeof(float) * H * hd);
    qn_ref_rope_inv_freq(inv, rot, 10000, 1, 1, 32, 1, 1);
    qn_ref_rope(x, H, hd, rot, 1234567, inv, 1.25f);
    e = 0;
    double en = 0;
    for (int h = 0; h < H; h++) {
        for (int d = rot; d < hd; d++) e = fmax(e, fabs(x[h * hd + d] - x0[h * hd + d]));
        for (int p = 0; p < rot / 2; p++) {                              /* pair (p, p + rot/2) rotated and scaled */
            float ang = (float)1234567 * inv[p];
            double c = cos(ang) * 1.25, s = sin(ang) * 1.25, a = x0[h * hd + p], b = x0[h * hd + p + rot / 2];
            en = fmax(en, fabs(x[h * hd + p] - (a * c - b * s)) + fabs(x[h * hd + p + rot / 2] - (b * c + a * s)));
        }
    }
    check(e == 0, "RoPE leaves dims rot..head_dim unchanged: max %.2e (tol %.0e)", e, 0);
    check(en < 1e-5, "RoPE rotate_half pairing p <-> p+rot/2, fp32 angle, cos/sin x attn factor: max %.2e (tol %.0e)", en, 1e-5);
    free(x); free(x0);
}

/* ---- router ---- */

static void router_tests(void)
{
    int E = 12, K = 4, idx[4], idx2[4];
    float *l = rnd(E, 2), w[4], w2[4];
    double sum = 0, z = 0, mx = -1e30;
    qn_ref_router(idx, w, l, E, K, 0, 0);
    for (int e = 0; e < E; e++) mx = fmax(mx, l[e]);
    for (int e = 0; e < E; e++) z += exp(l[e] - mx);
    double err = 0;
    int order = 1;
    for (int j = 0; j < K; j++) {
        err = fmax(err, fabs(w[j] - exp(l[idx[j]] - mx) / z));
        for (int e = 0; e < E; e++) {                                   /* nothing unpicked beats a picked one */
            int picked = 0;
            for (int i = 0; i < K; i++) picked |= idx[i] == e;
            order &= picked || l[e] <= l[idx[j]];
        }
    }
    check(err < 1e-6 && order, "router top-k = largest logits, weights = full-softmax probabilities: max %.2e (tol %.0e)", err, 1e-6);
    qn_ref_router(idx2, w2, l, E, K, 1, 0);
    for (int j = 0; j < K; j++) sum += w2[j];
    err = 0;
    for (int j = 0; j < K; j++) err = fmax(err, fabs(w2[j] - w[j] / (w[0] + w[1] + w[2] + w[3])));
    check(err < 1e-6 && fabs(sum - 1) < 1e-6, "router norm_topk_prob: weights renormalised to sum 1: max %.2e (tol %.0e)", err, 1e-6);
    /* bf16 rounding: 1.0 and 1.001 are the same bf16 value -> the tie goes to the lower index */
    float tie[3] = { 1.0f, 1.001f, -3.0f };
    qn_ref_router(idx, w, tie, 3, 1, 1, 0);
    qn_ref_router(idx2, w2, tie, 3, 1, 1, 1);
    check(idx[0] == 1 && idx2[0] == 0, "router logits rounded to bf16 before softmax (near-tie resolved as HF bf16): %.0f (tol %.0f)",
          idx2[0], 0);
    free(l);
}

/* ---- norms, attention, experts ---- */

static void norm_tests(void)
{
    int n = 64;
    float *x = rnd(n, 3), *w = rnd(n, 0.2f), *z = rnd(n, 1), y[64];
    double ms = 0, e = 0;
    for (int i = 0; i < n; i++) ms += (double)x[i] * x[i];
    double r = 1 / sqrt(ms / n + 1e-6);
    qn_ref_rmsnorm_zc(y, x, w, n, 1e-6f);
    for (int i = 0; i < n; i++) e = fmax(e, fabs(y[i] - x[i] * r * (1 + w[i])));
    check(e < 1e-5, "zero-centred RMSNorm x*rsqrt(mean x^2 + eps)*(1+w): max %.2e (tol %.0e)", e, 1e-5);
    qn_ref_rmsnorm_gated(y, x, z, w, n, 1e-6f);
    e = 0;
    for (int i = 0; i < n; i++) e = fmax(e, fabs(y[i] - w[i] * x[i] * r * z[i] / (1 + exp(-z[i]))));
    check(e < 1e-5, "gated RMSNorm w*norm(o)*silu(z) (plain w): max %.2e (tol %.0e)", e, 1e-5);
    qn_ref_l2norm(y, x, n, 1e-6f);
    e = 0;
    for (int i = 0; i < n; i++) e = fmax(e, fabs(y[i] - x[i] / sqrt(ms + 1e-6)));
    check(e < 1e-6, "L2 norm x/sqrt(sum x^2 + eps): max %.2e (tol %.0e)", e, 1e-6);
    free(x); free(w); free(z);
}

static void attn_tests(void)
{
    int Hq = 4, Hkv = 2, hd = 8, cap = 10, n = 7;
    float *q = rnd((size_t)Hq * hd, 1), *kc = rnd((size_t)Hkv * cap * hd, 1), *vc = rnd((size_t)Hkv * cap * hd, 1);
    float out[32], sc[10];
    qn_ref_attn_decode(out, q, kc, vc, n, cap, Hq, Hkv, hd, 0.3f, sc);
    double e = 0;
    for (int h = 0; h < Hq; h++) {
        int kv = h / (Hq / Hkv);
        double p[10], z = 0, mx = -1e30;
        for (int s = 0; s < n; s++) {
            p[s] = 0;
            for (int d = 0; d < hd; d++) p[s] += (double)q[h * hd + d] * kc[(kv * cap + s) * hd + d] * 0.3;
            mx = fmax(mx, p[s]);
        }
        for (int s = 0; s < n; s++) z += (p[s] = exp(p[s] - mx));
        for (int d = 0; d < hd; d++) {
            double o = 0;
            for (int s = 0; s < n; s++) o += p[s] / z * vc[(kv * cap + s) * hd + d];
            e = fmax(e, fabs(out[h * hd + d] - o));
        }
    }
    check(e < 1e-6, "attention softmax(q.k*scale).v, GQA head h -> kv h/(Hq/Hkv), keys 0..n-1 only: max %.2e (tol %.0e)", e, 1e-6);
    free(q); free(kc); free(vc);
}

static void expert_tests(void)
{
    int H = 24, I = 10;
    float *x = rnd(H, 1), *Wg = rnd((size_t)I * H, 0.3f), *Wu = rnd((size_t)I * H, 0.3f), *Wd = rnd((size_t)H * I, 0.3f);
    float *gw = rnd(H, 0.3f), y[24], ys[24], scratch[20];
    qn_ref_expert_glu(y, x, Wg, Wu, Wd, H, I, scratch);
    qn_ref_shared_expert(ys, x, Wg, Wu, Wd, gw, H, I, scratch);
    double hmid[10], e = 0, es = 0, gs = 0;
    for (int i = 0; i < I; i++) {
        double g = 0, u = 0;
        for (int j = 0; j < H; j++) g += (double)Wg[i * H + j] * x[j], u += (double)Wu[i * H + j] * x[j];
        hmid[i] = g / (1 + exp(-g)) * u;
    }
    for (int j = 0; j < H; j++) gs += (double)gw[j] * x[j];
    for (int j = 0; j < H; j++) {
        double o = 0;
        for (int i = 0; i < I; i++) o += Wd[j * I + i] * hmid[i];
        e = fmax(e, fabs(y[j] - o));
        es = fmax(es, fabs(ys[j] - o / (1 + exp(-gs))));
    }
    check(e < 1e-5, "expert down(silu(gate x) * up x): max %.2e (tol %.0e)", e, 1e-5);
    check(es < 1e-5, "shared expert sigmoid(gate_w.x) * expert(x): max %.2e (tol %.0e)", es, 1e-5);
    free(x); free(Wg); free(Wu); free(Wd); free(gw);
}

int main(void)
{
    qn_test_crash_report();
    qn_rng_seed(&rng, 20240611);
    gdn_step_formula();
    gdn_case(1, 2, 4, 16, 16, 64);
    gdn_case(64, 2, 4, 16, 16, 64);
    gdn_case(65, 1, 3, 8, 12, 64);
    gdn_case(150, 2, 6, 32, 48, 64);
    gdn_case(100, 4, 8, 16, 16, 16);
    conv_tests();
    split_case(16, 32, 128, 128);
    split_case(2, 6, 32, 48);
    rope_tests();
    router_tests();
    norm_tests();
    attn_tests();
    expert_tests();
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
