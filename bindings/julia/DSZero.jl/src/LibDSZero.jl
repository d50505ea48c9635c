# LibDSZero.jl -- raw, 1:1 `ccall` wrappers of include/dszero.h and the
# DLPack 0.6 structs, spelled as in C. Layer 1 of the Julia bindings: nothing
# is checked or converted here (see DSZero.jl for the idiomatic API).
#
# Symbols are resolved at run time from the library `library_path()` finds
# (`ENV["DSZERO_LIBRARY"]`, next to the package, or "libdszero"), through
# `Libdl.dlsym` (an indirect ccall), so nothing about the library is baked
# into precompiled code. tests/bindings/check_bindings.py parses every
# `ccall` below and fails when one disagrees with the header.
module LibDSZero

using Libdl

# ---- finding and opening the library ----

"""
    library_path() -> String

The shared library to load: `ENV["DSZERO_LIBRARY"]` (a file, or a folder
holding libdszero), else a libdszero in the package's `deps/` folder, else the
CMake build of the checkout the package sits in (`build/src`), else the bare
name `"libdszero"` for the system's search path.
"""
function library_path()
    file = "libdszero." * Libdl.dlext
    env = get(ENV, "DSZERO_LIBRARY", "")
    if !isempty(env)
        return isdir(env) ? joinpath(env, file) : env
    end
    pkg = normpath(joinpath(@__DIR__, ".."))
    for candidate in (joinpath(pkg, "deps", file), joinpath(pkg, "..", "..", "..", "build", "src", file))
        isfile(candidate) && return abspath(candidate)
    end
    return "libdszero"
end

# Every dsz_ function of this module, resolved together on first use (so a
# library missing one fails at once, naming it). The table is never mutated
# afterwards: lookups take no lock, which keeps them safe in finalizers.
const _symbols = Ref{Any}(nothing)
const _lock = ReentrantLock()

function _load_symbols()
    lock(_lock) do
        table = _symbols[]
        table === nothing || return table
        handle = Libdl.dlopen(library_path(), Libdl.RTLD_LAZY | Libdl.RTLD_LOCAL)
        fns = [n for n in names(@__MODULE__; all = true)
               if startswith(String(n), "dsz_") && getfield(@__MODULE__, n) isa Function]
        table = Dict{Symbol,Ptr{Cvoid}}(n => Libdl.dlsym(handle, n) for n in fns)
        _symbols[] = table
        return table
    end
end

"Address of the exported function `name`."
function sym(name::Symbol)
    table = _symbols[]
    table === nothing && (table = _load_symbols())
    return (table::Dict{Symbol,Ptr{Cvoid}})[name]
end

__init__() = (_symbols[] = nothing; nothing)

# ---- DLPack 0.6 (dlpack/dlpack.h) ----

const DLPACK_VERSION = 60

const DLDeviceType = Cuint
const kDLCPU = DLDeviceType(1)
const kDLCUDA = DLDeviceType(2)
const kDLCUDAHost = DLDeviceType(3)
const kDLOpenCL = DLDeviceType(4)
const kDLVulkan = DLDeviceType(7)
const kDLMetal = DLDeviceType(8)
const kDLVPI = DLDeviceType(9)
const kDLROCM = DLDeviceType(10)
const kDLROCMHost = DLDeviceType(11)
const kDLExtDev = DLDeviceType(12)
const kDLCUDAManaged = DLDeviceType(13)

const DLDataTypeCode = Cuint
const kDLInt = DLDataTypeCode(0)
const kDLUInt = DLDataTypeCode(1)
const kDLFloat = DLDataTypeCode(2)
const kDLOpaqueHandle = DLDataTypeCode(3)
const kDLBfloat = DLDataTypeCode(4)
const kDLComplex = DLDataTypeCode(5)

struct DLDevice
    device_type::DLDeviceType
    device_id::Cint
end

struct DLDataType
    code::UInt8
    bits::UInt8
    lanes::UInt16
end

struct DLTensor
    data::Ptr{Cvoid}
    device::DLDevice
    ndim::Cint
    dtype::DLDataType
    shape::Ptr{Int64}
    strides::Ptr{Int64}
    byte_offset::UInt64
end

struct DLManagedTensor
    dl_tensor::DLTensor
    manager_ctx::Ptr{Cvoid}
    deleter::Ptr{Cvoid}
end

# ---- versions, features, status ----

const DSZ_VERSION_MAJOR = Cint(0)
const DSZ_VERSION_MINOR = Cint(1)
const DSZ_VERSION_PATCH = Cint(0)
const DSZ_VERSION_NUMBER = Cint(DSZ_VERSION_MAJOR * 10000 + DSZ_VERSION_MINOR * 100 + DSZ_VERSION_PATCH)

const DSZ_FEATURE_CUDA = UInt32(1) << 0
const DSZ_FEATURE_NCCL = UInt32(1) << 1
const DSZ_FEATURE_MPI = UInt32(1) << 2
const DSZ_FEATURE_AIO = UInt32(1) << 3
const DSZ_FEATURE_AVX2 = UInt32(1) << 4
const DSZ_FEATURE_AVX512 = UInt32(1) << 5

const dsz_status = Int32
const DSZ_OK = dsz_status(0)
const DSZ_ERR_INVALID_ARGUMENT = dsz_status(1)
const DSZ_ERR_CONFIG = dsz_status(2)
const DSZ_ERR_DTYPE = dsz_status(3)
const DSZ_ERR_SHAPE = dsz_status(4)
const DSZ_ERR_STATE = dsz_status(5)
const DSZ_ERR_IO = dsz_status(6)
const DSZ_ERR_CHECKPOINT = dsz_status(7)
const DSZ_ERR_OUT_OF_MEMORY = dsz_status(8)
const DSZ_ERR_NOT_FOUND = dsz_status(9)
const DSZ_ERR_UNSUPPORTED = dsz_status(10)
const DSZ_ERR_COMM = dsz_status(11)
const DSZ_ERR_TIMEOUT = dsz_status(12)
const DSZ_ERR_LOSS_SCALE = dsz_status(13)
const DSZ_ERR_INTERNAL = dsz_status(14)
const DSZ_ERR_CUDA = dsz_status(15)

const DSZ_LOG_DEBUG = Int32(0)
const DSZ_LOG_INFO = Int32(1)
const DSZ_LOG_WARNING = Int32(2)
const DSZ_LOG_ERROR = Int32(3)

# void (*)(int32_t level, const char *message, void *user_data)
const dsz_log_fn = Ptr{Cvoid}

# ---- structs ----

"Opaque engine handle; only ever seen as `Ptr{dsz_engine}`."
struct dsz_engine end

struct dsz_init_options
    size::UInt32
    reserved0::UInt32
    world_size::Int32
    rank::Int32
    local_rank::Int32
    cpu_threads::Int32
    auto_values::Ptr{Cchar}
    log_fn::dsz_log_fn
    log_user_data::Ptr{Cvoid}
    log_level::Int32
    log_all_ranks::Int32
    mpi_comm::Ptr{Cvoid}   # pointer to a host MPI_Comm, or C_NULL
end

struct dsz_param
    name::Ptr{Cchar}
    tensor::Ptr{DLTensor}
    group::Int32
    flags::UInt32
end

const DSZ_GROUP_LR = UInt32(1) << 0
const DSZ_GROUP_WEIGHT_DECAY = UInt32(1) << 1
const DSZ_GROUP_EXPERT = UInt32(1) << 2

struct dsz_param_group
    name::Ptr{Cchar}
    set_fields::UInt32
    ep_size::UInt32
    lr::Cdouble
    weight_decay::Cdouble
end

struct dsz_step_info
    size::UInt32
    boundary::Int32
    stepped::Int32
    skipped::Int32
    global_steps::Int64
    micro_steps::Int64
    skipped_steps::Int64
    grad_norm::Cdouble
    lr::Cdouble
    loss_scale::Cdouble
    comm_wait_ms::Cdouble
end

struct dsz_engine_state
    size::UInt32
    world_size::Int32
    rank::Int32
    zero_stage::Int32
    dtype_code::Int32
    dtype_bits::Int32
    train_batch_size::Int32
    micro_batch_size::Int32
    gradient_accumulation_steps::Int32
    n_params::Int32
    n_groups::Int32
    reserved0::Int32
    n_elements::Int64
    global_steps::Int64
    micro_steps::Int64
    skipped_steps::Int64
    global_samples::Int64
    loss_scale::Cdouble
    grad_norm::Cdouble
end

struct dsz_memory_stats
    size::UInt32
    reserved0::UInt32
    host_param_bytes::Int64
    master_bytes::Int64
    optimizer_bytes::Int64
    grad_bytes::Int64
    comm_buffer_bytes::Int64
    gathered_bytes::Int64
    total_bytes::Int64
    peak_total_bytes::Int64
    comm_elements::Int64
    collectives::Int64
end

const DSZ_LOAD_SKIP_OPTIMIZER_STATES = UInt32(1) << 0
const DSZ_LOAD_SKIP_LR_SCHEDULER = UInt32(1) << 1
const DSZ_LOAD_MODULE_ONLY = UInt32(1) << 2

# ---- functions ----

dsz_version() = ccall(sym(:dsz_version), Ptr{Cchar}, ())
dsz_version_number() = ccall(sym(:dsz_version_number), Int32, ())
dsz_features() = ccall(sym(:dsz_features), UInt32, ())

dsz_status_string(status) = ccall(sym(:dsz_status_string), Ptr{Cchar}, (dsz_status,), status)
dsz_last_error() = ccall(sym(:dsz_last_error), Ptr{Cchar}, ())
dsz_string_free(s) = ccall(sym(:dsz_string_free), Cvoid, (Ptr{Cchar},), s)

dsz_init_options_init(opts, size) =
    ccall(sym(:dsz_init_options_init), dsz_status, (Ptr{dsz_init_options}, Csize_t), opts, size)
dsz_init_options_new(out) =
    ccall(sym(:dsz_init_options_new), dsz_status, (Ptr{Ptr{dsz_init_options}},), out)
dsz_init_options_free(opts) =
    ccall(sym(:dsz_init_options_free), dsz_status, (Ptr{dsz_init_options},), opts)
dsz_init(out, config, opts) =
    ccall(sym(:dsz_init), dsz_status, (Ptr{Ptr{dsz_engine}}, Cstring, Ptr{dsz_init_options}), out, config, opts)
dsz_engine_free(engine) = ccall(sym(:dsz_engine_free), dsz_status, (Ptr{dsz_engine},), engine)
dsz_config_resolve(config, opts, resolved_json) =
    ccall(sym(:dsz_config_resolve), dsz_status, (Cstring, Ptr{dsz_init_options}, Ptr{Ptr{Cchar}}),
          config, opts, resolved_json)

dsz_register_params(engine, params, n_params, groups, n_groups) =
    ccall(sym(:dsz_register_params), dsz_status,
          (Ptr{dsz_engine}, Ptr{dsz_param}, Csize_t, Ptr{dsz_param_group}, Csize_t),
          engine, params, n_params, groups, n_groups)
dsz_param_index(engine, name, index) =
    ccall(sym(:dsz_param_index), dsz_status, (Ptr{dsz_engine}, Cstring, Ptr{Csize_t}), engine, name, index)

dsz_gather(engine, indices, n, out) =
    ccall(sym(:dsz_gather), dsz_status, (Ptr{dsz_engine}, Ptr{Csize_t}, Csize_t, Ptr{DLTensor}),
          engine, indices, n, out)
dsz_release(engine, indices, n) =
    ccall(sym(:dsz_release), dsz_status, (Ptr{dsz_engine}, Ptr{Csize_t}, Csize_t), engine, indices, n)
dsz_prefetch(engine, indices, n) =
    ccall(sym(:dsz_prefetch), dsz_status, (Ptr{dsz_engine}, Ptr{Csize_t}, Csize_t), engine, indices, n)
dsz_param_tensor(engine, index, out) =
    ccall(sym(:dsz_param_tensor), dsz_status, (Ptr{dsz_engine}, Csize_t, Ptr{DLTensor}), engine, index, out)

dsz_loss_scale(engine, multiplier) =
    ccall(sym(:dsz_loss_scale), dsz_status, (Ptr{dsz_engine}, Ptr{Cdouble}), engine, multiplier)
dsz_grad_ready(engine, index, grad) =
    ccall(sym(:dsz_grad_ready), dsz_status, (Ptr{dsz_engine}, Csize_t, Ptr{DLTensor}), engine, index, grad)
dsz_backward(engine) = ccall(sym(:dsz_backward), dsz_status, (Ptr{dsz_engine},), engine)
dsz_step_info_init(info, size) =
    ccall(sym(:dsz_step_info_init), dsz_status, (Ptr{dsz_step_info}, Csize_t), info, size)
dsz_step(engine, info) = ccall(sym(:dsz_step), dsz_status, (Ptr{dsz_engine}, Ptr{dsz_step_info}), engine, info)
dsz_engine_state_init(state, size) =
    ccall(sym(:dsz_engine_state_init), dsz_status, (Ptr{dsz_engine_state}, Csize_t), state, size)
dsz_get_state(engine, state) =
    ccall(sym(:dsz_get_state), dsz_status, (Ptr{dsz_engine}, Ptr{dsz_engine_state}), engine, state)
dsz_get_lr(engine, group, lr) =
    ccall(sym(:dsz_get_lr), dsz_status, (Ptr{dsz_engine}, Csize_t, Ptr{Cdouble}), engine, group, lr)
dsz_memory_stats_init(stats, size) =
    ccall(sym(:dsz_memory_stats_init), dsz_status, (Ptr{dsz_memory_stats}, Csize_t), stats, size)
dsz_memory_stats_get(engine, stats) =
    ccall(sym(:dsz_memory_stats_get), dsz_status, (Ptr{dsz_engine}, Ptr{dsz_memory_stats}), engine, stats)

dsz_save(engine, dir, tag, client_state_json) =
    ccall(sym(:dsz_save), dsz_status, (Ptr{dsz_engine}, Cstring, Ptr{Cchar}, Ptr{Cchar}),
          engine, dir, tag, client_state_json)
dsz_load(engine, dir, tag, flags, client_state_json) =
    ccall(sym(:dsz_load), dsz_status, (Ptr{dsz_engine}, Cstring, Ptr{Cchar}, UInt32, Ptr{Ptr{Cchar}}),
          engine, dir, tag, flags, client_state_json)

# ---- mixture of experts (docs/moe.md) ----

"Opaque expert-parallel layout; only ever seen as `Ptr{dsz_moe_group}`."
struct dsz_moe_group end
"Opaque routes of one gate call; only ever seen as `Ptr{dsz_moe_routing}`."
struct dsz_moe_routing end

const DSZ_MOE_NOISE_NONE = Int32(0)
const DSZ_MOE_NOISE_JITTER = Int32(1)
const DSZ_MOE_NOISE_RSAMPLE = Int32(2)
const DSZ_MOE_DROP_PROBS = Int32(0)
const DSZ_MOE_DROP_POSITION = Int32(1)

struct dsz_moe_gate_config
    size::UInt32
    k::Int32
    capacity_factor::Cdouble
    eval_capacity_factor::Cdouble
    min_capacity::Int64
    training::Int32
    drop_tokens::Int32
    use_rts::Int32
    noisy_gate_policy::Int32
    top2_2nd_expert_sampling::Int32
    drop_policy::Int32
    tensor_parallel_size::Int64
    seed::UInt64
end

struct dsz_moe_routing_info
    size::UInt32
    k::Int32
    tokens::Int64
    experts::Int64
    capacity::Int64
    dropped::Int64
    l_aux::Cdouble
end

dsz_moe_gate_config_init(cfg, size) =
    ccall(sym(:dsz_moe_gate_config_init), dsz_status, (Ptr{dsz_moe_gate_config}, Csize_t), cfg, size)
dsz_moe_group_new(out, engine, ep_size, mpi_comm) =
    ccall(sym(:dsz_moe_group_new), dsz_status, (Ptr{Ptr{dsz_moe_group}}, Ptr{dsz_engine}, Int32, Ptr{Cvoid}),
          out, engine, ep_size, mpi_comm)
dsz_moe_group_free(group) = ccall(sym(:dsz_moe_group_free), dsz_status, (Ptr{dsz_moe_group},), group)
dsz_moe_group_info(group, ep_size, ep_rank, edp_size, edp_rank) =
    ccall(sym(:dsz_moe_group_info), dsz_status,
          (Ptr{dsz_moe_group}, Ptr{Int32}, Ptr{Int32}, Ptr{Int32}, Ptr{Int32}),
          group, ep_size, ep_rank, edp_size, edp_rank)
dsz_moe_jitter(x, n, epsilon, seed, multipliers) =
    ccall(sym(:dsz_moe_jitter), dsz_status, (Ptr{Cfloat}, Csize_t, Cdouble, UInt64, Ptr{Cfloat}),
          x, n, epsilon, seed, multipliers)
dsz_moe_gate(out, cfg, logits, tokens, experts, used_token, group) =
    ccall(sym(:dsz_moe_gate), dsz_status,
          (Ptr{Ptr{dsz_moe_routing}}, Ptr{dsz_moe_gate_config}, Ptr{Cfloat}, Int64, Int64, Ptr{UInt8},
           Ptr{dsz_moe_group}),
          out, cfg, logits, tokens, experts, used_token, group)
dsz_moe_routing_free(routing) = ccall(sym(:dsz_moe_routing_free), dsz_status, (Ptr{dsz_moe_routing},), routing)
dsz_moe_routing_info_init(info, size) =
    ccall(sym(:dsz_moe_routing_info_init), dsz_status, (Ptr{dsz_moe_routing_info}, Csize_t), info, size)
dsz_moe_routing_get_info(routing, info) =
    ccall(sym(:dsz_moe_routing_get_info), dsz_status, (Ptr{dsz_moe_routing}, Ptr{dsz_moe_routing_info}),
          routing, info)
dsz_moe_routing_get(routing, expert, slot, weight, exp_counts, probs) =
    ccall(sym(:dsz_moe_routing_get), dsz_status,
          (Ptr{dsz_moe_routing}, Ptr{Int32}, Ptr{Int32}, Ptr{Cfloat}, Ptr{Int64}, Ptr{Cfloat}),
          routing, expert, slot, weight, exp_counts, probs)
dsz_moe_gate_backward(routing, d_weight, d_l_aux, d_probs, d_logits) =
    ccall(sym(:dsz_moe_gate_backward), dsz_status,
          (Ptr{dsz_moe_routing}, Ptr{Cfloat}, Cdouble, Ptr{Cfloat}, Ptr{Cfloat}),
          routing, d_weight, d_l_aux, d_probs, d_logits)
dsz_moe_dispatch(routing, tokens, dispatched) =
    ccall(sym(:dsz_moe_dispatch), dsz_status, (Ptr{dsz_moe_routing}, Ptr{DLTensor}, Ptr{DLTensor}),
          routing, tokens, dispatched)
dsz_moe_dispatch_backward(routing, d_dispatched, d_tokens) =
    ccall(sym(:dsz_moe_dispatch_backward), dsz_status, (Ptr{dsz_moe_routing}, Ptr{DLTensor}, Ptr{DLTensor}),
          routing, d_dispatched, d_tokens)
dsz_moe_combine(routing, expert_out, out) =
    ccall(sym(:dsz_moe_combine), dsz_status, (Ptr{dsz_moe_routing}, Ptr{DLTensor}, Ptr{DLTensor}),
          routing, expert_out, out)
dsz_moe_combine_backward(routing, expert_out, d_out, d_expert_out, d_weight) =
    ccall(sym(:dsz_moe_combine_backward), dsz_status,
          (Ptr{dsz_moe_routing}, Ptr{DLTensor}, Ptr{DLTensor}, Ptr{DLTensor}, Ptr{Cfloat}),
          routing, expert_out, d_out, d_expert_out, d_weight)
dsz_moe_all_to_all(group, input, out) =
    ccall(sym(:dsz_moe_all_to_all), dsz_status, (Ptr{dsz_moe_group}, Ptr{DLTensor}, Ptr{DLTensor}),
          group, input, out)

# ---- pipeline parallelism ----

const DSZ_ERR_CALLBACK = dsz_status(16)

const DSZ_PIPE_LOAD_MICRO_BATCH = Int32(0)
const DSZ_PIPE_FORWARD_PASS = Int32(1)
const DSZ_PIPE_BACKWARD_PASS = Int32(2)
const DSZ_PIPE_SEND_ACTIVATION = Int32(3)
const DSZ_PIPE_RECV_ACTIVATION = Int32(4)
const DSZ_PIPE_SEND_GRAD = Int32(5)
const DSZ_PIPE_RECV_GRAD = Int32(6)
const DSZ_PIPE_REDUCE_TIED_GRADS = Int32(7)
const DSZ_PIPE_REDUCE_GRADS = Int32(8)
const DSZ_PIPE_OPTIMIZER_STEP = Int32(9)

const DSZ_PIPE_SCHEDULE_TRAIN = Int32(0)
const DSZ_PIPE_SCHEDULE_INFERENCE = Int32(1)

struct dsz_pipe_instr
    kind::Int32
    step::Int32
    buffer_id::Int32
    micro_batch::Int32
end

"Opaque pipeline executor handle; only ever seen as `Ptr{dsz_pipe_engine}`."
struct dsz_pipe_engine end

# int32_t (*)(void *user_data, int32_t buffer_id, int64_t micro_batch)
const dsz_pipe_load_fn = Ptr{Cvoid}
# int32_t (*)(void *, int32_t, int64_t, const DLTensor *input, DLTensor *output, double *loss)
const dsz_pipe_forward_fn = Ptr{Cvoid}
# int32_t (*)(void *, int32_t, int64_t, const DLTensor *output_grad, DLTensor *input_grad)
const dsz_pipe_backward_fn = Ptr{Cvoid}

struct dsz_pipe_options
    size::UInt32
    stages::Int32
    load_micro_batch::dsz_pipe_load_fn
    forward::dsz_pipe_forward_fn
    backward::dsz_pipe_backward_fn
    user_data::Ptr{Cvoid}
end

struct dsz_pipe_info
    size::UInt32
    stages::Int32
    stage_id::Int32
    data_parallel_size::Int32
    data_parallel_rank::Int32
    world_size::Int32
    rank::Int32
    micro_batches::Int32
    n_buffers::Int32
    n_steps::Int32
end

struct dsz_pipe_batch_info
    size::UInt32
    stepped::Int32
    skipped::Int32
    reserved0::Int32
    loss::Cdouble
    grad_norm::Cdouble
    global_steps::Int64
    schedule_ms::Cdouble
    compute_ms::Cdouble
    transfer_wait_ms::Cdouble
    step_ms::Cdouble
end

dsz_pipe_schedule(kind, micro_batches, stages, stage_id, out, capacity, n_instr) =
    ccall(sym(:dsz_pipe_schedule), dsz_status, (Int32, Int32, Int32, Int32, Ptr{dsz_pipe_instr}, Csize_t, Ptr{Csize_t}),
          kind, micro_batches, stages, stage_id, out, capacity, n_instr)
dsz_pipe_schedule_size(kind, micro_batches, stages, stage_id, n_buffers, n_steps) =
    ccall(sym(:dsz_pipe_schedule_size), dsz_status, (Int32, Int32, Int32, Int32, Ptr{Int32}, Ptr{Int32}),
          kind, micro_batches, stages, stage_id, n_buffers, n_steps)
dsz_pipe_partition(method, n_layers, param_counts, layer_types, stages, parts) =
    ccall(sym(:dsz_pipe_partition), dsz_status, (Cstring, Csize_t, Ptr{Int64}, Ptr{Ptr{Cchar}}, Int32, Ptr{Int64}),
          method, n_layers, param_counts, layer_types, stages, parts)
dsz_pipe_options_init(opts, size) =
    ccall(sym(:dsz_pipe_options_init), dsz_status, (Ptr{dsz_pipe_options}, Csize_t), opts, size)
dsz_pipe_init(out, config, opts, pipe) =
    ccall(sym(:dsz_pipe_init), dsz_status,
          (Ptr{Ptr{dsz_pipe_engine}}, Cstring, Ptr{dsz_init_options}, Ptr{dsz_pipe_options}), out, config, opts, pipe)
dsz_pipe_free(pipe) = ccall(sym(:dsz_pipe_free), dsz_status, (Ptr{dsz_pipe_engine},), pipe)
dsz_pipe_stage_engine(pipe, engine) =
    ccall(sym(:dsz_pipe_stage_engine), dsz_status, (Ptr{dsz_pipe_engine}, Ptr{Ptr{dsz_engine}}), pipe, engine)
dsz_pipe_info_init(info, size) =
    ccall(sym(:dsz_pipe_info_init), dsz_status, (Ptr{dsz_pipe_info}, Csize_t), info, size)
dsz_pipe_get_info(pipe, info) =
    ccall(sym(:dsz_pipe_get_info), dsz_status, (Ptr{dsz_pipe_engine}, Ptr{dsz_pipe_info}), pipe, info)
dsz_pipe_batch_info_init(info, size) =
    ccall(sym(:dsz_pipe_batch_info_init), dsz_status, (Ptr{dsz_pipe_batch_info}, Csize_t), info, size)
dsz_pipe_train_batch(pipe, loss, info) =
    ccall(sym(:dsz_pipe_train_batch), dsz_status, (Ptr{dsz_pipe_engine}, Ptr{Cdouble}, Ptr{dsz_pipe_batch_info}),
          pipe, loss, info)

# Checkpoint consolidation
dsz_consolidate(dir, tag, out_path, dtype) =
    ccall(sym(:dsz_consolidate), dsz_status, (Cstring, Ptr{Cchar}, Cstring, DLDataType), dir, tag, out_path, dtype)

end # module LibDSZero
