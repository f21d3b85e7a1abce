#version 450
// qmatmul.comp — prefill projection Y[M, N] = X[M, K] · W[N, K]^T (+ Y) with W in a ggml block format
// (GGUF models), f32 math: the tiled matmul of matmul.comp with the weight tile decoded from the blocks
// into shared memory inside the k-loop (common/qtile.glsl), so each weight is read and decoded once per
// BM tokens instead of once per token (the matvec kernels with tokens in z).
//
// Variants (defines): QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K. No subgroup operations.
// Bindings: 0 W   raw blocks, row-major: row n is blocks [n * K / QK, (n + 1) * K / QK); the binding starts
//                 at row 0 at a multiple of 16 bytes, its range rounded up to a multiple of 4 bytes
//           1 X   f32, element (m, k) at x_off + m * ldx + k
//           2 Y   f32, element (m, n) at y_off + m * ldy + n (read too when flags & QN_MATMUL_ACCUMULATE)
// Push:     qn_pc_matmul { M, N, K, ldx, ldy, x_off, y_off, flags } (pc_matmul.h); K a multiple of the
//           block size QK (32 or 256; the caller checks)
// Spec:     0 QN_WG workgroup size (default 256) = (BM / TM) * (BN / TN)
//           1 BM tile rows of X (tokens, default 64)   2 BN tile rows of W (outputs, default 64)
//           3 BK k per step (a multiple of 8, default 32)
//           4 TM, 5 TN outputs per invocation along m and n (multiples of 4, default 4 x 4)
// Dispatch: ceil(M / BM) * ceil(N / BN) groups (qn_vk_grid); group g covers tile (g / nbn, g % nbn),
//           nbn = ceil(N / BN), so neighbouring groups share the same X rows.
// Each k-step, invocations take 8-weight groups of the BN x BK weight tile (consecutive invocations: the
// consecutive groups of one row, i.e. consecutive bytes of its blocks) and 4-float runs of the BM x BK X
// tile (consecutive invocations along a row of X); the loads of step s + 1 are issued into registers
// before the FMAs of step s (software pipelining) and decoded / stored k-major into shared memory after
// them. The FMA micro-tile is matmul.comp's: invocation (tx, ty) accumulates TM x TN outputs with vec4
// FMAs from 16-byte shared reads. The sum over k is in ascending order for every output, so results do not
// depend on the dispatch or on M.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 32;
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_matmul pc; };
layout(binding = 0, std430) readonly buffer W4 { uvec4 w4[]; };
layout(binding = 0, std430) readonly buffer W1 { uint w1[]; };
layout(binding = 1, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1, std430) readonly buffer X1 { float x1[]; };
layout(binding = 2, std430) buffer Y { float y[]; };
#define QN_QW(i) w1[i]
#define QN_QW4(i) w4[i]
#include "qtile.glsl"

const uint NX = BN / TN;  // invocations along n
const uint NY = BM / TM;  // invocations along m
const uint SA = BM + 4u;  // shared row strides (padded, 16-byte aligned)
const uint SB = BN + 4u;
shared vec4 As[BK * SA / 4u]; // X block, element (k, m) at k * SA + m
shared vec4 Bs[BK * SB / 4u]; // W block, element (k, n) at k * SB + n

void put_a(uint e, float v) { As[e >> 2][e & 3u] = v; }
void put_b(uint e, float v) { Bs[e >> 2][e & 3u] = v; }

const uint XR = BK / 4u;                                // 4-float runs per X tile row and step
const uint WR = BK / 8u;                                // 8-weight groups per W tile row and step
const uint XPT = (BM * XR + QN_WG - 1u) / QN_WG;        // X runs per invocation
const uint WPT = (BN * WR + QN_WG - 1u) / QN_WG;        // weight groups per invocation
vec4 xr[XPT];
qt_raw wr[WPT];
uint g_m0, g_n0, g_rowb; // tile origin, bytes per W row
bool g_xvec;

// global memory -> registers for the step at k0 (loads only)
void fetch(uint k0, uint lid)
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG, m = idx / XR, kc = k0 + (idx % XR) * 4u;
        vec4 v = vec4(0.0);
        if (idx < BM * XR && g_m0 + m < pc.M && kc < pc.K) {
            uint o = pc.x_off + (g_m0 + m) * pc.ldx + kc;
            if (g_xvec) v = x4[o / 4u];
            else
                for (uint c = 0u; c < 4u; c++) v[c] = kc + c < pc.K ? x1[o + c] : 0.0;
        }
        xr[i] = v;
    }
    for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * QN_WG, n = idx / WR, kc = k0 + (idx % WR) * 8u;
        if (idx < BN * WR && g_n0 + n < pc.N && kc < pc.K) wr[i] = qt_fetch((g_n0 + n) * g_rowb, kc);
    }
}

// registers -> shared memory (decoding the weights), k-major
void store(uint k0, uint lid)
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG, m = idx / XR, kc = (idx % XR) * 4u;
        if (idx < BM * XR)
            for (uint c = 0u; c < 4u; c++) put_a((kc + c) * SA + m, xr[i][c]);
    }
    for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * QN_WG, n = idx / WR, kc = (idx % WR) * 8u;
        if (idx >= BN * WR) break;
        vec4 a = vec4(0.0), b = vec4(0.0);
        if (g_n0 + n < pc.N && k0 + kc < pc.K) qt_decode(wr[i], (g_n0 + n) * g_rowb, k0 + kc, a, b);
        for (uint c = 0u; c < 4u; c++) {
            put_b((kc + c) * SB + n, a[c]);
            put_b((kc + 4u + c) * SB + n, b[c]);
        }
    }
}

void main()
{
    uint nbn = (pc.N + BN - 1u) / BN;
    uint g = qn_group_id();
    if (g >= nbn * ((pc.M + BM - 1u) / BM)) return; // uniform over the workgroup
    g_m0 = (g / nbn) * BM;
    g_n0 = (g % nbn) * BN;
    g_rowb = (pc.K / QT_QK) * QT_BB;
    g_xvec = pc.K % 4u == 0u && pc.ldx % 4u == 0u && pc.x_off % 4u == 0u;
    uint lid = gl_LocalInvocationIndex;
    uint tx = lid % NX, ty = lid / NX;

    vec4 acc[TM * TN / 4u]; // acc[i * TN/4 + jj] = outputs (row ty*TM + i, columns tx*TN + 4jj ..)
    for (uint i = 0u; i < TM * TN / 4u; i++) acc[i] = vec4(0.0);
    vec4 a[TM / 4u], b[TN / 4u];
    fetch(0u, lid);
    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        store(k0, lid);
        barrier();
        if (k0 + BK < pc.K) fetch(k0 + BK, lid); // in flight during the FMAs below
        for (uint k = 0u; k < BK; k++) {
            for (uint i = 0u; i < TM / 4u; i++) a[i] = As[(k * SA + ty * TM) / 4u + i];
            for (uint j = 0u; j < TN / 4u; j++) b[j] = Bs[(k * SB + tx * TN) / 4u + j];
            for (uint i = 0u; i < TM; i++) {
                float ai = a[i / 4u][i % 4u];
                for (uint j = 0u; j < TN / 4u; j++) acc[i * (TN / 4u) + j] = fma(vec4(ai), b[j], acc[i * (TN / 4u) + j]);
            }
        }
        barrier();
    }
    bool accumulate = (pc.flags & QN_MATMUL_ACCUMULATE) != 0u;
    for (uint i = 0u; i < TM; i++) {
        uint m = g_m0 + ty * TM + i;
        if (m >= pc.M) break;
        for (uint j = 0u; j < TN; j++) {
            uint n = g_n0 + tx * TN + j;
            if (n >= pc.N) break;
            uint o = pc.y_off + m * pc.ldy + n;
            float v = acc[i * (TN / 4u) + j / 4u][j % 4u];
            y[o] = accumulate ? y[o] + v : v;
        }
    }
}
