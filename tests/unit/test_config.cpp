/*
 * test_config.cpp -- what the parser accepts and what it makes of it:
 * defaults, optimizer types, value coercion, warnings for unknown and
 * deprecated keys, "auto" from the host, comments, config_to_json and
 * read_config_file.
 */
#include <cstdio>

#include "config_testing.h"

using namespace cfgtest;
using dsz::OffloadDevice;
using dsz::OptimizerType;

namespace {

dsz::Config config_of(const std::string &text, const dsz::HostValues &h = micro()) {
    return parse(text, h).config;
}

void defaults_are_deepspeed_0_19s(void **) {
    dsz::ParseResult r = parse("{}");
    const dsz::Config &c = r.config;
    assert_int_equal(r.warnings.size(), 0);
    assert_true(c.gradient_clipping == 1.0);
    assert_int_equal(c.steps_per_print, 0);
    assert_true(c.gradient_predivide_factor == 1.0 && !c.prescale_gradients);
    assert_string_equal(c.gradient_allreduce_op.c_str(), "mean");
    assert_true(c.communication_data_type.empty() && c.log_level.empty() &&
                c.grad_accum_dtype.empty());
    assert_true(c.zero_force_ds_cpu_optimizer && !c.zero_allow_untested_optimizer &&
                c.managed_gradient_accumulation);
    assert_string_equal(c.checkpoint_tag_validation.c_str(), "Warn");
    assert_true(!c.fp16.enabled && c.fp16.loss_scale == 0 && c.fp16.initial_scale_power == 16);
    assert_true(c.fp16.loss_scale_window == 1000 && c.fp16.hysteresis == 2 &&
                c.fp16.min_loss_scale == 1);
    assert_true(!c.bf16.enabled && c.bf16.check_grad_overflow && !c.bf16.immediate_grad_update);
    assert_true(c.optimizer.type == OptimizerType::none &&
                c.scheduler.type == dsz::SchedulerType::none);
    const dsz::ZeroConfig &z = c.zero;
    assert_true(z.stage == 0 && !z.overlap_comm && z.contiguous_gradients && z.reduce_scatter);
    assert_int_equal(z.reduce_bucket_size, 500000000);
    assert_int_equal(z.prefetch_bucket_size, 50000000);
    assert_int_equal(z.param_persistence_threshold, 100000);
    assert_true(z.model_persistence_threshold == INT64_MAX);
    assert_true(z.offload_param.pin_memory && z.offload_optimizer.pin_memory);
    assert_true(z.offload_param.device == OffloadDevice::none && z.offload_optimizer.ratio == 1.0);
    assert_int_equal(c.aio.block_size, 1048576);
    assert_int_equal(c.aio.queue_depth, 8);
    assert_true(c.aio.overlap_events && !c.aio.use_gds);
    assert_int_equal(c.activation_checkpointing.number_checkpoints, -1);
    assert_string_equal(c.pipeline.partition.c_str(), "best");
    assert_true(c.pipeline.pipe_partitioned && c.pipeline.grad_partitioned &&
                c.pipeline.use_reentrant);
    assert_int_equal(c.tensor_parallel_size, 1);

    for (int stage : {0, 1, 2, 3}) {
        std::string text = "{\"zero_optimization\": {\"stage\": " + std::to_string(stage) + "}}";
        assert_true(config_of(text).zero.overlap_comm == (stage == 3));
    }
    assert_false(config_of(R"({"zero_optimization": {"stage": 3, "overlap_comm": false}})")
                     .zero.overlap_comm);
    assert_true(config_of(R"({"zero_optimization": {"stage": 3, "overlap_comm": null}})")
                    .zero.overlap_comm);
}

void optimizer_types_and_their_defaults(void **) {
    dsz::OptimizerConfig o = config_of(R"({"optimizer": {"type": "ADAM"}})").optimizer;
    assert_true(o.type == OptimizerType::adam && o.lr == 1e-3 && o.beta1 == 0.9 &&
                o.beta2 == 0.999);
    assert_true(o.eps == 1e-8 && o.weight_decay == 0 && o.adam_w_mode && o.bias_correction &&
                !o.torch_adam);
    assert_string_equal(o.type_name.c_str(), "ADAM");
    /* effective AdamW mode: type adamw OR adam_w_mode */
    assert_false(config_of(R"({"optimizer": {"type": "Adam", "params": {"adam_w_mode": false}}})")
                     .optimizer.adam_w_mode);
    assert_true(config_of(R"({"optimizer": {"type": "AdamW", "params": {"adam_w_mode": false}}})")
                    .optimizer.adam_w_mode);

    o = config_of(R"({"optimizer": {"type": "lamb"}})").optimizer;
    assert_true(o.type == OptimizerType::lamb && o.max_coeff == 10 && o.min_coeff == 0.01 &&
                !o.eps_inside_sqrt);
    o = config_of(
            R"({"optimizer": {"type": "Lion", "params": {"lr": 1e-4, "betas": [0.95, 0.98]}}})")
            .optimizer;
    assert_true(o.type == OptimizerType::lion && o.lr == 1e-4 && o.beta1 == 0.95 &&
                o.beta2 == 0.98);
    o = config_of(R"({"optimizer": {"type": "Adagrad"}})").optimizer;
    assert_true(o.type == OptimizerType::adagrad && o.lr == 1e-2 && o.eps == 1e-10 &&
                o.weight_decay == 0);
    o = config_of(
            R"({"optimizer": {"type": "SGD", "params": {"momentum": 0.9, "nesterov": true}}})")
            .optimizer;
    assert_true(o.type == OptimizerType::sgd && o.lr == 1e-3 && o.momentum == 0.9 && o.nesterov &&
                o.dampening == 0);
    o = config_of(R"({"optimizer": {"type": "Muon"}})").optimizer;
    assert_true(o.type == OptimizerType::muon && o.momentum == 0.95);
    o = config_of(R"({"optimizer": {"type": "OneBitAdam", "params": {"freeze_step": 400}}})")
            .optimizer;
    assert_true(o.type == OptimizerType::onebitadam);
    assert_true(config_of(R"({"optimizer": {"type": "ZeroOneAdam"}})").optimizer.type ==
                OptimizerType::zerooneadam);
    assert_true(config_of(R"({"optimizer": {"type": "OneBitLamb"}})").optimizer.type ==
                OptimizerType::onebitlamb);
    /* accepted constructor arguments dszero does not model */
    config_of(
        R"({"optimizer": {"type": "AdamW", "params": {"amsgrad": false, "set_grad_none": true}}})");
    /* untested optimizers with ZeRO when allowed: a warning */
    dsz::ParseResult r = parse(R"({"optimizer": {"type": "SGD"}, "zero_optimization": {"stage": 2},
                                  "zero_allow_untested_optimizer": true})");
    warning_with(r, "untested");
}

void scheduler_params(void **) {
    dsz::SchedulerConfig s = config_of(R"({"scheduler": {"type": "WarmupLR"}})").scheduler;
    assert_false(s.has_warmup_max_lr); /* inherits each group's lr */
    assert_true(s.warmup_num_steps == 1000 && s.warmup_type == dsz::WarmupType::log &&
                s.last_batch_iteration == -1);
    s = config_of(R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_max_lr": 0.01}}})")
            .scheduler;
    assert_true(s.has_warmup_max_lr && s.warmup_max_lr == 0.01);
    s = config_of(R"({"scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 10}}})")
            .scheduler;
    assert_true(s.has_warmup_max_lr && s.warmup_max_lr == 0.001);
    s = config_of(R"({"scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 50,
                     "cos_min_ratio": 0.1, "warmup_type": "linear"}}})")
            .scheduler;
    assert_true(s.type == dsz::SchedulerType::warmup_cosine_lr && s.cos_min_ratio == 0.1 &&
                s.total_num_steps == 50);
    s = config_of(
            R"({"scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-2,
                     "cycle_second_step_size": null, "cycle_first_stair_count": 4}}})")
            .scheduler;
    assert_true(s.cycle_second_step_size == -1 && s.cycle_second_stair_count == -1 &&
                s.cycle_first_stair_count == 4);
    assert_true(s.cycle_min_mom == 0.8 && s.cycle_max_mom == 0.9 && s.cycle_momentum);
    s = config_of(
            R"({"scheduler": {"type": "LRRangeTest", "params": {"lr_range_test_step_size": 100.0,
                     "lr_range_test_staircase": true, "last_batch_iteration": 7}}})")
            .scheduler;
    assert_true(s.lr_range_test_step_size == 100 && s.lr_range_test_staircase &&
                s.last_batch_iteration == 7);
}

void pydantic_sections_coerce_laxly(void **) {
    dsz::Config c = config_of(R"({"zero_optimization": {"stage": "2", "reduce_bucket_size": 5e8,
        "allgather_bucket_size": 200000000.0, "sub_group_size": "1000", "overlap_comm": "yes",
        "contiguous_gradients": 0, "reduce_scatter": "off", "round_robin_gradients": 1},
        "fp16": {"enabled": "on", "loss_scale": "128", "hysteresis": 4.0},
        "bf16": {"check_grad_overflow": "f"}})");
    assert_int_equal(c.zero.stage, 2);
    assert_int_equal(c.zero.reduce_bucket_size, 500000000);
    assert_int_equal(c.zero.allgather_bucket_size, 200000000);
    assert_int_equal(c.zero.sub_group_size, 1000);
    assert_true(c.zero.overlap_comm && !c.zero.contiguous_gradients && !c.zero.reduce_scatter);
    assert_true(c.zero.round_robin_gradients);
    assert_true(c.fp16.enabled && c.fp16.loss_scale == 128 && c.fp16.hysteresis == 4);
    assert_false(c.bf16.check_grad_overflow);
    /* sys.maxsize, which a double rounds up to 2^63 */
    c = config_of(
        R"({"zero_optimization": {"stage3_model_persistence_threshold": 9223372036854775807}})");
    assert_true(c.zero.model_persistence_threshold == INT64_MAX);
}

void raw_sections_take_natural_types(void **) {
    dsz::Config c =
        config_of(R"({"steps_per_print": 10.0, "gradient_clipping": 2, "log_level": "INFO",
        "communication_data_type": "BF16", "gradient_allreduce_op": "Sum", "checkpoint": {"tag_validation": "fail"},
        "aio": {"block_size": 262144.0, "use_gds": false}, "pipeline": {"stages": 4, "partition": "uniform"},
        "data_types": {"grad_accum_dtype": "float32"}, "zero_optimization": {"stage": 1}})");
    assert_int_equal(c.steps_per_print, 10);
    assert_true(c.gradient_clipping == 2.0);
    assert_string_equal(c.log_level.c_str(), "info");
    assert_string_equal(c.communication_data_type.c_str(), "bf16");
    assert_string_equal(c.gradient_allreduce_op.c_str(), "sum");
    assert_string_equal(c.checkpoint_tag_validation.c_str(), "Fail");
    assert_int_equal(c.aio.block_size, 262144);
    assert_string_equal(c.pipeline.stages.c_str(), "4");
    assert_string_equal(c.grad_accum_dtype.c_str(), "fp32");
    expect_refusal(R"({"aio": {"single_submit": 1}})", "aio.single_submit",
                   {"expected true or false, got 1"});
    expect_refusal(R"({"pipeline": {"stages": "two"}})", "pipeline.stages",
                   {"expected \"auto\" or a number"});
}

void unknown_keys_outside_strict_sections_warn(void **) {
    dsz::ParseResult r = parse(R"({"gradient_clip": 0.5, "aio": {"queue_dept": 4},
                                   "pipeline": {"partition_method": "uniform"}, "my_own_key": 1})");
    assert_true(r.config.gradient_clipping == 1.0);
    assert_true(contains(warning_with(r, "gradient_clip:"), "did you mean \"gradient_clipping\"?"));
    assert_true(contains(warning_with(r, "aio.queue_dept:"), "did you mean \"queue_depth\"?"));
    warning_with(r, "pipeline.partition_method: unknown key, ignored");
    assert_false(contains(warning_with(r, "my_own_key:"), "did you mean"));
    assert_int_equal(r.warnings.size(), 4);
}

void valid_deepspeed_keys_never_warn(void **) {
    dsz::ParseResult r =
        parse(R"({"vocabulary_size": 50257, "dataloader_drop_last": true, "sparse_gradients": false,
        "use_data_before_expert_parallelism": false, "tensorboard": {"enabled": false, "output_path": "x"},
        "wandb": {"enabled": false}, "flops_profiler": {"enabled": false}, "comms_logger": {"enabled": false},
        "elasticity": {"enabled": false}, "amp": {"enabled": false}, "timers": {"throughput": {"enabled": true}},
        "checkpoint": {"use_node_local_storage": true, "parallel_write": {"pipeline_stage": false}},
        "optimizer": {"type": "AdamW", "legacy_fusion": false}, "compile": {}, "sequence_parallel_size": 1,
        "zero_optimization": {"stage": 3, "zeropp_loco_param": {"err_beta": 0.8, "reset_T": 1024},
                              "save_muon_momentum_buffer_in_memory": false, "leaf_module": {}}})");
    std::string all;
    for (const std::string &w : r.warnings) all += "\n  " + w;
    if (!r.warnings.empty()) fail_msg("unexpected warnings:%s", all.c_str());
    r = parse(R"({"flops_profiler": {"enabled": true}, "sparse_attention": {"mode": "fixed"}})");
    assert_true(contains(warning_with(r, "flops_profiler:"), "not implemented"));
    warning_with(r, "sparse_attention:");
}

void deprecated_keys_warn_and_map(void **) {
    dsz::ParseResult r =
        parse(R"({"zero_optimization": {"stage": 3, "cpu_offload": true, "cpu_offload_param": true,
        "cpu_offload_use_pin_memory": true, "stage3_gather_fp16_weights_on_model_save": true}})");
    const dsz::ZeroConfig &z = r.config.zero;
    assert_true(z.offload_optimizer.device == OffloadDevice::cpu &&
                z.offload_param.device == OffloadDevice::cpu);
    assert_true(z.gather_16bit_weights_on_model_save);
    assert_true(contains(warning_with(r, "zero_optimization.cpu_offload:"), "offload_optimizer"));
    assert_true(contains(warning_with(r, "zero_optimization.cpu_offload_param:"), "offload_param"));
    warning_with(r, "cpu_offload_use_pin_memory: deprecated and ignored");
    assert_true(contains(warning_with(r, "stage3_gather_fp16_weights_on_model_save:"),
                         "stage3_gather_16bit_weights_on_model_save"));

    r = parse(R"({"bfloat16": {"enabled": true}})");
    assert_true(r.config.bf16.enabled);
    assert_true(contains(warning_with(r, "bfloat16:"), "\"bf16\""));

    r = parse(R"({"zero_optimization": true, "allgather_size": 1000})");
    assert_int_equal(r.config.zero.stage, 1);
    assert_int_equal(r.config.zero.allgather_bucket_size, 1000);
    warning_with(r, "zero_optimization: the boolean form is deprecated");

    r = parse(R"({"aio": {"thread_count": 4}})");
    assert_int_equal(r.config.aio.intra_op_parallelism, 4);
    assert_true(contains(warning_with(r, "aio.thread_count:"), "intra_op_parallelism"));

    /* either spelling of an alias */
    assert_int_equal(config_of(R"({"zero_optimization": {"prefetch_bucket_size": 7}})")
                         .zero.prefetch_bucket_size,
                     7);
}

void stage_rules(void **) {
    dsz::ParseResult r =
        parse(R"({"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"},
        "offload_optimizer": {"device": "nvme", "nvme_path": "/nvme"}, "contiguous_gradients": false}})");
    const dsz::ZeroConfig &z = r.config.zero;
    assert_true(z.offload_param.device == OffloadDevice::none);
    assert_true(z.offload_optimizer.device == OffloadDevice::cpu && z.contiguous_gradients);
    warning_with(r, "only ZeRO stage 3 offloads parameters");
    warning_with(r, "means CPU offload");
    warning_with(r, "forced to true");
    r = parse(R"({"zero_optimization": {"stage": 0, "offload_optimizer": {"device": "cpu"}}})");
    assert_true(r.config.zero.offload_optimizer.device == OffloadDevice::none);
    r = parse(
        R"({"zero_optimization": {"stage": 3, "stage3_allgather_sequential": true, "elastic_checkpoint": true,
                  "offload_optimizer": {"device": "cpu", "ratio": 0.3}}})");
    assert_int_equal(r.config.zero.prefetch_bucket_size, 1);
    assert_true(r.config.zero.offload_optimizer.ratio == 0.3);
    warning_with(r, "elastic_checkpoint");
}

void fractional_min_loss_scale_is_accepted_with_a_warning(void **) {
    dsz::ParseResult r = parse(R"({"fp16": {"enabled": true, "min_loss_scale": 0.25}})");
    assert_true(r.config.fp16.min_loss_scale == 0.25);
    assert_true(contains(warning_with(r, "fp16.min_loss_scale:"), "would refuse"));
    assert_int_equal(parse(R"({"fp16": {"min_loss_scale": 2}})").warnings.size(), 0);
}

void trainer_names_and_key_paths(void **) {
    const char *config =
        R"({"optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
        "weight_decay": "auto"}}, "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": "auto",
        "warmup_max_lr": "auto", "warmup_num_steps": "auto", "total_num_steps": "auto"}},
        "fp16": {"enabled": "auto"}, "bf16": {"enabled": "auto"}, "gradient_clipping": "auto",
        "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto"},
        "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto"})";
    const char *values = R"({"per_device_train_batch_size": 8, "gradient_accumulation_steps": 4,
        "learning_rate": 5e-5, "optimizer.params.lr": 1e-4, "adam_beta1": 0.8, "adam_beta2": 0.9,
        "adam_epsilon": 1e-6, "weight_decay": 0.1, "max_grad_norm": 2.0, "warmup_steps": 10,
        "num_training_steps": 500, "fp16": true, "bf16": false, "hidden_size": 10,
        "zero_optimization.prefetch_bucket_size": 77})";
    dsz::ParseResult r = parse(config, host(2, values));
    const dsz::Config &c = r.config;
    assert_true(c.optimizer.lr == 1e-4);            /* the key path wins over learning_rate */
    assert_true(c.scheduler.warmup_max_lr == 5e-5); /* learning_rate still fills warmup_max_lr */
    assert_true(c.optimizer.beta1 == 0.8 && c.optimizer.beta2 == 0.9);
    assert_true(c.optimizer.eps == 1e-6 && c.optimizer.weight_decay == 0.1);
    assert_true(c.scheduler.warmup_min_lr == 0 && c.scheduler.warmup_num_steps == 10);
    assert_int_equal(c.scheduler.total_num_steps, 500);
    assert_true(c.fp16.enabled && !c.bf16.enabled && c.gradient_clipping == 2.0);
    assert_int_equal(c.zero.reduce_bucket_size, 100);
    assert_int_equal(c.zero.prefetch_bucket_size, 77); /* key path, by the alias' spelling */
    assert_int_equal(c.zero.param_persistence_threshold, 100);
    assert_int_equal(c.train_micro_batch_size_per_gpu, 8);
    assert_int_equal(c.gradient_accumulation_steps, 4);
    assert_int_equal(c.train_batch_size, 64);
    /* the recorded config is the one after filling */
    assert_false(contains(c.json, "\"auto\""));
    assert_true(contains(c.json, "\"lr\":0.0001"));
}

void comments_and_trailing_commas(void **) {
    const char *text =
        "# hjson comment\n{\n  // the batch\n  \"train_batch_size\": 8, /* total */\n"
        "  \"fp16\": {\"enabled\": true,},\n  \"note\": \"// not a comment\",\n}\n";
    dsz::ParseResult r = parse(text, host(1));
    assert_int_equal(r.config.train_batch_size, 8);
    assert_true(r.config.fp16.enabled);
    /* positions survive the comments */
    expect_refusal("// line 1\n/* line 2 */\n{\"fp16\": {\"enabled\": tru}}", "config",
                   {"line 3, column 22"});
}

void config_to_json_writes_deepspeed_keys(void **) {
    dsz::Config c = config_of(R"({"scheduler": {"type": "WarmupLR"}, "optimizer": {"type": "SGD"},
                                  "activation_checkpointing": {"number_checkpoints": 3}})");
    std::string json = dsz::config_to_json(c);
    assert_false(contains(json, "warmup_max_lr")); /* unset: inherits each group's lr */
    assert_true(contains(json, "\"type\":\t\"SGD\""));
    assert_true(contains(json, "\"nesterov\":\tfalse"));
    assert_false(contains(json, "\"betas\"")); /* SGD takes no betas */
    assert_true(contains(json, "\"number_checkpoints\":\t3"));
    assert_true(contains(json, "\"stage3_model_persistence_threshold\":\t9223372036854775807"));
    assert_true(contains(json, "\"steps_per_print\":\tnull"));
    assert_true(config_to_json(config_of(json)) == json);
    c = config_of(
        R"({"scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0, "cycle_max_lr": 1}},
                      "tensor_parallel": {"autotp_size": 2}})");
    json = dsz::config_to_json(c);
    assert_true(contains(json, "\"cycle_second_step_size\":\tnull"));
    assert_true(contains(json, "\"autotp_size\":\t2"));
    assert_true(config_to_json(config_of(json)) == json);
}

void read_config_file_names_the_file(void **) {
    std::string path = std::string(DSZ_FIXTURE_DIR) + "/seed-configs/zero1.json";
    assert_true(contains(dsz::read_config_file(path), "\"stage\": 1"));
    const std::string missing = "/nonexistent/ds_config.json";
    dsz_status status = DSZ_OK;
    std::string message;
    try {
        dsz::read_config_file(missing);
    } catch (const dsz::Error &e) {
        status = e.status();
        message = e.what();
    }
    assert_int_equal(status, DSZ_ERR_NOT_FOUND);
    assert_true(contains(message, missing));
    try {
        dsz::read_config_file(DSZ_FIXTURE_DIR);
    } catch (const dsz::Error &e) {
        status = e.status();
    }
    assert_int_equal(status, DSZ_ERR_IO);
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_deepspeed_0_19s),
        cmocka_unit_test(optimizer_types_and_their_defaults),
        cmocka_unit_test(scheduler_params),
        cmocka_unit_test(pydantic_sections_coerce_laxly),
        cmocka_unit_test(raw_sections_take_natural_types),
        cmocka_unit_test(unknown_keys_outside_strict_sections_warn),
        cmocka_unit_test(valid_deepspeed_keys_never_warn),
        cmocka_unit_test(deprecated_keys_warn_and_map),
        cmocka_unit_test(stage_rules),
        cmocka_unit_test(fractional_min_loss_scale_is_accepted_with_a_warning),
        cmocka_unit_test(trainer_names_and_key_paths),
        cmocka_unit_test(comments_and_trailing_commas),
        cmocka_unit_test(config_to_json_writes_deepspeed_keys),
        cmocka_unit_test(read_config_file_names_the_file),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
