# options.jl -- `dsz_init_options` from keyword arguments, and the log
# callback: a Julia function behind a `@cfunction` trampoline that catches
# every exception (nothing may unwind into C). The engine keeps the
# `LogCallback` object reachable for as long as C may call it.

"Severity of a log message, as passed to a `log` function."
@enum LogLevel::Int32 LOG_DEBUG = 0 LOG_INFO = 1 LOG_WARNING = 2 LOG_ERROR = 3

mutable struct LogCallback
    f::Any
    error::Any  # the last exception the function threw, if any
end

const _LOG_TRAMPOLINE = Ref{Ptr{Cvoid}}(C_NULL)

function _log_trampoline(level::Int32, message::Cstring, user_data::Ptr{Cvoid})::Cvoid
    try
        cb = unsafe_pointer_to_objref(user_data)::LogCallback
        cb.f(LogLevel(clamp(level, 0, 3)), unsafe_string(message))
    catch err
        try
            (unsafe_pointer_to_objref(user_data)::LogCallback).error = err
        catch
        end
    end
    return nothing
end

"""
Options of `Engine` / `config_resolve`, the fields of `dsz_init_options`:

- `world_size = 0` (from the launcher), `rank = -1`, `local_rank = -1` (from the launcher),
- `cpu_threads = 0` (all cores),
- `auto_values = nothing`: JSON text giving values for keys set to "auto",
- `log = nothing`: a function `(level::LogLevel, message::String) -> Any` replacing
  stderr; it may run on any thread inside a dszero call and must not call dszero,
- `log_level = LOG_INFO`, `log_all_ranks = false`.

Returns the struct and the objects it points into (keep them with `GC.@preserve`).
"""
function init_options(; world_size::Integer = 0, rank::Integer = -1, local_rank::Integer = -1,
                      cpu_threads::Integer = 0, auto_values::Union{Nothing,AbstractString} = nothing,
                      log = nothing, log_level::LogLevel = LOG_INFO, log_all_ranks::Bool = false)
    ref = Ref{L.dsz_init_options}()
    check(L.dsz_init_options_init(ref, sizeof(L.dsz_init_options)))
    auto = auto_values === nothing ? nothing : String(auto_values)
    cb = log === nothing ? nothing : LogCallback(log, nothing)
    o = ref[]
    opts = L.dsz_init_options(o.size, o.reserved0, world_size, rank, local_rank, cpu_threads,
                              auto === nothing ? Ptr{Cchar}(C_NULL) : Ptr{Cchar}(pointer(auto)),
                              cb === nothing ? C_NULL : _LOG_TRAMPOLINE[],
                              cb === nothing ? C_NULL : pointer_from_objref(cb),
                              Int32(log_level), Int32(log_all_ranks), C_NULL)
    return opts, (auto, cb)
end
