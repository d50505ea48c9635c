/*
 * expert_group.h -- the expert-parallel and expert-data-parallel groups of
 * one MoE layout, and the all-to-all that moves the [E, C, M] buffer.
 *
 * Built on comm::Topology (DeepSpeed's "E + D" ordering: expert-parallel
 * groups of ep_size consecutive ranks, expert-data groups strided). With
 * ep_size ranks in a group and E experts, rank g of the group owns experts
 * [g * E / ep_size, (g + 1) * E / ep_size). all_to_all() sends chunk g of
 * the local [E, C, M] buffer (those experts' slots) to group rank g and
 * receives, in chunk g, rank g's tokens for this rank's experts: the result
 * reads as [ep_size, E / ep_size, C, M] (DeepSpeed's "gecm"). The same call
 * sends expert outputs back, and is its own backward (the transpose of this
 * all-to-all is itself).
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "comm/communicator.h"
#include "comm/topology.h"

namespace dsz {
namespace moe {

class ExpertGroup {
public:
    /* Collective over world. Throws DSZ_ERR_INVALID_ARGUMENT when ep_size
     * does not divide the world size. */
    ExpertGroup(std::shared_ptr<comm::Communicator> world, int ep_size);

    int ep_size() const { return topo_.expert().size(); }
    int ep_rank() const { return topo_.expert().rank(); }
    comm::Communicator &world() const { return topo_.world(); }
    comm::Communicator &expert() const { return topo_.expert(); }
    comm::Communicator &expert_data() const { return topo_.expert_data(); }

    /* The MAX of v over the expert-parallel group (collective there). */
    int64_t max(int64_t v) const;

    /* Collective over the expert-parallel group: `bytes` (a multiple of
     * ep_size) are cut into ep_size equal chunks; chunk g goes to group rank
     * g, chunk g of `out` comes from it. in and out must not overlap. */
    void all_to_all(const void *in, void *out, size_t bytes) const;

private:
    comm::Topology topo_;
};

}  // namespace moe
}  // namespace dsz
