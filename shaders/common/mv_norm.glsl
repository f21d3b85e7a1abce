// mv_norm.glsl — the RMSNorm prologue of the matvec kernels (matvec.comp with QN_NORM): the projection that
// first reads a normed vector computes the norm of its input itself, so the decode graph needs no separate
// rmsnorm dispatch (and no barrier) in front of it.
//
//     y[t, r] = qn_nr · sum_c W[r, c] · (x[t, c] · (w[c] + w_add)),   qn_nr = rsqrt(sum_c x[t, c]^2 / cols + eps)
//
// which is W · rmsnorm(x) with the scalar qn_nr applied once per dot product (at the store, mv_sched.glsl)
// instead of to every element, so nothing waits for the norm before the weights stream in: the x reads
// (staged into shared memory or through L1) only multiply by the norm weight (qn_norm4 / qn_norm1). Every
// workgroup computes the sum of squares of its token (z) itself: each invocation a strided share of vec4
// (or scalar) elements, then per subgroup subgroupAdd into qn_red (reduce.glsl's array), read after the
// staging barrier and added in subgroup order (without subgroups: qn_wg_sum). The order is fixed, so every
// workgroup gets the same qn_nr bit for bit.
// With flags & QN_MATVEC_WRITE_XN, workgroup 0 of each token also writes xn[t, :] = x · qn_nr · (w + w_add)
// (rmsnorm.comp's formula) to binding 4 for the kernels after the projection (the MoE experts read xn).
//
// Bindings: 3 w  f32 [cols] the norm weight
//           4 xn f32 [T, cols] (written only with QN_MATVEC_WRITE_XN; must be bound always)
// The includer declares the push block `pc` with qn_pc_mv_norm's members, includes reduce.glsl, grid.glsl
// and mv_sched.glsl first (x4 / x1, qn_xs, qn_xsh, qn_nr and the prototypes), whose main() calls
// qn_mv_norm_ss(xb) before the x staging and qn_mv_norm_finish(xb) after it.
#ifndef QN_MV_NORM_GLSL
#define QN_MV_NORM_GLSL

layout(binding = 3, std430) readonly buffer NW4 { vec4 nw4[]; };
layout(binding = 3, std430) readonly buffer NW1 { float nw1[]; };
layout(binding = 4, std430) writeonly buffer XN4 { vec4 xn4[]; };
layout(binding = 4, std430) writeonly buffer XN1 { float xn1[]; };

// x times the norm weight: vec4 i of the token (x starts at vec4 xb4), element c (x starts at element xb)
vec4 qn_norm4(uint xb4, uint i)
{
    vec4 a = x4[xb4 + i];
    if (qn_mv_ss_on) qn_mv_ss += dot(a, a); // a fused staging (mv_sched.glsl QN_MV_SSFUSE): the sum of squares too
    return a * (nw4[i] + pc.w_add);
}
float qn_norm1(uint xb, uint c) { return x1[xb + c] * (nw1[c] + pc.w_add); }

void qn_mv_norm_ss(uint xb)
{
    uint lid = gl_LocalInvocationIndex;
    float ss = 0.0;
    if ((pc.cols & 3u) == 0u) { // then xb = t * cols is a multiple of 4 too
        for (uint i = lid; i < pc.cols / 4u; i += QN_WG) {
            vec4 a = x4[xb / 4u + i];
            ss += dot(a, a);
        }
    } else {
        for (uint i = lid; i < pc.cols; i += QN_WG) {
            float a = x1[xb + i];
            ss += a * a;
        }
    }
#ifdef QN_SUBGROUP
    float v = subgroupAdd(ss);
    if (subgroupElect()) qn_red[gl_SubgroupID] = v; // read after the staging barrier (qn_mv_norm_finish)
#else
    qn_nr = qn_wg_sum(ss); // the total (barriers inside); qn_mv_norm_finish makes it the scale
#endif
}

void qn_mv_norm_finish(uint xb)
{
#ifdef QN_SUBGROUP
    if (!qn_xsh) barrier(); // uniform; a staged workgroup has passed the staging barrier already
    // not gl_NumSubgroups: see reduce.glsl (lavapipe drops a trailing partial subgroup from it)
    uint nsub = (QN_WG + gl_SubgroupSize - 1u) / gl_SubgroupSize;
    float t = 0.0;
    for (uint i = 0u; i < nsub; i++) t += qn_red[i];
#else
    float t = qn_nr;
#endif
    qn_nr = inversesqrt(t / float(pc.cols) + pc.eps);
    if ((pc.flags & QN_MATVEC_WRITE_XN) == 0u || qn_group_id() != 0u) return;
    uint lid = gl_LocalInvocationIndex;
    if ((pc.cols & 3u) == 0u) {
        for (uint i = lid; i < pc.cols / 4u; i += QN_WG) xn4[xb / 4u + i] = x4[xb / 4u + i] * qn_nr * (nw4[i] + pc.w_add);
    } else {
        for (uint i = lid; i < pc.cols; i += QN_WG) xn1[xb + i] = x1[xb + i] * qn_nr * (nw1[i] + pc.w_add);
    }
}

#endif
