#!/bin/sh
# make_venv.sh VENV -- a venv over /usr/bin/python3 (which has Debian's
# torch) with the `safetensors` package from PyPI, for the consolidation
# test. Debian bookworm does not package safetensors. Never fails the build:
# without network the test reads the files with torch only and says SKIPPED.
venv=$1
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import safetensors" 2>/dev/null; then
  echo "make_venv: $venv has safetensors"; exit 0
fi
/usr/bin/python3 -m venv --system-site-packages "$venv" &&
  timeout 180 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check safetensors &&
  "$venv/bin/python" -c "import safetensors; print('make_venv: safetensors', safetensors.__version__)" ||
  echo "*** make_venv: could not install safetensors into $venv (offline?): the consolidation test will be SKIPPED ***"
exit 0
