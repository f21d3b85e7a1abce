#version 450
// attn_decode.comp — split-K flash decoding of one query token (T = 1) with GQA, two entries:
//
// attn_decode (split pass): workgroup (kv head j, split s) takes keys [s*chunk, min((s+1)*chunk, n_keys))
//   of kv head j, chunk = qn_attn_decode_chunk(n_keys, splits, QN_TK), for all G = Hq/Hkv query heads
//   h = j*G + g that share it (each K/V row is read once for the G heads). Keys go in tiles of QN_TK:
//   the K tile is staged in shared memory (16-byte coalesced loads, XOR-swizzled rows), scores
//   s = q_h . k * scale and the online softmax by one invocation per (g, key), then P.V with each V
//   row read straight from memory (prefetched into registers before the K tile) by invocation
//   (row r, lane l): lane l owns dims 4l..4l+3, rows split the tile's keys; rows are summed in a fixed
//   order at the end. Writes the unnormalised acc[D] and (max, sum) of each (h, s).
//   Empty splits (s*chunk >= n_keys) write nothing.
// attn_decode_combine (QN_ATTN_COMBINE): out[h*D + d] = (sum_s acc_s[d] e^(m_s - M)) / (sum_s l_s e^(m_s - M))
//   * sigmoid(gate[h*D + d]) over the used splits in order s = 0, 1, ... (M = max m_s).
//
// Partials buffer (qn_attn_decode_partials_bytes(Hq, D, S) bytes, f32):
//   [0, Hq*S*D)                 acc  [Hq][S][D]
//   [Hq*S*D, Hq*S*(D+2))        (max, sum) [Hq][S][2]
//   [Hq*S*(D+2)]                number of used splits (uint bits), written by split 0
//
// Variants: QN_KV_F16 (f16 KV cache, else f32; common/attn_kv.glsl) for the split pass; QN_ATTN_PREP (attn_decode_prep):
//   the split pass does attn_prep's work for the token itself (qn_prep: q of its G heads normed + roped into shared
//   memory; the split whose keys hold the new position writes its kv head's k and v there first), so the decode
//   step needs no attn_prep dispatch. Bindings 0 proj, 1 / 2 kcache / vcache (read and written), 3 pos, 4 part,
//   5 q_norm, 6 k_norm, 7 inv_freq; push qn_pc_attn_dprep (pc_attn.h; the combine takes its qn_pc_attn_decode head).
//   (Its twin with the combine folded in, QN_ATTN_COMB / QNEXT_ATTN_COMB, lost its H100 A/Bs and is gone.)
// Bindings (attn_decode):          0 q      f32 [Hq][D]           (attn_prep output, T = 1)
//                                  1 kcache f32 (f16 with QN_KV_F16) [Hkv][cap][D]
//                                  2 vcache f32 (f16 with QN_KV_F16) [Hkv][cap][D]
//                                  3 pos    uint32 [1]  (read only with QN_ATTN_POS_DEVICE)
//                                  4 part   f32 partials (written)
// Bindings (attn_decode_combine):  0 part   f32 partials
//                                  1 proj   f32 (gate at gate_off + h*D + d)
//                                  2 out    f32 [Hq*D]
// Push:     qn_pc_attn_decode (pc_attn.h), the same struct for both entries
// Spec (attn_decode):  0 QN_WG   workgroup size (default 128; QN_WG*4 >= QN_DMAX)
//                      1 QN_DMAX largest head_dim (default 256)
//                      2 QN_GMAX largest G = Hq/Hkv (default 8; registers: QN_GMAX vec4 accumulators)
//                      3 QN_TK   keys per tile (default 16 = QN_ATTN_DECODE_TK; the chunk is a multiple)
//                      shared memory: max(QN_TK, QN_GMAX)*QN_DMAX*4 + QN_GMAX*(2*QN_TK+1)*4 bytes
// Spec (combine):      0 QN_WG   workgroup size (default 64)
// Dispatch: attn_decode: `splits` groups (qn_vk_grid) times Hkv in z; barrier; attn_decode_combine:
//           Hq * ceil(D / QN_WG) groups.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

#ifdef QN_ATTN_PREP
layout(push_constant) uniform PC { qn_pc_attn_dprep pc; };
#else
layout(push_constant) uniform PC { qn_pc_attn_decode pc; };
#endif

const float QN_NEG_BIG = -3.0e38; // running max before the first key (finite: no inf arithmetic)

#ifndef QN_ATTN_COMBINE

layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_DMAX = 256;
layout(constant_id = 2) const uint QN_GMAX = 8;
layout(constant_id = 3) const uint QN_TK = 16;
const uint KS_ROWS = QN_TK > QN_GMAX ? QN_TK : QN_GMAX;
const uint NR_MIN = QN_WG * 4u >= QN_DMAX ? QN_WG * 4u / QN_DMAX : 1u; // PV rows at D = QN_DMAX
const uint NV = (QN_TK + NR_MIN - 1u) / NR_MIN;                          // V rows per invocation and tile
const uint NI = (QN_GMAX * QN_TK + QN_WG - 1u) / QN_WG;                  // (head, key) items per invocation

#ifdef QN_ATTN_PREP
layout(binding = 0, std430) readonly buffer Proj { float proj[]; };
layout(binding = 5, std430) readonly buffer QNorm { float qnw[]; };
layout(binding = 6, std430) readonly buffer KNorm { float knw[]; };
layout(binding = 7, std430) readonly buffer InvFreq { float inv_freq[]; };
#define QN_KV_RW
#include "rope.glsl"
shared vec4 qs4[QN_GMAX * QN_DMAX / 4u];    // the workgroup's G query heads, normed and roped
shared float kx[QN_DMAX];                   // the new key of kv head j, normed and roped
shared vec2 csn[QN_DMAX / 2u];              // cos, sin (times attn_factor) of the rotary pairs at the position
shared float red[(QN_GMAX + 1u) * QN_WG];   // sums of squares: G query heads and the key, per invocation
#define QN_Q4(i) qs4[i]
#else
layout(binding = 0, std430) readonly buffer Q { vec4 q4[]; };
#define QN_KV_READ
#define QN_Q4(i) q4[i]
#endif
#include "attn_kv.glsl"
layout(binding = 3, std430) readonly buffer Pos { uint posbuf[]; };
layout(binding = 4, std430) writeonly buffer Part4 { vec4 part4[]; };
layout(binding = 4, std430) writeonly buffer Part1 { float part1[]; };
layout(binding = 4, std430) writeonly buffer PartU { uint partu[]; };

shared vec4 ks[KS_ROWS * QN_DMAX / 4u]; // K tile [QN_TK][L] (swizzled), then the row reduction [G][L]
shared float ss[QN_GMAX * QN_TK];       // scores [g][key]
shared float ps[QN_GMAX * QN_TK];       // probabilities e^(s - running max) [g][key]
shared float cs[QN_GMAX];               // rescale of the running sums for this tile, per head

// position of lane l of tile row kk: XOR-swizzle within aligned blocks of P (<= 8) lanes so that the
// 8 invocations of a 16-byte shared access that read 8 different rows hit different banks
uint swz(uint kk, uint l, uint L, uint P)
{
    return l < L / P * P ? l ^ (kk & (P - 1u)) : l;
}

#ifdef QN_ATTN_PREP
// attn_prep's work at position pos, for this workgroup (kv head j): q of heads j*G .. j*G + G - 1 into qs4 (zero-centred
// RMSNorm with q_norm, rotate-half RoPE on dims < rot), and when `own` (this split's keys hold pos) the new k (k_norm,
// RoPE) and the raw v written to the caches at pos, visible to the workgroup's tile loads after the last barrier.
void qn_prep(uint j, uint G, uint D, uint pos, bool own)
{
    uint tid = gl_LocalInvocationIndex, half_ = pc.rot / 2u;
    uint qsrc = j * G * D, ksrc = 2u * pc.Hq * D + j * D, vsrc = 2u * pc.Hq * D + pc.Hkv * D + j * D;
    float sq[QN_GMAX + 1u];
    for (uint g = 0u; g <= QN_GMAX; g++) sq[g] = 0.0;
    for (uint i = tid; i < D; i += QN_WG) {
        for (uint g = 0u; g < QN_GMAX; g++)
            if (g < G) sq[g] += proj[qsrc + g * D + i] * proj[qsrc + g * D + i];
        sq[QN_GMAX] += proj[ksrc + i] * proj[ksrc + i];
    }
    for (uint g = 0u; g <= QN_GMAX; g++) red[g * QN_WG + tid] = sq[g];
    for (uint p = tid; p < half_; p += QN_WG) {
        precise float ang = float(pos) * inv_freq[p];
        csn[p] = qn_cos_sin(ang) * pc.attn_factor;
    }
    barrier();
    uint p2 = 1u; // the sums in a fixed tree: fold to the largest power of two <= QN_WG, then halve
    while (p2 * 2u <= QN_WG) p2 *= 2u;
    if (tid < QN_WG - p2)
        for (uint g = 0u; g <= QN_GMAX; g++) red[g * QN_WG + tid] += red[g * QN_WG + tid + p2];
    barrier();
    for (uint st = p2 / 2u; st > 0u; st >>= 1u) {
        if (tid < st)
            for (uint g = 0u; g <= QN_GMAX; g++) red[g * QN_WG + tid] += red[g * QN_WG + tid + st];
        barrier();
    }
    float rk = inversesqrt(red[QN_GMAX * QN_WG] / float(D) + pc.eps);
    for (uint i = tid; i < D; i += QN_WG) {
        for (uint g = 0u; g < QN_GMAX; g++) {
            if (g >= G) break;
            uint e = g * D + i;
            qs4[e >> 2u][e & 3u] = proj[qsrc + e] * inversesqrt(red[g * QN_WG] / float(D) + pc.eps) * (1.0 + qnw[i]);
        }
        kx[i] = proj[ksrc + i] * rk * (1.0 + knw[i]);
    }
    barrier();
    for (uint it = tid; it < (G + 1u) * half_; it += QN_WG) { // pair (p, p + half) of head g (g = G: the key)
        uint g = it / half_, p = it % half_;
        vec2 c = csn[p];
        if (g < G) {
            uint a = g * D + p, b = a + half_;
            float xa = qs4[a >> 2u][a & 3u], xb = qs4[b >> 2u][b & 3u];
            qs4[a >> 2u][a & 3u] = xa * c.x - xb * c.y;
            qs4[b >> 2u][b & 3u] = xb * c.x + xa * c.y;
        } else {
            float xa = kx[p], xb = kx[p + half_];
            kx[p] = xa * c.x - xb * c.y;
            kx[p + half_] = xb * c.x + xa * c.y;
        }
    }
    barrier();
    if (own) {
        uint dst2 = (j * pc.cap + pos) * D / 2u;
        for (uint i = tid; i < D / 2u; i += QN_WG) {
            kv_put(false, dst2 + i, vec2(kx[2u * i], kx[2u * i + 1u]));
            kv_put(true, dst2 + i, vec2(proj[vsrc + 2u * i], proj[vsrc + 2u * i + 1u]));
        }
    }
    memoryBarrierBuffer();
    barrier();
}
#endif

void main()
{
    uint s = qn_group_id(), j = gl_WorkGroupID.z;
    uint tid = gl_LocalInvocationIndex;
    uint base = (pc.flags & QN_ATTN_POS_DEVICE) != 0u ? posbuf[0] : 0u;
    uint n_keys = min(base + pc.n_keys, pc.cap);
    uint S = pc.splits;
    // shapes the kernel cannot take (the host checks them with qn_attn_shape_ok): write nothing
    if (S == 0u || pc.Hkv == 0u || pc.Hq % pc.Hkv != 0u || pc.Hq / pc.Hkv > QN_GMAX || pc.D % 4u != 0u ||
        pc.D > QN_DMAX || pc.D > 4u * QN_WG)
        return;
#ifdef QN_ATTN_PREP
    if (pc.rot > pc.D || pc.rot % 2u != 0u) return;
#endif
    uint chunk = ((n_keys + S - 1u) / S + QN_TK - 1u) / QN_TK * QN_TK;
    uint k_begin = s * chunk, k_end = min(n_keys, k_begin + chunk);
    if (s >= S || j >= pc.Hkv || k_begin >= k_end) return; // uniform over the workgroup
    uint G = pc.Hq / pc.Hkv, L = pc.D / 4u, NR = QN_WG / L;
    uint P = L >= 8u ? 8u : L >= 4u ? 4u : L >= 2u ? 2u : 1u;
    uint row = tid / L, lane = tid % L;
    uint kvb = j * pc.cap * L; // vec4 index of row 0 of kv head j
    uint qb = j * G * L;       // vec4 index of q head j*G
#ifdef QN_ATTN_PREP
    qn_prep(j, G, pc.D, base, base < pc.cap && k_begin <= base && base < k_end); // T = 1: the token is at `base`
    qb = 0u;
#endif
    if (s == 0u && tid == 0u) partu[pc.Hq * S * (pc.D + 2u)] = (n_keys + chunk - 1u) / chunk;
    // item e of this invocation is (head g, key kk) = (it / QN_TK, it % QN_TK), it = tid + e*QN_WG; each
    // item keeps its head's running max (all items of a head compute the same value), and the key-0
    // item also its running sum
    float mrun[NI], lrun[NI], crun[NI];
    for (uint e = 0u; e < NI; e++) {
        mrun[e] = QN_NEG_BIG;
        lrun[e] = 0.0;
    }
    vec4 acc[QN_GMAX];
    for (uint g = 0u; g < QN_GMAX; g++) acc[g] = vec4(0.0);

    for (uint k0 = k_begin; k0 < k_end; k0 += QN_TK) {
        uint nk = min(QN_TK, k_end - k0);
        // V rows of this invocation (keys row, row + NR, ...), issued first so they load meanwhile
        vec4 vr[NV];
        for (uint a = 0u; a < NV; a++) {
            uint kk = row + a * NR;
            vr[a] = row < NR && kk < nk ? v_at(kvb + (k0 + kk) * L + lane) : vec4(0.0);
        }
        for (uint i = tid; i < nk * L; i += QN_WG) {
            uint kk = i / L, l = i % L;
            ks[kk * L + swz(kk, l, L, P)] = k_at(kvb + (k0 + kk) * L + l);
        }
        barrier();
        // scores s = q_h . k * scale
        for (uint e = 0u; e < NI; e++) {
            uint it = tid + e * QN_WG, g = it / QN_TK, kk = it % QN_TK;
            if (g < G && kk < nk) {
                float d = 0.0;
                for (uint l = 0u; l < QN_DMAX / 4u; l++) {
                    if (l >= L) break;
                    d += dot(QN_Q4(qb + g * L + l), ks[kk * L + swz(kk, l, L, P)]);
                }
                ss[it] = d * pc.scale;
            }
        }
        barrier();
        // online softmax: new running max over the tile, probabilities, rescale factor
        for (uint e = 0u; e < NI; e++) {
            uint it = tid + e * QN_WG, g = it / QN_TK, kk = it % QN_TK;
            if (g < G) {
                float mx = mrun[e];
                for (uint k = 0u; k < nk; k++) mx = max(mx, ss[g * QN_TK + k]);
                ps[it] = kk < nk ? exp(ss[it] - mx) : 0.0;
                crun[e] = exp(mrun[e] - mx);
                mrun[e] = mx;
                if (kk == 0u) cs[g] = crun[e];
            }
        }
        barrier();
        for (uint e = 0u; e < NI; e++) {
            uint it = tid + e * QN_WG, g = it / QN_TK;
            if (g < G && it % QN_TK == 0u) {
                float sum = 0.0;
                for (uint k = 0u; k < nk; k++) sum += ps[g * QN_TK + k];
                lrun[e] = lrun[e] * crun[e] + sum;
            }
        }
        if (row < NR)
            for (uint g = 0u; g < QN_GMAX; g++) {
                if (g >= G) break;
                vec4 a4 = acc[g] * cs[g];
                for (uint a = 0u; a < NV; a++) {
                    uint kk = row + a * NR;
                    if (kk < nk) a4 += ps[g * QN_TK + kk] * vr[a];
                }
                acc[g] = a4;
            }
        // no barrier needed here: the next tile writes ks and ss (not read below the last barrier) and
        // rewrites ps and cs only after its second barrier, which every invocation reaches after this step
    }
    // sum the PV rows in order 0, 1, ..., NR-1 through shared memory
    for (uint r = 1u; r < NR; r++) {
        barrier();
        if (row == r)
            for (uint g = 0u; g < QN_GMAX; g++) {
                if (g >= G) break;
                ks[g * L + lane] = acc[g];
            }
        barrier();
        if (row == 0u)
            for (uint g = 0u; g < QN_GMAX; g++) {
                if (g >= G) break;
                acc[g] += ks[g * L + lane];
            }
    }
    uint hb = j * G; // first query head of this kv head
    if (row == 0u)
        for (uint g = 0u; g < QN_GMAX; g++) {
            if (g >= G) break;
            part4[((hb + g) * S + s) * L + lane] = acc[g];
        }
    for (uint e = 0u; e < NI; e++) {
        uint it = tid + e * QN_WG, g = it / QN_TK;
        if (g < G && it % QN_TK == 0u) {
            uint mi = pc.Hq * S * pc.D + ((hb + g) * S + s) * 2u;
            part1[mi] = mrun[e];
            part1[mi + 1u] = lrun[e];
        }
    }
}

#else // QN_ATTN_COMBINE

layout(constant_id = 0) const uint QN_WG = 64;
layout(binding = 0, std430) readonly buffer Part { float part[]; };
layout(binding = 0, std430) readonly buffer PartU { uint partu[]; };
layout(binding = 1, std430) readonly buffer Proj { float proj[]; };
layout(binding = 2, std430) writeonly buffer Out { float outv[]; };

void main()
{
    uint nb = (pc.D + QN_WG - 1u) / QN_WG;
    uint g = qn_group_id(), h = g / nb, d = (g % nb) * QN_WG + gl_LocalInvocationIndex;
    if (h >= pc.Hq || d >= pc.D) return;
    uint S = pc.splits, D = pc.D;
    if (S == 0u) return;
    uint used = min(partu[pc.Hq * S * (D + 2u)], S);
    uint mlb = pc.Hq * S * D + h * S * 2u;
    float M = QN_NEG_BIG;
    for (uint s = 0u; s < used; s++) M = max(M, part[mlb + s * 2u]);
    float sum = 0.0, o = 0.0;
    for (uint s = 0u; s < used; s++) {
        float w = exp(part[mlb + s * 2u] - M);
        sum += part[mlb + s * 2u + 1u] * w;
        o += part[(h * S + s) * D + d] * w;
    }
    float a = sum > 0.0 ? o / sum : 0.0;
    outv[h * D + d] = a * qn_sigmoid(proj[pc.gate_off + h * D + d]);
}

#endif
