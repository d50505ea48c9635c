"""test_hooks.py -- gradients reach dszero while autograd is still running:
each parameter's gradient is handed over once per micro-batch, as soon as it
is produced, the last layers' before backward reaches the first ones, and
param.grad is dropped; the tensors cross without copies."""
import dszero
import torch
from helpers import batches, ds_config, make_model


def counting(engine):
    """Wraps the core engine's grad_ready to record the parameter indices."""
    seen = []
    core = engine.dszero
    real = core.grad_ready

    def record(index, grad):
        seen.append(index)
        real(index, grad)
    core.grad_ready = record
    return seen


def test_gradients_are_handed_over_during_backward():
    model = make_model(seed=4)
    engine, _, _, _ = dszero.initialize(model=model, config=ds_config(gas=1))
    names = engine.param_names()
    seen = counting(engine)
    last_block = [i for i, n in enumerate(names) if n.startswith("blocks.1.")]
    at_first_layer = {}

    (x, y), = batches(1, 4, seed=5)
    h = model.tok(x)

    def when_backward_reaches_the_embedding(grad):
        at_first_layer["seen"] = list(seen)
    h.register_hook(when_backward_reaches_the_embedding)
    # the model's own forward, with the embedding output we hooked
    pos = model.pos(torch.arange(x.shape[1]))
    z = h + pos
    for b in model.blocks:
        z = b(z)
    logits = model.head(model.ln_f(z))
    loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
    engine.backward(loss)
    engine.step()

    assert set(last_block) <= set(at_first_layer["seen"]), "later layers were not handed over before the embedding"
    assert sorted(seen) == list(range(len(names))), "each parameter exactly once (the tied weight too)"
    assert all(p.grad is None for p in model.parameters())


def test_parameters_cross_without_copies():
    model = make_model(seed=4)
    pointers = [p.data_ptr() for p in model.parameters()]
    cfg = ds_config(gas=1)
    del cfg["scheduler"]  # the warmup's first lr is 0
    engine, _, _, _ = dszero.initialize(model=model, config=cfg)
    core = engine.dszero
    assert [ref.data for ref in core._params] == pointers
    before = [p.detach().clone() for p in model.parameters()]
    (x, y), = batches(1, 4, seed=5)
    engine.backward(engine(x, y))
    engine.step()
    assert [p.data_ptr() for p in model.parameters()] == pointers
    assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_loss_multiplier_is_one_over_gas():
    model = make_model(seed=4)
    engine, _, _, _ = dszero.initialize(model=model, config=ds_config(gas=4))
    assert engine.dszero.loss_scale() == 0.25
    assert engine.gradient_accumulation_steps() == 4
    (x, y), = batches(1, 4, seed=5)
    for i in range(4):
        assert engine.is_gradient_accumulation_boundary() == (i == 3)
        engine.backward(engine(x, y))
        engine.step()
    assert engine.global_steps == 1 and engine.micro_steps == 4
