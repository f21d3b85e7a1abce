/* test_qmatvec_i8.c — the int8-dot decode matvecs (matvec_i8_* / matvec_norm_i8_*, qmatvec_i8.comp: x quantized to
 * int8 per 32 elements in the prologue, packed 4x8-bit OpSDot) for Q8_0, Q4_0, Q4_K, Q5_K, Q6_K against the C
 * reference of loader/quant.h, twice per case:
 *
 *   tight: against W · dq(x), where dq(x) is x quantized here exactly as the kernel does it (per 32-element block
 *          amax = max |x|, q = rint(x * (127 / amax)) in f32, dx = amax / 127 in f32, dq = dx * q). The kernel's integer
 *          sums are exact, so the error is f32 rounding of the scale products and sums, as test_qmatvec.c's:
 *          bound 1e-6 + 5e-7 * S with S = sum_i |dq(x)_i| * (|w_i| + offset * block range). It assumes 127 / amax
 *          correctly rounded in the kernel (lavapipe); a device dividing less exactly may move one quant by 1 in
 *          rare elements, which this bound would report.
 *   loose: against W · x (x unquantized): the quantization error adds at most sum_i |w_i| * dx_i / 2 (each x moved
 *          by at most half a step of its block), so the bound is that plus the tight bound. What it measures is
 *          printed: "worst err / quant bound" (a typical random case sits far below 1, about 1 / sqrt(cols)).
 *
 * The norm variant (QN_NORM: x * (w + 1) quantized, the RMSNorm scale applied at the store) is checked the same way
 * with the reference scale rsqrt(mean(x^2) + eps) taken in double. Shapes: odd rows (1 .. 257) and 1 / 3 / 8 blocks
 * per row, real ones (12352 x 2048 in part, 2048 x 4096, 300 x 2048), T = 2 / 3 tokens in z, the accumulate flag,
 * several workgroup layouts (subgroup teams, split sets, a partial subgroup, no prefetch), and a too-small x stage
 * (spec 4), which must give NaN, never a wrong number. The routed experts' gate_up twin (moe_q_gu_i8_*) is checked
 * the same way through silu(g) u (run_gu). --small leaves out the real-shape cases. Skips (77) when the device has
 * no shaderIntegerDotProduct. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "qblocks.h"
#include "quant.h"

static const struct { uint32_t type; enum qn_kernel k, kn; float offset; } fmts[] = {
    { QN_GGML_Q8_0, QN_K_MATVEC_I8_Q8_0, QN_K_MATVEC_NORM_I8_Q8_0, 0.0f },
    { QN_GGML_Q4_0, QN_K_MATVEC_I8_Q4_0, QN_K_MATVEC_NORM_I8_Q4_0, 1.0f },
    { QN_GGML_Q4_K, QN_K_MATVEC_I8_Q4_K, QN_K_MATVEC_NORM_I8_Q4_K, 1.0f },
    { QN_GGML_Q5_K, QN_K_MATVEC_I8_Q5_K, QN_K_MATVEC_NORM_I8_Q5_K, 1.0f },
    { QN_GGML_Q6_K, QN_K_MATVEC_I8_Q6_K, QN_K_MATVEC_NORM_I8_Q6_K, 1.0f },
};
#define NFMTS (sizeof fmts / sizeof fmts[0])

/* wg, rows/wg, unroll, rows/subgroup, prefetch (spec 5) */
struct layout {
    uint32_t wg, rpw, unroll, sgrows, pre;
};
static const struct layout layouts[] = {
    { 256, 16, 2, 2, 1 }, /* the plain kernels' defaults (forward_pipes.c mirrors their layout) */
    { 128, 4, 2, 1, 1 },  /* the small-row layout: one row per subgroup */
    { 128, 4, 2, 1, 0 },  /* ... without the prefetch */
    { 64, 8, 2, 4, 1 },   /* sets of 4 rows */
    { 32, 16, 4, 2, 1 },  /* few teams, several sets each */
    { 100, 5, 1, 3, 1 },  /* a partial subgroup, sets of 3 with a partial last one */
    { 128, 2, 1, 1, 5 },  /* split sets; QN_NORM: the sum of squares while staging */
    { 256, 16, 2, 2, 9 }, /* x quantized by 4 invocations per block (QN_PRE bit 8, inproj) */
    { 256, 32, 1, 1, 9 }, /* the model's norm matvecs on 32-wide subgroups: one unit, one row per lane, 2 sets (run 129) */
    { 256, 16, 1, 2, 9 }, /* ... and its out projections: two rows per lane */
    { 64, 8, 2, 4, 13 },  /* ... with the sum of squares while staging, several passes of 16 blocks */
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

static double worst_tight, worst_loose; /* max |err| / bound over all checks */
/* --small (the variant without subgroups): layouts of more than 4 units in flight per lane take layout 1 instead
 * (lavapipe compiles those workgroup-reduction variants for minutes) */
static bool small_mode;

struct qcase {
    uint32_t f, rows, cols, layout, T;
    bool acc, norm;
    uint32_t xsh; /* spec 4 (vec4s of x staged); 0: cols / 4 */
};

/* a row of format f (dequantized deq[cols]): S (the f32 error scale over xq) and Q = sum |w| dx / 2 (the
 * quantization error bound) */
static void row_bounds(uint32_t f, uint32_t cols, const float *deq, const float *xq, const float *dx, double *s, double *q)
{
    uint32_t blk = qn_ggml_type(fmts[f].type)->blck;
    double bmax = 0;
    *s = 0, *q = 0;
    for (uint32_t k = 0; k < cols; k++) {
        if (k % blk == 0) {
            bmax = 0;
            for (uint32_t m = k; m < k + blk; m++) bmax = fmax(bmax, fabsf(deq[m]));
        }
        *s += fabs((double)xq[k]) * (fabsf(deq[k]) + fmts[f].offset * bmax);
        *q += fabsf(deq[k]) * dx[k / 32] * 0.5;
    }
}

static qn_pipe *case_pipe(struct qn_h *h, const struct qcase *c)
{
    const struct layout *l = &layouts[c->layout];
    uint32_t xsh = c->xsh ? c->xsh : c->cols / 4;
    return qn_h_pipe(h, c->norm ? fmts[c->f].kn : fmts[c->f].k, l->wg, l->rpw, l->unroll, l->sgrows, xsh, l->pre);
}

static void run_case(struct qn_h *h, struct qcase c)
{
    if (small_mode && layouts[c.layout].unroll * layouts[c.layout].sgrows > 4) c.layout = 1;
    const qn_ggml_type_info *ti = qn_ggml_type(fmts[c.f].type);
    uint64_t rb;
    qn_h_ok(h, qn_ggml_row_bytes(fmts[c.f].type, c.cols, &rb), "row bytes");
    size_t wbytes = rb * c.rows, padded = (wbytes + 15) & ~(size_t)15, nx = (size_t)c.T * c.cols;
    uint8_t *raw = qn_h_alloc_bytes(h, padded);
    memset(raw, 0, padded);
    float *deq = qn_h_alloc(h, (size_t)c.rows * c.cols);
    qn_h_quant_matrix(h, fmts[c.f].type, c.rows, c.cols, raw, deq);
    qn_buf *wb = qn_h_upload(h, "W", raw, padded);
    float *x_h, *nw_h = NULL, *y0_h = NULL;
    qn_buf *x = qn_h_input_f32(h, "x", nx, -1, 1, &x_h);
    qn_buf *nw = c.norm ? qn_h_input_f32(h, "nw", c.cols, -0.5f, 0.5f, &nw_h) : NULL;
    qn_buf *xn = c.norm ? qn_h_output(h, "xn", nx) : NULL;
    size_t ny = (size_t)c.T * c.rows;
    qn_buf *y = c.acc ? qn_h_input_f32(h, "y", ny, -2, 2, &y0_h) : qn_h_output(h, "y", ny);
    qn_pipe *p = case_pipe(h, &c);
    uint32_t groups = (c.rows + layouts[c.layout].rpw - 1) / layouts[c.layout].rpw;
    uint32_t flags = c.acc ? QN_MATVEC_ACCUMULATE : 0;
    if (c.norm) {
        qn_pc_mv_norm pc = { .rows = c.rows, .cols = c.cols, .flags = flags, .eps = 1e-6f, .w_add = 1 };
        qn_h_run_z(h, p, QN_BINDS(QN_BIND(wb), QN_BIND(x), QN_BIND(y), QN_BIND(nw), QN_BIND(xn)), &pc, sizeof pc, groups, c.T);
    } else {
        qn_pc_matvec pc = { .rows = c.rows, .cols = c.cols, .flags = flags };
        qn_h_run_z(h, p, QN_BINDS(QN_BIND(wb), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, groups, c.T);
    }
    float *got = qn_h_read(h, y, ny), *ref = qn_h_alloc(h, ny), *reff = qn_h_alloc(h, ny);
    float *xs = qn_h_alloc(h, c.cols), *xq = qn_h_alloc(h, c.cols), *dx = qn_h_alloc(h, c.cols / 32);
    double tight = 0, loose = 0, et = 0, el = 0;
    for (uint32_t t = 0; t < c.T; t++) {
        const float *xt = x_h + (size_t)t * c.cols;
        double ss = 0, nr = 1;
        for (uint32_t k = 0; k < c.cols; k++) { /* what the kernel quantizes: x, or x * (w + 1) (QN_NORM) */
            xs[k] = c.norm ? xt[k] * (nw_h[k] + 1.0f) : xt[k];
            ss += (double)xt[k] * xt[k];
        }
        if (c.norm) nr = 1.0 / sqrt(ss / c.cols + 1e-6);
        qn_h_quant_i8(xs, c.cols, xq, dx);
        qn_h_ok(h, qn_matvec_ref(fmts[c.f].type, raw, c.rows, c.cols, xq, ref + (size_t)t * c.rows), "reference");
        qn_h_ok(h, qn_matvec_ref(fmts[c.f].type, raw, c.rows, c.cols, xs, reff + (size_t)t * c.rows), "reference");
        for (uint32_t r = 0; r < c.rows; r++) {
            size_t i = (size_t)t * c.rows + r;
            double s, q;
            row_bounds(c.f, c.cols, deq + (size_t)r * c.cols, xq, dx, &s, &q);
            ref[i] = (float)(ref[i] * nr + (c.acc ? y0_h[i] : 0)), reff[i] = (float)(reff[i] * nr + (c.acc ? y0_h[i] : 0));
            double bt = (1e-6 + 5e-7 * s) * nr, bl = bt + q * nr;
            tight = fmax(tight, bt), loose = fmax(loose, bl);
            if (isfinite(got[i])) {
                et = fmax(et, fabs((double)got[i] - ref[i]) / bt);
                el = fmax(el, fabs((double)got[i] - reff[i]) / (q * nr));
            }
        }
    }
    worst_tight = fmax(worst_tight, et), worst_loose = fmax(worst_loose, el);
    char what[200];
    snprintf(what, sizeof what, "%s%s %ux%u T=%u wg %u rows/wg %u unroll %u sgrows %u pre %u%s (%s) vs W.dq(x): err/bound %.2g",
             c.norm ? "norm " : "", ti->name, c.rows, c.cols, c.T, layouts[c.layout].wg, layouts[c.layout].rpw,
             layouts[c.layout].unroll, layouts[c.layout].sgrows, layouts[c.layout].pre, c.acc ? " accumulate" : "",
             qn_pipe_info(p)->name, et);
    qn_h_check_host(h, what, got, ref, ny, tight, 0);
    snprintf(what, sizeof what, "%s%s %ux%u T=%u layout %u vs W.x (unquantized): err / quant bound %.2g",
             c.norm ? "norm " : "", ti->name, c.rows, c.cols, c.T, c.layout, el);
    qn_h_check_host(h, what, got, reff, ny, loose, 0);
    qn_h_reset(h);
}

/* x staged in too small a stage (spec 4 < cols / 4): every row must come out NaN */
static void run_misuse(struct qn_h *h, uint32_t f)
{
    struct qcase c = { f, 9, 512, 1, 1, false, false, 64 };
    uint64_t rb;
    qn_h_ok(h, qn_ggml_row_bytes(fmts[f].type, c.cols, &rb), "row bytes");
    size_t bytes = (rb * c.rows + 15) & ~(size_t)15;
    uint8_t *raw = qn_h_alloc_bytes(h, bytes);
    memset(raw, 0, bytes);
    qn_h_quant_matrix(h, fmts[f].type, c.rows, c.cols, raw, NULL);
    qn_buf *wb = qn_h_upload(h, "W", raw, bytes), *x = qn_h_input_f32(h, "x", c.cols, -1, 1, NULL);
    qn_buf *y = qn_h_input_f32(h, "y", c.rows, -1, 1, NULL);
    qn_pc_matvec pc = { .rows = c.rows, .cols = c.cols, .flags = 0 };
    qn_h_run_z(h, case_pipe(h, &c), QN_BINDS(QN_BIND(wb), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, 3, 1);
    float *got = qn_h_read(h, y, c.rows);
    uint32_t nan = 0;
    for (uint32_t r = 0; r < c.rows; r++) nan += isnan(got[r]) ? 1 : 0;
    bool ok = nan == c.rows;
    printf("%s %s x stage of 256 elements for 512 columns: %u of %u rows NaN (all must be)\n", ok ? "ok" : "FAIL",
           qn_ggml_type(fmts[f].type)->name, nan, c.rows);
    h->checks++, h->failures += ok ? 0 : 1;
    qn_h_reset(h);
}

/* ---- the routed experts' decode gate_up twin (moe_q_gu_i8_*, moe_q_i8.comp) ---------------------------------- */

static const enum qn_kernel k_gu[NFMTS] = { QN_K_MOE_Q_GU_I8_Q8_0, QN_K_MOE_Q_GU_I8_Q4_0, QN_K_MOE_Q_GU_I8_Q4_K,
                                            QN_K_MOE_Q_GU_I8_Q5_K, QN_K_MOE_Q_GU_I8_Q6_K };
/* wg, rows per workgroup, rows per team, unroll, x stage (vec4s; 0: H / 4), prefetch */
struct gulayout {
    uint32_t wg, rows, sgrows, unroll, xsh, pre;
};
static const struct gulayout gulayouts[] = {
    { 128, 8, 1, 2, 0, 1 },   /* moe_q.comp's defaults (forward_pipes.c copies moe_qgu's layout) */
    { 64, 4, 2, 1, 0, 0 },    /* two rows per team, no prefetch */
    { 256, 16, 2, 2, 1024, 1 }, /* a larger stage than needed, teams with several sets */
    { 100, 3, 1, 3, 0, 1 },   /* a partial subgroup, I not a multiple of the rows */
    { 256, 16, 1, 1, 0, 1 },  /* the twin's on 32-wide subgroups: one row per subgroup, one unit in flight per lane */
};

struct gucase { uint32_t f, T, H, I, E, K, layout; };

/* act[t, k, i] vs silu(g) u with g, u the reference dots over dq(x) (tight: the dots' f32 error bounds e_g, e_u carried
 * through silu(g) u: (1.1 |u| e_g + |silu(g)| e_u) with |silu'| <= 1.1) and over x (loose: the quantization bounds) */
static void run_gu(struct qn_h *h, struct gucase c)
{
    struct qn_h_qexp Q;
    qn_h_qexp_make(h, fmts[c.f].type, QN_GGML_Q8_0, c.H, c.I, c.E, -1, &Q);
    qn_buf *pool[8] = {0};
    for (uint32_t p = 0; p < 8; p++)
        pool[p] = p < Q.npools ? qn_h_upload(h, "pool", Q.pools + (size_t)p * Q.spp * Q.slot_b, (size_t)Q.spp * Q.slot_b)
                               : pool[0];
    qn_buf *table = qn_h_upload(h, "table", Q.table, (size_t)2 * c.E * 4);
    int32_t *ids = qn_h_alloc_bytes(h, (size_t)c.T * c.K * 4);
    qn_h_random_ids(h, ids, c.T, c.K, c.E, c.K);
    uint32_t as = c.I + 4, na = c.T * (c.K + 1) * as;
    float *x_h;
    qn_buf *x = qn_h_input_f32(h, "x", (size_t)c.T * c.H, -1, 1, &x_h), *act = qn_h_output(h, "act", na);
    qn_buf *idb = qn_h_upload(h, "ids", ids, (size_t)c.T * c.K * 4);
    const struct gulayout *l = &gulayouts[c.layout];
    qn_pipe *p = qn_h_pipe(h, k_gu[c.f], l->wg, Q.up_off, 0, l->rows, l->sgrows, l->unroll, l->xsh ? l->xsh : c.H / 4,
                           l->pre);
    qn_pc_moe pc = { .T = c.T, .H = c.H, .I = c.I, .E = c.E, .K = c.K, .layer = 1, .n_slots = c.E + 1,
                     .slots_per_pool = Q.spp, .slot_bytes = Q.slot_b, .act_stride = as };
    qn_h_run_z(h, p, QN_BINDS(QN_BIND(x), QN_BIND(idb), QN_BIND(table), QN_BIND(act), QN_BIND(pool[0]), QN_BIND(pool[1]),
                              QN_BIND(pool[2]), QN_BIND(pool[3]), QN_BIND(pool[4]), QN_BIND(pool[5]), QN_BIND(pool[6]),
                              QN_BIND(pool[7]), QN_BIND(idb)), /* chain words: unused without QN_MOE_CHAIN_* */
               &pc, sizeof pc, (uint64_t)c.K * ((c.I + l->rows - 1) / l->rows), c.T);
    float *got = qn_h_read(h, act, na), *xq = qn_h_alloc(h, c.H), *dx = qn_h_alloc(h, c.H / 32);
    uint32_t bad_t = 0, bad_l = 0, n = 0;
    double et = 0, el = 0;
    for (uint32_t t = 0; t < c.T; t++) {
        const float *xt = x_h + (size_t)t * c.H;
        qn_h_quant_i8(xt, c.H, xq, dx);
        for (uint32_t k = 0; k < c.K; k++)
            for (uint32_t i = 0; i < c.I; i++, n++) {
                const float *wg = Q.dg + ((size_t)ids[t * c.K + k] * c.I + i) * c.H, *wu = Q.du + ((size_t)ids[t * c.K + k] * c.I + i) * c.H;
                double g = 0, u = 0, gf = 0, uf = 0, sg, qg, su, qu;
                for (uint32_t j = 0; j < c.H; j++) g += (double)wg[j] * xq[j], u += (double)wu[j] * xq[j];
                for (uint32_t j = 0; j < c.H; j++) gf += (double)wg[j] * xt[j], uf += (double)wu[j] * xt[j];
                row_bounds(c.f, c.H, wg, xq, dx, &sg, &qg);
                row_bounds(c.f, c.H, wu, xq, dx, &su, &qu);
                double sig = 1 / (1 + exp(-g)), ref = g * sig * u, reff = gf / (1 + exp(-gf)) * uf;
                double eg = 1e-6 + 5e-7 * sg, eu = 1e-6 + 5e-7 * su, bt = 1.1 * fabs(u) * eg + fabs(g * sig) * eu + 1e-6;
                double bl = bt + 1.1 * (fabs(u) + qu) * qg + (fabs(g * sig) + 1.1 * qg) * qu;
                double v = got[((size_t)t * (c.K + 1) + k) * as + i], dt = fabs(v - ref), dl = fabs(v - reff);
                bad_t += !(dt <= bt), bad_l += !(dl <= bl);
                et = fmax(et, dt / bt), el = fmax(el, dl / bl);
            }
    }
    worst_tight = fmax(worst_tight, et);
    bool ok = !bad_t && !bad_l;
    printf("%s %s T=%u H=%u I=%u K=%u wg %u rows %u sgrows %u unroll %u pre %u (%s): %u of %u act values out of the tight "
           "bound (worst err/bound %.2g), %u out of the quantization bound vs plain x (worst %.2g)\n", ok ? "ok  " : "FAIL",
           qn_ggml_type(fmts[c.f].type)->name, c.T, c.H, c.I, c.K, l->wg, l->rows, l->sgrows, l->unroll, l->pre,
           qn_pipe_info(p)->name, bad_t, n, et, bad_l, el);
    h->checks++, h->failures += ok ? 0 : 1;
    qn_h_reset(h);
}

int main(int argc, char **argv)
{
    struct qn_h h;
    bool small = false; /* --small: without the real-shape cases (the meson variant without subgroups) */
    for (int i = 1; i < argc; i++) small |= !strcmp(argv[i], "--small");
    small_mode = small;
    qn_h_open(&h, "qmatvec_i8", argc, argv);
    if (!(qn_vk_caps(h.v)->features & QN_FEAT_INT_DOT)) {
        fprintf(stderr, "SKIP qmatvec_i8: the device has no shaderIntegerDotProduct (the int8-dot kernels need it)\n");
        qn_h_close(&h);
        return 77;
    }
    static const uint32_t rows[] = { 1, 7, 33, 257 }, nblocks[] = { 1, 3, 8 };
    for (uint32_t f = 0; f < NFMTS; f++) {
        uint32_t qk = qn_ggml_type(fmts[f].type)->blck;
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
            for (size_t b = 0; b < sizeof nblocks / sizeof nblocks[0]; b++) {
                uint32_t l = (uint32_t)((r * 3 + b) % NLAYOUTS);
                if (!small || rows[r] * nblocks[b] * qk <= 9000)
                    run_case(&h, (struct qcase){ f, rows[r], nblocks[b] * qk, l, 1, false, false, 0 });
            }
        if (!small) {
            run_case(&h, (struct qcase){ f, 300, 2048, 0, 1, false, false, 0 }); /* defaults, partial last workgroup */
            run_case(&h, (struct qcase){ f, 130, 4096, 1, 1, false, false, 0 }); /* out projection columns */
            run_case(&h, (struct qcase){ f, 96, 2048, 0, 2, false, true, 0 });   /* in_proj-like rows with the norm, T = 2 */
        }
        run_case(&h, (struct qcase){ f, 33, 2048, 3, 1, true, false, 1024 }); /* accumulate, a larger stage */
        run_case(&h, (struct qcase){ f, 20, 4 * qk, 5, 3, true, false, 0 });  /* T = 3 in z, partial subgroup */
        run_case(&h, (struct qcase){ f, 9, 2048, 6, 2, false, false, 0 });    /* T = 2, split sets */
        /* the RMSNorm prologue in other layouts (every one once over the formats) */
        run_case(&h, (struct qcase){ f, 37, 1024, 6, 1, false, true, 0 });
        run_case(&h, (struct qcase){ f, 37, 1024, 7 + f % 2, 1, false, true, 0 }); /* x by 4 per block (inproj) */
        run_case(&h, (struct qcase){ f, 7, 3 * qk, (f + 2) % NLAYOUTS, 1, f == 1, true, 0 });
        run_misuse(&h, f);
        /* the gate_up twin: the real row length (H 2048) at T = 1 and 2, small odd shapes in the other layouts */
        if (!small) run_gu(&h, (struct gucase){ f, 1, 2048, 256, 3, 2, 0 });
        run_gu(&h, (struct gucase){ f, 2, 2048, 64, 4, 2, 1 });
        run_gu(&h, (struct gucase){ f, 1, 2 * (qk > 32 ? qk : 128), 64, 5, 2, 2 });
        run_gu(&h, (struct gucase){ f, 2, qk > 32 ? qk : 96, 32, 4, 3, 3 });
        run_gu(&h, (struct gucase){ f, 1, 2 * (qk > 32 ? qk : 128), 64, 5, 2, 4 });
    }
    printf("qmatvec_i8: worst err / tight bound %.3g, worst err / quantization bound %.3g\n", worst_tight, worst_loose);
    return qn_h_close(&h);
}
