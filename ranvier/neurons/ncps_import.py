"""Reading trained ncps modules (ncps 1.0.1: ``ncps.torch.CfC``, ``ncps.torch.LTC``) into numpy arrays.

:func:`cfc_arrays` and :func:`ltc_arrays` copy a module's parameters and settings as float32 numpy
arrays and plain numbers, keyed by the field names of :class:`~ranvier.neurons.cfc.CfCLayer` and
:class:`~ranvier.neurons.ltc.LTCWeights`; ``CfC.from_ncps`` and ``LTC.from_ncps`` build their
weights from them. The module passed in is only read through its attributes: this module imports
neither ncps nor torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelError

#: Input/output mappings of ``ncps.torch.LTCCell``: elementwise ``w * x + b``, ``w * x``, or none.
LTC_MAPPINGS = ("affine", "linear", "none")


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _activation(cell: Any) -> str:
    """The name of a ``CfCCell``'s backbone activation (LeCun tanh when it has no backbone)."""
    if cell.backbone is None:
        return "lecun_tanh"
    names = {"LeCun": "lecun_tanh", "Tanh": "tanh", "ReLU": "relu", "SiLU": "silu"}
    for module in cell.backbone:
        kind = type(module).__name__
        if kind in names:
            return names[kind]
        if kind not in ("Linear", "Dropout"):
            raise ModelError(f"CfC.from_ncps: backbone activation {kind} is not one of {sorted(names)}")
    raise ModelError("CfC.from_ncps: the backbone has no activation")


def cfc_arrays(module: Any) -> tuple[list[dict[str, Any]], tuple[np.ndarray, np.ndarray] | None]:
    """An ``ncps.torch.CfC``'s layers (one per wiring layer, else one), each a dict of ``CfCLayer``'s fields,
    and its ``proj_size`` projection ``(W, b)`` or None.

    The heads ``ff1, ff2, time_a, time_b`` (``ff1`` alone in mode ``pure``) are stacked row-wise; a
    wired layer's sparsity mask covers ``ff1`` and ``ff2`` and is ones on the time heads.
    """
    if getattr(module, "use_mixed", False):
        raise ModelError("CfC.from_ncps: mixed_memory=True (an LSTM beside the CfC) is not supported")
    cell = module.rnn_cell
    cells = list(cell._layers) if hasattr(cell, "_layers") else [cell]
    layers = []
    for sub in cells:
        activation = _activation(sub)
        backbone = tuple((_numpy(m.weight), _numpy(m.bias)) for m in (sub.backbone or []) if hasattr(m, "weight"))
        heads = [sub.ff1] if sub.mode == "pure" else [sub.ff1, sub.ff2, sub.time_a, sub.time_b]
        head_mask = None
        if sub.sparsity_mask is not None:
            mask = _numpy(sub.sparsity_mask)
            head_mask = np.concatenate([mask if i < 2 else np.ones_like(mask) for i in range(len(heads))])
        layers.append({
            "n_in": int(sub.input_size), "units": int(sub.hidden_size), "mode": sub.mode, "activation": activation,
            "backbone": backbone, "head_weight": np.concatenate([_numpy(h.weight) for h in heads]),
            "head_bias": np.concatenate([_numpy(h.bias) for h in heads]), "head_mask": head_mask,
            "w_tau": _numpy(sub.w_tau) if sub.mode == "pure" else None,
            "a": _numpy(sub.A) if sub.mode == "pure" else None})
    projection = None
    if hasattr(module.fc, "weight"):
        projection = (_numpy(module.fc.weight), _numpy(module.fc.bias))
    return layers, projection


def ltc_arrays(module: Any) -> dict[str, Any]:
    """An ``ncps.torch.LTC``'s parameters and solver settings, keyed by ``LTCWeights``' fields."""
    if getattr(module, "use_mixed", False):
        raise ModelError("LTC.from_ncps: mixed_memory=True (an LSTM beside the LTC) is not supported")
    cell = module.rnn_cell
    params = {name: _numpy(value) for name, value in cell._params.items()}
    for mapping in (cell._input_mapping, cell._output_mapping):
        if mapping not in LTC_MAPPINGS:
            raise ModelError(f"LTC.from_ncps: mapping {mapping!r} is not one of {LTC_MAPPINGS}")
    return {
        "gleak": params["gleak"], "vleak": params["vleak"], "cm": params["cm"], "w": params["w"],
        "sigma": params["sigma"], "mu": params["mu"], "erev": params["erev"], "mask": params["sparsity_mask"],
        "sensory_w": params["sensory_w"], "sensory_sigma": params["sensory_sigma"],
        "sensory_mu": params["sensory_mu"], "sensory_erev": params["sensory_erev"],
        "sensory_mask": params["sensory_sparsity_mask"], "input_w": params.get("input_w"),
        "input_b": params.get("input_b"), "output_w": params.get("output_w"), "output_b": params.get("output_b"),
        "motor": int(cell.motor_size), "ode_unfolds": int(cell._ode_unfolds), "epsilon": float(cell._epsilon),
        "positive": bool(cell._implicit_param_constraints)}
