// Status codes by name, and the throwing check behind CL_CHECK.
#include "opencl/cl_check.h"

#include <clblast.h>

#include "core/error.h"

namespace kvscope::ocl {

std::string statusName(cl_int status) {
    switch (status) {
#define KVSCOPE_CL_STATUS(name) \
    case name:                  \
        return #name;
        KVSCOPE_CL_STATUS(CL_SUCCESS)
        KVSCOPE_CL_STATUS(CL_DEVICE_NOT_FOUND)
        KVSCOPE_CL_STATUS(CL_DEVICE_NOT_AVAILABLE)
        KVSCOPE_CL_STATUS(CL_COMPILER_NOT_AVAILABLE)
        KVSCOPE_CL_STATUS(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        KVSCOPE_CL_STATUS(CL_OUT_OF_RESOURCES)
        KVSCOPE_CL_STATUS(CL_OUT_OF_HOST_MEMORY)
        KVSCOPE_CL_STATUS(CL_PROFILING_INFO_NOT_AVAILABLE)
        KVSCOPE_CL_STATUS(CL_MEM_COPY_OVERLAP)
        KVSCOPE_CL_STATUS(CL_BUILD_PROGRAM_FAILURE)
        KVSCOPE_CL_STATUS(CL_MAP_FAILURE)
        KVSCOPE_CL_STATUS(CL_MISALIGNED_SUB_BUFFER_OFFSET)
        KVSCOPE_CL_STATUS(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
        KVSCOPE_CL_STATUS(CL_COMPILE_PROGRAM_FAILURE)
        KVSCOPE_CL_STATUS(CL_LINKER_NOT_AVAILABLE)
        KVSCOPE_CL_STATUS(CL_LINK_PROGRAM_FAILURE)
        KVSCOPE_CL_STATUS(CL_INVALID_VALUE)
        KVSCOPE_CL_STATUS(CL_INVALID_DEVICE_TYPE)
        KVSCOPE_CL_STATUS(CL_INVALID_PLATFORM)
        KVSCOPE_CL_STATUS(CL_INVALID_DEVICE)
        KVSCOPE_CL_STATUS(CL_INVALID_CONTEXT)
        KVSCOPE_CL_STATUS(CL_INVALID_QUEUE_PROPERTIES)
        KVSCOPE_CL_STATUS(CL_INVALID_COMMAND_QUEUE)
        KVSCOPE_CL_STATUS(CL_INVALID_HOST_PTR)
        KVSCOPE_CL_STATUS(CL_INVALID_MEM_OBJECT)
        KVSCOPE_CL_STATUS(CL_INVALID_BINARY)
        KVSCOPE_CL_STATUS(CL_INVALID_BUILD_OPTIONS)
        KVSCOPE_CL_STATUS(CL_INVALID_PROGRAM)
        KVSCOPE_CL_STATUS(CL_INVALID_PROGRAM_EXECUTABLE)
        KVSCOPE_CL_STATUS(CL_INVALID_KERNEL_NAME)
        KVSCOPE_CL_STATUS(CL_INVALID_KERNEL_DEFINITION)
        KVSCOPE_CL_STATUS(CL_INVALID_KERNEL)
        KVSCOPE_CL_STATUS(CL_INVALID_ARG_INDEX)
        KVSCOPE_CL_STATUS(CL_INVALID_ARG_VALUE)
        KVSCOPE_CL_STATUS(CL_INVALID_ARG_SIZE)
        KVSCOPE_CL_STATUS(CL_INVALID_KERNEL_ARGS)
        KVSCOPE_CL_STATUS(CL_INVALID_WORK_DIMENSION)
        KVSCOPE_CL_STATUS(CL_INVALID_WORK_GROUP_SIZE)
        KVSCOPE_CL_STATUS(CL_INVALID_WORK_ITEM_SIZE)
        KVSCOPE_CL_STATUS(CL_INVALID_GLOBAL_OFFSET)
        KVSCOPE_CL_STATUS(CL_INVALID_EVENT_WAIT_LIST)
        KVSCOPE_CL_STATUS(CL_INVALID_EVENT)
        KVSCOPE_CL_STATUS(CL_INVALID_OPERATION)
        KVSCOPE_CL_STATUS(CL_INVALID_BUFFER_SIZE)
        KVSCOPE_CL_STATUS(CL_INVALID_GLOBAL_WORK_SIZE)
        KVSCOPE_CL_STATUS(CL_INVALID_PROPERTY)
        KVSCOPE_CL_STATUS(CL_INVALID_COMPILER_OPTIONS)
        KVSCOPE_CL_STATUS(CL_INVALID_LINKER_OPTIONS)
#undef KVSCOPE_CL_STATUS
        case -1001:  // cl_khr_icd: the ICD loader found no platform
            return "CL_PLATFORM_NOT_FOUND_KHR";
        default:
            return "status " + std::to_string(status);
    }
}

std::string statusName(clblast::StatusCode status) {
    using S = clblast::StatusCode;
    switch (status) {
        case S::kNotImplemented:
            return "CLBlast kNotImplemented";
        case S::kInvalidMatrixA:
            return "CLBlast kInvalidMatrixA";
        case S::kInvalidMatrixB:
            return "CLBlast kInvalidMatrixB";
        case S::kInvalidMatrixC:
            return "CLBlast kInvalidMatrixC";
        case S::kInvalidVectorX:
            return "CLBlast kInvalidVectorX";
        case S::kInvalidVectorY:
            return "CLBlast kInvalidVectorY";
        case S::kInvalidDimension:
            return "CLBlast kInvalidDimension";
        case S::kInvalidLeadDimA:
            return "CLBlast kInvalidLeadDimA";
        case S::kInvalidLeadDimB:
            return "CLBlast kInvalidLeadDimB";
        case S::kInvalidLeadDimC:
            return "CLBlast kInvalidLeadDimC";
        case S::kInvalidIncrementX:
            return "CLBlast kInvalidIncrementX";
        case S::kInvalidIncrementY:
            return "CLBlast kInvalidIncrementY";
        case S::kInsufficientMemoryA:
            return "CLBlast kInsufficientMemoryA";
        case S::kInsufficientMemoryB:
            return "CLBlast kInsufficientMemoryB";
        case S::kInsufficientMemoryC:
            return "CLBlast kInsufficientMemoryC";
        case S::kInsufficientMemoryX:
            return "CLBlast kInsufficientMemoryX";
        case S::kInsufficientMemoryY:
            return "CLBlast kInsufficientMemoryY";
        case S::kInsufficientMemoryTemp:
            return "CLBlast kInsufficientMemoryTemp";
        case S::kInvalidBatchCount:
            return "CLBlast kInvalidBatchCount";
        case S::kInvalidOverrideKernel:
            return "CLBlast kInvalidOverrideKernel";
        case S::kMissingOverrideParameter:
            return "CLBlast kMissingOverrideParameter";
        case S::kInvalidLocalMemUsage:
            return "CLBlast kInvalidLocalMemUsage";
        case S::kNoHalfPrecision:
            return "CLBlast kNoHalfPrecision";
        case S::kNoDoublePrecision:
            return "CLBlast kNoDoublePrecision";
        case S::kInvalidVectorScalar:
            return "CLBlast kInvalidVectorScalar";
        case S::kInsufficientMemoryScalar:
            return "CLBlast kInsufficientMemoryScalar";
        case S::kDatabaseError:
            return "CLBlast kDatabaseError";
        case S::kUnknownError:
            return "CLBlast kUnknownError";
        case S::kUnexpectedError:
            return "CLBlast kUnexpectedError";
        default:  // the codes CLBlast shares with OpenCL
            return statusName(static_cast<cl_int>(status));
    }
}

void check(cl_int status, const char* call) {
    if (status != CL_SUCCESS)
        throw Error(std::string(call) + ": " + statusName(status) + " (" + std::to_string(status) +
                    "), expected CL_SUCCESS");
}

void check(clblast::StatusCode status, const char* call) {
    if (status != clblast::StatusCode::kSuccess)
        throw Error(std::string(call) + ": " + statusName(status) + " (" +
                    std::to_string(static_cast<int>(status)) + "), expected kSuccess");
}

}  // namespace kvscope::ocl
