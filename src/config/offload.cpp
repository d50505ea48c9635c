/*
 * offload.cpp -- zero_optimization.offload_param and .offload_optimizer
 * (pydantic models: unknown keys refused, lax values).
 *
 * Kept apart from zero.cpp because both sections share the device enum and
 * nvme_path, and because the deprecated cpu_offload* keys of ZeRO map onto
 * them.
 */
#include "config/offload.h"

#include "common/error.h"
#include "config/json_text.h"

namespace dsz::cfg {

const std::vector<Field<OffloadParamConfig>> &offload_param_fields() {
    using P = OffloadParamConfig;
    static const std::vector<Field<P>> fields = {
        integer("buffer_count", &P::buffer_count, kNonNegative),
        integer("buffer_size", &P::buffer_size, kNonNegative),
        integer("max_in_cpu", &P::max_in_cpu, kNonNegative),
        flag("pin_memory", &P::pin_memory),
    };
    return fields;
}

const std::vector<Field<OffloadOptimizerConfig>> &offload_optimizer_fields() {
    using O = OffloadOptimizerConfig;
    static const std::vector<Field<O>> fields = {
        integer("buffer_count", &O::buffer_count, kNonNegative),
        flag("pin_memory", &O::pin_memory),
        flag("pipeline_read", &O::pipeline_read),
        flag("pipeline_write", &O::pipeline_write),
        flag("fast_init", &O::fast_init),
        number("ratio", &O::ratio),
        flag("super_offload", &O::super_offload),
        number("cpuadam_cores_perc", &O::cpuadam_cores_perc),
    };
    return fields;
}

const char *offload_device_name(OffloadDevice d) {
    switch (d) {
    case OffloadDevice::cpu: return "cpu";
    case OffloadDevice::nvme: return "nvme";
    case OffloadDevice::none: break;
    }
    return "none";
}

namespace {

/* device and nvme_path, common to both sections. */
template <class S>
void read_target(Section &s, S &out) {
    Entry device = s.entry("device");
    if (device) {
        std::string name = to_choice(device, {"none", "cpu", "nvme"}, false, s.ctx());
        out.device = name == "cpu"    ? OffloadDevice::cpu
                     : name == "nvme" ? OffloadDevice::nvme
                                      : OffloadDevice::none;
    }
    Entry path = s.entry("nvme_path");
    if (path && !path.is_null()) out.nvme_path = to_string(path, s.ctx());
}

void check_fraction(const Section &s, const char *key, double v) {
    if (v < 0 || v > 1)
        s.ctx().value_error(join_path(s.path(), key),
                            strprintf("expected a number 0-1, got %g", v));
}

}  // namespace

bool read_offload_param(Section &zero, OffloadParamConfig &out) {
    Section s = zero.object("offload_param", Unknown::refuse, Typing::lax);
    s.set_unknown_note("DeepSpeed refuses unknown keys in offload_param");
    read_target(s, out);
    read_fields(s, out, offload_param_fields());
    s.finish();
    return s.present();
}

bool read_offload_optimizer(Section &zero, OffloadOptimizerConfig &out) {
    Section s = zero.object("offload_optimizer", Unknown::refuse, Typing::lax);
    s.set_unknown_note("DeepSpeed refuses unknown keys in offload_optimizer");
    read_target(s, out);
    read_fields(s, out, offload_optimizer_fields());
    bool convert_grad_on_cpu = true; /* accepted and checked; where to convert is dszero's choice */
    s.read("convert_grad_on_cpu", convert_grad_on_cpu);
    s.finish();
    check_fraction(s, "ratio", out.ratio);
    check_fraction(s, "cpuadam_cores_perc", out.cpuadam_cores_perc);
    return s.present();
}

}  // namespace dsz::cfg
