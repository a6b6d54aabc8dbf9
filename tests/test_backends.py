"""Every backend gives the numpy reference's spikes, to the spike, on the same seed."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.units import ms


def _spikes(build, backend, duration):
    net = build()
    monitors = {name: net.record(population, "spikes") for name, population in net.populations.items()}
    net.run(duration, backend=backend)
    return {name: (m.steps, m.ids) for name, m in monitors.items()}, net


def _ring_of_populations(count: int = 6) -> rv.Network:
    """Populations in a ring, each driven by a Poisson source and driving the next: more projections
    than the numba backend passes as tuples, so its delivery loop reads typed lists."""
    net = rv.Network(seed=14)
    drive = net.population(rv.neurons.PoissonSource(rate=400.0), n=40, name="drive")
    cells = [net.population(rv.neurons.LIF(), n=40, name=f"p{i}") for i in range(count)]
    for i, population in enumerate(cells):
        net.connect(drive, population, rv.connect.Bernoulli(0.3), weight=4e-3, delay=0.5 * ms, receptor="exc")
        net.connect(population, cells[(i + 1) % count], rv.connect.Bernoulli(0.2), weight=2e-3, delay=1 * ms,
                    receptor="exc")
    return net


NETWORKS = {
    "cuba": lambda: rv.networks.cuba(n=800, seed=11),
    "twelve-projections": _ring_of_populations,
    "cuba-heterogeneous-delays": lambda: rv.networks.cuba(n=800, seed=12, delay=rv.init.Uniform(0.1 * ms, 3 * ms)),
    "brunel-ai": lambda: rv.networks.brunel(n=1000, g=5.0, eta=2.0, seed=13),
}


@pytest.mark.parametrize("name", NETWORKS)
def test_numba_matches_numpy_reference(name):
    reference, reference_net = _spikes(NETWORKS[name], "numpy", 0.1)
    compiled, compiled_net = _spikes(NETWORKS[name], "numba", 0.1)
    assert sum(len(ids) for _, ids in reference.values()) > 100
    for population in reference:
        np.testing.assert_array_equal(compiled[population][0], reference[population][0])
        np.testing.assert_array_equal(compiled[population][1], reference[population][1])
    assert compiled_net.stats.synaptic_events == reference_net.stats.synaptic_events
    for population in reference_net.populations.values():
        np.testing.assert_array_equal(compiled_net[population.name].state, population.state)


def _poisson_counts(rate: float, n: int, duration: float, seed: int) -> np.ndarray:
    """Spike count of every (step, source) pair of ``n`` Poisson sources run on numba."""
    net = rv.Network(dt=0.1 * ms, seed=seed)
    spikes = net.record(net.population(rv.neurons.PoissonSource(rate=rate), n, name="drive"), "spikes")
    net.run(duration, backend="numba")
    return np.bincount(spikes.steps * n + spikes.ids, minlength=round(duration / (0.1 * ms)) * n)


def test_poisson_counts_have_poisson_statistics():
    """Counts per step are Poisson(rate * dt), also for rates above 1 / dt."""
    per_step = _poisson_counts(25_000.0, 200, 0.2, seed=5)
    assert per_step.mean() == pytest.approx(2.5, rel=0.01)
    assert per_step.var() == pytest.approx(2.5, rel=0.03)
    assert per_step.max() >= 8


def test_large_population_updated_in_parallel_matches_numpy():
    from ranvier.engine.backends.numba_backend import PARALLEL_MIN_NEURONS

    build = lambda: rv.networks.cuba(n=PARALLEL_MIN_NEURONS + 5000, seed=21, mean_in_degree=20)  # noqa: E731
    reference, _ = _spikes(build, "numpy", 0.01)
    compiled, _ = _spikes(build, "numba", 0.01)
    assert len(reference["exc"][1]) > 100
    for population in reference:
        np.testing.assert_array_equal(compiled[population][1], reference[population][1])
        np.testing.assert_array_equal(compiled[population][0], reference[population][0])


def test_compiled_kernel_is_cached_on_disk(tmp_path):
    """A second process loads the compiled kernel from the cache instead of compiling it."""
    import subprocess
    import sys

    script = "import ranvier as rv; net = rv.networks.cuba(n=300, seed=1); net.run(0.01); print(net.stats.spikes)"
    environment = {**__import__("os").environ, "RANVIER_CACHE_DIR": str(tmp_path)}
    environment.pop("NUMBA_CACHE_DIR", None)  # numba then caches beside the generated source
    first = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    kernels = list((tmp_path / "kernels").glob("ranvier_kernel_*.py"))
    assert len(kernels) == 1
    index_files = list((tmp_path / "kernels" / "__pycache__").glob("*.nbi"))
    assert index_files, "numba wrote no cache index for the generated kernel"
    stamps = {path: path.stat().st_mtime_ns for path in index_files}
    second = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
    assert second.stdout == first.stdout
    assert list((tmp_path / "kernels").glob("ranvier_kernel_*.py")) == kernels
    # numba rewrites an index when it compiles a new version; a cache hit leaves it alone
    assert {path: path.stat().st_mtime_ns for path in index_files} == stamps


def test_poisson_counts_stay_bounded_when_u_is_beyond_the_float32_cdf():
    """The summed CDF stops short of 1 with float32 constants; a u above it must not run away."""
    per_step = _poisson_counts(15_200.0, 2000, 0.5, seed=8)
    assert per_step.max() <= 1.52 + 10 * np.sqrt(1.52) + 12
    assert per_step.mean() == pytest.approx(1.52, rel=0.01)


def test_spike_collection_finds_every_flagged_neuron_and_clears_the_flags():
    from ranvier.engine.backends.numba_kernels import collect_spikes

    flags = np.zeros(48, dtype=np.uint16)  # three blocks of sixteen
    flags[[0, 17, 47]] = [1, 3, 2]
    ids, steps = np.zeros(16, dtype=np.int64), np.zeros(16, dtype=np.int64)
    count = collect_spikes(flags, flags.view(np.uint64), 7, ids, steps, 0)
    assert count == 6
    np.testing.assert_array_equal(ids[:count], [0, 17, 17, 17, 47, 47])
    assert np.all(steps[:count] == 7) and not flags.any()


def test_store_where_writes_only_where_the_condition_holds():
    from numba import njit

    from ranvier.engine.model import store_where

    @njit
    def compiled(array, condition):
        for i in range(array.shape[1]):
            store_where(array, 1, i, condition[i], np.float32(9.0))

    condition = np.array([True, False, True])
    reference = np.arange(6, dtype=np.float32).reshape(2, 3)
    store_where(reference, 1, np.arange(3), condition, np.float32(9.0))
    np.testing.assert_array_equal(reference, [[0, 1, 2], [9, 4, 9]])
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    compiled(array, condition)
    np.testing.assert_array_equal(array, reference)
