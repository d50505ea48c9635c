/*
 * swap_folder.cpp -- SwapFolder: checks, creation, locking and removal of a
 * rank's swap folder (see swap_folder.h).
 */
#include "engine/swap_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "aio/aligned_buffer.h"
#include "aio/direct_file.h"
#include "checkpoint/files.h"
#include "common/error.h"

namespace dsz {

void SwapFolder::check_possible(const char *key, const Config &cfg) {
    if (!aio::available())
        fail(DSZ_ERR_UNSUPPORTED, "%s.device \"nvme\": this build of dszero was made without libaio (install "
                                  "libaio-dev and rebuild), so NVMe offload is not available",
             key);
    if (cfg.aio.use_gds)
        fail(DSZ_ERR_UNSUPPORTED, "aio.use_gds: GPUDirect Storage needs CUDA, which this build does not use; set it "
                                  "to false");
}

SwapFolder::SwapFolder(const char *key, const std::string &nvme_path, const char *kind, int rank, const Config &cfg,
                       const Logger &log) {
    check_possible(key, cfg);
    if (nvme_path.empty()) fail(DSZ_ERR_CONFIG, "%s.nvme_path is required with device \"nvme\"", key);
    struct stat st;
    if (::stat(nvme_path.c_str(), &st) != 0)
        fail(DSZ_ERR_IO, "%s.nvme_path %s: %s (dszero does not create it: it should be a folder on a fast local "
                         "disk)",
             key, nvme_path.c_str(), std::strerror(errno));
    if (!S_ISDIR(st.st_mode)) fail(DSZ_ERR_IO, "%s.nvme_path %s is not a directory", key, nvme_path.c_str());
    folder_ = path_join(path_join(path_join(nvme_path, "zero_stage_3"), kind), "rank" + std::to_string(rank));
    try {
        make_dirs(folder_);
    } catch (const Error &e) {
        fail(DSZ_ERR_IO, "%s.nvme_path %s is not usable: %s", key, nvme_path.c_str(), e.what());
    }
    const std::string lock = path_join(folder_, ".lock");
    lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0)
        fail(DSZ_ERR_IO, "%s.nvme_path %s is not writable: cannot create %s: %s", key, nvme_path.c_str(),
             lock.c_str(), std::strerror(errno));
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        ::close(lock_fd_);
        lock_fd_ = -1;
        fail(DSZ_ERR_IO, "the swap folder %s is in use by another dszero engine (another run, or another engine in "
                         "this process, with the same nvme_path and rank): give each its own %s.nvme_path",
             folder_.c_str(), key);
    }
    try {
        /* One aligned block through O_DIRECT: the folder is writable and the
         * filesystem takes direct I/O, or it is said once, here. */
        const std::string probe = path_join(folder_, ".probe");
        aio::DirectFile f(probe, true);
        aio::AlignedBuffer b(aio::kIoAlignment);
        const ssize_t w = ::pwrite(f.fd(), b.data(), b.size(), 0);
        const int e = errno;
        (void)::unlink(probe.c_str());
        if (w != static_cast<ssize_t>(b.size()))
            fail(DSZ_ERR_IO, "%s.nvme_path %s is not writable: writing %s: %s", key, nvme_path.c_str(),
                 probe.c_str(), w < 0 ? std::strerror(e) : "short write");
        if (!f.direct())
            log.warn(strprintf("%s.nvme_path %s: the filesystem refuses O_DIRECT; swapping through the page "
                               "cache instead (slower, and the kernel caches what dszero swaps out)",
                               key, nvme_path.c_str()));
    } catch (...) {
        (void)::unlink(lock.c_str());
        ::close(lock_fd_);
        lock_fd_ = -1;
        throw;
    }
}

SwapFolder::~SwapFolder() {
    if (lock_fd_ < 0) return;
    (void)::unlink(path_join(folder_, ".lock").c_str());
    ::close(lock_fd_);
    /* The folder and the parents dszero made, where nothing else lives. */
    std::string dir = folder_;
    for (int up = 0; up < 3 && ::rmdir(dir.c_str()) == 0; ++up) dir = dir.substr(0, dir.find_last_of('/'));
}

std::unique_ptr<aio::IoEngine> make_io_engine(const Config &cfg) {
    aio::IoSettings s;
    s.block_size = static_cast<size_t>(cfg.aio.block_size);
    s.queue_depth = static_cast<int>(std::min<int64_t>(cfg.aio.queue_depth, 1 << 16));
    s.threads = static_cast<int>(std::min<int64_t>(cfg.aio.intra_op_parallelism, 256));
    s.single_submit = cfg.aio.single_submit;
    s.overlap_events = cfg.aio.overlap_events;
    return std::unique_ptr<aio::IoEngine>(new aio::IoEngine(s));
}

}  // namespace dsz
