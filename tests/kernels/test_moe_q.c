/* test_moe_q.c — decode MoE over GGUF block experts (moe_q.comp: moe_q_gu_* / moe_q_dn_*, and the down split over
 * the experts moe_q_dnx_*) against a double-precision C reference on the dequantized weights
 * (loader/quant.h), and (--bench) their speed on model-like memory.
 *
 * Each case: T tokens (in z) with K distinct random experts each, E experts in slots of 3 pools (random
 * placement through the slot table; gate | up in `pools`, down in `dpools`, as model_gguf.c lays them out),
 *   gate_up: act[t, k, i] = silu(gate_e[i] · x_t) * (up_e[i] · x_t)
 *   down:    y[t, h] = y0[t, h] + sum_k w[t, k] (down_e[h] · act[t, k]) + sg[t] (down_s[h] · act[t, K])
 * where down reads a random act (independent of gate_up) and down_s is f32, or (QN_MOE_SHARED_Q) GGUF blocks of
 * the down type. Formats: every one of Q8_0, Q4_0, Q4_K, Q5_K, Q6_K for both parts, mixed pairs, the Q4_K_M mix
 * (Q4_K gate/up, Q6_K down) at the real 80B row lengths (H 2048, I 512, K 10), several layouts (spec constants:
 * staged / unstaged x, rows per subgroup, units or experts in flight, a workgroup smaller than a subgroup, gate_up
 * without the weight prefetch (QN_PRE 0), down with the experts split over the lanes (QN_KSPLIT)), and an absent
 * expert (table -1), whose outputs must be NaN. The split down (QN_DN_XSPLIT: one workgroup per row block and
 * expert, the last of a row block sums the partials) in the same layouts; its counters must be back at 0 after.
 *
 * Tolerance: each output is an f32 sum over units in a fixed order; the quant offsets and mins go through
 * sums of x (quant.glsl), so the error scale is S = sum |w x| + sum |x| * (block range) per dot product
 * (as test_qmatvec.c; for act: S_gate |u| + S_up |silu(g)|; for y: sum_k |w_k| S_k + |sg| S_s). Bound
 * 1e-6 + 5e-7 * S; the measured worst |err| / S is printed at the end.
 *
 * --bench [--quick] [--sweep] [--layers N] [--tokens N] [--reps N] [--experts N]: decode T = 1 at the 80B Q4_K_M shapes on
 * memory laid out as the model lays it out: all E = 512 experts of N layers (default 48: the full model, 50 GB in
 * 7 + 5 pools of <= 4 GiB; 1000x the H100's L2, and as many pages as the model for the TLBs), slot l E + e for
 * expert e of layer l, Q6_K / Q4_K down by the Q4_K_M rule, each of N tokens (default 4) visiting the layers in
 * turn with its own random top-10 per layer, gate_up -> barrier -> down (+ the shared expert's down, GGUF blocks
 * or f32) -> barrier as forward.c records them.
 * Prints µs per layer and GB/s of expert bytes read for the int8 pairs (where the device has the packed dot; --quick:
 * only those), the default layout and, with --sweep, ranked lists over
 * the QNEXT_MOEQ_LAYOUT space (gate_up and down separately).
 * Run on a GPU, not on lavapipe.
 * --small: Q4_0 and Q6_K cases only, without the real-shape ones (the meson variants other than the first). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_pools.h"
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
static const enum qn_kernel k_dnx[NFMTS] = { QN_K_MOE_Q_DNX_Q8_0, QN_K_MOE_Q_DNX_Q4_0, QN_K_MOE_Q_DNX_Q4_K,
                                             QN_K_MOE_Q_DNX_Q5_K, QN_K_MOE_Q_DNX_Q6_K };
static const enum qn_kernel k_gui8[NFMTS] = { QN_K_MOE_Q_GU_I8_Q8_0, QN_K_MOE_Q_GU_I8_Q4_0, QN_K_MOE_Q_GU_I8_Q4_K,
                                              QN_K_MOE_Q_GU_I8_Q5_K, QN_K_MOE_Q_GU_I8_Q6_K };

/* spec constants 0 and 3..6 of both kernels: wg, rows, sgrows, unroll, xsh (0 = the kernel's default), and 7:
 * gate_up's QN_PRE = !nopre, down's QN_KSPLIT = ksplit; xsplit: the down split over the experts (moe_q_dnx_*,
 * which reads wg, rows, sgrows, unroll, and xsh as its spec 7 QN_WIMAX: weight rows staged for I <= xsh, and
 * the act row with them: spec 6 = xsh / 4); i8 (gate_up): the int8-x twin moe_q_gu_i8_*, x stage xsh or H / 4 */
struct qlayout { uint32_t wg, rows, sgrows, unroll, xsh, nopre, ksplit, xsplit, i8; };
static const struct qlayout layouts[] = {
    { 0, 0, 0, 0, 0, 0, 0, 0, 0 },     /* the defaults (the model's decode layout) */
    { 64, 4, 1, 1, 1024, 0, 0, 0, 0 }, /* small groups, one row per team / lane, everything staged */
    { 128, 7, 3, 3, 0, 1, 0, 0, 0 },   /* odd rows, 3 rows per set, nothing staged, no weight prefetch */
    { 2, 3, 2, 2, 64, 0, 0, 0, 0 },    /* a workgroup smaller than a subgroup (the team is the workgroup) */
    { 64, 5, 1, 2, 1024, 0, 1, 0, 0 }, /* down: experts split over the lanes (QN_KSPLIT), rows past the teams, staged */
    { 128, 16, 2, 1, 512, 0, 0, 0, 0 },/* (split down only) its defaults with the weight rows staged (QN_WIMAX 512) */
    { 256, 64, 2, 1, 0, 0, 0, 0, 0 }, /* (split down only) the model's on 32-wide subgroups: two sets per team */
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

static double worst;

struct mcase {
    uint32_t fgu, fdn, T, H, I, Is, E, K, layout;
    int absent;                 /* expert whose slot is -1 (or -1 for none) */
    bool shq;                   /* down_s in blocks of the down type (QN_MOE_SHARED_Q; Is a multiple of its block) */
    bool xsplit;                /* the down split over the experts (moe_q_dnx_*) in the case's layout */
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
 * pool 0 again; xs: the split down's partials and counters (zeroed) */
struct experts {
    uint32_t up_off, slot_b, dslot_b, spp, npools;
    qn_buf *pool[8], *dpool[8], *table, *xs;
};

/* a decode kernel pair and the rows each of its workgroups computes (the dispatch geometry); x: dn is split over
 * the experts (K + 1 groups per row block, binding 15 the scratch) */
struct kpair { qn_pipe *gu, *dn; uint32_t gr, dr; bool x; };

/* the split down's scratch for T tokens: the decode chain's words, f32 partials [T, K + 1, H], then a counter per
 * (token, row block), zeroed */
static size_t xs_words(uint32_t T, uint32_t K, uint32_t H)
{
    return QN_MOE_CHAIN_WORDS + (size_t)T * (K + 1) * H + (size_t)T * H;
}
static qn_buf *xs_scratch(struct qn_h *h, uint32_t T, uint32_t K, uint32_t H)
{
    size_t n = xs_words(T, K, H);
    void *z = qn_h_alloc_bytes(h, n * 4);
    memset(z, 0, n * 4);
    return qn_h_upload(h, "split down scratch", z, n * 4);
}

/* the down dispatch of kp (the layer's pools X, push pd) */
static void record_down(qn_cmd *cmd, const struct experts *X, const struct kpair *kp, const qn_pc_moe *pd,
                        struct qn_bind ids, qn_buf *w, qn_buf *sg, qn_buf *ds, qn_buf *y, qn_buf *ain)
{
    uint64_t nb = (pd->H + kp->dr - 1) / kp->dr;
    const struct qn_bind b[16] = { QN_BIND(ain), ids, QN_BIND(X->table), QN_BIND(w), QN_BIND(sg), QN_BIND(ds), QN_BIND(y),
                                   QN_BIND(X->dpool[0]), QN_BIND(X->dpool[1]), QN_BIND(X->dpool[2]), QN_BIND(X->dpool[3]),
                                   QN_BIND(X->dpool[4]), QN_BIND(X->dpool[5]), QN_BIND(X->dpool[6]), QN_BIND(X->dpool[7]),
                                   QN_BIND(X->xs) };
    qn_cmd_dispatch_nz(cmd, kp->dn, b, kp->x ? 16 : 15, pd, sizeof *pd, kp->x ? nb * (pd->K + 1) : nb, pd->T);
}

static void record_pair(struct qn_h *h, const struct experts *X, const struct kpair *kp, const qn_pc_moe *pc,
                        qn_buf *x, struct qn_bind ids, qn_buf *act, qn_buf *w, qn_buf *sg, qn_buf *ds, qn_buf *y,
                        qn_buf *ain, uint32_t dflags, bool marks)
{
    qn_cmd *cmd = h->cmd;
    qn_pc_moe pd = *pc;
    pd.slot_bytes = X->dslot_b;
    pd.flags = dflags;
    if (marks) qn_cmd_mark(cmd, "gate_up");
    qn_cmd_dispatch_nz(cmd, kp->gu, QN_BINDS(QN_BIND(x), ids, QN_BIND(X->table), QN_BIND(act), QN_BIND(X->pool[0]),
                                             QN_BIND(X->pool[1]), QN_BIND(X->pool[2]), QN_BIND(X->pool[3]),
                                             QN_BIND(X->pool[4]), QN_BIND(X->pool[5]), QN_BIND(X->pool[6]),
                                             QN_BIND(X->pool[7]), QN_BIND(X->xs)),
                       pc, sizeof *pc, (uint64_t)pc->K * ((pc->I + kp->gr - 1) / kp->gr), pc->T);
    if (marks) qn_cmd_mark(cmd, "down");
    record_down(cmd, X, kp, &pd, ids, w, sg, ds, y, ain);
}

static qn_pipe *pipe_of(struct qn_h *h, enum qn_kernel k, const struct qlayout *l, uint32_t up_off)
{
    const struct qn_kernel_info *ki = &qn_kernel_infos[k];
    bool gu = !strncmp(ki->name, "moe_q_gu", 8);
    bool dnx = !strncmp(ki->name, "moe_q_dnx", 9), i8 = strstr(ki->name, "_i8_") != NULL;
    uint32_t v[8] = { l->wg, up_off, 0, l->rows, l->sgrows, l->unroll, dnx ? l->xsh / 4 : l->xsh,
                      gu ? !l->nopre : dnx ? l->xsh : l->ksplit };
    for (uint32_t i = 0; i < 7; i++)
        if (i != 1 && i != 2 && !v[i] && !(i == 6 && l->wg && !i8)) v[i] = ki->spec_default[i]; /* i8: always staged */
    return qn_h_pipe_spec(h, k, v, 8);
}

/* moe_q.comp's pair in layouts lg (gate|up, format index fgu) and ld (down, fdn; ld->xsplit: split over the experts) */
static struct kpair pair_new(struct qn_h *h, uint32_t fgu, uint32_t fdn, const struct qlayout *lg,
                             const struct qlayout *ld, uint32_t up_off)
{
    struct kpair kp = { pipe_of(h, (lg->i8 ? k_gui8 : k_gu)[fgu], lg, up_off),
                        pipe_of(h, (ld->xsplit ? k_dnx : k_dn)[fdn], ld, 0), 0, 0, ld->xsplit != 0 };
    kp.gr = qn_pipe_spec(kp.gu, 3), kp.dr = qn_pipe_spec(kp.dn, 3);
    return kp;
}

/* Q's pools and table on the device (E experts), with a split-down scratch for T tokens of K experts over H rows */
static struct experts experts_upload(struct qn_h *h, const struct qn_h_qexp *Q, uint32_t E, uint32_t T, uint32_t K,
                                     uint32_t H)
{
    struct experts X = { .up_off = Q->up_off, .slot_b = Q->slot_b, .dslot_b = Q->dslot_b, .spp = Q->spp, .npools = Q->npools };
    for (uint32_t p = 0; p < 8; p++) {
        X.pool[p] = p < X.npools ? qn_h_upload(h, "pool", Q->pools + (size_t)p * X.spp * X.slot_b, (size_t)X.spp * X.slot_b)
                                 : X.pool[0];
        X.dpool[p] = p < X.npools ? qn_h_upload(h, "dpool", Q->dpools + (size_t)p * X.spp * X.dslot_b,
                                                (size_t)X.spp * X.dslot_b) : X.dpool[0];
    }
    X.table = qn_h_upload(h, "table", Q->table, (size_t)2 * E * 4);
    X.xs = xs_scratch(h, T, K, H);
    return X;
}

/* down_s for the down type tdn: GGUF blocks (shq; *dh its dequantized values) or f32 */
static qn_buf *shared_down(struct qn_h *h, bool shq, uint32_t tdn, uint32_t H, uint32_t Is, float **dh)
{
    if (!shq) return qn_h_input_f32(h, "down_s", (size_t)H * Is, -0.1f, 0.1f, dh);
    uint64_t rbs;
    qn_h_ok(h, qn_ggml_row_bytes(tdn, Is, &rbs), "shared row bytes");
    uint8_t *q = qn_h_alloc_bytes(h, (size_t)(H * rbs + 4));
    memset(q, 0, (size_t)(H * rbs + 4));
    *dh = qn_h_alloc(h, (size_t)H * Is);
    qn_h_quant_matrix(h, tdn, H, Is, q, *dh);
    return qn_h_upload(h, "down_s blocks", q, (size_t)((H * rbs + 3) / 4 * 4));
}

static void run_case(struct qn_h *h, struct mcase c)
{
    uint32_t T = c.T, H = c.H, I = c.I, E = c.E, K = c.K, Is = c.Is, tgu = qtypes[c.fgu], tdn = qtypes[c.fdn];
    struct qn_h_qexp Q;
    qn_h_qexp_make(h, tgu, tdn, H, I, E, c.absent, &Q);
    struct experts X = experts_upload(h, &Q, E, T, K, H);
    float *dg = Q.dg, *du = Q.du, *dd = Q.dd;
    int32_t *ids = qn_h_alloc_bytes(h, (size_t)T * K * 4);
    qn_h_random_ids(h, ids, T, K, E, K);
    uint32_t as = (I > Is ? I : Is + 3) / 4 * 4 + 4; /* act stride > max(I, Is), a multiple of 4 */
    float *x_h, *a_h, *ds_h, *w_h, *sg_h, *y0;
    qn_buf *x = qn_h_input_f32(h, "x", (size_t)T * H, -1, 1, &x_h);
    qn_buf *ain = qn_h_input_f32(h, "act in", (size_t)T * (K + 1) * as, -1, 1, &a_h);
    qn_buf *ds = shared_down(h, c.shq, tdn, H, Is, &ds_h); /* blocks: the reference uses their dequantized values */
    qn_buf *w = qn_h_input_f32(h, "w", (size_t)T * K, 0, 0.5f, &w_h), *sg = qn_h_input_f32(h, "sg", T, 0, 1, &sg_h);
    qn_buf *y = qn_h_input_f32(h, "y", (size_t)T * H, -1, 1, &y0);
    qn_buf *idb = qn_h_upload(h, "ids", ids, (size_t)T * K * 4), *act = qn_h_output(h, "act", (size_t)T * (K + 1) * as);
    qn_pc_moe pc = { .T = T, .H = H, .I = I, .Is = Is, .E = E, .K = K, .layer = 1, .n_slots = E + 1,
                     .slots_per_pool = X.spp, .slot_bytes = X.slot_b, .act_stride = as };
    struct qlayout l = layouts[c.layout], ld = l;
    ld.xsplit = c.xsplit;
    const float *ar = a_h;
    struct kpair kp = pair_new(h, c.fgu, c.fdn, &l, &ld, X.up_off);
    qn_h_ok(h, qn_cmd_begin(h->cmd), "begin");
    record_pair(h, &X, &kp, &pc, x, QN_BIND(idb), act, w, sg, ds, y, ain, c.shq ? QN_MOE_SHARED_Q : 0, false);
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
                double v = dot_s(dd + ((size_t)ids[t * K + k] * H + hh) * I, ar + ((size_t)t * (K + 1) + k) * as, I, &s);
                acc += w_h[t * K + k] * v, st += fabs(w_h[t * K + k]) * s;
            }
            acc += sg_h[t] * dot_s(ds_h + (size_t)hh * Is, ar + ((size_t)t * (K + 1) + K) * as, Is, &s);
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
    char what[300], w2[340];
    snprintf(what, sizeof what, "%s gate/up (%s), %s down (%s): T %u H %u I %u Is %u%s E %u K %u layout %u%s",
             qn_ggml_type_name(tgu), qn_pipe_info(kp.gu)->name, qn_ggml_type_name(tdn), qn_pipe_info(kp.dn)->name, T, H,
             I, Is, c.shq ? " (blocks)" : "", E, K, c.layout, c.absent >= 0 ? " absent expert" : "");
    snprintf(w2, sizeof w2, "gate_up %s", what);
    check(h, w2, qn_h_read(h, act, na), ra, sa, na, nan_a);
    snprintf(w2, sizeof w2, "down %s", what);
    check(h, w2, qn_h_read(h, y, ny), ry, sy, ny, nan_y);
    if (c.xsplit) { /* every row block's counter back at 0 for the next call */
        size_t nx = xs_words(T, K, H);
        const uint32_t *cnt = (const uint32_t *)qn_h_read(h, X.xs, nx);
        uint32_t left = 0;
        for (size_t i = nx - (size_t)T * H; i < nx; i++) left += cnt[i] != 0;
        h->checks++;
        if (left) h->failures++;
        printf("%-4s split down counters all 0 after the run (%u not)\n", left ? "FAIL" : "ok", left);
    }
    qn_h_reset(h);
}

/* ---- the decode chain (common/moe_chain.glsl): gate_up -> split down with no barrier ------------------------ */

/* A decode step's expert pair (T = 1, the split down reading the gate_up's act) recorded three ways: with a barrier
 * (flags off), as a chain link from a route's mark (the scratch's word 0 set to 1 as route_mixed leaves it; gate_up
 * QN_MOE_CHAIN_IN | OUT, down QN_MOE_CHAIN_IN), and as a link without the route's mark (gate_up OUT only). The
 * outputs must be the same bit for bit and every chain word back at 0 (the next step's waits start from 0). A GPU
 * that runs the dispatches at once exercises the waits; one that runs them one after another (lavapipe) the counts
 * and resets. */
static void chain_case(struct qn_h *h, uint32_t fgu, uint32_t fdn, bool i8, uint32_t H, uint32_t I, uint32_t Is,
                       uint32_t E, uint32_t K)
{
    struct qn_h_qexp Q;
    qn_h_qexp_make(h, qtypes[fgu], qtypes[fdn], H, I, E, -1, &Q);
    struct experts X = experts_upload(h, &Q, E, 1, K, H);
    int32_t *ids = qn_h_alloc_bytes(h, (size_t)K * 4);
    qn_h_random_ids(h, ids, 1, K, E, K);
    uint32_t as = (I > Is ? I : Is) / 4 * 4 + 4;
    float *x_h, *ds_h, *w_h, *sg_h, *y0, *a0;
    qn_buf *x = qn_h_input_f32(h, "x", H, -1, 1, &x_h), *ds = shared_down(h, true, qtypes[fdn], H, Is, &ds_h);
    qn_buf *w = qn_h_input_f32(h, "w", K, 0, 0.5f, &w_h), *sg = qn_h_input_f32(h, "sg", 1, 0, 1, &sg_h);
    y0 = qn_h_alloc(h, H), a0 = qn_h_alloc(h, (size_t)(K + 1) * as); /* y and act (row K: the shared expert's) */
    for (uint32_t i = 0; i < H; i++) y0[i] = (float)((i * 37u) % 101u) / 50.0f - 1.0f;
    for (uint32_t i = 0; i < (K + 1) * as; i++) a0[i] = (float)((i * 53u) % 97u) / 48.0f - 1.0f;
    qn_buf *idb = qn_h_upload(h, "ids", ids, (size_t)K * 4);
    struct qlayout l = layouts[0], ld = l;
    l.i8 = i8, ld.xsplit = 1;
    struct kpair kp = pair_new(h, fgu, fdn, &l, &ld, X.up_off);
    qn_pc_moe pc = { .T = 1, .H = H, .I = I, .Is = Is, .E = E, .K = K, .layer = 1, .n_slots = E + 1,
                     .slots_per_pool = X.spp, .slot_bytes = X.slot_b, .act_stride = as };
    uint32_t ngu = K * ((I + kp.gr - 1) / kp.gr);
    float *got[3];
    size_t nx = xs_words(1, K, H);
    qn_vk_expect_chain_hazards(); /* sync validation's hazards at the links (device.c), counted apart */
    for (int mode = 0; mode < 3; mode++) {
        uint32_t *z = qn_h_alloc_bytes(h, nx * 4);
        memset(z, 0, nx * 4);
        z[0] = mode == 1; /* the route's mark */
        X.xs = qn_h_upload(h, "split down scratch", z, nx * 4);
        qn_buf *y = qn_h_upload(h, "y", y0, (size_t)H * 4), *act = qn_h_upload(h, "act", a0, (size_t)(K + 1) * as * 4);
        qn_pc_moe pg = pc, pd = pc;
        pg.flags = mode == 0 ? 0 : mode == 1 ? QN_MOE_CHAIN_IN | QN_MOE_CHAIN_OUT : QN_MOE_CHAIN_OUT;
        pd.slot_bytes = X.dslot_b, pd.flags = QN_MOE_SHARED_Q | (mode ? QN_MOE_CHAIN_IN : 0), pd.chain_n = ngu;
        qn_h_ok(h, qn_cmd_begin(h->cmd), "chain");
        qn_cmd_dispatch_nz(h->cmd, kp.gu, QN_BINDS(QN_BIND(x), QN_BIND(idb), QN_BIND(X.table), QN_BIND(act),
                                                   QN_BIND(X.pool[0]), QN_BIND(X.pool[1]), QN_BIND(X.pool[2]),
                                                   QN_BIND(X.pool[3]), QN_BIND(X.pool[4]), QN_BIND(X.pool[5]),
                                                   QN_BIND(X.pool[6]), QN_BIND(X.pool[7]), QN_BIND(X.xs)),
                           &pg, sizeof pg, ngu, 1);
        if (!mode) qn_cmd_barrier(h->cmd);
        record_down(h->cmd, &X, &kp, &pd, QN_BIND(idb), w, sg, ds, y, act);
        qn_h_ok(h, qn_cmd_end(h->cmd), "chain");
        qn_h_ok(h, qn_cmd_run(h->cmd), "chain");
        got[mode] = qn_h_read(h, y, H);
        const uint32_t *zw = (const uint32_t *)qn_h_read(h, X.xs, 3);
        uint32_t left = (zw[0] != 0) + (zw[1] != 0) + (zw[2] != 0), diff = 0;
        for (uint32_t i = 0; mode && i < H; i++) diff += memcmp(&got[mode][i], &got[0][i], 4) != 0;
        h->checks++;
        if (left || diff) h->failures++;
        printf("%-4s chain %s: %s gate/up (%s) -> %s down (%s), H %u I %u E %u K %u: %u of %u outputs differ from the "
               "barrier's, %u chain words not 0\n", left || diff ? "FAIL" : "ok",
               mode == 0 ? "off (barrier)" : mode == 1 ? "route mark -> gate_up -> down" : "gate_up -> down",
               qn_ggml_type_name(qtypes[fgu]), qn_pipe_info(kp.gu)->name, qn_ggml_type_name(qtypes[fdn]),
               qn_pipe_info(kp.dn)->name, H, I, E, K, diff, H, left);
    }
    printf("note chain: %u sync-validation hazards at the chain's links so far (expected: the waits are in memory)\n",
           qn_vk_chain_hazard_count());
    qn_h_reset(h);
}

/* ---- --bench: the model's decode MoE on model-like memory ---------------------------------------- */

#define BL_MAX 48u /* layers (the 80B's 48) */

struct bmodel {
    uint32_t L, NT, H, I, Is, K, E, idst, dspp, dnpools;
    uint32_t fdn[BL_MAX];                   /* down format index of layer l */
    struct experts X;                       /* the model's pools: slot l E + e = expert e of layer l */
    qn_buf *dsq[BL_MAX], *dsf[BL_MAX];      /* the shared expert's down per layer: blocks, f32 */
    qn_buf *x, *ids, *act, *w, *sg, *y;
    double mb_gu, mb_dn[BL_MAX], mb_dsq[BL_MAX], mb_dsf; /* MB read per layer visit */
};

struct bres { double gu, dn, all; };          /* µs per layer visit: timestamped kernels, and all without timestamps */

/* llama.cpp's use_more_bits(i, n): the Q4_K_M layers whose ffn_down (routed and shared) are Q6_K */
static bool more_bits(uint32_t i, uint32_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The 80B Q4_K_M's routed experts on the device as the model lays them out (model_gguf.c: gate|up slots in pools,
 * down slots of the largest down size in dpools, buffers of at most min(maxStorageBufferRange, 4 GiB - 1) bytes,
 * slot l E + e for expert e of layer l), the layers' down types by llama.cpp's Q4_K_M rule, the shared down per
 * layer, and NT random top-K routings per layer. Only the routed experts' slots get weights (copies of 4 quantized
 * experts per type); the others keep the poison (never read). */
static void bench_build(struct qn_h *h, struct bmodel *B)
{
    const uint32_t nq = 4, fgu = 2, H = B->H, I = B->I, E = B->E, L = B->L; /* Q4_K gate/up */
    uint64_t rgu, rdn[NFMTS] = { 0 }, dmax = 0;
    qn_h_ok(h, qn_ggml_row_bytes(qtypes[fgu], H, &rgu), "row bytes");
    for (uint32_t l = 0; l < L; l++) {
        B->fdn[l] = more_bits(l, 48) ? 4 : 2; /* Q6_K / Q4_K */
        qn_h_ok(h, qn_ggml_row_bytes(qtypes[B->fdn[l]], I, &rdn[B->fdn[l]]), "row bytes");
        if (rdn[B->fdn[l]] * H > dmax) dmax = rdn[B->fdn[l]] * H;
    }
    struct experts *X = &B->X;
    X->up_off = (uint32_t)al16(rgu * I);
    X->slot_b = (uint32_t)al16(X->up_off + rgu * I), X->dslot_b = (uint32_t)al16(dmax); /* as model_gguf.c: the largest */
    uint64_t cap = qn_bench_pool_cap(h);
    X->spp = qn_bench_spp(X->slot_b, L * E, cap), B->dspp = qn_bench_spp(X->dslot_b, L * E, cap);
    qn_bench_pools(h, "bench gate|up pool", X->slot_b, L * E, X->spp, NULL, X->pool); /* poisoned: slots written below */
    qn_bench_pools(h, "bench down pool", X->dslot_b, L * E, B->dspp, NULL, X->dpool);
    X->npools = (L * E + X->spp - 1) / X->spp, B->dnpools = (L * E + B->dspp - 1) / B->dspp;
    uint8_t *gsrc = qn_h_alloc_bytes(h, (size_t)nq * X->slot_b), *dsrc[NFMTS] = { 0 };
    memset(gsrc, 0, (size_t)nq * X->slot_b);
    for (uint32_t q = 0; q < nq; q++) {
        qn_h_quant_matrix(h, qtypes[fgu], I, H, gsrc + (size_t)q * X->slot_b, NULL);
        qn_h_quant_matrix(h, qtypes[fgu], I, H, gsrc + (size_t)q * X->slot_b + X->up_off, NULL);
    }
    for (uint32_t l = 0; l < L; l++) {
        uint32_t f = B->fdn[l];
        if (!dsrc[f]) {
            dsrc[f] = qn_h_alloc_bytes(h, (size_t)nq * X->dslot_b);
            memset(dsrc[f], 0, (size_t)nq * X->dslot_b);
            for (uint32_t q = 0; q < nq; q++) qn_h_quant_matrix(h, qtypes[f], H, I, dsrc[f] + (size_t)q * X->dslot_b, NULL);
        }
        uint64_t rbs;
        qn_h_ok(h, qn_ggml_row_bytes(qtypes[f], B->Is, &rbs), "row bytes");
        uint8_t *q = qn_h_alloc_bytes(h, (size_t)(H * rbs + 4));
        memset(q, 0, (size_t)(H * rbs + 4));
        qn_h_quant_matrix(h, qtypes[f], H, B->Is, q, NULL);
        B->dsq[l] = qn_h_upload(h, "bench shared down blocks", q, (size_t)((H * rbs + 3) / 4 * 4));
        B->dsf[l] = qn_h_input_f32(h, "bench shared down f32", (size_t)H * B->Is, -0.1f, 0.1f, NULL);
        B->mb_dn[l] = (double)B->K * H * rdn[f] / 1e6, B->mb_dsq[l] = (double)H * rbs / 1e6;
    }
    B->mb_gu = (double)B->K * 2 * I * rgu / 1e6, B->mb_dsf = (double)H * B->Is * 4 / 1e6;
    /* the resident model's table: expert e of layer l in slot l E + e */
    int32_t *table = qn_h_alloc_bytes(h, (size_t)L * E * 4);
    for (uint32_t i = 0; i < L * E; i++) table[i] = (int32_t)i;
    X->table = qn_h_upload(h, "bench table", table, (size_t)L * E * 4);
    /* a random top-K per (token, layer), each at a 256-byte aligned offset; weights into the routed slots */
    B->idst = 64;
    int32_t *ids = qn_h_alloc_bytes(h, (size_t)B->NT * L * B->idst * 4);
    uint8_t *done = qn_h_alloc_bytes(h, (size_t)L * E);
    memset(done, 0, (size_t)L * E);
    for (uint32_t t = 0; t < B->NT; t++)
        for (uint32_t l = 0; l < L; l++) {
            int32_t *r = ids + (size_t)(t * L + l) * B->idst;
            qn_h_random_ids(h, r, 1, B->K, E, B->K);
            for (uint32_t k = 0; k < B->K; k++) {
                uint32_t sl = l * E + (uint32_t)r[k], v = sl % nq;
                if (done[sl]++) continue;
                qn_h_ok(h, qn_buf_write(h->v, X->pool[sl / X->spp], (uint64_t)(sl % X->spp) * X->slot_b,
                                        gsrc + (size_t)v * X->slot_b, X->slot_b), "bench gate|up slot");
                qn_h_ok(h, qn_buf_write(h->v, X->dpool[sl / B->dspp], (uint64_t)(sl % B->dspp) * X->dslot_b,
                                        dsrc[B->fdn[l]] + (size_t)v * X->dslot_b, X->dslot_b), "bench down slot");
            }
        }
    B->ids = qn_h_upload(h, "bench ids", ids, (size_t)B->NT * L * B->idst * 4);
    uint32_t as = (I > B->Is ? I : B->Is + 3) / 4 * 4;
    B->x = qn_h_input_f32(h, "x", H, -1, 1, NULL);
    B->act = qn_h_input_f32(h, "act", (size_t)(B->K + 1) * as, -1, 1, NULL); /* row K: the shared expert's */
    B->w = qn_h_input_f32(h, "w", B->K, 0, 0.2f, NULL), B->sg = qn_h_input_f32(h, "sg", 1, 0, 1, NULL);
    B->y = qn_h_input_f32(h, "y", H, -1, 1, NULL);
    X->xs = xs_scratch(h, 1, B->K, H);
}

/* NT tokens through the L layers with pairs kp[l] (down format of layer l), the shared down in blocks or f32;
 * min over reps of the mean µs per layer visit */
/* marks: a timestamp before each dispatch (gu, dn); else one around everything (all) */
static struct bres bench_run(struct qn_h *h, const struct bmodel *B, struct kpair *const kp[BL_MAX], bool shq, int reps,
                             bool marks)
{
    uint32_t as = (B->I > B->Is ? B->I : B->Is + 3) / 4 * 4;
    qn_pc_moe pc = { .T = 1, .H = B->H, .I = B->I, .Is = B->Is, .E = B->E, .K = B->K, .n_slots = B->L * B->E,
                     .slots_per_pool = B->X.spp, .slot_bytes = B->X.slot_b, .act_stride = as };
    qn_h_ok(h, qn_cmd_begin(h->cmd), "begin");
    if (!marks) qn_cmd_mark(h->cmd, "all");
    for (uint32_t t = 0; t < B->NT; t++)
        for (uint32_t l = 0; l < B->L; l++) {
            pc.layer = l;
            struct qn_bind ids = QN_BIND_RANGE(B->ids, (uint64_t)(t * B->L + l) * B->idst * 4, (uint64_t)B->K * 4);
            qn_pc_moe pd = pc;
            pd.slot_bytes = B->X.dslot_b, pd.slots_per_pool = B->dspp, pd.flags = shq ? QN_MOE_SHARED_Q : 0;
            if (marks) qn_cmd_mark(h->cmd, "gate_up");
            qn_cmd_dispatch_nz(h->cmd, kp[l]->gu, QN_BINDS(QN_BIND(B->x), ids, QN_BIND(B->X.table), QN_BIND(B->act),
                               QN_BIND(B->X.pool[0]), QN_BIND(B->X.pool[1]), QN_BIND(B->X.pool[2]), QN_BIND(B->X.pool[3]),
                               QN_BIND(B->X.pool[4]), QN_BIND(B->X.pool[5]), QN_BIND(B->X.pool[6]),
                               QN_BIND(B->X.pool[7]), QN_BIND(B->X.xs)),
                               &pc, sizeof pc, (uint64_t)B->K * ((B->I + kp[l]->gr - 1) / kp[l]->gr), 1);
            qn_cmd_barrier(h->cmd);
            if (marks) qn_cmd_mark(h->cmd, "down");
            record_down(h->cmd, &B->X, kp[l], &pd, ids, B->w, B->sg, shq ? B->dsq[l] : B->dsf[l], B->y, B->act);
            qn_cmd_barrier(h->cmd);
        }
    qn_h_ok(h, qn_cmd_end(h->cmd), "end");
    struct bres best = { 1e30, 1e30, 1e30 };
    double n = (double)B->NT * B->L;
    /* warm-up: the first run, then about QNEXT_BENCH_WARM_MS (default 100) ms more of the same back to back (an idle
     * GPU runs at low clocks: run 13's un-warmed benches read 2-4x slow) */
    const char *e = getenv("QNEXT_BENCH_WARM_MS");
    double warm = e ? atof(e) : 100, probe = 0;
    qn_h_ok(h, qn_cmd_run(h->cmd), "bench run");
    for (uint32_t i = 0; i < qn_cmd_nregions(h->cmd); i++) probe += qn_cmd_region(h->cmd, i, NULL);
    for (int i = 0; probe > 0 && i < 2000 && i * probe < warm; i++) qn_h_ok(h, qn_cmd_run(h->cmd), "bench warm-up");
    for (int it = 0; it < reps; it++) {
        qn_h_ok(h, qn_cmd_run(h->cmd), "bench run");
        double sum[2] = { 0, 0 };
        for (uint32_t i = 0; i < qn_cmd_nregions(h->cmd); i++) sum[i % 2] += qn_cmd_region(h->cmd, i, NULL);
        if (marks) best.gu = fmin(best.gu, sum[0] * 1e3 / n), best.dn = fmin(best.dn, sum[1] * 1e3 / n);
        else best.all = fmin(best.all, sum[0] * 1e3 / n);
    }
    return best;
}

static double bench_mb_dn(const struct bmodel *B, bool shq)
{
    double mb = 0;
    for (uint32_t l = 0; l < B->L; l++) mb += B->mb_dn[l] + (shq ? B->mb_dsq[l] : B->mb_dsf);
    return mb / B->L;
}

static void bench_line(const struct bmodel *B, const char *what, struct bres r, bool shq)
{
    double dn = bench_mb_dn(B, shq);
    printf("  %-44s gate_up %6.1f us %6.0f GB/s | down %6.1f us %6.0f GB/s | layer %6.1f us, without timestamps %6.1f us "
           "%6.0f GB/s\n", what, r.gu, B->mb_gu / r.gu * 1e3, r.dn, dn / r.dn * 1e3, r.gu + r.dn, r.all,
           (B->mb_gu + dn) / r.all * 1e3);
}

/* the pairs of every layer for one gate_up and one down layout */
static void bench_pairs(struct qn_h *h, const struct bmodel *B, const struct qlayout *lg, const struct qlayout *ld,
                        struct kpair pairs[NFMTS], struct kpair *kp[BL_MAX])
{
    for (uint32_t l = 0; l < B->L; l++) {
        uint32_t f = B->fdn[l];
        if (!pairs[f].gu) pairs[f] = pair_new(h, 2, f, lg, ld, B->X.up_off);
        kp[l] = &pairs[f];
    }
}

/* timestamped per kernel, and (all) the whole sequence without timestamps unless `quick` (the sweep) */
static struct bres bench_layout(struct qn_h *h, const struct bmodel *B, const struct qlayout *lg,
                                const struct qlayout *ld, bool shq, int reps, bool quick)
{
    struct kpair pairs[NFMTS] = { 0 }, *kp[BL_MAX];
    bench_pairs(h, B, lg, ld, pairs, kp);
    struct bres r = bench_run(h, B, kp, shq, reps, true);
    if (!quick) r.all = bench_run(h, B, kp, shq, reps, false).all;
    return r;
}

struct brank { struct qlayout l; double us; };

static int brank_cmp(const void *a, const void *b)
{
    double x = ((const struct brank *)a)->us, y = ((const struct brank *)b)->us;
    return x < y ? -1 : x > y;
}

/* the layouts of one kernel (gate_up: dn = false) worth timing: WG 32-256, one to four row sets per team,
 * 1-2 rows per set, units / experts in flight, x staged or not; down also with the experts split over the lanes
 * (QN_KSPLIT: one row per team at a time, 3 or 6 units per lane in flight: 176 units per row at K 10) */
static uint32_t sweep_space(bool dn, struct qlayout *out)
{
    static const uint32_t wgs[] = { 32, 64, 128, 256 };
    const uint32_t un_gu[] = { 1, 2, 4 }, un_dn[] = { 2, 5, 10 }, xs_gu[] = { 0, 512 }, xs_dn[] = { 0, 1280 };
    uint32_t n = 0;
    for (uint32_t a = 0; a < 4; a++)
        for (uint32_t sg = 1; sg <= 2; sg++)
            for (uint32_t m = 1; m <= 4; m *= 2)
                for (uint32_t u = 0; u < 3; u++)
                    for (uint32_t x = 0; x < 2; x++) {
                        uint32_t teams = wgs[a] / 32, rows = teams * sg * m * (dn ? 2 : 1); /* down: 2 row groups per team at I 512 */
                        out[n++] = (struct qlayout){ wgs[a], rows, sg, dn ? un_dn[u] : un_gu[u], dn ? xs_dn[x] : xs_gu[x], 0, 0, 0, 0 };
                    }
    for (uint32_t a = 0; dn && a < 3; a++)
        for (uint32_t m = 1; m <= 4; m *= 2)
            for (uint32_t u = 3; u <= 6; u += 3)
                for (uint32_t x = 0; x < 2; x++)
                    out[n++] = (struct qlayout){ wgs[a], wgs[a] / 32 * m, 1, u, xs_dn[x], 0, 1, 0, 0 };
    for (uint32_t a = 1; dn && a < 4; a++) /* the split over the experts: 8-64 rows per workgroup, 1-4 rows per lane */
        for (uint32_t rows = 8; rows <= 64; rows *= 2)
            for (uint32_t sg = 1; sg <= 4; sg *= 2)
                out[n++] = (struct qlayout){ wgs[a], rows, sg, 1, 0, 0, 0, 1, 0 };
    return n;
}

static uint32_t sweep_max = 1000; /* --sweep-max N: the first N layouts of each space only (a quick check) */

static void bench_sweep(struct qn_h *h, const struct bmodel *B, int reps)
{
    static const struct qlayout def = { 0 };
    struct qlayout space[256];
    struct brank rk[2][256];
    uint32_t n = sweep_space(false, space);
    for (int part = 0; part < 2; part++) {
        n = sweep_space(part == 1, space);
        n = n < sweep_max ? n : sweep_max;
        for (uint32_t i = 0; i < n; i++) {
            struct bres r = bench_layout(h, B, part ? &def : &space[i], part ? &space[i] : &def, true, reps, true);
            rk[part][i] = (struct brank){ space[i], part ? r.dn : r.gu };
        }
        qsort(rk[part], n, sizeof rk[part][0], brank_cmp);
        double mb = part ? bench_mb_dn(B, true) : B->mb_gu;
        printf("\nsweep %s (moe_q.comp; the other kernel at its default; shared down in blocks), best first:\n",
               part ? "down" : "gate_up");
        printf("  rank  WG,ROWS,SGROWS,UNROLL,XSH[,KSPLIT]  us/layer   GB/s\n");
        for (uint32_t i = 0; i < n && i < 20; i++) {
            char lay[64];
            snprintf(lay, sizeof lay, "%u,%u,%u,%u,%u%s", rk[part][i].l.wg, rk[part][i].l.rows, rk[part][i].l.sgrows,
                     rk[part][i].l.unroll, rk[part][i].l.xsh, rk[part][i].l.ksplit ? ",1 (ksplit)" : "");
            printf("  %4u  %-24s %10.1f %6.0f\n", i + 1, lay, rk[part][i].us, mb / rk[part][i].us * 1e3);
        }
    }
    struct qlayout g = rk[0][0].l, d = rk[1][0].l;
    struct bres best = bench_layout(h, B, &g, &d, true, reps, false);
    printf("\nbest of the sweep together:\n");
    bench_line(B, "moe_q best gate_up + best down", best, true);
    printf("  in the model: QNEXT_MOEQ_LAYOUT=%u,%u,%u,%u,%u:%u,%u,%u,%u,%u%s\n", g.wg, g.rows, g.sgrows, g.unroll, g.xsh,
           d.wg, d.rows, d.sgrows, d.unroll, d.xsh, d.ksplit ? ",1" : "");
}

/* the int8 gate_up (the model's since H100 run 23) with the split down */
static void bench_i8(struct qn_h *h, const struct bmodel *B, int reps)
{
    static const struct qlayout g = { .i8 = 1 }, g8 = { 256, 8, 1, 2, 0, 0, 0, 0, 1 }, g4 = { 128, 4, 1, 2, 0, 0, 0, 0, 1 },
                                xs = { .xsplit = 1 }, x8 = { 64, 8, 2, 1, 0, 0, 0, 1, 0 }, x32 = { 128, 32, 4, 1, 0, 0, 0, 1, 0 };
    bench_line(B, "i8 gate_up + split down (the model's default)", bench_layout(h, B, &g, &xs, true, reps, false), true);
    bench_line(B, "i8 gate_up + split down, shared f32", bench_layout(h, B, &g, &xs, false, reps, false), false);
    bench_line(B, "i8 gate_up + split down 64,8,2,1", bench_layout(h, B, &g, &x8, true, reps, false), true);
    bench_line(B, "i8 gate_up + split down 128,32,4,1", bench_layout(h, B, &g, &x32, true, reps, false), true);
    bench_line(B, "i8 gate_up 256,8,1,2 + split down", bench_layout(h, B, &g8, &xs, true, reps, false), true);
    bench_line(B, "i8 gate_up 128,4,1,2 + split down", bench_layout(h, B, &g4, &xs, true, reps, false), true);
}

static void bench(struct qn_h *h, uint32_t L, uint32_t NT, uint32_t E, int reps, bool sweep, bool quick)
{
    struct bmodel B = { .L = L, .NT = NT, .H = 2048, .I = 512, .Is = 512, .K = 10, .E = E };
    bench_build(h, &B);
    double gb = 0;
    for (uint32_t p = 0; p < B.X.npools; p++) gb += (double)B.X.pool[p]->size / 1e9;
    for (uint32_t p = 0; p < B.dnpools; p++) gb += (double)B.X.dpool[p]->size / 1e9;
    printf("bench moe_q T=1, Q4_K gate/up, Q6_K / Q4_K down by the Q4_K_M rule, H %u I %u Is %u K %u, %u layers of %u "
           "experts in %u + %u pools as the model (%.1f GB), %u tokens visiting the layers in turn, min of %d:\n", B.H,
           B.I, B.Is, B.K, L, B.E, B.X.npools, B.dnpools, gb, NT, reps);
    printf("  per layer: gate_up %.2f MB, down %.2f MB + shared down %.2f MB (blocks) / %.2f MB (f32)\n", B.mb_gu,
           bench_mb_dn(&B, false) - B.mb_dsf, bench_mb_dn(&B, true) - bench_mb_dn(&B, false) + B.mb_dsf, B.mb_dsf);
    if (qn_vk_caps(h->v)->features & QN_FEAT_INT_DOT) bench_i8(h, &B, reps);
    if (quick) { /* --quick: the int8 lines only */
        qn_h_reset(h);
        return;
    }
    static const struct qlayout def = { 0 }, nopre = { .nopre = 1 }, run9 = { 256, 16, 2, 2, 512, 0, 0, 0, 0 },
                                ksplit = { 32, 1, 1, 6, 0, 0, 1, 0, 0 }, g32 = { 32, 1, 1, 2, 0, 0, 0, 0, 0 },
                                run9d = { 128, 16, 2, 5, 0, 0, 0, 0, 0 }, xs = { .xsplit = 1 },
                                xs32 = { 128, 32, 4, 1, 0, 0, 0, 1, 0 }, xs8 = { 64, 8, 2, 1, 0, 0, 0, 1, 0 },
                                xs64 = { 256, 64, 4, 1, 0, 0, 0, 1, 0 }, ks512 = { 512, 16, 1, 6, 0, 0, 1, 0, 0 },
                                xsw = { 128, 16, 2, 1, 512, 0, 0, 1, 0 }, xsw32 = { 128, 32, 4, 1, 512, 0, 0, 1, 0 },
                                xsw8 = { 64, 8, 2, 1, 512, 0, 0, 1, 0 };
    bench_line(&B, "moe_q defaults, shared down in blocks", bench_layout(h, &B, &def, &def, true, reps, false), true);
    bench_line(&B, "moe_q defaults, gate_up without QN_PRE", bench_layout(h, &B, &nopre, &def, true, reps, false), true);
    bench_line(&B, "moe_q defaults, shared down f32", bench_layout(h, &B, &def, &def, false, reps, false), false);
    bench_line(&B, "moe_q run-9 layout, shared down in blocks", bench_layout(h, &B, &run9, &run9d, true, reps, false), true);
    bench_line(&B, "moe_q defaults, down 32,1,1,6,0,ksplit", bench_layout(h, &B, &def, &ksplit, true, reps, false), true);
    bench_line(&B, "moe_q 32,1,1,2,0 : 32,1,1,6,0,ksplit", bench_layout(h, &B, &g32, &ksplit, true, reps, false),
               true);
    bench_line(&B, "moe_q defaults, down 512,16,1,6,0,ksplit", bench_layout(h, &B, &def, &ks512, true, reps, false), true);
    bench_line(&B, "moe_q defaults, down split (defaults)", bench_layout(h, &B, &def, &xs, true, reps, false), true);
    bench_line(&B, "moe_q defaults, down split, shared f32", bench_layout(h, &B, &def, &xs, false, reps, false), false);
    bench_line(&B, "moe_q defaults, down split 128,32,4,1", bench_layout(h, &B, &def, &xs32, true, reps, false), true);
    bench_line(&B, "moe_q defaults, down split 64,8,2,1", bench_layout(h, &B, &def, &xs8, true, reps, false), true);
    bench_line(&B, "moe_q defaults, down split 256,64,4,1", bench_layout(h, &B, &def, &xs64, true, reps, false), true);
    bench_line(&B, "down split, weights staged (WIMAX 512)", bench_layout(h, &B, &def, &xsw, true, reps, false), true);
    bench_line(&B, "down split 128,32,4,1 staged", bench_layout(h, &B, &def, &xsw32, true, reps, false), true);
    bench_line(&B, "down split 64,8,2,1 staged", bench_layout(h, &B, &def, &xsw8, true, reps, false), true);
    if (sweep) bench_sweep(h, &B, reps);
    qn_h_reset(h);
}

int main(int argc, char **argv)
{
    bool do_bench = false, small = false, sweep = false, quick = false; /* --small: fewer cases (the meson variants but
                                                                         * the first); --quick: --bench's int8 lines only */
    uint32_t L = 48, NT = 4, E = 512;
    int reps = 10;
    for (int i = 1; i < argc; i++) {
        do_bench |= !strcmp(argv[i], "--bench"), small |= !strcmp(argv[i], "--small"), sweep |= !strcmp(argv[i], "--sweep");
        quick |= !strcmp(argv[i], "--quick");
        if (i + 1 < argc && !strcmp(argv[i], "--layers")) L = (uint32_t)atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--tokens")) NT = (uint32_t)atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--experts")) E = (uint32_t)atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--sweep-max")) sweep_max = (uint32_t)atoi(argv[++i]);
    }
    struct qn_h h;
    qn_h_open(&h, "moe_q", argc, argv);
    if (do_bench) {
        if (L < 1 || L > BL_MAX || NT < 1 || NT * L * 2 > 2000 || reps < 1 || E < 10 || E > QN_MOE_MAX_E) {
            fprintf(stderr, "test_moe_q --bench: --layers 1..%u, --tokens >= 1 with tokens x layers <= 1000, --reps >= 1, "
                    "--experts 10..%u\n", BL_MAX, QN_MOE_MAX_E);
            return 2;
        }
        bench(&h, L, NT, E, reps, sweep, quick);
        return qn_h_close(&h);
    }
    /* every format with the default layout and a mixed pair with an absent expert; the other layouts (each
     * one more pipeline to compile: slow on lavapipe) on a 32-element and a 256-element format; the shared down
     * in blocks (QN_MOE_SHARED_Q) */
    for (uint32_t f = 0; f < NFMTS; f++) {
        if (small && f != 1 && f != 4) continue; /* --small: Q4_0 and Q6_K only */
        uint32_t qk = qn_ggml_type(qtypes[f])->blck, HH = qk == 32 ? 96 : 256, II = qk == 32 ? 64 : 256;
        for (uint32_t l = 0; l < NLAYOUTS; l++)
            if ((l == 0 || f == 1 || f == 4) && l < 4)
                run_case(&h, (struct mcase){ .fgu = f, .fdn = f, .T = l == 2 ? 3 : 1, .H = HH, .I = II, .Is = 40,
                                             .E = 12, .K = 3, .layout = l, .absent = -1 });
        run_case(&h, (struct mcase){ .fgu = f, .fdn = (f + 2) % NFMTS, .T = 2, .H = 256, .I = 256, .Is = 37, .E = 5,
                                     .K = 4, .layout = 0, .absent = 2 });
        /* shared down in blocks: Is = 2 blocks (more units than I for 32-element blocks), a layout with 2 rows per
         * lane and staged act for the 256-element formats */
        run_case(&h, (struct mcase){ .fgu = f, .fdn = f, .T = 2, .H = HH, .I = II, .Is = 2 * qk, .E = 6, .K = 3,
                                     .layout = f == 4 ? 2 : f == 1 ? 4 : 0, .absent = -1, .shq = true });
        if (f == 1) /* QN_KSPLIT with the f32 shared down and an absent expert (the pipelines of the case above) */
            run_case(&h, (struct mcase){ .fgu = f, .fdn = f, .T = 2, .H = 256, .I = 256, .Is = 37, .E = 5, .K = 4,
                                         .layout = 4, .absent = 1 });
        /* the down split over the experts: the shared down in blocks (2 blocks), f32 in vec4s (Is 40) with an
         * absent expert, f32 in floats (Is 37); 3 tokens; its default layout, and on the 32- and 256-element formats
         * 7 rows (not dividing H) with 3 rows per lane and 3 units in flight, a workgroup below a subgroup, the
         * weight rows staged in shared memory (QN_WIMAX; staged where a group's rows are 16-byte aligned, so
         * 4 rows of 64 and 3 rows of 36 bytes mix staged and unstaged groups) */
        for (uint32_t l = 0; l < 5; l++)
            if (l == 0 || l == 4 || ((f == 1 || f == 4) && (!small || l == 2))) { /* --small: 0, 4 and WG 2 */
                uint32_t ll = l == 0 ? 0 : l == 1 ? 2 : l == 2 ? 3 : l == 3 ? 1 : 5;
                run_case(&h, (struct mcase){ .fgu = f, .fdn = f, .T = 3, .H = HH, .I = II,
                                             .Is = l == 3 ? 37 : l == 1 ? 40 : 2 * qk, .E = 7, .K = 3, .layout = ll,
                                             .absent = l == 1 ? 4 : -1, .shq = l == 0 || l == 2, .xsplit = true });
            }
    }
    /* the Q4_K_M mix at the real row lengths, T = 2, the shared down in blocks: row sets, QN_KSPLIT, split, split
     * with the weights staged, split in the model's layout on 32-wide subgroups (256 x 64 rows) */
    if (!small)
        for (int v = 0; v < 5; v++)
            run_case(&h, (struct mcase){ .fgu = 2, .fdn = 4, .T = 2, .H = 2048, .I = 512, .Is = 512, .E = 10, .K = 10,
                                         .layout = v == 1 ? 4 : v == 3 ? 5 : v == 4 ? 6 : 0, .absent = -1, .shq = true,
                                         .xsplit = v >= 2 });
    /* the decode chain: the Q4_K_M pair (both gate_up kernels; two superblocks per down row as the 80B's), and a
     * 32-element mix (--small: that one only) */
    if (!small) chain_case(&h, 2, 4, true, 256, 512, 256, 9, 4);
    if (!small) chain_case(&h, 2, 4, false, 256, 512, 256, 9, 4);
    chain_case(&h, 1, 0, false, 256, 64, 64, 9, 3);
    printf("moe_q: worst max err / S = %.3g (bound 5e-7)\n", worst);
    return qn_h_close(&h);
}
