/*
 * top_level.cpp -- the top-level scalar keys, and every other top-level key
 * DeepSpeed knows.
 *
 * DeepSpeed reads top-level keys with plain dict lookups, so an unknown key
 * is silently ignored there; dszero warns instead, with the closest known
 * key. That only works if every valid DeepSpeed key is known, hence the
 * table of the keys dszero accepts without implementing them (a warning
 * says so when such a feature is switched on).
 */
#include "common/error.h"
#include "config/json_text.h"
#include "config/parsers.h"
#include "config/suggest.h"

namespace dsz::cfg {

const std::vector<Field<Config>> &top_level_fields() {
    using C = Config;
    static const std::vector<Field<C>> fields = {
        flag("wall_clock_breakdown", &C::wall_clock_breakdown),
        flag("memory_breakdown", &C::memory_breakdown),
        flag("dump_state", &C::dump_state),
        number("gradient_clipping", &C::gradient_clipping),
        flag("prescale_gradients", &C::prescale_gradients),
        number("gradient_predivide_factor", &C::gradient_predivide_factor),
        flag("zero_allow_untested_optimizer", &C::zero_allow_untested_optimizer),
        flag("zero_force_ds_cpu_optimizer", &C::zero_force_ds_cpu_optimizer),
        flag("managed_gradient_accumulation", &C::managed_gradient_accumulation),
    };
    return fields;
}

namespace {

/* Valid DeepSpeed keys that change nothing dszero does. */
const char *const kAcceptedKeys[] = {
    "vocabulary_size",
    "dataloader_drop_last",
    "use_data_before_expert_parallelism",
    "disable_allgather",
    "seq_parallel_communication_data_type",
    "seq_parallel_comm_data_type",
    "sequence_parallel_size",
    "graph_harvesting",
    "timers",
};

/* DeepSpeed features dszero does not implement: known keys, but a warning
 * when switched on ("enabled": true, or for some merely present). */
struct Feature {
    const char *key;
    const char *what;
    bool on_when_present;
};
const Feature kFeatures[] = {
    {"flops_profiler", "the FLOPS profiler", false},
    {"tensorboard", "the TensorBoard monitor", false},
    {"wandb", "the Weights & Biases monitor", false},
    {"csv_monitor", "the CSV monitor", false},
    {"comet", "the Comet monitor", false},
    {"comms_logger", "the communication logger", false},
    {"elasticity", "elastic training (batch sizes come from the batch keys)", false},
    {"amp", "apex AMP (training runs without it)", false},
    {"torch_autocast", "torch.autocast integration", false},
    {"progressive_layer_drop", "progressive layer drop", false},
    {"curriculum_learning", "curriculum learning", false},
    {"data_efficiency", "data efficiency (curriculum, random-LTD)", false},
    {"hybrid_engine", "the hybrid (RLHF) engine", false},
    {"eigenvalue", "eigenvalue computation", false},
    {"expert_parallel", "AutoEP expert parallelism", false},
    {"autotuning", "the autotuner", false},
    {"nebula", "the Nebula checkpoint service", false},
    {"quantize_training", "quantization-aware training", false},
    {"compile", "DeepCompile / torch.compile", true},
    {"sparse_attention", "sparse attention", true},
    {"compression_training", "compression training", true},
    {"weight_quantization", "weight quantization", true},
};

/* Keys of deepspeed.init_inference's config, not of a training config. */
const char *const kInferenceKeys[] = {
    "dtype",
    "zero",
    "enable_cuda_graph",
    "replace_with_kernel_inject",
    "kernel_inject",
    "mp_size",
    "injection_policy",
    "injection_dict",
    "replace_method",
    "max_out_tokens",
    "max_tokens",
    "min_out_tokens",
    "triangular_masking",
    "return_tuple",
    "use_triton",
    "quant",
    "keep_module_on_host",
    "base_dir",
    "training_mp_size",
    "set_empty_params",
    "save_mp_checkpoint_path",
    "checkpoint_config",
    "transposed_mode",
};

bool switched_on(const Feature &f, const cJSON *value) {
    if (!cJSON_IsObject(value)) return false;
    if (f.on_when_present) return value->child != nullptr;
    const cJSON *enabled = member(value, "enabled");
    return cJSON_IsTrue(enabled) || (cJSON_IsNumber(enabled) && enabled->valuedouble != 0) ||
           (cJSON_IsString(enabled) && ascii_lower(enabled->valuestring) == "true");
}

void check_amp(const Entry &amp, const Config &config, Context &ctx) {
    std::string path = join_path(amp.path, "enabled");
    if (config.zero.stage > 0)
        ctx.value_error(path, "apex AMP cannot be combined with ZeRO (stage " +
                                  std::to_string(config.zero.stage) +
                                  "); DeepSpeed refuses it too");
    if (config.fp16.enabled || config.bf16.enabled)
        ctx.value_error(path,
                        "apex AMP cannot be combined with fp16 or bf16; DeepSpeed refuses it too");
}

}  // namespace

void read_top_level(Section &top, Config &config) {
    Context &ctx = top.ctx();
    read_fields(top, config, top_level_fields());
    if (config.gradient_predivide_factor <= 0)
        ctx.value_error("gradient_predivide_factor", strprintf("expected a number > 0, got %g",
                                                               config.gradient_predivide_factor));
    Entry steps = top.entry("steps_per_print");
    if (steps && !steps.is_null())
        config.steps_per_print = to_int(steps, Typing::natural, kNonNegative, ctx);
    Entry level = top.entry("log_level");
    if (level && !level.is_null())
        config.log_level =
            to_choice(level, {"debug", "info", "warning", "error", "critical"}, true, ctx);
    if (Entry op = top.entry("gradient_allreduce_op"))
        config.gradient_allreduce_op = to_choice(op, {"mean", "sum"}, true, ctx);
    Entry comm = top.entry("communication_data_type");
    if (comm && !comm.is_null())
        config.communication_data_type = to_choice(comm, {"fp16", "bf16", "fp32"}, true, ctx);
    bool sparse = false;
    if (top.read("sparse_gradients", sparse) && sparse)
        ctx.warn("sparse_gradients: sparse embedding gradients are not implemented by dszero; "
                 "gradients are "
                 "reduced dense");
}

void read_unmodelled_sections(Section &top, const Config &config) {
    for (const char *key : kAcceptedKeys) top.known({key});
    for (const Feature &f : kFeatures) {
        Entry e = top.entry(f.key);
        if (!e || !switched_on(f, e.value)) continue;
        if (std::string(f.key) == "amp") check_amp(e, config, top.ctx());
        top.ctx().warn(e.path + ": " + f.what +
                       " is not implemented by dszero; the section is ignored");
    }
}

std::string top_level_hint(const std::string &key) {
    for (const char *k : kInferenceKeys)
        if (key == k)
            return "it is a key of deepspeed.init_inference's config: this looks like an inference "
                   "config, "
                   "and dszero only trains";
    if (ascii_lower(key).find("moe") != std::string::npos)
        return "MoE layers are set up in code (deepspeed.moe.layer.MoE), not in the DeepSpeed "
               "config";
    return "";
}

}  // namespace dsz::cfg
