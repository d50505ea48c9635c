/*
 * test_aio.cpp -- the libaio engine (src/aio) and the swap store's pipeline
 * (src/engine/swap_store.h), white-box.
 *
 * Round trips under every aio setting; the per-completion checks (a
 * misaligned O_DIRECT buffer fails at completion, a short read names the
 * file and offset); space reservation against a file-size limit; buffered
 * fallback where O_DIRECT is refused (ramfs, when this process may mount);
 * and a swap pipeline whose read fails part-way: the error comes out, the
 * sub-groups after it are untouched.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "aio/aligned_buffer.h"
#include "aio/direct_file.h"
#include "aio/io_engine.h"
#include "checkpoint/files.h"
#include "common/error.h"
#include "config/config.h"
#include "engine/swap_store.h"
#include "optim/optimizer.h"

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
extern "C" {
#include <cmocka.h>
}

using namespace dsz;

static std::string scratch_dir() {
    static std::string dir;
    if (dir.empty()) {
        dir = "/tmp/dsz_aio_test_" + std::to_string(::getpid());
        remove_tree(dir);
        make_dirs(dir);
    }
    return dir;
}

/* Runs f, expecting dsz::Error with `status` whose message contains every needle. */
template <class F>
static void expect_error(F &&f, dsz_status status, std::vector<std::string> needles) {
    try {
        f();
    } catch (const Error &e) {
        if (e.status() != status) std::fprintf(stderr, "status %d, message: %s\n", e.status(), e.what());
        assert_int_equal(e.status(), status);
        for (const std::string &n : needles) {
            if (!std::strstr(e.what(), n.c_str())) std::fprintf(stderr, "'%s' not in: %s\n", n.c_str(), e.what());
            assert_non_null(std::strstr(e.what(), n.c_str()));
        }
        return;
    }
    fail_msg("no error thrown");
}

static void fill_pattern(char *p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<char>((i * 2654435761u + seed) >> 13);
}

static void test_round_trip_every_setting(void **) {
    if (!aio::available()) skip();
    struct Case { size_t block; int qd, threads; bool single, overlap; };
    const Case cases[] = {{1 << 20, 8, 1, false, true}, {4096, 1, 1, true, true}, {8192, 4, 2, false, false},
                          {5000, 3, 3, true, false}, {65536, 32, 1, false, true}};
    const size_t bytes = (size_t(3) << 20) + 3 * 4096; /* not a multiple of the block sizes */
    for (const Case &c : cases) {
        aio::IoSettings s;
        s.block_size = c.block;
        s.queue_depth = c.qd;
        s.threads = c.threads;
        s.single_submit = c.single;
        s.overlap_events = c.overlap;
        aio::IoEngine io(s);
        aio::DirectFile f(scratch_dir() + "/round_trip", true);
        f.reserve(2 * bytes);
        aio::AlignedBuffer a(bytes), b(bytes), back_a(bytes), back_b(bytes);
        fill_pattern(a.data(), bytes, 1);
        fill_pattern(b.data(), bytes, 2);
        /* Two transfers in one batch, a second batch started before the first is waited for. */
        const auto t1 = io.start({aio::Transfer{f.fd(), f.path(), a.data(), bytes, 0, true}});
        const auto t2 = io.start({aio::Transfer{f.fd(), f.path(), b.data(), bytes, bytes, true}});
        io.wait(t2);
        io.wait(t1);
        io.run({aio::Transfer{f.fd(), f.path(), back_a.data(), bytes, 0, false},
                aio::Transfer{f.fd(), f.path(), back_b.data(), bytes, bytes, false}});
        assert_memory_equal(a.data(), back_a.data(), bytes);
        assert_memory_equal(b.data(), back_b.data(), bytes);
        assert_true(io.ready(12345)); /* unknown tickets are not pending */
    }
}

static void test_misaligned_buffer_fails_at_completion(void **) {
    if (!aio::available()) skip();
    aio::DirectFile f(scratch_dir() + "/misaligned", true);
    if (!f.direct()) skip(); /* the check only exists with O_DIRECT */
    f.reserve(1 << 20);
    aio::AlignedBuffer buf((1 << 20) + 4096);
    aio::IoEngine io(aio::IoSettings{});
    const auto t = io.start({aio::Transfer{f.fd(), f.path(), buf.data() + 1, 65536, 0, true}}); /* accepted */
    expect_error([&] { io.wait(t); }, DSZ_ERR_IO, {f.path(), "offset 0", "O_DIRECT"});
    /* The engine is still usable. */
    io.run({aio::Transfer{f.fd(), f.path(), buf.data(), 65536, 0, true}});
}

static void test_short_read_names_file_and_offset(void **) {
    if (!aio::available()) skip();
    aio::DirectFile f(scratch_dir() + "/short", true);
    f.reserve(3 * 4096);
    aio::AlignedBuffer buf(8 * 4096);
    aio::IoSettings s;
    s.block_size = 4096;
    aio::IoEngine io(s);
    expect_error([&] { io.run({aio::Transfer{f.fd(), f.path(), buf.data(), 8 * 4096, 0, false}}); }, DSZ_ERR_IO,
                 {"short read", f.path(), "offset 12288", "truncated"});
}

static void test_reserve_beyond_file_size_limit(void **) {
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = old;
    lim.rlim_cur = 1 << 20;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    aio::DirectFile f(scratch_dir() + "/big", true);
    expect_error([&] { f.reserve(8 << 20); }, DSZ_ERR_IO, {f.path(), "file-size limit"});
    if (aio::available()) { /* a write crossing the limit reports EFBIG, not a silent short write */
        aio::AlignedBuffer buf(2 << 20);
        aio::IoEngine io(aio::IoSettings{});
        expect_error([&] { io.run({aio::Transfer{f.fd(), f.path(), buf.data(), 2 << 20, 0, true}}); }, DSZ_ERR_IO,
                     {f.path(), "File too large"});
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
}

static void test_buffered_fallback_where_direct_is_refused(void **) {
    if (!aio::available()) skip();
    const std::string mnt = scratch_dir() + "/ramfs";
    make_dirs(mnt);
    if (::mount("none", mnt.c_str(), "ramfs", 0, nullptr) != 0) skip(); /* not allowed to mount here */
    {
        aio::DirectFile f(mnt + "/file", true);
        assert_false(f.direct());
        f.reserve(1 << 16);
        aio::AlignedBuffer a(1 << 16), b(1 << 16);
        fill_pattern(a.data(), a.size(), 7);
        aio::IoEngine io(aio::IoSettings{});
        io.run({aio::Transfer{f.fd(), f.path(), a.data(), a.size(), 0, true}});
        io.run({aio::Transfer{f.fd(), f.path(), b.data(), b.size(), 0, false}});
        assert_memory_equal(a.data(), b.data(), a.size());
    }
    ::umount(mnt.c_str());
}

/* A stand-in optimizer with one state: the pipeline only moves its arrays. */
class OneState : public Optimizer {
public:
    const char *name() const override { return "OneState"; }
    int state_count() const override { return 1; }
    const char *state_name(int) const override { return "acc"; }
    void update(const UpdateArgs &) const override {}
    float state_init(int) const override { return 0.5f; }
};

static void test_pipeline_failure_part_way(void **) {
    if (!aio::available()) skip();
    Config cfg;
    cfg.zero.stage = 3;
    cfg.zero.sub_group_size = 1000;
    cfg.zero.offload_optimizer.device = OffloadDevice::nvme;
    cfg.zero.offload_optimizer.nvme_path = scratch_dir();
    cfg.zero.offload_optimizer.buffer_count = 3;
    cfg.zero.offload_optimizer.pipeline_read = cfg.zero.offload_optimizer.pipeline_write = true;
    /* Four tensors of 1000 elements: four sub-groups. */
    std::vector<Segment> tensors = {{0, 1000}, {1000, 1000}, {2000, 1000}, {3000, 1000}};
    std::vector<Span> spans = {{0, 1000, nullptr}, {1000, 1000, nullptr}, {2000, 1000, nullptr}, {3000, 1000, nullptr}};
    OneState opt;
    SwapStore store(cfg, 0, Logger());
    store.create({SwapGroup{4000, &spans, &tensors}}, opt);
    assert_int_equal(store.sub_groups().size(), 4);
    assert_int_equal(store.slots(), 3);
    /* Every sub-group: state += 1 where it was initialised to 0.5. */
    auto add_one = [](const SubGroup &sg, float *const *st) {
        for (size_t i = 0; i < sg.size(); ++i) st[0][i] += 1.0f;
    };
    store.pipeline(add_one);
    std::vector<float> seen;
    store.read_state(0, 0, [&](const float *v, size_t n) { seen.insert(seen.end(), v, v + n); });
    assert_int_equal(seen.size(), 4000);
    for (float v : seen) assert_true(v == 1.5f);
    store.verify();
    /* Cut the file inside the third sub-group: the walk fails there. */
    const std::string file = store.folder() + "/group0.acc.swp";
    assert_int_equal(::truncate(file.c_str(), 2 * 4096 + 100), 0);
    expect_error([&] { store.verify(); }, DSZ_ERR_IO, {file, "truncated"});
    std::vector<size_t> updated;
    expect_error([&] { store.pipeline([&](const SubGroup &sg, float *const *st) { updated.push_back(sg.begin); add_one(sg, st); }); },
                 DSZ_ERR_IO, {"short read", file});
    assert_true(updated.size() < 4); /* never reached the last sub-group */
    const std::string folder = store.folder();
    assert_true(path_exists(folder));
}

static void test_store_removes_its_files(void **) {
    if (!aio::available()) skip();
    Config cfg;
    cfg.zero.stage = 3;
    cfg.zero.offload_optimizer.device = OffloadDevice::nvme;
    cfg.zero.offload_optimizer.nvme_path = scratch_dir();
    std::vector<Segment> tensors = {{0, 10}};
    std::vector<Span> spans = {{0, 10, nullptr}};
    OneState opt;
    std::string folder;
    {
        SwapStore store(cfg, 7, Logger());
        store.create({SwapGroup{12, &spans, &tensors}}, opt);
        folder = store.folder();
        assert_true(path_exists(folder + "/group0.acc.swp"));
        /* The folder is locked: a second store on it is refused. */
        expect_error([&] { SwapStore again(cfg, 7, Logger()); }, DSZ_ERR_IO, {folder, "in use"});
    }
    assert_false(path_exists(folder));
    assert_false(path_exists(scratch_dir() + "/zero_stage_3"));
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_setting),
        cmocka_unit_test(test_misaligned_buffer_fails_at_completion),
        cmocka_unit_test(test_short_read_names_file_and_offset),
        cmocka_unit_test(test_reserve_beyond_file_size_limit),
        cmocka_unit_test(test_buffered_fallback_where_direct_is_refused),
        cmocka_unit_test(test_pipeline_failure_part_way),
        cmocka_unit_test(test_store_removes_its_files),
    };
    const int rc = cmocka_run_group_tests(tests, nullptr, nullptr);
    remove_tree(scratch_dir());
    return rc;
}
