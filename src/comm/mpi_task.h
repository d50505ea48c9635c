/*
 * mpi_task.h -- one MPI collective in flight, as a set of chunked streams.
 *
 * Every dszero collective is built from non-blocking point-to-point
 * messages on the communicator's own duplicated MPI_Comm: a Stream is the
 * data one rank sends to (or receives from) one peer for one operation, cut
 * into chunks, with a window of chunks in flight and a limit that the task's
 * local work raises (a reduced chunk may be sent on; a staging slot is free
 * again). MpiTask posts, tests (MPI_Testsome), checks received sizes and
 * knows, when a wait times out, which peers it is still waiting for.
 *
 * Tags carry the operation's kind and sequence number, so messages of
 * different operations never match each other; when ranks diverge, a
 * probe of the peer's first pending message tells which operation it is in.
 */
#pragma once

#ifdef DSZ_HAVE_MPI

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/staging.h"
#include "dszero.h"

namespace dsz {
namespace comm {

enum TagKind : int {
    kTagAllReduce = 0,
    kTagAllReduceGather = 1,
    kTagReduceScatter = 2,
    kTagAllGather = 3,
    kTagBroadcast = 4,
    kTagAllToAll = 5,
    kTagBarrier = 6,
};
constexpr int kTagKindBits = 3;

/* What a communicator and all its tasks share; outlives both. */
struct MpiCore {
    MpiCore(size_t chunk_bytes) : chunk_bytes(chunk_bytes), pool(chunk_bytes) {}
    ~MpiCore();

    MPI_Comm coll = MPI_COMM_NULL; /* collectives: tags from (seq, kind) */
    MPI_Comm p2p = MPI_COMM_NULL;  /* send/recv: the user's tags */
    int rank = 0, size = 1;
    std::string name;
    std::vector<int> world_ranks; /* rank in MPI_COMM_WORLD of each member */
    size_t chunk_bytes;
    StagingPool pool;
    uint64_t seq_mask = 0;
    bool failed = false;
    std::string failure;

    int tag(uint64_t seq, int kind) const {
        return static_cast<int>(((seq & seq_mask) << kTagKindBits) | static_cast<uint64_t>(kind));
    }
    /* "reduce_scatter #5", decoding a tag relative to our own sequence. */
    std::string tag_name(int tag, uint64_t our_seq) const;
    /* "rank 1" or "rank 1 (world rank 3)". */
    std::string peer_name(int r) const;
};

/* Names an operation in messages. Formatting costs more than a small
 * all-reduce, so it happens only when a message is needed. */
struct OpLabel {
    enum Kind : uint8_t { plain, reduce, gather, broadcast, all_to_all, custom, send, recv };
    Kind kind = plain;
    const char *op = "";
    uint64_t seq = 0;
    size_t a = 0, b = 0;   /* counts or byte sizes */
    int peer = 0, tag = 0; /* broadcast root; send/recv peer and tag */
    const char *type = "", *reduction = "";
    std::string text;      /* kind custom: the detail as is */
    std::string str(const MpiCore &core) const;
};

class MpiTask {
public:
    MpiTask(std::shared_ptr<MpiCore> core, OpLabel label, bool collective)
        : core_(std::move(core)), label_(std::move(label)), collective_(collective) {}
    virtual ~MpiTask();
    MpiTask(const MpiTask &) = delete;
    MpiTask &operator=(const MpiTask &) = delete;

    /* All under the runtime lock. */
    void begin();
    bool advance(); /* true when something completed */
    void abandon(const std::string &why);
    std::string waiting_for() const;

    bool finished() const { return finished_; }
    bool failed() const { return status_ != DSZ_OK; }
    dsz_status status() const { return status_; }
    const std::string &error() const { return error_; }
    const MpiCore *core() const { return core_.get(); }
    uint64_t seq() const { return label_.seq; }
    bool is_collective() const { return collective_; }
    std::string what() const { return label_.str(*core_); }

protected:
    struct Stream {
        int peer;
        bool send;
        MPI_Comm comm;
        int tag;
        char *base;       /* nullptr: chunks go to chunk_buffer() */
        size_t bytes, chunk, nchunks;
        size_t window;    /* chunks in flight at most */
        size_t limit;     /* chunks that may be posted so far */
        int stage;        /* what must happen first: diagnostics blame the earliest */
        size_t posted = 0, completed = 0, prefix = 0;
        std::vector<uint8_t> done;
        bool complete() const { return completed == nchunks; }
        size_t chunk_len(size_t k) const { return bytes == 0 ? 0 : std::min(chunk, bytes - k * chunk); }
    };

    /* nchunks = ceil(bytes / chunk); a token stream is one empty message. */
    int add_stream(int peer, bool send, MPI_Comm comm, int tag, char *base, size_t bytes,
                   size_t chunk, size_t window, bool token = false, int stage = 0);
    virtual void setup() = 0;
    virtual char *chunk_buffer(int stream, size_t k);
    /* Local work between tests: reduce what arrived, raise limits. */
    virtual bool work() { return false; }
    virtual bool local_done() const { return true; }
    virtual void release() {}

    void fail_task(dsz_status status, const std::string &message);

    std::shared_ptr<MpiCore> core_;
    std::vector<Stream> streams_;

private:
    void pump();
    void post(int s);
    void cancel_pending();
    void finish();
    bool maybe_finish();

    OpLabel label_;
    bool collective_;
    bool finished_ = false;
    dsz_status status_ = DSZ_OK;
    std::string error_;

    struct Slot {
        int stream;
        size_t chunk;
    };
    std::vector<MPI_Request> reqs_;
    std::vector<Slot> slots_;
    std::vector<int> free_slots_;
    std::vector<int> indices_;
    std::vector<MPI_Status> statuses_;
};

}  // namespace comm
}  // namespace dsz

#endif  // DSZ_HAVE_MPI
