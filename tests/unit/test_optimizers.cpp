/*
 * test_optimizers.cpp -- every optimizer against its float64 reference.
 *
 * 50 random steps on seven tensors of odd sizes (several spans each); after
 * every step the fp32 weights and states are compared with a float64 step
 * taken from the same fp32 inputs (so rounding does not compound), within
 * 1e-6 of the reference's error magnitude (optim_reference.h). Runs on the
 * kernels this CPU selects, with two threads; test_optim_kernels.cpp runs
 * the same comparison on every ISA build.
 */
#include <cstdio>
#include <random>

#include "optim/optimizer.h"
#include "optim_harness.h"
#include "optim_reference.h"

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
extern "C" {
#include <cmocka.h>
}

using dsz::DType;
using dsz::OptimizerType;
using optharness::Check;
using optharness::Group;

namespace {

constexpr int kSteps = 50;
constexpr double kGradMul = 0.37;

void run_reference(const char *label, const dsz::OptimizerConfig &cfg, double wd,
                   optref::RefFn ref, DType gdt = DType::f32) {
    std::mt19937_64 rng(20240611);
    const auto opt = dsz::make_optimizer(cfg);
    Group G;
    optharness::layout(G, {1, 7, 1000, 2049, 515, 33, 1500}, 700);
    G.grad_dtype = gdt;
    optharness::init_group(G, rng, opt->state_count(),
                           opt->state_count() > 0 ? opt->state_init(0) : 0.0f);
    for (size_t i = 1; i < 8; ++i) G.p[i] = 0.0f;  /* a tensor of zeros (LAMB: trust 1) */
    Check cp, cs;
    for (int64_t k = 1; k <= kSteps; ++k) {
        optharness::random_grads(G, rng);
        const dsz::StepHyper h = optharness::hyper_for(k, wd);
        const optref::In in = optharness::reference_input(G, h, kGradMul);
        optharness::step(*opt, G, h, kGradMul, &optharness::pool(2));
        optref::Out o;
        ref(cfg, in, o);
        for (size_t i = 0; i < G.n; ++i)
            cp.value("p", i, G.p[i], o.p[i], o.alt_ok[i] ? &o.p_alt[i] : nullptr);
        for (int s = 0; s < opt->state_count(); ++s)
            for (size_t i = 0; i < G.n; ++i) cs.value(opt->state_name(s), i, G.s[s][i], o.s[s][i]);
    }
    print_message("%-34s worst error %5.2f units (weights), %5.2f (states)\n", label, cp.worst,
                  cs.worst);
    if (cp.bad || cs.bad)
        fail_msg("%s: %ld weights, %ld states out of tolerance; first: %s%s", label, cp.bad,
                 cs.bad, cp.bad ? cp.what : "", cp.bad ? "" : cs.what);
}

dsz::OptimizerConfig adam_cfg(bool adamw, bool bias) {
    dsz::OptimizerConfig c = optharness::config(OptimizerType::adam);
    c.adam_w_mode = adamw;
    c.bias_correction = bias;
    return c;
}

void test_adam_l2(void **) { run_reference("adam (L2)", adam_cfg(false, true), 0.01, optref::adam); }
void test_adam_l2_no_bias(void **) {
    run_reference("adam (L2, no bias correction)", adam_cfg(false, false), 0.01, optref::adam);
}
void test_adamw(void **) { run_reference("adamw", adam_cfg(true, true), 0.01, optref::adam); }
void test_adamw_no_bias(void **) {
    run_reference("adamw (no bias correction)", adam_cfg(true, false), 0.01, optref::adam);
}
void test_adamw_no_decay(void **) {
    run_reference("adamw (wd 0)", adam_cfg(true, true), 0.0, optref::adam);
}
void test_adam_bf16_grads(void **) {
    run_reference("adamw (bf16 grads)", adam_cfg(true, true), 0.01, optref::adam, DType::bf16);
}
void test_adam_f16_grads(void **) {
    run_reference("adam (L2, fp16 grads)", adam_cfg(false, true), 0.01, optref::adam, DType::f16);
}

void test_lamb(void **) {
    run_reference("lamb", optharness::config(OptimizerType::lamb), 0.01, optref::lamb);
}
void test_lamb_variants(void **) {
    dsz::OptimizerConfig c = optharness::config(OptimizerType::lamb);
    c.bias_correction = false;
    c.eps_inside_sqrt = true;
    run_reference("lamb (no bias corr., eps in sqrt)", c, 0.0, optref::lamb);
}
void test_lamb_clamped(void **) {
    /* Narrow coefficient bounds, so the trust ratio is clamped both ways. */
    dsz::OptimizerConfig c = optharness::config(OptimizerType::lamb);
    c.min_coeff = 0.5;
    c.max_coeff = 2.0;
    run_reference("lamb (trust clamped to [0.5, 2])", c, 0.1, optref::lamb);
}

void test_lion(void **) {
    run_reference("lion", optharness::config(OptimizerType::lion), 0.0, optref::lion);
}
void test_lion_decay(void **) {
    run_reference("lion (wd 0.1)", optharness::config(OptimizerType::lion), 0.1, optref::lion);
}

void test_adagrad(void **) {
    dsz::OptimizerConfig c = optharness::config(OptimizerType::adagrad);
    c.lr = 1e-2;
    c.eps = 1e-10;
    run_reference("adagrad", c, 0.0, optref::adagrad);
}
void test_adagrad_decay(void **) {
    /* With wd > 0 the first step's g + wd·p can cancel; a non-zero initial
     * accumulator (as torch users often set) keeps the test conditioned. */
    dsz::OptimizerConfig c = optharness::config(OptimizerType::adagrad);
    c.eps = 1e-10;
    c.initial_accumulator_value = 0.1;
    run_reference("adagrad (wd 0.01, init 0.1)", c, 0.01, optref::adagrad);
}

dsz::OptimizerConfig sgd_cfg(double momentum, double dampening, bool nesterov) {
    dsz::OptimizerConfig c = optharness::config(OptimizerType::sgd);
    c.momentum = momentum;
    c.dampening = dampening;
    c.nesterov = nesterov;
    return c;
}

void test_sgd(void **) { run_reference("sgd", sgd_cfg(0, 0, false), 0.0, optref::sgd); }
void test_sgd_decay(void **) {
    run_reference("sgd (wd 0.01)", sgd_cfg(0, 0, false), 0.01, optref::sgd);
}
void test_sgd_momentum(void **) {
    run_reference("sgd (momentum 0.9)", sgd_cfg(0.9, 0, false), 0.0, optref::sgd);
}
void test_sgd_dampening(void **) {
    run_reference("sgd (momentum 0.9, dampening 0.3)", sgd_cfg(0.9, 0.3, false), 0.01,
                  optref::sgd);
}
void test_sgd_nesterov(void **) {
    run_reference("sgd (nesterov 0.9, wd 0.01)", sgd_cfg(0.9, 0, true), 0.01, optref::sgd);
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_l2),        cmocka_unit_test(test_adam_l2_no_bias),
        cmocka_unit_test(test_adamw),          cmocka_unit_test(test_adamw_no_bias),
        cmocka_unit_test(test_adamw_no_decay), cmocka_unit_test(test_adam_bf16_grads),
        cmocka_unit_test(test_adam_f16_grads), cmocka_unit_test(test_lamb),
        cmocka_unit_test(test_lamb_variants),  cmocka_unit_test(test_lamb_clamped),
        cmocka_unit_test(test_lion),           cmocka_unit_test(test_lion_decay),
        cmocka_unit_test(test_adagrad),        cmocka_unit_test(test_adagrad_decay),
        cmocka_unit_test(test_sgd),            cmocka_unit_test(test_sgd_decay),
        cmocka_unit_test(test_sgd_momentum),   cmocka_unit_test(test_sgd_dampening),
        cmocka_unit_test(test_sgd_nesterov),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
