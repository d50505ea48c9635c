"""mpi_moe.py -- dszero.moe.MoE across ranks; run under
``mpirun -np 2 python -m pytest tests/python/mpi_moe.py`` (CTest
python_moe_np2). Every test is collective: every rank runs them in order.

Expert parallelism moves experts, not results: on each rank's own tokens, a
layer with ep_size = world gives the outputs, l_aux, exp_counts, token and
gate gradients of the same layer with ep_size 1 (all experts local), and each
expert's gradient equals the sum over ranks of the ep_size 1 gradients (each
rank computes that reference itself and gathers the others' over the
all-to-all). Noise included (random token selection, second-expert
sampling): it depends on the seed, the step and the world rank, not on
ep_size. ep_size 1 across ranks is plain data parallelism: each rank's layer
matches the float64 reference on its tokens.
"""
import os

import dszero
import pytest
import torch
from dszero import _moe_ops
from dszero.handle import MoEGroupHandle
from dszero.moe import MoE
from moe_reference import Expert, assert_close, capacity, distinct_experts, float64_copy, moe_forward

WORLD = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
RANK = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
HIDDEN, INNER, E = 6, 10, 4

pytestmark = pytest.mark.skipif(WORLD < 2, reason="run under mpirun -np 2 (or more)")


def all_gather(t):
    """[world, *t.shape]: every rank's t (the all-to-all of t repeated world times)."""
    group = MoEGroupHandle(WORLD)
    buf = t.detach().reshape(1, 1, -1).repeat(WORLD, 1, 1).contiguous()
    out = _moe_ops._exchange(group, buf)
    group.close()
    return out.reshape((WORLD,) + tuple(t.shape))


def make_layer(ep_size, engine=None, **kw):
    torch.manual_seed(3)
    m = MoE(HIDDEN, Expert(HIDDEN, INNER), num_experts=E, ep_size=ep_size, seed=1234, engine=engine, **kw)
    distinct_experts(m, 3)
    return m


def my_tokens(shape):
    g = torch.Generator().manual_seed(100 + RANK)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def run(m, x, target, steps=2):
    """`steps` forward/backward passes (the noise changes with the step); the last one's results."""
    for _ in range(steps):
        m.zero_grad()
        x = x.detach().clone().requires_grad_(True)
        out, l_aux, counts = m(x)
        ((out * target).sum() + 0.3 * l_aux).backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters()}
    return out.detach(), l_aux.detach(), counts, x.grad, grads


CASES = {
    "top1_rts": dict(k=1, capacity_factor=1.0, use_rts=True),
    "top1_rsample_residual": dict(k=1, capacity_factor=1.25, noisy_gate_policy="RSample", use_residual=True),
    "top2_drops_sampled": dict(k=2, capacity_factor=1.0),
    "top2_no_drop": dict(k=2, drop_tokens=False),
    "top1_jitter_no_drop": dict(k=1, drop_tokens=False, noisy_gate_policy="Jitter"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_expert_parallel_matches_ep1(name):
    kw = CASES[name]
    x, target = my_tokens((4, 6, HIDDEN))
    ref = make_layer(1, **kw)
    r_out, r_l_aux, r_counts, r_dx, r_grads = run(ref, x, target)
    m = make_layer(WORLD, **kw)
    assert m.expert_ids == list(range(RANK * E // WORLD, (RANK + 1) * E // WORLD))
    out, l_aux, counts, dx, grads = run(m, x, target)
    assert torch.equal(counts, r_counts)
    if kw.get("drop_tokens", True):  # these cases overflow a capacity on some rank
        overflow = int(counts.max()) > capacity(24, E, kw["capacity_factor"] * kw["k"], 4)
        assert all_gather(torch.tensor([float(overflow)])).sum() > 0
    diffs = [assert_close(out, r_out, "output"), assert_close(l_aux.reshape(1), r_l_aux.reshape(1), "l_aux"),
             assert_close(dx, r_dx, "d tokens")]
    # every expert's ep_size 1 gradient summed over ranks (all ranks gather all, in the same order)
    summed = {n: all_gather(g).sum(dim=0) for n, g in r_grads.items() if ".deepspeed_experts." in n}
    worst = 0.0
    for n, g in grads.items():
        if ".deepspeed_experts." in n:
            worst = max(worst, assert_close(g, summed[n], "gradient of " + n))
        else:
            diffs.append(assert_close(g, r_grads[n], "gradient of " + n))
    print("rank %d %s: ep_size %d vs 1: max relative difference %.3g (experts %.3g)"
          % (RANK, name, WORLD, max(diffs), worst))


def test_engine_group_matches_launched_ranks():
    """A layer placed by an engine's ranks (dsz_moe_group_new over the engine)
    computes what the layer over the launched ranks does."""
    engine = dszero.Engine({"train_micro_batch_size_per_gpu": 1,
                            "optimizer": {"type": "SGD", "params": {"lr": 0.1}}})
    x, target = my_tokens((24, HIDDEN))
    a = run(make_layer(WORLD, k=2, capacity_factor=1.0), x, target, steps=1)
    m = make_layer(WORLD, engine=engine, k=2, capacity_factor=1.0)
    b = run(m, x, target, steps=1)  # engine micro_steps 0 = the first call's step
    for u, v in zip(a[:4], b[:4]):
        assert torch.equal(u, v)
    for n in a[4]:
        assert torch.equal(a[4][n], b[4][n]), n
    engine.close()
    with pytest.raises(ValueError, match="closed"):
        m(x)


def test_data_parallel_ep1_matches_float64_reference():
    m = make_layer(1, k=2, capacity_factor=1.0, top2_2nd_expert_sampling=False)
    group = m.deepspeed_moe._group()
    assert group.info() == (1, 0, WORLD, RANK)
    x, target = my_tokens((24, HIDDEN))
    out, l_aux, counts, dx, grads = run(m, x, target, steps=1)
    ref = float64_copy(m)
    xd = x.double().requires_grad_(True)
    experts = [ref.deepspeed_moe.experts.deepspeed_experts[str(e)] for e in range(E)]
    r_out, r_l_aux, r_counts = moe_forward(xd, ref.deepspeed_moe.gate.wg.weight, experts, k=2, factor=1.0)
    ((r_out * target.double()).sum() + 0.3 * r_l_aux).backward()
    assert torch.equal(counts, r_counts)
    assert_close(out, r_out, "output")
    assert_close(dx, xd.grad, "d tokens")
    for n, p in ref.named_parameters():
        assert_close(grads[n], p.grad, "gradient of " + n)
    # the ranks saw different tokens: their gradients differ (nothing was reduced here)
    wg = all_gather(grads["deepspeed_moe.gate.wg.weight"])
    assert not torch.equal(wg[0], wg[1])
