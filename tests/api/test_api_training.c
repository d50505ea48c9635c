/*
 * test_api_training.c -- the single-rank engine through the C API: it
 * trains, fp16 overflow skips the step without touching anything, gradient
 * accumulation equals one big batch, clipping uses DeepSpeed's factor,
 * parameter groups keep their own lr and weight decay, and the schedule
 * advances only on real steps.
 */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hand_over(dsz_engine *e, size_t idx, test_tensor *grad) { assert_ok(dsz_grad_ready(e, idx, &grad->t)); }

/* Minimises 0.5 * ||p - target||^2 and checks it gets close. */
static void converge(const char *json, DLDataType dt, double tol) {
    dsz_engine *e = engine_from_json(json);
    toy_model m;
    toy_make(&m, dt);
    toy_register(e, &m);
    test_tensor gw, gb;
    tt_make(&gw, dt, 2, m.w.shape);
    tt_make(&gb, dt, 1, m.b.shape);
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    double start = 0, end = 0;
    for (int it = 0; it < 400; ++it) {
        double mult;
        assert_ok(dsz_loss_scale(e, &mult));
        double err = 0;
        for (size_t i = 0; i < 15; ++i) {
            float d = tt_get(&m.w, i) - 0.25f * (float)(i % 5);
            err += d * d;
            tt_set(&gw, i, (float)(d * mult));
        }
        for (size_t i = 0; i < 7; ++i) {
            float d = tt_get(&m.b, i) + 0.5f;
            err += d * d;
            tt_set(&gb, i, (float)(d * mult));
        }
        if (it == 0) start = err;
        end = err;
        hand_over(e, 0, &gw);
        hand_over(e, 1, &gb);
        assert_ok(dsz_backward(e));
        assert_ok(dsz_step(e, &info));
    }
    if (!(end < tol * start)) {
        print_error("did not converge: error %g -> %g for %s\n", start, end, json);
        fail();
    }
    tt_free(&gw);
    tt_free(&gb);
    toy_free(&m);
    dsz_engine_free(e);
}

static void test_trains_fp32_fp16_bf16(void **state) {
    (void)state;
    converge("{\"train_micro_batch_size_per_gpu\": 1, \"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.02}}}",
             dt_f32(), 1e-4);
    converge("{\"train_micro_batch_size_per_gpu\": 1, \"fp16\": {\"enabled\": true}, "
             "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.02}}}",
             dt_f16(), 1e-3);
    converge("{\"train_micro_batch_size_per_gpu\": 1, \"bf16\": {\"enabled\": true}, "
             "\"zero_optimization\": {\"stage\": 1}, \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.02}}}",
             dt_bf16(), 1e-2);
    /* Lion moves every weight by lr each step, so it ends in a band of width ~lr. */
    converge("{\"train_micro_batch_size_per_gpu\": 1, \"optimizer\": {\"type\": \"Lion\", \"params\": {\"lr\": 0.02}}, "
             "\"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"total_num_steps\": 400, "
             "\"warmup_num_steps\": 10, \"warmup_max_lr\": 0.02}}}",
             dt_f32(), 1e-2);
    converge("{\"train_micro_batch_size_per_gpu\": 1, \"optimizer\": {\"type\": \"SGD\", \"params\": "
             "{\"lr\": 0.1, \"momentum\": 0.9, \"nesterov\": true}}}",
             dt_f32(), 1e-4);
}

static void snapshot(const toy_model *m, unsigned char *buf) {
    const size_t es = m->w.t.dtype.bits / 8;
    memcpy(buf, m->w.data, 15 * es);
    memcpy(buf + 15 * es, m->b.data, 7 * es);
}

static const char *FP16 =
    "{\"train_micro_batch_size_per_gpu\": 1, \"fp16\": {\"enabled\": true, \"initial_scale_power\": 8}, "
    "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.1}}, "
    "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 10, \"warmup_max_lr\": 0.01}}}";

static void test_fp16_overflow_skips_bitwise(void **state) {
    (void)state;
    dsz_engine *a = engine_from_json(FP16), *b = engine_from_json(FP16);
    toy_model ma, mb;
    toy_make(&ma, dt_f16());
    toy_make(&mb, dt_f16());
    toy_register(a, &ma);
    toy_register(b, &mb);
    dsz_step_info ia, ib;
    dsz_step_info_init(&ia, sizeof ia);
    dsz_step_info_init(&ib, sizeof ib);
    toy_micro_step(a, &ma, 0, &ia);
    toy_micro_step(b, &mb, 0, &ib);
    assert_true(ia.stepped);
    assert_true(ia.loss_scale == 256.0);

    unsigned char before[64], after[64];
    snapshot(&ma, before);
    double lr_before;
    assert_ok(dsz_get_lr(a, 0, &lr_before));
    test_tensor gw, gb;
    tt_make(&gw, dt_f16(), 2, ma.w.shape);
    tt_make(&gb, dt_f16(), 1, ma.b.shape);
    tt_set(&gw, 3, INFINITY);
    hand_over(a, 0, &gw);
    hand_over(a, 1, &gb);
    assert_ok(dsz_backward(a));
    assert_ok(dsz_step(a, &ia));
    assert_true(ia.skipped);
    assert_false(ia.stepped);
    assert_int_equal(ia.global_steps, 2);
    assert_int_equal(ia.skipped_steps, 1);
    assert_true(ia.grad_norm == -1.0);
    assert_true(ia.loss_scale == 128.0); /* stage 0: DeepSpeed's FP16 wrapper halves at once */
    double lr_after;
    assert_ok(dsz_get_lr(a, 0, &lr_after));
    assert_true(lr_after == lr_before);
    snapshot(&ma, after);
    assert_memory_equal(before, after, 22 * 2);

    /* The overflow left no trace: a's next steps equal b's steps, bit for bit. */
    for (int k = 1; k < 6; ++k) {
        toy_micro_step(a, &ma, k, &ia);
        toy_micro_step(b, &mb, k, &ib);
        assert_memory_equal(ma.w.data, mb.w.data, 15 * 2);
        assert_memory_equal(ma.b.data, mb.b.data, 7 * 2);
        assert_true(ia.lr == ib.lr);
    }
    tt_free(&gw);
    tt_free(&gb);
    toy_free(&ma);
    toy_free(&mb);
    dsz_engine_free(a);
    dsz_engine_free(b);
}

static void test_hysteresis_with_zero(void **state) {
    (void)state;
    /* ZeRO stage >= 1 uses DeepSpeed's scaler with hysteresis: two overflows to halve. */
    dsz_engine *e = engine_from_json(
        "{\"train_micro_batch_size_per_gpu\": 1, \"fp16\": {\"enabled\": true, \"hysteresis\": 2}, "
        "\"zero_optimization\": {\"stage\": 2}, \"optimizer\": {\"type\": \"AdamW\"}}");
    toy_model m;
    toy_make(&m, dt_f16());
    toy_register(e, &m);
    test_tensor gw;
    tt_make(&gw, dt_f16(), 2, m.w.shape);
    tt_set(&gw, 0, NAN);
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    const double expect[3] = {65536.0, 32768.0, 16384.0};
    for (int k = 0; k < 3; ++k) {
        hand_over(e, 0, &gw);
        assert_ok(dsz_backward(e));
        assert_ok(dsz_step(e, &info));
        assert_true(info.skipped);
        assert_true(info.loss_scale == expect[k]);
    }
    tt_free(&gw);
    toy_free(&m);
    dsz_engine_free(e);
}

static void test_accumulation_equals_big_batch(void **state) {
    (void)state;
    dsz_engine *acc = engine_from_json("{\"train_micro_batch_size_per_gpu\": 1, \"gradient_accumulation_steps\": 2, "
                                       "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}}");
    dsz_engine *one = engine_from_json("{\"train_micro_batch_size_per_gpu\": 2, "
                                       "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}}");
    toy_model ma, mb;
    toy_make(&ma, dt_f32());
    toy_make(&mb, dt_f32());
    toy_register(acc, &ma);
    toy_register(one, &mb);
    double mult;
    assert_ok(dsz_loss_scale(acc, &mult));
    assert_true(mult == 0.5);
    test_tensor g1, g2, gsum;
    tt_make(&g1, dt_f32(), 2, ma.w.shape);
    tt_make(&g2, dt_f32(), 2, ma.w.shape);
    tt_make(&gsum, dt_f32(), 2, ma.w.shape);
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    for (int step = 0; step < 5; ++step) {
        for (size_t i = 0; i < 15; ++i) {
            float v1 = (float)sin(step * 15 + i), v2 = (float)cos(step * 7 + i * 3);
            tt_set(&g1, i, v1 * 0.5f);
            tt_set(&g2, i, v2 * 0.5f);
            tt_set(&gsum, i, (v1 + v2) * 0.5f);
        }
        /* micro-batch 1: only w gets a gradient; b counts as zero */
        hand_over(acc, 0, &g1);
        assert_ok(dsz_backward(acc));
        assert_ok(dsz_step(acc, &info));
        assert_false(info.boundary);
        hand_over(acc, 0, &g2);
        assert_ok(dsz_backward(acc));
        assert_ok(dsz_step(acc, &info));
        assert_true(info.boundary && info.stepped);
        hand_over(one, 0, &gsum);
        assert_ok(dsz_backward(one));
        assert_ok(dsz_step(one, &info));
        assert_memory_equal(ma.w.data, mb.w.data, 15 * 4);
        assert_memory_equal(ma.b.data, mb.b.data, 7 * 4);
    }
    dsz_engine_state st;
    dsz_engine_state_init(&st, sizeof st);
    assert_ok(dsz_get_state(acc, &st));
    assert_int_equal(st.global_steps, 5);
    assert_int_equal(st.micro_steps, 10);
    assert_int_equal(st.train_batch_size, 2);
    assert_int_equal(st.global_samples, 10);
    tt_free(&g1);
    tt_free(&g2);
    tt_free(&gsum);
    toy_free(&ma);
    toy_free(&mb);
    dsz_engine_free(acc);
    dsz_engine_free(one);
}

static void test_clipping_factor(void **state) {
    (void)state;
    /* SGD with lr 1: the update is the clipped gradient itself. */
    dsz_engine *e = engine_from_json("{\"train_micro_batch_size_per_gpu\": 1, \"gradient_clipping\": 0.5, "
                                     "\"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 1.0}}}");
    toy_model m;
    toy_make(&m, dt_f32());
    toy_register(e, &m);
    float w0[15];
    for (size_t i = 0; i < 15; ++i) w0[i] = tt_get(&m.w, i);
    test_tensor g;
    tt_make(&g, dt_f32(), 2, m.w.shape);
    double norm2 = 0;
    for (size_t i = 0; i < 15; ++i) {
        tt_set(&g, i, (float)(i + 1));
        norm2 += (double)(i + 1) * (i + 1);
    }
    hand_over(e, 0, &g);
    assert_ok(dsz_backward(e));
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    assert_ok(dsz_step(e, &info));
    const double N = sqrt(norm2);
    assert_true(fabs(info.grad_norm - N) <= 1e-9 * N);
    const double coef = 0.5 / (N + 1e-6);
    for (size_t i = 0; i < 15; ++i) {
        const double want = w0[i] - (double)(i + 1) * coef;
        assert_true(fabs(tt_get(&m.w, i) - want) <= 1e-6 * fmax(1.0, fabs(want)));
    }
    /* Below the threshold nothing is clipped. */
    for (size_t i = 0; i < 15; ++i) {
        w0[i] = tt_get(&m.w, i);
        tt_set(&g, i, i == 0 ? 0.25f : 0.0f);
    }
    hand_over(e, 0, &g);
    assert_ok(dsz_backward(e));
    assert_ok(dsz_step(e, &info));
    assert_true(tt_get(&m.w, 0) == w0[0] - 0.25f);
    tt_free(&g);
    toy_free(&m);
    dsz_engine_free(e);
}

static void test_param_groups(void **state) {
    (void)state;
    dsz_engine *e = engine_from_json("{\"train_micro_batch_size_per_gpu\": 1, "
                                     "\"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.5, \"weight_decay\": 0.0}}}");
    toy_model m;
    toy_make(&m, dt_f32());
    dsz_param_group groups[2] = {{"decay", DSZ_GROUP_WEIGHT_DECAY, 0, 0.0, 0.5},
                                 {"fast", DSZ_GROUP_LR, 0, 0.25, 0.0}};
    dsz_param p[2] = {{"w", &m.w.t, 0, 0}, {"b", &m.b.t, 1, 0}};
    assert_ok(dsz_register_params(e, p, 2, groups, 2));
    double lr0, lr1;
    assert_ok(dsz_get_lr(e, 0, &lr0));
    assert_ok(dsz_get_lr(e, 1, &lr1));
    assert_true(lr0 == 0.5 && lr1 == 0.25);
    float w0 = tt_get(&m.w, 0), b0 = tt_get(&m.b, 0);
    test_tensor gw, gb;
    tt_make(&gw, dt_f32(), 2, m.w.shape);
    tt_make(&gb, dt_f32(), 1, m.b.shape);
    tt_set(&gw, 0, 0.125f);
    tt_set(&gb, 0, 0.125f);
    hand_over(e, 0, &gw);
    hand_over(e, 1, &gb);
    assert_ok(dsz_backward(e));
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    assert_ok(dsz_step(e, &info));
    /* torch SGD: g += wd * p; p -= lr * g */
    const float gw_eff = 0.125f + 0.5f * w0;
    assert_true(fabsf(tt_get(&m.w, 0) - (w0 - 0.5f * gw_eff)) <= 1e-6f);
    assert_true(tt_get(&m.b, 0) == b0 - 0.25f * 0.125f);
    tt_free(&gw);
    tt_free(&gb);
    toy_free(&m);
    dsz_engine_free(e);
}

static void test_schedule_through_api(void **state) {
    (void)state;
    dsz_engine *e = engine_from_json(
        "{\"train_micro_batch_size_per_gpu\": 1, \"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.1}}, "
        "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_min_lr\": 0.0, \"warmup_max_lr\": 0.1, "
        "\"warmup_num_steps\": 8, \"warmup_type\": \"log\"}}}");
    toy_model m;
    toy_make(&m, dt_f32());
    toy_register(e, &m);
    double lr;
    assert_ok(dsz_get_lr(e, 0, &lr));
    assert_true(lr == 0.0); /* t = -1 right after construction */
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    for (int k = 0; k < 12; ++k) {
        toy_micro_step(e, &m, k, &info);
        const double want = k < 8 ? 0.1 * log((double)k + 1) / log(8.0) : 0.1;
        assert_ok(dsz_get_lr(e, 0, &lr));
        assert_true(fabs(lr - want) <= 1e-12);
        assert_true(info.lr == lr);
    }
    toy_free(&m);
    dsz_engine_free(e);
}

static int log_count;
static char log_last[512];
static void capture_log(int32_t level, const char *message, void *user) {
    (void)level;
    (void)user;
    if (strncmp(message, "step=", 5) == 0) {
        ++log_count;
        snprintf(log_last, sizeof log_last, "%s", message);
    }
}

static void test_progress_log_callback(void **state) {
    (void)state;
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    o.log_fn = capture_log;
    dsz_engine *e = NULL;
    assert_ok(dsz_init(&e, "{\"train_micro_batch_size_per_gpu\": 1, \"steps_per_print\": 3, "
                           "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.001}}}", &o));
    toy_model m;
    toy_make(&m, dt_f32());
    toy_register(e, &m);
    dsz_step_info info;
    dsz_step_info_init(&info, sizeof info);
    log_count = 0;
    for (int k = 0; k < 7; ++k) toy_micro_step(e, &m, k, &info);
    assert_int_equal(log_count, 2);
    assert_string_equal(log_last, "step=6, skipped=0, lr=[0.001], mom=[(0.9, 0.999)]");
    toy_free(&m);
    dsz_engine_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trains_fp32_fp16_bf16),
        cmocka_unit_test(test_fp16_overflow_skips_bitwise),
        cmocka_unit_test(test_hysteresis_with_zero),
        cmocka_unit_test(test_accumulation_equals_big_batch),
        cmocka_unit_test(test_clipping_factor),
        cmocka_unit_test(test_param_groups),
        cmocka_unit_test(test_schedule_through_api),
        cmocka_unit_test(test_progress_log_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
