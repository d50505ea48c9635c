/* host_tensor.cpp -- DLTensor validation (see host_tensor.h). */
#include "tensor/host_tensor.h"

#include "common/error.h"

namespace dsz {

std::string shape_string(const std::vector<int64_t> &shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

static std::string dlpack_dtype_string(DLDataType d) {
    return strprintf("(code %u, bits %u, lanes %u)", d.code, d.bits, d.lanes);
}

HostTensor check_host_tensor(const DLTensor *t, const std::string &what) {
    if (!t) fail(DSZ_ERR_INVALID_ARGUMENT, "%s: the DLTensor pointer is NULL", what.c_str());
    if (t->device.device_type != kDLCPU && t->device.device_type != kDLCUDAHost)
        fail(DSZ_ERR_UNSUPPORTED, "%s: device type %d is not host memory (this build handles kDLCPU and kDLCUDAHost)",
             what.c_str(), static_cast<int>(t->device.device_type));
    HostTensor h;
    if (!dtype_from_dlpack(t->dtype, &h.dtype))
        fail(DSZ_ERR_DTYPE, "%s: dtype %s is not float32, float16 or bfloat16", what.c_str(),
             dlpack_dtype_string(t->dtype).c_str());
    if (t->ndim < 0) fail(DSZ_ERR_SHAPE, "%s: ndim is %d", what.c_str(), t->ndim);
    if (t->ndim > 0 && !t->shape) fail(DSZ_ERR_SHAPE, "%s: shape is NULL with ndim %d", what.c_str(), t->ndim);
    h.numel = 1;
    for (int i = 0; i < t->ndim; ++i) {
        if (t->shape[i] < 0) fail(DSZ_ERR_SHAPE, "%s: dimension %d is negative (%lld)", what.c_str(), i,
                                  static_cast<long long>(t->shape[i]));
        h.shape.push_back(t->shape[i]);
        h.numel *= static_cast<size_t>(t->shape[i]);
    }
    if (t->strides) {
        int64_t expect = 1;
        for (int i = t->ndim - 1; i >= 0; --i) {
            if (t->shape[i] != 1 && t->strides[i] != expect)
                fail(DSZ_ERR_SHAPE, "%s: strides are not compact row-major (dimension %d has stride %lld, expected %lld)",
                     what.c_str(), i, static_cast<long long>(t->strides[i]), static_cast<long long>(expect));
            expect *= t->shape[i];
        }
    }
    if (!t->data && h.numel > 0) fail(DSZ_ERR_INVALID_ARGUMENT, "%s: data is NULL", what.c_str());
    h.data = t->data ? static_cast<char *>(t->data) + t->byte_offset : nullptr;
    return h;
}

}  // namespace dsz
