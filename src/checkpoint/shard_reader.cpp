/* shard_reader.cpp -- see shard_reader.h. */
#include "checkpoint/shard_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/files.h"
#include "checkpoint/format.h"
#include "common/error.h"

namespace dsz {

/* Runs of whole chunks are read in pieces of about this size. */
static constexpr uint64_t kReadPieceBytes = uint64_t(16) << 20;
static constexpr uint64_t kAlign = 4096; /* O_DIRECT offsets, sizes and buffers */

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
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
    dfd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT); /* -1 where refused: reads stay buffered */
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
    if (dfd_ >= 0) ::close(dfd_);
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
    bytes_read_ += cache_.size();
    verify(chunk, cache_.data());
    cached_ = chunk;
}

/* Reads at least `need` bytes at the aligned `offset` with O_DIRECT into the
 * aligned `buf` (asking for `n`, a multiple of the block size; the file may
 * end before). */
void ShardReader::pread_direct(char *buf, size_t n, uint64_t offset, size_t need) {
    size_t got = 0;
    while (got < need) {
        ssize_t r = ::pread(dfd_, buf + got, n - got, static_cast<off_t>(offset + got));
        if (r < 0 && errno == EINVAL) /* a file system wanting more alignment: read it normally */
            r = ::pread(fd_, buf + got, n - got, static_cast<off_t>(offset + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail(DSZ_ERR_IO, "cannot read %s: %s", path_.c_str(), std::strerror(errno));
        if (r == 0) fail(DSZ_ERR_CHECKPOINT, "%s is truncated: it ends at byte %llu", path_.c_str(),
                         static_cast<unsigned long long>(offset + got));
        got += static_cast<size_t>(r);
    }
}

void ShardReader::read_run(uint64_t begin, uint64_t end, char *dst) {
    const uint64_t piece = std::max<uint64_t>(1, kReadPieceBytes / chunk_bytes_) * chunk_bytes_;
    const bool direct = dfd_ >= 0 && piece <= kReadPieceBytes;
    if (direct && !staging_[0]) {
        for (auto &b : staging_) {
            b.reset(static_cast<char *>(std::aligned_alloc(kAlign, kReadPieceBytes + 2 * kAlign)));
            if (!b) fail(DSZ_ERR_OUT_OF_MEMORY, "cannot allocate buffers to read %s", path_.c_str());
        }
    }
    /* Pieces are read by helper threads, kReadsInFlight at a time, so the disk
     * stays busy while this thread verifies a piece and (when it was read with
     * O_DIRECT into a staging buffer) copies it into place. */
    const size_t pieces = static_cast<size_t>((end - begin + piece - 1) / piece);
    auto lo_of = [&](uint64_t a) { return direct ? a / kAlign * kAlign : a; };
    std::future<void> inflight[kStagingBuffers];
    auto launch = [&](size_t k) {
        const uint64_t a = begin + k * piece, b = std::min(a + piece, end), lo = lo_of(a);
        char *to = direct ? staging_[k % kStagingBuffers].get() : dst + (a - begin);
        const size_t ask = direct ? static_cast<size_t>((b - lo + kAlign - 1) / kAlign * kAlign) : 0;
        inflight[k % kStagingBuffers] = std::async(std::launch::async, [this, to, a, b, lo, ask, direct] {
            if (direct) pread_direct(to, ask, lo, static_cast<size_t>(b - lo));
            else pread_all(to, static_cast<size_t>(b - a), a);
        });
    };
    /* Where the file and the destination are aligned alike, O_DIRECT reads go straight
     * into place (the last piece's unaligned tail through the page cache). */
    const bool in_place = direct && begin % kAlign == 0 && reinterpret_cast<uintptr_t>(dst) % kAlign == 0;
    if (in_place) {
        auto read_piece = [this, begin, end, piece, dst](size_t k) {
            const uint64_t a = begin + k * piece, b = std::min(a + piece, end), mid = b / kAlign * kAlign;
            if (mid > a) pread_direct(dst + (a - begin), static_cast<size_t>(mid - a), a, static_cast<size_t>(mid - a));
            if (b > std::max(a, mid)) pread_all(dst + (std::max(a, mid) - begin), static_cast<size_t>(b - std::max(a, mid)), std::max(a, mid));
        };
        std::future<void> flying[kReadsInFlight + 1];
        for (size_t k = 0; k < std::min(pieces, kReadsInFlight); ++k)
            flying[k % (kReadsInFlight + 1)] = std::async(std::launch::async, read_piece, k);
        for (size_t k = 0; k < pieces; ++k) {
            const uint64_t a = begin + k * piece, b = std::min(a + piece, end);
            flying[k % (kReadsInFlight + 1)].get();
            if (k + kReadsInFlight < pieces)
                flying[(k + kReadsInFlight) % (kReadsInFlight + 1)] = std::async(std::launch::async, read_piece, k + kReadsInFlight);
            for (uint64_t c = a / chunk_bytes_; c * chunk_bytes_ < b; ++c) verify(c, dst + (c * chunk_bytes_ - begin));
            bytes_read_ += b - a;
        }
        return;
    }
    for (size_t k = 0; k < std::min(pieces, kReadsInFlight); ++k) launch(k);
    for (size_t k = 0; k < pieces; ++k) {
        const uint64_t a = begin + k * piece, b = std::min(a + piece, end);
        inflight[k % kStagingBuffers].get();
        if (k + kReadsInFlight < pieces) launch(k + kReadsInFlight);
        const char *data = direct ? staging_[k % kStagingBuffers].get() + (a - lo_of(a)) : dst + (a - begin);
        for (uint64_t c = a / chunk_bytes_; c * chunk_bytes_ < b; ++c) verify(c, data + (c * chunk_bytes_ - a));
        if (direct) std::memcpy(dst + (a - begin), data, static_cast<size_t>(b - a));
        bytes_read_ += b - a;
    }
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
            uint64_t run_end = ce; /* a run of whole chunks: read into place, verified */
            while (run_end < end && std::min(run_end + chunk_bytes_, file_.bytes) <= end)
                run_end = std::min(run_end + chunk_bytes_, file_.bytes);
            read_run(offset, run_end, dst);
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
