"""Spike collection in blocks (``numba_kernels.collect_block``, ``finish_collection``): each thread collects
the spikes of the block it updated, and the blocks' spikes are joined into the serial scan's result."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ranvier.engine.backends import numba_kernels
from ranvier.engine.model import NOT_FINITE_UINT16


def padded(counts: np.ndarray) -> np.ndarray:
    """Spike counts as a population's flags: uint16, padded to a multiple of 16 neurons."""
    flags = np.zeros(-(-len(counts) // 16) * 16, dtype=np.uint16)
    flags[:len(counts)] = counts
    return flags


def serial(counts, capacity, count, k=7):
    flags = padded(counts)
    ids, steps = np.full(capacity, -5, dtype=np.int32), np.full(capacity, -5, dtype=np.int64)
    result = numba_kernels.collect_spikes(flags, flags.view(np.uint64), k, ids, steps, count)
    return result, ids, steps, flags


def in_blocks(counts, capacity, count, blocks, k=7, order=1):
    """Each block collected on its own, in ``order`` (1: first to last, -1: last to first: threads run in
    any order, so no block may read another's neurons), then joined."""
    flags = padded(counts)
    ids, steps = np.full(capacity, -5, dtype=np.int32), np.full(capacity, -5, dtype=np.int64)
    written = np.zeros(blocks, dtype=np.int64)
    for block in range(blocks)[::order]:
        written[block] = numba_kernels.collect_block(flags, flags.view(np.uint64), len(counts), block, blocks, k,
                                                     ids, steps, count)
    result = numba_kernels.finish_collection(flags, flags.view(np.uint64), len(counts), k, ids, steps, count,
                                             written, blocks)
    return result, ids, steps, flags, written


CASES = {
    # (counts, capacity, count already in the buffer)
    "one spike a neuron at most, room for all": (lambda rng, n: (rng.random(n) < 0.1).astype(np.uint16), 1.0),
    "every neuron spikes, room for exactly all": (lambda rng, n: np.ones(n, dtype=np.uint16), 1.0),
    "several spikes a neuron": (lambda rng, n: rng.poisson(1.5, n).astype(np.uint16), 1.0),
    "several spikes in one neuron of the first block": (
        lambda rng, n: np.concatenate([[n], np.zeros(n - 1)]).astype(np.uint16), 1.0),
    "more spikes than room": (lambda rng, n: rng.poisson(2.0, n).astype(np.uint16), 0.5),
    # the last neuron's spikes outgrow its block's share, the other blocks' fit: those are counted back
    "one block's spikes outgrow its share": (
        lambda rng, n: np.concatenate([rng.poisson(0.2, n - 1), [n + 1]]).astype(np.uint16), 2.0),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n", [1, 15, 16, 203, 1000])
@pytest.mark.parametrize("blocks", [1, 2, 3, 4])
@pytest.mark.parametrize("order", [1, -1])
def test_blocks_give_the_serial_scans_spikes_flags_and_result(case, n, blocks, order):
    make, room_per_neuron = CASES[case]
    counts = make(np.random.default_rng(n * 10 + blocks), n)
    count = 11
    capacity = count + max(1, int(room_per_neuron * n))
    expected, expected_ids, expected_steps, expected_flags = serial(counts, capacity, count)
    result, ids, steps, flags, written = in_blocks(counts, capacity, count, blocks, order=order)
    assert result == expected
    if expected >= 0:
        assert np.array_equal(ids[count:expected], expected_ids[count:expected])
        assert np.array_equal(steps[count:expected], expected_steps[count:expected])
        assert np.array_equal(ids[:count], expected_ids[:count])  # what was in the buffer stays
    assert np.array_equal(flags, expected_flags)
    if case.startswith(("one spike", "every neuron")):
        # a block gets at least as many entries as it has neurons: no block falls back to the serial scan
        assert np.all(written >= 0)


def test_a_block_that_does_not_fit_leaves_its_flags_as_they_were():
    counts = np.zeros(64, dtype=np.uint16)
    counts[[1, 3, 40, 41]] = [1, 1, 5, 1]
    flags = padded(counts)
    ids, steps = np.zeros(8, dtype=np.int32), np.zeros(8, dtype=np.int64)
    # 2 blocks of 32 neurons share 8 entries: 4 each; the second block's 6 spikes do not fit
    assert numba_kernels.collect_block(flags, flags.view(np.uint64), 64, 0, 2, 3, ids, steps, 0) == 2
    assert numba_kernels.collect_block(flags, flags.view(np.uint64), 64, 1, 2, 3, ids, steps, 0) == -1
    assert list(ids[:2]) == [1, 3] and list(np.nonzero(flags)[0]) == [40, 41] and flags[40] == 5


def test_a_state_that_is_not_finite_falls_back_to_the_serial_result():
    counts = np.zeros(100, dtype=np.uint16)
    counts[[5, 60, 70]] = [1, NOT_FINITE_UINT16, 1]
    for blocks in (1, 2, 3):
        expected = serial(counts, 200, 0)
        result = in_blocks(counts, 200, 0, blocks)
        assert result[0] == expected[0] == -2
        assert np.array_equal(result[3], expected[3]) and not result[3].any()


@pytest.mark.parametrize("blocks", [1, 2, 3, 5])
def test_block_finite_tests_cover_every_column_once(blocks):
    for dtype, test in ((np.float32, numba_kernels.block_all_finite),
                        (np.float64, numba_kernels.block_all_finite_double)):
        state = np.ones((3, 70), dtype=dtype)
        bits = state.reshape(-1).view(np.uint32 if dtype == np.float32 else np.uint64)
        assert all(test(bits, 70, block, blocks) for block in range(blocks))
        for row, column in ((0, 0), (2, 69), (1, 33)):
            state[:] = 1.0
            state[row, column] = np.inf if column % 2 else np.nan
            failing = [block for block in range(blocks) if not test(bits, 70, block, blocks)]
            assert len(failing) == 1
            block = failing[0]
            low = numba_kernels._block_start(block, blocks, 70)
            high = numba_kernels._block_start(block + 1, blocks, 70)
            assert low <= column < high


SCRIPT = """
import hashlib, json, sys
import numpy as np
import ranvier as rv
from ranvier.engine import lowering
from ranvier.engine.backends import numba_backend
from ranvier.engine.model import Model, rows, select
from ranvier.neurons import LIF

# spike buffers of four steps' bounds: a block's share of the room is often short of its spikes
lowering._MIN_SPIKE_CAPACITY = 1
numba_backend.PARALLEL_MIN_TOGETHER = {min_together}
numba_backend.PARALLEL_MIN_NEURONS = 0


class Runaway(Model):
    '''Neuron 60 (in the second of two blocks) grows tenfold a step; the model never checks itself.'''
    state_rows = rows("v")
    def constants(self, params, dt):
        return np.array([[10.0], [1.0]])
    def initial_state(self):
        return {{"v": 1.0}}
    @staticmethod
    def step(state, consts, arriving, i, c, k, key):
        state[0, i] = state[0, i] * select(i == 60, consts[0, c], consts[1, c])
        return 0


def build(delay):
    net = rv.Network(dt=1e-4, seed=5)
    # neurons 0-31 (the first of two blocks) at 2000 Hz, 0.2 spikes a step; 32-36 at 20 kHz, 2 a step: the
    # second block's spikes often outgrow its share of the buffer's room, 5/37
    rate = np.where(np.arange(37) < 32, 2000.0, 20000.0)
    source = net.population(rv.neurons.PoissonSource(rate=rate), 37, name="source")
    cells = net.population(LIF(tau_syn={{"e": 2e-3}}), 203, name="cells")
    net.connect(source, cells, rv.connect.FixedInDegree(5), weight=4e-3, receptor="e", delay=delay)
    net.connect(cells, cells, rv.connect.FixedInDegree(20), weight=5e-4, receptor="e", delay=delay)
    return net


result = {{}}
for delay in (1e-4, 5e-4):  # chunks of 1 step (updated together) and of 5 (each population on all threads)
    for backend in ("numpy", "numba"):
        net = build(delay)
        monitors = [net.record(name, "spikes") for name in ("source", "cells")]
        net.run(0.05, backend=backend)
        digest = hashlib.sha256()
        for monitor in monitors:
            digest.update(monitor.ids.tobytes())
            digest.update(monitor.times.tobytes())
        digest.update(net["cells"].state.tobytes())
        lowered = net._simulation.lowered if backend == "numba" else None
        result[f"{{delay}}/{{backend}}"] = {{
            "digest": digest.hexdigest(), "spikes": net.stats.spikes,
            "together": numba_backend._updated_together(lowered) if lowered else None}}
    for backend, precision in (("numpy", "single"), ("numba", "single"), ("numpy", "double"), ("numba", "double")):
        net = rv.Network(dt=1e-4, seed=3, precision=precision)
        drive = net.population(rv.neurons.PoissonSource(rate=500.0), 20, name="drive")
        net.population(Runaway(), 70, name="runaway")
        sink = net.population(LIF(tau_syn={{"e": 2e-3}}), 5, name="sink")
        net.connect(drive, sink, rv.connect.FixedInDegree(2), weight=1e-4, receptor="e", delay=delay)
        try:
            net.run(0.05, backend=backend)
            result[f"{{delay}}/{{backend}}/{{precision}}/runaway"] = None
        except rv.NumericalError as error:
            result[f"{{delay}}/{{backend}}/{{precision}}/runaway"] = str(error)
print(json.dumps(result))
"""


@pytest.mark.parametrize("min_together", [0, 10**9])
def test_spikes_collected_in_blocks_on_two_threads_equal_numpy(min_together):
    """Two threads, spike buffers that a block's share often cannot hold (so the serial scan takes over)
    and a model that does not check itself: numpy's spikes and numpy's failure, updated together or
    population by population."""
    script = SCRIPT.format(min_together=min_together)
    finished = subprocess.run([sys.executable, "-c", script], env={**os.environ, "NUMBA_NUM_THREADS": "2"},
                              capture_output=True, text=True, timeout=900, cwd=Path(__file__).parent)
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    for delay in ("0.0001", "0.0005"):
        numpy, numba = result[f"{delay}/numpy"], result[f"{delay}/numba"]
        assert numpy["spikes"] > 1000
        assert numba["digest"] == numpy["digest"] and numba["spikes"] == numpy["spikes"]
        for precision in ("single", "double"):
            failure = result[f"{delay}/numba/{precision}/runaway"]
            assert failure == result[f"{delay}/numpy/{precision}/runaway"]
            assert "population 'runaway'" in failure
        # float32 overflows after 39 steps of growth, float64 after 309
        assert "step 38" in result[f"{delay}/numba/single/runaway"]
        assert "step 308" in result[f"{delay}/numba/double/runaway"]
    together = result["0.0001/numba"]["together"]
    assert together == ([0, 1] if min_together == 0 else [])
