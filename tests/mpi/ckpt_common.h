/*
 * ckpt_common.h -- the model, gradients and engines shared by the
 * checkpoint tests that run under mpirun (ckpt_reshard.c, ckpt_resume.c).
 *
 * Four odd-sized tensors, so that partitions straddle parameters at every
 * world size. Rank r's gradient is base + (2r - (W-1)) * delta, with base and
 * delta on a coarse dyadic grid: the ranks' gradients differ, yet their sum
 * is exactly W * base in fp32 at W = 1, 2 or 4, so runs at different world
 * sizes see the same averaged gradient and differ only by the order of the
 * gradient-norm sums (that is what the 1e-6 relative bound is about).
 */
#ifndef DSZ_CKPT_COMMON_H
#define DSZ_CKPT_COMMON_H

#include <dszero.h>
#include <mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_check.h"

static int g_rank, g_world;

enum { NP = 4 };
static const int64_t SHAPES[NP][2] = {{37, 1}, {5, 11}, {1, 1}, {8, 8}};
static const int NDIM[NP] = {1, 2, 1, 2};
static const char *NAMES[NP] = {"emb", "fc.w", "scale", "head.w"};

static size_t numel(int i) { return (size_t)(SHAPES[i][0] * (NDIM[i] == 2 ? SHAPES[i][1] : 1)); }

/* In [-1, 1), a multiple of 2^-10. */
static float value(unsigned seed) { return (float)(test_hash(seed) & 0x7ff) / 1024.0f - 1.0f; }

typedef struct {
    int bits, bf;          /* 32, or 16 with bf = bfloat16 */
    void *data[NP];
    DLTensor t[NP];
} model;

static size_t model_bytes(const model *m) {
    size_t n = 0;
    for (int i = 0; i < NP; ++i) n += numel(i) * (size_t)m->bits / 8;
    return n;
}

static void model_make(model *m, int bits, int bf, unsigned seed) {
    memset(m, 0, sizeof *m);
    m->bits = bits;
    m->bf = bf;
    for (int i = 0; i < NP; ++i) {
        m->data[i] = calloc(numel(i), (size_t)bits / 8);
        for (size_t k = 0; k < numel(i); ++k) {
            const float v = 0.5f * value(seed + (unsigned)(i * 1000 + (int)k));
            if (bits == 32) ((float *)m->data[i])[k] = v;
            else ((uint16_t *)m->data[i])[k] = to16(v, bf);
        }
        m->t[i].data = m->data[i];
        m->t[i].device.device_type = kDLCPU;
        m->t[i].ndim = NDIM[i];
        m->t[i].dtype.code = (uint8_t)(bf ? kDLBfloat : kDLFloat);
        m->t[i].dtype.bits = (uint8_t)bits;
        m->t[i].dtype.lanes = 1;
        m->t[i].shape = (int64_t *)SHAPES[i];
    }
}

/* The engine's current parameters, concatenated. Through dsz_gather, so
 * that it works at stage 3 too (where the registered tensors are not
 * updated); collective at stage 3. */
static unsigned char *params_copy(dsz_engine *e, const model *m) {
    size_t idx[NP];
    DLTensor t[NP];
    for (int i = 0; i < NP; ++i) idx[i] = (size_t)i;
    OK(dsz_gather(e, idx, NP, t));
    unsigned char *out = malloc(model_bytes(m)), *p = out;
    for (int i = 0; i < NP; ++i) {
        memcpy(p, t[i].data, numel(i) * (size_t)m->bits / 8);
        p += numel(i) * (size_t)m->bits / 8;
    }
    OK(dsz_release(e, idx, NP));
    return out;
}

static void model_free(model *m) {
    for (int i = 0; i < NP; ++i) free(m->data[i]);
}

/* One micro-batch on rank `r` of `w`, then backward and step. */
static void feed(dsz_engine *e, model *m, int step, int r, int w) {
    double mult;
    OK(dsz_loss_scale(e, &mult));
    for (int i = NP - 1; i >= 0; --i) {
        void *g = calloc(numel(i), (size_t)m->bits / 8);
        for (size_t k = 0; k < numel(i); ++k) {
            const unsigned s = (unsigned)(step * 7919 + i * 131 + (int)k * 3);
            float v = value(s) + (float)(2 * r - (w - 1)) * 0.125f * value(s + 77777u);
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
}

static void quiet(int32_t l, const char *msg, void *u) { (void)l; (void)msg; (void)u; }

static void config_json(char *buf, size_t n, int stage, int bits, int bf) {
    snprintf(buf, n,
             "{\"train_micro_batch_size_per_gpu\": 1, "
             "\"zero_optimization\": {\"stage\": %d, \"reduce_bucket_size\": 40, \"allgather_bucket_size\": 30}, %s"
             "\"gradient_clipping\": 0.5, "
             "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}, "
             "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 5, \"warmup_max_lr\": 0.01}}}",
             stage,
             bits == 32 ? "" : bf ? "\"bf16\": {\"enabled\": true}, "
                                  : "\"fp16\": {\"enabled\": true, \"initial_scale_power\": 16, \"loss_scale_window\": 4}, ");
}

/* An engine on `comm` (NULL: MPI_COMM_WORLD) with the model registered. */
static dsz_engine *engine_on(MPI_Comm *comm, int stage, model *m, dsz_log_fn log, void *user) {
    char json[1024];
    config_json(json, sizeof json, stage, m->bits, m->bf);
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    o.log_fn = log ? log : quiet;
    o.log_user_data = user;
    o.log_level = log ? DSZ_LOG_DEBUG : DSZ_LOG_INFO;
    o.log_all_ranks = log ? 1 : 0;
    o.cpu_threads = 1;
    o.mpi_comm = comm;
    dsz_engine *e = NULL;
    OK(dsz_init(&e, json, &o));
    dsz_param p[NP];
    for (int i = 0; i < NP; ++i) {
        p[i].name = NAMES[i];
        p[i].tensor = &m->t[i];
        p[i].group = 0;
        p[i].flags = 0;
    }
    OK(dsz_register_params(e, p, NP, NULL, 0));
    return e;
}

static inline double max_rel(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; ++i) {
        const double d = fabs((double)a[i] - b[i]) / fmax(fabs((double)b[i]), 1e-3);
        if (d > worst) worst = d;
    }
    return worst;
}

#endif
