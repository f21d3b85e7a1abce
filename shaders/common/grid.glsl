// grid.glsl — linear workgroup index for grids split over x and y (maxComputeWorkGroupCount[0] can be
// 65535): the host uses qn_vk_grid() to spread N groups as gx * gy >= N; groups past N must return.
#ifndef QN_GRID_GLSL
#define QN_GRID_GLSL
uint qn_group_id() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
#endif
