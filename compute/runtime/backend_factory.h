// createBackend: the one place that turns "auto", "cpu" or "opencl device N" into a backend,
// for the command line and the window alike.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include "runtime/kv_cache.h"

#include "runtime/backend.h"

namespace kvscope {

struct BackendChoice {
    enum class Kind { Auto, Cpu, OpenCl };
    Kind kind = Kind::Auto;
    int device = 0;  // OpenCl: index in ocl::listDevices() (`kvscope devices`)
    // When set and true, a long OpenCL start-up (tuning) stops with Error("stopped").
    const std::atomic<bool>* stop = nullptr;
    // The KV cache's element type, the cache lab's eviction policy and the cache's block size;
    // both backends run them (the note names a type or policy other than the full f32 cache).
    KvType kvType = KvType::F32;
    EvictionPolicy eviction;
    int blockTokens = 256;
    // The cache options these make.
    KvCacheOptions cacheOptions() const { return KvCacheOptions(kvType, blockTokens, eviction); }
};

// Auto: the first usable OpenCL GPU, else the CPU backend (also when OpenCL fails there).
// OpenCl: that device or an Error (no such device, not enough memory, a failing call).
// `note` says which backend was made and, for Auto, why.
std::shared_ptr<Backend> createBackend(std::shared_ptr<const Model> model,
                                       const BackendChoice& choice, std::string& note);

}  // namespace kvscope
