/*
 * json_text.h -- from config text to a cJSON tree, the way DeepSpeed reads it.
 *
 * DeepSpeed loads config files with hjson, so real-world configs carry
 * comments and trailing commas; it also refuses duplicate keys. cJSON does
 * neither, so the text is first cleaned in place (comments and trailing
 * commas become spaces, keeping every line and column where it was, so a
 * syntax error still points at the right spot) and the tree is then checked
 * for duplicate keys.
 */
#pragma once

#include <cjson/cJSON.h>

#include <memory>
#include <string>

#include "dszero.h"

namespace dsz::cfg {

struct JsonDeleter {
    void operator()(cJSON *json) const { cJSON_Delete(json); }
};
using JsonPtr = std::unique_ptr<cJSON, JsonDeleter>;

/* Parses `text` into a tree. Errors are thrown with `status` and start with
 * `what` (e.g. "config" or "auto_values"): syntax errors give line and
 * column, duplicate keys their key path. */
JsonPtr parse_json_text(const std::string &text, const char *what, dsz_status status);

/* The object member `key` (case-sensitive), or nullptr. */
const cJSON *member(const cJSON *object, const char *key);

/* "parent.key", or "key" at the top. */
std::string join_path(const std::string &parent, const std::string &key);

/* A JSON value as quoted in error messages: "four", 1.5, true, null,
 * an object, an array. */
std::string describe(const cJSON *value);

/* The compact JSON text of a tree. */
std::string print_json(const cJSON *value);

}  // namespace dsz::cfg
