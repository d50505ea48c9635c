/*
 * mpi_tasks.h -- the collectives of the MPI backend, as MpiTask factories.
 *
 * Algorithms (W ranks, all messages point-to-point, see docs/comm.md):
 *   reduce_scatter  each rank sends slice j to rank j in chunks; rank j
 *                   receives the W-1 contributions into reused staging
 *                   blocks and sums chunk by chunk in rank order 0..W-1.
 *   all_reduce      the same, then every owner sends its reduced slice to
 *                   every rank, chunk by chunk as soon as it is reduced.
 *   all_gather      every rank sends its slice to every rank, straight into
 *                   the receivers' output.
 *   broadcast       binomial tree, pipelined in chunks.
 *   all_to_all      direct pairwise exchange.
 *   barrier         dissemination barrier of empty messages.
 * send/recv use the communicator's second MPI_Comm with the user's tag.
 */
#pragma once

#ifdef DSZ_HAVE_MPI

#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "comm/mpi_task.h"

namespace dsz {
namespace comm {

using TaskPtr = std::shared_ptr<MpiTask>;

TaskPtr make_reduce_task(std::shared_ptr<MpiCore> core, OpLabel label,
                         const void *send, void *out, const Partition &part, ElemType type,
                         ReduceOp op, bool all_reduce);
TaskPtr make_gather_task(std::shared_ptr<MpiCore> core, OpLabel label,
                         const void *send, void *recv, const Partition &part, size_t elem_bytes);
TaskPtr make_broadcast_task(std::shared_ptr<MpiCore> core, OpLabel label,
                            void *buf, size_t bytes, int root);
TaskPtr make_all_to_all_task(std::shared_ptr<MpiCore> core, OpLabel label,
                             const void *send, const std::vector<size_t> &send_bytes, void *recv,
                             const std::vector<size_t> &recv_bytes);
TaskPtr make_barrier_task(std::shared_ptr<MpiCore> core, OpLabel label);
TaskPtr make_p2p_task(std::shared_ptr<MpiCore> core, OpLabel label, bool send,
                      void *buf, size_t bytes, int peer, int tag);

}  // namespace comm
}  // namespace dsz

#endif  // DSZ_HAVE_MPI
