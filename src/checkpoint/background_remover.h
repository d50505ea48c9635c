/*
 * background_remover.h -- deleting a replaced checkpoint without waiting for it.
 *
 * dsz_save over an existing tag ends with the old checkpoint hidden in a
 * temporary directory (files.h commit_dir), to be deleted. Deleting a 1.6 GB
 * shard took 0.2 s on the disks measured (ext4 mounted with `discard`: the
 * call waits for the device, the CPU is idle), a quarter of the save
 * (bench/RESULTS-checkpoint.md). The new checkpoint and `latest` are durable
 * by then, so the deletion runs on a helper thread: the directory is first
 * renamed to a name no later save uses, then removed. A crash meanwhile only
 * leaves a hidden directory behind, as a crash during a save already may.
 */
#pragma once

#include <string>
#include <thread>

namespace dsz {

class BackgroundRemover {
public:
    BackgroundRemover() = default;
    ~BackgroundRemover() { wait(); }
    BackgroundRemover(const BackgroundRemover &) = delete;
    BackgroundRemover &operator=(const BackgroundRemover &) = delete;

    /* Renames the directory `path` to a fresh hidden name beside it and
     * removes that tree on the helper thread, after the previous removal
     * finished. Never fails: where the rename or the thread cannot be had,
     * the tree is removed here and now. */
    void remove(const std::string &path);
    /* Returns when the last removal is done. */
    void wait();

private:
    std::thread worker_;
};

}  // namespace dsz
