"""_capi.py -- layer 1: raw 1:1 ctypes declarations of include/dszero.h and
the DLPack 0.6 structs, spelled as in C. Nothing is checked or converted here
(errors.py, handle.py and engine.py build on it).

``lib()`` opens the library on first use (see _loader.py) and returns the
ctypes CDLL with every function's argtypes and restype set; the table
FUNCTIONS is the single place they are written, and
tests/python/test_header_parity.py compares it, and every Structure below,
with the header.
"""
import ctypes
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_float, c_int, c_int32,
                    c_int64, c_size_t, c_uint8, c_uint16, c_uint32, c_uint64, c_void_p)

from . import _loader

# ---- versions and constants (dszero.h) ----
DSZ_VERSION_MAJOR = 0
DSZ_VERSION_MINOR = 1
DSZ_VERSION_PATCH = 0
DSZ_VERSION_NUMBER = DSZ_VERSION_MAJOR * 10000 + DSZ_VERSION_MINOR * 100 + DSZ_VERSION_PATCH

DSZ_FEATURE_CUDA = 1 << 0
DSZ_FEATURE_NCCL = 1 << 1
DSZ_FEATURE_MPI = 1 << 2
DSZ_FEATURE_AIO = 1 << 3
DSZ_FEATURE_AVX2 = 1 << 4
DSZ_FEATURE_AVX512 = 1 << 5

DSZ_OK = 0
DSZ_ERR_INVALID_ARGUMENT = 1
DSZ_ERR_CONFIG = 2
DSZ_ERR_DTYPE = 3
DSZ_ERR_SHAPE = 4
DSZ_ERR_STATE = 5
DSZ_ERR_IO = 6
DSZ_ERR_CHECKPOINT = 7
DSZ_ERR_OUT_OF_MEMORY = 8
DSZ_ERR_NOT_FOUND = 9
DSZ_ERR_UNSUPPORTED = 10
DSZ_ERR_COMM = 11
DSZ_ERR_TIMEOUT = 12
DSZ_ERR_LOSS_SCALE = 13
DSZ_ERR_INTERNAL = 14
DSZ_ERR_CUDA = 15
DSZ_ERR_CALLBACK = 16

DSZ_LOG_DEBUG = 0
DSZ_LOG_INFO = 1
DSZ_LOG_WARNING = 2
DSZ_LOG_ERROR = 3

DSZ_GROUP_LR = 1 << 0
DSZ_GROUP_WEIGHT_DECAY = 1 << 1
DSZ_GROUP_EXPERT = 1 << 2

DSZ_LOAD_SKIP_OPTIMIZER_STATES = 1 << 0
DSZ_LOAD_SKIP_LR_SCHEDULER = 1 << 1
DSZ_LOAD_MODULE_ONLY = 1 << 2

DSZ_MOE_NOISE_NONE = 0
DSZ_MOE_NOISE_JITTER = 1
DSZ_MOE_NOISE_RSAMPLE = 2

DSZ_MOE_DROP_PROBS = 0
DSZ_MOE_DROP_POSITION = 1

DSZ_PIPE_LOAD_MICRO_BATCH = 0
DSZ_PIPE_FORWARD_PASS = 1
DSZ_PIPE_BACKWARD_PASS = 2
DSZ_PIPE_SEND_ACTIVATION = 3
DSZ_PIPE_RECV_ACTIVATION = 4
DSZ_PIPE_SEND_GRAD = 5
DSZ_PIPE_RECV_GRAD = 6
DSZ_PIPE_REDUCE_TIED_GRADS = 7
DSZ_PIPE_REDUCE_GRADS = 8
DSZ_PIPE_OPTIMIZER_STEP = 9

DSZ_PIPE_SCHEDULE_TRAIN = 0
DSZ_PIPE_SCHEDULE_INFERENCE = 1

# ---- DLPack 0.6 (dlpack/dlpack.h) ----
DLPACK_VERSION = 60
kDLCPU = 1
kDLCUDA = 2
kDLCUDAHost = 3
kDLInt = 0
kDLUInt = 1
kDLFloat = 2
kDLOpaqueHandle = 3
kDLBfloat = 4
kDLComplex = 5


class DLDevice(Structure):
    _fields_ = [("device_type", c_uint32), ("device_id", c_int)]


class DLDataType(Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class DLTensor(Structure):
    _fields_ = [("data", c_void_p), ("device", DLDevice), ("ndim", c_int), ("dtype", DLDataType),
                ("shape", POINTER(c_int64)), ("strides", POINTER(c_int64)), ("byte_offset", c_uint64)]


class DLManagedTensor(Structure):
    pass


DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", c_void_p),
                            ("deleter", CFUNCTYPE(None, POINTER(DLManagedTensor)))]

# ---- dszero.h types ----
dsz_status = c_int32


class owned_char_p(c_void_p):
    """A char * that dszero allocated and the caller frees with dsz_string_free
    (kept as an address, not converted to bytes, so it can be freed)."""

dsz_log_fn = CFUNCTYPE(None, c_int32, c_char_p, c_void_p)


class dsz_engine(Structure):
    """Opaque."""


class dsz_init_options(Structure):
    _fields_ = [("size", c_uint32), ("reserved0", c_uint32), ("world_size", c_int32), ("rank", c_int32),
                ("local_rank", c_int32), ("cpu_threads", c_int32), ("auto_values", c_char_p),
                ("log_fn", dsz_log_fn), ("log_user_data", c_void_p), ("log_level", c_int32),
                ("log_all_ranks", c_int32), ("mpi_comm", c_void_p)]


class dsz_param(Structure):
    _fields_ = [("name", c_char_p), ("tensor", POINTER(DLTensor)), ("group", c_int32), ("flags", c_uint32)]


class dsz_param_group(Structure):
    _fields_ = [("name", c_char_p), ("set_fields", c_uint32), ("ep_size", c_uint32), ("lr", c_double),
                ("weight_decay", c_double)]


class dsz_step_info(Structure):
    _fields_ = [("size", c_uint32), ("boundary", c_int32), ("stepped", c_int32), ("skipped", c_int32),
                ("global_steps", c_int64), ("micro_steps", c_int64), ("skipped_steps", c_int64),
                ("grad_norm", c_double), ("lr", c_double), ("loss_scale", c_double),
                ("comm_wait_ms", c_double)]


class dsz_engine_state(Structure):
    _fields_ = [("size", c_uint32), ("world_size", c_int32), ("rank", c_int32), ("zero_stage", c_int32),
                ("dtype_code", c_int32), ("dtype_bits", c_int32), ("train_batch_size", c_int32),
                ("micro_batch_size", c_int32), ("gradient_accumulation_steps", c_int32),
                ("n_params", c_int32), ("n_groups", c_int32), ("reserved0", c_int32),
                ("n_elements", c_int64), ("global_steps", c_int64), ("micro_steps", c_int64),
                ("skipped_steps", c_int64), ("global_samples", c_int64), ("loss_scale", c_double),
                ("grad_norm", c_double)]


class dsz_memory_stats(Structure):
    _fields_ = [("size", c_uint32), ("reserved0", c_uint32), ("host_param_bytes", c_int64),
                ("master_bytes", c_int64), ("optimizer_bytes", c_int64), ("grad_bytes", c_int64),
                ("comm_buffer_bytes", c_int64), ("gathered_bytes", c_int64), ("total_bytes", c_int64),
                ("peak_total_bytes", c_int64), ("comm_elements", c_int64), ("collectives", c_int64)]


# ---- mixture of experts ----
class dsz_moe_group(Structure):
    """Opaque."""


class dsz_moe_routing(Structure):
    """Opaque."""


class dsz_moe_gate_config(Structure):
    _fields_ = [("size", c_uint32), ("k", c_int32), ("capacity_factor", c_double),
                ("eval_capacity_factor", c_double), ("min_capacity", c_int64), ("training", c_int32),
                ("drop_tokens", c_int32), ("use_rts", c_int32), ("noisy_gate_policy", c_int32),
                ("top2_2nd_expert_sampling", c_int32), ("drop_policy", c_int32),
                ("tensor_parallel_size", c_int64), ("seed", c_uint64)]


class dsz_moe_routing_info(Structure):
    _fields_ = [("size", c_uint32), ("k", c_int32), ("tokens", c_int64), ("experts", c_int64),
                ("capacity", c_int64), ("dropped", c_int64), ("l_aux", c_double)]


# ---- pipeline parallelism ----
class dsz_pipe_instr(Structure):
    _fields_ = [("kind", c_int32), ("step", c_int32), ("buffer_id", c_int32), ("micro_batch", c_int32)]


class dsz_pipe_engine(Structure):
    """Opaque."""


dsz_pipe_load_fn = CFUNCTYPE(c_int32, c_void_p, c_int32, c_int64)
dsz_pipe_forward_fn = CFUNCTYPE(c_int32, c_void_p, c_int32, c_int64, POINTER(DLTensor), POINTER(DLTensor),
                                POINTER(c_double))
dsz_pipe_backward_fn = CFUNCTYPE(c_int32, c_void_p, c_int32, c_int64, POINTER(DLTensor), POINTER(DLTensor))


class dsz_pipe_options(Structure):
    _fields_ = [("size", c_uint32), ("stages", c_int32), ("load_micro_batch", dsz_pipe_load_fn),
                ("forward", dsz_pipe_forward_fn), ("backward", dsz_pipe_backward_fn),
                ("user_data", c_void_p)]


class dsz_pipe_info(Structure):
    _fields_ = [("size", c_uint32), ("stages", c_int32), ("stage_id", c_int32),
                ("data_parallel_size", c_int32), ("data_parallel_rank", c_int32), ("world_size", c_int32),
                ("rank", c_int32), ("micro_batches", c_int32), ("n_buffers", c_int32), ("n_steps", c_int32)]


class dsz_pipe_batch_info(Structure):
    _fields_ = [("size", c_uint32), ("stepped", c_int32), ("skipped", c_int32), ("reserved0", c_int32),
                ("loss", c_double), ("grad_norm", c_double), ("global_steps", c_int64),
                ("schedule_ms", c_double), ("compute_ms", c_double), ("transfer_wait_ms", c_double),
                ("step_ms", c_double)]


_engine_p = POINTER(dsz_engine)
_size_p = POINTER(c_size_t)
_moe_group_p = POINTER(dsz_moe_group)
_routing_p = POINTER(dsz_moe_routing)
_pipe_p = POINTER(dsz_pipe_engine)
_i32_p = POINTER(c_int32)
_i64_p = POINTER(c_int64)
_f32_p = POINTER(c_float)
_tensor_p = POINTER(DLTensor)

# name -> (restype, argtypes), in the header's order.
FUNCTIONS = {
    "dsz_version": (c_char_p, []),
    "dsz_version_number": (c_int32, []),
    "dsz_features": (c_uint32, []),
    "dsz_status_string": (c_char_p, [dsz_status]),
    "dsz_last_error": (c_char_p, []),
    "dsz_string_free": (None, [owned_char_p]),
    "dsz_init_options_init": (dsz_status, [POINTER(dsz_init_options), c_size_t]),
    "dsz_init_options_new": (dsz_status, [POINTER(POINTER(dsz_init_options))]),
    "dsz_init_options_free": (dsz_status, [POINTER(dsz_init_options)]),
    "dsz_init": (dsz_status, [POINTER(_engine_p), c_char_p, POINTER(dsz_init_options)]),
    "dsz_engine_free": (dsz_status, [_engine_p]),
    "dsz_config_resolve": (dsz_status, [c_char_p, POINTER(dsz_init_options), POINTER(owned_char_p)]),
    "dsz_register_params": (dsz_status, [_engine_p, POINTER(dsz_param), c_size_t,
                                         POINTER(dsz_param_group), c_size_t]),
    "dsz_param_index": (dsz_status, [_engine_p, c_char_p, _size_p]),
    "dsz_loss_scale": (dsz_status, [_engine_p, POINTER(c_double)]),
    "dsz_grad_ready": (dsz_status, [_engine_p, c_size_t, POINTER(DLTensor)]),
    "dsz_backward": (dsz_status, [_engine_p]),
    "dsz_step_info_init": (dsz_status, [POINTER(dsz_step_info), c_size_t]),
    "dsz_step": (dsz_status, [_engine_p, POINTER(dsz_step_info)]),
    "dsz_engine_state_init": (dsz_status, [POINTER(dsz_engine_state), c_size_t]),
    "dsz_get_state": (dsz_status, [_engine_p, POINTER(dsz_engine_state)]),
    "dsz_memory_stats_init": (dsz_status, [POINTER(dsz_memory_stats), c_size_t]),
    "dsz_memory_stats_get": (dsz_status, [_engine_p, POINTER(dsz_memory_stats)]),
    "dsz_get_lr": (dsz_status, [_engine_p, c_size_t, POINTER(c_double)]),
    "dsz_gather": (dsz_status, [_engine_p, _size_p, c_size_t, POINTER(DLTensor)]),
    "dsz_release": (dsz_status, [_engine_p, _size_p, c_size_t]),
    "dsz_prefetch": (dsz_status, [_engine_p, _size_p, c_size_t]),
    "dsz_param_tensor": (dsz_status, [_engine_p, c_size_t, POINTER(DLTensor)]),
    "dsz_save": (dsz_status, [_engine_p, c_char_p, c_char_p, c_char_p]),
    "dsz_load": (dsz_status, [_engine_p, c_char_p, c_char_p, c_uint32, POINTER(owned_char_p)]),
    # mixture of experts
    "dsz_moe_gate_config_init": (dsz_status, [POINTER(dsz_moe_gate_config), c_size_t]),
    "dsz_moe_group_new": (dsz_status, [POINTER(_moe_group_p), _engine_p, c_int32, c_void_p]),
    "dsz_moe_group_free": (dsz_status, [_moe_group_p]),
    "dsz_moe_group_info": (dsz_status, [_moe_group_p, _i32_p, _i32_p, _i32_p, _i32_p]),
    "dsz_moe_jitter": (dsz_status, [_f32_p, c_size_t, c_double, c_uint64, _f32_p]),
    "dsz_moe_gate": (dsz_status, [POINTER(_routing_p), POINTER(dsz_moe_gate_config), _f32_p, c_int64,
                                  c_int64, POINTER(c_uint8), _moe_group_p]),
    "dsz_moe_routing_free": (dsz_status, [_routing_p]),
    "dsz_moe_routing_info_init": (dsz_status, [POINTER(dsz_moe_routing_info), c_size_t]),
    "dsz_moe_routing_get_info": (dsz_status, [_routing_p, POINTER(dsz_moe_routing_info)]),
    "dsz_moe_routing_get": (dsz_status, [_routing_p, _i32_p, _i32_p, _f32_p, _i64_p, _f32_p]),
    "dsz_moe_gate_backward": (dsz_status, [_routing_p, _f32_p, c_double, _f32_p, _f32_p]),
    "dsz_moe_dispatch": (dsz_status, [_routing_p, _tensor_p, _tensor_p]),
    "dsz_moe_dispatch_backward": (dsz_status, [_routing_p, _tensor_p, _tensor_p]),
    "dsz_moe_combine": (dsz_status, [_routing_p, _tensor_p, _tensor_p]),
    "dsz_moe_combine_backward": (dsz_status, [_routing_p, _tensor_p, _tensor_p, _tensor_p, _f32_p]),
    "dsz_moe_all_to_all": (dsz_status, [_moe_group_p, _tensor_p, _tensor_p]),
    # pipeline parallelism
    "dsz_pipe_schedule": (dsz_status, [c_int32, c_int32, c_int32, c_int32, POINTER(dsz_pipe_instr),
                                       c_size_t, _size_p]),
    "dsz_pipe_schedule_size": (dsz_status, [c_int32, c_int32, c_int32, c_int32, _i32_p, _i32_p]),
    "dsz_pipe_partition": (dsz_status, [c_char_p, c_size_t, _i64_p, POINTER(c_char_p), c_int32, _i64_p]),
    "dsz_pipe_options_init": (dsz_status, [POINTER(dsz_pipe_options), c_size_t]),
    "dsz_pipe_init": (dsz_status, [POINTER(_pipe_p), c_char_p, POINTER(dsz_init_options),
                                   POINTER(dsz_pipe_options)]),
    "dsz_pipe_free": (dsz_status, [_pipe_p]),
    "dsz_pipe_stage_engine": (dsz_status, [_pipe_p, POINTER(_engine_p)]),
    "dsz_pipe_info_init": (dsz_status, [POINTER(dsz_pipe_info), c_size_t]),
    "dsz_pipe_get_info": (dsz_status, [_pipe_p, POINTER(dsz_pipe_info)]),
    "dsz_pipe_batch_info_init": (dsz_status, [POINTER(dsz_pipe_batch_info), c_size_t]),
    "dsz_pipe_train_batch": (dsz_status, [_pipe_p, POINTER(c_double), POINTER(dsz_pipe_batch_info)]),
    # checkpoint consolidation
    "dsz_consolidate": (dsz_status, [c_char_p, c_char_p, c_char_p, DLDataType]),
}

def _declare(cdll):
    for name, (restype, argtypes) in FUNCTIONS.items():
        fn = getattr(cdll, name)
        fn.restype = restype
        fn.argtypes = argtypes


def lib():
    """The declared CDLL (opened on first use)."""
    loaded = _loader._loaded
    if loaded is None:
        loaded = _loader.load(_declare, (DSZ_VERSION_MAJOR, DSZ_VERSION_MINOR, DSZ_VERSION_PATCH))
    return loaded[0]


def library_path():
    """The path of the loaded library (loads it if needed)."""
    lib()
    return _loader._loaded[1]


def take_string(ptr):
    """Copies a char * that dszero handed over (an owned_char_p's value) and frees it."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode()
    finally:
        lib().dsz_string_free(ptr)
