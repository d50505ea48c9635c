/* mpi_runtime.cpp -- MPI lifetime, the MPI lock, global progress (see mpi_runtime.h). */
#ifdef DSZ_HAVE_MPI

#include "comm/mpi_runtime.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "comm/backends.h"
#include "comm/mpi_task.h"
#include "common/error.h"

namespace dsz {
namespace comm {

std::string mpi_error_string(int code) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return strprintf("MPI error %d", code);
    return std::string(text, static_cast<size_t>(len));
}

MpiRuntime &MpiRuntime::get() {
    /* Never destroyed: communicators that outlive main() still find it. */
    static MpiRuntime *rt = new MpiRuntime();
    return *rt;
}

void MpiRuntime::finalize_at_exit() {
    MpiRuntime &rt = get();
    rt.stop_progress();
    std::lock_guard<std::recursive_mutex> lock(rt.mu_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || rt.any_failure_) return;
    MPI_Finalize();
}

void MpiRuntime::ensure_initialized() {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) fail(DSZ_ERR_COMM, "MPI was already finalised in this process");
    if (!inited) {
        int provided = MPI_THREAD_SINGLE;
        int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
        if (rc != MPI_SUCCESS) fail(DSZ_ERR_COMM, "MPI_Init_thread failed: %s", mpi_error_string(rc).c_str());
        we_initialized_ = true;
        std::atexit(finalize_at_exit);
    }
    MPI_Query_thread(&thread_level_);
}

static bool progress_thread_wanted(int thread_level) {
    if (thread_level < MPI_THREAD_SERIALIZED) return false;
    const char *env = std::getenv("DSZ_COMM_PROGRESS_THREAD");
    return !(env && (!std::strcmp(env, "0") || !std::strcmp(env, "off")));
}

std::string mpi_progress_missing() {
    const int level = MpiRuntime::get().thread_level();
    if (level < MPI_THREAD_SERIALIZED)
        return strprintf("MPI was initialised with thread level %s (the host's MPI_Init?): initialise it with "
                         "MPI_Init_thread(..., MPI_THREAD_MULTIPLE or MPI_THREAD_SERIALIZED, ...)",
                         level == MPI_THREAD_SINGLE ? "MPI_THREAD_SINGLE" : "MPI_THREAD_FUNNELED");
    if (!progress_thread_wanted(level)) return "DSZ_COMM_PROGRESS_THREAD turns the progress thread off";
    return "";
}

void MpiRuntime::start(const std::shared_ptr<MpiTask> &task) {
    task->begin();
    if (task->finished()) return;
    active_.push_back(task);
    if (!progress_.joinable() && !stop_ && progress_thread_wanted(thread_level_))
        progress_ = std::thread([this] { progress_loop(); });
    wake_.notify_one();
}

/* Advances the tasks in flight; yields at first, then sleeps longer while
 * nothing moves (a peer is still computing), so an idle wait costs little. */
void MpiRuntime::progress_loop() {
    std::unique_lock<std::recursive_mutex> lock(mu_);
    unsigned idle = 0;
    while (!stop_) {
        if (active_.empty() || waiters_ > 0) {
            wake_.wait(lock, [this] { return stop_ || (!active_.empty() && waiters_ == 0); });
            idle = 0;
            continue;
        }
        idle = progress_all() ? 0 : idle + 1;
        lock.unlock();
        if (idle < 8) std::this_thread::yield();
        else std::this_thread::sleep_for(std::chrono::microseconds(idle < 256 ? 10 : 100));
        lock.lock();
    }
}

void MpiRuntime::add_waiter(int delta) {
    {
        std::lock_guard<std::recursive_mutex> lock(mu_);
        waiters_ += delta;
    }
    if (delta < 0) wake_.notify_one();
}

void MpiRuntime::stop_progress() {
    {
        std::lock_guard<std::recursive_mutex> lock(mu_);
        stop_ = true;
    }
    wake_.notify_all();
    if (progress_.joinable()) progress_.join();
}

bool MpiRuntime::progress_all() {
    bool progressed = false;
    bool any_finished = false;
    /* advance() never starts or drops tasks, so active_ holds still. */
    for (size_t i = 0; i < active_.size(); ++i) {
        MpiTask &t = *active_[i];
        if (t.finished()) continue;
        if (t.advance()) progressed = true;
        if (t.finished()) any_finished = true;
    }
    if (any_finished) {
        size_t keep = 0;
        for (size_t i = 0; i < active_.size(); ++i)
            if (!active_[i]->finished()) active_[keep++] = std::move(active_[i]);
        active_.resize(keep);
    }
    return progressed;
}

void MpiRuntime::abandon(const MpiCore *core, const std::string &why) {
    std::vector<std::shared_ptr<MpiTask>> keep;
    for (auto &t : active_) {
        if (t->core() == core) t->abandon(why);
        else keep.push_back(t);
    }
    active_.swap(keep);
}

const MpiTask *MpiRuntime::oldest(const MpiCore *core) const {
    const MpiTask *best = nullptr;
    for (const auto &t : active_) {
        if (t->core() != core || t->finished() || !t->is_collective()) continue;
        if (!best || t->seq() < best->seq()) best = t.get();
    }
    return best;
}

bool mpi_is_initialized() {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    return inited && !finalized;
}

}  // namespace comm
}  // namespace dsz

#endif  // DSZ_HAVE_MPI
