"""handle.py -- layer 2: owning handles.

EngineHandle owns one ``dsz_engine *`` and frees it exactly once (``close()``,
``with``, or garbage collection). It also owns what C borrows for the
engine's lifetime: the log trampoline (a ctypes callback that must not be
collected while C may call it) and the parameter tensors (kept by engine.py).
init_options() fills a ``dsz_init_options`` from keyword arguments; the log
trampoline catches every exception, since nothing may unwind into C.

MoEGroupHandle and RoutingHandle own a ``dsz_moe_group *`` and a
``dsz_moe_routing *``. A group built over an engine must be freed before the
engine: closing (or collecting) the engine closes the groups built on it
first.
"""
import ctypes
import json
import os
import sys
import weakref

from . import _capi
from .errors import check

_LEVELS = {"debug": _capi.DSZ_LOG_DEBUG, "info": _capi.DSZ_LOG_INFO,
           "warning": _capi.DSZ_LOG_WARNING, "error": _capi.DSZ_LOG_ERROR}


def _level(value):
    if isinstance(value, str):
        try:
            return _LEVELS[value.lower()]
        except KeyError:
            raise ValueError("dszero: log_level %r is not one of %s" % (value, sorted(_LEVELS))) from None
    return int(value)


def make_log_trampoline(log):
    """A dsz_log_fn calling log(level, message); exceptions are reported, not raised."""
    def trampoline(level, message, _user):
        try:
            log(int(level), message.decode(errors="replace"))
        except BaseException as e:  # noqa: BLE001 -- nothing may unwind into C
            try:
                sys.stderr.write("dszero: the log callback raised %r\n" % (e,))
            except BaseException:  # noqa: BLE001
                pass
    return _capi.dsz_log_fn(trampoline)


def _comm_address(comm):
    """A pointer to an MPI_Comm: an int address, or an mpi4py communicator."""
    if isinstance(comm, int):
        return comm
    try:
        from mpi4py import MPI
    except ImportError:
        raise TypeError("dszero: mpi_comm must be the address of an MPI_Comm (int) or an mpi4py "
                        "communicator") from None
    return MPI._addressof(comm)


def init_options(auto_values=None, world_size=0, rank=-1, local_rank=-1, cpu_threads=0, log=None,
                 log_level=None, log_all_ranks=False, mpi_comm=None):
    """(dsz_init_options, things to keep alive while C may use them)."""
    opts = _capi.dsz_init_options()
    check(_capi.lib().dsz_init_options_init(ctypes.byref(opts), ctypes.sizeof(opts)))
    keep = []
    opts.world_size = world_size
    opts.rank = rank
    opts.local_rank = local_rank
    opts.cpu_threads = cpu_threads
    if auto_values is not None:
        text = auto_values if isinstance(auto_values, str) else json.dumps(auto_values)
        opts.auto_values = text.encode()
        keep.append(opts.auto_values)
    if log is not None:
        tramp = make_log_trampoline(log)
        opts.log_fn = tramp
        keep.append(tramp)
    if log_level is not None:
        opts.log_level = _level(log_level)
    opts.log_all_ranks = 1 if log_all_ranks else 0
    if mpi_comm is not None:
        opts.mpi_comm = _comm_address(mpi_comm)
    return opts, keep


def config_text(config):
    """What dsz_init takes: JSON text for a dict, the path for a path."""
    if isinstance(config, dict):
        return json.dumps(config)
    if hasattr(config, "__fspath__"):
        return str(config.__fspath__())
    if isinstance(config, str):
        return config
    raise TypeError("dszero: config must be a dict, JSON text or a path, not %s" % type(config).__name__)


def config_resolve(config, **options):
    """The fully resolved config (every default and "auto" filled in) as a dict.
    Validates without creating an engine; raises DSZeroError naming the key."""
    opts, _keep = init_options(**options)
    out = _capi.owned_char_p()
    check(_capi.lib().dsz_config_resolve(config_text(config).encode(), ctypes.byref(opts),
                                         ctypes.byref(out)))
    return json.loads(_capi.take_string(out.value))


_CONSOLIDATE_DTYPES = {"fp32": (_capi.kDLFloat, 32), "fp16": (_capi.kDLFloat, 16), "bf16": (_capi.kDLBfloat, 16)}


def consolidate(directory, out_path, tag=None, dtype="fp32"):
    """Writes the full weights of the checkpoint directory/<tag> (tag None: the
    one directory/latest names) as one safetensors file at out_path, in
    "fp32", "fp16" or "bf16" (from the fp32 masters); DeepSpeed's
    zero_to_fp32. Streams (memory stays at a few tens of MiB); out_path
    appears complete or not at all. Needs no engine."""
    if dtype not in _CONSOLIDATE_DTYPES:
        raise ValueError("dszero.consolidate: dtype must be one of %s, not %r" % (sorted(_CONSOLIDATE_DTYPES), dtype))
    code, bits = _CONSOLIDATE_DTYPES[dtype]
    check(_capi.lib().dsz_consolidate(os.fsencode(directory), str(tag).encode() if tag is not None else None,
                                      os.fsencode(out_path), _capi.DLDataType(code, bits, 1)))


class _Dependents:
    """Objects that must be closed before this handle frees its C object
    (held weakly: they may go first)."""

    def add_dependent(self, obj):
        deps = self.__dict__.setdefault("_dependents", [])
        deps[:] = [d for d in deps if d() is not None]
        deps.append(weakref.ref(obj))

    def _close_dependents(self):
        for ref in self.__dict__.pop("_dependents", []):
            obj = ref()
            if obj is not None:
                obj.close()


class EngineHandle(_Dependents):
    """Owns a dsz_engine. Collective to create when world_size > 1."""

    def __init__(self, config, **options):
        opts, self._keep = init_options(**options)
        raw = ctypes.POINTER(_capi.dsz_engine)()
        self._lib = _capi.lib()  # kept: __del__ may run while the module is torn down
        check(self._lib.dsz_init(ctypes.byref(raw), config_text(config).encode(), ctypes.byref(opts)))
        self._raw = raw

    @property
    def raw(self):
        if self._raw is None:
            raise ValueError("dszero: the engine has been closed")
        return self._raw

    @property
    def closed(self):
        return self._raw is None

    def close(self):
        """Frees the engine (once; later calls do nothing), after what depends on it."""
        self._close_dependents()
        raw, self._raw = getattr(self, "_raw", None), None
        if raw is not None:
            check(self._lib.dsz_engine_free(raw))
        self._keep = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- nothing to report to at collection time
            pass


class LentEngineHandle:
    """A dsz_engine lent by another handle (the pipeline's stage engine): usable
    while the owner is open, never freed here."""

    def __init__(self, raw, owner):
        self._raw = raw
        self._owner = owner

    @property
    def raw(self):
        if self._owner.closed:
            raise ValueError("dszero: the pipeline that lent this engine has been closed")
        return self._raw

    @property
    def closed(self):
        return self._owner.closed

    def add_dependent(self, obj):
        self._owner.add_dependent(obj)

    def close(self):
        """Nothing to free: the owner frees the engine."""


class PipeHandle(_Dependents):
    """Owns a dsz_pipe_engine and what C borrows for its lifetime: the host
    callbacks (ctypes trampolines) in `pipe_options` and the log trampoline.
    Collective over the world to create."""

    def __init__(self, config, pipe_options, **options):
        opts, self._keep = init_options(**options)
        self._keep.append(pipe_options)  # holds the CFUNCTYPE callbacks C calls
        raw = ctypes.POINTER(_capi.dsz_pipe_engine)()
        self._lib = _capi.lib()
        check(self._lib.dsz_pipe_init(ctypes.byref(raw), config_text(config).encode(), ctypes.byref(opts),
                                      ctypes.byref(pipe_options)))
        self._raw = raw

    @property
    def raw(self):
        if self._raw is None:
            raise ValueError("dszero: the pipeline engine has been closed")
        return self._raw

    @property
    def closed(self):
        return self._raw is None

    def stage_engine(self):
        """This rank's stage engine, lent for the pipeline's lifetime."""
        out = ctypes.POINTER(_capi.dsz_engine)()
        check(self._lib.dsz_pipe_stage_engine(self.raw, ctypes.byref(out)))
        return LentEngineHandle(out, self)

    def info(self):
        info = _capi.dsz_pipe_info()
        check(self._lib.dsz_pipe_info_init(ctypes.byref(info), ctypes.sizeof(info)))
        check(self._lib.dsz_pipe_get_info(self.raw, ctypes.byref(info)))
        return info

    def close(self):
        """Frees the executor and its stage engine (once), after what depends on them."""
        self._close_dependents()
        raw, self._raw = getattr(self, "_raw", None), None
        if raw is not None:
            check(self._lib.dsz_pipe_free(raw))
        self._keep = []

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- nothing to report to at collection time
            pass


class MoEGroupHandle:
    """Owns a dsz_moe_group: the expert-parallel layout of ep_size ranks per
    group over the ranks of `engine` (an EngineHandle or LentEngineHandle),
    or over the launched ranks when engine is None. Collective over those
    ranks to create. A group over an engine is closed when the engine is
    (first); using it afterwards raises ValueError."""

    def __init__(self, ep_size, engine=None):
        self._lib = _capi.lib()
        raw = ctypes.POINTER(_capi.dsz_moe_group)()
        check(self._lib.dsz_moe_group_new(ctypes.byref(raw), engine.raw if engine is not None else None,
                                          int(ep_size), None))
        self._raw = raw
        if engine is not None:
            engine.add_dependent(self)

    @property
    def raw(self):
        if self._raw is None:
            raise ValueError("dszero: the MoE group has been closed (was its engine closed?)")
        return self._raw

    @property
    def closed(self):
        return self._raw is None

    def info(self):
        """(ep_size, ep_rank, edp_size, edp_rank) of this rank."""
        v = [ctypes.c_int32() for _ in range(4)]
        check(self._lib.dsz_moe_group_info(self.raw, *[ctypes.byref(x) for x in v]))
        return tuple(x.value for x in v)

    def close(self):
        """Frees the group (once; later calls do nothing)."""
        raw, self._raw = getattr(self, "_raw", None), None
        if raw is not None:
            check(self._lib.dsz_moe_group_free(raw))

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- nothing to report to at collection time
            pass


class RoutingHandle:
    """Owns a dsz_moe_routing (one gate call's routes); freed when collected."""

    def __init__(self, raw):
        self._lib = _capi.lib()
        self._raw = raw
        info = _capi.dsz_moe_routing_info()
        check(self._lib.dsz_moe_routing_info_init(ctypes.byref(info), ctypes.sizeof(info)))
        check(self._lib.dsz_moe_routing_get_info(raw, ctypes.byref(info)))
        self.info = info

    @property
    def raw(self):
        return self._raw

    def close(self):
        raw, self._raw = getattr(self, "_raw", None), None
        if raw is not None:
            check(self._lib.dsz_moe_routing_free(raw))

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- nothing to report to at collection time
            pass
