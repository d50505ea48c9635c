/*
 * tensor_parallel.cpp -- the tensor_parallel section (a pydantic model in
 * DeepSpeed: unknown keys refused, lax values).
 *
 * dszero does not split layers across ranks: the host does, and hands
 * dszero the data-parallel world size. The section is still checked, so a
 * DeepSpeed config that uses it loads, and the size is recorded. Two
 * spellings exist: the training form (autotp_size, with the TPConfig keys
 * nested under "tp" / "tensor_parallel") and the flat TPConfig form used by
 * init_inference (tp_size, tp_grain_size, mpu); both are accepted.
 */
#include "common/error.h"
#include "config/parsers.h"

namespace dsz::cfg {

namespace {

/* TPConfig's keys; returns tp_size when given. */
std::optional<int64_t> read_tp_keys(Section &s) {
    std::optional<int64_t> size;
    int64_t tp_size = 1, grain = 1;
    if (s.read("tp_size", tp_size, kPositive)) size = tp_size;
    s.read("tp_grain_size", grain, kPositive);
    bool enabled = true;
    s.read("enabled", enabled);
    s.known({"mpu", "tp_group"}); /* Python objects; null in JSON */
    return size;
}

}  // namespace

void read_tensor_parallel(Section &top, Config &config) {
    Section s = top.object("tensor_parallel", Unknown::refuse, Typing::lax);
    s.set_unknown_note("DeepSpeed refuses unknown keys in tensor_parallel");
    if (!s.present()) return;
    const Context &ctx = s.ctx();

    std::optional<int64_t> flat = read_tp_keys(s);
    Section nested = s.object(s.entry("tp", "tensor_parallel"), Unknown::refuse, Typing::lax);
    nested.set_unknown_note("DeepSpeed refuses unknown keys here");
    std::optional<int64_t> inner = read_tp_keys(nested);
    nested.finish();
    if (flat && inner)
        ctx.value_error(s.path() + ".tp_size",
                        "given both here and in " + nested.path() + "; keep one");
    int64_t autotp = 0;
    s.read("autotp_size", autotp, kNonNegative);

    if (Entry dtype = s.entry("dtype"); dtype && !dtype.is_null()) read_dtype(dtype, ctx);
    bool flag_value = false;
    for (const char *key : {"tp_overlap_comm", "keep_module_on_host"}) s.read(key, flag_value);
    if (Entry inject = s.entry("replace_with_kernel_inject", "kernel_inject"))
        to_bool(inject, Typing::lax, ctx);
    if (Entry preset = s.entry("preset_model"); preset && !preset.is_null()) to_string(preset, ctx);
    s.object("partition_config", Unknown::warn, Typing::lax);
    s.known({"injection_policy_tuple"});
    s.finish();

    int64_t size = autotp > 0 ? autotp : flat ? *flat : inner.value_or(1);
    if (size > INT32_MAX) ctx.value_error(s.path(), "tensor-parallel size does not fit in 32 bits");
    config.tensor_parallel_size = static_cast<int>(size);
    if (size > 1)
        s.ctx().warn(s.path() + ": tensor-parallel size " + std::to_string(size) +
                     ": dszero leaves tensor parallelism to the host (shard the model yourself and "
                     "give dszero "
                     "the data-parallel world size); the setting is only recorded");
}

}  // namespace dsz::cfg
