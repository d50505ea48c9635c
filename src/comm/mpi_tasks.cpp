/* mpi_tasks.cpp -- the MPI backend's collective algorithms (see mpi_tasks.h). */
#ifdef DSZ_HAVE_MPI

#include "comm/mpi_tasks.h"

#include <cstdint>
#include <cstring>

#include "comm/copy.h"
#include "comm/reduce.h"
#include "common/error.h"

namespace dsz {
namespace comm {
namespace {

/* All-reduces up to this many bytes received per rank take one round. */
constexpr size_t kExchangeBytes = size_t(64) << 10;
/* Staging blocks per peer for reductions: one being reduced, one arriving. */
constexpr size_t kReduceDepth = 2;
/* Direct transfers (gather, all-to-all) need no staging: every message is
 * posted at once, at most 1 GiB each (MPI counts are ints). A window of
 * smaller chunks measured up to 30% slower with Open MPI's single-copy
 * (CMA) transport: each chunk then waits for the previous one's ack. */
constexpr size_t kDirectChunk = size_t(1) << 30;
constexpr size_t kDirectWindow = SIZE_MAX;
/* All-gathers copy this rank's own slice during the exchange up to this
 * size (it stays in cache), after it above. */
constexpr size_t kOverlapCopyBytes = size_t(1) << 20;
/* Broadcast forwards chunk by chunk down its tree. */
constexpr size_t kBroadcastWindow = 16;

class ReduceTask : public MpiTask {
public:
    ReduceTask(std::shared_ptr<MpiCore> core, OpLabel label, const void *send,
               void *out, const Partition &part, ElemType type, ReduceOp op, bool all_reduce)
        : MpiTask(std::move(core), std::move(label), true), in_(static_cast<const char *>(send)),
          out_(static_cast<char *>(out)), part_(part), type_(type), op_(op), all_reduce_(all_reduce) {}

private:
    void setup() override {
        const int W = core_->size, me = core_->rank;
        es_ = elem_size(type_);
        celems_ = core_->chunk_bytes / es_;
        const size_t cb = celems_ * es_;
        in_place_ = all_reduce_ && in_ == out_;
        mine_ = part_.count(me);
        nmine_ = (mine_ + celems_ - 1) / celems_;
        own_ = in_ + part_.offset(me) * es_;
        slice_out_ = all_reduce_ ? out_ + part_.offset(me) * es_ : out_;
        const int tag1 = core_->tag(seq(), all_reduce_ ? kTagAllReduce : kTagReduceScatter);
        const int tag2 = core_->tag(seq(), kTagAllReduceGather);
        peers_.assign(static_cast<size_t>(W), Peer());
        srcs_.resize(static_cast<size_t>(W));
        const size_t total = part_.total() * es_;
        if (all_reduce_ && W > 1 && total <= std::min(cb, kExchangeBytes / static_cast<size_t>(W - 1))) {
            /* Small: one round. Every rank sends its whole buffer to every
             * rank and reduces all of it, in the same rank order. */
            exchange_ = true;
            nmine_ = 1;
            for (int p = 0; p < W; ++p) {
                if (p == me) continue;
                Peer &q = peers_[static_cast<size_t>(p)];
                q.s1 = add_stream(p, true, core_->coll, tag1, const_cast<char *>(in_), total, cb, 1);
                q.r1 = add_stream(p, false, core_->coll, tag1, nullptr, total, cb, 1);
                q.stage.assign(1, core_->pool.acquire());
            }
            return;
        }
        for (int p = 0; p < W; ++p) {
            if (p == me) continue;
            Peer &q = peers_[static_cast<size_t>(p)];
            const size_t theirs = part_.count(p) * es_;
            q.s1 = add_stream(p, true, core_->coll, tag1, const_cast<char *>(in_) + part_.offset(p) * es_,
                              theirs, cb, kDirectWindow);
            q.r1 = add_stream(p, false, core_->coll, tag1, nullptr, mine_ * es_, cb, kReduceDepth);
            if (all_reduce_) {
                q.s2 = add_stream(p, true, core_->coll, tag2, slice_out_, mine_ * es_, cb, kDirectWindow,
                                  false, 1);
                q.r2 = add_stream(p, false, core_->coll, tag2, out_ + part_.offset(p) * es_, theirs, cb,
                                  kDirectWindow, false, 1);
            }
            if (nmine_ > 0) {
                q.stage.resize(kReduceDepth);
                for (char *&b : q.stage) b = core_->pool.acquire();
            }
        }
        set_limits();
    }

    char *chunk_buffer(int stream, size_t k) override {
        const Stream &s = streams_[static_cast<size_t>(stream)];
        return peers_[static_cast<size_t>(s.peer)].stage[k % kReduceDepth];
    }

    bool work() override {
        if (exchange_) return work_exchange();
        const int W = core_->size, me = core_->rank;
        bool did = false;
        while (reduced_ < nmine_) {
            for (int p = 0; p < W; ++p)
                if (p != me && !streams_[static_cast<size_t>(peers_[static_cast<size_t>(p)].r1)].done[reduced_])
                    goto blocked;
            {
                const size_t first = reduced_ * celems_;
                const size_t n = std::min(celems_, mine_ - first);
                for (int p = 0; p < W; ++p)
                    srcs_[static_cast<size_t>(p)] =
                        p == me ? own_ + first * es_ : peers_[static_cast<size_t>(p)].stage[reduced_ % kReduceDepth];
                reduce_in_order(type_, op_, slice_out_ + first * es_, srcs_.data(), W, n);
                ++reduced_;
                did = true;
            }
        }
    blocked:
        set_limits();
        return did;
    }

    bool work_exchange() {
        if (reduced_ == 1) return false;
        const int W = core_->size, me = core_->rank;
        for (int p = 0; p < W; ++p) {
            if (p == me) continue;
            const Peer &q = peers_[static_cast<size_t>(p)];
            if (!streams_[static_cast<size_t>(q.r1)].complete()) return false;
            /* in place, the input may be overwritten only once it is sent */
            if (in_place_ && !streams_[static_cast<size_t>(q.s1)].complete()) return false;
        }
        for (int p = 0; p < W; ++p)
            srcs_[static_cast<size_t>(p)] = p == me ? in_ : peers_[static_cast<size_t>(p)].stage[0];
        reduce_in_order(type_, op_, out_, srcs_.data(), W, part_.total());
        reduced_ = 1;
        return true;
    }

    void set_limits() {
        for (size_t p = 0; p < peers_.size(); ++p) {
            const Peer &q = peers_[p];
            if (q.r1 < 0) continue;
            streams_[static_cast<size_t>(q.r1)].limit = reduced_ + kReduceDepth;
            if (!all_reduce_) continue;
            streams_[static_cast<size_t>(q.s2)].limit = reduced_;
            /* In place, slice p may be overwritten only once it has been sent. */
            streams_[static_cast<size_t>(q.r2)].limit =
                in_place_ ? streams_[static_cast<size_t>(q.s1)].prefix : SIZE_MAX;
        }
    }

    bool local_done() const override { return reduced_ == nmine_; }

    void release() override {
        for (Peer &q : peers_) {
            for (char *b : q.stage) core_->pool.release(b);
            q.stage.clear();
        }
    }

    struct Peer {
        int s1 = -1, r1 = -1, s2 = -1, r2 = -1;
        std::vector<char *> stage;
    };

    const char *in_;
    char *out_;
    Partition part_;
    ElemType type_;
    ReduceOp op_;
    bool all_reduce_;
    bool in_place_ = false, exchange_ = false;
    size_t es_ = 1, celems_ = 1, mine_ = 0, nmine_ = 0, reduced_ = 0;
    const char *own_ = nullptr;
    char *slice_out_ = nullptr;
    std::vector<Peer> peers_;
    std::vector<const void *> srcs_;
};

class GatherTask : public MpiTask {
public:
    GatherTask(std::shared_ptr<MpiCore> core, OpLabel label, const void *send,
               void *recv, const Partition &part, size_t elem_bytes)
        : MpiTask(std::move(core), std::move(label), true), send_(static_cast<const char *>(send)),
          recv_(static_cast<char *>(recv)), part_(part), eb_(elem_bytes) {}

private:
    void setup() override {
        const int W = core_->size, me = core_->rank;
        const size_t mine = part_.count(me) * eb_;
        const int tag = core_->tag(seq(), kTagAllGather);
        const size_t chunk = kDirectChunk;
        for (int p = 0; p < W; ++p) {
            if (p == me) continue;
            add_stream(p, false, core_->coll, tag, recv_ + part_.offset(p) * eb_, part_.count(p) * eb_,
                       chunk, kDirectWindow);
            add_stream(p, true, core_->coll, tag, const_cast<char *>(send_), mine, chunk, kDirectWindow);
        }
        copied_ = mine == 0 || recv_ + part_.offset(me) * eb_ == send_;
    }

    /* This rank's own slice: a small one is copied while the messages
     * travel; a large one once the exchange is over, as Open MPI does:
     * copying while the peers pull from this rank measured slower (the two
     * compete for memory bandwidth). */
    bool work() override {
        if (copied_) return false;
        const int me = core_->rank;
        if (part_.count(me) * eb_ > kOverlapCopyBytes)
            for (const Stream &s : streams_)
                if (!s.complete()) return false;
        copy_bytes(recv_ + part_.offset(me) * eb_, send_, part_.count(me) * eb_);
        copied_ = true;
        return true;
    }
    bool local_done() const override { return copied_; }

    const char *send_;
    char *recv_;
    Partition part_;
    size_t eb_;
    bool copied_ = false;
};

class BroadcastTask : public MpiTask {
public:
    BroadcastTask(std::shared_ptr<MpiCore> core, OpLabel label, void *buf,
                  size_t bytes, int root)
        : MpiTask(std::move(core), std::move(label), true), buf_(static_cast<char *>(buf)),
          bytes_(bytes), root_(root) {}

private:
    void setup() override {
        const int W = core_->size, me = core_->rank;
        if (W == 1 || bytes_ == 0) return;
        const int tag = core_->tag(seq(), kTagBroadcast);
        const int vr = (me - root_ + W) % W;
        const int low = vr == 0 ? 0 : (vr & -vr);
        if (vr != 0) {
            const int parent = (vr - low + root_) % W;
            from_parent_ = add_stream(parent, false, core_->coll, tag, buf_, bytes_, core_->chunk_bytes,
                                      kBroadcastWindow);
        }
        int top = 1;
        while (top < W) top <<= 1;
        for (int m = (vr == 0 ? top : low) >> 1; m >= 1; m >>= 1) {
            if (vr + m >= W) continue;
            to_children_.push_back(add_stream((vr + m + root_) % W, true, core_->coll, tag, buf_, bytes_,
                                              core_->chunk_bytes, kBroadcastWindow, false, 1));
        }
        work();
    }

    bool work() override {
        if (from_parent_ < 0) return false;
        const size_t have = streams_[static_cast<size_t>(from_parent_)].prefix;
        for (int s : to_children_) streams_[static_cast<size_t>(s)].limit = have;
        return false;
    }

    char *buf_;
    size_t bytes_;
    int root_;
    int from_parent_ = -1;
    std::vector<int> to_children_;
};

class AllToAllTask : public MpiTask {
public:
    AllToAllTask(std::shared_ptr<MpiCore> core, OpLabel label, const void *send,
                 const std::vector<size_t> &send_bytes, void *recv, const std::vector<size_t> &recv_bytes)
        : MpiTask(std::move(core), std::move(label), true), send_(static_cast<const char *>(send)),
          recv_(static_cast<char *>(recv)), sb_(send_bytes), rb_(recv_bytes) {}

private:
    void setup() override {
        const int W = core_->size, me = core_->rank;
        const int tag = core_->tag(seq(), kTagAllToAll);
        const size_t chunk = kDirectChunk;
        size_t so = 0, ro = 0;
        for (int p = 0; p < W; ++p) {
            const size_t s = sb_[static_cast<size_t>(p)], r = rb_[static_cast<size_t>(p)];
            if (p == me) {
                if (s) copy_bytes(recv_ + ro, send_ + so, s);
            } else {
                add_stream(p, true, core_->coll, tag, const_cast<char *>(send_) + so, s, chunk, kDirectWindow);
                add_stream(p, false, core_->coll, tag, recv_ + ro, r, chunk, kDirectWindow);
            }
            so += s;
            ro += r;
        }
    }

    const char *send_;
    char *recv_;
    std::vector<size_t> sb_, rb_;
};

char g_token = 0;

class BarrierTask : public MpiTask {
public:
    BarrierTask(std::shared_ptr<MpiCore> core, OpLabel label)
        : MpiTask(std::move(core), std::move(label), true) {}

private:
    void setup() override {
        const int W = core_->size, me = core_->rank;
        const int tag = core_->tag(seq(), kTagBarrier);
        int round = 0;
        for (int d = 1; d < W; d <<= 1, ++round) {
            sends_.push_back(add_stream((me + d) % W, true, core_->coll, tag, &g_token, 0, 1, 1, true, round));
            recvs_.push_back(add_stream((me - d + W) % W, false, core_->coll, tag, &g_token, 0, 1, 1, true, round));
        }
        work();
    }

    /* Round r may send only once round r-1 has heard from its peer. */
    bool work() override {
        for (size_t r = 1; r < sends_.size(); ++r)
            streams_[static_cast<size_t>(sends_[r])].limit =
                streams_[static_cast<size_t>(recvs_[r - 1])].completed;
        return false;
    }

    std::vector<int> sends_, recvs_;
};

class P2PTask : public MpiTask {
public:
    P2PTask(std::shared_ptr<MpiCore> core, OpLabel label, bool send, void *buf,
            size_t bytes, int peer, int tag)
        : MpiTask(std::move(core), std::move(label), false), send_(send), buf_(static_cast<char *>(buf)),
          bytes_(bytes), peer_(peer), tag_(tag) {}

private:
    /* All chunks are posted at once, so that two messages with the same
     * tag cannot interleave their chunks. */
    void setup() override {
        add_stream(peer_, send_, core_->p2p, tag_, bytes_ ? buf_ : &g_token, bytes_, size_t(1) << 30,
                   SIZE_MAX, bytes_ == 0);
    }

    bool send_;
    char *buf_;
    size_t bytes_;
    int peer_, tag_;
};

}  // namespace

TaskPtr make_reduce_task(std::shared_ptr<MpiCore> core, OpLabel label,
                         const void *send, void *out, const Partition &part, ElemType type,
                         ReduceOp op, bool all_reduce) {
    return std::make_shared<ReduceTask>(std::move(core), std::move(label), send, out, part, type, op,
                                        all_reduce);
}

TaskPtr make_gather_task(std::shared_ptr<MpiCore> core, OpLabel label,
                         const void *send, void *recv, const Partition &part, size_t elem_bytes) {
    return std::make_shared<GatherTask>(std::move(core), std::move(label), send, recv, part, elem_bytes);
}

TaskPtr make_broadcast_task(std::shared_ptr<MpiCore> core, OpLabel label,
                            void *buf, size_t bytes, int root) {
    return std::make_shared<BroadcastTask>(std::move(core), std::move(label), buf, bytes, root);
}

TaskPtr make_all_to_all_task(std::shared_ptr<MpiCore> core, OpLabel label,
                             const void *send, const std::vector<size_t> &send_bytes, void *recv,
                             const std::vector<size_t> &recv_bytes) {
    return std::make_shared<AllToAllTask>(std::move(core), std::move(label), send, send_bytes, recv,
                                          recv_bytes);
}

TaskPtr make_barrier_task(std::shared_ptr<MpiCore> core, OpLabel label) {
    return std::make_shared<BarrierTask>(std::move(core), std::move(label));
}

TaskPtr make_p2p_task(std::shared_ptr<MpiCore> core, OpLabel label, bool send,
                      void *buf, size_t bytes, int peer, int tag) {
    return std::make_shared<P2PTask>(std::move(core), std::move(label), send, buf, bytes, peer, tag);
}

}  // namespace comm
}  // namespace dsz

#endif  // DSZ_HAVE_MPI
