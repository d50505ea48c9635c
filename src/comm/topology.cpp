/* topology.cpp -- the process grid and its groups (see topology.h). */
#include "comm/topology.h"

#include "common/error.h"

namespace dsz {
namespace comm {

void Topology::validate(const TopologySpec &spec, int W) {
    if (spec.pipeline < 1 || W % spec.pipeline)
        fail(DSZ_ERR_INVALID_ARGUMENT, "%d pipeline stages do not divide the world size %d", spec.pipeline, W);
    if (spec.model < 1 || (W / spec.pipeline) % spec.model)
        fail(DSZ_ERR_INVALID_ARGUMENT, "model-parallel size %d does not divide the %d ranks of a pipeline stage "
                                       "(world %d / %d stages)",
             spec.model, W / spec.pipeline, W, spec.pipeline);
    const int D = W / (spec.pipeline * spec.model);
    if (spec.expert < 1 || D % spec.expert)
        fail(DSZ_ERR_INVALID_ARGUMENT,
             "expert-parallel size %d does not divide the data-parallel size %d (world %d / %d stages / %d model)",
             spec.expert, D, W, spec.pipeline, spec.model);
}

int Topology::rank_of(const TopologySpec &spec, int W, const GridCoord &c) {
    validate(spec, W);
    const int D = W / (spec.pipeline * spec.model);
    return (c.stage * D + c.data) * spec.model + c.model;
}

GridCoord Topology::coord_of(const TopologySpec &spec, int W, int rank) {
    validate(spec, W);
    if (rank < 0 || rank >= W) fail(DSZ_ERR_INVALID_ARGUMENT, "rank %d is outside the world of %d", rank, W);
    const int T = spec.model, D = W / (spec.pipeline * T);
    GridCoord c;
    c.model = rank % T;
    c.data = (rank / T) % D;
    c.stage = rank / (T * D);
    return c;
}

/* Groups formed by fixing two coordinates (outer loops, in axis order) and
 * running the third (inner), each as world ranks. */
template <class Rank>
static std::vector<std::vector<int>> groups_along(int outer, int middle, int inner, Rank rank) {
    std::vector<std::vector<int>> g;
    for (int a = 0; a < outer; ++a)
        for (int b = 0; b < middle; ++b) {
            g.emplace_back();
            for (int c = 0; c < inner; ++c) g.back().push_back(rank(a, b, c));
        }
    return g;
}

std::vector<std::vector<int>> Topology::data_groups(const TopologySpec &spec, int W) {
    validate(spec, W);
    const int P = spec.pipeline, T = spec.model, D = W / (P * T);
    return groups_along(P, T, D, [&](int s, int m, int d) { return (s * D + d) * T + m; });
}

std::vector<std::vector<int>> Topology::pipeline_groups(const TopologySpec &spec, int W) {
    validate(spec, W);
    const int P = spec.pipeline, T = spec.model, D = W / (P * T);
    return groups_along(D, T, P, [&](int d, int m, int s) { return (s * D + d) * T + m; });
}

std::vector<std::vector<int>> Topology::model_groups(const TopologySpec &spec, int W) {
    validate(spec, W);
    const int P = spec.pipeline, T = spec.model, D = W / (P * T);
    return groups_along(P, D, T, [&](int s, int d, int m) { return (s * D + d) * T + m; });
}

std::vector<std::vector<int>> Topology::expert_groups(const TopologySpec &spec, int W) {
    validate(spec, W);
    const int P = spec.pipeline, T = spec.model, D = W / (P * T), E = spec.expert;
    /* one group per (stage, model rank, block of E consecutive d) */
    return groups_along(P * T, D / E, E, [&](int sm, int b, int e) {
        return ((sm / T) * D + b * E + e) * T + sm % T;
    });
}

std::vector<std::vector<int>> Topology::expert_data_groups(const TopologySpec &spec, int W) {
    validate(spec, W);
    const int P = spec.pipeline, T = spec.model, D = W / (P * T), E = spec.expert;
    /* one group per (stage, model rank, d mod E) */
    return groups_along(P * T, E, D / E, [&](int sm, int e, int b) {
        return ((sm / T) * D + b * E + e) * T + sm % T;
    });
}

Topology::Topology(std::shared_ptr<Communicator> world, const TopologySpec &spec)
    : spec_(spec), world_(std::move(world)) {
    const int W = world_->size();
    const GridCoord c = coord_of(spec, W, world_->rank());
    const int T = spec.model, D = W / (spec.pipeline * T), E = spec.expert;
    stage_ = c.stage;
    d_ = c.data;
    m_ = c.model;
    /* Colors and keys reproduce the *_groups() lists above. */
    data_ = world_->split(stage_ * T + m_, d_, "data");
    pipe_ = world_->split(d_ * T + m_, stage_, "pipeline");
    model_ = world_->split(stage_ * D + d_, m_, "model");
    expert_ = world_->split((stage_ * T + m_) * (D / E) + d_ / E, d_ % E, "expert");
    edp_ = world_->split((stage_ * T + m_) * E + d_ % E, d_ / E, "expert_data");
}

}  // namespace comm
}  // namespace dsz
