#version 450
// attn_prefill.comp — causal gated attention for T query tokens against the KV cache (GQA), flash style:
//   out[t][h*D + d] = softmax_k(q[t][h] . k[j][k] * scale, k <= position(t)) . v[j][k]  * sigmoid(gate)
// with j = h / (Hq/Hkv) and position(t) = base + pos0 + t (base: see pc_attn.h). The cache rows 0..pos0-1
// may hold an earlier chunk's keys: a prompt chunk continues the previous one's cache (attn_prep must
// have appended this chunk's rows first).
//
// Query rows of kv head j are the T*G pairs (token t, head h = j*G + g), G = Hq/Hkv, ordered t-major
// (row = t*G + g), so one workgroup's QN_BQ rows share the K/V tiles across the G heads of the group
// and across QN_BQ/G consecutive tokens. Workgroup (row block b, kv head j): keys go in tiles of QN_TK
// rows up to the block's last position; the K tile is staged in shared memory (16-byte coalesced loads,
// XOR-swizzled rows), scores and the online softmax by one invocation per (query row, key) (fixed key
// order), then the V tile replaces the K tile and invocation (r, lane l) accumulates dims 4l..4l+3 of
// rows r, r+NR, ... (NR = QN_WG / (D/4)). Queries are read straight from memory (the invocations of a
// row read the same address: a broadcast).
//
// Variants: QN_KV_F16 (f16 KV cache, else f32; common/attn_kv.glsl).
// Bindings: 0 q      f32 [T][Hq][D]      (attn_prep output)
//           1 kcache f32 (f16 with QN_KV_F16) [Hkv][cap][D]
//           2 vcache f32 (f16 with QN_KV_F16) [Hkv][cap][D]
//           3 proj   f32 [T][proj_stride] (gate of token t at t*proj_stride + gate_off + h*D + d)
//           4 pos    uint32 [1]          (read only with QN_ATTN_POS_DEVICE)
//           5 out    f32 [T][Hq*D]
// Push:     qn_pc_attn_prefill (pc_attn.h)
// Spec:     0 QN_WG   workgroup size (default 256; QN_WG*4 >= QN_DMAX)
//           1 QN_DMAX largest head_dim (default 256)
//           2 QN_BQ   query rows (token, head) per workgroup (default 32)
//           3 QN_TK   keys per tile (default 16)
//           shared memory: QN_TK*QN_DMAX*4 + QN_BQ*(2*QN_TK+2)*4 bytes (20.3 KiB at the defaults)
// Dispatch: ceil(T * (Hq/Hkv) / QN_BQ) groups (qn_vk_grid) times Hkv in z.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_DMAX = 256;
layout(constant_id = 2) const uint QN_BQ = 32;
layout(constant_id = 3) const uint QN_TK = 16;
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

const uint NR_MIN = QN_WG * 4u >= QN_DMAX ? QN_WG * 4u / QN_DMAX : 1u; // P.V rows at D = QN_DMAX
const uint NA = (QN_BQ + NR_MIN - 1u) / NR_MIN;                          // rows per invocation
const uint NI = (QN_BQ * QN_TK + QN_WG - 1u) / QN_WG;                    // (row, key) items per invocation
const float QN_NEG_BIG = -3.0e38; // masked score / running max before the first key (finite)

layout(push_constant) uniform PC { qn_pc_attn_prefill pc; };
layout(binding = 0, std430) readonly buffer Q { vec4 q4[]; };
#define QN_KV_READ
#include "attn_kv.glsl"
layout(binding = 3, std430) readonly buffer Proj { float proj[]; };
layout(binding = 4, std430) readonly buffer Pos { uint posbuf[]; };
layout(binding = 5, std430) writeonly buffer Out { float outv[]; };

shared vec4 ks[QN_TK * QN_DMAX / 4u]; // K tile, then V tile, [QN_TK][L] swizzled
shared float ss[QN_BQ * QN_TK];       // scores [row][key]
shared float ps[QN_BQ * QN_TK];       // probabilities e^(s - running max) [row][key]
shared float cs[QN_BQ], ls[QN_BQ];    // rescale of the running sums for this tile; final sums

// XOR-swizzle lane l of tile row kk within aligned blocks of P (<= 8) lanes (bank-conflict-free reads
// of one lane from 8 different rows)
uint swz(uint kk, uint l, uint L, uint P)
{
    return l < L / P * P ? l ^ (kk & (P - 1u)) : l;
}

void load_tile(uint kvb, uint k0, uint nk, uint L, uint P, bool values)
{
    for (uint i = gl_LocalInvocationIndex; i < nk * L; i += QN_WG) {
        uint kk = i / L, l = i % L, src = kvb + (k0 + kk) * L + l;
        ks[kk * L + swz(kk, l, L, P)] = values ? v_at(src) : k_at(src);
    }
}

void main()
{
    uint b = qn_group_id(), j = gl_WorkGroupID.z;
    // shapes the kernel cannot take (the host checks them with qn_attn_shape_ok): write nothing
    if (pc.Hkv == 0u || pc.Hq % pc.Hkv != 0u || pc.D % 4u != 0u || pc.D > QN_DMAX || pc.D > 4u * QN_WG) return;
    uint G = pc.Hq / pc.Hkv, nrows = pc.T * G;
    uint r0 = b * QN_BQ;
    if (r0 >= nrows || j >= pc.Hkv) return; // uniform over the workgroup
    uint tid = gl_LocalInvocationIndex;
    uint nq = min(QN_BQ, nrows - r0);
    uint base = (pc.flags & QN_ATTN_POS_DEVICE) != 0u ? posbuf[0] : 0u;
    uint p0 = base + pc.pos0;                     // position of token 0
    uint nkb = min(p0 + (r0 + nq - 1u) / G + 1u, pc.cap); // keys the block sees: up to its last token
    uint L = pc.D / 4u, NR = QN_WG / L;
    uint P = L >= 8u ? 8u : L >= 4u ? 4u : L >= 2u ? 2u : 1u;
    uint row = tid / L, lane = tid % L;
    uint kvb = j * pc.cap * L;
    // item e of this invocation is (row qi, key kk) = (it / QN_TK, it % QN_TK), it = tid + e*QN_WG; each
    // item keeps its row's running max (all items of a row compute the same value), the key-0 item also
    // its running sum
    float mrun[NI], lrun[NI], crun[NI];
    for (uint e = 0u; e < NI; e++) {
        mrun[e] = QN_NEG_BIG;
        lrun[e] = 0.0;
    }
    vec4 acc[NA];
    for (uint a = 0u; a < NA; a++) acc[a] = vec4(0.0);

    for (uint k0 = 0u; k0 < nkb; k0 += QN_TK) {
        uint nk = min(QN_TK, nkb - k0);
        load_tile(kvb, k0, nk, L, P, false);
        barrier();
        // scores; keys after the row's position are masked
        for (uint e = 0u; e < NI; e++) {
            uint it = tid + e * QN_WG, qi = it / QN_TK, kk = it % QN_TK, r = r0 + qi, t = r / G;
            if (qi >= QN_BQ) break;
            float sc = QN_NEG_BIG;
            if (qi < nq && kk < nk && k0 + kk <= p0 + t) {
                uint qb = (t * pc.Hq + j * G + r % G) * L;
                float d = 0.0;
                for (uint l = 0u; l < QN_DMAX / 4u; l++) {
                    if (l >= L) break;
                    d += dot(q4[qb + l], ks[kk * L + swz(kk, l, L, P)]);
                }
                sc = d * pc.scale;
            }
            ss[it] = sc;
        }
        barrier();
        // the V tile replaces the K tile; online softmax: running max, probabilities, rescale factor
        load_tile(kvb, k0, nk, L, P, true);
        for (uint e = 0u; e < NI; e++) {
            uint it = tid + e * QN_WG, qi = it / QN_TK, kk = it % QN_TK;
            if (qi >= QN_BQ) break;
            float mx = mrun[e];
            for (uint k = 0u; k < nk; k++) mx = max(mx, ss[qi * QN_TK + k]);
            ps[it] = kk < nk ? exp(ss[it] - mx) : 0.0;
            crun[e] = exp(mrun[e] - mx);
            mrun[e] = mx;
            if (kk == 0u) cs[qi] = crun[e];
        }
        barrier();
        for (uint e = 0u; e < NI; e++) {
            uint it = tid + e * QN_WG, qi = it / QN_TK;
            if (qi < QN_BQ && it % QN_TK == 0u) {
                float sum = 0.0;
                for (uint k = 0u; k < nk; k++) sum += ps[qi * QN_TK + k];
                lrun[e] = lrun[e] * crun[e] + sum;
            }
        }
        if (row < NR)
            for (uint a = 0u; a < NA; a++) {
                uint qi = row + a * NR;
                if (qi >= nq) break;
                vec4 a4 = acc[a] * cs[qi];
                for (uint kk = 0u; kk < nk; kk++) a4 += ps[qi * QN_TK + kk] * ks[kk * L + swz(kk, lane, L, P)];
                acc[a] = a4;
            }
        barrier(); // before the next K tile overwrites ks
    }
    for (uint e = 0u; e < NI; e++) {
        uint it = tid + e * QN_WG, qi = it / QN_TK;
        if (qi < QN_BQ && it % QN_TK == 0u) ls[qi] = lrun[e];
    }
    barrier();
    if (row < NR)
        for (uint a = 0u; a < NA; a++) {
            uint qi = row + a * NR;
            if (qi >= nq) break;
            uint r = r0 + qi, t = r / G, h = j * G + r % G;
            uint ob = t * pc.Hq * pc.D + h * pc.D + lane * 4u;
            uint gb = t * pc.proj_stride + pc.gate_off + h * pc.D + lane * 4u;
            vec4 o = acc[a] / ls[qi];
            for (uint c = 0u; c < 4u; c++) outv[ob + c] = o[c] * qn_sigmoid(proj[gb + c]);
        }
}
