/*
 * bench_pipe.c -- pipeline parallelism: bubble fraction and step time (a
 * benchmark, not a test).
 *
 *   mpirun -np S --bind-to none build/bench/bench_pipe [bubble|step] [WIDTH] [BATCHES]
 *
 * bubble: S stages, each forward "computes" for 2 ms and each backward for
 *   4 ms (sleeping, so ranks never compete for the 2 shared cores), tiny
 *   activations. For M = 1, 2, 4, 8, 16 micro-batches it measures, on every
 *   stage, the share of the schedule's wall time the stage spent outside
 *   its callbacks (idle: waiting for neighbours, or moving messages), and
 *   prints the mean over stages next to the 1F1B limit (S-1)/(M+S-1).
 * step: a 8-layer MLP of WIDTH (default 256) units, batch 32, split with
 *   the "parameters" method, computing for real (tests/pipe/pipe_mlp.h);
 *   the batch time of the S-stage pipeline against one rank training the
 *   whole model alone (same M, MPI_COMM_SELF), with the ideal speed-up
 *   S*M/(M+S-1) of a perfectly balanced pipeline with free transfers.
 * Times are medians over BATCHES batches (default 5) after one warm-up.
 */
#include <dszero.h>
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/pipe/pipe_mlp.h"

static int rank, world;

#define OK(call)                                                                           \
    do {                                                                                   \
        if ((call) != DSZ_OK) {                                                            \
            fprintf(stderr, "[rank %d] %s failed: %s\n", rank, #call, dsz_last_error());   \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                  \
        }                                                                                  \
    } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void quiet(int32_t l, const char *m, void *u) { (void)l; (void)m; (void)u; }

static dsz_pipe_engine *make(int gas, int stages, MPI_Comm *comm, pm_model *m, int n_layers, const int *dims,
                             int batch, int lo, int hi) {
    char cfg[256];
    snprintf(cfg, sizeof cfg,
             "{\"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": %d,"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001}}}",
             batch, gas);
    dsz_init_options o;
    OK(dsz_init_options_init(&o, sizeof o));
    o.log_fn = quiet;
    o.cpu_threads = 1;
    o.mpi_comm = comm;
    dsz_pipe_options p;
    OK(dsz_pipe_options_init(&p, sizeof p));
    p.stages = stages;
    p.load_micro_batch = pm_load;
    p.forward = pm_forward;
    p.backward = pm_backward;
    p.user_data = m;
    dsz_pipe_engine *pe = NULL;
    OK(dsz_pipe_init(&pe, cfg, &o, &p));
    dsz_pipe_info info;
    OK(dsz_pipe_info_init(&info, sizeof info));
    OK(dsz_pipe_get_info(pe, &info));
    pm_make(m, n_layers, dims, batch, lo, hi, info.n_buffers);
    dsz_engine *e = NULL;
    OK(dsz_pipe_stage_engine(pe, &e));
    OK(pm_register(m, e));
    return pe;
}

static void split(int n_layers, const int *dims, int stages, int stage, int *lo, int *hi) {
    int64_t counts[PM_MAX_LAYERS], parts[PM_MAX_LAYERS + 1];
    for (int l = 0; l < n_layers; ++l) counts[l] = (int64_t)dims[l] * dims[l + 1] + dims[l + 1];
    OK(dsz_pipe_partition("parameters", (size_t)n_layers, counts, NULL, stages, parts));
    *lo = (int)parts[stage];
    *hi = (int)parts[stage + 1];
}

static void bubble(int batches) {
    const int S = world;
    int dims[PM_MAX_LAYERS + 1];
    for (int l = 0; l <= S; ++l) dims[l] = 4;
    if (rank == 0) {
        printf("bubble: %d stages, forward 2 ms + backward 4 ms per micro-batch and stage (sleeping)\n", S);
        printf("%4s %11s %11s %11s %14s %14s\n", "M", "batch (ms)", "ideal (ms)", "busy (ms)", "bubble meas.",
               "(S-1)/(M+S-1)");
    }
    for (int M = 1; M <= 16; M *= 2) {
        pm_model m;
        MPI_Comm w = MPI_COMM_WORLD;
        dsz_pipe_engine *pe = make(M, S, &w, &m, S, dims, 2, rank, rank + 1);
        m.spin_forward_us = 2000;
        m.spin_backward_us = 4000;
        double idle[64], wall[64], busy_ms[64];
        for (int b = -1; b < batches; ++b) {
            dsz_pipe_batch_info bi;
            OK(dsz_pipe_batch_info_init(&bi, sizeof bi));
            MPI_Barrier(MPI_COMM_WORLD);
            OK(dsz_pipe_train_batch(pe, NULL, &bi));
            if (b < 0) continue;
            /* every stage starts at the barrier; the batch lasts until the
             * slowest stage is done (they all meet right after) */
            double span = bi.schedule_ms, busy = bi.compute_ms;
            MPI_Allreduce(MPI_IN_PLACE, &span, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            MPI_Allreduce(MPI_IN_PLACE, &busy, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
            idle[b] = 1.0 - busy / S / span;
            busy_ms[b] = busy / S;
            wall[b] = span;
        }
        const double meas = median(idle, batches), theory = (double)(S - 1) / (M + S - 1);
        if (rank == 0)
            printf("%4d %11.1f %11.1f %11.1f %13.1f%% %13.1f%%\n", M, median(wall, batches), 6.0 * (M + S - 1),
                   median(busy_ms, batches), 100 * meas, 100 * theory);
        OK(dsz_pipe_free(pe));
        pm_free(&m);
    }
}

static void step_time(int width, int batches) {
    const int S = world, L = 8, B = 32;
    int dims[L + 1];
    dims[0] = width / 2;
    for (int l = 1; l < L; ++l) dims[l] = width;
    dims[L] = 16;
    if (rank == 0) {
        printf("step: %d-layer MLP, width %d, batch %d, fp32 AdamW; %d stages vs one rank alone\n", L, width, B, S);
        printf("%4s %14s %14s %10s %10s %12s\n", "M", "pipeline (ms)", "1 stage (ms)", "speed-up", "ideal",
               "bubble meas.");
    }
    for (int M = 4; M <= 16; M *= 2) {
        pm_model m, solo;
        MPI_Comm w = MPI_COMM_WORLD, self = MPI_COMM_SELF;
        int lo, hi;
        split(L, dims, S, rank, &lo, &hi);
        dsz_pipe_engine *pe = make(M, S, &w, &m, L, dims, B, lo, hi);
        double t_pipe[64], t_solo[64], idle[64];
        for (int b = -1; b < batches; ++b) {
            dsz_pipe_batch_info bi;
            OK(dsz_pipe_batch_info_init(&bi, sizeof bi));
            MPI_Barrier(MPI_COMM_WORLD);
            const double t0 = now();
            OK(dsz_pipe_train_batch(pe, NULL, &bi));
            double t = now() - t0, span = bi.schedule_ms, busy = bi.compute_ms;
            MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            MPI_Allreduce(MPI_IN_PLACE, &span, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            MPI_Allreduce(MPI_IN_PLACE, &busy, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
            if (b >= 0) t_pipe[b] = 1e3 * t, idle[b] = 1.0 - busy / S / span;
        }
        OK(dsz_pipe_free(pe));
        pm_free(&m);
        /* one rank alone; the others wait (sleeping in a barrier would spin: they sleep) */
        if (rank == 0) {
            dsz_pipe_engine *ps = make(M, 1, &self, &solo, L, dims, B, 0, L);
            for (int b = -1; b < batches; ++b) {
                const double t0 = now();
                OK(dsz_pipe_train_batch(ps, NULL, NULL));
                if (b >= 0) t_solo[b] = 1e3 * (now() - t0);
            }
            OK(dsz_pipe_free(ps));
            pm_free(&solo);
            const double p = median(t_pipe, batches), s = median(t_solo, batches);
            printf("%4d %14.1f %14.1f %9.2fx %9.2fx %11.1f%%\n", M, p, s, s / p, (double)S * M / (M + S - 1),
                   100 * median(idle, batches));
        }
        int done = 0;
        MPI_Request req;
        MPI_Ibcast(&done, 1, MPI_INT, 0, MPI_COMM_WORLD, &req);
        for (int flag = 0; !flag;) {
            MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
            if (!flag) pm_spin(1000);
        }
    }
}

int main(int argc, char **argv) {
    int provided; /* MULTIPLE: lets dszero's progress thread move communication during compute */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    const char *mode = argc > 1 ? argv[1] : "bubble";
    const int width = argc > 2 ? atoi(argv[2]) : 256;
    int batches = argc > 3 ? atoi(argv[3]) : 5;
    if (batches < 1 || batches > 64) batches = 5;
    if (strcmp(mode, "bubble") == 0) bubble(batches);
    else step_time(width, batches);
    MPI_Finalize();
    return 0;
}
