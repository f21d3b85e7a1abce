/* test_attn.c — the gated full-attention kernels (attn_prep, attn_decode + attn_decode_combine,
 * attn_prefill) against the C reference (runtime/ref/ref_ops.h: qn_ref_rmsnorm_zc_rows, qn_ref_rope_inv_freq,
 * qn_ref_rope, qn_ref_attn_decode, qn_ref_mul_sigmoid) at the real shape (Hq 16, Hkv 2, D 256, R 64) and odd
 * small ones, positions up to ~1e6, with and without YaRN, n_keys 1 .. 3000, prompt chunks continuing a
 * cache, device-side positions, and prefill-then-decode against one long prefill.
 * `test_attn --bench` times the real shape at long contexts instead (for a real GPU). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_check.h"
#include "harness.h"
#include "qn_num.h"
#include "ref_ops.h"

struct shape {
    uint32_t Hq, Hkv, D, R;
};
static const struct shape REAL = { 16, 2, 256, 64 };
static const struct shape ODD[] = { { 6, 3, 32, 16 }, { 4, 4, 64, 64 }, { 8, 1, 64, 24 }, { 3, 1, 36, 8 } };

#define EPS 1e-6f

static uint32_t stride_of(struct shape s) { return 2 * s.Hq * s.D + 2 * s.Hkv * s.D; }

/* ---- the KV cache dtype under test: f32 (kernels attn_*) or f16 (attn_*_f16kv) ---------------------------- */

static bool kv16;

static enum qn_kernel kv_kernel(enum qn_kernel k)
{
    if (!kv16) return k;
    return k == QN_K_ATTN_PREP ? QN_K_ATTN_PREP_F16KV : k == QN_K_ATTN_DECODE ? QN_K_ATTN_DECODE_F16KV
                                                                               : QN_K_ATTN_PREFILL_F16KV;
}
static uint64_t cache_bytes(size_t n) { return (uint64_t)n * (kv16 ? 2 : 4); }
/* random cache contents; *host gets the values as stored (rounded to f16 for an f16 cache) */
static qn_buf *cache_input(struct qn_h *h, const char *name, size_t n, float lo, float hi, float **host)
{
    return kv16 ? qn_h_input_f16(h, name, n, lo, hi, host) : qn_h_input_f32(h, name, n, lo, hi, host);
}
static float *cache_read(struct qn_h *h, const qn_buf *b, size_t n)
{
    if (!kv16) return qn_h_read(h, b, n);
    uint16_t *u = qn_h_alloc_bytes(h, n * 2);
    float *x = qn_h_alloc(h, n);
    qn_h_ok(h, qn_buf_read(h->v, b, 0, u, n * 2), b->name);
    for (size_t i = 0; i < n; i++) x[i] = qn_f16_to_f32(u[i]);
    return x;
}
/* what the cache holds of reference values */
static void cache_round(float *x, size_t n)
{
    for (size_t i = 0; kv16 && i < n; i++) x[i] = qn_f16_to_f32(qn_f32_to_f16(x[i]));
}

/* The host side of attn_prep: inv_freq from the reference (YaRN when yarn != 0) and the attention factor. */
static float *make_inv_freq(struct qn_h *h, struct shape s, int yarn, float *attn_factor)
{
    float *f = qn_h_alloc(h, s.R / 2);
    qn_ref_rope_inv_freq(f, (int)s.R, 1e7, yarn ? 4.0 : 1.0, 262144.0, 32.0, 1.0, 1);
    *attn_factor = yarn ? qn_ref_yarn_mscale(4.0) : 1.0f;
    return f;
}

/* Reference attn_prep of T tokens at positions pos0.. into q [T][Hq][D] and the caches [Hkv][cap][D]. */
static void ref_prep(struct shape s, const float *proj, uint32_t T, uint32_t pos0, const float *qnw,
                     const float *knw, const float *invf, float af, float *q, float *kc, float *vc, uint32_t cap)
{
    uint32_t D = s.D, st = stride_of(s);
    float *k = malloc(sizeof(float) * s.Hkv * D);
    for (uint32_t t = 0; t < T; t++) {
        const float *row = proj + (size_t)t * st;
        float *qt = q + (size_t)t * s.Hq * D;
        qn_ref_rmsnorm_zc_rows(qt, row, qnw, (int)s.Hq, (int)D, EPS);
        qn_ref_rope(qt, (int)s.Hq, (int)D, (int)s.R, pos0 + t, invf, af);
        qn_ref_rmsnorm_zc_rows(k, row + 2 * s.Hq * D, knw, (int)s.Hkv, (int)D, EPS);
        qn_ref_rope(k, (int)s.Hkv, (int)D, (int)s.R, pos0 + t, invf, af);
        if (pos0 + t >= cap) continue;
        for (uint32_t j = 0; j < s.Hkv; j++) {
            size_t c = ((size_t)j * cap + pos0 + t) * D;
            memcpy(kc + c, k + (size_t)j * D, sizeof(float) * D);
            memcpy(vc + c, row + 2 * s.Hq * D + s.Hkv * D + (size_t)j * D, sizeof(float) * D);
        }
    }
    free(k);
}

/* Reference attention of T queries at positions pos0.., gated (attn_check.h). */
static void ref_attn(struct shape s, const float *q, const float *kc, const float *vc, const float *proj, uint32_t T,
                     uint32_t pos0, uint32_t cap, float *out)
{
    attn_ref_gated(s.Hq, s.Hkv, s.D, stride_of(s), q, kc, vc, proj, T, pos0, cap, out);
}

/* ---- recording helpers: how forward.c calls the kernels ------------------------------------------------ */

struct bufs {
    qn_buf *proj, *qnw, *knw, *invf, *pos, *q, *kc, *vc, *part, *out;
};

static void run_prep(struct qn_h *h, struct shape s, const struct bufs *b, uint32_t T, uint32_t pos0, uint32_t cap,
                     uint32_t flags, float af, uint32_t wg)
{
    qn_pipe *p = qn_h_pipe(h, kv_kernel(QN_K_ATTN_PREP), wg);
    qn_pc_attn_prep pc = { .T = T, .Hq = s.Hq, .Hkv = s.Hkv, .D = s.D, .rot = s.R, .cap = cap, .pos0 = pos0,
                           .flags = flags, .proj_stride = stride_of(s), .eps = EPS, .attn_factor = af };
    qn_h_run_z(h, p, QN_BINDS(QN_BIND(b->proj), QN_BIND(b->qnw), QN_BIND(b->knw), QN_BIND(b->invf), QN_BIND(b->pos),
                              QN_BIND(b->q), QN_BIND(b->kc), QN_BIND(b->vc)),
               &pc, sizeof pc, s.Hq + 2 * s.Hkv, T);
}

/* split pass + combine, recorded in one command buffer with a barrier between */
static double run_decode(struct qn_h *h, struct shape s, const struct bufs *b, uint32_t n_keys, uint32_t splits,
                         uint32_t cap, uint32_t flags, const uint32_t *spec, uint32_t nspec)
{
    qn_pipe *pd = qn_h_pipe_spec(h, kv_kernel(QN_K_ATTN_DECODE), spec, nspec);
    qn_pipe *pc_ = qn_h_pipe(h, QN_K_ATTN_DECODE_COMBINE, 64);
    qn_pc_attn_decode pc = { .Hq = s.Hq, .Hkv = s.Hkv, .D = s.D, .cap = cap, .n_keys = n_keys, .splits = splits,
                             .flags = flags, .gate_off = s.Hq * s.D, .scale = 1.0f / sqrtf((float)s.D) };
    qn_h_ok(h, qn_cmd_begin(h->cmd), "decode");
    qn_cmd_mark(h->cmd, "attn_decode");
    qn_cmd_dispatch_nz(h->cmd, pd, QN_BINDS(QN_BIND(b->q), QN_BIND(b->kc), QN_BIND(b->vc), QN_BIND(b->pos),
                                            QN_BIND(b->part)), &pc, sizeof pc, splits, s.Hkv);
    qn_cmd_barrier(h->cmd);
    qn_cmd_dispatch_n(h->cmd, pc_, QN_BINDS(QN_BIND(b->part), QN_BIND(b->proj), QN_BIND(b->out)), &pc, sizeof pc,
                      (uint64_t)s.Hq * ((s.D + 63) / 64));
    qn_cmd_mark(h->cmd, NULL);
    qn_h_ok(h, qn_cmd_end(h->cmd), "decode");
    qn_h_ok(h, qn_cmd_run(h->cmd), "decode");
    return qn_cmd_region(h->cmd, 0, NULL);
}

/* attn_prefill: ceil(T * G / QN_BQ) row blocks times Hkv in z; bindings q, kcache, vcache, proj, pos, out */
static double prefill_bound(struct qn_h *h, qn_pipe *p, struct shape s, const struct qn_bind *b6,
                            const qn_pc_attn_prefill *pc)
{
    uint32_t bq = qn_pipe_spec(p, 2), rows = pc->T * (s.Hq / s.Hkv);
    return qn_h_run_z(h, p, b6, 6, pc, sizeof *pc, (rows + bq - 1) / bq, s.Hkv);
}

static double run_prefill(struct qn_h *h, struct shape s, const struct bufs *b, uint32_t T, uint32_t pos0,
                          uint32_t cap, uint32_t flags, const uint32_t *spec, uint32_t nspec)
{
    qn_pipe *p = qn_h_pipe_spec(h, kv_kernel(QN_K_ATTN_PREFILL), spec, nspec);
    qn_pc_attn_prefill pc = { .T = T, .Hq = s.Hq, .Hkv = s.Hkv, .D = s.D, .cap = cap, .pos0 = pos0, .flags = flags,
                              .proj_stride = stride_of(s), .gate_off = s.Hq * s.D,
                              .scale = 1.0f / sqrtf((float)s.D) };
    const struct qn_bind b6[6] = { QN_BIND(b->q), QN_BIND(b->kc), QN_BIND(b->vc), QN_BIND(b->proj), QN_BIND(b->pos),
                                   QN_BIND(b->out) };
    return prefill_bound(h, p, s, b6, &pc);
}

static qn_buf *pos_buf(struct qn_h *h, uint32_t v) { return qn_h_upload(h, "pos", &v, sizeof v); }

/* ---- attn_prep ---------------------------------------------------------------------------------------- */

static void prep_case(struct qn_h *h, struct shape s, uint32_t T, uint32_t pos0, uint32_t cap, int yarn,
                      bool device_pos, uint32_t wg)
{
    uint32_t D = s.D, st = stride_of(s);
    size_t ncache = (size_t)s.Hkv * cap * D;
    float af, *proj_h, *qnw_h, *knw_h, *kc_h, *vc_h;
    float *invf = make_inv_freq(h, s, yarn, &af);
    struct bufs b = { 0 };
    b.proj = qn_h_input_f32(h, "proj", (size_t)T * st, -3, 3, &proj_h);
    b.qnw = qn_h_input_f32(h, "q_norm", D, -0.5f, 0.5f, &qnw_h);
    b.knw = qn_h_input_f32(h, "k_norm", D, -0.5f, 0.5f, &knw_h);
    b.invf = qn_h_upload(h, "inv_freq", invf, sizeof(float) * s.R / 2);
    b.pos = pos_buf(h, device_pos ? pos0 - 3 : 12345); /* the base is ignored without the flag */
    b.q = qn_h_output(h, "q", (size_t)T * s.Hq * D);
    b.kc = cache_input(h, "kcache", ncache, -1, 1, &kc_h); /* rows outside the append stay as they are */
    b.vc = cache_input(h, "vcache", ncache, -1, 1, &vc_h);
    run_prep(h, s, &b, T, device_pos ? 3 : pos0, cap, device_pos ? QN_ATTN_POS_DEVICE : 0, af, wg);

    float *q_ref = qn_h_alloc(h, (size_t)T * s.Hq * D);
    ref_prep(s, proj_h, T, pos0, qnw_h, knw_h, invf, af, q_ref, kc_h, vc_h, cap);
    cache_round(kc_h, ncache);
    cache_round(vc_h, ncache);
    char what[160];
    snprintf(what, sizeof what, "prep Hq %u Hkv %u D %u R %u T %u pos0 %u cap %u%s%s wg %u%s", s.Hq, s.Hkv, D, s.R,
             T, pos0, cap, yarn ? " yarn" : "", device_pos ? " device-pos" : "", wg, kv16 ? " f16 cache" : "");
    /* measured max abs error ~1e-6 on values up to ~8 (norm: f32 sums vs double; rope: cos/sin ~1e-7) */
    char w2[200];
    snprintf(w2, sizeof w2, "%s: q", what);
    qn_h_check(h, w2, b.q, q_ref, (size_t)T * s.Hq * D, 1e-5, 1e-5);
    /* f16 cache: the f32 result may round to the neighbouring half (1 ulp = 2^-10 relative at most) */
    snprintf(w2, sizeof w2, "%s: kcache", what);
    qn_h_check_host(h, w2, cache_read(h, b.kc, ncache), kc_h, ncache, 1e-5, kv16 ? 1e-3 : 1e-5);
    snprintf(w2, sizeof w2, "%s: vcache", what);
    qn_h_check_host(h, w2, cache_read(h, b.vc, ncache), vc_h, ncache, 0, kv16 ? 1e-3 : 0);
    qn_h_reset(h);
}

static void test_prep(struct qn_h *h)
{
    static const uint32_t pos[] = { 0, 7, 4093, 100000, 262143, 1009999 };
    for (int yarn = 0; yarn < 2; yarn++)
        for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
            /* real shape: the cache holds rows up to 64; larger positions check q and the skipped append */
            prep_case(h, REAL, i % 2 ? 3 : 1, pos[i], 64, yarn, false, 64);
            /* odd shapes: caches up to ~40 MB hold the rows at the position (k checked), else q only */
            struct shape o = ODD[i % 4];
            uint32_t cap = (uint64_t)(pos[i] + 4) * o.Hkv * o.D * 4 <= (40u << 20) ? pos[i] + 4 : 16;
            prep_case(h, o, 2, pos[i], cap, yarn, false, i % 2 ? 32 : 64);
        }
    prep_case(h, REAL, 5, 20, 32, 0, true, 64);
    prep_case(h, ODD[2], 4, 100003, 100010, 1, true, 48);
    prep_case(h, REAL, 2, 0, 16, 1, false, 256);
}

/* ---- attn_decode ------------------------------------------------------------------------------------- */

static void decode_case(struct qn_h *h, struct shape s, uint32_t n_keys, uint32_t splits, bool device_pos,
                        float qmax, const uint32_t *spec, uint32_t nspec)
{
    uint32_t D = s.D, HD = s.Hq * D, cap = n_keys + 5;
    size_t ncache = (size_t)s.Hkv * cap * D;
    float *proj_h, *q_h, *kc_h, *vc_h;
    struct bufs b = { 0 };
    b.proj = qn_h_input_f32(h, "proj", stride_of(s), -4, 4, &proj_h);
    b.q = qn_h_input_f32(h, "q", HD, -qmax, qmax, &q_h);
    b.kc = cache_input(h, "kcache", ncache, -2, 2, &kc_h);
    b.vc = cache_input(h, "vcache", ncache, -2, 2, &vc_h);
    b.pos = pos_buf(h, device_pos ? n_keys - 1 : 999);
    b.part = qn_h_buffer(h, "partials", qn_attn_decode_partials_bytes(s.Hq, D, splits));
    b.out = qn_h_output(h, "out", HD);
    run_decode(h, s, &b, device_pos ? 1 : n_keys, splits, cap, device_pos ? QN_ATTN_POS_DEVICE : 0, spec, nspec);
    float *ref = qn_h_alloc(h, HD);
    ref_attn(s, q_h, kc_h, vc_h, proj_h, 1, n_keys - 1, cap, ref);
    char what[160];
    snprintf(what, sizeof what, "decode Hq %u Hkv %u D %u n_keys %u splits %u |q| < %g%s%s spec %u/%u/%u/%u", s.Hq,
             s.Hkv, D, n_keys, splits, qmax, device_pos ? " device-pos" : "", kv16 ? " f16 cache" : "", nspec > 0 ? spec[0] : 128, nspec > 1 ? spec[1] : 256,
             nspec > 2 ? spec[2] : 8, nspec > 3 ? spec[3] : 16);
    /* outputs are convex combinations of V rows in [-2, 2] times a gate in (0, 1). The error comes from the
     * f32 scores (the reference sums in double): it grows with |score|, so the bound scales with |q|.
     * Measured max abs: ~6e-7 at |q| < 2, 4e-6 at |q| < 12 (D 256), 1e-5 at |q| < 30 (D 64). */
    qn_h_check(h, what, b.out, ref, HD, 2.5e-6 * fmaxf(qmax, 2), 1e-5);
    qn_h_reset(h);
}

static void test_decode(struct qn_h *h)
{
    static const uint32_t nk[] = { 1, 7, 255, 256, 257, 3000 };
    static const uint32_t small[] = { 64, 64, 8, 8 }, tk8[] = { 128, 256, 8, 8 }, wg64[] = { 64, 256, 8, 16 };
    for (size_t i = 0; i < sizeof nk / sizeof nk[0]; i++) {
        decode_case(h, REAL, nk[i], qn_attn_decode_splits(nk[i]), false, 2, NULL, 0);
        decode_case(h, ODD[i % 4], nk[i], qn_attn_decode_splits(nk[i]), false, 2, NULL, 0);
    }
    decode_case(h, REAL, 300, 128, false, 2, NULL, 0); /* pre-recorded width: most splits empty */
    decode_case(h, REAL, 3000, 1, false, 2, NULL, 0);  /* one split takes all keys */
    decode_case(h, REAL, 2000, 31, false, 12, NULL, 0); /* sharp softmax: scores spread over ~+-40 */
    decode_case(h, ODD[1], 500, 1, false, 30, NULL, 0);
    decode_case(h, REAL, 1000, 7, true, 2, NULL, 0);
    decode_case(h, ODD[0], 777, 13, false, 2, small, 4);
    decode_case(h, ODD[2], 257, 5, false, 2, tk8, 4);
    decode_case(h, ODD[3], 100, 3, true, 2, small, 4);
    decode_case(h, REAL, 700, 9, false, 4, wg64, 4); /* 2 (head, key) items per invocation, 1 P.V row */
}

/* ---- attn_prefill ------------------------------------------------------------------------------------ */

static void prefill_case(struct qn_h *h, struct shape s, uint32_t T, uint32_t pos0, bool device_pos, float qmax,
                         const uint32_t *spec, uint32_t nspec)
{
    uint32_t D = s.D, HD = s.Hq * D, cap = pos0 + T + 3;
    size_t ncache = (size_t)s.Hkv * cap * D;
    float *proj_h, *q_h, *kc_h, *vc_h;
    struct bufs b = { 0 };
    b.proj = qn_h_input_f32(h, "proj", (size_t)T * stride_of(s), -4, 4, &proj_h);
    b.q = qn_h_input_f32(h, "q", (size_t)T * HD, -qmax, qmax, &q_h);
    b.kc = cache_input(h, "kcache", ncache, -2, 2, &kc_h);
    b.vc = cache_input(h, "vcache", ncache, -2, 2, &vc_h);
    b.pos = pos_buf(h, device_pos ? pos0 - 1 : 77);
    b.out = qn_h_output(h, "out", (size_t)T * HD);
    run_prefill(h, s, &b, T, device_pos ? 1 : pos0, cap, device_pos ? QN_ATTN_POS_DEVICE : 0, spec, nspec);
    float *ref = qn_h_alloc(h, (size_t)T * HD);
    ref_attn(s, q_h, kc_h, vc_h, proj_h, T, pos0, cap, ref);
    char what[160];
    snprintf(what, sizeof what, "prefill Hq %u Hkv %u D %u T %u pos0 %u |q| < %g%s%s spec %u/%u/%u/%u", s.Hq, s.Hkv,
             D, T, pos0, qmax, device_pos ? " device-pos" : "", kv16 ? " f16 cache" : "", nspec > 0 ? spec[0] : 256, nspec > 1 ? spec[1] : 256,
             nspec > 2 ? spec[2] : 32, nspec > 3 ? spec[3] : 16);
    /* same bound as decode; measured max abs ~1e-6 at |q| < 2, 8e-6 at |q| < 12, 5.5e-6 at |q| < 30 (D 64) */
    qn_h_check(h, what, b.out, ref, (size_t)T * HD, 2.5e-6 * fmaxf(qmax, 2), 1e-5);
    qn_h_reset(h);
}

static void test_prefill(struct qn_h *h)
{
    static const uint32_t Ts[] = { 1, 5, 64, 150 };
    static const uint32_t alt[] = { 128, 64, 8, 32 }, alt2[] = { 64, 256, 32, 8 };
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
        prefill_case(h, REAL, Ts[i], 0, false, 2, NULL, 0);
        prefill_case(h, REAL, Ts[i], i % 2 ? 300 : 17, false, 2, NULL, 0);
        prefill_case(h, ODD[i], Ts[i], 0, false, 2, NULL, 0);
        prefill_case(h, ODD[(i + 1) % 4], Ts[i], 41, false, 2, NULL, 0);
    }
    prefill_case(h, REAL, 37, 100, true, 2, NULL, 0);
    prefill_case(h, ODD[0], 70, 9, false, 2, alt, 4);
    prefill_case(h, ODD[1], 33, 50, true, 2, alt2, 4);
    prefill_case(h, REAL, 20, 5, false, 2, alt2, 4);
    prefill_case(h, REAL, 40, 200, false, 12, NULL, 0); /* sharp softmax */
    prefill_case(h, ODD[1], 50, 20, false, 30, NULL, 0);
}

/* ---- the pipeline: prep + prefill in two chunks, then prep + decode, vs the reference and vs one prefill -- */

/* fused_prep: the decode step as one attn_decode_prep dispatch (prep folded into the split pass; spec fused_spec,
 * NULL: the kernel's defaults) instead of attn_prep + attn_decode */
static bool fused_prep;
static const uint32_t *fused_spec;

static void pipeline_case(struct qn_h *h, struct shape s, uint32_t T1, uint32_t T2, int yarn)
{
    uint32_t D = s.D, HD = s.Hq * D, N = T1 + T2 + 1, cap = N + 2, st = stride_of(s);
    size_t ncache = (size_t)s.Hkv * cap * D;
    float af, *proj_h, *qnw_h, *knw_h;
    float *invf = make_inv_freq(h, s, yarn, &af);
    struct bufs b = { 0 };
    b.proj = qn_h_input_f32(h, "proj", (size_t)N * st, -3, 3, &proj_h);
    b.qnw = qn_h_input_f32(h, "q_norm", D, -0.5f, 0.5f, &qnw_h);
    b.knw = qn_h_input_f32(h, "k_norm", D, -0.5f, 0.5f, &knw_h);
    b.invf = qn_h_upload(h, "inv_freq", invf, sizeof(float) * s.R / 2);
    b.pos = pos_buf(h, T1 + T2);
    b.q = qn_h_output(h, "q", (size_t)N * HD);
    b.kc = qn_h_buffer(h, "kcache", cache_bytes(ncache));
    b.vc = qn_h_buffer(h, "vcache", cache_bytes(ncache));
    b.out = qn_h_output(h, "out", (size_t)N * HD);
    uint32_t splits = qn_attn_decode_splits(N);
    b.part = qn_h_buffer(h, "partials", qn_attn_decode_partials_bytes(s.Hq, D, splits));

    /* chunk 1 and chunk 2 of the prompt, each: prep (append) then prefill; then one decode step with the
     * position on the device (as a pre-recorded decode would); proj/q/out are bound at the chunk's rows */
    uint32_t starts[3] = { 0, T1, T1 + T2 }, lens[3] = { T1, T2, 1 };
    for (int c = 0; c < 3; c++) {
        uint64_t r0 = starts[c];
        struct qn_bind pr = QN_BIND_RANGE(b.proj, r0 * st * 4, (uint64_t)lens[c] * st * 4);
        struct qn_bind qr = QN_BIND_RANGE(b.q, r0 * HD * 4, (uint64_t)lens[c] * HD * 4);
        struct qn_bind orr = QN_BIND_RANGE(b.out, r0 * HD * 4, (uint64_t)lens[c] * HD * 4);
        bool dec = c == 2;
        qn_pc_attn_prep pp = { .T = lens[c], .Hq = s.Hq, .Hkv = s.Hkv, .D = D, .rot = s.R, .cap = cap,
                               .pos0 = dec ? 0 : starts[c], .flags = dec ? QN_ATTN_POS_DEVICE : 0,
                               .proj_stride = st, .eps = EPS, .attn_factor = af };
        if (!dec || !fused_prep)
            qn_h_run_z(h, qn_h_pipe(h, kv_kernel(QN_K_ATTN_PREP), 64), QN_BINDS(pr, QN_BIND(b.qnw), QN_BIND(b.knw),
                       QN_BIND(b.invf), QN_BIND(b.pos), qr, QN_BIND(b.kc), QN_BIND(b.vc)), &pp, sizeof pp,
                       s.Hq + 2 * s.Hkv, lens[c]);
        if (!dec) {
            qn_pc_attn_prefill pf = { .T = lens[c], .Hq = s.Hq, .Hkv = s.Hkv, .D = D, .cap = cap, .pos0 = starts[c],
                                      .proj_stride = st, .gate_off = HD, .scale = 1.0f / sqrtf((float)D) };
            const struct qn_bind b6[6] = { qr, QN_BIND(b.kc), QN_BIND(b.vc), pr, QN_BIND(b.pos), orr };
            prefill_bound(h, qn_h_pipe_default(h, kv_kernel(QN_K_ATTN_PREFILL)), s, b6, &pf);
            continue;
        }
        qn_pc_attn_decode pd = { .Hq = s.Hq, .Hkv = s.Hkv, .D = D, .cap = cap, .n_keys = 1, .splits = splits,
                                 .flags = QN_ATTN_POS_DEVICE, .gate_off = HD, .scale = 1.0f / sqrtf((float)D) };
        qn_pc_attn_dprep pq = { .Hq = s.Hq, .Hkv = s.Hkv, .D = D, .cap = cap, .n_keys = 1, .splits = splits,
                                .flags = QN_ATTN_POS_DEVICE, .gate_off = HD, .scale = 1.0f / sqrtf((float)D), .rot = s.R,
                                .eps = EPS, .attn_factor = af };
        if (fused_prep)
            qn_h_run_z(h, qn_h_pipe_spec(h, QN_K_ATTN_DECODE_PREP, fused_spec, fused_spec ? 4 : 0),
                       QN_BINDS(pr, QN_BIND(b.kc), QN_BIND(b.vc), QN_BIND(b.pos), QN_BIND(b.part), QN_BIND(b.qnw),
                                QN_BIND(b.knw), QN_BIND(b.invf)), &pq, sizeof pq, splits, s.Hkv);
        else
            qn_h_run_z(h, qn_h_pipe_default(h, kv_kernel(QN_K_ATTN_DECODE)), QN_BINDS(qr, QN_BIND(b.kc), QN_BIND(b.vc),
                       QN_BIND(b.pos), QN_BIND(b.part)), &pd, sizeof pd, splits, s.Hkv);
        qn_h_run(h, qn_h_pipe(h, QN_K_ATTN_DECODE_COMBINE, 64), QN_BINDS(QN_BIND(b.part), pr, orr), &pd, sizeof pd,
                 (uint64_t)s.Hq * ((D + 63) / 64));
    }
    float *chunked = qn_h_read(h, b.out, (size_t)N * HD);
    /* the reference: prep and attention over the whole sequence at once */
    float *q_ref = qn_h_alloc(h, (size_t)N * HD), *kc_ref = qn_h_alloc(h, ncache), *vc_ref = qn_h_alloc(h, ncache);
    float *ref = qn_h_alloc(h, (size_t)N * HD);
    ref_prep(s, proj_h, N, 0, qnw_h, knw_h, invf, af, q_ref, kc_ref, vc_ref, cap);
    cache_round(kc_ref, ncache);
    cache_round(vc_ref, ncache);
    ref_attn(s, q_ref, kc_ref, vc_ref, proj_h, N, 0, cap, ref);
    char what[160];
    snprintf(what, sizeof what, "pipeline Hq %u Hkv %u D %u: prefill %u + prefill %u + decode%s%s%s", s.Hq, s.Hkv, D,
             T1, T2, yarn ? " yarn" : "", kv16 ? " f16 cache" : "",
             fused_prep ? " (attn_decode_prep)" : "");
    /* attention of prep'd q/k: errors of both stages, measured max abs ~1e-6 (f32 cache); an f16 cache
     * entry may round to the other neighbour than the reference's: measured max abs 3.7e-5 (D 256, yarn) */
    qn_h_check_host(h, what, chunked, ref, (size_t)N * HD, kv16 ? 2e-4 : 2e-5, 1e-5);
    /* one prefill of all N tokens over the cache the chunks built == the chunked + decode result (the fused decode
     * step keeps its q in shared memory: attn_prep writes the last token's q row for this check, and its k / v row
     * again, the same values up to the order of the norm's sums) */
    if (fused_prep) {
        qn_pc_attn_prep pp = { .T = 1, .Hq = s.Hq, .Hkv = s.Hkv, .D = D, .rot = s.R, .cap = cap, .pos0 = 0,
                               .flags = QN_ATTN_POS_DEVICE, .proj_stride = st, .eps = EPS, .attn_factor = af };
        qn_h_run_z(h, qn_h_pipe(h, kv_kernel(QN_K_ATTN_PREP), 64),
                   QN_BINDS(QN_BIND_RANGE(b.proj, (uint64_t)(N - 1) * st * 4, (uint64_t)st * 4), QN_BIND(b.qnw),
                            QN_BIND(b.knw), QN_BIND(b.invf), QN_BIND(b.pos),
                            QN_BIND_RANGE(b.q, (uint64_t)(N - 1) * HD * 4, (uint64_t)HD * 4), QN_BIND(b.kc),
                            QN_BIND(b.vc)), &pp, sizeof pp, s.Hq + 2 * s.Hkv, 1);
    }
    qn_pc_attn_prefill pf = { .T = N, .Hq = s.Hq, .Hkv = s.Hkv, .D = D, .cap = cap, .pos0 = 0, .proj_stride = st,
                              .gate_off = HD, .scale = 1.0f / sqrtf((float)D) };
    const struct qn_bind b6[6] = { QN_BIND(b.q), QN_BIND(b.kc), QN_BIND(b.vc), QN_BIND(b.proj), QN_BIND(b.pos),
                                   QN_BIND(b.out) };
    prefill_bound(h, qn_h_pipe_default(h, kv_kernel(QN_K_ATTN_PREFILL)), s, b6, &pf);
    snprintf(what, sizeof what, "pipeline Hq %u Hkv %u D %u: one prefill of %u vs chunks + decode", s.Hq, s.Hkv, D, N);
    qn_h_check(h, what, b.out, chunked, (size_t)N * HD, 5e-6, 1e-5);
    qn_h_reset(h);
}

/* shapes the kernels cannot take: the host check refuses them, and a kernel given one writes nothing */
static void test_refusals(struct qn_h *h)
{
    int ok = qn_attn_shape_ok(16, 2, 256, 64, 256, 8, 128) && qn_attn_shape_ok(3, 1, 36, 8, 256, 8, 128) &&
             !qn_attn_shape_ok(16, 3, 256, 64, 256, 8, 128) && !qn_attn_shape_ok(32, 2, 256, 64, 256, 8, 128) &&
             !qn_attn_shape_ok(16, 2, 258, 64, 256, 8, 128) && !qn_attn_shape_ok(16, 2, 260, 64, 256, 8, 128) &&
             !qn_attn_shape_ok(16, 2, 256, 63, 256, 8, 128) && !qn_attn_shape_ok(16, 2, 256, 64, 256, 8, 32) &&
             !qn_attn_shape_ok(16, 0, 256, 64, 256, 8, 128);
    h->checks++;
    if (!ok) h->failures++;
    printf("%-4s qn_attn_shape_ok accepts and refuses the expected shapes\n", ok ? "ok" : "FAIL");
    struct shape big = { 2, 1, 260, 64 }; /* D > QN_DMAX */
    struct bufs b = { 0 };
    b.proj = qn_h_input_f32(h, "proj", stride_of(big), -1, 1, NULL);
    b.qnw = b.knw = qn_h_input_f32(h, "norm", big.D, -1, 1, NULL);
    b.invf = qn_h_input_f32(h, "inv_freq", big.R / 2, 0, 1, NULL);
    b.pos = pos_buf(h, 0);
    b.q = qn_h_output(h, "q", 2 * big.D), b.kc = qn_h_output(h, "kcache", 4 * big.D);
    b.vc = qn_h_output(h, "vcache", 4 * big.D), b.out = qn_h_output(h, "out", 2 * big.D);
    b.part = qn_h_buffer(h, "partials", qn_attn_decode_partials_bytes(2, big.D, 1));
    run_prep(h, big, &b, 1, 0, 4, 0, 1.0f, 64);
    run_prefill(h, big, &b, 1, 0, 4, 0, NULL, 0);
    qn_pipe *pd = qn_h_pipe_default(h, QN_K_ATTN_DECODE); /* the split pass alone: no partials */
    qn_pc_attn_decode pc = { .Hq = big.Hq, .Hkv = big.Hkv, .D = big.D, .cap = 4, .n_keys = 1, .splits = 1,
                             .scale = 0.0625f };
    qn_h_run_z(h, pd, QN_BINDS(QN_BIND(b.q), QN_BIND(b.kc), QN_BIND(b.vc), QN_BIND(b.pos), QN_BIND(b.part)), &pc,
               sizeof pc, 1, big.Hkv);
    const qn_buf *outs[] = { b.q, b.kc, b.vc, b.out, b.part };
    size_t written = 0;
    for (int i = 0; i < 5; i++) {
        size_t n = outs[i]->size / 4;
        float *x = qn_h_read(h, outs[i], n);
        for (size_t k = 0; k < n; k++) written += !isnan(x[k]);
    }
    h->checks++;
    if (written) h->failures++;
    printf("%-4s D 260 > QN_DMAX: attn_prep, attn_prefill, attn_decode (split pass) wrote %zu elements (want 0)\n",
           written ? "FAIL" : "ok", written);
    qn_h_reset(h);
}

/* the f16 KV cache variants (attn_*_f16kv) on a subset of the cases */
static void test_kv16(struct qn_h *h)
{
    kv16 = true;
    prep_case(h, REAL, 3, 7, 16, 0, false, 64);
    prep_case(h, ODD[0], 4, 100000, 100004, 1, false, 32);
    prep_case(h, ODD[3], 2, 20, 30, 0, true, 64);
    static const uint32_t nk[] = { 1, 255, 257, 3000 };
    for (size_t i = 0; i < sizeof nk / sizeof nk[0]; i++) {
        decode_case(h, REAL, nk[i], qn_attn_decode_splits(nk[i]), i == 2, 2, NULL, 0);
        decode_case(h, ODD[i], nk[i], qn_attn_decode_splits(nk[i]), false, 2, NULL, 0);
    }
    prefill_case(h, REAL, 64, 17, false, 2, NULL, 0);
    prefill_case(h, ODD[2], 150, 0, false, 2, NULL, 0);
    prefill_case(h, ODD[3], 5, 41, true, 12, NULL, 0);
    pipeline_case(h, REAL, 40, 23, 1);
    pipeline_case(h, ODD[1], 17, 30, 0);
    kv16 = false;
}

static void test_pipeline(struct qn_h *h)
{
    pipeline_case(h, REAL, 40, 23, 0);
    pipeline_case(h, ODD[0], 17, 30, 1);
    /* the decode step's prep folded into the split pass: the defaults, and 96 invocations (the sums' tree folds) */
    static const uint32_t wg96[4] = { 96, 64, 8, 8 };
    fused_prep = true;
    pipeline_case(h, REAL, 40, 23, 1);
    pipeline_case(h, ODD[0], 17, 30, 0);
    fused_spec = wg96;
    pipeline_case(h, ODD[2], 9, 20, 1);
    pipeline_case(h, ODD[3], 33, 1, 0);
    fused_prep = false, fused_spec = NULL;
}

/* ---- --bench: GPU times at the real shape (for a real GPU; values do not matter, so buffers are filled
 * with a constant) ----------------------------------------------------------------------------------------- */

static double median_ms(double *t, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1], t[j - 1] = x;
        }
    return t[n / 2];
}

static qn_buf *filled(struct qn_h *h, const char *name, uint64_t bytes, float v)
{
    qn_buf *b = qn_h_buffer(h, name, bytes);
    uint32_t w;
    memcpy(&w, &v, 4);
    qn_h_ok(h, qn_buf_fill(h->v, b, 0, b->size, w), name);
    return b;
}

static void bench(struct qn_h *h)
{
    struct shape s = REAL;
    uint32_t D = s.D, HD = s.Hq * D;
    uint64_t range = qn_vk_caps(h->v)->max_storage_range;
    static const uint32_t nks[] = { 1024, 4096, 32768, 131072, 262144 };
    for (size_t i = 0; i < sizeof nks / sizeof nks[0]; i++) {
        uint32_t n = nks[i], S = qn_attn_decode_splits(n);
        uint64_t cb = (uint64_t)s.Hkv * n * D * 4;
        if (cb > range) continue;
        struct bufs b = { 0 };
        b.proj = filled(h, "proj", stride_of(s) * 4, 0.5f), b.q = filled(h, "q", HD * 4, 0.01f);
        b.kc = filled(h, "kcache", cb, 0.02f), b.vc = filled(h, "vcache", cb, 0.03f);
        b.pos = pos_buf(h, 0), b.out = qn_h_output(h, "out", HD);
        b.part = qn_h_buffer(h, "partials", qn_attn_decode_partials_bytes(s.Hq, D, S));
        double t[21];
        for (int r = 0; r < 21; r++) t[r] = run_decode(h, s, &b, n, S, n, 0, NULL, 0);
        double ms = median_ms(t, 21);
        printf("bench decode n_keys %6u splits %3u: %8.1f us  K+V %7.1f MB  %6.0f GB/s\n", n, S, ms * 1e3,
               2.0 * cb / 1e6, 2.0 * cb / (ms * 1e-3) / 1e9);
        qn_h_reset(h);
    }
    /* a decode step at short contexts as the model records it (splits for a 4096-token capacity, the position on the
     * device): attn_decode_prep alone (prep folded in; the model's default), attn_decode, the combine */
    static const uint32_t sks[] = { 16, 128, 1024 };
    for (size_t i = 0; i < sizeof sks / sizeof sks[0]; i++) {
        uint32_t n = sks[i], cap = 4096, S = qn_attn_decode_splits(cap), Sn = qn_attn_decode_splits(n);
        uint64_t cb = (uint64_t)s.Hkv * cap * D * 4;
        struct bufs b = { 0 };
        b.proj = filled(h, "proj", stride_of(s) * 4, 0.5f), b.q = filled(h, "q", HD * 4, 0.01f);
        b.qnw = filled(h, "q_norm", D * 4, 0.1f), b.knw = filled(h, "k_norm", D * 4, 0.1f);
        b.invf = filled(h, "inv_freq", s.R / 2 * 4, 0.001f);
        b.kc = filled(h, "kcache", cb, 0.02f), b.vc = filled(h, "vcache", cb, 0.03f);
        b.pos = pos_buf(h, n - 1), b.out = qn_h_output(h, "out", HD);
        b.part = qn_h_buffer(h, "partials", qn_attn_decode_partials_bytes(s.Hq, D, S));
        qn_pc_attn_dprep pq = { .Hq = s.Hq, .Hkv = s.Hkv, .D = D, .cap = cap, .n_keys = 1, .splits = S,
                                .flags = QN_ATTN_POS_DEVICE, .gate_off = HD, .scale = 1.0f / sqrtf((float)D),
                                .rot = s.R, .eps = EPS, .attn_factor = 1.0f };
        qn_pc_attn_decode pd = { .Hq = s.Hq, .Hkv = s.Hkv, .D = D, .cap = cap, .n_keys = 1, .splits = S,
                                 .flags = QN_ATTN_POS_DEVICE, .gate_off = HD, .scale = pq.scale };
        double tp[21], td[21], tdn[21], tc[21];
        for (int r = 0; r < 21; r++) {
            tp[r] = qn_h_run_z(h, qn_h_pipe_default(h, QN_K_ATTN_DECODE_PREP),
                               QN_BINDS(QN_BIND(b.proj), QN_BIND(b.kc), QN_BIND(b.vc), QN_BIND(b.pos), QN_BIND(b.part),
                                        QN_BIND(b.qnw), QN_BIND(b.knw), QN_BIND(b.invf)), &pq, sizeof pq, S, s.Hkv);
            td[r] = qn_h_run_z(h, qn_h_pipe_default(h, kv_kernel(QN_K_ATTN_DECODE)),
                               QN_BINDS(QN_BIND(b.q), QN_BIND(b.kc), QN_BIND(b.vc), QN_BIND(b.pos), QN_BIND(b.part)),
                               &pd, sizeof pd, S, s.Hkv);
            tc[r] = qn_h_run(h, qn_h_pipe(h, QN_K_ATTN_DECODE_COMBINE, 64),
                             QN_BINDS(QN_BIND(b.part), QN_BIND(b.proj), QN_BIND(b.out)), &pd, sizeof pd,
                             (uint64_t)s.Hq * ((D + 63) / 64));
            qn_pc_attn_decode pn = pd;
            pn.splits = Sn;
            tdn[r] = qn_h_run_z(h, qn_h_pipe_default(h, kv_kernel(QN_K_ATTN_DECODE)),
                                QN_BINDS(QN_BIND(b.q), QN_BIND(b.kc), QN_BIND(b.vc), QN_BIND(b.pos), QN_BIND(b.part)),
                                &pn, sizeof pn, Sn, s.Hkv);
        }
        printf("bench decode step n_keys %5u (splits %u of cap %u): attn_decode_prep %6.1f us, attn_decode %6.1f us "
               "(splits %u: %6.1f us), combine %5.1f us\n", n, S, cap, median_ms(tp, 21) * 1e3, median_ms(td, 21) * 1e3,
               Sn, median_ms(tdn, 21) * 1e3, median_ms(tc, 21) * 1e3);
        qn_h_reset(h);
    }
    static const uint32_t Ts[] = { 512, 2048, 8192 };
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
        uint32_t T = Ts[i];
        uint64_t cb = (uint64_t)s.Hkv * T * D * 4;
        if (cb > range || (uint64_t)T * stride_of(s) * 4 > range) continue;
        struct bufs b = { 0 };
        b.proj = filled(h, "proj", (uint64_t)T * stride_of(s) * 4, 0.5f);
        b.qnw = filled(h, "q_norm", D * 4, 0.1f), b.knw = filled(h, "k_norm", D * 4, 0.1f);
        b.invf = filled(h, "inv_freq", s.R / 2 * 4, 0.001f), b.pos = pos_buf(h, 0);
        b.q = qn_h_output(h, "q", (uint64_t)T * HD), b.out = qn_h_output(h, "out", (uint64_t)T * HD);
        b.kc = qn_h_buffer(h, "kcache", cb), b.vc = qn_h_buffer(h, "vcache", cb);
        double tp[5], ta[5];
        for (int r = 0; r < 5; r++) {
            run_prep(h, s, &b, T, 0, T, 0, 1.0f, 64);
            tp[r] = qn_cmd_region(h->cmd, 0, NULL);
            ta[r] = run_prefill(h, s, &b, T, 0, T, 0, NULL, 0);
        }
        double mp = median_ms(tp, 5), ma = median_ms(ta, 5);
        double flop = 4.0 * s.Hq * D * ((double)T * (T + 1) / 2);
        printf("bench prefill T %5u: prep %8.1f us, attention %9.1f us  %6.2f TFLOP/s\n", T, mp * 1e3, ma * 1e3,
               flop / (ma * 1e-3) / 1e12);
        qn_h_reset(h);
    }
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "attn", argc, argv);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench")) {
            bench(&h);
            return qn_h_close(&h);
        }
    test_prep(&h);
    test_decode(&h);
    test_prefill(&h);
    test_pipeline(&h);
    test_kv16(&h);
    test_refusals(&h);
    return qn_h_close(&h);
}
