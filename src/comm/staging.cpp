/* staging.cpp -- persistent, reused receive blocks (see staging.h). */
#include "comm/staging.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

namespace dsz {
namespace comm {

StagingPool::~StagingPool() {
    for (char *b : free_) std::free(b); /* blocks still handed out are leaked on purpose */
}

char *StagingPool::acquire() {
    if (!free_.empty()) {
        char *b = free_.back();
        free_.pop_back();
        return b;
    }
    /* 2 MiB alignment lets the kernel back large blocks with huge pages,
     * which also speeds up the single-copy transfers that read them. */
    const size_t align = block_bytes_ >= (size_t(1) << 20) ? size_t(2) << 20 : 4096;
    const size_t bytes = (block_bytes_ + align - 1) / align * align;
    void *p = std::aligned_alloc(align, bytes);
    if (!p) fail(DSZ_ERR_OUT_OF_MEMORY, "cannot allocate a %zu-byte communication buffer", bytes);
#ifdef MADV_HUGEPAGE
    if (align > 4096) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    std::memset(p, 0, bytes); /* fault the pages in now, not inside a collective */
    all_.push_back(static_cast<char *>(p));
    return static_cast<char *>(p);
}

void StagingPool::release(char *block) {
    if (block) free_.push_back(block);
}

}  // namespace comm
}  // namespace dsz
