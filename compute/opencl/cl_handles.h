// RAII owners of every OpenCL handle KVScope makes: move-only, released by destructors that
// never throw. Blocking is visible in names: Queue::read()/write() wait for the transfer,
// run()/fillAsync() enqueue and hand back the command's Event.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "opencl/cl_check.h"
#include "opencl/opencl_api.h"

namespace kvscope::ocl {

// Owns one handle of type T, released with Release (clReleaseContext, clReleaseMemObject, ...).
template <typename T, cl_int(CL_API_CALL* Release)(T)>
class Handle {
  public:
    Handle() = default;
    explicit Handle(T h) : h_(h) {}
    ~Handle() { reset(); }
    Handle(Handle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;

    T get() const { return h_; }
    explicit operator bool() const { return h_ != nullptr; }
    void reset() noexcept {
        if (h_) Release(h_);  // a failed release cannot be helped here; it is not thrown
        h_ = nullptr;
    }

  private:
    T h_ = nullptr;
};

// One finished-or-pending command. Holds its profiling times once the command has completed.
class Event {
  public:
    Event() = default;
    explicit Event(cl_event e) : e_(e) {}
    bool valid() const { return static_cast<bool>(e_); }
    cl_event get() const { return e_.get(); }
    // Waits for the command to complete.
    void wait() const;
    // Nanoseconds from the command's start to its end on the device. Precondition: completed,
    // and the queue was made with profiling.
    uint64_t elapsedNs() const;

  private:
    Handle<cl_event, clReleaseEvent> e_;
};

class Context {
  public:
    // A context holding the one device. Throws Error naming the call and status.
    explicit Context(cl_device_id device);
    cl_context get() const { return c_.get(); }

  private:
    Handle<cl_context, clReleaseContext> c_;
};

// A device buffer of `bytes` bytes. Its raw cl_mem stays inside compute/opencl/.
class Buffer {
  public:
    Buffer() = default;
    // flags: CL_MEM_READ_WRITE etc.; host: if not null, `bytes` bytes copied in at creation.
    Buffer(const Context& context, size_t bytes, cl_mem_flags flags, const void* host = nullptr);
    cl_mem get() const { return m_.get(); }
    size_t bytes() const { return bytes_; }
    size_t floats() const { return bytes_ / sizeof(float); }
    explicit operator bool() const { return static_cast<bool>(m_); }

  private:
    friend class HostArena;
    Handle<cl_mem, clReleaseMemObject> m_;
    size_t bytes_ = 0;
};

// Buffers for devices that compute in host memory (CPU devices): their storage is slices of
// large host blocks, aligned on 2 MiB and marked for transparent huge pages
// (CL_MEM_USE_HOST_PTR), so that streaming the weights takes a TLB entry per 2 MiB instead of
// per 4 KiB (about 7% of a GPT-2 step on PoCL). A block is freed when the runtime has
// destroyed the last buffer in it; the arena may go before its buffers.
class HostArena {
  public:
    HostArena() = default;
    HostArena(const HostArena&) = delete;  // two arenas would hand out the same slices
    HostArena& operator=(const HostArena&) = delete;
    HostArena(HostArena&&) noexcept = default;
    HostArena& operator=(HostArena&&) noexcept = default;

    // A buffer of `bytes` bytes copied from host (not null). Throws Error when the host memory
    // or the buffer cannot be had.
    Buffer buffer(const Context& context, size_t bytes, cl_mem_flags flags, const void* host);
    // The blocks of every arena not yet freed (for tests: a block goes once the runtime has
    // destroyed its last buffer).
    static int liveBlocks();

  private:
    struct Block;
    std::shared_ptr<Block> block_;
    size_t used_ = 0;  // bytes of block_ handed out
};

// A built program; building throws Error carrying the compiler's log.
class Program {
  public:
    Program() = default;
    // Compiles `sources` (named for the error message) for `device` with `options`.
    Program(const Context& context, cl_device_id device, const std::vector<const char*>& sources,
            const std::string& what, const char* options = "");
    cl_program get() const { return p_.get(); }
    // Whether the program has a kernel of this name (sources may leave kernels out with #if).
    bool hasKernel(const std::string& name) const;

  private:
    Handle<cl_program, clReleaseProgram> p_;
};

class Kernel {
  public:
    Kernel() = default;
    Kernel(const Program& program, const char* name);
    bool valid() const { return static_cast<bool>(k_); }
    cl_kernel get() const { return k_.get(); }
    const std::string& name() const { return name_; }

    // Sets arguments in order: Buffer, int, float, or Local{bytes} for __local memory.
    struct Local {
        size_t bytes;
    };
    template <typename... Args>
    void setArgs(const Args&... args) {
        cl_uint i = 0;
        (setArg(i++, args), ...);
    }
    void setArg(cl_uint index, const Buffer& b);
    void setArg(cl_uint index, int v);
    void setArg(cl_uint index, float v);
    void setArg(cl_uint index, Local local);

    // The largest work group this kernel can run with on `device`.
    size_t maxWorkGroupSize(cl_device_id device) const;

  private:
    Handle<cl_kernel, clReleaseKernel> k_;
    std::string name_;
};

// Up to three work sizes; unset dimensions are 1. Local {0}: the runtime picks.
struct Range {
    size_t dims = 1;
    size_t size[3] = {1, 1, 1};
    Range(size_t x) : size{x, 1, 1} {}  // NOLINT: implicit from one size
    Range(size_t x, size_t y) : dims(2), size{x, y, 1} {}
    Range(size_t x, size_t y, size_t z) : dims(3), size{x, y, z} {}
};

// An in-order command queue, with profiling so that every Event has device times.
class Queue {
  public:
    Queue(const Context& context, cl_device_id device);
    cl_command_queue get() const { return q_.get(); }
    // CLBlast takes the queue by pointer.
    cl_command_queue* forClBlast() { return &raw_; }

    // Runs `kernel` over `global` in work groups of `local` (local.size[0] == 0: the runtime
    // picks). Returns the command's event.
    Event run(const Kernel& kernel, const Range& global, const Range& local);
    // Copies bytes from host to device and returns when done.
    void write(const Buffer& dst, size_t offsetBytes, const void* src, size_t bytes);
    // Copies bytes from device to host and returns when done.
    void read(const Buffer& src, size_t offsetBytes, void* dst, size_t bytes);
    // Enqueues a copy of bytes between two device buffers and returns at once.
    void copyAsync(const Buffer& src, size_t srcOffset, const Buffer& dst, size_t dstOffset,
                   size_t bytes);
    // Enqueues setting every float of `b` to `value` and returns at once.
    Event fillAsync(const Buffer& b, float value);
    // The same for `bytes` bytes (whole floats) from offsetBytes.
    Event fillAsync(const Buffer& b, float value, size_t offsetBytes, size_t bytes);
    void finish();

  private:
    Handle<cl_command_queue, clReleaseCommandQueue> q_;
    cl_command_queue raw_ = nullptr;  // the same queue, addressable for CLBlast
};

}  // namespace kvscope::ocl
