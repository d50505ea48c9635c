/*
 * test_api_nvme_params.c -- NVMe offload of the fp32 master weights (ZeRO
 * stage 3, offload_param.device "nvme"), through the public API.
 *
 * Training with the masters on NVMe, with the optimizer states in memory or
 * on NVMe too, gives bitwise the parameters (read through dsz_gather) of
 * training in memory, for several optimizers, precisions, sub-group and
 * staging-buffer sizes; checkpoints round-trip between swapped and
 * in-memory engines; dsz_memory_stats.master_bytes stays within max_in_cpu;
 * a truncated parameter swap file gives DSZ_ERR_IO naming it, changes
 * nothing, and a dsz_load repairs it. Swap files go with dsz_engine_free.
 */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/dsz_nvme_params_test_%d", (int)getpid());
    run_sh("rm -rf %s; mkdir -p %s", root);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    run_sh("rm -rf %s", root);
    return 0;
}

/* ---- the model (tests/api/support.h vec_model): five tensors, one larger than the staging buffers ---- */

#define NT 5
static const int64_t SIZES[NT] = {1000, 3001, 70000, 17, 20000};

/* ---- configs ---- */

static const char *OPTIMIZERS[4] = {
    "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}",
    "\"optimizer\": {\"type\": \"Adagrad\", \"params\": {\"lr\": 0.05, \"initial_accumulator_value\": 0.1}}",
    "\"optimizer\": {\"type\": \"Lion\", \"params\": {\"lr\": 0.001}}",
    "\"zero_allow_untested_optimizer\": true, \"optimizer\": {\"type\": \"Lamb\", \"params\": {\"lr\": 0.01}}",
};

typedef struct swap_setup {
    int params, states;            /* what goes to NVMe */
    int keep_small;                /* default param_persistence_threshold, else 0 (every gather reads) */
    int64_t buffer_count, buffer_size, max_in_cpu;   /* offload_param; 0: default */
} swap_setup;

static void config(char *out, size_t cap, const char *opt, const char *precision, int64_t sub_group,
                   const swap_setup *sw) {
    char params[512] = "", states[512] = "", extra[256] = "";
    if (sw && sw->params) {
        const int64_t v[3] = {sw->buffer_count, sw->buffer_size, sw->max_in_cpu};
        const char *keys[3] = {"buffer_count", "buffer_size", "max_in_cpu"};
        for (int i = 0; i < 3; ++i)
            if (v[i]) {
                const size_t at = strlen(extra);
                snprintf(extra + at, sizeof extra - at, ", \"%s\": %lld", keys[i], (long long)v[i]);
            }
        snprintf(params, sizeof params, ", \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"%s\"%s}", root,
                 extra);
    }
    if (sw && sw->states)
        snprintf(states, sizeof states,
                 ", \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"%s\", \"buffer_count\": 6, "
                 "\"pipeline_read\": true, \"pipeline_write\": true}",
                 root);
    snprintf(out, cap,
             "{\"train_micro_batch_size_per_gpu\": 1, %s, %s"
             "\"zero_optimization\": {\"stage\": 3, \"sub_group_size\": %lld%s%s%s}}",
             opt, precision, (long long)sub_group, params, states,
             sw && sw->keep_small ? "" : ", \"stage3_param_persistence_threshold\": 0");
}

static void path_of(char *out, size_t cap, const char *rest) {
    snprintf(out, cap, "%s/zero_stage_3/%s", root, rest);
}

/* ---- tests ---- */

static void test_parity_with_memory(void **state) {
    (void)state;
    if (!have_aio()) skip();
    struct { int opt; const char *prec; int64_t sub; swap_setup sw; } cases[] = {
        {0, "", 2000, {1, 0, 1, 0, 0, 0}},                                   /* defaults */
        {0, "\"bf16\": {\"enabled\": true}, ", 2000, {1, 1, 0, 3, 1000, 0}},   /* unaligned staging pieces */
        {1, "", 1, {1, 0, 0, 2, 777, 0}},                                       /* a sub-group per tensor */
        {2, "\"fp16\": {\"enabled\": true, \"initial_scale_power\": 8}, ", 1000000000, {1, 1, 1, 1, 5000, 0}},
        {3, "", 5000, {1, 0, 0, 4, 4096, 0}},                                   /* LAMB: one sub-group */
    };
    char file[512];
    path_of(file, sizeof file, "fp32params/rank0/group0.fp32.swp");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        char ref_json[2048], nvme_json[2048];
        const char *prec = cases[c].prec;
        const DLDataType dt = strstr(prec, "bf16") ? dt_bf16() : strstr(prec, "fp16") ? dt_f16() : dt_f32();
        config(ref_json, sizeof ref_json, OPTIMIZERS[cases[c].opt], cases[c].prec, cases[c].sub, NULL);
        config(nvme_json, sizeof nvme_json, OPTIMIZERS[cases[c].opt], cases[c].prec, cases[c].sub, &cases[c].sw);
        dsz_engine *ref = engine_expecting(ref_json, DSZ_OK, NULL), *nv = engine_expecting(nvme_json, DSZ_OK, NULL);
        vec_model mr, mn;
        vec_model_make(&mr, dt, NT, SIZES);
        vec_model_make(&mn, dt, NT, SIZES);
        assert_ok(vec_model_register(ref, &mr, NT));
        assert_ok(vec_model_register(nv, &mn, NT));
        assert_true(path_exists(file));
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
        char folder[512];
        path_of(folder, sizeof folder, "");
        assert_false(path_exists(folder)); /* removed by dsz_engine_free */
    }
}

static void test_checkpoint_round_trip(void **state) {
    (void)state;
    if (!have_aio()) skip();
    const swap_setup params_only = {1, 0, 0, 2, 3000, 0}, both = {1, 1, 0, 2, 3000, 0};
    char ref_json[2048], p_json[2048], b_json[2048], ckpt[512];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", root);
    config(ref_json, sizeof ref_json, OPTIMIZERS[0], "", 2000, NULL);
    config(p_json, sizeof p_json, OPTIMIZERS[0], "", 2000, &params_only);
    config(b_json, sizeof b_json, OPTIMIZERS[0], "", 2000, &both);
    dsz_engine *ref = engine_expecting(ref_json, DSZ_OK, NULL);
    vec_model mr;
    vec_model_make(&mr, dt_f32(), NT, SIZES);
    assert_ok(vec_model_register(ref, &mr, NT));
    vec_model_train(ref, &mr, NT, 0, 8);
    size_t bytes;
    unsigned char *want = gathered_bytes(ref, NT, &bytes);
    /* Saved from swapped masters (and states), resumed into every kind of engine. */
    for (int saver = 0; saver < 2; ++saver) {
        dsz_engine *a = engine_expecting(saver ? b_json : p_json, DSZ_OK, NULL);
        vec_model ma;
        vec_model_make(&ma, dt_f32(), NT, SIZES);
        assert_ok(vec_model_register(a, &ma, NT));
        vec_model_train(a, &ma, NT, 0, 4);
        assert_ok(dsz_save(a, ckpt, "mid", NULL));
        dsz_engine_free(a);
        vec_model_free(&ma, NT);
        const char *resumers[3] = {ref_json, p_json, b_json};
        for (int r = 0; r < 3; ++r) {
            dsz_engine *b = engine_expecting(resumers[r], DSZ_OK, NULL);
            vec_model mb;
            vec_model_make(&mb, dt_f32(), NT, SIZES);
            tt_set(&mb.t[0], 0, 42.0f);
            assert_ok(vec_model_register(b, &mb, NT));
            vec_model_train(b, &mb, NT, 0, 1); /* masters and states the load must replace */
            assert_ok(dsz_load(b, ckpt, "mid", 0, NULL));
            vec_model_train(b, &mb, NT, 4, 8);
            size_t n;
            unsigned char *got = gathered_bytes(b, NT, &n);
            assert_int_equal(n, bytes);
            if (memcmp(got, want, n) != 0)
                fail_msg("saved by engine %d, resumed by engine %d: parameters differ", saver, r);
            free(got);
            dsz_engine_free(b);
            vec_model_free(&mb, NT);
        }
    }
    free(want);
    dsz_engine_free(ref);
    vec_model_free(&mr, NT);
}

/* 64 tensors of 4096 elements, sub-groups of 16384. */
enum { MANY = 64, EACH = 4096 };

static dsz_status register_many(dsz_engine *e, test_tensor *t) {
    dsz_param p[MANY];
    static char names[MANY][8];
    const int64_t size = EACH;
    for (int k = 0; k < MANY; ++k) {
        tt_make(&t[k], dt_f32(), 1, &size);
        for (size_t i = 0; i < EACH; ++i) tt_set(&t[k], i, test_value((uint32_t)(k * EACH + (int)i)));
        snprintf(names[k], sizeof names[k], "p%d", k);
        p[k] = (dsz_param){names[k], &t[k].t, 0, 0};
    }
    return dsz_register_params(e, p, MANY, NULL, 0);
}

static void test_memory_within_budget(void **state) {
    (void)state;
    if (!have_aio()) skip();
    const swap_setup sw = {1, 0, 0, 2, 4096, 16384};
    char ref_json[2048], nvme_json[2048];
    config(ref_json, sizeof ref_json, OPTIMIZERS[0], "", 16384, NULL);
    config(nvme_json, sizeof nvme_json, OPTIMIZERS[0], "", 16384, &sw);
    int64_t master_bytes[2];
    for (int swapped = 0; swapped < 2; ++swapped) {
        dsz_engine *e = engine_expecting(swapped ? nvme_json : ref_json, DSZ_OK, NULL);
        test_tensor t[MANY];
        assert_ok(register_many(e, t));
        dsz_memory_stats ms;
        assert_ok(dsz_memory_stats_init(&ms, sizeof ms));
        assert_ok(dsz_memory_stats_get(e, &ms));
        master_bytes[swapped] = ms.master_bytes;
        /* A step and a gather of everything keep it there. */
        for (int k = 0; k < MANY; ++k) {
            test_tensor g;
            const int64_t size = EACH;
            tt_make(&g, dt_f32(), 1, &size);
            for (size_t i = 0; i < EACH; ++i) tt_set(&g, i, 0.25f);
            assert_ok(dsz_grad_ready(e, (size_t)k, &g.t));
            tt_free(&g);
        }
        assert_ok(dsz_backward(e));
        assert_ok(dsz_step(e, NULL));
        assert_ok(dsz_memory_stats_get(e, &ms));
        assert_int_equal(ms.master_bytes, master_bytes[swapped]);
        for (int k = 0; k < MANY; ++k) tt_free(&t[k]);
        dsz_engine_free(e);
    }
    assert_int_equal(master_bytes[0], 4 * MANY * EACH);   /* the whole partition */
    assert_int_equal(master_bytes[1], 4 * 16384);         /* max(one sub-group, 2 x 4096): max_in_cpu */
    /* A budget below what the sub-groups need is refused at registration, cleanly. */
    const swap_setup tight = {1, 0, 0, 2, 4096, 16000};
    config(nvme_json, sizeof nvme_json, OPTIMIZERS[0], "", 16384, &tight);
    dsz_engine *e = engine_expecting(nvme_json, DSZ_OK, NULL);
    test_tensor t[MANY];
    assert_status(register_many(e, t), DSZ_ERR_CONFIG, "max_in_cpu");
    char file[512];
    path_of(file, sizeof file, "fp32params/rank0/group0.fp32.swp");
    assert_false(path_exists(file));
    for (int k = 0; k < MANY; ++k) tt_free(&t[k]);
    dsz_engine_free(e);
}

static void test_truncated_swap_file(void **state) {
    (void)state;
    if (!have_aio()) skip();
    const swap_setup sw = {1, 0, 0, 2, 3000, 0};
    char json[2048], file[512], ckpt[512];
    config(json, sizeof json, OPTIMIZERS[0], "", 2000, &sw);
    dsz_engine *e = engine_expecting(json, DSZ_OK, NULL);
    vec_model m;
    vec_model_make(&m, dt_f32(), NT, SIZES);
    assert_ok(vec_model_register(e, &m, NT));
    vec_model_train(e, &m, NT, 0, 2);
    size_t n0, n1;
    unsigned char *before = gathered_bytes(e, NT, &n0);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt_trunc", root);
    assert_ok(dsz_save(e, ckpt, "t", NULL));
    path_of(file, sizeof file, "fp32params/rank0/group0.fp32.swp");
    assert_true(path_exists(file));
    assert_int_equal(truncate(file, 4096), 0);
    /* Gathers, saves and steps all refuse, naming the file. */
    size_t idx = 2;
    DLTensor t;
    assert_status(dsz_gather(e, &idx, 1, &t), DSZ_ERR_IO, file);
    assert_status(dsz_release(e, &idx, 1), DSZ_ERR_STATE, "not gathered");
    char other[512];
    snprintf(other, sizeof other, "%s/ckpt_other", root);
    assert_status(dsz_save(e, other, "t", NULL), DSZ_ERR_IO, file);
    vec_model_micro_batch(e, &m, NT, 2);
    for (int attempt = 0; attempt < 2; ++attempt) assert_status(dsz_step(e, NULL), DSZ_ERR_IO, file);
    /* A load that fails leaves the file damaged (and said so); one that succeeds rewrites it. */
    assert_status(dsz_load(e, ckpt, "no_such_tag", 0, NULL), DSZ_ERR_NOT_FOUND, "no_such_tag");
    assert_status(dsz_gather(e, &idx, 1, &t), DSZ_ERR_IO, file);
    assert_ok(dsz_load(e, ckpt, "t", 0, NULL));
    unsigned char *after = gathered_bytes(e, NT, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(after);
    vec_model_train(e, &m, NT, 2, 3);
    free(before);
    dsz_engine_free(e);
    vec_model_free(&m, NT);
    assert_false(path_exists(file));
}

static void test_config(void **state) {
    (void)state;
    if (!have_aio()) skip();
    char json[2048];
    /* No nvme_path. */
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": 1, %s, \"zero_optimization\": {\"stage\": 3, "
             "\"offload_param\": {\"device\": \"nvme\"}}}",
             OPTIMIZERS[0]);
    assert_null(engine_expecting(json, DSZ_ERR_CONFIG, "offload_param.nvme_path"));
    /* Two engines on one folder. */
    const swap_setup sw = {1, 0, 0, 0, 0, 0};
    config(json, sizeof json, OPTIMIZERS[0], "", 2000, &sw);
    dsz_engine *first = engine_expecting(json, DSZ_OK, NULL);
    assert_null(engine_expecting(json, DSZ_ERR_IO, "in use"));
    dsz_engine_free(first);
    /* Below stage 3 offload_param is ignored, as in DeepSpeed: no folder. */
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": 1, %s, \"zero_optimization\": {\"stage\": 2, "
             "\"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"%s\"}}}",
             OPTIMIZERS[0], root);
    dsz_engine *e = engine_expecting(json, DSZ_OK, NULL);
    char folder[512];
    path_of(folder, sizeof folder, "fp32params");
    assert_false(path_exists(folder));
    dsz_engine_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_with_memory),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_memory_within_budget),
        cmocka_unit_test(test_truncated_swap_file),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
