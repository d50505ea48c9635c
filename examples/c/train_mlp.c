/*
 * train_mlp.c -- a host program that trains a small MLP with dszero.
 *
 * The program does what a framework would: it owns the model's tensors,
 * computes forward and backward itself (a 2-layer MLP with a softmax
 * cross-entropy, in fp32 arithmetic on weights stored in the config's
 * dtype), and hands each gradient to dszero, which does everything else:
 * loss scaling, accumulation, clipping, the optimizer, the LR schedule.
 * Data is synthetic: labels come from a fixed random "teacher" network, so
 * the loss can fall far below its starting value ln(classes). Under mpirun
 * every rank draws its own batches; dszero reduces the gradients (ZeRO
 * stage from the config) and rank 0 prints.
 *
 *   train_mlp CONFIG.json [STEPS]
 *   mpirun -np 2 train_mlp CONFIG.json [STEPS]
 */
#include <dszero.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { IN = 32, HID = 128, OUT = 8 };

/* ---- the 16-bit formats, enough for a host program ---- */
static float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static float half_to_f(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 31u, m = h & 0x3ffu;
    if (e == 0) return bits_f(f_bits((float)m * 5.9604644775390625e-8f) | s);
    if (e == 31) return bits_f(s | 0x7f800000u | (m << 13));
    return bits_f(s | ((e + 112u) << 23) | (m << 13));
}
static uint16_t f_to_half(float f) {
    uint32_t u = f_bits(f), s = u & 0x80000000u;
    u ^= s;
    uint16_t o;
    if (u >= 0x47800000u) o = u > 0x7f800000u ? 0x7e00 : 0x7c00;
    else if (u < 0x38800000u) o = (uint16_t)(f_bits(bits_f(u) + 0.5f) - 0x3f000000u);
    else { u += 0xc8000fffu + ((u >> 13) & 1u); o = (uint16_t)(u >> 13); }
    return (uint16_t)(o | (s >> 16));
}
static float bf16_to_f(uint16_t b) { return bits_f((uint32_t)b << 16); }
static uint16_t f_to_bf16(float f) {
    uint32_t u = f_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* A tensor in the model dtype, with an fp32 working copy for arithmetic. */
typedef struct {
    const char *name;
    int64_t shape[2];
    int ndim;
    size_t n;
    void *data;       /* model dtype: registered with dszero */
    float *work;      /* fp32 view of data, refreshed after each step */
    float *grad;      /* fp32 gradient */
    void *grad_out;   /* gradient in model dtype, handed to dszero */
    DLTensor t, g;
} tensor;

static DLDataType model_dtype;

static float to_f(const void *p, size_t i) {
    if (model_dtype.bits == 32) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return model_dtype.code == kDLBfloat ? bf16_to_f(h) : half_to_f(h);
}
static void from_f(void *p, size_t i, float v) {
    if (model_dtype.bits == 32) ((float *)p)[i] = v;
    else ((uint16_t *)p)[i] = model_dtype.code == kDLBfloat ? f_to_bf16(v) : f_to_half(v);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float urand(void) { /* xorshift64*, uniform in [-1, 1) */
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (float)((rng * 2685821657736338717ull) >> 40) / 8388608.0f - 1.0f;
}

static void tensor_make(tensor *t, const char *name, int ndim, int64_t d0, int64_t d1, float scale) {
    memset(t, 0, sizeof *t);
    t->name = name; t->ndim = ndim; t->shape[0] = d0; t->shape[1] = d1;
    t->n = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    t->data = calloc(t->n, model_dtype.bits / 8);
    t->grad_out = calloc(t->n, model_dtype.bits / 8);
    t->work = calloc(t->n, sizeof(float));
    t->grad = calloc(t->n, sizeof(float));
    for (size_t i = 0; i < t->n; ++i) from_f(t->data, i, scale * urand());
    DLTensor base = {0};
    base.device.device_type = kDLCPU;
    base.ndim = ndim; base.dtype = model_dtype; base.shape = t->shape;
    t->t = base; t->t.data = t->data;
    t->g = base; t->g.data = t->grad_out;
}

/* Refreshes the fp32 working copies from the current parameters. Through
 * dsz_gather, which works at every ZeRO stage: at stage 3 dszero holds the
 * values (the registered tensors are only read at registration), at stages
 * 0-2 it hands back the host's own tensors. */
static int sync_all(dsz_engine *eng, tensor **all, size_t n) {
    size_t idx[8];
    DLTensor cur[8];
    for (size_t i = 0; i < n; ++i) idx[i] = i;
    dsz_status s = dsz_gather(eng, idx, n, cur);
    if (s != DSZ_OK) { fprintf(stderr, "dsz_gather failed: %s\n", dsz_last_error()); return 1; }
    for (size_t i = 0; i < n; ++i)
        for (size_t k = 0; k < all[i]->n; ++k) all[i]->work[k] = to_f(cur[i].data, k);
    s = dsz_release(eng, idx, n);
    if (s != DSZ_OK) { fprintf(stderr, "dsz_release failed: %s\n", dsz_last_error()); return 1; }
    return 0;
}

static void tensor_free(tensor *t) { free(t->data); free(t->grad_out); free(t->work); free(t->grad); }

static int check(dsz_status s, const char *what) {
    if (s == DSZ_OK) return 0;
    fprintf(stderr, "%s failed: %s (%s)\n", what, dsz_last_error(), dsz_status_string(s));
    return 1;
}

/* The teacher: a fixed random linear map whose argmax is the label. */
static float teacher[OUT][IN];

static void make_batch(int B, float *x, int *y) {
    for (int b = 0; b < B; ++b) {
        for (int i = 0; i < IN; ++i) x[b * IN + i] = urand();
        int best = 0; float bv = -1e30f;
        for (int o = 0; o < OUT; ++o) {
            float v = 0;
            for (int i = 0; i < IN; ++i) v += teacher[o][i] * x[b * IN + i];
            if (v > bv) { bv = v; best = o; }
        }
        y[b] = best;
    }
}

/* Forward and backward of mean cross-entropy; gradients scaled by `mult`. */
static float forward_backward(tensor *w1, tensor *b1, tensor *w2, tensor *b2, int B, const float *x,
                              const int *y, double mult) {
    float *h = malloc(sizeof(float) * (size_t)B * HID), *dh = calloc((size_t)B * HID, sizeof(float));
    float loss = 0;
    memset(w1->grad, 0, w1->n * 4); memset(b1->grad, 0, b1->n * 4);
    memset(w2->grad, 0, w2->n * 4); memset(b2->grad, 0, b2->n * 4);
    for (int b = 0; b < B; ++b) {
        const float *xb = x + b * IN;
        float *hb = h + b * HID, logits[OUT], p[OUT], mx = -1e30f, z = 0;
        for (int j = 0; j < HID; ++j) {
            float v = b1->work[j];
            for (int i = 0; i < IN; ++i) v += w1->work[j * IN + i] * xb[i];
            hb[j] = v > 0 ? v : 0;
        }
        for (int o = 0; o < OUT; ++o) {
            float v = b2->work[o];
            for (int j = 0; j < HID; ++j) v += w2->work[o * HID + j] * hb[j];
            logits[o] = v; if (v > mx) mx = v;
        }
        for (int o = 0; o < OUT; ++o) { p[o] = expf(logits[o] - mx); z += p[o]; }
        loss += -(logits[y[b]] - mx - logf(z)) / (float)B;
        for (int o = 0; o < OUT; ++o) {
            float d = (p[o] / z - (o == y[b] ? 1.0f : 0.0f)) / (float)B * (float)mult;
            b2->grad[o] += d;
            for (int j = 0; j < HID; ++j) { w2->grad[o * HID + j] += d * hb[j]; dh[b * HID + j] += d * w2->work[o * HID + j]; }
        }
        for (int j = 0; j < HID; ++j) {
            float d = hb[j] > 0 ? dh[b * HID + j] : 0;
            b1->grad[j] += d;
            for (int i = 0; i < IN; ++i) w1->grad[j * IN + i] += d * xb[i];
        }
    }
    free(h); free(dh);
    return loss;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s CONFIG.json [STEPS]\n", argv[0]); return 2; }
    const long steps = argc > 2 ? atol(argv[2]) : 300;
    for (int o = 0; o < OUT; ++o) for (int i = 0; i < IN; ++i) teacher[o][i] = urand();

    dsz_engine *eng = NULL;
    if (check(dsz_init(&eng, argv[1], NULL), "dsz_init")) return 1;
    dsz_engine_state st;
    dsz_engine_state_init(&st, sizeof st);
    if (check(dsz_get_state(eng, &st), "dsz_get_state")) return 1;
    model_dtype.code = (uint8_t)st.dtype_code; model_dtype.bits = (uint8_t)st.dtype_bits; model_dtype.lanes = 1;
    const int B = st.micro_batch_size, gas = st.gradient_accumulation_steps;

    tensor w1, b1, w2, b2;
    tensor_make(&w1, "fc1.weight", 2, HID, IN, 0.25f);
    tensor_make(&b1, "fc1.bias", 1, HID, 0, 0.0f);
    tensor_make(&w2, "fc2.weight", 2, OUT, HID, 0.1f);
    tensor_make(&b2, "fc2.bias", 1, OUT, 0, 0.0f);
    tensor *all[4] = {&w1, &b1, &w2, &b2};
    dsz_param params[4];
    for (int i = 0; i < 4; ++i) { params[i].name = all[i]->name; params[i].tensor = &all[i]->t; params[i].group = 0; params[i].flags = 0; }
    if (check(dsz_register_params(eng, params, 4, NULL, 0), "dsz_register_params")) return 1;
    if (sync_all(eng, all, 4)) return 1;

    rng ^= 0x51ed2701ull * (uint64_t)(st.rank + 1); /* each rank its own batches */
    const int rank0 = st.rank == 0;
    float *x = malloc(sizeof(float) * (size_t)B * IN);
    int *y = malloc(sizeof(int) * (size_t)B);
    if (rank0)
        printf("dszero %s: MLP %d-%d-%d, %s, ZeRO stage %d, %d rank%s, micro batch %d x %d accumulation\n",
               dsz_version(), IN, HID, OUT, st.dtype_bits == 32 ? "fp32" : st.dtype_code == kDLBfloat ? "bf16" : "fp16",
               st.zero_stage, st.world_size, st.world_size == 1 ? "" : "s", B, gas);
    double first = 0, recent = 0;
    for (long step = 1; step <= steps; ++step) {
        double window_loss = 0;
        dsz_step_info info;
        dsz_step_info_init(&info, sizeof info);
        for (int m = 0; m < gas; ++m) {
            double mult;
            if (check(dsz_loss_scale(eng, &mult), "dsz_loss_scale")) return 1;
            make_batch(B, x, y);
            window_loss += forward_backward(&w1, &b1, &w2, &b2, B, x, y, mult) / gas;
            for (int i = 0; i < 4; ++i) {
                for (size_t k = 0; k < all[i]->n; ++k) from_f(all[i]->grad_out, k, all[i]->grad[k]);
                if (check(dsz_grad_ready(eng, (size_t)i, &all[i]->g), "dsz_grad_ready")) return 1;
            }
            if (check(dsz_backward(eng), "dsz_backward")) return 1;
            if (check(dsz_step(eng, &info), "dsz_step")) return 1;
        }
        if (sync_all(eng, all, 4)) return 1;
        if (step == 1) first = window_loss;
        recent = step == 1 ? window_loss : 0.9 * recent + 0.1 * window_loss;
        if (rank0 && (step == 1 || step % 25 == 0 || info.skipped))
            printf("step %4ld  loss %.4f  lr %.3e  loss_scale %g%s\n", step, window_loss, info.lr, info.loss_scale,
                   info.skipped ? "  (overflow: step skipped)" : "");
    }
    if (rank0) printf("loss: first %.4f, last (running mean) %.4f\n", first, recent);
    for (int i = 0; i < 4; ++i) tensor_free(all[i]);
    free(x); free(y);
    check(dsz_engine_free(eng), "dsz_engine_free");
    return recent < first * 0.5 ? 0 : 3;
}
