/* bench_mv.c — matvec / copy bandwidth for `qnext selftest --bench [--sweep]` (see bench_mv.h).
 *
 * A problem is N copies of one [rows, cols] weight matrix (bf16 or a ggml block type) in one buffer, an
 * x vector and N outputs. The matrix is a 64-row tile of random values quantized with loader/quant.h,
 * repeated down the rows (cheap to build for the 151936-row lm_head), so each output row r is checked
 * against the double-precision reference of tile row r % 64. With env QNEXT_IDOT=1 the block formats' rows measure the
 * int8-dot twins (matvec_i8_* / matvec_norm_i8_*, qmatvec_i8.comp) in the same layouts (x stage at least cols / 4),
 * checked with the x quantization's error bound added: the same grid, the twin's numbers. */
#include "bench_mv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "quant.h"

#define TILE_ROWS 64u
#define NSPEC 6u /* matvec spec constants: wg, rows/wg, unroll, rows/subgroup, x stage (vec4), QN_PRE */

struct mv_prob {
    uint32_t type, rows, cols, ncopies, tile;
    bool norm;                            /* the RMSNorm-prologue kernel (matvec_norm_*): y = W rmsnorm(x) */
    uint64_t row_bytes, stride, y_stride; /* bytes: one row; between copies of W; between outputs */
    qn_buf *w, *x, *y, *nw, *xn;          /* nw, xn: the norm weight and normed-x output (norm only) */
    float *ref, *tol;                     /* [tile] reference of each tile row and its tolerance */
};

#define NORM_EPS 1e-6f /* the norm kernels' eps and w_add (Qwen3-Next's zero-centred weight) */
#define NORM_WADD 1.0f

/* env QNEXT_IDOT=1: the block formats' int8-dot twins (see the top) */
static bool bench_idot(void)
{
    const char *e = getenv("QNEXT_IDOT");
    return e && !strcmp(e, "1");
}

static enum qn_kernel mv_kernel(uint32_t type, bool norm)
{
    static const uint32_t qt[5] = { QN_GGML_Q8_0, QN_GGML_Q4_0, QN_GGML_Q4_K, QN_GGML_Q5_K, QN_GGML_Q6_K };
    static const enum qn_kernel ki[5] = { QN_K_MATVEC_I8_Q8_0, QN_K_MATVEC_I8_Q4_0, QN_K_MATVEC_I8_Q4_K,
                                          QN_K_MATVEC_I8_Q5_K, QN_K_MATVEC_I8_Q6_K };
    static const enum qn_kernel kn[5] = { QN_K_MATVEC_NORM_I8_Q8_0, QN_K_MATVEC_NORM_I8_Q4_0, QN_K_MATVEC_NORM_I8_Q4_K,
                                          QN_K_MATVEC_NORM_I8_Q5_K, QN_K_MATVEC_NORM_I8_Q6_K };
    for (int i = 0; i < 5 && bench_idot(); i++)
        if (type == qt[i]) return norm ? kn[i] : ki[i];
    if (norm) switch (type) {
    case QN_GGML_Q8_0: return QN_K_MATVEC_NORM_Q8_0;
    case QN_GGML_Q4_0: return QN_K_MATVEC_NORM_Q4_0;
    case QN_GGML_Q4_K: return QN_K_MATVEC_NORM_Q4_K;
    case QN_GGML_Q5_K: return QN_K_MATVEC_NORM_Q5_K;
    case QN_GGML_Q6_K: return QN_K_MATVEC_NORM_Q6_K;
    default: return QN_K_MATVEC_NORM_BF16;
    }
    switch (type) {
    case QN_GGML_Q8_0: return QN_K_MATVEC_Q8_0;
    case QN_GGML_Q4_0: return QN_K_MATVEC_Q4_0;
    case QN_GGML_Q4_K: return QN_K_MATVEC_Q4_K;
    case QN_GGML_Q5_K: return QN_K_MATVEC_Q5_K;
    case QN_GGML_Q6_K: return QN_K_MATVEC_Q6_K;
    default: return QN_K_MATVEC_BF16;
    }
}

static double gbps(double bytes, double ms) { return bytes / (ms * 1e-3) / 1e9; }
static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static void prob_destroy(struct qn_bench *b, struct mv_prob *m)
{
    qn_buf_destroy(b->v, &m->w);
    qn_buf_destroy(b->v, &m->x);
    qn_buf_destroy(b->v, &m->y);
    qn_buf_destroy(b->v, &m->nw);
    qn_buf_destroy(b->v, &m->xn);
    free(m->ref), free(m->tol);
    memset(m, 0, sizeof *m);
}

/* Reference and tolerance of the tile rows: f32 sums on the GPU vs double here; the error scale is
 * S = sum |x| (|w| + block range for block formats, whose offsets are applied through sums of x). The int8-dot twins
 * (QNEXT_IDOT=1) add sum |w| dx / 2: each x moved by at most half a step dx = max |x| / 127 of its 32-element block. */
static int tile_reference(struct mv_prob *m, const uint8_t *raw, const float *x)
{
    const qn_ggml_type_info *ti = qn_ggml_type(m->type);
    float *deq = malloc(m->cols * sizeof *deq);
    int rc = deq ? qn_matvec_ref(m->type, raw, m->tile, m->cols, x, m->ref) : qn_fail(-ENOMEM, "out of memory");
    for (uint32_t r = 0; rc >= 0 && r < m->tile; r++) {
        rc = qn_dequant_row(m->type, raw + r * m->row_bytes, deq, m->cols);
        double s = 0, bmax = 0;
        for (uint32_t k = 0; rc >= 0 && k < m->cols; k++) {
            if (ti->blck > 1 && k % ti->blck == 0)
                for (uint32_t j = k, e = k + ti->blck; j < e; j++) bmax = j == k ? fabsf(deq[j]) : fmax(bmax, fabsf(deq[j]));
            s += fabs((double)x[k]) * (fabsf(deq[k]) + bmax);
        }
        double q = 0;
        for (uint32_t k = 0; rc >= 0 && ti->blck > 1 && bench_idot() && k < m->cols; k += 32) {
            double amax = 0, sw = 0;
            for (uint32_t j = k; j < k + 32; j++) amax = fmax(amax, fabsf(x[j])), sw += fabsf(deq[j]);
            q += sw * amax / 127 / 2;
        }
        m->tol[r] = (float)(1e-6 + 2e-6 * s + q);
    }
    free(deq);
    return rc;
}

/* Upload the tiled matrix into every copy. */
static int upload_copies(struct qn_bench *b, struct mv_prob *m, const uint8_t *raw)
{
    uint64_t mat = (uint64_t)m->rows * m->row_bytes;
    uint8_t *host = malloc(mat + 4);
    if (!host) return qn_fail(-ENOMEM, "out of memory for a %llu-byte matrix", (unsigned long long)mat);
    for (uint32_t r = 0; r < m->rows; r++) memcpy(host + (uint64_t)r * m->row_bytes, raw + (r % m->tile) * m->row_bytes, m->row_bytes);
    memset(host + mat, 0, 4);
    int rc = 0;
    for (uint32_t c = 0; rc >= 0 && c < m->ncopies; c++)
        rc = qn_buf_write(b->v, m->w, c * m->stride, host, round_up(mat, 4));
    free(host);
    return rc;
}

/* `type` [rows, cols], replicated to at least `rotate_bytes` of distinct copies (0: one copy). */
static int prob_create(struct qn_bench *b, uint32_t type, uint32_t rows, uint32_t cols, uint64_t rotate_bytes,
                       bool norm, struct mv_prob *m)
{
    int rc = 0;
    float *wt = NULL, *xh = NULL, *nwh = NULL;
    uint8_t *raw = NULL;
    memset(m, 0, sizeof *m);
    m->type = type, m->rows = rows, m->cols = cols, m->tile = rows < TILE_ROWS ? rows : TILE_ROWS, m->norm = norm;
    QN_TRY(qn_ggml_row_bytes(type, cols, &m->row_bytes));
    uint64_t mat = (uint64_t)rows * m->row_bytes;
    m->ncopies = rotate_bytes > mat ? (uint32_t)((rotate_bytes + mat - 1) / mat) : 1;
    m->stride = round_up(mat + 4, 256);
    m->y_stride = round_up((uint64_t)rows * 4, 256);
    wt = malloc((size_t)m->tile * cols * sizeof *wt), xh = malloc(cols * sizeof *xh), nwh = malloc(cols * sizeof *nwh);
    raw = malloc(m->tile * m->row_bytes);
    m->ref = malloc(m->tile * sizeof *m->ref), m->tol = malloc(m->tile * sizeof *m->tol);
    if (!wt || !xh || !nwh || !raw || !m->ref || !m->tol) { rc = qn_fail(-ENOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < (size_t)m->tile * cols; i++) wt[i] = qn_rng_range(b->rng, -1, 1);
    for (uint32_t i = 0; i < cols; i++) xh[i] = qn_rng_range(b->rng, -1, 1);
    for (uint32_t i = 0; i < cols; i++) nwh[i] = qn_rng_range(b->rng, -0.5f, 0.5f);
    for (uint32_t r = 0; r < m->tile; r++) QN_TRY(qn_quant_row(type, wt + (size_t)r * cols, raw + r * m->row_bytes, cols));
    if (norm) { /* the reference multiplies the normed x (the kernel applies the same scale at the store) */
        QN_TRY(qn_buf_create(b->v, QN_MEM_DEVICE, (uint64_t)cols * 4, "bench norm w", &m->nw));
        QN_TRY(qn_buf_create(b->v, QN_MEM_DEVICE, (uint64_t)cols * 4, "bench xn", &m->xn));
        QN_TRY(qn_buf_write(b->v, m->nw, 0, nwh, (uint64_t)cols * 4));
    }
    float *xe = malloc(cols * sizeof *xe);
    if (!xe) { rc = qn_fail(-ENOMEM, "out of memory"); goto done; }
    double ss = 0;
    for (uint32_t i = 0; i < cols; i++) ss += (double)xh[i] * xh[i];
    double sc = 1.0 / sqrt(ss / cols + NORM_EPS);
    for (uint32_t i = 0; i < cols; i++) xe[i] = norm ? (float)(xh[i] * sc * (nwh[i] + NORM_WADD)) : xh[i];
    rc = tile_reference(m, raw, xe);
    free(xe);
    if (rc < 0) goto done;
    QN_TRY(qn_buf_create(b->v, QN_MEM_DEVICE, m->ncopies * m->stride, "bench W", &m->w));
    QN_TRY(qn_buf_create(b->v, QN_MEM_DEVICE, (uint64_t)cols * 4, "bench x", &m->x));
    QN_TRY(qn_buf_create(b->v, QN_MEM_DEVICE, m->ncopies * m->y_stride, "bench y", &m->y));
    QN_TRY(qn_buf_write(b->v, m->x, 0, xh, (uint64_t)cols * 4));
    QN_TRY(upload_copies(b, m, raw));
done:
    free(wt), free(xh), free(nwh), free(raw);
    if (rc < 0) prob_destroy(b, m);
    return rc;
}

/* Rows per binding piece: W is bound in pieces of at most maxStorageBufferRange (and 4 MiB in quick mode,
 * so CI exercises the split), a multiple of rpw rows whose W and y offsets keep the binding alignment. */
static int piece_rows(struct qn_bench *b, const struct mv_prob *m, uint32_t rpw, uint32_t *out)
{
    const struct qn_caps *c = qn_vk_caps(b->v);
    uint64_t range = c->max_storage_range - 4, align = c->min_storage_align ? c->min_storage_align : 16;
    if (b->quick && range > (4u << 20)) range = 4u << 20;
    uint64_t q = rpw;
    while (((q * m->row_bytes) % align || (q * 4) % align) && q < (uint64_t)rpw * 4096) q += rpw;
    uint64_t n = range / m->row_bytes / q * q;
    if (n == 0) return qn_fail(QN_E_UNSUPPORTED, "bench: a %llu-byte row does not fit a storage binding",
                               (unsigned long long)m->row_bytes);
    *out = n >= m->rows ? m->rows : (uint32_t)n;
    return 0;
}

static void record_mv(struct qn_bench *b, const qn_pipe *p, const struct mv_prob *m, uint32_t copy, uint32_t rpw,
                      uint32_t piece)
{
    for (uint32_t r0 = 0; r0 < m->rows; r0 += piece) {
        uint32_t n = m->rows - r0 < piece ? m->rows - r0 : piece;
        qn_pc_matvec pc = { .rows = n, .cols = m->cols };
        qn_pc_mv_norm pn = { .rows = n, .cols = m->cols, .eps = NORM_EPS, .w_add = NORM_WADD };
        uint64_t woff = copy * m->stride + (uint64_t)r0 * m->row_bytes, yoff = copy * m->y_stride + (uint64_t)r0 * 4;
        struct qn_bind wb = QN_BIND_RANGE(m->w, woff, round_up((uint64_t)n * m->row_bytes, 4)),
                       yb = QN_BIND_RANGE(m->y, yoff, (uint64_t)n * 4);
        if (m->norm)
            qn_cmd_dispatch_n(b->cmd, p, QN_BINDS(wb, QN_BIND(m->x), yb, QN_BIND(m->nw), QN_BIND(m->xn)), &pn, sizeof pn,
                              (n + rpw - 1) / rpw);
        else
            qn_cmd_dispatch_n(b->cmd, p, QN_BINDS(wb, QN_BIND(m->x), yb), &pc, sizeof pc, (n + rpw - 1) / rpw);
    }
}

/* One submission: a "warm-up" region of `warm` matvecs over every copy, then `iters` "run" regions of one matvec
 * over every copy each (barriers between all dispatches, as in a decode step). *ms: the fastest run region per
 * matvec, or with iters 0 the warm-up region per matvec; NAN without timestamps. */
static int run_passes(struct qn_bench *b, const qn_pipe *p, const struct mv_prob *m, uint32_t rpw, uint32_t piece,
                      uint32_t warm, int iters, double *ms)
{
    int rc = 0;
    QN_TRY(qn_cmd_begin(b->cmd));
    for (int i = -1; i < iters; i++) {
        if (i >= 0) qn_cmd_barrier(b->cmd);
        qn_cmd_mark(b->cmd, i >= 0 ? "run" : "warm-up");
        for (uint32_t k = 0; k < (i >= 0 ? 1 : warm); k++)
            for (uint32_t c = 0; c < m->ncopies; c++) {
                if (c || k) qn_cmd_barrier(b->cmd);
                record_mv(b, p, m, c, rpw, piece);
            }
    }
    QN_TRY(qn_cmd_end(b->cmd));
    QN_TRY(qn_cmd_run(b->cmd));
    *ms = iters ? NAN : qn_cmd_region(b->cmd, 0, NULL) / ((double)warm * m->ncopies);
    for (uint32_t i = 1; i < qn_cmd_nregions(b->cmd); i++) {
        double t = qn_cmd_region(b->cmd, i, NULL) / m->ncopies;
        if (isnan(*ms) || t < *ms) *ms = t;
    }
done:
    return rc;
}

/* Min time of one matvec (ms) over b->iters runs. The GPU first works on the same matvecs for about b->warm_ms
 * (one probe matvec sizes the warm-up) in the same submission as the runs, so every configuration is timed at
 * the clocks of a busy GPU, whatever ran (or idled: pipeline compiles, readbacks) before it. */
static int time_mv(struct qn_bench *b, const qn_pipe *p, const struct mv_prob *m, uint32_t rpw, double *ms)
{
    int rc = 0;
    uint32_t piece = 0, warm = 1;
    QN_TRY(piece_rows(b, m, rpw, &piece));
    if (b->warm_ms > 0) {
        double t;
        uint32_t per = m->ncopies * ((m->rows + piece - 1) / piece); /* dispatches per matvec over every copy */
        QN_TRY(run_passes(b, p, m, rpw, piece, 1, 0, &t));
        double n = t > 0 ? ceil(b->warm_ms / (t * m->ncopies)) : 1;
        double cap = per < QN_BENCH_WARM_DISPATCHES ? QN_BENCH_WARM_DISPATCHES / per : 1;
        warm = !(n >= 1) ? 1 : n > cap ? (uint32_t)cap : (uint32_t)n;
    }
    QN_TRY(run_passes(b, p, m, rpw, piece, warm, b->iters, ms));
done:
    return rc;
}

/* Check the outputs of the last copy: *ok, and the max abs error. */
static int check_mv(struct qn_bench *b, const struct mv_prob *m, bool *ok, double *max_err)
{
    float *got = malloc((size_t)m->rows * sizeof *got);
    if (!got) return qn_fail(-ENOMEM, "out of memory");
    int rc = qn_buf_read(b->v, m->y, (m->ncopies - 1) * m->y_stride, got, (uint64_t)m->rows * 4);
    *ok = rc >= 0, *max_err = 0;
    for (uint32_t r = 0; rc >= 0 && r < m->rows; r++) {
        double e = fabs((double)got[r] - m->ref[r % m->tile]);
        if (!(e <= m->tol[r % m->tile])) *ok = false;
        *max_err = isfinite(e) ? fmax(*max_err, e) : INFINITY;
    }
    free(got);
    return rc;
}

/* The board's layout (5 values) and QN_PRE 1 (the default). */
static void board_spec(const struct qn_bench *b, uint32_t type, uint32_t out[NSPEC])
{
    memcpy(out, b->spec[type == QN_GGML_BF16 ? 0 : 1], 5 * sizeof *out);
    out[5] = 1;
}

static double prob_bytes(const struct mv_prob *m)
{
    return (double)m->rows * m->row_bytes + m->cols * 4.0 + m->rows * 4.0;
}

/* One measured configuration of one problem: what the bench line and the sweep's row for it report. */
struct mv_meas {
    uint32_t spec[NSPEC];   /* the specialization constants the pipeline was built with */
    const char *name;       /* the kernel */
    double ms, gb, err;     /* min time of one matvec, GB/s (NAN when the result is wrong), max abs error */
};

/* Time + check spec on m: the one measuring function of --bench and --sweep. */
static int measure(struct qn_bench *b, const struct mv_prob *m, const uint32_t *spec, struct mv_meas *r)
{
    int rc = 0;
    qn_pipe *p;
    bool ok = false;
    enum qn_kernel k = mv_kernel(m->type, m->norm);
    uint32_t s[NSPEC];
    memcpy(s, spec, sizeof s);
    if (bench_idot() && m->type != QN_GGML_BF16) /* a twin: x always staged */
        s[4] = s[4] < m->cols / 4 ? m->cols / 4 : s[4];
    QN_TRY(qn_pipe_get(b->v, k, s, qn_kernel_infos[k].nspec < NSPEC ? qn_kernel_infos[k].nspec : NSPEC, &p));
    for (uint32_t i = 0; i < NSPEC; i++) r->spec[i] = qn_pipe_spec(p, i);
    r->name = qn_pipe_info(p)->name;
    QN_TRY(time_mv(b, p, m, r->spec[1], &r->ms));
    QN_TRY(check_mv(b, m, &ok, &r->err));
    r->gb = ok ? gbps(prob_bytes(m), r->ms) : NAN;
    ok ? b->passed++ : b->failed++;
done:
    return rc;
}

/* The line under a measurement: what was counted and how (the bench line and the sweep's board row print the
 * same, so the two can be compared; tests/cli checks that they agree). */
static void print_detail(const struct qn_bench *b, const struct mv_prob *m, const struct mv_meas *r)
{
    printf("     -> %.1f GB/s (%ux%u: %.1f MiB of weights + vectors per matvec, min of %d after %.0f ms of warm-up; "
           "%u distinct cop%s in turn; wg %u rows %u unroll %u sgrows %u xsh %u pre %u)\n", r->gb, m->rows,
           m->cols, prob_bytes(m) / 1048576.0, b->iters, b->warm_ms, m->ncopies, m->ncopies > 1 ? "ies" : "y",
           r->spec[0], r->spec[1], r->spec[2], r->spec[3], r->spec[4], r->spec[5]);
}

/* The lm_head shape of the bench lines and of the sweep's first problem (vocab x hidden). */
static void lm_head_shape(const struct qn_bench *b, uint32_t *rows, uint32_t *cols)
{
    *rows = b->quick ? 4096 : 151936, *cols = 2048;
}

static uint64_t rotate_bytes(const struct qn_bench *b) { return b->quick ? 4u << 20 : QN_BENCH_ROTATE_BYTES; }

/* ---- the plain --bench lines ---------------------------------------------------------------------- */

/* The ok / FAIL line of a measurement. */
static void print_verdict(const char *what, const struct mv_meas *r)
{
    printf("%-4s %-40s %9.4f ms   max abs err %.2g%s\n", isnan(r->gb) ? "FAIL" : "ok", what, r->ms, r->err,
           isnan(r->gb) ? " (out of tolerance)" : "");
}

static int bench_line(struct qn_bench *b, uint32_t type, uint32_t rows, uint32_t cols)
{
    struct mv_prob m;
    struct mv_meas r;
    uint32_t spec[NSPEC];
    int rc = prob_create(b, type, rows, cols, rotate_bytes(b), false, &m);
    if (rc < 0) return rc;
    board_spec(b, m.type, spec);
    rc = measure(b, &m, spec, &r);
    if (rc >= 0) {
        char what[96];
        snprintf(what, sizeof what, "bench %s %ux%u", r.name, rows, cols);
        print_verdict(what, &r);
        print_detail(b, &m, &r);
    }
    prob_destroy(b, &m);
    return rc;
}

/* vkCmdCopyBuffer and the copy kernel over the same two buffers. */
static int bench_copies(struct qn_bench *b, uint64_t bytes)
{
    int rc = 0;
    qn_buf *a = NULL, *d = NULL;
    qn_pipe *p;
    uint32_t wg = 256;
    uint64_t range = qn_vk_caps(b->v)->max_storage_range & ~(uint64_t)15;
    if (bytes > range) bytes = range;
    QN_TRY(qn_buf_create(b->v, QN_MEM_DEVICE, bytes, "copy src", &a));
    QN_TRY(qn_buf_create(b->v, QN_MEM_DEVICE, bytes, "copy dst", &d));
    QN_TRY(qn_buf_fill(b->v, a, 0, bytes, 0x3f800000u));
    QN_TRY(qn_pipe_get(b->v, QN_K_COPY, (uint32_t[]){ wg }, 1, &p));
    for (int kind = 0; kind < 2; kind++) {
        QN_TRY(qn_buf_fill(b->v, d, 0, bytes, 0));
        QN_TRY(qn_cmd_begin(b->cmd));
        for (int i = 0; i <= b->iters; i++) {
            if (i) qn_cmd_barrier(b->cmd);
            qn_cmd_mark(b->cmd, i ? "run" : "warm-up");
            qn_pc_copy pc = { .n = (uint32_t)(bytes / 16) };
            if (kind == 0) qn_cmd_copy(b->cmd, a, 0, d, 0, bytes);
            else qn_cmd_dispatch_n(b->cmd, p, QN_BINDS(QN_BIND(a), QN_BIND(d)), &pc, sizeof pc, 4096);
        }
        QN_TRY(qn_cmd_end(b->cmd));
        QN_TRY(qn_cmd_run(b->cmd));
        double ms = NAN;
        for (uint32_t i = 1; i < qn_cmd_nregions(b->cmd); i++)
            if (isnan(ms) || qn_cmd_region(b->cmd, i, NULL) < ms) ms = qn_cmd_region(b->cmd, i, NULL);
        float probe[4] = { 0 };
        QN_TRY(qn_buf_read(b->v, d, 0, probe, 8));
        QN_TRY(qn_buf_read(b->v, d, bytes - 8, probe + 2, 8));
        bool ok = probe[0] == 1.0f && probe[1] == 1.0f && probe[2] == 1.0f && probe[3] == 1.0f;
        ok ? b->passed++ : b->failed++;
        char what[96];
        snprintf(what, sizeof what, "bench %s %.0f MiB", kind ? "copy kernel (uvec4, 4096 groups of 256)" :
                 "copy device->device", bytes / 1048576.0);
        printf("%-4s %-40s %9.4f ms\n", ok ? "ok" : "FAIL", what, ms);
        if (kind == 0)
            printf("     -> %.1f GB/s copied (memory traffic %.1f GB/s: read + write)\n", gbps((double)bytes, ms),
                   gbps(2.0 * bytes, ms));
        else
            printf("     -> copy kernel: %.1f GB/s read+write (%.1f GB/s copied): the ceiling for the matvec lines\n",
                   gbps(2.0 * bytes, ms), gbps((double)bytes, ms));
    }
done:
    qn_buf_destroy(b->v, &a);
    qn_buf_destroy(b->v, &d);
    return rc;
}

int qn_bench_check(struct qn_bench *b)
{
    static const uint32_t types[] = { QN_GGML_Q8_0, QN_GGML_Q6_K, QN_GGML_Q5_K, QN_GGML_Q4_K, QN_GGML_Q4_0 };
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < sizeof types / sizeof types[0]; i++) {
        struct mv_prob m;
        struct mv_meas r;
        uint32_t spec[NSPEC];
        rc = prob_create(b, types[i], 512, 2048, 0, false, &m);
        board_spec(b, types[i], spec);
        if (rc >= 0) rc = measure(b, &m, spec, &r);
        if (rc >= 0) {
            char what[96];
            snprintf(what, sizeof what, "%s 512x2048", r.name);
            print_verdict(what, &r);
        }
        prob_destroy(b, &m);
    }
    return rc;
}

int qn_bench_run(struct qn_bench *b)
{
    int rc = 0;
    uint32_t vocab, hidden;
    lm_head_shape(b, &vocab, &hidden);
    QN_TRY(bench_line(b, QN_GGML_BF16, b->quick ? 1024 : 8192, hidden));
    QN_TRY(bench_line(b, QN_GGML_BF16, vocab, hidden));
    static const uint32_t qtypes[] = { QN_GGML_Q8_0, QN_GGML_Q6_K, QN_GGML_Q5_K, QN_GGML_Q4_K, QN_GGML_Q4_0 };
    for (size_t i = 0; i < sizeof qtypes / sizeof qtypes[0]; i++) QN_TRY(bench_line(b, qtypes[i], vocab, hidden));
    QN_TRY(bench_copies(b, b->quick ? 16u << 20 : 1u << 30));
done:
    return rc;
}

/* ---- --sweep ------------------------------------------------------------------------------------- */

/* values of each specialization constant (wg, rows/wg, unroll, rows/subgroup, x stage) and their counts */
struct sweep_grid { uint32_t v[NSPEC][5]; uint32_t n[NSPEC]; };
static const struct sweep_grid grid_bf16 = { { { 64, 128, 256, 512 }, { 1, 2, 4, 8, 16 }, { 1, 2, 4, 8 }, { 1, 2, 4 },
                                               { 0, 1024 }, { 1 } }, { 4, 5, 4, 3, 2, 1 } };
/* block formats: 8 warps x 1-4 rows each, or 4 warps; 1-4 rows per subgroup sharing each x run; x staged or not */
static const struct sweep_grid grid_quant = { { { 128, 256 }, { 4, 8, 16, 32 }, { 1, 2, 4 }, { 1, 2, 4 }, { 0, 1024 },
                                                { 1 } }, { 2, 4, 3, 3, 2, 1 } };
static const struct sweep_grid grid_quick = { { { 64 }, { 1, 4 }, { 1 }, { 1, 2 }, { 0, 1024 }, { 0, 1 } },
                                              { 1, 2, 1, 2, 2, 2 } };

struct sweep_res { uint32_t spec[NSPEC]; double gb[3]; double score; bool board, again; };

static int cmp_res(const void *a, const void *b)
{
    double x = ((const struct sweep_res *)a)->score, y = ((const struct sweep_res *)b)->score;
    return (y > x) - (y < x);
}

static void print_cfg(const char *head, const char *kname, const uint32_t *s)
{
    printf("%s %-17s wg %4u rows %2u unroll %u sgrows %u xsh %4u pre %u |", head, kname, s[0], s[1], s[2], s[3], s[4],
           s[5]);
}

static bool cfg_valid(struct qn_bench *b, const uint32_t *s)
{
    const struct qn_caps *c = qn_vk_caps(b->v);
    uint64_t shared = 16ull * (s[4] + 1) + 4ull * (s[4] / 4 + 1) + 4ull * (s[0] / 4 + 1) * s[3] + 4ull * s[0];
    return s[3] <= s[1] && s[0] <= c->max_wg_invocations && s[0] <= c->max_wg_size[0] && shared <= c->max_shared;
}

/* One sweep row: spec on the three problems (measure(), as the bench lines), printed; the board's row also gets
 * the bench line's detail for the first problem (the lm_head shape of the bench lines). */
static int sweep_row(struct qn_bench *b, struct mv_prob *pr, const char *kname, struct sweep_res *r)
{
    int rc = 0;
    struct mv_meas m[3];
    double logsum = 0;
    for (int s = 0; s < 3; s++) {
        QN_TRY(measure(b, &pr[s], r->spec, &m[s]));
        r->gb[s] = m[s].gb;
        logsum += log(isnan(r->gb[s]) ? 1e-9 : r->gb[s]) / 3;
    }
    memcpy(r->spec, m[0].spec, sizeof r->spec); /* the values applied */
    r->score = exp(logsum);
    print_cfg(r->again ? "again" : "sweep", kname, r->spec);
    for (int s = 0; s < 3; s++)
        printf(" %ux%u %7.1f%s", pr[s].rows, pr[s].cols, r->gb[s], isnan(r->gb[s]) ? " (WRONG RESULT)" : "");
    printf(" GB/s%s\n", r->board ? " (board)" : "");
    if (r->board) print_detail(b, &pr[0], &m[0]);
    fflush(stdout);
done:
    return rc;
}

/* The best rows by geometric mean and on each problem, the board keys of the best, and where the board's row
 * ranks. */
static void sweep_report(struct sweep_res *res, uint32_t nres, const struct mv_prob *pr, const char *kname)
{
    static const char *const keys[5] = { "wg", "rows", "unroll", "sgrows", "xsh" }; /* the board's keys (not pre) */
    qsort(res, nres, sizeof *res, cmp_res);
    if (nres) {
        printf("keys  %-17s", kname);
        for (uint32_t k = 0; k < 5; k++)
            printf("%s\"%smatvec_%s\": %u", k ? ", " : " ", pr[0].type == QN_GGML_BF16 ? "" : "q", keys[k], res[0].spec[k]);
        printf(" (boards/*.json tuning: the best geometric mean)\n");
    }
    for (uint32_t i = 0; i < nres && i < 5; i++) {
        print_cfg("best ", kname, res[i].spec);
        printf(" geometric mean %.1f GB/s (%.1f / %.1f / %.1f)\n", res[i].score, res[i].gb[0], res[i].gb[1], res[i].gb[2]);
    }
    for (int s = 0; s < 3 && nres; s++) {
        uint32_t bi = 0;
        for (uint32_t i = 1; i < nres; i++) if (res[i].gb[s] > res[bi].gb[s]) bi = i;
        print_cfg("best ", kname, res[bi].spec);
        printf(" on %ux%u: %.1f GB/s\n", pr[s].rows, pr[s].cols, res[bi].gb[s]);
    }
    for (uint32_t i = 0; i < nres; i++)
        if (res[i].board) {
            print_cfg("board", kname, res[i].spec);
            printf(" geometric mean %.1f GB/s (%.1f / %.1f / %.1f), rank %u of %u\n", res[i].score, res[i].gb[0],
                   res[i].gb[1], res[i].gb[2], i + 1, nres);
        }
}

/* env QNEXT_SWEEP_LAYOUTS="WG,ROWS,UNROLL,SGROWS,XSH[,PRE];..." (PRE: spec 5, 0 / 1 plus bits 4 and 8 of
 * qmatvec_i8.comp): the sweep measures these layouts instead of the grid
 * (a short list that fits a device run's time); up to `max` into out, their count (0: unset or none valid). */
static uint32_t env_layouts(uint32_t (*out)[NSPEC], uint32_t max)
{
    const char *e = getenv("QNEXT_SWEEP_LAYOUTS");
    uint32_t n = 0;
    for (const char *p = e; p && *p && n < max;) {
        unsigned v[NSPEC] = { 0, 0, 0, 0, 0, 1 };
        if (sscanf(p, "%u,%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) >= 5 && v[0] && v[1] && v[2] &&
            v[3] && (v[5] & ~12u) <= 1) { /* PRE: 0 / 1, + 4 the sum of squares while staging, + 8 (int8 twins) x by 4 */
            for (uint32_t k = 0; k < NSPEC; k++) out[n][k] = v[k];
            n++;
        }
        p += strcspn(p, ";");
        p += *p == ';';
    }
    return n;
}

/* The board's configuration (the bench lines'), then every other valid grid point (or QNEXT_SWEEP_LAYOUTS), on the
 * three problems; then the board's layout once more (row "again": run 17 read the first row at 753 / 551 / 359 GB/s
 * while its neighbours in the grid read ~1250 / 890 / 555, so the first row of a sweep may be measured low). */
static int sweep_kernel(struct qn_bench *b, const struct sweep_grid *g, struct mv_prob *pr, const char *kname)
{
    int rc = 0;
    uint32_t total = 1, nres = 0, lay[64][NSPEC], nlay = env_layouts(lay, 64);
    for (uint32_t a = 0; a < NSPEC; a++) total *= g->n[a];
    if (nlay) total = nlay;
    struct sweep_res *res = calloc(total + 1, sizeof *res), again = { .again = true };
    if (!res) return qn_fail(-ENOMEM, "out of memory");
    uint32_t bs[NSPEC];
    board_spec(b, pr[0].type, bs);
    for (uint32_t i = 0; i <= total; i++) {
        struct sweep_res *r = &res[nres];
        if (i == 0) memcpy(r->spec, bs, sizeof r->spec), r->board = true;
        else if (nlay) memcpy(r->spec, lay[i - 1], sizeof r->spec);
        else for (uint32_t a = 0, k = i - 1; a < NSPEC; k /= g->n[a], a++) r->spec[a] = g->v[a][k % g->n[a]];
        if (i && (!cfg_valid(b, r->spec) || !memcmp(r->spec, res[0].spec, sizeof r->spec))) continue;
        QN_TRY(sweep_row(b, pr, kname, r));
        nres++;
    }
    memcpy(again.spec, res[0].spec, sizeof again.spec);
    QN_TRY(sweep_row(b, pr, kname, &again));
    sweep_report(res, nres, pr, kname);
done:
    free(res);
    return rc;
}

/* Is kernel `name` in --sweep-only (comma-separated words, each matched as a substring)? */
static bool sweep_selected(const struct qn_bench *b, const char *name)
{
    if (!b->sweep_only || !*b->sweep_only) return true;
    for (const char *w = b->sweep_only; *w;) {
        size_t n = strcspn(w, ",");
        for (const char *p = name; n && *p; p++)
            if (!strncmp(p, w, n)) return true;
        w += n + (w[n] == ',');
    }
    return false;
}

int qn_bench_sweep(struct qn_bench *b)
{
    /* lm_head (the bench lines' shape), linear-attention in_proj (qkvz + ba fused: 12352 rows) and an out
     * projection (4096 -> 2048) */
    uint32_t shapes[3][2] = { { 0, 0 }, { 12352, 2048 }, { 2048, 4096 } };
    if (b->quick) shapes[1][0] = 772, shapes[1][1] = 256, shapes[2][0] = 128, shapes[2][1] = 512;
    lm_head_shape(b, &shapes[0][0], &shapes[0][1]);
    const char *en = getenv("QNEXT_SWEEP_NORM"); /* 1: the RMSNorm-prologue kernels (the model's in_proj / lm_head) */
    bool norm = en && !strcmp(en, "1");
    const char *es = getenv("QNEXT_SWEEP_SHAPES"); /* "R1xC1,R2xC2,R3xC3" instead (e.g. a fixed-cost probe of few rows) */
    unsigned sv[6];
    if (es && sscanf(es, "%ux%u,%ux%u,%ux%u", &sv[0], &sv[1], &sv[2], &sv[3], &sv[4], &sv[5]) == 6)
        for (int i = 0; i < 6; i++) shapes[i / 2][i % 2] = sv[i] ? sv[i] : 256;
    static const uint32_t types[] = { QN_GGML_BF16, QN_GGML_Q4_K, QN_GGML_Q6_K, QN_GGML_Q8_0, QN_GGML_Q5_K,
                                      QN_GGML_Q4_0 };
    printf("sweep: GB/s of weights + x + y per matvec, min of %d runs after %.0f ms of warm-up, each problem rotating\n"
           "over >= %llu MiB of distinct weights with a barrier between matvecs (measured as the bench lines); spec\n"
           "constants: wg (workgroup size), rows (rows per workgroup), unroll, sgrows (rows per subgroup), xsh (x staged\n"
           "in shared memory, vec4s); the first row of each kernel is the board's (the bench lines' layout)\n",
           b->iters, b->warm_ms, (unsigned long long)(rotate_bytes(b) >> 20));
    int rc = 0;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        if (!sweep_selected(b, qn_kernel_infos[mv_kernel(types[t], norm)].name)) continue;
        struct mv_prob pr[3] = { { 0 } };
        for (int s = 0; s < 3 && rc >= 0; s++) rc = prob_create(b, types[t], shapes[s][0], shapes[s][1], rotate_bytes(b), norm, &pr[s]);
        if (rc >= 0)
            rc = sweep_kernel(b, b->quick ? &grid_quick : t == 0 ? &grid_bf16 : &grid_quant, pr,
                              qn_kernel_infos[mv_kernel(types[t], norm)].name);
        for (int s = 0; s < 3; s++) prob_destroy(b, &pr[s]);
        if (rc < 0) break;
    }
    return rc;
}
