/*
 * test_api_moe.c -- the MoE section of the C API, black-box: gate config
 * defaults, routes as DeepSpeed's dense combine_weights, dispatch / combine
 * and their backward passes against a float64 dense einsum built from those
 * routes, 16-bit tensors, the one-rank all-to-all, and refused arguments.
 */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { S = 7, E = 3, K = 2, M = 5 };

static float frand(unsigned *state) {
    *state = *state * 1103515245u + 12345u;
    return (float)((*state >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

static dsz_moe_routing *make_routing(int k, double cf, unsigned seed) {
    dsz_moe_gate_config cfg;
    assert_ok(dsz_moe_gate_config_init(&cfg, sizeof cfg));
    cfg.k = k;
    cfg.capacity_factor = cf;
    cfg.min_capacity = 0;
    cfg.seed = seed;
    float logits[S * E];
    for (int i = 0; i < S * E; ++i) logits[i] = 2.0f * frand(&seed);
    dsz_moe_routing *r = NULL;
    assert_ok(dsz_moe_gate(&r, &cfg, logits, S, E, NULL, NULL));
    return r;
}

static void test_gate_config_defaults(void **state) {
    (void)state;
    dsz_moe_gate_config cfg;
    assert_ok(dsz_moe_gate_config_init(&cfg, sizeof cfg));
    assert_int_equal(cfg.size, sizeof cfg);
    assert_int_equal(cfg.k, 1);
    assert_true(cfg.capacity_factor == 1.0 && cfg.eval_capacity_factor == 1.0);
    assert_int_equal(cfg.min_capacity, 4);
    assert_true(cfg.training && cfg.drop_tokens && cfg.use_rts && cfg.top2_2nd_expert_sampling);
    assert_int_equal(cfg.noisy_gate_policy, DSZ_MOE_NOISE_NONE);
    assert_int_equal(cfg.drop_policy, DSZ_MOE_DROP_PROBS);
    assert_int_equal(cfg.tensor_parallel_size, 1);
    assert_status(dsz_moe_gate_config_init(&cfg, 8), DSZ_ERR_INVALID_ARGUMENT, "dsz_moe_gate_config");
    dsz_moe_routing_info info;
    assert_ok(dsz_moe_routing_info_init(&info, sizeof info));
    assert_int_equal(info.size, sizeof info);
}

/* Dense DeepSpeed tensors from the routes: combine_weights [S, E, C]. */
static double *dense_combine(dsz_moe_routing *r, int64_t C) {
    int32_t expert[S * K], slot[S * K];
    float weight[S * K];
    assert_ok(dsz_moe_routing_get(r, expert, slot, weight, NULL, NULL));
    double *cw = calloc((size_t)(S * E * C) + 1, sizeof(double));
    for (int s = 0; s < S; ++s)
        for (int j = 0; j < K; ++j) {
            const int i = s * K + j;
            if (slot[i] >= 0) cw[(s * E + expert[i]) * C + slot[i]] = weight[i];
        }
    return cw;
}

static void test_dispatch_combine_against_einsum(void **state) {
    (void)state;
    dsz_moe_routing *r = make_routing(K, 0.6, 17);
    dsz_moe_routing_info info;
    assert_ok(dsz_moe_routing_info_init(&info, sizeof info));
    assert_ok(dsz_moe_routing_get_info(r, &info));
    const int64_t C = info.capacity;
    assert_int_equal(C, 3); /* ceil(7/3 * 0.6 * 2) */
    assert_true(info.dropped > 0);
    assert_int_equal(info.tokens, S);
    double *cw = dense_combine(r, C);

    const int64_t xs[2] = {S, M}, bs[3] = {E, C, M};
    test_tensor x, buf, out, y, dy, dout, dbuf, dx;
    tt_make(&x, dt_f32(), 2, xs);
    tt_make(&y, dt_f32(), 2, xs);
    tt_make(&dy, dt_f32(), 2, xs);
    tt_make(&dx, dt_f32(), 2, xs);
    tt_make(&buf, dt_f32(), 3, bs);
    tt_make(&out, dt_f32(), 3, bs);
    tt_make(&dout, dt_f32(), 3, bs);
    tt_make(&dbuf, dt_f32(), 3, bs);
    unsigned seed = 5;
    float *X = x.data, *B = buf.data, *O = out.data, *Y = y.data, *DY = dy.data, *DO = dout.data, *DB = dbuf.data,
          *DX = dx.data;
    for (int i = 0; i < S * M; ++i) X[i] = frand(&seed), DY[i] = frand(&seed);
    for (int i = 0; i < E * C * M; ++i) O[i] = frand(&seed), DB[i] = frand(&seed), B[i] = 99.0f;

    /* dispatch = einsum("sec,sm->ecm", cw != 0, x) */
    assert_ok(dsz_moe_dispatch(r, &x.t, &buf.t));
    for (int e = 0; e < E; ++e)
        for (int c = 0; c < C; ++c)
            for (int m = 0; m < M; ++m) {
                double want = 0;
                for (int s = 0; s < S; ++s) want += (cw[(s * E + e) * C + c] != 0) * X[s * M + m];
                assert_true(B[(e * C + c) * M + m] == (float)want);
            }
    /* combine = einsum("sec,ecm->sm", cw, out) */
    assert_ok(dsz_moe_combine(r, &out.t, &y.t));
    for (int s = 0; s < S; ++s)
        for (int m = 0; m < M; ++m) {
            double want = 0;
            for (int e = 0; e < E; ++e)
                for (int c = 0; c < C; ++c) want += cw[(s * E + e) * C + c] * O[(e * C + c) * M + m];
            assert_true(fabs(Y[s * M + m] - want) < 1e-6);
        }
    /* backward of combine: d_out = einsum("sec,sm->ecm", cw, dy);
     * d_weight[r] = <dy[s], out[e, c]> for kept routes */
    float dw[S * K];
    int32_t expert[S * K], slot[S * K];
    assert_ok(dsz_moe_routing_get(r, expert, slot, NULL, NULL, NULL));
    assert_ok(dsz_moe_combine_backward(r, &out.t, &dy.t, &dout.t, dw));
    for (int e = 0; e < E; ++e)
        for (int c = 0; c < C; ++c)
            for (int m = 0; m < M; ++m) {
                double want = 0;
                for (int s = 0; s < S; ++s) want += cw[(s * E + e) * C + c] * DY[s * M + m];
                assert_true(fabs(DO[(e * C + c) * M + m] - want) < 1e-6);
            }
    for (int i = 0; i < S * K; ++i) {
        double want = 0;
        if (slot[i] >= 0)
            for (int m = 0; m < M; ++m) want += (double)DY[(i / K) * M + m] * O[(expert[i] * C + slot[i]) * M + m];
        assert_true(fabs(dw[i] - want) < 1e-6);
    }
    /* backward of dispatch: d_x = einsum("sec,ecm->sm", cw != 0, d_buf) */
    assert_ok(dsz_moe_dispatch_backward(r, &dbuf.t, &dx.t));
    for (int s = 0; s < S; ++s)
        for (int m = 0; m < M; ++m) {
            double want = 0;
            for (int e = 0; e < E; ++e)
                for (int c = 0; c < C; ++c) want += (cw[(s * E + e) * C + c] != 0) * DB[(e * C + c) * M + m];
            assert_true(fabs(DX[s * M + m] - want) < 1e-6);
        }
    /* Identity experts: tokens with a surviving route come back whole
     * (renormalised weights sum to 1). */
    assert_ok(dsz_moe_combine(r, &buf.t, &y.t));
    for (int s = 0; s < S; ++s) {
        const int any = slot[s * K] >= 0 || slot[s * K + 1] >= 0;
        for (int m = 0; m < M; ++m) assert_true(fabs(Y[s * M + m] - (any ? X[s * M + m] : 0.0f)) < 1e-6);
    }

    free(cw);
    tt_free(&x), tt_free(&buf), tt_free(&out), tt_free(&y), tt_free(&dy), tt_free(&dout), tt_free(&dbuf),
        tt_free(&dx);
    assert_ok(dsz_moe_routing_free(r));
}

static void test_16bit_tensors(void **state) {
    (void)state;
    dsz_moe_routing *r = make_routing(K, 2.0, 23);
    dsz_moe_routing_info info;
    assert_ok(dsz_moe_routing_info_init(&info, sizeof info));
    assert_ok(dsz_moe_routing_get_info(r, &info));
    const int64_t C = info.capacity;
    const int64_t xs[2] = {S, M}, bs[3] = {E, C, M};
    DLDataType types[2] = {dt_bf16(), dt_f16()};
    for (int t = 0; t < 2; ++t) {
        test_tensor x, buf, y, x32, buf32, y32;
        tt_make(&x, types[t], 2, xs);
        tt_make(&buf, types[t], 3, bs);
        tt_make(&y, types[t], 2, xs);
        tt_make(&x32, dt_f32(), 2, xs);
        tt_make(&buf32, dt_f32(), 3, bs);
        tt_make(&y32, dt_f32(), 2, xs);
        /* values exactly representable in both 16-bit formats */
        uint16_t *X = x.data;
        float *X32 = x32.data;
        for (int i = 0; i < S * M; ++i) {
            const float v = (float)(i % 13 - 6) * 0.25f;
            X32[i] = v;
            uint32_t u;
            memcpy(&u, &v, 4);
            if (t == 0) X[i] = (uint16_t)(u >> 16);
            else X[i] = v == 0 ? 0 : (uint16_t)((u >> 16 & 0x8000) | ((((u >> 23) & 0xff) - 112) << 10) | ((u >> 13) & 0x3ff));
        }
        assert_ok(dsz_moe_dispatch(r, &x.t, &buf.t));
        assert_ok(dsz_moe_dispatch(r, &x32.t, &buf32.t));
        assert_ok(dsz_moe_combine(r, &buf.t, &y.t));
        assert_ok(dsz_moe_combine(r, &buf32.t, &y32.t));
        /* dispatch copies bits: the 16-bit buffer matches the fp32 one */
        const uint16_t *B = buf.data;
        const float *B32 = buf32.data;
        for (int i = 0; i < E * C * M; ++i) {
            uint32_t u;
            memcpy(&u, &B32[i], 4);
            if (t == 0) assert_int_equal(B[i], u >> 16);
            else assert_true((B[i] == 0) == (B32[i] == 0));
        }
        /* combine: one rounding of the fp32 sum */
        const uint16_t *Y = y.data;
        const float *Y32 = y32.data;
        for (int i = 0; i < S * M; ++i) {
            float v;
            uint32_t u = t == 0 ? (uint32_t)Y[i] << 16 : 0;
            if (t == 0) memcpy(&v, &u, 4);
            else {
                const int ex = (Y[i] >> 10) & 0x1f;
                const float mant = (float)(Y[i] & 0x3ff);
                v = ex ? ldexpf(1.0f + mant / 1024.0f, ex - 15) : ldexpf(mant / 1024.0f, -14);
                if (Y[i] & 0x8000) v = -v;
            }
            assert_true(fabsf(v - Y32[i]) <= fabsf(Y32[i]) * (t == 0 ? 1.0f / 128 : 1.0f / 1024) + 1e-6f);
        }
        tt_free(&x), tt_free(&buf), tt_free(&y), tt_free(&x32), tt_free(&buf32), tt_free(&y32);
    }
    assert_ok(dsz_moe_routing_free(r));
}

static void test_gate_backward_and_info(void **state) {
    (void)state;
    dsz_moe_routing *r = make_routing(1, 1.0, 31);
    float probs[S * E], d_probs[S * E], d_logits[S * E], dw[S];
    int64_t counts[E];
    for (int i = 0; i < S; ++i) dw[i] = 0.1f * (float)(i + 1);
    assert_ok(dsz_moe_routing_get(r, NULL, NULL, NULL, counts, probs));
    assert_int_equal(counts[0] + counts[1] + counts[2], S);
    assert_ok(dsz_moe_gate_backward(r, dw, 0.5, d_probs, d_logits));
    for (int s = 0; s < S; ++s) {
        double pdp = 0, row = 0;
        for (int e = 0; e < E; ++e) pdp += probs[s * E + e] * d_probs[s * E + e];
        for (int e = 0; e < E; ++e) {
            assert_true(fabs(probs[s * E + e] * (d_probs[s * E + e] - pdp) - d_logits[s * E + e]) < 1e-6);
            row += d_logits[s * E + e];
        }
        assert_true(fabs(row) < 1e-6); /* softmax: each row's gradient sums to 0 */
    }
    assert_ok(dsz_moe_gate_backward(r, NULL, 1.0, NULL, d_logits));
    assert_status(dsz_moe_gate_backward(r, NULL, NAN, NULL, d_logits), DSZ_ERR_INVALID_ARGUMENT, "d_l_aux");
    assert_ok(dsz_moe_routing_free(r));
}

static void test_one_rank_group(void **state) {
    (void)state;
    dsz_moe_group *g = NULL;
    assert_ok(dsz_moe_group_new(&g, NULL, 1, NULL));
    int32_t ep = 0, ep_rank = -1, edp = 0, edp_rank = -1;
    assert_ok(dsz_moe_group_info(g, &ep, &ep_rank, &edp, &edp_rank));
    assert_true(ep == 1 && ep_rank == 0 && edp == 1 && edp_rank == 0);
    const int64_t bs[3] = {E, 2, M};
    test_tensor a, b;
    tt_make(&a, dt_f32(), 3, bs);
    tt_make(&b, dt_f32(), 3, bs);
    for (int i = 0; i < E * 2 * M; ++i) ((float *)a.data)[i] = (float)i;
    assert_ok(dsz_moe_all_to_all(g, &a.t, &b.t));
    assert_memory_equal(a.data, b.data, sizeof(float) * E * 2 * M);
    assert_status(dsz_moe_all_to_all(g, &a.t, &a.t), DSZ_ERR_INVALID_ARGUMENT, "overlap");
    /* the gate accepts the group (no collective with drop_tokens on) */
    dsz_moe_gate_config cfg;
    assert_ok(dsz_moe_gate_config_init(&cfg, sizeof cfg));
    cfg.min_capacity = 0;
    cfg.drop_tokens = 0;
    float logits[4 * E] = {0};
    dsz_moe_routing *r = NULL;
    assert_ok(dsz_moe_gate(&r, &cfg, logits, 4, E, NULL, g));
    assert_ok(dsz_moe_routing_free(r));
    tt_free(&a), tt_free(&b);
    assert_ok(dsz_moe_group_free(g));
    assert_status(dsz_moe_group_free(g), DSZ_ERR_INVALID_ARGUMENT, "not live");
    assert_ok(dsz_moe_group_free(NULL));
    assert_status(dsz_moe_group_new(&g, NULL, 2, NULL), DSZ_ERR_INVALID_ARGUMENT, "expert-parallel size 2");
    assert_null(g);
}

static void test_engine_group(void **state) {
    (void)state;
    dsz_engine *e = engine_from_json("{\"train_micro_batch_size_per_gpu\": 1, "
                                     "\"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.1}}}");
    dsz_moe_group *g = NULL;
    assert_ok(dsz_moe_group_new(&g, e, 1, NULL));
    int32_t ep = 0, edp = 0;
    assert_ok(dsz_moe_group_info(g, &ep, NULL, &edp, NULL));
    assert_true(ep == 1 && edp == 1);
    assert_ok(dsz_moe_group_free(g));
    int fake_comm = 0;
    assert_status(dsz_moe_group_new(&g, e, 1, &fake_comm), DSZ_ERR_INVALID_ARGUMENT, "not both");
    assert_status(dsz_moe_group_new(&g, e, 0, NULL), DSZ_ERR_INVALID_ARGUMENT, "ep_size");
    assert_ok(dsz_engine_free(e));
    assert_status(dsz_moe_group_new(&g, e, 1, NULL), DSZ_ERR_INVALID_ARGUMENT, "not a live engine");
    assert_null(g);
}

/* One rank: an expert group with ep_size 1 trains exactly as an ordinary
 * group would, saves and resumes; what cannot work is refused. */
static void test_expert_group_one_rank(void **state) {
    (void)state;
    const char *cfg = "{\"train_micro_batch_size_per_gpu\": 1, \"gradient_clipping\": 0.5, "
                      "\"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}, "
                      "\"zero_optimization\": {\"stage\": 2}}";
    toy_model plain, moe;
    toy_make(&plain, dt_f32());
    toy_make(&moe, dt_f32());
    dsz_engine *a = engine_from_json(cfg), *b = engine_from_json(cfg);
    dsz_param_group ga[2] = {{"dense", 0, 0, 0, 0}, {"more", 0, 0, 0, 0}};
    dsz_param_group gb[2] = {{"dense", 0, 0, 0, 0}, {"experts", DSZ_GROUP_EXPERT, 1, 0, 0}};
    dsz_param pa[2] = {{"w", &plain.w.t, 0, 0}, {"b", &plain.b.t, 1, 0}};
    dsz_param pb[2] = {{"w", &moe.w.t, 0, 0}, {"b", &moe.b.t, 1, 0}};
    assert_ok(dsz_register_params(a, pa, 2, ga, 2));
    assert_ok(dsz_register_params(b, pb, 2, gb, 2));
    dsz_step_info info;
    assert_ok(dsz_step_info_init(&info, sizeof info));
    for (int k = 0; k < 5; ++k) {
        toy_micro_step(a, &plain, k, &info);
        toy_micro_step(b, &moe, k, &info);
    }
    assert_memory_equal(plain.w.data, moe.w.data, 15 * sizeof(float));
    assert_memory_equal(plain.b.data, moe.b.data, 7 * sizeof(float));

    char dir[] = "/tmp/dsz_api_moe_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_ok(dsz_save(b, dir, "t", NULL));
    toy_model again;
    toy_make(&again, dt_f32());
    dsz_engine *c = engine_from_json(cfg);
    dsz_param pc[2] = {{"w", &again.w.t, 0, 0}, {"b", &again.b.t, 1, 0}};
    assert_ok(dsz_register_params(c, pc, 2, gb, 2));
    assert_ok(dsz_load(c, dir, "t", 0, NULL));
    for (int k = 5; k < 8; ++k) {
        toy_micro_step(b, &moe, k, &info);
        toy_micro_step(c, &again, k, &info);
    }
    assert_memory_equal(again.w.data, moe.w.data, 15 * sizeof(float));
    assert_memory_equal(again.b.data, moe.b.data, 7 * sizeof(float));
    /* An expert checkpoint does not load into ordinary groups. */
    assert_status(dsz_load(a, dir, "t", 0, NULL), DSZ_ERR_CHECKPOINT, "holds MoE expert parameters in the checkpoint");
    run_sh("rm -rf %s", dir);
    assert_ok(dsz_engine_free(a));
    assert_ok(dsz_engine_free(b));
    assert_ok(dsz_engine_free(c));

    /* Refused: ep_size not dividing the world, ep_size without the flag, the flag without ep_size. */
    dsz_param_group bad[3][2] = {{{"dense", 0, 0, 0, 0}, {"experts", DSZ_GROUP_EXPERT, 2, 0, 0}},
                                 {{"dense", 0, 0, 0, 0}, {"experts", 0, 2, 0, 0}},
                                 {{"dense", 0, 0, 0, 0}, {"experts", DSZ_GROUP_EXPERT, 0, 0, 0}}};
    const char *why[3] = {"ep_size 2 does not divide the world size 1", "without DSZ_GROUP_EXPERT",
                          "an expert group needs ep_size >= 1"};
    for (int i = 0; i < 3; ++i) {
        dsz_engine *e = engine_from_json(cfg);
        assert_status(dsz_register_params(e, pa, 2, bad[i], 2), DSZ_ERR_INVALID_ARGUMENT, why[i]);
        assert_ok(dsz_engine_free(e));
    }
    toy_free(&plain);
    toy_free(&moe);
    toy_free(&again);
}

static void test_refused_arguments(void **state) {
    (void)state;
    dsz_moe_routing *r = make_routing(K, 1.0, 3);
    dsz_moe_routing_info info;
    assert_ok(dsz_moe_routing_info_init(&info, sizeof info));
    assert_ok(dsz_moe_routing_get_info(r, &info));
    const int64_t C = info.capacity;
    const int64_t xs[2] = {S, M}, bad_xs[2] = {S + 1, M}, bs[3] = {E, C, M}, bad_bs[3] = {E, C + 1, M};
    test_tensor x, bx, buf, bbuf, hbuf;
    tt_make(&x, dt_f32(), 2, xs);
    tt_make(&bx, dt_f32(), 2, bad_xs);
    tt_make(&buf, dt_f32(), 3, bs);
    tt_make(&bbuf, dt_f32(), 3, bad_bs);
    tt_make(&hbuf, dt_bf16(), 3, bs);
    assert_status(dsz_moe_dispatch(r, &bx.t, &buf.t), DSZ_ERR_SHAPE, "tokens");
    assert_status(dsz_moe_dispatch(r, &x.t, &bbuf.t), DSZ_ERR_SHAPE, "expected [experts, capacity, hidden]");
    assert_status(dsz_moe_dispatch(r, &x.t, &hbuf.t), DSZ_ERR_DTYPE, "bfloat16");
    assert_status(dsz_moe_combine(r, &buf.t, NULL), DSZ_ERR_INVALID_ARGUMENT, "out");
    x.t.device.device_type = kDLCUDA;
    assert_status(dsz_moe_dispatch(r, &x.t, &buf.t), DSZ_ERR_UNSUPPORTED, "GPU backend");
    x.t.device.device_type = kDLCPU;

    dsz_moe_gate_config cfg;
    assert_ok(dsz_moe_gate_config_init(&cfg, sizeof cfg));
    float logits[S * E] = {0};
    dsz_moe_routing *r2 = (dsz_moe_routing *)1;
    cfg.noisy_gate_policy = 7;
    assert_status(dsz_moe_gate(&r2, &cfg, logits, S, E, NULL, NULL), DSZ_ERR_INVALID_ARGUMENT, "noisy_gate_policy");
    assert_null(r2);
    cfg.noisy_gate_policy = DSZ_MOE_NOISE_NONE;
    cfg.min_capacity = 8;
    assert_status(dsz_moe_gate(&r2, &cfg, logits, S, E, NULL, NULL), DSZ_ERR_INVALID_ARGUMENT, "min_capacity");
    cfg.size = 4;
    assert_status(dsz_moe_gate(&r2, &cfg, logits, S, E, NULL, NULL), DSZ_ERR_INVALID_ARGUMENT, "size");

    assert_ok(dsz_moe_routing_free(r));
    assert_status(dsz_moe_dispatch(r, &x.t, &buf.t), DSZ_ERR_INVALID_ARGUMENT, "not live");
    assert_status(dsz_moe_routing_free(r), DSZ_ERR_INVALID_ARGUMENT, "not live");
    assert_ok(dsz_moe_routing_free(NULL));
    tt_free(&x), tt_free(&bx), tt_free(&buf), tt_free(&bbuf), tt_free(&hbuf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_config_defaults),
        cmocka_unit_test(test_dispatch_combine_against_einsum),
        cmocka_unit_test(test_16bit_tensors),
        cmocka_unit_test(test_gate_backward_and_info),
        cmocka_unit_test(test_one_rank_group),
        cmocka_unit_test(test_engine_group),
        cmocka_unit_test(test_expert_group_one_rank),
        cmocka_unit_test(test_refused_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
