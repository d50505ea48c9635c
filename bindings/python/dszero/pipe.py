"""pipe.py -- layer 3 for pipeline parallelism with PyTorch: DeepSpeed's
``PipelineModule`` / ``LayerSpec`` and the engine ``dszero.initialize``
returns for them (``PipelineEngine.train_batch``), over the C executor
(dsz_pipe_*, docs/pipeline.md).

The executor runs DeepSpeed's TrainSchedule and calls back into Python for
each instruction that computes: load a micro-batch (first stage: inputs, last
stage: labels), forward (this stage's layers under autograd; the output goes
to the next stage as a DLTensor over the tensor's own memory) and backward
(autograd from the received output gradient, or from the scaled loss on the
last stage; parameter gradients go to the stage engine through the same
AccumulateGrad hooks the plain engine uses; the input's gradient goes back).
Nothing may unwind into C: a callback catches every exception, returns 1 and
keeps it; the executor then abandons the batch on every rank and
train_batch raises DSZeroError with the library's message (naming stage,
callback and micro-batch) plus, on the rank that failed, Python's.
"""
import ctypes
import traceback

import torch
import torch.utils.checkpoint

from . import _capi, _dlpack
from .engine import Engine
from .errors import DSZeroError, check
from .handle import PipeHandle, config_resolve
from .torch_engine import TORCH_DTYPES, hook_accumulate_grads

_FAILED = 1  # what a callback returns when it raised


class LayerSpec:
    """A layer to build later, only on the stage that owns it (DeepSpeed's
    LayerSpec): ``LayerSpec(nn.Linear, 8, 16)``."""

    def __init__(self, typename, *module_args, **module_kwargs):
        if not isinstance(typename, type) or not issubclass(typename, torch.nn.Module):
            raise TypeError("dszero: LayerSpec needs a torch.nn.Module subclass, not %r" % (typename,))
        self.typename = typename
        self.module_args = module_args
        self.module_kwargs = module_kwargs

    def build(self):
        return self.typename(*self.module_args, **self.module_kwargs)

    def __repr__(self):
        return "LayerSpec(%s)" % self.typename.__name__


def _type_name(layer):
    if isinstance(layer, LayerSpec):
        return layer.typename.__name__
    if isinstance(layer, torch.nn.Module):
        return type(layer).__name__
    return getattr(layer, "__name__", type(layer).__name__)


def _trainable_count(layer):
    if isinstance(layer, LayerSpec):
        layer = layer.build()
    if isinstance(layer, torch.nn.Module):
        return sum(p.numel() for p in layer.parameters() if p.requires_grad)
    return 0


def partition_layers(layers, num_stages, method):
    """Stage boundaries (num_stages + 1 ints) from dsz_pipe_partition:
    "uniform", "parameters" or "type:<regex>", as DeepSpeed's PipelineModule."""
    n = len(layers)
    method_l = method.lower()
    counts = types = None
    if method_l == "parameters":
        counts = (ctypes.c_int64 * max(n, 1))(*[_trainable_count(layer) for layer in layers])
    if method_l.startswith("type:"):
        names = [_type_name(layer).encode() for layer in layers]
        types = (ctypes.c_char_p * max(n, 1))(*names)
    parts = (ctypes.c_int64 * (num_stages + 1))()
    check(_capi.lib().dsz_pipe_partition(method.encode(), n, counts, types, num_stages, parts))
    return list(parts)


class PipelineModule(torch.nn.Module):
    """A model given as a sequence of layers, split into `num_stages` stages
    (DeepSpeed's PipelineModule). Layers are torch modules, LayerSpecs (built
    only on the stage that owns them) or plain callables without parameters.
    The split is ``partition_method``: "parameters" (default), "uniform" or
    "type:<regex>". ``loss_fn(outputs, labels)`` gives the last stage's loss
    (None: the last layer's output is the loss). ``activation_checkpoint_interval``
    k > 0 recomputes each group of k layers in backward
    (torch.utils.checkpoint); 0 keeps every activation.

    Nothing is partitioned until ``dszero.initialize(model=...)`` knows this
    rank's stage; then the module holds only that stage's layers."""

    def __init__(self, layers, num_stages=None, partition_method="parameters", loss_fn=None,
                 activation_checkpoint_interval=0):
        super().__init__()
        self._layer_specs = list(layers)
        if not self._layer_specs:
            raise ValueError("dszero: PipelineModule needs at least one layer")
        if num_stages is not None and (not isinstance(num_stages, int) or num_stages < 1):
            raise ValueError("dszero: num_stages must be a positive int or None (the config's "
                             "pipeline.stages), not %r" % (num_stages,))
        if not isinstance(activation_checkpoint_interval, int) or activation_checkpoint_interval < 0:
            raise ValueError("dszero: activation_checkpoint_interval must be an int >= 0, not %r"
                             % (activation_checkpoint_interval,))
        self.num_stages = num_stages
        self.partition_method = partition_method
        self.loss_fn = loss_fn
        self.activation_checkpoint_interval = activation_checkpoint_interval
        self.stage_id = None
        self.parts = None
        self.forward_funcs = []    # this stage's layers, in order
        self.stage_layers = torch.nn.ModuleDict()  # the modules among them, keyed by global index

    def _build(self, stage_id, num_stages):
        """Partitions the layers and builds this stage's (called by the engine)."""
        self.parts = partition_layers(self._layer_specs, num_stages, self.partition_method)
        self.num_stages = num_stages
        self.stage_id = stage_id
        for index in range(self.parts[stage_id], self.parts[stage_id + 1]):
            layer = self._layer_specs[index]
            if isinstance(layer, LayerSpec):
                layer = layer.build()
            if isinstance(layer, torch.nn.Module):
                self.stage_layers[str(index)] = layer
            elif not callable(layer):
                raise TypeError("dszero: layer %d is a %s, neither a module, a LayerSpec nor a callable"
                                % (index, type(layer).__name__))
            self.forward_funcs.append(layer)
        self._layer_specs = None  # other stages' layers are not ours to keep

    def _run(self, first, last, x):
        for layer in self.forward_funcs[first:last]:
            x = layer(x)
        return x

    def forward(self, x):
        k = self.activation_checkpoint_interval
        n = len(self.forward_funcs)
        if k == 0 or not torch.is_grad_enabled():
            return self._run(0, n, x)
        for first in range(0, n, k):
            x = torch.utils.checkpoint.checkpoint(self._run, first, min(first + k, n), x, use_reentrant=False)
        return x


def _describe(tensor, out):
    """Fills the DLTensor `out` with `tensor`'s memory (host, compact); returns
    what must stay alive while C reads it."""
    ref = _dlpack.as_dltensor(tensor, contiguous=True)
    src = ref.ptr.contents
    out.data = src.data
    out.device = src.device
    out.ndim = src.ndim
    out.dtype = src.dtype
    out.shape = src.shape
    out.strides = None
    out.byte_offset = src.byte_offset
    return ref


class PipelineEngine:
    """What ``dszero.initialize(model=PipelineModule(...))`` returns
    (DeepSpeed's PipelineEngine): ``train_batch(data_iter)`` trains one batch
    of gradient_accumulation_steps micro-batches. Collective over the world."""

    def __init__(self, module, config, options):
        self.module = module
        self._slots = {}       # buffer id -> what a micro-batch keeps from load to backward
        self._sent = None      # what C reads after a callback returns (output / input gradient)
        self._error = None     # (callback, micro-batch, exception) raised inside a callback
        self._data_iter = None
        pipe = _capi.dsz_pipe_options()
        check(_capi.lib().dsz_pipe_options_init(ctypes.byref(pipe), ctypes.sizeof(pipe)))
        pipe.stages = module.num_stages or 0
        pipe.load_micro_batch = _capi.dsz_pipe_load_fn(self._load_cb)
        pipe.forward = _capi.dsz_pipe_forward_fn(self._forward_cb)
        pipe.backward = _capi.dsz_pipe_backward_fn(self._backward_cb)
        self._handle = PipeHandle(config, pipe, **options)
        try:
            info = self._handle.info()
            self.stage_id, self.num_stages = info.stage_id, info.stages
            self.micro_batches = info.micro_batches
            self.data_parallel_size, self.data_parallel_rank = info.data_parallel_size, info.data_parallel_rank
            self.global_rank, self.world_size = info.rank, info.world_size
            self._stage = Engine.lent(self._handle.stage_engine())
            # The batch size counts data-parallel replicas, not stages.
            self._config = config_resolve(config, auto_values=options.get("auto_values"),
                                          world_size=info.data_parallel_size, rank=info.data_parallel_rank)
            module._build(self.stage_id, self.num_stages)
            dtype = TORCH_DTYPES[self._stage.dtype]
            if dtype != torch.float32:
                module.to(dtype)
            self._dtype = dtype
            named = [(name, p) for name, p in module.stage_layers.named_parameters() if p.requires_grad]
            for _, p in named:
                if not p.data.is_contiguous():
                    p.data = p.data.contiguous()
            self._params = [p for _, p in named]
            self._stage.register_params([(name, p.data) for name, p in named])
            self._grad_accs = hook_accumulate_grads(self._params, self._stage)
        except BaseException:
            self._handle.close()
            raise
        self.last_batch_info = None

    # ---- DeepSpeed's API ----
    def is_first_stage(self):
        return self.stage_id == 0

    def is_last_stage(self):
        return self.stage_id == self.num_stages - 1

    def set_dataiterator(self, iterator):
        self._data_iter = iterator

    def train_batch(self, data_iter=None):
        """Trains one batch: gradient_accumulation_steps micro-batches, each
        ``next(data_iter)`` = (inputs, labels) on the first and last stages
        (the others read nothing). Returns the loss averaged over the
        micro-batches and data-parallel replicas, on every rank. A failure on
        any rank raises DSZeroError on every rank, with nothing updated."""
        if data_iter is not None:
            self._data_iter = data_iter
        self._error = None
        loss = ctypes.c_double()
        info = _capi.dsz_pipe_batch_info()
        lib = _capi.lib()
        check(lib.dsz_pipe_batch_info_init(ctypes.byref(info), ctypes.sizeof(info)))
        status = lib.dsz_pipe_train_batch(self._handle.raw, ctypes.byref(loss), ctypes.byref(info))
        message = lib.dsz_last_error().decode(errors="replace") if status != _capi.DSZ_OK else None
        self._slots.clear()
        self._sent = None
        if status != _capi.DSZ_OK:
            for p in self._params:
                p.grad = None
            error, self._error = self._error, None
            if error is not None:
                what, micro_batch, exc = error
                message += "; on this rank the %s callback raised for micro-batch %d: %s" % (
                    what, micro_batch, "".join(traceback.format_exception_only(type(exc), exc)).strip())
                raise DSZeroError(status, message) from exc
            raise DSZeroError(status, message)
        self.last_batch_info = {name: getattr(info, name) for name, _ in info._fields_
                                if name not in ("size", "reserved0")}
        return loss.value

    @property
    def global_steps(self):
        return self._stage.state().global_steps

    def get_lr(self):
        return [self._stage.lr(0)]

    def get_global_grad_norm(self):
        return self._stage.state().grad_norm

    def gradient_accumulation_steps(self):
        return self.micro_batches

    @property
    def config(self):
        return self._config

    @property
    def dszero(self):
        """This stage's dszero.Engine (lent by the pipeline: state, lr, save/load per stage)."""
        return self._stage

    def stage_parameters(self):
        """{name: parameter} of this stage's layers; names are "<layer index>.<param>"."""
        return dict(self.module.stage_layers.named_parameters())

    def close(self):
        self._grad_accs = []
        self._handle.close()

    # ---- callbacks (C calls these; nothing may raise out of them) ----
    def _guard(self, what, micro_batch, fn, *args):
        try:
            fn(*args)
            return 0
        except BaseException as exc:  # noqa: BLE001 -- nothing may unwind into C
            if self._error is None:
                self._error = (what, int(micro_batch), exc)
            return _FAILED

    def _load_cb(self, _user, buffer_id, micro_batch):
        return self._guard("load_micro_batch", micro_batch, self._load, buffer_id)

    def _forward_cb(self, _user, buffer_id, micro_batch, input_p, output_p, loss_p):
        return self._guard("forward", micro_batch, self._forward, buffer_id, input_p, output_p, loss_p)

    def _backward_cb(self, _user, buffer_id, micro_batch, output_grad_p, input_grad_p):
        return self._guard("backward", micro_batch, self._backward, buffer_id, output_grad_p, input_grad_p)

    def _load(self, buffer_id):
        if self._data_iter is None:
            raise ValueError("train_batch needs data_iter on the first and last stages")
        batch = next(self._data_iter)
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError("data_iter must yield (inputs, labels) pairs")
        inputs, labels = batch
        if self.is_first_stage() and not isinstance(inputs, torch.Tensor):
            raise TypeError("the inputs must be one tensor (tuples cannot cross a stage boundary yet), "
                            "not %s" % type(inputs).__name__)
        self._slots[buffer_id] = {"inputs": inputs, "labels": labels}

    def _forward(self, buffer_id, input_p, output_p, loss_p):
        slot = self._slots.setdefault(buffer_id, {})
        if input_p:
            x = _dlpack.to_torch(input_p.contents).detach().requires_grad_(True)  # dszero's memory
        else:
            x = slot.get("inputs")
            if x is None:
                raise RuntimeError("no micro-batch was loaded into buffer %d" % buffer_id)
        slot["input"] = x
        out = self.module(x)
        if loss_p:
            loss = self.module.loss_fn(out, slot["labels"]) if self.module.loss_fn is not None else out
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise TypeError("the loss must be a one-element tensor, not %r"
                                % (getattr(loss, "shape", type(loss).__name__),))
            slot["loss"] = loss
            loss_p[0] = float(loss.detach())
            return
        if not isinstance(out, torch.Tensor):
            raise TypeError("stage %d must output one tensor (tuples cannot cross a stage boundary "
                            "yet), not %s" % (self.stage_id, type(out).__name__))
        slot["output"] = out
        self._sent = _describe(out.detach(), output_p.contents)

    def _backward(self, buffer_id, output_grad_p, input_grad_p):
        slot = self._slots.pop(buffer_id)
        if output_grad_p:
            grad = _dlpack.to_torch(output_grad_p.contents)
            torch.autograd.backward(slot["output"], grad_tensors=grad)
        else:
            (slot["loss"].float() * self._stage.loss_scale()).backward()
        if input_grad_p:
            grad = slot["input"].grad
            if grad is None:
                raise RuntimeError("stage %d's output does not depend on its input: no input gradient"
                                   % self.stage_id)
            self._sent = _describe(grad, input_grad_p.contents)
