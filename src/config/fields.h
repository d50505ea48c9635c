/*
 * fields.h -- one table per config struct, read and written from the same rows.
 *
 * Most settings are a key, maybe an alias, a type and a member of a Config
 * struct. Listing each once, and letting both the parser and config_to_json
 * walk the list, keeps the two from drifting apart: a key that is read is
 * also written back under the same name, which is what makes
 * parse_config(config_to_json(c)) give c again.
 */
#pragma once

#include <cjson/cJSON.h>

#include <string>
#include <vector>

#include "config/section.h"

namespace dsz::cfg {

template <class S>
struct Field {
    enum class Kind { flag, int64, int32, number } kind;
    const char *key;
    const char *alias; /* the other accepted spelling, or nullptr */
    IntRange range;
    bool S::*flag_member = nullptr;
    int64_t S::*int64_member = nullptr;
    int S::*int32_member = nullptr;
    double S::*number_member = nullptr;
};

template <class S>
Field<S> flag(const char *key, bool S::*m, const char *alias = nullptr) {
    Field<S> f{Field<S>::Kind::flag, key, alias, {}};
    f.flag_member = m;
    return f;
}

template <class S>
Field<S> integer(const char *key, int64_t S::*m, IntRange range = {}, const char *alias = nullptr) {
    Field<S> f{Field<S>::Kind::int64, key, alias, range};
    f.int64_member = m;
    return f;
}

template <class S>
Field<S> integer(const char *key, int S::*m, IntRange range = {}) {
    Field<S> f{Field<S>::Kind::int32, key, nullptr, range};
    f.int32_member = m;
    return f;
}

template <class S>
Field<S> number(const char *key, double S::*m) {
    Field<S> f{Field<S>::Kind::number, key, nullptr, {}};
    f.number_member = m;
    return f;
}

template <class S>
void read_fields(Section &section, S &out, const std::vector<Field<S>> &fields) {
    using Kind = typename Field<S>::Kind;
    for (const Field<S> &f : fields) {
        Entry e = section.entry(f.key, f.alias);
        if (!e) continue;
        Typing t = section.typing();
        const Context &ctx = section.ctx();
        switch (f.kind) {
        case Kind::flag: out.*f.flag_member = to_bool(e, t, ctx); break;
        case Kind::int64: out.*f.int64_member = to_int(e, t, f.range, ctx); break;
        case Kind::int32: out.*f.int32_member = to_int32(e, t, f.range, ctx); break;
        case Kind::number: out.*f.number_member = to_number(e, t, ctx); break;
        }
    }
}

/* JSON for an integer, written exactly (cJSON numbers are doubles). */
cJSON *json_int(int64_t v);
/* Adds `item` to `object`, failing cleanly when cJSON runs out of memory. */
void add(cJSON *object, const char *key, cJSON *item);

template <class S>
void write_fields(cJSON *object, const S &in, const std::vector<Field<S>> &fields) {
    using Kind = typename Field<S>::Kind;
    for (const Field<S> &f : fields) {
        switch (f.kind) {
        case Kind::flag: add(object, f.key, cJSON_CreateBool(in.*f.flag_member)); break;
        case Kind::int64: add(object, f.key, json_int(in.*f.int64_member)); break;
        case Kind::int32: add(object, f.key, json_int(in.*f.int32_member)); break;
        case Kind::number: add(object, f.key, cJSON_CreateNumber(in.*f.number_member)); break;
        }
    }
}

}  // namespace dsz::cfg
