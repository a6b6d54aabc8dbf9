"""Neuron models written as equations (Brian 2's syntax): parsing, units, integration, code generation.

:class:`Equations` is the public face; the modules below it each do one job:
:mod:`.units` (unit names, dimensions), :mod:`.parsing` (strings -> checked sympy),
:mod:`.integration` (methods -> one step), :mod:`.codegen` (sympy -> a model-language step).
"""

from .model import Equations

__all__ = ["Equations"]
