//! Parameters handed to an engine, and how their memory is kept valid.
//!
//! The C contract: a registered tensor must stay at the same address until
//! the engine is freed, and dszero writes the updated weights into it at every
//! optimizer step. A [`Param<'a>`] therefore either *borrows* host memory
//! mutably for `'a` (the engine is an `Engine<'a>`, so the borrow checker
//! keeps the slice alive and untouched by anyone else while the engine
//! lives), or *owns* it (a [`ParamBuffer`] moved into the engine: moving a
//! `Vec` does not move its heap buffer). DLPack tensors are `unsafe`: the
//! caller vouches for their memory. Weights are read back through the engine
//! ([`crate::Engine::param`]), never while dszero may write them.
use crate::error::{Error, Result};
use crate::half;
use crate::options::cstring;
use dszero_sys as sys;
use std::ffi::{CString, c_void};
use std::marker::PhantomData;

/// The three model dtypes dszero trains in.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    pub fn to_dlpack(self) -> sys::DLDataType {
        let (code, bits) = match self {
            Dtype::F32 => (sys::kDLFloat, 32),
            Dtype::F16 => (sys::kDLFloat, 16),
            Dtype::Bf16 => (sys::kDLBfloat, 16),
        };
        sys::DLDataType {
            code: code as u8,
            bits,
            lanes: 1,
        }
    }

    pub fn from_dlpack(d: sys::DLDataType) -> Option<Dtype> {
        match (d.code as sys::DLDataTypeCode, d.bits, d.lanes) {
            (sys::kDLFloat, 32, 1) => Some(Dtype::F32),
            (sys::kDLFloat, 16, 1) => Some(Dtype::F16),
            (sys::kDLBfloat, 16, 1) => Some(Dtype::Bf16),
            _ => None,
        }
    }

    pub fn size(self) -> usize {
        if self == Dtype::F32 { 4 } else { 2 }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u16 {}
}

/// Element types of host buffers: `f32`, or `u16` holding fp16/bf16 bits.
pub trait Element: sealed::Sealed + Copy + 'static {
    /// The dtype a buffer of this element describes for a parameter of
    /// dtype `param` (`u16` takes the parameter's 16-bit format).
    fn dtype_for(param: Dtype) -> Dtype;
}

impl Element for f32 {
    fn dtype_for(_: Dtype) -> Dtype {
        Dtype::F32
    }
}

impl Element for u16 {
    fn dtype_for(param: Dtype) -> Dtype {
        if param == Dtype::Bf16 {
            Dtype::Bf16
        } else {
            Dtype::F16
        }
    }
}

/// Parameter memory owned by the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamBuffer {
    F32(Vec<f32>),
    F16(Vec<u16>),
    Bf16(Vec<u16>),
}

impl ParamBuffer {
    fn parts(&mut self) -> (*mut c_void, Dtype, usize) {
        match self {
            ParamBuffer::F32(v) => (v.as_mut_ptr().cast(), Dtype::F32, v.len()),
            ParamBuffer::F16(v) => (v.as_mut_ptr().cast(), Dtype::F16, v.len()),
            ParamBuffer::Bf16(v) => (v.as_mut_ptr().cast(), Dtype::Bf16, v.len()),
        }
    }
}

/// Read access to a registered parameter's current values.
#[derive(Debug, Copy, Clone)]
pub enum ParamView<'e> {
    F32(&'e [f32]),
    F16(&'e [u16]),
    Bf16(&'e [u16]),
}

impl ParamView<'_> {
    pub fn len(&self) -> usize {
        match self {
            ParamView::F32(s) => s.len(),
            ParamView::F16(s) | ParamView::Bf16(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the values as `f32` into `out` (exact for every dtype).
    pub fn copy_to_f32(&self, out: &mut [f32]) {
        assert_eq!(out.len(), self.len(), "copy_to_f32: length mismatch");
        match *self {
            ParamView::F32(s) => out.copy_from_slice(s),
            ParamView::F16(s) => out
                .iter_mut()
                .zip(s)
                .for_each(|(o, &h)| *o = half::f16_bits_to_f32(h)),
            ParamView::Bf16(s) => out
                .iter_mut()
                .zip(s)
                .for_each(|(o, &b)| *o = half::bf16_bits_to_f32(b)),
        }
    }

    pub fn to_f32_vec(&self) -> Vec<f32> {
        let mut v = vec![0.0; self.len()];
        self.copy_to_f32(&mut v);
        v
    }
}

/// One trainable parameter, borrowing (`'a`) or owning its host memory.
#[derive(Debug)]
pub struct Param<'a> {
    pub(crate) name: CString,
    pub(crate) shape: Vec<i64>,
    pub(crate) strides: Option<Vec<i64>>,
    pub(crate) data: *mut c_void,
    pub(crate) device: sys::DLDevice,
    pub(crate) dtype: Dtype,
    pub(crate) numel: usize,
    pub(crate) group: i32,
    pub(crate) owned: Option<ParamBuffer>,
    pub(crate) _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: a Param is a unique borrow of (or owns) plain numeric memory; the
// DLPack constructor makes the caller vouch for the same.
unsafe impl Send for Param<'_> {}

fn numel_of(name: &str, shape: &[usize], len: usize) -> Result<(Vec<i64>, usize)> {
    let numel = shape.iter().product::<usize>();
    if numel != len {
        return Err(Error::new(
            crate::Status::Shape,
            format!("parameter '{name}': shape {shape:?} has {numel} elements, the buffer {len}"),
        ));
    }
    Ok((shape.iter().map(|&d| d as i64).collect(), numel))
}

impl<'a> Param<'a> {
    fn borrowed(
        name: &str,
        shape: &[usize],
        data: *mut c_void,
        len: usize,
        dtype: Dtype,
    ) -> Result<Param<'a>> {
        let (shape, numel) = numel_of(name, shape, len)?;
        Ok(Param {
            name: cstring(name, "parameter name")?,
            shape,
            strides: None,
            data,
            device: sys::DLDevice {
                device_type: sys::kDLCPU,
                device_id: 0,
            },
            dtype,
            numel,
            group: 0,
            owned: None,
            _borrow: PhantomData,
        })
    }

    /// An fp32 parameter in `data` (row-major `shape`), borrowed for `'a`.
    pub fn f32(name: &str, shape: &[usize], data: &'a mut [f32]) -> Result<Param<'a>> {
        Self::borrowed(
            name,
            shape,
            data.as_mut_ptr().cast(),
            data.len(),
            Dtype::F32,
        )
    }

    /// An fp16 parameter (IEEE binary16 bits), borrowed for `'a`.
    pub fn f16(name: &str, shape: &[usize], data: &'a mut [u16]) -> Result<Param<'a>> {
        Self::borrowed(
            name,
            shape,
            data.as_mut_ptr().cast(),
            data.len(),
            Dtype::F16,
        )
    }

    /// A bf16 parameter (bfloat16 bits), borrowed for `'a`.
    pub fn bf16(name: &str, shape: &[usize], data: &'a mut [u16]) -> Result<Param<'a>> {
        Self::borrowed(
            name,
            shape,
            data.as_mut_ptr().cast(),
            data.len(),
            Dtype::Bf16,
        )
    }

    /// A parameter whose buffer the engine takes and owns.
    pub fn owned(name: &str, shape: &[usize], mut buffer: ParamBuffer) -> Result<Param<'a>> {
        let (ptr, dtype, len) = buffer.parts();
        let mut p = Self::borrowed(name, shape, ptr, len, dtype)?;
        p.owned = Some(buffer);
        Ok(p)
    }

    /// A parameter described by a DLPack tensor. Shape and strides are
    /// copied; dtype and placement are checked by the library at
    /// registration.
    ///
    /// # Safety
    /// `tensor.data` (plus `byte_offset`) must point to memory that is valid
    /// for reads and writes of the whole tensor for `'a`, that nothing else
    /// accesses while the engine lives, and `shape`/`strides` must be valid
    /// for `ndim` elements (strides may be NULL).
    pub unsafe fn from_dlpack(name: &str, tensor: &sys::DLTensor) -> Result<Param<'a>> {
        let dtype = Dtype::from_dlpack(tensor.dtype).ok_or_else(|| {
            Error::new(crate::Status::Dtype, format!(
                "parameter '{name}': DLPack dtype (code {}, bits {}, lanes {}) is not float32, float16 or bfloat16",
                tensor.dtype.code, tensor.dtype.bits, tensor.dtype.lanes))
        })?;
        let ndim = tensor.ndim.max(0) as usize;
        let read = |p: *const i64| -> Vec<i64> {
            if p.is_null() || ndim == 0 {
                Vec::new()
            } else {
                unsafe { std::slice::from_raw_parts(p, ndim) }.to_vec()
            }
        };
        let shape = read(tensor.shape);
        if shape.len() != ndim {
            return Err(Error::invalid(format!(
                "parameter '{name}': DLPack shape is NULL"
            )));
        }
        let numel = shape.iter().map(|&d| d.max(0) as usize).product();
        let strides = (!tensor.strides.is_null()).then(|| read(tensor.strides));
        let data = unsafe { tensor.data.cast::<u8>().add(tensor.byte_offset as usize) }.cast();
        Ok(Param {
            name: cstring(name, "parameter name")?,
            shape,
            strides,
            data,
            device: tensor.device,
            dtype,
            numel,
            group: 0,
            owned: None,
            _borrow: PhantomData,
        })
    }

    /// Puts the parameter into group `index` of `register_params_with_groups`.
    pub fn group(mut self, index: i32) -> Self {
        self.group = index;
        self
    }

    pub fn name(&self) -> &str {
        self.name.to_str().unwrap_or("")
    }

    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    /// A DLTensor describing this parameter (valid while `self` is).
    pub(crate) fn dltensor(&self, data: *mut c_void, dtype: Dtype) -> sys::DLTensor {
        sys::DLTensor {
            data,
            device: self.device,
            ndim: self.shape.len() as i32,
            dtype: dtype.to_dlpack(),
            shape: self.shape.as_ptr() as *mut i64,
            strides: self
                .strides
                .as_ref()
                .map_or(std::ptr::null_mut(), |s| s.as_ptr() as *mut i64),
            byte_offset: 0,
        }
    }

    /// The current values. Sound only while the library is not writing them
    /// (the engine hands this out under `&self`).
    pub(crate) fn view(&self) -> Result<ParamView<'_>> {
        if self.data.is_null() || (self.data as usize) % self.dtype.size() != 0 {
            return Err(Error::invalid(format!(
                "parameter '{}': its data pointer is NULL or misaligned, cannot be read as a slice",
                self.name()
            )));
        }
        let ptr = self.data as *const u16;
        // SAFETY: data is valid for numel elements of dtype for the engine's
        // life (borrowed for 'a, owned, or vouched for by from_dlpack), and
        // aligned (checked above).
        Ok(unsafe {
            match self.dtype {
                Dtype::F32 => ParamView::F32(std::slice::from_raw_parts(
                    self.data as *const f32,
                    self.numel,
                )),
                Dtype::F16 => ParamView::F16(std::slice::from_raw_parts(ptr, self.numel)),
                Dtype::Bf16 => ParamView::Bf16(std::slice::from_raw_parts(ptr, self.numel)),
            }
        })
    }
}

/// Optimizer settings of one parameter group; `None` takes the config's
/// `optimizer.params` value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamGroup {
    pub name: Option<String>,
    pub lr: Option<f64>,
    pub weight_decay: Option<f64>,
    /// Mixture-of-experts expert parameters of an expert-parallel layout
    /// with this many ranks per expert-parallel group (`DSZ_GROUP_EXPERT`).
    pub ep_size: Option<u32>,
}

impl ParamGroup {
    pub(crate) fn to_raw(&self, name: Option<&CString>) -> sys::dsz_param_group {
        let mut set = 0;
        if self.lr.is_some() {
            set |= sys::DSZ_GROUP_LR;
        }
        if self.weight_decay.is_some() {
            set |= sys::DSZ_GROUP_WEIGHT_DECAY;
        }
        if self.ep_size.is_some() {
            set |= sys::DSZ_GROUP_EXPERT;
        }
        sys::dsz_param_group {
            name: name.map_or(std::ptr::null(), |n| n.as_ptr()),
            set_fields: set,
            ep_size: self.ep_size.unwrap_or(0),
            lr: self.lr.unwrap_or(0.0),
            weight_decay: self.weight_decay.unwrap_or(0.0),
        }
    }
}
