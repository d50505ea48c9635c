/* topology.cpp -- data / pipeline / expert groups (see topology.h). */
#include "comm/topology.h"

#include "common/error.h"

namespace dsz {
namespace comm {

void Topology::validate(const TopologySpec &spec, int W) {
    if (spec.pipeline < 1 || W % spec.pipeline)
        fail(DSZ_ERR_INVALID_ARGUMENT, "%d pipeline stages do not divide the world size %d", spec.pipeline, W);
    const int D = W / spec.pipeline;
    if (spec.expert < 1 || D % spec.expert)
        fail(DSZ_ERR_INVALID_ARGUMENT,
             "expert-parallel size %d does not divide the data-parallel size %d (world %d / %d stages)",
             spec.expert, D, W, spec.pipeline);
}

std::vector<std::vector<int>> Topology::data_groups(const TopologySpec &spec, int W) {
    validate(spec, W);
    const int D = W / spec.pipeline;
    std::vector<std::vector<int>> g(static_cast<size_t>(spec.pipeline));
    for (int s = 0; s < spec.pipeline; ++s)
        for (int d = 0; d < D; ++d) g[static_cast<size_t>(s)].push_back(s * D + d);
    return g;
}

std::vector<std::vector<int>> Topology::pipeline_groups(const TopologySpec &spec, int W) {
    validate(spec, W);
    const int D = W / spec.pipeline;
    std::vector<std::vector<int>> g(static_cast<size_t>(D));
    for (int d = 0; d < D; ++d)
        for (int s = 0; s < spec.pipeline; ++s) g[static_cast<size_t>(d)].push_back(s * D + d);
    return g;
}

std::vector<std::vector<int>> Topology::expert_groups(const TopologySpec &spec, int W) {
    validate(spec, W);
    const int D = W / spec.pipeline, E = spec.expert;
    std::vector<std::vector<int>> g;
    for (int s = 0; s < spec.pipeline; ++s)
        for (int b = 0; b < D / E; ++b) {
            g.emplace_back();
            for (int e = 0; e < E; ++e) g.back().push_back(s * D + b * E + e);
        }
    return g;
}

std::vector<std::vector<int>> Topology::expert_data_groups(const TopologySpec &spec, int W) {
    validate(spec, W);
    const int D = W / spec.pipeline, E = spec.expert;
    std::vector<std::vector<int>> g;
    for (int s = 0; s < spec.pipeline; ++s)
        for (int e = 0; e < E; ++e) {
            g.emplace_back();
            for (int b = 0; b < D / E; ++b) g.back().push_back(s * D + b * E + e);
        }
    return g;
}

Topology::Topology(std::shared_ptr<Communicator> world, const TopologySpec &spec)
    : spec_(spec), world_(std::move(world)) {
    const int W = world_->size(), r = world_->rank();
    validate(spec, W);
    const int D = W / spec.pipeline, E = spec.expert;
    stage_ = r / D;
    d_ = r % D;
    /* Colors and keys reproduce the *_groups() lists above. */
    data_ = world_->split(stage_, d_, "data");
    pipe_ = world_->split(d_, stage_, "pipeline");
    expert_ = world_->split(stage_ * (D / E) + d_ / E, d_ % E, "expert");
    edp_ = world_->split(stage_ * E + d_ % E, d_ / E, "expert_data");
}

}  // namespace comm
}  // namespace dsz
