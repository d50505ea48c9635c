/*
 * moe_api.cpp -- the C ABI of mixture of experts (the MoE section of
 * include/dszero.h; the work is in src/moe).
 *
 * Thin shims: handle and pointer checks, DLTensor shapes against the
 * routing, then one call into src/moe. Routings are immutable once made, so
 * several threads may dispatch / combine with one routing at a time; a group
 * is used by one thread at a time (it communicates).
 */
#include <cmath>
#include <memory>

#include "api/guard.h"
#include "api/shim.h"
#include "comm/communicator.h"
#include "engine/engine.h"
#include "moe/dispatch.h"
#include "moe/expert_group.h"
#include "moe/gate.h"
#include "tensor/host_tensor.h"

struct dsz_moe_group {
    std::unique_ptr<dsz::moe::ExpertGroup> impl;
};

struct dsz_moe_routing {
    dsz::moe::Routing r;
};

namespace dsz {
namespace {


constexpr size_t kGateConfigV1 = sizeof(dsz_moe_gate_config);
constexpr size_t kRoutingInfoV1 = sizeof(dsz_moe_routing_info);

Registry<dsz_moe_group> &groups() {
    static Registry<dsz_moe_group> r;
    return r;
}

Registry<dsz_moe_routing> &routings() {
    static Registry<dsz_moe_routing> r;
    return r;
}

moe::ExpertGroup &live(dsz_moe_group *g) {
    if (!g) fail(DSZ_ERR_INVALID_ARGUMENT, "MoE group handle is NULL");
    if (!groups().contains(g))
        fail(DSZ_ERR_INVALID_ARGUMENT, "MoE group handle %p is not live (freed already?)", static_cast<void *>(g));
    return *g->impl;
}

const moe::Routing &live(dsz_moe_routing *r) {
    if (!r) fail(DSZ_ERR_INVALID_ARGUMENT, "MoE routing handle is NULL");
    if (!routings().contains(r))
        fail(DSZ_ERR_INVALID_ARGUMENT, "MoE routing handle %p is not live (freed already?)", static_cast<void *>(r));
    return r->r;
}

moe::GateConfig gate_config(const dsz_moe_gate_config *c) {
    need(c, "cfg");
    const dsz_moe_gate_config d = read_sized(c, kGateConfigV1, "dsz_moe_gate_config");
    moe::GateConfig g;
    g.k = d.k;
    g.capacity_factor = d.capacity_factor;
    g.eval_capacity_factor = d.eval_capacity_factor;
    g.min_capacity = d.min_capacity;
    g.training = d.training != 0;
    g.drop_tokens = d.drop_tokens != 0;
    g.use_rts = d.use_rts != 0;
    switch (d.noisy_gate_policy) {
    case DSZ_MOE_NOISE_NONE: g.noise = moe::NoisePolicy::none; break;
    case DSZ_MOE_NOISE_JITTER: g.noise = moe::NoisePolicy::jitter; break;
    case DSZ_MOE_NOISE_RSAMPLE: g.noise = moe::NoisePolicy::rsample; break;
    default: fail(DSZ_ERR_INVALID_ARGUMENT, "noisy_gate_policy %d is not a DSZ_MOE_NOISE_* value", d.noisy_gate_policy);
    }
    g.top2_2nd_expert_sampling = d.top2_2nd_expert_sampling != 0;
    switch (d.drop_policy) {
    case DSZ_MOE_DROP_PROBS: g.drop_policy = moe::DropPolicy::probs; break;
    case DSZ_MOE_DROP_POSITION: g.drop_policy = moe::DropPolicy::position; break;
    default: fail(DSZ_ERR_INVALID_ARGUMENT, "drop_policy %d is not a DSZ_MOE_DROP_* value", d.drop_policy);
    }
    g.tensor_parallel_size = d.tensor_parallel_size;
    g.seed = d.seed;
    return g;
}

/* A host tensor for the MoE calls, with a clearer word for CUDA tensors. */
HostTensor moe_tensor(const DLTensor *t, const char *what) {
    if (t && t->device.device_type == kDLCUDA)
        fail(DSZ_ERR_UNSUPPORTED, "%s: CUDA tensors need the GPU backend's MoE kernels, which this build lacks", what);
    return check_host_tensor(t, what);
}

/* tokens-like tensor: numel S * M with last dimension M; returns M. */
int64_t token_hidden(const moe::Routing &r, const HostTensor &t, const char *what) {
    if (t.shape.empty()) fail(DSZ_ERR_SHAPE, "%s: a scalar is not a [tokens, hidden] tensor", what);
    const int64_t M = t.shape.back();
    if (static_cast<int64_t>(t.numel) != r.tokens * M)
        fail(DSZ_ERR_SHAPE, "%s: shape %s does not hold %lld tokens of hidden size %lld", what,
             shape_string(t.shape).c_str(), static_cast<long long>(r.tokens), static_cast<long long>(M));
    return M;
}

void check_buffer(const moe::Routing &r, const HostTensor &t, int64_t M, const char *what) {
    const std::vector<int64_t> want{r.experts, r.capacity, M};
    if (t.shape != want)
        fail(DSZ_ERR_SHAPE, "%s: shape %s, expected [experts, capacity, hidden] = %s", what,
             shape_string(t.shape).c_str(), shape_string(want).c_str());
}

void same_dtype(const HostTensor &a, const HostTensor &b, const char *an, const char *bn) {
    if (a.dtype != b.dtype)
        fail(DSZ_ERR_DTYPE, "%s is %s but %s is %s", an, dtype_name(a.dtype), bn, dtype_name(b.dtype));
}

}  // namespace
}  // namespace dsz

using namespace dsz;

extern "C" {

DSZ_API dsz_status dsz_moe_gate_config_init(dsz_moe_gate_config *cfg, size_t size) {
    return guarded("dsz_moe_gate_config_init", [&] {
        need(cfg, "cfg");
        check_struct_size(size, kGateConfigV1, "dsz_moe_gate_config");
        dsz_moe_gate_config d{};
        d.k = 1;
        d.capacity_factor = 1.0;
        d.eval_capacity_factor = 1.0;
        d.min_capacity = 4;
        d.training = 1;
        d.drop_tokens = 1;
        d.use_rts = 1;
        d.noisy_gate_policy = DSZ_MOE_NOISE_NONE;
        d.top2_2nd_expert_sampling = 1;
        d.drop_policy = DSZ_MOE_DROP_PROBS;
        d.tensor_parallel_size = 1;
        d.seed = 0;
        write_sized(cfg, size, d);
    });
}

DSZ_API dsz_status dsz_moe_group_new(dsz_moe_group **out, dsz_engine *engine, int32_t ep_size, void *mpi_comm) {
    return guarded("dsz_moe_group_new", [&] {
        need(out, "out");
        *out = nullptr;
        if (ep_size < 1) fail(DSZ_ERR_INVALID_ARGUMENT, "ep_size = %d must be >= 1", ep_size);
        std::shared_ptr<comm::Communicator> world;
        if (engine) {
            if (mpi_comm) fail(DSZ_ERR_INVALID_ARGUMENT, "pass an engine or an MPI communicator, not both");
            /* Non-owning: the engine outlives the group (the header says so). */
            world.reset(&live(engine).communicator(), [](comm::Communicator *) {});
        } else {
            comm::CommOptions o;
            o.mpi_comm = mpi_comm;
            o.name = "moe_world";
            world = comm::create_communicator(o);
        }
        std::unique_ptr<dsz_moe_group> g(new dsz_moe_group);
        g->impl.reset(new moe::ExpertGroup(std::move(world), ep_size));
        groups().add(g.get());
        *out = g.release();
    });
}

DSZ_API dsz_status dsz_moe_group_free(dsz_moe_group *group) {
    return guarded("dsz_moe_group_free", [&] {
        if (!group) return;
        if (!groups().remove(group))
            fail(DSZ_ERR_INVALID_ARGUMENT, "MoE group handle %p is not live (freed already?)", static_cast<void *>(group));
        delete group;
    });
}

DSZ_API dsz_status dsz_moe_group_info(dsz_moe_group *group, int32_t *ep_size, int32_t *ep_rank, int32_t *edp_size,
                                      int32_t *edp_rank) {
    return guarded("dsz_moe_group_info", [&] {
        const moe::ExpertGroup &g = live(group);
        if (ep_size) *ep_size = g.ep_size();
        if (ep_rank) *ep_rank = g.ep_rank();
        if (edp_size) *edp_size = g.expert_data().size();
        if (edp_rank) *edp_rank = g.expert_data().rank();
    });
}

DSZ_API dsz_status dsz_moe_jitter(float *x, size_t n, double epsilon, uint64_t seed, float *multipliers) {
    return guarded("dsz_moe_jitter", [&] { moe::jitter(x, n, epsilon, seed, multipliers); });
}

DSZ_API dsz_status dsz_moe_gate(dsz_moe_routing **out, const dsz_moe_gate_config *cfg, const float *logits,
                                int64_t tokens, int64_t experts, const uint8_t *used_token, dsz_moe_group *group) {
    return guarded("dsz_moe_gate", [&] {
        need(out, "out");
        *out = nullptr;
        const moe::GateConfig c = gate_config(cfg);
        need(logits, "logits");
        moe::GroupMax group_max;
        if (group) {
            const moe::ExpertGroup &g = live(group);
            if (experts % g.ep_size())
                fail(DSZ_ERR_INVALID_ARGUMENT, "%lld experts do not split over ep_size %d",
                     static_cast<long long>(experts), g.ep_size());
            group_max = [&g](int64_t v) { return g.max(v); };
        }
        std::unique_ptr<dsz_moe_routing> r(new dsz_moe_routing);
        r->r = moe::gate(c, logits, tokens, experts, used_token, group_max);
        routings().add(r.get());
        *out = r.release();
    });
}

DSZ_API dsz_status dsz_moe_routing_free(dsz_moe_routing *routing) {
    return guarded("dsz_moe_routing_free", [&] {
        if (!routing) return;
        if (!routings().remove(routing))
            fail(DSZ_ERR_INVALID_ARGUMENT, "MoE routing handle %p is not live (freed already?)",
                 static_cast<void *>(routing));
        delete routing;
    });
}

DSZ_API dsz_status dsz_moe_routing_info_init(dsz_moe_routing_info *info, size_t size) {
    return guarded("dsz_moe_routing_info_init", [&] {
        need(info, "info");
        check_struct_size(size, kRoutingInfoV1, "dsz_moe_routing_info");
        write_sized(info, size, dsz_moe_routing_info{});
    });
}

DSZ_API dsz_status dsz_moe_routing_get_info(dsz_moe_routing *routing, dsz_moe_routing_info *info) {
    return guarded("dsz_moe_routing_get_info", [&] {
        const moe::Routing &r = live(routing);
        need(info, "info");
        check_struct_size(info->size, kRoutingInfoV1, "dsz_moe_routing_info");
        dsz_moe_routing_info d{};
        d.k = static_cast<int32_t>(r.k);
        d.tokens = r.tokens;
        d.experts = r.experts;
        d.capacity = r.capacity;
        d.dropped = r.dropped;
        d.l_aux = r.l_aux;
        write_sized(info, info->size, d);
    });
}

DSZ_API dsz_status dsz_moe_routing_get(dsz_moe_routing *routing, int32_t *expert, int32_t *slot, float *weight,
                                       int64_t *exp_counts, float *probs) {
    return guarded("dsz_moe_routing_get", [&] {
        const moe::Routing &r = live(routing);
        if (expert) std::copy(r.expert.begin(), r.expert.end(), expert);
        if (slot) std::copy(r.slot.begin(), r.slot.end(), slot);
        if (weight) std::copy(r.weight.begin(), r.weight.end(), weight);
        if (exp_counts) std::copy(r.exp_counts.begin(), r.exp_counts.end(), exp_counts);
        if (probs) std::copy(r.probs.begin(), r.probs.end(), probs);
    });
}

DSZ_API dsz_status dsz_moe_gate_backward(dsz_moe_routing *routing, const float *d_weight, double d_l_aux,
                                         float *d_probs, float *d_logits) {
    return guarded("dsz_moe_gate_backward", [&] {
        const moe::Routing &r = live(routing);
        if (!std::isfinite(d_l_aux)) fail(DSZ_ERR_INVALID_ARGUMENT, "d_l_aux = %g is not finite", d_l_aux);
        moe::gate_backward(r, d_weight, d_l_aux, d_probs, d_logits);
    });
}

DSZ_API dsz_status dsz_moe_dispatch(dsz_moe_routing *routing, const DLTensor *tokens, DLTensor *dispatched) {
    return guarded("dsz_moe_dispatch", [&] {
        const moe::Routing &r = live(routing);
        const HostTensor x = moe_tensor(tokens, "tokens");
        const HostTensor b = moe_tensor(dispatched, "dispatched");
        const int64_t M = token_hidden(r, x, "tokens");
        check_buffer(r, b, M, "dispatched");
        same_dtype(x, b, "tokens", "dispatched");
        moe::dispatch(r, x.data, b.data, x.dtype, M);
    });
}

DSZ_API dsz_status dsz_moe_dispatch_backward(dsz_moe_routing *routing, const DLTensor *d_dispatched,
                                             DLTensor *d_tokens) {
    return guarded("dsz_moe_dispatch_backward", [&] {
        const moe::Routing &r = live(routing);
        const HostTensor b = moe_tensor(d_dispatched, "d_dispatched");
        const HostTensor x = moe_tensor(d_tokens, "d_tokens");
        const int64_t M = token_hidden(r, x, "d_tokens");
        check_buffer(r, b, M, "d_dispatched");
        same_dtype(x, b, "d_tokens", "d_dispatched");
        moe::dispatch_backward(r, b.data, x.data, x.dtype, M);
    });
}

DSZ_API dsz_status dsz_moe_combine(dsz_moe_routing *routing, const DLTensor *expert_out, DLTensor *out) {
    return guarded("dsz_moe_combine", [&] {
        const moe::Routing &r = live(routing);
        const HostTensor e = moe_tensor(expert_out, "expert_out");
        const HostTensor y = moe_tensor(out, "out");
        const int64_t M = token_hidden(r, y, "out");
        check_buffer(r, e, M, "expert_out");
        same_dtype(e, y, "expert_out", "out");
        moe::combine(r, e.data, y.data, y.dtype, M);
    });
}

DSZ_API dsz_status dsz_moe_combine_backward(dsz_moe_routing *routing, const DLTensor *expert_out,
                                            const DLTensor *d_out, DLTensor *d_expert_out, float *d_weight) {
    return guarded("dsz_moe_combine_backward", [&] {
        const moe::Routing &r = live(routing);
        const HostTensor dy = moe_tensor(d_out, "d_out");
        const int64_t M = token_hidden(r, dy, "d_out");
        HostTensor e, de;
        if (d_weight) {
            e = moe_tensor(expert_out, "expert_out");
            check_buffer(r, e, M, "expert_out");
            same_dtype(e, dy, "expert_out", "d_out");
        }
        if (d_expert_out) {
            de = moe_tensor(d_expert_out, "d_expert_out");
            check_buffer(r, de, M, "d_expert_out");
            same_dtype(de, dy, "d_expert_out", "d_out");
        }
        moe::combine_backward(r, e.data, dy.data, d_expert_out ? de.data : nullptr, d_weight, dy.dtype, M);
    });
}

DSZ_API dsz_status dsz_moe_all_to_all(dsz_moe_group *group, const DLTensor *in, DLTensor *out) {
    return guarded("dsz_moe_all_to_all", [&] {
        const moe::ExpertGroup &g = live(group);
        const HostTensor a = moe_tensor(in, "in");
        const HostTensor b = moe_tensor(out, "out");
        if (a.shape != b.shape)
            fail(DSZ_ERR_SHAPE, "in has shape %s but out has shape %s", shape_string(a.shape).c_str(),
                 shape_string(b.shape).c_str());
        same_dtype(a, b, "in", "out");
        if (a.shape.empty() || a.shape[0] % g.ep_size())
            fail(DSZ_ERR_SHAPE, "in: shape %s, expected [experts, capacity, hidden] with experts a multiple of "
                                "ep_size %d", shape_string(a.shape).c_str(), g.ep_size());
        g.all_to_all(a.data, b.data, a.numel * dtype_size(a.dtype));
    });
}

}  // extern "C"
