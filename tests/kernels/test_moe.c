/* test_moe.c — the sparse-MoE kernels (shaders/moe_*.comp) against the C reference (runtime/ref/ref_ops.h):
 *   - router alone: exact ids (incl. heavy ties, bf16 rounding on/off), weights, sg, shared activation;
 *   - moe_sort alone: list and tiles equal to a host construction, exactly;
 *   - the whole block (W_moe matvec -> router -> gate_up -> down, and router -> sort -> grouped gate_up ->
 *     grouped down -> combine) vs qn_ref_router / qn_ref_expert_glu / qn_ref_shared_expert, at the real
 *     shape (H 2048, E 512, K 10, I = Is = 512; only the experts the tokens use get weights) and odd shapes,
 *     T = 1, 3, 64, bf16 / f16 / f32 weights, norm_topk and bf16 rounding on and off;
 *   - slot placement: the same experts in identity slots (one pool) and in randomly permuted, padded slots
 *     spread over several pools give BIT-identical act and y (streaming == resident);
 *   - grouped results are bit-identical for different tile_t; an absent slot poisons only its tokens.
 * --only GROUPS picks groups of cases (router,sort,real1,real3,real64,odd); --only bench times the decode and
 * prefill paths at the real shape with all 512 experts resident (a GPU run: ~3.2 GB of pools). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qn_time.h"
#include "harness.h"
#include "qn_num.h"
#include "ref_ops.h"
#include "route_check.h"

enum { DT_BF16, DT_F16, DT_F32 };
static const char *const dt_name[] = { "bf16", "f16", "f32" };
static const uint32_t dt_size[] = { 2, 2, 4 };
static const enum qn_kernel k_matvec[] = { QN_K_MATVEC_BF16, QN_K_MATVEC_F16, QN_K_MATVEC_F32 };
static const enum qn_kernel k_gate_up[] = { QN_K_MOE_GATE_UP_BF16, QN_K_MOE_GATE_UP_F16, QN_K_MOE_GATE_UP_F32 };
static const enum qn_kernel k_down[] = { QN_K_MOE_DOWN_BF16, QN_K_MOE_DOWN_F16, QN_K_MOE_DOWN_F32 };
static const enum qn_kernel k_gate_up_g[] = { QN_K_MOE_GATE_UP_GROUPED_BF16, QN_K_MOE_GATE_UP_GROUPED_F16,
                                              QN_K_MOE_GATE_UP_GROUPED_F32 };
static const enum qn_kernel k_down_g[] = { QN_K_MOE_DOWN_GROUPED_BF16, QN_K_MOE_DOWN_GROUPED_F16,
                                           QN_K_MOE_DOWN_GROUPED_F32 };

/* How one block run is done: the decode kernels (spec WG, rows per workgroup, unroll of gate_up and down)
 * or the grouped path (spec WG, GN, BK; tile_t pairs per tile; tile_groups workgroups along the tile list,
 * 0 = one per tile). */
struct run_cfg {
    const char *name;
    bool grouped;
    uint32_t gu_spec[3], dn_spec[3];
    uint32_t gspec[3];
    uint32_t tile_t, tile_groups;
};

static const struct run_cfg DEC = { "decode", false, { 128, 4, 4 }, { 128, 4, 4 }, { 0 }, 0, 0 }; /* defaults */
static const struct run_cfg DEC8 = { "decode wg 64 rows 8 unroll 3/1", false, { 64, 8, 3 }, { 64, 8, 1 }, { 0 }, 0, 0 };
static const struct run_cfg GRP = { "grouped", true, { 0 }, { 0 }, { 256, 16, 32 }, 64, 0 }; /* default spec */
static const struct run_cfg GRP_T = { "grouped tile_t 7 groups 3", true, { 0 }, { 0 }, { 256, 16, 32 }, 7, 3 };
static const struct run_cfg GRP_S = { "grouped wg 64 gn 8 bk 16", true, { 0 }, { 0 }, { 64, 8, 16 }, 32, 0 };
static const struct run_cfg GRP_1 = { "grouped wg 64 groups 4", true, { 0 }, { 0 }, { 64, 16, 32 }, 16, 4 };
static const struct run_cfg GRP_G = { "grouped groups 8", true, { 0 }, { 0 }, { 256, 16, 32 }, 64, 8 };

#define NLAYERS 2u
#define LAYER 1u

struct shape { const char *name; uint32_t H, E, K, I, Is, populated; };

/* ---- weights in a dtype ------------------------------------------------------------------------ */

/* n random values in [-a, a) written to dst in dtype dt; `seen` gets them as the kernel reads them */
static void gen_weights(struct qn_h *h, int dt, size_t n, float a, void *dst, float *seen)
{
    qn_h_random(h, seen, n, -a, a);
    for (size_t i = 0; i < n; i++) {
        if (dt == DT_BF16) {
            uint16_t q = qn_f32_to_bf16(seen[i]);
            ((uint16_t *)dst)[i] = q;
            seen[i] = qn_bf16_to_f32(q);
        } else if (dt == DT_F16) {
            uint16_t q = qn_f32_to_f16(seen[i]);
            ((uint16_t *)dst)[i] = q;
            seen[i] = qn_f16_to_f32(q);
        } else {
            ((float *)dst)[i] = seen[i];
        }
    }
}

static qn_buf *weights_buf(struct qn_h *h, const char *name, int dt, size_t n, float a, float **seen)
{
    *seen = qn_h_alloc(h, n);
    void *bytes = qn_h_alloc_bytes(h, n * dt_size[dt]);
    gen_weights(h, dt, n, a, bytes, *seen);
    return qn_h_upload(h, name, bytes, n * dt_size[dt]);
}

/* ---- one block case: inputs, reference, and the kernels' outputs ------------------------------- */

struct moe_case {
    const struct shape *s;
    int dt;
    uint32_t T, flags, act_stride, m_stride;
    float *x, *wmoe, *ds, *y0, *m;       /* host: x [T,H], W_moe, down_s [H,Is], y0 [T,H], m (GPU) */
    qn_buf *x_b, *m_b, *ds_b;
    int *has;                            /* expert -> index into ew, or -1 */
    uint32_t nexp;
    int32_t *exp_ids;                    /* populated experts, ascending */
    float *ew;                           /* [nexp][gate I*H | up I*H | down H*I] as the kernel reads it */
    uint8_t *eb;                         /* the same in the dtype, slot_raw bytes each */
    uint64_t slot_raw;
    int *ids_ref;
    float *w_ref, *sg_ref, *act_ref, *y_ref; /* act_ref [T, K+1, act_stride] */
};

struct layout {
    uint32_t n_slots, spp, slot_bytes, npools;
    qn_buf *pool[QN_MOE_MAX_POOLS];
    qn_buf *table;
};

struct outputs { float *y, *act, *w, *sg; int *ids; };

static void ref_outputs(struct qn_h *h, struct moe_case *c)
{
    const struct shape *s = c->s;
    uint32_t H = s->H, I = s->I, K = s->K, Is = s->Is, T = c->T;
    float *scratch = qn_h_alloc(h, 2 * (I > Is ? I : Is)), *tmp = qn_h_alloc(h, H);
    c->y_ref = qn_h_alloc(h, (size_t)T * H);
    c->act_ref = qn_h_alloc(h, (size_t)T * (K + 1) * c->act_stride);
    for (uint32_t t = 0; t < T; t++) {
        const float *x = c->x + (size_t)t * H, *mt = c->m + (size_t)t * c->m_stride;
        float *y = c->y_ref + (size_t)t * H;
        memcpy(y, c->y0 + (size_t)t * H, H * sizeof(float));
        for (uint32_t k = 0; k < K; k++) {
            /* qn_ref_expert_glu in its parts, to keep the activation: gate|up rows are contiguous */
            const float *we = c->ew + (size_t)c->has[c->ids_ref[t * K + k]] * 3 * I * H;
            float *a = c->act_ref + ((size_t)t * (K + 1) + k) * c->act_stride;
            qn_ref_matvec(scratch, we, x, (int)(2 * I), (int)H);
            for (uint32_t i = 0; i < I; i++) a[i] = qn_ref_silu(scratch[i]) * scratch[I + i];
            qn_ref_matvec(tmp, we + (size_t)2 * I * H, a, (int)H, (int)I);
            if (t == 0 && k == 0) { /* the parts are the reference's own expert */
                float *y1 = qn_h_alloc(h, H);
                qn_ref_expert_glu(y1, x, we, we + (size_t)I * H, we + (size_t)2 * I * H, (int)H, (int)I, scratch);
                if (memcmp(y1, tmp, H * sizeof(float))) qn_h_ok(h, qn_fail(-EINVAL, "qn_ref_expert_glu differs"), "ref");
            }
            qn_ref_axpy(y, c->w_ref[t * K + k], tmp, (int)H);
        }
        const float *ws = c->wmoe + (size_t)s->E * H;
        qn_ref_shared_expert(tmp, x, ws, ws + (size_t)Is * H, c->ds, ws + (size_t)2 * Is * H, (int)H, (int)Is, scratch);
        for (uint32_t j = 0; j < H; j++) y[j] += tmp[j];
        float *a = c->act_ref + ((size_t)t * (K + 1) + K) * c->act_stride;
        for (uint32_t i = 0; i < Is; i++) a[i] = qn_ref_silu(mt[s->E + i]) * mt[s->E + Is + i];
        c->sg_ref[t] = qn_ref_sigmoid(mt[s->E + 2 * Is]);
    }
}

/* Inputs, m = W_moe x on the GPU (the existing matvec kernel), the reference routing on that m, and
 * weights for every expert the tokens use (plus the `populated` set the router rows favour). */
static void make_case(struct qn_h *h, struct moe_case *c, const struct shape *s, int dt, uint32_t T, uint32_t flags)
{
    memset(c, 0, sizeof *c);
    c->s = s, c->dt = dt, c->T = T, c->flags = flags;
    uint32_t H = s->H, E = s->E, K = s->K, I = s->I, Is = s->Is;
    c->m_stride = E + 2 * Is + 1;
    c->act_stride = I > Is ? I : Is;
    c->x_b = qn_h_input_f32(h, "x", (size_t)T * H, -1.5f, 1.5f, &c->x);
    c->y0 = qn_h_alloc(h, (size_t)T * H); /* the residual stream before the block; uploaded per run */
    qn_h_random(h, c->y0, (size_t)T * H, -1, 1);
    c->has = qn_h_alloc_bytes(h, E * sizeof(int));
    for (uint32_t e = 0; e < E; e++) c->has[e] = s->populated >= E ? 1 : 0;
    for (uint32_t n = 0; n < s->populated && s->populated < E;) { /* a random favoured subset */
        uint32_t e = (uint32_t)(qn_rng_u64(&h->rng) % E);
        if (!c->has[e]) c->has[e] = 1, n++;
    }
    float a_h = sqrtf(3.0f / (float)H);
    void *wb = qn_h_alloc_bytes(h, (size_t)c->m_stride * H * dt_size[dt]);
    c->wmoe = qn_h_alloc(h, (size_t)c->m_stride * H);
    gen_weights(h, dt, (size_t)c->m_stride * H, a_h, wb, c->wmoe);
    for (uint32_t e = 0; e < E; e++) /* router rows of the other experts: 20x smaller logits */
        if (!c->has[e])
            for (uint32_t j = 0; j < H; j++) {
                float v = c->wmoe[(size_t)e * H + j] * 0.05f;
                size_t i = (size_t)e * H + j;
                if (dt == DT_BF16) ((uint16_t *)wb)[i] = qn_f32_to_bf16(v), c->wmoe[i] = qn_bf16_to_f32(((uint16_t *)wb)[i]);
                else if (dt == DT_F16) ((uint16_t *)wb)[i] = qn_f32_to_f16(v), c->wmoe[i] = qn_f16_to_f32(((uint16_t *)wb)[i]);
                else ((float *)wb)[i] = v, c->wmoe[i] = v;
            }
    qn_buf *wmoe_b = qn_h_upload(h, "W_moe", wb, (size_t)c->m_stride * H * dt_size[dt]);
    c->ds_b = weights_buf(h, "down_s", dt, (size_t)H * Is, sqrtf(3.0f / (float)Is), &c->ds);
    c->m_b = qn_h_output(h, "m", (size_t)T * c->m_stride);
    qn_pc_matvec pcm = { .rows = c->m_stride, .cols = H, .flags = 0 };
    qn_h_run_z(h, qn_h_pipe(h, k_matvec[dt], 128, 2), QN_BINDS(QN_BIND(wmoe_b), QN_BIND(c->x_b), QN_BIND(c->m_b)),
               &pcm, sizeof pcm, (c->m_stride + 1) / 2, T);
    c->m = qn_h_read(h, c->m_b, (size_t)T * c->m_stride);
    /* reference routing on the GPU's logits (so near-ties are decided on the same numbers) */
    c->ids_ref = qn_h_alloc_bytes(h, (size_t)T * K * sizeof(int));
    c->w_ref = qn_h_alloc(h, (size_t)T * K);
    c->sg_ref = qn_h_alloc(h, T);
    for (uint32_t t = 0; t < T; t++) {
        qn_ref_router(c->ids_ref + t * K, c->w_ref + t * K, c->m + (size_t)t * c->m_stride, (int)E, (int)K,
                      !!(flags & QN_MOE_NORM_TOPK), !!(flags & QN_MOE_ROUND_BF16));
        for (uint32_t k = 0; k < K; k++) c->has[c->ids_ref[t * K + k]] = 1;
    }
    c->exp_ids = qn_h_alloc_bytes(h, E * sizeof(int32_t));
    for (uint32_t e = 0; e < E; e++)
        if (c->has[e]) c->exp_ids[c->nexp] = (int32_t)e, c->has[e] = (int)c->nexp++;
        else c->has[e] = -1;
    size_t per = (size_t)3 * I * H;
    c->slot_raw = per * dt_size[dt];
    c->ew = qn_h_alloc(h, per * c->nexp);
    c->eb = qn_h_alloc_bytes(h, c->slot_raw * c->nexp);
    for (uint32_t n = 0; n < c->nexp; n++) {
        gen_weights(h, dt, (size_t)2 * I * H, a_h, c->eb + n * c->slot_raw, c->ew + n * per);
        gen_weights(h, dt, (size_t)H * I, sqrtf(3.0f / (float)I), c->eb + n * c->slot_raw + 2 * (size_t)I * H * dt_size[dt],
                    c->ew + n * per + 2 * (size_t)I * H);
    }
    ref_outputs(h, c);
}

/* ---- slot layouts -------------------------------------------------------------------------------- */

/* permuted == 0: expert n of the populated list in slot n, as few pools as the storage range allows. Else a random permutation over
 * nexp + 3 slots (gaps), slots padded by 48 bytes, spp chosen so the slots spread over up to 8 pools.
 * The table's layer 0 holds a different (wrong) mapping so a wrong layer index is caught. */
static void make_layout(struct qn_h *h, const struct moe_case *c, int permuted, struct layout *L)
{
    memset(L, 0, sizeof *L);
    uint32_t E = c->s->E, n = c->nexp;
    L->n_slots = permuted ? n + 3 : n;
    L->slot_bytes = (uint32_t)((c->slot_raw + 15) / 16 * 16 + (permuted ? 48 : 0));
    uint64_t fit = qn_vk_caps(h->v)->max_storage_range / L->slot_bytes; /* slots one binding can reach */
    L->spp = permuted ? (L->n_slots + 5) / 6 : n;
    if (L->spp > fit) L->spp = (uint32_t)fit;
    if (L->spp < 1) L->spp = 1;
    L->npools = (L->n_slots + L->spp - 1) / L->spp;
    if (L->npools > QN_MOE_MAX_POOLS) qn_h_ok(h, qn_fail(-ENOSPC, "%u slots need %u pools", L->n_slots, L->npools), "layout");
    int32_t *slot_of = qn_h_alloc_bytes(h, n * sizeof(int32_t)), *perm = qn_h_alloc_bytes(h, L->n_slots * 4);
    for (uint32_t i = 0; i < L->n_slots; i++) perm[i] = (int32_t)i;
    for (uint32_t i = L->n_slots; permuted && i > 1; i--) {
        uint32_t j = (uint32_t)(qn_rng_u64(&h->rng) % i);
        int32_t tmp = perm[i - 1]; perm[i - 1] = perm[j]; perm[j] = tmp;
    }
    for (uint32_t i = 0; i < n; i++) slot_of[i] = perm[i];
    for (uint32_t p = 0; p < L->npools; p++) {
        uint32_t ns = L->n_slots - p * L->spp < L->spp ? L->n_slots - p * L->spp : L->spp;
        L->pool[p] = qn_h_buffer(h, "pool", (size_t)ns * L->slot_bytes); /* poisoned: gaps read as NaN */
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t s = (uint32_t)slot_of[i];
        qn_h_ok(h, qn_buf_write(h->v, L->pool[s / L->spp], (uint64_t)(s % L->spp) * L->slot_bytes,
                                c->eb + i * c->slot_raw, c->slot_raw), "pool upload");
    }
    int32_t *tab = qn_h_alloc_bytes(h, (size_t)NLAYERS * E * sizeof(int32_t));
    for (uint32_t e = 0; e < E; e++) {
        tab[LAYER * E + e] = c->has[e] >= 0 ? slot_of[c->has[e]] : -1;
        tab[0 * E + e] = c->has[(e + 1) % E] >= 0 ? slot_of[c->has[(e + 1) % E]] : -1;
    }
    L->table = qn_h_upload(h, "table", tab, (size_t)NLAYERS * E * sizeof(int32_t));
}

/* ---- running the block ------------------------------------------------------------------------------ */

static qn_pc_moe case_pc(const struct moe_case *c, const struct layout *L, uint32_t tile_t, uint32_t tile_groups)
{
    const struct shape *s = c->s;
    return (qn_pc_moe){ .T = c->T, .H = s->H, .I = s->I, .Is = s->Is, .E = s->E, .K = s->K, .layer = LAYER,
                        .n_slots = L->n_slots, .slots_per_pool = L->spp, .slot_bytes = L->slot_bytes,
                        .act_stride = c->act_stride, .m_stride = c->m_stride, .flags = c->flags,
                        .tile_t = tile_t, .max_tiles = QN_MOE_MAX_TILES(c->T, s->E, s->K, tile_t),
                        .tile_groups = tile_groups };
}

#define POOLS(L) QN_BIND((L)->pool[0]), QN_BIND((L)->pool[(L)->npools > 1 ? 1 : 0]), \
    QN_BIND((L)->pool[(L)->npools > 2 ? 2 : 0]), QN_BIND((L)->pool[(L)->npools > 3 ? 3 : 0]), \
    QN_BIND((L)->pool[(L)->npools > 4 ? 4 : 0]), QN_BIND((L)->pool[(L)->npools > 5 ? 5 : 0]), \
    QN_BIND((L)->pool[(L)->npools > 6 ? 6 : 0]), QN_BIND((L)->pool[(L)->npools > 7 ? 7 : 0])

/* router -> (gate_up -> down) or (sort -> grouped gate_up -> grouped down -> combine), one submission */
static void run_block(struct qn_h *h, const struct moe_case *c, const struct layout *L, const struct run_cfg *r,
                      struct outputs *o)
{
    const struct shape *s = c->s;
    uint32_t T = c->T, K = s->K;
    qn_buf *ids = qn_h_buffer(h, "ids", (size_t)T * K * 4), *w = qn_h_output(h, "w", (size_t)T * K);
    qn_buf *sg = qn_h_output(h, "sg", T), *act = qn_h_output(h, "act", (size_t)T * (K + 1) * c->act_stride);
    qn_buf *y = qn_h_upload(h, "y", c->y0, (size_t)T * s->H * sizeof(float));
    qn_pc_moe pc = case_pc(c, L, r->grouped ? r->tile_t : 1, r->tile_groups);
    uint32_t G = r->tile_groups ? r->tile_groups : pc.max_tiles;
    uint32_t BN_gu = 2 * r->gspec[1], BN_dn = 4 * r->gspec[1]; /* row blocks of the grouped kernels */
    qn_cmd *cmd = h->cmd;
    qn_h_ok(h, qn_cmd_begin(cmd), "begin");
    qn_cmd_mark(cmd, "router");
    qn_cmd_dispatch_n(cmd, qn_h_pipe_default(h, QN_K_MOE_ROUTER),
                      QN_BINDS(QN_BIND(c->m_b), QN_BIND(ids), QN_BIND(w), QN_BIND(sg), QN_BIND(act)), &pc, sizeof pc, T);
    qn_cmd_barrier(cmd);
    if (!r->grouped) {
        qn_cmd_mark(cmd, "gate_up");
        uint32_t gr = r->gu_spec[1], dr = r->dn_spec[1];
        qn_cmd_dispatch_nz(cmd, qn_h_pipe_spec(h, k_gate_up[c->dt], r->gu_spec, 3),
                           QN_BINDS(QN_BIND(c->x_b), QN_BIND(ids), QN_BIND(L->table), QN_BIND(act), POOLS(L)),
                           &pc, sizeof pc, (uint64_t)K * ((s->I + gr - 1) / gr), T);
        qn_cmd_barrier(cmd);
        qn_cmd_mark(cmd, "down");
        qn_cmd_dispatch_nz(cmd, qn_h_pipe_spec(h, k_down[c->dt], r->dn_spec, 3),
                           QN_BINDS(QN_BIND(act), QN_BIND(ids), QN_BIND(L->table), QN_BIND(w), QN_BIND(sg),
                                    QN_BIND(c->ds_b), QN_BIND(y), POOLS(L)),
                           &pc, sizeof pc, (s->H + dr - 1) / dr, T);
    } else {
        qn_buf *list = qn_h_buffer(h, "list", (size_t)(T * K + T) * 4);
        qn_buf *tiles = qn_h_buffer(h, "tiles", (size_t)pc.max_tiles * 16);
        qn_buf *d = qn_h_output(h, "d", (size_t)T * (K + 1) * s->H);
        qn_cmd_mark(cmd, "sort");
        qn_cmd_dispatch_n(cmd, qn_h_pipe_default(h, QN_K_MOE_SORT), QN_BINDS(QN_BIND(ids), QN_BIND(list), QN_BIND(tiles)),
                          &pc, sizeof pc, s->E + 1);
        qn_cmd_barrier(cmd);
        qn_cmd_mark(cmd, "gate_up_grouped");
        qn_cmd_dispatch_n(cmd, qn_h_pipe_spec(h, k_gate_up_g[c->dt], r->gspec, 3),
                          QN_BINDS(QN_BIND(c->x_b), QN_BIND(list), QN_BIND(tiles), QN_BIND(L->table), QN_BIND(act),
                                   POOLS(L)),
                          &pc, sizeof pc, (uint64_t)G * ((s->I + BN_gu - 1) / BN_gu));
        qn_cmd_barrier(cmd);
        qn_cmd_mark(cmd, "down_grouped");
        qn_cmd_dispatch_n(cmd, qn_h_pipe_spec(h, k_down_g[c->dt], r->gspec, 3),
                          QN_BINDS(QN_BIND(act), QN_BIND(list), QN_BIND(tiles), QN_BIND(L->table), QN_BIND(d),
                                   QN_BIND(c->ds_b), POOLS(L)),
                          &pc, sizeof pc, (uint64_t)G * ((s->H + BN_dn - 1) / BN_dn));
        qn_cmd_barrier(cmd);
        qn_cmd_mark(cmd, "combine");
        qn_cmd_dispatch_n(cmd, qn_h_pipe_default(h, QN_K_MOE_COMBINE),
                          QN_BINDS(QN_BIND(d), QN_BIND(w), QN_BIND(sg), QN_BIND(y)), &pc, sizeof pc,
                          ((uint64_t)T * s->H + 255) / 256);
    }
    qn_h_ok(h, qn_cmd_end(cmd), "end");
    qn_h_ok(h, qn_cmd_run(cmd), "run");
    if (h->verbose) {
        printf("     gpu:");
        for (uint32_t i = 0; i < qn_cmd_nregions(cmd); i++) {
            const char *label;
            double ms = qn_cmd_region(cmd, i, &label);
            printf(" %s %.1f ms", label, ms);
        }
        printf("\n");
    }
    o->y = qn_h_read(h, y, (size_t)T * s->H);
    o->act = qn_h_read(h, act, (size_t)T * (K + 1) * c->act_stride);
    o->w = qn_h_read(h, w, (size_t)T * K);
    o->sg = qn_h_read(h, sg, T);
    o->ids = (int *)qn_h_read(h, ids, (size_t)T * K);
}

/* the act elements that are defined (rows 0..K-1 up to I, row K up to Is), as a compact array */
static float *act_defined(struct qn_h *h, const struct moe_case *c, const float *act, size_t *n)
{
    const struct shape *s = c->s;
    float *out = qn_h_alloc(h, (size_t)c->T * (s->K * s->I + s->Is));
    size_t j = 0;
    for (uint32_t t = 0; t < c->T; t++)
        for (uint32_t k = 0; k <= s->K; k++)
            for (uint32_t i = 0; i < (k < s->K ? s->I : s->Is); i++)
                out[j++] = act[((size_t)t * (s->K + 1) + k) * c->act_stride + i];
    *n = j;
    return out;
}

static void check_outputs(struct qn_h *h, const struct moe_case *c, const struct outputs *o, const char *what)
{
    const struct shape *s = c->s;
    uint32_t T = c->T, K = s->K;
    char msg[256];
    int bad = 0;
    for (uint32_t i = 0; i < T * K; i++) bad += o->ids[i] != c->ids_ref[i];
    h->checks++;
    if (bad) h->failures++;
    printf("%-4s %s ids: %d of %u differ\n", bad ? "FAIL" : "ok", what, bad, T * K);
    /* f32 exp/softmax vs double: measured max rel ~2e-7 */
    snprintf(msg, sizeof msg, "%s w", what);
    qn_h_check_host(h, msg, o->w, c->w_ref, (size_t)T * K, 1e-7, 2e-6);
    snprintf(msg, sizeof msg, "%s sg", what);
    qn_h_check_host(h, msg, o->sg, c->sg_ref, T, 1e-7, 1e-6);
    size_t n;
    float *got = act_defined(h, c, o->act, &n), *want = act_defined(h, c, c->act_ref, &n);
    /* act = silu(g)·u of f32 dots over H terms vs double: near act = 0 the error is that of the dots times
     * |silu(g)| (~eps · sum|terms| · 2); measured max abs 5e-7 at H 64, 4e-6 at H 2048 (grouped) */
    snprintf(msg, sizeof msg, "%s act", what);
    qn_h_check_host(h, msg, got, want, n, 2e-6 + 4e-9 * s->H, 1e-5);
    /* y = y0 + routed + shared (the shared gate/up come from the f32 matvec) vs double; measured max abs
     * 6e-7 at the real shape, 5e-7 at the small ones (|y| up to ~4) */
    snprintf(msg, sizeof msg, "%s y", what);
    qn_h_check_host(h, msg, o->y, c->y_ref, (size_t)T * s->H, 1e-6 + 1e-9 * (s->H + s->I), 1e-5);
}

static void check_bitwise(struct qn_h *h, const char *what, const float *a, const float *b, size_t n)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, 4) && !bad++) first = i;
    h->checks++;
    if (bad) h->failures++;
    printf("%-4s %s: %zu of %zu elements differ in bits", bad ? "FAIL" : "ok", what, bad, n);
    if (bad) printf(" (first %zu: %.9g vs %.9g)", first, a[first], b[first]);
    printf("\n");
}

/* ---- the block test ---------------------------------------------------------------------------------- */

/* Each run of cfgs on the identity layout is checked against the reference; with `permute` it is repeated
 * on the permuted layout and must give the same bits. A grouped run whose spec equals an earlier run's
 * (only tile_t / tile_groups differ) must also give that run's bits. */
static void block_case(struct qn_h *h, const struct shape *s, int dt, uint32_t T, uint32_t flags,
                       const struct run_cfg *const *cfgs, int ncfg, bool permute)
{
    double t0 = qn_now_s();
    struct moe_case c;
    make_case(h, &c, s, dt, T, flags);
    double t1 = qn_now_s();
    struct layout Lid, Lperm;
    make_layout(h, &c, 0, &Lid);
    if (permute) make_layout(h, &c, 1, &Lperm);
    struct outputs oi[8];
    char what[128], w2[256];
    for (int i = 0; i < ncfg && i < 8; i++) {
        const struct run_cfg *r = cfgs[i];
        snprintf(what, sizeof what, "%s %s T=%u%s%s %s", s->name, dt_name[dt], T,
                 flags & QN_MOE_NORM_TOPK ? " norm" : "", flags & QN_MOE_ROUND_BF16 ? " bf16-logits" : "", r->name);
        run_block(h, &c, &Lid, r, &oi[i]);
        check_outputs(h, &c, &oi[i], what);
        for (int j = 0; j < i; j++)
            if (r->grouped && cfgs[j]->grouped && !memcmp(r->gspec, cfgs[j]->gspec, sizeof r->gspec)) {
                snprintf(w2, sizeof w2, "%s == %s, y", what, cfgs[j]->name);
                check_bitwise(h, w2, oi[i].y, oi[j].y, (size_t)T * s->H);
                break;
            }
        if (!permute) continue;
        struct outputs op;
        run_block(h, &c, &Lperm, r, &op);
        snprintf(w2, sizeof w2, "%s: %u slots in %u pools (permuted) == identity, y", what, Lperm.n_slots, Lperm.npools);
        check_bitwise(h, w2, op.y, oi[i].y, (size_t)T * s->H);
        size_t n;
        float *a1 = act_defined(h, &c, oi[i].act, &n), *a2 = act_defined(h, &c, op.act, &n);
        snprintf(w2, sizeof w2, "%s: permuted == identity, act", what);
        check_bitwise(h, w2, a2, a1, n);
    }
    printf("     (%s %s T=%u: inputs + reference %.1f s, kernels + checks %.1f s)\n", s->name, dt_name[dt], T,
           t1 - t0, qn_now_s() - t1);
    qn_h_reset(h);
}
#define RUNS(...) (const struct run_cfg *const[]){ __VA_ARGS__ }, \
    (int)(sizeof((const struct run_cfg *const[]){ __VA_ARGS__ }) / sizeof(const struct run_cfg *))

/* an expert missing from the table: the tokens that use it get NaN rows, the others stay right */
static void absent_case(struct qn_h *h, const struct shape *s, uint32_t T)
{
    struct moe_case c;
    make_case(h, &c, s, DT_BF16, T, QN_MOE_NORM_TOPK);
    struct layout L;
    make_layout(h, &c, 1, &L);
    int32_t gone = c.ids_ref[0]; /* token 0's first expert */
    int32_t *tab = (int32_t *)qn_h_read(h, L.table, (size_t)NLAYERS * s->E);
    tab[LAYER * s->E + (uint32_t)gone] = -1;
    qn_h_ok(h, qn_buf_write(h->v, L.table, 0, tab, (size_t)NLAYERS * s->E * 4), "table");
    for (int path = 0; path < 2; path++) {
        struct outputs o;
        run_block(h, &c, &L, path == 1 ? &GRP_T : &DEC, &o);
        int bad = 0;
        for (uint32_t t = 0; t < T; t++) {
            bool uses = false;
            for (uint32_t k = 0; k < s->K; k++) uses |= c.ids_ref[t * s->K + k] == gone;
            for (uint32_t j = 0; j < s->H; j++) {
                float v = o.y[(size_t)t * s->H + j], r = c.y_ref[(size_t)t * s->H + j];
                bad += uses ? !isnan(v) : !(fabsf(v - r) <= 1e-4f + 1e-4f * fabsf(r));
            }
        }
        h->checks++;
        if (bad) h->failures++;
        printf("%-4s %s absent expert %d (%s): %d wrong elements\n", bad ? "FAIL" : "ok", s->name, gone,
               path ? "grouped" : "decode", bad);
    }
    qn_h_reset(h);
}

/* ---- router alone: ties and rounding ------------------------------------------------------------ */

static void router_case(struct qn_h *h, uint32_t T, uint32_t E, uint32_t K, uint32_t Is, uint32_t flags, int ties,
                        uint32_t wg)
{
    uint32_t ms = E + 2 * Is + 1, as = Is + 3;
    float *m = qn_h_alloc(h, (size_t)T * ms);
    qn_h_random(h, m, (size_t)T * ms, -3, 3);
    for (size_t i = 0; i < (size_t)T * ms; i++) {
        if (ties == 1) m[i] = (float)(int)(m[i] * 2.0f) * 0.5f + 0.25f;          /* 12 distinct values */
        if (ties == 2) m[i] = 1.0f + (float)(int)(m[i] * 2.0f) * 0.0078125f + m[i] * 1e-5f; /* ties after bf16 */
    }
    qn_buf *m_b = qn_h_upload(h, "m", m, (size_t)T * ms * 4);
    qn_buf *ids = qn_h_buffer(h, "ids", (size_t)T * K * 4), *w = qn_h_output(h, "w", (size_t)T * K);
    qn_buf *sg = qn_h_output(h, "sg", T), *act = qn_h_output(h, "act", (size_t)T * (K + 1) * as);
    qn_pc_moe pc = { .T = T, .E = E, .K = K, .Is = Is, .m_stride = ms, .act_stride = as, .flags = flags };
    qn_h_run(h, qn_h_pipe(h, QN_K_MOE_ROUTER, wg), QN_BINDS(QN_BIND(m_b), QN_BIND(ids), QN_BIND(w), QN_BIND(sg), QN_BIND(act)),
             &pc, sizeof pc, T);
    char what[160];
    snprintf(what, sizeof what, "router T=%u E=%u K=%u wg %u%s%s%s", T, E, K, wg, flags & QN_MOE_NORM_TOPK ? " norm" : "",
             flags & QN_MOE_ROUND_BF16 ? " bf16-logits" : "", ties == 1 ? " exact-ties" : ties == 2 ? " bf16-ties" : "");
    check_route(h, what, m, T, E, K, Is, as, flags, ids, w, sg, act);
    qn_h_reset(h);
}

/* ---- sort alone ----------------------------------------------------------------------------------- */

static void sort_case(struct qn_h *h, uint32_t T, uint32_t E, uint32_t K, uint32_t tile_t)
{
    int32_t *ids = qn_h_alloc_bytes(h, (size_t)T * K * 4);
    for (uint32_t t = 0; t < T; t++) /* K distinct ids per token, skewed towards low ids */
        for (uint32_t k = 0; k < K;) {
            uint32_t e = (uint32_t)(qn_rng_u64(&h->rng) % E);
            if (qn_rng_uniform(&h->rng) < 0.5f) e /= 4;
            bool dup = false;
            for (uint32_t j = 0; j < k; j++) dup |= ids[t * K + j] == (int32_t)e;
            if (!dup) ids[t * K + k++] = (int32_t)e;
        }
    qn_pc_moe pc = { .T = T, .E = E, .K = K, .tile_t = tile_t, .max_tiles = QN_MOE_MAX_TILES(T, E, K, tile_t) };
    qn_buf *ib = qn_h_upload(h, "ids", ids, (size_t)T * K * 4);
    qn_buf *lb = qn_h_buffer(h, "list", (size_t)(T * K + T) * 4), *tb = qn_h_buffer(h, "tiles", (size_t)pc.max_tiles * 16);
    qn_h_run(h, qn_h_pipe_default(h, QN_K_MOE_SORT), QN_BINDS(QN_BIND(ib), QN_BIND(lb), QN_BIND(tb)), &pc, sizeof pc, E + 1);
    int32_t *gl = (int32_t *)qn_h_read(h, lb, T * K + T), *gt = (int32_t *)qn_h_read(h, tb, (size_t)pc.max_tiles * 4);
    int32_t *wl = qn_h_alloc_bytes(h, (size_t)(T * K + T) * 4), *wt = qn_h_alloc_bytes(h, (size_t)pc.max_tiles * 16);
    uint32_t nl = 0, nt = 0;
    for (uint32_t e = 0; e <= E; e++) {
        uint32_t first = nl;
        for (uint32_t t = 0; t < T; t++)
            for (uint32_t k = 0; k <= K; k++)
                if (e < E ? k < K && ids[t * K + k] == (int32_t)e : k == K) wl[nl++] = (int32_t)(t * (K + 1) + k);
        for (uint32_t j = first; j < nl; j += tile_t, nt++) {
            wt[4 * nt] = (int32_t)e, wt[4 * nt + 1] = (int32_t)j;
            wt[4 * nt + 2] = (int32_t)(nl - j < tile_t ? nl - j : tile_t), wt[4 * nt + 3] = 0;
        }
    }
    for (uint32_t i = nt; i < pc.max_tiles; i++) wt[4 * i] = -1, wt[4 * i + 1] = wt[4 * i + 2] = wt[4 * i + 3] = 0;
    int bad = memcmp(gl, wl, (size_t)nl * 4) != 0 || memcmp(gt, wt, (size_t)pc.max_tiles * 16) != 0;
    h->checks++;
    if (bad) h->failures++;
    printf("%-4s sort T=%u E=%u K=%u tile_t %u: %u pairs, %u of %u tiles used\n", bad ? "FAIL" : "ok", T, E, K, tile_t,
           nl, nt, pc.max_tiles);
    qn_h_reset(h);
}

/* ---- GPU timing (--only bench: all 512 experts resident, ~3.2 GB of pools; not for lavapipe) --------- */

static void bench_case(struct qn_h *h, const struct shape *s, uint32_t T, const struct run_cfg *r, int iters)
{
    struct moe_case c;
    memset(&c, 0, sizeof c);
    c.s = s, c.dt = DT_BF16, c.T = T, c.flags = QN_MOE_NORM_TOPK | QN_MOE_ROUND_BF16;
    c.m_stride = s->E + 2 * s->Is + 1, c.act_stride = s->I > s->Is ? s->I : s->Is;
    c.x_b = qn_h_input_f32(h, "x", (size_t)T * s->H, -1.5f, 1.5f, &c.x);
    c.m_b = qn_h_input_f32(h, "m", (size_t)T * c.m_stride, -3, 3, &c.m);
    c.y0 = qn_h_alloc(h, (size_t)T * s->H);
    qn_h_random(h, c.y0, (size_t)T * s->H, -1, 1);
    c.ds_b = weights_buf(h, "down_s", DT_BF16, (size_t)s->H * s->Is, 0.04f, &c.ds);
    struct layout L;
    memset(&L, 0, sizeof L);
    L.n_slots = s->E, L.slot_bytes = (uint32_t)((size_t)3 * s->I * s->H * 2);
    uint64_t fit = qn_vk_caps(h->v)->max_storage_range / L.slot_bytes;
    L.spp = (uint32_t)(fit < 128 ? fit : 128);
    L.npools = (L.n_slots + L.spp - 1) / L.spp;
    if (L.npools > QN_MOE_MAX_POOLS) qn_h_ok(h, qn_fail(-ENOSPC, "bench: %u pools", L.npools), "bench");
    for (uint32_t p = 0; p < L.npools; p++) {
        L.pool[p] = qn_h_buffer(h, "pool", (size_t)L.spp * L.slot_bytes);
        qn_h_ok(h, qn_buf_fill(h->v, L.pool[p], 0, L.pool[p]->size, 0x3c1fbc1fu), "pool fill"); /* +-0.0097 */
    }
    int32_t *tab = qn_h_alloc_bytes(h, (size_t)NLAYERS * s->E * 4);
    for (uint32_t i = 0; i < NLAYERS * s->E; i++) tab[i] = (int32_t)(i % s->E);
    L.table = qn_h_upload(h, "table", tab, (size_t)NLAYERS * s->E * 4);
    struct outputs o;
    run_block(h, &c, &L, r, &o); /* records once; the recording is submitted again below */
    uint8_t *used = qn_h_alloc_bytes(h, s->E);
    uint32_t nused = 0;
    for (uint32_t i = 0; i < T * s->K; i++) nused += o.ids[i] >= 0 && !used[o.ids[i]]++ ? 1 : 0;
    double best[16];
    uint32_t nreg = qn_cmd_nregions(h->cmd);
    for (uint32_t i = 0; i < nreg && i < 16; i++) best[i] = 1e30;
    for (int it = 0; it < iters; it++) {
        qn_h_ok(h, qn_cmd_run(h->cmd), "bench run");
        for (uint32_t i = 0; i < nreg && i < 16; i++) best[i] = fmin(best[i], qn_cmd_region(h->cmd, i, NULL));
    }
    double expert_mb = 3.0 * s->I * s->H * 2 / 1e6, total = 0;
    printf("bench %s T=%u %s, %u experts used (%.1f MB of expert weights), best of %d:\n", s->name, T, r->name, nused,
           nused * expert_mb, iters);
    for (uint32_t i = 0; i < nreg && i < 16; i++) {
        const char *label;
        qn_cmd_region(h->cmd, i, &label);
        double mb = 0;
        if (!strcmp(label, "gate_up")) mb = (double)T * s->K * expert_mb * 2 / 3;
        if (!strcmp(label, "down")) mb = (double)T * (s->K * expert_mb / 3 + s->H * s->Is * 2 / 1e6);
        if (!strcmp(label, "gate_up_grouped")) mb = nused * expert_mb * 2 / 3;
        if (!strcmp(label, "down_grouped")) mb = nused * expert_mb / 3 + s->H * s->Is * 2 / 1e6;
        printf("  %-16s %9.1f us", label, best[i] * 1e3);
        if (mb > 0) printf("  %8.1f MB  %7.1f GB/s", mb, mb / best[i]);
        printf("\n");
        total += best[i];
    }
    printf("  %-16s %9.1f us\n", "total", total * 1e3);
    qn_h_reset(h);
}

/* name is one of the comma-separated words of list (NULL: all) */
static bool in_list(const char *list, const char *name)
{
    if (!list) return true;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return true;
        p += len + (end ? 1 : 0);
    }
    return false;
}

/* ---- main ----------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    /* real Qwen3-Next-80B shape: the router rows favour 16 experts, so only ~16 get weights (6 MB each) */
    static const struct shape real = { "H2048/E512/K10/I512", 2048, 512, 10, 512, 512, 16 };
    static const struct shape odd1 = { "H96/E32/K6/I40/Is56", 96, 32, 6, 40, 56, 32 };
    static const struct shape odd2 = { "H128/E16/K4/I48", 128, 16, 4, 48, 48, 16 };
    static const struct shape fix3 = { "H64/E64/K10/I24/Is40", 64, 64, 10, 24, 40, 64 };
    static const struct shape odd3 = { "H70/E20/K3/I27/Is33", 70, 20, 3, 27, 33, 20 }; /* scalar paths */
    static const struct shape odd4 = { "H96/E24/K5/I32/Is40", 96, 24, 5, 32, 40, 24 };  /* odd K, vector path */
    struct qn_h h;
    qn_h_open(&h, "moe", argc, argv);
    const uint32_t NR = QN_MOE_NORM_TOPK, RB = QN_MOE_ROUND_BF16;
    /* --only router,sort,real1,real3,real64,odd,bench: some groups of cases (meson variants, development, GPU
     * timing; bench runs only when named) */
    const char *only = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--only")) only = argv[i + 1];
#define GROUP(name) if (in_list(only, name))

    GROUP("router") {
        router_case(&h, 64, 512, 10, 512, NR | RB, 0, 256);
        router_case(&h, 5, 512, 10, 512, 0, 0, 100);
        router_case(&h, 7, 512, 10, 64, NR, 1, 256);
        router_case(&h, 7, 512, 10, 64, NR | RB, 2, 64);
        router_case(&h, 3, 16, 4, 48, RB, 1, 32);
        router_case(&h, 4, 1024, 64, 8, NR, 0, 256);
    }
    GROUP("sort") {
        sort_case(&h, 64, 512, 10, 64);
        sort_case(&h, 37, 20, 4, 8);
        sort_case(&h, 300, 16, 4, 64);
        sort_case(&h, 1, 512, 10, 64);
    }
    if (only && in_list(only, "bench")) { /* explicit only: decode T = 1, 2 and prefill T = 64, 512 */
        /* tuning candidates next to the defaults (the same kernels, other specialization constants) */
        static const struct run_cfg DEC_B = { "decode rows 8 unroll 8/2", false, { 128, 8, 8 }, { 128, 8, 2 },
                                              { 0 }, 0, 0 };
        static const struct run_cfg DEC_C = { "decode wg 256 rows 8 unroll 2/8", false, { 256, 8, 2 },
                                              { 256, 8, 8 }, { 0 }, 0, 0 };
        static const struct run_cfg GRP_BK = { "grouped bk 64", true, { 0 }, { 0 }, { 256, 16, 64 }, 64, 0 };
        static const struct run_cfg GRP_16 = { "grouped wg 64 (tile 16)", true, { 0 }, { 0 }, { 64, 16, 32 }, 16, 0 };
        static const struct run_cfg GRP_16B = { "grouped wg 64 bk 64 (tile 16)", true, { 0 }, { 0 }, { 64, 16, 64 },
                                                16, 0 };
        for (uint32_t T = 1; T <= 2; T++) {
            bench_case(&h, &real, T, &DEC, 50);
            bench_case(&h, &real, T, &DEC_B, 50);
            bench_case(&h, &real, T, &DEC_C, 50);
        }
        bench_case(&h, &real, 8, &DEC, 20);
        bench_case(&h, &real, 8, &GRP_16, 20);
        for (uint32_t T = 64; T <= 512; T *= 8) {
            bench_case(&h, &real, T, &GRP, 5);
            bench_case(&h, &real, T, &GRP_BK, 5);
            bench_case(&h, &real, T, &GRP_16, 5);
            bench_case(&h, &real, T, &GRP_16B, 5);
        }
    }
    if (only && in_list(only, "bench_small")) { /* the bench code on a small shape (lavapipe) */
        bench_case(&h, &odd2, 1, &DEC, 3);
        bench_case(&h, &odd2, 64, &GRP, 3);
    }
    GROUP("real1") block_case(&h, &real, DT_BF16, 1, NR | RB, RUNS(&DEC, &GRP_1), true);
    GROUP("real3") block_case(&h, &real, DT_BF16, 3, NR, RUNS(&DEC8, &GRP_1), true);
    /* the grouped kernels have no subgroup variant: the heavy real-shape prefill runs once, not again in
     * the QNEXT_NO_SUBGROUP=1 run */
    const char *nosg = getenv("QNEXT_NO_SUBGROUP");
    if (nosg && !strcmp(nosg, "1") && !only) printf("note: real-shape T=64 skipped with QNEXT_NO_SUBGROUP=1\n");
    else GROUP("real64") block_case(&h, &real, DT_BF16, 64, NR | RB, RUNS(&GRP_G), false);
    GROUP("odd") {
        for (int i = 0; i < 3; i++) {
            uint32_t T = (const uint32_t[]){ 1, 3, 64 }[i];
            block_case(&h, &odd1, DT_BF16, T, NR | RB, RUNS(&DEC, &GRP, &GRP_T, &GRP_S), true);
            block_case(&h, &odd2, DT_BF16, T, T == 3 ? 0 : NR, RUNS(&DEC, &DEC8, &GRP, &GRP_T), true);
            block_case(&h, &fix3, DT_BF16, T, RB, RUNS(&DEC, &GRP, &GRP_S), true);
            block_case(&h, &odd3, DT_BF16, T, NR, RUNS(&DEC, &GRP, &GRP_T, &GRP_S), true);
        }
        for (int dt = DT_F16; dt <= DT_F32; dt++) {
            block_case(&h, &odd1, dt, 3, NR, RUNS(&DEC, &GRP, &GRP_S), true);
            block_case(&h, &odd3, dt, 5, NR | RB, RUNS(&DEC, &GRP_T), true);
            block_case(&h, &odd2, dt, 64, 0, RUNS(&DEC, &GRP), true);
        }
        block_case(&h, &odd4, DT_BF16, 3, NR, RUNS(&DEC, &GRP), true);
        block_case(&h, &odd4, DT_F32, 2, RB, RUNS(&DEC, &GRP_S), true);
        absent_case(&h, &odd1, 5);
    }
    return qn_h_close(&h);
}
