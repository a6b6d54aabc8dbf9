"""Training step of a 700-256-20 LIF network (T=100, batch 64): ranvier.train against snnTorch.

Part 1 times forward + backward + Adam for ranvier's BPTT, ranvier's BPTT with the dense input
projection (the sparse one switched off), ranvier's SLTT and snnTorch's ``Leaky`` network side
by side, interleaved (median of ``--repeats``), and reports the ratios: wall-clock time and the
process's CPU time (``time.process_time``, all threads; on a machine shared with other work it
is less disturbed by waiting for a core than the wall clock). The input has 5 % spike density
(``--density``); ranvier's input projection is sparse below 20 %. Part 2 measures the peak
memory of one BPTT and one SLTT training step, and part 3 trains both on the same synthetic
20-class spike-pattern task and compares test accuracy.

Peak memory is measured with torch's profiler (``profile_memory=True``): every CPU allocation
and free made by torch during the step is an event with a signed size; the running sum in
time order is the live memory, its maximum the peak. Tensors that exist before the step (the
input batch, the parameters, Adam's state) are not counted for either method.

Run: ``python benchmarks/train_vs_snntorch.py [--repeats 5] [--epochs 4] [--threads 2] [--density 0.05]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import ranvier as rv
from ranvier.train import SpikingModule, recurrence
from ranvier.units import ms, mV

N_IN, N_HIDDEN, N_OUT = 700, 256, 20


def ranvier_network(seed: int = 0, hidden: int = N_HIDDEN) -> rv.Network:
    """700-256-20 LIF with delta synapses (snnTorch's Leaky: the weighted input jumps v), leaky readout."""
    net = rv.Network(dt=1 * ms, seed=seed)
    source = net.population(rv.neurons.SpikeSource([], [], n=N_IN), name="input")
    lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=0.0, tau_syn={"in": 0.0})
    cells = net.population(lif, n=hidden, name="hidden")
    # the readout does not spike (v_th = 1 V): its membrane potential is the logit, as in snnTorch's mem readout
    readout = rv.neurons.LIF(tau_m=20 * ms, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0, tau_syn={"in": 0.0})
    out = net.population(readout, n=N_OUT, name="out")
    net.connect(source, cells, rv.connect.AllToAll(), weight=rv.init.Normal(0.5 * mV, 1.5 * mV))
    net.connect(cells, out, rv.connect.AllToAll(), weight=rv.init.Normal(0.5 * mV, 3 * mV))
    return net


def snntorch_network(hidden: int = N_HIDDEN) -> torch.nn.Module:
    import snntorch as snn

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            beta = float(np.exp(-1 / 20))
            self.fc1 = torch.nn.Linear(N_IN, hidden)
            self.lif1 = snn.Leaky(beta=beta)
            self.fc2 = torch.nn.Linear(hidden, N_OUT)
            self.lif2 = snn.Leaky(beta=beta)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mem1 = self.lif1.init_leaky()
            mem2 = self.lif2.init_leaky()
            out = []
            for step in x:
                spk1, mem1 = self.lif1(self.fc1(step), mem1)
                _, mem2 = self.lif2(self.fc2(spk1), mem2)
                out.append(mem2)
            return torch.stack(out)

    return Net()


def snntorch_step(model, optimiser, x, y) -> float:
    optimiser.zero_grad()
    mem = model(x)
    loss = torch.nn.functional.cross_entropy(mem.reshape(-1, N_OUT), y.repeat(x.shape[0]))
    loss.backward()
    optimiser.step()
    return float(loss.detach())


def ranvier_step(module, optimiser, x, y, method: str) -> float:
    optimiser.zero_grad()
    if method in ("bptt", "bptt-dense"):
        sparse = recurrence.SPARSE_DENSITY
        recurrence.SPARSE_DENSITY = 0.0 if method == "bptt-dense" else sparse
        try:
            loss, _ = module.loss(x, y, "out")
            loss.backward()
        finally:
            recurrence.SPARSE_DENSITY = sparse
        loss = float(loss.detach())
    else:
        loss, _ = module.sltt_backward(x, y, "out")
    optimiser.step()
    return loss


def timed(fn) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def peak_memory(fn) -> int:
    """Peak bytes of live torch CPU allocations made during ``fn()`` (profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()  # negative for a free
        peak = max(peak, live)
    return peak


def pattern_task(n_train: int, n_test: int, steps: int, seed: int = 0):
    """20 classes; each class a fixed random set of input channels firing in a class-specific time window."""
    rng = np.random.default_rng(seed)
    channels = [rng.choice(N_IN, 60, replace=False) for _ in range(N_OUT)]
    onsets = rng.integers(0, steps // 2, size=(N_OUT, 60))

    def sample(n):
        labels = rng.integers(0, N_OUT, n)
        x = (rng.random((steps, n, N_IN)) < 0.01).astype(np.float32)  # background
        for b, label in enumerate(labels):
            for channel, onset in zip(channels[label], onsets[label], strict=True):
                jitter = onset + rng.integers(-3, 4)
                x[np.clip(jitter + np.arange(0, 12, 4), 0, steps - 1), b, channel] = 1.0
        return torch.from_numpy(x), torch.from_numpy(labels)

    return sample(n_train), sample(n_test)


def accuracy(module, x, y) -> float:
    with torch.no_grad():
        v = module(x).v["out"]
    return float((v.mean(0).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--density", type=float, default=0.05, help="input spike probability per step")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    import snntorch

    print(f"torch {torch.__version__}, snntorch {snntorch.__version__}, threads {torch.get_num_threads()}")
    x = (torch.rand(args.steps, args.batch, N_IN) < args.density).float()
    y = torch.randint(0, N_OUT, (args.batch,))

    peer = snntorch_network()
    peer_optimiser = torch.optim.Adam(peer.parameters(), 1e-3)
    module = SpikingModule(ranvier_network(), "input")
    optimiser = torch.optim.Adam(module.parameters(), 1e-3)
    # interleave the variants so load changes on a shared machine hit each alike
    steps = {
        "snntorch": lambda: snntorch_step(peer, peer_optimiser, x, y),
        "bptt": lambda: ranvier_step(module, optimiser, x, y, "bptt"),
        "bptt-dense": lambda: ranvier_step(module, optimiser, x, y, "bptt-dense"),
        "sltt": lambda: ranvier_step(module, optimiser, x, y, "sltt"),
    }
    for step in steps.values():
        step()  # warm-up (numba compiles on first use)
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            timings[name].append(timed(step))
    wall = {name: float(np.median([t[0] for t in times])) for name, times in timings.items()}
    cpu = {name: float(np.median([t[1] for t in times])) for name, times in timings.items()}
    print(f"training step T={args.steps} B={args.batch} input density {args.density:g}: snntorch "
          f"{wall['snntorch'] * 1e3:.0f} ms wall, {cpu['snntorch'] * 1e3:.0f} ms cpu")
    for name in ("bptt", "bptt-dense", "sltt"):
        print(f"  ranvier {name}: {wall[name] * 1e3:.0f} ms wall (ratio {wall[name] / wall['snntorch']:.2f}), "
              f"{cpu[name] * 1e3:.0f} ms cpu (ratio {cpu[name] / cpu['snntorch']:.2f})")

    bptt_bytes = peak_memory(steps["bptt"])
    sltt_bytes = peak_memory(steps["sltt"])
    peer_bytes = peak_memory(steps["snntorch"])
    print(f"peak memory of one step: snntorch {peer_bytes / 2**20:.1f} MiB, ranvier bptt {bptt_bytes / 2**20:.1f} MiB, "
          f"sltt {sltt_bytes / 2**20:.1f} MiB; sltt / bptt {sltt_bytes / bptt_bytes:.2f}")

    if args.skip_accuracy:
        return
    (train_x, train_y), (test_x, test_y) = pattern_task(640, 320, args.steps)
    for method in ("bptt", "sltt"):
        torch.manual_seed(1)
        module = SpikingModule(ranvier_network(seed=1), "input")
        optimiser = torch.optim.Adam(module.parameters(), 1e-3)
        for _ in range(args.epochs):
            for start in range(0, len(train_y), args.batch):
                batch = slice(start, start + args.batch)
                ranvier_step(module, optimiser, train_x[:, batch], train_y[batch], method)
        print(f"{method}: test accuracy {accuracy(module, test_x, test_y) * 100:.1f}% after {args.epochs} epochs")


if __name__ == "__main__":
    main()
