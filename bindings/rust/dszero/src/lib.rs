//! dszero from Rust: DeepSpeed's training runtime behind a safe API.
//!
//! Layers 2 and 3 of the bindings (layer 1 is the `dszero-sys` crate): an
//! [`Engine`] that frees itself on drop, errors as [`Error`] (status plus the
//! library's message), parameters from slices, owned buffers or DLPack, a log
//! callback that may be any closure, and fp16/bf16 helpers in [`half`].
//!
//! ```no_run
//! use dszero::{Engine, InitOptions, Param};
//! let mut w = vec![0.5f32; 6];
//! let mut eng = Engine::new(r#"{"train_micro_batch_size_per_gpu": 1,
//!                             "optimizer": {"type": "AdamW"}}"#, &InitOptions::default())?;
//! eng.register_params(vec![Param::f32("w", &[2, 3], &mut w)?])?;
//! let grad = vec![0.1f32; 6];
//! eng.grad_ready(0, &grad)?;
//! eng.backward()?;
//! let info = eng.step()?;
//! println!("lr {} w[0] {:?}", info.lr, eng.param(0)?.to_f32_vec()[0]);
//! # Ok::<(), dszero::Error>(())
//! ```
mod engine;
mod error;
pub mod half;
mod info;
mod options;
mod param;

pub use dszero_sys as sys;
pub use engine::{Engine, config_resolve};
pub use error::{Error, Result, Status};
pub use info::{
    BINDINGS_VERSION_NUMBER, EngineState, Features, LoadFlags, StepInfo, features, version,
    version_number,
};
pub use options::{InitOptions, LogLevel};
pub use param::{Dtype, Element, Param, ParamBuffer, ParamGroup, ParamView};
pub use engine::consolidate;
