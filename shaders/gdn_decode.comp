#version 450
// gdn_decode.comp — one decode token (T = 1) of the Gated DeltaNet core in ONE dispatch: the causal conv1d +
// SiLU of gdn_conv.comp, the delta rule of gdn_recurrent.comp and (spec QN_NORM = 1) the gated RMSNorm of
// gdn_norm.comp, which otherwise take three dispatches and two barriers.
//
// Workgroup (value head h, block of QN_BV value columns) as gdn_recurrent.comp; it convolves the channels it
// reads itself: the 2*dk q/k channels of key head hk = h / (Hv/Hk) (shared with the other (Hv/Hk)*nblk
// workgroups of hk, each computes them) and its QN_BV v channels (its own). Conv state updates without races:
//   v channels: read and rewritten by the one invocation that owns the channel;
//   q/k channels: every workgroup of hk reads the old state and, at its end, counts itself in scr[hk]; the last
//   one (integer atomics, the route kernels' last-block pattern) writes the new state and resets the counter.
// Both counts of a workgroup (this one and the norm's) go out together from two invocations (one round trip), the
// state S is loaded before the conv (the largest loads first), the q/k channels' old state and input stay in
// registers for the rewrite, and the norm tail loads its head's o, z and weight together with the block sums.
// Gated norm (QN_NORM = 1): each workgroup writes its raw o columns and their sum of squares to
// scr[Hk + Hv + h*nblk + block]; the last workgroup of head h (counter scr[Hk + h]) adds the nblk partial sums in
// block order (deterministic) and rewrites the head: o = w * (o * rsqrt(mean(o^2) + eps)) * silu(z).
//
// Bindings: 0 proj   f32 [proj_stride]   the in_proj row: conv inputs [q | k | v] at channels 0.., z, b, a
//           1 conv_w f32 [CD][K]          CD = 2*Hk*dk + Hv*dv conv channels
//           2 cstate f32 [CD][K-1]        conv state (oldest first), read and written
//           3 A_log  f32 [Hv]
//           4 dt_bias f32 [Hv]
//           5 S      f32 [Hv][dk][dv]     delta-rule state, read and written
//           6 o      f32 [Hv][dv]         output (gated-normed with QN_NORM = 1)
//           7 nw     f32 [dv]             gated-norm weight (read only with QN_NORM = 1)
//           8 scr    u32 [Hk + Hv + Hv*nblk] counters (zero between calls; left zero) and partial sums
// Push:     qn_pc_gdn_dec (pc_gdn.h)
// Spec:     0 QN_WG (128), 1 QN_BV (16), 2 QN_DK_MAX (128) as gdn_recurrent.comp; 3 QN_K conv kernel (4);
//           4 QN_NORM (1: fold the gated RMSNorm in, 0: write the raw delta-rule output)
// Dispatch: Hv * ceil(dv / QN_BV) groups (qn_vk_grid). dk > QN_DK_MAX writes NaN to o, leaves the states alone.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_BV = 16;
layout(constant_id = 2) const uint QN_DK_MAX = 128;
layout(constant_id = 3) const uint QN_K = 4;
layout(constant_id = 4) const uint QN_NORM = 1;
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_gdn_dec pc; };
layout(binding = 0, std430) readonly buffer Proj { float proj[]; };
layout(binding = 1, std430) readonly buffer Cw { float cw[]; };
layout(binding = 2, std430) buffer Cst { float cst[]; };
layout(binding = 3, std430) readonly buffer Alog { float a_log[]; };
layout(binding = 4, std430) readonly buffer Dtb { float dt_bias[]; };
layout(binding = 5, std430) buffer State { float S[]; };
layout(binding = 6, std430) coherent buffer Out { float o[]; };
layout(binding = 7, std430) readonly buffer Nw { float nw[]; };
layout(binding = 8, std430) coherent buffer Scr { uint scr[]; };

#include "gdn.glsl"

const uint NRG = QN_WG / QN_BV;                   // row groups
const uint NR = (QN_DK_MAX + NRG - 1u) / NRG;     // rows per invocation
const uint KM = QN_K - 1u;                        // conv window (QN_K 2..8)
const uint KMAX = 7u;                             // largest window: the register arrays' size
const uint QKN = (2u * QN_DK_MAX + QN_WG - 1u) / QN_WG; // q/k conv channels per invocation

shared float qk[2u * QN_DK_MAX]; // conv outputs: q of hk, then k of hk
shared float vs[QN_BV];          // conv outputs of this block's v columns
shared vec2 red[NRG][QN_BV];     // (S^T k, S^T q) partial sums per row group
shared vec3 rnorm[NRG];          // (|k|^2, |q|^2, k.q) partial sums per row group
shared float sq[QN_BV];          // o^2 of the block's columns (QN_NORM)

// silu(conv) of channel c at this token from the old state; old[] gets the state and x the input (for the rewrite)
float conv(uint c, out float old[KMAX], out float x)
{
    x = proj[c];
    float u = cw[c * QN_K + KM] * x;
    for (uint j = 0u; j < KM; j++) {
        old[j] = cst[c * KM + j];
        u += cw[c * QN_K + j] * old[j];
    }
    return qn_silu(u);
}

// the new conv state of channel c: the last K-1 raw inputs (old state shifted by one, then this token's input x)
void shift(uint c, float old[KMAX], float x)
{
    for (uint j = 0u; j + 1u < KM; j++) cst[c * KM + j] = old[j + 1u];
    cst[c * KM + KM - 1u] = x;
}

// The workgroup is done with this call's uses of the data behind counters scr[na] (of ta workgroups) and, when tb > 0,
// scr[nb] (of tb): count it in both at once (two invocations, one round trip); last_a / last_b (uniform): it was the
// last of a / b, so that counter is reset and everyone else's buffer stores before their count are visible.
shared bool last_a, last_b;
void count_last(uint na, uint ta, uint nb, uint tb)
{
    uint lid = gl_LocalInvocationIndex, lb = QN_WG > 32u ? 32u : QN_WG - 1u; // b's counting lane: another subgroup
    memoryBarrierBuffer();
    barrier();
    if (lid == 0u) last_a = atomicAdd(scr[na], 1u) == ta - 1u;
    if (lid == lb) last_b = tb > 0u && atomicAdd(scr[nb], 1u) == tb - 1u;
    barrier();
    if (!last_a && !last_b) return;
    memoryBarrierBuffer();
    if (lid == 0u && last_a) scr[na] = 0u;
    if (lid == lb && last_b) scr[nb] = 0u;
}

void main()
{
    uint lid = gl_LocalInvocationIndex;
    uint nblk = (pc.dv + QN_BV - 1u) / QN_BV, grp = qn_group_id();
    if (grp >= pc.Hv * nblk) return; // uniform over the workgroup
    uint h = grp / nblk, blk = grp % nblk, j = lid % QN_BV, rg = lid / QN_BV;
    uint col = blk * QN_BV + j, hk = h / (pc.Hv / pc.Hk), dk = pc.dk;
    bool cv = col < pc.dv && rg < NRG;
    if (dk > QN_DK_MAX || dk > NRG * NR) { // too small a pipeline: visible misuse
        if (cv && rg == 0u) o[h * pc.dv + col] = uintBitsToFloat(0x7fc00000u);
        return;
    }

    float st[NR]; // the state loads first: the largest, and independent of the conv
    uint sbase = h * dk * pc.dv + col;
    for (uint n = 0u; n < NR; n++) {
        uint i = rg + NRG * n;
        st[n] = cv && i < dk ? S[sbase + i * pc.dv] : 0.0;
    }
    float qold[QKN][KMAX], qx[QKN]; // q/k channels lid + n*QN_WG of hk: old state and input kept for the rewrite
    for (uint n = 0u; n < QKN; n++) { // q channel hk*dk + i, k channel k_off + hk*dk + i - dk
        uint i = lid + n * QN_WG;
        if (i < 2u * dk) qk[i] = conv(i < dk ? hk * dk + i : pc.k_off + hk * dk + i - dk, qold[n], qx[n]);
    }
    if (cv && rg == 0u) { // this block's v channel: the owner rewrites its state at once
        uint c = pc.v_off + h * pc.dv + col;
        float old[KMAX], x;
        vs[j] = conv(c, old, x);
        shift(c, old, x);
    }
    vec2 gb = qn_gdn_gate(0u, h);
    barrier(); // qk[], vs[]

    float pk = 0.0, pq = 0.0, sk = 0.0, sqq = 0.0, kq = 0.0, kr[NR];
    for (uint n = 0u; n < NR; n++) {
        uint i = rg + NRG * n;
        float kv = 0.0, qv = 0.0;
        if (i < dk && rg < NRG) { kv = qk[dk + i]; qv = qk[i]; }
        kr[n] = kv;
        pk += st[n] * kv;
        pq += st[n] * qv;
        sk += kv * kv;
        sqq += qv * qv;
        kq += kv * qv;
    }
    float v = cv ? vs[j] : 0.0;
    if (rg < NRG) {
        red[rg][j] = vec2(pk, pq);
        if (j == 0u) rnorm[rg] = vec3(sk, sqq, kq);
    }
    barrier();
    vec2 P = vec2(0.0);
    vec3 N = vec3(0.0);
    for (uint r = 0u; r < NRG; r++) {
        P += red[r][j];
        N += rnorm[r];
    }
    float decay = exp(gb.x);
    float rk = inversesqrt(N.x + 1e-6), rq = inversesqrt(N.y + 1e-6) * inversesqrt(float(dk));
    float d = gb.y * (v - decay * rk * P.x);
    float ov = decay * rq * P.y + d * (rk * rq * N.z);
    float dk_ = d * rk;
    for (uint n = 0u; n < NR; n++) {
        uint i = rg + NRG * n;
        if (cv && i < dk) S[sbase + i * pc.dv] = decay * st[n] + kr[n] * dk_;
    }
    if (cv && rg == 0u) o[h * pc.dv + col] = ov;
    uint pbase = pc.Hk + pc.Hv + h * nblk;
    if (QN_NORM != 0u) { // this block's sum of o^2
        if (rg == 0u) sq[j] = cv ? ov * ov : 0.0;
        barrier();
        if (lid == 0u) {
            float s = 0.0;
            for (uint i = 0u; i < QN_BV; i++) s += sq[i];
            scr[pbase + blk] = floatBitsToUint(s);
        }
    }
    // every reader of hk's old q/k conv state is past it; with the norm, every block of head h is written
    count_last(hk, (pc.Hv / pc.Hk) * nblk, pc.Hk + h, QN_NORM != 0u ? nblk : 0u);
    if (last_a) // the last reader of hk's q/k channels writes their new conv state (nobody else writes them)
        for (uint n = 0u; n < QKN; n++) {
            uint i = lid + n * QN_WG;
            if (i < 2u * dk) shift(i < dk ? hk * dk + i : pc.k_off + hk * dk + i - dk, qold[n], qx[n]);
        }
    if (!last_b) return;
    uint ob = h * pc.dv, zb = pc.z_off + h * pc.dv;
    float o1 = 0.0, g1 = 0.0; // column lid of the head loaded together with the block sums (dv <= QN_WG: all of it)
    if (lid < pc.dv) o1 = o[ob + lid], g1 = nw[lid] * qn_silu(proj[zb + lid]);
    float ss = 0.0;
    for (uint b = 0u; b < nblk; b++) ss += uintBitsToFloat(scr[pbase + b]);
    float r = inversesqrt(ss / float(pc.dv) + pc.eps);
    if (lid < pc.dv) o[ob + lid] = g1 * (o1 * r);
    for (uint i = lid + QN_WG; i < pc.dv; i += QN_WG) o[ob + i] = nw[i] * (o[ob + i] * r) * qn_silu(proj[zb + i]);
}
