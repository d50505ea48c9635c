/*
 * bench_nvme.cpp -- NVMe offload against the disk it runs on.
 *
 *   bench_nvme [dir] [file MiB] [model M elements] [reps]
 *
 * 1. Raw O_DIRECT throughput of the filesystem holding `dir`: plain
 *    synchronous pread/pwrite over a preallocated file, in three shapes (1
 *    thread x 16 MiB requests, 4 x 4 MiB, 8 x 1 MiB), best of `reps` each;
 *    the best shape is the yardstick, measured in the same run.
 * 2. The swap engine (src/aio IoEngine, default aio settings and a deeper
 *    one) moving the same bytes in sub-group-sized transfers: rate and share
 *    of the raw rate (target >= 90%).
 * 3. dsz_step of a stage-3 AdamW model with the optimizer states in memory
 *    and on NVMe (pipeline_read/write, buffer_count 6), next to the disk
 *    bound: the bytes a step reads and writes divided by the raw rates. Host
 *    memory: dsz_memory_stats and the process's resident size.
 */
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "aio/aligned_buffer.h"
#include "aio/direct_file.h"
#include "aio/io_engine.h"
#include "dszero.h"

using namespace dsz;
using Clock = std::chrono::steady_clock;

static double secs(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

static long rss_kib() {
    FILE *f = std::fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "VmRSS: %ld kB", &v) == 1) break;
    std::fclose(f);
    return v;
}

/* Rate in GB/s of plain synchronous O_DIRECT pread/pwrite over the file:
 * `threads` threads, each on its own contiguous share, `request` bytes per
 * call; best of reps. Deep queues without libaio: the yardstick. */
static double raw_rate(aio::DirectFile &f, aio::AlignedBuffer &buf, size_t bytes, bool write, int reps, int threads,
                       size_t request) {
    double best = 0;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        std::vector<std::thread> pool;
        const size_t share = bytes / static_cast<size_t>(threads);
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] {
                const size_t lo = share * static_cast<size_t>(t), hi = t + 1 == threads ? bytes : lo + share;
                char *mem = buf.data() + (static_cast<size_t>(t) * request) % (buf.size() - request + 1);
                for (size_t at = lo; at < hi; at += request) {
                    const size_t n = std::min(request, hi - at);
                    const ssize_t got = write ? ::pwrite(f.fd(), mem, n, static_cast<off_t>(at))
                                              : ::pread(f.fd(), mem, n, static_cast<off_t>(at));
                    if (got != static_cast<ssize_t>(n)) {
                        std::perror("raw I/O");
                        std::exit(1);
                    }
                }
            });
        for (std::thread &t : pool) t.join();
        if (write) ::fdatasync(f.fd());
        best = std::max(best, static_cast<double>(bytes) / secs(t0) / 1e9);
    }
    return best;
}

static double engine_rate(aio::IoEngine &io, aio::DirectFile &f, aio::AlignedBuffer &buf, size_t bytes, size_t piece,
                          bool write, int reps) {
    double best = 0;
    for (int r = 0; r < reps; ++r) {
        std::vector<aio::Transfer> batch;
        for (size_t at = 0; at < bytes; at += piece)
            batch.push_back(aio::Transfer{f.fd(), f.path(), buf.data() + (at % buf.size()),
                                          std::min(piece, bytes - at), at, write});
        const auto t0 = Clock::now();
        io.run(std::move(batch));
        if (write) ::fdatasync(f.fd());
        best = std::max(best, static_cast<double>(bytes) / secs(t0) / 1e9);
    }
    return best;
}

static void check(dsz_status s) {
    if (s != DSZ_OK) {
        std::fprintf(stderr, "dszero: %s\n", dsz_last_error());
        std::exit(1);
    }
}

static void quiet(int32_t, const char *, void *) {}

struct StepFigures {
    double step_ms = 0;
    int64_t optimizer_bytes = 0, total_bytes = 0;
    long rss_growth_kib = 0;
};

static StepFigures step_time(const std::string &dir, size_t elements, bool nvme, int reps) {
    const size_t n_tensors = 32, per = elements / n_tensors;
    char json[1024];
    std::snprintf(json, sizeof json,
                  "{\"train_micro_batch_size_per_gpu\": 1, \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": "
                  "1e-3}}, \"zero_optimization\": {\"stage\": 3, \"sub_group_size\": %zu%s%s%s}}",
                  elements / 8, nvme ? ", \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"" : "",
                  nvme ? dir.c_str() : "",
                  nvme ? "\", \"buffer_count\": 6, \"pipeline_read\": true, \"pipeline_write\": true}" : "");
    const long rss0 = rss_kib();
    dsz_init_options o;
    check(dsz_init_options_init(&o, sizeof o));
    o.log_fn = quiet;
    dsz_engine *e = nullptr;
    check(dsz_init(&e, json, &o));
    std::vector<float> host(per, 0.01f), grad(per, 0.001f);
    const int64_t shape = static_cast<int64_t>(per);
    std::vector<DLTensor> t(n_tensors);
    std::vector<dsz_param> p(n_tensors);
    std::vector<std::string> names(n_tensors);
    for (size_t k = 0; k < n_tensors; ++k) {
        t[k] = DLTensor{host.data(), {kDLCPU, 0}, 1, {kDLFloat, 32, 1}, const_cast<int64_t *>(&shape), nullptr, 0};
        names[k] = "w" + std::to_string(k);
        p[k] = dsz_param{names[k].c_str(), &t[k], 0, 0};
    }
    check(dsz_register_params(e, p.data(), n_tensors, nullptr, 0));
    DLTensor g{grad.data(), {kDLCPU, 0}, 1, {kDLFloat, 32, 1}, const_cast<int64_t *>(&shape), nullptr, 0};
    StepFigures f;
    double total = 0;
    for (int s = 0; s <= reps; ++s) {
        for (size_t k = 0; k < n_tensors; ++k) check(dsz_grad_ready(e, k, &g));
        check(dsz_backward(e));
        const auto t0 = Clock::now();
        check(dsz_step(e, nullptr));
        if (s > 0) total += secs(t0); /* the first step warms up */
    }
    f.step_ms = 1e3 * total / reps;
    dsz_memory_stats ms;
    check(dsz_memory_stats_init(&ms, sizeof ms));
    check(dsz_memory_stats_get(e, &ms));
    f.optimizer_bytes = ms.optimizer_bytes;
    f.total_bytes = ms.total_bytes;
    f.rss_growth_kib = rss_kib() - rss0;
    check(dsz_engine_free(e));
    return f;
}

int main(int argc, char **argv) {
    const std::string dir = argc > 1 ? argv[1] : "/tmp";
    const size_t mib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1024;
    const size_t elements = (argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 32) * 1000000;
    const int reps = argc > 4 ? std::atoi(argv[4]) : 3;
    if (!aio::available()) {
        std::fprintf(stderr, "this build has no libaio\n");
        return 1;
    }
    const size_t bytes = mib << 20;
    const std::string path = dir + "/bench_nvme.raw";
    double raw_w, raw_r;
    std::printf("filesystem of %s, %zu MiB file, best of %d\n\n", dir.c_str(), mib, reps);
    std::printf("%-40s %10s %10s %8s %8s\n", "", "write GB/s", "read GB/s", "w/raw", "r/raw");
    {
        aio::DirectFile f(path, true);
        if (!f.direct()) std::printf("(the filesystem refuses O_DIRECT: buffered I/O)\n");
        f.reserve(bytes);
        aio::AlignedBuffer buf(size_t(64) << 20);
        std::memset(buf.data(), 0x5a, buf.size());
        /* The raw yardstick: the best of plain synchronous O_DIRECT shapes. */
        struct Raw { const char *what; int threads; size_t request; };
        const Raw raws[] = {{"raw O_DIRECT, 1 thread x 16 MiB", 1, size_t(16) << 20},
                            {"raw O_DIRECT, 4 threads x 4 MiB", 4, size_t(4) << 20},
                            {"raw O_DIRECT, 8 threads x 1 MiB", 8, size_t(1) << 20}};
        raw_w = raw_r = 0;
        for (const Raw &r : raws) {
            const double w = raw_rate(f, buf, bytes, true, reps, r.threads, r.request);
            const double rd = raw_rate(f, buf, bytes, false, reps, r.threads, r.request);
            std::printf("%-40s %10.2f %10.2f\n", r.what, w, rd);
            raw_w = std::max(raw_w, w);
            raw_r = std::max(raw_r, rd);
        }
        std::printf("%-40s %10.2f %10.2f\n", "raw O_DIRECT, best of the above", raw_w, raw_r);
        struct Setting { const char *what; size_t block; int qd, threads; };
        const Setting settings[] = {{"swap engine, aio defaults (1 MiB, qd 8)", size_t(1) << 20, 8, 1},
                                    {"swap engine, 1 MiB, qd 32", size_t(1) << 20, 32, 1},
                                    {"swap engine, 4 MiB, qd 8, 2 threads", size_t(4) << 20, 8, 2}};
        for (const Setting &s : settings) {
            aio::IoSettings is;
            is.block_size = s.block;
            is.queue_depth = s.qd;
            is.threads = s.threads;
            aio::IoEngine io(is);
            const double w = engine_rate(io, f, buf, bytes, size_t(32) << 20, true, reps);
            const double r = engine_rate(io, f, buf, bytes, size_t(32) << 20, false, reps);
            std::printf("%-40s %10.2f %10.2f %7.0f%% %7.0f%%\n", s.what, w, r, 100 * w / raw_w, 100 * r / raw_r);
        }
    }
    ::unlink(path.c_str());

    std::printf("\ndsz_step, stage 3, AdamW fp32, %.0fM elements in 32 tensors, sub_group_size = 1/8 of the model\n",
                static_cast<double>(elements) / 1e6);
    const StepFigures nv = step_time(dir, elements, true, reps);
    const StepFigures mem = step_time(dir, elements, false, reps);
    const double moved = 2.0 * 4.0 * static_cast<double>(elements); /* exp_avg + exp_avg_sq, each way */
    const double bound_ms = 1e3 * (moved / (raw_r * 1e9) + moved / (raw_w * 1e9));
    for (const StepFigures *f : {&mem, &nv})
        std::printf("%-40s %10.1f ms   optimizer %6.1f MiB, dszero total %6.1f MiB, RSS growth %6.1f MiB\n",
                    f == &mem ? "states in memory" : "states on NVMe", f->step_ms, f->optimizer_bytes / 1048576.0,
                    f->total_bytes / 1048576.0, f->rss_growth_kib / 1024.0);
    std::printf("%-40s %10.1f ms   (%.0f MiB read + %.0f MiB written at the raw rates)\n", "disk bound", bound_ms,
                moved / 1048576.0, moved / 1048576.0);
    std::printf("%-40s %10.0f%%\n", "disk bound / NVMe step", 100 * bound_ms / nv.step_ms);
    return 0;
}
