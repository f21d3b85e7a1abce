#version 450
// moe_qmt.comp — prefill MoE over GGUF block experts for a FEW to some dozens of pairs per expert (T·K/E of about
// 2..48): a multi-token grouped matvec over moe_sort's tiles. Same bindings, push constants and list / tiles /
// act / d layouts as moe_qgrouped.comp and moe_qsmall.comp (NaN for an absent expert), so forward.c swaps it in.
//
// One workgroup = (tile, row block). Each lane owns whole output rows (QN_NR of them; gate_up: each a gate row and
// an up row), or a 1/QN_LK share of them (QN_LK lanes per row, summed at the end with a fixed butterfly). The
// inputs of the tile's tokens (up to QN_NT pairs) are staged in shared memory in chunks of QN_CK elements; a lane
// decodes each 32-weight unit of its rows ONCE into registers and applies it to every token of the tile. With
// QN_LK = 1 all lanes of a subgroup read the same input vec4 at a time (a shared-memory broadcast), so the inner
// loop is 4 fmas per (weight vec4, token) plus one broadcast load per (vec4, token), and the weights are decoded
// once per tile instead of once per token (moe_q.comp's per-token kernels) or into a 64-token tile mostly of
// padding (moe_qgrouped[_cm].comp at few pairs per expert).
//
// QN_MOE_GATE_UP: act[q, i] = silu(gate_e[i] · x[t]) * (up_e[i] · x[t])  for the tile's pairs q = t·(K+1)+k;
//                 tiles of the shared pseudo-expert E are skipped (its act row comes from moe_router).
// QN_MOE_DOWN:    d[q, h] = down_e[h] · act[q]  (unweighted; expert E = the dense f32 down_s [H, Is]);
//                 moe_combine then adds sum_k w·d + sg·d_shared in a fixed order.
// Each output is one fixed-order sum (units in order per lane, then the butterfly over its QN_LK lanes): it depends
// on the token and the expert's weights only, not on the tile, the token's slot or the expert's slot (streaming ==
// resident bit for bit).
// Variants: QN_MOE_GATE_UP | QN_MOE_DOWN; QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K; always QN_SUBGROUP
//           (the butterfly; no _nosg variant: forward_pipes.c makes it only where the device has the features).
//           QN_I8 (moe_q_{gu,dn}_mt_i8_*; env QNEXT_MOE_MT_I8=1): the staged inputs are quantized to int8 per 32
//           elements (quant_i8.glsl's runs: dx = amax / 127, q = roundEven(x / dx)) and each unit costs 8 packed
//           4x8-bit OpSDot per (weight row, token) instead of 32 fmas: out = the dot with the dequantized input
//           dx q. The shared expert's f32 down_s (down) keeps the f32 staging and fmas (exact act).
// Bindings (QN_MOE_GATE_UP): 0 x f32 [T, H], 1 list, 2 tiles, 3 table, 4 act f32 [T, K + 1, act_stride], 5..12 pools
// Bindings (QN_MOE_DOWN):    0 act, 1 list, 2 tiles, 3 table, 4 d f32 [T, K + 1, H], 5 down_s f32 [H, Is], 6..13 dpools
// Push:     qn_pc_moe; a tile of more than QN_NT pairs is done in passes of QN_NT (each decodes the weights again).
//           H (gate_up) or I (down) a multiple of the block size; H and act_stride multiples of 4.
// Spec:     0 QN_WG       workgroup size (default 64; a multiple of the subgroup size when QN_LK > 1)
//           1 QN_NT       token slots per pass (default 16)
//           2 QN_NR       rows per lane group (default 1)
//           3 QN_LK       lanes per row (power of two <= the subgroup size; default 1)
//           4 QN_PART_OFF byte offset of up in a gate|up slot (gate_up) / of down in a dpools slot (down)
//           5 QN_CK       input elements staged per chunk (a multiple of 256; default 256)
//           6 QN_UPF      1: each lane's next weight unit is loaded before the current one is computed (default 0)
//           Rows per workgroup: QN_WG / QN_LK · QN_NR. Shared memory: 16 (QN_NT · QN_CK / 4 + 1) + 8 QN_NT bytes;
//           QN_I8: gate_up 24 QN_NT · QN_CK / 16 + 8 QN_NT, down that + the f32 stage (qn_moe_mt_spec_i8).
// Dispatch: G · nb groups (qn_vk_grid), G = tile_groups (0: max_tiles), nb = ceil(rows / rows per workgroup);
//           group g: tile g / nb (then + G, ...), rows (g % nb) · rows per workgroup.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
#ifdef QN_SUBGROUP
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 64;
layout(constant_id = 1) const uint QN_NT = 16;
layout(constant_id = 2) const uint QN_NR = 1;
layout(constant_id = 3) const uint QN_LK = 1;
layout(constant_id = 4) const uint QN_PART_OFF = 0;
layout(constant_id = 5) const uint QN_CK = 256;
layout(constant_id = 6) const uint QN_UPF = 0;
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer X4 { vec4 x4[]; };
layout(binding = 0, std430) readonly buffer X1 { float x1[]; };
layout(binding = 1, std430) readonly buffer List { int list[]; };
layout(binding = 2, std430) readonly buffer Tiles { int tiles[]; };
#define QN_TABLE_BIND 3
layout(binding = 4, std430) writeonly buffer Out { float outv[]; };
#if defined(QN_MOE_GATE_UP)
#define QN_POOL_BIND 5
const uint QN_NW = 2u; // weight rows per output row: gate, up
#define QN_NROWS pc.I
#define QN_ROWLEN pc.H
#elif defined(QN_MOE_DOWN)
layout(binding = 5, std430) readonly buffer DS { float ds[]; };
layout(binding = 5, std430) readonly buffer DS4 { vec4 ds4[]; };
#define QN_POOL_BIND 6
const uint QN_NW = 1u;
#define QN_NROWS pc.H
#define QN_ROWLEN pc.I
#else
#error "moe_qmt.comp: define QN_MOE_GATE_UP or QN_MOE_DOWN"
#endif
#define QN_W_F32 // moe_w.glsl's element helpers are unused here; only its pools and slot table
#include "moe_w.glsl"
#include "quant.glsl"
#include "qunit.glsl"
#ifdef QN_I8
#include "quant_i8.glsl"
#endif

const uint CK4 = QN_CK / 4u;          // staged vec4 per token slot and chunk
const uint NG = QN_WG / QN_LK;        // lane groups (each QN_NR rows)
const uint RWG = NG * QN_NR;          // output rows per workgroup
const uint NWR = QN_NW * QN_NR;       // weight rows per lane
const uint NV = QN_NT * NWR;          // sums per lane: (t, j) at t · NWR + j
#if !defined(QN_I8) || defined(QN_MOE_DOWN)
shared vec4 s_x[QN_NT * CK4 + 1u];    // slot t's chunk at vec4 t · CK4 + qn_qxs_slot(s)
#endif
#ifdef QN_I8
const uint CKR = QN_CK / 16u;         // int8 runs of 16 per slot and chunk
shared uvec4 s_xq[QN_NT * CKR];       // slot t's run r at t · CKR + qn_i8_slot(r): 16 signed bytes
shared vec2 s_xs[QN_NT * CKR];        // ... and its (dx, dx · sum q)
#endif
shared uint s_row[QN_NT];             // element offset of each slot's input row
shared int s_q[QN_NT];                // its pair, -1 = none

float acc[NV];

// Slots t < n get pair list[first + t] and its input row offset. Every invocation calls it (barriers).
void set_slots(uint first, uint n, uint lid)
{
    barrier(); // the previous pass is done with s_q / s_row / s_x
    for (uint t = lid; t < QN_NT; t += QN_WG) {
        int q = t < n ? list[first + t] : -1;
        s_q[t] = q;
#if defined(QN_MOE_GATE_UP)
        s_row[t] = q < 0 ? 0u : (uint(q) / (pc.K + 1u)) * pc.H;
#else
        s_row[t] = q < 0 ? 0u : uint(q) * pc.act_stride;
#endif
    }
    barrier();
}

#if !defined(QN_I8) || defined(QN_MOE_DOWN)
// Stage elements [c0, c0 + CK) of the n slots' input rows (len elements; zeros past len).
void stage(uint c0, uint len, uint n, uint lid)
{
    barrier(); // the previous chunk is done
    for (uint i = lid; i < n * CK4; i += QN_WG) {
        uint t = i / CK4, s = i % CK4, e = c0 + 4u * s, o = s_row[t] + e;
        vec4 v = vec4(0.0);
        if (e + 3u < len) v = x4[o / 4u]; // rows start at multiples of 4 floats (H, act_stride)
        else for (uint c = 0u; c < 4u; c++) v[c] = e + c < len ? x1[o + c] : 0.0;
        s_x[t * CK4 + qn_qxs_slot(s)] = v;
    }
    barrier();
}
#endif

// loads of unit v (block b = v / QUPB, unit k = v % QUPB) of the lane's weight rows (row j at byte wb[j]; gate_up:
// up at + QN_PART_OFF) into raw[]
#define QN_MT_LOADS(P4, P1)                                                                     \
    [[unroll]] for (uint j = 0u; j < QN_NR; j++) {                                              \
        raw[QN_NW * j] = QN_Q_LOAD(P4, P1, wb[j] + bo, k);                                      \
        if (QN_NW == 2u) raw[QN_NW * j + QN_NW - 1u] = QN_Q_LOAD(P4, P1, wb[j] + QN_PART_OFF + bo, k); \
    }
void load_unit(uint p, uint wb[QN_NR], uint v, out qn_qu raw[NWR])
{
    uint k = v % QN_QUPB, bo = (v / QN_QUPB) * QN_QBB;
    QN_POOL_SWITCH(p, QN_MT_LOADS)
}

#ifndef QN_I8
// acc[t, j] += this lane's units of chunk [c0, c0 + clen) of its weight rows times slot t's staged input. QN_UPF:
// the lane's next unit is loaded before this one is computed (its loads in flight during the fmas).
void chunk_q(uint p, uint wb[QN_NR], uint c0, uint clen, uint ul, uint n)
{
    uint vend = (c0 + clen) / 32u;
    qn_qu raw[NWR], nxt[NWR];
    if (QN_UPF != 0u && c0 / 32u + ul < vend) load_unit(p, wb, c0 / 32u + ul, nxt);
    for (uint v = c0 / 32u + ul; v < vend; v += QN_LK) {
        uint b = v / QN_QUPB, k = v % QN_QUPB, e0, e1;
        qn_q_xrun(k, e0, e1);
        if (QN_UPF != 0u) {
            [[unroll]] for (uint j = 0u; j < NWR; j++) raw[j] = nxt[j];
            if (v + QN_LK < vend) load_unit(p, wb, v + QN_LK, nxt);
        } else load_unit(p, wb, v, raw);
        uvec4 qa[NWR], qb[NWR];
        vec4 ab[NWR];
        [[unroll]] for (uint j = 0u; j < NWR; j++) qn_unit_q(raw[j], k, qa[j], qb[j], ab[j]);
        uint eb = b * QN_QK - c0, pa = qn_qxs_slot((eb + e0) / 4u), pb = qn_qxs_slot((eb + e1) / 4u);
        [[unroll]] for (uint c = 0u; c < 8u; c++) { // vec4 c of the unit: run a (c < 4), then run b
            vec4 w[NWR];
            [[unroll]] for (uint j = 0u; j < NWR; j++)
                w[j] = c < 4u ? qn_deq4(qa[j][c & 3u], ab[j].x, ab[j].y) : qn_deq4(qb[j][c & 3u], ab[j].z, ab[j].w);
            uint ps = (c < 4u ? pa : pb) ^ (c & 3u);
            [[unroll]] for (uint t = 0u; t < QN_NT; t++) {
                if (t < n) { // uniform
                    vec4 xv = s_x[t * CK4 + ps];
                    [[unroll]] for (uint j = 0u; j < NWR; j++) acc[t * NWR + j] = qn_fma4(w[j], xv, acc[t * NWR + j]);
                }
            }
        }
    }
}
#endif

#ifdef QN_I8
// Stage elements [c0, c0 + CK) of the n slots' input rows quantized to int8 runs (len a multiple of 32: whole
// blocks are in or past it; past it zeros). The flat block i = t · CK / 32 + b of the stage is slot t's block b.
#define QN_MT_X4(j) mt_x4(j, c0, len)
vec4 mt_x4(uint j, uint c0, uint len)
{
    uint t = j / CK4, e = c0 + 4u * (j % CK4);
    return e < len ? x4[(s_row[t] + e) / 4u] : vec4(0.0);
}
void stage_i8(uint c0, uint len, uint n, uint lid)
{
    barrier(); // the previous chunk is done
    QN_I8_STAGE(s_xq, s_xs, QN_MT_X4, lid, n * (QN_CK / 32u), QN_WG)
    barrier();
}

// the unit's two runs as signed bytes and their (A_a, B_a, A_b, B_b): weight = byte · A + B
void unit_i8(qn_qu u, uint k, out uvec4 qa, out uvec4 qb, out vec4 ab)
{
#if defined(QN_Q8_0)
    qa = u.a; qb = u.b; // signed bytes already
    ab = vec4(u.d, 0.0, u.d, 0.0);
#else
    qn_unit_q(u, k, qa, qb, ab); // quants 0 .. 63: valid signed bytes
#endif
}

// chunk_q on int8 inputs: per (unit, token) the two runs' OpSDot sums of each weight row, scaled in a fixed order
void chunk_q_i8(uint p, uint wb[QN_NR], uint c0, uint clen, uint ul, uint n)
{
    uint vend = (c0 + clen) / 32u;
    qn_qu raw[NWR], nxt[NWR];
    if (QN_UPF != 0u && c0 / 32u + ul < vend) load_unit(p, wb, c0 / 32u + ul, nxt);
    for (uint v = c0 / 32u + ul; v < vend; v += QN_LK) {
        uint b = v / QN_QUPB, k = v % QN_QUPB, e0, e1;
        qn_q_xrun(k, e0, e1);
        if (QN_UPF != 0u) {
            [[unroll]] for (uint j = 0u; j < NWR; j++) raw[j] = nxt[j];
            if (v + QN_LK < vend) load_unit(p, wb, v + QN_LK, nxt);
        } else load_unit(p, wb, v, raw);
        uvec4 qa[NWR], qb[NWR];
        vec4 ab[NWR];
        [[unroll]] for (uint j = 0u; j < NWR; j++) unit_i8(raw[j], k, qa[j], qb[j], ab[j]);
        uint eb = b * QN_QK - c0, ra = qn_i8_slot((eb + e0) / 16u), rb = qn_i8_slot((eb + e1) / 16u);
        [[unroll]] for (uint t = 0u; t < QN_NT; t++) {
            if (t < n) { // uniform
                uvec4 xa = s_xq[t * CKR + ra], xb = s_xq[t * CKR + rb];
                vec2 sa = s_xs[t * CKR + ra], sb = s_xs[t * CKR + rb];
                [[unroll]] for (uint j = 0u; j < NWR; j++) {
                    vec2 r = qn_i8_runs(qa[j], qb[j], xa, xb, sa, sb);
                    acc[t * NWR + j] += fma(ab[j].x, r.x, fma(ab[j].z, r.y, fma(ab[j].y, sa.y, ab[j].w * sb.y)));
                }
            }
        }
    }
}
#endif

#if defined(QN_MOE_DOWN)
// the shared expert's f32 rows (row j: hr[j]) of length Is, chunk [c0, c0 + clen): lanes on vec4 positions
void chunk_dense(uint hr[QN_NR], uint c0, uint clen, uint ul, uint n)
{
    for (uint s = ul; s < (clen + 3u) / 4u; s += QN_LK) {
        uint e = c0 + 4u * s;
        vec4 w[QN_NR];
        [[unroll]] for (uint j = 0u; j < QN_NR; j++) {
            if (pc.Is % 4u == 0u) w[j] = ds4[(hr[j] * pc.Is + e) / 4u]; // uniform
            else
                [[unroll]] for (uint c = 0u; c < 4u; c++) w[j][c] = e + c < pc.Is ? ds[hr[j] * pc.Is + e + c] : 0.0;
        }
        uint ps = qn_qxs_slot(s);
        [[unroll]] for (uint t = 0u; t < QN_NT; t++) {
            if (t < n) {
                vec4 xv = s_x[t * CK4 + ps];
                [[unroll]] for (uint j = 0u; j < QN_NR; j++) acc[t * NWR + j] = qn_fma4(w[j], xv, acc[t * NWR + j]);
            }
        }
    }
}
#endif

// the sums of each row over its QN_LK lanes (aligned runs of QN_LK lanes of one subgroup): a plain butterfly
void lane_sum()
{
#ifdef QN_SUBGROUP
    [[unroll]] for (uint o = QN_LK / 2u; o > 0u; o /= 2u)
        [[unroll]] for (uint i = 0u; i < NV; i++) acc[i] += subgroupShuffleXor(acc[i], o);
#endif
}

// One pass: up to QN_NT pairs list[first .. first + n) of expert e (uniform) for output rows [r0, r0 + RWG).
void pass(int e, uint first, uint n, uint r0, uint lid)
{
    bool dense = uint(e) == pc.E; // the shared expert (down only)
    set_slots(first, n, lid);
    int s = dense ? 0 : qn_moe_slot(e);
    if (s < 0) { // uniform: absent expert -> NaN
        for (uint i = lid; i < n * RWG; i += QN_WG) {
            uint t = i / RWG, row = r0 + i % RWG;
#if defined(QN_MOE_GATE_UP)
            if (row < QN_NROWS) outv[uint(s_q[t]) * pc.act_stride + row] = uintBitsToFloat(0x7fc00000u);
#else
            if (row < QN_NROWS) outv[uint(s_q[t]) * pc.H + row] = uintBitsToFloat(0x7fc00000u);
#endif
        }
        return;
    }
    uint p = qn_slot_pool(s), sb = qn_slot_byte(s), rowb = QN_ROWLEN / QN_QK * QN_QBB;
    uint gi = lid / QN_LK, ul = lid % QN_LK, len = dense ? pc.Is : QN_ROWLEN;
    uint hr[QN_NR], wb[QN_NR];
    [[unroll]] for (uint j = 0u; j < QN_NR; j++) {
        hr[j] = min(r0 + j * NG + gi, QN_NROWS - 1u);
        wb[j] = sb + QN_PART_OFF * (2u - QN_NW) + hr[j] * rowb; // down: + the down part's offset
    }
    [[unroll]] for (uint i = 0u; i < NV; i++) acc[i] = 0.0;
    for (uint c0 = 0u; c0 < len; c0 += QN_CK) { // uniform
        uint clen = min(QN_CK, len - c0);
#if defined(QN_I8)
#if defined(QN_MOE_DOWN)
        if (dense) { // uniform
            stage(c0, len, n, lid);
            chunk_dense(hr, c0, clen, ul, n);
            continue;
        }
#endif
        stage_i8(c0, len, n, lid);
        chunk_q_i8(p, wb, c0, clen, ul, n);
#else
        stage(c0, len, n, lid);
#if defined(QN_MOE_DOWN)
        if (dense) chunk_dense(hr, c0, clen, ul, n);
        else
#endif
            chunk_q(p, wb, c0, clen, ul, n);
#endif
    }
    lane_sum();
    if (ul != 0u) return; // (no barrier or subgroup operation follows in this pass)
    [[unroll]] for (uint j = 0u; j < QN_NR; j++) {
        uint row = r0 + j * NG + gi;
        [[unroll]] for (uint t = 0u; t < QN_NT; t++) {
            if (t < n && row < QN_NROWS) {
#if defined(QN_MOE_GATE_UP)
                outv[uint(s_q[t]) * pc.act_stride + row] = qn_silu(acc[t * NWR + 2u * j]) * acc[t * NWR + 2u * j + 1u];
#else
                outv[uint(s_q[t]) * pc.H + row] = acc[t * NWR + j];
#endif
            }
        }
    }
}

void main()
{
    uint nb = (QN_NROWS + RWG - 1u) / RWG;
    uint G = pc.tile_groups == 0u ? pc.max_tiles : pc.tile_groups;
    uint g = qn_group_id(), r0 = (g % nb) * RWG, lid = gl_LocalInvocationIndex;
    for (uint tile = g / nb; tile < pc.max_tiles; tile += G) { // uniform over the workgroup
        int e = tiles[4u * tile];
        if (e < 0 || uint(e) > pc.E) break; // the used tiles are a prefix of the list
#if defined(QN_MOE_GATE_UP)
        if (uint(e) == pc.E) continue; // the shared expert's act comes from moe_router
#endif
        uint start = uint(tiles[4u * tile + 1u]), n = uint(tiles[4u * tile + 2u]);
        for (uint sub = 0u; sub < n; sub += QN_NT) pass(e, start + sub, min(QN_NT, n - sub), r0, lid);
    }
}
