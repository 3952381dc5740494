// ThreadPool: workers poll briefly, then sleep on a condition variable between jobs, and take
// chunks from an atomic counter while a job runs.
#include "core/thread_pool.h"

#include <chrono>
#include <limits>

namespace kvscope {
namespace {
// True on a thread while it runs chunks of a job: a parallelFor there is nested.
thread_local bool tInsideJob = false;

// How long a thread polls before it sleeps. Longer than the gaps between the jobs of one decode
// step (norms, RoPE and the like run on the caller between matrix products), short enough that
// the pool is asleep soon after a step.
constexpr auto kSpin = std::chrono::microseconds(300);

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}
}  // namespace

template <class Ready>
void ThreadPool::spinThenWait(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                              Ready ready) {
    lock.unlock();
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (int i = 0; !ready(); ++i) {
        // not sched_yield: that hands the core to any runnable process for a whole time slice
        // (a niced background job too), which costs more than the sleep it saves
        cpuRelax();
        if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) break;
    }
    lock.lock();
    cv.wait(lock, ready);
}

ThreadPool::ThreadPool(unsigned threads) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
        ++generation_;  // wakes every worker, polling or asleep
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
}

ThreadPool& ThreadPool::shared() {
    static ThreadPool pool;
    return pool;
}

void ThreadPool::runChunks(const std::function<void(size_t)>& fn, size_t chunks) {
    tInsideJob = true;
    try {
        for (size_t c = next_.fetch_add(1); c < chunks; c = next_.fetch_add(1)) fn(c);
    } catch (...) {
        // No further chunk starts; the first exception is kept for the caller.
        next_.store(std::numeric_limits<size_t>::max() / 2);
        std::lock_guard lock(errorMutex_);
        if (!error_) error_ = std::current_exception();
    }
    tInsideJob = false;
}

void ThreadPool::workerLoop() {
    unsigned long seen = 0;
    for (;;) {
        const std::function<void(size_t)>* job = nullptr;
        size_t chunks = 0;
        {
            std::unique_lock lock(mutex_);
            // the destructor moves generation_ on too, so stop_ is seen here
            spinThenWait(lock, wake_, [&] { return generation_.load() != seen; });
            if (stop_) return;
            seen = generation_;
            // The job and its size are taken under the lock, together with the registration in
            // busy_: the caller cannot finish this job (and destroy it) while this worker runs
            // it. A worker that wakes after the job finished finds chunks_ == 0 and runs nothing.
            job = job_;
            chunks = chunks_;
            ++busy_;
        }
        if (delayHook_) delayHook_();
        if (job) runChunks(*job, chunks);
        {
            std::lock_guard lock(mutex_);
            --busy_;
        }
        done_.notify_one();
    }
}

void ThreadPool::parallelFor(size_t chunks, const std::function<void(size_t)>& fn) {
    if (chunks == 0) return;
    if (chunks == 1 || workers_.empty() || tInsideJob) {
        // Serial: one chunk, no workers, or nested inside a chunk (the pool is busy with the
        // outer job; waiting for it here would deadlock). Exceptions pass straight through.
        for (size_t c = 0; c < chunks; ++c) fn(c);
        return;
    }
    std::lock_guard call(callMutex_);
    {
        std::lock_guard lock(mutex_);
        job_ = &fn;
        chunks_ = chunks;
        next_.store(0);
        error_ = nullptr;
        ++generation_;
    }
    wake_.notify_all();
    runChunks(fn, chunks);
    // Every chunk has been taken (or the job stopped); wait for the workers still in it.
    std::exception_ptr error;
    {
        std::unique_lock lock(mutex_);
        spinThenWait(lock, done_, [&] { return busy_.load() == 0; });
        job_ = nullptr;
        chunks_ = 0;
        std::lock_guard errorLock(errorMutex_);
        std::swap(error, error_);
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace kvscope
