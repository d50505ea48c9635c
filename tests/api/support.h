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

/* An engine from JSON text with a silent log; fails the test on error. */
dsz_engine *engine_from_json(const char *json);

/* A two-parameter model ("w" [3, 5], "b" [7]) in `dtype`, registered with
 * `e`; values from a fixed pseudo-random sequence. */
typedef struct toy_model {
    test_tensor w, b;
} toy_model;

void toy_make(toy_model *m, DLDataType dtype);
void toy_register(dsz_engine *e, toy_model *m);
void toy_free(toy_model *m);
/* Hands over gradients for micro-batch `k` (deterministic), scaled by the
 * engine's loss multiplier, then calls dsz_backward and dsz_step. */
void toy_micro_step(dsz_engine *e, toy_model *m, int k, dsz_step_info *info);
/* Element i of a tensor as float, whatever its dtype. */
float tt_get(const test_tensor *tt, size_t i);
void tt_set(test_tensor *tt, size_t i, float v);

/* Shared by the tests that need files: whether this build has libaio; a
 * shell command with `arg` substituted for every %s (at most two); whether a
 * path exists. And a deterministic value in [-1, 1) per seed. */
int have_aio(void);
void run_sh(const char *fmt, const char *arg);
int path_exists(const char *path);
float test_value(uint32_t seed);

/* A model of n <= 8 one-dimensional tensors "t0".."t<n-1>" of the given
 * sizes (the NVMe tests'), its deterministic gradients, and what stage 3
 * gathers of it. */
#define VEC_MODEL_MAX 8
typedef struct vec_model {
    test_tensor t[VEC_MODEL_MAX];
} vec_model;
void vec_model_make(vec_model *m, DLDataType dt, int n, const int64_t *sizes);
void vec_model_free(vec_model *m, int n);
dsz_status vec_model_register(dsz_engine *e, vec_model *m, int n);
/* Hands over micro-batch s's gradients (scaled by the loss multiplier) and
 * calls dsz_backward; vec_model_train adds dsz_step, for s in [from, to). */
void vec_model_micro_batch(dsz_engine *e, vec_model *m, int n, int s);
void vec_model_train(dsz_engine *e, vec_model *m, int n, int from, int to);
/* Every parameter's gathered bytes, concatenated (caller frees). */
unsigned char *gathered_bytes(dsz_engine *e, int n, size_t *bytes);
/* dsz_init with a silent log and 2 threads, asserting `expect` (and
 * `needle` in the message); the engine, or NULL on a failure. */
dsz_engine *engine_expecting(const char *json, dsz_status expect, const char *needle);
