"""ranvier: an event-driven simulator for heterogeneous spiking and value-emitting networks.

Quick start::

    import ranvier as rv
    from ranvier.units import ms, second

    net = rv.networks.cuba(n=4000, seed=1)
    spikes = net.record(net["exc"], "spikes")
    net.run(1 * second)
    print(net.stats)
"""

from . import connect, init, networks, neurons, units
from .engine import Network, Population, Projection
from .errors import (
    BackendError,
    ModelError,
    NumericalError,
    PopulationError,
    ProjectionError,
    RanvierError,
    RecordingError,
    RunError,
)

__version__ = "0.1.0"

__all__ = [
    "BackendError", "ModelError", "Network", "NumericalError", "Population", "PopulationError",
    "Projection", "ProjectionError", "RanvierError", "RecordingError", "RunError",
    "connect", "init", "networks", "neurons", "units", "__version__",
]
