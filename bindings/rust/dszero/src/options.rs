//! Engine options (`dsz_init_options`) and the log callback.
//!
//! The callback is a Rust closure behind an `Arc`; C gets a trampoline and a
//! pointer to the closure as `user_data`. Every engine built from the options
//! keeps a clone of the `Arc`, so the closure lives as long as any engine that
//! may call it. The trampoline catches panics: nothing unwinds into C.
use crate::error::{Error, Result};
use dszero_sys as sys;
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Severity of a log message (`DSZ_LOG_*`).
#[derive(Debug, Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

impl LogLevel {
    fn raw(self) -> i32 {
        match self {
            LogLevel::Debug => sys::DSZ_LOG_DEBUG,
            LogLevel::Info => sys::DSZ_LOG_INFO,
            LogLevel::Warning => sys::DSZ_LOG_WARNING,
            LogLevel::Error => sys::DSZ_LOG_ERROR,
        }
    }

    fn from_raw(level: i32) -> LogLevel {
        match level {
            l if l <= sys::DSZ_LOG_DEBUG => LogLevel::Debug,
            sys::DSZ_LOG_INFO => LogLevel::Info,
            sys::DSZ_LOG_WARNING => LogLevel::Warning,
            _ => LogLevel::Error,
        }
    }
}

type LogFn = dyn Fn(LogLevel, &str) + Send + Sync;

/// The closure C calls back, kept alive by `Arc`s in options and engines.
pub(crate) struct LogHandler {
    f: Box<LogFn>,
}

unsafe extern "C" fn log_trampoline(level: i32, message: *const c_char, user_data: *mut c_void) {
    if user_data.is_null() || message.is_null() {
        return;
    }
    // SAFETY: user_data is the LogHandler of an Arc held by the engine (or by
    // the options during dsz_config_resolve) for as long as C may call this;
    // message is a NUL-terminated string valid during the call.
    let handler = unsafe { &*(user_data as *const LogHandler) };
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    let level = LogLevel::from_raw(level);
    if catch_unwind(AssertUnwindSafe(|| (handler.f)(level, &text))).is_err() {
        // A panicking logger must not unwind into C; the message is lost.
        eprintln!("dszero: the log callback panicked (message dropped)");
    }
}

/// What DeepSpeed would learn from its launcher and trainer
/// (`dsz_init_options`). Defaults are the library's.
#[derive(Clone)]
pub struct InitOptions {
    /// 0: from the launcher (1 without one).
    pub world_size: i32,
    /// `None`: from the launcher (0 without one).
    pub rank: Option<i32>,
    /// `None`: from the launcher.
    pub local_rank: Option<i32>,
    /// Threads for CPU kernels; 0: all cores.
    pub cpu_threads: i32,
    /// Values for keys set to "auto", as JSON text (see dszero.h).
    pub auto_values: Option<String>,
    /// Minimum level delivered.
    pub log_level: LogLevel,
    /// Log on every rank, not only rank 0.
    pub log_all_ranks: bool,
    pub(crate) log: Option<Arc<LogHandler>>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            world_size: 0,
            rank: None,
            local_rank: None,
            cpu_threads: 0,
            auto_values: None,
            log_level: LogLevel::Info,
            log_all_ranks: false,
            log: None,
        }
    }
}

impl std::fmt::Debug for InitOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitOptions")
            .field("world_size", &self.world_size)
            .field("rank", &self.rank)
            .field("local_rank", &self.local_rank)
            .field("cpu_threads", &self.cpu_threads)
            .field("auto_values", &self.auto_values)
            .field("log_level", &self.log_level)
            .field("log_all_ranks", &self.log_all_ranks)
            .field("log", &self.log.as_ref().map(|_| "<closure>"))
            .finish()
    }
}

impl InitOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends the library's messages to `f` instead of stderr. `f` may run on
    /// any thread that is inside a dszero call; it must not call dszero.
    pub fn log(mut self, f: impl Fn(LogLevel, &str) + Send + Sync + 'static) -> Self {
        self.log = Some(Arc::new(LogHandler { f: Box::new(f) }));
        self
    }

    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    pub fn cpu_threads(mut self, n: i32) -> Self {
        self.cpu_threads = n;
        self
    }

    pub fn auto_values(mut self, json: impl Into<String>) -> Self {
        self.auto_values = Some(json.into());
        self
    }

    /// The C struct, plus what its pointers point into (keep it alive while
    /// the struct is used).
    pub(crate) fn to_raw(&self) -> Result<RawOptions> {
        let mut raw = std::mem::MaybeUninit::<sys::dsz_init_options>::zeroed();
        // SAFETY: a zeroed struct of the size we pass; _init fills it.
        let raw = unsafe {
            crate::error::check(sys::dsz_init_options_init(
                raw.as_mut_ptr(),
                size_of::<sys::dsz_init_options>(),
            ))?;
            raw.assume_init()
        };
        let auto = match &self.auto_values {
            Some(s) => Some(cstring(s, "auto_values")?),
            None => None,
        };
        let mut raw = sys::dsz_init_options {
            world_size: self.world_size,
            rank: self.rank.unwrap_or(-1),
            local_rank: self.local_rank.unwrap_or(-1),
            cpu_threads: self.cpu_threads,
            auto_values: auto.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            log_level: self.log_level.raw(),
            log_all_ranks: self.log_all_ranks as i32,
            ..raw
        };
        if let Some(h) = &self.log {
            raw.log_fn = Some(log_trampoline);
            raw.log_user_data = Arc::as_ptr(h) as *mut c_void;
        }
        Ok(RawOptions {
            raw,
            _auto: auto,
            _log: self.log.clone(),
        })
    }
}

pub(crate) struct RawOptions {
    pub raw: sys::dsz_init_options,
    _auto: Option<CString>,
    _log: Option<Arc<LogHandler>>,
}

impl RawOptions {
    pub fn log_handler(&self) -> Option<Arc<LogHandler>> {
        self._log.clone()
    }
}

/// A C string for the library, refusing interior NULs.
pub(crate) fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid(format!("{what} contains a NUL byte")))
}
