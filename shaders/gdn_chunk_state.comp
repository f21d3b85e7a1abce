#version 450
// gdn_chunk_state.comp — pass 2 of the two-pass chunked delta rule (pass 1: gdn_chunk_wy.comp): the walk over
// a segment's chunks in order, carrying the state. Per chunk (scratch record of gdn_chunk_wy, S0 the state):
//   Vnew = U - W S0            [64][BV]
//   o   += Q' S0               (o holds O_intra from pass 1)
//   S    = e^G_last S0 + k^T (kf Vnew)     (k: the raw keys of the chunk from qkv)
// Columns of S evolve independently: a workgroup owns (value head h, a block of BV value columns); the block's
// state lives in shared memory for the whole segment (read at the start, written at the end).
//
// Layout: invocation (rg, j) = (lid / BV, lid % BV), NRG = WG / BV row groups. The 64 x BV products: rows
// t = rg + NRG m (CM = 64 / NRG each) of column j, dk walked in tiles of 32 dims (W and Q' tiles staged with
// coalesced vec4 loads, read as vec4s, S0 read from the shared state). The state update: state rows
// i = d0 + rg + NRG m of column j over tiles of 64 dims of k staged transposed ([dim][token], vec4 over tokens), kf
// folded into Vnew as it is stored.
// Bindings: 0 qkv f32 (k), 1 scratch (records, read as vec4s), 2 S f32 [Hv][dk][dv], 3 o f32 [T][Hv][dv]
// Push:     qn_pc_gdn_wy (pc_gdn.h); dk and dv multiples of 4
// Spec:     0 QN_WG (256), 1 QN_BV (16; NRG = WG / BV must divide 32), 2 QN_DK_MAX (128; a larger pc.dk writes NaN
//           to o and leaves S alone)
//           Shared memory: 4 * (DK_MAX BV + 64 BV + 2 * 64 * 36) bytes (30,720 at BV 16, 43,008 at BV 32).
// Dispatch: Hv * ceil(dv / BV) groups (qn_vk_grid); group = h * ceil(dv / BV) + block.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_BV = 16;
layout(constant_id = 2) const uint QN_DK_MAX = 128;
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

shared float sS[QN_DK_MAX * QN_BV]; // the state block, [i][j]
shared float sV[C * QN_BV];         // kf_t Vnew, [t][j]
shared vec4 tile4[TILE / 4u];       // W | Q' tiles [t][DP], or k [dim][KP]

uint lid, rg, j;

float rec_at(uint f) { return wy4[f / 4u][f % 4u]; }

// Vnew (to sV) and o += Q' S0 for chunk record `rec` (floats) at tokens c0 .. c0 + n - 1.
void products(uint rec, uint c0, uint n, uint h, uint col, bool cv)
{
    uint dk = pc.dk, dv = pc.dv;
    float av[CM], ao[CM];
    for (uint m = 0u; m < CM; m++) {
        uint t = rg + NRG * m;
        av[m] = cv ? rec_at(rec + 2u * C * dk + t * dv + col) : 0.0;
        ao[m] = 0.0;
    }
    for (uint d0 = 0u; d0 < dk; d0 += DT) {
        barrier(); // previous readers of the tile region are done
        for (uint e = lid; e < 2u * C * (DT / 4u); e += QN_WG) {
            uint part = e / (C * (DT / 4u)), r = e % (C * (DT / 4u)), t = r / (DT / 4u), q = r % (DT / 4u);
            uint d = d0 + 4u * q;
            tile4[(part * C * DP + t * DP) / 4u + q] =
                d < dk ? wy4[(rec + part * C * dk + t * dk + d) / 4u] : vec4(0.0);
        }
        barrier();
        uint nq = min(DT, dk - d0) / 4u;
        for (uint q = 0u; q < nq; q++) {
            uint i = d0 + 4u * q;
            vec4 s4 = vec4(sS[i * QN_BV + j], sS[(i + 1u) * QN_BV + j], sS[(i + 2u) * QN_BV + j],
                           sS[(i + 3u) * QN_BV + j]);
            for (uint m = 0u; m < CM; m++) {
                uint t = rg + NRG * m;
                av[m] -= dot(tile4[(t * DP) / 4u + q], s4);
                ao[m] += dot(tile4[(C * DP + t * DP) / 4u + q], s4);
            }
        }
    }
    uint krec = rec + 2u * C * dk + C * dv;
    for (uint m = 0u; m < CM; m++) {
        uint t = rg + NRG * m;
        sV[t * QN_BV + j] = av[m] * rec_at(krec + t); // kf_t Vnew: the update reads raw k
        if (t < n && cv) {
            uint oi = ((c0 + t) * pc.Hv + h) * dv + col;
            o[oi] += ao[m];
        }
    }
}

// S = e^G_last S + k^T (kf Vnew) for chunk record `rec` (sV holds kf Vnew).
void update(uint rec, uint c0, uint n, uint hk)
{
    uint dk = pc.dk;
    float eL = rec_at(rec + 2u * C * dk + C * pc.dv + C);
    for (uint d0 = 0u; d0 < dk; d0 += KT) {
        barrier(); // sV is written; previous readers of the tile region are done
        for (uint e = lid; e < KT * C; e += QN_WG) {
            uint t = e / KT, ii = e % KT, i = d0 + ii;
            float kv = t < n && i < dk ? qkv[(c0 + t) * pc.qkv_stride + pc.k_off + hk * dk + i] : 0.0;
            tile4[(ii * KP + t) / 4u][t % 4u] = kv;
        }
        barrier();
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
        for (uint r = 0u; r < KR; r++) { // own elements only: no other invocation reads them in this pass
            uint i = d0 + rg + NRG * r;
            if (i < dk) sS[i * QN_BV + j] = a[r];
        }
    }
}

void main()
{
    lid = gl_LocalInvocationIndex;
    uint nblk = (pc.dv + QN_BV - 1u) / QN_BV;
    uint grp = qn_group_id();
    if (grp >= pc.Hv * nblk) return; // uniform over the workgroup
    uint h = grp / nblk, hk = h / (pc.Hv / pc.Hk);
    j = lid % QN_BV;
    rg = lid / QN_BV;
    uint col = (grp % nblk) * QN_BV + j;
    bool cv = col < pc.dv;
    uint dk = pc.dk, sbase = h * dk * pc.dv + col;
    if (dk > QN_DK_MAX) { // this pipeline's QN_DK_MAX is too small: make the misuse visible (NaN output)
        for (uint t = pc.t0 + rg; t < min(pc.T, pc.t0 + C * pc.nc); t += NRG)
            if (cv) o[(t * pc.Hv + h) * pc.dv + col] = uintBitsToFloat(0x7fc00000u);
        return;
    }
    for (uint i = rg; i < QN_DK_MAX; i += NRG) sS[i * QN_BV + j] = cv && i < dk ? S[sbase + i * pc.dv] : 0.0;
    uint rs = 2u * C * dk + C * pc.dv + C + 4u;
    for (uint cl = 0u; cl < pc.nc; cl++) {
        uint c0 = pc.t0 + C * cl;
        if (c0 >= pc.T) break; // uniform
        uint n = min(C, pc.T - c0), rec = (cl * pc.Hv + h) * rs;
        products(rec, c0, n, h, col, cv); // reads sS after the barrier in it (the last update wrote own elements)
        update(rec, c0, n, hk);
    }
    for (uint i = rg; i < dk; i += NRG)
        if (cv) S[sbase + i * pc.dv] = sS[i * QN_BV + j];
}
