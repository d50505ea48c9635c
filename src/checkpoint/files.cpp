/* files.cpp -- see files.h. */
#include "checkpoint/files.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#ifdef DSZ_HAVE_ISAL
#include <isa-l/crc.h>
#endif

#include "checkpoint/direct_writer.h"
#include "common/error.h"

namespace dsz {

uint32_t crc32_of(const void *data, size_t n, uint32_t crc) {
#ifdef DSZ_HAVE_ISAL
    return ::crc32_gzip_refl(crc, static_cast<const unsigned char *>(data), n); /* zlib's CRC-32, faster */
#else
    const unsigned char *p = static_cast<const unsigned char *>(data);
    while (n > 0) {
        const uInt chunk = n > (1u << 30) ? (1u << 30) : static_cast<uInt>(n);
        crc = static_cast<uint32_t>(::crc32(crc, p, chunk));
        p += chunk;
        n -= chunk;
    }
    return crc;
#endif
}

FileWriter::FileWriter(const std::string &path, uint64_t chunk_bytes, bool direct)
    : path_(path), chunk_bytes_(chunk_bytes) {
    const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    if (direct) {
        fd_ = ::open(path.c_str(), flags | O_DIRECT, 0644);
        if (fd_ >= 0) direct_.reset(new DirectWriter(fd_, path));
        else if (errno != EINVAL) fail(DSZ_ERR_IO, "cannot create %s: %s", path.c_str(), std::strerror(errno));
    }
    if (fd_ < 0) fd_ = ::open(path.c_str(), flags, 0644); /* also where O_DIRECT is refused */
    if (fd_ < 0) fail(DSZ_ERR_IO, "cannot create %s: %s", path.c_str(), std::strerror(errno));
}

FileWriter::~FileWriter() {
    direct_.reset(); /* waits for its writes */
    if (fd_ >= 0) ::close(fd_);
}

void FileWriter::write(const void *data, size_t n) {
    const char *p = static_cast<const char *>(data);
    if (!chunk_bytes_) {
        crc_ = crc32_of(data, n, crc_);
        write_raw(p, n);
        return;
    }
    /* Chunk by chunk: each is checksummed while it is still in cache, then written. */
    while (n > 0) {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(n, chunk_bytes_ - chunk_fill_));
        chunk_crc_ = crc32_of(p, take, chunk_crc_);
        write_raw(p, take);
        chunk_fill_ += take;
        if (chunk_fill_ == chunk_bytes_) end_chunk();
        p += take;
        n -= take;
    }
}

/* The whole-file CRC is combined from the chunks' (zlib crc32_combine), not computed twice. */
void FileWriter::end_chunk() {
    chunk_crcs_.push_back(chunk_crc_);
    crc_ = static_cast<uint32_t>(::crc32_combine(crc_, chunk_crc_, static_cast<z_off_t>(chunk_fill_)));
    chunk_crc_ = 0;
    chunk_fill_ = 0;
}

void FileWriter::write_raw(const char *p, size_t n) {
    bytes_ += n;
    if (direct_) {
        direct_->write(p, n);
        return;
    }
    while (n > 0) {
        ssize_t w = ::write(fd_, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) fail(DSZ_ERR_IO, "cannot write %s: %s", path_.c_str(), std::strerror(errno));
        p += w;
        n -= static_cast<size_t>(w);
    }
}

void FileWriter::close() {
    if (chunk_bytes_ && chunk_fill_ > 0) end_chunk();
    if (direct_) direct_->finish();
    if (::fsync(fd_) != 0) fail(DSZ_ERR_IO, "cannot sync %s: %s", path_.c_str(), std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail(DSZ_ERR_IO, "cannot close %s: %s", path_.c_str(), std::strerror(errno));
}

std::string path_join(const std::string &a, const std::string &b) {
    if (a.empty()) return b;
    return a.back() == '/' ? a + b : a + "/" + b;
}

bool path_exists(const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

void make_dirs(const std::string &path) {
    if (path.empty()) fail(DSZ_ERR_INVALID_ARGUMENT, "checkpoint directory is empty");
    std::string cur;
    size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        cur = path.substr(0, pos);
        if (cur.empty()) continue;
        if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
            fail(DSZ_ERR_IO, "cannot create directory %s: %s", cur.c_str(), std::strerror(errno));
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        fail(DSZ_ERR_IO, "%s is not a directory", path.c_str());
}

static int remove_entry(const char *p, const struct stat *, int, struct FTW *) {
    ::remove(p);
    return 0;
}

void remove_tree(const std::string &path) {
    ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void fsync_dir(const std::string &path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail(DSZ_ERR_IO, "cannot open directory %s: %s", path.c_str(), std::strerror(errno));
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) fail(DSZ_ERR_IO, "cannot sync directory %s: %s", path.c_str(), std::strerror(err));
}

static std::string parent_of(const std::string &path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

bool commit_dir(const std::string &from, const std::string &to) {
    if (path_exists(to)) {
        if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) != 0)
            fail(DSZ_ERR_IO, "cannot replace %s: %s", to.c_str(), std::strerror(errno));
        fsync_dir(parent_of(to));
        return true;
    }
    if (::rename(from.c_str(), to.c_str()) != 0)
        fail(DSZ_ERR_IO, "cannot rename %s to %s: %s", from.c_str(), to.c_str(), std::strerror(errno));
    fsync_dir(parent_of(to));
    return false;
}

void publish_file(const std::string &tmp, const std::string &path) {
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        fail(DSZ_ERR_IO, "cannot rename %s to %s: %s", tmp.c_str(), path.c_str(), std::strerror(errno));
    fsync_dir(parent_of(path));
}

void write_file_atomic(const std::string &path, const std::string &text) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    try {
        FileWriter w(tmp);
        w.write(text.data(), text.size());
        w.close();
        publish_file(tmp, path);
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
}

std::string read_file(const std::string &path, const char *what) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) {
        if (errno == ENOENT) fail(DSZ_ERR_NOT_FOUND, "%s %s does not exist", what, path.c_str());
        fail(DSZ_ERR_IO, "cannot open %s %s: %s", what, path.c_str(), std::strerror(errno));
    }
    std::string out;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    const bool bad = std::ferror(f);
    std::fclose(f);
    if (bad) fail(DSZ_ERR_IO, "cannot read %s %s", what, path.c_str());
    return out;
}

}  // namespace dsz
