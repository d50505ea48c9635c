/*
 * shim.h -- what the C shims share: the dsz_engine handle, registries of
 * live handles, pointer and struct-size checks, and the translation of
 * dsz_init_options. Used by api.cpp (the engine), pipe.cpp (the
 * pipeline executor, which lends the host one engine handle per stage) and
 * moe_api.cpp (expert-parallel groups over an engine's ranks).
 */
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "api/guard.h"
#include "engine/engine.h"

/* `lender` is NULL for a handle made by dsz_init; a pipeline's stage engine
 * names the pipeline, and the host may not free it nor run its backward and
 * step (the pipeline does). */
struct dsz_engine {
    std::shared_ptr<dsz::Engine> impl;
    const char *lender = nullptr;
};

namespace dsz {

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

Registry<dsz_engine> &engines();

/* The engine behind a live handle; throws DSZ_ERR_INVALID_ARGUMENT. */
Engine &live(dsz_engine *e);
/* Same, refusing a lent handle with DSZ_ERR_STATE naming `fn`. */
Engine &owned(dsz_engine *e, const char *fn);

void need(const void *p, const char *what);
void check_struct_size(size_t size, size_t min, const char *what);

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

/* dsz_init_options (NULL: defaults) as EngineOptions. */
EngineOptions engine_options(const dsz_init_options *o);
/* JSON text, or the contents of the file it names. */
std::string config_text(const char *config);

}  // namespace dsz
