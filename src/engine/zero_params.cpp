/*
 * zero_params.cpp -- parameters across ranks (ZeRO stages 1-2).
 *
 * At registration rank 0's initial values are broadcast, as DeepSpeed does,
 * so every rank starts from the same model (MoE expert parameters: within
 * their expert-data-parallel group, whose ranks hold the same experts). After each update (stages >= 1)
 * every rank holds new values only for its partition; publish_params()
 * all-gathers them window by window (allgather_bucket_size elements, in the
 * model dtype) through a bounded staging buffer and writes them into the
 * host's tensors, so no full-size flat copy of the model is ever allocated.
 */
#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "engine/engine.h"
#include "tensor/convert.h"

namespace dsz {

void Engine::broadcast_initial_params() {
    for (const ParamRecord &p : params_) {
        comm::Communicator &c = group_comm(groups_[static_cast<size_t>(p.group)]);
        if (p.host.numel && c.size() > 1) c.broadcast(p.host.data, p.host.numel * dtype_size(p.host.dtype), 0);
    }
}

void Engine::publish_params() {
    if (world_ == 1 || cfg_.zero.stage == 0 || stage3() || params_.empty()) return;
    const DType dt = params_[0].host.dtype;
    const size_t es = dtype_size(dt);
    std::vector<char> &send = publish_send_, &recv = publish_recv_; /* kept: no page faults per step */
    for (size_t g = 0; g < groups_.size(); ++g) {
        const GroupLayout &L = layout_.groups[g];
        const GroupState &G = groups_[g];
        if (G.parts == 1) continue; /* the whole group was updated here */
        const size_t window = static_cast<size_t>(std::max<int64_t>(2 * G.parts, cfg_.zero.allgather_bucket_size));
        for (size_t a = 0; a < L.padded; a += window) {
            const size_t b = std::min(L.padded, a + window);
            std::vector<size_t> counts(static_cast<size_t>(G.parts));
            for (int r = 0; r < G.parts; ++r) counts[static_cast<size_t>(r)] = partition_overlap(L, r, a, b - a).size();
            const Range own = partition_overlap(L, G.part, a, b - a);
            send.resize(own.size() * es);
            recv.resize((b - a) * es);
            const float *from = G.master.data() + local_of(G, own.begin);
            pool_->parallel_for(own.size(), size_t(1) << 17, [&](size_t, size_t x, size_t y) {
                convert_from_f32(from + x, send.data() + x * es, dt, y - x);
            });
            count_comm(b - a);
            waiting([&] { group_comm(G).all_gather(send.data(), recv.data(), comm::Partition::from_counts(counts), es); });
            for (size_t k = 0; k < L.params.size(); ++k) {
                const ParamRecord &p = params_[L.params[k]];
                const size_t lo = std::max(a, p.offset), hi = std::min(b, p.offset + p.host.numel);
                if (lo >= hi) continue;
                std::memcpy(static_cast<char *>(p.host.data) + (lo - p.offset) * es, recv.data() + (lo - a) * es,
                            (hi - lo) * es);
            }
        }
    }
}

}  // namespace dsz
