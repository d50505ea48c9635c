/*
 * ckpt_consolidate.c -- checkpoints for the consolidation test
 * (run_consolidate.sh), written by 2 ranks so that partitions straddle
 * parameters:
 *   DIR/fp32/   fp32 training at ZeRO stage 2;  DIR/fp32.expected: the
 *               engine's weights after the last step, concatenated
 *   DIR/bf16/   bf16 training at ZeRO stage 3;  DIR/bf16.expected: the same
 *   DIR/expected.json: the parameters' names and shapes, in order
 */
#include "ckpt_common.h"

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

static void one(const char *dir, const char *name, int stage, int bits, int bf) {
    model m;
    model_make(&m, bits, bf, 3);
    dsz_engine *e = engine_on(NULL, stage, &m, NULL, NULL);
    for (int s = 0; s < 5; ++s) feed(e, &m, s, g_rank, g_world);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    OK(dsz_save(e, path, NULL, NULL));
    unsigned char *w = params_copy(e, &m);
    if (g_rank == 0) {
        snprintf(path, sizeof path, "%s/%s.expected", dir, name);
        write_file(path, w, model_bytes(&m));
    }
    free(w);
    OK(dsz_engine_free(e));
    model_free(&m);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    CHECK(argc == 2, "usage: ckpt_consolidate DIR");
    one(argv[1], "fp32", 2, 32, 0);
    one(argv[1], "bf16", 3, 16, 1);
    if (g_rank == 0) {
        char path[512], json[1024];
        int at = snprintf(json, sizeof json, "{\"names\": [");
        for (int i = 0; i < NP; ++i) at += snprintf(json + at, sizeof json - (size_t)at, "%s\"%s\"", i ? ", " : "", NAMES[i]);
        at += snprintf(json + at, sizeof json - (size_t)at, "], \"shapes\": [");
        for (int i = 0; i < NP; ++i) {
            if (NDIM[i] == 1) at += snprintf(json + at, sizeof json - (size_t)at, "%s[%lld]", i ? ", " : "", (long long)SHAPES[i][0]);
            else at += snprintf(json + at, sizeof json - (size_t)at, "%s[%lld, %lld]", i ? ", " : "", (long long)SHAPES[i][0], (long long)SHAPES[i][1]);
        }
        snprintf(json + at, sizeof json - (size_t)at, "]}\n");
        snprintf(path, sizeof path, "%s/expected.json", argv[1]);
        write_file(path, json, strlen(json));
    }
    MPI_Finalize();
    return 0;
}
