"""Bad input raises a named RanvierError that says where and what."""

import warnings

import numpy as np
import pytest

import ranvier as rv
from ranvier.units import ms


@pytest.fixture
def net():
    network = rv.Network(dt=0.1 * ms, seed=0)
    network.population(rv.neurons.LIF(), 10, name="a")
    network.population(rv.neurons.LIF(), 20, name="b")
    return network


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_population_size(net, n):
    with pytest.raises(rv.PopulationError, match=rf"'c'.*{n!r}") as info:
        net.population(rv.neurons.LIF(), n, name="c")
    assert isinstance(info.value, rv.RanvierError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_bernoulli_probability_outside_unit_interval(p):
    with pytest.raises(rv.ProjectionError, match=f"p={p!r}"):
        rv.connect.Bernoulli(p=p)


@pytest.mark.parametrize("delay", [0.05 * ms, 0.0, -1 * ms])
def test_delay_below_dt(net, delay):
    with pytest.raises(rv.ProjectionError, match=r"'a->b:exc'.*delay"):
        net.connect(net["a"], net["b"], rv.connect.AllToAll(), weight=1e-3, delay=delay, receptor="exc")


def test_per_synapse_delay_below_dt(net):
    with pytest.raises(rv.ProjectionError, match=r"'a->b:exc'.*5e-05"):
        net.connect(net["a"], net["b"], rv.connect.AllToAll(), weight=1e-3,
                    delay=np.r_[np.full(199, 1 * ms), 0.05 * ms], receptor="exc")


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), np.r_[np.ones(199), np.nan]])
def test_non_finite_weights(net, weight):
    with pytest.raises(rv.ProjectionError, match=r"'a->b:exc'.*(nan|inf)"):
        net.connect(net["a"], net["b"], rv.connect.AllToAll(), weight=weight, receptor="exc")


@pytest.mark.parametrize("what", ["weights", "delays"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_set_weights_and_delays_refuse_non_finite_values_and_keep_the_old(net, what, bad):
    projection = net.connect(net["a"], net["b"], rv.connect.FixedInDegree(2), weight=1e-3, delay=1 * ms,
                             receptor="exc")
    before = (projection.weights.copy(), projection.delays.copy())
    values = np.full(len(projection), 1 * ms)
    values[3] = bad
    with pytest.raises(rv.ProjectionError, match=rf"'a->b:exc'.*{what[:-1]} {bad!r} of synapse 3 is not finite"):
        getattr(projection, f"set_{what}")(values)
    np.testing.assert_array_equal(projection.weights, before[0])
    np.testing.assert_array_equal(projection.delays, before[1])


def test_set_weights_refuses_weights_outside_the_stdp_bounds(net):
    projection = net.connect(net["a"], net["b"], rv.connect.FixedInDegree(2), weight=0.5 * ms, receptor="exc",
                             plasticity=rv.plasticity.STDP(w_max=1e-3))
    with pytest.raises(rv.PlasticityError, match=r"'a->b:exc'.*weight 0.05 of synapse 0 lies outside"):
        projection.set_weights(np.full(len(projection), 0.05))
    assert np.all(projection.weights == np.float32(0.5 * ms))


def test_a_connect_to_several_targets_that_fails_for_one_connects_none(net):
    net.population(rv.neurons.LIF(tau_syn={"exc": 5 * ms}), 5, name="c")  # no "inh" receptor
    with pytest.raises(rv.ProjectionError, match="'c'"):
        net.connect(net["a"], [net["b"], net["c"]], rv.connect.AllToAll(), weight=1e-3, receptor="inh")
    assert net.projections == []
    with pytest.raises(rv.ProjectionError):
        net.connect(rv.connect.PoissonInput(rate=5.0, n_inputs=10), ["b", "c"], weight=1e-3, receptor="inh")
    assert net.poisson_inputs == []
    assert net.connect(net["a"], net["b"], rv.connect.AllToAll(), weight=1e-3, receptor="inh").name == "a->b:inh"


def test_connect_takes_population_names(net):
    projection = net.connect("a", "b", rv.connect.AllToAll(), weight=1e-3, receptor="exc")
    listed = net.connect("a", ["b"], rv.connect.AllToAll(), weight=1e-3, receptor="inh")
    assert (projection.pre, projection.post) == (net["a"], net["b"]) and listed[0].post is net["b"]
    with pytest.raises(rv.ProjectionError, match="no population named 'nope'; the network has \\['a', 'b'\\]"):
        net.connect("nope", net["b"], rv.connect.AllToAll(), weight=1e-3, receptor="exc")


def test_connecting_into_a_model_without_receptors_says_it_takes_no_input(net):
    net.population(rv.neurons.PoissonSource(rate=5.0), 3, name="noise")
    with pytest.raises(rv.ProjectionError, match="'noise' takes no synaptic input"):
        net.connect(net["a"], net["noise"], rv.connect.AllToAll(), weight=1e-3)


def test_weight_array_of_wrong_length(net):
    with pytest.raises(rv.ProjectionError, match=r"'a->b:exc'.*\(7,\).*\(200,\)"):
        net.connect(net["a"], net["b"], rv.connect.AllToAll(), weight=np.ones(7), receptor="exc")


def test_init_array_of_wrong_length(net):
    with pytest.raises(rv.PopulationError, match=r"'c'.*'v'.*\(3,\)"):
        net.population(rv.neurons.LIF(), 5, name="c", init={"v": np.zeros(3)})


def test_parameter_array_of_wrong_length(net):
    with pytest.raises(rv.PopulationError, match=r"'c'.*'tau_m'.*\(4,\)"):
        net.population(rv.neurons.LIF(tau_m=np.full(4, 10 * ms)), 5, name="c")


def test_from_arrays_of_different_lengths(net):
    with pytest.raises(rv.ProjectionError, match=r"'a->b:exc'.*\(3,\).*\(2,\)"):
        net.connect(net["a"], net["b"], rv.connect.FromArrays([0, 1, 2], [0, 1]), weight=1e-3, receptor="exc")


def test_from_arrays_ids_out_of_range(net):
    with pytest.raises(rv.ProjectionError, match=r"'a->b:exc'.*post.*\[25\]"):
        net.connect(net["a"], net["b"], rv.connect.FromArrays([0, 1], [0, 25]), weight=1e-3, receptor="exc")


def test_unknown_receptor(net):
    with pytest.raises(rv.ProjectionError, match=r"'a->b:nmda'.*'nmda'.*'exc', 'inh'"):
        net.connect(net["a"], net["b"], rv.connect.AllToAll(), weight=1e-3, receptor="nmda")


def test_unknown_recorded_variable(net):
    with pytest.raises(rv.RecordingError, match=r"'a'.*'w'.*v, refractory, I_exc, I_inh"):
        net.record(net["a"], "w")


def test_recorded_ids_out_of_range(net):
    with pytest.raises(rv.RecordingError, match=r"'a'.*\[10\]"):
        net.record(net["a"], "v", ids=[0, 10])


@pytest.mark.parametrize("duration", [-1.0, float("nan"), float("inf"), "1s"])
def test_bad_duration(net, duration):
    with pytest.raises(rv.RunError, match="duration"):
        net.run(duration)


def test_connecting_populations_of_another_network(net):
    other = rv.Network(seed=1)
    stranger = other.population(rv.neurons.LIF(), 5, name="stranger")
    with pytest.raises(rv.ProjectionError, match="'stranger' belongs to another network"):
        net.connect(net["a"], stranger, rv.connect.AllToAll(), weight=1e-3, receptor="exc")
    with pytest.raises(rv.ProjectionError, match="'stranger' belongs to another network"):
        net.connect(stranger, net["a"], rv.connect.AllToAll(), weight=1e-3, receptor="exc")


def test_unknown_population_name(net):
    with pytest.raises(rv.PopulationError, match="'nope'.*a, b"):
        net["nope"]


def test_unknown_backend(net):
    with pytest.raises(rv.BackendError, match="'fortran'.*numpy, numba"):
        net.run(1 * ms, backend="fortran")


def test_bad_model_parameters():
    with pytest.raises(rv.ModelError, match="tau_m.*-0.01"):
        rv.neurons.LIF(tau_m=-10 * ms)
    with pytest.raises(rv.ModelError, match="rate.*-5"):
        rv.neurons.PoissonSource(rate=-5.0)


@pytest.mark.parametrize("inner", ["numpy", "numba"])
def test_a_run_from_inside_a_callback_is_refused_and_the_network_goes_on(net, inner):
    net.at(1 * ms, lambda network: network.run(1 * ms, backend=inner))
    with pytest.raises(rv.RunError, match="called while the network is running"):
        net.run(2 * ms, backend="numpy")
    assert net.step == 10
    net.run(1 * ms, backend="numpy")
    assert net.step == 20


@pytest.mark.parametrize(("duration", "steps"), [(0.04 * ms, 0), (0.16 * ms, 2), (1.04 * ms, 10)])
def test_a_duration_that_is_not_a_whole_number_of_steps_warns_and_runs_the_nearest(net, duration, steps):
    with pytest.warns(rv.RanvierWarning, match=rf"duration {duration!r} s is not a whole number of steps.*"
                                              rf"running {steps} steps"):
        net.run(duration, backend="numpy")
    assert net.step == steps
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.run(0.3, backend="numpy")  # 2999.9999999999995 steps of 0.1 ms: rounding, not a fraction
    assert net.step == steps + 3000


@pytest.mark.parametrize("seed", [-1, 1.5, "abc", True])
def test_a_seed_that_is_not_a_whole_number_is_refused(seed):
    with pytest.raises(rv.RunError, match=rf"seed must be a whole number >= 0 or None, got {seed!r}"):
        rv.Network(seed=seed)


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda: rv.init.Uniform(0.0, -1.0), rv.ModelError, "Uniform: need finite low <= high"),
    (lambda: rv.init.Normal(0.0, -1.0), rv.ModelError, "Normal: need finite mean and std >= 0"),
    (lambda: rv.networks.microcircuit(scale=0), rv.PopulationError, r"scale must be in \(0, 1\]"),
    (lambda: rv.networks.brunel(background="nope"), rv.PopulationError, "background must be"),
])
def test_bad_distributions_and_builder_arguments_are_ranvier_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_state_beyond_the_precision_is_refused(net):
    with pytest.raises(rv.PopulationError, match="'c': initial 'v' 1e\\+40 overflows float32"):
        net.population(rv.neurons.LIF(), 2, name="c", init={"v": 1e40})
    with pytest.raises(rv.PopulationError, match="'a': value of 'v' 1e\\+40 overflows float32"):
        net["a"].set("v", 1e40)
    assert np.all(np.isfinite(net["a"].get("v"))) and "c" not in net.populations


@pytest.mark.parametrize("every", [float("nan"), float("inf"), "1ms"])
def test_a_recording_interval_that_is_not_a_number_is_a_recording_error(net, every):
    with pytest.raises(rv.RecordingError, match="every must be a positive multiple of dt"):
        net.record(net["a"], "v", every=every)


def test_numbers_given_as_text_are_refused_by_name(net):
    with pytest.raises(rv.ModelError, match=r"LIF: tau_m must be a number in SI units .* got '20ms'"):
        rv.neurons.LIF(tau_m="20ms")
    with pytest.raises(rv.ProjectionError, match=r"'a->b:exc': weight must be a number in SI units .* got '1'"):
        net.connect(net["a"], net["b"], rv.connect.AllToAll(), weight="1", receptor="exc")
    with pytest.raises(rv.PopulationError, match=r"'a': value of 'v' must be a number"):
        net["a"].set("v", "-65 mV")
    assert net.projections == []


def test_spike_source_time_before_first_step():
    net = rv.Network(dt=0.1 * ms)
    with pytest.raises(rv.PopulationError, match="'input'.*0.0"):
        net.population(rv.neurons.SpikeSource(times=[0.0, 1 * ms], ids=[0, 0]), name="input")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_nan_in_state_stops_the_run_with_population_and_step(backend):
    net = rv.networks.cuba(n=400, seed=1)

    def poison(network):
        network["inh"].state[0, 3] = np.nan  # bypasses set(), which refuses non-finite values

    net.at(5 * ms, poison)
    with pytest.raises(rv.NumericalError, match=r"'inh'.*step 50") as info:
        net.run(10 * ms, backend=backend)
    assert info.value.population == "inh" and info.value.step == 50


def _reciprocal_step(state, consts, arriving, i, col, k, key):
    state[0, i] = consts[0, col] / state[0, i]
    return rv.spike(state[0, i] - consts[0, col])


class _Reciprocal(rv.Model):
    """A user's model that divides by its state, which starts at zero."""

    step = staticmethod(_reciprocal_step)
    state_rows = rv.rows("v")

    def constants(self, params, dt):
        return np.ones((1, 1))


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_division_by_zero_in_a_users_step_is_a_numerical_error_naming_the_population(backend):
    net = rv.Network(dt=0.1 * ms)
    net.population(_Reciprocal(), n=3, name="reciprocal", init={"v": 0.0})
    with pytest.raises(rv.NumericalError, match="population 'reciprocal': state became NaN or infinite in step 0"):
        net.run(1 * ms, backend=backend)


def test_set_refuses_non_finite_values(net):
    with pytest.raises(rv.PopulationError, match=r"'a'.*'v'.*nan"):
        net["a"].set("v", np.full(10, np.nan))


def test_callback_in_the_past(net):
    net.run(2 * ms, backend="numpy")
    with pytest.raises(rv.RunError, match="in the past"):
        net.at(1 * ms, lambda network: None)


def test_weight_beyond_float32_range(net):
    with pytest.raises(rv.ProjectionError, match=r"'a->b:exc'.*1e\+39"):
        net.connect(net["a"], net["b"], rv.connect.AllToAll(), weight=1e39, receptor="exc")


@pytest.mark.filterwarnings("ignore::ranvier.errors.RanvierWarning")  # 1 GHz is implausible on purpose
def test_poisson_rate_too_high_for_the_step(net):
    with pytest.raises(rv.PopulationError, match=r"population 'drive'.*1e\+09 Hz.*smaller dt"):
        net.population(rv.neurons.PoissonSource(rate=1e9), 3, name="drive")
