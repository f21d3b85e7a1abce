/* test_mv_norm.c — the matvec with the RMSNorm prologue (matvec_norm_{bf16,f16,f32}, matvec.comp with QN_NORM)
 * against the C reference rmsnorm (runtime/ref: qn_ref_rmsnorm_zc for w_add = 1, the same formula in double
 * for w_add = 0) followed by a double-precision matvec: odd and real shapes, the workgroup layouts of
 * test_matvec (normed x staged in shared memory or computed at each load), T tokens in z, the accumulate flag,
 * and the normed-x output of workgroup 0 (QN_MATVEC_WRITE_XN; without the flag xn must stay untouched).
 * The router epilogue (matvec_norm_route_*: the last workgroup of each token routes it) is checked against
 * qn_ref_router on the m the kernel wrote (ids exact), sg and the shared act row, and its workgroup counter
 * must be back at zero after each of two runs; also split in two dispatches (f32 router rows + block-type
 * rest, as a GGUF W_moe) that count on one counter. The quantized variants (matvec_norm_q8_0 .. q6_k, qmatvec.comp
 * with QN_NORM) are checked against loader/quant.h's qn_matvec_ref on the reference norm, with test_qmatvec's
 * error scale S.
 *
 * `test_mv_norm --bench` (for a real GPU) times the decode pattern it replaces at the Qwen3-Next-80B shapes:
 * 48 x (rmsnorm, barrier, matvec, barrier) against 48 x (matvec_norm, barrier) in one command buffer, with the
 * weights rotated over 4 copies so that L2 does not hold them; and W_moe + router dispatch against the router
 * epilogue (matvec_norm_route). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "qn_num.h"
#include "quant.h"
#include "ref_ops.h"
#include "route_check.h"

static const struct { uint32_t rows, cols; } shapes[] = {
    { 1, 7 }, { 3, 16 }, { 33, 129 }, { 64, 64 }, { 257, 1000 }, { 100, 2056 }, { 40, 2048 }, { 1537, 2048 },
};
/* wg, rows/wg, unroll, rows/subgroup, x stage (vec4s): the H100 board's layout with the stage the graph uses
 * (256/8, 512 vec4 = 2048 floats) and without a stage, then test_matvec's odd layouts (split sets, a partial
 * subgroup, a stage too small for the row, several rows per subgroup, a workgroup smaller than a subgroup). */
static const struct { uint32_t wg, rows_per_wg, unroll, sgrows, xsh; } layouts[] = {
    { 256, 8, 4, 1, 512 }, { 256, 8, 4, 1, 0 }, { 128, 2, 4, 1, 0 }, { 64, 8, 4, 1, 1024 },
    { 100, 5, 8, 3, 64 }, { 32, 16, 2, 2, 1024 }, { 16, 7, 1, 4, 512 }, { 4, 3, 2, 2, 0 },
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])
static const struct { enum qn_kernel k, plain; const char *name; int kind; } dtypes[] = {
    { QN_K_MATVEC_NORM_BF16, QN_K_MATVEC_BF16, "bf16", 0 },
    { QN_K_MATVEC_NORM_F16, QN_K_MATVEC_F16, "f16", 1 },
    { QN_K_MATVEC_NORM_F32, QN_K_MATVEC_F32, "f32", 2 },
};

struct mcase {
    int d, layout;
    uint32_t rows, cols, T;
    bool acc, wxn;
    float w_add;
};

static qn_buf *weights(struct qn_h *h, int kind, size_t n, float **host)
{
    return kind == 0 ? qn_h_input_bf16(h, "W", n, -1, 1, host)
         : kind == 1 ? qn_h_input_f16(h, "W", n, -1, 1, host)
                     : qn_h_input_f32(h, "W", n, -1, 1, host);
}

/* xn[T, cols] = the reference norm of x (f32 values, as the kernel's consumers see them) */
static float *ref_norm(struct qn_h *h, const float *x, const float *w, uint32_t T, uint32_t cols, float w_add)
{
    float *xn = qn_h_alloc(h, (size_t)T * cols);
    if (w_add == 1.0f) {
        qn_ref_rmsnorm_zc_rows(xn, x, w, (int)T, (int)cols, 1e-6f);
        return xn;
    }
    for (uint32_t t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * cols;
        double ss = 0;
        for (uint32_t c = 0; c < cols; c++) ss += (double)xr[c] * xr[c];
        double inv = 1.0 / sqrt(ss / cols + 1e-6);
        for (uint32_t c = 0; c < cols; c++) xn[(size_t)t * cols + c] = (float)(xr[c] * inv * (w[c] + w_add));
    }
    return xn;
}

static void run_case(struct qn_h *h, struct mcase m)
{
    size_t n = (size_t)m.rows * m.cols;
    float *w_h, *x_h, *nw_h, *y0_h = NULL;
    qn_buf *W = weights(h, dtypes[m.d].kind, n, &w_h);
    qn_buf *x = qn_h_input_f32(h, "x", (size_t)m.T * m.cols, -3, 3, &x_h);
    qn_buf *nw = qn_h_input_f32(h, "norm w", m.cols, -0.5f, 0.5f, &nw_h);
    qn_buf *xn = qn_h_output(h, "xn", (size_t)m.T * m.cols);
    qn_buf *y = m.acc ? qn_h_input_f32(h, "y", (size_t)m.T * m.rows, -2, 2, &y0_h) : qn_h_output(h, "y", (size_t)m.T * m.rows);
    uint32_t rpw = layouts[m.layout].rows_per_wg;
    qn_pipe *p = qn_h_pipe(h, dtypes[m.d].k, layouts[m.layout].wg, rpw, layouts[m.layout].unroll,
                           layouts[m.layout].sgrows, layouts[m.layout].xsh);
    qn_pc_mv_norm pc = { .rows = m.rows, .cols = m.cols, .eps = 1e-6f, .w_add = m.w_add,
                         .flags = (m.acc ? QN_MATVEC_ACCUMULATE : 0) | (m.wxn ? QN_MATVEC_WRITE_XN : 0) };
    qn_h_run_z(h, p, QN_BINDS(QN_BIND(W), QN_BIND(x), QN_BIND(y), QN_BIND(nw), QN_BIND(xn)), &pc, sizeof pc,
               (m.rows + rpw - 1) / rpw, m.T);
    float *xr = ref_norm(h, x_h, nw_h, m.T, m.cols, m.w_add), *ref = qn_h_alloc(h, (size_t)m.T * m.rows);
    for (uint32_t t = 0; t < m.T; t++)
        for (uint32_t r = 0; r < m.rows; r++) {
            double s = 0;
            for (uint32_t c = 0; c < m.cols; c++) s += (double)w_h[(size_t)r * m.cols + c] * xr[(size_t)t * m.cols + c];
            ref[(size_t)t * m.rows + r] = (float)(s + (m.acc ? y0_h[(size_t)t * m.rows + r] : 0.0));
        }
    char what[160];
    snprintf(what, sizeof what, "%s %ux%u T=%u wg %u rows/wg %u unroll %u sgrows %u xsh %u w_add %g%s%s (%s)",
             dtypes[m.d].name, m.rows, m.cols, m.T, layouts[m.layout].wg, rpw, layouts[m.layout].unroll,
             layouts[m.layout].sgrows, layouts[m.layout].xsh, m.w_add, m.acc ? " accumulate" : "",
             m.wxn ? " +xn" : "", qn_pipe_info(p)->name);
    /* f32 sums of `cols` products of |W| <= 1 and |xn| <= ~3 (x in [-3, 3] over its rms ~1.7, times 1 + w <= 1.5)
     * after an f32 norm (relative ~1e-7 per element); measured max abs error 2.3e-5 at cols 2048-2056 (lavapipe,
     * subgroups 8 / 16 / none), bound 1e-6 + 5e-8 * cols = 1e-4 there: a 4x margin that still catches one wrong
     * element (~0.1) or a norm off by 1e-4 relative. */
    qn_h_check(h, what, y, ref, (size_t)m.T * m.rows, 1e-6 + 5e-8 * m.cols, 1e-5);
    if (m.wxn) { /* the norm alone: measured ~5e-7 abs (values up to ~3) */
        char w2[180];
        snprintf(w2, sizeof w2, "%s: xn", what);
        qn_h_check(h, w2, xn, xr, (size_t)m.T * m.cols, 2e-6, 2e-6);
    } else { /* untouched: still the harness's NaN poison */
        float *got = qn_h_read(h, xn, (size_t)m.T * m.cols);
        size_t written = 0;
        for (size_t i = 0; i < (size_t)m.T * m.cols; i++) written += !isnan(got[i]);
        h->checks++;
        if (written) {
            h->failures++;
            printf("FAIL %s: %zu elements of xn written without QN_MATVEC_WRITE_XN\n", what, written);
        }
    }
    qn_h_reset(h);
}

/* ---- the router epilogue ------------------------------------------------------------------------------------ */

static const enum qn_kernel route_k[3] = { QN_K_MATVEC_NORM_ROUTE_BF16, QN_K_MATVEC_NORM_ROUTE_F16,
                                           QN_K_MATVEC_NORM_ROUTE_F32 };

/* The route fold's per-token counters must be back at zero after a run (the routing workgroup resets its own). */
static void check_counters(struct qn_h *h, qn_buf *cnt, uint32_t T, const char *what, int run)
{
    uint32_t *c = (uint32_t *)qn_h_read(h, cnt, T), left = 0;
    for (uint32_t t = 0; t < T; t++) left += c[t] != 0;
    h->checks++;
    if (left) {
        h->failures++;
        printf("FAIL %s: run %d left %u workgroup counters non-zero\n", what, run, left);
    }
}

/* The buffers of one route-fold run besides W: x and the norm weight (random; host copies out), the outputs m, xn,
 * ids, w, sg, act (K + 1 rows of act_stride as) and the per-token counters (zero). */
struct route_bufs {
    qn_buf *x, *nw, *xn, *m, *ids, *w, *sg, *act, *cnt, *chain;
    float *x_h, *nw_h;
};
static struct route_bufs route_bufs(struct qn_h *h, uint32_t T, uint32_t cols, uint32_t rows, uint32_t K, uint32_t as)
{
    struct route_bufs b;
    uint32_t zero[8] = { 0 };
    b.x = qn_h_input_f32(h, "x", (size_t)T * cols, -3, 3, &b.x_h);
    b.nw = qn_h_input_f32(h, "norm w", cols, -0.5f, 0.5f, &b.nw_h);
    b.xn = qn_h_output(h, "xn", (size_t)T * cols), b.m = qn_h_output(h, "m", (size_t)T * rows);
    b.ids = qn_h_buffer(h, "ids", (size_t)T * K * 4), b.w = qn_h_output(h, "w", (size_t)T * K);
    b.sg = qn_h_output(h, "sg", T), b.act = qn_h_output(h, "act", (size_t)T * (K + 1) * as);
    b.cnt = qn_h_upload(h, "count", zero, sizeof zero);
    static const uint32_t zch[QN_MOE_CHAIN_WORDS] = { 0 }; /* route_mixed's decode-chain marks: 3 words a token */
    b.chain = qn_h_upload(h, "chain words", zch, sizeof zch);
    return b;
}

static void route_case(struct qn_h *h, int d, int layout, uint32_t T, uint32_t E, uint32_t K, uint32_t Is,
                       uint32_t cols, uint32_t rflags)
{
    uint32_t rows = E + 2 * Is + 1, as = Is + 3, rpw = layouts[layout].rows_per_wg;
    float *w_h;
    qn_buf *W = weights(h, dtypes[d].kind, (size_t)rows * cols, &w_h);
    struct route_bufs b = route_bufs(h, T, cols, rows, K, as);
    qn_pipe *p = qn_h_pipe(h, route_k[d], layouts[layout].wg, rpw, layouts[layout].unroll, layouts[layout].sgrows,
                           layouts[layout].xsh);
    qn_pc_mv_route pc = { .rows = rows, .cols = cols, .flags = QN_MATVEC_WRITE_XN, .eps = 1e-6f, .w_add = 1.0f,
                          .E = E, .K = K, .Is = Is, .act_stride = as, .rflags = rflags, .row0 = 0, .m_rows = rows,
                          .groups = (rows + rpw - 1) / rpw };
    char what[160];
    snprintf(what, sizeof what, "%s route E=%u K=%u Is=%u H=%u T=%u wg %u rows/wg %u xsh %u%s (%s)", dtypes[d].name, E,
             K, Is, cols, T, layouts[layout].wg, rpw, layouts[layout].xsh, rflags & QN_MOE_NORM_TOPK ? " norm" : "",
             qn_pipe_info(p)->name);
    for (int run = 0; run < 2; run++) { /* the second run finds the counter the first one left */
        qn_h_run_z(h, p, QN_BINDS(QN_BIND(W), QN_BIND(b.x), QN_BIND(b.m), QN_BIND(b.nw), QN_BIND(b.xn), QN_BIND(b.ids),
                                  QN_BIND(b.w), QN_BIND(b.sg), QN_BIND(b.act), QN_BIND(b.cnt)),
                   &pc, sizeof pc, (rows + rpw - 1) / rpw, T);
        check_counters(h, b.cnt, T, what, run);
    }
    float *xr = ref_norm(h, b.x_h, b.nw_h, T, cols, 1.0f), *ref = qn_h_alloc(h, (size_t)T * rows);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t r = 0; r < rows; r++) {
            double s = 0;
            for (uint32_t c = 0; c < cols; c++) s += (double)w_h[(size_t)r * cols + c] * xr[(size_t)t * cols + c];
            ref[(size_t)t * rows + r] = (float)s;
        }
    char msg[200];
    snprintf(msg, sizeof msg, "%s: m", what); /* as run_case */
    qn_h_check(h, msg, b.m, ref, (size_t)T * rows, 1e-6 + 5e-8 * cols, 1e-5);
    snprintf(msg, sizeof msg, "%s: xn", what);
    qn_h_check(h, msg, b.xn, xr, (size_t)T * cols, 2e-6, 2e-6);
    check_route(h, what, qn_h_read(h, b.m, (size_t)T * rows), T, E, K, Is, as, rflags, b.ids, b.w, b.sg, b.act);
    qn_h_reset(h);
}

/* W_moe in parts as a GGUF mixed-type fusion. two parts (four = false): the router rows [0, E) f32 and the rest (shared
 * gate, up, gate logit) in a block type; four = true: as the 80B Q4_K_M file, router f32, shared gate and up in the
 * block type, the gate logit row f32. */
struct rparts {
    uint32_t np, rows, cols, qtype;
    struct part { uint32_t r0, n; bool q; } pt[4];
    qn_buf *W[4];
    float *w_h;    /* [rows, cols] the f32 values (block parts: before quantization) */
    uint8_t *raw;  /* block rows at their row index */
    uint64_t rb;   /* bytes per block row */
};
static struct rparts rparts_make(struct qn_h *h, uint32_t qtype, uint32_t E, uint32_t Is, uint32_t cols, bool four)
{
    struct rparts P = { .np = four ? 4 : 2, .rows = E + 2 * Is + 1, .cols = cols, .qtype = qtype,
                        .pt = { { 0, E, false }, { E, 2 * Is + 1, true } } };
    if (four) P.pt[1].n = Is, P.pt[2] = (struct part){ E + Is, Is, true }, P.pt[3] = (struct part){ E + 2 * Is, 1, false };
    qn_h_ok(h, qn_ggml_row_bytes(qtype, cols, &P.rb), "row bytes");
    P.w_h = qn_h_alloc(h, (size_t)P.rows * cols);
    qn_h_random(h, P.w_h, (size_t)P.rows * cols, -1, 1);
    P.raw = qn_h_alloc_bytes(h, (size_t)P.rows * P.rb + 4);
    for (uint32_t i = 0; i < P.np; i++) {
        struct part *q = &P.pt[i];
        if (!q->q) {
            P.W[i] = qn_h_upload(h, "W f32 part", P.w_h + (size_t)q->r0 * cols, (size_t)q->n * cols * 4);
            continue;
        }
        for (uint32_t r = q->r0; r < q->r0 + q->n; r++)
            qn_h_ok(h, qn_quant_row(qtype, P.w_h + (size_t)r * cols, P.raw + r * P.rb, cols), "quantize");
        size_t bytes = (q->n * P.rb + 3) & ~(size_t)3;
        memset(P.raw + q->r0 * P.rb + q->n * P.rb, 0, bytes - q->n * P.rb);
        P.W[i] = qn_h_upload(h, "W block part", P.raw + q->r0 * P.rb, bytes);
    }
    return P;
}

/* m's reference: the reference norm of x times each part (block parts: qn_matvec_ref of their blocks) */
static float *rparts_ref(struct qn_h *h, const struct rparts *P, const float *xr, uint32_t T)
{
    float *ref = qn_h_alloc(h, (size_t)T * P->rows);
    for (uint32_t t = 0; t < T; t++) {
        const float *xt = xr + (size_t)t * P->cols;
        for (uint32_t i = 0; i < P->np; i++) {
            const struct part *q = &P->pt[i];
            float *out = ref + (size_t)t * P->rows + q->r0;
            if (q->q) {
                qn_h_ok(h, qn_matvec_ref(P->qtype, P->raw + q->r0 * P->rb, q->n, P->cols, xt, out), "reference");
                continue;
            }
            for (uint32_t r = 0; r < q->n; r++) {
                double a = 0;
                for (uint32_t c = 0; c < P->cols; c++) a += (double)P->w_h[(size_t)(q->r0 + r) * P->cols + c] * xt[c];
                out[r] = (float)a;
            }
        }
    }
    return ref;
}

/* m, xn and the routing of a parts case against the references; the run's buffers reset */
static void rparts_check(struct qn_h *h, const char *what, const struct rparts *P, const struct route_bufs *b,
                         uint32_t T, uint32_t E, uint32_t K, uint32_t Is, uint32_t rflags)
{
    float *xr = ref_norm(h, b->x_h, b->nw_h, T, P->cols, 1.0f), *ref = rparts_ref(h, P, xr, T);
    char msg[300];
    snprintf(msg, sizeof msg, "%s: m", what); /* |xn| <= ~3, |w| <= ~1: both parts' bounds are below this one */
    qn_h_check(h, msg, b->m, ref, (size_t)T * P->rows, 1e-6 + 5e-7 * 3.0 * P->cols, 1e-5);
    snprintf(msg, sizeof msg, "%s: xn", what);
    qn_h_check(h, msg, b->xn, xr, (size_t)T * P->cols, 2e-6, 2e-6);
    check_route(h, what, qn_h_read(h, b->m, (size_t)T * P->rows), T, E, K, Is, Is, rflags, b->ids, b->w, b->sg, b->act);
    qn_h_reset(h);
}

/* Each part its own matvec_norm_route dispatch counting on one counter (no barrier between them), the first writing
 * xn. sd / sq: spec 0-5 of the f32 and block-type dispatches (their grids differ, and so the count). */
static void route_parts_case(struct qn_h *h, uint32_t qtype, enum qn_kernel qk, uint32_t T, uint32_t E, uint32_t K,
                             uint32_t Is, uint32_t cols, const uint32_t sd[6], const uint32_t sq[6], bool four)
{
    struct rparts P = rparts_make(h, qtype, E, Is, cols, four);
    struct route_bufs b = route_bufs(h, T, cols, P.rows, K, Is);
    qn_pipe *pa = qn_h_pipe_spec(h, QN_K_MATVEC_NORM_ROUTE_F32, sd, 6), *pb = qn_h_pipe_spec(h, qk, sq, 6);
    uint32_t groups = 0;
    for (uint32_t i = 0; i < P.np; i++) groups += (P.pt[i].n + (P.pt[i].q ? sq[1] : sd[1]) - 1) / (P.pt[i].q ? sq[1] : sd[1]);
    char what[200];
    snprintf(what, sizeof what, "%u parts f32 + %s route E=%u K=%u Is=%u H=%u T=%u (%s %u,%u,%u,%u,%u,%u; %s "
             "%u,%u,%u,%u,%u,%u; %u workgroups)", P.np, qn_ggml_type(qtype)->name, E, K, Is, cols, T,
             qn_pipe_info(pa)->name, sd[0], sd[1], sd[2], sd[3], sd[4], sd[5], qn_pipe_info(pb)->name, sq[0], sq[1],
             sq[2], sq[3], sq[4], sq[5], groups);
    for (int run = 0; run < 2; run++) {
        qn_h_ok(h, qn_cmd_begin(h->cmd), what); /* all parts in one command buffer, no barrier between them */
        for (uint32_t i = 0; i < P.np; i++) {
            qn_pc_mv_route pc = { .rows = P.pt[i].n, .cols = cols, .flags = i == 0 ? QN_MATVEC_WRITE_XN : 0, .eps = 1e-6f,
                                  .w_add = 1.0f, .E = E, .K = K, .Is = Is, .act_stride = Is, .rflags = QN_MOE_NORM_TOPK,
                                  .row0 = P.pt[i].r0, .m_rows = P.rows, .groups = groups };
            qn_pipe *p = P.pt[i].q ? pb : pa;
            uint32_t rpw = qn_pipe_spec(p, 1);
            qn_cmd_dispatch_nz(h->cmd, p, QN_BINDS(QN_BIND(P.W[i]), QN_BIND(b.x), QN_BIND(b.m), QN_BIND(b.nw),
                                                   QN_BIND(b.xn), QN_BIND(b.ids), QN_BIND(b.w), QN_BIND(b.sg),
                                                   QN_BIND(b.act), QN_BIND(b.cnt)),
                               &pc, sizeof pc, (P.pt[i].n + rpw - 1) / rpw, T);
        }
        qn_h_ok(h, qn_cmd_end(h->cmd), what);
        qn_h_ok(h, qn_cmd_run(h->cmd), what);
        check_counters(h, b.cnt, T, what, run);
    }
    rparts_check(h, what, &P, &b, T, E, K, Is, QN_MOE_NORM_TOPK);
}

/* route_mixed's push constants for parts P (its workgroup count in pc.groups) */
static qn_pc_route_one route_one_pc(const struct rparts *P, const qn_pipe *p, uint32_t E, uint32_t K, uint32_t Is,
                                    uint32_t rflags)
{
    qn_pc_route_one pc = { .m_rows = P->rows, .cols = P->cols, .flags = QN_MATVEC_WRITE_XN, .eps = 1e-6f, .w_add = 1.0f,
                           .E = E, .K = K, .Is = Is, .act_stride = Is, .rflags = rflags, .nparts = P->np };
    uint32_t *r0[4] = { &pc.row0_0, &pc.row0_1, &pc.row0_2, &pc.row0_3 }, *rn[4] = { &pc.rows_0, &pc.rows_1, &pc.rows_2, &pc.rows_3 };
    for (uint32_t i = 0; i < P->np; i++) {
        uint32_t rpw = qn_pipe_spec(p, P->pt[i].q ? 2 : 1);
        *r0[i] = P->pt[i].r0, *rn[i] = P->pt[i].n;
        pc.qmask |= P->pt[i].q ? 1u << i : 0;
        pc.groups += (P->pt[i].n + rpw - 1) / rpw;
    }
    return pc;
}

/* The same parts in ONE route_mixed dispatch (rk: its kernel for qtype; spec[6] WG, FROWS, QROWS, FUNROLL, QUNROLL,
 * XSH), tokens in z, run twice (the counters must come back to zero). xflags: RT_PART0_B16: part 0 (f32) rounded to bf16 and uploaded as bf16 (pc.bmask; forward.c's QNEXT_ROUTER_BF16W=1; the
 * reference takes the rounded values, so the bounds stay). */
#define RT_PART0_B16 (1u << 31)
static void route_one_case_x(struct qn_h *h, uint32_t qtype, enum qn_kernel rk, uint32_t T, uint32_t E, uint32_t K,
                             uint32_t Is, uint32_t cols, const uint32_t spec[6], bool four, uint32_t rflags,
                             uint32_t xflags)
{
    struct rparts P = rparts_make(h, qtype, E, Is, cols, four);
    struct route_bufs b = route_bufs(h, T, cols, P.rows, K, Is);
    qn_pipe *p = qn_h_pipe_spec(h, rk, spec, 6);
    qn_pc_route_one pc = route_one_pc(&P, p, E, K, Is, rflags);
    pc.flags |= xflags & ~RT_PART0_B16;
    if ((xflags & RT_PART0_B16) && !P.pt[0].q) {
        size_t n0 = (size_t)P.pt[0].n * cols;
        uint16_t *b = qn_h_alloc_bytes(h, n0 * 2 + 16);
        for (size_t i = 0; i < n0; i++) {
            b[i] = qn_f32_to_bf16(P.w_h[i]);
            P.w_h[i] = qn_bf16_to_f32(b[i]);
        }
        P.W[0] = qn_h_upload(h, "W part 0 bf16", b, (n0 * 2 + 15) / 16 * 16);
        pc.bmask = 1;
    }
    char what[240];
    snprintf(what, sizeof what, "one dispatch: %u parts f32 + %s E=%u K=%u Is=%u H=%u T=%u (%s %u,%u,%u,%u,%u,%u; %u "
             "workgroups)%s%s%s", P.np, qn_ggml_type(qtype)->name, E, K, Is, cols, T, qn_pipe_info(p)->name, spec[0],
             spec[1], spec[2], spec[3], spec[4], spec[5], pc.groups, rflags & QN_MOE_ROUND_BF16 ? " bf16 logits" : "",
             xflags & RT_PART0_B16 ? " bf16 part 0" : "", "");
    qn_buf *W3 = P.np > 2 ? P.W[3] : P.W[0], *W2 = P.np > 2 ? P.W[2] : P.W[0];
    for (int run = 0; run < 2; run++) {
        qn_h_ok(h, qn_cmd_begin(h->cmd), what);
        qn_cmd_dispatch_nz(h->cmd, p, QN_BINDS(QN_BIND(P.W[0]), QN_BIND(b.x), QN_BIND(b.m), QN_BIND(b.nw), QN_BIND(b.xn),
                                               QN_BIND(b.ids), QN_BIND(b.w), QN_BIND(b.sg), QN_BIND(b.act),
                                               QN_BIND(b.cnt), QN_BIND(P.W[1]), QN_BIND(W2), QN_BIND(W3),
                                               QN_BIND(b.chain)),
                           &pc, sizeof pc, pc.groups, T);
        qn_h_ok(h, qn_cmd_end(h->cmd), what);
        qn_h_ok(h, qn_cmd_run(h->cmd), what);
        check_counters(h, b.cnt, T, what, run);
        /* the decode chain's mark (common/moe_chain.glsl): each run's routing workgroup adds 1 to word 3 t with
         * QN_MOE_CHAIN_OUT (a gate_up would reset it), and touches nothing without it */
        const uint32_t *ch = (const uint32_t *)qn_h_read(h, b.chain, 3u * T);
        uint32_t want = (rflags & QN_MOE_CHAIN_OUT) ? (uint32_t)run + 1 : 0, bad = 0;
        for (uint32_t i = 0; i < 3u * T; i++) bad += ch[i] != (i % 3 == 0 ? want : 0u);
        h->checks++;
        if (bad) h->failures++;
        printf("%-4s %s: run %d chain words as expected (%u not)\n", bad ? "FAIL" : "ok", what, run, bad);
    }
    rparts_check(h, what, &P, &b, T, E, K, Is, rflags & ~QN_MOE_CHAIN_OUT);
}
static void route_one_case(struct qn_h *h, uint32_t qtype, enum qn_kernel rk, uint32_t T, uint32_t E, uint32_t K,
                           uint32_t Is, uint32_t cols, const uint32_t spec[6], bool four, uint32_t rflags)
{
    route_one_case_x(h, qtype, rk, T, E, K, Is, cols, spec, four, rflags, 0);
}

/* ---- quantized weights (qmatvec.comp with QN_NORM) ----------------------------------------------------------- */

static const struct { uint32_t type; enum qn_kernel k; } qfmts[] = {
    { QN_GGML_Q8_0, QN_K_MATVEC_NORM_Q8_0 }, { QN_GGML_Q4_0, QN_K_MATVEC_NORM_Q4_0 },
    { QN_GGML_Q4_K, QN_K_MATVEC_NORM_Q4_K }, { QN_GGML_Q5_K, QN_K_MATVEC_NORM_Q5_K },
    { QN_GGML_Q6_K, QN_K_MATVEC_NORM_Q6_K },
};
/* wg, rows/wg, unroll, rows/subgroup, x stage: qmatvec's defaults (staged), read through L1, odd ones */
static const struct { uint32_t wg, rpw, unroll, sgrows, xsh; } qlayouts[] = {
    { 256, 16, 2, 2, 1024 }, { 128, 2, 2, 1, 0 }, { 64, 8, 2, 4, 512 }, { 100, 5, 1, 3, 64 },
    { 128, 4, 2, 1, 1024 }, /* forward_pipes.c's small-row layout */
};

static void qcase(struct qn_h *h, uint32_t f, uint32_t layout, uint32_t rows, uint32_t cols, uint32_t T, bool acc,
                  bool wxn)
{
    const qn_ggml_type_info *ti = qn_ggml_type(qfmts[f].type);
    uint64_t rb;
    qn_h_ok(h, qn_ggml_row_bytes(qfmts[f].type, cols, &rb), "row bytes");
    size_t wbytes = rb * rows, padded = (wbytes + 3) & ~(size_t)3;
    uint8_t *raw = qn_h_alloc_bytes(h, padded);
    memset(raw, 0, padded);
    float *w = qn_h_alloc(h, (size_t)rows * cols), *deq = qn_h_alloc(h, cols);
    qn_h_random(h, w, (size_t)rows * cols, -1, 1);
    for (uint32_t r = 0; r < rows; r++)
        qn_h_ok(h, qn_quant_row(qfmts[f].type, w + (size_t)r * cols, raw + r * rb, cols), "quantize");
    qn_buf *W = qn_h_upload(h, "W", raw, padded);
    float *x_h, *nw_h, *y0_h = NULL;
    qn_buf *x = qn_h_input_f32(h, "x", (size_t)T * cols, -3, 3, &x_h);
    qn_buf *nw = qn_h_input_f32(h, "norm w", cols, -0.5f, 0.5f, &nw_h);
    qn_buf *xn = qn_h_output(h, "xn", (size_t)T * cols);
    size_t ny = (size_t)T * rows;
    qn_buf *y = acc ? qn_h_input_f32(h, "y", ny, -2, 2, &y0_h) : qn_h_output(h, "y", ny);
    uint32_t rpw = qlayouts[layout].rpw;
    qn_pipe *p = qn_h_pipe(h, qfmts[f].k, qlayouts[layout].wg, rpw, qlayouts[layout].unroll, qlayouts[layout].sgrows,
                           qlayouts[layout].xsh);
    qn_pc_mv_norm pc = { .rows = rows, .cols = cols, .eps = 1e-6f, .w_add = 1.0f,
                         .flags = (acc ? QN_MATVEC_ACCUMULATE : 0) | (wxn ? QN_MATVEC_WRITE_XN : 0) };
    qn_h_run_z(h, p, QN_BINDS(QN_BIND(W), QN_BIND(x), QN_BIND(y), QN_BIND(nw), QN_BIND(xn)), &pc, sizeof pc,
               (rows + rpw - 1) / rpw, T);
    float *xr = ref_norm(h, x_h, nw_h, T, cols, 1.0f), *ref = qn_h_alloc(h, ny);
    double max_s = 0;
    for (uint32_t t = 0; t < T; t++) {
        const float *xt = xr + (size_t)t * cols;
        qn_h_ok(h, qn_matvec_ref(qfmts[f].type, raw, rows, cols, xt, ref + (size_t)t * rows), "reference");
        for (uint32_t r = 0; r < rows; r++) {
            if (acc) ref[(size_t)t * rows + r] += y0_h[(size_t)t * rows + r];
            qn_h_ok(h, qn_dequant_row(qfmts[f].type, raw + r * rb, deq, cols), "dequantize");
            double s = 0, bmax = 0; /* test_qmatvec's S: |x| (|w| + the block's range) */
            for (uint32_t k = 0; k < cols; k++) {
                if (k % ti->blck == 0) {
                    bmax = 0;
                    for (uint32_t m = k; m < k + ti->blck; m++) bmax = fmax(bmax, fabsf(deq[m]));
                }
                s += fabs((double)xt[k]) * (fabsf(deq[k]) + bmax);
            }
            max_s = fmax(max_s, s);
        }
    }
    char what[160];
    snprintf(what, sizeof what, "%s %ux%u T=%u wg %u rows/wg %u xsh %u%s%s (%s) S %.3g", ti->name, rows, cols, T,
             qlayouts[layout].wg, rpw, qlayouts[layout].xsh, acc ? " accumulate" : "", wxn ? " +xn" : "",
             qn_pipe_info(p)->name, max_s);
    /* test_qmatvec's bound 1e-6 + 5e-7 * S (measured there 6e-8 * S), plus the norm's f32 rounding (~1e-7
     * relative per element, well inside it) */
    qn_h_check(h, what, y, ref, ny, 1e-6 + 5e-7 * max_s, 0);
    if (wxn) {
        char w2[180];
        snprintf(w2, sizeof w2, "%s: xn", what);
        qn_h_check(h, w2, xn, xr, (size_t)T * cols, 2e-6, 2e-6);
    }
    qn_h_reset(h);
}

/* ---- --bench ---------------------------------------------------------------------------------------------- */

static qn_buf *filled(struct qn_h *h, const char *name, uint64_t bytes, uint32_t word)
{
    qn_buf *b = qn_h_buffer(h, name, bytes);
    qn_h_ok(h, qn_buf_fill(h->v, b, 0, b->size, word), name);
    return b;
}

/* 48 x (matvec_norm W_moe, barrier, moe_router, barrier) vs 48 x (matvec_norm_route, barrier) at E 512, K 10, Is 512 */
static void bench_route(struct qn_h *h, qn_pipe *pn)
{
    const uint32_t H = 2048, E = 512, K = 10, Is = 512, rows = E + 2 * Is + 1, reps = 48, rpw = qn_pipe_spec(pn, 1);
    qn_pipe *pr = qn_h_pipe(h, QN_K_MATVEC_NORM_ROUTE_BF16, qn_pipe_spec(pn, 0), rpw, 4, 1, H / 4);
    qn_pipe *rt = qn_h_pipe(h, QN_K_MOE_ROUTER, 256);
    qn_buf *W[4];
    for (int i = 0; i < 4; i++) W[i] = filled(h, "W", (uint64_t)rows * H * 2, 0x3c003c00u + (uint32_t)i);
    qn_buf *x = filled(h, "x", H * 4, 0x3f800000u), *nwt = filled(h, "norm w", H * 4, 0x3d000000u);
    qn_buf *xn = qn_h_buffer(h, "xn", H * 4), *m = qn_h_buffer(h, "m", rows * 4), *ids = qn_h_buffer(h, "ids", K * 4);
    qn_buf *w = qn_h_buffer(h, "w", K * 4), *sg = qn_h_buffer(h, "sg", 4), *act = qn_h_buffer(h, "act", (K + 1) * Is * 4);
    qn_buf *cnt = filled(h, "count", 16, 0);
    qn_pc_mv_norm pcn = { .rows = rows, .cols = H, .flags = QN_MATVEC_WRITE_XN, .eps = 1e-6f, .w_add = 1 };
    qn_pc_moe pcr = { .T = 1, .E = E, .K = K, .Is = Is, .m_stride = rows, .act_stride = Is, .flags = QN_MOE_NORM_TOPK };
    qn_pc_mv_route pcf = { .rows = rows, .cols = H, .flags = QN_MATVEC_WRITE_XN, .eps = 1e-6f, .w_add = 1, .E = E,
                           .K = K, .Is = Is, .act_stride = Is, .rflags = QN_MOE_NORM_TOPK };
    double best[2] = { INFINITY, INFINITY };
    for (int it = 0; it < 5; it++) {
        qn_h_ok(h, qn_cmd_begin(h->cmd), "bench");
        qn_cmd_mark(h->cmd, "matvec_norm + router");
        for (uint32_t r = 0; r < reps; r++) {
            qn_cmd_dispatch_n(h->cmd, pn, QN_BINDS(QN_BIND(W[r % 4]), QN_BIND(x), QN_BIND(m), QN_BIND(nwt), QN_BIND(xn)),
                              &pcn, sizeof pcn, (rows + rpw - 1) / rpw);
            qn_cmd_barrier(h->cmd);
            qn_cmd_dispatch_n(h->cmd, rt, QN_BINDS(QN_BIND(m), QN_BIND(ids), QN_BIND(w), QN_BIND(sg), QN_BIND(act)), &pcr,
                              sizeof pcr, 1);
            qn_cmd_barrier(h->cmd);
        }
        qn_cmd_mark(h->cmd, "matvec_norm_route");
        for (uint32_t r = 0; r < reps; r++) {
            qn_cmd_dispatch_n(h->cmd, pr, QN_BINDS(QN_BIND(W[r % 4]), QN_BIND(x), QN_BIND(m), QN_BIND(nwt), QN_BIND(xn),
                                                   QN_BIND(ids), QN_BIND(w), QN_BIND(sg), QN_BIND(act), QN_BIND(cnt)),
                              &pcf, sizeof pcf, (rows + rpw - 1) / rpw);
            qn_cmd_barrier(h->cmd);
        }
        qn_h_ok(h, qn_cmd_end(h->cmd), "bench");
        qn_h_ok(h, qn_cmd_run(h->cmd), "bench");
        for (uint32_t i = 0; i < 2; i++) best[i] = fmin(best[i], qn_cmd_region(h->cmd, i, NULL));
    }
    double us0 = best[0] * 1e3 / reps, us1 = best[1] * 1e3 / reps;
    printf("bench moe dense + router %u x %u bf16, E %u K %u: matvec_norm+router %7.2f us, matvec_norm_route %7.2f us "
           "(%+.2f us)\n", rows, H, E, K, us0, us1, us1 - us0);
    qn_h_reset(h);
}

static void bench(struct qn_h *h)
{
    /* Qwen3-Next-80B: H 2048; GDN in-projection 12352 rows, attention q|gate|k|v 9216, MoE dense part
     * (router 512 | shared gate 512 | shared up 512 | gate 1) 1537, lm_head 151936; bf16, and Q4_K / Q6_K as
     * in a Q4_K_M file (qmatvec's default layout; blocks filled with a constant: finite, values irrelevant) */
    static const struct { const char *what; uint32_t rows, qtype; } bs[] = {
        { "gdn in_proj", 12352, 0 }, { "attn qkv", 9216, 0 }, { "moe dense", 1537, 0 }, { "lm_head", 151936, 0 },
        { "gdn in_proj", 12352, QN_GGML_Q4_K }, { "moe dense", 1537, QN_GGML_Q4_K }, { "lm_head", 151936, QN_GGML_Q6_K },
    };
    const uint32_t H = 2048, reps = 48, wg = 256, rpw8 = 8;
    qn_pipe *pn = qn_h_pipe(h, QN_K_MATVEC_NORM_BF16, wg, rpw8, 4, 1, H / 4);
    qn_pipe *pr = qn_h_pipe(h, QN_K_RMSNORM, 256);
    for (size_t s = 0; s < sizeof bs / sizeof bs[0]; s++) {
        uint32_t rows = bs[s].rows, nw = rows > 20000 ? 1 : 4, q = bs[s].qtype;
        uint64_t rb = (uint64_t)H * 2;
        if (q) qn_h_ok(h, qn_ggml_row_bytes(q, H, &rb), "row bytes");
        uint64_t wbytes = (uint64_t)rows * rb;
        if (wbytes > qn_vk_caps(h->v)->max_storage_range) continue;
        qn_pipe *pm = q ? qn_h_pipe_default(h, q == QN_GGML_Q4_K ? QN_K_MATVEC_Q4_K : QN_K_MATVEC_Q6_K)
                        : qn_h_pipe(h, QN_K_MATVEC_BF16, wg, rpw8, 4, 1, 0);
        qn_pipe *pq = q ? qn_h_pipe_default(h, q == QN_GGML_Q4_K ? QN_K_MATVEC_NORM_Q4_K : QN_K_MATVEC_NORM_Q6_K) : pn;
        uint32_t rpw = qn_pipe_spec(pm, 1), rpwn = qn_pipe_spec(pq, 1);
        qn_buf *W[4];
        for (uint32_t i = 0; i < nw; i++) W[i] = filled(h, "W", wbytes, 0x3c003c00u);
        qn_buf *x = filled(h, "x", H * 4, 0x3f800000u), *nwt = filled(h, "norm w", H * 4, 0x3d000000u);
        qn_buf *xn = qn_h_buffer(h, "xn", H * 4), *y = qn_h_buffer(h, "y", (uint64_t)rows * 4);
        qn_pc_rmsnorm pcr = { .rows = 1, .dim = H, .eps = 1e-6f, .w_add = 1 };
        qn_pc_matvec pcm = { .rows = rows, .cols = H, .flags = 0 };
        qn_pc_mv_norm pcn = { .rows = rows, .cols = H, .flags = QN_MATVEC_WRITE_XN, .eps = 1e-6f, .w_add = 1 };
        double best[2] = { INFINITY, INFINITY };
        for (int it = 0; it < 5; it++) {
            qn_h_ok(h, qn_cmd_begin(h->cmd), "bench");
            qn_cmd_mark(h->cmd, "rmsnorm + matvec");
            for (uint32_t r = 0; r < reps; r++) {
                qn_cmd_dispatch_n(h->cmd, pr, QN_BINDS(QN_BIND(x), QN_BIND(nwt), QN_BIND(xn)), &pcr, sizeof pcr, 1);
                qn_cmd_barrier(h->cmd);
                qn_cmd_dispatch_n(h->cmd, pm, QN_BINDS(QN_BIND(W[r % nw]), QN_BIND(xn), QN_BIND(y)), &pcm, sizeof pcm,
                                  (rows + rpw - 1) / rpw);
                qn_cmd_barrier(h->cmd);
            }
            qn_cmd_mark(h->cmd, "matvec_norm");
            for (uint32_t r = 0; r < reps; r++) {
                qn_cmd_dispatch_n(h->cmd, pq, QN_BINDS(QN_BIND(W[r % nw]), QN_BIND(x), QN_BIND(y), QN_BIND(nwt),
                                                       QN_BIND(xn)), &pcn, sizeof pcn, (rows + rpwn - 1) / rpwn);
                qn_cmd_barrier(h->cmd);
            }
            qn_h_ok(h, qn_cmd_end(h->cmd), "bench");
            qn_h_ok(h, qn_cmd_run(h->cmd), "bench");
            for (uint32_t i = 0; i < 2; i++) best[i] = fmin(best[i], qn_cmd_region(h->cmd, i, NULL));
        }
        double us0 = best[0] * 1e3 / reps, us1 = best[1] * 1e3 / reps;
        printf("bench %-12s %6u x %u %-4s: rmsnorm+matvec %7.2f us, matvec_norm %7.2f us (%+.2f us, %5.0f GB/s)\n",
               bs[s].what, rows, H, q ? qn_ggml_type(q)->name : "bf16", us0, us1, us1 - us0,
               (double)wbytes / (us1 * 1e-6) / 1e9);
        qn_h_reset(h);
    }
    bench_route(h, pn);
}

/* ---- --bench-small: decode matvec layouts (today's vs few rows per workgroup) at the decode shapes ---------- */

/* spec 0-5 of matvec.comp / qmatvec.comp: WG, ROWS, UNROLL, SGROWS, XSH, PRE (prefetch) */
struct lay { uint32_t s[6]; const char *what; };
/* block types: today's default (qmatvec.comp's; its route variant stages only H) first, then candidates */
static const struct lay qlays[] = {
    { { 256, 16, 2, 2, 1024, 1 }, "default" }, { { 256, 16, 2, 2, 1024, 0 }, "default, no prefetch" },
    { { 128, 4, 2, 1, 1024, 1 }, "small (forward norm default)" }, { { 128, 4, 2, 1, 1024, 0 }, "small, no prefetch" },
    { { 128, 4, 2, 1, 0, 1 }, "small, x via L1" }, { { 128, 8, 2, 1, 1024, 1 }, "8 rows" },
    { { 64, 2, 2, 1, 1024, 1 }, "WG 64, 2 rows" }, { { 128, 4, 4, 1, 1024, 1 }, "unroll 4 (forward plain default)" },
    { { 128, 8, 2, 4, 0, 1 }, "2 sets of 4 rows, split" }, { { 128, 4, 2, 2, 1024, 1 }, "2 sets of 2 rows, split" },
    { { 256, 4, 2, 1, 1024, 1 }, "WG 256, 4 rows split 2" },
};
/* dense (the f32 router): the H100 board's matvec layout (x staged for the norm variants) first */
static const struct lay dlays[] = {
    { { 256, 8, 4, 1, 512, 1 }, "board" }, { { 256, 8, 4, 1, 512, 0 }, "board, no prefetch" },
    { { 128, 1, 4, 1, 0, 1 }, "small (forward f32 default)" }, { { 128, 1, 4, 1, 0, 0 }, "small, no prefetch" },
    { { 128, 1, 4, 1, 512, 1 }, "small, x staged" }, { { 128, 2, 4, 1, 0, 1 }, "2 rows (forward bf16 default)" },
    { { 256, 2, 4, 1, 0, 1 }, "WG 256, 2 rows" }, { { 64, 1, 4, 1, 0, 1 }, "WG 64, 1 row" },
    { { 256, 4, 4, 1, 0, 1 }, "WG 256, 4 rows" }, { { 128, 2, 8, 1, 0, 1 }, "unroll 8" },
};
#define NQL (sizeof qlays / sizeof qlays[0])
static bool bench_quick; /* --bench-small with < 16 MiB of copies (a functional run on lavapipe): 1 run, few reps */
static const char *bench_only; /* --bench-small MB NAME: only the shapes whose name contains NAME */
#define NDL (sizeof dlays / sizeof dlays[0])

/* a layout from env NAME ("WG,ROWS,UNROLL,SGROWS,XSH" as forward_pipes.c reads it), prefetch on; false if unset */
static bool env_lay(const char *name, struct lay *l)
{
    const char *e = getenv(name);
    unsigned v[5];
    if (!e || sscanf(e, "%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4]) != 5 || v[0] < 32 || !v[1] || !v[2] || !v[3])
        return false;
    *l = (struct lay){ { v[0], v[1], v[2], v[3], v[4], 1 }, name };
    return true;
}

/* The GPU must be busy for a while before a timed region (run 13: from idle, at low clocks, the kernel benches read
 * 2-4x slower than the same kernels in the model): each timed submission first runs about QNEXT_BENCH_WARM_MS (default
 * 50) ms of the same dispatches (sized by a probe run), then the timed region. */
static uint32_t warm_count(double probe_ms, uint32_t reps)
{
    const char *e = getenv("QNEXT_BENCH_WARM_MS");
    double ms = e ? atof(e) : 50.0, per = probe_ms / reps;
    if (bench_quick || !(per > 0) || ms <= 0) return 0;
    double n = ms / per;
    return n > 20000 ? 20000 : (uint32_t)n;
}

/* Record n dispatches of p over the weight copies W[(r0 + r) % nw], a barrier after each (as in the graph). */
static void rec_mv(struct qn_h *h, qn_pipe *p, qn_buf **W, uint32_t nw, qn_buf *x, qn_buf *y, qn_buf *nwt, qn_buf *xn,
                   const void *pc, uint32_t pcs, uint32_t rows, bool norm, uint32_t n)
{
    uint32_t rpw = qn_pipe_spec(p, 1);
    for (uint32_t r = 0; r < n; r++) {
        if (norm)
            qn_cmd_dispatch_n(h->cmd, p, QN_BINDS(QN_BIND(W[r % nw]), QN_BIND(x), QN_BIND(y), QN_BIND(nwt), QN_BIND(xn)),
                              pc, pcs, (rows + rpw - 1) / rpw);
        else
            qn_cmd_dispatch_n(h->cmd, p, QN_BINDS(QN_BIND(W[r % nw]), QN_BIND(x), QN_BIND(y)), pc, pcs,
                              (rows + rpw - 1) / rpw);
        qn_cmd_barrier(h->cmd);
    }
}

/* Time `reps` dispatches of p over the weight copies (rec_mv) after a warm-up: best of 5 runs, us per dispatch. */
static double time_mv(struct qn_h *h, qn_pipe *p, qn_buf **W, uint32_t nw, qn_buf *x, qn_buf *y, qn_buf *nwt, qn_buf *xn,
                      const void *pc, uint32_t pcs, uint32_t rows, bool norm)
{
    const uint32_t reps = bench_quick ? nw : nw < 48 ? 48 : nw;
    double best = INFINITY;
    uint32_t warm = 0;
    for (int it = 0; it < (bench_quick ? 1 : 6); it++) { /* run 0: the probe that sizes the warm-up */
        qn_h_ok(h, qn_cmd_begin(h->cmd), "bench");
        if (warm) {
            qn_cmd_mark(h->cmd, "warm-up");
            rec_mv(h, p, W, nw, x, y, nwt, xn, pc, pcs, rows, norm, warm);
        }
        qn_cmd_mark(h->cmd, "mv");
        rec_mv(h, p, W, nw, x, y, nwt, xn, pc, pcs, rows, norm, reps);
        qn_h_ok(h, qn_cmd_end(h->cmd), "bench");
        qn_h_ok(h, qn_cmd_run(h->cmd), "bench");
        double ms = qn_cmd_region(h->cmd, warm ? 1 : 0, NULL);
        if (it == 0 && !bench_quick) warm = warm_count(ms, reps);
        else best = fmin(best, ms);
    }
    return best * 1e3 / reps;
}

/* copies of `bytes` so that together they are >= mb MiB (beyond the H100's 50 MB L2), at most 64 */
static uint32_t ncopies(uint64_t bytes, uint32_t mb)
{
    uint64_t n = ((uint64_t)mb << 20) / (bytes ? bytes : 1) + 1;
    return n < 2 ? 2 : n > 64 ? 64 : (uint32_t)n;
}

/* One decode shape: every layout of its family, us per dispatch and GB/s (weight bytes). */
static void bench_shape(struct qn_h *h, const char *what, enum qn_kernel k, uint32_t qtype, uint32_t rows, uint32_t cols,
                        bool norm, uint32_t mb)
{
    if (bench_only && !strstr(what, bench_only)) return;
    uint64_t rb = (uint64_t)cols * 4;
    if (qtype) qn_h_ok(h, qn_ggml_row_bytes(qtype, cols, &rb), "row bytes");
    uint64_t wbytes = (rows * rb + 15) / 16 * 16;
    if (wbytes > qn_vk_caps(h->v)->max_storage_range) return;
    uint32_t nw = ncopies(wbytes, mb);
    qn_buf *W[64];
    for (uint32_t i = 0; i < nw; i++) W[i] = filled(h, "W", wbytes, 0x3c003c00u + i);
    qn_buf *x = filled(h, "x", cols * 4, 0x3f800000u), *nwt = filled(h, "norm w", cols * 4, 0x3d000000u);
    qn_buf *xn = qn_h_buffer(h, "xn", cols * 4), *y = qn_h_buffer(h, "y", (uint64_t)rows * 4);
    qn_pc_matvec pcm = { .rows = rows, .cols = cols, .flags = 0 };
    qn_pc_mv_norm pcn = { .rows = rows, .cols = cols, .flags = QN_MATVEC_WRITE_XN, .eps = 1e-6f, .w_add = 1 };
    const struct lay *ls = qtype ? qlays : dlays;
    size_t nl = qtype ? NQL : NDL;
    struct lay el;
    bool env = env_lay(qtype ? "QNEXT_MV_SMALL" : "QNEXT_MV_SMALL_F", &el);
    double t0 = 0;
    for (size_t l = 0; l < nl + env; l++) {
        const struct lay *L = l < nl ? &ls[l] : &el;
        qn_pipe *p = qn_h_pipe_spec(h, k, L->s, 6);
        double us = norm ? time_mv(h, p, W, nw, x, y, nwt, xn, &pcn, sizeof pcn, rows, true)
                         : time_mv(h, p, W, nw, x, y, NULL, NULL, &pcm, sizeof pcm, rows, false);
        if (l == 0) t0 = us;
        printf("bench-small %-16s %-22s %5u x %4u  %3u,%2u,%u,%u,%4u pre %u  %5u WGs %7.2f us %6.0f GB/s  x%.2f  %s\n",
               what, qn_pipe_info(p)->name, rows, cols, L->s[0], L->s[1], L->s[2], L->s[3], L->s[4], L->s[5],
               (rows + L->s[1] - 1) / L->s[1], us, (double)wbytes / (us * 1e-6) / 1e9, t0 / us, L->what);
    }
    qn_h_reset(h);
}

/* The route stage of one Qwen3-Next-80B Q4_K_M layer as the graph records it: router f32 512 rows, shared gate and up
 * Q4_K 512 rows each, shared_expert_gate f32 1 row; weights rotated over nw copies. */
struct rstage {
    uint32_t nw, reps;
    qn_buf *W[48][4], *x, *nwt, *xn, *m, *ids, *w, *sg, *act, *cnt;
    qn_pipe *pp[4];        /* per-part path: the pipeline of each part */
    qn_pipe *one;          /* route_mixed (NULL: the per-part path) */
    uint32_t groups;
};
enum { RS_H = 2048, RS_E = 512, RS_K = 10, RS_IS = 512, RS_ROWS = RS_E + 2 * RS_IS + 1 };
static const uint32_t rs_pr[4] = { RS_E, RS_IS, RS_IS, 1 }, rs_p0[4] = { 0, RS_E, RS_E + RS_IS, RS_E + 2 * RS_IS };

/* one layer's route stage over weight copy r % nw, then a barrier (as in the graph) */
static void rstage_rec(struct qn_h *h, const struct rstage *S, uint32_t r)
{
    qn_buf *const *W = S->W[r % S->nw];
    if (S->one) {
        qn_pc_route_one pc = { .m_rows = RS_ROWS, .cols = RS_H, .flags = QN_MATVEC_WRITE_XN, .eps = 1e-6f, .w_add = 1,
                               .E = RS_E, .K = RS_K, .Is = RS_IS, .act_stride = RS_IS, .rflags = QN_MOE_NORM_TOPK,
                               .groups = S->groups, .nparts = 4, .qmask = 6, .row0_0 = rs_p0[0], .rows_0 = rs_pr[0],
                               .row0_1 = rs_p0[1], .rows_1 = rs_pr[1], .row0_2 = rs_p0[2], .rows_2 = rs_pr[2],
                               .row0_3 = rs_p0[3], .rows_3 = rs_pr[3] };
        qn_cmd_dispatch_n(h->cmd, S->one, QN_BINDS(QN_BIND(W[0]), QN_BIND(S->x), QN_BIND(S->m), QN_BIND(S->nwt),
                                                   QN_BIND(S->xn), QN_BIND(S->ids), QN_BIND(S->w), QN_BIND(S->sg),
                                                   QN_BIND(S->act), QN_BIND(S->cnt), QN_BIND(W[1]), QN_BIND(W[2]),
                                                   QN_BIND(W[3]), QN_BIND(S->cnt)),
                          &pc, sizeof pc, S->groups);
    }
    for (int j = 0; j < 4 && !S->one; j++) {
        qn_pc_mv_route pc = { .rows = rs_pr[j], .cols = RS_H, .flags = j == 0 ? QN_MATVEC_WRITE_XN : 0, .eps = 1e-6f,
                              .w_add = 1, .E = RS_E, .K = RS_K, .Is = RS_IS, .act_stride = RS_IS,
                              .rflags = QN_MOE_NORM_TOPK, .row0 = rs_p0[j], .m_rows = RS_ROWS, .groups = S->groups };
        uint32_t rpw = qn_pipe_spec(S->pp[j], 1);
        qn_cmd_dispatch_n(h->cmd, S->pp[j], QN_BINDS(QN_BIND(W[j]), QN_BIND(S->x), QN_BIND(S->m), QN_BIND(S->nwt),
                                                     QN_BIND(S->xn), QN_BIND(S->ids), QN_BIND(S->w), QN_BIND(S->sg),
                                                     QN_BIND(S->act), QN_BIND(S->cnt)),
                          &pc, sizeof pc, (rs_pr[j] + rpw - 1) / rpw);
    }
    qn_cmd_barrier(h->cmd);
}

/* us per layer: best of 5 timed runs of reps layers, after a probe run that sizes the warm-up (QNEXT_BENCH_WARM_MS) */
static double rstage_time(struct qn_h *h, const struct rstage *S)
{
    double best = INFINITY;
    uint32_t warm = 0;
    for (int it = 0; it < (bench_quick ? 1 : 6); it++) { /* run 0: the probe */
        qn_h_ok(h, qn_cmd_begin(h->cmd), "bench");
        for (int part = warm ? 0 : 1; part < 2; part++) {
            qn_cmd_mark(h->cmd, part ? "route stage" : "warm-up");
            for (uint32_t r = 0; r < (part ? S->reps : warm); r++) rstage_rec(h, S, r);
        }
        qn_h_ok(h, qn_cmd_end(h->cmd), "bench");
        qn_h_ok(h, qn_cmd_run(h->cmd), "bench");
        double ms = qn_cmd_region(h->cmd, warm ? 1 : 0, NULL);
        if (it == 0 && !bench_quick) warm = warm_count(ms, S->reps);
        else best = fmin(best, ms);
    }
    return best * 1e3 / S->reps;
}

/* The route stage per layer: four matvec_norm_route dispatches counting on one counter for (dense, block) layout
 * pairs, then route_mixed (one dispatch) in its layouts (QNEXT_ROUTE_ONE_LAYOUT's WG,FROWS,QROWS,FUNROLL,QUNROLL). */
static void bench_route_stage(struct qn_h *h, uint32_t mb)
{
    if (bench_only && !strstr("route stage", bench_only)) return;
    uint64_t rbq;
    qn_h_ok(h, qn_ggml_row_bytes(QN_GGML_Q4_K, RS_H, &rbq), "row bytes");
    const uint64_t by[4] = { (uint64_t)RS_E * RS_H * 4, RS_IS * rbq, RS_IS * rbq, RS_H * 4 };
    static struct rstage S;
    S.nw = ncopies(by[0] + by[1] + by[2] + by[3], mb);
    S.nw = S.nw > 48 ? 48 : S.nw;
    for (uint32_t i = 0; i < S.nw; i++)
        for (int j = 0; j < 4; j++) S.W[i][j] = filled(h, "W", by[j], j == 1 || j == 2 ? 0x3c003c00u : 0x3a000000u + i);
    S.x = filled(h, "x", RS_H * 4, 0x3f800000u), S.nwt = filled(h, "norm w", RS_H * 4, 0x3d000000u);
    S.xn = qn_h_buffer(h, "xn", RS_H * 4), S.m = qn_h_buffer(h, "m", RS_ROWS * 4), S.ids = qn_h_buffer(h, "ids", RS_K * 4);
    S.w = qn_h_buffer(h, "w", RS_K * 4), S.sg = qn_h_buffer(h, "sg", 4), S.act = qn_h_buffer(h, "act", (RS_K + 1) * RS_IS * 4);
    S.cnt = filled(h, "count", 16, 0);
    S.reps = bench_quick ? S.nw : S.nw < 48 ? 48 : S.nw;
    double GB = (double)(by[0] + by[1] + by[2] + by[3]) / 1e9, t0 = 0;
    /* (dense layout, block layout): today's (board dense with x staged, qmatvec's defaults with H staged) first */
    static const struct { int d, q; } pairs[] = { { 0, 0 }, { 1, 1 }, { 2, 2 }, { 3, 3 }, { 2, 4 }, { 5, 2 }, { 6, 5 },
                                                  { 7, 6 }, { 2, 8 }, { 6, 2 }, { 8, 2 } };
    for (size_t pi = 0; pi < sizeof pairs / sizeof pairs[0]; pi++) {
        uint32_t sd[6], sq[6];
        memcpy(sd, dlays[pairs[pi].d].s, sizeof sd);
        memcpy(sq, qlays[pairs[pi].q].s, sizeof sq);
        if (sq[4] > RS_H / 4) sq[4] = RS_H / 4; /* as forward_pipes.c: the route variant stages H floats */
        qn_pipe *pd = qn_h_pipe_spec(h, QN_K_MATVEC_NORM_ROUTE_F32, sd, 6), *pq = qn_h_pipe_spec(h, QN_K_MATVEC_NORM_ROUTE_Q4_K, sq, 6);
        S.pp[0] = S.pp[3] = pd, S.pp[1] = S.pp[2] = pq, S.one = NULL, S.groups = 0;
        for (int j = 0; j < 4; j++) S.groups += (rs_pr[j] + qn_pipe_spec(S.pp[j], 1) - 1) / qn_pipe_spec(S.pp[j], 1);
        double us = rstage_time(h, &S);
        if (pi == 0) t0 = us;
        printf("bench-small route stage (f32 512 + q4_k 2x512 + f32 1, E 512 K 10) dense %u,%u,%u,%u,%u pre %u | q4_k "
               "%u,%u,%u,%u,%u pre %u: %4u WGs %7.2f us/layer %6.0f GB/s  x%.2f\n", sd[0], sd[1], sd[2], sd[3], sd[4],
               sd[5], sq[0], sq[1], sq[2], sq[3], sq[4], sq[5], S.groups, us, GB / (us * 1e-6), t0 / us);
    }
    static const uint32_t one[][5] = { { 256, 4, 8, 8, 2 }, { 128, 2, 4, 8, 2 }, { 512, 8, 16, 8, 2 },
                                       { 256, 8, 16, 16, 4 }, { 64, 1, 2, 8, 2 }, { 128, 4, 8, 16, 4 } };
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        const uint32_t sp[6] = { one[i][0], one[i][1], one[i][2], one[i][3], one[i][4], RS_H / 4 };
        S.one = qn_h_pipe_spec(h, QN_K_ROUTE_MIXED_Q4_K, sp, 6);
        S.groups = (RS_E + sp[1] - 1) / sp[1] + 2 * ((RS_IS + sp[2] - 1) / sp[2]) + 1;
        double us = rstage_time(h, &S);
        printf("bench-small route stage (f32 512 + q4_k 2x512 + f32 1, E 512 K 10) route_mixed %u,%u,%u,%u,%u: %4u WGs "
               "%7.2f us/layer %6.0f GB/s  x%.2f\n", sp[0], sp[1], sp[2], sp[3], sp[4], S.groups, us, GB / (us * 1e-6),
               t0 / us);
    }
    qn_h_reset(h);
}

/* ---- --bench-route: where the route stage's time goes ------------------------------------------------------- */

/* The 80B route stage (rstage's shapes) with a random f32 router (realistic logits for the top-K), weights rotated
 * over nw copies; each mode records one layer, then a barrier. */
struct rbench {
    uint32_t nw, reps, groups[3]; /* route_mixed workgroups: all parts, the router part alone, the block parts alone */
    qn_buf *W[64][4], *Wb[64], *x, *nwt, *xn, *m, *mr, *ids, *w, *sg, *act, *cnt, *cnt2; /* Wb: the router in bf16 */
    qn_pipe *one, *router;
};
enum rb_mode {
    RB_FULL, RB_NOTAIL, RB_NOCOUNT, RB_B16, RB_B16_NOCOUNT, RB_ROUTER, RB_EMPTY, RB_F32, RB_Q, RB_N
};
static const char *const rb_what[RB_N] = {
    "route_mixed as the graph records it (count + last-workgroup tail)",
    "route_mixed, count but never last (no tail)",
    "route_mixed, QN_ROUTE_NO_COUNT (m and xn only)",
    "route_mixed, the router in bf16 (QNEXT_ROUTER_BF16W=1)",
    "route_mixed NO_COUNT, the router in bf16",
    "moe_router alone on random logits (the tail as its own dispatch)",
    "moe_router with T = 0 (an empty dispatch: the floor)",
    "route_mixed NO_COUNT, the f32 router part alone (4 MB)",
    "route_mixed NO_COUNT, the two Q4_K parts alone (1.2 MB)",
};

static void rb_rec(struct qn_h *h, const struct rbench *S, uint32_t r, enum rb_mode mode)
{
    qn_buf *const *W = S->W[r % S->nw];
    qn_pc_moe pm = { .T = mode == RB_EMPTY ? 0 : 1, .E = RS_E, .K = RS_K, .Is = RS_IS, .m_stride = RS_ROWS,
                     .act_stride = RS_IS, .flags = QN_MOE_NORM_TOPK };
    if (mode == RB_ROUTER || mode == RB_EMPTY) {
        qn_cmd_dispatch_n(h->cmd, S->router, QN_BINDS(QN_BIND(S->mr), QN_BIND(S->ids), QN_BIND(S->w), QN_BIND(S->sg),
                                                      QN_BIND(S->act)), &pm, sizeof pm, 1);
        qn_cmd_barrier(h->cmd);
        return;
    }
    qn_pc_route_one pc = { .m_rows = RS_ROWS, .cols = RS_H, .flags = QN_MATVEC_WRITE_XN, .eps = 1e-6f, .w_add = 1,
                           .E = RS_E, .K = RS_K, .Is = RS_IS, .act_stride = RS_IS, .rflags = QN_MOE_NORM_TOPK,
                           .groups = S->groups[0], .nparts = 4, .qmask = 6, .row0_0 = rs_p0[0], .rows_0 = rs_pr[0],
                           .row0_1 = rs_p0[1], .rows_1 = rs_pr[1], .row0_2 = rs_p0[2], .rows_2 = rs_pr[2],
                           .row0_3 = rs_p0[3], .rows_3 = rs_pr[3] };
    qn_buf *b0 = W[0], *b1 = W[1], *b2 = W[2], *b3 = W[3], *cnt = S->cnt;
    uint32_t groups = S->groups[0];
    if (mode == RB_NOTAIL) pc.groups = 1u << 30, cnt = S->cnt2; /* the count never reaches it */
    if (mode == RB_NOCOUNT || mode == RB_F32 || mode == RB_Q || mode == RB_B16_NOCOUNT) pc.flags |= QN_ROUTE_NO_COUNT;
    if (mode == RB_B16 || mode == RB_B16_NOCOUNT) b0 = S->Wb[r % S->nw], pc.bmask = 1;
    if (mode == RB_F32) pc.nparts = 1, pc.qmask = 0, groups = S->groups[1];
    if (mode == RB_Q) {
        pc.nparts = 2, pc.qmask = 3, pc.row0_0 = rs_p0[1], pc.rows_0 = rs_pr[1], pc.row0_1 = rs_p0[2];
        pc.rows_1 = rs_pr[2], b0 = W[1], b1 = W[2], groups = S->groups[2];
    }
    qn_cmd_dispatch_n(h->cmd, S->one, QN_BINDS(QN_BIND(b0), QN_BIND(S->x), QN_BIND(S->m), QN_BIND(S->nwt),
                                               QN_BIND(S->xn), QN_BIND(S->ids), QN_BIND(S->w), QN_BIND(S->sg),
                                               QN_BIND(S->act), QN_BIND(cnt), QN_BIND(b1), QN_BIND(b2), QN_BIND(b3),
                                               QN_BIND(cnt)),
                      &pc, sizeof pc, groups);
    qn_cmd_barrier(h->cmd);
}

/* us per layer of one mode: best of 5 timed runs after a probe that sizes the warm-up (QNEXT_BENCH_WARM_MS) */
static double rb_time(struct qn_h *h, const struct rbench *S, enum rb_mode mode)
{
    double best = INFINITY;
    uint32_t warm = 0;
    for (int it = 0; it < (bench_quick ? 1 : 6); it++) {
        qn_h_ok(h, qn_cmd_begin(h->cmd), "bench-route");
        for (int part = warm ? 0 : 1; part < 2; part++) {
            qn_cmd_mark(h->cmd, part ? "timed" : "warm-up");
            for (uint32_t r = 0; r < (part ? S->reps : warm); r++) rb_rec(h, S, r, mode);
        }
        qn_h_ok(h, qn_cmd_end(h->cmd), "bench-route");
        qn_h_ok(h, qn_cmd_run(h->cmd), "bench-route");
        double ms = qn_cmd_region(h->cmd, warm ? 1 : 0, NULL);
        if (it == 0 && !bench_quick) warm = warm_count(ms, S->reps);
        else best = fmin(best, ms);
    }
    return best * 1e3 / S->reps;
}

/* The route stage's parts one by one (rb_what), route_mixed in the graph's layout (or QNEXT_ROUTE_ONE_LAYOUT),
 * then the tail's phases (moe_router's QN_RT_DEBUG) at router widths 256 (the graph's) and 512. */
static void bench_route_parts(struct qn_h *h, uint32_t mb)
{
    uint64_t rbq;
    qn_h_ok(h, qn_ggml_row_bytes(QN_GGML_Q4_K, RS_H, &rbq), "row bytes");
    const uint64_t by[4] = { (uint64_t)RS_E * RS_H * 4, RS_IS * rbq, RS_IS * rbq, RS_H * 4 };
    static struct rbench S;
    bench_quick = mb < 16;
    S.nw = ncopies(by[0] + by[1] + by[2] + by[3], mb);
    float *wr;
    S.W[0][0] = qn_h_input_f32(h, "W router", (size_t)RS_E * RS_H, -0.05f, 0.05f, &wr);
    uint16_t *wb = qn_h_alloc_bytes(h, by[0] / 2);
    for (size_t i = 0; i < (size_t)RS_E * RS_H; i++) wb[i] = qn_f32_to_bf16(wr[i]);
    for (uint32_t i = 0; i < S.nw; i++) {
        for (int j = 0; j < 4; j++)
            S.W[i][j] = j == 0 ? (i ? qn_h_upload(h, "W router", wr, by[0]) : S.W[0][0])
                               : filled(h, "W", by[j], j == 1 || j == 2 ? 0x3c003c00u : 0x3a000000u + i);
        S.Wb[i] = qn_h_upload(h, "W router bf16", wb, by[0] / 2);
    }
    S.x = qn_h_input_f32(h, "x", RS_H, -3, 3, NULL), S.nwt = qn_h_input_f32(h, "norm w", RS_H, -0.5f, 0.5f, NULL);
    S.mr = qn_h_input_f32(h, "m (random logits)", RS_ROWS, -3, 3, NULL);
    S.xn = qn_h_buffer(h, "xn", RS_H * 4), S.m = qn_h_buffer(h, "m", RS_ROWS * 4), S.ids = qn_h_buffer(h, "ids", RS_K * 4);
    S.w = qn_h_buffer(h, "w", RS_K * 4), S.sg = qn_h_buffer(h, "sg", 4), S.act = qn_h_buffer(h, "act", (RS_K + 1) * RS_IS * 4);
    S.cnt = filled(h, "count", 16, 0), S.cnt2 = filled(h, "count (never last)", 16, 0);
    S.reps = bench_quick ? S.nw : S.nw < 48 ? 48 : S.nw;
    uint32_t sp[6] = { 512, 8, 16, 8, 2, RS_H / 4 };
    const char *el = getenv("QNEXT_ROUTE_ONE_LAYOUT");
    if (el && sscanf(el, "%u,%u,%u,%u,%u", &sp[0], &sp[1], &sp[2], &sp[3], &sp[4]) != 5) sp[0] = 512;
    S.one = qn_h_pipe_spec(h, QN_K_ROUTE_MIXED_Q4_K, sp, 6);
    S.groups[1] = (RS_E + sp[1] - 1) / sp[1], S.groups[2] = 2 * ((RS_IS + sp[2] - 1) / sp[2]);
    S.groups[0] = S.groups[1] + S.groups[2] + 1;
    S.router = qn_h_pipe(h, QN_K_MOE_ROUTER, 256);
    printf("bench-route: route_mixed_q4_k %u,%u,%u,%u,%u (%u workgroups), %u weight copies, %u layers per run\n", sp[0],
           sp[1], sp[2], sp[3], sp[4], S.groups[0], S.nw, S.reps);
    for (int mode = 0; mode < RB_N; mode++)
        printf("bench-route %7.2f us  %s\n", rb_time(h, &S, (enum rb_mode)mode), rb_what[mode]);
    static const char *const dbg[4] = { "everything", "no shared expert", "no top-K selection", "neither" };
    for (uint32_t wg = 256; wg <= 512; wg *= 2)
        for (uint32_t d = 0; d < 4; d++) {
            S.router = qn_h_pipe(h, QN_K_MOE_ROUTER, wg, d);
            printf("bench-route %7.2f us  moe_router WG %u, QN_RT_DEBUG %u (%s)\n", rb_time(h, &S, RB_ROUTER), wg, d, dbg[d]);
        }
    qn_h_reset(h);
}

/* The decode shapes of a Qwen3-Next-80B Q4_K_M file that matter (docs/perf-runs-07-45.md run 12), weights replicated over
 * >= mb MiB (default 256) so that they come from DRAM. */
static void bench_small(struct qn_h *h, uint32_t mb)
{
    bench_quick = mb < 16;
    bench_shape(h, "out proj", QN_K_MATVEC_Q4_K, QN_GGML_Q4_K, 2048, 4096, false, mb);
    bench_shape(h, "gdn in_proj", QN_K_MATVEC_NORM_Q4_K, QN_GGML_Q4_K, 12352, 2048, true, mb);
    bench_shape(h, "q6_k part", QN_K_MATVEC_NORM_Q6_K, QN_GGML_Q6_K, 4096, 2048, true, mb);
    bench_shape(h, "shared gate", QN_K_MATVEC_NORM_Q4_K, QN_GGML_Q4_K, 512, 2048, true, mb);
    bench_shape(h, "gdn ba", QN_K_MATVEC_NORM_Q4_K, QN_GGML_Q4_K, 64, 2048, true, mb);
    bench_shape(h, "router f32", QN_K_MATVEC_NORM_F32, 0, 512, 2048, true, mb);
    bench_shape(h, "sh. exp gate f32", QN_K_MATVEC_NORM_F32, 0, 1, 2048, true, mb);
    bench_shape(h, "lm_head", QN_K_MATVEC_NORM_Q6_K, QN_GGML_Q6_K, 151936, 2048, true, mb); /* QNEXT_MV_SMALL_ROWS */
    bench_route_stage(h, mb);
}

/* The router epilogue cases: matvec_norm_route alone, in parts (one dispatch per part), route_mixed (one dispatch) */
static void route_tests(struct qn_h *h)
{
    /* the router epilogue: Qwen3-Next-80B's E 512, K 10, Is 512, H 2048 on the graph's layouts, then odd sizes */
    route_case(h, 0, 0, 1, 512, 10, 512, 2048, QN_MOE_NORM_TOPK);
    route_case(h, 0, 2, 1, 512, 10, 512, 2048, QN_MOE_NORM_TOPK | QN_MOE_ROUND_BF16);
    route_case(h, 1, 3, 3, 64, 4, 40, 200, 0);
    route_case(h, 2, 1, 2, 100, 7, 33, 129, QN_MOE_NORM_TOPK);
    route_case(h, 0, 4, 4, 60, 8, 24, 256, QN_MOE_NORM_TOPK);
    /* the parts: f32 rows WG 64 / 8 rows / x staged and the block rows WG 256, 64, 128 / 16 rows (as before the
     * small-row layouts); then forward_pipes.c's small-row layouts (dense 128 / 2 rows, blocks 128 / 4 rows, with
     * and without the prefetch) in the 80B file's four parts; odd shapes leave partial workgroups everywhere */
    static const uint32_t d8[6] = { 64, 8, 4, 1, 512, 1 }, d8s[6] = { 64, 8, 4, 1, 64, 1 }, d8m[6] = { 64, 8, 4, 1, 128, 1 };
    static const uint32_t q256[6] = { 256, 16, 2, 2, 0, 1 }, q64[6] = { 64, 16, 2, 2, 0, 1 }, q128[6] = { 128, 16, 2, 2, 0, 1 };
    static const uint32_t ds[6] = { 128, 2, 4, 1, 0, 1 }, qs[6] = { 128, 4, 2, 1, 512, 1 };
    static const uint32_t dsn[6] = { 128, 2, 4, 1, 0, 0 }, qsn[6] = { 128, 4, 2, 1, 512, 0 };
    route_parts_case(h, QN_GGML_Q8_0, QN_K_MATVEC_NORM_ROUTE_Q8_0, 1, 512, 10, 512, 2048, d8, q256, false);
    route_parts_case(h, QN_GGML_Q4_K, QN_K_MATVEC_NORM_ROUTE_Q4_K, 2, 64, 4, 40, 256, d8s, q64, false);
    route_parts_case(h, QN_GGML_Q6_K, QN_K_MATVEC_NORM_ROUTE_Q6_K, 1, 100, 7, 33, 512, d8m, q128, false);
    route_parts_case(h, QN_GGML_Q4_K, QN_K_MATVEC_NORM_ROUTE_Q4_K, 1, 512, 10, 512, 2048, ds, qs, true);
    route_parts_case(h, QN_GGML_Q6_K, QN_K_MATVEC_NORM_ROUTE_Q6_K, 3, 100, 7, 33, 512, dsn, qsn, true);
    route_parts_case(h, QN_GGML_Q8_0, QN_K_MATVEC_NORM_ROUTE_Q8_0, 2, 61, 5, 37, 256, ds, qsn, true);
}

/* route_mixed (one dispatch for all parts; test mv_norm_route_one, --route-one) */
static void route_one_tests(struct qn_h *h)
{
    /* route_mixed: the parts in one dispatch. The default layout (forward_pipes.c; two batches per lane since H100 run
     * 124) and run 18b's first one at the 80B file's shape, then layouts with rows past the teams (several rows per
     * team), several batches per lane (small unrolls), a workgroup of 64 / 128, partial workgroups in every part, two
     * parts, T in z, bf16-rounded logits */
    if (qn_kernel_infos[QN_K_ROUTE_MIXED_Q4_K].features & ~qn_vk_caps(h->v)->features) {
        printf("route_mixed: skipped (it needs subgroup arithmetic, which this device or QNEXT_NO_SUBGROUP lacks)\n");
        return;
    }
    static const uint32_t o_def[6] = { 512, 8, 16, 2, 1, 512 }, o_many[6] = { 128, 16, 12, 3, 1, 512 };
    static const uint32_t o_257[6] = { 256, 4, 8, 8, 2, 512 };
    static const uint32_t o_small[6] = { 64, 3, 5, 2, 1, 128 }, o_wide[6] = { 256, 1, 1, 16, 4, 64 };
    route_one_case(h, QN_GGML_Q4_K, QN_K_ROUTE_MIXED_Q4_K, 1, 512, 10, 512, 2048, o_def, true, QN_MOE_NORM_TOPK);
    route_one_case(h, QN_GGML_Q6_K, QN_K_ROUTE_MIXED_Q6_K, 1, 512, 10, 512, 2048, o_257, true,
                   QN_MOE_NORM_TOPK | QN_MOE_ROUND_BF16);
    route_one_case(h, QN_GGML_Q4_K, QN_K_ROUTE_MIXED_Q4_K, 3, 100, 7, 33, 512, o_many, true, QN_MOE_NORM_TOPK);
    route_one_case(h, QN_GGML_Q4_K, QN_K_ROUTE_MIXED_Q4_K, 2, 100, 7, 33, 512, o_many, true,
                   QN_MOE_NORM_TOPK | QN_MOE_CHAIN_OUT); /* the decode chain's mark */
    route_one_case(h, QN_GGML_Q8_0, QN_K_ROUTE_MIXED_Q8_0, 2, 61, 5, 37, 512, o_small, true, 0);
    route_one_case(h, QN_GGML_Q4_0, QN_K_ROUTE_MIXED_Q4_0, 1, 64, 4, 40, 256, o_wide, false, QN_MOE_NORM_TOPK);
    route_one_case(h, QN_GGML_Q5_K, QN_K_ROUTE_MIXED_Q5_K, 2, 100, 7, 33, 256, o_many, false, QN_MOE_NORM_TOPK);
    route_one_case(h, QN_GGML_Q6_K, QN_K_ROUTE_MIXED_Q6_K, 1, 64, 4, 40, 256, o_small, true, QN_MOE_NORM_TOPK);
    /* the router in bf16 (QNEXT_ROUTER_BF16W): the 80B shape, odd layouts with two and four parts, T > 1 */
    route_one_case_x(h, QN_GGML_Q4_K, QN_K_ROUTE_MIXED_Q4_K, 1, 512, 10, 512, 2048, o_def, true, QN_MOE_NORM_TOPK,
                     RT_PART0_B16);
    route_one_case_x(h, QN_GGML_Q6_K, QN_K_ROUTE_MIXED_Q6_K, 2, 100, 7, 33, 256, o_many, false, QN_MOE_NORM_TOPK,
                     RT_PART0_B16);
    route_one_case_x(h, QN_GGML_Q8_0, QN_K_ROUTE_MIXED_Q8_0, 3, 61, 5, 37, 512, o_small, true, 0, RT_PART0_B16);
    /* the 80B shape with bf16-rounded logits (ties among the 512) in the default layout and T 2 in the 257 one */
    route_one_case(h, QN_GGML_Q4_K, QN_K_ROUTE_MIXED_Q4_K, 1, 512, 10, 512, 2048, o_def, true,
                   QN_MOE_NORM_TOPK | QN_MOE_ROUND_BF16);
    route_one_case(h, QN_GGML_Q6_K, QN_K_ROUTE_MIXED_Q6_K, 2, 512, 10, 512, 2048, o_257, true, QN_MOE_ROUND_BF16);
}

/* moe_router on crafted logits against qn_ref_router: kind 0
 * random, 1 heavy ties (8 values, -0 and +0), 2 all equal (every expert a candidate),
 * 3 the top K in one subgroup's invocations (the bound from several keys per subgroup), at WG 64 / 256 / 512 */
static void router_case(struct qn_h *h, uint32_t wg, uint32_t T, uint32_t E, uint32_t K, int kind, uint32_t flags)
{
    const uint32_t Is = 24, ms = E + 2 * Is + 1;
    float *m_h = qn_h_alloc(h, (size_t)T * ms);
    qn_h_random(h, m_h, (size_t)T * ms, -4, 4);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t e = 0; e < E; e++) {
            float *v = &m_h[(size_t)t * ms + e];
            if (kind == 1) {
                uint32_t q = (uint32_t)((*v + 4.0f) * 1.0f) % 8u; /* 0 .. 7 from the random value */
                *v = q == 0 ? -0.0f : q == 1 ? 0.0f : (float)q * 0.5f - 2.0f;
            } else if (kind == 2) {
                *v = 1.25f;
            } else if (kind == 3) {
                *v = e % wg < 8 ? 2.0f + *v : *v - 4.0f; /* experts of invocations 0 .. 7 (one subgroup) win */
            }
        }
    qn_buf *m = qn_h_upload(h, "m", m_h, (size_t)T * ms * sizeof(float));
    qn_buf *ids = qn_h_buffer(h, "ids", (size_t)T * K * sizeof(int)), *w = qn_h_output(h, "w", (size_t)T * K);
    qn_buf *sg = qn_h_output(h, "sg", T), *act = qn_h_output(h, "act", (size_t)T * (K + 1) * Is);
    qn_pc_moe pm = { .T = T, .E = E, .K = K, .Is = Is, .m_stride = ms, .act_stride = Is, .flags = flags };
    qn_pipe *p = qn_h_pipe(h, QN_K_MOE_ROUTER, wg);
    qn_h_run(h, p, QN_BINDS(QN_BIND(m), QN_BIND(ids), QN_BIND(w), QN_BIND(sg), QN_BIND(act)), &pm, sizeof pm, T);
    char what[160];
    static const char *const kn[4] = { "random", "ties, -0 and +0", "all equal", "top K in one subgroup" };
    snprintf(what, sizeof what, "moe_router WG %u E=%u K=%u T=%u %s%s", wg, E, K, T, kn[kind],
             flags & QN_MOE_ROUND_BF16 ? " bf16 logits" : "");
    check_route(h, what, m_h, T, E, K, Is, Is, flags, ids, w, sg, act);
    qn_h_reset(h);
}

static void router_tests(struct qn_h *h)
{
    static const uint32_t wgs[3] = { 64, 256, 512 };
    for (int kind = 0; kind < 4; kind++)
        for (int i = 0; i < 3; i++) {
            uint32_t f = QN_MOE_NORM_TOPK | (kind == 0 && i == 1 ? QN_MOE_ROUND_BF16 : 0);
            router_case(h, wgs[i], 2, i == 0 ? 61 : 512, i == 0 ? 5 : 10, kind, f);
        }
    router_case(h, 256, 1, 20, 10, 0, 0); /* few elements per subgroup: the bound falls back to all */
    router_case(h, 512, 3, 1024, 64, 1, QN_MOE_NORM_TOPK); /* the limits */
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "mv_norm", argc, argv);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bench")) {
            bench(&h);
            bench_small(&h, 256);
            return qn_h_close(&h);
        }
        if (!strcmp(argv[i], "--route") || !strcmp(argv[i], "--route-one")) { /* only the router epilogue cases */
            if (!strcmp(argv[i], "--route")) route_tests(&h);
            route_one_tests(&h);
            router_tests(&h);
            return qn_h_close(&h);
        }
        if (!strcmp(argv[i], "--router")) { /* only moe_router on crafted logits */
            router_tests(&h);
            return qn_h_close(&h);
        }
        if (!strcmp(argv[i], "--bench-route")) { /* [MiB of weight copies]: the route stage's parts */
            bench_route_parts(&h, i + 1 < argc ? (uint32_t)strtoul(argv[i + 1], NULL, 10) : 64);
            return qn_h_close(&h);
        }
        if (!strcmp(argv[i], "--bench-small")) { /* [MiB of weight copies [shape name part]] */
            bench_only = i + 2 < argc ? argv[i + 2] : NULL;
            bench_small(&h, i + 1 < argc ? (uint32_t)strtoul(argv[i + 1], NULL, 10) : 256);
            return qn_h_close(&h);
        }
    }
    for (int d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int l = 0; l < (int)NLAYOUTS; l++) {
                if (shapes[s].rows * shapes[s].cols > 210000 && l > 1) continue; /* keep lavapipe time small */
                if (shapes[s].rows * shapes[s].cols > 1000000 && d > 0) continue;
                bool odd = (s + (size_t)l) % 2 != 0;
                run_case(&h, (struct mcase){ .d = d, .layout = l, .rows = shapes[s].rows, .cols = shapes[s].cols,
                                             .T = 1, .acc = false, .wxn = odd, .w_add = 1.0f });
            }
    for (int d = 0; d < 3; d++) {
        run_case(&h, (struct mcase){ d, 0, 33, 129, 1, true, true, 0.0f });    /* plain weight, accumulate */
        run_case(&h, (struct mcase){ d, 1, 64, 512, 4, true, true, 1.0f });    /* T in z, buffer path */
        run_case(&h, (struct mcase){ d, 0, 70, 2048, 3, false, true, 1.0f });  /* T in z, staged */
        run_case(&h, (struct mcase){ d, 4, 37, 1024, 2, true, false, 1.0f });  /* stage too small: buffer path */
        run_case(&h, (struct mcase){ d, 6, 19, 200, 2, false, true, 0.0f });
        run_case(&h, (struct mcase){ d, 2, 9, 33, 3, true, true, 1.0f });      /* odd cols: scalar path */
    }
    for (uint32_t f = 0; f < sizeof qfmts / sizeof qfmts[0]; f++) {
        uint32_t qk = qn_ggml_type(qfmts[f].type)->blck;
        for (uint32_t l = 0; l < sizeof qlayouts / sizeof qlayouts[0]; l++)
            qcase(&h, f, l, 33, 3 * qk, 1, l == 2, l % 2 == 0);
        qcase(&h, f, 0, 70, 2048, 1, false, true);  /* the real row length, staged */
        qcase(&h, f, 4, 70, 2048, 1, false, true);  /* ... in the small-row layout */
        qcase(&h, f, 1, 40, 2048, 2, true, true);   /* T in z through L1 */
        qcase(&h, f, 0, 9, qk, 3, false, false);
    }
    route_tests(&h);
    return qn_h_close(&h);
}
