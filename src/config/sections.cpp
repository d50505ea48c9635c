/*
 * sections.cpp -- the raw-dict sections dszero models: aio,
 * activation_checkpointing, pipeline, checkpoint, data_types.
 *
 * DeepSpeed reads these with plain dict lookups (behaviour spec §1.2), so an
 * unknown key is only a warning here, but values must have their natural
 * JSON type (whole floats are accepted for integer settings).
 */
#include "common/error.h"
#include "config/json_text.h"
#include "config/parsers.h"

namespace dsz::cfg {

const std::vector<Field<AioConfig>> &aio_fields() {
    using A = AioConfig;
    static const std::vector<Field<A>> fields = {
        integer("block_size", &A::block_size, kPositive),
        integer("queue_depth", &A::queue_depth, kPositive),
        integer("intra_op_parallelism", &A::intra_op_parallelism, kPositive),
        flag("single_submit", &A::single_submit),
        flag("overlap_events", &A::overlap_events),
        flag("use_gds", &A::use_gds),
    };
    return fields;
}

const std::vector<Field<ActivationCheckpointingConfig>> &activation_checkpointing_fields() {
    using C = ActivationCheckpointingConfig;
    static const std::vector<Field<C>> fields = {
        flag("partition_activations", &C::partition_activations),
        flag("cpu_checkpointing", &C::cpu_checkpointing),
        flag("contiguous_memory_optimization", &C::contiguous_memory_optimization),
        flag("synchronize_checkpoint_boundary", &C::synchronize_checkpoint_boundary),
        flag("profile", &C::profile),
    };
    return fields;
}

const std::vector<Field<PipelineConfig>> &pipeline_fields() {
    using P = PipelineConfig;
    static const std::vector<Field<P>> fields = {
        flag("seed_layers", &P::seed_layers),
        integer("activation_checkpoint_interval", &P::activation_checkpoint_interval, kNonNegative),
        flag("pipe_partitioned", &P::pipe_partitioned),
        flag("grad_partitioned", &P::grad_partitioned),
        flag("use_reentrant", &P::use_reentrant),
    };
    return fields;
}

void read_aio(Section &top, const Entry &misplaced, Config &config) {
    Context &ctx = top.ctx();
    Entry e = top.entry("aio");
    if (e && misplaced)
        ctx.value_error(misplaced.path,
                        "given here and as the top-level \"aio\"; keep the top-level one");
    Section s = top.object(e ? e : misplaced, Unknown::warn, Typing::natural);
    Entry threads = s.entry("thread_count");
    if (threads && s.entry("intra_op_parallelism"))
        ctx.value_error(
            threads.path,
            "deprecated name of \"intra_op_parallelism\", which is given too; keep only "
            "\"intra_op_parallelism\"");
    read_fields(s, config.aio, aio_fields());
    if (threads) {
        config.aio.intra_op_parallelism = to_int(threads, Typing::natural, kPositive, ctx);
        ctx.warn(threads.path + ": deprecated (DeepSpeed 0.19 silently ignores it); read as "
                                "\"intra_op_parallelism\"; rename it");
    }
    s.finish();
}

namespace {

void read_activation_checkpointing(Section &top, ActivationCheckpointingConfig &out) {
    Section s = top.object("activation_checkpointing", Unknown::warn, Typing::natural);
    read_fields(s, out, activation_checkpointing_fields());
    Entry n = s.entry("number_checkpoints");
    if (n && !n.is_null())
        out.number_checkpoints = to_int(n, Typing::natural, kNonNegative, s.ctx());
    s.finish();
    if (!out.contiguous_memory_optimization) return;
    std::string path = join_path(s.path(), "contiguous_memory_optimization");
    if (!out.partition_activations)
        s.ctx().value_error(
            path, "needs activation_checkpointing.partition_activations to be true (as in "
                  "DeepSpeed)");
    if (out.number_checkpoints < 0)
        s.ctx().value_error(
            path, "needs activation_checkpointing.number_checkpoints (the number of checkpointed "
                  "layers), which is not set");
}

void read_pipeline(Section &top, PipelineConfig &out) {
    Section s = top.object("pipeline", Unknown::warn, Typing::natural);
    read_fields(s, out, pipeline_fields());
    Entry stages = s.entry("stages");
    if (stages && cJSON_IsNumber(stages.value))
        out.stages = std::to_string(to_int(stages, Typing::natural, kPositive, s.ctx()));
    else if (stages &&
             !(cJSON_IsString(stages.value) && std::string(stages.value->valuestring) == "auto"))
        s.ctx().value_error(stages.path, "expected \"auto\" or a number of stages, got " +
                                             describe(stages.value));
    s.read("partition", out.partition);
    s.finish();
}

void read_checkpoint(Section &top, Config &config) {
    Section s = top.object("checkpoint", Unknown::warn, Typing::natural);
    if (Entry e = s.entry("tag_validation"))
        config.checkpoint_tag_validation = to_choice(e, {"Warn", "Ignore", "Fail"}, true, s.ctx());
    s.read("load_universal", config.checkpoint_load_universal);
    s.read("use_node_local_storage", config.checkpoint_use_node_local_storage);
    Section parallel = s.object("parallel_write", Unknown::warn, Typing::natural);
    bool pipeline_stage = false; /* a checkpoint-writing strategy; dszero writes its own way */
    parallel.read("pipeline_stage", pipeline_stage);
    parallel.finish();
    s.object("writer", Unknown::warn,
             Typing::natural); /* DeepSpeed's checkpoint writer plug-in: ignored */
    s.finish();
}

void read_data_types(Section &top, Config &config) {
    Section s = top.object("data_types", Unknown::warn, Typing::natural);
    Entry accum = s.entry("grad_accum_dtype");
    if (accum && !accum.is_null()) config.grad_accum_dtype = read_dtype(accum, s.ctx());
    for (const char *key : {"param_dtype", "buffer_dtype"}) {
        Entry e = s.entry(key);
        if (!e || e.is_null()) continue;
        read_dtype(e, s.ctx());
        s.ctx().warn(e.path +
                     ": not implemented by dszero (parameters keep the model dtype); ignored");
    }
    s.finish();
}

}  // namespace

std::string read_dtype(const Entry &e, const Context &ctx) {
    std::string v =
        to_choice(e,
                  {"fp32", "float32", "float", "torch.float32", "fp16", "float16", "half",
                   "torch.float16", "bf16", "bfloat16", "bfloat", "torch.bfloat16"},
                  true, ctx);
    if (v.find("bf") != std::string::npos) return "bf16";
    if (v.find("16") != std::string::npos || v == "half") return "fp16";
    return "fp32";
}

void read_runtime_sections(Section &top, Config &config) {
    read_activation_checkpointing(top, config.activation_checkpointing);
    read_pipeline(top, config.pipeline);
    read_checkpoint(top, config);
    read_data_types(top, config);
}

}  // namespace dsz::cfg
