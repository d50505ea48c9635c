"""dszero -- DeepSpeed's training runtime (libdszero, a C library) from Python.

Three layers, as in every binding of dszero:
  1. ``dszero._capi``: raw ctypes declarations of include/dszero.h;
  2. ``dszero.handle``: owning handles that free themselves;
  3. the idiomatic API: ``dszero.initialize`` (PyTorch, DeepSpeed's
     signature) and ``dszero.Engine`` (any DLPack tensor or NumPy array,
     no torch needed).

Importing dszero loads neither torch nor the library: the library is opened
on first use (see ``dszero._loader`` for where it is looked for) and torch
only by ``initialize``.
"""
from . import _capi
from ._capi import (DSZ_ERR_CALLBACK, DSZ_ERR_CHECKPOINT, DSZ_ERR_COMM, DSZ_ERR_CONFIG, DSZ_ERR_CUDA, DSZ_ERR_DTYPE,
                    DSZ_ERR_INTERNAL, DSZ_ERR_INVALID_ARGUMENT, DSZ_ERR_IO, DSZ_ERR_LOSS_SCALE,
                    DSZ_ERR_NOT_FOUND, DSZ_ERR_OUT_OF_MEMORY, DSZ_ERR_SHAPE, DSZ_ERR_STATE,
                    DSZ_ERR_TIMEOUT, DSZ_ERR_UNSUPPORTED, DSZ_OK)
from ._loader import LibraryNotFoundError, LibraryVersionError
from .engine import Engine, EngineState, MemoryStats, ParamGroup, StepInfo
from .errors import DSZeroError, status_string
from .handle import config_resolve, consolidate

__version__ = "%d.%d.%d" % (_capi.DSZ_VERSION_MAJOR, _capi.DSZ_VERSION_MINOR, _capi.DSZ_VERSION_PATCH)

_FEATURES = (("cuda", _capi.DSZ_FEATURE_CUDA), ("nccl", _capi.DSZ_FEATURE_NCCL), ("mpi", _capi.DSZ_FEATURE_MPI),
             ("aio", _capi.DSZ_FEATURE_AIO), ("avx2", _capi.DSZ_FEATURE_AVX2),
             ("avx512", _capi.DSZ_FEATURE_AVX512))


def version():
    """The loaded library's version string ("0.1.0")."""
    return _capi.lib().dsz_version().decode()


def features():
    """What the loaded library was compiled with: a list of "cuda", "nccl", "mpi", "aio", "avx2", "avx512"."""
    bits = _capi.lib().dsz_features()
    return [name for name, bit in _FEATURES if bits & bit]


def library_path():
    """The file the library was loaded from."""
    return _capi.library_path()


def initialize(args=None, model=None, optimizer=None, model_parameters=None, training_data=None,
               lr_scheduler=None, mpu=None, dist_init_required=None, collate_fn=None, config=None,
               config_params=None, **options):
    """DeepSpeed's ``deepspeed.initialize``, backed by dszero.

    Returns ``(engine, optimizer, training_dataloader, lr_scheduler)``.
    ``config`` is a dict or the path of a DeepSpeed JSON config (also taken
    from ``config_params`` or ``args.deepspeed_config``). The optimizer and
    the LR schedule come from the config: passing a torch optimizer or
    scheduler object is refused. ``model_parameters`` are parameters or
    torch-style group dicts (``params`` plus ``lr`` / ``weight_decay``);
    None takes every parameter of ``model`` that requires grad.
    ``training_data`` (a torch Dataset) gives a DataLoader over this rank's
    share with the micro-batch size. Extra keywords are dszero's init options:
    ``auto_values`` (values for "auto" keys), ``cpu_threads``, ``log`` (a
    callable(level, message)), ``log_level``, ``log_all_ranks``,
    ``mpi_comm``. Collective under mpirun."""
    if model is None:
        raise ValueError("dszero.initialize: model is required")
    if optimizer is not None or lr_scheduler is not None:
        raise ValueError("dszero.initialize: the optimizer and the LR scheduler come from the config; "
                         "pass optimizer=None and lr_scheduler=None")
    if mpu is not None:
        raise ValueError("dszero.initialize: model parallelism (mpu) is not supported")
    if config is None:
        config = config_params
    if config is None and args is not None:
        config = getattr(args, "deepspeed_config", None)
    if config is None:
        raise ValueError("dszero.initialize: no config (pass config=dict or a path)")
    from .pipe import PipelineModule
    if isinstance(model, PipelineModule):
        if model_parameters is not None or training_data is not None:
            raise ValueError("dszero.initialize: a PipelineModule registers its stage's parameters itself "
                             "and reads batches from train_batch(data_iter); pass neither "
                             "model_parameters nor training_data")
        from .pipe import PipelineEngine
        engine = PipelineEngine(model, config, options)
        return engine, None, None, None
    from .torch_engine import DSZeroEngine
    engine = DSZeroEngine(model, model_parameters, config, options, training_data, collate_fn)
    return engine, engine.optimizer, engine.training_dataloader, engine.lr_scheduler


def __getattr__(name):
    # dszero.pipe and dszero.moe import torch: load them on first use only.
    if name in ("pipe", "moe"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError("module 'dszero' has no attribute %r" % name)


__all__ = ["initialize", "Engine", "EngineState", "MemoryStats", "ParamGroup", "StepInfo", "DSZeroError",
           "LibraryNotFoundError", "LibraryVersionError", "config_resolve", "consolidate", "status_string", "version",
           "features", "library_path", "DSZ_OK", "DSZ_ERR_INVALID_ARGUMENT", "DSZ_ERR_CONFIG", "DSZ_ERR_DTYPE",
           "DSZ_ERR_SHAPE", "DSZ_ERR_STATE", "DSZ_ERR_IO", "DSZ_ERR_CHECKPOINT", "DSZ_ERR_OUT_OF_MEMORY",
           "DSZ_ERR_NOT_FOUND", "DSZ_ERR_UNSUPPORTED", "DSZ_ERR_COMM", "DSZ_ERR_TIMEOUT",
           "DSZ_ERR_LOSS_SCALE", "DSZ_ERR_INTERNAL", "DSZ_ERR_CUDA", "DSZ_ERR_CALLBACK"]
