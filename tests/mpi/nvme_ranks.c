/*
 * nvme_ranks.c -- NVMe offload of optimizer states across ranks (stage 3).
 *
 * Run under mpirun -np W. Every rank swaps its own partition's states under
 * <nvme_path>/zero_stage_3/optimizer/rank<R>/ and, with offload_param nvme,
 * its fp32 masters under .../fp32params/rank<R>/; training with them gives
 * bit for bit the parameters of training in memory, a checkpoint written
 * from swapped states resumes exactly, and dsz_engine_free removes every
 * rank's folder.
 */
#include <dszero.h>
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpi_check.h"

static int rank, world;

enum { NT = 4 };
static const int64_t SIZES[NT] = {3000, 10, 5001, 777};
static char root[256];

static float value(unsigned seed) { return (float)(test_hash(seed) & 0xffff) / 32768.0f - 1.0f; }

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void quiet(int32_t level, const char *m, void *u) { (void)level; (void)m; (void)u; }

typedef struct {
    float *data[NT];
    DLTensor t[NT];
} model;

enum { STATES = 1, PARAMS = 2 }; /* what start() swaps */

static dsz_engine *start(int nvme, model *m) {
    char json[1400], params[400] = "";
    if (nvme & PARAMS)
        snprintf(params, sizeof params,
                 ", \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"%s\", \"buffer_count\": 2, "
                 "\"buffer_size\": 700}", root);
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": 1, \"optimizer\": {\"type\": \"AdamW\", \"params\": "
             "{\"lr\": 0.01, \"weight_decay\": 0.01}}, \"zero_optimization\": {\"stage\": 3, \"sub_group_size\": 1000%s%s%s%s}}",
             nvme & STATES ? ", \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"" : "",
             nvme & STATES ? root : "",
             nvme & STATES ? "\", \"buffer_count\": 6, \"pipeline_read\": true, \"pipeline_write\": true}" : "",
             params);
    dsz_init_options o;
    OK(dsz_init_options_init(&o, sizeof o));
    o.log_fn = quiet;
    o.cpu_threads = 1;
    dsz_engine *e = NULL;
    OK(dsz_init(&e, json, &o));
    static const char *names[NT] = {"a", "b", "c", "d"};
    dsz_param p[NT];
    for (int k = 0; k < NT; ++k) {
        m->data[k] = malloc((size_t)SIZES[k] * 4);
        for (int64_t i = 0; i < SIZES[k]; ++i) m->data[k][i] = value((unsigned)(k * 10007 + i));
        DLTensor t = {m->data[k], {kDLCPU, 0}, 1, {kDLFloat, 32, 1}, (int64_t *)&SIZES[k], NULL, 0};
        m->t[k] = t;
        p[k] = (dsz_param){names[k], &m->t[k], 0, 0};
    }
    OK(dsz_register_params(e, p, NT, NULL, 0));
    return e;
}

static void finish(dsz_engine *e, model *m) {
    OK(dsz_engine_free(e));
    for (int k = 0; k < NT; ++k) free(m->data[k]);
}

static void train(dsz_engine *e, int from, int to) {
    for (int s = from; s < to; ++s) {
        for (int k = 0; k < NT; ++k) {
            float *g = malloc((size_t)SIZES[k] * 4);
            for (int64_t i = 0; i < SIZES[k]; ++i) g[i] = value((unsigned)(s * 7919 + rank * 104729 + k * 131 + i));
            DLTensor t = {g, {kDLCPU, 0}, 1, {kDLFloat, 32, 1}, (int64_t *)&SIZES[k], NULL, 0};
            OK(dsz_grad_ready(e, (size_t)k, &t));
            free(g);
        }
        OK(dsz_backward(e));
        OK(dsz_step(e, NULL));
    }
}

static float *snapshot(dsz_engine *e) {
    size_t total = 0;
    for (int k = 0; k < NT; ++k) total += (size_t)SIZES[k];
    float *out = malloc(total * 4), *at = out;
    for (int k = 0; k < NT; ++k) {
        size_t idx = (size_t)k;
        DLTensor t;
        OK(dsz_gather(e, &idx, 1, &t));
        memcpy(at, t.data, (size_t)SIZES[k] * 4);
        at += SIZES[k];
        OK(dsz_release(e, &idx, 1));
    }
    return out;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (rank == 0) {
        snprintf(root, sizeof root, "/tmp/dsz_nvme_ranks_%d", (int)getpid());
        mkdir(root, 0755);
    }
    MPI_Bcast(root, sizeof root, MPI_CHAR, 0, MPI_COMM_WORLD);
    size_t bytes = 0;
    for (int k = 0; k < NT; ++k) bytes += (size_t)SIZES[k] * 4;
    char folder[512], ckpt[512];
    snprintf(folder, sizeof folder, "%s/zero_stage_3/optimizer/rank%d", root, rank);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", root);

    model mr, mn, mb;
    dsz_engine *ref = start(0, &mr);
    train(ref, 0, 8);
    float *want = snapshot(ref);
    finish(ref, &mr);

    char pfolder[512];
    snprintf(pfolder, sizeof pfolder, "%s/zero_stage_3/fp32params/rank%d", root, rank);
    for (int mode = STATES; mode <= (STATES | PARAMS); ++mode) {
        dsz_engine *nv = start(mode, &mn);
        CHECK(exists(folder) == !!(mode & STATES), "%s: mode %d", folder, mode);
        CHECK(exists(pfolder) == !!(mode & PARAMS), "%s: mode %d", pfolder, mode);
        train(nv, 0, 8);
        float *got = snapshot(nv);
        CHECK(memcmp(got, want, bytes) == 0, "swapped training (mode %d) differs from training in memory", mode);
        free(got);
        finish(nv, &mn);
        MPI_Barrier(MPI_COMM_WORLD);
        CHECK(!exists(folder) && !exists(pfolder), "swap folders left behind (mode %d)", mode);
    }

    dsz_engine *nv = start(STATES | PARAMS, &mn);
    train(nv, 0, 5);
    OK(dsz_save(nv, ckpt, "five", NULL));
    finish(nv, &mn);
    dsz_engine *b = start(STATES | PARAMS, &mb);
    OK(dsz_load(b, ckpt, "five", 0, NULL));
    train(b, 5, 8);
    float *got = snapshot(b);
    CHECK(memcmp(got, want, bytes) == 0, "resumed swapped training differs");
    free(got);
    finish(b, &mb);
    free(want);

    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf %s", root);
        CHECK(system(cmd) == 0, "cleanup");
        printf("nvme_ranks: %d rank(s) OK\n", world);
    }
    MPI_Finalize();
    return 0;
}
