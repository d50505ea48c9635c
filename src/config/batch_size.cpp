/*
 * batch_size.cpp -- train_batch_size = micro batch * accumulation steps * world.
 *
 * DeepSpeed derives whichever of the three batch keys are missing with
 * integer division and then checks the product (behaviour spec §1.4); a
 * non-divisible config therefore fails on the product or on a derived 0.
 * The same algorithm runs here, with messages that show the arithmetic.
 */
#include "common/error.h"
#include "config/json_text.h"
#include "config/parsers.h"

namespace dsz::cfg {

namespace {

const char *const kTrain = "train_batch_size";
const char *const kMicro = "train_micro_batch_size_per_gpu";
const char *const kSteps = "gradient_accumulation_steps";

int64_t multiply(int64_t a, int64_t b) {
    int64_t out = 0;
    if (__builtin_mul_overflow(a, b, &out))
        fail(DSZ_ERR_CONFIG, "%s: %s * %s * world size does not fit in 64 bits", kTrain, kMicro,
             kSteps);
    return out;
}

std::string sources(const Context &ctx) {
    std::string out;
    for (const char *key : {kTrain, kMicro, kSteps}) {
        std::string source = ctx.source_of(key);
        if (!source.empty()) out += std::string("; ") + key + " came from " + source;
    }
    return out;
}

[[noreturn]] void derived_zero(const char *key, const std::string &arithmetic, const Context &ctx) {
    fail(DSZ_ERR_CONFIG, "%s: has to be greater than 0, but %s = 0 (integer division)%s", key,
         arithmetic.c_str(), sources(ctx).c_str());
}

}  // namespace

BatchInput read_batch_keys(Section &top) {
    BatchInput in;
    auto read = [&](const char *key, std::optional<int64_t> &out) {
        Entry e = top.entry(key);
        if (!e || e.is_null()) return;
        /* "auto" with no host value: derived below, which is what the
         * trainer would compute (world * micro * steps) */
        if (std::string(key) == kTrain && cJSON_IsString(e.value) &&
            std::string(e.value->valuestring) == "auto")
            return;
        out = to_int(e, Typing::natural, {}, top.ctx());
    };
    read(kTrain, in.train_batch_size);
    read(kMicro, in.micro_batch_size);
    read(kSteps, in.gradient_accumulation_steps);
    return in;
}

void resolve_batch(const BatchInput &in, int world_size, Config &config, const Context &ctx) {
    for (auto [key, value] :
         {std::pair{kTrain, in.train_batch_size}, std::pair{kMicro, in.micro_batch_size},
          std::pair{kSteps, in.gradient_accumulation_steps}})
        if (value && *value <= 0)
            ctx.value_error(key, "has to be greater than 0, got " + std::to_string(*value));

    const int64_t w = world_size;
    std::string ws = " world size (" + std::to_string(w) + ")";
    auto show = [](const char *key, int64_t v) {
        return std::string(key) + " (" + std::to_string(v) + ")";
    };
    int64_t tb = in.train_batch_size.value_or(0);
    int64_t mb = in.micro_batch_size.value_or(0);
    int64_t ga = in.gradient_accumulation_steps.value_or(0);
    std::string divisible; /* what the product check needs when a value was derived */

    if (in.train_batch_size && in.micro_batch_size && in.gradient_accumulation_steps) {
        /* all three given: kept as they are, checked below */
    } else if (in.train_batch_size && in.micro_batch_size) {
        ga = tb / mb / w;
        if (ga == 0)
            derived_zero(kSteps, show(kTrain, tb) + " // " + show(kMicro, mb) + " //" + ws, ctx);
        divisible = std::string(kTrain) + " must be a multiple of " + kMicro + " * world size";
    } else if (in.train_batch_size && in.gradient_accumulation_steps) {
        mb = tb / w / ga;
        if (mb == 0)
            derived_zero(kMicro, show(kTrain, tb) + " //" + ws + " // " + show(kSteps, ga), ctx);
        divisible = std::string(kTrain) + " must be a multiple of " + kSteps + " * world size";
    } else if (in.micro_batch_size && in.gradient_accumulation_steps) {
        tb = multiply(multiply(mb, ga), w);
    } else if (in.train_batch_size) {
        ga = 1;
        mb = tb / w;
        if (mb == 0) derived_zero(kMicro, show(kTrain, tb) + " //" + ws, ctx);
        divisible = std::string(kTrain) + " must be a multiple of the world size";
    } else if (in.micro_batch_size) {
        tb = multiply(mb, w);
        ga = 1;
    } else {
        fail(
            DSZ_ERR_CONFIG,
            "%s: missing, and so is %s%s: DeepSpeed needs one of the two. Set one in the config, "
            "or have the "
            "host pass \"%s\" (or the trainer argument per_device_train_batch_size) in auto_values",
            kMicro, kTrain,
            in.gradient_accumulation_steps ? " (gradient_accumulation_steps alone is not enough)"
                                           : "",
            kMicro);
    }

    int64_t product = multiply(multiply(mb, ga), w);
    if (tb != product)
        fail(DSZ_ERR_CONFIG, "%s != %s * %s *%s = %lld%s%s", show(kTrain, tb).c_str(),
             show(kMicro, mb).c_str(), show(kSteps, ga).c_str(), ws.c_str(),
             static_cast<long long>(product),
             divisible.empty()
                 ? ""
                 : ("; the missing key is derived by integer division, so " + divisible).c_str(),
             sources(ctx).c_str());

    config.train_batch_size = tb;
    config.train_micro_batch_size_per_gpu = mb;
    config.gradient_accumulation_steps = ga;
    config.world_size = world_size;
}

}  // namespace dsz::cfg
