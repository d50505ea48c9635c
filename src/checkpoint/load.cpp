/*
 * load.cpp -- Engine::load: verify everything, then change anything.
 *
 * The manifest is checked against the engine (format version, world size,
 * stage, every parameter's name, shape and dtype, the optimizer's states),
 * every shard is read and its size and CRC-32 verified, and the new state is
 * assembled aside. Only then are the engine and the host's tensors updated,
 * so a bad checkpoint leaves both exactly as they were.
 */
#include <cmath>
#include <cstring>

#include "checkpoint/files.h"
#include "checkpoint/format.h"
#include "checkpoint/json_util.h"
#include "common/error.h"
#include "engine/agree.h"
#include "engine/engine.h"
#include "tensor/convert.h"

namespace dsz {

namespace {

struct LoadedGroup {
    std::vector<float> master;
    std::vector<std::vector<float>> states;
    int64_t step_count = 0;
};

std::string resolve_tag(const std::string &dir, const std::string &tag) {
    if (!tag.empty()) return tag;
    const std::string latest = path_join(dir, kLatestName);
    if (!path_exists(latest))
        fail(DSZ_ERR_NOT_FOUND, "no checkpoint tag given and %s does not exist", latest.c_str());
    std::string t = read_file(latest, "checkpoint pointer");
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
    if (t.empty()) fail(DSZ_ERR_CHECKPOINT, "%s is empty", latest.c_str());
    return t;
}

}  // namespace

std::string Engine::load(const std::string &dir, const std::string &tag_in, uint32_t flags) {
    try {
        return load_verified(dir, tag_in, flags);
    } catch (const Error &e) {
        /* A local failure: tell the other ranks before giving up, so none waits. */
        if (e.status() != DSZ_ERR_COMM && e.status() != DSZ_ERR_TIMEOUT && !agreed_)
            agree(*comm_, e.what(), DSZ_ERR_CHECKPOINT, "dsz_load");
        throw;
    }
}

std::string Engine::load_verified(const std::string &dir, const std::string &tag_in, uint32_t flags) {
    agreed_ = false;
    require_registered("dsz_load");
    if (flags & ~uint32_t(DSZ_LOAD_SKIP_OPTIMIZER_STATES | DSZ_LOAD_SKIP_LR_SCHEDULER | DSZ_LOAD_MODULE_ONLY))
        fail(DSZ_ERR_INVALID_ARGUMENT, "dsz_load: unknown flag bits 0x%x", flags);
    const bool module_only = flags & DSZ_LOAD_MODULE_ONLY;
    const bool load_optim = !module_only && !(flags & DSZ_LOAD_SKIP_OPTIMIZER_STATES);
    const bool load_sched = !module_only && !(flags & DSZ_LOAD_SKIP_LR_SCHEDULER);

    const std::string tag = resolve_tag(dir, tag_in);
    check_tag(tag);
    const std::string cdir = path_join(dir, tag);
    const std::string mpath = path_join(cdir, kManifestName);
    const std::string mtext = read_file(mpath, "checkpoint manifest");
    JsonPtr m(cJSON_Parse(mtext.c_str()));
    if (!m || !cJSON_IsObject(m.get())) fail(DSZ_ERR_CHECKPOINT, "%s is not valid JSON", mpath.c_str());
    const std::string &w = mpath;

    if (json_string(m.get(), "format", w) != kFormatName)
        fail(DSZ_ERR_CHECKPOINT, "%s: not a dszero checkpoint (format \"%s\")", w.c_str(),
             json_string(m.get(), "format", w).c_str());
    const cJSON *ver = json_array(m.get(), "format_version", w);
    const cJSON *major = cJSON_GetArrayItem(ver, 0);
    if (!cJSON_IsNumber(major)) fail(DSZ_ERR_CHECKPOINT, "%s: format_version is malformed", w.c_str());
    if (major->valueint != kFormatMajor)
        fail(DSZ_ERR_CHECKPOINT, "%s: format major version %d is unknown to this dszero (%s reads version %d)",
             w.c_str(), major->valueint, dsz_version(), kFormatMajor);
    const int64_t saved_world = json_int(m.get(), "world_size", w);
    if (saved_world != world_)
        fail(DSZ_ERR_UNSUPPORTED, "%s: written at world size %lld, this engine runs %d ranks; loading at another "
                                  "world size is not implemented yet",
             w.c_str(), static_cast<long long>(saved_world), world_);

    /* Layout: the same parameters, in the same groups and order. */
    const cJSON *groups = json_array(m.get(), "groups", w);
    if (cJSON_GetArraySize(groups) != static_cast<int>(groups_.size()))
        fail(DSZ_ERR_CHECKPOINT, "%s: %d parameter groups saved, %zu registered", w.c_str(),
             cJSON_GetArraySize(groups), groups_.size());
    for (size_t g = 0; g < groups_.size(); ++g) {
        const cJSON *jg = cJSON_GetArrayItem(groups, static_cast<int>(g));
        const std::string wg = w + " group " + std::to_string(g);
        const cJSON *jp = json_array(jg, "params", wg);
        const GroupLayout &L = layout_.groups[g];
        if (cJSON_GetArraySize(jp) != static_cast<int>(L.params.size()))
            fail(DSZ_ERR_CHECKPOINT, "%s: %d parameters saved, %zu registered", wg.c_str(), cJSON_GetArraySize(jp),
                 L.params.size());
        for (size_t k = 0; k < L.params.size(); ++k) {
            const ParamRecord &p = params_[L.params[k]];
            const cJSON *o = cJSON_GetArrayItem(jp, static_cast<int>(k));
            const std::string name = json_string(o, "name", wg);
            if (name != p.name)
                fail(DSZ_ERR_CHECKPOINT, "%s: parameter %zu is '%s' in the checkpoint but '%s' here", wg.c_str(), k,
                     name.c_str(), p.name.c_str());
            const cJSON *shape = json_array(o, "shape", wg);
            std::vector<int64_t> s;
            for (const cJSON *d = shape->child; d; d = d->next) s.push_back(static_cast<int64_t>(d->valuedouble));
            if (s != p.host.shape)
                fail(DSZ_ERR_CHECKPOINT, "%s: parameter '%s' has shape %s in the checkpoint but %s here", wg.c_str(),
                     p.name.c_str(), shape_string(s).c_str(), shape_string(p.host.shape).c_str());
            const std::string dt = json_string(o, "dtype", wg);
            if (dt != dtype_name(p.host.dtype))
                log_.warn(strprintf("%s: parameter '%s' was saved as %s and is loaded into %s", wg.c_str(),
                                    p.name.c_str(), dt.c_str(), dtype_name(p.host.dtype)));
        }
    }
    const int n_states = optimizer_ ? optimizer_->state_count() : 0;
    if (load_optim) {
        const cJSON *opt = json_field(m.get(), "optimizer", w);
        const cJSON *sn = json_array(opt, "states", w);
        bool same = cJSON_GetArraySize(sn) == n_states;
        for (int s = 0; same && s < n_states; ++s) {
            const cJSON *e = cJSON_GetArrayItem(sn, s);
            same = cJSON_IsString(e) && std::strcmp(e->valuestring, optimizer_->state_name(s)) == 0;
        }
        if (!same)
            fail(DSZ_ERR_CHECKPOINT, "%s: saved by optimizer %s, whose states differ from %s's; load with "
                                     "DSZ_LOAD_SKIP_OPTIMIZER_STATES to take only the weights",
                 w.c_str(), json_string(opt, "type", w).c_str(), optimizer_ ? optimizer_->name() : "none");
    }

    /* This rank's shard, verified whole before use. */
    const cJSON *files = json_array(m.get(), "files", w);
    const cJSON *jf = nullptr;
    for (const cJSON *f = files->child; f; f = f->next)
        if (json_int(f, "rank", w) == rank_) jf = f;
    if (!jf) fail(DSZ_ERR_CHECKPOINT, "%s: no shard is listed for rank %d", w.c_str(), rank_);
    const std::string spath = path_join(cdir, json_string(jf, "name", w));
    const std::string shard = read_file(spath, "checkpoint shard");
    if (static_cast<int64_t>(shard.size()) != json_int(jf, "bytes", w))
        fail(DSZ_ERR_CHECKPOINT, "%s is truncated or padded: %zu bytes, the manifest says %lld", spath.c_str(),
             shard.size(), static_cast<long long>(json_int(jf, "bytes", w)));
    if (crc32_of(shard.data(), shard.size()) != static_cast<uint32_t>(json_int(jf, "crc32", w)))
        fail(DSZ_ERR_CHECKPOINT, "%s is corrupt: its CRC-32 does not match the manifest", spath.c_str());
    if (shard.size() < kShardHeaderBytes || std::memcmp(shard.data(), kShardMagic, sizeof kShardMagic) != 0)
        fail(DSZ_ERR_CHECKPOINT, "%s is not a dszero shard", spath.c_str());

    std::vector<LoadedGroup> loaded(groups_.size());
    for (size_t g = 0; g < groups_.size(); ++g) {
        loaded[g].master.assign(groups_[g].master.size(), 0.0f);
        loaded[g].states.assign(static_cast<size_t>(n_states), std::vector<float>(groups_[g].master.size(), 0.0f));
        loaded[g].step_count = json_int(cJSON_GetArrayItem(groups, static_cast<int>(g)), "step_count", w);
    }
    for (const cJSON *a = json_array(jf, "arrays", w)->child; a; a = a->next) {
        const int64_t g = json_int(a, "group", w), off = json_int(a, "offset", w), count = json_int(a, "count", w);
        const std::string kind = json_string(a, "kind", w);
        if (g < 0 || g >= static_cast<int64_t>(groups_.size()) ||
            count != static_cast<int64_t>(layout_.groups[static_cast<size_t>(g)].partition) || off < 0 ||
            static_cast<uint64_t>(off) + static_cast<uint64_t>(count) * 4 > shard.size())
            fail(DSZ_ERR_CHECKPOINT, "%s: array %s of group %lld does not fit the layout", spath.c_str(), kind.c_str(),
                 static_cast<long long>(g));
        std::vector<float> *dst = nullptr;
        if (kind == "master") dst = &loaded[static_cast<size_t>(g)].master;
        for (int s = 0; s < n_states && !dst; ++s)
            if (kind == optimizer_->state_name(s)) dst = &loaded[static_cast<size_t>(g)].states[static_cast<size_t>(s)];
        if (!dst) continue; /* a state of another optimizer: only weights are taken */
        const GroupState &G = groups_[static_cast<size_t>(g)];
        const size_t begin = local_of(G, static_cast<size_t>(rank_) * layout_.groups[static_cast<size_t>(g)].partition);
        std::memcpy(dst->data() + begin, shard.data() + off, static_cast<size_t>(count) * sizeof(float));
    }
    const cJSON *cnt = json_field(m.get(), "counters", w);
    const cJSON *sc = json_field(m.get(), "loss_scaler", w);
    const cJSON *sch = json_field(m.get(), "scheduler", w);
    LossScalerState ls;
    ls.scale = json_number(sc, "scale", w);
    ls.iter = json_int(sc, "iter", w);
    ls.last_overflow = json_int(sc, "last_overflow", w);
    ls.hysteresis_left = json_int(sc, "hysteresis_left", w);
    const int64_t t = json_int(sch, "last_batch_iteration", w);
    const int64_t gs = json_int(cnt, "global_steps", w), ms = json_int(cnt, "micro_steps", w),
                  ss = json_int(cnt, "skipped_steps", w), gsm = json_int(cnt, "global_samples", w);
    const double gn = json_number(cnt, "grad_norm", w);
    const cJSON *client = cJSON_GetObjectItemCaseSensitive(m.get(), "client_state");
    std::string client_text = client ? json_print(client) : "null";

    agree(*comm_, "", DSZ_ERR_CHECKPOINT, "dsz_load");
    agreed_ = true;

    /* Everything verified on every rank: commit. Without the fp32 masters (weights only),
     * masters are re-derived from the 16-bit weights, as DeepSpeed does. */
    const bool exact_master = load_optim && cfg_.zero.load_from_fp32_weights;
    for (size_t g = 0; g < groups_.size(); ++g) {
        GroupState &G = groups_[g];
        G.master.swap(loaded[g].master);
        if (load_optim) {
            for (int s = 0; s < n_states; ++s) G.states[static_cast<size_t>(s)].swap(loaded[g].states[static_cast<size_t>(s)]);
            G.step_count = loaded[g].step_count;
        }
    }
    if (cfg_.zero.stage == 0 && world_ > 1) {
        /* Stage 0 holds everything: every rank read its partition, gather the rest. */
        for (GroupState &G : groups_) {
            const comm::Partition part = comm::Partition::even(G.master.size(), world_);
            comm_->all_gather(G.master.data() + part.offset(rank_), G.master.data(), part, sizeof(float));
            if (load_optim)
                for (auto &st : G.states)
                    comm_->all_gather(st.data() + part.offset(rank_), st.data(), part, sizeof(float));
        }
    }
    write_back_all();
    if (!exact_master) {
        const DType dt = params_.empty() ? DType::f32 : params_[0].host.dtype;
        std::vector<char> rounded;
        for (GroupState &G : groups_)
            for (const Span &sp : G.spans) {
                const void *from = sp.out;
                if (!from) { /* stage 3: round the masters through the model dtype */
                    rounded.resize(sp.n * dtype_size(dt));
                    convert_from_f32(G.master.data() + sp.offset, rounded.data(), dt, sp.n);
                    from = rounded.data();
                }
                convert_to_f32(from, dt, G.master.data() + sp.offset, sp.n);
            }
    }
    if (load_optim && cfg_.fp16.enabled) scaler_.restore(ls);
    if (!module_only) {
        global_steps_ = gs;
        micro_steps_ = ms;
        skipped_steps_ = ss;
        global_samples_ = gsm;
        grad_norm_ = gn;
    }
    if (load_sched) sched_t_ = t;
    refresh_schedule();
    clear_grads();
    in_micro_ = backward_done_ = false;
    for (ParamRecord &p : params_) p.grad_in_micro = false;
    log_.logf(DSZ_LOG_INFO, "loaded checkpoint %s (global step %lld)", cdir.c_str(), static_cast<long long>(gs));
    return client_text;
}

void Engine::write_back_all() {
    if (params_.empty()) return;
    const DType dt = params_[0].host.dtype;
    for (GroupState &G : groups_)
        for (const Span &s : G.spans)
            if (s.out) convert_from_f32(G.master.data() + s.offset, s.out, dt, s.n);
    publish_params();
    refresh_gathered();
}

}  // namespace dsz
