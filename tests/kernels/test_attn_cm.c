/* test_attn_cm.c — the flash-attention prefill kernels of attn_prefill_cm.comp against the C reference
 * (runtime/ref/ref_ops.h qn_ref_attn_decode per query + qn_ref_mul_sigmoid, as test_attn.c's prefill cases):
 *   attn_prefill_cm      tensor cores (VK_NV_cooperative_matrix): only where the device has them with the f16
 *                        16x16x16 shape and 32-wide subgroups (NVIDIA); elsewhere a loud SKIP line for it;
 *   attn_prefill_cm_emu  the same kernel with the fragment operations emulated: runs everywhere (lavapipe), so
 *                        the tiles, causal masks, online softmax, the per-row rescale and the epilogue are tested.
 * Shapes: the real one (Hq 16, Hkv 2, D 256) and odd ones (G 1..8, D 32..96), T 1 .. 300 (partial row blocks
 * and key tiles), chunks continuing a cache (pos0 > 0), device-side positions, a sharp softmax.
 * Tolerance: the kernels round q, k, v and the probabilities to f16 and accumulate in f32. Against the reference
 * computed on the f16-rounded q, k, v the only extra error is P's rounding (relative 2^-11 per probability), so
 * |out - ref| <= 2 * 2^-11 * max|v| / (1 - 2^-11) * max sigmoid: the bound used is 1.1e-3 * max|v| (+ f32 slack).
 * Against the exact (unrounded) reference the score errors add up to ~|q||k| 2^-10: checked loosely (1e-3 |q|max
 * + 2e-3; measured 1e-3 at |q| < 2, 6.7e-3 at 12, 1.6e-2 at 30) to show the f16 inputs are the only other difference.
 * Layouts (spec constants PF,BC,KV2): 0,32,0 (the default), 1,32,0 (the next K / V tile fetched into registers
 * before the multiplies), 0,32,1 (K and V in two buffers: 3 barriers per tile; 48 KiB of shared memory, not on
 * lavapipe), 0,16,1 and 1,16,0 (16-key tiles).
 * `test_attn_cm --bench` times attn_prefill (f32 FMA) against attn_prefill_cm (each layout) at T 512 / 2048 / 4096
 * on the real shape (warmed; median of 7) and checks one against the other there. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_check.h"
#include "harness.h"
#include "qn_num.h"
#include "ref_ops.h"

struct shape {
    uint32_t Hq, Hkv, D;
};
static const struct shape REAL = { 16, 2, 256 };
static const struct shape ODD[] = { { 6, 3, 32 }, { 4, 4, 64 }, { 8, 1, 64 }, { 3, 1, 96 } };

static uint32_t stride_of(struct shape s) { return 2 * s.Hq * s.D + 2 * s.Hkv * s.D; }
static float f16r(float v) { return qn_f16_to_f32(qn_f32_to_f16(v)); }
static double worst_rounded, worst_exact;

/* the kernel's layout: spec 1 QN_PF, 2 BC (keys per tile), 3 QN_KV2 (K and V tiles in two buffers) */
struct lay {
    uint32_t pf, bc, kv2;
};
static const struct lay LAYS[] = { { 0, 32, 0 }, { 1, 32, 0 }, { 0, 32, 1 }, { 0, 16, 1 }, { 1, 16, 0 } };
#define NLAYS (sizeof LAYS / sizeof LAYS[0])

static bool fits(const struct qn_h *h, struct lay l)
{
    return qn_attn_cm_shared_bytes(l.bc, (int)l.kv2) <= qn_vk_caps(h->v)->max_shared;
}

static bool has_cm(const struct qn_h *h)
{
    const struct qn_caps *c = qn_vk_caps(h->v);
    return !(qn_kernel_infos[QN_K_ATTN_PREFILL_CM].features & ~c->features) && c->coopmat_nv_n == 16 &&
           c->subgroup_size == 32 && c->subgroup_min == 32 && c->subgroup_max == 32 && c->max_shared >= 32768;
}

/* Reference attention of T queries at positions pos0.., gated (attn_check.h). */
static void ref_attn(struct shape s, const float *q, const float *kc, const float *vc, const float *proj, uint32_t T,
                     uint32_t pos0, uint32_t cap, float *out)
{
    attn_ref_gated(s.Hq, s.Hkv, s.D, stride_of(s), q, kc, vc, proj, T, pos0, cap, out);
}

static float *rounded(struct qn_h *h, const float *x, size_t n)
{
    float *r = qn_h_alloc(h, n);
    for (size_t i = 0; i < n; i++) r[i] = f16r(x[i]);
    return r;
}

/* groups: ceil(T G / 64) row blocks times Hkv in z; bindings q, kcache, vcache, proj, pos, out */
static double run(struct qn_h *h, enum qn_kernel k, struct lay l, struct shape s, const struct qn_bind *b6, uint32_t T,
                  uint32_t pos0, uint32_t cap, uint32_t flags)
{
    qn_pc_attn_prefill pc = { .T = T, .Hq = s.Hq, .Hkv = s.Hkv, .D = s.D, .cap = cap, .pos0 = pos0, .flags = flags,
                              .proj_stride = stride_of(s), .gate_off = s.Hq * s.D,
                              .scale = 1.0f / sqrtf((float)s.D) };
    uint64_t groups = ((uint64_t)T * (s.Hq / s.Hkv) + 63) / 64;
    return qn_h_run_z(h, qn_h_pipe(h, k, 256, l.pf, l.bc, l.kv2), b6, 6, &pc, sizeof pc, groups, s.Hkv);
}

static void cm_case(struct qn_h *h, enum qn_kernel k, struct lay l, struct shape s, uint32_t T, uint32_t pos0,
                    bool device_pos, float qmax)
{
    uint32_t D = s.D, HD = s.Hq * D, cap = pos0 + T + 3;
    size_t ncache = (size_t)s.Hkv * cap * D, nq = (size_t)T * HD;
    float *proj_h, *q_h, *kc_h, *vc_h, vmax = 2;
    qn_buf *proj = qn_h_input_f32(h, "proj", (size_t)T * stride_of(s), -4, 4, &proj_h);
    qn_buf *q = qn_h_input_f32(h, "q", nq, -qmax, qmax, &q_h);
    qn_buf *kc = qn_h_input_f32(h, "kcache", ncache, -2, 2, &kc_h);
    qn_buf *vc = qn_h_input_f32(h, "vcache", ncache, -vmax, vmax, &vc_h);
    uint32_t pv = device_pos ? pos0 - 1 : 77;
    qn_buf *pos = qn_h_upload(h, "pos", &pv, sizeof pv);
    qn_buf *out = qn_h_output(h, "out", nq);
    const struct qn_bind b6[6] = { QN_BIND(q), QN_BIND(kc), QN_BIND(vc), QN_BIND(proj), QN_BIND(pos), QN_BIND(out) };
    run(h, k, l, s, b6, T, device_pos ? 1 : pos0, cap, device_pos ? QN_ATTN_POS_DEVICE : 0);
    float *ref16 = qn_h_alloc(h, nq), *ref = qn_h_alloc(h, nq);
    ref_attn(s, rounded(h, q_h, nq), rounded(h, kc_h, ncache), rounded(h, vc_h, ncache), proj_h, T, pos0, cap, ref16);
    ref_attn(s, q_h, kc_h, vc_h, proj_h, T, pos0, cap, ref);
    float *got = qn_h_read(h, out, nq);
    double e16 = 0, ex = 0;
    for (size_t i = 0; i < nq; i++) {
        e16 = fmax(e16, fabs((double)got[i] - ref16[i]));
        ex = fmax(ex, fabs((double)got[i] - ref[i]));
    }
    worst_rounded = fmax(worst_rounded, e16), worst_exact = fmax(worst_exact, ex);
    char what[200];
    const char *kn = k == QN_K_ATTN_PREFILL_CM ? "attn_prefill_cm" : "attn_prefill_cm_emu";
    snprintf(what, sizeof what, "%s %u,%u,%u Hq %u Hkv %u D %u T %u pos0 %u |q| < %g%s vs f16-rounded inputs (exact: %.2g)",
             kn, l.pf, l.bc, l.kv2, s.Hq, s.Hkv, D, T, pos0, qmax, device_pos ? " device-pos" : "", ex);
    qn_h_check_host(h, what, got, ref16, nq, 1.1e-3 * vmax + 1e-5, 1e-5);
    snprintf(what, sizeof what, "%s %u,%u,%u Hq %u Hkv %u D %u T %u pos0 %u vs the exact reference (f16 inputs)", kn,
             l.pf, l.bc, l.kv2, s.Hq, s.Hkv, D, T, pos0);
    qn_h_check_host(h, what, got, ref, nq, 1e-3 * qmax + 2e-3, 0);
    qn_h_reset(h);
}

/* every case in the default layout (32-key tiles, one K / V buffer, no prefetch); the other layouts (LAYS) all of
 * them on the tensor cores, the multi-tile ones emulated (slow on lavapipe); a layout whose shared memory the device
 * lacks is skipped with a note (lavapipe's 32 KiB: 32-key tiles in two buffers) */
static void test_kernel(struct qn_h *h, enum qn_kernel k)
{
    static const uint32_t Ts[] = { 1, 17, 64, 300 };
    for (size_t n = 0; n < NLAYS; n++) {
        struct lay l = LAYS[n];
        bool all = k == QN_K_ATTN_PREFILL_CM || n == 0;
        if (!fits(h, l)) {
            printf("note: layout %u,%u,%u needs %u bytes of shared memory (device: %u): not tested here\n", l.pf, l.bc,
                   l.kv2, qn_attn_cm_shared_bytes(l.bc, (int)l.kv2), qn_vk_caps(h->v)->max_shared);
            continue;
        }
        for (size_t i = all ? 0 : 2; i < sizeof Ts / sizeof Ts[0]; i++) {
            cm_case(h, k, l, REAL, Ts[i], 0, false, 2);
            cm_case(h, k, l, ODD[i], Ts[i], i % 2 ? 41 : 0, false, 2);
        }
        cm_case(h, k, l, REAL, 37, 100, true, 2);
        if (all) cm_case(h, k, l, ODD[1], 33, 50, true, 2);
        cm_case(h, k, l, REAL, 40, 200, false, 12); /* sharp softmax */
        if (all) cm_case(h, k, l, ODD[2], 150, 9, false, 30);
    }
}

static double median_ms(double *t, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1], t[j - 1] = x;
        }
    return t[n / 2];
}

/* one T: attn_prefill (f32 FMA) and attn_prefill_cm in each layout (PF,BC,KV2), each warmed (an idle GPU clocks down: about
 * 300 ms of the kernel back to back first), median of 7; the outputs checked against each other */
static void bench_t(struct qn_h *h, uint32_t T)
{
    struct shape s = REAL;
    uint32_t HD = s.Hq * s.D;
    size_t ncache = (size_t)s.Hkv * T * s.D, nq = (size_t)T * HD;
    qn_buf *proj = qn_h_input_f32(h, "proj", (size_t)T * stride_of(s), -4, 4, NULL);
    qn_buf *q = qn_h_input_f32(h, "q", nq, -2, 2, NULL);
    qn_buf *kc = qn_h_input_f32(h, "kcache", ncache, -2, 2, NULL);
    qn_buf *vc = qn_h_input_f32(h, "vcache", ncache, -2, 2, NULL);
    uint32_t pv = 0;
    qn_buf *pos = qn_h_upload(h, "pos", &pv, sizeof pv);
    qn_buf *o1 = qn_h_output(h, "out fma", nq), *o2 = qn_h_output(h, "out cm", nq);
    const struct qn_bind b1[6] = { QN_BIND(q), QN_BIND(kc), QN_BIND(vc), QN_BIND(proj), QN_BIND(pos), QN_BIND(o1) };
    const struct qn_bind b2[6] = { QN_BIND(q), QN_BIND(kc), QN_BIND(vc), QN_BIND(proj), QN_BIND(pos), QN_BIND(o2) };
    qn_pc_attn_prefill pc = { .T = T, .Hq = s.Hq, .Hkv = s.Hkv, .D = s.D, .cap = T, .proj_stride = stride_of(s),
                              .gate_off = HD, .scale = 1.0f / sqrtf((float)s.D) };
    qn_pipe *pfma = qn_h_pipe_default(h, QN_K_ATTN_PREFILL);
    uint64_t gfma = ((uint64_t)T * (s.Hq / s.Hkv) + qn_pipe_spec(pfma, 2) - 1) / qn_pipe_spec(pfma, 2);
    double flop = 4.0 * s.Hq * s.D * ((double)T * (T + 1) / 2);
    for (size_t n = 0; n < NLAYS; n++) {
        struct lay l = LAYS[n];
        if (!fits(h, l)) continue;
        double tf[7], tc[7], warm = 0;
        for (int r = 0; r < 200 && !(warm > 300); r++) warm += run(h, QN_K_ATTN_PREFILL_CM, l, s, b2, T, 0, T, 0);
        for (int r = 0; r < 7; r++) {
            tf[r] = qn_h_run_z(h, pfma, b1, 6, &pc, sizeof pc, gfma, s.Hkv);
            tc[r] = run(h, QN_K_ATTN_PREFILL_CM, l, s, b2, T, 0, T, 0);
        }
        double mf = median_ms(tf, 7), mc = median_ms(tc, 7), e = 0;
        float *a = qn_h_read(h, o1, nq), *b = qn_h_read(h, o2, nq);
        for (size_t k = 0; k < nq; k++) e = fmax(e, fabs((double)a[k] - b[k]));
        printf("bench attn prefill T %5u: fma %9.1f us %6.2f TFLOP/s | cm %u,%u,%u %9.1f us %6.2f TFLOP/s (x%.2f) | max "
               "|cm - fma| %.2g\n", T, mf * 1e3, flop / (mf * 1e-3) / 1e12, l.pf, l.bc, l.kv2, mc * 1e3,
               flop / (mc * 1e-3) / 1e12, mf / mc, e);
        qn_h_check_host(h, "bench: attn_prefill_cm vs attn_prefill", b, a, nq, 5e-3, 0);
    }
    qn_h_reset(h);
}

static void bench(struct qn_h *h)
{
    if (!has_cm(h)) {
        printf("SKIP bench: no tensor-core attention on this device\n");
        return;
    }
    static const uint32_t Ts[] = { 512, 2048, 4096 };
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) bench_t(h, Ts[i]);
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "attn_cm", argc, argv);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench")) {
            bench(&h);
            return qn_h_close(&h);
        }
    test_kernel(&h, QN_K_ATTN_PREFILL_CM_EMU);
    if (has_cm(&h)) test_kernel(&h, QN_K_ATTN_PREFILL_CM);
    else
        printf("SKIP attn_prefill_cm: device '%s' has no VK_NV_cooperative_matrix f16 16x16x16 shape with 32-wide "
               "subgroups: the tensor-core kernel is NOT tested here (its emulated twin is)\n", qn_vk_caps(h.v)->name);
    printf("worst |out - ref|: %.3g vs f16-rounded inputs, %.3g vs exact\n", worst_rounded, worst_exact);
    return qn_h_close(&h);
}
