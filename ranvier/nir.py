"""NIR import and export: ``ranvier.nir.load(path_or_graph) -> Network`` and ``ranvier.nir.save(net, path)``.

The ``nir`` package is imported only when one of these is called. Mapping and conventions:
:mod:`ranvier.networks.nir_io` and docs/nir.md.
"""

from .networks.nir_io import SUPPORTED_NODES, from_nir, load, save, to_nir

__all__ = ["SUPPORTED_NODES", "from_nir", "load", "save", "to_nir"]
