// mv_norm.glsl — the RMSNorm prologue of the matvec kernels (matvec.comp with QN_NORM): the projection that
// first reads a normed vector computes the norm of its input itself, so the decode graph needs no separate
// rmsnorm dispatch (and no barrier) in front of it.
//
// Every workgroup computes, for its token t (z), the sum of squares of x[t, 0 .. cols) (each invocation a
// strided share of vec4 (or scalar) elements, then qn_wg_sum: a fixed order, so every workgroup gets the same
// r = rsqrt(ss / cols + eps) bit for bit), then uses
//     xn[c] = x[t, c] * r * (w[c] + w_add)        (the formula of rmsnorm.comp)
// in place of x: staged once into shared memory (qn_xs) when QN_XSH > 0 and cols <= 4 * QN_XSH and cols is
// a multiple of 4, else computed on the fly from the buffers at each load (qn_norm4 / qn_norm1).
// With flags & QN_MATVEC_WRITE_XN, workgroup 0 of each token also writes xn[t, :] to binding 4 for the
// kernels after the projection (the MoE experts read the normed vector after the router).
//
// Bindings: 3 w  f32 [cols] the norm weight
//           4 xn f32 [T, cols] (written only with QN_MATVEC_WRITE_XN; must be bound always)
// The includer declares the push block `pc` as qn_pc_mv_norm, includes reduce.glsl, grid.glsl and
// mv_sched.glsl first (x4 / x1, qn_xs, qn_xsh), and calls qn_mv_norm_stage(xb) from main (mv_sched.glsl does).
#ifndef QN_MV_NORM_GLSL
#define QN_MV_NORM_GLSL

layout(binding = 3, std430) readonly buffer NW4 { vec4 nw4[]; };
layout(binding = 3, std430) readonly buffer NW1 { float nw1[]; };
layout(binding = 4, std430) writeonly buffer XN4 { vec4 xn4[]; };
layout(binding = 4, std430) writeonly buffer XN1 { float xn1[]; };

float qn_nr; // rsqrt(mean(x^2) + eps) of this workgroup's token

// normed x: vec4 i of the token (x starts at vec4 xb4), element c of the token (x starts at element xb)
vec4 qn_norm4(uint xb4, uint i) { return x4[xb4 + i] * qn_nr * (nw4[i] + pc.w_add); }
float qn_norm1(uint xb, uint c) { return x1[xb + c] * qn_nr * (nw1[c] + pc.w_add); }

void qn_mv_norm_stage(uint xb)
{
    uint lid = gl_LocalInvocationIndex, n4 = pc.cols / 4u;
    bool v4 = (pc.cols & 3u) == 0u; // then xb = t * cols is a multiple of 4 too
    float ss = 0.0;
    if (v4) {
        for (uint i = lid; i < n4; i += QN_WG) {
            vec4 a = x4[xb / 4u + i];
            ss += dot(a, a);
        }
    } else {
        for (uint i = lid; i < pc.cols; i += QN_WG) {
            float a = x1[xb + i];
            ss += a * a;
        }
    }
    qn_nr = inversesqrt(qn_wg_sum(ss) / float(pc.cols) + pc.eps);
    qn_xsh = QN_XSH > 0u && pc.cols <= QN_XSH * 4u && v4;
    bool wr = (pc.flags & QN_MATVEC_WRITE_XN) != 0u && qn_group_id() == 0u;
    if (qn_xsh) { // uniform
        for (uint i = lid; i < n4; i += QN_WG) {
            vec4 v = qn_norm4(xb / 4u, i);
            qn_xs[i] = v;
            if (wr) xn4[xb / 4u + i] = v;
        }
        barrier();
    } else if (wr) {
        if (v4) for (uint i = lid; i < n4; i += QN_WG) xn4[xb / 4u + i] = qn_norm4(xb / 4u, i);
        else for (uint i = lid; i < pc.cols; i += QN_WG) xn1[xb + i] = qn_norm1(xb, i);
    }
}

#endif
