// The OpenCL headers as the whole project includes them: the 1.2 API (what CLBlast 1.5 and
// every runtime we target provide), without deprecation warnings for its calls.
#pragma once

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#ifndef CL_USE_DEPRECATED_OPENCL_1_2_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#endif
#include <CL/cl.h>
