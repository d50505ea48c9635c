/*
 * test_api_checkpoint.c -- save, load in a fresh engine, continue: bitwise
 * the run that never stopped (fp32, fp16, bf16). Damaged or mismatched
 * checkpoints are refused with the file and the reason, leaving the engine
 * and the host's tensors unchanged; a failed save leaves the previous
 * checkpoint and `latest` intact.
 */
#include "support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char root[256];

static void make_root(void) {
    snprintf(root, sizeof root, "/tmp/dsz_ckpt_test_%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
}

static void cleanup_root(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    (void)system(cmd);
}

static const char *CONFIGS[3] = {
    "{\"train_micro_batch_size_per_gpu\": 1, \"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}, "
    "\"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"total_num_steps\": 20, \"warmup_num_steps\": 4, "
    "\"warmup_max_lr\": 0.01}}}",
    "{\"train_micro_batch_size_per_gpu\": 1, \"gradient_accumulation_steps\": 2, "
    "\"fp16\": {\"enabled\": true, \"loss_scale_window\": 3, \"initial_scale_power\": 10}, "
    "\"zero_optimization\": {\"stage\": 2}, "
    "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}, "
    "\"scheduler\": {\"type\": \"OneCycle\", \"params\": {\"cycle_min_lr\": 0.001, \"cycle_max_lr\": 0.01, "
    "\"cycle_first_step_size\": 5}}}",
    "{\"train_micro_batch_size_per_gpu\": 1, \"bf16\": {\"enabled\": true}, "
    "\"optimizer\": {\"type\": \"Lion\", \"params\": {\"lr\": 0.001}}, "
    "\"scheduler\": {\"type\": \"WarmupCosineLR\", \"params\": {\"total_num_steps\": 20, \"warmup_num_steps\": 3}}}",
};

static DLDataType dtype_of(int i) { return i == 0 ? dt_f32() : i == 1 ? dt_f16() : dt_bf16(); }

static void run(dsz_engine *e, toy_model *m, int from, int to, dsz_step_info *info) {
    for (int k = from; k < to; ++k) toy_micro_step(e, m, k, info);
}

static void test_resume_is_bitwise(void **state) {
    (void)state;
    make_root();
    for (int c = 0; c < 3; ++c) {
        const int total = 24, at = 10; /* micro-steps; GAS divides both */
        dsz_engine *ref = engine_from_json(CONFIGS[c]);
        toy_model mref;
        toy_make(&mref, dtype_of(c));
        toy_register(ref, &mref);
        dsz_step_info iref, ires;
        dsz_step_info_init(&iref, sizeof iref);
        dsz_step_info_init(&ires, sizeof ires);
        run(ref, &mref, 0, total, &iref);

        dsz_engine *a = engine_from_json(CONFIGS[c]);
        toy_model ma;
        toy_make(&ma, dtype_of(c));
        toy_register(a, &ma);
        run(a, &ma, 0, at, &ires);
        assert_ok(dsz_save(a, root, NULL, "{\"epoch\": 3, \"note\": \"hi\"}"));
        dsz_engine_free(a);
        toy_free(&ma);

        dsz_engine *b = engine_from_json(CONFIGS[c]);
        toy_model mb;
        toy_make(&mb, dtype_of(c));
        tt_set(&mb.w, 0, 42.0f); /* different initial values: the checkpoint must win */
        toy_register(b, &mb);
        char *client = NULL;
        assert_ok(dsz_load(b, root, NULL, 0, &client));
        assert_string_equal(client, "{\"epoch\":3,\"note\":\"hi\"}");
        dsz_string_free(client);
        run(b, &mb, at, total, &ires);

        const size_t es = dtype_of(c).bits / 8;
        assert_memory_equal(mref.w.data, mb.w.data, 15 * es);
        assert_memory_equal(mref.b.data, mb.b.data, 7 * es);
        assert_true(iref.lr == ires.lr);
        assert_true(iref.loss_scale == ires.loss_scale);
        assert_int_equal(iref.global_steps, ires.global_steps);
        assert_int_equal(iref.skipped_steps, ires.skipped_steps);
        assert_true(iref.grad_norm == ires.grad_norm);
        dsz_engine_free(ref);
        dsz_engine_free(b);
        toy_free(&mref);
        toy_free(&mb);
    }
    cleanup_root();
}

static char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)*len + 1);
    assert_int_equal(fread(buf, 1, (size_t)*len, f), (size_t)*len);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

static void spit(const char *path, const char *buf, long len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
}

/* An engine at step 3 saved under tag "good"; returns it with its model. */
static dsz_engine *saved_engine(toy_model *m) {
    dsz_engine *e = engine_from_json(CONFIGS[0]);
    toy_make(m, dt_f32());
    toy_register(e, m);
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    run(e, m, 0, 3, &info);
    assert_ok(dsz_save(e, root, "good", NULL));
    return e;
}

static void expect_refused(dsz_engine *e, toy_model *m, const char *tag, dsz_status want, const char *needle) {
    unsigned char before[22 * 4];
    memcpy(before, m->w.data, 60);
    memcpy(before + 60, m->b.data, 28);
    dsz_engine_state s0, s1;
    dsz_engine_state_init(&s0, sizeof s0);
    dsz_engine_state_init(&s1, sizeof s1);
    assert_ok(dsz_get_state(e, &s0));
    char *client = (char *)0x1;
    assert_status(dsz_load(e, root, tag, 0, &client), want, needle);
    assert_null(client);
    assert_memory_equal(before, m->w.data, 60);
    assert_memory_equal(before + 60, m->b.data, 28);
    assert_ok(dsz_get_state(e, &s1));
    assert_int_equal(s0.global_steps, s1.global_steps);
}

static void test_damaged_checkpoints_refused(void **state) {
    (void)state;
    make_root();
    toy_model m;
    dsz_engine *e = saved_engine(&m);
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    run(e, &m, 3, 5, &info); /* move on, so a wrong load would be visible */
    char path[512], mpath[512];
    snprintf(path, sizeof path, "%s/good/rank00000.shard", root);
    snprintf(mpath, sizeof mpath, "%s/good/manifest.json", root);
    long len, mlen;
    char *shard = slurp(path, &len), *manifest = slurp(mpath, &mlen);

    shard[len / 2] ^= 0x40;
    spit(path, shard, len);
    expect_refused(e, &m, "good", DSZ_ERR_CHECKPOINT, "rank00000.shard is corrupt");
    shard[len / 2] ^= 0x40;
    spit(path, shard, len - 8);
    expect_refused(e, &m, "good", DSZ_ERR_CHECKPOINT, "truncated");
    unlink(path);
    expect_refused(e, &m, "good", DSZ_ERR_NOT_FOUND, "rank00000.shard does not exist");
    spit(path, shard, len);

    char *v = strstr(manifest, "\"format_version\"");
    assert_non_null(v);
    char *digit = strchr(v, '1');
    *digit = '7';
    spit(mpath, manifest, mlen);
    expect_refused(e, &m, "good", DSZ_ERR_CHECKPOINT, "format major version 7 is unknown");
    *digit = '1';
    spit(mpath, manifest, mlen - 10);
    expect_refused(e, &m, "good", DSZ_ERR_CHECKPOINT, "not valid JSON");
    spit(mpath, manifest, mlen);

    expect_refused(e, &m, "missing-tag", DSZ_ERR_NOT_FOUND, "manifest.json does not exist");
    /* The intact checkpoint still loads. */
    assert_ok(dsz_load(e, root, "good", 0, NULL));
    free(shard);
    free(manifest);

    /* Parameters that do not match the manifest. */
    dsz_engine *other = engine_from_json(CONFIGS[0]);
    test_tensor w;
    const int64_t shape[2] = {5, 3};
    tt_make(&w, dt_f32(), 2, shape);
    test_tensor b;
    const int64_t bs[1] = {7};
    tt_make(&b, dt_f32(), 1, bs);
    dsz_param p[2] = {{"w", &w.t, 0, 0}, {"b", &b.t, 0, 0}};
    assert_ok(dsz_register_params(other, p, 2, NULL, 0));
    assert_status(dsz_load(other, root, "good", 0, NULL), DSZ_ERR_CHECKPOINT, "'w' has shape [3, 5] in the checkpoint but [5, 3]");
    dsz_engine_free(other);
    tt_free(&w);
    tt_free(&b);
    /* Another optimizer: refused unless only the weights are asked for. */
    dsz_engine *lion = engine_from_json("{\"train_micro_batch_size_per_gpu\": 1, \"optimizer\": {\"type\": \"Lion\"}}");
    toy_model ml;
    toy_make(&ml, dt_f32());
    toy_register(lion, &ml);
    assert_status(dsz_load(lion, root, "good", 0, NULL), DSZ_ERR_CHECKPOINT, "DSZ_LOAD_SKIP_OPTIMIZER_STATES");
    assert_ok(dsz_load(lion, root, "good", DSZ_LOAD_SKIP_OPTIMIZER_STATES, NULL));
    dsz_engine_free(lion);
    toy_free(&ml);

    dsz_engine_free(e);
    toy_free(&m);
    cleanup_root();
}

static void test_latest_tags_and_module_only(void **state) {
    (void)state;
    make_root();
    toy_model m;
    dsz_engine *e = saved_engine(&m);
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    run(e, &m, 3, 5, &info);
    assert_ok(dsz_save(e, root, NULL, NULL)); /* tag global_step5 */
    char path[512];
    snprintf(path, sizeof path, "%s/latest", root);
    long len;
    char *latest = slurp(path, &len);
    assert_string_equal(latest, "global_step5");
    free(latest);
    assert_status(dsz_save(e, root, "../escape", NULL), DSZ_ERR_INVALID_ARGUMENT, "not usable as a directory name");
    assert_status(dsz_save(e, root, "x", "{not json"), DSZ_ERR_INVALID_ARGUMENT, "client_state_json");
    assert_status(dsz_save(e, "/etc/passwd/ckpt", NULL, NULL), DSZ_ERR_IO, "/etc/passwd");

    /* module only: weights of step 3, counters of this engine untouched */
    dsz_engine *f = engine_from_json(CONFIGS[0]);
    toy_model mf;
    toy_make(&mf, dt_f32());
    toy_register(f, &mf);
    assert_ok(dsz_load(f, root, "good", DSZ_LOAD_MODULE_ONLY, NULL));
    dsz_engine_state st;
    dsz_engine_state_init(&st, sizeof st);
    assert_ok(dsz_get_state(f, &st));
    assert_int_equal(st.global_steps, 0);
    assert_ok(dsz_load(f, root, NULL, 0, NULL));
    assert_ok(dsz_get_state(f, &st));
    assert_int_equal(st.global_steps, 5);
    assert_memory_equal(mf.w.data, m.w.data, 60);
    dsz_engine_free(f);
    toy_free(&mf);
    dsz_engine_free(e);
    toy_free(&m);
    cleanup_root();
}

static void test_failed_save_keeps_previous(void **state) {
    (void)state;
    make_root();
    toy_model m;
    dsz_engine *e = saved_engine(&m);
    /* A disk that fills up: a file-size limit makes write() fail with EFBIG. */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, small = {64, 64};
    getrlimit(RLIMIT_FSIZE, &old);
    small.rlim_max = old.rlim_max;
    setrlimit(RLIMIT_FSIZE, &small);
    dsz_status s = dsz_save(e, root, "good", NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    assert_int_equal(s, DSZ_ERR_IO);
    assert_non_null(strstr(dsz_last_error(), "File too large"));
    /* The old "good" and latest are intact, and no temporary files remain. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 2", root);
    assert_int_equal(system(cmd), 0);
    dsz_engine *f = engine_from_json(CONFIGS[0]);
    toy_model mf;
    toy_make(&mf, dt_f32());
    toy_register(f, &mf);
    assert_ok(dsz_load(f, root, NULL, 0, NULL));
    assert_memory_equal(mf.w.data, m.w.data, 60);
    dsz_engine_free(f);
    toy_free(&mf);
    dsz_engine_free(e);
    toy_free(&m);
    cleanup_root();
}

/* Saving over an existing tag replaces it. The replaced checkpoint is deleted
 * on a helper thread; saving again (the same engine or another one of the
 * same process, whose temporary directory has the same name) waits for or
 * steps around it, and once the engines are freed nothing else is left. */
static void test_save_over_same_tag(void **state) {
    (void)state;
    make_root();
    toy_model m, m2;
    dsz_engine *e = saved_engine(&m);   /* "good" at step 3 */
    dsz_engine *e2 = saved_engine(&m2); /* the same again: replaces it */
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    run(e, &m, 3, 5, &info);
    assert_ok(dsz_save(e, root, "good", NULL)); /* step 5 */
    assert_ok(dsz_save(e, root, "good", NULL)); /* at once again, over it */
    run(e2, &m2, 3, 4, &info);
    assert_ok(dsz_save(e2, root, "good", NULL)); /* step 4, the other engine */
    dsz_engine *f = engine_from_json(CONFIGS[0]);
    toy_model mf;
    toy_make(&mf, dt_f32());
    toy_register(f, &mf);
    assert_ok(dsz_load(f, root, "good", 0, NULL));
    dsz_engine_state st;
    dsz_engine_state_init(&st, sizeof st);
    assert_ok(dsz_get_state(f, &st));
    assert_int_equal(st.global_steps, 4);
    assert_memory_equal(mf.w.data, m2.w.data, 60);
    dsz_engine_free(f);
    dsz_engine_free(e);
    dsz_engine_free(e2);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test \"$(ls -A %s | tr '\\n' ' ')\" = 'good latest '", root);
    assert_int_equal(system(cmd), 0);
    toy_free(&mf);
    toy_free(&m);
    toy_free(&m2);
    cleanup_root();
}

/* A checkpoint of format 1.0 (a whole-file CRC per shard, no chunk
 * checksums) still loads, and its checksum is still enforced. */
static void test_format_1_0_still_loads(void **state) {
    (void)state;
    make_root();
    toy_model m;
    dsz_engine *e = saved_engine(&m);
    char mpath[512], spath[512];
    snprintf(mpath, sizeof mpath, "%s/good/manifest.json", root);
    snprintf(spath, sizeof spath, "%s/good/rank00000.shard", root);
    long mlen, slen;
    char *manifest = slurp(mpath, &mlen);
    char *a = strstr(manifest, "\"chunk_bytes\"");
    assert_non_null(a);
    char *b = strchr(strstr(a, "\"chunk_crc32\""), ']');
    b = strchr(b, ',') + 1;
    memmove(a, b, strlen(b) + 1);
    char *v = strstr(manifest, "\"format_version\"");
    char *minor = strchr(strchr(v, '1') + 1, '1');
    *minor = '0';
    spit(mpath, manifest, (long)strlen(manifest));
    assert_null(strstr(manifest, "chunk"));

    dsz_engine *f = engine_from_json(CONFIGS[0]);
    toy_model mf;
    toy_make(&mf, dt_f32());
    toy_register(f, &mf);
    assert_ok(dsz_load(f, root, "good", 0, NULL));
    assert_memory_equal(mf.w.data, m.w.data, 60);
    char *shard = slurp(spath, &slen);
    shard[slen - 3] ^= 1;
    spit(spath, shard, slen);
    assert_status(dsz_load(f, root, "good", 0, NULL), DSZ_ERR_CHECKPOINT, "rank00000.shard is corrupt: its CRC-32");
    free(shard);
    free(manifest);
    dsz_engine_free(f);
    toy_free(&mf);
    dsz_engine_free(e);
    toy_free(&m);
    cleanup_root();
}

/* A directory the process may not write into: the save fails with the path
 * and the reason, leaves nothing behind, and the old checkpoint still loads.
 * As root (CI) permissions do not stop us, so a child process drops to
 * user nobody first. */
static void test_unwritable_directory(void **state) {
    (void)state;
    make_root();
    toy_model m;
    dsz_engine *e = saved_engine(&m);
    dsz_engine_free(e);
    toy_free(&m);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "chmod 0755 %s && ls -A %s > %s.before", root, root, root);
    assert_int_equal(system(cmd), 0);
    fflush(NULL);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0) {
            if (setuid(65534) != 0) _exit(10);
        } else if (chmod(root, 0555) != 0) {
            _exit(11);
        }
        toy_model mc;
        dsz_engine *c = engine_from_json(CONFIGS[0]);
        toy_make(&mc, dt_f32());
        toy_register(c, &mc);
        int bad = 0;
        if (dsz_save(c, root, "other", NULL) != DSZ_ERR_IO || !strstr(dsz_last_error(), "Permission denied") ||
            !strstr(dsz_last_error(), root)) bad |= 1;
        if (dsz_save(c, root, "good", NULL) != DSZ_ERR_IO) bad |= 2; /* replacing is refused the same way */
        if (bad) fprintf(stderr, "unexpected: %s\n", dsz_last_error());
        _exit(bad ? 20 + bad : 0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    snprintf(cmd, sizeof cmd, "chmod 0755 %s && ls -A %s | cmp -s - %s.before && rm %s.before", root, root, root, root);
    assert_int_equal(system(cmd), 0);
    dsz_engine *f = engine_from_json(CONFIGS[0]);
    toy_model mf;
    toy_make(&mf, dt_f32());
    toy_register(f, &mf);
    assert_ok(dsz_load(f, root, NULL, 0, NULL));
    dsz_engine_free(f);
    toy_free(&mf);
    cleanup_root();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_is_bitwise),
        cmocka_unit_test(test_damaged_checkpoints_refused),
        cmocka_unit_test(test_latest_tags_and_module_only),
        cmocka_unit_test(test_failed_save_keeps_previous),
        cmocka_unit_test(test_save_over_same_tag),
        cmocka_unit_test(test_unwritable_directory),
        cmocka_unit_test(test_format_1_0_still_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
