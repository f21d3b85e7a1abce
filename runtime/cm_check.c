/* cm_check.c — a self-check of a tensor-core matmul pipeline (qmatmul_cm.comp) at pipeline setup: forward.c
 * uses the tensor-core prefill only if this passes, so a driver that lists a cooperative-matrix shape but
 * computes something else falls back to the f32-FMA kernels instead of producing wrong tokens.
 *
 * The case: Y[96, 80] = X[96, 96] · W[80, 96]^T with f32 weights (matmul_cm_f32), odd against the 64 and 128
 * tiles (partial tiles in m and n), values k / 256 for integers |k| <= 256: exact in f16, their products exact
 * in f32, and every partial sum (a multiple of 2^-16 below 96 in magnitude) exact too, so the GPU result must
 * equal the C sum bit for bit in any summation order.
 * qn_cm_moe_selfcheck does the same for the grouped-expert kernels (moe_qgrouped_cm.comp, Q8_0 variants, the
 * layout qn_cm_moe_spec picks): one expert in one slot, 20 (token, k) pairs in three sort tiles of 8, 8, 4 (tile_t
 * 8: merged into one pass when the kernel's BT allows, else several passes), Q8_0 weights with d = 2^-8 (exact
 * f16 values), gate_up checked to 1e-5 relative (silu) and down bit for bit.
 * qn_cm_moe_spec: that kernel's spec constants, from env QNEXT_CM_MOE_TILE or the defaults; qn_cm_moe_spec_small /
 * qn_cm_moe_big_pairs: the second layout for calls of few pairs per expert and where it stops. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "qn_err.h"
#include "qn_log.h"
#include "qn_rng.h"

enum { CM_M = 96, CM_N = 80, CM_K = 96 };

static void fill_exact(qn_rng *rng, float *a, size_t n)
{
    for (size_t i = 0; i < n; i++) a[i] = (float)((int)(qn_rng_u64(rng) % 513u) - 256) / 256.0f;
}

static int run_check(qn_vk *v, const qn_pipe *p, const float *x, const float *w, float *y)
{
    qn_buf *bx = NULL, *bw = NULL, *by = NULL;
    qn_cmd *c = NULL;
    qn_pc_matmul pc = { .M = CM_M, .N = CM_N, .K = CM_K, .ldx = CM_K, .ldy = CM_N };
    uint64_t groups = qn_mm_tiles(p, CM_M, CM_N);
    int rc = qn_buf_create(v, QN_MEM_DEVICE, sizeof(float) * CM_M * CM_K, "cm check x", &bx);
    if (!rc) rc = qn_buf_create(v, QN_MEM_DEVICE, sizeof(float) * CM_N * CM_K, "cm check w", &bw);
    if (!rc) rc = qn_buf_create(v, QN_MEM_DEVICE, sizeof(float) * CM_M * CM_N, "cm check y", &by);
    if (!rc) rc = qn_buf_write(v, bx, 0, x, sizeof(float) * CM_M * CM_K);
    if (!rc) rc = qn_buf_write(v, bw, 0, w, sizeof(float) * CM_N * CM_K);
    if (!rc) rc = qn_buf_fill(v, by, 0, sizeof(float) * CM_M * CM_N, 0x7fc00000u); /* NaN where nothing is written */
    if (!rc) rc = qn_cmd_create(v, &c);
    if (!rc) rc = qn_cmd_begin(c);
    if (!rc) rc = qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND(bw), QN_BIND(bx), QN_BIND(by)), &pc, sizeof pc, groups);
    if (!rc) rc = qn_cmd_end(c);
    if (!rc) rc = qn_cmd_run(c);
    if (!rc) rc = qn_buf_read(v, by, 0, y, sizeof(float) * CM_M * CM_N);
    qn_cmd_destroy(&c);
    qn_buf_destroy(v, &bx);
    qn_buf_destroy(v, &bw);
    qn_buf_destroy(v, &by);
    return rc;
}

int qn_cm_selfcheck(qn_vk *v, const qn_pipe *p)
{
    float *x = malloc(sizeof(float) * CM_M * CM_K), *w = malloc(sizeof(float) * CM_N * CM_K);
    float *y = malloc(sizeof(float) * CM_M * CM_N);
    int rc = x && w && y ? 0 : qn_fail(-ENOMEM, "out of memory");
    qn_rng rng;
    qn_rng_seed(&rng, 0x636d6368ull);
    if (!rc) {
        fill_exact(&rng, x, (size_t)CM_M * CM_K);
        fill_exact(&rng, w, (size_t)CM_N * CM_K);
        rc = run_check(v, p, x, w, y);
    }
    for (int m = 0; !rc && m < CM_M; m++)
        for (int n = 0; !rc && n < CM_N; n++) {
            double s = 0;
            for (int k = 0; k < CM_K; k++) s += (double)x[m * CM_K + k] * w[n * CM_K + k];
            if (!(y[m * CM_N + n] == (float)s))
                rc = qn_fail(QN_E_UNSUPPORTED, "tensor-core matmul self-check (%s): Y[%d, %d] = %g, expected %g",
                             qn_pipe_info(p)->name, m, n, (double)y[m * CM_N + n], s);
        }
    free(x);
    free(w);
    free(y);
    return rc;
}

/* ---- the grouped-expert kernels ---- */

enum { MO_T = 20, MO_NT = 3 /* tiles */, MO_H = 64, MO_I = 64, MO_AS = 68, MO_ROWB = 68 /* 2 Q8_0 blocks */,
       MO_PART = MO_I * MO_ROWB };

/* rows [rows, 64] of Q8_0 blocks with d = 2^-8 and random quants into dst; their values into w */
static void q8_rows(qn_rng *rng, uint32_t rows, uint8_t *dst, float *w)
{
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t b = 0; b < 2; b++) {
            uint8_t *blk = dst + r * MO_ROWB + b * 34;
            blk[0] = 0x00, blk[1] = 0x1c; /* f16 2^-8 */
            for (int i = 0; i < 32; i++) {
                int q = (int)(qn_rng_u64(rng) % 255u) - 127;
                blk[2 + i] = (uint8_t)(int8_t)q;
                w[r * MO_H + b * 32 + i] = (float)q / 256.0f;
            }
        }
}

struct mo_bufs { qn_buf *x, *list, *tiles, *table, *out, *pool, *ds; };

static int mo_run(qn_vk *v, const qn_pipe *p, const struct mo_bufs *b, const qn_pc_moe *pc, bool gu, uint64_t groups)
{
    qn_cmd *c = NULL;
    int rc = qn_cmd_create(v, &c);
    if (!rc) rc = qn_cmd_begin(c);
    struct qn_bind P = QN_BIND(b->pool);
    if (!rc && gu)
        rc = qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND(b->x), QN_BIND(b->list), QN_BIND(b->tiles), QN_BIND(b->table),
                                              QN_BIND(b->out), P, P, P, P, P, P, P, P), pc, sizeof *pc, groups);
    if (!rc && !gu)
        rc = qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND(b->x), QN_BIND(b->list), QN_BIND(b->tiles), QN_BIND(b->table),
                                              QN_BIND(b->out), QN_BIND(b->ds), P, P, P, P, P, P, P, P), pc, sizeof *pc,
                               groups);
    if (!rc) rc = qn_cmd_end(c);
    if (!rc) rc = qn_cmd_run(c);
    qn_cmd_destroy(&c);
    return rc;
}

static int mo_compare(const qn_pipe *p, const float *got, const double *ref, uint32_t stride, uint32_t n, double rel)
{
    for (uint32_t t = 0; t < MO_T; t++)
        for (uint32_t i = 0; i < n; i++) {
            double g = got[2 * t * stride + i], r = ref[t * n + i]; /* pair q = 2t (K = 1) */
            if (!(fabs(g - r) <= rel * fabs(r) + (rel > 0 ? 1e-12 : 0)))
                return qn_fail(QN_E_UNSUPPORTED, "tensor-core grouped-expert self-check (%s): pair %u, row %u = %g, "
                               "expected %g", qn_pipe_info(p)->name, 2 * t, i, g, r);
        }
    return 0;
}

uint32_t qn_cm_moe_shared(const uint32_t spec[QN_CM_MOE_NSPEC])
{
    uint32_t wg = spec[0], bk = spec[1], bt = spec[4], nbuf = spec[5], ts = spec[7];
    bool in_w = nbuf * (bk + 8) >= 20 * ts; /* the epilogue's staging inside the weight tile (CS_IN_W) */
    return 2 * nbuf * (bt + wg) * (bk + 8) + (in_w ? 0 : 40 * wg * ts) + 8 * bt;
}

int qn_cm_moe_parse(const struct qn_caps *c, const char *s, uint32_t part_off, uint32_t spec[QN_CM_MOE_NSPEC])
{
    /* s NULL (the fallback default) and the fields left out of s: H100 run 14, full 80B Q4_K_M, 4096-token prompt in
     * one chunk: 3644 tok/s (128,32,64,2,1,1: 3108); run 68: NBUF 2 once the epilogue's staging moved into the weight
     * tile (CS_IN_W; the same 41,984 bytes): the kernel 5.55 vs 6.04 ms per layer at T 4096, prefill 7565 vs 7366 */
    unsigned wg = 128, bk = 32, bt = 128, nbuf = 2, psw = 1, ts = 4;
    int n = s ? sscanf(s, "%u,%u,%u,%u,%u,%u", &wg, &bk, &bt, &nbuf, &psw, &ts) : 6;
    if (n < 4 || !wg || wg % 32 || !bk || bk % 16 || bk > 256 || !ts || !bt || bt % (16 * ts) || bt > 128 ||
        (nbuf != 1 && nbuf != 2) || psw > 1 || wg * ts > c->max_wg_invocations || wg > c->max_wg_size[0] ||
        ts > c->max_wg_size[1])
        return qn_fail(-EINVAL, "grouped-expert tensor-core layout '%s': want WG,BK,BT,NBUF[,PSW[,TS]] with WG a multiple "
                       "of 32 (WG * TS <= %u), BK of 16, BT of 16 TS up to 128, NBUF 1 or 2, PSW 0 or 1", s ? s : "(default)",
                       c->max_wg_invocations);
    uint32_t v[QN_CM_MOE_NSPEC] = { wg, bk, part_off, c->coopmat_nv_n ? c->coopmat_nv_n : 16, bt, nbuf, psw, ts };
    if (qn_cm_moe_shared(v) > c->max_shared)
        return qn_fail(-EINVAL, "grouped-expert tensor-core layout %u,%u,%u,%u,%u,%u needs %u bytes of shared memory "
                       "(device: %u)", wg, bk, bt, nbuf, psw, ts, qn_cm_moe_shared(v), c->max_shared);
    for (int i = 0; i < QN_CM_MOE_NSPEC; i++) spec[i] = v[i];
    return 0;
}

/* The default layout where it fits (512 invocations, 31,760 bytes of shared memory), else qn_cm_moe_parse's. H100 runs
 * 85-87, full 80B Q4_K_M: 256 weight rows per workgroup (twice the x tile's reuse; one buffer, so the staging fits)
 * takes the kernel from 5.45 to 4.59 ms per layer at T 4096 and prefill from 7953-8001 to 8522-8571 tok/s (7317-7320
 * to 7808-7821 at 3072), logits bit-identical; half the rows per workgroup (WG 64) instead: 9.48 ms. */
static const char *const cm_moe_default = "256,32,128,1,1,2";

void qn_cm_moe_spec(const struct qn_caps *c, uint32_t part_off, uint32_t spec[QN_CM_MOE_NSPEC])
{
    const char *e = getenv("QNEXT_CM_MOE_TILE");
    if (e && qn_cm_moe_parse(c, e, part_off, spec)) {
        QN_WARN("QNEXT_CM_MOE_TILE: %s; using the defaults", qn_errmsg());
        e = NULL;
    }
    if (!e && qn_cm_moe_parse(c, cm_moe_default, part_off, spec)) qn_cm_moe_parse(c, NULL, part_off, spec);
}

/* The small-call layout (forward.h's moe_qgu_gcm2): env QNEXT_CM_MOE_TILE_SMALL ("0" or "": none), else 256,32,32,1,1,1,
 * or 128,32,64,1,1,4 where that does not fit. Fields left out of a layout string take the
 * default layout's (TS 4: "128,32,64,1" is 128,32,64,1,1,4). H100, full 80B Q4_K_M, one call per prompt, tok/s:
 *   run 18a: 128,32,64,1,1,4 below 60 pairs per expert: 1770 / 3519 at 512 / 2048 tokens against 1653 / 3418 with the
 *            default layout only; with two k-steps of loads in flight (PSW 3, since removed) 1721 / 3463;
 *   run 18c: 256,32,64,1,1,2: 996 / 1258 / 1711 / 2130 / 3873 at 192 / 256 / 384 / 512 / 2048 tokens against 807 /
 *            1029 / 1418 / 1773 / 3522 (128,32,64,1,1,4) and 747 / 952 / 1319 / 1653 / 3418 (none); 64,32,64,1,1,4
 *            884 / 1123 / 1532 / 1901 / 3645; at 4096 tokens (80 pairs per expert) it equals the default layout
 *            (3655 vs 3651), so the switch stays at 60. The warmed bench agrees (T 2048: 3.71 ms per layer against
 *            4.74 and 5.28).
 *   run 93 (warmed bench, ms per layer at T 512 / 1024 / 1536): 256,32,32,1,1,1 2.26 / 2.38 / 3.19 against 3.30 / 3.44 /
 *            3.56 (256,32,64,1,1,2) and 3.44 / 3.64 / 3.79 (the default layout); run 94 in the model: 512 / 1024
 *            unchanged (4613-4638 / 5534-5560 against 4590-4645 / 5499-5558), 1536 tokens (30 pairs per expert) 5951
 *            against 5716 with the default layout, 2048 (40 pairs) 6460 against 6864: the switch at 32. */
static const char *const cm_moe_small_default[2] = { "256,32,32,1,1,1", "128,32,64,1,1,4" };

bool qn_cm_moe_spec_small(const struct qn_caps *c, uint32_t part_off, uint32_t spec[QN_CM_MOE_NSPEC])
{
    const char *e = getenv("QNEXT_CM_MOE_TILE_SMALL");
    if (!e) { /* the first default that fits the device, quietly */
        for (int i = 0; i < 2; i++)
            if (!qn_cm_moe_parse(c, cm_moe_small_default[i], part_off, spec)) return true;
        return false;
    }
    if (!*e || !strcmp(e, "0")) return false;
    if (qn_cm_moe_parse(c, e, part_off, spec)) {
        QN_WARN("QNEXT_CM_MOE_TILE_SMALL: %s; no second layout", qn_errmsg());
        return false;
    }
    return true;
}

uint32_t qn_cm_moe_big_pairs(void)
{
    const char *e = getenv("QNEXT_CM_MOE_BIG_PAIRS"); /* T K / E at and above which the default layout runs */
    long v = e && *e ? strtol(e, NULL, 10) : 32;     /* 80B (K 10, E 512): T >= 1639 (run 87: 60 before; at 2048
                                                        tokens the default layout 6676 tok/s, the small one 6510;
                                                        run 94: 30 with the small layout above) */
    return v < 0 ? 0 : v > 1000000 ? 1000000 : (uint32_t)v;
}

int qn_cm_moe_selfcheck(qn_vk *v, uint32_t cn)
{
    uint32_t s[QN_CM_MOE_NSPEC];
    qn_cm_moe_spec(qn_vk_caps(v), MO_PART, s);
    s[3] = cn;
    return qn_cm_moe_selfcheck_spec(v, s);
}

int qn_cm_moe_selfcheck_spec(qn_vk *v, const uint32_t spec[QN_CM_MOE_NSPEC])
{
    qn_pipe *gu = NULL, *dn = NULL;
    uint32_t s[QN_CM_MOE_NSPEC];
    memcpy(s, spec, sizeof s);
    s[2] = MO_PART;
    int rc = qn_pipe_get(v, QN_K_MOE_Q_GU_GROUPED_CM_Q8_0, s, QN_CM_MOE_NSPEC, &gu);
    s[2] = 0;
    if (!rc) rc = qn_pipe_get(v, QN_K_MOE_Q_DN_GROUPED_CM_Q8_0, s, QN_CM_MOE_NSPEC, &dn);
    /* row blocks: WG / 2 gate_up rows, WG down rows per workgroup */
    return rc ? rc : qn_cm_moe_check_pipes(v, gu, dn, (MO_I + s[0] / 2 - 1) / (s[0] / 2), (MO_H + s[0] - 1) / s[0]);
}

int qn_cm_moe_check_pipes(qn_vk *v, const qn_pipe *gu, const qn_pipe *dn, uint64_t gu_groups, uint64_t dn_groups)
{
    uint8_t *slot = calloc(2 * MO_PART, 1), *dslot = calloc(MO_PART, 1);
    float *wg = malloc(sizeof(float) * MO_I * MO_H * 3), *x = malloc(sizeof(float) * MO_T * 2 * MO_AS);
    float *out = malloc(sizeof(float) * MO_T * 2 * MO_AS * 2);
    double *ref = malloc(sizeof(double) * MO_T * MO_H);
    struct mo_bufs b = { 0 };
    int rc = slot && dslot && wg && x && out && ref ? 0 : qn_fail(-ENOMEM, "out of memory");
    qn_rng rng;
    qn_rng_seed(&rng, 0x6d6f6521ull);
    int32_t list[2 * MO_T], tiles[4 * MO_NT] = { 0, 0, 8, 0, 0, 8, 8, 0, 0, 16, MO_T - 16, 0 }, table[2] = { 0, -1 };
    for (uint32_t t = 0; t < 2 * MO_T; t++) list[t] = (int32_t)(2 * t % (2 * MO_T));
    /* pc: T tokens, K = 1, one expert (0) in slot 0, act rows of MO_AS floats */
    qn_pc_moe pc = { .T = MO_T, .H = MO_H, .I = MO_I, .Is = MO_I, .E = 2, .K = 1, .layer = 0, .n_slots = 1,
                     .slots_per_pool = 1, .slot_bytes = 2 * MO_PART, .act_stride = MO_AS, .tile_t = 8,
                     .max_tiles = MO_NT };
    if (!rc) {
        q8_rows(&rng, MO_I, slot, wg);                      /* gate */
        q8_rows(&rng, MO_I, slot + MO_PART, wg + MO_I * MO_H); /* up */
        q8_rows(&rng, MO_H, dslot, wg + 2 * MO_I * MO_H);   /* down [H, I] */
        for (uint32_t i = 0; i < MO_T * 2 * MO_AS; i++) x[i] = (float)((int)(qn_rng_u64(&rng) % 513u) - 256) / 256.0f;
    }
#define MB(buf, bytes, name) do { if (!rc) rc = qn_buf_create(v, QN_MEM_DEVICE, (bytes), (name), &(buf)); } while (0)
    MB(b.x, sizeof(float) * MO_T * 2 * MO_AS, "cm check x");
    MB(b.list, sizeof list, "cm check list");
    MB(b.tiles, sizeof tiles, "cm check tiles");
    MB(b.table, sizeof table, "cm check table");
    MB(b.out, sizeof(float) * MO_T * 2 * MO_AS * 2, "cm check out");
    MB(b.pool, 2 * MO_PART, "cm check pool");
    MB(b.ds, sizeof(float) * MO_H * MO_I, "cm check down_s");
#undef MB
    if (!rc) rc = qn_buf_write(v, b.x, 0, x, sizeof(float) * MO_T * 2 * MO_AS);
    if (!rc) rc = qn_buf_write(v, b.list, 0, list, sizeof list);
    if (!rc) rc = qn_buf_write(v, b.tiles, 0, tiles, sizeof tiles);
    if (!rc) rc = qn_buf_write(v, b.table, 0, table, sizeof table);
    if (!rc) rc = qn_buf_write(v, b.pool, 0, slot, 2 * MO_PART);
    if (!rc) rc = qn_buf_fill(v, b.ds, 0, sizeof(float) * MO_H * MO_I, 0);
    /* gate_up: x rows are token t at t * H (pair q = 2t reads row q / 2) */
    if (!rc) rc = qn_buf_fill(v, b.out, 0, sizeof(float) * MO_T * 2 * MO_AS * 2, 0x7fc00000u);
    if (!rc) rc = mo_run(v, gu, &b, &pc, true, gu_groups * MO_NT);
    if (!rc) rc = qn_buf_read(v, b.out, 0, out, sizeof(float) * MO_T * 2 * MO_AS);
    for (uint32_t t = 0; !rc && t < MO_T; t++)
        for (uint32_t i = 0; i < MO_I; i++) {
            double g = 0, u = 0;
            for (uint32_t k = 0; k < MO_H; k++) {
                g += (double)wg[i * MO_H + k] * x[t * MO_H + k];
                u += (double)wg[(MO_I + i) * MO_H + k] * x[t * MO_H + k];
            }
            ref[t * MO_I + i] = g / (1.0 + exp(-g)) * u;
        }
    if (!rc) rc = mo_compare(gu, out, ref, MO_AS, MO_I, 1e-5);
    /* down: d[q, h] = down[h] . act[q], act rows q * act_stride (the same x buffer), the dpools slot */
    qn_pc_moe pd = pc;
    pd.slot_bytes = MO_PART;
    if (!rc) rc = qn_buf_write(v, b.pool, 0, dslot, MO_PART);
    if (!rc) rc = qn_buf_fill(v, b.out, 0, sizeof(float) * MO_T * 2 * MO_AS * 2, 0x7fc00000u);
    if (!rc) rc = mo_run(v, dn, &b, &pd, false, dn_groups * MO_NT);
    if (!rc) rc = qn_buf_read(v, b.out, 0, out, sizeof(float) * MO_T * 2 * MO_H);
    for (uint32_t t = 0; !rc && t < MO_T; t++)
        for (uint32_t hh = 0; hh < MO_H; hh++) {
            double d = 0;
            for (uint32_t k = 0; k < MO_I; k++) d += (double)wg[2 * MO_I * MO_H + hh * MO_I + k] * x[2 * t * MO_AS + k];
            ref[t * MO_H + hh] = (float)d;
        }
    if (!rc) rc = mo_compare(dn, out, ref, MO_H, MO_H, 0);
    qn_buf *all[] = { b.x, b.list, b.tiles, b.table, b.out, b.pool, b.ds };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) qn_buf_destroy(v, &all[i]);
    free(slot), free(dslot), free(wg), free(x), free(out), free(ref);
    return rc;
}

