/*
 * page_vector.h -- std::vector storage that starts on a page boundary.
 *
 * The engine's fp32 masters and optimizer states are what a checkpoint
 * reads and writes; O_DIRECT moves bytes between the disk and user memory
 * only when the memory is block-aligned, and glibc's malloc returns large
 * blocks 16 bytes past a page boundary. With this allocator dsz_load reads
 * a shard's arrays straight into vectors of the engine's own type and swaps
 * them in (checkpoint/loaded_ranges.h) instead of copying them over.
 *
 * Unlike std::allocator, a value-less resize(n) or vector(n) leaves the new
 * elements unset (as new float[n] does), so that a fresh array's pages stay
 * untouched until a helper thread faults them in or a read fills them: say
 * the value (assign(n, v), resize(n, v)) where it matters.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

namespace dsz {

template <class T>
struct PageAlignedAllocator {
    using value_type = T;
    static constexpr size_t kPage = 4096;

    PageAlignedAllocator() = default;
    template <class U>
    PageAlignedAllocator(const PageAlignedAllocator<U> &) noexcept {}

    T *allocate(size_t n) {
        if (n > (SIZE_MAX - kPage) / sizeof(T)) throw std::bad_alloc();
        const size_t bytes = (n * sizeof(T) + kPage - 1) / kPage * kPage;
        void *p = std::aligned_alloc(kPage, bytes ? bytes : kPage);
        if (!p) throw std::bad_alloc();
        return static_cast<T *>(p);
    }
    void deallocate(T *p, size_t) noexcept { std::free(p); }

    template <class U>
    void construct(U *p) noexcept { ::new (static_cast<void *>(p)) U; } /* default-initialised: unset */
    template <class U, class... Args>
    void construct(U *p, Args &&...args) { ::new (static_cast<void *>(p)) U(std::forward<Args>(args)...); }

    template <class U>
    bool operator==(const PageAlignedAllocator<U> &) const noexcept { return true; }
    template <class U>
    bool operator!=(const PageAlignedAllocator<U> &) const noexcept { return false; }
};

/* The engine's per-group fp32 arrays (GroupState::master, GroupState::states). */
using PageAlignedFloats = std::vector<float, PageAlignedAllocator<float>>;

}  // namespace dsz
