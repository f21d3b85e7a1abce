/* test_embed.c — embedding gather (bf16 / f16 / f32 table -> f32 rows) for odd and real widths, repeated and
 * extreme ids, and a table bound in two pieces (each dispatch writes only the tokens whose row it holds). */
#include <stdio.h>

#include "harness.h"
#include "qn_num.h"

static const struct { enum qn_kernel k; const char *name; int kind, esize; } dtypes[] = {
    { QN_K_EMBED_BF16, "bf16", 0, 2 }, { QN_K_EMBED_F16, "f16", 1, 2 }, { QN_K_EMBED_F32, "f32", 2, 4 },
};

static void run_case(struct qn_h *h, int d, uint32_t V, uint32_t H, uint32_t T, uint32_t split, uint32_t wg)
{
    size_t n = (size_t)V * H;
    float *tab_h;
    qn_buf *tab = dtypes[d].kind == 0 ? qn_h_input_bf16(h, "table", n, -3, 3, &tab_h)
                : dtypes[d].kind == 1 ? qn_h_input_f16(h, "table", n, -3, 3, &tab_h)
                                      : qn_h_input_f32(h, "table", n, -3, 3, &tab_h);
    int32_t *ids = qn_h_alloc_bytes(h, sizeof *ids * T);
    for (uint32_t t = 0; t < T; t++) ids[t] = (int32_t)(qn_rng_u64(&h->rng) % V);
    ids[0] = 0;
    if (T > 1) ids[T - 1] = (int32_t)V - 1;
    if (T > 2) ids[1] = ids[T - 1]; /* a repeat */
    qn_buf *idb = qn_h_upload(h, "ids", ids, sizeof *ids * T);
    qn_buf *x = qn_h_output(h, "x", (size_t)T * H);
    qn_pipe *p = qn_h_pipe(h, dtypes[d].k, wg);
    /* pieces [0, split) and [split, V) (split = 0: one piece); piece offsets stay 16-byte aligned */
    uint32_t cut[3] = { 0, split ? split : V, V };
    qn_h_ok(h, qn_cmd_begin(h->cmd), "begin");
    for (int i = 0; i < (split ? 2 : 1); i++) {
        uint64_t off = (uint64_t)cut[i] * H * dtypes[d].esize, bytes = (uint64_t)(cut[i + 1] - cut[i]) * H * dtypes[d].esize;
        qn_pc_embed pc = { .T = T, .H = H, .row0 = cut[i], .rows = cut[i + 1] - cut[i] };
        qn_cmd_dispatch_nz(h->cmd, p, QN_BINDS(QN_BIND_RANGE(tab, off, bytes), QN_BIND(idb), QN_BIND(x)), &pc,
                           sizeof pc, (H + wg - 1) / wg, T);
    }
    qn_h_ok(h, qn_cmd_end(h->cmd), "recording");
    qn_h_ok(h, qn_cmd_run(h->cmd), "running");
    float *ref = qn_h_alloc(h, (size_t)T * H);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t i = 0; i < H; i++) ref[(size_t)t * H + i] = tab_h[(size_t)ids[t] * H + i];
    char what[128];
    snprintf(what, sizeof what, "%s V%u H%u T%u wg %u%s", dtypes[d].name, V, H, T, wg, split ? " two pieces" : "");
    qn_h_check(h, what, x, ref, (size_t)T * H, 0, 0); /* a copy: exact */
    qn_h_reset(h);
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "embed", argc, argv);
    for (int d = 0; d < 3; d++) {
        run_case(&h, d, 1, 2, 1, 0, 64);      /* 16-bit tables are bound in whole 32-bit words */
        run_case(&h, d, 10, 97, 5, 0, 64);     /* odd width: 16-bit rows start mid-word */
        run_case(&h, d, 512, 128, 150, 0, 256);
        run_case(&h, d, 384, 96, 33, 0, 32);
        run_case(&h, d, 1000, 2048, 7, 0, 256); /* real hidden size */
        run_case(&h, d, 300, 64, 40, 123, 64);  /* split table */
    }
    return qn_h_close(&h);
}
