/*
 * lion.cpp -- Lion as DeepSpeed's FusedLion/CPULion compute it (§4.5).
 *
 * c = β1·m + (1-β1)·g; p = p·(1-lr·wd) - lr·sign(c), where c == 0 counts as
 * negative (p += lr, as DeepSpeed's kernels do); m = β2·m + (1-β2)·g.
 * Weight decay only when wd > 0, as in DeepSpeed's CPU kernels.
 */
#include "optim/optimizers.h"
#include "optim/pieces.h"

namespace dsz {
namespace {

class Lion final : public Optimizer {
public:
    const char *name() const override { return "lion"; }
    int state_count() const override { return 1; }
    const char *state_name(int) const override { return "exp_avg"; }

    void update(const UpdateArgs &a) const override {
        check_update_args(a, 1, name());
        const StepHyper &h = a.hyper;
        optk::LionK K;
        K.gm = static_cast<float>(a.grad_mul);
        K.decay = static_cast<float>(h.weight_decay > 0 ? 1.0 - h.lr * h.weight_decay : 1.0);
        K.lr = static_cast<float>(h.lr);
        K.b1 = static_cast<float>(h.beta1);
        K.omb1 = static_cast<float>(1.0 - h.beta1);
        K.b2 = static_cast<float>(h.beta2);
        K.omb2 = static_cast<float>(1.0 - h.beta2);

        const optk::KernelTable &kt = optk::kernel_table();
        const int g = static_cast<int>(a.grad_dtype);
        const std::vector<PieceRef> pieces = cut_spans(*a.spans);
        for_each_piece(a.pool, pieces.size(), [&](size_t i) {
            kt.lion[g][out_index(a, pieces[i])](K, make_piece(a, pieces[i], 1));
        });
    }
};

}  // namespace

std::unique_ptr<Optimizer> make_lion(const OptimizerConfig &) {
    return std::make_unique<Lion>();
}

}  // namespace dsz
