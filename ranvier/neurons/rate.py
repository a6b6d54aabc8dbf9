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


#: the ``torch.nn`` layers a saved ``Rate`` may hold, and the constructor arguments that rebuild each
#: (read back from attributes of the same name); ``Sequential`` nests them
SAVED_LAYERS: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features", "bias"),
    "ReLU": (), "Tanh": (), "Sigmoid": (), "GELU": ("approximate",), "SiLU": (), "Identity": (),
    "LeakyReLU": ("negative_slope",), "ELU": ("alpha",), "Softplus": ("beta", "threshold"),
    "Softmax": ("dim",), "Flatten": ("start_dim", "end_dim"), "Dropout": ("p",),
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine"),
}


def _describe(module: Any) -> dict[str, Any]:
    """``module`` as nested dicts of layer names and constructor arguments (a :data:`SAVED_LAYERS` layer)."""
    import torch

    name = type(module).__name__
    if type(module) is torch.nn.Sequential:
        return {"layer": name, "children": [_describe(child) for child in module]}
    if name not in SAVED_LAYERS or type(module) is not getattr(torch.nn, name):
        raise ModelError(f"Rate: a {type(module).__module__}.{type(module).__qualname__} cannot be saved as data; a "
                         f"saved Rate holds torch.nn.Sequential of {', '.join(SAVED_LAYERS)} (rebuild other modules "
                         "after loading)")
    arguments = {}
    for argument in SAVED_LAYERS[name]:
        value = getattr(module, argument)
        if argument == "bias":
            value = value is not None
        arguments[argument] = list(value) if isinstance(value, tuple) else value
    return {"layer": name, "arguments": arguments}


def _build(description: Mapping[str, Any]) -> Any:
    """The module :func:`_describe` described; only :data:`SAVED_LAYERS` layers are made."""
    import torch

    name = description.get("layer") if isinstance(description, Mapping) else None
    if name == "Sequential":
        return torch.nn.Sequential(*(_build(child) for child in description.get("children", [])))
    if name not in SAVED_LAYERS:
        raise ModelError(f"Rate: a saved layer must be Sequential or one of {', '.join(SAVED_LAYERS)}; got {name!r}")
    arguments = dict(description.get("arguments", {}))
    if set(arguments) - set(SAVED_LAYERS[name]):
        raise ModelError(f"Rate: unknown arguments {sorted(set(arguments) - set(SAVED_LAYERS[name]))} for {name}")
    if "normalized_shape" in arguments:
        arguments["normalized_shape"] = tuple(arguments["normalized_shape"])
    try:
        return getattr(torch.nn, name)(**arguments)
    except (TypeError, ValueError) as error:
        raise ModelError(f"Rate: {name}{arguments} cannot be built ({error})") from None


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
        """The module as data: its layers (``torch.nn`` classes of :data:`SAVED_LAYERS`, nested in
        ``Sequential``) and its parameters and buffers as arrays. Loading builds those layers and
        copies the arrays in; nothing in a file is unpickled or imported."""
        weights = {name: tensor.detach().cpu().numpy() for name, tensor in self.module.state_dict().items()}
        return {"layers": _describe(self.module), "weights": weights, "dt": self.dt, "n_in": self.n_in,
                "inputs": self.inputs, "device": str(self.device)}

    @classmethod
    def _from_config(cls, config: Mapping[str, Any]) -> Rate:
        import torch

        settings = dict(config)
        module = _build(settings.pop("layers"))
        weights = settings.pop("weights")
        try:
            module.load_state_dict({name: torch.as_tensor(np.asarray(array)) for name, array in weights.items()})
        except (RuntimeError, TypeError) as error:
            raise ModelError(f"Rate: the saved weights do not fit the saved layers ({error})") from None
        return cls(module, **settings)

    def __repr__(self) -> str:
        module = getattr(self, "module", None)
        return f"Rate({type(module).__name__}, n_in={getattr(self, 'n_in', None)}, dt={getattr(self, 'dt', None)})"
