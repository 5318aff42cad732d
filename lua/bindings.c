/* Default (empty) registration functions for areas whose binding file is not built in: each
 * lua/bind_<area>.c provides the real one, which overrides these weak symbols at link time. */
#include "fsvc_lua.h"

#define WEAK_AREA(name) __attribute__((weak)) void name(lua_State *L) { (void)L; }
WEAK_AREA(fsvc_bind_elementwise)
WEAK_AREA(fsvc_bind_reduce)
WEAK_AREA(fsvc_bind_shape)
WEAK_AREA(fsvc_bind_nn)
WEAK_AREA(fsvc_bind_audio)
WEAK_AREA(fsvc_bind_dsp)
WEAK_AREA(fsvc_bind_checkpoint)
WEAK_AREA(fsvc_bind_extra)
WEAK_AREA(fsvc_bind_cuda)
WEAK_AREA(fsvc_bind_amp)
