/*
 * consolidate_api.cpp -- the C shim of dsz_consolidate (include/dszero.h).
 *
 * Consolidation needs no engine, so it lives apart from api.cpp's engine
 * shims: check the arguments, map the DLPack dtype, and let guarded() turn
 * failures into statuses.
 */
#include "api/guard.h"
#include "checkpoint/consolidate.h"

extern "C" DSZ_API dsz_status dsz_consolidate(const char *dir, const char *tag, const char *out_path,
                                              DLDataType dtype) {
    return dsz::guarded("dsz_consolidate", [&] {
        if (!dir) dsz::fail(DSZ_ERR_INVALID_ARGUMENT, "dir is NULL");
        if (!out_path) dsz::fail(DSZ_ERR_INVALID_ARGUMENT, "out_path is NULL");
        dsz::DType dt;
        if (!dsz::dtype_from_dlpack(dtype, &dt))
            dsz::fail(DSZ_ERR_DTYPE, "dtype (code %u, bits %u, lanes %u) is not float32, float16 or bfloat16",
                      dtype.code, dtype.bits, dtype.lanes);
        dsz::consolidate_checkpoint(dir, tag ? tag : "", out_path, dt);
    });
}
