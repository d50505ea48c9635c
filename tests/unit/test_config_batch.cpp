/*
 * test_config_batch.cpp -- DeepSpeed's batch-size resolution (behaviour spec
 * §1.4): the seven cases at world sizes 1, 2 and 4, and the combinations it
 * refuses, with the arithmetic in the message.
 */
#include "config_testing.h"

using namespace cfgtest;

namespace {

std::string batch_config(long tb, long mb, long ga) {
    std::string out = "{";
    auto put = [&](const char *key, long v) {
        if (v == 0) return;
        if (out.size() > 1) out += ", ";
        out += std::string("\"") + key + "\": " + std::to_string(v);
    };
    put("train_batch_size", tb);
    put("train_micro_batch_size_per_gpu", mb);
    put("gradient_accumulation_steps", ga);
    return out + "}";
}

/* 0 in the arguments means "key absent". */
void expect_batch(long tb, long mb, long ga, int world, long want_tb, long want_mb, long want_ga) {
    dsz::Config c = parse(batch_config(tb, mb, ga), host(world)).config;
    if (c.train_batch_size != want_tb || c.train_micro_batch_size_per_gpu != want_mb ||
        c.gradient_accumulation_steps != want_ga || c.world_size != world)
        fail_msg("tb=%ld mb=%ld ga=%ld world=%d: got %lld/%lld/%lld, want %ld/%ld/%ld", tb, mb, ga,
                 world, (long long)c.train_batch_size, (long long)c.train_micro_batch_size_per_gpu,
                 (long long)c.gradient_accumulation_steps, want_tb, want_mb, want_ga);
}

void the_seven_cases_at_each_world_size(void **) {
    for (int w : {1, 2, 4}) {
        const long mb = 2, ga = 3, tb = mb * ga * w;
        expect_batch(tb, mb, ga, w, tb, mb, ga);     /* 1. all three */
        expect_batch(tb, mb, 0, w, tb, mb, ga);      /* 2. tb, mb -> ga = tb / mb / w */
        expect_batch(tb, 0, ga, w, tb, mb, ga);      /* 3. tb, ga -> mb = tb / w / ga */
        expect_batch(0, mb, ga, w, tb, mb, ga);      /* 4. mb, ga -> tb = mb * ga * w */
        expect_batch(8L * w, 0, 0, w, 8L * w, 8, 1); /* 5. tb -> ga = 1, mb = tb / w */
        expect_batch(0, mb, 0, w, mb * w, mb, 1);    /* 6. mb -> tb = mb * w, ga = 1 */
        for (long only_ga : {0L, ga})                /* 7. nothing, or only ga */
            expect_refusal(batch_config(0, 0, only_ga), "train_micro_batch_size_per_gpu",
                           {"missing", "train_batch_size", "auto_values"}, host(w));
    }
    expect_refusal(batch_config(0, 0, 3), "train_micro_batch_size_per_gpu",
                   {"gradient_accumulation_steps alone"}, host(1));
}

void product_mismatch_shows_the_arithmetic(void **) {
    expect_refusal(batch_config(33, 17, 2), "train_batch_size",
                   {"train_batch_size (33) != train_micro_batch_size_per_gpu (17) * "
                    "gradient_accumulation_steps (2) "
                    "* world size (2) = 68"},
                   host(2));
    /* derived by integer division: 10 / 4 / 1 = 2, and 4 * 2 * 1 != 10 */
    expect_refusal(batch_config(10, 4, 0), "train_batch_size",
                   {"!= train_micro_batch_size_per_gpu (4) * gradient_accumulation_steps (2) * "
                    "world size (1) = 8",
                    "integer division", "multiple of train_micro_batch_size_per_gpu * world size"},
                   host(1));
    expect_refusal(batch_config(7, 0, 2), "train_batch_size",
                   {"= 6", "multiple of gradient_accumulation_steps"}, host(1));
    expect_refusal(batch_config(10, 0, 0), "train_batch_size",
                   {"= 8", "multiple of the world size"}, host(4));
    expect_refusal(batch_config(64, 2, 8), "train_batch_size", {"world size (2) = 32"}, host(2));
}

void derived_zero_is_refused(void **) {
    expect_refusal(batch_config(4, 4, 0), "gradient_accumulation_steps",
                   {"greater than 0",
                    "train_batch_size (4) // train_micro_batch_size_per_gpu (4) // world size (2)"},
                   host(2));
    expect_refusal(batch_config(2, 0, 4), "train_micro_batch_size_per_gpu", {"greater than 0"},
                   host(1));
    expect_refusal(batch_config(1, 0, 0), "train_micro_batch_size_per_gpu",
                   {"train_batch_size (1) // world size (2) = 0"}, host(2));
}

void given_values_must_be_positive_integers(void **) {
    expect_refusal(R"({"train_batch_size": 0, "train_micro_batch_size_per_gpu": 1})",
                   "train_batch_size", {"has to be greater than 0, got 0"}, host(1));
    expect_refusal(R"({"train_micro_batch_size_per_gpu": -2})", "train_micro_batch_size_per_gpu",
                   {"greater than 0, got -2"}, host(1));
    expect_refusal(R"({"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 0})",
                   "gradient_accumulation_steps", {"greater than 0, got 0"}, host(1));
    expect_refusal(R"({"train_batch_size": 2.5})", "train_batch_size",
                   {"expected an integer, got a number with a fractional part: 2.5"}, host(1));
    expect_refusal(R"({"train_micro_batch_size_per_gpu": "8"})", "train_micro_batch_size_per_gpu",
                   {"expected an integer, got \"8\""}, host(1));
    /* whole floats are integers; null is "not set" */
    dsz::Config c =
        parse(R"({"train_batch_size": 8.0, "gradient_accumulation_steps": null})", host(2)).config;
    assert_int_equal(c.train_batch_size, 8);
    assert_int_equal(c.train_micro_batch_size_per_gpu, 4);
    assert_int_equal(c.gradient_accumulation_steps, 1);
}

void host_values_fill_missing_batch_keys(void **) {
    /* a path value fills a key the config leaves out */
    dsz::Config c = parse(R"({"gradient_accumulation_steps": 2})",
                          host(2, R"({"train_micro_batch_size_per_gpu": 3})"))
                        .config;
    assert_int_equal(c.train_batch_size, 12);
    /* trainer names too: micro and steps, and the trainer's train_batch_size */
    c = parse("{}",
              host(4, R"({"per_device_train_batch_size": 2, "gradient_accumulation_steps": 5})"))
            .config;
    assert_int_equal(c.train_micro_batch_size_per_gpu, 2);
    assert_int_equal(c.gradient_accumulation_steps, 5);
    assert_int_equal(c.train_batch_size, 40);
    /* "auto" train_batch_size with no host value is derived, as the trainer would */
    c = parse(R"({"train_batch_size": "auto", "train_micro_batch_size_per_gpu": 3})", host(2))
            .config;
    assert_int_equal(c.train_batch_size, 6);
    /* values given in the config win; a host value that contradicts them fails loudly */
    expect_refusal(R"({"train_batch_size": 32, "gradient_accumulation_steps": 4})",
                   "train_batch_size",
                   {"= 8", "train_micro_batch_size_per_gpu came from auto_values"}, micro(2));
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_seven_cases_at_each_world_size),
        cmocka_unit_test(product_mismatch_shows_the_arithmetic),
        cmocka_unit_test(derived_zero_is_refused),
        cmocka_unit_test(given_values_must_be_positive_integers),
        cmocka_unit_test(host_values_fill_missing_batch_keys),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
