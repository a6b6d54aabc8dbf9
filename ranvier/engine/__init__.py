"""The simulation engine: declaration, lowering, event queue, backends, monitors."""

from .network import Network, Population, Projection

__all__ = ["Network", "Population", "Projection"]
