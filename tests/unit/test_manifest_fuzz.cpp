/*
 * test_manifest_fuzz.cpp -- a damaged manifest is an error, never a crash.
 *
 * A real checkpoint (two groups, four parameters, Adam, 64-byte checksum
 * chunks) is saved; then its manifest is damaged in many random ways
 * (bytes flipped, runs deleted or duplicated, digits changed, so that
 * offsets, counts, sizes and checksums take odd values) and dsz_load runs on
 * each: it must return DSZ_OK or an error with a message, leave the engine
 * and the host's tensors as they were when it fails, and never crash or
 * read out of bounds (the ASan build runs this too).
 */
#include "checkpoint/files.h"
#include "common/error.h"

#include <unistd.h>

#include <cctype>
#include <cstring>
#include <random>
#include <string>
#include <vector>

/* cmocka.h defines a fail() macro: include it after dszero's headers. */
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
extern "C" {
#include <cmocka.h>
}

static void quiet(int32_t, const char *, void *) {}

static dsz_engine *make_engine(std::vector<std::vector<float>> &w, std::vector<DLTensor> &t,
                               std::vector<int64_t> &shapes) {
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    o.log_fn = quiet;
    o.cpu_threads = 1;
    dsz_engine *e = nullptr;
    if (dsz_init(&e, "{\"train_micro_batch_size_per_gpu\": 1, \"optimizer\": {\"type\": \"Adam\"}}", &o) != DSZ_OK)
        return nullptr;
    const char *names[4] = {"a", "b", "c", "d"};
    dsz_param p[4];
    dsz_param_group groups[2];
    std::memset(groups, 0, sizeof groups);
    for (int i = 0; i < 4; ++i) {
        std::memset(&t[i], 0, sizeof t[i]);
        t[i].data = w[i].data();
        t[i].device.device_type = kDLCPU;
        t[i].ndim = 1;
        t[i].dtype.code = kDLFloat;
        t[i].dtype.bits = 32;
        t[i].dtype.lanes = 1;
        t[i].shape = &shapes[i];
        p[i] = dsz_param{names[i], &t[i], i % 2, 0};
    }
    for (int g = 0; g < 2; ++g) {
        groups[g].name = g ? "g1" : "g0";
    }
    if (dsz_register_params(e, p, 4, groups, 2) != DSZ_OK) return nullptr;
    return e;
}

static void test_damaged_manifests(void **) {
    char tmpl[] = "/tmp/dsz_manifest_fuzz_XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    setenv("DSZ_CHECKPOINT_CHUNK_BYTES", "64", 1);
    std::vector<int64_t> shapes = {37, 5, 64, 1};
    std::vector<std::vector<float>> w(4);
    for (int i = 0; i < 4; ++i)
        for (int64_t k = 0; k < shapes[i]; ++k) w[i].push_back(0.01f * static_cast<float>(k + i));
    std::vector<DLTensor> t(4);
    dsz_engine *e = make_engine(w, t, shapes);
    assert_non_null(e);
    assert_int_equal(dsz_save(e, dir.c_str(), "good", nullptr), DSZ_OK);
    const std::string mpath = dsz::path_join(dir, "good/manifest.json");
    const std::string original = dsz::read_file(mpath, "manifest");
    const std::vector<std::vector<float>> before = w;

    std::mt19937 rng(4321);
    int loaded = 0, refused = 0;
    for (int trial = 0; trial < 400; ++trial) {
        std::string m = original;
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int k = 0; k < edits && !m.empty(); ++k) {
            const size_t at = rng() % m.size();
            switch (rng() % 5) {
            case 0: m[at] = static_cast<char>(rng()); break;
            case 1: m.erase(at, 1 + rng() % 20); break;
            case 2: m.insert(at, m.substr(at, 1 + rng() % 20)); break;
            case 3: if (std::isdigit(static_cast<unsigned char>(m[at]))) m[at] = static_cast<char>('0' + rng() % 10); break;
            default: {
                /* a number made huge or negative */
                const size_t d = m.find_first_of("0123456789", at);
                if (d != std::string::npos) m.insert(d, rng() % 2 ? "-" : "99999999999");
            }
            }
        }
        dsz::write_file_atomic(mpath, m);
        const dsz_status s = dsz_load(e, dir.c_str(), "good", 0, nullptr);
        if (s == DSZ_OK) {
            ++loaded;
            for (int i = 0; i < 4; ++i) w[i] = before[i]; /* values may have moved (a harmless edit) */
            continue;
        }
        ++refused;
        assert_true(std::strlen(dsz_last_error()) > 0);
        for (int i = 0; i < 4; ++i) assert_memory_equal(w[i].data(), before[i].data(), w[i].size() * sizeof(float));
    }
    dsz::write_file_atomic(mpath, original);
    assert_int_equal(dsz_load(e, dir.c_str(), "good", 0, nullptr), DSZ_OK);
    print_message("damaged manifests: %d refused with an error, %d harmless edits loaded\n", refused, loaded);
    assert_true(refused > 200);
    dsz_engine_free(e);
    dsz::remove_tree(dir);
    unsetenv("DSZ_CHECKPOINT_CHUNK_BYTES");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_damaged_manifests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
