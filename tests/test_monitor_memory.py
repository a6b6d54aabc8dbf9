"""State monitor buffers are sized by the stretch a backend advances, not by the run."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ranvier as rv
from ranvier.engine import simulation
from ranvier.units import ms

ROOT = Path(__file__).resolve().parents[1]


def _recorded(backend: str) -> rv.Network:
    net = rv.networks.cuba(n=200, seed=2)
    net.record(net["exc"], "v")
    net.record(net["inh"], "v", ids=[0, 3, 7], every=0.7 * ms)
    net.record(net["exc"], "spikes")
    net.run(0.03, backend=backend)
    net.run(0.0123, backend=backend)
    return net


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_recordings_do_not_depend_on_the_stretch(backend, monkeypatch):
    whole = _recorded(backend)
    monkeypatch.setattr(simulation, "MONITOR_BUFFER_BYTES", 3000)  # a stretch of a few steps
    pieces = _recorded(backend)
    for a, b in zip(whole.state_monitors, pieces.state_monitors, strict=True):
        np.testing.assert_array_equal(a.t, b.t)
        np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(whole.spike_monitors[0].steps, pieces.spike_monitors[0].steps)
    np.testing.assert_array_equal(whole.spike_monitors[0].ids, pieces.spike_monitors[0].ids)
    assert whole.state_monitors[0].values.shape == (423, 160)


class _Stop(Exception):
    pass


def test_a_long_checkpointed_run_with_a_monitor_starts(tmp_path):
    """Before, the buffer for 10^6 s of samples (12 TB) was allocated at t = 0: a MemoryError."""
    net = rv.networks.cuba(n=400, seed=1)
    monitor = net.record(net["exc"], "v")

    def stop(net):
        raise _Stop

    net.at(0.025, stop)
    with pytest.raises(_Stop):
        net.run(1e6, backend="numpy", checkpoint=tmp_path / "run.h5", every=0.01)
    assert net._simulation.lowered.state_monitors[0].values.nbytes <= simulation.MONITOR_BUFFER_BYTES
    assert monitor.values.shape == (250, 320)


@pytest.mark.slow
def test_a_checkpointed_run_of_3200_recorded_neurons_stays_under_1_gib():
    script = ROOT / "benchmarks" / "checkpointed_run_memory.py"
    result = subprocess.run([sys.executable, str(script), "--seconds", "4"], capture_output=True, text=True,
                            check=True, timeout=600)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["recorded"] == 3200 and len(report["samples"]) == 5
    assert report["peak_hwm_mib"] < 1024, report
