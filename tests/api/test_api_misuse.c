/*
 * test_api_misuse.c -- the C API refuses misuse with a status and a message
 * that names the culprit, and never crashes: NULL and dead handles, wrong
 * dtypes and shapes, calls out of order, double frees, bad struct sizes.
 */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ADAM = "{\"train_micro_batch_size_per_gpu\": 2, \"optimizer\": {\"type\": \"AdamW\"}}";
static const char *ADAM_FP16 =
    "{\"train_micro_batch_size_per_gpu\": 2, \"fp16\": {\"enabled\": true}, \"optimizer\": {\"type\": \"AdamW\"}}";

static void test_version_and_status(void **state) {
    (void)state;
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", DSZ_VERSION_MAJOR, DSZ_VERSION_MINOR, DSZ_VERSION_PATCH);
    assert_string_equal(dsz_version(), want);
    assert_int_equal(dsz_version_number(), DSZ_VERSION_NUMBER);
    assert_string_equal(dsz_status_string(DSZ_OK), "success");
    assert_string_equal(dsz_status_string(DSZ_ERR_CONFIG), "invalid configuration");
    assert_string_equal(dsz_status_string(12345), "unknown status");
    for (int s = 0; s <= DSZ_ERR_CUDA; ++s) assert_non_null(dsz_status_string(s));
    assert_non_null(dsz_last_error());
    assert_true(dsz_features() & DSZ_FEATURE_AVX2);
}

static void test_null_handles(void **state) {
    (void)state;
    double d;
    size_t idx;
    dsz_step_info info;
    dsz_engine_state st;
    assert_ok(dsz_step_info_init(&info, sizeof info));
    assert_ok(dsz_engine_state_init(&st, sizeof st));
    assert_status(dsz_loss_scale(NULL, &d), DSZ_ERR_INVALID_ARGUMENT, "engine handle is NULL");
    assert_status(dsz_grad_ready(NULL, 0, NULL), DSZ_ERR_INVALID_ARGUMENT, "dsz_grad_ready: engine handle is NULL");
    assert_status(dsz_backward(NULL), DSZ_ERR_INVALID_ARGUMENT, "NULL");
    assert_status(dsz_step(NULL, &info), DSZ_ERR_INVALID_ARGUMENT, "NULL");
    assert_status(dsz_get_state(NULL, &st), DSZ_ERR_INVALID_ARGUMENT, "NULL");
    assert_status(dsz_get_lr(NULL, 0, &d), DSZ_ERR_INVALID_ARGUMENT, "NULL");
    assert_status(dsz_param_index(NULL, "w", &idx), DSZ_ERR_INVALID_ARGUMENT, "NULL");
    assert_status(dsz_register_params(NULL, NULL, 0, NULL, 0), DSZ_ERR_INVALID_ARGUMENT, "NULL");
    assert_status(dsz_save(NULL, "/tmp/x", NULL, NULL), DSZ_ERR_INVALID_ARGUMENT, "NULL");
    assert_status(dsz_load(NULL, "/tmp/x", NULL, 0, NULL), DSZ_ERR_INVALID_ARGUMENT, "NULL");
    assert_ok(dsz_engine_free(NULL));
    assert_status(dsz_init(NULL, ADAM, NULL), DSZ_ERR_INVALID_ARGUMENT, "out is NULL");
    dsz_engine *e = (dsz_engine *)0x1;
    assert_status(dsz_init(&e, NULL, NULL), DSZ_ERR_INVALID_ARGUMENT, "config is NULL");
    assert_null(e);
    assert_status(dsz_init_options_init(NULL, sizeof(dsz_init_options)), DSZ_ERR_INVALID_ARGUMENT, "opts is NULL");
    dsz_string_free(NULL);
}

static void test_dead_and_foreign_handles(void **state) {
    (void)state;
    dsz_engine *e = engine_from_json(ADAM);
    assert_ok(dsz_engine_free(e));
    double d;
    assert_status(dsz_loss_scale(e, &d), DSZ_ERR_INVALID_ARGUMENT, "not a live engine");
    assert_status(dsz_engine_free(e), DSZ_ERR_INVALID_ARGUMENT, "freed already");
    int not_an_engine = 0;
    assert_status(dsz_backward((dsz_engine *)&not_an_engine), DSZ_ERR_INVALID_ARGUMENT, "not a live engine");
}

static void test_option_structs(void **state) {
    (void)state;
    dsz_init_options *o = NULL;
    assert_ok(dsz_init_options_new(&o));
    assert_int_equal(o->size, sizeof(dsz_init_options));
    assert_int_equal(o->rank, -1);
    assert_int_equal(o->log_level, DSZ_LOG_INFO);
    assert_ok(dsz_init_options_free(o));
    assert_status(dsz_init_options_free(o), DSZ_ERR_INVALID_ARGUMENT, "already freed");
    dsz_init_options stack;
    assert_ok(dsz_init_options_init(&stack, sizeof stack));
    assert_status(dsz_init_options_free(&stack), DSZ_ERR_INVALID_ARGUMENT, "not allocated by dsz_init_options_new");
    assert_ok(dsz_init_options_free(NULL));
    assert_status(dsz_init_options_init(&stack, 4), DSZ_ERR_INVALID_ARGUMENT, "smaller than the first version");
    /* A struct that claims a size smaller than any version is refused by dsz_init. */
    assert_ok(dsz_init_options_init(&stack, sizeof stack));
    stack.size = 8;
    dsz_engine *e = NULL;
    assert_status(dsz_init(&e, ADAM, &stack), DSZ_ERR_INVALID_ARGUMENT, "dsz_init_options.size");
    /* A newer, larger struct is accepted: the library reads what it knows. */
    struct {
        dsz_init_options o;
        char future[64];
    } big;
    memset(&big, 0x7f, sizeof big);
    assert_ok(dsz_init_options_init(&big.o, sizeof big));
    assert_int_equal(big.o.size, sizeof(dsz_init_options));
    big.o.log_fn = quiet_log;
    assert_ok(dsz_init(&e, ADAM, &big.o));
    assert_ok(dsz_engine_free(e));
    dsz_step_info info;
    assert_status(dsz_step_info_init(&info, 3), DSZ_ERR_INVALID_ARGUMENT, "dsz_step_info");
}

static void test_bad_config_through_api(void **state) {
    (void)state;
    dsz_engine *e = (dsz_engine *)0x1;
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    o.log_fn = quiet_log;
    assert_status(dsz_init(&e, "{\"train_micro_batch_size_per_gpu\": 2, \"zero_optimization\": {\"stage\": \"four\"}}", &o),
                  DSZ_ERR_CONFIG, "zero_optimization.stage");
    assert_null(e);
    assert_status(dsz_init(&e, "/nonexistent/ds_config.json", &o), DSZ_ERR_NOT_FOUND, "/nonexistent/ds_config.json");
    assert_status(dsz_init(&e, "   ", &o), DSZ_ERR_CONFIG, "empty");
    assert_status(dsz_init(&e, "{\"train_micro_batch_size_per_gpu\": 2,", &o), DSZ_ERR_CONFIG, NULL);
}

static void test_register_errors(void **state) {
    (void)state;
    dsz_engine *e = engine_from_json(ADAM_FP16);
    const int64_t shape[2] = {4, 4};
    test_tensor f32, f16, strided;
    tt_make(&f32, dt_f32(), 2, shape);
    tt_make(&f16, dt_f16(), 2, shape);
    tt_make(&strided, dt_f16(), 2, shape);
    int64_t strides[2] = {1, 4}; /* column-major */
    strided.t.strides = strides;

    dsz_param p = {"fc.weight", &f32.t, 0, 0};
    assert_status(dsz_register_params(e, &p, 1, NULL, 0), DSZ_ERR_DTYPE, "parameter 'fc.weight' is float32");
    p.tensor = &strided.t;
    assert_status(dsz_register_params(e, &p, 1, NULL, 0), DSZ_ERR_SHAPE, "not compact");
    dsz_param two[2] = {{"a", &f16.t, 0, 0}, {"a", &f16.t, 0, 0}};
    assert_status(dsz_register_params(e, two, 2, NULL, 0), DSZ_ERR_INVALID_ARGUMENT, "'a' is registered twice");
    dsz_param nameless = {NULL, &f16.t, 0, 0};
    assert_status(dsz_register_params(e, &nameless, 1, NULL, 0), DSZ_ERR_INVALID_ARGUMENT, "empty or NULL name");
    dsz_param badgroup = {"a", &f16.t, 3, 0};
    assert_status(dsz_register_params(e, &badgroup, 1, NULL, 0), DSZ_ERR_INVALID_ARGUMENT, "names group 3");
    dsz_param nulltensor = {"a", NULL, 0, 0};
    assert_status(dsz_register_params(e, &nulltensor, 1, NULL, 0), DSZ_ERR_INVALID_ARGUMENT, "DLTensor pointer is NULL");
    DLTensor gpu = f16.t;
    gpu.device.device_type = kDLCUDA;
    dsz_param ongpu = {"a", &gpu, 0, 0};
    assert_status(dsz_register_params(e, &ongpu, 1, NULL, 0), DSZ_ERR_UNSUPPORTED, "not host memory");
    dsz_param_group g = {"g", 0x80, 0, 0, 0};
    dsz_param ok = {"a", &f16.t, 0, 0};
    assert_status(dsz_register_params(e, &ok, 1, &g, 1), DSZ_ERR_INVALID_ARGUMENT, "unknown bits");
    /* Nothing above changed the engine: a good registration still works, once. */
    assert_ok(dsz_register_params(e, &ok, 1, NULL, 0));
    assert_status(dsz_register_params(e, &ok, 1, NULL, 0), DSZ_ERR_STATE, "already called");
    size_t idx = 9;
    assert_ok(dsz_param_index(e, "a", &idx));
    assert_int_equal(idx, 0);
    assert_status(dsz_param_index(e, "nope", &idx), DSZ_ERR_NOT_FOUND, "'nope'");
    assert_ok(dsz_engine_free(e));
    tt_free(&f32);
    tt_free(&f16);
    tt_free(&strided);
}

static void test_call_order_and_gradients(void **state) {
    (void)state;
    dsz_engine *e = engine_from_json(ADAM);
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    assert_status(dsz_step(e, &info), DSZ_ERR_STATE, "no parameters registered");
    assert_status(dsz_backward(e), DSZ_ERR_STATE, "no parameters registered");
    toy_model m;
    toy_make(&m, dt_f32());
    toy_register(e, &m);
    assert_status(dsz_step(e, &info), DSZ_ERR_STATE, "dsz_step before dsz_backward");

    const int64_t wrong_shape[2] = {5, 3};
    test_tensor g, g16;
    tt_make(&g, dt_f32(), 2, wrong_shape);
    tt_make(&g16, dt_f16(), 2, m.w.shape);
    assert_status(dsz_grad_ready(e, 0, &g.t), DSZ_ERR_SHAPE, "gradient of 'w' has shape [5, 3], but the parameter has shape [3, 5]");
    assert_status(dsz_grad_ready(e, 0, &g16.t), DSZ_ERR_DTYPE, "gradient of 'w' is float16");
    assert_status(dsz_grad_ready(e, 7, &g.t), DSZ_ERR_INVALID_ARGUMENT, "out of range");
    assert_status(dsz_grad_ready(e, 0, NULL), DSZ_ERR_INVALID_ARGUMENT, "NULL");
    test_tensor ok;
    tt_make(&ok, dt_f32(), 2, m.w.shape);
    assert_ok(dsz_grad_ready(e, 0, &ok.t));
    assert_status(dsz_grad_ready(e, 0, &ok.t), DSZ_ERR_STATE, "already handed over");
    assert_ok(dsz_backward(e));
    assert_status(dsz_backward(e), DSZ_ERR_STATE, "twice");
    assert_status(dsz_grad_ready(e, 1, &ok.t), DSZ_ERR_STATE, "after dsz_backward");
    assert_ok(dsz_step(e, &info));
    assert_int_equal(info.stepped, 1);
    assert_status(dsz_step(e, &info), DSZ_ERR_STATE, "before dsz_backward");
    double lr;
    assert_status(dsz_get_lr(e, 4, &lr), DSZ_ERR_INVALID_ARGUMENT, "group 4 does not exist");
    assert_status(dsz_load(e, "/tmp", NULL, 0x100, NULL), DSZ_ERR_INVALID_ARGUMENT, "unknown flag");
    tt_free(&g);
    tt_free(&g16);
    tt_free(&ok);
    toy_free(&m);
    assert_ok(dsz_engine_free(e));
}

static void test_no_optimizer_section(void **state) {
    (void)state;
    dsz_engine *e = engine_from_json("{\"train_micro_batch_size_per_gpu\": 2}");
    toy_model m;
    toy_make(&m, dt_f32());
    toy_register(e, &m);
    assert_ok(dsz_backward(e));
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    assert_status(dsz_step(e, &info), DSZ_ERR_STATE, "no \"optimizer\" section");
    toy_free(&m);
    dsz_engine_free(e);
}

static void test_world_size_without_launcher(void **state) {
    (void)state;
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    o.log_fn = quiet_log;
    o.world_size = 2;
    o.rank = 0;
    dsz_engine *e = (dsz_engine *)0x1;
    assert_status(dsz_init(&e, ADAM, &o), DSZ_ERR_INVALID_ARGUMENT, "world_size 2 was requested but no launcher");
    assert_null(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_status),
        cmocka_unit_test(test_null_handles),
        cmocka_unit_test(test_dead_and_foreign_handles),
        cmocka_unit_test(test_option_structs),
        cmocka_unit_test(test_bad_config_through_api),
        cmocka_unit_test(test_register_errors),
        cmocka_unit_test(test_call_order_and_gradients),
        cmocka_unit_test(test_no_optimizer_section),
        cmocka_unit_test(test_world_size_without_launcher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
