#!/bin/sh
# The whole test suite, as CI runs it (README, command 2):
#   1. install the Debian packages (idempotent),
#   2. build and run every test (CTest: CMocka suites, header, export, install
#      and binding checks, the C example),
#   3. the Rust bindings: cargo test --offline and the Rust example (needs a
#      rustup toolchain; Debian's rustc is too old: skipped, loudly, without one),
#   4. build again with ASan+UBSan (-fno-sanitize-recover=all) and run the suite.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --workflow --preset default

[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
if command -v cargo >/dev/null 2>&1; then
  bindings/rust/test.sh
else
  echo "*** Rust bindings NOT tested: no cargo on PATH (install Rust with rustup) ***"
fi

cmake --workflow --preset asan
