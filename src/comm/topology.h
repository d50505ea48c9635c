/*
 * topology.h -- the process groups of data, pipeline and expert parallelism.
 *
 * DeepSpeed's layout, made explicit so that every rank computes the same
 * groups without talking: with P pipeline stages and W ranks, D = W / P
 * ranks hold each stage, world rank = stage * D + d (pipeline outermost, as
 * PipeDataParallelTopology). Within the D data-parallel ranks of a stage,
 * expert-parallel groups of E ranks are consecutive ([0, E), [E, 2E), ...)
 * and expert-data groups are strided ({i, i + E, i + 2E, ...}), as in
 * DeepSpeed's default "E + D" ordering. Groups are built with split, one
 * collective per kind.
 */
#pragma once

#include <memory>
#include <vector>

#include "comm/communicator.h"

namespace dsz {
namespace comm {

struct TopologySpec {
    int pipeline = 1; /* stages; must divide the world size */
    int expert = 1;   /* expert-parallel size; must divide world / pipeline */
};

class Topology {
public:
    /* Collective over world. Throws DSZ_ERR_INVALID_ARGUMENT when the sizes
     * do not divide. */
    Topology(std::shared_ptr<Communicator> world, const TopologySpec &spec);

    Communicator &world() const { return *world_; }
    Communicator &data() const { return *data_; }        /* same stage, all d */
    Communicator &pipeline() const { return *pipe_; }    /* same d, all stages */
    Communicator &expert() const { return *expert_; }    /* E consecutive d */
    Communicator &expert_data() const { return *edp_; }  /* same d mod E */
    std::shared_ptr<Communicator> world_ptr() const { return world_; }
    std::shared_ptr<Communicator> data_ptr() const { return data_; }

    const TopologySpec &spec() const { return spec_; }
    int stage() const { return stage_; }
    int data_index() const { return d_; }

    /* The member lists (world ranks) of every group of each kind, in group
     * order; a pure function of (spec, world size). */
    static std::vector<std::vector<int>> data_groups(const TopologySpec &spec, int world_size);
    static std::vector<std::vector<int>> pipeline_groups(const TopologySpec &spec, int world_size);
    static std::vector<std::vector<int>> expert_groups(const TopologySpec &spec, int world_size);
    static std::vector<std::vector<int>> expert_data_groups(const TopologySpec &spec, int world_size);
    static void validate(const TopologySpec &spec, int world_size);

private:
    TopologySpec spec_;
    int stage_ = 0, d_ = 0;
    std::shared_ptr<Communicator> world_, data_, pipe_, expert_, edp_;
};

}  // namespace comm
}  // namespace dsz
