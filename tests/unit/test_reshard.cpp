/*
 * test_reshard.cpp -- the resharding planner (src/checkpoint/reshard.h) and
 * the verified shard reader (src/checkpoint/shard_reader.h).
 *
 * The planner is checked exhaustively against a direct reference: saved
 * shards are simulated in memory with every element encoding (parameter,
 * element, kind), the plan is applied, and every element of every target
 * range must hold exactly its parameter's value (padding untouched), for
 * world sizes 1, 2, 3, 4, 8 in every combination, with several groups, with
 * parameters registered in another order, and with ranges covering whole
 * groups (stage 0 at one rank). Mismatched parameter sets are refused naming
 * the parameter. The reader is checked with tiny chunks: random ranges read
 * back exactly, a flipped byte is reported with its file and chunk, a short
 * file as truncated, and format-1.0 files (one whole-file CRC) still read.
 * LoadedRanges applies a plan to real shard files into page-aligned arrays.
 */
#include "checkpoint/files.h"
#include "checkpoint/format.h"
#include "checkpoint/loaded_ranges.h"
#include "checkpoint/manifest.h"
#include "checkpoint/reshard.h"
#include "checkpoint/shard_reader.h"
#include "common/error.h"
#include "zero/layout.h"

#include <unistd.h>

#include <cstring>
#include <algorithm>
#include <map>
#include <random>

/* cmocka.h defines a fail() macro: include it after dszero's headers. */
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
extern "C" {
#include <cmocka.h>
}

using namespace dsz;

namespace {

struct ModelParam {
    std::string name;
    size_t numel;
    size_t group;
};

const std::vector<std::string> kKinds = {"master", "exp_avg", "exp_avg_sq"};

/* The value element e of parameter i holds in array kind k: exact in fp32. */
float value_of(size_t i, size_t e, size_t k) { return static_cast<float>(i * 100000 + e * 4 + k + 1); }

/* One shard file per rank of m.world_size holding, per group, master then
 * the two states, each the group's partition of floats. */
void add_shard_files(Manifest &m) {
    for (int r = 0; r < m.world_size; ++r) {
        ManifestFile f;
        f.name = shard_name(r);
        f.rank = r;
        uint64_t off = kShardHeaderBytes;
        for (size_t g = 0; g < m.groups.size(); ++g)
            for (const std::string &kind : kKinds) {
                f.arrays.push_back(ManifestArray{g, kind, off, m.groups[g].partition});
                off += m.groups[g].partition * sizeof(float);
            }
        f.bytes = off;
        m.files.push_back(f);
    }
}

/* A manifest for `params` saved at `world` ranks: shards hold, per group,
 * master then the two states, each `partition` floats. */
Manifest make_manifest(const std::vector<ModelParam> &params, size_t n_groups, int world) {
    std::vector<LayoutParam> lp;
    for (const ModelParam &p : params) lp.push_back(LayoutParam{p.numel, static_cast<int>(p.group)});
    const FlatLayout L = make_flat_layout(lp, static_cast<int>(n_groups), world);
    Manifest m;
    m.path = "test/manifest.json";
    m.world_size = world;
    m.states = {"exp_avg", "exp_avg_sq"};
    for (size_t g = 0; g < n_groups; ++g) {
        ManifestGroup G;
        G.numel = L.groups[g].numel;
        G.padded = L.groups[g].padded;
        G.partition = L.groups[g].partition;
        for (size_t k = 0; k < L.groups[g].params.size(); ++k) {
            const ModelParam &p = params[L.groups[g].params[k]];
            G.params.push_back(ManifestParam{p.name, {static_cast<int64_t>(p.numel)}, "float32", L.groups[g].offsets[k], p.numel});
        }
        m.groups.push_back(G);
    }
    add_shard_files(m);
    return m;
}

/* The shards' contents for that manifest (padding is 0). */
std::vector<std::vector<float>> make_shards(const Manifest &m, const std::vector<ModelParam> &params) {
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < params.size(); ++i) index[params[i].name] = i;
    std::vector<std::vector<float>> shards;
    for (const ManifestFile &f : m.files) {
        std::vector<float> bytes(f.bytes / sizeof(float), 0.0f);
        for (const ManifestArray &a : f.arrays) {
            const size_t k = static_cast<size_t>(std::find(kKinds.begin(), kKinds.end(), a.kind) - kKinds.begin());
            const ManifestGroup &G = m.groups[a.group];
            for (const ManifestParam &p : G.params)
                for (size_t e = 0; e < p.numel; ++e) {
                    const size_t flat = p.offset + e;
                    if (flat / G.partition != static_cast<size_t>(f.rank)) continue;
                    bytes[a.offset / sizeof(float) + flat % G.partition] = value_of(index[p.name], e, k);
                }
        }
        shards.push_back(std::move(bytes));
    }
    return shards;
}

/* Loads every rank of `world` (each its partition, or the whole group when
 * `whole`) from the saved shards through the plan, and checks each element. */
void check_load(const std::vector<ModelParam> &saved, const std::vector<ModelParam> &registered, size_t n_groups,
                int saved_world, int world, bool whole) {
    const Manifest m = make_manifest(saved, n_groups, saved_world);
    const auto shards = make_shards(m, saved);
    std::map<std::string, size_t> saved_index;
    for (size_t i = 0; i < saved.size(); ++i) saved_index[saved[i].name] = i;
    std::vector<LayoutParam> lp;
    for (const ModelParam &p : registered) lp.push_back(LayoutParam{p.numel, static_cast<int>(p.group)});
    const FlatLayout L = make_flat_layout(lp, static_cast<int>(n_groups), world);
    for (int rank = 0; rank < (whole ? 1 : world); ++rank) {
        ReshardTarget t;
        for (size_t i = 0; i < registered.size(); ++i)
            t.params.push_back(ReshardParam{registered[i].name, {static_cast<int64_t>(registered[i].numel)},
                                            registered[i].group, L.param_offset[i], registered[i].numel});
        for (const GroupLayout &G : L.groups)
            t.ranges.emplace_back(whole ? 0 : rank * G.partition, whole ? G.padded : (rank + 1) * G.partition);
        t.kinds = kKinds;
        const std::vector<ShardCopy> plan = plan_reshard(m, t);
        const float sentinel = -7.0f;
        std::vector<std::vector<std::vector<float>>> dst(n_groups);
        for (size_t g = 0; g < n_groups; ++g)
            dst[g].assign(kKinds.size(), std::vector<float>(t.ranges[g].second - t.ranges[g].first, sentinel));
        for (size_t c = 0; c < plan.size(); ++c) {
            const ShardCopy &cp = plan[c];
            if (c > 0) assert_true(plan[c - 1].file < cp.file || (plan[c - 1].file == cp.file && plan[c - 1].src < cp.src)); /* sequential reads */
            assert_true(cp.dst + cp.count <= dst[cp.group][cp.kind].size());
            std::memcpy(dst[cp.group][cp.kind].data() + cp.dst,
                        shards[static_cast<size_t>(cp.file)].data() + cp.src / sizeof(float), cp.count * sizeof(float));
        }
        for (size_t g = 0; g < n_groups; ++g) {
            /* what each flat position of this range must hold */
            std::vector<float> want(t.ranges[g].second - t.ranges[g].first, sentinel);
            std::vector<size_t> who(want.size(), SIZE_MAX), elem(want.size(), 0);
            for (size_t i = 0; i < registered.size(); ++i) {
                if (registered[i].group != g) continue;
                for (size_t e = 0; e < registered[i].numel; ++e) {
                    const size_t flat = L.param_offset[i] + e;
                    if (flat < t.ranges[g].first || flat >= t.ranges[g].second) continue;
                    who[flat - t.ranges[g].first] = saved_index[registered[i].name];
                    elem[flat - t.ranges[g].first] = e;
                }
            }
            for (size_t k = 0; k < kKinds.size(); ++k)
                for (size_t x = 0; x < want.size(); ++x) {
                    const float w = who[x] == SIZE_MAX ? sentinel : value_of(who[x], elem[x], k);
                    if (dst[g][k][x] != w)
                        fail_msg("saved at %d, loaded at %d rank %d: group %zu kind %zu element %zu holds %g, want %g",
                                 saved_world, world, rank, g, k, x, dst[g][k][x], w);
                }
        }
        if (saved_world == world && !whole && n_groups == 1 && registered.size() == saved.size()) {
            /* Same layout: one copy per array, all from this rank's own shard. */
            bool same_order = true;
            for (size_t i = 0; i < saved.size(); ++i) same_order = same_order && saved[i].name == registered[i].name;
            if (same_order && !plan.empty()) {
                assert_int_equal(plan.size(), kKinds.size());
                for (const ShardCopy &c : plan) assert_int_equal(c.file, rank);
            }
        }
    }
}

std::vector<ModelParam> random_model(std::mt19937 &rng, size_t n_groups) {
    std::vector<ModelParam> out;
    const int n = 1 + static_cast<int>(rng() % 7);
    for (int i = 0; i < n; ++i)
        out.push_back(ModelParam{"p" + std::to_string(i), 1 + rng() % 40, rng() % n_groups});
    return out;
}

}  // namespace

static void test_every_world_size_pair(void **) {
    std::mt19937 rng(1234);
    const int worlds[] = {1, 2, 3, 4, 8};
    for (int trial = 0; trial < 40; ++trial) {
        const size_t n_groups = 1 + trial % 3;
        const std::vector<ModelParam> model = random_model(rng, n_groups);
        for (int ws : worlds)
            for (int wl : worlds) {
                check_load(model, model, n_groups, ws, wl, false);
                if (wl == 1) check_load(model, model, n_groups, ws, 1, true);
            }
    }
}

static void test_registration_order_may_differ(void **) {
    const std::vector<ModelParam> saved = {{"a", 5, 0}, {"b", 13, 0}, {"c", 1, 0}, {"d", 30, 0}};
    const std::vector<ModelParam> reordered = {{"d", 30, 0}, {"a", 5, 0}, {"c", 1, 0}, {"b", 13, 0}};
    for (int ws : {1, 2, 4})
        for (int wl : {1, 2, 3}) check_load(saved, reordered, 1, ws, wl, false);
}

static void expect_plan_error(const Manifest &m, const std::vector<ModelParam> &registered, const char *needle) {
    std::vector<LayoutParam> lp;
    for (const ModelParam &p : registered) lp.push_back(LayoutParam{p.numel, static_cast<int>(p.group)});
    const FlatLayout L = make_flat_layout(lp, static_cast<int>(m.groups.size()), 2);
    ReshardTarget t;
    for (size_t i = 0; i < registered.size(); ++i)
        t.params.push_back(ReshardParam{registered[i].name, {static_cast<int64_t>(registered[i].numel)}, registered[i].group,
                                        L.param_offset[i], registered[i].numel});
    for (const GroupLayout &G : L.groups) t.ranges.emplace_back(0, G.padded); /* needs every shard */
    t.kinds = kKinds;
    try {
        plan_reshard(m, t);
    } catch (const Error &e) {
        assert_int_equal(e.status(), DSZ_ERR_CHECKPOINT);
        if (!std::strstr(e.what(), needle)) fail_msg("'%s' does not contain '%s'", e.what(), needle);
        return;
    }
    fail_msg("no error; expected '%s'", needle);
}

static void test_mismatched_parameters_named(void **) {
    const std::vector<ModelParam> saved = {{"a", 5, 0}, {"b", 13, 1}};
    const Manifest m = make_manifest(saved, 2, 2);
    expect_plan_error(m, {{"a", 5, 0}, {"b", 13, 1}, {"extra", 3, 0}}, "parameter 'extra' is registered but not in the checkpoint");
    expect_plan_error(m, {{"a", 5, 0}}, "parameter 'b' is in the checkpoint but not registered");
    expect_plan_error(m, {{"a", 6, 0}, {"b", 13, 1}}, "parameter 'a' has shape [5] in the checkpoint but [6] here");
    expect_plan_error(m, {{"a", 5, 1}, {"b", 13, 1}}, "parameter 'a' is in group 0 in the checkpoint but in group 1 here");
    Manifest no_state = m;
    no_state.files[1].arrays.pop_back();
    expect_plan_error(no_state, {{"a", 5, 0}, {"b", 13, 1}}, "rank00001.shard has no array 'exp_avg_sq' for group 1");
}

/* MoE expert groups: n_experts experts of `numel` elements each ("x<id>"),
 * saved at world ws with ep_size es: slice e (experts of expert-parallel
 * rank e) is cut into ws/es partitions held by files e, e+es, ... */
static Manifest make_expert_manifest(int n_experts, size_t numel, int ws, int es) {
    const int per = n_experts / es, parts = ws / es;
    std::vector<LayoutParam> lp(static_cast<size_t>(per), LayoutParam{numel, 0});
    const FlatLayout L = make_flat_layout(lp, std::vector<int>{parts});
    Manifest m;
    m.path = "test/manifest.json";
    m.world_size = ws;
    m.states = {"exp_avg", "exp_avg_sq"};
    ManifestGroup G;
    G.ep_size = es;
    G.numel = L.groups[0].numel;
    G.padded = L.groups[0].padded;
    G.partition = L.groups[0].partition;
    for (int e = 0; e < es; ++e) {
        G.slice_files.emplace_back();
        for (int j = 0; j < parts; ++j) G.slice_files.back().push_back(e + j * es);
        for (int k = 0; k < per; ++k)
            G.params.push_back(ManifestParam{"x" + std::to_string(e * per + k), {static_cast<int64_t>(numel)}, "float32",
                                             L.groups[0].offsets[static_cast<size_t>(k)], numel, static_cast<size_t>(e)});
    }
    m.groups.push_back(G);
    add_shard_files(m);
    return m;
}

/* Each rank of (wl, el) plans its experts' partition; every element must
 * come from the right expert, element and kind. */
static void check_expert_load(int n_experts, size_t numel, int ws, int es, int wl, int el) {
    const Manifest m = make_expert_manifest(n_experts, numel, ws, es);
    const ManifestGroup &G = m.groups[0];
    /* shard contents: file r holds partition r / es of slice r % es */
    std::vector<std::vector<float>> shards;
    for (const ManifestFile &f : m.files) {
        std::vector<float> data(f.bytes / sizeof(float), 0.0f);
        const size_t slice = static_cast<size_t>(f.rank % es), part = static_cast<size_t>(f.rank / es);
        for (const ManifestArray &a : f.arrays) {
            const size_t k = static_cast<size_t>(std::find(kKinds.begin(), kKinds.end(), a.kind) - kKinds.begin());
            for (const ManifestParam &p : G.params) {
                if (p.slice != slice) continue;
                const size_t id = static_cast<size_t>(std::stoi(p.name.substr(1)));
                for (size_t e = 0; e < p.numel; ++e)
                    if ((p.offset + e) / G.partition == part)
                        data[a.offset / sizeof(float) + (p.offset + e) % G.partition] = value_of(id, e, k);
            }
        }
        shards.push_back(std::move(data));
    }
    const int per = n_experts / el, parts = wl / el;
    std::vector<LayoutParam> lp(static_cast<size_t>(per), LayoutParam{numel, 0});
    const FlatLayout L = make_flat_layout(lp, std::vector<int>{parts});
    for (int rank = 0; rank < wl; ++rank) {
        const int ep_rank = rank % el, part = rank / el;
        ReshardTarget t;
        for (int k = 0; k < per; ++k)
            t.params.push_back(ReshardParam{"x" + std::to_string(ep_rank * per + k), {static_cast<int64_t>(numel)}, 0,
                                            L.param_offset[static_cast<size_t>(k)], numel});
        const size_t P = L.groups[0].partition;
        t.ranges.emplace_back(static_cast<size_t>(part) * P, static_cast<size_t>(part + 1) * P);
        t.kinds = kKinds;
        t.ep_sizes = {el};
        std::vector<std::vector<float>> dst(kKinds.size(), std::vector<float>(P, -7.0f));
        for (const ShardCopy &c : plan_reshard(m, t))
            std::memcpy(dst[c.kind].data() + c.dst, shards[static_cast<size_t>(c.file)].data() + c.src / sizeof(float),
                        c.count * sizeof(float));
        for (size_t k = 0; k < kKinds.size(); ++k)
            for (size_t x = 0; x < P; ++x) {
                const size_t flat = static_cast<size_t>(part) * P + x;
                const size_t local = flat / numel;
                const float want = local < static_cast<size_t>(per)
                                       ? value_of(static_cast<size_t>(ep_rank * per) + local, flat % numel, k)
                                       : -7.0f;
                if (dst[k][x] != want)
                    fail_msg("experts saved at world %d ep %d, loaded at world %d ep %d rank %d: kind %zu element %zu "
                             "holds %g, want %g",
                             ws, es, wl, el, rank, k, x, dst[k][x], want);
            }
    }
}

static void test_expert_groups_reshard_across_ep_sizes(void **) {
    const int pairs[][2] = {{1, 1}, {2, 1}, {2, 2}, {4, 1}, {4, 2}, {4, 4}, {8, 2}, {8, 4}};
    for (const auto &s : pairs)
        for (const auto &l : pairs) check_expert_load(4, 7, s[0], s[1], l[0], l[1]);
}

static void test_expert_group_mismatch_named(void **) {
    const Manifest m = make_expert_manifest(4, 7, 4, 2);
    ReshardTarget t;
    t.kinds = kKinds;
    t.ranges.emplace_back(0, 8);
    t.params.push_back(ReshardParam{"x0", {7}, 0, 0, 7});
    t.ep_sizes = {0};
    try {
        plan_reshard(m, t);
        fail_msg("an expert group loaded as an ordinary one was accepted");
    } catch (const Error &e) {
        assert_non_null(std::strstr(e.what(), "holds MoE expert parameters in the checkpoint but ordinary parameters here"));
    }
    t.ep_sizes = {2}; /* one expert per rank at ep 2 covers 2 of the 4 */
    try {
        plan_reshard(m, t);
        fail_msg("a rank holding too few experts was accepted");
    } catch (const Error &e) {
        assert_non_null(std::strstr(e.what(), "holds 4 parameters in the checkpoint, but 1 on each of the 2"));
    }
}

/* A shard-like file of `n` bytes with chunk checksums of `chunk` bytes (0: one whole-file CRC). */
static ManifestFile write_test_file(const std::string &dir, std::vector<char> &data, uint64_t chunk) {
    ManifestFile f;
    f.name = shard_name(0);
    f.rank = 0;
    std::memset(data.data(), 0, kShardHeaderBytes);
    std::memcpy(data.data(), kShardMagic, sizeof kShardMagic);
    FileWriter w(path_join(dir, f.name), chunk);
    w.write(data.data(), 10);           /* odd pieces: chunks straddle writes */
    w.write(data.data() + 10, data.size() - 10);
    w.close();
    f.bytes = w.bytes();
    f.crc32 = w.crc();
    f.chunk_bytes = chunk;
    f.chunk_crc32 = w.chunk_crcs();
    assert_int_equal(f.crc32, crc32_of(data.data(), data.size()));
    return f;
}

static void test_reader_chunks(void **) {
    char tmpl[] = "/tmp/dsz_reader_XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    std::mt19937 rng(99);
    std::vector<char> data(5000);
    for (size_t i = kShardHeaderBytes; i < data.size(); ++i) data[i] = static_cast<char>(rng());
    for (uint64_t chunk : {uint64_t(0), uint64_t(7), uint64_t(64), uint64_t(1000), uint64_t(6000)}) {
        const ManifestFile f = write_test_file(dir, data, chunk);
        if (chunk) assert_int_equal(f.chunk_crc32.size(), (data.size() + chunk - 1) / chunk);
        ShardReader r(dir, f);
        for (int i = 0; i < 200; ++i) {
            const size_t a = rng() % data.size(), n = rng() % (data.size() - a + 1);
            std::vector<char> out(n + 1, 'x');
            r.read(a, n, out.data());
            assert_memory_equal(out.data(), data.data() + a, n);
            assert_int_equal(out[n], 'x');
        }
        /* A flipped byte: reads that touch its chunk fail naming the file (and the chunk). */
        const std::string path = path_join(dir, f.name);
        std::vector<char> bad = data;
        bad[3001] ^= 0x10;
        FILE *fp = std::fopen(path.c_str(), "wb");
        std::fwrite(bad.data(), 1, bad.size(), fp);
        std::fclose(fp);
        ShardReader rb(dir, f);
        std::vector<char> out(data.size());
        if (chunk && chunk < 1000) rb.read(0, 2900, out.data()); /* untouched chunks still read */
        try {
            rb.read(2990, 20, out.data());
            fail_msg("the corrupt byte was not detected (chunk %llu)", static_cast<unsigned long long>(chunk));
        } catch (const Error &e) {
            assert_non_null(std::strstr(e.what(), "rank00000.shard is corrupt"));
            if (chunk) assert_non_null(std::strstr(e.what(), "chunk"));
        }
        /* Truncated. */
        assert_int_equal(::truncate(path.c_str(), 4000), 0);
        try {
            ShardReader rt(dir, f);
            fail_msg("a truncated file was accepted");
        } catch (const Error &e) {
            assert_non_null(std::strstr(e.what(), "truncated"));
        }
    }
    remove_tree(dir);
}

/* Page-aligned destinations and file offsets: whole-chunk runs are read with
 * O_DIRECT straight into place, the file's unaligned tail through the cache. */
static void test_reader_in_place(void **) {
    char tmpl[] = "/tmp/dsz_reader_XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    std::mt19937 rng(7);
    std::vector<char> data(5 * 4096 + 1000);
    for (size_t i = kShardHeaderBytes; i < data.size(); ++i) data[i] = static_cast<char>(rng());
    const ManifestFile f = write_test_file(dir, data, 4096);
    ShardReader r(dir, f);
    const size_t cap = (data.size() + 4096 + 4095) / 4096 * 4096; /* aligned_alloc wants a multiple */
    char *out = static_cast<char *>(std::aligned_alloc(4096, cap));
    for (uint64_t a : {uint64_t(0), uint64_t(4096), uint64_t(8192)}) {
        std::memset(out, 'x', cap);
        r.read(a, data.size() - a, out);
        assert_memory_equal(out, data.data() + a, data.size() - a);
        assert_int_equal(out[data.size() - a], 'x'); /* nothing written past the end */
    }
    /* A flipped byte in the tail chunk is caught on this path too. */
    std::vector<char> bad = data;
    bad[data.size() - 10] ^= 1;
    FILE *fp = std::fopen(path_join(dir, f.name).c_str(), "wb");
    std::fwrite(bad.data(), 1, bad.size(), fp);
    std::fclose(fp);
    ShardReader rb(dir, f);
    try {
        rb.read(0, data.size(), out);
        fail_msg("the corrupt tail was not detected");
    } catch (const Error &e) {
        assert_non_null(std::strstr(e.what(), "chunk 5"));
    }
    std::free(out);
    remove_tree(dir);
}

/* LoadedRanges on real files: shards written by FileWriter (4 KiB chunks),
 * their arrays packed or 4 KiB-aligned as dsz_save lays them out (whole
 * chunks then read with O_DIRECT straight into place), loaded at the same and
 * at another world size. Every element holds its saved value, padding the
 * kind's initial value, and every array is page-aligned and can be swapped
 * with an engine array (PageAlignedFloats) as dsz_load's commit does. */
static void test_loaded_ranges(void **) {
    const std::vector<ModelParam> model = {{"a", 3000, 0}, {"b", 5001, 0}, {"c", 777, 1}};
    const std::vector<float> init = {0.0f, 0.5f, 0.25f};
    for (bool aligned : {false, true}) {
        char tmpl[] = "/tmp/dsz_loaded_XXXXXX";
        const std::string dir = ::mkdtemp(tmpl);
        Manifest m = make_manifest(model, 2, 2);
        if (aligned)
            for (ManifestFile &f : m.files) {
                uint64_t off = kShardHeaderBytes;
                for (ManifestArray &a : f.arrays) {
                    a.offset = off = shard_array_offset(off);
                    off += a.count * sizeof(float);
                }
                f.bytes = off;
            }
        const auto shards = make_shards(m, model);
        for (ManifestFile &f : m.files) {
            std::vector<char> bytes(f.bytes);
            std::memcpy(bytes.data(), shards[static_cast<size_t>(f.rank)].data(), f.bytes);
            std::memset(bytes.data(), 0, kShardHeaderBytes);
            std::memcpy(bytes.data(), kShardMagic, sizeof kShardMagic);
            const uint32_t rank = static_cast<uint32_t>(f.rank);
            std::memcpy(bytes.data() + 16, &rank, sizeof rank);
            FileWriter w(path_join(dir, f.name), 4096, /*direct=*/true);
            w.write(bytes.data(), bytes.size());
            w.close();
            f.crc32 = w.crc();
            f.chunk_bytes = 4096;
            f.chunk_crc32 = w.chunk_crcs();
        }
        for (int world : {2, 3}) {
            std::vector<LayoutParam> lp;
            for (const ModelParam &p : model) lp.push_back(LayoutParam{p.numel, static_cast<int>(p.group)});
            const FlatLayout L = make_flat_layout(lp, 2, world);
            const int rank = 1;
            ReshardTarget t;
            for (size_t i = 0; i < model.size(); ++i)
                t.params.push_back(ReshardParam{model[i].name, {static_cast<int64_t>(model[i].numel)}, model[i].group,
                                                L.param_offset[i], model[i].numel});
            for (const GroupLayout &G : L.groups) t.ranges.emplace_back(rank * G.partition, (rank + 1) * G.partition);
            t.kinds = kKinds;
            LoadedRanges loaded(t, init);
            loaded.read(m, dir, plan_reshard(m, t));
            for (size_t g = 0; g < 2; ++g) {
                const size_t begin = t.ranges[g].first, n = loaded.size(g);
                assert_int_equal(n, t.ranges[g].second - begin);
                std::vector<size_t> who(n, SIZE_MAX), elem(n, 0);
                for (size_t i = 0; i < model.size(); ++i)
                    for (size_t e = 0; model[i].group == g && e < model[i].numel; ++e) {
                        const size_t flat = L.param_offset[i] + e;
                        if (flat >= begin && flat < begin + n) {
                            who[flat - begin] = i;
                            elem[flat - begin] = e;
                        }
                    }
                for (size_t k = 0; k < kKinds.size(); ++k) {
                    const float *got = loaded.data(g, k);
                    assert_int_equal(reinterpret_cast<uintptr_t>(got) % 4096, 0);
                    for (size_t x = 0; x < n; ++x) {
                        const float want = who[x] == SIZE_MAX ? init[k] : value_of(who[x], elem[x], k);
                        if (got[x] != want)
                            fail_msg("%s arrays, world %d: group %zu kind %zu element %zu holds %g, want %g",
                                     aligned ? "aligned" : "packed", world, g, k, x, got[x], want);
                    }
                }
            }
            PageAlignedFloats mine(5, 9.0f);
            const std::vector<float> before(loaded.data(1, 2), loaded.data(1, 2) + loaded.size(1));
            mine.swap(loaded.array(1, 2));
            assert_int_equal(mine.size(), before.size());
            assert_memory_equal(mine.data(), before.data(), before.size() * sizeof(float));
            assert_int_equal(loaded.array(1, 2).size(), 5);
            assert_true(loaded.data(1, 2)[4] == 9.0f);
        }
        remove_tree(dir);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_world_size_pair),
        cmocka_unit_test(test_registration_order_may_differ),
        cmocka_unit_test(test_mismatched_parameters_named),
        cmocka_unit_test(test_expert_groups_reshard_across_ep_sizes),
        cmocka_unit_test(test_expert_group_mismatch_named),
        cmocka_unit_test(test_reader_chunks),
        cmocka_unit_test(test_reader_in_place),
        cmocka_unit_test(test_loaded_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
