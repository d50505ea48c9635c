/*
 * host_tensor.h -- checking the DLTensors a host hands over.
 *
 * Every tensor that crosses the ABI is validated here once: device (host
 * memory only, for now), dtype, compact row-major layout, non-negative
 * shape, a data pointer. Errors name the tensor ("parameter 'fc1.weight'")
 * so the host knows which one was wrong.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>

#include "tensor/dtype.h"

namespace dsz {

struct HostTensor {
    void *data = nullptr;            /* data + byte_offset */
    DType dtype = DType::f32;
    std::vector<int64_t> shape;
    size_t numel = 0;
};

/* Validates `t` and describes it; `what` names it in errors. */
HostTensor check_host_tensor(const DLTensor *t, const std::string &what);

std::string shape_string(const std::vector<int64_t> &shape);

}  // namespace dsz
