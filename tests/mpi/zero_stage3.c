/*
 * zero_stage3.c -- ZeRO stage 3's parameters on demand (dsz_gather & co.).
 *
 * Run under mpirun -np W (1 to 4). Checks what include/dszero.h promises:
 *   - gathered buffers: values, shape and dtype; counts (a parameter
 *     gathered twice needs two releases); releasing what is not gathered,
 *     or reading a released parameter, is DSZ_ERR_STATE naming it, and a
 *     failed release changes nothing; bad indices are refused;
 *   - persistent parameters stay gathered; gathered_bytes follows;
 *   - a buffer held across dsz_step is refreshed in place, and training
 *     with gathers around every use ends bit for bit where stage 2 ends;
 *   - the recorded order prefetches what comes next (no collective left to
 *     issue when the host gets there), within prefetch_bucket_size, and
 *     max_reuse_distance decides which released parameters are kept;
 *   - ranks that gather different parameters all fail, naming dsz_gather.
 */
#include <dszero.h>
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_check.h"

static int rank, world;

#define FAILS(call, status, text)                                                               \
    do {                                                                                        \
        dsz_status st_ = (call);                                                                \
        CHECK(st_ == (status), "%s gave %s: %s", #call, dsz_status_string(st_), dsz_last_error()); \
        CHECK(strstr(dsz_last_error(), (text)) != NULL, "message lacks '%s': %s", (text), dsz_last_error()); \
    } while (0)

enum { NP = 5 };
static const char *NAMES[NP] = {"emb", "l1.w", "l1.b", "l2.w", "head"};
static int64_t SHAPES[NP][2] = {{300, 1}, {40, 7}, {7, 1}, {40, 7}, {33, 1}};
static const int NDIM[NP] = {1, 2, 1, 2, 1};
static size_t numel(int i) { return (size_t)(SHAPES[i][0] * SHAPES[i][1]); }

static float value(unsigned seed) { return (float)(test_hash(seed) & 0xffff) / 32768.0f - 1.0f; }

typedef struct {
    float *data[NP];
    DLTensor t[NP];
} model;

static void model_make(model *m) {
    for (int i = 0; i < NP; ++i) {
        m->data[i] = malloc(numel(i) * 4);
        for (size_t k = 0; k < numel(i); ++k) m->data[i][k] = value((unsigned)(i * 1000 + (int)k));
        memset(&m->t[i], 0, sizeof m->t[i]);
        m->t[i].data = m->data[i];
        m->t[i].device.device_type = kDLCPU;
        m->t[i].ndim = NDIM[i];
        m->t[i].dtype.code = kDLFloat;
        m->t[i].dtype.bits = 32;
        m->t[i].dtype.lanes = 1;
        m->t[i].shape = SHAPES[i];
    }
}

static void model_free(model *m) {
    for (int i = 0; i < NP; ++i) free(m->data[i]);
}

static model kept[8]; /* host tensors of stage 0-2 engines, freed at the end */
static int n_kept;

static void quiet(int32_t l, const char *msg, void *u) { (void)l; (void)msg; (void)u; }

/* A stage-3 (or other) engine with the model registered; the host frees its
 * own tensors right away at stage 3, as it may. */
static dsz_engine *make(int stage, int prefetch, int reuse) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": 1, \"gradient_clipping\": 1.0, "
             "\"zero_optimization\": {\"stage\": %d, \"reduce_bucket_size\": 200, "
             "\"stage3_param_persistence_threshold\": 10, \"stage3_prefetch_bucket_size\": %d, "
             "\"stage3_max_reuse_distance\": %d}, "
             "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}}",
             stage, prefetch, reuse);
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    o.log_fn = quiet;
    o.cpu_threads = 1;
    dsz_engine *e = NULL;
    OK(dsz_init(&e, json, &o));
    model m;
    model_make(&m);
    dsz_param p[NP];
    for (int i = 0; i < NP; ++i) {
        p[i].name = NAMES[i];
        p[i].tensor = &m.t[i];
        p[i].group = 0;
        p[i].flags = 0;
    }
    OK(dsz_register_params(e, p, NP, NULL, 0));
    if (stage == 3) model_free(&m); /* stage 3 never touches them again */
    else kept[n_kept++] = m;        /* stages 0-2 write into them */
    return e;
}

static int64_t gathered(dsz_engine *e) {
    dsz_memory_stats s;
    dsz_memory_stats_init(&s, sizeof s);
    OK(dsz_memory_stats_get(e, &s));
    return s.gathered_bytes;
}

static int64_t collectives(dsz_engine *e) {
    dsz_memory_stats s;
    dsz_memory_stats_init(&s, sizeof s);
    OK(dsz_memory_stats_get(e, &s));
    return s.collectives;
}

static void test_lifecycle(void) {
    dsz_engine *e = make(3, 1000, 1000000);
    DLTensor t[2];
    size_t one = 1, emb = 0, bias = 2;
    FAILS(dsz_param_tensor(e, 1, t), DSZ_ERR_STATE, "l1.w");
    size_t twice[2] = {1, 1};
    OK(dsz_gather(e, twice, 2, t));
    CHECK(t[0].data == t[1].data && t[0].data != NULL, "one buffer per parameter");
    CHECK(t[0].ndim == 2 && t[0].shape[0] == 40 && t[0].shape[1] == 7, "shape");
    CHECK(t[0].dtype.code == kDLFloat && t[0].dtype.bits == 32 && t[0].strides == NULL, "dtype and layout");
    for (size_t k = 0; k < numel(1); ++k)
        CHECK(((float *)t[0].data)[k] == value((unsigned)(1000 + (int)k)), "initial value %zu", k);
    CHECK(gathered(e) == (int64_t)numel(1) * 4, "gathered bytes %lld", (long long)gathered(e));
    DLTensor again;
    OK(dsz_param_tensor(e, 1, &again));
    CHECK(again.data == t[0].data, "dsz_param_tensor gives the gathered buffer");
    OK(dsz_release(e, &one, 1));
    OK(dsz_param_tensor(e, 1, &again)); /* still gathered once */
    FAILS(dsz_release(e, twice, 2), DSZ_ERR_STATE, "l1.w");
    OK(dsz_param_tensor(e, 1, &again)); /* the failed release changed nothing */
    OK(dsz_release(e, &one, 1));
    FAILS(dsz_param_tensor(e, 1, &again), DSZ_ERR_STATE, "l1.w");
    CHECK(gathered(e) == 0, "released buffers are freed: %lld", (long long)gathered(e));
    FAILS(dsz_release(e, &emb, 1), DSZ_ERR_STATE, "emb");
    size_t bad = NP;
    FAILS(dsz_gather(e, &bad, 1, t), DSZ_ERR_INVALID_ARGUMENT, "out of range");
    FAILS(dsz_gather(e, NULL, 1, t), DSZ_ERR_INVALID_ARGUMENT, "indices");
    /* Persistent: 7 elements <= param_persistence_threshold 10. */
    OK(dsz_gather(e, &bias, 1, t));
    OK(dsz_release(e, &bias, 1));
    OK(dsz_param_tensor(e, 2, &again));
    CHECK(gathered(e) == 7 * 4, "the persistent parameter stays: %lld", (long long)gathered(e));
    size_t three[3] = {0, 1, 3};
    OK(dsz_gather(e, three, 3, NULL));
    CHECK(gathered(e) == (int64_t)(300 + 280 + 280 + 7) * 4, "gathered bytes %lld", (long long)gathered(e));
    OK(dsz_release(e, three, 3));
    CHECK(gathered(e) == 7 * 4, "back to the persistent one: %lld", (long long)gathered(e));
    OK(dsz_engine_free(e));
}

/* The gradient of element k of parameter i at micro-step s on this rank. */
static float grad_of(int s, int i, size_t k) { return value((unsigned)(s * 7919 + rank * 104729 + i * 131 + (int)k * 3)); }

/* One micro-batch the way a host with modules does it: forward gathers
 * emb, (l1.w, l1.b), l2.w, head, each released after use; backward goes
 * back through head, l2.w, (l1.w, l1.b), emb, handing over the gradients.
 * `hold`: parameter 0 stays gathered (by an extra count) throughout. */
static void micro_batch(dsz_engine *e, int s) {
    static const size_t fwd[4][2] = {{0, 0}, {1, 2}, {3, 3}, {4, 4}};
    static const size_t len[4] = {1, 2, 1, 1};
    for (int c = 0; c < 4; ++c) {
        OK(dsz_gather(e, fwd[c], len[c], NULL));
        OK(dsz_release(e, fwd[c], len[c]));
    }
    for (int c = 3; c >= 0; --c) {
        DLTensor t[2];
        OK(dsz_gather(e, fwd[c], len[c], t));
        for (size_t j = 0; j < len[c]; ++j) {
            const int i = (int)fwd[c][j];
            float *g = malloc(numel(i) * 4);
            for (size_t k = 0; k < numel(i); ++k) g[k] = grad_of(s, i, k);
            DLTensor gt = t[j];
            gt.data = g;
            OK(dsz_grad_ready(e, (size_t)i, &gt));
            free(g);
        }
        OK(dsz_release(e, fwd[c], len[c]));
    }
    OK(dsz_backward(e));
    OK(dsz_step(e, NULL));
}

static float *snapshot(dsz_engine *e) {
    size_t total = 0;
    for (int i = 0; i < NP; ++i) total += numel(i);
    float *out = malloc(total * 4), *p = out;
    for (size_t i = 0; i < NP; ++i) {
        DLTensor t;
        OK(dsz_gather(e, &i, 1, &t));
        memcpy(p, t.data, numel((int)i) * 4);
        OK(dsz_release(e, &i, 1));
        p += numel((int)i);
    }
    return out;
}

static void test_training_and_refresh(void) {
    dsz_engine *e3 = make(3, 1000, 1000000), *e2 = make(2, 1000, 1000000);
    size_t emb = 0;
    DLTensor held;
    OK(dsz_gather(e3, &emb, 1, &held));
    const float before = ((float *)held.data)[5];
    for (int s = 0; s < 6; ++s) {
        micro_batch(e3, s);
        micro_batch(e2, s);
    }
    DLTensor now;
    OK(dsz_param_tensor(e3, 0, &now));
    CHECK(now.data == held.data, "a held buffer keeps its address across steps");
    CHECK(((float *)held.data)[5] != before, "and is refreshed by the updates");
    float *a = snapshot(e3), *b = snapshot(e2);
    size_t total = 0;
    for (int i = 0; i < NP; ++i) total += numel(i);
    CHECK(memcmp(a, b, total * 4) == 0, "stage 3 with gathers around every use ends where stage 2 does");
    CHECK(memcmp(held.data, a, numel(0) * 4) == 0, "the held buffer has the current values");
    OK(dsz_release(e3, &emb, 1));
    free(a);
    free(b);
    OK(dsz_engine_free(e3));
    OK(dsz_engine_free(e2));
}

static void test_prefetch_along_the_trace(void) {
    /* Budget 600 elements: after emb, l1.w (280; l1.b is persistent),
     * l2.w (280) and head (33) all fit. */
    dsz_engine *e = make(3, 600, 1000000);
    micro_batch(e, 0); /* records the order */
    size_t emb = 0, l1[2] = {1, 2}, l2 = 3;
    OK(dsz_gather(e, &emb, 1, NULL));
    CHECK(gathered(e) == (int64_t)(300 + 280 + 7 + 280 + 33) * 4, "emb and the prefetched rest: %lld",
          (long long)gathered(e));
    OK(dsz_release(e, &emb, 1));
    const int64_t before = collectives(e);
    OK(dsz_gather(e, l1, 2, NULL)); /* already fetched: no collective */
    CHECK(collectives(e) == before, "l1 was prefetched (%lld collectives issued)", (long long)(collectives(e) - before));
    OK(dsz_release(e, l1, 2));
    /* A different order: the trace is dropped and recorded again, values stay right. */
    OK(dsz_gather(e, &emb, 1, NULL));
    OK(dsz_release(e, &emb, 1));
    OK(dsz_gather(e, &l2, 1, NULL));
    OK(dsz_release(e, &l2, 1));
    OK(dsz_engine_free(e));

    /* Prefetching stops at the first parameter beyond the budget. */
    e = make(3, 100, 1000000);
    micro_batch(e, 0);
    OK(dsz_gather(e, &emb, 1, NULL));
    CHECK(gathered(e) == (int64_t)(300 + 7) * 4, "l1.w (280) does not fit in 100: %lld", (long long)gathered(e));
    OK(dsz_release(e, &emb, 1));
    OK(dsz_engine_free(e));
}

static void test_reuse_distance(void) {
    /* In the recorded order, head is gathered twice in a row (end of
     * forward, start of backward) and l2.w comes back after head twice:
     * 66 elements later. */
    for (int reuse = 50; reuse <= 100; reuse += 50) {
        dsz_engine *e = make(3, 1, reuse); /* prefetch off (1 element) */
        micro_batch(e, 0);
        static const size_t order[4] = {0, 1, 3, 4};
        for (int c = 0; c < 4; ++c) {
            size_t ids[2] = {order[c], 2};
            const size_t n = order[c] == 1 ? 2 : 1;
            OK(dsz_gather(e, ids, n, NULL));
            OK(dsz_release(e, ids, n));
        }
        /* l2.w (280 elements) is kept only when 66 <= reuse; head always
         * (distance 0); emb and l1.w come back much later. */
        const int64_t want = (int64_t)(7 + 33 + (reuse >= 66 ? 280 : 0)) * 4;
        CHECK(gathered(e) == want, "max_reuse_distance %d: %lld gathered bytes, want %lld", reuse,
              (long long)gathered(e), (long long)want);
        DLTensor t;
        FAILS(dsz_param_tensor(e, 4, &t), DSZ_ERR_STATE, "head"); /* kept, but released for the host */
        OK(dsz_engine_free(e));
    }
}

static void test_diverging_ranks(void) {
    if (world == 1) return;
    /* Same sizes (l1.w and l2.w): the list hash tells them apart. */
    dsz_engine *e = make(3, 1, 1000000);
    size_t idx = rank == 0 ? 1 : 3;
    FAILS(dsz_gather(e, &idx, 1, NULL), DSZ_ERR_COMM, "dsz_gather");
    OK(dsz_engine_free(e));
    /* Different sizes: the transfer itself fails, and says why. */
    e = make(3, 1, 1000000);
    idx = rank == 0 ? 0 : 4;
    dsz_status st = dsz_gather(e, &idx, 1, NULL);
    CHECK(st != DSZ_OK && strstr(dsz_last_error(), "dsz_gather") != NULL, "%s: %s", dsz_status_string(st),
          dsz_last_error());
    if (rank == 0 && getenv("DSZ_TEST_VERBOSE")) fprintf(stderr, "divergent sizes: %s\n", dsz_last_error());
    dsz_engine_free(e);
}

int main(int argc, char **argv) {
    int provided; /* MULTIPLE: lets dszero's progress thread move communication during compute */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    test_lifecycle();
    test_training_and_refresh();
    test_prefetch_along_the_trace();
    test_reuse_distance();
    test_diverging_ranks();
    for (int i = 0; i < n_kept; ++i) model_free(&kept[i]);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) printf("zero_stage3: %d ranks: gather/release lifetimes, refresh, prefetch, reuse, divergence\n", world);
    MPI_Finalize();
    return 0;
}
