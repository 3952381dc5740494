// ThreadPool: workers sleep on a condition variable between jobs and take chunks from an
// atomic counter while a job runs.
#include "thread_pool.h"

namespace kvscope {

ThreadPool::ThreadPool(unsigned threads) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
}

ThreadPool& ThreadPool::shared() {
    static ThreadPool pool;
    return pool;
}

void ThreadPool::runChunks() {
    for (size_t c = next_.fetch_add(1); c < chunks_.load(); c = next_.fetch_add(1))
        (*job_.load())(c);
}

void ThreadPool::workerLoop() {
    unsigned long seen = 0;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            ++busy_;
        }
        runChunks();
        {
            std::lock_guard lock(mutex_);
            --busy_;
        }
        done_.notify_one();
    }
}

void ThreadPool::parallelFor(size_t chunks, const std::function<void(size_t)>& fn) {
    if (chunks == 0) return;
    if (chunks == 1 || workers_.empty()) {
        for (size_t c = 0; c < chunks; ++c) fn(c);
        return;
    }
    std::lock_guard call(callMutex_);
    {
        std::lock_guard lock(mutex_);
        job_.store(&fn);
        next_.store(chunks);  // nothing to take until the job is fully set
        chunks_.store(chunks);
        next_.store(0);
        ++generation_;
    }
    wake_.notify_all();
    runChunks();
    // Every chunk has been taken; wait for workers still finishing theirs. A worker that wakes
    // late finds no chunk left and leaves at once.
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return busy_ == 0 && next_.load() >= chunks_.load(); });
    job_.store(nullptr);
}

}  // namespace kvscope
