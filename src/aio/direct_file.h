/*
 * direct_file.h -- a file opened for O_DIRECT transfers, and its checks.
 *
 * Swap files bypass the page cache (O_DIRECT): their data is read once per
 * step and would only evict the host's memory. Some filesystems refuse
 * O_DIRECT at open (EINVAL); the file is then opened buffered and direct()
 * says so, so that the owner can warn once. Space is reserved up front
 * (fallocate), so that a full disk or a file-size limit is reported when
 * the files are created, not in the middle of an optimizer step.
 */
#pragma once

#include <cstdint>
#include <string>

namespace dsz::aio {

class DirectFile {
public:
    DirectFile() = default;
    /* create: create or truncate; else open an existing file. Always
     * read-write. Throws DSZ_ERR_IO naming the path and the reason. */
    DirectFile(const std::string &path, bool create);
    ~DirectFile();
    DirectFile(DirectFile &&o) noexcept;
    DirectFile &operator=(DirectFile &&o) noexcept;
    DirectFile(const DirectFile &) = delete;
    DirectFile &operator=(const DirectFile &) = delete;

    int fd() const { return fd_; }
    bool direct() const { return direct_; }
    const std::string &path() const { return path_; }

    /* Makes the file `bytes` long with its blocks allocated. A full disk
     * (ENOSPC) or a file-size limit (EFBIG) is DSZ_ERR_IO naming the path
     * and the size. Where the filesystem cannot preallocate, the file is
     * only extended. */
    void reserve(uint64_t bytes);
    /* Current size (fstat); DSZ_ERR_IO on failure. */
    uint64_t size() const;

private:
    std::string path_;
    int fd_ = -1;
    bool direct_ = false;
};

}  // namespace dsz::aio
