"""test_precision.py -- fp16 with dynamic loss scaling and bf16 through the
PyTorch engine: the model is converted to the config's dtype, the loss is
multiplied by the loss scale before autograd, overflows skip the step and
shrink the scale, and training still follows the fp32 reference."""
import dszero
import pytest
import torch
from helpers import batches, clone, ds_config, make_model, max_rel_diff, param_groups, train_reference, WD

SGD = {"type": "SGD", "params": {"lr": 0.5}}


def sgd_config(precision):
    cfg = ds_config(gas=1, clip=0.0, precision=precision, optimizer=SGD)
    del cfg["scheduler"]
    return cfg


def test_fp16_model_is_converted_and_loss_is_scaled():
    model = make_model(seed=3)
    before = clone(model).half()
    engine, _, _, scheduler = dszero.initialize(model=model, config=sgd_config("fp16"))
    assert scheduler is None
    assert all(p.dtype == torch.float16 for p in model.parameters())
    assert engine.get_loss_scale() == 2.0 ** 16
    (x, y), = batches(1, 4, seed=4)

    # Expected update from unscaled fp16 gradients, in fp32 arithmetic.
    ref = clone(before)
    ref(x, y).backward()
    engine.backward(engine(x, y))
    engine.step()
    assert not engine.last_step_info.skipped
    worst = 0.0
    for (name, p), q0, q in zip(model.named_parameters(), before.parameters(), ref.parameters()):
        expected = q0.float() - 0.5 * q.grad.float()
        delta_ds = p.float() - q0.float()
        delta_ref = expected.half().float() - q0.float()
        if delta_ref.abs().max() == 0:
            continue
        err = (delta_ds - delta_ref).norm() / delta_ref.norm()
        worst = max(worst, err.item())
    # fp16 rounding of weights and gradients; a missing or doubled loss scale
    # would be off by a factor of 65536.
    print("fp16 SGD step: worst relative update error %.3g" % worst)
    assert worst < 2e-2, worst


def test_fp16_overflow_skips_the_step_and_halves_the_scale():
    model = make_model(seed=3)
    engine, _, _, _ = dszero.initialize(model=model, config=sgd_config("fp16"))
    (x, y), = batches(1, 4, seed=4)
    before = [p.detach().clone() for p in model.parameters()]
    engine.backward(engine(x, y) * float("inf"))
    engine.step()
    info = engine.last_step_info
    assert info.skipped and not info.stepped
    assert engine.skipped_steps == 1 and engine.global_steps == 1
    assert engine.get_loss_scale() == 2.0 ** 15
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
    # the next step trains again
    engine.backward(engine(x, y))
    engine.step()
    assert engine.last_step_info.stepped


@pytest.mark.parametrize("precision,dtype,compute", [("fp16", torch.float16, torch.float32),
                                                     ("bf16", torch.bfloat16, torch.bfloat16)])
def test_mixed_precision_training_follows_fp32(precision, dtype, compute):
    steps, gas = 30, 1
    model = make_model(seed=5, compute_dtype=compute)
    reference = clone(model)
    reference.cfg.compute_dtype = torch.float32
    data = batches(steps, 8, seed=6)
    cfg = ds_config(micro=8, gas=gas, precision=precision)
    engine, _, _, _ = dszero.initialize(model=model, model_parameters=param_groups(model, WD), config=cfg)
    assert all(p.dtype == dtype for p in model.parameters())
    losses = []
    for x, y in data:
        loss = engine(x, y)
        engine.backward(loss)
        engine.step()
        losses.append(loss.item())
    assert engine.skipped_steps == 0
    assert losses[-1] < 0.75 * losses[0], losses
    train_reference(reference, data, gas)
    diff, where = max_rel_diff(model, reference)
    print("%s: max relative difference to the fp32 run after %d steps: %.3g (%s)" % (precision, steps, diff, where))
    assert diff < 0.05, (diff, where)
