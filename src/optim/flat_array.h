/*
 * flat_array.h -- memory for the flat fp32 arrays an Optimizer updates.
 *
 * The update streams four to six arrays of hundreds of MiB; with 4 KiB
 * pages every 4 KiB of each array costs a page walk, and the Adam step,
 * which keeps fewer loads in flight than a bare streaming loop, loses 5-7%
 * of the memory rate to them (bench/RESULTS.md). FlatArray asks for
 * transparent huge pages (2 MiB aligned, MADV_HUGEPAGE; a hint the kernel
 * may ignore), which brings the step to the streaming limit. Each array
 * starts at a different offset (a multiple of 64 bytes) into its first
 * huge page, so that arrays never share their low address bits: equal low
 * bits put every stream in the same cache sets and make loads of one array
 * falsely wait on stores to another (4 KiB aliasing). Offered to the
 * engine for master weights and optimizer states; nothing here requires it.
 */
#pragma once

#include <cstddef>

namespace dsz {

class FlatArray {
public:
    FlatArray() = default;
    /* n floats, set to `init`; throws DSZ_ERR_OUT_OF_MEMORY. */
    explicit FlatArray(size_t n, float init = 0.0f);
    ~FlatArray();
    FlatArray(FlatArray &&other) noexcept;
    FlatArray &operator=(FlatArray &&other) noexcept;
    FlatArray(const FlatArray &) = delete;
    FlatArray &operator=(const FlatArray &) = delete;

    float *data() const { return data_; }   /* 64-byte aligned */
    size_t size() const { return size_; }

private:
    void *block_ = nullptr;
    float *data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace dsz
