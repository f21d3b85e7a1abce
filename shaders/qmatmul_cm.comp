#version 450
// qmatmul_cm.comp — prefill projection Y[M, N] = X[M, K] · W[N, K]^T (+ Y) on tensor cores through
// VK_NV_cooperative_matrix (GL_NV_cooperative_matrix; glslang 12 has no KHR cooperative matrix): the weight
// tile is decoded to f16 in shared memory (ggml blocks through common/qtile.glsl, or bf16 / f16 / f32
// weights converted), the X tile converted from f32 to f16, and each subgroup multiplies 16x16x16 f16
// fragments into f32 accumulators.
//
// Variants (defines): QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K | QN_W_BF16 | QN_W_F16 | QN_W_F32.
// Needs: QN_FEAT_COOPMAT_NV (the extension, its feature and an f16 x f16 + f32 16x16x16 or 16x8x16 shape),
//        shaderFloat16, vulkanMemoryModel, subgroups of 32 invocations (the host checks; NVIDIA).
// Bindings: as qmatmul.comp / matmul.comp: 0 W (raw blocks, or [N, K] of the weight dtype; the binding starts
//           at row 0 at a multiple of 16 bytes), 1 X f32, 2 Y f32.
// Push:     qn_pc_matmul { M, N, K, ldx, ldy, x_off, y_off, flags }; K a multiple of the block size (ggml
//           formats) or of 8 (bf16 / f16 / f32: rows of whole 16-byte chunks; the caller checks)
// Spec:     0 QN_WG workgroup size = 32 · (BM / 32) · (BN / 32) (default 128)
//           1 BM tile rows of X (tokens, a multiple of 32, default 64)
//           2 BN tile rows of W (outputs, a multiple of 32, default 64)
//           3 BK k per step (a multiple of 16, default 32)
//           4 CN fragment width along the outputs: 16 (the 16x16x16 shape, default) or 8 (16x8x16), whichever
//             the device lists (caps->coopmat_nv_n)
//           5 NBUF shared tile buffers: 1 (default: two barriers per k-step) or 2 (the next step is decoded into
//             the other buffer after the multiplies; one barrier per k-step; twice the tile memory)
// Dispatch: ceil(M / BM) * ceil(N / BN) groups (qn_vk_grid), tile (g / nbn, g % nbn) as matmul.comp.
// Subgroup s owns the 32 x 32 outputs at (32 (s / (BN / 32)), 32 (s % (BN / 32))) of the tile: 2 x 2
// accumulator fragments of 16 x 16 (2 x 4 of 16 x 8 when CN = 8). Per k-step: invocations load 8-weight groups
// and 4-float X runs into registers
// (the next step's while the current one multiplies), decode / convert them to f16 in shared memory (row-
// major [row][k], rows padded to BK + 8 halves, 8 halves per uvec4 store), then each subgroup loads 2 A fragments (X rows) and 2 B
// fragments (W rows, read column-major as W^T) per 16 of k and does 4 (CN 8: 8) multiply-adds. Each accumulator goes
// through a 16 x 16 shared block of its subgroup to Y (bounds, accumulate flag). Fixed summation order per output (the fragments'
// k order), independent of the dispatch. Shared memory: NBUF (BM + BN) (BK + 8) halves + QN_WG / 2 * 20 floats
// (64 x 64 x 32: 20 KB, NBUF 2: 30 KB; 128 x 128 x 32: 40 KB).
// Accuracy: X and the decoded weights are rounded to f16 (11-bit significand; |X| is clamped to 65504),
// products and sums are f32: relative error ~5e-4 of sum |w x| per output (test_qmatmul measures it).
#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 32;
layout(constant_id = 4) const uint CN = 16; // fragment width along the outputs: 16 (16x16x16) or 8 (16x8x16)
layout(constant_id = 5) const uint NBUF = 1; // shared tile buffers (1 or 2)
#include "pc.h"
#include "grid.glsl"
#include "types.glsl"

layout(push_constant) uniform PC { qn_pc_matmul pc; };
layout(binding = 0, std430) readonly buffer W4 { uvec4 w4[]; };
layout(binding = 0, std430) readonly buffer W1 { uint w1[]; };
layout(binding = 1, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1, std430) readonly buffer X1 { float x1[]; };
layout(binding = 2, std430) buffer Y { float y[]; };

#if defined(QN_W_BF16) || defined(QN_W_F16) || defined(QN_W_F32)
// plain weights: 8 consecutive elements of a row at byte rb (16-aligned) as 1 (16-bit) or 2 (f32) uvec4
struct qt_raw { uvec4 a, b; };
#if defined(QN_W_F32)
const uint QT_ESZ = 4u;
qt_raw qt_fetch(uint rb, uint e) { uint i = (rb + 4u * e) / 16u; return qt_raw(w4[i], w4[i + 1u]); }
void qt_decode(qt_raw r, uint rb, uint e, out vec4 a, out vec4 b) { a = uintBitsToFloat(r.a); b = uintBitsToFloat(r.b); }
#else
const uint QT_ESZ = 2u;
qt_raw qt_fetch(uint rb, uint e) { return qt_raw(w4[(rb + 2u * e) / 16u], uvec4(0u)); }
#if defined(QN_W_BF16)
void qt_decode(qt_raw r, uint rb, uint e, out vec4 a, out vec4 b) { qn_bf16x8(r.a, a, b); }
#else
void qt_decode(qt_raw r, uint rb, uint e, out vec4 a, out vec4 b) { qn_f16x8(r.a, a, b); }
#endif
#endif
#else
#define QN_QW(i) w1[i]
#define QN_QW4(i) w4[i]
#include "qtile.glsl"
#endif

#define CMA fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>  // A: 16 tokens x 16 k
#define CMB fcoopmatNV<16, gl_ScopeSubgroup, 16, CN>  // B: 16 k x CN weight rows
#define CMC fcoopmatNV<32, gl_ScopeSubgroup, 16, CN>  // C: 16 tokens x CN rows
const uint NB = 32u / CN;                           // B fragments per subgroup (2 or 4)

const uint SK = BK + 8u;          // halves per shared row (a multiple of 8: 16-byte aligned rows)
const uint SK4 = SK / 8u;         // uvec4 per shared row
const uint SC = 20u;              // floats per row of a subgroup's 16 x 16 output staging block
shared uvec4 Xs[NBUF * BM * SK4]; // X tile of buffer b, element (m, k) at half (b BM + m) SK + k
shared uvec4 Ws[NBUF * BN * SK4]; // W tile of buffer b, element (n, k) at half (b BN + n) SK + k
shared float Cs[QN_WG / 2u * SC];  // per subgroup (QN_WG / 32 of them) a 16 x SC block: accumulators on the way out

const uint XR = BK / 8u;                                // 8-float runs per X tile row and step
const uint WR = BK / 8u;                                // 8-weight groups per W tile row and step
const uint XPT = (BM * XR + QN_WG - 1u) / QN_WG;
const uint WPT = (BN * WR + QN_WG - 1u) / QN_WG;
vec4 xr[XPT][2];
qt_raw wr[WPT];
uint g_m0, g_n0, g_rowb;
bool g_xvec;

vec4 x_run4(uint m, uint kc) // X[g_m0 + m, kc .. kc + 4), zeros outside
{
    vec4 v = vec4(0.0);
    if (g_m0 + m < pc.M && kc < pc.K) {
        uint o = pc.x_off + (g_m0 + m) * pc.ldx + kc;
        if (g_xvec) v = x4[o / 4u];
        else
            for (uint c = 0u; c < 4u; c++) v[c] = kc + c < pc.K ? x1[o + c] : 0.0;
    }
    return v;
}

void fetch(uint k0, uint lid) // global memory -> registers (loads only)
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG, m = idx / XR, kc = k0 + (idx % XR) * 8u;
        bool ok = idx < BM * XR;
        xr[i][0] = ok ? x_run4(m, kc) : vec4(0.0);
        xr[i][1] = ok ? x_run4(m, kc + 4u) : vec4(0.0);
    }
    for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * QN_WG, n = idx / WR, kc = k0 + (idx % WR) * 8u;
        if (idx < BN * WR && g_n0 + n < pc.N && kc < pc.K) wr[i] = qt_fetch((g_n0 + n) * g_rowb, kc);
    }
}

void store(uint k0, uint lid, uint buf) // registers -> f16 shared tiles of buffer buf
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG, m = idx / XR;
        if (idx >= BM * XR) break;
        Xs[(buf * BM + m) * SK4 + idx % XR] = qn_pack_f16x8(clamp(xr[i][0], vec4(-65504.0), vec4(65504.0)),
                                                    clamp(xr[i][1], vec4(-65504.0), vec4(65504.0)));
    }
    for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * QN_WG, n = idx / WR, kc = (idx % WR) * 8u;
        if (idx >= BN * WR) break;
        vec4 a = vec4(0.0), b = vec4(0.0);
        if (g_n0 + n < pc.N && k0 + kc < pc.K) qt_decode(wr[i], (g_n0 + n) * g_rowb, k0 + kc, a, b);
        Ws[(buf * BN + n) * SK4 + idx % WR] = qn_pack_f16x8(a, b);
    }
}

void main()
{
    uint nbn = (pc.N + BN - 1u) / BN;
    uint g = qn_group_id();
    if (g >= nbn * ((pc.M + BM - 1u) / BM)) return; // uniform over the workgroup
    g_m0 = (g / nbn) * BM;
    g_n0 = (g % nbn) * BN;
#if defined(QN_W_BF16) || defined(QN_W_F16) || defined(QN_W_F32)
    g_rowb = pc.K * QT_ESZ;
#else
    g_rowb = (pc.K / QT_QK) * QT_BB;
#endif
    g_xvec = pc.K % 4u == 0u && pc.ldx % 4u == 0u && pc.x_off % 4u == 0u;
    uint lid = gl_LocalInvocationIndex;
    uint s = gl_SubgroupID, wm = (s / (BN / 32u)) * 32u, wn = (s % (BN / 32u)) * 32u; // subgroup's 32 x 32

    CMC acc[8]; // acc[4i + j]: tokens wm + 16i .., rows wn + CN j .. (j < NB)
    [[unroll]] for (uint i = 0u; i < 8u; i++) acc[i] = CMC(0.0);
    fetch(0u, lid);
    store(0u, lid, 0u);
    barrier();
    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        uint cur = NBUF == 2u ? (k0 / BK) & 1u : 0u;
        bool more = k0 + BK < pc.K;
        if (more) fetch(k0 + BK, lid); // in flight during the multiplies below
        for (uint kk = 0u; kk < BK; kk += 16u) {
            CMA a0, a1;
            coopMatLoadNV(a0, Xs, (cur * BM + wm) * SK4 + kk / 8u, SK4, false);
            coopMatLoadNV(a1, Xs, (cur * BM + wm + 16u) * SK4 + kk / 8u, SK4, false);
            [[unroll]] for (uint j = 0u; j < 4u; j++) {
                if (j >= NB) break; // specialization constant
                CMB b;
                coopMatLoadNV(b, Ws, (cur * BN + wn + CN * j) * SK4 + kk / 8u, SK4, true);
                acc[j] = coopMatMulAddNV(a0, b, acc[j]);
                acc[4u + j] = coopMatMulAddNV(a1, b, acc[4u + j]);
            }
        }
        if (NBUF == 1u) barrier(); // everyone is done with the buffer before it is rewritten
        if (more) store(k0 + BK, lid, NBUF == 2u ? 1u - cur : 0u);
        barrier();
    }
    // epilogue: each subgroup passes its fragments, 16 x 16 outputs at a time, through its own staging block
    bool accumulate = (pc.flags & QN_MATMUL_ACCUMULATE) != 0u;
    uint cb = s * 16u * SC, lane = gl_SubgroupInvocationID;
    [[unroll]] for (uint f = 0u; f < 4u; f++) { // f: token half f >> 1, row half f & 1
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            if (j >= NB / 2u) break;
            coopMatStoreNV(acc[4u * (f >> 1u) + (f & 1u) * (NB / 2u) + j], Cs, cb + CN * j, SC, false);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        uint fm = g_m0 + wm + 16u * (f >> 1u), fn = g_n0 + wn + 16u * (f & 1u);
        for (uint i = lane; i < 256u; i += gl_SubgroupSize) {
            uint m = fm + i / 16u, n = fn + i % 16u;
            if (m >= pc.M || n >= pc.N) continue;
            uint o = pc.y_off + m * pc.ldy + n;
            float v = Cs[cb + (i / 16u) * SC + i % 16u];
            y[o] = accumulate ? y[o] + v : v;
        }
        subgroupBarrier(); // the block is rewritten by the next fragment
    }
}
