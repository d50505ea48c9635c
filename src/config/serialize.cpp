/*
 * serialize.cpp -- config_to_json: the resolved Config as a DeepSpeed config.
 *
 * Every section is written with every setting filled in, under DeepSpeed's
 * key names, so the output is both a record of what will run
 * (dsz_config_resolve) and a config that parses back to the same Config.
 * Settings whose "unset" value is DeepSpeed's None are written as null.
 */
#include "common/error.h"
#include "config/json_text.h"
#include "config/parsers.h"

namespace dsz::cfg {

cJSON *json_int(int64_t v) { return cJSON_CreateRaw(std::to_string(v).c_str()); }

void add(cJSON *object, const char *key, cJSON *item) {
    if (!item || !cJSON_AddItemToObject(object, key, item)) {
        cJSON_Delete(item);
        fail(DSZ_ERR_OUT_OF_MEMORY, "config: out of memory writing \"%s\"", key);
    }
}

namespace {

cJSON *string_or_null(const std::string &s) {
    return s.empty() ? cJSON_CreateNull() : cJSON_CreateString(s.c_str());
}

cJSON *section(cJSON *parent, const char *key) {
    cJSON *object = cJSON_CreateObject();
    add(parent, key, object);
    return object;
}

template <class S>
void write_offload(cJSON *zero, const char *key, const S &offload,
                   const std::vector<Field<S>> &fields) {
    cJSON *o = section(zero, key);
    add(o, "device", cJSON_CreateString(offload_device_name(offload.device)));
    add(o, "nvme_path", string_or_null(offload.nvme_path));
    write_fields(o, offload, fields);
}

void write_zero(cJSON *root, const ZeroConfig &z) {
    cJSON *zero = section(root, "zero_optimization");
    add(zero, "stage", json_int(z.stage));
    write_fields(zero, z, zero_fields());
    add(zero, "overlap_comm", cJSON_CreateBool(z.overlap_comm));
    write_offload(zero, "offload_param", z.offload_param, offload_param_fields());
    write_offload(zero, "offload_optimizer", z.offload_optimizer, offload_optimizer_fields());
}

void write_runtime_sections(cJSON *root, const Config &c) {
    write_fields(section(root, "aio"), c.aio, aio_fields());

    cJSON *ac = section(root, "activation_checkpointing");
    write_fields(ac, c.activation_checkpointing, activation_checkpointing_fields());
    int64_t n = c.activation_checkpointing.number_checkpoints;
    add(ac, "number_checkpoints", n < 0 ? cJSON_CreateNull() : json_int(n));

    cJSON *pipe = section(root, "pipeline");
    const std::string &stages = c.pipeline.stages;
    bool numeric = !stages.empty() && stages.find_first_not_of("0123456789") == std::string::npos;
    add(pipe, "stages",
        numeric ? cJSON_CreateRaw(stages.c_str()) : cJSON_CreateString(stages.c_str()));
    add(pipe, "partition", cJSON_CreateString(c.pipeline.partition.c_str()));
    write_fields(pipe, c.pipeline, pipeline_fields());

    cJSON *ckpt = section(root, "checkpoint");
    add(ckpt, "tag_validation", cJSON_CreateString(c.checkpoint_tag_validation.c_str()));
    add(ckpt, "load_universal", cJSON_CreateBool(c.checkpoint_load_universal));
    add(ckpt, "use_node_local_storage", cJSON_CreateBool(c.checkpoint_use_node_local_storage));

    add(section(root, "data_types"), "grad_accum_dtype", string_or_null(c.grad_accum_dtype));
    add(section(root, "tensor_parallel"), "autotp_size",
        json_int(c.tensor_parallel_size > 1 ? c.tensor_parallel_size : 0));
}

}  // namespace

}  // namespace dsz::cfg

namespace dsz {

std::string config_to_json(const Config &c) {
    using namespace cfg;
    JsonPtr root(cJSON_CreateObject());
    if (!root) fail(DSZ_ERR_OUT_OF_MEMORY, "config: out of memory");
    cJSON *r = root.get();
    add(r, "train_batch_size", json_int(c.train_batch_size));
    add(r, "train_micro_batch_size_per_gpu", json_int(c.train_micro_batch_size_per_gpu));
    add(r, "gradient_accumulation_steps", json_int(c.gradient_accumulation_steps));
    add(r, "steps_per_print",
        c.steps_per_print > 0 ? json_int(c.steps_per_print) : cJSON_CreateNull());
    write_fields(r, c, top_level_fields());
    add(r, "log_level", string_or_null(c.log_level));
    add(r, "gradient_allreduce_op", cJSON_CreateString(c.gradient_allreduce_op.c_str()));
    add(r, "communication_data_type", string_or_null(c.communication_data_type));

    write_fields(section(r, "fp16"), c.fp16, fp16_fields());
    write_fields(section(r, "bf16"), c.bf16, bf16_fields());
    write_zero(r, c.zero);
    if (c.optimizer.type != OptimizerType::none) {
        cJSON *opt = section(r, "optimizer");
        add(opt, "type", cJSON_CreateString(c.optimizer.type_name.c_str()));
        write_optimizer_params(section(opt, "params"), c.optimizer);
    }
    if (c.scheduler.type != SchedulerType::none) {
        cJSON *sched = section(r, "scheduler");
        add(sched, "type", cJSON_CreateString(c.scheduler.type_name.c_str()));
        write_scheduler_params(section(sched, "params"), c.scheduler);
    }
    write_runtime_sections(r, c);

    char *text = cJSON_Print(r);
    if (!text) fail(DSZ_ERR_OUT_OF_MEMORY, "config: out of memory printing the resolved config");
    std::string out(text);
    cJSON_free(text);
    return out;
}

}  // namespace dsz
