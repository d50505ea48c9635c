/*
 * sgd.cpp -- SGD with torch.optim.SGD's semantics.
 *
 * d = g + wd·p (L2, when wd != 0); with momentum μ: buf = d on the first
 * step (hyper.step == 1), else buf = μ·buf + (1-dampening)·d; d = d + μ·buf
 * with nesterov, else buf; p -= lr·d. Without momentum there is no state.
 * The momentum comes from the config: a scheduler cycling momentum
 * (OneCycle with SGD) is not passed through StepHyper.
 */
#include "common/error.h"
#include "optim/optimizers.h"
#include "optim/pieces.h"

namespace dsz {
namespace {

class Sgd final : public Optimizer {
public:
    explicit Sgd(const OptimizerConfig &c)
        : momentum_(c.momentum), dampening_(c.dampening), nesterov_(c.nesterov) {}

    const char *name() const override { return "sgd"; }
    int state_count() const override { return momentum_ != 0.0 ? 1 : 0; }
    const char *state_name(int) const override { return "momentum_buffer"; }

    void update(const UpdateArgs &a) const override {
        const int ns = state_count();
        check_update_args(a, ns, name());
        optk::SgdK K;
        K.gm = static_cast<float>(a.grad_mul);
        K.wd = static_cast<float>(a.hyper.weight_decay);
        K.nlr = static_cast<float>(-a.hyper.lr);
        K.mom = static_cast<float>(momentum_);
        K.damp1 = static_cast<float>(1.0 - dampening_);
        K.nesterov = nesterov_;

        const optk::KernelTable &kt = optk::kernel_table();
        const int g = static_cast<int>(a.grad_dtype);
        const int first = a.hyper.step == 1 ? 1 : 0;
        const std::vector<PieceRef> pieces = cut_spans(*a.spans);
        for_each_piece(a.pool, pieces.size(), [&](size_t i) {
            const int o = out_index(a, pieces[i]);
            const optk::Piece pc = make_piece(a, pieces[i], ns);
            if (ns == 0)
                kt.sgd[g][o](K, pc);
            else
                kt.sgd_momentum[first][g][o](K, pc);
        });
    }

private:
    double momentum_, dampening_;
    bool nesterov_;
};

}  // namespace

std::unique_ptr<Optimizer> make_sgd(const OptimizerConfig &cfg) {
    if (cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0))
        fail(DSZ_ERR_CONFIG,
             "optimizer.params.nesterov: Nesterov momentum requires a momentum and zero dampening");
    return std::make_unique<Sgd>(cfg);
}

}  // namespace dsz
