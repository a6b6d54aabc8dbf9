"""Errors raised by ranvier.

Every error a user can trigger with bad input is a :class:`RanvierError`. Subclasses also
derive from the matching built-in (``ValueError``, ``TypeError``, ``RuntimeError``) so code that
already catches those keeps working. Messages name the population or projection and the
offending value.
"""

from __future__ import annotations


class RanvierError(Exception):
    """Base class of every error ranvier raises on bad input or a failed run."""


class RanvierWarning(UserWarning):
    """A value ranvier accepts but that is probably a mistake (e.g. ``tau_m=20``: seconds, meant
    as ms). See :mod:`ranvier.engine.plausibility`; silence it with
    ``warnings.simplefilter("ignore", ranvier.RanvierWarning)``."""


class PopulationError(RanvierError, ValueError):
    """A population was declared with an invalid size, name, model or initial state."""


class ModelError(RanvierError, ValueError):
    """A neuron model was given an invalid parameter."""


class ProjectionError(RanvierError, ValueError):
    """A projection has an invalid rule, weight, delay, receptor or endpoint."""


class PlasticityError(ProjectionError):
    """A plasticity rule has bad parameters, or cannot learn on the projection it was given."""


class RecordingError(RanvierError, ValueError):
    """A monitor asks for a variable, neuron id or interval that does not exist."""


class RunError(RanvierError, ValueError):
    """``Network.run`` was called with an invalid duration, backend or callback time."""


class DatasetError(RanvierError, ValueError):
    """An event stream or dataset sample has missing fields, bad timestamps or coordinates."""


class TrainingError(RanvierError, ValueError):
    """A network, model, input or option cannot be trained or converted (``ranvier.train``)."""


class NIRError(RanvierError, ValueError):
    """A NIR graph holds a node or edge ranvier cannot load, or a network cannot be exported."""


class BackendError(RanvierError, RuntimeError):
    """The requested backend is unknown or not available on this machine."""


class HardwareError(RanvierError, ValueError):
    """A hardware estimate cannot be made: unknown or bad target, unsupported model, no fit.

    ``ranvier.hardware`` raises named subclasses (``UnknownTargetError``, ``TargetFileError``,
    ``UnsupportedModelError``, ``PlacementError``, ``NotRunError``).
    """


class StorageError(RanvierError, OSError):
    """A file cannot be written, or is not a readable ranvier HDF5 file (missing, truncated,
    corrupted, of an unknown schema version, or naming a model that cannot be rebuilt)."""


class SweepError(RanvierError, RuntimeError):
    """A parameter sweep could not run: a bad grid or an unreachable Dask scheduler."""


class InputError(RanvierError, ValueError):
    """Data given to a model's forward pass has the wrong shape or is not finite (liquid and ELM models)."""


class NumericalError(RanvierError, FloatingPointError):
    """A state variable became NaN or infinite during a run.

    Attributes
    ----------
    population:
        Name of the population whose state went bad.
    step:
        Index of the time step (``t = step * dt``) whose update produced it.
    """

    def __init__(self, population: str, step: int, time: float):
        self.population = population
        self.step = step
        self.time = time
        super().__init__(
            f"population {population!r}: state became NaN or infinite in step {step} "
            f"(t = {time:.6g} s); the run stopped there"
        )


class MissingExtraError(RanvierError, ImportError):
    """A part of ranvier needs a package its core installation does not bring; the message names
    the package and the extra that installs it (``pip install 'ranvier[torch]'``)."""
