"""Learned delays by the shift method: the engine's network forward, a smoothed gradient for the delays."""

import numba
import numpy as np
import pytest
import torch

import ranvier as rv
from ranvier.errors import TrainingError
from ranvier.train import SpikingModule, simulate
from ranvier.train.delays import delayed_projection, gradient_window, rounded, shifted_projection
from ranvier.units import ms, mV

MAX_DELAY = 6


def problem(seed=0, steps=14, batch=3, n_pre=5, n_post=4, density=0.3, sigma=1.7):
    rng = np.random.default_rng(seed)
    pre = torch.from_numpy((rng.random((steps, batch, n_pre)) < density).astype(np.float64))
    weight = torch.from_numpy(rng.normal(size=(n_pre, n_post)))
    delay = torch.from_numpy(rng.uniform(0.5, MAX_DELAY + 0.5, (n_pre, n_post)))  # some clamped at both ends
    grad = torch.from_numpy(rng.normal(size=(steps, batch, n_post)))
    return pre, weight, delay, grad, sigma


def by_synapse(pre, weight, delay, grad, sigma):
    """The arrivals and the three gradients of ``shifted_projection``'s docstring, synapse by synapse."""
    s, w, g = pre.numpy(), weight.numpy(), grad.numpy()
    steps, batch, n_pre = s.shape
    position = np.clip(delay.numpy(), 1, MAX_DELAY)
    shift = np.rint(position).astype(int)
    window = gradient_window(sigma, MAX_DELAY)
    reach = (window.size - 1) // 2

    def psi(t, b, j):
        return sum(window[lag] * g[t + lag - reach, b, j] for lag in range(window.size)
                   if 0 <= t + lag - reach < steps)

    arrivals, grad_pre = np.zeros(g.shape), np.zeros(s.shape)
    grad_weight, grad_delay = np.zeros(w.shape), np.zeros(w.shape)
    for i in range(n_pre):
        for j in range(w.shape[1]):
            for m in range(steps):
                for b in range(batch):
                    t = m + shift[i, j]
                    if t < steps:
                        arrivals[t, b, j] += s[m, b, i] * w[i, j]
                        grad_weight[i, j] += s[m, b, i] * g[t, b, j]
                        grad_pre[m, b, i] += w[i, j] * g[t, b, j]
                    grad_delay[i, j] += w[i, j] * s[m, b, i] * psi(m + shift[i, j], b, j)
    return arrivals, grad_pre, grad_weight, grad_delay


def shifted_with_gradients(pre, weight, delay, grad, sigma):
    pre, weight, delay = (t.clone().requires_grad_() for t in (pre, weight, delay))
    arrivals = shifted_projection(pre, weight, delay, sigma, MAX_DELAY)
    (arrivals * grad).sum().backward()
    return arrivals.detach(), pre.grad, weight.grad, delay.grad


def test_forward_and_gradients_follow_the_equations_synapse_by_synapse():
    inputs = problem()
    expected = by_synapse(*inputs)
    got = shifted_with_gradients(*inputs)
    for name, ours, theirs in zip(("arrivals", "pre", "weight", "delay"), got, expected, strict=True):
        # float64 sums in another order than the loops above
        assert np.allclose(ours.numpy(), theirs, rtol=1e-12, atol=1e-12), name
    assert np.abs(expected[3]).max() > 0.1


def test_forward_is_the_rounded_fixed_delay_network_and_sigma_zero_freezes_the_delays():
    pre, weight, delay, grad, _ = problem(seed=1)
    arrivals, _, grad_weight, grad_delay = shifted_with_gradients(pre, weight, delay, grad, 0.0)
    # DCLS at sigma = 0 is each synapse at its rounded delay, with the same weight gradient
    w = weight.clone().requires_grad_()
    reference = delayed_projection(pre, w, delay, 0.0, MAX_DELAY, sparse=False)
    (reference * grad).sum().backward()
    assert torch.allclose(arrivals, reference, rtol=1e-12, atol=1e-12)
    assert torch.allclose(grad_weight, w.grad, rtol=1e-12, atol=1e-12)
    assert torch.count_nonzero(grad_delay) == 0
    assert np.array_equal(rounded(delay, MAX_DELAY), np.rint(np.clip(delay.numpy(), 1, MAX_DELAY)))


def test_results_repeat_bit_for_bit_at_any_thread_count():
    pre, weight, delay, grad, sigma = problem(seed=2, steps=30, batch=11, n_pre=20, n_post=9, density=0.1)
    pre, weight, delay, grad = (t.float() for t in (pre, weight, delay, grad))
    threads = numba.get_num_threads()
    runs = []
    try:
        for count in sorted({1, threads}):
            numba.set_num_threads(count)
            runs.append(shifted_with_gradients(pre, weight, delay, grad, sigma))
    finally:
        numba.set_num_threads(threads)
    runs.append(shifted_with_gradients(pre, weight, delay, grad, sigma))
    for run in runs[1:]:
        for ours, theirs in zip(run, runs[0], strict=True):
            assert torch.equal(ours, theirs)


def test_a_delay_moves_to_where_its_spike_is_wanted():
    pre = torch.zeros(30, 1, 1, dtype=torch.float64)
    pre[5, 0, 0] = 1.0
    target = torch.zeros(30, 1, 1, dtype=torch.float64)
    target[5 + 14, 0, 0] = 1.0  # the spike should arrive 14 steps later
    weight = torch.ones(1, 1, dtype=torch.float64)
    delay = torch.full((1, 1), 6.0, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([delay], lr=0.5)
    for _ in range(60):
        optimiser.zero_grad()
        loss = (shifted_projection(pre, weight, delay, 4.0, 20) - target).square().sum()
        loss.backward()
        optimiser.step()
    assert rounded(delay, 20)[0, 0] == 14
    assert loss.item() == 0.0


def test_gradient_window_is_the_normalised_gaussian_derivative():
    window = gradient_window(2.0, 10)
    u = np.arange(-6, 7)
    gaussian = np.exp(-u ** 2 / 8.0)
    assert np.allclose(window, u / 4.0 * gaussian / gaussian.sum())
    assert gradient_window(5.0, 3).size == 7  # no wider than the longest delay
    assert not gradient_window(0.0, 3).any()


def test_bad_input_is_named():
    pre, weight, delay, _, _ = problem()
    with pytest.raises(TrainingError, match="sigma"):
        shifted_projection(pre, weight, delay, -1.0, MAX_DELAY)
    with pytest.raises(TrainingError, match=r"mask must be \(5, 4\)"):
        shifted_projection(pre, weight, delay, 1.0, MAX_DELAY, mask=torch.ones(4, 5))
    with pytest.raises(TrainingError, match="both be"):
        shifted_projection(pre, weight, delay[:, :2], 1.0, MAX_DELAY)
    net = rv.Network(dt=1 * ms)
    source = net.population(rv.neurons.SpikeSource([], [], n=2), name="input")
    cells = net.population(rv.neurons.LIF(), n=2, name="cells")
    net.connect(source, cells, rv.connect.AllToAll(), weight=1 * mV, receptor="exc")
    with pytest.raises(TrainingError, match="'slide'"):
        SpikingModule(net, "input", learn_delays=True, max_delay=5 * ms, delay_method="slide")


def test_a_module_trained_by_the_shift_method_is_the_engine_network_at_every_step():
    rng = np.random.default_rng(4)
    x = torch.from_numpy((rng.random((40, 16, 6)) < 0.1).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, 16))
    net = rv.Network(dt=1 * ms, seed=3)
    source = net.population(rv.neurons.SpikeSource([], [], n=6), name="input")
    cells = net.population(rv.neurons.LIF(tau_m=3 * ms, v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=0.0,
                                          tau_syn={"in": 0.0}), n=8, name="hidden")
    out = net.population(rv.neurons.LIF(tau_m=20 * ms, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0,
                                        tau_syn={"in": 5 * ms}), n=3, name="out")
    net.connect(source, cells, rv.connect.AllToAll(), weight=rv.init.Normal(6 * mV, 2 * mV),
                delay=rv.init.Uniform(1 * ms, 10 * ms))
    net.connect(cells, out, rv.connect.AllToAll(), weight=rv.init.Normal(0.0, 20 * mV))
    before = net.projections[0].delay_steps.copy()
    module = SpikingModule(net, "input", learn_delays=True, max_delay=10 * ms, delay_method="shift")
    optimiser = torch.optim.Adam([{"params": module.weights.parameters(), "lr": 5e-2},
                                  {"params": module.delays.parameters(), "lr": 1.0}])
    for _ in range(5):
        optimiser.zero_grad()
        loss, _ = module.loss(x, y, "out")
        loss.backward()
        optimiser.step()
        module.clamp_delays()
    assert module.sigma == 5.0  # still wide: the forward pass is the rounded network at any sigma
    with torch.no_grad():
        trace = module(x)
    module.write_back()
    assert not np.array_equal(net.projections[0].delay_steps, before)
    engine = simulate(net, x.numpy(), "input", record_v=["out"])
    assert trace.spikes["hidden"].sum() > 0
    assert np.array_equal(engine["hidden"], trace.spikes["hidden"].numpy().astype(bool))
    assert np.allclose(engine["out.v"], trace.v["out"].numpy(), rtol=1e-5, atol=1e-7)
