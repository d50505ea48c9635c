/*
 * swap_folder.h -- one rank's swap folder under an nvme_path, shared by the
 * optimizer-state swap (SwapStore, <nvme_path>/zero_stage_3/optimizer/) and
 * the parameter swap (ParamSwap, <nvme_path>/zero_stage_3/fp32params/).
 *
 * Creating one checks that NVMe offload is possible at all (libaio, no GDS),
 * that nvme_path exists and is a writable directory (DSZ_ERR_CONFIG when
 * unset, DSZ_ERR_IO naming it otherwise), makes the rank folder, locks it
 * (flock: a second engine on the same folder gets DSZ_ERR_IO) and probes
 * O_DIRECT (one warning and buffered I/O where the filesystem refuses it).
 * Destroying it removes the lock and the folders it made, where empty.
 */
#pragma once

#include <memory>
#include <string>

#include "aio/io_engine.h"
#include "common/log.h"
#include "config/config.h"

namespace dsz {

class SwapFolder {
public:
    SwapFolder() = default;
    /* key: the config section named in messages; kind: "optimizer" or "fp32params". */
    SwapFolder(const char *key, const std::string &nvme_path, const char *kind, int rank, const Config &cfg,
               const Logger &log);
    ~SwapFolder();
    SwapFolder(const SwapFolder &) = delete;
    SwapFolder &operator=(const SwapFolder &) = delete;

    const std::string &path() const { return folder_; }
    /* The checks above that need no folder (libaio, use_gds). */
    static void check_possible(const char *key, const Config &cfg);

private:
    std::string folder_;
    int lock_fd_ = -1;
};

/* The I/O engine configured by the "aio" section. */
std::unique_ptr<aio::IoEngine> make_io_engine(const Config &cfg);

}  // namespace dsz
