"""The model language's rules are checked when a population is declared; check_model compares backends."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.engine import model_checks
from ranvier.engine.kinds import Kind
from ranvier.engine.model import Model, ValueModel, any_true, model_function, select, sin_cos
from ranvier.testing import ModelCheck, check_model

# rows of the constants of the test models
DECAY, THRESHOLD, RESET = range(3)
#: a module-level int: index arithmetic with it is fine
FIRST_INPUT = 0


class Leaky(Model):
    """A leaky integrator that spikes at a threshold; subclasses bring the step under test."""

    @property
    def state_names(self):
        return ("v", "w")

    @property
    def receptors(self):
        return ("in",)

    def constants(self, params, dt):
        return np.array([[np.exp(-dt / 0.02)], [10e-3], [0.0]])


def _leaky_step(state, consts, arriving, i, c, k, key):
    v = state[0, i] * consts[DECAY, c] + arriving[0][i]
    fired = v >= consts[THRESHOLD, c]
    state[0, i] = select(fired, consts[RESET, c], v)
    return select(fired, 1, 0)


def _declare(step, base=Leaky):
    net = rv.Network(seed=0)
    model = type("Custom", (base,), {"step": staticmethod(step)})()
    return net.population(model, 4, name="custom")


# -- each rule, at declaration ------------------------------------------------------------------


def _float_literal(state, consts, arriving, i, c, k, key):
    u = state[1, i]
    state[0, i] = state[0, i] + 0.0001 * u
    return 0


def _int_literal(state, consts, arriving, i, c, k, key):
    v = state[0, i]
    state[0, i] = 2 * v
    return 0


def _power(state, consts, arriving, i, c, k, key):
    v = state[0, i]
    state[0, i] = v ** 2
    return 0


def _if_on_state(state, consts, arriving, i, c, k, key):
    v = state[0, i]
    if v >= consts[THRESHOLD, c]:
        state[0, i] = consts[RESET, c]
    return 0


def _ternary(state, consts, arriving, i, c, k, key):
    v = state[0, i]
    state[0, i] = consts[RESET, c] if v >= consts[THRESHOLD, c] else v
    return 0


def _and_on_state(state, consts, arriving, i, c, k, key):
    v = state[0, i]
    fired = (v >= consts[THRESHOLD, c]) and (state[1, i] <= 0)
    return select(fired, 1, 0)


def _not_on_state(state, consts, arriving, i, c, k, key):
    quiet = not state[0, i]
    return select(quiet, 0, 1)


def _while_on_state(state, consts, arriving, i, c, k, key):
    v = state[0, i]
    while v > consts[THRESHOLD, c]:
        v = v * consts[DECAY, c]
    state[0, i] = v
    return 0


def _allocates(state, consts, arriving, i, c, k, key):
    scratch = np.zeros(3)
    state[0, i] = scratch[0]
    return 0


def _list_literal(state, consts, arriving, i, c, k, key):
    values = [state[0, i], state[1, i]]
    state[0, i] = values[0]
    return 0


def _six_arguments(state, consts, arriving, i, c, k):
    return 0


@pytest.mark.parametrize(("step", "what", "hint"), [
    (_float_literal, "float literal 0.0001", "float literals are float64 on numba and float32 on numpy; compute it in "
                                             "constants() and read consts[ROW, c]"),
    (_int_literal, "int literal 2 in arithmetic with a float32 value", "an int literal promotes float32 to float64 on "
                                                                        "numba"),
    (_power, "int literal 2 in arithmetic with a float32 value", "write `v * v`"),
    (_if_on_state, "`if` on a state value", "use select(condition, if_true, if_false)"),
    (_ternary, "conditional expression", "use select(condition, if_true, if_false)"),
    (_and_on_state, "`and` on state values", "combine conditions with `&`"),
    (_not_on_state, "`not` on a state value", "`~condition`"),
    (_while_on_state, "`while` on a state value", "while any_true(condition):"),
    (_allocates, "np.zeros(...) (it allocates)", "a step allocates nothing; keep per-neuron values in state rows"),
    (_list_literal, "a list literal (it allocates)", "a step allocates nothing; keep per-neuron values in state rows"),
    (_six_arguments, "the step takes (state, consts, arriving, i, c, k)",
     "a spiking step takes (state, consts, arriving, i, c, k, key)"),
])
def test_each_rule_is_an_error_at_declaration(step, what, hint):
    with pytest.raises(rv.ModelError) as info:
        _declare(step)
    message = str(info.value)
    assert message.startswith("population 'custom' (Custom): ")
    assert what in message and hint in message
    assert step.__name__ in message and __file__ in message  # the function, and file:line
    line = int(message.split(__file__ + ":")[1].split(",")[0].split(")")[0])
    assert step.__code__.co_firstlineno <= line <= step.__code__.co_firstlineno + 5


def test_the_message_shows_the_code_and_its_line():
    with pytest.raises(rv.ModelError) as info:
        _declare(_float_literal)
    line = _float_literal.__code__.co_firstlineno + 2
    assert f"in _float_literal ({__file__}:{line}, `0.0001 * u`)" in str(info.value)


def test_a_method_taking_self_is_an_error():
    class WithSelf(Leaky):
        def step(self, state, consts, arriving, i, c, k, key):
            return 0

    with pytest.raises(rv.ModelError, match="takes self.*@staticmethod"):
        rv.Network().population(WithSelf(), 2)


def _allowed(s, p, arriving, i, col, k, key):
    """Every allowed form: select, an any_true loop, index arithmetic, sin_cos, a loop over receptors."""
    v = s[0, i] * p[DECAY, col]
    for r in range(len(arriving)):
        v = v + arriving[FIRST_INPUT + 2 * r][i]
    sin_v, cos_v = sin_cos(np.float64(v))
    wide = np.float64(v) * 0.5 + sin_v * cos_v  # a literal in float64 arithmetic is fine
    halved = v
    steps = 0
    going = halved > p[THRESHOLD, col]
    while any_true(going):
        halved = select(going, halved * p[DECAY, col], halved)
        steps += 1
        going = going & (halved > p[THRESHOLD, col]) & (steps < 100)
    fired = (v >= p[THRESHOLD, col]) & ~(s[1, i] > 0)
    s[0, i] = select(fired, p[RESET, col], v)
    s[1, i] = wide
    return select(fired, 1, 0)


def test_the_allowed_forms_pass_and_run():
    population = _declare(_allowed)
    net = population.network
    net.run(1e-3, backend="numpy")
    assert np.all(np.isfinite(population.state))


def test_every_builtin_model_passes():
    models = [rv.neurons.LIF(), rv.neurons.LIF(tau_syn={"d": 0.0}), rv.neurons.PoissonSource(rate=10.0),
              rv.neurons.Kuramoto(), rv.neurons.AKOrN(dim=3), rv.neurons.Astrocyte()]
    net = rv.Network(seed=0)
    for index, model in enumerate(models):
        net.population(model, 3, name=f"p{index}")
        model_checks.check_model_functions(model, type(model).__name__)
    for function in (rv.neurons.LIF.step, rv.neurons.PoissonSource.step):
        model_checks.check_step(function, Kind.SPIKING, "built-in")
    for model in (rv.neurons.Kuramoto, rv.neurons.AKOrN, rv.neurons.Astrocyte):
        model_checks.check_step(model.step, Kind.VALUE, "built-in")
        if model.finish is not None:
            model_checks.check_finish(model.finish, "built-in")


def test_each_function_is_checked_once():
    with pytest.raises(rv.ModelError):
        _declare(_int_literal)
    assert (_int_literal.__code__, "spiking") in model_checks._CHECKED
    cached = model_checks._CHECKED[(_int_literal.__code__, "spiking")]
    with pytest.raises(rv.ModelError, match="population 'custom'"):
        _declare(_int_literal)
    assert model_checks._CHECKED[(_int_literal.__code__, "spiking")] is cached


class Pulse(ValueModel):
    """An elementwise value model: float64 arithmetic, literals allowed."""

    @property
    def state_names(self):
        return ("output",)


def _value_step(state, consts, inputs, i, c, k, key):
    level = np.float64(state[0, i]) * 0.5 + inputs[0, i] * 2
    state[0, i] = level
    return select(level > 1.0, 1, 0)


def _value_step_on_raw_state(state, consts, inputs, i, c, k, key):
    state[0, i] = state[0, i] * 0.5 + inputs[0, i]
    return 0


def _finish_with_three(state, consts, extra):
    return None


def test_value_steps_may_use_literals_in_float64():
    _declare(_value_step, base=Pulse)
    with pytest.raises(rv.ModelError, match=r"float literal 0.5 in arithmetic with a float32 state value.*"
                                            r"np.float64\(state\[ROW, i\]\)"):
        _declare(_value_step_on_raw_state, base=Pulse)
    with pytest.raises(rv.ModelError, match=r"finish takes \(state, consts\)"):
        model_checks.check_finish(_finish_with_three, "model Pulse")
    with pytest.raises(rv.ModelError, match="an elementwise value step takes"):
        model_checks.check_step(_six_arguments, Kind.VALUE, "model Pulse")


# -- functions without source --------------------------------------------------------------------

_CLEAN = '''
def repl_step(state, consts, arriving, i, c, k, key):
    v = state[0, i] * consts[DECAY, c] + arriving[0][i]
    fired = v >= consts[THRESHOLD, c]
    state[0, i] = select(fired, consts[RESET, c], v)
    return select(fired, 1, 0)
'''
_DIRTY = '''
def repl_step(state, consts, arriving, i, c, k, key):
    state[0, i] = state[0, i] * 0.9 + arriving[0][i]
    return 0
'''


def _without_source(source: str):
    namespace = {"np": np, "select": select, "DECAY": DECAY, "THRESHOLD": THRESHOLD, "RESET": RESET}
    exec(compile(source, "<stdin>", "exec"), namespace)  # as `python -c` or the plain REPL defines it
    return namespace["repl_step"]


def test_a_step_without_source_is_checked_on_its_bytecode():
    step = _without_source(_DIRTY)
    with pytest.raises(OSError):
        import inspect

        inspect.getsource(step)
    with pytest.raises(rv.ModelError, match=r"float literal 0.9 in repl_step \(<stdin>:3; no source, checked on its "
                                            r"bytecode\): float literals are float64"):
        _declare(step)
    with pytest.raises(rv.ModelError, match="a spiking step takes"):
        _declare(_without_source("def repl_step(state, consts, arriving, i, c, k):\n    return 0\n"))


class FromRepl(Leaky):
    """A model whose step was defined without source (module level, so a saved network loads)."""

    step = staticmethod(_without_source(_CLEAN))


class InClassBody(Leaky):
    """A model whose step is a static method written in the class body."""

    @staticmethod
    def step(s, p, arriving, i, col, k, key):
        v = s[0, i] * p[DECAY, col] + arriving[0][i]
        fired = v >= p[THRESHOLD, col]
        s[0, i] = select(fired, p[RESET, col], v)
        s[1, i] = s[1, i] + arriving[0][i]
        return select(fired, 1, 0)


@pytest.mark.parametrize("model", [FromRepl, InClassBody])
def test_steps_defined_anywhere_run_on_numpy_and_numba_alike(model):
    result = check_model(model, backends=["numba"], duration=0.01, inputs=8e-3)
    assert result.backends == ("numpy", "numba")
    assert result.spikes > 0
    assert result.ok, str(result)


# -- check_model ---------------------------------------------------------------------------------


def test_check_model_passes_lif_on_numpy_and_numba():
    result = check_model(lambda: rv.neurons.LIF(), backends=["numpy", "numba"])
    assert result.ok and result.first_difference is None, str(result)
    assert result.backends == ("numpy", "numba") and result.round_trip and result.steps == 200
    assert result.spikes > 10
    assert "ok: numpy, numba agree bit for bit" in str(result)
    result.raise_if_failed()


def test_check_model_on_value_models_numpy_only():
    for factory in (lambda: rv.neurons.Kuramoto(omega=rv.init.Normal(100.0, 10.0), pulses=True),
                    lambda: rv.neurons.AKOrN(dim=3), lambda: rv.neurons.Astrocyte()):
        result = check_model(factory, backends=["numpy"], duration=0.005)
        assert result.ok and result.backends == ("numpy",), str(result)


@model_function
def _decay(v):
    """A helper the static checks do not read: its float literal is float64 on numba, float32 on numpy."""
    return v * 0.9


class HiddenLiteral(Leaky):
    """A model whose helper's literal makes numba and numpy round differently."""

    @staticmethod
    def step(state, consts, arriving, i, c, k, key):
        v = _decay(state[0, i]) + arriving[0][i]
        fired = v >= consts[THRESHOLD, c]
        state[0, i] = select(fired, consts[RESET, c], v)
        return select(fired, 1, 0)


def test_check_model_reports_where_backends_differ():
    result = check_model(HiddenLiteral, backends=["numba"], duration=0.01, inputs=8e-3)
    assert not result.ok
    assert result.first_difference.startswith("numba differs from numpy: variable 'v' neuron ")
    assert " (numpy) vs " in result.first_difference and result.first_difference.endswith("(numba)")
    assert "FAILED on numpy, numba" in str(result) and result.first_difference in str(result)
    with pytest.raises(rv.ModelError, match="numba differs from numpy"):
        result.raise_if_failed()


def test_check_model_reports_a_changed_spike(monkeypatch):
    from ranvier import testing

    original = testing._collect

    def moved_spike(net, backend, error):
        result = original(net, backend, error)
        if backend == "numba":
            name, steps, ids = result.spikes[0]
            steps = steps.copy()
            steps[3] += 1
            result.spikes[0] = (name, steps, ids)
        return result

    monkeypatch.setattr(testing, "_collect", moved_spike)
    result = check_model(lambda: rv.neurons.LIF(), backends=["numba"], round_trip=False)
    assert not result.ok and result.spikes > 3
    assert result.first_difference.startswith("numba differs from numpy: spike 3 of 'model': numpy (step ")
    step = int(result.first_difference.split("numpy (step ")[1].split(",")[0])
    assert f"vs numba (step {step + 1}, id " in result.first_difference


def test_model_check_report_and_bad_arguments():
    check = ModelCheck("M", ok=False, backends=("numpy", "numba"), first_difference="numba differs from numpy: x")
    assert str(check) == "check_model(M): FAILED on numpy, numba\n  numba differs from numpy: x"
    with pytest.raises(rv.ModelError, match="not a spiking or elementwise value model"):
        check_model(lambda: rv.neurons.SpikeSource([1e-3], [0]))
    with pytest.raises(rv.BackendError, match="unknown backend"):
        check_model(lambda: rv.neurons.LIF(), backends=["gpu"])
    with pytest.raises(rv.ModelError, match="float literal"):
        check_model(lambda: type("Custom", (Leaky,), {"step": staticmethod(_float_literal)})())


@pytest.mark.slow
def test_check_model_passes_lif_on_the_cuda_simulator(on_cuda_simulator):
    result = on_cuda_simulator(
        "import json, ranvier as rv\n"
        "from ranvier.testing import check_model\n"
        "r = check_model(lambda: rv.neurons.LIF(), backends=['cuda'], duration=0.005)\n"
        "print(json.dumps({'ok': r.ok, 'backends': list(r.backends), 'spikes': r.spikes, 'report': str(r)}))\n")
    assert result["ok"], result["report"]
    assert result["backends"] == ["numpy", "cuda"] and result["spikes"] > 0


_TWO_ROWS = rv.rows("a", "b")


def _reads_a_fourth_state_row(state, consts, arriving, i, c, k, key):
    state[0, i] = state[3, i] + consts[0, c]
    return 0


def _reads_a_third_constants_row(state, consts, arriving, i, c, k, key):
    state[0, i] = state[0, i] + consts[_TWO_ROWS.b + 1, c]
    return 0


class _OneRow(rv.Model):
    state_rows = rv.rows("v")

    def constants(self, params, dt):
        return np.zeros((1, 1))


@pytest.mark.parametrize(("step", "message"), [
    (_reads_a_fourth_state_row, r"reads state row 3 \(line \d+, `state\[3, i\]`\), but the model has 1 state row"),
    (_reads_a_third_constants_row, r"reads constants row 2 .*`consts\[_TWO_ROWS.b \+ 1, c\]`.* has 1 constants row"),
])
def test_a_step_reading_a_row_the_model_lacks_is_refused_at_declaration(step, message):
    model = type("Reader", (_OneRow,), {"step": staticmethod(step)})()
    net = rv.Network()
    with pytest.raises(rv.ModelError, match=rf"population 'reader' \(Reader\): {step.__name__} {message}"):
        net.population(model, 3, name="reader")
    assert "reader" not in net.populations


def _reads_an_undefined_name(state, consts, arriving, i, c, k, key):
    state[0, i] = state[0, i] * consts[0, c] + leak_rate  # noqa: F821 - the mistake under test
    return 0


def test_an_undefined_name_in_a_step_is_refused_at_declaration():
    model = type("Typo", (_OneRow,), {"step": staticmethod(_reads_an_undefined_name)})()
    with pytest.raises(rv.ModelError, match=r"name 'leak_rate' is not defined .*`leak_rate`"):
        rv.Network().population(model, 3, name="typo")


def _reading_row(row):
    def step(state, consts, arriving, i, c, k, key):
        state[0, i] = state[row, i] + consts[0, c]
        return 0

    return type("Closed", (_OneRow,), {"step": staticmethod(step)})()


def test_each_closure_of_a_step_is_checked_on_its_own_values():
    net = rv.Network()
    net.population(_reading_row(0), 2, name="fine")
    with pytest.raises(rv.ModelError, match="reads state row 7"):
        net.population(_reading_row(7), 2, name="past")  # the same code, another closure


def _stores_into_a_row_it_lacks(state, consts, arriving, i, c, k, key):
    v = state[0, i] + consts[0, c]
    rv.language.store_where(state, 3, i, v > consts[0, c], v)
    return 0


def test_a_row_handed_to_a_model_language_helper_is_checked():
    model = type("Storer", (_OneRow,), {"step": staticmethod(_stores_into_a_row_it_lacks)})()
    with pytest.raises(rv.ModelError, match=r"reads state row 3 .*store_where\(state, 3, i"):
        rv.Network().population(model, 3, name="storer")


def _reads_a_second_receptor(state, consts, arriving, i, c, k, key):
    state[0, i] = state[0, i] * consts[0, c] + arriving[1][i]
    return 0


def test_a_step_reading_a_receptor_the_model_lacks_is_refused():
    class OneReceptor(_OneRow):
        step = staticmethod(_reads_a_second_receptor)

        @property
        def receptors(self):
            return ("exc",)

    with pytest.raises(rv.ModelError, match=r"reads the input of receptor 1 .*`arriving\[1\]`.* has 1 receptor"):
        rv.Network().population(OneReceptor(), 3, name="one")
