"""engine.py -- layer 3, framework-neutral: Engine over any DLPack tensor or
NumPy array.

This is the C API in Python's terms: parameters are registered as
(name, tensor) pairs whose memory dszero keeps using (it writes the updated
weights into it at stages 0-2), gradients are handed over one by one,
results come back as dataclasses, errors as DSZeroError. The PyTorch engine
(torch_engine.py) is built on it; NumPy-only programs use it directly and
never import torch.
"""
import ctypes
import json
import os
from dataclasses import dataclass, fields
from typing import Optional

from . import _capi, _dlpack
from .errors import check
from .handle import EngineHandle


def _from_struct(cls, raw, **extra):
    names = {f.name for f in fields(cls)}
    values = {n: getattr(raw, n) for n, _ in raw._fields_ if n in names}
    values.update(extra)
    return cls(**values)


@dataclass(frozen=True)
class StepInfo:
    """What dsz_step reports (dszero.h, dsz_step_info)."""
    boundary: bool
    stepped: bool
    skipped: bool
    global_steps: int
    micro_steps: int
    skipped_steps: int
    grad_norm: float  # unscaled; -1 when not finite
    lr: float         # group 0, for the next step
    loss_scale: float
    comm_wait_ms: float


@dataclass(frozen=True)
class EngineState:
    """A snapshot of the engine (dsz_engine_state)."""
    world_size: int
    rank: int
    zero_stage: int
    dtype: str  # "float32", "float16" or "bfloat16"
    train_batch_size: int
    micro_batch_size: int
    gradient_accumulation_steps: int
    n_params: int
    n_groups: int
    n_elements: int
    global_steps: int
    micro_steps: int
    skipped_steps: int
    global_samples: int
    loss_scale: float
    grad_norm: float


@dataclass(frozen=True)
class MemoryStats:
    """Bytes per category and communication volume of this rank (dsz_memory_stats)."""
    host_param_bytes: int
    master_bytes: int
    optimizer_bytes: int
    grad_bytes: int
    comm_buffer_bytes: int
    gathered_bytes: int
    total_bytes: int
    peak_total_bytes: int
    comm_elements: int
    collectives: int


@dataclass(frozen=True)
class ParamGroup:
    """Optimizer settings of a group of parameters; None takes the config's value."""
    name: Optional[str] = None
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    ep_size: Optional[int] = None     # expert parameters of an MoE layer (docs/moe.md)

    def to_c(self):
        g = _capi.dsz_param_group()
        g.name = self.name.encode() if self.name is not None else None
        if self.lr is not None:
            g.set_fields |= _capi.DSZ_GROUP_LR
            g.lr = float(self.lr)
        if self.weight_decay is not None:
            g.set_fields |= _capi.DSZ_GROUP_WEIGHT_DECAY
            g.weight_decay = float(self.weight_decay)
        if self.ep_size is not None:
            g.set_fields |= _capi.DSZ_GROUP_EXPERT
            g.ep_size = int(self.ep_size)
        return g


class Engine:
    """A dszero training engine.

    ``config`` is a dict, JSON text or the path of a DeepSpeed config file;
    keyword options are those of dsz_init_options: ``auto_values`` (dict for
    "auto" keys), ``world_size``, ``rank``, ``local_rank``, ``cpu_threads``,
    ``log`` (a callable(level, message)), ``log_level``, ``log_all_ranks``,
    ``mpi_comm``. Collective when world_size > 1. Use as a context manager or
    call close(); the engine is also freed when collected."""

    def __init__(self, config, **options):
        self._attach(EngineHandle(config, **options))

    @classmethod
    def lent(cls, handle):
        """An Engine over an engine another object owns (handle.LentEngineHandle:
        the pipeline's stage engine); close() leaves it to its owner."""
        self = cls.__new__(cls)
        self._attach(handle)
        return self

    def _attach(self, handle):
        self._handle = handle
        self._lib = _capi.lib()
        self._params = []       # TensorRefs: the host memory dszero writes into
        self._names = []
        self._grad_ready = self._lib.dsz_grad_ready
        self._dtype = self.state().dtype

    # ---- lifetime ----
    def close(self):
        self._handle.close()
        self._params = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def raw(self):
        """The dsz_engine pointer, for calls this package does not wrap. Do not free it."""
        return self._handle.raw

    # ---- parameters ----
    @property
    def dtype(self):
        """The model dtype of the config: "float32", "float16" or "bfloat16"."""
        return self._dtype

    @property
    def param_names(self):
        return list(self._names)

    def register_params(self, params, groups=None):
        """Registers the model's parameters, once.

        ``params``: (name, tensor) or (name, tensor, group index) items. Each
        tensor must be contiguous host memory in the model dtype (a NumPy
        uint16 array stands for bfloat16 bits); dszero reads the initial
        values now and writes the updated ones into it at every step
        (stages 0-2), so it must stay alive and in place: the engine keeps a
        reference. ``groups``: ParamGroup items (None: one group with the
        config's settings). Collective when world_size > 1."""
        items = [tuple(p) for p in params]
        refs, c_params = [], (_capi.dsz_param * max(len(items), 1))()
        for i, item in enumerate(items):
            if len(item) not in (2, 3):
                raise ValueError("dszero: parameter %d: expected (name, tensor[, group]), got %d items"
                                 % (i, len(item)))
            name, tensor = item[0], item[1]
            ref = _dlpack.as_dltensor(tensor, dtype=self._dtype, writable=True)
            refs.append(ref)
            c_params[i].name = str(name).encode()
            c_params[i].tensor = ref.ptr
            c_params[i].group = int(item[2]) if len(item) == 3 else 0
            c_params[i].flags = 0
        groups = list(groups or [])
        c_groups = (_capi.dsz_param_group * max(len(groups), 1))(*[g.to_c() for g in groups])
        check(self._lib.dsz_register_params(self.raw, c_params, len(items),
                                            c_groups if groups else None, len(groups)))
        self._params = refs
        self._names = [str(it[0]) for it in items]

    def param_index(self, name):
        out = ctypes.c_size_t()
        check(self._lib.dsz_param_index(self.raw, str(name).encode(), ctypes.byref(out)))
        return out.value

    # ---- training ----
    def loss_scale(self):
        """What to multiply the loss by before backward: loss scale / gradient_accumulation_steps."""
        out = ctypes.c_double()
        check(self._lib.dsz_loss_scale(self.raw, ctypes.byref(out)))
        return out.value

    def grad_ready(self, index, grad):
        """Hands over the gradient of parameter `index` (model dtype and shape,
        host memory). Consumed when this returns: the buffer may be reused."""
        ref = _dlpack.as_dltensor(grad, dtype=self._dtype, contiguous=True)
        check(self._grad_ready(self.raw, index, ref.ptr))

    def backward(self):
        """Ends the micro-batch's backward pass. Collective when world_size > 1."""
        check(self._lib.dsz_backward(self.raw))

    def step(self):
        """Ends the micro-batch; at the accumulation boundary updates the
        parameters (written into the registered tensors at stages 0-2). Collective."""
        info = _capi.dsz_step_info()
        check(self._lib.dsz_step_info_init(ctypes.byref(info), ctypes.sizeof(info)))
        check(self._lib.dsz_step(self.raw, ctypes.byref(info)))
        return StepInfo(boundary=bool(info.boundary), stepped=bool(info.stepped), skipped=bool(info.skipped),
                        global_steps=info.global_steps, micro_steps=info.micro_steps,
                        skipped_steps=info.skipped_steps, grad_norm=info.grad_norm, lr=info.lr,
                        loss_scale=info.loss_scale, comm_wait_ms=info.comm_wait_ms)

    def state(self):
        raw = _capi.dsz_engine_state()
        check(self._lib.dsz_engine_state_init(ctypes.byref(raw), ctypes.sizeof(raw)))
        check(self._lib.dsz_get_state(self._handle.raw, ctypes.byref(raw)))
        return _from_struct(EngineState, raw, dtype=_dlpack.dtype_from_state(raw.dtype_code, raw.dtype_bits))

    def memory_stats(self):
        raw = _capi.dsz_memory_stats()
        check(self._lib.dsz_memory_stats_init(ctypes.byref(raw), ctypes.sizeof(raw)))
        check(self._lib.dsz_memory_stats_get(self.raw, ctypes.byref(raw)))
        return _from_struct(MemoryStats, raw)

    def lr(self, group=0):
        out = ctypes.c_double()
        check(self._lib.dsz_get_lr(self.raw, group, ctypes.byref(out)))
        return out.value

    # ---- parameters on demand (ZeRO stage 3; counted no-ops at stages 0-2) ----
    _VIEWS = {"numpy": _dlpack.to_numpy, "torch": _dlpack.to_torch, "dltensor": lambda t: t}

    @staticmethod
    def index_array(indices):
        """A C size_t array of `indices`, reusable across gather/release calls."""
        indices = list(indices)
        return (ctypes.c_size_t * max(len(indices), 1))(*indices), len(indices)

    def gather(self, indices, view="numpy"):
        """Makes parameters `indices` available and returns views of them
        (view: "numpy", "torch" or "dltensor"), without copies. At stage 3
        the memory is dszero's: valid until as many release() calls as
        gathers of that index; step() and load() refresh it in place. At
        stages 0-2 the views are of the registered tensors. Collective at
        stage 3: every rank gathers the same indices in the same order."""
        arr, n = indices if isinstance(indices, tuple) else self.index_array(indices)
        out = (_capi.DLTensor * max(n, 1))()
        check(self._lib.dsz_gather(self.raw, arr, n, out))
        convert = self._VIEWS[view]
        return [convert(out[i]) for i in range(n)]

    def release(self, indices):
        """Undoes one gather() of each index. Not collective."""
        arr, n = indices if isinstance(indices, tuple) else self.index_array(indices)
        check(self._lib.dsz_release(self.raw, arr, n))

    def prefetch(self, indices):
        """Starts gathering in the background (stage 3). Collective like gather()."""
        arr, n = indices if isinstance(indices, tuple) else self.index_array(indices)
        check(self._lib.dsz_prefetch(self.raw, arr, n))

    def param_tensor(self, index, view="numpy"):
        """The current tensor of a parameter, as gather() gave it (stage 3:
        DSZeroError DSZ_ERR_STATE when it is not gathered)."""
        out = _capi.DLTensor()
        check(self._lib.dsz_param_tensor(self.raw, index, ctypes.byref(out)))
        return self._VIEWS[view](out)

    # ---- checkpoints ----
    def save(self, directory, tag=None, client_state=None):
        """Writes directory/<tag>/ (tag None: global_step<N>) and moves
        directory/latest to it; `client_state` is any JSON-serialisable value.
        Collective."""
        client = json.dumps(client_state).encode() if client_state is not None else None
        check(self._lib.dsz_save(self.raw, os.fsencode(directory),
                                 str(tag).encode() if tag is not None else None, client))

    def load(self, directory, tag=None, load_optimizer_states=True, load_lr_scheduler_states=True,
             load_module_only=False):
        """Loads directory/<tag> (None: the tag in directory/latest) and returns
        the client state saved with it. Nothing changes on error. Collective."""
        flags = 0
        if not load_optimizer_states:
            flags |= _capi.DSZ_LOAD_SKIP_OPTIMIZER_STATES
        if not load_lr_scheduler_states:
            flags |= _capi.DSZ_LOAD_SKIP_LR_SCHEDULER
        if load_module_only:
            flags |= _capi.DSZ_LOAD_MODULE_ONLY
        out = _capi.owned_char_p()
        check(self._lib.dsz_load(self.raw, os.fsencode(directory),
                                 str(tag).encode() if tag is not None else None, flags, ctypes.byref(out)))
        text = _capi.take_string(out.value)
        return json.loads(text) if text else None
