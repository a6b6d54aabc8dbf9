"""Plausibility warnings: values in a probably wrong unit warn once with the likely unit."""

import warnings

import numpy as np
import pytest

import ranvier as rv
from ranvier.engine import plausibility
from ranvier.engine.plausibility import warn_if_implausible
from ranvier.units import Hz, ms, mV


@pytest.fixture(autouse=True)
def fresh_registry():
    plausibility._reset_warned()
    yield
    plausibility._reset_warned()


def test_seconds_meant_as_ms_warn_once_with_the_unit():
    with pytest.warns(rv.RanvierWarning, match=r"LIF: tau_m = 20 s .*\(0\.1 ms \.\. 1 s\): did you mean 20 \* ms\?"):
        model = rv.neurons.LIF(tau_m=20)
    assert model.parameters["tau_m"] == 20  # a warning, not an error: the value is kept
    with warnings.catch_warnings():
        warnings.simplefilter("error", rv.RanvierWarning)
        rv.neurons.LIF(tau_m=20)  # once per (model, parameter) and process


def test_defaults_and_legal_zeros_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", rv.RanvierWarning)
        rv.neurons.LIF()
        rv.neurons.LIF(tau_m=10 * ms, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0, tau_syn={"d": 0.0}, i_bias=0.0)
        rv.neurons.LIF(tau_m=rv.init.Uniform(15 * ms, 25 * ms), v_th=rv.init.Normal(-50 * mV, 1 * mV))
        rv.neurons.PoissonSource(rate=0.0)
        rv.neurons.PoissonSource(rate=20 * 1000 * Hz)  # a Poisson source standing for many cells
        rv.neurons.Astrocyte()
        rv.neurons.Kuramoto(omega=rv.init.Cauchy(0.0, 1.0))
        for build in (rv.networks.cuba, rv.networks.brunel):
            build(n=100, seed=1)


def test_millivolts_written_as_volts_suggest_mV():
    with pytest.warns(rv.RanvierWarning, match=r"LIF: v_th = -50 V .*did you mean -50 \* mV\?"):
        rv.neurons.LIF(v_th=-50)


def test_poisson_rate_out_of_range_warns():
    with pytest.warns(rv.RanvierWarning, match=r"PoissonSource: rate = 1e\+07 Hz is outside"):
        rv.neurons.PoissonSource(rate=1e7)


def test_one_bad_entry_of_an_array_or_distribution_warns():
    with pytest.warns(rv.RanvierWarning, match=r"tau_syn\['exc'\] holds 5 s \(in an array of 3\).*5 \* ms"):
        rv.neurons.LIF(tau_syn={"exc": np.array([5 * ms, 0.0, 5]), "inh": 5 * ms})
    with pytest.warns(rv.RanvierWarning, match=r"v_rest holds -70 V \(in Uniform"):
        rv.neurons.LIF(v_rest=rv.init.Uniform(-70, -60))


def test_too_small_values_and_other_dimensions():
    with pytest.warns(rv.RanvierWarning, match=r"Astrocyte: tau = 2e-05 s .*ranvier takes plain SI floats"):
        rv.neurons.Astrocyte(tau=20 * ms * ms)
    with pytest.warns(rv.RanvierWarning, match=r"did you mean 500 \* pA\?"):
        warn_if_implausible("Cell", "i_ext", 500, "current")
    with pytest.warns(rv.RanvierWarning, match=r"did you mean 200 \* pF\?"):
        warn_if_implausible("Cell", "c_m", 200, "capacitance")
    with pytest.warns(rv.RanvierWarning, match=r"did you mean 10 \* nS\?"):
        warn_if_implausible("Cell", "g_leak", 10, "conductance")
    with pytest.raises(ValueError, match="unknown dimension"):
        warn_if_implausible("Cell", "x", 1.0, "length")


def test_the_ignore_filter_silences_them():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", rv.RanvierWarning)
        rv.neurons.LIF(tau_m=20)
    assert not [w for w in caught if issubclass(w.category, rv.RanvierWarning)]


def test_the_warning_points_at_the_caller():
    with pytest.warns(rv.RanvierWarning) as caught:
        rv.neurons.LIF(tau_m=20)
    assert caught[0].filename == __file__


def test_unchecked_turns_the_checks_off_for_converters():
    with warnings.catch_warnings():
        warnings.simplefilter("error", rv.RanvierWarning)
        with plausibility.unchecked():
            rv.neurons.LIF(v_th=1e30, i_bias=10.0)  # e.g. NIR's integrators, snntorch's bias clock
    with pytest.warns(rv.RanvierWarning, match="v_th = 1e\\+30 V"):
        rv.neurons.LIF(v_th=1e30)
