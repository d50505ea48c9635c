/*
 * pipe_parity.c -- pipeline x data parallelism trains like one stage.
 *
 * Run under mpirun -np W (2 or 4). For each grid of the world (stages x
 * replicas: 2x1 on 2 ranks; 2x2 at ZeRO 0 and 1, and 4x1, on 4 ranks) a
 * six-layer fp32 MLP (tests/pipe/pipe_mlp.h) split with the "parameters"
 * method trains 4 batches of 4 micro-batches, and every rank compares with
 * a one-stage pipeline of the whole model on MPI_COMM_SELF fed the same
 * samples (replicas x 4 micro-batches per batch): losses, global gradient
 * norms (clipping is active) and its stage's parameters agree within 1e-6
 * relative. Then, on the last grid, faults on replica 0 only: a forward
 * callback failing on the last stage, an input gradient of the wrong shape
 * and of the wrong dtype, and a forward output changing shape; every rank
 * must get the same error naming the stages, and training then resumes as
 * if those batches never ran.
 */
#include <dszero.h>
#include <mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mpi/mpi_check.h"

#include "pipe_mlp.h"

static int rank, world;

enum { LAYERS = 6, BATCH = 4, M = 4, BATCHES = 4 };
static const int DIMS[LAYERS + 1] = {6, 12, 10, 10, 8, 8, 3};

static void quiet(int32_t l, const char *m, void *u) { (void)l; (void)m; (void)u; }

static const char *config(int gas, int zero) {
    static char buf[512];
    snprintf(buf, sizeof buf,
             "{\"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": %d,"
             " \"gradient_clipping\": 0.05, \"zero_optimization\": {\"stage\": %d},"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}}",
             BATCH, gas, zero);
    return buf;
}

static dsz_pipe_engine *make(const char *cfg, int stages, MPI_Comm *comm, pm_model *m, int lo, int hi) {
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
    pm_make(m, LAYERS, DIMS, BATCH, lo, hi, info.n_buffers);
    dsz_engine *e = NULL;
    OK(dsz_pipe_stage_engine(pe, &e));
    OK(pm_register(m, e));
    return pe;
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-3); }

/* Per tensor, ||a - ref|| / ||ref||: the reduction order differs (replicas
 * sum their own micro-batches first), and Adam turns the last-bit
 * differences of near-zero gradient elements into update differences of
 * up to lr, so single elements are not a fair yardstick; tensors are. */
static double tensor_rel(const float *a, const float *b, int n) {
    double d = 0, r = 0;
    for (int i = 0; i < n; ++i) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / fmax(r, 1e-30));
}

static void compare_params(const pm_model *a, const pm_model *ref, const char *what) {
    double worst = 0, worst_elem = 0;
    for (int l = a->lo; l < a->hi; ++l) {
        worst = fmax(worst, tensor_rel(a->w[l], ref->w[l], DIMS[l] * DIMS[l + 1]));
        worst = fmax(worst, tensor_rel(a->b[l], ref->b[l], DIMS[l + 1]));
        for (int i = 0; i < DIMS[l] * DIMS[l + 1]; ++i) worst_elem = fmax(worst_elem, fabs(a->w[l][i] - ref->w[l][i]));
        for (int i = 0; i < DIMS[l + 1]; ++i) worst_elem = fmax(worst_elem, fabs(a->b[l][i] - ref->b[l][i]));
    }
    if (getenv("PIPE_VERBOSE")) printf("[rank %d] %s: tensor rel %.3g, element abs %.3g\n", rank, what, worst, worst_elem);
    CHECK(worst <= 1e-6, "%s: parameters differ from the one-stage run by %.3g relative", what, worst);
}

typedef struct run {
    int stages, replicas, stage, replica, zero;
    pm_model pm, ref;
    dsz_pipe_engine *pe, *pr;
    MPI_Comm self;
} run;

static void start(run *r, int stages, int zero) {
    memset(r, 0, sizeof *r);
    r->stages = stages;
    r->zero = zero;
    r->replicas = world / stages;
    r->self = MPI_COMM_SELF;
    int64_t counts[LAYERS], parts[LAYERS + 1];
    for (int l = 0; l < LAYERS; ++l) counts[l] = (int64_t)DIMS[l] * DIMS[l + 1] + DIMS[l + 1];
    OK(dsz_pipe_partition("parameters", LAYERS, counts, NULL, stages, parts));
    MPI_Comm w = MPI_COMM_WORLD;
    /* DeepSpeed's layout: rank = stage * replicas + replica */
    r->stage = rank / r->replicas;
    r->replica = rank % r->replicas;
    r->pe = make(config(M, zero), stages, &w, &r->pm, (int)parts[r->stage], (int)parts[r->stage + 1]);
    dsz_pipe_info info;
    OK(dsz_pipe_info_init(&info, sizeof info));
    OK(dsz_pipe_get_info(r->pe, &info));
    CHECK(info.stage_id == r->stage && info.data_parallel_rank == r->replica && info.stages == stages &&
              info.data_parallel_size == r->replicas && info.micro_batches == M,
          "grid position: stage %d replica %d of %d x %d", info.stage_id, info.data_parallel_rank, info.stages,
          info.data_parallel_size);
    r->pr = make(config(M * r->replicas, 0), 1, &r->self, &r->ref, 0, LAYERS);
}

/* Trains batch `b` on both; compares loss and norm. */
static void train(run *r, int b, const char *what) {
    r->pm.first_sample = (int64_t)b * r->replicas * M + r->replica * M;
    r->ref.first_sample = (int64_t)b * r->replicas * M;
    double loss = 0, ref_loss = 0;
    dsz_pipe_batch_info bi, ri;
    OK(dsz_pipe_batch_info_init(&bi, sizeof bi));
    OK(dsz_pipe_batch_info_init(&ri, sizeof ri));
    OK(dsz_pipe_train_batch(r->pe, &loss, &bi));
    OK(dsz_pipe_train_batch(r->pr, &ref_loss, &ri));
    CHECK(rel(loss, ref_loss) <= 1e-6, "%s batch %d: loss %.10g, one stage %.10g", what, b, loss, ref_loss);
    CHECK(bi.stepped && rel(bi.grad_norm, ri.grad_norm) <= 1e-6, "%s batch %d: gradient norm %.10g, one stage %.10g",
          what, b, bi.grad_norm, ri.grad_norm);
    /* the same loss on every rank */
    double lo = loss, hi = loss;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    CHECK(lo == hi, "%s: ranks report different losses (%.10g .. %.10g)", what, lo, hi);
}

static void finish(run *r) {
    OK(dsz_pipe_free(r->pe));
    OK(dsz_pipe_free(r->pr));
    pm_free(&r->pm);
    pm_free(&r->ref);
}

/* A faulty batch: every rank gets `status` with all the needles in its message. */
static void expect_fault(run *r, int b, dsz_status status, const char *n1, const char *n2) {
    r->pm.first_sample = (int64_t)b * r->replicas * M + r->replica * M;
    double loss = -1;
    const dsz_status st = dsz_pipe_train_batch(r->pe, &loss, NULL);
    const char *msg = dsz_last_error();
    CHECK(st == status, "expected status %d (%s), got %d: %s", status, n1, st, msg);
    CHECK(strstr(msg, n1) && strstr(msg, n2) && strstr(msg, "abandoned on every rank"),
          "the message should name '%s' and '%s': %s", n1, n2, msg);
    if (rank == 0) printf("  every rank: %s\n", msg);
    r->pm.fail_forward_at = r->pm.bad_grad_shape_at = r->pm.bad_grad_dtype_at = r->pm.bad_out_shape_at = -1;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    int grids[3][2] = {{2, 0}, {2, 1}, {0, 0}};
    int n = 2;
    if (world == 4) {
        grids[0][0] = 4, grids[0][1] = 0;
        grids[1][0] = 2, grids[1][1] = 0;
        grids[2][0] = 2, grids[2][1] = 1;
        n = 3;
    }
    run r;
    for (int g = 0; g < n; ++g) {
        char what[64];
        snprintf(what, sizeof what, "%d stages x %d replicas, ZeRO %d", grids[g][0], world / grids[g][0],
                 grids[g][1]);
        start(&r, grids[g][0], grids[g][1]);
        for (int b = 0; b < BATCHES; ++b) train(&r, b, what);
        compare_params(&r.pm, &r.ref, what);
        if (rank == 0) printf("%s: matches one stage\n", what);
        if (g < n - 1) finish(&r);
    }
    /* faults, on replica 0 only: the other replicas abandon the batch too */
    const int last = r.stages - 1;
    char stage_last[32];
    snprintf(stage_last, sizeof stage_last, "stage %d (rank %d)", last, last * r.replicas);
    if (r.replica == 0 && r.stage == last) r.pm.fail_forward_at = 1;
    expect_fault(&r, BATCHES, DSZ_ERR_CALLBACK, stage_last, "forward callback returned 7 for micro-batch 1");
    if (r.replica == 0 && r.stage == 1) r.pm.bad_grad_shape_at = 2;
    expect_fault(&r, BATCHES, DSZ_ERR_SHAPE, "stage 1 (rank", "but stage 0 sends this stage activations of [4, ");
    if (r.replica == 0 && r.stage == 1) r.pm.bad_grad_dtype_at = 0;
    expect_fault(&r, BATCHES, DSZ_ERR_DTYPE, "float16", "but stage 0 sends");
    if (r.replica == 0 && r.stage == 0) r.pm.bad_out_shape_at = 2;
    expect_fault(&r, BATCHES, DSZ_ERR_SHAPE, "stage 0 (rank 0)", "stage 0 and stage 1 agreed on");
    for (int b = BATCHES; b < BATCHES + 2; ++b) train(&r, b, "after the faults");
    compare_params(&r.pm, &r.ref, "after the faults");
    if (rank == 0) printf("after four abandoned batches: still matches one stage\n");
    finish(&r);
    MPI_Finalize();
    return 0;
}
