"""A traced step's whole-sequence program as one compiled loop over its elements.

The backward pass of a traced step (:class:`ranvier.train.model_step._Recurrence`) evaluates,
over all ``T`` steps at once, the entries of the step's Jacobian: for a LIF neuron
``v - v_th``, the fast-sigmoid surrogate ``1 / (scale (1 + slope |v - v_th| / scale)^2)``, the
factors ``select(spike, 0, decay)`` and the products with the spikes' gradient ``gS``. As torch
ops each is a pass over ``(T, B, n)`` tensors (ten or more for a LIF population: the surrogate
alone is six), which memory traffic dominates. Here the same ops become one generated numba
loop (``prange`` over the elements) that keeps every intermediate in registers and writes only
the entries the recurrence reads.

Every op is computed as its torch version computes it, in the tensors' dtype: the surrogate
op by op (``|x| * (slope / scale)``, ``+ 1``, squared, ``* scale``, reciprocal), literals cast to
the dtype once, comparisons as 0/1, ``select`` as the chosen branch (torch's ``lerp`` of a 0/1
mask gives the same where both branches are finite). ``exp``, ``tanh``, ``sin``, ``cos`` and
``sqrt`` come from the C library and the processor instead of torch's vectorised versions (SLEEF)
and may differ in the last bit.
Elements are independent, so the result does not depend on the thread count.

Kernels are cached on disk like the engine's (:mod:`ranvier.engine.backends.kernel_cache`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..engine.backends import kernel_cache

#: op -> expression of its arguments' names (masks and ``select`` as torch computes them)
_EXPRESSIONS = {
    "add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}", "neg": "-{0}",
    "pow": "{0} ** {1}",
    "ge": "one if {0} >= {1} else zero", "gt": "one if {0} > {1} else zero", "le": "one if {0} <= {1} else zero",
    "lt": "one if {0} < {1} else zero", "eq": "one if {0} == {1} else zero", "ne": "one if {0} != {1} else zero",
    "spike": "one if {0} >= {1} else zero",
    "and": "{0} * {1}", "gate": "{0} * {1}", "or": "{0} if {0} >= {1} else {1}", "not": "one - {0}",
    "select": "{1} if {0} != zero else {2}",
    "exp": "np.exp({0})", "tanh": "np.tanh({0})", "sqrt": "np.sqrt({0})", "abs": "abs({0})",
    "floor": "np.floor({0})", "sin": "np.sin({0})", "cos": "np.cos({0})", "sign": "np.sign({0})",
}
_DTYPES = {torch.float32: "float32", torch.float64: "float64"}
_LOADED: dict[str, object] = {}


class FusedProgram:
    """``program`` (``(index, function, argument indices)`` over ``nodes``, in order) compiled for
    the ``outputs`` it must write: ``(node, None)`` the node's value, ``(node, "grad")`` its value
    times the gradient given at the call, and for a node ``x * c`` (``c`` constant) ``(x * grad) * c``,
    the order :class:`~ranvier.train.model_step._Recurrence` multiplies in.

    :meth:`__call__` returns the outputs ``(T, B, n)``, or None where the inputs are not what the
    loop handles (a GPU tensor, another dtype, a constant of another shape): then run the ops.
    """

    def __init__(self, nodes: Sequence, literals: Sequence, program: Sequence[tuple],
                 outputs: Sequence[tuple[object, str | None]]) -> None:
        self.nodes, self.literals, self.outputs = nodes, list(literals), list(outputs)
        computed = {index for index, _, _ in program}
        names: dict[int, str] = {}
        self.known: list[int] = []  # nodes read from the known tensors, in argument order
        self.constants: list[Tensor] = []  # (n,) or one value, read as (n,)
        self.literal_slots: list[object] = []  # values cast to the dtype, read from one array
        lines: list[str] = []

        def constant(value: Tensor) -> str:
            self.constants.append(value)
            return f"c{len(self.constants) - 1}[u]"

        def name(index: int) -> str:
            if index in names:
                return names[index]
            if index >= len(nodes):  # a literal
                names[index] = f"lit[{len(self.literal_slots)}]"
                self.literal_slots.append(self.literals[index - len(nodes)])
            elif nodes[index].op == "const":
                names[index] = constant(nodes[index].value)
            elif index not in computed:
                names[index] = f"k{len(self.known)}[e]"
                self.known.append(index)
            return names[index]

        for index, _, args in program:
            node = nodes[index]
            arguments = [name(a) for a in args]
            if node.op == "surrogate":
                # torch: |x| .mul_(slope / scale) .add_(1) .square_() .mul_(scale) .reciprocal_()
                ratio = constant(node.args[1].value.reciprocal() * node.graph.slope)
                lines += [f"q = abs({arguments[0]}) * {ratio}", "q = q + one", "q = q * q",
                          f"q = q * {arguments[1]}", f"x{index} = one / q"]
            elif node.op in ("clamp_max", "clamp_min"):
                bound = name(len(nodes) + self._literal(node.bound))
                test = ">" if node.op == "clamp_max" else "<"
                lines.append(f"x{index} = {bound} if {arguments[0]} {test} {bound} else {arguments[0]}")
            else:
                lines.append(f"x{index} = " + _EXPRESSIONS[node.op].format(*arguments))
            names[index] = f"x{index}"
        writes = []
        for position, (node, kind) in enumerate(self.outputs):
            if kind is None:
                writes.append(f"o{position}[e] = {name(node.index)}")
            elif node.op == "mul" and getattr(node.args[1], "op", None) == "const":
                writes.append(f"o{position}[e] = ({name(node.args[0].index)} * grad[e]) * {name(node.args[1].index)}")
            else:
                writes.append(f"o{position}[e] = {name(node.index)} * grad[e]")
        arguments = ", ".join([f"k{j}" for j in range(len(self.known))] + [f"c{j}" for j in range(len(self.constants))]
                              + ["lit", "grad"] + [f"o{j}" for j in range(len(self.outputs))] + ["n"])
        body = "\n".join(f"            {line}" for line in lines + writes)
        self.source = (
            "# Generated by ranvier.train.fused; do not edit.\n"
            "import numpy as np\n"
            "from numba import njit, prange\n\n\n"
            "@njit(cache=True, parallel=True, nogil=True)\n"
            f"def advance({arguments}):\n"
            "    one = lit.dtype.type(1.0)\n"
            "    zero = lit.dtype.type(0.0)\n"
            "    for row in prange(o0.shape[0] // n):\n"
            "        for u in range(n):\n"
            "            e = row * n + u\n"
            f"{body}\n"
        )
        self.name = "ranvier_fused_" + hashlib.sha256(self.source.encode()).hexdigest()[:20]

    def _literal(self, value: float) -> int:
        """``value`` as one more literal; its index past the nodes."""
        self.literals.append(value)
        return len(self.literals) - 1

    def __call__(self, known: dict[int, Tensor], grad: Tensor | None) -> list[Tensor] | None:
        reference = known[self.known[0]] if self.known else grad
        if reference is None or reference.device.type != "cpu" or reference.dtype not in _DTYPES:
            return None
        shape, dtype, n = reference.shape, reference.dtype, reference.shape[-1]
        tensors = [known[index] for index in self.known]
        if grad is not None:
            tensors.append(grad)
        if any(t.shape != shape or t.dtype != dtype or t.device != reference.device for t in tensors):
            return None
        constants = []
        for value in self.constants:
            value = value.reshape(-1)
            if value.dtype != dtype or value.numel() not in (1, n):
                return None
            constants.append(value.detach().expand(n).contiguous().numpy())
        literals = np.array([float(v) for v in self.literal_slots] or [0.0], dtype=_DTYPES[dtype])
        flat = [t.detach().contiguous().reshape(-1).numpy() for t in tensors]
        inputs, grad_flat = (flat[:-1], flat[-1]) if grad is not None else (flat, np.zeros(1, dtype=literals.dtype))
        outputs = [torch.empty(shape, dtype=dtype) for _ in self.outputs]
        kernel = self._kernel()
        kernel(*inputs, *constants, literals, grad_flat, *(o.reshape(-1).numpy() for o in outputs), n)
        return outputs

    def _kernel(self):
        if self.name not in _LOADED:
            _LOADED[self.name] = kernel_cache.load(self.name, self.source, {})
        return _LOADED[self.name]


__all__ = ["FusedProgram"]
