/* forward_gdn.c — the Gated DeltaNet mixer's kernels in the forward graph (spec §2-§4): per layer the causal conv,
 * the delta rule (a decode token's fused gdn_decode; prefill's two-pass gdn_chunk_wy_inv + gdn_chunk_state, or the
 * one-pass gdn_chunked / gdn_recurrent) and the gated RMSNorm, between the input and output projections that
 * forward.c records. */
#include "forward_gdn.h"

/* A decode token's conv + delta rule (o[Hv, dv], both states updated) in one gdn_decode dispatch, *normed: the
 * gated RMSNorm is folded in too (the pipeline's spec 4). False: not this call (T > 1, or env QNEXT_GDN_FUSE unset). */
static bool gdn_fused(struct rec *r, int l, bool *normed)
{
    qn_fwd *f = r->f;
    const qn_config *c = r->cfg;
    const struct qn_mlayer *L = &f->m->L[l];
    struct qn_fwd_layer_state *st = &f->st[l];
    if (r->T != 1 || !f->gdn_dec) return false;
    uint32_t Hk = (uint32_t)c->lin_k_heads, Hv = (uint32_t)c->lin_v_heads, dk = (uint32_t)c->lin_k_dim;
    uint32_t dv = (uint32_t)c->lin_v_dim, KD = Hk * dk, VD = Hv * dv;
    qn_pc_gdn_dec pc = { .Hk = Hk, .Hv = Hv, .dk = dk, .dv = dv, .proj_stride = L->w_in.rows, .k_off = KD,
                         .v_off = 2 * KD, .z_off = 2 * KD + VD, .b_off = 2 * KD + 2 * VD, .a_off = 2 * KD + 2 * VD + Hv,
                         .eps = c->rms_norm_eps };
    mark(r, "gdn.fused");
    qn_cmd_dispatch_n(r->c, f->gdn_dec, QN_BINDS(QN_BIND(f->proj), wb(&L->conv_w), QN_BIND(st->conv), wb(&L->A_log),
                                                 wb(&L->dt_bias), QN_BIND(st->S), QN_BIND(f->o), wb(&L->gnorm),
                                                 QN_BIND(f->gscr)),
                      &pc, sizeof pc, (uint64_t)Hv * cdiv(dv, qn_pipe_spec(f->gdn_dec, 1)));
    barrier(r);
    *normed = qn_pipe_spec(f->gdn_dec, 4) != 0;
    return true;
}

/* The delta rule of a prefill call in two passes per segment of wy_seg chunks (64 tokens each): gdn_chunk_wy_inv,
 * the per-chunk factors of all the segment's chunks in parallel (O_intra to o, the rest to wy_scr), then
 * gdn_chunk_state, the walk over the chunks carrying S (o += Q' S0). */
static void gdn_wy(struct rec *r, int l, const qn_pc_gdn *g)
{
    qn_fwd *f = r->f;
    const struct qn_mlayer *L = &f->m->L[l];
    uint32_t nch = cdiv(g->T, 64), nc = nch < f->wy_seg ? nch : f->wy_seg;
    qn_pc_gdn_wy pc = { .T = g->T, .t0 = 0, .nc = nc, .Hk = g->Hk, .Hv = g->Hv, .dk = g->dk, .dv = g->dv,
                        .qkv_stride = g->qkv_stride, .q_off = g->q_off, .k_off = g->k_off, .v_off = g->v_off,
                        .proj_stride = g->proj_stride, .b_off = g->b_off, .a_off = g->a_off };
    for (uint32_t ch = 0; ch < nch; ch += nc) {
        pc.t0 = ch * 64;
        qn_cmd_dispatch_n(r->c, f->wy_a, QN_BINDS(QN_BIND(f->qkv), QN_BIND(f->proj), wb(&L->A_log), wb(&L->dt_bias),
                                                  QN_BIND(f->wy_scr), QN_BIND(f->o)),
                          &pc, sizeof pc, (uint64_t)nc * pc.Hv);
        barrier(r);
        qn_cmd_dispatch_n(r->c, f->wy_b, QN_BINDS(QN_BIND(f->qkv), QN_BIND(f->wy_scr), QN_BIND(f->st[l].S),
                                                  QN_BIND(f->o)),
                          &pc, sizeof pc, (uint64_t)pc.Hv * cdiv(pc.dv, qn_pipe_spec(f->wy_b, 1)));
        barrier(r);
    }
}

/* o[T, Hv, dv] of layer l's proj: conv, delta rule (both states updated) and gated RMSNorm. */
void qn_fwd_gdn(struct rec *r, int l)
{
    qn_fwd *f = r->f;
    const qn_config *c = r->cfg;
    const struct qn_mlayer *L = &f->m->L[l];
    struct qn_fwd_layer_state *st = &f->st[l];
    uint32_t T = r->T, Hk = (uint32_t)c->lin_k_heads, Hv = (uint32_t)c->lin_v_heads;
    uint32_t dk = (uint32_t)c->lin_k_dim, dv = (uint32_t)c->lin_v_dim, KD = Hk * dk, VD = Hv * dv;
    uint32_t CD = 2 * KD + VD, P = L->w_in.rows; /* P = 2KD + 2VD + 2Hv */

    bool normed = false;
    if (!gdn_fused(r, l, &normed)) {            /* a decode token: one gdn_decode dispatch (QNEXT_GDN_FUSE) */
        mark(r, "gdn.conv");                    /* qkv[T, CD] = silu(causal conv(proj[:, :CD])), conv state */
        const qn_pipe *cv = T == 1 ? f->conv_dec : f->conv_pre;
        qn_pc_gdn_conv pcc = { .T = T, .channels = CD, .in_stride = P, .out_stride = CD };
        qn_cmd_dispatch_n(r->c, cv, QN_BINDS(QN_BIND(f->proj), wb(&L->conv_w), QN_BIND(st->conv), QN_BIND(f->qkv)),
                          &pcc, sizeof pcc, cdiv(CD, qn_pipe_spec(cv, 0) / qn_pipe_spec(cv, 1)));
        barrier(r);
        mark(r, "gdn.rule");                    /* o[T, Hv, dv] = delta rule over q, k, v, b, a; state S */
        qn_pc_gdn pcg = { .T = T, .Hk = Hk, .Hv = Hv, .dk = dk, .dv = dv, .qkv_stride = CD, .q_off = 0, .k_off = KD,
                          .v_off = 2 * KD, .proj_stride = P, .b_off = 2 * KD + 2 * VD, .a_off = 2 * KD + 2 * VD + Hv };
        if (f->wy_a && T >= f->wy_min_t) gdn_wy(r, l, &pcg);   /* two passes per segment (QNEXT_GDN_WY) */
        else {
            const qn_pipe *rule = T >= 16 ? f->rule_chunk : f->rule_rec;
            qn_cmd_dispatch_n(r->c, rule, QN_BINDS(QN_BIND(f->qkv), QN_BIND(f->proj), wb(&L->A_log),
                                                   wb(&L->dt_bias), QN_BIND(st->S), QN_BIND(f->o)),
                              &pcg, sizeof pcg, (uint64_t)Hv * cdiv(dv, qn_pipe_spec(rule, 1)));
            barrier(r);
        }
    }
    if (!normed) {
        mark(r, "gdn.norm");                    /* o = gated RMSNorm(o, z) per (token, head), in place */
        qn_pc_gdn_norm pcn = { .rows = T * Hv, .heads = Hv, .dim = dv, .proj_stride = P, .z_off = 2 * KD + VD,
                               .eps = c->rms_norm_eps };
        qn_cmd_dispatch_n(r->c, f->gnorm, QN_BINDS(QN_BIND(f->o), QN_BIND(f->proj), wb(&L->gnorm), QN_BIND(f->o)),
                          &pcn, sizeof pcn, (uint64_t)T * Hv);
        barrier(r);
    }
}
