#version 450
// attn_prefill_cm.comp — attn_prefill's result (causal gated attention of T query tokens against the KV cache,
// GQA) as a flash-attention kernel on tensor cores (VK_NV_cooperative_matrix; glslang 12 has no KHR one):
//   out[t][h*D + d] = softmax_k(q[t][h] . k[j][k] * scale, k <= position(t)) . v[j][k]  * sigmoid(gate)
// Q, K, V and the probabilities P are rounded to f16; the products S = Q K^T and O = P V accumulate in f32.
//
// Query rows of kv head j are the T*G pairs (token t, head h = j*G + g), G = Hq/Hkv, row = t*G + g (as
// attn_prefill), so the K/V tiles of a workgroup serve its G heads and BR/G tokens. Workgroup = BR = 64 rows x
// 8 warps of 32 invocations; warp w owns rows 16 (w & 3) .. +15 and, for S, the keys 16 (w >> 2) .. +15 of each
// BC-key tile (BC 32; with BC 16 the warps w >= 4 sit S out), for O the dims (w >> 2) D/2 .. + D/2. Per key tile
// (4 barriers; QN_KV2: K and V in two buffers, 3 barriers, the next tile's K stored after S and its V after P V):
//   1. the K tile (f32 or f16 cache -> f16 shared, rows past the visible keys zero)
//   2. S block (16 x 16) = Q (16 x D, f16 fragments held in registers since the start) . K^T -> shared f32
//   3. the V tile replaces the K tile; meanwhile 4 invocations per row do the online softmax of their row
//      (scale, causal mask, running max and sum in registers, shuffles over the 4), P as f16 to shared and the
//      row's rescale factor exp(m_old - m_new)
//   4. O (16 x D/2 in f32 fragments) *= the rows' factors, O += P (16 x 32) . V (32 x D/2)
// then the epilogue writes O / sum * sigmoid(gate) through a 16 x 16 shared block per warp. Row blocks are
// dispatched longest first (the last tokens see the most keys). Fixed summation order: results do not depend
// on the dispatch or timing.
// The O rescale needs the row of each fragment element a lane holds: the layout is the implementation's, so
// each warp loads a 16 x 16 block holding its row numbers into an accumulator fragment once and reads them back
// (same type, same layout).
//
// Variants: QN_CM the tensor-core kernel (needs QN_FEAT_COOPMAT_NV with the f16 16x16x16 shape, shaderFloat16,
//           subgroups of exactly 32, the host checks; shared memory qn_attn_cm_shared_bytes(BC, KV2) (pc_attn.h):
//           31744 bytes at BC 32, 48640 with QN_KV2); without it the same kernel with
//           the fragment operations emulated per 32 invocations through shared memory (same tiles, masks,
//           softmax, rescale and epilogue, any subgroup size >= 4: what lavapipe tests, slow).
//           QN_KV_F16 (f16 KV cache; common/attn_kv.glsl).
// Bindings, push constants and shapes as attn_prefill.comp: 0 q f32 [T][Hq][D], 1 kcache, 2 vcache [Hkv][cap][D],
//           3 proj (gate), 4 pos, 5 out f32 [T][Hq*D]; qn_pc_attn_prefill. D a multiple of 32, <= 256.
// Spec:     0 QN_WG workgroup size, 256 (the layout above; a kernel made with another size writes nothing)
//           1 QN_PF (default false): each K / V tile's loads issued before the previous step's multiplies (V during
//           S = Q K^T, the next K during O += P V), 8 vec4 registers more per invocation
//           2 BC keys per tile, 32 (default) or 16
//           3 QN_KV2 (default false): K and V tiles in two buffers (see above; always fetches a step ahead)
// Dispatch: ceil(T * G / 64) groups (qn_vk_grid) times Hkv in z.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#ifdef QN_CM
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;   // must be 256 (8 warps of 32); other sizes write nothing
layout(constant_id = 1) const bool QN_PF = false; // fetch the next K / V tile into registers before the multiplies
layout(constant_id = 2) const uint BC = 32;       // keys per tile: 32 or 16
layout(constant_id = 3) const bool QN_KV2 = false; // K and V tiles in two buffers: 3 barriers per tile, loads overlapped
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

const uint WG = 256u, BR = 64u, DMAX = 256u;
const uint SK4 = (DMAX + 8u) / 8u;        // uvec4 (8 halves) per K / V / staged Q row in shared memory (padded)
const uint PS4 = (BC + 8u) / 8u;          // uvec4 per P row
const uint SS = BC + 4u;                  // floats per S row
const uint KPT = BC / 4u;                 // keys per softmax invocation (4 per row)
const uint KVROWS = QN_KV2 ? 2u * BC : BC; // rows of kvs: the K tile (and the V tile after it with QN_KV2)
const uint VOFF = QN_KV2 ? BC * SK4 : 0u; // the V tile's place in kvs
const uint SSN = BR * SS > 2048u ? BR * SS : 2048u; // ss also holds the warps' 16 x 16 blocks
const float QN_NEG_BIG = -3.0e38;         // masked score / running max before the first key (finite)

layout(push_constant) uniform PC { qn_pc_attn_prefill pc; };
layout(binding = 0, std430) readonly buffer Q { vec4 q4[]; };
#define QN_KV_READ
#include "attn_kv.glsl"
layout(binding = 3, std430) readonly buffer Proj { float proj[]; };
layout(binding = 4, std430) readonly buffer Pos { uint posbuf[]; };
layout(binding = 5, std430) writeonly buffer Out { float outv[]; };

shared uvec4 kvs[KVROWS * SK4]; // K tile (then the V tile, or V after it with QN_KV2), f16 [key][d]; first the staged Q
shared uvec4 ps[BR * PS4];      // P f16 [row][key]
shared float ss[SSN];           // S f32 [row][key]; the warps' 16 x 16 blocks (row map, epilogue)
shared float cs[BR], lsum[BR];  // per row: rescale factor of this tile; final sum

#ifdef QN_CM
#define CMA fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define CMC fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
const int NE = 8; // elements of a 16 x 16 f32 fragment per invocation of a 32-wide subgroup (256 / 32)
#define WARP_SYNC() subgroupMemoryBarrierShared(); subgroupBarrier()
CMA qa[DMAX / 16u]; // Q rows 16 rg .., all of D
CMC o[DMAX / 32u];  // O rows 16 rg .., dims hh D/2 ..
#else
const int NE = 8; // emulated fragment: element i of lane l is (row (8 l + i) / 16, col (8 l + i) % 16)
#define WARP_SYNC() barrier()
float o[DMAX / 32u][NE];
#endif
uint rmap[NE]; // row (0..15) of element i of this invocation's O fragments

// the block and this invocation's roles (set once in main)
uint g_r0, g_nq, g_G, g_j, g_L, g_U, g_kvb, g_rg, g_hh, g_lane, g_sr, g_sp, g_spos;
float g_mrun = QN_NEG_BIG, g_lrun = 0.0;

uvec4 f16x8(vec4 a, vec4 b)
{
    return qn_pack_f16x8(clamp(a, vec4(-65504.0), vec4(65504.0)), clamp(b, vec4(-65504.0), vec4(65504.0)));
}

// A K (or V) tile in two steps: fetch_kv loads this invocation's share of BC cache rows from key k0 into
// registers (rows past the visible keys as zeros: never garbage, P is 0 there but 0 * NaN is not), store_kv writes
// it to kvs at uvec4 offset at as f16. With QN_PF / QN_KV2 the fetch is issued before multiplies (latency hidden).
const uint KVN = BC * (DMAX / 8u) / WG; // 8-element units per invocation at D = DMAX
vec4 kvr[2u * KVN];
void fetch_kv(uint k0, uint nkb, bool values)
{
    uint nk = k0 < nkb ? min(BC, nkb - k0) : 0u;
    [[unroll]] for (uint e = 0u; e < KVN; e++) {
        uint i = gl_LocalInvocationIndex + e * WG, kk = i / g_U, src = g_kvb + (k0 + kk) * g_L + 2u * (i % g_U);
        bool ok = i < BC * g_U && kk < nk;
        kvr[2u * e] = !ok ? vec4(0.0) : values ? v_at(src) : k_at(src);
        kvr[2u * e + 1u] = !ok ? vec4(0.0) : values ? v_at(src + 1u) : k_at(src + 1u);
    }
}
void store_kv(uint at)
{
    [[unroll]] for (uint e = 0u; e < KVN; e++) {
        uint i = gl_LocalInvocationIndex + e * WG;
        if (i < BC * g_U) kvs[at + (i / g_U) * SK4 + i % g_U] = f16x8(kvr[2u * e], kvr[2u * e + 1u]);
    }
}

// q row (g_r0 + rr) as vec4 index, or ~0u past the block's rows
uint q_row(uint rr)
{
    if (rr >= g_nq) return ~0u;
    uint r = g_r0 + rr, t = r / g_G;
    return (t * pc.Hq + g_j * g_G + r % g_G) * g_L;
}

float h16(uint u, uint k) { return unpackHalf2x16(u)[k]; }
#ifndef QN_CM
// x rounded to f16's 11-bit significand, to nearest even, in integer math (an unpackHalf2x16(packHalf2x16(x)) round
// trip can be folded away by a compiler: the NVIDIA driver did); exact for |x| in f16's normal range, which the
// emulated kernel's q is (values below 2^-14 keep more bits than f16 subnormals would)
vec4 f16_round(vec4 x)
{
    uvec4 u = floatBitsToUint(clamp(x, vec4(-65504.0), vec4(65504.0)));
    return uintBitsToFloat((u + 0xfffu + ((u >> 13u) & 1u)) & ~0x1fffu);
}
#endif
// half e of a shared f16 row starting at uvec4 index base
float kv_half(uint base, uint e) { return h16(kvs[base + e / 8u][(e % 8u) / 2u], e % 2u); }
float p_half(uint base, uint e) { return h16(ps[base + e / 8u][(e % 8u) / 2u], e % 2u); }

// the rows of the O fragment elements; the Q fragments (staged through kvs, KVROWS rows at a time)
void init_frags(uint w)
{
#ifdef QN_CM
    for (uint e = g_lane; e < 256u; e += 32u) ss[w * 256u + e] = float(e / 16u);
    WARP_SYNC();
    CMC rm;
    coopMatLoadNV(rm, ss, w * 256u, 16u, false);
    [[unroll]] for (int i = 0; i < NE; i++) rmap[i] = uint(rm[i]);
    for (uint q0 = 0u; q0 < BR; q0 += KVROWS) {
        for (uint i = gl_LocalInvocationIndex; i < KVROWS * g_U; i += WG) {
            uint rr = i / g_U, u = i % g_U, qb = q_row(q0 + rr);
            kvs[rr * SK4 + u] = qb == ~0u ? uvec4(0u) : f16x8(q4[qb + 2u * u], q4[qb + 2u * u + 1u]);
        }
        barrier();
        if (g_rg * 16u >= q0 && g_rg * 16u < q0 + KVROWS)
            [[unroll]] for (uint d = 0u; d < DMAX / 16u; d++)
                if (d < pc.D / 16u) coopMatLoadNV(qa[d], kvs, (g_rg * 16u - q0) * SK4 + 2u * d, SK4, false);
        barrier();
    }
    [[unroll]] for (uint f = 0u; f < DMAX / 32u; f++) o[f] = CMC(0.0);
#else
    [[unroll]] for (int i = 0; i < NE; i++) rmap[i] = (8u * g_lane + i) / 16u;
    [[unroll]] for (uint f = 0u; f < DMAX / 32u; f++)
        [[unroll]] for (int i = 0; i < NE; i++) o[f][i] = 0.0;
#endif
}

// S block of this warp: rows 16 rg .., keys 16 hh .. of the tile (K at kvs[0..]); warps past the tile's keys idle
void s_block()
{
    if (g_hh * 16u >= BC) return;
#ifdef QN_CM
    CMC sacc[2]; // two chains of multiply-adds (even / odd 16 of d), added at the end
    sacc[0] = CMC(0.0), sacc[1] = CMC(0.0);
    [[unroll]] for (uint d = 0u; d < DMAX / 16u; d++)
        if (d < pc.D / 16u) {
            CMA kb;
            coopMatLoadNV(kb, kvs, (g_hh * 16u) * SK4 + 2u * d, SK4, true);
            sacc[d & 1u] = coopMatMulAddNV(qa[d], kb, sacc[d & 1u]);
        }
    sacc[0] = sacc[0] + sacc[1];
    coopMatStoreNV(sacc[0], ss, (g_rg * 16u) * SS + g_hh * 16u, SS, false);
#else
    for (int i = 0; i < NE; i++) {
        uint e = 8u * g_lane + i, row = e / 16u, key = g_hh * 16u + e % 16u;
        uint qb = q_row(g_rg * 16u + row);
        float acc = 0.0;
        for (uint l = 0u; qb != ~0u && l < g_L; l++) {
            vec4 qv = f16_round(q4[qb + l]); // as the tensor-core kernel stages it
            for (uint c = 0u; c < 4u; c++) acc += qv[c] * kv_half(key * SK4, 4u * l + c);
        }
        ss[(g_rg * 16u + row) * SS + key] = acc;
    }
#endif
}

// online softmax of row sr over keys KPT sp .. of the tile at k0 (nk visible): P as f16, the rescale factor
void softmax(uint k0, uint nk)
{
    float sv[8], mx = g_mrun;
    [[unroll]] for (uint c = 0u; c < 8u; c++) {
        uint kk = KPT * g_sp + c;
        sv[c] = c < KPT && kk < nk && k0 + kk <= g_spos ? ss[g_sr * SS + kk] * pc.scale : QN_NEG_BIG;
        mx = max(mx, sv[c]);
    }
    mx = max(mx, subgroupShuffleXor(mx, 1u));
    mx = max(mx, subgroupShuffleXor(mx, 2u));
    float sum = 0.0;
    [[unroll]] for (uint c = 0u; c < 8u; c++) {
        sv[c] = c < KPT ? exp(sv[c] - mx) : 0.0;
        sum += sv[c];
    }
    sum += subgroupShuffleXor(sum, 1u);
    sum += subgroupShuffleXor(sum, 2u);
    float cf = exp(g_mrun - mx);
    g_lrun = g_lrun * cf + sum;
    g_mrun = mx;
    uvec4 pk = f16x8(vec4(sv[0], sv[1], sv[2], sv[3]), vec4(sv[4], sv[5], sv[6], sv[7]));
    if (KPT == 8u) ps[g_sr * PS4 + g_sp] = pk;
    else { // 4 keys each: two invocations make one uvec4
        uvec2 nb = uvec2(subgroupShuffleXor(pk.x, 1u), subgroupShuffleXor(pk.y, 1u));
        if ((g_sp & 1u) == 0u) ps[g_sr * PS4 + g_sp / 2u] = uvec4(pk.xy, nb);
    }
    if (g_sp == 0u) cs[g_sr] = cf;
}

// O = O * factor + P V for rows 16 rg .., dims hh D/2 .. (V at kvs[VOFF..])
void o_update()
{
    uint NF = pc.D / 32u, HD = pc.D / 2u;
    float cv[NE];
    [[unroll]] for (int i = 0; i < NE; i++) cv[i] = cs[g_rg * 16u + rmap[i]];
    [[unroll]] for (uint f = 0u; f < DMAX / 32u; f++)
        if (f < NF)
            [[unroll]] for (int i = 0; i < NE; i++) o[f][i] *= cv[i];
#ifdef QN_CM
    [[unroll]] for (uint kk = 0u; kk < BC / 16u; kk++) {
        CMA pa;
        coopMatLoadNV(pa, ps, (g_rg * 16u) * PS4 + 2u * kk, PS4, false);
        [[unroll]] for (uint f = 0u; f < DMAX / 32u; f++)
            if (f < NF) {
                CMA vb;
                coopMatLoadNV(vb, kvs, VOFF + (kk * 16u) * SK4 + (g_hh * HD + 16u * f) / 8u, SK4, false);
                o[f] = coopMatMulAddNV(pa, vb, o[f]);
            }
    }
#else
    for (uint f = 0u; f < NF; f++)
        for (int i = 0; i < NE; i++) {
            uint e = 8u * g_lane + i, row = g_rg * 16u + e / 16u, d = g_hh * HD + 16u * f + e % 16u;
            float acc = 0.0;
            for (uint kk = 0u; kk < BC; kk++) acc += p_half(row * PS4, kk) * kv_half(VOFF + kk * SK4, d);
            o[f][i] += acc;
        }
#endif
}

// O / sum * sigmoid(gate), each fragment through the warp's 16 x 16 block of ss
void epilogue(uint w)
{
    if (g_sp == 0u) lsum[g_sr] = g_lrun;
    barrier();
    uint blk = w * 256u, HD = pc.D / 2u;
    [[unroll]] for (uint f = 0u; f < DMAX / 32u; f++) { // unrolled: fragment f is a constant index
        if (f >= pc.D / 32u) break;                       // uniform over the workgroup
#ifdef QN_CM
        coopMatStoreNV(o[f], ss, blk, 16u, false);
#else
        for (int i = 0; i < NE; i++) ss[blk + 8u * g_lane + i] = o[f][i];
#endif
        WARP_SYNC();
        for (uint e = g_lane; e < 256u; e += 32u) {
            uint rr = g_rg * 16u + e / 16u;
            if (rr >= g_nq) continue;
            uint r = g_r0 + rr, t = r / g_G, h = g_j * g_G + r % g_G, d = g_hh * HD + 16u * f + e % 16u;
            outv[t * pc.Hq * pc.D + h * pc.D + d] =
                ss[blk + e] / lsum[rr] * qn_sigmoid(proj[t * pc.proj_stride + pc.gate_off + h * pc.D + d]);
        }
        WARP_SYNC();
    }
}

// one buffer for K then V: 4 barriers per tile (QN_PF: the V / next K fetch issued before the multiplies)
void tiles_one(uint nkb)
{
    if (QN_PF) fetch_kv(0u, nkb, false);
    for (uint k0 = 0u; k0 < nkb; k0 += BC) {
        if (!QN_PF) fetch_kv(k0, nkb, false);
        store_kv(0u);
        barrier();
        if (QN_PF) fetch_kv(k0, nkb, true);
        s_block();
        barrier();
        if (!QN_PF) fetch_kv(k0, nkb, true);
        store_kv(0u);
        softmax(k0, min(BC, nkb - k0));
        barrier();
        if (QN_PF && k0 + BC < nkb) fetch_kv(k0 + BC, nkb, false);
        o_update();
        barrier(); // before the next K tile overwrites kvs
    }
}

// QN_KV2: K and V in their own buffers, 3 barriers per tile: after S the next K tile is stored (fetched during the
// previous P V) and the next V fetched; after P V that V is stored and the K after it fetched
void tiles_two(uint nkb)
{
    fetch_kv(0u, nkb, false);
    store_kv(0u);
    fetch_kv(0u, nkb, true);
    store_kv(VOFF);
    barrier();
    fetch_kv(BC, nkb, false);
    for (uint k0 = 0u; k0 < nkb; k0 += BC) {
        s_block();
        barrier();
        bool more = k0 + BC < nkb;
        if (more) {
            store_kv(0u);
            fetch_kv(k0 + BC, nkb, true);
        }
        softmax(k0, min(BC, nkb - k0));
        barrier();
        o_update();
        barrier();
        if (more) {
            store_kv(VOFF);
            fetch_kv(k0 + 2u * BC, nkb, false);
        }
    }
}

void main()
{
    if (QN_WG != WG || (BC != 32u && BC != 16u) || pc.Hkv == 0u || pc.Hq % pc.Hkv != 0u || pc.D % 32u != 0u ||
        pc.D > DMAX)
        return;
    g_G = pc.Hq / pc.Hkv;
    uint nrows = pc.T * g_G, nblk = (nrows + BR - 1u) / BR;
    uint g = qn_group_id();
    g_j = gl_WorkGroupID.z;
    if (g >= nblk || g_j >= pc.Hkv) return; // uniform over the workgroup
    g_r0 = (nblk - 1u - g) * BR;            // longest rows first
    g_nq = min(BR, nrows - g_r0);
    uint base = (pc.flags & QN_ATTN_POS_DEVICE) != 0u ? posbuf[0] : 0u;
    uint p0 = base + pc.pos0;
    uint nkb = min(p0 + (g_r0 + g_nq - 1u) / g_G + 1u, pc.cap); // keys the block sees
    uint tid = gl_LocalInvocationIndex;
#ifdef QN_CM
    uint w = gl_SubgroupID;
    g_lane = gl_SubgroupInvocationID;
#else
    uint w = tid / 32u;
    g_lane = tid % 32u;
#endif
    g_rg = w & 3u, g_hh = w >> 2u;    // warp: rows 16 rg.., S keys 16 hh.., O dims hh D/2..
    g_L = pc.D / 4u, g_U = pc.D / 8u;
    g_kvb = g_j * pc.cap * g_L;
    g_sr = tid / 4u, g_sp = tid % 4u; // softmax: row sr, keys KPT sp .. of the tile
    g_spos = p0 + (g_r0 + g_sr) / g_G; // position of row sr's token
    init_frags(w);
    if (QN_KV2) tiles_two(nkb);
    else tiles_one(nkb);
    epilogue(w);
}
