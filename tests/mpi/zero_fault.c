/*
 * zero_fault.c -- a rank that stops in the middle of a training step, run
 * under mpirun by run_fault.sh (bounded, so a hang fails the test).
 *
 *   late   the last rank sleeps past the timeout before its dsz_step: the
 *          others' dsz_step returns DSZ_ERR_TIMEOUT naming the collective.
 *   exit   the last rank _exit()s before its dsz_step: the others end with
 *          DSZ_ERR_TIMEOUT, or mpirun ends the job; never a hang.
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

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    const char *mode = argc > 1 ? argv[1] : "late";
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
