/*
 * swap_step.cpp -- the engine's side of NVMe offload: setting the swap
 * files up at registration, the optimizer step sub-group by sub-group, and
 * the accessors checkpoints use to reach optimizer states wherever they live;
 * likewise for the fp32 masters with offload_param nvme (param_swap.h).
 *
 * Failure policy: anything that can be checked before a step changes
 * something is checked first (swap files' sizes, in step()), so such a step
 * fails with the engine as it was. An I/O error in the middle of the
 * sub-group walk leaves some sub-groups updated and others not: the engine
 * is then marked failed, and every later call says why.
 */
#include "common/error.h"
#include "engine/agree.h"
#include "engine/engine.h"
#include "engine/param_swap.h"
#include "engine/swap_store.h"

namespace dsz {

/* Runs f on this rank; if it fails here or on another rank, every rank
 * fails (a path missing on one node must not leave the others waiting). */
template <class F>
static void on_every_rank(comm::Communicator &comm, const char *what, F &&f) {
    std::string err;
    dsz_status st = DSZ_OK;
    try {
        f();
    } catch (const Error &e) {
        err = e.what();
        st = e.status();
    }
    agree(comm, err, DSZ_ERR_IO, what);
    if (!err.empty()) throw Error(st, err);
}

void Engine::open_swap() {
    on_every_rank(*comm_, "dsz_init (NVMe offload)", [&] { swap_.reset(new SwapStore(cfg_, rank_, log_)); });
}

void Engine::prepare_swap(const std::vector<GroupState> &groups) {
    if (!optimizer_ || optimizer_->state_count() == 0) {
        log_.warn(strprintf("zero_optimization.offload_optimizer.device \"nvme\": optimizer %s keeps no state, so "
                            "there is nothing to swap",
                            optimizer_ ? optimizer_->name() : "none"));
        swap_.reset();
        return;
    }
    std::vector<SwapGroup> sg;
    for (const GroupState &G : groups) sg.push_back(SwapGroup{G.master.size(), &G.spans, &G.tensors});
    on_every_rank(*comm_, "dsz_register_params (NVMe offload)", [&] { swap_->create(sg, *optimizer_); });
    size_t largest = 0;
    for (const SubGroup &s : swap_->sub_groups()) largest = std::max(largest, s.size());
    log_.logf(DSZ_LOG_INFO,
              "NVMe offload: %zu optimizer states in %zu sub-groups (largest %zu elements) under %s (%.1f MiB); "
              "%zu sub-group%s in memory at once (%.1f MiB of buffers)",
              swap_->states(), swap_->sub_groups().size(), largest, swap_->folder().c_str(),
              static_cast<double>(swap_->disk_bytes()) / (1 << 20), swap_->slots(), swap_->slots() == 1 ? "" : "s",
              static_cast<double>(swap_->buffer_bytes()) / (1 << 20));
}

void Engine::apply_update_swapped(double grad_mul) {
    std::vector<UpdateArgs> args(groups_.size());
    for (size_t g = 0; g < groups_.size(); ++g) {
        GroupState &G = groups_[g];
        if (G.spans.empty()) continue;
        ++G.step_count;
        args[g] = group_update_args(G, grad_mul);
    }
    /* Swapped masters are one more array of the sub-group: read before its
     * update, written after. */
    auto update = [&](const SubGroup &sg, float *const *states) {
        GroupState &G = groups_[sg.group];
        UpdateArgs a = args[sg.group];
        a.master = param_swap_ ? param_swap_->load_sub_group(sg.group, sg.begin) : G.master.data() + sg.begin;
        a.grad = reduced_grad(G) + sg.begin;
        a.states = states;
        a.spans = &sg.spans;
        a.tensors = &sg.tensors;
        optimizer_->update(a);
        if (param_swap_) param_swap_->store_sub_group(sg.group, sg.begin);
    };
    try {
        if (swap_) {
            swap_->pipeline(update);
        } else { /* only the masters are swapped: the states are in memory */
            std::vector<float *> states(static_cast<size_t>(optimizer_->state_count()));
            for (const SubGroup &sg : param_swap_->sub_groups()) {
                if (sg.spans.empty()) continue;
                for (size_t s = 0; s < states.size(); ++s) states[s] = groups_[sg.group].states[s].data() + sg.begin;
                update(sg, states.data());
            }
        }
    } catch (const Error &e) {
        failed_ = strprintf("the optimizer step stopped part-way through the NVMe-swapped sub-groups: %s", e.what());
        fail(e.status(), "%s; the engine cannot be used any more (free it and resume from a checkpoint)",
             failed_.c_str());
    }
}

void Engine::read_state_partition(size_t g, int s, const std::function<void(const float *, size_t)> &sink) {
    const GroupState &G = groups_[g];
    if (swap_) return swap_->read_state(g, static_cast<size_t>(s), sink);
    const size_t begin = local_of(G, static_cast<size_t>(G.part) * layout_.groups[g].partition);
    sink(G.states[static_cast<size_t>(s)].data() + begin, layout_.groups[g].partition);
}

void Engine::put_state_partition(size_t g, int s, PageAlignedFloats &values) {
    if (!swap_) return groups_[g].states[static_cast<size_t>(s)].swap(values);
    try {
        swap_->write_state(g, static_cast<size_t>(s), values.data());
    } catch (const Error &e) {
        failed_ = strprintf("writing loaded optimizer states to NVMe failed: %s", e.what());
        fail(e.status(), "%s; the engine cannot be used any more", failed_.c_str());
    }
    PageAlignedFloats().swap(values);
}

void Engine::open_param_swap() {
    on_every_rank(*comm_, "dsz_init (NVMe parameter offload)",
                  [&] { param_swap_.reset(new ParamSwap(cfg_, rank_, log_)); });
}

void Engine::swap_params_out() {
    std::vector<SwapGroup> sg;
    std::vector<const float *> masters;
    for (const GroupState &G : groups_) {
        sg.push_back(SwapGroup{G.master.size(), &G.spans, &G.tensors});
        masters.push_back(G.master.data());
    }
    on_every_rank(*comm_, "dsz_register_params (NVMe parameter offload)", [&] { param_swap_->create(sg, masters); });
    for (GroupState &G : groups_) PageAlignedFloats().swap(G.master);
    log_.logf(DSZ_LOG_INFO,
              "NVMe parameter offload: fp32 master weights in %zu sub-groups under %s (%.1f MiB); %.1f MiB of "
              "staging buffers in memory",
              param_swap_->sub_groups().size(), param_swap_->folder().c_str(),
              static_cast<double>(param_swap_->disk_bytes()) / (1 << 20),
              static_cast<double>(param_swap_->buffer_bytes()) / (1 << 20));
}

void Engine::with_masters_in_memory(bool changes, const std::function<void()> &f) {
    if (!param_swap_ || !registered_ || !failed_.empty()) return f();
    auto release = [&] {
        for (GroupState &G : groups_) PageAlignedFloats().swap(G.master);
    };
    /* A load replaces every master, so it may repair a damaged swap file:
     * it then starts from zeros, and the file is only rewritten once the
     * load succeeded (else it stays damaged, and every use says so). */
    bool damaged = false;
    try {
        for (size_t g = 0; g < groups_.size(); ++g) groups_[g].master.assign(layout_.groups[g].partition, 0.0f);
        try {
            param_swap_->verify();
        } catch (const Error &) {
            if (!changes) throw;
            damaged = true;
        }
        for (size_t g = 0; g < groups_.size() && !damaged; ++g) {
            float *to = groups_[g].master.data();
            param_swap_->read(g, 0, groups_[g].master.size(), [&](const float *v, size_t k) {
                std::copy(v, v + k, to);
                to += k;
            });
        }
    } catch (...) {
        release();
        throw;
    }
    note_memory();
    auto write_back = [&] {
        try {
            for (size_t g = 0; g < groups_.size(); ++g)
                if (!groups_[g].master.empty()) param_swap_->write(g, groups_[g].master.data());
        } catch (const Error &e) {
            release();
            failed_ = strprintf("writing the fp32 master weights to NVMe failed: %s", e.what());
            fail(e.status(), "%s; the engine cannot be used any more", failed_.c_str());
        }
    };
    try {
        f();
    } catch (...) {
        /* A load that failed after committing left new masters: keep them. */
        if (changes && !damaged) try { write_back(); } catch (const Error &) {}
        release();
        throw;
    }
    if (changes) write_back();
    release();
}

}  // namespace dsz
