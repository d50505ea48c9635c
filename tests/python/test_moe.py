"""test_moe.py -- dszero.moe.MoE on one process: against a float64 plain-torch
restatement of DeepSpeed's layer (moe_reference.py) for outputs, l_aux,
exp_counts and the gradients of tokens, gate weight and experts (top-1 and
top-2, with and without dropping, used_token, no-drop capacity, eval
capacity, Residual MoE); 16-bit runs; noise that is a function of the seed;
names and marks of expert parameters; expert parameter groups in
dszero.initialize; errors."""
import copy

import dszero
import pytest
import torch
from dszero._moe_ops import jitter_multipliers
from dszero.moe import MoE, configure_moe_param_groups, is_moe_param, step_seed
from moe_reference import Expert, assert_close, distinct_experts, float64_copy, moe_forward

HIDDEN, INNER, E = 8, 12, 4


def make_moe(seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("num_experts", E)
    m = MoE(HIDDEN, Expert(HIDDEN, INNER), seed=1234, **kw)
    distinct_experts(m, seed)
    return m


def tokens(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def run_dszero(m, x, target, used_token=None, l_aux_coef=0.3):
    x = x.clone().requires_grad_(True)
    out, l_aux, counts = m(x, used_token)
    ((out * target).sum() + l_aux_coef * l_aux).backward()
    return out, l_aux, counts, x.grad


def run_reference(m, x, target, k, factor, used_token=None, drop_tokens=True, l_aux_coef=0.3, gate_scale=None):
    ref = float64_copy(m)
    experts = [ref.deepspeed_moe.experts.deepspeed_experts[str(e)] for e in range(E)]
    wg = ref.deepspeed_moe.gate.wg.weight
    x = x.double().clone().requires_grad_(True)
    out, l_aux, counts = moe_forward(x, wg, experts, k=k, factor=factor, min_capacity=4, used_token=used_token,
                                     drop_tokens=drop_tokens, gate_scale=gate_scale, mlp=getattr(ref, "mlp", None),
                                     coefficient=getattr(ref, "coefficient", None))
    ((out * target.double()).sum() + l_aux_coef * l_aux).backward()
    return ref, out, l_aux, counts, x.grad


CASES = {
    # name: (MoE arguments, tokens shape, skew of the gate towards expert 0)
    "top1": (dict(k=1, capacity_factor=4.0), (3, 8, HIDDEN), 0.0),
    "top1_drops": (dict(k=1, capacity_factor=1.0), (3, 8, HIDDEN), 1.5),
    "top1_no_drop": (dict(k=1, drop_tokens=False), (3, 8, HIDDEN), 1.5),
    "top2_drops": (dict(k=2, capacity_factor=1.0), (4, 8, HIDDEN), 1.5),
    "top2": (dict(k=2, capacity_factor=2.0), (4, 8, HIDDEN), 0.0),
    "top2_no_drop": (dict(k=2, drop_tokens=False), (4, 8, HIDDEN), 1.5),
    "top1_residual": (dict(k=1, capacity_factor=1.0, use_residual=True), (3, 8, HIDDEN), 1.0),
}


def skew(m, x, amount):
    """Pushes the tokens towards expert 0 so that its capacity overflows."""
    direction = torch.ones(HIDDEN) / HIDDEN ** 0.5
    with torch.no_grad():
        m.deepspeed_moe.gate.wg.weight[0] += amount * direction
    return x + 0.5 * direction * HIDDEN ** 0.5 * (amount > 0)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_float64_reference(name):
    kw, shape, amount = CASES[name]
    m = make_moe(seed=3, use_rts=False, top2_2nd_expert_sampling=False, **kw)
    x, target = tokens(shape, seed=5)
    x = skew(m, x, amount)
    out, l_aux, counts, dx = run_dszero(m, x, target)
    k = kw["k"]
    factor = kw.get("capacity_factor", 1.0)
    ref, r_out, r_l_aux, r_counts, r_dx = run_reference(m, x, target, k, factor,
                                                        drop_tokens=kw.get("drop_tokens", True))
    S = x.numel() // HIDDEN
    if name.endswith("_drops") or name == "top1_residual":
        # these cases must actually drop tokens
        from moe_reference import capacity
        assert int(r_counts.max()) > capacity(S, E, factor * k, 4), (r_counts, name)
    assert torch.equal(counts, r_counts.to(torch.int64)), (counts, r_counts)
    assert counts.dtype == torch.int64
    diffs = [assert_close(out, r_out, "output"), assert_close(l_aux.reshape(1), r_l_aux.reshape(1), "l_aux"),
             assert_close(dx, r_dx, "d tokens")]
    mine = dict(m.named_parameters())
    for pname, p in ref.named_parameters():
        assert mine[pname].grad is not None, pname
        diffs.append(assert_close(mine[pname].grad, p.grad, "gradient of " + pname))
    print("%s: max relative difference to the float64 reference %.3g" % (name, max(diffs)))


def test_used_token_and_eval_capacity():
    m = make_moe(seed=4, k=1, capacity_factor=1.0, eval_capacity_factor=2.0, use_rts=False)
    x, target = tokens((24, HIDDEN), seed=6)
    used = (torch.arange(24) % 3 != 0).to(torch.float32)
    out, l_aux, counts, dx = run_dszero(m, x, target, used_token=used)
    _, r_out, r_l_aux, r_counts, r_dx = run_reference(m, x, target, 1, 1.0, used_token=used)
    assert torch.equal(counts, r_counts)
    assert_close(out, r_out, "output with used_token")
    assert_close(dx, r_dx, "d tokens with used_token")
    assert out[::3].abs().max() == 0  # unused tokens go nowhere
    m.eval()
    m.zero_grad()
    out, l_aux, counts, dx = run_dszero(m, x, target)
    _, r_out, r_l_aux, _, r_dx = run_reference(m, x, target, 1, 2.0)
    assert_close(out, r_out, "eval output (eval_capacity_factor)")
    assert_close(dx, r_dx, "eval d tokens")


class CastingExpert(Expert):
    """Computes in float32 on 16-bit weights (torch 1.13 has no fp16 matmul on the CPU)."""

    def forward(self, x):
        h = torch.tanh(torch.nn.functional.linear(x.float(), self.fc1.weight.float(), self.fc1.bias.float()))
        return torch.nn.functional.linear(h, self.fc2.weight.float(), self.fc2.bias.float()).to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16bit(dtype):
    torch.manual_seed(0)
    # Residual MoE in bf16 only: its coefficient Linear has no fp16 kernel on the CPU
    m = MoE(HIDDEN, CastingExpert(HIDDEN, INNER), num_experts=E, k=2, seed=7,
            use_residual=dtype == torch.bfloat16)
    distinct_experts(m, 1)
    ref = copy.deepcopy(m)
    m.to(dtype)
    x, target = tokens((4, 8, HIDDEN), seed=2)
    out, l_aux, counts, dx = run_dszero(m, x.to(dtype), target.to(dtype))
    r_out, r_l_aux, r_counts, r_dx = run_dszero(ref, x, target)
    assert out.dtype == dtype and dx.dtype == dtype and l_aux.dtype == torch.float32
    assert torch.equal(counts, r_counts)
    assert (out.float() - r_out).abs().max() < 0.05 * r_out.abs().max()
    assert (dx.float() - r_dx).abs().max() < 0.05 * r_dx.abs().max()
    for (n, p), (_, q) in zip(m.named_parameters(), ref.named_parameters()):
        assert p.grad is not None and p.grad.dtype == dtype and torch.isfinite(p.grad.float()).all(), n
        assert (p.grad.float() - q.grad).abs().max() <= 0.05 * q.grad.abs().max() + 1e-3, n


@pytest.mark.parametrize("kw", [dict(k=1, use_rts=True), dict(k=1, noisy_gate_policy="RSample"),
                                dict(k=1, noisy_gate_policy="Jitter", use_rts=False),
                                dict(k=2, top2_2nd_expert_sampling=True)])
def test_noise_is_a_function_of_seed_step_and_rank(kw):
    x, target = tokens((32, HIDDEN), seed=9)
    outs = []
    for _ in range(2):
        m = make_moe(seed=1, capacity_factor=1.0, **kw)
        outs.append([m(x)[0].detach() for _ in range(3)])  # steps 0, 1, 2
    for a, b in zip(*outs):
        assert torch.equal(a, b)  # same seed, same step: same routes
    assert any(not torch.equal(outs[0][0], o) for o in outs[0][1:])  # the step changes the noise
    assert step_seed(1234, 0, 0) != step_seed(1234, 1, 0) != step_seed(1234, 0, 1)


def test_jitter_matches_reference_on_jittered_gate_input():
    """Jitter multiplies the gate's input (only) by dsz_moe_jitter's factors
    for the forward's seed; gradients flow through them."""
    m = make_moe(seed=2, k=1, noisy_gate_policy="Jitter", use_rts=False, capacity_factor=4.0)
    x, target = tokens((24, HIDDEN), seed=3)
    u = jitter_multipliers(x.numel(), 0.01, step_seed(1234, 0, 0)).view_as(x)  # step 0, rank 0
    assert (u - 1).abs().max() <= 0.01 and not torch.equal(u, torch.ones_like(u))
    out, l_aux, counts, dx = run_dszero(m, x, target)
    _, r_out, r_l_aux, r_counts, r_dx = run_reference(m, x, target, 1, 4.0, gate_scale=u)
    assert torch.equal(counts, r_counts)
    assert_close(out, r_out, "output with jitter")
    assert_close(dx, r_dx, "d tokens with jitter")


def test_expert_names_and_marks():
    m = make_moe(k=2)
    assert m.expert_ids == [0, 1, 2, 3]
    experts = [(n, p) for n, p in m.named_parameters() if ".deepspeed_experts." in n]
    assert {n.split(".")[3] for n, _ in experts} == {"0", "1", "2", "3"}
    for n, p in experts:
        assert is_moe_param(p) and p.group_name == "ep_size_1", n
    assert not is_moe_param(m.deepspeed_moe.gate.wg.weight)
    assert m.deepspeed_moe.gate.wg.weight.shape == (E, HIDDEN)
    m2 = copy.deepcopy(m)  # a copy finds its own group
    x = torch.randn(16, HIDDEN)
    assert torch.equal(m2(x)[0], make_moe(k=2)(x)[0])


def test_refused_arguments():
    with pytest.raises(ValueError, match="multiple of ep_size"):
        MoE(HIDDEN, Expert(HIDDEN, INNER), num_experts=3, ep_size=2)
    with pytest.raises(ValueError, match="noisy_gate_policy"):
        MoE(HIDDEN, Expert(HIDDEN, INNER), num_experts=4, noisy_gate_policy="Gaussian")
    with pytest.raises(ValueError, match="use_tutel"):
        MoE(HIDDEN, Expert(HIDDEN, INNER), num_experts=4, use_tutel=True)
    with pytest.raises(dszero.DSZeroError) as e:  # one process: no expert-parallel group of 2
        MoE(HIDDEN, Expert(HIDDEN, INNER), num_experts=4, ep_size=2)
    assert "expert-parallel size 2" in e.value.message
    m = make_moe(k=2)
    with pytest.raises(dszero.DSZeroError) as e:  # DeepSpeed's top-2 ignores used_token: refused
        m(torch.randn(16, HIDDEN), torch.ones(16))
    assert e.value.status == dszero.DSZ_ERR_INVALID_ARGUMENT and "used_token" in e.value.message


class MoENet(torch.nn.Module):
    def __init__(self, ep_size=1):
        super().__init__()
        torch.manual_seed(0)
        self.inp = torch.nn.Linear(HIDDEN, HIDDEN)
        self.moe = MoE(HIDDEN, Expert(HIDDEN, INNER), num_experts=E, ep_size=ep_size, k=2, seed=5)
        self.out = torch.nn.Linear(HIDDEN, 1)

    def forward(self, x, y):
        h, l_aux, _ = self.moe(torch.relu(self.inp(x)))
        return ((self.out(h).squeeze(-1) - y) ** 2).mean() + 0.01 * l_aux


def config(stage=1):
    return {"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1,
            "optimizer": {"type": "Adam", "params": {"lr": 1e-2}}, "zero_optimization": {"stage": stage}}


def test_initialize_puts_experts_in_expert_groups():
    model = MoENet()
    experts = [p for n, p in model.named_parameters() if is_moe_param(p)]
    engine, optimizer, _, _ = dszero.initialize(model=model, config=config())
    groups = optimizer.param_groups
    assert [g.get("name") for g in groups] == ["dense-params", "ep_size_1"]
    assert groups[1]["moe"] is True and [id(p) for p in groups[1]["params"]] == [id(p) for p in experts]
    assert not any(is_moe_param(p) for p in groups[0]["params"])
    # the layer runs over the engine's ranks and takes its step from the engine
    assert model.moe.deepspeed_moe._state.engine is engine.dszero
    before = [p.detach().clone() for p in experts]
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x, y = torch.randn(4, 6, HIDDEN, generator=g), torch.randn(4, 6, generator=g)
        engine.backward(engine(x, y))
        engine.step()
    assert engine.global_steps == 3
    assert all(not torch.equal(a, p) for a, p in zip(before, experts))
    engine.close()
    with pytest.raises(ValueError, match="closed"):  # the engine's group went with it
        model(torch.randn(4, 6, HIDDEN), torch.randn(4, 6))


def test_param_groups_split_per_original_group():
    model = MoENet()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    split = configure_moe_param_groups([{"params": decay, "weight_decay": 0.1, "name": "decay"},
                                        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}])
    assert [(g["name"], g.get("moe", False), g["weight_decay"]) for g in split] == [
        ("decay", False, 0.1), ("no_decay", False, 0.0), ("ep_size_1", True, 0.1), ("ep_size_1", True, 0.0)]
    assert sum(len(g["params"]) for g in split) == len(list(model.parameters()))
    engine, optimizer, _, _ = dszero.initialize(model=model, model_parameters=split, config=config(2))
    assert [g.get("moe", False) for g in optimizer.param_groups] == [False, False, True, True]
    engine.close()
    # a group that claims to be an expert group must hold only its experts
    bad = [{"params": decay + no_decay, "name": "ep_size_1", "moe": True}]
    with pytest.raises(ValueError, match="not an expert parameter"):
        dszero.initialize(model=MoENet(), model_parameters=bad, config=config())
