// mv_sched.glsl — work split and reduction shared by the matvec kernels (matvec.comp, qmatvec.comp).
//
// A workgroup owns QN_ROWS consecutive rows [r0, r0 + QN_ROWS) of y (dispatch: ceil(rows / QN_ROWS) groups).
// Its rows are cut into "sets" of QN_SGROWS rows that one team computes together (each W chunk of the set's
// rows is multiplied with the same x chunk, loaded once). A team is one subgroup (QN_SUBGROUP) or the whole
// workgroup (no subgroups, or a workgroup smaller than one subgroup):
//   - sets >= teams: team s takes sets s, s + P, ... (P teams) and reduces each row with subgroupAdd alone:
//     no barrier and no shared memory at all after the loads;
//   - sets <  teams: each set is split over np = P / sets teams ("parts", interleaved chunk ranges); each
//     team reduces with subgroupAdd, writes one partial per row to shared memory, ONE barrier, then
//     invocation i < QN_ROWS adds the np partials of row r0 + i in a fixed order.
// Teams are the full subgroups only (gl_SubgroupID < QN_WG / gl_SubgroupSize): a trailing partial subgroup,
// if QN_WG is not a multiple of the subgroup size, stays idle, so no lane numbering of partial subgroups
// is assumed. Without subgroups, rows are reduced with qn_wg_sum (reduce.glsl), one barrier tree per row.
//
// With QN_NORM (RMSNorm prologue, mv_norm.glsl) x is read and staged as x * (w + w_add) (qn_norm4), the
// sum of squares of x is taken alongside (its partials behind the same barrier as the staging) and every
// dot product is scaled by qn_nr = rsqrt(mean(x^2) + eps) at the store.
//
// x staging: with QN_XSH > 0 and cols <= 4 * QN_XSH (cols a multiple of 4), the workgroup first copies x
// of its token into shared memory (qn_xs, behind one barrier; in the includer's own order when it defines
// QN_MV_STAGE(xb) before including this file) and qn_xsh is true; else x is read from the buffer
// (through L1). Which is faster is a measurement (qnext selftest --bench --sweep).
//
// Weight prefetch (spec constant 5 QN_PRE, default 1): before the norm and the x staging, each team calls
//     void qn_mv_prefetch(uint rbase, uint lane, uint lanes, uint part, uint nparts);
// (the includer's) with the arguments of its first qn_mv_partial call; the includer loads the first batch of
// that call's weights into registers and its first qn_mv_partial uses them, so the DRAM latency of the
// weights overlaps the x reads, the sum of squares and the staging barrier (a decode matvec whose lanes have
// one batch each then waits for memory once). QN_PRE 0: no prefetch (for an A/B). QN_PRE bit 4 (QN_NORM, subgroups, x
// staged): the sum of squares is taken from the x values the staging reads (one pass over x and the norm weight
// instead of two, so one L2 latency before the staging barrier instead of two in a row); then QN_PRE & 3 is the
// prefetch mode above.
//
// The includer enables GL_EXT_control_flow_attributes ([[unroll]]), declares the specialization constants
// QN_WG, QN_ROWS, QN_SGROWS, QN_XSH, the push block `pc` (qn_pc_matvec) and its W binding (0), includes
// this file (bindings 1 x and 2 y are declared here), then defines
//     void qn_mv_partial(uint rbase, uint lane, uint lanes, uint part, uint nparts, uint xb);
// which sets qn_acc[j] (j < QN_SGROWS) to this invocation's share of the dot products of rows rbase + j:
// the team's `lanes` invocations (index `lane`) take chunk/unit indices part * lanes + lane +
// i * nparts * lanes; x of the token starts at element xb. Rows past pc.rows must be clamped by it
// (never read past W); their results are dropped here.
#ifndef QN_MV_SCHED_GLSL
#define QN_MV_SCHED_GLSL

layout(binding = 1, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1, std430) readonly buffer X1 { float x1[]; };
#ifndef QN_Y_QUAL
#define QN_Y_QUAL // the includer may make y coherent (matvec.comp with QN_ROUTE reads other workgroups' rows)
#endif
layout(binding = 2, std430) QN_Y_QUAL buffer Y { float y[]; };
#ifndef QN_MV_YB
#define QN_MV_YB(z) ((z) * pc.rows) // first element of token z's rows in y (includer may offset it)
#endif

layout(constant_id = 5) const uint QN_PRE = 1; // weight prefetch before the x staging (see above)
#if defined(QN_NORM) && defined(QN_SUBGROUP)
const bool QN_MV_SSFUSE = (QN_PRE & 4u) != 0u; // the sum of squares taken while staging (see above)
#else
const bool QN_MV_SSFUSE = false;
#endif
float qn_mv_ss;      // QN_MV_SSFUSE: this invocation's sum of squares of the x values it staged
bool qn_mv_ss_on;    // qn_norm4 adds to qn_mv_ss (only during a fused staging)

float qn_acc[QN_SGROWS];
shared vec4 qn_xs[QN_XSH + 1u];
bool qn_xsh;
bool qn_pre_ok; // the includer's prefetched batch is waiting for the first qn_mv_partial call

void qn_mv_partial(uint rbase, uint lane, uint lanes, uint part, uint nparts, uint xb);
void qn_mv_prefetch(uint rbase, uint lane, uint lanes, uint part, uint nparts);
#ifdef QN_NORM
float qn_nr;                     // mv_norm.glsl: the token's rsqrt(mean(x^2) + eps), applied in qn_mv_store
vec4 qn_norm4(uint xb4, uint i); // x4[xb4 + i] * (w + w_add): x as the dot products read it
void qn_mv_norm_ss(uint xb);     // the sum-of-squares partials, before the staging barrier
void qn_mv_norm_finish(uint xb); // qn_nr from them, after it; xn for later kernels
#define QN_MV_XIN(xb4, i) qn_norm4(xb4, i)
#else
#define QN_MV_XIN(xb4, i) x4[(xb4) + (i)]
#endif

void qn_mv_stage_x(uint xb)
{
    if (!qn_xsh) return; // uniform (set in main)
    qn_mv_ss = 0.0, qn_mv_ss_on = QN_MV_SSFUSE;
#ifdef QN_MV_STAGE
    QN_MV_STAGE(xb); // the includer's own staged layout (qmatvec.comp: swizzled slots + run sums)
#else
    for (uint i = gl_LocalInvocationIndex; i < pc.cols / 4u; i += QN_WG) qn_xs[i] = QN_MV_XIN(xb / 4u, i);
#endif
    qn_mv_ss_on = false;
#ifdef QN_SUBGROUP
    if (QN_MV_SSFUSE) { // every x vec4 was staged by exactly one invocation: the partials cover x once
        float v = subgroupAdd(qn_mv_ss);
        if (subgroupElect()) qn_red[gl_SubgroupID] = v; // read after the barrier (qn_mv_norm_finish)
    }
#endif
    barrier();
}

const uint QN_MV_SETS = (QN_ROWS + QN_SGROWS - 1u) / QN_SGROWS;
#ifdef QN_SUBGROUP
// partial sums of split sets: one per (team, row of its set); teams <= QN_WG / 4 + 1 (see main)
const uint QN_MV_TEAMS_MAX = QN_WG / 4u + 1u;
shared float qn_mv_part[QN_MV_TEAMS_MAX * QN_SGROWS];
#endif

void qn_mv_store(uint row, uint yb, float v)
{
    uint i = yb + row;
#ifdef QN_NORM
    v *= qn_nr;
#endif
    y[i] = (pc.flags & QN_MATVEC_ACCUMULATE) != 0u ? y[i] + v : v;
}

#ifdef QN_MV_EPILOGUE
void qn_mv_main() // the includer's main() calls it, then runs its epilogue (matvec.comp with QN_ROUTE)
#else
void main()
#endif
{
    uint lid = gl_LocalInvocationIndex;
    uint r0 = qn_group_id() * QN_ROWS;
    if (r0 >= pc.rows) return; // uniform over the workgroup
    uint xb = gl_WorkGroupID.z * pc.cols, yb = QN_MV_YB(gl_WorkGroupID.z); // token t = z
    uint team = 0u, lane = lid, lanes = QN_WG, P = 1u; // without subgroups: one team, the workgroup
#ifdef QN_SUBGROUP
    uint nfull = QN_WG / gl_SubgroupSize;
    if (nfull > 0u) {
        team = gl_SubgroupID;
        lane = gl_SubgroupInvocationID;
        lanes = gl_SubgroupSize;
        P = min(nfull, QN_MV_TEAMS_MAX);
    }
#endif
    qn_pre_ok = false, qn_mv_ss_on = false;
    qn_xsh = QN_XSH > 0u && pc.cols <= QN_XSH * 4u && (pc.cols & 3u) == 0u;
    if ((QN_PRE & 3u) != 0u) { // the team's first set (below: set `team`, or part team / sets of set team % sets)
        uint np1 = QN_MV_SETS >= P ? 1u : P / QN_MV_SETS;
        if (team < P && team < np1 * QN_MV_SETS)
            qn_mv_prefetch(r0 + (team % QN_MV_SETS) * QN_SGROWS, lane, lanes, team / QN_MV_SETS, np1);
    }
#ifdef QN_NORM
    if (!(QN_MV_SSFUSE && qn_xsh)) qn_mv_norm_ss(xb); // uniform
#endif
    qn_mv_stage_x(xb);
#ifdef QN_NORM
    qn_mv_norm_finish(xb);
#endif
#ifdef QN_SUBGROUP
    if (QN_MV_SETS >= P) {
        for (uint s = team; s < QN_MV_SETS && team < P; s += P) {
            qn_mv_partial(r0 + s * QN_SGROWS, lane, lanes, 0u, 1u, xb);
            [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {
                float v = subgroupAdd(qn_acc[j]);
                uint rr = s * QN_SGROWS + j;
                if (subgroupElect() && rr < QN_ROWS && r0 + rr < pc.rows) qn_mv_store(r0 + rr, yb, v);
            }
        }
        return;
    }
    uint np = P / QN_MV_SETS;
    if (team < np * QN_MV_SETS) {
        qn_mv_partial(r0 + (team % QN_MV_SETS) * QN_SGROWS, lane, lanes, team / QN_MV_SETS, np, xb);
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {
            float v = subgroupAdd(qn_acc[j]);
            if (subgroupElect()) qn_mv_part[team * QN_SGROWS + j] = v;
        }
    }
    barrier();
    if (lid < QN_ROWS && r0 + lid < pc.rows) {
        uint s = lid / QN_SGROWS, j = lid % QN_SGROWS;
        float t = 0.0;
        for (uint p = 0u; p < np; p++) t += qn_mv_part[(p * QN_MV_SETS + s) * QN_SGROWS + j];
        qn_mv_store(r0 + lid, yb, t);
    }
#else
    for (uint s = 0u; s < QN_MV_SETS; s++) {
        qn_mv_partial(r0 + s * QN_SGROWS, lid, QN_WG, 0u, 1u, xb);
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {
            float v = qn_wg_sum(qn_acc[j]);
            uint rr = s * QN_SGROWS + j;
            if (lid == 0u && rr < QN_ROWS && r0 + rr < pc.rows) qn_mv_store(r0 + rr, yb, v);
        }
    }
#endif
}

#endif
