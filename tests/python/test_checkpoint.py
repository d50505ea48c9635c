"""test_checkpoint.py -- save_checkpoint / load_checkpoint through the Python
API: a run resumed from a checkpoint continues bit for bit like the run that
never stopped, and the client state comes back."""
import dszero
import pytest
import torch
from helpers import batches, ds_config, make_model, param_groups, WD

GAS = 2


def start(seed, precision=None):
    model = make_model(seed=seed)
    engine, _, _, _ = dszero.initialize(model=model, model_parameters=param_groups(model, WD),
                                        config=ds_config(gas=GAS, precision=precision))
    return model, engine


def run(engine, data):
    for x, y in data:
        engine.backward(engine(x, y))
        engine.step()


@pytest.mark.parametrize("precision", [None, "fp16"])
def test_resume_is_bitwise_and_returns_client_state(tmp_path, precision):
    data = batches(24, 4, seed=7)
    model, engine = start(seed=8, precision=precision)
    run(engine, data[:12])
    client = {"epoch": 3, "tokens_seen": 12345, "note": "half way"}
    assert engine.save_checkpoint(str(tmp_path), client_state=client)
    assert (tmp_path / "latest").read_text().strip() == "global_step6"
    run(engine, data[12:])
    expected = [p.detach().clone() for p in model.parameters()]

    other_model, other = start(seed=99, precision=precision)  # other initial values
    path, loaded = other.load_checkpoint(str(tmp_path))
    assert path == str(tmp_path / "global_step6")
    assert loaded == client
    assert other.global_steps == 6
    run(other, data[12:])
    assert other.global_steps == engine.global_steps == 12
    assert other.get_lr() == engine.get_lr()
    assert other.get_loss_scale() == engine.get_loss_scale()
    for p, e in zip(other_model.parameters(), expected):
        assert torch.equal(p, e)


def test_tags_and_missing_checkpoints(tmp_path):
    model, engine = start(seed=8)
    run(engine, batches(2, 4, seed=7))
    engine.save_checkpoint(str(tmp_path), tag="first")
    path, client = engine.load_checkpoint(str(tmp_path), tag="first")
    assert path == str(tmp_path / "first") and client == {}
    with pytest.warns(UserWarning, match="latest"):
        assert engine.load_checkpoint(str(tmp_path / "nothing-here")) == (None, None)
    with pytest.raises(dszero.DSZeroError) as e:
        engine.load_checkpoint(str(tmp_path), tag="no-such-tag")
    assert e.value.status == dszero.DSZ_ERR_NOT_FOUND
    assert "no-such-tag" in str(e.value)


def test_client_state_must_be_json(tmp_path):
    _, engine = start(seed=8)
    with pytest.raises(TypeError):
        engine.save_checkpoint(str(tmp_path), client_state={"t": torch.zeros(1)})


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_consolidate_to_safetensors(tmp_path, dtype):
    """dszero.consolidate writes the model's weights as one safetensors file:
    the header names every parameter with its shape, the data are the
    engine's weights (bf16: rounded to nearest even, as torch does)."""
    import json
    import struct
    model, engine = start(seed=8)
    run(engine, batches(4, 4, seed=7))
    engine.save_checkpoint(str(tmp_path / "ckpt"))
    out = tmp_path / "model.safetensors"
    dszero.consolidate(str(tmp_path / "ckpt"), str(out), dtype=dtype)
    data = out.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = bytearray(data[8 + n:])
    want = torch.float32 if dtype == "fp32" else torch.bfloat16
    names = [name for name, _ in model.named_parameters()]
    assert sorted(k for k in header if k != "__metadata__") == sorted(names)
    for name, p in model.named_parameters():
        t = header[name]
        assert t["shape"] == list(p.shape)
        b, e = t["data_offsets"]
        got = torch.frombuffer(body[b:e], dtype=want).reshape(p.shape)
        assert torch.equal(got, p.detach().to(want)), name
    with pytest.raises(dszero.DSZeroError, match="latest does not exist"):
        dszero.consolidate(str(tmp_path / "nothing"), str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError):
        dszero.consolidate(str(tmp_path / "ckpt"), str(out), dtype="int8")
