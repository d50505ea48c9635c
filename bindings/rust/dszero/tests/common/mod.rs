//! Shared helpers of the integration tests: quiet options, temp folders.
#![allow(dead_code)]
use dszero::InitOptions;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Options that swallow the library's log and use two CPU threads.
pub fn quiet() -> InitOptions {
    InitOptions::new().log(|_, _| {}).cpu_threads(2)
}

/// A fresh, empty folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("dszero_rs_{tag}_{}_{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
