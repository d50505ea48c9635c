/* support.c -- see support.h. */
#include "support.h"

#include "../common/half_bits.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
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

static float h2f(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 31u, m = h & 0x3ffu, u;
    float f;
    if (e == 0) {
        f = (float)m * 5.9604644775390625e-8f;
        memcpy(&u, &f, 4);
        u |= s;
    } else if (e == 31) {
        u = s | 0x7f800000u | (m << 13);
    } else {
        u = s | ((e + 112u) << 23) | (m << 13);
    }
    memcpy(&f, &u, 4);
    return f;
}

float tt_get(const test_tensor *tt, size_t i) {
    if (tt->t.dtype.bits == 32) return ((const float *)tt->data)[i];
    uint16_t h = ((const uint16_t *)tt->data)[i];
    if (tt->t.dtype.code == kDLBfloat) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return h2f(h);
}

void tt_set(test_tensor *tt, size_t i, float v) {
    if (tt->t.dtype.bits == 32) {
        ((float *)tt->data)[i] = v;
    } else {
        ((uint16_t *)tt->data)[i] = to16(v, tt->t.dtype.code == kDLBfloat);
    }
}

dsz_engine *engine_from_json(const char *json) {
    dsz_init_options o;
    assert_ok(dsz_init_options_init(&o, sizeof o));
    o.log_fn = quiet_log;
    o.cpu_threads = 2;
    dsz_engine *e = NULL;
    assert_ok(dsz_init(&e, json, &o));
    assert_non_null(e);
    return e;
}

float test_value(uint32_t seed) {
    seed ^= seed >> 16; seed *= 0x7feb352dU; seed ^= seed >> 15; seed *= 0x846ca68bU; seed ^= seed >> 16;
    return (float)(seed & 0xffff) / 32768.0f - 1.0f;
}

int have_aio(void) { return (dsz_features() & DSZ_FEATURE_AIO) != 0; }

void run_sh(const char *fmt, const char *arg) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, arg, arg);
    (void)system(cmd);
}

int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

void toy_make(toy_model *m, DLDataType dtype) {
    const int64_t ws[2] = {3, 5}, bs[1] = {7};
    tt_make(&m->w, dtype, 2, ws);
    tt_make(&m->b, dtype, 1, bs);
    for (size_t i = 0; i < 15; ++i) tt_set(&m->w, i, test_value((uint32_t)i + 1000));
    for (size_t i = 0; i < 7; ++i) tt_set(&m->b, i, test_value((uint32_t)i + 2000));
}

void toy_register(dsz_engine *e, toy_model *m) {
    dsz_param p[2] = {{"w", &m->w.t, 0, 0}, {"b", &m->b.t, 0, 0}};
    assert_ok(dsz_register_params(e, p, 2, NULL, 0));
}

void toy_free(toy_model *m) {
    tt_free(&m->w);
    tt_free(&m->b);
}

void toy_micro_step(dsz_engine *e, toy_model *m, int k, dsz_step_info *info) {
    double mult = 0;
    assert_ok(dsz_loss_scale(e, &mult));
    test_tensor gw, gb;
    tt_make(&gw, m->w.t.dtype, 2, m->w.shape);
    tt_make(&gb, m->b.t.dtype, 1, m->b.shape);
    for (size_t i = 0; i < 15; ++i) tt_set(&gw, i, (float)(test_value((uint32_t)(k * 97 + (int)i)) * mult));
    for (size_t i = 0; i < 7; ++i) tt_set(&gb, i, (float)(test_value((uint32_t)(k * 89 + 50 + (int)i)) * mult));
    assert_ok(dsz_grad_ready(e, 1, &gb.t));
    assert_ok(dsz_grad_ready(e, 0, &gw.t));
    assert_ok(dsz_backward(e));
    assert_ok(dsz_step(e, info));
    tt_free(&gw);
    tt_free(&gb);
}

void vec_model_make(vec_model *m, DLDataType dt, int n, const int64_t *sizes) {
    for (int k = 0; k < n; ++k) {
        tt_make(&m->t[k], dt, 1, &sizes[k]);
        for (int64_t i = 0; i < sizes[k]; ++i) tt_set(&m->t[k], (size_t)i, test_value((uint32_t)(k * 100003 + i)));
    }
}

void vec_model_free(vec_model *m, int n) {
    for (int k = 0; k < n; ++k) tt_free(&m->t[k]);
}

dsz_status vec_model_register(dsz_engine *e, vec_model *m, int n) {
    static const char *names[VEC_MODEL_MAX] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"};
    dsz_param p[VEC_MODEL_MAX];
    for (int k = 0; k < n; ++k) p[k] = (dsz_param){names[k], &m->t[k].t, 0, 0};
    return dsz_register_params(e, p, (size_t)n, NULL, 0);
}

void vec_model_micro_batch(dsz_engine *e, vec_model *m, int n, int s) {
    double mul = 1;
    assert_ok(dsz_loss_scale(e, &mul));
    for (int k = 0; k < n; ++k) {
        test_tensor g;
        tt_make(&g, m->t[k].t.dtype, 1, m->t[k].shape);
        for (size_t i = 0; i < tt_numel(&g); ++i)
            tt_set(&g, i, (float)(mul * test_value((uint32_t)(s * 7919 + k * 131 + (int)i * 3))));
        assert_ok(dsz_grad_ready(e, (size_t)k, &g.t));
        tt_free(&g);
    }
    assert_ok(dsz_backward(e));
}

void vec_model_train(dsz_engine *e, vec_model *m, int n, int from, int to) {
    for (int s = from; s < to; ++s) {
        vec_model_micro_batch(e, m, n, s);
        assert_ok(dsz_step(e, NULL));
    }
}

unsigned char *gathered_bytes(dsz_engine *e, int n, size_t *bytes) {
    size_t total = 0;
    unsigned char *out = NULL;
    for (int k = 0; k < n; ++k) {
        size_t idx = (size_t)k;
        DLTensor t;
        assert_ok(dsz_gather(e, &idx, 1, &t));
        const size_t b = (size_t)t.shape[0] * (t.dtype.bits / 8);
        out = realloc(out, total + b);
        memcpy(out + total, t.data, b);
        total += b;
        assert_ok(dsz_release(e, &idx, 1));
    }
    *bytes = total;
    return out;
}

dsz_engine *engine_expecting(const char *json, dsz_status expect, const char *needle) {
    dsz_init_options o;
    assert_ok(dsz_init_options_init(&o, sizeof o));
    o.log_fn = quiet_log;
    o.cpu_threads = 2;
    dsz_engine *e = NULL;
    assert_status(dsz_init(&e, json, &o), expect, needle);
    return e;
}
