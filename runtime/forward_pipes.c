/* forward_pipes.c — the pipelines of the forward graph (forward.h's qn_fwd): which kernels a model needs (its
 * dtypes and GGUF block types), with which spec constants (board profile values in qn_fwd_tune, env overrides
 * for timing experiments), and whether the prefill matmuls run on tensor cores. forward.c records with them. */
#include "forward_pipes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_log.h"

static int pipe(qn_fwd *f, enum qn_kernel k, qn_pipe **out, uint32_t n, const uint32_t *spec)
{
    return qn_pipe_get(f->v, k, spec, n, out);
}
/* SPEC_PIPE(make, k, out, spec...): make(f, k, out, n, spec) with the spec list as an array; returns on failure. */
#define SPEC_PIPE(make, k, out, ...) \
    do { \
        const uint32_t s_[] = { __VA_ARGS__ }; \
        if ((rc = make(f, (k), (out), (uint32_t)(sizeof s_ / sizeof s_[0]), s_))) return rc; \
    } while (0)
#define PIPE(k, out, ...) SPEC_PIPE(pipe, k, out, __VA_ARGS__)
#define PIPE0(k, out) do { if ((rc = pipe(f, (k), (out), 0, NULL))) return rc; } while (0)

/* Kernel tables by dtype (bf16, f16, f32) or block type (q8_0, q4_0, q4_k, q5_k, q6_k: qn_fwd_q_index's order), for
 * the pipeline makers below that share them. */
static const enum qn_kernel k_gu_grouped_cm[5] = { QN_K_MOE_Q_GU_GROUPED_CM_Q8_0, QN_K_MOE_Q_GU_GROUPED_CM_Q4_0,
                                                   QN_K_MOE_Q_GU_GROUPED_CM_Q4_K, QN_K_MOE_Q_GU_GROUPED_CM_Q5_K,
                                                   QN_K_MOE_Q_GU_GROUPED_CM_Q6_K };
static const enum qn_kernel k_dn_grouped_cm[5] = { QN_K_MOE_Q_DN_GROUPED_CM_Q8_0, QN_K_MOE_Q_DN_GROUPED_CM_Q4_0,
                                                   QN_K_MOE_Q_DN_GROUPED_CM_Q4_K, QN_K_MOE_Q_DN_GROUPED_CM_Q5_K,
                                                   QN_K_MOE_Q_DN_GROUPED_CM_Q6_K };
static const enum qn_kernel k_qmatvec[5] = { QN_K_MATVEC_Q8_0, QN_K_MATVEC_Q4_0, QN_K_MATVEC_Q4_K, QN_K_MATVEC_Q5_K,
                                             QN_K_MATVEC_Q6_K };
static const enum qn_kernel k_qmatvec_norm[5] = { QN_K_MATVEC_NORM_Q8_0, QN_K_MATVEC_NORM_Q4_0, QN_K_MATVEC_NORM_Q4_K,
                                                  QN_K_MATVEC_NORM_Q5_K, QN_K_MATVEC_NORM_Q6_K };
static const enum qn_kernel k_qmatvec_norm_route[5] = { QN_K_MATVEC_NORM_ROUTE_Q8_0, QN_K_MATVEC_NORM_ROUTE_Q4_0,
                                                        QN_K_MATVEC_NORM_ROUTE_Q4_K, QN_K_MATVEC_NORM_ROUTE_Q5_K,
                                                        QN_K_MATVEC_NORM_ROUTE_Q6_K };
static const enum qn_kernel k_matvec[3] = { QN_K_MATVEC_BF16, QN_K_MATVEC_F16, QN_K_MATVEC_F32 };
static const enum qn_kernel k_matvec_norm[3] = { QN_K_MATVEC_NORM_BF16, QN_K_MATVEC_NORM_F16, QN_K_MATVEC_NORM_F32 };
static const enum qn_kernel k_matvec_norm_route[3] = { QN_K_MATVEC_NORM_ROUTE_BF16, QN_K_MATVEC_NORM_ROUTE_F16,
                                                       QN_K_MATVEC_NORM_ROUTE_F32 };

/* ---- decode matvec layouts (matvec.comp / qmatvec.comp spec 0-5: WG, ROWS, UNROLL, SGROWS, XSH, PRE) -------- */

/* env QNEXT_MV_PRE=0: the matvecs load their first batch of weights after the x staging, not before (A/B);
 * QNEXT_MV_NF=1 adds 4: the norm matvecs take the sum of squares while staging x (mv_sched.glsl QN_MV_SSFUSE) */
static uint32_t mv_pre(void)
{
    const char *e = getenv("QNEXT_MV_PRE"), *nf = getenv("QNEXT_MV_NF");
    return (e && !strcmp(e, "0") ? 0 : 1) | (nf && !strcmp(nf, "1") ? 4 : 0);
}

/* A matvec-family pipeline with spec[0 .. n) (n <= 5; the kernel's defaults after them) and PRE from the env. */
static int mv_pipe(qn_fwd *f, enum qn_kernel k, qn_pipe **out, uint32_t n, const uint32_t *spec)
{
    uint32_t s[6];
    for (uint32_t i = 0; i < 5; i++) s[i] = i < n ? spec[i] : qn_kernel_infos[k].spec_default[i];
    s[5] = mv_pre();
    return pipe(f, k, out, 6, s);
}
#define MVPIPE(k, out, ...) SPEC_PIPE(mv_pipe, k, out, __VA_ARGS__)
#define MVPIPE0(k, out) do { if ((rc = mv_pipe(f, (k), (out), 0, NULL))) return rc; } while (0)

/* QNEXT_MOEQ_LAYOUT="WG,ROWS,SGROWS,UNROLL,XSH:WG,ROWS,SGROWS,UNROLL,XSH[,KSPLIT]": the decode expert kernels' layout
 * (gate|up : down, moe_q.comp spec 0, 3..6, and down's spec 7 QN_KSPLIT, default 0) instead of the defaults, for
 * timing experiments on a device (`test_moe_q --bench --sweep` prints the best as this string). */
static bool moeq_layout(uint32_t lay[11])
{
    const char *e = getenv("QNEXT_MOEQ_LAYOUT");
    if (!e) return false;
    unsigned v[11] = { 0 };
    int n = sscanf(e, "%u,%u,%u,%u,%u:%u,%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
                   &v[9], &v[10]);
    if (n < 10 || !v[0] || !v[1] || !v[2] || !v[3] || !v[5] || !v[6] || !v[7] || !v[8] || v[10] > 1) {
        QN_WARN("QNEXT_MOEQ_LAYOUT=%s is not WG,ROWS,SGROWS,UNROLL,XSH:WG,ROWS,SGROWS,UNROLL,XSH[,KSPLIT] (non-zero but XSH, "
                "KSPLIT 0 or 1); ignored", e);
        return false;
    }
    for (int i = 0; i < 11; i++) lay[i] = v[i];
    return true;
}

/* The decode layouts measured in the model on 32-wide subgroups (the H100: forward-kernels.md, docs/perf.md runs
 * 121-131) apply: the device's subgroups are 32 wide. */
static bool sg32_layouts(const qn_fwd *f) { return qn_vk_caps(f->v)->subgroup_size == 32; }

/* The decode expert down split over the experts (moe_q.comp QN_DN_XSPLIT: (K + 1) x H / ROWS workgroups, the last
 * of each row block sums the partials), the default since H100 run 18a (148.4 vs 141.3 tok/s for the row sets);
 * QNEXT_MOEQ_DN=rows selects the row sets, QNEXT_MOEQ_DN=split:WG,ROWS,SGROWS,UNROLL[,WIMAX] another layout (spec 0,
 * 3..5 and 7: weight rows staged in shared memory for I <= WIMAX, and with them the act row, spec 6 = WIMAX / 4;
 * 0 = the shader's default). */
static bool moeq_dn_split(uint32_t lay[5])
{
    const char *e = getenv("QNEXT_MOEQ_DN");
    unsigned v[5] = { 0, 0, 0, 0, 0 };
    if (e && !strcmp(e, "rows")) return false;
    if (e && *e && strcmp(e, "split") &&
        (sscanf(e, "split:%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4]) < 1 || v[0] > 1024 || v[1] > 1024 ||
         v[2] > 16 || v[3] > 16 || v[4] > 65536)) {
        QN_WARN("QNEXT_MOEQ_DN=%s is not rows, split or split:WG,ROWS,SGROWS,UNROLL[,WIMAX] (0 = default); the default "
                "split", e);
        memset(v, 0, sizeof v);
    }
    for (int i = 0; i < 5; i++) lay[i] = v[i];
    return true;
}

/* env QNEXT_MOEQ_PRE=0: moe_q.comp's gate_up loads its first batch of weights after the x staging (spec 7 QN_PRE 0;
 * default 1: before it), for an A/B on a device. */
static uint32_t moeq_pre(void)
{
    const char *e = getenv("QNEXT_MOEQ_PRE");
    return e && !strcmp(e, "0") ? 0 : 1;
}

/* Does any dense weight of m use qmatvec pipeline i (q_index)? */
static bool model_uses_q(const qn_model *m, int i)
{
    if (qn_fwd_q_index(m->lm_head.qtype) == i) return true;
    for (int l = 0; l < m->c.num_layers; l++) {
        const struct qn_mlayer *L = &m->L[l];
        const qn_wt *w[6] = { &L->w_in, &L->w_out, &L->w_qkv, &L->w_o, &L->w_moe, &L->shared_down };
        for (int k = 0; k < 6; k++) {
            if (w[k]->qtype && qn_fwd_q_index(w[k]->qtype) == i) return true;
            for (uint32_t j = 0; j < w[k]->nsub; j++)
                if (w[k]->sub[j].qtype && qn_fwd_q_index(w[k]->sub[j].qtype) == i) return true;
        }
    }
    return false;
}

/* Do layer experts of m use block type i (q_index) for gate|up (part 0) or down (part 2)? */
static bool experts_use_q(const qn_model *m, int part, int i)
{
    for (int l = 0; l < m->c.num_layers; l++)
        if (m->L[l].exp_qtype[part] && qn_fwd_q_index(m->L[l].exp_qtype[part]) == i) return true;
    return false;
}

/* Tensor-core prefill (qmatmul_cm.comp, moe_qgrouped_cm.comp): the policy (QN_FWD_CM_*) of tune.coopmat or env
 * QNEXT_COOPMAT (0, blocks, 1), when the device has VK_NV_cooperative_matrix with the 16x16x16 f16/f32 shape
 * (caps.c) and subgroups of 32; else QN_FWD_CM_OFF. The dense tile (spec WG, BM, BN, BK) is 64 x 64 x 32
 * (WG 128), or env QNEXT_CM_TILE=BM,BN,BK[,NBUF] (multiples of 32, 32, 16; NBUF 1 or 2 shared tile buffers). */
static int use_coopmat(const qn_fwd *f, uint32_t spec[6])
{
    const struct qn_caps *c = qn_vk_caps(f->v);
    const char *e = getenv("QNEXT_COOPMAT"), *t = getenv("QNEXT_CM_TILE");
    uint32_t need = qn_kernel_infos[QN_K_QMATMUL_CM_Q4_K].features; /* coopmat, fp16, memory model, subgroups */
    int want = !e ? f->tune.coopmat : !strcmp(e, "1") ? QN_FWD_CM_ALL : !strcmp(e, "blocks") ? QN_FWD_CM_BLOCKS
                                                                                             : QN_FWD_CM_OFF;
    if (want == QN_FWD_CM_OFF) return false;
    if ((need & ~c->features) || c->subgroup_size != 32 || c->subgroup_min != 32 || c->subgroup_max != 32) {
        if (e) /* asked for explicitly (the default just stays quiet) */
            QN_WARN("tensor-core prefill asked for, but '%s' lacks VK_NV_cooperative_matrix with an f16 16x{16,8}x16 shape "
                "(or 32-wide subgroups): the f32-FMA kernels run", c->name);
        return false;
    }
    unsigned bm = 64, bn = 64, bk = 32, nb = 1;
    int n = t ? sscanf(t, "%u,%u,%u,%u", &bm, &bn, &bk, &nb) : 0;
    if (t && ((n != 3 && n != 4) || !bm || !bn || !bk || bm % 32 || bn % 32 || bk % 16 || (nb != 1 && nb != 2) ||
              (bm / 32) * (bn / 32) * 32 > c->max_wg_invocations ||
              2 * nb * (bm + bn) * (bk + 8) + (bm / 32) * (bn / 32) * 32 * 40 > c->max_shared)) {
        QN_WARN("QNEXT_CM_TILE=%s: want BM,BN,BK[,NBUF] with BM, BN multiples of 32, BK of 16, NBUF 1 or 2, within %u bytes "
                "of shared memory; using 64,64,32,1", t, c->max_shared);
        bm = 64, bn = 64, bk = 32, nb = 1;
    }
    spec[0] = (bm / 32) * (bn / 32) * 32, spec[1] = bm, spec[2] = bn, spec[3] = bk, spec[4] = c->coopmat_nv_n, spec[5] = nb;
    return want;
}

/* The grouped block-expert tensor-core pipelines (gate|up with spec gs, down with ds) of the block types the
 * model's experts use, into gu[5] / dn[5]. 0 or a negative code. */
static int grouped_cm_pipes(qn_fwd *f, const uint32_t *gs, const uint32_t *ds, qn_pipe *gu[5], qn_pipe *dn[5])
{
    int rc = 0;
    for (int i = 0; !rc && i < 5; i++) {
        if (experts_use_q(f->m, 0, i)) rc = pipe(f, k_gu_grouped_cm[i], &gu[i], QN_CM_MOE_NSPEC, gs);
        if (!rc && experts_use_q(f->m, 2, i)) rc = pipe(f, k_dn_grouped_cm[i], &dn[i], QN_CM_MOE_NSPEC, ds);
    }
    return rc;
}

/* The grouped block-expert MoE in its second layout (qn_cm_moe_spec_small) for calls with few pairs per expert, where
 * one is set and it passes the self-check (else none, with a warning); fragment width cn. */
static int cm_small_pipes(qn_fwd *f, uint32_t cn)
{
    const qn_model *m = f->m;
    uint32_t gs[QN_CM_MOE_NSPEC], ds[QN_CM_MOE_NSPEC];
    f->cm_moe_big_pairs = qn_cm_moe_big_pairs();
    bool any = false;
    for (int i = 0; i < 5; i++) any = any || experts_use_q(m, 0, i) || experts_use_q(m, 2, i);
    if (!any || !f->cm_moe_big_pairs || !qn_cm_moe_spec_small(qn_vk_caps(f->v), m->qexp_up_off, gs)) return 0;
    memcpy(ds, gs, sizeof ds);
    ds[2] = 0, gs[3] = ds[3] = cn;
    int rc = qn_cm_moe_selfcheck_spec(f->v, gs);
    if (!rc) rc = grouped_cm_pipes(f, gs, ds, f->moe_qgu_gcm2, f->moe_qdn_gcm2);
    if (rc) {
        QN_WARN("grouped-expert tensor-core layout for small calls unavailable (%s); the default layout runs", qn_errmsg());
        memset(f->moe_qgu_gcm2, 0, sizeof f->moe_qgu_gcm2);
        memset(f->moe_qdn_gcm2, 0, sizeof f->moe_qdn_gcm2);
        return 0;
    }
    QN_INFO("grouped-expert tensor-core layout %u,%u,%u,%u,%u,%u below %u pairs per expert", gs[0], gs[1], gs[4], gs[5],
            gs[6], gs[7], f->cm_moe_big_pairs);
    return 0;
}

/* The tensor-core pipelines of policy f->coopmat with the dense tile cmt (use_coopmat), the 128 x 128 tile where
 * the device fits it, and the grouped block experts; then the self-checks. 0 or a negative code. */
static int cm_pipes(qn_fwd *f, const uint32_t cmt[6])
{
    const qn_model *m = f->m;
    static const enum qn_kernel cmm[3] = { QN_K_MATMUL_CM_BF16, QN_K_MATMUL_CM_F16, QN_K_MATMUL_CM_F32 };
    static const enum qn_kernel qcm[5] = { QN_K_QMATMUL_CM_Q8_0, QN_K_QMATMUL_CM_Q4_0, QN_K_QMATMUL_CM_Q4_K,
                                           QN_K_QMATMUL_CM_Q5_K, QN_K_QMATMUL_CM_Q6_K };
    int rc = 0;
    for (int i = 0; !rc && i < 8; i++)
        if (i < 3 ? f->coopmat == QN_FWD_CM_ALL : model_uses_q(m, i - 3))
            rc = pipe(f, i < 3 ? cmm[i] : qcm[i - 3], i < 3 ? &f->matmul_cm[i] : &f->qmatmul_cm[i - 3], 6, cmt);
    const uint32_t big[6] = { 512, 128, 128, 32, cmt[4], 1 }; /* 40 KB of shared memory */
    bool two = !getenv("QNEXT_CM_TILE") && qn_vk_caps(f->v)->max_wg_invocations >= 512 &&
               qn_vk_caps(f->v)->max_shared >= 40960;
    for (int i = 0; !rc && two && i < 8; i++)
        if (i < 3 ? f->coopmat == QN_FWD_CM_ALL : model_uses_q(m, i - 3))
            rc = pipe(f, i < 3 ? cmm[i] : qcm[i - 3], i < 3 ? &f->matmul_cmb[i] : &f->qmatmul_cmb[i - 3], 6, big);
    uint32_t gs[QN_CM_MOE_NSPEC], ds[QN_CM_MOE_NSPEC]; /* grouped experts: qn_cm_moe_spec (QNEXT_CM_MOE_TILE) */
    qn_cm_moe_spec(qn_vk_caps(f->v), m->qexp_up_off, gs);
    qn_cm_moe_spec(qn_vk_caps(f->v), 0, ds);
    gs[3] = ds[3] = cmt[4];
    if (!rc) rc = grouped_cm_pipes(f, gs, ds, f->moe_qgu_gcm, f->moe_qdn_gcm);
    if (!rc) rc = cm_small_pipes(f, cmt[4]);
    qn_pipe *chk = NULL; /* the pipelines compiled: do they compute? (both tiles) */
    if (!rc) rc = pipe(f, QN_K_MATMUL_CM_F32, &chk, 6, cmt);
    if (!rc) rc = qn_cm_selfcheck(f->v, chk);
    if (!rc && two) rc = pipe(f, QN_K_MATMUL_CM_F32, &chk, 6, big);
    if (!rc && two) rc = qn_cm_selfcheck(f->v, chk);
    bool bexp = false;
    for (int l = 0; l < m->c.num_layers; l++) bexp = bexp || m->L[l].exp_qtype[0];
    if (!rc && bexp) rc = qn_cm_moe_selfcheck(f->v, cmt[4]);
    return rc;
}

/* Decide f->coopmat and make its pipelines; a driver that lists the shape but fails a pipeline or a check gets
 * the f32-FMA kernels (a warning, not an error). */
static void make_cm_pipes(qn_fwd *f)
{
    const qn_model *m = f->m;
    uint32_t cmt[6];
    f->coopmat = use_coopmat(f, cmt);
    bool blocks = false; /* any GGUF block weights or experts for the BLOCKS policy to put on tensor cores? */
    for (int i = 0; i < 5; i++) blocks = blocks || model_uses_q(m, i);
    for (int l = 0; l < m->c.num_layers; l++) blocks = blocks || m->L[l].exp_qtype[0] || m->L[l].exp_qtype[2];
    if (f->coopmat == QN_FWD_CM_BLOCKS && !blocks) f->coopmat = QN_FWD_CM_OFF;
    if (!f->coopmat) return;
    if (cm_pipes(f, cmt)) {
        QN_WARN("tensor-core matmuls unavailable (%s); prefill uses the f32-FMA kernels", qn_errmsg());
        memset(f->matmul_cm, 0, sizeof f->matmul_cm);
        memset(f->qmatmul_cm, 0, sizeof f->qmatmul_cm);
        memset(f->moe_qgu_gcm, 0, sizeof f->moe_qgu_gcm);
        memset(f->moe_qdn_gcm, 0, sizeof f->moe_qdn_gcm);
        memset(f->matmul_cmb, 0, sizeof f->matmul_cmb);
        memset(f->qmatmul_cmb, 0, sizeof f->qmatmul_cmb);
        memset(f->moe_qgu_gcm2, 0, sizeof f->moe_qgu_gcm2);
        memset(f->moe_qdn_gcm2, 0, sizeof f->moe_qdn_gcm2);
        f->coopmat = QN_FWD_CM_OFF;
    } else {
        QN_INFO("prefill matmuls of %s on tensor cores (VK_NV_cooperative_matrix, tile %ux%ux%u, %u buffers)",
                f->coopmat == QN_FWD_CM_ALL ? "every weight" : "GGUF block weights", cmt[1], cmt[2], cmt[3], cmt[5]);
    }
}

/* A matmul_f32 pipeline in the tile `e` names (WG,BM,BN,BK,TM,TN[,PF]) into *out; a bad string: a warning naming
 * `env`, *out stays NULL. */
static int f32_tile_pipe(qn_fwd *f, const char *env, const char *e, qn_pipe **out)
{
    uint32_t v[7] = { 0 };
    int n = sscanf(e, "%u,%u,%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]);
    uint64_t sh = 4ull * v[3] * (v[1] + 4 + v[2] + 4);
    if (n < 6 || !qn_matmul_tile_ok(v) || v[0] > qn_vk_caps(f->v)->max_wg_invocations || sh > qn_vk_caps(f->v)->max_shared) {
        QN_WARN("%s=%s is not WG,BM,BN,BK,TM,TN[,PF] (TM, TN multiples of 4, BK of 8, WG = BM / TM * BN / TN, shared "
                "memory within the device's); ignored", env, e);
        return 0;
    }
    int rc;
    PIPE(QN_K_MATMUL_F32, out, v[0], v[1], v[2], v[3], v[4], v[5], v[6] ? 1 : 0);
    QN_DEBUG("%s: matmul_f32 tile %s", env, e);
    return 0;
}

/* f->matmul_sk: matmul_f32 in a smaller tile for the f32 parts of GGUF mixed-type fusions in prefill (sub_matmul:
 * the router's 512 rows, the shared-expert gate's 1: 64 and 8 workgroups of the default 64 x 64 tile, 0.030 ms per
 * token at 512 tokens in H100 run 30). Default 64,32,32,32,4,4,1 (more workgroups, the register prefetch: run 31,
 * 512 tokens 2529 / 3778 tok/s vs 2470-2495 / 3714-3745 without it, f32 / int8 experts); env
 * QNEXT_MM_F32_TILE=WG,BM,BN,BK,TM,TN[,PF] another tile, 0 the dense matmul's.
 * f->matmul_sl: the same parts' calls of at least 512 of its tiles (the router from 4096 tokens) in a larger tile,
 * default 128,64,64,16,8,4,1; env QNEXT_MM_F32_TILE_LARGE, 0 none; QNEXT_MM_F32_LARGE_MIN another count than 512.
 * H100 runs 95-96 (test_matmul --bench, ms at M 4096 / 2048 / 512, N 512, K 2048): 0.283-0.300 / 0.162 / 0.105
 * against 0.457 / 0.242 / 0.076 for 64,32,32; in the model 9115 vs 8993 tok/s at 4096 tokens, but 6811 vs 6893 at
 * 2048 (256 tiles; the small tile's 2048 workgroups fill the GPU beside the shared expert's matmul better). Same k
 * order: bit-identical outputs (logits of 3500 tokens). Tiles with TN 8 ran 10-50x slower on the driver. */
static int make_f32_part_pipes(qn_fwd *f)
{
    const char *e = getenv("QNEXT_MM_F32_TILE"), *l = getenv("QNEXT_MM_F32_TILE_LARGE");
    int rc = 0;
    if (!(e && !strcmp(e, "0"))) rc = f32_tile_pipe(f, "QNEXT_MM_F32_TILE", e && *e ? e : "64,32,32,32,4,4,1", &f->matmul_sk);
    if (!rc && !(l && !strcmp(l, "0")))
        rc = f32_tile_pipe(f, "QNEXT_MM_F32_TILE_LARGE", l && *l ? l : "128,64,64,16,8,4,1", &f->matmul_sl);
    const char *m = getenv("QNEXT_MM_F32_LARGE_MIN"); /* the tile count from which it runs (tests: 1) */
    f->mm_f32_large_min = m && *m ? (uint32_t)strtoul(m, NULL, 10) : 512;
    return rc;
}

/* The dense matvec / matmul pipelines of the three dtypes; tile[6] gets the matmul's WG, BM, BN, BK, TM, TN
 * (checked), which the block-format matmuls share. */
static int make_dense_pipes(qn_fwd *f, uint32_t tile[6])
{
    static const enum qn_kernel mm[3] = { QN_K_MATMUL_BF16, QN_K_MATMUL_F16, QN_K_MATMUL_F32 };
    uint32_t mvwg = f->tune.matvec_wg ? f->tune.matvec_wg : 128, mvr = f->tune.matvec_rows ? f->tune.matvec_rows : 2;
    const uint32_t *t = f->tune.matmul;
    int rc;
    const char *pfe = getenv("QNEXT_MATMUL_PF"); /* 1: matmul.comp's register prefetch (spec 6; A/B, default off) */
    uint32_t pf = pfe && !strcmp(pfe, "1") ? 1 : 0;
    for (int i = 0; i < 3; i++) {
        const uint32_t *d = qn_kernel_infos[mm[i]].spec_default;
        MVPIPE(k_matvec[i], &f->matvec[i], mvwg, mvr);
        if (t[0]) PIPE(mm[i], &f->matmul[i], t[0], t[1], t[2], t[3], t[4], t[5], pf);
        else PIPE(mm[i], &f->matmul[i], d[0], d[1], d[2], d[3], d[4], d[5], pf);
    }
    for (uint32_t k = 0; k < 6; k++) tile[k] = qn_pipe_spec(f->matmul[0], k);
    if ((rc = make_f32_part_pipes(f))) return rc;
    uint32_t wg = tile[0], bm = tile[1], bn = tile[2], bk = tile[3], tm = tile[4], tn = tile[5];
    if (!qn_matmul_tile_ok(tile))
        return qn_fail(-EINVAL, "matmul tile WG %u, BM %u, BN %u, BK %u, TM %u, TN %u: need TM, TN multiples of 4, BK of 8, "
                       "and (BM / TM) * (BN / TN) = WG", wg, bm, bn, bk, tm, tn);
    return 0;
}

/* Prefill of the router fusion W_moe (forward.c sub_matmul): its block-type parts (the shared expert's gate / up: not
 * router rows) on the tensor cores like every other block weight; env QNEXT_ROUTER_CM=0 keeps the whole fusion on the
 * f32-FMA kernels. Its f32 parts (the 512-row router, the 1-row shared_expert_gate) stay on matmul_f32 (f->matmul_sk).
 * H100 run 37 (80B Q4_K_M, prefill-ab --reps 2): 4038 / 4671 / 6312 tok/s at 512 / 1024 / 4096 tokens against 3975 /
 * 4569 / 6129 and 3961 / 4589 / 6134 with =0 (run 18a, when the rest was slower: within noise). Also QNEXT_MOE_TOKEN_T
 * (the per-token expert kernels up to that many tokens). */
static int make_router_pipes(qn_fwd *f)
{
    const char *c = getenv("QNEXT_ROUTER_CM"), *tt = getenv("QNEXT_MOE_TOKEN_T");
    f->router_cm = !(c && !strcmp(c, "0"));
    /* forward.h; not a pipeline, but read here too. Default 160: H100 full 80B Q4_K_M, one call per prompt, the
     * per-token kernels against the grouped tensor-core ones, tok/s: run 18a 32 tokens 538 vs 239, 128 tokens 913 vs
     * 550; run 18c 128 tokens 928 vs 597, 192 tokens 969 vs 996 (grouped in the 256,32,64,1,1,2 layout), 256 1034 vs
     * 1258, 512 1081 vs 2130: the crossover lies near 176 tokens */
    f->moe_token_t = tt && *tt ? (uint32_t)strtoul(tt, NULL, 10) : 160;
    return 0;
}

/* Prefill experts of block type i for few tokens per expert (moe_qsmall.comp) in the token-slot width the env
 * picks (qn_moe_small_width; none when off) (qn_moe_small_spec: gate_up rows of H, down rows of max(I, Is) staged
 * where they fit in shared memory). */
static int make_qsmall_pipes(qn_fwd *f, int i, bool ugu, bool udn)
{
    static const enum qn_kernel sgu[5] = { QN_K_MOE_Q_GU_SMALL_Q8_0, QN_K_MOE_Q_GU_SMALL_Q4_0, QN_K_MOE_Q_GU_SMALL_Q4_K,
                                           QN_K_MOE_Q_GU_SMALL_Q5_K, QN_K_MOE_Q_GU_SMALL_Q6_K };
    static const enum qn_kernel sdn[5] = { QN_K_MOE_Q_DN_SMALL_Q8_0, QN_K_MOE_Q_DN_SMALL_Q4_0, QN_K_MOE_Q_DN_SMALL_Q4_K,
                                           QN_K_MOE_Q_DN_SMALL_Q5_K, QN_K_MOE_Q_DN_SMALL_Q6_K };
    const qn_config *c = &f->m->c;
    const struct qn_caps *caps = qn_vk_caps(f->v);
    uint32_t H = (uint32_t)c->hidden_size, len = (uint32_t)(c->moe_inter > c->shared_inter ? c->moe_inter : c->shared_inter);
    int rc = 0;
    if (!qn_moe_small_enabled()) return 0; /* off by default: no pipelines for a path no call takes */
    for (int s = 0; !rc && s < QN_MOE_SMALL_NNT; s++) {
        uint32_t sp[QN_MOE_SMALL_NSPEC];
        if (qn_moe_small_nts[s] != qn_moe_small_width()) continue;
        if (ugu) {
            qn_moe_small_spec(caps, true, qn_moe_small_nts[s], f->m->qexp_up_off, H, sp);
            rc = pipe(f, sgu[i], &f->moe_qgu_s[s][i], QN_MOE_SMALL_NSPEC, sp);
        }
        if (!rc && udn) {
            qn_moe_small_spec(caps, false, qn_moe_small_nts[s], 0, len, sp);
            rc = pipe(f, sdn[i], &f->moe_qdn_s[s][i], QN_MOE_SMALL_NSPEC, sp);
        }
    }
    return rc;
}

/* Prefill experts of block type i on the multi-token grouped matvec (moe_qmt.comp), made only when
 * QNEXT_MOE_MT_PAIRS lets some call take it and the device has the kernels' features (else NULL: not taken).
 * QNEXT_MOE_MT_I8=1: its int8 twins (moe_q_*_mt_i8_*: same bindings and dispatch) where the device has them. */
static int make_qmt_pipes(qn_fwd *f, int i, bool ugu, bool udn)
{
    static const enum qn_kernel mgu[2][5] = {
        { QN_K_MOE_Q_GU_MT_Q8_0, QN_K_MOE_Q_GU_MT_Q4_0, QN_K_MOE_Q_GU_MT_Q4_K, QN_K_MOE_Q_GU_MT_Q5_K, QN_K_MOE_Q_GU_MT_Q6_K },
        { QN_K_MOE_Q_GU_MT_I8_Q8_0, QN_K_MOE_Q_GU_MT_I8_Q4_0, QN_K_MOE_Q_GU_MT_I8_Q4_K, QN_K_MOE_Q_GU_MT_I8_Q5_K,
          QN_K_MOE_Q_GU_MT_I8_Q6_K } };
    static const enum qn_kernel mdn[2][5] = {
        { QN_K_MOE_Q_DN_MT_Q8_0, QN_K_MOE_Q_DN_MT_Q4_0, QN_K_MOE_Q_DN_MT_Q4_K, QN_K_MOE_Q_DN_MT_Q5_K, QN_K_MOE_Q_DN_MT_Q6_K },
        { QN_K_MOE_Q_DN_MT_I8_Q8_0, QN_K_MOE_Q_DN_MT_I8_Q4_0, QN_K_MOE_Q_DN_MT_I8_Q4_K, QN_K_MOE_Q_DN_MT_I8_Q5_K,
          QN_K_MOE_Q_DN_MT_I8_Q6_K } };
    const struct qn_caps *caps = qn_vk_caps(f->v);
    uint32_t sp[QN_MOE_MT_NSPEC];
    int rc = 0, q = qn_moe_mt_i8();
    if (q && ((qn_kernel_infos[mgu[1][i]].features | qn_kernel_infos[mdn[1][i]].features) & ~caps->features)) {
        QN_DEBUG("the device lacks the integer dot product: moe_qmt in f32");
        q = 0;
    }
    if (!qn_moe_mt_enabled() || (qn_kernel_infos[mgu[q][i]].features & ~caps->features) ||
        (qn_kernel_infos[mdn[q][i]].features & ~caps->features))
        return 0;
    if (ugu) {
        (q ? qn_moe_mt_spec_i8 : qn_moe_mt_spec)(caps, true, f->m->qexp_up_off, sp);
        rc = pipe(f, mgu[q][i], &f->moe_qgu_mt[i], QN_MOE_MT_NSPEC, sp);
    }
    if (!rc && udn) {
        (q ? qn_moe_mt_spec_i8 : qn_moe_mt_spec)(caps, false, 0, sp);
        rc = pipe(f, mdn[q][i], &f->moe_qdn_mt[i], QN_MOE_MT_NSPEC, sp);
    }
    if (!rc) f->moe_mt_i8 = q;
    if (!rc && q) QN_DEBUG("prefill experts (%s) on moe_qmt's int8 twins", qn_kernel_infos[mgu[q][i]].name);
    return rc;
}

/* The GGUF block-format pipelines of block type i (q_index) that m uses: dense matvec and matmul (with the
 * dense matmul's tile), decode experts (moe_q.comp) and grouped prefill experts (moe_qgrouped.comp). */
static int make_q_pipes(qn_fwd *f, int i, const uint32_t tile[6])
{
    static const enum qn_kernel qmm[5] = { QN_K_QMATMUL_Q8_0, QN_K_QMATMUL_Q4_0, QN_K_QMATMUL_Q4_K, QN_K_QMATMUL_Q5_K,
                                           QN_K_QMATMUL_Q6_K };
    static const enum qn_kernel qgu[5] = { QN_K_MOE_Q_GU_Q8_0, QN_K_MOE_Q_GU_Q4_0, QN_K_MOE_Q_GU_Q4_K,
                                           QN_K_MOE_Q_GU_Q5_K, QN_K_MOE_Q_GU_Q6_K };
    static const enum qn_kernel qdn[5] = { QN_K_MOE_Q_DN_Q8_0, QN_K_MOE_Q_DN_Q4_0, QN_K_MOE_Q_DN_Q4_K,
                                           QN_K_MOE_Q_DN_Q5_K, QN_K_MOE_Q_DN_Q6_K };
    static const enum qn_kernel qdnx[5] = { QN_K_MOE_Q_DNX_Q8_0, QN_K_MOE_Q_DNX_Q4_0, QN_K_MOE_Q_DNX_Q4_K,
                                            QN_K_MOE_Q_DNX_Q5_K, QN_K_MOE_Q_DNX_Q6_K };
    static const enum qn_kernel qgug[5] = { QN_K_MOE_Q_GU_GROUPED_Q8_0, QN_K_MOE_Q_GU_GROUPED_Q4_0,
                                            QN_K_MOE_Q_GU_GROUPED_Q4_K, QN_K_MOE_Q_GU_GROUPED_Q5_K,
                                            QN_K_MOE_Q_GU_GROUPED_Q6_K };
    static const enum qn_kernel qdng[5] = { QN_K_MOE_Q_DN_GROUPED_Q8_0, QN_K_MOE_Q_DN_GROUPED_Q4_0,
                                            QN_K_MOE_Q_DN_GROUPED_Q4_K, QN_K_MOE_Q_DN_GROUPED_Q5_K,
                                            QN_K_MOE_Q_DN_GROUPED_Q6_K };
    const qn_model *m = f->m;
    int rc;
    if (model_uses_q(m, i)) MVPIPE0(k_qmatvec[i], &f->qmatvec[i]);
    if (model_uses_q(m, i)) PIPE(qmm[i], &f->qmatmul[i], tile[0], tile[1], tile[2], tile[3], tile[4], tile[5]);
    bool ugu = experts_use_q(m, 0, i), udn = experts_use_q(m, 2, i);
    uint32_t lay[11], xl[5];
    if (udn && moeq_dn_split(xl)) { /* the split down unless QNEXT_MOEQ_DN=rows; 0 = the shader's default */
        const uint32_t *d = qn_kernel_infos[qdnx[i]].spec_default;
        /* on 32-wide subgroups 8 subgroups and 64 rows per group, each subgroup two sets of 4 rows: 352 groups instead
         * of 1408 (H100 run 127: 128 x 32 rows 231.2-231.4 vs 225.5-225.6 tok/s; run 131: 256 x 64 rows 243.4-244.8
         * vs 236.7-237.6 alternated three times, 72-74 registers; 256 x 32, 256 x 128, 512 x 128 and one row per lane
         * lost; greedy ids identical) */
        bool sg32 = sg32_layouts(f);
        PIPE(qdnx[i], &f->moe_qdnx[i], xl[0] ? xl[0] : sg32 ? 256 : d[0], 0, 0, xl[1] ? xl[1] : sg32 ? 64 : d[3],
             xl[2] ? xl[2] : d[4], xl[3] ? xl[3] : d[5], xl[4] / 4, xl[4]); /* staged weights: the act row too (spec 6) */
    }
    if (moeq_layout(lay)) { /* QNEXT_MOEQ_LAYOUT (timing experiments) */
        if (ugu) PIPE(qgu[i], &f->moe_qgu[i], lay[0], m->qexp_up_off, 0, lay[1], lay[2], lay[3], lay[4], moeq_pre());
        if (udn) PIPE(qdn[i], &f->moe_qdn[i], lay[5], 0, 0, lay[6], lay[7], lay[8], lay[9], lay[10]);
    } else { /* moe_q.comp's defaults for the rest */
        const uint32_t *d = qn_kernel_infos[qgu[i]].spec_default;
        if (ugu) PIPE(qgu[i], &f->moe_qgu[i], 128, m->qexp_up_off, 0, d[3], d[4], d[5], d[6], moeq_pre());
        if (udn) PIPE(qdn[i], &f->moe_qdn[i], 128, 0, 0);
    }
    /* grouped prefill: the plain grouped kernels' WG, GN, BK (so tile_t agrees with moe_sort's tiles) */
    if (ugu) PIPE(qgug[i], &f->moe_qgu_g[i], 256, 16, 32, m->qexp_up_off);
    if (udn) PIPE(qdng[i], &f->moe_qdn_g[i], 256, 16, 32, 0);
    if ((rc = make_qmt_pipes(f, i, ugu, udn))) return rc;
    return make_qsmall_pipes(f, i, ugu, udn);
}

/* env QNEXT_GDN_FUSE: 2 (default) a GDN decode token's conv, delta rule and gated norm in one gdn_decode dispatch; 1
 * only the conv folded into the delta rule; 0 the three-dispatch path (gdn_conv, gdn_recurrent, gated_rmsnorm). Its
 * layout QNEXT_GDN_FUSE_LAYOUT=WG,BV (default 256,16: H100 run 22, 162.6 tok/s against 158.5 at 128,16) */
static uint32_t gdn_fuse(void)
{
    const char *e = getenv("QNEXT_GDN_FUSE");
    if (!e) return 2;
    if (!strcmp(e, "0") || !strcmp(e, "1") || !strcmp(e, "2")) return (uint32_t)(*e - '0');
    QN_WARN("QNEXT_GDN_FUSE=%s is not 0, 1 or 2; using 2", e);
    return 2;
}

uint32_t qn_gdn_wy_state_shared(uint32_t dkmax, uint32_t bv) { return 4 * (dkmax * bv + 64 * bv + 2 * 64 * 36); }
uint32_t qn_gdn_wy_inv_shared(uint32_t cb) { return 4 * (64 * 64 + 2048 + 64 * cb + 7 * 64); }

/* The column block CB of pass 1 (gdn_chunk_wy_inv: products with (I + L)^-1): the widest of 64, 32, 16 whose shared
 * memory fits the device (H100 run 31, test_gdn --bench, both passes at 4096 tokens in segments of 16 chunks: 3.13 /
 * 3.23 / 3.43 ms at CB 64 / 32 / 16, against 3.25 ms for the per-column substitution pass 1 it replaced); env
 * QNEXT_GDN_WY_INV=16|32|64 that block for A/B (a warning and the widest that fits for another value or a block that
 * does not fit). Returns CB, 0 where not even CB 16 fits. */
static uint32_t wy_inv_cb(const qn_fwd *f)
{
    const char *e = getenv("QNEXT_GDN_WY_INV");
    uint32_t have = qn_vk_caps(f->v)->max_shared, fit = 64, cb;
    for (; fit >= 16 && qn_gdn_wy_inv_shared(fit) > have; fit /= 2) {}
    if (fit < 16) fit = 0;
    if (!e || !fit) return fit;
    cb = !strcmp(e, "16") ? 16 : !strcmp(e, "32") ? 32 : !strcmp(e, "64") ? 64 : 0;
    if (!cb) QN_WARN("QNEXT_GDN_WY_INV=%s is not 16, 32 or 64; using CB %u", e, fit);
    else if (qn_gdn_wy_inv_shared(cb) > have)
        QN_WARN("QNEXT_GDN_WY_INV=%s: %u bytes of shared memory (device: %u); using CB %u", e,
                qn_gdn_wy_inv_shared(cb), have, fit);
    else return cb;
    return fit;
}

/* env QNEXT_GDN_WY: the prefill delta rule in two passes (gdn_chunk_wy_inv + gdn_chunk_state) instead of gdn_chunked.
 * Unset: the default, for calls of 256 tokens or more (H100 run 28, full 80B Q4_K_M: 4116 vs 3638 tok/s at 4096
 * tokens, 2393 vs 2220 at 512; the kernel loses to gdn_chunked at 64 tokens); 1: for every call of 16 tokens or more;
 * N > 1: for calls of at least N (and 16) tokens; 0: never;
 * QNEXT_GDN_WY_LAYOUT=WG,BV[,PF] of the second pass (default 256,32,1 where its 43 KB of shared memory fit (H100 run
 * 30: +1% at 512 tokens, +4% at 4096 with the conv's 1024,32), else 256,16,1; WG / BV must divide 32 and WG be at
 * most 1024; PF 1: each stage's loads issued one stage ahead, 0: at the stage),
 * QNEXT_GDN_WY_SEG=n chunks of 64 tokens per segment (default the board's tune.wy_seg, else 16: the scratch holds 2 MB
 * per chunk at the 80B's shape; nvidia-h100 64: H100 runs 100-110, +0.7-0.8% at 4096 tokens), QNEXT_GDN_WY_INV=16|32|64 pass 1's column block (wy_inv_cb). Not taken when dk or dv is not a multiple
 * of 4, the layout's shared memory does not fit or not even pass 1's CB 16 does: a warning when QNEXT_GDN_WY, its
 * layout or CB was asked for, an info line (-v) for the default. */
static int make_wy_pipes(qn_fwd *f, uint32_t dkmax)
{
    const qn_config *c = &f->m->c;
    const char *e = getenv("QNEXT_GDN_WY");
    unsigned mt = 0;
    if (e && !strcmp(e, "0")) return 0;
    f->wy_min_t = e && !strcmp(e, "1") ? 16 : e && sscanf(e, "%u", &mt) == 1 && mt > 1 ? (mt > 16 ? mt : 16) : 256;
    uint32_t bv = qn_gdn_wy_state_shared(dkmax, 32) <= qn_vk_caps(f->v)->max_shared ? 32 : 16;
    uint32_t lay[3] = { 256, bv, 1 }, seg = f->tune.wy_seg ? f->tune.wy_seg : 16;
    const char *el = getenv("QNEXT_GDN_WY_LAYOUT"), *es = getenv("QNEXT_GDN_WY_SEG");
    if (el && (sscanf(el, "%u,%u,%u", &lay[0], &lay[1], &lay[2]) < 2 || !lay[1] || lay[0] % lay[1] || lay[0] > 1024 ||
               32 % (lay[0] / lay[1]) || lay[2] > 1)) {
        QN_WARN("QNEXT_GDN_WY_LAYOUT=%s is not WG,BV[,PF] (WG / BV dividing 32, WG at most 1024, PF 0 or 1); using "
                "256,%u,1", el, bv);
        lay[0] = 256, lay[1] = bv, lay[2] = 1;
    }
    if (es && (sscanf(es, "%u", &seg) != 1 || !seg)) {
        seg = f->tune.wy_seg ? f->tune.wy_seg : 16;
        QN_WARN("QNEXT_GDN_WY_SEG=%s is not a positive chunk count; using %u", es, seg);
    }
    uint32_t shared = qn_gdn_wy_state_shared(dkmax, lay[1]), cb = wy_inv_cb(f);
    if (c->lin_k_dim % 4 || c->lin_v_dim % 4 || shared > qn_vk_caps(f->v)->max_shared || !cb) {
        qn_log(e || el || getenv("QNEXT_GDN_WY_INV") ? QN_LOG_WARN : QN_LOG_INFO, "QNEXT_GDN_WY: dk %d / dv %d not "
               "multiples of 4, or %u bytes of shared memory for pass 2 or %u for pass 1 (device: %u); using "
               "gdn_chunked", c->lin_k_dim, c->lin_v_dim, shared, qn_gdn_wy_inv_shared(16),
               qn_vk_caps(f->v)->max_shared);
        return 0;
    }
    int rc;
    PIPE(QN_K_GDN_CHUNK_WY_INV, &f->wy_a, cb);
    PIPE(QN_K_GDN_CHUNK_STATE, &f->wy_b, lay[0], lay[1], dkmax, lay[2]);
    QN_DEBUG("QNEXT_GDN_WY: gdn_chunk_wy_inv(%u) + gdn_chunk_state(%u,%u,%u,%u), segments of %u chunks, calls of %u+ "
             "tokens", cb, lay[0], lay[1], dkmax, lay[2], seg, f->wy_min_t);
    f->wy_seg = seg;
    return 0;
}

/* env QNEXT_ATTN_CM: 1 runs the causal prefill attention as flash attention on tensor cores (attn_prefill_cm.comp:
 * q, k, v and the probabilities rounded to f16, f32 accumulation) where the device has VK_NV_cooperative_matrix with
 * the f16 16x16x16 shape and 32-wide subgroups (else a warning and attn_prefill); emu its twin with the fragment
 * operations emulated (any device, slow: for testing the graph on lavapipe); 0 attn_prefill. Unset: as 1 where the
 * device has it (quietly attn_prefill elsewhere) unless the tensor cores are off (QNEXT_COOPMAT=0 or the board's
 * policy): the default since H100 run 28 (prefill-ab, full 80B Q4_K_M: 4845 vs 3642 tok/s at 4096 tokens, 2318 vs
 * 2222 at 512; the kernel 9.5x attn_prefill at T 4096). Needs a head dim that is a multiple of 32, at most 256, and a
 * self-check against attn_prefill at setup to pass (attn_cm_check.c). QNEXT_ATTN_CM_LAYOUT=PF,BC,KV2: its spec constants 1-3 (default 0,32,0): PF 1
 * each K / V tile fetched into registers before the previous step's multiplies, BC 16 or 32 keys per tile, KV2 1 the
 * K and V tiles in two buffers (3 barriers per tile instead of 4; 48640 bytes of shared memory at BC 32). */
static int make_attn_cm_pipe(qn_fwd *f)
{
    const char *e = getenv("QNEXT_ATTN_CM");
    const struct qn_caps *c = qn_vk_caps(f->v);
    uint32_t D = (uint32_t)f->m->c.head_dim;
    int rc;
    f->pre_cm = NULL;
    const char *ce = getenv("QNEXT_COOPMAT");
    bool quiet = !e || !*e; /* the default: on where the device has it and the tensor cores are not turned off */
    if (quiet && (ce ? !strcmp(ce, "0") : f->tune.coopmat == QN_FWD_CM_OFF)) return 0;
    if (quiet) e = "1";
    if (!strcmp(e, "0")) return 0;
    bool emu = !strcmp(e, "emu");
    enum qn_kernel k = emu ? QN_K_ATTN_PREFILL_CM_EMU : QN_K_ATTN_PREFILL_CM;
    if (!emu && strcmp(e, "1")) {
        QN_WARN("QNEXT_ATTN_CM=%s is not 0, 1 or emu; attn_prefill runs", e);
        return 0;
    }
    unsigned lay[3] = { 0, 32, 0 }; /* PF, BC, KV2 */
    const char *el = getenv("QNEXT_ATTN_CM_LAYOUT");
    if (el && (sscanf(el, "%u,%u,%u", &lay[0], &lay[1], &lay[2]) != 3 || lay[0] > 1 || (lay[1] != 16 && lay[1] != 32) ||
               lay[2] > 1)) {
        QN_WARN("QNEXT_ATTN_CM_LAYOUT=%s is not PF,BC,KV2 (PF and KV2 0 or 1, BC 16 or 32); using 0,32,0", el);
        lay[0] = 0, lay[1] = 32, lay[2] = 0;
    }
    uint32_t need = qn_attn_cm_shared_bytes(lay[1], (int)lay[2]);
    if (D % 32 || D > 256 || c->max_shared < need || (qn_kernel_infos[k].features & ~c->features) ||
        (!emu && (c->coopmat_nv_n != 16 || c->subgroup_size != 32 || c->subgroup_min != 32 || c->subgroup_max != 32))) {
        if (quiet) return 0;
        QN_WARN("QNEXT_ATTN_CM=%s: '%s' lacks what %s needs (VK_NV_cooperative_matrix f16 16x16x16 and 32-wide "
                "subgroups, %u bytes of shared memory, head dim %u a multiple of 32 <= 256); attn_prefill runs", e, c->name,
                qn_kernel_infos[k].name, need, D);
        return 0;
    }
    PIPE(k, &f->pre_cm, 256, lay[0], lay[1], lay[2]);
    if (qn_attn_cm_selfcheck(f->v, f->pre_cm, f->pre, (uint32_t)f->m->c.num_heads, (uint32_t)f->m->c.num_kv_heads, D)) {
        QN_WARN("QNEXT_ATTN_CM=%s: %s; attn_prefill runs", e, qn_errmsg());
        f->pre_cm = NULL;
        return 0;
    }
    QN_INFO("prefill attention: %s (QNEXT_ATTN_CM=%s, layout %u,%u,%u; self-check passed)", qn_kernel_infos[k].name, e,
            lay[0], lay[1], lay[2]);
    return 0;
}

/* Token choice, Gated DeltaNet, attention and the dense-dtype MoE kernels. */
static int make_layer_pipes(qn_fwd *f)
{
    const qn_config *c = &f->m->c;
    static const enum qn_kernel gu[3] = { QN_K_MOE_GATE_UP_BF16, QN_K_MOE_GATE_UP_F16, QN_K_MOE_GATE_UP_F32 };
    static const enum qn_kernel dn[3] = { QN_K_MOE_DOWN_BF16, QN_K_MOE_DOWN_F16, QN_K_MOE_DOWN_F32 };
    static const enum qn_kernel gug[3] = { QN_K_MOE_GATE_UP_GROUPED_BF16, QN_K_MOE_GATE_UP_GROUPED_F16,
                                           QN_K_MOE_GATE_UP_GROUPED_F32 };
    static const enum qn_kernel dng[3] = { QN_K_MOE_DOWN_GROUPED_BF16, QN_K_MOE_DOWN_GROUPED_F16,
                                           QN_K_MOE_DOWN_GROUPED_F32 };
    uint32_t dkmax = c->lin_k_dim > 128 ? (uint32_t)c->lin_k_dim : 128;
    uint32_t D = (uint32_t)c->head_dim, dmax = D > 256 ? (D + 3) / 4 * 4 : 256;
    uint32_t G = (uint32_t)(c->num_heads / c->num_kv_heads), gmax = G > 8 ? G : 8;
    uint32_t K = (uint32_t)c->conv_kernel, edt = (uint32_t)qn_fwd_dt_index(f->m->exp_dtype);
    int rc;
    PIPE(QN_K_ARGMAX, &f->argmax[0], 256, 0);
    PIPE(QN_K_ARGMAX, &f->argmax[1], 256, 1);
    PIPE(QN_K_TOPK_LOGITS, &f->topk, 256, 2048);
    PIPE(QN_K_GDN_CONV, &f->conv_dec, 128, 1, K);
    /* prefill conv layout WG,TS: 1024,32 where the device runs 1024 invocations (H100 run 30: with the delta rule's
     * 256,32 +4% at 4096 tokens; run 28's kernel bench 0.12 vs 0.50 ms at 128,4), else 128,4; env
     * QNEXT_GDN_CONV_LAYOUT (timing experiments) */
    const struct qn_caps *cc = qn_vk_caps(f->v);
    bool wide = cc->max_wg_invocations >= 1024 && cc->max_wg_size[0] >= 1024;
    uint32_t cvl[2] = { wide ? 1024 : 128, wide ? 32 : 4 };
    const char *ec = getenv("QNEXT_GDN_CONV_LAYOUT");
    if (ec && (sscanf(ec, "%u,%u", &cvl[0], &cvl[1]) != 2 || !cvl[1] || cvl[0] % cvl[1] || cvl[0] > 1024)) {
        QN_WARN("QNEXT_GDN_CONV_LAYOUT=%s is not WG,TS (WG a multiple of TS, at most 1024); using 128,4", ec);
        cvl[0] = 128, cvl[1] = 4;
    }
    PIPE(QN_K_GDN_CONV, &f->conv_pre, cvl[0], cvl[1], K);
    PIPE(QN_K_GDN_RECURRENT, &f->rule_rec, 128, 16, dkmax);
    PIPE(QN_K_GDN_CHUNKED, &f->rule_chunk, 256, 16, dkmax, 64);
    if ((rc = make_wy_pipes(f, dkmax))) return rc;
    PIPE(QN_K_GATED_RMSNORM, &f->gnorm, 128);
    uint32_t gf = gdn_fuse(), gl[2] = { 256, 16 };
    const char *el = getenv("QNEXT_GDN_FUSE_LAYOUT"); /* WG,BV of gdn_decode (timing experiments) */
    if (el && (sscanf(el, "%u,%u", &gl[0], &gl[1]) != 2 || !gl[1] || gl[0] % gl[1] || gl[0] > 1024)) {
        QN_WARN("QNEXT_GDN_FUSE_LAYOUT=%s is not WG,BV (WG a multiple of BV, at most 1024); using 256,16", el);
        gl[0] = 256, gl[1] = 16;
    }
    if (gf) PIPE(QN_K_GDN_DECODE, &f->gdn_dec, gl[0], gl[1], dkmax, K, gf == 2 ? 1 : 0);
    PIPE(QN_K_ATTN_PREP, &f->prep, 64, dmax);
    PIPE(QN_K_ATTN_DECODE, &f->dec, dmax / 4 > 128 ? dmax / 4 : 128, dmax, gmax, QN_ATTN_DECODE_TK);
    PIPE(QN_K_ATTN_DECODE_COMBINE, &f->comb, 64);
    const char *af = getenv("QNEXT_ATTN_FOLD"); /* default 1: the decode step's attn_prep inside attn_decode; 0 apart */
    if (!af || strcmp(af, "0"))
        PIPE(QN_K_ATTN_DECODE_PREP, &f->dec_prep, dmax / 4 > 128 ? dmax / 4 : 128, dmax, gmax, QN_ATTN_DECODE_TK);
    PIPE(QN_K_ATTN_PREFILL, &f->pre, dmax / 4 > 256 ? dmax / 4 : 256, dmax);
    if ((rc = make_attn_cm_pipe(f))) return rc;
    PIPE(QN_K_MOE_ROUTER, &f->router, 256);
    PIPE0(gu[edt], &f->gate_up);   /* decode layout defaults: WG 128, 4 rows, unroll 4 (one subgroup per row) */
    PIPE0(dn[edt], &f->down);
    PIPE(QN_K_MOE_SORT, &f->sort, 256);
    PIPE0(gug[edt], &f->gate_up_g);
    PIPE0(dng[edt], &f->down_g);
    PIPE(QN_K_MOE_COMBINE, &f->combine, 256);
    /* the grouped kernels' token tile: 4 * WG / GN */
    f->tile_t = 4 * qn_pipe_spec(f->gate_up_g, 0) / qn_pipe_spec(f->gate_up_g, 1);
    return 0;
}

/* The f16 path of prefill projections (forward.h mm_h; forward.c h_linear): env QNEXT_MM_H unset or 1: on where the
 * tensor-core matmuls are (f->coopmat), 0: off, 2: the decode into f16 and the f32-FMA matmul_f16 on it (any device,
 * for tests); QNEXT_MM_H_MIN_T: the smallest call it takes (default 256 tokens). H100 run 63 (test_qmatmul --bench):
 * 128-132 TFLOP/s at M 512-4096 x N 12352 x K 2048 against 85 for qmatmul_cm_q4_k (its weight decode in the k loop). */
/* [0] the small layout (calls of fewer than 256 large tiles), [1] the large one where the device fits it (128 x 128
 * at BK 64 in one tile buffer: 45,056 bytes of shared memory), else [2] (BK 32, two buffers). H100 run 113: [1] 163 /
 * 178 TFLOP/s at M 512 N 12352 K 2048 / M 2048 N 2048 K 4096 against 122 / 172 for run 90's 256 x 128 at BK 32
 * (512 invocations, one buffer) and 126 / 146 for [2]; prefill 5576-5588 / 7134-7135 / 9364-9370 against 5535-5538 /
 * 7035-7037 / 9243-9275 tok/s at 1024 / 2048 / 4096 tokens (half the barriers per multiply). */
const uint32_t qn_mm_h_spec[3][QN_MM_H_NSPEC] = { { 256, 128, 64, 32, 32, 32, 2 }, { 256, 128, 128, 64, 64, 32, 1 },
                                                  { 256, 128, 128, 32, 64, 32, 2 } };

/* A layout's fit: WG = 32 (BM / WTM) (BN / WTN), multiples of 16, within the device's invocations and shared memory */
bool qn_mm_h_fits(const struct qn_caps *c, const uint32_t *v)
{
    return v[4] && v[5] && v[1] % v[4] == 0 && v[2] % v[5] == 0 && v[4] % 16 == 0 && v[5] % 16 == 0 && v[3] &&
           v[3] % 16 == 0 && (v[6] == 1 || v[6] == 2) && v[0] == 32 * (v[1] / v[4]) * (v[2] / v[5]) &&
           v[0] <= c->max_wg_invocations && v[0] <= c->max_wg_size[0] &&
           (uint64_t)v[6] * (v[1] + v[2]) * (v[3] / 8 + 1) * 16 + (uint64_t)v[0] / 32 * 1024 <= c->max_shared;
}

/* The large layout (qn_mm_h_spec [1], else [2]), or env QNEXT_MM_H_LAYOUT=WG,BM,BN,BK,WTM,WTN,NBUF (an A/B) */
static const uint32_t *mm_hb_spec(const qn_fwd *f, uint32_t buf[QN_MM_H_NSPEC])
{
    const struct qn_caps *c = qn_vk_caps(f->v);
    const char *e = getenv("QNEXT_MM_H_LAYOUT");
    unsigned v[QN_MM_H_NSPEC];
    if (e && sscanf(e, "%u,%u,%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) == 7) {
        for (int i = 0; i < QN_MM_H_NSPEC; i++) buf[i] = v[i];
        if (qn_mm_h_fits(c, buf)) return buf;
    }
    if (e) QN_WARN("QNEXT_MM_H_LAYOUT=%s: want WG,BM,BN,BK,WTM,WTN,NBUF (WG = 32 (BM / WTM) (BN / WTN), within the "
                   "device's limits); using the default", e);
    return qn_mm_h_fits(c, qn_mm_h_spec[1]) ? qn_mm_h_spec[1] : qn_mm_h_spec[2];
}

static int make_h_pipes(qn_fwd *f)
{
    static const enum qn_kernel tk[5] = { QN_K_TO_F16_Q8_0, QN_K_TO_F16_Q4_0, QN_K_TO_F16_Q4_K, QN_K_TO_F16_Q5_K,
                                          QN_K_TO_F16_Q6_K };
    const char *e = getenv("QNEXT_MM_H"), *t = getenv("QNEXT_MM_H_MIN_T");
    int mode = e ? atoi(e) : 1, rc = 0;
    f->h_min_t = t && atoi(t) > 1 ? (uint32_t)atoi(t) : 256;
    if (mode == 0 || (mode == 1 && !f->coopmat) || f->tmax < f->h_min_t) return 0;
    for (int i = 0; i < 5; i++)
        if (model_uses_q(f->m, i)) PIPE(tk[i], &f->to_f16[i], 256);
    PIPE(QN_K_TO_F16_F32, &f->to_f16_x, 256);
    if (mode == 2) {
        PIPE0(QN_K_MATMUL_F16, &f->mm_h);
    } else {
        static const enum qn_kernel gh[5] = { QN_K_MOE_Q_GU_GROUPED_CM_H_Q8_0, QN_K_MOE_Q_GU_GROUPED_CM_H_Q4_0,
                                              QN_K_MOE_Q_GU_GROUPED_CM_H_Q4_K, QN_K_MOE_Q_GU_GROUPED_CM_H_Q5_K,
                                              QN_K_MOE_Q_GU_GROUPED_CM_H_Q6_K },
                                    dh[5] = { QN_K_MOE_Q_DN_GROUPED_CM_H_Q8_0, QN_K_MOE_Q_DN_GROUPED_CM_H_Q4_0,
                                              QN_K_MOE_Q_DN_GROUPED_CM_H_Q4_K, QN_K_MOE_Q_DN_GROUPED_CM_H_Q5_K,
                                              QN_K_MOE_Q_DN_GROUPED_CM_H_Q6_K };
        if ((rc = pipe(f, QN_K_MATMUL_CM_H, &f->mm_h, QN_MM_H_NSPEC, qn_mm_h_spec[0])) ||
            (rc = pipe(f, QN_K_MATMUL_CM_H, &f->mm_hb, QN_MM_H_NSPEC, mm_hb_spec(f, (uint32_t[QN_MM_H_NSPEC]){ 0 }))))
            return rc;
        if (qn_pipe_spec(f->mm_hb, 1) != qn_mm_h_spec[2][1] || qn_pipe_spec(f->mm_hb, 2) != qn_mm_h_spec[2][2])
            if ((rc = pipe(f, QN_K_MATMUL_CM_H, &f->mm_hm, QN_MM_H_NSPEC, qn_mm_h_spec[2]))) return rc;
        f->mm_h_x = true;
        /* the grouped gate_up's x and down's act in f16 (QNEXT_MOE_XH=0: f32 as before, 1: the gate_up's x only;
         * H100 run 66: the gate_up's +4% at 4096 tokens) */
        const char *g = getenv("QNEXT_MOE_XH"), *se = getenv("QNEXT_MOE_SHARED_EARLY");
        f->moe_sh_early = !(se && !strcmp(se, "0"));
        const qn_config *c = &f->m->c; /* rows of whole 8-half chunks */
        bool gu = !(g && !strcmp(g, "0")) && c->hidden_size % 8 == 0;
        bool dn = gu && !(g && !strcmp(g, "1")) && c->moe_inter % 8 == 0 && c->shared_inter % 8 == 0;
        for (int i = 0; i < 5 && gu; i++) {
            qn_pipe *const src[2] = { f->moe_qgu_gcm[i], dn ? f->moe_qdn_gcm[i] : NULL };
            qn_pipe **dst[2] = { &f->moe_qgu_gcm_h[i], &f->moe_qdn_gcm_h[i] };
            for (int k = 0; k < 2; k++) {
                if (!src[k]) continue;
                uint32_t sp[QN_CM_MOE_NSPEC];
                for (uint32_t j = 0; j < QN_CM_MOE_NSPEC; j++) sp[j] = qn_pipe_spec(src[k], j);
                if ((rc = pipe(f, (k ? dh : gh)[i], dst[k], QN_CM_MOE_NSPEC, sp))) return rc;
            }
        }
    }
    QN_INFO("prefill projections of %u+ tokens through f16 copies (%s)", f->h_min_t,
            mode == 2 ? "QNEXT_MM_H=2: matmul_f16" : "matmul_cm_h");
    return 0;
}

int qn_fwd_make_pipes(qn_fwd *f)
{
    static const enum qn_kernel emb[3] = { QN_K_EMBED_BF16, QN_K_EMBED_F16, QN_K_EMBED_F32 },
                                eq[5] = { QN_K_EMBED_Q8_0, QN_K_EMBED_Q4_0, QN_K_EMBED_Q4_K, QN_K_EMBED_Q5_K,
                                          QN_K_EMBED_Q6_K };
    uint32_t nwg = f->tune.norm_wg ? f->tune.norm_wg : 256, tile[6];
    int rc, qi = f->m->embed.qtype ? qn_fwd_q_index(f->m->embed.qtype) : -1;
    if (f->m->embed.qtype && qi < 0)
        return qn_fail(QN_E_UNSUPPORTED, "the embedding table's GGUF type %s has no embed kernel",
                       qn_ggml_type_name(f->m->embed.qtype));
    PIPE(qi >= 0 ? eq[qi] : emb[qn_fwd_dt_index(f->m->embed.dtype)], &f->embed, 256);
    PIPE(QN_K_RMSNORM, &f->rmsnorm, nwg);
    if ((rc = make_dense_pipes(f, tile))) return rc;
    make_cm_pipes(f);
    if ((rc = make_h_pipes(f))) return rc;
    for (int i = 0; i < 5; i++)
        if ((rc = make_q_pipes(f, i, tile))) return rc;
    if ((rc = make_router_pipes(f))) return rc;
    return make_layer_pipes(f);
}

/* Env "WG,ROWS,UNROLL,SGROWS,XSH" into lay[5] (WG >= 32 for the router epilogue; ROWS, UNROLL, SGROWS >= 1);
 * false (with a warning) if it is not that. */
static bool mv_layout(const char *name, const char *e, uint32_t lay[5])
{
    unsigned v[5];
    if (sscanf(e, "%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4]) != 5 || v[0] < 32 || v[0] > 1024 || !v[1] ||
        !v[2] || !v[3] || v[2] > 16 || v[3] > 16 || v[4] > 4096) {
        QN_WARN("%s=%s is not WG,ROWS,UNROLL,SGROWS,XSH (WG 32..1024, ROWS >= 1, UNROLL and SGROWS 1..16, XSH <= 4096 vec4); "
                "ignored (the default layout stays)", name, e);
        return false;
    }
    for (int i = 0; i < 5; i++) lay[i] = v[i];
    return true;
}

/* The small-row decode layouts (f->*_s): a decode matvec whose default layout launches at most f->mv_small_wgs
 * workgroups (128 when on; env QNEXT_MV_SMALL_WGS, or QNEXT_MV_SMALL_ROWS=N: weights and parts of at most N rows)
 * gets a layout with few rows per workgroup, each lane with one batch of loads (prefetched before the x staging):
 * in the 80B Q4_K_M file the route stage (router 64 -> 512 workgroups, shared gate/up 32 -> 128, the 1-row gate),
 * the out projections (128 -> 512), GDN ba (4 -> 16) and the 512-row attention parts. H100 run 13 (in-model
 * profile, small layouts on every matvec up to 16384 rows): kernels with 1-128 default workgroups got faster
 * (shared gate/up 11.2 -> 8.8 us, 1-row gate + routing tail 17.8 -> 15.4, router 11.5 -> 10.6, ba 7.3 -> 5.7), those
 * with 256-772 slower (Q4_K 12352 rows 25.3 -> 33.2 us, 4096 rows 15.1 -> 17.8, Q6_K 8192 rows 23.8 -> 31.5): their
 * default layout's 2 rows per subgroup halve the x reads from shared memory, and per-workgroup x staging and sum
 * of squares grow with the workgroup count. Block types: WG 128, 4 rows (one per subgroup), UNROLL 2 (4 for the
 * plain qmatvec: out projections have 4096 columns), x staged (up to 4096 floats), or env
 * QNEXT_MV_SMALL=WG,ROWS,UNROLL,SGROWS,XSH (all of them); dense dtypes (the f32 router and shared-expert gate, bf16
 * models): WG 128, 2 rows (f32: 1) split over the subgroups, UNROLL 4, x through L1, or QNEXT_MV_SMALL_F=...
 * (all three dtypes). OFF by default since H100 run 14 (decode 132.4 tok/s with them, 141.2 without): set
 * QNEXT_MV_SMALL=1 (or a layout), QNEXT_MV_SMALL_WGS or QNEXT_MV_SMALL_ROWS to use them; QNEXT_MV_SMALL=0 or unset:
 * the default layouts everywhere. */
static int make_mv_small_pipes(qn_fwd *f)
{
    const char *e = getenv("QNEXT_MV_SMALL"), *ef = getenv("QNEXT_MV_SMALL_F"), *er = getenv("QNEXT_MV_SMALL_ROWS");
    uint32_t q[5] = { 128, 4, 2, 1, 1024 }, d[5] = { 128, 2, 4, 1, 0 };
    uint32_t qu = 4, dr = 1; /* plain qmatvec: unroll 4 (the out projections' 4096 columns in one batch); f32: 1 row */
    const char *ew = getenv("QNEXT_MV_SMALL_WGS");
    f->mv_small_rows = 0, f->mv_small_wgs = 0;
    /* off unless asked for: in the model they lost on the H100 (run 14: 132.4 tok/s with the <= 128-workgroup rule,
     * 141.2 without, although the kernels they replace got faster in the per-dispatch profile) */
    if (!(e && *e && strcmp(e, "0")) && !(ew && *ew) && !(er && *er)) return 0;
    f->mv_small_wgs = 128;
    if (e && *e && strcmp(e, "1") && mv_layout("QNEXT_MV_SMALL", e, q)) qu = q[2]; /* "" and "1": the defaults */
    if (ef && *ef && mv_layout("QNEXT_MV_SMALL_F", ef, d)) dr = d[1];
    if (er && *er) f->mv_small_rows = (uint32_t)strtoul(er, NULL, 10);
    if (ew && *ew) f->mv_small_wgs = (uint32_t)strtoul(ew, NULL, 10);
    int rc;
    uint32_t H4 = (uint32_t)f->m->c.hidden_size / 4; /* the route variants stage at most H (shared memory) */
    for (int i = 0; i < 3; i++) {
        uint32_t r = i == 2 ? dr : d[1]; /* f32 rows hold 2x the 16-byte chunks of 16-bit ones */
        MVPIPE(k_matvec[i], &f->matvec_s[i], d[0], r, d[2], d[3], d[4]);
        MVPIPE(k_matvec_norm[i], &f->matvec_norm_s[i], d[0], r, d[2], d[3], d[4]);
        MVPIPE(k_matvec_norm_route[i], &f->matvec_norm_route_s[i], d[0], r, d[2], d[3], d[4] < H4 ? d[4] : H4);
    }
    for (int i = 0; i < 5; i++) {
        if (!f->qmatvec[i]) continue;
        MVPIPE(k_qmatvec[i], &f->qmatvec_s[i], q[0], q[1], qu, q[3], q[4]);
        MVPIPE(k_qmatvec_norm[i], &f->qmatvec_norm_s[i], q[0], q[1], q[2], q[3], q[4]);
        MVPIPE(k_qmatvec_norm_route[i], &f->qmatvec_norm_route_s[i], q[0], q[1], q[2], q[3], q[4] < H4 ? q[4] : H4);
    }
    QN_DEBUG("decode matvecs of <= %u default workgroups (rows <= %u if not 0): blocks %u,%u,%u,%u,%u (plain unroll %u), "
             "dense %u,%u,%u,%u,%u (f32 rows %u) (WG,ROWS,UNROLL,SGROWS,XSH)", f->mv_small_wgs, f->mv_small_rows, q[0], q[1], q[2], q[3], q[4], qu, d[0], d[1], d[2], d[3],
             d[4], dr);
    return 0;
}

/* QNEXT_QMV_LAYOUT / QNEXT_QMVN_LAYOUT = "[TYPE:]WG,ROWS,UNROLL,SGROWS,XSH[,PRE][;...]": another layout for the plain
 * block matvecs (f->qmatvec: out projections, attention parts; small-T prefill) / those with the RMSNorm prologue
 * (f->qmatvec_norm: in_proj parts, lm_head), for in-model A/B runs. TYPE (q8_0, q4_0, q4_k, q5_k, q6_k) limits an
 * entry to one block type; later entries win; PRE (spec 5, default QNEXT_MV_PRE's) 0 or 1 (the first batch of
 * weights loaded before the x staging), plus 4 for the norm's sum of squares taken while x is staged
 * (QNEXT_MV_NF=1). The route parts keep the default (they were made before). Run 17's sweep (a barrier between
 * matvecs, as in the model) read 128,16,1,4,0 at 989 GB/s on the 12352 x 2048 Q4_K in_proj shape and 128,8,1,4,0 at
 * 629 on 2048 x 4096; the default 256,16,2,2,1024 read 551 / 359 as the sweep's first row, while its grid
 * neighbours read ~890 / ~555. */
static int mv_env_layouts(qn_fwd *f, const char *name, const char *dflt, const enum qn_kernel k[5], qn_pipe *out[5])
{
    static const char *const tn[5] = { "q8_0", "q4_0", "q4_k", "q5_k", "q6_k" };
    const char *e = getenv(name);
    int rc;
    if (!e && sg32_layouts(f)) e = dflt; /* unset: the measured default (32-wide subgroups) */
    for (const char *p = e; p && *p;) {
        size_t n = strcspn(p, ";");
        char ent[96];
        snprintf(ent, sizeof ent, "%.*s", (int)(n < sizeof ent ? n : sizeof ent - 1), p);
        p += n + (p[n] == ';');
        const char *lay = strchr(ent, ':') ? strchr(ent, ':') + 1 : ent;
        uint32_t l[6];
        unsigned pre = mv_pre();
        if (!mv_layout(name, lay, l)) continue;
        if (sscanf(lay, "%*u,%*u,%*u,%*u,%*u,%u", &pre) == 1 && (pre > 5 || (pre & 3) > 1)) pre = mv_pre();
        l[5] = pre;
        for (int i = 0; i < 5; i++) {
            size_t tl = lay == ent ? 0 : (size_t)(lay - 1 - ent);
            if (!out[i] || (tl && (strncmp(ent, tn[i], tl) || tn[i][tl]))) continue;
            if ((rc = pipe(f, k[i], &out[i], 6, l))) return rc;
            QN_DEBUG("%s: %s decode matvec layout %u,%u,%u,%u,%u pre %u", name, tn[i], l[0], l[1], l[2], l[3], l[4], l[5]);
        }
    }
    return 0;
}

static int make_mv_env_pipes(qn_fwd *f)
{
    /* defaults from in-model A/B runs on 32-wide subgroups (the kernel's own: 256,16,2,2,1024,1); an empty
     * QNEXT_QMV_LAYOUT / QNEXT_QMVN_LAYOUT keeps the kernel's own. Fewer registers per lane: H100 runs 121-124 (full 80B
     * Q4_K_M, the int8 twins copy these): the norm matvecs (in-projections, lm_head) at one unit and one row per lane
     * take 45 registers instead of 93-98 (3 groups of 256 per SM instead of 2: the GDN in-projection's 772 groups in
     * 2 waves, not 3), decode 218.9-219.4 vs 207.1-207.4 tok/s; the out projections at one unit per lane (60
     * registers) another +1% on top (221.7); two rows per lane (256,16,1,2) and 256,8,1,1 were within 1%. With the
     * MoE layouts of run 127, 32 rows per group for the norm matvecs (each subgroup two sets: 386 groups for the GDN
     * in-projection): run 129, 238.1-238.4 vs 235.1-235.4 tok/s alternated three times; 512,32,1,1 and 128,8,1,1 lost */
    static const char *const qmv_default = "256,16,1,2,1024", *const qmvn_default = "256,32,1,1,1024";
    int rc = mv_env_layouts(f, "QNEXT_QMV_LAYOUT", qmv_default, k_qmatvec, f->qmatvec);
    return rc ? rc : mv_env_layouts(f, "QNEXT_QMVN_LAYOUT", qmvn_default, k_qmatvec_norm, f->qmatvec_norm);
}

/* route_mixed (the decode route stage of a GGUF mixed-type W_moe in one dispatch): for each block type the model's
 * dense weights use (none: Q8_0's, for all-f32 parts), when the device has subgroup arithmetic and H is a
 * multiple of 32 up to 4096 (x staged: XSH = H / 4; forward.c checks H against the block size). Layout
 * WG 512, f32 rows 8, block rows 16, f32 unroll 2, block unroll 1: in the 80B Q4_K_M file 64 + 2 x 32 + 1 = 129
 * workgroups of 16 subgroups (f32 rows split over 2 subgroups, one block row per subgroup), each lane two batches
 * of block loads and four of f32 (66 registers instead of 86; H100 runs 123-125 on the leaner matvec layouts: unrolls
 * 2 / 1 227.0, 224.4, 224.6 tok/s against 4 / 1 222.9-224.9 and 223.2-223.8, 8 / 1 220.3 and 221.2, the old 8 / 2
 * 219-220). Until then unrolls 8 / 2, every lane one batch of loads: H100 run 18b (prefill-ab, 128 decode steps):
 * 154.6 tok/s against 149.6 / 150.7 for the per-part dispatches (QNEXT_ROUTE_ONE=0); layouts with more
 * workgroups lost in step with their count (256,4,8,8,2 257 workgroups 146.3 / 147.2, 128,2,4,8,2 513 129.0, 64,1,2,8,2 1025 117.9), 256,8,16,16,4 (129 of 8 subgroups)
 * 151.9, 256,8,16,8,2 (two batches per lane) 140.3. Devices with fewer than 512 invocations per workgroup get
 * 256,8,16,16,4. Env QNEXT_ROUTE_ONE_LAYOUT=WG,FROWS,QROWS,FUNROLL,QUNROLL another; QNEXT_ROUTE_ONE=0: none
 * (forward.c records one matvec_norm_route dispatch per part instead). */
static int make_route_one_pipes(qn_fwd *f)
{
    static const enum qn_kernel rk[5] = { QN_K_ROUTE_MIXED_Q8_0, QN_K_ROUTE_MIXED_Q4_0, QN_K_ROUTE_MIXED_Q4_K,
                                          QN_K_ROUTE_MIXED_Q5_K, QN_K_ROUTE_MIXED_Q6_K };
    const char *e = getenv("QNEXT_ROUTE_ONE"), *el = getenv("QNEXT_ROUTE_ONE_LAYOUT");
    const struct qn_caps *caps = qn_vk_caps(f->v);
    uint32_t H = (uint32_t)f->m->c.hidden_size, s[6] = { 512, 8, 16, 2, 1, H / 4 };
    if ((e && !strcmp(e, "0")) || H % 32 || H > 4096) return 0;
    if (caps->max_wg_invocations < 512) s[0] = 256, s[3] = 16, s[4] = 4; /* 256,8,16,16,4 */
    if (el && *el) {
        unsigned v[5];
        if (sscanf(el, "%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4]) == 5 && v[0] >= 32 && v[0] <= 1024 &&
            v[0] % 32 == 0 && v[1] && v[1] <= 64 && v[2] && v[2] <= 64 && v[3] && v[3] <= 32 && v[4] && v[4] <= 16)
            for (int i = 0; i < 5; i++) s[i] = v[i];
        else
            QN_WARN("QNEXT_ROUTE_ONE_LAYOUT=%s is not WG,FROWS,QROWS,FUNROLL,QUNROLL (WG a multiple of 32 up to 1024, "
                    "rows 1..64, unrolls 1..32 / 1..16); using %u,%u,%u,%u,%u", el, s[0], s[1], s[2], s[3], s[4]);
    }
    if (s[0] > caps->max_wg_invocations ||
        s[0] < (caps->subgroup_max > caps->subgroup_size ? caps->subgroup_max : caps->subgroup_size)) return 0;
    int rc; /* (a workgroup needs one full subgroup at least: its teams are the full subgroups) */
    bool any = false; /* no block type at all: the Q8_0 variant serves W_moe parts that are all f32 */
    for (int i = 0; i < 5; i++) any |= f->qmatvec[i] != NULL;
    for (int i = 0; i < 5; i++) {
        if ((any ? !f->qmatvec[i] : i) || (qn_kernel_infos[rk[i]].features & ~caps->features)) continue;
        PIPE(rk[i], &f->route_one[i], s[0], s[1], s[2], s[3], s[4], s[5]);
    }
    return 0;
}

/* ---- int8 dot-product twins of the block matvecs (qmatvec_i8.comp; env QNEXT_IDOT=1) ---------------------------- */

/* The int8 matvecs (qmatvec_i8 QN_PRE bit 8) quantize x with 4 invocations per 32-element block (quant_i8.glsl
 * QN_I8_STAGE4_SW; the same bytes): the default (H100 run 31 decode 187.7-189.9 tok/s vs 183.7-184.1 with one
 * invocation per block); env QNEXT_I8_STAGE4=0 gives one */
static bool i8_stage4(void)
{
    const char *e = getenv("QNEXT_I8_STAGE4");
    return !e || strcmp(e, "0");
}

/* The most columns of any dense block weight of m (or block part of a mixed-type fusion): what the twins stage. */
static uint32_t model_q_max_cols(const qn_model *m)
{
    uint32_t c = m->lm_head.qtype ? m->lm_head.cols : 0;
    for (int l = 0; l < m->c.num_layers; l++) {
        const struct qn_mlayer *L = &m->L[l];
        const qn_wt *w[6] = { &L->w_in, &L->w_out, &L->w_qkv, &L->w_o, &L->w_moe, &L->shared_down };
        for (int k = 0; k < 6; k++)
            if ((w[k]->qtype || w[k]->nsub) && w[k]->cols > c) c = w[k]->cols;
    }
    return c;
}

/* QNEXT_IDOT=2: f->moe_qgu_i8, the twins of the routed experts' decode gate_up (moe_q_i8.comp) in moe_qgu's layout
 * (spec 0-7; x stage at least H / 4). */
static int make_i8_gu_pipes(qn_fwd *f)
{
    static const enum qn_kernel kg[5] = { QN_K_MOE_Q_GU_I8_Q8_0, QN_K_MOE_Q_GU_I8_Q4_0, QN_K_MOE_Q_GU_I8_Q4_K,
                                          QN_K_MOE_Q_GU_I8_Q5_K, QN_K_MOE_Q_GU_I8_Q6_K };
    uint32_t H = (uint32_t)f->m->c.hidden_size;
    int rc;
    if (H % 32 || H > 8192) return 0;
    for (int i = 0; i < 5; i++) {
        const qn_pipe *p = f->moe_qgu[i];
        if (!p) continue;
        uint32_t s[8];
        for (uint32_t j = 0; j < 8; j++) s[j] = qn_pipe_spec(p, j);
        if (s[6] < H / 4) s[6] = H / 4;
        /* on 32-wide subgroups, unless QNEXT_MOEQ_LAYOUT chose: 8 subgroups of one row (16 rows per group) and one
         * unit per lane in flight, 68 registers instead of 88 (H100 runs 124, 127: 128,8,1,1 +1%, 256,16,1,1 +0.5-1%
         * more; greedy ids identical) */
        if (sg32_layouts(f) && !getenv("QNEXT_MOEQ_LAYOUT"))
            s[0] = 256, s[3] = 16, s[4] = 1, s[5] = 1;
        if ((rc = pipe(f, kg[i], &f->moe_qgu_i8[i], 8, s))) return rc;
    }
    return 0;
}

/* Env QNEXT_IDOT=1: f->qmv_i8, the int8-dot twins of the decode block matvecs (qmatvec, qmatvec_s, qmatvec_norm,
 * qmatvec_norm_s after the env layouts) with their spec 0-3 and PRE, x staged for the model's widest block weight
 * (spec 4; up to 8192 columns, shared memory). None, with a warning, on a device without shaderIntegerDotProduct or
 * a wider weight: the plain kernels stay. QNEXT_IDOT=2: the routed experts' gate_up too (make_i8_gu_pipes). Unset:
 * 2 where the driver accelerates the 4x8-bit packed signed dot (H100 run 23: 180.1 / 181.3 tok/s against 164.0 /
 * 164.6 plain; x is quantized to int8 per 32 values, logits move by ~1-2%), else 0; QNEXT_IDOT=0 keeps the plain
 * kernels everywhere. */
static int make_i8_pipes(qn_fwd *f)
{
    static const enum qn_kernel ki[5] = { QN_K_MATVEC_I8_Q8_0, QN_K_MATVEC_I8_Q4_0, QN_K_MATVEC_I8_Q4_K,
                                          QN_K_MATVEC_I8_Q5_K, QN_K_MATVEC_I8_Q6_K };
    static const enum qn_kernel kn[5] = { QN_K_MATVEC_NORM_I8_Q8_0, QN_K_MATVEC_NORM_I8_Q4_0, QN_K_MATVEC_NORM_I8_Q4_K,
                                          QN_K_MATVEC_NORM_I8_Q5_K, QN_K_MATVEC_NORM_I8_Q6_K };
    const char *e = getenv("QNEXT_IDOT");
    uint32_t cols = model_q_max_cols(f->m);
    if (!e && qn_vk_caps(f->v)->int_dot_accel && (qn_vk_caps(f->v)->features & QN_FEAT_INT_DOT) && cols <= 8192)
        e = "2"; /* the default where the packed int8 dot is accelerated */
    if (!e || (strcmp(e, "1") && strcmp(e, "2")) || !cols) return 0;
    if (!(qn_vk_caps(f->v)->features & QN_FEAT_INT_DOT) || cols > 8192) {
        QN_WARN("QNEXT_IDOT=%s: %s; the plain block matvecs run", e, cols > 8192 ? "a block weight has more than 8192 columns"
                : "the device has no shaderIntegerDotProduct");
        return 0;
    }
    qn_pipe *const *src[4] = { f->qmatvec, f->qmatvec_s, f->qmatvec_norm, f->qmatvec_norm_s };
    int rc;
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 5; i++) {
            const qn_pipe *p = src[k][i];
            if (!p) continue;
            uint32_t pre = qn_pipe_spec(p, 5), s[6] = { qn_pipe_spec(p, 0), qn_pipe_spec(p, 1), qn_pipe_spec(p, 2),
                                                         qn_pipe_spec(p, 3), (cols + 31) / 32 * 8, (pre & 4) | (pre & 3 ? 1 : 0) };
            if (i8_stage4() && s[0] % 4 == 0) s[5] |= 8; /* QNEXT_I8_STAGE4=1: x by 4 invocations per block */
            if ((rc = pipe(f, k < 2 ? ki[i] : kn[i], &f->qmv_i8[k][i], 6, s))) return rc;
        }
    QN_DEBUG("QNEXT_IDOT=%s: int8-dot decode block matvecs, x staged up to %u columns", e, (cols + 31) / 32 * 32);
    return strcmp(e, "2") ? 0 : make_i8_gu_pipes(f);
}

uint32_t qn_fwd_parts_sig(const qn_wt *W)
{
    uint32_t sig = 0xffff;
    if (!W->nsub || W->nsub > 4) return 0;
    for (uint32_t i = 0; i < W->nsub; i++) {
        int qi = W->sub[i].qtype ? qn_fwd_q_index(W->sub[i].qtype) : -1;
        if (W->sub[i].qtype && qi < 0) return 0;
        sig = (sig & ~(15u << (4 * i))) | (uint32_t)(qi + 1) << (4 * i);
    }
    return sig;
}

/* mv_parts (a GGUF mixed-type weight's parts, f32 or any block type, under one RMSNorm in one decode dispatch; H100
 * run 22) where the int8-dot matvecs are off; with them on, never (one int8 matvec_norm dispatch per part: H100 runs
 * 25 / 30 / 32, 183.6 / 184.0 / 184 against mv_parts' 178.0 / 179.5 / 178.1 tok/s); env QNEXT_MV_PARTS=0 never
 * (one matvec_norm dispatch per part): a pipeline per parts signature among the layers'
 * in projections (GDN in_proj, attention qkv), when the device has subgroup arithmetic and H is a multiple of 32 up
 * to 4096 (x staged: XSH = H / 4). Layout route_mixed's (WG 512, f32 rows 8, block rows 16, unrolls 8 / 2: one
 * subgroup per block row, each lane one batch of loads at H = 2048), 256,8,16,16,4 below 512 invocations;
 * QNEXT_MV_PARTS_LAYOUT=WG,FROWS,QROWS,FUNROLL,QUNROLL another. */
static int make_mv_parts_pipes(qn_fwd *f)
{
    const char *e = getenv("QNEXT_MV_PARTS"), *el = getenv("QNEXT_MV_PARTS_LAYOUT");
    const struct qn_caps *caps = qn_vk_caps(f->v);
    uint32_t H = (uint32_t)f->m->c.hidden_size, s[7] = { 512, 8, 16, 8, 2, H / 4, 0 }, n = 0;
    unsigned v[5];
    if ((e && !strcmp(e, "0")) || H % 32 || H > 4096) return 0;
    bool i8on = false; /* the int8-dot norm matvecs are made (make_i8_pipes ran first) */
    for (int i = 0; i < 5; i++) i8on |= f->qmv_i8[2][i] != NULL;
    if (i8on) {
        QN_DEBUG("mv_parts: off under the int8-dot matvecs (one int8 dispatch per in-projection part)");
        return 0;
    }
    if (caps->max_wg_invocations < 512) s[0] = 256, s[3] = 16, s[4] = 4;
    if (el && sscanf(el, "%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4]) == 5 && v[0] >= 32 && v[0] <= 1024 &&
        v[0] % 32 == 0 && v[1] && v[1] <= 64 && v[2] && v[2] <= 64 && v[3] && v[3] <= 32 && v[4] && v[4] <= 16)
        for (int i = 0; i < 5; i++) s[i] = v[i];
    else if (el)
        QN_WARN("QNEXT_MV_PARTS_LAYOUT=%s is not WG,FROWS,QROWS,FUNROLL,QUNROLL (WG a multiple of 32 up to 1024, rows "
                "1..64, unrolls 1..32 / 1..16); using %u,%u,%u,%u,%u", el, s[0], s[1], s[2], s[3], s[4]);
    uint32_t sgmin = caps->subgroup_max > caps->subgroup_size ? caps->subgroup_max : caps->subgroup_size;
    if (s[0] > caps->max_wg_invocations || s[0] < sgmin || (qn_kernel_infos[QN_K_MV_PARTS].features & ~caps->features))
        return 0; /* (a workgroup needs one full subgroup at least: its teams are the full subgroups) */
    int rc;
    for (int l = 0; l < f->m->c.num_layers; l++) {
        const qn_wt *w[2] = { &f->m->L[l].w_in, &f->m->L[l].w_qkv };
        for (int j = 0; j < 2; j++) {
            uint32_t sig = qn_fwd_parts_sig(w[j]), k = 0;
            while (k < n && qn_pipe_spec(f->mv_parts[k], 6) != sig) k++;
            if (!sig || k < n || n == 8) continue;
            s[6] = sig;
            if ((rc = pipe(f, QN_K_MV_PARTS, &f->mv_parts[n++], 7, s))) return rc;
            QN_DEBUG("mv_parts: parts signature %#x (layer %d)", sig, l);
        }
    }
    return 0;
}

/* The matvecs with the RMSNorm prologue (and the router epilogue): the plain matvec's layout with x staged in
 * shared memory (up to 16 KiB, else read through L1); block types for those the model's dense weights use. */
int qn_fwd_make_norm_pipes(qn_fwd *f)
{
    uint32_t wg = qn_pipe_spec(f->matvec[0], 0), rows = qn_pipe_spec(f->matvec[0], 1);
    uint32_t H = (uint32_t)f->m->c.hidden_size, xsh = H % 4 == 0 && H <= 4096 ? H / 4 : 0;
    const char *e = getenv("QNEXT_NORM_XSH"); /* 0: read x through L1 instead (timing experiments) */
    if (e && !strcmp(e, "0")) xsh = 0;
    int rc;
    for (int i = 0; i < 3; i++) {
        MVPIPE(k_matvec_norm[i], &f->matvec_norm[i], wg, rows, 4, 1, xsh);
        if (wg >= 32) MVPIPE(k_matvec_norm_route[i], &f->matvec_norm_route[i], wg, rows, 4, 1, xsh); /* the router needs WG >= 32 */
    }
    for (int i = 0; i < 5; i++) {
        if (!f->qmatvec[i]) continue;
        MVPIPE0(k_qmatvec_norm[i], &f->qmatvec_norm[i]); /* qmatvec's defaults, as f->qmatvec */
        const qn_pipe *q = f->qmatvec[i];    /* the router epilogue: the stage only as large as a row (shared memory) */
        if (qn_pipe_spec(q, 0) >= 32)
            MVPIPE(k_qmatvec_norm_route[i], &f->qmatvec_norm_route[i], qn_pipe_spec(q, 0), qn_pipe_spec(q, 1), qn_pipe_spec(q, 2),
                   qn_pipe_spec(q, 3), xsh);
    }
    if ((rc = make_route_one_pipes(f))) return rc;
    if ((rc = make_mv_small_pipes(f))) return rc;
    if ((rc = make_mv_env_pipes(f))) return rc;
    if ((rc = make_i8_pipes(f))) return rc;
    return make_mv_parts_pipes(f); /* after the int8 twins: off under them */
}
