/*
 * ckpt_resume.c -- resume in a fresh process is bit for bit the run that
 * never stopped, for every ZeRO stage, in fp32, fp16 and bf16.
 *
 *   ckpt_resume save DIR     trains 7 steps per case and saves DIR/<case>
 *   ckpt_resume resume DIR   loads each case in this new process, trains to
 *                            step 16, and compares with the uninterrupted
 *                            run (computed here) bit for bit: parameters,
 *                            step counters, learning rate, loss scale.
 * run_resume.sh runs the two as separate mpirun jobs (or processes).
 */
#include "ckpt_common.h"

#include <unistd.h>

enum { SAVE_AT = 7, TOTAL = 16 };


static void case_dir(char *buf, size_t n, const char *dir, int stage, int bits, int bf) {
    snprintf(buf, n, "%s/stage%d_%s", dir, stage, bits == 32 ? "fp32" : bf ? "bf16" : "fp16");
}

static void one_case(const char *mode, const char *dir, int stage, int bits, int bf) {
    char cdir[512];
    case_dir(cdir, sizeof cdir, dir, stage, bits, bf);
    model m;
    model_make(&m, bits, bf, 1);
    dsz_engine *e = engine_on(NULL, stage, &m, NULL, NULL);
    if (strcmp(mode, "save") == 0) {
        for (int s = 0; s < SAVE_AT; ++s) feed(e, &m, s, g_rank, g_world);
        OK(dsz_save(e, cdir, NULL, NULL));
        OK(dsz_engine_free(e));
        model_free(&m);
        return;
    }
    /* The uninterrupted run. */
    for (int s = 0; s < TOTAL; ++s) feed(e, &m, s, g_rank, g_world);
    unsigned char *want = params_copy(e, &m);
    dsz_engine_state ws, gs;
    dsz_engine_state_init(&ws, sizeof ws);
    dsz_engine_state_init(&gs, sizeof gs);
    OK(dsz_get_state(e, &ws));
    double wlr, glr, wscale, gscale;
    OK(dsz_get_lr(e, 0, &wlr));
    OK(dsz_loss_scale(e, &wscale));
    OK(dsz_engine_free(e));
    model_free(&m);

    model_make(&m, bits, bf, 2);
    e = engine_on(NULL, stage, &m, NULL, NULL);
    OK(dsz_load(e, cdir, NULL, 0, NULL));
    for (int s = SAVE_AT; s < TOTAL; ++s) feed(e, &m, s, g_rank, g_world);
    unsigned char *got = params_copy(e, &m);
    OK(dsz_get_state(e, &gs));
    OK(dsz_get_lr(e, 0, &glr));
    OK(dsz_loss_scale(e, &gscale));
    const char *dt = bits == 32 ? "fp32" : bf ? "bf16" : "fp16";
    CHECK(memcmp(want, got, model_bytes(&m)) == 0, "stage %d %s: resumed parameters differ", stage, dt);
    CHECK(ws.global_steps == gs.global_steps && ws.micro_steps == gs.micro_steps &&
              ws.skipped_steps == gs.skipped_steps && ws.global_samples == gs.global_samples,
          "stage %d %s: counters differ", stage, dt);
    CHECK(wlr == glr && wscale == gscale, "stage %d %s: lr %g/%g, loss scale %g/%g", stage, dt, wlr, glr, wscale, gscale);
    if (bits == 16 && !bf) CHECK(gs.skipped_steps > 0, "the fp16 case should see overflow skips");
    free(want);
    free(got);
    OK(dsz_engine_free(e));
    model_free(&m);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    if (argc != 3 || (strcmp(argv[1], "save") != 0 && strcmp(argv[1], "resume") != 0)) {
        if (g_rank == 0) fprintf(stderr, "usage: ckpt_resume save|resume DIR\n");
        MPI_Finalize();
        return 2;
    }
    static const int kinds[3][2] = {{32, 0}, {16, 0}, {16, 1}};
    for (int stage = 0; stage <= 3; ++stage)
        for (int k = 0; k < 3; ++k) one_case(argv[1], argv[2], stage, kinds[k][0], kinds[k][1]);
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0)
        printf("ckpt_resume %s: %d rank(s), stages 0-3, fp32/fp16/bf16%s\n", argv[1], g_world,
               strcmp(argv[1], "resume") == 0 ? ": bit for bit" : "");
    MPI_Finalize();
    return 0;
}
