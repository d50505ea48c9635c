/*
 * manifest.h -- a checkpoint's manifest.json, parsed and checked once.
 *
 * Loading, resharding and consolidation all start from the same facts: the
 * layout the checkpoint was written with (groups, parameters, partitions),
 * which shard holds which array at which byte offset, the checksums, and the
 * global state (counters, loss scaler, schedule). parse_manifest() checks
 * that those facts are self-consistent (a partition that does not fit its
 * file, a parameter outside its group, a missing shard) so that the code
 * after it can trust them; every error names the manifest and the field.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "optim/loss_scaler.h"

namespace dsz {

struct ManifestParam {
    std::string name;
    std::vector<int64_t> shape;
    std::string dtype;         /* "float32", "float16", "bfloat16" */
    size_t offset = 0;         /* flat, inside its group's slice */
    size_t numel = 0;
    size_t slice = 0;          /* expert groups: the expert-parallel rank that held it */
};

/* A group is one flat layout cut into partitions, one per shard file. An
 * MoE expert group (format >= 1.2, ep_size > 0) is ep_size such layouts
 * ("slices", alike in shape, holding different experts): slice e was held
 * by the ranks of expert-parallel rank e, partition j of it by file
 * slice_files[e][j]. An ordinary group is one slice held by every file
 * (slice_files empty: partition j is in file j). */
struct ManifestGroup {
    std::string name;
    double base_lr = 0, weight_decay = 0;
    int64_t step_count = 0;
    int ep_size = 0;                     /* > 0: MoE expert parameters */
    size_t numel = 0, padded = 0, partition = 0;   /* of one slice */
    std::vector<ManifestParam> params;   /* slice by slice, each in flat order */
    std::vector<std::vector<int>> slice_files;
};

struct ManifestArray {
    size_t group = 0;
    std::string kind;          /* "master" or an optimizer state name */
    uint64_t offset = 0;       /* bytes, inside the shard file */
    uint64_t count = 0;        /* fp32 elements (the group's partition) */
};

struct ManifestFile {
    std::string name;          /* relative to the checkpoint directory */
    int rank = 0;
    uint64_t bytes = 0;
    uint32_t crc32 = 0;        /* of the whole file */
    /* Format >= 1.1: a CRC-32 per chunk_bytes of the file (the last chunk may
     * be shorter), so a reader verifies only what it reads. */
    uint64_t chunk_bytes = 0;  /* 0: format 1.0, only the whole-file CRC */
    std::vector<uint32_t> chunk_crc32;
    std::vector<ManifestArray> arrays;
};

struct Manifest {
    std::string path;          /* of manifest.json, for messages */
    int major = 0, minor = 0;
    int world_size = 0;
    int zero_stage = 0;
    std::string model_dtype;
    std::string optimizer_type;
    std::vector<std::string> states;     /* optimizer state names */
    std::vector<ManifestGroup> groups;
    std::vector<ManifestFile> files;     /* indexed by rank */
    int64_t global_steps = 0, micro_steps = 0, skipped_steps = 0, global_samples = 0;
    double grad_norm = 0;
    LossScalerState loss_scaler;
    int64_t last_batch_iteration = -1;
    std::string client_state = "null";   /* JSON text */

    /* The array `kind` of `group` in shard file `rank`, or nullptr. */
    const ManifestArray *array(int rank, size_t group, const std::string &kind) const;
    /* The file holding partition `part` of slice `slice` of `group`. */
    int file_of(size_t group, size_t slice, size_t part) const {
        const ManifestGroup &G = groups[group];
        return G.slice_files.empty() ? static_cast<int>(part) : G.slice_files[slice][part];
    }
};

/* Parses and checks `text`, the contents of the manifest at `path`. Throws
 * DSZ_ERR_CHECKPOINT naming the file and the field; an unknown major
 * version is refused. */
Manifest parse_manifest(const std::string &text, const std::string &path);

/* dir/<tag>, resolving an empty tag through dir/latest; throws
 * DSZ_ERR_NOT_FOUND when latest is missing. */
std::string resolve_checkpoint_dir(const std::string &dir, const std::string &tag);

}  // namespace dsz
