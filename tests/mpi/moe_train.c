/*
 * moe_train.c -- expert parameters in the engine (DSZ_GROUP_EXPERT): a
 * small MoE model trained under mpirun with ep_size 1 and with every larger
 * ep_size that divides the world reaches the same parameters.
 *
 * Model, per rank's micro-batch of S tokens x [S, M]:
 *   y = x + MoE(x)   (gate Wg [E, M], top-2, experts tanh(W_e y), dropping)
 *   out = y · Woᵀ,   L = 0.5 |out - T|² / S + 0.01 l_aux
 * Wg and Wo are ordinary parameters; the experts W_e live in an expert
 * group: with ep_size 1 every rank holds every expert and the engine
 * averages their gradients over the world; with ep_size > 1 a rank holds
 * E / ep_size experts (named by global id), tokens reach them through the
 * all-to-all, and the engine reduces them over the expert-data-parallel
 * group only, divided by the world size. Gradient clipping is on, so the
 * global norm must count every expert exactly once. Adam, gradient
 * accumulation 2, ZeRO stages 0-3 (stage 3 reads its parameters through
 * dsz_gather).
 *
 * Checks, at every stage and ep_size (within 1e-6 relative of ep_size 1,
 * where only summation order differs):
 *   - the parameters after K steps;
 *   - a checkpoint saved at step K/2 with ep_size ep, loaded into a fresh
 *     engine with the same ep_size: the continued run is bitwise the
 *     uninterrupted one;
 *   - the same checkpoint loaded with ep_size 1 at stage 1 (experts
 *     resharded across expert-parallel sizes and stages): within 1e-6;
 *   - dsz_consolidate of it holds every expert (from every expert-parallel
 *     rank's slice) under its global name.
 * Then the refusals: ep_size not dividing the world, expert names repeated
 * across an expert-parallel group. Exit status 0 on success.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi_check.h"

enum { S = 16, M = 8, E = 4, K = 8 };

static int g_rank, g_world;

static float urand(unsigned seed) { return (float)(test_hash(seed) >> 8) / 16777216.0f * 2.0f - 1.0f; }

/* The model as one engine sees it: the parameters this rank holds. */
typedef struct model {
    dsz_engine *eng;
    int32_t ep, ep_rank;
    int lE;
    dsz_moe_group *group;
    float Wg[E * M], Wo[M * M], W[E * M * M]; /* W: this rank's lE experts */
    size_t n_params;                         /* 2 + lE */
} model;

static void config_text(char *buf, size_t n, int stage) {
    snprintf(buf, n,
             "{\"train_micro_batch_size_per_gpu\": 1, \"gradient_accumulation_steps\": 2, "
             "\"gradient_clipping\": 0.05, \"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}, "
             "\"zero_optimization\": {\"stage\": %d, \"reduce_bucket_size\": 100, \"allgather_bucket_size\": 60, "
             "\"stage3_prefetch_bucket_size\": 100, \"stage3_param_persistence_threshold\": 0}, "
             "\"steps_per_print\": 0}",
             stage);
}

static int64_t shape_g[2] = {E, M}, shape_o[2] = {M, M}, shape_w[2] = {M, M};

static void model_init(model *md, int stage, int ep) {
    memset(md, 0, sizeof *md);
    char cfg[1024];
    config_text(cfg, sizeof cfg, stage);
    md->eng = world_engine(cfg, DSZ_LOG_WARNING);
    OK(dsz_moe_group_new(&md->group, md->eng, ep, NULL));
    OK(dsz_moe_group_info(md->group, &md->ep, &md->ep_rank, NULL, NULL));
    md->lE = E / ep;
    /* Initial values depend on the global parameter only. */
    for (int i = 0; i < E * M; ++i) md->Wg[i] = 0.5f * urand(1000u + (unsigned)i);
    for (int i = 0; i < M * M; ++i) md->Wo[i] = 0.3f * urand(2000u + (unsigned)i);
    for (int i = 0; i < md->lE; ++i)
        for (int j = 0; j < M * M; ++j)
            md->W[i * M * M + j] = 0.4f * urand(3000u + (unsigned)((md->ep_rank * md->lE + i) * M * M + j));

    static char names[E][32];
    DLTensor t[2 + E];
    dsz_param p[2 + E];
    t[0] = view_f32(md->Wg, 2, shape_g);
    t[1] = view_f32(md->Wo, 2, shape_o);
    p[0] = (dsz_param){"gate.weight", &t[0], 0, 0};
    p[1] = (dsz_param){"head.weight", &t[1], 0, 0};
    for (int i = 0; i < md->lE; ++i) {
        snprintf(names[i], sizeof names[i], "moe.experts.%d.weight", md->ep_rank * md->lE + i);
        t[2 + i] = view_f32(md->W + i * M * M, 2, shape_w);
        p[2 + i] = (dsz_param){names[i], &t[2 + i], 1, 0};
    }
    dsz_param_group groups[2] = {{"dense", 0, 0, 0, 0}, {"experts", DSZ_GROUP_EXPERT, (uint32_t)ep, 0, 0}};
    md->n_params = 2 + (size_t)md->lE;
    OK(dsz_register_params(md->eng, p, md->n_params, groups, 2));
}

static void model_free(model *md) {
    OK(dsz_moe_group_free(md->group));
    OK(dsz_engine_free(md->eng));
}

/* The current values of parameter i (at stage 3 through a gather). */
static const float *values(model *md, size_t i, DLTensor *out) {
    OK(dsz_param_tensor(md->eng, i, out));
    return (const float *)out->data;
}

/* One micro-batch: forward, backward, grads to the engine, dsz_step. */
static void micro_batch(model *md, int micro) {
    size_t all[2 + E];
    for (size_t i = 0; i < md->n_params; ++i) all[i] = i;
    OK(dsz_gather(md->eng, all, md->n_params, NULL));
    DLTensor tv;
    const float *Wg = values(md, 0, &tv);
    const float *Wo = values(md, 1, &tv);
    const float *We[E];
    for (int i = 0; i < md->lE; ++i) We[i] = values(md, 2 + (size_t)i, &tv);

    float X[S * M], T[S * M];
    for (int i = 0; i < S * M; ++i) {
        X[i] = urand(100000u * (unsigned)(micro + 1) + 1000u * (unsigned)g_rank + (unsigned)i);
        T[i] = urand(900000u + 100000u * (unsigned)(micro + 1) + 1000u * (unsigned)g_rank + (unsigned)i);
    }
    float logits[S * E];
    for (int s = 0; s < S; ++s)
        for (int e = 0; e < E; ++e) {
            float a = 0;
            for (int m = 0; m < M; ++m) a += X[s * M + m] * Wg[e * M + m];
            logits[s * E + e] = a;
        }
    dsz_moe_gate_config gc;
    OK(dsz_moe_gate_config_init(&gc, sizeof gc));
    gc.k = 2;
    dsz_moe_routing *r = NULL;
    OK(dsz_moe_gate(&r, &gc, logits, S, E, NULL, md->group));
    dsz_moe_routing_info info;
    OK(dsz_moe_routing_info_init(&info, sizeof info));
    OK(dsz_moe_routing_get_info(r, &info));
    const int64_t C = info.capacity;
    const size_t n = (size_t)(E * C * M);
    float *buf = calloc(n, 4), *recv = calloc(n, 4), *eout = calloc(n, 4), *back = calloc(n, 4);
    float *d_back = calloc(n, 4), *d_eout = calloc(n, 4), *d_recv = calloc(n, 4), *d_buf = calloc(n, 4);
    int64_t xs[2] = {S, M}, bs[3] = {E, C, M};
    float Y[S * M], moe_out[S * M];
    DLTensor tx = view_f32(X, 2, xs), tmo = view_f32(moe_out, 2, xs);
    DLTensor tbuf = view_f32(buf, 3, bs), trecv = view_f32(recv, 3, bs), teout = view_f32(eout, 3, bs), tback = view_f32(back, 3, bs);
    DLTensor tdback = view_f32(d_back, 3, bs), tdeout = view_f32(d_eout, 3, bs), tdrecv = view_f32(d_recv, 3, bs),
             tdbuf = view_f32(d_buf, 3, bs);
    const int ep = md->ep, lE = md->lE;

    OK(dsz_moe_dispatch(r, &tx, &tbuf));
    OK(dsz_moe_all_to_all(md->group, &tbuf, &trecv));
    for (int src = 0; src < ep; ++src)
        for (int i = 0; i < lE; ++i)
            for (int c = 0; c < C; ++c) {
                const size_t row = ((size_t)(src * lE + i) * (size_t)C + (size_t)c) * M;
                for (int o = 0; o < M; ++o) {
                    float a = 0;
                    for (int m = 0; m < M; ++m) a += We[i][o * M + m] * recv[row + m];
                    eout[row + o] = tanhf(a);
                }
            }
    OK(dsz_moe_all_to_all(md->group, &teout, &tback));
    OK(dsz_moe_combine(r, &tback, &tmo));
    for (int i = 0; i < S * M; ++i) Y[i] = X[i] + moe_out[i];

    /* head and loss gradients */
    double mul = 1;
    OK(dsz_loss_scale(md->eng, &mul));
    float dWo[M * M] = {0}, dY[S * M];
    for (int s = 0; s < S; ++s)
        for (int o = 0; o < M; ++o) {
            float a = 0;
            for (int m = 0; m < M; ++m) a += Wo[o * M + m] * Y[s * M + m];
            const float d = (float)mul * (a - T[s * M + o]) / S;
            for (int m = 0; m < M; ++m) dWo[o * M + m] += d * Y[s * M + m];
        }
    for (int s = 0; s < S; ++s)
        for (int m = 0; m < M; ++m) {
            float a = 0;
            for (int o = 0; o < M; ++o) {
                float z = 0;
                for (int q = 0; q < M; ++q) z += Wo[o * M + q] * Y[s * M + q];
                a += Wo[o * M + m] * (float)mul * (z - T[s * M + o]) / S;
            }
            dY[s * M + m] = a;
        }

    /* MoE backward */
    DLTensor tdY = view_f32(dY, 2, xs);
    float d_weight[S * 2], d_logits[S * E], dx_dispatch[S * M];
    DLTensor tdx = view_f32(dx_dispatch, 2, xs);
    float dW[E * M * M];
    memset(dW, 0, sizeof dW);
    OK(dsz_moe_combine_backward(r, &tback, &tdY, &tdback, d_weight));
    OK(dsz_moe_all_to_all(md->group, &tdback, &tdeout));
    for (int src = 0; src < ep; ++src)
        for (int i = 0; i < lE; ++i)
            for (int c = 0; c < C; ++c) {
                const size_t row = ((size_t)(src * lE + i) * (size_t)C + (size_t)c) * M;
                float pre[M];
                for (int o = 0; o < M; ++o) pre[o] = d_eout[row + o] * (1 - eout[row + o] * eout[row + o]);
                for (int m = 0; m < M; ++m) {
                    float a = 0;
                    for (int o = 0; o < M; ++o) a += We[i][o * M + m] * pre[o];
                    d_recv[row + m] = a;
                }
                for (int o = 0; o < M; ++o)
                    for (int m = 0; m < M; ++m) dW[(i * M + o) * M + m] += pre[o] * recv[row + m];
            }
    OK(dsz_moe_all_to_all(md->group, &tdrecv, &tdbuf));
    OK(dsz_moe_dispatch_backward(r, &tdbuf, &tdx));
    OK(dsz_moe_gate_backward(r, d_weight, 0.01 * mul, NULL, d_logits));
    float dWg[E * M] = {0};
    for (int s = 0; s < S; ++s)
        for (int e = 0; e < E; ++e)
            for (int m = 0; m < M; ++m) dWg[e * M + m] += d_logits[s * E + e] * X[s * M + m];

    DLTensor g0 = view_f32(dWg, 2, shape_g), g1 = view_f32(dWo, 2, shape_o);
    OK(dsz_grad_ready(md->eng, 1, &g1));
    for (int i = lE - 1; i >= 0; --i) {
        DLTensor gi = view_f32(dW + i * M * M, 2, shape_w);
        OK(dsz_grad_ready(md->eng, 2 + (size_t)i, &gi));
    }
    OK(dsz_grad_ready(md->eng, 0, &g0));
    OK(dsz_release(md->eng, all, md->n_params));
    OK(dsz_backward(md->eng));
    dsz_step_info si;
    OK(dsz_step_info_init(&si, sizeof si));
    OK(dsz_step(md->eng, &si));
    CHECK(!si.skipped, "step skipped");

    free(buf), free(recv), free(eout), free(back), free(d_back), free(d_eout), free(d_recv), free(d_buf);
    OK(dsz_moe_routing_free(r));
}

/* Micro-batches [from, to) (two per optimizer step). */
static void train(model *md, int from, int to) {
    for (int mb = from; mb < to; ++mb) micro_batch(md, mb);
}

/* This rank's parameters, by global name: Wg, Wo, then all E experts (those
 * it does not hold are NAN). */
typedef struct snapshot {
    float Wg[E * M], Wo[M * M], W[E * M * M];
} snapshot;

static void snap(model *md, snapshot *s) {
    size_t all[2 + E];
    for (size_t i = 0; i < md->n_params; ++i) all[i] = i;
    OK(dsz_gather(md->eng, all, md->n_params, NULL));
    DLTensor tv;
    memcpy(s->Wg, values(md, 0, &tv), sizeof s->Wg);
    memcpy(s->Wo, values(md, 1, &tv), sizeof s->Wo);
    for (int i = 0; i < E * M * M; ++i) s->W[i] = NAN;
    for (int i = 0; i < md->lE; ++i)
        memcpy(s->W + (md->ep_rank * md->lE + i) * M * M, values(md, 2 + (size_t)i, &tv), M * M * sizeof(float));
    OK(dsz_release(md->eng, all, md->n_params));
}

/* max |a - b| / max |b| over what both hold; -1 when a holds nothing. */
static double rel_diff(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    int any = 0;
    for (size_t i = 0; i < n; ++i) {
        if (isnan(a[i]) || isnan(b[i])) continue;
        any = 1;
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return !any ? -1 : den > 0 ? num / den : num;
}

static double snap_diff(const snapshot *a, const snapshot *b) {
    return fmax(fmax(rel_diff(a->Wg, b->Wg, E * M), rel_diff(a->Wo, b->Wo, M * M)), rel_diff(a->W, b->W, E * M * M));
}

static void ckpt_dir(char *buf, size_t n) {
    int pid = (int)getpid();
    MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
    snprintf(buf, n, "/tmp/dsz_moe_train_%d", pid);
}

/* Rank 0: consolidates dir/tag and checks every expert (all E of them, from
 * every slice) against `want` (ep_size 1's values, within 1e-6) and the
 * gate against it too. */
static void check_consolidated(const char *dir, const char *tag, const snapshot *want) {
    char out[300];
    snprintf(out, sizeof out, "%s/consolidated.safetensors", dir);
    DLDataType f32 = {kDLFloat, 32, 1};
    OK(dsz_consolidate(dir, tag, out, f32));
    FILE *f = fopen(out, "rb");
    CHECK(f != NULL, "cannot open %s", out);
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *bytes = malloc((size_t)size + 1);
    CHECK(fread(bytes, 1, (size_t)size, f) == (size_t)size, "short read of %s", out);
    fclose(f);
    bytes[size] = 0;
    uint64_t hlen = 0;
    memcpy(&hlen, bytes, 8);
    char *header = malloc(hlen + 1);
    memcpy(header, bytes + 8, hlen);
    header[hlen] = 0;
    for (int e = -1; e < E; ++e) {
        char name[64];
        if (e < 0) snprintf(name, sizeof name, "\"gate.weight\"");
        else snprintf(name, sizeof name, "\"moe.experts.%d.weight\"", e);
        const char *at = strstr(header, name);
        CHECK(at != NULL, "%s is missing from the consolidated file", name);
        const char *offs = strstr(at, "data_offsets");
        long long a = -1, b = -1;
        CHECK(offs && sscanf(strchr(offs, '[') + 1, " %lld , %lld", &a, &b) == 2, "no data_offsets for %s", name);
        const size_t n = e < 0 ? E * M : M * M;
        CHECK((size_t)(b - a) == n * 4, "%s: %lld bytes", name, b - a);
        float v[E * M * M];
        memcpy(v, bytes + 8 + hlen + a, n * 4);
        const double d = rel_diff(v, e < 0 ? want->Wg : want->W + e * M * M, n);
        CHECK(d >= 0 && d <= 1e-6, "%s in the consolidated file differs from ep_size 1 by %g", name, d);
    }
    free(header);
    free(bytes);
}

static int expect_fail(dsz_status st, dsz_status want, const char *needle) {
    return st == want && strstr(dsz_last_error(), needle) != NULL;
}

int main(int argc, char **argv) {
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    char dir[256];
    ckpt_dir(dir, sizeof dir);
    const int steps = 2 * K; /* micro-batches */
    double worst = 0;

    for (int stage = 0; stage <= 3; ++stage) {
        model ref;
        snapshot want, half_ref;
        model_init(&ref, stage, 1);
        train(&ref, 0, steps / 2);
        snap(&ref, &half_ref);
        train(&ref, steps / 2, steps);
        snap(&ref, &want);
        model_free(&ref);
        for (int ep = 2; ep <= g_world && ep <= E; ep *= 2) {
            if (g_world % ep) continue;
            model md;
            snapshot got, half, resumed;
            model_init(&md, stage, ep);
            train(&md, 0, steps / 2);
            snap(&md, &half);
            CHECK(snap_diff(&half, &half_ref) <= 1e-6, "stage %d ep %d: parameters at step %d differ by %g", stage,
                  ep, K / 2, snap_diff(&half, &half_ref));
            OK(dsz_save(md.eng, dir, "half", NULL));
            if (g_rank == 0) check_consolidated(dir, "half", &half_ref);
            train(&md, steps / 2, steps);
            snap(&md, &got);
            const double d = snap_diff(&got, &want);
            worst = fmax(worst, d);
            CHECK(d <= 1e-6, "stage %d ep %d: parameters after %d steps differ from ep_size 1 by %g", stage, ep, K, d);
            model_free(&md);

            /* Exact resume at the same ep_size. */
            model again;
            model_init(&again, stage, ep);
            OK(dsz_load(again.eng, dir, "half", 0, NULL));
            train(&again, steps / 2, steps);
            snap(&again, &resumed);
            CHECK(memcmp(&resumed, &got, sizeof got) == 0 || snap_diff(&resumed, &got) == 0,
                  "stage %d ep %d: resumed run differs from the uninterrupted one by %g", stage, ep,
                  snap_diff(&resumed, &got));
            model_free(&again);

            /* The experts resharded: loaded at ep_size 1, stage 1. */
            model other;
            model_init(&other, 1, 1);
            OK(dsz_load(other.eng, dir, "half", 0, NULL));
            snap(&other, &resumed);
            CHECK(snap_diff(&resumed, &half) == 0, "stage %d ep %d -> stage 1 ep 1: loaded values differ by %g",
                  stage, ep, snap_diff(&resumed, &half));
            train(&other, steps / 2, steps);
            snap(&other, &resumed);
            CHECK(snap_diff(&resumed, &want) <= 1e-6,
                  "stage %d ep %d -> stage 1 ep 1: continued run differs from ep_size 1 by %g", stage, ep,
                  snap_diff(&resumed, &want));
            model_free(&other);
        }
        if (g_rank == 0) printf("stage %d: ep_size 1..%d agree\n", stage, g_world < E ? g_world : E);
    }

    /* Refusals: every rank gets the same error, none hangs. ep_size not
     * dividing the world; the same expert name on every rank of an
     * expert-parallel group; ep_size without the flag. */
    if (g_world > 1) {
        char cfg[1024];
        config_text(cfg, sizeof cfg, 2);
        float w[M * M] = {0};
        DLTensor t = view_f32(w, 2, shape_w);
        dsz_param p = {"moe.experts.0.weight", &t, 0, 0};
        const dsz_param_group bad[3] = {{"experts", DSZ_GROUP_EXPERT, (uint32_t)g_world + 1, 0, 0},
                                        {"experts", DSZ_GROUP_EXPERT, (uint32_t)g_world, 0, 0},
                                        {"experts", 0, 2, 0, 0}};
        const char *why[3] = {"does not divide", "expert-parallel", "DSZ_GROUP_EXPERT"};
        for (int i = 0; i < 3; ++i) {
            dsz_engine *eng = world_engine(cfg, DSZ_LOG_ERROR);
            CHECK(expect_fail(dsz_register_params(eng, &p, 1, &bad[i], 1), DSZ_ERR_INVALID_ARGUMENT, why[i]),
                  "refusal %d (expected \"%s\"): %s", i, why[i], dsz_last_error());
            OK(dsz_engine_free(eng));
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
        printf("moe_train: OK (largest difference from ep_size 1: %.3g)\n", worst);
    }
    MPI_Finalize();
    return 0;
}
