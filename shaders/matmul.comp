#version 450
// matmul.comp — prefill projection Y[M, N] = X[M, K] · W[N, K]^T (+ Y), f32 accumulation, shared-memory tiles.
//
// Variants (defines): QN_W_BF16 | QN_W_F16 | QN_W_F32 (weight dtype). No subgroup operations.
// Bindings: 0 W   row-major [N, K] of the weight dtype (16-bit values packed two per uint)
//           1 X   f32, element (m, k) at x_off + m * ldx + k
//           2 Y   f32, element (m, n) at y_off + m * ldy + n (read too when flags & QN_MATMUL_ACCUMULATE)
// Push:     qn_pc_matmul { M, N, K, ldx, ldy, x_off, y_off, flags }
// Spec:     0 QN_WG workgroup size (default 256) = (BM / TM) * (BN / TN)
//           1 BM tile rows of X (tokens, default 64)   2 BN tile rows of W (outputs, default 64)
//           3 BK k per step (multiple of 8, default 32)
//           4 TM, 5 TN outputs per invocation along m and n (multiples of 4, default 4 x 4)
//           6 QN_PF  1: prefetch (where both blocks take the 16-byte path): the next step's X and W chunks are
//                    loaded into registers while the current step computes, and consecutive invocations take
//                    consecutive 16-byte chunks of a row (coalesced) instead of consecutive rows; 0 (default): the
//                    loads below. Same products in the same order: bit-identical results.
// Dispatch: ceil(M / BM) * ceil(N / BN) groups (qn_vk_grid); group g covers tile (g / nbn, g % nbn),
//           nbn = ceil(N / BN), so neighbouring groups share the same X rows.
// Each step loads a BM x BK block of X and a BN x BK block of W into shared memory, k-major (16-byte global
// loads when K is a multiple of the chunk width and X is 16-byte aligned, else element loads; out-of-range
// elements read as 0; consecutive invocations take consecutive rows, so the transposed shared stores are
// free of bank conflicts). Invocation (tx, ty) then accumulates the TM x TN outputs at rows ty*TM.., columns
// tx*TN.. with 16-byte shared reads (vec4 FMAs) and writes them as contiguous runs. Any M, N, K. The sum
// over k is in ascending order for every output, so results do not depend on the dispatch.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 32;
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;
layout(constant_id = 6) const uint QN_PF = 0;
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_matmul pc; };
layout(binding = 0, std430) readonly buffer W4 { uvec4 w4[]; };
layout(binding = 0, std430) readonly buffer W1 { uint w1[]; };
layout(binding = 1, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1, std430) readonly buffer X1 { float x1[]; };
layout(binding = 2, std430) buffer Y { float y[]; };

const uint NX = BN / TN;  // invocations along n
const uint NY = BM / TM;  // invocations along m
const uint SA = BM + 4u;  // shared row strides (padded, 16-byte aligned)
const uint SB = BN + 4u;
shared vec4 As[BK * SA / 4u]; // X block, element (k, m) at k * SA + m
shared vec4 Bs[BK * SB / 4u]; // W block, element (k, n) at k * SB + n

void put_a(uint e, float v) { As[e >> 2][e & 3u] = v; }
void put_b(uint e, float v) { Bs[e >> 2][e & 3u] = v; }

#if defined(QN_W_F32)
const uint CW = 4u;
float w_at(uint e) { return uintBitsToFloat(w1[e]); }
#elif defined(QN_W_BF16)
const uint CW = 8u;
float w_at(uint e) { return qn_bf16_at(w1[e >> 1], e); }
#else
const uint CW = 8u;
float w_at(uint e) { return qn_f16_at(w1[e >> 1], e); }
#endif

// X block [BM x BK] at (m0, k0) -> As
void load_x(uint m0, uint k0, bool vec)
{
    uint lid = gl_LocalInvocationIndex;
    if (vec) {
        for (uint q = lid; q < BM * BK / 4u; q += QN_WG) {
            uint m = q % BM, kc = (q / BM) * 4u;
            vec4 v = vec4(0.0);
            if (m0 + m < pc.M && k0 + kc < pc.K) v = x4[(pc.x_off + (m0 + m) * pc.ldx + k0 + kc) / 4u];
            for (uint c = 0u; c < 4u; c++) put_a((kc + c) * SA + m, v[c]);
        }
    } else {
        for (uint q = lid; q < BM * BK; q += QN_WG) {
            uint m = q % BM, k = q / BM;
            put_a(k * SA + m, m0 + m < pc.M && k0 + k < pc.K ? x1[pc.x_off + (m0 + m) * pc.ldx + k0 + k] : 0.0);
        }
    }
}

// W block [BN x BK] at (n0, k0) -> Bs
void load_w(uint n0, uint k0, bool vec)
{
    uint lid = gl_LocalInvocationIndex;
    if (vec) {
        uint nch = pc.K / CW; // chunks per W row
        for (uint q = lid; q < BN * BK / CW; q += QN_WG) {
            uint n = q % BN, kc = (q / BN) * CW;
            uvec4 u = uvec4(0u);
            if (n0 + n < pc.N && k0 + kc < pc.K) u = w4[(n0 + n) * nch + (k0 + kc) / CW];
#if defined(QN_W_F32)
            vec4 a = uintBitsToFloat(u);
            for (uint c = 0u; c < 4u; c++) put_b((kc + c) * SB + n, a[c]);
#else
            vec4 a, b;
#if defined(QN_W_BF16)
            qn_bf16x8(u, a, b);
#else
            qn_f16x8(u, a, b);
#endif
            for (uint c = 0u; c < 4u; c++) {
                put_b((kc + c) * SB + n, a[c]);
                put_b((kc + 4u + c) * SB + n, b[c]);
            }
#endif
        }
    } else {
        for (uint q = lid; q < BN * BK; q += QN_WG) {
            uint n = q % BN, k = q / BN;
            put_b(k * SB + n, n0 + n < pc.N && k0 + k < pc.K ? w_at((n0 + n) * pc.K + k0 + k) : 0.0);
        }
    }
}

// ---- QN_PF: register prefetch of the next step's blocks (16-byte paths only), rows read along k
const uint XC = BM * BK / 4u, WC = BN * BK / CW;     // 16-byte chunks per step
const uint XQ = (XC + QN_WG - 1u) / QN_WG, WQ = (WC + QN_WG - 1u) / QN_WG;
vec4 xr[XQ];
uvec4 wr[WQ];
void fetch(uint m0, uint n0, uint k0)
{
    uint lid = gl_LocalInvocationIndex;
    for (uint i = 0u; i < XQ; i++) {
        uint q = lid + i * QN_WG, m = q / (BK / 4u), kc = (q % (BK / 4u)) * 4u;
        xr[i] = q < XC && m0 + m < pc.M && k0 + kc < pc.K ? x4[(pc.x_off + (m0 + m) * pc.ldx + k0 + kc) / 4u] : vec4(0.0);
    }
    for (uint i = 0u; i < WQ; i++) {
        uint q = lid + i * QN_WG, n = q / (BK / CW), kc = (q % (BK / CW)) * CW;
        wr[i] = q < WC && n0 + n < pc.N && k0 + kc < pc.K ? w4[((n0 + n) * pc.K + k0 + kc) / CW] : uvec4(0u);
    }
}
void store()
{
    uint lid = gl_LocalInvocationIndex;
    for (uint i = 0u; i < XQ; i++) {
        uint q = lid + i * QN_WG, m = q / (BK / 4u), kc = (q % (BK / 4u)) * 4u;
        if (q < XC)
            for (uint c = 0u; c < 4u; c++) put_a((kc + c) * SA + m, xr[i][c]);
    }
    for (uint i = 0u; i < WQ; i++) {
        uint q = lid + i * QN_WG, n = q / (BK / CW), kc = (q % (BK / CW)) * CW;
        if (q >= WC) continue;
#if defined(QN_W_F32)
        vec4 a = uintBitsToFloat(wr[i]);
        for (uint c = 0u; c < 4u; c++) put_b((kc + c) * SB + n, a[c]);
#else
        vec4 a, b;
#if defined(QN_W_BF16)
        qn_bf16x8(wr[i], a, b);
#else
        qn_f16x8(wr[i], a, b);
#endif
        for (uint c = 0u; c < 4u; c++) {
            put_b((kc + c) * SB + n, a[c]);
            put_b((kc + 4u + c) * SB + n, b[c]);
        }
#endif
    }
}

void main()
{
    uint nbn = (pc.N + BN - 1u) / BN;
    uint g = qn_group_id();
    if (g >= nbn * ((pc.M + BM - 1u) / BM)) return; // uniform over the workgroup
    uint m0 = (g / nbn) * BM, n0 = (g % nbn) * BN;
    uint lid = gl_LocalInvocationIndex;
    uint tx = lid % NX, ty = lid / NX;
    bool xvec = pc.K % 4u == 0u && pc.ldx % 4u == 0u && pc.x_off % 4u == 0u;
    bool wvec = pc.K % CW == 0u;

    vec4 acc[TM * TN / 4u]; // acc[i * TN/4 + jj] = outputs (row ty*TM + i, columns tx*TN + 4jj ..)
    for (uint i = 0u; i < TM * TN / 4u; i++) acc[i] = vec4(0.0);
    vec4 a[TM / 4u], b[TN / 4u];
    bool pf = QN_PF != 0u && xvec && wvec; // uniform
    if (pf) fetch(m0, n0, 0u);
    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        if (pf) {
            store();
            barrier();
            if (k0 + BK < pc.K) fetch(m0, n0, k0 + BK); // in flight while this step computes
        } else {
            load_x(m0, k0, xvec);
            load_w(n0, k0, wvec);
            barrier();
        }
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
    // constant trip counts, no break (H100 runs 95-96, 64x32x32 tile at M 4096 N 64: 0.089 ms against 0.361 with
    // breaks; TN 8 tiles stay 10-50x slower either way)
    for (uint i = 0u; i < TM; i++) {
        uint m = m0 + ty * TM + i;
        for (uint j = 0u; j < TN; j++) {
            uint n = n0 + tx * TN + j;
            if (m < pc.M && n < pc.N) {
                uint o = pc.y_off + m * pc.ldy + n;
                float v = acc[i * (TN / 4u) + j / 4u][j % 4u];
                y[o] = accumulate ? y[o] + v : v;
            }
        }
    }
}
