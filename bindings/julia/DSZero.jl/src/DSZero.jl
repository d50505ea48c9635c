# DSZero.jl -- dszero (DeepSpeed's training runtime behind a C ABI) from Julia.
#
# Three layers, as in every binding of dszero: `LibDSZero` holds the raw
# `ccall`s; `Engine` is an owning handle freed by a finalizer (or `close`);
# the functions below are the idiomatic API: parameters are Julia `Array`s
# the engine keeps reachable and updates in place, errors are `DSZeroError`s
# carrying the status and the library's message. Indices are 1-based here
# (parameters, groups); the C API's are 0-based.
module DSZero

include("LibDSZero.jl")
using .LibDSZero
const L = LibDSZero

include("errors.jl")
include("bfloat16.jl")
include("options.jl")
include("engine.jl")

export Engine, DSZeroError, Param, ParamGroup, StepInfo, EngineState
export register_params!, param_index, loss_scale, grad_ready!, backward!, step!, state, lr
export save, load!, config_resolve
export bf16_bits, bf16_to_float32

"""
    version() -> VersionNumber

The loaded library's version (compare with `DSZero.HEADER_VERSION`).
"""
version() = VersionNumber(unsafe_string(L.dsz_version()))

"The dszero.h version these bindings mirror."
const HEADER_VERSION = VersionNumber(L.DSZ_VERSION_MAJOR, L.DSZ_VERSION_MINOR, L.DSZ_VERSION_PATCH)

"""
    features() -> Vector{Symbol}

What the loaded library was compiled with (`:cuda`, `:nccl`, `:mpi`, `:aio`,
`:avx2`, `:avx512`).
"""
function features()
    bits = L.dsz_features()
    names = ((L.DSZ_FEATURE_CUDA, :cuda), (L.DSZ_FEATURE_NCCL, :nccl), (L.DSZ_FEATURE_MPI, :mpi),
             (L.DSZ_FEATURE_AIO, :aio), (L.DSZ_FEATURE_AVX2, :avx2), (L.DSZ_FEATURE_AVX512, :avx512))
    return [name for (bit, name) in names if bits & bit != 0]
end

function __init__()
    _LOG_TRAMPOLINE[] = @cfunction(_log_trampoline, Cvoid, (Int32, Cstring, Ptr{Cvoid}))
end

end # module DSZero
