#!/bin/sh
# bindings/rust/test.sh -- the Rust bindings' tests, as scripts/test.sh runs
# them after the CMake build: `cargo test --offline` on the whole workspace
# (layout test, unit and integration tests of the safe crate), then the
# example trains the MLP briefly and must halve its loss (exit status 0).
# Uses the library of the CMake build in build/ (DSZERO_BUILD_DIR to change);
# set DSZ_SKIP_RUST=1 to skip on a machine without cargo.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${DSZERO_BUILD_DIR:-$root/build}

if [ "${DSZ_SKIP_RUST:-0}" = 1 ]; then
  echo "rust bindings: skipped (DSZ_SKIP_RUST=1)"
  exit 0
fi
command -v cargo >/dev/null 2>&1 || {
  echo "rust bindings: cargo not found (install Rust with rustup, or set DSZ_SKIP_RUST=1)" >&2
  exit 1
}
DSZERO_LIB_DIR=${DSZERO_LIB_DIR:-$build/src}
[ -e "$DSZERO_LIB_DIR/libdszero.so" ] || {
  echo "rust bindings: no libdszero.so in $DSZERO_LIB_DIR: build first (cmake --preset default && cmake --build build)" >&2
  exit 1
}
export DSZERO_LIB_DIR
export DSZERO_INCLUDE_DIR="${DSZERO_INCLUDE_DIR:-$root/include}"

cd "$here"
cargo test --offline --workspace
cargo run --offline --quiet -p train-mlp -- "$root/examples/configs/mlp_fp16.json" 200
# The same example on two ranks (ZeRO stage 2), when Open MPI is there.
if command -v mpirun >/dev/null 2>&1; then
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
    timeout 120 mpirun -np 2 --bind-to none "$here/target/debug/train_mlp" \
    "$root/examples/configs/mlp_fp16_zero2.json" 200
fi
echo "rust bindings: all passed"
