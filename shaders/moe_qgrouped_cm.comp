#version 450
// moe_qgrouped_cm.comp — moe_qgrouped.comp on tensor cores (VK_NV_cooperative_matrix): the same tiles of
// moe_sort (one expert, up to tile_t of its (token, k) pairs), the same slot addressing (gate | up in `pools`
// at QN_PART_OFF, down in `dpools`, f32 down_s for the shared pseudo-expert E), the same outputs
//   QN_MOE_GATE_UP: act[q, i] = silu(gate_e[i] · x[t]) * (up_e[i] · x[t])   (expert E skipped)
//   QN_MOE_DOWN:    d[q, h] = down_e[h] · act[q]                           (unweighted; moe_combine sums)
// with the expert's weight tile decoded to f16 in shared memory (common/qtile.glsl), the tile's token rows
// converted to f16, and 16x16x16 f16 fragments multiplied into f32 accumulators.
//
// Variants (defines): QN_MOE_GATE_UP | QN_MOE_DOWN; QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K; QN_X_F16: the
//   input given in f16 (to_f16.comp's; gate_up: x [T][H] halves, H a multiple of 8; down: act rows of act_stride
//   halves, a multiple of 8): its tile rows are moved into shared memory 16 bytes at a time, no conversion in the k
//   loop; the same outputs bit for bit (both round through types.glsl qn_pack_f16x8).
// Needs: QN_FEAT_COOPMAT_NV, shaderFloat16, vulkanMemoryModel, subgroups of 32 (the host checks).
// Bindings, push constants: as moe_qgrouped.comp.
// Spec:     0 QN_WG workgroup width, a multiple of 32 (default 128)
//           1 QN_BK inner-dimension step (a multiple of 16, default 32)
//           2 QN_PART_OFF byte offset of up in a gate|up slot (gate_up) / of down in a dpools slot (down)
//           3 CN fragment width: 16 (the 16x16x16 shape, default) or 8 (16x8x16), whichever the device lists
//           4 BT pairs per pass, a multiple of 16 up to 128 (default 64). The weight tile is decoded once
//             per pass, so a pass should hold a whole tile: BT >= tile_t; BT = R tile_t (R > 1) merges up to R
//             consecutive tiles of one expert into one pass (the expert's tiles j, j + 1, .. j + R - 1 with
//             j % R == 0; the workgroups of the others return)
//           5 NBUF shared tile buffers: 1 (two barriers per k-step) or 2 (default: the next step is decoded
//             into the other buffer after the multiplies; one barrier per k-step)
//           6 PSW weight loads of a k-step: 1 (default) all inside one switch over the 8 pool bindings
//             (qtile.glsl's qt_addr / QT_FETCH_FROM in QN_POOL_SWITCH), 0 each load its own switch (qt_fetch)
//           7 TS token splits (workgroup height; default 1): QN_WG x TS invocations, subgroup s takes the weight
//             rows of row group s % (QN_WG / 32) and the pair fragments j TS + s / (QN_WG / 32) of the pass (16 pairs
//             each, j < BT / 16 / TS; BT a multiple of 16 TS): the same rows per workgroup, TS times the invocations
//             to decode them; the splits' fragments interleave so that a pass of fewer than BT pairs keeps them
//             equally busy (a split owning a contiguous block of BT / TS pairs idled at the barriers instead)
//           The host's qn_cm_moe_spec() (runtime/cm_check.c) picks 0-6 (env QNEXT_CM_MOE_TILE) and checks
//           the shared memory: 2 NBUF (BT + QN_WG) (QN_BK + 8) + 40 QN_WG TS + 8 BT bytes, the 40 QN_WG TS of the
//           epilogue's staging only where it does not fit in s_w (CS_IN_W).
// Layout: a pass takes up to BT pairs of a tile (BT / 16 row fragments of A, BT / 16 / TS per subgroup); row
//   group w of the workgroup owns 32 weight rows of the shared tile (32 / CN fragments of B): gate_up: gate rows
//   r0 + 16w .. +16 and the same up rows (its 16 outputs); down: rows r0 + 32w .. +32. Output rows per workgroup
//   BN = 16 · QN_WG / 32 (gate_up, QN_WG / 2) or 32 · QN_WG / 32 (down, QN_WG). Tiles of more than BT pairs take
//   several passes.
//   Shared tiles are uvec4 arrays (8 halves per store; the fragments load from them in uvec4 units).
// Dispatch: G · nb groups (qn_vk_grid), G = tile_groups (0: max_tiles), nb = ceil(I / BN) (gate_up) or
//   ceil(H / BN) (down); group g takes row block g % nb of the tiles g / nb, g / nb + G, ... Down with
//   pc.flags QN_MOE_SHARED_ONLY: only the shared pseudo-expert E's tiles, counted from its first one (G = its
//   tile count), so its down can run beside the gate_up (its act rows are the router's); QN_MOE_SKIP_SHARED: the
//   other tiles only.
// Accuracy as qmatmul_cm.comp: f16 operands (|x| clamped to 65504), f32 products and sums; each output depends
// only on its token, the expert and QN_BK (not on the tile, slot, BT, NBUF or other tokens). Absent slot: NaN
// outputs.
#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0, local_size_y_id = 7) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_BK = 32;
layout(constant_id = 2) const uint QN_PART_OFF = 0;
layout(constant_id = 3) const uint CN = 16; // fragment width along the weight rows: 16 (16x16x16) or 8 (16x8x16)
layout(constant_id = 4) const uint BT = 64;   // pairs per pass (a multiple of 16, <= 128)
layout(constant_id = 5) const uint NBUF = 2;  // shared tile buffers (1 or 2)
layout(constant_id = 6) const uint PSW = 1;   // 1: one pool switch per k-step (else one per load)
layout(constant_id = 7) const uint TS = 1;    // token splits (workgroup height)
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer X { float xin[]; };
layout(binding = 0, std430) readonly buffer X4 { vec4 xin4[]; };
layout(binding = 0, std430) readonly buffer XH { uvec4 xh8[]; }; // QN_X_F16: 8 halves
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
const uint PT = BT / TS;                            // pairs per subgroup and pass
const uint NA = PT / 16u;                           // A fragments per subgroup and pass (<= 8)

const uint NTH = QN_WG * TS;          // invocations
const uint NSG = QN_WG / 32u;         // row groups (subgroups per token split)
const uint NR = 32u * NSG;            // weight rows in the shared tile
#if defined(QN_MOE_GATE_UP)
const uint BN = 16u * NSG;            // output rows per workgroup
#else
const uint BN = 32u * NSG;
#endif
const uint SK = QN_BK + 8u;           // halves per shared row (16-byte multiple; conflict-free fragment loads)
const uint SK4 = SK / 8u;             // uvec4 per shared row
const uint SC = 20u;                  // floats per staging row
shared uvec4 s_x[NBUF * BT * SK4];    // [buffer][pair slot][k] as f16
shared uvec4 s_w[NBUF * NR * SK4];    // [buffer][tile row p][k] as f16
// the epilogue's staging (per subgroup one 16 x 16 block) lives in s_w when that is large enough (the k loop is done
// with it then): NBUF (QN_BK + 8) >= 20 TS, e.g. NBUF 2 at BK 32 up to TS 4; else in s_c
const bool CS_IN_W = NBUF * (QN_BK + 8u) >= 20u * TS;
shared float s_c[CS_IN_W ? 1u : NSG * TS * 16u * SC];
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

const uint GR = QN_BK / 8u;                          // 8-element groups per row and k-step
const uint XPT = (BT * GR + NTH - 1u) / NTH;
const uint WPT = (NR * GR + NTH - 1u) / NTH;
#if defined(QN_X_F16)
uvec4 xr[XPT]; // the loads fetch() issues (set A) ...
#else
vec4 xr[XPT][2]; // the loads fetch() issues (set A) ...
#endif
qt_raw wr[WPT];
#if defined(QN_X_F16)
uvec4 xs[XPT]; // ... and the set store() decodes (set B = A once A's loads are needed)
#else
vec4 xs[XPT][2]; // ... and the set store() decodes (set B = A once A's loads are needed)
#endif
qt_raw ws[WPT];
bool x_vec;

bool w_at(uint idx, uint k0, uint r0, out uint p, out uint kc, out uint rb)
{
    p = idx / GR; kc = (idx % GR) * 8u;
    uint part, row;
    row_of(p, r0, part, row);
    rb = w_base[part] + row * w_rowb;
    return idx < NR * GR && row < w_nrow && k0 + kc < w_kd;
}

vec4 x_load4(uint xb, uint col) // x[xb + col .. +4), zeros past the row
{
    vec4 v = vec4(0.0);
    if (x_vec && col + 4u <= w_kd) v = xin4[(xb + col) / 4u];
    else
        for (uint c = 0u; c < 4u; c++) v[c] = col + c < w_kd ? xin[xb + col + c] : 0.0;
    return v;
}

#define CM_W_LOADS(P4, P1) \
    [[unroll]] for (uint i = 0u; i < WPT; i++) wr[i] = QT_FETCH_FROM(P4, P1, ia[i], ib[i]);

void fetch(uint k0, uint r0, uint lid) // global memory -> registers (loads only)
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * NTH, tt = idx / GR, col = k0 + (idx % GR) * 8u;
        uint xb = idx < BT * GR ? s_xrow[tt] : ~0u;
#if defined(QN_X_F16)
        xr[i] = xb != ~0u && col < w_kd ? xh8[(xb + col) / 8u] : uvec4(0u);
#else
        xr[i][0] = xb != ~0u && col < w_kd ? x_load4(xb, col) : vec4(0.0);
        xr[i][1] = xb != ~0u && col + 4u < w_kd ? x_load4(xb, col + 4u) : vec4(0.0);
#endif
    }
    uvec4 ia[WPT], ib[WPT];
    for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * NTH, p, kc, rb;
        ia[i] = ib[i] = uvec4(0u);
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
        if (PSW == 0u) wr[i] = qt_fetch(rb, k0 + kc);
        else qt_addr(rb, k0 + kc, ia[i], ib[i]);
    }
    if (PSW != 0u && !w_dense) { // one uniform switch around all the loads (in-range words: index 0 where unused)
        QN_POOL_SWITCH(w_pool, CM_W_LOADS)
    }
}

void take_loads() // set B = set A (waits for A's loads)
{
    [[unroll]] for (uint i = 0u; i < XPT; i++) xs[i] = xr[i];
    [[unroll]] for (uint i = 0u; i < WPT; i++) ws[i] = wr[i];
}

void store(uint k0, uint r0, uint lid, uint buf) // registers -> f16 shared tiles of buffer buf
{
    for (uint i = 0u; i < XPT; i++) {
        uint idx = lid + i * NTH, tt = idx / GR, kc = idx % GR;
        if (idx >= BT * GR) break;
#if defined(QN_X_F16)
        s_x[(buf * BT + tt) * SK4 + kc] = xs[i];
#else
        vec4 lo = clamp(xs[i][0], vec4(-65504.0), vec4(65504.0)), hi = clamp(xs[i][1], vec4(-65504.0), vec4(65504.0));
        s_x[(buf * BT + tt) * SK4 + kc] = qn_pack_f16x8(lo, hi);
#endif
    }
    for (uint i = 0u; i < WPT; i++) {
        uint idx = lid + i * NTH, p, kc, rb;
        if (idx >= NR * GR) break;
        vec4 a = vec4(0.0), b = vec4(0.0);
        if (w_at(idx, k0, r0, p, kc, rb)) {
            if (w_dense) { a = uintBitsToFloat(ws[i].a); b = uintBitsToFloat(ws[i].b); }
            else qt_decode(ws[i], rb, k0 + kc, a, b);
        }
        s_w[(buf * NR + p) * SK4 + kc / 8u] = qn_pack_f16x8(a, b);
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

// the 16 x 16 outputs in f0 (| f1: CN 8) -> v[r] = element (row lane / 16 + 2r, column lane % 16), through
// the subgroup's staging block cb
void stage(CMC f0, CMC f1, uint cb, uint lane, out float v[8])
{
    if (CS_IN_W) { // cb and SC are multiples of 4: whole uvec4 of s_w
        coopMatStoreNV(f0, s_w, cb / 4u, SC / 4u, false);
        if (NB == 4u) coopMatStoreNV(f1, s_w, (cb + CN) / 4u, SC / 4u, false);
    } else {
        coopMatStoreNV(f0, s_c, cb, SC, false);
        if (NB == 4u) coopMatStoreNV(f1, s_c, cb + CN, SC, false);
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    [[unroll]] for (uint r = 0u; r < 8u; r++) {
        uint i = cb + (lane / 16u + 2u * r) * SC + lane % 16u;
        v[r] = CS_IN_W ? uintBitsToFloat(s_w[i / 4u][i % 4u]) : s_c[i];
    }
    subgroupBarrier(); // the block is rewritten next
}

// one pass over up to BT pairs list[first .. first + n) for the output rows [r0, r0 + BN)
void tile_pass(uint first, uint n, uint r0, bool present, uint lid)
{
    for (uint tt = lid; tt < BT; tt += NTH) {
        int q = tt < n ? list[first + tt] : -1;
        s_q[tt] = q;
        s_xrow[tt] = q >= 0 ? x_row(q) : ~0u;
    }
    barrier();
    uint sg = gl_SubgroupID, rg = sg % NSG, wr0 = 32u * rg, ts = sg / NSG; // tile rows wr0 .., token split ts
    // sized by the spec constants (a fixed array of 32 with only NA NB used: H100 run 82, prefill -1%)
    CMC acc[NA * NB]; // acc[NB a + j]: pairs 16 (a TS + ts) .., tile rows wr0 + CN j .. (a < NA, j < NB)
    [[unroll]] for (uint i = 0u; i < NA * NB; i++) acc[i] = CMC(0.0);
    uint nk = present ? (w_kd + QN_BK - 1u) / QN_BK : 0u;
    if (nk > 0u) {
        fetch(0u, r0, lid);
        take_loads();
        store(0u, r0, lid, 0u);
    }
    barrier();
    for (uint st = 0u; st < nk; st++) {
        uint cur = NBUF == 2u ? st & 1u : 0u;
        bool more = st + 1u < nk;
        if (more) fetch((st + 1u) * QN_BK, r0, lid); // in flight during the multiplies below
        [[unroll]] for (uint kk = 0u; kk < QN_BK; kk += 16u) { // the fragments of this k-step
            CMB b[NB];
            [[unroll]] for (uint j = 0u; j < NB; j++) {
                coopMatLoadNV(b[j], s_w, (cur * NR + wr0 + CN * j) * SK4 + kk / 8u, SK4, true);
            }
            [[unroll]] for (uint a = 0u; a < 8u; a++) {
                if (a >= NA || 16u * (a * TS + ts) >= n) break; // uniform over the subgroup: fragments holding pairs
                CMA fa;
                coopMatLoadNV(fa, s_x, (cur * BT + 16u * (a * TS + ts)) * SK4 + kk / 8u, SK4, false);
                [[unroll]] for (uint j = 0u; j < NB; j++) {
                    acc[NB * a + j] = coopMatMulAddNV(fa, b[j], acc[NB * a + j]);
                }
            }
        }
        if (NBUF == 1u) barrier(); // everyone is done with the buffer before it is rewritten
        if (more) {
            take_loads();
            store((st + 1u) * QN_BK, r0, lid, NBUF == 2u ? 1u - cur : 0u);
        }
        barrier();
    }
    // epilogue through the subgroup's staging block, 16 x 16 outputs at a time
    uint cb = sg * 16u * SC, lane = gl_SubgroupInvocationID;
    float nan = uintBitsToFloat(0x7fc00000u);
    [[unroll]] for (uint a = 0u; a < 8u; a++) {
        uint pa = 16u * (a * TS + ts); // the fragment's first pair slot
        if (a >= NA || pa >= n) break; // uniform over the subgroup
        float v0[8], v1[8];
        uint h0 = NB * a, h1 = h0 + NB / 2u, last = NA * NB - 1u; // (the second fragment is used at CN 8 only)
        stage(acc[h0], acc[h0 + 1u], cb, lane, v0);             // gate (or down rows wr0 ..)
        stage(acc[h1], acc[min(h1 + 1u, last)], cb, lane, v1); // up (or down rows wr0 + 16 ..)
        [[unroll]] for (uint r = 0u; r < 8u; r++) {
            int q = s_q[pa + lane / 16u + 2u * r];
            if (q < 0) continue;
#if defined(QN_MOE_GATE_UP)
            uint row = r0 + 16u * rg + lane % 16u;
            if (row < w_nrow) outv[uint(q) * pc.act_stride + row] = present ? qn_silu(v0[r]) * v1[r] : nan;
#else
            uint row = r0 + wr0 + lane % 16u;
            if (row < w_nrow) outv[uint(q) * pc.H + row] = present ? v0[r] : nan;
            if (row + 16u < w_nrow) outv[uint(q) * pc.H + row + 16u] = present ? v1[r] : nan;
#endif
        }
    }
    barrier(); // s_q, s_xrow are rewritten by the next pass
}

// the first tile of expert e at or before tile (the tile list is sorted by expert up to the unused tail, whose
// entries are negative)
uint first_tile(uint tile, int e)
{
    uint lo = 0u, hi = tile;
    while (lo < hi) {
        uint mid = (lo + hi) / 2u;
        int te = tiles[4u * mid];
        if (te >= 0 && te < e) lo = mid + 1u; else hi = mid;
    }
    return lo;
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
    uint R = max(1u, BT / max(pc.tile_t, 1u)); // sort tiles per pass
    uint g = qn_group_id(), r0 = (g % nb) * BN, lid = gl_LocalInvocationIndex;
    bool only_sh = (pc.flags & QN_MOE_SHARED_ONLY) != 0u, skip_sh = (pc.flags & QN_MOE_SKIP_SHARED) != 0u;
    uint t0 = only_sh ? first_tile(pc.max_tiles, int(pc.E)) : 0u;
    for (uint tile = t0 + g / nb; tile < pc.max_tiles; tile += G) { // uniform over the workgroup
        int e = tiles[4u * tile];
        if (e < 0 || uint(e) > pc.E || (only_sh && uint(e) != pc.E)) break;
#if defined(QN_MOE_GATE_UP)
        if (uint(e) == pc.E) continue;
#else
        if (skip_sh && uint(e) == pc.E) continue;
#endif
        if (R > 1u && (tile - first_tile(tile, e)) % R != 0u) continue; // merged into an earlier tile's pass
        uint start = uint(tiles[4u * tile + 1u]), n = uint(tiles[4u * tile + 2u]);
        for (uint i = 1u; i < R && tile + i < pc.max_tiles && tiles[4u * (tile + i)] == e; i++)
            n += uint(tiles[4u * (tile + i) + 2u]); // the expert's next tiles: the next list entries
        bool present = set_source(e);
        for (uint sub = 0u; sub < n; sub += BT) tile_pass(start + sub, min(BT, n - sub), r0, present, lid);
    }
}
