/*
 * adam.cpp -- Adam and AdamW as DeepSpeedCPUAdam computes them (§4.3).
 *
 * bc1 = 1-β1^k, bc2 = 1-β2^k (1 without bias correction); AdamW:
 * p = p·(1-lr·wd), then p -= lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps), which
 * is FusedAdam's p -= lr·((m/bc1)/(sqrt(v/bc2)+eps) + wd·p) (§4.2)
 * rearranged; L2 mode adds wd·p to the gradient before the moments. Weight
 * decay only when wd > 0. The constants are computed in double and rounded
 * to fp32 once; the element math is fp32 (kernel_body.h).
 */
#include <cmath>

#include "optim/optimizers.h"
#include "optim/pieces.h"

namespace dsz {
namespace {

class Adam final : public Optimizer {
public:
    explicit Adam(const OptimizerConfig &c)
        : eps_(c.eps), adamw_(c.adam_w_mode), bias_correction_(c.bias_correction) {}

    const char *name() const override { return adamw_ ? "adamw" : "adam"; }
    int state_count() const override { return 2; }
    const char *state_name(int i) const override { return i == 0 ? "exp_avg" : "exp_avg_sq"; }

    void update(const UpdateArgs &a) const override {
        check_update_args(a, 2, name());
        const StepHyper &h = a.hyper;
        const double k = static_cast<double>(h.step);
        const double bc1 = bias_correction_ ? 1.0 - std::pow(h.beta1, k) : 1.0;
        const double bc2 = bias_correction_ ? 1.0 - std::pow(h.beta2, k) : 1.0;
        const double wd = h.weight_decay > 0 ? h.weight_decay : 0.0;
        optk::AdamK K;
        K.gm = static_cast<float>(a.grad_mul);
        K.l2 = static_cast<float>(adamw_ ? 0.0 : wd);
        K.decay = static_cast<float>(adamw_ ? 1.0 - h.lr * wd : 1.0);
        K.b1 = static_cast<float>(h.beta1);
        K.omb1 = static_cast<float>(1.0 - h.beta1);
        K.b2 = static_cast<float>(h.beta2);
        K.omb2 = static_cast<float>(1.0 - h.beta2);
        K.step = static_cast<float>(-h.lr / bc1);
        K.rbc2 = static_cast<float>(1.0 / std::sqrt(bc2));
        K.eps = static_cast<float>(eps_);

        const optk::KernelTable &kt = optk::kernel_table();
        const int g = static_cast<int>(a.grad_dtype);
        const std::vector<PieceRef> pieces = cut_spans(*a.spans);
        for_each_piece(a.pool, pieces.size(), [&](size_t i) {
            kt.adam[g][out_index(a, pieces[i])](K, make_piece(a, pieces[i], 2));
        });
    }

private:
    double eps_;
    bool adamw_, bias_correction_;
};

}  // namespace

std::unique_ptr<Optimizer> make_adam(const OptimizerConfig &cfg) {
    return std::make_unique<Adam>(cfg);
}

}  // namespace dsz
