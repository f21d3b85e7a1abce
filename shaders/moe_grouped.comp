#version 450
// moe_grouped.comp — prefill MoE as grouped matmuls over the tiles of moe_sort: each workgroup takes one
// tile (one expert, up to tile_t of its (token, k) pairs) and one block of output rows, and reads that
// block of the expert's weights once for all the tile's tokens.
//
// QN_MOE_GATE_UP: act[q, i] = silu(gate_e[i] · x[t]) * (up_e[i] · x[t])  for the tile's pairs q = t·(K+1)+k,
//                 i in the block (BN rows of gate and the same BN rows of up); tiles of the shared
//                 pseudo-expert E are skipped (its act row comes from moe_router).
// QN_MOE_DOWN:    d[q, h] = down_e[h] · act[q]  (unweighted; expert E = the dense down_s [H, Is]);
//                 moe_combine then adds sum_k w·d + sg·d_shared to the residual in a fixed order.
// Every output element is one invocation's sum over the inner dimension in a fixed order (index order within
// each QN_BK step, the steps' partial sums added in order), so it depends only on the token, the expert's
// weights and QN_BK (not on the tile, slot or pool): streaming == resident bit for bit, and a token's
// result does not depend on the other tokens of the chunk.
//
// Variants (defines): QN_MOE_GATE_UP | QN_MOE_DOWN; QN_W_BF16 | QN_W_F16 | QN_W_F32 (moe_w.glsl).
// Bindings (QN_MOE_GATE_UP): 0 x     f32 [T, H]
//                            1 list  int32 [T·K + T]      (moe_sort)
//                            2 tiles int32 [max_tiles, 4] (moe_sort)
//                            3 table int32 [L, E]
//                            4 act   f32 [T, K + 1, act_stride] (rows 0..K-1 written)
//                            5..12 pool0..pool7
// Bindings (QN_MOE_DOWN):    0 act   f32 [T, K + 1, act_stride]
//                            1 list, 2 tiles, 3 table (as above)
//                            4 d     f32 [T, K + 1, H]
//                            5 down_s [H, Is] (weight dtype)
//                            6..13 pool0..pool7
// Push:     qn_pc_moe (T, H, I, Is, E, K, layer, n_slots, slots_per_pool, slot_bytes, act_stride, max_tiles,
//           tile_groups)
// Spec:     0 QN_WG workgroup size (default 256)
//           1 QN_GN invocations along the rows (default 16; QN_WG must be a multiple of it)
//           2 QN_BK inner-dimension step (default 32, a multiple of 8)
//           Each invocation computes 4 tokens x 4 weight rows (register blocking: one vec4 of x and one vec4
//           of weights from shared memory per step): token tile BT = 4 · QN_WG / QN_GN (64), row block
//           BN = 2 · QN_GN (gate_up: 2 gate + 2 up rows each; 32) or 4 · QN_GN (down; 64).
//           A tile of more than BT pairs is done in several passes (tile_t = BT is best).
// Dispatch: G · nb groups (qn_vk_grid) with G = tile_groups (0: max_tiles) and nb = ceil(I / BN)
//           (QN_MOE_GATE_UP) or ceil(H / BN) (QN_MOE_DOWN). Group g takes row block g % nb of the tiles
//           g / nb, g / nb + G, ... up to the first unused tile. G = max_tiles gives one tile per workgroup
//           (most parallel); a smaller G bounds the number of workgroups that find no tile.
// An absent slot gives NaN outputs instead of reading out of bounds.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_GN = 16;
layout(constant_id = 2) const uint QN_BK = 32;
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer X { float xin[]; };
layout(binding = 1, std430) readonly buffer List { int list[]; };
layout(binding = 2, std430) readonly buffer Tiles { int tiles[]; };
#define QN_TABLE_BIND 3
#if defined(QN_MOE_GATE_UP)
layout(binding = 4, std430) writeonly buffer Out { float outv[]; };
#define QN_POOL_BIND 5
const uint QN_NW = 2u; // weight row groups: gate, up
#elif defined(QN_MOE_DOWN)
layout(binding = 4, std430) writeonly buffer Out { float outv[]; };
layout(binding = 5, std430) readonly buffer DS4 { uvec4 ds4[]; };
layout(binding = 5, std430) readonly buffer DS1 { uint ds1[]; };
#define QN_POOL_BIND 6
const uint QN_NW = 1u;
#else
#error "moe_grouped.comp: define QN_MOE_GATE_UP or QN_MOE_DOWN"
#endif
#include "moe_w.glsl"

const uint TN = 4u / QN_NW;           // output rows per invocation
const uint GT = QN_WG / QN_GN;        // invocations along the tokens
const uint BT = 4u * GT;              // token tile
const uint BN = QN_GN * TN;           // output row block
const uint NR = 4u * QN_GN;           // weight rows in the tile (QN_NW · BN)
const uint BTP = BT + 4u, NRP = NR + 4u; // pitches in floats (multiples of 4, padded against bank conflicts)
shared vec4 s_x[QN_BK * BTP / 4u];    // [kk][token]: x of token 4j+c at step kk in s_x[kk * BTP/4 + j][c]
shared vec4 s_w[QN_BK * NRP / 4u];    // [kk][weight row p], p = 4 · tx + c
shared int s_q[BT];                   // pair of each token slot, -1 = none
shared uint s_xrow[BT];               // its input row's element offset, ~0u = none

// weight source of this workgroup: pool (or the dense down_s), element base of row 0 of each row group,
// row length kd, valid rows nrow
uint w_pool, w_base[QN_NW], w_kd, w_nrow;
bool w_dense;

uint x_row(int q) // element offset of pair q's input row
{
#if defined(QN_MOE_GATE_UP)
    return (uint(q) / (pc.K + 1u)) * pc.H;
#else
    return uint(q) * pc.act_stride;
#endif
}

float w_elem(uint e)
{
#if defined(QN_MOE_DOWN)
    if (w_dense) return qn_w_word(ds1[e / QN_EPW], e);
#endif
    return qn_pool_elem(w_pool, e);
}

uvec4 w_chunk(uint e) // e: element index, a multiple of QN_CW
{
#if defined(QN_MOE_DOWN)
    if (w_dense) return ds4[e / QN_CW];
#endif
    return qn_pool4(w_pool, e / QN_CW);
}

void put_x(uint kk, uint tt, float v) { s_x[(kk * BTP + tt) / 4u][tt % 4u] = v; }
void put_w(uint kk, uint p, float v) { s_w[(kk * NRP + p) / 4u][p % 4u] = v; }

// The next QN_BK step is loaded into registers while the current one is computed (software pipelining):
// per invocation XPT x values and WPT 16-byte weight chunks of the tile.
const uint CPR = QN_BK / QN_CW;                        // weight chunks per tile row and step
const uint XPT = (BT * QN_BK + QN_WG - 1u) / QN_WG;
const uint WPT = (NR * CPR + QN_WG - 1u) / QN_WG;
float xr[XPT];
uvec4 wr[WPT];
bool w_vec; // weight rows are whole 16-byte chunks (else elements are read one by one, unpipelined)

// weight chunk idx of the tile: tile row p (thread 4p.. layout), chunk cc; its first element and validity
bool w_at(uint idx, uint k0, uint r0, out uint p, out uint cc, out uint e0)
{
    p = idx / CPR; cc = idx % CPR;
    uint col = k0 + cc * QN_CW, c = p % 4u, row = r0 + (p / 4u) * TN + c % TN;
    e0 = w_base[c / TN] + row * w_kd + col;
    return row < w_nrow;
}

void fetch(uint k0, uint r0, uint lid) // global memory -> registers
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG, tt = idx / QN_BK, col = k0 + idx % QN_BK; // coalesced along the row
        uint xb = idx < BT * QN_BK ? s_xrow[tt] : ~0u;
        xr[i] = xb != ~0u && col < w_kd ? xin[xb + col] : 0.0;
    }
    for (uint i = 0u; w_vec && i < WPT; i++) {
        uint idx = lid + i * QN_WG, p, cc, e0;
        bool ok = idx < NR * CPR && w_at(idx, k0, r0, p, cc, e0) && k0 + cc * QN_CW < w_kd;
        wr[i] = ok ? w_chunk(e0) : uvec4(0u); // zero bits are 0.0 in every dtype
    }
}

void store(uint k0, uint r0, uint lid) // registers -> shared memory
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * QN_WG;
        if (idx < BT * QN_BK) put_x(idx % QN_BK, idx / QN_BK, xr[i]);
    }
    for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * QN_WG, p, cc, e0;
        if (idx >= NR * CPR) break;
        bool ok = w_at(idx, k0, r0, p, cc, e0);
        vec4 a = vec4(0.0), b = vec4(0.0);
        if (w_vec) {
            qn_w_unpack(wr[i], a, b);
        } else {
            uint col = k0 + cc * QN_CW;
            for (uint j = 0u; j < QN_CW; j++) {
                float v = (ok && col + j < w_kd) ? w_elem(e0 + j) : 0.0;
                if (j < 4u) a[j] = v; else b[j - 4u] = v;
            }
        }
        for (uint j = 0u; j < QN_CW; j++) put_w(cc * QN_CW + j, p, j < 4u ? a[j] : b[j - 4u]);
    }
}

// set the weight source for expert e (a routed expert through the slot table, or the dense shared expert)
bool set_source(int e)
{
    uint I = pc.I, H = pc.H;
    w_dense = uint(e) == pc.E;
    if (w_dense) {
        w_pool = 0u; w_base[0] = 0u; w_kd = pc.Is; w_nrow = H;
        w_vec = w_kd % QN_CW == 0u;
        return true;
    }
    int s = qn_moe_slot(e);
    uint sb = s < 0 ? 0u : qn_slot_byte(s) / QN_ESZ;
    w_pool = s < 0 ? 0u : qn_slot_pool(s);
#if defined(QN_MOE_GATE_UP)
    w_base[0] = sb; w_base[1] = sb + I * H; w_kd = H; w_nrow = I;
#else
    w_base[0] = sb + 2u * I * H; w_kd = I; w_nrow = H;
#endif
    w_vec = w_kd % QN_CW == 0u;
    return s >= 0;
}

// One pass over up to BT pairs list[first .. first + n) for the output rows [r0, r0 + BN). Invocation
// (ty, tx) accumulates tokens 4ty..4ty+3 (the components of a vec4) for weight rows 4tx..4tx+3 (a0..a3).
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
    bool busy = 4u * ty < n; // some of this invocation's token slots hold a pair
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
