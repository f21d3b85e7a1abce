/* test_matmul.c — prefill matmul Y[M, N] = X[M, K] · W[N, K]^T (bf16 / f16 / f32 weights, f32 accumulate)
 * against a double-precision C reference: odd and real shapes, several tile layouts, strided/offset X and Y
 * (element-load paths), the accumulate flag.
 *
 * `test_matmul --bench [ITERS [WG,BM,BN,BK,TM,TN,PF ...]]` (a real GPU; not part of the test): GPU time and TFLOP/s of
 * matmul_f32 at the shapes of W_moe's f32 parts in prefill (the 512 router rows, the GDN ba's 64, the 1-row
 * shared_expert_gate; K 2048) in the tiles given (default: the table below). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "harness.h"

struct shape { uint32_t M, N, K; };
static const struct shape shapes[] = {
    { 1, 1, 1 }, { 3, 5, 7 }, { 1, 64, 64 }, { 7, 33, 129 }, { 64, 64, 64 }, { 65, 65, 72 }, { 100, 257, 1000 },
    { 130, 96, 96 }, { 17, 300, 288 },
    /* real Qwen3-Next slices: hidden 2048 in, T a few tokens / a chunk */
    { 16, 512, 2048 }, { 200, 136, 2048 }, { 9, 2048, 512 },
};
/* { WG, BM, BN, BK, TM, TN, PF }: (BM / TM) * (BN / TN) == WG, TM and TN multiples of 4; PF 1: the register
 * prefetch with coalesced loads (QNEXT_MATMUL_PF=1) */
static const uint32_t layouts[][7] = {
    { 256, 64, 64, 32, 4, 4, 0 } /* the default (forward_pipes.c's f32 matmul, W_moe's f32 parts) */,
    { 256, 128, 128, 16, 8, 8, 0 }, { 64, 32, 32, 8, 4, 4, 0 }, { 128, 64, 32, 16, 4, 4, 0 },
    { 256, 64, 64, 32, 4, 4, 1 }, { 64, 32, 32, 8, 4, 4, 1 }, { 128, 64, 32, 16, 4, 4, 1 },
    { 128, 64, 64, 16, 8, 4, 1 } /* the large tile of W_moe's f32 parts (QNEXT_MM_F32_TILE_LARGE) */,
    { 256, 128, 128, 16, 8, 8, 1 },
};
#define NLAY (int)(sizeof layouts / sizeof layouts[0])
static const struct { enum qn_kernel k; const char *name; int kind; } dtypes[] = {
    { QN_K_MATMUL_BF16, "bf16", 0 }, { QN_K_MATMUL_F16, "f16", 1 }, { QN_K_MATMUL_F32, "f32", 2 },
};

/* ldx >= K, ldy >= N; x_off / y_off in elements */
static void run_case(struct qn_h *h, int d, struct shape s, int lay, bool acc, uint32_t ldx, uint32_t x_off,
                     uint32_t ldy, uint32_t y_off)
{
    size_t nw = (size_t)s.N * s.K, nx = (size_t)x_off + (size_t)s.M * ldx, ny = (size_t)y_off + (size_t)s.M * ldy;
    float *w_h, *x_h, *y0_h = NULL;
    qn_buf *w = dtypes[d].kind == 0 ? qn_h_input_bf16(h, "W", nw, -1, 1, &w_h)
              : dtypes[d].kind == 1 ? qn_h_input_f16(h, "W", nw, -1, 1, &w_h)
                                    : qn_h_input_f32(h, "W", nw, -1, 1, &w_h);
    qn_buf *x = qn_h_input_f32(h, "X", nx, -1, 1, &x_h);
    /* Y starts random either way: with accumulate it is added, without it the elements outside the
     * output (strides, offset) must stay as they were */
    qn_buf *y = qn_h_input_f32(h, "Y", ny, -2, 2, &y0_h);
    const uint32_t *L = layouts[lay];
    qn_pipe *p = qn_h_pipe(h, dtypes[d].k, L[0], L[1], L[2], L[3], L[4], L[5], L[6]);
    qn_pc_matmul pc = { .M = s.M, .N = s.N, .K = s.K, .ldx = ldx, .ldy = ldy, .x_off = x_off, .y_off = y_off,
                        .flags = acc ? QN_MATMUL_ACCUMULATE : 0 };
    qn_h_run(h, p, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, qn_mm_tiles(p, s.M, s.N));
    float *ref = qn_h_alloc(h, ny);
    for (size_t i = 0; i < ny; i++) ref[i] = y0_h[i];
    for (uint32_t m = 0; m < s.M; m++)
        for (uint32_t n = 0; n < s.N; n++) {
            double sum = 0;
            for (uint32_t k = 0; k < s.K; k++)
                sum += (double)w_h[(size_t)n * s.K + k] * x_h[x_off + (size_t)m * ldx + k];
            size_t o = y_off + (size_t)m * ldy + n;
            ref[o] = (float)(sum + (acc ? y0_h[o] : 0.0));
        }
    char what[160];
    snprintf(what, sizeof what, "%s M%u N%u K%u tile %ux%ux%u/%ux%u%s%s%s", dtypes[d].name, s.M, s.N, s.K, L[1], L[2],
             L[3], L[4], L[5], L[6] ? " prefetch" : "", acc ? " accumulate" : "", ldx != s.K || x_off || ldy != s.N || y_off ? " strided" : "");
    /* f32 accumulation of K products of values in [-1, 1], one running sum per output (sequential over k, so
     * the error grows faster than matvec's tree sums): measured max abs error 1.1e-4 at K 2048 on outputs of
     * magnitude ~15 (2.7e-5 at K 512); the bound (2.5e-4 at K 2048, plus 1e-5 relative) still catches one
     * wrong product (~0.1) */
    qn_h_check(h, what, y, ref, ny, 1e-6 + 1.2e-7 * s.K, 1e-5);
    qn_h_reset(h);
}

/* ---- --bench (see the top) ---- */
static void bench(struct qn_h *h, int iters, int ntiles, char **tiles)
{
    static const uint32_t shapes_b[][3] = { { 4096, 512, 2048 }, { 4096, 64, 2048 }, { 4096, 1, 2048 },
                                            { 2048, 512, 2048 }, { 512, 512, 2048 } };
    for (size_t s = 0; s < sizeof shapes_b / sizeof shapes_b[0]; s++) {
        uint32_t M = shapes_b[s][0], N = shapes_b[s][1], K = shapes_b[s][2];
        qn_buf *w = qn_h_input_f32(h, "W", (size_t)N * K, -1, 1, NULL), *x = qn_h_input_f32(h, "X", (size_t)M * K, -1, 1, NULL);
        qn_buf *y = qn_h_output(h, "Y", (size_t)M * N);
        qn_pc_matmul pc = { .M = M, .N = N, .K = K, .ldx = K, .ldy = N };
        for (int t = 0; t < (ntiles ? ntiles : NLAY); t++) {
            uint32_t L[7] = { 0 };
            if (ntiles && sscanf(tiles[t], "%u,%u,%u,%u,%u,%u,%u", &L[0], &L[1], &L[2], &L[3], &L[4], &L[5], &L[6]) < 6) {
                fprintf(stderr, "test_matmul --bench: tile '%s' is not WG,BM,BN,BK,TM,TN[,PF]\n", tiles[t]);
                exit(2);
            }
            if (!ntiles) memcpy(L, layouts[t], sizeof L);
            if (!qn_matmul_tile_ok(L)) {
                fprintf(stderr, "test_matmul --bench: tile %s: need TM, TN multiples of 4, BK of 8 and WG = BM / TM * BN / TN\n",
                        ntiles ? tiles[t] : "(table)");
                exit(2);
            }
            qn_pipe *p = qn_h_pipe(h, QN_K_MATMUL_F32, L[0], L[1], L[2], L[3], L[4], L[5], L[6]);
            uint64_t groups = qn_mm_tiles(p, M, N);
            double best = 1e30;
            for (int i = 0; i < iters; i++) {
                double ms = qn_h_run(h, p, QN_BINDS(QN_BIND(w), QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, groups);
                if (ms < best) best = ms;
            }
            printf("bench matmul_f32 M%-5u N%-4u K%-5u %8.4f ms %6.2f TFLOP/s  tile %u,%u,%u,%u,%u,%u,%u\n", M, N, K,
                   best, 2.0 * M * N * K / best * 1e-9, L[0], L[1], L[2], L[3], L[4], L[5], L[6]);
        }
        qn_h_reset(h);
    }
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "matmul", argc, argv);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench")) {
            int iters = i + 1 < argc && atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 10;
            int first = i + 1 < argc && atoi(argv[i + 1]) > 0 ? i + 2 : i + 1;
            bench(&h, iters, argc - first, argv + first);
            return qn_h_close(&h);
        }
    size_t ns = sizeof shapes / sizeof shapes[0];
    for (int d = 0; d < 3; d++)
        for (size_t s = 0; s < ns; s++)
            for (int l = 0; l < NLAY; l++)
                if (l == 0 || l == 4 || (uint64_t)shapes[s].M * shapes[s].N * shapes[s].K <= 3000000) /* lavapipe time */
                    run_case(&h, d, shapes[s], l, false, shapes[s].K, 0, shapes[s].N, 0);
    for (int d = 0; d < 3; d++) {
        run_case(&h, d, (struct shape){ 33, 70, 128 }, 0, true, 128, 0, 70, 0);
        run_case(&h, d, (struct shape){ 70, 33, 64 }, 2, true, 64, 0, 33, 0);
        /* X rows with a stride and an offset (vector path: multiples of 4; element path: odd) */
        run_case(&h, d, (struct shape){ 20, 40, 64 }, 0, false, 72, 8, 48, 4);
        run_case(&h, d, (struct shape){ 20, 40, 64 }, 1, true, 67, 3, 41, 1);
    }
    /* W_moe's f32 parts in prefill (sub_matmul): router rows 0 .. E and the 1-row shared_expert_gate at column
     * E + 2 Is of the fused output (ldy E + 2 Is + 1), K = hidden 2048, odd token counts; the default tile (as in
     * the model) and a small one */
    run_case(&h, 2, (struct shape){ 77, 96, 2048 }, 0, false, 2048, 0, 2 * 96 + 1, 0);
    run_case(&h, 2, (struct shape){ 77, 1, 2048 }, 0, false, 2048, 0, 2 * 96 + 1, 2 * 96);
    run_case(&h, 2, (struct shape){ 130, 3, 200 }, 0, true, 200, 0, 5, 2);
    run_case(&h, 2, (struct shape){ 45, 96, 2048 }, 2, false, 2048, 0, 2 * 96 + 1, 0);
    run_case(&h, 2, (struct shape){ 45, 1, 2048 }, 2, false, 2048, 0, 2 * 96 + 1, 2 * 96);
    run_case(&h, 2, (struct shape){ 66, 5, 136 }, 2, true, 136, 0, 7, 1);
    /* the same with the prefetch (vector path; the element path of odd strides falls back to the plain loads) */
    run_case(&h, 2, (struct shape){ 77, 96, 2048 }, 4, false, 2048, 0, 2 * 96 + 1, 0);
    run_case(&h, 2, (struct shape){ 77, 1, 2048 }, 4, false, 2048, 0, 2 * 96 + 1, 2 * 96);
    run_case(&h, 2, (struct shape){ 130, 3, 200 }, 4, true, 200, 0, 5, 2);
    run_case(&h, 1, (struct shape){ 20, 40, 64 }, 5, true, 67, 3, 41, 1);
    run_case(&h, 0, (struct shape){ 20, 40, 64 }, 6, false, 72, 8, 48, 4);
    return qn_h_close(&h);
}
