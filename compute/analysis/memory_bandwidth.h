// Measures how fast this machine reads memory: the bound a memory-bound decode step can reach.
#pragma once

#include <cstddef>

#include "core/thread_pool.h"

namespace kvscope {

// Bytes per second read from a buffer of `bytes` (much larger than the caches), summed over the
// pool's threads; the best of `repeats` passes.
double measureReadBandwidth(ThreadPool& pool, size_t bytes = size_t{512} << 20, int repeats = 5);

}  // namespace kvscope
