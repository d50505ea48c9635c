/*
 * staging.h -- the persistent receive buffers of the MPI collectives.
 *
 * Open MPI's own large reductions allocate and free a temporary buffer per
 * call, and the page faults of that fresh memory dominate their run time.
 * dszero instead receives into fixed-size blocks that are allocated once,
 * touched once, and recycled: the pool only grows (to the most blocks ever in
 * use at once, a few per peer per operation in flight) and is freed with its
 * communicator. Not thread-safe: the MPI runtime lock guards it.
 */
#pragma once

#include <cstddef>
#include <vector>

namespace dsz {
namespace comm {

class StagingPool {
public:
    explicit StagingPool(size_t block_bytes) : block_bytes_(block_bytes) {}
    ~StagingPool();
    StagingPool(const StagingPool &) = delete;
    StagingPool &operator=(const StagingPool &) = delete;

    size_t block_bytes() const { return block_bytes_; }
    char *acquire();
    void release(char *block);
    /* Blocks ever allocated / currently handed out. */
    size_t allocated() const { return all_.size(); }
    size_t in_use() const { return all_.size() - free_.size(); }
    /* After a failure MPI may still write into blocks that are handed out:
     * the destructor then frees only the returned ones (the rest leak). */

private:
    size_t block_bytes_;
    std::vector<char *> all_, free_;
};

}  // namespace comm
}  // namespace dsz
