"""ELM neuron: one definition in numpy and torch, and a long-horizon task an equal-size LIF network fails."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("snntorch")

import ranvier as rv  # noqa: E402
from ranvier.errors import InputError  # noqa: E402
from ranvier.neurons.elm import elm_sequence, elm_step  # noqa: E402
from ranvier.train import to_torch  # noqa: E402
from ranvier.train.elm import RecurrentLIF, accuracy, fit, parameter_count  # noqa: E402
from ranvier.train.tasks import delayed_cue_recall  # noqa: E402


@pytest.fixture
def cue_task():
    return delayed_cue_recall(256, steps=100, seed=0), delayed_cue_recall(256, steps=100, seed=1)


def test_numpy_and_torch_run_the_same_neuron():
    model = rv.neurons.ELM(6, 3, n_memory=10, mlp_layers=2, seed=0)
    x = np.random.default_rng(0).random((4, 30, 6)).astype(np.float32)
    expected, state = model.forward(x, dt=0.5)
    module = to_torch(model)
    module.dt = 0.5
    outputs, torch_state = module(torch.tensor(x))
    np.testing.assert_allclose(outputs.detach().numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(torch_state.detach().numpy(), state, atol=1e-5)
    single, _ = model.forward(x[1], dt=0.5)
    np.testing.assert_allclose(single, expected[1], atol=1e-12)


def test_memory_decays_with_its_own_timescale():
    # with the MLP silenced, each memory unit decays as kappa_m = exp(-dt / tau_m) per step
    model = rv.neurons.ELM(2, 1, n_memory=4, tau_m_range=(2.0, 200.0), seed=0)
    weights = model.weights
    state = np.zeros((1, 6))
    state[0, 2:] = 1.0
    silent = type(weights)(w_s=weights.w_s, tau_s=weights.tau_s, tau_m=weights.tau_m,
                           mlp=tuple((w * 0, b * 0) for w, b in weights.mlp), w_y=weights.w_y, b_y=weights.b_y,
                           lam=weights.lam)
    _, state = elm_step(np, silent, np.zeros((1, 2)), state, 3.0)
    np.testing.assert_allclose(state[0, 2:], np.exp(-3.0 / np.geomspace(2.0, 200.0, 4)), rtol=1e-6)


def test_synaptic_traces_follow_the_input():
    model = rv.neurons.ELM(3, 1, n_memory=2, tau_s=4.0, w_s=0.5, seed=0)
    x = np.zeros((1, 5, 3))
    x[0, 0, 1] = 1.0
    _, state = elm_sequence(np, model.weights, x, np.zeros((1, 5)))
    np.testing.assert_allclose(state[0, :3], [0.0, 0.5 * np.exp(-4 / 4.0), 0.0], rtol=1e-6)


def test_gradients_reach_every_trained_parameter(cue_task):
    (x, y), _ = cue_task
    module = to_torch(rv.neurons.ELM(8, 2, n_memory=8, seed=0))
    losses = fit(module, x[:64], y[:64], iterations=2)
    assert all(np.isfinite(losses))
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_bad_input_and_parameters_raise_named_errors():
    model = rv.neurons.ELM(4, 2, n_memory=3, seed=0)
    with pytest.raises(InputError, match=r"ELM\(n_in=4.*\(2, 5, 3\)"):
        model.forward(np.zeros((2, 5, 3)))
    with pytest.raises(InputError, match="NaN"):
        model.forward(np.full((5, 4), np.inf))
    with pytest.raises(InputError, match="ELMModule.*NaN"):
        to_torch(model)(torch.full((1, 5, 4), float("nan")))
    with pytest.raises(rv.ModelError, match="n_memory.*0"):
        rv.neurons.ELM(4, 2, n_memory=0)
    with pytest.raises(rv.ModelError, match="tau_m_range"):
        rv.neurons.ELM(4, 2, tau_m_range=(10.0, 1.0))
    with pytest.raises(InputError, match="channels"):
        delayed_cue_recall(4, channels=3)


def test_cue_task_shows_one_cue_at_the_start():
    spikes, labels = delayed_cue_recall(400, steps=60, channels=8, cue_steps=10, noise_probability=0.02, seed=3)
    assert spikes.shape == (400, 60, 8) and set(np.unique(spikes)) == {0.0, 1.0}
    cue_counts = spikes[:, :10].reshape(400, 10, 2, 4).sum(axis=(1, 3))
    assert np.all(cue_counts.argmax(1) == labels)
    assert 0.35 < labels.mean() < 0.65
    assert spikes[:, 10:].mean() == pytest.approx(0.02, abs=0.003)


@pytest.mark.slow
def test_elm_recalls_a_cue_across_a_long_delay_where_lif_does_not(cue_task):
    (x, y), (x_test, y_test) = cue_task
    torch.manual_seed(0)
    elm = to_torch(rv.neurons.ELM(8, 2, n_memory=8, seed=0))
    lif = RecurrentLIF(8, 16, 2)
    assert abs(parameter_count(elm) - parameter_count(lif)) <= 0.05 * parameter_count(lif)
    fit(elm, x, y, iterations=30)
    fit(lif, x, y, iterations=30)
    assert accuracy(elm, x_test, y_test) > 0.9
    assert accuracy(lif, x_test, y_test) < 0.7
