/*
 * lr_schedule.cpp -- DeepSpeed 0.19's LR schedules (reference §3) as pure
 * functions of last_batch_iteration t.
 *
 * The engine owns t and asks for the values to write into the optimizer;
 * nothing here has state beyond the validated config. Each formula keeps
 * DeepSpeed's order of floating-point operations so that the values are the
 * same doubles Python computes (its own tests compare some with ==).
 */
#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace dsz {

namespace {

constexpr double kPi = 3.14159265358979323846; /* Python's math.pi */
const char *kNotStarted = "Attempting to get learning rate from scheduler before it has started";

/* DeepSpeed's N' = max(2, warmup_num_steps). */
int64_t effective_warmup(const SchedulerConfig &c) { return std::max<int64_t>(2, c.warmup_num_steps); }

/* g(t) of the log/linear warmup, for t >= 0. */
double warmup_gamma(const SchedulerConfig &c, int64_t t) {
    const int64_t n = effective_warmup(c);
    if (t >= n) return 1.0;
    if (c.warmup_type == WarmupType::linear) return static_cast<double>(t) / static_cast<double>(n);
    const double inverse_log = 1.0 / std::log(static_cast<double>(n));
    return inverse_log * std::log(static_cast<double>(t + 1));
}

double warmup_max(const SchedulerConfig &c, double base_lr) {
    if (c.type == SchedulerType::warmup_lr && !c.has_warmup_max_lr) return base_lr;
    return c.warmup_max_lr;
}

double warmup_lr(const SchedulerConfig &c, int64_t t, double base_lr) {
    const double min = c.warmup_min_lr, delta = warmup_max(c, base_lr) - min;
    if (t < 0) return min;
    const int64_t n = effective_warmup(c);
    double gamma;
    if (c.type == SchedulerType::warmup_decay_lr && t >= n) {
        const double span = std::max(1.0, static_cast<double>(c.total_num_steps - n));
        gamma = std::max(0.0, static_cast<double>(c.total_num_steps - t) / span);
    } else {
        gamma = warmup_gamma(c, t);
    }
    return min + delta * gamma;
}

double warmup_cosine_lr(const SchedulerConfig &c, int64_t t, double base_lr) {
    if (t < 0) return 0.0;
    const int64_t n = effective_warmup(c);
    double ratio;
    if (t < n) {
        ratio = c.warmup_min_ratio + warmup_gamma(c, t) * (1.0 - c.warmup_min_ratio);
    } else {
        const double done = static_cast<double>(t - n + 1);
        const double span = static_cast<double>(std::max<int64_t>(1, c.total_num_steps - n));
        const double progress = std::min(1.0, done / span); /* v0.19: clamped */
        const double cosine = (1.0 + std::cos(kPi * progress)) / 2.0;
        ratio = std::max(0.0, c.cos_min_ratio + (1.0 - c.cos_min_ratio) * cosine);
    }
    return base_lr * ratio;
}

/* OneCycle. The half is chosen on the float cycle position x, as DeepSpeed
 * does; a stair count then quantises from the integer offset in the cycle
 * (v0.19.4), so an exact stair is never lost to rounding. */
ScheduleValue one_cycle(const SchedulerConfig &c, int64_t t) {
    const int64_t first = c.cycle_first_step_size;
    const int64_t second = c.cycle_second_step_size == -1 ? first : c.cycle_second_step_size;
    const int64_t first_stairs = c.cycle_first_stair_count;
    const int64_t second_stairs = c.cycle_second_stair_count == -1 ? first_stairs : c.cycle_second_stair_count;
    const int64_t total = first + second;
    const double total_d = static_cast<double>(total);
    const double ratio = static_cast<double>(first) / total_d;
    const double min_mom = c.cycle_min_mom, max_mom = c.cycle_max_mom;

    ScheduleValue v{c.cycle_min_lr, c.cycle_momentum, min_mom, 0.99};
    if (!c.cycle_momentum) v.beta1 = v.beta2 = 0;
    if (t == -1) return v; /* construction: min lr, betas (min_mom, 0.99) */

    if (t < total) {
        const int64_t b = t + 1; /* "one step ahead" */
        const double q = static_cast<double>(b) / total_d;
        const double x = 1.0 + q - std::floor(1.0 + q);
        double scale;
        int64_t stairs;
        if (x <= ratio) {
            scale = x / ratio;
            stairs = first_stairs;
        } else {
            scale = (x - 1.0) / (ratio - 1.0);
            stairs = second_stairs;
        }
        if (stairs > 0) {
            const int64_t ci = ((b % total) + total) % total;
            const double pos = ci <= first
                ? static_cast<double>(ci) * static_cast<double>(stairs) / static_cast<double>(first)
                : static_cast<double>(total - ci) * static_cast<double>(stairs) / static_cast<double>(second);
            scale = std::floor(pos) / static_cast<double>(stairs);
        }
        v.lr = c.cycle_min_lr + (c.cycle_max_lr - c.cycle_min_lr) * scale;
        if (c.cycle_momentum) v.beta1 = max_mom - (max_mom - min_mom) * scale;
        return v;
    }

    const int64_t d = t - total + 1;
    const bool no_decay = c.decay_step_size == 0;
    const double interval = no_decay ? 0.0 : static_cast<double>(d) / static_cast<double>(c.decay_step_size);
    if (!no_decay && c.decay_lr_rate != 0) v.lr = c.cycle_min_lr / (1.0 + c.decay_lr_rate * interval);
    if (c.cycle_momentum) {
        v.beta1 = max_mom;
        if (!no_decay && c.decay_mom_rate != 0) v.beta1 = max_mom * (1.0 + c.decay_mom_rate * interval);
    }
    return v;
}

double lr_range_test(const SchedulerConfig &c, int64_t t) {
    double interval = static_cast<double>(t + 1) / static_cast<double>(c.lr_range_test_step_size);
    if (c.lr_range_test_staircase) interval = std::floor(interval);
    return c.lr_range_test_min_lr * (1.0 + c.lr_range_test_step_rate * interval);
}

}  // namespace

LrSchedule::LrSchedule(const SchedulerConfig &cfg) : cfg_(cfg) {
    const auto &c = cfg_;
    const bool warmup_family = c.type == SchedulerType::warmup_lr || c.type == SchedulerType::warmup_decay_lr ||
                               c.type == SchedulerType::warmup_cosine_lr;
    if (warmup_family && c.warmup_num_steps <= 0)
        fail(DSZ_ERR_CONFIG, "scheduler.params.warmup_num_steps: must be a positive integer, got %lld",
             static_cast<long long>(c.warmup_num_steps));
    if (c.type == SchedulerType::one_cycle) {
        if (c.cycle_first_step_size <= 0)
            fail(DSZ_ERR_CONFIG, "scheduler.params.cycle_first_step_size: must be positive, got %lld",
                 static_cast<long long>(c.cycle_first_step_size));
        if (c.cycle_second_step_size < 0 && c.cycle_second_step_size != -1)
            fail(DSZ_ERR_CONFIG, "scheduler.params.cycle_second_step_size: must be non-negative, got %lld",
                 static_cast<long long>(c.cycle_second_step_size));
    }
    if (c.type == SchedulerType::lr_range_test && c.lr_range_test_step_size <= 0)
        fail(DSZ_ERR_CONFIG, "scheduler.params.lr_range_test_step_size: must be a positive integer, got %lld",
             static_cast<long long>(c.lr_range_test_step_size));

    /* The warnings DeepSpeed's constructors log, in their order: the warmup
     * family reads its lr at t = -1 while constructing (a warning), and the
     * two decaying ones check total_num_steps against N'. */
    const bool starts_fresh = c.last_batch_iteration == -1;
    const std::string short_total = strprintf("total_num_steps %lld is less than warmup_num_steps %lld",
                                              static_cast<long long>(c.total_num_steps),
                                              static_cast<long long>(c.warmup_num_steps));
    const bool total_short = c.total_num_steps < effective_warmup(c);
    switch (c.type) {
    case SchedulerType::warmup_lr:
        if (starts_fresh) warnings_.push_back(kNotStarted);
        break;
    case SchedulerType::warmup_decay_lr:
        if (starts_fresh) warnings_.push_back(kNotStarted);
        if (total_short) warnings_.push_back(short_total);
        break;
    case SchedulerType::warmup_cosine_lr:
        if (total_short) warnings_.push_back(short_total);
        if (starts_fresh) warnings_.push_back(kNotStarted);
        break;
    default:
        break;
    }
}

ScheduleValue LrSchedule::at(int64_t t, double base_lr) const {
    ScheduleValue v{base_lr, false, 0, 0};
    switch (cfg_.type) {
    case SchedulerType::none: break;
    case SchedulerType::warmup_lr:
    case SchedulerType::warmup_decay_lr: v.lr = warmup_lr(cfg_, t, base_lr); break;
    case SchedulerType::warmup_cosine_lr: v.lr = warmup_cosine_lr(cfg_, t, base_lr); break;
    case SchedulerType::one_cycle: v = one_cycle(cfg_, t); break;
    case SchedulerType::lr_range_test: v.lr = lr_range_test(cfg_, t); break;
    }
    return v;
}

}  // namespace dsz
