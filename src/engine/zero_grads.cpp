/*
 * zero_grads.cpp -- gradients across ranks (ZeRO stages 0-2).
 *
 * Stages 0 and 1 accumulate full gradients locally and reduce once per
 * accumulation window, at the boundary: stage 0 all-reduces (every rank
 * updates everything), stage 1 reduce-scatters into this rank's partition.
 * Stage 2 reduce-scatters during backward, bucket by bucket: a bucket is a
 * fixed flat range of reduce_bucket_size elements, launched once every
 * parameter overlapping it has handed over its gradient. Buckets launch in
 * descending flat order (backward usually produces the last layers first)
 * so that all ranks issue the collectives in the same order whatever order
 * their gradients arrive in; with overlap_comm the reductions run while the
 * host computes the rest of backward. Sums are formed in rank order by the
 * communicator, so every stage sees the same reduced values.
 */
#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "engine/engine.h"
#include "tensor/convert.h"

namespace dsz {

void Engine::build_buckets() {
    buckets_.clear();
    const size_t cap = static_cast<size_t>(std::max<int64_t>(1, cfg_.zero.reduce_bucket_size));
    for (size_t g = 0; g < groups_.size(); ++g) {
        const GroupLayout &L = layout_.groups[g];
        for (size_t b = 0; b < L.padded; b += cap) {
            Bucket k;
            k.group = g;
            k.begin = b;
            k.end = std::min(L.padded, b + cap);
            k.expected = std::min(k.end, L.numel) > b ? std::min(k.end, L.numel) - b : 0;
            buckets_.push_back(std::move(k));
        }
    }
    next_bucket_ = static_cast<long>(buckets_.size()) - 1;
}

void Engine::bucket_grad(const ParamRecord &p, const char *src, DType dt) {
    const size_t es = dtype_size(dt);
    const size_t lo = p.offset, hi = p.offset + p.host.numel;
    for (Bucket &k : buckets_) {
        if (k.group != static_cast<size_t>(p.group) || k.end <= lo || k.begin >= hi) continue;
        const size_t b = std::max(lo, k.begin), e = std::min(hi, k.end);
        if (k.buf.empty()) k.buf.assign(k.end - k.begin, 0.0f);
        convert_to_f32(src + (b - lo) * es, dt, k.buf.data() + (b - k.begin), e - b);
        k.filled += e - b;
    }
    launch_ready_buckets(false);
}

/* Launches buckets in descending order while the next one is complete (or
 * all remaining ones, at the end of backward). */
void Engine::launch_ready_buckets(bool all) {
    while (next_bucket_ >= 0) {
        Bucket &k = buckets_[static_cast<size_t>(next_bucket_)];
        if (!all && k.filled < k.expected) break;
        if (k.buf.empty()) k.buf.assign(k.end - k.begin, 0.0f);
        const GroupLayout &L = layout_.groups[k.group];
        std::vector<size_t> counts(static_cast<size_t>(world_));
        for (int r = 0; r < world_; ++r)
            counts[static_cast<size_t>(r)] = partition_overlap(L, r, k.begin, k.end - k.begin).size();
        k.recv.assign(counts[static_cast<size_t>(rank_)], 0.0f);
        k.req = comm_->ireduce_scatter(k.buf.data(), k.recv.data(), comm::Partition::from_counts(counts),
                                       comm::ElemType::f32, comm::ReduceOp::sum);
        k.launched = true;
        if (!cfg_.zero.overlap_comm) k.req.wait();
        --next_bucket_;
    }
}

/* End of a micro-batch at stage 2: launch what is left, wait, and add each
 * rank's share into the partition accumulator. */
void Engine::finish_buckets() {
    launch_ready_buckets(true);
    for (auto it = buckets_.rbegin(); it != buckets_.rend(); ++it) {
        Bucket &k = *it;
        k.req.wait();
        GroupState &G = groups_[k.group];
        const Range own = partition_overlap(layout_.groups[k.group], rank_, k.begin, k.end - k.begin);
        float *dst = G.grad.data() + local_of(G, own.begin);
        if (own.size() == 0) {
            /* this rank owns nothing of the bucket */
        } else if (G.grad_window)
            for (size_t i = 0; i < own.size(); ++i) dst[i] += k.recv[i];
        else
            std::memcpy(dst, k.recv.data(), own.size() * sizeof(float));
        k.buf.clear();
        k.buf.shrink_to_fit();
        k.recv.clear();
        k.filled = 0;
        k.launched = false;
    }
    for (GroupState &G : groups_) G.grad_window = true;
    next_bucket_ = static_cast<long>(buckets_.size()) - 1;
}

void Engine::reduce_at_boundary() {
    if (world_ == 1 || cfg_.zero.stage == 2) return;
    for (size_t g = 0; g < groups_.size(); ++g) {
        GroupState &G = groups_[g];
        if (G.grad.empty()) continue;
        if (cfg_.zero.stage == 0) {
            comm_->all_reduce(G.grad.data(), G.grad.data(), G.grad.size(), comm::ElemType::f32, comm::ReduceOp::sum);
        } else {
            comm_->reduce_scatter(G.grad.data(), G.part_grad.data(),
                                  comm::Partition::even(G.grad.size(), world_), comm::ElemType::f32,
                                  comm::ReduceOp::sum);
        }
    }
}

const float *Engine::reduced_grad(const GroupState &G) const {
    if (cfg_.zero.stage == 1) return world_ == 1 ? G.grad.data() : G.part_grad.data();
    return G.grad.data();
}

double Engine::global_sumsq(double local) {
    return world_ == 1 ? local : comm_->all_reduce_value(local, comm::ReduceOp::sum);
}

}  // namespace dsz
