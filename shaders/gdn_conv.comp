#version 450
// gdn_conv.comp — causal depthwise conv1d + SiLU of the Gated DeltaNet, continuing from and updating the
// conv state (the previous K-1 raw inputs of each channel, oldest first). For channel c, token t:
//   u = sum_{j<K} w[c][j] * x[t-(K-1)+j],  x at t' < 0 taken from state[c][K-1+t'];  out = silu(u)
// and afterwards state[c] = the last K-1 raw inputs of [state | x] (works for any T >= 1, also T < K-1).
//
// Bindings: 0 in    f32 [T][in_stride]   raw inputs, channels 0..channels-1 of each row (e.g. proj)
//           1 w     f32 [channels][K]    conv1d.weight[c][0][j]; tap K-1 multiplies the current token
//           2 state f32 [channels][K-1]  read and written
//           3 out   f32 [T][out_stride]  silu(conv), channels 0..channels-1 (must not alias `in`)
// Push:     qn_pc_gdn_conv { T, channels, in_stride, out_stride }
// Spec:     0 QN_WG workgroup size (default 128)
//           1 QN_TS token slices per workgroup (default 1; QN_WG % QN_TS == 0): the workgroup covers
//             QN_WG / QN_TS channels, slice s convolves tokens [s*L, (s+1)*L), L = ceil(T / QN_TS).
//             Use 1 for decode (T = 1), 4..8 for prefill.
//           2 QN_K  kernel size (default 4, 2..8)
// Dispatch: ceil(channels / (QN_WG / QN_TS)) groups spread over x/y (qn_vk_grid).
// Each invocation keeps a sliding window of K-1 inputs in registers, so every input is read once per slice
// (plus K-1 for the slice's left context); rows are read coalesced (consecutive channels).
#extension GL_GOOGLE_include_directive : require
#include "ext.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint QN_WG = 128;
layout(constant_id = 1) const uint QN_TS = 1;
layout(constant_id = 2) const uint QN_K = 4;
#include "pc.h"
#include "types.glsl"
#include "grid.glsl"

layout(push_constant) uniform PC { qn_pc_gdn_conv pc; };
layout(binding = 0, std430) readonly buffer In { float x[]; };
layout(binding = 1, std430) readonly buffer Wt { float w[]; };
layout(binding = 2, std430) buffer State { float state[]; };
layout(binding = 3, std430) writeonly buffer Out { float y[]; };

const uint CH = QN_WG / QN_TS; // channels per workgroup
const uint KM = QN_K - 1u;     // window length

// raw input of channel c at token t (t < 0: from the old state; `old` holds it for slice 0)
float raw(uint c, int t) { return t >= 0 ? x[uint(t) * pc.in_stride + c] : state[c * KM + uint(int(KM) + t)]; }

void main()
{
    uint lid = gl_LocalInvocationIndex;
    uint c = qn_group_id() * CH + lid % CH, s = lid / CH;
    bool live = c < pc.channels && s < QN_TS;
    uint len = (pc.T + QN_TS - 1u) / QN_TS;
    uint t0 = min(s * len, pc.T), t1 = min(t0 + len, pc.T);

    float win[KM], wk[QN_K];
    if (live) {
        for (uint j = 0u; j < QN_K; j++) wk[j] = w[c * QN_K + j];
        for (uint j = 0u; j < KM; j++) win[j] = raw(c, int(t0) - int(KM) + int(j));
    }
    barrier(); // every slice has read the old state before slice 0 overwrites it
    if (live && s == 0u) {
        // new state = the last K-1 of [old state | x]; win still holds the old state (t0 = 0)
        for (uint j = 0u; j < KM; j++) {
            int t = int(pc.T) - int(KM) + int(j);
            state[c * KM + j] = t >= 0 ? x[uint(t) * pc.in_stride + c] : win[uint(int(KM) + t)];
        }
    }
    if (!live) return;
    for (uint t = t0; t < t1; t++) {
        float xv = x[t * pc.in_stride + c];
        float u = wk[KM] * xv;
        for (uint j = 0u; j < KM; j++) u += wk[j] * win[j];
        for (uint j = 0u; j + 1u < KM; j++) win[j] = win[j + 1u];
        win[KM - 1u] = xv;
        y[t * pc.out_stride + c] = qn_silu(u);
    }
}
