#version 450
// gdn_chunk_state.comp — pass 2 of the two-pass chunked delta rule (pass 1: gdn_chunk_wy.comp): the walk over
// a segment's chunks in order, carrying the state. Per chunk (scratch record of gdn_chunk_wy_inv, S0 the state):
//   Vnew = U - W S0            [64][BV]
//   o   += Q' S0               (o holds O_intra from pass 1)
//   S    = e^G_last S0 + k^T (kf Vnew)     (k: the raw keys of the chunk from qkv)
// Columns of S evolve independently: a workgroup owns (value head h, a block of BV value columns); the block's
// state lives in shared memory for the whole segment (read at the start, written at the end).
//
// Layout: invocation (rg, j) = (lid / BV, lid % BV), NRG = WG / BV row groups. A chunk is a sequence of stages,
// each one tile staged in shared memory and one product over it:
//   dk / DT "products" stages: W and Q' tiles of DT dims ([t][DT + 4], vec4 loads), rows t = rg + NRG m
//     (CM = 64 / NRG each) of column j accumulate U - W S0 and Q' S0 (S0 read from the shared state);
//   dk / 64 "update" stages: 64 dims of k staged transposed ([dim][64 + 4], vec4 over tokens); state rows
//     i = d0 + rg + NRG r of column j (KR = 64 / NRG each) take e^G_last S0 + k^T (kf Vnew).
// Nothing a stage loads depends on the state, so with PF = 1 every stage's global loads (and the next chunk's U,
// kf and O_intra) are issued into registers before the previous stage computes: the walk waits on barriers and
// math, not on memory latency. (Two stages ahead from two register buffers measured no better: H100 run 31, 3.37 vs
// 3.25 ms for both passes at 4096 tokens, neutral in the model.)
// Bindings: 0 qkv f32 (k), 1 scratch (records, read as vec4s), 2 S f32 [Hv][dk][dv], 3 o f32 [T][Hv][dv]
// Push:     qn_pc_gdn_wy (pc_gdn.h); dk and dv multiples of 4
// Spec:     0 QN_WG (256), 1 QN_BV (16; NRG = WG / BV must divide 32), 2 QN_DK_MAX (128; a larger pc.dk writes NaN
//           to o and leaves S alone), 3 QN_PF (1: prefetch one stage ahead; 0: load at the stage)
//           Shared memory: 4 * (DK_MAX BV + 64 BV + 2 * 64 * 36) bytes (30,720 at BV 16, 43,008 at BV 32).
// Dispatch: Hv * ceil(dv / BV) groups (qn_vk_grid); group = h * ceil(dv / BV) + block.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_BV = 16;
layout(constant_id = 2) const uint QN_DK_MAX = 128;
layout(constant_id = 3) const uint QN_PF = 1;
#include "pc.h"

layout(push_constant) uniform PC { qn_pc_gdn_wy pc; };
layout(binding = 0, std430) readonly buffer Qkv { float qkv[]; };
layout(binding = 1, std430) readonly buffer Scr { vec4 wy4[]; };
layout(binding = 2, std430) buffer State { float S[]; };
layout(binding = 3, std430) buffer Out { float o[]; };

#include "grid.glsl"

const uint C = 64u;
const uint NRG = QN_WG / QN_BV;
const uint CM = C / NRG;          // chunk rows per invocation
const uint DT = 32u;              // dims per W / Q' tile
const uint DP = DT + 4u;          // padded tile row (floats)
const uint KT = 64u;              // dims per k tile
const uint KP = C + 4u;           // padded k row (floats)
const uint KR = KT / NRG;         // state rows per invocation per k tile
const uint TILE = 2u * C * DP;    // floats of the tile region (>= KT * KP)
const uint PV = 2u * C * (DT / 4u);            // vec4s of a W | Q' tile
const uint NPV = (PV + QN_WG - 1u) / QN_WG;    // ... per invocation
const uint NKF = (KT * C + QN_WG - 1u) / QN_WG; // floats of a k tile per invocation
const uint NK4 = (NKF + 3u) / 4u;
const uint NB = NPV > NK4 ? NPV : NK4;         // vec4 registers of a staged tile

shared float sS[QN_DK_MAX * QN_BV]; // the state block, [i][j]
shared float sV[C * QN_BV];         // kf_t Vnew, [t][j]
shared vec4 tile4[TILE / 4u];       // W | Q' tiles [t][DP], or k [dim][KP]

uint lid, rg, j, h, hk, col, dk, dv, rs, npt, nst;
bool cv;

float rec_at(uint f) { return wy4[f / 4u][f % 4u]; }
uint rec_of(uint cl) { return (cl * pc.Hv + h) * rs; }

// Global loads of stage s of chunk cl (zeros past the segment).
void fetch(uint cl, uint s, out vec4 buf[NB])
{
    for (uint r = 0u; r < NB; r++) buf[r] = vec4(0.0);
    uint c0 = pc.t0 + C * cl;
    if (cl >= pc.nc || c0 >= pc.T) return;
    uint rec = rec_of(cl);
    if (s < npt) {
        uint d0 = s * DT;
        for (uint r = 0u; r < NPV; r++) {
            uint e = lid + QN_WG * r;
            uint part = e / (C * (DT / 4u)), x = e % (C * (DT / 4u)), t = x / (DT / 4u), d = d0 + 4u * (x % (DT / 4u));
            if (e < PV && d < dk) buf[r] = wy4[(rec + part * C * dk + t * dk + d) / 4u];
        }
    } else {
        uint d0 = (s - npt) * KT, n = min(C, pc.T - c0);
        for (uint r = 0u; r < NKF; r++) {
            uint e = lid + QN_WG * r, t = e / KT, i = d0 + e % KT;
            if (e < KT * C && t < n && i < dk) buf[r / 4u][r % 4u] = qkv[(c0 + t) * pc.qkv_stride + pc.k_off + hk * dk + i];
        }
    }
}

// Stage s's registers into the tile region.
void put(uint s, vec4 buf[NB])
{
    if (s < npt) {
        for (uint r = 0u; r < NPV; r++) {
            uint e = lid + QN_WG * r;
            uint part = e / (C * (DT / 4u)), x = e % (C * (DT / 4u)), t = x / (DT / 4u), q = x % (DT / 4u);
            if (e < PV) tile4[(part * C * DP + t * DP) / 4u + q] = buf[r];
        }
    } else {
        for (uint r = 0u; r < NKF; r++) {
            uint e = lid + QN_WG * r, t = e / KT, ii = e % KT;
            if (e < KT * C) tile4[(ii * KP + t) / 4u][t % 4u] = buf[r / 4u][r % 4u];
        }
    }
}

// Products stage over dims [d0, d0 + DT): av -= W S0, ao += Q' S0 (rows t = rg + NRG m).
void products(uint d0, inout float av[CM], inout float ao[CM])
{
    uint nq = min(DT, dk - d0) / 4u;
    for (uint q = 0u; q < nq; q++) {
        uint i = d0 + 4u * q;
        vec4 s4 = vec4(sS[i * QN_BV + j], sS[(i + 1u) * QN_BV + j], sS[(i + 2u) * QN_BV + j], sS[(i + 3u) * QN_BV + j]);
        for (uint m = 0u; m < CM; m++) {
            uint t = rg + NRG * m;
            av[m] -= dot(tile4[(t * DP) / 4u + q], s4);
            ao[m] += dot(tile4[(C * DP + t * DP) / 4u + q], s4);
        }
    }
}

// Update stage over state rows [d0, d0 + KT): S = eL S + k^T (kf Vnew), own elements only (no other invocation
// reads them before the next stage's barrier).
void update(uint d0, float eL)
{
    float a[KR];
    for (uint r = 0u; r < KR; r++) {
        uint i = d0 + rg + NRG * r;
        a[r] = i < dk ? sS[i * QN_BV + j] * eL : 0.0;
    }
    for (uint t4 = 0u; t4 < C / 4u; t4++) {
        uint vb = 4u * t4 * QN_BV + j;
        vec4 v = vec4(sV[vb], sV[vb + QN_BV], sV[vb + 2u * QN_BV], sV[vb + 3u * QN_BV]);
        for (uint r = 0u; r < KR; r++) a[r] += dot(tile4[((rg + NRG * r) * KP) / 4u + t4], v);
    }
    for (uint r = 0u; r < KR; r++) {
        uint i = d0 + rg + NRG * r;
        if (i < dk) sS[i * QN_BV + j] = a[r];
    }
}

// Per-chunk values of this invocation's rows: U (Vnew's start), kf, O_intra, and e^G_last.
void chunk_vals(uint cl, out float u[CM], out float kf[CM], out float oi[CM], out float eL)
{
    uint c0 = pc.t0 + C * cl, rec = rec_of(cl), krec = rec + 2u * C * dk + C * dv;
    bool live = cl < pc.nc && c0 < pc.T;
    uint n = live ? min(C, pc.T - c0) : 0u;
    for (uint m = 0u; m < CM; m++) {
        uint t = rg + NRG * m;
        u[m] = live && cv ? rec_at(rec + 2u * C * dk + t * dv + col) : 0.0;
        kf[m] = live ? rec_at(krec + t) : 0.0;
        oi[m] = t < n && cv ? o[((c0 + t) * pc.Hv + h) * dv + col] : 0.0;
    }
    eL = live ? rec_at(krec + C) : 0.0;
}

void main()
{
    lid = gl_LocalInvocationIndex;
    uint nblk = (pc.dv + QN_BV - 1u) / QN_BV;
    uint grp = qn_group_id();
    if (grp >= pc.Hv * nblk) return; // uniform over the workgroup
    h = grp / nblk;
    hk = h / (pc.Hv / pc.Hk);
    j = lid % QN_BV;
    rg = lid / QN_BV;
    col = (grp % nblk) * QN_BV + j;
    cv = col < pc.dv;
    dk = pc.dk;
    dv = pc.dv;
    uint sbase = h * dk * dv + col;
    if (dk > QN_DK_MAX) { // this pipeline's QN_DK_MAX is too small: make the misuse visible (NaN output)
        for (uint t = pc.t0 + rg; t < min(pc.T, pc.t0 + C * pc.nc); t += NRG)
            if (cv) o[(t * pc.Hv + h) * dv + col] = uintBitsToFloat(0x7fc00000u);
        return;
    }
    rs = 2u * C * dk + C * dv + C + 4u;
    npt = (dk + DT - 1u) / DT;
    nst = npt + (dk + KT - 1u) / KT;
    for (uint i = rg; i < QN_DK_MAX; i += NRG) sS[i * QN_BV + j] = cv && i < dk ? S[sbase + i * dv] : 0.0;

    vec4 buf[NB];
    float u[CM], kf[CM], oi[CM], eL;
    chunk_vals(0u, u, kf, oi, eL);
    if (QN_PF != 0u) fetch(0u, 0u, buf);
    for (uint cl = 0u; cl < pc.nc; cl++) {
        uint c0 = pc.t0 + C * cl;
        if (c0 >= pc.T) break; // uniform
        uint n = min(C, pc.T - c0);
        float av[CM], ao[CM], cL = eL;
        for (uint m = 0u; m < CM; m++) av[m] = u[m], ao[m] = oi[m];
        float kc[CM];
        for (uint m = 0u; m < CM; m++) kc[m] = kf[m];
        if (QN_PF != 0u) chunk_vals(cl + 1u, u, kf, oi, eL); // the next chunk's, in flight during this one
        for (uint s = 0u; s < nst; s++) {
            if (QN_PF == 0u) fetch(cl, s, buf);
            barrier(); // the previous stage's readers of the tile region (and of sS / sV) are done
            put(s, buf);
            barrier();
            if (QN_PF != 0u) { // the next stage's loads, in flight during this one's math
                bool last = s + 1u == nst;
                fetch(last ? cl + 1u : cl, last ? 0u : s + 1u, buf);
            }
            if (s < npt) {
                products(s * DT, av, ao);
                if (s + 1u == npt)
                    for (uint m = 0u; m < CM; m++) {
                        uint t = rg + NRG * m;
                        sV[t * QN_BV + j] = av[m] * kc[m]; // read after the next stage's barriers
                        if (t < n && cv) o[((c0 + t) * pc.Hv + h) * dv + col] = ao[m];
                    }
            } else update((s - npt) * KT, cL);
        }
        if (QN_PF == 0u) chunk_vals(cl + 1u, u, kf, oi, eL);
    }
    for (uint i = rg; i < dk; i += NRG)
        if (cv) S[sbase + i * dv] = sS[i * QN_BV + j];
}
