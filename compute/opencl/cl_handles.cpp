// The OpenCL calls behind the RAII handles, each through CL_CHECK.
#include "opencl/cl_handles.h"

#include "core/error.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include <sys/mman.h>

namespace kvscope::ocl {

namespace {
// Drivers often allocate a buffer's memory on its first use, so running out of device memory shows
// up here: say so with the bytes, not just the status.
void checkAllocation(cl_int status, const char* call, size_t bufferBytes) {
    if (status == CL_MEM_OBJECT_ALLOCATION_FAILURE || status == CL_OUT_OF_RESOURCES)
        throw Error(std::string("the OpenCL device ran out of memory for a buffer of ") +
                    std::to_string(bufferBytes) + " bytes (" + call + ": " + statusName(status) +
                    "); choose a smaller context or model, or the CPU backend");
    check(status, call);
}
}  // namespace

void Event::wait() const {
    const cl_event e = e_.get();
    CL_CHECK(clWaitForEvents(1, &e));
}

uint64_t Event::elapsedNs() const {
    cl_ulong start = 0, end = 0;
    CL_CHECK(clGetEventProfilingInfo(e_.get(), CL_PROFILING_COMMAND_START, sizeof start, &start,
                                     nullptr));
    CL_CHECK(
        clGetEventProfilingInfo(e_.get(), CL_PROFILING_COMMAND_END, sizeof end, &end, nullptr));
    return end > start ? end - start : 0;
}

Context::Context(cl_device_id device) {
    cl_int status = CL_SUCCESS;
    c_ = Handle<cl_context, clReleaseContext>(
        clCreateContext(nullptr, 1, &device, nullptr, nullptr, &status));
    CL_CHECK(status);
}

Buffer::Buffer(const Context& context, size_t bytes, cl_mem_flags flags, const void* host)
    : bytes_(bytes) {
    KVSCOPE_CHECK(bytes > 0, "an OpenCL buffer of 0 bytes");
    if (host) flags |= CL_MEM_COPY_HOST_PTR;
    cl_int status = CL_SUCCESS;
    m_ = Handle<cl_mem, clReleaseMemObject>(
        clCreateBuffer(context.get(), flags, bytes, const_cast<void*>(host), &status));
    if (status != CL_SUCCESS)
        throw Error("clCreateBuffer of " + std::to_string(bytes) + " bytes: " + statusName(status) +
                    " (" + std::to_string(status) + "), expected CL_SUCCESS");
}

namespace {
std::atomic<int> liveHostBlocks{0};
}

struct HostArena::Block {
    void* data = nullptr;
    size_t bytes = 0;
    Block() { ++liveHostBlocks; }
    ~Block() {
        std::free(data);
        --liveHostBlocks;
    }
    Block(const Block&) = delete;
    Block& operator=(const Block&) = delete;
};

int HostArena::liveBlocks() {
    return liveHostBlocks.load();
}

Buffer HostArena::buffer(const Context& context, size_t bytes, cl_mem_flags flags,
                         const void* host) {
    KVSCOPE_CHECK(bytes > 0 && host, "an OpenCL buffer of 0 bytes or without its contents");
    constexpr size_t kHuge = size_t{2} << 20, kBlock = size_t{64} << 20, kAlign = 4096;
    const size_t slice = (bytes + kAlign - 1) / kAlign * kAlign;
    if (!block_ || block_->bytes - used_ < slice) {
        auto b = std::make_shared<Block>();
        b->bytes = std::max(kBlock, (slice + kHuge - 1) / kHuge * kHuge);
        b->data = std::aligned_alloc(kHuge, b->bytes);
        if (!b->data)
            throw Error("out of host memory for an OpenCL buffer of " + std::to_string(bytes) +
                        " bytes; choose a smaller context or model");
        // a hint: where transparent huge pages are off, the pages stay 4 KiB, nothing else
        // changes; pages never written (a block's unused end) take no memory
        madvise(b->data, b->bytes, MADV_HUGEPAGE);
        block_ = std::move(b);
        used_ = 0;
    }
    void* at = static_cast<char*>(block_->data) + used_;
    std::memcpy(at, host, bytes);
    cl_int status = CL_SUCCESS;
    cl_mem m = clCreateBuffer(context.get(), flags | CL_MEM_USE_HOST_PTR, bytes, at, &status);
    if (status != CL_SUCCESS)
        throw Error("clCreateBuffer of " + std::to_string(bytes) + " bytes in host memory: " +
                    statusName(status) + " (" + std::to_string(status) + "), expected CL_SUCCESS");
    Buffer out;
    out.m_ = Handle<cl_mem, clReleaseMemObject>(m);
    out.bytes_ = bytes;
    // the block lives until the runtime destroys the buffer (after its last command)
    auto* owner = new std::shared_ptr<Block>(block_);
    status = clSetMemObjectDestructorCallback(
        m, [](cl_mem, void* p) { delete static_cast<std::shared_ptr<Block>*>(p); }, owner);
    if (status != CL_SUCCESS) {
        delete owner;  // out releases the buffer, which no command has used, before the block
        throw Error(std::string("clSetMemObjectDestructorCallback: ") + statusName(status));
    }
    used_ += slice;
    return out;
}

Program::Program(const Context& context, cl_device_id device,
                 const std::vector<const char*>& sources, const std::string& what,
                 const char* options) {
    cl_int status = CL_SUCCESS;
    p_ = Handle<cl_program, clReleaseProgram>(
        clCreateProgramWithSource(context.get(), static_cast<cl_uint>(sources.size()),
                                  const_cast<const char**>(sources.data()), nullptr, &status));
    CL_CHECK(status);
    status = clBuildProgram(p_.get(), 1, &device, options, nullptr, nullptr);
    if (status != CL_SUCCESS) {
        size_t size = 0;
        clGetProgramBuildInfo(p_.get(), device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &size);
        std::string log(size, '\0');
        if (size > 0)
            clGetProgramBuildInfo(p_.get(), device, CL_PROGRAM_BUILD_LOG, size, log.data(),
                                  nullptr);
        while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
        if (log.size() > 2000) log = log.substr(0, 2000) + " ...";
        throw Error("clBuildProgram of " + what + ": " + statusName(status) + " (" +
                    std::to_string(status) +
                    "), expected CL_SUCCESS; compiler log: " + (log.empty() ? "(empty)" : log));
    }
}

bool Program::hasKernel(const std::string& name) const {
    size_t size = 0;
    CL_CHECK(clGetProgramInfo(p_.get(), CL_PROGRAM_KERNEL_NAMES, 0, nullptr, &size));
    std::string names(size, '\0');
    CL_CHECK(clGetProgramInfo(p_.get(), CL_PROGRAM_KERNEL_NAMES, size, names.data(), nullptr));
    names.resize(std::strlen(names.c_str()));
    return (";" + names + ";").find(";" + name + ";") != std::string::npos;  // "a;b;c"
}

Kernel::Kernel(const Program& program, const char* name) : name_(name) {
    cl_int status = CL_SUCCESS;
    k_ = Handle<cl_kernel, clReleaseKernel>(clCreateKernel(program.get(), name, &status));
    if (status != CL_SUCCESS)
        throw Error(std::string("clCreateKernel(\"") + name + "\"): " + statusName(status) + " (" +
                    std::to_string(status) + "), expected CL_SUCCESS");
}

void Kernel::setArg(cl_uint index, const Buffer& b) {
    const cl_mem m = b.get();
    CL_CHECK(clSetKernelArg(k_.get(), index, sizeof m, &m));
}
void Kernel::setArg(cl_uint index, int v) {
    const cl_int x = v;
    CL_CHECK(clSetKernelArg(k_.get(), index, sizeof x, &x));
}
void Kernel::setArg(cl_uint index, float v) {
    const cl_float x = v;
    CL_CHECK(clSetKernelArg(k_.get(), index, sizeof x, &x));
}
void Kernel::setArg(cl_uint index, Local local) {
    CL_CHECK(clSetKernelArg(k_.get(), index, local.bytes, nullptr));
}

size_t Kernel::maxWorkGroupSize(cl_device_id device) const {
    size_t n = 0;
    CL_CHECK(clGetKernelWorkGroupInfo(k_.get(), device, CL_KERNEL_WORK_GROUP_SIZE, sizeof n, &n,
                                      nullptr));
    return n;
}

Queue::Queue(const Context& context, cl_device_id device) {
    cl_int status = CL_SUCCESS;
    q_ = Handle<cl_command_queue, clReleaseCommandQueue>(
        clCreateCommandQueue(context.get(), device, CL_QUEUE_PROFILING_ENABLE, &status));
    CL_CHECK(status);
    raw_ = q_.get();
}

Event Queue::run(const Kernel& kernel, const Range& global, const Range& local) {
    KVSCOPE_CHECK(local.size[0] == 0 || local.dims == global.dims,
                  "a kernel's local size has other dimensions than its global size");
    cl_event e = nullptr;
    const cl_int status = clEnqueueNDRangeKernel(
        q_.get(), kernel.get(), static_cast<cl_uint>(global.dims), nullptr, global.size,
        local.size[0] == 0 ? nullptr : local.size, 0, nullptr, &e);
    if (status != CL_SUCCESS)
        throw Error("clEnqueueNDRangeKernel(" + kernel.name() + ", global " +
                    std::to_string(global.size[0]) + "x" + std::to_string(global.size[1]) + "x" +
                    std::to_string(global.size[2]) + "): " + statusName(status) + " (" +
                    std::to_string(status) + "), expected CL_SUCCESS");
    return Event(e);
}

void Queue::write(const Buffer& dst, size_t offsetBytes, const void* src, size_t bytes) {
    KVSCOPE_CHECK(offsetBytes + bytes <= dst.bytes(),
                  "write of " + std::to_string(bytes) + " bytes at " + std::to_string(offsetBytes) +
                      " past the end of a buffer of " + std::to_string(dst.bytes()));
    checkAllocation(clEnqueueWriteBuffer(q_.get(), dst.get(), CL_TRUE, offsetBytes, bytes, src, 0,
                                         nullptr, nullptr),
                    "clEnqueueWriteBuffer", dst.bytes());
}

void Queue::read(const Buffer& src, size_t offsetBytes, void* dst, size_t bytes) {
    KVSCOPE_CHECK(offsetBytes + bytes <= src.bytes(),
                  "read of " + std::to_string(bytes) + " bytes at " + std::to_string(offsetBytes) +
                      " past the end of a buffer of " + std::to_string(src.bytes()));
    checkAllocation(clEnqueueReadBuffer(q_.get(), src.get(), CL_TRUE, offsetBytes, bytes, dst, 0,
                                        nullptr, nullptr),
                    "clEnqueueReadBuffer", src.bytes());
}

void Queue::copyAsync(const Buffer& src, size_t srcOffset, const Buffer& dst, size_t dstOffset,
                      size_t bytes) {
    KVSCOPE_CHECK(srcOffset + bytes <= src.bytes() && dstOffset + bytes <= dst.bytes(),
                  "copy of " + std::to_string(bytes) + " bytes past the end of a buffer");
    checkAllocation(clEnqueueCopyBuffer(q_.get(), src.get(), dst.get(), srcOffset, dstOffset, bytes,
                                        0, nullptr, nullptr),
                    "clEnqueueCopyBuffer", dst.bytes());
}

Event Queue::fillAsync(const Buffer& b, float value) {
    return fillAsync(b, value, 0, b.bytes());
}

Event Queue::fillAsync(const Buffer& b, float value, size_t offsetBytes, size_t bytes) {
    cl_event e = nullptr;
    checkAllocation(clEnqueueFillBuffer(q_.get(), b.get(), &value, sizeof value, offsetBytes, bytes,
                                        0, nullptr, &e),
                    "clEnqueueFillBuffer", bytes);
    return Event(e);
}

void Queue::finish() {
    CL_CHECK(clFinish(q_.get()));
}

}  // namespace kvscope::ocl
