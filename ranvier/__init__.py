"""ranvier: an event-driven simulator for heterogeneous spiking and value-emitting networks.

Quick start::

    import ranvier as rv
    from ranvier.units import ms, second

    net = rv.networks.cuba(n=4000, seed=1)
    spikes = net.record(net["exc"], "spikes")
    net.run(1 * second)
    print(net.stats)
"""

from . import connect, hardware, init, networks, neurons, nir, plasticity, units
from .engine import Network, Population, Projection
from .engine.model import NOT_FINITE, Model, ValueModel, any_true, rows, select, sin_cos, store_where, uniform01
from .errors import (
    BackendError,
    DatasetError,
    HardwareError,
    InputError,
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


def sweep(fn, grid, client=None, **options):
    """Run ``fn(**point)`` for every point of ``grid`` on Dask (see :func:`ranvier.sweep.sweep`);
    dask is imported only now."""
    from .sweep import sweep as run_sweep

    return run_sweep(fn, grid, client=client, **options)


__all__ = [
    "NOT_FINITE", "any_true", "rows", "select", "sin_cos", "store_where", "uniform01",
    "BackendError", "DatasetError", "HardwareError", "InputError", "Model", "ModelError", "NIRError", "Network",
    "NumericalError", "PlasticityError", "Population", "PopulationError", "Projection", "ProjectionError",
    "RanvierError", "RanvierWarning", "RecordingError", "RunError", "StorageError", "SweepError", "TrainingError",
    "ValueModel", "connect", "hardware", "init", "load", "networks", "neurons", "nir", "plasticity", "sweep", "units",
    "__version__",
]
