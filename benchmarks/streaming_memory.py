"""Peak memory of streaming a long event recording (ranvier.datasets.stream) against holding it whole.

A generated N-MNIST-sized stream (34 x 34 x 2 sensor, Poisson events) drives 100 LIF neurons.
The streamed run feeds ``--events`` events in chunks of ``--chunk``; the one-shot run builds one
SpikeSource of ``--whole`` events (the way without streaming). Peak memory is the peak of
allocations traced by tracemalloc (numpy reports its buffers to it) after a warm-up that
compiles the kernel; ru_maxrss is reported too.

    python benchmarks/streaming_memory.py [--events 100000000] [--chunk 1000000] [--whole 10000000]
"""

import argparse
import platform
import resource
import time
import tracemalloc

import numpy as np

import ranvier as rv
from ranvier import datasets
from ranvier.units import ms, mV

SIZE = (34, 34, 2)
DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
RATE_PER_US = 1.0  # 10^6 events per second of recording


def chunks(n_events: int, chunk: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    last = 0.0
    for begin in range(0, n_events, chunk):
        size = min(chunk, n_events - begin)
        events = np.empty(size, dtype=DTYPE)
        events["x"], events["y"], events["p"] = (rng.integers(0, s, size) for s in SIZE)
        times = last + np.cumsum(rng.exponential(1 / RATE_PER_US, size))
        last = times[-1]
        events["t"] = times.astype(np.int64)
        yield events


def network():
    net = rv.Network(dt=1 * ms, seed=1)
    inp = net.population(datasets.from_tonic(np.zeros(0, DTYPE), SIZE), name="input")
    lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                         tau_syn={"exc": 5 * ms}, i_bias=0.0)
    out = net.population(lif, n=100, name="out")
    net.connect(inp, out, rv.connect.Bernoulli(p=0.01), weight=0.1 * mV)
    return net


def traced(fn):
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, peak, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=float, default=1e8)
    parser.add_argument("--chunk", type=float, default=1e6)
    parser.add_argument("--whole", type=float, default=1e7)
    args = parser.parse_args()
    n_events, chunk, whole = int(args.events), int(args.chunk), int(args.whole)

    warm = network()
    datasets.stream(warm, chunks(2 * chunk, chunk), SIZE)  # compiles the kernel outside the measurement

    net = network()
    sent, peak, elapsed = traced(lambda: datasets.stream(net, chunks(n_events, chunk), SIZE))
    print(f"streamed {sent:.3g} events in chunks of {chunk:.3g}: peak {peak / 2**20:.1f} MiB "
          f"({peak / chunk:.0f} B per chunk event), {elapsed:.1f} s, {sent / elapsed:.3g} events/s, "
          f"{net.t:.1f} s simulated, {net.stats.spikes_by_population.get('out', 0)} output spikes")

    def one_shot():
        events = next(chunks(whole, whole))
        held = network()
        source = datasets.from_tonic(events, SIZE)
        del events
        datasets.replace_source(held["input"], source)
        held.run(source.times[-1] + held.dt)
        return held

    _, whole_peak, whole_elapsed = traced(one_shot)
    print(f"one source of {whole:.3g} events: peak {whole_peak / 2**20:.1f} MiB "
          f"({whole_peak / whole:.0f} B per event), {whole_elapsed:.1f} s")
    print(f"peak ratio, one-shot {whole:.3g} / streamed {n_events:.3g}: {whole_peak / peak:.2f}")
    print(f"ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}")


if __name__ == "__main__":
    main()
