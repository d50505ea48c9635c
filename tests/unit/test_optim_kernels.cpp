/*
 * test_optim_kernels.cpp -- what the optimizers promise beyond their
 * formulas: 16-bit conversions exactly as half.h, 16-bit gradients and
 * outputs, span coverage (nothing outside spans touched, odd sizes and
 * every vector tail), bitwise thread-count independence, every ISA build
 * against the baseline build, make_optimizer's errors, and FlatArray.
 */
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "common/error.h"
#include "common/half.h"
#include "optim/flat_array.h"
#include "optim/kernels.h"
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
using dsz::optk::Isa;
using optharness::Group;

namespace {

const Isa kIsas[] = {Isa::baseline, Isa::avx2, Isa::avx512};

/* Forces each ISA this CPU has in turn; restores the best one after. */
template <class F>
void for_each_isa(F &&f) {
    for (Isa isa : kIsas) {
        if (!dsz::optk::force_isa(isa)) {
            print_message("  (%s not available on this CPU: skipped)\n", dsz::optk::isa_name(isa));
            continue;
        }
        f(isa);
    }
    dsz::optk::force_isa(dsz::optk::best_isa());
}

struct Named {
    const char *name;
    dsz::OptimizerConfig cfg;
    double wd;
    optref::RefFn ref;
};

std::vector<Named> all_optimizers() {
    std::vector<Named> v;
    dsz::OptimizerConfig c = optharness::config(OptimizerType::adam);
    c.adam_w_mode = false;
    v.push_back({"adam", c, 0.01, optref::adam});
    c.adam_w_mode = true;
    v.push_back({"adamw", c, 0.01, optref::adam});
    v.push_back({"lamb", optharness::config(OptimizerType::lamb), 0.01, optref::lamb});
    v.push_back({"lion", optharness::config(OptimizerType::lion), 0.1, optref::lion});
    c = optharness::config(OptimizerType::adagrad);
    c.eps = 1e-10;
    c.initial_accumulator_value = 0.1;
    v.push_back({"adagrad", c, 0.01, optref::adagrad});
    v.push_back({"sgd", optharness::config(OptimizerType::sgd), 0.01, optref::sgd});
    c = optharness::config(OptimizerType::sgd);
    c.momentum = 0.9;
    c.dampening = 0.1;
    v.push_back({"sgd-momentum", c, 0.01, optref::sgd});
    c.dampening = 0;
    c.nesterov = true;
    v.push_back({"sgd-nesterov", c, 0.01, optref::sgd});
    return v;
}

bool same_bits(const void *a, const void *b, size_t bytes) { return std::memcmp(a, b, bytes) == 0; }

bool same_group(const Group &a, const Group &b) {
    if (!same_bits(a.p.data(), b.p.data(), a.n * 4)) return false;
    for (size_t s = 0; s < a.s.size(); ++s)
        if (!same_bits(a.s[s].data(), b.s[s].data(), a.n * 4)) return false;
    return same_bits(a.out32.data(), b.out32.data(), a.n * 4) &&
           same_bits(a.out16.data(), b.out16.data(), a.n * 2);
}

Group make_group(const dsz::Optimizer &opt, const std::vector<size_t> &sizes, size_t max_span,
                 uint64_t seed) {
    std::mt19937_64 rng(seed);
    Group G;
    optharness::layout(G, sizes, max_span);
    optharness::init_group(G, rng, opt.state_count(),
                           opt.state_count() > 0 ? opt.state_init(0) : 0.0f);
    return G;
}

/* ---- conversions ---- */

void test_conversions(void **) {
    /* Every fp32 high half with low halves around both formats' rounding
     * points (fp16 rounds at bit 13, bf16 at bit 16) and a few random. */
    std::vector<uint32_t> lows = {0,      1,      0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000,
                                  0x2fff, 0x3000, 0x3001, 0x7fff, 0x8000, 0x8001, 0xffff};
    std::mt19937_64 rng(7);
    for (int i = 0; i < 6; ++i) lows.push_back(static_cast<uint32_t>(rng() & 0xffff));
    std::vector<float> f;
    for (uint32_t hi = 0; hi < 0x10000; ++hi)
        for (uint32_t lo : lows) f.push_back(dsz::bits_to_float(hi << 16 | lo));
    f.push_back(1.0f);  /* an odd length: a padded tail */
    std::vector<uint16_t> all16(0x10000 + 3);
    for (size_t i = 0; i < all16.size(); ++i) all16[i] = static_cast<uint16_t>(i);

    for_each_isa([&](Isa isa) {
        const auto &kt = dsz::optk::kernel_table();
        std::vector<uint16_t> h(f.size());
        std::vector<float> back(all16.size());
        for (DType t : {DType::f16, DType::bf16}) {
            const int ti = static_cast<int>(t);
            kt.from_f32[ti](f.data(), h.data(), f.size());
            for (size_t i = 0; i < f.size(); ++i) {
                const uint16_t want = optharness::to16(t, f[i]);
                if (h[i] != want)
                    fail_msg("%s: float %08" PRIx32 " -> %s gave %04x, half.h %04x",
                             dsz::optk::isa_name(isa), dsz::float_to_bits(f[i]),
                             dsz::dtype_name(t), h[i], want);
            }
            kt.to_f32[ti](all16.data(), back.data(), all16.size());
            for (size_t i = 0; i < all16.size(); ++i) {
                const float want = optharness::from16(t, all16[i]);
                if (dsz::float_to_bits(back[i]) != dsz::float_to_bits(want))
                    fail_msg("%s: %s %04x -> float gave %08" PRIx32 ", half.h %08" PRIx32,
                             dsz::optk::isa_name(isa), dsz::dtype_name(t), all16[i],
                             dsz::float_to_bits(back[i]), dsz::float_to_bits(want));
            }
        }
        std::vector<float> copy(f.size());
        kt.from_f32[0](f.data(), copy.data(), f.size());
        assert_true(same_bits(copy.data(), f.data(), f.size() * 4));
        kt.to_f32[0](f.data(), copy.data(), f.size());
        assert_true(same_bits(copy.data(), f.data(), f.size() * 4));
    });
}

/* ---- 16-bit gradients and outputs ---- */

/* Reading 16-bit gradients must equal reading their fp32 values, and the
 * output must be half.h's conversion of the new master weights. */
void test_dtypes(void **) {
    for_each_isa([&](Isa isa) {
        for (const Named &o : all_optimizers()) {
            const auto opt = dsz::make_optimizer(o.cfg);
            for (DType gdt : {DType::f32, DType::f16, DType::bf16}) {
                for (DType odt : {DType::f32, DType::f16, DType::bf16}) {
                    Group A = make_group(*opt, {3, 1000, 517, 2}, 300, 11);
                    Group B = A;
                    A.grad_dtype = gdt;
                    A.with_out = true;
                    A.out_dtype = odt;
                    std::mt19937_64 rng(5);
                    for (int64_t k = 1; k <= 3; ++k) {
                        optharness::random_grads(A, rng);
                        B.g32 = A.g32;  /* the values A's 16-bit gradients hold */
                        const dsz::StepHyper h = optharness::hyper_for(k, o.wd);
                        optharness::step(*opt, A, h, 0.37, &optharness::pool(2));
                        optharness::step(*opt, B, h, 0.37, &optharness::pool(2));
                    }
                    if (!same_bits(A.p.data(), B.p.data(), A.n * 4))
                        fail_msg("%s %s: %s gradients differ from their fp32 values",
                                 dsz::optk::isa_name(isa), o.name, dsz::dtype_name(gdt));
                    for (size_t s = 0; s < A.s.size(); ++s)
                        assert_true(same_bits(A.s[s].data(), B.s[s].data(), A.n * 4));
                    for (size_t i = 0; i < A.n; ++i) {
                        const bool ok = odt == DType::f32
                                            ? dsz::float_to_bits(A.out32[i]) ==
                                                  dsz::float_to_bits(A.p[i])
                                            : A.out16[i] == optharness::to16(odt, A.p[i]);
                        if (!ok)
                            fail_msg("%s %s: out[%zu] (%s) is not master %.9g converted",
                                     dsz::optk::isa_name(isa), o.name, i, dsz::dtype_name(odt),
                                     static_cast<double>(A.p[i]));
                    }
                }
            }
        }
    });
}

/* grad_mul multiplies every gradient first: grads g with grad_mul m give
 * the same step as grads g*m (exact here: m a power of two) with 1. */
void test_grad_mul(void **) {
    for (const Named &o : all_optimizers()) {
        const auto opt = dsz::make_optimizer(o.cfg);
        Group A = make_group(*opt, {1000, 33}, 400, 3);
        Group B = A;
        std::mt19937_64 rng(9);
        for (int64_t k = 1; k <= 3; ++k) {
            optharness::random_grads(A, rng);
            B.g32 = A.g32;
            for (float &g : B.g32) g *= 0.25f;
            const dsz::StepHyper h = optharness::hyper_for(k, o.wd);
            optharness::step(*opt, A, h, 0.25, &optharness::pool(2));
            optharness::step(*opt, B, h, 1.0, &optharness::pool(2));
        }
        if (!same_group(A, B)) fail_msg("%s: grad_mul is not a multiplication of g", o.name);
    }
}

/* ---- spans ---- */

/* Spans of many odd sizes with gaps between them: gaps keep their
 * sentinel values (weights, states, outputs), and each element's result
 * does not depend on how the spans cut the buffer. */
void test_span_coverage(void **) {
    std::vector<size_t> sizes;
    for (size_t n = 1; n <= 70; ++n) sizes.push_back(n);
    for (size_t n : {127, 128, 129, 255, 256, 257, 511, 512, 513, 1023, 1025, 32767, 32768,
                     32769, 65537})
        sizes.push_back(n);
    sizes.push_back(1000003);
    constexpr size_t kGap = 3;

    for (const Named &o : all_optimizers()) {
        const auto opt = dsz::make_optimizer(o.cfg);
        Group G;
        size_t off = kGap;
        for (size_t n : sizes) {
            G.tensors.push_back({off, n});
            G.spans.push_back({off, n, nullptr});
            off += n + kGap;
        }
        G.n = off;
        std::mt19937_64 rng(17);
        optharness::init_group(G, rng, opt->state_count(),
                               opt->state_count() > 0 ? opt->state_init(0) : 0.0f);
        G.grad_dtype = DType::bf16;
        G.with_out = true;
        G.out_dtype = DType::f16;
        std::vector<char> in_span(G.n, 0);
        for (const dsz::Span &s : G.spans) std::memset(&in_span[s.offset], 1, s.n);
        for (size_t i = 0; i < G.n; ++i) {
            if (in_span[i]) continue;
            G.p[i] = 777.0f;
            for (auto &st : G.s) st[i] = 555.0f;
            G.out16[i] = 0xabcd;
        }
        /* The same elements cut differently: every span halved (elementwise
         * optimizers) -- LAMB's per-tensor sums may round differently. */
        Group H = G;
        H.spans.clear();
        for (const dsz::Span &s : G.spans) {
            const size_t a = s.n / 2;
            if (a) H.spans.push_back({s.offset, a, nullptr});
            H.spans.push_back({s.offset + a, s.n - a, nullptr});
        }
        for (int64_t k = 1; k <= 2; ++k) {
            optharness::random_grads(G, rng);
            H.g16 = G.g16;
            H.g32 = G.g32;
            const dsz::StepHyper h = optharness::hyper_for(k, o.wd);
            optharness::step(*opt, G, h, 0.5, &optharness::pool(2));
            optharness::step(*opt, H, h, 0.5, &optharness::pool(2));
        }
        for (size_t i = 0; i < G.n; ++i) {
            if (in_span[i]) {
                if (G.out16[i] != optharness::to16(DType::f16, G.p[i]))
                    fail_msg("%s: out[%zu] not written", o.name, i);
                continue;
            }
            bool ok = G.p[i] == 777.0f && G.out16[i] == 0xabcd;
            for (auto &st : G.s) ok = ok && st[i] == 555.0f;
            if (!ok) fail_msg("%s: element %zu outside every span was changed", o.name, i);
        }
        if (std::string(o.name) != "lamb" && !same_group(G, H))
            fail_msg("%s: results depend on where spans are cut", o.name);
    }
}

/* ---- threads ---- */

void test_thread_count(void **) {
    for (const Named &o : all_optimizers()) {
        const auto opt = dsz::make_optimizer(o.cfg);
        /* Tensors longer than a piece, spans longer than a piece. */
        Group A = make_group(*opt, {100003, 1, 250001, 7, 65537}, 70001, 23);
        A.grad_dtype = DType::f16;
        A.with_out = true;
        A.out_dtype = DType::bf16;
        Group B = A, C = A;
        std::mt19937_64 rng(29);
        for (int64_t k = 1; k <= 3; ++k) {
            optharness::random_grads(A, rng);
            B.g16 = C.g16 = A.g16;
            const dsz::StepHyper h = optharness::hyper_for(k, o.wd);
            optharness::step(*opt, A, h, 0.8, &optharness::pool(1));
            optharness::step(*opt, B, h, 0.8, &optharness::pool(2));
            optharness::step(*opt, C, h, 0.8, nullptr);
        }
        if (!same_group(A, B) || !same_group(A, C))
            fail_msg("%s: 1 and 2 threads give different bits", o.name);
    }
}

/* ---- ISA builds ---- */

/* From identical inputs, each ISA build against the float64 reference and
 * against the baseline build (FMA contraction may move the last bit). */
void test_isa_builds(void **) {
    for (const Named &o : all_optimizers()) {
        const auto opt = dsz::make_optimizer(o.cfg);
        Group G = make_group(*opt, {1, 7, 1000, 2049, 515, 33}, 700, 31);
        G.grad_dtype = DType::f16;
        G.with_out = true;
        G.out_dtype = DType::bf16;
        std::mt19937_64 rng(37);
        double worst_vs_baseline = 0;
        for (int64_t k = 1; k <= 20; ++k) {
            optharness::random_grads(G, rng);
            const dsz::StepHyper h = optharness::hyper_for(k, o.wd);
            optref::Out ref;
            o.ref(o.cfg, optharness::reference_input(G, h, 0.6), ref);
            Group base = G;
            dsz::optk::force_isa(Isa::baseline);
            optharness::step(*opt, base, h, 0.6, &optharness::pool(2));
            for_each_isa([&](Isa isa) {
                Group X = G;
                optharness::step(*opt, X, h, 0.6, &optharness::pool(2));
                optharness::Check c;
                for (size_t i = 0; i < X.n; ++i) {
                    c.value("p", i, X.p[i], ref.p[i], ref.alt_ok[i] ? &ref.p_alt[i] : nullptr);
                    for (size_t s = 0; s < X.s.size(); ++s) c.value("state", i, X.s[s][i], ref.s[s][i]);
                    if (ref.alt_ok[i]) continue;  /* Lion: either sign is right */
                    const double unit = std::ldexp(1.0, -24);
                    double d = std::fabs(static_cast<double>(X.p[i]) - base.p[i]) / (unit * ref.p[i].e);
                    for (size_t s = 0; s < X.s.size(); ++s)
                        d = std::max(d, std::fabs(static_cast<double>(X.s[s][i]) - base.s[s][i]) /
                                            (unit * ref.s[s][i].e));
                    if (ref.p[i].e > 0) worst_vs_baseline = std::max(worst_vs_baseline, d);
                }
                if (c.bad) fail_msg("%s on %s: %s", o.name, dsz::optk::isa_name(isa), c.what);
            });
            G = base;
        }
        print_message("%-13s ISA builds vs baseline: worst %.2f units\n", o.name, worst_vs_baseline);
        /* Contraction changes a rounding or two: allow 4 units of e. */
        if (worst_vs_baseline > 4.0) fail_msg("%s: ISA builds differ from baseline", o.name);
    }
}

/* ---- edge cases of the contract ---- */

void test_lion_sign_zero(void **) {
    const auto opt = dsz::make_optimizer(optharness::config(OptimizerType::lion));
    Group G = make_group(*opt, {5}, 5, 1);
    for (float &x : G.p) x = 1.0f;
    G.g32.assign(5, 0.0f);  /* m = 0 and g = 0: c == 0 counts as negative */
    optharness::step(*opt, G, optharness::hyper_for(1, 0.0), 1.0, nullptr);
    const float want = 1.0f + static_cast<float>(optharness::hyper_for(1, 0.0).lr);
    for (float x : G.p) assert_true(x == want);
}

void test_sgd_first_step(void **) {
    dsz::OptimizerConfig c = optharness::config(OptimizerType::sgd);
    c.momentum = 0.9;
    c.dampening = 0.5;
    const auto opt = dsz::make_optimizer(c);
    Group G = make_group(*opt, {9}, 9, 1);
    for (float &b : G.s[0]) b = NAN;  /* step 1 ignores the buffer's contents */
    std::mt19937_64 rng(3);
    optharness::random_grads(G, rng);
    optharness::step(*opt, G, optharness::hyper_for(1, 0.0), 1.0, nullptr);
    for (size_t i = 0; i < G.n; ++i) assert_true(G.s[0][i] == G.g32[i]);  /* buf = d, undamped */
}

void test_make_optimizer(void **) {
    struct {
        OptimizerType t;
        bool adamw;
        const char *name;
        int states;
    } ok[] = {{OptimizerType::adam, true, "adamw", 2}, {OptimizerType::adam, false, "adam", 2},
              {OptimizerType::lamb, true, "lamb", 2},  {OptimizerType::lion, true, "lion", 1},
              {OptimizerType::adagrad, true, "adagrad", 1}, {OptimizerType::sgd, true, "sgd", 0}};
    for (const auto &e : ok) {
        dsz::OptimizerConfig c = optharness::config(e.t);
        c.adam_w_mode = e.adamw;
        const auto opt = dsz::make_optimizer(c);
        assert_string_equal(opt->name(), e.name);
        assert_int_equal(opt->state_count(), e.states);
    }
    dsz::OptimizerConfig c = optharness::config(OptimizerType::adam);
    assert_string_equal(dsz::make_optimizer(c)->state_name(1), "exp_avg_sq");
    c = optharness::config(OptimizerType::sgd);
    c.momentum = 0.5;
    assert_int_equal(dsz::make_optimizer(c)->state_count(), 1);
    assert_string_equal(dsz::make_optimizer(c)->state_name(0), "momentum_buffer");
    c = optharness::config(OptimizerType::adagrad);
    c.initial_accumulator_value = 0.25;
    assert_true(dsz::make_optimizer(c)->state_init(0) == 0.25f);

    auto expect_error = [](const dsz::OptimizerConfig &cfg, dsz_status status, const char *text) {
        try {
            dsz::make_optimizer(cfg);
        } catch (const dsz::Error &e) {
            if (e.status() != status || !std::strstr(e.what(), text))
                fail_msg("status %d, message '%s'; expected %d and '%s'", e.status(), e.what(),
                         status, text);
            return;
        }
        fail_msg("no error; expected '%s'", text);
    };
    const struct {
        OptimizerType t;
        const char *type_name;
    } unsupported[] = {{OptimizerType::muon, "Muon"},
                       {OptimizerType::onebitadam, "OneBitAdam"},
                       {OptimizerType::zerooneadam, "ZeroOneAdam"},
                       {OptimizerType::onebitlamb, "OneBitLamb"}};
    for (const auto &u : unsupported) {
        dsz::OptimizerConfig cfg = optharness::config(u.t);
        cfg.type_name = u.type_name;
        const std::string msg = std::string("optimizer.type: ") + u.type_name + " is not supported";
        expect_error(cfg, DSZ_ERR_UNSUPPORTED, msg.c_str());
    }
    expect_error(optharness::config(OptimizerType::none), DSZ_ERR_CONFIG, "optimizer.type");
    c = optharness::config(OptimizerType::sgd);
    c.nesterov = true;
    expect_error(c, DSZ_ERR_CONFIG, "optimizer.params.nesterov");
    c.momentum = 0.9;
    c.dampening = 0.1;
    expect_error(c, DSZ_ERR_CONFIG, "optimizer.params.nesterov");
}

void test_update_errors(void **) {
    const auto lamb = dsz::make_optimizer(optharness::config(OptimizerType::lamb));
    Group G = make_group(*lamb, {10, 10}, 10, 1);
    std::mt19937_64 rng(3);
    optharness::random_grads(G, rng);
    G.spans = {{5, 10, nullptr}};  /* straddles the two tensors */
    try {
        optharness::step(*lamb, G, optharness::hyper_for(1, 0.0), 1.0, nullptr);
        fail_msg("LAMB accepted a span across two tensors");
    } catch (const dsz::Error &e) {
        assert_int_equal(e.status(), DSZ_ERR_INTERNAL);
    }
    const auto adam = dsz::make_optimizer(optharness::config(OptimizerType::adam));
    G.spans = {{0, 20, nullptr}};
    try {
        optharness::step(*adam, G, optharness::hyper_for(0, 0.0), 1.0, nullptr);
        fail_msg("Adam accepted step 0");
    } catch (const dsz::Error &e) {
        assert_int_equal(e.status(), DSZ_ERR_INTERNAL);
    }
    G.spans.clear();  /* nothing to do is fine */
    const std::vector<float> before = G.p;
    optharness::step(*adam, G, optharness::hyper_for(1, 0.0), 1.0, nullptr);
    assert_true(same_bits(before.data(), G.p.data(), G.n * 4));
}

void test_flat_array(void **) {
    dsz::FlatArray a(1000001, 0.5f);
    assert_int_equal(a.size(), 1000001);
    dsz::FlatArray a2(100);
    assert_int_equal(reinterpret_cast<uintptr_t>(a.data()) % 64, 0);
    assert_int_not_equal(reinterpret_cast<uintptr_t>(a.data()) % 4096,
                         reinterpret_cast<uintptr_t>(a2.data()) % 4096);  /* staggered */
    for (size_t i = 0; i < a.size(); ++i) assert_true(a.data()[i] == 0.5f);
    float *p = a.data();
    dsz::FlatArray b = std::move(a);
    assert_ptr_equal(b.data(), p);
    assert_null(a.data());
    assert_int_equal(a.size(), 0);
    dsz::FlatArray empty;
    assert_null(empty.data());
    b = dsz::FlatArray(3);
    assert_true(b.data()[2] == 0.0f);
}

}  // namespace

int main(void) {
    print_message("kernels in use: %s\n", dsz::optk::isa_name(dsz::optk::kernel_table().isa));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversions),    cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_grad_mul),       cmocka_unit_test(test_span_coverage),
        cmocka_unit_test(test_thread_count),   cmocka_unit_test(test_isa_builds),
        cmocka_unit_test(test_lion_sign_zero), cmocka_unit_test(test_sgd_first_step),
        cmocka_unit_test(test_make_optimizer), cmocka_unit_test(test_update_errors),
        cmocka_unit_test(test_flat_array),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
