/* forward.c — the Qwen3-Next forward graph on the GPU (see forward.h). qn_fwd_record() reads top to bottom
 * like the model card (spec §8): embed, then per layer a Gated DeltaNet or gated-attention block and the
 * sparse MoE block, each with its residual add fused into the last kernel, then the final norm, lm_head and
 * the token choice. Buffer shapes are in the comments; T = tokens of the call. */
#include "forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward_gdn.h"
#include "forward_moe.h"
#include "forward_pipes.h"
#include "forward_rec.h"
#include "qn_log.h"
#include "qn_num.h"
#include "qn_time.h"

#define F32 4u

bool qn_fwd_diag_nobar(char cls)
{
    static bool warned; /* read at every recording: prefill-ab's variants set it between recordings */
    const char *e = getenv("QNEXT_DIAG_NO_BARRIER");
    if (!e || !*e) return false;
    if (!warned) QN_WARN("QNEXT_DIAG_NO_BARRIER=%s: decode barriers dropped, results are WRONG (timing only)", e);
    warned = true;
    return !strcmp(e, "all") || (cls != '*' && strchr(e, cls));
}

/* Largest binding of a weight: the device limit, or the (smaller) test override. */
static uint64_t bind_limit(const qn_fwd *f)
{
    uint64_t range = qn_vk_caps(f->v)->max_storage_range;
    return f->tune.max_bind && f->tune.max_bind < range ? f->tune.max_bind : range;
}

/* y[T, W.rows] (+)= x[T, W.cols] · W^T: matvec for small T, tiled matmul otherwise. A weight larger than
 * maxStorageBufferRange is bound in row pieces of a multiple of 256 rows. */
/* Does W hold a layer's router (the W_moe fusion)? Its logits choose the experts: kept in f32 math. */
static bool has_router(const qn_fwd *f, const qn_wt *W)
{
    for (int l = 0; l < f->m->c.num_layers; l++)
        if (W == &f->m->L[l].w_moe) return true;
    return false;
}

/* The prefill matmul for W: on tensor cores (f16 tiles, f32 sums) when the device has them, the rows are
 * whole 16-byte chunks and W is not a router; else the f32-FMA kernel of its dtype / block format. */
static const qn_pipe *mm_pipe(const qn_fwd *f, const qn_wt *W)
{
    bool cm = !has_router(f, W) && (W->qtype || W->cols % 8 == 0);
    if (W->qtype) {
        int i = qn_fwd_q_index(W->qtype);
        if (i < 0) return NULL;
        return cm && f->qmatmul_cm[i] ? f->qmatmul_cm[i] : f->qmatmul[i];
    }
    int d = qn_fwd_dt_index(W->dtype);
    return cm && f->matmul_cm[d] ? f->matmul_cm[d] : f->matmul[d];
}

/* The tensor-core matmul p with its 128 x 128 tile instead of 64 x 64 when a [T, n] output has enough of those
 * tiles to fill the GPU twice over (~256; half the staging work per product), else p itself. */
static const qn_pipe *cm_tile(const qn_fwd *f, const qn_pipe *p, uint32_t T, uint32_t n)
{
    if ((uint64_t)cdiv(T, 128) * cdiv(n, 128) < 256) return p;
    for (int i = 0; i < 5; i++)
        if (p == f->qmatmul_cm[i] && f->qmatmul_cmb[i]) return f->qmatmul_cmb[i];
    for (int i = 0; i < 3; i++)
        if (p == f->matmul_cm[i] && f->matmul_cmb[i]) return f->matmul_cmb[i];
    return p;
}

/* env QNEXT_IDOT=1: the int8-dot twin of block matvec pipeline p (forward.h qmv_i8, same layout) if it has one, else p */
static const qn_pipe *mv_i8(const qn_fwd *f, const qn_pipe *p)
{
    qn_pipe *const *src[4] = { f->qmatvec, f->qmatvec_s, f->qmatvec_norm, f->qmatvec_norm_s };
    for (int k = 0; p && k < 4; k++)
        for (int i = 0; i < 5; i++)
            if (p == src[k][i] && f->qmv_i8[k][i]) return f->qmv_i8[k][i];
    return p;
}

/* The decode matvec pipeline for a weight (or part) of `rows` rows: its small-row layout s (forward_pipes.c's
 * make_mv_small_pipes) when there is one and the default layout p would launch at most f->mv_small_wgs workgroups
 * (or, with f->mv_small_rows set, rows <= f->mv_small_rows), else p. The dispatch geometry follows the pipeline
 * (ceil(rows / spec 1) workgroups). With QNEXT_IDOT=1 a block matvec's int8-dot twin in its place (mv_i8). */
static const qn_pipe *mv_pick(const qn_fwd *f, const qn_pipe *p, const qn_pipe *s, uint32_t rows)
{
    if (!s || !p) return mv_i8(f, p ? p : s);
    if (f->mv_small_rows) return mv_i8(f, rows <= f->mv_small_rows ? s : p);
    return mv_i8(f, cdiv(rows, qn_pipe_spec(p, 1)) <= f->mv_small_wgs ? s : p);
}

/* linear() for a weight in a ggml block format (GGUF models): the quantized matvec with tokens in z for
 * small T, the quantized tiled matmul (qmatmul.comp: weight tiles decoded in shared memory) above
 * tune.small_t, as linear() does for plain dtypes. */
static void qlinear(struct rec *r, const qn_wt *W, const qn_buf *x, const qn_buf *y, uint32_t T, bool acc)
{
    qn_fwd *f = r->f;
    int qi = qn_fwd_q_index(W->qtype);
    const qn_pipe *mm = mm_pipe(f, W);
    uint64_t range = bind_limit(f), rowb = W->bytes / W->rows;
    uint32_t prow = W->bytes > range ? (uint32_t)(range / rowb / 256u * 256u) : W->rows;
    if (prow == 0) prow = 256;
    for (uint32_t r0 = 0; r0 < W->rows; r0 += prow) {
        uint32_t n = W->rows - r0 < prow ? W->rows - r0 : prow;
        uint64_t off = W->off + (uint64_t)r0 * rowb, bytes = (uint64_t)n * rowb;
        struct qn_bind wbind = n == W->rows ? wb(W) : QN_BIND_RANGE(W->buf, off, (bytes + 15) / 16 * 16);
        if (T > f->tune.small_t && mm) { /* Y[T, r0 .. r0 + n) (+)= X · W_piece^T */
            qn_pc_matmul pm = { .M = T, .N = n, .K = W->cols, .ldx = W->cols, .ldy = W->rows, .x_off = 0,
                                .y_off = r0, .flags = acc ? QN_MATMUL_ACCUMULATE : 0 };
            const qn_pipe *mp = cm_tile(f, mm, T, n);
            qn_cmd_dispatch_n(r->c, mp, QN_BINDS(wbind, QN_BIND(x), QN_BIND(y)), &pm, sizeof pm, qn_mm_tiles(mp, T, n));
            continue;
        }
        qn_pc_matvec pc = { .rows = n, .cols = W->cols, .flags = acc ? QN_MATVEC_ACCUMULATE : 0 };
        struct qn_bind yb = n == W->rows ? QN_BIND(y) : QN_BIND_RANGE(y, (uint64_t)r0 * F32, (uint64_t)n * F32);
        const qn_pipe *p = mv_pick(f, f->qmatvec[qi], f->qmatvec_s[qi], n);
        if (T == 1 || n == W->rows) {
            qn_cmd_dispatch_nz(r->c, p, QN_BINDS(wbind, QN_BIND(x), yb), &pc, sizeof pc, cdiv(n, qn_pipe_spec(p, 1)), T);
            continue;
        }
        for (uint32_t t = 0; t < T; t++) { /* y rows of a piece are strided by W->rows: one token at a time */
            struct qn_bind xt = QN_BIND_RANGE(x, (uint64_t)t * W->cols * F32, (uint64_t)W->cols * F32);
            struct qn_bind yt = QN_BIND_RANGE(y, ((uint64_t)t * W->rows + r0) * F32, (uint64_t)n * F32);
            qn_cmd_dispatch_nz(r->c, p, QN_BINDS(wbind, xt, yt), &pc, sizeof pc, cdiv(n, qn_pipe_spec(p, 1)), 1);
        }
    }
}

/* The f16 path (forward.h mm_h) for a prefill projection of T >= f->h_min_t tokens whose weight is in blocks, or for
 * the parts of a mixed-type fusion in `mask` (bit i: part i; block or f32 parts, contiguous rows; a router's f32
 * parts are never taken) when it fits hw in one binding: X converted into hx, the weight (each part at its rows)
 * decoded into hw, then one f16 matmul over those rows. Barriers before (an earlier call's matmul may still read
 * hw / hx) and after the conversions. Returns the mask of parts it recorded (1 for a weight without parts; 0:
 * nothing recorded). */
static uint32_t h_linear(struct rec *r, const qn_wt *W, const qn_buf *x, const qn_buf *y, uint32_t T, bool acc,
                         uint32_t mask)
{
    qn_fwd *f = r->f;
    if (!f->mm_h || T < f->h_min_t || W->cols % 8) return 0;
    const qn_pipe *dec[4];
    struct qn_bind src[4];
    uint32_t row0[4], rows[4], n = 0, first = 0, total = 0, done = 0;
    bool router = has_router(f, W);
    for (uint32_t i = 0; i < (W->nsub ? W->nsub : 1); i++) {
        if (W->nsub && !(mask >> i & 1)) continue;
        uint32_t qt = W->nsub ? W->sub[i].qtype : W->qtype;
        int qi = qt ? qn_fwd_q_index(qt) : -1;
        if (W->nsub) {
            const struct qn_wsub *s = &W->sub[i];
            if ((router && !qt) || (n && s->row0 != first + total)) return 0;
            dec[n] = qi >= 0 ? f->to_f16[qi] : f->to_f16_x;
            src[n] = sub_bind(s);
            row0[n] = s->row0, rows[n] = s->rows;
        } else {
            if (router || !W->qtype || W->bytes > bind_limit(f)) return 0;
            dec[n] = qi >= 0 ? f->to_f16[qi] : NULL;
            src[n] = wb(W), row0[n] = 0, rows[n] = W->rows;
        }
        if (!dec[n]) return 0;
        if (!n) first = row0[n];
        total += rows[n++];
        done |= 1u << i;
    }
    if (!n || (uint64_t)total * W->cols > f->hw_elems) return 0;
    barrier(r);
    if (f->mm_h_x) qn_fwd_to_f16(r, f->to_f16_x, QN_BIND(x), f->hx, T, W->cols, W->cols, 0);
    for (uint32_t i = 0; i < n; i++)
        qn_fwd_to_f16(r, dec[i], src[i], f->hw, rows[i], W->cols, W->cols, (row0[i] - first) * (W->cols / 8));
    barrier(r);
    /* the largest tile of which the call has at least 256 (H100 run 91: 128 x 64 in place of 128 x 128 lost 4% at 512) */
    const qn_pipe *mp = f->mm_h, *const larger[2] = { f->mm_hb, f->mm_hm };
    for (int i = 0; i < 2; i++)
        if (larger[i] && qn_mm_tiles(larger[i], T, total) >= 256) {
            mp = larger[i];
            break;
        }
    qn_pc_matmul pm = { .M = T, .N = total, .K = W->cols, .ldx = W->cols, .ldy = W->rows, .y_off = first,
                        .flags = acc ? QN_MATMUL_ACCUMULATE : 0 };
    qn_cmd_dispatch_n(r->c, mp, QN_BINDS(QN_BIND(f->hw), QN_BIND(f->mm_h_x ? f->hx : x), QN_BIND(y)), &pm, sizeof pm,
                      qn_mm_tiles(mp, T, total));
    return done;
}

/* linear() above one token for a GGUF mixed-type fusion: one prefill matmul per part in its own block type (or
 * f32), into Y columns row0 .. of the fused output. The loader keeps no f32 copy of such a fusion (model_gguf.c;
 * env QNEXT_GGUF_F32_FUSED=1 does, and W->buf is then the fallback). Returns false (nothing recorded) if a part
 * has no matmul kernel. */
static bool sub_matmul(struct rec *r, const qn_wt *W, const qn_buf *x, const qn_buf *y, uint32_t T, bool acc)
{
    qn_fwd *f = r->f;
    for (uint32_t i = 0; i < W->nsub; i++)
        if (W->sub[i].qtype && (qn_fwd_q_index(W->sub[i].qtype) < 0 || !f->qmatmul[qn_fwd_q_index(W->sub[i].qtype)])) return false;
    bool router = has_router(f, W); /* its f32 parts stay on the f32 kernels; its block parts too unless router_cm */
    uint32_t blocks = 0, done = 0; /* a router fusion's block parts (W_moe's shared gate / up) on the f16 path */
    for (uint32_t i = 0; i < W->nsub; i++) blocks |= W->sub[i].qtype ? 1u << i : 0;
    if (router && f->router_cm) done = h_linear(r, W, x, y, T, acc, blocks);
    for (uint32_t i = 0; i < W->nsub; i++) {
        if (done >> i & 1) continue;
        const struct qn_wsub *s = &W->sub[i];
        int qi = s->qtype ? qn_fwd_q_index(s->qtype) : -1;
        const qn_pipe *p = qi < 0 ? (!router && f->matmul_cm[2] && W->cols % 8 == 0 ? f->matmul_cm[2] : f->matmul[2])
                         : (!router || f->router_cm) && f->qmatmul_cm[qi] ? f->qmatmul_cm[qi] : f->qmatmul[qi];
        if (p == f->matmul[2] && f->matmul_sk) p = f->matmul_sk; /* QNEXT_MM_F32_TILE */
        if (p == f->matmul_sk && f->matmul_sl && qn_mm_tiles(f->matmul_sl, T, s->rows) >= f->mm_f32_large_min)
            p = f->matmul_sl; /* QNEXT_MM_F32_TILE_LARGE, for calls with >= 512 of its tiles */
        struct qn_bind wbind = sub_bind(s);
        qn_pc_matmul pm = { .M = T, .N = s->rows, .K = W->cols, .ldx = W->cols, .ldy = W->rows, .x_off = 0,
                            .y_off = s->row0, .flags = acc ? QN_MATMUL_ACCUMULATE : 0 };
        p = cm_tile(f, p, T, s->rows);
        qn_cmd_dispatch_n(r->c, p, QN_BINDS(wbind, QN_BIND(x), QN_BIND(y)), &pm, sizeof pm, qn_mm_tiles(p, T, s->rows));
    }
    return true;
}

static void linear(struct rec *r, const qn_wt *W, const qn_buf *x, const qn_buf *y, uint32_t T, bool acc)
{
    qn_fwd *f = r->f;
    if (T > 1 && h_linear(r, W, x, y, T, acc, ~0u)) return;
    if (W->nsub && T > 1 && (T > f->tune.small_t || !W->buf) && sub_matmul(r, W, x, y, T, acc)) return;
    if (W->nsub && T == 1) { /* GGUF mixed-type fusion: each part in its own block type, y rows row0.. */
        for (uint32_t i = 0; i < W->nsub; i++) {
            const struct qn_wsub *s = &W->sub[i];
            int qi = s->qtype ? qn_fwd_q_index(s->qtype) : -1, di = qn_fwd_dt_index(QN_DT_F32);
            const qn_pipe *p = qi >= 0 ? mv_pick(f, f->qmatvec[qi], f->qmatvec_s[qi], s->rows)
                                       : mv_pick(f, f->matvec[di], f->matvec_s[di], s->rows);
            qn_pc_matvec pc = { .rows = s->rows, .cols = W->cols, .flags = acc ? QN_MATVEC_ACCUMULATE : 0 };
            struct qn_bind wbind = sub_bind(s);
            struct qn_bind yb = QN_BIND_RANGE(y, (uint64_t)s->row0 * F32, (uint64_t)s->rows * F32);
            qn_cmd_dispatch_nz(r->c, p, QN_BINDS(wbind, QN_BIND(x), yb), &pc, sizeof pc,
                               cdiv(s->rows, qn_pipe_spec(p, 1)), 1);
        }
        return;
    }
    if (W->qtype) {
        qlinear(r, W, x, y, T, acc);
        return;
    }
    uint64_t range = bind_limit(f), rowb = (uint64_t)W->cols * (uint64_t)qn_dtype_size(W->dtype);
    uint32_t prow = W->rows;
    if (W->bytes > range) prow = (uint32_t)(range / rowb / 256u * 256u);
    if (prow == 0) prow = 256; /* a single row beyond the range: binding fails with a clear message */
    bool mv = T <= f->tune.small_t && (prow >= W->rows || T == 1);
    for (uint32_t r0 = 0; r0 < W->rows; r0 += prow) {
        uint32_t n = W->rows - r0 < prow ? W->rows - r0 : prow;
        uint64_t off = W->off + (uint64_t)r0 * rowb, bytes = (uint64_t)n * rowb;
        struct qn_bind wbind = n == W->rows ? wb(W) : QN_BIND_RANGE(W->buf, off, (bytes + 15) / 16 * 16);
        if (mv) {
            int di = qn_fwd_dt_index(W->dtype);
            const qn_pipe *p = mv_pick(f, f->matvec[di], f->matvec_s[di], n);
            qn_pc_matvec pc = { .rows = n, .cols = W->cols, .flags = acc ? QN_MATVEC_ACCUMULATE : 0 };
            struct qn_bind yb = n == W->rows ? QN_BIND(y) : QN_BIND_RANGE(y, (uint64_t)r0 * F32, (uint64_t)n * F32);
            qn_cmd_dispatch_nz(r->c, p, QN_BINDS(wbind, QN_BIND(x), yb), &pc, sizeof pc,
                               cdiv(n, qn_pipe_spec(p, 1)), T);
        } else {
            const qn_pipe *p = cm_tile(f, mm_pipe(f, W), T, n);
            qn_pc_matmul pc = { .M = T, .N = n, .K = W->cols, .ldx = W->cols, .ldy = W->rows, .x_off = 0,
                                .y_off = r0, .flags = acc ? QN_MATMUL_ACCUMULATE : 0 };
            qn_cmd_dispatch_n(r->c, p, QN_BINDS(wbind, QN_BIND(x), QN_BIND(y)), &pc, sizeof pc, qn_mm_tiles(p, T, n));
        }
    }
}

/* y[rows, H] = zero-centred RMSNorm of x[rows, H] with weight w */
static void rmsnorm(struct rec *r, const qn_buf *x, const qn_wt *w, const qn_buf *y, uint32_t rows)
{
    qn_pc_rmsnorm pc = { .rows = rows, .dim = (uint32_t)r->cfg->hidden_size, .eps = r->cfg->rms_norm_eps, .w_add = 1 };
    qn_cmd_dispatch_n(r->c, r->f->rmsnorm, QN_BINDS(QN_BIND(x), wb(w), QN_BIND(y)), &pc, sizeof pc, rows);
}

/* ---- RMSNorm folded into the next matvec (decode) --------------------------------------------------- */

/* The matvec_norm pipeline for `rows` rows of weights in ggml block type qtype (0: plain dtype dt); NULL if there
 * is none. */
static const qn_pipe *norm_pipe(const qn_fwd *f, uint32_t qtype, qn_dtype dt, uint32_t rows)
{
    int i = qtype ? qn_fwd_q_index(qtype) : qn_fwd_dt_index(dt);
    if (!qtype) return mv_pick(f, f->matvec_norm[i], f->matvec_norm_s[i], rows);
    return i < 0 ? NULL : mv_pick(f, f->qmatvec_norm[i], f->qmatvec_norm_s[i], rows);
}

/* Can the projection W of T normed rows take the RMSNorm (weight nw, f32 of W's input width) as its matvec's
 * prologue? At small T (linear()'s matvec path): a plain-dtype or block weight bound whole, or at T = 1 the
 * parts of a GGUF mixed-type fusion (one dispatch per part, as linear()). */
static bool norm_fusable(const struct rec *r, const qn_wt *W, const qn_wt *nw, uint32_t T)
{
    const qn_fwd *f = r->f;
    if (f->tune.no_norm_fuse || T > f->tune.small_t || nw->dtype != QN_DT_F32 || W->cols != (uint32_t)r->cfg->hidden_size)
        return false;
    if (W->nsub && T == 1) {
        for (uint32_t i = 0; i < W->nsub; i++)
            if (!norm_pipe(f, W->sub[i].qtype, QN_DT_F32, W->sub[i].rows)) return false;
        return true;
    }
    return W->buf && W->bytes <= bind_limit(f) && norm_pipe(f, W->qtype, W->dtype, W->rows);
}

/* xn[T, H] = RMSNorm(x) with weight nw, for the projection W that reads it next: left pending for
 * norm_linear() to fold into W's matvec when it can (xn_used: kernels after W read xn too, so that matvec
 * writes it), else the rmsnorm kernel (profile region `label`). */
static void norm(struct rec *r, const char *label, const qn_buf *x, const qn_wt *nw, const qn_wt *W, uint32_t T,
                 bool xn_used)
{
    if (norm_fusable(r, W, nw, T)) {
        r->nx = x, r->nw = nw, r->nxn = xn_used;
        return;
    }
    mark(r, label);
    rmsnorm(r, x, nw, r->f->xn, T);
    barrier(r);
}

/* The parts of a GGUF mixed-type W (at most 4: f32 or block types) under the pending norm in ONE mv_parts dispatch
 * at T = 1 (y and, when asked, xn as the per-part dispatches give them). False: not possible here or no mv_parts
 * pipeline (forward_pipes.c make_mv_parts_pipes), nothing recorded. */
static bool norm_parts(struct rec *r, const qn_wt *W, const qn_buf *y)
{
    uint32_t sig = qn_fwd_parts_sig(W), k = 0, groups = 0, row0[4] = { 0 }, rows[4] = { 0 };
    while (sig && k < 8 && r->f->mv_parts[k] && qn_pipe_spec(r->f->mv_parts[k], 6) != sig) k++;
    const qn_pipe *p = sig && k < 8 ? r->f->mv_parts[k] : NULL;
    if (!p || r->T != 1 || W->cols % 16 || W->cols > 4 * qn_pipe_spec(p, 5)) return false;
    struct qn_bind b[4];
    for (uint32_t i = 0; i < 4; i++) {
        const struct qn_wsub *s = &W->sub[i < W->nsub ? i : 0];
        b[i] = sub_bind(s);
        if (i >= W->nsub) continue;
        if (s->qtype && W->cols % qn_ggml_type(s->qtype)->blck) return false;
        row0[i] = s->row0, rows[i] = s->rows, groups += cdiv(s->rows, qn_pipe_spec(p, s->qtype ? 2 : 1));
    }
    qn_pc_mv_parts pc = { .rows = W->rows, .cols = W->cols, .flags = r->nxn ? QN_MATVEC_WRITE_XN : 0,
                          .eps = r->cfg->rms_norm_eps, .w_add = 1, .groups = groups, .nparts = W->nsub,
                          .row0_0 = row0[0], .rows_0 = rows[0], .row0_1 = row0[1], .rows_1 = rows[1], .row0_2 = row0[2],
                          .rows_2 = rows[2], .row0_3 = row0[3], .rows_3 = rows[3] };
    qn_cmd_dispatch_n(r->c, p, QN_BINDS(b[0], QN_BIND(r->nx), QN_BIND(y), wb(r->nw), QN_BIND(r->f->xn), b[1], b[2], b[3]),
                      &pc, sizeof pc, groups);
    r->nw = NULL;
    return true;
}

/* y[T, W.rows] = W · xn: with a pending norm one matvec_norm dispatch (per part of a mixed-type fusion)
 * normalises x itself (every workgroup computes the row's sum of squares; workgroup 0 of the first dispatch
 * writes xn when asked), else linear() on x (= xn). */
static void norm_linear(struct rec *r, const qn_wt *W, const qn_buf *x, const qn_buf *y, uint32_t T)
{
    qn_fwd *f = r->f;
    if (!r->nw) {
        linear(r, W, x, y, T, false);
        return;
    }
    if (norm_parts(r, W, y)) return; /* the parts in one dispatch (mv_parts: without the int8-dot matvecs) */
    qn_pc_mv_norm pc = { .rows = W->rows, .cols = W->cols, .flags = r->nxn ? QN_MATVEC_WRITE_XN : 0,
                         .eps = r->cfg->rms_norm_eps, .w_add = 1 };
    if (W->nsub && T == 1) {
        for (uint32_t i = 0; i < W->nsub; i++, pc.flags = 0) {
            const struct qn_wsub *s = &W->sub[i];
            const qn_pipe *p = norm_pipe(f, s->qtype, QN_DT_F32, s->rows);
            pc.rows = s->rows;
            qn_cmd_dispatch_nz(r->c, p, QN_BINDS(sub_bind(s),
                                                 QN_BIND(r->nx), QN_BIND_RANGE(y, (uint64_t)s->row0 * F32, (uint64_t)s->rows * F32),
                                                 wb(r->nw), QN_BIND(f->xn)),
                               &pc, sizeof pc, cdiv(s->rows, qn_pipe_spec(p, 1)), 1);
        }
    } else {
        const qn_pipe *p = norm_pipe(f, W->qtype, W->dtype, W->rows);
        qn_cmd_dispatch_nz(r->c, p, QN_BINDS(wb(W), QN_BIND(r->nx), QN_BIND(y), wb(r->nw), QN_BIND(f->xn)), &pc,
                           sizeof pc, cdiv(W->rows, qn_pipe_spec(p, 1)), T);
    }
    r->nw = NULL;
}

/* The matvec_norm_route pipeline for `rows` rows of block type qtype (0: plain dtype dt); NULL if there is none.
 * The parts of one W_moe may get different layouts: the count (pc.groups) adds each part's own grid. */
static const qn_pipe *route_pipe(const qn_fwd *f, uint32_t qtype, qn_dtype dt, uint32_t rows)
{
    int i = qtype ? qn_fwd_q_index(qtype) : qn_fwd_dt_index(dt);
    if (!qtype) return mv_pick(f, f->matvec_norm_route[i], f->matvec_norm_route_s[i], rows);
    return i < 0 ? NULL : mv_pick(f, f->qmatvec_norm_route[i], f->qmatvec_norm_route_s[i], rows);
}


/* Whether layer l's route -> gate_up boundary of this decode step can be a chain link (no barrier; the gate_up waits
 * for the route's mark): the chain is on, the whole step is in this recording (not streaming segments: the host
 * works between route and experts there), nothing runs between the two (the host tier's id copies and gathers, the
 * streaming guesses), and the experts are GGUF blocks on the per-token kernels with the split down (its scratch
 * holds the chain's words). */
static bool chain_route_ok(const struct rec *r, int l)
{
    const qn_fwd *f = r->f;
    const struct qn_mlayer *L = &f->m->L[l];
    return f->chain_route && r->whole && r->T == 1 && f->dxs && !f->rb_lids && !f->rb_guess && !f->m->host_tier &&
           L->exp_qtype[0] && f->moe_qdnx[qn_fwd_q_index(L->exp_qtype[2])];
}

/* The whole route stage of a GGUF mixed-type W_moe at T = 1 (f32 parts and parts of ONE block type, at most 4) in
 * one route_mixed dispatch: mm, xn and the routing as the per-part dispatches below give them. False: not possible
 * here, or no route_mixed pipeline (env QNEXT_ROUTE_ONE=0: forward_pipes.c makes none), nothing recorded. */
static bool route_one(struct rec *r, const qn_wt *W, const qn_pc_moe *pm)
{
    qn_fwd *f = r->f;
    uint32_t qt = 0;
    if (!W->nsub || W->nsub > 4 || r->T != 1 || W->cols % 16) return false;
    for (uint32_t i = 0; i < W->nsub; i++) {
        if (W->sub[i].qtype && qt && W->sub[i].qtype != qt) return false; /* two block types: the per-part path */
        if (W->sub[i].qtype) qt = W->sub[i].qtype;
    }
    int qi = qt ? qn_fwd_q_index(qt) : 0;      /* f32 parts only: any variant (qmask 0) */
    const qn_pipe *p = qi >= 0 ? f->route_one[qi] : NULL;
    if (!p || W->cols > 4 * qn_pipe_spec(p, 5) || (qt && W->cols % qn_ggml_type(qt)->blck)) return false;
    uint32_t fr = qn_pipe_spec(p, 1), qr = qn_pipe_spec(p, 2), groups = 0, r0[4] = { 0 }, rn[4] = { 0 }, qmask = 0;
    struct qn_bind b[4];
    for (uint32_t i = 0; i < 4; i++) {
        const struct qn_wsub *s = &W->sub[i < W->nsub ? i : 0];
        b[i] = sub_bind(s);
        if (i >= W->nsub) continue;
        r0[i] = s->row0, rn[i] = s->rows, qmask |= s->qtype ? 1u << i : 0;
        groups += cdiv(s->rows, s->qtype ? qr : fr);
    }
    qn_buf *rb16 = pm->layer < (uint32_t)r->cfg->num_layers ? f->st[pm->layer].router_b16 : NULL;
    if (rb16 && !W->sub[0].qtype) b[0] = QN_BIND(rb16); /* QNEXT_ROUTER_BF16W=1: part 0 in bf16 (pc.bmask) */
    qn_pc_route_one pc = { .m_rows = W->rows, .cols = W->cols, .flags = QN_MATVEC_WRITE_XN, .eps = r->cfg->rms_norm_eps,
                           .w_add = 1, .E = pm->E, .K = pm->K, .Is = pm->Is, .act_stride = pm->act_stride,
                           .rflags = (pm->flags & (QN_MOE_NORM_TOPK | QN_MOE_ROUND_BF16)) |
                                     (r->chain_route ? QN_MOE_CHAIN_OUT : 0), .groups = groups,
                           .nparts = W->nsub, .qmask = qmask, .row0_0 = r0[0], .rows_0 = rn[0], .row0_1 = r0[1],
                           .rows_1 = rn[1], .row0_2 = r0[2], .rows_2 = rn[2], .row0_3 = r0[3], .rows_3 = rn[3],
                           .bmask = rb16 && !W->sub[0].qtype ? 1 : 0 };
    qn_cmd_dispatch_n(r->c, p, QN_BINDS(b[0], QN_BIND(r->nx), QN_BIND(f->mm), wb(r->nw), QN_BIND(f->xn), QN_BIND(f->ids),
                                        QN_BIND(f->w), QN_BIND(f->sg), QN_BIND(f->act), QN_BIND(f->rcnt), b[1], b[2],
                                        b[3], qn_fwd_chain_bind(f)),
                      &pc, sizeof pc, groups);
    r->nw = NULL;
    r->chained = r->chain_route;
    return true;
}

/* With a pending norm: mm = W_moe · norm(x) (xn written for the experts) and the router (ids, w, sg, shared act)
 * in one matvec_norm_route dispatch (one per part of a GGUF mixed-type W_moe at T = 1, counting on the same
 * per-token counter), whose last workgroup per token routes it. False: not possible here, or env
 * QNEXT_ROUTE_FOLD=0 (nothing recorded). */
static bool norm_linear_route(struct rec *r, const qn_wt *W, const qn_pc_moe *pm)
{
    qn_fwd *f = r->f;
    bool parts = W->nsub && r->T == 1;
    uint32_t n = parts ? W->nsub : 1, groups = 0;
    if (f->tune.no_route_fold || (!parts && !W->buf)) return false; /* a mixed-type fusion at T > 1: no f32 copy */
    if (!r->nw || !r->nxn || pm->E > QN_MOE_MAX_E || pm->K > QN_MOE_MAX_K || pm->K > pm->E ||
        pm->m_stride != W->rows || W->rows != pm->E + 2 * pm->Is + 1)
        return false;
    if (route_one(r, W, pm)) return true; /* one dispatch for all parts (env QNEXT_ROUTE_ONE=0: the A/B) */
    for (uint32_t i = 0; i < n; i++) {
        const qn_pipe *p = parts ? route_pipe(f, W->sub[i].qtype, QN_DT_F32, W->sub[i].rows)
                                 : route_pipe(f, W->qtype, W->dtype, W->rows);
        if (!p) return false;
        groups += cdiv(parts ? W->sub[i].rows : W->rows, qn_pipe_spec(p, 1));
    }
    qn_pc_mv_route pc = { .rows = W->rows, .cols = W->cols, .flags = QN_MATVEC_WRITE_XN, .eps = r->cfg->rms_norm_eps,
                          .w_add = 1, .E = pm->E, .K = pm->K, .Is = pm->Is, .act_stride = pm->act_stride,
                          .rflags = pm->flags & (QN_MOE_NORM_TOPK | QN_MOE_ROUND_BF16), .row0 = 0,
                          .m_rows = W->rows, .groups = groups };
    for (uint32_t i = 0; i < n; i++, pc.flags = 0) {
        const struct qn_wsub *s = parts ? &W->sub[i] : NULL;
        const qn_pipe *p = s ? route_pipe(f, s->qtype, QN_DT_F32, s->rows) : route_pipe(f, W->qtype, W->dtype, W->rows);
        struct qn_bind wbind = s ? sub_bind(s) : wb(W);
        if (s) pc.row0 = s->row0, pc.rows = s->rows;
        qn_cmd_dispatch_nz(r->c, p, QN_BINDS(wbind, QN_BIND(r->nx), QN_BIND(f->mm), wb(r->nw), QN_BIND(f->xn),
                                             QN_BIND(f->ids), QN_BIND(f->w), QN_BIND(f->sg), QN_BIND(f->act),
                                             QN_BIND(f->rcnt)),
                           &pc, sizeof pc, cdiv(pc.rows, qn_pipe_spec(p, 1)), r->T);
    }
    r->nw = NULL;
    return true;
}

/* Copy the call's residual stream x [T, H] (or another [T, H] buffer) into entry `e` of rb_hidden. */
static void capture(struct rec *r, const qn_buf *src, uint32_t e)
{
    if (!r->call->hidden) return;
    uint64_t n = (uint64_t)r->T * (uint64_t)r->cfg->hidden_size * F32;
    qn_cmd_copy(r->c, src, 0, r->f->rb_hidden, e * n, n);
}

/* ---- embedding ----------------------------------------------------------------------------------- */

/* x[T, H] = embed_tokens[tok[t]], the table bound in pieces when it exceeds the storage-buffer range */
static void embed(struct rec *r)
{
    qn_fwd *f = r->f;
    const qn_wt *E = &f->m->embed;
    uint32_t H = E->cols, wg = qn_pipe_spec(f->embed, 0);
    uint64_t range = bind_limit(f), rowb = E->bytes / E->rows; /* dtype or GGUF block rows */
    uint32_t prow = E->bytes > range ? (uint32_t)(range / rowb / 256u * 256u) : E->rows;
    if (prow == 0) prow = 256;
    for (uint32_t r0 = 0; r0 < E->rows; r0 += prow) {
        uint32_t n = E->rows - r0 < prow ? E->rows - r0 : prow;
        qn_pc_embed pc = { .T = r->T, .H = H, .row0 = r0, .rows = n };
        uint64_t pb = ((uint64_t)n * rowb + 15) / 16 * 16, left = E->buf->size - E->off - r0 * rowb;
        struct qn_bind tb = n == E->rows ? wb(E) : QN_BIND_RANGE(E->buf, E->off + r0 * rowb, pb < left ? pb : left);
        qn_cmd_dispatch_nz(r->c, f->embed, QN_BINDS(tb, QN_BIND(f->tok), QN_BIND(f->x)), &pc, sizeof pc,
                           cdiv(H, wg), r->T);
    }
}

/* ---- Gated DeltaNet (spec §2-§4; the conv, delta rule and gated norm in forward_gdn.c) ------------- */

static void gdn_block(struct rec *r, int l)
{
    qn_fwd *f = r->f;
    const struct qn_mlayer *L = &f->m->L[l];
    mark(r, "linear");                          /* proj[T, P] = [q | k | v | z | b | a] = W_in · xn */
    norm_linear(r, &L->w_in, f->xn, f->proj, r->T);
    barrier(r);
    qn_fwd_gdn(r, l);                           /* o[T, Hv, dv] = gated RMSNorm(delta rule(conv(proj)), z) */
    mark(r, "linear");                          /* x[T, H] += W_out · o */
    linear(r, &L->w_out, f->o, f->x, r->T, true);
    barrier(r);
}

/* ---- gated full attention (spec §6) -------------------------------------------------------------- */

/* A decode token's attention in two dispatches (env QNEXT_ATTN_FOLD=1): attn_decode_prep (q normed + roped in each
 * split workgroup, the new k / v appended by the split that holds the position, then the split pass) and the combine;
 * o[QD] = softmax(q k^T / sqrt(D)) v * sigmoid(gate), the caches updated. */
static void attn_decode_prep(struct rec *r, int l)
{
    qn_fwd *f = r->f;
    const qn_config *c = r->cfg;
    const struct qn_mlayer *L = &f->m->L[l];
    struct qn_fwd_layer_state *st = &f->st[l];
    uint32_t Hq = (uint32_t)c->num_heads, Hkv = (uint32_t)c->num_kv_heads, D = (uint32_t)c->head_dim;
    qn_pc_attn_dprep pq = { .Hq = Hq, .Hkv = Hkv, .D = D, .cap = f->cap, .n_keys = 1, .splits = f->splits,
                            .flags = QN_ATTN_POS_DEVICE, .gate_off = Hq * D, .scale = (float)(1.0 / sqrt((double)D)),
                            .rot = (uint32_t)qn_cfg_rot_dim(c), .eps = c->rms_norm_eps, .attn_factor = f->m->attn_factor };
    qn_pc_attn_decode pd = { .Hq = Hq, .Hkv = Hkv, .D = D, .cap = f->cap, .n_keys = 1, .splits = f->splits,
                             .flags = QN_ATTN_POS_DEVICE, .gate_off = Hq * D, .scale = pq.scale };
    mark(r, "attn.core");
    qn_cmd_dispatch_nz(r->c, f->dec_prep, QN_BINDS(QN_BIND(f->proj), QN_BIND(st->kc), QN_BIND(st->vc), QN_BIND(f->pos),
                                                   QN_BIND(f->part), wb(&L->q_norm), wb(&L->k_norm), wb(&f->m->inv_freq)),
                       &pq, sizeof pq, f->splits, Hkv);
    barrier(r);
    qn_cmd_dispatch_n(r->c, f->comb, QN_BINDS(QN_BIND(f->part), QN_BIND(f->proj), QN_BIND(f->o)), &pd, sizeof pd,
                      (uint64_t)Hq * cdiv(D, qn_pipe_spec(f->comb, 0)));
    barrier(r);
}

/* q[T, Hq, D] normed + roped and k, v appended to the cache (attn_prep), then o[T, QD] = softmax(q k^T / sqrt(D)) v
 * times sigmoid(gate): the split pass + combine (decode) or attn_prefill. */
static void attn_core(struct rec *r, int l)
{
    qn_fwd *f = r->f;
    const qn_config *c = r->cfg;
    const struct qn_mlayer *L = &f->m->L[l];
    struct qn_fwd_layer_state *st = &f->st[l];
    uint32_t T = r->T, Hq = (uint32_t)c->num_heads, Hkv = (uint32_t)c->num_kv_heads, D = (uint32_t)c->head_dim;
    uint32_t QD = Hq * D, P = L->w_qkv.rows; /* P = 2QD + 2KV */
    float scale = (float)(1.0 / sqrt((double)D));

    mark(r, "attn.prep");                       /* q[T, Hq, D] normed + roped; k, v appended to the cache */
    qn_pc_attn_prep pp = { .T = T, .Hq = Hq, .Hkv = Hkv, .D = D, .rot = (uint32_t)qn_cfg_rot_dim(c), .cap = f->cap,
                           .pos0 = 0, .flags = QN_ATTN_POS_DEVICE, .proj_stride = P, .eps = c->rms_norm_eps,
                           .attn_factor = f->m->attn_factor };
    qn_cmd_dispatch_nz(r->c, f->prep, QN_BINDS(QN_BIND(f->proj), wb(&L->q_norm), wb(&L->k_norm),
                                               wb(&f->m->inv_freq), QN_BIND(f->pos), QN_BIND(f->q),
                                               QN_BIND(st->kc), QN_BIND(st->vc)),
                       &pp, sizeof pp, Hq + 2 * Hkv, T);
    barrier(r);
    mark(r, "attn.core");                       /* o[T, QD] = softmax(q k^T / sqrt(D)) v * sigmoid(gate) */
    if (T == 1) {
        qn_pc_attn_decode pd = { .Hq = Hq, .Hkv = Hkv, .D = D, .cap = f->cap, .n_keys = 1, .splits = f->splits,
                                 .flags = QN_ATTN_POS_DEVICE, .gate_off = QD, .scale = scale };
        qn_cmd_dispatch_nz(r->c, f->dec, QN_BINDS(QN_BIND(f->q), QN_BIND(st->kc), QN_BIND(st->vc), QN_BIND(f->pos),
                                                  QN_BIND(f->part)),
                           &pd, sizeof pd, f->splits, Hkv);
        barrier(r);
        qn_cmd_dispatch_n(r->c, f->comb, QN_BINDS(QN_BIND(f->part), QN_BIND(f->proj), QN_BIND(f->o)), &pd, sizeof pd,
                          (uint64_t)Hq * cdiv(D, qn_pipe_spec(f->comb, 0)));
    } else {
        qn_pc_attn_prefill pf = { .T = T, .Hq = Hq, .Hkv = Hkv, .D = D, .cap = f->cap, .pos0 = 0,
                                  .flags = QN_ATTN_POS_DEVICE, .proj_stride = P, .gate_off = QD, .scale = scale };
        /* QNEXT_ATTN_CM: flash attention on tensor cores, 64 (token, head) rows per workgroup; else attn_prefill */
        qn_pipe *pa = f->pre_cm ? f->pre_cm : f->pre;
        uint32_t rows = f->pre_cm ? 64 : qn_pipe_spec(f->pre, 2);
        qn_cmd_dispatch_nz(r->c, pa, QN_BINDS(QN_BIND(f->q), QN_BIND(st->kc), QN_BIND(st->vc), QN_BIND(f->proj),
                                              QN_BIND(f->pos), QN_BIND(f->o)),
                           &pf, sizeof pf, cdiv((uint64_t)T * (Hq / Hkv), rows), Hkv);
    }
    barrier(r);
}

static void attn_block(struct rec *r, int l)
{
    qn_fwd *f = r->f;
    const struct qn_mlayer *L = &f->m->L[l];
    uint32_t T = r->T;

    mark(r, "linear");                          /* proj[T, P] = [query | gate | k | v] = W_qkv · xn */
    norm_linear(r, &L->w_qkv, f->xn, f->proj, T);
    barrier(r);
    if (T == 1 && f->dec_prep) attn_decode_prep(r, l); /* QNEXT_ATTN_FOLD: attn_prep inside the split pass */
    else attn_core(r, l);
    mark(r, "linear");                          /* x[T, H] += W_o · o */
    linear(r, &L->w_o, f->o, f->x, T, true);
    barrier(r);
}

/* ---- sparse MoE (spec §7) ------------------------------------------------------------------------ */

static qn_pc_moe moe_pc(const struct rec *r, int l)
{
    const qn_fwd *f = r->f;
    const qn_config *c = r->cfg;
    const qn_model *m = f->m;
    uint32_t T = r->T, E = (uint32_t)c->num_experts, K = (uint32_t)c->top_k;
    return (qn_pc_moe){ .T = T, .H = (uint32_t)c->hidden_size, .I = (uint32_t)c->moe_inter,
                        .Is = (uint32_t)c->shared_inter, .E = E, .K = K, .layer = (uint32_t)l, .n_slots = m->n_slots,
                        .slots_per_pool = m->slots_per_pool, .slot_bytes = (uint32_t)m->slot_bytes,
                        .act_stride = f->act_stride, .m_stride = m->L[l].w_moe.rows,
                        .flags = (c->norm_topk_prob ? QN_MOE_NORM_TOPK : 0) |
                                 (f->tune.router_bf16 ? QN_MOE_ROUND_BF16 : 0),
                        .tile_t = f->tile_t, .max_tiles = QN_MOE_MAX_TILES(T, E, K, f->tile_t), .tile_groups = 0 };
}

/* Segment 1: mm[T, E + 2Is + 1] = W_moe · xn; router -> ids[T, K], w[T, K], sg[T], act[T, K, :] (shared). */
static void moe_route(struct rec *r, int l, const qn_pc_moe *pc)
{
    qn_fwd *f = r->f;
    mark(r, "linear");
    r->chain_route = chain_route_ok(r, l);
    r->chained = false;
    if (!norm_linear_route(r, &f->m->L[l].w_moe, pc)) { /* decode: matvec + router in one dispatch */
        norm_linear(r, &f->m->L[l].w_moe, f->xn, f->mm, r->T);
        barrier(r);
        mark(r, "moe.route");
        qn_cmd_dispatch_n(r->c, f->router, QN_BINDS(QN_BIND(f->mm), QN_BIND(f->ids), QN_BIND(f->w), QN_BIND(f->sg),
                                                    QN_BIND(f->act)),
                          pc, sizeof *pc, r->T);
    }
    r->chain_route = false;
    if (!r->chained) barrier_k(r, 'r'); /* chained: the gate_up waits for the route's mark instead */
    if (f->rb_lids) /* host tier's VRAM cache: layer l's ids -> rb_lids [L, tmax, K] for admission after the call */
        qn_cmd_copy(r->c, f->ids, 0, f->rb_lids, (uint64_t)l * (f->rb_lids->size / (uint64_t)r->cfg->num_layers),
                    (uint64_t)r->T * (uint64_t)r->cfg->top_k * 4u);
}

/* ---- the head: final norm, lm_head, token choice -------------------------------------------------- */

static void argmax(struct rec *r)
{
    qn_fwd *f = r->f;
    uint32_t V = f->m->lm_head.rows, per = 2048, ng = cdiv(V, per);
    qn_pc_argmax pc = { .n = V, .per_group = per, .ngroups = ng, .out_index = 0 };
    qn_cmd_dispatch_n(r->c, f->argmax[0], QN_BINDS(QN_BIND(f->logits), QN_BIND(f->amax_part), QN_BIND(f->rb_tok)),
                      &pc, sizeof pc, ng);
    barrier(r);
    qn_cmd_dispatch_n(r->c, f->argmax[1], QN_BINDS(QN_BIND(f->logits), QN_BIND(f->amax_part), QN_BIND(f->rb_tok)),
                      &pc, sizeof pc, 1);
}

static void topk(struct rec *r)
{
    qn_fwd *f = r->f;
    uint32_t seg = qn_pipe_spec(f->topk, 1), n = f->m->lm_head.rows, k = r->call->k, src = QN_TOPK_SRC_LOGITS, w = 0;
    for (;;) {
        uint32_t ng = cdiv(n, seg);
        qn_pc_topk pc = { .n = n, .k = k, .src = src };
        qn_cmd_dispatch_n(r->c, f->topk, QN_BINDS(QN_BIND(f->logits), QN_BIND(f->cand[1 - w]), QN_BIND(f->cand[w])),
                          &pc, sizeof pc, ng);
        barrier(r);
        if (ng == 1) break;
        n = ng * k;
        src = QN_TOPK_SRC_CAND;
        w = 1 - w;
    }
    qn_cmd_copy(r->c, f->cand[w], 0, f->rb_cand, 0, (uint64_t)k * 8u);
}

static void head(struct rec *r)
{
    qn_fwd *f = r->f;
    const qn_model *m = f->m;
    enum qn_fwd_out out = r->call->out;
    uint32_t T = r->T, H = (uint32_t)r->cfg->hidden_size, V = m->lm_head.rows, L = (uint32_t)r->cfg->num_layers;
    uint64_t rowb = (uint64_t)H * F32;
    const qn_buf *hin = f->xn;                  /* the normed row(s) lm_head reads */
    mark(r, "head");
    if (r->call->hidden || out == QN_FWD_LOGITS_ALL) {
        rmsnorm(r, f->x, &m->norm, f->xn, T);   /* xn[T, H] = norm(x) */
        barrier(r);
        capture(r, f->xn, L);
        if (out != QN_FWD_LOGITS_ALL && out != QN_FWD_NONE && T > 1) {
            qn_cmd_copy(r->c, f->xn, (T - 1) * rowb, f->xl, 0, rowb);
            barrier(r);
            hin = f->xl;
        }
    } else if (out != QN_FWD_NONE) {            /* only the last token: xn[1, H] = norm(x[T - 1]) */
        const qn_buf *src = f->x;
        if (T > 1) {
            qn_cmd_copy(r->c, f->x, (T - 1) * rowb, f->xl, 0, rowb);
            barrier(r);
            src = f->xl;
        }
        norm(r, "head", src, &m->norm, &m->lm_head, 1, false); /* folded into lm_head's matvec if it can be */
    }
    if (out == QN_FWD_NONE) return;
    uint32_t rows = out == QN_FWD_LOGITS_ALL ? T : 1;
    norm_linear(r, &m->lm_head, hin, f->logits, rows); /* logits[rows, V] = lm_head · xn */
    barrier(r);
    mark(r, "sample");
    if (out == QN_FWD_ARGMAX) argmax(r);
    else if (out == QN_FWD_TOPK) topk(r);
    else qn_cmd_copy(r->c, f->logits, 0, f->rb_logits, 0, (uint64_t)rows * V * F32);
}

/* ---- the model (spec §8) ------------------------------------------------------------------------- */

static int check_call(const qn_fwd *f, const struct qn_fwd_call *call)
{
    if (call->T < 1 || call->T > f->tmax)
        return qn_fail(-EINVAL, "forward: %u tokens in one call (1 .. %u)", call->T, f->tmax);
    if (call->out == QN_FWD_LOGITS_ALL && call->T > f->logit_rows)
        return qn_fail(-EINVAL, "forward: logits buffer holds %u rows, %u asked", f->logit_rows, call->T);
    if (call->out == QN_FWD_TOPK && (call->k < 1 || call->k > f->kmax))
        return qn_fail(-EINVAL, "forward: top-k with k = %u (1 .. %u)", call->k, f->kmax);
    if (call->hidden && !f->rb_hidden) return qn_fail(-EINVAL, "forward: hidden states asked but not allocated");
    return 0;
}

/* Streaming prefetch guess for layer l + 1: its router (the first E rows of its W_moe) applied to layer l's MoE
 * input xn: g_mm[T, E] = W_router(l + 1) · xn, then the router kernel's top-K -> rb_guess[T, K], read by the
 * host with the ROUTE segment's ids (Is = 0: no shared-expert rows; weights and gate go to scratch). */
static void moe_guess(struct rec *r, int l)
{
    qn_fwd *f = r->f;
    if (!f->rb_guess || l + 1 >= r->cfg->num_layers) return;
    const qn_wt *W = &f->m->L[l + 1].w_moe;
    qn_pc_moe pc = moe_pc(r, l + 1);
    qn_wt g = *W;                               /* rows [0, E): the router */
    g.rows = pc.E;
    g.bytes = W->bytes / W->rows * pc.E;
    g.nsub = W->nsub && W->sub[0].row0 == 0 && W->sub[0].rows == pc.E ? 1 : 0;
    pc.Is = 0;
    pc.m_stride = pc.E;
    mark(r, "moe.guess");
    linear(r, &g, f->xn, f->g_mm, r->T, false);
    barrier(r);
    qn_cmd_dispatch_n(r->c, f->router, QN_BINDS(QN_BIND(f->g_mm), QN_BIND(f->rb_guess), QN_BIND(f->g_w),
                                                QN_BIND(f->g_sg), QN_BIND(f->g_sg)),
                      &pc, sizeof pc, r->T);
    barrier(r);
}

/* Segment 1 of layer l: x += mixer(input_layernorm(x)), then xn = post_attention_layernorm(x), the MoE dense
 * product and the router (ids, w, sg readable after it). */
static void layer_route(struct rec *r, int l, const qn_pc_moe *pc)
{
    const struct qn_mlayer *L = &r->f->m->L[l];
    /* xn = input_layernorm(x) (decode: folded into the mixer's input projection) */
    norm(r, "norm", r->f->x, &L->in_norm, L->full ? &L->w_qkv : &L->w_in, r->T, false);
    if (L->full) attn_block(r, l);              /* x += GatedAttention(xn) */
    else gdn_block(r, l);                       /* x += GatedDeltaNet(xn) */
    /* xn = post_attention_layernorm(x) (decode: folded into W_moe's matvec, which writes xn for the experts) */
    norm(r, "norm", r->f->x, &L->post_norm, &L->w_moe, r->T, true);
    moe_route(r, l, pc);                        /* mm = W_moe xn; ids, w, sg, shared act */
    moe_guess(r, l);                            /* streaming: layer l + 1's router on this xn -> rb_guess */
}

/* Segment 2 of layer l: x += routed experts + shared expert. */
static void layer_experts(struct rec *r, int l, const qn_pc_moe *pc)
{
    qn_fwd_moe_experts(r, l, pc);
    if (l + 1 < r->cfg->num_layers) capture(r, r->f->x, (uint32_t)l + 1);
}

int qn_fwd_record_seg(qn_fwd *f, qn_cmd *c, const struct qn_fwd_call *call, enum qn_fwd_seg seg, int layer)
{
    int rc = check_call(f, call);
    if (rc) return rc;
    if ((seg == QN_FWD_SEG_ROUTE || seg == QN_FWD_SEG_EXPERTS) && (layer < 0 || layer >= f->m->c.num_layers))
        return qn_fail(-EINVAL, "forward: layer %d of %d", layer, f->m->c.num_layers);
    struct rec r = { .f = f, .c = c, .call = call, .cfg = &f->m->c, .T = call->T };
    qn_pc_moe pc;
    switch (seg) {
    case QN_FWD_SEG_EMBED:                      /* x[T, H] = embed_tokens[tok] */
        mark(&r, "embed");
        embed(&r);
        barrier(&r);
        capture(&r, f->x, 0);
        break;
    case QN_FWD_SEG_ROUTE: pc = moe_pc(&r, layer); layer_route(&r, layer, &pc); break;
    case QN_FWD_SEG_EXPERTS: pc = moe_pc(&r, layer); layer_experts(&r, layer, &pc); break;
    case QN_FWD_SEG_HEAD: head(&r); break;      /* final norm, lm_head, argmax / top-k / logits */
    }
    if (call->profile) qn_cmd_mark(c, NULL);
    return 0;
}

int qn_fwd_record(qn_fwd *f, qn_cmd *c, const struct qn_fwd_call *call)
{
    const qn_config *cfg = &f->m->c;
    int rc = check_call(f, call);
    if (rc) return rc;
    struct rec r = { .f = f, .c = c, .call = call, .cfg = cfg, .T = call->T, .whole = true };

    mark(&r, "embed");                          /* x[T, H] = embed_tokens[tok] */
    embed(&r);
    barrier(&r);
    capture(&r, f->x, 0);
    for (int l = 0; l < cfg->num_layers; l++) { /* x += mixer(norm(x)); x += MoE(norm(x)) */
        qn_pc_moe pc = moe_pc(&r, l);
        layer_route(&r, l, &pc);
        layer_experts(&r, l, &pc);
    }
    head(&r);                                   /* final norm, lm_head, argmax / top-k / logits */
    if (call->profile) qn_cmd_mark(c, NULL);
    return 0;
}

/* ---- tune defaults and buffers (the pipelines: forward_pipes.c) ------------------------------------- */

void qn_fwd_default_tune(struct qn_fwd_tune *t)
{
    memset(t, 0, sizeof *t);
    t->small_t = 4;
    t->coopmat = QN_FWD_CM_BLOCKS; /* GGUF block weights on tensor cores where the device has them */
}

static int buf(qn_fwd *f, enum qn_mem kind, uint64_t bytes, const char *name, qn_buf **out)
{
    qn_buf_destroy(f->v, out);
    return qn_buf_create(f->v, kind, bytes ? (bytes + 15) / 16 * 16 : 16, name, out);
}

/* Env QNEXT_ROUTER_BF16W=1 (an A/B; default off): each layer's f32 router part of a mixed-type W_moe (its first part,
 * E rows) also as bf16 (round to nearest even) in st[l].router_b16, which route_mixed reads at decode (pc.bmask): half
 * the router's 4 MB per layer at the 80B shapes. Lossless where the router weights are bf16 values (a checkpoint
 * converted from bf16, as Qwen3-Next's), else the logits move by the rounding: the log says how many weights changed.
 * Prefill keeps the f32 part. */
static int alloc_router_b16(qn_fwd *f)
{
    const char *e = getenv("QNEXT_ROUTER_BF16W");
    const qn_model *m = f->m;
    uint64_t E = (uint64_t)m->c.num_experts, n = E * (uint64_t)m->c.hidden_size, changed = 0;
    if (!e || strcmp(e, "1") || !n) return 0;
    float *w = malloc(n * 4);
    uint16_t *b = malloc(n * 2);
    int rc = w && b ? 0 : qn_fail(-ENOMEM, "out of memory (QNEXT_ROUTER_BF16W: %llu weights)", (unsigned long long)n);
    int layers = 0;
    for (int l = 0; !rc && l < m->c.num_layers; l++) {
        const qn_wt *W = &m->L[l].w_moe;
        if (!W->nsub || W->sub[0].qtype || W->sub[0].row0 || W->sub[0].rows != E || W->sub[0].bytes < n * 4) continue;
        rc = qn_buf_read(f->v, W->sub[0].buf, 0, w, n * 4);
        for (uint64_t i = 0; !rc && i < n; i++) {
            b[i] = qn_f32_to_bf16(w[i]);
            changed += qn_bf16_to_f32(b[i]) != w[i];
        }
        if (!rc) rc = buf(f, QN_MEM_DEVICE, n * 2, "router bf16", &f->st[l].router_b16);
        if (!rc) rc = qn_buf_write(f->v, f->st[l].router_b16, 0, b, n * 2);
        layers += !rc;
    }
    if (!rc && layers)
        QN_INFO("QNEXT_ROUTER_BF16W=1: the routers of %d layers as bf16 for decode (%llu of %llu weights rounded)", layers,
                (unsigned long long)changed, (unsigned long long)(n * (uint64_t)layers));
    free(w);
    free(b);
    return rc;
}

/* f->dxs for the split down (moe_qdnx): the decode chain's words (QN_MOE_CHAIN_WORDS), partials for the calls that
 * run the per-token expert kernels (up to qn_fwd_moe_token_t(f) tokens), then one counter per (token, row block) at the end,
 * zeroed once (the last group of a row block sets its counter back to 0). Nothing without moe_qdnx. */
static int alloc_dxs(qn_fwd *f)
{
    uint32_t rows = 0;
    for (int i = 0; i < 5; i++)
        if (f->moe_qdnx[i] && (!rows || qn_pipe_spec(f->moe_qdnx[i], 3) < rows)) rows = qn_pipe_spec(f->moe_qdnx[i], 3);
    if (!rows) return 0;
    uint64_t H = (uint64_t)f->m->c.hidden_size, K = (uint64_t)f->m->c.top_k;
    f->dxs_t = f->tmax < qn_fwd_moe_token_t(f) ? f->tmax : qn_fwd_moe_token_t(f);
    uint64_t n = QN_MOE_CHAIN_WORDS + (uint64_t)f->dxs_t * ((K + 1) * H + cdiv(H, rows));
    int rc = buf(f, QN_MEM_DEVICE, n * 4, "split down partials", &f->dxs);
    return rc ? rc : qn_buf_fill(f->v, f->dxs, 0, f->dxs->size, 0);
}

static int alloc_state(qn_fwd *f)
{
    const qn_config *c = &f->m->c;
    uint64_t kv = (uint64_t)c->num_kv_heads * f->cap * (uint64_t)c->head_dim * F32;
    uint64_t conv = (uint64_t)qn_cfg_conv_dim(c) * (uint64_t)(c->conv_kernel - 1) * F32;
    uint64_t S = (uint64_t)c->lin_v_heads * (uint64_t)c->lin_k_dim * (uint64_t)c->lin_v_dim * F32;
    int rc = 0;
    for (int l = 0; !rc && l < c->num_layers; l++) {
        struct qn_fwd_layer_state *st = &f->st[l];
        if (qn_cfg_is_full(c, l)) {
            rc = buf(f, QN_MEM_DEVICE, kv, "k cache", &st->kc);
            if (!rc) rc = buf(f, QN_MEM_DEVICE, kv, "v cache", &st->vc);
        } else {
            rc = buf(f, QN_MEM_DEVICE, conv, "conv state", &st->conv);
            if (!rc) rc = buf(f, QN_MEM_DEVICE, S, "delta-rule state", &st->S);
        }
    }
    return rc;
}

/* Words per token of the [tmax, ...] activations, one entry per buffer of alloc_acts (which sizes them from these)
 * and summed by qn_fwd_token_bytes. */
enum { AW_TOK, AW_X, AW_XN, AW_PROJ, AW_QKV, AW_O, AW_Q, AW_MM, AW_IDS, AW_W, AW_SG, AW_ACT, AW_LIST, AW_D, AW_N };
static uint32_t act_stride_of(const qn_config *c)
{
    uint64_t I = (uint64_t)(c->moe_inter > c->shared_inter ? c->moe_inter : c->shared_inter);
    return (uint32_t)((I + 3) / 4 * 4);
}

static void act_words(const qn_config *c, uint64_t w[AW_N])
{
    uint64_t H = (uint64_t)c->hidden_size, E = (uint64_t)c->num_experts, K = (uint64_t)c->top_k;
    uint64_t KD = (uint64_t)qn_cfg_key_dim(c), VD = (uint64_t)qn_cfg_value_dim(c), QD = (uint64_t)qn_cfg_q_dim(c);
    uint64_t Pg = 2 * KD + 2 * VD + 2 * (uint64_t)c->lin_v_heads, Pa = 2 * QD + 2 * (uint64_t)qn_cfg_kv_dim(c);
    w[AW_TOK] = 1, w[AW_X] = H, w[AW_XN] = H, w[AW_PROJ] = Pg > Pa ? Pg : Pa, w[AW_QKV] = 2 * KD + VD;
    w[AW_O] = VD > QD ? VD : QD, w[AW_Q] = QD, w[AW_MM] = E + 2 * (uint64_t)c->shared_inter + 1, w[AW_IDS] = K;
    w[AW_W] = K, w[AW_SG] = 1, w[AW_ACT] = (K + 1) * act_stride_of(c), w[AW_LIST] = K + 1, w[AW_D] = (K + 1) * H;
}

static int alloc_acts(qn_fwd *f)
{
    const qn_config *c = &f->m->c;
    uint64_t T = f->tmax, H = (uint64_t)c->hidden_size, E = (uint64_t)c->num_experts, K = (uint64_t)c->top_k;
    uint64_t V = f->m->lm_head.rows, w[AW_N];
    act_words(c, w);
    f->act_stride = act_stride_of(c);
    uint32_t tmin = f->tile_t < qn_moe_small_nts[0] ? f->tile_t : qn_moe_small_nts[0]; /* moe_qsmall's tiles too */
    f->max_tiles = QN_MOE_MAX_TILES((uint32_t)T, (uint32_t)E, (uint32_t)K, tmin);
    f->splits = qn_attn_decode_splits(f->cap);
    int rc = 0;
#define B(kind, bytes, name, out) do { if (!rc) rc = buf(f, (kind), (bytes), (name), (out)); } while (0)
    B(QN_MEM_UPLOAD, 4, "position", &f->pos);
    B(QN_MEM_UPLOAD, T * w[AW_TOK] * 4, "token ids", &f->tok);
    B(QN_MEM_DEVICE, T * w[AW_X] * F32, "x", &f->x);
    B(QN_MEM_DEVICE, T * w[AW_XN] * F32, "xn", &f->xn);
    B(QN_MEM_DEVICE, H * F32, "x last row", &f->xl);
    B(QN_MEM_DEVICE, T * w[AW_PROJ] * F32, "proj", &f->proj);
    B(QN_MEM_DEVICE, T * w[AW_QKV] * F32, "qkv", &f->qkv);
    B(QN_MEM_DEVICE, T * w[AW_O] * F32, "o", &f->o);
    B(QN_MEM_DEVICE, T * w[AW_Q] * F32, "q", &f->q);
    B(QN_MEM_DEVICE, qn_attn_decode_partials_bytes((uint32_t)c->num_heads, (uint32_t)c->head_dim, f->splits),
      "attention partials", &f->part);
    B(QN_MEM_DEVICE, T * w[AW_MM] * F32, "moe dense product", &f->mm);
    B(QN_MEM_DEVICE, T * w[AW_IDS] * 4, "expert ids", &f->ids);
    B(QN_MEM_DEVICE, T * w[AW_W] * F32, "expert weights", &f->w);
    B(QN_MEM_DEVICE, T * w[AW_SG] * F32, "shared gate", &f->sg);
    B(QN_MEM_DEVICE, T * w[AW_ACT] * F32, "expert activations", &f->act);
    B(QN_MEM_DEVICE, T * w[AW_LIST] * 4, "moe list", &f->list);
    B(QN_MEM_DEVICE, (uint64_t)f->max_tiles * 16, "moe tiles", &f->tiles);
    B(QN_MEM_DEVICE, T * w[AW_D] * F32, "expert outputs", &f->d);
    B(QN_MEM_DEVICE, (uint64_t)cdiv(V, 2048) * 8, "argmax partials", &f->amax_part);
    B(QN_MEM_READBACK, 8, "token out", &f->rb_tok);
#undef B
    return rc;
}

/* hx's halves per token: the widest input of a layer projection (hidden, GDN value or attention query width) or the
 * token's K + 1 act rows (h_act_cols) */
static uint64_t h_x_halves(const qn_config *c)
{
    uint64_t H = (uint64_t)c->hidden_size, VD = (uint64_t)qn_cfg_value_dim(c), QD = (uint64_t)qn_cfg_q_dim(c);
    uint64_t w = H > VD ? H > QD ? H : QD : VD > QD ? VD : QD, a = ((uint64_t)c->top_k + 1) * qn_fwd_h_act_cols(c);
    return w > a ? w : a;
}

/* Device bytes per token of tmax (the [tmax, ...] activations of act_words and the router counters; the moe tiles
 * taken at one per tile of 64 pairs): what a prefill chunk costs besides the fixed buffers. */
uint64_t qn_fwd_token_bytes(const qn_model *m)
{
    uint64_t w[AW_N], words = 1, K = (uint64_t)m->c.top_k; /* 1: the router counters (f->rcnt) */
    act_words(&m->c, w);
    for (int i = 0; i < AW_N; i++) words += w[i];
    return words * 4 + (K + 1) * 16 / 64 + 16 + h_x_halves(&m->c) * 2; /* the last: the f16 path's hx */
}

/* The f16 path's scratch (forward.h mm_h): hw for the largest layer projection (~50 MB at the 80B shapes), hx for
 * tmax tokens of h_x_halves (a projection's input or the experts' act rows in f16; counted in qn_fwd_token_bytes) */
static int alloc_h(qn_fwd *f)
{
    const qn_config *c = &f->m->c;
    f->hw_elems = 0;
    for (int l = 0; l < c->num_layers; l++) {
        const struct qn_mlayer *L = &f->m->L[l];
        const qn_wt *w[5] = { &L->w_in, &L->w_out, &L->w_qkv, &L->w_o, &L->shared_down };
        for (int k = 0; k < 5; k++)
            if ((uint64_t)w[k]->rows * w[k]->cols > f->hw_elems) f->hw_elems = (uint64_t)w[k]->rows * w[k]->cols;
    }
    int rc = buf(f, QN_MEM_DEVICE, f->hw_elems * 2, "f16 weight scratch", &f->hw);
    if (!rc) rc = buf(f, QN_MEM_DEVICE, f->mm_h_x ? (uint64_t)f->tmax * h_x_halves(c) * 2 : 16, "f16 input scratch", &f->hx);
    return rc;
}

/* gdn_decode's scratch: Hk + Hv counters, zeroed once (each call leaves them zero), and Hv * dv block sums (at
 * most one per value column) */
static int alloc_gscr(qn_fwd *f)
{
    const qn_config *c = &f->m->c;
    uint64_t n = (uint64_t)c->lin_k_heads + (uint64_t)c->lin_v_heads * (1 + (uint64_t)c->lin_v_dim);
    int rc = buf(f, QN_MEM_DEVICE, (n ? n : 1) * 4, "gdn_decode scratch", &f->gscr);
    return rc ? rc : qn_buf_fill(f->v, f->gscr, 0, f->gscr->size, 0);
}

/* gdn_chunk_wy_inv's scratch: one record (pc_gdn.h) per (chunk, value head) of a segment of wy_seg chunks (fewer when
 * tmax is shorter) */
static uint64_t wy_bytes(const qn_fwd *f)
{
    const qn_config *c = &f->m->c;
    uint64_t dk = (uint64_t)c->lin_k_dim, dv = (uint64_t)c->lin_v_dim, nc = cdiv(f->tmax, 64);
    if (nc > f->wy_seg) nc = f->wy_seg;
    return (2 * 64 * dk + 64 * dv + 68) * (uint64_t)c->lin_v_heads * nc * 4;
}

/* The guess node's buffers (tune.guess_next); the logits' spare words stay 0 (the router reads one past a row
 * as the shared gate, which goes to scratch). */
static int alloc_guess(qn_fwd *f)
{
    uint64_t T = f->tmax, E = (uint64_t)f->m->c.num_experts, K = (uint64_t)f->m->c.top_k;
    int rc = buf(f, QN_MEM_DEVICE, (T * E + 4) * F32, "guess logits", &f->g_mm);
    if (!rc) rc = qn_buf_fill(f->v, f->g_mm, 0, f->g_mm->size, 0);
    if (!rc) rc = buf(f, QN_MEM_DEVICE, T * K * F32, "guess weights", &f->g_w);
    if (!rc) rc = buf(f, QN_MEM_DEVICE, T * F32, "guess gate", &f->g_sg);
    if (!rc) rc = buf(f, QN_MEM_READBACK, T * K * 4, "guessed ids (host)", &f->rb_guess);
    return rc;
}

int qn_fwd_outputs(qn_fwd *f, uint32_t rows, uint32_t k, bool hidden)
{
    const qn_config *c = &f->m->c;
    uint64_t V = f->m->lm_head.rows;
    int changed = 0, rc = 0;
    if (rows > f->logit_rows || !f->logits) {
        if (rows < 1) rows = 1;
        if ((rc = buf(f, QN_MEM_DEVICE, rows * V * F32, "logits", &f->logits)) ||
            (rc = buf(f, QN_MEM_READBACK, rows * V * F32, "logits (host)", &f->rb_logits)))
            return rc;
        f->logit_rows = rows;
        changed = 1;
    }
    if (k > f->kmax) {
        uint64_t n = (uint64_t)cdiv(V, 2048) * k * 8;
        if ((rc = buf(f, QN_MEM_DEVICE, n, "top-k a", &f->cand[0])) || (rc = buf(f, QN_MEM_DEVICE, n, "top-k b", &f->cand[1])) ||
            (rc = buf(f, QN_MEM_READBACK, (uint64_t)k * 8, "top-k (host)", &f->rb_cand)))
            return rc;
        f->kmax = k;
        changed = 1;
    }
    if (hidden && !f->rb_hidden) {
        uint64_t n = (uint64_t)(c->num_layers + 1) * f->tmax * (uint64_t)c->hidden_size * F32;
        if ((rc = buf(f, QN_MEM_READBACK, n, "hidden states (host)", &f->rb_hidden))) return rc;
        changed = 1;
    }
    return changed;
}

/* The forward pass's pipelines, compiled on the pipeline pool's threads and timed; the pipeline cache is saved once
 * they exist (a run killed later keeps them). H100 (580 driver, its shader disk cache off), golden small: 40
 * pipelines in 8.2 s on one thread, 2.1 s on 8, 13-49 ms from the cache. Lavapipe (Mesa 22.3) caches nothing (its
 * cache data is the 32-byte header): 39 pipelines, 1 s quiet, every run. */
static int make_pipes(qn_fwd *f)
{
    struct qn_pipe_stats a, b;
    qn_pipe_stats(f->v, &a);
    if (a.cache_on && !a.cache_bytes)
        QN_WARN("pipeline cache empty: compiling the forward pass's pipelines (first run on this device and driver; "
                "cached afterwards)");
    double t0 = qn_now_s();
    int rc = qn_pipe_async_begin(f->v);
    if (!rc) rc = qn_fwd_make_pipes(f);
    if (!rc) rc = qn_fwd_make_norm_pipes(f);
    int rc2 = qn_pipe_async_end(f->v); /* the first error wins */
    if (!rc) rc = rc2;
    if (!rc) qn_pipe_cache_save(f->v);
    qn_pipe_stats(f->v, &b); /* the line comes after the save (tests/model/pcache_check.py waits for it) */
    QN_INFO("pipelines: %u created in %.0f ms (%.0f ms of compiles; %u cache hits)", b.made - a.made,
            (qn_now_s() - t0) * 1e3, b.ms - a.ms, b.hits - a.hits);
    return rc;
}

/* The decode MoE chain (common/moe_chain.glsl) and its two links from env QNEXT_MOE_CHAIN: 0 off, 1 on any device,
 * 2 / 3 on any device with the gate_up -> down / the route -> gate_up link only (A/Bs); unset: on where it was
 * measured (NVIDIA: H100 runs 56-59). It relies on the GPU launching a dispatch's workgroups only after every
 * workgroup of the dispatches before it, which Vulkan does not promise. (On lavapipe, which runs dispatches one after
 * another, its waits are always met: the tests turn it on there with QNEXT_MOE_CHAIN=1.) */
static void chain_env(qn_fwd *f)
{
    const char *e = getenv("QNEXT_MOE_CHAIN");
    f->chain = e && *e ? strcmp(e, "0") != 0 : qn_vk_caps(f->v)->vendor_id == 0x10de;
    f->chain_route = f->chain && !(e && !strcmp(e, "2"));
    f->chain_down = f->chain && !(e && !strcmp(e, "3"));
}

int qn_fwd_init(qn_fwd *f, const qn_model *m, const struct qn_fwd_tune *tune, uint32_t tmax, uint32_t cap)
{
    memset(f, 0, sizeof *f);
    f->m = m;
    f->v = m->v;
    if (tune) f->tune = *tune;
    else qn_fwd_default_tune(&f->tune);
    if (!f->tune.small_t) f->tune.small_t = 1;
    const char *nf = getenv("QNEXT_NORM_FUSE");
    if (nf && !strcmp(nf, "0")) f->tune.no_norm_fuse = true;
    const char *rf = getenv("QNEXT_ROUTE_FOLD"); /* read once per session, not per recorded layer */
    if (rf && !strcmp(rf, "0")) f->tune.no_route_fold = true;
    chain_env(f);
    if (f->chain) {
        qn_vk_expect_chain_hazards(); /* sync validation cannot see its shader-side waits (device.c) */
        QN_INFO("decode MoE chain on: route -> gate_up -> split down with no barriers between (QNEXT_MOE_CHAIN=0: off)");
    }
    f->tmax = tmax;
    f->cap = cap;
    f->st = calloc((size_t)m->c.num_layers, sizeof *f->st);
    if (!f->st) return qn_fail(-ENOMEM, "out of memory");
    int rc = make_pipes(f);
    if (!rc) rc = alloc_state(f);
    if (!rc) rc = alloc_acts(f);
    if (!rc) rc = buf(f, QN_MEM_DEVICE, (uint64_t)tmax * 4, "router counters", &f->rcnt);
    if (!rc) rc = qn_buf_fill(f->v, f->rcnt, 0, f->rcnt->size, 0);
    if (!rc) rc = alloc_dxs(f);
    if (!rc) rc = alloc_router_b16(f);
    if (!rc && f->gdn_dec) rc = alloc_gscr(f);
    if (!rc && f->wy_a) rc = buf(f, QN_MEM_DEVICE, wy_bytes(f), "gdn_chunk_wy_inv records", &f->wy_scr);
    if (!rc && f->mm_h) rc = alloc_h(f);
    if (!rc) rc = qn_fwd_outputs(f, 1, 0, false) < 0 ? -1 : 0;
    if (!rc && f->tune.guess_next) rc = alloc_guess(f);
    if (!rc) rc = qn_fwd_reset(f);
    return rc;
}

void qn_fwd_free(qn_fwd *f)
{
    if (!f->v) return;
    qn_buf **all[] = { &f->pos, &f->tok, &f->x, &f->xn, &f->xl, &f->proj, &f->qkv, &f->o, &f->q, &f->part, &f->mm,
                       &f->ids, &f->w, &f->sg, &f->act, &f->list, &f->tiles, &f->d, &f->logits, &f->amax_part,
                       &f->cand[0], &f->cand[1], &f->rb_logits, &f->rb_tok, &f->rb_cand, &f->rb_hidden,
                       &f->rb_guess, &f->g_mm, &f->g_w, &f->g_sg };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) qn_buf_destroy(f->v, all[i]);
    qn_buf_destroy(f->v, &f->rcnt);
    qn_buf_destroy(f->v, &f->gscr);
    qn_buf_destroy(f->v, &f->wy_scr);
    qn_buf_destroy(f->v, &f->dxs);
    qn_buf_destroy(f->v, &f->hw);
    qn_buf_destroy(f->v, &f->hx);
    for (int l = 0; f->st && l < f->m->c.num_layers; l++) {
        qn_buf_destroy(f->v, &f->st[l].kc);
        qn_buf_destroy(f->v, &f->st[l].vc);
        qn_buf_destroy(f->v, &f->st[l].conv);
        qn_buf_destroy(f->v, &f->st[l].S);
        qn_buf_destroy(f->v, &f->st[l].router_b16);
    }
    free(f->st);
    memset(f, 0, sizeof *f);
}

int qn_fwd_reset(qn_fwd *f)
{
    int rc = 0;
    for (int l = 0; !rc && l < f->m->c.num_layers; l++) {
        struct qn_fwd_layer_state *st = &f->st[l];
        if (st->conv) rc = qn_buf_fill(f->v, st->conv, 0, st->conv->size, 0);
        if (!rc && st->S) rc = qn_buf_fill(f->v, st->S, 0, st->S->size, 0);
    }
    return rc;
}

int qn_fwd_grow(qn_fwd *f, uint32_t cap, uint32_t keep)
{
    const qn_config *c = &f->m->c;
    if (cap <= f->cap) return 0;
    uint64_t D = (uint64_t)c->head_dim * F32, nb = (uint64_t)c->num_kv_heads * cap * D;
    qn_cmd *cmd = NULL;
    int rc = qn_cmd_create(f->v, &cmd);
    for (int l = 0; !rc && l < c->num_layers; l++) {
        if (!qn_cfg_is_full(c, l)) continue;
        qn_buf **old[2] = { &f->st[l].kc, &f->st[l].vc }, *nw[2] = { NULL, NULL };
        for (int k = 0; !rc && k < 2; k++) rc = qn_buf_create(f->v, QN_MEM_DEVICE, nb, k ? "v cache" : "k cache", &nw[k]);
        if (!rc && keep) {
            rc = qn_cmd_begin(cmd);
            for (int k = 0; !rc && k < 2; k++)
                for (int h = 0; h < c->num_kv_heads; h++)
                    qn_cmd_copy(cmd, *old[k], (uint64_t)h * f->cap * D, nw[k], (uint64_t)h * cap * D, keep * D);
            if (!rc) rc = qn_cmd_end(cmd);
            if (!rc) rc = qn_cmd_run(cmd);
        }
        for (int k = 0; k < 2; k++) {
            if (rc) { qn_buf_destroy(f->v, &nw[k]); continue; }
            qn_buf_destroy(f->v, old[k]);
            *old[k] = nw[k];
        }
    }
    qn_cmd_destroy(&cmd);
    if (rc) return rc;
    f->cap = cap;
    uint32_t splits = qn_attn_decode_splits(cap);
    if (splits != f->splits) {
        f->splits = splits;
        rc = buf(f, QN_MEM_DEVICE, qn_attn_decode_partials_bytes((uint32_t)c->num_heads, (uint32_t)c->head_dim, splits),
                 "attention partials", &f->part);
    }
    return rc;
}
