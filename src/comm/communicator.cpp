/*
 * communicator.cpp -- the backend-independent half of communicator.h:
 * partitions, names, argument checks, the Request wait loop with its
 * timeout, and create_communicator's choice of backend.
 */
#include "comm/communicator.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "comm/backends.h"
#include "comm/mpi_runtime.h"
#include "comm/op.h"
#include "common/error.h"

namespace dsz {
namespace comm {

/* ---- element types --------------------------------------------------- */

size_t elem_size(ElemType t) {
    switch (t) {
    case ElemType::f32: case ElemType::i32: return 4;
    case ElemType::f64: case ElemType::i64: return 8;
    case ElemType::u8: return 1;
    case ElemType::f16: case ElemType::bf16: return 2;
    }
    fail(DSZ_ERR_INVALID_ARGUMENT, "unknown element type %d", static_cast<int>(t));
}

const char *elem_name(ElemType t) {
    switch (t) {
    case ElemType::f32: return "float32";
    case ElemType::f64: return "float64";
    case ElemType::i32: return "int32";
    case ElemType::i64: return "int64";
    case ElemType::u8: return "uint8";
    case ElemType::f16: return "float16";
    case ElemType::bf16: return "bfloat16";
    }
    return "unknown";
}

const char *reduce_name(ReduceOp op) {
    switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
    }
    return "unknown";
}

ElemType elem_type(DType t) {
    switch (t) {
    case DType::f32: return ElemType::f32;
    case DType::f16: return ElemType::f16;
    case DType::bf16: return ElemType::bf16;
    }
    fail(DSZ_ERR_INVALID_ARGUMENT, "unknown dtype %d", static_cast<int>(t));
}

/* ---- partitions ------------------------------------------------------ */

Partition Partition::even(size_t n, int parts) {
    if (parts < 1) fail(DSZ_ERR_INVALID_ARGUMENT, "a partition needs at least one part, got %d", parts);
    const size_t p = static_cast<size_t>(parts), base = n / p, extra = n % p;
    std::vector<size_t> counts(p);
    for (size_t r = 0; r < p; ++r) counts[r] = base + (r < extra ? 1 : 0);
    return from_counts(std::move(counts));
}

Partition Partition::from_counts(std::vector<size_t> counts) {
    if (counts.empty()) fail(DSZ_ERR_INVALID_ARGUMENT, "a partition needs at least one part");
    Partition p;
    p.offsets_.resize(counts.size());
    size_t at = 0;
    for (size_t r = 0; r < counts.size(); ++r) {
        p.offsets_[r] = at;
        at += counts[r];
    }
    p.total_ = at;
    p.counts_ = std::move(counts);
    return p;
}

/* ---- requests -------------------------------------------------------- */

namespace {

/* Spin, then yield, then sleep with a growing pause. A single-copy
 * transfer only moves while its receiver polls, and a yield that hands the
 * core to another process costs a scheduler slice (milliseconds), so waits
 * spin like MPI's own for the first 2 ms of idleness (reading the clock
 * every 64 polls), then yield until 20 ms (other ranks on an oversubscribed
 * core still run), and only then sleep, up to 1 ms a time. */
class Backoff {
public:
    void reset() { idle_ = 0; }
    /* true while the clock need not be read */
    bool spinning() const { return idle_ % 64 != 0 && !yielding_; }
    void pause() {
        using clock = std::chrono::steady_clock;
        if (idle_++ == 0) {
            since_ = clock::now();
            yielding_ = false;
            return;
        }
        if (!yielding_) {
            if (idle_ % 64 != 0 || clock::now() - since_ < std::chrono::milliseconds(2)) return;
            yielding_ = true;
        }
        const auto idle_for = clock::now() - since_;
        if (idle_for < std::chrono::milliseconds(20)) {
            sched_yield();
            return;
        }
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(idle_for).count();
        std::this_thread::sleep_for(std::chrono::microseconds(std::min<long long>(1000, us / 20)));
    }

private:
    unsigned long idle_ = 0;
    bool yielding_ = false;
    std::chrono::steady_clock::time_point since_;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Request &Request::operator=(Request &&other) noexcept {
    if (this != &other) {
        if (op_) {
            try {
                wait();
            } catch (...) {
            }
        }
        op_ = std::move(other.op_);
    }
    return *this;
}

Request::~Request() {
    if (!op_) return;
    try {
        wait();
    } catch (...) {
    }
}

bool Request::test() {
    if (!op_) return true;
    try {
        if (op_->poll() != detail::Poll::done) return false;
    } catch (...) {
        op_.reset();
        throw;
    }
    op_.reset();
    return true;
}

void Request::wait() {
    if (!op_) return;
    std::shared_ptr<detail::Op> op = std::move(op_);
    const auto t0 = std::chrono::steady_clock::now();
    struct Waiting {
        detail::Op &op;
        explicit Waiting(detail::Op &o) : op(o) { op.begin_wait(); }
        ~Waiting() { op.end_wait(); }
    } waiting(*op);
    Backoff backoff;
    for (;;) {
        detail::Poll p = op->poll();
        if (p == detail::Poll::done) return;
        if (p == detail::Poll::progressed) {
            backoff.reset();
            continue;
        }
        if (!backoff.spinning()) {
            const double waited = seconds_since(t0);
            if (waited >= op->timeout()) op->expire(waited);
        }
        backoff.pause();
    }
}

bool Request::pending() const { return op_ != nullptr; }

std::string Request::what() const { return op_ ? op_->what() : std::string(); }

void Request::wait_all(std::vector<Request> &requests) {
    std::exception_ptr first;
    for (Request &r : requests) {
        try {
            r.wait();
        } catch (...) {
            if (!first) first = std::current_exception();
        }
    }
    if (first) std::rethrow_exception(first);
}

/* ---- communicator helpers ----------------------------------------------- */

void Communicator::set_timeout(double seconds) {
    if (!(seconds > 0)) fail(DSZ_ERR_INVALID_ARGUMENT, "communicator timeout must be > 0 s, got %g", seconds);
    timeout_s_ = seconds;
}

void Communicator::check_partition(const char *op, const Partition &part) const {
    if (part.parts() != size_)
        fail(DSZ_ERR_INVALID_ARGUMENT, "%s on '%s': the partition has %d parts but the group has %d ranks",
             op, name_.c_str(), part.parts(), size_);
}

void Communicator::check_peer(const char *op, int peer) const {
    if (peer < 0 || peer >= size_)
        fail(DSZ_ERR_INVALID_ARGUMENT, "%s on '%s': rank %d is out of range [0, %d)", op,
             name_.c_str(), peer, size_);
}

void Communicator::check_tag(const char *op, int tag) const {
    if (tag < 0 || tag >= (1 << 20))
        fail(DSZ_ERR_INVALID_ARGUMENT, "%s on '%s': tag %d is out of range [0, 2^20)", op,
             name_.c_str(), tag);
}

bool overlaps(const void *a, size_t an, const void *b, size_t bn, const void *same_as) {
    if (!an || !bn || b == same_as) return false;
    const char *a0 = static_cast<const char *>(a), *b0 = static_cast<const char *>(b);
    return a0 < b0 + bn && b0 < a0 + an;
}

void check_no_overlap(const std::string &what, const void *a, size_t an, const void *b, size_t bn,
                      const void *same_as) {
    if (overlaps(a, an, b, bn, same_as))
        fail(DSZ_ERR_INVALID_ARGUMENT, "%s: the send and receive buffers overlap (only the in-place form is allowed)",
             what.c_str());
}

Request Communicator::iall_to_all(const void *send, void *recv, size_t bytes_per_rank) {
    std::vector<size_t> sizes(static_cast<size_t>(size_), bytes_per_rank);
    return iall_to_allv(send, sizes, recv, sizes);
}

std::unique_ptr<Communicator> Communicator::make_group(const std::vector<int> &ranks,
                                                       const std::string &name) {
    std::vector<char> seen(static_cast<size_t>(size_), 0);
    int key = -1;
    for (size_t i = 0; i < ranks.size(); ++i) {
        const int r = ranks[i];
        check_peer("make_group", r);
        if (seen[static_cast<size_t>(r)])
            fail(DSZ_ERR_INVALID_ARGUMENT, "make_group '%s': rank %d is listed twice", name.c_str(), r);
        seen[static_cast<size_t>(r)] = 1;
        if (r == rank_) key = static_cast<int>(i);
    }
    if (ranks.empty()) fail(DSZ_ERR_INVALID_ARGUMENT, "make_group '%s': no ranks", name.c_str());
    return split(key >= 0 ? 0 : -1, key, name);
}

/* ---- options and factory ------------------------------------------------ */

double resolve_timeout(double option_s) {
    if (option_s > 0) return option_s;
    if (const char *s = std::getenv("DSZ_COMM_TIMEOUT")) {
        char *end = nullptr;
        double v = std::strtod(s, &end);
        if (end == s || *end || !(v > 0))
            fail(DSZ_ERR_INVALID_ARGUMENT, "DSZ_COMM_TIMEOUT='%s' is not a positive number of seconds", s);
        return v;
    }
    return 300.0;
}

size_t resolve_chunk_bytes(size_t option_bytes) {
    size_t v = option_bytes;
    if (v == 0) {
        if (const char *s = std::getenv("DSZ_COMM_CHUNK_BYTES")) {
            char *end = nullptr;
            unsigned long long x = std::strtoull(s, &end, 10);
            if (end == s || *end)
                fail(DSZ_ERR_INVALID_ARGUMENT, "DSZ_COMM_CHUNK_BYTES='%s' is not a byte count", s);
            v = static_cast<size_t>(x);
        }
    }
    if (v == 0) v = size_t(1) << 20;
    if (v < 4096 || v > (size_t(1) << 30))
        fail(DSZ_ERR_INVALID_ARGUMENT, "comm chunk size %zu is outside [4 KiB, 1 GiB]", v);
    return v & ~size_t(63);
}

namespace {

Backend backend_from_env(Backend b) {
    const char *s = std::getenv("DSZ_COMM_BACKEND");
    if (b != Backend::automatic || !s || !*s) return b;
    if (!std::strcmp(s, "local")) return Backend::local;
    if (!std::strcmp(s, "mpi")) return Backend::mpi;
    if (!std::strcmp(s, "auto")) return Backend::automatic;
    fail(DSZ_ERR_INVALID_ARGUMENT, "DSZ_COMM_BACKEND='%s': expected local, mpi or auto", s);
}

}  // namespace

bool mpi_compiled() {
#ifdef DSZ_HAVE_MPI
    return true;
#else
    return false;
#endif
}

std::string background_progress_missing(const Communicator &c) {
#ifdef DSZ_HAVE_MPI
    if (c.size() > 1 && std::string(c.backend()) == "mpi") return mpi_progress_missing();
#else
    (void)c;
#endif
    return "";
}

std::unique_ptr<Communicator> create_communicator(const CommOptions &options) {
    const LauncherInfo launcher = detect_launcher();
    Backend b = backend_from_env(options.backend);
    if (b == Backend::automatic) {
        if (options.mpi_comm) b = Backend::mpi;
        else if (mpi_compiled() && mpi_is_initialized()) b = Backend::mpi;
        else if (launcher.launched && launcher.world_size != 1) b = Backend::mpi;
        else b = Backend::local;
    }
    if (b == Backend::local) {
        if (options.mpi_comm)
            fail(DSZ_ERR_INVALID_ARGUMENT, "an MPI communicator was handed in but the local backend was chosen");
        if (options.world_size > 1)
            fail(DSZ_ERR_INVALID_ARGUMENT,
                 "world_size %d was requested but no launcher started this process "
                 "(run it under mpirun or srun, or hand in an MPI communicator)",
                 options.world_size);
        if (options.rank > 0)
            fail(DSZ_ERR_INVALID_ARGUMENT, "rank %d was requested but this process runs alone", options.rank);
        return make_local_communicator(options.name, resolve_timeout(options.timeout_s));
    }
    if (!mpi_compiled())
        fail(DSZ_ERR_UNSUPPORTED,
             "this process was started by %s with %d ranks (or asked for MPI) but this build of "
             "dszero has no MPI backend",
             launcher.source.empty() ? "no launcher" : launcher.source.c_str(), launcher.world_size);
    return make_mpi_communicator(options, launcher);
}

#ifndef DSZ_HAVE_MPI
bool mpi_is_initialized() { return false; }
std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions &, const LauncherInfo &) {
    fail(DSZ_ERR_UNSUPPORTED, "this build of dszero has no MPI backend");
}
#endif

}  // namespace comm
}  // namespace dsz
