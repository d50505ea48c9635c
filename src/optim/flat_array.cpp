/* flat_array.cpp -- see flat_array.h. */
#include "optim/flat_array.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "common/error.h"

namespace dsz {

static constexpr size_t kHugePage = size_t(2) << 20;

FlatArray::FlatArray(size_t n, float init) : size_(n) {
    if (n == 0) return;
    if (n > (SIZE_MAX - kHugePage) / sizeof(float))
        fail(DSZ_ERR_OUT_OF_MEMORY, "optimizer array of %zu floats is too large", n);
    const size_t bytes = (n * sizeof(float) + kHugePage - 1) / kHugePage * kHugePage;
    data_ = static_cast<float *>(std::aligned_alloc(kHugePage, bytes));
    if (!data_) fail(DSZ_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for an optimizer array", bytes);
#ifdef MADV_HUGEPAGE
    madvise(data_, bytes, MADV_HUGEPAGE);  /* before the first touch; a hint only */
#endif
    std::fill(data_, data_ + n, init);
}

FlatArray::~FlatArray() { std::free(data_); }

FlatArray::FlatArray(FlatArray &&other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

FlatArray &FlatArray::operator=(FlatArray &&other) noexcept {
    if (this != &other) {
        std::free(data_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

}  // namespace dsz
