/*
 * zero.cpp -- the zero_optimization section (a pydantic model in DeepSpeed:
 * unknown keys refused, lax values, aliases, deprecated keys).
 *
 * Besides the plain fields it owns ZeRO's own rules: the legacy boolean
 * form, the deprecated cpu_offload* keys, the stage-dependent overlap_comm
 * default, and the offload settings a stage does not use (dropped with a
 * warning, so that the Config says what will actually run).
 */
#include <cstring>

#include "common/error.h"
#include "config/json_text.h"
#include "config/offload.h"
#include "config/parsers.h"

namespace dsz::cfg {

const std::vector<Field<ZeroConfig>> &zero_fields() {
    using Z = ZeroConfig;
    static const std::vector<Field<Z>> fields = {
        flag("contiguous_gradients", &Z::contiguous_gradients),
        flag("reduce_scatter", &Z::reduce_scatter),
        integer("reduce_bucket_size", &Z::reduce_bucket_size, kNonNegative),
        flag("use_multi_rank_bucket_allreduce", &Z::use_multi_rank_bucket_allreduce),
        flag("allgather_partitions", &Z::allgather_partitions),
        integer("allgather_bucket_size", &Z::allgather_bucket_size, kNonNegative),
        flag("load_from_fp32_weights", &Z::load_from_fp32_weights),
        flag("elastic_checkpoint", &Z::elastic_checkpoint),
        integer("sub_group_size", &Z::sub_group_size, kNonNegative),
        integer("stage3_prefetch_bucket_size", &Z::prefetch_bucket_size, kNonNegative,
                "prefetch_bucket_size"),
        integer("stage3_param_persistence_threshold", &Z::param_persistence_threshold, kNonNegative,
                "param_persistence_threshold"),
        integer("stage3_model_persistence_threshold", &Z::model_persistence_threshold, kNonNegative,
                "model_persistence_threshold"),
        integer("stage3_max_live_parameters", &Z::max_live_parameters, kNonNegative,
                "max_live_parameters"),
        integer("stage3_max_reuse_distance", &Z::max_reuse_distance, kNonNegative,
                "max_reuse_distance"),
        flag("stage3_gather_16bit_weights_on_model_save", &Z::gather_16bit_weights_on_model_save,
             "gather_16bit_weights_on_model_save"),
        integer("stage3_module_granularity_threshold", &Z::module_granularity_threshold, {},
                "module_granularity_threshold"),
        flag("stage3_use_all_reduce_for_fetch_params", &Z::use_all_reduce_for_fetch_params,
             "use_all_reduce_for_fetch_params"),
        flag("stage3_allgather_sequential", &Z::allgather_sequential, "allgather_sequential"),
        flag("ignore_unused_parameters", &Z::ignore_unused_parameters),
        flag("round_robin_gradients", &Z::round_robin_gradients),
        integer("zero_hpz_partition_size", &Z::zero_hpz_partition_size, kNonNegative),
        flag("zero_quantized_weights", &Z::zero_quantized_weights),
        flag("zero_quantized_nontrainable_weights", &Z::zero_quantized_nontrainable_weights),
        flag("zero_quantized_gradients", &Z::zero_quantized_gradients),
        integer("mics_shard_size", &Z::mics_shard_size),
        flag("mics_hierarchical_params_gather", &Z::mics_hierarchical_params_gather),
        flag("memory_efficient_linear", &Z::memory_efficient_linear),
        flag("pipeline_loading_checkpoint", &Z::pipeline_loading_checkpoint),
        flag("override_module_apply", &Z::override_module_apply),
        flag("log_trace_cache_warnings", &Z::log_trace_cache_warnings),
        flag("enable_sanity_checks", &Z::enable_sanity_checks),
    };
    return fields;
}

const char *zero_alias(const std::string &key) {
    for (const Field<ZeroConfig> &f : zero_fields()) {
        if (!f.alias) continue;
        if (key == f.key) return f.alias;
        if (key == f.alias) return f.key;
    }
    return nullptr;
}

namespace {

const char *const kZero = "zero_optimization";

/* A deprecated boolean key; returns its value when given (and not null). */
std::optional<bool> deprecated_flag(Section &s, const char *key) {
    Entry e = s.entry(key);
    if (!e || e.is_null()) return std::nullopt;
    return to_bool(e, Typing::lax, s.ctx());
}

[[noreturn]] void both_given(const Context &ctx, const std::string &old_path, const char *new_key) {
    ctx.value_error(old_path, std::string("deprecated, and its replacement \"") + new_key +
                                  "\" is given too; keep only \"" + new_key + "\"");
}

void read_deprecated(Section &s, ZeroConfig &z, bool has_param, bool has_optimizer,
                     bool has_gather) {
    Context &ctx = s.ctx();
    if (std::optional<bool> v = deprecated_flag(s, "cpu_offload")) {
        if (has_optimizer) both_given(ctx, s.path() + ".cpu_offload", "offload_optimizer");
        ctx.warn(s.path() + ".cpu_offload: deprecated, read as offload_optimizer.device = " +
                 (*v ? "\"cpu\"" : "\"none\"") + "; use offload_optimizer");
        if (*v) z.offload_optimizer.device = OffloadDevice::cpu;
    }
    if (std::optional<bool> v = deprecated_flag(s, "cpu_offload_param")) {
        if (has_param) both_given(ctx, s.path() + ".cpu_offload_param", "offload_param");
        ctx.warn(s.path() + ".cpu_offload_param: deprecated, read as offload_param.device = " +
                 (*v ? "\"cpu\"" : "\"none\"") + "; use offload_param");
        if (*v) z.offload_param.device = OffloadDevice::cpu;
    }
    if (deprecated_flag(s, "cpu_offload_use_pin_memory"))
        ctx.warn(s.path() + ".cpu_offload_use_pin_memory: deprecated and ignored; use "
                            "offload_param.pin_memory / offload_optimizer.pin_memory");
    if (std::optional<bool> v = deprecated_flag(s, "stage3_gather_fp16_weights_on_model_save")) {
        if (has_gather)
            both_given(ctx, s.path() + ".stage3_gather_fp16_weights_on_model_save",
                       "stage3_gather_16bit_weights_on_model_save");
        ctx.warn(s.path() + ".stage3_gather_fp16_weights_on_model_save: deprecated, read as "
                            "stage3_gather_16bit_weights_on_model_save; rename it");
        z.gather_16bit_weights_on_model_save = *v;
    }
}

/* Keys DeepSpeed accepts that dszero checks but does not act on. */
void read_unmodelled(Section &s) {
    Context &ctx = s.ctx();
    s.object("zeropp_loco_param", Unknown::warn, Typing::lax); /* any object: ZeRO++ LoCo tuning */
    if (s.object("zenflow", Unknown::warn, Typing::lax).present())
        ctx.warn(s.path() + ".zenflow: ZenFlow is not implemented by dszero; ignored");
    Entry leaf = s.entry("leaf_module");
    if (s.object(leaf, Unknown::warn, Typing::lax).present() && leaf.value->child)
        ctx.warn(s.path() + ".leaf_module: ZeRO-3 leaf modules are chosen by the host; ignored");
    bool muon_buffer = false;
    s.read("save_muon_momentum_buffer_in_memory", muon_buffer);
    Entry chunk = s.entry("stage3_partition_stream_chunk_size", "partition_stream_chunk_size");
    if (chunk) to_int(chunk, Typing::lax, kNonNegative, ctx);
    bool legacy_stage1 = false;
    if (s.read("legacy_stage1", legacy_stage1) && legacy_stage1)
        ctx.value_error(s.path() + ".legacy_stage1",
                        "the legacy stage-1 implementation was removed from "
                        "DeepSpeed; remove this key");
}

void read_zero_object(Section &s, ZeroConfig &z) {
    s.set_unknown_note("DeepSpeed refuses unknown keys in zero_optimization");
    Entry stage = s.entry("stage");
    if (stage) z.stage = static_cast<int>(to_int(stage, Typing::lax, {0, 3}, s.ctx()));
    read_fields(s, z, zero_fields());
    Entry overlap = s.entry("overlap_comm");
    bool overlap_given = overlap && !overlap.is_null();
    z.overlap_comm = overlap_given ? to_bool(overlap, Typing::lax, s.ctx()) : z.stage == 3;

    bool has_param = read_offload_param(s, z.offload_param);
    bool has_optimizer = read_offload_optimizer(s, z.offload_optimizer);
    bool has_gather = bool(
        s.entry("stage3_gather_16bit_weights_on_model_save", "gather_16bit_weights_on_model_save"));
    read_deprecated(s, z, has_param, has_optimizer, has_gather);
    read_unmodelled(s);
}

/* ZeRO's own rules, once every key is read. */
void apply_stage_rules(const std::string &path, ZeroConfig &z, Context &ctx) {
    if (z.stage == 3 && z.elastic_checkpoint)
        ctx.warn(
            path +
            ".elastic_checkpoint: not supported with ZeRO stage 3 (as in DeepSpeed); use universal "
            "checkpoints");
    if (z.offload_optimizer.ratio < 1 && z.stage != 3)
        ctx.value_error(path + ".offload_optimizer.ratio",
                        strprintf("partial offload (ratio %g < 1) needs ZeRO stage 3, stage is %d",
                                  z.offload_optimizer.ratio, z.stage));
    if ((z.stage == 1 || z.stage == 2) && z.allgather_bucket_size % 2 != 0)
        ctx.value_error(path + ".allgather_bucket_size",
                        "must be a multiple of 2 with ZeRO stages 1 and 2 (NCCL alignment), got " +
                            std::to_string(z.allgather_bucket_size));
    if (z.allgather_sequential) z.prefetch_bucket_size = 1;

    if (z.stage < 3 && z.offload_param.device != OffloadDevice::none) {
        ctx.warn(path + ".offload_param: only ZeRO stage 3 offloads parameters; ignored at stage " +
                 std::to_string(z.stage));
        z.offload_param = OffloadParamConfig();
    }
    if (z.stage == 0 && z.offload_optimizer.device != OffloadDevice::none) {
        ctx.warn(path +
                 ".offload_optimizer: optimizer offload needs ZeRO stage 1-3; ignored at stage 0");
        z.offload_optimizer = OffloadOptimizerConfig();
    }
    if ((z.stage == 1 || z.stage == 2) && z.offload_optimizer.device == OffloadDevice::nvme) {
        ctx.warn(
            path +
            ".offload_optimizer.device: \"nvme\" means CPU offload at ZeRO stages 1 and 2 (as in "
            "DeepSpeed); read as \"cpu\"");
        z.offload_optimizer.device = OffloadDevice::cpu;
    }
    if ((z.stage == 1 || z.stage == 2) && z.offload_optimizer.device != OffloadDevice::none &&
        !z.contiguous_gradients) {
        ctx.warn(path +
                 ".contiguous_gradients: forced to true by optimizer offload (as in DeepSpeed)");
        z.contiguous_gradients = true;
    }
}

}  // namespace

Entry read_zero(Section &top, Config &config) {
    ZeroConfig &z = config.zero;
    Context &ctx = top.ctx();
    Entry e = top.entry(kZero);
    Entry allgather_size = top.entry("allgather_size");
    if (e && cJSON_IsBool(e.value)) {
        ctx.warn(std::string(kZero) + ": the boolean form is deprecated; read as {\"stage\": " +
                 (cJSON_IsTrue(e.value) ? "1" : "0") + "}; use an object");
        z.stage = cJSON_IsTrue(e.value) ? 1 : 0;
        if (allgather_size)
            z.allgather_bucket_size = to_int(allgather_size, Typing::natural, kNonNegative, ctx);
        apply_stage_rules(kZero, z, ctx);
        return Entry{nullptr, join_path(kZero, "aio")};
    }
    Section s = top.object(e, Unknown::refuse, Typing::lax);
    Entry misplaced_aio = s.entry("aio");
    if (misplaced_aio)
        ctx.warn(misplaced_aio.path +
                 ": aio is a top-level section in DeepSpeed (0.19 would refuse it here); "
                 "read as the top-level \"aio\"");
    read_zero_object(s, z);
    s.finish();
    apply_stage_rules(kZero, z, ctx);
    return misplaced_aio;
}

}  // namespace dsz::cfg
