#version 450
// gdn_recurrent.comp — the gated delta rule token by token (decode, short prefill), state in registers.
//
// For each token t in order, value head h (key head h / (Hv/Hk)), on the raw conv outputs q, k, v:
//   q^ = q / sqrt(|q|^2 + 1e-6) * dk^-1/2,  k^ = k / sqrt(|k|^2 + 1e-6)
//   g = -exp(A_log[h]) * softplus(a + dt_bias[h]),  beta = sigmoid(b)
//   S = e^g S;  m = S^T k^;  d = beta (v - m);  S += k^ d^T;  o = S^T q^   (with the updated S)
// The two reads are fused into one pass over S: with P = S_old^T k, Q = S_old^T q (raw q, k),
//   m = e^g rk P,  o = e^g rq Q + d (k^ . q^),  rk / rq the L2 (and scale) factors,
// so each token needs one reduction over the dk rows (and one barrier).
//
// Bindings: 0 qkv     f32, rows of qkv_stride (q, k, v at q_off / k_off / v_off; see pc_gdn.h)
//           1 proj    f32, rows of proj_stride (b at b_off, a at a_off)
//           2 A_log   f32 [Hv]
//           3 dt_bias f32 [Hv]
//           4 S       f32 [Hv][dk][dv]  read at the start, written at the end
//           5 o       f32 [T][Hv][dv]
// Push:     qn_pc_gdn (pc_gdn.h)
// Spec:     0 QN_WG     workgroup size (default 128)
//           1 QN_BV     value columns per workgroup (default 16; QN_WG % QN_BV == 0)
//           2 QN_DK_MAX largest dk supported (default 128; a larger pc.dk writes NaN to o, leaves S alone):
//                       each invocation keeps ceil(QN_DK_MAX / (QN_WG / QN_BV)) state values in registers
// Dispatch: Hv * ceil(dv / QN_BV) groups spread over x/y (qn_vk_grid); group = h * ceil(dv/QN_BV) + block.
// Layout: invocation (rg, j) = (lid / QN_BV, lid % QN_BV) owns column j of the block and rows
// i = rg + NRG*n (NRG = QN_WG / QN_BV row groups), so each warp reads whole row segments of S (coalesced).
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_BV = 16;
layout(constant_id = 2) const uint QN_DK_MAX = 128;
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_gdn pc; };
layout(binding = 0, std430) readonly buffer Qkv { float qkv[]; };
layout(binding = 1, std430) readonly buffer Proj { float proj[]; };
layout(binding = 2, std430) readonly buffer Alog { float a_log[]; };
layout(binding = 3, std430) readonly buffer Dtb { float dt_bias[]; };
layout(binding = 4, std430) buffer State { float S[]; };
layout(binding = 5, std430) writeonly buffer Out { float o[]; };

#include "gdn.glsl"

const uint NRG = QN_WG / QN_BV;                   // row groups
const uint NR = (QN_DK_MAX + NRG - 1u) / NRG;     // rows per invocation

shared vec2 red[2][NRG][QN_BV]; // (S^T k, S^T q) partial sums per row group, double-buffered by token
shared vec3 rnorm[2][NRG];      // (|k|^2, |q|^2, k.q) partial sums per row group

void main()
{
    uint lid = gl_LocalInvocationIndex;
    uint nblk = (pc.dv + QN_BV - 1u) / QN_BV;
    uint grp = qn_group_id();
    if (grp >= pc.Hv * nblk) return; // uniform over the workgroup
    uint h = grp / nblk, j = lid % QN_BV, rg = lid / QN_BV;
    uint col = (grp % nblk) * QN_BV + j;
    bool cv = col < pc.dv && rg < NRG;
    uint hk = h / (pc.Hv / pc.Hk);
    float scale = inversesqrt(float(pc.dk));
    if (pc.dk > NRG * NR) { // QN_DK_MAX of this pipeline is too small: make the misuse visible (NaN output)
        for (uint t = 0u; t < pc.T; t++)
            if (cv && rg == 0u) o[(t * pc.Hv + h) * pc.dv + col] = uintBitsToFloat(0x7fc00000u);
        return;
    }

    float st[NR];
    uint sbase = h * pc.dk * pc.dv + col;
    for (uint n = 0u; n < NR; n++) {
        uint i = rg + NRG * n;
        st[n] = cv && i < pc.dk ? S[sbase + i * pc.dv] : 0.0;
    }

    for (uint t = 0u; t < pc.T; t++) {
        uint par = t & 1u, row = t * pc.qkv_stride;
        uint qb = row + pc.q_off + hk * pc.dk, kb = row + pc.k_off + hk * pc.dk;
        float pk = 0.0, pq = 0.0, sk = 0.0, sq = 0.0, kq = 0.0, kr[NR];
        for (uint n = 0u; n < NR; n++) {
            uint i = rg + NRG * n;
            float kv = 0.0, qv = 0.0;
            if (i < pc.dk && rg < NRG) { kv = qkv[kb + i]; qv = qkv[qb + i]; }
            kr[n] = kv;
            pk += st[n] * kv;
            pq += st[n] * qv;
            sk += kv * kv;
            sq += qv * qv;
            kq += kv * qv;
        }
        vec2 gb = qn_gdn_gate(t, h); // issued before the barrier so the loads overlap it
        float v = cv ? qkv[row + pc.v_off + h * pc.dv + col] : 0.0;
        if (rg < NRG) {
            red[par][rg][j] = vec2(pk, pq);
            if (j == 0u) rnorm[par][rg] = vec3(sk, sq, kq);
        }
        barrier();
        vec2 P = vec2(0.0);
        vec3 N = vec3(0.0);
        for (uint r = 0u; r < NRG; r++) {
            P += red[par][r][j];
            N += rnorm[par][r];
        }
        float decay = exp(gb.x);
        float rk = inversesqrt(N.x + 1e-6), rq = inversesqrt(N.y + 1e-6) * scale;
        float d = gb.y * (v - decay * rk * P.x);
        float ov = decay * rq * P.y + d * (rk * rq * N.z);
        float dk_ = d * rk;
        for (uint n = 0u; n < NR; n++) st[n] = decay * st[n] + kr[n] * dk_;
        if (cv && rg == 0u) o[(t * pc.Hv + h) * pc.dv + col] = ov;
    }

    for (uint n = 0u; n < NR; n++) {
        uint i = rg + NRG * n;
        if (cv && i < pc.dk) S[sbase + i * pc.dv] = st[n];
    }
}
