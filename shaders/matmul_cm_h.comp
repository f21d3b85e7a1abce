#version 450
// matmul_cm_h.comp — Y[M, N] = X[M, K] · W[N, K]^T (+ Y) on tensor cores (VK_NV_cooperative_matrix) with X and W
// already in f16 (a decode pass wrote them), so the k loop only moves 16-byte chunks: no decode, no conversion.
//
// Needs: QN_FEAT_COOPMAT_NV (f16 x f16 + f32 16x16x16), shaderFloat16, vulkanMemoryModel, subgroups of 32.
// Bindings: 0 W f16 [N][K] as uvec4 (K a multiple of 8), 1 X f16 [x_off + M ldx] as uvec4 (ldx, x_off multiples of
//           8), 2 Y f32.
// Push:     qn_pc_matmul { M, N, K, ldx, ldy, x_off, y_off, flags } (x_off and ldx in halves).
// Spec:     0 QN_WG = 32 (BM / WTM) (BN / WTN)
//           1 BM tile rows of X (tokens), 2 BN tile rows of W (outputs), 3 BK k per step (a multiple of 16)
//           4 WTM, 5 WTN: the subgroup's tile (multiples of 16): WTM / 16 x WTN / 16 f32 accumulators
//           6 NBUF shared tile buffers: 2 (default) or 1 (a second barrier per step; half the shared memory, so
//             larger tiles fit)
// Tiles are staged in shared memory, double-buffered: the next step's chunks are loaded into registers during the
// multiplies and stored into the other buffer after them, one barrier a step (NBUF 1: stored after a barrier into
// the one buffer). (H100 run 63: loading the fragments
// straight from the storage buffers, no shared tiles, reached only 22-65 TFLOP/s against 98-132.)
// Dispatch: ceil(M / BM) * ceil(N / BN) groups, tile (g / nbn, g % nbn).
// Summation order per output: the k order of the fragments, independent of the dispatch.
#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint BM = 128;
layout(constant_id = 2) const uint BN = 128;
layout(constant_id = 3) const uint BK = 32;
layout(constant_id = 4) const uint WTM = 64;
layout(constant_id = 5) const uint WTN = 32;
layout(constant_id = 6) const uint NBUF = 2;
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_matmul pc; };
layout(binding = 0, std430) readonly buffer W4 { uvec4 w4[]; };
layout(binding = 1, std430) readonly buffer X4 { uvec4 x4[]; };
layout(binding = 2, std430) buffer Y { float y[]; };

#define CMA fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define CMB fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define CMC fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
const uint FM = WTM / 16u, FN = WTN / 16u;
const uint SK4 = BK / 8u + 1u;               // uvec4 per shared row (one pad chunk)
shared uvec4 Xs[NBUF * BM * SK4];
shared uvec4 Ws[NBUF * BN * SK4];
shared float Cs[QN_WG / 32u * 256u];         // per subgroup a 16 x 16 block for the edge fragments

const uint CR = BK / 8u;                     // 16-byte chunks per tile row and step
const uint XPT = (BM * CR + QN_WG - 1u) / QN_WG, WPT = (BN * CR + QN_WG - 1u) / QN_WG;
uvec4 xr[XPT], wr[WPT];
uint g_m0, g_n0, g_kw, g_kx;

void fetch(uint k0, uint lid)
{
    [[unroll]] for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG, m = idx / CR, kc = k0 + (idx % CR) * 8u;
        xr[i] = idx < BM * CR && g_m0 + m < pc.M && kc < pc.K ? x4[(pc.x_off + (g_m0 + m) * pc.ldx + kc) / 8u] : uvec4(0u);
    }
    [[unroll]] for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * QN_WG, n = idx / CR, kc = k0 + (idx % CR) * 8u;
        wr[i] = idx < BN * CR && g_n0 + n < pc.N && kc < pc.K ? w4[((g_n0 + n) * pc.K + kc) / 8u] : uvec4(0u);
    }
}

void store(uint lid, uint buf)
{
    [[unroll]] for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG;
        if (idx < BM * CR) Xs[(buf * BM + idx / CR) * SK4 + idx % CR] = xr[i];
    }
    [[unroll]] for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * QN_WG;
        if (idx < BN * CR) Ws[(buf * BN + idx / CR) * SK4 + idx % CR] = wr[i];
    }
}

void main()
{
    uint nbn = (pc.N + BN - 1u) / BN;
    uint g = qn_group_id();
    if (g >= nbn * ((pc.M + BM - 1u) / BM)) return;
    g_m0 = (g / nbn) * BM;
    g_n0 = (g % nbn) * BN;
    uint lid = gl_LocalInvocationIndex;
    uint s = gl_SubgroupID, wm = (s / (BN / WTN)) * WTM, wn = (s % (BN / WTN)) * WTN;

    CMC acc[FM * FN];
    [[unroll]] for (uint i = 0u; i < FM * FN; i++) acc[i] = CMC(0.0);
    fetch(0u, lid);
    store(lid, 0u);
    barrier();
    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        uint cur = NBUF == 2u ? (k0 / BK) & 1u : 0u;
        bool more = k0 + BK < pc.K;
        if (more) fetch(k0 + BK, lid);
        [[unroll]] for (uint kk = 0u; kk < BK; kk += 16u) {
            CMA a[FM];
            [[unroll]] for (uint i = 0u; i < FM; i++)
                coopMatLoadNV(a[i], Xs, (cur * BM + wm + 16u * i) * SK4 + kk / 8u, SK4, false);
            [[unroll]] for (uint j = 0u; j < FN; j++) {
                CMB b;
                coopMatLoadNV(b, Ws, (cur * BN + wn + 16u * j) * SK4 + kk / 8u, SK4, true);
                [[unroll]] for (uint i = 0u; i < FM; i++) acc[i * FN + j] = coopMatMulAddNV(a[i], b, acc[i * FN + j]);
            }
        }
        if (NBUF == 1u) barrier(); // everyone is done with the buffer before it is rewritten
        if (more) store(lid, NBUF == 2u ? 1u - cur : 0u);
        barrier();
    }
    bool accumulate = (pc.flags & QN_MATMUL_ACCUMULATE) != 0u;
    bool ydirect = pc.ldy % 4u == 0u && pc.y_off % 4u == 0u;
    uint cb = s * 256u, lane = gl_SubgroupInvocationID;
    [[unroll]] for (uint i = 0u; i < FM; i++)
        [[unroll]] for (uint j = 0u; j < FN; j++) {
            uint fm = g_m0 + wm + 16u * i, fn = g_n0 + wn + 16u * j;
            if (fm >= pc.M || fn >= pc.N) continue; // uniform over the subgroup
            if (ydirect && fm + 16u <= pc.M && fn + 16u <= pc.N) {
                uint o = pc.y_off + fm * pc.ldy + fn;
                CMC c = acc[i * FN + j];
                if (accumulate) {
                    CMC old;
                    coopMatLoadNV(old, y, o, pc.ldy, false);
                    c = c + old;
                }
                coopMatStoreNV(c, y, o, pc.ldy, false);
                continue;
            }
            coopMatStoreNV(acc[i * FN + j], Cs, cb, 16u, false);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < 256u; e += gl_SubgroupSize) {
                uint m = fm + e / 16u, n = fn + e % 16u;
                if (m >= pc.M || n >= pc.N) continue;
                uint o = pc.y_off + m * pc.ldy + n;
                y[o] = accumulate ? y[o] + Cs[cb + e] : Cs[cb + e];
            }
            subgroupBarrier();
        }
}
