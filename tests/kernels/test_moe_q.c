/* test_moe_q.c — decode MoE over GGUF block experts (moe_q.comp: moe_q_gu_* and moe_q_dn_*) against a
 * double-precision C reference on the dequantized weights (loader/quant.h), and (--bench) their speed.
 *
 * Each case: T tokens (in z) with K distinct random experts each, E experts in slots of 3 pools (random
 * placement through the slot table; gate | up in `pools`, down in `dpools`, as model_gguf.c lays them out),
 *   gate_up: act[t, k, i] = silu(gate_e[i] · x_t) * (up_e[i] · x_t)
 *   down:    y[t, h] = y0[t, h] + sum_k w[t, k] (down_e[h] · act[t, k]) + sg[t] (down_s[h] · act[t, K])
 * where down reads a random act (independent of gate_up) and down_s is f32. Formats: every one of Q8_0,
 * Q4_0, Q4_K, Q5_K, Q6_K for both parts, mixed pairs, the Q4_K_M mix (Q4_K gate/up, Q6_K down) at the real
 * 80B row lengths (H 2048, I 512, K 10), several layouts (spec constants: staged / unstaged x, rows per
 * subgroup, units or experts in flight, a workgroup smaller than a subgroup), and an absent expert
 * (table -1), whose outputs must be NaN.
 *
 * Tolerance: each output is an f32 sum over units in a fixed order; the quant offsets and mins go through
 * sums of x (quant.glsl), so the error scale is S = sum |w x| + sum |x| * (block range) per dot product
 * (as test_qmatvec.c; for act: S_gate |u| + S_up |silu(g)|; for y: sum_k |w_k| S_k + |sg| S_s). Bound
 * 1e-6 + 5e-7 * S; the measured worst |err| / S is printed at the end.
 *
 * --bench: decode T = 1 (and 2) at H 2048 / I 512 / K 10 with all E = 512 experts resident (one quantized
 * expert replicated into every slot), the Q4_K_M mix (Q4_K gate/up, Q6_K down) and Q8_0: each timed
 * dispatch uses another token's 10 experts (16 distinct routings in turn, so the L2 cannot hold them);
 * prints µs and GB/s of expert weights read (+ down_s) per kernel. Run on a GPU, not on lavapipe.
 * --small: Q4_0 and Q6_K cases only, without the real-shape one (the meson variants other than the first). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "qblocks.h"
#include "quant.h"
#include "ref_ops.h"

#define NFMTS 5
static const uint32_t qtypes[NFMTS] = { QN_GGML_Q8_0, QN_GGML_Q4_0, QN_GGML_Q4_K, QN_GGML_Q5_K, QN_GGML_Q6_K };
static const enum qn_kernel k_gu[NFMTS] = { QN_K_MOE_Q_GU_Q8_0, QN_K_MOE_Q_GU_Q4_0, QN_K_MOE_Q_GU_Q4_K,
                                            QN_K_MOE_Q_GU_Q5_K, QN_K_MOE_Q_GU_Q6_K };
static const enum qn_kernel k_dn[NFMTS] = { QN_K_MOE_Q_DN_Q8_0, QN_K_MOE_Q_DN_Q4_0, QN_K_MOE_Q_DN_Q4_K,
                                            QN_K_MOE_Q_DN_Q5_K, QN_K_MOE_Q_DN_Q6_K };

/* spec constants 0 and 3..6 of both kernels: wg, rows, sgrows, unroll, xsh (0 = the kernel's default) */
struct qlayout { uint32_t wg, rows, sgrows, unroll, xsh; };
static const struct qlayout layouts[] = {
    { 0, 0, 0, 0, 0 },        /* the defaults (the model's decode layout) */
    { 64, 4, 1, 1, 1024 },    /* small groups, one row per team / lane, everything staged */
    { 128, 7, 3, 3, 0 },      /* odd rows, 3 rows per set, nothing staged */
    { 2, 3, 2, 2, 64 },       /* a workgroup smaller than a subgroup (the team is the workgroup) */
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

static double worst;

struct mcase {
    uint32_t fgu, fdn, T, H, I, Is, E, K, layout;
    int absent;                 /* expert whose slot is -1 (or -1 for none) */
};

static uint64_t al16(uint64_t x) { return (x + 15) / 16 * 16; }

/* sum w x in double; *s = its error scale: sum |w x| + sum |x| * (range of w's 32-block) */
static double dot_s(const float *w, const float *x, uint32_t n, double *s)
{
    double acc = 0, a = 0, bmax = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i % 32 == 0) {
            bmax = 0;
            for (uint32_t j = i; j < i + 32 && j < n; j++) bmax = fmax(bmax, fabsf(w[j]));
        }
        acc += (double)w[i] * x[i];
        a += fabs((double)x[i]) * (fabsf(w[i]) + bmax);
    }
    *s = a;
    return acc;
}

static void check(struct qn_h *h, const char *what, const float *got, const float *ref, const double *s, size_t n,
                  const uint8_t *want_nan)
{
    double ratio = 0;
    int bad = 0;
    size_t first = 0;
    for (size_t i = 0; i < n; i++) {
        if (want_nan && want_nan[i]) {
            if (!isnan(got[i]) && !bad++) first = i;
            continue;
        }
        if (isnan(ref[i])) continue; /* not an output */
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= 1e-6 + 5e-7 * s[i]) && !bad++) first = i;
        if (isfinite(e) && s[i] > 0 && e / s[i] > ratio) ratio = e / s[i];
    }
    h->checks++;
    if (bad) h->failures++;
    worst = fmax(worst, ratio);
    printf("%-4s %s: err/S %.2g", bad ? "FAIL" : "ok", what, ratio);
    if (bad) printf(" — %d bad, first at %zu: got %g want %g", bad, first, got[first], ref[first]);
    printf("\n");
}

/* experts in slots over `npools` (<= 8) pools of spp slots; gate|up slot_b, down dslot_b; unused pools bind
 * pool 0 again */
struct experts {
    uint32_t up_off, slot_b, dslot_b, spp, npools;
    qn_buf *pool[8], *dpool[8], *table;
};

static void record_pair(struct qn_h *h, const struct experts *X, const qn_pipe *gu, const qn_pipe *dn,
                        const qn_pc_moe *pc, qn_buf *x, struct qn_bind ids, qn_buf *act, qn_buf *w, qn_buf *sg,
                        qn_buf *ds, qn_buf *y, qn_buf *ain, bool marks)
{
    qn_cmd *cmd = h->cmd;
    uint32_t gr = qn_pipe_spec(gu, 3), dr = qn_pipe_spec(dn, 3);
    qn_pc_moe pd = *pc;
    pd.slot_bytes = X->dslot_b;
    if (marks) qn_cmd_mark(cmd, "gate_up");
    qn_cmd_dispatch_nz(cmd, gu, QN_BINDS(QN_BIND(x), ids, QN_BIND(X->table), QN_BIND(act), QN_BIND(X->pool[0]),
                                         QN_BIND(X->pool[1]), QN_BIND(X->pool[2]), QN_BIND(X->pool[3]),
                                         QN_BIND(X->pool[4]), QN_BIND(X->pool[5]), QN_BIND(X->pool[6]),
                                         QN_BIND(X->pool[7])),
                       pc, sizeof *pc, (uint64_t)pc->K * ((pc->I + gr - 1) / gr), pc->T);
    if (marks) qn_cmd_mark(cmd, "down");
    qn_cmd_dispatch_nz(cmd, dn, QN_BINDS(QN_BIND(ain), ids, QN_BIND(X->table), QN_BIND(w), QN_BIND(sg), QN_BIND(ds),
                                         QN_BIND(y), QN_BIND(X->dpool[0]), QN_BIND(X->dpool[1]), QN_BIND(X->dpool[2]),
                                         QN_BIND(X->dpool[3]), QN_BIND(X->dpool[4]), QN_BIND(X->dpool[5]),
                                         QN_BIND(X->dpool[6]), QN_BIND(X->dpool[7])),
                       &pd, sizeof pd, (pc->H + dr - 1) / dr, pc->T);
}

static qn_pipe *pipe_of(struct qn_h *h, enum qn_kernel k, const struct qlayout *l, uint32_t up_off)
{
    const struct qn_kernel_info *ki = &qn_kernel_infos[k];
    uint32_t v[7] = { l->wg, up_off, 0, l->rows, l->sgrows, l->unroll, l->xsh };
    for (uint32_t i = 0; i < 7; i++)
        if (i != 1 && i != 2 && !v[i] && !(i == 6 && l->wg)) v[i] = ki->spec_default[i];
    return qn_h_pipe_spec(h, k, v, 7);
}

static void run_case(struct qn_h *h, struct mcase c)
{
    uint32_t T = c.T, H = c.H, I = c.I, E = c.E, K = c.K, Is = c.Is, tgu = qtypes[c.fgu], tdn = qtypes[c.fdn];
    struct qn_h_qexp Q;
    qn_h_qexp_make(h, tgu, tdn, H, I, E, c.absent, &Q);
    struct experts X = { .up_off = Q.up_off, .slot_b = Q.slot_b, .dslot_b = Q.dslot_b, .spp = Q.spp, .npools = Q.npools };
    uint8_t *pools = Q.pools, *dpools = Q.dpools;
    int32_t *table = Q.table;
    float *dg = Q.dg, *du = Q.du, *dd = Q.dd;
    for (uint32_t p = 0; p < 8; p++) {
        X.pool[p] = p < X.npools ? qn_h_upload(h, "pool", pools + (size_t)p * X.spp * X.slot_b, (size_t)X.spp * X.slot_b)
                                 : X.pool[0];
        X.dpool[p] = p < X.npools ? qn_h_upload(h, "dpool", dpools + (size_t)p * X.spp * X.dslot_b,
                                                (size_t)X.spp * X.dslot_b) : X.dpool[0];
    }
    X.table = qn_h_upload(h, "table", table, (size_t)2 * E * 4);
    int32_t *ids = qn_h_alloc_bytes(h, (size_t)T * K * 4);
    qn_h_random_ids(h, ids, T, K, E, K);
    uint32_t as = (I > Is ? I : Is + 3) / 4 * 4 + 4; /* act stride > max(I, Is), a multiple of 4 */
    float *x_h, *a_h, *ds_h, *w_h, *sg_h, *y0;
    qn_buf *x = qn_h_input_f32(h, "x", (size_t)T * H, -1, 1, &x_h);
    qn_buf *ain = qn_h_input_f32(h, "act in", (size_t)T * (K + 1) * as, -1, 1, &a_h);
    qn_buf *ds = qn_h_input_f32(h, "down_s", (size_t)H * Is, -0.1f, 0.1f, &ds_h);
    qn_buf *w = qn_h_input_f32(h, "w", (size_t)T * K, 0, 0.5f, &w_h), *sg = qn_h_input_f32(h, "sg", T, 0, 1, &sg_h);
    qn_buf *y = qn_h_input_f32(h, "y", (size_t)T * H, -1, 1, &y0);
    qn_buf *idb = qn_h_upload(h, "ids", ids, (size_t)T * K * 4), *act = qn_h_output(h, "act", (size_t)T * (K + 1) * as);
    qn_pc_moe pc = { .T = T, .H = H, .I = I, .Is = Is, .E = E, .K = K, .layer = 1, .n_slots = E + 1,
                     .slots_per_pool = X.spp, .slot_bytes = X.slot_b, .act_stride = as };
    const struct qlayout *l = &layouts[c.layout];
    qn_pipe *gu = pipe_of(h, k_gu[c.fgu], l, X.up_off), *dn = pipe_of(h, k_dn[c.fdn], l, 0);
    qn_h_ok(h, qn_cmd_begin(h->cmd), "begin");
    record_pair(h, &X, gu, dn, &pc, x, QN_BIND(idb), act, w, sg, ds, y, ain, false);
    qn_h_ok(h, qn_cmd_end(h->cmd), "end");
    qn_h_ok(h, qn_cmd_run(h->cmd), "run");
    /* reference */
    size_t na = (size_t)T * (K + 1) * as, ny = (size_t)T * H;
    float *ra = qn_h_alloc(h, na), *ry = qn_h_alloc(h, ny);
    double *sa = qn_h_alloc_bytes(h, na * sizeof(double)), *sy = qn_h_alloc_bytes(h, ny * sizeof(double));
    uint8_t *nan_a = qn_h_alloc_bytes(h, na), *nan_y = qn_h_alloc_bytes(h, ny);
    memset(nan_a, 0, na);
    memset(nan_y, 0, ny);
    for (size_t i = 0; i < na; i++) ra[i] = NAN;
    for (uint32_t t = 0; t < T; t++) {
        bool tok_absent = false;
        for (uint32_t k = 0; k < K; k++) tok_absent |= ids[t * K + k] == c.absent;
        for (uint32_t hh = 0; hh < H; hh++) {
            double s, acc = 0, st = 0;
            for (uint32_t k = 0; k < K; k++) {
                double v = dot_s(dd + ((size_t)ids[t * K + k] * H + hh) * I, a_h + ((size_t)t * (K + 1) + k) * as, I, &s);
                acc += w_h[t * K + k] * v, st += fabs(w_h[t * K + k]) * s;
            }
            acc += sg_h[t] * dot_s(ds_h + (size_t)hh * Is, a_h + ((size_t)t * (K + 1) + K) * as, Is, &s);
            st += fabs(sg_h[t]) * s;
            ry[t * H + hh] = (float)(y0[t * H + hh] + acc), sy[t * H + hh] = st + fabs(y0[t * H + hh]);
            nan_y[t * H + hh] = tok_absent;
        }
        for (uint32_t k = 0; k < K; k++) {
            size_t q = ((size_t)t * (K + 1) + k) * as;
            int e = ids[t * K + k];
            for (uint32_t i = 0; i < I; i++) {
                double s1, s2;
                double g = dot_s(dg + ((size_t)e * I + i) * H, x_h + (size_t)t * H, H, &s1);
                double u = dot_s(du + ((size_t)e * I + i) * H, x_h + (size_t)t * H, H, &s2);
                ra[q + i] = qn_ref_silu((float)g) * (float)u;
                sa[q + i] = s1 * fabs(u) + s2 * fabs(qn_ref_silu((float)g)) + fabs(ra[q + i]);
                nan_a[q + i] = e == c.absent;
            }
        }
    }
    char what[220], w2[260];
    snprintf(what, sizeof what, "%s gate/up (%s), %s down: T %u H %u I %u Is %u E %u K %u layout %u%s",
             qn_ggml_type_name(tgu), qn_pipe_info(gu)->name, qn_ggml_type_name(tdn), T, H, I, Is, E, K, c.layout,
             c.absent >= 0 ? " absent expert" : "");
    snprintf(w2, sizeof w2, "gate_up %s", what);
    check(h, w2, qn_h_read(h, act, na), ra, sa, na, nan_a);
    snprintf(w2, sizeof w2, "down %s", what);
    check(h, w2, qn_h_read(h, y, ny), ry, sy, ny, nan_y);
    qn_h_reset(h);
}

/* ---- --bench -------------------------------------------------------------------------------------- */

#define BENCH_ROUTINGS 16u

static void bench(struct qn_h *h, uint32_t fgu, uint32_t fdn, uint32_t T, const struct qlayout *l, int iters)
{
    const uint32_t H = 2048, I = 512, Is = 512, K = 10;
    uint32_t tgu = qtypes[fgu], tdn = qtypes[fdn];
    uint64_t rgu, rdn;
    qn_h_ok(h, qn_ggml_row_bytes(tgu, H, &rgu), "row bytes");
    qn_h_ok(h, qn_ggml_row_bytes(tdn, I, &rdn), "row bytes");
    struct experts X = { .up_off = (uint32_t)al16(rgu * I) };
    X.slot_b = (uint32_t)al16(X.up_off + rgu * I), X.dslot_b = (uint32_t)al16(rdn * H);
    /* up to 512 experts in at most 8 pools that each fit one binding */
    uint64_t fit = (qn_vk_caps(h->v)->max_storage_range - 16) / X.slot_b;
    X.spp = fit < 171 ? (uint32_t)fit : 171, X.npools = X.spp * 8 < 512 ? 8 : (512 + X.spp - 1) / X.spp;
    uint32_t E = X.spp * X.npools < 512 ? X.spp * X.npools : 512;
    uint8_t *one = qn_h_alloc_bytes(h, X.slot_b), *done = qn_h_alloc_bytes(h, X.dslot_b);
    qn_h_quant_matrix(h, tgu, I, H, one, NULL);
    qn_h_quant_matrix(h, tgu, I, H, one + X.up_off, NULL);
    qn_h_quant_matrix(h, tdn, H, I, done, NULL);
    uint8_t *pool = malloc((size_t)X.spp * X.slot_b), *dpool = malloc((size_t)X.spp * X.dslot_b);
    if (!pool || !dpool) qn_h_ok(h, qn_fail(-ENOMEM, "bench pools"), "bench");
    for (uint32_t s = 0; s < X.spp; s++) {
        memcpy(pool + (size_t)s * X.slot_b, one, X.slot_b);
        memcpy(dpool + (size_t)s * X.dslot_b, done, X.dslot_b);
    }
    for (uint32_t p = 0; p < 8; p++) {
        X.pool[p] = p < X.npools ? qn_h_upload(h, "pool", pool, (size_t)X.spp * X.slot_b) : X.pool[0];
        X.dpool[p] = p < X.npools ? qn_h_upload(h, "dpool", dpool, (size_t)X.spp * X.dslot_b) : X.dpool[0];
    }
    free(pool), free(dpool);
    int32_t *table = qn_h_alloc_bytes(h, (size_t)E * 4);
    for (uint32_t e = 0; e < E; e++) table[e] = (int32_t)e;
    X.table = qn_h_upload(h, "table", table, (size_t)E * 4);
    /* BENCH_ROUTINGS token batches, each T tokens' ids at a 256-byte aligned offset */
    const uint32_t idst = 64; /* int32 per batch */
    int32_t *ids = qn_h_alloc_bytes(h, (size_t)BENCH_ROUTINGS * idst * 4);
    for (uint32_t r = 0; r < BENCH_ROUTINGS; r++) qn_h_random_ids(h, ids + r * idst, 1, T * K, E, T * K);
    qn_buf *idb = qn_h_upload(h, "ids", ids, (size_t)BENCH_ROUTINGS * idst * 4);
    uint32_t as = 512;
    qn_buf *x = qn_h_input_f32(h, "x", (size_t)T * H, -1, 1, NULL), *ds = qn_h_input_f32(h, "down_s", (size_t)H * Is, -0.1f, 0.1f, NULL);
    qn_buf *ain = qn_h_input_f32(h, "act in", (size_t)T * (K + 1) * as, -1, 1, NULL);
    qn_buf *w = qn_h_input_f32(h, "w", (size_t)T * K, 0, 0.5f, NULL), *sg = qn_h_input_f32(h, "sg", T, 0, 1, NULL);
    qn_buf *y = qn_h_input_f32(h, "y", (size_t)T * H, -1, 1, NULL), *act = qn_h_output(h, "act", (size_t)T * (K + 1) * as);
    qn_pc_moe pc = { .T = T, .H = H, .I = I, .Is = Is, .E = E, .K = K, .layer = 0, .n_slots = E,
                     .slots_per_pool = X.spp, .slot_bytes = X.slot_b, .act_stride = as };
    qn_pipe *gu = pipe_of(h, k_gu[fgu], l, X.up_off), *dn = pipe_of(h, k_dn[fdn], l, 0);
    qn_h_ok(h, qn_cmd_begin(h->cmd), "begin");
    for (uint32_t r = 0; r < BENCH_ROUTINGS; r++) {
        if (r) qn_cmd_barrier(h->cmd);
        record_pair(h, &X, gu, dn, &pc, x, QN_BIND_RANGE(idb, (uint64_t)r * idst * 4, (uint64_t)T * K * 4), act, w, sg,
                    ds, y, ain, true);
    }
    qn_h_ok(h, qn_cmd_end(h->cmd), "end");
    double best[2] = { 1e30, 1e30 };
    for (int it = 0; it <= iters; it++) {
        qn_h_ok(h, qn_cmd_run(h->cmd), "bench run");
        double sum[2] = { 0, 0 };
        for (uint32_t i = 0; i < qn_cmd_nregions(h->cmd); i++) sum[i % 2] += qn_cmd_region(h->cmd, i, NULL);
        for (int k = 0; it && k < 2; k++) best[k] = fmin(best[k], sum[k] / BENCH_ROUTINGS);
    }
    double mb_gu = (double)T * K * 2 * I * rgu / 1e6, mb_dn = (double)T * K * H * rdn / 1e6 + (double)H * Is * 4 / 1e6;
    printf("bench moe_q T=%u %s gate/up + %s down, H %u I %u K %u E %u, wg %u/%u rows %u/%u sgrows %u/%u unroll %u/%u xsh %u/%u"
           " (min of %d, %u routings in turn):\n", T, qn_ggml_type_name(tgu), qn_ggml_type_name(tdn), H, I, K, E,
           qn_pipe_spec(gu, 0), qn_pipe_spec(dn, 0), qn_pipe_spec(gu, 3), qn_pipe_spec(dn, 3), qn_pipe_spec(gu, 4), qn_pipe_spec(dn, 4),
           qn_pipe_spec(gu, 5), qn_pipe_spec(dn, 5), qn_pipe_spec(gu, 6), qn_pipe_spec(dn, 6), iters, BENCH_ROUTINGS);
    printf("  gate_up %8.1f us  %6.2f MB  %7.1f GB/s\n", best[0] * 1e3, mb_gu, mb_gu / best[0]);
    printf("  down    %8.1f us  %6.2f MB  %7.1f GB/s (incl. the f32 shared down_s, %.2f MB)\n", best[1] * 1e3, mb_dn,
           mb_dn / best[1], (double)H * Is * 4 / 1e6);
    qn_h_reset(h);
}

int main(int argc, char **argv)
{
    bool do_bench = false, small = false; /* --small: fewer cases (the meson variants but the first) */
    for (int i = 1; i < argc; i++) do_bench |= !strcmp(argv[i], "--bench"), small |= !strcmp(argv[i], "--small");
    struct qn_h h;
    qn_h_open(&h, "moe_q", argc, argv);
    if (do_bench) {
        static const struct qlayout bl[] = {
            { 0, 0, 0, 0, 0 }, { 256, 8, 2, 2, 512 }, { 256, 32, 4, 2, 512 }, { 128, 16, 2, 4, 0 },
            { 128, 16, 2, 2, 1280 }, { 256, 16, 1, 5, 0 }, { 64, 8, 2, 5, 512 }, { 256, 64, 4, 4, 0 },
        };
        for (uint32_t T = 1; T <= 2; T++)
            for (size_t i = 0; i < sizeof bl / sizeof bl[0]; i++) {
                bench(&h, 2, 4, T, &bl[i], 20); /* Q4_K_M: Q4_K gate/up, Q6_K down */
                if (T == 1) bench(&h, 0, 0, T, &bl[i], 20); /* Q8_0 */
            }
        return qn_h_close(&h);
    }
    /* every format with the default layout and a mixed pair with an absent expert; the other layouts (each
     * one more pipeline to compile: slow on lavapipe) on a 32-element and a 256-element format */
    for (uint32_t f = 0; f < NFMTS; f++) {
        if (small && f != 1 && f != 4) continue; /* --small: Q4_0 and Q6_K only */
        uint32_t qk = qn_ggml_type(qtypes[f])->blck, HH = qk == 32 ? 96 : 256, II = qk == 32 ? 64 : 256;
        for (uint32_t l = 0; l < NLAYOUTS; l++)
            if (l == 0 || f == 1 || f == 4)
                run_case(&h, (struct mcase){ .fgu = f, .fdn = f, .T = l == 2 ? 3 : 1, .H = HH, .I = II, .Is = 40,
                                             .E = 12, .K = 3, .layout = l, .absent = -1 });
        run_case(&h, (struct mcase){ .fgu = f, .fdn = (f + 2) % NFMTS, .T = 2, .H = 256, .I = 256, .Is = 37, .E = 5,
                                     .K = 4, .layout = 0, .absent = 2 });
    }
    /* the Q4_K_M mix at the real row lengths, T = 2 */
    if (!small)
        run_case(&h, (struct mcase){ .fgu = 2, .fdn = 4, .T = 2, .H = 2048, .I = 512, .Is = 512, .E = 10, .K = 10,
                                 .layout = 0, .absent = -1 });
    printf("moe_q: worst max err / S = %.3g (bound 5e-7)\n", worst);
    return qn_h_close(&h);
}
