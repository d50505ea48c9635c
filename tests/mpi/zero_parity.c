/*
 * zero_parity.c -- ZeRO stages across ranks give the same training.
 *
 * Run under mpirun -np W. A model of odd-sized tensors (so partitions
 * straddle parameters) trains 20 steps with deterministic per-rank
 * gradients, for stages 0-3 x fp32 / fp16 / bf16, and checks:
 *   - every rank ends with the same parameters (bit for bit);
 *   - at a fixed world size the stages agree bit for bit (GAS 1), and with
 *     gradient accumulation stages 0 and 1 agree bit for bit, stages 2 and 3
 *     (bit for bit with each other) within 1e-6 relative (they reduce every
 *     micro-batch, the others once a window);
 *   - in fp32 the result is within 1e-6 relative of a one-rank engine (built
 *     on MPI_COMM_SELF through dsz_init_options.mpi_comm) fed the average of
 *     all ranks' gradients;
 *   - an fp16 overflow on one rank skips the step on every rank;
 *   - a checkpoint saved at W ranks resumes bit for bit, at any stage;
 *   - ranks registering different parameters all get an error naming it;
 *   - dsz_memory_stats per stage, and 2 x padded elements per step through
 *     collectives at every stage (the ZeRO paper's 2 Psi).
 */
#include <dszero.h>
#include <mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi_check.h"

static int rank, world;

enum { NP = 4, STEPS = 20 };
static const int64_t SHAPES[NP][2] = {{37, 1}, {5, 11}, {1, 1}, {8, 8}};
static const int NDIM[NP] = {1, 2, 1, 2};

static size_t numel(int i) { return (size_t)(SHAPES[i][0] * (NDIM[i] == 2 ? SHAPES[i][1] : 1)); }

static float value(unsigned seed) { return (float)(test_hash(seed) & 0xffff) / 32768.0f - 1.0f; }

typedef struct {
    int bits, bf;          /* 32, or 16 with bf = bfloat16 */
    void *data[NP];
    DLTensor t[NP];
} model;

static DLDataType dtype(const model *m) {
    DLDataType d = {m->bf ? kDLBfloat : kDLFloat, (uint8_t)m->bits, 1};
    return d;
}

static void model_make(model *m, int bits, int bf) {
    memset(m, 0, sizeof *m);
    m->bits = bits;
    m->bf = bf;
    for (int i = 0; i < NP; ++i) {
        m->data[i] = calloc(numel(i), (size_t)bits / 8);
        for (size_t k = 0; k < numel(i); ++k) {
            float v = 0.5f * value((unsigned)(i * 1000 + (int)k));
            if (bits == 32) ((float *)m->data[i])[k] = v;
            else ((uint16_t *)m->data[i])[k] = to16(v, bf);
        }
        m->t[i].data = m->data[i];
        m->t[i].device.device_type = kDLCPU;
        m->t[i].ndim = NDIM[i];
        m->t[i].dtype = dtype(m);
        m->t[i].shape = (int64_t *)SHAPES[i];
    }
}

static void model_free(model *m) {
    for (int i = 0; i < NP; ++i) free(m->data[i]);
}

/* Rank r's gradient for element k of tensor i at micro-step s. */
static float grad_of(int s, int r, int i, size_t k) { return value((unsigned)(s * 7919 + r * 104729 + i * 131 + (int)k * 3)); }

/* Feeds one micro-batch: either this rank's gradient, or (ref) the average
 * over all `world` ranks' gradients. `inf_at`: micro-step where rank 1 hands
 * over an infinity. */
static void feed(dsz_engine *e, model *m, int s, int ref, int inf_at) {
    double mult;
    OK(dsz_loss_scale(e, &mult));
    for (int i = NP - 1; i >= 0; --i) { /* backward order */
        void *g = calloc(numel(i), (size_t)m->bits / 8);
        for (size_t k = 0; k < numel(i); ++k) {
            float v;
            if (ref) {
                double acc = 0;
                for (int r = 0; r < world; ++r) acc += grad_of(s, r, i, k);
                v = (float)(acc / world);
            } else {
                v = grad_of(s, rank, i, k);
            }
            if (s == inf_at && rank == 1 && !ref && i == 1 && k == 3) v = INFINITY;
            v = (float)(v * mult);
            if (m->bits == 32) ((float *)g)[k] = v;
            else ((uint16_t *)g)[k] = to16(v, m->bf);
        }
        DLTensor gt = m->t[i];
        gt.data = g;
        OK(dsz_grad_ready(e, (size_t)i, &gt));
        free(g);
    }
    OK(dsz_backward(e));
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    OK(dsz_step(e, &info));
    if (s == inf_at && info.boundary && world > 1) CHECK(info.skipped, "rank 1's overflow must skip the step everywhere");
}

static void quiet(int32_t l, const char *m, void *u) { (void)l; (void)m; (void)u; }

static dsz_engine *engine(const char *json, MPI_Comm *comm) {
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    o.log_fn = quiet;
    o.cpu_threads = 1;
    o.mpi_comm = comm;
    dsz_engine *e = NULL;
    OK(dsz_init(&e, json, &o));
    return e;
}

static void reg(dsz_engine *e, model *m) {
    static const char *names[NP] = {"emb", "fc.w", "scale", "head.w"};
    dsz_param p[NP];
    for (int i = 0; i < NP; ++i) {
        p[i].name = names[i];
        p[i].tensor = &m->t[i];
        p[i].group = 0;
        p[i].flags = 0;
    }
    OK(dsz_register_params(e, p, NP, NULL, 0));
}

static void config(char *buf, size_t n, int stage, int bits, int bf, int gas) {
    snprintf(buf, n,
             "{\"train_micro_batch_size_per_gpu\": 1, \"gradient_accumulation_steps\": %d, "
             "\"zero_optimization\": {\"stage\": %d, \"reduce_bucket_size\": 40, \"allgather_bucket_size\": 30, "
             "\"overlap_comm\": true}, %s"
             "\"gradient_clipping\": 0.5, "
             "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}, "
             "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 5, \"warmup_max_lr\": 0.01}}}",
             gas, stage,
             bits == 32 ? "" : bf ? "\"bf16\": {\"enabled\": true}, " : "\"fp16\": {\"enabled\": true, \"initial_scale_power\": 8}, ");
}

/* The current values of every parameter, concatenated, read through
 * dsz_gather (the host's tensors at stages 0-2, dszero's at stage 3). */
static unsigned char *read_params(dsz_engine *e, int bits, size_t *bytes) {
    size_t total = 0;
    for (int i = 0; i < NP; ++i) total += numel(i) * (size_t)bits / 8;
    unsigned char *out = malloc(total), *p = out;
    for (size_t i = 0; i < NP; ++i) {
        DLTensor t;
        OK(dsz_gather(e, &i, 1, &t));
        memcpy(p, t.data, numel((int)i) * (size_t)bits / 8);
        OK(dsz_release(e, &i, 1));
        p += numel((int)i) * (size_t)bits / 8;
    }
    *bytes = total;
    return out;
}

/* Trains and returns the parameter bytes (concatenated). */
static unsigned char *train(int stage, int bits, int bf, int gas, int inf_at, size_t *bytes) {
    char json[1024];
    config(json, sizeof json, stage, bits, bf, gas);
    dsz_engine *e = engine(json, NULL);
    model m;
    model_make(&m, bits, bf);
    reg(e, &m);
    for (int s = 0; s < STEPS * gas; ++s) feed(e, &m, s, 0, inf_at);
    unsigned char *out = read_params(e, bits, bytes);
    model_free(&m);
    OK(dsz_engine_free(e));
    return out;
}

static void same_on_all_ranks(const unsigned char *p, size_t n, const char *what) {
    unsigned char *r0 = malloc(n);
    memcpy(r0, p, n);
    MPI_Bcast(r0, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
    CHECK(memcmp(r0, p, n) == 0, "%s: parameters differ from rank 0's", what);
    free(r0);
}

static double max_rel(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; ++i) {
        double d = fabs((double)a[i] - b[i]) / fmax(fabs((double)b[i]), 1e-3);
        if (d > worst) worst = d;
    }
    return worst;
}

static void test_stage_parity(void) {
    const int kinds[3][2] = {{32, 0}, {16, 0}, {16, 1}};
    for (int k = 0; k < 3; ++k) {
        const int bits = kinds[k][0], bf = kinds[k][1];
        for (int gas = 1; gas <= 2; ++gas) {
            size_t n0, n1, n2, n3;
            unsigned char *s0 = train(0, bits, bf, gas, -1, &n0);
            unsigned char *s1 = train(1, bits, bf, gas, -1, &n1);
            unsigned char *s2 = train(2, bits, bf, gas, -1, &n2);
            unsigned char *s3 = train(3, bits, bf, gas, -1, &n3);
            char what[64];
            snprintf(what, sizeof what, "%s gas %d", bits == 32 ? "fp32" : bf ? "bf16" : "fp16", gas);
            same_on_all_ranks(s0, n0, what);
            same_on_all_ranks(s1, n1, what);
            same_on_all_ranks(s2, n2, what);
            same_on_all_ranks(s3, n3, what);
            CHECK(memcmp(s2, s3, n0) == 0, "%s: stage 3 differs from stage 2", what);
            CHECK(memcmp(s0, s1, n0) == 0, "%s: stage 1 differs from stage 0", what);
            if (gas == 1 || world == 1) CHECK(memcmp(s0, s2, n0) == 0, "%s: stage 2 differs from stage 0", what);
            else if (bits == 32) CHECK(max_rel((float *)s0, (float *)s2, n0 / 4) <= 1e-6, "%s: stage 2 vs 0", what);
            free(s0);
            free(s1);
            free(s2);
            free(s3);
        }
    }
}

static void test_against_one_rank(void) {
    for (int stage = 0; stage <= 3; ++stage) {
        size_t n;
        unsigned char *multi = train(stage, 32, 0, 1, -1, &n);
        char json[1024];
        config(json, sizeof json, 0, 32, 0, 1);
        MPI_Comm self = MPI_COMM_SELF;
        dsz_engine *e = engine(json, &self);
        model m;
        model_make(&m, 32, 0);
        reg(e, &m);
        for (int s = 0; s < STEPS; ++s) feed(e, &m, s, 1, -1);
        const unsigned char *p = multi;
        for (int i = 0; i < NP; ++i) {
            const double d = max_rel((const float *)p, (const float *)m.data[i], numel(i));
            CHECK(d <= 1e-6, "stage %d, tensor %d: %g relative from the one-rank run", stage, i, d);
            p += numel(i) * 4;
        }
        model_free(&m);
        OK(dsz_engine_free(e));
        free(multi);
    }
}

static void test_overflow_on_one_rank(void) {
    for (int stage = 0; stage <= 3; ++stage) {
        size_t n;
        unsigned char *p = train(stage, 16, 0, 1, 4, &n);
        same_on_all_ranks(p, n, "fp16 with an overflow on rank 1");
        free(p);
    }
}

static void test_checkpoint_resume(void) {
    char dir[128];
    snprintf(dir, sizeof dir, "/tmp/dsz_zero_parity_%d", world);
    for (int stage = 0; stage <= 3; ++stage) {
        char json[1024];
        config(json, sizeof json, stage, 16, 1, 1);
        size_t n;
        unsigned char *want = train(stage, 16, 1, 1, -1, &n);
        dsz_engine *a = engine(json, NULL);
        model ma;
        model_make(&ma, 16, 1);
        reg(a, &ma);
        for (int s = 0; s < 8; ++s) feed(a, &ma, s, 0, -1);
        OK(dsz_save(a, dir, NULL, "{\"stage\": 1}"));
        OK(dsz_engine_free(a));
        model_free(&ma);
        dsz_engine *b = engine(json, NULL);
        model mb;
        model_make(&mb, 16, 1);
        reg(b, &mb);
        OK(dsz_load(b, dir, NULL, 0, NULL));
        for (int s = 8; s < STEPS; ++s) feed(b, &mb, s, 0, -1);
        size_t got_n;
        unsigned char *got = read_params(b, 16, &got_n);
        const unsigned char *p = want, *q = got;
        for (int i = 0; i < NP; ++i) {
            CHECK(memcmp(p, q, numel(i) * 2) == 0, "stage %d: resumed tensor %d differs", stage, i);
            p += numel(i) * 2;
            q += numel(i) * 2;
        }
        free(got);
        OK(dsz_engine_free(b));
        model_free(&mb);
        free(want);
    }
    if (rank == 0) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0, "cleanup");
    }
}

/* dsz_memory_stats follows the layout of docs/zero.md, and one step moves
 * 2 x padded elements through collectives at every stage (plus the norm). */
static void test_memory_and_volume(void) {
    size_t numel_total = 0;
    for (int i = 0; i < NP; ++i) numel_total += numel(i);
    const size_t padded = (numel_total + 2 * (size_t)world - 1) / (2 * (size_t)world) * 2 * (size_t)world;
    const size_t P = padded / (size_t)world;
    for (int stage = 0; stage <= 3; ++stage) {
        char json[1024];
        config(json, sizeof json, stage, 32, 0, 1);
        dsz_engine *e = engine(json, NULL);
        model m;
        model_make(&m, 32, 0);
        reg(e, &m);
        dsz_memory_stats a, b;
        dsz_memory_stats_init(&a, sizeof a);
        dsz_memory_stats_init(&b, sizeof b);
        OK(dsz_memory_stats_get(e, &a));
        feed(e, &m, 0, 0, -1);
        OK(dsz_memory_stats_get(e, &b));
        const size_t local = stage == 0 ? padded : P;
        CHECK(b.host_param_bytes == (stage == 3 ? 0 : (int64_t)(4 * numel_total)), "stage %d host params", stage);
        CHECK(b.gathered_bytes == 0, "stage %d: nothing gathered: %lld", stage, (long long)b.gathered_bytes);
        CHECK(b.master_bytes == (int64_t)(4 * local), "stage %d: master %lld, want %zu", stage, (long long)b.master_bytes, 4 * local);
        CHECK(b.optimizer_bytes == (int64_t)(8 * local), "stage %d: Adam states %lld", stage, (long long)b.optimizer_bytes);
        CHECK(b.grad_bytes == (int64_t)(4 * (stage >= 2 ? P : padded)), "stage %d: grads %lld", stage, (long long)b.grad_bytes);
        if (stage == 0 || (stage == 1 && world == 1))
            CHECK(b.comm_buffer_bytes == 0, "stage %d: no communication buffers on %d rank(s)", stage, world);
        /* all-gather staging: at most two windows of allgather_bucket_size (30) elements */
        const int64_t staging = 2 * 4 * 30;
        if (stage == 1 && world > 1)
            CHECK(b.comm_buffer_bytes >= (int64_t)(4 * P) && b.comm_buffer_bytes <= (int64_t)(4 * P) + staging,
                  "stage 1: reduced partition + staging, %lld bytes", (long long)b.comm_buffer_bytes);
        if (stage >= 2)
            CHECK(b.comm_buffer_bytes > 0 && b.comm_buffer_bytes <= 4 * 2 * 2 * 40 * 2 + staging,
                  "stage 2: bucket pool + staging, %lld bytes", (long long)b.comm_buffer_bytes);
        CHECK(b.total_bytes == b.master_bytes + b.optimizer_bytes + b.grad_bytes + b.comm_buffer_bytes, "total");
        CHECK(b.peak_total_bytes >= b.total_bytes, "peak");
        if (world > 1) {
            /* Stage 3 publishes nothing after the update: the host gathers. */
            const int64_t moved = b.comm_elements - a.comm_elements;
            const int64_t want = (int64_t)((stage == 3 ? 1 : 2) * padded + 2);
            CHECK(moved == want, "stage %d: %lld elements through collectives, want %lld", stage, (long long)moved,
                  (long long)want);
        }
        model_free(&m);
        OK(dsz_engine_free(e));
    }
}

/* LAMB at stages >= 1 sees, as in DeepSpeed, one flat tensor per rank's
 * partition: its trust ratio is the partition's. Reference: one rank at
 * stage 0 whose tensors are the W partitions of the flat model (padding
 * included: zeros that stay zero), fed the average of all ranks' gradients. */
static void test_lamb_partitions(void) {
    size_t total = 0;
    for (int i = 0; i < NP; ++i) total += numel(i);
    const size_t padded = (total + 2 * (size_t)world - 1) / (2 * (size_t)world) * 2 * (size_t)world;
    const size_t P = padded / (size_t)world;
    for (int stage = 1; stage <= 3; ++stage) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"train_micro_batch_size_per_gpu\": 1, \"zero_allow_untested_optimizer\": true, "
                 "\"zero_optimization\": {\"stage\": %d, \"reduce_bucket_size\": 40}, "
                 "\"optimizer\": {\"type\": \"Lamb\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}}",
                 stage);
        dsz_engine *e = engine(json, NULL);
        model m;
        model_make(&m, 32, 0);
        reg(e, &m);
        for (int s = 0; s < 8; ++s) feed(e, &m, s, 0, -1);
        size_t n;
        unsigned char *got = read_params(e, 32, &n);
        OK(dsz_engine_free(e));

        /* the reference: W tensors of P elements over the flat model */
        snprintf(json, sizeof json,
                 "{\"train_micro_batch_size_per_gpu\": 1, \"optimizer\": {\"type\": \"Lamb\", "
                 "\"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}}");
        MPI_Comm self = MPI_COMM_SELF;
        dsz_engine *r = engine(json, &self);
        float *flat = calloc(padded, 4), *gflat = calloc(padded, 4);
        model init; /* the initial values (m holds trained ones at stages 1-2) */
        model_make(&init, 32, 0);
        size_t at = 0;
        for (int i = 0; i < NP; ++i) {
            memcpy(flat + at, init.data[i], numel(i) * 4);
            at += numel(i);
        }
        model_free(&init);
        int64_t shape[1] = {(int64_t)P};
        dsz_param rp[8];
        DLTensor rt[8];
        char names[8][16];
        for (int k = 0; k < world; ++k) {
            memset(&rt[k], 0, sizeof rt[k]);
            rt[k].data = flat + (size_t)k * P;
            rt[k].device.device_type = kDLCPU;
            rt[k].ndim = 1;
            rt[k].dtype.code = kDLFloat;
            rt[k].dtype.bits = 32;
            rt[k].dtype.lanes = 1;
            rt[k].shape = shape;
            snprintf(names[k], sizeof names[k], "part%d", k);
            rp[k].name = names[k];
            rp[k].tensor = &rt[k];
            rp[k].group = 0;
            rp[k].flags = 0;
        }
        OK(dsz_register_params(r, rp, (size_t)world, NULL, 0));
        for (int s = 0; s < 8; ++s) {
            at = 0;
            for (int i = 0; i < NP; ++i)
                for (size_t k = 0; k < numel(i); ++k) {
                    double acc = 0;
                    for (int q = 0; q < world; ++q) acc += grad_of(s, q, i, k);
                    gflat[at++] = (float)(acc / world);
                }
            for (int k = 0; k < world; ++k) {
                DLTensor g = rt[k];
                g.data = gflat + (size_t)k * P;
                OK(dsz_grad_ready(r, (size_t)k, &g));
            }
            OK(dsz_backward(r));
            OK(dsz_step(r, NULL));
        }
        const double d = max_rel((const float *)got, flat, total);
        CHECK(d <= 1e-6, "LAMB stage %d: %g relative from the per-partition reference", stage, d);
        free(flat);
        free(gflat);
        free(got);
        model_free(&m);
        OK(dsz_engine_free(r));
    }
}

/* Ranks that register different parameters get a clear error, all of them. */
static void test_mismatched_registration(void) {
    if (world == 1) return;
    char json[1024];
    config(json, sizeof json, 2, 32, 0, 1);
    dsz_engine *e = engine(json, NULL);
    model m;
    model_make(&m, 32, 0);
    int64_t other[2] = {11, 5};
    if (rank == world - 1) m.t[1].shape = other; /* the last rank has fc.w transposed */
    static const char *names[NP] = {"emb", "fc.w", "scale", "head.w"};
    dsz_param p[NP];
    for (int i = 0; i < NP; ++i) {
        p[i].name = names[i];
        p[i].tensor = &m.t[i];
        p[i].group = 0;
        p[i].flags = 0;
    }
    const dsz_status st = dsz_register_params(e, p, NP, NULL, 0);
    CHECK(st == DSZ_ERR_INVALID_ARGUMENT, "status %d: %s", st, dsz_last_error());
    CHECK(strstr(dsz_last_error(), "fc.w") != NULL, "the message names the parameter: %s", dsz_last_error());
    model_free(&m);
    OK(dsz_engine_free(e));
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    test_stage_parity();
    test_against_one_rank();
    test_overflow_on_one_rank();
    test_checkpoint_resume();
    test_mismatched_registration();
    test_memory_and_volume();
    test_lamb_partitions();
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) printf("zero_parity: %d ranks: stages 0-3 agree, match one rank, skip overflows together, resume exactly\n", world);
    MPI_Finalize();
    return 0;
}
