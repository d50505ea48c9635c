/*
 * bench_adam.cpp -- dszero's CPU Adam step rate against the memory limit.
 *
 * For each size and thread count it times: the Adam step on fp32 gradients
 * with no 16-bit output; the mixed-precision step (fp16 or bf16 gradients
 * in, the same dtype written out); a streaming kernel that moves the same
 * 28 bytes per parameter with trivial arithmetic (stream.h); and STREAM
 * triad. All run on the same ThreadPool, cut into the same pieces as the
 * optimizer cuts its spans, with the streaming kernels built for the same
 * ISA as the optimizer kernels. Repetitions are interleaved, so a drifting
 * machine hits every kernel alike, and a round during which other
 * processes used the CPUs is dropped; best and median are reported, and
 * Adam as a percentage of the same-pattern stream (the target is >= 95%).
 *
 * usage: bench_adam [--sizes 20,22,24,26] [--threads 1,2] [--reps 15]
 *                   [--thp] [--wait-idle] [--isa baseline|avx2|avx512]
 *        bench_adam --ceiling
 * --ceiling instead times the Adam kernels on an L2-resident piece, per
 * ISA build and dtype pair: the arithmetic's own limit, with no memory.
 * --thp asks for transparent huge pages; --wait-idle waits before each
 * size until no other process uses the CPUs (the machines are shared).
 */
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/half.h"
#include "common/thread_pool.h"
#include "optim/kernels.h"
#include "optim/optimizer.h"
#include "optim/pieces.h"
#include "stream.h"

namespace {

struct Options {
    std::vector<int> log2_sizes = {20, 22, 24, 26};
    std::vector<int> threads = {1, 2};
    int reps = 15;
    bool thp = false;
    bool wait_idle = false;
    std::string isa;
};

std::vector<int> parse_list(const char *s) {
    std::vector<int> v;
    for (const char *p = s; *p;) {
        v.push_back(std::atoi(p));
        p = std::strchr(p, ',');
        if (!p) break;
        ++p;
    }
    return v;
}

/* 2 MiB-aligned memory (with --thp: transparent huge pages), returned at
 * an offset of `stagger` cache lines plus a quarter page, so that no two
 * arrays share their low address bits (which would make loads of one
 * alias stores to another, and pile every stream into the same cache
 * sets: a handicap that would fall unevenly on the kernels compared). */
std::vector<void *> g_blocks;

template <class T>
T *alloc(size_t n, bool thp) {
    static size_t stagger = 0;
    const size_t align = size_t(2) << 20;
    const size_t offset = (stagger++ % 16) * (1024 + 64);
    const size_t bytes = (n * sizeof(T) + offset + align - 1) / align * align;
    void *p = std::aligned_alloc(align, bytes);
    if (!p) {
        std::fprintf(stderr, "out of memory\n");
        std::exit(1);
    }
    if (thp) madvise(p, bytes, MADV_HUGEPAGE);
    g_blocks.push_back(p);
    return reinterpret_cast<T *>(static_cast<char *>(p) + offset);
}

void free_all() {
    for (void *p : g_blocks) std::free(p);
    g_blocks.clear();
}

struct Arrays {
    size_t n;
    float *p, *m, *v, *g;
    uint16_t *g16, *out16;
};

/* Parallel first touch and deterministic values: p in [-1, 1), g of
 * either sign in [1e-4, 1e-2) (no subnormals anywhere in the step). */
Arrays make_arrays(size_t n, bool thp, dsz::ThreadPool &pool) {
    Arrays a{n, alloc<float>(n, thp), alloc<float>(n, thp), alloc<float>(n, thp),
             alloc<float>(n, thp), alloc<uint16_t>(n, thp), alloc<uint16_t>(n, thp)};
    pool.parallel_for(n, dsz::kPieceElems, [&](size_t, size_t b, size_t e) {
        uint32_t x = static_cast<uint32_t>(b) * 2654435761u + 1u;
        for (size_t i = b; i < e; ++i) {
            x = x * 1664525u + 1013904223u;
            const float r = static_cast<float>(x >> 8) * (1.0f / 16777216.0f);  /* [0, 1) */
            a.p[i] = 2.0f * r - 1.0f;
            a.m[i] = 0.0f;
            a.v[i] = 0.0f;
            a.g[i] = (x & 1 ? 1.0f : -1.0f) * (1e-4f + 1e-2f * r);
            a.g16[i] = dsz::float_to_bf16(a.g[i]);
            a.out16[i] = 0;
        }
    });
    return a;
}

/* CPU time the rest of the machine used: /proc/stat's busy time minus this
 * process's own, over an interval -- the noise indicator printed per run
 * (the build machines are shared). */
struct Load {
    double busy_s, own_s, wall_s;
    static Load now() {
        Load l{0, 0, 0};
        if (FILE *f = std::fopen("/proc/stat", "r")) {
            unsigned long long v[8] = {};
            if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                            &v[3], &v[4], &v[5], &v[6], &v[7]) == 8)
                l.busy_s = static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
                           static_cast<double>(sysconf(_SC_CLK_TCK));
            std::fclose(f);
        }
        rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        l.own_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                  1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
        l.wall_s = std::chrono::duration<double>(
                       std::chrono::steady_clock::now().time_since_epoch()).count();
        return l;
    }
    /* Fraction of all CPUs busy with other processes since `before`. */
    double other_than_us(const Load &before) const {
        const double wall = wall_s - before.wall_s;
        const double other = (busy_s - before.busy_s) - (own_s - before.own_s);
        return std::max(0.0, other) / (wall * static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN)));
    }
};

/* With --wait-idle: waits (up to 30 min) until the other processes have
 * left the CPUs alone (< 3%) for two seconds. */
void wait_idle() {
    for (int tries = 0; tries < 900; ++tries) {
        const Load a = Load::now();
        std::this_thread::sleep_for(std::chrono::seconds(2));
        if (Load::now().other_than_us(a) < 0.03) return;
    }
    std::printf("         (machine never became idle; measuring anyway)\n");
}

double seconds(const std::function<void()> &f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Case {
    const char *name;
    double bytes_per_param;
    std::function<void()> run;
    std::vector<double> t;
    double best() const { return *std::min_element(t.begin(), t.end()); }
    double median() const {
        std::vector<double> s = t;
        std::sort(s.begin(), s.end());
        return s[s.size() / 2];
    }
};

const StreamKernels &stream_for(dsz::optk::Isa isa) {
    switch (isa) {
    case dsz::optk::Isa::avx512: return stream_avx512;
    case dsz::optk::Isa::avx2: return stream_avx2;
    default: return stream_baseline;
    }
}

void bench(size_t n, int threads, const Options &opt) {
    if (opt.wait_idle) wait_idle();
    dsz::ThreadPool pool(threads);
    Arrays A = make_arrays(n, opt.thp, pool);  /* Adam's */
    Arrays S = make_arrays(n, opt.thp, pool);  /* the streaming kernels' */
    float *tb = alloc<float>(n, opt.thp), *tc = alloc<float>(n, opt.thp);
    std::memcpy(tb, S.p, n * 4);
    std::memcpy(tc, S.g, n * 4);

    dsz::OptimizerConfig cfg;
    cfg.type = dsz::OptimizerType::adam;
    cfg.weight_decay = 0.01;
    const auto adam = dsz::make_optimizer(cfg);
    /* The engine's spans: bounded pieces of the flat partition (1 Mi). */
    std::vector<dsz::Span> spans_plain, spans_out;
    for (size_t b = 0; b < n; b += size_t(1) << 20) {
        const size_t len = std::min(size_t(1) << 20, n - b);
        spans_plain.push_back({b, len, nullptr});
        spans_out.push_back({b, len, A.out16 + b});
    }
    std::vector<dsz::Segment> tensors = {{0, n}};
    int64_t step = 0;
    auto adam_step = [&](dsz::DType gdt, bool out) {
        float *states[2] = {A.m, A.v};
        dsz::UpdateArgs a;
        a.master = A.p;
        a.grad = gdt == dsz::DType::f32 ? static_cast<const void *>(A.g)
                                        : static_cast<const void *>(A.g16);
        a.grad_dtype = gdt;
        a.states = states;
        a.out_dtype = gdt;
        a.spans = out ? &spans_out : &spans_plain;
        a.tensors = &tensors;
        a.grad_mul = 1.0;
        a.hyper = {1e-3, 0.01, 0.9, 0.999, ++step};
        a.pool = &pool;
        adam->update(a);
    };
    const StreamKernels &sk = stream_for(dsz::optk::kernel_table().isa);
    const size_t pieces = (n + dsz::kPieceElems - 1) / dsz::kPieceElems;
    auto over_pieces = [&](const std::function<void(size_t, size_t)> &f) {
        dsz::for_each_piece(&pool, pieces, [&](size_t i) {
            const size_t b = i * dsz::kPieceElems;
            f(b, std::min(dsz::kPieceElems, n - b));
        });
    };

    std::vector<Case> cases;
    cases.push_back({"adam fp32", 28, [&] { adam_step(dsz::DType::f32, false); }, {}});
    cases.push_back({"stream fp32", 28, [&] {
        over_pieces([&](size_t b, size_t len) { sk.same_fp32(S.p + b, S.m + b, S.v + b, S.g + b, len); });
    }, {}});
    cases.push_back({"stream fp32 blk", 28, [&] {
        over_pieces([&](size_t b, size_t len) {
            sk.same_fp32_blocked(S.p + b, S.m + b, S.v + b, S.g + b, len);
        });
    }, {}});
    cases.push_back({"adam bf16 g/out", 28, [&] { adam_step(dsz::DType::bf16, true); }, {}});
    cases.push_back({"adam fp16 g/out", 28, [&] { adam_step(dsz::DType::f16, true); }, {}});
    cases.push_back({"stream mixed", 28, [&] {
        over_pieces([&](size_t b, size_t len) {
            sk.same_mixed(S.p + b, S.m + b, S.v + b, S.g16 + b, S.out16 + b, len);
        });
    }, {}});
    cases.push_back({"stream mixed blk", 28, [&] {
        over_pieces([&](size_t b, size_t len) {
            sk.same_mixed_blocked(S.p + b, S.m + b, S.v + b, S.g16 + b, S.out16 + b, len);
        });
    }, {}});
    cases.push_back({"triad", 12, [&] {
        over_pieces([&](size_t b, size_t len) { sk.triad(S.p + b, tb + b, tc + b, 0.5f, len); });
    }, {}});

    for (int w = 0; w < 2; ++w)
        for (Case &c : cases) c.run();  /* warm-up: page faults, caches, clocks */
    /* A round (every case once) during which other processes took more
     * than 5% of the CPUs (plus two clock ticks of slack) is dropped and
     * run again, up to three times the rounds asked for. */
    const Load load0 = Load::now();
    int kept = 0, dropped = 0;
    for (int r = 0; r < 3 * opt.reps && kept < opt.reps; ++r) {
        const Load before = Load::now();
        std::vector<double> t;
        for (Case &c : cases) t.push_back(seconds(c.run));
        const Load after = Load::now();
        const double slack = 2.0 / static_cast<double>(sysconf(_SC_CLK_TCK)) /
                             ((after.wall_s - before.wall_s) *
                              static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN)));
        if (after.other_than_us(before) > 0.05 + slack) {
            ++dropped;
            continue;
        }
        ++kept;
        for (size_t i = 0; i < cases.size(); ++i) cases[i].t.push_back(t[i]);
    }
    const double other = Load::now().other_than_us(load0);
    if (kept == 0) {
        std::printf("%7d  2^%-3d never quiet enough to measure\n", threads, __builtin_ctzll(n));
        free_all();
        return;
    }

    /* The yardstick: the faster of the two forms of the same-pattern stream. */
    auto faster = [&](const char *a, const char *b, bool median) {
        double t = 1e30;
        for (const Case &c : cases)
            if (!std::strcmp(c.name, a) || !std::strcmp(c.name, b))
                t = std::min(t, median ? c.median() : c.best());
        return t;
    };
    for (const Case &c : cases) {
        const double best = c.best(), med = c.median();
        const double gp = static_cast<double>(n) / best * 1e-9;
        std::printf("%7d  2^%-3d %-16s %8.2f %8.2f %9.3f %8.1f", threads,
                    __builtin_ctzll(n), c.name, best * 1e3, med * 1e3, gp, gp * c.bytes_per_param);
        if (std::strncmp(c.name, "adam", 4) == 0) {
            const bool fp32 = std::strcmp(c.name, "adam fp32") == 0;
            const char *a = fp32 ? "stream fp32" : "stream mixed";
            const char *b = fp32 ? "stream fp32 blk" : "stream mixed blk";
            std::printf("   %5.1f%%   %5.1f%%", 100.0 * faster(a, b, false) / best,
                        100.0 * faster(a, b, true) / med);
        }
        std::printf("\n");
    }
    std::printf("         (%d rounds kept, %d dropped as disturbed; other processes used %.1f%% "
                "of the CPUs meanwhile)\n", kept, dropped, 100.0 * other);
    std::fflush(stdout);
    free_all();
}

/* The kernels' compute limit: one thread, one 8192-element piece that
 * stays in L2, every ISA build and (gradient, output) dtype pair. */
void ceiling() {
    const size_t n = 8192;
    std::vector<float> p(n, 0.5f), m(n, 0.0f), v(n, 0.0f), g(n, 1e-3f), o32(n);
    std::vector<uint16_t> g16(n, 0x3a83), o16(n);
    const dsz::optk::AdamK k{1.0f, 0.0f, 0.99999f, 0.9f, 0.1f, 0.999f, 0.001f, -1e-3f, 1.0f, 1e-8f};
    const char *names[] = {"fp32", "fp16", "bf16", "none"};
    std::printf("Adam kernel on an L2-resident piece of %zu, one thread (Gparam/s)\n", n);
    std::printf("isa        grad  out    best     median\n");
    for (auto isa : {dsz::optk::Isa::baseline, dsz::optk::Isa::avx2, dsz::optk::Isa::avx512}) {
        if (!dsz::optk::force_isa(isa)) continue;
        const auto &kt = dsz::optk::kernel_table();
        for (int gd : {0, 1, 2}) {
            for (int od : {3, gd}) {
                const dsz::optk::Piece pc{p.data(), m.data(), v.data(),
                                          gd == 0 ? static_cast<const void *>(g.data()) : g16.data(),
                                          od == 3 ? nullptr : od == 0 ? static_cast<void *>(o32.data())
                                                                      : o16.data(),
                                          n};
                std::vector<double> t;
                for (int r = 0; r < 15; ++r)
                    t.push_back(seconds([&] {
                        for (int i = 0; i < 2000; ++i) kt.adam[gd][od](k, pc);
                    }));
                std::sort(t.begin(), t.end());
                std::printf("%-10s %-5s %-5s %7.3f  %7.3f\n", dsz::optk::isa_name(isa), names[gd],
                            names[od], 2000.0 * n / t[0] * 1e-9, 2000.0 * n / t[t.size() / 2] * 1e-9);
            }
        }
    }
    dsz::optk::force_isa(dsz::optk::best_isa());
}

}  // namespace

int main(int argc, char **argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--sizes" && i + 1 < argc) opt.log2_sizes = parse_list(argv[++i]);
        else if (a == "--threads" && i + 1 < argc) opt.threads = parse_list(argv[++i]);
        else if (a == "--reps" && i + 1 < argc) opt.reps = std::max(1, std::atoi(argv[++i]));
        else if (a == "--thp") opt.thp = true;
        else if (a == "--wait-idle") opt.wait_idle = true;
        else if (a == "--ceiling") {
            ceiling();
            return 0;
        }
        else if (a == "--isa" && i + 1 < argc) opt.isa = argv[++i];
        else {
            std::fprintf(stderr,
                         "usage: %s [--sizes 20,22,24,26] [--threads 1,2] [--reps 15] [--thp] "
                         "[--wait-idle] [--isa baseline|avx2|avx512]\n       %s --ceiling\n",
                         argv[0], argv[0]);
            return 2;
        }
    }
    if (!opt.isa.empty()) {
        bool ok = false;
        for (auto isa : {dsz::optk::Isa::baseline, dsz::optk::Isa::avx2, dsz::optk::Isa::avx512})
            if (opt.isa == dsz::optk::isa_name(isa)) ok = dsz::optk::force_isa(isa);
        if (!ok) {
            std::fprintf(stderr, "ISA %s unknown or not supported here\n", opt.isa.c_str());
            return 2;
        }
    }
    std::printf("dszero bench_adam: kernels %s, %d reps, %s pages, spans of 2^20, pieces of %zu\n",
                dsz::optk::isa_name(dsz::optk::kernel_table().isa), opt.reps,
                opt.thp ? "transparent huge" : "default", dsz::kPieceElems);
    std::printf("threads  params  case               best ms   med ms  Gparam/s     GB/s"
                "   %%stream (best, median)\n");
    for (int t : opt.threads)
        for (int e : opt.log2_sizes) bench(size_t(1) << e, t, opt);
    return 0;
}
