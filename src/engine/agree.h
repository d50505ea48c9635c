/*
 * agree.h -- making a multi-step collective fail on every rank together.
 *
 * When one rank hits an error in the middle of a collective operation
 * (a checkpoint it cannot write or read), the others must not wait for it
 * forever, nor commit what that rank could not. agree() is one small
 * all-reduce: a rank passes its local error ("" when fine); if any rank
 * failed, every rank that did not fail throws an error saying another rank
 * failed, and a rank that failed returns so that it can rethrow its own.
 */
#pragma once

#include <string>

#include "comm/communicator.h"
#include "common/error.h"

namespace dsz {

inline void agree(comm::Communicator &comm, const std::string &local_error, dsz_status status, const char *what) {
    int64_t failed = local_error.empty() ? 0 : 1;
    if (comm.size() > 1) failed = comm.all_reduce_value<int64_t>(failed, comm::ReduceOp::max);
    if (failed && local_error.empty())
        fail(status, "%s: another rank failed (see its error); nothing was changed", what);
}

}  // namespace dsz
