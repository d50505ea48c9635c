/*
 * loss_scaler.cpp -- DeepSpeed's two fp16 loss-scale update rules
 * (reference §2.2 with hysteresis for ZeRO 1-3, §2.3 plain for stage 0).
 *
 * The scaler only decides the next scale; the engine detects the overflow,
 * skips the step and logs messages(). The lines are worded and formatted as
 * DeepSpeed prints them (int() of the scale in the ZeRO line, Python's float
 * repr in the stage-0 lines) so that logs can be compared with DeepSpeed's.
 */
#include "optim/loss_scaler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

namespace dsz {

namespace {

/* Python's int(x) for a finite double, as decimal text. */
std::string py_int(double x) { return strprintf("%.0f", std::trunc(x) + 0.0); }

/* Python's repr() of a float: the shortest digits that read back exactly,
 * positional for exponents -4..15 (with ".0" when integral), else d.ddde+XX. */
std::string py_float(double x) {
    if (std::isnan(x)) return "nan";
    if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
    if (x == 0) return std::signbit(x) ? "-0.0" : "0.0";
    char buf[40];
    for (int prec = 1; prec <= 17; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*e", prec - 1, x);
        if (std::strtod(buf, nullptr) == x) break;
    }
    std::string s(buf), sign;
    if (s[0] == '-') {
        sign = "-";
        s.erase(0, 1);
    }
    const size_t e = s.find('e');
    const int exp = std::atoi(s.c_str() + e + 1);
    std::string digits = s.substr(0, e);
    digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
    if (exp < -4 || exp >= 16) {
        std::string m = digits.substr(0, 1);
        if (digits.size() > 1) m += "." + digits.substr(1);
        return sign + m + strprintf("e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    }
    if (exp < 0) return sign + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    const size_t int_len = static_cast<size_t>(exp) + 1;
    if (digits.size() <= int_len) return sign + digits + std::string(int_len - digits.size(), '0') + ".0";
    return sign + digits.substr(0, int_len) + "." + digits.substr(int_len);
}

}  // namespace

LossScaler::LossScaler(const Fp16Config &cfg, bool with_hysteresis) : with_hysteresis_(with_hysteresis) {
    if (!cfg.enabled) return;
    st_.hysteresis_left = cfg.hysteresis;
    hysteresis_cfg_ = cfg.hysteresis;
    if (cfg.loss_scale > 0) {
        st_.scale = cfg.loss_scale;
        return;
    }
    if (cfg.loss_scale_window <= 0)
        fail(DSZ_ERR_CONFIG, "fp16.loss_scale_window: must be a positive integer, got %d", cfg.loss_scale_window);
    if (!(cfg.min_loss_scale > 0))
        fail(DSZ_ERR_CONFIG, "fp16.min_loss_scale: must be positive, got %g", cfg.min_loss_scale);
    dynamic_ = true;
    st_.scale = std::ldexp(1.0, cfg.initial_scale_power);
    window_ = cfg.loss_scale_window;
    consecutive_ = cfg.consecutive_hysteresis;
    min_scale_ = cfg.min_loss_scale;
}

void LossScaler::update(bool overflow) {
    messages_.clear();
    if (!dynamic_) {
        if (with_hysteresis_) return; /* ZeRO's static scaler does nothing at all */
        if (overflow) {
            messages_.push_back(strprintf("Grad overflow on iteration: %lld", static_cast<long long>(st_.iter)));
            messages_.push_back("Using static loss scale of: " + py_float(st_.scale));
        }
        st_.iter++;
        return;
    }

    const double prev = st_.scale;
    const int64_t stable = st_.iter - st_.last_overflow - 1;
    const bool grow = !overflow && stable > 0 && stable % window_ == 0;

    if (!with_hysteresis_) {
        if (overflow) {
            st_.scale = std::max(prev / 2, min_scale_);
            st_.last_overflow = st_.iter;
            messages_.push_back(strprintf("Grad overflow on iteration %lld", static_cast<long long>(st_.iter)));
            messages_.push_back("Reducing dynamic loss scale from " + py_float(prev) + " to " + py_float(st_.scale));
        } else if (grow) {
            st_.scale = prev * 2;
            messages_.push_back(strprintf("No Grad overflow for %lld iterations", static_cast<long long>(window_)));
            messages_.push_back("Increasing dynamic loss scale from " + py_float(prev) + " to " +
                                py_float(st_.scale));
        }
        st_.iter++;
        return;
    }

    const std::string head = "[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: " + py_int(prev);
    if (overflow) {
        if (hysteresis_cfg_ == 1 || st_.hysteresis_left == 1) {
            if (prev == min_scale_)
                fail(DSZ_ERR_LOSS_SCALE,
                     "Current loss scale already at minimum - cannot decrease scale anymore. Exiting run. "
                     "(loss scale %s, min_loss_scale %s)",
                     py_float(prev).c_str(), py_float(min_scale_).c_str());
            st_.scale = std::max(prev / 2, min_scale_);
            messages_.push_back(head + ", reducing to " + py_int(st_.scale));
        } else {
            messages_.push_back(head + strprintf(", but hysteresis is %lld. Reducing hysteresis to %lld",
                                                 static_cast<long long>(st_.hysteresis_left),
                                                 static_cast<long long>(st_.hysteresis_left - 1)));
            st_.hysteresis_left--;
        }
        st_.last_overflow = st_.iter;
    } else {
        if (consecutive_) {
            messages_.push_back(strprintf("Consecutive hysteresis is enabled. Restoring hysteresis to %lld",
                                          static_cast<long long>(hysteresis_cfg_)));
            st_.hysteresis_left = hysteresis_cfg_;
        }
        if (grow) {
            if (!consecutive_) st_.hysteresis_left = hysteresis_cfg_;
            st_.scale = prev * 2;
        }
    }
    st_.iter++;
}

}  // namespace dsz
