"""ranvier: an event-driven simulator for heterogeneous spiking and value-emitting networks.

Quick start::

    import ranvier as rv
    from ranvier.units import ms, second

    net = rv.networks.cuba(n=4000, seed=1)
    spikes = net.record(net["exc"], "spikes")
    net.run(1 * second)
    print(net.stats)
"""

import importlib as _importlib
import types as _types

from . import connect, hardware, init, networks, neurons, nir, plasticity, sweep, units
from .engine import Network, Population, Projection
from .engine.model import (
    NOT_FINITE,
    Model,
    ValueModel,
    any_true,
    rows,
    select,
    sin_cos,
    spike,
    store_where,
    uniform01,
)
from .errors import (
    BackendError,
    DatasetError,
    HardwareError,
    InputError,
    MissingExtraError,
    ModelError,
    NIRError,
    NumericalError,
    PlasticityError,
    PopulationError,
    ProjectionError,
    RanvierError,
    RanvierWarning,
    RecordingError,
    RunError,
    StorageError,
    SweepError,
    TrainingError,
)

__version__ = "0.1.0"


def load(path):
    """The network saved in the HDF5 file ``path`` by ``Network.save`` or a checkpoint
    (see :func:`ranvier.engine.storage.load`); h5py is imported only now."""
    from .engine.storage import load as load_file

    return load_file(path)


def register_model(cls):
    """Let saved files name ``cls``, a ``Model`` subclass (or a dataclass in a model's
    configuration) defined outside ranvier: ``rv.load`` resolves model paths only to ranvier's own
    classes and registered ones (see :func:`ranvier.engine.storage.register_model`). Returns ``cls``."""
    from .engine.storage import register_model as register

    return register(cls)


class _CallableModule(_types.ModuleType):
    """The class of ``ranvier.sweep``: the module (``rv.sweep.grid_points``, ``rv.sweep.SweepResults``)
    that is also the function (``rv.sweep(fn, grid, client=None)``)."""

    def __call__(self, fn, grid, client=None, **options):
        from ._extras import require

        require("distributed", "ranvier.sweep", "dask")
        return self.sweep(fn, grid, client=client, **options)


# ranvier.sweep imports only numpy and the standard library (dask when a sweep starts); it is imported
# here, not lazily, because importing a submodule binds its name in the package: a function named
# ``sweep`` here would be replaced by the module the first time anything imported ranvier.sweep.
sweep.__class__ = _CallableModule


#: ``rv.NAME`` imports ``ranvier.NAME`` on first use; the value is (the extra that brings its
#: dependencies, the modules that must be importable) or None when the core installation has them.
_LAZY = {
    "cli": None,
    "datasets": None,
    "engine": None,
    "errors": None,
    "language": None,
    "neo_io": ("neo", ("neo", "quantities")),
    "plots": None,
    "sonata": None,
    "testing": None,
    "train": ("torch", ("torch",)),
}


def __getattr__(name):
    """The submodules not imported by ``import ranvier`` (``rv.plots``, ``rv.datasets``,
    ``rv.train``, ...), imported on first use so that ``import ranvier`` stays fast."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ranvier' has no attribute {name!r}")
    if _LAZY[name] is not None:
        from ._extras import require

        extra, needed = _LAZY[name]
        for module_name in needed:
            require(module_name, f"ranvier.{name}", extra)
    return _importlib.import_module(f"{__name__}.{name}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "NOT_FINITE", "any_true", "rows", "select", "sin_cos", "spike", "store_where", "uniform01",
    "MissingExtraError",
    "BackendError", "DatasetError", "HardwareError", "InputError", "Model", "ModelError", "NIRError", "Network",
    "NumericalError", "PlasticityError", "Population", "PopulationError", "Projection", "ProjectionError",
    "RanvierError", "RanvierWarning", "RecordingError", "RunError", "StorageError", "SweepError", "TrainingError",
    "ValueModel", "connect", "hardware", "init", "load", "networks", "neurons", "nir", "plasticity", "register_model",
    "sweep", "units", "__version__",
]
