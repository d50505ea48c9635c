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
pub const DSZ_GROUP_EXPERT: u32 = 1 << 2;

#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct dsz_param_group {
    pub name: *const c_char,
    pub set_fields: u32,
    pub ep_size: u32,
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

    // Checkpoint consolidation
    pub fn dsz_consolidate(
        dir: *const c_char,
        tag: *const c_char,
        out_path: *const c_char,
        dtype: DLDataType,
    ) -> dsz_status;
}

// ---- pipeline parallelism ----
pub const DSZ_ERR_CALLBACK: dsz_status = 16;

pub const DSZ_PIPE_LOAD_MICRO_BATCH: i32 = 0;
pub const DSZ_PIPE_FORWARD_PASS: i32 = 1;
pub const DSZ_PIPE_BACKWARD_PASS: i32 = 2;
pub const DSZ_PIPE_SEND_ACTIVATION: i32 = 3;
pub const DSZ_PIPE_RECV_ACTIVATION: i32 = 4;
pub const DSZ_PIPE_SEND_GRAD: i32 = 5;
pub const DSZ_PIPE_RECV_GRAD: i32 = 6;
pub const DSZ_PIPE_REDUCE_TIED_GRADS: i32 = 7;
pub const DSZ_PIPE_REDUCE_GRADS: i32 = 8;
pub const DSZ_PIPE_OPTIMIZER_STEP: i32 = 9;

pub const DSZ_PIPE_SCHEDULE_TRAIN: i32 = 0;
pub const DSZ_PIPE_SCHEDULE_INFERENCE: i32 = 1;

#[repr(C)]
#[derive(Debug, Copy, Clone, Default, PartialEq, Eq)]
pub struct dsz_pipe_instr {
    pub kind: i32,
    pub step: i32,
    pub buffer_id: i32,
    pub micro_batch: i32,
}

/// Opaque pipeline executor handle (`typedef struct dsz_pipe_engine dsz_pipe_engine`).
#[repr(C)]
pub struct dsz_pipe_engine {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

pub type dsz_pipe_load_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, buffer_id: i32, micro_batch: i64) -> i32>;
pub type dsz_pipe_forward_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        buffer_id: i32,
        micro_batch: i64,
        input: *const DLTensor,
        output: *mut DLTensor,
        loss: *mut f64,
    ) -> i32
>;
pub type dsz_pipe_backward_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        buffer_id: i32,
        micro_batch: i64,
        output_grad: *const DLTensor,
        input_grad: *mut DLTensor,
    ) -> i32
>;

#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct dsz_pipe_options {
    pub size: u32,
    pub stages: i32,
    pub load_micro_batch: dsz_pipe_load_fn,
    pub forward: dsz_pipe_forward_fn,
    pub backward: dsz_pipe_backward_fn,
    pub user_data: *mut c_void,
}

#[repr(C)]
#[derive(Debug, Copy, Clone, Default, PartialEq, Eq)]
pub struct dsz_pipe_info {
    pub size: u32,
    pub stages: i32,
    pub stage_id: i32,
    pub data_parallel_size: i32,
    pub data_parallel_rank: i32,
    pub world_size: i32,
    pub rank: i32,
    pub micro_batches: i32,
    pub n_buffers: i32,
    pub n_steps: i32,
}

#[repr(C)]
#[derive(Debug, Copy, Clone, Default, PartialEq)]
pub struct dsz_pipe_batch_info {
    pub size: u32,
    pub stepped: i32,
    pub skipped: i32,
    pub reserved0: i32,
    pub loss: f64,
    pub grad_norm: f64,
    pub global_steps: i64,
    pub schedule_ms: f64,
    pub compute_ms: f64,
    pub transfer_wait_ms: f64,
    pub step_ms: f64,
}

unsafe extern "C" {
    pub fn dsz_pipe_schedule(
        kind: i32,
        micro_batches: i32,
        stages: i32,
        stage_id: i32,
        out: *mut dsz_pipe_instr,
        capacity: usize,
        n_instr: *mut usize,
    ) -> dsz_status;
    pub fn dsz_pipe_schedule_size(
        kind: i32,
        micro_batches: i32,
        stages: i32,
        stage_id: i32,
        n_buffers: *mut i32,
        n_steps: *mut i32,
    ) -> dsz_status;
    pub fn dsz_pipe_partition(
        method: *const c_char,
        n_layers: usize,
        param_counts: *const i64,
        layer_types: *mut *const c_char,
        stages: i32,
        parts: *mut i64,
    ) -> dsz_status;
    pub fn dsz_pipe_options_init(opts: *mut dsz_pipe_options, size: usize) -> dsz_status;
    pub fn dsz_pipe_init(
        out: *mut *mut dsz_pipe_engine,
        config: *const c_char,
        opts: *const dsz_init_options,
        pipe: *const dsz_pipe_options,
    ) -> dsz_status;
    pub fn dsz_pipe_free(pipe: *mut dsz_pipe_engine) -> dsz_status;
    pub fn dsz_pipe_stage_engine(pipe: *mut dsz_pipe_engine, engine: *mut *mut dsz_engine) -> dsz_status;
    pub fn dsz_pipe_info_init(info: *mut dsz_pipe_info, size: usize) -> dsz_status;
    pub fn dsz_pipe_get_info(pipe: *mut dsz_pipe_engine, info: *mut dsz_pipe_info) -> dsz_status;
    pub fn dsz_pipe_batch_info_init(info: *mut dsz_pipe_batch_info, size: usize) -> dsz_status;
    pub fn dsz_pipe_train_batch(
        pipe: *mut dsz_pipe_engine,
        loss: *mut f64,
        info: *mut dsz_pipe_batch_info,
    ) -> dsz_status;
}

// ---- mixture of experts (docs/moe.md) ----
/// Opaque expert-parallel layout (`typedef struct dsz_moe_group dsz_moe_group`).
#[repr(C)]
pub struct dsz_moe_group {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// Opaque routes of one gate call (`typedef struct dsz_moe_routing dsz_moe_routing`).
#[repr(C)]
pub struct dsz_moe_routing {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

pub const DSZ_MOE_NOISE_NONE: i32 = 0;
pub const DSZ_MOE_NOISE_JITTER: i32 = 1;
pub const DSZ_MOE_NOISE_RSAMPLE: i32 = 2;
pub const DSZ_MOE_DROP_PROBS: i32 = 0;
pub const DSZ_MOE_DROP_POSITION: i32 = 1;

#[repr(C)]
#[derive(Debug, Copy, Clone, Default, PartialEq)]
pub struct dsz_moe_gate_config {
    pub size: u32,
    pub k: i32,
    pub capacity_factor: f64,
    pub eval_capacity_factor: f64,
    pub min_capacity: i64,
    pub training: i32,
    pub drop_tokens: i32,
    pub use_rts: i32,
    pub noisy_gate_policy: i32,
    pub top2_2nd_expert_sampling: i32,
    pub drop_policy: i32,
    pub tensor_parallel_size: i64,
    pub seed: u64,
}

#[repr(C)]
#[derive(Debug, Copy, Clone, Default, PartialEq)]
pub struct dsz_moe_routing_info {
    pub size: u32,
    pub k: i32,
    pub tokens: i64,
    pub experts: i64,
    pub capacity: i64,
    pub dropped: i64,
    pub l_aux: f64,
}

unsafe extern "C" {
    pub fn dsz_moe_gate_config_init(cfg: *mut dsz_moe_gate_config, size: usize) -> dsz_status;
    pub fn dsz_moe_group_new(
        out: *mut *mut dsz_moe_group,
        engine: *mut dsz_engine,
        ep_size: i32,
        mpi_comm: *mut c_void,
    ) -> dsz_status;
    pub fn dsz_moe_group_free(group: *mut dsz_moe_group) -> dsz_status;
    pub fn dsz_moe_group_info(
        group: *mut dsz_moe_group,
        ep_size: *mut i32,
        ep_rank: *mut i32,
        edp_size: *mut i32,
        edp_rank: *mut i32,
    ) -> dsz_status;
    pub fn dsz_moe_jitter(
        x: *mut f32,
        n: usize,
        epsilon: f64,
        seed: u64,
        multipliers: *mut f32,
    ) -> dsz_status;
    pub fn dsz_moe_gate(
        out: *mut *mut dsz_moe_routing,
        cfg: *const dsz_moe_gate_config,
        logits: *const f32,
        tokens: i64,
        experts: i64,
        used_token: *const u8,
        group: *mut dsz_moe_group,
    ) -> dsz_status;
    pub fn dsz_moe_routing_free(routing: *mut dsz_moe_routing) -> dsz_status;
    pub fn dsz_moe_routing_info_init(info: *mut dsz_moe_routing_info, size: usize) -> dsz_status;
    pub fn dsz_moe_routing_get_info(
        routing: *mut dsz_moe_routing,
        info: *mut dsz_moe_routing_info,
    ) -> dsz_status;
    pub fn dsz_moe_routing_get(
        routing: *mut dsz_moe_routing,
        expert: *mut i32,
        slot: *mut i32,
        weight: *mut f32,
        exp_counts: *mut i64,
        probs: *mut f32,
    ) -> dsz_status;
    pub fn dsz_moe_gate_backward(
        routing: *mut dsz_moe_routing,
        d_weight: *const f32,
        d_l_aux: f64,
        d_probs: *mut f32,
        d_logits: *mut f32,
    ) -> dsz_status;
    pub fn dsz_moe_dispatch(
        routing: *mut dsz_moe_routing,
        tokens: *const DLTensor,
        dispatched: *mut DLTensor,
    ) -> dsz_status;
    pub fn dsz_moe_dispatch_backward(
        routing: *mut dsz_moe_routing,
        d_dispatched: *const DLTensor,
        d_tokens: *mut DLTensor,
    ) -> dsz_status;
    pub fn dsz_moe_combine(
        routing: *mut dsz_moe_routing,
        expert_out: *const DLTensor,
        out: *mut DLTensor,
    ) -> dsz_status;
    pub fn dsz_moe_combine_backward(
        routing: *mut dsz_moe_routing,
        expert_out: *const DLTensor,
        d_out: *const DLTensor,
        d_expert_out: *mut DLTensor,
        d_weight: *mut f32,
    ) -> dsz_status;
    pub fn dsz_moe_all_to_all(
        group: *mut dsz_moe_group,
        input: *const DLTensor,
        out: *mut DLTensor,
    ) -> dsz_status;
}
