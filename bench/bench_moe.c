/*
 * bench_moe.c -- throughput of MoE dispatch / combine with the
 * expert-parallel all-to-all, next to raw MPI_Alltoall of the same bytes
 * and a local memcpy of them, in the same run, on the same buffers.
 *
 *   mpirun -np 2 --bind-to none build/bench/bench_moe [--iters N] [--rounds R]
 *       [--hidden M] [--experts E] [--k K]
 *
 * Every rank routes S tokens of M float32 over E experts (top-k, capacity
 * factor 1: C = ceil(k S / E)) with ep_size = world size, so the [E, C, M]
 * buffer is what crosses the group. Rows, per buffer size (bytes = E*C*M*4
 * per rank):
 *   memcpy        one local copy of the buffer (the memory-bandwidth yardstick)
 *   MPI_Alltoall  raw MPI on the buffer (the peer)
 *   all_to_all    dsz_moe_all_to_all on the same buffer
 *   dispatch+a2a  dsz_moe_dispatch then dsz_moe_all_to_all (tokens -> experts)
 *   a2a+combine   dsz_moe_all_to_all then dsz_moe_combine (experts -> tokens)
 * Rate = buffer bytes per rank / time. A time is the mean of N back-to-back
 * calls, the slowest rank's; each row is measured R times in rotating order
 * and the best mean is kept, to damp noise from other work on the machine.
 * The dszero all-to-all result is checked bitwise against MPI_Alltoall's.
 */
#include <dszero.h>
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_ROWS = 5 }; /* memcpy, MPI_Alltoall, all_to_all, dispatch+a2a, a2a+combine */

typedef struct bench {
    int ep;
    int64_t S, M, E, C;
    float *x, *y, *buf, *recv;
    dsz_moe_group *group;
    dsz_moe_routing *routing;
    DLTensor tx, ty, tbuf, trecv;
    int64_t xs[2], bs[3];
} bench;

static void die(const char *what) {
    fprintf(stderr, "bench_moe: %s: %s\n", what, dsz_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static DLTensor view(float *data, int ndim, int64_t *shape) {
    DLTensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.device.device_type = kDLCPU;
    t.ndim = ndim;
    t.dtype.code = kDLFloat;
    t.dtype.bits = 32;
    t.dtype.lanes = 1;
    t.shape = shape;
    return t;
}

static void run_row(bench *b, int row) {
    const size_t bytes = (size_t)(b->E * b->C * b->M) * 4;
    switch (row) {
    case 0: memcpy(b->recv, b->buf, bytes); break;
    case 1:
        MPI_Alltoall(b->buf, (int)(bytes / (size_t)b->ep), MPI_BYTE, b->recv, (int)(bytes / (size_t)b->ep), MPI_BYTE,
                     MPI_COMM_WORLD);
        break;
    case 2:
        if (dsz_moe_all_to_all(b->group, &b->tbuf, &b->trecv)) die("dsz_moe_all_to_all");
        break;
    case 3:
        if (dsz_moe_dispatch(b->routing, &b->tx, &b->tbuf)) die("dsz_moe_dispatch");
        if (dsz_moe_all_to_all(b->group, &b->tbuf, &b->trecv)) die("dsz_moe_all_to_all");
        break;
    default:
        if (dsz_moe_all_to_all(b->group, &b->tbuf, &b->trecv)) die("dsz_moe_all_to_all");
        if (dsz_moe_combine(b->routing, &b->trecv, &b->ty)) die("dsz_moe_combine");
        break;
    }
}

static double mean_time(bench *b, int row, int iters) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    for (int i = 0; i < iters; ++i) run_row(b, row);
    double t = (MPI_Wtime() - t0) / iters, worst = 0;
    MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}

int main(int argc, char **argv) {
    int provided; /* MULTIPLE: lets dszero's progress thread move communication during compute */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    int iters = 0, rounds = 5, k = 2;
    int64_t M = 1024, E = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hidden")) M = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--experts")) E = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--k")) k = atoi(argv[i + 1]);
    }
    if (E % world) {
        if (!rank) fprintf(stderr, "bench_moe: %lld experts do not split over %d ranks\n", (long long)E, world);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    bench b;
    memset(&b, 0, sizeof b);
    b.ep = world;
    b.M = M;
    b.E = E;
    MPI_Comm comm = MPI_COMM_WORLD;
    if (dsz_moe_group_new(&b.group, NULL, world, &comm)) die("dsz_moe_group_new");
    if (!rank)
        printf("# bench_moe: %d ranks, ep_size %d, %lld experts, top-%d, hidden %lld, float32; "
               "rate = [E, C, M] bytes per rank / time\n"
               "| tokens/rank | buffer | memcpy | MPI_Alltoall | dsz all_to_all | dispatch+a2a | a2a+combine | "
               "a2a / MPI | check |\n|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
               world, world, (long long)E, k, (long long)M);
    for (int64_t S = 256; S <= 8192; S *= 4) {
        b.S = S;
        dsz_moe_gate_config cfg;
        if (dsz_moe_gate_config_init(&cfg, sizeof cfg)) die("config");
        cfg.k = k;
        cfg.seed = 1 + (uint64_t)rank;
        float *logits = malloc(sizeof(float) * (size_t)(S * E));
        unsigned st = 12345u + (unsigned)rank;
        for (int64_t i = 0; i < S * E; ++i) {
            st = st * 1664525u + 1013904223u;
            logits[i] = (float)(st >> 8) / 16777216.0f;
        }
        if (dsz_moe_gate(&b.routing, &cfg, logits, S, E, NULL, b.group)) die("dsz_moe_gate");
        free(logits);
        dsz_moe_routing_info info;
        dsz_moe_routing_info_init(&info, sizeof info);
        dsz_moe_routing_get_info(b.routing, &info);
        b.C = info.capacity;
        const size_t n = (size_t)(E * b.C * M), bytes = n * 4;
        b.x = malloc(sizeof(float) * (size_t)(S * M));
        b.y = malloc(sizeof(float) * (size_t)(S * M));
        b.buf = malloc(bytes);
        b.recv = malloc(bytes);
        float *check = malloc(bytes);
        for (int64_t i = 0; i < S * M; ++i) b.x[i] = (float)(i % 1000) * 0.001f + (float)rank;
        b.xs[0] = S, b.xs[1] = M, b.bs[0] = E, b.bs[1] = b.C, b.bs[2] = M;
        b.tx = view(b.x, 2, b.xs), b.ty = view(b.y, 2, b.xs);
        b.tbuf = view(b.buf, 3, b.bs), b.trecv = view(b.recv, 3, b.bs);
        /* check: dszero's exchange gives MPI's bits */
        if (dsz_moe_dispatch(b.routing, &b.tx, &b.tbuf)) die("dispatch");
        MPI_Alltoall(b.buf, (int)(bytes / (size_t)world), MPI_BYTE, check, (int)(bytes / (size_t)world), MPI_BYTE,
                     MPI_COMM_WORLD);
        if (dsz_moe_all_to_all(b.group, &b.tbuf, &b.trecv)) die("all_to_all");
        int bad = memcmp(check, b.recv, bytes) != 0;
        MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);

        const int it = iters > 0 ? iters : (bytes <= (16u << 20) ? 20 : 5);
        double best[N_ROWS];
        for (int r = 0; r < N_ROWS; ++r) {
            run_row(&b, r); /* warm-up */
            best[r] = 1e30;
        }
        for (int round = 0; round < rounds; ++round)
            for (int j = 0; j < N_ROWS; ++j) {
                const int r = (j + round) % N_ROWS;
                const double t = mean_time(&b, r, it);
                if (t < best[r]) best[r] = t;
            }
        if (!rank) {
            printf("| %lld | %.1f MiB |", (long long)S, (double)bytes / 1048576.0);
            for (int r = 0; r < N_ROWS; ++r)
                printf(" %.3f ms, %.2f GB/s |", best[r] * 1e3, (double)bytes / best[r] / 1e9);
            printf(" %.2fx | %s |\n", best[1] / best[2], bad ? "MISMATCH" : "bitwise");
        }
        free(b.x), free(b.y), free(b.buf), free(b.recv), free(check);
        dsz_moe_routing_free(b.routing);
        if (bad) MPI_Abort(MPI_COMM_WORLD, 2);
    }
    dsz_moe_group_free(b.group);
    MPI_Finalize();
    return 0;
}
