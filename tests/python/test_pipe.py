"""test_pipe.py -- dszero.pipe in one process (a one-stage pipeline) and its
refusals; the multi-rank parity is mpi_pipe.py (python_pipe_np2/np4)."""
import dszero
import pytest
import torch
import torch.nn.functional as F
from dszero.pipe import PipelineModule

GAS, MICRO = 2, 4


def layers():
    torch.manual_seed(3)
    return [torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)]


def config():
    return {"train_batch_size": MICRO * GAS, "train_micro_batch_size_per_gpu": MICRO,
            "gradient_accumulation_steps": GAS, "optimizer": {"type": "Adam", "params": {"lr": 0.01}}}


def data(n):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(MICRO, 5, generator=g), torch.randn(MICRO, 2, generator=g)) for _ in range(n)]


def test_one_stage_pipeline_equals_plain_engine_bit_for_bit():
    model = torch.nn.Sequential(*layers())
    plain, _, _, _ = dszero.initialize(model=model, config=config())
    for x, y in data(3 * GAS):
        loss = F.mse_loss(plain(x), y)
        plain.backward(loss)
        plain.step()
    module = PipelineModule(layers(), num_stages=1, loss_fn=F.mse_loss)
    engine, _, _, _ = dszero.initialize(model=module, config=config())
    assert engine.is_first_stage() and engine.is_last_stage() and module.parts == [0, 3]
    it = iter(data(3 * GAS))
    for _ in range(3):
        engine.train_batch(it)
    ref = dict(model.named_parameters())
    for name, p in engine.stage_parameters().items():
        assert torch.equal(p.detach(), ref[name].detach()), name
    engine.close()
    plain.close()


def test_refusals():
    with pytest.raises(ValueError, match="activation_checkpoint_interval"):
        PipelineModule(layers(), num_stages=1, activation_checkpoint_interval=-1)
    with pytest.raises(ValueError, match="model_parameters"):
        dszero.initialize(model=PipelineModule(layers(), 1), model_parameters=[], config=config())
    with pytest.raises(dszero.DSZeroError, match="profile"):
        dszero.initialize(model=PipelineModule(layers(), 1, partition_method="profile"), config=config())


def test_python_errors_become_dszero_errors():
    module = PipelineModule(layers(), num_stages=1, loss_fn=F.mse_loss)
    engine, _, _, _ = dszero.initialize(model=module, config=config())
    with pytest.raises(dszero.DSZeroError, match="needs data_iter") as err:
        engine.train_batch()
    assert err.value.status == dszero.DSZ_ERR_CALLBACK
    with pytest.raises(dszero.DSZeroError, match="StopIteration"):
        engine.train_batch(iter(data(1)))  # a batch needs GAS micro-batches
    with pytest.raises(dszero.DSZeroError, match=r"\(inputs, labels\) pairs"):
        engine.train_batch(iter([torch.zeros(MICRO, 5)] * GAS))
    assert engine.global_steps == 0
    engine.train_batch(iter(data(GAS)))
    assert engine.global_steps == 1
    engine.close()
