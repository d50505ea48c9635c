/*
 * zero_fault.c -- a rank that stops in the middle of a training step, run
 * under mpirun by run_fault.sh (bounded, so a hang fails the test).
 *
 *   late   the last rank sleeps past the timeout before its dsz_step: the
 *          others' dsz_step returns DSZ_ERR_TIMEOUT naming the collective.
 *   exit   the last rank _exit()s before its dsz_step: the others end with
 *          DSZ_ERR_TIMEOUT, or mpirun ends the job; never a hang.
 *   lategroup  the last rank arrives at dsz_moe_group_new (which creates a
 *          communicator) after the others timed out there; they carry on,
 *          driving MPI while it arrives, and their memory must stay intact
 *          (the abandoned duplication completes into memory dszero keeps).
 * A rank that saw what it should prints "EXPECTED <status>: <message>";
 * anything else prints "UNEXPECTED".
 */
#include <dszero.h>
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void quiet(int32_t l, const char *m, void *u) { (void)l; (void)m; (void)u; }

static int late_group(int rank, int world) {
    dsz_moe_group *g = NULL;
    if (rank == world - 1) {
        sleep(13); /* past DSZ_COMM_TIMEOUT (10 s) */
        const dsz_status s = dsz_moe_group_new(&g, NULL, 1, NULL);
        if (s == DSZ_ERR_TIMEOUT && g == NULL) printf("EXPECTED %d: late rank %d: %s\n", s, rank, dsz_last_error());
        else printf("UNEXPECTED late rank: status %d: %s\n", s, dsz_last_error());
        fflush(stdout);
        _exit(0);
    }
    const dsz_status s = dsz_moe_group_new(&g, NULL, 1, NULL);
    if (s != DSZ_ERR_TIMEOUT || g != NULL || !strstr(dsz_last_error(), "creating communicator")) {
        printf("UNEXPECTED status %d: %s\n", s, dsz_last_error());
        _exit(0);
    }
    printf("EXPECTED %d: rank %d: %s\n", s, rank, dsz_last_error());
    /* Small blocks of every size class reuse whatever was freed; MPI must not write into them. */
    enum { BLOCKS = 4096 };
    static unsigned char *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; ++i) {
        const size_t n = 16 + (size_t)(i % 64) * 16;
        blocks[i] = malloc(n);
        memset(blocks[i], 0xA5, n);
    }
    for (int t = 0; t < 1200; ++t) { /* 12 s of MPI progress while the late rank arrives (at 13 s) */
        int flag = 0;
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
        usleep(10000);
    }
    for (int i = 0; i < BLOCKS; ++i) {
        const size_t n = 16 + (size_t)(i % 64) * 16;
        for (size_t k = 0; k < n; ++k)
            if (blocks[i][k] != 0xA5) {
                printf("UNEXPECTED rank %d: a block of %zu bytes changed at byte %zu after the timed-out "
                       "communicator creation\n", rank, n, k);
                _exit(0);
            }
    }
    printf("EXPECTED rank %d: memory intact\n", rank);
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    const char *mode = argc > 1 ? argv[1] : "late";
    if (strcmp(mode, "lategroup") == 0) return late_group(rank, world);
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    o.log_fn = quiet;
    dsz_engine *e = NULL;
    if (dsz_init(&e, "{\"train_micro_batch_size_per_gpu\": 1, \"zero_optimization\": {\"stage\": 1}, "
                     "\"optimizer\": {\"type\": \"AdamW\"}}", &o) != DSZ_OK) {
        printf("UNEXPECTED init: %s\n", dsz_last_error());
        return 1;
    }
    float w[1000] = {0}, g[1000];
    for (int i = 0; i < 1000; ++i) g[i] = 0.001f * (float)i;
    int64_t shape[1] = {1000};
    DLTensor t = {0};
    t.data = w;
    t.device.device_type = kDLCPU;
    t.ndim = 1;
    t.dtype.code = kDLFloat;
    t.dtype.bits = 32;
    t.dtype.lanes = 1;
    t.shape = shape;
    dsz_param p = {"w", &t, 0, 0};
    DLTensor gt = t;
    gt.data = g;
    if (dsz_register_params(e, &p, 1, NULL, 0) != DSZ_OK) {
        printf("UNEXPECTED register: %s\n", dsz_last_error());
        return 1;
    }
    for (int step = 0; step < 3; ++step) {
        dsz_grad_ready(e, 0, &gt);
        dsz_backward(e);
        if (step == 2 && rank == world - 1) {
            fflush(stdout);
            if (strcmp(mode, "exit") == 0) _exit(0);
            sleep(16); /* past DSZ_COMM_TIMEOUT (10 s) */
            printf("EXPECTED late rank woke up\n");
            fflush(stdout);
            _exit(0);
        }
        dsz_step_info info;
        dsz_step_info_init(&info, sizeof info);
        const dsz_status s = dsz_step(e, &info);
        if (step < 2 && s != DSZ_OK) {
            printf("UNEXPECTED step %d: %s\n", step, dsz_last_error());
            return 1;
        }
        if (step == 2) {
            if (s == DSZ_ERR_TIMEOUT && strstr(dsz_last_error(), "reduce_scatter"))
                printf("EXPECTED %d: rank %d: %s\n", s, rank, dsz_last_error());
            else
                printf("UNEXPECTED status %d: %s\n", s, dsz_last_error());
            fflush(stdout);
            _exit(0); /* the communicator is broken: leave without MPI_Finalize */
        }
    }
    return 0;
}
