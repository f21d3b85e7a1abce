// moe_route.glsl — the MoE router of one token (see moe_router.comp for what it computes): softmax top-K over
// the E router logits, the K weights (renormalised with QN_MOE_NORM_TOPK), sg = sigmoid(shared gate logit) and
// the shared expert's activation row act[t, K, :], all from the token's row of the fused W_moe product m.
// Used by moe_router.comp (its own dispatch) and through mv_route.glsl by matvec.comp / qmatvec.comp with QN_ROUTE
// and route_mixed.comp (the last workgroup of the W_moe matvec routes the token, so decode needs no router
// dispatch). The routing workgroup issues its loads of m (the logits, the shared expert's gate and up) before using
// any of them: the tail waits for memory about once.
//
// The includer declares QN_WG (>= 32 with QN_SUBGROUP), includes ext.glsl, pc.h and reduce.glsl,
// defines `float qn_rt_m(uint t, uint i)` (element i of token t's row of m) and the writeonly arrays
// ids[] (int), w[], sg[], act[] (its own bindings), then calls qn_route(t, lid, E, K, Is, act_stride, flags)
// from every invocation of the workgroup (it has barriers).
#ifndef QN_MOE_ROUTE_GLSL
#define QN_MOE_ROUTE_GLSL

#include "types.glsl" // qn_sigmoid, qn_silu
#ifndef QN_RT_DEBUG_SPEC
const uint QN_RT_DEBUG = 0u; // moe_router.comp's bench-only phase switches (0: everything)
#endif

shared float s_l[QN_MOE_MAX_E];   // the (rounded) logits
shared int s_sel[QN_MOE_MAX_K];   // expert of rank j
shared float s_p[QN_MOE_MAX_K];   // its softmax probability

// round to nearest even, as qn_f32_to_bf16 (NaN stays a quiet NaN)
float round_bf16(float x)
{
    uint u = floatBitsToUint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uintBitsToFloat((u & 0xffff0000u) | 0x00400000u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return uintBitsToFloat(u & 0xffff0000u);
}

float rank_key(float l) { return isnan(l) ? uintBitsToFloat(0xff800000u) : l; } // NaN ranks as -inf
// (key a, expert ia) ranks before (key b, expert ib)
bool beats(float a, uint ia, float b, uint ib) { return a > b || (a == b && ia < ib); }

#ifdef QN_SUBGROUP
const uint EPT = (QN_MOE_MAX_E + QN_WG - 1u) / QN_WG; // most elements per invocation (needs QN_WG >= 32)
shared uint s_cand[QN_MOE_MAX_E];  // expert ids of the candidates
shared float s_ckey[QN_MOE_MAX_E]; // their keys

// ---- the top K through a bound ----
// Order-preserving key of a rank key (rank_key: no NaN): a larger float has a larger key, -0 the same key as +0 (beats()
// sees them equal); every key is >= 1 (0: none)
uint order_key(float k)
{
    uint u = floatBitsToUint(k);
    if (u == 0x80000000u) u = 0u;
    return (u & 0x80000000u) != 0u ? ~u : u | 0x80000000u;
}

shared uint s_bnd[QN_WG / 4u + 1u + QN_MOE_MAX_K]; // each subgroup's R best keys (subgroups of >= 4 invocations)
shared uint s_nc;                                  // candidates in s_cand / s_ckey

// Few serial steps instead of rounds: (1) each subgroup's R = ceil(K / subgroups) best keys (R = 1 where there are at
// least K subgroups: one subgroupMax), (2) B = the K-th largest of those keys: at least K elements have a key >= B, so
// no element with a smaller key is in the top K (every subgroup computes B itself from shared memory), (3) the
// elements with a key >= B (typically K and a few) are the candidates (a shared counter: their order does not
// matter), (4) each candidate's rank among the candidates is its global rank (every element beating a candidate is
// one too). Barriers inside (every invocation calls it); the first one also publishes s_l (written by qn_route just
// before). H100 run 31: ~ us per layer less than the two stages of subgroup rounds it replaced.
void select_topk(uint lid, uint E, uint K, float lk[EPT])
{
    uint S = gl_SubgroupSize, lane = gl_SubgroupInvocationID, nsg = (QN_WG + S - 1u) / S, R = (K + nsg - 1u) / nsg;
    uint kr[EPT], taken = 0u;
    for (uint j = 0u; j < EPT; j++) kr[j] = lid + j * QN_WG < E ? order_key(lk[j]) : 0u;
    if (lid == 0u) s_nc = 0u;
    for (uint r = 0u; r < R; r++) { // (1): one key per round; the lowest invocation holding it drops it
        uint bk = 0u, bj = 0u;
        for (uint j = 0u; j < EPT; j++)
            if ((taken & (1u << j)) == 0u && kr[j] > bk) bk = kr[j], bj = j;
        uint mk = subgroupMax(bk);
        if (mk != 0u && subgroupMin(bk == mk ? lane : ~0u) == lane) taken |= 1u << bj;
        if (subgroupElect()) s_bnd[gl_SubgroupID * R + r] = mk;
    }
    barrier();
    uint nb = nsg * R, B = 0u; // (2): 0 where fewer than K keys are known: every element is a candidate
    for (uint i0 = 0u; i0 < nb; i0 += S) {
        uint i = i0 + lane, v = i < nb ? s_bnd[i] : 0u, gt = 0u, ge = 0u;
        for (uint j = 0u; j < nb; j++) {
            uint u = s_bnd[j];
            gt += u > v ? 1u : 0u;
            ge += u >= v ? 1u : 0u;
        }
        if (i < nb && gt < K && ge >= K) B = max(B, v);
    }
    B = subgroupMax(B);
    for (uint j = 0u; j < EPT; j++) { // (3)
        if (kr[j] == 0u || kr[j] < B) continue;
        uint c = atomicAdd(s_nc, 1u);
        s_cand[c] = lid + j * QN_WG;
        s_ckey[c] = lk[j];
    }
    barrier();
    uint n = s_nc;
    for (uint c = lid; c < n; c += QN_WG) { // (4)
        uint e = s_cand[c], r = 0u;
        float k = s_ckey[c];
        for (uint j = 0u; j < n; j++) r += beats(s_ckey[j], s_cand[j], k, e) ? 1u : 0u;
        if (r < K) s_sel[r] = int(e);
    }
}

#else
const uint EPT = 1u; // (unused here)
// the rank of each expert = the number of experts beating it: O(E^2 / QN_WG) shared reads
void select_topk(uint lid, uint E, uint K, float lk[EPT])
{
    barrier(); // s_l
    for (uint e = lid; e < E; e += QN_WG) {
        float le = rank_key(s_l[e]);
        uint r = 0u;
        for (uint j = 0u; j < E; j++) r += beats(rank_key(s_l[j]), j, le, e) ? 1u : 0u;
        if (r < K) s_sel[r] = int(e);
    }
}
#endif

// The shared expert's gate sg and act row: each invocation's loads of a batch of QN_RT_SEPT elements (gate and up)
// are issued before any use, so the routing workgroup waits for memory once per batch (once for Is <= 4 QN_WG)
const uint QN_RT_SEPT = 4u;
void shared_expert(uint t, uint lid, uint E, uint K, uint Is, uint act_stride)
{
    float gl = lid == 0u ? qn_rt_m(t, E + 2u * Is) : 0.0;
    uint ab = (t * (K + 1u) + K) * act_stride;
    for (uint i0 = 0u; i0 < Is; i0 += QN_RT_SEPT * QN_WG) {
        float g[QN_RT_SEPT], u[QN_RT_SEPT];
        for (uint j = 0u; j < QN_RT_SEPT; j++) { // constant trip counts: unrolled
            uint i = min(i0 + lid + j * QN_WG, Is - 1u); // past Is: a repeat of the last element (not stored)
            g[j] = qn_rt_m(t, E + i);
            u[j] = qn_rt_m(t, E + Is + i);
        }
        for (uint j = 0u; j < QN_RT_SEPT; j++)
            if (i0 + lid + j * QN_WG < Is) act[ab + i0 + lid + j * QN_WG] = qn_silu(g[j]) * u[j];
    }
    if (lid == 0u) sg[t] = qn_sigmoid(gl);
}

// Route token t (the whole workgroup; lid = gl_LocalInvocationIndex): flags = QN_MOE_NORM_TOPK | QN_MOE_ROUND_BF16.
void qn_route(uint t, uint lid, uint E, uint K, uint Is, uint act_stride, uint flags)
{
    bool ok = E <= QN_MOE_MAX_E && K <= QN_MOE_MAX_K && K <= E && K != 0u;
    bool rb = (flags & QN_MOE_ROUND_BF16) != 0u;
    float lk[EPT]; // this invocation's keys, elements lid + j·QN_WG (subgroup top-K)
#ifdef QN_SUBGROUP
    // the logits' loads first (EPT · QN_WG >= QN_MOE_MAX_E >= E), in flight with the shared expert's
    for (uint j = 0u; j < EPT; j++) lk[j] = ok && lid + j * QN_WG < E ? qn_rt_m(t, lid + j * QN_WG) : 0.0;
#endif
    if ((QN_RT_DEBUG & 1u) == 0u) shared_expert(t, lid, E, K, Is, act_stride);
    if (!ok) {
        for (uint j = lid; j < K; j += QN_WG) {
            ids[t * K + j] = -1;
            w[t * K + j] = uintBitsToFloat(0x7fc00000u);
        }
        return;
    }
#ifdef QN_SUBGROUP
    for (uint j = 0u; j < EPT; j++) {
        uint e = lid + j * QN_WG;
        float l = rb ? round_bf16(lk[j]) : lk[j];
        if (e < E) s_l[e] = l;
        lk[j] = rank_key(l);
    }
#else
    lk[0] = 0.0;
    for (uint e = lid; e < E; e += QN_WG) {
        float l = qn_rt_m(t, e);
        s_l[e] = rb ? round_bf16(l) : l;
    }
#endif
    if ((QN_RT_DEBUG & 2u) != 0u) {
        for (uint j = lid; j < K; j += QN_WG) s_sel[j] = int(j);
    } else {
        select_topk(lid, E, K, lk);
    }
    barrier();
    float mx = s_l[s_sel[0]];
    if ((flags & QN_MOE_NORM_TOPK) != 0u) {
        // renormalised over the top K: the softmax denominator over all E cancels, so the weights are the
        // top-K exponentials over their own sum (no pass over E, no workgroup reduction): invocation j takes
        // rank j's exponential, then each writer adds the K of them in rank order (the same sum in every
        // invocation, bit for bit)
        for (uint j = lid; j < K; j += QN_WG) s_p[j] = exp(s_l[s_sel[j]] - mx);
        barrier();
        for (uint j = lid; j < K; j += QN_WG) {
            float s = 0.0;
            for (uint i = 0u; i < K; i++) s += s_p[i];
            ids[t * K + j] = s_sel[j];
            w[t * K + j] = s_p[j] / s;
        }
        return;
    }
    float part = 0.0;
    for (uint e = lid; e < E; e += QN_WG) part += exp(s_l[e] - mx);
    float sum = qn_wg_sum(part);
    for (uint j = lid; j < K; j += QN_WG) s_p[j] = exp(s_l[s_sel[j]] - mx) / sum;
    barrier();
    float norm = 1.0;
    if ((flags & QN_MOE_NORM_TOPK) != 0u) {
        float s = 0.0;
        for (uint j = 0u; j < K; j++) s += s_p[j];
        norm = s;
    }
    for (uint j = lid; j < K; j += QN_WG) {
        ids[t * K + j] = s_sel[j];
        w[t * K + j] = (flags & QN_MOE_NORM_TOPK) != 0u ? s_p[j] / norm : s_p[j];
    }
}

#endif
