/* transport.cpp -- stage-to-stage messages (see transport.h). */
#include "pipe/transport.h"

#include <chrono>
#include <cstring>

#include "common/error.h"
#include "tensor/host_tensor.h"

namespace dsz {
namespace pipe {

namespace {

/* Tags on the pipeline communicator: one pair (header, payload) per flow,
 * so that each flow's messages arrive in the order sent. */
int header_tag(Flow f) { return f == Flow::activation ? 10 : 20; }
int payload_tag(Flow f) { return f == Flow::activation ? 11 : 21; }

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

size_t TensorMeta::numel() const {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    return n;
}

std::string TensorMeta::describe() const { return shape_string(shape) + " " + dtype_name(dtype); }

Transport::Transport(comm::Communicator &pipeline, int stage) : comm_(pipeline), stage_(stage) {}

void Transport::post_send(Flow flow, int micro_batch, bool ok, const TensorMeta &meta, const void *data) {
    const int peer = flow == Flow::activation ? stage_ + 1 : stage_ - 1;
    Header h;
    std::memset(&h, 0, sizeof h);
    h.status = ok ? 0 : 1;
    h.micro_batch = micro_batch;
    if (ok) {
        if (meta.shape.size() > static_cast<size_t>(kMaxDims))
            fail(DSZ_ERR_SHAPE, "a tensor of %zu dimensions cannot cross stages (at most %d)", meta.shape.size(),
                 kMaxDims);
        h.dtype = static_cast<int64_t>(meta.dtype);
        h.ndim = static_cast<int64_t>(meta.shape.size());
        for (size_t i = 0; i < meta.shape.size(); ++i) h.shape[i] = meta.shape[i];
    }
    out_headers_.push_back(h);
    sends_.push_back(comm_.isend(&out_headers_.back(), sizeof(Header), peer, header_tag(flow)));
    if (ok && meta.bytes()) sends_.push_back(comm_.isend(data, meta.bytes(), peer, payload_tag(flow)));
}

bool Transport::recv(Flow flow, int micro_batch, TensorMeta *meta, std::vector<char> *buf) {
    const int peer = flow == Flow::activation ? stage_ - 1 : stage_ + 1;
    const auto t0 = std::chrono::steady_clock::now();
    Header h;
    comm_.recv(&h, sizeof h, peer, header_tag(flow));
    if (h.micro_batch != micro_batch)
        fail(DSZ_ERR_INTERNAL, "stage %d expected the %s of micro-batch %d from stage %d and got micro-batch %lld",
             stage_, flow == Flow::activation ? "activation" : "gradient", micro_batch, peer,
             static_cast<long long>(h.micro_batch));
    if (h.status != 0) {
        wait_ms_ += ms_since(t0);
        return false;
    }
    if (h.ndim < 0 || h.ndim > kMaxDims || h.dtype < 0 || h.dtype > static_cast<int64_t>(DType::bf16))
        fail(DSZ_ERR_INTERNAL, "stage %d got a malformed header from stage %d", stage_, peer);
    meta->dtype = static_cast<DType>(h.dtype);
    meta->shape.assign(h.shape, h.shape + h.ndim);
    if (buf->size() < meta->bytes()) buf->resize(meta->bytes());
    if (meta->bytes()) comm_.recv(buf->data(), meta->bytes(), peer, payload_tag(flow));
    wait_ms_ += ms_since(t0);
    return true;
}

void Transport::wait_sends() {
    const auto t0 = std::chrono::steady_clock::now();
    comm::Request::wait_all(sends_);
    sends_.clear();
    out_headers_.clear();
    wait_ms_ += ms_since(t0);
}

}  // namespace pipe
}  // namespace dsz
