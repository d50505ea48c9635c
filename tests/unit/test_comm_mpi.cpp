/*
 * test_comm_mpi.cpp -- every collective against a reference, at any world
 * size. CTest runs it three ways: plainly (one rank, local backend, no MPI)
 * and under mpirun -np 2 and -np 4 (tests/mpi/comm_mpi_tests.cmake).
 *
 * Values are small multiples of 1/4 so that rank-order sums are exact and
 * can be compared bit for bit with a sum in double. Random-float tests check
 * what the ZeRO engine relies on: all_reduce is bitwise equal to
 * reduce_scatter + all_gather over any bucket split and any chunk size.
 * All ranks run the same tests in the same order; a failing assertion on one
 * rank ends in the others' timeout rather than a hang.
 */
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#ifdef DSZ_HAVE_MPI
#include <mpi.h>
#endif

#include "comm/communicator.h"
#include "comm/consistency.h"
#include "comm/reduce.h"
#include "comm/topology.h"
#include "common/error.h"
#include "common/half.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

using namespace dsz;
using namespace dsz::comm;

static std::shared_ptr<Communicator> g_world; /* default chunk size */
static std::shared_ptr<Communicator> g_small; /* 4 KiB chunks: many-chunk pipelines at small sizes */

static std::vector<Communicator *> comms() { return {g_world.get(), g_small.get()}; }

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

static double value(int rank, size_t i) { return (rank + 1) * 0.25 + static_cast<double>(i % 1013); }

template <class T> static T as(double v) { return static_cast<T>(v); }

template <class T> static void fill(std::vector<T> &v, int rank, size_t offset = 0) {
    for (size_t i = 0; i < v.size(); ++i) v[i] = as<T>(value(rank, i + offset) * (std::is_integral<T>::value ? 4 : 1));
}

template <class T> static T reference(int W, size_t i, ReduceOp op) {
    const double k = std::is_integral<T>::value ? 4 : 1;
    double acc = value(0, i) * k;
    for (int r = 1; r < W; ++r) {
        double x = value(r, i) * k;
        acc = op == ReduceOp::sum ? acc + x : op == ReduceOp::max ? std::max(acc, x) : std::min(acc, x);
    }
    return as<T>(acc);
}

static const size_t kSizes[] = {0, 1, 2, 3, 4, 5, 7, 1001, 70001, 300007};

template <class T> static void check_all_reduce(Communicator &c, size_t n, ReduceOp op, bool in_place) {
    std::vector<T> in(n), out(n);
    fill(in, c.rank());
    if (in_place) {
        c.all_reduce(in.data(), in.data(), n, ElemTypeOf<T>::value, op);
        out = in;
    } else {
        c.all_reduce(in.data(), out.data(), n, ElemTypeOf<T>::value, op);
    }
    for (size_t i = 0; i < n; ++i) {
        const T want = reference<T>(c.size(), i, op);
        if (std::memcmp(&want, &out[i], sizeof(T)))
            fail_msg("all_reduce %s n=%zu elem %zu: got %g want %g (%s)", reduce_name(op), n, i,
                     static_cast<double>(out[i]), static_cast<double>(want), c.name().c_str());
    }
}

static void test_all_reduce(void **) {
    for (Communicator *c : comms())
        for (size_t n : kSizes) {
            check_all_reduce<float>(*c, n, ReduceOp::sum, false);
            check_all_reduce<float>(*c, n, ReduceOp::sum, true);
            check_all_reduce<double>(*c, n, ReduceOp::sum, true);
            check_all_reduce<int64_t>(*c, n, ReduceOp::sum, false);
            check_all_reduce<int32_t>(*c, n, ReduceOp::max, false);
            check_all_reduce<float>(*c, n, ReduceOp::max, true);
            check_all_reduce<double>(*c, n, ReduceOp::min, false);
        }
}

static void test_all_reduce_half(void **) {
    for (Communicator *c : comms()) {
        const size_t n = 5003;
        std::vector<uint16_t> h(n), b(n);
        for (size_t i = 0; i < n; ++i) {
            h[i] = float_to_fp16(static_cast<float>(c->rank() + 1 + i % 7));
            b[i] = float_to_bf16(static_cast<float>(c->rank() + 1 + i % 5));
        }
        c->all_reduce(h.data(), h.data(), n, ElemType::f16, ReduceOp::sum);
        c->all_reduce(b.data(), b.data(), n, ElemType::bf16, ReduceOp::max);
        const int W = c->size();
        for (size_t i = 0; i < n; ++i) {
            assert_true(fp16_to_float(h[i]) == static_cast<float>(W * (W + 1) / 2 + W * static_cast<int>(i % 7)));
            assert_true(bf16_to_float(b[i]) == static_cast<float>(W + i % 5));
        }
    }
}

static std::vector<Partition> partitions(int W, size_t scale) {
    std::vector<Partition> out;
    out.push_back(Partition::even(scale * W + 2 * W, W));
    out.push_back(Partition::even(scale + 1, W));
    std::vector<size_t> counts(static_cast<size_t>(W));
    for (int r = 0; r < W; ++r) counts[static_cast<size_t>(r)] = (static_cast<size_t>(r) * 7 + 3) % 11 * scale / 5;
    out.push_back(Partition::from_counts(counts));
    std::vector<size_t> one(static_cast<size_t>(W), 0);
    one[static_cast<size_t>(W - 1)] = scale;
    out.push_back(Partition::from_counts(one));
    out.push_back(Partition::from_counts(std::vector<size_t>(static_cast<size_t>(W), 0)));
    return out;
}

static void test_reduce_scatter(void **) {
    for (Communicator *c : comms())
        for (size_t scale : {size_t(1), size_t(3), size_t(40001)})
            for (const Partition &p : partitions(c->size(), scale)) {
                std::vector<float> in(p.total()), out(p.count(c->rank()) + 1, -7.0f);
                fill(in, c->rank());
                c->reduce_scatter(in.data(), out.data(), p, ElemType::f32, ReduceOp::sum);
                for (size_t i = 0; i < p.count(c->rank()); ++i)
                    assert_true(out[i] == reference<float>(c->size(), p.offset(c->rank()) + i, ReduceOp::sum));
                assert_true(out.back() == -7.0f); /* nothing written past the slice */
                /* in place: the result lands on this rank's slice of the input */
                std::vector<int64_t> io(p.total());
                fill(io, c->rank());
                c->reduce_scatter(io.data(), io.data() + p.offset(c->rank()), p, ElemType::i64, ReduceOp::max);
                for (size_t i = 0; i < p.count(c->rank()); ++i)
                    assert_true(io[p.offset(c->rank()) + i] ==
                                reference<int64_t>(c->size(), p.offset(c->rank()) + i, ReduceOp::max));
            }
}

static void test_all_gather(void **) {
    for (Communicator *c : comms())
        for (size_t scale : {size_t(1), size_t(5), size_t(100003)})
            for (const Partition &p : partitions(c->size(), scale))
                for (size_t eb : {size_t(1), size_t(2), size_t(8)}) {
                    const int me = c->rank();
                    std::vector<unsigned char> mine(p.count(me) * eb), all(p.total() * eb + 1, 0xEE);
                    for (size_t k = 0; k < mine.size(); ++k)
                        mine[k] = static_cast<unsigned char>(me * 31 + (p.offset(me) * eb + k) * 7);
                    c->all_gather(mine.data(), all.data(), p, eb);
                    for (int r = 0; r < c->size(); ++r)
                        for (size_t k = 0; k < p.count(r) * eb; ++k)
                            assert_int_equal(all[p.offset(r) * eb + k],
                                             static_cast<unsigned char>(r * 31 + (p.offset(r) * eb + k) * 7));
                    assert_int_equal(all.back(), 0xEE);
                    /* in place */
                    std::vector<unsigned char> ip(p.total() * eb, 0);
                    if (!mine.empty()) std::memcpy(ip.data() + p.offset(me) * eb, mine.data(), mine.size());
                    c->all_gather(ip.data() + p.offset(me) * eb, ip.data(), p, eb);
                    assert_memory_equal(ip.data(), all.data(), ip.size());
                }
}

static void test_broadcast(void **) {
    for (Communicator *c : comms())
        for (size_t n : {size_t(0), size_t(1), size_t(13), size_t(300001)})
            for (int root = 0; root < c->size(); ++root) {
                std::vector<unsigned char> buf(n + 1, 0);
                if (c->rank() == root)
                    for (size_t k = 0; k < n; ++k) buf[k] = static_cast<unsigned char>(root * 17 + k * 3);
                buf[n] = 0x5A;
                c->broadcast(buf.data(), n, root);
                for (size_t k = 0; k < n; ++k) assert_int_equal(buf[k], static_cast<unsigned char>(root * 17 + k * 3));
                assert_int_equal(buf[n], 0x5A);
            }
}

static unsigned char a2a_byte(int src, int dst, size_t k) { return static_cast<unsigned char>(src * 41 + dst * 13 + k); }

static void test_all_to_all(void **) {
    for (Communicator *c : comms()) {
        const int W = c->size(), me = c->rank();
        for (size_t block : {size_t(0), size_t(5), size_t(100003)}) {
            std::vector<unsigned char> s(block * W), r(block * W);
            for (int p = 0; p < W; ++p)
                for (size_t k = 0; k < block; ++k) s[p * block + k] = a2a_byte(me, p, k);
            c->all_to_all(s.data(), r.data(), block);
            for (int p = 0; p < W; ++p)
                for (size_t k = 0; k < block; ++k) assert_int_equal(r[p * block + k], a2a_byte(p, me, k));
        }
        /* uneven: rank a sends size(a, b) bytes to rank b */
        auto size_of = [](int a, int b) { return static_cast<size_t>((a * 3 + b * 5) % 7) * 1111; };
        std::vector<size_t> sb(W), rb(W);
        size_t st = 0, rt = 0;
        for (int p = 0; p < W; ++p) {
            sb[p] = size_of(me, p);
            rb[p] = size_of(p, me);
            st += sb[p];
            rt += rb[p];
        }
        std::vector<unsigned char> s(st), r(rt);
        size_t at = 0;
        for (int p = 0; p < W; ++p)
            for (size_t k = 0; k < sb[p]; ++k) s[at++] = a2a_byte(me, p, k);
        c->all_to_allv(s.data(), sb, r.data(), rb);
        at = 0;
        for (int p = 0; p < W; ++p)
            for (size_t k = 0; k < rb[p]; ++k) assert_int_equal(r[at++], a2a_byte(p, me, k));
    }
}

static void test_send_recv(void **) {
    Communicator &c = *g_world;
    const int W = c.size(), me = c.rank(), next = (me + 1) % W, prev = (me + W - 1) % W;
    /* a ring; two messages with the same tag keep their order; tags are independent */
    std::vector<int> a(1000, me), b(1000, me + 100), ra(1000), rb(1000);
    int x = 0;
    std::vector<Request> reqs;
    reqs.push_back(c.irecv(&x, sizeof x, prev, 9)); /* tag 9 is sent last, received first here */
    reqs.push_back(c.irecv(ra.data(), ra.size() * 4, prev, 1));
    reqs.push_back(c.irecv(rb.data(), rb.size() * 4, prev, 1));
    reqs.push_back(c.isend(a.data(), a.size() * 4, next, 1));
    reqs.push_back(c.isend(b.data(), b.size() * 4, next, 1));
    int y = me * 1000;
    reqs.push_back(c.isend(&y, sizeof y, next, 9));
    Request::wait_all(reqs);
    assert_int_equal(ra[999], prev);
    assert_int_equal(rb[0], prev + 100);
    assert_int_equal(x, prev * 1000);
    /* empty and large messages */
    Request e = c.irecv(nullptr, 0, prev, 2);
    c.send(nullptr, 0, next, 2);
    e.wait();
    std::vector<double> big(750001), got(750001);
    for (size_t i = 0; i < big.size(); ++i) big[i] = me + i * 0.5;
    Request rr = c.irecv(got.data(), got.size() * 8, prev, 3);
    c.send(big.data(), big.size() * 8, next, 3);
    rr.wait();
    assert_true(got[750000] == prev + 750000 * 0.5);
    /* to self */
    int s = 42, t = 0;
    Request self = c.irecv(&t, 4, me, 4);
    c.send(&s, 4, me, 4);
    self.wait();
    assert_int_equal(t, 42);
}

static void test_nonblocking_overlap(void **) {
    Communicator &c = *g_small;
    const int W = c.size(), me = c.rank();
    const size_t n = 200003;
    std::vector<float> ar(n), ar_out(n);
    fill(ar, me);
    Partition p = Partition::even(n, W);
    std::vector<double> rs(n), rs_out(p.count(me));
    fill(rs, me);
    std::vector<int32_t> ag_in(p.count(me)), ag_out(n);
    for (size_t i = 0; i < ag_in.size(); ++i) ag_in[i] = static_cast<int32_t>(p.offset(me) + i);
    std::vector<char> bc(77777, me == W - 1 ? 'x' : 'o');
    std::vector<Request> reqs;
    reqs.push_back(c.iall_reduce(ar.data(), ar_out.data(), n, ElemType::f32, ReduceOp::sum));
    reqs.push_back(c.ireduce_scatter(rs.data(), rs_out.data(), p, ElemType::f64, ReduceOp::sum));
    reqs.push_back(c.iall_gather(ag_in.data(), ag_out.data(), p, 4));
    reqs.push_back(c.ibroadcast(bc.data(), bc.size(), W - 1));
    reqs.push_back(c.ibarrier());
    /* ranks wait in different orders; odd ranks poll with test() first */
    if (me % 2) {
        for (int spin = 0; spin < 100; ++spin)
            for (Request &r : reqs) r.test();
        for (size_t i = reqs.size(); i-- > 0;) reqs[i].wait();
    } else {
        Request::wait_all(reqs);
    }
    for (size_t i = 0; i < n; ++i) {
        assert_true(ar_out[i] == reference<float>(W, i, ReduceOp::sum));
        assert_int_equal(ag_out[i], static_cast<int32_t>(i));
    }
    for (size_t i = 0; i < rs_out.size(); ++i)
        assert_true(rs_out[i] == reference<double>(W, p.offset(me) + i, ReduceOp::sum));
    assert_int_equal(bc[77776], 'x');
}

static void test_bitwise_buckets(void **) {
    const int W = g_world->size(), me = g_world->rank();
    const size_t n = 1000003;
    std::mt19937 rng(1234 + me);
    std::uniform_real_distribution<float> dist(-1e3f, 1e3f);
    std::vector<float> grad(n);
    for (float &g : grad) g = dist(rng) * std::pow(10.0f, static_cast<float>(rng() % 7) - 3.0f);

    std::vector<float> ar(n), ar_small(n);
    g_world->all_reduce(grad.data(), ar.data(), n, ElemType::f32, ReduceOp::sum);
    g_small->all_reduce(grad.data(), ar_small.data(), n, ElemType::f32, ReduceOp::sum);
    assert_memory_equal(ar.data(), ar_small.data(), n * 4);

    /* reference: every rank's input, summed in rank order here */
    std::vector<float> all(n * W);
    g_world->all_gather(grad.data(), all.data(), Partition::from_counts(std::vector<size_t>(W, n)), 4);
    std::vector<const void *> srcs(W);
    for (int r = 0; r < W; ++r) srcs[r] = all.data() + r * n;
    std::vector<float> ref(n);
    reduce_in_order(ElemType::f32, ReduceOp::sum, ref.data(), srcs.data(), W, n);
    assert_memory_equal(ar.data(), ref.data(), n * 4);

    /* small all-reduces take a one-round path: same bits */
    for (size_t m : {size_t(1), size_t(7), size_t(1000), size_t(4096), size_t(16385)}) {
        std::vector<float> small(m), small_ref(m);
        g_world->all_reduce(grad.data() + 17, small.data(), m, ElemType::f32, ReduceOp::sum);
        for (int r = 0; r < W; ++r) srcs[r] = all.data() + r * n + 17;
        reduce_in_order(ElemType::f32, ReduceOp::sum, small_ref.data(), srcs.data(), W, m);
        assert_memory_equal(small.data(), small_ref.data(), m * 4);
        std::vector<float> inplace(grad.begin() + 17, grad.begin() + 17 + m);
        g_small->all_reduce(inplace.data(), inplace.data(), m, ElemType::f32, ReduceOp::sum);
        assert_memory_equal(inplace.data(), small_ref.data(), m * 4);
    }

    /* stage-2 style: bucket by bucket, reduce_scatter then all_gather */
    std::mt19937 split(99); /* same seed everywhere: same buckets on every rank */
    for (int round = 0; round < 3; ++round) {
        std::vector<float> zero2(n);
        size_t at = 0;
        while (at < n) {
            size_t len = std::min(n - at, static_cast<size_t>(1 + split() % 300000));
            if (round == 2) len = std::min(n - at, size_t(2 * W) * (1 + split() % 5)); /* tiny buckets */
            if (round == 2 && at > 2000) len = n - at;
            Partition p = round == 1 ? Partition::even(len, W) : Partition::even(len, W);
            std::vector<float> mine(p.count(me));
            Communicator &c = round == 1 ? *g_small : *g_world;
            c.reduce_scatter(grad.data() + at, mine.data(), p, ElemType::f32, ReduceOp::sum);
            c.all_gather(mine.data(), zero2.data() + at, p, 4);
            at += len;
        }
        assert_memory_equal(zero2.data(), ar.data(), n * 4);
    }
}

/* The engine may reduce on a background thread while the main thread uses
 * another communicator; a request may be waited on from another thread. */
static void test_threads(void **) {
    const int W = g_world->size();
    const size_t n = 100003;
    bool ok_a = true, ok_b = true;
    std::thread a([&] {
        std::vector<float> v(n);
        for (int it = 0; it < 20; ++it) {
            fill(v, g_world->rank());
            g_world->all_reduce(v.data(), n, ReduceOp::sum);
            for (size_t i = 0; i < n; i += 997) ok_a = ok_a && v[i] == reference<float>(W, i, ReduceOp::sum);
        }
    });
    std::thread b([&] {
        std::vector<double> v(n);
        for (int it = 0; it < 20; ++it) {
            fill(v, g_small->rank());
            g_small->all_reduce(v.data(), n, ReduceOp::max);
            for (size_t i = 0; i < n; i += 997) ok_b = ok_b && v[i] == reference<double>(W, i, ReduceOp::max);
        }
    });
    a.join();
    b.join();
    assert_true(ok_a);
    assert_true(ok_b);

    std::vector<int64_t> v(n, 1);
    Request r = g_world->iall_reduce(v.data(), v.data(), n, ElemType::i64, ReduceOp::sum);
    std::thread waiter([&] { r.wait(); });
    waiter.join();
    assert_int_equal(v[n - 1], W);
}

static void test_groups(void **) {
    Communicator &w = *g_world;
    const int W = w.size(), me = w.rank();
    auto parity = w.split(me % 2, me, "parity");
    assert_non_null(parity.get());
    assert_int_equal(parity->size(), (W + 1 - me % 2) / 2);
    assert_int_equal(parity->rank(), me / 2);
    int64_t sum = parity->all_reduce_value<int64_t>(me, ReduceOp::sum);
    int64_t want = 0;
    for (int r = me % 2; r < W; r += 2) want += r;
    assert_int_equal(sum, want);

    std::vector<int> reversed;
    for (int r = W - 1; r >= 0; --r) reversed.push_back(r);
    auto rev = w.make_group(reversed, "reversed");
    assert_int_equal(rev->rank(), W - 1 - me);
    int root_value = me;
    rev->broadcast(&root_value, sizeof root_value, 0); /* group rank 0 is world rank W-1 */
    assert_int_equal(root_value, W - 1);

    std::vector<int> tail;
    for (int r = 1; r < W; ++r) tail.push_back(r);
    if (!tail.empty()) {
        auto t = w.make_group(tail, "tail");
        assert_true((t != nullptr) == (me != 0));
        if (t) assert_int_equal(t->all_reduce_value<int32_t>(1, ReduceOp::sum), W - 1);
    }

    std::vector<TopologySpec> specs(1);
    if (W % 2 == 0) {
        specs.push_back({2, 1});
        specs.push_back({1, 2});
    }
    if (W % 4 == 0) specs.push_back({2, 2});
    for (const TopologySpec &s : specs) {
        Topology t(g_world, s);
        struct Kind {
            Communicator *c;
            std::vector<std::vector<int>> groups;
        } kinds[] = {{&t.data(), Topology::data_groups(s, W)},
                     {&t.pipeline(), Topology::pipeline_groups(s, W)},
                     {&t.expert(), Topology::expert_groups(s, W)},
                     {&t.expert_data(), Topology::expert_data_groups(s, W)}};
        for (Kind &k : kinds) {
            const std::vector<int> *mine = nullptr;
            for (auto &g : k.groups)
                if (std::find(g.begin(), g.end(), me) != g.end()) mine = &g;
            assert_non_null(mine);
            assert_int_equal(k.c->size(), static_cast<int>(mine->size()));
            std::vector<int32_t> members(mine->size());
            int32_t me32 = me;
            k.c->all_gather(&me32, members.data(), Partition::even(mine->size(), k.c->size()), 4);
            for (size_t i = 0; i < mine->size(); ++i) assert_int_equal(members[i], (*mine)[i]);
        }
    }
}

static void test_consistency(void **) {
    Communicator &w = *g_world;
    const int W = w.size(), me = w.rank();
    int64_t same[3] = {1, 2, 3};
    check_consistent(w, "registration", same, sizeof same);
    std::vector<std::string> items = {"a float32 [4]", "b float32 [4, 4]", "c bfloat16 [8]"};
    check_consistent(w, "parameters", items);
    if (W == 1) return;
    int64_t differs[3] = {1, me == W - 1 ? 5 : 2, 3};
    std::string tail = strprintf("rank %d differ", W - 1);
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "registration differs across ranks",
                 check_consistent(w, "registration", differs, sizeof differs));
    try {
        check_consistent(w, "registration", differs, sizeof differs);
    } catch (const Error &e) {
        assert_non_null(std::strstr(e.what(), tail.c_str()));
    }
    std::vector<std::string> other = items;
    if (me == W - 1) other[1] = "b float32 [4, 5]";
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "first difference at item 1", check_consistent(w, "parameters", other));
    try {
        check_consistent(w, "parameters", other);
    } catch (const Error &e) {
        assert_non_null(std::strstr(e.what(), "'b float32 [4, 5]'"));
        assert_non_null(std::strstr(e.what(), "'b float32 [4, 4]'"));
    }
    std::vector<std::string> shorter = items;
    if (me == 0) shorter.pop_back();
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "rank 0 has 2", check_consistent(w, "parameters", shorter));
    /* the communicator is still fine afterwards */
    assert_false(w.failed());
    assert_int_equal(w.all_reduce_value<int32_t>(1, ReduceOp::sum), W);
}

static void test_argument_errors(void **) {
    Communicator &w = *g_world;
    std::vector<float> buf(16);
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "overlap",
                 w.all_reduce(buf.data(), buf.data() + 1, 8, ElemType::f32, ReduceOp::sum));
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "parts",
                 w.reduce_scatter(buf.data(), buf.data(), Partition::even(16, w.size() + 1), ElemType::f32,
                                  ReduceOp::sum));
    EXPECT_ERROR(DSZ_ERR_INVALID_ARGUMENT, "out of range", w.send(buf.data(), 4, w.size(), 0));
}

static void test_sequence_agrees(void **) {
    for (Communicator *c : comms()) {
        int64_t seq = static_cast<int64_t>(c->next_sequence());
        assert_true(seq > 0);
        assert_true(c->all_reduce_value<int64_t>(seq, ReduceOp::max) == seq + 0);
        assert_false(c->failed());
    }
#ifdef DSZ_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    assert_int_equal(inited, g_world->size() > 1 ? 1 : 0); /* alone: MPI never touched */
#endif
}

int main(void) {
    try {
        CommOptions o;
        g_world = create_communicator(o);
        o.chunk_bytes = 4096;
        o.name = "world-4k";
        g_small = create_communicator(o);
    } catch (const Error &e) {
        std::fprintf(stderr, "cannot create the communicator: %s\n", e.what());
        return 1;
    }
    std::printf("test_comm_mpi: rank %d of %d, backend %s, timeout %.0f s\n", g_world->rank(), g_world->size(),
                g_world->backend(), g_world->timeout());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_reduce),      cmocka_unit_test(test_all_reduce_half),
        cmocka_unit_test(test_reduce_scatter),  cmocka_unit_test(test_all_gather),
        cmocka_unit_test(test_broadcast),       cmocka_unit_test(test_all_to_all),
        cmocka_unit_test(test_send_recv),       cmocka_unit_test(test_nonblocking_overlap),
        cmocka_unit_test(test_bitwise_buckets), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_consistency),     cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_sequence_agrees),
    };
    int failed = cmocka_run_group_tests(tests, nullptr, nullptr);
    g_small.reset();
    g_world.reset();
    return failed;
}
