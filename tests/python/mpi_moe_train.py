"""mpi_moe_train.py -- training a model with a dszero.moe.MoE layer through
dszero.initialize under ``mpirun -np 2`` (CTest python_moe_train_np2):
expert parallelism must not change the training.

A small MoE transformer (embedding, a residual MLP block, a top-2 MoE layer
over 4 experts with dropping and second-expert sampling, a head; loss =
cross-entropy + 0.01 l_aux) trains 10 steps with Adam and clipping at ZeRO
stages 1, 2 and 3, once with ep_size 1 (every rank holds all experts, plain
data parallelism) and once with ep_size = world (each rank holds its own
experts, tokens cross the all-to-all). Each rank trains on its own
micro-batches, the same in both runs. Every parameter, looked up by its
global name (experts: deepspeed_experts.<global id>), ends within 1e-6
relative of the ep_size 1 run, and so does every step's loss.

Checkpoints: saved half-way at ep_size = world (stage 2), they resume bit
for bit at that ep_size and, loaded into the ep_size 1 model (resharded by
global expert name), continue within 1e-6 of the ep_size 1 run.
"""
import os
import shutil

import dszero
import pytest
import torch
import torch.nn.functional as F
from dszero.moe import MoE, is_moe_param
from helpers import shared_dir
from moe_reference import Expert, distinct_experts, rel_diff

WORLD = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
RANK = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
VOCAB, BLOCK, HIDDEN, E = 32, 8, 16, 4
STEPS, MICRO = 10, 4

pytestmark = pytest.mark.skipif(WORLD < 2, reason="run under mpirun -np 2 (or more)")


class MoETransformer(torch.nn.Module):
    def __init__(self, ep_size):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(VOCAB, HIDDEN)
        self.block = torch.nn.Sequential(torch.nn.LayerNorm(HIDDEN), torch.nn.Linear(HIDDEN, 2 * HIDDEN),
                                         torch.nn.GELU(), torch.nn.Linear(2 * HIDDEN, HIDDEN))
        self.ln = torch.nn.LayerNorm(HIDDEN)
        self.moe = MoE(HIDDEN, Expert(HIDDEN, 2 * HIDDEN), num_experts=E, ep_size=ep_size, k=2,
                       capacity_factor=1.0, seed=77)
        self.head = torch.nn.Linear(HIDDEN, VOCAB)
        distinct_experts(self.moe, 5)

    def forward(self, x, y):
        h = self.emb(x)
        h = h + self.block(h)
        m, l_aux, _ = self.moe(self.ln(h))
        logits = self.head(h + m)
        return F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1)) + 0.01 * l_aux


def rank_batches():
    g = torch.Generator().manual_seed(100 + RANK)
    out = []
    for _ in range(STEPS):
        start = torch.randint(0, VOCAB, (MICRO, 1), generator=g)
        seq = (start + 5 * torch.arange(BLOCK + 1).view(1, -1)) % VOCAB
        noise = torch.rand(seq.shape, generator=g) < 0.2
        seq = torch.where(noise, torch.randint(0, VOCAB, seq.shape, generator=g), seq)
        out.append((seq[:, :-1].contiguous(), seq[:, 1:].contiguous()))
    return out


def config(stage):
    zero = {"stage": stage}
    if stage == 3:
        zero.update(stage3_param_persistence_threshold=0, stage3_max_reuse_distance=0)
    return {"train_micro_batch_size_per_gpu": MICRO, "gradient_accumulation_steps": 1,
            "train_batch_size": MICRO * WORLD, "gradient_clipping": 0.5,
            "optimizer": {"type": "Adam", "params": {"lr": 3e-3, "betas": [0.9, 0.99], "eps": 1e-8}},
            "zero_optimization": zero}


def train(stage, ep_size, steps=slice(0, STEPS), load=None, save=None):
    """Trains on this rank's batches[steps], after loading checkpoint `load`
    and before saving to `save` when given; (parameters, expert names, losses)."""
    model = MoETransformer(ep_size)
    engine, optimizer, _, _ = dszero.initialize(model=model, config=config(stage))
    assert [g.get("moe", False) for g in optimizer.param_groups] == [False, True]
    if load is not None:
        assert engine.load_checkpoint(load)[0] is not None
    losses = []
    for x, y in rank_batches()[steps]:
        loss = engine(x, y)
        engine.backward(loss)
        engine.step()
        losses.append(loss.item())
    assert engine.global_steps == (steps.stop or STEPS)
    if save is not None:
        engine.save_checkpoint(save)
    with engine.gathered_parameters():
        params = {n: p.detach().clone() for n, p in model.named_parameters()}
    experts = {n for n, p in model.named_parameters() if is_moe_param(p)}
    engine.close()
    return params, experts, losses


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_expert_parallel_training_matches_ep1(stage):
    ref, ref_experts, ref_losses = train(stage, 1)
    mine, experts, losses = train(stage, WORLD)
    per = E // WORLD
    assert experts == {n for n in ref_experts if int(n.split(".")[4]) // per == RANK}
    assert set(mine) - experts == set(ref) - ref_experts  # the same dense parameters
    worst, where = 0.0, None
    for name, p in mine.items():  # by global name: each expert on the rank that holds it
        d = rel_diff(p, ref[name])
        if d > worst:
            worst, where = d, name
    loss_diff = max(abs(a - b) / abs(b) for a, b in zip(losses, ref_losses))
    initial = MoETransformer(1).state_dict()
    moved = max(rel_diff(mine[n], initial[n]) for n in experts)
    print("rank %d stage %d: ep_size %d vs 1 after %d Adam steps: parameters %.3g (%s), losses %.3g; "
          "experts moved %.3g" % (RANK, stage, WORLD, STEPS, worst, where, loss_diff, moved))
    assert moved > 1e-3  # the experts did train
    assert worst <= 1e-6, (worst, where)
    assert loss_diff <= 1e-6, (losses, ref_losses)


def max_rel_diff(a, b):
    return max(rel_diff(p, b[n]) for n, p in a.items())


def test_checkpoint_resumes_and_reshards_by_global_name():
    half = STEPS // 2
    path = os.path.join(shared_dir("dszero-py-moe"), "ckpt")
    unstopped, _, losses = train(2, WORLD)
    train(2, WORLD, steps=slice(0, half), save=path)
    resumed, _, resumed_losses = train(2, WORLD, steps=slice(half, STEPS), load=path)
    for n, p in unstopped.items():
        assert torch.equal(p, resumed[n]), n
    assert resumed_losses == losses[half:]
    ref, _, ref_losses = train(2, 1)
    resharded, _, resharded_losses = train(2, 1, steps=slice(half, STEPS), load=path)
    d = max_rel_diff(resharded, ref)
    print("rank %d: saved at ep_size %d, loaded at ep_size 1: %.3g from the ep_size 1 run" % (RANK, WORLD, d))
    assert d <= 1e-6
    assert max(abs(a - b) / abs(b) for a, b in zip(resharded_losses, ref_losses[half:])) <= 1e-6
    if RANK == 0:  # dsz_load ends with an agreement of all ranks: nobody reads the files any more
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
