/*
 * guard.h -- turning C++ failures into C statuses at the ABI boundary.
 *
 * Every extern "C" body runs inside guarded(): a dsz::Error becomes its
 * status, std::bad_alloc becomes DSZ_ERR_OUT_OF_MEMORY, anything else
 * DSZ_ERR_INTERNAL; the message lands in this thread's last-error buffer.
 * Nothing unwinds across the ABI.
 */
#pragma once

#include <new>
#include <string>

#include "common/error.h"

namespace dsz {

void set_last_error(const std::string &message);

template <class F>
dsz_status guarded(const char *fn, F &&body) noexcept {
    try {
        body();
        return DSZ_OK;
    } catch (const Error &e) {
        set_last_error(std::string(fn) + ": " + e.what());
        return e.status();
    } catch (const std::bad_alloc &) {
        set_last_error(std::string(fn) + ": out of memory");
        return DSZ_ERR_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        set_last_error(std::string(fn) + ": internal error: " + e.what());
        return DSZ_ERR_INTERNAL;
    } catch (...) {
        set_last_error(std::string(fn) + ": internal error: unknown exception");
        return DSZ_ERR_INTERNAL;
    }
}

}  // namespace dsz
