"""test_parity.py -- dszero through the Python binding trains a small
transformer language model exactly as torch.optim.AdamW does with the same
schedule, clipping, accumulation and parameter groups (fp32, one rank)."""
import dszero
import pytest
import torch
from helpers import (TOTAL, batches, clone, ds_config, isclose, make_model, max_rel_diff, param_groups,
                     train_dszero, train_reference, warmup_decay_lr, WD)

GAS = 2


@pytest.fixture(scope="module")
def trained():
    model = make_model(seed=1)
    reference = clone(model)
    data = batches(TOTAL * GAS, 4, seed=2)
    engine, optimizer, _, scheduler = dszero.initialize(
        model=model, model_parameters=param_groups(model, WD), config=ds_config(gas=GAS))
    losses, lrs = train_dszero(engine, data, GAS)
    train_reference(reference, data, GAS)
    return engine, model, reference, losses, lrs, optimizer, scheduler


def test_matches_torch_adamw_after_50_steps(trained):
    engine, model, reference, losses, _, _, _ = trained
    assert engine.global_steps == TOTAL
    diff, where = max_rel_diff(model, reference)
    print("max relative parameter difference after %d steps: %.3g (%s)" % (TOTAL, diff, where))
    assert diff <= 1e-5, (diff, where)
    assert losses[-1] < 0.7 * losses[0], losses


def test_parameters_were_updated_in_place(trained):
    engine, model, _, _, _, _, _ = trained
    # engine.module is the model; its parameters are the registered tensors
    assert engine.module is model
    assert [p.data_ptr() for p in engine.parameters()] == [p.data_ptr() for p in model.parameters()]
    assert all(p.grad is None for p in model.parameters())


def test_schedule_is_deepspeeds_warmup_decay(trained):
    engine, _, _, _, lrs, optimizer, scheduler = trained
    assert len(lrs) == TOTAL
    for k, lr in enumerate(lrs):
        assert isclose(lr, warmup_decay_lr(k - 1)), (k, lr)
    assert scheduler.get_lr() == engine.get_lr()
    assert len(optimizer.param_groups) == 2
    assert optimizer.param_groups[1]["weight_decay"] == 0.0
    assert scheduler.last_batch_iteration == TOTAL - 1


def test_a_wrong_schedule_would_be_caught():
    """The comparison can fail: one step of a reference with another lr differs."""
    model = make_model(seed=1)
    reference = clone(model)
    data = batches(4, 4, seed=2)
    engine, _, _, _ = dszero.initialize(model=model, model_parameters=param_groups(model, WD),
                                        config=ds_config(gas=GAS))
    train_dszero(engine, data, GAS)
    opt = torch.optim.AdamW(param_groups(reference, WD), lr=1e-3, betas=(0.9, 0.95))
    for x, y in data:
        (reference(x, y) / GAS).backward()
    opt.step()
    diff, _ = max_rel_diff(model, reference)
    assert diff > 1e-3
