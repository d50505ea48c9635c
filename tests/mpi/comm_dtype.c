/*
 * comm_dtype.c -- gradients travel in communication_data_type.
 *
 * DeepSpeed reduces gradients in communication_data_type, by default the
 * model dtype (16-bit training sends 16-bit gradients), after dividing them
 * by gradient_predivide_factor (the world size with prescale_gradients) and
 * multiplying back after. One SGD step (lr 0.7) from zero weights exposes
 * the reduced gradient exactly: p = 0 - 0.7 * (R * (1/W)), R the rank-order
 * sum the test recomputes with the same rounding (every partial sum rounded
 * to the 16-bit dtype). Checked bitwise at ZeRO stages 0-3 for fp32 models
 * with "fp32", "fp16" and "bf16" (and a predivide factor), and for a bf16
 * model by default (16-bit) and with an explicit "fp32". Run under mpirun;
 * exit status 0 on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_check.h"

enum { N = 1001 };

static int g_rank, g_world;

static float grad_of(int rank, int i) {
    return (float)(test_hash((unsigned)(rank * N + i) * 2654435761u) & 0xffffff) / 8388608.0f - 1.0f;
}

static float bf16_round(float x) {
    uint32_t u = (uint32_t)to16(x, 1) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float fp16_round(float x) { return (float)(_Float16)x; }

/* The reduced gradient of element i as the communicator forms it. */
static float reduced(const char *type, int i, float predivide, int grads16) {
    float acc = 0;
    for (int r = 0; r < g_world; ++r) {
        float g = grad_of(r, i);
        if (grads16) g = bf16_round(g); /* a bf16 model hands in bf16 gradients */
        g = g * (1.0f / predivide);
        if (!strcmp(type, "bf16")) g = bf16_round(g);
        if (!strcmp(type, "fp16")) g = fp16_round(g);
        acc = r == 0 ? g : acc + g;
        if (!strcmp(type, "bf16")) acc = bf16_round(acc);
        if (!strcmp(type, "fp16")) acc = fp16_round(acc);
    }
    return acc * predivide;
}

/* One step; returns the fp32 view of the updated weights in `out`. */
static void one_step(int stage, const char *type, double predivide, int bf16_model, float *out) {
    char cfg[512], comm[64] = "";
    if (type) snprintf(comm, sizeof comm, "\"communication_data_type\": \"%s\", ", type);
    snprintf(cfg, sizeof cfg,
             "{\"train_micro_batch_size_per_gpu\": 1, \"gradient_clipping\": 0, %s\"gradient_predivide_factor\": %g, %s"
             "\"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.7}}, \"zero_allow_untested_optimizer\": true, "
             "\"zero_optimization\": {\"stage\": %d, \"reduce_bucket_size\": 300, "
             "\"stage3_param_persistence_threshold\": 0}}",
             comm, predivide, bf16_model ? "\"bf16\": {\"enabled\": true}, " : "", stage);
    dsz_engine *e = world_engine(cfg, DSZ_LOG_ERROR);
    static float w32[N], g32[N];
    static uint16_t w16[N], g16[N];
    memset(w32, 0, sizeof w32);
    memset(w16, 0, sizeof w16);
    int64_t shape[1] = {N};
    DLTensor t = {0}, g = {0};
    t.device.device_type = g.device.device_type = kDLCPU;
    t.ndim = g.ndim = 1;
    t.shape = g.shape = shape;
    t.dtype = g.dtype = bf16_model ? (DLDataType){kDLBfloat, 16, 1} : (DLDataType){kDLFloat, 32, 1};
    t.data = bf16_model ? (void *)w16 : (void *)w32;
    for (int i = 0; i < N; ++i) {
        g32[i] = grad_of(g_rank, i);
        g16[i] = to16(g32[i], 1);
    }
    g.data = bf16_model ? (void *)g16 : (void *)g32;
    dsz_param p = {"w", &t, 0, 0};
    OK(dsz_register_params(e, &p, 1, NULL, 0));
    OK(dsz_grad_ready(e, 0, &g));
    OK(dsz_backward(e));
    OK(dsz_step(e, NULL));
    size_t idx = 0;
    DLTensor v;
    OK(dsz_gather(e, &idx, 1, &v));
    for (int i = 0; i < N; ++i) {
        if (bf16_model) {
            uint32_t u = (uint32_t)((const uint16_t *)v.data)[i] << 16;
            memcpy(&out[i], &u, 4);
        } else {
            out[i] = ((const float *)v.data)[i];
        }
    }
    OK(dsz_release(e, &idx, 1));
    OK(dsz_engine_free(e));
}

static int check(int stage, const char *type, const char *expect_type, double predivide, int bf16_model) {
    static float got[N];
    one_step(stage, type, predivide, bf16_model, got);
    const float gm = (float)(1.0 / g_world), nlr = (float)-0.7;
    int differs_from_fp32 = 0;
    for (int i = 0; i < N; ++i) {
        /* SGD: p = p + (-lr) * (R * gm) from p = 0 (so a zero R gives +0) */
        float want = 0.0f + nlr * (reduced(expect_type, i, (float)predivide, bf16_model) * gm);
        if (bf16_model) want = bf16_round(want);
        const float fp32 = 0.0f + nlr * (reduced("fp32", i, (float)predivide, bf16_model) * gm);
        if (bf16_model ? bf16_round(fp32) != want : fp32 != want) differs_from_fp32 = 1;
        CHECK(memcmp(&got[i], &want, 4) == 0,
              "stage %d, communication_data_type %s (%s model, predivide %g): element %d is %.9g, want %.9g", stage,
              type ? type : "(default)", bf16_model ? "bf16" : "fp32", predivide, i, got[i], want);
    }
    return differs_from_fp32;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    CHECK(g_world > 1, "run with at least 2 ranks");
    for (int stage = 0; stage <= 3; ++stage) {
        check(stage, NULL, "fp32", 1.0, 0);
        check(stage, "fp32", "fp32", 1.0, 0);
        CHECK(check(stage, "bf16", "bf16", 1.0, 0), "bf16 reductions were indistinguishable from fp32");
        CHECK(check(stage, "fp16", "fp16", 1.0, 0), "fp16 reductions were indistinguishable from fp32");
        check(stage, "bf16", "bf16", 4.0, 0);
        CHECK(check(stage, NULL, "bf16", 1.0, 1), "a bf16 model's default reductions were indistinguishable from fp32");
        check(stage, "fp32", "fp32", 1.0, 1);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) printf("comm_dtype: OK at %d ranks\n", g_world);
    MPI_Finalize();
    return 0;
}
