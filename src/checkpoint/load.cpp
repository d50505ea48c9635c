/*
 * load.cpp -- Engine::load: verify everything, then change anything.
 *
 * The manifest is parsed and checked (checkpoint/manifest.h), the saved
 * parameters are matched by name with the registered ones and this rank's
 * ranges are planned (checkpoint/reshard.h) -- at the saved world size and
 * stage or any other -- then exactly those ranges are read from the shards,
 * every chunk verified against its checksum, into arrays aside
 * (checkpoint/loaded_ranges.h). Only when
 * every rank has succeeded are the engine and the host's tensors updated
 * (the arrays swapped in where they are the engine's whole local arrays,
 * copied over otherwise), so a bad checkpoint leaves both exactly as they were.
 */
#include <cstring>

#include "checkpoint/files.h"
#include "checkpoint/format.h"
#include "checkpoint/loaded_ranges.h"
#include "checkpoint/manifest.h"
#include "checkpoint/reshard.h"
#include "common/error.h"
#include "engine/agree.h"
#include "engine/engine.h"
#include "tensor/convert.h"

namespace dsz {

/* Work per thread when committing (elements copied; spans converted). */
static constexpr size_t kCopyGrain = size_t(1) << 20;
static constexpr size_t kSpanGrain = 16;

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

    const std::string cdir = resolve_checkpoint_dir(dir, tag_in);
    const std::string mpath = path_join(cdir, kManifestName);
    const Manifest m = parse_manifest(read_file(mpath, "checkpoint manifest"), mpath);
    const std::string &w = mpath;

    const int n_states = optimizer_ ? optimizer_->state_count() : 0;
    if (load_optim) {
        bool same = static_cast<int>(m.states.size()) == n_states;
        for (int s = 0; same && s < n_states; ++s) same = m.states[static_cast<size_t>(s)] == optimizer_->state_name(s);
        if (!same)
            fail(DSZ_ERR_CHECKPOINT, "%s: saved by optimizer %s, whose states differ from %s's; load with "
                                     "DSZ_LOAD_SKIP_OPTIMIZER_STATES to take only the weights",
                 w.c_str(), m.optimizer_type.c_str(), optimizer_ ? optimizer_->name() : "none");
    }

    /* What this rank fills: its partition of every group in today's layout (at stage 0
     * too: the rest is gathered from the other ranks after the commit). */
    ReshardTarget target;
    for (const ParamRecord &p : params_)
        target.params.push_back(ReshardParam{p.name, p.host.shape, static_cast<size_t>(p.group), p.offset, p.host.numel});
    for (size_t g = 0; g < groups_.size(); ++g) {
        const size_t P = layout_.groups[g].partition, part = static_cast<size_t>(groups_[g].part);
        target.ranges.emplace_back(part * P, (part + 1) * P);
        target.ep_sizes.push_back(groups_[g].ep_size);
    }
    target.kinds.push_back("master");
    for (int s = 0; load_optim && s < n_states; ++s) target.kinds.push_back(optimizer_->state_name(s));
    const std::vector<ShardCopy> copies = plan_reshard(m, target);
    for (const ManifestGroup &G : m.groups)
        for (const ManifestParam &sp : G.params) {
            const auto it = by_name_.find(sp.name); /* expert parameters: another rank's, maybe */
            if (it == by_name_.end()) continue;
            const ParamRecord &p = params_[it->second];
            if (sp.dtype != dtype_name(p.host.dtype))
                log_.warn(strprintf("%s: parameter '%s' was saved as %s and is loaded into %s", w.c_str(),
                                    p.name.c_str(), sp.dtype.c_str(), dtype_name(p.host.dtype)));
        }

    std::vector<float> init(1, 0.0f);
    for (int s = 0; load_optim && s < n_states; ++s) init.push_back(optimizer_->state_init(s));
    LoadedRanges loaded(target, init);
    loaded.read(m, cdir, copies);
    uint64_t bytes_saved = 0;
    for (const ManifestFile &f : m.files) bytes_saved += f.bytes;
    log_.logf(DSZ_LOG_DEBUG, "dsz_load: rank %d read %llu of the checkpoint's %llu shard bytes", rank_,
              static_cast<unsigned long long>(loaded.bytes_read()), static_cast<unsigned long long>(bytes_saved));
    std::string client_text = m.client_state;
    const LossScalerState &ls = m.loss_scaler;
    const int64_t t = m.last_batch_iteration;
    const int64_t gs = m.global_steps, ms = m.micro_steps, ss = m.skipped_steps, gsm = m.global_samples;
    const double gn = m.grad_norm;

    agree(*comm_, "", DSZ_ERR_CHECKPOINT, "dsz_load");
    agreed_ = true;

    /* Everything verified on every rank: commit. Without the fp32 masters (weights only),
     * masters are re-derived from the 16-bit weights, as DeepSpeed does. */
    const bool exact_master = load_optim && cfg_.zero.load_from_fp32_weights;
    for (size_t g = 0; g < groups_.size(); ++g) {
        GroupState &G = groups_[g];
        const size_t at = target.ranges[g].first - G.base, n = loaded.size(g);
        for (size_t k = 0; k < target.kinds.size(); ++k) {
            if (k > 0 && swap_) { /* optimizer states on NVMe (stage 3: the local array is the range) */
                put_state_partition(g, static_cast<int>(k - 1), loaded.array(g, k));
                continue;
            }
            PageAlignedFloats &local = k == 0 ? G.master : G.states[k - 1];
            if (at == 0 && local.size() == n) { /* stages 1-3: the loaded range is the local array */
                local.swap(loaded.array(g, k));
                continue;
            }
            const float *from = loaded.data(g, k);
            float *to = local.data() + at;
            pool_->parallel_for(n, kCopyGrain, [&](size_t, size_t b, size_t e) {
                std::memcpy(to + b, from + b, (e - b) * sizeof(float));
            });
        }
        if (load_optim) G.step_count = m.groups[g].step_count;
    }
    if (cfg_.zero.stage == 0 && world_ > 1) {
        /* Stage 0 holds everything: every rank read its partition, gather the rest. */
        for (GroupState &G : groups_) {
            if (G.parts == 1) continue;
            comm::Communicator &c = group_comm(G);
            const comm::Partition part = comm::Partition::even(G.master.size(), G.parts);
            c.all_gather(G.master.data() + part.offset(G.part), G.master.data(), part, sizeof(float));
            if (load_optim)
                for (auto &st : G.states) c.all_gather(st.data() + part.offset(G.part), st.data(), part, sizeof(float));
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
    if (m.world_size != world_ || m.zero_stage != cfg_.zero.stage)
        log_.logf(DSZ_LOG_INFO, "loaded checkpoint %s (global step %lld), written at world size %d and ZeRO stage %d, "
                                "into world size %d and stage %d",
                  cdir.c_str(), static_cast<long long>(gs), m.world_size, m.zero_stage, world_, cfg_.zero.stage);
    else
        log_.logf(DSZ_LOG_INFO, "loaded checkpoint %s (global step %lld)", cdir.c_str(), static_cast<long long>(gs));
    return client_text;
}

void Engine::write_back_all() {
    if (params_.empty()) return;
    const DType dt = params_[0].host.dtype;
    for (GroupState &G : groups_)
        pool_->parallel_for(G.spans.size(), kSpanGrain, [&](size_t, size_t b, size_t e) {
            for (size_t i = b; i < e; ++i) {
                const Span &s = G.spans[i];
                if (s.out) convert_from_f32(G.master.data() + s.offset, s.out, dt, s.n);
            }
        });
    publish_params();
    refresh_gathered();
}

}  // namespace dsz
