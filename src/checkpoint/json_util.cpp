/* json_util.cpp -- see json_util.h. */
#include "checkpoint/json_util.h"

#include <cmath>
#include <cstdlib>

#include "common/error.h"

namespace dsz {

std::string json_print(const cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    if (!s) fail(DSZ_ERR_OUT_OF_MEMORY, "cannot serialise JSON");
    std::string out(s);
    cJSON_free(s);
    return out;
}

const cJSON *json_field(const cJSON *obj, const char *key, const std::string &where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) fail(DSZ_ERR_CHECKPOINT, "%s: field \"%s\" is missing", where.c_str(), key);
    return v;
}

double json_number(const cJSON *obj, const char *key, const std::string &where) {
    const cJSON *v = json_field(obj, key, where);
    if (!cJSON_IsNumber(v)) fail(DSZ_ERR_CHECKPOINT, "%s: field \"%s\" is not a number", where.c_str(), key);
    return v->valuedouble;
}

int64_t json_int(const cJSON *obj, const char *key, const std::string &where) {
    const double d = json_number(obj, key, where);
    if (d != std::floor(d) || std::fabs(d) > 9007199254740992.0)
        fail(DSZ_ERR_CHECKPOINT, "%s: field \"%s\" is not an integer", where.c_str(), key);
    return static_cast<int64_t>(d);
}

std::string json_string(const cJSON *obj, const char *key, const std::string &where) {
    const cJSON *v = json_field(obj, key, where);
    if (!cJSON_IsString(v)) fail(DSZ_ERR_CHECKPOINT, "%s: field \"%s\" is not a string", where.c_str(), key);
    return v->valuestring;
}

const cJSON *json_array(const cJSON *obj, const char *key, const std::string &where) {
    const cJSON *v = json_field(obj, key, where);
    if (!cJSON_IsArray(v)) fail(DSZ_ERR_CHECKPOINT, "%s: field \"%s\" is not an array", where.c_str(), key);
    return v;
}

}  // namespace dsz
