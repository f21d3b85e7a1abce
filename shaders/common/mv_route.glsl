// mv_route.glsl — the MoE router as the epilogue of the W_moe matvec (matvec.comp / qmatvec.comp with QN_NORM
// and QN_ROUTE, and route_mixed.comp): after its rows of m each workgroup counts itself on the token's counter
// (fence, barrier, one integer atomicAdd: the classic last-block pattern; the router's sums keep their fixed
// order), and the last of pc.groups workgroups routes the token (moe_route.glsl) and sets the counter back to
// zero. The count may span several dispatches that write parts of the same m (a GGUF mixed-type W_moe: each
// part in its own block type, rows row0 .. row0 + rows of m, pc.groups their workgroups together); they need
// no barrier between them.
//
// Bindings: 5 ids int32 [T, K], 6 w f32 [T, K], 7 sg f32 [T], 8 act f32 [T, K + 1, act_stride],
//           9 cnt uint32 [T] (zero before the first dispatch of m; zero again after the last)
// The includer declares the push block `pc` with members m_rows, groups, E, K, Is, act_stride, rflags and
// m as the coherent float array y[] with token t's row at y[t * pc.m_rows] (the router reads the rows the
// other workgroups wrote). The matvec kernels (matvec.comp / qmatvec.comp: qn_pc_mv_route) define, before
// including mv_sched.glsl, QN_MV_EPILOGUE, QN_Y_QUAL coherent and QN_MV_YB(z) ((z) * pc.m_rows + pc.row0),
// and get main() from here; other includers call qn_rt_count(t) from every invocation after their stores of m.
// An includer that defines QN_CHAIN_BIND (route_mixed.comp) has the decode chain (common/moe_chain.glsl): with
// QN_MOE_CHAIN_OUT in pc.rflags the routing workgroup then marks the token routed for the gate_up's workgroups.
#ifndef QN_MV_ROUTE_GLSL
#define QN_MV_ROUTE_GLSL

layout(binding = 5, std430) writeonly buffer Ids { int ids[]; };
layout(binding = 6, std430) writeonly buffer Wt { float w[]; };
layout(binding = 7, std430) writeonly buffer Sg { float sg[]; };
layout(binding = 8, std430) writeonly buffer Act { float act[]; };
layout(binding = 9, std430) coherent buffer Cnt { uint cnt[]; };
float qn_rt_m(uint t, uint i) { return y[t * pc.m_rows + i]; }
#ifdef QN_CHAIN_BIND
#include "moe_chain.glsl"
#endif
#include "moe_route.glsl"

shared bool qn_rt_last;

// This workgroup's stores of token t's rows of m are done: count it; the last of pc.groups routes the token.
// Every invocation calls it (barriers inside).
void qn_rt_count(uint t)
{
    uint lid = gl_LocalInvocationIndex;
    memoryBarrierBuffer(); // this invocation's rows of m before the count
    barrier();
    if (lid == 0u) qn_rt_last = atomicAdd(cnt[t], 1u) == pc.groups - 1u;
    barrier();
    if (!qn_rt_last) return; // uniform
    memoryBarrierBuffer();
    if (lid == 0u) cnt[t] = 0u; // ready for the next use
    qn_route(t, lid, pc.E, pc.K, pc.Is, pc.act_stride, pc.rflags);
#ifdef QN_CHAIN_BIND
    if ((pc.rflags & QN_MOE_CHAIN_OUT) != 0u) qn_chain_count(3u * t); // route done: the gate_up may start
#endif
}

#ifdef QN_MV_EPILOGUE
void main()
{
    qn_mv_main();
    if (qn_group_id() * QN_ROWS >= pc.rows) return; // grid padding: not counted (uniform)
    qn_rt_count(gl_WorkGroupID.z);
}
#endif

#endif
