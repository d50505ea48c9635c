/*
 * support.h -- small helpers shared by the API tests: DLTensor construction,
 * config strings, and assertions on dszero statuses.
 */
#ifndef DSZ_TEST_SUPPORT_H
#define DSZ_TEST_SUPPORT_H

#include <dszero.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* A host tensor owning its data. */
typedef struct test_tensor {
    DLTensor t;
    int64_t shape[4];
    void *data;
} test_tensor;

void tt_make(test_tensor *tt, DLDataType dtype, int ndim, const int64_t *shape);
void tt_free(test_tensor *tt);
size_t tt_numel(const test_tensor *tt);
DLDataType dt_f32(void);
DLDataType dt_f16(void);
DLDataType dt_bf16(void);

/* Asserts that `call` returned `expected` and, when `needle` is not NULL,
 * that dsz_last_error() contains it. */
#define assert_status(call, expected, needle) \
    assert_status_impl((call), (expected), (needle), #call, __FILE__, __LINE__)
void assert_status_impl(dsz_status got, dsz_status expected, const char *needle,
                        const char *expr, const char *file, int line);

#define assert_ok(call) assert_status((call), DSZ_OK, NULL)

/* Silences the library's log (tests that expect warnings). */
void quiet_log(int32_t level, const char *message, void *user);

#endif
