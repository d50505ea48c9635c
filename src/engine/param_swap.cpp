/*
 * param_swap.cpp -- ParamSwap: the fp32 masters' swap files, their layout,
 * and the reads and writes gathers, the optimizer step and checkpoints make
 * through them (see param_swap.h).
 */
#include "engine/param_swap.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "checkpoint/files.h"
#include "common/error.h"

namespace dsz {

namespace {
constexpr const char *kKey = "zero_optimization.offload_param";
}  // namespace

ParamSwap::ParamSwap(const Config &cfg, int rank, const Logger &log) : log_(log) {
    const OffloadParamConfig &o = cfg.zero.offload_param;
    folder_.reset(new SwapFolder(kKey, o.nvme_path, "fp32params", rank, cfg, log_));
    io_ = make_io_engine(cfg);
    buffer_count_ = static_cast<size_t>(std::max<int64_t>(o.buffer_count, 1));
    buffer_size_ = static_cast<size_t>(std::max<int64_t>(o.buffer_size, 1));
    max_in_cpu_ = static_cast<size_t>(std::max<int64_t>(o.max_in_cpu, 0));
    sub_group_size_ = std::max<int64_t>(cfg.zero.sub_group_size, 1);
}

ParamSwap::~ParamSwap() {
    io_.reset();
    for (aio::DirectFile &f : files_)
        if (!f.path().empty()) (void)::unlink(f.path().c_str());
    files_.clear();
}

void ParamSwap::create(const std::vector<SwapGroup> &groups, const std::vector<const float *> &masters) {
    subs_ = layout_sub_groups(groups, sub_group_size_, &group_subs_, &file_bytes_);
    size_t largest_sub = 0, largest_partition = 0;
    for (const SubGroup &sg : subs_) largest_sub = std::max(largest_sub, sg.size());
    for (const SwapGroup &G : groups) largest_partition = std::max(largest_partition, G.partition);
    if (subs_.empty()) return;
    chunk_ = std::min(buffer_size_, largest_partition);
    const size_t needed = std::max(largest_sub, buffer_count_ * chunk_);
    if (needed > max_in_cpu_)
        fail(DSZ_ERR_CONFIG,
             "%s.max_in_cpu is %zu elements, but the master weights need %zu in host memory for this model's "
             "partitions: both the largest sub-group (%zu elements; zero_optimization.sub_group_size) and "
             "buffer_count x buffer_size (%zu x %zu) must fit; lower those or raise max_in_cpu",
             kKey, max_in_cpu_, needed, largest_sub, buffer_count_, chunk_);
    arena_ = aio::AlignedBuffer(std::max(aio::align_up(largest_sub * sizeof(float)),
                                         buffer_count_ * aio::align_up(chunk_ * sizeof(float))));
    try {
        files_.clear();
        files_.resize(groups.size());
        for (size_t g = 0; g < groups.size(); ++g) {
            if (group_subs_[g].empty()) continue;
            files_[g] = aio::DirectFile(path_join(folder_->path(), "group" + std::to_string(g) + ".fp32.swp"), true);
            files_[g].reserve(file_bytes_[g]);
        }
        for (size_t g = 0; g < groups.size(); ++g)
            if (!group_subs_[g].empty()) write(g, masters[g]);
    } catch (...) {
        for (aio::DirectFile &f : files_)
            if (!f.path().empty()) (void)::unlink(f.path().c_str());
        files_.clear();
        arena_ = aio::AlignedBuffer();
        throw;
    }
}

uint64_t ParamSwap::disk_bytes() const {
    uint64_t n = 0;
    for (size_t g = 0; g < files_.size(); ++g)
        if (!files_[g].path().empty()) n += file_bytes_[g];
    return n;
}

void ParamSwap::verify() const {
    for (size_t g = 0; g < files_.size(); ++g) {
        const aio::DirectFile &f = files_[g];
        if (f.path().empty()) continue;
        const uint64_t have = f.size();
        if (have != file_bytes_[g])
            fail(DSZ_ERR_IO, "parameter swap file %s is %llu bytes, but dszero wrote %llu: it was truncated or "
                             "extended behind dszero's back, and the master weights it held cannot be trusted",
                 f.path().c_str(), static_cast<unsigned long long>(have),
                 static_cast<unsigned long long>(file_bytes_[g]));
    }
}

size_t ParamSwap::find_sub(size_t g, size_t begin) const {
    const std::vector<size_t> &ks = group_subs_[g];
    auto it = std::upper_bound(ks.begin(), ks.end(), begin,
                               [&](size_t b, size_t k) { return b < subs_[k].begin; });
    if (it == ks.begin() || begin >= subs_[*(it - 1)].end)
        fail(DSZ_ERR_INTERNAL, "parameter swap: element %zu of group %zu is outside its partition", begin, g);
    return *(it - 1);
}

aio::Transfer ParamSwap::sub_transfer(size_t sub, bool write) const {
    const SubGroup &sg = subs_[sub];
    aio::Transfer t;
    t.fd = files_[sg.group].fd();
    t.path = files_[sg.group].path();
    t.buf = arena_.data();
    t.bytes = aio::align_up(sg.size() * sizeof(float));
    t.offset = sg.file_offset;
    t.write = write;
    return t;
}

void ParamSwap::read(size_t g, size_t begin, size_t n, const std::function<void(const float *, size_t)> &sink) {
    const size_t buf_bytes = aio::align_up(chunk_ * sizeof(float));
    struct Piece {
        size_t lead, n;
    };
    const size_t end = begin + n;
    size_t pos = begin;
    while (pos < end) {
        /* Up to buffer_count aligned reads in flight, one per buffer. */
        std::vector<aio::Transfer> batch;
        std::vector<Piece> pieces;
        while (pos < end && batch.size() < buffer_count_) {
            const SubGroup &sg = subs_[find_sub(g, pos)];
            const uint64_t off = sg.file_offset + (pos - sg.begin) * sizeof(float);
            const uint64_t aligned = off / aio::kIoAlignment * aio::kIoAlignment;
            const size_t lead = static_cast<size_t>(off - aligned);
            const size_t m = std::min({end, sg.end, pos + (buf_bytes - lead) / sizeof(float)}) - pos;
            aio::Transfer t;
            t.fd = files_[g].fd();
            t.path = files_[g].path();
            t.buf = arena_.data() + batch.size() * buf_bytes;
            t.bytes = aio::align_up(lead + m * sizeof(float));
            t.offset = aligned;
            batch.push_back(t);
            pieces.push_back(Piece{lead, m});
            pos += m;
        }
        io_->run(std::move(batch));
        for (size_t i = 0; i < pieces.size(); ++i)
            sink(reinterpret_cast<const float *>(arena_.data() + i * buf_bytes + pieces[i].lead), pieces[i].n);
    }
}

void ParamSwap::write(size_t g, const float *values) {
    for (size_t k : group_subs_[g]) {
        std::memcpy(arena_.data(), values + subs_[k].begin, subs_[k].size() * sizeof(float));
        io_->run({sub_transfer(k, true)});
    }
}

float *ParamSwap::load_sub_group(size_t g, size_t begin) {
    const size_t k = find_sub(g, begin);
    io_->run({sub_transfer(k, false)});
    return arena_.as<float>();
}

void ParamSwap::store_sub_group(size_t g, size_t begin) { io_->run({sub_transfer(find_sub(g, begin), true)}); }

}  // namespace dsz
