/* io_engine.cpp -- IoEngine on libaio (see io_engine.h). */
#include "aio/io_engine.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "aio/aligned_buffer.h"
#include "common/error.h"

#ifdef DSZ_HAVE_AIO
#include <libaio.h>
#endif

namespace dsz::aio {

#ifdef DSZ_HAVE_AIO

bool available() { return true; }

namespace {

/* What one piece needs, copied out of its batch when it is cut. */
struct PieceIo {
    int fd;
    char *buf;
    uint64_t offset;
    size_t bytes;
    bool write;
    const std::string *path;
};

/* The message for a failed or short piece, or "" when it completed. A short
 * write is finished synchronously first: whatever stopped it (a full disk,
 * a file-size limit) then reports its own errno. */
std::string check_result(const PieceIo &p, long res) {
    const char *verb = p.write ? "writing" : "reading";
    const auto off = static_cast<unsigned long long>(p.offset);
    if (res < 0) {
        const int e = static_cast<int>(-res);
        const bool direct = e == EINVAL && (::fcntl(p.fd, F_GETFL) & O_DIRECT);
        return strprintf("%s %s at offset %llu (%zu bytes) failed: %s%s", verb, p.path->c_str(), off, p.bytes,
                         std::strerror(e),
                         direct ? " (O_DIRECT needs the buffer address, the file offset and the length aligned "
                                  "to the device's logical block size)"
                                : "");
    }
    size_t done = static_cast<size_t>(res);
    if (done >= p.bytes) return "";
    if (!p.write)
        return strprintf("short read of %s at offset %llu: %zu of %zu bytes (the file is shorter than dszero "
                         "wrote it: was it truncated or replaced?)",
                         p.path->c_str(), off, done, p.bytes);
    while (done < p.bytes) {
        const ssize_t w = ::pwrite(p.fd, p.buf + done, p.bytes - done, static_cast<off_t>(p.offset + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            const int e = w < 0 ? errno : ENOSPC;
            return strprintf("writing %s at offset %llu: only %zu of %zu bytes written: %s", p.path->c_str(),
                             static_cast<unsigned long long>(p.offset + done), done, p.bytes, std::strerror(e));
        }
        done += static_cast<size_t>(w);
    }
    return "";
}

struct IoPiece {
    uint64_t ticket;
    PieceIo io;
};

}  // namespace

IoEngine::IoEngine(const IoSettings &settings) : settings_(settings) {
    settings_.block_size = align_up(std::max<size_t>(settings_.block_size, 1));
    settings_.queue_depth = std::max(settings_.queue_depth, 1);
    settings_.threads = std::max(settings_.threads, 1);
    try {
        for (int t = 0; t < settings_.threads; ++t) {
            io_context_t ctx = nullptr;
            const int rc = io_setup(settings_.queue_depth, &ctx);
            if (rc < 0)
                fail(DSZ_ERR_IO, "cannot create an AIO context of depth %d: %s (see /proc/sys/fs/aio-max-nr)",
                     settings_.queue_depth, std::strerror(-rc));
            contexts_.push_back(ctx);
        }
        for (void *ctx : contexts_) threads_.emplace_back([this, ctx] { worker(ctx); });
    } catch (...) {
        shutdown();
        throw;
    }
}

IoEngine::~IoEngine() { shutdown(); }

void IoEngine::shutdown() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
    }
    work_cv_.notify_all();
    for (std::thread &t : threads_) t.join();
    threads_.clear();
    for (void *ctx : contexts_) io_destroy(static_cast<io_context_t>(ctx));
    contexts_.clear();
}

IoEngine::Ticket IoEngine::start(std::vector<Transfer> batch) {
    std::lock_guard<std::mutex> lk(mu_);
    const Ticket t = next_++;
    Batch &b = batches_[t];
    b.transfers = std::move(batch);
    for (size_t i = 0; i < b.transfers.size(); ++i) {
        const Transfer &tr = b.transfers[i];
        for (size_t at = 0; at < tr.bytes; at += settings_.block_size) {
            pending_.push_back(Piece{t, i, at, std::min(settings_.block_size, tr.bytes - at)});
            ++b.remaining;
        }
    }
    work_cv_.notify_all();
    return t;
}

bool IoEngine::ready(Ticket ticket) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = batches_.find(ticket);
    return it == batches_.end() || it->second.remaining == 0;
}

void IoEngine::wait(Ticket ticket) {
    std::string error;
    {
        std::unique_lock<std::mutex> lk(mu_);
        auto it = batches_.find(ticket);
        if (it == batches_.end()) fail(DSZ_ERR_INTERNAL, "I/O batch %llu is unknown", static_cast<unsigned long long>(ticket));
        done_cv_.wait(lk, [&] { return it->second.remaining == 0; });
        error = std::move(it->second.error);
        batches_.erase(it);
    }
    if (!error.empty()) fail(DSZ_ERR_IO, "%s", error.c_str());
}

void IoEngine::worker(void *context) {
    io_context_t ctx = static_cast<io_context_t>(context);
    const int qd = settings_.queue_depth;
    std::vector<struct iocb> cbs(static_cast<size_t>(qd));
    std::vector<IoPiece> in_slot(static_cast<size_t>(qd));
    std::vector<int> free_slots;
    for (int s = qd - 1; s >= 0; --s) free_slots.push_back(s);
    std::vector<struct iocb *> ptrs;
    std::vector<struct io_event> events(static_cast<size_t>(qd));
    std::vector<int> taken;
    int inflight = 0;

    auto finish = [&](int slot, long res) {
        const IoPiece &ip = in_slot[static_cast<size_t>(slot)];
        const std::string err = check_result(ip.io, res);
        free_slots.push_back(slot);
        std::lock_guard<std::mutex> lk(mu_);
        Batch &b = batches_[ip.ticket];
        if (!err.empty() && b.error.empty()) b.error = err;
        if (--b.remaining == 0) done_cv_.notify_all();
    };

    for (;;) {
        taken.clear();
        {
            std::unique_lock<std::mutex> lk(mu_);
            if (inflight == 0) {
                work_cv_.wait(lk, [&] { return stop_ || !pending_.empty(); });
                if (pending_.empty()) return; /* stopping, nothing left */
            }
            /* Without overlap_events a new set starts only when the last one is reaped. */
            const bool may_take = settings_.overlap_events || inflight == 0;
            while (may_take && !free_slots.empty() && !pending_.empty()) {
                const Piece p = pending_.front();
                pending_.pop_front();
                const Transfer &tr = batches_[p.ticket].transfers[p.transfer];
                const int s = free_slots.back();
                free_slots.pop_back();
                in_slot[static_cast<size_t>(s)] =
                    IoPiece{p.ticket, PieceIo{tr.fd, tr.buf + p.at, tr.offset + p.at, p.bytes, tr.write, &tr.path}};
                taken.push_back(s);
            }
        }
        for (int s : taken) {
            const PieceIo &io = in_slot[static_cast<size_t>(s)].io;
            struct iocb *cb = &cbs[static_cast<size_t>(s)];
            if (io.write) io_prep_pwrite(cb, io.fd, io.buf, io.bytes, static_cast<long long>(io.offset));
            else io_prep_pread(cb, io.fd, io.buf, io.bytes, static_cast<long long>(io.offset));
        }
        for (size_t i = 0; i < taken.size();) {
            const size_t n = settings_.single_submit ? 1 : taken.size() - i;
            ptrs.clear();
            for (size_t k = i; k < i + n; ++k) ptrs.push_back(&cbs[static_cast<size_t>(taken[k])]);
            const int rc = io_submit(ctx, static_cast<long>(n), ptrs.data());
            if (rc > 0) {
                i += static_cast<size_t>(rc);
                inflight += rc;
            } else if (rc != -EINTR) {
                finish(taken[i], rc == 0 ? -EAGAIN : rc); /* refused at submit */
                ++i;
            }
        }
        if (inflight == 0) continue;
        const int min_nr = settings_.overlap_events ? 1 : inflight;
        const int got = io_getevents(ctx, min_nr, qd, events.data(), nullptr);
        if (got == -EINTR) continue;
        if (got < 0) { /* the context itself failed: fail everything in flight on it */
            for (int s = 0; s < qd; ++s)
                if (std::find(free_slots.begin(), free_slots.end(), s) == free_slots.end()) finish(s, got);
            inflight = 0;
            continue;
        }
        for (int k = 0; k < got; ++k) {
            const int s = static_cast<int>(events[static_cast<size_t>(k)].obj - cbs.data());
            finish(s, static_cast<long>(events[static_cast<size_t>(k)].res));
            --inflight;
        }
    }
}

#else  /* no libaio */

bool available() { return false; }

IoEngine::IoEngine(const IoSettings &settings) : settings_(settings) {
    fail(DSZ_ERR_UNSUPPORTED, "NVMe offload needs libaio, and this build of dszero was made without it "
                              "(install libaio-dev and rebuild)");
}
IoEngine::~IoEngine() = default;
IoEngine::Ticket IoEngine::start(std::vector<Transfer>) { return 0; }
bool IoEngine::ready(Ticket) { return true; }
void IoEngine::wait(Ticket) {}
void IoEngine::shutdown() {}
void IoEngine::worker(void *) {}

#endif

}  // namespace dsz::aio
