/*
 * optimizers.h -- constructors of the optimizers make_optimizer() chooses
 * from, one per file (adam.cpp, lamb.cpp, lion.cpp, adagrad.cpp, sgd.cpp).
 */
#pragma once

#include <memory>

#include "config/config.h"
#include "optim/optimizer.h"

namespace dsz {

std::unique_ptr<Optimizer> make_adam(const OptimizerConfig &cfg);
std::unique_ptr<Optimizer> make_lamb(const OptimizerConfig &cfg);
std::unique_ptr<Optimizer> make_lion(const OptimizerConfig &cfg);
std::unique_ptr<Optimizer> make_adagrad(const OptimizerConfig &cfg);
std::unique_ptr<Optimizer> make_sgd(const OptimizerConfig &cfg);

}  // namespace dsz
