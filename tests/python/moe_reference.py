"""moe_reference.py -- DeepSpeed's MoE layer restated in plain torch, in
float64, for the tests of dszero.moe: top1gating / top2gating as in
deepspeed/moe/sharded_moe.py (dense masks, cumsum slots, einsum dispatch and
combine), without noise (use_rts=False, no Gumbel sampling) so it is
deterministic. Where DeepSpeed's token selection without RTS is a top-k over
ties (order unspecified), the earliest tokens are kept, as dszero does.

Also the tests' shared pieces: a small expert, distinct expert weights per
global id, and the comparison helpers.
"""
import copy
import math

import torch
import torch.nn.functional as F


def capacity(S, E, factor, min_capacity):
    """DeepSpeed's _capacity (float32 product, then ceil, then the minimum)."""
    c = int(torch.ceil((S / E) * torch.tensor(factor)).to(torch.int64))
    return max(c, int(min_capacity))


def _slots_one_hot(locations_s, C):
    return F.one_hot(locations_s, num_classes=C).to(torch.float64)


def top1gating(logits, factor, min_capacity, used_token=None, drop_tokens=True, group_max=None):
    """(l_aux, combine_weights [S, E, C], exp_counts). group_max(v): the MAX of
    the no-drop capacity over the expert-parallel group (identity by default)."""
    S, E = logits.shape
    gates = F.softmax(logits, dim=1)
    C = capacity(S, E, factor, min_capacity)
    mask1 = F.one_hot(torch.argmax(gates, dim=1), num_classes=E)
    if used_token is not None:
        mask1 = mask1 * used_token.reshape(-1, 1).to(mask1.dtype)
    exp_counts = mask1.sum(dim=0)
    if not drop_tokens:
        C = min(int((group_max or int)(int(exp_counts.max()))), S)
    me = gates.mean(dim=0)
    ce = mask1.double().mean(dim=0)
    l_aux = (me * ce).sum() * E
    keep = min(C, S)
    mask1 = mask1 * ((torch.cumsum(mask1, dim=0) - 1) < keep)  # the earliest tokens of each expert
    locations1 = torch.cumsum(mask1, dim=0) - 1
    locations1_s = (locations1 * mask1).sum(dim=1)
    gates = gates * mask1.double()
    combine = torch.einsum("se,sc->sec", gates, _slots_one_hot(locations1_s, C))
    return l_aux, combine, exp_counts


def top2gating(logits, factor, min_capacity, drop_tokens=True, group_max=None):
    """DeepSpeed's top2gating without second-expert sampling."""
    S, E = logits.shape
    gates = F.softmax(logits, dim=1)
    mask1 = F.one_hot(torch.argmax(gates, dim=1), num_classes=E)
    logits_except1 = logits.masked_fill(mask1.bool(), float("-inf"))
    mask2 = F.one_hot(torch.argmax(logits_except1, dim=1), num_classes=E)
    locations1 = torch.cumsum(mask1, dim=0) - 1
    locations2 = torch.cumsum(mask2, dim=0) - 1 + mask1.sum(dim=0, keepdim=True)
    me = gates.mean(dim=0)
    ce = mask1.double().mean(dim=0)
    l_aux = (me * ce).mean() * E * E
    exp_counts = (mask1 + mask2).sum(dim=0)
    if drop_tokens:
        C = capacity(S, E, factor * 2, min_capacity)
        mask1 = mask1 * (locations1 < C)
        mask2 = mask2 * (locations2 < C)
    else:
        C = int((group_max or int)(int(exp_counts.max())))
    locations1_s = (locations1 * mask1).sum(dim=1)
    locations2_s = (locations2 * mask2).sum(dim=1)
    g1 = (gates * mask1.double()).sum(dim=1)
    g2 = (gates * mask2.double()).sum(dim=1)
    denom = torch.clamp(g1 + g2, min=torch.finfo(torch.float32).eps)  # dszero: float32 eps
    g1, g2 = g1 / denom, g2 / denom
    combine = (torch.einsum("se,sc->sec", g1.unsqueeze(1) * mask1.double(), _slots_one_hot(locations1_s, C)) +
               torch.einsum("se,sc->sec", g2.unsqueeze(1) * mask2.double(), _slots_one_hot(locations2_s, C)))
    return l_aux, combine, exp_counts


def moe_forward(x, wg, experts, k=1, factor=1.0, min_capacity=4, used_token=None, drop_tokens=True,
                group_max=None, gate_scale=None, mlp=None, coefficient=None):
    """The MoE layer: (output, l_aux, exp_counts). `experts` are modules by
    global id (a list), `wg` the gate weight [E, M]; all float64. gate_scale:
    jitter factors that multiply the gate's input (not the dispatched tokens)."""
    M = x.shape[-1]
    tokens = x.reshape(-1, M)
    gate_input = tokens if gate_scale is None else tokens * gate_scale.reshape(-1, M).double()
    logits = gate_input @ wg.t()
    if k == 1:
        l_aux, combine, exp_counts = top1gating(logits, factor, min_capacity, used_token, drop_tokens, group_max)
    else:
        l_aux, combine, exp_counts = top2gating(logits, factor, min_capacity, drop_tokens, group_max)
    dispatched = torch.einsum("sec,sm->ecm", combine.bool().double(), tokens)
    expert_out = torch.stack([e(dispatched[i]) for i, e in enumerate(experts)])
    out = torch.einsum("sec,ecm->sm", combine, expert_out).reshape(x.shape)
    if mlp is not None:
        coef = F.softmax(coefficient(x), dim=-1)
        out = out * coef[..., 0:1] + mlp(x) * coef[..., 1:]
    return out, l_aux, exp_counts


# ---- shared test pieces ----
class Expert(torch.nn.Module):
    """A small two-layer MLP (what the tests route tokens to)."""

    def __init__(self, hidden, inner):
        super().__init__()
        self.fc1 = torch.nn.Linear(hidden, inner)
        self.fc2 = torch.nn.Linear(inner, hidden)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def distinct_experts(moe, seed):
    """Gives every expert its own weights, a function of (seed, global id):
    DeepSpeed's copies all start equal, which would hide routing mistakes."""
    with torch.no_grad():
        for gid, expert in moe.deepspeed_moe.experts.deepspeed_experts.items():
            g = torch.Generator().manual_seed(seed * 1000 + int(gid))
            for p in expert.parameters():
                p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))


def float64_copy(module):
    return copy.deepcopy(module).double()


def rel_diff(a, b):
    """max|a - b| / max|b| in float64 (0 when both are zero)."""
    a, b = a.detach().double(), b.detach().double()
    den = b.abs().max().item() if b.numel() else 0.0
    num = (a - b).abs().max().item() if b.numel() else 0.0
    return num / den if den > 0 else num


def assert_close(a, b, what, rel=1e-6):
    assert a.shape == b.shape, (what, a.shape, b.shape)
    d = rel_diff(a, b)
    assert math.isfinite(d) and d <= rel, "%s: relative difference %.3g > %g" % (what, d, rel)
    return d
