// moe_chain.glsl — the decode MoE chain: route -> expert gate_up -> expert down recorded with NO pipeline barrier
// between the three dispatches. A consumer's workgroups wait (one invocation polls) for their producer's count in
// the chain buffer instead, so each dispatch starts while the one before it drains, not after the GPU idles at a
// barrier, and the down's first weight reads overlap the gate_up (H100, full 80B Q4_K_M: +3% decode, docs/perf.md
// runs 56-59; dropping those two barriers outright, wrong results, ran 27% faster: run 55).
//
// Chain buffer (uint32, zero between uses; token t's words at 3 t):
//   [3 t + 0] route done: 1, set by the routing workgroup after ids, w, sg and the shared act row (and every
//             workgroup's xn / m) are written; reset by the last gate_up workgroup to count
//   [3 t + 1] gate_up workgroups done: counted by each after its act rows; the down's routed-expert groups wait for
//             pc.chain_n of them (after their first weight loads: the down's reads overlap the gate_up's tail; the
//             shared expert's groups only for the route); reset by the last down workgroup to count (or by the last
//             gate_up one when no down waits)
//   [3 t + 2] down workgroups done: counted by each after its partials (and, the last of a row block, its y rows);
//             the last resets [3 t + 1] and [3 t + 2]
// Flags (pc.flags / route's pc.rflags): QN_MOE_CHAIN_IN waits for the producer, QN_MOE_CHAIN_OUT counts for the
// consumer. Forward progress: a waiting workgroup only waits for workgroups of EARLIER dispatches, which the GPU
// has all launched before any of this dispatch (in-order launch on one queue); the host enables the chain only
// on devices where it was measured (forward.c: QNEXT_MOE_CHAIN). On a device that runs dispatches one after
// another (lavapipe) every wait is already satisfied. Producers fence their stores (memoryBarrierBuffer) before the
// count and consumers after the wait; the data a consumer reads is read only after the wait, so no cache holds an
// older copy of it (the last barrier before the route, between the out projection and the route, is a full one).
//
// The includer defines QN_CHAIN_BIND (its binding number) before including.
#ifndef QN_MOE_CHAIN_GLSL
#define QN_MOE_CHAIN_GLSL

layout(binding = QN_CHAIN_BIND, std430) coherent volatile buffer Chain { uint chain[]; };
shared uint qn_chain_n;

// Every invocation: wait until chain[i] >= n (one invocation polls), then see what the producers wrote.
void qn_chain_wait(uint i, uint n)
{
    if (gl_LocalInvocationIndex == 0u)
        while (chain[i] < n) {
        }
    barrier();
    memoryBarrierBuffer();
}

// Every invocation: wait until chain[i] or chain[j] is not 0 (the route done: its mark, or a gate_up's count once the
// last gate_up has cleared the mark), then see what the producers wrote.
void qn_chain_wait_any(uint i, uint j)
{
    if (gl_LocalInvocationIndex == 0u)
        while (chain[i] == 0u && chain[j] == 0u) {
        }
    barrier();
    memoryBarrierBuffer();
}

// Every invocation, after this workgroup's stores: count it on chain[i]; returns the count before (the same in every
// invocation: n - 1 for the last of n).
uint qn_chain_count(uint i)
{
    memoryBarrierBuffer();
    barrier();
    if (gl_LocalInvocationIndex == 0u) qn_chain_n = atomicAdd(chain[i], 1u);
    barrier();
    return qn_chain_n;
}

// gate_up, every workgroup of the ngroups that are not grid padding, after its act rows (with QN_MOE_CHAIN_IN and / or
// QN_MOE_CHAIN_OUT in flags): counts on [3 t + 1]; the last resets the route's word (every gate_up workgroup has
// passed its wait) and, when no down counts on it, its own
void qn_chain_gu_done(uint ngroups, uint t, uint flags)
{
    if ((flags & (QN_MOE_CHAIN_IN | QN_MOE_CHAIN_OUT)) == 0u) return;
    if (qn_chain_count(3u * t + 1u) + 1u != ngroups || gl_LocalInvocationIndex != 0u) return;
    if ((flags & QN_MOE_CHAIN_IN) != 0u) chain[3u * t] = 0u;
    if ((flags & QN_MOE_CHAIN_OUT) == 0u) chain[3u * t + 1u] = 0u;
}

// down (QN_MOE_CHAIN_IN), every workgroup of the ngroups that are not grid padding, at its end: counts on [3 t + 2];
// the last (every down workgroup has passed its wait) resets [3 t + 1] and [3 t + 2]
void qn_chain_dn_done(uint ngroups, uint t)
{
    if (qn_chain_count(3u * t + 2u) + 1u != ngroups || gl_LocalInvocationIndex != 0u) return;
    chain[3u * t + 1u] = 0u;
    chain[3u * t + 2u] = 0u;
}

// main() of the decode gate_up kernels (moe_q.comp's QN_MOE_GU, moe_q_i8.comp): workgroup g of K ceil(I / QN_ROWS)
// (grid padding past them neither waits nor counts) waits for the route's mark when chained in, runs the includer's
// gu_main(nblk, g, k, t), and counts itself
#define QN_CHAIN_GU_MAIN                                                                          \
    void main()                                                                                   \
    {                                                                                             \
        uint nblk = (pc.I + QN_ROWS - 1u) / QN_ROWS, g = qn_group_id(), k = g / nblk, t = gl_WorkGroupID.z; \
        if (k >= pc.K) return;                                                                    \
        if ((pc.flags & QN_MOE_CHAIN_IN) != 0u) qn_chain_wait(3u * t, 1u);                        \
        gu_main(nblk, g, k, t);                                                                   \
        qn_chain_gu_done(pc.K * nblk, t, pc.flags);                                               \
    }

#endif
