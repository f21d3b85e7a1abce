#version 450
// gdn_chunk_wy.comp — pass 1 of the two-pass chunked delta rule (pass 2: gdn_chunk_state.comp): everything of a
// chunk that does not depend on the state, for all chunks of a segment in parallel.
//
// Per chunk of n <= 64 tokens and value head h (q^, k^, g, beta, G as in gdn_chunked.comp; S0 the state at the
// chunk start):
//   L[t][s] = beta_t (k^_t . k^_s) e^(G_t - G_s)  s < t,    B[t][s] = (q^_t . k^_s) e^(G_t - G_s)  s <= t
//   T       = (I + L)^-1
//   W  = T diag(beta e^G) k^   [64][dk]    U = T diag(beta) V   [64][dv]    (Vnew = U - W S0)
//   Q' = diag(e^G) q^ - B W     [64][dk]    O_intra = B U        [64][dv]    (O = O_intra + Q' S0)
//   kf_t = e^(G_last - G_t) / |k_t|, e^G_last                               (S_next = e^G_last S0 + (kf k)^T Vnew)
// O_intra goes to o (pass 2 adds Q' S0); W, Q', U, kf, e^G_last to the scratch record (cl * Hv + h), layout in
// pc_gdn.h. Pass 2 then walks the chunks in order with three 64 x dk x BV products per chunk.
//
// A workgroup (256 invocations) owns one (chunk, value head):
//  1. the raw grid k.k (below the diagonal) and k.q (on and above), as gdn_chunked: one 4x4 block of the 16x16
//     token-quad grid per invocation, dk walked in tiles of 16 dims staged as vec4s of 4 tokens (each tile's loads
//     issued into registers during the previous tile's products); the diagonal blocks' strictly-lower k.k pairs by
//     96 fix-up invocations; sums of squares of k and q by 32 invocations;
//  2. gates and the compensated prefix sum G (gdn_chunked.comp says why), the scaled M = L below / B^T on and
//     above the diagonal in shared memory;
//  3. products with (I + L)^-1 (they replaced 256 columns of serial forward substitution, one per invocation,
//     which ran latency-bound at one workgroup per SM on the H100, ~130 us per (chunk, head); H100 run 31,
//     test_gdn --bench at 4096 tokens, both passes, segments of 16 chunks: 3.13 ms at CB 64 vs 3.25 ms):
//  3a. T = (I + L)^-1 explicitly, in place of L in M's strictly lower part (its unit diagonal implied): the four
//      16x16 diagonal blocks by substitution (64 invocations, one column each), then block row i = 1..3:
//      T_ij = -T_ii sum_k L_ik T_kj (two small products, four barriers);
//  3b. per block of CB columns of R = [diag(beta e^G rk) k | diag(beta) v] staged in shared memory (its loads issued
//      a block ahead), X = T R (W or U), X staged over R, then Y = B X (= (B T) R: Q' = e^G rq q - Y or O_intra),
//      a 4-row x CB/16-column tile of each per invocation. (Until H100 run 75 P = B T was formed first, one
//      element per invocation over a packed T, and Y = P R taken beside X: 0.60 of pass 1's 2.01 ms per layer at
//      4096 tokens went to forming P, 0.34 to the packed T's index arithmetic in 3a.)
// Spec: 0 CB (16, 32 or 64; shared memory 4 * (6592 + 64 CB) bytes: 30,464 / 34,560 / 42,752).
//
// Bindings: 0 qkv f32, 1 proj f32, 2 A_log [Hv], 3 dt_bias [Hv] (as gdn_chunked), 4 scratch f32 (records),
//           5 o f32 [T][Hv][dv] (O_intra of the segment's tokens)
// Push:     qn_pc_gdn_wy (pc_gdn.h)
// Dispatch: nc * Hv groups (qn_vk_grid); group = cl * Hv + h.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x = 256) in;
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_gdn_wy pc; };
layout(binding = 0, std430) readonly buffer Qkv { float qkv[]; };
layout(binding = 1, std430) readonly buffer Proj { float proj[]; };
layout(binding = 2, std430) readonly buffer Alog { float a_log[]; };
layout(binding = 3, std430) readonly buffer Dtb { float dt_bias[]; };
layout(binding = 4, std430) writeonly buffer Scr { float wy[]; };
layout(binding = 5, std430) writeonly buffer Out { float o[]; };

#include "gdn.glsl"

const uint WG = 256u;
const uint C = 64u;          // chunk
const uint C4 = 16u;         // token quads
const uint DT = 16u;         // dims per staged tile
const uint KQ = DT * C4;     // vec4s per part of a tile

layout(constant_id = 0) const uint QN_CB = 64;
const uint CT = QN_CB / 16u; // columns of a tile
shared vec4 rs4[16u * QN_CB]; // R's block [64][CB], then X's (3b); before them the products Z of 3a (768 floats)
shared vec4 kq4[2u * KQ];    // one tile of raw k (part 0) and q (part 1), [ii][token quad]
shared float M[C * C];       // [t][s]: L (then T) for s < t, B[s][t] for s >= t
shared float gc[C], gl[C];   // G as an unevaluated sum gc + gl
shared float bt[C], rk[C], rq[C], fk[C], eq[C];

uint lid, h, hk, c0, n;

// G_a - G_b
float gdiff(uint a, uint b) { return (gc[a] - gc[b]) + (gl[a] - gl[b]); }

const uint NPF = (2u * KQ + WG - 1u) / WG; // staged vec4s per invocation and tile

// tile d0 of raw k (part 0) and q (part 1) into registers (the loads only; put() stores them)
void fetch(uint d0, out vec4 pf[NPF])
{
    [[unroll]] for (uint m = 0u; m < NPF; m++) {
        uint e = lid + m * WG, part = e / KQ, r = e % KQ, ii = r % DT, t4 = r / DT, i = d0 + ii;
        uint off = (part == 0u ? pc.k_off : pc.q_off) + hk * pc.dk + i;
        vec4 v = vec4(0.0);
        for (uint u = 0u; u < 4u; u++) {
            uint t = 4u * t4 + u;
            if (e < 2u * KQ && t < n && i < pc.dk) v[u] = qkv[(c0 + t) * pc.qkv_stride + off];
        }
        pf[m] = v;
    }
}

void put(vec4 pf[NPF])
{
    [[unroll]] for (uint m = 0u; m < NPF; m++) {
        uint e = lid + m * WG, part = e / KQ, r = e % KQ;
        if (e < 2u * KQ) kq4[part * KQ + (r % DT) * C4 + r / DT] = pf[m];
    }
}

// fix-up pair f < 96: (t, s) = (4d + a, 4d + b), b < a, inside diagonal block d
uvec2 fxpair(uint f)
{
    uint p = f % 6u, d = f / 6u, a = p < 1u ? 1u : p < 3u ? 2u : 3u, b = p - (a * (a - 1u)) / 2u;
    return uvec2(4u * d + a, 4u * d + b);
}

// Steps 1 and 2: M, the gates and the per-token factors in shared memory.
void build_m()
{
    uint tb = lid / C4, sb = lid % C4, sbase = (sb < tb ? 0u : KQ) + sb;
    uvec2 fp = fxpair(lid < 96u ? lid : 0u);
    vec4 acc[4] = vec4[4](vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0)), ss = vec4(0.0);
    float fx = 0.0;
    vec2 gb = lid < n ? qn_gdn_gate(c0 + lid, h) : vec2(0.0); // its loads in flight during the grid
    vec4 pf[NPF];
    fetch(0u, pf);
    for (uint d0 = 0u; d0 < pc.dk; d0 += DT) {
        barrier();
        put(pf);
        barrier();
        if (d0 + DT < pc.dk) fetch(d0 + DT, pf); // the next tile's loads, in flight during this one's products
        for (uint ii = 0u; ii < DT; ii++) {
            uint row = ii * C4;
            vec4 kt = kq4[row + tb], os = kq4[sbase + row];
            acc[0] += kt.x * os;
            acc[1] += kt.y * os;
            acc[2] += kt.z * os;
            acc[3] += kt.w * os;
            if (lid < 96u) fx += kq4[row + fp.x / 4u][fp.x % 4u] * kq4[row + fp.y / 4u][fp.y % 4u];
            if (lid < 2u * C4) {
                vec4 v = kq4[(lid / C4) * KQ + row + lid % C4];
                ss += v * v;
            }
        }
    }
    for (uint u = 0u; u < 4u; u++) {
        float r = inversesqrt(ss[u] + 1e-6);
        if (lid < C4) rk[4u * lid + u] = r;
        else if (lid < 2u * C4) rq[4u * (lid - C4) + u] = r * inversesqrt(float(pc.dk));
    }
    if (lid < C) {
        gc[lid] = gb.x;
        bt[lid] = gb.y;
    }
    barrier();
    if (lid == 0u) { // compensated (TwoSum) prefix sum
        precise float G = 0.0, lo = 0.0;
        for (uint t = 0u; t < C; t++) {
            precise float x = gc[t], s = G + x, bp = s - G;
            lo += (G - (s - bp)) + (x - bp);
            G = s;
            gc[t] = G;
            gl[t] = lo;
        }
    }
    barrier();
    for (uint a = 0u; a < 4u; a++)
        for (uint c = 0u; c < 4u; c++) {
            uint t = 4u * tb + a, s = 4u * sb + c;
            if (s < t && tb != sb) M[t * C + s] = bt[t] * rk[t] * rk[s] * acc[a][c] * exp(gdiff(t, s));
            else if (s >= t) M[t * C + s] = rq[s] * rk[t] * acc[a][c] * exp(gdiff(s, t));
        }
    if (lid < 96u) M[fp.x * C + fp.y] = bt[fp.x] * rk[fp.x] * rk[fp.y] * fx * exp(gdiff(fp.x, fp.y));
    if (lid < C) {
        float eg = exp(gc[lid] + gl[lid]);
        fk[lid] = bt[lid] * eg * rk[lid];
        eq[lid] = eg * rq[lid];
    }
    barrier();
}

// The per-chunk gate factors of pass 2: kf and e^G_last (the record's tail).
void write_kf(uint krec)
{
    if (lid < C) wy[krec + lid] = rk[lid] * exp(gdiff(C - 1u, lid)); // padding rows: g = 0, so G[C-1] = G[n-1]
    if (lid == 0u) wy[krec + C] = exp(gc[C - 1u] + gl[C - 1u]);
}


float zget(uint i) { return rs4[i >> 2][i & 3u]; }
void zset(uint i, float v) { rs4[i >> 2][i & 3u] = v; }

// 3a: T = (I + L)^-1 over L in M's strictly lower part
void invert_l()
{
    uint b = lid / 16u, c = lid % 16u, r0 = 16u * b;
    float x[16];
    if (lid < C) { // diagonal block b, column c: (I + L_bb) x = e_c
        [[unroll]] for (uint u = 0u; u < 16u; u++) {
            float acc = 0.0;
            [[unroll]] for (uint v = 0u; v < u; v++) acc += M[(r0 + u) * C + r0 + v] * x[v];
            x[u] = u == c ? 1.0 : -acc;
        }
    }
    barrier(); // every column solved before L_bb is overwritten
    if (lid < C)
        [[unroll]] for (uint u = 1u; u < 16u; u++)
            if (u > c) M[(r0 + u) * C + r0 + c] = x[u];
    barrier();
    for (uint i = 1u; i < 4u; i++) { // block row i: Z_j = sum_{k=j}^{i-1} L_ik T_kj, then T_ij = -T_ii Z_j
        for (uint e = lid; e < i * 256u; e += WG) {
            uint j = e / 256u, r = (e / 16u) % 16u, cc = e % 16u, t = 16u * i + r, s = 16u * j + cc;
            float z = M[t * C + s]; // u = s: T_ss = 1
            for (uint u = s + 1u; u < 16u * i; u++) z += M[t * C + u] * M[u * C + s];
            zset(e, z);
        }
        barrier(); // row i's L read by every Z before it is overwritten
        for (uint e = lid; e < i * 256u; e += WG) {
            uint j = e / 256u, r = (e / 16u) % 16u, cc = e % 16u, t = 16u * i + r, zb = j * 256u + cc;
            float y = zget(zb + r * 16u);
            for (uint m = 0u; m < r; m++) y += M[t * C + 16u * i + m] * zget(zb + m * 16u);
            M[t * C + 16u * j + cc] = -y;
        }
        barrier();
    }
}

// R[s][col]: qkv's k (col < dk) or v column scaled by fk or beta; 0 past the chunk or the columns
float r_at(uint s, uint col)
{
    if (s >= n || col >= pc.dk + pc.dv) return 0.0;
    bool isk = col < pc.dk;
    uint src = isk ? pc.k_off + hk * pc.dk + col : pc.v_off + h * pc.dv + (col - pc.dk);
    return qkv[(c0 + s) * pc.qkv_stride + src] * (isk ? fk[s] : bt[s]);
}

// CT consecutive values of the staged R block from float index ri (a multiple of CT)
void r_row(uint ri, out float r[CT])
{
    if (CT == 4u) {
        vec4 v = rs4[ri >> 2];
        r[0] = v.x, r[1 % CT] = v.y, r[2 % CT] = v.z, r[3 % CT] = v.w;
    } else {
        [[unroll]] for (uint j = 0u; j < CT; j++) r[j] = rs4[(ri + j) >> 2][(ri + j) & 3u];
    }
}

const uint RPT = C * QN_CB / WG; // R values per invocation and block

// R's block of columns b0 .. + CB into registers (issued a block ahead: their loads are in flight meanwhile)
void fetch_r(uint b0, out float rp[RPT])
{
    [[unroll]] for (uint m = 0u; m < RPT; m++) {
        uint e = lid + m * WG;
        rp[m] = r_at(e / QN_CB, b0 + e % QN_CB);
    }
}

void main()
{
    lid = gl_LocalInvocationIndex;
    uint grp = qn_group_id();
    if (grp >= pc.nc * pc.Hv) return; // uniform over the workgroup
    uint cl = grp / pc.Hv;
    h = grp % pc.Hv;
    hk = h / (pc.Hv / pc.Hk);
    c0 = pc.t0 + C * cl;
    if (c0 >= pc.T) return;
    n = min(C, pc.T - c0);
    build_m();

    uint dk = pc.dk, dv = pc.dv, rec = (cl * pc.Hv + h) * (2u * C * dk + C * dv + C + 4u);
    write_kf(rec + 2u * C * dk + C * dv);
    float rp[RPT];
    fetch_r(0u, rp); // in flight during the inversion
    invert_l();

    uint cg = lid % 16u, t0 = 4u * (lid / 16u);
    for (uint b0 = 0u; b0 < dk + dv; b0 += QN_CB) {
        barrier();
        [[unroll]] for (uint m = 0u; m < RPT; m++) zset(lid + m * WG, rp[m]);
        barrier();
        float X[4][CT], Y[4][CT];
        [[unroll]] for (uint i = 0u; i < 4u; i++)
            [[unroll]] for (uint j = 0u; j < CT; j++) X[i][j] = 0.0, Y[i][j] = 0.0;
        for (uint s0 = 0u; s0 < t0; s0 += 4u) { // X = T R: below the tile's rows, 4 columns s a step
            vec4 a4[4];
            [[unroll]] for (uint i = 0u; i < 4u; i++) {
                uint mb = (t0 + i) * C + s0;
                a4[i] = vec4(M[mb], M[mb + 1u], M[mb + 2u], M[mb + 3u]);
            }
            [[unroll]] for (uint u = 0u; u < 4u; u++) {
                float r[CT];
                r_row((s0 + u) * QN_CB + cg * CT, r);
                [[unroll]] for (uint i = 0u; i < 4u; i++)
                    [[unroll]] for (uint j = 0u; j < CT; j++) X[i][j] += a4[i][u] * r[j];
            }
        }
        [[unroll]] for (uint u = 0u; u < 4u; u++) { // the tile's own 4 x 4 triangle of T
            float r[CT];
            r_row((t0 + u) * QN_CB + cg * CT, r);
            [[unroll]] for (uint i = 0u; i < 4u; i++) {
                float a = u < i ? M[(t0 + i) * C + t0 + u] : u == i ? 1.0 : 0.0;
                [[unroll]] for (uint j = 0u; j < CT; j++) X[i][j] += a * r[j];
            }
        }
        barrier(); // R read by all
        [[unroll]] for (uint i = 0u; i < 4u; i++)
            [[unroll]] for (uint j = 0u; j < CT; j++) zset((t0 + i) * QN_CB + cg * CT + j, X[i][j]);
        barrier();
        if (b0 + QN_CB < dk + dv) fetch_r(b0 + QN_CB, rp);
        for (uint u0 = 0u; u0 < t0; u0 += 4u) { // Y = B X: B[t][u] = M[u][t] (u <= t), 4 rows u a step
            [[unroll]] for (uint u = 0u; u < 4u; u++) {
                uint mb = (u0 + u) * C + t0;
                vec4 b4 = vec4(M[mb], M[mb + 1u], M[mb + 2u], M[mb + 3u]);
                float x[CT];
                r_row((u0 + u) * QN_CB + cg * CT, x);
                [[unroll]] for (uint i = 0u; i < 4u; i++)
                    [[unroll]] for (uint j = 0u; j < CT; j++) Y[i][j] += b4[i] * x[j];
            }
        }
        [[unroll]] for (uint u = 0u; u < 4u; u++) { // the tile's own triangle of B (its diagonal included)
            float x[CT];
            r_row((t0 + u) * QN_CB + cg * CT, x);
            [[unroll]] for (uint i = 0u; i < 4u; i++) {
                float bb = u <= i ? M[(t0 + u) * C + t0 + i] : 0.0;
                [[unroll]] for (uint j = 0u; j < CT; j++) Y[i][j] += bb * x[j];
            }
        }
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            uint t = t0 + i;
            [[unroll]] for (uint j = 0u; j < CT; j++) {
                uint col = b0 + cg * CT + j;
                if (col >= dk + dv) continue;
                if (col < dk) {
                    float q = t < n ? qkv[(c0 + t) * pc.qkv_stride + pc.q_off + hk * dk + col] : 0.0;
                    wy[rec + t * dk + col] = X[i][j];
                    wy[rec + C * dk + t * dk + col] = eq[t] * q - Y[i][j];
                } else {
                    wy[rec + 2u * C * dk + t * dv + (col - dk)] = X[i][j];
                    if (t < n) o[(c0 + t) * pc.Hv * dv + h * dv + (col - dk)] = Y[i][j];
                }
            }
        }
    }
}
