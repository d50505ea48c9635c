/*
 * test_comm_local.cpp -- the parts of src/comm that need no second process:
 * partitions, the rank-order reduction kernel, launcher detection, option
 * resolution, the local backend (and that it never initialises MPI), the
 * consistency checks and the topology layout.
 */
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#ifdef DSZ_HAVE_MPI
#include <mpi.h>
#endif

#include "comm/communicator.h"
#include "comm/consistency.h"
#include "comm/launcher.h"
#include "comm/reduce.h"
#include "comm/staging.h"
#include "comm/topology.h"
#include "common/error.h"
#include "common/half.h"

/* CMocka last: it defines a fail() macro. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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

static std::unique_ptr<Communicator> local() {
    CommOptions o;
    o.backend = Backend::local;
    return create_communicator(o);
}

static void test_partition(void **) {
    Partition p = Partition::even(10, 4);
    assert_int_equal(p.parts(), 4);
    assert_int_equal(p.count(0), 3);
    assert_int_equal(p.count(1), 3);
    assert_int_equal(p.count(2), 2);
    assert_int_equal(p.count(3), 2);
    assert_int_equal(p.offset(3), 8);
    assert_int_equal(p.total(), 10);
    Partition z = Partition::even(2, 4);
    assert_int_equal(z.count(3), 0);
    assert_int_equal(z.offset(3), 2);
    Partition c = Partition::from_counts({5, 0, 7});
    assert_int_equal(c.offset(2), 5);
    assert_int_equal(c.total(), 12);
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "at least one part", Partition::even(3, 0));
}

static void test_reduce_order(void **) {
    /* (1e8 + 1) - 1e8 is 0 in float32 left to right; another order gives 1. */
    float a[3] = {1e8f, 1.0f, 0.5f}, b[3] = {1.0f, 2.0f, 0.25f}, c[3] = {-1e8f, 3.0f, 0.125f};
    const void *srcs[3] = {a, b, c};
    float out[3];
    reduce_in_order(ElemType::f32, ReduceOp::sum, out, srcs, 3, 3);
    assert_true(out[0] == (1e8f + 1.0f) + -1e8f);
    assert_true(out[0] == 0.0f);
    assert_true(out[1] == 6.0f);
    /* dst may alias a source that is read after it */
    float a2[3] = {1e8f, 1.0f, 0.5f}, b2[3] = {1.0f, 2.0f, 0.25f}, c2[3] = {-1e8f, 3.0f, 0.125f};
    const void *srcs2[3] = {a2, b2, c2};
    reduce_in_order(ElemType::f32, ReduceOp::sum, c2, srcs2, 3, 3);
    assert_memory_equal(c2, out, sizeof out);
}

static void test_reduce_chunking_invariant(void **) {
    const size_t n = 5000;
    std::vector<std::vector<float>> in(4, std::vector<float>(n));
    srand(7);
    for (auto &v : in)
        for (float &x : v) x = static_cast<float>(rand()) / RAND_MAX * 2e3f - 1e3f;
    const void *srcs[4] = {in[0].data(), in[1].data(), in[2].data(), in[3].data()};
    std::vector<float> whole(n), pieces(n);
    reduce_in_order(ElemType::f32, ReduceOp::sum, whole.data(), srcs, 4, n);
    for (size_t at = 0; at < n;) {
        size_t len = std::min<size_t>(n - at, 1 + static_cast<size_t>(rand()) % 1500);
        const void *s[4] = {in[0].data() + at, in[1].data() + at, in[2].data() + at, in[3].data() + at};
        reduce_in_order(ElemType::f32, ReduceOp::sum, pieces.data() + at, s, 4, len);
        at += len;
    }
    assert_memory_equal(whole.data(), pieces.data(), n * sizeof(float));
    for (size_t i = 0; i < n; ++i) {
        float ref = ((in[0][i] + in[1][i]) + in[2][i]) + in[3][i];
        assert_true(std::memcmp(&ref, &whole[i], 4) == 0);
    }
}

static void test_reduce_types(void **) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    float x[2] = {1.0f, nan}, y[2] = {nan, 2.0f}, mx[2];
    const void *s[2] = {x, y};
    reduce_in_order(ElemType::f32, ReduceOp::max, mx, s, 2, 2);
    assert_true(std::isnan(mx[0]) && std::isnan(mx[1]));
    reduce_in_order(ElemType::f32, ReduceOp::min, mx, s, 2, 2);
    assert_true(std::isnan(mx[0]) && std::isnan(mx[1]));

    int64_t i1[2] = {INT64_MAX, -5}, i2[2] = {1, 3}, io[2];
    const void *si[2] = {i1, i2};
    reduce_in_order(ElemType::i64, ReduceOp::sum, io, si, 2, 2);
    assert_true(io[0] == INT64_MIN); /* wraps, no UB */
    assert_int_equal(io[1], -2);
    reduce_in_order(ElemType::i64, ReduceOp::max, io, si, 2, 2);
    assert_true(io[0] == INT64_MAX);
    assert_int_equal(io[1], 3);

    double d1[1] = {0.1}, d2[1] = {0.2}, d3[1] = {0.3}, dout[1];
    const void *sd[3] = {d1, d2, d3};
    reduce_in_order(ElemType::f64, ReduceOp::sum, dout, sd, 3, 1);
    assert_true(dout[0] == (0.1 + 0.2) + 0.3);

    /* fp16: each addition rounds: 2048 + 1 = 2048 in fp16, twice. */
    uint16_t h1[1] = {float_to_fp16(2048.0f)}, h2[1] = {float_to_fp16(1.0f)}, h3[1] = {float_to_fp16(1.0f)}, ho[1];
    const void *sh[3] = {h1, h2, h3};
    reduce_in_order(ElemType::f16, ReduceOp::sum, ho, sh, 3, 1);
    assert_true(fp16_to_float(ho[0]) == 2048.0f);
    uint16_t b1[1] = {float_to_bf16(1.0f)}, b2[1] = {float_to_bf16(2.0f)}, bo[1];
    const void *sb[2] = {b1, b2};
    reduce_in_order(ElemType::bf16, ReduceOp::max, bo, sb, 2, 1);
    assert_true(bf16_to_float(bo[0]) == 2.0f);
    uint8_t u1[1] = {200}, u2[1] = {100}, uo[1];
    const void *su[2] = {u1, u2};
    reduce_in_order(ElemType::u8, ReduceOp::sum, uo, su, 2, 1);
    assert_int_equal(uo[0], 44);
}

static LauncherInfo detect(const std::map<std::string, std::string> &env) {
    return detect_launcher([&](const char *name) -> const char * {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    });
}

static void test_launcher(void **) {
    LauncherInfo none = detect({});
    assert_false(none.launched);
    LauncherInfo o = detect({{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "2"},
                             {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}, {"PMIX_RANK", "2"}});
    assert_true(o.launched);
    assert_string_equal(o.source.c_str(), "mpirun");
    assert_int_equal(o.world_size, 4);
    assert_int_equal(o.rank, 2);
    LauncherInfo px = detect({{"PMIX_RANK", "3"}});
    assert_true(px.launched);
    assert_int_equal(px.world_size, 0);
    assert_int_equal(px.rank, 3);
    /* A batch script has SLURM_PROCID but no step: not launched. */
    LauncherInfo batch = detect({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}});
    assert_false(batch.launched);
    LauncherInfo srun = detect({{"SLURM_PROCID", "5"}, {"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_LOCALID", "1"}});
    assert_true(srun.launched);
    assert_string_equal(srun.source.c_str(), "srun");
    assert_int_equal(srun.world_size, 8);
    assert_int_equal(srun.rank, 5);
    LauncherInfo bad = detect({{"OMPI_COMM_WORLD_SIZE", "four"}});
    assert_false(bad.launched);
    LauncherInfo hydra = detect({{"PMI_SIZE", "2"}, {"PMI_RANK", "1"}});
    assert_true(hydra.launched);
    assert_int_equal(hydra.rank, 1);
}

static void test_options(void **) {
    unsetenv("DSZ_COMM_TIMEOUT");
    assert_true(resolve_timeout(0) == 300.0);
    assert_true(resolve_timeout(7.5) == 7.5);
    setenv("DSZ_COMM_TIMEOUT", "12", 1);
    assert_true(resolve_timeout(0) == 12.0);
    assert_true(resolve_timeout(3) == 3.0);
    setenv("DSZ_COMM_TIMEOUT", "soon", 1);
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "DSZ_COMM_TIMEOUT", resolve_timeout(0));
    unsetenv("DSZ_COMM_TIMEOUT");
    assert_int_equal(resolve_chunk_bytes(0), 1 << 20);
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "chunk", resolve_chunk_bytes(100));

    setenv("DSZ_COMM_BACKEND", "carrier-pigeon", 1);
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "DSZ_COMM_BACKEND", create_communicator());
    unsetenv("DSZ_COMM_BACKEND");

    CommOptions o;
    o.world_size = 4;
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "no launcher", create_communicator(o));
    o.world_size = 0;
    o.rank = 1;
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "rank 1", create_communicator(o));
    o.rank = 0;
    o.world_size = 1;
    auto c = create_communicator(o);
    assert_string_equal(c->backend(), "local");
    assert_true(c->timeout() == 300.0);
    c->set_timeout(2);
    assert_true(c->timeout() == 2.0);
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "timeout", c->set_timeout(0));
}

static void test_local_collectives(void **) {
    auto c = local();
    assert_int_equal(c->rank(), 0);
    assert_int_equal(c->size(), 1);
    assert_int_equal(c->next_sequence(), 0);
    std::vector<float> a = {1, 2, 3}, b(3);
    c->all_reduce(a.data(), b.data(), 3, ElemType::f32, ReduceOp::sum);
    assert_memory_equal(a.data(), b.data(), 12);
    c->all_reduce(a.data(), 3, ReduceOp::max); /* in place */
    assert_true(a[2] == 3.0f);
    assert_true(c->all_reduce_value<int64_t>(41, ReduceOp::sum) == 41);

    std::vector<double> big(100, 1.5), part(100);
    c->reduce_scatter(big.data(), part.data(), Partition::even(100, 1), ElemType::f64, ReduceOp::sum);
    assert_memory_equal(big.data(), part.data(), 800);
    std::vector<double> g(100);
    c->all_gather(part.data(), g.data(), Partition::even(100, 1), sizeof(double));
    assert_memory_equal(big.data(), g.data(), 800);
    c->all_gather(g.data(), g.data(), Partition::even(100, 1), sizeof(double)); /* in place */

    char msg[6] = "hello";
    c->broadcast(msg, 6, 0);
    assert_string_equal(msg, "hello");
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "rank 1 is out of range", c->broadcast(msg, 6, 1));
    char out[6] = {0};
    c->all_to_all(msg, out, 6);
    assert_string_equal(out, "hello");
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "expected 1 size",
                 c->all_to_allv(msg, {3, 3}, out, {6}));
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "2 parts",
                 c->reduce_scatter(big.data(), part.data(), Partition::even(100, 2), ElemType::f64,
                                   ReduceOp::sum));
    c->barrier();
    Request r = c->ibarrier();
    assert_true(r.test());
    r.wait();
    assert_true(c->next_sequence() > 5);
}

static void test_local_p2p(void **) {
    auto c = local();
    int x = 5, y = 0, z = 0;
    c->send(&x, sizeof x, 0, 3); /* queued */
    c->recv(&y, sizeof y, 0, 3);
    assert_int_equal(y, 5);
    Request r = c->irecv(&z, sizeof z, 0, 4); /* posted first */
    assert_true(r.pending());
    assert_false(r.test() && false);
    x = 9;
    c->send(&x, sizeof x, 0, 4);
    r.wait();
    assert_int_equal(z, 9);
    /* same tag: first sent, first received */
    int a = 1, b = 2, p = 0, q = 0;
    c->send(&a, 4, 0, 1);
    c->send(&b, 4, 0, 1);
    c->recv(&p, 4, 0, 1);
    c->recv(&q, 4, 0, 1);
    assert_int_equal(p, 1);
    assert_int_equal(q, 2);
    c->send(&a, 4, 0, 2);
    EXPECT_ERROR(DSZ_ERR_COMM, "sent 4 bytes, expected 8", c->recv(&p, 8, 0, 2));
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "tag", c->send(&a, 4, 0, -1));
}

static void test_local_timeout(void **) {
    auto c = local();
    c->set_timeout(0.05);
    int v = 0;
    EXPECT_ERROR(DSZ_ERR_TIMEOUT, "recv #0 (4 bytes from rank 0, tag 7) on 'world' [rank 0 of 1] timed out",
                 c->recv(&v, 4, 0, 7));
    assert_true(c->failed());
    EXPECT_ERROR(DSZ_ERR_COMM, "failed earlier", c->barrier());
}

static void test_local_groups(void **) {
    auto c = local();
    auto g = c->make_group({0}, "solo");
    assert_non_null(g.get());
    assert_string_equal(g->name().c_str(), "solo");
    assert_int_equal(g->size(), 1);
    assert_null(c->split(-1, 0, "none").get());
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "out of range", c->make_group({1}, "bad"));

    std::shared_ptr<Communicator> w(local());
    Topology t(w, TopologySpec());
    assert_int_equal(t.data().size(), 1);
    assert_int_equal(t.pipeline().size(), 1);
    assert_int_equal(t.expert().size(), 1);
    assert_int_equal(t.expert_data().size(), 1);
    TopologySpec two;
    two.pipeline = 2;
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "do not divide", Topology(w, two));
}

static void test_topology_layout(void **) {
    TopologySpec s;
    s.pipeline = 2;
    s.expert = 2;
    /* 8 ranks: stages {0..3}, {4..7}; experts [0,1] [2,3]; expert-data {0,2} {1,3} */
    auto dg = Topology::data_groups(s, 8);
    assert_int_equal(dg.size(), 2);
    assert_true((dg[1] == std::vector<int>{4, 5, 6, 7}));
    auto pg = Topology::pipeline_groups(s, 8);
    assert_int_equal(pg.size(), 4);
    assert_true((pg[1] == std::vector<int>{1, 5}));
    auto eg = Topology::expert_groups(s, 8);
    assert_int_equal(eg.size(), 4);
    assert_true((eg[3] == std::vector<int>{6, 7}));
    auto edg = Topology::expert_data_groups(s, 8);
    assert_int_equal(edg.size(), 4);
    assert_true((edg[0] == std::vector<int>{0, 2}));
    assert_true((edg[3] == std::vector<int>{5, 7}));
    s.expert = 3;
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "expert-parallel size 3", Topology::expert_groups(s, 8));
}

static void test_consistency_single(void **) {
    auto c = local();
    int v = 3;
    check_consistent(*c, "registration", &v, sizeof v);
    check_consistent(*c, "params", std::vector<std::string>{"a float32 [2]", "b float32 [3]"});
    assert_true(digest("abc", 3) != digest("abd", 3));
    assert_true(digest("abc", 3) == digest("abc", 3));
    assert_true(digest("", 0) != digest("", 0, 1));
}

static void test_staging_pool(void **) {
    StagingPool pool(1 << 16);
    char *a = pool.acquire(), *b = pool.acquire();
    assert_true(a != b);
    pool.release(a);
    assert_true(pool.acquire() == a); /* reused, not reallocated */
    assert_int_equal(pool.allocated(), 2);
    pool.release(a);
    pool.release(b);
    assert_int_equal(pool.in_use(), 0);
}

static void test_no_mpi_without_launcher(void **) {
    auto c = create_communicator();
    assert_string_equal(c->backend(), "local");
#ifdef DSZ_HAVE_MPI
    assert_true(mpi_compiled());
    int inited = 1;
    MPI_Initialized(&inited);
    assert_int_equal(inited, 0);
#endif
}

int main(void) {
    /* This program is single-process by design; make sure a stray launcher
     * environment does not turn it into something else. */
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMIX_RANK");
    unsetenv("PMI_SIZE");
    unsetenv("SLURM_STEP_NUM_TASKS");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition),          cmocka_unit_test(test_reduce_order),
        cmocka_unit_test(test_reduce_chunking_invariant), cmocka_unit_test(test_reduce_types),
        cmocka_unit_test(test_launcher),           cmocka_unit_test(test_options),
        cmocka_unit_test(test_local_collectives),  cmocka_unit_test(test_local_p2p),
        cmocka_unit_test(test_local_timeout),      cmocka_unit_test(test_local_groups),
        cmocka_unit_test(test_topology_layout),    cmocka_unit_test(test_consistency_single),
        cmocka_unit_test(test_staging_pool),       cmocka_unit_test(test_no_mpi_without_launcher),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
