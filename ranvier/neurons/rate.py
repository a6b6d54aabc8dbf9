"""Rate populations: any torch module as a value population of the event engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..engine.model import ValueModel
from ..errors import ModelError


def _input_features(module: Any) -> int | None:
    """``in_features`` of the first layer that declares it (Linear, Bilinear, ...)."""
    for layer in module.modules():
        features = getattr(layer, "in_features", None)
        if isinstance(features, int):
            return features
    return None


class Rate(ValueModel):
    r"""A ``torch.nn.Module`` as a population: a conventional deep layer that exchanges rates or values.

    Once per window of ``dt`` (s) it reads what reached its port ``"input"`` during the window —
    weighted spike counts of spiking populations and values of value populations, summed — and
    sends ``y = module(x)`` on through its projections:

    .. math:: x_j = \sum_i w_{ji} \, c_i \;(\text{or } c_i / dt \text{ with } ``inputs="rates"``), \qquad
              y = \mathrm{module}(x)

    where ``c_i`` is the spike count of source ``i`` in the window (or its value). The module takes
    a batch of one input vector of ``n_in`` features and returns one output vector; the population
    has one unit per output feature (``net.population(Rate(...))`` needs no ``n``). It runs under
    ``torch.no_grad()`` on ``device`` (``"cpu"``, or ``"cuda"`` when a GPU is present); the engine
    sees float64 numpy arrays. A stateful module (an RNN cell) keeps its state between updates.

    State: ``output`` (the last output vector).
    """

    def __init__(self, module: Any, dt: float | None = None, n_in: int | None = None, inputs: str = "counts",
                 device: str | None = None) -> None:
        super().__init__()
        try:
            import torch
        except ImportError as error:  # pragma: no cover - torch is a dependency
            raise ModelError(f"Rate: needs torch ({error})") from None
        if not isinstance(module, torch.nn.Module):
            raise ModelError(f"Rate: module must be a torch.nn.Module, got {type(module).__name__}")
        if inputs not in ("counts", "rates"):
            raise ModelError(f"Rate: inputs must be 'counts' or 'rates', got {inputs!r}")
        if dt is not None and not (np.isfinite(dt) and dt > 0):
            raise ModelError(f"Rate: dt must be positive and finite, got {dt!r}")
        n_in = _input_features(module) if n_in is None else n_in
        if isinstance(n_in, bool) or not isinstance(n_in, int | np.integer) or n_in <= 0:
            raise ModelError(f"Rate: say how many input features {type(module).__name__} takes (n_in=...); "
                             f"got {n_in!r}")
        self.device = torch.device(device or "cpu")
        self.module = module.to(self.device).eval()
        self.dt = dt
        self.n_in = int(n_in)
        self.inputs = inputs
        with torch.no_grad():
            probe = self.module(torch.zeros(1, self.n_in, device=self.device))
        if not isinstance(probe, torch.Tensor) or probe.dim() != 2 or probe.shape[0] != 1:
            shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
            raise ModelError(f"Rate: {type(module).__name__} must map (1, {self.n_in}) to (1, n_out), gave {shape}")
        self.size = int(probe.shape[1])

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("output",)

    def ports(self, n: int) -> dict[str, tuple[int, int]]:
        return {"input": (self.n_in, 1)}

    def advance(self, state: np.ndarray, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray],
                dt: float) -> np.ndarray | None:
        import torch

        features = inputs["input"][0] / dt if self.inputs == "rates" else inputs["input"][0]
        with torch.no_grad():
            batch = torch.as_tensor(features, dtype=torch.float32, device=self.device)[None]
            output = self.module(batch)[0]
        state[0] = output.detach().cpu().numpy()
        return None

    def _config(self) -> dict[str, Any]:
        """The module pickled by ``torch.save`` (its class must be importable where the file is loaded)."""
        import io

        import torch

        buffer = io.BytesIO()
        torch.save(self.module, buffer)
        return {"module": np.frombuffer(buffer.getvalue(), dtype=np.uint8), "dt": self.dt, "n_in": self.n_in,
                "inputs": self.inputs, "device": str(self.device)}

    @classmethod
    def _from_config(cls, config: Mapping[str, Any]) -> Rate:
        import io

        import torch

        settings = dict(config)
        # a pickled module runs code when it loads: load files you trust (docs/storage.md)
        settings["module"] = torch.load(io.BytesIO(np.asarray(settings["module"], dtype=np.uint8).tobytes()),
                                        weights_only=False, map_location=settings.get("device") or "cpu")
        return cls(**settings)

    def __repr__(self) -> str:
        module = getattr(self, "module", None)
        return f"Rate({type(module).__name__}, n_in={getattr(self, 'n_in', None)}, dt={getattr(self, 'dt', None)})"
