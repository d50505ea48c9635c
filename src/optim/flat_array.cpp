/* flat_array.cpp -- see flat_array.h. */
#include "optim/flat_array.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "common/error.h"

namespace dsz {

static constexpr size_t kHugePage = size_t(2) << 20;
/* 16 start offsets, distinct modulo 4 KiB, 64-byte multiples. */
static constexpr size_t kStagger = 1024 + 64;
static std::atomic<unsigned> g_next_offset{0};

FlatArray::FlatArray(size_t n, float init) : size_(n) {
    if (n == 0) return;
    const size_t offset = (g_next_offset.fetch_add(1, std::memory_order_relaxed) % 16) * kStagger;
    if (n > (SIZE_MAX - 2 * kHugePage) / sizeof(float))
        fail(DSZ_ERR_OUT_OF_MEMORY, "optimizer array of %zu floats is too large", n);
    const size_t bytes = (n * sizeof(float) + offset + kHugePage - 1) / kHugePage * kHugePage;
    block_ = std::aligned_alloc(kHugePage, bytes);
    if (!block_) fail(DSZ_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for an optimizer array", bytes);
#ifdef MADV_HUGEPAGE
    madvise(block_, bytes, MADV_HUGEPAGE);  /* before the first touch; a hint only */
#endif
    data_ = reinterpret_cast<float *>(static_cast<char *>(block_) + offset);
    std::fill(data_, data_ + n, init);
}

FlatArray::~FlatArray() { std::free(block_); }

FlatArray::FlatArray(FlatArray &&other) noexcept
    : block_(std::exchange(other.block_, nullptr)), data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

FlatArray &FlatArray::operator=(FlatArray &&other) noexcept {
    if (this != &other) {
        std::free(block_);
        block_ = std::exchange(other.block_, nullptr);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

}  // namespace dsz
