// build.rs -- finds libdszero.so and dszero.h for the raw bindings.
//
// The library is looked up, in this order:
//   1. $DSZERO_LIB_DIR, a folder holding libdszero.so;
//   2. `pkg-config --libs dszero` (an installed dszero; the binary is run, no crate);
//   3. the repository's CMake build folder, build/src, relative to this crate,
//      so that `cargo test` works right after `cmake --build build`.
// The found folder is put into the rpath of this crate's own tests and handed to
// dependent crates as DEP_DSZERO_LIB_DIR (cargo only applies link args to the
// package that prints them), so that their tests and binaries run without
// LD_LIBRARY_PATH. The header folder (for the layout test) follows the same idea:
// $DSZERO_INCLUDE_DIR, else this checkout's include/, else pkg-config's.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    for var in [
        "DSZERO_LIB_DIR",
        "DSZERO_INCLUDE_DIR",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = crate_dir.join("../../..");

    let lib_dirs = find_library(&repo);
    for dir in &lib_dirs {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
    println!("cargo:rustc-link-lib=dylib=dszero");
    if let Some(dir) = lib_dirs.first() {
        println!("cargo:lib_dir={}", dir.display());
    }

    if let Some(inc) = find_include(&repo) {
        println!("cargo:rustc-env=DSZERO_INCLUDE_DIR={}", inc.display());
        println!("cargo:include={}", inc.display());
    } else {
        println!("cargo:rustc-env=DSZERO_INCLUDE_DIR=");
    }
}

fn has_lib(dir: &Path) -> bool {
    dir.join("libdszero.so").exists()
}

fn find_library(repo: &Path) -> Vec<PathBuf> {
    if let Some(dir) = env::var_os("DSZERO_LIB_DIR").filter(|d| !d.is_empty()) {
        let dir = absolute(PathBuf::from(dir));
        if !has_lib(&dir) {
            println!(
                "cargo:warning=DSZERO_LIB_DIR={} holds no libdszero.so",
                dir.display()
            );
        }
        return vec![dir];
    }
    if let Some(out) = pkg_config(&["--libs", "dszero"]) {
        let dirs: Vec<PathBuf> = out
            .split_whitespace()
            .filter_map(|t| t.strip_prefix("-L"))
            .map(|d| absolute(PathBuf::from(d)))
            .collect();
        // An empty -L list means the library sits in a default linker folder.
        return dirs;
    }
    let build = repo.join("build/src");
    if has_lib(&build) {
        return vec![absolute(build)];
    }
    println!(
        "cargo:warning=libdszero.so not found: set DSZERO_LIB_DIR to its folder, install dszero \
         (pkg-config dszero), or build it with `cmake --preset default && cmake --build build`"
    );
    Vec::new()
}

fn find_include(repo: &Path) -> Option<PathBuf> {
    if let Some(dir) = env::var_os("DSZERO_INCLUDE_DIR").filter(|d| !d.is_empty()) {
        return Some(absolute(PathBuf::from(dir)));
    }
    let inc = repo.join("include");
    if inc.join("dszero.h").exists() {
        return Some(absolute(inc));
    }
    let out = pkg_config(&["--variable=includedir", "dszero"])?;
    let dir = PathBuf::from(out.trim());
    dir.join("dszero.h").exists().then_some(dir)
}

fn pkg_config(args: &[&str]) -> Option<String> {
    let exe = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = Command::new(exe).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}

fn absolute(p: PathBuf) -> PathBuf {
    p.canonicalize().unwrap_or(p)
}
