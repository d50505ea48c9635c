/*
 * error.h -- how failures travel inside dszero.
 *
 * Internal code throws dsz::Error carrying a dsz_status and a message that
 * names the culprit (a JSON path, a parameter, a file). Only the C shims in
 * src/api catch it and turn it into a status plus dsz_last_error(); nothing
 * unwinds across the ABI.
 */
#pragma once

#include <stdexcept>
#include <string>

#include "dszero.h"

namespace dsz {

class Error : public std::runtime_error {
public:
    Error(dsz_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}
    dsz_status status() const { return status_; }

private:
    dsz_status status_;
};

/* printf into a std::string. */
std::string strprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Throws Error(status, formatted message). */
[[noreturn]] void fail(dsz_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

}  // namespace dsz
