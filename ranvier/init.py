"""Distributions for initial state, weights, delays and parameters."""

from .engine.distributions import Cauchy, Constant, Distribution, Normal, Uniform

__all__ = ["Cauchy", "Constant", "Distribution", "Normal", "Uniform"]
