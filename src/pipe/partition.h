/*
 * partition.h -- splitting a model's layers across pipeline stages.
 *
 * DeepSpeed's PipelineModule partition methods (reference §8.4) as pure
 * functions: "uniform" (equal layer counts), "parameters" (balance the
 * trainable parameter counts) and "type:<regex>" (balance the layers whose
 * type name matches), the latter two through DeepSpeed's balanced split, an
 * exact dynamic programme over split points that minimises the difference
 * between the heaviest and the lightest part. Boundaries come back as
 * parts[0..S]: stage s owns layers [parts[s], parts[s+1]).
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsz {
namespace pipe {

std::vector<int64_t> partition_uniform(int64_t n_layers, int stages);
std::vector<int64_t> partition_balanced(const std::vector<double> &weights, int stages);

/* 1 for the layers whose type name matches `regex` (searched anywhere in the
 * name, case-insensitively, ECMAScript syntax), else 0; a NULL name never
 * matches. Throws DSZ_ERR_INVALID_ARGUMENT when nothing matches or the
 * regex does not compile. */
std::vector<double> type_weights(const std::string &regex, const std::vector<const char *> &type_names);

/* `method` as DeepSpeed takes it (case-insensitive): "uniform",
 * "parameters" (needs param_counts), "type:<regex>" (needs type_names);
 * "profile" and anything else are DSZ_ERR_UNSUPPORTED. */
std::vector<int64_t> partition_layers(const std::string &method, int64_t n_layers, const int64_t *param_counts,
                                      const char *const *type_names, int stages);

}  // namespace pipe
}  // namespace dsz
