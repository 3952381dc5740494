# Turns OpenCL C files into a C++ header of string literals, so the kernels travel inside the
# binary. Run as: cmake -DOUTPUT=<header> "-DSOURCES=<a.cl|b.cl>" -P embed_kernels.cmake
# The header holds kvscope::ocl::kKernelSources: one {file name, source text} per file.
if(NOT OUTPUT OR NOT SOURCES)
  message(FATAL_ERROR "embed_kernels.cmake needs -DOUTPUT=... and -DSOURCES=...")
endif()

string(REPLACE "|" ";" SOURCES "${SOURCES}")
set(delimiter "kvscope_cl")
set(body "")
foreach(source IN LISTS SOURCES)
  get_filename_component(name "${source}" NAME)
  file(READ "${source}" text)
  string(FIND "${text}" ")${delimiter}\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${source} contains the raw-string delimiter ')${delimiter}\"'")
  endif()
  # #line makes compiler messages name the .cl file and its own line numbers.
  string(APPEND body "    {\"${name}\", R\"${delimiter}(#line 1 \"${name}\"\n${text})${delimiter}\"},\n")
endforeach()

set(header "// Generated from resources/kernels/*.cl by compute/opencl/embed_kernels.cmake: do not edit.
#pragma once

namespace kvscope::ocl {

struct KernelSource {
    const char* file;  // the .cl file's name
    const char* text;  // its OpenCL C source
};

inline constexpr KernelSource kKernelSources[] = {
${body}};

}  // namespace kvscope::ocl
")

# Rewrite only on change, so an unchanged kernel does not rebuild its users.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
  if(old STREQUAL header)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${header}")
