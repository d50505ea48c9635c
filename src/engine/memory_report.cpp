/*
 * memory_report.cpp -- what memory_breakdown prints.
 *
 * DeepSpeed prints allocator figures (MA / Max_MA / CA / Max_CA) and the
 * host's virtual memory at fixed points of a step. On the CPU engine the
 * "allocated" figure is what dszero itself holds for the model (masters,
 * gradient accumulators, optimizer states), and the host line comes from
 * /proc/meminfo.
 */
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "engine/engine.h"
#include "engine/param_swap.h"
#include "engine/swap_store.h"

namespace dsz {

Engine::MemoryFigures Engine::memory() const {
    MemoryFigures m;
    /* Counters, not a walk over the parameters: stage 3 calls this on every fetch. */
    const size_t es = params_.empty() ? 0 : dtype_size(params_[0].host.dtype);
    if (cfg_.zero.stage != 3) m.host_params = n_elements_ * es;
    m.gathered = available_elements_ * es;
    for (const ParamFetch &f : fetches_) m.comm_buffers += f.send.capacity() + f.recv.capacity();
    for (const GroupState &G : groups_) {
        m.master += G.master.capacity() * sizeof(float);
        m.grads += G.grad.capacity() * sizeof(float);
        m.comm_buffers += G.part_grad.capacity() * sizeof(float);
        for (const auto &s : G.states) m.optimizer += s.capacity() * sizeof(float);
    }
    if (swap_) m.optimizer += swap_->buffer_bytes(); /* the states themselves are on NVMe */
    if (param_swap_) m.master += param_swap_->buffer_bytes(); /* likewise the masters */
    for (const BucketSlot &b : slots_)
        m.comm_buffers += (b.buf.capacity() + b.recv.capacity()) * sizeof(float) +
                          (b.buf16.capacity() + b.recv16.capacity()) * sizeof(uint16_t);
    m.comm_buffers += (wire16_.capacity() + wire16_out_.capacity()) * sizeof(uint16_t);
    m.comm_buffers += publish_send_.capacity() + publish_recv_.capacity();
    return m;
}

size_t Engine::owned_bytes() const { return memory().total(); }

void Engine::note_memory() {
    const size_t now = owned_bytes();
    if (now > peak_total_) peak_total_ = now;
}

static bool host_memory(double *used_gb, double *percent) {
    FILE *f = std::fopen("/proc/meminfo", "r");
    if (!f) return false;
    char key[64];
    unsigned long long v, total = 0, avail = 0;
    while (std::fscanf(f, "%63s %llu kB\n", key, &v) == 2) {
        if (!std::strcmp(key, "MemTotal:")) total = v;
        if (!std::strcmp(key, "MemAvailable:")) avail = v;
    }
    std::fclose(f);
    if (!total) return false;
    *used_gb = static_cast<double>(total - avail) / (1024.0 * 1024.0);
    *percent = 100.0 * static_cast<double>(total - avail) / static_cast<double>(total);
    return true;
}

void Engine::log_memory(const char *where) {
    if (!cfg_.memory_breakdown || !log_.enabled(DSZ_LOG_INFO)) return;
    const double gb = 1024.0 * 1024.0 * 1024.0;
    const size_t now = owned_bytes();
    if (now > peak_bytes_) peak_bytes_ = now;
    double used = 0, pct = 0;
    const bool have = host_memory(&used, &pct);
    log_.logf(DSZ_LOG_INFO, "%s\nMA %.2f GB  Max_MA %.2f GB  CA %.2f GB  Max_CA %.2f GB\nCPU Virtual Memory:  used = %s GB, percent = %s%%",
              where, now / gb, peak_bytes_ / gb, now / gb, peak_bytes_ / gb,
              have ? strprintf("%.2f", used).c_str() : "?", have ? strprintf("%.1f", pct).c_str() : "?");
    peak_bytes_ = now;
}

}  // namespace dsz
