/*
 * test_api_pipe.c -- pipeline parallelism through the C API, one process.
 *
 * Schedules: every (stages 1-4) x (micro-batches 1-8) x stage stream equals
 * a table this test builds from the reference formulas (§8.1-8.2, written
 * out again here, step by step), two streams are also spelled out by hand,
 * and across stages every send meets its receive in the same step.
 * Partitioning: DeepSpeed's uniform split, the balanced split's optimum
 * (against brute force) and tie rule, type regexes, refusals. Executor: a
 * one-stage pipeline trains exactly (bit for bit) like a plain engine fed
 * the same micro-batches; a failing callback abandons the batch with an
 * error naming the stage and leaves the engine as if the batch never ran;
 * ZeRO 2/3, bad stage counts and missing callbacks are refused; the lent
 * stage engine refuses backward, step and free.
 */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../pipe/pipe_mlp.h"

enum { LOAD = DSZ_PIPE_LOAD_MICRO_BATCH, FWD = DSZ_PIPE_FORWARD_PASS, BWD = DSZ_PIPE_BACKWARD_PASS,
       SEND_ACT = DSZ_PIPE_SEND_ACTIVATION, RECV_ACT = DSZ_PIPE_RECV_ACTIVATION, SEND_GRAD = DSZ_PIPE_SEND_GRAD,
       RECV_GRAD = DSZ_PIPE_RECV_GRAD, TIED = DSZ_PIPE_REDUCE_TIED_GRADS, REDUCE = DSZ_PIPE_REDUCE_GRADS,
       OPT = DSZ_PIPE_OPTIMIZER_STEP };

static dsz_pipe_instr *schedule(int kind, int M, int S, int s, size_t *n) {
    assert_ok(dsz_pipe_schedule(kind, M, S, s, NULL, 0, n));
    dsz_pipe_instr *out = calloc(*n + 1, sizeof *out);
    assert_ok(dsz_pipe_schedule(kind, M, S, s, out, *n, n));
    return out;
}

/* ---- the reference formulas, restated ---------------------------------- */

typedef struct table {
    dsz_pipe_instr v[512];
    size_t n;
} table;

static void put(table *t, int kind, int step, int buf, int micro) {
    assert_true(t->n < 512);
    dsz_pipe_instr i = {kind, step, buf, micro};
    t->v[t->n++] = i;
}

/* §8.1: 2(M+S-1) steps; forward when k and s have the same parity, with the
 * four id formulas; buffer = id mod max(2, min(S-s, M)). */
static void train_table(int M, int S, int s, table *t) {
    t->n = 0;
    const int B = (S - s < M ? S - s : M) > 2 ? (S - s < M ? S - s : M) : 2;
    const int total = 2 * (M + S - 1);
    int prev = -1;
    for (int k = 0; k < total; ++k) {
        int fwd = (k % 2) == (s % 2), id;
        if (fwd && k % 2 == 0) id = k / 2 - s / 2;
        else if (fwd) id = (k - 1) / 2 - s / 2;
        else if (k % 2 == 0) id = k / 2 - S + (s + 1) / 2;
        else id = (k - 1) / 2 - S + 1 + s / 2;
        const int cur_ok = id >= 0 && id < M, prev_ok = prev >= 0 && prev < M;
        if (fwd) {
            if (prev_ok && s > 0) put(t, SEND_GRAD, k, prev % B, prev);
            if (cur_ok && s > 0) put(t, RECV_ACT, k, id % B, id);
        } else {
            if (cur_ok && s < S - 1) put(t, RECV_GRAD, k, id % B, id);
            if (prev_ok && s < S - 1) put(t, SEND_ACT, k, prev % B, prev);
        }
        if ((s == 0 || s == S - 1) && fwd && cur_ok) put(t, LOAD, k, id % B, id);
        if (cur_ok) put(t, fwd ? FWD : BWD, k, id % B, id);
        if (k == total - 1) {
            put(t, TIED, k, -1, -1);
            put(t, REDUCE, k, -1, -1);
            put(t, OPT, k, -1, -1);
        }
        prev = id;
    }
}

/* §8.2: M+S-1 steps, id = k - s, buffers by parity of the stage. */
static void inference_table(int M, int S, int s, table *t) {
    t->n = 0;
    for (int k = 0; k < M + S - 1; ++k) {
        const int id = k - s, ok = id >= 0 && id < M, sok = id - 1 >= 0 && id - 1 < M;
        const int recv = s % 2 == 0 ? k % 2 : (k + 1) % 2, send = s % 2 == 0 ? (k + 1) % 2 : k % 2;
        if ((s == 0 || s == S - 1) && ok) put(t, LOAD, k, recv, id);
        if (s % 2 == 0) {
            if (s < S - 1 && sok) put(t, SEND_ACT, k, send, id - 1);
            if (s > 0 && ok) put(t, RECV_ACT, k, recv, id);
        } else {
            if (s > 0 && ok) put(t, RECV_ACT, k, recv, id);
            if (s < S - 1 && sok) put(t, SEND_ACT, k, send, id - 1);
        }
        if (ok) put(t, FWD, k, recv, id);
    }
}

static void expect_stream(const dsz_pipe_instr *got, size_t n, const dsz_pipe_instr *want, size_t m, const char *what) {
    if (n != m) {
        print_error("%s: %zu instructions, expected %zu\n", what, n, m);
        fail();
    }
    for (size_t i = 0; i < n; ++i)
        if (memcmp(&got[i], &want[i], sizeof got[i]) != 0) {
            print_error("%s: instruction %zu is (kind %d, step %d, buffer %d, micro %d), expected (%d, %d, %d, %d)\n",
                        what, i, got[i].kind, got[i].step, got[i].buffer_id, got[i].micro_batch, want[i].kind,
                        want[i].step, want[i].buffer_id, want[i].micro_batch);
            fail();
        }
}

static void test_schedules_match_formulas(void **state) {
    (void)state;
    table t;
    char what[96];
    for (int S = 1; S <= 4; ++S)
        for (int M = 1; M <= 8; ++M)
            for (int s = 0; s < S; ++s) {
                size_t n;
                dsz_pipe_instr *got = schedule(DSZ_PIPE_SCHEDULE_TRAIN, M, S, s, &n);
                train_table(M, S, s, &t);
                snprintf(what, sizeof what, "train M=%d S=%d stage %d", M, S, s);
                expect_stream(got, n, t.v, t.n, what);
                free(got);
                got = schedule(DSZ_PIPE_SCHEDULE_INFERENCE, M, S, s, &n);
                inference_table(M, S, s, &t);
                snprintf(what, sizeof what, "inference M=%d S=%d stage %d", M, S, s);
                expect_stream(got, n, t.v, t.n, what);
                free(got);
                int32_t bufs, steps;
                assert_ok(dsz_pipe_schedule_size(DSZ_PIPE_SCHEDULE_TRAIN, M, S, s, &bufs, &steps));
                assert_int_equal(steps, 2 * (M + S - 1));
                assert_int_equal(bufs, (S - s < M ? S - s : M) > 2 ? (S - s < M ? S - s : M) : 2);
                assert_ok(dsz_pipe_schedule_size(DSZ_PIPE_SCHEDULE_INFERENCE, M, S, s, &bufs, &steps));
                assert_int_equal(steps, M + S - 1);
                assert_int_equal(bufs, 2);
            }
}

/* Two streams worked out by hand from DeepSpeed's TrainSchedule (M=2, S=2). */
static void test_schedule_by_hand(void **state) {
    (void)state;
    const dsz_pipe_instr s0[] = {
        {LOAD, 0, 0, 0}, {FWD, 0, 0, 0}, {SEND_ACT, 1, 0, 0}, {LOAD, 2, 1, 1}, {FWD, 2, 1, 1},
        {RECV_GRAD, 3, 0, 0}, {SEND_ACT, 3, 1, 1}, {BWD, 3, 0, 0}, {RECV_GRAD, 5, 1, 1}, {BWD, 5, 1, 1},
        {TIED, 5, -1, -1}, {REDUCE, 5, -1, -1}, {OPT, 5, -1, -1}};
    const dsz_pipe_instr s1[] = {
        {RECV_ACT, 1, 0, 0}, {LOAD, 1, 0, 0}, {FWD, 1, 0, 0}, {BWD, 2, 0, 0}, {SEND_GRAD, 3, 0, 0},
        {RECV_ACT, 3, 1, 1}, {LOAD, 3, 1, 1}, {FWD, 3, 1, 1}, {BWD, 4, 1, 1}, {SEND_GRAD, 5, 1, 1},
        {TIED, 5, -1, -1}, {REDUCE, 5, -1, -1}, {OPT, 5, -1, -1}};
    size_t n;
    dsz_pipe_instr *got = schedule(DSZ_PIPE_SCHEDULE_TRAIN, 2, 2, 0, &n);
    expect_stream(got, n, s0, sizeof s0 / sizeof s0[0], "by hand, stage 0");
    free(got);
    got = schedule(DSZ_PIPE_SCHEDULE_TRAIN, 2, 2, 1, &n);
    expect_stream(got, n, s1, sizeof s1 / sizeof s1[0], "by hand, stage 1");
    free(got);
    /* InferenceSchedule M=2, S=2, stage 1 (odd: receive before send, buffers swapped). */
    const dsz_pipe_instr i1[] = {{LOAD, 1, 0, 0}, {RECV_ACT, 1, 0, 0}, {FWD, 1, 0, 0},
                                 {LOAD, 2, 1, 1}, {RECV_ACT, 2, 1, 1}, {FWD, 2, 1, 1}};
    got = schedule(DSZ_PIPE_SCHEDULE_INFERENCE, 2, 2, 1, &n);
    expect_stream(got, n, i1, sizeof i1 / sizeof i1[0], "by hand, inference stage 1");
    free(got);
}

/* Across stages: each send at step k meets the neighbour's receive of the
 * same micro-batch at step k, in the same order; each stage runs M
 * forwards and M backwards, forwards in micro-batch order. */
static void test_schedule_pairing(void **state) {
    (void)state;
    for (int S = 2; S <= 4; ++S)
        for (int M = 1; M <= 8; ++M) {
            dsz_pipe_instr *st[4];
            size_t n[4];
            for (int s = 0; s < S; ++s) st[s] = schedule(DSZ_PIPE_SCHEDULE_TRAIN, M, S, s, &n[s]);
            for (int s = 0; s < S; ++s) {
                int fwd = 0, bwd = 0;
                for (size_t i = 0; i < n[s]; ++i) {
                    const dsz_pipe_instr *a = &st[s][i];
                    if (a->kind == FWD) assert_int_equal(a->micro_batch, fwd++);
                    if (a->kind == BWD) ++bwd;
                    int peer = -1, want = -1;
                    if (a->kind == SEND_ACT) peer = s + 1, want = RECV_ACT;
                    if (a->kind == SEND_GRAD) peer = s - 1, want = RECV_GRAD;
                    if (peer < 0) continue;
                    int found = 0;
                    for (size_t j = 0; j < n[peer]; ++j)
                        if (st[peer][j].kind == want && st[peer][j].micro_batch == a->micro_batch) {
                            assert_int_equal(st[peer][j].step, a->step);
                            found = 1;
                        }
                    assert_true(found);
                }
                assert_int_equal(fwd, M);
                assert_int_equal(bwd, M);
            }
            for (int s = 0; s < S; ++s) free(st[s]);
        }
}

static void test_schedule_errors(void **state) {
    (void)state;
    size_t n = 99;
    dsz_pipe_instr few[2];
    assert_status(dsz_pipe_schedule(DSZ_PIPE_SCHEDULE_TRAIN, 2, 2, 0, few, 2, &n), DSZ_ERR_INVALID_ARGUMENT,
                  "capacity 2");
    assert_int_equal(n, 13);
    assert_status(dsz_pipe_schedule(DSZ_PIPE_SCHEDULE_TRAIN, 0, 2, 0, NULL, 0, &n), DSZ_ERR_INVALID_ARGUMENT,
                  "micro_batches");
    assert_status(dsz_pipe_schedule(DSZ_PIPE_SCHEDULE_TRAIN, 2, 2, 2, NULL, 0, &n), DSZ_ERR_INVALID_ARGUMENT,
                  "stage_id 2");
    assert_status(dsz_pipe_schedule(7, 2, 2, 0, NULL, 0, &n), DSZ_ERR_INVALID_ARGUMENT, "kind 7");
    assert_status(dsz_pipe_schedule(DSZ_PIPE_SCHEDULE_TRAIN, 2, 2, 0, NULL, 0, NULL), DSZ_ERR_INVALID_ARGUMENT,
                  "n_instr");
}

/* ---- partitioning ------------------------------------------------------- */

static void expect_parts(const int64_t *got, const int64_t *want, int S) {
    for (int i = 0; i <= S; ++i)
        if (got[i] != want[i]) {
            print_error("parts[%d] = %lld, expected %lld\n", i, (long long)got[i], (long long)want[i]);
            fail();
        }
}

static void test_partition_uniform(void **state) {
    (void)state;
    int64_t p[8];
    assert_ok(dsz_pipe_partition("uniform", 10, NULL, NULL, 4, p));
    expect_parts(p, (const int64_t[]){0, 3, 6, 8, 10}, 4);
    assert_ok(dsz_pipe_partition("UNIFORM", 3, NULL, NULL, 5, p));
    expect_parts(p, (const int64_t[]){0, 1, 2, 3, 3, 3}, 5);
    assert_ok(dsz_pipe_partition("uniform", 8, NULL, NULL, 4, p));
    expect_parts(p, (const int64_t[]){0, 2, 4, 6, 8}, 4);
}

/* max - min of the parts of a split */
static int64_t spread(const int64_t *w, const int64_t *parts, int S) {
    int64_t hi = INT64_MIN, lo = INT64_MAX;
    for (int s = 0; s < S; ++s) {
        int64_t sum = 0;
        for (int64_t i = parts[s]; i < parts[s + 1]; ++i) sum += w[i];
        hi = sum > hi ? sum : hi;
        lo = sum < lo ? sum : lo;
    }
    return hi - lo;
}

/* Smallest spread over all splits into S non-empty parts (brute force). */
static int64_t best_spread(const int64_t *w, int n, int S, int64_t *parts, int s) {
    if (s == S) return parts[S] == n ? spread(w, parts, S) : INT64_MAX;
    int64_t best = INT64_MAX;
    for (int64_t end = parts[s - 1] + 1; end <= n - (S - s); ++end) {
        parts[s] = end;
        const int64_t c = best_spread(w, n, S, parts, s + 1);
        best = c < best ? c : best;
    }
    return best;
}

static void test_partition_balanced(void **state) {
    (void)state;
    int64_t p[8];
    assert_ok(dsz_pipe_partition("parameters", 6, (const int64_t[]){1, 1, 1, 1, 4, 4}, NULL, 2, p));
    expect_parts(p, (const int64_t[]){0, 5, 6}, 2);
    /* (1 | 2 1) and (1 2 | 1) tie at a spread of 2: the later split wins */
    assert_ok(dsz_pipe_partition("parameters", 3, (const int64_t[]){1, 2, 1}, NULL, 2, p));
    expect_parts(p, (const int64_t[]){0, 2, 3}, 2);
    /* fewer layers than stages: uniform */
    assert_ok(dsz_pipe_partition("parameters", 2, (const int64_t[]){5, 9}, NULL, 3, p));
    expect_parts(p, (const int64_t[]){0, 1, 2, 2}, 3);
    /* the dynamic programme finds the optimum */
    for (int trial = 0; trial < 200; ++trial) {
        const int n = 3 + trial % 7, S = 2 + trial % 3;
        if (n <= S) continue;
        int64_t w[16], parts[8], scratch[8] = {0};
        for (int i = 0; i < n; ++i) w[i] = (int64_t)(pm_value((unsigned)(trial * 31 + i)) * 50 + 50);
        assert_ok(dsz_pipe_partition("parameters", (size_t)n, w, NULL, S, parts));
        assert_int_equal(parts[0], 0);
        assert_int_equal(parts[S], n);
        for (int s = 0; s < S; ++s) assert_true(parts[s] < parts[s + 1]);
        scratch[0] = 0;
        scratch[S] = n;
        assert_int_equal(spread(w, parts, S), best_spread(w, n, S, scratch, 1));
    }
}

static void test_partition_type_regex(void **state) {
    (void)state;
    const char *names[] = {"EmbeddingPipe", "TransformerLayer", "TransformerLayer", NULL, "TransformerLayer",
                           "TransformerLayer", "LMHead"};
    int64_t p[8];
    assert_ok(dsz_pipe_partition("type:transformer", 7, NULL, names, 2, p));
    /* weights 0 1 1 0 1 1 0: both parts hold two transformer layers; ties go later */
    expect_parts(p, (const int64_t[]){0, 4, 7}, 2);
    /* weights 1 1 1 0 1 1 0: splits after layers 2, 3 and 4 tie at a spread of 1 */
    assert_ok(dsz_pipe_partition("type:TRANSFORMER|embed", 7, NULL, names, 2, p));
    expect_parts(p, (const int64_t[]){0, 4, 7}, 2);
    assert_status(dsz_pipe_partition("type:attention", 7, NULL, names, 2, p), DSZ_ERR_INVALID_ARGUMENT,
                  "found no valid layers");
    assert_status(dsz_pipe_partition("type:(", 7, NULL, names, 2, p), DSZ_ERR_INVALID_ARGUMENT, "does not compile");
    assert_status(dsz_pipe_partition("type:x", 7, NULL, NULL, 2, p), DSZ_ERR_INVALID_ARGUMENT, "layer_types");
    assert_status(dsz_pipe_partition("profile", 7, NULL, NULL, 2, p), DSZ_ERR_UNSUPPORTED, "profile");
    assert_status(dsz_pipe_partition("best", 7, NULL, NULL, 2, p), DSZ_ERR_UNSUPPORTED, "'best'");
    assert_status(dsz_pipe_partition("parameters", 7, NULL, NULL, 2, p), DSZ_ERR_INVALID_ARGUMENT, "param_counts");
    assert_status(dsz_pipe_partition("uniform", 7, NULL, NULL, 0, p), DSZ_ERR_INVALID_ARGUMENT, "stages is 0");
}

/* ---- the executor on one process ----------------------------------------- */

static const int DIMS[] = {6, 10, 8, 3};
enum { LAYERS = 3, BATCH = 4, M = 4 };

static const char *CONFIG =
    "{\"train_micro_batch_size_per_gpu\": 4, \"gradient_accumulation_steps\": 4, \"gradient_clipping\": 0.5,"
    " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}}";

static dsz_pipe_engine *make_pipe(const char *config, pm_model *m, int stages, dsz_status expect, const char *needle) {
    dsz_init_options o;
    assert_ok(dsz_init_options_init(&o, sizeof o));
    o.log_fn = quiet_log;
    o.cpu_threads = 1;
    dsz_pipe_options p;
    assert_ok(dsz_pipe_options_init(&p, sizeof p));
    p.stages = stages;
    p.load_micro_batch = pm_load;
    p.forward = pm_forward;
    p.backward = pm_backward;
    p.user_data = m;
    dsz_pipe_engine *pe = NULL;
    assert_status(dsz_pipe_init(&pe, config, &o, &p), expect, needle);
    if (expect != DSZ_OK) {
        assert_null(pe);
        return NULL;
    }
    dsz_engine *e = NULL;
    assert_ok(dsz_pipe_stage_engine(pe, &e));
    assert_ok(pm_register(m, e));
    return pe;
}

/* The same micro-batches through a plain engine, by hand. */
static double plain_batch(dsz_engine *e, pm_model *m) {
    double total = 0;
    for (int k = 0; k < M; ++k) {
        double loss = 0;
        assert_int_equal(pm_load(m, 0, k), 0);
        assert_int_equal(pm_forward(m, 0, k, NULL, NULL, &loss), 0);
        total += loss;
        assert_int_equal(pm_backward(m, 0, k, NULL, NULL), 0);
        assert_ok(dsz_backward(e));
        assert_ok(dsz_step(e, NULL));
    }
    return total / M;
}

static void expect_same_params(const pm_model *a, const pm_model *b) {
    for (int l = 0; l < LAYERS; ++l) {
        assert_memory_equal(a->w[l], b->w[l], sizeof(float) * (size_t)DIMS[l] * DIMS[l + 1]);
        assert_memory_equal(a->b[l], b->b[l], sizeof(float) * (size_t)DIMS[l + 1]);
    }
}

static void test_one_stage_equals_plain_engine(void **state) {
    (void)state;
    pm_model pm, ref;
    pm_make(&pm, LAYERS, DIMS, BATCH, 0, LAYERS, 2);
    pm_make(&ref, LAYERS, DIMS, BATCH, 0, LAYERS, 2);
    dsz_pipe_engine *pe = make_pipe(CONFIG, &pm, 1, DSZ_OK, NULL);
    dsz_engine *e = engine_from_json(CONFIG);
    assert_ok(pm_register(&ref, e));
    dsz_pipe_info info;
    assert_ok(dsz_pipe_info_init(&info, sizeof info));
    assert_ok(dsz_pipe_get_info(pe, &info));
    assert_int_equal(info.stages, 1);
    assert_int_equal(info.stage_id, 0);
    assert_int_equal(info.data_parallel_size, 1);
    assert_int_equal(info.micro_batches, M);
    assert_int_equal(info.n_buffers, 2);
    assert_int_equal(info.n_steps, 2 * M);
    /* the first batch's loss against a float64 forward pass */
    double f64 = 0;
    for (int k = 0; k < M; ++k) f64 += pm_loss_f64(&pm, k);
    f64 /= M;
    for (int batch = 0; batch < 4; ++batch) {
        pm.first_sample = ref.first_sample = batch * M;
        double loss = 0;
        dsz_pipe_batch_info bi;
        assert_ok(dsz_pipe_batch_info_init(&bi, sizeof bi));
        assert_ok(dsz_pipe_train_batch(pe, &loss, &bi));
        const double want = plain_batch(e, &ref);
        assert_true(loss == want);
        assert_true(bi.loss == loss);
        assert_int_equal(bi.stepped, 1);
        assert_int_equal(bi.global_steps, batch + 1);
        assert_true(bi.grad_norm > 0);
        assert_true(bi.compute_ms > 0 && bi.schedule_ms >= bi.compute_ms);
        if (batch == 0 && !(fabs(loss - f64) <= 1e-6 * f64)) {
            print_error("first loss %.10g, float64 forward %.10g\n", loss, f64);
            fail();
        }
        expect_same_params(&pm, &ref);
    }
    dsz_engine_state st;
    assert_ok(dsz_engine_state_init(&st, sizeof st));
    dsz_engine *stage = NULL;
    assert_ok(dsz_pipe_stage_engine(pe, &stage));
    assert_ok(dsz_get_state(stage, &st));
    assert_int_equal(st.global_steps, 4);
    assert_int_equal(st.micro_steps, 4 * M);
    assert_ok(dsz_pipe_free(pe));
    assert_ok(dsz_engine_free(e));
    pm_free(&pm);
    pm_free(&ref);
}

static void test_failed_callback_abandons_batch(void **state) {
    (void)state;
    pm_model pm, ref;
    pm_make(&pm, LAYERS, DIMS, BATCH, 0, LAYERS, 2);
    pm_make(&ref, LAYERS, DIMS, BATCH, 0, LAYERS, 2);
    dsz_pipe_engine *pe = make_pipe(CONFIG, &pm, 1, DSZ_OK, NULL);
    dsz_pipe_engine *pr = make_pipe(CONFIG, &ref, 1, DSZ_OK, NULL);
    double loss = 0;
    assert_ok(dsz_pipe_train_batch(pe, &loss, NULL));
    assert_ok(dsz_pipe_train_batch(pr, &loss, NULL));
    pm.first_sample = ref.first_sample = M;
    pm.fail_forward_at = 2;
    pm.calls = 0;
    assert_status(dsz_pipe_train_batch(pe, &loss, NULL), DSZ_ERR_CALLBACK,
                  "stage 0 (rank 0): the forward callback returned 7 for micro-batch 2");
    assert_true(strstr(dsz_last_error(), "nothing was updated") != NULL);
    assert_int_equal(pm.calls, 2 /* loads */ + 2 /* forwards */ + 2 /* backwards */ + 1 /* load */ + 1 /* failed */);
    pm.fail_forward_at = -1;
    pm.fail_backward_at = 3;
    assert_status(dsz_pipe_train_batch(pe, &loss, NULL), DSZ_ERR_CALLBACK, "backward callback returned 9");
    pm.fail_backward_at = -1;
    for (int batch = 1; batch < 3; ++batch) {
        pm.first_sample = ref.first_sample = batch * M;
        assert_ok(dsz_pipe_train_batch(pe, &loss, NULL));
        assert_ok(dsz_pipe_train_batch(pr, &loss, NULL));
    }
    expect_same_params(&pm, &ref);
    dsz_engine *a, *b;
    dsz_engine_state sa, sb;
    assert_ok(dsz_pipe_stage_engine(pe, &a));
    assert_ok(dsz_pipe_stage_engine(pr, &b));
    assert_ok(dsz_engine_state_init(&sa, sizeof sa));
    assert_ok(dsz_engine_state_init(&sb, sizeof sb));
    assert_ok(dsz_get_state(a, &sa));
    assert_ok(dsz_get_state(b, &sb));
    assert_int_equal(sa.micro_steps, sb.micro_steps);
    assert_int_equal(sa.global_steps, 3);
    assert_ok(dsz_pipe_free(pe));
    assert_ok(dsz_pipe_free(pr));
    pm_free(&pm);
    pm_free(&ref);
}

static void test_refusals(void **state) {
    (void)state;
    pm_model pm;
    pm_make(&pm, LAYERS, DIMS, BATCH, 0, LAYERS, 2);
    make_pipe("{\"train_micro_batch_size_per_gpu\": 4, \"zero_optimization\": {\"stage\": 2}}", &pm, 1,
              DSZ_ERR_UNSUPPORTED, "stage 2 does not combine with pipeline parallelism");
    make_pipe("{\"train_micro_batch_size_per_gpu\": 4, \"zero_optimization\": {\"stage\": 3}}", &pm, 1,
              DSZ_ERR_UNSUPPORTED, "stage 3");
    make_pipe(CONFIG, &pm, 2, DSZ_ERR_INVALID_ARGUMENT, "2 pipeline stages do not divide the world size 1");
    make_pipe(CONFIG, &pm, 0, DSZ_ERR_INVALID_ARGUMENT, "pipeline.stages");
    make_pipe("{\"train_micro_batch_size_per_gpu\": 4, \"pipeline\": {\"stages\": 0.5}}", &pm, 0, DSZ_ERR_CONFIG,
              "pipeline.stages");
    dsz_pipe_engine *from_config =
        make_pipe("{\"train_micro_batch_size_per_gpu\": 4, \"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.1}},"
                  " \"pipeline\": {\"stages\": 1}}",
                  &pm, 0, DSZ_OK, NULL);
    assert_status(dsz_engine_free(pm.engine), DSZ_ERR_STATE, "belongs to a pipeline engine");
    assert_ok(dsz_pipe_free(from_config));
    dsz_pipe_options p;
    assert_ok(dsz_pipe_options_init(&p, sizeof p));
    dsz_pipe_engine *pe = NULL;
    assert_status(dsz_pipe_init(&pe, CONFIG, NULL, &p), DSZ_ERR_INVALID_ARGUMENT, "forward and backward");
    assert_status(dsz_pipe_init(&pe, CONFIG, NULL, NULL), DSZ_ERR_INVALID_ARGUMENT, "pipe");
    p.size = 4;
    assert_status(dsz_pipe_init(&pe, CONFIG, NULL, &p), DSZ_ERR_INVALID_ARGUMENT, "dsz_pipe_options.size");
    assert_status(dsz_pipe_free((dsz_pipe_engine *)&p), DSZ_ERR_INVALID_ARGUMENT, "not live");
    assert_ok(dsz_pipe_free(NULL));
    pm_free(&pm);
}

static void test_lent_engine_rules(void **state) {
    (void)state;
    pm_model pm;
    pm_make(&pm, LAYERS, DIMS, BATCH, 0, LAYERS, 2);
    pm_model bare;
    pm_make(&bare, LAYERS, DIMS, BATCH, 0, LAYERS, 2);
    dsz_init_options o;
    assert_ok(dsz_init_options_init(&o, sizeof o));
    o.log_fn = quiet_log;
    dsz_pipe_options p;
    assert_ok(dsz_pipe_options_init(&p, sizeof p));
    p.stages = 1;
    p.forward = pm_forward;
    p.backward = pm_backward;
    p.load_micro_batch = pm_load;
    p.user_data = &bare;
    dsz_pipe_engine *pe = NULL;
    assert_ok(dsz_pipe_init(&pe, CONFIG, &o, &p));
    double loss;
    assert_status(dsz_pipe_train_batch(pe, &loss, NULL), DSZ_ERR_STATE, "no parameters are registered");
    dsz_engine *e = NULL;
    assert_ok(dsz_pipe_stage_engine(pe, &e));
    assert_status(dsz_backward(e), DSZ_ERR_STATE, "dsz_backward: this engine belongs to a pipeline engine");
    assert_status(dsz_step(e, NULL), DSZ_ERR_STATE, "dsz_step");
    assert_status(dsz_engine_free(e), DSZ_ERR_STATE, "dsz_pipe_free");
    assert_ok(pm_register(&bare, e));
    assert_ok(dsz_pipe_train_batch(pe, &loss, NULL));
    assert_ok(dsz_pipe_free(pe));
    assert_status(dsz_pipe_stage_engine(pe, &e), DSZ_ERR_INVALID_ARGUMENT, "not live");
    assert_status(dsz_get_state(e, NULL), DSZ_ERR_INVALID_ARGUMENT, "not a live engine");
    pm_free(&pm);
    pm_free(&bare);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedules_match_formulas),
        cmocka_unit_test(test_schedule_by_hand),
        cmocka_unit_test(test_schedule_pairing),
        cmocka_unit_test(test_schedule_errors),
        cmocka_unit_test(test_partition_uniform),
        cmocka_unit_test(test_partition_balanced),
        cmocka_unit_test(test_partition_type_regex),
        cmocka_unit_test(test_one_stage_equals_plain_engine),
        cmocka_unit_test(test_failed_callback_abandons_batch),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_lent_engine_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
