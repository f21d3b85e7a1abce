// ext.glsl — the GLSL extensions every qnext shader may use; include it right after #version and
// "#extension GL_GOOGLE_include_directive : require" (which must be in the shader itself).
// QN_SUBGROUP (a -D define from the shader table) turns on the subgroup reduction variants.
#ifdef QN_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
