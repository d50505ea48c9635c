/* background_remover.cpp -- see background_remover.h. */
#include "checkpoint/background_remover.h"

#include <atomic>
#include <cstdio>
#include <system_error>

#include "checkpoint/files.h"

namespace dsz {

void BackgroundRemover::remove(const std::string &path) {
    wait();
    /* Unique in this process, where several engines may save the same tag in turn
     * (`path` names the process already). */
    static std::atomic<unsigned long> counter{0};
    const std::string doomed = path + ".removing." + std::to_string(counter.fetch_add(1));
    if (std::rename(path.c_str(), doomed.c_str()) != 0) return remove_tree(path);
    try {
        worker_ = std::thread([doomed] { remove_tree(doomed); });
    } catch (const std::system_error &) {
        remove_tree(doomed);
    }
}

void BackgroundRemover::wait() {
    if (worker_.joinable()) worker_.join();
}

}  // namespace dsz
