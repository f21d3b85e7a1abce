/* forward_moe.c — the expert half of the sparse MoE block in the forward graph (spec §7): after the route (forward.c
 * moe_route: ids, w, sg and the shared expert's act row), x[T, H] += sum_k w_k expert_k(xn) + sg shared(xn) through
 * the slot table: the host tier's gather, then the per-token decode kernels (moe_q.comp, the decode chain's gate_up ->
 * split down), the grouped prefill kernels over moe_sort's tiles (moe_qgrouped[_cm], moe_qmt, moe_qsmall) for GGUF
 * block experts, or the plain-dtype kernels (moe_gate_up / moe_down, grouped). */
#include "forward_moe.h"

#include "expert_host.h"
#include "forward_pipes.h"

/* The 8 pool bindings of layer l's expert dispatches (POOLS / DPOOLS use the caller's `l`): the model's pools; with
 * the host tier's VRAM cache (expert_host.h) its VRAM pools and, at every binding past them, layer l's host slab. */
#define POOLS(m) QN_BIND(pool_at(m, l, 0)), QN_BIND(pool_at(m, l, 1)), QN_BIND(pool_at(m, l, 2)), \
                 QN_BIND(pool_at(m, l, 3)), QN_BIND(pool_at(m, l, 4)), QN_BIND(pool_at(m, l, 5)), \
                 QN_BIND(pool_at(m, l, 6)), QN_BIND(pool_at(m, l, 7))
static const qn_buf *pool_at(const qn_model *m, int l, uint32_t i)
{
    return m->host_tier ? qn_eh_binding(m, l, i, false) : m->pools[i < m->n_pools ? i : 0];
}

#define DPOOLS(m) QN_BIND(dpool_at(m, l, 0)), QN_BIND(dpool_at(m, l, 1)), QN_BIND(dpool_at(m, l, 2)), \
                  QN_BIND(dpool_at(m, l, 3)), QN_BIND(dpool_at(m, l, 4)), QN_BIND(dpool_at(m, l, 5)), \
                  QN_BIND(dpool_at(m, l, 6)), QN_BIND(dpool_at(m, l, 7))
static const qn_buf *dpool_at(const qn_model *m, int l, uint32_t i)
{
    return m->host_tier ? qn_eh_binding(m, l, i, true) : m->dpools[i < m->d_n_pools ? i : 0];
}

/* The largest call whose GGUF block experts run on the per-token kernels (moe_q_experts): tune.small_t, or above it
 * f->moe_token_t (env QNEXT_MOE_TOKEN_T; short prompts: each token reads its K experts, T K expert reads against the
 * grouped kernels' one per used expert, but without the grouped kernels' serial k-steps per tile). */
uint32_t qn_fwd_moe_token_t(const qn_fwd *f) { return f->moe_token_t > f->tune.small_t ? f->moe_token_t : f->tune.small_t; }

/* Prefill over GGUF block experts: tokens grouped by expert (moe_sort), gate_up / down over its tiles (down_s of
 * the shared expert is f32), then moe_combine adds sum_k w d_k + sg d_K to x in a fixed order (as moe_experts() for
 * plain dtypes). Few tokens per expert (qn_moe_small_nt: only with env QNEXT_MOE_SMALL=1 or QNEXT_MOE_SMALL_MAX=<T K / E>):
 * tiles of NT pairs and the multi-token matvec moe_qsmall.comp, which reads each used expert's weights about once;
 * with QNEXT_MOE_MT_PAIRS covering T K / E: tiles of NT pairs and the multi-token grouped matvec moe_qmt.comp (each
 * lane decodes its rows' units once for all the tile's tokens, inputs broadcast from shared memory);
 * else tiles of tile_t and the tiled kernels moe_qgrouped[_cm].comp (the expert tiles decoded in shared memory). */
static void moe_qg_experts(struct rec *r, int l, const qn_pc_moe *pc0)
{
    qn_fwd *f = r->f;
    const qn_model *m = f->m;
    const struct qn_mlayer *L = &m->L[l];
    int gi = qn_fwd_q_index(L->exp_qtype[0]), di = qn_fwd_q_index(L->exp_qtype[2]);
    uint32_t nt = qn_moe_small_nt(pc0->T, pc0->E, pc0->K);
    int si = nt ? qn_moe_small_nt_index(nt) : -1;
    bool small = si >= 0 && f->moe_qgu_s[si][gi] && f->moe_qdn_s[si][di];
    /* the multi-token grouped matvec (QNEXT_MOE_MT_PAIRS) */
    bool mt = !small && f->moe_qgu_mt[gi] && f->moe_qdn_mt[di] && qn_moe_mt_take(pc0->T, pc0->E, pc0->K, f->moe_mt_i8);
    qn_pc_moe pcs = *pc0;
    if (small) pcs.tile_t = nt, pcs.max_tiles = QN_MOE_MAX_TILES(pcs.T, pcs.E, pcs.K, nt); /* moe_sort cuts NT */
    if (mt) nt = qn_moe_mt_tile(f->moe_qgu_mt[gi], f->moe_qdn_mt[di]),
            pcs.tile_t = nt, pcs.max_tiles = QN_MOE_MAX_TILES(pcs.T, pcs.E, pcs.K, nt);
    const qn_pc_moe *pc = &pcs;
    bool cm = !small && !mt && f->moe_qgu_gcm[gi] && f->moe_qdn_gcm[di]; /* tensor cores: rows per block 16 / 32 per subgroup */
    /* ... in the second layout below cm_moe_big_pairs pairs per expert (forward_pipes.c cm_small_pipes) */
    bool cm2 = cm && f->moe_qgu_gcm2[gi] && f->moe_qdn_gcm2[di] &&
               (uint64_t)pc->T * pc->K < (uint64_t)f->cm_moe_big_pairs * pc->E;
    const qn_pipe *gu = small ? f->moe_qgu_s[si][gi] : mt ? f->moe_qgu_mt[gi] : cm2 ? f->moe_qgu_gcm2[gi] :
                        cm ? f->moe_qgu_gcm[gi] : f->moe_qgu_g[gi];
    /* the f16 path's twin (forward.h moe_qgu_gcm_h): xn converted into hx once, the tiles move f16 rows */
    const qn_pipe *guh = cm && !cm2 && pc->T >= f->h_min_t ? f->moe_qgu_gcm_h[gi] : NULL;
    if (guh) {
        qn_fwd_to_f16(r, f->to_f16_x, QN_BIND(f->xn), f->hx, pc->T, pc->H, pc->H, 0);
        gu = guh;
    }
    const qn_pipe *dn = small ? f->moe_qdn_s[si][di] : mt ? f->moe_qdn_mt[di] : cm2 ? f->moe_qdn_gcm2[di] :
                        cm ? f->moe_qdn_gcm[di] : f->moe_qdn_g[di];
    qn_cmd_dispatch_n(r->c, f->sort, QN_BINDS(QN_BIND(f->ids), QN_BIND(f->list), QN_BIND(f->tiles)), pc, sizeof *pc,
                      pc->E + 1);
    barrier(r);                                 /* act[t, k, I] = silu(gate_e · xn) * (up_e · xn) */
    uint32_t bn = small ? qn_moe_small_rows(gu) : mt ? qn_moe_mt_rows(gu) : cm ? qn_pipe_spec(gu, 0) / 2 :
                  2 * qn_pipe_spec(gu, 1); /* 2 GN */
    qn_cmd_dispatch_n(r->c, gu, QN_BINDS(QN_BIND(guh ? f->hx : f->xn), QN_BIND(f->list), QN_BIND(f->tiles), QN_BIND(m->slot_table),
                                         QN_BIND(f->act), POOLS(m)),
                      pc, sizeof *pc, (uint64_t)pc->max_tiles * cdiv(pc->I, bn));
    qn_pc_moe pd = *pc;
    pd.slot_bytes = (uint32_t)m->d_slot_bytes;
    pd.slots_per_pool = m->d_slots_per_pool;
    const qn_pipe *dnh = guh ? f->moe_qdn_gcm_h[di] : NULL; /* act rows converted into hx (its gate_up is done) */
    if (dnh && f->moe_sh_early) { /* d[t, K, :] = down_s · act[t, K, :] beside the gate_up (same outputs bit for bit) */
        qn_pc_moe ps = pd;
        ps.flags |= QN_MOE_SHARED_ONLY;
        ps.tile_groups = cdiv(pc->T, pc->tile_t);
        pd.flags |= QN_MOE_SKIP_SHARED;
        qn_cmd_dispatch_n(r->c, f->moe_qdn_gcm[di], QN_BINDS(QN_BIND(f->act), QN_BIND(f->list), QN_BIND(f->tiles),
                                                             QN_BIND(m->slot_table), QN_BIND(f->d), wb(&L->shared_down), DPOOLS(m)),
                          &ps, sizeof ps, (uint64_t)ps.tile_groups * cdiv(pc->H, qn_pipe_spec(f->moe_qdn_gcm[di], 0)));
    }
    barrier(r);                                 /* d[T, K + 1, H] = down_e · act (unweighted) */
    if (dnh) {
        pd.act_stride = qn_fwd_h_act_cols(&m->c);
        qn_fwd_to_f16(r, f->to_f16_x, QN_BIND(f->act), f->hx, pc->T * (pc->K + 1), pd.act_stride, pc->act_stride, 0);
        barrier(r);
        dn = dnh;
    }
    bn = small ? qn_moe_small_rows(dn) : mt ? qn_moe_mt_rows(dn) : cm ? qn_pipe_spec(dn, 0) :
         4 * qn_pipe_spec(dn, 1); /* 4 * GN (down) */
    qn_cmd_dispatch_n(r->c, dn, QN_BINDS(QN_BIND(dnh ? f->hx : f->act), QN_BIND(f->list), QN_BIND(f->tiles),
                                         QN_BIND(m->slot_table), QN_BIND(f->d), wb(&L->shared_down), DPOOLS(m)),
                      &pd, sizeof pd, (uint64_t)pc->max_tiles * cdiv(pc->H, bn));
    barrier(r);                                 /* x += sum_k w d_k + sg d_K, fixed order */
    qn_cmd_dispatch_n(r->c, f->combine, QN_BINDS(QN_BIND(f->d), QN_BIND(f->w), QN_BIND(f->sg), QN_BIND(f->x)),
                      pc, sizeof *pc, cdiv((uint64_t)r->T * pc->H, qn_pipe_spec(f->combine, 0)));
    barrier(r);
}

/* The shared expert's down_proj for the decode down kernels: its GGUF blocks (model_gguf.c's decode sub) when
 * they are the layer's routed down type (flag QN_MOE_SHARED_Q), else the f32 tensor. */
static struct qn_bind shared_down_bind(const struct qn_mlayer *L, uint32_t *flags)
{
    if (qn_model_shared_down_q(L)) {
        *flags |= QN_MOE_SHARED_Q;
        return QN_BIND(L->shared_down.sub[0].buf);
    }
    return wb(&L->shared_down);
}

/* moe_experts() for GGUF block experts (moe_q.comp): gate|up slots in pools, down slots in dpools; the
 * per-token kernels with tokens in z up to tune.small_t tokens, the grouped kernels above. The down is split over
 * the experts (moe_qdnx: (K + 1) x H / rows groups, partials and counters in f->dxs) where chosen and T fits. */
static void moe_q_experts(struct rec *r, int l, const qn_pc_moe *pc)
{
    qn_fwd *f = r->f;
    const qn_model *m = f->m;
    const struct qn_mlayer *L = &m->L[l];
    const qn_pipe *gu = f->moe_qgu[qn_fwd_q_index(L->exp_qtype[0])], *dn = f->moe_qdn[qn_fwd_q_index(L->exp_qtype[2])];
    if (f->moe_qgu_i8[qn_fwd_q_index(L->exp_qtype[0])]) gu = f->moe_qgu_i8[qn_fwd_q_index(L->exp_qtype[0])]; /* QNEXT_IDOT=2 */
    mark(r, "moe.experts");
    if (r->T > qn_fwd_moe_token_t(f) && f->moe_qgu_g[qn_fwd_q_index(L->exp_qtype[0])] && f->moe_qdn_g[qn_fwd_q_index(L->exp_qtype[2])]) {
        moe_qg_experts(r, l, pc);
        return;
    }
    qn_pc_moe pd = *pc;
    pd.slot_bytes = (uint32_t)m->d_slot_bytes;
    pd.slots_per_pool = m->d_slots_per_pool;
    struct qn_bind sd = shared_down_bind(L, &pd.flags);
    const qn_pipe *dnx = f->moe_qdnx[qn_fwd_q_index(L->exp_qtype[2])];
    /* the decode chain (common/moe_chain.glsl): the gate_up waits for the route's mark when the route made one, and
     * the split down for the gate_up's count, with no barrier before either */
    bool link = f->chain_down && r->T == 1 && dnx && r->T <= f->dxs_t;
    uint32_t ngu = pc->K * cdiv(pc->I, qn_pipe_spec(gu, 3));
    qn_pc_moe pg = *pc;
    pg.flags |= (r->chained ? QN_MOE_CHAIN_IN : 0) | (link ? QN_MOE_CHAIN_OUT : 0);
    r->chained = false;
    qn_cmd_dispatch_nz(r->c, gu, QN_BINDS(QN_BIND(f->xn), QN_BIND(f->ids), QN_BIND(m->slot_table), QN_BIND(f->act),
                                          POOLS(m), qn_fwd_chain_bind(f)),
                       &pg, sizeof pg, ngu, r->T);
    if (link) pd.flags |= QN_MOE_CHAIN_IN, pd.chain_n = ngu; /* no barrier: the down waits for ngu gate_up groups */
    else barrier_k(r, 'm');
    if (dnx && r->T <= f->dxs_t) {
        qn_cmd_dispatch_nz(r->c, dnx, QN_BINDS(QN_BIND(f->act), QN_BIND(f->ids), QN_BIND(m->slot_table), QN_BIND(f->w),
                                               QN_BIND(f->sg), sd, QN_BIND(f->x), DPOOLS(m), QN_BIND(f->dxs)),
                           &pd, sizeof pd, (uint64_t)cdiv(pc->H, qn_pipe_spec(dnx, 3)) * (pc->K + 1), r->T);
        barrier(r);
        return;
    }
    qn_cmd_dispatch_nz(r->c, dn, QN_BINDS(QN_BIND(f->act), QN_BIND(f->ids), QN_BIND(m->slot_table), QN_BIND(f->w),
                                          QN_BIND(f->sg), sd, QN_BIND(f->x), DPOOLS(m)),
                       &pd, sizeof pd, cdiv(pc->H, qn_pipe_spec(dn, 3)), r->T);
    barrier(r);
}

/* Segment 2: x[T, H] += sum_k w · expert_k(xn) + sg · shared(xn), through the slot table. */
static void moe_experts(struct rec *r, int l, const qn_pc_moe *pc)
{
    qn_fwd *f = r->f;
    const qn_model *m = f->m;
    const qn_wt *sd = &m->L[l].shared_down;
    uint32_t T = r->T, I = pc->I, H = pc->H;
    if (m->L[l].exp_qtype[0]) {
        moe_q_experts(r, l, pc);
        return;
    }
    mark(r, "moe.experts");
    if (T <= f->tune.small_t) {                 /* act[t, k, I] = silu(gate_e · xn) * (up_e · xn) */
        qn_cmd_dispatch_nz(r->c, f->gate_up, QN_BINDS(QN_BIND(f->xn), QN_BIND(f->ids), QN_BIND(m->slot_table),
                                                      QN_BIND(f->act), POOLS(m)),
                           pc, sizeof *pc, (uint64_t)pc->K * cdiv(I, qn_pipe_spec(f->gate_up, 1)), T);
        barrier(r);                             /* x += sum_k w down_e act_k + sg down_s act_K */
        qn_cmd_dispatch_nz(r->c, f->down, QN_BINDS(QN_BIND(f->act), QN_BIND(f->ids), QN_BIND(m->slot_table),
                                                   QN_BIND(f->w), QN_BIND(f->sg), wb(sd), QN_BIND(f->x), POOLS(m)),
                           pc, sizeof *pc, cdiv(H, qn_pipe_spec(f->down, 1)), T);
    } else {                                    /* tokens grouped by expert, tiles of tile_t pairs */
        qn_cmd_dispatch_n(r->c, f->sort, QN_BINDS(QN_BIND(f->ids), QN_BIND(f->list), QN_BIND(f->tiles)), pc,
                          sizeof *pc, pc->E + 1);
        barrier(r);
        uint32_t bn = 2 * qn_pipe_spec(f->gate_up_g, 1); /* rows per block: 2 * GN (gate_up), 4 * GN (down) */
        qn_cmd_dispatch_n(r->c, f->gate_up_g, QN_BINDS(QN_BIND(f->xn), QN_BIND(f->list), QN_BIND(f->tiles),
                                                       QN_BIND(m->slot_table), QN_BIND(f->act), POOLS(m)),
                          pc, sizeof *pc, (uint64_t)pc->max_tiles * cdiv(I, bn));
        barrier(r);                             /* d[T, K + 1, H] = down_e · act (unweighted) */
        bn = 4 * qn_pipe_spec(f->down_g, 1);
        qn_cmd_dispatch_n(r->c, f->down_g, QN_BINDS(QN_BIND(f->act), QN_BIND(f->list), QN_BIND(f->tiles),
                                                    QN_BIND(m->slot_table), QN_BIND(f->d), wb(sd), POOLS(m)),
                          pc, sizeof *pc, (uint64_t)pc->max_tiles * cdiv(H, bn));
        barrier(r);                             /* x += sum_k w d_k + sg d_K, fixed order */
        qn_cmd_dispatch_n(r->c, f->combine, QN_BINDS(QN_BIND(f->d), QN_BIND(f->w), QN_BIND(f->sg), QN_BIND(f->x)),
                          pc, sizeof *pc, cdiv((uint64_t)T * H, qn_pipe_spec(f->combine, 0)));
    }
    barrier(r);
}

/* The host tier's decode gather (expert_host.h, QNEXT_HOST_GATHER=1): layer l's routed experts that are not in a
 * VRAM cache slot copied from system memory into VRAM staging slots, their table entries pointed there. On the page
 * cache (QNEXT_HOST_MMAP) calls of T > 1 gather too: the union of the call's routed experts (flags[e] marked by the
 * gather's mode 1) into staging slot e (mode 2). */
static void expert_gather(struct rec *r, int l)
{
    struct qn_eh_gather g;
    if (!r->f->gather || !qn_eh_gather_info(r->f->m, l, &g) || (r->T != 1 && !g.flags)) return;
    mark(r, "moe.gather");
    const qn_buf *ids = r->f->ids, *tab = r->f->m->slot_table;
    if (r->T != 1) {
        qn_pc_gather pc = g.pc;
        pc.mode = 1;
        pc.n = r->T * (uint32_t)r->cfg->top_k;
        qn_cmd_fill(r->c, g.flags, 0, g.flags->size, 0);
        barrier(r);
        qn_cmd_dispatch(r->c, r->f->gather, QN_BINDS(QN_BIND(ids), QN_BIND(g.flags), QN_BIND(g.src), QN_BIND(g.dst),
                                                    QN_BIND(g.dsrc), QN_BIND(g.ddst), QN_BIND(g.offs)),
                        &pc, sizeof pc, (pc.n + 255) / 256, 1, 1);
        barrier(r);
        g.pc.mode = 2;
        g.pc.n = g.pc.E;
        ids = g.flags;
    }
    qn_cmd_dispatch(r->c, r->f->gather, QN_BINDS(QN_BIND(ids), QN_BIND(tab), QN_BIND(g.src), QN_BIND(g.dst),
                                                QN_BIND(g.dsrc), QN_BIND(g.ddst), QN_BIND(g.offs)),
                    &g.pc, sizeof g.pc, g.groups, g.pc.n, 1);
    barrier(r);
}

/* Segment 2 of layer l without the capture: the gather (host tier), then the experts. */
void qn_fwd_moe_experts(struct rec *r, int l, const qn_pc_moe *pc)
{
    expert_gather(r, l);
    moe_experts(r, l, pc);
}
