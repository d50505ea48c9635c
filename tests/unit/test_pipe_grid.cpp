/*
 * test_pipe_grid.cpp -- the process grid of pipeline parallelism
 * (comm/topology.h) with its model axis: DeepSpeed's rank layout (axes
 * pipe, data, model; the last fastest), coordinates both ways, the group
 * lists of every kind, and refusals; plus the schedule's instruction names.
 */
#include <cstring>
#include <vector>

#include "comm/topology.h"
#include "common/error.h"
#include "pipe/schedule.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
/* CMocka last: it defines a fail() macro. */
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

using namespace dsz;
using namespace dsz::comm;

#define EXPECT_ERROR(code, substr, stmt)                                                  \
    do {                                                                                  \
        bool thrown_ = false;                                                             \
        try {                                                                             \
            stmt;                                                                         \
        } catch (const dsz::Error &e_) {                                                  \
            thrown_ = true;                                                               \
            if (e_.status() != (code) || !std::strstr(e_.what(), (substr)))               \
                fail_msg("status %d message '%s', expected %d containing '%s'",           \
                         (int)e_.status(), e_.what(), (int)(code), (substr));             \
        }                                                                                 \
        if (!thrown_) fail_msg("no error thrown by %s", #stmt);                           \
    } while (0)

using Groups = std::vector<std::vector<int>>;

static void test_layout_last_axis_fastest(void **) {
    TopologySpec s;
    s.pipeline = 2;
    s.model = 2;
    /* 8 ranks, D = 2: rank = (stage * 2 + d) * 2 + m */
    for (int r = 0; r < 8; ++r) {
        const GridCoord c = Topology::coord_of(s, 8, r);
        assert_int_equal(c.stage, r / 4);
        assert_int_equal(c.data, (r / 2) % 2);
        assert_int_equal(c.model, r % 2);
        assert_int_equal(Topology::rank_of(s, 8, c), r);
    }
    assert_true((Topology::data_groups(s, 8) == Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
    assert_true((Topology::pipeline_groups(s, 8) == Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
    assert_true((Topology::model_groups(s, 8) == Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
    /* without a model axis: PipeDataParallelTopology, rank = stage * D + d */
    TopologySpec pd;
    pd.pipeline = 2;
    assert_true((Topology::data_groups(pd, 6) == Groups{{0, 1, 2}, {3, 4, 5}}));
    assert_true((Topology::pipeline_groups(pd, 6) == Groups{{0, 3}, {1, 4}, {2, 5}}));
    assert_true((Topology::model_groups(pd, 6) == Groups{{0}, {1}, {2}, {3}, {4}, {5}}));
}

static void test_experts_within_model_rank(void **) {
    TopologySpec s;
    s.pipeline = 1;
    s.model = 2;
    s.expert = 2;
    /* 8 ranks, D = 4; model rank 0 holds ranks 0 2 4 6 (d = 0..3) */
    assert_true((Topology::expert_groups(s, 8) == Groups{{0, 2}, {4, 6}, {1, 3}, {5, 7}}));
    assert_true((Topology::expert_data_groups(s, 8) == Groups{{0, 4}, {2, 6}, {1, 5}, {3, 7}}));
}

static void test_refusals(void **) {
    TopologySpec s;
    s.pipeline = 2;
    s.model = 3;
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "model-parallel size 3", Topology::validate(s, 8));
    s.model = 1;
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "rank 8 is outside", Topology::coord_of(s, 8, 8));
    s.pipeline = 3;
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "3 pipeline stages", Topology::validate(s, 8));
}

static void test_instruction_names(void **) {
    assert_string_equal(pipe::op_name(pipe::Op::send_activation), "SendActivation");
    assert_string_equal(pipe::op_name(pipe::Op::optimizer_step), "OptimizerStep");
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "stages is 0", pipe::make_schedule(pipe::ScheduleKind::train, 1, 0, 0));
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_last_axis_fastest),
        cmocka_unit_test(test_experts_within_model_rank),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_instruction_names),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
