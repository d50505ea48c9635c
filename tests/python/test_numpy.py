"""test_numpy.py -- dszero works from a NumPy-only program: runs
numpy_only.py in a fresh interpreter in which torch cannot be imported."""
import os
import subprocess
import sys

import dszero

HERE = os.path.dirname(os.path.abspath(__file__))
SGD = {"train_batch_size": 1, "gradient_clipping": 0.0, "optimizer": {"type": "SGD", "params": {"lr": 0.5}}}


def test_numpy_only_program_trains_without_torch():
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(dszero.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg)
    r = subprocess.run([sys.executable, os.path.join(HERE, "numpy_only.py")], capture_output=True, text=True,
                       env=env, timeout=300)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "numpy-only OK" in r.stdout


def test_numpy_arrays_are_updated_in_place():
    import numpy as np
    w = np.ones(5, np.float32)
    address = w.__array_interface__["data"][0]
    with dszero.Engine(SGD) as engine:
        engine.register_params([("w", w)])
        engine.grad_ready(0, np.full(5, 2.0, np.float32))
        engine.backward()
        info = engine.step()
    assert info.stepped and info.global_steps == 1
    assert w.__array_interface__["data"][0] == address
    np.testing.assert_array_equal(w, np.zeros(5, np.float32))


def test_read_only_arrays_are_refused():
    import numpy as np
    import pytest
    w = np.ones(5, np.float32)
    w.flags.writeable = False
    with dszero.Engine(SGD) as engine:
        with pytest.raises(ValueError, match="read-only"):
            engine.register_params([("w", w)])
