/*
 * kernel_dispatch.cpp -- chooses the optimizer kernels for this CPU, once.
 *
 * __builtin_cpu_supports also checks that the OS saves the wider registers,
 * so a "supported" ISA is safe to run (F16C is read from CPUID: it needs
 * no more OS support than AVX, which the avx2 check covers). Tests and benchmarks may force a
 * lesser ISA to compare the builds against each other.
 */
#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "optim/kernels.h"

namespace dsz {
namespace optk {

#if defined(__x86_64__) || defined(__i386__)
/* CPUID.1:ECX.F16C[bit 29]; clang's __builtin_cpu_supports has no "f16c". */
static bool has_f16c() {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

bool isa_supported(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
    switch (isa) {
    case Isa::baseline: return true;
    case Isa::avx2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    case Isa::avx512:
        return isa_supported(Isa::avx2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq");
    }
    return false;
#else
    return isa == Isa::baseline;
#endif
}

Isa best_isa() {
    if (isa_supported(Isa::avx512)) return Isa::avx512;
    if (isa_supported(Isa::avx2)) return Isa::avx2;
    return Isa::baseline;
}

const char *isa_name(Isa isa) {
    switch (isa) {
    case Isa::baseline: return "baseline";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    }
    return "?";
}

static const KernelTable *table_of(Isa isa) {
    switch (isa) {
    case Isa::avx512: return &detail::table_avx512;
    case Isa::avx2: return &detail::table_avx2;
    default: return &detail::table_baseline;
    }
}

static std::atomic<const KernelTable *> g_forced{nullptr};

const KernelTable &kernel_table() {
    if (const KernelTable *t = g_forced.load(std::memory_order_acquire)) return *t;
    static const KernelTable *const best = table_of(best_isa());
    return *best;
}

bool force_isa(Isa isa) {
    if (!isa_supported(isa)) return false;
    g_forced.store(table_of(isa), std::memory_order_release);
    return true;
}

}  // namespace optk
}  // namespace dsz
