"""test_zero3.py -- ZeRO stage 3 through the module hooks, on one rank
(mpi_stages.py runs it across ranks): parameters are empty outside their
module's forward and backward, the training is AdamW's, the tied embedding is
gathered by both modules that use it, every gather is released, and
checkpoints round-trip."""
import dszero
import pytest
import torch
from helpers import (TOTAL, batches, clone, ds_config, make_model, max_rel_diff, param_groups, train_dszero,
                     train_reference, WD)

GAS = 2


def start(seed=1, model=None, **kw):
    model = model or make_model(seed=seed)
    engine, _, _, _ = dszero.initialize(model=model, model_parameters=param_groups(model, WD),
                                        config=ds_config(gas=GAS, stage=3, **kw))
    return model, engine


def assert_all_released(engine):
    assert engine.zero_stage == 3
    assert all(c == 0 for c in engine._zero3._count)
    assert all(p.numel() == 0 for p in engine.module.parameters())
    assert engine.memory_stats().gathered_bytes == 0


def test_stage3_matches_torch_adamw():
    model = make_model(seed=1)
    reference = clone(model)  # before initialize: a copy made after it would share the hooks
    model, engine = start(model=model)
    data = batches(TOTAL * GAS, 4, seed=2)
    # host copies are dropped after registration; the reference kept its own
    assert all(p.numel() == 0 for p in model.parameters())
    losses, _ = train_dszero(engine, data, GAS)
    train_reference(reference, data, GAS)
    assert_all_released(engine)
    with engine.gathered_parameters():
        diff, where = max_rel_diff(model, reference)
    print("stage 3: max relative difference to AdamW after %d steps: %.3g (%s)" % (TOTAL, diff, where))
    assert diff <= 1e-5, (diff, where)
    assert losses[-1] < 0.7 * losses[0]
    assert_all_released(engine)


def test_parameters_live_only_inside_their_module():
    model, engine = start()
    sizes = {}

    def record(name):
        def hook(module, inputs):
            sizes[name] = [p.numel() for p in module.parameters(recurse=False)]
        return hook
    model.blocks[0].fc.register_forward_pre_hook(record("fc"))  # runs after dszero's gather hook
    (x, y), = batches(1, 4, seed=3)
    loss = engine(x, y)
    assert sizes["fc"] == [32 * 128, 128]
    assert model.blocks[0].fc.weight.numel() == 0  # released after the forward
    engine.backward(loss)
    engine.step()
    assert_all_released(engine)
    with torch.no_grad():  # evaluation: gathered and released, no backward bookkeeping
        assert engine(x).shape == (4, 16, 48)
    assert_all_released(engine)


def test_tied_weight_is_handed_over_once():
    model, engine = start()
    assert model.head.weight is model.tok.weight
    seen = []
    real = engine.dszero.grad_ready
    engine.dszero.grad_ready = lambda i, g: (seen.append(i), real(i, g))
    (x, y), = batches(1, 4, seed=3)
    engine.backward(engine(x, y))
    assert sorted(seen) == list(range(len(engine.param_names())))
    engine.step()
    assert_all_released(engine)


def test_reading_a_released_parameter_is_an_error():
    _, engine = start()
    tok = engine.param_names().index("tok.weight")
    with pytest.raises(dszero.DSZeroError) as e:
        engine.dszero.param_tensor(tok)
    assert e.value.status == dszero.DSZ_ERR_STATE and "tok.weight" in e.value.message
    with engine.gathered_parameters():
        w = engine.dszero.param_tensor(tok, view="torch")
        assert w.shape == engine.module.tok.weight.shape
        assert torch.equal(w, engine.module.tok.weight)


def test_stage3_checkpoint_round_trip(tmp_path):
    data = batches(12, 4, seed=7)
    model, engine = start(seed=8)
    for x, y in data[:6]:
        engine.backward(engine(x, y))
        engine.step()
    engine.save_checkpoint(str(tmp_path), client_state={"k": 1})
    for x, y in data[6:]:
        engine.backward(engine(x, y))
        engine.step()
    other_model, other = start(seed=9)
    _, client = other.load_checkpoint(str(tmp_path))
    assert client == {"k": 1}
    for x, y in data[6:]:
        other.backward(other(x, y))
        other.step()
    with engine.gathered_parameters(), other.gathered_parameters():
        for a, b in zip(model.parameters(), other_model.parameters()):
            assert torch.equal(a, b)
