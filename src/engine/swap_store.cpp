/*
 * swap_store.cpp -- SwapStore: the swap folder, its files, the sub-group
 * layout and the checkpoint accessors (the step's pipeline is in
 * swap_pipeline.cpp). See swap_store.h.
 */
#include "engine/swap_store.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "checkpoint/files.h"
#include "common/error.h"

namespace dsz {

namespace {

constexpr const char *kKey = "zero_optimization.offload_optimizer";

void remove_quietly(const std::string &path) { (void)::unlink(path.c_str()); }

}  // namespace

SwapStore::SwapStore(const Config &cfg, int rank, const Logger &log) : log_(log) {
    const OffloadOptimizerConfig &o = cfg.zero.offload_optimizer;
    SwapFolder::check_possible(kKey, cfg);
    if (o.ratio < 1)
        fail(DSZ_ERR_UNSUPPORTED, "%s.ratio %g: partial offload keeps some sub-groups on the GPU, and this build "
                                  "has none; use ratio 1 with device \"nvme\"",
             kKey, o.ratio);
    folder_.reset(new SwapFolder(kKey, o.nvme_path, "optimizer", rank, cfg, log_));
    io_ = make_io_engine(cfg);
    pipeline_read_ = o.pipeline_read;
    pipeline_write_ = o.pipeline_write;
    buffer_count_ = static_cast<size_t>(o.buffer_count);
    sub_group_size_ = std::max<int64_t>(cfg.zero.sub_group_size, 1);
}

SwapStore::~SwapStore() {
    io_.reset();
    for (auto &per_group : files_)
        for (aio::DirectFile &f : per_group) remove_quietly(f.path());
    files_.clear();
}

std::vector<SubGroup> layout_sub_groups(const std::vector<SwapGroup> &groups, int64_t sub_group_size,
                                        std::vector<std::vector<size_t>> *group_subs,
                                        std::vector<uint64_t> *file_bytes) {
    std::vector<SubGroup> subs;
    group_subs->assign(groups.size(), {});
    file_bytes->assign(groups.size(), 0);
    for (size_t g = 0; g < groups.size(); ++g) {
        const SwapGroup &G = groups[g];
        if (G.partition == 0) continue;
        std::vector<size_t> ends;
        size_t start = 0;
        for (const Segment &t : *G.tensors)
            if (t.offset + t.n < G.partition && t.offset + t.n - start >= static_cast<size_t>(sub_group_size)) {
                ends.push_back(t.offset + t.n);
                start = t.offset + t.n;
            }
        ends.push_back(G.partition);
        start = 0;
        for (size_t end : ends) {
            SubGroup sg;
            sg.group = g;
            sg.begin = start;
            sg.end = end;
            sg.file_offset = (*file_bytes)[g];
            for (const Span &s : *G.spans)
                if (s.offset >= start && s.offset < end) sg.spans.push_back(Span{s.offset - start, s.n, s.out});
            for (const Segment &t : *G.tensors)
                if (t.offset >= start && t.offset < end) sg.tensors.push_back(Segment{t.offset - start, t.n});
            (*file_bytes)[g] += aio::align_up(sg.size() * sizeof(float));
            (*group_subs)[g].push_back(subs.size());
            subs.push_back(std::move(sg));
            start = end;
        }
    }
    return subs;
}

void SwapStore::create(const std::vector<SwapGroup> &groups, const Optimizer &opt) {
    n_states_ = static_cast<size_t>(opt.state_count());
    subs_ = layout_sub_groups(groups, sub_group_size_, &group_subs_, &file_bytes_);
    size_t largest = 0;
    for (const SubGroup &sg : subs_) largest = std::max(largest, sg.size());
    if (n_states_ == 0 || subs_.empty()) return;

    if (buffer_count_ < n_states_)
        fail(DSZ_ERR_CONFIG, "%s.buffer_count is %zu, but each sub-group swaps %zu optimizer states (%s): at least %zu "
                             "buffers are needed",
             kKey, buffer_count_, n_states_, opt.name(), n_states_);
    /* Three sub-groups in flight (reading, updating, writing) is all the pipeline uses. */
    const size_t n_slots = std::min({buffer_count_ / n_states_, size_t(3), subs_.size()});
    slots_.clear();
    for (size_t k = 0; k < n_slots; ++k) {
        slots_.emplace_back();
        for (size_t s = 0; s < n_states_; ++s) slots_.back().emplace_back(largest * sizeof(float));
    }
    try {
        files_.clear();
        files_.resize(groups.size());
        for (size_t g = 0; g < groups.size(); ++g) {
            if (group_subs_[g].empty()) continue;
            for (size_t s = 0; s < n_states_; ++s) {
                files_[g].emplace_back(path_join(folder_->path(), "group" + std::to_string(g) + "." + opt.state_name(static_cast<int>(s)) + ".swp"), true);
                files_[g].back().reserve(file_bytes_[g]);
            }
        }
        for (size_t s = 0; s < n_states_; ++s)
            std::fill_n(buffer(0, s), slots_[0][s].size() / sizeof(float), opt.state_init(static_cast<int>(s)));
        std::vector<aio::Transfer> batch;
        for (size_t k = 0; k < subs_.size(); ++k)
            for (size_t s = 0; s < n_states_; ++s) batch.push_back(transfer(k, s, 0, true));
        io_->run(std::move(batch));
    } catch (...) {
        for (auto &per_group : files_)
            for (aio::DirectFile &f : per_group) remove_quietly(f.path());
        files_.clear();
        slots_.clear();
        throw;
    }
}

size_t SwapStore::buffer_bytes() const {
    size_t n = 0;
    for (const auto &slot : slots_)
        for (const aio::AlignedBuffer &b : slot) n += b.size();
    return n;
}

uint64_t SwapStore::disk_bytes() const {
    uint64_t n = 0;
    for (size_t g = 0; g < files_.size(); ++g) n += file_bytes_[g] * files_[g].size();
    return n;
}

void SwapStore::verify() const {
    for (size_t g = 0; g < files_.size(); ++g)
        for (const aio::DirectFile &f : files_[g]) {
            const uint64_t have = f.size();
            if (have != file_bytes_[g])
                fail(DSZ_ERR_IO, "swap file %s is %llu bytes, but dszero wrote %llu: it was truncated or extended "
                                 "behind dszero's back, and the optimizer states it held cannot be trusted",
                     f.path().c_str(), static_cast<unsigned long long>(have),
                     static_cast<unsigned long long>(file_bytes_[g]));
        }
}

aio::Transfer SwapStore::transfer(size_t sub, size_t s, size_t slot, bool write) {
    const SubGroup &sg = subs_[sub];
    const aio::DirectFile &f = files_[sg.group][s];
    aio::Transfer t;
    t.fd = f.fd();
    t.path = f.path();
    t.buf = slots_[slot][s].data();
    t.bytes = aio::align_up(sg.size() * sizeof(float));
    t.offset = sg.file_offset;
    t.write = write;
    return t;
}

aio::IoEngine::Ticket SwapStore::start(size_t sub, size_t slot, bool write) {
    std::vector<aio::Transfer> batch;
    for (size_t s = 0; s < n_states_; ++s) batch.push_back(transfer(sub, s, slot, write));
    return io_->start(std::move(batch));
}

void SwapStore::read_state(size_t g, size_t s, const std::function<void(const float *, size_t)> &sink) {
    for (size_t k : group_subs_[g]) {
        io_->run({transfer(k, s, 0, false)});
        sink(buffer(0, s), subs_[k].size());
    }
}

void SwapStore::write_state(size_t g, size_t s, const float *values) {
    for (size_t k : group_subs_[g]) {
        std::memcpy(buffer(0, s), values + subs_[k].begin, subs_[k].size() * sizeof(float));
        io_->run({transfer(k, s, 0, true)});
    }
}

}  // namespace dsz
