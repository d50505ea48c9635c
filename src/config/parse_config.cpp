/*
 * parse_config.cpp -- parse_config(): the order in which a config is read.
 *
 * Text to tree, "auto" filled from the host, every section read (each
 * refusing what DeepSpeed refuses), unknown top-level keys reported, batch
 * sizes resolved against the world size, cross-section checks last, when
 * every value is known.
 */
#include "common/error.h"
#include "config/json_text.h"
#include "config/parsers.h"

namespace dsz {

ParseResult parse_config(const std::string &text, const HostValues &host) {
    using namespace cfg;
    if (host.world_size < 1)
        fail(DSZ_ERR_INVALID_ARGUMENT, "world_size: must be >= 1, got %d", host.world_size);
    ParseResult result;
    Config &config = result.config;
    Context ctx(result.warnings);

    JsonPtr root = parse_json_text(text, "config", DSZ_ERR_CONFIG);
    if (!cJSON_IsObject(root.get()))
        fail(DSZ_ERR_CONFIG, "config: expected a JSON object at the top level, got %s",
             describe(root.get()).c_str());
    fill_auto_values(root.get(), host, ctx);
    config.json = print_json(root.get());

    Section top(root.get(), "", Unknown::warn, Typing::natural, ctx);
    BatchInput batch = read_batch_keys(top);
    read_top_level(top, config);
    read_precision(top, config);
    Entry misplaced_aio = read_zero(top, config);
    read_optimizer(top, config);
    read_scheduler(top, config);
    read_aio(top, misplaced_aio, config);
    read_runtime_sections(top, config);
    read_tensor_parallel(top, config);
    read_unmodelled_sections(top, config);
    top.finish(top_level_hint);

    resolve_batch(batch, host.world_size, config, ctx);
    validate(config, ctx);
    return result;
}

}  // namespace dsz
