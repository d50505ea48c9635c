/*
 * json_util.h -- small cJSON conveniences for the checkpoint manifest.
 *
 * An owning pointer for cJSON trees and typed getters that fail with a
 * message naming the manifest field, so a damaged manifest is reported as
 * such instead of crashing.
 */
#pragma once

#include <cjson/cJSON.h>

#include <memory>
#include <string>

namespace dsz {

struct JsonDeleter {
    void operator()(cJSON *j) const { cJSON_Delete(j); }
};
using JsonPtr = std::unique_ptr<cJSON, JsonDeleter>;

std::string json_print(const cJSON *j);   /* unformatted */

/* Getters on a manifest object; `where` names the file in errors. */
const cJSON *json_field(const cJSON *obj, const char *key, const std::string &where);
double json_number(const cJSON *obj, const char *key, const std::string &where);
int64_t json_int(const cJSON *obj, const char *key, const std::string &where);
std::string json_string(const cJSON *obj, const char *key, const std::string &where);
const cJSON *json_array(const cJSON *obj, const char *key, const std::string &where);

}  // namespace dsz
