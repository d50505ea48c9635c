/* suggest.cpp -- closest-name suggestions for unknown keys (see suggest.h). */
#include "config/suggest.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace dsz::cfg {

static char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

std::string ascii_lower(std::string s) {
    for (char &c : s) c = lower(c);
    return s;
}

size_t edit_distance(const std::string &a, const std::string &b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t above = row[j];
            size_t substitute = diagonal + (lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1);
            row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
            diagonal = above;
        }
    }
    return row[b.size()];
}

/* One name starts with the other (a truncated or extended key), and the
 * shorter one is long enough to mean something. */
static bool prefix_related(const std::string &a, const std::string &b) {
    const std::string &shorter = a.size() < b.size() ? a : b;
    const std::string &longer = a.size() < b.size() ? b : a;
    return shorter.size() >= 4 &&
           ascii_lower(longer).compare(0, shorter.size(), ascii_lower(shorter)) == 0;
}

std::string closest(const std::string &word, const std::vector<std::string> &candidates) {
    const size_t limit = std::max<size_t>(1, word.size() / 4);
    std::string best;
    size_t best_distance = SIZE_MAX;
    for (const std::string &c : candidates) {
        if (c == word) continue;
        size_t d = edit_distance(word, c);
        if ((d <= limit || prefix_related(word, c)) && d < best_distance) {
            best = c;
            best_distance = d;
        }
    }
    return best;
}

std::string did_you_mean(const std::string &word, const std::vector<std::string> &candidates) {
    std::string best = closest(word, candidates);
    return best.empty() ? std::string() : " (did you mean \"" + best + "\"?)";
}

}  // namespace dsz::cfg
