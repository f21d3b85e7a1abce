// moe_flow.glsl — a dependency between two decode MoE dispatches recorded back to back with NO pipeline barrier
// between them (env QNEXT_MOEQ_FLOW=1): the routed experts' int8 gate_up (moe_q_i8.comp QN_FLOW, the producer) and
// their split down (moe_q.comp QN_DN_XSPLIT + QN_FLOW, the consumer). Instead of a barrier (every gate_up group done,
// then the down's groups launched), each down group starts at once, issues its weight loads, and waits only for its
// own expert's act row.
//
// Before including: QN_FLOW_BIND, the binding of the split down's scratch (f->dxs; the consumer's binding 15), whose
// last words are the flow words (uint, zero between calls), three per (token t, expert k), e = t K + k, counted from
// the end of the buffer (qn_flow_at(e, j) = length - 1 - (3 e + j); the split down's row-block counters come below
// them, QN_FLOW_CNT_OFF = 3 T K words further down):
//   j 0 cnt    producer groups of e done
//   j 1 ready  1 once all of them are
//   j 2 pass   consumer groups of e past their wait
// qn_flow_signal(e, n) (producer, every invocation, uniform control flow, after its act stores): fence, barrier, one
//   invocation counts on cnt; the last of the expert's n groups sets cnt back to 0, fences and sets ready.
// qn_flow_wait(e, n) (consumer, every invocation, uniform control flow): one invocation polls ready (volatile loads,
//   at most QN_FLOW_SPIN of them: a bound, so a producer that never comes gives NaN instead of a hung GPU), then
//   counts itself on pass; the last of the expert's n consumer groups sets pass and ready back to 0 (every consumer
//   of e has seen ready by then). A barrier and a fence follow; the act reads after it must be coherent. Returns
//   whether ready was seen (uniform).
// Progress: the device launches a dispatch's workgroups in submission order, so every producer group has started (and
// runs to its end without waiting on anything) before the first consumer group can wait; a consumer waits only on
// producers. lavapipe runs one dispatch after the other, so its waits pass at once (the tests check the values and
// that every word is back to zero).
#ifndef QN_MOE_FLOW_GLSL
#define QN_MOE_FLOW_GLSL

layout(binding = QN_FLOW_BIND, std430) coherent volatile buffer Flow { uint qn_flow[]; };
shared bool qn_flow_ok;
const uint QN_FLOW_SPIN = 1u << 22;
#define QN_FLOW_CNT_OFF (3u * pc.T * pc.K)
uint qn_flow_at(uint e, uint j) { return uint(qn_flow.length()) - 1u - (3u * e + j); }

void qn_flow_signal(uint e, uint n)
{
    memoryBarrierBuffer(); // this group's act stores before its count
    barrier();
    if (gl_LocalInvocationIndex == 0u && atomicAdd(qn_flow[qn_flow_at(e, 0u)], 1u) == n - 1u) {
        qn_flow[qn_flow_at(e, 0u)] = 0u; // the last producer of e: no one else touches cnt until the next call
        memoryBarrierBuffer();
        atomicExchange(qn_flow[qn_flow_at(e, 1u)], 1u);
    }
}

bool qn_flow_wait(uint e, uint n)
{
    if (gl_LocalInvocationIndex == 0u) {
        uint i = 0u;
        while (qn_flow[qn_flow_at(e, 1u)] == 0u && i < QN_FLOW_SPIN) i++;
        qn_flow_ok = qn_flow[qn_flow_at(e, 1u)] != 0u;
        if (atomicAdd(qn_flow[qn_flow_at(e, 2u)], 1u) == n - 1u) { // the last consumer of e
            qn_flow[qn_flow_at(e, 2u)] = 0u;
            qn_flow[qn_flow_at(e, 1u)] = 0u;
        }
    }
    barrier();
    memoryBarrierBuffer();
    return qn_flow_ok;
}

#endif
