/*
 * config.h -- a DeepSpeed ds_config.json as typed, validated values.
 *
 * parse_config() is the only way in: it reads JSON (cJSON), maps deprecated
 * keys, fills "auto" from the host's values, applies DeepSpeed 0.19's
 * defaults (../shared/reference/deepspeed-behavior.md §1), resolves the batch
 * sizes against the world size, and validates. Every error names the JSON
 * path and the reason; warnings (unknown keys with a suggestion, deprecated
 * keys) are returned for the engine to log. The rest of dszero reads only
 * these structs, never JSON.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsz {

enum class ModelDtype { fp32, fp16, bf16 };

struct Fp16Config {
    bool enabled = false;
    bool auto_cast = false;
    double loss_scale = 0;          /* 0 = dynamic */
    int initial_scale_power = 16;
    int loss_scale_window = 1000;
    int hysteresis = 2;
    bool consecutive_hysteresis = false;
    double min_loss_scale = 1;      /* see docs/config.md for fractional values */
    bool fp16_master_weights_and_grads = false;
};

struct Bf16Config {
    bool enabled = false;
    bool immediate_grad_update = false;
    bool check_grad_overflow = true;
    bool bf16_master_weights_and_grads = false;
    bool bf16_optimizer_states = false;
};

enum class OptimizerType { none, adam, lamb, lion, adagrad, sgd, muon, onebitadam, zerooneadam, onebitlamb };

/* optimizer.params, with the defaults of the optimizer DeepSpeed would build
 * for this type (§4). `adam_w_mode` is the effective mode: type "adamw" or
 * adam_w_mode (default true). */
struct OptimizerConfig {
    OptimizerType type = OptimizerType::none; /* none: no "optimizer" section */
    std::string type_name;                    /* as written in the config */
    double lr = 1e-3;
    double beta1 = 0.9, beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0;
    bool adam_w_mode = true;
    bool bias_correction = true;
    bool torch_adam = false;
    /* sgd */
    double momentum = 0, dampening = 0;
    bool nesterov = false;
    /* lamb */
    double max_coeff = 10, min_coeff = 0.01;
    bool eps_inside_sqrt = false;
    /* adagrad */
    double initial_accumulator_value = 0;
};

enum class SchedulerType { none, warmup_lr, warmup_decay_lr, warmup_cosine_lr, one_cycle, lr_range_test };
enum class WarmupType { log, linear };

/* scheduler.params with DeepSpeed's class defaults (§3). `has_*` flags mark
 * values that default to "inherit from the optimizer". */
struct SchedulerConfig {
    SchedulerType type = SchedulerType::none;
    std::string type_name;
    int64_t last_batch_iteration = -1;
    /* WarmupLR / WarmupDecayLR */
    double warmup_min_lr = 0;
    double warmup_max_lr = 0.001;
    bool has_warmup_max_lr = false;          /* WarmupLR: false => each group's lr */
    int64_t warmup_num_steps = 1000;
    WarmupType warmup_type = WarmupType::log;
    int64_t total_num_steps = 0;              /* WarmupDecayLR, WarmupCosineLR: required */
    /* WarmupCosineLR */
    double warmup_min_ratio = 0;
    double cos_min_ratio = 1e-4;
    /* OneCycle */
    double cycle_min_lr = 0, cycle_max_lr = 0;
    double decay_lr_rate = 0;
    int64_t cycle_first_step_size = 2000;
    int64_t cycle_second_step_size = -1;      /* -1 => first */
    int64_t cycle_first_stair_count = 0;
    int64_t cycle_second_stair_count = -1;    /* -1 => first */
    int64_t decay_step_size = 0;
    bool cycle_momentum = true;
    double cycle_min_mom = 0.8, cycle_max_mom = 0.9;
    double decay_mom_rate = 0;
    /* LRRangeTest */
    double lr_range_test_min_lr = 1e-3;
    int64_t lr_range_test_step_size = 2000;
    double lr_range_test_step_rate = 1.0;
    bool lr_range_test_staircase = false;
};

enum class OffloadDevice { none, cpu, nvme };

struct OffloadParamConfig {
    OffloadDevice device = OffloadDevice::none;
    std::string nvme_path;
    int64_t buffer_count = 5;
    int64_t buffer_size = 100000000;
    int64_t max_in_cpu = 1000000000;
    bool pin_memory = true;
};

struct OffloadOptimizerConfig {
    OffloadDevice device = OffloadDevice::none;
    std::string nvme_path;
    int64_t buffer_count = 4;
    bool pin_memory = true;
    bool pipeline_read = false, pipeline_write = false;
    bool fast_init = false;
    double ratio = 1.0;
    bool super_offload = false;
    double cpuadam_cores_perc = 0.8;
};

struct ZeroConfig {
    int stage = 0;
    bool contiguous_gradients = true;
    bool reduce_scatter = true;
    int64_t reduce_bucket_size = 500000000;
    bool use_multi_rank_bucket_allreduce = true;
    bool allgather_partitions = true;
    int64_t allgather_bucket_size = 500000000;
    bool overlap_comm = false;                /* resolved: default true for stage 3 */
    bool load_from_fp32_weights = true;
    bool elastic_checkpoint = false;
    OffloadParamConfig offload_param;
    OffloadOptimizerConfig offload_optimizer;
    int64_t sub_group_size = 1000000000;
    int64_t prefetch_bucket_size = 50000000;
    int64_t param_persistence_threshold = 100000;
    int64_t model_persistence_threshold = INT64_MAX;
    int64_t max_live_parameters = 1000000000;
    int64_t max_reuse_distance = 1000000000;
    bool gather_16bit_weights_on_model_save = false;
    int64_t module_granularity_threshold = 0;
    bool use_all_reduce_for_fetch_params = false;
    bool allgather_sequential = false;
    bool ignore_unused_parameters = true;
    bool round_robin_gradients = false;
    int64_t zero_hpz_partition_size = 1;
    bool zero_quantized_weights = false;
    bool zero_quantized_nontrainable_weights = false;
    bool zero_quantized_gradients = false;
    int64_t mics_shard_size = -1;
    bool mics_hierarchical_params_gather = false;
    bool memory_efficient_linear = true;
    bool pipeline_loading_checkpoint = false;
    bool override_module_apply = true;
    bool log_trace_cache_warnings = false;
    bool enable_sanity_checks = false;
};

struct AioConfig {
    int64_t block_size = 1048576;
    int64_t queue_depth = 8;
    int64_t intra_op_parallelism = 1;
    bool single_submit = false;
    bool overlap_events = true;
    bool use_gds = false;
};

struct ActivationCheckpointingConfig {
    bool partition_activations = false;
    bool cpu_checkpointing = false;
    bool contiguous_memory_optimization = false;
    int64_t number_checkpoints = -1;          /* -1 = None */
    bool synchronize_checkpoint_boundary = false;
    bool profile = false;
};

struct PipelineConfig {
    std::string stages = "auto";
    std::string partition = "best";
    bool seed_layers = false;
    int64_t activation_checkpoint_interval = 0;
    bool pipe_partitioned = true;
    bool grad_partitioned = true;
    bool use_reentrant = true;
};

struct Config {
    /* batch sizes, resolved (§1.4) against world_size */
    int64_t train_batch_size = 0;
    int64_t train_micro_batch_size_per_gpu = 0;
    int64_t gradient_accumulation_steps = 0;
    int world_size = 1;                       /* the data-parallel size used above */

    int64_t steps_per_print = 0;              /* 0 = never (DeepSpeed's None) */
    bool wall_clock_breakdown = false;
    bool memory_breakdown = false;
    bool dump_state = false;
    std::string log_level;                    /* "" = not set */
    double gradient_clipping = 1.0;           /* <= 0 disables */
    bool prescale_gradients = false;
    double gradient_predivide_factor = 1.0;
    std::string gradient_allreduce_op = "mean";
    std::string communication_data_type;      /* "" = follow model dtype */
    bool zero_allow_untested_optimizer = false;
    bool zero_force_ds_cpu_optimizer = true;
    std::string grad_accum_dtype;             /* data_types.grad_accum_dtype; "" = model dtype */
    bool managed_gradient_accumulation = true;
    std::string checkpoint_tag_validation = "Warn";
    bool checkpoint_load_universal = false;
    bool checkpoint_use_node_local_storage = false;

    Fp16Config fp16;
    Bf16Config bf16;
    OptimizerConfig optimizer;
    SchedulerConfig scheduler;
    ZeroConfig zero;
    AioConfig aio;
    ActivationCheckpointingConfig activation_checkpointing;
    PipelineConfig pipeline;
    /* tensor_parallel.autotp_size (or tp_size): recorded only; the host
     * shards the model, and world_size above is the data-parallel size */
    int tensor_parallel_size = 1;

    std::string json;                         /* the config as given (after "auto" filling) */

    ModelDtype model_dtype() const {
        return fp16.enabled ? ModelDtype::fp16 : bf16.enabled ? ModelDtype::bf16 : ModelDtype::fp32;
    }
};

/* What the host tells the parser. */
struct HostValues {
    int world_size = 1;
    std::string auto_values_json;             /* dsz_init_options.auto_values; "" = none */
};

struct ParseResult {
    Config config;
    std::vector<std::string> warnings;        /* for the engine's logger */
};

/* Parses `text` (JSON; the caller decides text versus file). Throws
 * dsz::Error(DSZ_ERR_CONFIG, "<json.path>: <reason>") on any refusal. */
ParseResult parse_config(const std::string &text, const HostValues &host);

/* Reads a config file; throws DSZ_ERR_NOT_FOUND / DSZ_ERR_IO naming the path. */
std::string read_config_file(const std::string &path);

/* The resolved config as JSON (every default filled in), for dsz_config_resolve. */
std::string config_to_json(const Config &config);

}  // namespace dsz
