/*
 * reshard.h -- which bytes of which shard a rank needs, at any world size.
 *
 * A checkpoint stores, per parameter group, the flat layout of zero/layout.h
 * cut into the saving world size's partitions, one per shard file. A rank
 * loading it fills a flat range of each group of its own layout (its
 * partition). plan_reshard() matches the parameters by name, maps each
 * parameter's piece of that range to the saved flat offsets, splits it at
 * the saved partition boundaries and turns every piece into a copy
 * (shard file, byte offset) -> (array, element offset). Nothing is read
 * here: the plan is a pure function of the manifest and the target, so it is
 * tested on its own, and the loader reads exactly the listed ranges.
 * Padding is not copied (it holds no parameter; the loader leaves the
 * initial values there). The same plan serves an unchanged world size (one
 * copy per array) and a ZeRO stage change (only the range differs). MoE
 * expert groups are matched by name too, whatever the saving and loading
 * ep_size: a rank finds its experts in whichever slice holds them.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/manifest.h"

namespace dsz {

/* A parameter as the loading engine has laid it out. */
struct ReshardParam {
    std::string name;
    std::vector<int64_t> shape;
    size_t group = 0;
    size_t offset = 0;         /* flat, inside its group */
    size_t numel = 0;
};

struct ReshardTarget {
    std::vector<ReshardParam> params;
    /* Per group: the flat range [begin, end) this rank fills. */
    std::vector<std::pair<size_t, size_t>> ranges;
    /* The arrays to fill, by manifest kind ("master", then state names). */
    std::vector<std::string> kinds;
    /* Per group: > 0 for MoE expert groups (this rank registered only its
     * experts, 1/ep_size of the group); empty: no expert groups. */
    std::vector<int> ep_sizes;
};

struct ShardCopy {
    int file = 0;              /* the saving rank whose shard holds it */
    uint64_t src = 0;          /* byte offset in that file */
    size_t group = 0;
    size_t kind = 0;           /* index into ReshardTarget::kinds */
    size_t dst = 0;            /* element offset from the group's range begin */
    size_t count = 0;          /* fp32 elements */
};

/* The copies, ordered by (file, src), adjacent ones merged. Throws
 * DSZ_ERR_CHECKPOINT naming the parameter when the parameter sets differ
 * (a name missing on either side, another shape, another group) and naming
 * the file when an array of `kinds` is missing from a shard. */
std::vector<ShardCopy> plan_reshard(const Manifest &m, const ReshardTarget &target);

}  // namespace dsz
