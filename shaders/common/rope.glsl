// rope.glsl — cos and sin of a RoPE angle for the attention kernels (attn_prep.comp, attn_decode.comp's prep
// variant): an f32 angle with an exact range reduction (float-float Cody-Waite, valid for |angle| < 3.2e6) and Taylor
// polynomials (|error| < 1e-7), independent of the driver's sin/cos.
#ifndef QN_ROPE_GLSL
#define QN_ROPE_GLSL

// Knuth's two-sum: s + e == a + b exactly (no fused or reassociated operations: `precise`).
void two_sum(float a, float b, out float s, out float e)
{
    precise float ss = a + b;
    precise float bb = ss - a;
    precise float ee = (a - (ss - bb)) + (b - bb);
    s = ss;
    e = ee;
}

// cos and sin of an f32 angle a >= 0. k = nearest integer to a / (pi/2), split as kh*2048 + kl (at most
// 10 + 11 bits); pi/2 = P0 + P1 + P2 + P3 with at most 13 significant bits each, so every product
// kh*Pi, kl*Pi is exact in f32 and the sum a - k*pi/2 is carried exactly in float-float.
vec2 qn_cos_sin(float a)
{
    const float P0 = 1.57080078125, P1 = -4.454515874385834e-06;
    const float P2 = 6.076561476220377e-11, P3 = 5.390653201597928e-15;
    uint k = uint(floor(a * 0.63661977236758134 + 0.5));
    precise float kh = float(k >> 11) * 2048.0, kl = float(k & 2047u);
    float s = a, e = 0.0, err;
    precise float p;
    p = kh * P0; two_sum(s, -p, s, err); e += err;
    p = kl * P0; two_sum(s, -p, s, err); e += err;
    p = kh * P1; two_sum(s, -p, s, err); e += err;
    p = kl * P1; two_sum(s, -p, s, err); e += err;
    p = kh * P2; two_sum(s, -p, s, err); e += err;
    p = kl * P2; two_sum(s, -p, s, err); e += err;
    p = kh * P3 + kl * P3;
    float r = s + (e - p); // |r| <= pi/4 (+ a rounding of k)
    float r2 = r * r;
    // Taylor series to x^9 / x^10: truncation < 2e-9 on |r| <= 0.8
    float sn = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0)))));
    float cs = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0)))));
    uint qd = k & 3u;
    if (qd == 0u) return vec2(cs, sn);
    if (qd == 1u) return vec2(-sn, cs);
    if (qd == 2u) return vec2(-cs, -sn);
    return vec2(sn, -cs);
}

#endif
