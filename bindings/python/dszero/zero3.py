"""zero3.py -- ZeRO stage 3 for PyTorch modules: parameters exist only
around their use.

After registration every parameter's own storage is dropped
(``param.data`` becomes an empty tensor); dszero keeps each rank's
partition. Hooks on every module that owns parameters directly:
  - forward pre-hook: dsz_gather the module's parameters and point
    ``param.data`` at dszero's buffers (torch.frombuffer over the gathered
    DLTensor: no copy);
  - forward hook: dsz_release them (``param.data`` back to empty once no
    gather holds it) and pass the outputs through _PreBackward, whose
    backward gathers them again before the module's backward runs;
  - the parameter's AccumulateGrad hook (torch_engine.py) hands the gradient
    over, then releases the gathers made for backward; whatever a backward
    gathered and no gradient released (frozen or unused parameters) is
    released when backward ends.

Autograd keeps tensors for backward that may be views of a parameter (F.linear
saves ``weight.t()``). Such a view would point into a buffer dszero frees
after the forward, so while the model's forward runs, saved-tensor hooks
store "parameter i, this size/stride/offset" instead, and rebuild the view
from the re-gathered buffer when backward needs it.

Gathers are collective across ranks: every rank must run the same modules in
the same order (forward and backward), as with DeepSpeed. Parameters used
outside the forward of the module that owns them are not gathered.
"""
import contextlib

import torch
from torch.autograd.graph import saved_tensors_hooks


class _PreBackward(torch.autograd.Function):
    """Identity whose backward first calls `gather` (before the module's own backward)."""

    @staticmethod
    def forward(ctx, gather, *tensors):
        ctx.gather = gather
        return tuple(t.detach() for t in tensors)

    @staticmethod
    def backward(ctx, *grads):
        ctx.gather()
        return (None,) + grads


def _collect(obj, out):
    if isinstance(obj, torch.Tensor):
        if obj.requires_grad:
            out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            _collect(x, out)
    elif isinstance(obj, dict):
        for x in obj.values():
            _collect(x, out)


def _replace(obj, it):
    if isinstance(obj, torch.Tensor):
        return next(it) if obj.requires_grad else obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*[_replace(x, it) for x in obj])
    if isinstance(obj, (tuple, list)):
        return type(obj)(_replace(x, it) for x in obj)
    if isinstance(obj, dict):
        return type(obj)((k, _replace(v, it)) for k, v in obj.items())
    return obj


class _SavedParam:
    """What a saved view of a parameter becomes while it waits for backward."""
    __slots__ = ("index", "size", "stride", "offset")

    def __init__(self, index, t):
        self.index, self.size, self.stride, self.offset = index, t.size(), t.stride(), t.storage_offset()


class Zero3Hooks:
    def __init__(self, engine, model):
        self._core = engine._core
        self._params = engine._params
        self._names = engine._param_names
        n = len(self._params)
        self._count = [0] * n       # gathers held, as dszero counts them
        self._pending = [0] * n     # gathers made for backward, released by the gradient hook
        self._storage = {}          # storage address of a gathered parameter -> index
        self._dtype = engine._dtype
        self._empty = torch.empty(0, dtype=self._dtype)
        self._handles = []
        self._model = model
        index = {id(p): i for i, p in enumerate(self._params)}
        for m in model.modules():
            own = [index[id(p)] for p in m.parameters(recurse=False) if id(p) in index]
            if own:
                self._hook(m, own)
        for p in self._params:
            p.data = self._empty
        forward = model.forward

        def forward_keeping_param_refs(*args, **kwargs):
            with saved_tensors_hooks(self._pack, self._unpack):
                return forward(*args, **kwargs)
        model.forward = forward_keeping_param_refs

    # ---- gathering ----
    def _gather(self, arr):
        idx = arr[2]
        views = self._core.gather(arr[:2], view="torch")
        for i, v in zip(idx, views):
            self._params[i].data = v
            self._count[i] += 1
            if v.numel():
                self._storage[v.storage().data_ptr()] = i

    def _release(self, arr):
        self._core.release(arr[:2])
        for i in arr[2]:
            self._count[i] -= 1
            if self._count[i] == 0:
                p = self._params[i]
                if p.data.numel():
                    self._storage.pop(p.data.storage().data_ptr(), None)
                p.data = self._empty

    def _array(self, indices):
        arr, n = self._core.index_array(indices)
        return arr, n, list(indices)

    @contextlib.contextmanager
    def gathered(self, indices):
        """The parameters `indices` gathered for the duration (collective)."""
        arr = self._array(indices)
        self._gather(arr)
        try:
            yield
        finally:
            self._release(arr)

    # ---- module hooks ----
    def _hook(self, module, own):
        arr = self._array(own)

        def gather_for_backward():
            self._gather(arr)
            for i in own:
                self._pending[i] += 1

        def pre_forward(_module, _inputs):
            self._gather(arr)

        def post_forward(_module, _inputs, output):
            self._release(arr)
            if not torch.is_grad_enabled():
                return output
            tensors = []
            _collect(output, tensors)
            if not tensors:
                return output
            wrapped = _PreBackward.apply(gather_for_backward, *tensors)
            return _replace(output, iter(wrapped))

        self._handles.append(module.register_forward_pre_hook(pre_forward))
        self._handles.append(module.register_forward_hook(post_forward))

    def grad_done(self, index):
        """Called after parameter `index`'s gradient was handed over."""
        n = self._pending[index]
        if n:
            self._pending[index] = 0
            self._release(self._array([index] * n))

    def after_backward(self):
        left = [i for i, n in enumerate(self._pending) for _ in range(n)]
        if left:
            self._pending = [0] * len(self._pending)
            self._release(self._array(left))

    # ---- saved tensors that are views of parameters ----
    def _pack(self, t):
        if self._storage and t.dtype == self._dtype and t.layout == torch.strided and t.numel():
            i = self._storage.get(t.storage().data_ptr())
            if i is not None:
                return _SavedParam(i, t)
        return t

    def _unpack(self, saved):
        if type(saved) is not _SavedParam:
            return saved
        if self._count[saved.index] == 0:
            raise RuntimeError("dszero: parameter %s is needed by backward but not gathered (was it used outside "
                               "the forward of the module that owns it?)" % self._names[saved.index])
        return self._params[saved.index].data.as_strided(saved.size, saved.stride, saved.offset)

    def close(self):
        for h in self._handles:
            h.remove()
        self._handles = []
        self._model.__dict__.pop("forward", None)
