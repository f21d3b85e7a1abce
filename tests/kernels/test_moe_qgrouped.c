/* test_moe_qgrouped.c — prefill MoE over GGUF block experts (moe_qgrouped.comp: moe_q_gu_grouped_* and
 * moe_q_dn_grouped_*) against a double-precision C reference on the dequantized weights (loader/quant.h).
 *
 * Each case: random routing ids [T, K] (distinct per token), moe_sort on the device (list, tiles), then
 *   gate_up: act[t, k, i] = silu(gate_e[i] · x_t) * (up_e[i] · x_t)     (rows k < K)
 *   down:    d[t, k, h]   = down_e[h] · act[t, k]  (k < K),  d[t, K, h] = down_s[h] · act[t, K]  (f32 down_s)
 * where down reads a random act (independent of gate_up), every expert in a slot of one of 2 or 3 pools
 * (random placement: the slot table), gate | up in `pools` and down in `dpools` as model_gguf.c lays them
 * out. Formats: each of Q8_0, Q4_0, Q4_K, Q5_K, Q6_K for both parts, the Q4_K_M mix (Q4_K gate/up, Q6_K
 * down) at the real 80B row lengths (H 2048, I 512), token tiles of 64 and of 7 pairs (several passes,
 * tile_groups 3), and an absent expert (table -1), whose outputs must be NaN while the others stay right.
 *
 * Tolerance: the weights are the reference's exact f32 values (qtile.glsl), each output one f32 sum in a
 * fixed order: error ~ S = sum |w x| times a few f32 epsilons. Bound 1e-6 + 1e-6 * S per output (act: the
 * silu/product of two such sums, so S_gate * |u| + S_up * |silu(g)| is used); measured worst |err| / S is
 * printed at the end.
 * Tensor-core variants (moe_q_*_grouped_cm_*, where the device has QN_FEAT_COOPMAT_NV and 32-wide subgroups;
 * else a SKIP line): the same cases against a reference on f16-rounded operands (x or act, and the weights)
 * with the same bound, and against the exact reference with 1e-6 + 1e-3 * S (two f16 roundings per product:
 * at most 9.8e-4 * S). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_pools.h"
#include "forward.h"
#include "harness.h"
#include "moe_small.h"
#include "qblocks.h"
#include "qn_num.h"
#include "quant.h"
#include "ref_ops.h"

#define NFMTS 5
static const uint32_t qtypes[NFMTS] = { QN_GGML_Q8_0, QN_GGML_Q4_0, QN_GGML_Q4_K, QN_GGML_Q5_K, QN_GGML_Q6_K };
static const enum qn_kernel k_gu[NFMTS] = { QN_K_MOE_Q_GU_GROUPED_Q8_0, QN_K_MOE_Q_GU_GROUPED_Q4_0,
                                            QN_K_MOE_Q_GU_GROUPED_Q4_K, QN_K_MOE_Q_GU_GROUPED_Q5_K,
                                            QN_K_MOE_Q_GU_GROUPED_Q6_K };
static const enum qn_kernel k_dn[NFMTS] = { QN_K_MOE_Q_DN_GROUPED_Q8_0, QN_K_MOE_Q_DN_GROUPED_Q4_0,
                                            QN_K_MOE_Q_DN_GROUPED_Q4_K, QN_K_MOE_Q_DN_GROUPED_Q5_K,
                                            QN_K_MOE_Q_DN_GROUPED_Q6_K };

static double worst;

struct mcase {
    uint32_t fgu, fdn;          /* format index of gate/up and of down */
    uint32_t T, H, I, Is, E, K;
    uint32_t tile_t, tile_groups; /* tile_t 0: the kernels' token tile (64) */
    int absent;                 /* expert whose slot is -1 (or -1 for none) */
    const struct small_cfg *small; /* qsmall: moe_qsmall.comp in this layout instead of moe_qgrouped.comp */
    bool skew;                  /* qsmall: skew_ids' routing (experts with 0, 1 and T tokens) */
    const struct mt_cfg *mt;    /* moe_qmt.comp in this layout instead of moe_qgrouped.comp */
};

/* ---- mt: moe_qmt.comp (the multi-token grouped matvec) in the same cases: wg, nt, nr, lk, ck (0: qn_moe_mt_spec's
 * defaults), for gate_up and down alike ---- */
struct mt_cfg { uint32_t wg, nt, nr, lk, ck, upf; bool i8; }; /* i8: the int8 twins (moe_q_*_mt_i8_*) */
static const enum qn_kernel k_gu_mt[NFMTS] = { QN_K_MOE_Q_GU_MT_Q8_0, QN_K_MOE_Q_GU_MT_Q4_0, QN_K_MOE_Q_GU_MT_Q4_K,
                                               QN_K_MOE_Q_GU_MT_Q5_K, QN_K_MOE_Q_GU_MT_Q6_K };
static const enum qn_kernel k_dn_mt[NFMTS] = { QN_K_MOE_Q_DN_MT_Q8_0, QN_K_MOE_Q_DN_MT_Q4_0, QN_K_MOE_Q_DN_MT_Q4_K,
                                               QN_K_MOE_Q_DN_MT_Q5_K, QN_K_MOE_Q_DN_MT_Q6_K };
static const enum qn_kernel k_gu_mt8[NFMTS] = { QN_K_MOE_Q_GU_MT_I8_Q8_0, QN_K_MOE_Q_GU_MT_I8_Q4_0,
                                                QN_K_MOE_Q_GU_MT_I8_Q4_K, QN_K_MOE_Q_GU_MT_I8_Q5_K,
                                                QN_K_MOE_Q_GU_MT_I8_Q6_K };
static const enum qn_kernel k_dn_mt8[NFMTS] = { QN_K_MOE_Q_DN_MT_I8_Q8_0, QN_K_MOE_Q_DN_MT_I8_Q4_0,
                                                QN_K_MOE_Q_DN_MT_I8_Q4_K, QN_K_MOE_Q_DN_MT_I8_Q5_K,
                                                QN_K_MOE_Q_DN_MT_I8_Q6_K };
static double worst_i8;

static qn_pipe *mt_pipe(struct qn_h *h, enum qn_kernel k, bool gate_up, const struct mt_cfg *c, uint32_t part_off)
{
    uint32_t s[QN_MOE_MT_NSPEC];
    (c->i8 ? qn_moe_mt_spec_i8 : qn_moe_mt_spec)(qn_vk_caps(h->v), gate_up, part_off, s);
    if (c->wg) s[0] = c->wg;
    if (c->nt) s[1] = c->nt;
    if (c->nr) s[2] = c->nr;
    if (c->lk) s[3] = c->lk;
    if (c->ck) s[5] = c->ck;
    if (c->upf) s[6] = 1;
    return qn_h_pipe_spec(h, k, s, QN_MOE_MT_NSPEC);
}

/* ---- qsmall: moe_qsmall.comp (few tokens per expert) in the same cases: token slots nt, and wg / rows / sgrows
 * (0: qn_moe_small_spec's defaults), l1: inputs read through L1 instead of staged in shared memory, xsn: stage only
 * passes of up to xsn tokens (0: as many as fit) ---- */
struct small_cfg { uint32_t nt, wg, rows, sgrows; bool l1; uint32_t xsn; };
static const enum qn_kernel k_gu_sm[NFMTS] = { QN_K_MOE_Q_GU_SMALL_Q8_0, QN_K_MOE_Q_GU_SMALL_Q4_0, QN_K_MOE_Q_GU_SMALL_Q4_K,
                                               QN_K_MOE_Q_GU_SMALL_Q5_K, QN_K_MOE_Q_GU_SMALL_Q6_K };
static const enum qn_kernel k_dn_sm[NFMTS] = { QN_K_MOE_Q_DN_SMALL_Q8_0, QN_K_MOE_Q_DN_SMALL_Q4_0, QN_K_MOE_Q_DN_SMALL_Q4_K,
                                               QN_K_MOE_Q_DN_SMALL_Q5_K, QN_K_MOE_Q_DN_SMALL_Q6_K };

static qn_pipe *small_pipe(struct qn_h *h, enum qn_kernel k, bool gate_up, const struct small_cfg *c, uint32_t part_off,
                           uint32_t len)
{
    uint32_t s[QN_MOE_SMALL_NSPEC];
    qn_moe_small_spec(qn_vk_caps(h->v), gate_up, c->nt, part_off, len, s);
    if (c->wg) s[0] = c->wg;
    if (c->rows) s[2] = c->rows;
    if (c->sgrows) s[3] = c->sgrows;
    if (c->l1) s[5] = 0;
    if (c->xsn && c->xsn < s[6]) s[6] = c->xsn;
    return qn_h_pipe_spec(h, k, s, QN_MOE_SMALL_NSPEC);
}

/* routing with experts of 0, 1 and many tokens (E >= K + 3): expert 0 in every token (at varying k), expert 1 in
 * none, expert 2 only in token 0; the others random (distinct per token) */
static void skew_ids(struct qn_h *h, int32_t *ids, uint32_t T, uint32_t K, uint32_t E)
{
    qn_h_random_ids(h, ids, T, K, E - 3, K);
    for (uint32_t i = 0; i < T * K; i++) ids[i] += 3;
    for (uint32_t t = 0; t < T; t++) ids[t * K + t % K] = 0;
    if (K > 1) ids[1] = 2;
}

static uint64_t al16(uint64_t x) { return (x + 15) / 16 * 16; }

static bool g_r16; /* reference on f16-rounded operands (the tensor-core kernels' inputs) */
static float f16r(float v) { return g_r16 ? qn_f16_to_f32(qn_f32_to_f16(v)) : v; }

static double dot_s(const float *w, const float *x, uint32_t n, double *s)
{
    double acc = 0, a = 0;
    for (uint32_t i = 0; i < n; i++) {
        acc += (double)f16r(w[i]) * f16r(x[i]);
        a += fabs((double)w[i] * x[i]);
    }
    *s = a;
    return acc;
}

static double check(struct qn_h *h, const char *what, const float *got, const float *ref, const double *s, size_t n,
                    const uint8_t *want_nan, double rel)
{
    double ratio = 0;
    int bad = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        if (want_nan && want_nan[i]) { if (!isnan(got[i])) bad++; continue; }
        if (isnan(ref[i])) continue; /* not an output */
        double e = fabs((double)got[i] - ref[i]);
        if (!isfinite(got[i]) || e > 1e-6 + rel * s[i]) { if (!bad) worst_i = i; bad++; }
        if (isfinite(e) && s[i] > 0 && e / s[i] > ratio) ratio = e / s[i];
    }
    h->checks++;
    if (bad) h->failures++;
    printf("%-4s %s: err/S %.2g%s", bad ? "FAIL" : "ok", what, ratio, bad ? "" : "\n");
    if (bad) printf(" — %d bad, first at %zu: got %g want %g\n", bad, worst_i, got[worst_i], ref[worst_i]);
    return ratio;
}

static const enum qn_kernel k_gu_cm[NFMTS] = { QN_K_MOE_Q_GU_GROUPED_CM_Q8_0, QN_K_MOE_Q_GU_GROUPED_CM_Q4_0,
                                               QN_K_MOE_Q_GU_GROUPED_CM_Q4_K, QN_K_MOE_Q_GU_GROUPED_CM_Q5_K,
                                               QN_K_MOE_Q_GU_GROUPED_CM_Q6_K };
static const enum qn_kernel k_gu_cmh[NFMTS] = { QN_K_MOE_Q_GU_GROUPED_CM_H_Q8_0, QN_K_MOE_Q_GU_GROUPED_CM_H_Q4_0,
                                                QN_K_MOE_Q_GU_GROUPED_CM_H_Q4_K, QN_K_MOE_Q_GU_GROUPED_CM_H_Q5_K,
                                                QN_K_MOE_Q_GU_GROUPED_CM_H_Q6_K };
static const enum qn_kernel k_dn_cmh[NFMTS] = { QN_K_MOE_Q_DN_GROUPED_CM_H_Q8_0, QN_K_MOE_Q_DN_GROUPED_CM_H_Q4_0,
                                                QN_K_MOE_Q_DN_GROUPED_CM_H_Q4_K, QN_K_MOE_Q_DN_GROUPED_CM_H_Q5_K,
                                                QN_K_MOE_Q_DN_GROUPED_CM_H_Q6_K };
static const enum qn_kernel k_dn_cm[NFMTS] = { QN_K_MOE_Q_DN_GROUPED_CM_Q8_0, QN_K_MOE_Q_DN_GROUPED_CM_Q4_0,
                                               QN_K_MOE_Q_DN_GROUPED_CM_Q4_K, QN_K_MOE_Q_DN_GROUPED_CM_Q5_K,
                                               QN_K_MOE_Q_DN_GROUPED_CM_Q6_K };
static double worst_cm16, worst_cm_exact;
static size_t na_(uint32_t T, uint32_t K, uint32_t as) { return (size_t)T * (K + 1) * as; }

/* the f16-input twins' checks: x clamped to f16's range and rounded as to_f16.comp does; the words of a and b that
 * differ bit for bit, counted as one check that fails when there are any */
static uint16_t f16_sat(float x) { return qn_f32_to_f16(fminf(fmaxf(x, -65504.0f), 65504.0f)); }
static size_t words_differ(struct qn_h *h, const float *a, const float *b, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp(&a[i], &b[i], 4) != 0;
    h->checks++;
    h->failures += bad != 0;
    return bad;
}

/* The tensor-core kernel k in the layout qn_cm_moe_spec picks (env QNEXT_CM_MOE_TILE=WG,BK,BT,NBUF[,PSW[,TS]];
 * default 256,32,128,1,1,2 where it fits, else 128,32,128,2,1,4), up (gate_up) or down (down) at byte part_off of its slot */
static qn_pipe *cm_pipe(struct qn_h *h, enum qn_kernel k, uint32_t part_off)
{
    uint32_t s[QN_CM_MOE_NSPEC];
    qn_cm_moe_spec(qn_vk_caps(h->v), part_off, s);
    return qn_h_pipe_spec(h, k, s, QN_CM_MOE_NSPEC);
}

/* cm: the tensor-core variants (moe_qgrouped_cm.comp in cm_pipe's layout: row blocks of WG / 2 (gate_up) and WG
 * (down)), checked against the f16-rounded reference (1e-6 + 1e-6 * S) and the exact one (1e-3 * S) */
static void run_case(struct qn_h *h, struct mcase c, bool cm)
{
    uint32_t T = c.T, H = c.H, I = c.I, E = c.E, K = c.K, tgu = qtypes[c.fgu], tdn = qtypes[c.fdn];
    struct qn_h_qexp Q; /* expert e's parts at a random slot */
    qn_h_qexp_make(h, tgu, tdn, H, I, E, c.absent, &Q);
    uint32_t up_off = Q.up_off, slot_b = Q.slot_b, dslot_b = Q.dslot_b, spp = Q.spp, npools = Q.npools;
    uint8_t *pools = Q.pools, *dpools = Q.dpools;
    int32_t *table = Q.table;
    float *dg = Q.dg, *du = Q.du, *dd = Q.dd;
    qn_buf *pb[3], *dpb[3];
    for (uint32_t p = 0; p < 3; p++) {
        uint32_t q = p < npools ? p : 0;
        pb[p] = p < npools ? qn_h_upload(h, "pool", pools + (size_t)q * spp * slot_b, (size_t)spp * slot_b) : pb[0];
        dpb[p] = p < npools ? qn_h_upload(h, "dpool", dpools + (size_t)q * spp * dslot_b, (size_t)spp * dslot_b) : dpb[0];
    }
    /* routing: K distinct experts per token */
    int32_t *ids = qn_h_alloc_bytes(h, (size_t)T * K * 4);
    qn_h_random_ids(h, ids, T, K, E, K);
    if (c.skew) skew_ids(h, ids, T, K, E);
    uint32_t as = (I > c.Is ? I : c.Is + 3) / 4 * 4 + 4; /* act stride > max(I, Is), a multiple of 4 */
    float *x_h, *a_h, *ds_h;
    qn_buf *x = qn_h_input_f32(h, "x", (size_t)T * H, -1, 1, &x_h);
    qn_buf *ain = qn_h_input_f32(h, "act in", (size_t)T * (K + 1) * as, -1, 1, &a_h);
    qn_buf *dsb = qn_h_input_f32(h, "down_s", (size_t)H * c.Is, -1, 1, &ds_h);
    qn_buf *idb = qn_h_upload(h, "ids", ids, (size_t)T * K * 4), *tb = qn_h_upload(h, "table", table, (size_t)2 * E * 4);
    qn_buf *act = qn_h_output(h, "act", (size_t)T * (K + 1) * as), *d = qn_h_output(h, "d", (size_t)T * (K + 1) * H);
    uint32_t tile_t = c.tile_t ? c.tile_t : 64;
    qn_pc_moe pc = { .T = T, .H = H, .I = I, .Is = c.Is, .E = E, .K = K, .layer = 1, .n_slots = E + 1,
                     .slots_per_pool = spp, .slot_bytes = slot_b, .act_stride = as, .tile_t = tile_t,
                     .max_tiles = QN_MOE_MAX_TILES(T, E, K, tile_t), .tile_groups = c.tile_groups };
    qn_buf *list = qn_h_buffer(h, "list", (size_t)(T * K + T) * 4), *tiles = qn_h_buffer(h, "tiles", (size_t)pc.max_tiles * 16);
    uint32_t cn = qn_vk_caps(h->v)->coopmat_nv_n; /* the tensor-core fragment width (spec constant CN) */
    qn_pipe *gu = cm ? cm_pipe(h, k_gu_cm[c.fgu], up_off) : qn_h_pipe(h, k_gu[c.fgu], 256, 16, 32, up_off);
    qn_pipe *dn = cm ? cm_pipe(h, k_dn_cm[c.fdn], 0) : qn_h_pipe(h, k_dn[c.fdn], 256, 16, 32, 0);
    (void)cn;
    uint32_t bn_gu = cm ? qn_pipe_spec(gu, 0) / 2 : 32, bn_dn = cm ? qn_pipe_spec(dn, 0) : 64; /* output rows per workgroup */
    if (c.small) { /* qsmall */
        gu = small_pipe(h, k_gu_sm[c.fgu], true, c.small, up_off, H);
        dn = small_pipe(h, k_dn_sm[c.fdn], false, c.small, 0, I > c.Is ? I : c.Is);
        bn_gu = qn_moe_small_rows(gu), bn_dn = qn_moe_small_rows(dn);
        printf("     (next: moe_qsmall NT %u, WG %u, rows %u / %u, %u rows per lane group, inputs staged for passes of <= "
               "%u / %u tokens, else through L1%s; T K / E = %.2f: the model takes %s)\n", c.small->nt, qn_pipe_spec(gu, 0),
               bn_gu, bn_dn, qn_pipe_spec(gu, 3), qn_pipe_spec(gu, 5) ? qn_pipe_spec(gu, 6) : 0,
               qn_pipe_spec(dn, 5) ? qn_pipe_spec(dn, 6) : 0, c.skew ? "; experts with 0, 1 and T tokens" : "",
               (double)T * K / E, qn_moe_small_nt(T, E, K) ? "moe_qsmall" : "the tiled kernels");
    }
    if (c.mt) { /* mt */
        gu = mt_pipe(h, (c.mt->i8 ? k_gu_mt8 : k_gu_mt)[c.fgu], true, c.mt, up_off);
        dn = mt_pipe(h, (c.mt->i8 ? k_dn_mt8 : k_dn_mt)[c.fdn], false, c.mt, 0);
        bn_gu = qn_moe_mt_rows(gu), bn_dn = qn_moe_mt_rows(dn);
        printf("     (next: moe_qmt%s WG %u, NT %u, %u rows per lane group, %u lanes per row, chunks of %u%s; rows per "
               "workgroup %u / %u; T K / E = %.2f%s)\n", c.mt->i8 ? " int8" : "", qn_pipe_spec(gu, 0), qn_pipe_spec(gu, 1), qn_pipe_spec(gu, 2),
               qn_pipe_spec(gu, 3), qn_pipe_spec(gu, 5), qn_pipe_spec(gu, 6) ? ", unit prefetch" : "", bn_gu, bn_dn,
               (double)T * K / E,
               c.skew ? "; experts with 0, 1 and T tokens" : "");
    }
    uint32_t G = c.tile_groups ? c.tile_groups : pc.max_tiles;
    qn_pc_moe pd = pc;
    pd.slot_bytes = dslot_b;
    qn_cmd *cmd = h->cmd;
    qn_h_ok(h, qn_cmd_begin(cmd), "begin");
    qn_cmd_dispatch_n(cmd, qn_h_pipe_default(h, QN_K_MOE_SORT), QN_BINDS(QN_BIND(idb), QN_BIND(list), QN_BIND(tiles)),
                      &pc, sizeof pc, E + 1);
    qn_cmd_barrier(cmd);
    qn_cmd_dispatch_n(cmd, gu, QN_BINDS(QN_BIND(x), QN_BIND(list), QN_BIND(tiles), QN_BIND(tb), QN_BIND(act),
                                        QN_BIND(pb[0]), QN_BIND(pb[1]), QN_BIND(pb[2]), QN_BIND(pb[0]), QN_BIND(pb[0]),
                                        QN_BIND(pb[0]), QN_BIND(pb[0]), QN_BIND(pb[0])),
                      &pc, sizeof pc, (uint64_t)G * ((I + bn_gu - 1) / bn_gu));
    qn_cmd_dispatch_n(cmd, dn, QN_BINDS(QN_BIND(ain), QN_BIND(list), QN_BIND(tiles), QN_BIND(tb), QN_BIND(d),
                                        QN_BIND(dsb), QN_BIND(dpb[0]), QN_BIND(dpb[1]), QN_BIND(dpb[2]), QN_BIND(dpb[0]),
                                        QN_BIND(dpb[0]), QN_BIND(dpb[0]), QN_BIND(dpb[0]), QN_BIND(dpb[0])),
                      &pd, sizeof pd, (uint64_t)G * ((H + bn_dn - 1) / bn_dn));
    qn_h_ok(h, qn_cmd_end(cmd), "end");
    qn_h_ok(h, qn_cmd_run(cmd), "run");
    float *got_a = qn_h_read(h, act, na_(T, K, as)), *got_d = qn_h_read(h, d, (size_t)T * (K + 1) * H);
    if (cm && !c.small && !c.mt && H % 8 == 0) { /* the f16-input twin (QN_X_F16) on x in f16: the same act, bit for bit */
        uint16_t *x16 = qn_h_alloc_bytes(h, (size_t)T * H * 2);
        for (size_t i = 0; i < (size_t)T * H; i++) x16[i] = f16_sat(x_h[i]);
        qn_buf *xb16 = qn_h_upload(h, "x f16", x16, (size_t)T * H * 2), *act2 = qn_h_output(h, "act f16 x", na_(T, K, as));
        qn_h_run(h, cm_pipe(h, k_gu_cmh[c.fgu], up_off),
                 QN_BINDS(QN_BIND(xb16), QN_BIND(list), QN_BIND(tiles), QN_BIND(tb), QN_BIND(act2), QN_BIND(pb[0]),
                          QN_BIND(pb[1]), QN_BIND(pb[2]), QN_BIND(pb[0]), QN_BIND(pb[0]), QN_BIND(pb[0]), QN_BIND(pb[0]),
                          QN_BIND(pb[0])),
                 &pc, sizeof pc, (uint64_t)G * ((I + bn_gu - 1) / bn_gu));
        size_t nbad = words_differ(h, qn_h_read(h, act2, na_(T, K, as)), got_a, na_(T, K, as));
        printf("%-4s gate_up with x in f16 (moe_q_gu_grouped_cm_h_%s) == with x in f32: %zu of %zu act words differ "
               "(T %u H %u I %u E %u K %u)\n", nbad ? "FAIL" : "ok", qn_ggml_type_name(tgu), nbad, na_(T, K, as), T, H, I,
               E, K);
        /* the down's twin on the act rows in f16, rows of max(I, Is) rounded up to 8 halves: the same d, bit for bit */
        uint32_t as8 = ((I > c.Is ? I : c.Is) + 7) / 8 * 8;
        size_t nq = (size_t)T * (K + 1), nd = nq * H;
        uint16_t *a16 = qn_h_alloc_bytes(h, nq * as8 * 2);
        for (size_t q = 0; q < nq; q++)
            for (uint32_t i = 0; i < as8; i++)
                a16[q * as8 + i] = i < as ? f16_sat(a_h[q * as + i]) : 0;
        qn_buf *ab16 = qn_h_upload(h, "act f16", a16, nq * as8 * 2), *d2 = qn_h_output(h, "d f16 act", nd);
        qn_pc_moe pd2 = pc;
        pd2.slot_bytes = dslot_b;
        pd2.act_stride = as8;
        /* a down kernel P on the act rows A (pc PC, NG workgroups) into D, the case's other bindings */
#define DOWN_RUN(P, A, D, PC, NG)                                                                              \
    qn_h_run(h, P, QN_BINDS(QN_BIND(A), QN_BIND(list), QN_BIND(tiles), QN_BIND(tb), QN_BIND(D), QN_BIND(dsb),        \
                            QN_BIND(dpb[0]), QN_BIND(dpb[1]), QN_BIND(dpb[2]), QN_BIND(dpb[0]), QN_BIND(dpb[0]),    \
                            QN_BIND(dpb[0]), QN_BIND(dpb[0]), QN_BIND(dpb[0])),                                     \
             &(PC), sizeof(PC), NG)
        DOWN_RUN(cm_pipe(h, k_dn_cmh[c.fdn], 0), ab16, d2, pd2, (uint64_t)G * ((H + bn_dn - 1) / bn_dn));
        nbad = words_differ(h, qn_h_read(h, d2, nd), got_d, nd);
        printf("%-4s down with act in f16 (moe_q_dn_grouped_cm_h_%s) == with act in f32: %zu of %zu d words differ\n",
               nbad ? "FAIL" : "ok", qn_ggml_type_name(tdn), nbad, nd);
        /* the model's split (forward.c moe_sh_early): the shared expert's tiles alone on the f32 act (QN_MOE_SHARED_ONLY,
         * grid of its tiles only), then the f16 twin on every other tile (QN_MOE_SKIP_SHARED): the same d, bit for bit */
        qn_buf *d3 = qn_h_output(h, "d split", nd);
        qn_pc_moe ps = pd;
        ps.flags |= QN_MOE_SHARED_ONLY;
        ps.tile_groups = (T + tile_t - 1) / tile_t;
        DOWN_RUN(dn, ain, d3, ps, (uint64_t)ps.tile_groups * ((H + bn_dn - 1) / bn_dn));
        pd2.flags |= QN_MOE_SKIP_SHARED;
        DOWN_RUN(cm_pipe(h, k_dn_cmh[c.fdn], 0), ab16, d3, pd2, (uint64_t)G * ((H + bn_dn - 1) / bn_dn));
#undef DOWN_RUN
        nbad = words_differ(h, qn_h_read(h, d3, nd), got_d, nd);
        printf("%-4s down split: the shared expert's tiles alone, then the others (f16 act): %zu of %zu d words differ\n",
               nbad ? "FAIL" : "ok", nbad, nd);
    }
    bool i8 = c.mt && c.mt->i8;
    if (i8) { /* the int8 twins: the reference on x and the routed act rows as the kernels quantize them */
        for (uint32_t t = 0; t < T; t++) {
            qn_h_quant_i8(x_h + (size_t)t * H, H, x_h + (size_t)t * H, NULL);
            for (uint32_t k = 0; k < K; k++) qn_h_quant_i8(a_h + ((size_t)t * (K + 1) + k) * as, I, a_h + ((size_t)t * (K + 1) + k) * as, NULL);
        }
    }
    for (int pass = 0; pass < (cm ? 2 : 1); pass++) { /* cm: f16-rounded reference, then the exact one */
    g_r16 = cm && pass == 0;
    double rel = cm && pass == 1 ? 1e-3 : i8 ? 5e-6 : 1e-6;
    size_t na = (size_t)T * (K + 1) * as, nd = (size_t)T * (K + 1) * H;
    float *ra = qn_h_alloc(h, na), *rd = qn_h_alloc(h, nd);
    double *sa = qn_h_alloc_bytes(h, na * sizeof(double)), *sd = qn_h_alloc_bytes(h, nd * sizeof(double));
    uint8_t *nan_a = qn_h_alloc_bytes(h, na), *nan_d = qn_h_alloc_bytes(h, nd);
    memset(nan_a, 0, na);
    memset(nan_d, 0, nd);
    for (size_t i = 0; i < na; i++) ra[i] = NAN;
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t k = 0; k <= K; k++) {
            size_t q = (size_t)t * (K + 1) + k;
            int e = k < K ? ids[t * K + k] : -1;
            const float *ar = a_h + q * as;
            for (uint32_t hh = 0; hh < H; hh++) {
                const float *wr = k < K ? dd + ((size_t)e * H + hh) * I : ds_h + (size_t)hh * c.Is;
                rd[q * H + hh] = (float)dot_s(wr, ar, k < K ? I : c.Is, &sd[q * H + hh]);
                nan_d[q * H + hh] = e >= 0 && e == c.absent;
            }
            if (k == K) continue;
            for (uint32_t i = 0; i < I; i++) {
                double s1, s2;
                double g = dot_s(dg + ((size_t)e * I + i) * H, x_h + (size_t)t * H, H, &s1);
                double u = dot_s(du + ((size_t)e * I + i) * H, x_h + (size_t)t * H, H, &s2);
                ra[q * as + i] = qn_ref_silu((float)g) * (float)u;
                sa[q * as + i] = s1 * fabs(u) + s2 * fabs(qn_ref_silu((float)g)) + fabs(ra[q * as + i]);
                nan_a[q * as + i] = e == c.absent;
            }
        }
    char what[200];
    snprintf(what, sizeof what, "%s gate/up, %s down: T %u H %u I %u Is %u E %u K %u tile_t %u groups %u%s%s%s",
             qn_ggml_type_name(tgu), qn_ggml_type_name(tdn), T, H, I, c.Is, E, K, tile_t, c.tile_groups,
             c.absent >= 0 ? " absent expert" : "", !cm ? "" : pass ? " [coopmat vs exact]" : " [coopmat vs f16-rounded]",
             i8 ? " [int8 vs int8-quantized inputs]" : "");
    char w2[240];
    double *wr = i8 ? &worst_i8 : !cm ? &worst : pass ? &worst_cm_exact : &worst_cm16;
    snprintf(w2, sizeof w2, "gate_up %s", what);
    *wr = fmax(*wr, check(h, w2, got_a, ra, sa, na, nan_a, rel));
    snprintf(w2, sizeof w2, "down %s", what);
    *wr = fmax(*wr, check(h, w2, got_d, rd, sd, nd, nan_d, rel));
    }
    g_r16 = false;
    qn_h_reset(h);
}

static bool has_coopmat(const struct qn_h *h)
{
    const struct qn_caps *c = qn_vk_caps(h->v);
    return !(qn_kernel_infos[QN_K_MOE_Q_GU_GROUPED_CM_Q4_K].features & ~c->features) && c->subgroup_size == 32 &&
           c->subgroup_min == 32 && c->subgroup_max == 32;
}

/* ---- --bench: the real 80B MoE layer (H 2048, I 512, E 512, K 10; Q4_K gate/up, Q6_K down), timing only ---- */

static void bench(struct qn_h *h, int iters)
{
    const uint32_t H = 2048, I = 512, E = 512, K = 10, Is = 512;
    uint64_t rgu, rdn;
    qn_h_ok(h, qn_ggml_row_bytes(QN_GGML_Q4_K, H, &rgu), "row bytes");
    qn_h_ok(h, qn_ggml_row_bytes(QN_GGML_Q6_K, I, &rdn), "row bytes");
    uint32_t up_off = (uint32_t)al16(rgu * I), slot_b = (uint32_t)al16(up_off + rgu * I), dslot_b = (uint32_t)al16(rdn * H);
    uint8_t *gu1 = qn_h_alloc_bytes(h, slot_b), *dn1 = qn_h_alloc_bytes(h, dslot_b);
    float *tmp = qn_h_alloc(h, (size_t)I * H);
    qn_h_quant_matrix(h, QN_GGML_Q4_K, I, H, gu1, tmp); /* one expert, copied into every slot (timing only) */
    qn_h_quant_matrix(h, QN_GGML_Q4_K, I, H, gu1 + up_off, tmp);
    qn_h_quant_matrix(h, QN_GGML_Q6_K, H, I, dn1, tmp);
    uint8_t *pools = qn_h_alloc_bytes(h, (size_t)E * slot_b), *dpools = qn_h_alloc_bytes(h, (size_t)E * dslot_b);
    int32_t *table = qn_h_alloc_bytes(h, (size_t)E * 4);
    for (uint32_t e = 0; e < E; e++) {
        memcpy(pools + (size_t)e * slot_b, gu1, slot_b);
        memcpy(dpools + (size_t)e * dslot_b, dn1, dslot_b);
        table[e] = (int32_t)e;
    }
    uint64_t range = qn_vk_caps(h->v)->max_storage_range;
    uint32_t spp = qn_bench_spp(slot_b, E, range), dspp = qn_bench_spp(dslot_b, E, range);
    qn_buf *pb[8], *dpb[8]; /* pools of spp (dspp) slots (every slot holds the same expert) */
    qn_bench_pools(h, "pool", slot_b, E, spp, pools, pb);
    qn_bench_pools(h, "dpool", dslot_b, E, dspp, dpools, dpb);
    qn_buf *tb = qn_h_upload(h, "table", table, (size_t)E * 4);
    static const uint32_t Ts[] = { 512, 2048 };
    for (size_t ti = 0; ti < 2; ti++) {
        uint32_t T = Ts[ti], as = 516;
        if ((uint64_t)T * (K + 1) * H * 4 > range) {
            printf("bench moe T=%u: skipped (d is larger than maxStorageBufferRange)\n", T);
            continue;
        }
        int32_t *ids = qn_h_alloc_bytes(h, (size_t)T * K * 4);
        for (uint32_t t = 0; t < T; t++)
            for (uint32_t k = 0; k < K; k++) ids[t * K + k] = (int32_t)((t * 7919u + k * 52u) % E); /* distinct per token */
        qn_buf *x = qn_h_input_f32(h, "x", (size_t)T * H, -1, 1, NULL);
        qn_buf *act = qn_h_input_f32(h, "act", (size_t)T * (K + 1) * as, -1, 1, NULL);
        qn_buf *d = qn_h_output(h, "d", (size_t)T * (K + 1) * H), *ds = qn_h_input_f32(h, "down_s", (size_t)H * Is, -1, 1, NULL);
        qn_buf *idb = qn_h_upload(h, "ids", ids, (size_t)T * K * 4);
        qn_pc_moe pc = { .T = T, .H = H, .I = I, .Is = Is, .E = E, .K = K, .layer = 0, .n_slots = E, .slots_per_pool = spp,
                         .slot_bytes = slot_b, .act_stride = as, .tile_t = 64, .max_tiles = QN_MOE_MAX_TILES(T, E, K, 64) };
        qn_buf *list = qn_h_buffer(h, "list", (size_t)(T * K + T) * 4), *tiles = qn_h_buffer(h, "tiles", (size_t)pc.max_tiles * 16);
        qn_h_run(h, qn_h_pipe_default(h, QN_K_MOE_SORT), QN_BINDS(QN_BIND(idb), QN_BIND(list), QN_BIND(tiles)), &pc,
                 sizeof pc, E + 1);
        qn_pc_moe pd = pc;
        pd.slot_bytes = dslot_b;
        pd.slots_per_pool = dspp;
        double flop = 2.0 * T * K * 3.0 * I * H;
        for (int cm = 0; cm <= (has_coopmat(h) ? 1 : 0); cm++) {
            qn_pipe *gu = cm ? qn_h_pipe(h, QN_K_MOE_Q_GU_GROUPED_CM_Q4_K, 128, 32, up_off, qn_vk_caps(h->v)->coopmat_nv_n)
                             : qn_h_pipe(h, QN_K_MOE_Q_GU_GROUPED_Q4_K, 256, 16, 32, up_off);
            qn_pipe *dn = cm ? qn_h_pipe(h, QN_K_MOE_Q_DN_GROUPED_CM_Q6_K, 128, 32, 0, qn_vk_caps(h->v)->coopmat_nv_n)
                             : qn_h_pipe(h, QN_K_MOE_Q_DN_GROUPED_Q6_K, 256, 16, 32, 0);
            uint32_t bg = cm ? 64 : 32, bd = cm ? 128 : 64;
            double tg = INFINITY, td = INFINITY;
            for (int it = 0; it < iters; it++) {
                tg = fmin(tg, qn_h_run(h, gu, QN_BINDS(QN_BIND(x), QN_BIND(list), QN_BIND(tiles), QN_BIND(tb), QN_BIND(act),
                                                       QN_BIND(pb[0]), QN_BIND(pb[1]), QN_BIND(pb[2]), QN_BIND(pb[3]),
                                                       QN_BIND(pb[4]), QN_BIND(pb[5]), QN_BIND(pb[6]), QN_BIND(pb[7])),
                                       &pc, sizeof pc, (uint64_t)pc.max_tiles * (I / bg)));
                td = fmin(td, qn_h_run(h, dn, QN_BINDS(QN_BIND(act), QN_BIND(list), QN_BIND(tiles), QN_BIND(tb), QN_BIND(d),
                                                       QN_BIND(ds), QN_BIND(dpb[0]), QN_BIND(dpb[1]), QN_BIND(dpb[2]),
                                                       QN_BIND(dpb[3]), QN_BIND(dpb[4]), QN_BIND(dpb[5]), QN_BIND(dpb[6]),
                                                       QN_BIND(dpb[7])),
                                       &pd, sizeof pd, (uint64_t)pc.max_tiles * (H / bd)));
            }
            printf("bench moe %-8s T=%-5u gate_up %8.3f ms, down %8.3f ms: %.3f ms per layer, %.1f TFLOP/s "
                   "(x48 layers: %.0f tok/s from the routed experts alone)\n", cm ? "coopmat" : "fma", T, tg, td,
                   tg + td, flop * (2.0 / 3.0 + 1.0 / 3.0) / (tg + td) * 1e-9, T / (48 * (tg + td) * 1e-3));
        }
    }
}

/* ---- --bench-cm [iters] [WG,BK,BT,NBUF[,PSW[,TS]] ...]: the tensor-core layouts of moe_qgrouped_cm.comp on the real 80B MoE
 * layer (H 2048, I 512, E 512, K 10, Is 512; Q4_K gate/up, Q6_K down, one expert's blocks in every slot, random
 * routings, moe_sort tiles of 64) at T 512, 2048, 4096: ms per layer (gate_up + down, no sort / combine) and
 * TFLOP/s (2 T K 3 I H flops), against the f32-FMA kernels (moe_qgrouped.comp); each layout's act and d are
 * compared with the FMA kernels' (max |cm - fma| / max |fma|: ~1e-3 from the f16 operands; "WRONG" past 2e-2). ---- */

static const char *cm_layouts[] = { "128,32,64,2", "128,32,64,2,0", "128,32,32,1,0", "128,32,64,1", "128,16,64,2",
                                    "128,64,64,1", "64,32,64,2", "256,32,64,1", "256,16,64,2", "128,32,128,1",
                                    "128,32,64,2,1,2", "128,32,128,1,1,2", "64,32,128,2,1,2", "128,16,128,2,1,2",
                                    "256,32,64,1,1,2", "128,32,64,1,1,2", "128,32,64,1,1,4", "128,32,128,1,1,4", "128,32,128,2,1,4",
                                    "64,32,64,2,1,4" };

struct cm_bench {
    uint32_t T, up_off, dslot_b, spp, dspp;
    qn_pc_moe pc, pd;
    qn_buf *x, *ain, *aout, *d, *ds, *list, *tiles, *tb, *pb[8], *dpb[8];
};

/* gate_up and down (bg, bd output rows per workgroup), best of iters: gate_up ms, *td down ms */
static double cm_bench_run(struct qn_h *h, const struct cm_bench *b, qn_pipe *gu, qn_pipe *dn, uint32_t bg, uint32_t bd,
                           int iters, double *td)
{
    const uint32_t I = b->pc.I, H = b->pc.H;
    double tg = INFINITY;
    *td = INFINITY;
    for (int it = 0; it < iters; it++) {
        tg = fmin(tg, qn_h_run(h, gu, QN_BINDS(QN_BIND(b->x), QN_BIND(b->list), QN_BIND(b->tiles), QN_BIND(b->tb),
                                               QN_BIND(b->aout), QN_BIND(b->pb[0]), QN_BIND(b->pb[1]), QN_BIND(b->pb[2]),
                                               QN_BIND(b->pb[3]), QN_BIND(b->pb[4]), QN_BIND(b->pb[5]), QN_BIND(b->pb[6]),
                                               QN_BIND(b->pb[7])),
                               &b->pc, sizeof b->pc, (uint64_t)b->pc.max_tiles * ((I + bg - 1) / bg)));
        *td = fmin(*td, qn_h_run(h, dn, QN_BINDS(QN_BIND(b->ain), QN_BIND(b->list), QN_BIND(b->tiles), QN_BIND(b->tb),
                                                 QN_BIND(b->d), QN_BIND(b->ds), QN_BIND(b->dpb[0]), QN_BIND(b->dpb[1]),
                                                 QN_BIND(b->dpb[2]), QN_BIND(b->dpb[3]), QN_BIND(b->dpb[4]),
                                                 QN_BIND(b->dpb[5]), QN_BIND(b->dpb[6]), QN_BIND(b->dpb[7])),
                                 &b->pd, sizeof b->pd, (uint64_t)b->pc.max_tiles * ((H + bd - 1) / bd)));
    }
    return tg;
}

/* max |got - ref| / max |ref| over the outputs the kernels write (act: rows k < K, columns < I; d: columns < H) */
static double cm_bench_diff(const float *got, const float *ref, uint32_t T, uint32_t K, uint32_t rows_k,
                            uint32_t stride, uint32_t cols)
{
    double md = 0, mr = 0;
    for (size_t q = 0; q < (size_t)T * (K + 1); q++) {
        if (q % (K + 1) >= rows_k) continue;
        for (uint32_t i = 0; i < cols; i++) {
            double r = ref[q * stride + i], g = got[q * stride + i];
            mr = fmax(mr, fabs(r));
            md = isfinite(g) ? fmax(md, fabs(g - r)) : INFINITY;
        }
    }
    return mr > 0 ? md / mr : md;
}

static void cm_bench_setup(struct qn_h *h, struct cm_bench *b, uint32_t T)
{
    const uint32_t H = 2048, I = 512, E = 512, K = 10, Is = 512, as = 516;
    uint64_t rgu, rdn;
    qn_h_ok(h, qn_ggml_row_bytes(QN_GGML_Q4_K, H, &rgu), "row bytes");
    qn_h_ok(h, qn_ggml_row_bytes(QN_GGML_Q6_K, I, &rdn), "row bytes");
    uint32_t up_off = (uint32_t)al16(rgu * I), slot_b = (uint32_t)al16(up_off + rgu * I), dslot_b = (uint32_t)al16(rdn * H);
    uint8_t *gu1 = qn_h_alloc_bytes(h, slot_b), *dn1 = qn_h_alloc_bytes(h, dslot_b);
    float *tmp = qn_h_alloc(h, (size_t)I * H);
    qn_h_quant_matrix(h, QN_GGML_Q4_K, I, H, gu1, tmp);
    qn_h_quant_matrix(h, QN_GGML_Q4_K, I, H, gu1 + up_off, tmp);
    qn_h_quant_matrix(h, QN_GGML_Q6_K, H, I, dn1, tmp);
    uint64_t range = qn_vk_caps(h->v)->max_storage_range;
    uint32_t spp = qn_bench_spp(slot_b, E, range), dspp = qn_bench_spp(dslot_b, E, range);
    uint8_t *pool = qn_h_alloc_bytes(h, (size_t)spp * slot_b), *dpool = qn_h_alloc_bytes(h, (size_t)dspp * dslot_b);
    for (uint32_t e = 0; e < spp; e++) memcpy(pool + (size_t)e * slot_b, gu1, slot_b);
    for (uint32_t e = 0; e < dspp; e++) memcpy(dpool + (size_t)e * dslot_b, dn1, dslot_b);
    int32_t *table = qn_h_alloc_bytes(h, (size_t)E * 4);
    for (uint32_t e = 0; e < E; e++) table[e] = (int32_t)e;
    qn_bench_pools(h, "pool", slot_b, E, spp, pool, b->pb); /* pools of spp (dspp) slots */
    qn_bench_pools(h, "dpool", dslot_b, E, dspp, dpool, b->dpb);
    b->tb = qn_h_upload(h, "table", table, (size_t)E * 4);
    int32_t *ids = qn_h_alloc_bytes(h, (size_t)T * K * 4);
    qn_h_random_ids(h, ids, T, K, E, K);
    b->x = qn_h_input_f32(h, "x", (size_t)T * H, -1, 1, NULL);
    b->ain = qn_h_input_f32(h, "act in", (size_t)T * (K + 1) * as, -1, 1, NULL);
    b->aout = qn_h_output(h, "act", (size_t)T * (K + 1) * as);
    b->d = qn_h_output(h, "d", (size_t)T * (K + 1) * H);
    b->ds = qn_h_input_f32(h, "down_s", (size_t)H * Is, -1, 1, NULL);
    qn_buf *idb = qn_h_upload(h, "ids", ids, (size_t)T * K * 4);
    b->pc = (qn_pc_moe){ .T = T, .H = H, .I = I, .Is = Is, .E = E, .K = K, .layer = 0, .n_slots = E,
                         .slots_per_pool = spp, .slot_bytes = slot_b, .act_stride = as, .tile_t = 64,
                         .max_tiles = QN_MOE_MAX_TILES(T, E, K, 64) };
    b->pd = b->pc;
    b->pd.slot_bytes = dslot_b;
    b->pd.slots_per_pool = dspp;
    b->list = qn_h_buffer(h, "list", (size_t)(T * K + T) * 4);
    b->tiles = qn_h_buffer(h, "tiles", (size_t)b->pc.max_tiles * 16);
    qn_h_run(h, qn_h_pipe_default(h, QN_K_MOE_SORT), QN_BINDS(QN_BIND(idb), QN_BIND(b->list), QN_BIND(b->tiles)), &b->pc,
             sizeof b->pc, E + 1);
    b->T = T, b->up_off = up_off, b->dslot_b = dslot_b, b->spp = spp, b->dspp = dspp;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Each layout (and the FMA kernels first) is checked once against the FMA outputs, then timed in rounds over all of
 * them after a warm-up of the GPU (so that clocks and caches do not favour the order): best of 3 rounds x iters. */
static void bench_cm(struct qn_h *h, int iters, const char **lay, int nlay)
{
    bool cmv = has_coopmat(h);
    if (!cmv)
        printf("bench-cm: device '%s' has no VK_NV_cooperative_matrix f16 shape with 32-wide subgroups: FMA only\n",
               qn_vk_caps(h->v)->name);
    const char *te = getenv("QNEXT_BENCH_T"); /* one T instead of 512, 2048, 4096 (a quick run elsewhere) */
    uint32_t Ts[3] = { 512, 2048, 4096 }, nT = 3;
    if (te && atoi(te) > 0) Ts[0] = (uint32_t)atoi(te), nT = 1;
    enum { MAXL = 32 };
    for (uint32_t ti = 0; ti < nT; ti++) {
        struct cm_bench b;
        cm_bench_setup(h, &b, Ts[ti]);
        uint32_t T = b.T, K = b.pc.K, H = b.pc.H, I = b.pc.I, as = b.pc.act_stride, n = 1;
        double flop = 2.0 * T * K * 3.0 * I * H, td;
        size_t na = (size_t)T * (K + 1) * as, nd = (size_t)T * (K + 1) * H;
        qn_pipe *gu[MAXL + 1], *dn[MAXL + 1];
        uint32_t bg[MAXL + 1], bd[MAXL + 1], shb[MAXL + 1];
        const char *name[MAXL + 1];
        gu[0] = qn_h_pipe(h, QN_K_MOE_Q_GU_GROUPED_Q4_K, 256, 16, 32, b.up_off), bg[0] = 32, name[0] = "fma";
        dn[0] = qn_h_pipe(h, QN_K_MOE_Q_DN_GROUPED_Q6_K, 256, 16, 32, 0), bd[0] = 64, shb[0] = 0;
        cm_bench_run(h, &b, gu[0], dn[0], bg[0], bd[0], 1, &td);
        float *ra = qn_h_read(h, b.aout, na), *rd = qn_h_read(h, b.d, nd);
        for (int li = 0; cmv && li < nlay && n <= MAXL; li++) {
            uint32_t s[QN_CM_MOE_NSPEC];
            if (qn_cm_moe_parse(qn_vk_caps(h->v), lay[li], b.up_off, s)) {
                printf("bench cm-moe %-16s skipped: %s\n", lay[li], qn_errmsg());
                continue;
            }
            gu[n] = qn_h_pipe_spec(h, QN_K_MOE_Q_GU_GROUPED_CM_Q4_K, s, QN_CM_MOE_NSPEC);
            s[2] = 0;
            dn[n] = qn_h_pipe_spec(h, QN_K_MOE_Q_DN_GROUPED_CM_Q6_K, s, QN_CM_MOE_NSPEC);
            bg[n] = s[0] / 2, bd[n] = s[0], shb[n] = qn_cm_moe_shared(s), name[n] = lay[li];
            qn_h_ok(h, qn_buf_fill(h->v, b.aout, 0, na * 4, 0x7fc00000u), "fill");
            qn_h_ok(h, qn_buf_fill(h->v, b.d, 0, nd * 4, 0x7fc00000u), "fill");
            cm_bench_run(h, &b, gu[n], dn[n], bg[n], bd[n], 1, &td);
            double ea = cm_bench_diff(qn_h_read(h, b.aout, na), ra, T, K, K, as, I);
            double ed = cm_bench_diff(qn_h_read(h, b.d, nd), rd, T, K, K + 1, H, H);
            bool bad = !(ea <= 2e-2 && ed <= 2e-2);
            printf("%-4s cm-moe %-16s T=%-5u vs fma: act %.1e, d %.1e (max |cm - fma| / max |fma|; %u B shared)\n",
                   bad ? "FAIL" : "ok", lay[li], T, ea, ed, shb[n]);
            h->failures += bad;
            h->checks++;
            n++;
        }
        double best_g[MAXL + 1], best_d[MAXL + 1], t0 = wall_s();
        while (wall_s() - t0 < 0.5) cm_bench_run(h, &b, gu[0], dn[0], bg[0], bd[0], 1, &td); /* clocks up */
        for (uint32_t i = 0; i < n; i++) best_g[i] = best_d[i] = INFINITY;
        for (int round = 0; round < 3; round++)
            for (uint32_t i = 0; i < n; i++) {
                double tg = cm_bench_run(h, &b, gu[i], dn[i], bg[i], bd[i], iters, &td);
                best_g[i] = fmin(best_g[i], tg), best_d[i] = fmin(best_d[i], td);
            }
        for (uint32_t i = 0; i < n; i++)
            printf("bench cm-moe %-16s T=%-5u gate_up %7.3f ms, down %7.3f ms: %7.3f ms per layer, %5.1f TFLOP/s\n",
                   name[i], T, best_g[i], best_d[i], best_g[i] + best_d[i], flop / (best_g[i] + best_d[i]) * 1e-9);
        qn_h_reset(h);
    }
}

/* ---- --bench-small [iters]: old (moe_sort tiles of 64 + moe_qgrouped.comp FMA tiles, + the tensor-core kernels where
 * available) vs new (moe_sort tiles of NT + moe_qsmall.comp, NT 4 / 8 / 16; "auto" marks qn_moe_small_nt's choice)
 * on the real 80B MoE layer: H 2048, I 512, E 512, K 10, Is 512, Q4_K gate/up, Q6_K down, all 512 experts in their
 * own slots (reads from DRAM), random routings, T 16 .. 1024. Per variant: sort, gate_up, down ms (best of iters;
 * combine is the same for both), and the weight bytes of the used experts over gate_up + down time. Each new
 * variant's act and d are compared with the FMA tiles' (max |new - old| / max |old|; "WRONG" past 1e-4). Then
 * moe_qmt.comp in a few layouts (bench_mt; T up to 2048), and the tensor-core small-pairs layout the model takes below
 * 60 pairs per expert. Env QNEXT_BENCH_SMALL_T=T,T,.. picks the T; QNEXT_BENCH_MT_ONLY=1 leaves out moe_qsmall. ---- */

struct sb_ctx {
    uint32_t slot_b, dslot_b, up_off;
    qn_buf *pb[8], *dpb[8], *tb, *x, *ain, *aout, *d, *ds, *idb, *list, *tiles;
    qn_pc_moe pc, pd;
};

static double sb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* one lap: sort into tiles of tile_t, then gate_up and down with gu / dn (bg, bd rows per workgroup); t[] = ms */
static void sb_lap(struct qn_h *h, struct sb_ctx *b, qn_pipe *gu, qn_pipe *dn, uint32_t bg, uint32_t bd, double t[3])
{
    t[0] = qn_h_run(h, qn_h_pipe_default(h, QN_K_MOE_SORT), QN_BINDS(QN_BIND(b->idb), QN_BIND(b->list), QN_BIND(b->tiles)),
                    &b->pc, sizeof b->pc, b->pc.E + 1);
    t[1] = qn_h_run(h, gu, QN_BINDS(QN_BIND(b->x), QN_BIND(b->list), QN_BIND(b->tiles), QN_BIND(b->tb), QN_BIND(b->aout),
                                    QN_BIND(b->pb[0]), QN_BIND(b->pb[1]), QN_BIND(b->pb[2]), QN_BIND(b->pb[3]),
                                    QN_BIND(b->pb[4]), QN_BIND(b->pb[5]), QN_BIND(b->pb[6]), QN_BIND(b->pb[7])),
                    &b->pc, sizeof b->pc, (uint64_t)b->pc.max_tiles * ((b->pc.I + bg - 1) / bg));
    t[2] = qn_h_run(h, dn, QN_BINDS(QN_BIND(b->ain), QN_BIND(b->list), QN_BIND(b->tiles), QN_BIND(b->tb), QN_BIND(b->d),
                                    QN_BIND(b->ds), QN_BIND(b->dpb[0]), QN_BIND(b->dpb[1]), QN_BIND(b->dpb[2]),
                                    QN_BIND(b->dpb[3]), QN_BIND(b->dpb[4]), QN_BIND(b->dpb[5]), QN_BIND(b->dpb[6]),
                                    QN_BIND(b->dpb[7])),
                    &b->pd, sizeof b->pd, (uint64_t)b->pc.max_tiles * ((b->pc.H + bd - 1) / bd));
}

/* laps with moe_sort tiles of tile_t: QNEXT_BENCH_WARM_MS (default 300) ms of them back to back first (an idle GPU
 * runs at low clocks: run 13's un-warmed numbers swung 2-4x), then the best of iters */
static void sb_run(struct qn_h *h, struct sb_ctx *b, uint32_t tile_t, qn_pipe *gu, qn_pipe *dn, uint32_t bg, uint32_t bd,
                   int iters, double t[3])
{
    b->pc.tile_t = b->pd.tile_t = tile_t;
    b->pc.max_tiles = b->pd.max_tiles = QN_MOE_MAX_TILES(b->pc.T, b->pc.E, b->pc.K, tile_t);
    const char *w = getenv("QNEXT_BENCH_WARM_MS");
    double warm = w ? atof(w) : 300, t0 = sb_now_ms(), l[3];
    do sb_lap(h, b, gu, dn, bg, bd, l);
    while (sb_now_ms() - t0 < warm);
    t[0] = t[1] = t[2] = INFINITY;
    for (int it = 0; it < iters; it++) {
        sb_lap(h, b, gu, dn, bg, bd, l);
        for (int k = 0; k < 3; k++) t[k] = fmin(t[k], l[k]);
    }
}

static double sb_diff(const float *got, const float *ref, size_t n)
{
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(ref[i])) continue; /* not an output (act rows of the shared expert, padding) */
        mr = fmax(mr, fabs(ref[i]));
        md = isfinite(got[i]) ? fmax(md, fabs((double)got[i] - ref[i])) : INFINITY;
    }
    return mr > 0 ? md / mr : md;
}

static void sb_pools(struct qn_h *h, struct sb_ctx *b, uint32_t E)
{
    const uint32_t H = 2048, I = 512;
    uint64_t rgu, rdn;
    qn_h_ok(h, qn_ggml_row_bytes(QN_GGML_Q4_K, H, &rgu), "row bytes");
    qn_h_ok(h, qn_ggml_row_bytes(QN_GGML_Q6_K, I, &rdn), "row bytes");
    b->up_off = (uint32_t)al16(rgu * I), b->slot_b = (uint32_t)al16(b->up_off + rgu * I), b->dslot_b = (uint32_t)al16(rdn * H);
    uint8_t *gu1 = qn_h_alloc_bytes(h, b->slot_b), *dn1 = qn_h_alloc_bytes(h, b->dslot_b);
    float *tmp = qn_h_alloc(h, (size_t)I * H);
    qn_h_quant_matrix(h, QN_GGML_Q4_K, I, H, gu1, tmp); /* one expert's blocks in every slot (timing only) */
    qn_h_quant_matrix(h, QN_GGML_Q4_K, I, H, gu1 + b->up_off, tmp);
    qn_h_quant_matrix(h, QN_GGML_Q6_K, H, I, dn1, tmp);
    uint64_t range = qn_vk_caps(h->v)->max_storage_range;
    uint32_t spp = qn_bench_spp(b->slot_b, E, range), dspp = qn_bench_spp(b->dslot_b, E, range);
    uint8_t *pool = qn_h_alloc_bytes(h, (size_t)spp * b->slot_b), *dpool = qn_h_alloc_bytes(h, (size_t)dspp * b->dslot_b);
    for (uint32_t e = 0; e < spp; e++) memcpy(pool + (size_t)e * b->slot_b, gu1, b->slot_b);
    for (uint32_t e = 0; e < dspp; e++) memcpy(dpool + (size_t)e * b->dslot_b, dn1, b->dslot_b);
    int32_t *table = qn_h_alloc_bytes(h, (size_t)E * 4);
    for (uint32_t e = 0; e < E; e++) table[e] = (int32_t)e;
    qn_bench_pools(h, "pool", b->slot_b, E, spp, pool, b->pb); /* pools of spp (dspp) slots, each its own buffer */
    qn_bench_pools(h, "dpool", b->dslot_b, E, dspp, dpool, b->dpb);
    b->tb = qn_h_upload(h, "table", table, (size_t)E * 4);
    b->pc = (qn_pc_moe){ .H = H, .I = I, .Is = 512, .E = E, .K = 10, .layer = 0, .n_slots = E, .slots_per_pool = spp,
                         .slot_bytes = b->slot_b, .act_stride = 516 };
    b->pd = b->pc;
    b->pd.slot_bytes = b->dslot_b;
    b->pd.slots_per_pool = dspp;
}

/* bench_small's moe_qmt.comp rows: the layout qn_moe_mt_spec picks (env QNEXT_MOE_MT_LAYOUT), then a few others
 * (WG, NT, NR, LK, CK for both parts), each checked against the FMA tiles' act and d; each layout also as the int8
 * twins (moe_q_*_mt_i8_*, "mt i8", where the device has the integer dot product; "WRONG" past 3e-2: the inputs'
 * int8 quantization). Env QNEXT_BENCH_MT_I8=1: of the f32 kernels only the first row. */
static void bench_mt(struct qn_h *h, struct sb_ctx *b, uint32_t T, double gb, const float *ref_a, const float *ref_d,
                     int iters)
{
    static const uint32_t lays[][6] = { { 0 }, { 256, 16, 2, 4, 256, 1 }, { 512, 16, 2, 4, 256, 0 },
                                        { 512, 16, 2, 4, 256, 1 }, { 256, 16, 1, 4, 256, 0 }, { 256, 16, 1, 4, 256, 1 },
                                        { 256, 8, 2, 4, 512, 1 }, { 256, 16, 2, 2, 256, 0 }, { 128, 16, 2, 4, 256, 0 },
                                        { 256, 32, 1, 4, 256, 0 }, { 256, 16, 2, 8, 256, 0 }, { 256, 16, 4, 4, 256, 0 },
                                        { 128, 16, 2, 4, 512, 0 }, { 256, 16, 2, 4, 1024, 0 }, { 256, 16, 2, 4, 1024, 1 },
                                        { 256, 8, 2, 4, 2048, 1 } };
    const uint32_t K = b->pc.K, H = b->pc.H, as = b->pc.act_stride;
    const struct qn_caps *caps = qn_vk_caps(h->v);
    bool i8only = getenv("QNEXT_BENCH_MT_I8") != NULL;
    if (qn_kernel_infos[QN_K_MOE_Q_GU_MT_Q4_K].features & ~caps->features) return;
    bool has8 = !((qn_kernel_infos[QN_K_MOE_Q_GU_MT_I8_Q4_K].features | qn_kernel_infos[QN_K_MOE_Q_DN_MT_I8_Q6_K].features) &
                  ~caps->features);
    for (size_t li = 0; li < sizeof lays / sizeof lays[0]; li++)
        for (int q = 0; q < 2; q++) {
            if ((q && !has8) || (!q && i8only && li)) continue;
            uint32_t sg[QN_MOE_MT_NSPEC], sd[QN_MOE_MT_NSPEC];
            (q ? qn_moe_mt_spec_i8 : qn_moe_mt_spec)(caps, true, b->up_off, sg);
            (q ? qn_moe_mt_spec_i8 : qn_moe_mt_spec)(caps, false, 0, sd);
            if (lays[li][0])
                for (int i = 0; i < 4; i++) sg[i] = sd[i] = lays[li][i];
            if (lays[li][0]) sg[5] = sd[5] = lays[li][4], sg[6] = sd[6] = lays[li][5];
            if (qn_moe_mt_shared(q, false, sd[1], sd[5]) > caps->max_shared) continue;
            qn_pipe *gu = qn_h_pipe_spec(h, q ? QN_K_MOE_Q_GU_MT_I8_Q4_K : QN_K_MOE_Q_GU_MT_Q4_K, sg, QN_MOE_MT_NSPEC);
            qn_pipe *dn = qn_h_pipe_spec(h, q ? QN_K_MOE_Q_DN_MT_I8_Q6_K : QN_K_MOE_Q_DN_MT_Q6_K, sd, QN_MOE_MT_NSPEC);
            double t[3];
            sb_run(h, b, qn_moe_mt_tile(gu, dn), gu, dn, qn_moe_mt_rows(gu), qn_moe_mt_rows(dn), iters, t);
            double da = sb_diff(qn_h_read(h, b->aout, (size_t)T * (K + 1) * as), ref_a, (size_t)T * (K + 1) * as);
            double dd = sb_diff(qn_h_read(h, b->d, (size_t)T * (K + 1) * H), ref_d, (size_t)T * (K + 1) * H);
            double lim = q ? 3e-2 : 1e-4;
            printf("bench small T=%-5u new mt%s %-18s:  sort %.3f + gate_up %.3f + down %.3f ms = %.3f ms (%.0f GB/s) "
                   "[%u,%u,%u,%u,%u%s] diff %.1e / %.1e%s\n", T, q ? " i8" : "   ", li ? "" : "(env or default)", t[0], t[1],
                   t[2], t[0] + t[1] + t[2], gb / ((t[1] + t[2]) * 1e-3), sg[0], sg[1], sg[2], sg[3], sg[5],
                   sg[6] ? " pf" : "", da, dd, da > lim || dd > lim ? " WRONG" : "");
        }
}

static void bench_small(struct qn_h *h, int iters)
{
    const uint32_t E = 512, K = 10, H = 2048, I = 512, as = 516;
    static const uint32_t Ts[] = { 16, 64, 128, 256, 512, 1024, 2048 };
    struct sb_ctx b;
    sb_pools(h, &b, E);
    const struct qn_caps *caps = qn_vk_caps(h->v);
    const char *onlyt = getenv("QNEXT_BENCH_SMALL_T"); /* "T,T,..": these T instead of the list */
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        uint32_t T = Ts[ti];
        if (onlyt) {
            const char *p = onlyt;
            for (size_t j = 0; j < ti && p; j++) p = strchr(p, ','), p = p ? p + 1 : NULL;
            T = p ? (uint32_t)atoi(p) : 0;
            if (!T) break;
        }
        int32_t *ids = qn_h_alloc_bytes(h, (size_t)T * K * 4);
        qn_h_random_ids(h, ids, T, K, E, K);
        uint32_t used = 0;
        for (uint32_t e = 0; e < E; e++) {
            bool u = false;
            for (uint32_t i = 0; i < T * K && !u; i++) u = ids[i] == (int32_t)e;
            used += u;
        }
        double gb = (double)used * (b.slot_b + b.dslot_b) * 1e-9;
        b.pc.T = b.pd.T = T;
        b.x = qn_h_input_f32(h, "x", (size_t)T * H, -1, 1, NULL);
        b.ain = qn_h_input_f32(h, "act in", (size_t)T * (K + 1) * as, -1, 1, NULL);
        b.aout = qn_h_output(h, "act", (size_t)T * (K + 1) * as);
        b.d = qn_h_output(h, "d", (size_t)T * (K + 1) * H);
        b.ds = qn_h_input_f32(h, "down_s", (size_t)H * 512, -1, 1, NULL);
        b.idb = qn_h_upload(h, "ids", ids, (size_t)T * K * 4);
        b.list = qn_h_buffer(h, "list", (size_t)(T * K + T) * 4);
        b.tiles = qn_h_buffer(h, "tiles", (size_t)QN_MOE_MAX_TILES(T, E, K, 4) * 16);
        double t[3];
        sb_run(h, &b, 64, qn_h_pipe(h, QN_K_MOE_Q_GU_GROUPED_Q4_K, 256, 16, 32, b.up_off),
               qn_h_pipe(h, QN_K_MOE_Q_DN_GROUPED_Q6_K, 256, 16, 32, 0), 32, 64, iters, t);
        float *ref_a = qn_h_read(h, b.aout, (size_t)T * (K + 1) * as), *ref_d = qn_h_read(h, b.d, (size_t)T * (K + 1) * H);
        for (size_t q = 0; q < (size_t)T * (K + 1); q++) /* act rows of the shared expert are not written */
            if (q % (K + 1) == K)
                for (uint32_t i = 0; i < as; i++) ref_a[q * as + i] = NAN;
        printf("bench small T=%-5u m=T*K/E %5.2f, %3u experts used (%.2f GB): old fma tiles 64:  sort %.3f + gate_up %.3f + "
               "down %.3f ms = %.3f ms (%.0f GB/s)\n", T, (double)T * K / E, used, gb, t[0], t[1], t[2], t[0] + t[1] + t[2],
               gb / ((t[1] + t[2]) * 1e-3));
        if (has_coopmat(h)) {
            uint32_t sp[QN_CM_MOE_NSPEC], sd[QN_CM_MOE_NSPEC];
            qn_cm_moe_spec(caps, b.up_off, sp);
            qn_cm_moe_spec(caps, 0, sd);
            qn_pipe *gu = qn_h_pipe_spec(h, QN_K_MOE_Q_GU_GROUPED_CM_Q4_K, sp, QN_CM_MOE_NSPEC);
            qn_pipe *dn = qn_h_pipe_spec(h, QN_K_MOE_Q_DN_GROUPED_CM_Q6_K, sd, QN_CM_MOE_NSPEC);
            sb_run(h, &b, 64, gu, dn, qn_pipe_spec(gu, 0) / 2, qn_pipe_spec(dn, 0), iters, t);
            printf("bench small T=%-5u old coopmat tiles 64:  sort %.3f + gate_up %.3f + down %.3f ms = %.3f ms (%.0f GB/s)\n",
                   T, t[0], t[1], t[2], t[0] + t[1] + t[2], gb / ((t[1] + t[2]) * 1e-3));
            if (qn_cm_moe_spec_small(caps, b.up_off, sp) && qn_cm_moe_spec_small(caps, 0, sd)) { /* the model's < 60 pairs */
                gu = qn_h_pipe_spec(h, QN_K_MOE_Q_GU_GROUPED_CM_Q4_K, sp, QN_CM_MOE_NSPEC);
                dn = qn_h_pipe_spec(h, QN_K_MOE_Q_DN_GROUPED_CM_Q6_K, sd, QN_CM_MOE_NSPEC);
                sb_run(h, &b, 64, gu, dn, qn_pipe_spec(gu, 0) / 2, qn_pipe_spec(dn, 0), iters, t);
                printf("bench small T=%-5u old coopmat small-pairs layout %u,%u,%u: sort %.3f + gate_up %.3f + down %.3f ms = "
                       "%.3f ms (%.0f GB/s)\n", T, sp[0], sp[1], sp[2], t[0], t[1], t[2], t[0] + t[1] + t[2],
                       gb / ((t[1] + t[2]) * 1e-3));
            }
        }
        if (getenv("QNEXT_BENCH_MT_ONLY")) { /* the fragment's short form: skip moe_qsmall */
            bench_mt(h, &b, T, gb, ref_a, ref_d, iters);
            continue;
        }
        uint32_t autont = qn_moe_small_nt(T, E, K);
        for (int ni = 0; ni < QN_MOE_SMALL_NNT; ni++) {
            uint32_t nt = qn_moe_small_nts[ni], sg[QN_MOE_SMALL_NSPEC], sd[QN_MOE_SMALL_NSPEC];
            qn_moe_small_spec(caps, true, nt, b.up_off, H, sg);
            qn_moe_small_spec(caps, false, nt, 0, I, sd);
            qn_pipe *gu = qn_h_pipe_spec(h, QN_K_MOE_Q_GU_SMALL_Q4_K, sg, QN_MOE_SMALL_NSPEC);
            qn_pipe *dn = qn_h_pipe_spec(h, QN_K_MOE_Q_DN_SMALL_Q6_K, sd, QN_MOE_SMALL_NSPEC);
            sb_run(h, &b, nt, gu, dn, qn_moe_small_rows(gu), qn_moe_small_rows(dn), iters, t);
            double da = sb_diff(qn_h_read(h, b.aout, (size_t)T * (K + 1) * as), ref_a, (size_t)T * (K + 1) * as);
            double dd = sb_diff(qn_h_read(h, b.d, (size_t)T * (K + 1) * H), ref_d, (size_t)T * (K + 1) * H);
            printf("bench small T=%-5u new small NT %-2u%s:  sort %.3f + gate_up %.3f + down %.3f ms = %.3f ms (%.0f GB/s) "
                   "[gate_up %u,%u,%u,xsn %u down %u,%u,%u,xsn %u] diff %.1e / %.1e%s\n", T, nt,
                   nt == autont ? " auto" : "     ", t[0], t[1], t[2], t[0] + t[1] + t[2], gb / ((t[1] + t[2]) * 1e-3), sg[0],
                   sg[2], sg[3], sg[5] ? sg[6] : 0, sd[0], sd[2], sd[3], sd[5] ? sd[6] : 0, da, dd,
                   da > 1e-4 || dd > 1e-4 ? " WRONG" : "");
        }
        bench_mt(h, &b, T, gb, ref_a, ref_d, iters);
    }
}

/* qsmall: moe_qsmall.comp (5 small cases, every format once as gate/up and once as down; L = 2 lanes per row
 * group at H 96 / I 64; tiles of tile_t vs nt slots: equal, tile_t > nt (several passes per tile), tile_t < nt; staged
 * and L1 inputs, and passes of more tokens than the stage holds (L1); an absent expert; skewed routings with experts
 * of 0, 1 and T tokens), one case above the model's switch (T K / E = 20), and the Q4_K_M mix at the real row lengths
 * with T K / E = 3.75 and 5 (the model's T 192 / 256) */
static void small_cases(struct qn_h *h)
{
    static const struct small_cfg s8 = { .nt = 8 }, s4 = { .nt = 4, .wg = 64, .rows = 8, .sgrows = 1, .l1 = true },
                                   s16 = { .nt = 16, .rows = 16, .sgrows = 1, .xsn = 5 }, s8l1 = { .nt = 8, .l1 = true };
    run_case(h, (struct mcase){ .fgu = 0, .fdn = 1, .T = 37, .H = 96, .I = 64, .Is = 40, .E = 12, .K = 3, .tile_t = 8,
                                .absent = -1, .small = &s8 }, false);
    run_case(h, (struct mcase){ .fgu = 1, .fdn = 3, .T = 13, .H = 256, .I = 256, .Is = 37, .E = 5, .K = 4, .tile_t = 7,
                                .tile_groups = 3, .absent = 2, .small = &s4 }, false);
    run_case(h, (struct mcase){ .fgu = 2, .fdn = 0, .T = 21, .H = 256, .I = 256, .Is = 48, .E = 16, .K = 4, .tile_t = 12,
                                .absent = 9, .small = &s16, .skew = true }, false);
    run_case(h, (struct mcase){ .fgu = 3, .fdn = 4, .T = 37, .H = 256, .I = 256, .Is = 40, .E = 12, .K = 3, .tile_t = 8,
                                .absent = -1, .small = &s8 }, false);
    run_case(h, (struct mcase){ .fgu = 4, .fdn = 2, .T = 13, .H = 256, .I = 256, .Is = 37, .E = 5, .K = 4, .tile_t = 7,
                                .tile_groups = 3, .absent = 2, .small = &s4 }, false);
    /* above the model's switch (T K / E = 20: QNEXT_MOE_SMALL=1 makes the model take it there too) */
    run_case(h, (struct mcase){ .fgu = 2, .fdn = 4, .T = 40, .H = 256, .I = 256, .Is = 64, .E = 4, .K = 2, .tile_t = 16,
                                .absent = -1, .small = &s16 }, false);
    run_case(h, (struct mcase){ .fgu = 2, .fdn = 4, .T = 24, .H = 2048, .I = 512, .Is = 512, .E = 64, .K = 10,
                                .tile_t = 8, .absent = -1, .small = &s8, .skew = true }, false);
    run_case(h, (struct mcase){ .fgu = 2, .fdn = 4, .T = 32, .H = 2048, .I = 512, .Is = 512, .E = 64, .K = 10,
                                .tile_t = 16, .tile_groups = 40, .absent = -1, .small = &s8l1 }, false);
}

/* mt: moe_qmt.comp: every format once as gate/up and once as down (H 96 / I 64 for the 32-element formats), in
 * layouts of 1, 2 and 8 lanes per row (the butterfly; clamped to the device's subgroup), 1-3 rows per lane group,
 * row blocks that do not divide the rows, tiles of tile_t vs NT slots (equal, more: several passes, fewer), an absent
 * expert, skewed routings (experts with 0, 1 and T tokens), Is not a multiple of 4 (the dense shared down's scalar
 * path) and rows longer than one staged chunk; then the Q4_K_M mix at the real row lengths (H 2048 = 8 chunks,
 * I 512) at T K / E = 3.75 and (f32 only) 20 (passes of NT 16 over tiles of 16).
 * i8: the int8 twins (QN_I8) in the same cases, against the reference on int8-quantized x / act (the shared
 * expert's f32 down on the exact act), with rows shorter than one chunk (CK 1024 over H 768, I 256) where the f32
 * kernels take CK 512. Bound 1e-6 + 5e-6 * S (the integer sums are exact; the per-run scale products and the K-quant
 * offsets' terms, which can exceed S a few times, are rounded in f32). */
static void mt_list(struct qn_h *h, bool i8)
{
    const struct mt_cfg d = { .i8 = i8 }, a = { .wg = 64, .nt = 8, .nr = 1, .lk = 1, .i8 = i8 },
                        b = { .wg = 32, .nt = 4, .nr = 3, .lk = 2, .upf = 1, .i8 = i8 },
                        c8 = { .wg = 128, .nt = 16, .nr = 1, .lk = 8, .upf = 1, .i8 = i8 },
                        big = { .nt = i8 ? 4 : 8, .ck = i8 ? 1024 : 512, .upf = 1, .i8 = i8 },
                        dpf = { .upf = 1, .i8 = i8 };
    run_case(h, (struct mcase){ .fgu = 0, .fdn = 1, .T = 37, .H = 96, .I = 64, .Is = 40, .E = 12, .K = 3, .tile_t = 8,
                                .absent = -1, .mt = &a }, false);
    run_case(h, (struct mcase){ .fgu = 1, .fdn = 0, .T = 13, .H = 96, .I = 96, .Is = 37, .E = 5, .K = 4, .tile_t = 7,
                                .tile_groups = 3, .absent = 2, .mt = &b }, false);
    run_case(h, (struct mcase){ .fgu = 2, .fdn = 3, .T = 21, .H = 512, .I = 256, .Is = 48, .E = 16, .K = 4, .tile_t = 12,
                                .absent = 9, .mt = &c8, .skew = true }, false);
    run_case(h, (struct mcase){ .fgu = 3, .fdn = 4, .T = 37, .H = 256, .I = 256, .Is = 40, .E = 12, .K = 3, .tile_t = 16,
                                .absent = -1, .mt = &d }, false);
    run_case(h, (struct mcase){ .fgu = 4, .fdn = 2, .T = 13, .H = 256, .I = 256, .Is = 37, .E = 5, .K = 4, .tile_t = 20,
                                .tile_groups = 3, .absent = 2, .mt = &dpf }, false);
    run_case(h, (struct mcase){ .fgu = 2, .fdn = 4, .T = 40, .H = 768, .I = 256, .Is = 300, .E = 6, .K = 2, .tile_t = 32,
                                .absent = -1, .mt = &big, .skew = true }, false);
    run_case(h, (struct mcase){ .fgu = 2, .fdn = 4, .T = 24, .H = 2048, .I = 512, .Is = 512, .E = 64, .K = 10,
                                .tile_t = 16, .absent = -1, .mt = &d, .skew = true }, false);
    if (!i8)
        run_case(h, (struct mcase){ .fgu = 2, .fdn = 4, .T = 64, .H = 2048, .I = 512, .Is = 512, .E = 32, .K = 10,
                                    .tile_t = 16, .tile_groups = 40, .absent = -1, .mt = &dpf }, false);
}

static void mt_cases(struct qn_h *h) { mt_list(h, false); }

/* mt_i8: mt_list's int8 cases where the device has the integer dot product (false: skipped, said so) */
static bool mt_i8_cases(struct qn_h *h)
{
    if ((qn_kernel_infos[QN_K_MOE_Q_GU_MT_I8_Q4_K].features | qn_kernel_infos[QN_K_MOE_Q_DN_MT_I8_Q6_K].features) &
        ~qn_vk_caps(h->v)->features) {
        printf("SKIP moe_qmt int8: device '%s' lacks the integer dot product: moe_q_*_mt_i8_* NOT tested here\n",
               qn_vk_caps(h->v)->name);
        return false;
    }
    mt_list(h, true);
    return true;
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "moe_qgrouped", argc, argv);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench-cm")) { /* --bench-cm [iters] [WG,BK,BT,NBUF[,PSW[,TS]] ...] */
            int it = i + 1 < argc && atoi(argv[i + 1]) > 0 && !strchr(argv[i + 1], ',') ? atoi(argv[++i]) : 5;
            bool own = i + 1 < argc;
            bench_cm(&h, it, own ? (const char **)argv + i + 1 : cm_layouts,
                     own ? argc - i - 1 : (int)(sizeof cm_layouts / sizeof cm_layouts[0]));
            return qn_h_close(&h);
        }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench-small")) {
            bench_small(&h, i + 1 < argc && atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 5);
            return qn_h_close(&h);
        }
    for (int i = 1; i < argc; i++) /* one moe_qsmall case: --small-case T,H,I,Is,E,K,fgu,fdn,nt,tile_t[,skew] */
        if (!strcmp(argv[i], "--small-case") && i + 1 < argc) {
            unsigned v[11] = { 0 };
            struct small_cfg sc = { 0 };
            if (sscanf(argv[i + 1], "%u,%u,%u,%u,%u,%u,%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                       &v[7], &v[8], &v[9], &v[10]) < 10 || v[6] >= NFMTS || v[7] >= NFMTS ||
                qn_moe_small_nt_index(v[8]) < 0 || !v[9] || (v[10] && v[4] < v[5] + 3)) {
                fprintf(stderr, "--small-case T,H,I,Is,E,K,fgu,fdn,nt (4/8/16),tile_t[,skew (E >= K + 3)]\n");
                return 2;
            }
            sc.nt = v[8];
            run_case(&h, (struct mcase){ .fgu = v[6], .fdn = v[7], .T = v[0], .H = v[1], .I = v[2], .Is = v[3], .E = v[4],
                                         .K = v[5], .tile_t = v[9], .absent = -1, .small = &sc, .skew = v[10] }, false);
            return qn_h_close(&h);
        }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--mt")) { /* the moe_qmt.comp cases only */
            if (qn_kernel_infos[QN_K_MOE_Q_GU_MT_Q4_K].features & ~qn_vk_caps(h.v)->features) {
                printf("SKIP moe_qmt: device '%s' lacks the subgroup features of moe_q_*_mt_* (no fallback variant)\n",
                       qn_vk_caps(h.v)->name);
                qn_h_close(&h);
                return 77;
            }
            mt_cases(&h);
            printf("moe_qmt: worst max err / S = %.3g\n", worst);
            return qn_h_close(&h);
        }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--mt-i8")) { /* the int8 twins' cases only */
            if (!mt_i8_cases(&h)) {
                qn_h_close(&h);
                return 77;
            }
            printf("moe_qmt int8: worst max err / S = %.3g (bound 5e-6)\n", worst_i8);
            return qn_h_close(&h);
        }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--small")) { /* the moe_qsmall.comp cases only */
            small_cases(&h);
            printf("moe_qsmall: worst max err / S = %.3g\n", worst);
            return qn_h_close(&h);
        }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench")) {
            bench(&h, i + 1 < argc && atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 5);
            return qn_h_close(&h);
        }
    /* the grouped-expert self-check forward.c runs before it uses tensor cores, here on the FMA kernels (row
     * blocks 32 / 64): its case must pass; gate_up made with the wrong up offset (up = gate) must fail */
    int rc1 = qn_cm_moe_check_pipes(h.v, qn_h_pipe(&h, QN_K_MOE_Q_GU_GROUPED_Q8_0, 256, 16, 32, 4352),
                                    qn_h_pipe(&h, QN_K_MOE_Q_DN_GROUPED_Q8_0, 256, 16, 32, 0), 2, 1);
    int rc2 = qn_cm_moe_check_pipes(h.v, qn_h_pipe(&h, QN_K_MOE_Q_GU_GROUPED_Q8_0, 256, 16, 32, 0),
                                    qn_h_pipe(&h, QN_K_MOE_Q_DN_GROUPED_Q8_0, 256, 16, 32, 0), 2, 1);
    h.checks += 2;
    h.failures += (rc1 != 0) + (rc2 == 0);
    printf("%-4s grouped-expert self-check on the FMA kernels passes (rc %d)\n%-4s ... and fails on a wrong up "
           "offset (rc %d)\n", rc1 ? "FAIL" : "ok", rc1, rc2 ? "ok" : "FAIL", rc2);
    bool cmv = has_coopmat(&h);
    if (!cmv)
        printf("SKIP coopmat: device '%s' has no VK_NV_cooperative_matrix with an f16 16x16x16 / 16x8x16 subgroup shape (or "
               "subgroups are not 32 wide): the tensor-core variants moe_q_*_grouped_cm_* are NOT tested here\n",
               qn_vk_caps(h.v)->name);
    bool cm_only = false; /* --cm-only: the tensor-core cases alone (a device run's short form) */
    for (int i = 1; i < argc; i++) cm_only = cm_only || !strcmp(argv[i], "--cm-only");
    for (int cm = cm_only ? 1 : 0; cm <= (cmv ? 1 : 0); cm++) {
        for (uint32_t f = 0; f < NFMTS; f++) {
            uint32_t qk = qn_ggml_type(qtypes[f])->blck, HH = qk == 32 ? 96 : 256, II = qk == 32 ? 64 : 256;
            run_case(&h, (struct mcase){ .fgu = f, .fdn = f, .T = 37, .H = HH, .I = II, .Is = 40, .E = 12, .K = 3,
                                         .absent = -1 }, cm);
            run_case(&h, (struct mcase){ .fgu = f, .fdn = (f + 2) % NFMTS, .T = 13, .H = 256, .I = 256, .Is = 37,
                                         .E = 5, .K = 4, .tile_t = 7, .tile_groups = 3, .absent = 2 }, cm);
        }
        /* the Q4_K_M mix at the real row lengths, more tokens than one tile (and one 32-pair pass) for some experts */
        run_case(&h, (struct mcase){ .fgu = 2, .fdn = 4, .T = 48, .H = 2048, .I = 512, .Is = 512, .E = 8, .K = 8,
                                     .absent = -1 }, cm);
    }
    if (!cm_only) small_cases(&h);
    printf("moe_qgrouped: worst max err / S = %.3g", worst);
    if (cmv) printf("; coopmat: %.3g vs the f16-rounded reference, %.3g vs the exact one", worst_cm16, worst_cm_exact);
    printf("\n");
    return qn_h_close(&h);
}
