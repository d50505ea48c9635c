/*
 * bench_zero_step.c -- step time of ZeRO stages 0-3 across ranks, and how much
 * communication overlap_comm hides (a benchmark, not a test).
 *
 *   mpirun -np 2 --bind-to none build/bench/bench_zero_step [MPARAMS] [STEPS] [COMPUTE_MS] [BUCKET ...]
 *
 * A model of MPARAMS million fp16 parameters (default 50) in 24 tensors.
 * Each step the "host" runs a forward over the tensors in order and a
 * backward in reverse order, spending COMPUTE_MS milliseconds of simulated
 * compute per tensor in each (default 0: dszero's own costs only); in
 * backward it hands over each tensor's gradient after its compute. Every use
 * is wrapped in dsz_gather / dsz_release (free at stages 0-2; at stage 3 the
 * parameter's all-gather, prefetched along the recorded order). Then
 * dsz_backward and dsz_step (AdamW, fp16 dynamic scaling, clipping).
 *
 * For each reduce_bucket_size given (elements; default 5e7, the whole model
 * in one bucket) and each stage it reports the step time (slowest rank) and
 * the time the engine was blocked on collectives (dsz_step_info.comm_wait_ms)
 * with overlap_comm on and off; "hidden" = 1 - wait(on) / wait(off), the
 * share of the blocking communication that overlap moved behind the host's
 * compute. For reference: one rank training the whole model alone.
 */
#include <dszero.h>
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { NT = 24 };
static int cpu_threads = 1;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void spin(double ms) {
    const double end = now() + ms * 1e-3;
    while (now() < end) {
    }
}

static void quiet(int32_t l, const char *m, void *u) { (void)l; (void)m; (void)u; }

static int check(dsz_status s, const char *what) {
    if (s == DSZ_OK) return 0;
    fprintf(stderr, "%s: %s\n", what, dsz_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
}

/* Mean step time over `steps` after one warm-up step; *wait: mean comm wait. */
static double run(int stage, MPI_Comm *comm, int64_t per_tensor, int steps, double compute_ms, long bucket,
                  int overlap, double *wait) {
    char json[768];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": 1, \"fp16\": {\"enabled\": true, \"initial_scale_power\": 4},"
             " \"zero_optimization\": {\"stage\": %d, \"overlap_comm\": %s, \"reduce_bucket_size\": %ld,"
             " \"allgather_bucket_size\": 50000000, \"stage3_prefetch_bucket_size\": %ld,"
             " \"stage3_param_persistence_threshold\": 0},"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 1e-4}}}",
             stage, overlap ? "true" : "false", bucket, 2 * (long)per_tensor);
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    o.log_fn = quiet;
    o.mpi_comm = comm;
    o.cpu_threads = cpu_threads; /* ranks x threads = cores: no oversubscription */
    dsz_engine *e = NULL;
    check(dsz_init(&e, json, &o), "dsz_init");
    int64_t shape[1] = {per_tensor};
    uint16_t *w[NT], *g = malloc((size_t)per_tensor * 2);
    for (int64_t i = 0; i < per_tensor; ++i) g[i] = (uint16_t)(0x2000 + (i & 0x3ff)); /* small positive fp16 */
    DLTensor t[NT];
    dsz_param p[NT];
    char names[NT][16];
    for (int i = 0; i < NT; ++i) {
        w[i] = calloc((size_t)per_tensor, 2);
        memset(&t[i], 0, sizeof t[i]);
        t[i].data = w[i];
        t[i].device.device_type = kDLCPU;
        t[i].ndim = 1;
        t[i].dtype.code = kDLFloat;
        t[i].dtype.bits = 16;
        t[i].dtype.lanes = 1;
        t[i].shape = shape;
        snprintf(names[i], sizeof names[i], "layer%02d", i);
        p[i].name = names[i];
        p[i].tensor = &t[i];
        p[i].group = 0;
        p[i].flags = 0;
    }
    check(dsz_register_params(e, p, NT, NULL, 0), "dsz_register_params");
    DLTensor gt = t[0];
    gt.data = g;
    double total = 0;
    *wait = 0;
    for (int s = 0; s <= steps; ++s) {
        MPI_Barrier(comm ? *comm : MPI_COMM_WORLD);
        const double t0 = now();
        for (size_t i = 0; i < NT; ++i) {
            check(dsz_gather(e, &i, 1, NULL), "dsz_gather");
            if (compute_ms > 0) spin(compute_ms);
            check(dsz_release(e, &i, 1), "dsz_release");
        }
        for (size_t i = NT; i-- > 0;) {
            check(dsz_gather(e, &i, 1, NULL), "dsz_gather");
            if (compute_ms > 0) spin(compute_ms);
            check(dsz_grad_ready(e, i, &gt), "dsz_grad_ready");
            check(dsz_release(e, &i, 1), "dsz_release");
        }
        check(dsz_backward(e), "dsz_backward");
        dsz_step_info info;
        dsz_step_info_init(&info, sizeof info);
        check(dsz_step(e, &info), "dsz_step");
        if (s > 0) {
            total += now() - t0;
            *wait += info.comm_wait_ms * 1e-3;
        }
    }
    *wait /= steps;
    dsz_engine_free(e);
    for (int i = 0; i < NT; ++i) free(w[i]);
    free(g);
    return total / steps;
}

int main(int argc, char **argv) {
    int provided; /* MULTIPLE: lets dszero's progress thread move communication during compute */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    const double mparams = argc > 1 ? atof(argv[1]) : 50;
    const int steps = argc > 2 ? atoi(argv[2]) : 5;
    const double compute_ms = argc > 3 ? atof(argv[3]) : 0;
    const int64_t per_tensor = (int64_t)(mparams * 1e6 / NT);
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_threads = cores / world > 1 ? (int)(cores / world) : 1;
    MPI_Comm self = MPI_COMM_SELF;
    double alone_wait;
    const double alone = run(0, &self, per_tensor, steps, compute_ms, 50000000, 1, &alone_wait);
    double alone_max;
    MPI_Allreduce(&alone, &alone_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
        printf("ZeRO step time: %.1fM fp16 parameters (%d x %lld), AdamW, %d ranks, %d steps, %.1f ms compute per "
               "tensor in forward and in backward\none rank alone (stage 0, whole model): %.1f ms per step\n\n"
               "%-10s %-6s %14s %14s %14s %14s %8s\n",
               per_tensor * NT / 1e6, NT, (long long)per_tensor, world, steps, compute_ms, 1e3 * alone_max, "bucket",
               "stage", "step on (ms)", "wait on (ms)", "step off (ms)", "wait off (ms)", "hidden");
    const int nb = argc > 4 ? argc - 4 : 1;
    for (int b = 0; b < nb; ++b) {
        const long bucket = argc > 4 ? atol(argv[4 + b]) : 50000000;
        for (int stage = 0; stage <= 3; ++stage) {
            double r[4]; /* step on, wait on, step off, wait off: slowest rank */
            for (int overlap = 1; overlap >= 0; --overlap) {
                double wait;
                const double t = run(stage, NULL, per_tensor, steps, compute_ms, bucket, overlap, &wait);
                MPI_Allreduce(&t, &r[2 * (1 - overlap)], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                MPI_Allreduce(&wait, &r[2 * (1 - overlap) + 1], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            }
            if (rank == 0)
                printf("%-10ld %-6d %14.1f %14.1f %14.1f %14.1f %7.0f%%\n", bucket, stage, 1e3 * r[0], 1e3 * r[1],
                       1e3 * r[2], 1e3 * r[3], r[3] > 0 ? 100.0 * (1.0 - r[1] / r[3]) : 0.0);
        }
    }
    MPI_Finalize();
    return 0;
}
