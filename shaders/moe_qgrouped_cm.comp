#version 450
// moe_qgrouped_cm.comp — moe_qgrouped.comp on tensor cores (VK_NV_cooperative_matrix): the same tiles of
// moe_sort (one expert, up to tile_t of its (token, k) pairs), the same slot addressing (gate | up in `pools`
// at QN_PART_OFF, down in `dpools`, f32 down_s for the shared pseudo-expert E), the same outputs
//   QN_MOE_GATE_UP: act[q, i] = silu(gate_e[i] · x[t]) * (up_e[i] · x[t])   (expert E skipped)
//   QN_MOE_DOWN:    d[q, h] = down_e[h] · act[q]                           (unweighted; moe_combine sums)
// with the expert's weight tile decoded to f16 in shared memory (common/qtile.glsl), the tile's token rows
// converted to f16, and 16x16x16 f16 fragments multiplied into f32 accumulators.
//
// Variants (defines): QN_MOE_GATE_UP | QN_MOE_DOWN; QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K.
// Needs: QN_FEAT_COOPMAT_NV, shaderFloat16, vulkanMemoryModel, subgroups of 32 (the host checks).
// Bindings, push constants: as moe_qgrouped.comp.
// Spec:     0 QN_WG workgroup size, a multiple of 32 (default 128)
//           1 QN_BK inner-dimension step (a multiple of 16, default 32)
//           2 QN_PART_OFF byte offset of up in a gate|up slot (gate_up) / of down in a dpools slot (down)
//           3 CN fragment width: 16 (the 16x16x16 shape, default) or 8 (16x8x16), whichever the device lists
// Layout: a pass takes up to 32 pairs of a tile (2 row fragments of A); subgroup w of the workgroup owns 32
//   weight rows of the shared tile (32 / CN fragments of B): gate_up: gate rows r0 + 16w .. +16 and the same
//   up rows (its 16 outputs); down: rows r0 + 32w .. +32. Output rows per workgroup BN = 16 · QN_WG / 32
//   (gate_up, 64) or 32 · QN_WG / 32 (down, 128). Tiles of more than 32 pairs take several passes.
// Dispatch: G · nb groups (qn_vk_grid), G = tile_groups (0: max_tiles), nb = ceil(I / BN) (gate_up) or
//   ceil(H / BN) (down); group g takes row block g % nb of the tiles g / nb, g / nb + G, ...
// Accuracy as qmatmul_cm.comp: f16 operands (|x| clamped to 65504), f32 products and sums; each output depends
// only on its token, the expert and QN_BK (not on the tile, slot or other tokens). Absent slot: NaN outputs.
#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_BK = 32;
layout(constant_id = 2) const uint QN_PART_OFF = 0;
layout(constant_id = 3) const uint CN = 16; // fragment width along the weight rows: 16 (16x16x16) or 8 (16x8x16)
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer X { float xin[]; };
layout(binding = 0, std430) readonly buffer X4 { vec4 xin4[]; };
layout(binding = 1, std430) readonly buffer List { int list[]; };
layout(binding = 2, std430) readonly buffer Tiles { int tiles[]; };
#define QN_TABLE_BIND 3
layout(binding = 4, std430) writeonly buffer Out { float outv[]; };
#if defined(QN_MOE_GATE_UP)
#define QN_POOL_BIND 5
#elif defined(QN_MOE_DOWN)
layout(binding = 5, std430) readonly buffer DS { float ds[]; };
#define QN_POOL_BIND 6
#else
#error "moe_qgrouped_cm.comp: define QN_MOE_GATE_UP or QN_MOE_DOWN"
#endif
#define QN_W_F32 // moe_w.glsl's element helpers are unused here; only its pools and slot table
#include "moe_w.glsl"

uint w_pool; // weight source of this workgroup (uniform)
#define QN_QW(i) qn_pool1(w_pool, i)
#define QN_QW4(i) qn_pool4(w_pool, i)
#include "qtile.glsl"

#define CMA fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>  // A: 16 pairs x 16 k
#define CMB fcoopmatNV<16, gl_ScopeSubgroup, 16, CN>  // B: 16 k x CN tile rows
#define CMC fcoopmatNV<32, gl_ScopeSubgroup, 16, CN>  // C: 16 pairs x CN tile rows
const uint NB = 32u / CN;                           // B fragments per subgroup (2 or 4)

const uint NSG = QN_WG / 32u;         // subgroups
const uint BT = 32u;                  // pairs per pass
const uint NR = 32u * NSG;            // weight rows in the shared tile
#if defined(QN_MOE_GATE_UP)
const uint BN = 16u * NSG;            // output rows per workgroup
#else
const uint BN = 32u * NSG;
#endif
const uint SK = QN_BK + 8u;           // halves per shared row (16-byte multiple)
const uint SC = 20u;                  // floats per staging row
shared float16_t s_x[BT * SK];        // [pair slot][k]
shared float16_t s_w[NR * SK];        // [tile row p][k]
shared float s_c[NSG * 2u * 16u * SC]; // per subgroup two 16 x 16 staging blocks
shared int s_q[BT];                   // pair of each slot, -1 = none
shared uint s_xrow[BT];               // its input row's element offset, ~0u = none

uint w_base[2], w_rowb, w_kd, w_nrow; // byte offsets of gate / up (or down) row 0, bytes per row, row length, rows
bool w_dense;

uint x_row(int q)
{
#if defined(QN_MOE_GATE_UP)
    return (uint(q) / (pc.K + 1u)) * pc.H;
#else
    return uint(q) * pc.act_stride;
#endif
}

// tile row p -> (part, weight row): gate_up: subgroup w = p / 32 holds gate rows r0 + 16w .. (p % 32 < 16)
// and the same up rows; down: row r0 + p
void row_of(uint p, uint r0, out uint part, out uint row)
{
#if defined(QN_MOE_GATE_UP)
    part = (p % 32u) / 16u;
    row = r0 + 16u * (p / 32u) + p % 16u;
#else
    part = 0u;
    row = r0 + p;
#endif
}

const uint XR = QN_BK / 4u, WR = QN_BK / 8u;
const uint XPT = (BT * XR + QN_WG - 1u) / QN_WG;
const uint WPT = (NR * WR + QN_WG - 1u) / QN_WG;
vec4 xr[XPT];
qt_raw wr[WPT];
bool x_vec;

bool w_at(uint idx, uint k0, uint r0, out uint p, out uint kc, out uint rb)
{
    p = idx / WR; kc = (idx % WR) * 8u;
    uint part, row;
    row_of(p, r0, part, row);
    rb = w_base[part] + row * w_rowb;
    return idx < NR * WR && row < w_nrow && k0 + kc < w_kd;
}

void fetch(uint k0, uint r0, uint lid) // global memory -> registers (loads only)
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG, tt = idx / XR, col = k0 + (idx % XR) * 4u;
        uint xb = idx < BT * XR ? s_xrow[tt] : ~0u;
        vec4 v = vec4(0.0);
        if (xb != ~0u && col < w_kd) {
            if (x_vec && col + 4u <= w_kd) v = xin4[(xb + col) / 4u];
            else
                for (uint c = 0u; c < 4u; c++) v[c] = col + c < w_kd ? xin[xb + col + c] : 0.0;
        }
        xr[i] = v;
    }
    for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * QN_WG, p, kc, rb;
        if (!w_at(idx, k0, r0, p, kc, rb)) continue;
#if defined(QN_MOE_DOWN)
        if (w_dense) { // f32 row of down_s: rb is its element offset
            uint e = rb + k0 + kc, n = min(8u, w_kd - k0 - kc);
            for (uint j = 0u; j < 8u; j++) {
                uint v = j < n ? floatBitsToUint(ds[e + j]) : 0u;
                if (j < 4u) wr[i].a[j] = v; else wr[i].b[j - 4u] = v;
            }
            continue;
        }
#endif
        wr[i] = qt_fetch(rb, k0 + kc);
    }
}

void store(uint k0, uint r0, uint lid) // registers -> f16 shared tiles
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG, tt = idx / XR, kc = (idx % XR) * 4u;
        if (idx >= BT * XR) break;
        vec4 v = clamp(xr[i], vec4(-65504.0), vec4(65504.0));
        for (uint c = 0u; c < 4u; c++) s_x[tt * SK + kc + c] = float16_t(v[c]);
    }
    for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * QN_WG, p, kc, rb;
        if (idx >= NR * WR) break;
        vec4 a = vec4(0.0), b = vec4(0.0);
        if (w_at(idx, k0, r0, p, kc, rb)) {
            if (w_dense) { a = uintBitsToFloat(wr[i].a); b = uintBitsToFloat(wr[i].b); }
            else qt_decode(wr[i], rb, k0 + kc, a, b);
        }
        for (uint c = 0u; c < 4u; c++) {
            s_w[p * SK + kc + c] = float16_t(a[c]);
            s_w[p * SK + kc + 4u + c] = float16_t(b[c]);
        }
    }
}

bool set_source(int e)
{
    w_dense = uint(e) == pc.E;
    if (w_dense) { // element offsets into down_s (QN_MOE_DOWN only: gate_up skips expert E)
        w_pool = 0u; w_base[0] = 0u; w_base[1] = 0u; w_kd = pc.Is; w_nrow = pc.H; w_rowb = pc.Is;
        return true;
    }
    int s = qn_moe_slot(e);
    uint sb = s < 0 ? 0u : qn_slot_byte(s);
    w_pool = s < 0 ? 0u : qn_slot_pool(s);
#if defined(QN_MOE_GATE_UP)
    w_kd = pc.H; w_nrow = pc.I; w_rowb = (pc.H / QT_QK) * QT_BB;
    w_base[0] = sb; w_base[1] = sb + QN_PART_OFF;
#else
    w_kd = pc.I; w_nrow = pc.H; w_rowb = (pc.I / QT_QK) * QT_BB;
    w_base[0] = sb + QN_PART_OFF; w_base[1] = w_base[0];
#endif
    return s >= 0;
}

// one pass over up to BT pairs list[first .. first + n) for the output rows [r0, r0 + BN)
void tile_pass(uint first, uint n, uint r0, bool present, uint lid)
{
    for (uint tt = lid; tt < BT; tt += QN_WG) {
        int q = tt < n ? list[first + tt] : -1;
        s_q[tt] = q;
        s_xrow[tt] = q >= 0 ? x_row(q) : ~0u;
    }
    barrier();
    uint sg = gl_SubgroupID, wr0 = 32u * sg; // this subgroup's tile rows
    CMC acc[8]; // acc[4a + j]: pairs 16a .., tile rows wr0 + CN j .. (j < NB)
    [[unroll]] for (uint i = 0u; i < 8u; i++) acc[i] = CMC(0.0);
    if (present) fetch(0u, r0, lid);
    for (uint k0 = 0u; present && k0 < w_kd; k0 += QN_BK) {
        store(k0, r0, lid);
        barrier();
        if (k0 + QN_BK < w_kd) fetch(k0 + QN_BK, r0, lid); // in flight during the multiplies below
        for (uint kk = 0u; kk < QN_BK; kk += 16u) {
            CMA a0, a1;
            coopMatLoadNV(a0, s_x, kk, SK, false);
            if (n > 16u) coopMatLoadNV(a1, s_x, 16u * SK + kk, SK, false); // uniform: the second 16 pairs
            [[unroll]] for (uint j = 0u; j < 4u; j++) {
                if (j >= NB) break; // specialization constant
                CMB b;
                coopMatLoadNV(b, s_w, (wr0 + CN * j) * SK + kk, SK, true);
                acc[j] = coopMatMulAddNV(a0, b, acc[j]);
                if (n > 16u) acc[4u + j] = coopMatMulAddNV(a1, b, acc[4u + j]);
            }
        }
        barrier();
    }
    // epilogue through the subgroup's staging blocks
    uint cb = sg * 2u * 16u * SC, lane = gl_SubgroupInvocationID;
    [[unroll]] for (uint a = 0u; a < 2u; a++) {
        if (16u * a >= n) break; // uniform
        // block 0: tile rows wr0 .. +16 (gate, or down rows 0-15), block 1: wr0 + 16 .. (up, or down rows 16-31)
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            if (j >= NB) break;
            coopMatStoreNV(acc[4u * a + j], s_c, cb + (j / (NB / 2u)) * 16u * SC + CN * (j % (NB / 2u)), SC, false);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
#if defined(QN_MOE_GATE_UP)
        for (uint i = lane; i < 256u; i += gl_SubgroupSize) {
            int q = s_q[16u * a + i / 16u];
            uint row = r0 + 16u * sg + i % 16u;
            if (q < 0 || row >= w_nrow) continue;
            float g = s_c[cb + (i / 16u) * SC + i % 16u], u = s_c[cb + 16u * SC + (i / 16u) * SC + i % 16u];
            outv[uint(q) * pc.act_stride + row] = present ? qn_silu(g) * u : uintBitsToFloat(0x7fc00000u);
        }
#else
        for (uint i = lane; i < 512u; i += gl_SubgroupSize) {
            uint b = i / 256u, j = i % 256u;
            int q = s_q[16u * a + j / 16u];
            uint row = r0 + wr0 + 16u * b + j % 16u;
            if (q < 0 || row >= w_nrow) continue;
            float v = s_c[cb + b * 16u * SC + (j / 16u) * SC + j % 16u];
            outv[uint(q) * pc.H + row] = present ? v : uintBitsToFloat(0x7fc00000u);
        }
#endif
        subgroupBarrier(); // the blocks are rewritten next
    }
    barrier(); // s_q, s_xrow are rewritten by the next pass
}

void main()
{
#if defined(QN_MOE_GATE_UP)
    uint nb = (pc.I + BN - 1u) / BN;
    x_vec = pc.H % 4u == 0u;
#else
    uint nb = (pc.H + BN - 1u) / BN;
    x_vec = pc.act_stride % 4u == 0u;
#endif
    uint G = pc.tile_groups == 0u ? pc.max_tiles : pc.tile_groups;
    uint g = qn_group_id(), r0 = (g % nb) * BN, lid = gl_LocalInvocationIndex;
    for (uint tile = g / nb; tile < pc.max_tiles; tile += G) { // uniform over the workgroup
        int e = tiles[4u * tile];
        if (e < 0 || uint(e) > pc.E) break;
#if defined(QN_MOE_GATE_UP)
        if (uint(e) == pc.E) continue;
#endif
        bool present = set_source(e);
        uint start = uint(tiles[4u * tile + 1u]), n = uint(tiles[4u * tile + 2u]);
        for (uint sub = 0u; sub < n; sub += BT) tile_pass(start + sub, min(BT, n - sub), r0, present, lid);
    }
}
