/* test_gdn.c — the Gated DeltaNet kernels (gdn_conv, gdn_recurrent, gdn_chunked, gated_rmsnorm) against the
 * C reference (runtime/ref/ref_ops.h) on realistic random inputs: q/k/v ~ N(0,1), a, b ~ N(0,1),
 * A_log = log(U(1,16)), dt_bias ~ N(0,0.5), states ~ N(0,0.5) or zeros.
 *
 * Cases: decode step sequences carrying state, prefill from zero and from a nonzero state (T = 1, 3, 63, 64,
 * 65, 150 at odd shapes), chunked == recurrent (GPU vs GPU and vs the reference, T up to 1000 at the real
 * shape Hk=16 Hv=32 dk=dv=128), prefill split over two calls, several workgroup layouts (spec constants), and
 * the whole chain proj -> conv -> delta rule -> gated norm. Errors are measured relative to the RMS of the
 * reference (atol = tol * rms, rtol = tol), so near-zero elements do not dominate. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "harness.h"
#include "ref_ops.h"

static struct qn_h H;

/* ---- shapes and inputs ---- */

struct shape {
    uint32_t Hk, Hv, dk, dv;
};
/* conv channels [q | k | v], then z, b, a in the projection row (docs/forward-kernels.md) */
static uint32_t conv_dim(struct shape s) { return 2 * s.Hk * s.dk + s.Hv * s.dv; }
static uint32_t z_off(struct shape s) { return conv_dim(s); }
static uint32_t b_off(struct shape s) { return conv_dim(s) + s.Hv * s.dv; }
static uint32_t a_off(struct shape s) { return b_off(s) + s.Hv; }
static uint32_t proj_stride(struct shape s) { return a_off(s) + s.Hv; }

static const struct shape REAL = { 16, 32, 128, 128 }, ODD = { 2, 6, 32, 48 }, TINY = { 1, 3, 20, 12 };
/* real head dims with fewer heads: long sequences within the lavapipe time budget */
static const struct shape REAL_FEW = { 2, 4, 128, 128 }, REAL_SOME = { 4, 8, 128, 128 };

/* n samples of N(mean, sd), never exactly zero */
static float *normal(size_t n, float mean, float sd)
{
    float *x = qn_h_alloc(&H, n);
    for (size_t i = 0; i < n; i++) {
        do x[i] = mean + sd * qn_rng_normal(&H.rng);
        while (x[i] == 0.0f);
    }
    return x;
}

/* Inputs of the delta rule for T tokens: qkv [T][conv_dim] (the conv output), proj [T][proj_stride]
 * (b, a read from it), A_log, dt_bias [Hv]. */
struct gdn_in {
    struct shape s;
    uint32_t T;
    float *qkv, *proj, *alog, *dtb;
    qn_buf *qkv_b, *proj_b, *alog_b, *dtb_b;
};

static struct gdn_in make_in(struct shape s, uint32_t T)
{
    struct gdn_in in = { .s = s, .T = T };
    in.qkv = normal((size_t)T * conv_dim(s), 0, 1);
    in.proj = normal((size_t)T * proj_stride(s), 0, 1);
    in.alog = qn_h_alloc(&H, s.Hv);
    in.dtb = normal(s.Hv, 0, 0.5f);
    for (uint32_t h = 0; h < s.Hv; h++) {
        in.alog[h] = logf(qn_rng_range(&H.rng, 1, 16));
        /* every third head decays slowly (g ~ -0.005: memory over hundreds of tokens, so the state carried
         * across chunks and calls matters); the others forget within a few tokens */
        if (h % 3 == 1) {
            in.alog[h] = logf(qn_rng_range(&H.rng, 0.01f, 0.2f));
            in.dtb[h] -= 3.0f;
        }
    }
    in.qkv_b = qn_h_upload(&H, "qkv", in.qkv, (size_t)T * conv_dim(s) * 4);
    in.proj_b = qn_h_upload(&H, "proj", in.proj, (size_t)T * proj_stride(s) * 4);
    in.alog_b = qn_h_upload(&H, "A_log", in.alog, s.Hv * 4);
    in.dtb_b = qn_h_upload(&H, "dt_bias", in.dtb, s.Hv * 4);
    return in;
}

static size_t state_n(struct shape s) { return (size_t)s.Hv * s.dk * s.dv; }
static size_t out_n(struct shape s, uint32_t T) { return (size_t)T * s.Hv * s.dv; }

/* ---- checks ---- */

static double rms(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s / (n ? n : 1));
}

/* |got - ref| <= tol * (rms(ref) + |ref|) elementwise */
static void check_rel(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    qn_h_check_host(&H, what, got, ref, n, tol * rms(ref, n), tol);
}

/* ---- reference delta rule on the same inputs ---- */

/* Tokens [t0, t0 + T) of `in`: o [T][Hv][dv], S updated. */
static void ref_delta(const struct gdn_in *in, uint32_t t0, uint32_t T, float *S, float *o)
{
    struct shape s = in->s;
    size_t kd = (size_t)s.Hk * s.dk, vd = (size_t)s.Hv * s.dv, cd = conv_dim(s), ps = proj_stride(s);
    float *q = qn_h_alloc(&H, T * kd), *k = qn_h_alloc(&H, T * kd), *v = qn_h_alloc(&H, T * vd);
    float *g = qn_h_alloc(&H, (size_t)T * s.Hv), *beta = qn_h_alloc(&H, (size_t)T * s.Hv);
    for (uint32_t t = 0; t < T; t++) {
        const float *row = in->qkv + (t0 + t) * cd, *pr = in->proj + (t0 + t) * ps;
        memcpy(q + t * kd, row, kd * 4);
        memcpy(k + t * kd, row + kd, kd * 4);
        memcpy(v + t * vd, row + 2 * kd, vd * 4);
        qn_ref_gdn_qk_norm(q + t * kd, k + t * kd, (int)s.Hk, (int)s.dk);
        qn_ref_gdn_gates(g + (size_t)t * s.Hv, beta + (size_t)t * s.Hv, pr + a_off(s), pr + b_off(s), in->alog,
                         in->dtb, (int)s.Hv);
    }
    qn_ref_gdn_recurrent(o, S, q, k, v, g, beta, (int)T, (int)s.Hk, (int)s.Hv, (int)s.dk, (int)s.dv);
}

/* ---- GPU delta rule ---- */

/* Run kernel `p` (gdn_recurrent or gdn_chunked) over tokens [t0, t0 + T) of `in` (bound as a sub-range:
 * tests the offsets) with state buffer S; o receives [T][Hv][dv]. */
static void run_delta(const qn_pipe *p, const struct gdn_in *in, uint32_t t0, uint32_t T, qn_buf *S, qn_buf *o)
{
    struct shape s = in->s;
    uint32_t bv = qn_pipe_spec(p, 1), nblk = (s.dv + bv - 1) / bv;
    qn_pc_gdn pc = {
        .T = T, .Hk = s.Hk, .Hv = s.Hv, .dk = s.dk, .dv = s.dv,
        .qkv_stride = conv_dim(s), .q_off = 0, .k_off = s.Hk * s.dk, .v_off = 2 * s.Hk * s.dk,
        .proj_stride = proj_stride(s), .b_off = b_off(s), .a_off = a_off(s),
    };
    uint64_t qo = (uint64_t)t0 * conv_dim(s) * 4, po = (uint64_t)t0 * proj_stride(s) * 4;
    if (qo % 16 || po % 16) { /* binding offsets must be aligned: fall back to whole buffers */
        fprintf(stderr, "test_gdn: unaligned token offset %u\n", t0);
        H.failures++;
        return;
    }
    qn_h_run(&H, p, QN_BINDS(QN_BIND_RANGE(in->qkv_b, qo, (uint64_t)T * conv_dim(s) * 4),
                             QN_BIND_RANGE(in->proj_b, po, (uint64_t)T * proj_stride(s) * 4),
                             QN_BIND(in->alog_b), QN_BIND(in->dtb_b), QN_BIND(S), QN_BIND(o)),
             &pc, sizeof pc, (uint64_t)s.Hv * nblk);
}

static qn_pipe *delta_pipe(bool chunked, const uint32_t *spec, uint32_t nspec)
{
    return qn_h_pipe_spec(&H, chunked ? QN_K_GDN_CHUNKED : QN_K_GDN_RECURRENT, spec, nspec);
}

static const char *spec_str(const qn_pipe *p, char *buf, size_t n)
{
    const struct qn_kernel_info *ki = qn_pipe_info(p);
    int k = snprintf(buf, n, "%s(", ki->name);
    for (uint32_t i = 0; i < ki->nspec && k < (int)n; i++) k += snprintf(buf + k, n - k, "%s%u", i ? "," : "", qn_pipe_spec(p, i));
    if (k < (int)n) snprintf(buf + k, n - k, ")");
    return buf;
}

/* f32 tolerances of the delta rule, relative to the RMS of the reference output / state. Measured on lavapipe
 * (max |err| / rms over all cases): gdn_recurrent vs reference 1.8e-5 (T=300, slow-decay heads: the state
 * sums hundreds of f32 rank-1 updates); gdn_chunked vs reference 6e-6 (its compensated decay prefix sum
 * matters: a plain f32 cumsum gave 3.8e-5), chunked vs the GPU recurrent kernel 1.5e-5. */
#define TOL_RECURRENT 5e-5
#define TOL_CHUNKED 5e-5

/* One prefill of T tokens from a zero or a random state vs the reference. */
static void delta_case(bool chunked, const uint32_t *spec, uint32_t nspec, struct shape s, uint32_t T, bool zero_state)
{
    qn_pipe *p = delta_pipe(chunked, spec, nspec);
    struct gdn_in in = make_in(s, T);
    float *S0 = zero_state ? qn_h_alloc(&H, state_n(s)) : normal(state_n(s), 0, 0.5f);
    qn_buf *S = qn_h_upload(&H, "S", S0, state_n(s) * 4), *o = qn_h_output(&H, "o", out_n(s, T));
    run_delta(p, &in, 0, T, S, o);
    float *ref = qn_h_alloc(&H, out_n(s, T));
    ref_delta(&in, 0, T, S0, ref);
    char what[200], sp[64];
    double tol = chunked ? TOL_CHUNKED : TOL_RECURRENT;
    snprintf(what, sizeof what, "%s Hk=%u Hv=%u dk=%u dv=%u T=%u %s state: o", spec_str(p, sp, sizeof sp), s.Hk,
             s.Hv, s.dk, s.dv, T, zero_state ? "zero" : "random");
    check_rel(what, qn_h_read(&H, o, out_n(s, T)), ref, out_n(s, T), tol);
    memcpy(what + strlen(what) - 1, "S", 2);
    check_rel(what, qn_h_read(&H, S, state_n(s)), S0, state_n(s), tol);
    qn_h_reset(&H);
}

/* Decode: `steps` calls with T = 1 carrying the state (the same inputs as one sequence). */
static void decode_case(const uint32_t *spec, uint32_t nspec, struct shape s, uint32_t steps)
{
    qn_pipe *p = delta_pipe(false, spec, nspec);
    struct gdn_in in = make_in(s, steps);
    float *S0 = normal(state_n(s), 0, 0.5f), *ref = qn_h_alloc(&H, out_n(s, steps));
    qn_buf *S = qn_h_upload(&H, "S", S0, state_n(s) * 4), *o = qn_h_output(&H, "o", out_n(s, 1));
    float *got = qn_h_alloc(&H, out_n(s, steps));
    for (uint32_t t = 0; t < steps; t++) {
        run_delta(p, &in, t, 1, S, o);
        qn_h_ok(&H, qn_buf_read(H.v, o, 0, got + out_n(s, t), out_n(s, 1) * 4), "o");
    }
    ref_delta(&in, 0, steps, S0, ref);
    char what[200], sp[64];
    snprintf(what, sizeof what, "%s Hk=%u Hv=%u dk=%u dv=%u decode %u steps: o", spec_str(p, sp, sizeof sp), s.Hk,
             s.Hv, s.dk, s.dv, steps);
    check_rel(what, got, ref, out_n(s, steps), TOL_RECURRENT);
    memcpy(what + strlen(what) - 1, "S", 2);
    check_rel(what, qn_h_read(&H, S, state_n(s)), S0, state_n(s), TOL_RECURRENT);
    qn_h_reset(&H);
}

/* Long prefill: chunked (one call, and split in two calls at `split`) vs the GPU recurrent kernel and vs the
 * reference, from a random state. */
static void long_case(struct shape s, uint32_t T, uint32_t split, const uint32_t *cspec, uint32_t ncspec)
{
    qn_pipe *pc = delta_pipe(true, cspec, ncspec), *pr = delta_pipe(false, NULL, 0);
    struct gdn_in in = make_in(s, T);
    size_t ns = state_n(s), no = out_n(s, T);
    float *S0 = normal(ns, 0, 0.5f), *ref = qn_h_alloc(&H, no);
    qn_buf *Sc = qn_h_upload(&H, "Sc", S0, ns * 4), *Sr = qn_h_upload(&H, "Sr", S0, ns * 4);
    qn_buf *Ss = qn_h_upload(&H, "Ss", S0, ns * 4);
    qn_buf *oc = qn_h_output(&H, "oc", no), *or_ = qn_h_output(&H, "or", no), *os = qn_h_output(&H, "os", no);
    run_delta(pc, &in, 0, T, Sc, oc);
    run_delta(pr, &in, 0, T, Sr, or_);
    run_delta(pc, &in, 0, split, Ss, os);
    float *o1 = qn_h_read(&H, os, out_n(s, split));
    run_delta(pc, &in, split, T - split, Ss, os);
    float *o2 = qn_h_read(&H, os, out_n(s, T - split)), *osplit = qn_h_alloc(&H, no);
    memcpy(osplit, o1, out_n(s, split) * 4);
    memcpy(osplit + out_n(s, split), o2, out_n(s, T - split) * 4);
    float *gc = qn_h_read(&H, oc, no), *gr = qn_h_read(&H, or_, no);
    float *gSc = qn_h_read(&H, Sc, ns), *gSr = qn_h_read(&H, Sr, ns), *gSs = qn_h_read(&H, Ss, ns);
    ref_delta(&in, 0, T, S0, ref);
    char what[200], sp[64];
    const char *cn = spec_str(pc, sp, sizeof sp);
#define W(...) (snprintf(what, sizeof what, __VA_ARGS__), what)
    check_rel(W("%s T=%u Hv=%u dk=%u dv=%u: o vs reference", cn, T, s.Hv, s.dk, s.dv), gc, ref, no, TOL_CHUNKED);
    check_rel(W("%s T=%u: S vs reference", cn, T), gSc, S0, ns, TOL_CHUNKED);
    check_rel(W("%s T=%u: o vs gdn_recurrent (GPU)", cn, T), gc, gr, no, TOL_CHUNKED);
    check_rel(W("%s T=%u: S vs gdn_recurrent (GPU)", cn, T), gSc, gSr, ns, TOL_CHUNKED);
    check_rel(W("gdn_recurrent T=%u: o vs reference", T), gr, ref, no, TOL_RECURRENT);
    check_rel(W("gdn_recurrent T=%u: S vs reference", T), gSr, S0, ns, TOL_RECURRENT);
    check_rel(W("%s T=%u as %u + %u: o vs reference", cn, T, split, T - split), osplit, ref, no, TOL_CHUNKED);
    check_rel(W("%s T=%u as %u + %u: S vs reference", cn, T, split, T - split), gSs, S0, ns, TOL_CHUNKED);
#undef W
    qn_h_reset(&H);
}

/* ---- the two-pass chunked delta rule: gdn_chunk_wy_inv (per-chunk factors of all chunks), gdn_chunk_state ---- */

#define WY_C 64 /* chunk of both passes */

/* pass 1: gdn_chunk_wy_inv at the column block CB that wy_set_cb chose */
static const qn_pipe *wy_pa;

/* Pass 1 at column block cb (16, 32, 64) into wy_pa; false (and a skip line when `say`) where its shared memory does
 * not fit the device (lavapipe's 32 KiB hold CB 16 only) */
static bool wy_set_cb(uint32_t cb, bool say)
{
    uint32_t need = qn_gdn_wy_inv_shared(cb), have = qn_vk_caps(H.v)->max_shared;
    if (need > have) {
        if (say) printf("skip gdn_chunk_wy_inv(%u): %u bytes of shared memory, the device has %u\n", cb, need, have);
        return false;
    }
    wy_pa = qn_h_pipe(&H, QN_K_GDN_CHUNK_WY_INV, cb);
    return true;
}

/* floats of one scratch record (pc_gdn.h) */
static uint64_t wy_rec(struct shape s) { return 2ull * WY_C * s.dk + (uint64_t)WY_C * s.dv + WY_C + 4; }

/* Both passes over tokens [t0, t0 + T) of `in` (bound as a sub-range, as run_delta) in segments of `seg` chunks
 * (0: one segment); pass 2 with pipeline `pb` (spec WG, BV, DK_MAX); scratch `scr` (NULL: a new one). ms[0] / ms[1]
 * (if not NULL): GPU ms of all pass-1 / pass-2 dispatches. */
static void run_wy(const qn_pipe *pb, const struct gdn_in *in, uint32_t t0, uint32_t T, qn_buf *S, qn_buf *o,
                   uint32_t seg, qn_buf *scr, double *ms)
{
    struct shape s = in->s;
    uint32_t nch = (T + WY_C - 1) / WY_C, nc = seg && seg < nch ? seg : nch, bv = qn_pipe_spec(pb, 1);
    if (!scr) scr = qn_h_buffer(&H, "wy scratch", (size_t)wy_rec(s) * s.Hv * nc * 4);
    uint64_t qo = (uint64_t)t0 * conv_dim(s) * 4, po = (uint64_t)t0 * proj_stride(s) * 4;
    if (qo % 16 || po % 16) {
        fprintf(stderr, "test_gdn: unaligned token offset %u\n", t0);
        H.failures++;
        return;
    }
    struct qn_bind Q = QN_BIND_RANGE(in->qkv_b, qo, (uint64_t)T * conv_dim(s) * 4);
    struct qn_bind P = QN_BIND_RANGE(in->proj_b, po, (uint64_t)T * proj_stride(s) * 4);
    if (ms) ms[0] = ms[1] = 0;
    for (uint32_t c = 0; c < nch; c += nc) {
        qn_pc_gdn_wy pc = {
            .T = T, .t0 = c * WY_C, .nc = nc, .Hk = s.Hk, .Hv = s.Hv, .dk = s.dk, .dv = s.dv,
            .qkv_stride = conv_dim(s), .q_off = 0, .k_off = s.Hk * s.dk, .v_off = 2 * s.Hk * s.dk,
            .proj_stride = proj_stride(s), .b_off = b_off(s), .a_off = a_off(s),
        };
        double a = qn_h_run(&H, wy_pa,
                            QN_BINDS(Q, P, QN_BIND(in->alog_b), QN_BIND(in->dtb_b), QN_BIND(scr), QN_BIND(o)), &pc,
                            sizeof pc, (uint64_t)nc * s.Hv);
        double b = qn_h_run(&H, pb, QN_BINDS(Q, QN_BIND(scr), QN_BIND(S), QN_BIND(o)), &pc, sizeof pc,
                            (uint64_t)s.Hv * ((s.dv + bv - 1) / bv));
        if (ms) ms[0] += a, ms[1] += b;
    }
}

/* Bytes of shared memory of gdn_chunk_state with spec (WG, BV, DK_MAX, PF) */
static uint32_t wy_shared(const uint32_t sp[4]) { return qn_gdn_wy_state_shared(sp[2], sp[1]); }

static qn_pipe *wy_pipe(const uint32_t *spec) { return qn_h_pipe_spec(&H, QN_K_GDN_CHUNK_STATE, spec, spec ? 4 : 0); }

/* One prefill of T tokens (from a zero or a random state) in segments of seg chunks vs the reference; then, from
 * the state it left, a second call of T2 tokens (0: none) against the reference continued. */
static void wy_case(const uint32_t *spec, struct shape s, uint32_t T, bool zero_state, uint32_t seg, uint32_t T2)
{
    static const uint32_t dflt[4] = { 256, 16, 128, 1 };
    uint32_t need = wy_shared(spec ? spec : dflt), have = qn_vk_caps(H.v)->max_shared;
    if (need > have) { /* e.g. BV 32 on lavapipe's 32 KiB: the GPU runs it */
        printf("skip gdn_chunk_state(%u,%u,%u,%u): %u bytes of shared memory, the device has %u\n", (spec ? spec : dflt)[0],
               (spec ? spec : dflt)[1], (spec ? spec : dflt)[2], (spec ? spec : dflt)[3], need, have);
        return;
    }
    qn_pipe *pb = wy_pipe(spec);
    struct gdn_in in = make_in(s, T + T2);
    float *S0 = zero_state ? qn_h_alloc(&H, state_n(s)) : normal(state_n(s), 0, 0.5f);
    qn_buf *S = qn_h_upload(&H, "S", S0, state_n(s) * 4), *o = qn_h_output(&H, "o", out_n(s, T + T2));
    run_wy(pb, &in, 0, T, S, o, seg, NULL, NULL);
    float *got = qn_h_alloc(&H, out_n(s, T + T2));
    memcpy(got, qn_h_read(&H, o, out_n(s, T)), out_n(s, T) * 4);
    if (T2) {
        run_wy(pb, &in, T, T2, S, o, seg, NULL, NULL);
        memcpy(got + out_n(s, T), qn_h_read(&H, o, out_n(s, T2)), out_n(s, T2) * 4);
    }
    float *ref = qn_h_alloc(&H, out_n(s, T + T2));
    ref_delta(&in, 0, T + T2, S0, ref);
    char what[240], sp[64], spa[64];
    snprintf(what, sizeof what, "%s + %s Hk=%u Hv=%u dk=%u dv=%u T=%u%s%.0u seg %u, %s state: o",
             spec_str(wy_pa, spa, sizeof spa), spec_str(pb, sp, sizeof sp), s.Hk, s.Hv, s.dk, s.dv, T, T2 ? "+" : "", T2, seg, zero_state ? "zero" : "random");
    check_rel(what, got, ref, out_n(s, T + T2), TOL_CHUNKED);
    memcpy(what + strlen(what) - 1, "S", 2);
    check_rel(what, qn_h_read(&H, S, state_n(s)), S0, state_n(s), TOL_CHUNKED);
    qn_h_reset(&H);
}

/* After a delta-rule dispatch of 5 TINY tokens with dk above the kernel's QN_DK_MAX: every output NaN and the state
 * S (uploaded from S0) left alone; resets the harness. */
static void check_dk_refused(const qn_pipe *p, const qn_buf *o, const qn_buf *S, const float *S0)
{
    float *got = qn_h_read(&H, o, out_n(TINY, 5));
    size_t nan = 0;
    for (size_t i = 0; i < out_n(TINY, 5); i++) nan += isnan(got[i]) ? 1 : 0;
    H.checks++;
    bool ok = nan == out_n(TINY, 5);
    H.failures += !ok;
    char sp[64];
    printf("%-4s %s with dk=20 > QN_DK_MAX: %zu of %zu outputs NaN\n", ok ? "ok" : "FAIL", spec_str(p, sp, sizeof sp),
           nan, out_n(TINY, 5));
    qn_h_check(&H, "... and the state is left alone", S, S0, state_n(TINY), 0, 0);
    qn_h_reset(&H);
}

/* Pass 2 with QN_DK_MAX below dk must say so (NaN output) and leave the state alone. */
static void wy_dk_max_case(void)
{
    static const uint32_t sp[] = { 256, 16, 16, 1 }; /* dk = 20 > 16 */
    qn_pipe *pb = wy_pipe(sp);
    struct gdn_in in = make_in(TINY, 5);
    float *S0 = normal(state_n(TINY), 0, 0.5f);
    qn_buf *S = qn_h_upload(&H, "S", S0, state_n(TINY) * 4), *o = qn_h_output(&H, "o", out_n(TINY, 5));
    run_wy(pb, &in, 0, 5, S, o, 0, NULL, NULL);
    check_dk_refused(pb, o, S, S0);
}

/* Every case below per column block CB of pass 1 that fits the device, against the reference */
static void wy_tests(void)
{
    static const uint32_t Ts[] = { 1, 3, 63, 64, 65, 150, 300 };
    /* pass-2 layouts (WG, BV, DK_MAX, PF) */
    static const uint32_t sp[][4] = { { 256, 16, 128, 1 }, { 128, 32, 32, 1 }, { 256, 8, 128, 0 }, { 128, 8, 32, 1 },
                                      { 64, 4, 32, 0 } };
    static const uint32_t bv32[4] = { 256, 32, 128, 1 }; /* 43,008 bytes of shared memory: not on lavapipe */
    for (uint32_t cb = 16; cb <= 64; cb *= 2) {
        if (!wy_set_cb(cb, true)) continue;
        for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++)
            for (int z = 0; z < 2; z++) wy_case(sp[(i + z) % 5], ODD, Ts[i], z, (uint32_t)(i % 3), 0);
        wy_case(sp[3], TINY, 70, false, 1, 0);
        wy_case(NULL, REAL, 65, false, 0, 0);
        wy_case(bv32, REAL, 130, false, 1, 0);
        wy_case((const uint32_t[4]){ 256, 32, 128, 0 }, REAL, 200, false, 0, 0);
        wy_case((const uint32_t[4]){ 256, 16, 128, 0 }, REAL_FEW, 300, false, 2, 70);
        wy_case((const uint32_t[4]){ 128, 8, 128, 1 }, (struct shape){ 1, 2, 96, 16 }, 200, false, 0, 0); /* 5 stages */
        wy_case(sp[2], REAL, 130, false, 1, 0);
        wy_case(sp[2], REAL_SOME, 200, false, 2, 77); /* a second call from the state the first left */
        wy_case(sp[0], REAL_FEW, 1000, false, 4, 0);
        wy_case(sp[4], ODD, 1000, false, 0, 100);
        wy_dk_max_case();
    }
}

/* ---- conv ---- */

/* A sequence of calls with lengths Ts[] carrying the conv state, channels C, kernel K, layout (wg, ts). */
static void conv_case(uint32_t C, uint32_t stride, uint32_t K, uint32_t wg, uint32_t ts, const uint32_t *Ts, int ncalls)
{
    qn_pipe *p = qn_h_pipe(&H, QN_K_GDN_CONV, wg, ts, K);
    uint32_t Tmax = 0;
    for (int c = 0; c < ncalls; c++) Tmax = Ts[c] > Tmax ? Ts[c] : Tmax;
    float *w = normal((size_t)C * K, 0, 0.5f), *st = normal((size_t)C * (K - 1), 0, 1);
    qn_buf *wb = qn_h_upload(&H, "conv_w", w, (size_t)C * K * 4);
    qn_buf *sb = qn_h_upload(&H, "conv_state", st, (size_t)C * (K - 1) * 4);
    qn_buf *yb = qn_h_output(&H, "qkv", (size_t)Tmax * C);
    float *xc = qn_h_alloc(&H, (size_t)Tmax * C), *ref = qn_h_alloc(&H, (size_t)Tmax * C);
    for (int c = 0; c < ncalls; c++) {
        uint32_t T = Ts[c];
        float *x = normal((size_t)T * stride, 0, 1);
        qn_buf *xb = qn_h_upload(&H, "proj", x, (size_t)T * stride * 4);
        qn_pc_gdn_conv pc = { .T = T, .channels = C, .in_stride = stride, .out_stride = C };
        qn_h_run(&H, p, QN_BINDS(QN_BIND(xb), QN_BIND(wb), QN_BIND(sb), QN_BIND(yb)), &pc, sizeof pc,
                 (C + wg / ts - 1) / (wg / ts));
        for (uint32_t t = 0; t < T; t++) memcpy(xc + (size_t)t * C, x + (size_t)t * stride, (size_t)C * 4);
        qn_ref_conv1d_seq(ref, st, xc, w, (int)T, (int)C, (int)K);
        char what[160];
        snprintf(what, sizeof what, "gdn_conv(%u,%u,%u) C=%u call %d T=%u: out", wg, ts, K, C, c, T);
        /* K products of N(0,1) values, f32 vs double accumulation, then silu: measured ~1e-7 */
        qn_h_check(&H, what, yb, ref, (size_t)T * C, 1e-6, 1e-5);
        memcpy(what + strlen(what) - 3, "state", 6);
        qn_h_check(&H, what, sb, st, (size_t)C * (K - 1), 0, 0); /* copies: exact */
    }
    qn_h_reset(&H);
}

static void conv_tests(void)
{
    static const uint32_t seq[] = { 1, 1, 1, 2, 1, 5, 64, 3, 150 };
    int n = (int)(sizeof seq / sizeof seq[0]);
    uint32_t cd = conv_dim(REAL), ps = proj_stride(REAL);
    conv_case(cd, ps, 4, 128, 1, seq, n);
    conv_case(cd, ps, 4, 256, 8, seq, n);
    conv_case(cd, ps, 4, 1024, 32, seq, n); /* a wide prefill layout (QNEXT_GDN_CONV_LAYOUT) */
    cd = conv_dim(ODD), ps = proj_stride(ODD);
    conv_case(cd, ps, 4, 128, 1, seq, n);
    conv_case(cd, ps, 4, 96, 3, seq, n);
    conv_case(cd, ps, 4, 64, 16, seq, n); /* slices shorter than K-1 read the old state */
    conv_case(cd, ps, 3, 128, 4, seq, n);
    conv_case(cd, ps, 2, 32, 2, seq, n);
}

/* ---- gated RMSNorm ---- */

static void norm_case(struct shape s, uint32_t T, uint32_t wg, bool in_place)
{
    uint32_t rows = T * s.Hv, ps = proj_stride(s);
    size_t n = (size_t)rows * s.dv;
    float *o = normal(n, 0, 1), *proj = normal((size_t)T * ps, 0, 1), *w = normal(s.dv, 1, 0.2f);
    qn_buf *ob = qn_h_upload(&H, "o", o, n * 4), *pb = qn_h_upload(&H, "proj", proj, (size_t)T * ps * 4);
    qn_buf *wb = qn_h_upload(&H, "w", w, s.dv * 4), *yb = in_place ? ob : qn_h_output(&H, "y", n);
    qn_pipe *p = qn_h_pipe(&H, QN_K_GATED_RMSNORM, wg);
    qn_pc_gdn_norm pc = { .rows = rows, .heads = s.Hv, .dim = s.dv, .proj_stride = ps, .z_off = z_off(s), .eps = 1e-6f };
    qn_h_run(&H, p, QN_BINDS(QN_BIND(ob), QN_BIND(pb), QN_BIND(wb), QN_BIND(yb)), &pc, sizeof pc, rows);
    float *ref = qn_h_alloc(&H, n);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t h = 0; h < s.Hv; h++) {
            size_t r = ((size_t)t * s.Hv + h) * s.dv;
            qn_ref_rmsnorm_gated(ref + r, o + r, proj + (size_t)t * ps + z_off(s) + h * s.dv, w, (int)s.dv, 1e-6f);
        }
    char what[160];
    snprintf(what, sizeof what, "%s wg %u T=%u Hv=%u dv=%u%s", qn_pipe_info(p)->name, wg, T, s.Hv, s.dv,
             in_place ? " in place" : "");
    /* one f32 reduction of dv squares and a few products: measured ~3e-7 relative */
    check_rel(what, qn_h_read(&H, yb, n), ref, n, 5e-6);
    qn_h_reset(&H);
}

static void norm_tests(void)
{
    norm_case(REAL, 1, 128, false);
    norm_case(REAL, 5, 64, false);
    norm_case(REAL, 3, 128, true);
    norm_case(ODD, 7, 128, false);
    norm_case(ODD, 2, 100, false);
    norm_case(TINY, 3, 32, true);
}

/* ---- the whole GDN core as forward.c chains it ---- */

/* proj [T][ps] -> gdn_conv -> qkv -> gdn_chunked (prefill) or gdn_recurrent (T = 1 steps) -> gated_rmsnorm
 * -> y [T][Hv*dv], starting from random conv and delta states: a prefill of T0 tokens, then `steps` decode
 * tokens, against the reference chain (conv_seq, qk_norm, gates, recurrent, rmsnorm_gated). */
static void chain_case(struct shape s, uint32_t T0, uint32_t steps)
{
    uint32_t T = T0 + steps, cd = conv_dim(s), ps = proj_stride(s), vd = s.Hv * s.dv;
    float *proj = normal((size_t)T * ps, 0, 1), *cw = normal((size_t)cd * 4, 0, 0.5f);
    float *cst = normal((size_t)cd * 3, 0, 1), *S0 = normal(state_n(s), 0, 0.5f), *nw = normal(s.dv, 1, 0.2f);
    struct gdn_in in = make_in(s, 1); /* for A_log / dt_bias only */
    qn_buf *pb = qn_h_upload(&H, "proj", proj, (size_t)T * ps * 4), *cwb = qn_h_upload(&H, "conv_w", cw, (size_t)cd * 16);
    qn_buf *csb = qn_h_upload(&H, "conv_state", cst, (size_t)cd * 12), *Sb = qn_h_upload(&H, "S", S0, state_n(s) * 4);
    qn_buf *nwb = qn_h_upload(&H, "norm_w", nw, s.dv * 4), *qkv = qn_h_output(&H, "qkv", (size_t)T * cd);
    qn_buf *ob = qn_h_output(&H, "o", (size_t)T * vd), *yb = qn_h_output(&H, "y", (size_t)T * vd);
    qn_pipe *conv = qn_h_pipe(&H, QN_K_GDN_CONV, 128, 4, 4), *conv1 = qn_h_pipe(&H, QN_K_GDN_CONV, 128, 1, 4);
    qn_pipe *chk = delta_pipe(true, NULL, 0), *rec = delta_pipe(false, NULL, 0);
    qn_pipe *nrm = qn_h_pipe(&H, QN_K_GATED_RMSNORM, 128);
    for (uint32_t t0 = 0; t0 < T; t0 += t0 ? 1 : T0) {
        uint32_t n = t0 ? 1 : T0;
        uint64_t po = (uint64_t)t0 * ps * 4, qo = (uint64_t)t0 * cd * 4, oo = (uint64_t)t0 * vd * 4;
        struct qn_bind P = QN_BIND_RANGE(pb, po, (uint64_t)n * ps * 4), Q = QN_BIND_RANGE(qkv, qo, (uint64_t)n * cd * 4);
        struct qn_bind O = QN_BIND_RANGE(ob, oo, (uint64_t)n * vd * 4), Y = QN_BIND_RANGE(yb, oo, (uint64_t)n * vd * 4);
        qn_pc_gdn_conv cpc = { .T = n, .channels = cd, .in_stride = ps, .out_stride = cd };
        uint32_t cpw = n > 1 ? 128 / 4 : 128; /* channels per workgroup: QN_WG / QN_TS */
        qn_h_run(&H, n > 1 ? conv : conv1, QN_BINDS(P, QN_BIND(cwb), QN_BIND(csb), Q), &cpc, sizeof cpc,
                 (cd + cpw - 1) / cpw);
        qn_pc_gdn dpc = {
            .T = n, .Hk = s.Hk, .Hv = s.Hv, .dk = s.dk, .dv = s.dv, .qkv_stride = cd, .q_off = 0, .k_off = s.Hk * s.dk,
            .v_off = 2 * s.Hk * s.dk, .proj_stride = ps, .b_off = b_off(s), .a_off = a_off(s),
        };
        const qn_pipe *dp = n > 1 ? chk : rec;
        uint32_t bv = qn_pipe_spec(dp, 1);
        qn_h_run(&H, dp, QN_BINDS(Q, P, QN_BIND(in.alog_b), QN_BIND(in.dtb_b), QN_BIND(Sb), O), &dpc, sizeof dpc,
                 (uint64_t)s.Hv * ((s.dv + bv - 1) / bv));
        qn_pc_gdn_norm npc = { .rows = n * s.Hv, .heads = s.Hv, .dim = s.dv, .proj_stride = ps, .z_off = z_off(s),
                               .eps = 1e-6f };
        qn_h_run(&H, nrm, QN_BINDS(O, P, QN_BIND(nwb), Y), &npc, sizeof npc, (uint64_t)n * s.Hv);
    }
    /* reference chain */
    float *x = qn_h_alloc(&H, (size_t)T * cd), *ref = qn_h_alloc(&H, (size_t)T * vd);
    struct gdn_in rin = in;
    rin.T = T;
    rin.qkv = qn_h_alloc(&H, (size_t)T * cd);
    rin.proj = proj;
    for (uint32_t t = 0; t < T; t++) memcpy(x + (size_t)t * cd, proj + (size_t)t * ps, (size_t)cd * 4);
    qn_ref_conv1d_seq(rin.qkv, cst, x, cw, (int)T, (int)cd, 4);
    ref_delta(&rin, 0, T, S0, ref);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t h = 0; h < s.Hv; h++) {
            float *r = ref + (size_t)t * vd + h * s.dv;
            qn_ref_rmsnorm_gated(r, r, proj + (size_t)t * ps + z_off(s) + h * s.dv, nw, (int)s.dv, 1e-6f);
        }
    char what[160];
    snprintf(what, sizeof what, "chain conv -> chunked -> gated norm (T=%u) -> %u decode steps, Hk=%u Hv=%u dk=%u dv=%u: y",
             T0, steps, s.Hk, s.Hv, s.dk, s.dv);
    /* the gated norm rescales each head to unit RMS, so y carries the delta rule's relative error per head */
    check_rel(what, qn_h_read(&H, yb, (size_t)T * vd), ref, (size_t)T * vd, 2 * TOL_CHUNKED);
    memcpy(what + strlen(what) - 1, "S", 2);
    check_rel(what, qn_h_read(&H, Sb, state_n(s)), S0, state_n(s), TOL_CHUNKED);
    snprintf(what, sizeof what, "chain T=%u+%u: conv state", T0, steps);
    qn_h_check(&H, what, csb, cst, (size_t)cd * 3, 0, 0);
    qn_h_reset(&H);
}

/* ---- gdn_decode: conv + delta rule (+ gated norm) of one decode token in one dispatch ---- */

/* `steps` decode tokens through gdn_decode (spec: WG, BV, DK_MAX, K, NORM) from random conv and delta states, each
 * token checked against the reference chain (conv_seq, qk_norm, gates, recurrent, and rmsnorm_gated with NORM = 1);
 * at the end the delta state, the conv state (exact: it holds raw inputs) and the scratch counters (back to 0). */
static void fused_case(struct shape s, uint32_t steps, const uint32_t spec[5])
{
    uint32_t cd = conv_dim(s), ps = proj_stride(s), vd = s.Hv * s.dv, K = spec[3], nscr = s.Hk + s.Hv * (1 + s.dv);
    float *proj = normal((size_t)steps * ps, 0, 1), *cw = normal((size_t)cd * K, 0, 0.5f);
    float *cst = normal((size_t)cd * (K - 1), 0, 1), *S0 = normal(state_n(s), 0, 0.5f), *nw = normal(s.dv, 1, 0.2f);
    uint32_t *zero = qn_h_alloc_bytes(&H, (size_t)nscr * 4);
    memset(zero, 0, (size_t)nscr * 4);
    struct gdn_in in = make_in(s, 1); /* A_log / dt_bias */
    qn_buf *cwb = qn_h_upload(&H, "conv_w", cw, (size_t)cd * K * 4);
    qn_buf *csb = qn_h_upload(&H, "conv_state", cst, (size_t)cd * (K - 1) * 4), *Sb = qn_h_upload(&H, "S", S0, state_n(s) * 4);
    qn_buf *nwb = qn_h_upload(&H, "norm_w", nw, s.dv * 4), *scr = qn_h_upload(&H, "scratch", zero, (size_t)nscr * 4);
    qn_buf *ob = qn_h_output(&H, "o", (size_t)steps * vd);
    qn_pipe *p = qn_h_pipe_spec(&H, QN_K_GDN_DECODE, spec, 5);
    qn_pc_gdn_dec pc = { .Hk = s.Hk, .Hv = s.Hv, .dk = s.dk, .dv = s.dv, .proj_stride = ps, .k_off = s.Hk * s.dk,
                         .v_off = 2 * s.Hk * s.dk, .z_off = z_off(s), .b_off = b_off(s), .a_off = a_off(s), .eps = 1e-6f };
    for (uint32_t t = 0; t < steps; t++) { /* each row its own buffer (ps * 4 need not be a binding offset alignment) */
        qn_buf *pb = qn_h_upload(&H, "proj", proj + (size_t)t * ps, (size_t)ps * 4);
        qn_h_run(&H, p, QN_BINDS(QN_BIND(pb), QN_BIND(cwb), QN_BIND(csb),
                                 QN_BIND(in.alog_b), QN_BIND(in.dtb_b), QN_BIND(Sb),
                                 QN_BIND_RANGE(ob, (uint64_t)t * vd * 4, (uint64_t)vd * 4), QN_BIND(nwb), QN_BIND(scr)),
                 &pc, sizeof pc, (uint64_t)s.Hv * ((s.dv + spec[1] - 1) / spec[1]));
    }
    float *x = qn_h_alloc(&H, (size_t)steps * cd), *ref = qn_h_alloc(&H, (size_t)steps * vd);
    struct gdn_in rin = in;
    rin.T = steps, rin.qkv = qn_h_alloc(&H, (size_t)steps * cd), rin.proj = proj;
    for (uint32_t t = 0; t < steps; t++) memcpy(x + (size_t)t * cd, proj + (size_t)t * ps, (size_t)cd * 4);
    qn_ref_conv1d_seq(rin.qkv, cst, x, cw, (int)steps, (int)cd, (int)K);
    ref_delta(&rin, 0, steps, S0, ref);
    for (uint32_t t = 0; spec[4] && t < steps; t++)
        for (uint32_t h = 0; h < s.Hv; h++) {
            float *r = ref + (size_t)t * vd + h * s.dv;
            qn_ref_rmsnorm_gated(r, r, proj + (size_t)t * ps + z_off(s) + h * s.dv, nw, (int)s.dv, 1e-6f);
        }
    char what[160], sp[64];
    snprintf(what, sizeof what, "%s %u decode steps, Hk=%u Hv=%u dk=%u dv=%u: o", spec_str(p, sp, sizeof sp), steps,
             s.Hk, s.Hv, s.dk, s.dv);
    check_rel(what, qn_h_read(&H, ob, (size_t)steps * vd), ref, (size_t)steps * vd, (spec[4] ? 2 : 1) * TOL_RECURRENT);
    memcpy(what + strlen(what) - 1, "S", 2);
    check_rel(what, qn_h_read(&H, Sb, state_n(s)), S0, state_n(s), TOL_RECURRENT);
    snprintf(what, sizeof what, "%s: conv state", sp);
    qn_h_check(&H, what, csb, cst, (size_t)cd * (K - 1), 0, 0);
    uint32_t *cnt = (uint32_t *)qn_h_read(&H, scr, s.Hk + s.Hv), bad = 0;
    for (uint32_t i = 0; i < s.Hk + s.Hv; i++) bad += cnt[i] != 0;
    H.checks++, H.failures += bad != 0;
    printf("%-4s %s: %u of %u counters left non-zero\n", bad ? "FAIL" : "ok", sp, bad, s.Hk + s.Hv);
    qn_h_reset(&H);
}

static void fused_tests(void)
{
    static const uint32_t sp[][5] = { { 128, 16, 128, 4, 1 }, { 128, 16, 128, 4, 0 }, { 96, 32, 64, 4, 1 },
                                      { 64, 16, 32, 3, 1 }, { 256, 8, 128, 2, 0 }, { 32, 8, 32, 4, 1 } };
    fused_case(REAL, 4, sp[0]);
    fused_case(REAL_SOME, 3, sp[1]);
    fused_case(ODD, 5, sp[2]);
    fused_case(ODD, 4, sp[3]);
    fused_case(TINY, 6, sp[4]);
    fused_case(TINY, 3, sp[0]);
    fused_case(TINY, 4, sp[5]); /* 32 invocations: the norm count from the last one */
    fused_case(ODD, 3, sp[5]);  /* ... and dv = 48 > 32: the norm tail loops */
}

/* A pipeline whose QN_DK_MAX is below dk must say so (NaN output) and leave the state alone. */
static void dk_max_case(bool chunked)
{
    static const uint32_t rs[] = { 128, 16, 16 }, cs[] = { 256, 16, 16, 64 }; /* rows up to 16 < dk = 20 */
    qn_pipe *p = delta_pipe(chunked, chunked ? cs : rs, chunked ? 4 : 3);
    struct gdn_in in = make_in(TINY, 5);
    float *S0 = normal(state_n(TINY), 0, 0.5f);
    qn_buf *S = qn_h_upload(&H, "S", S0, state_n(TINY) * 4), *o = qn_h_output(&H, "o", out_n(TINY, 5));
    qn_h_ok(&H, qn_buf_fill(H.v, o, 0, o->size, 0), "o");
    run_delta(p, &in, 0, 5, S, o);
    check_dk_refused(p, o, S, S0);
}

/* ---- delta rule ---- */

static void delta_tests(void)
{
    static const uint32_t Ts[] = { 1, 3, 63, 64, 65, 150 };
    /* gdn_recurrent layouts: (WG, BV, DK_MAX) */
    static const uint32_t rspec[][3] = { { 128, 16, 128 }, { 64, 16, 32 }, { 96, 32, 64 }, { 256, 8, 128 } };
    /* gdn_chunked layouts: (WG, BV, DK_MAX, C) */
    static const uint32_t cspec[][4] = { { 256, 16, 128, 64 }, { 256, 32, 128, 64 }, { 192, 12, 128, 64 },
                                         { 64, 16, 32, 32 } };
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++)
        for (int z = 0; z < 2; z++) {
            delta_case(false, rspec[(i + z) % 4], 3, ODD, Ts[i], z);
            delta_case(true, cspec[(i + z) % 4], 4, ODD, Ts[i], z);
        }
    delta_case(false, NULL, 0, TINY, 70, false);
    delta_case(true, NULL, 0, TINY, 70, false);
    delta_case(true, cspec[3], 4, TINY, 33, false);
    delta_case(false, NULL, 0, REAL, 64, false);
    delta_case(true, NULL, 0, REAL, 65, false);
    decode_case(NULL, 0, REAL, 5);
    decode_case(rspec[2], 3, ODD, 6);
    dk_max_case(false);
    dk_max_case(true);
    chain_case(ODD, 100, 3);
    chain_case(REAL, 70, 2);
    long_case(ODD, 1000, 100, NULL, 0);
    long_case(REAL_SOME, 300, 128, NULL, 0);
    long_case(REAL_FEW, 1000, 64, cspec[1], 4);
}

/* ---- --bench: timings at the real shape (for a real GPU; not part of the test) ---- */

static double best_of(const qn_pipe *p, const struct qn_bind *b, uint32_t nb, const void *pc, uint32_t size,
                      uint64_t groups, int reps)
{
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double ms = qn_h_run(&H, p, b, nb, pc, size, groups);
        best = ms < best ? ms : best;
    }
    return best;
}

static void bench_delta(const struct gdn_in *in, uint32_t T, bool chunked, const uint32_t *spec, uint32_t nspec,
                        qn_buf *S, qn_buf *o, double *ms)
{
    qn_pipe *p = delta_pipe(chunked, spec, nspec);
    struct shape s = in->s;
    uint32_t bv = qn_pipe_spec(p, 1);
    qn_pc_gdn pc = {
        .T = T, .Hk = s.Hk, .Hv = s.Hv, .dk = s.dk, .dv = s.dv,
        .qkv_stride = conv_dim(s), .q_off = 0, .k_off = s.Hk * s.dk, .v_off = 2 * s.Hk * s.dk,
        .proj_stride = proj_stride(s), .b_off = b_off(s), .a_off = a_off(s),
    };
    *ms = best_of(p, QN_BINDS(QN_BIND(in->qkv_b), QN_BIND(in->proj_b), QN_BIND(in->alog_b), QN_BIND(in->dtb_b),
                              QN_BIND(S), QN_BIND(o)), &pc, sizeof pc, (uint64_t)s.Hv * ((s.dv + bv - 1) / bv),
                  T > 1024 ? 3 : 10);
    char sp[64];
    double bytes = 2.0 * state_n(s) * 4;
    printf("bench %-28s T=%-5u %9.4f ms", spec_str(p, sp, sizeof sp), T, *ms);
    if (T == 1) printf("  (state read+write %.1f GB/s)", bytes / (*ms * 1e6));
    printf("\n");
}

/* The two passes at T tokens with pass 1 at wy_pa: per pass-2 layout (the first only unless `layouts`) and segment
 * length, the best of `reps` of pass 1 + pass 2 (each the sum over the segments); *best: the fastest total. */
static void bench_wy(const struct gdn_in *in, uint32_t T, qn_buf *S, qn_buf *o, qn_buf *scr, bool layouts,
                     double *best)
{
    static const uint32_t sp[][4] = { { 256, 32, 128, 1 }, { 256, 16, 128, 1 }, { 512, 32, 128, 1 }, { 128, 8, 128, 1 },
                                      { 512, 16, 128, 1 }, { 256, 32, 128, 0 } };
    static const uint32_t segs[] = { 16, 0, 4 };
    *best = INFINITY;
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
        if (wy_shared(sp[i]) > qn_vk_caps(H.v)->max_shared) continue;
        qn_pipe *pb = wy_pipe(sp[i]);
        for (size_t k = 0; k < sizeof segs / sizeof segs[0]; k++) {
            if (k && i) continue; /* other segment lengths with the first layout only */
            double ba = INFINITY, bb = INFINITY, ms[2];
            for (int r = 0; r < (T > 1024 ? 3 : 10); r++) {
                run_wy(pb, in, 0, T, S, o, segs[k], scr, ms);
                if (ms[0] + ms[1] < ba + bb) ba = ms[0], bb = ms[1];
            }
            char sps[64], spa[64];
            printf("bench %s + %-22s seg %2u T=%-5u %9.4f ms (pass 1 %.4f + pass 2 %.4f)\n",
                   spec_str(wy_pa, spa, sizeof spa), spec_str(pb, sps, sizeof sps), segs[k], T, ba + bb, ba, bb);
            *best = ba + bb < *best ? ba + bb : *best;
        }
        if (!layouts) break;
    }
}

/* bench_wy per column block CB of pass 1 that fits, the widest (the model's) with every pass-2 layout, the others with
 * the first (256,32 where it fits) */
static void bench_wy_cbs(const struct gdn_in *in, uint32_t T, qn_buf *S, qn_buf *o, qn_buf *scr, double *best)
{
    *best = INFINITY;
    for (uint32_t cb = 64, widest = 1; cb >= 16; cb /= 2) {
        if (!wy_set_cb(cb, false)) continue;
        double b;
        bench_wy(in, T, S, o, scr, widest, &b);
        widest = 0;
        *best = b < *best ? b : *best;
    }
}

/* QNEXT_BENCH_WARM_MS (default 300) ms of gdn_chunked at T back to back first: an idle GPU clocks down and reads
 * 2-4x slow */
static void bench_warm(const struct gdn_in *in, uint32_t T, qn_buf *S, qn_buf *o)
{
    const char *e = getenv("QNEXT_BENCH_WARM_MS");
    double want = e ? atof(e) : 300, spent = 0;
    qn_pipe *p = delta_pipe(true, NULL, 0);
    while (spent < want) {
        double ms = qn_h_run(&H, p, QN_BINDS(QN_BIND(in->qkv_b), QN_BIND(in->proj_b), QN_BIND(in->alog_b),
                                             QN_BIND(in->dtb_b), QN_BIND(S), QN_BIND(o)),
                             &(qn_pc_gdn){ .T = T, .Hk = in->s.Hk, .Hv = in->s.Hv, .dk = in->s.dk, .dv = in->s.dv,
                                           .qkv_stride = conv_dim(in->s), .k_off = in->s.Hk * in->s.dk,
                                           .v_off = 2 * in->s.Hk * in->s.dk, .proj_stride = proj_stride(in->s),
                                           .b_off = b_off(in->s), .a_off = a_off(in->s) },
                             sizeof(qn_pc_gdn), (uint64_t)in->s.Hv * (in->s.dv / 16));
        if (!(ms > 0)) break; /* no timestamps */
        spent += ms;
    }
}

static void bench(uint32_t Tmax)
{
    struct shape s = REAL;
    struct gdn_in in = make_in(s, Tmax);
    float *S0 = normal(state_n(s), 0, 0.5f);
    qn_buf *S = qn_h_upload(&H, "S", S0, state_n(s) * 4), *S2 = qn_h_upload(&H, "S2", S0, state_n(s) * 4);
    qn_buf *o = qn_h_output(&H, "o", out_n(s, Tmax)), *o2 = qn_h_output(&H, "o2", out_n(s, Tmax));
    static const uint32_t rspec[][3] = { { 128, 16, 128 }, { 256, 16, 128 }, { 128, 32, 128 }, { 256, 32, 128 },
                                         { 64, 8, 128 }, { 128, 8, 128 } };
    static const uint32_t cspec[][4] = { { 256, 16, 128, 64 }, { 256, 32, 128, 64 }, { 512, 32, 128, 64 },
                                         { 128, 8, 128, 64 } };
    double ms;
    qn_buf *scr = qn_h_buffer(&H, "wy scratch", (size_t)wy_rec(s) * s.Hv * ((Tmax + WY_C - 1) / WY_C) * 4);
    bench_warm(&in, Tmax, S, o);
    for (size_t i = 0; i < sizeof rspec / sizeof rspec[0]; i++) bench_delta(&in, 1, false, rspec[i], 3, S, o, &ms);
    for (uint32_t T = 16; T <= Tmax; T *= 4) {
        double wms;
        bench_wy_cbs(&in, T, S, o, scr, &wms);
        double rms_ = 0, cms = INFINITY;
        bench_delta(&in, T, false, NULL, 0, S, o, &rms_);
        for (size_t i = 0; i < sizeof cspec / sizeof cspec[0]; i++) {
            uint32_t nrg = cspec[i][0] / cspec[i][1], C = cspec[i][3], bv = cspec[i][1];
            uint32_t shared = 4 * (2 * nrg * C + nrg * bv + C * C + C * bv + 6 * C); /* gdn_chunked.comp */
            if (shared > qn_vk_caps(H.v)->max_shared) continue;
            bench_delta(&in, T, true, cspec[i], 4, S, o, &ms);
            cms = ms < cms ? ms : cms;
        }
        printf("bench T=%u: best chunked %.3f ms vs recurrent %.3f ms (%.1fx); best two-pass %.3f ms (%.2fx chunked)\n",
               T, cms, rms_, rms_ / cms, wms, cms / wms);
    }
    /* chunked == recurrent on this device at the longest T (both from S0) */
    qn_h_ok(&H, qn_buf_write(H.v, S, 0, S0, state_n(s) * 4), "S");
    run_delta(delta_pipe(true, NULL, 0), &in, 0, Tmax, S, o);
    run_delta(delta_pipe(false, NULL, 0), &in, 0, Tmax, S2, o2);
    char what[128];
    snprintf(what, sizeof what, "bench T=%u chunked vs recurrent on this device: o", Tmax);
    check_rel(what, qn_h_read(&H, o, out_n(s, Tmax)), qn_h_read(&H, o2, out_n(s, Tmax)), out_n(s, Tmax), TOL_CHUNKED);
    for (uint32_t cb = 16; cb <= 64; cb *= 2) {
        if (!wy_set_cb(cb, false)) continue;
        qn_h_ok(&H, qn_buf_write(H.v, S, 0, S0, state_n(s) * 4), "S");
        run_wy(wy_pipe(NULL), &in, 0, Tmax, S, o, 16, scr, NULL);
        snprintf(what, sizeof what, "bench T=%u two-pass (seg 16), pass 1 gdn_chunk_wy_inv(%u), vs recurrent on this "
                 "device: o", Tmax, cb);
        check_rel(what, qn_h_read(&H, o, out_n(s, Tmax)), qn_h_read(&H, o2, out_n(s, Tmax)), out_n(s, Tmax), TOL_CHUNKED);
    }
    /* conv and gated norm */
    uint32_t cd = conv_dim(s), ps = proj_stride(s);
    qn_buf *cw = qn_h_upload(&H, "conv_w", normal((size_t)cd * 4, 0, 0.5f), (size_t)cd * 16);
    qn_buf *cs = qn_h_upload(&H, "conv_state", normal((size_t)cd * 3, 0, 1), (size_t)cd * 12);
    qn_buf *w = qn_h_upload(&H, "w", normal(s.dv, 1, 0.2f), s.dv * 4);
    for (uint32_t T = 1; T <= Tmax; T *= Tmax) {
        /* (WG, TS) layouts: the model's decode (128,1) and prefill (128,4: QNEXT_GDN_CONV_LAYOUT) and wider ones */
        static const uint32_t cl[][2] = { { 128, 1 }, { 128, 4 }, { 128, 8 }, { 256, 8 }, { 256, 16 }, { 512, 16 },
                                          { 256, 32 }, { 1024, 32 } };
        for (size_t i = 0; i < sizeof cl / sizeof cl[0]; i++) {
            uint32_t wg = cl[i][0], ts = cl[i][1];
            if (T == 1 && ts > 1) continue;
            qn_pipe *p = qn_h_pipe(&H, QN_K_GDN_CONV, wg, ts, 4);
            qn_pc_gdn_conv pc = { .T = T, .channels = cd, .in_stride = ps, .out_stride = cd };
            ms = best_of(p, QN_BINDS(QN_BIND(in.proj_b), QN_BIND(cw), QN_BIND(cs), QN_BIND(in.qkv_b)), &pc, sizeof pc,
                         (cd + wg / ts - 1) / (wg / ts), 10);
            printf("bench gdn_conv(%u,%u,4)%*s T=%-5u %9.4f ms (%.0f GB/s)\n", wg, ts, wg >= 1000 ? 14 : 15, "", T, ms,
                   2.0 * T * cd * 4 / (ms * 1e6));
        }
        qn_pipe *p = qn_h_pipe(&H, QN_K_GATED_RMSNORM, 128);
        qn_pc_gdn_norm pc = { .rows = T * s.Hv, .heads = s.Hv, .dim = s.dv, .proj_stride = ps, .z_off = z_off(s),
                              .eps = 1e-6f };
        ms = best_of(p, QN_BINDS(QN_BIND(o), QN_BIND(in.proj_b), QN_BIND(w), QN_BIND(o2)), &pc, sizeof pc, T * s.Hv, 10);
        printf("bench %-28s T=%-5u %9.4f ms\n", qn_pipe_info(p)->name, T, ms);
    }
    qn_h_reset(&H);
}

/* --bench-wy T: the two passes alone at T tokens (pass 1 at the widest column block, the default pass 2 layout,
 * segments of 16 chunks / one / 4), pass 1's and pass 2's GPU ms apart: a quick probe of pass 1 */
static void bench_wy_only(uint32_t T)
{
    struct shape s = REAL;
    struct gdn_in in = make_in(s, T);
    qn_buf *S = qn_h_upload(&H, "S", normal(state_n(s), 0, 0.5f), state_n(s) * 4);
    qn_buf *o = qn_h_output(&H, "o", out_n(s, T));
    qn_buf *scr = qn_h_buffer(&H, "wy scratch", (size_t)wy_rec(s) * s.Hv * ((T + WY_C - 1) / WY_C) * 4);
    double best;
    for (uint32_t cb = 64; cb >= 16 && !wy_set_cb(cb, false); cb /= 2) {}
    bench_warm(&in, T, S, o);
    bench_wy(&in, T, S, o, scr, false, &best);
    qn_h_reset(&H);
}

int main(int argc, char **argv)
{
    qn_h_open(&H, "gdn", argc, argv);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench")) {
            bench(i + 1 < argc ? (uint32_t)atoi(argv[i + 1]) : 4096);
            return qn_h_close(&H);
        } else if (!strcmp(argv[i], "--bench-wy")) {
            bench_wy_only(i + 1 < argc ? (uint32_t)atoi(argv[i + 1]) : 4096);
            return qn_h_close(&H);
        } else if (!strcmp(argv[i], "--wy")) { /* the two-pass kernels' cases only */
            wy_tests();
            return qn_h_close(&H);
        }
    conv_tests();
    norm_tests();
    delta_tests();
    wy_tests();
    fused_tests();
    return qn_h_close(&H);
}
