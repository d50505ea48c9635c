/*
 * test_config_errors.cpp -- configs that must be refused: each with the key
 * path the message must start with and the reason it must give.
 *
 * Every config here carries a micro-batch size through the host (micro()),
 * so each case fails for its own reason only.
 */
#include <vector>

#include "config_testing.h"

using namespace cfgtest;

namespace {

struct Bad {
    const char *config;
    const char *path;
    std::vector<const char *> reason;
};

const Bad kTypesAndRanges[] = {
    {R"({"zero_optimization": {"stage": "four"}})",
     "zero_optimization.stage",
     {"expected an integer 0-3, got \"four\""}},
    {R"({"zero_optimization": {"stage": 4}})",
     "zero_optimization.stage",
     {"expected an integer 0-3, got 4"}},
    {R"({"zero_optimization": {"reduce_bucket_size": 1.5}})",
     "zero_optimization.reduce_bucket_size",
     {"got a number with a fractional part: 1.5"}},
    {R"({"zero_optimization": {"reduce_bucket_size": -5}})",
     "zero_optimization.reduce_bucket_size",
     {"expected an integer >= 0, got -5"}},
    {R"({"zero_optimization": {"reduce_bucket_size": "5e8"}})",
     "zero_optimization.reduce_bucket_size",
     {"expected an integer >= 0, got \"5e8\""}},
    {R"({"zero_optimization": {"sub_group_size": 1e30}})",
     "zero_optimization.sub_group_size",
     {"out of range"}},
    {R"({"fp16": {"enabled": "maybe"}})", "fp16.enabled", {"expected a boolean", "got \"maybe\""}},
    {R"({"fp16": {"loss_scale": true}})", "fp16.loss_scale", {"expected a number, got true"}},
    {R"({"fp16": {"loss_scale": -1}})", "fp16.loss_scale", {"must be >= 0"}},
    {R"({"fp16": {"loss_scale_window": 0}})", "fp16.loss_scale_window", {"must be > 0", "dynamic"}},
    {R"({"fp16": {"min_loss_scale": 0}})", "fp16.min_loss_scale", {"must be > 0", "dynamic"}},
    {R"({"fp16": {"hysteresis": 3000000000}})", "fp16.hysteresis", {"fits in 32 bits"}},
    {R"({"wall_clock_breakdown": "yes"})",
     "wall_clock_breakdown",
     {"expected true or false, got \"yes\""}},
    {R"({"gradient_clipping": "1.0"})", "gradient_clipping", {"expected a number, got \"1.0\""}},
    {R"({"gradient_predivide_factor": 0})", "gradient_predivide_factor", {"expected a number > 0"}},
    {R"({"steps_per_print": -1})", "steps_per_print", {"expected an integer >= 0, got -1"}},
    {R"({"zero_optimization": "yes"})", "zero_optimization", {"expected an object, got \"yes\""}},
    {R"({"optimizer": {"type": "Adam", "params": {"betas": [0.9]}}})",
     "optimizer.params.betas",
     {"expected an array of 2 numbers"}},
    {R"({"optimizer": {"type": "Adam", "params": {"betas": [0.9, "0.99"]}}})",
     "optimizer.params.betas[1]",
     {"expected a number, got \"0.99\""}},
    {R"({"scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0, "cycle_max_lr": 1,
        "cycle_second_step_size": -1}}})",
     "scheduler.params.cycle_second_step_size",
     {"expected an integer >= 0, got -1"}},
    {R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_max_lr": [1e-3, 1e-4]}}})",
     "scheduler.params.warmup_max_lr",
     {"per-parameter-group lists"}},
    {R"({"tensor_parallel": {"tp_size": 0}})",
     "tensor_parallel.tp_size",
     {"expected an integer >= 1, got 0"}},
};

const Bad kEnums[] = {
    {R"({"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "gpu"}}})",
     "zero_optimization.offload_optimizer.device",
     {"expected one of \"none\", \"cpu\", \"nvme\"", "got \"gpu\""}},
    {R"({"zero_optimization": {"stage": 3, "offload_param": {"device": "CPU"}}})",
     "zero_optimization.offload_param.device",
     {"got \"CPU\"", "did you mean \"cpu\"?"}},
    {R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_type": "cosine"}}})",
     "scheduler.params.warmup_type",
     {"expected one of \"log\", \"linear\"", "got \"cosine\""}},
    {R"({"checkpoint": {"tag_validation": "strict"}})",
     "checkpoint.tag_validation",
     {"\"Warn\", \"Ignore\", \"Fail\" (any case)", "got \"strict\""}},
    {R"({"communication_data_type": "fp8"})",
     "communication_data_type",
     {"\"fp16\", \"bf16\", \"fp32\""}},
    {R"({"gradient_allreduce_op": "max"})",
     "gradient_allreduce_op",
     {"\"mean\", \"sum\"", "got \"max\""}},
    {R"({"log_level": "verbose"})",
     "log_level",
     {"\"debug\", \"info\", \"warning\", \"error\", \"critical\""}},
    {R"({"data_types": {"grad_accum_dtype": "fp64"}})",
     "data_types.grad_accum_dtype",
     {"\"fp32\"", "\"bf16\""}},
};

const Bad kUnknownKeys[] = {
    {R"({"zero_optimization": {"stage": 3, "stage3_param_persitance_threshold": 10}})",
     "zero_optimization.stage3_param_persitance_threshold",
     {"unknown key", "did you mean \"stage3_param_persistence_threshold\"?"}},
    {R"({"zero_optimization": {"grad_hooks": true}})",
     "zero_optimization.grad_hooks",
     {"unknown key"}},
    {R"({"fp16": {"loss_scale_windw": 100}})",
     "fp16.loss_scale_windw",
     {"unknown key", "did you mean \"loss_scale_window\"?"}},
    {R"({"bf16": {"check_overflow": true}})",
     "bf16.check_overflow",
     {"unknown key", "refuses unknown keys in bf16"}},
    {R"({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memmory": true}}})",
     "zero_optimization.offload_optimizer.pin_memmory",
     {"did you mean \"pin_memory\"?"}},
    {R"({"tensor_parallel": {"tp_sise": 2}})",
     "tensor_parallel.tp_sise",
     {"did you mean \"tp_size\"?"}},
    {R"({"optimizer": {"type": "Adam", "params": {"betas1": 0.9}}})",
     "optimizer.params.betas1",
     {"did you mean \"betas\"?", "Adam takes lr, betas, eps"}},
    {R"({"optimizer": {"type": "Lion", "params": {"eps": 1e-8}}})",
     "optimizer.params.eps",
     {"unknown key", "Lion takes lr, betas, weight_decay"}},
    {R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_max": 0.1}}})",
     "scheduler.params.warmup_max",
     {"did you mean \"warmup_max_lr\"?", "WarmupLR takes"}},
    {R"({"scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0, "cycle_max_lr": 1, "warmup_type": "log"}}})",
     "scheduler.params.warmup_type",
     {"unknown key", "OneCycle takes"}},
};

const Bad kDuplicatesAliasesDeprecations[] = {
    {R"({"fp16": {"enabled": true, "enabled": false}})", "fp16.enabled", {"duplicate key"}},
    {R"({"train_micro_batch_size_per_gpu": 1, "train_micro_batch_size_per_gpu": 2})",
     "train_micro_batch_size_per_gpu",
     {"duplicate key"}},
    {R"({"zero_optimization": {"stage3_prefetch_bucket_size": 1, "prefetch_bucket_size": 2}})",
     "zero_optimization.stage3_prefetch_bucket_size",
     {"given twice", "alias \"prefetch_bucket_size\""}},
    {R"({"zero_optimization": {"stage": 2, "cpu_offload": true, "offload_optimizer": {"device": "cpu"}}})",
     "zero_optimization.cpu_offload",
     {"deprecated", "\"offload_optimizer\" is given too"}},
    {R"({"zero_optimization": {"stage": 3, "cpu_offload_param": true, "offload_param": {"device": "cpu"}}})",
     "zero_optimization.cpu_offload_param",
     {"deprecated", "\"offload_param\""}},
    {R"({"zero_optimization": {"stage3_gather_fp16_weights_on_model_save": true,
        "gather_16bit_weights_on_model_save": true}})",
     "zero_optimization.stage3_gather_fp16_weights_on_model_save",
     {"deprecated", "given too"}},
    {R"({"bf16": {"enabled": true}, "bfloat16": {"enabled": true}})",
     "bfloat16",
     {"deprecated", "keep only \"bf16\""}},
    {R"({"aio": {"thread_count": 2, "intra_op_parallelism": 2}})",
     "aio.thread_count",
     {"deprecated name of \"intra_op_parallelism\""}},
    {R"({"aio": {}, "zero_optimization": {"aio": {}}})",
     "zero_optimization.aio",
     {"top-level \"aio\""}},
};

const Bad kCrossField[] = {
    {R"({"fp16": {"enabled": true}, "bf16": {"enabled": true}})",
     "bf16.enabled",
     {"cannot both be enabled"}},
    {R"({"optimizer": {"type": "Lamb"}, "fp16": {"loss_scale": 128}})",
     "fp16.loss_scale",
     {"must be 0", "Lamb", "even when fp16 is off"}},
    {R"({"optimizer": {"type": "Adam", "params": {"max_grad_norm": 1.0}}})",
     "optimizer.params.max_grad_norm",
     {"gradient_clipping"}},
    {R"({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "ratio": 0.5}}})",
     "zero_optimization.offload_optimizer.ratio",
     {"needs ZeRO stage 3, stage is 2"}},
    {R"({"zero_optimization": {"stage": 3, "offload_optimizer": {"ratio": 1.5}}})",
     "zero_optimization.offload_optimizer.ratio",
     {"expected a number 0-1"}},
    {R"({"zero_optimization": {"legacy_stage1": true}})",
     "zero_optimization.legacy_stage1",
     {"removed"}},
    {R"({"zero_optimization": {"stage": 1}, "optimizer": {"type": "SGD"}})",
     "optimizer.type",
     {"\"SGD\"", "zero_allow_untested_optimizer"}},
    {R"({"zero_optimization": {"stage": 2}, "optimizer": {"type": "OneBitAdam"}})",
     "optimizer.type",
     {"cannot be used with ZeRO"}},
    {R"({"zero_optimization": {"stage": 3}, "gradient_allreduce_op": "sum"})",
     "gradient_allreduce_op",
     {"stage 3"}},
    {R"({"zero_optimization": {"stage": 2, "allgather_bucket_size": 5}})",
     "zero_optimization.allgather_bucket_size",
     {"multiple of 2", "got 5"}},
    {R"({"activation_checkpointing": {"partition_activations": true, "contiguous_memory_optimization": true}})",
     "activation_checkpointing.contiguous_memory_optimization",
     {"number_checkpoints"}},
    {R"({"activation_checkpointing": {"contiguous_memory_optimization": true, "number_checkpoints": 2}})",
     "activation_checkpointing.contiguous_memory_optimization",
     {"partition_activations"}},
    {R"({"fp16": {"enabled": true, "fp16_master_weights_and_grads": true}})",
     "fp16.fp16_master_weights_and_grads",
     {"needs ZeRO stage 1-3"}},
    {R"({"bf16": {"enabled": true, "bf16_master_weights_and_grads": true}, "zero_optimization": {"stage": 2}})",
     "bf16.bf16_master_weights_and_grads",
     {"offload_optimizer"}},
    {R"({"bf16": {"enabled": true, "bf16_optimizer_states": true}, "zero_optimization": {"stage": 3}})",
     "bf16.bf16_optimizer_states",
     {"bf16_master_weights_and_grads"}},
    {R"({"bf16": {"enabled": true}, "data_types": {"grad_accum_dtype": "fp32"}})",
     "data_types.grad_accum_dtype",
     {"needs ZeRO stage 1-3"}},
    {R"({"amp": {"enabled": true}, "zero_optimization": {"stage": 1}})", "amp.enabled", {"ZeRO"}},
};

const Bad kTypes[] = {
    {R"({"optimizer": {"type": "sgd"}})",
     "optimizer.type",
     {"\"sgd\" is not a supported optimizer", "did you mean \"SGD\"?", "supported: Adam, AdamW"}},
    {R"({"optimizer": {"type": "RMSprop"}})",
     "optimizer.type",
     {"torch.optim.RMSprop is not implemented"}},
    {R"({"optimizer": {"type": "MuAdam"}})", "optimizer.type", {"mup"}},
    {R"({"optimizer": {"params": {"lr": 0.1}}})", "optimizer.type", {"missing"}},
    {R"({"optimizer": {"type": "Adam", "params": {"amsgrad": true}}})",
     "optimizer.params.amsgrad",
     {"supports only false"}},
    {R"({"scheduler": {"type": "StepLR", "params": {"step_size": 10}}})",
     "scheduler.type",
     {"torch.optim.lr_scheduler.StepLR", "only DeepSpeed's schedules"}},
    {R"({"scheduler": {"type": "warmuplr"}})", "scheduler.type", {"did you mean \"WarmupLR\"?"}},
    {R"({"scheduler": {"params": {}}})", "scheduler.type", {"missing"}},
    {R"({"scheduler": {"type": "WarmupDecayLR", "params": {"warmup_num_steps": 10}}})",
     "scheduler.params.total_num_steps",
     {"missing", "WarmupDecayLR requires it"}},
    {R"({"scheduler": {"type": "WarmupCosineLR"}})",
     "scheduler.params.total_num_steps",
     {"missing"}},
    {R"({"scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.1}}})",
     "scheduler.params.cycle_max_lr",
     {"missing", "OneCycle"}},
};

const Bad kSyntax[] = {
    {"{\n  \"fp16\": {\"enabled\": true}\n  \"bf16\": {}\n}",
     "config",
     {"not valid JSON at line 3, column 3"}},
    {"{\"fp16\": /* never closed",
     "config",
     {"comment opened at line 1, column 10 is never closed"}},
    {"[1, 2]", "config", {"expected a JSON object at the top level, got an array"}},
    {"   ", "config", {"empty"}},
};

void check_all(const Bad *cases, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        std::string m = refusal(cases[i].config);
        std::string path = cases[i].path;
        if (m.compare(0, path.size() + 2, path + ": ") != 0)
            fail_msg("case %zu: message does not start with \"%s: \": %s", i, path.c_str(),
                     m.c_str());
        for (const char *part : cases[i].reason)
            if (!contains(m, part))
                fail_msg("case %zu: message lacks \"%s\": %s", i, part, m.c_str());
    }
}

#define CHECK_ALL(table) check_all(table, sizeof(table) / sizeof(table[0]))

void wrong_types_and_ranges(void **) { CHECK_ALL(kTypesAndRanges); }
void values_outside_an_enum(void **) { CHECK_ALL(kEnums); }
void unknown_keys_in_strict_sections(void **) { CHECK_ALL(kUnknownKeys); }
void duplicates_aliases_and_deprecated_keys(void **) { CHECK_ALL(kDuplicatesAliasesDeprecations); }
void settings_that_contradict_each_other(void **) { CHECK_ALL(kCrossField); }
void unsupported_optimizer_and_scheduler_types(void **) { CHECK_ALL(kTypes); }
void malformed_json(void **) { CHECK_ALL(kSyntax); }

void bad_host_values(void **) {
    std::string m = refusal("{}", host(1, "{\"learning_rate\": 1e-3,}x"));
    assert_true(contains(m, "auto_values: not valid JSON at line 1"));
    m = refusal("{}", host(1, "[1]"));
    assert_true(contains(m, "auto_values: expected a JSON object"));
    m = refusal("{}", host(1, R"({"lr": 1, "lr": 2})"));
    assert_true(contains(m, "auto_values.lr: duplicate key"));
    m = refusal(R"({"zero_optimization": {"reduce_bucket_size": "auto"}})",
                host(1, R"({"train_micro_batch_size_per_gpu": 1, "hidden_size": 0.5})"));
    assert_true(contains(m, "auto_values.hidden_size: expected an integer >= 1, got 0.5"));
    /* a wrong value from the host is reported at the config key, with its source */
    expect_refusal(R"({"optimizer": {"type": "Adam", "params": {"lr": "auto"}}})",
                   "optimizer.params.lr",
                   {"expected a number, got \"fast\"", "trainer argument learning_rate"},
                   host(1, R"({"train_micro_batch_size_per_gpu": 1, "learning_rate": "fast"})"));
    m = refusal("{}", host(0), DSZ_ERR_INVALID_ARGUMENT);
    assert_true(contains(m, "world_size: must be >= 1, got 0"));
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wrong_types_and_ranges),
        cmocka_unit_test(values_outside_an_enum),
        cmocka_unit_test(unknown_keys_in_strict_sections),
        cmocka_unit_test(duplicates_aliases_and_deprecated_keys),
        cmocka_unit_test(settings_that_contradict_each_other),
        cmocka_unit_test(unsupported_optimizer_and_scheduler_types),
        cmocka_unit_test(malformed_json),
        cmocka_unit_test(bad_host_values),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
