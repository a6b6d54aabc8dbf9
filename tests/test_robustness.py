"""Small items of issue 18: named errors instead of raw ones, empty recordings, drawn parameters."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.errors import NIRError, PopulationError, ProjectionError
from ranvier.units import ms, mV


def test_recording_no_neurons_survives_checkpoints(tmp_path):
    net = rv.Network(seed=1)
    cells = net.population(rv.neurons.LIF(), n=10, name="cells")
    monitor = net.record(cells, "v", ids=[])
    net.run(2 * ms, backend="numpy", checkpoint=tmp_path / "run.h5", every=1 * ms)
    assert monitor.values.shape == (20, 0)
    assert rv.load(tmp_path / "run.h5").state_monitors[0].values.shape == (20, 0)


def test_a_projection_too_large_for_memory_is_a_named_error():
    net = rv.Network(seed=1)
    big = net.population(rv.neurons.LIF(), n=10**6, name="big")
    implicit = net.connect(big, big, rv.connect.AllToAll(), weight=1 * mV, receptor="exc")
    assert implicit.nbytes < 100  # one weight, one delay: nothing per synapse
    with pytest.raises(ProjectionError, match=r"'big' -> 'big': out of memory .*1e\+12 synapses need at least"):
        net.connect(big, big, rv.connect.AllToAll(), weight=rv.init.Normal(1 * mV, 0.1 * mV), receptor="exc")


def test_parameters_drawn_out_of_range_are_refused():
    net = rv.Network(seed=1)
    with pytest.raises(PopulationError, match="tau_m must be > 0 and finite for every neuron"):
        net.population(rv.neurons.LIF(tau_m=rv.init.Uniform(-10 * ms, 20 * ms)), n=100, name="x")
    with pytest.raises(PopulationError, match="t_ref must be >= 0"):
        net.population(rv.neurons.LIF(t_ref=rv.init.Normal(0.0, 1 * ms)), n=100, name="y")


def test_nir_load_of_a_file_that_is_not_nir_is_a_nir_error(tmp_path):
    pytest.importorskip("nir")
    import h5py

    from ranvier.networks import nir_io

    (tmp_path / "text.nir").write_text("not HDF5")
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file["x"] = np.zeros(3)
    for name, message in (("text.nir", "not a NIR file"), ("other.h5", "not a NIR file"), ("gone.nir", "no such")):
        with pytest.raises(NIRError, match=message):
            nir_io.load(tmp_path / name)


@pytest.mark.parametrize("declare, message", [
    (lambda: rv.connect.FixedInDegree(k=float("nan")), "FixedInDegree: k must be a non-negative integer, got k=nan"),
    (lambda: rv.connect.FixedInDegree(k="4"), "FixedInDegree: k must be a non-negative integer, got k='4'"),
    (lambda: rv.connect.Bernoulli(p=None), "Bernoulli: p must be within \\[0, 1\\], got p=None"),
    (lambda: rv.Network(dt="0.1"), "Network: dt must be a positive, finite number of seconds, got '0.1'"),
    (lambda: rv.Network(dt=True), "Network: dt must be a positive, finite number of seconds, got True"),
])
def test_bad_values_of_the_wrong_type_are_named_errors(declare, message):
    with pytest.raises(rv.RanvierError, match=message):
        declare()
