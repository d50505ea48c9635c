/*
 * files.h -- the file-system moves a checkpoint needs to be crash-safe.
 *
 * Files are written completely and fsync'ed before anything points at
 * them; a directory becomes visible by one rename (or an atomic exchange
 * with the directory it replaces); `latest` is replaced by rename. Every
 * error names the path and the system's reason.
 */
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dsz {

class DirectWriter;

/* Streams a file out with a running CRC-32 of the whole file and, when
 * chunk_bytes > 0, one per chunk_bytes of it (the last may be shorter);
 * close() fsyncs. The checksums are final after close(). `direct`: bypass
 * the page cache (checkpoint/direct_writer.h) where the file system allows
 * O_DIRECT, for large files. */
class FileWriter {
public:
    explicit FileWriter(const std::string &path, uint64_t chunk_bytes = 0, bool direct = false);
    ~FileWriter();
    void write(const void *data, size_t n);
    void close();
    uint32_t crc() const { return crc_; }
    uint64_t bytes() const { return bytes_; }
    const std::vector<uint32_t> &chunk_crcs() const { return chunk_crcs_; }

private:
    void write_raw(const char *p, size_t n);
    void end_chunk();

    std::string path_;
    int fd_ = -1;
    uint32_t crc_ = 0;
    uint64_t bytes_ = 0;
    uint64_t chunk_bytes_ = 0;
    uint64_t chunk_fill_ = 0;      /* bytes in the current chunk */
    uint32_t chunk_crc_ = 0;
    std::vector<uint32_t> chunk_crcs_;
    std::unique_ptr<DirectWriter> direct_;
};

std::string path_join(const std::string &a, const std::string &b);
bool path_exists(const std::string &path);
void make_dirs(const std::string &path);           /* mkdir -p */
void remove_tree(const std::string &path);         /* rm -rf, best effort */
void fsync_dir(const std::string &path);
/* Makes `from` visible as `to`, atomically replacing an existing `to`;
 * returns true when it did, `from` then holding the old contents (hidden,
 * for the caller to remove when convenient). */
bool commit_dir(const std::string &from, const std::string &to);
/* Makes the complete, synced file `tmp` visible as `path` (rename, then
 * fsync of the directory). */
void publish_file(const std::string &tmp, const std::string &path);
/* Writes `text` into `path` through a temporary file and a rename. */
void write_file_atomic(const std::string &path, const std::string &text);
std::string read_file(const std::string &path, const char *what);
uint32_t crc32_of(const void *data, size_t n, uint32_t crc = 0);

}  // namespace dsz
