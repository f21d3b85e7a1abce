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
// G is kept as a compensated (two-float) prefix sum: |G| reaches hundreds within a chunk for fast-decaying
// heads, and the factors e^(G_t - G_s) need the differences to f32 precision (a plain f32 cumsum costs ~7x
// in accuracy).
// One workgroup owns (value head h, a block of QN_BV value columns) and walks the chunks in order; columns
// of S evolve independently, the parts without S (L, B, norms, gates) are recomputed by each block.
//
// Bindings: 0 qkv     f32, rows of qkv_stride (q, k, v at q_off / k_off / v_off; see pc_gdn.h)
//           1 proj    f32, rows of proj_stride (b at b_off, a at a_off)
//           2 A_log   f32 [Hv]
//           3 dt_bias f32 [Hv]
//           4 S       f32 [Hv][dk][dv]  read at the start, written at the end
//           5 o       f32 [T][Hv][dv]
// Push:     qn_pc_gdn (pc_gdn.h)
// Spec:     0 QN_WG     workgroup size (default 256)
//           1 QN_BV     value columns per workgroup (default 16); NRG = QN_WG / QN_BV; QN_C % (4 NRG) == 0
//           2 QN_DK_MAX largest dk supported (default 128; a larger pc.dk writes NaN to o, leaves S alone)
//           3 QN_C      chunk length (default 64; a multiple of 16)
//           Shared memory: 4 * (2*NRG*C + NRG*BV + C*C + C*BV + 6*C) bytes = 31,232 for the defaults and
//           for WG 256 / BV 32; WG 512 / BV 32 needs 36,352 (fine on NVIDIA's 48 KiB, not on 32 KiB devices).
// Dispatch: Hv * ceil(dv / QN_BV) groups spread over x/y (qn_vk_grid); group = h * ceil(dv/QN_BV) + block.
// Layout: invocation (rg, j) = (lid / QN_BV, lid % QN_BV) owns state rows i = rg + NRG*n of column j and the
// chunk rows t = CM*rg .. CM*rg + CM-1 (CM = C / NRG) of the n x BV products. dk is walked in tiles of NRG
// dims, staged dim-major as vec4s of 4 tokens, so every inner product step is a vec4 load feeding 4-16 FMAs:
// the C x C products use 4 x 4 register blocks (two vec4 loads per 16 FMAs). Tile n holds exactly one state
// row per invocation, which it publishes in `stile`.
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
const uint C4 = QN_C / 4u;                    // token quads per chunk
const uint CM = QN_C / NRG;                   // chunk rows per invocation
const uint CM4 = CM / 4u;
const uint QOFF = NRG * C4;                   // q part of kq4
const uint NGB = (C4 * C4 + QN_WG - 1u) / QN_WG; // 4x4 blocks of the C x C grid per invocation
const uint NACC = 4u * NGB;                   // vec4 accumulators of those blocks
const uint NFX = (6u * C4 + QN_WG - 1u) / QN_WG; // strictly-lower entries of the diagonal blocks
const uint NSQ = (2u * C4 + QN_WG - 1u) / QN_WG; // quads of sums of squares (k, then q)
const uint SB = 16u;                          // forward-substitution block

shared vec4 kq4[2u * QOFF];       // one dk tile of raw k (then q), [ii][token quad]
shared float stile[NRG * QN_BV];  // the state rows of the tile, [ii][j]
shared float M[QN_C * QN_C];      // [t][s]: L for s < t, B[s][t] for s >= t
shared float vn[QN_C * QN_BV];    // right-hand side, then Vnew, [t][j]
shared float gc[QN_C], gl[QN_C];  // cumulative log decay G as an unevaluated sum gc + gl
shared float bt[QN_C], rk[QN_C], rq[QN_C], kf[QN_C]; // beta, 1/|k|, dk^-1/2/|q|, rk e^(G_last - G)

uint lid, h, hk, j, rg, col;

// Stage dims [d0, d0 + NRG) of the chunk's raw k (and q when with_q) into kq4, k scaled by kf when scaled;
// zeros past the chunk and past dk.
void stage(uint c0, uint n, uint d0, bool with_q, bool scaled)
{
    uint items = (with_q ? 2u : 1u) * QOFF;
    for (uint e = lid; e < items; e += QN_WG) {
        uint part = e / QOFF, ii = e % NRG, t4 = (e % QOFF) / NRG, i = d0 + ii;
        uint off = (part == 0u ? pc.k_off : pc.q_off) + hk * pc.dk + i;
        vec4 v = vec4(0.0);
        for (uint u = 0u; u < 4u; u++) {
            uint t = 4u * t4 + u;
            if (t < n && i < pc.dk) v[u] = qkv[(c0 + t) * pc.qkv_stride + off];
            if (scaled) v[u] *= kf[t];
        }
        kq4[part * QOFF + ii * C4 + t4] = v;
    }
}

// The tile loops below stay rolled (small code, fast pipeline compiles) and keep the state in registers by
// always using st[0] and rotating the array by one per tile: after NT tiles it is back in order.
void rotate(inout float st[NT], float first)
{
    for (uint n = 0u; n + 1u < NT; n++) st[n] = st[n + 1u];
    st[NT - 1u] = first;
}

// 4x4 block g of this invocation: token quads (tb, sb); the s side reads k below the diagonal, q on and
// above it (the diagonal block's strictly-lower entries are redone with k by the fix-up pairs).
uvec2 gblock(uint g) { uint b = lid + QN_WG * g; return uvec2(b / C4, b % C4); }
// fix-up pair f: (t, s) = (4d + a, 4d + b), b < a, inside diagonal block d
uvec2 fxpair(uint f)
{
    uint p = f % 6u, d = f / 6u, a = p < 1u ? 1u : p < 3u ? 2u : 3u, b = p - (a * (a - 1u)) / 2u;
    return uvec2(4u * d + a, 4u * d + b);
}

// Pass 1 over the dk tiles: raw grid products (acc, fx), K S0 (xa), Q S0 (ya), sums of squares (ss).
void pass1(uint c0, uint n, inout float st[NT], out vec4 acc[NACC], out float fx[NFX], out vec4 xa[CM4],
           out vec4 ya[CM4], out vec4 ss[NSQ])
{
    for (uint m = 0u; m < NACC; m++) acc[m] = vec4(0.0);
    for (uint m = 0u; m < NFX; m++) fx[m] = 0.0;
    for (uint m = 0u; m < CM4; m++) { xa[m] = vec4(0.0); ya[m] = vec4(0.0); }
    for (uint m = 0u; m < NSQ; m++) ss[m] = vec4(0.0);
    uint sbase[NGB];
    for (uint g = 0u; g < NGB; g++) { uvec2 b = gblock(g); sbase[g] = (b.y < b.x ? 0u : QOFF) + b.y; }
    for (uint tau = 0u; tau < NT; tau++) {
        if (tau * NRG < pc.dk) { // uniform
            barrier(); // the previous readers of kq4 / stile are done
            stage(c0, n, tau * NRG, true, false);
            stile[rg * QN_BV + j] = st[0];
            barrier();
            uint nii = min(NRG, pc.dk - tau * NRG);
            for (uint ii = 0u; ii < nii; ii++) {
                uint row = ii * C4;
                for (uint g = 0u; g < NGB; g++) {
                    uvec2 b = gblock(g);
                    if (b.x >= C4) break;
                    vec4 kt = kq4[row + b.x], os = kq4[row + sbase[g]];
                    acc[4u * g] += kt.x * os;
                    acc[4u * g + 1u] += kt.y * os;
                    acc[4u * g + 2u] += kt.z * os;
                    acc[4u * g + 3u] += kt.w * os;
                }
                for (uint f = 0u; f < NFX; f++) {
                    uvec2 ts = fxpair(lid + QN_WG * f);
                    if (ts.x >= QN_C) break;
                    fx[f] += kq4[row + ts.x / 4u][ts.x % 4u] * kq4[row + ts.y / 4u][ts.y % 4u];
                }
                float sv = stile[ii * QN_BV + j];
                for (uint m = 0u; m < CM4; m++) {
                    xa[m] += kq4[row + rg * CM4 + m] * sv;
                    ya[m] += kq4[QOFF + row + rg * CM4 + m] * sv;
                }
                for (uint m = 0u; m < NSQ; m++) {
                    uint w = lid + QN_WG * m;
                    vec4 v = w < 2u * C4 ? kq4[(w / C4) * QOFF + row + w % C4] : vec4(0.0);
                    ss[m] += v * v;
                }
            }
        }
        rotate(st, st[0]);
    }
}

// Norm factors and gates of the chunk into shared memory (padding rows: g = 0, beta = 0, so they are inert).
void gates(uint c0, uint n, vec4 ss[NSQ])
{
    for (uint m = 0u; m < NSQ; m++) {
        uint w = lid + QN_WG * m;
        for (uint u = 0u; u < 4u; u++) {
            float r = inversesqrt(ss[m][u] + 1e-6);
            if (w < C4) rk[4u * w + u] = r;
            else if (w < 2u * C4) rq[4u * (w - C4) + u] = r * inversesqrt(float(pc.dk));
        }
    }
    for (uint t = lid; t < QN_C; t += QN_WG) {
        vec2 gb = t < n ? qn_gdn_gate(c0 + t, h) : vec2(0.0);
        gc[t] = gb.x;
        bt[t] = gb.y;
    }
    barrier();
    if (lid == 0u) {
        // compensated (TwoSum) prefix sum
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

// Scale the raw products into M: L = beta_t rk_t rk_s (k.k) e^(G_t - G_s) below, B^T on and above.
void fill_m(vec4 acc[NACC], float fx[NFX])
{
    for (uint g = 0u; g < NGB; g++) {
        uvec2 b = gblock(g);
        if (b.x >= C4) break;
        for (uint a = 0u; a < 4u; a++)
            for (uint c = 0u; c < 4u; c++) {
                uint t = 4u * b.x + a, s = 4u * b.y + c;
                if (s < t && b.x != b.y)
                    M[t * QN_C + s] = bt[t] * rk[t] * rk[s] * acc[4u * g + a][c] * exp(gdiff(t, s));
                else if (s >= t)
                    M[t * QN_C + s] = rq[s] * rk[t] * acc[4u * g + a][c] * exp(gdiff(s, t));
            }
    }
    for (uint f = 0u; f < NFX; f++) {
        uvec2 ts = fxpair(lid + QN_WG * f);
        if (ts.x >= QN_C) break;
        M[ts.x * QN_C + ts.y] = bt[ts.x] * rk[ts.x] * rk[ts.y] * fx[f] * exp(gdiff(ts.x, ts.y));
    }
}

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
    vec4 acc[NACC], xa[CM4], ya[CM4], ss[NSQ];
    float fx[NFX];
    pass1(c0, n, st, acc, fx, xa, ya, ss);
    gates(c0, n, ss);
    fill_m(acc, fx);

    // right-hand side beta (v - e^G k^ S0); e^G q^ S0 kept for O
    float yo[CM];
    for (uint m = 0u; m < CM; m++) {
        uint t = CM * rg + m;
        float eg = exp(gc[t] + gl[t]);
        float v = t < n && col < pc.dv ? qkv[(c0 + t) * pc.qkv_stride + pc.v_off + h * pc.dv + col] : 0.0;
        vn[t * QN_BV + j] = bt[t] * (v - eg * rk[t] * xa[m / 4u][m % 4u]);
        yo[m] = ya[m / 4u][m % 4u] * eg * rq[t];
    }
    barrier();
    substitute(n);

    // O = e^G q^ S0 + B Vnew
    for (uint m = 0u; m < CM; m++) {
        uint t = CM * rg + m;
        if (t >= n || col >= pc.dv) continue;
        float a = yo[m];
        for (uint s = 0u; s <= t; s++) a += M[s * QN_C + t] * vn[s * QN_BV + j];
        o[((c0 + t) * pc.Hv + h) * pc.dv + col] = a;
    }

    // S_next = e^(G_last) S0 + (e^(G_last - G) k^)^T Vnew, over the dk tiles again (scaled k^ in kq4)
    const uint L = QN_C - 1u; // padding rows have g = 0, so G[C-1] = G[n-1]
    for (uint t = lid; t < QN_C; t += QN_WG) kf[t] = rk[t] * exp(gdiff(L, t));
    float eL = exp(gc[L] + gl[L]);
    uint n4 = (n + 3u) / 4u;
    for (uint tau = 0u; tau < NT; tau++) {
        float s0 = st[0] * eL;
        if (tau * NRG < pc.dk) { // uniform
            barrier(); // kf is written; the previous readers of kq4 are done
            stage(c0, n, tau * NRG, false, true);
            barrier();
            for (uint t4 = 0u; t4 < n4; t4++) {
                vec4 k4 = kq4[rg * C4 + t4];
                uint vb = 4u * t4 * QN_BV + j;
                s0 += k4.x * vn[vb] + k4.y * vn[vb + QN_BV] + k4.z * vn[vb + 2u * QN_BV] + k4.w * vn[vb + 3u * QN_BV];
            }
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
    if (pc.dk > NRG * NT) { // QN_DK_MAX of this pipeline is too small: make the misuse visible (NaN output)
        for (uint t = 0u; t < pc.T; t++)
            if (cv && rg == 0u) o[(t * pc.Hv + h) * pc.dv + col] = uintBitsToFloat(0x7fc00000u);
        return;
    }

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
