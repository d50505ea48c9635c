/*
 * direct_writer.h -- writing a large file at the disk's speed.
 *
 * On the machines measured (docs/checkpoint.md, bench/RESULTS-checkpoint.md)
 * writing through the page cache and then fsync'ing reached a fifth of the
 * disk's O_DIRECT rate. A shard is written once and read back rarely, so it
 * bypasses the cache: the bytes are copied into aligned staging buffers
 * (the caller checksums them meanwhile) and each full buffer is written with
 * O_DIRECT by a helper thread while the next ones fill; three writes may be
 * in flight, so the disk stays busy when this thread is slow to run (a
 * 1.5 GB file took 0.53 s with three, 0.58 s with two: medians of 5, see
 * bench/RESULTS-checkpoint.md). The tail that
 * is not a multiple of the block size is written through the cache. The
 * caller still fsyncs the file for its metadata.
 */
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <string>

namespace dsz {

class DirectWriter {
public:
    /* `fd` was opened with O_DIRECT; `path` names it in errors. */
    DirectWriter(int fd, const std::string &path);
    ~DirectWriter();
    void write(const char *p, size_t n);
    /* Writes what is staged and waits for every write; throws DSZ_ERR_IO. */
    void finish();

    static constexpr size_t kBufferBytes = size_t(16) << 20;
    static constexpr size_t kAlign = 4096;

private:
    struct Aligned {
        void operator()(char *p) const { std::free(p); }
    };
    void flush(size_t bytes);

    int fd_;
    std::string path_;
    static constexpr int kBuffers = 4;   /* three in flight, one filling */
    std::unique_ptr<char, Aligned> buf_[kBuffers];
    std::future<void> pending_[kBuffers];
    int cur_ = 0;
    size_t fill_ = 0;
    uint64_t file_offset_ = 0;
};

}  // namespace dsz
