"""mpi_pipe.py -- dszero.pipe (PipelineModule, train_batch) across ranks; run
under ``mpirun -np 2`` (pp=2) or ``-np 4`` (pp=2 x dp=2): CTest
python_pipe_np2 / python_pipe_np4. Every rank runs every test in the same
order (each is collective).

The reference is the same MLP as a plain nn.Sequential trained by
dszero.initialize in one process (world_size=1, on every rank), on micro-
batches that concatenate the replicas' ones: the mean of the replicas' mean
losses is the mean over the concatenation, so the gradients are the same.
Each rank compares the parameters of its own stage's layers with the
reference's layers of the same index (within 1e-6 relative in fp32).
"""
import ctypes
import math
import os

import dszero
import pytest
import torch
import torch.nn.functional as F
from dszero.pipe import LayerSpec, PipelineModule

WORLD = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
STAGES = 2
DP = WORLD // STAGES
STEPS, GAS, MICRO = 4, 4, 4
TOL = 1e-6

pytestmark = pytest.mark.skipif(WORLD < 2 or WORLD % STAGES, reason="run under mpirun -np 2 or -np 4")


def rel_diff(a, b):
    """max|a - b| / max|b| in float64."""
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max()).item()


def make_layers():
    torch.manual_seed(7)
    return [torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 24), torch.nn.Tanh(),
            torch.nn.Linear(24, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)]


def config(micro, dp, zero_stage=0):
    return {"train_batch_size": micro * GAS * dp, "train_micro_batch_size_per_gpu": micro,
            "gradient_accumulation_steps": GAS, "gradient_clipping": 1.0,
            "optimizer": {"type": "Adam", "params": {"lr": 0.01, "weight_decay": 0.01}},
            "zero_optimization": {"stage": zero_stage}}


def replica_batches(replica):
    g = torch.Generator().manual_seed(50 + replica)
    return [(torch.randn(MICRO, 6, generator=g), torch.randn(MICRO, 3, generator=g)) for _ in range(STEPS * GAS)]


def comm_self():
    """The address of an MPI_Comm holding Open MPI's MPI_COMM_SELF (no mpi4py
    on this machine): &ompi_mpi_comm_self, from the libmpi dszero loaded
    globally. Returns (address, what keeps it alive)."""
    dszero._capi.lib()
    handle = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.in_dll(ctypes.CDLL(None), "ompi_mpi_comm_self")))
    return ctypes.addressof(handle), handle


_reference = []


def reference():
    """(parameters, losses) of the one-process run; call after a pipeline has
    initialised MPI (dszero only takes a communicator from an initialised MPI)."""
    if not _reference:
        _reference.append(train_reference())
    return _reference[0]


def train_reference():
    model = torch.nn.Sequential(*make_layers())
    address, _keep = comm_self()
    engine, _, _, _ = dszero.initialize(model=model, config=config(MICRO * DP, 1), mpi_comm=address)
    per_replica = [replica_batches(r) for r in range(DP)]
    losses, norms = [], []
    for step in range(STEPS):
        total = 0.0
        for m in range(GAS):
            i = step * GAS + m
            x = torch.cat([per_replica[r][i][0] for r in range(DP)])
            y = torch.cat([per_replica[r][i][1] for r in range(DP)])
            loss = F.mse_loss(engine(x), y)
            engine.backward(loss)
            engine.step()
            total += loss.item()
        losses.append(total / GAS)
        norms.append(engine.get_global_grad_norm())
    engine.close()
    return {n: p.detach().clone() for n, p in model.named_parameters()}, losses, norms


def pipeline(zero_stage=0, interval=0, loss_fn=F.mse_loss, layers=None):
    module = PipelineModule(layers or make_layers(), num_stages=STAGES, loss_fn=loss_fn,
                            activation_checkpoint_interval=interval)
    engine, optimizer, loader, scheduler = dszero.initialize(model=module, config=config(MICRO, DP, zero_stage))
    assert optimizer is None and loader is None and scheduler is None
    assert (engine.num_stages, engine.data_parallel_size, engine.world_size) == (STAGES, DP, WORLD)
    return engine, iter(replica_batches(engine.data_parallel_rank))


@pytest.mark.parametrize("zero_stage,interval", [(0, 0), (1, 0), (0, 2)])
def test_pipeline_matches_one_process(zero_stage, interval):
    engine, data = pipeline(zero_stage, interval)
    ref_params, ref_losses, ref_norms = reference()
    losses, norms = [], []
    for _ in range(STEPS):
        losses.append(engine.train_batch(data))
        norms.append(engine.get_global_grad_norm())  # over both stages: scaled gradients show here
        assert norms[-1] == engine.last_batch_info["grad_norm"]
    assert engine.global_steps == STEPS
    # "parameters": 112 + 408 | 400 + 51 is the best split; the Tanh at 3 goes right (ties to later points).
    assert engine.module.parts == [0, 4, 7]
    mine = engine.stage_parameters()
    first, last = engine.module.parts[engine.stage_id], engine.module.parts[engine.stage_id + 1]
    assert sorted(mine) == sorted(n for n in ref_params if first <= int(n.split(".")[0]) < last)
    for name, p in mine.items():
        diff = rel_diff(p.detach(), ref_params[name])
        assert diff < TOL, "%s differs by %.3g (rank %d)" % (name, diff, engine.global_rank)
        assert not torch.equal(p.detach(), make_layers_param(name)), "%s did not train" % name
    for a, b in zip(losses, ref_losses):
        assert abs(a - b) <= TOL * abs(b), (losses, ref_losses)
    for a, b in zip(norms, ref_norms):
        assert abs(a - b) <= TOL * abs(b), (norms, ref_norms)
    engine.close()


def make_layers_param(name):
    index, attr = name.split(".")
    return getattr(make_layers()[int(index)], attr).detach()


def test_failing_loss_fn_raises_dszero_error_on_every_rank():
    calls = []

    def loss_fn(out, labels):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("loss_fn exploded")
        return F.mse_loss(out, labels)

    engine, data = pipeline(loss_fn=loss_fn)
    with pytest.raises(dszero.DSZeroError) as err:
        engine.train_batch(data)
    e = err.value
    assert e.status == dszero.DSZ_ERR_CALLBACK
    assert "stage 1" in e.message and "forward callback" in e.message and "micro-batch 1" in e.message
    assert ("loss_fn exploded" in e.message) == engine.is_last_stage()
    assert engine.global_steps == 0
    assert math.isfinite(engine.train_batch(data))  # the executor stays usable
    assert engine.global_steps == 1
    engine.close()


def test_layer_specs_are_built_on_their_stage_only():
    built = []

    class Recorded(torch.nn.Linear):
        def __init__(self, index, *args):
            built.append(index)
            super().__init__(*args)

    layers = [LayerSpec(Recorded, 0, 6, 16), torch.tanh, LayerSpec(Recorded, 2, 16, 3)]
    module = PipelineModule(layers, num_stages=STAGES, partition_method="uniform", loss_fn=F.mse_loss)
    engine, _, _, _ = dszero.initialize(model=module, config=config(MICRO, DP))
    assert module.parts == [0, 2, 3]
    assert built == ([0] if engine.is_first_stage() else [2])
    assert math.isfinite(engine.train_batch(iter(replica_batches(engine.data_parallel_rank))))
    engine.close()


def test_bf16_activations_and_gradients_cross_stages():
    def loss_fn(out, labels):  # torch 1.13 has no bf16 mse on the CPU
        return F.mse_loss(out.float(), labels)

    module = PipelineModule(make_layers(), num_stages=STAGES, loss_fn=loss_fn)
    cfg = dict(config(MICRO, DP), bf16={"enabled": True})
    engine, _, _, _ = dszero.initialize(model=module, config=cfg)
    assert all(p.dtype == torch.bfloat16 for p in engine.stage_parameters().values())
    data = iter([(x.bfloat16(), y) for x, y in replica_batches(engine.data_parallel_rank)])
    losses = [engine.train_batch(data) for _ in range(STEPS)]
    ref_losses = reference()[1]
    assert engine.global_steps == STEPS and engine.last_batch_info["stepped"] == 1
    for a, b in zip(losses, ref_losses):  # bf16 keeps ~3 significant digits
        assert abs(a - b) <= 0.05 * abs(b), (losses, ref_losses)
    engine.close()
