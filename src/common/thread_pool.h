/*
 * thread_pool.h -- a fixed set of worker threads for the CPU kernels.
 *
 * parallel_for splits [0, n) into contiguous chunks whose boundaries depend
 * only on n and the grain, never on the thread count or timing, so that
 * reductions done per chunk and summed in chunk order are reproducible
 * bit for bit whatever the number of threads.
 */
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dsz {

class ThreadPool {
public:
    /* threads <= 0: one per online core. The calling thread works too. */
    explicit ThreadPool(int threads = 0);
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    /* Number of chunks parallel_for uses for n elements at this grain. */
    static size_t chunk_count(size_t n, size_t grain);

    /* Calls fn(chunk_index, begin, end) for each chunk of [0, n), chunk i
     * covering [i*grain, min(n, (i+1)*grain)). Returns when all are done.
     * The first exception thrown by fn is rethrown here. */
    void parallel_for(size_t n, size_t grain,
                      const std::function<void(size_t, size_t, size_t)> &fn);

private:
    void worker_loop();
    void run_chunks();

    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable wake_, done_;
    const std::function<void(size_t, size_t, size_t)> *job_ = nullptr;
    size_t n_ = 0, grain_ = 1, chunks_ = 0, next_ = 0, finished_ = 0;
    unsigned generation_ = 0;
    int busy_ = 0;
    bool stop_ = false;
    std::exception_ptr error_;
};

}  // namespace dsz
