/*
 * test_api_nvme.c -- NVMe offload of optimizer states (ZeRO stage 3,
 * offload_optimizer.device "nvme"), through the public API.
 *
 * Training with the states on NVMe gives bitwise the parameters of training
 * in memory, for several optimizers, sub-group sizes, buffer counts and
 * pipeline settings; checkpoints written from swapped states resume exactly
 * (into swapped or in-memory engines). Host memory for the states stays
 * within the configured buffers. A missing, non-directory or unwritable
 * nvme_path, a full disk, a file-size limit and a truncated swap file give
 * DSZ_ERR_IO naming the path, with the engine unchanged. Swap files are
 * removed by dsz_engine_free. Builds without libaio refuse NVMe configs.
 */
#include "support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/dsz_nvme_test_%d", (int)getpid());
    run_sh("rm -rf %s; mkdir -p %s", root);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    run_sh("rm -rf %s", root);
    return 0;
}

/* ---- the model (tests/api/support.h vec_model): five tensors, one spans several 64K-element spans ---- */

#define NT 5
static const int64_t SIZES[NT] = {1000, 3001, 70000, 17, 20000};

/* ---- configs ---- */

static const char *OPTIMIZERS[3] = {
    "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}",
    "\"optimizer\": {\"type\": \"Adagrad\", \"params\": {\"lr\": 0.05, \"initial_accumulator_value\": 0.1}}",
    "\"optimizer\": {\"type\": \"Lion\", \"params\": {\"lr\": 0.001}}",
};

/* offload: "" (in memory) or an offload_optimizer body. */
static void config(char *out, size_t cap, const char *opt, const char *precision, int64_t sub_group,
                   const char *offload, const char *extra) {
    snprintf(out, cap,
             "{\"train_micro_batch_size_per_gpu\": 1, %s, %s"
             "\"zero_optimization\": {\"stage\": 3, \"sub_group_size\": %lld%s%s%s}%s}",
             opt, precision, (long long)sub_group, offload[0] ? ", \"offload_optimizer\": {" : "", offload,
             offload[0] ? "}" : "", extra);
}

static void nvme_offload(char *out, size_t cap, int buffers, int pread, int pwrite) {
    snprintf(out, cap,
             "\"device\": \"nvme\", \"nvme_path\": \"%s\", \"buffer_count\": %d, \"pipeline_read\": %s, "
             "\"pipeline_write\": %s",
             root, buffers, pread ? "true" : "false", pwrite ? "true" : "false");
}

/* ---- tests ---- */

static void test_parity_with_memory(void **state) {
    (void)state;
    if (!have_aio()) skip();
    struct { int opt; const char *prec; int64_t sub; int buffers, pread, pwrite; const char *extra; } cases[] = {
        {0, "", 2000, 6, 1, 1, ""},
        {0, "\"bf16\": {\"enabled\": true}, ", 2000, 2, 0, 0, ""},
        {0, "", 1000000000, 4, 1, 0, ""},                               /* one sub-group */
        {1, "", 1, 4, 0, 1, ", \"aio\": {\"block_size\": 65536, \"queue_depth\": 2, \"thread_count\": 2}"},
        {2, "\"fp16\": {\"enabled\": true, \"initial_scale_power\": 8}, ", 5000, 3, 1, 1,
         ", \"aio\": {\"single_submit\": true, \"overlap_events\": false, \"intra_op_parallelism\": 3}"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        char ref_json[2048], nvme_json[2048], off[512];
        const DLDataType dt = strstr(cases[c].prec, "bf16") ? dt_bf16() : strstr(cases[c].prec, "fp16") ? dt_f16() : dt_f32();
        config(ref_json, sizeof ref_json, OPTIMIZERS[cases[c].opt], cases[c].prec, cases[c].sub, "", cases[c].extra);
        nvme_offload(off, sizeof off, cases[c].buffers, cases[c].pread, cases[c].pwrite);
        config(nvme_json, sizeof nvme_json, OPTIMIZERS[cases[c].opt], cases[c].prec, cases[c].sub, off, cases[c].extra);
        dsz_engine *ref = engine_expecting(ref_json, DSZ_OK, NULL), *nv = engine_expecting(nvme_json, DSZ_OK, NULL);
        vec_model mr, mn;
        vec_model_make(&mr, dt, NT, SIZES);
        vec_model_make(&mn, dt, NT, SIZES);
        assert_ok(vec_model_register(ref, &mr, NT));
        assert_ok(vec_model_register(nv, &mn, NT));
        vec_model_train(ref, &mr, NT, 0, 6);
        vec_model_train(nv, &mn, NT, 0, 6);
        size_t br, bn;
        unsigned char *a = gathered_bytes(ref, NT, &br), *b = gathered_bytes(nv, NT, &bn);
        assert_int_equal(br, bn);
        if (memcmp(a, b, br) != 0) fail_msg("case %zu: parameters differ from training in memory", c);
        free(a);
        free(b);
        dsz_engine_free(ref);
        dsz_engine_free(nv);
        vec_model_free(&mr, NT);
        vec_model_free(&mn, NT);
    }
    char folder[512];
    snprintf(folder, sizeof folder, "%s/zero_stage_3", root);
    assert_false(path_exists(folder)); /* removed by dsz_engine_free */
}

static void test_checkpoint_round_trip(void **state) {
    (void)state;
    if (!have_aio()) skip();
    char ref_json[2048], nvme_json[2048], off[512], ckpt[512];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", root);
    config(ref_json, sizeof ref_json, OPTIMIZERS[0], "", 2000, "", "");
    nvme_offload(off, sizeof off, 4, 1, 1);
    config(nvme_json, sizeof nvme_json, OPTIMIZERS[0], "", 2000, off, "");
    /* The run that never stops, in memory. */
    dsz_engine *ref = engine_expecting(ref_json, DSZ_OK, NULL);
    vec_model mr;
    vec_model_make(&mr, dt_f32(), NT, SIZES);
    assert_ok(vec_model_register(ref, &mr, NT));
    vec_model_train(ref, &mr, NT, 0, 8);
    size_t bytes;
    unsigned char *want = gathered_bytes(ref, NT, &bytes);
    /* Swapped: 4 steps, save, free. */
    dsz_engine *a = engine_expecting(nvme_json, DSZ_OK, NULL);
    vec_model ma;
    vec_model_make(&ma, dt_f32(), NT, SIZES);
    assert_ok(vec_model_register(a, &ma, NT));
    vec_model_train(a, &ma, NT, 0, 4);
    assert_ok(dsz_save(a, ckpt, "mid", NULL));
    dsz_engine_free(a);
    /* Resume swapped, and resume in memory: both finish as the reference. */
    for (int swapped = 1; swapped >= 0; --swapped) {
        dsz_engine *b = engine_expecting(swapped ? nvme_json : ref_json, DSZ_OK, NULL);
        vec_model mb;
        vec_model_make(&mb, dt_f32(), NT, SIZES);
        tt_set(&mb.t[0], 0, 42.0f);
        assert_ok(vec_model_register(b, &mb, NT));
        vec_model_train(b, &mb, NT, 0, 1); /* states that the load must replace */
        assert_ok(dsz_load(b, ckpt, "mid", 0, NULL));
        vec_model_train(b, &mb, NT, 4, 8);
        size_t n;
        unsigned char *got = gathered_bytes(b, NT, &n);
        assert_int_equal(n, bytes);
        if (memcmp(got, want, n) != 0) fail_msg("resumed %s: parameters differ", swapped ? "swapped" : "in memory");
        /* A checkpoint of swapped states equals one of in-memory states. */
        free(got);
        dsz_engine_free(b);
        vec_model_free(&mb, NT);
    }
    free(want);
    dsz_engine_free(ref);
    vec_model_free(&mr, NT);
    vec_model_free(&ma, NT);
}

static void test_memory_within_buffers(void **state) {
    (void)state;
    if (!have_aio()) skip();
    /* 64 tensors of 4096 elements, sub-groups of 16384: 16 sub-groups. */
    enum { N = 64 };
    int64_t sizes[N];
    for (int k = 0; k < N; ++k) sizes[k] = 4096;
    char ref_json[2048], nvme_json[2048], off[512];
    config(ref_json, sizeof ref_json, OPTIMIZERS[0], "", 16384, "", "");
    nvme_offload(off, sizeof off, 4, 1, 1);
    config(nvme_json, sizeof nvme_json, OPTIMIZERS[0], "", 16384, off, "");
    int64_t optimizer_bytes[2];
    for (int swapped = 0; swapped < 2; ++swapped) {
        dsz_engine *e = engine_expecting(swapped ? nvme_json : ref_json, DSZ_OK, NULL);
        test_tensor t[N];
        dsz_param p[N];
        char names[N][8];
        for (int k = 0; k < N; ++k) {
            tt_make(&t[k], dt_f32(), 1, &sizes[k]);
            snprintf(names[k], sizeof names[k], "p%d", k);
            p[k] = (dsz_param){names[k], &t[k].t, 0, 0};
        }
        assert_ok(dsz_register_params(e, p, N, NULL, 0));
        dsz_memory_stats ms;
        assert_ok(dsz_memory_stats_init(&ms, sizeof ms));
        assert_ok(dsz_memory_stats_get(e, &ms));
        optimizer_bytes[swapped] = ms.optimizer_bytes;
        for (int k = 0; k < N; ++k) tt_free(&t[k]);
        dsz_engine_free(e);
    }
    assert_int_equal(optimizer_bytes[0], 2 * 4 * N * 4096);          /* Adam: two fp32 states */
    assert_int_equal(optimizer_bytes[1], 4 * 16384 * 4);             /* buffer_count 4 x one sub-group */
}

static void test_bad_paths(void **state) {
    (void)state;
    if (!have_aio()) skip();
    char json[2048], off[1024], path[512];
    /* Not configured. */
    config(json, sizeof json, OPTIMIZERS[0], "", 2000, "\"device\": \"nvme\"", "");
    assert_null(engine_expecting(json, DSZ_ERR_CONFIG, "offload_optimizer.nvme_path"));
    /* Missing: not created (a typo must not fill the root disk). */
    snprintf(path, sizeof path, "%s/no/such/dir", root);
    snprintf(off, sizeof off, "\"device\": \"nvme\", \"nvme_path\": \"%s\"", path);
    config(json, sizeof json, OPTIMIZERS[0], "", 2000, off, "");
    assert_null(engine_expecting(json, DSZ_ERR_IO, path));
    assert_false(path_exists(path));
    /* A file. */
    snprintf(path, sizeof path, "%s/a_file", root);
    run_sh("touch %s", path);
    snprintf(off, sizeof off, "\"device\": \"nvme\", \"nvme_path\": \"%s\"", path);
    config(json, sizeof json, OPTIMIZERS[0], "", 2000, off, "");
    assert_null(engine_expecting(json, DSZ_ERR_IO, "not a directory"));
    /* Unwritable: a read-only mount where this process may mount, else a 0555 folder (root ignores modes). */
    snprintf(path, sizeof path, "%s/readonly", root);
    run_sh("mkdir -p %s", path);
    int mounted = mount("none", path, "tmpfs", MS_RDONLY, "size=64k") == 0;
    if (!mounted) chmod(path, 0555);
    if (mounted || geteuid() != 0) {
        snprintf(off, sizeof off, "\"device\": \"nvme\", \"nvme_path\": \"%s\"", path);
        config(json, sizeof json, OPTIMIZERS[0], "", 2000, off, "");
        assert_null(engine_expecting(json, DSZ_ERR_IO, path));
    }
    if (mounted) umount(path);
    /* Two engines on one folder: the second is refused. */
    nvme_offload(off, sizeof off, 4, 0, 0);
    config(json, sizeof json, OPTIMIZERS[0], "", 2000, off, "");
    dsz_engine *first = engine_expecting(json, DSZ_OK, NULL);
    assert_null(engine_expecting(json, DSZ_ERR_IO, "in use"));
    dsz_engine_free(first);
    /* offload_param nvme on the same path: its own folder (fp32params), so
     * it loads (test_api_nvme_params.c tests parameter swapping). */
    snprintf(off, sizeof off, "\"device\": \"nvme\", \"nvme_path\": \"%s\"", root);
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": 1, %s, \"zero_optimization\": {\"stage\": 3, "
             "\"offload_param\": {%s}}}",
             OPTIMIZERS[0], off);
    dsz_engine *params_nvme = engine_expecting(json, DSZ_OK, NULL);
    assert_non_null(params_nvme);
    dsz_engine_free(params_nvme);
}

/* Registration reserves the swap files' space: a full disk fails it, cleanly. */
static void expect_full(const char *nvme_path, const char *needle) {
    char json[2048], off[1024];
    snprintf(off, sizeof off, "\"device\": \"nvme\", \"nvme_path\": \"%s\"", nvme_path);
    config(json, sizeof json, OPTIMIZERS[0], "", 2000, off, "");
    dsz_engine *e = engine_expecting(json, DSZ_OK, NULL);
    vec_model m;
    vec_model_make(&m, dt_f32(), NT, SIZES);
    assert_status(vec_model_register(e, &m, NT), DSZ_ERR_IO, needle);
    /* Nothing registered: the engine says so instead of training half-set-up. */
    assert_status(dsz_backward(e), DSZ_ERR_STATE, "register");
    dsz_engine_free(e);
    vec_model_free(&m, NT);
    char folder[512];
    snprintf(folder, sizeof folder, "%s/zero_stage_3", nvme_path);
    assert_false(path_exists(folder));
}

static void test_full_disk(void **state) {
    (void)state;
    if (!have_aio()) skip();
    /* A file-size limit below the swap files' size (SIGXFSZ ignored). */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 64 << 10;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    expect_full(root, "file-size limit");
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    /* A small filesystem, where this process may mount one. */
    char path[512];
    snprintf(path, sizeof path, "%s/small", root);
    run_sh("mkdir -p %s", path);
    if (mount("none", path, "tmpfs", 0, "size=256k") != 0) return;
    expect_full(path, "disk is full");
    umount(path);
}

static void test_truncated_swap_file(void **state) {
    (void)state;
    if (!have_aio()) skip();
    char json[2048], off[512], file[512];
    nvme_offload(off, sizeof off, 4, 1, 1);
    config(json, sizeof json, OPTIMIZERS[0], "", 2000, off, "");
    dsz_engine *e = engine_expecting(json, DSZ_OK, NULL);
    vec_model m;
    vec_model_make(&m, dt_f32(), NT, SIZES);
    assert_ok(vec_model_register(e, &m, NT));
    vec_model_train(e, &m, NT, 0, 2);
    size_t n0, n1;
    unsigned char *before = gathered_bytes(e, NT, &n0);
    snprintf(file, sizeof file, "%s/zero_stage_3/optimizer/rank0/group0.exp_avg_sq.swp", root);
    assert_true(path_exists(file));
    char ckpt[512];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt_trunc", root);
    assert_ok(dsz_save(e, ckpt, "t", NULL));
    assert_int_equal(truncate(file, 4096), 0);
    double mul;
    assert_ok(dsz_loss_scale(e, &mul));
    for (int k = 0; k < NT; ++k) {
        test_tensor g;
        tt_make(&g, dt_f32(), 1, &SIZES[k]);
        for (size_t i = 0; i < tt_numel(&g); ++i) tt_set(&g, i, 0.5f);
        assert_ok(dsz_grad_ready(e, (size_t)k, &g.t));
        tt_free(&g);
    }
    assert_ok(dsz_backward(e));
    /* Checked before anything changes: the step fails, and fails again, with nothing changed. */
    for (int attempt = 0; attempt < 2; ++attempt) {
        assert_status(dsz_step(e, NULL), DSZ_ERR_IO, file);
        unsigned char *after = gathered_bytes(e, NT, &n1);
        assert_int_equal(n0, n1);
        assert_memory_equal(before, after, n0);
        free(after);
    }
    /* Loading a checkpoint rewrites the swap files: training goes on. */
    assert_ok(dsz_load(e, ckpt, "t", 0, NULL));
    vec_model_train(e, &m, NT, 2, 3);
    free(before);
    dsz_engine_free(e);
    vec_model_free(&m, NT);
    assert_false(path_exists(file));
}

static void test_refused_without_libaio(void **state) {
    (void)state;
    if (have_aio()) skip();
    char json[2048], off[512];
    nvme_offload(off, sizeof off, 4, 0, 0);
    config(json, sizeof json, OPTIMIZERS[0], "", 2000, off, "");
    assert_null(engine_expecting(json, DSZ_ERR_UNSUPPORTED, "libaio"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_with_memory),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_memory_within_buffers),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_truncated_swap_file),
        cmocka_unit_test(test_refused_without_libaio),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
