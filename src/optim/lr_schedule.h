/*
 * lr_schedule.h -- DeepSpeed's LR schedules as pure functions of the step.
 *
 * A DeepSpeed scheduler's whole state is last_batch_iteration t (-1 before
 * the first step), so here a schedule is a function of (t, the group's base
 * lr); the engine keeps t, steps it only after updates that were not
 * skipped, and saves it in checkpoints. Formulas: reference §3 (v0.19).
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"

namespace dsz {

struct ScheduleValue {
    double lr;
    bool has_momentum;   /* OneCycle with cycle_momentum: betas = (beta1, beta2) */
    double beta1;
    double beta2;
};

class LrSchedule {
public:
    /* Validates the parameters; throws DSZ_ERR_CONFIG naming
     * "scheduler.params.<key>" on a bad value (§3). cfg.type may be none:
     * then at() returns the base lr unchanged. */
    explicit LrSchedule(const SchedulerConfig &cfg);
    /* t = -1 gives the values DeepSpeed writes at construction (OneCycle:
     * min lr and betas (cycle_min_mom, 0.99)); t >= 0 what step() writes. */
    ScheduleValue at(int64_t t, double base_lr) const;
    const SchedulerConfig &config() const { return cfg_; }
    /* WARNING lines DeepSpeed logs while constructing this schedule, in its
     * order, for the engine to log once (empty for most configs). */
    const std::vector<std::string> &warnings() const { return warnings_; }

private:
    SchedulerConfig cfg_;
    std::vector<std::string> warnings_;
};

}  // namespace dsz
