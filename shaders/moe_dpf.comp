#version 450
// moe_dpf.comp — an L2 prefetch of one decode layer's down weights: the K routed experts' down slots (GGUF blocks of
// the variant's type: QN_Q8_0 | QN_Q4_0 | QN_Q4_K | QN_Q5_K | QN_Q6_K) and the shared expert's down_s (blocks with
// pc.flags & QN_MOE_SHARED_Q, else f32). forward.c records it right before the layer's gate_up with NO barrier
// between them (env QNEXT_MOEQ_DPF=1), so it runs beside gate_up, whose DRAM traffic leaves bandwidth spare, and the
// split down after the next barrier reads its weights from L2. It computes nothing the model uses: each lane loads
// one word per 32-byte sector (the DRAM / L2 sector) and the group writes their xor into its own float of the split
// down's scratch, which the down kernel overwrites with its partials before reading them.
// Bindings: 0 ids int32 [T, K], 1 table, 2 down_s, 3 scratch (f->dxs; float g of it per group), 4..11 down pools
// Push:     qn_pc_moe with the down pools' slot_bytes / slots_per_pool (as the down kernel gets them)
// Spec:     0 QN_WG (256), 1 QN_LOADS: loads per lane (8; a chunk = QN_WG QN_LOADS 32 bytes per group)
// Dispatch: (K + 1) ceil(max(routed down bytes, shared down bytes) / chunk) groups: group g = (k, chunk c) with
//           k = g / nchunk (k = K: down_s); T in z (token t's experts). Groups past a part's bytes (or of an absent
//           slot) load nothing. The scratch must hold T (K + 1) H floats, and (K + 1) nchunk <= (K + 1) H.
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 256;
layout(constant_id = 1) const uint QN_LOADS = 8;
#include "pc.h"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_moe pc; };
layout(binding = 0, std430) readonly buffer Ids { int ids[]; };
layout(binding = 2, std430) readonly buffer Ds { uint ds1[]; };
layout(binding = 3, std430) writeonly buffer Scr { float scr[]; };
#define QN_TABLE_BIND 1
#define QN_POOL_BIND 4
#define QN_W_F32 // only moe_w.glsl's pools and slot table
#include "moe_w.glsl"
#include "quant.glsl"

// the xor of one word per sector of bytes [b0 + c chunk, ..) below b1 from array P1, lanes lid + QN_WG j
#define QN_DPF_LOADS(P4, P1)                                                                      \
    {                                                                                             \
        uint w_[QN_LOADS];                                                                        \
        [[unroll]] for (uint j = 0u; j < QN_LOADS; j++)                                           \
            w_[j] = P1[min(o0 + 32u * (lid + QN_WG * j), o1 - 4u) >> 2u];                         \
        [[unroll]] for (uint j = 0u; j < QN_LOADS; j++) v ^= w_[j];                               \
    }

shared uint qn_acc;

void main()
{
    uint chunk = 32u * QN_WG * QN_LOADS, g = qn_group_id(), t = gl_WorkGroupID.z, lid = gl_LocalInvocationIndex;
    uint rb = pc.H * (pc.I / QN_QK) * QN_QBB, sbytes = (pc.flags & QN_MOE_SHARED_Q) != 0u ?
              pc.H * (pc.Is / QN_QK) * QN_QBB : pc.H * pc.Is * 4u;
    uint nchunk = (max(rb, sbytes) + chunk - 1u) / chunk, k = g / nchunk, c = g % nchunk, v = 0u;
    if (lid == 0u) qn_acc = 0u;
    barrier();
    if (k > pc.K) return; // grid padding (uniform)
    bool sh = k == pc.K;
    int s = sh ? 0 : qn_moe_slot(ids[t * pc.K + k]);
    uint base = sh ? 0u : qn_slot_byte(max(s, 0)), n = sh ? sbytes : rb;
    uint o0 = base + c * chunk, o1 = base + n; // o1 > o0 + 4 when this group has bytes (n is a multiple of 4)
    if (s >= 0 && c * chunk + 4u <= n) {
        if (sh) QN_DPF_LOADS(ds1, ds1)
        else QN_POOL_SWITCH(qn_slot_pool(s), QN_DPF_LOADS)
    }
    // one float per group, in token t's partials of the scratch (the down kernel writes all of them before it reads
    // any); every lane's words go into it (a shared atomic xor), so no load is dead code
    atomicXor(qn_acc, v);
    barrier();
    if (lid == 0u) scr[t * (pc.K + 1u) * pc.H + g % ((pc.K + 1u) * pc.H)] = uintBitsToFloat(qn_acc & 0x7fffffu);
}
