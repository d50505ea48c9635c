/*
 * layout.h -- where every parameter lives in the flat buffers (ZeRO §5.1).
 *
 * Per parameter group, parameters are concatenated in order, the group is
 * padded with zeros to a multiple of 2 x its partition count (DeepSpeed's
 * NCCL alignment factor, used for every dtype), and split into that many
 * equal partitions; partition r is [r*P, (r+1)*P). The partition count is
 * the world size, except for groups of MoE expert parameters, which are
 * partitioned over the expert-data-parallel group (world / ep_size ranks).
 * This is a pure function of (parameter sizes and groups, partition
 * counts): that is what lets a checkpoint written at one world size be read
 * at another.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dsz {

struct LayoutParam {
    size_t numel;
    int group;
};

struct GroupLayout {
    std::vector<size_t> params;   /* parameter indices, in flat order */
    std::vector<size_t> offsets;  /* flat offset of each, same order */
    size_t numel = 0;             /* sum of parameter sizes */
    int parts = 1;                /* partitions: the ranks sharing the group */
    size_t padded = 0;            /* numel rounded up to a multiple of 2*parts */
    size_t partition = 0;         /* padded / parts */
};

struct FlatLayout {
    int world_size = 1;
    std::vector<GroupLayout> groups;
    /* For every parameter: its group and its offset inside the group. */
    std::vector<int> param_group;
    std::vector<size_t> param_offset;
};

/* Throws DSZ_ERR_INVALID_ARGUMENT when a group index is outside
 * [0, n_groups) or world_size < 1. Groups may be empty (padded = 0). */
FlatLayout make_flat_layout(const std::vector<LayoutParam> &params, int n_groups, int world_size);
/* The same with a partition count per group (group_parts.size() == n_groups;
 * each >= 1); world_size is then the largest. */
FlatLayout make_flat_layout(const std::vector<LayoutParam> &params, const std::vector<int> &group_parts);

/* The piece of [offset, offset+numel) that falls inside partition `rank` of
 * a group, as [begin, end) in group coordinates (begin == end when none). */
struct Range {
    size_t begin, end;
    size_t size() const { return end - begin; }
};
Range partition_overlap(const GroupLayout &g, int rank, size_t offset, size_t numel);

}  // namespace dsz
