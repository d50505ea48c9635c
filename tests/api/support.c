/* support.c -- see support.h. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

DLDataType dt_f32(void) { DLDataType d = {kDLFloat, 32, 1}; return d; }
DLDataType dt_f16(void) { DLDataType d = {kDLFloat, 16, 1}; return d; }
DLDataType dt_bf16(void) { DLDataType d = {kDLBfloat, 16, 1}; return d; }

void tt_make(test_tensor *tt, DLDataType dtype, int ndim, const int64_t *shape) {
    memset(tt, 0, sizeof *tt);
    size_t n = 1;
    for (int i = 0; i < ndim; ++i) {
        tt->shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    tt->data = calloc(n ? n : 1, dtype.bits / 8);
    tt->t.data = tt->data;
    tt->t.device.device_type = kDLCPU;
    tt->t.device.device_id = 0;
    tt->t.ndim = ndim;
    tt->t.dtype = dtype;
    tt->t.shape = tt->shape;
    tt->t.strides = NULL;
    tt->t.byte_offset = 0;
}

void tt_free(test_tensor *tt) {
    free(tt->data);
    tt->data = NULL;
}

size_t tt_numel(const test_tensor *tt) {
    size_t n = 1;
    for (int i = 0; i < tt->t.ndim; ++i) n *= (size_t)tt->shape[i];
    return n;
}

void assert_status_impl(dsz_status got, dsz_status expected, const char *needle,
                        const char *expr, const char *file, int line) {
    const char *msg = dsz_last_error();
    if (got != expected) {
        print_error("%s:%d: %s returned %d (%s), expected %d (%s); last error: %s\n", file, line,
                    expr, got, dsz_status_string(got), expected, dsz_status_string(expected), msg);
        fail();
    }
    if (needle && !strstr(msg, needle)) {
        print_error("%s:%d: %s: message \"%s\" does not contain \"%s\"\n", file, line, expr, msg,
                    needle);
        fail();
    }
}

void quiet_log(int32_t level, const char *message, void *user) {
    (void)level; (void)message; (void)user;
}
