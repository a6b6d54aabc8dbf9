"""Learnable per-synapse delays (DCLS kernels), the delayed-coincidence task, SHD files as spike tensors."""

import numpy as np
import pytest
import tonic
import torch
from shd_fixture import write_shd

from ranvier.datasets.shd import shd_to_spikes
from ranvier.errors import DatasetError, InputError, TrainingError
from ranvier.train.delays import delay_kernel, delayed_projection, gaussian_lags, rounded, sigma_schedule
from ranvier.train.recurrence import project
from ranvier.train.tasks import delayed_coincidence

MAX_DELAY = 4


def fixed_delays(pre: torch.Tensor, weight: torch.Tensor, steps: np.ndarray) -> torch.Tensor:
    """``A[k, :, j] = sum_i pre[k - d_ij, :, i] W_ij``, synapse by synapse."""
    out = torch.zeros(pre.shape[0], pre.shape[1], weight.shape[1], dtype=weight.dtype)
    for i in range(weight.shape[0]):
        for j in range(weight.shape[1]):
            d = int(steps[i, j])
            out[d:, :, j] += pre[:pre.shape[0] - d, :, i] * weight[i, j]
    return out


def tiny(seed=0, steps=10, batch=2, n_pre=4, n_post=3, density=0.1, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    pre = torch.zeros(steps * batch * n_pre, dtype=dtype)
    pre[torch.randperm(pre.numel(), generator=generator)[:int(density * pre.numel())]] = 1
    weight = torch.randn(n_pre, n_post, dtype=dtype, generator=generator)
    delay = 1.2 + (MAX_DELAY - 1.4) * torch.rand(n_pre, n_post, dtype=dtype, generator=generator)
    return pre.reshape(steps, batch, n_pre), weight, delay


# -- the kernel ----------------------------------------------------------------------------------

def test_the_kernel_is_a_normalised_gaussian_over_lags():
    delay = torch.tensor([[1.0, 2.3], [3.7, 4.0]], dtype=torch.float64)
    g = gaussian_lags(delay, 1.5, MAX_DELAY)
    assert g.shape == (2, MAX_DELAY + 1, 2)
    assert torch.allclose(g.sum(1), torch.ones(2, 2, dtype=torch.float64))
    tau = np.arange(MAX_DELAY + 1)
    expected = np.exp(-(tau - 2.3) ** 2 / (2 * 1.5 ** 2))
    assert np.allclose(g[0, :, 1].numpy(), expected / expected.sum())
    weight = torch.tensor([[2.0, -1.0], [0.5, 3.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    kernel = delay_kernel(weight, delay, 1.5, MAX_DELAY, mask)
    assert torch.allclose(kernel.sum(1), weight * mask)


@pytest.mark.parametrize("sparse", [True, False])
def test_gradcheck_weight_and_delay(sparse):
    pre, weight, delay = tiny()
    weight.requires_grad_()
    delay.requires_grad_()

    def f(w, d):
        return delayed_projection(pre, w, d, 1.3, MAX_DELAY, sparse=sparse)

    assert torch.autograd.gradcheck(f, (weight, delay))


def test_gradcheck_in_the_spikes_on_the_dense_path():
    pre, weight, delay = tiny(steps=5, batch=1, n_pre=2, n_post=2)
    pre = pre.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda s, w, d: delayed_projection(s, w, d, 0.8, MAX_DELAY),
                                    (pre, weight.requires_grad_(), delay.requires_grad_()))


@pytest.mark.parametrize("sigma", [0.7, 3.0])
def test_sparse_equals_dense_forward_and_backward(sigma):
    pre, weight, delay = tiny(seed=3, steps=30, batch=5, n_pre=9, n_post=6, density=0.15, dtype=torch.float32)
    mask = (torch.rand(9, 6, generator=torch.Generator().manual_seed(1)) < 0.7).float()
    grad = torch.randn(30, 5, 6, generator=torch.Generator().manual_seed(2))
    results = []
    for sparse in (True, False):
        w, d = weight.clone().requires_grad_(), delay.clone().requires_grad_()
        out = delayed_projection(pre, w, d, sigma, MAX_DELAY, mask, sparse=sparse)
        results.append((out, *torch.autograd.grad((out * grad).sum(), (w, d))))
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_automatic_choice_of_path():
    pre, weight, delay = tiny(density=0.1)
    auto = delayed_projection(pre, weight, delay, 1.0, MAX_DELAY)
    assert auto.grad_fn is None or "Sparse" in type(auto.grad_fn).__name__
    weight.requires_grad_()
    assert "Sparse" in type(delayed_projection(pre, weight, delay, 1.0, MAX_DELAY).grad_fn).__name__
    dense = (pre + 1) / 2  # every entry non-zero
    assert "Sparse" not in type(delayed_projection(dense, weight, delay, 1.0, MAX_DELAY).grad_fn).__name__
    with pytest.raises(TrainingError, match="sparse path"):
        delayed_projection(pre.clone().requires_grad_(), weight, delay, 1.0, MAX_DELAY, sparse=True)


@pytest.mark.parametrize("sigma", [0.0, 0.1, 0.15])
@pytest.mark.parametrize("sparse", [True, False])
def test_small_sigma_at_integer_delays_is_the_fixed_delay_projection(sigma, sparse):
    pre, weight, _ = tiny(seed=4, steps=20, batch=3, n_pre=6, n_post=5, density=0.15, dtype=torch.float32)
    steps = np.random.default_rng(0).integers(1, MAX_DELAY + 1, (6, 5))
    delay = torch.tensor(steps, dtype=torch.float32)
    out = delayed_projection(pre, weight, delay, sigma, MAX_DELAY, sparse=sparse)
    assert torch.allclose(out, fixed_delays(pre, weight, steps), rtol=1e-6, atol=1e-6)
    uniform = delayed_projection(pre, weight, torch.full((6, 5), 3.0), sigma, MAX_DELAY, sparse=sparse)
    assert torch.allclose(uniform, project(pre, weight, 3), rtol=1e-6, atol=1e-6)


def test_written_back_rounded_delays_reproduce_the_sigma_zero_forward_pass():
    pre, weight, delay = tiny(seed=5, steps=20, batch=3, n_pre=6, n_post=5, density=0.15, dtype=torch.float32)
    delay = delay * 1.5 - 0.5  # some below 1 and above MAX_DELAY: clamped
    steps = rounded(delay, MAX_DELAY)
    assert torch.allclose(delayed_projection(pre, weight, delay, 0.0, MAX_DELAY), fixed_delays(pre, weight, steps),
                          rtol=1e-6, atol=1e-6)
    # the Gaussian at DCLS's final widths is not yet one-hot: its neighbours keep exp(-1 / (2 sigma^2))
    g = gaussian_lags(torch.tensor([[2.0]]), 0.5, MAX_DELAY)[0, :, 0]
    assert g[1] / g[2] == pytest.approx(np.exp(-2.0), rel=1e-5)


def test_rounding_and_clipping():
    delay = np.array([[-3.0, 0.4, 0.6, 1.5], [2.5, 3.49, 4.51, 99.0]])
    steps = rounded(delay, MAX_DELAY)
    assert steps.dtype == np.int64
    assert steps.tolist() == [[1, 1, 1, 2], [2, 3, 4, 4]]
    assert rounded(torch.tensor(delay, requires_grad=True), MAX_DELAY).tolist() == steps.tolist()
    with pytest.raises(TrainingError):
        rounded(delay, 0)
    with pytest.raises(TrainingError):
        rounded(np.array([np.nan]), 3)


def test_the_numba_path_is_deterministic():
    pre, weight, delay = tiny(seed=6, steps=40, batch=8, n_pre=30, n_post=16, density=0.05, dtype=torch.float32)
    grad = torch.randn(40, 8, 16, generator=torch.Generator().manual_seed(3))
    runs = []
    for _ in range(3):
        w, d = weight.clone().requires_grad_(), delay.clone().requires_grad_()
        out = delayed_projection(pre, w, d, 2.0, MAX_DELAY, sparse=True)
        runs.append((out, *torch.autograd.grad((out * grad).sum(), (w, d))))
    for run in runs[1:]:
        for a, b in zip(runs[0], run, strict=True):
            assert torch.equal(a, b)


def test_counts_and_float32_and_bad_arguments():
    pre, weight, delay = tiny(dtype=torch.float32)
    counts = pre * 2
    assert torch.allclose(delayed_projection(counts, weight, delay, 1.0, MAX_DELAY),
                          2 * delayed_projection(pre, weight, delay, 1.0, MAX_DELAY))
    with pytest.raises(TrainingError, match="max_delay"):
        delayed_projection(pre, weight, delay, 1.0, 0)
    with pytest.raises(TrainingError, match="sigma"):
        delayed_projection(pre, weight, delay, -1.0, MAX_DELAY)
    with pytest.raises(TrainingError, match="n_pre"):
        delayed_projection(pre, weight.T, delay.T, 1.0, MAX_DELAY)


def test_sigma_schedule():
    assert sigma_schedule(0, 100, 25) == pytest.approx(12.5)
    assert sigma_schedule(25, 100, 25) == pytest.approx(0.5)
    assert sigma_schedule(80, 100, 25) == pytest.approx(0.5)
    assert sigma_schedule(10, 100, 25) == pytest.approx(12.5 * (0.5 / 12.5) ** 0.4)
    assert sigma_schedule(10, 100, start=10.0, end=2.0, method="linear") == pytest.approx(6.8)
    assert sigma_schedule(0, 8, start=4.0, end=1.0, fraction=1.0, method="cosine") == pytest.approx(4.0)
    assert sigma_schedule(4, 8, start=4.0, end=1.0, fraction=1.0, method="cosine") == pytest.approx(2.5)
    values = [sigma_schedule(e, 40, 20) for e in range(40)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    with pytest.raises(TrainingError):
        sigma_schedule(0, 10)
    with pytest.raises(TrainingError):
        sigma_schedule(0, 10, 25, method="step")


# -- the task ------------------------------------------------------------------------------------

def test_delayed_coincidence_classes_differ_only_in_relative_timing():
    spikes, labels = delayed_coincidence(64, channels=6, steps=60, classes=3, gap=4, noise_probability=0.0, seed=1)
    assert spikes.shape == (64, 60, 6) and spikes.dtype == np.float32 and labels.dtype == np.int64
    assert set(labels.tolist()) == {0, 1, 2}
    assert np.all(spikes.sum(axis=1) == 1)  # each channel spikes once in every class
    first = spikes.argmax(axis=1)  # (samples, channels): spike step per channel
    relative = first - first.min(axis=1, keepdims=True)
    motifs = [tuple(relative[labels == c][0]) for c in range(3)]
    for c in range(3):
        assert {tuple(row) for row in relative[labels == c]} == {motifs[c]}  # a fixed motif, random onsets
        assert sorted(motifs[c]) == [0, 4, 8, 12, 16, 20]  # the same offsets, in a class-specific order
    assert len(set(motifs)) == 3
    assert len(set(first.min(axis=1).tolist())) > 5
    # another seed draws new samples of the same motifs
    other, other_labels = delayed_coincidence(16, channels=6, steps=60, classes=3, gap=4, noise_probability=0.0,
                                              seed=2)
    other_first = other.argmax(axis=1)
    for c in set(other_labels.tolist()):
        row = other_first[other_labels == c][0]
        assert tuple(row - row.min()) == motifs[c]


def test_delayed_coincidence_noise_jitter_and_errors():
    spikes, _ = delayed_coincidence(200, channels=10, steps=80, noise_probability=0.05, jitter=1, seed=0)
    assert 0.05 < spikes.mean() < 0.05 + 2 / 80
    with pytest.raises(InputError):
        delayed_coincidence(4, channels=8, gap=20, steps=100)  # the motif does not fit
    with pytest.raises(InputError):
        delayed_coincidence(4, classes=1)
    with pytest.raises(InputError):
        delayed_coincidence(4, channels=2, classes=3)  # two channels give two orders


# -- SHD in its released format, read by tonic -----------------------------------------------------

def test_shd_file_through_tonic_to_spike_tensors(tmp_path):
    # float16-exact times (s): 0, 11/1024 (10742 us: step 11), 0.25 (step 250), 0.5 (step 500)
    times = [np.array([0.0, 11 / 1024, 0.25, 0.25]), np.array([0.5]), np.array([], dtype=np.float64)]
    units = [np.array([3, 699, 0, 0]), np.array([42]), np.array([], dtype=np.int64)]
    write_shd(tmp_path, times, units, labels=[7, 19, 0], speakers=[0, 1, 1])
    dataset = tonic.datasets.SHD(save_to=str(tmp_path), train=True)
    assert len(dataset) == 3 and dataset.sensor_size == (700, 1, 1) and len(dataset.classes) == 20
    events, label = dataset[0]
    assert label == 7 and events["t"].tolist() == [0, 10742, 250000, 250000]

    spikes, labels = shd_to_spikes(dataset, dt=1e-3)
    assert spikes.shape == (501, 3, 700) and spikes.dtype == np.float32
    assert labels.tolist() == [7, 19, 0] and labels.dtype == np.int64
    assert [tuple(e) for e in np.argwhere(spikes)] == [(0, 0, 3), (11, 0, 699), (250, 0, 0), (500, 1, 42)]
    assert spikes[250, 0, 0] == 1  # two events in one step: one spike
    counted, _ = shd_to_spikes(dataset, dt=1e-3, steps=300, indices=[0, 2], counts=True)
    assert counted.shape == (300, 2, 700) and counted[250, 0, 0] == 2 and counted.sum() == 4
    # in the training module's layout, (T, B, 700), and on the engine's step grid
    from ranvier.datasets import from_tonic

    emitted, ids = from_tonic(dataset, index=0).schedule(1e-3, "input")
    engine = np.zeros((300, 700), dtype=np.float32)
    np.add.at(engine, (emitted, ids), 1.0)
    assert np.array_equal(counted[:, 0], engine)
    with pytest.raises(DatasetError):
        shd_to_spikes([(events, 1)], dt=1e-3)  # no sensor size
