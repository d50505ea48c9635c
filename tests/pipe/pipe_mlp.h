/*
 * pipe_mlp.h -- a small fp32 MLP split across pipeline stages, with its
 * forward and backward written in plain C, for the pipeline tests and the
 * pipeline benchmark.
 *
 * Layer l maps dims[l] -> dims[l+1] (y = x W^T + b), tanh after every
 * layer but the last; the loss is 0.5 * mean((y - target)^2). A stage owns
 * layers [lo, hi) and registers their weights and biases with its stage
 * engine in layer order ("layer<l>.weight", "layer<l>.bias"). Micro-batch m
 * of a batch reads sample block `first_sample + m` (inputs and targets are
 * a fixed function of the block), so a run with D replicas x M micro-batches
 * sees the same data as one stage with D * M micro-batches when replica d
 * sets first_sample = base + d * M. Per pipeline buffer it keeps each
 * layer's input and output, the loaded block, the stage output and the
 * input gradient. Hooks let a test make a callback fail or return a wrong
 * shape or dtype. Header-only (static functions); C99.
 */
#ifndef DSZ_PIPE_MLP_H
#define DSZ_PIPE_MLP_H

#include <dszero.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PM_MAX_LAYERS 16
#define PM_MAX_BUFFERS 16

typedef struct pm_model {
    int n_layers, batch, lo, hi, n_buffers;
    int dims[PM_MAX_LAYERS + 1];
    int64_t first_sample;          /* sample block of micro-batch 0 */
    float *w[PM_MAX_LAYERS], *b[PM_MAX_LAYERS];
    int64_t wshape[PM_MAX_LAYERS][2], bshape[PM_MAX_LAYERS][1];
    DLTensor tw[PM_MAX_LAYERS], tb[PM_MAX_LAYERS];
    dsz_engine *engine;            /* the stage engine (grads, loss multiplier) */
    /* per buffer: loaded inputs (first stage) and targets (last stage) */
    float *x[PM_MAX_BUFFERS], *target[PM_MAX_BUFFERS], *io[PM_MAX_BUFFERS][PM_MAX_LAYERS + 1];
    float *in_grad[PM_MAX_BUFFERS];
    int64_t out_shape[2], in_shape[2];
    /* test hooks: micro-batch (>= 0) at which to misbehave */
    int fail_forward_at, fail_backward_at, bad_grad_shape_at, bad_grad_dtype_at, bad_out_shape_at;
    int calls;                     /* callbacks run */
    double spin_forward_us, spin_backward_us; /* bench: extra time per callback */
} pm_model;

static inline float pm_value(unsigned seed) {
    seed ^= seed >> 16; seed *= 0x7feb352dU; seed ^= seed >> 15; seed *= 0x846ca68bU; seed ^= seed >> 16;
    return (float)(seed & 0xffff) / 32768.0f - 1.0f;
}

/* Inputs (which = 0) and targets (which = 1) of sample block g. */
static inline float pm_data(int64_t g, int which, int row, int col) {
    return pm_value((unsigned)(g * 7919 + which * 1000003 + row * 131 + col * 17 + 5));
}

static inline float *pm_alloc(size_t n) { return (float *)calloc(n ? n : 1, sizeof(float)); }

/* Builds layers [lo, hi) of the model with deterministic initial values. */
static inline void pm_make(pm_model *m, int n_layers, const int *dims, int batch, int lo, int hi, int n_buffers) {
    memset(m, 0, sizeof *m);
    m->n_layers = n_layers;
    m->batch = batch;
    m->lo = lo;
    m->hi = hi;
    m->n_buffers = n_buffers;
    m->fail_forward_at = m->fail_backward_at = m->bad_grad_shape_at = m->bad_grad_dtype_at = m->bad_out_shape_at = -1;
    for (int l = 0; l <= n_layers; ++l) m->dims[l] = dims[l];
    for (int l = lo; l < hi; ++l) {
        const int in = dims[l], out = dims[l + 1];
        m->w[l] = pm_alloc((size_t)in * out);
        m->b[l] = pm_alloc((size_t)out);
        const float s = 1.0f / sqrtf((float)in);
        for (int i = 0; i < in * out; ++i) m->w[l][i] = s * pm_value((unsigned)(l * 100003 + i));
        for (int i = 0; i < out; ++i) m->b[l][i] = 0.1f * pm_value((unsigned)(l * 100003 + 77777 + i));
        m->wshape[l][0] = out;
        m->wshape[l][1] = in;
        m->bshape[l][0] = out;
        DLTensor *t[2] = {&m->tw[l], &m->tb[l]};
        for (int k = 0; k < 2; ++k) {
            t[k]->data = k ? (void *)m->b[l] : (void *)m->w[l];
            t[k]->device.device_type = kDLCPU;
            t[k]->ndim = k ? 1 : 2;
            t[k]->dtype.code = kDLFloat;
            t[k]->dtype.bits = 32;
            t[k]->dtype.lanes = 1;
            t[k]->shape = k ? m->bshape[l] : m->wshape[l];
        }
    }
    for (int f = 0; f < n_buffers; ++f) {
        m->x[f] = pm_alloc((size_t)batch * dims[0]);
        m->target[f] = pm_alloc((size_t)batch * dims[n_layers]);
        for (int l = lo; l <= hi; ++l) m->io[f][l] = pm_alloc((size_t)batch * dims[l]);
        m->in_grad[f] = pm_alloc((size_t)batch * dims[lo] * 2);
    }
}

static inline void pm_free(pm_model *m) {
    for (int l = m->lo; l < m->hi; ++l) free(m->w[l]), free(m->b[l]);
    for (int f = 0; f < m->n_buffers; ++f) {
        free(m->x[f]);
        free(m->target[f]);
        free(m->in_grad[f]);
        for (int l = m->lo; l <= m->hi; ++l) free(m->io[f][l]);
    }
}

/* Registers this stage's parameters with `e` (which becomes m->engine). */
static inline dsz_status pm_register(pm_model *m, dsz_engine *e) {
    char names[2 * PM_MAX_LAYERS][32];
    dsz_param p[2 * PM_MAX_LAYERS];
    int n = 0;
    for (int l = m->lo; l < m->hi; ++l)
        for (int k = 0; k < 2; ++k) {
            snprintf(names[n], sizeof names[n], "layer%d.%s", l, k ? "bias" : "weight");
            p[n].name = names[n];
            p[n].tensor = k ? &m->tb[l] : &m->tw[l];
            p[n].group = 0;
            p[n].flags = 0;
            ++n;
        }
    m->engine = e;
    return dsz_register_params(e, p, (size_t)n, NULL, 0);
}

static inline void pm_spin(double us) {
    if (us <= 0) return;
    struct timespec ts;
    ts.tv_sec = (time_t)(us / 1e6);
    ts.tv_nsec = (long)((us - (double)ts.tv_sec * 1e6) * 1e3);
    nanosleep(&ts, NULL);
}

static inline int pm_load(void *user, int32_t buf, int64_t micro) {
    pm_model *m = (pm_model *)user;
    ++m->calls;
    const int64_t g = m->first_sample + micro;
    const int in = m->dims[0], out = m->dims[m->n_layers];
    for (int r = 0; r < m->batch; ++r) {
        if (m->lo == 0)
            for (int c = 0; c < in; ++c) m->x[buf][r * in + c] = pm_data(g, 0, r, c);
        if (m->hi == m->n_layers)
            for (int c = 0; c < out; ++c) m->target[buf][r * out + c] = pm_data(g, 1, r, c);
    }
    return 0;
}

/* y = tanh?(x W^T + b) for layer l over the batch, double accumulation. */
static inline void pm_layer(const pm_model *m, int l, const float *x, float *y) {
    const int in = m->dims[l], out = m->dims[l + 1];
    for (int r = 0; r < m->batch; ++r)
        for (int o = 0; o < out; ++o) {
            double acc = m->b[l][o];
            for (int i = 0; i < in; ++i) acc += (double)x[r * in + i] * (double)m->w[l][o * in + i];
            y[r * out + o] = l == m->n_layers - 1 ? (float)acc : (float)tanh(acc);
        }
}

static inline int pm_forward(void *user, int32_t buf, int64_t micro, const DLTensor *input, DLTensor *output, double *loss) {
    pm_model *m = (pm_model *)user;
    ++m->calls;
    pm_spin(m->spin_forward_us);
    if (micro == m->fail_forward_at) return 7;
    const float *x = m->lo == 0 ? m->x[buf] : (const float *)input->data;
    memcpy(m->io[buf][m->lo], x, sizeof(float) * (size_t)m->batch * m->dims[m->lo]);
    for (int l = m->lo; l < m->hi; ++l) pm_layer(m, l, m->io[buf][l], m->io[buf][l + 1]);
    const int out = m->dims[m->hi];
    if (loss) {
        double s = 0;
        for (int i = 0; i < m->batch * out; ++i) {
            const double d = (double)m->io[buf][m->hi][i] - (double)m->target[buf][i];
            s += d * d;
        }
        *loss = 0.5 * s / (double)(m->batch * out);
        return 0;
    }
    m->out_shape[0] = m->batch;
    m->out_shape[1] = micro == m->bad_out_shape_at ? out - 1 : out;
    output->data = m->io[buf][m->hi];
    output->device.device_type = kDLCPU;
    output->ndim = 2;
    output->dtype.code = kDLFloat;
    output->dtype.bits = 32;
    output->dtype.lanes = 1;
    output->shape = m->out_shape;
    return 0;
}

static inline int pm_backward(void *user, int32_t buf, int64_t micro, const DLTensor *output_grad, DLTensor *input_grad) {
    pm_model *m = (pm_model *)user;
    ++m->calls;
    pm_spin(m->spin_backward_us);
    if (micro == m->fail_backward_at) return 9;
    int maxd = 0;
    for (int l = m->lo; l <= m->hi; ++l) maxd = m->dims[l] > maxd ? m->dims[l] : maxd;
    float *dy = pm_alloc((size_t)m->batch * maxd), *dx = pm_alloc((size_t)m->batch * maxd);
    const int out = m->dims[m->hi];
    if (output_grad) {
        memcpy(dy, output_grad->data, sizeof(float) * (size_t)m->batch * out);
    } else {
        double mult = 0;
        if (dsz_loss_scale(m->engine, &mult) != DSZ_OK) return 3;
        for (int i = 0; i < m->batch * out; ++i)
            dy[i] = (float)(((double)m->io[buf][m->hi][i] - (double)m->target[buf][i]) / (double)(m->batch * out) * mult);
    }
    int status = 0;
    for (int l = m->hi - 1; l >= m->lo && !status; --l) {
        const int in = m->dims[l], o = m->dims[l + 1];
        const float *y = m->io[buf][l + 1], *x = m->io[buf][l];
        if (l != m->n_layers - 1)
            for (int i = 0; i < m->batch * o; ++i) dy[i] *= 1.0f - y[i] * y[i];
        float *gw = pm_alloc((size_t)o * in), *gb = pm_alloc((size_t)o);
        for (int k = 0; k < o; ++k) {
            double sb = 0;
            for (int r = 0; r < m->batch; ++r) sb += dy[r * o + k];
            gb[k] = (float)sb;
            for (int i = 0; i < in; ++i) {
                double s = 0;
                for (int r = 0; r < m->batch; ++r) s += (double)dy[r * o + k] * (double)x[r * in + i];
                gw[k * in + i] = (float)s;
            }
        }
        for (int r = 0; r < m->batch; ++r)
            for (int i = 0; i < in; ++i) {
                double s = 0;
                for (int k = 0; k < o; ++k) s += (double)dy[r * o + k] * (double)m->w[l][k * in + i];
                dx[r * in + i] = (float)s;
            }
        DLTensor tw = m->tw[l], tb = m->tb[l];
        tw.data = gw;
        tb.data = gb;
        const size_t idx = (size_t)(2 * (l - m->lo));
        if (dsz_grad_ready(m->engine, idx, &tw) != DSZ_OK || dsz_grad_ready(m->engine, idx + 1, &tb) != DSZ_OK)
            status = 4;
        free(gw);
        free(gb);
        memcpy(dy, dx, sizeof(float) * (size_t)m->batch * in);
    }
    if (input_grad && !status) {
        const int in = m->dims[m->lo];
        memcpy(m->in_grad[buf], dy, sizeof(float) * (size_t)m->batch * in);
        m->in_shape[0] = m->batch;
        m->in_shape[1] = micro == m->bad_grad_shape_at ? 2 * in : in;
        input_grad->data = m->in_grad[buf];
        input_grad->device.device_type = kDLCPU;
        input_grad->ndim = 2;
        input_grad->dtype.code = kDLFloat;
        input_grad->dtype.bits = micro == m->bad_grad_dtype_at ? 16 : 32;
        input_grad->dtype.lanes = 1;
        input_grad->shape = m->in_shape;
    }
    free(dy);
    free(dx);
    return status;
}

/* The loss of sample block g for the whole model (layers [0, L)) in double
 * precision, from full-model weights `w`, `b` (float). */
static inline double pm_loss_f64(const pm_model *full, int64_t g) {
    const int L = full->n_layers, B = full->batch;
    int maxd = 0;
    for (int l = 0; l <= L; ++l) maxd = full->dims[l] > maxd ? full->dims[l] : maxd;
    double *a = (double *)calloc((size_t)B * maxd, sizeof(double)), *z = (double *)calloc((size_t)B * maxd, sizeof(double));
    for (int r = 0; r < B; ++r)
        for (int c = 0; c < full->dims[0]; ++c) a[r * full->dims[0] + c] = pm_data(g, 0, r, c);
    for (int l = 0; l < L; ++l) {
        const int in = full->dims[l], out = full->dims[l + 1];
        for (int r = 0; r < B; ++r)
            for (int o = 0; o < out; ++o) {
                double acc = full->b[l][o];
                for (int i = 0; i < in; ++i) acc += a[r * in + i] * (double)full->w[l][o * in + i];
                z[r * out + o] = l == L - 1 ? acc : tanh(acc);
            }
        memcpy(a, z, sizeof(double) * (size_t)B * out);
    }
    double s = 0;
    const int out = full->dims[L];
    for (int r = 0; r < B; ++r)
        for (int c = 0; c < out; ++c) {
            const double d = a[r * out + c] - pm_data(g, 1, r, c);
            s += d * d;
        }
    free(a);
    free(z);
    return 0.5 * s / (double)(B * out);
}

#endif
