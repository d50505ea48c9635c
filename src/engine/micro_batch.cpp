/*
 * micro_batch.cpp -- gradients arriving during a micro-batch.
 *
 * dsz_grad_ready converts each gradient to fp32 and stores it into the
 * group's flat accumulator: the first gradient of a parameter in an
 * accumulation window is copied, later ones added, so no pass over memory
 * is spent zeroing. Parameters that got no gradient in a window are zeroed
 * at the boundary. The contract with the host: the gradient is consumed
 * when the call returns.
 */
#include <algorithm>

#include "common/error.h"
#include "engine/engine.h"
#include "tensor/convert.h"

namespace dsz {

static constexpr size_t kConvertGrain = size_t(1) << 17;

double Engine::loss_multiplier() const {
    return scaler_.scale() / static_cast<double>(cfg_.gradient_accumulation_steps);
}

void Engine::grad_ready(size_t index, const DLTensor *grad) {
    require_registered("dsz_grad_ready");
    if (index >= params_.size())
        fail(DSZ_ERR_INVALID_ARGUMENT, "dsz_grad_ready: parameter index %zu is out of range (%zu registered)", index,
             params_.size());
    ParamRecord &p = params_[index];
    if (backward_done_)
        fail(DSZ_ERR_STATE,
             "dsz_grad_ready for '%s' after dsz_backward: finish the micro-batch with dsz_step first",
             p.name.c_str());
    if (p.grad_in_micro)
        fail(DSZ_ERR_STATE, "the gradient of '%s' was already handed over in this micro-batch", p.name.c_str());
    const HostTensor g = check_host_tensor(grad, "gradient of '" + p.name + "'");
    if (g.dtype != p.host.dtype)
        fail(DSZ_ERR_DTYPE, "gradient of '%s' is %s, but the parameter is %s", p.name.c_str(), dtype_name(g.dtype),
             dtype_name(p.host.dtype));
    if (g.shape != p.host.shape)
        fail(DSZ_ERR_SHAPE, "gradient of '%s' has shape %s, but the parameter has shape %s", p.name.c_str(),
             shape_string(g.shape).c_str(), shape_string(p.host.shape).c_str());

    const auto t0 = std::chrono::steady_clock::now();
    const char *src = static_cast<const char *>(g.data);
    const bool first = !p.grad_in_window;
    p.grad_in_micro = p.grad_in_window = true;
    in_micro_ = true;
    if (cfg_.zero.stage >= 2) {
        bucket_grad(p, src, g.dtype);
        timers_.grad_ready += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        return;
    }
    float *dst = groups_[static_cast<size_t>(p.group)].grad.data() + p.offset;
    const size_t esize = dtype_size(g.dtype);
    pool_->parallel_for(g.numel, kConvertGrain, [&](size_t, size_t b, size_t e) {
        if (first)
            convert_to_f32(src + b * esize, g.dtype, dst + b, e - b);
        else
            accumulate_to_f32(src + b * esize, g.dtype, dst + b, e - b);
    });
    timers_.grad_ready += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void Engine::backward() {
    require_registered("dsz_backward");
    if (backward_done_)
        fail(DSZ_ERR_STATE, "dsz_backward called twice for one micro-batch: call dsz_step after each dsz_backward");
    const auto t0 = std::chrono::steady_clock::now();
    if (cfg_.zero.stage >= 2) finish_buckets();
    for (ParamRecord &p : params_) p.grad_in_micro = false;
    backward_done_ = true;
    in_micro_ = false;
    timers_.backward += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void Engine::zero_untouched_grads() {
    if (cfg_.zero.stage >= 2) return; /* buckets carry zeros for missing gradients */
    for (ParamRecord &p : params_) {
        if (p.grad_in_window) continue;
        float *g = groups_[static_cast<size_t>(p.group)].grad.data() + p.offset;
        std::fill(g, g + p.host.numel, 0.0f);
    }
}

void Engine::clear_grads() {
    for (ParamRecord &p : params_) p.grad_in_window = false;
    for (GroupState &G : groups_) G.grad_window = false;
}

}  // namespace dsz
