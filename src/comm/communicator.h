/*
 * communicator.h -- how dszero ranks talk to each other.
 *
 * The ZeRO engine, the pipeline executor and MoE only ever see this
 * interface; the backends (local: one process, no MPI; mpi: Open MPI et al.)
 * live behind create_communicator(). Every collective is non-blocking at its
 * core and returns a Request; the blocking calls are thin wrappers.
 *
 * Contracts the engine relies on (docs/comm.md has the long form):
 *   - Collective calls must be made by every rank of the communicator in the
 *     same order. Each carries a sequence number (per communicator, counting
 *     from 0) and its operation name; errors name both, plus rank and size.
 *   - Reductions are computed element by element in rank order
 *     ((x0 op x1) op x2) ... op x(W-1), whatever the chunking, so all_reduce
 *     gives bitwise the same result as reduce_scatter + all_gather, on any
 *     partition, and at a fixed world size the result never depends on
 *     timing or message sizes.
 *   - A wait that does not complete within timeout() seconds throws
 *     dsz::Error(DSZ_ERR_TIMEOUT) naming the operation; the communicator is
 *     then failed for good and every later call on it throws DSZ_ERR_COMM.
 *   - Buffers passed to a non-blocking call must stay valid and untouched
 *     (the receive side) until its Request completes.
 *   - One thread at a time issues calls on a given communicator; a Request
 *     may be waited on from any thread.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace dsz {
namespace comm {

/* Element types the reductions understand. f16/bf16 sums round after every
 * addition (as NCCL does), still in rank order. */
enum class ElemType : uint8_t { f32, f64, i32, i64, u8, f16, bf16 };
enum class ReduceOp : uint8_t { sum, max, min };

size_t elem_size(ElemType t);
const char *elem_name(ElemType t);
const char *reduce_name(ReduceOp op);
ElemType elem_type(DType t);

template <class T> struct ElemTypeOf;
template <> struct ElemTypeOf<float> { static constexpr ElemType value = ElemType::f32; };
template <> struct ElemTypeOf<double> { static constexpr ElemType value = ElemType::f64; };
template <> struct ElemTypeOf<int32_t> { static constexpr ElemType value = ElemType::i32; };
template <> struct ElemTypeOf<int64_t> { static constexpr ElemType value = ElemType::i64; };
template <> struct ElemTypeOf<uint8_t> { static constexpr ElemType value = ElemType::u8; };

/* How a flat buffer of total() elements is cut into one contiguous slice per
 * rank, in rank order: slice r is [offset(r), offset(r) + count(r)).
 * even(n, W) gives every rank n / W elements and the first n % W ranks one
 * more; the engine pads its flat buffers to a multiple of 2*W, so its slices
 * are equal. from_counts() takes any counts (zero allowed). */
class Partition {
public:
    Partition() = default;
    static Partition even(size_t n, int parts);
    static Partition from_counts(std::vector<size_t> counts);

    int parts() const { return static_cast<int>(counts_.size()); }
    size_t count(int r) const { return counts_[static_cast<size_t>(r)]; }
    size_t offset(int r) const { return offsets_[static_cast<size_t>(r)]; }
    size_t total() const { return total_; }
    const std::vector<size_t> &counts() const { return counts_; }
    bool operator==(const Partition &o) const { return counts_ == o.counts_; }

private:
    std::vector<size_t> counts_, offsets_;
    size_t total_ = 0;
};

namespace detail {
class Op;
}

/* The handle of one non-blocking operation. Move-only. An empty Request
 * (default-constructed) is complete. Destroying a pending Request waits for
 * it (a failure there is swallowed; the communicator stays failed). */
class Request {
public:
    Request() = default;
    explicit Request(std::shared_ptr<detail::Op> op) : op_(std::move(op)) {}
    Request(Request &&) noexcept = default;
    Request &operator=(Request &&other) noexcept;
    Request(const Request &) = delete;
    Request &operator=(const Request &) = delete;
    ~Request();

    /* Drives communication one step without blocking. true once complete;
     * throws the operation's error (DSZ_ERR_COMM) if it failed. */
    bool test();
    /* Blocks until complete. DSZ_ERR_TIMEOUT after the communicator's
     * timeout (counted from the start of this wait), DSZ_ERR_COMM on failure. */
    void wait();
    bool pending() const;
    /* "all_reduce #12 (1024 x float32, sum) on 'world' [rank 0 of 2]". */
    std::string what() const;

    /* Waits for all, in order; the first error is thrown after all others
     * were waited for (or abandoned with their communicator). */
    static void wait_all(std::vector<Request> &requests);

private:
    std::shared_ptr<detail::Op> op_;
};

class Communicator;

enum class Backend : uint8_t { automatic, local, mpi };

/* How create_communicator picks and configures a backend. */
struct CommOptions {
    /* automatic: MPI when the host handed in a communicator, when MPI is
     * already initialised, or when a launcher started more than one rank
     * (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_SIZE, srun's SLURM_STEP_NUM_TASKS);
     * else local. DSZ_COMM_BACKEND=local|mpi|auto overrides. */
    Backend backend = Backend::automatic;
    /* A host-owned MPI communicator, as a pointer to an MPI_Comm. It is
     * duplicated (collective over it); the host keeps ownership and must
     * have initialised MPI. dszero then never initialises or finalises MPI. */
    void *mpi_comm = nullptr;
    /* What the host expects (dsz_init_options): 0 / -1 accept whatever the
     * launcher says; anything else must match it. */
    int world_size = 0;
    int rank = -1;
    /* Seconds a wait may block. <= 0: DSZ_COMM_TIMEOUT from the environment,
     * else 300. */
    double timeout_s = 0;
    /* Pipelining granularity of the MPI collectives. 0: DSZ_COMM_CHUNK_BYTES
     * from the environment, else 1 MiB. */
    size_t chunk_bytes = 0;
    std::string name = "world";
};

/* Creates the world communicator. Collective over the launched ranks when
 * MPI is used. Throws dsz::Error: DSZ_ERR_INVALID_ARGUMENT when the expected
 * world size / rank disagree with the launcher, DSZ_ERR_UNSUPPORTED when MPI
 * is needed but this build has none, DSZ_ERR_COMM when MPI fails. */
std::unique_ptr<Communicator> create_communicator(const CommOptions &options = CommOptions());

/* true when this build has the MPI backend (DSZ_FEATURE_MPI). */
bool mpi_compiled();

/* Why communication of `c` advances only while a thread is inside dszero
 * (an MPI initialised by the host below MPI_THREAD_SERIALIZED, or
 * DSZ_COMM_PROGRESS_THREAD=0), or "" when it also advances while the host
 * computes (or there is nothing to advance: one rank, local backend). */
std::string background_progress_missing(const Communicator &c);

class Communicator {
public:
    virtual ~Communicator() = default;
    Communicator(const Communicator &) = delete;
    Communicator &operator=(const Communicator &) = delete;

    int rank() const { return rank_; }
    int size() const { return size_; }
    const std::string &name() const { return name_; }
    virtual const char *backend() const = 0;

    double timeout() const { return timeout_s_; }
    void set_timeout(double seconds);
    /* The sequence number the next collective on this communicator gets. */
    uint64_t next_sequence() const { return seq_; }
    /* true once a timeout or a communication error broke this communicator. */
    virtual bool failed() const { return false; }

    /* ---- non-blocking collectives (all ranks, same order) ------------------
     * all_reduce: count elements; send == recv is in place.
     * reduce_scatter: send holds part.total() elements, recv receives this
     *   rank's part.count(rank()) reduced elements. part.parts() == size().
     * all_gather: send holds this rank's part.count(rank()) elements of
     *   elem_bytes each (it may be recv + part.offset(rank()) * elem_bytes:
     *   in place); recv receives all part.total() elements.
     * broadcast: bytes from root's buf into everybody's buf.
     * all_to_allv: send is send_bytes[r] bytes for each rank r, concatenated
     *   in rank order; recv gets recv_bytes[r] bytes from each rank r,
     *   concatenated in rank order. Sizes must agree pairwise. */
    virtual Request iall_reduce(const void *send, void *recv, size_t count, ElemType type,
                                ReduceOp op) = 0;
    virtual Request ireduce_scatter(const void *send, void *recv, const Partition &part,
                                    ElemType type, ReduceOp op) = 0;
    virtual Request iall_gather(const void *send, void *recv, const Partition &part,
                                size_t elem_bytes = 1) = 0;
    virtual Request ibroadcast(void *buf, size_t bytes, int root) = 0;
    virtual Request iall_to_allv(const void *send, const std::vector<size_t> &send_bytes,
                                 void *recv, const std::vector<size_t> &recv_bytes) = 0;
    Request iall_to_all(const void *send, void *recv, size_t bytes_per_rank);
    virtual Request ibarrier() = 0;

    /* ---- point to point (not collective) ------------------------------------
     * Messages between a pair with the same tag arrive in the order sent.
     * tag in [0, 2^20). The receive size must equal the send size. */
    virtual Request isend(const void *buf, size_t bytes, int dst, int tag) = 0;
    virtual Request irecv(void *buf, size_t bytes, int src, int tag) = 0;

    /* ---- blocking wrappers ---------------------------------------------- */
    void all_reduce(const void *send, void *recv, size_t count, ElemType type, ReduceOp op) {
        iall_reduce(send, recv, count, type, op).wait();
    }
    template <class T> void all_reduce(T *buf, size_t count, ReduceOp op) {
        all_reduce(buf, buf, count, ElemTypeOf<T>::value, op);
    }
    template <class T> T all_reduce_value(T value, ReduceOp op) {
        all_reduce(&value, 1, op);
        return value;
    }
    void reduce_scatter(const void *send, void *recv, const Partition &part, ElemType type,
                        ReduceOp op) {
        ireduce_scatter(send, recv, part, type, op).wait();
    }
    void all_gather(const void *send, void *recv, const Partition &part, size_t elem_bytes = 1) {
        iall_gather(send, recv, part, elem_bytes).wait();
    }
    void broadcast(void *buf, size_t bytes, int root) { ibroadcast(buf, bytes, root).wait(); }
    void all_to_all(const void *send, void *recv, size_t bytes_per_rank) {
        iall_to_all(send, recv, bytes_per_rank).wait();
    }
    void all_to_allv(const void *send, const std::vector<size_t> &send_bytes, void *recv,
                     const std::vector<size_t> &recv_bytes) {
        iall_to_allv(send, send_bytes, recv, recv_bytes).wait();
    }
    void barrier() { ibarrier().wait(); }
    void send(const void *buf, size_t bytes, int dst, int tag) { isend(buf, bytes, dst, tag).wait(); }
    void recv(void *buf, size_t bytes, int src, int tag) { irecv(buf, bytes, src, tag).wait(); }

    /* ---- groups (all ranks of this communicator, same order) --------------
     * split: ranks with the same color >= 0 form a new communicator, ordered
     * by (key, rank); color < 0 gives nullptr. It inherits the timeout and
     * chunk size. make_group: the listed ranks (in that order) form a group;
     * every rank of this communicator must call it with the same list. */
    virtual std::unique_ptr<Communicator> split(int color, int key, const std::string &name) = 0;
    std::unique_ptr<Communicator> make_group(const std::vector<int> &ranks,
                                             const std::string &name);

protected:
    Communicator(int rank, int size, std::string name, double timeout_s)
        : rank_(rank), size_(size), name_(std::move(name)), timeout_s_(timeout_s) {}

    /* Takes the next sequence number. */
    uint64_t take_sequence() { return seq_++; }
    /* Argument checks shared by the backends (throw DSZ_ERR_INVALID_ARGUMENT). */
    void check_partition(const char *op, const Partition &part) const;
    void check_peer(const char *op, int peer) const;
    void check_tag(const char *op, int tag) const;

private:
    int rank_, size_;
    std::string name_;
    double timeout_s_;
    uint64_t seq_ = 0;
};

/* Resolves the timeout and chunk size the way CommOptions documents. */
double resolve_timeout(double option_s);
size_t resolve_chunk_bytes(size_t option_bytes);

}  // namespace comm
}  // namespace dsz
