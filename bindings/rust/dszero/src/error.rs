//! Errors: every failed C call becomes an [`Error`] holding the status and the
//! message `dsz_last_error()` gave on the calling thread, read at once (it is
//! only valid until the next dszero call on that thread).
use dszero_sys as sys;
use std::ffi::CStr;
use std::fmt;

/// `dsz_status` as a Rust enum. Numbers are fixed by the header; a status
/// this crate does not know yet (a newer library) comes back as `Unknown`.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    InvalidArgument,
    Config,
    Dtype,
    Shape,
    State,
    Io,
    Checkpoint,
    OutOfMemory,
    NotFound,
    Unsupported,
    Comm,
    Timeout,
    LossScale,
    Internal,
    Cuda,
    /// A host callback of the pipeline executor failed.
    Callback,
    Unknown(i32),
}

impl Status {
    /// The status for a raw code; `None` for `DSZ_OK`.
    pub fn from_raw(code: sys::dsz_status) -> Option<Status> {
        Some(match code {
            sys::DSZ_OK => return None,
            sys::DSZ_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::DSZ_ERR_CONFIG => Status::Config,
            sys::DSZ_ERR_DTYPE => Status::Dtype,
            sys::DSZ_ERR_SHAPE => Status::Shape,
            sys::DSZ_ERR_STATE => Status::State,
            sys::DSZ_ERR_IO => Status::Io,
            sys::DSZ_ERR_CHECKPOINT => Status::Checkpoint,
            sys::DSZ_ERR_OUT_OF_MEMORY => Status::OutOfMemory,
            sys::DSZ_ERR_NOT_FOUND => Status::NotFound,
            sys::DSZ_ERR_UNSUPPORTED => Status::Unsupported,
            sys::DSZ_ERR_COMM => Status::Comm,
            sys::DSZ_ERR_TIMEOUT => Status::Timeout,
            sys::DSZ_ERR_LOSS_SCALE => Status::LossScale,
            sys::DSZ_ERR_INTERNAL => Status::Internal,
            sys::DSZ_ERR_CUDA => Status::Cuda,
            sys::DSZ_ERR_CALLBACK => Status::Callback,
            other => Status::Unknown(other),
        })
    }

    /// The raw `dsz_status` number.
    pub fn code(self) -> sys::dsz_status {
        match self {
            Status::InvalidArgument => sys::DSZ_ERR_INVALID_ARGUMENT,
            Status::Config => sys::DSZ_ERR_CONFIG,
            Status::Dtype => sys::DSZ_ERR_DTYPE,
            Status::Shape => sys::DSZ_ERR_SHAPE,
            Status::State => sys::DSZ_ERR_STATE,
            Status::Io => sys::DSZ_ERR_IO,
            Status::Checkpoint => sys::DSZ_ERR_CHECKPOINT,
            Status::OutOfMemory => sys::DSZ_ERR_OUT_OF_MEMORY,
            Status::NotFound => sys::DSZ_ERR_NOT_FOUND,
            Status::Unsupported => sys::DSZ_ERR_UNSUPPORTED,
            Status::Comm => sys::DSZ_ERR_COMM,
            Status::Timeout => sys::DSZ_ERR_TIMEOUT,
            Status::LossScale => sys::DSZ_ERR_LOSS_SCALE,
            Status::Internal => sys::DSZ_ERR_INTERNAL,
            Status::Cuda => sys::DSZ_ERR_CUDA,
            Status::Callback => sys::DSZ_ERR_CALLBACK,
            Status::Unknown(c) => c,
        }
    }

    /// The library's short description ("invalid argument").
    pub fn description(self) -> String {
        // SAFETY: dsz_status_string returns static storage, never NULL.
        unsafe { CStr::from_ptr(sys::dsz_status_string(self.code())) }
            .to_string_lossy()
            .into_owned()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())
    }
}

/// A failed dszero call: its status and the library's message (which names
/// the culprit: a JSON key path, a parameter, a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub status: Status,
    pub message: String,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    /// An error raised by this crate before reaching the library.
    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(Status::InvalidArgument, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Turns a status into `Ok(())` or an `Error` carrying `dsz_last_error()`.
/// Must be called right after the C call, on the same thread.
pub(crate) fn check(code: sys::dsz_status) -> Result<()> {
    match Status::from_raw(code) {
        None => Ok(()),
        Some(status) => {
            // SAFETY: never NULL; valid until the next dszero call on this thread,
            // and copied before any.
            let msg = unsafe { CStr::from_ptr(sys::dsz_last_error()) };
            Err(Error::new(status, msg.to_string_lossy().into_owned()))
        }
    }
}
