/*
 * zero_gather.cpp -- parameters on demand (ZeRO stage 3, reference §5.2).
 *
 * At stage 3 a rank keeps only its partition of each group's fp32 masters;
 * the flat layout is the one of stages 1 and 2, so checkpoints and gradient
 * buckets are shared with them. dsz_gather makes full parameters available:
 * each rank converts its pieces of the requested parameters to the model
 * dtype and one all-gather (a "fetch") assembles them into buffers dszero
 * owns. Counts track gathers and releases; a buffer is freed when its count
 * drops to zero, unless the parameter is persistent (small ones, kept once
 * gathered) or is used again soon in the recorded order of gathers.
 *
 * That order (the "trace") is recorded between two dsz_step calls; while
 * later micro-batches repeat it, every gather also starts fetching what
 * comes next, within prefetch_bucket_size and max_live_parameters, so the
 * all-gather runs while the host computes. Fetches use their own
 * communicator, and each carries a hash of its parameter list: ranks whose
 * gathers diverge fail with an error instead of mixing up parameters.
 *
 * At stages 0-2 the same calls only count and describe the host's tensors.
 */
#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "common/error.h"
#include "engine/engine.h"
#include "engine/param_swap.h"
#include "tensor/convert.h"

namespace dsz {

namespace {

constexpr size_t kHeaderBytes = 16; /* fetch id, list hash */
constexpr size_t kConvertGrain = size_t(1) << 17;

uint64_t list_hash(const std::vector<size_t> &params) {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](uint64_t v) {
        for (int i = 0; i < 8; ++i) {
            h ^= (v >> (8 * i)) & 0xff;
            h *= 1099511628211ull;
        }
    };
    mix(params.size());
    for (size_t p : params) mix(p);
    return h;
}

}  // namespace

void Engine::check_indices(const char *what, const std::vector<size_t> &indices) const {
    require_registered(what);
    for (size_t i : indices)
        if (i >= params_.size())
            fail(DSZ_ERR_INVALID_ARGUMENT, "%s: parameter index %zu is out of range (%zu registered)", what, i,
                 params_.size());
}

void Engine::describe(size_t index, DLTensor *out) const {
    const ParamRecord &p = params_[index];
    std::memset(out, 0, sizeof *out);
    out->data = stage3() ? p.full.get() : p.host.data;
    out->device.device_type = kDLCPU;
    out->device.device_id = 0;
    out->ndim = static_cast<int32_t>(p.host.shape.size());
    out->dtype = dtype_to_dlpack(p.host.dtype);
    out->shape = const_cast<int64_t *>(p.host.shape.data());
    out->strides = nullptr;
    out->byte_offset = 0;
}

void Engine::param_tensor(size_t index, DLTensor *out) const {
    check_indices("dsz_param_tensor", {index});
    const ParamRecord &p = params_[index];
    if (stage3() && (!p.full || p.fetch >= 0 || (p.refs == 0 && !p.persistent)))
        fail(DSZ_ERR_STATE,
             "parameter '%s' is not gathered: at ZeRO stage 3 its values exist only between dsz_gather and the "
             "matching dsz_release",
             p.name.c_str());
    describe(index, out);
}

/* Starts the all-gathers filling `params` (none available, none in flight):
 * one per domain (the world, or an expert-data-parallel group). */
void Engine::start_fetch(const std::vector<size_t> &params) {
    for (size_t d = 0; d < domains_.size(); ++d) {
        std::vector<size_t> mine;
        for (size_t i : params)
            if (groups_[static_cast<size_t>(params_[i].group)].domain == d) mine.push_back(i);
        if (!mine.empty()) start_domain_fetch(d, mine);
    }
}

void Engine::start_domain_fetch(size_t domain, const std::vector<size_t> &params) {
    const DType dt = params_[params[0]].host.dtype;
    const size_t es = dtype_size(dt);
    const Domain &D = domains_[domain];
    ParamFetch f;
    f.id = next_fetch_;
    f.domain = domain;
    f.params = params;
    f.bytes.assign(static_cast<size_t>(D.size()), kHeaderBytes);
    size_t total = 0;
    for (size_t i : params) {
        const ParamRecord &p = params_[i];
        const GroupLayout &L = layout_.groups[static_cast<size_t>(p.group)];
        for (int r = 0; r < D.size(); ++r)
            f.bytes[static_cast<size_t>(r)] += partition_overlap(L, r, p.offset, p.host.numel).size() * es;
        total += p.host.numel;
    }
    /* Swapped masters (offload_param nvme) are read from their files; a
     * damaged file fails here, before any parameter changed state. */
    if (param_swap_) param_swap_->verify();
    f.send.resize(f.bytes[static_cast<size_t>(D.rank())]);
    const uint64_t header[2] = {static_cast<uint64_t>(f.id), list_hash(params)};
    std::memcpy(f.send.data(), header, kHeaderBytes);
    size_t at = kHeaderBytes;
    for (size_t i : params) {
        const ParamRecord &p = params_[i];
        const GroupState &G = groups_[static_cast<size_t>(p.group)];
        const Range own = partition_overlap(layout_.groups[static_cast<size_t>(p.group)], D.rank(), p.offset, p.host.numel);
        char *to = f.send.data() + at;
        auto convert = [&](const float *from, size_t n) {
            pool_->parallel_for(n, kConvertGrain, [&](size_t, size_t x, size_t y) {
                convert_from_f32(from + x, to + x * es, dt, y - x);
            });
            to += n * es;
        };
        if (own.size() == 0) continue;
        if (param_swap_ && G.master.empty())
            param_swap_->read(static_cast<size_t>(p.group), local_of(G, own.begin), own.size(), convert);
        else
            convert(G.master.data() + local_of(G, own.begin), own.size());
        at += own.size() * es;
    }
    ++next_fetch_;
    for (size_t i : params) {
        ParamRecord &p = params_[i];
        if (!p.full) {
            p.full.reset(new char[std::max<size_t>(1, p.host.numel * es)]);
            available_elements_ += p.host.numel;
        }
        p.fetch = f.id;
    }
    size_t all = 0;
    for (size_t b : f.bytes) all += b;
    f.recv.resize(all);
    count_comm(total);
    f.req = (D.params ? *D.params : *D.comm).iall_gather(f.send.data(), f.recv.data(),
                                                        comm::Partition::from_counts(f.bytes), 1);
    fetches_.push_back(std::move(f));
    note_memory();
}

void Engine::finish_fetch(int64_t id) {
    auto it = std::find_if(fetches_.begin(), fetches_.end(), [&](const ParamFetch &f) { return f.id == id; });
    if (it == fetches_.end()) fail(DSZ_ERR_INTERNAL, "stage 3: fetch %lld is not in flight", static_cast<long long>(id));
    ParamFetch &f = *it;
    auto list = [&] {
        std::string s;
        for (size_t k = 0; k < f.params.size() && k < 4; ++k) s += (k ? ", '" : "'") + params_[f.params[k]].name + "'";
        if (f.params.size() > 4) s += strprintf(" and %zu more", f.params.size() - 4);
        return s;
    };
    /* A failed fetch leaves its parameters unavailable, as before it started. */
    auto abandon = [&](dsz_status status, const std::string &message) {
        for (size_t i : f.params) {
            params_[i].fetch = -1;
            if (params_[i].refs == 0) drop_values(params_[i]);
        }
        fetches_.erase(it);
        fail(status, "%s", message.c_str());
    };
    try {
        waiting([&] { f.req.wait(); });
    } catch (const Error &e) {
        abandon(e.status(), strprintf("fetching %s failed (did every rank gather the same parameters in the same "
                                      "order?): %s", list().c_str(), e.what()));
    }
    const DType dt = params_[f.params[0]].host.dtype;
    const size_t es = dtype_size(dt);
    const uint64_t hash = list_hash(f.params);
    size_t base = 0;
    const Domain &D = domains_[f.domain];
    for (int r = 0; r < D.size(); ++r) {
        uint64_t header[2];
        std::memcpy(header, f.recv.data() + base, kHeaderBytes);
        if (header[0] != static_cast<uint64_t>(f.id) || header[1] != hash)
            abandon(DSZ_ERR_COMM,
                    strprintf("rank %d fetched other parameters than rank %d (which fetched %s): every rank must "
                              "gather, release and prefetch the same parameters in the same order at ZeRO stage 3",
                              r, D.rank(), list().c_str()));
        size_t at = base + kHeaderBytes;
        for (size_t i : f.params) {
            ParamRecord &p = params_[i];
            const Range part = partition_overlap(layout_.groups[static_cast<size_t>(p.group)], r, p.offset, p.host.numel);
            std::memcpy(p.full.get() + (part.begin - p.offset) * es, f.recv.data() + at, part.size() * es);
            at += part.size() * es;
        }
        base += f.bytes[static_cast<size_t>(r)];
    }
    for (size_t i : f.params) params_[i].fetch = -1;
    fetches_.erase(it);
}

void Engine::finish_all_fetches() {
    while (!fetches_.empty()) finish_fetch(fetches_.front().id);
}

void Engine::drop_values(ParamRecord &p) {
    if (!p.full) return;
    p.full.reset();
    available_elements_ -= p.host.numel;
}

void Engine::gather(const std::vector<size_t> &indices, DLTensor *out) {
    check_indices("dsz_gather", indices);
    if (stage3()) {
        /* The trace: what this micro-batch gathers, in order. */
        if (trace_state_ == Trace::recording) {
            trace_.push_back(indices);
        } else if (trace_state_ == Trace::valid) {
            if (trace_pos_ < trace_.size() && trace_[trace_pos_] == indices) {
                ++trace_pos_;
            } else {
                trace_state_ = Trace::restart;
                log_.log(DSZ_LOG_DEBUG, "ZeRO stage 3: the order of dsz_gather calls changed; recording it again");
            }
        }
        std::vector<size_t> need;
        for (size_t i : indices) {
            ParamRecord &p = params_[i];
            if (!p.full && std::find(need.begin(), need.end(), i) == need.end()) need.push_back(i);
        }
        start_fetch(need);
        if (trace_state_ == Trace::valid) prefetch_along_trace();
        for (size_t i : indices)
            if (params_[i].fetch >= 0) finish_fetch(params_[i].fetch);
    }
    for (size_t i : indices) ++params_[i].refs;
    if (out)
        for (size_t k = 0; k < indices.size(); ++k) describe(indices[k], out + k);
}

void Engine::release(const std::vector<size_t> &indices) {
    check_indices("dsz_release", indices);
    std::unordered_map<size_t, int> count;
    for (size_t i : indices) {
        const int c = ++count[i];
        if (params_[i].refs < c)
            fail(DSZ_ERR_STATE, "dsz_release: parameter '%s' is not gathered%s (nothing was released)",
                 params_[i].name.c_str(), params_[i].refs > 0 ? " as many times as it is released" : "");
    }
    for (size_t i : indices) {
        ParamRecord &p = params_[i];
        if (--p.refs > 0 || !stage3() || p.persistent) continue;
        if (trace_state_ == Trace::valid && reused_soon(i)) continue;
        drop_values(p);
    }
}

void Engine::prefetch(const std::vector<size_t> &indices) {
    check_indices("dsz_prefetch", indices);
    if (!stage3()) return;
    std::vector<size_t> need;
    for (size_t i : indices)
        if (!params_[i].full && std::find(need.begin(), need.end(), i) == need.end()) need.push_back(i);
    start_fetch(need);
}

/* Whether parameter `index` is gathered again within max_reuse_distance
 * elements of the recorded order, counted from the next call. */
bool Engine::reused_soon(size_t index) const {
    const int64_t limit = cfg_.zero.max_reuse_distance;
    int64_t seen = 0;
    for (size_t c = trace_pos_; c < trace_.size() && seen <= limit; ++c)
        for (size_t i : trace_[c]) {
            if (i == index) return true;
            seen += static_cast<int64_t>(params_[i].host.numel);
        }
    return false;
}

/* Starts fetching the parameters of the next recorded calls that are not
 * available yet: at most prefetch_bucket_size elements, and no more than
 * max_live_parameters elements available (or coming) at once. */
void Engine::prefetch_along_trace() {
    const int64_t live = static_cast<int64_t>(available_elements_);
    const int64_t budget = std::min<int64_t>(cfg_.zero.prefetch_bucket_size, cfg_.zero.max_live_parameters - live);
    std::vector<size_t> next;
    int64_t taken = 0;
    for (size_t c = trace_pos_; c < trace_.size(); ++c)
        for (size_t i : trace_[c]) {
            const ParamRecord &p = params_[i];
            if (p.full || std::find(next.begin(), next.end(), i) != next.end()) continue;
            if (taken + static_cast<int64_t>(p.host.numel) > budget) goto done;
            taken += static_cast<int64_t>(p.host.numel);
            next.push_back(i);
        }
done:
    start_fetch(next);
}

/* Every dsz_step ends a micro-batch: a recording becomes the trace; a trace
 * that was not followed to its end is recorded again. */
void Engine::trace_micro_batch_end() {
    if (!stage3()) return;
    switch (trace_state_) {
    case Trace::recording:
        if (!trace_.empty()) trace_state_ = Trace::valid;
        break;
    case Trace::valid:
        if (trace_pos_ == trace_.size()) break;
        /* fall through */
    case Trace::restart:
        trace_.clear();
        trace_state_ = Trace::recording;
        break;
    }
    trace_pos_ = 0;
}

/* After the masters changed (an update, a load): prefetched values are
 * stale and dropped, what the host holds and persistent parameters are
 * fetched again into the same buffers. */
void Engine::refresh_gathered() {
    if (!stage3()) return;
    finish_all_fetches();
    std::vector<size_t> keep;
    for (size_t i = 0; i < params_.size(); ++i) {
        ParamRecord &p = params_[i];
        if (!p.full) continue;
        if (p.refs > 0 || p.persistent) keep.push_back(i);
        else drop_values(p);
    }
    start_fetch(keep);
    finish_all_fetches();
}

}  // namespace dsz
