/*
 * suggest.h -- "did you mean ...?" for misspelled config keys and names.
 *
 * Unknown keys are the most common config mistake; pointing at the closest
 * known name (Levenshtein distance, case-insensitive) turns a silent no-op
 * or a bare refusal into a one-line fix.
 */
#pragma once

#include <string>
#include <vector>

namespace dsz::cfg {

/* `s` with ASCII letters lowered. */
std::string ascii_lower(std::string s);

/* Edit distance between a and b, ignoring ASCII case. */
size_t edit_distance(const std::string &a, const std::string &b);

/* The candidate closest to `word`, or "" when none is close enough to be a
 * plausible misspelling: at most max(1, len(word) / 4) edits away, or one
 * name a prefix of the other ("gradient_clip" -> "gradient_clipping"). */
std::string closest(const std::string &word, const std::vector<std::string> &candidates);

/* " (did you mean \"x\"?)" or "" -- ready to append to a message. */
std::string did_you_mean(const std::string &word, const std::vector<std::string> &candidates);

}  // namespace dsz::cfg
