/*
 * zero_grads.cpp -- gradients across ranks (ZeRO stages 0-3).
 *
 * Stages 0 and 1 accumulate full gradients locally and reduce once per
 * accumulation window, at the boundary: stage 0 all-reduces (every rank
 * updates everything), stage 1 reduce-scatters into this rank's partition.
 * Stages 2 and 3 reduce-scatter during backward, bucket by bucket: a bucket is a
 * fixed flat range of reduce_bucket_size elements, launched once every
 * parameter overlapping it has handed over its gradient. Buckets launch in
 * descending flat order (backward usually produces the last layers first)
 * so that all ranks issue the collectives in the same order whatever order
 * their gradients arrive in; with overlap_comm the reductions run while the
 * host computes the rest of backward. Sums are formed in rank order by the
 * communicator, so every stage sees the same reduced values. A group is
 * reduced over the ranks sharing it: the world, or for MoE expert groups
 * the expert-data-parallel group; either way the sum is later divided by
 * the world size (DeepSpeed divides expert gradients by the whole
 * data-parallel size too).
 */
#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "engine/engine.h"
#include "tensor/convert.h"

namespace dsz {

static constexpr size_t kConvertGrain = size_t(1) << 17;
static constexpr size_t kBucketsInFlight = 2; /* DeepSpeed alternates two IPG buffers */

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

/* Buffers of a bucket: a free slot of the pool (a new one if all are busy,
 * which happens only while kBucketsInFlight others are in flight and a
 * bucket fills out of order). Padding is zero; gradients overwrite the rest. */
int Engine::take_slot(Bucket &k) {
    if (k.slot >= 0) return k.slot;
    size_t s = 0;
    while (s < slots_.size() && slots_[s].busy) ++s;
    if (s == slots_.size()) slots_.emplace_back();
    BucketSlot &b = slots_[s];
    const size_t n = k.end - k.begin;
    if (b.buf.size() < n) b.buf.resize(n);
    const size_t numel = layout_.groups[k.group].numel;
    if (k.end > numel) std::fill(b.buf.begin() + static_cast<long>(std::max(numel, k.begin) - k.begin),
                                 b.buf.begin() + static_cast<long>(n), 0.0f);
    b.busy = true;
    k.slot = static_cast<int>(s);
    return k.slot;
}

void Engine::bucket_grad(const ParamRecord &p, const char *src, DType dt) {
    const size_t es = dtype_size(dt);
    const size_t lo = p.offset, hi = p.offset + p.host.numel;
    for (Bucket &k : buckets_) {
        if (k.group != static_cast<size_t>(p.group) || k.end <= lo || k.begin >= hi) continue;
        const size_t b = std::max(lo, k.begin), e = std::min(hi, k.end);
        float *dst = slots_[static_cast<size_t>(take_slot(k))].buf.data() + (b - k.begin);
        const char *from = src + (b - lo) * es;
        pool_->parallel_for(e - b, kConvertGrain, [&](size_t, size_t x, size_t y) {
            convert_to_f32(from + x * es, dt, dst + x, y - x);
        });
        k.filled += e - b;
    }
    launch_ready_buckets(false);
}

/* Launches buckets in descending order while the next one is complete (or
 * all remaining ones, at the end of backward). Parameters that gave no
 * gradient count as zeros. At most kBucketsInFlight stay in flight: the
 * oldest is completed before another starts. */
void Engine::launch_ready_buckets(bool all) {
    while (next_bucket_ >= 0) {
        Bucket &k = buckets_[static_cast<size_t>(next_bucket_)];
        if (!all && k.filled < k.expected) break;
        BucketSlot &slot = slots_[static_cast<size_t>(take_slot(k))];
        if (k.filled < k.expected) {
            const GroupLayout &L = layout_.groups[k.group];
            for (size_t j = 0; j < L.params.size(); ++j) {
                const ParamRecord &p = params_[L.params[j]];
                const size_t b = std::max(p.offset, k.begin), e = std::min(p.offset + p.host.numel, k.end);
                if (b < e && !p.grad_in_micro)
                    std::fill(slot.buf.begin() + static_cast<long>(b - k.begin),
                              slot.buf.begin() + static_cast<long>(e - k.begin), 0.0f);
            }
        }
        while (in_flight_.size() >= kBucketsInFlight) {
            complete_bucket(buckets_[in_flight_.front()]);
            in_flight_.erase(in_flight_.begin());
        }
        const GroupLayout &L = layout_.groups[k.group];
        const GroupState &G = groups_[k.group];
        std::vector<size_t> counts(static_cast<size_t>(G.parts));
        for (int r = 0; r < G.parts; ++r)
            counts[static_cast<size_t>(r)] = partition_overlap(L, r, k.begin, k.end - k.begin).size();
        if (slot.recv.size() < counts[static_cast<size_t>(G.part)]) slot.recv.resize(counts[static_cast<size_t>(G.part)]);
        count_comm(k.end - k.begin);
        note_memory();
        k.req = group_comm(G).ireduce_scatter(slot.buf.data(), slot.recv.data(), comm::Partition::from_counts(counts),
                                       comm::ElemType::f32, comm::ReduceOp::sum);
        in_flight_.push_back(static_cast<size_t>(next_bucket_));
        if (!cfg_.zero.overlap_comm) {
            complete_bucket(k);
            in_flight_.pop_back();
        }
        --next_bucket_;
    }
}

void Engine::complete_bucket(Bucket &k) {
    waiting([&] { k.req.wait(); });
    GroupState &G = groups_[k.group];
    BucketSlot &slot = slots_[static_cast<size_t>(k.slot)];
    const Range own = partition_overlap(layout_.groups[k.group], G.part, k.begin, k.end - k.begin);
    if (own.size() > 0) {
        float *dst = G.grad.data() + local_of(G, own.begin);
        if (G.grad_window)
            for (size_t i = 0; i < own.size(); ++i) dst[i] += slot.recv[i];
        else
            std::memcpy(dst, slot.recv.data(), own.size() * sizeof(float));
    }
    slot.busy = false;
    k.slot = -1;
    k.filled = 0;
}

/* End of a micro-batch at stage 2: launch what is left, complete every
 * bucket in flight. */
void Engine::finish_buckets() {
    launch_ready_buckets(true);
    for (size_t b : in_flight_) complete_bucket(buckets_[b]);
    in_flight_.clear();
    for (GroupState &G : groups_) G.grad_window = true;
    next_bucket_ = static_cast<long>(buckets_.size()) - 1;
}

void Engine::reduce_at_boundary() {
    if (world_ == 1 || cfg_.zero.stage >= 2) return;
    for (size_t g = 0; g < groups_.size(); ++g) {
        GroupState &G = groups_[g];
        if (G.grad.empty() || G.parts == 1) continue;
        count_comm(cfg_.zero.stage == 0 ? 2 * G.grad.size() : G.grad.size());
        waiting([&] {
            if (cfg_.zero.stage == 0)
                group_comm(G).all_reduce(G.grad.data(), G.grad.data(), G.grad.size(), comm::ElemType::f32,
                                         comm::ReduceOp::sum);
            else
                group_comm(G).reduce_scatter(G.grad.data(), G.part_grad.data(),
                                             comm::Partition::even(G.grad.size(), G.parts), comm::ElemType::f32,
                                             comm::ReduceOp::sum);
        });
    }
}

const float *Engine::reduced_grad(const GroupState &G) const {
    if (cfg_.zero.stage == 1) return G.parts == 1 ? G.grad.data() : G.part_grad.data();
    return G.grad.data();
}

double Engine::global_sumsq(double local) {
    for (comm::Communicator *c : {comm_.get(), norm_comm_.get()}) {
        if (!c || c->size() == 1) continue;
        count_comm(2); /* an all-reduce of one element */
        waiting([&] { local = c->all_reduce_value(local, comm::ReduceOp::sum); });
    }
    return local;
}

}  // namespace dsz
