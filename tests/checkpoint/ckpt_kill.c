/*
 * ckpt_kill.c -- kill -9 a process that is saving checkpoints, many times:
 * the previous checkpoint and `latest` always survive and load.
 *
 *   ckpt_kill DIR KILLS BUDGET_S [MPIEXEC NP]
 *       the driver: KILLS times, starts a saver (directly, or as an mpirun
 *       job of NP ranks) in a session of its own, lets it run for a random
 *       time, SIGKILLs every process of that session, and checks DIR: `latest` loads
 *       (once it has existed), every visible checkpoint directory loads and
 *       verifies, its client state names the step it was saved at, and the
 *       step at `latest` never goes backwards. Stops early after BUDGET_S
 *       seconds; fails when fewer than half the kills happened by then.
 *   ckpt_kill --saver DIR
 *       resumes from DIR/latest when there is one, then trains one step and
 *       saves, tags t0, t1, t2 in turn (each save replaces an older
 *       checkpoint), forever.
 * The checker loads at one rank, so checkpoints of an mpirun saver are
 * resharded on the way.
 */
#define _GNU_SOURCE
#include <dszero.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { N = 1 << 20 }; /* 4 MiB of weights: a 12 MiB shard with Adam */

static const char *CONFIG =
    "{\"train_micro_batch_size_per_gpu\": 1, \"zero_optimization\": {\"stage\": 1}, "
    "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.001}}}";

static void quiet(int32_t l, const char *m, void *u) { (void)l; (void)m; (void)u; }

static dsz_engine *make_engine(float *w) {
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    o.log_fn = quiet;
    o.cpu_threads = 1;
    dsz_engine *e = NULL;
    if (dsz_init(&e, CONFIG, &o) != DSZ_OK) return NULL;
    static int64_t shape[1] = {N};
    static DLTensor t;
    memset(&t, 0, sizeof t);
    t.data = w;
    t.device.device_type = kDLCPU;
    t.ndim = 1;
    t.dtype.code = kDLFloat;
    t.dtype.bits = 32;
    t.dtype.lanes = 1;
    t.shape = shape;
    dsz_param p = {"w", &t, 0, 0};
    if (dsz_register_params(e, &p, 1, NULL, 0) != DSZ_OK) return NULL;
    return e;
}

static int saver(const char *dir) {
    float *w = calloc(N, sizeof(float)), *g = malloc(N * sizeof(float));
    dsz_engine *e = make_engine(w);
    if (!e) {
        fprintf(stderr, "saver: %s\n", dsz_last_error());
        return 1;
    }
    char latest[512];
    snprintf(latest, sizeof latest, "%s/latest", dir);
    if (access(latest, F_OK) == 0 && dsz_load(e, dir, NULL, 0, NULL) != DSZ_OK) {
        fprintf(stderr, "saver: cannot resume: %s\n", dsz_last_error());
        return 1;
    }
    int64_t shape[1] = {N};
    DLTensor gt;
    memset(&gt, 0, sizeof gt);
    gt.data = g;
    gt.device.device_type = kDLCPU;
    gt.ndim = 1;
    gt.dtype.code = kDLFloat;
    gt.dtype.bits = 32;
    gt.dtype.lanes = 1;
    gt.shape = shape;
    for (;;) {
        dsz_engine_state st;
        dsz_engine_state_init(&st, sizeof st);
        dsz_get_state(e, &st);
        for (int i = 0; i < N; ++i) g[i] = (float)((st.global_steps * 31 + i) % 17) - 8.0f;
        if (dsz_grad_ready(e, 0, &gt) != DSZ_OK || dsz_backward(e) != DSZ_OK || dsz_step(e, NULL) != DSZ_OK) {
            fprintf(stderr, "saver: %s\n", dsz_last_error());
            return 1;
        }
        char tag[8], client[64];
        snprintf(tag, sizeof tag, "t%d", (int)((st.global_steps + 1) % 3));
        snprintf(client, sizeof client, "{\"step\": %lld}", (long long)st.global_steps + 1);
        if (dsz_save(e, dir, tag, client) != DSZ_OK) {
            fprintf(stderr, "saver: %s\n", dsz_last_error());
            return 1;
        }
    }
}

/* Loads dir/tag (NULL: latest) at one rank; returns its step, or -1 (printing why). */
static long long check_one(dsz_engine *e, const char *dir, const char *tag) {
    char *client = NULL;
    if (dsz_load(e, dir, tag, 0, &client) != DSZ_OK) {
        fprintf(stderr, "FAIL: %s/%s does not load: %s\n", dir, tag ? tag : "latest", dsz_last_error());
        return -1;
    }
    dsz_engine_state st;
    dsz_engine_state_init(&st, sizeof st);
    dsz_get_state(e, &st);
    long long step = -2;
    if (!client || sscanf(client, "{\"step\":%lld}", &step) != 1 || step != st.global_steps) {
        fprintf(stderr, "FAIL: %s/%s: client state %s, global step %lld\n", dir, tag ? tag : "latest",
                client ? client : "(none)", (long long)st.global_steps);
        step = -1;
    }
    dsz_string_free(client);
    return step;
}

static void remove_tree(const char *path) {
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: cannot remove %s\n", path);
}

/* SIGKILLs every process of session `sid` (Open MPI puts each rank in its
 * own process group, so killing mpirun's group would leave ranks running);
 * returns how many were still alive. */
static int kill_session(pid_t sid) {
    int alive = 0;
    DIR *d = opendir("/proc");
    struct dirent *ent;
    while (d && (ent = readdir(d)) != NULL) {
        const pid_t pid = (pid_t)atoi(ent->d_name);
        if (pid <= 0) continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        const size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')'); /* after the command name: state ppid pgrp session */
        char state;
        int ppid, pgrp, session;
        if (p && sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) == 4 && session == sid &&
            state != 'Z') {
            kill(pid, SIGKILL);
            ++alive;
        }
    }
    if (d) closedir(d);
    return alive;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--saver") == 0) return saver(argv[2]);
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: ckpt_kill DIR KILLS BUDGET_S [MPIEXEC NP] | ckpt_kill --saver DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    const int kills = atoi(argv[2]);
    const double budget = atof(argv[3]);
    const char *mpiexec = argc == 6 ? argv[4] : NULL, *np = argc == 6 ? argv[5] : NULL;
    remove_tree(dir);
    if (mkdir(dir, 0755) != 0) {
        perror(dir);
        return 1;
    }
    float *w = calloc(N, sizeof(float));
    dsz_engine *checker = make_engine(w);
    if (!checker) {
        fprintf(stderr, "checker: %s\n", dsz_last_error());
        return 1;
    }
    srand((unsigned)getpid());
    const double t0 = now_s();
    int done = 0, failures = 0, had_latest = 0, checkpoints_seen = 0;
    long long last_step = 0;
    char self[1024];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return 1;
    self[len] = 0;
    while (done < kills && now_s() - t0 < budget) {
        const pid_t pid = fork();
        if (pid == 0) {
            setsid(); /* the saver and everything it starts: one session, killed together */
            if (mpiexec)
                execl(mpiexec, mpiexec, "-np", np, "--bind-to", "none", self, "--saver", dir, (char *)NULL);
            else
                execl(self, self, "--saver", dir, (char *)NULL);
            _exit(127);
        }
        /* Long enough to start, resume and get into a few saves; random within that. */
        const int ms = (mpiexec ? 600 : 30) + rand() % (mpiexec ? 900 : 250);
        usleep((useconds_t)ms * 1000);
        /* The saver itself first: on a busy machine it may not have made its session yet. */
        kill(pid, SIGKILL);
        kill_session(pid);
        int status = 0, reaped = 0;
        for (int tries = 0; tries < 1000 && !reaped; ++tries) { /* bounded: a stuck saver fails, never hangs */
            reaped = waitpid(pid, &status, WNOHANG) == pid;
            if (!reaped) usleep(10 * 1000);
        }
        if (!reaped) {
            fprintf(stderr, "FAIL: the saver (pid %d) did not die within 10 s of SIGKILL\n", (int)pid);
            return 1;
        }
        for (int tries = 0; kill_session(pid) > 0 && tries < 100; ++tries) usleep(10 * 1000);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
            fprintf(stderr, "FAIL: the saver ended by itself (status %d) before it was killed\n", status);
            return 1;
        }
        ++done;
        /* latest, then every visible checkpoint directory */
        char latest[512];
        snprintf(latest, sizeof latest, "%s/latest", dir);
        if (access(latest, F_OK) == 0) {
            had_latest = 1;
            const long long step = check_one(checker, dir, NULL);
            if (step < 0) ++failures;
            else if (step < last_step) {
                fprintf(stderr, "FAIL: latest went back from step %lld to %lld\n", last_step, step);
                ++failures;
            } else {
                last_step = step;
            }
        } else if (had_latest) {
            fprintf(stderr, "FAIL: %s disappeared\n", latest);
            ++failures;
        }
        DIR *d = opendir(dir);
        struct dirent *ent;
        while (d && (ent = readdir(d)) != NULL) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
            struct stat st;
            if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode) || strcmp(ent->d_name, ".") == 0 ||
                strcmp(ent->d_name, "..") == 0)
                continue;
            if (ent->d_name[0] == '.') { /* a killed save's temporary directory: never read */
                remove_tree(path);
                continue;
            }
            ++checkpoints_seen;
            if (check_one(checker, dir, ent->d_name) < 0) ++failures;
        }
        if (d) closedir(d);
    }
    dsz_engine_free(checker);
    free(w);
    remove_tree(dir);
    printf("ckpt_kill: %d kills in %.1f s (%s), %d checkpoint loads checked, latest reached step %lld, %d failures\n",
           done, now_s() - t0, mpiexec ? "mpirun jobs" : "single process", checkpoints_seen, last_step, failures);
    if (failures) return 1;
    if (done < kills / 2 || last_step == 0) {
        fprintf(stderr, "FAIL: only %d of %d kills (or no checkpoint at all) within %.0f s\n", done, kills, budget);
        return 1;
    }
    return 0;
}
