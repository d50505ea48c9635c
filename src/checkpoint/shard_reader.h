/*
 * shard_reader.h -- reading byte ranges of a shard file, verified.
 *
 * A reader resharding a checkpoint needs a few ranges of each shard, never
 * the whole checkpoint; the manifest (format >= 1.1) carries a CRC-32 per
 * chunk of each file, so a range is read with pread, chunk-aligned, and
 * every chunk it touches is checked before its bytes are used. Runs of
 * chunks that a read covers completely are read with O_DIRECT (the page
 * cache halves the cold read rate on the machines measured) into staging
 * buffers, piece by piece, the next piece read by a helper thread while this
 * one is verified and copied into place; the partial
 * chunks at its edges go through one cached chunk, so consecutive small
 * reads (consolidation walks parameters in order) cost one read per chunk.
 * A format-1.0 file has only a whole-file CRC: it is one chunk.
 */
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/manifest.h"

namespace dsz {

class ShardReader {
public:
    /* Opens dir/<file.name>; checks its size against the manifest and its
     * header (magic, rank). Throws DSZ_ERR_NOT_FOUND for a missing file,
     * DSZ_ERR_CHECKPOINT for a truncated or foreign one. */
    ShardReader(const std::string &dir, const ManifestFile &file);
    ~ShardReader();
    ShardReader(const ShardReader &) = delete;
    ShardReader &operator=(const ShardReader &) = delete;

    /* Copies bytes [offset, offset + n) of the file into dst after verifying
     * every chunk they touch; DSZ_ERR_CHECKPOINT naming the file and chunk
     * when one does not match its checksum. */
    void read(uint64_t offset, size_t n, void *dst);
    uint64_t bytes_read() const { return bytes_read_; }

private:
    void pread_all(void *dst, size_t n, uint64_t offset);
    void pread_direct(char *buf, size_t n, uint64_t offset, size_t need);
    void read_run(uint64_t begin, uint64_t end, char *dst);  /* whole chunks */
    void verify(uint64_t chunk, const void *data) const;
    void load_cached(uint64_t chunk);
    uint64_t chunk_len(uint64_t chunk) const;

    std::string path_;
    const ManifestFile &file_;
    uint64_t chunk_bytes_;
    std::vector<uint32_t> crcs_;
    int fd_ = -1;
    int dfd_ = -1;                 /* the same file opened with O_DIRECT, or -1 */
    struct Aligned {
        void operator()(char *p) const { std::free(p); }
    };
    static constexpr size_t kReadsInFlight = 2;
    static constexpr size_t kStagingBuffers = kReadsInFlight + 1;  /* + the one being verified */
    std::unique_ptr<char, Aligned> staging_[kStagingBuffers];
    uint64_t cached_ = UINT64_MAX;
    std::vector<char> cache_;
    uint64_t bytes_read_ = 0;
};

}  // namespace dsz
