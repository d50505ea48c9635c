/*
 * adagrad.cpp -- Adagrad as DeepSpeed's CPUAdagrad kernel computes it (§4.5).
 *
 * g' = g + wd·p; sum += g'²; p -= lr·g / (sqrt(sum) + eps), with the RAW
 * gradient in the numerator. This is DeepSpeed's CPU kernel (used with
 * optimizer offload); torch.optim.Adagrad, which DeepSpeed builds without
 * offload, puts g' in the numerator too, so the two differ when wd > 0.
 * Weight decay only when wd > 0. The sum starts at
 * initial_accumulator_value (state_init).
 */
#include "optim/optimizers.h"
#include "optim/pieces.h"

namespace dsz {
namespace {

class Adagrad final : public Optimizer {
public:
    explicit Adagrad(const OptimizerConfig &c)
        : eps_(c.eps), initial_(c.initial_accumulator_value) {}

    const char *name() const override { return "adagrad"; }
    int state_count() const override { return 1; }
    const char *state_name(int) const override { return "sum"; }
    float state_init(int) const override { return static_cast<float>(initial_); }

    void update(const UpdateArgs &a) const override {
        check_update_args(a, 1, name());
        optk::AdagradK K;
        K.gm = static_cast<float>(a.grad_mul);
        K.wd = static_cast<float>(a.hyper.weight_decay > 0 ? a.hyper.weight_decay : 0.0);
        K.lr = static_cast<float>(a.hyper.lr);
        K.eps = static_cast<float>(eps_);

        const optk::KernelTable &kt = optk::kernel_table();
        const int g = static_cast<int>(a.grad_dtype);
        const std::vector<PieceRef> pieces = cut_spans(*a.spans);
        for_each_piece(a.pool, pieces.size(), [&](size_t i) {
            kt.adagrad[g][out_index(a, pieces[i])](K, make_piece(a, pieces[i], 1));
        });
    }

private:
    double eps_, initial_;
};

}  // namespace

std::unique_ptr<Optimizer> make_adagrad(const OptimizerConfig &cfg) {
    return std::make_unique<Adagrad>(cfg);
}

}  // namespace dsz
