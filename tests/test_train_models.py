"""Training any spiking model from its one definition, and per-synapse delays in training."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ranvier as rv  # noqa: E402
from ranvier.neurons.equations.library import IZHIKEVICH  # noqa: E402
from ranvier.train import SpikingModule, simulate  # noqa: E402
from ranvier.units import ms, mV, nA, nS, pF  # noqa: E402

ADEX = """
    dv/dt = (g_L*(E_L - v) + g_L*Delta_T*exp((v - V_T)/Delta_T) - w)/C : volt
    dw/dt = (a*(v - E_L) - w)/tau_w : amp
    C : farad
    g_L : siemens
    E_L : volt
    V_T : volt
    Delta_T : volt
    tau_w : second
    a : siemens
    b : amp
"""


def readout():
    return rv.neurons.LIF(v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0, tau_syn={"in": 5 * ms})


def network(hidden_model, n_in=20, n_hidden=32, init=None, w_in=(5 * mV, 5 * mV), delay=1 * ms):
    net = rv.Network(dt=1 * ms, seed=1)
    source = net.population(rv.neurons.SpikeSource([], [], n=n_in), name="input")
    hidden = net.population(hidden_model, n=n_hidden, name="hidden", init=init)
    out = net.population(readout(), n=2, name="out")
    net.connect(source, hidden, rv.connect.AllToAll(), weight=rv.init.Normal(*w_in), delay=delay)
    net.connect(hidden, out, rv.connect.AllToAll(), weight=rv.init.Normal(0.0, 20 * mV))
    return net


def two_patterns(rng, n, steps=40, channels=20):
    """Class 0 drives the first half of the channels at 30 % per step, class 1 the second half."""
    labels = rng.integers(0, 2, n)
    high, low = np.full(channels // 2, 0.3), np.full(channels // 2, 0.02)
    rates = np.where(labels[:, None] == 0, np.r_[high, low], np.r_[low, high])
    spikes = (rng.random((steps, n, channels)) < rates[None]).astype(np.float32)
    return torch.from_numpy(spikes), torch.from_numpy(labels)


def train(net, iterations=40, scale=20 * mV, learning_rate=2e-3):
    rng = np.random.default_rng(0)
    module = SpikingModule(net, "input", surrogate_scale=scale)
    optimiser = torch.optim.Adam(module.parameters(), learning_rate)
    for _ in range(iterations):
        x, y = two_patterns(rng, 32)
        optimiser.zero_grad()
        loss, _ = module.loss(x, y, "out")
        loss.backward()
        optimiser.step()
    x, y = two_patterns(rng, 64)
    with torch.no_grad():
        trace = module(x)
    predictions = trace.v["out"].mean(0).argmax(1)
    return module, x, trace, float((predictions == y).float().mean()), predictions


def lif_network():
    net = rv.Network(dt=1 * ms, seed=1)
    source = net.population(rv.neurons.SpikeSource([], [], n=40), name="input")
    hidden = net.population(rv.neurons.LIF(v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=2 * ms,
                                           tau_syn={"in": 5 * ms}), n=30, name="hidden")
    out = net.population(readout(), n=5, name="out")
    net.connect(source, hidden, rv.connect.AllToAll(), weight=rv.init.Normal(2 * mV, 3 * mV))
    net.connect(hidden, out, rv.connect.AllToAll(), weight=rv.init.Normal(0.0, 3 * mV))
    return net


def test_the_generic_route_gives_lif_recurrences_loss_and_gradients():
    torch.manual_seed(0)
    x = (torch.rand(50, 8, 40) < 0.1).double()
    y = torch.randint(0, 5, (8,))
    results = []
    for generic in (False, True):
        module = SpikingModule(lif_network(), "input", generic=generic).double()
        loss, trace = module.loss(x, y, "out")
        loss.backward()
        results.append((loss.item(), [w.grad.clone() for w in module.weights], trace.spikes["hidden"]))
    (fused_loss, fused_grads, fused_spikes), (generic_loss, generic_grads, generic_spikes) = results
    assert fused_spikes.sum() > 100 and torch.equal(fused_spikes, generic_spikes)
    assert generic_loss == pytest.approx(fused_loss, rel=1e-12)
    for fused, generic in zip(fused_grads, generic_grads, strict=True):
        assert float((fused - generic).abs().max() / fused.abs().max()) < 1e-6


def izhikevich_network():
    izhikevich = rv.neurons.Equations(IZHIKEVICH, threshold="v >= 30*mV", reset="v = c; u += d", method="euler",
                                      parameters={"a": 0.02 / ms, "b": 0.2 / ms, "c": -65 * mV, "d": 8 * mV / ms,
                                                  "I": 0.0}, receptors={"in": "v"})
    return network(izhikevich, init={"v": -65 * mV, "u": -13 * mV / ms})


def adex_network():
    adex = rv.neurons.Equations(ADEX, threshold="v > V_T + 5*Delta_T", reset="v = E_L; w += b", method="euler",
                                parameters={"C": 281 * pF, "g_L": 30 * nS, "E_L": -70.6 * mV, "V_T": -50.4 * mV,
                                            "Delta_T": 2 * mV, "tau_w": 144 * ms, "a": 4 * nS, "b": 0.0805 * nA},
                                receptors={"in": "v"})
    return network(adex, init={"v": -70.6 * mV}, w_in=(3 * mV, 1.5 * mV))


@pytest.mark.parametrize("make_network", [lif_network, izhikevich_network, adex_network])
def test_the_traced_step_gives_the_step_by_step_loss_and_gradients(make_network):
    """A feed-forward population runs its step traced over all steps with a derived backward
    (ModelStep.sequence); unrolled step by step under autograd it must give the same numbers."""
    results = []
    for traced in (True, False):
        net = make_network()
        x, y = two_patterns(np.random.default_rng(3), 8, steps=80, channels=net["input"].n)
        module = SpikingModule(net, "input", generic=True, surrogate_scale=10 * mV).double()
        module._fused = traced
        loss, trace = module.loss(x, y, "out")
        loss.backward()
        route = type(trace.spikes["hidden"].grad_fn).__name__
        assert (route == "_TracedSequenceBackward") == traced, route
        results.append((loss.item(), [w.grad.clone() for w in module.weights], trace))
    (traced_loss, traced_grads, traced_trace), (loss, grads, trace) = results
    assert trace.spikes["hidden"].sum() > 20
    for name in ("hidden", "out"):
        assert torch.equal(traced_trace.spikes[name], trace.spikes[name])
        assert torch.equal(traced_trace.v[name], trace.v[name])
    assert traced_loss == pytest.approx(loss, rel=1e-12)
    for traced, unrolled in zip(traced_grads, grads, strict=True):
        assert float((traced - unrolled).abs().max() / unrolled.abs().max()) < 1e-9


@pytest.mark.parametrize("make_network", [lif_network, izhikevich_network, adex_network])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_fused_backward_loop_gives_the_torch_ops_gradients(make_network, dtype, monkeypatch):
    """The traced step's Jacobian entries and spike terms, computed in one numba loop
    (ranvier.train.fused), equal the same ops run one by one in torch: bit for bit where the
    backward has no exp (LIF, Izhikevich), to the last bits with AdEx's exp, at 1 and 2 threads."""
    import numba

    from ranvier.train import fused

    def gradients():
        torch.manual_seed(0)
        net = make_network()
        x, y = two_patterns(np.random.default_rng(3), 8, steps=80, channels=net["input"].n)
        module = SpikingModule(net, "input", generic=True, surrogate_scale=10 * mV).to(dtype)
        loss, trace = module.loss(x.to(dtype), y, "out")
        loss.backward()
        assert type(trace.spikes["hidden"].grad_fn).__name__ == "_TracedSequenceBackward"
        return [w.grad.clone() for w in module.weights]

    calls = []
    run = fused.FusedProgram.__call__
    monkeypatch.setattr(fused.FusedProgram, "__call__", lambda self, *a: calls.append(1) or run(self, *a))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one_thread = gradients()
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        in_the_loop = gradients()
    finally:
        numba.set_num_threads(threads)
    assert calls
    monkeypatch.setattr(fused.FusedProgram, "__call__", lambda self, *a: None)  # the torch ops
    by_ops = gradients()
    for a, b, c in zip(one_thread, in_the_loop, by_ops, strict=True):
        assert torch.equal(a, b)
        assert c.abs().max() > 0
        if make_network is adex_network:
            assert float((b - c).abs().max() / c.abs().max()) < (1e-5 if dtype == torch.float32 else 1e-12)
        else:
            assert torch.equal(b, c)


def test_izhikevich_from_equations_trains_and_the_engine_gives_its_spikes():
    net = izhikevich_network()
    module, x, trace, accuracy, predictions = train(net)
    assert accuracy >= 0.9
    module.write_back()
    engine = simulate(net, x.numpy(), "input", record_v=["out"])
    assert np.array_equal(engine["hidden"], trace.spikes["hidden"].numpy().astype(bool))
    assert np.array_equal(engine["out.v"].mean(0).argmax(1), predictions.numpy())


def test_adex_from_equations_trains():
    _, _, trace, accuracy, _ = train(adex_network(), scale=5 * mV)
    assert trace.spikes["hidden"].sum() > 0
    assert accuracy >= 0.85


def test_per_synapse_delays_train_and_match_the_engine():
    net = network(readout_like_hidden := rv.neurons.LIF(v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=0.0,
                                                        tau_syn={"in": 5 * ms}),
                  delay=rv.init.Uniform(1 * ms, 8 * ms))
    assert readout_like_hidden is net["hidden"].model
    delays = net.projections[0].delay_steps
    assert delays.min() < delays.max()
    module, x, trace, accuracy, predictions = train(net, scale=10 * mV)
    assert accuracy >= 0.9
    module.write_back()
    engine = simulate(net, x.numpy(), "input", record_v=["out"])
    assert np.array_equal(engine["hidden"], trace.spikes["hidden"].numpy().astype(bool))


def test_sltt_refuses_what_it_does_not_cover():
    izhikevich = rv.neurons.Equations(IZHIKEVICH, threshold="v >= 30*mV", reset="v = c; u += d", method="euler",
                                      parameters={"a": 0.02 / ms, "b": 0.2 / ms, "c": -65 * mV, "d": 8 * mV / ms,
                                                  "I": 0.0}, receptors={"in": "v"})
    x, y = two_patterns(np.random.default_rng(0), 4)
    with pytest.raises(rv.TrainingError, match="SLTT covers LIF"):
        SpikingModule(network(izhikevich), "input").sltt_backward(x, y, "out")
    delayed = network(readout(), delay=rv.init.Uniform(1 * ms, 8 * ms))
    with pytest.raises(rv.TrainingError, match="per-synapse delays"):
        SpikingModule(delayed, "input").sltt_backward(x, y, "out")


def test_a_model_without_a_step_or_without_v_is_named():
    net = rv.Network(dt=1 * ms)
    net.population(rv.neurons.SpikeSource([], [], n=3), name="input")
    net.population(rv.neurons.Kuramoto(), n=3, name="phases")
    with pytest.raises(rv.TrainingError, match="population 'phases': Kuramoto is a value model"):
        SpikingModule(net, "input")
    net = rv.Network(dt=1 * ms)
    net.population(rv.neurons.SpikeSource([], [], n=3), name="input")
    net.population(rv.neurons.PoissonSource(rate=10.0), n=3, name="noise")
    with pytest.raises(rv.TrainingError, match="'noise': PoissonSource cannot train: its step draws random"):
        SpikingModule(net, "input")
    plain = rv.neurons.Equations("dx/dt = -x/tau : volt\n tau : second", threshold="x > 1*mV", reset="x = 0*mV",
                                 parameters={"tau": 10 * ms}, receptors={"in": "x"})
    module = SpikingModule(network(plain), "input")
    with pytest.raises(rv.TrainingError, match="no state variable 'v'"):
        module.loss(*two_patterns(np.random.default_rng(0), 4), "hidden")


def test_learned_delays_move_and_the_engine_runs_them_after_write_back():
    from ranvier.train import delayed_coincidence, sigma_schedule

    torch.manual_seed(0)
    x, y = delayed_coincidence(96, channels=6, steps=40, classes=3, gap=2, seed=1)
    x, y = torch.from_numpy(x.transpose(1, 0, 2).copy()), torch.from_numpy(y)
    net = rv.Network(dt=1 * ms, seed=3)
    source = net.population(rv.neurons.SpikeSource([], [], n=6), name="input")
    cells = net.population(rv.neurons.LIF(tau_m=3 * ms, v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=0.0,
                                          tau_syn={"in": 0.0}), n=8, name="hidden")
    out = net.population(readout(), n=3, name="out")
    net.connect(source, cells, rv.connect.AllToAll(), weight=rv.init.Normal(4 * mV, 2 * mV),
                delay=rv.init.Uniform(1 * ms, 12 * ms))
    net.connect(cells, out, rv.connect.AllToAll(), weight=rv.init.Normal(0.0, 20 * mV))
    before = net.projections[0].delay_steps.copy()
    module = SpikingModule(net, "input", learn_delays=True, max_delay=12 * ms)
    assert sorted(module.delays) == ["0", "1"]  # both projections are feed-forward
    # DCLS trains the positions with a far larger step than the weights
    optimiser = torch.optim.Adam([{"params": module.weights.parameters(), "lr": 5e-2},
                                  {"params": module.delays.parameters(), "lr": 1.0}])
    for epoch in range(6):
        module.sigma = sigma_schedule(epoch, 6, 12)
        optimiser.zero_grad()
        loss, _ = module.loss(x, y, "out")
        loss.backward()
        optimiser.step()
        module.clamp_delays()
    module.sigma = 0.0
    with torch.no_grad():
        trace = module(x)
    module.write_back()
    after = net.projections[0].delay_steps
    assert after.min() >= 1 and after.max() <= 12 and not np.array_equal(after, before)
    engine = simulate(net, x.numpy(), "input", record_v=["out"])
    assert np.array_equal(engine["hidden"], trace.spikes["hidden"].numpy().astype(bool))
    assert np.array_equal(engine["out.v"].mean(0).argmax(1), trace.v["out"].mean(0).argmax(1).numpy())
