#version 450
// gdn_chunked.comp — the gated delta rule for prefill in chunks of C tokens (spec §4 chunk form), state
// carried in and out; the same result as gdn_recurrent up to f32 rounding.
//
// Per chunk of n <= C tokens (q^, k^, g, beta as in gdn_recurrent.comp; G_t = g_0 + .. + g_t within the chunk;
// S0 the state at the chunk start; the chunk's last token is n-1):
//   L[t][s]  = beta_t (k^_t . k^_s) e^(G_t - G_s)           s < t   (strictly lower)
//   B[t][s]  = (q^_t . k^_s) e^(G_t - G_s)                  s <= t
//   (I + L) Vnew = beta (V - e^G k^ S0)                     (forward substitution; = U - W S0 of §4)
//   O        = e^G q^ S0 + B Vnew
//   S_next   = e^(G_last) S0 + (e^(G_last - G) k^)^T Vnew
// One workgroup owns (value head h, a block of QN_BV value columns) and walks the chunks in order; columns
// of S evolve independently, the dk x dk-free parts (L, B, norms, gates) are recomputed per block.
//
// Bindings: 0 qkv     f32, rows of qkv_stride (q, k, v at q_off / k_off / v_off; see pc_gdn.h)
//           1 proj    f32, rows of proj_stride (b at b_off, a at a_off)
//           2 A_log   f32 [Hv]
//           3 dt_bias f32 [Hv]
//           4 S       f32 [Hv][dk][dv]  read at the start, written at the end
//           5 o       f32 [T][Hv][dv]
// Push:     qn_pc_gdn (pc_gdn.h)
// Spec:     0 QN_WG     workgroup size (default 256)
//           1 QN_BV     value columns per workgroup (default 16); NRG = QN_WG / QN_BV must divide QN_C
//           2 QN_DK_MAX largest dk supported (default 128)
//           3 QN_C      chunk length (default 64, a multiple of 16)
//           Shared memory: 4 * (2*C*(NRG+1) + NRG*BV + C*C + C*BV + 5*C) bytes = 31,488 for the defaults
//           (and for WG 256 / BV 32); WG 512 / BV 32 needs 36,608 (fine on NVIDIA's 48 KiB).
// Dispatch: Hv * ceil(dv / QN_BV) groups spread over x/y (qn_vk_grid); group = h * ceil(dv/QN_BV) + block.
// Layout: invocation (rg, j) = (lid / QN_BV, lid % QN_BV) owns state rows i = rg + NRG*n of column j and
// the chunk rows t = rg + NRG*m of the n x BV products; dk is walked in tiles of NRG dims (tile n holds
// exactly one state row per invocation, which it publishes in `stile`).
// Barriers per chunk: 2 per dk tile (twice), 3 for gates, 2 per 16-row substitution block.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_BV = 16;
layout(constant_id = 2) const uint QN_DK_MAX = 128;
layout(constant_id = 3) const uint QN_C = 64;
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_gdn pc; };
layout(binding = 0, std430) readonly buffer Qkv { float qkv[]; };
layout(binding = 1, std430) readonly buffer Proj { float proj[]; };
layout(binding = 2, std430) readonly buffer Alog { float a_log[]; };
layout(binding = 3, std430) readonly buffer Dtb { float dt_bias[]; };
layout(binding = 4, std430) buffer State { float S[]; };
layout(binding = 5, std430) writeonly buffer Out { float o[]; };

#include "gdn.glsl"

const uint NRG = QN_WG / QN_BV;               // row groups = dk tile width
const uint NT = (QN_DK_MAX + NRG - 1u) / NRG; // dk tiles (state values per invocation)
const uint CM = QN_C / NRG;                   // chunk rows per invocation
const uint NE = (QN_C * QN_C + QN_WG - 1u) / QN_WG; // C x C grid entries per invocation
const uint NSS = (2u * QN_C + QN_WG - 1u) / QN_WG;  // sum-of-squares slots per invocation
const uint SB = 16u;                          // forward-substitution block
const uint KP = NRG + 1u;                     // padded tile row (no bank conflicts)

shared float kq[2u * QN_C * KP];  // raw k (rows 0..C-1) and q (rows C..2C-1) of one dk tile, [row][ii]
shared float stile[NRG * QN_BV];  // the state rows of the tile, [ii][j]
shared float M[QN_C * QN_C];      // [t][s]: L for s < t, B[s][t] for s >= t
shared float vn[QN_C * QN_BV];    // right-hand side, then Vnew, [t][j]
shared float gc[QN_C], gl[QN_C];  // cumulative log decay G as an unevaluated sum gc + gl (compensated)
shared float bt[QN_C], rk[QN_C], rq[QN_C]; // beta, 1/|k|, dk^-1/2/|q|

uint lid, h, hk, j, rg, col;

// Raw q or k element i of chunk row t (0 past the chunk or past dk).
float qk_at(uint c0, uint n, uint t, uint i, uint off)
{
    return t < n && i < pc.dk ? qkv[(c0 + t) * pc.qkv_stride + off + hk * pc.dk + i] : 0.0;
}

// The tile loops below stay rolled (small code, fast pipeline compiles) and keep the state in registers by
// always using st[0] and rotating the array by one per tile: after NT tiles it is back in order.
void rotate(inout float st[NT], float first)
{
    for (uint n = 0u; n + 1u < NT; n++) st[n] = st[n + 1u];
    st[NT - 1u] = first;
}

// Pass 1 over the dk tiles: raw Gram / cross products (acc), K S0 (xa), Q S0 (ya), sums of squares (ssa).
void pass1(uint c0, uint n, inout float st[NT], out float acc[NE], out float xa[CM], out float ya[CM],
           out float ssa[NSS])
{
    for (uint m = 0u; m < NE; m++) acc[m] = 0.0;
    for (uint m = 0u; m < CM; m++) { xa[m] = 0.0; ya[m] = 0.0; }
    for (uint m = 0u; m < NSS; m++) ssa[m] = 0.0;
    const uint QB = QN_C * KP; // q rows start
    for (uint tau = 0u; tau < NT; tau++) {
        if (tau * NRG < pc.dk) { // uniform
            barrier(); // the previous readers of kq / stile are done
            for (uint e = lid; e < QN_C * NRG; e += QN_WG) {
                uint t = e / NRG, ii = e % NRG;
                kq[t * KP + ii] = qk_at(c0, n, t, tau * NRG + ii, pc.k_off);
                kq[QB + t * KP + ii] = qk_at(c0, n, t, tau * NRG + ii, pc.q_off);
            }
            stile[rg * QN_BV + j] = st[0];
            barrier();
            uint nii = min(NRG, pc.dk - tau * NRG);
            for (uint ii = 0u; ii < nii; ii++) {
                // grid entry (t, s): k_t . k_s below the diagonal, k_t . q_s on and above it
                for (uint m = 0u; m < NE; m++) {
                    uint e = lid + QN_WG * m, t = e / QN_C, s = e % QN_C;
                    if (e < QN_C * QN_C) acc[m] += kq[t * KP + ii] * kq[(s < t ? 0u : QB) + s * KP + ii];
                }
                float sv = stile[ii * QN_BV + j];
                for (uint m = 0u; m < CM; m++) {
                    uint t = rg + NRG * m;
                    xa[m] += kq[t * KP + ii] * sv;
                    ya[m] += kq[QB + t * KP + ii] * sv;
                }
                for (uint m = 0u; m < NSS; m++) {
                    uint u = lid + QN_WG * m; // u < C: |k_u|^2, else |q_(u-C)|^2
                    float v = u < 2u * QN_C ? kq[(u / QN_C) * QB + (u % QN_C) * KP + ii] : 0.0;
                    ssa[m] += v * v;
                }
            }
        }
        rotate(st, st[0]);
    }
}

// Norm factors and gates of the chunk into shared memory (padding rows: g = 0, beta = 0, so they are inert).
void gates(uint c0, uint n, float ssa[NSS])
{
    for (uint m = 0u; m < NSS; m++) {
        uint u = lid + QN_WG * m;
        if (u < QN_C) rk[u] = inversesqrt(ssa[m] + 1e-6);
        else if (u < 2u * QN_C) rq[u - QN_C] = inversesqrt(ssa[m] + 1e-6) * inversesqrt(float(pc.dk));
    }
    for (uint t = lid; t < QN_C; t += QN_WG) {
        vec2 gb = t < n ? qn_gdn_gate(c0 + t, h) : vec2(0.0);
        gc[t] = gb.x;
        bt[t] = gb.y;
    }
    barrier();
    if (lid == 0u) {
        // compensated (TwoSum) prefix sum: |G| reaches hundreds within a chunk, while the factors
        // e^(G_t - G_s) need the differences to f32 precision
        precise float G = 0.0, lo = 0.0;
        for (uint t = 0u; t < QN_C; t++) {
            precise float x = gc[t], s = G + x, bp = s - G;
            lo += (G - (s - bp)) + (x - bp);
            G = s;
            gc[t] = G;
            gl[t] = lo;
        }
    }
    barrier();
}

// G_a - G_b
float gdiff(uint a, uint b) { return (gc[a] - gc[b]) + (gl[a] - gl[b]); }

// (I + L) Vnew = rhs, in place in vn: blocks of SB rows; the off-diagonal part of a block is a parallel
// product, the SB x SB diagonal solve runs one invocation per column.
void substitute(uint n)
{
    for (uint b0 = 0u; b0 < n; b0 += SB) {
        if (b0 > 0u) {
            for (uint e = lid; e < SB * QN_BV; e += QN_WG) {
                uint t = b0 + e / QN_BV, jj = e % QN_BV;
                float a = vn[t * QN_BV + jj];
                for (uint s = 0u; s < b0; s++) a -= M[t * QN_C + s] * vn[s * QN_BV + jj];
                vn[t * QN_BV + jj] = a;
            }
            barrier();
        }
        if (lid < QN_BV) {
            for (uint t = b0 + 1u; t < b0 + SB; t++) {
                float a = vn[t * QN_BV + lid];
                for (uint s = b0; s < t; s++) a -= M[t * QN_C + s] * vn[s * QN_BV + lid];
                vn[t * QN_BV + lid] = a;
            }
        }
        barrier();
    }
}

void chunk(uint c0, inout float st[NT])
{
    uint n = min(QN_C, pc.T - c0);
    float acc[NE], xa[CM], ya[CM], ssa[NSS];
    pass1(c0, n, st, acc, xa, ya, ssa);
    gates(c0, n, ssa);

    // scale the grid into M; right-hand side beta (v - e^G k^ S0); e^G q^ S0
    for (uint m = 0u; m < NE; m++) {
        uint e = lid + QN_WG * m, t = e / QN_C, s = e % QN_C;
        if (e >= QN_C * QN_C) break;
        M[e] = s < t ? bt[t] * rk[t] * rk[s] * acc[m] * exp(gdiff(t, s))
                     : rq[s] * rk[t] * acc[m] * exp(gdiff(s, t));
    }
    for (uint m = 0u; m < CM; m++) {
        uint t = rg + NRG * m;
        float eg = exp(gc[t] + gl[t]);
        float v = t < n && col < pc.dv ? qkv[(c0 + t) * pc.qkv_stride + pc.v_off + h * pc.dv + col] : 0.0;
        vn[t * QN_BV + j] = bt[t] * (v - eg * rk[t] * xa[m]);
        ya[m] *= eg * rq[t];
    }
    barrier();
    substitute(n);

    // O = e^G q^ S0 + B Vnew
    for (uint m = 0u; m < CM; m++) {
        uint t = rg + NRG * m;
        if (t >= n || col >= pc.dv) continue;
        float a = ya[m];
        for (uint s = 0u; s <= t; s++) a += M[s * QN_C + t] * vn[s * QN_BV + j];
        o[((c0 + t) * pc.Hv + h) * pc.dv + col] = a;
    }

    // S_next = e^(G_last) S0 + (e^(G_last - G) k^)^T Vnew, over the dk tiles again (k^ scaled into kq)
    const uint L = QN_C - 1u; // padding rows have g = 0, so G[C-1] = G[n-1]
    float eL = exp(gc[L] + gl[L]);
    for (uint tau = 0u; tau < NT; tau++) {
        float s0 = st[0] * eL;
        if (tau * NRG < pc.dk) { // uniform
            barrier(); // the previous readers of kq are done
            for (uint e = lid; e < QN_C * NRG; e += QN_WG) {
                uint t = e / NRG, ii = e % NRG;
                kq[t * KP + ii] = qk_at(c0, n, t, tau * NRG + ii, pc.k_off) * rk[t] * exp(gdiff(L, t));
            }
            barrier();
            for (uint t = 0u; t < n; t++) s0 += kq[t * KP + rg] * vn[t * QN_BV + j];
        }
        rotate(st, s0);
    }
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
    bool cv = col < pc.dv;

    float st[NT];
    uint sbase = h * pc.dk * pc.dv + col;
    for (uint n = 0u; n < NT; n++) {
        uint i = rg + NRG * n;
        st[n] = cv && i < pc.dk ? S[sbase + i * pc.dv] : 0.0;
    }
    for (uint c0 = 0u; c0 < pc.T; c0 += QN_C) chunk(c0, st);
    for (uint n = 0u; n < NT; n++) {
        uint i = rg + NRG * n;
        if (cv && i < pc.dk) S[sbase + i * pc.dv] = st[n];
    }
}
