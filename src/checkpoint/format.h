/*
 * format.h -- constants of the on-disk checkpoint format (docs/checkpoint.md).
 *
 * A checkpoint is a directory <dir>/<tag>/ holding manifest.json (layout,
 * counters, scaler and schedule state, client state, a CRC-32 per file) and
 * one shard file per rank with that rank's fp32 master partition and
 * optimizer states. The major version changes when an old reader could
 * misread a new checkpoint; readers refuse unknown majors. Minor versions
 * add what old readers may ignore: 1.1 adds a CRC-32 per chunk of each
 * shard, so a reader that needs a few ranges (resharding, consolidation)
 * verifies only what it reads; 1.2 adds MoE expert groups ("ep_size" and
 * per-expert-parallel-rank "slices" in place of "params"; written only
 * when the model has expert groups). 1.0 and 1.1 checkpoints still load.
 */
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace dsz {

constexpr const char *kManifestName = "manifest.json";
constexpr const char *kLatestName = "latest";
constexpr const char *kFormatName = "dszero-checkpoint";
constexpr int kFormatMajor = 1;
constexpr int kFormatMinor = 2;
/* Bytes per checksummed chunk of a shard (format >= 1.1): a reader reads at
 * most one chunk more than it needs at each end of a range. */
constexpr uint64_t kShardChunkBytes = uint64_t(4) << 20;

/* kShardChunkBytes, or DSZ_CHECKPOINT_CHUNK_BYTES when set (a testing knob:
 * small chunks exercise the chunked paths with small models). */
uint64_t shard_chunk_bytes();
constexpr char kShardMagic[8] = {'D', 'S', 'Z', 'S', 'H', 'A', 'R', 'D'};
constexpr size_t kShardHeaderBytes = 64;
/* Arrays start at multiples of this in a shard (zero padding between), so a
 * reader can read them with O_DIRECT straight into aligned memory. Readers
 * follow the manifest's offsets, so this is the writer's choice. */
constexpr uint64_t kShardArrayAlign = 4096;
inline uint64_t shard_array_offset(uint64_t end_of_previous) {
    return (end_of_previous + kShardArrayAlign - 1) / kShardArrayAlign * kShardArrayAlign;
}

/* Throws DSZ_ERR_INVALID_ARGUMENT for a tag that is not a plain directory
 * name (save.cpp). */
void check_tag(const std::string &tag);

inline std::string shard_name(int rank) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "rank%05d.shard", rank);
    return buf;
}

}  // namespace dsz
