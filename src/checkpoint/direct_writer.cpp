/* direct_writer.cpp -- see direct_writer.h. */
#include "checkpoint/direct_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

namespace dsz {

/* Clears O_DIRECT on fd: some file systems accept it at open but want a
 * larger alignment than 4 KiB; they get ordinary writes. */
static bool drop_direct(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    return flags >= 0 && (flags & O_DIRECT) && ::fcntl(fd, F_SETFL, flags & ~O_DIRECT) == 0;
}

static void pwrite_all(int fd, const char *p, size_t n, uint64_t offset, const std::string &path) {
    while (n > 0) {
        const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EINVAL && drop_direct(fd)) continue;
        if (w < 0) fail(DSZ_ERR_IO, "cannot write %s: %s", path.c_str(), std::strerror(errno));
        p += w;
        n -= static_cast<size_t>(w);
        offset += static_cast<uint64_t>(w);
    }
}

DirectWriter::DirectWriter(int fd, const std::string &path) : fd_(fd), path_(path) {
    for (auto &b : buf_) {
        b.reset(static_cast<char *>(std::aligned_alloc(kAlign, kBufferBytes)));
        if (!b) fail(DSZ_ERR_OUT_OF_MEMORY, "cannot allocate staging buffers to write %s", path.c_str());
    }
}

DirectWriter::~DirectWriter() {
    for (auto &f : pending_)
        if (f.valid()) f.wait();
}

void DirectWriter::flush(size_t bytes) {
    const int slot = cur_;
    const char *data = buf_[slot].get();
    const uint64_t at = file_offset_;
    const int fd = fd_;
    const std::string path = path_;
    pending_[slot] = std::async(std::launch::async, [=] { pwrite_all(fd, data, bytes, at, path); });
    file_offset_ += bytes;
    cur_ = (cur_ + 1) % kBuffers;
    fill_ = 0;
    if (pending_[cur_].valid()) pending_[cur_].get(); /* the buffer to fill next is free again */
}

void DirectWriter::write(const char *p, size_t n) {
    while (n > 0) {
        const size_t take = std::min(n, kBufferBytes - fill_);
        std::memcpy(buf_[cur_].get() + fill_, p, take);
        fill_ += take;
        p += take;
        n -= take;
        if (fill_ == kBufferBytes) flush(kBufferBytes);
    }
}

void DirectWriter::finish() {
    const size_t aligned = fill_ / kAlign * kAlign, tail = fill_ - aligned;
    const char *rest = buf_[cur_].get() + aligned;
    if (aligned) flush(aligned);
    for (auto &f : pending_)
        if (f.valid()) f.get();
    if (tail) { /* not a whole block: through the page cache */
        const int flags = ::fcntl(fd_, F_GETFL);
        if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0)
            fail(DSZ_ERR_IO, "cannot change the mode of %s: %s", path_.c_str(), std::strerror(errno));
        pwrite_all(fd_, rest, tail, file_offset_, path_);
        file_offset_ += tail;
    }
    fill_ = 0;
}

}  // namespace dsz
