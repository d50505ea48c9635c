/*
 * test_loss_scaler.cpp -- the two fp16 loss scalers of src/optim/loss_scaler.cpp
 * against reference §2.2 (with hysteresis, ZeRO 1-3) and §2.3 (plain, stage 0):
 * growth timing, hysteresis budgets, the floor and its error, static scales,
 * checkpoint round trips and DeepSpeed's log lines. Expected sequences are
 * written out by hand from the pseudo-code.
 */
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "optim/loss_scaler.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h> /* 1.1.5's header has no extern "C" of its own */
}

using namespace dsz;

static Fp16Config fp16(int power, int window, int hysteresis, bool consecutive = false, double min = 1) {
    Fp16Config c;
    c.enabled = true;
    c.initial_scale_power = power;
    c.loss_scale_window = window;
    c.hysteresis = hysteresis;
    c.consecutive_hysteresis = consecutive;
    c.min_loss_scale = min;
    return c;
}

/* Feeds `pattern` ('o' overflow, '.' clean) and returns the scale after each call. */
static std::vector<double> run(LossScaler &s, const char *pattern) {
    std::vector<double> out;
    for (const char *p = pattern; *p; ++p) {
        s.update(*p == 'o');
        out.push_back(s.scale());
    }
    return out;
}

static void assert_scales(const std::vector<double> &got, const std::vector<double> &want) {
    assert_int_equal(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
        if (got[i] != want[i]) {
            print_error("call %zu: scale %.17g, expected %.17g\n", i, got[i], want[i]);
            _fail(__FILE__, __LINE__);
        }
}

static void assert_messages(const LossScaler &s, const std::vector<std::string> &want) {
    const auto &got = s.messages();
    if (got != want) {
        for (auto &m : got) print_error("got:  %s\n", m.c_str());
        for (auto &m : want) print_error("want: %s\n", m.c_str());
        _fail(__FILE__, __LINE__);
    }
}

static std::string loss_scale_error(LossScaler &s) {
    try {
        s.update(true);
    } catch (const Error &e) {
        assert_int_equal(e.status(), DSZ_ERR_LOSS_SCALE);
        return e.what();
    }
    print_error("no error at the floor\n");
    _fail(__FILE__, __LINE__);
    return "";
}

static void assert_same_state(const LossScalerState &a, const LossScalerState &b) {
    assert_true(a.scale == b.scale);
    assert_int_equal(a.iter, b.iter);
    assert_int_equal(a.last_overflow, b.last_overflow);
    assert_int_equal(a.hysteresis_left, b.hysteresis_left);
}

/* ---- construction ---- */

static void test_initial_state(void **) {
    LossScaler def;
    assert_true(def.scale() == 1);
    assert_false(def.dynamic());
    def.update(true); /* bf16 / fp32: never changes */
    assert_true(def.scale() == 1);

    Fp16Config c;
    c.enabled = true;
    LossScaler z(c, true); /* DeepSpeed's defaults: 2^16, hysteresis 2 */
    assert_true(z.dynamic());
    assert_true(z.with_hysteresis());
    assert_true(z.scale() == 65536);
    assert_int_equal(z.state().iter, 0);
    assert_int_equal(z.state().last_overflow, -1);
    assert_int_equal(z.state().hysteresis_left, 2);

    LossScaler p(fp16(10, 5, 3), false);
    assert_true(p.scale() == 1024);
    assert_false(p.with_hysteresis());
    assert_int_equal(p.state().hysteresis_left, 3);

    c.enabled = false; /* not fp16: a static scale of 1 */
    LossScaler off(c, true);
    assert_false(off.dynamic());
    assert_true(off.scale() == 1);
}

static void test_config_errors(void **) {
    for (int window : {0, -3}) {
        try {
            LossScaler s(fp16(16, window, 2), true);
            fail_msg("window %d accepted", window);
        } catch (const Error &e) {
            assert_int_equal(e.status(), DSZ_ERR_CONFIG);
            assert_non_null(std::strstr(e.what(), "fp16.loss_scale_window"));
        }
    }
    try {
        LossScaler s(fp16(16, 10, 2, false, 0.0), false);
        fail_msg("min_loss_scale 0 accepted");
    } catch (const Error &e) {
        assert_int_equal(e.status(), DSZ_ERR_CONFIG);
        assert_non_null(std::strstr(e.what(), "fp16.min_loss_scale"));
    }
    Fp16Config st = fp16(16, 0, 2); /* a static scale does not look at the dynamic knobs */
    st.loss_scale = 8;
    LossScaler ok(st, true);
    assert_true(ok.scale() == 8);
}

/* ---- growth timing (same rule in both variants) ---- */

static void test_growth_at_window(void **) {
    for (bool hyst : {true, false}) {
        LossScaler s(fp16(4, 3, 2), hyst); /* S0 = 16, window 3 */
        /* call index it: growth when it - (-1) - 1 = it is a positive multiple of 3 */
        assert_scales(run(s, ".........."), {16, 16, 16, 32, 32, 32, 64, 64, 64, 128});
        assert_int_equal(s.state().iter, 10);
    }
}

static void test_growth_after_overflow(void **) {
    for (bool hyst : {true, false}) {
        LossScaler s(fp16(4, 3, 1), hyst);
        /* overflow at it0 = 4 halves 32 -> 16; next growth at it0 + 3 + 1 = 8, then 11 */
        assert_scales(run(s, "....o......."), {16, 16, 16, 32, 16, 16, 16, 16, 32, 32, 32, 64});
        assert_int_equal(s.state().last_overflow, 4);
        /* an overflow right after a growth restarts the count: it0 = 12 -> growth at 16 */
        assert_scales(run(s, "o...."), {32, 32, 32, 32, 64});
    }
}

/* ---- hysteresis (ZeRO variant) ---- */

static void test_hysteresis_two(void **) {
    LossScaler s(fp16(16, 1000, 2), true);
    s.update(true); /* first overflow only spends hysteresis */
    assert_true(s.scale() == 65536);
    assert_int_equal(s.state().hysteresis_left, 1);
    assert_int_equal(s.state().last_overflow, 0);
    assert_messages(s, {"[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 65536, "
                        "but hysteresis is 2. Reducing hysteresis to 1"});
    s.update(true); /* second one halves */
    assert_true(s.scale() == 32768);
    assert_int_equal(s.state().hysteresis_left, 1);
    assert_messages(s, {"[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 65536, reducing to 32768"});
    /* clean steps without growth do not refill (non-consecutive) */
    s.update(false);
    assert_messages(s, {});
    assert_int_equal(s.state().hysteresis_left, 1);
    s.update(true);
    assert_true(s.scale() == 16384);
}

static void test_hysteresis_refill_on_growth_only(void **) {
    LossScaler s(fp16(4, 2, 3), true); /* S0 16, window 2, hysteresis 3 */
    assert_scales(run(s, "oo"), {16, 16});
    assert_int_equal(s.state().hysteresis_left, 1);
    /* last overflow at it 1; growth at it = 1 + 2 + 1 = 4 refills to 3 */
    assert_scales(run(s, ".."), {16, 16});
    assert_int_equal(s.state().hysteresis_left, 1);
    assert_scales(run(s, "."), {32});
    assert_int_equal(s.state().hysteresis_left, 3);
    assert_scales(run(s, "ooo"), {32, 32, 16});
}

static void test_consecutive_hysteresis(void **) {
    LossScaler s(fp16(4, 100, 2, true), true);
    s.update(true);
    assert_int_equal(s.state().hysteresis_left, 1);
    s.update(false); /* every clean step refills */
    assert_int_equal(s.state().hysteresis_left, 2);
    assert_messages(s, {"Consecutive hysteresis is enabled. Restoring hysteresis to 2"});
    assert_scales(run(s, "o.o.o.o."), std::vector<double>(8, 16));
    assert_scales(run(s, "oo"), {16, 8}); /* only back-to-back overflows halve */

    LossScaler n(fp16(4, 100, 2, false), true); /* the same pattern without it */
    assert_scales(run(n, "o.o.o.o"), {16, 16, 8, 8, 4, 4, 2});
}

static void test_hysteresis_one(void **) {
    LossScaler s(fp16(4, 100, 1), true);
    assert_scales(run(s, "o.o"), {8, 8, 4});
    assert_messages(s, {"[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 8, reducing to 4"});
    LossScaler c(fp16(4, 100, 1, true), true); /* hysteresis_cfg == 1 halves even after a refill */
    assert_scales(run(c, "o.o"), {8, 8, 4});
    /* a configured hysteresis of 1 wins over a budget restored from a run with more */
    LossScaler r(fp16(4, 100, 1), true);
    LossScalerState st = r.state();
    st.hysteresis_left = 3;
    r.restore(st);
    assert_scales(run(r, "o"), {8});
}

/* hysteresis <= 0: the budget never reaches 1, so the scale never decreases. */
static void test_hysteresis_zero(void **) {
    LossScaler s(fp16(4, 100, 0), true);
    assert_scales(run(s, "ooo"), {16, 16, 16});
    assert_int_equal(s.state().hysteresis_left, -3);
}

/* ---- the floor ---- */

static void test_min_floor_and_error(void **) {
    LossScaler s(fp16(4, 100, 1, false, 5), true);
    assert_scales(run(s, "oo"), {8, 5}); /* max(4, 5) */
    assert_messages(s, {"[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 8, reducing to 5"});
    const LossScalerState before = s.state();
    std::string m = loss_scale_error(s);
    assert_non_null(std::strstr(m.c_str(),
        "Current loss scale already at minimum - cannot decrease scale anymore. Exiting run."));
    assert_same_state(s.state(), before); /* unchanged */
    /* still usable: a clean run grows again (last overflow at it 1, growth at it 102) */
    for (int i = 0; i < 100; ++i) s.update(false);
    assert_true(s.scale() == 5);
    s.update(false);
    assert_true(s.scale() == 10);
}

static void test_floor_error_after_hysteresis(void **) {
    LossScaler s(fp16(1, 100, 2, false, 1), true); /* S0 = 2 */
    assert_scales(run(s, "oo"), {2, 1}); /* spend hysteresis, then halve to the floor */
    assert_int_equal(s.state().hysteresis_left, 1);
    const LossScalerState before = s.state();
    loss_scale_error(s); /* budget exhausted and at min */
    assert_same_state(s.state(), before);

    /* with budget left, an overflow at the floor only spends it */
    LossScaler t(fp16(0, 100, 3, false, 1), true); /* S0 = 1 = min */
    assert_scales(run(t, "oo"), {1, 1});
    assert_int_equal(t.state().hysteresis_left, 1);
    loss_scale_error(t);
}

static void test_fractional_min(void **) {
    LossScaler s(fp16(0, 1000, 1, false, 1e-8), true); /* S0 = 1 */
    for (int i = 0; i < 26; ++i) s.update(true);
    assert_true(s.scale() == std::ldexp(1.0, -26)); /* 1.49e-8 > 1e-8 */
    s.update(true);
    assert_true(s.scale() == 1e-8); /* max(2^-27, 1e-8) */
    assert_messages(s, {"[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 0, reducing to 0"});
    std::string m = loss_scale_error(s);
    assert_non_null(std::strstr(m.c_str(), "1e-08"));
}

/* ---- plain variant (stage 0) ---- */

static void test_plain_ignores_hysteresis(void **) {
    LossScaler s(fp16(16, 3, 2, true), false);
    s.update(true);
    assert_true(s.scale() == 32768); /* halves on the first overflow */
    assert_int_equal(s.state().hysteresis_left, 2);
    assert_messages(s, {"Grad overflow on iteration 0", "Reducing dynamic loss scale from 65536.0 to 32768.0"});
    s.update(false);
    assert_messages(s, {}); /* no consecutive-hysteresis line either */
    assert_scales(run(s, "o...."), {16384, 16384, 16384, 16384, 32768});
    assert_messages(s, {"No Grad overflow for 3 iterations", "Increasing dynamic loss scale from 16384.0 to 32768.0"});
}

static void test_plain_never_fails_at_floor(void **) {
    LossScaler s(fp16(2, 100, 1, false, 1), false);
    assert_scales(run(s, "oooooo"), {2, 1, 1, 1, 1, 1});
    assert_messages(s, {"Grad overflow on iteration 5", "Reducing dynamic loss scale from 1.0 to 1.0"});
    assert_int_equal(s.state().last_overflow, 5);
    LossScaler f(fp16(0, 100, 1, false, 1e-8), false);
    for (int i = 0; i < 26; ++i) f.update(true);
    f.update(true);
    assert_messages(f, {"Grad overflow on iteration 26", "Reducing dynamic loss scale from 1.4901161193847656e-08 to 1e-08"});
    f.update(true);
    assert_true(f.scale() == 1e-8);
}

static void test_plain_large_scale_repr(void **) {
    LossScaler s(fp16(32, 1, 1), false);
    s.update(true);
    assert_messages(s, {"Grad overflow on iteration 0", "Reducing dynamic loss scale from 4294967296.0 to 2147483648.0"});
    LossScaler b(fp16(60, 1, 1), false);
    b.update(true);
    assert_messages(b, {"Grad overflow on iteration 0",
                        "Reducing dynamic loss scale from 1.152921504606847e+18 to 5.764607523034235e+17"});
    LossScaler z(fp16(60, 1, 1), true); /* ZeRO prints int(): exact digits */
    z.update(true);
    assert_messages(z, {"[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 1152921504606846976, "
                        "reducing to 576460752303423488"});
}

/* ---- static scale ---- */

static void test_static_scale(void **) {
    for (bool hyst : {true, false}) {
        Fp16Config c = fp16(16, 2, 1);
        c.loss_scale = 128;
        LossScaler s(c, hyst);
        assert_false(s.dynamic());
        assert_scales(run(s, "oo.....o...o"), std::vector<double>(12, 128));
    }
    Fp16Config c = fp16(16, 2, 1);
    c.loss_scale = 0.5;
    LossScaler p(c, false);
    p.update(false);
    assert_messages(p, {});
    p.update(true);
    assert_messages(p, {"Grad overflow on iteration: 1", "Using static loss scale of: 0.5"});
    LossScaler z(c, true); /* ZeRO's static scaler says nothing */
    z.update(true);
    assert_messages(z, {});
}

/* ---- checkpoints ---- */

static void test_restore_round_trip(void **) {
    for (bool hyst : {true, false}) {
        LossScaler a(fp16(8, 3, 2), hyst);
        run(a, "..o.o..");
        const LossScalerState saved = a.state();
        std::vector<double> rest = run(a, "....o.o......");

        LossScaler b(fp16(8, 3, 2), hyst);
        b.restore(saved);
        assert_same_state(b.state(), saved);
        assert_scales(run(b, "....o.o......"), rest);
        assert_same_state(b.state(), a.state());
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initial_state),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_growth_at_window),
        cmocka_unit_test(test_growth_after_overflow),
        cmocka_unit_test(test_hysteresis_two),
        cmocka_unit_test(test_hysteresis_refill_on_growth_only),
        cmocka_unit_test(test_consecutive_hysteresis),
        cmocka_unit_test(test_hysteresis_one),
        cmocka_unit_test(test_hysteresis_zero),
        cmocka_unit_test(test_min_floor_and_error),
        cmocka_unit_test(test_floor_error_after_hysteresis),
        cmocka_unit_test(test_fractional_min),
        cmocka_unit_test(test_plain_ignores_hysteresis),
        cmocka_unit_test(test_plain_never_fails_at_floor),
        cmocka_unit_test(test_plain_large_scale_repr),
        cmocka_unit_test(test_static_scale),
        cmocka_unit_test(test_restore_round_trip),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
