/* thread_pool.cpp -- see thread_pool.h. */
#include "common/thread_pool.h"

#include <algorithm>
#include <exception>

namespace dsz {

ThreadPool::ThreadPool(int threads) {
    if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    wake_.notify_all();
    for (auto &t : workers_) t.join();
}

size_t ThreadPool::chunk_count(size_t n, size_t grain) {
    if (grain == 0) grain = 1;
    return (n + grain - 1) / grain;
}

void ThreadPool::run_chunks() {
    for (;;) {
        size_t i;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (next_ >= chunks_) return;
            i = next_++;
        }
        const size_t b = i * grain_, e = std::min(n_, b + grain_);
        try {
            (*job_)(i, b, e);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mu_);
            if (!error_) error_ = std::current_exception();
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (++finished_ == chunks_) done_.notify_all();
    }
}

void ThreadPool::worker_loop() {
    unsigned seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mu_);
            wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            ++busy_;
        }
        run_chunks();
        std::lock_guard<std::mutex> lock(mu_);
        if (--busy_ == 0) done_.notify_all();
    }
}

void ThreadPool::parallel_for(size_t n, size_t grain,
                              const std::function<void(size_t, size_t, size_t)> &fn) {
    if (grain == 0) grain = 1;
    const size_t chunks = chunk_count(n, grain);
    if (chunks == 0) return;
    if (chunks == 1 || workers_.empty()) {
        for (size_t i = 0; i < chunks; ++i) fn(i, i * grain, std::min(n, (i + 1) * grain));
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        job_ = &fn;
        n_ = n;
        grain_ = grain;
        chunks_ = chunks;
        next_ = 0;
        finished_ = 0;
        error_ = nullptr;
        ++generation_;
    }
    wake_.notify_all();
    run_chunks();
    std::exception_ptr err;
    {
        std::unique_lock<std::mutex> lock(mu_);
        done_.wait(lock, [&] { return finished_ == chunks_ && busy_ == 0; });
        job_ = nullptr;
        err = error_;
    }
    if (err) std::rethrow_exception(err);
}

}  // namespace dsz
