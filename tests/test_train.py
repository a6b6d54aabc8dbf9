"""ranvier.train: the torch path follows the engine step, BPTT and SLTT train, trained weights run in the engine."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ranvier as rv  # noqa: E402
from ranvier.errors import TrainingError  # noqa: E402
from ranvier.train import SpikingModule, latency_encode, simulate  # noqa: E402
from ranvier.units import ms, mV  # noqa: E402


def mixed_network() -> rv.Network:
    """Current and delta receptors, refractoriness, a 2-step delay and a recurrent projection."""
    net = rv.Network(dt=1 * ms, seed=1)
    source = net.population(rv.neurons.SpikeSource([], [], n=20), name="input")
    lif = rv.neurons.LIF(tau_m=10 * ms, v_rest=0.0, v_th=10 * mV, v_reset=-2 * mV, t_ref=2 * ms,
                         tau_syn={"exc": 5 * ms, "fast": 0.0}, i_bias=1 * mV)
    hidden = net.population(lif, n=30, name="hidden", init={"v": rv.init.Uniform(0.0, 5 * mV)})
    out = net.population(rv.neurons.LIF(tau_m=10 * ms, v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=0.0,
                                        tau_syn={"exc": 5 * ms}), n=5, name="out")
    net.connect(source, hidden, rv.connect.Bernoulli(0.5), weight=rv.init.Normal(3 * mV, 2 * mV), receptor="exc")
    net.connect(source, hidden, rv.connect.AllToAll(), weight=rv.init.Normal(1 * mV, 2 * mV), receptor="fast",
                delay=2 * ms)
    net.connect(hidden, hidden, rv.connect.Bernoulli(0.2), weight=rv.init.Normal(0.0, 3 * mV), receptor="fast",
                delay=3 * ms)
    net.connect(hidden, out, rv.connect.AllToAll(), weight=rv.init.Normal(3 * mV, 3 * mV))
    return net


def test_forward_reproduces_the_engine_step():
    net = mixed_network()
    x = (np.random.default_rng(0).random((60, 6, 20)) < 0.15).astype(np.float32)
    trace = SpikingModule(net, "input")(torch.from_numpy(x))
    engine = simulate(net, x, "input", backend="numpy", record_v=["hidden", "out"])
    for name in ("hidden", "out"):
        ours = trace.spikes[name].detach().numpy().astype(bool)
        assert ours.sum() > 100 or name == "out" and ours.sum() > 20
        assert np.mean(ours == engine[name]) >= 0.999
        np.testing.assert_allclose(trace.v[name].detach().numpy(), engine[f"{name}.v"], atol=1e-5)


def two_layer(delta: bool, seed: int = 1, n_in: int = 40, n_hidden: int = 32, n_out: int = 4) -> rv.Network:
    net = rv.Network(dt=1 * ms, seed=seed)
    source = net.population(rv.neurons.SpikeSource([], [], n=n_in), name="input")
    tau = {"in": 0.0 if delta else 5 * ms}
    hidden = net.population(rv.neurons.LIF(tau_m=20 * ms, v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=0.0,
                                           tau_syn=tau), n=n_hidden, name="hidden")
    # a readout that never spikes: its voltage is the logit
    out = net.population(rv.neurons.LIF(tau_m=20 * ms, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0,
                                        tau_syn=tau), n=n_out, name="out")
    net.connect(source, hidden, rv.connect.AllToAll(), weight=rv.init.Normal(1 * mV, 3 * mV))
    net.connect(hidden, out, rv.connect.AllToAll(), weight=rv.init.Normal(0.0, 3 * mV))
    return net


@pytest.mark.parametrize("delta", [False, True])
def test_sltt_gradient_points_like_bptt(delta):
    module = SpikingModule(two_layer(delta), "input")
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(30, 8, 40, generator=generator) < 0.1).float()
    y = torch.randint(0, 4, (8,), generator=generator)
    loss, trace = module.loss(x, y, "out")
    loss.backward()
    bptt = [w.grad.clone() for w in module.weights]
    module.zero_grad(set_to_none=True)
    sltt_loss, readout_v = module.sltt_backward(x, y, "out")
    assert sltt_loss == pytest.approx(float(loss.detach()), rel=1e-5)
    torch.testing.assert_close(readout_v, trace.v["out"].detach())
    # SLTT drops the paths through time, the synaptic current's among them, so the input layer's
    # gradient points least like BPTT's: over network seeds 1-8 the cosines were 0.555-0.610 (input)
    # and 0.898-0.931 (readout) with a 5 ms current, 0.687-0.751 and 0.979-0.990 with delta synapses
    bounds = (0.65, 0.95) if delta else (0.5, 0.85)
    for full, spatial, bound in zip(bptt, (w.grad for w in module.weights), bounds, strict=True):
        assert torch.nn.functional.cosine_similarity(full.flatten(), spatial.flatten(), 0) > bound


def test_sltt_k_with_all_steps_is_sltt_and_fewer_steps_differ():
    module = SpikingModule(two_layer(False), "input")
    x = (torch.rand(30, 8, 40, generator=torch.Generator().manual_seed(1)) < 0.1).float()
    y = torch.arange(8) % 4
    module.sltt_backward(x, y, "out")
    full = [w.grad.clone() for w in module.weights]
    module.zero_grad(set_to_none=True)
    module.sltt_backward(x, y, "out", k=30)
    torch.testing.assert_close([w.grad for w in module.weights], full)
    module.zero_grad(set_to_none=True)
    module.sltt_backward(x, y, "out", k=3, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(module.weights[1].grad, full[1])
    with pytest.raises(TrainingError, match="k must be"):
        module.sltt_backward(x, y, "out", k=0)


def digits_task(steps: int = 20):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = latency_encode(digits.data / 16.0, steps)
    return torch.from_numpy(x), torch.from_numpy(digits.target)


def digits_network(seed: int = 0) -> rv.Network:
    net = two_layer(False, seed=seed, n_in=64, n_hidden=48, n_out=10)
    return net


@pytest.mark.parametrize("method", ["bptt", pytest.param("sltt", marks=pytest.mark.slow)])
def test_trained_network_predicts_the_same_in_the_engine(method):
    torch.manual_seed(0)
    x, y = digits_task(steps=15)
    train, test = slice(0, 400), slice(1400, 1797)
    net = digits_network()
    module = SpikingModule(net, "input")
    # SLTT drops the temporal route of the gradient, so it needs more and larger steps here
    optimiser = torch.optim.Adam(module.parameters(), 2e-3 if method == "bptt" else 1e-2)
    for _ in range(3 if method == "bptt" else 20):
        for start in range(train.start, train.stop, 50):
            batch = slice(start, start + 50)
            optimiser.zero_grad()
            if method == "bptt":
                module.loss(x[:, batch], y[batch], "out")[0].backward()
            else:
                module.sltt_backward(x[:, batch], y[batch], "out")
            optimiser.step()
    with torch.no_grad():
        ours = module(x[:, test]).v["out"].mean(0).argmax(1).numpy()
    accuracy = np.mean(ours == y[test].numpy())
    assert accuracy > 0.6
    module.write_back()
    assert not np.allclose(net.projections[1].weights, 0.0)
    engine = simulate(net, x[:, test].numpy(), "input", backend="numpy", record_v=["out"])
    predicted = engine["out.v"].mean(0).argmax(1)
    assert np.mean(predicted == ours) >= 0.99


def test_write_back_stores_trained_weights_per_synapse():
    net = mixed_network()
    module = SpikingModule(net, "input")
    with torch.no_grad():
        module.weights[0].add_(1e-3)
    module.write_back()
    projection = net.projections[0]
    expected = module.weight(0).detach().numpy()[projection.pre_ids, projection.post_ids]
    np.testing.assert_array_equal(projection.weights, expected)


def test_bad_input_raises_named_errors():
    net = two_layer(False)
    with pytest.raises(TrainingError, match="PoissonSource cannot train: its step draws random numbers"):
        other = rv.Network(dt=1 * ms)
        other.population(rv.neurons.PoissonSource(10.0), n=3, name="noise")
        SpikingModule(other, [])
    with pytest.raises(TrainingError, match="'nowhere' is not in the network"):
        SpikingModule(net, "nowhere")
    module = SpikingModule(net, "input")
    with pytest.raises(TrainingError, match=r"shape \(T, B, 40\), got \(5, 2, 3\)"):
        module(torch.zeros(5, 2, 3))
    with pytest.raises(TrainingError, match="readout population 'input'"):
        module.loss(torch.zeros(5, 2, 40), torch.zeros(2, dtype=torch.long), "input")
    with pytest.raises(TrainingError, match="latency_encode"):
        latency_encode(np.array([[2.0]]), 5)
    with pytest.raises(TrainingError, match=r"at least one step and one sample, got \(T, B\) = \(0, 2\)"):
        module(torch.zeros(0, 2, 40))
    assert module(np.zeros((3, 2, 40), dtype=np.float32)).spikes["out"].shape == (3, 2, 4)  # numpy, as simulate


def test_what_training_does_not_model_is_refused():
    drifting = two_layer(False)
    drifting.connect(rv.connect.PoissonInput(rate=5.0, n_inputs=10), drifting["hidden"], weight=1 * mV)
    learning = two_layer(False)
    learning.connect(learning["input"], learning["out"], rv.connect.AllToAll(), weight=1 * mV,
                     plasticity=rv.plasticity.STDP(w_max=2 * mV))
    spikes = np.zeros((3, 1, 40), dtype=np.float32)
    for net, message in ((drifting, "'poisson->hidden:in' draws Poisson input inside 'hidden'"),
                         (learning, "projection 'input->out:in' learns by STDP.*freeze")):
        with pytest.raises(TrainingError, match=f"SpikingModule: {message}"):
            SpikingModule(net, "input")
        with pytest.raises(TrainingError, match=f"simulate: {message}"):
            simulate(net, spikes, "input")
    rv.plasticity.freeze(learning.projections)
    assert SpikingModule(learning, "input")(torch.from_numpy(spikes)).spikes["out"].shape == (3, 1, 4)


@pytest.mark.parametrize(("options", "message"), [
    ({"slope": 0.0}, "slope must be a positive finite number, got 0.0"),
    ({"slope": -1.0}, "slope must be a positive"),
    ({"surrogate_scale": float("nan")}, "surrogate_scale must be a positive finite number, got nan"),
    ({"surrogate_scale": {"hidden": 0.0}}, r"surrogate_scale\['hidden'\] must be a positive"),
    ({"surrogate_scale": {"hiden": 1.0}}, r"'hiden' is not a trained population; they are \['hidden', 'out'\]"),
    ({"learn_delays": True, "max_delay": float("inf")}, "a finite time of at least one step"),
    ({"learn_delays": True, "max_delay": "5ms"}, "got '5ms'"),
    ({"learn_delays": True, "max_delay": 1 * ms}, r"'input->hidden:fast': its delays reach 2 steps"),
])
def test_bad_surrogate_and_delay_options_are_named(options, message):
    with pytest.raises(TrainingError, match=message):
        SpikingModule(feed_forward_network(False), "input", **options)


def feed_forward_network(refractory: bool) -> rv.Network:
    """Current and delta receptors, a bias (v_eq != 0), optional refractoriness, no recurrence."""
    net = rv.Network(dt=1 * ms, seed=2)
    source = net.population(rv.neurons.SpikeSource([], [], n=12), name="input")
    lif = rv.neurons.LIF(tau_m=10 * ms, v_rest=0.0, v_th=10 * mV, v_reset=-2 * mV, t_ref=2 * ms if refractory else 0.0,
                         tau_syn={"exc": 5 * ms, "fast": 0.0}, i_bias=1 * mV)
    hidden = net.population(lif, n=6, name="hidden", init={"v": rv.init.Uniform(0.0, 5 * mV)})
    out = net.population(rv.neurons.LIF(tau_m=10 * ms, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0,
                                        tau_syn={"exc": 5 * ms, "fast": 0.0}), n=3, name="out")
    net.connect(source, hidden, rv.connect.AllToAll(), weight=rv.init.Normal(4 * mV, 3 * mV), receptor="exc")
    net.connect(source, hidden, rv.connect.Bernoulli(0.5), weight=rv.init.Normal(2 * mV, 3 * mV), receptor="fast",
                delay=2 * ms)
    net.connect(hidden, out, rv.connect.AllToAll(), weight=rv.init.Normal(3 * mV, 3 * mV), receptor="exc")
    net.connect(hidden, out, rv.connect.AllToAll(), weight=rv.init.Normal(3 * mV, 3 * mV), receptor="fast")
    return net


@pytest.mark.parametrize("refractory", [False, True])
def test_fused_recurrence_gradcheck(refractory):
    """The hand-written backward of LIFRecurrence against finite differences (float64).

    Through the voltages with the reset detached, the surrogate is not involved and the
    gradient is exact away from threshold crossings, so gradcheck applies.
    """
    from ranvier.train.recurrence import LIFRecurrence

    module = SpikingModule(feed_forward_network(refractory), "input").double()
    layer = module.layer_constants("hidden")
    generator = torch.Generator().manual_seed(3)
    steps, batch = 12, 2
    arriving = [(torch.rand(steps, batch, 6, generator=generator, dtype=torch.float64) * 8e-3).requires_grad_()
                for _ in range(2)]
    spikes, _ = LIFRecurrence.apply(layer, steps, batch, *arriving)
    assert spikes.sum() > 3
    assert torch.autograd.gradcheck(lambda *a: LIFRecurrence.apply(layer, steps, batch, *a)[1], arriving)


@pytest.mark.parametrize("refractory", [False, True])
@pytest.mark.parametrize("detach_reset", [True, False])
def test_fused_bptt_equals_unrolled_autograd(refractory, detach_reset):
    """LIFRecurrence gives the unrolled autograd loop's spikes, voltages and weight gradients."""
    module = SpikingModule(feed_forward_network(refractory), "input", detach_reset=detach_reset).double()
    generator = torch.Generator().manual_seed(4)
    x = (torch.rand(40, 5, 12, generator=generator) < 0.3).double()
    y = torch.randint(0, 3, (5,), generator=generator)
    results = []
    for fused in (True, False):
        module._fused = fused
        module.zero_grad(set_to_none=True)
        loss, trace = module.loss(x, y, "out")
        (loss + trace.spikes["hidden"].sum() * 1e-3).backward()
        results.append((trace, [w.grad.clone() for w in module.weights]))
    (fused_trace, fused_grads), (unrolled_trace, unrolled_grads) = results
    assert fused_trace.spikes["hidden"].sum() > 20
    for name in ("hidden", "out"):
        torch.testing.assert_close(fused_trace.spikes[name], unrolled_trace.spikes[name], rtol=0, atol=0)
        torch.testing.assert_close(fused_trace.v[name], unrolled_trace.v[name], rtol=1e-12, atol=1e-15)
    for fused, unrolled in zip(fused_grads, unrolled_grads, strict=True):
        assert unrolled.abs().max() > 0
        torch.testing.assert_close(fused, unrolled, rtol=1e-10, atol=1e-14)
