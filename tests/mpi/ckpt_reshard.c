/*
 * ckpt_reshard.c -- a checkpoint loads at another world size and ZeRO stage.
 *
 * Run under mpirun -np 4, for ZeRO stages 0-3. Each scenario trains on the first Ws ranks (a
 * sub-communicator handed to dsz_init) at stage Ss, saves at step 6 and goes
 * on to step 14 (the reference); then the first Wl ranks, at stage Sl, start
 * from other initial values, load the checkpoint (directly: no conversion
 * step) and train steps 6-14 too. Checked:
 *   - the continued run matches the reference within 1e-6 relative (fp32),
 *     bit for bit when the world size is unchanged (any stage change);
 *   - the step counters, the learning rate and the loss scale carry over;
 *   - every loading rank ends with the same parameters;
 *   - a loading rank reads about its share of the shards, never all of them
 *     when Wl > 1 (its "read N of M bytes" debug line).
 * Shards use 64-byte checksum chunks (DSZ_CHECKPOINT_CHUNK_BYTES), so ranges
 * start and end inside chunks.
 */
#include "ckpt_common.h"

#include <unistd.h>

enum { SAVE_AT = 6, TOTAL = 14, CHUNK = 64 };

typedef struct {
    unsigned long long read, total;
    int seen;
} read_report;

static void capture(int32_t level, const char *msg, void *user) {
    (void)level;
    read_report *r = user;
    int rk;
    if (sscanf(msg, "dsz_load: rank %d read %llu of the checkpoint's %llu shard bytes", &rk, &r->read, &r->total) == 3)
        r->seen = 1;
}

static MPI_Comm first_ranks(int w) {
    MPI_Comm c;
    MPI_Comm_split(MPI_COMM_WORLD, g_rank < w ? 0 : MPI_UNDEFINED, g_rank, &c);
    return c;
}

typedef struct {
    int64_t global_steps;
    double lr, loss_scale;
} run_state;

static run_state state_of(dsz_engine *e) {
    dsz_engine_state st;
    dsz_engine_state_init(&st, sizeof st);
    OK(dsz_get_state(e, &st));
    run_state r;
    r.global_steps = st.global_steps;
    OK(dsz_get_lr(e, 0, &r.lr));
    OK(dsz_loss_scale(e, &r.loss_scale));
    return r;
}

static void scenario(const char *dir, int ws, int ss, int wl, int sl, int bits, int bf) {
    if (ws > g_world || wl > g_world) return;
    char what[128];
    snprintf(what, sizeof what, "%s: world %d stage %d -> world %d stage %d", bits == 32 ? "fp32" : bf ? "bf16" : "fp16",
             ws, ss, wl, sl);
    unsigned char *want = NULL;
    run_state want_state = {0, 0, 0};
    MPI_Comm cs = first_ranks(ws);
    if (cs != MPI_COMM_NULL) {
        model m;
        model_make(&m, bits, bf, 1);
        dsz_engine *e = engine_on(&cs, ss, &m, NULL, NULL);
        for (int s = 0; s < SAVE_AT; ++s) feed(e, &m, s, g_rank, ws);
        OK(dsz_save(e, dir, NULL, "{\"note\": \"resharded\"}"));
        for (int s = SAVE_AT; s < TOTAL; ++s) feed(e, &m, s, g_rank, ws);
        unsigned char *mine = params_copy(e, &m); /* collective at stage 3 */
        if (g_rank == 0) {
            want = mine;
            want_state = state_of(e);
        } else {
            free(mine);
        }
        OK(dsz_engine_free(e));
        model_free(&m);
        MPI_Comm_free(&cs);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Comm cl = first_ranks(wl);
    if (cl != MPI_COMM_NULL) {
        model m;
        model_make(&m, bits, bf, 2); /* other initial values: the checkpoint must win */
        read_report rr = {0, 0, 0};
        dsz_engine *e = engine_on(&cl, sl, &m, capture, &rr);
        char *client = NULL;
        OK(dsz_load(e, dir, NULL, 0, &client));
        CHECK(strcmp(client, "{\"note\":\"resharded\"}") == 0, "%s: client state %s", what, client);
        dsz_string_free(client);
        CHECK(rr.seen, "%s: no read report in the log", what);
        const unsigned long long slack = (unsigned long long)ws * (3 * 2 * CHUNK + 64);
        CHECK(rr.read <= rr.total / (unsigned long long)wl + slack, "%s: read %llu of %llu bytes", what, rr.read, rr.total);
        if (wl > 1) CHECK(rr.read < rr.total, "%s: a rank read the whole checkpoint", what);
        for (int s = SAVE_AT; s < TOTAL; ++s) feed(e, &m, s, g_rank, wl);
        unsigned char *got = params_copy(e, &m);
        const size_t n = model_bytes(&m);
        unsigned char *r0 = malloc(n);
        memcpy(r0, got, n);
        MPI_Bcast(r0, (int)n, MPI_BYTE, 0, cl);
        CHECK(memcmp(r0, got, n) == 0, "%s: ranks hold different parameters", what);
        free(r0);
        const run_state st = state_of(e);
        if (g_rank == 0) {
            CHECK(st.global_steps == want_state.global_steps, "%s: global steps %lld, want %lld", what,
                  (long long)st.global_steps, (long long)want_state.global_steps);
            CHECK(st.lr == want_state.lr, "%s: lr %g, want %g", what, st.lr, want_state.lr);
            CHECK(st.loss_scale == want_state.loss_scale, "%s: loss scale %g, want %g", what, st.loss_scale,
                  want_state.loss_scale);
            if (ws == wl) {
                CHECK(memcmp(got, want, n) == 0, "%s: not bit for bit the run without the change", what);
            } else {
                CHECK(bits == 32, "tolerances are for fp32");
                const double d = max_rel((const float *)got, (const float *)want, n / 4);
                CHECK(d <= 1e-6, "%s: %g relative from the run without the change", what, d);
                printf("%-40s max relative difference %.2e, rank 0 read %llu of %llu bytes\n", what, d, rr.read, rr.total);
            }
        }
        free(got);
        OK(dsz_engine_free(e));
        model_free(&m);
        MPI_Comm_free(&cl);
    }
    free(want);
    MPI_Barrier(MPI_COMM_WORLD);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    char chunk[16];
    snprintf(chunk, sizeof chunk, "%d", CHUNK);
    setenv("DSZ_CHECKPOINT_CHUNK_BYTES", chunk, 1);
    char dir[128];
    int pid = (int)getpid();
    MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
    snprintf(dir, sizeof dir, "/tmp/dsz_ckpt_reshard_%d", pid);

    /* The transitions at each partitioned stage. */
    static const int moves[][2] = {{1, 2}, {2, 4}, {4, 2}, {2, 1}};
    for (int stage = 1; stage <= 3; ++stage)
        for (size_t k = 0; k < sizeof moves / sizeof moves[0]; ++k)
            scenario(dir, moves[k][0], stage, moves[k][1], stage, 32, 0);
    /* Stage changes, with and without a world size change (stage 0 included). */
    scenario(dir, 2, 0, 4, 2, 32, 0);
    scenario(dir, 4, 2, 1, 0, 32, 0);
    scenario(dir, 1, 0, 2, 1, 32, 0);
    scenario(dir, 2, 1, 2, 2, 32, 0);
    scenario(dir, 2, 2, 2, 0, 16, 1);
    scenario(dir, 4, 1, 4, 2, 16, 0);
    scenario(dir, 1, 2, 1, 1, 16, 0);
    scenario(dir, 4, 3, 2, 1, 32, 0);
    scenario(dir, 2, 2, 4, 3, 32, 0);
    scenario(dir, 1, 0, 2, 3, 32, 0);
    scenario(dir, 2, 3, 2, 0, 16, 1);

    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0, "cleanup");
        printf("ckpt_reshard: checkpoints load across world sizes 1, 2, 4 and ZeRO stages 0-3\n");
    }
    MPI_Finalize();
    return 0;
}
