/*
 * parsers.h -- the pieces parse_config() is built from, in the order it runs
 * them (parse_config.cpp): fill "auto" from the host, read each section,
 * resolve the batch sizes, check the settings against each other. Tables
 * that config_to_json needs to write a section back are declared here too.
 */
#pragma once

#include <cjson/cJSON.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/fields.h"
#include "config/section.h"

namespace dsz::cfg {

/* auto_values.cpp: fills every "auto" the host has a value for (by key path,
 * else by Hugging Face trainer name) and the batch-size keys the config
 * does not set. Unresolved "auto"s stay and are refused where read. */
void fill_auto_values(cJSON *root, const HostValues &host, Context &ctx);

/* batch_size.cpp */
struct BatchInput {
    std::optional<int64_t> train_batch_size, micro_batch_size, gradient_accumulation_steps;
};
BatchInput read_batch_keys(Section &top);
/* DeepSpeed's batch-size algorithm (behaviour spec §1.4) against the
 * data-parallel world size; fills the three sizes and world_size. */
void resolve_batch(const BatchInput &in, int world_size, Config &config, const Context &ctx);

/* top_level.cpp: the top-level scalars, and the sections dszero knows of
 * but does not implement (warnings when they are enabled). */
void read_top_level(Section &top, Config &config);
const std::vector<Field<Config>> &top_level_fields();
void read_unmodelled_sections(Section &top, const Config &config);
/* Adds a sentence to the warning about an unknown top-level key (for
 * instance: it belongs to an init_inference config). */
std::string top_level_hint(const std::string &key);

/* precision.cpp: fp16, bf16 (and the legacy bfloat16). */
void read_precision(Section &top, Config &config);
const std::vector<Field<Fp16Config>> &fp16_fields();
const std::vector<Field<Bf16Config>> &bf16_fields();

/* zero.cpp: zero_optimization with offload_param / offload_optimizer. A
 * misplaced zero_optimization.aio is returned for read_aio. */
Entry read_zero(Section &top, Config &config);
const std::vector<Field<ZeroConfig>> &zero_fields();
const std::vector<Field<OffloadParamConfig>> &offload_param_fields();
const std::vector<Field<OffloadOptimizerConfig>> &offload_optimizer_fields();
/* The other spelling of a zero_optimization key ("stage3_prefetch_bucket_size"
 * <-> "prefetch_bucket_size"), or nullptr. */
const char *zero_alias(const std::string &key);
const char *offload_device_name(OffloadDevice d);

/* optimizer.cpp */
void read_optimizer(Section &top, Config &config);
/* optimizer.params of the config's type, every modelled setting filled. */
void write_optimizer_params(cJSON *params, const OptimizerConfig &opt);

/* scheduler.cpp */
void read_scheduler(Section &top, Config &config);
void write_scheduler_params(cJSON *params, const SchedulerConfig &sched);

/* sections.cpp: aio, activation_checkpointing, pipeline, checkpoint,
 * data_types. */
void read_aio(Section &top, const Entry &misplaced, Config &config);
void read_runtime_sections(Section &top, Config &config);
const std::vector<Field<AioConfig>> &aio_fields();
const std::vector<Field<ActivationCheckpointingConfig>> &activation_checkpointing_fields();
const std::vector<Field<PipelineConfig>> &pipeline_fields();
/* "fp32", "fp16" or "bf16" from any spelling DeepSpeed's dtype names take
 * ("float16", "half", "torch.bfloat16", ...). */
std::string read_dtype(const Entry &e, const Context &ctx);

/* tensor_parallel.cpp */
void read_tensor_parallel(Section &top, Config &config);

/* validate.cpp: the cross-field checks of behaviour spec §1.5 and §1.8. */
void validate(const Config &config, Context &ctx);

}  // namespace dsz::cfg
