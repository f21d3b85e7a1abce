/* test_embed.c — embedding gather (bf16 / f16 / f32 table -> f32 rows) for odd and real widths, repeated and
 * extreme ids, and a table bound in two pieces (each dispatch writes only the tokens whose row it holds); and
 * the GGUF block tables (Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K rows dequantized as they are gathered) against the C
 * reference's dequantized rows (loader/quant.c), bit for bit. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "qblocks.h"
#include "qn_num.h"
#include "quant.h"

static const struct { enum qn_kernel k; const char *name; int kind, esize; } dtypes[] = {
    { QN_K_EMBED_BF16, "bf16", 0, 2 }, { QN_K_EMBED_F16, "f16", 1, 2 }, { QN_K_EMBED_F32, "f32", 2, 4 },
};

/* T random ids (row 0, row V - 1 and a repeat among them), the gather of table `tab` (rows of `rowb` bytes, `padded`
 * bytes in all) bound in pieces [0, split) and [split, V) (split = 0: one piece; piece offsets must meet the
 * device's alignment), checked bit for bit against rows of `ref_tab` (f32 [V, H]). */
static void gather_check(struct qn_h *h, enum qn_kernel k, const char *name, qn_buf *tab, uint64_t rowb,
                         uint64_t padded, const float *ref_tab, uint32_t V, uint32_t H, uint32_t T, uint32_t split,
                         uint32_t wg)
{
    int32_t *ids = qn_h_alloc_bytes(h, sizeof *ids * T);
    for (uint32_t t = 0; t < T; t++) ids[t] = (int32_t)(qn_rng_u64(&h->rng) % V);
    ids[0] = 0;
    if (T > 1) ids[T - 1] = (int32_t)V - 1;
    if (T > 2) ids[1] = ids[T - 1]; /* a repeat */
    qn_buf *idb = qn_h_upload(h, "ids", ids, sizeof *ids * T);
    qn_buf *x = qn_h_output(h, "x", (size_t)T * H);
    qn_pipe *p = qn_h_pipe(h, k, wg);
    uint32_t cut[3] = { 0, split ? split : V, V };
    qn_h_ok(h, qn_cmd_begin(h->cmd), "begin");
    for (int i = 0; i < (split ? 2 : 1); i++) {
        uint64_t off = cut[i] * rowb, end = cut[i + 1] == V ? padded : cut[i + 1] * rowb;
        qn_pc_embed pc = { .T = T, .H = H, .row0 = cut[i], .rows = cut[i + 1] - cut[i] };
        qn_cmd_dispatch_nz(h->cmd, p, QN_BINDS(QN_BIND_RANGE(tab, off, end - off), QN_BIND(idb), QN_BIND(x)), &pc,
                           sizeof pc, (H + wg - 1) / wg, T);
    }
    qn_h_ok(h, qn_cmd_end(h->cmd), "recording");
    qn_h_ok(h, qn_cmd_run(h->cmd), "running");
    float *ref = qn_h_alloc(h, (size_t)T * H);
    for (uint32_t t = 0; t < T; t++) memcpy(ref + (size_t)t * H, ref_tab + (size_t)ids[t] * H, sizeof(float) * H);
    char what[128];
    snprintf(what, sizeof what, "%s V%u H%u T%u wg %u%s", name, V, H, T, wg, split ? " two pieces" : "");
    qn_h_check(h, what, x, ref, (size_t)T * H, 0, 0); /* a copy, or the reference's operations: exact */
    qn_h_reset(h);
}

static void run_case(struct qn_h *h, int d, uint32_t V, uint32_t H, uint32_t T, uint32_t split, uint32_t wg)
{
    size_t n = (size_t)V * H;
    float *tab_h;
    qn_buf *tab = dtypes[d].kind == 0 ? qn_h_input_bf16(h, "table", n, -3, 3, &tab_h)
                : dtypes[d].kind == 1 ? qn_h_input_f16(h, "table", n, -3, 3, &tab_h)
                                      : qn_h_input_f32(h, "table", n, -3, 3, &tab_h);
    uint64_t rowb = (uint64_t)H * dtypes[d].esize; /* split rows keep the piece offsets 16-byte aligned */
    gather_check(h, dtypes[d].k, dtypes[d].name, tab, rowb, (rowb * V + 3) / 4 * 4, tab_h, V, H, T, split, wg);
}

static const struct { enum qn_kernel k; uint32_t type; } qtypes[] = {
    { QN_K_EMBED_Q8_0, QN_GGML_Q8_0 }, { QN_K_EMBED_Q4_0, QN_GGML_Q4_0 }, { QN_K_EMBED_Q4_K, QN_GGML_Q4_K },
    { QN_K_EMBED_Q5_K, QN_GGML_Q5_K }, { QN_K_EMBED_Q6_K, QN_GGML_Q6_K },
};

/* V rows of H values in block type qtypes[q] (random blocks of varied scales and offsets: qblocks.h) against the
 * C reference's dequantized rows (loader/quant.c) */
static void run_q(struct qn_h *h, int q, uint32_t V, uint32_t H, uint32_t T, uint32_t split, uint32_t wg)
{
    uint64_t rb;
    qn_h_ok(h, qn_ggml_row_bytes(qtypes[q].type, H, &rb), "row bytes");
    size_t padded = ((size_t)rb * V + 3) & ~(size_t)3;
    uint8_t *raw = qn_h_alloc_bytes(h, padded);
    memset(raw, 0, padded);
    float *deq = qn_h_alloc(h, (size_t)V * H);
    qn_h_quant_matrix(h, qtypes[q].type, V, H, raw, deq);
    qn_buf *tab = qn_h_upload(h, "table", raw, padded);
    gather_check(h, qtypes[q].k, qn_ggml_type_name(qtypes[q].type), tab, rb, padded, deq, V, H, T, split, wg);
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
    for (int q = 0; q < 5; q++) {
        uint32_t qk = qtypes[q].type == QN_GGML_Q8_0 || qtypes[q].type == QN_GGML_Q4_0 ? 32 : 256;
        run_q(&h, q, 1, qk, 1, 0, 64);            /* one block */
        run_q(&h, q, 37, 3 * qk, 20, 0, 64);      /* odd rows, a partial workgroup */
        run_q(&h, q, 300, 2048, 9, 0, 256);       /* the 80B's width */
        run_q(&h, q, 64, 2 * qk, 17, 32, 128);    /* split table: rows 32.. at byte 32 row bytes */
    }
    return qn_h_close(&h);
}
