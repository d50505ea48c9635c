/*
 * log.h -- the library's only way to say anything.
 *
 * A library must not print on its own: every message goes through a Logger
 * whose sink the host can replace (dsz_init_options.log_fn). The default sink
 * writes to stderr, and by default only rank 0 speaks, as in DeepSpeed.
 */
#pragma once

#include <string>

#include "dszero.h"

namespace dsz {

class Logger {
public:
    Logger() = default;
    Logger(dsz_log_fn fn, void *user, int min_level, int rank, bool all_ranks)
        : fn_(fn), user_(user), min_level_(min_level), rank_(rank), all_ranks_(all_ranks) {}

    void set_rank(int rank) { rank_ = rank; }
    bool enabled(int level) const {
        return level >= min_level_ && (all_ranks_ || rank_ == 0 || level >= DSZ_LOG_ERROR);
    }
    void log(int level, const std::string &message) const;
    void logf(int level, const char *fmt, ...) const __attribute__((format(printf, 3, 4)));
    void info(const std::string &m) const { log(DSZ_LOG_INFO, m); }
    void warn(const std::string &m) const { log(DSZ_LOG_WARNING, m); }

private:
    dsz_log_fn fn_ = nullptr;
    void *user_ = nullptr;
    int min_level_ = DSZ_LOG_INFO;
    int rank_ = 0;
    bool all_ranks_ = false;
};

}  // namespace dsz
