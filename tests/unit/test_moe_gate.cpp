/*
 * test_moe_gate.cpp -- MoE gating (src/moe/gate.h) on hand-made cases worked
 * out from DeepSpeed's formulas (reference section 9.2): capacities (in
 * float32, as torch computes them), choices, slots, dropping (position,
 * random token selection, "probs"), renormalised combine weights, l_aux,
 * no-drop capacities over a group; and the backward against central finite
 * differences of a float64 re-statement of the formulas.
 */
#include "common/error.h"
#include "moe/gate.h"
#include "moe/noise.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

/* cmocka.h defines a fail() macro: include it after dszero's headers. */
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
extern "C" {
#include <cmocka.h>
}

using namespace dsz;
using namespace dsz::moe;

namespace {

std::vector<double> softmax64(const std::vector<float> &l, int64_t S, int64_t E) {
    std::vector<double> p(l.size());
    for (int64_t s = 0; s < S; ++s) {
        double mx = -INFINITY, sum = 0;
        for (int64_t e = 0; e < E; ++e) mx = std::max(mx, static_cast<double>(l[s * E + e]));
        for (int64_t e = 0; e < E; ++e) sum += p[s * E + e] = std::exp(l[s * E + e] - mx);
        for (int64_t e = 0; e < E; ++e) p[s * E + e] /= sum;
    }
    return p;
}

/* l_aux from its definition: scale * sum_e mean_s(p[:, e]) * ce_e. */
double l_aux64(const std::vector<double> &p, int64_t S, int64_t E, const std::vector<double> &ce, double scale) {
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) {
        double me = 0;
        for (int64_t s = 0; s < S; ++s) me += p[s * E + e];
        sum += me / S * ce[e];
    }
    return scale * sum;
}

/* Combine weights of routes from the kept set: raw gate (k = 1) or
 * renormalised over the token's kept routes. */
std::vector<double> weights64(const std::vector<double> &p, const Routing &r) {
    std::vector<double> w(r.expert.size(), 0.0);
    for (int64_t s = 0; s < r.tokens; ++s) {
        double sum = 0;
        for (int64_t j = 0; j < r.k; ++j)
            if (r.slot[s * r.k + j] >= 0) sum += p[s * r.experts + r.expert[s * r.k + j]];
        for (int64_t j = 0; j < r.k; ++j) {
            const size_t i = s * r.k + j;
            if (r.slot[i] < 0) continue;
            const double g = p[s * r.experts + r.expert[i]];
            w[i] = r.k == 1 ? g : g / std::max(sum, static_cast<double>(FLT_EPSILON));
        }
    }
    return w;
}

void expect_routes(const Routing &r, const std::vector<int32_t> &expert, const std::vector<int32_t> &slot) {
    assert_int_equal(r.expert.size(), expert.size());
    for (size_t i = 0; i < expert.size(); ++i) {
        if (r.expert[i] != expert[i] || r.slot[i] != slot[i])
            print_error("route %zu: expert %d slot %d, expected %d %d\n", i, r.expert[i], r.slot[i], expert[i], slot[i]);
        assert_int_equal(r.expert[i], expert[i]);
        assert_int_equal(r.slot[i], slot[i]);
    }
}

void expect_weights(const Routing &r, const std::vector<float> &logits) {
    const std::vector<double> p = softmax64(logits, r.tokens, r.experts);
    const std::vector<double> w = weights64(p, r);
    for (size_t i = 0; i < w.size(); ++i) assert_true(std::fabs(r.weight[i] - w[i]) < 1e-6);
}

GateConfig plain(int k) {
    GateConfig c;
    c.k = k;
    c.min_capacity = 0;
    c.use_rts = false;
    c.top2_2nd_expert_sampling = false;
    return c;
}

dsz_status status_of(const std::function<void()> &f) {
    try {
        f();
    } catch (const Error &e) {
        return e.status();
    }
    return DSZ_OK;
}

}  // namespace

static void test_capacity_in_float32(void **) {
    /* torch: ceil((S / E) * tensor(cf)) runs in float32; in float64 the first
     * two would give 15 and 6. */
    assert_int_equal(gate_capacity(25, 2, 1.2, 0), 16);
    assert_int_equal(gate_capacity(25, 11, 2.2, 0), 5);
    assert_int_equal(gate_capacity(4, 2, 1.0, 0), 2);
    assert_int_equal(gate_capacity(4, 2, 1.0, 4), 4);     /* min_capacity */
    assert_int_equal(gate_capacity(10, 3, 1.2 * 2, 0), 8); /* top-2 doubles the factor */
    assert_int_equal(gate_capacity(7, 3, 0.0, 0), 0);
}

static void test_top1_position_drop(void **) {
    /* t0..t2 prefer expert 0, t3 expert 1; capacity ceil(4/2 * 1) = 2. */
    const std::vector<float> logits = {2, 0, 1, 0, 3, 0, 0, 1};
    const Routing r = gate(plain(1), logits.data(), 4, 2, nullptr, nullptr);
    assert_int_equal(r.capacity, 2);
    expect_routes(r, {0, 0, 0, 1}, {0, 1, -1, 0});
    assert_int_equal(r.dropped, 1);
    assert_int_equal(r.exp_counts[0], 3);
    assert_int_equal(r.exp_counts[1], 1);
    expect_weights(r, logits);
    assert_true(r.weight[2] == 0.0f);
    /* l_aux = E * sum_e me_e * ce_e with ce before dropping = [3/4, 1/4]. */
    const double want = l_aux64(softmax64(logits, 4, 2), 4, 2, {0.75, 0.25}, 2.0);
    assert_true(std::fabs(r.l_aux - want) < 1e-6);
}

static void test_top1_random_token_selection(void **) {
    /* 8 tokens all prefer expert 1; capacity 3: the kept ones are those with
     * the largest U(0,1) keys of the seed (token_selection stream, s*E+e). */
    GateConfig c = plain(1);
    c.use_rts = true;
    c.capacity_factor = 0.75;  /* ceil(8/2 * 0.75) = 3 */
    c.seed = 1234;
    std::vector<float> logits;
    for (int s = 0; s < 8; ++s) logits.insert(logits.end(), {0.0f, 1.0f + 0.1f * s});
    const Routing r = gate(c, logits.data(), 8, 2, nullptr, nullptr);
    assert_int_equal(r.capacity, 3);
    std::vector<std::pair<float, int>> keys;
    for (int s = 0; s < 8; ++s) keys.push_back({uniform01(1234, NoiseStream::token_selection, s * 2 + 1), s});
    std::sort(keys.begin(), keys.end(), [](auto a, auto b) { return a.first > b.first; });
    std::vector<int> kept;
    for (int i = 0; i < 3; ++i) kept.push_back(keys[i].second);
    std::sort(kept.begin(), kept.end());
    int next = 0;
    for (int s = 0; s < 8; ++s) {
        const bool in = std::find(kept.begin(), kept.end(), s) != kept.end();
        assert_int_equal(r.slot[s], in ? next++ : -1);
    }
    assert_int_equal(r.dropped, 5);
    /* Same seed, same routes; another seed, (here) other routes. */
    const Routing again = gate(c, logits.data(), 8, 2, nullptr, nullptr);
    assert_true(again.slot == r.slot);
    c.seed = 99;
    const Routing other = gate(c, logits.data(), 8, 2, nullptr, nullptr);
    assert_true(other.slot != r.slot);
}

static void test_top1_rsample_used_token_and_min_capacity(void **) {
    GateConfig c = plain(1);
    c.noise = NoisePolicy::rsample;
    c.seed = 7;
    std::mt19937 gen(3);
    std::normal_distribution<float> nd;
    std::vector<float> logits(16 * 4);
    for (float &v : logits) v = nd(gen);
    c.capacity_factor = 4.0;  /* nothing dropped */
    const Routing r = gate(c, logits.data(), 16, 4, nullptr, nullptr);
    for (int s = 0; s < 16; ++s) {
        int best = 0;
        float bv = -INFINITY;
        for (int e = 0; e < 4; ++e) {
            const float v = logits[s * 4 + e] + static_cast<float>(gumbel(7, NoiseStream::gumbel, s * 4 + e));
            if (v > bv) bv = v, best = e;
        }
        assert_int_equal(r.expert[s], best);
        /* the weight stays the noise-free softmax */
        assert_true(std::fabs(r.weight[s] - r.probs[s * 4 + best]) == 0.0f);
    }
    /* Eval: no noise, plain argmax. */
    c.training = false;
    c.eval_capacity_factor = 4.0;
    const Routing ev = gate(c, logits.data(), 16, 4, nullptr, nullptr);
    for (int s = 0; s < 16; ++s)
        assert_int_equal(ev.expert[s], std::max_element(&logits[s * 4], &logits[s * 4 + 4]) - &logits[s * 4]);

    /* used_token: masked tokens go nowhere and do not count in ce. */
    const std::vector<float> l2 = {2, 0, 1, 0, 3, 0, 0, 1};
    const uint8_t used[4] = {1, 0, 1, 1};
    const Routing u = gate(plain(1), l2.data(), 4, 2, used, nullptr);
    expect_routes(u, {0, 0, 0, 1}, {0, -1, 1, 0});
    assert_int_equal(u.exp_counts[0], 2);
    assert_int_equal(u.dropped, 0);
    const double want = l_aux64(softmax64(l2, 4, 2), 4, 2, {0.5, 0.25}, 2.0);
    assert_true(std::fabs(u.l_aux - want) < 1e-6);

    /* DeepSpeed asserts S >= min_capacity for top-1. */
    GateConfig m = plain(1);
    m.min_capacity = 5;
    assert_int_equal(status_of([&] { gate(m, l2.data(), 4, 2, nullptr, nullptr); }), DSZ_ERR_INVALID_ARGUMENT);
}

static void test_top2_positions_and_renormalisation(void **) {
    /* C = ceil(4/3 * 2) = 3 (float32: 2.6666667). First choices of an expert
     * take slots before its second choices: expert 0 has firsts t0, t1, t3
     * (slots 0-2), so t2's second choice (slot 3) is dropped. */
    const std::vector<float> logits = {3, 2, 0, 3, 0, 2, 2, 3, 0, 3, 1, 0};
    const Routing r = gate(plain(2), logits.data(), 4, 3, nullptr, nullptr);
    assert_int_equal(r.capacity, 3);
    expect_routes(r, {0, 1, 0, 2, 1, 0, 0, 1}, {0, 1, 1, 0, 0, -1, 2, 2});
    assert_int_equal(r.dropped, 1);
    const std::vector<int64_t> counts = {4, 3, 1};
    assert_true(r.exp_counts == counts);
    expect_weights(r, logits);
    assert_true(r.weight[4] == 1.0f);  /* a lone surviving route gets weight 1 */
    /* l_aux = E^2 * mean_e(me * ce), ce from first choices = [3/4, 1/4, 0]. */
    const double want = l_aux64(softmax64(logits, 4, 3), 4, 3, {0.75, 0.25, 0.0}, 3.0);
    assert_true(std::fabs(r.l_aux - want) < 1e-6);

    /* No drop: capacity = largest count (4), or the group's MAX, rounded to tp. */
    GateConfig c = plain(2);
    c.drop_tokens = false;
    const Routing nd = gate(c, logits.data(), 4, 3, nullptr, nullptr);
    assert_int_equal(nd.capacity, 4);
    assert_int_equal(nd.dropped, 0);
    assert_int_equal(nd.slot[5], 3);
    int64_t asked = -1;
    const Routing g = gate(c, logits.data(), 4, 3, nullptr, [&](int64_t v) { asked = v; return int64_t{7}; });
    assert_int_equal(asked, 4);
    assert_int_equal(g.capacity, 7);
    c.tensor_parallel_size = 2;
    assert_int_equal(gate(c, logits.data(), 4, 3, nullptr, [](int64_t) { return int64_t{7}; }).capacity, 8);
}

static void test_top2_second_expert_sampling(void **) {
    GateConfig c = plain(2);
    c.top2_2nd_expert_sampling = true;
    c.seed = 42;
    c.capacity_factor = 8;
    std::mt19937 gen(5);
    std::normal_distribution<float> nd;
    std::vector<float> logits(32 * 6);
    for (float &v : logits) v = nd(gen);
    for (bool training : {true, false}) {  /* DeepSpeed samples in eval too */
        c.training = training;
        c.eval_capacity_factor = 8;
        const Routing r = gate(c, logits.data(), 32, 6, nullptr, nullptr);
        for (int s = 0; s < 32; ++s) {
            const float *l = &logits[s * 6];
            const int e1 = static_cast<int>(std::max_element(l, l + 6) - l);
            int e2 = -1;
            float best = -INFINITY;
            for (int e = 0; e < 6; ++e) {
                if (e == e1) continue;
                const float v = l[e] + static_cast<float>(gumbel(42, NoiseStream::gumbel, s * 6 + e));
                if (v > best) best = v, e2 = e;
            }
            assert_int_equal(r.expert[2 * s], e1);
            assert_int_equal(r.expert[2 * s + 1], e2);
        }
        expect_weights(r, logits);
    }
}

static void test_topk_drop_policies(void **) {
    /* k = 3, E = 4, C = ceil(4/4 * 3) = 3. Expert 0 is in every token's top 3:
     * "probs" drops its lowest gate (token 0, p = 0.087), "position" drops
     * the last token. */
    const std::vector<float> logits = {1, 3, 2, 0, 4, 0, 1, 2, 0.5f, 2, 0, 1, 2, 1, 0, 3};
    GateConfig c = plain(3);
    const Routing p = gate(c, logits.data(), 4, 4, nullptr, nullptr);
    assert_int_equal(p.capacity, 3);
    expect_routes(p, {1, 2, 0, 0, 3, 2, 1, 3, 0, 3, 0, 1}, {0, 0, -1, 0, 0, 1, 1, 1, 1, 2, 2, 2});
    expect_weights(p, logits);
    c.drop_policy = DropPolicy::position;
    const Routing q = gate(c, logits.data(), 4, 4, nullptr, nullptr);
    expect_routes(q, {1, 2, 0, 0, 3, 2, 1, 3, 0, 3, 0, 1}, {0, 0, 0, 1, 0, 1, 1, 1, 2, 2, -1, 2});
    expect_weights(q, logits);
    /* l_aux = E^2 / k * mean_e(me * ce), ce from the k-hot mask. */
    const double want = l_aux64(softmax64(logits, 4, 4), 4, 4, {1.0, 0.75, 0.5, 0.75}, 4.0 / 3.0);
    assert_true(std::fabs(p.l_aux - want) < 1e-6);
    assert_true(std::fabs(q.l_aux - want) < 1e-6);
    assert_int_equal(p.dropped, 1);
}

static void test_bad_configs(void **) {
    const std::vector<float> l = {0, 1, 2, 3};
    GateConfig c = plain(3);
    assert_int_equal(status_of([&] { gate(c, l.data(), 2, 2, nullptr, nullptr); }), DSZ_ERR_INVALID_ARGUMENT);
    c = plain(2);
    const uint8_t used[2] = {1, 1};
    assert_int_equal(status_of([&] { gate(c, l.data(), 2, 2, used, nullptr); }), DSZ_ERR_INVALID_ARGUMENT);
    c.noise = NoisePolicy::rsample;
    assert_int_equal(status_of([&] { gate(c, l.data(), 2, 2, nullptr, nullptr); }), DSZ_ERR_INVALID_ARGUMENT);
    const std::vector<float> bad = {0, NAN, 1, 2};
    assert_int_equal(status_of([&] { gate(plain(1), bad.data(), 2, 2, nullptr, nullptr); }), DSZ_ERR_INVALID_ARGUMENT);
    c = plain(1);
    c.capacity_factor = -1;
    assert_int_equal(status_of([&] { gate(c, l.data(), 2, 2, nullptr, nullptr); }), DSZ_ERR_INVALID_ARGUMENT);
    assert_int_equal(status_of([&] { gate(plain(1), l.data(), 0, 2, nullptr, nullptr); }), DSZ_ERR_SHAPE);
}

/* L = sum_r c_r w_r + a * l_aux through the float64 formulas, at fixed routes. */
static double loss64(const std::vector<double> &logits, const Routing &r, const std::vector<double> &c, double a) {
    const int64_t S = r.tokens, E = r.experts;
    std::vector<double> p(logits.size());
    for (int64_t s = 0; s < S; ++s) {
        double mx = -INFINITY, sum = 0;
        for (int64_t e = 0; e < E; ++e) mx = std::max(mx, logits[s * E + e]);
        for (int64_t e = 0; e < E; ++e) sum += p[s * E + e] = std::exp(logits[s * E + e] - mx);
        for (int64_t e = 0; e < E; ++e) p[s * E + e] /= sum;
    }
    const std::vector<double> w = weights64(p, r);
    double L = 0;
    for (size_t i = 0; i < w.size(); ++i) L += c[i] * w[i];
    std::vector<double> ce(r.ce.begin(), r.ce.end());
    return L + a * l_aux64(p, S, E, ce, r.aux_scale);
}

static void check_gradient(GateConfig cfg, int64_t S, int64_t E, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> nd;
    std::vector<float> logits(static_cast<size_t>(S * E));
    for (float &v : logits) v = nd(gen);
    const Routing r = gate(cfg, logits.data(), S, E, nullptr, nullptr);
    assert_true(r.dropped > 0);  /* the cases are chosen to drop some routes */
    std::vector<double> c(r.expert.size());
    std::vector<float> cf(c.size());
    for (size_t i = 0; i < c.size(); ++i) cf[i] = static_cast<float>(c[i] = nd(gen));
    const double a = 0.7;
    std::vector<float> d_logits(logits.size()), d_probs(logits.size());
    gate_backward(r, cf.data(), a, d_probs.data(), d_logits.data());
    std::vector<double> x(logits.begin(), logits.end());
    const double h = 1e-6;
    for (size_t i = 0; i < x.size(); ++i) {
        const double keep = x[i];
        x[i] = keep + h;
        const double up = loss64(x, r, c, a);
        x[i] = keep - h;
        const double down = loss64(x, r, c, a);
        x[i] = keep;
        const double fd = (up - down) / (2 * h);
        if (std::fabs(fd - d_logits[i]) > 1e-5 + 1e-4 * std::fabs(fd))
            print_error("k=%d logit %zu: backward %.8g, finite difference %.8g\n", cfg.k, i, d_logits[i], fd);
        assert_true(std::fabs(fd - d_logits[i]) <= 1e-5 + 1e-4 * std::fabs(fd));
    }
    /* The same routing's forward weights match the float64 formulas. */
    expect_weights(r, logits);
    /* d_probs: dL/dp_e of a row sums against the softmax Jacobian to d_logits. */
    for (int64_t s = 0; s < S; ++s) {
        double pdp = 0;
        for (int64_t e = 0; e < E; ++e) pdp += r.probs[s * E + e] * d_probs[s * E + e];
        for (int64_t e = 0; e < E; ++e)
            assert_true(std::fabs(r.probs[s * E + e] * (d_probs[s * E + e] - pdp) - d_logits[s * E + e]) < 1e-6);
    }
}

static void test_gradients_against_finite_differences(void **) {
    GateConfig c1 = plain(1);
    c1.capacity_factor = 0.5;
    c1.use_rts = true;
    c1.seed = 11;
    check_gradient(c1, 12, 3, 1);
    GateConfig c2 = plain(2);
    c2.capacity_factor = 0.5;
    c2.top2_2nd_expert_sampling = true;
    c2.seed = 12;
    check_gradient(c2, 12, 4, 2);
    GateConfig c3 = plain(3);
    c3.capacity_factor = 0.6;
    check_gradient(c3, 10, 5, 3);
    c3.drop_policy = DropPolicy::position;
    check_gradient(c3, 10, 5, 4);
}

static void test_jitter(void **) {
    std::vector<float> x(1000, 2.0f), m(1000);
    jitter(x.data(), x.size(), 0.01, 5, m.data());
    double mean = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        assert_true(m[i] >= 0.99f && m[i] <= 1.01f);
        assert_true(x[i] == 2.0f * m[i]);
        mean += m[i];
    }
    assert_true(std::fabs(mean / 1000 - 1.0) < 1e-3);
    std::vector<float> y(1000, 2.0f);
    jitter(y.data(), y.size(), 0.01, 5, nullptr);
    assert_true(x == y);
    assert_int_equal(status_of([&] { jitter(y.data(), 1, 1.5, 0, nullptr); }), DSZ_ERR_INVALID_ARGUMENT);
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capacity_in_float32),
        cmocka_unit_test(test_top1_position_drop),
        cmocka_unit_test(test_top1_random_token_selection),
        cmocka_unit_test(test_top1_rsample_used_token_and_min_capacity),
        cmocka_unit_test(test_top2_positions_and_renormalisation),
        cmocka_unit_test(test_top2_second_expert_sampling),
        cmocka_unit_test(test_topk_drop_policies),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_gradients_against_finite_differences),
        cmocka_unit_test(test_jitter),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
