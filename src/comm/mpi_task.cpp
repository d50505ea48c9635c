/* mpi_task.cpp -- the chunked-stream engine under every MPI collective (see mpi_task.h). */
#ifdef DSZ_HAVE_MPI

#include "comm/mpi_task.h"

#include <climits>

#include "comm/mpi_runtime.h"
#include "common/error.h"

namespace dsz {
namespace comm {

namespace {

const char *kind_name(int kind) {
    switch (kind) {
    case kTagAllReduce: return "all_reduce";
    case kTagAllReduceGather: return "all_reduce";
    case kTagReduceScatter: return "reduce_scatter";
    case kTagAllGather: return "all_gather";
    case kTagBroadcast: return "broadcast";
    case kTagAllToAll: return "all_to_all";
    case kTagBarrier: return "barrier";
    default: return "an unknown operation";
    }
}

}  // namespace

MpiCore::~MpiCore() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || failed) return; /* a failed comm may still have requests inside MPI */
    std::lock_guard<std::recursive_mutex> lock(MpiRuntime::get().lock());
    if (coll != MPI_COMM_NULL) MPI_Comm_free(&coll);
    if (p2p != MPI_COMM_NULL) MPI_Comm_free(&p2p);
}

std::string MpiCore::tag_name(int tag, uint64_t our_seq) const {
    const int kind = tag & ((1 << kTagKindBits) - 1);
    const uint64_t low = static_cast<uint64_t>(tag) >> kTagKindBits;
    /* The sequence nearest ours with these low bits. */
    const uint64_t span = seq_mask + 1;
    uint64_t diff = (low - (our_seq & seq_mask)) & seq_mask;
    long long delta = diff >= span / 2 ? static_cast<long long>(diff) - static_cast<long long>(span)
                                       : static_cast<long long>(diff);
    const long long seq = static_cast<long long>(our_seq) + delta;
    return strprintf("%s #%lld", kind_name(kind), seq);
}

std::string MpiCore::peer_name(int r) const {
    if (r >= 0 && static_cast<size_t>(r) < world_ranks.size() && world_ranks[static_cast<size_t>(r)] != r)
        return strprintf("rank %d (world rank %d)", r, world_ranks[static_cast<size_t>(r)]);
    return strprintf("rank %d", r);
}

std::string OpLabel::str(const MpiCore &core) const {
    std::string d;
    switch (kind) {
    case plain: break;
    case reduce: d = strprintf("%zu x %s, %s", a, type, reduction); break;
    case gather: d = strprintf("%zu x %zu bytes", a, b); break;
    case broadcast: d = strprintf("%zu bytes from rank %d", a, peer); break;
    case all_to_all: d = strprintf("%zu bytes out, %zu in", a, b); break;
    case custom: d = text; break;
    case send: d = strprintf("%zu bytes to %s, tag %d", a, core.peer_name(peer).c_str(), tag); break;
    case recv: d = strprintf("%zu bytes from %s, tag %d", a, core.peer_name(peer).c_str(), tag); break;
    }
    std::string s = strprintf("%s #%llu", op, static_cast<unsigned long long>(seq));
    if (!d.empty()) s += " (" + d + ")";
    return s + strprintf(" on '%s' [rank %d of %d]", core.name.c_str(), core.rank, core.size);
}

MpiTask::~MpiTask() = default;

int MpiTask::add_stream(int peer, bool send, MPI_Comm comm, int tag, char *base, size_t bytes,
                        size_t chunk, size_t window, bool token, int stage) {
    Stream s;
    s.stage = stage;
    s.peer = peer;
    s.send = send;
    s.comm = comm;
    s.tag = tag;
    s.base = base;
    s.bytes = bytes;
    s.chunk = chunk;
    s.nchunks = token ? 1 : (bytes + chunk - 1) / chunk;
    s.window = window;
    s.limit = SIZE_MAX;
    s.done.assign(s.nchunks, 0);
    streams_.push_back(std::move(s));
    return static_cast<int>(streams_.size() - 1);
}

char *MpiTask::chunk_buffer(int stream, size_t k) {
    Stream &s = streams_[static_cast<size_t>(stream)];
    return s.base + k * s.chunk;
}

void MpiTask::fail_task(dsz_status status, const std::string &message) {
    if (status_ == DSZ_OK) {
        status_ = status;
        error_ = message;
    }
}

void MpiTask::begin() {
    try {
        setup();
        size_t slots = 0;
        for (const Stream &s : streams_) slots += std::min(s.window, s.nchunks);
        reqs_.reserve(slots);
        slots_.reserve(slots);
        free_slots_.reserve(slots);
        pump(); /* post first: local work overlaps the first messages */
        work();
        pump();
    } catch (const Error &e) {
        fail_task(e.status(), e.what());
    }
    maybe_finish();
}

bool MpiTask::maybe_finish() {
    bool all = local_done();
    for (const Stream &s : streams_)
        if (!s.complete()) all = false;
    if (status_ != DSZ_OK) all = true;
    if (all) finish();
    return all;
}

void MpiTask::post(int si) {
    Stream &s = streams_[static_cast<size_t>(si)];
    const size_t k = s.posted;
    char *buf = s.base ? s.base + k * s.chunk : chunk_buffer(si, k);
    const size_t len = s.chunk_len(k);
    if (len > static_cast<size_t>(INT_MAX)) fail(DSZ_ERR_INTERNAL, "%s: chunk of %zu bytes", what().c_str(), len);
    int slot;
    if (!free_slots_.empty()) {
        slot = free_slots_.back();
        free_slots_.pop_back();
    } else {
        slot = static_cast<int>(reqs_.size());
        reqs_.push_back(MPI_REQUEST_NULL);
        slots_.push_back({});
    }
    slots_[static_cast<size_t>(slot)] = {si, k};
    int rc = s.send ? MPI_Isend(buf, static_cast<int>(len), MPI_BYTE, s.peer, s.tag, s.comm,
                                &reqs_[static_cast<size_t>(slot)])
                    : MPI_Irecv(buf, static_cast<int>(len), MPI_BYTE, s.peer, s.tag, s.comm,
                                &reqs_[static_cast<size_t>(slot)]);
    if (rc != MPI_SUCCESS) {
        free_slots_.push_back(slot);
        fail(DSZ_ERR_COMM, "%s: %s to %s failed: %s", what().c_str(), s.send ? "MPI_Isend" : "MPI_Irecv",
             core_->peer_name(s.peer).c_str(), mpi_error_string(rc).c_str());
    }
    ++s.posted;
}

void MpiTask::pump() {
    for (size_t i = 0; i < streams_.size(); ++i) {
        Stream &s = streams_[i];
        while (s.posted < s.nchunks && s.posted - s.completed < s.window && s.posted < s.limit)
            post(static_cast<int>(i));
    }
}

bool MpiTask::advance() {
    if (finished_) return false;
    bool progressed = false;
    try {
        if (reqs_.size() != free_slots_.size()) {
            const int n = static_cast<int>(reqs_.size());
            indices_.resize(reqs_.size());
            statuses_.resize(reqs_.size());
            int outcount = 0;
            int rc = MPI_Testsome(n, reqs_.data(), &outcount, indices_.data(), statuses_.data());
            if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS)
                fail(DSZ_ERR_COMM, "%s: MPI_Testsome failed: %s", what().c_str(), mpi_error_string(rc).c_str());
            if (outcount == MPI_UNDEFINED) outcount = 0;
            for (int i = 0; i < outcount; ++i) {
                const int slot = indices_[static_cast<size_t>(i)];
                const Slot sl = slots_[static_cast<size_t>(slot)];
                const MPI_Status &st = statuses_[static_cast<size_t>(i)];
                reqs_[static_cast<size_t>(slot)] = MPI_REQUEST_NULL;
                free_slots_.push_back(slot);
                Stream &s = streams_[static_cast<size_t>(sl.stream)];
                const size_t want = s.chunk_len(sl.chunk);
                if (rc == MPI_ERR_IN_STATUS && st.MPI_ERROR != MPI_SUCCESS) {
                    int cls = 0;
                    MPI_Error_class(st.MPI_ERROR, &cls);
                    if (cls == MPI_ERR_TRUNCATE)
                        fail(DSZ_ERR_COMM,
                             "%s: %s sent more than the %zu bytes expected: the ranks disagree on this "
                             "call's sizes",
                             what().c_str(), core_->peer_name(s.peer).c_str(), want);
                    fail(DSZ_ERR_COMM, "%s: %s %s failed: %s", what().c_str(), s.send ? "send to" : "receive from",
                         core_->peer_name(s.peer).c_str(), mpi_error_string(st.MPI_ERROR).c_str());
                }
                if (!s.send) {
                    int got = 0;
                    MPI_Get_count(&st, MPI_BYTE, &got);
                    if (static_cast<size_t>(got) != want)
                        fail(DSZ_ERR_COMM,
                             "%s: %s sent %d bytes where %zu were expected: the ranks disagree on "
                             "this call's sizes",
                             what().c_str(), core_->peer_name(s.peer).c_str(), got, want);
                }
                s.done[sl.chunk] = 1;
                ++s.completed;
                while (s.prefix < s.nchunks && s.done[s.prefix]) ++s.prefix;
                progressed = true;
            }
        }
        if (work()) progressed = true;
        pump();
    } catch (const Error &e) {
        fail_task(e.status(), e.what());
    }
    if (maybe_finish()) progressed = true;
    return progressed;
}

void MpiTask::cancel_pending() {
    for (size_t i = 0; i < reqs_.size(); ++i) {
        if (reqs_[i] == MPI_REQUEST_NULL) continue;
        const Stream &s = streams_[static_cast<size_t>(slots_[i].stream)];
        if (!s.send) MPI_Cancel(&reqs_[i]);
        MPI_Request_free(&reqs_[i]);
    }
}

void MpiTask::finish() {
    if (finished_) return;
    finished_ = true;
    if (status_ != DSZ_OK) {
        cancel_pending(); /* the staging blocks it used are leaked, not recycled */
        if (!core_->failed) {
            core_->failed = true;
            core_->failure = error_;
        }
        MpiRuntime::get().note_failure();
        return;
    }
    release();
}

void MpiTask::abandon(const std::string &why) {
    if (finished_) return;
    fail_task(DSZ_ERR_COMM, why);
    finish();
}

std::string MpiTask::waiting_for() const {
    /* Only the earliest unfinished stage: a peer that cannot send its
     * reduced slice because a third rank is silent is not the culprit. */
    int stage = INT_MAX;
    for (const Stream &s : streams_)
        if (!s.complete()) stage = std::min(stage, s.stage);
    std::vector<int> from, to;
    for (const Stream &s : streams_) {
        if (s.complete() || s.stage != stage) continue;
        std::vector<int> &v = s.send ? to : from;
        if (std::find(v.begin(), v.end(), s.peer) == v.end()) v.push_back(s.peer);
    }
    std::string out;
    auto list = [&](const std::vector<int> &v) {
        std::string s;
        for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + core_->peer_name(v[i]);
        return s;
    };
    if (!from.empty()) out += "no data yet from " + list(from);
    if (!to.empty()) out += std::string(out.empty() ? "" : "; ") + "not yet received by " + list(to);
    /* What are the silent peers doing? Their first unmatched message says. */
    std::vector<int> probed;
    for (const Stream &s : streams_) {
        if (s.complete() || s.send || !collective_ || s.stage != stage) continue;
        if (std::find(probed.begin(), probed.end(), s.peer) != probed.end()) continue;
        probed.push_back(s.peer);
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(s.peer, MPI_ANY_TAG, s.comm, &flag, &st) == MPI_SUCCESS && flag &&
            st.MPI_TAG != s.tag)
            out += "; " + core_->peer_name(s.peer) + " has sent data for " +
                   core_->tag_name(st.MPI_TAG, seq()) + " instead";
    }
    return out;
}

}  // namespace comm
}  // namespace dsz

#endif  // DSZ_HAVE_MPI
