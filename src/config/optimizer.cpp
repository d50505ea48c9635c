/*
 * optimizer.cpp -- the optimizer section: type and params.
 *
 * DeepSpeed builds the optimizer by passing optimizer.params as keyword
 * arguments to a constructor that takes a fixed set of them (behaviour spec
 * §1.7, §4), so an unknown parameter is refused here too, with the list of
 * what the chosen optimizer takes. The type name follows DeepSpeed's rule:
 * its own names in any case, torch.optim class names exactly as spelled
 * ("SGD" works, "sgd" does not). Each type starts from the defaults of the
 * optimizer DeepSpeed would build for it.
 */
#include <algorithm>

#include "common/error.h"
#include "config/json_text.h"
#include "config/parsers.h"
#include "config/suggest.h"

namespace dsz::cfg {

namespace {

using O = OptimizerConfig;

/* Every scalar setting any optimizer models; each type takes a subset. */
const std::vector<Field<O>> &all_fields() {
    static const std::vector<Field<O>> fields = {
        number("lr", &O::lr),
        number("eps", &O::eps),
        number("weight_decay", &O::weight_decay),
        flag("bias_correction", &O::bias_correction),
        flag("adam_w_mode", &O::adam_w_mode),
        flag("torch_adam", &O::torch_adam),
        number("momentum", &O::momentum),
        number("dampening", &O::dampening),
        flag("nesterov", &O::nesterov),
        number("max_coeff", &O::max_coeff),
        number("min_coeff", &O::min_coeff),
        flag("eps_inside_sqrt", &O::eps_inside_sqrt),
        number("initial_accumulator_value", &O::initial_accumulator_value),
    };
    return fields;
}

/* A keyword argument the constructor takes that dszero does not model: it
 * is type-checked, and where `only` is set, only that value is accepted. */
struct Extra {
    enum class Kind { flag, integer, number, text } kind;
    const char *key;
    const char *only;
};
using K = Extra::Kind;

struct Spec {
    OptimizerType type;
    const char *name; /* DeepSpeed name (any case) or torch.optim class name (exact) */
    bool any_case;
    const char *display;
    std::vector<std::string> params; /* modelled settings, in the order they are written */
    std::vector<Extra> extras;
};

const Extra kNoAmsgrad{K::flag, "amsgrad", "false"};
const Extra kFp32States{K::flag, "fp32_optimizer_states", "true"};
const Extra kSetGradNone{K::flag, "set_grad_none", nullptr};
const Extra kForeach{K::flag, "foreach", nullptr};
const Extra kNoMaximize{K::flag, "maximize", "false"};

template <class T>
std::vector<T> plus(std::vector<T> a, const std::vector<T> &b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::vector<Spec> build_specs() {
    using Names = std::vector<std::string>;
    const Names common = {"lr", "betas", "eps", "weight_decay", "bias_correction"};
    const Names adam = plus(common, Names{"adam_w_mode", "torch_adam"});
    const Names lamb = plus(common, Names{"max_coeff", "min_coeff", "eps_inside_sqrt"});
    const Names lion = {"lr", "betas", "weight_decay"};
    const Names adagrad = {"lr", "eps", "weight_decay", "initial_accumulator_value"};
    const Names sgd = {"lr", "momentum", "dampening", "weight_decay", "nesterov"};
    const Names muon = {"lr", "momentum", "betas", "eps", "weight_decay"};
    const Names onebit = plus(common, Names{"eps_inside_sqrt"});
    const Names onebit_lamb = plus(onebit, Names{"max_coeff", "min_coeff"});

    const std::vector<Extra> adam_x = {kNoAmsgrad, kSetGradNone, kFp32States};
    const std::vector<Extra> lion_x = {kSetGradNone, kFp32States};
    const std::vector<Extra> adagrad_x = {
        {K::number, "lr_decay", "0"}, kNoAmsgrad, kFp32States, kForeach, kNoMaximize};
    const std::vector<Extra> muon_x = {{K::text, "ns_method", nullptr},
                                       {K::number, "muon_lr", nullptr},
                                       {K::number, "adam_lr", nullptr}};
    const std::vector<Extra> comm_x = {
        kNoAmsgrad, {K::flag, "cuda_aware", nullptr}, {K::text, "comm_backend_name", nullptr}};
    const std::vector<Extra> zeroone_x = {{K::integer, "var_freeze_step", nullptr},
                                          {K::integer, "var_update_scaler", nullptr},
                                          {K::integer, "local_step_scaler", nullptr},
                                          {K::integer, "local_step_clipper", nullptr}};
    const std::vector<Extra> onebit_lamb_x = {{K::integer, "freeze_step", nullptr},
                                              {K::number, "coeff_beta", nullptr},
                                              {K::number, "factor_max", nullptr},
                                              {K::number, "factor_min", nullptr},
                                              {K::number, "factor_threshold", nullptr}};

    using T = OptimizerType;
    return {
        {T::adam, "adam", true, "Adam", adam, adam_x},
        {T::adam, "adamw", true, "AdamW", adam, adam_x},
        {T::lamb, "lamb", true, "Lamb", lamb, {kNoAmsgrad}},
        {T::lion, "lion", true, "Lion", lion, lion_x},
        {T::adagrad, "adagrad", true, "Adagrad", adagrad, adagrad_x},
        {T::sgd, "SGD", false, "SGD", sgd, {kNoMaximize, kForeach}},
        {T::muon, "muon", true, "Muon", muon, muon_x},
        {T::onebitadam, "onebitadam", true, "OneBitAdam", onebit,
         plus({{K::integer, "freeze_step", nullptr}}, comm_x)},
        {T::zerooneadam, "zerooneadam", true, "ZeroOneAdam", onebit, plus(zeroone_x, comm_x)},
        {T::onebitlamb, "onebitlamb", true, "OneBitLamb", onebit_lamb, plus(onebit_lamb_x, comm_x)},
    };
}

const std::vector<Spec> &specs() {
    static const std::vector<Spec> table = build_specs();
    return table;
}

std::string supported_list() {
    std::string out;
    for (const Spec &s : specs()) out += (out.empty() ? "" : ", ") + std::string(s.display);
    return out;
}

const Spec &spec_for_name(const Entry &e, const Context &ctx) {
    std::string written = to_string(e, ctx);
    for (const Spec &s : specs())
        if (s.any_case ? ascii_lower(written) == s.name : written == s.name) return s;
    for (const char *mu : {"muadam", "muadamw", "musgd"})
        if (ascii_lower(written) == mu)
            ctx.value_error(e.path, "\"" + written +
                                        "\" (from the mup package) is not supported by dszero: it "
                                        "needs mup's width-aware parameter groups; supported: " +
                                        supported_list());
    for (const char *torch : {"Adadelta", "Adafactor", "Adamax", "ASGD", "LBFGS", "NAdam", "RAdam",
                              "RMSprop", "Rprop", "SparseAdam"})
        if (written == torch)
            ctx.value_error(e.path,
                            "torch.optim." + written +
                                " is not implemented by dszero; supported: " + supported_list());
    std::vector<std::string> names;
    for (const Spec &s : specs()) names.push_back(s.display);
    ctx.value_error(
        e.path,
        "\"" + written + "\" is not a supported optimizer" + did_you_mean(written, names) +
            "; supported: " + supported_list() +
            " (DeepSpeed's own names in any case, torch.optim names such as \"SGD\" exactly)");
}

const Spec &spec_for_type(OptimizerType type) {
    for (const Spec &s : specs())
        if (s.type == type) return s;
    fail(DSZ_ERR_INTERNAL, "optimizer: no table entry for type %d", static_cast<int>(type));
}

bool takes_betas(const Spec &spec) {
    return std::find(spec.params.begin(), spec.params.end(), "betas") != spec.params.end();
}

std::vector<Field<O>> fields_of(const Spec &spec) {
    std::vector<Field<O>> out;
    for (const std::string &p : spec.params)
        for (const Field<O> &f : all_fields())
            if (p == f.key) out.push_back(f);
    return out;
}

/* DeepSpeed's defaults for the optimizer it builds for this type (§4). */
OptimizerConfig defaults_for(OptimizerType type) {
    OptimizerConfig o;
    o.type = type;
    if (type == OptimizerType::adagrad) {
        o.lr = 1e-2;
        o.eps = 1e-10;
    } else if (type == OptimizerType::muon) {
        o.lr = 0.02; /* the Muon group's default; the auxiliary Adam group uses 3e-4 */
        o.momentum = 0.95;
        o.beta2 = 0.95;
        o.eps = 1e-10;
    }
    return o;
}

void read_betas(Section &params, OptimizerConfig &o) {
    Entry e = params.entry("betas");
    if (!e) return;
    const Context &ctx = params.ctx();
    if (cJSON_IsString(e.value) && std::string(e.value->valuestring) == "auto")
        unresolved_auto(e.path);
    if (!cJSON_IsArray(e.value) || cJSON_GetArraySize(e.value) != 2)
        ctx.value_error(e.path,
                        "expected an array of 2 numbers [beta1, beta2], got " + describe(e.value));
    o.beta1 = to_number({cJSON_GetArrayItem(e.value, 0), e.path + "[0]"}, Typing::natural, ctx);
    o.beta2 = to_number({cJSON_GetArrayItem(e.value, 1), e.path + "[1]"}, Typing::natural, ctx);
}

void read_extras(Section &params, const Spec &spec) {
    const Context &ctx = params.ctx();
    for (const Extra &x : spec.extras) {
        Entry e = params.entry(x.key);
        if (!e || e.is_null()) continue;
        std::string value;
        switch (x.kind) {
        case K::flag: value = to_bool(e, Typing::natural, ctx) ? "true" : "false"; break;
        case K::integer: value = std::to_string(to_int(e, Typing::natural, {}, ctx)); break;
        case K::number: value = strprintf("%g", to_number(e, Typing::natural, ctx)); break;
        case K::text: value = to_string(e, ctx); break;
        }
        if (x.only && value != x.only)
            ctx.value_error(e.path, std::string("dszero supports only ") + x.only + " here, got " +
                                        describe(e.value));
    }
}

std::string accepted_keys(const Spec &spec) {
    std::string out;
    for (const std::string &p : spec.params) out += (out.empty() ? "" : ", ") + p;
    for (const Extra &x : spec.extras) out += std::string(", ") + x.key;
    return out;
}

}  // namespace

void read_optimizer(Section &top, Config &config) {
    Section s = top.object("optimizer", Unknown::warn, Typing::natural);
    if (!s.present()) return;
    const Context &ctx = s.ctx();
    Entry type = s.entry("type");
    if (!type || type.is_null())
        ctx.value_error(type.path,
                        "missing: the optimizer section needs a type (for instance \"AdamW\")");
    const Spec &spec = spec_for_name(type, ctx);
    OptimizerConfig &o = config.optimizer;
    o = defaults_for(spec.type);
    o.type_name = type.value->valuestring;

    bool legacy_fusion = false; /* accepted; fusion is dszero's own business */
    s.read("legacy_fusion", legacy_fusion);
    Section params = s.object("params", Unknown::refuse, Typing::natural);
    if (params.entry("max_grad_norm"))
        ctx.value_error(
            params.path() + ".max_grad_norm",
            "not supported (DeepSpeed refuses it too): use the top-level \"gradient_clipping\"");
    params.set_unknown_note(std::string(spec.display) + " takes " + accepted_keys(spec));
    read_fields(params, o, fields_of(spec));
    if (takes_betas(spec)) read_betas(params, o);
    read_extras(params, spec);
    params.finish();
    s.finish();
    if (ascii_lower(o.type_name) == "adamw") o.adam_w_mode = true;
}

void write_optimizer_params(cJSON *params, const OptimizerConfig &opt) {
    const Spec &spec = spec_for_type(opt.type);
    write_fields(params, opt, fields_of(spec));
    if (takes_betas(spec)) {
        cJSON *betas = cJSON_CreateArray();
        add(params, "betas", betas);
        cJSON_AddItemToArray(betas, cJSON_CreateNumber(opt.beta1));
        cJSON_AddItemToArray(betas, cJSON_CreateNumber(opt.beta2));
    }
}

}  // namespace dsz::cfg
