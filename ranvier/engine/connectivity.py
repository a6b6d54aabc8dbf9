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
from .distributions import draw_in_blocks

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


def sort_rows_by_delay(row_ptr: np.ndarray, delay_steps: np.ndarray, post_ids: np.ndarray,
                       weights: np.ndarray) -> None:
    """Put each source's synapses in ascending order of delay, ties kept in their order, in place
    (``weights`` of one entry is shared and stays).

    A source's synapses of one delay then arrive in one ring slot as one run, which the numba
    backend delivers without sorting them by arrival (``numba_kernels.deliver_delay_groups``).
    Every ring entry still receives its additions in the same order (spike by spike, and the
    synapses of a spike onto one target and slot in their order), so no sum changes. Rows are
    sorted on all threads, each through scratch of its own length (no index per synapse), by a
    stable radix sort of one or two byte passes.
    """
    _sort_rows_by_delay(row_ptr, delay_steps, post_ids, weights, len(weights) == len(delay_steps))


@numba.njit(cache=True, parallel=True)
def _sort_rows_by_delay(row_ptr, delay_steps, post_ids, weights, weight_per_synapse):
    for row in numba.prange(row_ptr.shape[0] - 1):
        begin, end = row_ptr[row], row_ptr[row + 1]
        in_order = True
        low = high = np.int64(delay_steps[begin]) if end > begin else 0
        for synapse in range(begin, end):
            if synapse > begin and delay_steps[synapse] < delay_steps[synapse - 1]:
                in_order = False
            low = min(low, np.int64(delay_steps[synapse]))
            high = max(high, np.int64(delay_steps[synapse]))
        if in_order:
            continue
        # a stable radix sort on the delay above the row's lowest, a byte a pass: one pass for a span
        # of up to 256 steps, two for any uint16 delay (explicit loops compile in a fraction of the time
        # np.argsort and fancy indexing took)
        length = end - begin
        scratch_delays = np.empty(length, dtype=delay_steps.dtype)
        scratch_posts = np.empty(length, dtype=post_ids.dtype)
        scratch_weights = np.empty(length if weight_per_synapse else 0, dtype=weights.dtype)
        counts = np.empty(257, dtype=np.int64)
        passes = 1 if high - low < 256 else 2
        for sort_pass in range(passes):
            shift = 8 * sort_pass
            to_scratch = sort_pass == 0
            counts[:] = 0
            for place in range(length):
                synapse = begin + place
                delay = delay_steps[synapse] if to_scratch else scratch_delays[place]
                counts[((np.int64(delay) - low) >> shift & 255) + 1] += 1
            for digit in range(256):
                counts[digit + 1] += counts[digit]
            for place in range(length):
                synapse = begin + place
                if to_scratch:
                    delay = delay_steps[synapse]
                    digit = (np.int64(delay) - low) >> shift & 255
                    target = counts[digit]
                    scratch_delays[target] = delay
                    scratch_posts[target] = post_ids[synapse]
                    if weight_per_synapse:
                        scratch_weights[target] = weights[synapse]
                else:
                    delay = scratch_delays[place]
                    digit = (np.int64(delay) - low) >> shift & 255
                    target = begin + counts[digit]
                    delay_steps[target] = delay
                    post_ids[target] = scratch_posts[place]
                    if weight_per_synapse:
                        weights[target] = scratch_weights[place]
                counts[digit] += 1
        if passes == 1:
            for place in range(length):
                delay_steps[begin + place] = scratch_delays[place]
                post_ids[begin + place] = scratch_posts[place]
                if weight_per_synapse:
                    weights[begin + place] = scratch_weights[place]


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
def _group_by_source(pre_ids, post_ids, n_pre, keep_order):
    """Counting sort of (pre, post) pairs by pre, stable: returns row_ptr, the reordered posts and, when
    ``keep_order``, each sorted synapse's index in the input (else an empty array).

    The posts are scattered straight to their places: gathering them through the order after the
    sort wrote and read an eight-byte index per synapse more, which a rule without per-synapse
    values of its own does not need.
    """
    counts = np.zeros(n_pre + 1, dtype=np.int64)
    for s in range(pre_ids.shape[0]):
        counts[pre_ids[s] + 1] += 1
    for i in range(n_pre):
        counts[i + 1] += counts[i]
    row_ptr = counts.copy()
    grouped = np.empty_like(post_ids)
    order = np.empty(pre_ids.shape[0] if keep_order else 0, dtype=np.int64)
    for s in range(pre_ids.shape[0]):
        at = counts[pre_ids[s]]
        grouped[at] = post_ids[s]
        if keep_order:
            order[at] = s
        counts[pre_ids[s]] = at + 1
    return row_ptr, grouped, order


@numba.njit(cache=True, parallel=True)
def _group_fixed_in_degree(drawn, k, n_pre, skip_self, parts):
    """Row pointers and targets of the synapses ``drawn[s] -> s // k``, grouped by source in
    ``s`` order (the stable counting sort of :func:`_group_by_source` with the targets implied).

    With ``skip_self`` a drawn source at or above its target moves up one, so no target draws
    itself: sources are drawn from ``n_pre - 1``. Each thread counts, then places, the synapses
    of its own stretch (one of ``parts``) of ``s``; a source's synapses from stretch ``p`` go after
    those from stretches before it, so the order, and the result, is the same for any ``parts``.
    """
    n = drawn.shape[0]
    counts = np.zeros((parts, n_pre + 1), dtype=np.int64)
    for part in numba.prange(parts):
        for s in range(part * n // parts, (part + 1) * n // parts):
            source = drawn[s]
            if skip_self and source >= s // k:
                source += 1
            counts[part, source] += 1
    row_ptr = np.empty(n_pre + 1, dtype=np.int64)
    placed = 0
    for source in range(n_pre + 1):
        row_ptr[source] = placed
        for part in range(parts):
            placed += counts[part, source]
            counts[part, source] = placed - counts[part, source]
    grouped = np.empty(n, dtype=np.int32)
    for part in numba.prange(parts):
        for s in range(part * n // parts, (part + 1) * n // parts):
            target = s // k
            source = drawn[s]
            if skip_self and source >= target:
                source += 1
            grouped[counts[part, source]] = target
            counts[part, source] += 1
    return row_ptr, grouped


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
        if self.multapses:
            pre = np.empty(n_post * k, dtype=np.int32)

            def draw(generator: np.random.Generator, start: int, count: int) -> None:
                pre[start:start + count] = generator.integers(0, available, size=count)

            draw_in_blocks(rng, len(pre), draw)
        else:
            pre = np.concatenate([rng.choice(available, size=k, replace=False) for _ in range(n_post)]) \
                if n_post * k else np.zeros(0, dtype=np.int64)
        parts = max(1, min(numba.get_num_threads(), len(pre) >> 16))
        row_ptr, post_ids = _group_fixed_in_degree(pre, k, n_pre, same and not self.autapses, parts)
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
        row_ptr, post_ids, order = _group_by_source(pre.astype(np.int64), post.astype(np.int32), n_pre, True)
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


def _pair(value, what: str) -> tuple[int, int]:
    """``value`` (one non-negative integer or two) as a (rows, columns) pair."""
    values = np.ravel(np.asarray(value))
    if values.size == 1:
        values = np.repeat(values, 2)
    if values.size != 2 or not all(_is_real(v) and float(v).is_integer() and v >= 0 for v in values):
        raise ProjectionError(f"Conv2d: {what} must be one non-negative integer or two, got {value!r}")
    return int(values[0]), int(values[1])


#: the fields of :meth:`Convolution.geometry`, in order (the backends read them by position)
GEOMETRY_FIELDS = ("in_channels", "in_height", "in_width", "out_channels", "out_height", "out_width",
                   "kernel_height", "kernel_width", "stride_y", "stride_x", "padding_y", "padding_x",
                   "dilation_y", "dilation_x", "groups")


@dataclass(frozen=True)
class Convolution:
    """Where a 2-D convolution's synapses go: a source map ``(C, H, W)`` onto a target map ``(C_out, H_out, W_out)``.

    Neurons are numbered in C order (channel, row, column), as NIR's and torch's ``Flatten``.
    Source ``(c, y, x)`` of group ``g = c // (C / groups)`` reaches target ``(o, u, v)`` for each
    output channel ``o`` of that group and kernel entry ``(i, j)`` with::

        y + padding_y - i dilation_y = u stride_y,   x + padding_x - j dilation_x = v stride_x,
        0 <= u < H_out,  0 <= v < W_out

    through kernel entry ``[o, c - g C / groups, i, j]`` (the kernel is ``(C_out, C / groups,
    kernel_height, kernel_width)``, stored once, C order). ``padding`` counts the rows and columns
    of zeros before the map (top, left); the output size fixes those after it.
    """

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel_size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @property
    def n_pre(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_post(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return (self.out_shape[0], self.in_shape[0] // self.groups, *self.kernel_size)

    def geometry(self) -> np.ndarray:
        """The integers the backends deliver from, in the order of :data:`GEOMETRY_FIELDS` (int64)."""
        return np.array([*self.in_shape, *self.out_shape, *self.kernel_size, *self.stride, *self.padding,
                         *self.dilation, self.groups], dtype=np.int64)

    @classmethod
    def from_geometry(cls, geometry) -> Convolution:
        """The convolution whose :meth:`geometry` is ``geometry`` (a ProjectionError names what is wrong)."""
        values = np.asarray(geometry)
        if values.shape != (len(GEOMETRY_FIELDS),) or not np.issubdtype(values.dtype, np.integer):
            raise ProjectionError(f"a convolution's geometry is {len(GEOMETRY_FIELDS)} integers "
                                  f"({', '.join(GEOMETRY_FIELDS)}), got {values.tolist()!r}")
        fields = dict(zip(GEOMETRY_FIELDS, values.tolist(), strict=True))
        low = [name for name, value in fields.items() if value < (0 if name.startswith("padding") else 1)]
        groups = fields["groups"]
        if low or fields["in_channels"] % groups or fields["out_channels"] % groups:
            raise ProjectionError(f"convolution geometry {fields}: {', '.join(low) or 'groups'} out of range "
                                  "(sizes, strides and dilations at least 1, padding at least 0, groups dividing "
                                  "the channels)")
        v = list(fields.values())
        return cls(tuple(v[0:3]), tuple(v[3:6]), tuple(v[6:8]), tuple(v[8:10]), tuple(v[10:12]), tuple(v[12:14]),
                   groups)

    def _taps(self, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """Along ``axis`` (0: rows, 1: columns): for each source position and kernel tap, the target
        position and whether it exists, ``(size, taps)`` each."""
        size, out = self.in_shape[1 + axis], self.out_shape[1 + axis]
        stride, padding, dilation = self.stride[axis], self.padding[axis], self.dilation[axis]
        shifted = np.arange(size)[:, None] + padding - np.arange(self.kernel_size[axis])[None, :] * dilation
        target = shifted // stride
        return target, (shifted >= 0) & (shifted % stride == 0) & (target < out)

    def out_degrees(self) -> np.ndarray:
        """Synapses of each source neuron (int64, ``n_pre``): ``C_out / groups`` times its taps."""
        rows = self._taps(0)[1].sum(axis=1)
        columns = self._taps(1)[1].sum(axis=1)
        per_position = np.outer(rows, columns).ravel() * (self.out_shape[0] // self.groups)
        return np.tile(per_position, self.in_shape[0]).astype(np.int64)

    def in_degrees(self) -> np.ndarray:
        """Synapses into each target neuron (int64, ``n_post``): ``C / groups`` times the taps inside the map."""
        counts = []
        for axis in (0, 1):
            target, valid = self._taps(axis)
            counts.append(np.bincount(target[valid], minlength=self.out_shape[1 + axis]))
        per_position = np.outer(*counts).ravel() * (self.in_shape[0] // self.groups)
        return np.tile(per_position, self.out_shape[0]).astype(np.int64)

    def row_ptr(self) -> np.ndarray:
        """Each source's first synapse in the equivalent CSR order, and the synapse count at the end."""
        return _row_ptr_from_counts(self.out_degrees())

    def synapses(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The equivalent explicit synapses: ``(row_ptr, post_ids, kernel_index)``, CSR by source.

        A source's targets ascend; ``kernel_index`` is each synapse's entry of the flattened kernel.
        Made on demand (memory per synapse): the backends deliver from :meth:`geometry` instead.
        """
        channels, height, width = self.in_shape
        out_channels, out_height, out_width = self.out_shape
        in_group, out_group = channels // self.groups, out_channels // self.groups
        kh, kw = self.kernel_size
        rows, row_valid = self._taps(0)
        columns, column_valid = self._taps(1)
        # every (source channel, output channel of its group, y, x, tap i, tap j); the valid ones kept
        c, g, y, x, i, j = np.ix_(np.arange(channels), np.arange(out_group), np.arange(height), np.arange(width),
                                  np.arange(kh), np.arange(kw))
        o = (c // in_group) * out_group + g
        shape = (channels, out_group, height, width, kh, kw)
        valid = np.broadcast_to(row_valid[y, i] & column_valid[x, j], shape)
        pre = np.broadcast_to((c * height + y) * width + x, shape)[valid]
        post = np.broadcast_to((o * out_height + rows[y, i]) * out_width + columns[x, j], shape)[valid]
        kernel_index = np.broadcast_to(((o * in_group + c % in_group) * kh + i) * kw + j, shape)[valid]
        order = np.lexsort((post, pre))
        return self.row_ptr(), post[order].astype(np.int32), kernel_index[order].astype(np.int64)


@dataclass(frozen=True, eq=False)
class Conv2d(Rule):
    """A 2-D convolution of a source map ``input_shape = (C, H, W)`` with ``kernel`` ``(C_out, C / groups, kh, kw)``.

    ``stride``, ``padding`` and ``dilation`` are one integer or (rows, columns), as in
    ``torch.nn.Conv2d``; ``padding="same"`` (stride 1) keeps the map's size, ``"valid"`` is 0.
    The target has ``C_out H_out W_out`` neurons, ``H_out = (H + 2 padding - dilation (kh - 1) - 1)
    // stride + 1``; geometry in :class:`Convolution`. The kernel entries are the weights (V),
    so ``connect`` takes no ``weight``. With one delay and no plasticity, ``Network.connect``
    keeps the kernel once and the backends compute each spike's targets (``Projection.convolution``);
    otherwise the synapses are built explicitly.
    """

    kernel: np.ndarray
    input_shape: tuple[int, int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] | str = 0
    dilation: int | tuple[int, int] = 1
    groups: int = 1

    def __post_init__(self) -> None:
        kernel = np.asarray(self.kernel, dtype=np.float64)
        shape = tuple(np.ravel(self.input_shape))
        if kernel.ndim != 4 or not np.all(np.isfinite(kernel)):
            raise ProjectionError(f"Conv2d: kernel must be a finite (C_out, C / groups, kh, kw) array, got shape "
                                  f"{kernel.shape}")
        if len(shape) != 3 or not all(_is_real(s) and float(s).is_integer() and s > 0 for s in shape):
            raise ProjectionError(f"Conv2d: input_shape must be three positive integers (C, H, W), got "
                                  f"{self.input_shape!r}")
        groups = self.groups
        if not (_is_real(groups) and float(groups).is_integer() and groups >= 1
                and shape[0] % groups == 0 and kernel.shape[0] % groups == 0
                and kernel.shape[1] == shape[0] // groups):
            raise ProjectionError(f"Conv2d: groups={groups!r} must divide the {shape[0]} input and {kernel.shape[0]} "
                                  f"output channels, with kernel.shape[1] = C / groups; kernel shape {kernel.shape}")
        object.__setattr__(self, "kernel", kernel)
        object.__setattr__(self, "input_shape", tuple(int(s) for s in shape))
        object.__setattr__(self, "groups", int(groups))
        for name in ("stride", "dilation"):
            value = _pair(getattr(self, name), name)
            if min(value) < 1:
                raise ProjectionError(f"Conv2d: {name} must be at least 1, got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        if isinstance(self.padding, str) and self.padding not in ("same", "valid"):
            raise ProjectionError(f"Conv2d: padding must be integers, 'same' or 'valid', got {self.padding!r}")
        if self.padding == "same" and self.stride != (1, 1):
            raise ProjectionError(f"Conv2d: padding='same' needs stride 1 (as in torch), got stride {self.stride}")
        if not isinstance(self.padding, str):
            object.__setattr__(self, "padding", _pair(self.padding, "padding"))
        if min(self.convolution.out_shape[1:]) < 1:
            raise ProjectionError(f"Conv2d: a {kernel.shape[2]}x{kernel.shape[3]} kernel (dilation {self.dilation}) "
                                  f"does not fit the {shape[1]}x{shape[2]} input with padding {self.padding}")

    @property
    def convolution(self) -> Convolution:
        """The geometry of this convolution."""
        channels, height, width = self.input_shape
        size = self.kernel.shape[2:]
        if self.padding == "same":
            # torch's "same": the total d (k - 1) split with the smaller half before the map
            padding = tuple((d * (k - 1)) // 2 for d, k in zip(self.dilation, size, strict=True))
            out = (height, width)
        else:
            padding = (0, 0) if self.padding == "valid" else self.padding
            out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in
                        zip((height, width), padding, self.dilation, size, self.stride, strict=True))
        return Convolution(self.input_shape, (self.kernel.shape[0], *out), tuple(size), self.stride, padding,
                           self.dilation, self.groups)

    def check_sizes(self, n_pre: int, n_post: int, name: str) -> Convolution:
        """The geometry, after checking that it maps ``n_pre`` sources onto ``n_post`` targets."""
        convolution = self.convolution
        if (convolution.n_pre, convolution.n_post) != (n_pre, n_post):
            raise ProjectionError(f"projection {name!r}: Conv2d maps {convolution.in_shape} = {convolution.n_pre} "
                                  f"sources onto {convolution.out_shape} = {convolution.n_post} targets, the "
                                  f"populations have {n_pre} -> {n_post}")
        return convolution

    def build(self, n_pre, n_post, rng, same, name):
        row_ptr, post_ids, kernel_index = self.check_sizes(n_pre, n_post, name).synapses()
        return Synapses(row_ptr, post_ids, weight=self.kernel.ravel()[kernel_index])
