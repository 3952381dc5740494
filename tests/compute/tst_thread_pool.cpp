// ThreadPool under stress, deterministically: workers are made late on purpose (a delay hook with
// a seeded schedule), and each of thousands of tiny jobs must run every chunk exactly once and
// never after parallelFor returned; exceptions reach the caller from any thread and leave the pool
// usable; nested use runs inline instead of deadlocking.
#include <QTest>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

using namespace kvscope;

namespace {

// A delay of 0..max microseconds chosen by a counter (the same schedule every run).
std::function<void()> lateWorkers(int maxMicros) {
    auto counter = std::make_shared<std::atomic<uint64_t>>(0);
    return [counter, maxMicros] {
        uint64_t x = counter->fetch_add(1) * 0x9E3779B97F4A7C15ull;
        x ^= x >> 29;
        const int us = static_cast<int>(x % static_cast<uint64_t>(maxMicros + 1));
        if (us > maxMicros / 2) std::this_thread::sleep_for(std::chrono::microseconds(us));
    };
}

}  // namespace

class TstThreadPool : public QObject {
    Q_OBJECT
  private slots:
    void everyChunkOnceAndNeverAfterReturn() {
        ThreadPool pool(4);
        pool.setWorkerDelayHookForTesting(lateWorkers(200));
        std::atomic<int> late{0};
        for (int job = 0; job < 3000; ++job) {
            const size_t chunks = 2 + static_cast<size_t>(job % 17);
            std::vector<std::atomic<int>> counts(chunks);
            auto returned = std::make_shared<std::atomic<bool>>(false);
            pool.parallelFor(chunks, [&, returned](size_t c) {
                if (returned->load()) ++late;
                counts[c].fetch_add(1);
            });
            returned->store(true);
            for (size_t c = 0; c < chunks; ++c)
                QVERIFY2(counts[c].load() == 1, qPrintable(QString("job %1 chunk %2 ran %3 times")
                                                               .arg(job)
                                                               .arg(c)
                                                               .arg(counts[c].load())));
        }
        QCOMPARE(late.load(), 0);
        pool.setWorkerDelayHookForTesting({});
    }

    // The first exception reaches the caller, from the calling thread or from a worker; no chunk
    // starts after it; the pool goes on working.
    void exceptionsReachTheCaller() {
        ThreadPool pool(4);
        pool.setWorkerDelayHookForTesting(lateWorkers(100));
        const std::thread::id caller = std::this_thread::get_id();
        int fromWorker = 0;
        for (int round = 0; round < 300; ++round) {
            std::atomic<int> ran{0}, throwerOrder{-1};
            const bool onWorker = round % 2 == 1;
            bool thrown = false;
            try {
                pool.parallelFor(64, [&](size_t c) {
                    const int order = ran.fetch_add(1);  // chunks started before this one
                    const bool here = std::this_thread::get_id() == caller;
                    if (c >= 8 && here != onWorker) {
                        int none = -1;
                        throwerOrder.compare_exchange_strong(none, order);
                        throw std::runtime_error("chunk failed");
                    }
                    std::this_thread::sleep_for(std::chrono::microseconds(20));
                });
            } catch (const std::runtime_error& e) {
                thrown = true;
                QCOMPARE(QString(e.what()), QString("chunk failed"));
            }
            // a worker may take every chunk >= 8 before the caller gets one (or the reverse):
            // then nothing throws, which is fine; when something throws, later chunks stop
            // (unless the throwing chunk was the last to start: a busy machine can leave the
            // caller only the last chunk)
            if (thrown) {
                QVERIFY2(ran.load() < 64 || onWorker || throwerOrder.load() == 63,
                         qPrintable(QString("the caller's chunk %1 of 64 threw, yet all 64 ran")
                                        .arg(throwerOrder.load())));
                fromWorker += onWorker ? 1 : 0;
            }
            std::atomic<int> after{0};
            pool.parallelFor(16, [&](size_t) { ++after; });
            QCOMPARE(after.load(), 16);
        }
        QVERIFY2(fromWorker > 0, "no exception was ever thrown on a worker");
        pool.setWorkerDelayHookForTesting({});
    }

    // A parallelFor inside a chunk runs inline on that thread: the right result, no deadlock.
    void nestedUseRunsInline() {
        ThreadPool pool(3);
        std::vector<std::atomic<int>> sums(8);
        pool.parallelFor(8, [&](size_t outer) {
            pool.parallelFor(5, [&](size_t inner) { sums[outer] += static_cast<int>(inner); });
        });
        for (auto& s : sums) QCOMPARE(s.load(), 0 + 1 + 2 + 3 + 4);
    }
};

QTEST_GUILESS_MAIN(TstThreadPool)
#include "tst_thread_pool.moc"
