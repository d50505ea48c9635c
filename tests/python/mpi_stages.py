"""mpi_stages.py -- the Python binding across ranks; run under
``mpirun -np 2 python -m pytest tests/python/mpi_stages.py`` (CTest
python_mpi_np2). Every rank runs every test, in the same order: each test is
collective.

Each rank trains on its own micro-batches; the torch reference (on every
rank) averages the gradients of all ranks' micro-batches, as data parallelism
does, and runs torch.optim.AdamW with DeepSpeed's schedule. Every ZeRO stage
(0-3) must land within 1e-5 of it; stages 0 and 1, and 2 and 3, bit for bit
on each other.
"""
import os
import shutil

import dszero
import pytest
import torch
from helpers import (STAGE3, batches, ds_config, make_model, max_rel_diff, param_groups, shared_dir, train_reference,
                     WD)

WORLD = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
RANK = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
STEPS, GAS, MICRO = 12, 2, 4

pytestmark = pytest.mark.skipif(WORLD < 2, reason="run under mpirun -np 2 (or more)")

_results = {}


def rank_batches(rank):
    return batches(STEPS * GAS, MICRO, seed=100 + rank)


def train_stage(stage, extra=None, precision=None):
    model = make_model(seed=11)
    cfg = ds_config(micro=MICRO, gas=GAS, world=WORLD, stage=stage, precision=precision, extra=extra)
    engine, _, _, _ = dszero.initialize(model=model, model_parameters=param_groups(model, WD), config=cfg)
    assert engine.world_size == WORLD and engine.global_rank == RANK and engine.zero_stage == stage
    losses = []
    for x, y in rank_batches(RANK):
        loss = engine(x, y)
        engine.backward(loss)
        engine.step()
        losses.append(loss.item())
    assert engine.global_steps == STEPS
    return engine, model, losses


@pytest.fixture(scope="module")
def reference():
    model = make_model(seed=11)
    per_rank = [rank_batches(r) for r in range(WORLD)]
    world_batches = [[per_rank[r][i] for r in range(WORLD)] for i in range(STEPS * GAS)]
    return train_reference(model, per_rank[0], GAS, world_batches=world_batches)


SMALL_BUCKETS = {"reduce_bucket_size": 2000, "overlap_comm": True}


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_stage_matches_data_parallel_adamw(stage, reference):
    extra = None
    if stage == 2:
        extra = {"zero_optimization": dict(stage=2, **SMALL_BUCKETS)}
    elif stage == 3:
        extra = {"zero_optimization": dict(STAGE3, **SMALL_BUCKETS)}
    engine, model, _ = train_stage(stage, extra)
    with engine.gathered_parameters():
        diff, where = max_rel_diff(model, reference)
        _results[stage] = [p.detach().clone() for p in model.parameters()]
    print("rank %d stage %d: max relative difference to data-parallel AdamW: %.3g (%s)" % (RANK, stage, diff, where))
    assert diff <= 1e-5, (diff, where)
    if stage >= 2:
        stats = engine.memory_stats()
        assert stats.collectives > 0 and stats.comm_elements > 0
    engine.close()


@pytest.mark.parametrize("a,b", [(0, 1), (2, 3)])
def test_stages_agree_bitwise(a, b):
    """Stages 0 and 1 reduce at the boundary, 2 and 3 every micro-batch
    through the same buckets: each pair gives the same bits."""
    if a not in _results or b not in _results:
        pytest.skip("needs the stage tests")
    for x, y in zip(_results[a], _results[b]):
        assert torch.equal(x, y)


@pytest.mark.parametrize("stage,precision", [(2, "fp16"), (1, "bf16"), (3, "bf16")])
def test_mixed_precision_across_ranks(stage, precision, reference):
    engine, model, losses = train_stage(stage, precision=precision)
    assert engine.skipped_steps == 0
    assert sum(losses[-4:]) < sum(losses[:4]), losses
    with engine.gathered_parameters():
        diff, where = max_rel_diff(model, reference)
    print("rank %d stage %d %s: max relative difference to fp32: %.3g (%s)" % (RANK, stage, precision, diff, where))
    assert diff < 0.05, (diff, where)
    engine.close()


@pytest.fixture(scope="module", autouse=True)
def remove_checkpoints():
    yield
    # dsz_load ends with an agreement of all ranks: nobody reads the files any more.
    if RANK == 0:
        shutil.rmtree(shared_dir(), ignore_errors=True)


@pytest.mark.parametrize("stage", [2, 3])
def test_checkpoint_round_trip(stage):
    path = os.path.join(shared_dir(), "stage%d" % stage)
    data = rank_batches(RANK)
    model = make_model(seed=11)
    cfg = ds_config(micro=MICRO, gas=GAS, world=WORLD, stage=stage)
    engine, _, _, _ = dszero.initialize(model=model, model_parameters=param_groups(model, WD), config=cfg)
    half = len(data) // 2
    for x, y in data[:half]:
        engine.backward(engine(x, y))
        engine.step()
    engine.save_checkpoint(path, tag="mid", client_state={"rank0_said": "hello"})
    for x, y in data[half:]:
        engine.backward(engine(x, y))
        engine.step()

    other_model = make_model(seed=12)
    other, _, _, _ = dszero.initialize(model=other_model, model_parameters=param_groups(other_model, WD), config=cfg)
    _, client = other.load_checkpoint(path, tag="mid")
    assert client == {"rank0_said": "hello"}
    for x, y in data[half:]:
        other.backward(other(x, y))
        other.step()
    with engine.gathered_parameters(), other.gathered_parameters():
        for a, b in zip(model.parameters(), other_model.parameters()):
            assert torch.equal(a, b)
