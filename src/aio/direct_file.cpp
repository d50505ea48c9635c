/* direct_file.cpp -- DirectFile (see direct_file.h). */
#include "aio/direct_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/error.h"

namespace dsz::aio {

DirectFile::DirectFile(const std::string &path, bool create) : path_(path) {
    const int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0);
    fd_ = ::open(path.c_str(), flags | O_DIRECT, 0600);
    direct_ = fd_ >= 0;
    if (fd_ < 0 && errno == EINVAL) fd_ = ::open(path.c_str(), flags, 0600);
    if (fd_ < 0)
        fail(DSZ_ERR_IO, "cannot %s %s: %s", create ? "create" : "open", path.c_str(), std::strerror(errno));
}

DirectFile::~DirectFile() {
    if (fd_ >= 0) ::close(fd_);
}

DirectFile::DirectFile(DirectFile &&o) noexcept
    : path_(std::move(o.path_)), fd_(std::exchange(o.fd_, -1)), direct_(o.direct_) {}

DirectFile &DirectFile::operator=(DirectFile &&o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        path_ = std::move(o.path_);
        fd_ = std::exchange(o.fd_, -1);
        direct_ = o.direct_;
    }
    return *this;
}

void DirectFile::reserve(uint64_t bytes) {
    if (bytes == 0) return;
    int rc;
    do rc = ::fallocate(fd_, 0, 0, static_cast<off_t>(bytes));
    while (rc != 0 && errno == EINTR);
    if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) rc = ::ftruncate(fd_, static_cast<off_t>(bytes));
    if (rc != 0) {
        const int e = errno;
        fail(DSZ_ERR_IO, "cannot reserve %llu bytes for %s: %s%s", static_cast<unsigned long long>(bytes),
             path_.c_str(), std::strerror(e),
             e == ENOSPC ? " (the disk is full: free space or point nvme_path elsewhere)"
             : e == EFBIG ? " (a file-size limit, ulimit -f, is below the swap file's size)"
                          : "");
    }
}

uint64_t DirectFile::size() const {
    struct stat st;
    if (::fstat(fd_, &st) != 0) fail(DSZ_ERR_IO, "cannot stat %s: %s", path_.c_str(), std::strerror(errno));
    return static_cast<uint64_t>(st.st_size);
}

}  // namespace dsz::aio
