//! `Engine<'a>`: an owning handle of a `dsz_engine` that frees itself on drop.
//!
//! `'a` is the lifetime of the host memory its parameters borrow (see
//! `param.rs`). Every call that lets dszero write into that memory (`step`,
//! `load`) takes `&mut self`, and the weights are read back only through
//! `&self`, so Rust's borrow rules rule out a read racing a write. The
//! engine also keeps the log closure alive; `Drop` frees the C engine before
//! the buffers and the closure it references.
use crate::error::{Error, Result, Status, check};
use crate::info::{EngineState, LoadFlags, StepInfo};
use crate::options::{InitOptions, LogHandler, cstring};
use crate::param::{Dtype, Element, Param, ParamGroup, ParamView};
use dszero_sys as sys;
use std::ffi::{CStr, CString, c_char};
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Arc;

pub struct Engine<'a> {
    raw: NonNull<sys::dsz_engine>,
    params: Vec<Param<'a>>,
    _log: Option<Arc<LogHandler>>,
    _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: the handle may be used from another thread (dszero keeps its last
// error per thread, and the log closure is Send + Sync); the parameters are
// unique borrows or owned buffers. Not Sync: calls are not documented as safe
// to run concurrently on one engine.
unsafe impl Send for Engine<'_> {}

impl std::fmt::Debug for Engine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("raw", &self.raw)
            .field("n_params", &self.params.len())
            .finish()
    }
}

fn path_cstring(p: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("path {} contains a NUL byte", p.display())))
}

fn opt_cstring(s: Option<&str>, what: &str) -> Result<Option<CString>> {
    s.map(|s| cstring(s, what)).transpose()
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |s| s.as_ptr())
}

/// Takes a string dszero allocated, copies it and releases it.
fn take_string(p: *mut c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: a NUL-terminated string dszero handed over; freed once, here.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    unsafe { sys::dsz_string_free(p) };
    s
}

/// Validates a config and returns it fully resolved (every default and
/// "auto" filled in) as JSON. Does not create an engine.
pub fn config_resolve(config: &str, options: &InitOptions) -> Result<String> {
    let config = cstring(config, "config")?;
    let opts = options.to_raw()?;
    let mut out: *mut c_char = ptr::null_mut();
    check(unsafe { sys::dsz_config_resolve(config.as_ptr(), &opts.raw, &mut out) })?;
    Ok(take_string(out))
}

impl<'a> Engine<'a> {
    /// Creates an engine from a DeepSpeed config: JSON text when it starts
    /// with '{', else the path of a JSON file. Collective when world_size > 1.
    pub fn new(config: &str, options: &InitOptions) -> Result<Engine<'a>> {
        let config = cstring(config, "config")?;
        let opts = options.to_raw()?;
        let mut raw = ptr::null_mut();
        check(unsafe { sys::dsz_init(&mut raw, config.as_ptr(), &opts.raw) })?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(Status::Internal, "dsz_init returned NULL"))?;
        Ok(Engine {
            raw,
            params: Vec::new(),
            _log: opts.log_handler(),
            _borrow: PhantomData,
        })
    }

    /// The raw handle, for calls this crate does not wrap. Do not free it.
    pub fn as_raw(&self) -> *mut sys::dsz_engine {
        self.raw.as_ptr()
    }

    /// Registers the model's parameters (once), all in group 0 with the
    /// config's optimizer settings. On failure the engine is unchanged and
    /// the parameters are dropped.
    pub fn register_params(&mut self, params: Vec<Param<'a>>) -> Result<()> {
        self.register_params_with_groups(params, &[])
    }

    /// Registers parameters into the given groups (`Param::group` indexes
    /// `groups`). Collective when world_size > 1.
    pub fn register_params_with_groups(
        &mut self,
        params: Vec<Param<'a>>,
        groups: &[ParamGroup],
    ) -> Result<()> {
        let tensors: Vec<sys::DLTensor> =
            params.iter().map(|p| p.dltensor(p.data, p.dtype)).collect();
        let raw_params: Vec<sys::dsz_param> = params
            .iter()
            .zip(&tensors)
            .map(|(p, t)| sys::dsz_param {
                name: p.name.as_ptr(),
                tensor: t,
                group: p.group,
                flags: 0,
            })
            .collect();
        let names: Vec<Option<CString>> = groups
            .iter()
            .map(|g| opt_cstring(g.name.as_deref(), "group name"))
            .collect::<Result<_>>()?;
        let raw_groups: Vec<sys::dsz_param_group> = groups
            .iter()
            .zip(&names)
            .map(|(g, n)| g.to_raw(n.as_ref()))
            .collect();
        check(unsafe {
            sys::dsz_register_params(
                self.raw.as_ptr(),
                raw_params.as_ptr(),
                raw_params.len(),
                if raw_groups.is_empty() {
                    ptr::null()
                } else {
                    raw_groups.as_ptr()
                },
                raw_groups.len(),
            )
        })?;
        self.params = params;
        Ok(())
    }

    /// Number of registered parameters.
    pub fn n_params(&self) -> usize {
        self.params.len()
    }

    /// The registration index of the parameter called `name`.
    pub fn param_index(&self, name: &str) -> Result<usize> {
        let name = cstring(name, "parameter name")?;
        let mut index = 0usize;
        check(unsafe { sys::dsz_param_index(self.raw.as_ptr(), name.as_ptr(), &mut index) })?;
        Ok(index)
    }

    fn registered(&self, index: usize) -> Result<&Param<'a>> {
        self.params.get(index).ok_or_else(|| {
            Error::invalid(format!(
                "parameter index {index} out of range ({} registered)",
                self.params.len()
            ))
        })
    }

    /// The current values of parameter `index` (updated by every `step`).
    pub fn param(&self, index: usize) -> Result<ParamView<'_>> {
        self.registered(index)?.view()
    }

    /// Copies parameter `index` into `out` as `f32` (any model dtype), at any
    /// ZeRO stage: it gathers the parameter for the copy and releases it, so
    /// at stage 3 across ranks it is collective (every rank reads the same
    /// parameters in the same order).
    pub fn read_param_f32(&self, index: usize, out: &mut [f32]) -> Result<()> {
        // SAFETY: DLTensor is plain data; all-zero is a valid value.
        let mut t: sys::DLTensor = unsafe { std::mem::zeroed() };
        check(unsafe { sys::dsz_gather(self.raw.as_ptr(), &index, 1, &mut t) })?;
        let copied = self.copy_gathered(index, &t, out);
        let released = check(unsafe { sys::dsz_release(self.raw.as_ptr(), &index, 1) });
        copied.and(released)
    }

    fn copy_gathered(&self, index: usize, t: &sys::DLTensor, out: &mut [f32]) -> Result<()> {
        let numel = (0..t.ndim as usize)
            .map(|d| unsafe { *t.shape.add(d) } as usize)
            .product::<usize>();
        if out.len() != numel {
            return Err(Error::new(
                Status::Shape,
                format!("read_param_f32: parameter {index} has {numel} elements, the buffer {}", out.len()),
            ));
        }
        // SAFETY: dsz_gather handed out `numel` compact elements of the
        // model dtype, valid until the release that follows this copy.
        let view = unsafe {
            match Dtype::from_dlpack(t.dtype) {
                Some(Dtype::F32) => ParamView::F32(std::slice::from_raw_parts(t.data as *const f32, numel)),
                Some(Dtype::F16) => ParamView::F16(std::slice::from_raw_parts(t.data as *const u16, numel)),
                Some(Dtype::Bf16) => ParamView::Bf16(std::slice::from_raw_parts(t.data as *const u16, numel)),
                None => return Err(Error::invalid("read_param_f32: unknown dtype".to_string())),
            }
        };
        view.copy_to_f32(out);
        Ok(())
    }

    /// What to multiply the loss by before backward: the loss scale divided
    /// by gradient_accumulation_steps.
    pub fn loss_scale(&self) -> Result<f64> {
        let mut m = 0.0;
        check(unsafe { sys::dsz_loss_scale(self.raw.as_ptr(), &mut m) })?;
        Ok(m)
    }

    /// Hands over the gradient of parameter `index` for this micro-batch:
    /// `&[f32]` for fp32 models, `&[u16]` (the parameter's fp16 or bf16 bits)
    /// for 16-bit ones. Consumed on return. Its length must be the
    /// parameter's element count; the dtype is checked by the library.
    pub fn grad_ready<T: Element>(&mut self, index: usize, grad: &[T]) -> Result<()> {
        let p = self.registered(index)?;
        if grad.len() != p.numel {
            return Err(Error::new(
                Status::Shape,
                format!(
                    "gradient of '{}' has {} elements, the parameter {}",
                    p.name(),
                    grad.len(),
                    p.numel
                ),
            ));
        }
        let mut t = p.dltensor(grad.as_ptr() as *mut _, T::dtype_for(p.dtype));
        t.strides = ptr::null_mut();
        t.device = sys::DLDevice {
            device_type: sys::kDLCPU,
            device_id: 0,
        };
        check(unsafe { sys::dsz_grad_ready(self.raw.as_ptr(), index, &t) })
    }

    /// Hands over a gradient described by a DLPack tensor.
    ///
    /// # Safety
    /// `grad` must describe readable memory of its dtype and shape for the
    /// duration of the call.
    pub unsafe fn grad_ready_dlpack(&mut self, index: usize, grad: &sys::DLTensor) -> Result<()> {
        check(unsafe { sys::dsz_grad_ready(self.raw.as_ptr(), index, grad) })
    }

    /// Ends a micro-batch's backward pass. Collective when world_size > 1.
    pub fn backward(&mut self) -> Result<()> {
        check(unsafe { sys::dsz_backward(self.raw.as_ptr()) })
    }

    /// Counts the micro-batch; at the accumulation boundary updates the
    /// weights (written into the parameters' memory). An fp16 overflow is
    /// `Ok` with `skipped`; `Status::LossScale` when the scale cannot drop.
    pub fn step(&mut self) -> Result<StepInfo> {
        let mut info = sys::dsz_step_info::default();
        check(unsafe { sys::dsz_step_info_init(&mut info, size_of::<sys::dsz_step_info>()) })?;
        check(unsafe { sys::dsz_step(self.raw.as_ptr(), &mut info) })?;
        Ok(info.into())
    }

    /// A snapshot of the engine (world size, rank, dtype, batch sizes, counters).
    pub fn state(&self) -> Result<EngineState> {
        let mut st = sys::dsz_engine_state::default();
        check(unsafe { sys::dsz_engine_state_init(&mut st, size_of::<sys::dsz_engine_state>()) })?;
        check(unsafe { sys::dsz_get_state(self.raw.as_ptr(), &mut st) })?;
        Ok(st.into())
    }

    /// Current learning rate of parameter group `group`.
    pub fn lr(&self, group: usize) -> Result<f64> {
        let mut lr = 0.0;
        check(unsafe { sys::dsz_get_lr(self.raw.as_ptr(), group, &mut lr) })?;
        Ok(lr)
    }

    /// Writes a checkpoint into `dir/<tag>/` (tag `None`: "global_step<N>")
    /// and moves `dir/latest` to it. `client_state` is any JSON value.
    pub fn save(
        &mut self,
        dir: impl AsRef<Path>,
        tag: Option<&str>,
        client_state: Option<&str>,
    ) -> Result<()> {
        let dir = path_cstring(dir.as_ref())?;
        let tag = opt_cstring(tag, "tag")?;
        let client = opt_cstring(client_state, "client state")?;
        check(unsafe {
            sys::dsz_save(
                self.raw.as_ptr(),
                dir.as_ptr(),
                opt_ptr(&tag),
                opt_ptr(&client),
            )
        })
    }

    /// Loads `dir/<tag>` (tag `None`: the one `dir/latest` names), writing
    /// the weights into the parameters' memory; returns the client state
    /// JSON saved with it ("null" when none). On error nothing changed.
    pub fn load(
        &mut self,
        dir: impl AsRef<Path>,
        tag: Option<&str>,
        flags: LoadFlags,
    ) -> Result<String> {
        let dir = path_cstring(dir.as_ref())?;
        let tag = opt_cstring(tag, "tag")?;
        let mut client: *mut c_char = ptr::null_mut();
        check(unsafe {
            sys::dsz_load(
                self.raw.as_ptr(),
                dir.as_ptr(),
                opt_ptr(&tag),
                flags.0,
                &mut client,
            )
        })?;
        Ok(take_string(client))
    }

    /// Frees the engine now, reporting the library's status (drop ignores it).
    pub fn close(self) -> Result<()> {
        let raw = self.raw.as_ptr();
        let mut me = std::mem::ManuallyDrop::new(self);
        let res = check(unsafe { sys::dsz_engine_free(raw) });
        // The C engine is gone: release the buffers and the log closure.
        unsafe {
            ptr::drop_in_place(&mut me.params);
            ptr::drop_in_place(&mut me._log);
        }
        res
    }
}

impl Drop for Engine<'_> {
    fn drop(&mut self) {
        // Fields (buffers, log closure) drop after this body: C first.
        unsafe { sys::dsz_engine_free(self.raw.as_ptr()) };
    }
}
