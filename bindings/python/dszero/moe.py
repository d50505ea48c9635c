"""moe.py -- DeepSpeed's mixture-of-experts layer for PyTorch
(``deepspeed.moe.layer.MoE``) over dszero's MoE runtime (docs/moe.md).

``MoE(hidden_size, expert, num_experts, ep_size, k, ...)`` is a torch module
whose forward returns ``(output, l_aux, exp_counts)`` as DeepSpeed's does,
with DeepSpeed's module tree, so parameter names match:

  deepspeed_moe (MOELayer)
    gate (TopKGate)      wg: Linear(hidden, num_experts, bias=False); fp32 logits
    experts (Experts)    deepspeed_experts.<global expert id>: this rank's copies
  mlp, coefficient       with use_residual (Residual MoE)

Torch computes the gate logits and runs the experts; routing, dispatch, the
expert-parallel all-to-all and combine are dszero's C calls, wrapped in
autograd Functions (_moe_ops.py), so loss.backward() reaches the tokens, the
gate weights and the experts.

Expert parallelism: rank g of an expert-parallel group of ep_size ranks holds
the global experts [g * E / ep_size, (g + 1) * E / ep_size), named by global
id (distinct across an expert-parallel group, equal across an expert-data
group) and marked as DeepSpeed marks them (``allreduce = False``,
``group_name = "ep_size_<ep_size>"``) so that dszero.initialize puts them in
expert parameter groups. The group (dsz_moe_group_new) is built over the
launched ranks when the layer is constructed (ep_size > 1; collective: build
the model on every rank in the same order), and over an engine's ranks by
``set_engine`` (dszero.initialize calls it for every MoE layer of the model).

Noise (random token selection, Gumbel sampling, jitter) comes from dszero's
counter-based generator; the seed of each forward is
``step_seed(base, step, rank)``: ``base`` the layer's seed, ``step`` the
engine's micro-step count once an engine is attached (else the number of
forward calls of this layer so far), ``rank`` this rank in the group's world.
"""
import copy
import itertools
import re
import weakref

import torch

from . import _moe_ops
from .engine import Engine
from .handle import MoEGroupHandle

_MASK64 = (1 << 64) - 1
_layer_index = itertools.count()
_world_groups = {}                            # ep_size -> MoEGroupHandle over the launched ranks
_engine_groups = weakref.WeakKeyDictionary()  # engine handle -> {ep_size: MoEGroupHandle}


def splitmix64(x):
    """SplitMix64's output function of x + golden gamma (64-bit)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def step_seed(base, step, rank):
    """The gate seed of one forward: splitmix64(splitmix64(splitmix64(base) ^ step) ^ rank)."""
    return splitmix64(splitmix64(splitmix64(base & _MASK64) ^ (step & _MASK64)) ^ (rank & _MASK64))


def expert_group_name(ep_size):
    return "ep_size_%d" % ep_size


def is_moe_param(param):
    """DeepSpeed's test: an expert parameter carries allreduce = False."""
    return hasattr(param, "allreduce") and not param.allreduce


def ep_size_of(group_name):
    """N of an expert group name "ep_size_<N>"."""
    m = re.fullmatch(r"ep_size_([0-9]+)", str(group_name))
    if m is None or int(m.group(1)) < 1:
        raise ValueError("dszero: expert group name %r is not \"ep_size_<N>\" (N >= 1)" % (group_name,))
    return int(m.group(1))


def split_params_into_different_moe_groups_for_optimizer(param_groups, max_group_size=None):
    """DeepSpeed's helper: every group dict loses its expert parameters to new
    groups appended after all of them, one per (group, expert group name),
    with the group's settings, ``name`` = "ep_size_<N>" and ``moe`` = True.
    dszero's flat groups have no size limit: max_group_size is not used."""
    if isinstance(param_groups, dict):
        param_groups = [param_groups]
    param_groups = [dict(g, params=list(g["params"])) for g in param_groups]
    moe_groups = []
    for g in param_groups:
        by_name = {}
        dense = []
        for p in g["params"]:
            if is_moe_param(p):
                by_name.setdefault(p.group_name, []).append(p)
            else:
                dense.append(p)
        g["params"] = dense
        for name in sorted(by_name, key=ep_size_of):
            moe_groups.append(dict(g, name=name, moe=True, params=by_name[name]))
    return param_groups + moe_groups


def configure_moe_param_groups(model_parameters):
    """What dszero.initialize does with model_parameters, as DeepSpeed's engine
    does: unchanged without expert parameters or when groups already carry
    ``moe``; else a plain list becomes a "dense-params" group and the expert
    parameters move to their own groups."""
    items = list(model_parameters)
    if not items:
        return items
    if isinstance(items[0], dict):
        if any("moe" in g for g in items):
            return items
        params = [p for g in items for p in ([g["params"]] if isinstance(g["params"], torch.Tensor)
                                               else g["params"])]
        if not any(is_moe_param(p) for p in params):
            return items
        return split_params_into_different_moe_groups_for_optimizer(
            [dict(g, params=[g["params"]] if isinstance(g["params"], torch.Tensor) else list(g["params"]))
             for g in items])
    if not any(isinstance(p, torch.Tensor) and is_moe_param(p) for p in items):
        return items
    return split_params_into_different_moe_groups_for_optimizer({"params": items, "name": "dense-params"})


def _world_group(ep_size):
    g = _world_groups.get(ep_size)
    if g is None or g.closed:
        g = _world_groups[ep_size] = MoEGroupHandle(ep_size)
    return g


def _engine_core(engine):
    """The dszero.Engine of a DSZeroEngine (or an Engine itself)."""
    if isinstance(engine, Engine):
        return engine
    core = getattr(engine, "dszero", None)
    if isinstance(core, Engine):
        return core
    raise TypeError("dszero.moe: set_engine needs the engine dszero.initialize returned or a dszero.Engine, "
                    "not %s" % type(engine).__name__)


def _engine_group(core, ep_size):
    handle = core._handle
    groups = _engine_groups.setdefault(handle, {})
    g = groups.get(ep_size)
    if g is None or g.closed:
        g = groups[ep_size] = MoEGroupHandle(ep_size, handle)
    return g


class _RunState:
    """The layer's group, engine, forward count and last l_aux / exp_counts.
    A deep copy or a pickle of the layer gets a fresh one (the copy finds its
    group again when it runs; l_aux, part of an autograd graph, cannot be
    copied)."""

    def __init__(self):
        self.group = None     # MoEGroupHandle
        self.engine = None    # dszero.Engine, after set_engine
        self.calls = 0
        self.l_aux = None
        self.exp_counts = None

    def __deepcopy__(self, memo):
        return _RunState()

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


class Experts(torch.nn.Module):
    """This rank's experts: deep copies of `expert` under their global ids
    (``deepspeed_experts.<id>``), parameters marked as DeepSpeed marks them."""

    def __init__(self, expert, num_local_experts=1, expert_group_name=None, first_expert=0):
        super().__init__()
        self.deepspeed_experts = torch.nn.ModuleDict(
            {str(first_expert + i): copy.deepcopy(expert) for i in range(num_local_experts)})
        self.num_local_experts = num_local_experts
        for e in self.deepspeed_experts.values():
            for p in e.parameters():
                p.allreduce = False
                p.group_name = expert_group_name

    def forward(self, inputs):
        # inputs [ep, local experts, C, M]: local expert i gets [:, i:i+1]
        chunks = inputs.chunk(self.num_local_experts, dim=1)
        outputs = []
        for chunk, expert in zip(chunks, self.deepspeed_experts.values()):
            out = expert(chunk)
            if isinstance(out, tuple):
                out = out[0]  # ignore a bias term, as DeepSpeed does
            outputs.append(out)
        return torch.cat(outputs, dim=1)


class _GateLinear(torch.nn.Linear):
    """wg: fp32 logits from the fp32 input and the weight cast to fp32, as
    DeepSpeed computes them; computed in wg's own forward so that ZeRO stage
    3 gathers the weight around it."""

    def forward(self, input_fp32):
        return torch.nn.functional.linear(input_fp32, self.weight.float(), None)


class TopKGate(torch.nn.Module):
    """DeepSpeed's TopKGate: wg and the gate settings. Its forward gives
    (l_aux, route weights [S, k], exp_counts, routing) for MOELayer."""

    def __init__(self, model_dim, num_experts, k=1, capacity_factor=1.0, eval_capacity_factor=1.0, min_capacity=8,
                 noisy_gate_policy=None, drop_tokens=True, use_rts=True, top2_2nd_expert_sampling=True,
                 drop_policy="probs"):
        super().__init__()
        if noisy_gate_policy == "None":
            noisy_gate_policy = None
        if noisy_gate_policy not in (None, "Jitter", "RSample"):
            raise ValueError("dszero.moe: noisy_gate_policy %r is not None, 'Jitter' or 'RSample'"
                             % (noisy_gate_policy,))
        if drop_policy not in ("probs", "position"):
            raise ValueError("dszero.moe: drop_policy %r is not 'probs' or 'position'" % (drop_policy,))
        if not 1 <= k <= num_experts:
            raise ValueError("dszero.moe: k = %d must be in [1, num_experts = %d]" % (k, num_experts))
        self.wg = _GateLinear(model_dim, num_experts, bias=False)
        self.k = k
        self.capacity_factor = capacity_factor
        self.eval_capacity_factor = eval_capacity_factor
        self.min_capacity = min_capacity
        self.noisy_gate_policy = noisy_gate_policy
        self.drop_tokens = drop_tokens
        self.use_rts = use_rts
        self.top2_2nd_expert_sampling = top2_2nd_expert_sampling
        self.drop_policy = drop_policy

    def forward(self, input, used_token=None, seed=0, group=None):
        input_fp32 = input.float()
        if self.noisy_gate_policy == "Jitter" and self.training:
            u = _moe_ops.jitter_multipliers(input_fp32.numel(), 0.01, seed)
            input_fp32 = input_fp32 * u.view_as(input_fp32)
        logits = self.wg(input_fp32)
        cfg = _moe_ops.gate_config(self.k, self.capacity_factor, self.eval_capacity_factor, self.min_capacity,
                                   self.training, self.drop_tokens, self.use_rts, self.noisy_gate_policy,
                                   self.top2_2nd_expert_sampling, self.drop_policy, seed)
        weights, l_aux, exp_counts, routing = _moe_ops.gate(logits, cfg, used_token, group)
        return l_aux, weights, exp_counts, routing


class MOELayer(torch.nn.Module):
    """DeepSpeed's MOELayer: gate, dispatch, all-to-all, experts, all-to-all, combine."""

    def __init__(self, gate, experts, ep_group_name, ep_size, num_local_experts, seed):
        super().__init__()
        self.gate = gate
        self.experts = experts
        self.ep_group_name = ep_group_name
        self.ep_size = ep_size
        self.num_local_experts = num_local_experts
        self.seed = seed
        self._state = _RunState()

    @property
    def l_aux(self):
        """The load-balancing loss of the last forward."""
        return self._state.l_aux

    @property
    def exp_counts(self):
        """Routes per expert of the last forward, before dropping (int64)."""
        return self._state.exp_counts

    # ---- where the layer runs ----
    def _group(self):
        st = self._state
        if st.group is None:
            st.group = _world_group(self.ep_size)
        elif st.group.closed:
            raise ValueError("dszero.moe: the engine this MoE layer was attached to has been closed; "
                             "attach it to another with set_engine")
        return st.group

    def _check_place(self, group):
        ep_size, ep_rank, _, _ = group.info()
        first = ep_rank * self.num_local_experts
        mine = int(next(iter(self.experts.deepspeed_experts.keys())))
        if first != mine:
            raise ValueError("dszero.moe: this rank holds experts [%d, %d) (it was expert-parallel rank %d of "
                             "the launched ranks when the layer was built) but is expert-parallel rank %d "
                             "of the engine's ranks; build the model with engine=... to place it there"
                             % (mine, mine + self.num_local_experts, mine // self.num_local_experts, ep_rank))

    def set_engine(self, engine):
        core = _engine_core(engine)
        group = _engine_group(core, self.ep_size)
        self._check_place(group)
        self._state.group = group
        self._state.engine = core

    def first_expert(self, engine=None):
        """The global id of this rank's first expert (collective the first time)."""
        group = _engine_group(_engine_core(engine), self.ep_size) if engine is not None else self._group()
        return group.info()[1] * self.num_local_experts

    def _seed(self, group):
        st = self._state
        step = st.engine.state().micro_steps if st.engine is not None else st.calls
        st.calls += 1
        ep_size, ep_rank, _, edp_rank = group.info()
        return step_seed(self.seed, step, edp_rank * ep_size + ep_rank)

    # ---- forward ----
    def forward(self, input, used_token=None):
        group = self._group()
        d_model = input.shape[-1]
        tokens = input.reshape(-1, d_model)
        st = self._state
        st.l_aux, weights, st.exp_counts, routing = self.gate(tokens, used_token, self._seed(group), group)
        buf = _moe_ops.dispatch(tokens, routing)
        E, C = routing.info.experts, routing.info.capacity
        if self.ep_size > 1:
            buf = _moe_ops.all_to_all(buf, group)
        expert_out = self.experts(buf.reshape(self.ep_size, self.num_local_experts, C, d_model))
        expert_out = expert_out.reshape(E, C, d_model).to(input.dtype)
        if self.ep_size > 1:
            expert_out = _moe_ops.all_to_all(expert_out, group)
        return _moe_ops.combine(expert_out, weights, routing).reshape(input.shape)


class MoE(torch.nn.Module):
    """DeepSpeed's ``deepspeed.moe.layer.MoE`` on dszero.

    ``forward(hidden_states, used_token=None)`` returns ``(output, l_aux,
    exp_counts)``. Arguments as DeepSpeed's (docs/moe.md), plus
    ``drop_policy`` (top-k, k > 2: "probs" or "position"), ``seed`` (the
    base of the per-forward gate seeds; None: taken from torch.initial_seed()
    and the count of MoE layers built before this one in the process) and
    ``engine`` (place the experts by an existing engine's ranks instead of the
    launched ranks). ``use_tutel`` and ``enable_expert_tensor_parallelism``
    are not supported. CPU tensors, float32 / float16 / bfloat16."""

    def __init__(self, hidden_size, expert, num_experts=1, ep_size=1, k=1, capacity_factor=1.0,
                 eval_capacity_factor=1.0, min_capacity=4, use_residual=False, noisy_gate_policy=None,
                 drop_tokens=True, use_rts=True, use_tutel=False, enable_expert_tensor_parallelism=False,
                 top2_2nd_expert_sampling=True, drop_policy="probs", seed=None, engine=None):
        super().__init__()
        if use_tutel:
            raise ValueError("dszero.moe: use_tutel is not supported")
        if enable_expert_tensor_parallelism:
            raise ValueError("dszero.moe: enable_expert_tensor_parallelism is not supported (no tensor parallelism)")
        if ep_size < 1 or num_experts < 1 or num_experts % ep_size != 0:
            raise ValueError("dszero.moe: num_experts (%d) must be a positive multiple of ep_size (%d)"
                             % (num_experts, ep_size))
        self.use_residual = use_residual
        self.enable_expert_tensor_parallelism = False
        self.ep_size = ep_size
        self.expert_group_name = expert_group_name(ep_size)
        self.num_experts = num_experts
        self.num_local_experts = num_experts // ep_size
        index = next(_layer_index)
        if seed is None:
            seed = splitmix64(torch.initial_seed() & _MASK64) ^ index
        gate = TopKGate(hidden_size, num_experts, k, capacity_factor, eval_capacity_factor, min_capacity,
                        noisy_gate_policy, drop_tokens, use_rts, top2_2nd_expert_sampling, drop_policy)
        moe = MOELayer(gate, None, self.expert_group_name, ep_size, self.num_local_experts, seed)
        first = moe.first_expert(engine) if ep_size > 1 else 0
        moe.experts = Experts(expert, self.num_local_experts, self.expert_group_name, first)
        self.deepspeed_moe = moe
        if engine is not None:
            moe.set_engine(engine)
        if use_residual:
            self.mlp = expert
            self.coefficient = torch.nn.Linear(hidden_size, 2)

    @property
    def expert_ids(self):
        """The global ids of this rank's experts."""
        return [int(i) for i in self.deepspeed_moe.experts.deepspeed_experts.keys()]

    def set_engine(self, engine):
        """Runs the layer's collectives over `engine`'s ranks (the engine
        dszero.initialize returned, or a dszero.Engine). dszero.initialize
        calls it for every MoE layer of its model. Collective."""
        self.deepspeed_moe.set_engine(engine)

    def set_deepspeed_parallelism(self, use_data_before_expert_parallelism_=False):
        """DeepSpeed's hook; dszero's groups follow DeepSpeed's E + D order only."""
        if use_data_before_expert_parallelism_:
            raise ValueError("dszero.moe: use_data_before_expert_parallelism is not supported")

    def forward(self, hidden_states, used_token=None):
        output = self.deepspeed_moe(hidden_states, used_token)
        if self.use_residual:
            output_mlp = self.mlp(hidden_states)
            if isinstance(output_mlp, tuple):
                output_mlp = output_mlp[0]
            coef = torch.nn.functional.softmax(self.coefficient(hidden_states), dim=-1)
            output = output * coef[..., 0:1] + output_mlp * coef[..., 1:]
        return output, self.deepspeed_moe.l_aux, self.deepspeed_moe.exp_counts
