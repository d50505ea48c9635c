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
    ScheduleValue at(int64_t t, double base_lr) const;
    const SchedulerConfig &config() const { return cfg_; }

private:
    SchedulerConfig cfg_;
};

}  // namespace dsz
