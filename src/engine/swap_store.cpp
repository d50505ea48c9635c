/*
 * swap_store.cpp -- SwapStore: the swap folder, its files, the sub-group
 * layout and the checkpoint accessors (the step's pipeline is in
 * swap_pipeline.cpp). See swap_store.h.
 */
#include "engine/swap_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
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
    if (!aio::available())
        fail(DSZ_ERR_UNSUPPORTED, "%s.device \"nvme\": this build of dszero was made without libaio (install "
                                  "libaio-dev and rebuild), so NVMe offload is not available",
             kKey);
    if (cfg.aio.use_gds)
        fail(DSZ_ERR_UNSUPPORTED, "aio.use_gds: GPUDirect Storage needs CUDA, which this build does not use; set it "
                                  "to false");
    if (o.ratio < 1)
        fail(DSZ_ERR_UNSUPPORTED, "%s.ratio %g: partial offload keeps some sub-groups on the GPU, and this build "
                                  "has none; use ratio 1 with device \"nvme\"",
             kKey, o.ratio);
    if (o.nvme_path.empty()) fail(DSZ_ERR_CONFIG, "%s.nvme_path is required with device \"nvme\"", kKey);
    struct stat st;
    if (::stat(o.nvme_path.c_str(), &st) != 0)
        fail(DSZ_ERR_IO, "%s.nvme_path %s: %s (dszero does not create it: it should be a folder on a fast local "
                         "disk)",
             kKey, o.nvme_path.c_str(), std::strerror(errno));
    if (!S_ISDIR(st.st_mode)) fail(DSZ_ERR_IO, "%s.nvme_path %s is not a directory", kKey, o.nvme_path.c_str());
    folder_ = path_join(path_join(path_join(o.nvme_path, "zero_stage_3"), "optimizer"), "rank" + std::to_string(rank));
    try {
        make_dirs(folder_);
    } catch (const Error &e) {
        fail(DSZ_ERR_IO, "%s.nvme_path %s is not usable: %s", kKey, o.nvme_path.c_str(), e.what());
    }
    const std::string lock = path_join(folder_, ".lock");
    lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0)
        fail(DSZ_ERR_IO, "%s.nvme_path %s is not writable: cannot create %s: %s", kKey, o.nvme_path.c_str(),
             lock.c_str(), std::strerror(errno));
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        ::close(lock_fd_);
        lock_fd_ = -1;
        fail(DSZ_ERR_IO, "the swap folder %s is in use by another dszero engine (another run, or another engine in "
                         "this process, with the same nvme_path and rank): give each its own %s.nvme_path",
             folder_.c_str(), kKey);
    }
    try {
        /* One aligned block through O_DIRECT: the folder is writable and the
         * filesystem takes direct I/O, or it is said once, here. */
        const std::string probe = path_join(folder_, ".probe");
        {
            aio::DirectFile f(probe, true);
            aio::AlignedBuffer b(aio::kIoAlignment);
            const ssize_t w = ::pwrite(f.fd(), b.data(), b.size(), 0);
            const int e = errno;
            remove_quietly(probe);
            if (w != static_cast<ssize_t>(b.size()))
                fail(DSZ_ERR_IO, "%s.nvme_path %s is not writable: writing %s: %s", kKey, o.nvme_path.c_str(),
                     probe.c_str(), w < 0 ? std::strerror(e) : "short write");
            if (!f.direct())
                log_.warn(strprintf("%s.nvme_path %s: the filesystem refuses O_DIRECT; swapping through the page "
                                    "cache instead (slower, and the kernel caches what dszero swaps out)",
                                    kKey, o.nvme_path.c_str()));
        }
        aio::IoSettings s;
        s.block_size = static_cast<size_t>(cfg.aio.block_size);
        s.queue_depth = static_cast<int>(std::min<int64_t>(cfg.aio.queue_depth, 1 << 16));
        s.threads = static_cast<int>(std::min<int64_t>(cfg.aio.intra_op_parallelism, 256));
        s.single_submit = cfg.aio.single_submit;
        s.overlap_events = cfg.aio.overlap_events;
        io_.reset(new aio::IoEngine(s));
    } catch (...) {
        remove_quietly(lock);
        ::close(lock_fd_);
        lock_fd_ = -1;
        throw;
    }
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
    remove_quietly(path_join(folder_, ".lock"));
    if (lock_fd_ >= 0) ::close(lock_fd_);
    /* The folder and the parents dszero made, where nothing else lives. */
    std::string dir = folder_;
    for (int up = 0; up < 3 && ::rmdir(dir.c_str()) == 0; ++up) dir = dir.substr(0, dir.find_last_of('/'));
}

void SwapStore::create(const std::vector<SwapGroup> &groups, const Optimizer &opt) {
    n_states_ = static_cast<size_t>(opt.state_count());
    subs_.clear();
    group_subs_.assign(groups.size(), {});
    file_bytes_.assign(groups.size(), 0);
    size_t largest = 0;
    for (size_t g = 0; g < groups.size(); ++g) {
        const SwapGroup &G = groups[g];
        if (G.partition == 0) continue;
        std::vector<size_t> ends;
        size_t start = 0;
        for (const Segment &t : *G.tensors)
            if (t.offset + t.n < G.partition && t.offset + t.n - start >= static_cast<size_t>(sub_group_size_)) {
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
            sg.file_offset = file_bytes_[g];
            for (const Span &s : *G.spans)
                if (s.offset >= start && s.offset < end) sg.spans.push_back(Span{s.offset - start, s.n, s.out});
            for (const Segment &t : *G.tensors)
                if (t.offset >= start && t.offset < end) sg.tensors.push_back(Segment{t.offset - start, t.n});
            file_bytes_[g] += aio::align_up(sg.size() * sizeof(float));
            largest = std::max(largest, sg.size());
            group_subs_[g].push_back(subs_.size());
            subs_.push_back(std::move(sg));
            start = end;
        }
    }
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
                files_[g].emplace_back(path_join(folder_, "group" + std::to_string(g) + "." + opt.state_name(static_cast<int>(s)) + ".swp"), true);
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
