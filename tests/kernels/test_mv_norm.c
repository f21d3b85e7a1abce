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
#include <string.h>

#include "harness.h"
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

static void route_case(struct qn_h *h, int d, int layout, uint32_t T, uint32_t E, uint32_t K, uint32_t Is,
                       uint32_t cols, uint32_t rflags)
{
    uint32_t rows = E + 2 * Is + 1, as = Is + 3, rpw = layouts[layout].rows_per_wg;
    float *w_h, *x_h, *nw_h;
    qn_buf *W = weights(h, dtypes[d].kind, (size_t)rows * cols, &w_h);
    qn_buf *x = qn_h_input_f32(h, "x", (size_t)T * cols, -3, 3, &x_h);
    qn_buf *nw = qn_h_input_f32(h, "norm w", cols, -0.5f, 0.5f, &nw_h);
    qn_buf *xn = qn_h_output(h, "xn", (size_t)T * cols), *m = qn_h_output(h, "m", (size_t)T * rows);
    qn_buf *ids = qn_h_buffer(h, "ids", (size_t)T * K * 4), *w = qn_h_output(h, "w", (size_t)T * K);
    qn_buf *sg = qn_h_output(h, "sg", T), *act = qn_h_output(h, "act", (size_t)T * (K + 1) * as);
    uint32_t zero[8] = { 0 };
    qn_buf *cnt = qn_h_upload(h, "count", zero, sizeof zero);
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
        qn_h_run_z(h, p, QN_BINDS(QN_BIND(W), QN_BIND(x), QN_BIND(m), QN_BIND(nw), QN_BIND(xn), QN_BIND(ids), QN_BIND(w),
                                  QN_BIND(sg), QN_BIND(act), QN_BIND(cnt)),
                   &pc, sizeof pc, (rows + rpw - 1) / rpw, T);
        check_counters(h, cnt, T, what, run);
    }
    float *xr = ref_norm(h, x_h, nw_h, T, cols, 1.0f), *ref = qn_h_alloc(h, (size_t)T * rows);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t r = 0; r < rows; r++) {
            double s = 0;
            for (uint32_t c = 0; c < cols; c++) s += (double)w_h[(size_t)r * cols + c] * xr[(size_t)t * cols + c];
            ref[(size_t)t * rows + r] = (float)s;
        }
    char msg[200];
    snprintf(msg, sizeof msg, "%s: m", what); /* as run_case */
    qn_h_check(h, msg, m, ref, (size_t)T * rows, 1e-6 + 5e-8 * cols, 1e-5);
    snprintf(msg, sizeof msg, "%s: xn", what);
    qn_h_check(h, msg, xn, xr, (size_t)T * cols, 2e-6, 2e-6);
    check_route(h, what, qn_h_read(h, m, (size_t)T * rows), T, E, K, Is, as, rflags, ids, w, sg, act);
    qn_h_reset(h);
}

/* W_moe in two parts as a GGUF mixed-type fusion: the router rows [0, E) f32 (matvec_norm_route_f32), the rest
 * (shared gate, up, gate logit) in a block type (matvec_norm_route_<q>), two dispatches counting on one counter,
 * the first writing xn; m vs the f32 matvec and qn_matvec_ref, the routing vs qn_ref_router on the kernel's m. */
static void route_parts_case(struct qn_h *h, uint32_t qtype, enum qn_kernel qk, uint32_t T, uint32_t E, uint32_t K,
                             uint32_t Is, uint32_t cols, uint32_t qlayout_wg)
{
    uint32_t rows = E + 2 * Is + 1, nb = rows - E, as = Is, rpa = 8, rpb = 16;
    uint64_t rb;
    qn_h_ok(h, qn_ggml_row_bytes(qtype, cols, &rb), "row bytes");
    float *wa_h, *wq = qn_h_alloc(h, (size_t)nb * cols), *x_h, *nw_h;
    qn_buf *Wa = qn_h_input_f32(h, "W router", (size_t)E * cols, -1, 1, &wa_h);
    qn_h_random(h, wq, (size_t)nb * cols, -1, 1);
    size_t padded = (rb * nb + 3) & ~(size_t)3;
    uint8_t *raw = qn_h_alloc_bytes(h, padded);
    memset(raw, 0, padded);
    for (uint32_t r = 0; r < nb; r++) qn_h_ok(h, qn_quant_row(qtype, wq + (size_t)r * cols, raw + r * rb, cols), "quantize");
    qn_buf *Wb = qn_h_upload(h, "W shared", raw, padded);
    qn_buf *x = qn_h_input_f32(h, "x", (size_t)T * cols, -3, 3, &x_h);
    qn_buf *nw = qn_h_input_f32(h, "norm w", cols, -0.5f, 0.5f, &nw_h);
    qn_buf *xn = qn_h_output(h, "xn", (size_t)T * cols), *m = qn_h_output(h, "m", (size_t)T * rows);
    qn_buf *ids = qn_h_buffer(h, "ids", (size_t)T * K * 4), *w = qn_h_output(h, "w", (size_t)T * K);
    qn_buf *sg = qn_h_output(h, "sg", T), *act = qn_h_output(h, "act", (size_t)T * (K + 1) * as);
    uint32_t zero[8] = { 0 };
    qn_buf *cnt = qn_h_upload(h, "count", zero, sizeof zero);
    qn_pipe *pa = qn_h_pipe(h, QN_K_MATVEC_NORM_ROUTE_F32, 64, rpa, 4, 1, cols / 4);
    qn_pipe *pb = qn_h_pipe(h, qk, qlayout_wg, rpb, 2, 2, 0);
    uint32_t ga = (E + rpa - 1) / rpa, gb = (nb + rpb - 1) / rpb;
    qn_pc_mv_route pc = { .rows = E, .cols = cols, .flags = QN_MATVEC_WRITE_XN, .eps = 1e-6f, .w_add = 1.0f, .E = E,
                          .K = K, .Is = Is, .act_stride = as, .rflags = QN_MOE_NORM_TOPK, .row0 = 0, .m_rows = rows,
                          .groups = ga + gb };
    qn_pc_mv_route pq = pc;
    pq.rows = nb, pq.row0 = E, pq.flags = 0;
    char what[160];
    snprintf(what, sizeof what, "parts f32 + %s route E=%u K=%u Is=%u H=%u T=%u (%s, %s)", qn_ggml_type(qtype)->name,
             E, K, Is, cols, T, qn_pipe_info(pa)->name, qn_pipe_info(pb)->name);
    for (int run = 0; run < 2; run++) {
        qn_h_ok(h, qn_cmd_begin(h->cmd), what); /* both parts in one command buffer, no barrier between them */
        qn_cmd_dispatch_nz(h->cmd, pa, QN_BINDS(QN_BIND(Wa), QN_BIND(x), QN_BIND(m), QN_BIND(nw), QN_BIND(xn), QN_BIND(ids),
                                                QN_BIND(w), QN_BIND(sg), QN_BIND(act), QN_BIND(cnt)), &pc, sizeof pc, ga, T);
        qn_cmd_dispatch_nz(h->cmd, pb, QN_BINDS(QN_BIND(Wb), QN_BIND(x), QN_BIND(m), QN_BIND(nw), QN_BIND(xn), QN_BIND(ids),
                                                QN_BIND(w), QN_BIND(sg), QN_BIND(act), QN_BIND(cnt)), &pq, sizeof pq, gb, T);
        qn_h_ok(h, qn_cmd_end(h->cmd), what);
        qn_h_ok(h, qn_cmd_run(h->cmd), what);
        check_counters(h, cnt, T, what, run);
    }
    float *xr = ref_norm(h, x_h, nw_h, T, cols, 1.0f), *ref = qn_h_alloc(h, (size_t)T * rows);
    float *refq = qn_h_alloc(h, nb);
    for (uint32_t t = 0; t < T; t++) {
        const float *xt = xr + (size_t)t * cols;
        for (uint32_t r = 0; r < E; r++) {
            double a = 0;
            for (uint32_t c = 0; c < cols; c++) a += (double)wa_h[(size_t)r * cols + c] * xt[c];
            ref[(size_t)t * rows + r] = (float)a;
        }
        qn_h_ok(h, qn_matvec_ref(qtype, raw, nb, cols, xt, refq), "reference");
        memcpy(ref + (size_t)t * rows + E, refq, nb * sizeof(float));
    }
    char msg[200];
    snprintf(msg, sizeof msg, "%s: m", what); /* |xn| <= ~3, |w| <= ~1: both parts' bounds are below this one */
    qn_h_check(h, msg, m, ref, (size_t)T * rows, 1e-6 + 5e-7 * 3.0 * cols, 1e-5);
    snprintf(msg, sizeof msg, "%s: xn", what);
    qn_h_check(h, msg, xn, xr, (size_t)T * cols, 2e-6, 2e-6);
    check_route(h, what, qn_h_read(h, m, (size_t)T * rows), T, E, K, Is, as, QN_MOE_NORM_TOPK, ids, w, sg, act);
    qn_h_reset(h);
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

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "mv_norm", argc, argv);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench")) {
            bench(&h);
            return qn_h_close(&h);
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
        qcase(&h, f, 1, 40, 2048, 2, true, true);   /* T in z through L1 */
        qcase(&h, f, 0, 9, qk, 3, false, false);
    }
    /* the router epilogue: Qwen3-Next-80B's E 512, K 10, Is 512, H 2048 on the graph's layouts, then odd sizes */
    route_case(&h, 0, 0, 1, 512, 10, 512, 2048, QN_MOE_NORM_TOPK);
    route_case(&h, 0, 2, 1, 512, 10, 512, 2048, QN_MOE_NORM_TOPK | QN_MOE_ROUND_BF16);
    route_case(&h, 1, 3, 3, 64, 4, 40, 200, 0);
    route_case(&h, 2, 1, 2, 100, 7, 33, 129, QN_MOE_NORM_TOPK);
    route_case(&h, 0, 4, 4, 60, 8, 24, 256, QN_MOE_NORM_TOPK);
    route_parts_case(&h, QN_GGML_Q8_0, QN_K_MATVEC_NORM_ROUTE_Q8_0, 1, 512, 10, 512, 2048, 256);
    route_parts_case(&h, QN_GGML_Q4_K, QN_K_MATVEC_NORM_ROUTE_Q4_K, 2, 64, 4, 40, 256, 64);
    route_parts_case(&h, QN_GGML_Q6_K, QN_K_MATVEC_NORM_ROUTE_Q6_K, 1, 100, 7, 33, 512, 128);
    return qn_h_close(&h);
}
