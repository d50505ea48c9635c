/*
 * topology.h -- the process groups of data, pipeline, model and expert
 * parallelism.
 *
 * DeepSpeed's process grid (reference §8.4), made explicit so that every
 * rank computes the same groups without talking: axes (pipe, data, model)
 * with the last axis fastest. With P pipeline stages, T model-parallel ranks
 * and W ranks, D = W / (P * T) ranks hold each stage's replicas and
 *   world rank = (stage * D + d) * T + m
 * (T = 1 is PipeDataParallelTopology: rank = stage * D + d). Within the D
 * data-parallel ranks of a stage (and model rank), expert-parallel groups of
 * E ranks are consecutive in d ([0, E), [E, 2E), ...) and expert-data groups
 * are strided ({i, i + E, i + 2E, ...}), as in DeepSpeed's default "E + D"
 * ordering. Groups are built with split, one collective per kind.
 */
#pragma once

#include <memory>
#include <vector>

#include "comm/communicator.h"

namespace dsz {
namespace comm {

struct TopologySpec {
    int pipeline = 1; /* stages */
    int expert = 1;   /* expert-parallel size; must divide the data-parallel size */
    int model = 1;    /* model (tensor) parallel size, the fastest axis */
};

/* A rank's place in the grid. */
struct GridCoord {
    int stage = 0, data = 0, model = 0;
    bool operator==(const GridCoord &o) const { return stage == o.stage && data == o.data && model == o.model; }
};

class Topology {
public:
    /* Collective over world. Throws DSZ_ERR_INVALID_ARGUMENT when the sizes
     * do not divide. */
    Topology(std::shared_ptr<Communicator> world, const TopologySpec &spec);

    Communicator &world() const { return *world_; }
    Communicator &data() const { return *data_; }        /* same stage and m, all d */
    Communicator &pipeline() const { return *pipe_; }    /* same d and m, all stages */
    Communicator &model() const { return *model_; }      /* same stage and d, all m */
    Communicator &expert() const { return *expert_; }    /* E consecutive d */
    Communicator &expert_data() const { return *edp_; }  /* same d mod E */
    std::shared_ptr<Communicator> world_ptr() const { return world_; }
    std::shared_ptr<Communicator> data_ptr() const { return data_; }
    std::shared_ptr<Communicator> pipeline_ptr() const { return pipe_; }

    const TopologySpec &spec() const { return spec_; }
    int stage() const { return stage_; }
    int data_index() const { return d_; }
    int model_index() const { return m_; }
    int data_size() const { return world_->size() / (spec_.pipeline * spec_.model); }

    /* The rank layout, as pure functions of (spec, world size). */
    static int rank_of(const TopologySpec &spec, int world_size, const GridCoord &c);
    static GridCoord coord_of(const TopologySpec &spec, int world_size, int rank);

    /* The member lists (world ranks) of every group of each kind, in group
     * order; a pure function of (spec, world size). */
    static std::vector<std::vector<int>> data_groups(const TopologySpec &spec, int world_size);
    static std::vector<std::vector<int>> pipeline_groups(const TopologySpec &spec, int world_size);
    static std::vector<std::vector<int>> model_groups(const TopologySpec &spec, int world_size);
    static std::vector<std::vector<int>> expert_groups(const TopologySpec &spec, int world_size);
    static std::vector<std::vector<int>> expert_data_groups(const TopologySpec &spec, int world_size);
    static void validate(const TopologySpec &spec, int world_size);

private:
    TopologySpec spec_;
    int stage_ = 0, d_ = 0, m_ = 0;
    std::shared_ptr<Communicator> world_, data_, pipe_, model_, expert_, edp_;
};

}  // namespace comm
}  // namespace dsz
