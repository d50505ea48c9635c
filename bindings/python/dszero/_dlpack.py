"""_dlpack.py -- tensors in and out of dszero as DLTensors, without copies.

In: anything with ``__dlpack__`` (PyTorch tensors go through
``torch.utils.dlpack.to_dlpack``) is exported as a DLPack capsule and the
DLTensor inside it is handed to C; NumPy arrays (and anything else with the
array interface) are described by a DLTensor built here from
``__array_interface__``. Either way the DLTensor points at the object's own
memory; a TensorRef keeps the object (and the capsule) alive for as long as
dszero may use that memory.

Out: a DLTensor dszero filled in (stage-3 gathered parameters) becomes a
NumPy array or a torch tensor viewing dszero's memory (``np.frombuffer`` /
``torch.frombuffer`` over a ctypes buffer at the data address).

Nothing here imports torch: torch tensors are recognised by their type's
module, so NumPy-only programs never load it.
"""
import ctypes
from ctypes import POINTER, c_char, c_int64

from ._capi import DLTensor, kDLBfloat, kDLComplex, kDLCPU, kDLFloat, kDLInt, kDLUInt

_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]

# dtype names <-> DLPack (code, bits)
DTYPES = {"float32": (kDLFloat, 32), "float16": (kDLFloat, 16), "bfloat16": (kDLBfloat, 16)}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}

# NumPy type kinds -> DLPack codes (little-endian host).
_KINDS = {"f": kDLFloat, "i": kDLInt, "u": kDLUInt, "c": kDLComplex}


def is_torch_tensor(obj):
    t = type(obj)
    return t.__module__.startswith("torch") and hasattr(obj, "data_ptr")


class TensorRef:
    """A DLTensor describing `obj`'s memory, and what keeps that memory alive.

    ``ptr`` is a ctypes POINTER(DLTensor) to pass to the C API."""

    __slots__ = ("ptr", "obj", "_keep")

    def __init__(self, ptr, obj, keep):
        self.ptr = ptr
        self.obj = obj
        self._keep = keep

    @property
    def dtype(self):
        d = self.ptr.contents.dtype
        return DTYPE_NAMES.get((d.code, d.bits), "code %d bits %d" % (d.code, d.bits))

    @property
    def shape(self):
        t = self.ptr.contents
        return tuple(t.shape[i] for i in range(t.ndim))

    @property
    def data(self):
        return self.ptr.contents.data


def _from_capsule(obj, capsule):
    addr = _get_pointer(capsule, b"dltensor")
    # DLManagedTensor starts with its DLTensor.
    return TensorRef(ctypes.cast(addr, POINTER(DLTensor)), obj, capsule)


def _array_dtype(typestr, model_dtype):
    """DLPack (code, bits) of a NumPy typestr. Any number type is described
    faithfully (dszero itself refuses the wrong ones, naming the parameter);
    a uint16 array stands for bfloat16 bits when the model dtype is bfloat16."""
    if typestr[0] not in "<|" or typestr[1] not in _KINDS:
        raise TypeError("dszero: arrays of dtype %r cannot cross as DLPack" % typestr)
    bits = 8 * int(typestr[2:])
    if typestr == "<u2" and model_dtype == "bfloat16":
        return DTYPES["bfloat16"]
    return _KINDS[typestr[1]], bits


def _from_array_interface(obj, dtype, writable):
    ai = obj.__array_interface__
    typestr = ai["typestr"]
    code, bits = _array_dtype(typestr, dtype)
    shape = ai["shape"]
    itemsize = int(typestr[2:])
    strides = ai.get("strides")
    if strides is not None:
        expect = itemsize
        for dim, stride in zip(reversed(shape), reversed(strides)):
            if dim != 1 and stride != expect:
                raise ValueError("dszero: the array is not C-contiguous (strides %r)" % (strides,))
            expect *= dim
    data_addr, readonly = ai["data"]
    if writable and readonly:
        raise ValueError("dszero: the array is read-only; dszero writes the trained values into it")
    t = DLTensor()
    t.data = data_addr
    t.device.device_type = kDLCPU
    t.device.device_id = 0
    t.ndim = len(shape)
    t.dtype.code, t.dtype.bits, t.dtype.lanes = code, bits, 1
    shape_arr = (c_int64 * max(len(shape), 1))(*shape)
    t.shape = ctypes.cast(shape_arr, POINTER(c_int64))
    t.strides = None
    t.byte_offset = 0
    return TensorRef(ctypes.pointer(t), obj, shape_arr)


def as_dltensor(obj, dtype=None, contiguous=False, writable=False):
    """A TensorRef describing `obj`'s memory.

    `dtype` is the model dtype name; it lets a NumPy uint16 array stand for
    bfloat16 bits. With `contiguous`, a non-contiguous torch tensor or NumPy
    array is first copied into a contiguous one (gradients); without it the
    caller gets the object's own memory or an error (parameters, which dszero
    writes into: pass `writable` too)."""
    if is_torch_tensor(obj):
        import torch.utils.dlpack
        t = obj.detach()
        if contiguous:
            t = t.contiguous()
        elif not t.is_contiguous():
            raise ValueError("dszero: the tensor is not contiguous (strides %r); dszero needs "
                             "compact row-major memory" % (tuple(t.stride()),))
        return _from_capsule(t, torch.utils.dlpack.to_dlpack(t))
    if hasattr(obj, "__array_interface__"):
        if contiguous and not obj.flags["C_CONTIGUOUS"]:
            import numpy
            obj = numpy.ascontiguousarray(obj)
        return _from_array_interface(obj, dtype, writable)
    if hasattr(obj, "__dlpack__"):
        return _from_capsule(obj, obj.__dlpack__())
    raise TypeError("dszero: %s is neither a DLPack tensor nor an array (needs __dlpack__ or "
                    "__array_interface__)" % type(obj).__name__)


def _buffer(t):
    """A ctypes buffer over the memory a DLTensor describes, and its shape."""
    shape = tuple(t.shape[i] for i in range(t.ndim))
    numel = 1
    for d in shape:
        numel *= d
    nbytes = numel * (t.dtype.bits // 8)
    if nbytes == 0:
        return None, shape
    return (c_char * nbytes).from_address(t.data + t.byte_offset), shape


def to_numpy(t):
    """A NumPy array viewing a DLTensor's memory (bfloat16 as uint16 bits)."""
    import numpy as np
    name = DTYPE_NAMES.get((t.dtype.code, t.dtype.bits))
    np_dtype = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}[name]
    buf, shape = _buffer(t)
    if buf is None:
        return np.empty(shape, dtype=np_dtype)
    return np.frombuffer(buf, dtype=np_dtype).reshape(shape)


def to_torch(t):
    """A torch tensor viewing a DLTensor's memory."""
    import torch
    name = DTYPE_NAMES.get((t.dtype.code, t.dtype.bits))
    tdtype = getattr(torch, name)
    buf, shape = _buffer(t)
    if buf is None:
        return torch.empty(shape, dtype=tdtype)
    return torch.frombuffer(buf, dtype=tdtype).view(shape)


def dtype_from_state(code, bits):
    return DTYPE_NAMES[(code, bits)]

