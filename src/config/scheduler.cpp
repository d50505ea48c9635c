/*
 * scheduler.cpp -- the scheduler section: type and params.
 *
 * Only DeepSpeed's own schedules are implemented (WarmupLR, WarmupDecayLR,
 * WarmupCosineLR, OneCycle, LRRangeTest, behaviour spec §3). Like optimizer
 * params, scheduler params become constructor keyword arguments in
 * DeepSpeed, so unknown ones and missing required ones are refused. Only
 * types are checked here; whether the values make a sensible schedule is
 * LrSchedule's business.
 */
#include <algorithm>

#include "common/error.h"
#include "config/json_text.h"
#include "config/parsers.h"
#include "config/suggest.h"

namespace dsz::cfg {

namespace {

using S = SchedulerConfig;

/* Settings written and read through the field table. warmup_type,
 * warmup_max_lr (WarmupLR may leave it unset) and the two OneCycle keys
 * where null means "same as the first half" are handled by hand. */
const std::vector<Field<S>> &plain_fields() {
    static const std::vector<Field<S>> fields = {
        integer("last_batch_iteration", &S::last_batch_iteration),
        number("warmup_min_lr", &S::warmup_min_lr),
        integer("warmup_num_steps", &S::warmup_num_steps),
        integer("total_num_steps", &S::total_num_steps),
        number("warmup_min_ratio", &S::warmup_min_ratio),
        number("cos_min_ratio", &S::cos_min_ratio),
        number("cycle_min_lr", &S::cycle_min_lr),
        number("cycle_max_lr", &S::cycle_max_lr),
        number("decay_lr_rate", &S::decay_lr_rate),
        integer("cycle_first_step_size", &S::cycle_first_step_size),
        integer("cycle_first_stair_count", &S::cycle_first_stair_count),
        integer("decay_step_size", &S::decay_step_size),
        flag("cycle_momentum", &S::cycle_momentum),
        number("cycle_min_mom", &S::cycle_min_mom),
        number("cycle_max_mom", &S::cycle_max_mom),
        number("decay_mom_rate", &S::decay_mom_rate),
        number("lr_range_test_min_lr", &S::lr_range_test_min_lr),
        integer("lr_range_test_step_size", &S::lr_range_test_step_size),
        number("lr_range_test_step_rate", &S::lr_range_test_step_rate),
        flag("lr_range_test_staircase", &S::lr_range_test_staircase),
    };
    return fields;
}

/* OneCycle keys whose None means "same as the first half" (stored as -1). */
const std::vector<std::pair<const char *, int64_t S::*>> &nullable_fields() {
    static const std::vector<std::pair<const char *, int64_t S::*>> fields = {
        {"cycle_second_step_size", &S::cycle_second_step_size},
        {"cycle_second_stair_count", &S::cycle_second_stair_count},
    };
    return fields;
}

struct Spec {
    SchedulerType type;
    const char *name;
    std::vector<std::string> params;
    std::vector<std::string> required;
};

const std::vector<Spec> &specs() {
    static const std::vector<Spec> table = {
        {SchedulerType::warmup_lr,
         "WarmupLR",
         {"warmup_min_lr", "warmup_max_lr", "warmup_num_steps", "warmup_type",
          "last_batch_iteration"},
         {}},
        {SchedulerType::warmup_decay_lr,
         "WarmupDecayLR",
         {"total_num_steps", "warmup_min_lr", "warmup_max_lr", "warmup_num_steps", "warmup_type",
          "last_batch_iteration"},
         {"total_num_steps"}},
        {SchedulerType::warmup_cosine_lr,
         "WarmupCosineLR",
         {"total_num_steps", "warmup_min_ratio", "warmup_num_steps", "cos_min_ratio", "warmup_type",
          "last_batch_iteration"},
         {"total_num_steps"}},
        {SchedulerType::one_cycle,
         "OneCycle",
         {"cycle_min_lr", "cycle_max_lr", "decay_lr_rate", "cycle_first_step_size",
          "cycle_second_step_size", "cycle_first_stair_count", "cycle_second_stair_count",
          "decay_step_size", "cycle_momentum", "cycle_min_mom", "cycle_max_mom", "decay_mom_rate",
          "last_batch_iteration"},
         {"cycle_min_lr", "cycle_max_lr"}},
        {SchedulerType::lr_range_test,
         "LRRangeTest",
         {"lr_range_test_min_lr", "lr_range_test_step_size", "lr_range_test_step_rate",
          "lr_range_test_staircase", "last_batch_iteration"},
         {}},
    };
    return table;
}

bool takes(const Spec &spec, const char *key) {
    return std::find(spec.params.begin(), spec.params.end(), key) != spec.params.end();
}

std::string names() {
    std::string out;
    for (const Spec &s : specs()) out += (out.empty() ? "" : ", ") + std::string(s.name);
    return out;
}

const Spec &spec_for_name(const Entry &e, const Context &ctx) {
    std::string written = to_string(e, ctx);
    for (const Spec &s : specs())
        if (written == s.name) return s;
    for (const char *torch :
         {"LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
          "ExponentialLR", "SequentialLR", "CosineAnnealingLR", "ChainedScheduler",
          "ReduceLROnPlateau", "CyclicLR", "CosineAnnealingWarmRestarts", "OneCycleLR",
          "PolynomialLR", "LRScheduler"})
        if (written == torch)
            ctx.value_error(e.path, "torch.optim.lr_scheduler." + written +
                                        " is not supported: dszero implements "
                                        "only DeepSpeed's schedules (" +
                                        names() + ")");
    std::vector<std::string> candidates;
    for (const Spec &s : specs()) candidates.push_back(s.name);
    ctx.value_error(e.path, "\"" + written + "\" is not a DeepSpeed LR schedule" +
                                did_you_mean(written, candidates) + "; supported: " + names());
}

const Spec &spec_for_type(SchedulerType type) {
    for (const Spec &s : specs())
        if (s.type == type) return s;
    fail(DSZ_ERR_INTERNAL, "scheduler: no table entry for type %d", static_cast<int>(type));
}

std::vector<Field<S>> fields_of(const Spec &spec) {
    std::vector<Field<S>> out;
    for (const Field<S> &f : plain_fields())
        if (takes(spec, f.key)) out.push_back(f);
    return out;
}

void read_params(Section &params, const Spec &spec, SchedulerConfig &out) {
    const Context &ctx = params.ctx();
    for (const std::string &key : spec.params) {
        Entry e = params.entry(key.c_str());
        if (e && cJSON_IsArray(e.value))
            ctx.value_error(
                e.path, "per-parameter-group lists are not supported by dszero; give one value");
    }
    for (const std::string &key : spec.required)
        if (!params.entry(key.c_str()))
            ctx.value_error(join_path(params.path(), key),
                            std::string("missing: ") + spec.name + " requires it");
    read_fields(params, out, fields_of(spec));
    if (takes(spec, "warmup_type"))
        if (Entry e = params.entry("warmup_type"))
            out.warmup_type = to_choice(e, {"log", "linear"}, false, ctx) == "log"
                                  ? WarmupType::log
                                  : WarmupType::linear;
    if (takes(spec, "warmup_max_lr")) {
        Entry e = params.entry("warmup_max_lr");
        /* WarmupLR's None: inherit each group's lr */
        if (e && !(e.is_null() && spec.type == SchedulerType::warmup_lr)) {
            out.warmup_max_lr = to_number(e, Typing::natural, ctx);
            out.has_warmup_max_lr = true;
        }
    }
    for (const auto &[key, member] : nullable_fields())
        if (takes(spec, key))
            if (Entry e = params.entry(key); e && !e.is_null())
                out.*member = to_int(e, Typing::natural, kNonNegative, ctx);
}

}  // namespace

void read_scheduler(Section &top, Config &config) {
    Section s = top.object("scheduler", Unknown::warn, Typing::natural);
    if (!s.present()) return;
    const Context &ctx = s.ctx();
    Entry type = s.entry("type");
    if (!type || type.is_null())
        ctx.value_error(type.path,
                        "missing: the scheduler section needs a type (DeepSpeed would silently run "
                        "without a schedule)");
    const Spec &spec = spec_for_name(type, ctx);
    SchedulerConfig &sched = config.scheduler;
    sched.type = spec.type;
    sched.type_name = spec.name;
    Section params = s.object("params", Unknown::refuse, Typing::natural);
    std::string accepted;
    for (const std::string &p : spec.params) accepted += (accepted.empty() ? "" : ", ") + p;
    params.set_unknown_note(std::string(spec.name) + " takes " + accepted);
    read_params(params, spec, sched);
    params.finish();
    s.finish();
    /* WarmupDecayLR always has a maximum (0.001 by default); only WarmupLR
     * inherits each group's lr when none is given */
    if (spec.type == SchedulerType::warmup_decay_lr) sched.has_warmup_max_lr = true;
}

void write_scheduler_params(cJSON *params, const SchedulerConfig &sched) {
    const Spec &spec = spec_for_type(sched.type);
    write_fields(params, sched, fields_of(spec));
    if (takes(spec, "warmup_type"))
        add(params, "warmup_type",
            cJSON_CreateString(sched.warmup_type == WarmupType::log ? "log" : "linear"));
    if (takes(spec, "warmup_max_lr") && sched.has_warmup_max_lr)
        add(params, "warmup_max_lr", cJSON_CreateNumber(sched.warmup_max_lr));
    for (const auto &[key, member] : nullable_fields())
        if (takes(spec, key))
            add(params, key, sched.*member < 0 ? cJSON_CreateNull() : json_int(sched.*member));
}

}  // namespace dsz::cfg
