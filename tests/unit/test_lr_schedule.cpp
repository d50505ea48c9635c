/*
 * test_lr_schedule.cpp -- the LR schedules of src/optim/lr_schedule.cpp
 * against the formulas of reference §3, written out here independently
 * (ln(t+1)/ln(N') instead of DeepSpeed's precomputed inverse, the OneCycle
 * halves as b/fs and (total-b)/ss, hand-derived constants where they are
 * round), plus the cases of DeepSpeed's tests/unit/runtime/test_lr_schedulers.py
 * that follow from the spec, with its exact comparisons kept exact.
 *
 * Step convention, as in the engine: t = -1 right after construction, and
 * after k successful optimizer steps the lr is at(k - 1).
 */
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "optim/lr_schedule.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h> /* 1.1.5's header has no extern "C" of its own */
}

using namespace dsz;

/* ---- helpers ---- */

/* rel 0 means bit-for-bit equality (DeepSpeed's own == comparisons). */
static void check_near(double got, double want, double rel, const char *expr, const char *file, int line) {
    const double tol = rel == 0 ? 0.0 : rel * std::fabs(want) + 1e-18;
    if (!(got == want || std::fabs(got - want) <= tol)) {
        print_error("%s = %.17g, expected %.17g (rel tol %g)\n", expr, got, want, rel);
        _fail(file, line);
    }
}
#define assert_near(got, want) check_near((got), (want), 1e-12, #got, __FILE__, __LINE__)
#define assert_approx(got, want, rel) check_near((got), (want), (rel), #got, __FILE__, __LINE__)
#define assert_exact(got, want) check_near((got), (want), 0.0, #got, __FILE__, __LINE__)

static std::string config_error(const SchedulerConfig &c) {
    try {
        LrSchedule s(c);
    } catch (const Error &e) {
        assert_int_equal(e.status(), DSZ_ERR_CONFIG);
        return e.what();
    }
    print_error("no error for this config\n");
    _fail(__FILE__, __LINE__);
    return "";
}

static void assert_contains(const std::string &hay, const char *needle) {
    if (hay.find(needle) == std::string::npos) {
        print_error("\"%s\" does not contain \"%s\"\n", hay.c_str(), needle);
        _fail(__FILE__, __LINE__);
    }
}

static SchedulerConfig warmup_cfg(SchedulerType type, int64_t n, WarmupType wt, double min, double max) {
    SchedulerConfig c;
    c.type = type;
    c.warmup_num_steps = n;
    c.warmup_type = wt;
    c.warmup_min_lr = min;
    c.warmup_max_lr = max;
    c.has_warmup_max_lr = true;
    return c;
}

static SchedulerConfig one_cycle_cfg(double min_lr, double max_lr, int64_t fs, int64_t ss) {
    SchedulerConfig c;
    c.type = SchedulerType::one_cycle;
    c.cycle_min_lr = min_lr;
    c.cycle_max_lr = max_lr;
    c.cycle_first_step_size = fs;
    c.cycle_second_step_size = ss;
    return c;
}

static SchedulerConfig cosine_cfg(int64_t total, int64_t n, double cmin, double wmin) {
    SchedulerConfig c;
    c.type = SchedulerType::warmup_cosine_lr;
    c.total_num_steps = total;
    c.warmup_num_steps = n;
    c.cos_min_ratio = cmin;
    c.warmup_min_ratio = wmin;
    return c;
}

static SchedulerConfig range_cfg(double min, double rate, int64_t size, bool staircase) {
    SchedulerConfig c;
    c.type = SchedulerType::lr_range_test;
    c.lr_range_test_min_lr = min;
    c.lr_range_test_step_rate = rate;
    c.lr_range_test_step_size = size;
    c.lr_range_test_staircase = staircase;
    return c;
}

static double lr(const LrSchedule &s, int64_t t, double base = 0.5) { return s.at(t, base).lr; }
static double mom(const LrSchedule &s, int64_t t) { return s.at(t, 0.5).beta1; }

/* lrs[i] = lr after i+1 steps (DeepSpeed tests that read get_lr() after step()). */
static std::vector<double> after_steps(const LrSchedule &s, int n, double base = 0.5) {
    std::vector<double> v;
    for (int i = 0; i < n; ++i) v.push_back(lr(s, i, base));
    return v;
}
/* lrs[i] = lr before step i (DeepSpeed tests that read get_lr() before step()). */
static std::vector<double> before_steps(const LrSchedule &s, int n, double base = 0.5) {
    std::vector<double> v;
    for (int i = 0; i < n; ++i) v.push_back(lr(s, i - 1, base));
    return v;
}

/* Python-slice semantics: `to` is clamped to the length. */
static void assert_increasing(const std::vector<double> &v, size_t from, size_t to) {
    to = std::min(to, v.size());
    for (size_t i = from; i + 1 < to; ++i)
        if (!(v[i] < v[i + 1])) {
            print_error("not increasing at %zu: %.17g >= %.17g\n", i, v[i], v[i + 1]);
            _fail(__FILE__, __LINE__);
        }
}
static void assert_decreasing(const std::vector<double> &v, size_t from, size_t to) {
    to = std::min(to, v.size());
    for (size_t i = from; i + 1 < to; ++i)
        if (!(v[i] > v[i + 1])) {
            print_error("not decreasing at %zu: %.17g <= %.17g\n", i, v[i], v[i + 1]);
            _fail(__FILE__, __LINE__);
        }
}

/* ---- no schedule ---- */

static void test_none_returns_base(void **) {
    SchedulerConfig c;
    LrSchedule s(c);
    for (int64_t t : {-1, 0, 7, 100000}) {
        ScheduleValue v = s.at(t, 3e-4);
        assert_exact(v.lr, 3e-4);
        assert_false(v.has_momentum);
    }
    assert_true(s.warnings().empty());
}

/* ---- WarmupLR ---- */

static void test_warmup_lr_log(void **) {
    const double min = 1e-4, max = 1e-3, d = max - min;
    LrSchedule s(warmup_cfg(SchedulerType::warmup_lr, 1000, WarmupType::log, min, max));
    assert_exact(lr(s, -1), min);
    assert_exact(lr(s, 0), min); /* ln 1 = 0 */
    assert_near(lr(s, 9), min + d / 3);       /* ln 10 / ln 1000 */
    assert_near(lr(s, 99), min + d * 2 / 3);  /* ln 100 / ln 1000 */
    assert_near(lr(s, 500), min + d * std::log(501.0) / std::log(1000.0));
    assert_near(lr(s, 998), min + d * std::log(999.0) / std::log(1000.0));
    assert_near(lr(s, 999), max); /* N'-1: ln N' / ln N' */
    assert_exact(lr(s, 1000), max);
    assert_exact(lr(s, 123456), max);
    assert_false(s.at(5, 0.5).has_momentum);
}

static void test_warmup_lr_linear(void **) {
    const double min = 0.01, max = 0.05, d = max - min;
    LrSchedule s(warmup_cfg(SchedulerType::warmup_lr, 10, WarmupType::linear, min, max));
    assert_exact(lr(s, -1), min);
    assert_exact(lr(s, 0), min);
    assert_near(lr(s, 1), min + d * 0.1);
    assert_near(lr(s, 5), min + d * 0.5);
    assert_near(lr(s, 9), min + d * 0.9); /* N'-1 is still below max */
    assert_exact(lr(s, 10), max);
    assert_exact(lr(s, 11), max);
}

/* warmup_num_steps 1 is accepted and behaves as N' = 2. */
static void test_warmup_lr_one_step(void **) {
    LrSchedule lg(warmup_cfg(SchedulerType::warmup_lr, 1, WarmupType::log, 0.1, 0.3));
    assert_exact(lr(lg, -1), 0.1);
    assert_exact(lr(lg, 0), 0.1);
    assert_near(lr(lg, 1), 0.3); /* ln 2 / ln 2 */
    assert_exact(lr(lg, 2), 0.3);
    LrSchedule li(warmup_cfg(SchedulerType::warmup_lr, 1, WarmupType::linear, 0.1, 0.3));
    assert_exact(lr(li, 0), 0.1);
    assert_near(lr(li, 1), 0.2); /* 1 / 2, not 1 / 1 */
    assert_exact(lr(li, 2), 0.3);
}

static void test_warmup_lr_inherits_base_lr(void **) {
    SchedulerConfig c = warmup_cfg(SchedulerType::warmup_lr, 10, WarmupType::log, 0.0, 0.001);
    c.has_warmup_max_lr = false; /* warmup_max_lr: null => each group's lr */
    LrSchedule s(c);
    assert_exact(lr(s, -1, 0.2), 0.0);
    assert_near(lr(s, 5, 0.2), 0.2 * std::log(6.0) / std::log(10.0));
    assert_exact(lr(s, 10, 0.1), 0.1);
    assert_exact(lr(s, 10, 0.2), 0.2);
    c.has_warmup_max_lr = true; /* an explicit max ignores the group's lr */
    LrSchedule e(c);
    assert_exact(lr(e, 10, 0.2), 0.001);
}

/* ---- WarmupDecayLR ---- */

static void test_warmup_decay_lr(void **) {
    const double min = 1e-5;
    SchedulerConfig c = warmup_cfg(SchedulerType::warmup_decay_lr, 10, WarmupType::log, min, 0.001);
    c.has_warmup_max_lr = false; /* the 0.001 default is NOT inherited from the optimizer */
    c.total_num_steps = 30;
    LrSchedule s(c);
    const double d = 0.001 - min;
    assert_exact(lr(s, -1, 0.5), min);
    assert_exact(lr(s, 0, 0.5), min);
    assert_near(lr(s, 3, 0.5), min + d * std::log(4.0) / std::log(10.0));
    assert_near(lr(s, 9, 0.5), 0.001);                 /* N'-1 */
    assert_exact(lr(s, 10, 0.5), 0.001);               /* N': (30-10)/20 = 1 */
    assert_near(lr(s, 15, 0.5), min + d * 0.75);       /* (30-15)/20 */
    assert_near(lr(s, 20, 0.5), min + d * 0.5);        /* mid-decay */
    assert_near(lr(s, 29, 0.5), min + d * 0.05);
    assert_exact(lr(s, 30, 0.5), min);                 /* the end */
    assert_exact(lr(s, 45, 0.5), min);                 /* max(0, ...) floor past it */
    assert_true(s.warnings().size() == 1);             /* only "before it has started" */
}

static void test_warmup_decay_lr_linear(void **) {
    SchedulerConfig c = warmup_cfg(SchedulerType::warmup_decay_lr, 4, WarmupType::linear, 0.0, 0.8);
    c.total_num_steps = 12;
    LrSchedule s(c);
    const double want[] = {0.0, 0.2, 0.4, 0.6, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0};
    for (int t = 0; t < 14; ++t) assert_near(lr(s, t), want[t]);
}

/* total_num_steps < N': DeepSpeed warns; past warmup the span is max(1, T-N') and
 * gamma = max(0, (T-t)/1) = 0, so the lr drops straight to min. */
static void test_warmup_decay_lr_short_total(void **) {
    SchedulerConfig c = warmup_cfg(SchedulerType::warmup_decay_lr, 10, WarmupType::linear, 0.1, 0.2);
    c.total_num_steps = 5;
    LrSchedule s(c);
    assert_int_equal(s.warnings().size(), 2);
    assert_string_equal(s.warnings()[0].c_str(), "Attempting to get learning rate from scheduler before it has started");
    assert_string_equal(s.warnings()[1].c_str(), "total_num_steps 5 is less than warmup_num_steps 10");
    assert_near(lr(s, 9), 0.19);
    assert_exact(lr(s, 10), 0.1);
    /* N = 1 => N' = 2 > T = 1: compared against N', printed with N */
    SchedulerConfig one = warmup_cfg(SchedulerType::warmup_decay_lr, 1, WarmupType::log, 0.0, 0.1);
    one.total_num_steps = 1;
    LrSchedule s1(one);
    assert_int_equal(s1.warnings().size(), 2);
    assert_string_equal(s1.warnings()[1].c_str(), "total_num_steps 1 is less than warmup_num_steps 1");
}

/* ---- WarmupCosineLR ---- */

static double cosine_ratio(int64_t t, int64_t n, int64_t total, double cmin) {
    double p = double(t - n + 1) / double(std::max<int64_t>(1, total - n));
    if (p > 1) p = 1;
    double r = cmin + (1 - cmin) * 0.5 * (1 + std::cos(M_PI * p));
    return r < 0 ? 0 : r;
}

static void test_warmup_cosine_lr(void **) {
    const double base = 0.002, wmin = 0.2, cmin = 0.1;
    LrSchedule s(cosine_cfg(110, 10, cmin, wmin));
    assert_exact(lr(s, -1, base), 0.0); /* construction sets lr to 0 */
    assert_near(lr(s, 0, base), base * wmin);
    assert_near(lr(s, 4, base), base * (wmin + (1 - wmin) * std::log(5.0) / std::log(10.0)));
    assert_near(lr(s, 9, base), base); /* N'-1 */
    assert_near(lr(s, 10, base), base * cosine_ratio(10, 10, 110, cmin));
    assert_near(lr(s, 59, base), base * 0.55);   /* p = 1/2: cmin + (1-cmin)/2 */
    assert_near(lr(s, 34, base), base * (cmin + (1 - cmin) * 0.5 * (1 + std::sqrt(0.5)))); /* p = 1/4 */
    assert_near(lr(s, 109, base), base * cmin); /* the end, p = 1 */
    /* the ratio scales whatever base the group has */
    assert_near(lr(s, 59, 0.004), 0.004 * 0.55);
    assert_false(s.at(3, base).has_momentum);
}

static void test_warmup_cosine_lr_linear(void **) {
    SchedulerConfig c = cosine_cfg(100, 10, 0.0, 0.5);
    c.warmup_type = WarmupType::linear;
    LrSchedule s(c);
    for (int t = 0; t < 10; ++t) assert_near(lr(s, t, 1.0), 0.5 + 0.5 * t / 10.0);
}

/* v0.19: progress is clamped to 1, so the ratio stays at cos_min_ratio. */
static void test_warmup_cosine_lr_clamped(void **) {
    const double cmin = 0.1;
    LrSchedule s(cosine_cfg(110, 10, cmin, 0.0));
    for (int64_t t : {109, 110, 150, 209, 10000}) assert_near(lr(s, t, 1.0), cmin);
    /* unclamped, t = 150 would give p = 1.41 and a ratio back up above cmin */
    assert_true(cosine_ratio(150, 10, 1000000, cmin) > cmin);
    /* total == warmup: no decay window, every post-warmup step at the floor */
    LrSchedule eq(cosine_cfg(10, 10, 0.25, 0.0));
    for (int64_t t = 10; t < 15; ++t) assert_near(lr(eq, t, 1.0), 0.25);
    /* max(0, ...): a negative cos_min_ratio floors at 0 */
    LrSchedule neg(cosine_cfg(20, 10, -0.5, 0.0));
    assert_exact(lr(neg, 19, 1.0), 0.0);
    assert_near(lr(neg, 14, 1.0), -0.5 + 1.5 * 0.5 * (1 + std::cos(M_PI * 0.5)));
}

/* ---- OneCycle ---- */

/* fs = 10, ss = 30: total 40, ratio 1/4; b = t + 1. Rising: scale = b/fs; falling: (40-b)/30. */
static void test_one_cycle_halves(void **) {
    SchedulerConfig c = one_cycle_cfg(0.01, 0.11, 10, 30);
    c.cycle_momentum = false;
    LrSchedule s(c);
    auto want = [](int64_t t) {
        const int64_t b = t + 1;
        const double scale = b <= 10 ? b / 10.0 : (40 - b) / 30.0;
        return 0.01 + 0.1 * scale;
    };
    assert_exact(lr(s, -1), 0.01);
    assert_near(lr(s, 0), 0.02);
    assert_near(lr(s, 4), 0.06);
    assert_near(lr(s, 8), 0.10);
    assert_near(lr(s, 9), 0.11);           /* peak at t = fs - 1 */
    assert_near(lr(s, 10), 0.01 + 0.1 * 29 / 30);
    assert_near(lr(s, 24), 0.06);
    assert_near(lr(s, 38), 0.01 + 0.1 / 30);
    assert_near(lr(s, 39), 0.01);          /* b = total: back at the bottom */
    for (int64_t t = 0; t < 40; ++t) assert_near(lr(s, t), want(t));
    assert_exact(lr(s, 40), 0.01);         /* decay phase, no decay configured */
    assert_exact(lr(s, 1000), 0.01);
    assert_false(s.at(3, 0.5).has_momentum);
}

/* Stairs: 2 on the rising half (fs = 10), 3 on the falling half (ss = 30).
 * rising  ci = b: floor(2 ci / 10) / 2  -> 0 for b 0..4, 1/2 for 5..9, 1 at 10;
 * falling: floor(3 (40 - ci) / 30) / 3  -> 2/3 for b 11..20, 1/3 for 21..30, 0 for 31..39. */
static void test_one_cycle_stairs(void **) {
    SchedulerConfig c = one_cycle_cfg(0.01, 0.11, 10, 30);
    c.cycle_first_stair_count = 2;
    c.cycle_second_stair_count = 3;
    LrSchedule s(c);
    auto scale = [](int64_t b) {
        if (b <= 4) return 0.0;
        if (b <= 9) return 0.5;
        if (b == 10) return 1.0;
        if (b <= 20) return 2.0 / 3;
        if (b <= 30) return 1.0 / 3;
        return 0.0;
    };
    for (int64_t t = 0; t < 40; ++t) {
        assert_near(lr(s, t), 0.01 + 0.1 * scale(t + 1));
        assert_near(mom(s, t), 0.9 - 0.1 * scale(t + 1));
    }
    assert_near(lr(s, 3), 0.01);
    assert_near(lr(s, 4), 0.06);
    assert_near(lr(s, 9), 0.11);
    assert_near(lr(s, 19), 0.01 + 0.1 * 2 / 3);
    assert_near(lr(s, 20), 0.01 + 0.1 / 3);
    assert_near(lr(s, 30), 0.01);
}

/* cycle_second_step_size and cycle_second_stair_count of -1 mean "same as first". */
static void test_one_cycle_second_defaults(void **) {
    SchedulerConfig d = one_cycle_cfg(0.001, 0.01, 4, -1);
    d.cycle_first_stair_count = 2;
    d.cycle_second_stair_count = -1;
    SchedulerConfig e = one_cycle_cfg(0.001, 0.01, 4, 4);
    e.cycle_first_stair_count = 2;
    e.cycle_second_stair_count = 2;
    LrSchedule sd(d), se(e);
    for (int64_t t = -1; t < 12; ++t) {
        assert_exact(lr(sd, t), lr(se, t));
        assert_exact(mom(sd, t), mom(se, t));
    }
    /* and the second half really has stairs: b = 5, 6 -> floor(2*3/4)/2, floor(2*2/4)/2 */
    assert_near(lr(sd, 4), 0.001 + 0.009 * 0.5);
    assert_near(lr(sd, 5), 0.001 + 0.009 * 0.5);
    assert_near(lr(sd, 6), 0.001);
}

static void test_one_cycle_decay(void **) {
    /* total 8; decay phase t >= 8 with d = t - 7 */
    SchedulerConfig c = one_cycle_cfg(0.01, 0.1, 4, 4);
    c.decay_lr_rate = 0.5;
    c.decay_step_size = 4;
    LrSchedule s(c);
    assert_near(lr(s, 7), 0.01);                      /* b = total: bottom of the cycle */
    assert_near(lr(s, 8), 0.01 / (1 + 0.5 * 0.25));   /* d = 1 */
    assert_near(lr(s, 11), 0.01 / 1.5);               /* d = 4 */
    assert_near(lr(s, 15), 0.005);                    /* d = 8 */
    assert_near(lr(s, 1007), 0.01 / (1 + 0.5 * 250)); /* d = 1000 */
    /* no decay_step_size: min lr forever, even with a rate */
    c.decay_step_size = 0;
    LrSchedule nostep(c);
    for (int64_t t : {8, 9, 100}) assert_exact(lr(nostep, t), 0.01);
    /* no rate: min lr forever */
    c.decay_step_size = 4;
    c.decay_lr_rate = 0;
    LrSchedule norate(c);
    for (int64_t t : {8, 9, 100}) assert_exact(lr(norate, t), 0.01);
}

static void test_one_cycle_momentum(void **) {
    SchedulerConfig c = one_cycle_cfg(0.01, 0.11, 10, 30);
    c.cycle_min_mom = 0.85;
    c.cycle_max_mom = 0.95;
    LrSchedule s(c);
    ScheduleValue v0 = s.at(-1, 0.5); /* construction: (min_mom, 0.99) */
    assert_true(v0.has_momentum);
    assert_exact(v0.beta1, 0.85);
    assert_exact(v0.beta2, 0.99);
    assert_near(mom(s, 0), 0.95 - 0.1 * 0.1);
    assert_near(mom(s, 4), 0.90);
    assert_near(mom(s, 9), 0.85);  /* lr peak = momentum trough */
    assert_near(mom(s, 24), 0.90);
    assert_near(mom(s, 39), 0.95);
    assert_exact(s.at(20, 0.5).beta2, 0.99); /* beta2 forced to 0.99 throughout */
    assert_exact(s.at(40, 0.5).beta2, 0.99);
    assert_exact(mom(s, 40), 0.95); /* decay phase without decay: max_mom */
    assert_exact(mom(s, 500), 0.95);

    /* decay momentum *grows*: max_mom * (1 + rate * d / step) */
    c.decay_step_size = 5;
    c.decay_mom_rate = 0.1;
    LrSchedule g(c);
    assert_near(mom(g, 40), 0.95 * (1 + 0.1 * 0.2)); /* d = 1 */
    assert_near(mom(g, 49), 0.95 * 1.2);             /* d = 10 */
    assert_true(mom(g, 100) > 1.0);                  /* d = 61: 0.95 * 2.22 */
    assert_exact(lr(g, 100), 0.01);                  /* lr stays at min: decay_lr_rate is 0 */
    c.decay_step_size = 0;                           /* no step size: no momentum decay either */
    LrSchedule n(c);
    assert_exact(mom(n, 100), 0.95);

    c.cycle_momentum = false;
    LrSchedule off(c);
    for (int64_t t : {-1, 0, 9, 50}) assert_false(off.at(t, 0.5).has_momentum);
}

/* ---- LRRangeTest ---- */

static void test_lr_range_test(void **) {
    LrSchedule s(range_cfg(0.001, 0.5, 10, false));
    assert_exact(lr(s, -1), 0.001);
    assert_near(lr(s, 0), 0.001 * (1 + 0.5 * 0.1));
    assert_near(lr(s, 4), 0.001 * 1.25);
    assert_near(lr(s, 19), 0.002);
    assert_near(lr(s, 999), 0.001 * 51);
    LrSchedule st(range_cfg(0.001, 0.5, 10, true));
    assert_exact(lr(st, -1), 0.001);
    assert_exact(lr(st, 8), 0.001);
    assert_near(lr(st, 9), 0.0015);
    assert_near(lr(st, 18), 0.0015);
    assert_near(lr(st, 19), 0.002);
    assert_near(lr(st, 1000), 0.001 * 51);
    assert_exact(lr(s, 5, 123.0), lr(s, 5, 0.5)); /* ignores the group's lr */
}

/* ---- validation and warnings ---- */

static void test_validation_errors(void **) {
    for (SchedulerType type : {SchedulerType::warmup_lr, SchedulerType::warmup_decay_lr, SchedulerType::warmup_cosine_lr}) {
        for (int64_t bad : {0, -5}) {
            SchedulerConfig c = warmup_cfg(type, bad, WarmupType::log, 0, 0.1);
            c.total_num_steps = 100;
            std::string m = config_error(c);
            assert_string_equal(m.c_str(), bad == 0
                ? "scheduler.params.warmup_num_steps: must be a positive integer, got 0"
                : "scheduler.params.warmup_num_steps: must be a positive integer, got -5");
        }
    }
    /* (first, second) pairs from DeepSpeed's test; its (100, None=-1) is our "same as first" */
    struct { int64_t first, second; const char *msg; } bad[] = {
        {0, 0, "scheduler.params.cycle_first_step_size: must be positive, got 0"},
        {0, -1, "scheduler.params.cycle_first_step_size: must be positive, got 0"},
        {-1, -1, "scheduler.params.cycle_first_step_size: must be positive, got -1"},
        {0, 100, "scheduler.params.cycle_first_step_size: must be positive, got 0"},
        {100, -2, "scheduler.params.cycle_second_step_size: must be non-negative, got -2"},
    };
    for (auto &b : bad) {
        std::string m = config_error(one_cycle_cfg(0.001, 0.1, b.first, b.second));
        assert_string_equal(m.c_str(), b.msg);
    }
    for (int64_t size : {0, -5}) {
        std::string m = config_error(range_cfg(1e-3, 1, size, false));
        assert_contains(m, "scheduler.params.lr_range_test_step_size: must be a positive integer, got ");
    }
    /* other schedules do not look at fields they do not use */
    SchedulerConfig c = one_cycle_cfg(0.001, 0.1, 5, 5);
    c.warmup_num_steps = 0;
    c.lr_range_test_step_size = 0;
    LrSchedule ok(c);
    (void)ok;
}

static void test_warnings(void **) {
    const char *started = "Attempting to get learning rate from scheduler before it has started";
    LrSchedule w(warmup_cfg(SchedulerType::warmup_lr, 10, WarmupType::log, 0, 0.1));
    assert_int_equal(w.warnings().size(), 1);
    assert_string_equal(w.warnings()[0].c_str(), started);
    SchedulerConfig resumed = warmup_cfg(SchedulerType::warmup_lr, 10, WarmupType::log, 0, 0.1);
    resumed.last_batch_iteration = 5; /* DeepSpeed does not read the lr at construction then */
    assert_true(LrSchedule(resumed).warnings().empty());
    /* WarmupCosineLR checks the total before it reads the lr */
    LrSchedule cs(cosine_cfg(3, 10, 0.1, 0.0));
    assert_int_equal(cs.warnings().size(), 2);
    assert_string_equal(cs.warnings()[0].c_str(), "total_num_steps 3 is less than warmup_num_steps 10");
    assert_string_equal(cs.warnings()[1].c_str(), started);
    assert_true(LrSchedule(one_cycle_cfg(0.1, 1, 5, 5)).warnings().empty());
    assert_true(LrSchedule(range_cfg(0.1, 1, 5, false)).warnings().empty());
}

/* ---- DeepSpeed's test_lr_schedulers.py ---- */

/* TestLrSchedule.test_lr_warmup_schedule / test_lr_warmup_decay_schedule:
 * min 0.1, max 0.2, N in {10, 15, 19, 33}, log and linear; lrs read after each step. */
static void test_ds_warmup_schedules(void **) {
    for (int64_t n : {10, 15, 19, 33}) {
        for (WarmupType wt : {WarmupType::log, WarmupType::linear}) {
            LrSchedule w(warmup_cfg(SchedulerType::warmup_lr, n, wt, 0.1, 0.2));
            std::vector<double> v = after_steps(w, int(2 * n));
            assert_exact(v[0], 0.1);
            for (size_t i = size_t(n); i < v.size(); ++i) assert_exact(v[i], 0.2);

            SchedulerConfig c = warmup_cfg(SchedulerType::warmup_decay_lr, n, wt, 0.1, 0.2);
            c.total_num_steps = 2 * n;
            LrSchedule d(c);
            v = after_steps(d, int(2 * n));
            assert_exact(v[0], 0.1);
            assert_exact(v[size_t(n)], 0.2);
            assert_decreasing(v, size_t(n), v.size());
        }
    }
}

/* TestLrRange: lrs read before each step; max(25, step_size) steps. */
static void test_ds_lr_range(void **) {
    struct { double min, rate; int64_t size; bool stair; } cases[] = {
        {1e-4, 1e-5, 1, true}, {1e-5, 1e-5, 1, false}, {1e-4, 1e-3, 10, true},
        {1e-3, 1e-3, 10, false}, {1e-2, 1e-2, 19, true}, {1e-2, 1e-2, 19, false},
    };
    for (auto &k : cases) {
        LrSchedule s(range_cfg(k.min, k.rate, k.size, k.stair));
        std::vector<double> v = before_steps(s, int(std::max<int64_t>(25, k.size)));
        assert_exact(v[0], k.min);
        if (k.stair) {
            for (size_t i = 0; i < v.size(); i += size_t(k.size))
                for (size_t j = i; j < std::min(v.size(), i + size_t(k.size)); ++j) assert_exact(v[j], v[i]);
        } else {
            assert_increasing(v, 0, v.size());
        }
    }
}

/* TestOneCycle.test_lr: lrs read before each step. */
static void test_ds_one_cycle_lr(void **) {
    struct { double min, max, rate; int64_t cs, ds; } cases[] = {
        {1e-5, 1e-2, 1e-3, 10, 10}, {1e-3, 1e-1, 0, 21, 21}, {1e-3, 1e-1, 1e-1, 21, 21}, {1e-5, 1e-1, 0, 10, 0},
    };
    for (auto &k : cases) {
        SchedulerConfig c = one_cycle_cfg(k.min, k.max, k.cs, -1);
        c.decay_lr_rate = k.rate;
        c.decay_step_size = k.ds;
        LrSchedule s(c);
        const size_t cs = size_t(k.cs);
        std::vector<double> v = before_steps(s, int(std::max<int64_t>(25, 3 * k.cs / 2 + 1)));
        assert_exact(v[0], k.min);
        assert_exact(v[cs], k.max);
        assert_increasing(v, 0, cs);
        assert_decreasing(v, cs, 2 * cs);
        if (k.rate > 0) {
            std::vector<double> tail = before_steps(s, int(4 * cs));
            assert_decreasing(tail, 2 * cs, tail.size());
        }
    }
}

/* TestOneCycle.test_mom: get_mom() before each step. DeepSpeed's get_mom() at
 * t = -1 is the formula (max_mom) while the optimizer holds min_mom from the
 * constructor; at() models the optimizer, so the sequence is checked from t = 0. */
static void test_ds_one_cycle_mom(void **) {
    struct { double min, max, rate; int64_t size; } cases[] = {{0.08, 0.09, 1e-3, 10}, {0.08, 0.09, 0, 21}};
    for (auto &k : cases) {
        SchedulerConfig c = one_cycle_cfg(1e-3, 1e-2, k.size, -1);
        c.cycle_min_mom = k.min;
        c.cycle_max_mom = k.max;
        c.decay_mom_rate = k.rate;
        c.decay_step_size = k.size;
        LrSchedule s(c);
        const size_t n = size_t(k.size);
        std::vector<double> m;
        for (size_t i = 0; i < 4 * n; ++i) m.push_back(mom(s, int64_t(i) - 1));
        assert_exact(m[0], k.min);  /* construction */
        assert_exact(m[n], k.min);  /* peak lr: minimum momentum */
        assert_decreasing(m, 1, n);
        assert_increasing(m, n, 2 * n);
        if (k.rate > 0) assert_increasing(m, 2 * n, m.size());
    }
}

/* TestWarmupCosineLR.test_lr: opt lr 0.0015, lrs read after each step. */
static void test_ds_warmup_cosine(void **) {
    struct { int64_t total, n; double cmin, wmin; } cases[] = {
        {100, 10, 0.1, 0.2}, {200, 20, 0.1, 0.2}, {500, 30, 0.0, 0.2}, {600, 300, 0.1, 0.0}, {600, 550, 0.0, 0.0},
    };
    const double opt = 0.0015;
    for (auto &k : cases) {
        LrSchedule s(cosine_cfg(k.total, k.n, k.cmin, k.wmin));
        std::vector<double> v = after_steps(s, int(k.total), opt);
        assert_true(std::fabs(v[0] - opt * k.wmin) < 1e-7);
        assert_true(std::fabs(v[size_t(k.n) - 1] - opt) < 1e-7);
        assert_true(std::fabs(v[size_t(k.total) - 1] - opt * k.cmin) < 1e-7);
        assert_increasing(v, 0, size_t(k.n));
        assert_decreasing(v, size_t(k.n), size_t(k.total));
    }
    /* test_warmup_cosine_lr_initializes_all_param_groups */
    LrSchedule g(cosine_cfg(100, 10, 1e-4, 0.0));
    assert_exact(lr(g, -1, 0.0015), 0.0);
    assert_exact(lr(g, -1, 0.003), 0.0);
    assert_approx(lr(g, 1, 0.0015), 0.0015 * std::log(2.0) / std::log(10.0), 1e-6);
    assert_approx(lr(g, 1, 0.003), 0.003 * std::log(2.0) / std::log(10.0), 1e-6);
    /* test_warmup_cosine_lr_total_num_steps_equals_warmup_num_steps */
    LrSchedule eq(cosine_cfg(10, 10, 0.1, 0.0));
    for (int64_t t = 10; t < 15; ++t) assert_approx(lr(eq, t, 0.01), 0.01 * 0.1, 1e-6);
    /* test_warmup_cosine_lr_linear_warmup_type_produces_linear_ratios */
    SchedulerConfig lin = cosine_cfg(100, 10, 1e-4, 0.0);
    lin.warmup_type = WarmupType::linear;
    LrSchedule l(lin);
    for (int64_t t = 0; t < 10; ++t) assert_approx(lr(l, t, 0.001), 0.001 * t / 10.0, 1e-6);
}

/* test_lr_scheduler_preserves_tensor_lr: values at construction and after step(1), optimizer lr 0.1. */
static void test_ds_construction_and_step1(void **) {
    const double l = std::log(2.0) / std::log(10.0);
    LrSchedule r(range_cfg(1e-3, 1.0, 2000, false));
    assert_approx(lr(r, -1, 0.1), 1e-3, 1e-6);
    assert_approx(lr(r, 1, 0.1), 1e-3 * (1 + 2.0 / 2000), 1e-6);
    SchedulerConfig oc = one_cycle_cfg(0.01, 0.1, 10, 10);
    oc.cycle_momentum = false;
    LrSchedule o(oc);
    assert_approx(lr(o, -1, 0.1), 0.01, 1e-6);
    assert_approx(lr(o, 1, 0.1), 0.01 + (0.1 - 0.01) * 2 / 10, 1e-6);
    SchedulerConfig wc = warmup_cfg(SchedulerType::warmup_lr, 10, WarmupType::log, 0.0, 0);
    wc.has_warmup_max_lr = false;
    LrSchedule w(wc);
    assert_approx(lr(w, -1, 0.1), 0.0, 1e-6);
    assert_approx(lr(w, 1, 0.1), 0.1 * l, 1e-6);
    SchedulerConfig dc = warmup_cfg(SchedulerType::warmup_decay_lr, 10, WarmupType::log, 0.0, 0.1);
    dc.total_num_steps = 100;
    LrSchedule d(dc);
    assert_approx(lr(d, -1, 0.1), 0.0, 1e-6);
    assert_approx(lr(d, 1, 0.1), 0.1 * l, 1e-6);
    LrSchedule c(cosine_cfg(100, 10, 1e-4, 0.0));
    assert_approx(lr(c, -1, 0.1), 0.0, 1e-6);
    assert_approx(lr(c, 1, 0.1), 0.1 * l, 1e-6);
    /* test_warmup_lr_inherits_per_group_lr_when_max_unspecified */
    assert_approx(lr(w, 10, 0.1), 0.1, 1e-6);
    assert_approx(lr(w, 10, 0.2), 0.2, 1e-6);
}

/* _one_cycle_lrs(): min 0.001, max 0.01, lrs read after each step. */
static std::vector<double> ds_one_cycle_lrs(int64_t first_stairs, int steps = 16, int64_t fs = 8, int64_t ss = 8,
                                            int64_t second_stairs = -1) {
    SchedulerConfig c = one_cycle_cfg(0.001, 0.01, fs, ss);
    c.cycle_first_stair_count = first_stairs;
    c.cycle_second_stair_count = second_stairs;
    return after_steps(LrSchedule(c), steps);
}

static size_t distinct(const std::vector<double> &v, size_t n) { return std::set<double>(v.begin(), v.begin() + n).size(); }

static void test_ds_one_cycle_stair_counts(void **) {
    /* test_one_cycle_stair_count_holds_lr_flat */
    std::vector<double> cont = ds_one_cycle_lrs(0);
    assert_int_equal(distinct(cont, 8), 8);
    std::vector<double> stairs = ds_one_cycle_lrs(2);
    assert_true(stairs != cont);
    assert_true(distinct(stairs, 8) < distinct(cont, 8));
    assert_exact(stairs[0], stairs[1]);
    assert_true(ds_one_cycle_lrs(8) == cont); /* bit-identical */

    /* test_one_cycle_stair_count_handles_asymmetric_cycle */
    std::vector<double> c2 = ds_one_cycle_lrs(0, 31, 10, 21, 0);
    std::vector<double> aligned = ds_one_cycle_lrs(10, 31, 10, 21, 21);
    for (size_t i = 0; i < c2.size(); ++i) assert_approx(aligned[i], c2[i], 1e-6);
    assert_approx(aligned[9], 0.01, 1e-6);
    std::vector<double> first_only = ds_one_cycle_lrs(2, 31, 10, 21, 0);
    std::vector<double> second_only = ds_one_cycle_lrs(0, 31, 10, 21, 3);
    assert_true(std::vector<double>(first_only.begin(), first_only.begin() + 10) !=
                std::vector<double>(c2.begin(), c2.begin() + 10));
    assert_true(std::vector<double>(first_only.begin() + 10, first_only.end()) ==
                std::vector<double>(c2.begin() + 10, c2.end()));
    assert_true(std::vector<double>(second_only.begin(), second_only.begin() + 10) ==
                std::vector<double>(c2.begin(), c2.begin() + 10));
    assert_true(std::vector<double>(second_only.begin() + 10, second_only.begin() + 30) !=
                std::vector<double>(c2.begin() + 10, c2.begin() + 30));

    /* test_one_cycle_allows_zero_second_step_size */
    LrSchedule z(one_cycle_cfg(0.001, 0.1, 100, 0));
    assert_approx(lr(z, -1), 0.001, 1e-6);
    assert_true(lr(z, 2) > 0.001);
}

/* test_cycle_momentum_flag_decides_whether_betas_move (min 0.80, max 0.99, fs 4). */
static void test_ds_cycle_momentum_flag(void **) {
    SchedulerConfig c = one_cycle_cfg(1e-4, 1e-3, 4, -1);
    c.cycle_min_mom = 0.80;
    c.cycle_max_mom = 0.99;
    LrSchedule on(c);
    std::set<double> seen{mom(on, -1)};
    for (int64_t t = 0; t < 4; ++t) seen.insert(mom(on, t));
    assert_true(seen.size() > 1);
    c.cycle_momentum = false;
    LrSchedule off(c);
    for (int64_t t = -1; t < 4; ++t) assert_false(off.at(t, 1e-3).has_momentum);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none_returns_base),
        cmocka_unit_test(test_warmup_lr_log),
        cmocka_unit_test(test_warmup_lr_linear),
        cmocka_unit_test(test_warmup_lr_one_step),
        cmocka_unit_test(test_warmup_lr_inherits_base_lr),
        cmocka_unit_test(test_warmup_decay_lr),
        cmocka_unit_test(test_warmup_decay_lr_linear),
        cmocka_unit_test(test_warmup_decay_lr_short_total),
        cmocka_unit_test(test_warmup_cosine_lr),
        cmocka_unit_test(test_warmup_cosine_lr_linear),
        cmocka_unit_test(test_warmup_cosine_lr_clamped),
        cmocka_unit_test(test_one_cycle_halves),
        cmocka_unit_test(test_one_cycle_stairs),
        cmocka_unit_test(test_one_cycle_second_defaults),
        cmocka_unit_test(test_one_cycle_decay),
        cmocka_unit_test(test_one_cycle_momentum),
        cmocka_unit_test(test_lr_range_test),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_ds_warmup_schedules),
        cmocka_unit_test(test_ds_lr_range),
        cmocka_unit_test(test_ds_one_cycle_lr),
        cmocka_unit_test(test_ds_one_cycle_mom),
        cmocka_unit_test(test_ds_warmup_cosine),
        cmocka_unit_test(test_ds_construction_and_step1),
        cmocka_unit_test(test_ds_one_cycle_stair_counts),
        cmocka_unit_test(test_ds_cycle_momentum_flag),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
