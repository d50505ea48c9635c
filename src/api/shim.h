/*
 * shim.h -- what every C shim file needs besides guarded(): registries of
 * live handles (a freed or foreign pointer is refused with a message instead
 * of being dereferenced), NULL checks, and reading size-versioned structs.
 */
#pragma once

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include "common/error.h"

namespace dsz {
namespace shim {

template <class T>
class Registry {
public:
    void add(T *p) {
        std::lock_guard<std::mutex> lock(mu_);
        live_.insert(p);
    }
    bool remove(T *p) {
        std::lock_guard<std::mutex> lock(mu_);
        return live_.erase(p) == 1;
    }
    bool contains(T *p) {
        std::lock_guard<std::mutex> lock(mu_);
        return live_.count(p) == 1;
    }

private:
    std::mutex mu_;
    std::unordered_set<T *> live_;
};

inline void need(const void *p, const char *what) {
    if (!p) fail(DSZ_ERR_INVALID_ARGUMENT, "%s is NULL", what);
}

inline void check_struct_size(size_t size, size_t min, const char *what) {
    if (size < min)
        fail(DSZ_ERR_INVALID_ARGUMENT, "%s.size is %zu, smaller than the first version of the struct (%zu): "
                                       "fill it with its _init function",
             what, size, min);
}

/* Copies min(size, sizeof(T)) bytes of a caller struct over zeros. */
template <class T>
T read_sized(const T *src, size_t min, const char *what) {
    T out;
    std::memset(&out, 0, sizeof out);
    check_struct_size(src->size, min, what);
    std::memcpy(&out, src, std::min<size_t>(src->size, sizeof(T)));
    return out;
}

/* Fills a caller struct of `size` bytes from a complete one. */
template <class T>
void write_sized(T *dst, size_t size, const T &value) {
    T v = value;
    v.size = static_cast<uint32_t>(std::min(size, sizeof v));
    std::memset(static_cast<void *>(dst), 0, size);
    std::memcpy(static_cast<void *>(dst), &v, std::min(size, sizeof v));
}

}  // namespace shim
}  // namespace dsz
