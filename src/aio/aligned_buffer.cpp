/* aligned_buffer.cpp -- AlignedBuffer (see aligned_buffer.h). */
#include "aio/aligned_buffer.h"

#include <cstdlib>
#include <cstring>
#include <utility>

#include "common/error.h"

namespace dsz::aio {

AlignedBuffer::AlignedBuffer(size_t bytes) : size_(align_up(bytes)) {
    if (size_ == 0) return;
    void *p = nullptr;
    if (posix_memalign(&p, kIoAlignment, size_) != 0)
        fail(DSZ_ERR_OUT_OF_MEMORY, "cannot allocate an I/O buffer of %zu bytes", size_);
    std::memset(p, 0, size_);
    data_ = static_cast<char *>(p);
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

AlignedBuffer::AlignedBuffer(AlignedBuffer &&o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

AlignedBuffer &AlignedBuffer::operator=(AlignedBuffer &&o) noexcept {
    if (this != &o) {
        std::free(data_);
        data_ = std::exchange(o.data_, nullptr);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

}  // namespace dsz::aio
