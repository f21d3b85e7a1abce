#version 450
// moe_qgrouped.comp — prefill MoE for routed experts whose slots hold GGUF blocks: the grouped matmuls of
// moe_grouped.comp (tiles of moe_sort: one expert, up to tile_t of its (token, k) pairs) with moe_q.comp's
// slot addressing, the weight tile decoded from the ggml blocks in shared memory (common/qtile.glsl), so
// each expert's weights are read and decoded once per tile of tokens instead of once per token.
//
// QN_MOE_GATE_UP: act[q, i] = silu(gate_e[i] · x[t]) * (up_e[i] · x[t])  for the tile's pairs q = t·(K+1)+k;
//                 tiles of the shared pseudo-expert E are skipped (its act row comes from moe_router).
//                 gate | up in the slots of `pools` (up at byte QN_UP_OFF of the slot).
// QN_MOE_DOWN:    d[q, h] = down_e[h] · act[q]  (unweighted; expert E = the dense f32 down_s [H, Is]);
//                 down in the slots of `dpools` (at byte QN_DN_OFF); the push constants carry the dpools'
//                 slot_bytes / slots_per_pool. moe_combine then adds sum_k w·d + sg·d_shared in a fixed order.
// Every output is one invocation's sum over the inner dimension in a fixed order (index order within each
// QN_BK step, the steps' partial sums added in order): it depends only on the token, the expert's weights
// and QN_BK, not on the tile, slot or pool (streaming == resident bit for bit).
//
// Variants (defines): QN_MOE_GATE_UP | QN_MOE_DOWN; QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K (the type
//   of gate and up, which must agree, or of down).
// Bindings (QN_MOE_GATE_UP): 0 x f32 [T, H], 1 list, 2 tiles, 3 table, 4 act f32 [T, K + 1, act_stride],
//                            5..12 pools
// Bindings (QN_MOE_DOWN):    0 act, 1 list, 2 tiles, 3 table, 4 d f32 [T, K + 1, H], 5 down_s f32 [H, Is],
//                            6..13 dpools
// Push:     qn_pc_moe (as moe_grouped.comp); H (gate_up) or I (down) a multiple of the block size
// Spec:     0 QN_WG workgroup size (default 256)
//           1 QN_GN invocations along the rows (default 16; QN_WG a multiple of it)
//           2 QN_BK inner-dimension step (default 32, a multiple of 8)
//           3 QN_UP_OFF byte offset of up in a gate|up slot (gate_up) / QN_DN_OFF of down in a dpools slot
//           Register blocking as moe_grouped.comp: 4 tokens x 4 weight rows per invocation; token tile
//           BT = 4 · QN_WG / QN_GN (64), row block BN = 2 · QN_GN (gate_up: 32) or 4 · QN_GN (down: 64).
// Dispatch: G · nb groups (qn_vk_grid) with G = tile_groups (0: max_tiles), nb = ceil(I / BN) (gate_up) or
//           ceil(H / BN) (down), as moe_grouped.comp.
// An absent slot gives NaN outputs instead of reading out of bounds.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_GN = 16;
layout(constant_id = 2) const uint QN_BK = 32;
layout(constant_id = 3) const uint QN_PART_OFF = 0;
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer X { float xin[]; };
layout(binding = 1, std430) readonly buffer List { int list[]; };
layout(binding = 2, std430) readonly buffer Tiles { int tiles[]; };
#define QN_TABLE_BIND 3
layout(binding = 4, std430) writeonly buffer Out { float outv[]; };
#if defined(QN_MOE_GATE_UP)
#define QN_POOL_BIND 5
const uint QN_NW = 2u; // weight row groups: gate, up
#elif defined(QN_MOE_DOWN)
layout(binding = 5, std430) readonly buffer DS { float ds[]; };
#define QN_POOL_BIND 6
const uint QN_NW = 1u;
#else
#error "moe_qgrouped.comp: define QN_MOE_GATE_UP or QN_MOE_DOWN"
#endif
#define QN_W_F32 // moe_w.glsl's element helpers are unused here; only its pools and slot table
#include "moe_w.glsl"

uint w_pool; // weight source of this workgroup (uniform)
#define QN_QW(i) qn_pool1(w_pool, i)
#define QN_QW4(i) qn_pool4(w_pool, i)
#include "qtile.glsl"

const uint TN = 4u / QN_NW;           // output rows per invocation
const uint GT = QN_WG / QN_GN;        // invocations along the tokens
const uint BT = 4u * GT;              // token tile
const uint BN = QN_GN * TN;           // output row block
const uint NR = 4u * QN_GN;           // weight rows in the tile (QN_NW · BN)
const uint BTP = BT + 4u, NRP = NR + 4u; // pitches in floats (multiples of 4, padded against bank conflicts)
shared vec4 s_x[QN_BK * BTP / 4u];    // [kk][token]
shared vec4 s_w[QN_BK * NRP / 4u];    // [kk][weight row p], p = 4 · tx + c
shared int s_q[BT];                   // pair of each token slot, -1 = none
shared uint s_xrow[BT];               // its input row's element offset, ~0u = none

uint w_base[QN_NW], w_rowb, w_kd, w_nrow; // byte offset of row 0 of each row group, bytes per row, row length, rows
bool w_dense;

uint x_row(int q) // element offset of pair q's input row
{
#if defined(QN_MOE_GATE_UP)
    return (uint(q) / (pc.K + 1u)) * pc.H;
#else
    return uint(q) * pc.act_stride;
#endif
}

void put_x(uint kk, uint tt, float v) { s_x[(kk * BTP + tt) / 4u][tt % 4u] = v; }
void put_w(uint kk, uint p, float v) { s_w[(kk * NRP + p) / 4u][p % 4u] = v; }

// The next QN_BK step is loaded into registers while the current one is computed: per invocation XPT x
// values and WPT 8-weight groups of the tile (raw blocks, decoded when stored).
const uint CPR = QN_BK / 8u;                           // 8-weight groups per tile row and step
const uint XPT = (BT * QN_BK + QN_WG - 1u) / QN_WG;
const uint WPT = (NR * CPR + QN_WG - 1u) / QN_WG;
float xr[XPT];
qt_raw wr[WPT];

// weight group idx of the tile: tile row p (thread 4p.. layout), group cc; byte offset of its row, validity
bool w_at(uint idx, uint k0, uint r0, out uint p, out uint cc, out uint rb)
{
    p = idx / CPR; cc = idx % CPR;
    uint c = p % 4u, row = r0 + (p / 4u) * TN + c % TN;
    rb = w_base[c / TN] + row * w_rowb;
    return idx < NR * CPR && row < w_nrow && k0 + cc * 8u < w_kd;
}

void fetch(uint k0, uint r0, uint lid) // global memory -> registers (loads only)
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG, tt = idx / QN_BK, col = k0 + idx % QN_BK; // coalesced along the row
        uint xb = idx < BT * QN_BK ? s_xrow[tt] : ~0u;
        xr[i] = xb != ~0u && col < w_kd ? xin[xb + col] : 0.0;
    }
    for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * QN_WG, p, cc, rb;
        if (!w_at(idx, k0, r0, p, cc, rb)) continue;
#if defined(QN_MOE_DOWN)
        if (w_dense) { // f32 row of down_s: rb is its element offset
            uint e = rb + k0 + cc * 8u, n = min(8u, w_kd - k0 - cc * 8u);
            for (uint j = 0u; j < 8u; j++) {
                uint v = j < n ? floatBitsToUint(ds[e + j]) : 0u;
                if (j < 4u) wr[i].a[j] = v; else wr[i].b[j - 4u] = v;
            }
            continue;
        }
#endif
        wr[i] = qt_fetch(rb, k0 + cc * 8u);
    }
}

void store(uint k0, uint r0, uint lid) // registers -> shared memory (decoding the weights)
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG;
        if (idx < BT * QN_BK) put_x(idx % QN_BK, idx / QN_BK, xr[i]);
    }
    for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * QN_WG, p, cc, rb;
        if (idx >= NR * CPR) break;
        vec4 a = vec4(0.0), b = vec4(0.0);
        if (w_at(idx, k0, r0, p, cc, rb)) {
            if (w_dense) { a = uintBitsToFloat(wr[i].a); b = uintBitsToFloat(wr[i].b); }
            else qt_decode(wr[i], rb, k0 + cc * 8u, a, b);
        }
        for (uint j = 0u; j < 4u; j++) {
            put_w(cc * 8u + j, p, a[j]);
            put_w(cc * 8u + 4u + j, p, b[j]);
        }
    }
}

// set the weight source for expert e (a routed expert through the slot table, or the dense shared expert)
bool set_source(int e)
{
    w_dense = uint(e) == pc.E;
    if (w_dense) { // element offsets into down_s (QN_MOE_DOWN only: gate_up skips expert E)
        w_pool = 0u; w_base[0] = 0u; w_kd = pc.Is; w_nrow = pc.H; w_rowb = pc.Is;
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
    w_base[0] = sb + QN_PART_OFF;
#endif
    return s >= 0;
}

// One pass over up to BT pairs list[first .. first + n) for the output rows [r0, r0 + BN) (moe_grouped.comp).
void tile_pass(uint first, uint n, uint r0, bool present, uint lid)
{
    uint ty = lid / QN_GN, tx = lid % QN_GN;
    for (uint tt = lid; tt < BT; tt += QN_WG) {
        int q = tt < n ? list[first + tt] : -1;
        s_q[tt] = q;
        s_xrow[tt] = q >= 0 ? x_row(q) : ~0u;
    }
    vec4 a0 = vec4(0.0), a1 = vec4(0.0), a2 = vec4(0.0), a3 = vec4(0.0);
    barrier();
    bool busy = 4u * ty < n;
    if (present) fetch(0u, r0, lid);
    for (uint k0 = 0u; present && k0 < w_kd; k0 += QN_BK) {
        store(k0, r0, lid);
        barrier();
        if (k0 + QN_BK < w_kd) fetch(k0 + QN_BK, r0, lid); // in flight during the steps below
        if (busy) {
            vec4 b0 = vec4(0.0), b1 = vec4(0.0), b2 = vec4(0.0), b3 = vec4(0.0);
            for (uint kk = 0u; kk < QN_BK; kk++) {
                vec4 xv = s_x[kk * (BTP / 4u) + ty];
                vec4 wv = s_w[kk * (NRP / 4u) + tx];
                b0 += xv * wv.x;
                b1 += xv * wv.y;
                b2 += xv * wv.z;
                b3 += xv * wv.w;
            }
            a0 += b0; a1 += b1; a2 += b2; a3 += b3;
        }
        barrier();
    }
    for (uint m = 0u; m < 4u; m++) {
        int q = s_q[4u * ty + m];
        if (q < 0) continue;
        vec4 r = vec4(a0[m], a1[m], a2[m], a3[m]); // weight rows 4tx + c
        for (uint j = 0u; j < TN; j++) {
            uint row = r0 + tx * TN + j;
            if (row >= w_nrow) continue;
#if defined(QN_MOE_GATE_UP)
            float v = qn_silu(r[j]) * r[TN + j];
            outv[uint(q) * pc.act_stride + row] = present ? v : uintBitsToFloat(0x7fc00000u);
#else
            outv[uint(q) * pc.H + row] = present ? r[j] : uintBitsToFloat(0x7fc00000u);
#endif
        }
    }
    barrier(); // s_q is rewritten by the next pass
}

void main()
{
#if defined(QN_MOE_GATE_UP)
    uint nb = (pc.I + BN - 1u) / BN;
#else
    uint nb = (pc.H + BN - 1u) / BN;
#endif
    uint G = pc.tile_groups == 0u ? pc.max_tiles : pc.tile_groups;
    uint g = qn_group_id(), r0 = (g % nb) * BN, lid = gl_LocalInvocationIndex;
    for (uint tile = g / nb; tile < pc.max_tiles; tile += G) { // uniform over the workgroup
        int e = tiles[4u * tile];
        if (e < 0 || uint(e) > pc.E) break; // the used tiles are a prefix of the list
#if defined(QN_MOE_GATE_UP)
        if (uint(e) == pc.E) continue; // the shared expert's act comes from moe_router
#endif
        bool present = set_source(e);
        uint start = uint(tiles[4u * tile + 1u]), n = uint(tiles[4u * tile + 2u]);
        for (uint sub = 0u; sub < n; sub += BT) tile_pass(start + sub, min(BT, n - sub), r0, present, lid);
    }
}
