/*
 * errors.cpp -- dsz_status_string, dsz_last_error, version and features.
 *
 * The last error lives in a thread-local buffer so that threads never see
 * each other's messages (NCCL's process-global buffer is the counter-example).
 */
#include <string>

#include "api/guard.h"

namespace dsz {

static thread_local std::string last_error;

void set_last_error(const std::string &message) { last_error = message; }

}  // namespace dsz

extern "C" {

DSZ_API const char *dsz_status_string(dsz_status status) {
    switch (status) {
    case DSZ_OK: return "success";
    case DSZ_ERR_INVALID_ARGUMENT: return "invalid argument";
    case DSZ_ERR_CONFIG: return "invalid configuration";
    case DSZ_ERR_DTYPE: return "dtype mismatch";
    case DSZ_ERR_SHAPE: return "shape or layout mismatch";
    case DSZ_ERR_STATE: return "call not valid in this state";
    case DSZ_ERR_IO: return "I/O error";
    case DSZ_ERR_CHECKPOINT: return "corrupt or incompatible checkpoint";
    case DSZ_ERR_OUT_OF_MEMORY: return "out of memory";
    case DSZ_ERR_NOT_FOUND: return "not found";
    case DSZ_ERR_UNSUPPORTED: return "not supported";
    case DSZ_ERR_COMM: return "communication error";
    case DSZ_ERR_TIMEOUT: return "timed out";
    case DSZ_ERR_LOSS_SCALE: return "loss scale at its minimum";
    case DSZ_ERR_INTERNAL: return "internal error";
    case DSZ_ERR_CUDA: return "CUDA error";
    case DSZ_ERR_CALLBACK: return "a host callback failed";
    default: return "unknown status";
    }
}

DSZ_API const char *dsz_last_error(void) { return dsz::last_error.c_str(); }

DSZ_API void dsz_string_free(char *s) { delete[] s; }

#define DSZ_STR2(x) #x
#define DSZ_STR(x) DSZ_STR2(x)

DSZ_API const char *dsz_version(void) {
    return DSZ_STR(DSZ_VERSION_MAJOR) "." DSZ_STR(DSZ_VERSION_MINOR) "." DSZ_STR(DSZ_VERSION_PATCH);
}

DSZ_API int32_t dsz_version_number(void) { return DSZ_VERSION_NUMBER; }

DSZ_API uint32_t dsz_features(void) {
    uint32_t f = 0;
#if defined(__x86_64__)
    f |= DSZ_FEATURE_AVX2 | DSZ_FEATURE_AVX512; /* compiled in; chosen at run time by CPU support */
#endif
#ifdef DSZ_HAVE_MPI
    f |= DSZ_FEATURE_MPI;
#endif
#ifdef DSZ_HAVE_AIO
    f |= DSZ_FEATURE_AIO;
#endif
#ifdef DSZ_HAVE_CUDA
    f |= DSZ_FEATURE_CUDA;
#endif
#ifdef DSZ_HAVE_NCCL
    f |= DSZ_FEATURE_NCCL;
#endif
    return f;
}

}  // extern "C"
