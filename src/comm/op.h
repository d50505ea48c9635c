/*
 * op.h -- what a Request points at: one operation in flight.
 *
 * Backends derive from Op. Request::wait() is written once, here-agnostic:
 * it calls poll() until done, backs off while nothing moves, and calls
 * expire() when the communicator's timeout runs out. expire() is where a
 * backend names the ranks it is still waiting for and marks the
 * communicator failed.
 */
#pragma once

#include <string>

namespace dsz {
namespace comm {
namespace detail {

enum class Poll { done, progressed, idle };

class Op {
public:
    explicit Op(double timeout_s) : timeout_s_(timeout_s) {}
    virtual ~Op() = default;
    Op(const Op &) = delete;
    Op &operator=(const Op &) = delete;

    /* One non-blocking step. Throws dsz::Error if the operation failed. */
    virtual Poll poll() = 0;
    /* The wait gave up after waited_s seconds: throw DSZ_ERR_TIMEOUT (or
     * return, if another thread completed the operation meanwhile). */
    virtual void expire(double waited_s) = 0;

    /* A thread starts / stops blocking in Request::wait on this operation
     * (the MPI backend's progress thread stands aside meanwhile: the waiter
     * drives progress itself). */
    virtual void begin_wait() {}
    virtual void end_wait() {}

    /* "all_reduce #12 (...) on 'world' [rank 0 of 2]", built when asked:
     * only error paths need it. */
    virtual std::string what() const = 0;
    double timeout() const { return timeout_s_; }

private:
    double timeout_s_;
};

}  // namespace detail
}  // namespace comm
}  // namespace dsz
