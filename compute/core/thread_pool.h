// ThreadPool: a fixed set of worker threads that split a loop of independent chunks.
// Decoding a float32 model is bound by memory bandwidth; one thread cannot saturate it, so every
// matrix product and the attention heads are spread over the pool.
//
// A decode step is a hundred or more jobs a few hundred microseconds apart (a Llama-1B step: 16
// layers of seven matrix products and the attention heads). Waking a sleeping worker through the
// kernel costs tens of microseconds each time, so a worker that finishes a job first polls for
// the next one for a short while (kSpin), and only
// then sleeps on the condition variable; the caller likewise polls for the workers to leave a job
// before it sleeps.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kvscope {

class ThreadPool {
  public:
    // threads == 0: one per hardware thread. The calling thread works too, so a pool of N
    // threads starts N - 1 workers.
    explicit ThreadPool(unsigned threads = 0);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }

    // Calls fn(chunk) for every chunk in [0, chunks), spread over the threads; returns when all
    // threads have left the job. If fn throws, no further chunks start and the first exception
    // is rethrown here (on the calling thread) once every thread has left the job. Calls from
    // several threads at once are serialised. A parallelFor from inside a chunk (nested use)
    // runs its chunks on the calling thread, in order: supported, never a deadlock.
    void parallelFor(size_t chunks, const std::function<void(size_t)>& fn);

    // The process-wide pool used by the CPU backend.
    static ThreadPool& shared();

    // For tests: called by a worker after it has taken a job and before it runs any chunk of it
    // (a delay here is a worker that woke late). Set it while no job runs.
    void setWorkerDelayHookForTesting(std::function<void()> hook) { delayHook_ = std::move(hook); }

  private:
    void workerLoop();
    // Takes chunks from next_ until none of [0, chunks) is left; an exception stops the job.
    void runChunks(const std::function<void(size_t)>& fn, size_t chunks);

    // Polls atomically, then sleeps on `cv` under `lock` until `ready` (checked under the lock).
    template <class Ready>
    void spinThenWait(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, Ready ready);

    std::vector<std::thread> workers_;
    std::mutex callMutex_;  // one parallelFor at a time
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    const std::function<void(size_t)>* job_ = nullptr;  // guarded by mutex_
    size_t chunks_ = 0;                                 // guarded by mutex_; 0 between jobs
    std::atomic<size_t> next_{0};
    // Written under mutex_, read without it while a thread polls.
    std::atomic<size_t> busy_{0};  // workers inside the current job
    std::atomic<unsigned long> generation_{0};
    bool stop_ = false;
    std::mutex errorMutex_;
    std::exception_ptr error_;  // the first exception of the current job
    std::function<void()> delayHook_;
};

}  // namespace kvscope
