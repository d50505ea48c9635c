//! Plain results: step info, engine state, load flags, version and features.
use crate::param::Dtype;
use dszero_sys as sys;
use std::ffi::CStr;

/// What `Engine::step` did (`dsz_step_info`).
#[derive(Debug, Copy, Clone, PartialEq, Default)]
pub struct StepInfo {
    /// This call ended an accumulation window.
    pub boundary: bool,
    /// The optimizer updated the parameters.
    pub stepped: bool,
    /// An fp16/bf16 overflow skipped the update.
    pub skipped: bool,
    pub global_steps: i64,
    pub micro_steps: i64,
    pub skipped_steps: i64,
    /// Unscaled global gradient norm of the last boundary; -1 when it was
    /// not finite, 0 before any.
    pub grad_norm: f64,
    /// Learning rate of group 0 for the next step.
    pub lr: f64,
    /// Loss scale for the next micro-batch.
    pub loss_scale: f64,
    /// Milliseconds this rank spent blocked on collectives since the previous step.
    pub comm_wait_ms: f64,
}

impl From<sys::dsz_step_info> for StepInfo {
    fn from(r: sys::dsz_step_info) -> Self {
        StepInfo {
            boundary: r.boundary != 0,
            stepped: r.stepped != 0,
            skipped: r.skipped != 0,
            global_steps: r.global_steps,
            micro_steps: r.micro_steps,
            skipped_steps: r.skipped_steps,
            grad_norm: r.grad_norm,
            lr: r.lr,
            loss_scale: r.loss_scale,
            comm_wait_ms: r.comm_wait_ms,
        }
    }
}

/// A snapshot of the engine (`dsz_engine_state`).
#[derive(Debug, Copy, Clone, PartialEq)]
pub struct EngineState {
    pub world_size: i32,
    pub rank: i32,
    pub zero_stage: i32,
    /// The model dtype; `None` for a dtype this crate does not know.
    pub dtype: Option<Dtype>,
    pub train_batch_size: i32,
    pub micro_batch_size: i32,
    pub gradient_accumulation_steps: i32,
    pub n_params: i32,
    pub n_groups: i32,
    pub n_elements: i64,
    pub global_steps: i64,
    pub micro_steps: i64,
    pub skipped_steps: i64,
    pub global_samples: i64,
    pub loss_scale: f64,
    pub grad_norm: f64,
}

impl From<sys::dsz_engine_state> for EngineState {
    fn from(r: sys::dsz_engine_state) -> Self {
        let dl = sys::DLDataType {
            code: r.dtype_code as u8,
            bits: r.dtype_bits as u8,
            lanes: 1,
        };
        EngineState {
            world_size: r.world_size,
            rank: r.rank,
            zero_stage: r.zero_stage,
            dtype: Dtype::from_dlpack(dl),
            train_batch_size: r.train_batch_size,
            micro_batch_size: r.micro_batch_size,
            gradient_accumulation_steps: r.gradient_accumulation_steps,
            n_params: r.n_params,
            n_groups: r.n_groups,
            n_elements: r.n_elements,
            global_steps: r.global_steps,
            micro_steps: r.micro_steps,
            skipped_steps: r.skipped_steps,
            global_samples: r.global_samples,
            loss_scale: r.loss_scale,
            grad_norm: r.grad_norm,
        }
    }
}

/// Flags of `Engine::load` (`DSZ_LOAD_*`); the default loads everything.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Default, Hash)]
pub struct LoadFlags(pub u32);

impl LoadFlags {
    pub const ALL: LoadFlags = LoadFlags(0);
    pub const SKIP_OPTIMIZER_STATES: LoadFlags = LoadFlags(sys::DSZ_LOAD_SKIP_OPTIMIZER_STATES);
    pub const SKIP_LR_SCHEDULER: LoadFlags = LoadFlags(sys::DSZ_LOAD_SKIP_LR_SCHEDULER);
    pub const MODULE_ONLY: LoadFlags = LoadFlags(sys::DSZ_LOAD_MODULE_ONLY);
}

impl std::ops::BitOr for LoadFlags {
    type Output = LoadFlags;
    fn bitor(self, rhs: LoadFlags) -> LoadFlags {
        LoadFlags(self.0 | rhs.0)
    }
}

/// What the loaded library was compiled with (`dsz_features()` bits).
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub struct Features(pub u32);

impl Features {
    pub const CUDA: u32 = sys::DSZ_FEATURE_CUDA;
    pub const NCCL: u32 = sys::DSZ_FEATURE_NCCL;
    pub const MPI: u32 = sys::DSZ_FEATURE_MPI;
    pub const AIO: u32 = sys::DSZ_FEATURE_AIO;
    pub const AVX2: u32 = sys::DSZ_FEATURE_AVX2;
    pub const AVX512: u32 = sys::DSZ_FEATURE_AVX512;

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit == bit
    }
}

/// The loaded library's version, "MAJOR.MINOR.PATCH".
pub fn version() -> String {
    // SAFETY: static storage, never NULL.
    unsafe { CStr::from_ptr(sys::dsz_version()) }
        .to_string_lossy()
        .into_owned()
}

/// The loaded library's version number (MAJOR*10000 + MINOR*100 + PATCH).
pub fn version_number() -> i32 {
    unsafe { sys::dsz_version_number() }
}

/// The version number of the header these bindings were written against.
pub const BINDINGS_VERSION_NUMBER: i32 = sys::DSZ_VERSION_NUMBER;

pub fn features() -> Features {
    Features(unsafe { sys::dsz_features() })
}
