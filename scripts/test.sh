#!/bin/sh
# The whole test suite, as CI runs it (README, command 2):
#   1. install the Debian packages (idempotent),
#   2. build and run every test (CTest: CMocka suites, header and export checks),
#   3. build again with ASan+UBSan (-fno-sanitize-recover=all) and run the suite.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --workflow --preset default
cmake --workflow --preset asan
