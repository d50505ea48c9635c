/*
 * validate.cpp -- checks that need more than one section (behaviour spec
 * §1.5, §1.8, §2, §4).
 *
 * Each refusal here is one DeepSpeed makes too, somewhere between reading
 * the config and building the engine; dszero makes it at parse time so the
 * message can name the key.
 */
#include "common/error.h"
#include "config/parsers.h"

namespace dsz::cfg {

namespace {

const char *dtype_name(ModelDtype d) {
    return d == ModelDtype::fp16 ? "fp16" : d == ModelDtype::bf16 ? "bf16" : "fp32";
}

/* fp16_master_weights_and_grads / bf16_master_weights_and_grads: ZeRO, and
 * at stages 1-2 only with CPU offload and DeepSpeed's CPU Adam. */
void check_low_precision_master(const char *path, const Config &c, const Context &ctx) {
    const ZeroConfig &z = c.zero;
    if (z.stage == 0) ctx.value_error(path, "needs ZeRO stage 1-3 (zero_optimization.stage is 0)");
    if (z.stage == 3) return;
    if (z.offload_optimizer.device == OffloadDevice::none)
        ctx.value_error(
            path, "at ZeRO stage " + std::to_string(z.stage) +
                      " needs zero_optimization.offload_optimizer (DeepSpeed's CPU Adam keeps the "
                      "optimizer states in fp32)");
    if (c.optimizer.type != OptimizerType::none &&
        (c.optimizer.type != OptimizerType::adam || c.optimizer.torch_adam))
        ctx.value_error(
            path,
            "at ZeRO stage " + std::to_string(z.stage) +
                " works only with DeepSpeed's CPU Adam (optimizer type Adam or AdamW), not \"" +
                c.optimizer.type_name + "\"");
}

void check_precision(const Config &c, const Context &ctx) {
    if (c.fp16.enabled && c.bf16.enabled)
        ctx.value_error("bf16.enabled",
                        "fp16 and bf16 cannot both be enabled (fp16.enabled is true too)");
    if (c.fp16.fp16_master_weights_and_grads)
        check_low_precision_master("fp16.fp16_master_weights_and_grads", c, ctx);
    if (c.bf16.bf16_master_weights_and_grads)
        check_low_precision_master("bf16.bf16_master_weights_and_grads", c, ctx);
    if (c.bf16.bf16_optimizer_states) {
        if (c.zero.stage == 0)
            ctx.value_error("bf16.bf16_optimizer_states",
                            "needs ZeRO stage 1-3 (zero_optimization.stage is 0)");
        if (!c.bf16.bf16_master_weights_and_grads)
            ctx.value_error("bf16.bf16_optimizer_states",
                            "needs bf16.bf16_master_weights_and_grads to be true");
    }
    if (c.zero.stage == 0 && !c.grad_accum_dtype.empty() &&
        c.grad_accum_dtype != dtype_name(c.model_dtype()))
        ctx.value_error(
            "data_types.grad_accum_dtype",
            "\"" + c.grad_accum_dtype + "\" with " + dtype_name(c.model_dtype()) +
                " parameters needs ZeRO stage 1-3; without ZeRO DeepSpeed 0.19 refuses this mix");
}

void check_optimizer(const Config &c, Context &ctx) {
    const OptimizerConfig &o = c.optimizer;
    const int stage = c.zero.stage;
    bool lamb = o.type == OptimizerType::lamb || o.type == OptimizerType::onebitlamb;
    if (lamb && c.fp16.loss_scale != 0)
        ctx.value_error("fp16.loss_scale",
                        strprintf("must be 0 (dynamic loss scaling) with the %s optimizer, got %g "
                                  "(DeepSpeed checks this even when fp16 is off)",
                                  o.type_name.c_str(), c.fp16.loss_scale));
    bool onebit = o.type == OptimizerType::onebitadam || o.type == OptimizerType::zerooneadam ||
                  o.type == OptimizerType::onebitlamb;
    if (onebit && stage > 0)
        ctx.value_error("optimizer.type",
                        "\"" + o.type_name + "\" cannot be used with ZeRO (stage " +
                            std::to_string(stage) + "); DeepSpeed refuses it too");
    bool untested = o.type == OptimizerType::lamb || o.type == OptimizerType::sgd;
    if (untested && stage > 0) {
        if (!c.zero_allow_untested_optimizer)
            ctx.value_error("optimizer.type",
                            "\"" + o.type_name +
                                "\" is not one of the optimizers DeepSpeed tests with ZeRO (Adam, "
                                "AdamW, Adagrad, Lion, Muon); set "
                                "\"zero_allow_untested_optimizer\": true to use it "
                                "with ZeRO stage " +
                                std::to_string(stage));
        ctx.warn("optimizer.type: \"" + o.type_name +
                 "\" with ZeRO is untested in DeepSpeed; proceeding because "
                 "zero_allow_untested_optimizer is true");
    }
    if (o.type == OptimizerType::muon && (stage == 1 || stage == 2) && c.zero.reduce_scatter &&
        c.zero.offload_optimizer.device != OffloadDevice::none)
        ctx.value_error("optimizer.type",
                        "Muon with reduce_scatter and optimizer offload at ZeRO stage " +
                            std::to_string(stage) +
                            " is refused by DeepSpeed; turn off "
                            "zero_optimization.reduce_scatter or the offload");
}

}  // namespace

void validate(const Config &c, Context &ctx) {
    check_precision(c, ctx);
    check_optimizer(c, ctx);
    if (c.gradient_allreduce_op == "sum" && c.zero.stage == 3)
        ctx.value_error("gradient_allreduce_op",
                        "\"sum\" is not supported with ZeRO stage 3 (DeepSpeed refuses it "
                        "too); use \"mean\"");
}

}  // namespace dsz::cfg
