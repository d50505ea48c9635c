/* partition.cpp -- layer partitioning across stages (see partition.h). */
#include "pipe/partition.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <regex>

#include "common/error.h"

namespace dsz {
namespace pipe {

std::vector<int64_t> partition_uniform(int64_t n, int S) {
    if (S < 1) fail(DSZ_ERR_INVALID_ARGUMENT, "stages is %d; a pipeline needs at least one", S);
    if (n < 0) fail(DSZ_ERR_INVALID_ARGUMENT, "n_layers is %lld", static_cast<long long>(n));
    std::vector<int64_t> parts(static_cast<size_t>(S) + 1);
    if (n <= S) {
        for (int p = 0; p <= S; ++p) parts[static_cast<size_t>(p)] = std::min<int64_t>(p, n);
        return parts;
    }
    /* chunk layers each; the first n mod S stages one more */
    const int64_t chunk = n / S, extra = n % S;
    for (int p = 0; p <= S; ++p) parts[static_cast<size_t>(p)] = p * chunk + std::min<int64_t>(p, extra);
    return parts;
}

/* cost(i, j): the best (max part - min part) over splits of the first i
 * layers into j non-empty parts; DeepSpeed's tie rule (a later split point
 * wins an equal cost) and its sentinels (an unreachable state has an
 * infinite maximum) are kept, so the chosen boundaries are the same. */
std::vector<int64_t> partition_balanced(const std::vector<double> &w, int S) {
    const int64_t n = static_cast<int64_t>(w.size());
    if (n <= S) return partition_uniform(n, S);
    const double inf = std::numeric_limits<double>::infinity();
    const size_t N = static_cast<size_t>(n) + 1, M = static_cast<size_t>(S) + 1;
    std::vector<double> prefix(N, 0.0), hi(N * M, inf), lo(N * M, inf), cost(N * M, inf);
    std::vector<int64_t> at(N * M, 0);
    for (size_t i = 1; i < N; ++i) prefix[i] = prefix[i - 1] + w[i - 1];
    auto ix = [M](size_t i, size_t j) { return i * M + j; };
    hi[ix(0, 0)] = 0;
    cost[ix(0, 0)] = 0;
    for (size_t i = 1; i < N; ++i)
        for (size_t j = 1; j <= std::min(i, M - 1); ++j)
            for (size_t k = 0; k < i; ++k) {
                const double part = prefix[i] - prefix[k];
                const double top = std::max(hi[ix(k, j - 1)], part), bottom = std::min(lo[ix(k, j - 1)], part);
                const double c = top - bottom;
                if (cost[ix(i, j)] >= c) {
                    cost[ix(i, j)] = c;
                    hi[ix(i, j)] = top;
                    lo[ix(i, j)] = bottom;
                    at[ix(i, j)] = static_cast<int64_t>(k);
                }
            }
    std::vector<int64_t> parts(M);
    parts[M - 1] = n;
    for (size_t j = M - 1; j >= 1; --j) parts[j - 1] = at[ix(static_cast<size_t>(parts[j]), j)];
    return parts;
}

std::vector<double> type_weights(const std::string &pattern, const std::vector<const char *> &names) {
    std::regex re;
    try {
        re = std::regex(pattern, std::regex::ECMAScript | std::regex::icase);
    } catch (const std::regex_error &e) {
        fail(DSZ_ERR_INVALID_ARGUMENT, "partition method 'type:%s': the regex does not compile (%s)", pattern.c_str(),
             e.what());
    }
    std::vector<double> w(names.size(), 0.0);
    bool any = false;
    for (size_t i = 0; i < names.size(); ++i)
        if (names[i] && std::regex_search(names[i], re)) w[i] = 1.0, any = true;
    if (!any)
        fail(DSZ_ERR_INVALID_ARGUMENT, "partition method 'type:%s' found no valid layers to partition: no layer "
                                       "type name matches",
             pattern.c_str());
    return w;
}

std::vector<int64_t> partition_layers(const std::string &given, int64_t n, const int64_t *param_counts,
                                      const char *const *type_names, int S) {
    if (S < 1) fail(DSZ_ERR_INVALID_ARGUMENT, "stages is %d; a pipeline needs at least one", S);
    if (n < 0) fail(DSZ_ERR_INVALID_ARGUMENT, "n_layers is %lld", static_cast<long long>(n));
    std::string method = given;
    std::transform(method.begin(), method.end(), method.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const size_t count = static_cast<size_t>(n);
    if (method == "uniform") return partition_uniform(n, S);
    if (method == "parameters") {
        if (!param_counts && n > 0)
            fail(DSZ_ERR_INVALID_ARGUMENT, "partition method 'parameters' needs param_counts (one per layer)");
        std::vector<double> w(count);
        for (size_t i = 0; i < count; ++i) {
            if (param_counts[i] < 0)
                fail(DSZ_ERR_INVALID_ARGUMENT, "param_counts[%zu] is negative (%lld)", i,
                     static_cast<long long>(param_counts[i]));
            w[i] = static_cast<double>(param_counts[i]);
        }
        return partition_balanced(w, S);
    }
    if (method.rfind("type:", 0) == 0) {
        if (!type_names && n > 0)
            fail(DSZ_ERR_INVALID_ARGUMENT, "partition method '%s' needs layer_types (one name per layer)", given.c_str());
        /* DeepSpeed lower-cases the method and keeps what lies between the
         * first and the second colon. */
        const std::string rest = method.substr(5);
        const std::string pattern = rest.substr(0, rest.find(':'));
        return partition_balanced(type_weights(pattern, std::vector<const char *>(type_names, type_names + count)), S);
    }
    fail(DSZ_ERR_UNSUPPORTED, "partition method '%s' is not implemented (use \"uniform\", \"parameters\" or "
                              "\"type:<regex>\"%s)",
         given.c_str(), method == "profile" ? "; DeepSpeed does not implement \"profile\" either" : "");
}

}  // namespace pipe
}  // namespace dsz
