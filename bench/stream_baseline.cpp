/* stream_baseline.cpp -- the streaming kernels (stream_body.h) built for baseline. */
#include "stream.h"

namespace {
#include "stream_body.h"
}  // namespace

extern const StreamKernels stream_baseline = {same_fp32, same_mixed, triad,
                                        same_fp32_blocked, same_mixed_blocked};
