#!/bin/sh
# check_pip_install.sh SOURCE_DIR WORK_DIR LIBRARY -- `pip install ./bindings/python`
# works offline: into a throwaway venv over Debian's Python (whose torch and
# numpy it sees), building from a copy of the package so the checkout stays
# clean, with LIBRARY bundled next to the package; then the installed package
# imports from elsewhere, finds its bundled library without DSZERO_LIBRARY,
# and trains one step.
set -eu
src=$1 work=$2 lib=$3
rm -rf "$work"
mkdir -p "$work"
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
cp -r "$src/bindings/python" "$work/pkg"
DSZERO_LIBRARY="$lib" "$work/venv/bin/python" -m pip install --no-index --no-build-isolation --no-deps \
  --disable-pip-version-check -q "$work/pkg"
cd "$work"
env -u DSZERO_LIBRARY -u PYTHONPATH "$work/venv/bin/python" - <<'PY'
import os
import numpy as np
import dszero
here = os.path.dirname(dszero.__file__)
assert "site-packages" in here, here
assert os.path.dirname(dszero.library_path()) == here, dszero.library_path()
w = np.ones(4, np.float32)
with dszero.Engine({"train_batch_size": 1, "gradient_clipping": 0,
                    "optimizer": {"type": "SGD", "params": {"lr": 0.5}}}, log_level="warning") as e:
    e.register_params([("w", w)])
    e.grad_ready(0, np.ones(4, np.float32))
    e.backward()
    e.step()
assert (w == 0.5).all(), w
print("installed dszero %s, library %s at %s: OK" % (dszero.__version__, dszero.version(), dszero.library_path()))
PY
rm -rf "$work"
