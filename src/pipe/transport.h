/*
 * transport.h -- activations and gradients between adjacent stages.
 *
 * Every transfer is a fixed-size header (status, micro-batch, dtype, shape)
 * followed, when the header says "ok", by the payload, as point-to-point
 * messages on the pipeline communicator (rank = stage). The header is
 * DeepSpeed's metadata exchange (reference §8.3) sent with every transfer
 * rather than only the first: it is 512 bytes, it lets the receiver size
 * its buffer, and its status word is how a stage that failed tells its
 * neighbours to stop computing while still following the schedule, so that
 * no rank waits for a message that never comes. Sends are non-blocking and
 * read the host's memory in place; receives block and land in buffers the
 * executor owns.
 */
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "tensor/dtype.h"

namespace dsz {
namespace pipe {

/* What crosses a stage boundary: dtype and shape. */
struct TensorMeta {
    DType dtype = DType::f32;
    std::vector<int64_t> shape;
    size_t numel() const;
    size_t bytes() const { return numel() * dtype_size(dtype); }
    std::string describe() const;   /* "[4, 16] float32" */
    bool operator==(const TensorMeta &o) const { return dtype == o.dtype && shape == o.shape; }
    bool operator!=(const TensorMeta &o) const { return !(*this == o); }
};

/* Activations flow to the next stage, gradients to the previous one. */
enum class Flow { activation, grad };

class Transport {
public:
    static constexpr int kMaxDims = 32;

    Transport(comm::Communicator &pipeline, int stage);

    /* Posts a transfer for `micro_batch`: with `ok`, the header describes
     * `meta` and `data` (meta.bytes() bytes, valid until wait_sends) follows;
     * without, only a header saying this stage failed. */
    void post_send(Flow flow, int micro_batch, bool ok, const TensorMeta &meta, const void *data);
    /* Receives a transfer for `micro_batch`: returns false when the sender
     * reported a failure (no payload), else fills `meta` and `buf`. Throws
     * DSZ_ERR_INTERNAL when the sender's micro-batch is not the expected one. */
    bool recv(Flow flow, int micro_batch, TensorMeta *meta, std::vector<char> *buf);
    void wait_sends();

    double wait_ms() const { return wait_ms_; }   /* blocked in recv / wait_sends, cumulative */

private:
    struct Header {
        int64_t status;          /* 0 ok, 1 the sender failed */
        int64_t micro_batch;
        int64_t dtype;           /* DType */
        int64_t ndim;
        int64_t shape[kMaxDims];
        int64_t reserved[64 - 4 - kMaxDims];
    };
    static_assert(sizeof(Header) == 512, "the header is 512 bytes");

    comm::Communicator &comm_;
    int stage_;
    std::deque<Header> out_headers_;     /* alive until their sends complete */
    std::vector<comm::Request> sends_;
    double wait_ms_ = 0;
};

}  // namespace pipe
}  // namespace dsz
