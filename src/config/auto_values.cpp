/*
 * auto_values.cpp -- filling "auto" from what the host knows.
 *
 * Standalone DeepSpeed has no "auto": the Hugging Face trainer rewrites the
 * config before DeepSpeed sees it (behaviour spec §1.3). dszero takes the
 * same values from the host (dsz_init_options.auto_values) in two forms: a
 * config key path ("optimizer.params.lr"), which wins, or a trainer argument
 * name ("learning_rate"), mapped the way the trainer maps it. An "auto" with
 * neither is left in place and refused where it is read: the project never
 * lets a silent default change training.
 *
 * The batch-size keys are also taken from the host when the config leaves
 * them out, so that config fragments without batch sizes can be used.
 */
#include <cmath>
#include <functional>

#include "common/error.h"
#include "config/json_text.h"
#include "config/parsers.h"

namespace dsz::cfg {

namespace {

class Host {
public:
    Host(const cJSON *values, int world_size) : values_(values), world_size_(world_size) {}
    const cJSON *get(const std::string &name) const {
        return values_ ? member(values_, name.c_str()) : nullptr;
    }
    int world_size() const { return world_size_; }

    /* A trainer argument that must be a whole number in [1, 2^31). */
    std::optional<int64_t> positive_int(const char *name) const {
        const cJSON *v = get(name);
        if (!v) return std::nullopt;
        double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
        if (!(d >= 1 && d <= INT32_MAX && d == std::floor(d)))
            fail(DSZ_ERR_CONFIG, "auto_values.%s: expected an integer >= 1, got %s", name,
                 describe(v).c_str());
        return static_cast<int64_t>(d);
    }

private:
    const cJSON *values_;
    int world_size_;
};

using Maker = std::function<JsonPtr(const Host &)>;

struct TrainerRule {
    const char *path;
    const char *names; /* the trainer arguments it is made from, for messages */
    Maker make;
};

/* scheduler.params.warmup_min_lr is not a trainer argument: the trainer
 * always fills 0. */
constexpr const char *kConstantRule = "";

Maker copy_of(const char *name) {
    return [name](const Host &h) {
        return JsonPtr(h.get(name) ? cJSON_Duplicate(h.get(name), 1) : nullptr);
    };
}

JsonPtr whole(int64_t v) { return JsonPtr(cJSON_CreateNumber(static_cast<double>(v))); }

Maker from_hidden(double factor, int power) {
    return [factor, power](const Host &h) {
        std::optional<int64_t> hidden = h.positive_int("hidden_size");
        if (!hidden) return JsonPtr();
        double base = power == 2 ? double(*hidden) * double(*hidden) : double(*hidden);
        return whole(std::llround(factor * base));
    };
}

const std::vector<TrainerRule> &trainer_rules() {
    static const std::vector<TrainerRule> rules = {
        {"train_micro_batch_size_per_gpu", "per_device_train_batch_size",
         copy_of("per_device_train_batch_size")},
        {"gradient_accumulation_steps", "gradient_accumulation_steps",
         copy_of("gradient_accumulation_steps")},
        {"train_batch_size", "per_device_train_batch_size and gradient_accumulation_steps",
         [](const Host &h) {
             std::optional<int64_t> micro = h.positive_int("per_device_train_batch_size");
             std::optional<int64_t> steps = h.positive_int("gradient_accumulation_steps");
             int64_t total = 0;
             if (!micro || !steps) return JsonPtr();
             if (__builtin_mul_overflow(*micro * *steps, int64_t(h.world_size()), &total))
                 fail(DSZ_ERR_CONFIG,
                      "auto_values: per_device_train_batch_size * gradient_accumulation_steps * "
                      "world size does not fit in 64 bits");
             return whole(total);
         }},
        {"gradient_clipping", "max_grad_norm", copy_of("max_grad_norm")},
        {"optimizer.params.lr", "learning_rate", copy_of("learning_rate")},
        {"optimizer.params.betas", "adam_beta1 and adam_beta2",
         [](const Host &h) {
             if (!h.get("adam_beta1") || !h.get("adam_beta2")) return JsonPtr();
             JsonPtr betas(cJSON_CreateArray());
             cJSON_AddItemToArray(betas.get(), cJSON_Duplicate(h.get("adam_beta1"), 1));
             cJSON_AddItemToArray(betas.get(), cJSON_Duplicate(h.get("adam_beta2"), 1));
             return betas;
         }},
        {"optimizer.params.eps", "adam_epsilon", copy_of("adam_epsilon")},
        {"optimizer.params.weight_decay", "weight_decay", copy_of("weight_decay")},
        {"scheduler.params.warmup_min_lr", kConstantRule, [](const Host &) { return whole(0); }},
        {"scheduler.params.warmup_max_lr", "learning_rate", copy_of("learning_rate")},
        {"scheduler.params.warmup_num_steps", "warmup_steps", copy_of("warmup_steps")},
        {"scheduler.params.total_num_steps", "num_training_steps", copy_of("num_training_steps")},
        {"fp16.enabled", "fp16", copy_of("fp16")},
        {"bf16.enabled", "bf16", copy_of("bf16")},
        {"bfloat16.enabled", "bf16", copy_of("bf16")},
        {"zero_optimization.reduce_bucket_size", "hidden_size", from_hidden(1.0, 2)},
        {"zero_optimization.stage3_prefetch_bucket_size", "hidden_size", from_hidden(0.9, 2)},
        {"zero_optimization.prefetch_bucket_size", "hidden_size", from_hidden(0.9, 2)},
        {"zero_optimization.stage3_param_persistence_threshold", "hidden_size",
         from_hidden(10.0, 1)},
        {"zero_optimization.param_persistence_threshold", "hidden_size", from_hidden(10.0, 1)},
    };
    return rules;
}

const TrainerRule *rule_for(const std::string &path) {
    for (const TrainerRule &r : trainer_rules())
        if (path == r.path) return &r;
    return nullptr;
}

/* The host's value for `path` with its source, by key path (either spelling
 * of a zero_optimization alias) or by trainer rule. */
JsonPtr host_value(const std::string &path, const Host &host, std::string &source) {
    std::vector<std::string> spellings = {path};
    const std::string zero = "zero_optimization.";
    if (path.compare(0, zero.size(), zero) == 0)
        if (const char *alias = zero_alias(path.substr(zero.size())))
            spellings.push_back(zero + alias);
    for (const std::string &p : spellings)
        if (const cJSON *v = host.get(p)) {
            source = "auto_values \"" + p + "\"";
            return JsonPtr(cJSON_Duplicate(v, 1));
        }
    if (const TrainerRule *rule = rule_for(path)) {
        JsonPtr made = rule->make(host);
        if (made)
            source = *rule->names
                         ? std::string("the trainer argument ") + rule->names + " in auto_values"
                         : std::string("the trainer's fixed value");
        return made;
    }
    return nullptr;
}

void fill_tree(cJSON *node, const std::string &path, const Host &host, Context &ctx) {
    bool is_object = cJSON_IsObject(node);
    int index = 0;
    for (cJSON *child = node->child, *next = nullptr; child; child = next, ++index) {
        next = child->next;
        std::string child_path =
            is_object ? join_path(path, child->string) : path + "[" + std::to_string(index) + "]";
        if (cJSON_IsObject(child) || cJSON_IsArray(child)) {
            fill_tree(child, child_path, host, ctx);
        } else if (cJSON_IsString(child) && std::string(child->valuestring) == "auto") {
            std::string source;
            JsonPtr value = host_value(child_path, host, source);
            if (!value) continue;
            if (is_object)
                cJSON_ReplaceItemInObjectCaseSensitive(node, child->string, value.release());
            else
                cJSON_ReplaceItemViaPointer(node, child, value.release());
            ctx.note_source(child_path, source);
        }
    }
}

void fill_missing_batch_keys(cJSON *root, const Host &host, Context &ctx) {
    for (const char *key :
         {"train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size"}) {
        const cJSON *present = member(root, key);
        if (present && !cJSON_IsNull(present)) continue;
        std::string source;
        JsonPtr value = host_value(key, host, source);
        if (!value) continue;
        cJSON_DeleteItemFromObjectCaseSensitive(root, key);
        cJSON_AddItemToObject(root, key, value.release());
        ctx.note_source(key, source);
    }
}

}  // namespace

void fill_auto_values(cJSON *root, const HostValues &host, Context &ctx) {
    JsonPtr values;
    if (host.auto_values_json.find_first_not_of(" \t\r\n") != std::string::npos) {
        values = parse_json_text(host.auto_values_json, "auto_values", DSZ_ERR_CONFIG);
        if (!cJSON_IsObject(values.get()))
            fail(DSZ_ERR_CONFIG, "auto_values: expected a JSON object, got %s",
                 describe(values.get()).c_str());
    }
    Host h(values.get(), host.world_size);
    fill_tree(root, "", h, ctx);
    fill_missing_batch_keys(root, h, ctx);
}

void unresolved_auto(const std::string &path) {
    const TrainerRule *rule = rule_for(path);
    std::string trainer =
        rule && *rule->names ? std::string(" (or the trainer argument ") + rule->names + ")" : "";
    fail(DSZ_ERR_CONFIG,
         "%s: \"auto\" has no value: give \"%s\"%s in auto_values (dsz_init_options.auto_values); "
         "dszero does not replace \"auto\" with a default",
         path.c_str(), path.c_str(), trainer.c_str());
}

}  // namespace dsz::cfg
