/*
 * io_engine.h -- asynchronous file I/O on Linux native AIO (libaio).
 *
 * A batch of transfers (buffer <-> file range) is started and later waited
 * for; in between the caller computes. Transfers are cut into block_size
 * pieces that intra_op_parallelism worker threads, each with its own AIO
 * context, keep queue_depth deep: io_submit hands pieces to the kernel
 * (one call per piece with single_submit, else all that fit at once) and
 * io_getevents collects completions (with overlap_events, as soon as one
 * completes, refilling the queue; else the whole submitted set).
 *
 * Every completion's result is checked, because the kernel accepts a
 * misaligned O_DIRECT request at submit and only fails it there: an error
 * or a short transfer fails the batch with DSZ_ERR_IO naming the file, the
 * offset and the reason. A short write is retried once synchronously for
 * the rest, which turns "the disk filled up" into ENOSPC/EFBIG.
 *
 * Builds without libaio compile a stub: available() is false and creating
 * an IoEngine fails with DSZ_ERR_UNSUPPORTED.
 */
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dsz::aio {

/* DeepSpeed's "aio" section (reference §1.10). */
struct IoSettings {
    size_t block_size = size_t(1) << 20;  /* bytes per request; rounded up to kIoAlignment */
    int queue_depth = 8;                  /* requests in flight per thread */
    int threads = 1;                      /* intra_op_parallelism */
    bool single_submit = false;
    bool overlap_events = true;
};

bool available();

struct Transfer {
    int fd = -1;
    std::string path;      /* for messages */
    char *buf = nullptr;   /* aligned for O_DIRECT files */
    size_t bytes = 0;
    uint64_t offset = 0;
    bool write = false;
};

class IoEngine {
public:
    using Ticket = uint64_t;

    /* Throws DSZ_ERR_UNSUPPORTED without libaio, DSZ_ERR_IO when the kernel
     * refuses an AIO context (fs.aio-max-nr). */
    explicit IoEngine(const IoSettings &settings);
    ~IoEngine();  /* waits for everything in flight */
    IoEngine(const IoEngine &) = delete;
    IoEngine &operator=(const IoEngine &) = delete;

    const IoSettings &settings() const { return settings_; }

    /* Starts a batch; buffers must stay untouched until wait() returns. */
    Ticket start(std::vector<Transfer> batch);
    /* Blocks until every transfer of the batch completed; then throws the
     * first failure (DSZ_ERR_IO). Each ticket is waited for once. */
    void wait(Ticket ticket);
    /* Whether wait(ticket) would return at once. */
    bool ready(Ticket ticket);
    void run(std::vector<Transfer> batch) { wait(start(std::move(batch))); }

private:
    struct Piece {
        Ticket ticket;
        size_t transfer;
        size_t at;     /* byte offset inside the transfer */
        size_t bytes;
    };
    struct Batch {
        std::vector<Transfer> transfers;
        size_t remaining = 0;   /* pieces not yet completed */
        std::string error;      /* first failure */
    };
    void worker(void *ctx);
    void shutdown();

    IoSettings settings_;
    std::mutex mu_;
    std::condition_variable work_cv_, done_cv_;
    std::deque<Piece> pending_;
    std::map<Ticket, Batch> batches_;
    Ticket next_ = 1;
    bool stop_ = false;
    std::vector<void *> contexts_;
    std::vector<std::thread> threads_;
};

}  // namespace dsz::aio
