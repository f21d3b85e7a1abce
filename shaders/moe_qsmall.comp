#version 450
// moe_qsmall.comp — prefill MoE over GGUF block experts for FEW tokens per expert (T·K/E of about 1..16):
// a multi-token matvec over moe_sort's tiles. The same outputs as moe_qgrouped.comp (same bindings, push
// constants, list / tiles / act / d layouts, NaN for an absent expert), but each workgroup streams a block of
// weight rows of one expert ONCE, decodes every 32-weight unit to f32 once and applies it to all the tile's
// tokens (up to QN_NT), instead of decoding a 64-token weight tile for 2-3 tokens (moe_qgrouped.comp's cost at
// small T). Reads each used expert's weights about once per layer, like decode reads each of its experts.
//
// QN_MOE_GATE_UP: act[q, i] = silu(gate_e[i] · x[t]) * (up_e[i] · x[t])  for the tile's pairs q = t·(K+1)+k;
//                 tiles of the shared pseudo-expert E are skipped (its act row comes from moe_router).
// QN_MOE_DOWN:    d[q, h] = down_e[h] · act[q]  (unweighted; expert E = the dense f32 down_s [H, Is]);
//                 moe_combine then adds sum_k w·d + sg·d_shared in a fixed order.
// Variants: QN_MOE_GATE_UP | QN_MOE_DOWN; QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K (common/quant.glsl);
//           QN_SUBGROUP: subgroup teams reduced with subgroupShuffleXor; else (the _nosg fallback) each lane
//           computes whole rows (no reduction).
// Bindings (QN_MOE_GATE_UP): 0 x f32 [T, H], 1 list, 2 tiles, 3 table, 4 act f32 [T, K + 1, act_stride],
//                            5..12 pools
// Bindings (QN_MOE_DOWN):    0 act, 1 list, 2 tiles, 3 table, 4 d f32 [T, K + 1, H], 5 down_s f32 [H, Is],
//                            6..13 dpools
// Push:     qn_pc_moe (as moe_qgrouped.comp: tiles from moe_sort with any tile_t; a tile of more than QN_NT
//           pairs is done in passes of QN_NT, each reading the weights again). H (gate_up) or I (down) a
//           multiple of the block size; act_stride a multiple of 4.
// Spec:     0 QN_WG      workgroup size (default 128)
//           1 QN_NT      token slots per pass (default 8; moe_sort's tile_t should be <= QN_NT)
//           2 QN_ROWS    output rows per workgroup (default 32)
//           3 QN_SGROWS  rows each lane group computes together (default 2; gate_up: gate + up rows each)
//           4 QN_PART_OFF byte offset of up in a gate|up slot (gate_up) / of down in a dpools slot (down)
//           5 QN_XSH     staged input capacity per token slot in vec4 (0: read x / act through L1); the
//                        input row (H / 4, or I / 4 and ceil(Is / 4) rounded up to 8) must fit, else L1.
//           6 QN_XSN     token slots the stage holds (0 or > QN_NT: QN_NT); a pass of more tokens reads its
//                        inputs through L1 (so NT 8 with 2048-float rows fits 48 KiB: most tiles hold <= 5)
//                        Shared memory: 16 (XSN · QN_XSH + 1) + 8 QN_NT bytes
//           QN_NT · QN_SGROWS (· 2 for gate_up) must be a power of two (the transposing butterfly).
// Dispatch: G · nb groups (qn_vk_grid), G = tile_groups (0: max_tiles), nb = ceil(I / QN_ROWS) (gate_up)
//           or ceil(H / QN_ROWS) (down); group g: tile g / nb (then + G, ...), rows (g % nb) · QN_ROWS.
// Layout: a team (subgroup, or the workgroup without subgroups) splits into G groups of L lanes (L = the
// largest power of two <= min(lanes, units per row); L = 1 without subgroups: whole rows per lane, no sums
// across lanes); each group takes QN_SGROWS rows, each lane the units
// (32 weights, quant.glsl) v = ul, ul + L, ... of those rows: it decodes each unit to f32 once and adds its
// products with the x runs of all the pass's tokens (staged in shared memory in quant.glsl's bank-conflict-
// free order). The per-lane partial sums (tokens x rows) are then summed over the group's L lanes with a
// transposing butterfly (each exchange halves the values a lane holds), so a reduction costs about one
// shuffle per output instead of log2(L). Each output is one fixed-order sum: it depends on the token and the
// expert's weights, not on the tile, the token's slot in it, or where the expert sits (streaming ==
// resident bit for bit).
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
#ifdef QN_SUBGROUP
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_NT = 8;
layout(constant_id = 2) const uint QN_ROWS = 32;
layout(constant_id = 3) const uint QN_SGROWS = 2;
layout(constant_id = 4) const uint QN_PART_OFF = 0;
layout(constant_id = 5) const uint QN_XSH = 512;
layout(constant_id = 6) const uint QN_XSN = 0;
const uint XSN = QN_XSN == 0u || QN_XSN > QN_NT ? QN_NT : QN_XSN;
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
#elif defined(QN_MOE_DOWN)
layout(binding = 5, std430) readonly buffer DS { float ds[]; };
layout(binding = 5, std430) readonly buffer DS4 { vec4 ds4[]; };
#define QN_POOL_BIND 6
const uint QN_NW = 1u;
#else
#error "moe_qsmall.comp: define QN_MOE_GATE_UP or QN_MOE_DOWN"
#endif
#define QN_W_F32 // moe_w.glsl's element helpers are unused here; only its pools and slot table
#include "moe_w.glsl"
#include "quant.glsl"
#include "qunit.glsl" // qn_unit_q, qn_deq4, qn_fma4

const uint NWR = QN_NW * QN_SGROWS;   // weight rows per lane group
const uint NV = QN_NT * NWR;          // partial sums per lane: value (t, j) at t · NWR + j
shared vec4 s_x[XSN * QN_XSH + 1u];   // token slot t's input at vec4 t · QN_XSH + qn_qxs_slot(s)
shared uint s_row[QN_NT];             // element offset of each slot's input row
shared int s_q[QN_NT];                // its pair, -1 = none

// ---- the pass's inputs
bool xsh; // inputs staged in s_x (uniform)

// vec4 s of slot t's input (s counted from the row start; p = qn_qxs_slot of the run's first vec4)
vec4 xin4(uint t, uint p, uint s)
{
    if (xsh) return s_x[t * QN_XSH + p];
#if defined(QN_MOE_GATE_UP)
    return x4[s_row[t] / 4u + s];
#else
    uint o = s_row[t] + 4u * s;
    return vec4(x1[o], x1[o + 1u], x1[o + 2u], x1[o + 3u]);
#endif
}

// Slots t < n get pair list[first + t] and its input row (len floats) staged (zeros past len up to 8-vec4
// groups). Every invocation calls it (barriers).
void stage(uint first, uint n, uint len, uint lid)
{
    barrier(); // the previous pass is done with s_x / s_q
    for (uint t = lid; t < QN_NT; t += QN_WG) {
        int q = t < n ? list[first + t] : -1;
        s_q[t] = q;
#if defined(QN_MOE_GATE_UP)
        s_row[t] = q < 0 ? 0u : (uint(q) / (pc.K + 1u)) * pc.H;
#else
        s_row[t] = q < 0 ? 0u : uint(q) * pc.act_stride;
#endif
    }
    uint n4 = ((len + 3u) / 4u + 7u) / 8u * 8u;
    xsh = QN_XSH > 0u && n4 <= QN_XSH && n <= XSN;
    barrier();
    if (!xsh) return;
    for (uint i = lid; i < n * n4; i += QN_WG) {
        uint t = i / n4, s = i % n4, o = s_row[t] + 4u * s;
        vec4 v = vec4(0.0);
        if (4u * s + 3u < len && (o & 3u) == 0u) v = x4[o / 4u]; // rows start at multiples of 4 floats (H, act_stride)
        else for (uint c = 0u; c < 4u; c++) v[c] = 4u * s + c < len ? x1[o + c] : 0.0;
        s_x[t * QN_XSH + qn_qxs_slot(s)] = v;
    }
    barrier();
}

// ---- the team: a subgroup, or the whole workgroup
struct qn_team { uint id, lane, lanes, n; };
qn_team get_team()
{
#ifdef QN_SUBGROUP
    uint nfull = QN_WG / gl_SubgroupSize;
    if (nfull > 0u) return qn_team(gl_SubgroupID, gl_SubgroupInvocationID, gl_SubgroupSize, nfull);
#endif
    return qn_team(0u, gl_LocalInvocationIndex, QN_WG, 1u);
}
bool sg_team()
{
#ifdef QN_SUBGROUP
    return QN_WG / gl_SubgroupSize > 0u;
#else
    return false;
#endif
}
uint pow2_floor(uint v) { return v == 0u ? 1u : 1u << findMSB(v); }

float acc[NV];

// Sum acc over the L lanes of each group (L a power of two, groups = aligned runs of L lanes of a subgroup).
// Transposing butterfly: at offset o a lane keeps one half of its values (the upper if lane & o) and adds
// the partner's copy of that half. Afterwards the lane holds values [base, base + m), m = max(NV / L, 1),
// in acc[0 .. m): base = sum over the halving steps of (lane & o ? half : 0). Returns base.
uint group_sum_sg(uint lane, uint L)
{
    uint base = 0u;
#ifdef QN_SUBGROUP
    uint o = L / 2u;
    // (no break / continue in unrolled loops: fixed trip counts and guards, so every index stays a constant)
    [[unroll]] for (uint s = 0u; s < 8u; s++) { // NV <= 256
        const uint half_ = NV >> (s + 1u);
        if (half_ > 0u && o > 0u) { // o: uniform
            bool hi = (lane & o) != 0u;
            [[unroll]] for (uint i = 0u; i < half_; i++) {
                float keep = hi ? acc[i + half_] : acc[i], give = hi ? acc[i] : acc[i + half_];
                acc[i] = keep + subgroupShuffleXor(give, o);
            }
            base += hi ? half_ : 0u;
            o /= 2u;
        }
    }
    for (; o > 0u; o /= 2u) acc[0] += subgroupShuffleXor(acc[0], o); // L > NV: plain butterfly
#endif
    return base;
}


#if defined(QN_MOE_GATE_UP)
#define QN_NROWS pc.I
#define QN_ROWLEN pc.H
#else
#define QN_NROWS pc.H
#define QN_ROWLEN pc.I
#endif

// loads of unit v of the group's weight rows (row j at byte wb[j], gate_up: up at + QN_PART_OFF)
#define QN_SM_LOADS(P4, P1)                                                                     \
    [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {                                          \
        raw[QN_NW * j] = QN_Q_LOAD(P4, P1, wb[j] + bo, k);                                      \
        if (QN_NW == 2u) raw[QN_NW * j + QN_NW - 1u] = QN_Q_LOAD(P4, P1, wb[j] + QN_PART_OFF + bo, k); \
    }

// acc[t, j] += sum over this lane's units of the group's weight rows (bytes wb[j]) times slot t's input
void rows_q(uint p, uint wb[QN_SGROWS], uint ul, uint L, uint n)
{
    uint nu = QN_ROWLEN / 32u;
    for (uint v = ul; v < nu; v += L) {
        uint b = v / QN_QUPB, k = v % QN_QUPB, bo = b * QN_QBB, e0, e1;
        qn_q_xrun(k, e0, e1);
        qn_qu raw[NWR];
        QN_POOL_SWITCH(p, QN_SM_LOADS)
        uvec4 qa[NWR], qb[NWR];
        vec4 ab[NWR];
        [[unroll]] for (uint j = 0u; j < NWR; j++) qn_unit_q(raw[j], k, qa[j], qb[j], ab[j]);
        uint sa = (b * QN_QK + e0) / 4u, sb = (b * QN_QK + e1) / 4u, pa = qn_qxs_slot(sa), pb = qn_qxs_slot(sb);
        [[unroll]] for (uint c = 0u; c < 8u; c++) { // vec4 c of the unit: run a (c < 4), then run b
            vec4 w[NWR];
            [[unroll]] for (uint j = 0u; j < NWR; j++)
                w[j] = c < 4u ? qn_deq4(qa[j][c & 3u], ab[j].x, ab[j].y) : qn_deq4(qb[j][c & 3u], ab[j].z, ab[j].w);
            [[unroll]] for (uint t = 0u; t < QN_NT; t++) {
                if (t < n) { // uniform
                    vec4 xv = c < 4u ? xin4(t, pa ^ (c & 3u), sa + (c & 3u)) : xin4(t, pb ^ (c & 3u), sb + (c & 3u));
                    [[unroll]] for (uint j = 0u; j < NWR; j++) acc[t * NWR + j] = qn_fma4(w[j], xv, acc[t * NWR + j]);
                }
            }
        }
    }
}

#if defined(QN_MOE_DOWN)
// the shared expert's f32 rows (row j: hr[j]) of length Is: lanes on vec4 positions of the row
void rows_dense(uint hr[QN_SGROWS], uint ul, uint L, uint n)
{
    uint n4 = (pc.Is + 3u) / 4u;
    for (uint s = ul; s < n4; s += L) {
        vec4 w[QN_SGROWS];
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {
            if (pc.Is % 4u == 0u) w[j] = ds4[hr[j] * (pc.Is / 4u) + s]; // uniform
            else
                [[unroll]] for (uint c = 0u; c < 4u; c++) w[j][c] = 4u * s + c < pc.Is ? ds[hr[j] * pc.Is + 4u * s + c] : 0.0;
        }
        uint ps = qn_qxs_slot(s);
        [[unroll]] for (uint t = 0u; t < QN_NT; t++) {
            if (t < n) {
                vec4 xv;
                if (xsh) xv = s_x[t * QN_XSH + ps];
                else
                    [[unroll]] for (uint c = 0u; c < 4u; c++) xv[c] = 4u * s + c < pc.Is ? x1[s_row[t] + 4u * s + c] : 0.0;
                [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) acc[t * NWR + j] = qn_fma4(w[j], xv, acc[t * NWR + j]);
            }
        }
    }
}
#endif

// One pass: up to QN_NT pairs list[first .. first + n) of expert e (uniform) for output rows [r0, r0 + QN_ROWS).
void pass(int e, uint first, uint n, uint r0, uint lid)
{
    bool dense = uint(e) == pc.E; // the shared expert (down only)
    stage(first, n, dense ? pc.Is : QN_ROWLEN, lid);
    int s = dense ? 0 : qn_moe_slot(e);
    if (s < 0) { // uniform: absent expert -> NaN
        for (uint i = lid; i < n * QN_ROWS; i += QN_WG) {
            uint t = i / QN_ROWS, row = r0 + i % QN_ROWS;
#if defined(QN_MOE_GATE_UP)
            if (row < QN_NROWS) outv[uint(s_q[t]) * pc.act_stride + row] = uintBitsToFloat(0x7fc00000u);
#else
            if (row < QN_NROWS) outv[uint(s_q[t]) * pc.H + row] = uintBitsToFloat(0x7fc00000u);
#endif
        }
        return;
    }
    uint p = qn_slot_pool(s), sb = qn_slot_byte(s), rowb = QN_ROWLEN / QN_QK * QN_QBB;
    qn_team tm = get_team();
    uint nu = dense ? (pc.Is + 3u) / 4u : QN_ROWLEN / 32u;
    // without subgroups each lane is its own group (L = 1: whole rows per lane, no reduction; a fallback: lavapipe
    // lost results of shared-memory reductions after many barrier rounds per invocation)
    bool sg = sg_team();
    uint L = sg ? pow2_floor(min(tm.lanes, nu)) : 1u, G = tm.lanes / L, grp = tm.lane / L, ul = tm.lane % L;
    uint rows_set = G * QN_SGROWS, sets = (QN_ROWS + rows_set - 1u) / rows_set;
    // teams past the last set redo it without storing (no team leaves early: lavapipe's subgroup operations
    // went wrong when some subgroups of the workgroup had exited)
    for (uint st0 = tm.id; st0 < max(sets, tm.n); st0 += tm.n) {
        uint st = min(st0, sets - 1u);
        uint hb = r0 + st * rows_set + grp; // this group's rows: hb + j G
        [[unroll]] for (uint i = 0u; i < NV; i++) acc[i] = 0.0;
        uint hr[QN_SGROWS], wb[QN_SGROWS];
        [[unroll]] for (uint j = 0u; j < QN_SGROWS; j++) {
            hr[j] = min(hb + j * G, QN_NROWS - 1u);
            wb[j] = sb + QN_PART_OFF * (2u - QN_NW) + hr[j] * rowb; // down: + QN_DN_OFF
        }
        if (grp < G) {
#if defined(QN_MOE_DOWN)
            if (dense) rows_dense(hr, ul, L, n);
            else
#endif
                rows_q(p, wb, ul, L, n);
        }
        uint m = max(NV / L, 1u), base = group_sum_sg(tm.lane, L); // (L = 1: nothing to sum)
        bool writer = st0 < sets && grp < G && (ul & (max(L / NV, 1u) - 1u)) == 0u;
        // GU: gate and up of a row are values 2i, 2i + 1: in this lane when it holds >= 2 values, else in the
        // lane across the last halving step (offset L / NV)
#if defined(QN_MOE_GATE_UP)
        float other = 0.0;
#ifdef QN_SUBGROUP
        if (sg && m == 1u) other = subgroupShuffleXor(acc[0], L / NV);
#endif
#endif
        [[unroll]] for (uint i = 0u; i < NV; i++) {
            uint idx = base + i, t = idx / NWR, j = idx % NWR;
#if defined(QN_MOE_GATE_UP)
            uint rr = st * rows_set + (j / 2u) * G + grp; // gate and up of row rr: values 2i, 2i + 1
            if (i < m && writer && t < n && j % 2u == 0u && rr < QN_ROWS && r0 + rr < QN_NROWS) {
                float gs = acc[i], us = m == 1u ? other : acc[min(i + 1u, NV - 1u)]; // (i + 1 < m here)
                outv[uint(s_q[t]) * pc.act_stride + r0 + rr] = qn_silu(gs) * us;
            }
#else
            uint rr = st * rows_set + j * G + grp;
            if (i < m && writer && t < n && rr < QN_ROWS && r0 + rr < QN_NROWS) outv[uint(s_q[t]) * pc.H + r0 + rr] = acc[i];
#endif
        }
    }
}

void main()
{
    uint nb = (QN_NROWS + QN_ROWS - 1u) / QN_ROWS;
    uint G = pc.tile_groups == 0u ? pc.max_tiles : pc.tile_groups;
    uint g = qn_group_id(), r0 = (g % nb) * QN_ROWS, lid = gl_LocalInvocationIndex;
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
