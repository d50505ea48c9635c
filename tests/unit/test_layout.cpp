/*
 * test_layout.cpp -- the flat ZeRO layout (src/zero/layout.h) against
 * DeepSpeed's rules (reference §5.1): concatenation in group order, padding
 * to a multiple of 2 x world size, equal partitions, DeepSpeed's per-rank
 * padding formula, and partition overlaps.
 */
#include "common/error.h"
#include "zero/layout.h"

/* cmocka.h defines a fail() macro: include it after dszero's headers. */
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
extern "C" {
#include <cmocka.h>
}

using namespace dsz;

static void test_single_group_padding(void **) {
    /* 3 parameters of 5, 7 and 1 elements: 13 elements. */
    const std::vector<LayoutParam> p = {{5, 0}, {7, 0}, {1, 0}};
    for (int w : {1, 2, 3, 4, 8}) {
        const FlatLayout L = make_flat_layout(p, 1, w);
        const GroupLayout &g = L.groups[0];
        assert_int_equal(g.numel, 13);
        assert_int_equal(g.padded % (2 * w), 0);
        assert_true(g.padded >= 13 && g.padded < 13 + 2 * static_cast<size_t>(w));
        assert_int_equal(g.partition * w, g.padded);
        assert_int_equal(L.param_offset[0], 0);
        assert_int_equal(L.param_offset[1], 5);
        assert_int_equal(L.param_offset[2], 12);
        /* DeepSpeed's padding of rank r: P if numel <= r*P, r*P+P-numel if numel < r*P+P, else 0. */
        size_t total_pad = 0;
        for (int r = 0; r < w; ++r) {
            const size_t P = g.partition, lo = r * P;
            const size_t pad = g.numel <= lo ? P : g.numel < lo + P ? lo + P - g.numel : 0;
            size_t covered = 0;
            for (size_t i = 0; i < p.size(); ++i) covered += partition_overlap(g, r, L.param_offset[i], p[i].numel).size();
            assert_int_equal(covered + pad, P);
            total_pad += pad;
        }
        assert_int_equal(total_pad, g.padded - g.numel);
    }
    assert_int_equal(make_flat_layout(p, 1, 2).groups[0].padded, 16);
    assert_int_equal(make_flat_layout(p, 1, 4).groups[0].padded, 16);
    assert_int_equal(make_flat_layout(p, 1, 8).groups[0].padded, 16);
    assert_int_equal(make_flat_layout(p, 1, 1).groups[0].padded, 14);
}

static void test_groups_and_straddling(void **) {
    const std::vector<LayoutParam> p = {{10, 1}, {3, 0}, {6, 1}, {4, 0}};
    const FlatLayout L = make_flat_layout(p, 2, 2);
    assert_int_equal(L.groups[0].numel, 7);
    assert_int_equal(L.groups[1].numel, 16);
    assert_int_equal(L.groups[0].padded, 8);
    assert_int_equal(L.groups[1].padded, 16);
    assert_int_equal(L.param_offset[2], 10);
    assert_int_equal(L.param_offset[3], 3);
    assert_int_equal(L.groups[1].params[1], 2);
    /* Parameter 0 (10 elements) straddles rank 0's [0,8) and rank 1's [8,16). */
    const Range a = partition_overlap(L.groups[1], 0, 0, 10), b = partition_overlap(L.groups[1], 1, 0, 10);
    assert_int_equal(a.begin, 0);
    assert_int_equal(a.end, 8);
    assert_int_equal(b.begin, 8);
    assert_int_equal(b.end, 10);
    assert_int_equal(partition_overlap(L.groups[1], 0, 10, 6).size(), 0);
}

static void test_empty_group_and_errors(void **) {
    const FlatLayout L = make_flat_layout({{4, 0}}, 2, 4);
    assert_int_equal(L.groups[1].padded, 0);
    assert_int_equal(L.groups[1].partition, 0);
    bool threw = false;
    try {
        make_flat_layout({{4, 2}}, 2, 1);
    } catch (const Error &e) {
        threw = e.status() == DSZ_ERR_INVALID_ARGUMENT && std::string(e.what()).find("group 2") != std::string::npos;
    }
    assert_true(threw);
    threw = false;
    try {
        make_flat_layout({{4, 0}}, 1, 0);
    } catch (const Error &e) {
        threw = e.status() == DSZ_ERR_INVALID_ARGUMENT;
    }
    assert_true(threw);
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_group_padding),
        cmocka_unit_test(test_groups_and_straddling),
        cmocka_unit_test(test_empty_group_and_errors),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
