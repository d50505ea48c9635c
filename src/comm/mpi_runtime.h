/*
 * mpi_runtime.h -- process-wide MPI state of the MPI backend (DSZ_HAVE_MPI).
 *
 * Owns three things that exist once per process:
 *   - MPI's lifetime. MPI is initialised only by create_communicator, only
 *     when a launcher started several ranks (or MPI was asked for), with
 *     MPI_THREAD_MULTIPLE. If the host initialised MPI, dszero never
 *     initialises nor finalises it. If dszero did, it finalises MPI from an
 *     atexit hook: MPI can be initialised once per process, so finalising
 *     when the last engine goes would forbid a second engine. The hook skips
 *     MPI_Finalize after a communication failure (a peer may be gone or
 *     stuck and finalize would wait for it); the launcher then reports the
 *     exit and ends the job.
 *   - One lock around every MPI call dszero makes, so that hosts that give
 *     only MPI_THREAD_SERIALIZED still work and progress is never re-entered.
 *   - The list of tasks in flight. Waiting on any Request advances all of
 *     them, in start order: a rank waiting on operation B still moves its
 *     part of operation A, which a peer may be waiting on, so ranks that
 *     wait on different requests never deadlock.
 *   - A progress thread that advances the tasks in flight while the host
 *     computes (non-blocking collectives would otherwise move only when the
 *     host calls into dszero, and overlap_comm would hide nothing). It
 *     sleeps while nothing is in flight or while a thread blocks in a wait
 *     (that thread drives progress itself), and backs off while nothing
 *     moves.
 *     Started with the first task when MPI gives at least
 *     MPI_THREAD_SERIALIZED (every MPI call is under the lock anyway);
 *     DSZ_COMM_PROGRESS_THREAD=0 turns it off.
 */
#pragma once

#ifdef DSZ_HAVE_MPI

#include <mpi.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "comm/launcher.h"

namespace dsz {
namespace comm {

class MpiTask;
struct MpiCore;

class MpiRuntime {
public:
    static MpiRuntime &get();

    /* Initialises MPI unless it already is. Throws DSZ_ERR_COMM. */
    void ensure_initialized();
    bool we_initialized() const { return we_initialized_; }
    int thread_level() const { return thread_level_; }

    std::recursive_mutex &lock() { return mu_; }

    /* Under lock(): */
    void start(const std::shared_ptr<MpiTask> &task);
    bool progress_thread_running() const { return progress_.joinable(); }
    /* Not under lock(): a thread starts (+1) / stops (-1) blocking in a wait. */
    void add_waiter(int delta);
    bool progress_all();
    /* Drops every task of a failed communicator (cancelling its receives)
     * and makes each of them fail with `why`. */
    void abandon(const MpiCore *core, const std::string &why);
    /* The oldest collective still in flight on core, or nullptr. */
    const MpiTask *oldest(const MpiCore *core) const;
    void note_failure() { any_failure_ = true; }
    bool any_failure() const { return any_failure_; }

private:
    MpiRuntime() = default;
    static void finalize_at_exit();
    void progress_loop();
    void stop_progress();              /* not under lock() */

    std::recursive_mutex mu_;
    std::vector<std::shared_ptr<MpiTask>> active_;
    bool we_initialized_ = false;
    bool any_failure_ = false;
    int thread_level_ = MPI_THREAD_SINGLE;
    std::thread progress_;
    std::condition_variable_any wake_;
    bool stop_ = false;
    int waiters_ = 0;
};

/* Why the progress thread cannot run ("" when it can). */
std::string mpi_progress_missing();

/* "MPI_ERR_TRUNCATE: message truncated" */
std::string mpi_error_string(int code);

}  // namespace comm
}  // namespace dsz

#endif  // DSZ_HAVE_MPI
