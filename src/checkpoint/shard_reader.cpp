/* shard_reader.cpp -- see shard_reader.h. */
#include "checkpoint/shard_reader.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/files.h"
#include "checkpoint/format.h"
#include "common/error.h"

namespace dsz {

/* Full chunks are read straight into the destination this many bytes at a time. */
static constexpr size_t kDirectReadBytes = size_t(64) << 20;

ShardReader::ShardReader(const std::string &dir, const ManifestFile &file)
    : path_(path_join(dir, file.name)), file_(file) {
    if (file.chunk_bytes) {
        chunk_bytes_ = file.chunk_bytes;
        crcs_ = file.chunk_crc32;
    } else { /* format 1.0: the whole file is one chunk */
        chunk_bytes_ = file.bytes ? file.bytes : 1;
        crcs_.assign(1, file.crc32);
    }
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
        if (errno == ENOENT) fail(DSZ_ERR_NOT_FOUND, "checkpoint shard %s does not exist", path_.c_str());
        fail(DSZ_ERR_IO, "cannot open checkpoint shard %s: %s", path_.c_str(), std::strerror(errno));
    }
    struct stat st;
    if (::fstat(fd_, &st) != 0) {
        const int err = errno;
        ::close(fd_);
        fail(DSZ_ERR_IO, "cannot stat %s: %s", path_.c_str(), std::strerror(err));
    }
    if (static_cast<uint64_t>(st.st_size) != file.bytes) {
        ::close(fd_);
        fail(DSZ_ERR_CHECKPOINT, "%s is truncated or padded: %lld bytes, the manifest says %llu", path_.c_str(),
             static_cast<long long>(st.st_size), static_cast<unsigned long long>(file.bytes));
    }
    /* The header is checked by content here; its bytes are covered by chunk 0's checksum. */
    char header[kShardHeaderBytes];
    try {
        if (file.bytes < kShardHeaderBytes) fail(DSZ_ERR_CHECKPOINT, "%s is not a dszero shard", path_.c_str());
        pread_all(header, sizeof header, 0);
    } catch (...) {
        ::close(fd_);
        throw;
    }
    uint32_t hv[4];
    std::memcpy(hv, header + 8, sizeof hv);
    if (std::memcmp(header, kShardMagic, sizeof kShardMagic) != 0 || hv[2] != static_cast<uint32_t>(file.rank)) {
        ::close(fd_);
        fail(DSZ_ERR_CHECKPOINT, "%s is not a dszero shard of rank %d", path_.c_str(), file.rank);
    }
}

ShardReader::~ShardReader() {
    if (fd_ >= 0) ::close(fd_);
}

uint64_t ShardReader::chunk_len(uint64_t chunk) const {
    const uint64_t begin = chunk * chunk_bytes_;
    return std::min(chunk_bytes_, file_.bytes - begin);
}

void ShardReader::pread_all(void *dst, size_t n, uint64_t offset) {
    char *p = static_cast<char *>(dst);
    while (n > 0) {
        const ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail(DSZ_ERR_IO, "cannot read %s: %s", path_.c_str(), std::strerror(errno));
        if (r == 0) fail(DSZ_ERR_CHECKPOINT, "%s is truncated: it ends at byte %llu", path_.c_str(),
                         static_cast<unsigned long long>(offset));
        p += r;
        n -= static_cast<size_t>(r);
        offset += static_cast<uint64_t>(r);
        bytes_read_ += static_cast<uint64_t>(r);
    }
}

void ShardReader::verify(uint64_t chunk, const void *data) const {
    if (crc32_of(data, chunk_len(chunk)) == crcs_[chunk]) return;
    if (!file_.chunk_bytes) fail(DSZ_ERR_CHECKPOINT, "%s is corrupt: its CRC-32 does not match the manifest", path_.c_str());
    const uint64_t b = chunk * chunk_bytes_;
    fail(DSZ_ERR_CHECKPOINT, "%s is corrupt: bytes %llu-%llu (chunk %llu) do not match their CRC-32 in the manifest",
         path_.c_str(), static_cast<unsigned long long>(b), static_cast<unsigned long long>(b + chunk_len(chunk)),
         static_cast<unsigned long long>(chunk));
}

void ShardReader::load_cached(uint64_t chunk) {
    if (cached_ == chunk) return;
    cached_ = UINT64_MAX;
    cache_.resize(chunk_len(chunk));
    pread_all(cache_.data(), cache_.size(), chunk * chunk_bytes_);
    verify(chunk, cache_.data());
    cached_ = chunk;
}

void ShardReader::read(uint64_t offset, size_t n, void *dst_v) {
    if (offset > file_.bytes || n > file_.bytes - offset)
        fail(DSZ_ERR_CHECKPOINT, "%s: a read of %zu bytes at %llu runs past its end", path_.c_str(), n,
             static_cast<unsigned long long>(offset));
    char *dst = static_cast<char *>(dst_v);
    const uint64_t end = offset + n;
    while (offset < end) {
        const uint64_t chunk = offset / chunk_bytes_, cb = chunk * chunk_bytes_, ce = cb + chunk_len(chunk);
        if (offset == cb && ce <= end && cached_ != chunk) {
            /* A run of whole chunks: read into place, then verify each. */
            uint64_t run_end = ce;
            while (run_end < end && run_end - offset < kDirectReadBytes) {
                const uint64_t next = std::min(run_end + chunk_bytes_, file_.bytes);
                if (next > end) break;
                run_end = next;
            }
            pread_all(dst, run_end - offset, offset);
            for (uint64_t c = chunk; c * chunk_bytes_ < run_end; ++c) verify(c, dst + (c * chunk_bytes_ - offset));
            dst += run_end - offset;
            offset = run_end;
            continue;
        }
        load_cached(chunk);
        const uint64_t take = std::min(end, ce) - offset;
        std::memcpy(dst, cache_.data() + (offset - cb), take);
        dst += take;
        offset += take;
    }
}

}  // namespace dsz
