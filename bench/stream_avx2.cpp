/* stream_avx2.cpp -- the streaming kernels (stream_body.h) built for avx2. */
#include "stream.h"

namespace {
#include "stream_body.h"
}  // namespace

extern const StreamKernels stream_avx2 = {same_fp32, same_mixed, triad,
                                        same_fp32_blocked, same_mixed_blocked};
