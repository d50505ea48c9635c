/*
 * aligned_buffer.h -- host memory that O_DIRECT transfers can use.
 *
 * O_DIRECT moves data between the device and user memory without the page
 * cache, so the buffer address, the file offset and the length must all be
 * multiples of the device's logical block size. dszero aligns everything to
 * kIoAlignment (4096 bytes: the largest logical block size of common
 * devices), whatever the device, so one layout works on every disk.
 * This build has no CUDA: buffers are plain page-aligned host memory (a CUDA
 * build would register them as pinned memory here).
 */
#pragma once

#include <cstddef>

namespace dsz::aio {

constexpr size_t kIoAlignment = 4096;

inline size_t align_up(size_t bytes) { return (bytes + kIoAlignment - 1) / kIoAlignment * kIoAlignment; }

/* Owns `bytes` (rounded up to kIoAlignment) of kIoAlignment-aligned memory,
 * zero-filled. Throws DSZ_ERR_OUT_OF_MEMORY. */
class AlignedBuffer {
public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(size_t bytes);
    ~AlignedBuffer();
    AlignedBuffer(AlignedBuffer &&o) noexcept;
    AlignedBuffer &operator=(AlignedBuffer &&o) noexcept;
    AlignedBuffer(const AlignedBuffer &) = delete;
    AlignedBuffer &operator=(const AlignedBuffer &) = delete;

    char *data() const { return data_; }
    size_t size() const { return size_; }
    template <class T> T *as() const { return reinterpret_cast<T *>(data_); }

private:
    char *data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace dsz::aio
