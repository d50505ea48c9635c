/*
 * moe_parity.c -- expert parallelism changes where experts run, not what
 * they compute: a small MoE layer (host gate Wg, experts tanh(W_e x)) run
 * forward and backward through the C API with ep_size 1 and with every
 * larger ep_size that divides the world, on the same tokens, must give the
 * same outputs, l_aux, token and gate-logit gradients on every rank, and
 * the same expert-weight gradients (ep_size 1: summed over all ranks; ep_size
 * > 1: summed over the expert-data group) within 1e-6 relative. Covers
 * top-1 with random token selection, top-2 with dropping, and top-2 without
 * dropping (capacity = MAX over the expert-parallel group).
 * Run under mpirun; exit status 0 on success.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_check.h"

enum { S = 24, M = 6, E = 4 };

static int g_rank, g_world;
static dsz_engine *g_engine;
static int g_failed;

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

typedef struct result {
    float y[S * M], dx[S * M], d_logits[S * E];
    double dW[E * M * M]; /* summed over the ranks that see each expert's tokens */
    double l_aux;
    int64_t capacity;
} result;

/* Shared model: gate Wg [E, M], experts W[e] [M, M]; rank's tokens x, dL/dy. */
static float Wg[E * M], W[E * M * M], X[S * M], T[S * M];

/* engine NULL: the group spans MPI_COMM_WORLD; else the engine's ranks. */
static void run_layer(const dsz_moe_gate_config *cfg, int ep, dsz_engine *engine, result *out) {
    dsz_moe_group *g = NULL;
    MPI_Comm world = MPI_COMM_WORLD;
    OK(dsz_moe_group_new(&g, engine, ep, engine ? NULL : &world));
    int32_t ep_size, ep_rank;
    OK(dsz_moe_group_info(g, &ep_size, &ep_rank, NULL, NULL));
    const int lE = E / ep;

    float logits[S * E];
    for (int s = 0; s < S; ++s)
        for (int e = 0; e < E; ++e) {
            float a = 0;
            for (int m = 0; m < M; ++m) a += X[s * M + m] * Wg[e * M + m];
            logits[s * E + e] = a;
        }
    dsz_moe_routing *r = NULL;
    OK(dsz_moe_gate(&r, cfg, logits, S, E, NULL, g));
    dsz_moe_routing_info info;
    OK(dsz_moe_routing_info_init(&info, sizeof info));
    OK(dsz_moe_routing_get_info(r, &info));
    const int64_t C = info.capacity;
    const size_t n = (size_t)(E * C * M);
    float *buf = calloc(n + 1, 4), *recv = calloc(n + 1, 4), *eout = calloc(n + 1, 4), *back = calloc(n + 1, 4);
    float *d_back = calloc(n + 1, 4), *d_eout = calloc(n + 1, 4), *d_recv = calloc(n + 1, 4), *d_buf = calloc(n + 1, 4);
    int64_t xs[2] = {S, M}, bs[3] = {E, C, M};
    DLTensor tx = view_f32(X, 2, xs), ty = view_f32(out->y, 2, xs), tT = view_f32(T, 2, xs);
    float dx_dispatch[S * M];
    DLTensor tdx = view_f32(dx_dispatch, 2, xs);
    DLTensor tbuf = view_f32(buf, 3, bs), trecv = view_f32(recv, 3, bs), teout = view_f32(eout, 3, bs), tback = view_f32(back, 3, bs);
    DLTensor tdback = view_f32(d_back, 3, bs), tdeout = view_f32(d_eout, 3, bs), tdrecv = view_f32(d_recv, 3, bs),
             tdbuf = view_f32(d_buf, 3, bs);

    /* forward */
    OK(dsz_moe_dispatch(r, &tx, &tbuf));
    OK(dsz_moe_all_to_all(g, &tbuf, &trecv));
    for (int src = 0; src < ep; ++src) /* recv reads [ep, lE, C, M] */
        for (int i = 0; i < lE; ++i) {
            const float *We = &W[(size_t)(ep_rank * lE + i) * M * M];
            for (int c = 0; c < C; ++c) {
                const size_t row = ((size_t)(src * lE + i) * C + c) * M;
                for (int o = 0; o < M; ++o) {
                    float a = 0;
                    for (int m = 0; m < M; ++m) a += We[o * M + m] * recv[row + m];
                    eout[row + o] = tanhf(a);
                }
            }
        }
    OK(dsz_moe_all_to_all(g, &teout, &tback));
    OK(dsz_moe_combine(r, &tback, &ty));

    /* backward of L = <T, y> + 0.3 * l_aux */
    float d_weight[S * 2];
    OK(dsz_moe_combine_backward(r, &tback, &tT, &tdback, d_weight));
    OK(dsz_moe_all_to_all(g, &tdback, &tdeout));
    memset(out->dW, 0, sizeof out->dW);
    for (int src = 0; src < ep; ++src)
        for (int i = 0; i < lE; ++i) {
            const int e = ep_rank * lE + i;
            const float *We = &W[(size_t)e * M * M];
            for (int c = 0; c < C; ++c) {
                const size_t row = ((size_t)(src * lE + i) * C + c) * M;
                float pre[M];
                for (int o = 0; o < M; ++o) pre[o] = d_eout[row + o] * (1 - eout[row + o] * eout[row + o]);
                for (int m = 0; m < M; ++m) {
                    float a = 0;
                    for (int o = 0; o < M; ++o) a += We[o * M + m] * pre[o];
                    d_recv[row + m] = a;
                }
                for (int o = 0; o < M; ++o)
                    for (int m = 0; m < M; ++m) out->dW[((size_t)e * M + o) * M + m] += (double)pre[o] * recv[row + m];
            }
        }
    OK(dsz_moe_all_to_all(g, &tdrecv, &tdbuf));
    OK(dsz_moe_dispatch_backward(r, &tdbuf, &tdx));
    OK(dsz_moe_gate_backward(r, d_weight, 0.3, NULL, out->d_logits));
    for (int s = 0; s < S; ++s)
        for (int m = 0; m < M; ++m) {
            float a = dx_dispatch[s * M + m];
            for (int e = 0; e < E; ++e) a += out->d_logits[s * E + e] * Wg[e * M + m];
            out->dx[s * M + m] = a;
        }
    /* Expert gradients summed over the world: with ep_size 1 every rank holds
     * a partial sum for every expert; with ep_size > 1 each expert-parallel
     * group holds each expert's sum over its ranks' tokens, on its owner. */
    MPI_Allreduce(MPI_IN_PLACE, out->dW, E * M * M, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    out->l_aux = info.l_aux;
    out->capacity = C;

    free(buf), free(recv), free(eout), free(back), free(d_back), free(d_eout), free(d_recv), free(d_buf);
    OK(dsz_moe_routing_free(r));
    OK(dsz_moe_group_free(g));
}

static double rel_diff_f(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0 ? num / den : num;
}

static double rel_diff_d(const double *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        num = fmax(num, fabs(a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return den > 0 ? num / den : num;
}

static void expect(int ok, const char *what, const char *name, int ep, double v) {
    if (!ok) {
        fprintf(stderr, "rank %d: %s, ep_size %d: %s differs from ep_size 1 (%g)\n", g_rank, name, ep, what, v);
        g_failed = 1;
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    g_engine = world_engine("{\"train_micro_batch_size_per_gpu\": 1, "
                            "\"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.1}}}",
                            DSZ_LOG_WARNING);
    unsigned seed = 7;
    for (int i = 0; i < E * M; ++i) Wg[i] = frand(&seed);
    for (int i = 0; i < E * M * M; ++i) W[i] = 0.5f * frand(&seed);
    seed = 100 + (unsigned)g_rank;
    for (int i = 0; i < S * M; ++i) X[i] = frand(&seed), T[i] = frand(&seed);

    struct {
        const char *name;
        int k, drop, rts;
        double cf;
    } cases[] = {{"top-1 rts", 1, 1, 1, 1.0}, {"top-2 drop", 2, 1, 0, 0.75}, {"top-2 no drop", 2, 0, 0, 1.0}};
    result *ref = malloc(sizeof *ref), *got = malloc(sizeof *got);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        dsz_moe_gate_config cfg;
        OK(dsz_moe_gate_config_init(&cfg, sizeof cfg));
        cfg.k = cases[c].k;
        cfg.drop_tokens = cases[c].drop;
        cfg.use_rts = cases[c].rts;
        cfg.capacity_factor = cases[c].cf;
        cfg.seed = 1000 + (uint64_t)g_rank;
        run_layer(&cfg, 1, NULL, ref);
        /* every ep_size > 1 that divides the world, the largest once more over the engine */
        int runs[8], n_runs = 0;
        for (int ep = 2; ep <= g_world; ep *= 2)
            if (g_world % ep == 0 && E % ep == 0) runs[n_runs++] = ep;
        if (n_runs) runs[n_runs] = -runs[n_runs - 1], ++n_runs;
        for (int run = 0; run < n_runs; ++run) {
            const int ep = abs(runs[run]), use_engine = runs[run] < 0;
            MPI_Comm epc; /* the expert-parallel group: consecutive ranks */
            MPI_Comm_split(MPI_COMM_WORLD, g_rank / ep, g_rank, &epc);
            int64_t max_cap = ref->capacity;
            MPI_Allreduce(MPI_IN_PLACE, &max_cap, 1, MPI_INT64_T, MPI_MAX, epc);
            MPI_Comm_free(&epc);
            run_layer(&cfg, ep, use_engine ? g_engine : NULL, got);
            const char *name = cases[c].name;
            const double dy = rel_diff_f(got->y, ref->y, S * M), dx = rel_diff_f(got->dx, ref->dx, S * M);
            const double dl = rel_diff_f(got->d_logits, ref->d_logits, S * E);
            const double dw = rel_diff_d(got->dW, ref->dW, E * M * M);
            expect(dy == 0, "output", name, ep, dy);
            expect(dx <= 1e-6, "token gradient", name, ep, dx);
            expect(dl <= 1e-6, "gate-logit gradient", name, ep, dl);
            expect(dw <= 1e-6, "expert-weight gradient", name, ep, dw);
            expect(got->l_aux == ref->l_aux, "l_aux", name, ep, got->l_aux - ref->l_aux);
            if (getenv("MOE_PARITY_VERBOSE"))
                printf("rank %d %s ep %d%s: C %lld, diffs y %g dx %g dlogits %g dW %g\n", g_rank, name, ep,
                       use_engine ? " (engine)" : "", (long long)got->capacity, dy, dx, dl, dw);
            if (!cases[c].drop) /* the group's MAX of the counts */
                expect(got->capacity == max_cap, "no-drop capacity", name, ep,
                       (double)got->capacity);
            else
                expect(got->capacity == ref->capacity, "capacity", name, ep, (double)got->capacity);
        }
    }
    free(ref), free(got);
    OK(dsz_engine_free(g_engine));
    int any = g_failed;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (g_rank == 0) printf(any ? "moe_parity: FAILED\n" : "moe_parity: ep_size 1 == ep_size 2..%d\n", g_world);
    MPI_Finalize();
    return any;
}
