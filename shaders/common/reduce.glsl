// reduce.glsl — workgroup-wide float sum, subgroup or shared-memory variant.
//
// Include after declaring the workgroup size as specialization constant 0:
//     layout(local_size_x_id = 0) in;   layout(constant_id = 0) const uint QN_WG = 256;
// Define QN_SUBGROUP (and include ext.glsl first, which enables the subgroup extensions) to use
// subgroupAdd (needs subgroup arithmetic in compute on the device); without it a shared-memory tree is used (any workgroup size, power of two or not).
// qn_wg_sum() must be reached by every invocation of the workgroup (it contains barriers) and
// returns the total to all of them.
#ifndef QN_REDUCE_GLSL
#define QN_REDUCE_GLSL

#ifdef QN_SUBGROUP
shared float qn_red[QN_WG]; // one slot per subgroup is enough; QN_WG bounds the subgroup count

float qn_wg_sum(float v)
{
    v = subgroupAdd(v);
    // Not gl_NumSubgroups: lavapipe (Mesa 22.3) rounds it down when QN_WG is not a multiple of the
    // subgroup size, dropping the last partial subgroup (caught by test_rmsnorm with QN_WG = 100).
    uint nsub = (QN_WG + gl_SubgroupSize - 1u) / gl_SubgroupSize;
    if (nsub == 1u) return v;
    if (subgroupElect()) qn_red[gl_SubgroupID] = v;
    barrier();
    float t = 0.0;
    for (uint i = 0u; i < nsub; i++) t += qn_red[i];
    barrier(); // qn_red may be reused by the next call
    return t;
}
#else
shared float qn_red[QN_WG];

float qn_wg_sum(float v)
{
    uint lid = gl_LocalInvocationIndex;
    qn_red[lid] = v;
    barrier();
    uint half_ = 1u;
    while (half_ * 2u < QN_WG) half_ *= 2u; // largest power of two < QN_WG
    for (uint s = half_; s > 0u; s >>= 1u) {
        if (lid < s && lid + s < QN_WG) qn_red[lid] += qn_red[lid + s];
        barrier();
    }
    float t = qn_red[0];
    barrier();
    return t;
}
#endif

#endif
