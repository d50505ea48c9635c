/* section.cpp -- typed, path-qualified reads of config values (see section.h). */
#include "config/section.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "common/error.h"
#include "config/json_text.h"
#include "config/suggest.h"

namespace dsz::cfg {

std::string Context::source_of(const std::string &path) const {
    auto it = sources_.find(path);
    return it == sources_.end() ? std::string() : it->second;
}

void Context::value_error(const std::string &path, const std::string &reason) const {
    std::string source = source_of(path);
    fail(DSZ_ERR_CONFIG, "%s: %s%s", path.c_str(), reason.c_str(),
         source.empty() ? "" : (" (the value came from " + source + ")").c_str());
}

namespace {

bool is_auto(const cJSON *v) { return cJSON_IsString(v) && std::string(v->valuestring) == "auto"; }

std::string int_description(IntRange r) {
    if (r.min == INT64_MIN && r.max == INT64_MAX) return "an integer";
    if (r.max == INT64_MAX) return "an integer >= " + std::to_string(r.min);
    if (r.min == INT64_MIN) return "an integer <= " + std::to_string(r.max);
    return "an integer " + std::to_string(r.min) + "-" + std::to_string(r.max);
}

/* An integer written as digits with an optional sign, nothing else. */
bool parse_int_text(const char *s, int64_t &out) {
    const char *p = s;
    if (*p == '+' || *p == '-') ++p;
    if (!*p) return false;
    for (const char *q = p; *q; ++q)
        if (!std::isdigit(static_cast<unsigned char>(*q))) return false;
    errno = 0;
    long long v = std::strtoll(s, nullptr, 10);
    if (errno == ERANGE) return false;
    out = v;
    return true;
}

bool parse_number_text(const char *s, double &out) {
    if (!*s || std::isspace(static_cast<unsigned char>(*s))) return false;
    char *end = nullptr;
    out = std::strtod(s, &end);
    return *end == '\0';
}

/* A JSON number to int64; 2^63 (what 9223372036854775807, Python's
 * sys.maxsize, becomes as a double) is read as INT64_MAX. */
int64_t whole_number(const Entry &e, const std::string &want, const Context &ctx) {
    double d = e.value->valuedouble;
    if (!std::isfinite(d))
        ctx.value_error(e.path, "expected " + want + ", got a number out of range");
    if (d != std::floor(d))
        ctx.value_error(e.path, "expected " + want +
                                    ", got a number with a fractional part: " + describe(e.value));
    if (d == 9223372036854775808.0) return INT64_MAX;
    if (d > 9223372036854775808.0 || d < -9223372036854775808.0)
        ctx.value_error(e.path,
                        "expected " + want + ", got a number out of range: " + describe(e.value));
    return static_cast<int64_t>(d);
}

}  // namespace

int64_t to_int(const Entry &e, Typing t, IntRange range, const Context &ctx) {
    std::string want = int_description(range);
    if (is_auto(e.value)) unresolved_auto(e.path);
    int64_t v = 0;
    if (cJSON_IsNumber(e.value))
        v = whole_number(e, want, ctx);
    else if (!(t == Typing::lax && cJSON_IsString(e.value) &&
               parse_int_text(e.value->valuestring, v)))
        ctx.value_error(e.path, "expected " + want + ", got " + describe(e.value));
    if (v < range.min || v > range.max)
        ctx.value_error(e.path, "expected " + want + ", got " + std::to_string(v));
    return v;
}

int to_int32(const Entry &e, Typing t, IntRange range, const Context &ctx) {
    int64_t v = to_int(e, t, range, ctx);
    if (v < INT32_MIN || v > INT32_MAX)
        ctx.value_error(e.path,
                        "expected an integer that fits in 32 bits, got " + std::to_string(v));
    return static_cast<int>(v);
}

double to_number(const Entry &e, Typing t, const Context &ctx) {
    if (is_auto(e.value)) unresolved_auto(e.path);
    double d = 0;
    if (cJSON_IsNumber(e.value))
        d = e.value->valuedouble;
    else if (!(t == Typing::lax && cJSON_IsString(e.value) &&
               parse_number_text(e.value->valuestring, d)))
        ctx.value_error(e.path, "expected a number, got " + describe(e.value));
    if (!std::isfinite(d))
        ctx.value_error(e.path, "expected a finite number, got " + describe(e.value));
    return d;
}

bool to_bool(const Entry &e, Typing t, const Context &ctx) {
    if (is_auto(e.value)) unresolved_auto(e.path);
    if (cJSON_IsBool(e.value)) return cJSON_IsTrue(e.value);
    if (t == Typing::lax) {
        if (cJSON_IsNumber(e.value) && (e.value->valuedouble == 0 || e.value->valuedouble == 1))
            return e.value->valuedouble == 1;
        if (cJSON_IsString(e.value)) {
            std::string s = ascii_lower(e.value->valuestring);
            for (const char *yes : {"1", "on", "t", "true", "y", "yes"})
                if (s == yes) return true;
            for (const char *no : {"0", "off", "f", "false", "n", "no"})
                if (s == no) return false;
        }
        ctx.value_error(
            e.path, "expected a boolean (true/false, 0/1, \"yes\"/\"no\", \"on\"/\"off\"), got " +
                        describe(e.value));
    }
    ctx.value_error(e.path, "expected true or false, got " + describe(e.value));
}

std::string to_string(const Entry &e, const Context &ctx) {
    if (is_auto(e.value)) unresolved_auto(e.path);
    if (!cJSON_IsString(e.value))
        ctx.value_error(e.path, "expected a string, got " + describe(e.value));
    return e.value->valuestring;
}

std::string to_choice(const Entry &e, const std::vector<std::string> &allowed,
                      bool case_insensitive, const Context &ctx) {
    std::string list;
    for (const std::string &a : allowed) list += (list.empty() ? "\"" : ", \"") + a + "\"";
    std::string want = "expected one of " + list + (case_insensitive ? " (any case)" : "");
    if (is_auto(e.value)) unresolved_auto(e.path);
    if (!cJSON_IsString(e.value)) ctx.value_error(e.path, want + ", got " + describe(e.value));
    std::string s = e.value->valuestring;
    for (const std::string &a : allowed)
        if (s == a || (case_insensitive && ascii_lower(s) == ascii_lower(a))) return a;
    ctx.value_error(e.path, want + ", got " + describe(e.value) + did_you_mean(s, allowed));
}

Section::Section(const cJSON *object, std::string path, Unknown unknown, Typing typing,
                 Context &ctx)
    : object_(object), path_(std::move(path)), unknown_(unknown), typing_(typing), ctx_(ctx) {}

Entry Section::entry(const char *key, const char *alias) {
    known_.push_back(key);
    Entry e{object_ ? member(object_, key) : nullptr, join_path(path_, key)};
    if (!alias) return e;
    known_.push_back(alias);
    Entry a{object_ ? member(object_, alias) : nullptr, join_path(path_, alias)};
    if (e && a)
        ctx_.value_error(e.path, std::string("given twice, as \"") + key +
                                     "\" and as its alias \"" + alias + "\"; keep one");
    return e ? e : a;
}

void Section::known(std::initializer_list<const char *> keys) {
    for (const char *k : keys) known_.push_back(k);
}

bool Section::read(const char *key, bool &out) {
    Entry e = entry(key);
    if (e) out = to_bool(e, typing_, ctx_);
    return bool(e);
}

bool Section::read(const char *key, int64_t &out, IntRange range) {
    Entry e = entry(key);
    if (e) out = to_int(e, typing_, range, ctx_);
    return bool(e);
}

bool Section::read(const char *key, std::string &out) {
    Entry e = entry(key);
    if (e) out = to_string(e, ctx_);
    return bool(e);
}

Section Section::object(const char *key, Unknown unknown, Typing typing) {
    return object(entry(key), unknown, typing);
}

Section Section::object(const Entry &e, Unknown unknown, Typing typing) {
    if (!e || e.is_null()) return Section(nullptr, e.path, unknown, typing, ctx_);
    if (is_auto(e.value)) unresolved_auto(e.path);
    if (!cJSON_IsObject(e.value))
        ctx_.value_error(e.path, "expected an object, got " + describe(e.value));
    return Section(e.value, e.path, unknown, typing, ctx_);
}

void Section::finish(const std::function<std::string(const std::string &key)> &hint) {
    if (!object_) return;
    for (const cJSON *c = object_->child; c; c = c->next) {
        std::string key = c->string;
        bool is_known = false;
        for (const std::string &k : known_) is_known = is_known || k == key;
        if (is_known) continue;
        std::string path = join_path(path_, key);
        std::string suggestion = did_you_mean(key, known_);
        if (unknown_ == Unknown::refuse)
            fail(DSZ_ERR_CONFIG, "%s: unknown key%s%s%s", path.c_str(), suggestion.c_str(),
                 unknown_note_.empty() ? "" : "; ", unknown_note_.c_str());
        std::string extra = hint ? hint(key) : std::string();
        ctx_.warn(path + ": unknown key, ignored" + suggestion +
                  (extra.empty() ? "" : "; " + extra));
    }
}

}  // namespace dsz::cfg
