"""Streaming a long event recording into a network chunk by chunk."""

import tracemalloc

import numpy as np
import pytest

import ranvier as rv
from ranvier import datasets
from ranvier.errors import DatasetError
from ranvier.units import ms, mV

DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
SIZE = (8, 4, 2)


def generated(n_events, seed=0, rate_per_us=0.05, offset_us=0):
    """A sorted stream of random events on the SIZE sensor (about ``rate_per_us`` events per us)."""
    rng = np.random.default_rng(seed)
    events = np.zeros(n_events, dtype=DTYPE)
    events["x"], events["y"], events["p"] = (rng.integers(0, s, n_events) for s in SIZE)
    events["t"] = offset_us + np.cumsum(rng.exponential(1 / rate_per_us, n_events)).astype(np.int64)
    return events


def network(source):
    net = rv.Network(dt=0.5 * ms, seed=4)
    inp = net.population(source, name="input")
    lif = rv.neurons.LIF(tau_m=10 * ms, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                         tau_syn={"exc": 5 * ms}, i_bias=0.0)
    out = net.population(lif, n=20, name="out")
    net.connect(inp, out, rv.connect.Bernoulli(p=0.2), weight=1 * mV)
    return net, net.record(inp, "spikes"), net.record(out, "spikes")


@pytest.mark.parametrize("chunk_size", [1, 37, 1000])
def test_a_stream_in_chunks_gives_the_spikes_of_one_source(chunk_size):
    events = generated(3000)
    whole, whole_in, whole_out = network(datasets.from_tonic(events, SIZE))
    whole.run(float(np.ceil((1e-3 + events["t"][-1] * 1e-6) / 0.5e-3)) * 0.5e-3, backend="numpy")
    net, stream_in, stream_out = network(datasets.from_tonic(np.zeros(0, DTYPE), SIZE))
    sent = datasets.stream(net, datasets.chunked(events, chunk_size), SIZE, backend="numpy")
    assert sent == len(events) == stream_in.num_spikes
    assert net.step == whole.step
    assert np.array_equal(stream_in.steps, whole_in.steps)
    assert np.array_equal(np.sort(stream_in.ids[stream_in.steps == 100]), np.sort(whole_in.ids[whole_in.steps == 100]))
    assert stream_out.num_spikes > 0
    assert np.array_equal(stream_out.steps, whole_out.steps) and np.array_equal(stream_out.ids, whole_out.ids)


def test_a_memory_mapped_recording_streams_and_duration_cuts_it(tmp_path):
    path = tmp_path / "recording.npy"
    np.save(path, generated(5000))
    recording = np.load(path, mmap_mode="r")
    net, inputs, _ = network(datasets.from_tonic(np.zeros(0, DTYPE), SIZE))
    sent = datasets.stream(net, datasets.chunked(recording, 512), SIZE, duration=0.02, backend="numpy")
    expected = np.count_nonzero(np.rint((1e-3 + recording["t"] * 1e-6) / 0.5e-3) <= 40)
    assert sent == expected == inputs.num_spikes
    assert net.t == pytest.approx(0.02)


def test_stream_refuses_events_out_of_order():
    events = generated(100)
    net, _, _ = network(datasets.from_tonic(np.zeros(0, DTYPE), SIZE))
    chunks = [events[50:], events[:50]]
    with pytest.raises(DatasetError, match="stream chunk 1: its first timestamp"):
        datasets.stream(net, chunks, SIZE, backend="numpy")
    with pytest.raises(DatasetError, match="stream chunk 0: timestamps decrease"):
        datasets.stream(net, [events[::-1]], SIZE, backend="numpy")
    with pytest.raises(DatasetError, match="chunk_size"):
        next(datasets.chunked(events, 0))


@pytest.mark.slow
def test_memory_is_bounded_by_the_chunk_not_the_stream():
    """10^7 events streamed in chunks of 10^5: the peak of traced allocations stays near one chunk's."""
    chunk, n_chunks = 100_000, 100

    def chunks():
        last = 0
        for k in range(n_chunks):
            events = generated(chunk, seed=k, rate_per_us=2.0, offset_us=last)
            last = int(events["t"][-1])
            yield events

    net, _, _ = network(datasets.from_tonic(np.zeros(0, DTYPE), SIZE))
    net.spike_monitors.clear()
    datasets.stream(network(datasets.from_tonic(np.zeros(0, DTYPE), SIZE))[0], [generated(1000)], SIZE)  # compiles
    tracemalloc.start()
    sent = datasets.stream(net, chunks(), SIZE)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sent == chunk * n_chunks
    # the stream held whole would take at least 32 bytes per event (320 MB, 3200 B per chunk event);
    # one chunk's working set is under 200 B per event (benchmarks/streaming_memory.py)
    assert peak < 400 * chunk
