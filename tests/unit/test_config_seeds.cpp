/*
 * test_config_seeds.cpp -- every config of tests/fixtures/seed-configs loads
 * with the host values a real host would give, refuses to load without them
 * with a message that names what is missing, and survives config_to_json.
 */
#include <filesystem>
#include <map>

#include "config_testing.h"

using namespace cfgtest;

namespace {

/* What a Hugging Face trainer would pass (per_device batch 4, GAS 2). */
const char *const kTrainer =
    R"({"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "learning_rate": 3e-4,
        "adam_beta1": 0.9, "adam_beta2": 0.95, "adam_epsilon": 1e-8, "weight_decay": 0.01,
        "max_grad_norm": 0.5, "warmup_steps": 100, "num_training_steps": 1000,
        "fp16": false, "bf16": true, "hidden_size": 1024})";

/* The host each seed needs; seeds not listed get micro(4) at world size 1. */
dsz::HostValues host_for(const std::string &name) {
    static const std::map<std::string, dsz::HostValues> hosts = {
        {"batch_2048.json", host(8)}, /* 2048 = 4 * 64 * 8 */
        {"pipeline.json", host(4)},   /* 64 = 2 * 8 * 4 */
        {"pipeline_zero1.json", host(1)},
        {"principle_example.json", host(1)}, /* micro derived: 32 / 4 = 8 */
        {"full_structure_auto.json", host(2, kTrainer)},
        {"llama_zero2_offload_auto.json", host(1, kTrainer)},
        {"zero3_auto.json", host(1, kTrainer)},
    };
    auto it = hosts.find(name);
    return it == hosts.end() ? micro(4) : it->second;
}

std::vector<std::string> seed_names() {
    std::vector<std::string> names;
    for (const auto &e :
         std::filesystem::directory_iterator(std::string(DSZ_FIXTURE_DIR) + "/seed-configs"))
        if (e.path().extension() == ".json") names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

dsz::Config load(const char *name) { return parse(fixture(name), host_for(name)).config; }

void every_seed_loads_and_round_trips(void **) {
    std::vector<std::string> names = seed_names();
    assert_int_equal(names.size(), 21);
    for (const std::string &name : names) {
        dsz::HostValues h = host_for(name);
        dsz::ParseResult first = parse(fixture(name), h);
        std::string resolved = dsz::config_to_json(first.config);
        dsz::ParseResult second = parse(resolved, h);
        if (dsz::config_to_json(second.config) != resolved)
            fail_msg("%s: config_to_json does not round-trip:\n%s\n---\n%s", name.c_str(),
                     resolved.c_str(), dsz::config_to_json(second.config).c_str());
        assert_int_equal(second.config.world_size, first.config.world_size);
    }
}

void fragments_name_the_missing_batch_keys(void **) {
    for (const char *name :
         {"activation_checkpointing.json", "bf16.json", "fp16_dynamic.json",
          "fp16_overflow_tuning.json", "memory_breakdown.json", "moe_expert_parallel.json",
          "scheduler_warmup_decay.json", "tensor_parallel.json", "zero1.json", "zero2_buckets.json",
          "zero2_offload_cpu.json", "zero3_offload_cpu.json", "zero_inference.json",
          "zero_infinity_nvme.json"}) {
        std::string m = refusal(fixture(name), host(1));
        for (const char *part :
             {"train_micro_batch_size_per_gpu: missing", "train_batch_size", "auto_values"})
            if (!contains(m, part)) fail_msg("%s: message lacks \"%s\": %s", name, part, m.c_str());
    }
}

void unresolved_auto_names_its_key(void **) {
    /* every trainer value but one: the error names the key it would fill */
    const std::string all = kTrainer;
    struct Case {
        const char *file, *drop, *path;
    } cases[] = {
        {"full_structure_auto.json", "\"learning_rate\": 3e-4,", "optimizer.params.lr"},
        {"full_structure_auto.json", "\"adam_beta1\": 0.9,", "optimizer.params.betas"},
        {"full_structure_auto.json", "\"weight_decay\": 0.01,", "optimizer.params.weight_decay"},
        {"full_structure_auto.json", "\"warmup_steps\": 100,", "scheduler.params.warmup_num_steps"},
        {"full_structure_auto.json", "\"fp16\": false,", "fp16.enabled"},
        {"llama_zero2_offload_auto.json", "\"max_grad_norm\": 0.5,", "gradient_clipping"},
        {"llama_zero2_offload_auto.json", "\"num_training_steps\": 1000,",
         "scheduler.params.total_num_steps"},
        {"zero3_auto.json", ", \"hidden_size\": 1024", "zero_optimization.reduce_bucket_size"},
    };
    for (const Case &c : cases) {
        std::string values = all;
        size_t at = values.find(c.drop);
        assert_true(at != std::string::npos);
        values.erase(at, std::string(c.drop).size());
        std::string m = refusal(fixture(c.file), host(1, values));
        if (m.compare(0, std::string(c.path).size() + 2, std::string(c.path) + ": ") != 0 ||
            !contains(m, "\"auto\" has no value"))
            fail_msg("%s without %s: %s", c.file, c.drop, m.c_str());
    }
    /* with no host values at all, the first auto read is named */
    expect_refusal(fixture("full_structure_auto.json"), "train_micro_batch_size_per_gpu",
                   {"\"auto\" has no value", "per_device_train_batch_size"}, host(1));
}

void auto_seeds_take_trainer_values(void **) {
    dsz::Config c = load("full_structure_auto.json");
    assert_int_equal(c.world_size, 2);
    assert_int_equal(c.train_micro_batch_size_per_gpu, 4);
    assert_int_equal(c.gradient_accumulation_steps, 2);
    assert_int_equal(c.train_batch_size, 16);
    assert_true(c.bf16.enabled && !c.fp16.enabled);
    assert_true(c.optimizer.type == dsz::OptimizerType::adam && c.optimizer.adam_w_mode);
    assert_string_equal(c.optimizer.type_name.c_str(), "AdamW");
    assert_true(c.optimizer.lr == 3e-4 && c.optimizer.beta1 == 0.9 && c.optimizer.beta2 == 0.95);
    assert_true(c.optimizer.eps == 1e-8 && c.optimizer.weight_decay == 0.01);
    assert_true(c.scheduler.type == dsz::SchedulerType::warmup_lr);
    assert_true(c.scheduler.has_warmup_max_lr && c.scheduler.warmup_max_lr == 3e-4);
    assert_true(c.scheduler.warmup_min_lr == 0 && c.scheduler.warmup_num_steps == 100);
    assert_int_equal(c.zero.stage, 2);
    assert_int_equal(c.zero.reduce_bucket_size, 200000000);
    assert_int_equal(c.zero.allgather_bucket_size, 200000000);
    assert_int_equal(c.activation_checkpointing.number_checkpoints, -1);
    assert_int_equal(c.steps_per_print, 100);
    assert_true(c.gradient_clipping == 1.0);

    c = load("llama_zero2_offload_auto.json");
    assert_true(c.gradient_clipping == 0.5);
    assert_true(c.scheduler.type == dsz::SchedulerType::warmup_decay_lr);
    assert_int_equal(c.scheduler.total_num_steps, 1000);
    assert_true(c.zero.offload_optimizer.device == dsz::OffloadDevice::cpu &&
                c.zero.offload_optimizer.pin_memory);

    c = load("zero3_auto.json");
    assert_int_equal(c.zero.stage, 3);
    assert_int_equal(c.zero.reduce_bucket_size, 1024 * 1024);
    assert_int_equal(c.zero.prefetch_bucket_size, 943718); /* 0.9 * 1024^2 = 943718.4, rounded */
    assert_int_equal(c.zero.param_persistence_threshold, 10240);
    assert_int_equal(c.zero.sub_group_size, 1000000000);
    assert_int_equal(c.zero.max_live_parameters, 1000000000);
    assert_true(c.zero.gather_16bit_weights_on_model_save && c.zero.overlap_comm);
}

void plain_seeds_read_as_written(void **) {
    dsz::Config c = load("batch_2048.json");
    assert_int_equal(c.train_batch_size, 2048);
    assert_int_equal(c.world_size, 8);

    c = load("principle_example.json");
    assert_int_equal(c.train_micro_batch_size_per_gpu, 8);
    assert_true(c.fp16.enabled && c.fp16.loss_scale == 0);
    assert_true(c.optimizer.type == dsz::OptimizerType::adam && c.optimizer.lr == 1e-4 &&
                c.optimizer.adam_w_mode);

    c = load("fp16_dynamic.json");
    assert_true(c.fp16.enabled && c.fp16.initial_scale_power == 16 &&
                c.fp16.loss_scale_window == 1000);
    assert_true(c.fp16.hysteresis == 2 && c.fp16.min_loss_scale == 1);

    c = load("activation_checkpointing.json");
    assert_true(c.activation_checkpointing.partition_activations &&
                c.activation_checkpointing.cpu_checkpointing);
    assert_int_equal(c.activation_checkpointing.number_checkpoints, 4);

    c = load("pipeline.json");
    assert_true(c.pipeline.seed_layers);
    assert_int_equal(c.pipeline.activation_checkpoint_interval, 1);
    assert_string_equal(c.pipeline.stages.c_str(), "auto");

    c = load("pipeline_zero1.json");
    assert_int_equal(c.train_batch_size, 16);
    assert_int_equal(c.zero.stage, 1);
    assert_false(c.zero.overlap_comm);

    c = load("scheduler_warmup_decay.json");
    assert_true(c.scheduler.type == dsz::SchedulerType::warmup_decay_lr);
    assert_true(c.scheduler.warmup_type == dsz::WarmupType::linear &&
                c.scheduler.warmup_max_lr == 3e-4);
    assert_int_equal(c.scheduler.total_num_steps, 100000);
    assert_int_equal(c.scheduler.warmup_num_steps, 2000);
    assert_int_equal(c.scheduler.last_batch_iteration, -1);

    c = load("zero3_offload_cpu.json");
    assert_true(c.zero.offload_param.device == dsz::OffloadDevice::cpu);
    assert_true(c.zero.offload_optimizer.device == dsz::OffloadDevice::cpu);
    assert_true(c.zero.overlap_comm); /* stage 3 default */

    c = load("memory_breakdown.json");
    assert_true(c.memory_breakdown && c.wall_clock_breakdown);
    assert_true(load("bf16.json").bf16.enabled);
}

void seeds_with_warnings(void **) {
    dsz::ParseResult r = parse(fixture("fp16_overflow_tuning.json"), micro());
    assert_true(r.config.fp16.min_loss_scale == 1e-8);
    assert_true(contains(warning_with(r, "fp16.min_loss_scale"), "DeepSpeed 0.19"));

    r = parse(fixture("zero_inference.json"), micro());
    for (const char *key : {"dtype:", "zero:", "enable_cuda_graph:"})
        assert_true(contains(warning_with(r, key), "inference config"));
    assert_int_equal(r.config.tensor_parallel_size, 1);

    r = parse(fixture("moe_expert_parallel.json"), micro());
    warning_with(r, "moe_expert_parallel_size: unknown key");
    warning_with(r, "moe: unknown key");

    r = parse(fixture("tensor_parallel.json"), micro());
    assert_int_equal(r.config.tensor_parallel_size, 4);
    assert_true(contains(warning_with(r, "tensor_parallel:"), "to the host"));

    r = parse(fixture("zero_infinity_nvme.json"), micro());
    const dsz::ZeroConfig &z = r.config.zero;
    assert_true(z.offload_param.device == dsz::OffloadDevice::nvme &&
                z.offload_param.nvme_path == "/local_nvme");
    assert_true(z.offload_optimizer.device == dsz::OffloadDevice::nvme &&
                z.offload_optimizer.buffer_count == 4);
    assert_int_equal(z.offload_param.buffer_size, 100000000);
    assert_int_equal(r.config.aio.intra_op_parallelism, 1);
    assert_int_equal(r.config.aio.block_size, 1048576);
    assert_true(contains(warning_with(r, "thread_count"), "intra_op_parallelism"));
    assert_true(contains(warning_with(r, "zero_optimization.aio"), "top-level"));
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_seed_loads_and_round_trips),
        cmocka_unit_test(fragments_name_the_missing_batch_keys),
        cmocka_unit_test(unresolved_auto_names_its_key),
        cmocka_unit_test(auto_seeds_take_trainer_values),
        cmocka_unit_test(plain_seeds_read_as_written),
        cmocka_unit_test(seeds_with_warnings),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
