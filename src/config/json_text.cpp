/* json_text.cpp -- hjson-tolerant JSON reading and duplicate-key refusal
 * (see json_text.h). */
#include "config/json_text.h"

#include <cstdlib>
#include <set>

#include "common/error.h"

namespace dsz::cfg {

namespace {

struct Position {
    size_t line = 1, column = 1;
};

Position position_of(const std::string &text, size_t offset) {
    Position p;
    for (size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++p.line;
            p.column = 1;
        } else {
            ++p.column;
        }
    }
    return p;
}

/* Calls visit(i) for every character outside JSON strings; visit returns the
 * index of the last character it consumed. */
template <class Visit>
void scan_outside_strings(const std::string &s, Visit &&visit) {
    bool in_string = false;
    for (size_t i = 0; i < s.size(); ++i) {
        if (in_string) {
            if (s[i] == '\\')
                ++i;
            else if (s[i] == '"')
                in_string = false;
        } else if (s[i] == '"') {
            in_string = true;
        } else {
            i = visit(i);
        }
    }
}

/* Blanks out //, # and block comments outside strings; newlines stay. */
void blank_comments(std::string &s, const char *what, dsz_status status) {
    scan_outside_strings(s, [&](size_t i) {
        const bool line = s[i] == '#' || (s[i] == '/' && i + 1 < s.size() && s[i + 1] == '/'); /* hjson takes # too */
        if (line) {
            while (i < s.size() && s[i] != '\n') s[i++] = ' ';
            return i;
        }
        if (s[i] == '/' && i + 1 < s.size() && s[i + 1] == '*') {
            const size_t end = s.find("*/", i + 2);
            if (end == std::string::npos) {
                Position p = position_of(s, i);
                fail(status, "%s: comment opened at line %zu, column %zu is never closed", what, p.line, p.column);
            }
            for (size_t j = i; j < end + 2; ++j)
                if (s[j] != '\n') s[j] = ' ';
            return end + 1;
        }
        return i;
    });
}

/* Blanks out a comma followed only by whitespace and then } or ]. */
void blank_trailing_commas(std::string &s) {
    scan_outside_strings(s, [&](size_t i) {
        if (s[i] == ',') {
            const size_t j = s.find_first_not_of(" \t\r\n", i + 1);
            if (j != std::string::npos && (s[j] == '}' || s[j] == ']')) s[i] = ' ';
        }
        return i;
    });
}

void check_duplicates(const cJSON *node, const std::string &path, dsz_status status) {
    if (cJSON_IsObject(node)) {
        std::set<std::string> seen;
        for (const cJSON *c = node->child; c; c = c->next) {
            std::string key_path = join_path(path, c->string);
            if (!seen.insert(c->string).second)
                fail(status, "%s: duplicate key (DeepSpeed refuses configs with duplicate keys)",
                     key_path.c_str());
            check_duplicates(c, key_path, status);
        }
    } else if (cJSON_IsArray(node)) {
        int i = 0;
        for (const cJSON *c = node->child; c; c = c->next, ++i)
            check_duplicates(c, path + "[" + std::to_string(i) + "]", status);
    }
}

}  // namespace

JsonPtr parse_json_text(const std::string &text, const char *what, dsz_status status) {
    std::string clean = text;
    if (clean.compare(0, 3, "\xEF\xBB\xBF") == 0) clean.replace(0, 3, "   ");
    blank_comments(clean, what, status);
    blank_trailing_commas(clean);
    if (clean.find_first_not_of(" \t\r\n") == std::string::npos)
        fail(status, "%s: empty, expected a JSON object", what);
    if (clean.find('\0') != std::string::npos) fail(status, "%s: contains a NUL byte", what);

    const char *end = nullptr;
    JsonPtr root(cJSON_ParseWithOpts(clean.c_str(), &end, 1));
    if (!root) {
        size_t offset = end ? static_cast<size_t>(end - clean.c_str()) : 0;
        Position p = position_of(clean, offset);
        std::string near = clean.substr(offset, 20);
        for (char &c : near)
            if (c == '\n' || c == '\r' || c == '\t') c = ' ';
        fail(status, "%s: not valid JSON at line %zu, column %zu (near \"%s\")", what, p.line,
             p.column, near.c_str());
    }
    /* key paths of the config itself start at its keys; others at their name */
    check_duplicates(root.get(), std::string(what) == "config" ? "" : what, status);
    return root;
}

const cJSON *member(const cJSON *object, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(object, key);
}

std::string join_path(const std::string &parent, const std::string &key) {
    return parent.empty() ? key : parent + "." + key;
}

std::string print_json(const cJSON *value) {
    char *text = cJSON_PrintUnformatted(value);
    if (!text) fail(DSZ_ERR_OUT_OF_MEMORY, "config: out of memory printing JSON");
    std::string out(text);
    cJSON_free(text);
    return out;
}

std::string describe(const cJSON *value) {
    if (cJSON_IsObject(value)) return "an object";
    if (cJSON_IsArray(value)) return "an array";
    return print_json(value);
}

}  // namespace dsz::cfg
