// build.rs -- puts the folder where dszero-sys found libdszero.so into the
// rpath of the example binary (cargo applies link args only to the package
// that prints them), so `cargo test` runs without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_DSZERO_LIB_DIR");
    if let Ok(dir) = std::env::var("DEP_DSZERO_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
