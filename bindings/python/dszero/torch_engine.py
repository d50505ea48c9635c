"""torch_engine.py -- layer 3 for PyTorch: DSZeroEngine, the object
dszero.initialize returns, with the methods DeepSpeed's engine has.

How a step flows:
  - the model is converted to the config's dtype (as DeepSpeed's engine does
    with module.half() / bfloat16()), and at stages 0-2 each parameter's own
    storage is registered with dszero through DLPack: no copy, and dszero's
    update lands in ``param.data``, so ``model.parameters()`` always hold
    the trained values;
  - ``engine.backward(loss)`` multiplies the loss by dsz_loss_scale (loss
    scale / gradient_accumulation_steps) and runs autograd; a hook on each
    parameter's AccumulateGrad node hands the gradient to dszero as soon as
    autograd has produced it (so stage-2 reductions overlap the rest of
    backward) and drops ``param.grad``;
  - ``engine.step()`` ends the micro-batch and, at the accumulation boundary,
    updates the weights, the LR schedule and the loss scale.
Stage 3 adds module hooks (zero3.py) that gather a module's parameters
before its forward and backward and release them after.
"""
import os
import warnings

import torch

from . import moe
from .engine import Engine, ParamGroup
from .handle import config_resolve

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_GROUP_KEYS = {"params", "name", "lr", "weight_decay", "moe"}


def split_param_groups(model_parameters):
    """[(params, ParamGroup)] from parameters or a list of group dicts (torch's
    format; a dict with ``moe`` true is an expert group named "ep_size_<N>")."""
    items = list(model_parameters)
    if not items:
        raise ValueError("dszero: model_parameters is empty")
    if not isinstance(items[0], dict):
        return [(items, None)]
    out = []
    for i, g in enumerate(items):
        if not isinstance(g, dict):
            raise TypeError("dszero: model_parameters mixes group dicts and tensors (item %d)" % i)
        unknown = set(g) - _GROUP_KEYS
        if unknown:
            raise ValueError("dszero: parameter group %d sets %s; a group may set only lr and "
                             "weight_decay (the rest comes from the config's optimizer)"
                             % (i, ", ".join(sorted(unknown))))
        params = g["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        ep_size = moe.ep_size_of(g.get("name")) if g.get("moe") else None
        out.append((params, ParamGroup(name=g.get("name"), lr=g.get("lr"),
                                       weight_decay=g.get("weight_decay"), ep_size=ep_size)))
    return out


def hook_accumulate_grads(params, core, done=None):
    """Hooks each parameter's AccumulateGrad node so that, as soon as autograd
    has produced the gradient of params[i], it goes to core.grad_ready(i, .)
    (consumed there), param.grad is dropped and done(i) runs (when given).
    Returns the nodes: keep them alive as long as the hooks must fire."""
    accs = []
    for index, p in enumerate(params):
        if not p.requires_grad:
            continue
        acc = p.expand_as(p).grad_fn.next_functions[0][0]
        acc.register_hook(_hand_over_hook(core, index, p, done))
        accs.append(acc)
    return accs


def _hand_over_hook(core, index, param, done):
    def hand_over(*_):
        grad = param.grad
        if grad is None:
            return
        param.grad = None
        core.grad_ready(index, grad)
        if done is not None:
            done(index)
    return hand_over


def _check_expert_group(p, name, group, index):
    """Expert parameters (allreduce = False) go in the expert group of their
    group_name, and only there."""
    ep_size = group.ep_size if group is not None else None
    if moe.is_moe_param(p):
        if ep_size is None:
            raise ValueError("dszero: expert parameter %s (group_name %r) is in parameter group %d, which is not "
                             "an expert group (\"moe\": True)" % (name, getattr(p, "group_name", None), index))
        if getattr(p, "group_name", None) != group.name:
            raise ValueError("dszero: expert parameter %s has group_name %r but is in expert group %d named %r"
                             % (name, getattr(p, "group_name", None), index, group.name))
    elif ep_size is not None:
        raise ValueError("dszero: %s is not an expert parameter (allreduce = False) but is in expert group %d (%r)"
                         % (name, index, group.name))


class DSZeroOptimizer:
    """What initialize returns as the optimizer: a view of dszero's optimizer.
    The update itself happens in engine.step()."""

    def __init__(self, engine, groups):
        self._engine = engine
        self._groups = groups

    @property
    def param_groups(self):
        out = []
        for g, (params, group) in enumerate(self._groups):
            d = {"params": params, "lr": self._engine._core.lr(g)}
            if group is not None and group.weight_decay is not None:
                d["weight_decay"] = group.weight_decay
            if group is not None and group.name is not None:
                d["name"] = group.name
            if group is not None and group.ep_size is not None:
                d["moe"] = True
            out.append(d)
        return out

    @property
    def loss_scale(self):
        return self._engine.get_loss_scale()

    cur_scale = loss_scale

    def zero_grad(self, set_to_none=True):
        """Nothing to do: gradients are handed to dszero and dropped as they arrive."""

    def step(self, *args, **kwargs):
        raise RuntimeError("dszero: call engine.step(); the optimizer is driven by the engine")


class DSZeroLRScheduler:
    """What initialize returns as the LR scheduler when the config has one.
    The schedule advances in engine.step()."""

    def __init__(self, engine):
        self._engine = engine

    def get_lr(self):
        return self._engine.get_lr()

    get_last_lr = get_lr

    @property
    def last_batch_iteration(self):
        return self._engine.global_steps - 1

    def step(self, *args, **kwargs):
        raise RuntimeError("dszero: the LR schedule advances in engine.step(); do not step it yourself")


class DSZeroEngine(torch.nn.Module):
    """The model wrapped for training with dszero (DeepSpeed's DeepSpeedEngine)."""

    def __init__(self, model, model_parameters, config, options, training_data=None, collate_fn=None):
        super().__init__()
        self.module = model
        self._core = Engine(config, **options)
        state = self._core.state()
        self._config = config_resolve(config, auto_values=options.get("auto_values"),
                                      world_size=state.world_size, rank=state.rank)
        self._stage = state.zero_stage
        self._dtype = TORCH_DTYPES[state.dtype]
        if self._dtype != torch.float32:
            model.to(self._dtype)
        if model_parameters is None:
            model_parameters = [p for p in model.parameters() if p.requires_grad]
        self._groups = split_param_groups(moe.configure_moe_param_groups(model_parameters))
        for m in model.modules():  # MoE layers communicate over this engine's ranks
            if isinstance(m, moe.MoE):
                m.set_engine(self._core)
        self._params = []           # registration order
        self._grad_accs = []        # keeps the AccumulateGrad nodes (and their hooks) alive
        self._zero3 = None
        self._register(model)
        self.optimizer = DSZeroOptimizer(self, self._groups)
        self.lr_scheduler = DSZeroLRScheduler(self) if "scheduler" in self._config else None
        self.training_dataloader = self._dataloader(training_data, collate_fn) if training_data is not None \
            else None
        self.last_step_info = None

    # ---- registration and gradient hooks ----
    def _register(self, model):
        names = {id(p): n for n, p in model.named_parameters()}
        seen = set()
        entries, groups = [], []
        for g, (params, group) in enumerate(self._groups):
            groups.append(group if group is not None else ParamGroup())
            for p in params:
                if not isinstance(p, torch.Tensor):
                    raise TypeError("dszero: model_parameters holds a %s, not a tensor" % type(p).__name__)
                if id(p) in seen:
                    raise ValueError("dszero: parameter %s appears more than once in model_parameters"
                                     % names.get(id(p), "#%d" % len(self._params)))
                _check_expert_group(p, names.get(id(p), "#%d" % len(self._params)), group, g)
                seen.add(id(p))
                if p.dtype != self._dtype:
                    raise TypeError("dszero: parameter %s is %s but the config's model dtype is %s "
                                    "(convert it with the module)" % (names.get(id(p), "?"), p.dtype, self._dtype))
                if p.device.type != "cpu":
                    raise ValueError("dszero: parameter %s is on %s; this build trains host tensors"
                                     % (names.get(id(p), "?"), p.device))
                if not p.data.is_contiguous():
                    p.data = p.data.contiguous()
                entries.append((names.get(id(p), "param_%d" % len(self._params)), p.data, g))
                self._params.append(p)
        self._param_names = [e[0] for e in entries]
        has_groups = any(group is not None for _, group in self._groups)
        self._core.register_params(entries, groups if has_groups else None)
        if self._stage == 3:
            from .zero3 import Zero3Hooks
            self._zero3 = Zero3Hooks(self, self.module)
        self._install_grad_hooks()

    def _install_grad_hooks(self):
        with self.gathered_parameters():  # AccumulateGrad nodes take the full shape
            done = self._zero3.grad_done if self._zero3 is not None else None
            self._grad_accs = hook_accumulate_grads(self._params, self._core, done)

    def gathered_parameters(self, params=None):
        """A context in which `params` (default: all registered) hold their
        full values: at stage 3 they are gathered (collectively: every rank
        must enter it), elsewhere they always do."""
        if self._zero3 is None:
            return _NullContext()
        index = {id(p): i for i, p in enumerate(self._params)}
        params = self._params if params is None else list(params)
        return self._zero3.gathered([index[id(p)] for p in params])

    def _dataloader(self, training_data, collate_fn):
        from torch.utils.data import DataLoader
        from torch.utils.data.distributed import DistributedSampler
        state = self._core.state()
        sampler = DistributedSampler(training_data, num_replicas=state.world_size, rank=state.rank)
        return DataLoader(training_data, batch_size=state.micro_batch_size, sampler=sampler,
                          collate_fn=collate_fn)

    # ---- training ----
    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def backward(self, loss, retain_graph=False):
        """Scales the loss (loss scale / gradient_accumulation_steps), runs
        autograd (each gradient goes to dszero as it is produced) and ends the
        micro-batch's backward. Collective when world_size > 1."""
        mult = self._core.loss_scale()
        scaled = loss.float() * mult
        scaled.backward(retain_graph=retain_graph)
        if self._zero3 is not None:
            self._zero3.after_backward()
        self._core.backward()
        return loss

    def step(self):
        """Ends the micro-batch; at the accumulation boundary the optimizer
        updates the parameters (in place), the LR schedule and the loss scale.
        Collective when world_size > 1."""
        self.last_step_info = self._core.step()

    def zero_grad(self):
        """Nothing to do: gradients are dropped as they are handed over."""

    def is_gradient_accumulation_boundary(self):
        s = self._core.state()
        return (s.micro_steps + 1) % s.gradient_accumulation_steps == 0

    # ---- what DeepSpeed's engine reports ----
    @property
    def global_steps(self):
        return self._core.state().global_steps

    @property
    def global_samples(self):
        return self._core.state().global_samples

    @property
    def micro_steps(self):
        return self._core.state().micro_steps

    @property
    def skipped_steps(self):
        return self._core.state().skipped_steps

    @property
    def global_rank(self):
        return self._core.state().rank

    @property
    def world_size(self):
        return self._core.state().world_size

    @property
    def zero_stage(self):
        return self._stage

    def zero_optimization_stage(self):
        return self._stage

    def get_lr(self):
        return [self._core.lr(g) for g in range(len(self._groups))]

    def get_loss_scale(self):
        return self._core.state().loss_scale

    def get_global_grad_norm(self):
        return self._core.state().grad_norm

    def train_batch_size(self):
        return self._core.state().train_batch_size

    def train_micro_batch_size_per_gpu(self):
        return self._core.state().micro_batch_size

    def gradient_accumulation_steps(self):
        return self._core.state().gradient_accumulation_steps

    def steps_per_print(self):
        return self._config.get("steps_per_print")

    @property
    def config(self):
        """The resolved config (every default filled in), as a dict."""
        return self._config

    @property
    def dszero(self):
        """The framework-neutral dszero.Engine underneath."""
        return self._core

    def memory_stats(self):
        return self._core.memory_stats()

    def param_names(self):
        return list(self._param_names)

    # ---- checkpoints ----
    def save_checkpoint(self, save_dir, tag=None, client_state=None, save_latest=True):
        """Writes save_dir/<tag>/ (default global_step<N>) and moves
        save_dir/latest to it. `client_state` must be JSON-serialisable.
        Collective when world_size > 1."""
        if not save_latest:
            raise ValueError("dszero: save_latest=False is not supported (latest always moves)")
        self._core.save(save_dir, tag, client_state if client_state is not None else {})
        return True

    def load_checkpoint(self, load_dir, tag=None, load_module_strict=True, load_optimizer_states=True,
                        load_lr_scheduler_states=True, load_module_only=False):
        """Loads load_dir/<tag> (default: the tag in load_dir/latest) into the
        model's parameters and dszero's state. Returns (path, client_state),
        or (None, None) when there is no latest file to follow, as DeepSpeed
        does. Nothing changes on error. Collective when world_size > 1."""
        if tag is None:
            latest = os.path.join(load_dir, "latest")
            if not os.path.isfile(latest):
                warnings.warn("dszero: unable to find latest file at %s; if trying to load latest "
                              "checkpoint please pass an explicit tag" % latest)
                return None, None
            with open(latest) as f:
                tag = f.read().strip()
        client = self._core.load(load_dir, tag, load_optimizer_states=load_optimizer_states,
                                 load_lr_scheduler_states=load_lr_scheduler_states,
                                 load_module_only=load_module_only)
        return os.path.join(load_dir, str(tag)), client

    def close(self):
        """Frees dszero's engine and removes the hooks (the model keeps its values)."""
        if self._zero3 is not None:
            self._zero3.close()
        self._grad_accs = []
        self._core.close()

    def __repr__(self):
        return "DSZeroEngine(stage=%d, dtype=%s, params=%d)\n%r" % (
            self._stage, self._dtype, len(self._params), self.module)


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

