//! Raw, 1:1 declarations of dszero's C ABI (`include/dszero.h`).
//!
//! Layer 1 of the bindings: every `dsz_` function, struct, typedef and
//! constant of the header, spelled as in C, nothing added. Contracts
//! (ownership, blocking, collectives) are the header's: read them there.
//! Use the `dszero` crate for a safe API. `tests/bindings/check_bindings.py`
//! fails when this file and the header disagree, and `tests/layout.rs`
//! compares every struct with the C compiler.
#![no_std]
#![allow(non_camel_case_types)]

pub mod dlpack;
pub use dlpack::*;

use core::ffi::{c_char, c_void};
use core::marker::{PhantomData, PhantomPinned};

// ---- versions and features ----
pub const DSZ_VERSION_MAJOR: i32 = 0;
pub const DSZ_VERSION_MINOR: i32 = 1;
pub const DSZ_VERSION_PATCH: i32 = 0;
pub const DSZ_VERSION_NUMBER: i32 =
    DSZ_VERSION_MAJOR * 10000 + DSZ_VERSION_MINOR * 100 + DSZ_VERSION_PATCH;

pub const DSZ_FEATURE_CUDA: u32 = 1 << 0;
pub const DSZ_FEATURE_NCCL: u32 = 1 << 1;
pub const DSZ_FEATURE_MPI: u32 = 1 << 2;
pub const DSZ_FEATURE_AIO: u32 = 1 << 3;
pub const DSZ_FEATURE_AVX2: u32 = 1 << 4;
pub const DSZ_FEATURE_AVX512: u32 = 1 << 5;

// ---- status and errors ----
pub type dsz_status = i32;
pub const DSZ_OK: dsz_status = 0;
pub const DSZ_ERR_INVALID_ARGUMENT: dsz_status = 1;
pub const DSZ_ERR_CONFIG: dsz_status = 2;
pub const DSZ_ERR_DTYPE: dsz_status = 3;
pub const DSZ_ERR_SHAPE: dsz_status = 4;
pub const DSZ_ERR_STATE: dsz_status = 5;
pub const DSZ_ERR_IO: dsz_status = 6;
pub const DSZ_ERR_CHECKPOINT: dsz_status = 7;
pub const DSZ_ERR_OUT_OF_MEMORY: dsz_status = 8;
pub const DSZ_ERR_NOT_FOUND: dsz_status = 9;
pub const DSZ_ERR_UNSUPPORTED: dsz_status = 10;
pub const DSZ_ERR_COMM: dsz_status = 11;
pub const DSZ_ERR_TIMEOUT: dsz_status = 12;
pub const DSZ_ERR_LOSS_SCALE: dsz_status = 13;
pub const DSZ_ERR_INTERNAL: dsz_status = 14;
pub const DSZ_ERR_CUDA: dsz_status = 15;

// ---- logging ----
pub const DSZ_LOG_DEBUG: i32 = 0;
pub const DSZ_LOG_INFO: i32 = 1;
pub const DSZ_LOG_WARNING: i32 = 2;
pub const DSZ_LOG_ERROR: i32 = 3;

/// `typedef void (*dsz_log_fn)(int32_t level, const char *message, void *user_data)`;
/// `None` is C's NULL.
pub type dsz_log_fn =
    Option<unsafe extern "C" fn(level: i32, message: *const c_char, user_data: *mut c_void)>;

// ---- engine creation ----

/// Opaque engine handle (`typedef struct dsz_engine dsz_engine`).
#[repr(C)]
pub struct dsz_engine {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct dsz_init_options {
    pub size: u32,
    pub reserved0: u32,
    pub world_size: i32,
    pub rank: i32,
    pub local_rank: i32,
    pub cpu_threads: i32,
    pub auto_values: *const c_char,
    pub log_fn: dsz_log_fn,
    pub log_user_data: *mut c_void,
    pub log_level: i32,
    pub log_all_ranks: i32,
    /// Pointer to a host `MPI_Comm`, or null (see dszero.h).
    pub mpi_comm: *mut c_void,
}

// ---- parameters ----
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct dsz_param {
    pub name: *const c_char,
    pub tensor: *const DLTensor,
    pub group: i32,
    pub flags: u32,
}

pub const DSZ_GROUP_LR: u32 = 1 << 0;
pub const DSZ_GROUP_WEIGHT_DECAY: u32 = 1 << 1;

#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct dsz_param_group {
    pub name: *const c_char,
    pub set_fields: u32,
    pub reserved0: u32,
    pub lr: f64,
    pub weight_decay: f64,
}

// ---- training ----
#[repr(C)]
#[derive(Debug, Copy, Clone, Default, PartialEq)]
pub struct dsz_step_info {
    pub size: u32,
    pub boundary: i32,
    pub stepped: i32,
    pub skipped: i32,
    pub global_steps: i64,
    pub micro_steps: i64,
    pub skipped_steps: i64,
    pub grad_norm: f64,
    pub lr: f64,
    pub loss_scale: f64,
    pub comm_wait_ms: f64,
}

#[repr(C)]
#[derive(Debug, Copy, Clone, Default, PartialEq)]
pub struct dsz_engine_state {
    pub size: u32,
    pub world_size: i32,
    pub rank: i32,
    pub zero_stage: i32,
    pub dtype_code: i32,
    pub dtype_bits: i32,
    pub train_batch_size: i32,
    pub micro_batch_size: i32,
    pub gradient_accumulation_steps: i32,
    pub n_params: i32,
    pub n_groups: i32,
    pub reserved0: i32,
    pub n_elements: i64,
    pub global_steps: i64,
    pub micro_steps: i64,
    pub skipped_steps: i64,
    pub global_samples: i64,
    pub loss_scale: f64,
    pub grad_norm: f64,
}

#[repr(C)]
#[derive(Debug, Copy, Clone, Default, PartialEq)]
pub struct dsz_memory_stats {
    pub size: u32,
    pub reserved0: u32,
    pub host_param_bytes: i64,
    pub master_bytes: i64,
    pub optimizer_bytes: i64,
    pub grad_bytes: i64,
    pub comm_buffer_bytes: i64,
    pub gathered_bytes: i64,
    pub total_bytes: i64,
    pub peak_total_bytes: i64,
    pub comm_elements: i64,
    pub collectives: i64,
}

// ---- checkpoints ----
pub const DSZ_LOAD_SKIP_OPTIMIZER_STATES: u32 = 1 << 0;
pub const DSZ_LOAD_SKIP_LR_SCHEDULER: u32 = 1 << 1;
pub const DSZ_LOAD_MODULE_ONLY: u32 = 1 << 2;

unsafe extern "C" {
    pub fn dsz_version() -> *const c_char;
    pub fn dsz_version_number() -> i32;
    pub fn dsz_features() -> u32;

    pub fn dsz_status_string(status: dsz_status) -> *const c_char;
    pub fn dsz_last_error() -> *const c_char;
    pub fn dsz_string_free(s: *mut c_char);

    pub fn dsz_init_options_init(opts: *mut dsz_init_options, size: usize) -> dsz_status;
    pub fn dsz_init_options_new(out: *mut *mut dsz_init_options) -> dsz_status;
    pub fn dsz_init_options_free(opts: *mut dsz_init_options) -> dsz_status;
    pub fn dsz_init(
        out: *mut *mut dsz_engine,
        config: *const c_char,
        opts: *const dsz_init_options,
    ) -> dsz_status;
    pub fn dsz_engine_free(engine: *mut dsz_engine) -> dsz_status;
    pub fn dsz_config_resolve(
        config: *const c_char,
        opts: *const dsz_init_options,
        resolved_json: *mut *mut c_char,
    ) -> dsz_status;

    pub fn dsz_register_params(
        engine: *mut dsz_engine,
        params: *const dsz_param,
        n_params: usize,
        groups: *const dsz_param_group,
        n_groups: usize,
    ) -> dsz_status;
    pub fn dsz_param_index(
        engine: *mut dsz_engine,
        name: *const c_char,
        index: *mut usize,
    ) -> dsz_status;

    pub fn dsz_gather(
        engine: *mut dsz_engine,
        indices: *const usize,
        n: usize,
        out: *mut DLTensor,
    ) -> dsz_status;
    pub fn dsz_release(engine: *mut dsz_engine, indices: *const usize, n: usize) -> dsz_status;
    pub fn dsz_prefetch(engine: *mut dsz_engine, indices: *const usize, n: usize) -> dsz_status;
    pub fn dsz_param_tensor(engine: *mut dsz_engine, index: usize, out: *mut DLTensor) -> dsz_status;

    pub fn dsz_loss_scale(engine: *mut dsz_engine, multiplier: *mut f64) -> dsz_status;
    pub fn dsz_grad_ready(
        engine: *mut dsz_engine,
        index: usize,
        grad: *const DLTensor,
    ) -> dsz_status;
    pub fn dsz_backward(engine: *mut dsz_engine) -> dsz_status;
    pub fn dsz_step_info_init(info: *mut dsz_step_info, size: usize) -> dsz_status;
    pub fn dsz_step(engine: *mut dsz_engine, info: *mut dsz_step_info) -> dsz_status;
    pub fn dsz_engine_state_init(state: *mut dsz_engine_state, size: usize) -> dsz_status;
    pub fn dsz_get_state(engine: *mut dsz_engine, state: *mut dsz_engine_state) -> dsz_status;
    pub fn dsz_get_lr(engine: *mut dsz_engine, group: usize, lr: *mut f64) -> dsz_status;
    pub fn dsz_memory_stats_init(stats: *mut dsz_memory_stats, size: usize) -> dsz_status;
    pub fn dsz_memory_stats_get(engine: *mut dsz_engine, stats: *mut dsz_memory_stats) -> dsz_status;

    pub fn dsz_save(
        engine: *mut dsz_engine,
        dir: *const c_char,
        tag: *const c_char,
        client_state_json: *const c_char,
    ) -> dsz_status;
    pub fn dsz_load(
        engine: *mut dsz_engine,
        dir: *const c_char,
        tag: *const c_char,
        flags: u32,
        client_state_json: *mut *mut c_char,
    ) -> dsz_status;
}
