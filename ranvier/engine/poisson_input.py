"""Poisson drive inside the target: ``net.connect(PoissonInput(rate, n_inputs), target, weight=w)``.

``n_inputs`` independent Poisson spike trains of ``rate`` (Hz) into every target neuron, each
spike adding ``weight`` to the receptor's input, as Brian 2's ``PoissonInput`` and NEST's
``poisson_generator`` (which sends one multiplicity per step) do: no source population, no
synapses and no spikes travel. In each step of the target, neuron ``i`` draws its count
``Poisson(rate * n_inputs * dt)`` (the sum of ``n_inputs`` Poisson trains is exactly that) by
inverse transform of the counter-based ``uniform01(key, k, i)``, so every backend, on any
number of threads, draws the same counts, and adds ``count * weight`` (in the network's
precision) to the receptor's input of that step, after the spikes that arrive in it.

Each drawn input spike is one synaptic event in ``net.stats`` (under the drive's ``name``),
and ``ranvier.hardware`` costs it as the spike traffic it stands for (``docs/hardware.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ProjectionError

#: the largest mean count per step one drive may draw: the inverse transform starts from
#: ``exp(-mean)``, which must stay far from float64's underflow (and costs ~mean terms a neuron)
MAX_MEAN_PER_STEP = 500.0

#: a :func:`count_tables` guide has ``2**GUIDE_BITS`` cells: a uniform number's cell is the top
#: ``GUIDE_BITS`` of its random bits, and at this many almost no cell holds a step of the CDF
GUIDE_BITS = 12
GUIDE_ENTRIES = 1 << GUIDE_BITS


@dataclass(frozen=True)
class PoissonInput:
    """``n_inputs`` independent Poisson trains of ``rate`` (Hz) into every neuron of a target.

    Pass it as the source of ``net.connect``: ``net.connect(rv.connect.PoissonInput(8.0, 1600),
    target, weight=w, receptor="syn")``. It takes no connection rule, no delay and no
    plasticity; ``weight`` is one number (V, as a projection's).
    """

    rate: float
    n_inputs: int

    def __post_init__(self) -> None:
        rate = self.rate
        if isinstance(rate, bool) or not isinstance(rate, int | float | np.number) or not math.isfinite(rate) \
                or rate < 0:
            raise ProjectionError(f"PoissonInput: rate must be a finite number of Hz >= 0, got {rate!r}")
        n = self.n_inputs
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ProjectionError(f"PoissonInput: n_inputs must be a positive integer, got {n!r}")
        object.__setattr__(self, "rate", float(rate))
        object.__setattr__(self, "n_inputs", int(n))


class PoissonDrive:
    """A :class:`PoissonInput` connected to receptor ``receptor`` of ``post`` with ``weight`` (V).

    ``net.poisson_inputs`` lists them in declaration order; ``name`` (``"poisson->L23e:syn"``)
    keys their synaptic events in ``net.stats``. ``weight`` is held in the network's precision.
    """

    def __init__(self, name: str, source: PoissonInput, post, receptor: str, weight: np.ndarray):
        self.name = name
        self.source = source
        self.post = post
        self.receptor = receptor
        self.receptor_index = post.model.receptors.index(receptor)
        self.weight = weight

    @property
    def rate(self) -> float:
        return self.source.rate

    @property
    def n_inputs(self) -> int:
        return self.source.n_inputs

    def mean_per_step(self) -> float:
        """The mean count a target neuron draws per update (its own ``dt``)."""
        return self.source.rate * self.source.n_inputs * self.post.dt

    def __len__(self) -> int:
        """The synapses it stands for: ``n_inputs`` per target neuron."""
        return self.source.n_inputs * self.post.n

    def __repr__(self) -> str:
        return (f"PoissonDrive({self.name!r}, {self.source.n_inputs} x {self.source.rate:g} Hz into "
                f"{self.post.n} neurons)")


def make_drive(network, source: PoissonInput, post, rule, weight, delay, receptor, plasticity) -> PoissonDrive:
    """Check and build the drive that ``network.connect(source, post, ...)`` declares."""
    from .network import Population

    owner = f"connect PoissonInput -> {getattr(post, 'name', post)!r}"
    if rule is not None:
        raise ProjectionError(f"{owner}: a PoissonInput takes no connection rule (each target neuron gets its "
                              f"own {source.n_inputs} inputs), got {rule!r}")
    if not isinstance(post, Population) or post.network is not network \
            or network.populations.get(post.name) is not post:
        raise ProjectionError(f"{owner}: the target must be a population of this network")
    if post.model.kind != "spiking":
        raise ProjectionError(f"{owner}: {post.name!r} is not a spiking population; a PoissonInput drives the "
                              f"receptors of spiking neurons (connect a PoissonSource to a value population)")
    if delay is not None:
        raise ProjectionError(f"{owner}: a PoissonInput draws its input in the step it arrives; it takes no "
                              f"delay, got {delay!r}")
    if plasticity is not None:
        raise ProjectionError(f"{owner}: a PoissonInput has no synapses to learn")
    receptors = post.model.receptors
    if receptor is None:
        if len(receptors) != 1:
            raise ProjectionError(f"{owner}: say which receptor, one of {list(receptors)}")
        receptor = receptors[0]
    if receptor not in receptors:
        raise ProjectionError(f"{owner}: unknown receptor {receptor!r}; {post.name!r} has {list(receptors)}")
    if weight is None or isinstance(weight, bool) or np.ndim(weight) != 0 \
            or not isinstance(np.asarray(weight).item(), int | float):
        raise ProjectionError(f"{owner}: weight must be one number (V), got {weight!r}")
    value = float(weight)
    dtype = network.dtype
    if not math.isfinite(value) or abs(value) > np.finfo(dtype).max:
        raise ProjectionError(f"{owner}: weight {weight!r} is not a finite {dtype.name}")
    mean = source.rate * source.n_inputs * post.dt
    if mean > MAX_MEAN_PER_STEP:
        raise ProjectionError(f"{owner}: {source.n_inputs} inputs at {source.rate:g} Hz give {mean:g} input spikes "
                              f"per step of {post.dt:g} s; at most {MAX_MEAN_PER_STEP:g} are drawn exactly (connect "
                              f"several PoissonInputs of fewer inputs each)")
    name = f"poisson->{post.name}:{receptor}"
    taken = {p.name for p in network.projections} | {d.name for d in network.poisson_inputs}
    base, copy = name, 1
    while name in taken:
        copy += 1
        name = f"{base}#{copy}"
    return PoissonDrive(name, source, post, receptor, np.asarray(value, dtype=dtype))


def count_tables(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CDF of each drive's count, as ``model.poisson_count`` sums it, and a guide into it.

    ``params`` holds each drive's ``(mean, exp(-mean))`` per row. Row m of the CDF holds the
    running sums ``c_n = c_(n-1) + p_n``, ``p_n = p_(n-1) mean / n`` from ``c_0 = p_0 = exp(-mean)``,
    in float64 and in that order, for ``n < ceil(mean + 10 sqrt(mean) + 12)`` (the cap of the
    sum), then 2.0 (above any uniform number) to the row's end. The sums never fall, so
    ``poisson_count(u, ...)`` equals the number of entries ``<= u``.

    ``guide[m, g]`` describes the cell ``[g, g + 1) / GUIDE_ENTRIES`` of uniform numbers. With ``s``
    the number of entries ``<= g / GUIDE_ENTRIES``, it is ``s``, the count of every ``u`` in the
    cell, where no entry lies inside it, else ``-1 - s`` (the count is found by stepping on from
    ``s``; ``numba_kernels.drawn_count``). The same counts as the sum, without its divisions, and
    almost always without a comparison: a drive of mean 2 has 9 of its 4096 cells stepped.
    """
    rows = []
    for expected, p_zero in params:
        expected, term = float(expected), float(p_zero)
        limit = expected + 10.0 * math.sqrt(expected) + 12.0
        sums = [term]
        n = 1
        while n < limit:
            term = term * expected / n
            sums.append(sums[-1] + term)
            n += 1
        rows.append(sums)
    # at least one 2.0 after the sums: the entry a cell's comparison or step reads past the last sum
    width = max((len(r) for r in rows), default=0) + 1
    cdf = np.full((len(rows), width), 2.0)
    for m, sums in enumerate(rows):
        cdf[m, :len(sums)] = sums
    cells = np.arange(GUIDE_ENTRIES + 1) / GUIDE_ENTRIES
    guide = np.empty((len(rows), GUIDE_ENTRIES), dtype=np.int32)
    for m, row in enumerate(cdf):
        at_start = np.searchsorted(row, cells[:-1], side="right")
        inside = np.searchsorted(row, cells[1:], side="left") - at_start
        guide[m] = np.where(inside == 0, at_start, -1 - at_start)
    return cdf, guide


def drive_key(seed: int, population_index: int, ordinal: int) -> int:
    """The 64-bit key of the counter-based draws of drive ``ordinal`` (its place in ``net.poisson_inputs``)."""
    return int(np.random.SeedSequence([seed, population_index, 0xD21E, ordinal]).generate_state(1, dtype=np.uint64)[0])
