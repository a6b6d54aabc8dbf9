"""Parameter sweeps on a local Dask cluster."""

import os
import sys
from pathlib import Path

import cloudpickle
import dask
import numpy as np
import pytest
from distributed import Client, LocalCluster

import ranvier as rv
from ranvier.errors import SweepError
from ranvier.sweep import grid_points, sweep

# The workers are fresh processes that cannot import this test module: send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client():
    # Dask gives up on a task at the first worker death, so the sweep's own retry is what runs it again.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        yield client
        client.close()
        cluster.close()


def _rate(weight: float, n: int) -> dict:
    net = rv.networks.cuba(n=n, seed=3)
    net.connect(net["exc"], net["exc"], rv.connect.OneToOne(), weight=weight, receptor="exc")
    net.run(0.02, backend="numpy")
    return {"rate": net.stats.rate("exc", net["exc"].n), "spikes": net.stats.spikes}


def _fails_for_negative(x: float) -> dict:
    if x < 0:
        raise ValueError(f"x must be >= 0, got {x}")
    return {"root": float(np.sqrt(x))}


def _dies_once(x: int, marker: str) -> int:
    """Kills its worker process the first time it runs point x == 1."""
    if x == 1 and not Path(marker).exists():
        Path(marker).write_text("died")
        os._exit(3)
    return x * 10


def test_grid_points_cover_every_combination_in_order():
    assert grid_points({"a": [1, 2], "b": ["x", "y", "z"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]
    assert grid_points([{"a": 1}, {"a": 5, "b": 2}]) == [{"a": 1}, {"a": 5, "b": 2}]


@pytest.mark.parametrize("grid", [{"a": 3}, {"a": "abc"}, [1, 2], "a", {1: [2]}])
def test_bad_grid_is_a_sweep_error(grid):
    with pytest.raises(SweepError, match="grid"):
        grid_points(grid)


def test_results_match_running_each_point_here(client):
    grid = {"weight": [0.0, 2e-3], "n": [200, 300]}
    results = rv.sweep(_rate, grid, client=client)
    assert [(row["weight"], row["n"]) for row in results] == [(p["weight"], p["n"]) for p in grid_points(grid)]
    for row in results:
        assert row["error"] is None and row["attempts"] == 1
        assert row["rate"] == _rate(row["weight"], row["n"])["rate"]
    assert results.column("spikes").shape == (4,)


def test_a_failing_point_is_reported_with_its_parameters(client):
    with pytest.warns(RuntimeWarning, match=r"\{'x': -1\.0\} failed: ValueError: x must be >= 0"):
        results = sweep(_fails_for_negative, {"x": [4.0, -1.0, 9.0]}, client=client)
    assert [row["error"] is None for row in results] == [True, False, True]
    assert results.failed == [results[1]] and results[1]["x"] == -1.0
    assert "x must be >= 0, got -1.0" in results[1]["error"]
    np.testing.assert_array_equal(results.column("root"), [2.0, np.nan, 3.0])


def _unpicklable(x: int):
    import threading

    return {"lock": threading.Lock()} if x == 1 else {"value": x}


def test_an_unpicklable_result_fails_its_point_alone(client):
    with pytest.warns(RuntimeWarning, match="cannot be pickled"):
        results = sweep(_unpicklable, {"x": [0, 1, 2]}, client=client)
    assert [row["error"] is None for row in results] == [True, False, True]
    assert [row.get("value") for row in results] == [0, None, 2]


def _names_a_column_of_the_row(a: int) -> dict:
    return {"error": 0.25, "score": a} if a == 1 else {"score": a}


def test_a_result_naming_a_column_of_the_row_fails_its_point_and_overwrites_nothing(client):
    with pytest.warns(RuntimeWarning, match=r"\{'a': 1\} failed: the result names 'error'"):
        results = sweep(_names_a_column_of_the_row, {"a": [0, 1, 2]}, client=client)
    assert [row["a"] for row in results] == [0, 1, 2]
    assert [row.get("score") for row in results] == [0, None, 2] and results.failed == [results[1]]


def _needs_a(a: int) -> int:
    return a


def test_points_of_different_parameters_warn_each_failure_with_its_own(client):
    with pytest.warns(RuntimeWarning, match=r"\{'b': 2\} failed: TypeError"):
        results = sweep(_needs_a, [{"a": 1}, {"b": 2}], client=client)
    assert [row["error"] is None for row in results] == [True, False] and results[0]["result"] == 1


def test_a_point_whose_worker_died_is_run_again(client, tmp_path):
    marker = str(tmp_path / "died")
    results = sweep(_dies_once, {"x": [0, 1, 2], "marker": [marker]}, client=client)
    assert Path(marker).read_text() == "died"
    assert [row["result"] for row in results] == [0, 10, 20]
    assert results[1]["attempts"] == 2 and results[1]["error"] is None


@pytest.mark.slow
def test_a_point_whose_worker_always_dies_fails_alone(client):
    with pytest.warns(RuntimeWarning, match="worker died 2 times"):
        results = sweep(_dies_always, {"x": [0, 1]}, client=client, retries=1)
    assert results[0]["result"] == 0 and results[0]["error"] is None
    assert results[1]["attempts"] == 2 and "worker died" in results[1]["error"]


def _dies_always(x: int) -> int:
    if x == 1:
        os._exit(3)
    return x


def test_scheduler_address_reaches_the_same_cluster(client):
    results = sweep(_fails_for_negative, [{"x": 16.0}], client=client.scheduler.address)
    assert results[0]["root"] == 4.0


def test_unreachable_scheduler_is_a_sweep_error():
    with pytest.raises(SweepError, match="tcp://127.0.0.1:1"):
        sweep(_fails_for_negative, {"x": [1.0]}, client="tcp://127.0.0.1:1", connect_timeout=1.0)


def _kills_odd(x: int) -> int:
    """Kills its worker for every odd x."""
    if x % 2:
        os._exit(7)
    return x * 10


def _check_killing_points() -> None:
    # the sweep's own cluster, which it starts again should all its workers' nannies fail
    with pytest.warns(RuntimeWarning, match="worker died"):
        results = sweep(_kills_odd, {"x": list(range(6))}, n_workers=2, retries=1)
    assert [row["x"] for row in results] == list(range(6))
    for row in results:
        if row["x"] % 2:
            assert "result" not in row
            assert "worker died 2 times" in row["error"] and row["attempts"] == 2
        else:
            assert row["error"] is None and row["result"] == row["x"] * 10


@pytest.mark.parametrize("repetition", range(2))
def test_several_killing_points_fail_alone_and_never_hang(repetition):
    _check_killing_points()


@pytest.mark.slow
def test_several_killing_points_twenty_times_in_a_row():
    for _ in range(20):
        _check_killing_points()


def _sleeps(x: int, seconds: float) -> int:
    if x == 1:
        import time

        time.sleep(seconds)
    return x


def test_a_point_over_its_timeout_fails_alone_and_its_worker_is_restarted(client):
    with pytest.warns(RuntimeWarning, match=r"\{'x': 1, 'seconds': 60\.0\} failed: timed out"):
        results = sweep(_sleeps, {"x": [0, 1, 2], "seconds": [60.0]}, client=client, timeout=2.0)
    assert [row["error"] is None for row in results] == [True, False, True]
    assert [row.get("result") for row in results] == [0, None, 2]
    assert "timeout=2 s" in results[1]["error"] and "restarted" in results[1]["error"]
    # the cluster is whole again: both workers take points
    assert [row["result"] for row in sweep(_sleeps, {"x": [0, 2], "seconds": [0.0]}, client=client)] == [0, 2]


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), "1", True])
def test_bad_timeout_is_a_sweep_error(timeout):
    with pytest.raises(SweepError, match="timeout"):
        sweep(_sleeps, {"x": [0]}, timeout=timeout)


@pytest.mark.parametrize("n_workers", [0, -1, 1.5, True])
def test_bad_worker_count_is_a_sweep_error(n_workers):
    with pytest.raises(SweepError, match=rf"n_workers must be an integer >= 1 or None, got {n_workers!r}"):
        sweep(_fails_for_negative, {"x": [1.0]}, n_workers=n_workers)


def _waits_for(x: int, release: str) -> dict:
    if x == 3:
        import time

        while not Path(release).exists():
            time.sleep(0.05)
    return {"value": x, "array": np.arange(x), "odd": range(x)}


def test_ctrl_c_returns_and_saves_the_finished_points(client, tmp_path):
    import signal
    import threading
    import time

    release, saved = tmp_path / "release", tmp_path / "rows.jsonl"

    def interrupt():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if saved.exists() and len(saved.read_text().splitlines()) == 3:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C, delivered to the main thread
                return
            time.sleep(0.05)

    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    try:
        with pytest.warns(RuntimeWarning, match="interrupted: returning the 3 of 4 points"):
            results = sweep(_waits_for, {"x": [0, 1, 2, 3], "release": [str(release)]}, client=client,
                            results=saved)
    finally:
        release.write_text("go")
        interrupter.join()
    assert results.interrupted
    assert [row["value"] for row in results] == [0, 1, 2]
    loaded = rv.sweep.load_results(saved)
    assert [row["value"] for row in loaded] == [0, 1, 2]
    assert loaded[2]["array"] == [0, 1] and loaded[2]["error"] is None and loaded[2]["attempts"] == 1
    assert loaded[2]["odd"] == {"__repr__": "range(0, 2)"}


def test_results_file_holds_every_row_of_a_finished_sweep(client, tmp_path):
    saved = tmp_path / "rows.jsonl"
    with pytest.warns(RuntimeWarning, match="failed"):
        results = sweep(_fails_for_negative, {"x": [4.0, -1.0]}, client=client, results=saved)
    assert not results.interrupted
    assert rv.sweep.load_results(saved) == list(results)
    saved.write_text(saved.read_text() + '{"index": 2, "ro')  # a line cut short by a crash is skipped
    assert len(rv.sweep.load_results(saved)) == 2
