"""Poisson drive inside the target (``connect(PoissonInput(rate, n_inputs), target, ...)``)."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.engine.model import poisson_count, uniform01
from ranvier.neurons import LIF
from ranvier.units import ms, mV

RECEPTORS = {"e": 5e-3, "i": 10e-3}


def build(precision="single", seed=4):
    """Two LIF populations, three drives (two receptors) and a projection with per-synapse delays."""
    net = rv.Network(dt=1e-4, seed=seed, precision=precision)
    a = net.population(LIF(tau_syn=RECEPTORS), 120, name="a")
    b = net.population(LIF(tau_syn=RECEPTORS), 80, name="b")
    net.connect(rv.connect.PoissonInput(8.0, 800), a, weight=0.004, receptor="e")
    net.connect(rv.connect.PoissonInput(5.0, 400), a, weight=-0.003, receptor="i")
    net.connect(rv.connect.PoissonInput(10.0, 900), b, weight=0.004, receptor="e")
    net.connect(a, b, rv.connect.FixedInDegree(15), weight=0.002, delay=rv.init.Uniform(1e-4, 2e-3), receptor="e")
    return net, net.record(a, "spikes"), net.record(b, "spikes")


def outcome(net, monitors):
    return ([m.ids for m in monitors] + [m.times for m in monitors] + [net["a"].state, net["b"].state],
            dict(net.stats.synaptic_events_by_projection))


@pytest.mark.parametrize("precision", ["single", "double"])
def test_numpy_and_numba_draw_the_same_input(precision):
    results = []
    for backend in ("numpy", "numba"):
        net, *monitors = build(precision)
        net.run(0.05, backend=backend)
        results.append(outcome(net, monitors))
    (arrays_numpy, events_numpy), (arrays_numba, events_numba) = results
    for x, y in zip(arrays_numpy, arrays_numba, strict=True):
        np.testing.assert_array_equal(x, y)
    assert events_numpy == events_numba
    assert len(arrays_numpy[0]) > 0 and len(arrays_numpy[1]) > 0  # the drive makes both fire


def test_counts_are_poisson_with_the_stated_mean():
    expected = 8.0 * 1600 * 1e-4  # rate * n_inputs * dt = 1.28 per step
    with np.errstate(over="ignore"):  # the counter-based hash wraps around on purpose
        u = uniform01(np.uint64(12345), 7, np.arange(200_000))
    counts = np.asarray(poisson_count(u, expected, np.exp(-expected)))
    standard_error = np.sqrt(expected / len(counts))
    assert abs(counts.mean() - expected) < 5 * standard_error
    assert counts.var() == pytest.approx(expected, rel=0.03)  # Poisson: variance = mean
    assert np.mean(counts == 0) == pytest.approx(np.exp(-expected), abs=0.005)


@pytest.mark.parametrize("expected", [0.0, 1e-3, 1.28, 2.32, 7.5, 40.0, 500.0])
def test_table_counts_equal_the_summed_inverse_transform(expected):
    """The numba table lookup gives ``poisson_count``'s count for the bits of every ``u``, at the CDF's steps too."""
    from ranvier.engine.backends.numba_kernels import drawn_count
    from ranvier.engine.model import bits_to_uniform01, random_bits
    from ranvier.engine.poisson_input import GUIDE_ENTRIES, count_tables

    p_zero = np.exp(-expected)
    cdf, guide = count_tables(np.array([[3.0, np.exp(-3.0)], [expected, p_zero]]))
    sums = cdf[1][cdf[1] < 2.0]
    # the sum's own steps, a float64 either side of each, and the guide's boundaries
    bounds = np.arange(GUIDE_ENTRIES + 1) / GUIDE_ENTRIES
    u = np.concatenate([sums, np.nextafter(sums, 0.0), np.nextafter(sums, 1.0), bounds, np.nextafter(bounds, 0.0)])
    u = u[(u >= 0.0) & (u < 1.0)]
    # the bits of the uniform number at or below each u (below where u is finer than 2^-53), with
    # random low bits, which the draw must ignore; then draws of the generator itself
    with np.errstate(over="ignore"):
        low_bits = random_bits(np.uint64(5), 1, np.arange(u.size)) & np.uint64(0x7FF)
        bits = np.concatenate([(np.floor(u * 2.0 ** 53).astype(np.uint64) << np.uint64(11)) | low_bits,
                               random_bits(np.uint64(99), 3, np.arange(20_000))])
    reference = np.asarray(poisson_count(bits_to_uniform01(bits), expected, p_zero))
    looked_up = np.array([drawn_count(b, cdf, guide, 1) for b in bits])
    np.testing.assert_array_equal(looked_up, reference)
    assert reference.max() > expected if expected else not reference.any()  # the draws reach past the mean
    assert np.mean(guide[1] < 0) < 0.04  # almost every cell gives its count without a comparison


def test_stats_count_each_drawn_input_spike_as_a_synaptic_event():
    net = rv.Network(dt=1e-4, seed=2)
    # a threshold out of reach: the drive's events do not depend on the activity
    target = net.population(LIF(v_th=1.0, tau_syn={"syn": 5e-3}), 500, name="t")
    drive = net.connect(rv.connect.PoissonInput(8.0, 1000), target, weight=1e-4)
    assert drive.name == "poisson->t:syn" and net.poisson_inputs == [drive] and len(drive) == 500_000
    net.run(0.1)
    events = net.stats.synaptic_events_by_projection[drive.name]
    mean = 8.0 * 1000 * 500 * 0.1  # input spikes per target, times targets, over 0.1 s
    assert abs(events - mean) < 5 * np.sqrt(mean)
    assert net.stats.spikes == 0 and not net.projections
    counts = rv.hardware.count(net)
    assert counts.populations[drive.name].is_input and counts.populations[drive.name].spikes == events
    assert counts.projections[drive.name].events == events and counts.synaptic_events == events
    report = rv.hardware.estimate(net, target="loihi2")
    assert report.counts.synaptic_events == events


def test_drive_adds_count_times_weight_in_the_step_it_is_drawn():
    """After one step from rest the current is the drawn count times the weight times the arrival constant."""
    net = rv.Network(dt=1e-4, seed=5)
    target = net.population(LIF(v_th=1.0, tau_syn={"syn": 5e-3}), 400, name="t")
    net.connect(rv.connect.PoissonInput(100.0, 100), target, weight=1e-3)
    net.run(1e-4, backend="numpy")
    lowered = net._simulation.lowered.populations[0]
    expected, p_zero = lowered.drive_params[0]
    with np.errstate(over="ignore"):
        u = uniform01(lowered.drive_keys[0], 0, np.arange(400))
    counts = np.asarray(poisson_count(u, expected, p_zero))
    arrival_to_current = lowered.consts[5 + 3, 0]
    np.testing.assert_array_equal(target.get("I_syn"),
                                  (counts.astype(np.float32) * np.float32(1e-3) * arrival_to_current).astype(float))
    assert net.stats.synaptic_events == counts.sum() > 0


def test_save_and_load_continue_with_the_same_draws(tmp_path):
    straight, *monitors = build()
    straight.run(0.04)
    first, *_ = build()
    first.run(0.02)
    first.save(tmp_path / "half.h5")
    loaded = rv.load(tmp_path / "half.h5")
    assert [(d.name, d.rate, d.n_inputs, float(d.weight)) for d in loaded.poisson_inputs] == \
        [(d.name, d.rate, d.n_inputs, float(d.weight)) for d in first.poisson_inputs]
    loaded.run(0.02)
    np.testing.assert_array_equal(loaded["a"].state, straight["a"].state)
    np.testing.assert_array_equal(loaded["b"].state, straight["b"].state)
    assert loaded.stats.synaptic_events_by_projection == straight.stats.synaptic_events_by_projection


def test_declaration_errors_say_what_is_wrong():
    net = rv.Network(seed=1)
    target = net.population(LIF(tau_syn=RECEPTORS), 10, name="t")
    source = rv.connect.PoissonInput(8.0, 100)
    with pytest.raises(rv.ProjectionError, match="no connection rule"):
        net.connect(source, target, rv.connect.OneToOne(), weight=1e-3, receptor="e")
    with pytest.raises(rv.ProjectionError, match="no delay"):
        net.connect(source, target, weight=1e-3, delay=1e-3, receptor="e")
    with pytest.raises(rv.ProjectionError, match="one number"):
        net.connect(source, target, weight=np.ones(10), receptor="e")
    with pytest.raises(rv.ProjectionError, match="which receptor"):
        net.connect(source, target, weight=1e-3)
    with pytest.raises(rv.ProjectionError, match="n_inputs"):
        rv.connect.PoissonInput(8.0, 0)
    with pytest.raises(rv.ProjectionError, match="rate"):
        rv.connect.PoissonInput(-1.0, 10)
    with pytest.raises(rv.ProjectionError, match="at most"):
        net.connect(rv.connect.PoissonInput(1000.0, 10_000), target, weight=1e-3, receptor="e")
    with pytest.raises(rv.ProjectionError, match="rule is required"):
        net.connect(target, target, weight=1e-3, receptor="e")
    assert not net.poisson_inputs


@pytest.mark.slow
def test_cuda_simulator_draws_the_same_input(on_cuda_simulator):
    result = on_cuda_simulator("""
import json, sys
import numpy as np
sys.path.insert(0, TESTS)
from test_poisson_input import build
out = {}
for backend in ("numpy", "cuda"):
    net, ma, mb = build()
    net.run(0.01, backend=backend)
    out[backend] = [ma.ids.tolist(), mb.ids.tolist(), net["a"].state.tolist(), net["b"].state.tolist(),
                    net.stats.synaptic_events_by_projection]
print(json.dumps({"same": out["numpy"] == out["cuda"], "events": out["cuda"][4]}))
""")
    assert result["same"], result
    assert result["events"]["poisson->a:e"] > 0


def test_a_population_large_enough_to_update_on_all_threads_takes_its_drive_like_numpy():
    """20 000 neurons update in a parallel loop whose drive event count is a reduction."""
    from ranvier.engine.backends.numba_backend import PARALLEL_MIN_NEURONS

    counts, states = [], []
    for backend in ("numpy", "numba"):
        net = rv.Network(dt=0.1 * ms, seed=1)
        cells = net.population(rv.neurons.LIF(tau_syn={"exc": 5 * ms}), PARALLEL_MIN_NEURONS, name="cells")
        net.connect(rv.connect.PoissonInput(8.0, 1000), cells, weight=0.1 * mV, receptor="exc")
        net.run(1 * ms, backend=backend)
        counts.append(dict(net.stats.synaptic_events_by_projection))
        states.append(cells.state.copy())
    assert counts[0] == counts[1] and sum(counts[0].values()) > 0
    assert np.array_equal(states[0], states[1])


def test_two_drives_onto_one_population_in_one_call_take_their_own_names():
    net = rv.Network(dt=0.1 * ms, seed=1)
    cells = net.population(rv.neurons.LIF(tau_syn={"syn": 0.5 * ms}), 4, name="cells")
    drives = net.connect(rv.connect.PoissonInput(rate=5.0, n_inputs=10), [cells, "cells"], weight=1e-4)
    assert [drive.name for drive in drives] == ["poisson->cells:syn", "poisson->cells:syn#2"]
