/* cmd_selftest.c — `qnext selftest`: run every built-in kernel family on the chosen device against the
 * plain-C reference and print pass/fail with GPU timings; `--bench` measures matvec and copy bandwidth and
 * `--sweep` the matvec specialization constants (bench_mv.c). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_mv.h"
#include "board.h"
#include "cli.h"
#include "qn_err.h"
#include "qn_log.h"
#include "qn_num.h"
#include "qn_rng.h"
#include "ref_ops.h"
#include "vk.h"

int qn_cmd_selftest(int argc, char **argv);

enum { OPT_BENCH = QN_OPT_FIRST_FREE, OPT_QUICK, OPT_ITERS, OPT_SWEEP, OPT_SWEEP_ONLY };

static const char help[] =
    "usage: qnext selftest [--device SEL] [--board NAME] [--iters N] [--bench [--sweep [--sweep-only LIST]] [--quick]]\n"
    "                      [-v]\n\n"
    "Runs each built-in kernel (matvec bf16/f16/f32 and Q8_0/Q6_K/Q5_K/Q4_K/Q4_0, rmsnorm, elementwise ops) once\n"
    "on the device, checks the result against the plain-C reference and prints pass/fail and the GPU time (min\n"
    "of N runs after a warm-up).\n"
    "Workgroup sizes and matvec layouts come from the board profile. Exit status 0 only if every check passes.\n\n"
    "      --device SEL       Vulkan device: index from 'qnext devices' or a name substring\n"
    "      --board NAME       board profile (name or .json file) instead of the matched one\n"
    "      --iters N          timed runs per kernel (default 5)\n"
    "      --bench            also measure bandwidth (GB/s, min time of N runs): matvec bf16 8192x2048 and\n"
    "                         151936x2048 (lm_head), the quantized matvecs (Q8_0 Q6_K Q5_K Q4_K Q4_0) on the\n"
    "                         lm_head shape, a 1 GiB vkCmdCopyBuffer and the copy kernel (the ceiling); weights\n"
    "                         smaller than 256 MiB are replicated and multiplied in turn, so L2 cannot hold them\n"
    "      --sweep            with --bench: every matvec kernel over a grid of specialization constants (wg,\n"
    "                         rows, unroll, sgrows, xsh) on 151936x2048, 12352x2048 and 2048x4096; one line\n"
    "                         per configuration (the first is the board's, measured as the --bench line), then\n"
    "                         the best (for tuning boards/*.json) and the board's rank\n"
    "      --sweep-only LIST  with --sweep: only the kernels whose name contains one of the comma-separated\n"
    "                         words (e.g. q4_k,q6_k or q); the --bench lines run as usual\n"
    "      --quick            with --bench: small shapes (for CI)\n"
    "  -v, --verbose          more log output\n"
    "  -h, --help             this text\n\n"
    "QNEXT_VALIDATION=1 runs under the Khronos validation layer; any validation message fails the selftest.\n"
    "QNEXT_BENCH_WARM_MS=MS: GPU time of the same matvecs before each --bench / --sweep measurement (default 200,\n"
    "0 with --quick; 0 = one matvec, as before: the sweep then reads low on GPUs that clock down when idle).\n"
    "--sweep env: QNEXT_SWEEP_LAYOUTS=WG,ROWS,UNROLL,SGROWS,XSH[,PRE];... (layouts instead of the grid),\n"
    "QNEXT_SWEEP_SHAPES=RxC,RxC,RxC (the three problems), QNEXT_SWEEP_NORM=1 (the RMSNorm-prologue kernels),\n"
    "QNEXT_BENCH_LINES=0 (no plain bench lines before the sweep).\n";

struct st {
    qn_vk *v;
    qn_cmd *cmd;
    qn_rng rng;
    struct qn_board board;
    int iters, passed, failed;
    const char *sweep_only; /* --sweep-only: comma-separated kernel name words, NULL = all */
};

enum wtype { W_BF16, W_F16, W_F32 };

static float *rand_f32(struct st *s, size_t n, float lo, float hi)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; x && i < n; i++) x[i] = qn_rng_range(&s->rng, lo, hi);
    return x;
}

/* Upload n f32 values as dtype t; x is replaced by the values the GPU sees (rounded). */
static int upload(struct st *s, const char *name, float *x, size_t n, enum wtype t, qn_buf **out)
{
    size_t esz = t == W_F32 ? 4 : 2;
    int rc = qn_buf_create(s->v, QN_MEM_DEVICE, (n * esz + 3) & ~(size_t)3, name, out);
    if (rc < 0) return rc;
    if (t == W_F32) return qn_buf_write(s->v, *out, 0, x, n * 4);
    uint16_t *q = malloc(n * 2 + 2);
    if (!q) return qn_fail(-ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        q[i] = t == W_BF16 ? qn_f32_to_bf16(x[i]) : qn_f32_to_f16(x[i]);
        x[i] = t == W_BF16 ? qn_bf16_to_f32(q[i]) : qn_f16_to_f32(q[i]);
    }
    q[n] = 0;
    rc = qn_buf_write(s->v, *out, 0, q, (n * 2 + 3) & ~(size_t)3);
    free(q);
    return rc;
}

/* Record `iters + 1` repetitions of one dispatch (the first is a warm-up: some drivers compile lazily),
 * run, and return the fastest repetition in ms (NaN without timestamps). */
static int timed(struct st *s, const qn_pipe *p, const struct qn_bind *b, uint32_t nb, const void *pc, uint32_t ps,
                 uint64_t groups, double *ms)
{
    int rc = 0;
    QN_TRY(qn_cmd_begin(s->cmd));
    for (int i = 0; i <= s->iters; i++) {
        if (i) qn_cmd_barrier(s->cmd);
        qn_cmd_mark(s->cmd, i ? "run" : "warm-up");
        qn_cmd_dispatch_n(s->cmd, p, b, nb, pc, ps, groups);
    }
    QN_TRY(qn_cmd_end(s->cmd));
    QN_TRY(qn_cmd_run(s->cmd));
    *ms = NAN;
    for (uint32_t i = 1; i < qn_cmd_nregions(s->cmd); i++) {
        double t = qn_cmd_region(s->cmd, i, NULL);
        if (isnan(*ms) || t < *ms) *ms = t;
    }
done:
    return rc;
}

static void verdict(struct st *s, const char *what, const float *got, const float *ref, size_t n, double atol,
                    double rtol, double ms)
{
    double max_abs = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!isfinite(got[i]) || d > atol + rtol * fabs((double)ref[i])) bad++;
        max_abs = fmax(max_abs, isfinite(got[i]) ? d : INFINITY);
    }
    bad ? s->failed++ : s->passed++;
    printf("%-4s %-40s %9.4f ms   max abs err %.2g%s\n", bad ? "FAIL" : "ok", what, ms, max_abs,
           bad ? " (out of tolerance)" : "");
}

static int read_f32(struct st *s, const qn_buf *b, size_t n, float **out)
{
    *out = malloc(n * sizeof(float));
    if (!*out) return qn_fail(-ENOMEM, "out of memory");
    return qn_buf_read(s->v, b, 0, *out, n * sizeof(float));
}

static int case_matvec(struct st *s, enum qn_kernel k, enum wtype t, uint32_t rows, uint32_t cols)
{
    int rc = 0;
    qn_buf *w = NULL, *x = NULL, *y = NULL;
    float *wh = rand_f32(s, (size_t)rows * cols, -1, 1), *xh = rand_f32(s, cols, -1, 1), *ref = NULL, *got = NULL;
    qn_pipe *p;
    double ms;
    if (!wh || !xh || !(ref = malloc(rows * sizeof *ref))) { rc = qn_fail(-ENOMEM, "out of memory"); goto done; }
    QN_TRY(upload(s, "W", wh, (size_t)rows * cols, t, &w));
    QN_TRY(upload(s, "x", xh, cols, W_F32, &x));
    QN_TRY(qn_buf_create(s->v, QN_MEM_DEVICE, rows * 4, "y", &y));
    uint32_t rpw = s->board.tune.mv_spec[0][1];
    QN_TRY(qn_pipe_get(s->v, k, s->board.tune.mv_spec[0], 5, &p));
    qn_pc_matvec pc = { .rows = rows, .cols = cols };
    QN_TRY(timed(s, p, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, (rows + rpw - 1) / rpw, &ms));
    QN_TRY(read_f32(s, y, rows, &got));
    qn_ref_matvec(ref, wh, xh, (int)rows, (int)cols);
    char what[96];
    snprintf(what, sizeof what, "%s %ux%u", qn_pipe_info(p)->name, rows, cols);
    verdict(s, what, got, ref, rows, 1e-6 + 2e-8 * cols, 1e-5, ms);
done:
    qn_buf_destroy(s->v, &w);
    qn_buf_destroy(s->v, &x);
    qn_buf_destroy(s->v, &y);
    free(wh), free(xh), free(ref), free(got);
    return rc;
}

static int case_rmsnorm(struct st *s, uint32_t rows, uint32_t dim)
{
    int rc = 0;
    qn_buf *x = NULL, *w = NULL, *y = NULL;
    float *xh = rand_f32(s, (size_t)rows * dim, -3, 3), *wh = rand_f32(s, dim, -0.5f, 0.5f), *ref = NULL, *got = NULL;
    qn_pipe *p;
    double ms;
    if (!xh || !wh || !(ref = malloc((size_t)rows * dim * sizeof *ref))) { rc = qn_fail(-ENOMEM, "out of memory"); goto done; }
    QN_TRY(upload(s, "x", xh, (size_t)rows * dim, W_F32, &x));
    QN_TRY(upload(s, "w", wh, dim, W_F32, &w));
    QN_TRY(qn_buf_create(s->v, QN_MEM_DEVICE, (size_t)rows * dim * 4, "y", &y));
    QN_TRY(qn_pipe_get(s->v, QN_K_RMSNORM, (uint32_t[]){ s->board.tune.norm_wg }, 1, &p));
    qn_pc_rmsnorm pc = { .rows = rows, .dim = dim, .eps = 1e-6f, .w_add = 1.0f };
    QN_TRY(timed(s, p, QN_BINDS(QN_BIND(x), QN_BIND(w), QN_BIND(y)), &pc, sizeof pc, rows, &ms));
    QN_TRY(read_f32(s, y, (size_t)rows * dim, &got));
    qn_ref_rmsnorm_zc_rows(ref, xh, wh, (int)rows, (int)dim, 1e-6f);
    char what[96];
    snprintf(what, sizeof what, "%s %ux%u", qn_pipe_info(p)->name, rows, dim);
    verdict(s, what, got, ref, (size_t)rows * dim, 2e-6, 2e-5, ms);
done:
    qn_buf_destroy(s->v, &x);
    qn_buf_destroy(s->v, &w);
    qn_buf_destroy(s->v, &y);
    free(xh), free(wh), free(ref), free(got);
    return rc;
}

static float ew_ref(uint32_t op, float a, float b)
{
    switch (op) {
    case QN_EW_ADD: return a + b;
    case QN_EW_MUL: return a * b;
    case QN_EW_SILU: return qn_ref_silu(a);
    case QN_EW_SIGMOID_GATE: return a * qn_ref_sigmoid(b);
    default: return qn_ref_silu(a) * b;
    }
}

static int case_eltwise(struct st *s, uint32_t op, uint32_t n)
{
    static const char *names[] = { "add", "mul", "silu", "sigmoid_gate", "silu_mul" };
    int rc = 0;
    qn_buf *a = NULL, *b = NULL, *y = NULL;
    float *ah = rand_f32(s, n, -6, 6), *bh = rand_f32(s, n, -6, 6), *ref = NULL, *got = NULL;
    qn_pipe *p;
    double ms;
    if (!ah || !bh || !(ref = malloc(n * sizeof *ref))) { rc = qn_fail(-ENOMEM, "out of memory"); goto done; }
    QN_TRY(upload(s, "a", ah, n, W_F32, &a));
    QN_TRY(upload(s, "b", bh, n, W_F32, &b));
    QN_TRY(qn_buf_create(s->v, QN_MEM_DEVICE, n * 4, "y", &y));
    uint32_t wg = s->board.tune.eltwise_wg;
    QN_TRY(qn_pipe_get(s->v, QN_K_ELTWISE, (uint32_t[]){ wg, op }, 2, &p));
    qn_pc_eltwise pc = { .n = n };
    QN_TRY(timed(s, p, QN_BINDS(QN_BIND(a), QN_BIND(b), QN_BIND(y)), &pc, sizeof pc, (n + wg - 1) / wg, &ms));
    QN_TRY(read_f32(s, y, n, &got));
    for (uint32_t i = 0; i < n; i++) ref[i] = ew_ref(op, ah[i], bh[i]);
    char what[96];
    snprintf(what, sizeof what, "eltwise %s n=%u", names[op], n);
    verdict(s, what, got, ref, n, 1e-6, 2e-6, ms);
done:
    qn_buf_destroy(s->v, &a);
    qn_buf_destroy(s->v, &b);
    qn_buf_destroy(s->v, &y);
    free(ah), free(bh), free(ref), free(got);
    return rc;
}


static int run_all(struct st *s)
{
    int rc = 0;
    static const struct { enum qn_kernel k; enum wtype t; } mv[] = {
        { QN_K_MATVEC_BF16, W_BF16 }, { QN_K_MATVEC_F16, W_F16 }, { QN_K_MATVEC_F32, W_F32 } };
    for (int i = 0; i < 3; i++) {
        QN_TRY(case_matvec(s, mv[i].k, mv[i].t, 512, 2048));
        QN_TRY(case_matvec(s, mv[i].k, mv[i].t, 33, 129));
    }
    QN_TRY(case_rmsnorm(s, 4, 2048));
    QN_TRY(case_rmsnorm(s, 16, 256));
    for (uint32_t op = 0; op < QN_EW_COUNT; op++) QN_TRY(case_eltwise(s, op, 4099));
done:
    return rc;
}

/* check (quantized matvecs), bench (--bench) and sweep (--sweep) of bench_mv.c */
static int run_bench(struct st *s, bool check, bool bench, bool quick, bool sweep)
{
    struct qn_bench b = { .v = s->v, .cmd = s->cmd, .rng = &s->rng, .iters = s->iters, .quick = quick,
                          .sweep_only = s->sweep_only, .warm_ms = bench && !quick ? QN_BENCH_WARM_MS : 0 };
    const char *w = getenv("QNEXT_BENCH_WARM_MS");
    if (w && bench) b.warm_ms = atof(w);
    memcpy(b.spec, s->board.tune.mv_spec, sizeof b.spec);
    int rc = check ? qn_bench_check(&b) : 0;
    const char *bl = getenv("QNEXT_BENCH_LINES"); /* 0: with --sweep, skip the plain bench lines (device time) */
    if (rc >= 0 && bench && !(sweep && bl && !strcmp(bl, "0"))) rc = qn_bench_run(&b);
    if (rc >= 0 && sweep) rc = qn_bench_sweep(&b);
    s->passed += b.passed;
    s->failed += b.failed;
    return rc;
}

static int parse(int argc, char **argv, struct qn_cli_common *c, struct st *s, bool *bench, bool *quick, bool *sweep)
{
    static const struct option longopts[] = {
        QN_CLI_COMMON_LONGOPTS,
        { "bench", no_argument, 0, OPT_BENCH }, { "quick", no_argument, 0, OPT_QUICK },
        { "sweep", no_argument, 0, OPT_SWEEP }, { "sweep-only", required_argument, 0, OPT_SWEEP_ONLY },
        { "iters", required_argument, 0, OPT_ITERS }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int opt;
    long iters;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:vh", longopts, NULL)) != -1) {
        int r = qn_cli_common_opt(c, opt, optarg);
        if (r < 0) return 2;
        if (r) continue;
        switch (opt) {
        case OPT_BENCH: *bench = true; break;
        case OPT_QUICK: *quick = true; break;
        case OPT_SWEEP: *sweep = true; break;
        case OPT_SWEEP_ONLY: s->sweep_only = optarg; break;
        case OPT_ITERS:
            if (qn_cli_int("selftest", "--iters", optarg, 1, 1000, &iters) < 0) return 2;
            s->iters = (int)iters;
            break;
        case 'h': fputs(help, stdout); return 1;
        default: return qn_cli_usage_error("selftest");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qnext selftest: unexpected argument '%s'\n", argv[optind]);
        return qn_cli_usage_error("selftest");
    }
    return 0;
}

int qn_cmd_selftest(int argc, char **argv)
{
    struct qn_cli_common c;
    struct st s = { .iters = 5 };
    bool bench = false, quick = false, sweep = false;
    qn_cli_common_defaults(&c);
    int r = parse(argc, argv, &c, &s, &bench, &quick, &sweep);
    if (r) return r == 1 ? 0 : r;
    struct qn_vk_params p;
    qn_vk_default_params(&p);
    p.device = c.device;
    qn_rng_seed(&s.rng, 0x5e1f7e57u);
    int rc = qn_vk_open(&s.v, &p);
    if (rc == QN_E_SKIP) {
        fprintf(stderr, "qnext selftest: SKIP: %s\n", qn_errmsg());
        return 77;
    }
    struct qn_board_device d;
    if (rc >= 0) qn_caps_board_device(qn_vk_caps(s.v), &d);
    if (rc >= 0) rc = qn_board_select(c.board, &d, &s.board);
    if (rc >= 0) rc = qn_cmd_create(s.v, &s.cmd);
    if (rc >= 0) {
        const struct qn_caps *caps = qn_vk_caps(s.v);
        printf("selftest on device %u '%s' (%s), board %s, validation %s\n", caps->index, caps->name,
               caps->driver_info, s.board.name, qn_vk_validating(s.v) ? "on" : "off");
        rc = run_all(&s);
        if (rc >= 0) rc = run_bench(&s, true, false, quick, false);
        if (rc >= 0 && (bench || sweep)) rc = run_bench(&s, false, true, quick, sweep);
    }
    qn_cmd_destroy(&s.cmd);
    qn_vk_close(&s.v);
    if (rc < 0) return qn_cli_report("selftest", rc);
    uint32_t vmsgs = qn_vk_validation_count();
    printf("selftest: %d passed, %d failed, %u validation message(s)\n", s.passed, s.failed, vmsgs);
    return s.failed || vmsgs ? 1 : 0;
}
