/*
 * train_dump.c -- the training job of the multi-host tests (tests/multihost).
 *
 *   train_dump STAGE fp32|bf16 OUT [--steps N] [--ckpt DIR --save-every K]
 *              [--load DIR] [--sleep-ms MS] [--log-dir DIR]
 *
 * A model of odd-sized tensors trains N steps (default 20) with
 * deterministic per-rank gradients; rank 0 writes the final parameters
 * (read through dsz_gather, so at every stage) to OUT ("-": nowhere). With
 * --ckpt it saves every K steps and prints "saved step S"; with --load it
 * first loads the latest checkpoint of DIR and prints "loaded step S".
 * On any dszero error it prints "rank R: CALL: MESSAGE" (also into
 * DIR/rank-R.log with --log-dir: output forwarded by Open MPI is lost when
 * a host's link is down) and leaves at once with status 1 (no
 * MPI_Finalize: a peer may be gone).
 */
#include <dszero.h>
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../mpi/mpi_check.h"

static int rank, world;
static FILE *rank_log;

static void check(dsz_status s, const char *call) {
    if (s == DSZ_OK) return;
    fprintf(stderr, "rank %d: %s: %s: %s\n", rank, call, dsz_status_string(s), dsz_last_error());
    fflush(stderr);
    if (rank_log) {
        fprintf(rank_log, "rank %d: %s: %s: %s\n", rank, call, dsz_status_string(s), dsz_last_error());
        fclose(rank_log);
    }
    _exit(1);
}

enum { NP = 4 };
static int64_t SHAPES[NP][2] = {{1037, 1}, {53, 11}, {1, 1}, {64, 8}};
static const int NDIM[NP] = {1, 2, 1, 2};
static size_t numel(int i) { return (size_t)(SHAPES[i][0] * SHAPES[i][1]); }

static float value(unsigned seed) { return (float)(test_hash(seed) & 0xffff) / 32768.0f - 1.0f; }

static void quiet(int32_t l, const char *m, void *u) { (void)l; (void)m; (void)u; }

int main(int argc, char **argv) {
    int provided; /* MULTIPLE: lets dszero's progress thread move communication during compute */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (argc < 4) {
        fprintf(stderr, "usage: %s STAGE fp32|bf16 OUT [--steps N] [--ckpt DIR --save-every K] [--load DIR]\n", argv[0]);
        return 2;
    }
    const int stage = atoi(argv[1]), bf = !strcmp(argv[2], "bf16");
    const char *out = argv[3], *ckpt = NULL, *load = NULL;
    long steps = 20, every = 0, sleep_ms = 0;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--steps")) steps = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--ckpt")) ckpt = argv[i + 1];
        else if (!strcmp(argv[i], "--save-every")) every = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--load")) load = argv[i + 1];
        else if (!strcmp(argv[i], "--sleep-ms")) sleep_ms = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--log-dir")) {
            char path[512];
            snprintf(path, sizeof path, "%s/rank-%d.log", argv[i + 1], rank);
            rank_log = fopen(path, "w");
        }
    }
    char json[1024];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": 1, \"gradient_clipping\": 1.0, %s"
             "\"zero_optimization\": {\"stage\": %d, \"overlap_comm\": true, \"reduce_bucket_size\": 300, "
             "\"allgather_bucket_size\": 300, \"stage3_prefetch_bucket_size\": 600, "
             "\"stage3_param_persistence_threshold\": 4}, "
             "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}, "
             "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 5, \"warmup_max_lr\": 0.01}}}",
             bf ? "\"bf16\": {\"enabled\": true}, " : "", stage);
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    o.log_fn = quiet;
    o.cpu_threads = 1;
    dsz_engine *e = NULL;
    check(dsz_init(&e, json, &o), "dsz_init");

    const size_t es = bf ? 2 : 4;
    void *data[NP];
    DLTensor t[NP];
    dsz_param p[NP];
    static const char *names[NP] = {"emb", "fc.w", "scale", "head.w"};
    for (int i = 0; i < NP; ++i) {
        data[i] = malloc(numel(i) * es);
        for (size_t k = 0; k < numel(i); ++k) {
            const float v = 0.5f * value((unsigned)(i * 1000 + (int)k));
            if (bf) ((uint16_t *)data[i])[k] = to16(v, 1);
            else ((float *)data[i])[k] = v;
        }
        memset(&t[i], 0, sizeof t[i]);
        t[i].data = data[i];
        t[i].device.device_type = kDLCPU;
        t[i].ndim = NDIM[i];
        t[i].dtype.code = bf ? kDLBfloat : kDLFloat;
        t[i].dtype.bits = (uint8_t)(8 * es);
        t[i].dtype.lanes = 1;
        t[i].shape = SHAPES[i];
        p[i].name = names[i];
        p[i].tensor = &t[i];
        p[i].group = 0;
        p[i].flags = 0;
    }
    check(dsz_register_params(e, p, NP, NULL, 0), "dsz_register_params");
    dsz_engine_state st;
    dsz_engine_state_init(&st, sizeof st);
    if (load) {
        check(dsz_load(e, load, NULL, 0, NULL), "dsz_load");
        check(dsz_get_state(e, &st), "dsz_get_state");
        if (rank == 0) printf("loaded step %lld\n", (long long)st.global_steps);
    }
    void *g = malloc(numel(0) * 4);
    for (long s = 0; s < steps; ++s) {
        double mult;
        check(dsz_loss_scale(e, &mult), "dsz_loss_scale");
        for (size_t i = NP; i-- > 0;) { /* backward order, each use gathered */
            check(dsz_gather(e, &i, 1, NULL), "dsz_gather");
            for (size_t k = 0; k < numel((int)i); ++k) {
                const float v = (float)(mult * value((unsigned)(s * 7919 + rank * 104729 + (long)i * 131 + (long)k * 3)));
                if (bf) ((uint16_t *)g)[k] = to16(v, 1);
                else ((float *)g)[k] = v;
            }
            DLTensor gt = t[i];
            gt.data = g;
            check(dsz_grad_ready(e, i, &gt), "dsz_grad_ready");
            check(dsz_release(e, &i, 1), "dsz_release");
        }
        check(dsz_backward(e), "dsz_backward");
        check(dsz_step(e, NULL), "dsz_step");
        if (ckpt && every > 0 && (s + 1) % every == 0) {
            check(dsz_save(e, ckpt, NULL, NULL), "dsz_save");
            check(dsz_get_state(e, &st), "dsz_get_state");
            if (rank == 0) {
                printf("saved step %lld\n", (long long)st.global_steps);
                fflush(stdout);
            }
        }
        if (sleep_ms > 0) usleep((useconds_t)(sleep_ms * 1000));
    }
    if (rank == 0 && strcmp(out, "-") != 0) {
        FILE *f = fopen(out, "wb");
        if (!f) {
            perror(out);
            _exit(1);
        }
        for (size_t i = 0; i < NP; ++i) {
            DLTensor cur;
            check(dsz_gather(e, &i, 1, &cur), "dsz_gather");
            fwrite(cur.data, es, numel((int)i), f);
            check(dsz_release(e, &i, 1), "dsz_release");
        }
        fclose(f);
    } else {
        /* the gathers are collective at stage 3: the other ranks join */
        for (size_t i = 0; i < NP && strcmp(out, "-") != 0; ++i) {
            check(dsz_gather(e, &i, 1, NULL), "dsz_gather");
            check(dsz_release(e, &i, 1), "dsz_release");
        }
    }
    check(dsz_engine_free(e), "dsz_engine_free");
    for (int i = 0; i < NP; ++i) free(data[i]);
    free(g);
    MPI_Finalize();
    return 0;
}
