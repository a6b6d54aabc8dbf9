"""Connection rules (``ranvier.connect``): which (pre, post) pairs a projection contains.

Every rule builds its synapses directly in compressed sparse row form sorted by source neuron:
``row_ptr`` (int64, ``n_pre + 1``) and ``post_ids`` (int32), so that synapse ``s`` of source
``i`` is ``row_ptr[i] <= s < row_ptr[i + 1]``. Nothing is held twice: a projection keeps these
arrays and the backends deliver spikes from them directly. An all-to-all projection with one
weight and one delay keeps none: its synapses are implicit (see :class:`AllToAll`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from ..errors import ProjectionError

#: pairs drawn per block by Bernoulli: bounds the temporary memory of building (about 9 MB)
_CHUNK = 1 << 18



def outgoing_synapses(row_ptr: np.ndarray, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The synapses of ``sources`` in a CSR-by-source projection, in order, and each source's count.

    Returns ``(synapses, lengths)``: ``synapses`` lists the synapse indices of ``sources[0]``, then
    of ``sources[1]``, ...; ``lengths[s]`` is how many belong to ``sources[s]``.
    """
    starts = row_ptr[sources]
    lengths = row_ptr[sources + 1] - starts
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total), lengths

@dataclass
class Synapses:
    """The synapses a rule built: CSR by source, plus per-synapse values the rule carries."""

    row_ptr: np.ndarray
    post_ids: np.ndarray
    weight: np.ndarray | None = None
    delay: np.ndarray | None = None


def _is_real(value) -> bool:
    """Whether ``value`` is a real number (not a bool, a string or None)."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


class Rule:
    """Base class of connection rules."""

    def build(self, n_pre: int, n_post: int, rng: np.random.Generator, same: bool, name: str) -> Synapses:
        """Build the synapses of projection ``name`` between ``n_pre`` and ``n_post`` neurons.

        ``same`` is true when source and target are the same population (autapses possible).
        """
        raise NotImplementedError


def _row_ptr_from_counts(counts: np.ndarray) -> np.ndarray:
    row_ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=row_ptr[1:])
    return row_ptr


def all_to_all_synapses(n_pre: int, width: int, autapses: bool) -> tuple[np.ndarray, np.ndarray]:
    """``row_ptr`` and ``post_ids`` of every source ``j`` to every target ``0 .. width - 1``.

    Without autapses (``width == n_pre``, one population) source ``j`` skips target ``j``: its
    targets are ``t + (t >= j)`` for ``t = 0 .. width - 2``, in ascending order.
    """
    degree = width if autapses else width - 1
    targets = np.arange(degree, dtype=np.int32)
    post_ids = np.tile(targets, n_pre)
    if not autapses:
        post_ids.reshape(n_pre, degree)[...] += targets >= np.arange(n_pre, dtype=np.int32)[:, None]
    return np.arange(n_pre + 1, dtype=np.int64) * degree, post_ids


@dataclass(frozen=True)
class AllToAll(Rule):
    """Every source connects to every target (``autapses=False`` drops i -> i).

    With one weight and one delay and no plasticity, ``Network.connect`` keeps these synapses
    implicit (``Projection.all_to_all``): nothing is stored per synapse.
    """

    autapses: bool = True

    def build(self, n_pre, n_post, rng, same, name):
        return Synapses(*all_to_all_synapses(n_pre, n_post, self.autapses or not same))


@dataclass(frozen=True)
class OneToOne(Rule):
    """Source i connects to target i; both populations must have the same size."""

    def build(self, n_pre, n_post, rng, same, name):
        if n_pre != n_post:
            raise ProjectionError(f"projection {name!r}: OneToOne needs equal sizes, got {n_pre} -> {n_post}")
        return Synapses(np.arange(n_pre + 1, dtype=np.int64), np.arange(n_post, dtype=np.int32))


@dataclass(frozen=True)
class Bernoulli(Rule):
    """Each (pre, post) pair is connected independently with probability ``p``.

    Drawn by geometric skipping over the ``n_pre * n_post`` pairs in row order, so the cost is
    proportional to the number of synapses, not of pairs (Brian 2's ``connect(p=...)``, NEST's
    ``pairwise_bernoulli``).
    """

    p: float
    autapses: bool = True

    def __post_init__(self) -> None:
        if not (_is_real(self.p) and 0.0 <= float(self.p) <= 1.0):
            raise ProjectionError(f"Bernoulli: p must be within [0, 1], got p={self.p!r}")

    def build(self, n_pre, n_post, rng, same, name):
        total = n_pre * n_post
        counts = np.zeros(n_pre, dtype=np.int64)
        expected = total * self.p
        # Written in place into an array a few standard deviations larger than expected, so the
        # synapses are never held twice.
        post_ids = np.empty(int(min(total, expected + 8 * np.sqrt(expected) + 1024)), dtype=np.int32)
        filled = 0
        position = -1
        chunk = int(min(_CHUNK, expected + 6 * np.sqrt(expected) + 64))
        while self.p > 0 and position < total - 1:
            gaps = rng.geometric(self.p, size=chunk) if self.p < 1 else np.ones(chunk, dtype=np.int64)
            positions = position + np.cumsum(gaps)
            position = int(positions[-1])
            pre, post = np.divmod(positions[positions < total], n_post)
            if same and not self.autapses:
                keep = pre != post
                pre, post = pre[keep], post[keep]
            counts += np.bincount(pre, minlength=n_pre)
            if filled + len(post) > len(post_ids):
                post_ids = np.concatenate([post_ids[:filled], np.empty(len(post) + len(post_ids) // 8, np.int32)])
            post_ids[filled:filled + len(post)] = post
            filled += len(post)
        return Synapses(_row_ptr_from_counts(counts), post_ids[:filled])


@numba.njit(cache=True)
def _group_by_source(pre_ids, post_ids, n_pre):
    """Counting sort of (pre, post) pairs by pre, stable: returns row_ptr and reordered posts."""
    counts = np.zeros(n_pre + 1, dtype=np.int64)
    for s in range(pre_ids.shape[0]):
        counts[pre_ids[s] + 1] += 1
    for i in range(n_pre):
        counts[i + 1] += counts[i]
    row_ptr = counts.copy()
    order = np.empty(pre_ids.shape[0], dtype=np.int64)
    for s in range(pre_ids.shape[0]):
        order[counts[pre_ids[s]]] = s
        counts[pre_ids[s]] += 1
    return row_ptr, post_ids[order], order


@dataclass(frozen=True)
class FixedInDegree(Rule):
    """Every target receives exactly ``k`` synapses from sources drawn uniformly at random.

    ``multapses=True`` (NEST's default for ``fixed_indegree``) draws with replacement; with
    ``multapses=False`` the ``k`` sources of a target are distinct.
    """

    k: int
    autapses: bool = True
    multapses: bool = True

    def __post_init__(self) -> None:
        if not (_is_real(self.k) and np.isfinite(self.k) and int(self.k) == self.k and self.k >= 0):
            raise ProjectionError(f"FixedInDegree: k must be a non-negative integer, got k={self.k!r}")

    def build(self, n_pre, n_post, rng, same, name):
        k = int(self.k)
        available = n_pre - (1 if same and not self.autapses else 0)
        if k > available and (not self.multapses or available == 0) and k > 0:
            raise ProjectionError(
                f"projection {name!r}: FixedInDegree k={k} exceeds the {available} available sources"
            )
        post = np.repeat(np.arange(n_post, dtype=np.int32), k)
        if self.multapses:
            pre = rng.integers(0, available, size=n_post * k)
        else:
            pre = np.concatenate([rng.choice(available, size=k, replace=False) for _ in range(n_post)]) \
                if n_post * k else np.zeros(0, dtype=np.int64)
        if same and not self.autapses:
            pre = pre + (pre >= post)  # skip the target's own index
        row_ptr, post_ids, _ = _group_by_source(pre.astype(np.int64), post, n_pre)
        return Synapses(row_ptr, post_ids)


@dataclass(frozen=True, eq=False)
class FromArrays(Rule):
    """Explicit synapses ``pre[s] -> post[s]``, optionally with their own weights and delays."""

    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray | float | None = field(default=None)
    delay: np.ndarray | float | None = field(default=None)

    def build(self, n_pre, n_post, rng, same, name):
        pre = np.asarray(self.pre)
        post = np.asarray(self.post)
        if pre.ndim != 1 or pre.shape != post.shape:
            raise ProjectionError(
                f"projection {name!r}: FromArrays pre and post must be 1-D of equal length, "
                f"got shapes {pre.shape} and {post.shape}"
            )
        for label, ids, size in (("pre", pre, n_pre), ("post", post, n_post)):
            if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= size):
                bad = ids[(ids < 0) | (ids >= size)] if np.issubdtype(ids.dtype, np.integer) else ids
                raise ProjectionError(
                    f"projection {name!r}: FromArrays {label} ids must be integers in [0, {size}), "
                    f"got {bad[:5].tolist()}"
                )
        row_ptr, post_ids, order = _group_by_source(pre.astype(np.int64), post.astype(np.int32), n_pre)
        reordered = []
        for label, values in (("weight", self.weight), ("delay", self.delay)):
            if values is not None and np.ndim(values) == 1:
                values = np.asarray(values, dtype=np.float64)
                if values.shape != pre.shape:
                    raise ProjectionError(
                        f"projection {name!r}: FromArrays {label} has length {len(values)}, "
                        f"expected {len(pre)} (one per synapse)"
                    )
                values = values[order]
            reordered.append(values)
        return Synapses(row_ptr, post_ids, *reordered)
