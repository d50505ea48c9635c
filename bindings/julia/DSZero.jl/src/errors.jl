# errors.jl -- every failed C call becomes a `DSZeroError` holding the status
# and the message `dsz_last_error()` gave on this thread, read at once (it is
# valid only until the next dszero call on the thread).

"""
    DSZeroError(status, message)

A failed dszero call. `status` is the `dsz_status` number (`LibDSZero.DSZ_ERR_*`);
`message` is the library's, which names the culprit (a JSON key path, a
parameter, a file).
"""
struct DSZeroError <: Exception
    status::Int32
    message::String
end

"The library's short description of a status (\"invalid argument\")."
status_string(status::Integer) = unsafe_string(L.dsz_status_string(Int32(status)))

Base.showerror(io::IO, e::DSZeroError) =
    print(io, "DSZeroError: ", e.message, " (", status_string(e.status), ", status ", e.status, ")")

"Throws a `DSZeroError` for a failed status; call right after the C call."
@inline function check(status::Integer)
    status == L.DSZ_OK && return nothing
    throw(DSZeroError(Int32(status), unsafe_string(L.dsz_last_error())))
end
