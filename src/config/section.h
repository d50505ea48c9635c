/*
 * section.h -- reading one config section with path-qualified errors.
 *
 * DeepSpeed reads its config in two ways (behaviour spec §1.2): pydantic
 * models, which refuse unknown keys and coerce values laxly ("5" and 5e8 are
 * integers, "yes" is true), and raw dict lookups, which ignore unknown keys
 * and use values as given. A Section is one JSON object read in one of those
 * ways: every typed read names the key path and the value seen when it
 * refuses, and finish() deals with the keys nobody asked for -- an error
 * (strict sections) or a warning (the others), both with the closest known
 * key as a suggestion.
 */
#pragma once

#include <cjson/cJSON.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

namespace dsz::cfg {

/* What one parse shares across sections: the warnings it returns and where
 * values filled in from the host came from. */
class Context {
public:
    explicit Context(std::vector<std::string> &warnings) : warnings_(warnings) {}

    void warn(const std::string &message) { warnings_.push_back(message); }

    /* Records that the value at `path` came from the host ("auto_values
     * \"learning_rate\""), so errors about it can say so. */
    void note_source(const std::string &path, const std::string &source) {
        sources_[path] = source;
    }
    std::string source_of(const std::string &path) const;

    /* Throws DSZ_ERR_CONFIG "<path>: <reason>", plus the value's source. */
    [[noreturn]] void value_error(const std::string &path, const std::string &reason) const;

private:
    std::vector<std::string> &warnings_;
    std::map<std::string, std::string> sources_;
};

/* pydantic's lax coercion, or the plain JSON type of a raw lookup. */
enum class Typing { lax, natural };
/* What an unknown key in the section gets. */
enum class Unknown { refuse, warn };

struct IntRange {
    int64_t min = INT64_MIN;
    int64_t max = INT64_MAX;
};
constexpr IntRange kNonNegative{0, INT64_MAX};
constexpr IntRange kPositive{1, INT64_MAX};

/* A value found in a section, with the path errors should name. */
struct Entry {
    const cJSON *value = nullptr;
    std::string path;
    explicit operator bool() const { return value != nullptr; }
    bool is_null() const { return value && cJSON_IsNull(value); }
};

/* Typed conversions; each refuses with "<path>: expected ..., got <value>".
 * The string "auto" is refused as an unresolved "auto". */
int64_t to_int(const Entry &e, Typing t, IntRange range, const Context &ctx);
int to_int32(const Entry &e, Typing t, IntRange range, const Context &ctx);
double to_number(const Entry &e, Typing t, const Context &ctx);
bool to_bool(const Entry &e, Typing t, const Context &ctx);
std::string to_string(const Entry &e, const Context &ctx);
/* One of `allowed`, returned in the list's spelling. */
std::string to_choice(const Entry &e, const std::vector<std::string> &allowed,
                      bool case_insensitive, const Context &ctx);

/* Throws the error for an "auto" that the host gave no value for. */
[[noreturn]] void unresolved_auto(const std::string &path);

class Section {
public:
    /* `object` may be nullptr (section absent: every read finds nothing). */
    Section(const cJSON *object, std::string path, Unknown unknown, Typing typing, Context &ctx);

    const std::string &path() const { return path_; }
    bool present() const { return object_ != nullptr; }
    Typing typing() const { return typing_; }
    Context &ctx() const { return ctx_; }

    /* Looks `key` up (and marks it known). With an alias, either spelling
     * is accepted and giving both is an error. */
    Entry entry(const char *key, const char *alias = nullptr);
    /* Marks keys as known without reading them (accepted, not modelled). */
    void known(std::initializer_list<const char *> keys);

    /* Typed reads: false (and `out` untouched) when the key is absent. */
    bool read(const char *key, bool &out);
    bool read(const char *key, int64_t &out, IntRange range = {});
    bool read(const char *key, std::string &out);

    /* The object at `key` as a section (absent or null: an absent section). */
    Section object(const char *key, Unknown unknown, Typing typing);
    Section object(const Entry &e, Unknown unknown, Typing typing);

    /* Sentence appended to the refusal of an unknown key. */
    void set_unknown_note(const std::string &note) { unknown_note_ = note; }
    /* Reports keys never asked for: an error or warnings. `hint` may add a
     * sentence to a key's warning. */
    void finish(const std::function<std::string(const std::string &key)> &hint = nullptr);

private:
    const cJSON *object_;
    std::string path_;
    Unknown unknown_;
    Typing typing_;
    Context &ctx_;
    std::vector<std::string> known_;
    std::string unknown_note_;
};

}  // namespace dsz::cfg
