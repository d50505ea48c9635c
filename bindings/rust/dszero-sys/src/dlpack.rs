//! DLPack 0.6 (`<dlpack/dlpack.h>`, `DLPACK_VERSION 60`) as `#[repr(C)]` mirrors.
//!
//! dszero's header takes tensors as `DLTensor`, so the raw crate carries the
//! DLPack types it needs. C enums cross as their integer type with one
//! constant per enumerator (a Rust `enum` would be undefined behaviour for a
//! value the C side adds later). GCC gives these enums `unsigned int`: all
//! their enumerators are non-negative. The layout test checks every field
//! offset against the C compiler.
#![allow(non_upper_case_globals)]

use core::ffi::{c_int, c_uint, c_void};

pub const DLPACK_VERSION: c_int = 60;

/// `DLDeviceType`: where a tensor's memory lives.
pub type DLDeviceType = c_uint;
pub const kDLCPU: DLDeviceType = 1;
pub const kDLCUDA: DLDeviceType = 2;
pub const kDLCUDAHost: DLDeviceType = 3;
pub const kDLOpenCL: DLDeviceType = 4;
pub const kDLVulkan: DLDeviceType = 7;
pub const kDLMetal: DLDeviceType = 8;
pub const kDLVPI: DLDeviceType = 9;
pub const kDLROCM: DLDeviceType = 10;
pub const kDLROCMHost: DLDeviceType = 11;
pub const kDLExtDev: DLDeviceType = 12;
pub const kDLCUDAManaged: DLDeviceType = 13;

/// `DLDataTypeCode`: the kind of a `DLDataType` (stored there as a `u8`).
pub type DLDataTypeCode = c_uint;
pub const kDLInt: DLDataTypeCode = 0;
pub const kDLUInt: DLDataTypeCode = 1;
pub const kDLFloat: DLDataTypeCode = 2;
pub const kDLOpaqueHandle: DLDataTypeCode = 3;
pub const kDLBfloat: DLDataTypeCode = 4;
pub const kDLComplex: DLDataTypeCode = 5;

#[repr(C)]
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct DLDevice {
    pub device_type: DLDeviceType,
    pub device_id: c_int,
}

#[repr(C)]
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub struct DLDataType {
    pub code: u8,
    pub bits: u8,
    pub lanes: u16,
}

#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct DLTensor {
    pub data: *mut c_void,
    pub device: DLDevice,
    pub ndim: c_int,
    pub dtype: DLDataType,
    pub shape: *mut i64,
    pub strides: *mut i64,
    pub byte_offset: u64,
}

#[repr(C)]
#[derive(Debug)]
pub struct DLManagedTensor {
    pub dl_tensor: DLTensor,
    pub manager_ctx: *mut c_void,
    pub deleter: Option<unsafe extern "C" fn(self_: *mut DLManagedTensor)>,
}
