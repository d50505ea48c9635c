/*
 * config_testing.h -- helpers shared by the config parser's tests: parsing
 * with host values, and asserting that a config is refused with a message
 * that starts with the right key path and gives the right reason.
 */
#pragma once

/* before cmocka.h, whose fail() macro would clash with dsz::fail */
#include "common/error.h"
#include "config/config.h"

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h> /* CMocka 1.1's header has no extern "C" of its own */
}

namespace cfgtest {

inline dsz::HostValues host(int world_size = 1, const std::string &auto_values = "") {
    dsz::HostValues h;
    h.world_size = world_size;
    h.auto_values_json = auto_values;
    return h;
}

/* A host that gives the micro-batch size, as fragments need. */
inline dsz::HostValues micro(int n = 4, int world_size = 1) {
    return host(world_size, "{\"train_micro_batch_size_per_gpu\": " + std::to_string(n) + "}");
}

inline std::string fixture(const std::string &name) {
    std::ifstream in(std::string(DSZ_FIXTURE_DIR) + "/seed-configs/" + name);
    if (!in) fail_msg("missing fixture %s", name.c_str());
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

/* Parses, failing the test on any refusal. */
inline dsz::ParseResult parse(const std::string &text, const dsz::HostValues &h = micro()) {
    std::string error;
    try {
        return dsz::parse_config(text, h);
    } catch (const dsz::Error &e) {
        error = e.what();
    }
    fail_msg("refused: %s\n  config: %s", error.c_str(), text.c_str());
    return {};
}

/* The refusal's message; fails the test if the config is accepted or the
 * status is not `status`. */
inline std::string refusal(const std::string &text, const dsz::HostValues &h = micro(),
                           dsz_status status = DSZ_ERR_CONFIG) {
    dsz_status got = DSZ_OK;
    std::string message;
    try {
        dsz::parse_config(text, h);
    } catch (const dsz::Error &e) {
        got = e.status();
        message = e.what();
    }
    if (got == DSZ_OK) fail_msg("accepted, but should be refused: %s", text.c_str());
    if (got != status) fail_msg("status %d instead of %d: %s", got, status, message.c_str());
    return message;
}

inline bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

/* Asserts the refusal message starts with `path` followed by ": " (or by
 * " " for messages that compare values) and contains every `part`. */
inline void expect_refusal(const std::string &text, const std::string &path,
                           std::initializer_list<const char *> parts,
                           const dsz::HostValues &h = micro()) {
    std::string m = refusal(text, h);
    if (m.compare(0, path.size(), path) != 0 ||
        (m.size() > path.size() && m[path.size()] != ':' && m[path.size()] != ' '))
        fail_msg("message does not start with \"%s\": %s", path.c_str(), m.c_str());
    for (const char *p : parts)
        if (!contains(m, p)) fail_msg("message lacks \"%s\": %s", p, m.c_str());
}

/* The warning that contains `needle`, or fails the test. */
inline std::string warning_with(const dsz::ParseResult &r, const std::string &needle) {
    for (const std::string &w : r.warnings)
        if (contains(w, needle)) return w;
    std::string all;
    for (const std::string &w : r.warnings) all += "\n  " + w;
    fail_msg("no warning contains \"%s\"; warnings:%s", needle.c_str(), all.c_str());
    return "";
}

}  // namespace cfgtest
