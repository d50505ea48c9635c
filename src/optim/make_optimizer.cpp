/*
 * make_optimizer.cpp -- from an optimizer config section to an Optimizer.
 *
 * "adam" and "adamw" are one class (the config already resolved the
 * effective adam_w_mode); types dszero does not implement fail with
 * DSZ_ERR_UNSUPPORTED naming optimizer.type.
 */
#include "common/error.h"
#include "optim/optimizers.h"

namespace dsz {

static const char *type_label(const OptimizerConfig &cfg, const char *fallback) {
    return cfg.type_name.empty() ? fallback : cfg.type_name.c_str();
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig &cfg) {
    const char *unsupported = nullptr;
    switch (cfg.type) {
    case OptimizerType::adam: return make_adam(cfg);
    case OptimizerType::lamb: return make_lamb(cfg);
    case OptimizerType::lion: return make_lion(cfg);
    case OptimizerType::adagrad: return make_adagrad(cfg);
    case OptimizerType::sgd: return make_sgd(cfg);
    case OptimizerType::muon: unsupported = "Muon"; break;
    case OptimizerType::onebitadam: unsupported = "OneBitAdam"; break;
    case OptimizerType::zerooneadam: unsupported = "ZeroOneAdam"; break;
    case OptimizerType::onebitlamb: unsupported = "OneBitLamb"; break;
    case OptimizerType::none:
        fail(DSZ_ERR_CONFIG, "optimizer.type: no optimizer is configured, none can be built");
    }
    if (unsupported)
        fail(DSZ_ERR_UNSUPPORTED, "optimizer.type: %s is not supported by dszero yet",
             type_label(cfg, unsupported));
    fail(DSZ_ERR_INTERNAL, "optimizer.type: unknown type %d", static_cast<int>(cfg.type));
}

}  // namespace dsz
