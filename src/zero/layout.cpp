/* layout.cpp -- the flat ZeRO layout (see layout.h). */
#include "zero/layout.h"

#include <algorithm>

#include "common/error.h"

namespace dsz {

FlatLayout make_flat_layout(const std::vector<LayoutParam> &params, int n_groups, int world_size) {
    if (world_size < 1) fail(DSZ_ERR_INVALID_ARGUMENT, "world size must be at least 1, got %d", world_size);
    if (n_groups < 1) fail(DSZ_ERR_INVALID_ARGUMENT, "at least one parameter group is needed");
    return make_flat_layout(params, std::vector<int>(static_cast<size_t>(n_groups), world_size));
}

FlatLayout make_flat_layout(const std::vector<LayoutParam> &params, const std::vector<int> &group_parts) {
    const int n_groups = static_cast<int>(group_parts.size());
    if (n_groups < 1) fail(DSZ_ERR_INVALID_ARGUMENT, "at least one parameter group is needed");
    FlatLayout L;
    L.world_size = *std::max_element(group_parts.begin(), group_parts.end());
    for (int p : group_parts)
        if (p < 1) fail(DSZ_ERR_INVALID_ARGUMENT, "a partition count must be at least 1, got %d", p);
    L.groups.resize(static_cast<size_t>(n_groups));
    L.param_group.resize(params.size());
    L.param_offset.resize(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
        const int g = params[i].group;
        if (g < 0 || g >= n_groups)
            fail(DSZ_ERR_INVALID_ARGUMENT, "parameter %zu names group %d, but there are %d groups", i, g,
                 n_groups);
        GroupLayout &G = L.groups[static_cast<size_t>(g)];
        G.params.push_back(i);
        G.offsets.push_back(G.numel);
        L.param_group[i] = g;
        L.param_offset[i] = G.numel;
        G.numel += params[i].numel;
    }
    for (size_t g = 0; g < L.groups.size(); ++g) {
        GroupLayout &G = L.groups[g];
        G.parts = group_parts[g];
        const size_t align = 2 * static_cast<size_t>(G.parts);
        G.padded = (G.numel + align - 1) / align * align;
        G.partition = G.padded / static_cast<size_t>(G.parts);
    }
    return L;
}

Range partition_overlap(const GroupLayout &g, int rank, size_t offset, size_t numel) {
    const size_t lo = static_cast<size_t>(rank) * g.partition, hi = lo + g.partition;
    const size_t b = std::max(lo, offset), e = std::min(hi, offset + numel);
    return b < e ? Range{b, e} : Range{b, b};
}

}  // namespace dsz
