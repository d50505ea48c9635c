/* expert_group.cpp -- see expert_group.h. */
#include "moe/expert_group.h"

#include <cstring>

#include "common/error.h"

namespace dsz {
namespace moe {

ExpertGroup::ExpertGroup(std::shared_ptr<comm::Communicator> world, int ep_size)
    : topo_(std::move(world), comm::TopologySpec{1, ep_size}) {}

int64_t ExpertGroup::max(int64_t v) const {
    if (ep_size() == 1) return v;
    return expert().all_reduce_value(v, comm::ReduceOp::max);
}

void ExpertGroup::all_to_all(const void *in, void *out, size_t bytes) const {
    const size_t P = static_cast<size_t>(ep_size());
    if (bytes % P)
        fail(DSZ_ERR_SHAPE, "all-to-all of %zu bytes does not split into %zu equal chunks", bytes, P);
    const char *a = static_cast<const char *>(in);
    char *b = static_cast<char *>(out);
    if (bytes && a < b + bytes && b < a + bytes)
        fail(DSZ_ERR_INVALID_ARGUMENT, "the all-to-all input and output overlap");
    if (P == 1) {
        std::memcpy(out, in, bytes);
        return;
    }
    expert().all_to_all(in, out, bytes / P);
}

}  // namespace moe
}  // namespace dsz
