# engine.jl -- `Engine`, an owning handle of a `dsz_engine`, and the training API.
#
# The C contract: a registered tensor stays at the same address until the
# engine is freed, and dszero writes the updated weights into it at every
# optimizer step. The engine therefore keeps every registered `Array`
# reachable (Julia's GC does not move arrays), checks before each call that
# writes them that none was resized (which would move its data), and frees
# the C engine in a finalizer or in `close`. Julia arrays are column-major:
# an `Array` of size (a, b) is handed over as the row-major shape (b, a),
# which is the same memory.

"""
    Param(name, array; group = 1, bf16 = false)

One trainable parameter: a dense `Array{Float32}`, `Array{Float16}`, or
`Array{UInt16}` holding bfloat16 bits (`bf16 = true`). The array must match
the config's model dtype, stay alive (the engine keeps it) and not be resized.
"""
struct Param
    name::String
    array::Array
    group::Int
    code::UInt8
    bits::UInt8
end

function Param(name::AbstractString, a::Array; group::Integer = 1, bf16::Bool = false)
    T = eltype(a)
    code, bits = T === Float32 ? (L.kDLFloat, 32) :
                 T === Float16 ? (L.kDLFloat, 16) :
                 T === UInt16 && bf16 ? (L.kDLBfloat, 16) :
                 throw(ArgumentError("parameter '$name': $(typeof(a)) is not Float32, Float16 or bf16 bits " *
                                     "(Array{UInt16} with bf16 = true)"))
    return Param(String(name), a, Int(group), UInt8(code), UInt8(bits))
end

Param(p::Pair{<:AbstractString,<:Array}; kw...) = Param(p.first, p.second; kw...)

"""
Optimizer settings of a parameter group; `nothing` takes the config's.
`ep_size` marks a group of mixture-of-experts expert parameters (docs/moe.md).
"""
Base.@kwdef struct ParamGroup
    name::Union{Nothing,String} = nothing
    lr::Union{Nothing,Float64} = nothing
    weight_decay::Union{Nothing,Float64} = nothing
    ep_size::Union{Nothing,Int} = nothing
end

"What `step!` did (`dsz_step_info`)."
struct StepInfo
    boundary::Bool
    stepped::Bool
    skipped::Bool
    global_steps::Int64
    micro_steps::Int64
    skipped_steps::Int64
    grad_norm::Float64
    lr::Float64
    loss_scale::Float64
    comm_wait_ms::Float64
end

"A snapshot of the engine (`dsz_engine_state`); `dtype` is `Float32`, `Float16` or `:bf16`."
struct EngineState
    world_size::Int
    rank::Int
    zero_stage::Int
    dtype::Any
    train_batch_size::Int
    micro_batch_size::Int
    gradient_accumulation_steps::Int
    n_params::Int
    n_groups::Int
    n_elements::Int64
    global_steps::Int64
    micro_steps::Int64
    skipped_steps::Int64
    global_samples::Int64
    loss_scale::Float64
    grad_norm::Float64
end

mutable struct Engine
    ptr::Ptr{L.dsz_engine}
    params::Vector{Param}
    shapes::Vector{Vector{Int64}}
    addresses::Vector{Tuple{Ptr{Cvoid},Int}}  # where each array's data was registered, and its length
    logger::Union{Nothing,LogCallback}         # kept reachable: C holds a pointer to it
end

"""
    Engine(config; kwargs...)
    Engine(f, config; kwargs...)   # do-block: closes the engine when `f` returns

Creates an engine from a DeepSpeed config: JSON text when it starts with
'{', else the path of a JSON file. Keyword arguments: see `init_options`.
Freed by a finalizer; `close(engine)` frees it at once.
"""
function Engine(config::AbstractString; kwargs...)
    opts, keep = init_options(; kwargs...)
    out = Ref{Ptr{L.dsz_engine}}(C_NULL)
    GC.@preserve keep begin
        check(L.dsz_init(out, String(config), Ref(opts)))
    end
    eng = Engine(out[], Param[], Vector{Int64}[], Tuple{Ptr{Cvoid},Int}[], keep[2])
    finalizer(_free!, eng)
    return eng
end

function Engine(f::Function, config::AbstractString; kwargs...)
    eng = Engine(config; kwargs...)
    try
        return f(eng)
    finally
        close(eng)
    end
end

# The finalizer: no exceptions, no task switches.
function _free!(eng::Engine)
    if eng.ptr != C_NULL
        L.dsz_engine_free(eng.ptr)
        eng.ptr = C_NULL
    end
    return nothing
end

"Frees the engine now (idempotent). The registered arrays keep their last values."
function Base.close(eng::Engine)
    p = eng.ptr
    p == C_NULL && return nothing
    eng.ptr = C_NULL
    check(L.dsz_engine_free(p))
    empty!(eng.params)
    eng.logger = nothing
    return nothing
end

Base.isopen(eng::Engine) = eng.ptr != C_NULL

function handle(eng::Engine)
    eng.ptr == C_NULL && throw(DSZeroError(L.DSZ_ERR_INVALID_ARGUMENT, "the engine is closed"))
    return eng.ptr
end

Base.unsafe_convert(::Type{Ptr{L.dsz_engine}}, eng::Engine) = handle(eng)

function Base.show(io::IO, eng::Engine)
    print(io, "DSZero.Engine(", isopen(eng) ? "$(length(eng.params)) parameters" : "closed", ")")
end

function dltensor(data::Ptr{Cvoid}, shape::Vector{Int64}, code::UInt8, bits::UInt8)
    return L.DLTensor(data, L.DLDevice(L.kDLCPU, 0), length(shape), L.DLDataType(code, bits, 1),
                      pointer(shape), C_NULL, 0)
end

row_major_shape(a::Array) = Int64[reverse(size(a))...]

"""
    register_params!(engine, params; groups = ParamGroup[])

Registers the model's parameters (once per engine), e.g.
`register_params!(eng, [Param("fc.weight", W), Param("fc.bias", b)])` or with
pairs `["fc.weight" => W, ...]`. Parameters are laid out group by group in the
order given. On failure the engine is unchanged.
"""
function register_params!(eng::Engine, params::AbstractVector; groups::AbstractVector{ParamGroup} = ParamGroup[])
    ps = Param[p isa Param ? p : Param(p) for p in params]
    shapes = [row_major_shape(p.array) for p in ps]
    tensors = [dltensor(Ptr{Cvoid}(pointer(p.array)), s, p.code, p.bits) for (p, s) in zip(ps, shapes)]
    gnames = Union{Nothing,String}[g.name for g in groups]
    GC.@preserve ps shapes tensors gnames begin
        raw = [L.dsz_param(Ptr{Cchar}(pointer(p.name)), pointer(tensors, i), p.group - 1, 0)
               for (i, p) in enumerate(ps)]
        graw = [L.dsz_param_group(cstr_or_null(gnames[i]),
                                  (g.lr === nothing ? 0 : L.DSZ_GROUP_LR) |
                                  (g.weight_decay === nothing ? 0 : L.DSZ_GROUP_WEIGHT_DECAY) |
                                  (g.ep_size === nothing ? 0 : L.DSZ_GROUP_EXPERT),
                                  UInt32(something(g.ep_size, 0)), something(g.lr, 0.0),
                                  something(g.weight_decay, 0.0))
                for (i, g) in enumerate(groups)]
        GC.@preserve raw graw begin
            check(L.dsz_register_params(eng, raw, length(raw), isempty(graw) ? C_NULL : pointer(graw),
                                        length(graw)))
        end
    end
    eng.params = ps
    eng.shapes = shapes
    eng.addresses = [(Ptr{Cvoid}(pointer(p.array)), length(p.array)) for p in ps]
    return eng
end

"Throws unless every registered array is still where dszero writes."
function check_unmoved(eng::Engine)
    for (p, (addr, n)) in zip(eng.params, eng.addresses)
        Ptr{Cvoid}(pointer(p.array)) == addr && length(p.array) == n ||
            throw(DSZeroError(L.DSZ_ERR_STATE, "parameter '$(p.name)' was resized or moved after registration"))
    end
end

"The 1-based index of the parameter called `name`."
function param_index(eng::Engine, name::AbstractString)
    idx = Ref{Csize_t}(0)
    check(L.dsz_param_index(eng, String(name), idx))
    return Int(idx[]) + 1
end

"What to multiply the loss by before backward: loss scale / gradient_accumulation_steps."
function loss_scale(eng::Engine)
    m = Ref{Cdouble}(0)
    check(L.dsz_loss_scale(eng, m))
    return m[]
end

"""
    grad_ready!(engine, index_or_name, grad::Array)

Hands over the gradient of a parameter for this micro-batch: an array of the
parameter's element type and size (`UInt16` bf16 bits for a bf16 parameter).
Consumed on return.
"""
function grad_ready!(eng::Engine, index::Integer, grad::Array)
    1 <= index <= length(eng.params) ||
        throw(DSZeroError(L.DSZ_ERR_INVALID_ARGUMENT, "parameter index $index out of 1:$(length(eng.params))"))
    p, n = eng.params[index], eng.addresses[index][2]
    shape = eng.shapes[index]
    length(grad) == n ||
        throw(DSZeroError(L.DSZ_ERR_SHAPE, "gradient of '$(p.name)' has $(length(grad)) elements, the parameter $n"))
    T = eltype(grad)
    code, bits = T === Float32 ? (L.kDLFloat, 32) : T === Float16 ? (L.kDLFloat, 16) :
                 T === UInt16 ? (p.code, p.bits) : (L.kDLOpaqueHandle, 8 * sizeof(T))
    GC.@preserve grad shape begin
        t = Ref(dltensor(Ptr{Cvoid}(pointer(grad)), shape, UInt8(code), UInt8(bits)))
        check(L.dsz_grad_ready(eng, index - 1, t))
    end
    return nothing
end

grad_ready!(eng::Engine, name::AbstractString, grad::Array) = grad_ready!(eng, param_index(eng, name), grad)

"Ends a micro-batch's backward pass. Collective when world_size > 1."
backward!(eng::Engine) = (check(L.dsz_backward(eng)); nothing)

"""
    step!(engine) -> StepInfo

Counts the micro-batch; at the accumulation boundary updates the weights,
written into the registered arrays. An fp16 overflow returns `skipped = true`.
"""
function step!(eng::Engine)
    check_unmoved(eng)
    info = Ref{L.dsz_step_info}()
    check(L.dsz_step_info_init(info, sizeof(L.dsz_step_info)))
    check(L.dsz_step(eng, info))
    r = info[]
    return StepInfo(r.boundary != 0, r.stepped != 0, r.skipped != 0, r.global_steps, r.micro_steps,
                    r.skipped_steps, r.grad_norm, r.lr, r.loss_scale, r.comm_wait_ms)
end

function model_dtype(code, bits)
    code == L.kDLFloat && bits == 32 && return Float32
    code == L.kDLFloat && bits == 16 && return Float16
    code == L.kDLBfloat && bits == 16 && return :bf16
    return (code, bits)
end

"A snapshot of the engine: world size, rank, model dtype, batch sizes, counters."
function state(eng::Engine)
    st = Ref{L.dsz_engine_state}()
    check(L.dsz_engine_state_init(st, sizeof(L.dsz_engine_state)))
    check(L.dsz_get_state(eng, st))
    r = st[]
    return EngineState(r.world_size, r.rank, r.zero_stage, model_dtype(r.dtype_code, r.dtype_bits),
                       r.train_batch_size, r.micro_batch_size, r.gradient_accumulation_steps, r.n_params,
                       r.n_groups, r.n_elements, r.global_steps, r.micro_steps, r.skipped_steps,
                       r.global_samples, r.loss_scale, r.grad_norm)
end

"Current learning rate of parameter group `group` (1-based)."
function lr(eng::Engine, group::Integer = 1)
    v = Ref{Cdouble}(0)
    check(L.dsz_get_lr(eng, group - 1, v))
    return v[]
end

cstr_or_null(s::Nothing) = Ptr{Cchar}(C_NULL)
cstr_or_null(s::String) = Ptr{Cchar}(pointer(s))

"""
    save(engine, dir; tag = nothing, client_state = nothing)

Writes a checkpoint into `dir/<tag>/` (default tag "global_step<N>") and
moves `dir/latest` to it. `client_state` is JSON text handed back by `load!`.
"""
function save(eng::Engine, dir::AbstractString; tag = nothing, client_state = nothing)
    t = tag === nothing ? nothing : String(tag)
    c = client_state === nothing ? nothing : String(client_state)
    GC.@preserve t c begin
        check(L.dsz_save(eng, String(dir), cstr_or_null(t), cstr_or_null(c)))
    end
    return nothing
end

"""
    load!(engine, dir; tag = nothing, flags = 0) -> String

Loads `dir/<tag>` (default: the tag `dir/latest` names) into the registered
arrays and returns the client state JSON ("null" when none). `flags` are
`LibDSZero.DSZ_LOAD_*` bits. On error nothing changed.
"""
function load!(eng::Engine, dir::AbstractString; tag = nothing, flags::Integer = 0)
    check_unmoved(eng)
    t = tag === nothing ? nothing : String(tag)
    out = Ref{Ptr{Cchar}}(C_NULL)
    GC.@preserve t begin
        check(L.dsz_load(eng, String(dir), cstr_or_null(t), UInt32(flags), out))
    end
    return take_string!(out[])
end

function take_string!(p::Ptr{Cchar})
    p == C_NULL && return ""
    s = unsafe_string(p)
    L.dsz_string_free(p)
    return s
end

"""
    config_resolve(config; kwargs...) -> String

Validates a config and returns it fully resolved (defaults and "auto" filled
in) as JSON, without creating an engine.
"""
function config_resolve(config::AbstractString; kwargs...)
    opts, keep = init_options(; kwargs...)
    out = Ref{Ptr{Cchar}}(C_NULL)
    GC.@preserve keep begin
        check(L.dsz_config_resolve(String(config), Ref(opts), out))
    end
    return take_string!(out[])
end
