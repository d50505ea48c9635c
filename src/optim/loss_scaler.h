/*
 * loss_scaler.h -- DeepSpeed's fp16 loss scalers.
 *
 * Two variants exist in DeepSpeed and both are reproduced exactly:
 *   - with_hysteresis (ZeRO stages 1-3, reference §2.2): hysteresis,
 *     consecutive_hysteresis, and an error when an overflow hits the floor;
 *   - plain (stage 0 FP16 wrappers, §2.3): no hysteresis, never fails.
 * A static scale (fp16.loss_scale > 0) never changes. bf16 and fp32 use a
 * scaler with scale 1 that is never updated.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"

namespace dsz {

struct LossScalerState {
    double scale = 1;
    int64_t iter = 0;
    int64_t last_overflow = -1;
    int64_t hysteresis_left = 0;
};

class LossScaler {
public:
    LossScaler() = default;  /* scale 1, static */
    /* cfg.enabled false gives the default (scale 1, static). Throws
     * DSZ_ERR_CONFIG for a dynamic scale with loss_scale_window <= 0 or
     * min_loss_scale <= 0 (the parser refuses these first). */
    LossScaler(const Fp16Config &cfg, bool with_hysteresis);

    double scale() const { return st_.scale; }
    bool dynamic() const { return dynamic_; }
    bool with_hysteresis() const { return with_hysteresis_; }

    /* Called once per optimizer boundary with whether the gradients
     * overflowed. Throws DSZ_ERR_LOSS_SCALE with DeepSpeed's message when the
     * with_hysteresis variant must shrink a scale already at its minimum
     * (state is left as DeepSpeed leaves it: unchanged). */
    void update(bool overflow);
    /* DeepSpeed's INFO lines for the last update() (rank 0 only; empty when
     * it logs nothing), e.g. "[deepspeed] OVERFLOW! Rank 0 Skipping step.
     * Attempted loss scale: 65536, reducing to 32768". Cleared by update(). */
    const std::vector<std::string> &messages() const { return messages_; }

    const LossScalerState &state() const { return st_; }
    void restore(const LossScalerState &s) { st_ = s; }

private:
    LossScalerState st_;
    bool dynamic_ = false;
    bool with_hysteresis_ = false;
    int64_t window_ = 1000;
    int64_t hysteresis_cfg_ = 2;
    bool consecutive_ = false;
    double min_scale_ = 1;
    std::vector<std::string> messages_;
};

}  // namespace dsz
