/*
 * local_comm.cpp -- the single-process backend: one rank, no MPI at all.
 *
 * Every collective of a group of one is a copy (or nothing, in place) and
 * completes at once. Point-to-point to self goes through a small mailbox so
 * that code written for W ranks (a pipeline of one stage, say) still runs.
 * Argument checks and sequence numbers behave as in the MPI backend so that
 * errors read the same.
 */
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>

#include "comm/backends.h"
#include "comm/copy.h"
#include "comm/op.h"
#include "common/error.h"

namespace dsz {
namespace comm {
namespace {

struct Mailbox;

class LocalRecv : public detail::Op {
public:
    LocalRecv(std::string what, double timeout_s, std::shared_ptr<Mailbox> box, void *buf,
              size_t bytes, int tag)
        : Op(timeout_s), what_(std::move(what)), box_(std::move(box)), buf_(buf), bytes_(bytes), tag_(tag) {}
    detail::Poll poll() override;
    void expire(double waited_s) override;
    std::string what() const override { return what_; }

    std::string what_;
    std::shared_ptr<Mailbox> box_;
    void *buf_;
    size_t bytes_;
    int tag_;
    bool done_ = false;
    std::string error_;
};

struct Mailbox {
    std::mutex mu;
    struct Message {
        int tag;
        std::vector<char> data;
    };
    std::deque<Message> queued;
    std::deque<LocalRecv *> waiting;
    bool failed = false;
    std::string failure;
};

detail::Poll LocalRecv::poll() {
    std::lock_guard<std::mutex> lock(box_->mu);
    if (!error_.empty()) throw Error(DSZ_ERR_COMM, error_);
    return done_ ? detail::Poll::done : detail::Poll::idle;
}

void LocalRecv::expire(double waited_s) {
    std::lock_guard<std::mutex> lock(box_->mu);
    if (done_) return;
    for (auto it = box_->waiting.begin(); it != box_->waiting.end(); ++it) {
        if (*it == this) {
            box_->waiting.erase(it);
            break;
        }
    }
    std::string msg = strprintf("%s timed out after %.1f s: no matching send", what().c_str(), waited_s);
    box_->failed = true;
    box_->failure = msg;
    throw Error(DSZ_ERR_TIMEOUT, msg);
}

void copy_if_needed(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) copy_bytes(dst, src, bytes); /* overlap was refused earlier */
}

class LocalCommunicator : public Communicator {
public:
    LocalCommunicator(const std::string &name, double timeout_s)
        : Communicator(0, 1, name, timeout_s), box_(std::make_shared<Mailbox>()) {}

    const char *backend() const override { return "local"; }
    bool failed() const override {
        std::lock_guard<std::mutex> lock(box_->mu);
        return box_->failed;
    }

    Request iall_reduce(const void *send, void *recv, size_t count, ElemType type,
                        ReduceOp op) override {
        start("all_reduce");
        (void)op;
        check_no_overlap("all_reduce on '" + name() + "'", send, count * elem_size(type), recv,
                         count * elem_size(type), send);
        copy_if_needed(recv, send, count * elem_size(type));
        return Request();
    }
    Request ireduce_scatter(const void *send, void *recv, const Partition &part, ElemType type,
                            ReduceOp op) override {
        start("reduce_scatter");
        (void)op;
        check_partition("reduce_scatter", part);
        check_no_overlap("reduce_scatter on '" + name() + "'", send, part.total() * elem_size(type), recv,
                         part.total() * elem_size(type), send);
        copy_if_needed(recv, send, part.total() * elem_size(type));
        return Request();
    }
    Request iall_gather(const void *send, void *recv, const Partition &part,
                        size_t elem_bytes) override {
        start("all_gather");
        check_partition("all_gather", part);
        check_no_overlap("all_gather on '" + name() + "'", recv, part.total() * elem_bytes, send,
                         part.total() * elem_bytes, recv);
        copy_if_needed(recv, send, part.total() * elem_bytes);
        return Request();
    }
    Request ibroadcast(void *, size_t, int root) override {
        start("broadcast");
        check_peer("broadcast", root);
        return Request();
    }
    Request iall_to_allv(const void *send, const std::vector<size_t> &send_bytes, void *recv,
                         const std::vector<size_t> &recv_bytes) override {
        start("all_to_all");
        if (send_bytes.size() != 1 || recv_bytes.size() != 1)
            fail(DSZ_ERR_INVALID_ARGUMENT, "all_to_all on '%s': expected 1 size per side, got %zu and %zu",
                 name().c_str(), send_bytes.size(), recv_bytes.size());
        if (send_bytes[0] != recv_bytes[0])
            fail(DSZ_ERR_INVALID_ARGUMENT, "all_to_all on '%s': sends %zu bytes to itself but expects %zu",
                 name().c_str(), send_bytes[0], recv_bytes[0]);
        check_no_overlap("all_to_all on '" + name() + "'", send, send_bytes[0], recv, recv_bytes[0], nullptr);
        copy_if_needed(recv, send, send_bytes[0]);
        return Request();
    }
    Request ibarrier() override {
        start("barrier");
        return Request();
    }

    Request isend(const void *buf, size_t bytes, int dst, int tag) override {
        check_live("send");
        check_peer("send", dst);
        check_tag("send", tag);
        ++p2p_seq_;
        std::lock_guard<std::mutex> lock(box_->mu);
        for (auto it = box_->waiting.begin(); it != box_->waiting.end(); ++it) {
            LocalRecv *r = *it;
            if (r->tag_ != tag) continue;
            box_->waiting.erase(it);
            if (r->bytes_ != bytes)
                r->error_ = strprintf("%s: rank 0 sent %zu bytes, expected %zu", r->what().c_str(),
                                      bytes, r->bytes_);
            else
                copy_if_needed(r->buf_, buf, bytes);
            r->done_ = true;
            return Request();
        }
        const char *p = static_cast<const char *>(buf);
        box_->queued.push_back({tag, std::vector<char>(p, p + bytes)});
        return Request();
    }

    Request irecv(void *buf, size_t bytes, int src, int tag) override {
        check_live("recv");
        check_peer("recv", src);
        check_tag("recv", tag);
        std::string what = strprintf("recv #%llu (%zu bytes from rank %d, tag %d) on '%s' [rank 0 of 1]",
                                     static_cast<unsigned long long>(p2p_seq_++), bytes, src, tag,
                                     name().c_str());
        std::lock_guard<std::mutex> lock(box_->mu);
        for (auto it = box_->queued.begin(); it != box_->queued.end(); ++it) {
            if (it->tag != tag) continue;
            if (it->data.size() != bytes)
                fail(DSZ_ERR_COMM, "%s: rank 0 sent %zu bytes, expected %zu", what.c_str(),
                     it->data.size(), bytes);
            copy_if_needed(buf, it->data.data(), bytes);
            box_->queued.erase(it);
            return Request();
        }
        auto op = std::make_shared<LocalRecv>(what, timeout(), box_, buf, bytes, tag);
        box_->waiting.push_back(op.get());
        return Request(op);
    }

    std::unique_ptr<Communicator> split(int color, int key, const std::string &name) override {
        (void)key;
        start("split");
        if (color < 0) return nullptr;
        auto c = std::make_unique<LocalCommunicator>(name, timeout());
        return c;
    }

private:
    void check_live(const char *op) const {
        std::lock_guard<std::mutex> lock(box_->mu);
        if (box_->failed)
            fail(DSZ_ERR_COMM, "%s on '%s': the communicator failed earlier: %s", op, name().c_str(),
                 box_->failure.c_str());
    }
    void start(const char *op) {
        check_live(op);
        take_sequence();
    }

    std::shared_ptr<Mailbox> box_;
    uint64_t p2p_seq_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator(const std::string &name, double timeout_s) {
    return std::make_unique<LocalCommunicator>(name, timeout_s);
}

}  // namespace comm
}  // namespace dsz
