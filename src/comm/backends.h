/*
 * backends.h -- the constructors behind create_communicator(), internal.
 */
#pragma once

#include <memory>

#include "comm/communicator.h"
#include "comm/launcher.h"

namespace dsz {
namespace comm {

/* true when [a, a+an) and [b, b+bn) overlap, unless b == same_as (the
 * documented in-place form). */
bool overlaps(const void *a, size_t an, const void *b, size_t bn, const void *same_as);
/* Throws DSZ_ERR_INVALID_ARGUMENT naming `what` when overlaps(). */
void check_no_overlap(const std::string &what, const void *a, size_t an, const void *b, size_t bn,
                      const void *same_as);

std::unique_ptr<Communicator> make_local_communicator(const std::string &name, double timeout_s);

/* Only in builds with DSZ_HAVE_MPI. */
bool mpi_is_initialized();
std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions &options,
                                                   const LauncherInfo &launcher);

}  // namespace comm
}  // namespace dsz
