"""The model language: what a neuron model declares, and the helpers its update may use.

A model is defined once (architecture principle 2). Its update is a plain Python function of
the form ``step(state, consts, arriving, i, c, k, key) -> spike count`` written with scalar
arithmetic, :func:`select` for branches, :func:`store_where` for writes that rarely change a
value, and :func:`uniform01` for random numbers. Backends call
it in different ways:

* the numpy backend passes ``i = np.arange(n)``, so every expression is a vectorised array
  expression;
* the numba backend compiles it and calls it in a loop over ``i`` (LLVM inlines it);
* a GPU backend compiles the same function as a device function with ``i`` the thread index.

Arguments of ``step``:

``state``    array ``(n_state, n)``: the model's state variables, one row each, in the
             network's precision (float32, or float64 with ``Network(precision="double")``).
``consts``   array ``(n_consts, n)`` or ``(n_consts, 1)`` of the same type: constants computed
             once per run by :meth:`Model.constants` (propagators ``exp(-dt / tau)``,
             thresholds, ...); a single column when every neuron shares them.
``arriving`` a tuple with one array ``(n,)`` of the same type per receptor: the synaptic input
             arriving in this step, the sum of the weights of the spikes whose delay ends
             now. A tuple, so its length is known to the compiler and a loop over
             receptors (``for r in range(len(arriving))``) unrolls.
``i``        neuron index (an integer, or an index array in the numpy backend).
``c``        the column of ``consts`` that holds neuron ``i``'s constants: ``i``, or 0 when the
             population shares one column (a homogeneous population then reads its constants
             from one cache line instead of streaming ``n_consts * n`` floats every step).
``k``        the step being computed, which advances the state from ``k * dt`` to
             ``(k + 1) * dt``.
``key``      a 64-bit integer that seeds the population's random numbers.

It returns the number of spikes each neuron emits in this step. A model that can tell when
its state stops being finite returns :data:`NOT_FINITE` for such a neuron and sets
``checks_finite = True``; for other models the engine checks the whole state after every
step, which costs a pass over memory.

Rules that keep backends bit-identical: take every float constant from ``consts`` (a float
literal is float64 in numba but adopts float32 in numpy), and write branches with
:func:`select`, never ``if`` on a state value. A step allocates nothing (no new arrays): the
numba backend compiles it without numba's runtime, whose reference counting would cost more
than a small population's update. A step calls the model language's functions rather than
numpy's (:func:`floor`, :func:`sqrt`, :func:`exp`, ...): numba.cuda compiles no numpy function.
"""

from __future__ import annotations

import collections
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ..errors import ModelError
from .distributions import Distribution
from .kinds import Kind

#: helper -> typing function giving its compiled (scalar) implementation, for every numba target
_SCALAR_IMPLEMENTATIONS: dict[Callable[..., Any], Callable[..., Any]] = {}


def register_target(target: str, typings: Mapping[Callable, Callable] | None = None) -> None:
    """Make every model-language helper callable from code compiled for numba ``target``.

    ``typings`` gives some helpers an implementation of that target's own (numba.cuda compiles no
    ``np.floor``, say): by helper, a function of numba's ``overload`` form (argument types in,
    implementation out).
    """
    for helper, typing in _SCALAR_IMPLEMENTATIONS.items():
        overload(helper, target=target)((typings or {}).get(helper, typing))


def _scalar_implementation(helper: Callable[..., Any], implementation: Callable[..., Any],
                           cpu_typing: Callable[..., Any] | None = None) -> None:
    """Compile ``helper`` as ``implementation`` on every target, or on the CPU as ``cpu_typing``
    chooses (a function of numba's ``overload`` form) where one is given."""
    @functools.wraps(helper)  # numba matches the typing function's signature to the helper's
    def typing(*args):
        return implementation

    _SCALAR_IMPLEMENTATIONS[helper] = typing
    overload(helper)(cpu_typing or typing)


def model_function(function):
    """Make a helper of the model language callable from compiled step functions.

    The same Python code serves both: numpy runs it on arrays, and numba compiles it for
    scalars when a compiled step function calls it.
    """
    _scalar_implementation(function, function)
    return function


def select(condition, if_true, if_false):
    """Elementwise ``if_true if condition else if_false`` (``np.where`` on arrays)."""
    return np.where(condition, if_true, if_false)


def _select_scalar(condition, if_true, if_false):
    return if_true if condition else if_false


_scalar_implementation(select, _select_scalar)


def spike(x):
    """A spike where ``x >= 0``: the Heaviside step of, say, ``v - v_th`` (a bool, or bool array).

    Write a threshold as ``spike(v - v_th)`` rather than ``v >= v_th`` (the same result, to the
    bit, for every float): in training (:mod:`ranvier.train`) the step runs in torch, where
    ``spike`` is the surrogate-gradient function, so the model trains from its one definition.
    """
    return x >= 0


def _spike_scalar(x):
    return x >= 0


_scalar_implementation(spike, _spike_scalar)


def store_where(array, row, i, condition, value):
    """Set ``array[row, i] = value`` where ``condition`` holds; leave the other entries as they are.

    For a variable that most steps leave unchanged (a refractory counter, say): compiled
    backends skip the write, so the cache line stays clean and is not written back to memory.
    """
    array[row, i] = np.where(condition, value, array[row, i])


def _store_where_scalar(array, row, i, condition, value):
    if condition:
        array[row, i] = value


_scalar_implementation(store_where, _store_where_scalar)


def any_true(condition):
    """True where any element of ``condition`` is (a plain ``bool`` on scalars).

    Lets a model write a data-dependent ``while`` loop that runs per neuron when compiled and
    over the whole population, until every neuron is done, in the numpy backend.
    """
    return bool(np.any(condition))


def _any_true_scalar(condition):
    return condition


_scalar_implementation(any_true, _any_true_scalar)


#: independent partial sums of :func:`row_sum` (entry ``i`` goes to lane ``i % 8``)
_LANES = 8


def row_sum(array, row):
    """``sum_i array[row, i]`` in float64, in one fixed order on every backend.

    Entry ``i`` goes to lane ``i % 8`` of eight partial sums, each added in order, for the
    whole blocks of eight; the lanes are then combined pairwise and the last ``n % 8`` entries
    added in order. Eight independent chains of additions run at the speed of the adder's
    throughput, not its latency. A reduction over the whole population (an order parameter,
    a mean field); a model calls it from ``finish``, not from its per-unit step.
    """
    values = np.asarray(array[row], dtype=np.float64)
    whole = len(values) - len(values) % _LANES
    lanes = np.cumsum(values[:whole].reshape(-1, _LANES), axis=0)[-1] if whole else np.zeros(_LANES)
    total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    for value in values[whole:]:
        total += value
    return total


def _row_sum_scalar(array, row):
    n = array.shape[1]
    whole = n - n % _LANES
    lane0 = lane1 = lane2 = lane3 = lane4 = lane5 = lane6 = lane7 = 0.0
    for i in range(0, whole, _LANES):
        lane0 += np.float64(array[row, i])
        lane1 += np.float64(array[row, i + 1])
        lane2 += np.float64(array[row, i + 2])
        lane3 += np.float64(array[row, i + 3])
        lane4 += np.float64(array[row, i + 4])
        lane5 += np.float64(array[row, i + 5])
        lane6 += np.float64(array[row, i + 6])
        lane7 += np.float64(array[row, i + 7])
    total = ((lane0 + lane1) + (lane2 + lane3)) + ((lane4 + lane5) + (lane6 + lane7))
    for i in range(whole, n):
        total += np.float64(array[row, i])
    return total


@intrinsic
def _lane_sums(typingctx, values, blocks):
    """The eight lanes of :func:`row_sum` over the first ``8 blocks`` entries of the 1-D contiguous
    float32 or float64 array ``values``, as one vector of eight float64 partial sums.

    Each lane adds its entries in order in float64 (float32 widened exactly), as
    :func:`_row_sum_scalar` does, so the bits are the same; LLVM does not vectorise those eight
    scalar chains by itself, and the vector adds run about four times faster.
    """
    signature = types.UniTuple(types.float64, _LANES)(values, blocks)

    def codegen(context, builder, sig, arguments):
        array = context.make_array(sig.args[0])(context, builder, arguments[0])
        element = context.get_data_type(sig.args[0].dtype)
        wide = ir.VectorType(ir.DoubleType(), _LANES)
        block_type = ir.VectorType(element, _LANES)
        total = cgutils.alloca_once_value(builder, ir.Constant(wide, [0.0] * _LANES))
        first = builder.bitcast(array.data, block_type.as_pointer())
        with cgutils.for_range(builder, arguments[1]) as loop:
            block = builder.load(builder.gep(first, [loop.index]), align=context.get_abi_sizeof(element))
            if sig.args[0].dtype != types.float64:
                block = builder.fpext(block, wide)
            builder.store(builder.fadd(builder.load(total), block), total)
        sums = builder.load(total)
        lanes = [builder.extract_element(sums, ir.Constant(ir.IntType(32), lane)) for lane in range(_LANES)]
        return context.make_tuple(builder, sig.return_type, lanes)

    return signature, codegen


def _row_sum_lanes(array, row):
    values = array[row]
    n = values.shape[0]
    whole = n - n % _LANES
    lanes = _lane_sums(values, whole // _LANES)
    total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    for i in range(whole, n):
        total += np.float64(values[i])
    return total


def _row_sum_cpu(array, row):
    """On the CPU, a C-contiguous float array's rows are summed by vector lanes (the same bits)."""
    if (isinstance(array, types.Array) and array.ndim == 2 and array.layout == "C"
            and array.dtype in (types.float32, types.float64)):
        return _row_sum_lanes
    return _row_sum_scalar


_scalar_implementation(row_sum, _row_sum_scalar, _row_sum_cpu)


def fill_row(array, row, value):
    """Set every entry of ``array[row]`` to ``value`` (a population variable, kept in every column)."""
    array[row] = value


def _fill_row_scalar(array, row, value):
    for i in range(array.shape[1]):
        array[row, i] = value


_scalar_implementation(fill_row, _fill_row_scalar)


@model_function
def floor(x):
    """The largest integer ``<= x``, as a float (``np.floor``; infinities and NaN stay as they are).

    Write ``floor`` rather than ``np.floor`` in a step: numba.cuda compiles no numpy function, and
    the cuda backend gives this one CUDA's own (exact) floor.
    """
    return np.floor(x)


@model_function
def sqrt(x):
    """The square root, correctly rounded (``np.sqrt``; NaN below 0). Write ``sqrt`` rather than
    ``np.sqrt`` in a step: numba.cuda compiles no numpy function, and the cuda backend gives this one
    CUDA's correctly rounded square root, so every backend gets the same bits."""
    return np.sqrt(x)


# Cody-Waite reduction by pi/2 (pi/2 split into a 33-bit head and its tail) and the minimax
# polynomials of fdlibm's __kernel_sin / __kernel_cos (Sun Microsystems, 1993) on [-pi/4, pi/4].
_TWO_OVER_PI = 6.36619772367581382433e-01
_PI_OVER_2_HEAD = 1.57079632673412561417e+00
_PI_OVER_2_TAIL = 6.07710050650619224932e-11
_SIN = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
        2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_COS = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
        -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)


@model_function
def sin_cos(x):
    """``(sin x, cos x)`` in float64, from arithmetic alone, so every backend gets the same bits.

    numpy's and the compilers' own sine and cosine may round differently, and a call to the C
    library stops a compiled loop from vectorising; this is a few multiply-adds a unit. Accurate
    to about 1 ulp for ``|x| < 1e5`` (the reduction by pi/2 loses bits beyond).
    """
    x = np.float64(x)
    quadrant = floor(x * _TWO_OVER_PI + 0.5)
    r = (x - quadrant * _PI_OVER_2_HEAD) - quadrant * _PI_OVER_2_TAIL
    z = r * r
    sine = r + z * r * (_SIN[0] + z * (_SIN[1] + z * (_SIN[2] + z * (_SIN[3] + z * (_SIN[4] + z * _SIN[5])))))
    cosine = 1.0 - (0.5 * z - z * z * (_COS[0] + z * (_COS[1] + z * (_COS[2] + z * (_COS[3] + z * (
        _COS[4] + z * _COS[5]))))))
    turn = quadrant - 4.0 * floor(quadrant * 0.25)
    sin_x = select(turn == 0.0, sine, select(turn == 1.0, cosine, select(turn == 2.0, -sine, -cosine)))
    cos_x = select(turn == 0.0, cosine, select(turn == 1.0, -sine, select(turn == 2.0, -cosine, sine)))
    return sin_x, cos_x


# fdlibm's __ieee754_exp (Sun Microsystems, 1993): ln 2 split into a 32-bit head and its tail,
# the remez polynomial of its rational approximation on [-ln2/2, ln2/2], and its overflow limits.
_LN2_HEAD = 6.93147180369123816490e-01
_LN2_TAIL = 1.90821492927058770002e-10
_ONE_OVER_LN2 = 1.44269504088896338700e+00
_EXP = (1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05,
        -1.65339022054652515390e-06, 4.13813679705723846039e-08)
_EXP_OVERFLOW = 7.09782712893383973096e+02
_EXP_UNDERFLOW = -7.45133219101941108420e+02


@model_function
def _exp_reduced(x):
    """``(y, k)`` with ``exp(x) = y * 2**k``, ``y`` in [0.7, 1.5), for finite ``x`` of moderate size."""
    k = floor(x * _ONE_OVER_LN2 + 0.5)
    high = x - k * _LN2_HEAD
    low = k * _LN2_TAIL
    r = high - low
    t = r * r
    c = r - t * (_EXP[0] + t * (_EXP[1] + t * (_EXP[2] + t * (_EXP[3] + t * _EXP[4]))))
    return 1.0 - ((low - (r * c) / (2.0 - c)) - high), k


def _exp_limits(x, scaled):
    """``exp(x)`` from its scaled value: infinity above the overflow limit, 0 below, NaN for NaN."""
    return select(x > _EXP_OVERFLOW, np.inf, select(x < _EXP_UNDERFLOW, 0.0, select(x == x, scaled, x)))


def _exp_argument(x):
    """``x`` in float64, clamped where ``exp`` saturates anyway, and 0 for NaN (keeps ``k`` an integer)."""
    x = np.float64(x)
    return select(x == x, select(x > 710.0, 710.0, select(x < -746.0, -746.0, x)), 0.0)


def exp(x):
    """``e**x`` in float64, from arithmetic alone, so every backend gets the same bits.

    fdlibm's algorithm (reduction by ln 2, a rational approximation on ``[-ln2/2, ln2/2]``,
    scaling by ``2**k``), accurate to within 1 ulp; numpy's own ``exp`` and the compilers' may
    round differently from each other. Saturates to ``inf`` and 0 like ``np.exp``.
    """
    clamped = _exp_argument(x)
    y, k = _exp_reduced(clamped)
    return _exp_limits(np.float64(x), np.ldexp(y, np.asarray(k).astype(np.int64)))


def _exp_scalar(x):
    clamped = _exp_argument(x)
    y, k = _exp_reduced(clamped)
    return _exp_limits(np.float64(x), math.ldexp(y, int(k)))


_scalar_implementation(_exp_argument, _exp_argument)
_scalar_implementation(_exp_limits, _exp_limits)
_scalar_implementation(exp, _exp_scalar)


def tanh(x):
    """``tanh x`` in float64 from :func:`exp`: ``(1 - e^{-2|x|}) / (1 + e^{-2|x|})`` with the sign of ``x``.

    Within about 1e-16 of the true value (absolute): near 0 the relative error grows like
    ``1e-16 / |x|``.
    """
    x = np.float64(x)
    e = exp(-2.0 * abs(x))
    magnitude = (1.0 - e) / (1.0 + e)
    return select(x < 0.0, -magnitude, magnitude)


#: beyond this |x|, e^{-2|x|} < 2^-55 and tanh x rounds to +-1 whatever e is
_TANH_SATURATED = 20.0


def _tanh_scalar(x):
    """:func:`tanh`, bit for bit, written so that a compiled loop of it vectorises: ``|x|`` is clamped
    where tanh is +-1 in float64 anyway, so ``e^{-2|x|} = y 2^k`` has ``-58 <= k <= 0`` and is
    ``y / (1 << -k)`` (exact, like ``ldexp``) instead of a call to ``ldexp``."""
    x = np.float64(x)
    magnitude_x = abs(x)
    argument = -2.0 * select(magnitude_x > _TANH_SATURATED, _TANH_SATURATED, magnitude_x)
    y, k = _exp_reduced(select(argument == argument, argument, 0.0))
    e = y / np.float64(np.int64(1) << np.int64(-k))
    magnitude = (1.0 - e) / (1.0 + e)
    return select(x == x, select(x < 0.0, -magnitude, magnitude), x)


_scalar_implementation(tanh, _tanh_scalar)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SHIFT30 = np.uint64(30)
_SHIFT27 = np.uint64(27)
_SHIFT31 = np.uint64(31)
_SHIFT11 = np.uint64(11)
_TWO_TO_MINUS_53 = 1.0 / 9007199254740992.0


@model_function
def _mix64(x):
    """splitmix64 finaliser: a bijective 64-bit hash with good avalanche."""
    x = (x ^ (x >> _SHIFT30)) * _MIX1
    x = (x ^ (x >> _SHIFT27)) * _MIX2
    return x ^ (x >> _SHIFT31)


@model_function
def random_bits(key, k, i):
    """64 random bits (uint64) that depend only on ``(key, k, i)``: those :func:`uniform01` scales.

    Counter-based, a splitmix64 hash of the population key and the step, hashed again with
    the neuron index, so every backend, in any order and on any number of threads, draws
    the same bits.
    """
    x = _mix64(np.uint64(key) + np.uint64(k) * _GOLDEN)
    return _mix64(x ^ (np.uint64(i) * _MIX1 + _GOLDEN))


@model_function
def bits_to_uniform01(bits):
    """The uniform number in [0, 1) of 64 random bits: their top 53 bits times 2^-53 (float64, exact)."""
    return (bits >> _SHIFT11) * _TWO_TO_MINUS_53


@model_function
def uniform01(key, k, i):
    """A uniform random number in [0, 1) that depends only on ``(key, k, i)``.

    ``bits_to_uniform01(random_bits(key, k, i))``: counter-based, so every backend, in any order
    and on any number of threads, draws the same numbers. Returns float64.
    """
    return bits_to_uniform01(random_bits(key, k, i))


@model_function
def poisson_count(u, expected, p_zero):
    """The ``Poisson(expected)`` count whose CDF the uniform number ``u`` falls in (float64 throughout).

    Inverse-transform sampling: the count is the number of terms of the CDF, starting at
    ``p_zero = exp(-expected)``, that ``u`` exceeds, so every backend computes the same count
    from the same ``u``, in about ``expected + 1`` terms. Capped ten standard deviations (plus
    12) above the mean, so a ``u`` above the summed CDF's rounding limit cannot run on.
    """
    term = p_zero
    cumulative = term
    limit = expected + 10.0 * sqrt(expected) + 12.0
    count = 0
    n = 0
    searching = u >= cumulative
    while any_true(searching):
        count = count + select(searching, 1, 0)
        n += 1
        term = term * expected / n
        cumulative = cumulative + term
        searching = searching & (u >= cumulative) & (n < limit)
    return count


def rows(*names: str) -> tuple:
    """Row indices by name, declared once: ``STATE = rows("v", "u")`` gives ``STATE.v == 0``, ``STATE.u == 1``.

    A named tuple of ints, which numba and numba.cuda read as compile-time constants, so a step
    writes ``state[STATE.v, i]`` at no cost; set ``state_rows = STATE`` on the model and its
    ``state_names`` follow. The same serves the rows of ``consts``.
    """
    if not names:
        raise ModelError("rows: name at least one row")
    for name in names:
        if not (isinstance(name, str) and name.isidentifier()) or name.startswith("_"):
            raise ModelError(f"rows: {name!r} is not a valid row name (an identifier not starting with _)")
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ModelError(f"rows: {duplicate!r} is named twice")
    return collections.namedtuple("Rows", names)(*range(len(names)))


ParameterValue = float | Distribution | np.ndarray

#: spike count a step returns for a neuron whose state became NaN or infinite
NOT_FINITE = -1
#: the same, as stored in the backends' uint16 spike-count arrays
NOT_FINITE_UINT16 = 0xFFFF
#: the most spikes a neuron may emit in one step (counts are stored as uint16)
MAX_SPIKES_PER_STEP = NOT_FINITE_UINT16 - 1


def _constructor_arguments(cls: type) -> dict[str, inspect.Parameter]:
    """The named arguments of ``cls.__init__``, and where it takes ``*args`` or ``**kwargs`` (to hand
    on), those of the next base class's ``__init__``, and so on up to :class:`Model`."""
    arguments: dict[str, inspect.Parameter] = {}
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    for base in cls.__mro__:
        if base is object or "__init__" not in vars(base):
            continue
        signature = inspect.signature(base.__init__)
        for name, argument in list(signature.parameters.items())[1:]:
            if argument.kind not in variadic:
                arguments.setdefault(name, argument)
        if not any(argument.kind in variadic for argument in signature.parameters.values()):
            break
    return arguments


class Model:
    """Base class of neuron models.

    Subclasses set the class attributes, store their parameters in ``self.parameters`` (name ->
    float, array or :class:`~ranvier.init.Distribution`) and implement :meth:`constants`.
    """

    #: the name of the update function's family, used in messages
    kind: ClassVar[Kind] = Kind.SPIKING
    #: the update function ``step(state, consts, arriving, i, c, k, key) -> count``
    step: ClassVar[Callable[..., Any]]
    #: whether ``step`` returns NOT_FINITE itself when the state stops being finite
    checks_finite: ClassVar[bool] = False
    def __init__(self) -> None:
        self.parameters: dict[str, ParameterValue] = {}

    #: the state rows by name, from :func:`rows` (``STATE = rows("v", "u")``); sets ``state_names``
    state_rows: ClassVar[tuple | None] = None

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the state variables, in the row order of the ``state`` array (from ``state_rows``)."""
        if self.state_rows is None:
            raise NotImplementedError(f"{type(self).__name__} sets neither state_rows nor state_names")
        return tuple(self.state_rows._fields)

    @property
    def receptors(self) -> tuple[str, ...]:
        """Names of the synaptic receptors, in the row order of ``arriving``."""
        return ()

    def initial_state(self) -> dict[str, ParameterValue]:
        """Default initial value of every state variable."""
        return {name: 0.0 for name in self.state_names}

    def constants(self, params: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        """Per-neuron constants ``(n_consts, n)`` for a step of ``dt`` seconds (float64).

        The engine casts them to the network's precision and keeps a single column when all
        columns are equal.
        """
        raise NotImplementedError

    def spike_bound(self, params: Mapping[str, np.ndarray], dt: float, n: int) -> int:
        """The most spikes ``n`` neurons emit together in one step (sizes the spike buffers)."""
        return n

    def _config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this model: ``type(self)._from_config(self._config())``.

        Storage (:mod:`ranvier.engine.storage`) saves them with the class's import path. The
        default reads each argument of ``__init__`` from ``self.parameters`` or from an attribute
        of the same name, which covers models that keep their arguments there; a model that
        keeps them elsewhere overrides this. An ``__init__`` that takes ``*args`` or ``**kwargs``
        hands them on to its base class's, whose arguments are read too. Values may be numbers,
        strings, numpy arrays, ``ranvier.init`` distributions, or dicts and lists of them.
        """
        config: dict[str, Any] = {}
        for name, argument in _constructor_arguments(type(self)).items():
            if name in self.parameters:
                config[name] = self.parameters[name]
            elif hasattr(self, name):
                config[name] = getattr(self, name)
            elif argument.default is argument.empty:
                raise ModelError(f"{type(self).__name__}: constructor argument {name!r} is neither a parameter nor "
                                 "an attribute; the model must override _config to be saved")
        return config

    @classmethod
    def _from_config(cls, config: Mapping[str, Any]) -> Model:
        """The model that :meth:`_config` describes."""
        return cls(**config)

    def _numbers(self, name: str, value: ParameterValue) -> np.ndarray:
        """``value`` as float64; a string or other object that is no number is a ModelError naming it."""
        if isinstance(value, str | bytes):
            raise ModelError(f"{type(self).__name__}: {name} must be a number in SI units (ranvier.units: "
                             f"20 * ms, -65 * mV), an array or a ranvier.init distribution, got {value!r}")
        try:
            return np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ModelError(f"{type(self).__name__}: {name} must be a number, an array or a ranvier.init "
                             f"distribution, got {value!r}") from None

    def _check_positive(self, **values: ParameterValue) -> None:
        for name, value in values.items():
            if isinstance(value, Distribution):
                continue
            array = self._numbers(name, value)
            if not np.all(np.isfinite(array)) or np.any(array <= 0):
                raise ModelError(f"{type(self).__name__}: {name} must be positive and finite, got {value!r}")

    def _check_finite(self, **values: ParameterValue) -> None:
        for name, value in values.items():
            if isinstance(value, Distribution):
                continue
            if not np.all(np.isfinite(self._numbers(name, value))):
                raise ModelError(f"{type(self).__name__}: {name} must be finite, got {value!r}")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        return f"{type(self).__name__}({shown})"


@dataclass(frozen=True)
class ArrayStep:
    """A matrix model's update written as one array function (see :meth:`ValueModel.array_step`).

    ``function(xp, *arrays)`` returns the update's results (an array or a tuple) from 2-d float64
    arrays, with ``xp`` numpy or anything that offers the torch functions it calls.
    ``gather(state, inputs)`` gives those arrays as views of the population's state and inputs
    (float64 ``(input rows, width)``: the ports in :meth:`ValueModel.ports` order, each port's
    channels in turn, all ports of one width), and ``destinations(state, *results)`` the views of
    the state the results are written into, in order. Both take their sizes from the arrays'
    shapes and use only slices, ``.T`` and ``reshape`` of contiguous rows, which numba compiles
    quickly: the numba and cuda backends trace ``function`` once (:mod:`ranvier.engine.array_trace`)
    and run the trace compiled inside their loops (numba calls ``gather`` and ``destinations``
    compiled; cuda resolves their views to offsets in the state once), between ``gather`` and the
    copy into the destinations; a function the tracer cannot record runs in numpy on the host,
    with a warning that says why.
    """

    function: Callable[..., Any]
    gather: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]
    destinations: Callable[..., tuple[np.ndarray, ...]]

    def run(self, state: np.ndarray, inputs: np.ndarray) -> None:
        """One update (``inputs`` as for ``gather``): in numpy and float64, the reference the compiled trace
        follows."""
        arrays = [np.asarray(a, dtype=np.float64) for a in self.gather(state, inputs)]
        returned = self.function(np, *arrays)
        results = returned if isinstance(returned, tuple) else (returned,)
        for view, result in zip(self.destinations(state, *results), results, strict=True):
            view[...] = result


class ValueModel(Model):
    """Base class of value-emitting models (Kuramoto, AKOrN, CfC, LTC, ELM, torch ``Rate``).

    A value population sends a dense vector, not spikes (architecture principle 4). It updates
    once per window of its own ``dt`` (a multiple of the network's), from the inputs that reached
    it during the window, with array code (numpy, or torch for ``Rate``) rather than a compiled
    scalar step: its work is matrix products, which the BLAS behind numpy already runs well.

    Subclasses declare:

    ``state_names``  the state rows, as for spiking models; the rows named in ``output_rows``
                     hold the emitted vector, one row per channel.
    :meth:`ports`    input port name -> ``(width, channels)``. A projection targets a port
                     (``connect(..., receptor=port)``); its targets index ``range(width)``.
    :meth:`advance`  one update: reads ``inputs[port]`` (float64 ``(channels, width)``),
                     updates ``state`` in place and returns the pulses it emits (a bool array
                     of ``n``, or ``None`` for a model without pulse output).

    A value reaching a port is ``sum_j w_ij out_j`` over the projection's synapses, per channel;
    spikes reaching a port are weighted counts, ``sum_j w_ij (spikes of j that arrived in the
    window)``.

    An *elementwise* model (Kuramoto, AKOrN, Astrocyte) instead defines its update once in the
    model language, like a spiking model, and every backend runs it inside its compiled loop:

    ``step(state, consts, inputs, i, c, k, key) -> pulses``  updates unit ``i`` over one window
        (float64 arithmetic: float literals are then safe). ``inputs`` is float64
        ``(input rows, n)``: the ports in :meth:`ports` order, each port's channels in turn;
        ``consts`` is float64 from :meth:`constants`; it returns the unit's pulse count (0 or 1).
        Every port of an elementwise model is ``n`` wide.
    ``finish(state, consts)``  (optional) sets population variables after every unit stepped,
        with :func:`row_sum` and :func:`fill_row`.
    """

    kind: ClassVar[Kind] = Kind.VALUE
    #: population-level variables (one value for the whole population, kept in every column);
    #: recording one takes a single column unless ``ids`` says otherwise
    population_variables: ClassVar[tuple[str, ...]] = ()
    #: an elementwise model's update of unit ``i``, in the model language, or None for a model
    #: that updates with :meth:`advance`; see :class:`ValueModel`
    step: ClassVar[Callable[..., Any] | None] = None
    #: an elementwise model's pass over the whole population after its units' steps
    #: (``finish(state, consts)``: population variables such as an order parameter), or None
    finish: ClassVar[Callable[..., Any] | None] = None

    @property
    def output_rows(self) -> tuple[int, ...]:
        """State rows holding the output channels."""
        return (self.state_names.index("output"),)

    @property
    def channels(self) -> int:
        """Number of output channels per unit."""
        return len(self.output_rows)

    @property
    def pulses(self) -> bool:
        """Whether :meth:`advance` emits pulses (spikes) that spiking projections deliver."""
        return False

    def ports(self, n: int) -> dict[str, tuple[int, int]]:
        """Input port name -> ``(width, channels)`` for a population of ``n`` units."""
        return {"input": (n, 1)}

    @property
    def receptors(self) -> tuple[str, ...]:
        return tuple(self.ports(1))

    def constants(self, params: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        return np.zeros((0, 1), dtype=np.float32)

    def derive(self, state: np.ndarray) -> None:
        """Recompute rows that follow from the others (outputs, order), before a run publishes them."""

    @property
    def elementwise(self) -> bool:
        """Whether the model updates with a model-language ``step`` (else with :meth:`advance`)."""
        return self.step is not None

    def advance(self, state: np.ndarray, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray],
                dt: float) -> np.ndarray | None:
        """Advance ``state`` by one update of ``dt`` seconds; return pulses or ``None``."""
        raise NotImplementedError

    def array_step(self, n: int, dt: float) -> ArrayStep | None:
        """The update of ``n`` units over ``dt`` seconds as one :class:`ArrayStep`, or None (the default).

        A model that gives one emits no pulses and its :meth:`advance` must be the step's
        :meth:`ArrayStep.run`; the numba and cuda backends then run the step compiled instead of calling
        :meth:`advance`. The step is asked for at the start of every run: a different object than
        the last (new weights) is traced again, which lowers the network again, so a model returns
        the same object while nothing changed (CfC and ELM keep theirs per weights object).
        """
        return None
