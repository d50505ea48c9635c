/*
 * lamb.cpp -- LAMB as DeepSpeed's FusedLamb computes it (§4.4).
 *
 * Per tensor: m, v from g; u = m/(sqrt(v)+eps) on the uncorrected v (or
 * m/sqrt(v+eps) with eps_inside_sqrt) + wd·p; trust = clamp(‖p‖/‖u‖,
 * min_coeff, max_coeff), 1 if either norm is 0; p -= step_size·trust·u with
 * step_size = lr·sqrt(1-β2^k)/(1-β1^k) (lr without bias correction).
 *
 * Two passes because the norms need the whole tensor, which may be cut into
 * several spans and pieces: pass 1 updates m and v and sums p² and u² per
 * piece (double); the sums are added per tensor in piece order (the same
 * bits whatever the thread count); pass 2 recomputes u from the stored m, v
 * and applies it. The norms cover the parts of each tensor that the spans
 * cover -- the whole tensor, as the engine calls it.
 */
#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "optim/optimizers.h"
#include "optim/pieces.h"

namespace dsz {
namespace {

class Lamb final : public Optimizer {
public:
    explicit Lamb(const OptimizerConfig &c)
        : eps_(c.eps), max_coeff_(c.max_coeff), min_coeff_(c.min_coeff),
          eps_inside_sqrt_(c.eps_inside_sqrt), bias_correction_(c.bias_correction) {}

    const char *name() const override { return "lamb"; }
    int state_count() const override { return 2; }
    const char *state_name(int i) const override { return i == 0 ? "exp_avg" : "exp_avg_sq"; }

    void update(const UpdateArgs &a) const override {
        check_update_args(a, 2, name());
        if (a.spans->empty()) return;
        if (!a.tensors) fail(DSZ_ERR_INTERNAL, "lamb: update without tensor boundaries");
        const StepHyper &h = a.hyper;
        optk::LambK K;
        K.gm = static_cast<float>(a.grad_mul);
        K.wd = static_cast<float>(h.weight_decay);
        K.b1 = static_cast<float>(h.beta1);
        K.omb1 = static_cast<float>(1.0 - h.beta1);
        K.b2 = static_cast<float>(h.beta2);
        K.omb2 = static_cast<float>(1.0 - h.beta2);
        K.eps_in = static_cast<float>(eps_inside_sqrt_ ? eps_ : 0.0);
        K.eps_out = static_cast<float>(eps_inside_sqrt_ ? 0.0 : eps_);

        const optk::KernelTable &kt = optk::kernel_table();
        const int g = static_cast<int>(a.grad_dtype);
        const std::vector<PieceRef> pieces = cut_spans_by_tensor(*a.spans, *a.tensors, name());
        std::vector<double> sums(2 * pieces.size());
        for_each_piece(a.pool, pieces.size(), [&](size_t i) {
            kt.lamb_moments[g](K, make_piece(a, pieces[i], 2), &sums[2 * i]);
        });

        const size_t nt = a.tensors->size();
        std::vector<double> pp(nt, 0.0), uu(nt, 0.0);
        for (size_t i = 0; i < pieces.size(); ++i) {
            pp[pieces[i].tensor] += sums[2 * i];
            uu[pieces[i].tensor] += sums[2 * i + 1];
        }
        const double k = static_cast<double>(h.step);
        const double step_size = bias_correction_
            ? h.lr * std::sqrt(1.0 - std::pow(h.beta2, k)) / (1.0 - std::pow(h.beta1, k))
            : h.lr;
        std::vector<float> coef(nt);
        for (size_t t = 0; t < nt; ++t) {
            const double pn = std::sqrt(pp[t]), un = std::sqrt(uu[t]);
            const double trust =
                pn == 0.0 || un == 0.0 ? 1.0 : std::min(std::max(pn / un, min_coeff_), max_coeff_);
            coef[t] = static_cast<float>(step_size * trust);
        }

        for_each_piece(a.pool, pieces.size(), [&](size_t i) {
            kt.lamb_apply[out_index(a, pieces[i])](K, coef[pieces[i].tensor],
                                                  make_piece(a, pieces[i], 2));
        });
    }

private:
    double eps_, max_coeff_, min_coeff_;
    bool eps_inside_sqrt_, bias_correction_;
};

}  // namespace

std::unique_ptr<Optimizer> make_lamb(const OptimizerConfig &cfg) {
    return std::make_unique<Lamb>(cfg);
}

}  // namespace dsz
