/* log.cpp -- Logger delivery: the host's callback, or stderr (see log.h). */
#include "common/log.h"

#include <cstdarg>
#include <cstdio>

#include "common/error.h"

namespace dsz {

static const char *level_name(int level) {
    switch (level) {
    case DSZ_LOG_DEBUG: return "DEBUG";
    case DSZ_LOG_INFO: return "INFO";
    case DSZ_LOG_WARNING: return "WARNING";
    default: return "ERROR";
    }
}

void Logger::log(int level, const std::string &message) const {
    if (!enabled(level)) return;
    if (fn_) {
        fn_(level, message.c_str(), user_);
        return;
    }
    std::fprintf(stderr, "[dszero] [%s] [Rank %d] %s\n", level_name(level), rank_, message.c_str());
}

void Logger::logf(int level, const char *fmt, ...) const {
    if (!enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    char stack[512];
    va_list copy;
    va_copy(copy, ap);
    int n = std::vsnprintf(stack, sizeof stack, fmt, copy);
    va_end(copy);
    if (n >= 0 && static_cast<size_t>(n) < sizeof stack) {
        log(level, stack);
    } else if (n >= 0) {
        std::string big(static_cast<size_t>(n) + 1, '\0');
        std::vsnprintf(&big[0], big.size(), fmt, ap);
        big.resize(static_cast<size_t>(n));
        log(level, big);
    }
    va_end(ap);
}

}  // namespace dsz
