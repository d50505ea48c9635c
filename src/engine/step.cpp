/*
 * step.cpp -- the optimizer boundary (DeepSpeed's engine.step()).
 *
 * Every gradient_accumulation_steps micro-batches: zero the gradients of
 * parameters that got none, compute the global gradient norm and overflow
 * flag in one pass (fixed chunk order, so the result is reproducible), let
 * the loss scaler react, and either skip (overflow) or unscale and clip in
 * one factor (reference §6), update the masters and the host's tensors,
 * and step the LR schedule. Then log like DeepSpeed.
 */
#include <cmath>
#include <vector>

#include "common/error.h"
#include "engine/engine.h"
#include "engine/param_swap.h"
#include "engine/swap_store.h"

namespace dsz {

static constexpr size_t kNormGrain = size_t(1) << 16;

static double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/* Sum of squares of this rank's partition of the reduced gradients, in
 * chunks counted from the partition's start, summed in order: the same
 * arithmetic at every stage, so the global norm is the same bits too.
 * Summed over the world, every element counts once: MoE expert groups are
 * partitioned over the expert-data-parallel group, and the ranks of an
 * expert-parallel group hold different experts. */
double Engine::grad_sumsq() {
    double total = 0;
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
        const GroupState &G = groups_[gi];
        const size_t P = layout_.groups[gi].partition;
        const size_t start = static_cast<size_t>(G.part) * P;
        const float *g = reduced_grad(G) + local_of(G, start);
        std::vector<double> partial(ThreadPool::chunk_count(P, kNormGrain), 0.0);
        pool_->parallel_for(P, kNormGrain, [&](size_t c, size_t b, size_t e) {
            /* Eight lanes added in a fixed order: vectorizable, and the same
             * bits whatever the thread count or stage. */
            double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            size_t i = b;
            for (; i + 8 <= e; i += 8)
                for (int l = 0; l < 8; ++l)
                    lane[l] += static_cast<double>(g[i + static_cast<size_t>(l)]) * static_cast<double>(g[i + static_cast<size_t>(l)]);
            for (; i < e; ++i) lane[0] += static_cast<double>(g[i]) * static_cast<double>(g[i]);
            partial[c] = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
        });
        for (double s : partial) total += s;
    }
    return total;
}

/* The settings of group G's update, for step G.step_count; the caller
 * points master, grad, states, spans and tensors at the data. */
UpdateArgs Engine::group_update_args(const GroupState &G, double grad_mul) const {
    UpdateArgs a{};
    a.grad_dtype = DType::f32;
    a.out_dtype = cfg_.model_dtype() == ModelDtype::fp16 ? DType::f16
                  : cfg_.model_dtype() == ModelDtype::bf16 ? DType::bf16 : DType::f32;
    a.grad_mul = grad_mul;
    a.hyper.lr = G.lr;
    a.hyper.weight_decay = G.weight_decay;
    a.hyper.beta1 = G.sched.has_momentum ? G.sched.beta1 : cfg_.optimizer.beta1;
    a.hyper.beta2 = G.sched.has_momentum ? G.sched.beta2 : cfg_.optimizer.beta2;
    a.hyper.step = G.step_count;
    a.pool = pool_.get();
    return a;
}

void Engine::apply_update(double grad_mul) {
    /* grad_mul already holds 1/world: the reduced gradients are sums. */
    if (swap_ || param_swap_) return apply_update_swapped(grad_mul);
    for (GroupState &G : groups_) {
        if (G.spans.empty()) continue;
        std::vector<float *> states;
        for (auto &s : G.states) states.push_back(s.data());
        ++G.step_count;
        UpdateArgs a = group_update_args(G, grad_mul);
        a.master = G.master.data();
        a.grad = reduced_grad(G);
        a.states = states.data();
        a.spans = &G.spans;
        a.tensors = &G.tensors;
        optimizer_->update(a);
    }
}

StepResult Engine::step() {
    require_registered("dsz_step");
    if (!backward_done_)
        fail(DSZ_ERR_STATE, "dsz_step before dsz_backward: hand the gradients over with dsz_grad_ready and end "
                            "the micro-batch with dsz_backward first");
    const bool boundary = (micro_steps_ + 1) % cfg_.gradient_accumulation_steps == 0;
    if (boundary && !optimizer_)
        fail(DSZ_ERR_STATE, "dsz_step: the config has no \"optimizer\" section, so there is nothing to update with");
    if (boundary && swap_) swap_->verify(); /* a damaged swap file fails the step before it changes anything */
    if (boundary && param_swap_) param_swap_->verify();
    const auto t0 = std::chrono::steady_clock::now();
    backward_done_ = false;
    ++micro_steps_;
    trace_micro_batch_end();
    struct CommWaitReport { /* whatever way step() ends, report and restart the count */
        StepTimers &t;
        ~CommWaitReport() { t.last_comm_wait = t.comm_wait; t.comm_wait = 0; }
    } report{timers_};
    StepResult r;
    r.boundary = boundary;
    if (!boundary) {
        timers_.step += ms_since(t0);
        log_timers(false);
        return r;
    }

    log_memory("Engine before step");
    zero_untouched_grads();
    reduce_at_boundary();
    /* Reduced gradients are sums over ranks: the average is sum / world. */
    const double inv_world = 1.0 / static_cast<double>(world_);
    const double sumsq = global_sumsq(grad_sumsq()) * inv_world * inv_world;
    timers_.norm = ms_since(t0);
    const bool check = cfg_.fp16.enabled || (cfg_.bf16.enabled && cfg_.bf16.check_grad_overflow && cfg_.zero.stage <= 2);
    const bool overflow = check && !std::isfinite(sumsq);
    const double scale = scaler_.scale();

    if (overflow) {
        clear_grads();
        ++global_steps_;
        ++skipped_steps_;
        global_samples_ += cfg_.train_batch_size;
        grad_norm_ = -1;
        r.skipped = true;
        if (cfg_.fp16.enabled) update_scaler(true); /* may throw DSZ_ERR_LOSS_SCALE: the skip is already done */
        else log_.info("Overflow detected (bf16 check_grad_overflow). Skipping step.");
        timers_.step += ms_since(t0);
        log_timers(true);
        return r;
    }
    if (cfg_.fp16.enabled) update_scaler(false);

    const double scaled_norm = std::sqrt(sumsq);
    grad_norm_ = std::isfinite(scaled_norm) ? scaled_norm / scale : -1.0;
    double combined = scale;
    const double clip = cfg_.gradient_clipping;
    if (clip > 0 && grad_norm_ >= 0) {
        const double factor = (scaled_norm / scale + 1e-6) / clip;
        if (factor > 1) combined = scale * factor;
    }
    const auto t1 = std::chrono::steady_clock::now();
    apply_update(inv_world / combined);
    publish_params();
    refresh_gathered();
    timers_.update = ms_since(t1);
    clear_grads();
    ++sched_t_;
    refresh_schedule();
    ++global_steps_;
    global_samples_ += cfg_.train_batch_size;
    r.stepped = true;
    note_memory();
    log_memory("Engine after step");
    timers_.step += ms_since(t0);
    log_progress();
    log_timers(true);
    return r;
}

void Engine::update_scaler(bool overflow) {
    try {
        scaler_.update(overflow);
    } catch (...) {
        for (const std::string &m : scaler_.messages()) log_.info(m);
        throw;
    }
    for (const std::string &m : scaler_.messages()) log_.info(m);
}

void Engine::log_progress() const {
    const int64_t every = cfg_.steps_per_print;
    if (every <= 0 || global_steps_ % every != 0 || !log_.enabled(DSZ_LOG_INFO)) return;
    std::string lr = "[", mom = "[";
    for (size_t g = 0; g < groups_.size(); ++g) {
        const GroupState &G = groups_[g];
        const char *sep = g ? ", " : "";
        lr += strprintf("%s%.10g", sep, G.lr);
        if (cfg_.optimizer.type == OptimizerType::sgd)
            mom += strprintf("%s%.10g", sep, cfg_.optimizer.momentum);
        else
            mom += strprintf("%s(%.10g, %.10g)", sep, G.sched.has_momentum ? G.sched.beta1 : cfg_.optimizer.beta1,
                             G.sched.has_momentum ? G.sched.beta2 : cfg_.optimizer.beta2);
    }
    log_.logf(DSZ_LOG_INFO, "step=%lld, skipped=%lld, lr=%s], mom=%s]", static_cast<long long>(global_steps_),
              static_cast<long long>(skipped_steps_), lr.c_str(), mom.c_str());
}

void Engine::log_timers(bool boundary) {
    timers_.win_grad_ready += timers_.grad_ready;
    timers_.win_backward += timers_.backward;
    timers_.win_step += timers_.step;
    if (cfg_.wall_clock_breakdown) {
        log_.logf(DSZ_LOG_INFO, "time (ms) | grad_ready_microstep: %.2f | backward_microstep: %.2f | step_microstep: %.2f",
                  timers_.grad_ready, timers_.backward, timers_.step);
        if (boundary)
            log_.logf(DSZ_LOG_INFO,
                      "time (ms) | grad_ready: %.2f | backward: %.2f | step: %.2f | optimizer_gradients: %.2f | "
                      "optimizer_step: %.2f",
                      timers_.win_grad_ready, timers_.win_backward, timers_.win_step, timers_.norm, timers_.update);
    }
    timers_.grad_ready = timers_.backward = timers_.step = 0;
    if (boundary) timers_.win_grad_ready = timers_.win_backward = timers_.win_step = 0;
}

}  // namespace dsz
