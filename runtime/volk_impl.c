/* volk_impl.c — the one translation unit that compiles Debian's volk.c (Vulkan loaded at run time). */
#define VOLK_IMPLEMENTATION
#include <volk.h>
