// CL_CHECK: the one way OpenCL and CLBlast status codes become kvscope::Error. The message names
// the call as written, the status by name and number, and what success would have been.
#pragma once

#include <string>

#include "opencl/opencl_api.h"

namespace clblast {
enum class StatusCode;  // int-based, as declared in <clblast.h>
}

namespace kvscope::ocl {

// "CL_OUT_OF_RESOURCES" for -5; "CLBlast kInsufficientMemoryY" for CLBlast's own codes;
// "status N" for a code neither knows.
std::string statusName(cl_int status);
std::string statusName(clblast::StatusCode status);

// Throws Error("<call>: <status name> (<code>), expected CL_SUCCESS") unless status is success.
void check(cl_int status, const char* call);
void check(clblast::StatusCode status, const char* call);

}  // namespace kvscope::ocl

// CL_CHECK(clFinish(queue)): runs the call and throws Error naming it if it does not succeed.
#define CL_CHECK(call) ::kvscope::ocl::check((call), #call)
