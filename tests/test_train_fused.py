"""The fused backward loop (ranvier.train.fused) computes every traced op as torch does."""

import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ranvier.train import fused, model_step  # noqa: E402

#: ops computed exactly as torch computes them; the C library's versions of the others may differ in the last bit
EXACT = ("add", "sub", "mul", "div", "neg", "pow", "ge", "gt", "le", "lt", "eq", "ne", "and", "or", "not", "select",
         "gate", "abs", "floor", "sign", "spike", "surrogate", "clamp_max", "clamp_min")
LIBRARY = ("exp", "tanh", "sin", "cos", "sqrt")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_traced_op_in_the_loop_equals_torch(dtype):
    graph = model_step._Graph(dtype, torch.device("cpu"), torch.tensor([0.01, 0.02, 0.03, 0.04, 0.05], dtype=dtype),
                              slope=5.0)
    a, b = graph.input(), graph.input()
    mask_a, mask_b = graph.make("ge", a, b), graph.make("lt", a, 0.1)
    binary = ("add", "sub", "mul", "div", "ge", "gt", "le", "lt", "eq", "ne", "spike")
    nodes = {op: graph.make(op, a, b) for op in binary}
    nodes.update({
        "neg": graph.make("neg", a), "pow": graph.make("pow", a, 2.0), "and": graph.make("and", mask_a, mask_b),
        "or": graph.make("or", mask_a, mask_b), "not": graph.make("not", mask_a),
        "select": graph.make("select", mask_a, a, b), "gate": graph.make("gate", mask_b, a),
        "abs": graph.make("abs", a), "floor": graph.make("floor", a),
        "sign": graph.make("sign", a), "surrogate": graph.make("surrogate", a, graph.scale),
        "clamp_max": graph.make("clamp_max", a, bound=0.25), "clamp_min": graph.make("clamp_min", b, bound=-0.5),
        "scaled": graph.make("mul", graph.make("mul", a, b), graph.const(torch.tensor(3.0, dtype=dtype))),
    })
    nodes.update({op: graph.make(op, a) for op in LIBRARY if op != "sqrt"})
    nodes["sqrt"] = graph.make("sqrt", graph.make("abs", b))
    program, _ = model_step._walk(list(nodes.values()), set())
    holder = types.SimpleNamespace(nodes=graph.nodes, _literals=[])
    compiled = model_step._Recurrence._compile(holder, program)
    outputs = [(node, None) for node in nodes.values()] + [(nodes["surrogate"], "grad"), (nodes["scaled"], "grad")]
    loop = fused.FusedProgram(graph.nodes, holder._literals, compiled, outputs)

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(6, 4, 5))).to(dtype)
    y = torch.from_numpy(rng.normal(size=(6, 4, 5))).to(dtype)
    y[0] = x[0]  # equal operands for eq, ne, ge, le
    grad = torch.from_numpy(rng.normal(size=(6, 4, 5))).to(dtype)
    results = loop({a.index: x, b.index: y}, grad)

    values = [node.value for node in graph.nodes] + holder._literals
    values[a.index], values[b.index] = x, y
    for index, function, args in compiled:
        values[index] = function(*[values[i] for i in args])
    by_torch = [values[node.index] for node in nodes.values()]
    by_torch += [values[nodes["surrogate"].index] * grad, (values[nodes["mul"].index] * grad) * 3.0]
    names = [*nodes, "surrogate * grad", "scaled * grad"]
    for name, result, expected in zip(names, results, by_torch, strict=True):
        expected = torch.broadcast_to(expected, result.shape).to(dtype)
        if name in LIBRARY:
            torch.testing.assert_close(result, expected, rtol=4 * torch.finfo(dtype).eps, atol=0.0)
        else:
            assert torch.equal(result, expected), name
    assert set(EXACT) | set(LIBRARY) == set(model_step._FORWARD) | {"surrogate", "clamp_max", "clamp_min"}


def test_the_loop_declines_what_it_does_not_handle():
    graph = model_step._Graph(torch.float32, torch.device("cpu"), torch.tensor(0.01), slope=5.0)
    a = graph.input()
    node = graph.make("mul", a, a)
    holder = types.SimpleNamespace(nodes=graph.nodes, _literals=[])
    compiled = model_step._Recurrence._compile(holder, [node])
    loop = fused.FusedProgram(graph.nodes, holder._literals, compiled, [(node, None)])
    x = torch.ones(2, 3, 4)
    assert loop({a.index: x.half()}, None) is None  # another dtype
    assert loop({a.index: x}, torch.ones(2, 3, 5)) is None  # shapes that differ
    assert torch.equal(loop({a.index: x * 3}, None)[0], torch.full((2, 3, 4), 9.0))
