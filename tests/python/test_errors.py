"""test_errors.py -- C errors surface as dszero.DSZeroError with the status
and the library's message; the binding's own misuse checks; finding and
version-checking the library; the log callback."""
import os
import subprocess
import sys

import dszero
import numpy as np
import pytest
import torch
from dszero import _loader
from helpers import ds_config, make_model

PKG = os.path.dirname(os.path.dirname(os.path.abspath(dszero.__file__)))


def test_bad_config_names_the_key():
    cfg = ds_config()
    cfg["optimizer"]["params"]["lr"] = "fast"
    with pytest.raises(dszero.DSZeroError) as e:
        dszero.initialize(model=make_model(), config=cfg)
    err = e.value
    assert err.status == dszero.DSZ_ERR_CONFIG and err.status_name == "DSZ_ERR_CONFIG"
    assert "optimizer.params.lr" in err.message
    assert err.message in str(err)
    assert dszero.status_string(err.status)  # the library's short description


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(dszero.DSZeroError) as e:
        dszero.Engine(str(tmp_path / "missing.json"))
    assert "missing.json" in e.value.message


def test_state_errors_from_the_engine():
    engine, _, _, _ = dszero.initialize(model=make_model(), config=ds_config(gas=1))
    with pytest.raises(dszero.DSZeroError) as e:
        engine.step()  # before any backward
    assert e.value.status == dszero.DSZ_ERR_STATE
    assert "dsz_backward" in e.value.message or "backward" in e.value.message


def test_gradient_errors_name_the_parameter():
    w = np.zeros((3, 4), np.float32)
    with dszero.Engine(ds_config(gas=1)) as engine:
        engine.register_params([("layer.w", w)])
        with pytest.raises(dszero.DSZeroError) as e:
            engine.grad_ready(0, np.zeros((4, 3), np.float32))
        assert e.value.status == dszero.DSZ_ERR_SHAPE and "layer.w" in e.value.message
        with pytest.raises(dszero.DSZeroError) as e:
            engine.grad_ready(0, np.zeros((3, 4), np.float16))
        assert e.value.status == dszero.DSZ_ERR_DTYPE and "layer.w" in e.value.message
        with pytest.raises(dszero.DSZeroError) as e:
            engine.grad_ready(7, np.zeros((3, 4), np.float32))
        assert e.value.status == dszero.DSZ_ERR_INVALID_ARGUMENT
        with pytest.raises(dszero.DSZeroError) as e:
            engine.grad_ready(0, np.zeros((3, 4), np.float64))
        assert e.value.status == dszero.DSZ_ERR_DTYPE and "layer.w" in e.value.message
        with pytest.raises(TypeError, match="cannot cross"):
            engine.grad_ready(0, np.zeros((3, 4), bool))
        with pytest.raises(dszero.DSZeroError) as e:
            engine.param_index("nope")
        assert e.value.status == dszero.DSZ_ERR_NOT_FOUND


def test_registration_errors():
    with dszero.Engine(ds_config(gas=1)) as engine:
        with pytest.raises(ValueError, match="contiguous"):
            engine.register_params([("t", np.zeros((4, 4), np.float32).T)])
        a = np.zeros(3, np.float32)
        with pytest.raises(dszero.DSZeroError) as e:
            engine.register_params([("same", a), ("same", a.copy())])
        assert "same" in e.value.message
        engine.register_params([("a", a)])  # the failed call left the engine unchanged
    with pytest.raises(ValueError, match="closed"):
        engine.backward()


def test_initialize_refuses_what_it_cannot_honour():
    model = make_model()
    with pytest.raises(ValueError, match="optimizer"):
        dszero.initialize(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), config=ds_config())
    with pytest.raises(ValueError, match="betas"):
        dszero.initialize(model=model, model_parameters=[{"params": list(model.parameters()), "betas": (0.9, 0.9)}],
                          config=ds_config())
    with pytest.raises(ValueError, match="more than once"):
        ps = list(model.parameters())
        dszero.initialize(model=model, model_parameters=ps + ps[:1], config=ds_config())
    with pytest.raises(ValueError, match="config"):
        dszero.initialize(model=model)


def test_config_from_args_and_path(tmp_path):
    import json
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(ds_config()))

    class Args:
        deepspeed_config = str(path)
    engine, _, _, _ = dszero.initialize(args=Args(), model=make_model())
    assert engine.gradient_accumulation_steps() == 2
    assert engine.config["optimizer"]["type"] == "AdamW"


def test_log_callback_gets_messages_and_may_raise():
    seen = []
    with dszero.Engine(ds_config(), log=lambda level, msg: seen.append((level, msg)), log_level="info"):
        pass
    assert any("dszero" in m for _, m in seen)

    def boom(level, msg):
        raise RuntimeError("callback failure")
    with dszero.Engine(ds_config(), log=boom, log_level="info"):
        pass  # reported on stderr, never unwound into C


def test_config_resolve():
    resolved = dszero.config_resolve(ds_config())
    assert resolved["train_batch_size"] == 8
    with pytest.raises(dszero.DSZeroError) as e:
        dszero.config_resolve({"train_batch_size": 8, "zero_optimization": {"stage": 9}})
    assert "zero_optimization.stage" in e.value.message


def test_version_and_features():
    assert dszero.version() == dszero.__version__
    assert "mpi" in dszero.features()
    assert os.path.isfile(dszero.library_path())


def test_version_rule():
    _loader.check_version((0, 1, 0), (0, 1, 0))
    _loader.check_version((0, 1, 7), (0, 1, 0))
    _loader.check_version((0, 2, 0), (0, 1, 0))
    for bad in [(0, 0, 9), (1, 1, 0)]:
        with pytest.raises(dszero.LibraryVersionError, match="does not provide"):
            _loader.check_version(bad, (0, 1, 0))


def run_python(code, env):
    full = dict(os.environ, PYTHONPATH=PKG, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_missing_library_says_where_it_looked(tmp_path):
    r = run_python("import dszero; dszero.version()", {"DSZERO_LIBRARY": str(tmp_path / "nothing.so")})
    assert r.returncode != 0
    assert "LibraryNotFoundError" in r.stderr and "nothing.so" in r.stderr and "DSZERO_LIBRARY" in r.stderr


def test_library_in_a_folder(tmp_path):
    folder = os.path.dirname(dszero.library_path())
    r = run_python("import dszero; print(dszero.library_path())", {"DSZERO_LIBRARY": folder})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(folder)
