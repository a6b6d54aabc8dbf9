"""CfC and LTC reproduce ncps' own modules, in numpy and in torch, and train."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ncps_torch = pytest.importorskip("ncps.torch")
from ncps.wirings import AutoNCP  # noqa: E402

import ranvier as rv  # noqa: E402
from ranvier.errors import InputError  # noqa: E402
from ranvier.neurons.cfc import cfc_sequence, cfc_step  # noqa: E402
from ranvier.neurons.ltc import ltc_sequence, ltc_step  # noqa: E402
from ranvier.train import to_torch  # noqa: E402

N_IN, BATCH, STEPS = 5, 3, 12

CFC_CONFIGS = {
    "default": lambda: ncps_torch.CfC(N_IN, 16),
    "no_gate": lambda: ncps_torch.CfC(N_IN, 16, mode="no_gate", activation="silu", backbone_layers=2),
    "pure+proj": lambda: ncps_torch.CfC(N_IN, 16, mode="pure", proj_size=3, activation="tanh"),
    "relu": lambda: ncps_torch.CfC(N_IN, 8, activation="relu", backbone_units=32),
    "wired": lambda: ncps_torch.CfC(N_IN, AutoNCP(14, 3)),
    "wired no_gate": lambda: ncps_torch.CfC(N_IN, AutoNCP(14, 3), mode="no_gate"),
}
LTC_CONFIGS = {
    "affine": lambda: ncps_torch.LTC(N_IN, 12),
    "wired": lambda: ncps_torch.LTC(N_IN, AutoNCP(14, 3)),
    "linear, unconstrained": lambda: ncps_torch.LTC(N_IN, 10, input_mapping="linear", output_mapping="none",
                                                    ode_unfolds=3, implicit_param_constraints=False),
}


@pytest.fixture
def inputs():
    torch.manual_seed(3)
    return torch.randn(BATCH, STEPS, N_IN)


def _cases():
    for name, make in CFC_CONFIGS.items():
        yield pytest.param(rv.neurons.CfC, make, id=f"CfC {name}")
    for name, make in LTC_CONFIGS.items():
        yield pytest.param(rv.neurons.LTC, make, id=f"LTC {name}")


@pytest.mark.parametrize(("cls", "make"), list(_cases()))
def test_from_ncps_reproduces_ncps(cls, make, inputs):
    torch.manual_seed(0)
    reference = make()
    expected, expected_state = (t.detach().numpy() for t in reference(inputs))
    model = cls.from_ncps(reference)
    outputs, state = model.forward(inputs.numpy())
    np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(state, expected_state, atol=1e-5, rtol=0)
    torch_outputs, torch_state = to_torch(model)(inputs)
    np.testing.assert_allclose(torch_outputs.detach().numpy(), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(torch_state.detach().numpy(), expected_state, atol=1e-5, rtol=0)
    assert outputs.shape == (BATCH, STEPS, model.output_size)


@pytest.mark.parametrize(("cls", "make"), [(rv.neurons.CfC, CFC_CONFIGS["default"]),
                                           (rv.neurons.LTC, LTC_CONFIGS["affine"])])
def test_timespans_and_initial_state_as_ncps(cls, make):
    # ncps broadcasts a per-sample elapsed time against the unit axis, which is only right for one sequence
    torch.manual_seed(1)
    reference = make()
    x = torch.randn(1, STEPS, N_IN)
    spans = torch.rand(1, STEPS) + 0.5
    h0 = torch.randn(1, 16 if cls is rv.neurons.CfC else 12) * 0.1
    expected = reference(x, h0, timespans=spans)[0].detach().numpy()
    model = cls.from_ncps(reference)
    np.testing.assert_allclose(model.forward(x[0].numpy(), spans[0].numpy(), h0[0].numpy())[0], expected[0],
                               atol=1e-5)
    np.testing.assert_allclose(to_torch(model)(x, h0, spans)[0].detach().numpy(), expected, atol=1e-5)


@pytest.mark.parametrize(("cls", "make", "step", "sequence"), [
    (rv.neurons.CfC, CFC_CONFIGS["wired"], cfc_step, cfc_sequence),
    (rv.neurons.LTC, LTC_CONFIGS["wired"], ltc_step, ltc_sequence)])
def test_engine_step_is_the_sequence_step(cls, make, step, sequence, inputs):
    torch.manual_seed(2)
    model = cls.from_ncps(make())
    x = inputs.numpy().astype(np.float64)
    state = np.zeros((BATCH, model.state_size))
    outputs = []
    for t in range(STEPS):
        output, state = step(np, model.weights, x[:, t], state, 1.0)
        outputs.append(output)
    expected, expected_state = sequence(np, model.weights, x, np.zeros((BATCH, model.state_size)))
    np.testing.assert_allclose(np.stack(outputs, 1), expected, atol=1e-6)
    np.testing.assert_allclose(state, expected_state, atol=1e-6)


def test_ltc_gradients_match_ncps(inputs):
    # the fused synapse op has a hand-written backward pass; ncps' autograd is the reference
    torch.manual_seed(4)
    reference = LTC_CONFIGS["wired"]()
    module = to_torch(rv.neurons.LTC.from_ncps(reference))
    reference(inputs)[0].square().sum().backward()
    module(inputs)[0].square().sum().backward()
    expected = dict(reference.rnn_cell.named_parameters())
    checked = 0
    for name, parameter in module.named_parameters():
        grad = expected[name].grad.numpy()
        np.testing.assert_allclose(parameter.grad.numpy(), grad, atol=1e-4 * max(1.0, np.abs(grad).max()),
                                   err_msg=name)
        checked += 1
    assert checked == 15


@pytest.mark.parametrize("mode", ["default", "no_gate"])
@pytest.mark.parametrize("proj_size", [None, 2])
def test_cfc_gradients_match_ncps(mode, proj_size, inputs):
    # one-layer CfCs train through a sequence function with a hand-written backward pass
    torch.manual_seed(8)
    reference = ncps_torch.CfC(N_IN, 16, mode=mode, proj_size=proj_size)
    module = to_torch(rv.neurons.CfC.from_ncps(reference))
    x = inputs.clone().requires_grad_(True)
    h0 = torch.randn(BATCH, 16) * 0.3
    outputs, state = module(x, h0)
    (outputs.square().sum() + state.sum()).backward()
    grad_x = x.grad.clone()
    x.grad = None
    outputs, state = reference(x, h0)
    (outputs.square().sum() + state.sum()).backward()
    cell = reference.rnn_cell
    heads = (cell.ff1, cell.ff2, cell.time_a, cell.time_b)
    pairs = {"layer0_head_weight": torch.cat([h.weight.grad for h in heads]),
             "layer0_head_bias": torch.cat([h.bias.grad for h in heads]),
             "layer0_backbone0_weight": cell.backbone[0].weight.grad,
             "layer0_backbone0_bias": cell.backbone[0].bias.grad}
    if proj_size:
        pairs["projection.weight"] = reference.fc.weight.grad
    parameters = dict(module.named_parameters())
    for name, expected in pairs.items():
        scale = max(1.0, expected.abs().max().item())
        np.testing.assert_allclose(parameters[name].grad.numpy(), expected.numpy(), atol=1e-5 * scale, err_msg=name)
    np.testing.assert_allclose(grad_x.numpy(), x.grad.numpy(), atol=1e-5 * max(1.0, x.grad.abs().max().item()))


@pytest.mark.parametrize("make", [CFC_CONFIGS["default"], CFC_CONFIGS["wired"], CFC_CONFIGS["pure+proj"]])
def test_cfc_gradients_flow_and_training_lowers_the_loss(make, inputs):
    torch.manual_seed(5)
    module = to_torch(rv.neurons.CfC.from_ncps(make()))
    target = torch.sin(inputs.cumsum(1)[..., :1])
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        optimiser.zero_grad()
        loss = (module(inputs)[0][..., :1] - target).square().mean()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    assert losses[-1] < 0.8 * losses[0]


def test_wired_training_keeps_the_wiring(inputs):
    torch.manual_seed(6)
    module = to_torch(rv.neurons.CfC.from_ncps(CFC_CONFIGS["wired"]()))
    module(inputs)[0].sum().backward()
    for index in range(3):
        mask = getattr(module, f"layer{index}_head_mask")
        grad = getattr(module, f"layer{index}_head_weight").grad
        assert (mask == 0).any() and torch.all(grad[mask == 0] == 0)
        assert grad[mask == 1].abs().sum() > 0


@pytest.mark.parametrize("cls", [rv.neurons.CfC, rv.neurons.LTC])
def test_bad_inputs_raise_named_errors(cls, inputs):
    torch.manual_seed(7)
    model = cls.from_ncps(CFC_CONFIGS["default"]() if cls is rv.neurons.CfC else LTC_CONFIGS["affine"]())
    with pytest.raises(InputError, match=r"\(T, 5\).*\(3, 12, 4\)"):
        model.forward(inputs[..., :4].numpy())
    bad = inputs.clone()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        model.forward(bad.numpy())
    with pytest.raises(InputError, match="timespans"):
        model.forward(inputs.numpy(), timespans=np.ones(7))
    module = to_torch(model)
    with pytest.raises(InputError, match=r"Module.*\(3, 12, 6\)"):
        module(torch.randn(BATCH, STEPS, 6))
    with pytest.raises(InputError, match="NaN"):
        module(bad)


def test_torch_finite_check_is_exact(inputs):
    # the check is one float64 sum; finite values whose sum overflows must pass, and infinities must not
    module = to_torch(rv.neurons.CfC.from_ncps(CFC_CONFIGS["default"]()))
    huge = torch.full((1, 2, N_IN), 1.7e308, dtype=torch.float64)
    module.double()(huge)
    bad = inputs.clone()
    bad[1, 0, 0] = float("inf")
    with pytest.raises(InputError, match="infinite"):
        module.float()(bad)


@pytest.mark.parametrize("name", ["default", "no_gate", "pure+proj", "wired"])
def test_cfc_step_halves_into_buffers_match(name):
    # cfc_recurrent is cfc_heads then cfc_mix; the out= buffers the torch training path writes into
    # must give the same numbers, in numpy as in torch
    from ranvier.neurons.cfc import cfc_heads, cfc_input_drive, cfc_mix, cfc_recurrent, cfc_terms

    torch.manual_seed(5)
    layer = rv.neurons.CfC.from_ncps(CFC_CONFIGS[name]()).weights.layers[0]
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((BATCH, layer.n_in)), rng.standard_normal((BATCH, layer.units))
    terms = cfc_terms(np, layer, True)
    drive = cfc_input_drive(np, terms, x)
    backbone, heads = cfc_heads(np, terms, drive, h)
    buffers = (np.empty_like(backbone) if backbone is not None else None, np.empty_like(heads))
    _, heads_out = cfc_heads(np, terms, drive.copy(), h, out=buffers)
    new_h = np.empty((BATCH, layer.units), dtype=heads.dtype)
    cfc_mix(np, terms, heads_out, 1.0, out=new_h)
    np.testing.assert_allclose(new_h, cfc_recurrent(np, terms, drive, h, 1.0), rtol=1e-6, atol=1e-6)
    if backbone is not None:
        np.testing.assert_allclose(buffers[0], backbone, rtol=1e-6, atol=1e-6)


def test_unsupported_ncps_options_are_refused():
    with pytest.raises(rv.ModelError, match="mixed_memory"):
        rv.neurons.CfC.from_ncps(ncps_torch.CfC(N_IN, 8, mixed_memory=True))
    with pytest.raises(rv.ModelError, match="GELU"):
        rv.neurons.CfC.from_ncps(ncps_torch.CfC(N_IN, 8, activation="gelu"))


def test_import_ranvier_does_not_import_torch():
    code = "import sys, ranvier; ranvier.neurons.CfC, ranvier.neurons.LTC; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
