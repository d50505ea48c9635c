/*
 * mpi_comm.cpp -- the MPI backend's Communicator: creation from the
 * launcher's world or a host-given MPI_Comm, sub-groups, and the front end
 * that numbers each call, checks its arguments and starts its task.
 *
 * Each communicator owns two duplicated MPI communicators: one for its
 * collectives (tags encode the sequence number and kind), one for the
 * user's send/recv, so the two can never match each other's messages.
 * Both are set to MPI_ERRORS_RETURN: an MPI failure becomes DSZ_ERR_COMM.
 */
#ifdef DSZ_HAVE_MPI

#include <chrono>
#include <thread>

#include "comm/backends.h"
#include "comm/mpi_runtime.h"
#include "comm/mpi_tasks.h"
#include "comm/op.h"
#include "common/error.h"

namespace dsz {
namespace comm {
namespace {

using Lock = std::lock_guard<std::recursive_mutex>;

class MpiOp : public detail::Op {
public:
    MpiOp(TaskPtr task, double timeout_s) : Op(timeout_s), task_(std::move(task)) {}
    std::string what() const override { return task_->what(); }
    void begin_wait() override { MpiRuntime::get().add_waiter(+1); }
    void end_wait() override { MpiRuntime::get().add_waiter(-1); }

    detail::Poll poll() override {
        MpiRuntime &rt = MpiRuntime::get();
        Lock lock(rt.lock());
        bool progressed = false;
        if (!task_->finished()) progressed = rt.progress_all();
        if (task_->finished()) {
            if (task_->failed()) throw Error(task_->status(), task_->error());
            return detail::Poll::done;
        }
        return progressed ? detail::Poll::progressed : detail::Poll::idle;
    }

    void expire(double waited_s) override {
        MpiRuntime &rt = MpiRuntime::get();
        Lock lock(rt.lock());
        if (task_->finished()) {
            if (task_->failed()) throw Error(task_->status(), task_->error());
            return;
        }
        std::string msg = strprintf("%s timed out after %.1f s", what().c_str(), waited_s);
        const std::string waiting = task_->waiting_for();
        if (!waiting.empty()) msg += ": " + waiting;
        const MpiTask *oldest = rt.oldest(task_->core());
        if (oldest && oldest != task_.get())
            msg += "; the oldest unfinished collective here is " + oldest->what();
        MpiCore *core = const_cast<MpiCore *>(task_->core());
        core->failed = true;
        core->failure = msg;
        rt.note_failure();
        rt.abandon(core, "the communicator '" + core->name + "' failed earlier: " + msg);
        throw Error(DSZ_ERR_TIMEOUT, msg);
    }

private:
    TaskPtr task_;
};

/* Waits for a raw MPI request (communicator creation), keeping dszero's
 * other traffic moving, bounded by the timeout. */
void wait_raw(MPI_Request &req, double timeout_s, const std::string &what) {
    MpiRuntime &rt = MpiRuntime::get();
    const auto t0 = std::chrono::steady_clock::now();
    unsigned idle = 0;
    for (;;) {
        {
            Lock lock(rt.lock());
            int flag = 0;
            int rc = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) fail(DSZ_ERR_COMM, "%s failed: %s", what.c_str(), mpi_error_string(rc).c_str());
            if (flag) return;
            rt.progress_all();
        }
        const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (waited >= timeout_s) {
            Lock lock(rt.lock());
            rt.note_failure();
            fail(DSZ_ERR_TIMEOUT, "%s timed out after %.1f s: not every rank joined", what.c_str(), waited);
        }
        if (++idle > 64) std::this_thread::sleep_for(std::chrono::microseconds(idle > 2048 ? 1000 : 20));
    }
}

void check(int rc, const char *call) {
    if (rc != MPI_SUCCESS) fail(DSZ_ERR_COMM, "%s failed: %s", call, mpi_error_string(rc).c_str());
}

/* Fills rank, size, world ranks and the tag layout of a core whose
 * communicators exist. */
void init_core(MpiCore &core, const std::string &name) {
    core.name = name;
    check(MPI_Comm_set_errhandler(core.coll, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_set_errhandler(core.p2p, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(core.coll, &core.rank), "MPI_Comm_rank");
    check(MPI_Comm_size(core.coll, &core.size), "MPI_Comm_size");
    MPI_Group group, world;
    check(MPI_Comm_group(core.coll, &group), "MPI_Comm_group");
    check(MPI_Comm_group(MPI_COMM_WORLD, &world), "MPI_Comm_group");
    std::vector<int> ranks(static_cast<size_t>(core.size));
    for (int i = 0; i < core.size; ++i) ranks[static_cast<size_t>(i)] = i;
    core.world_ranks.assign(ranks.size(), MPI_UNDEFINED);
    MPI_Group_translate_ranks(group, core.size, ranks.data(), world, core.world_ranks.data());
    MPI_Group_free(&group);
    MPI_Group_free(&world);
    int *ub = nullptr, flag = 0;
    MPI_Comm_get_attr(core.coll, MPI_TAG_UB, &ub, &flag);
    long long tag_ub = flag && ub ? *ub : 32767;
    int bits = 0;
    while (bits < 40 && (2LL << bits) - 1 <= tag_ub) ++bits; /* tags in [0, 2^bits) */
    core.seq_mask = (uint64_t(1) << (bits - kTagKindBits)) - 1;
}

class MpiCommunicator : public Communicator {
public:
    MpiCommunicator(std::shared_ptr<MpiCore> core, double timeout_s)
        : Communicator(core->rank, core->size, core->name, timeout_s), core_(std::move(core)) {}

    const char *backend() const override { return "mpi"; }

    bool failed() const override {
        Lock lock(MpiRuntime::get().lock());
        return core_->failed;
    }

    Request iall_reduce(const void *send, void *recv, size_t count, ElemType type, ReduceOp op) override {
        OpLabel l = label("all_reduce", OpLabel::reduce, count, 0);
        l.type = elem_name(type);
        l.reduction = reduce_name(op);
        no_overlap(l, send, count * elem_size(type), recv, count * elem_size(type), send);
        return launch(make_reduce_task(core_, std::move(l), send, recv, Partition::even(count, size()), type,
                                       op, true));
    }

    Request ireduce_scatter(const void *send, void *recv, const Partition &part, ElemType type,
                            ReduceOp op) override {
        OpLabel l = label("reduce_scatter", OpLabel::reduce, part.total(), 0);
        l.type = elem_name(type);
        l.reduction = reduce_name(op);
        check_partition("reduce_scatter", part);
        const size_t es = elem_size(type);
        no_overlap(l, send, part.total() * es, recv, part.count(rank()) * es,
                   static_cast<const char *>(send) + part.offset(rank()) * es);
        return launch(make_reduce_task(core_, std::move(l), send, recv, part, type, op, false));
    }

    Request iall_gather(const void *send, void *recv, const Partition &part, size_t elem_bytes) override {
        OpLabel l = label("all_gather", OpLabel::gather, part.total(), elem_bytes);
        check_partition("all_gather", part);
        no_overlap(l, recv, part.total() * elem_bytes, send, part.count(rank()) * elem_bytes,
                   static_cast<char *>(recv) + part.offset(rank()) * elem_bytes);
        return launch(make_gather_task(core_, std::move(l), send, recv, part, elem_bytes));
    }

    Request ibroadcast(void *buf, size_t bytes, int root) override {
        OpLabel l = label("broadcast", OpLabel::broadcast, bytes, 0);
        l.peer = root;
        check_peer("broadcast", root);
        return launch(make_broadcast_task(core_, std::move(l), buf, bytes, root));
    }

    Request iall_to_allv(const void *send, const std::vector<size_t> &send_bytes, void *recv,
                         const std::vector<size_t> &recv_bytes) override {
        OpLabel l = label("all_to_all", OpLabel::all_to_all, 0, 0);
        const size_t W = static_cast<size_t>(size());
        if (send_bytes.size() != W || recv_bytes.size() != W)
            fail(DSZ_ERR_INVALID_ARGUMENT, "%s: expected %zu sizes per side, got %zu and %zu",
                 l.str(*core_).c_str(), W, send_bytes.size(), recv_bytes.size());
        for (size_t i = 0; i < W; ++i) {
            l.a += send_bytes[i];
            l.b += recv_bytes[i];
        }
        const size_t me = static_cast<size_t>(rank());
        if (send_bytes[me] != recv_bytes[me])
            fail(DSZ_ERR_INVALID_ARGUMENT, "%s: rank %d sends %zu bytes to itself but expects %zu",
                 l.str(*core_).c_str(), rank(), send_bytes[me], recv_bytes[me]);
        no_overlap(l, send, l.a, recv, l.b, nullptr);
        return launch(make_all_to_all_task(core_, std::move(l), send, send_bytes, recv, recv_bytes));
    }

    Request ibarrier() override { return launch(make_barrier_task(core_, label("barrier", OpLabel::plain, 0, 0))); }

    Request isend(const void *buf, size_t bytes, int dst, int tag) override {
        check_peer("send", dst);
        check_tag("send", tag);
        return launch(make_p2p_task(core_, p2p_label("send", OpLabel::send, bytes, dst, tag), true,
                                    const_cast<void *>(buf), bytes, dst, tag));
    }

    Request irecv(void *buf, size_t bytes, int src, int tag) override {
        check_peer("recv", src);
        check_tag("recv", tag);
        return launch(make_p2p_task(core_, p2p_label("recv", OpLabel::recv, bytes, src, tag), false, buf, bytes,
                                    src, tag));
    }

    std::unique_ptr<Communicator> split(int color, int key, const std::string &name) override {
        OpLabel l = label("split", OpLabel::custom, 0, 0);
        l.text = "into '" + name + "'";
        /* MPI_Comm_split blocks with no timeout: first make sure everybody
         * is here, with one. */
        launch(make_barrier_task(core_, std::move(l))).wait();
        MpiRuntime &rt = MpiRuntime::get();
        auto core = std::make_shared<MpiCore>(core_->chunk_bytes);
        {
            Lock lock(rt.lock());
            check(MPI_Comm_split(core_->coll, color < 0 ? MPI_UNDEFINED : color, key, &core->coll),
                  "MPI_Comm_split");
            if (core->coll == MPI_COMM_NULL) return nullptr;
            check(MPI_Comm_dup(core->coll, &core->p2p), "MPI_Comm_dup");
            init_core(*core, name);
        }
        return std::make_unique<MpiCommunicator>(core, timeout());
    }

private:
    /* Takes the next sequence number. */
    OpLabel label(const char *op, OpLabel::Kind kind, size_t a, size_t b) {
        OpLabel l;
        l.op = op;
        l.kind = kind;
        l.seq = take_sequence();
        l.a = a;
        l.b = b;
        return l;
    }
    OpLabel p2p_label(const char *op, OpLabel::Kind kind, size_t bytes, int peer, int tag) {
        OpLabel l;
        l.op = op;
        l.kind = kind;
        l.seq = p2p_seq_++;
        l.a = bytes;
        l.peer = peer;
        l.tag = tag;
        return l;
    }
    void no_overlap(const OpLabel &l, const void *a, size_t an, const void *b, size_t bn, const void *same_as) {
        if (overlaps(a, an, b, bn, same_as))
            fail(DSZ_ERR_INVALID_ARGUMENT, "%s: the send and receive buffers overlap (only the in-place form is "
                 "allowed)", l.str(*core_).c_str());
    }

    Request launch(TaskPtr task) {
        MpiRuntime &rt = MpiRuntime::get();
        Lock lock(rt.lock());
        if (core_->failed)
            fail(DSZ_ERR_COMM, "%s: the communicator failed earlier: %s", task->what().c_str(),
                 core_->failure.c_str());
        rt.start(task);
        if (task->finished()) {
            if (task->failed()) throw Error(task->status(), task->error());
            return Request();
        }
        return Request(std::make_shared<MpiOp>(task, timeout()));
    }

    std::shared_ptr<MpiCore> core_;
    uint64_t p2p_seq_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions &options, const LauncherInfo &launcher) {
    MpiRuntime &rt = MpiRuntime::get();
    MPI_Comm base = MPI_COMM_WORLD;
    if (options.mpi_comm) {
        if (!mpi_is_initialized())
            fail(DSZ_ERR_INVALID_ARGUMENT, "an MPI communicator was handed in but MPI is not initialised");
        base = *static_cast<const MPI_Comm *>(options.mpi_comm);
        if (base == MPI_COMM_NULL) fail(DSZ_ERR_INVALID_ARGUMENT, "the MPI communicator handed in is MPI_COMM_NULL");
    }
    rt.ensure_initialized(); /* initialises MPI if nobody did; learns its thread level either way */
    const double timeout_s = resolve_timeout(options.timeout_s);
    auto core = std::make_shared<MpiCore>(resolve_chunk_bytes(options.chunk_bytes));
    /* A duplication that timed out is still pending inside MPI, which writes
     * the new handle into `core` once the missing ranks arrive: the core is
     * then leaked, never freed under MPI's feet (as failed collectives leak
     * their staging blocks). */
    auto wait_dup = [&](MPI_Request &req) {
        try {
            wait_raw(req, timeout_s, "creating communicator '" + options.name + "'");
        } catch (...) {
            new std::shared_ptr<MpiCore>(core);
            throw;
        }
    };
    MPI_Request req;
    {
        Lock lock(rt.lock());
        check(MPI_Comm_idup(base, &core->coll, &req), "MPI_Comm_idup");
    }
    wait_dup(req);
    {
        Lock lock(rt.lock());
        check(MPI_Comm_idup(core->coll, &core->p2p, &req), "MPI_Comm_idup");
    }
    wait_dup(req);
    {
        Lock lock(rt.lock());
        init_core(*core, options.name);
    }
    if (!options.mpi_comm && launcher.world_size > 0 && launcher.world_size != core->size)
        fail(DSZ_ERR_COMM,
             "%s started %d ranks but MPI sees %d: is this MPI library the one the launcher belongs "
             "to (PMI support)?",
             launcher.source.c_str(), launcher.world_size, core->size);
    if (options.world_size > 0 && options.world_size != core->size)
        fail(DSZ_ERR_INVALID_ARGUMENT, "world_size %d was requested but the communicator has %d ranks",
             options.world_size, core->size);
    if (options.rank >= 0 && options.rank != core->rank)
        fail(DSZ_ERR_INVALID_ARGUMENT, "rank %d was requested but this process is rank %d", options.rank,
             core->rank);
    return std::make_unique<MpiCommunicator>(core, timeout_s);
}

}  // namespace comm
}  // namespace dsz

#endif  // DSZ_HAVE_MPI
