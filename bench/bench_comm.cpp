/*
 * bench_comm.cpp -- bus bandwidth of dszero's all_reduce, reduce_scatter and
 * all_gather next to raw MPI_Allreduce / MPI_Reduce_scatter_block /
 * MPI_Allgather, in the same run, on the same buffers.
 *
 *   mpirun -np 2 --bind-to none build/bench/bench_comm [--iters N] [--rounds R]
 *       [--min-mib M] [--max-mib M] [--op all_reduce|reduce_scatter|all_gather]
 *       [--latency 1]   (small float32 all-reduces instead, in microseconds)
 *
 * Sizes follow nccl-tests: the size is the full buffer (all_reduce's
 * buffer, reduce_scatter's input, all_gather's output). algbw = size / time;
 * busbw = algbw * 2(n-1)/n for all-reduce and algbw * (n-1)/n for
 * reduce-scatter and all-gather. A time is the mean of N back-to-back calls,
 * the slowest rank's; each pair (raw, dszero) is measured R times,
 * in ABBA order, and the best mean is reported, to damp noise from whatever
 * else runs on the machine. float32 sums. Results are checked against the
 * raw MPI results (bitwise: with 2 ranks any sum order gives the same bits).
 */
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "common/error.h"

using namespace dsz;
using namespace dsz::comm;

namespace {

double mean_time(const std::function<void()> &fn, int iters) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    for (int i = 0; i < iters; ++i) fn();
    double t = (MPI_Wtime() - t0) / iters, worst = 0;
    MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}

struct Pair {
    double raw = 1e30, dsz = 1e30;
};

Pair measure(const std::function<void()> &raw, const std::function<void()> &dsz, int iters, int rounds) {
    raw();
    dsz(); /* warm-up: first-touch of buffers, connection setup */
    Pair best;
    for (int r = 0; r < rounds; ++r) { /* ABBA: neither goes first every time */
        if (r % 2 == 0) best.raw = std::min(best.raw, mean_time(raw, iters));
        best.dsz = std::min(best.dsz, mean_time(dsz, iters));
        if (r % 2 == 1) best.raw = std::min(best.raw, mean_time(raw, iters));
    }
    return best;
}

}  // namespace

int main(int argc, char **argv) {
    int iters = 0, rounds = 3;
    size_t max_mib = 256, min_mib = 1;
    std::string only;
    bool latency = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--min-mib")) min_mib = std::strtoull(argv[i + 1], nullptr, 10);
        if (!std::strcmp(argv[i], "--op")) only = argv[i + 1];
        if (!std::strcmp(argv[i], "--latency")) latency = std::atoi(argv[i + 1]) != 0;
        if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--max-mib")) max_mib = std::strtoull(argv[i + 1], nullptr, 10);
    }
    std::unique_ptr<Communicator> comm;
    try {
        comm = create_communicator(); /* initialises MPI when launched by mpirun */
    } catch (const Error &e) {
        std::fprintf(stderr, "bench_comm: %s\n", e.what());
        return 1;
    }
    const int W = comm->size(), me = comm->rank();
    if (W < 2) {
        std::fprintf(stderr, "bench_comm: run it under mpirun -np 2 (or more)\n");
        return 1;
    }
    if (latency) {
        if (me == 0) {
            std::printf("# bench_comm --latency: %d ranks, float32 sum, best of %d rounds\n", W, rounds);
            std::printf("| all_reduce size | raw MPI | dszero | speed-up (raw / dszero) |\n|---:|---:|---:|---:|\n");
        }
        for (size_t bytes : {size_t(8), size_t(1024), size_t(16384), size_t(65536), size_t(262144)}) {
            const size_t n = bytes / 4;
            std::vector<float> a(n, 1.0f + me), b(n);
            const int it = iters > 0 ? iters : 2000;
            Pair p = measure(
                [&] { MPI_Allreduce(a.data(), b.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); },
                [&] { comm->all_reduce(a.data(), b.data(), n, ElemType::f32, ReduceOp::sum); }, it, rounds);
            if (me == 0)
                std::printf("| %zu B | %.2f us | %.2f us | %.2fx |\n", bytes, p.raw * 1e6, p.dsz * 1e6, p.raw / p.dsz);
        }
        comm.reset();
        return 0;
    }
    if (me == 0) {
        const char *tun = std::getenv("GLIBC_TUNABLES");
        std::printf("# bench_comm: %d ranks, float32 sum, best of %d rounds, GLIBC_TUNABLES=%s\n", W, rounds,
                    tun ? tun : "(unset)");
        std::printf("| op | size | raw MPI time | raw algbw | raw busbw | dszero time | dszero algbw | dszero busbw | speed-up (raw time / dszero time) | check |\n");
        std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    }
    for (size_t mib = min_mib; mib <= max_mib; mib *= 4) {
        const size_t bytes = mib << 20, n = bytes / 4, part = n / W;
        const int it = iters > 0 ? iters : (mib >= 64 ? 5 : 20);
        std::vector<float> send(n), recv(n), check(n);
        for (size_t i = 0; i < n; ++i) send[i] = static_cast<float>((i * 7 + me * 13) % 1000) * 0.001f + me;
        const Partition even = Partition::even(n, W);

        struct Row {
            const char *op;
            double factor;
            std::function<void()> raw, dsz;
            size_t check_off, check_n;
        } rows[] = {
            {"all_reduce", 2.0 * (W - 1) / W,
             [&] { MPI_Allreduce(send.data(), recv.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); },
             [&] { comm->all_reduce(send.data(), recv.data(), n, ElemType::f32, ReduceOp::sum); }, 0, n},
            {"reduce_scatter", 1.0 * (W - 1) / W,
             [&] {
                 MPI_Reduce_scatter_block(send.data(), recv.data(), static_cast<int>(part), MPI_FLOAT, MPI_SUM,
                                          MPI_COMM_WORLD);
             },
             [&] { comm->reduce_scatter(send.data(), recv.data(), even, ElemType::f32, ReduceOp::sum); }, 0, part},
            {"all_gather", 1.0 * (W - 1) / W,
             [&] {
                 MPI_Allgather(send.data(), static_cast<int>(part), MPI_FLOAT, recv.data(), static_cast<int>(part),
                               MPI_FLOAT, MPI_COMM_WORLD);
             },
             [&] { comm->all_gather(send.data(), recv.data(), even, sizeof(float)); }, 0, n},
        };
        for (Row &row : rows) {
            if (!only.empty() && only != row.op) continue;
            Pair p = measure(row.raw, row.dsz, it, rounds);
            row.raw();
            std::memcpy(check.data(), recv.data(), row.check_n * 4);
            std::memset(recv.data(), 0, row.check_n * 4);
            row.dsz();
            int ok = !std::memcmp(check.data(), recv.data(), row.check_n * 4), all_ok = 0;
            MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
            if (me == 0) {
                const double ra = bytes / p.raw / 1e9, da = bytes / p.dsz / 1e9;
                std::printf("| %s | %zu MiB | %.3f ms | %.2f GB/s | %.2f GB/s | %.3f ms | %.2f GB/s | %.2f GB/s | %.2fx | %s |\n",
                            row.op, mib, p.raw * 1e3, ra, ra * row.factor, p.dsz * 1e3, da, da * row.factor,
                            p.raw / p.dsz, all_ok ? (W == 2 ? "bitwise" : "ok") : "MISMATCH");
                std::fflush(stdout);
            }
        }
    }
    comm.reset();
    return 0;
}
