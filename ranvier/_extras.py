"""Optional dependencies: which extra of ``pip install 'ranvier[...]'`` brings which package.

The core installation (numpy, numba, h5py, matplotlib, tqdm) simulates, saves, plots and
estimates hardware cost; the rest comes with extras. :func:`require` turns a missing package into
a :class:`~ranvier.errors.MissingExtraError` that says what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from .errors import MissingExtraError

#: extra -> the packages it installs (pyproject.toml's optional-dependencies, by import name)
EXTRAS = {
    "torch": ("torch", "snntorch"),
    "datasets": ("tonic", "sklearn"),
    "dask": ("dask", "distributed"),
    "nir": ("nir",),
    "equations": ("sympy",),
    "neo": ("neo", "quantities", "elephant"),
}


def _missing(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is None  # None in sys.modules: an import that is known to fail
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def require(module: str, feature: str, extra: str) -> None:
    """Raise :class:`MissingExtraError` unless ``module`` can be imported: ``feature`` (what the
    user asked for, e.g. ``"ranvier.train"``) needs it, and ``pip install 'ranvier[extra]'`` brings it."""
    if _missing(module):
        raise MissingExtraError(f"{feature} needs {module}, which is not installed: pip install 'ranvier[{extra}]'")


def load(module: str, feature: str, extra: str) -> ModuleType:
    """``module`` imported, or :class:`MissingExtraError` saying which extra installs it."""
    require(module, feature, extra)
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if getattr(error, "name", None) != module:
            raise
        raise MissingExtraError(f"{feature} needs {module}, which is not installed: "
                                f"pip install 'ranvier[{extra}]'") from error
