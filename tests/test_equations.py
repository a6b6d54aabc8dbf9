"""Equations: Brian 2-style model definitions, checked for units and run on every backend."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.neurons import Equations
from ranvier.neurons.equations.library import ADEX, CUBA_LIF, IZHIKEVICH
from ranvier.units import ms, mV, nA, nS, pF

ADEX_PARAMETERS = dict(C=281 * pF, g_L=30 * nS, E_L=-70.6 * mV, V_T=-50.4 * mV, Delta_T=2 * mV, tau_w=144 * ms,
                       a=4 * nS, b=0.0805 * nA, V_r=-70.6 * mV, I=np.array([0.8, 1.0, 1.5]) * nA)


def izhikevich(current=10 * mV / ms):
    return Equations(IZHIKEVICH, threshold="v >= 30*mV", reset="v = c; u += d", method="euler",
                     parameters={"a": 0.02 / ms, "b": 0.2 / ms, "c": -65 * mV, "d": 8 * mV / ms, "I": current})


def adex(method="euler"):
    return Equations(ADEX, threshold="v > V_T + 5*Delta_T", reset="v = V_r; w += b", method=method,
                     parameters=ADEX_PARAMETERS)


def cuba_lif():
    return Equations(CUBA_LIF, threshold="v >= v_th", reset="v = v_reset", refractory=5 * ms, method="exact",
                     parameters={"tau_m": 20 * ms, "tau_exc": 5 * ms, "tau_inh": 10 * ms, "v_rest": -49 * mV,
                                 "v_th": -50 * mV, "v_reset": -60 * mV},
                     receptors={"exc": "I_exc", "inh": "I_inh"})


def run_alone(model, n, backend, duration=1.0, init=None):
    net = rv.Network(dt=0.1 * ms, seed=3)
    population = net.population(model, n, name="cell", init=init)
    spikes = net.record(population, "spikes")
    net.run(duration, backend=backend)
    return spikes.steps.copy(), spikes.ids.copy(), population.state.copy()


@pytest.mark.parametrize("factory, n, init", [
    (izhikevich, 2, {"v": -65 * mV, "u": 0.2 / ms * -65 * mV}),
    (adex, 3, {"v": -70.6 * mV}),
    (lambda: adex("rk4"), 3, {"v": -70.6 * mV}),
])
def test_numba_gives_numpys_bits(factory, n, init):
    reference = run_alone(factory(), n, "numpy", init=init)
    compiled = run_alone(factory(), n, "numba", init=init)
    assert len(reference[0]) > 10
    for expected, got in zip(reference, compiled, strict=True):
        assert np.array_equal(expected, got)


def test_izhikevich_regular_spiking_fires_at_its_known_rate():
    """Regular spiking at I = 10 (mV/ms): an initial burst-free train of about 23 Hz (Izhikevich 2003, Fig. 2)."""
    steps, ids, _ = run_alone(izhikevich(), 1, "numba", init={"v": -65 * mV, "u": 0.2 / ms * -65 * mV})
    assert 15 <= len(steps) <= 30
    intervals = np.diff(steps)
    assert intervals[-1] >= intervals[0]  # adapts: later intervals are not shorter


def test_an_equations_lif_gives_the_spikes_and_state_of_neurons_lif_on_cuba():
    results = []
    for model in (None, cuba_lif()):
        net = rv.networks.cuba(n=1000, seed=1, model=model)
        spikes = net.record(net["exc"], "spikes")
        net.run(0.3)
        results.append((spikes.steps.copy(), spikes.ids.copy(), net["exc"].get("v").copy(), net["inh"].get("v").copy()))
    assert len(results[0][0]) > 100
    for expected, got in zip(*results, strict=True):
        assert np.array_equal(expected, got)


def test_exact_integration_follows_the_analytic_solution_per_neuron():
    """dv/dt = -v / tau with per-neuron tau: v(t) = v0 exp(-t / tau), the propagator of each tau."""
    tau = np.array([5.0, 10.0, 20.0, 40.0]) * ms
    model = Equations("dv/dt = -v / tau : volt\n tau : second", parameters={"tau": tau})
    _, _, state = run_alone(model, 4, "numba", duration=10 * ms, init={"v": 10 * mV})
    # 100 float32 multiplications, each rounding by up to 2**-24
    np.testing.assert_allclose(state[0], 10 * mV * np.exp(-10 * ms / tau), rtol=100 * 2.0 ** -24)


def test_a_singular_linear_system_uses_the_affine_propagator():
    """A perfect integrator, dv/dt = I / C, has no fixed point: v(t) = v0 + I t / C."""
    model = Equations("dv/dt = I / C : volt\n I : amp\n C : farad", parameters={"I": 0.5 * nA, "C": 250 * pF})
    _, _, state = run_alone(model, 1, "numba", duration=10 * ms, init={"v": -70 * mV})
    np.testing.assert_allclose(state[0], -70 * mV + 0.5 * nA * 10 * ms / (250 * pF), rtol=100 * 2.0 ** -24)


def test_exponential_euler_on_a_conductance_based_lif():
    model = Equations("""
        dv/dt = (g_L*(E_L - v) + g_e*(E_e - v)) / C : volt (unless refractory)
        dg_e/dt = -g_e / tau_e : siemens
        g_L : siemens
        E_L : volt
        E_e : volt
        C : farad
        tau_e : second
        v_th : volt
        """, threshold="v > v_th", reset="v = E_L", refractory=2 * ms, method="exponential_euler",
        parameters={"g_L": 10 * nS, "E_L": -70 * mV, "E_e": 0 * mV, "C": 200 * pF, "tau_e": 5 * ms,
                    "v_th": -50 * mV},
        receptors={"exc": "g_e"})
    results = []
    for backend in ("numpy", "numba"):
        net = rv.Network(dt=0.1 * ms, seed=2)
        drive = net.population(rv.neurons.PoissonSource(rate=2000.0), 20, name="drive")
        cells = net.population(model, 10, name="cells", init={"v": -70 * mV})
        net.connect(drive, cells, rv.connect.AllToAll(), weight=3 * nS, receptor="exc")
        spikes = net.record(cells, "spikes")
        net.run(0.3, backend=backend)
        results.append((spikes.steps.copy(), spikes.ids.copy(), cells.state.copy()))
    assert len(results[0][0]) > 5
    for expected, got in zip(*results, strict=True):
        assert np.array_equal(expected, got)
    steps, ids, _ = results[0]
    # held for the 20 steps of 2 ms after a spike, a neuron spikes again 21 steps later at the earliest
    assert min(np.diff(steps[ids == cell]).min(initial=10**6) for cell in range(10)) >= 21


def test_refractory_holds_the_flagged_variable_for_the_refractory_steps():
    model = Equations("dv/dt = (v_rest - v) / tau : volt (unless refractory)\n tau : second\n v_rest : volt",
                      threshold="v >= 0*mV", reset="v = v_rest - 20*mV", refractory=3 * ms, method="exact",
                      parameters={"tau": 10 * ms, "v_rest": 10 * mV})
    net = rv.Network(dt=0.1 * ms)
    cell = net.population(model, 1, name="cell")
    spikes = net.record(cell, "spikes")
    trace = net.record(cell, "v")
    net.run(50 * ms)
    assert len(spikes.steps) >= 2
    first = spikes.steps[0]
    # the state after the spiking step and after each of the 30 refractory steps (3 ms) is the reset value
    assert np.all(trace.values[first:first + 31, 0] == np.float32(-10 * mV))
    assert trace.values[first + 31, 0] > np.float32(-10 * mV)


def test_a_saved_network_of_equations_resumes_bit_identically(in_tmp):
    def build():
        net = rv.Network(dt=0.1 * ms, seed=5)
        net.population(izhikevich(np.array([8.0, 10.0, 14.0]) * mV / ms), 3, name="izh",
                       init={"v": -65 * mV, "u": -13 * mV / ms})
        return net

    whole = build()
    whole.run(0.4)
    first = build()
    first.run(0.2)
    first.save("izh.h5")
    resumed = rv.load("izh.h5")
    resumed.run(0.2)
    assert isinstance(resumed["izh"].model, Equations)
    assert np.array_equal(resumed["izh"].state, whole["izh"].state)


def test_hardware_estimates_count_an_equations_population():
    net = rv.networks.cuba(n=400, seed=1, model=cuba_lif())
    net.run(0.1)
    estimate = rv.hardware.estimate(net, target="loihi2")
    assert estimate.energy > 0


@pytest.mark.parametrize("equations, options, message", [
    ("dv/dt = (E_L - v)/tau + I : volt\n E_L : volt\n tau : second\n I : amp", {},
     "I is amp but (E_L - v)/tau is volt/second"),
    ("dv/dt = -v : volt", {}, "the right-hand side is volt but dv/dt is volt/second"),
    ("dv/dt = (v/mV)**2/ms*mV : volt", {"method": "exact"}, "method 'exact' needs a linear system"),
    ("dv/dt = -v/tau : volt\n tau : second", {"threshold": "v > 1"}, "v is volt but 1 is 1 (dimensionless)"),
    ("dv/dt = -v/tau : volt\n tau : second", {"threshold": "v > 1*mV", "reset": "v = 1*ms"},
     "v is volt but the new value is second"),
    ("dv/dt = -v/tau : volt\n tau : second", {"threshold": "v > 1*mV", "reset": "u = 0*mV"},
     "not a state variable"),
    ("dv/dt = -v/tau : volt\n tau : second", {"receptors": {"exc": "g"}}, "receptor 'exc' targets 'g'"),
    ("dv/dt = -v/tau + __import__('os') : volt\n tau : second", {}, "unknown function '__import__'"),
    ("dv/dt = -v/tau + v.real : volt\n tau : second", {}, "is not allowed"),
    ("dv/dt = -v/taux : volt\n tau : second", {}, "unknown name 'taux'"),
    ("dv/dt = -v/tau + t : volt\n tau : second", {}, "time 't' is not supported"),
    ("dv/dt = -v/tau : volt (sometimes)\n tau : second", {}, "unknown flag 'sometimes'"),
    ("dms/dt = -ms/tau : volt\n tau : second", {}, "'ms' is reserved (a unit)"),
    ("dv/dt = -v/tau : volt\n tau : second", {"method": "midpoint"}, "unknown method 'midpoint'"),
    ("dv/dt = -v**1.5/tau : 1\n tau : second", {"method": "euler"}, "use integer powers or sqrt()"),
    ("v = 3*mV : volt", {}, "no differential equation"),
])
def test_bad_equations_are_model_errors_that_say_what_is_wrong(equations, options, message):
    with pytest.raises(rv.ModelError, match=None) as error:
        Equations(equations, parameters={"tau": 10 * ms, "E_L": -70 * mV, "I": 1 * nA}
                  if "E_L" in equations else ({"tau": 10 * ms} if "tau" in equations else {}), **options)
    assert message in str(error.value)


def test_the_contract_example_a_declared_variable_and_undeclared_constants():
    """docs/api.md: ``I : volt/second`` without a value is a per-neuron variable set by ``init``;
    ``a, b, c, d`` given in parameters without a declaration are constants (not unit-checked)."""
    model = Equations("""
        dv/dt = (0.04/ms/mV)*v**2 + (5/ms)*v + 140*mV/ms - u + I : volt
        du/dt = a*(b*v - u) : volt/second
        I : volt/second
        """, threshold="v >= 30*mV", reset="v = c; u = u + d", method="euler",
        parameters={"a": 0.02 / ms, "b": 0.2 / ms, "c": -65 * mV, "d": 8 * mV / ms}, receptors={"exc": "v"})
    assert model.state_names == ("v", "u", "I")
    init = {"v": -65 * mV, "u": -13 * mV / ms, "I": np.array([0.0, 10.0]) * mV / ms}
    reference = run_alone(model, 2, "numpy", init=init)
    compiled = run_alone(model, 2, "numba", init=init)
    assert np.array_equal(reference[0], compiled[0]) and np.array_equal(reference[2], compiled[2])
    assert set(reference[1]) == {1}  # only the driven neuron spikes
    assert np.array_equal(compiled[0], run_alone(izhikevich(), 1, "numba",
                                                 init={"v": -65 * mV, "u": -13 * mV / ms})[0])


def test_parameters_are_checked():
    with pytest.raises(rv.ModelError, match="must be a finite number"):
        Equations("dv/dt = -v/tau : volt\n tau : second", parameters={"tau": float("nan")})
    with pytest.raises(rv.ModelError, match="'v', which the equations define"):
        Equations("dv/dt = -v/tau : volt\n tau : second", parameters={"tau": 0.01, "v": 0.0})
    with pytest.raises(rv.ModelError, match="'ms', which cannot be a constant's name"):
        Equations("dv/dt = -v/tau : volt\n tau : second", parameters={"tau": 0.01, "ms": 1.0})
    with pytest.raises(rv.ModelError, match="depend on 'tau', a per-neuron variable"):
        Equations("dv/dt = -v/tau : volt\n tau : second", method="exact")


def test_a_state_that_stops_being_finite_is_named():
    model = Equations("dv/dt = v*v/(mV*ms) : volt", method="euler")
    net = rv.Network(dt=0.1 * ms)
    net.population(model, 2, name="blowup", init={"v": 100 * mV})
    with pytest.raises(rv.NumericalError, match="blowup"):
        net.run(10 * ms)


def test_equal_equations_share_one_step_function():
    assert cuba_lif().step is cuba_lif().step


_ON_CUDA_SIMULATOR = """
import json, sys
import numpy as np
sys.path.insert(0, TESTS)
import ranvier as rv
from test_equations import adex, cuba_lif, izhikevich, run_alone
from ranvier.units import mV, ms
same = {}
for name, factory, n, init in [("izhikevich", izhikevich, 2, {"v": -65 * mV, "u": -13 * mV / ms}),
                               ("adex_rk4", lambda: adex("rk4"), 3, {"v": -70.6 * mV})]:
    reference = run_alone(factory(), n, "numpy", duration=0.1, init=init)
    device = run_alone(factory(), n, "cuda", duration=0.1, init=init)
    same[name] = all(np.array_equal(a, b) for a, b in zip(reference, device))
results = []
for backend in ("numpy", "cuda"):
    net = rv.networks.cuba(n=200, seed=1, mean_in_degree=20, model=cuba_lif())
    spikes = net.record(net["exc"], "spikes")
    net.run(0.02, backend=backend)
    results.append((spikes.steps.copy(), net["exc"].state.copy()))
same["cuba_lif"] = all(np.array_equal(a, b) for a, b in zip(*results))
print(json.dumps({"same": same, "spikes": int(len(results[0][0]))}))
"""


@pytest.mark.slow
def test_equations_models_are_identical_on_the_cuda_simulator(on_cuda_simulator):
    result = on_cuda_simulator(_ON_CUDA_SIMULATOR)
    assert result["spikes"] > 0
    assert all(result["same"].values()), result["same"]


def test_parameters_in_the_wrong_unit_warn_with_the_likely_one():
    from ranvier.engine.plausibility import _reset_warned

    _reset_warned()
    with pytest.warns(rv.RanvierWarning, match="did you mean 20 \\* ms"):
        Equations("dv/dt = -v/tau_leak : volt\n tau_leak : second", parameters={"tau_leak": 20})
    with pytest.warns(rv.RanvierWarning, match="did you mean 250 \\* pF"):
        Equations("dv/dt = -v/(R*C_membrane) : volt\n C_membrane : farad\n R : ohm",
                  parameters={"C_membrane": 250, "R": 1e8})


def test_an_equations_lif_exports_to_nir_as_the_lif_it_is_and_other_equations_are_named():
    nir = pytest.importorskip("nir")

    def build(model):
        net = rv.Network(dt=0.1 * ms, seed=1)
        source = net.population(rv.neurons.PoissonSource(rate=50.0), 10, name="input")
        cells = net.population(model, 5, name="cells")
        net.connect(source, cells, rv.connect.AllToAll(), weight=1 * mV, receptor="in")
        return net

    lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-70 * mV, t_ref=2 * ms,
                         tau_syn={"in": 5 * ms})
    equations = Equations("""
        dv/dt = (v_rest - v + I_in) / tau_m : volt (unless refractory)
        dI_in/dt = -I_in / tau_in : volt
        tau_m : second
        tau_in : second
        v_rest : volt
        v_th : volt
        v_reset : volt
        """, threshold="v >= v_th", reset="v = v_reset", refractory=2 * ms,
        parameters={"tau_m": 20 * ms, "tau_in": 5 * ms, "v_rest": -65 * mV, "v_th": -50 * mV, "v_reset": -70 * mV},
        receptors={"in": "I_in"})
    expected, got = rv.nir.save(build(lif)).nodes["cells"], rv.nir.save(build(equations)).nodes["cells"]
    assert isinstance(got, nir.CubaLIF)
    for field in ("tau_mem", "tau_syn", "v_leak", "v_threshold", "v_reset", "r", "w_in"):
        np.testing.assert_allclose(getattr(got, field), getattr(expected, field), rtol=1e-12)
    driven = Equations(IZHIKEVICH, threshold="v >= 30*mV", reset="v = c; u += d", method="euler",
                       parameters={"a": 0.02 / ms, "b": 0.2 / ms, "c": -65 * mV, "d": 8 * mV / ms, "I": 0.0},
                       receptors={"in": "v"})
    with pytest.raises(rv.NIRError, match="Equations has no NIR node"):
        rv.nir.save(build(driven))


def test_sqrt_of_the_state_is_the_model_languages_and_the_same_on_numpy_and_numba():
    """``sqrt`` compiles to the model language's ``sqrt`` (numba.cuda has no ``np.sqrt``): numpy's bits on numba."""
    def run(backend):
        model = Equations("dv/dt = (sqrt(v0**2 + v**2) - v0) / tau : volt\n v0 : volt\n tau : second",
                          threshold="v >= 10*mV", reset="v = 1*mV", method="euler",
                          parameters={"v0": 5 * mV, "tau": 2 * ms})
        assert "sqrt(" in model.source and "np.sqrt" not in model.source
        return run_alone(model, 3, backend, duration=0.05, init={"v": np.array([1.0, 2.0, 3.0]) * mV})

    (steps, ids, state), (numba_steps, numba_ids, numba_state) = run("numpy"), run("numba")
    assert len(steps) >= 6
    np.testing.assert_array_equal(steps, numba_steps)
    np.testing.assert_array_equal(ids, numba_ids)
    np.testing.assert_array_equal(state, numba_state)


def test_every_prefixed_molar_unit_is_mol_per_litre_scaled():
    from ranvier.neurons.equations.units import UNITS

    for prefix, factor in {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3}.items():
        for name in (f"{prefix}M", f"{prefix}molar"):
            assert UNITS[name][0] == pytest.approx(factor * 1000.0, rel=1e-15), name  # SI: mol / m^3
    assert UNITS["nM"][0] == 1e-6 and UNITS["molar"][0] == 1000.0


@pytest.mark.parametrize("rhs", ["0", "0*mV/ms", "0*v/ms"])
def test_a_right_hand_side_of_zero_holds_the_variable(rhs):
    model = rv.neurons.Equations(f"dv/dt = {rhs} : volt", method="euler")
    net = rv.Network(dt=0.1 * ms)
    cells = net.population(model, 2, name="held", init={"v": -65 * mV})
    net.run(1 * ms, backend="numpy")
    np.testing.assert_array_equal(cells.get("v"), np.float32(-65 * mV))


def test_an_undeclared_constant_in_a_sum_leaves_the_other_terms_checked():
    with pytest.raises(rv.ModelError, match="dimension mismatch"):
        rv.neurons.Equations("dv/dt = (E_L - v)/tau + I + k*mV/ms : volt\nE_L : volt\ntau : second\nI : amp",
                             parameters={"tau": 1e-2, "E_L": 0.0, "I": 0.0, "k": 1.0})
    model = rv.neurons.Equations("dv/dt = (E_L - v)/tau + k*mV/ms : volt\nE_L : volt\ntau : second",
                                 parameters={"tau": 1e-2, "E_L": 0.0, "k": 1.0})
    assert model is not None


def test_messages_name_units_as_written():
    with pytest.raises(rv.ModelError) as info:
        rv.neurons.Equations("dv/dt = -v/tau : volt\ntau : second", threshold="v > 10*ms", reset="v = 0*mV",
                             parameters={"tau": 10 * ms})
    assert "10*ms is second" in str(info.value) and "unit_" not in str(info.value)
