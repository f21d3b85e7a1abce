// gdn.glsl — scalar helpers of the Gated DeltaNet kernels (gdn_recurrent.comp, gdn_chunked.comp).
// Needs pc.h (qn_pc_gdn) and types.glsl (qn_sigmoid) included first, and buffers named Proj (proj[]),
// Alog (a_log[]) and Dtb (dt_bias[]) declared by the shader.
#ifndef QN_GDN_GLSL
#define QN_GDN_GLSL

// log(1 + e^x), x itself for x > 20 (as PyTorch); the stable form keeps precision for negative x.
float qn_softplus(float x)
{
    return x > 20.0 ? x : max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

// Log decay g = -exp(A_log[h]) * softplus(a + dt_bias[h]) and beta = sigmoid(b) of token t, value head h.
vec2 qn_gdn_gate(uint t, uint h)
{
    uint row = t * pc.proj_stride;
    float a = proj[row + pc.a_off + h], b = proj[row + pc.b_off + h];
    float g = -exp(a_log[h]) * qn_softplus(a + dt_bias[h]);
    return vec2(g, qn_sigmoid(b));
}

#endif
