/*
 * precision.cpp -- the fp16 and bf16 sections (pydantic models in DeepSpeed:
 * unknown keys refused, values coerced laxly).
 *
 * Two decisions live here. min_loss_scale is an integer field in DeepSpeed,
 * which refuses 1e-08; dszero keeps the loss scale as a float, so a floor
 * below 1 means something, and it is accepted with a warning. The legacy
 * section name "bfloat16" is read when "bf16" is absent, as DeepSpeed does,
 * with a warning; giving both is refused instead of silently ignoring one.
 */
#include <cmath>

#include "common/error.h"
#include "config/parsers.h"

namespace dsz::cfg {

const std::vector<Field<Fp16Config>> &fp16_fields() {
    using F = Fp16Config;
    static const std::vector<Field<F>> fields = {
        flag("enabled", &F::enabled),
        flag("auto_cast", &F::auto_cast),
        integer("initial_scale_power", &F::initial_scale_power),
        integer("loss_scale_window", &F::loss_scale_window),
        integer("hysteresis", &F::hysteresis),
        flag("consecutive_hysteresis", &F::consecutive_hysteresis),
        flag("fp16_master_weights_and_grads", &F::fp16_master_weights_and_grads),
        number("loss_scale", &F::loss_scale),
        number("min_loss_scale", &F::min_loss_scale),
    };
    return fields;
}

const std::vector<Field<Bf16Config>> &bf16_fields() {
    using B = Bf16Config;
    static const std::vector<Field<B>> fields = {
        flag("enabled", &B::enabled),
        flag("immediate_grad_update", &B::immediate_grad_update),
        flag("check_grad_overflow", &B::check_grad_overflow),
        flag("bf16_master_weights_and_grads", &B::bf16_master_weights_and_grads),
        flag("bf16_optimizer_states", &B::bf16_optimizer_states),
    };
    return fields;
}

namespace {

void read_fp16(Section &top, Fp16Config &fp16) {
    Section s = top.object("fp16", Unknown::refuse, Typing::lax);
    s.set_unknown_note("DeepSpeed refuses unknown keys in fp16");
    read_fields(s, fp16, fp16_fields());
    s.finish();
    if (!s.present()) return;

    Context &ctx = s.ctx();
    if (fp16.loss_scale < 0)
        ctx.value_error(s.path() + ".loss_scale",
                        "must be >= 0 (0 selects dynamic loss scaling), got " +
                            strprintf("%g", fp16.loss_scale));
    if (fp16.loss_scale != 0) return;
    if (fp16.loss_scale_window <= 0)
        ctx.value_error(s.path() + ".loss_scale_window",
                        "must be > 0 with dynamic loss scaling, got " +
                            std::to_string(fp16.loss_scale_window));
    if (fp16.min_loss_scale <= 0)
        ctx.value_error(s.path() + ".min_loss_scale",
                        "must be > 0 with dynamic loss scaling, got " +
                            strprintf("%g", fp16.min_loss_scale));
    if (fp16.min_loss_scale != std::floor(fp16.min_loss_scale))
        ctx.warn(s.path() + ".min_loss_scale: " + strprintf("%g", fp16.min_loss_scale) +
                 " is accepted as a floating-point floor of the loss scale; DeepSpeed 0.19 types "
                 "this key "
                 "as an integer and would refuse the config");
}

void read_bf16(Section &top, Bf16Config &bf16) {
    Entry current = top.entry("bf16");
    Entry legacy = top.entry("bfloat16");
    if (current && legacy)
        top.ctx().value_error(
            "bfloat16",
            "deprecated name of \"bf16\", and \"bf16\" is given too; keep only \"bf16\"");
    if (legacy)
        top.ctx().warn(
            "bfloat16: deprecated section name, read as \"bf16\"; rename it to \"bf16\"");
    Section s = top.object(current ? current : legacy, Unknown::refuse, Typing::lax);
    s.set_unknown_note("DeepSpeed refuses unknown keys in bf16");
    read_fields(s, bf16, bf16_fields());
    s.finish();
}

}  // namespace

void read_precision(Section &top, Config &config) {
    read_fp16(top, config.fp16);
    read_bf16(top, config.bf16);
}

}  // namespace dsz::cfg
