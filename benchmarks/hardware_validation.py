"""Validation of ranvier.hardware: NeuroBench synaptic operations, and two published hardware figures.

    python benchmarks/hardware_validation.py [--samples 8] [--steps 100] [--repeats 3]

1. Synaptic operations. A 200-128-10 snnTorch network (bias-free Linear + Leaky, reset to zero)
   and random binary inputs go through NeuroBench 2.3's ``SynapticOperations``; the same
   weights and inputs run in ranvier (``ranvier.hardware.neurobench.leaky_twin``) and
   ``ranvier.hardware.count`` gives the ACs. Both sides run here, in one process; the script
   reports both counts, their ratio and the time each took (median of the repeats).
2. Liu et al. 2024 (arXiv:2402.04274, abstract): LFADS inference takes 41.97 us per trial on
   an Alveo U55C with 16-bit fixed point. ranvier's FPGA model estimates the latency of an
   LFADS autoencoder (bidirectional GRU encoder, GRU generator, linear factor read-out). The
   layer sizes and trial length below are the LFADS defaults we assume; they are arguments.
3. Merolla et al. 2014 (Science 345:668, abstract): TrueNorth consumes 63 mW running a
   multi-object detection network on 400 x 240 video at 30 frames per second. We estimate a
   chip-filling network (4,096 cores of 256 neurons) at a stated mean rate and fan-out; the
   published paper does not give the network's activity, so rate and fan-out are assumptions.

Results go to ``benchmarks/results/hardware_validation.json``; the Markdown table is printed and
replaces this script's own section of ``benchmarks/BENCHMARKS.md`` (the other sections are kept).
"""

import argparse
import json
import os
import platform
import statistics
import textwrap
import time
from pathlib import Path

import numpy as np
from harness import cpu_name, write_section

import ranvier
import ranvier.hardware as hw
from ranvier.hardware.counts import Counts, PopulationCounts, ProjectionCounts
from ranvier.hardware.neurobench import leaky_twin

RESULTS = Path(__file__).resolve().parent / "results" / "hardware_validation.json"
BENCHMARKS = Path(__file__).resolve().parent / "BENCHMARKS.md"
SECTION = "## Hardware cost models: validation (`benchmarks/hardware_validation.py`)"
BETA, THRESHOLD = 0.9, 1.0 + 1 / 1024


def synaptic_operations(samples: int, steps: int, repeats: int) -> dict:
    import snntorch as snn
    import torch
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import SNNTorchModel

    generator = torch.Generator().manual_seed(1)
    sizes = (200, 128, 10)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        linear = torch.nn.Linear(n_in, n_out, bias=False)
        weights = torch.randint(-4, 13, (n_out, n_in), generator=generator).float() / 32
        weights[torch.rand(n_out, n_in, generator=generator) < 0.5] = 0.0
        linear.weight.data = weights
        layers += [linear, snn.Leaky(beta=BETA, threshold=THRESHOLD, reset_mechanism="zero", init_hidden=True,
                                     output=n_out == sizes[-1])]
    net = torch.nn.Sequential(*layers)
    spikes = (torch.rand(samples, steps, sizes[0], generator=generator) < 0.1).float()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(spikes, torch.zeros(samples)),
                                         batch_size=samples)
    matrices = [layer.weight.detach().numpy() for layer in net if isinstance(layer, torch.nn.Linear)]

    def neurobench_side():
        result = Benchmark(SNNTorchModel(net), loader, [], [], [[], [SynapticOperations]]).run(quiet=True)
        return result["SynapticOperations"]["Effective_ACs"]

    def ranvier_side():
        events = 0.0
        for sample in spikes.numpy():
            twin = leaky_twin(matrices, BETA, THRESHOLD, sample)
            twin.run((steps + len(matrices)) * twin.dt, backend="numpy")
            events += hw.count(twin).synaptic_events
        return events / samples

    timings = {"neurobench": [], "ranvier": []}
    for _ in range(repeats):
        for name, side in (("neurobench", neurobench_side), ("ranvier", ranvier_side)):
            start = time.perf_counter()
            value = side()
            timings[name].append(time.perf_counter() - start)
            if name == "neurobench":
                reference = value
            else:
                ours = value
    return {"network": "200-128-10 Linear/Leaky (reset to zero), half the weights zero",
            "samples": samples, "steps": steps, "neurobench_acs": reference, "ranvier_acs": ours,
            "ratio": ours / reference, "neurobench_s": statistics.median(timings["neurobench"]),
            "ranvier_s": statistics.median(timings["ranvier"])}


def lfads_counts(neurons: int, encoder: int, generator: int, factors: int, bins: int) -> Counts:
    """Counts of one LFADS autoencoder trial: a value population per layer, MACs per time bin.

    A GRU of ``h`` units with ``i`` inputs makes ``3 h (i + h)`` MACs per step (three gates).
    The two encoder directions run side by side (one population of ``2 encoder`` units); the
    generator starts from the encoder's final state and runs without input; the factors are a
    linear read-out of the generator.
    """
    def population(name, n, kind="value", model="GRU"):
        return PopulationCounts(name, model, kind, n, 0.0, 0.0 if kind == "scheduled" else float(n * bins), 1)

    def projection(pre, post, synapses, macs_per_step):
        return ProjectionCounts(f"{pre}->{post}", pre, post, synapses, 0.0, float(macs_per_step * bins), True, 16,
                                0, 0)

    gru_encoder = 3 * 2 * encoder * (neurons + encoder)
    gru_generator = 3 * generator * generator
    populations = {p.name: p for p in (population("spikes", neurons, "scheduled", "SpikeSource"),
                                       population("encoder", 2 * encoder), population("generator", generator),
                                       population("factors", factors, model="Linear"))}
    projections = {p.name: p for p in (
        projection("spikes", "encoder", 3 * 2 * encoder * neurons, 3 * 2 * encoder * neurons),
        projection("encoder", "encoder", gru_encoder - 3 * 2 * encoder * neurons,
                   gru_encoder - 3 * 2 * encoder * neurons),
        projection("generator", "generator", gru_generator, gru_generator),
        projection("generator", "factors", generator * factors, generator * factors))}
    return Counts(populations, projections, duration=bins * 0.01, steps=bins, dt=0.01, measured=False)


def lfads(args) -> dict:
    counts = lfads_counts(args.lfads_neurons, args.lfads_encoder, args.lfads_generator, args.lfads_factors,
                          args.lfads_bins)
    report = hw.estimate(counts, "fpga_u55c")
    published = 41.97e-6
    return {"published_s": published, "estimated_s": report.latency_per_inference,
            "ratio": report.latency_per_inference / published,
            "assumed": {"neurons": args.lfads_neurons, "encoder_units_per_direction": args.lfads_encoder,
                        "generator_units": args.lfads_generator, "factors": args.lfads_factors,
                        "bins": args.lfads_bins},
            "fpga": report.fpga}


def truenorth(args) -> dict:
    """A chip-filling TrueNorth network, estimated through placement on a 64-core tile and scaled.

    Each neuron sends its spikes to one axon of the next core, whose crossbar connects that
    axon to ``fan_out`` of the core's 256 neurons (TrueNorth's one-target-core rule). 64 cores
    are counted and placed; their dynamic energy is scaled to the 4,096 cores of the chip, and
    the chip's static power is added once.
    """
    cores, tile, per_core, fan_out = 4096, 64, 256, args.truenorth_fan_out
    neurons = tile * per_core
    source = np.arange(neurons)
    target_core = (source // per_core + 1) % tile
    offsets = (source[:, None] + np.arange(fan_out)[None, :]) % per_core
    post_ids = (target_core[:, None] * per_core + offsets).ravel().astype(np.int32)
    row_ptr = np.arange(0, neurons * fan_out + 1, fan_out, dtype=np.int64)
    spikes = neurons * args.truenorth_rate * 1.0
    populations = {"cores": PopulationCounts("cores", "LIF", "spiking", neurons, spikes, float(neurons * 1000), 1)}
    projections = {"cores->cores": ProjectionCounts("cores->cores", "cores", "cores", len(post_ids),
                                                    spikes * fan_out, 0.0, False, 1, fan_out, fan_out,
                                                    row_ptr, post_ids)}
    counts = Counts(populations, projections, duration=1.0, steps=1000, dt=1e-3, measured=False)
    report = hw.estimate(counts, "truenorth")
    scale = cores / len(report.placement.cores)
    dynamic = report.dynamic_energy * scale / counts.duration
    static = report.static_energy / report.wall_time
    power = dynamic + static
    published = 0.063
    return {"published_W": published, "estimated_W": power, "dynamic_W": dynamic, "static_W": static,
            "ratio": power / published, "cores_placed": len(report.placement.cores), "scale": scale,
            "realtime_factor": report.realtime_factor,
            "assumed": {"rate_Hz": args.truenorth_rate, "active_synapses_per_neuron": fan_out}}




def markdown(result: dict, args) -> str:
    """This script's section of BENCHMARKS.md: the run's machine and versions, and the three checks."""
    s, f, t = result["synaptic_operations"], result["lfads_u55c"], result["truenorth"]
    v = result["versions"]
    fpga = f["fpga"]
    run = (f"Run {time.strftime('%Y-%m-%d')} on {result['machine']}, Python {v['python']}, numpy {v['numpy']}, "
           f"torch {v['torch']}, snnTorch {v['snntorch']}, NeuroBench {v['neurobench']}, ranvier {v['ranvier']}. "
           f"Times are medians of {args.repeats} repeats, both sides in one process. Details and the reasons for "
           "each factor: `docs/hardware.md`, section 5.")
    lines = [
        SECTION, "", textwrap.fill(run, width=100), "",
        "| check | peer / published | ranvier | ratio (ranvier / peer) |",
        "|---|---|---|---|",
        f"| ACs per sample, {s['network']}, {args.samples} samples, T = {s['steps']} | {s['neurobench_acs']:.6g} "
        f"(NeuroBench `SynapticOperations`, {s['neurobench_s']:.3g} s) | {s['ranvier_acs']:.6g} (`hw.count` of the "
        f"ranvier twin, {s['ranvier_s']:.3g} s incl. simulating) | {s['ratio']:.6g} "
        f"(time {s['ranvier_s'] / s['neurobench_s']:.2f}) |",
        f"| LFADS latency per trial, Alveo U55C (Liu et al. 2024, arXiv:2402.04274) | {f['published_s'] * 1e6:.2f} us "
        f"| {f['estimated_s'] * 1e6:.1f} us (assumed LFADS sizes; reuse factor {fpga['reuse_factor']}, "
        f"{fpga['clock_hz'] / 1e6:.0f} MHz) | {f['ratio']:.3g} |",
        f"| TrueNorth chip power (Merolla et al. 2014, Science 345:668) | {t['published_W'] * 1e3:.0f} mW | "
        f"{t['estimated_W'] * 1e3:.1f} mW ({t['dynamic_W'] * 1e3:.1f} dynamic + {t['static_W'] * 1e3:.1f} static; "
        f"assumed {t['assumed']['rate_Hz']:g} Hz, {t['assumed']['active_synapses_per_neuron']} active synapses) | "
        f"{t['ratio']:.3g} |",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lfads-neurons", type=int, default=50)
    parser.add_argument("--lfads-encoder", type=int, default=64)
    parser.add_argument("--lfads-generator", type=int, default=64)
    parser.add_argument("--lfads-factors", type=int, default=20)
    parser.add_argument("--lfads-bins", type=int, default=50)
    parser.add_argument("--truenorth-rate", type=float, default=20.0)
    parser.add_argument("--truenorth-fan-out", type=int, default=128)
    args = parser.parse_args()

    import neurobench
    import snntorch
    import torch

    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.platform()}",
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "ranvier": ranvier.__version__,
                     "torch": torch.__version__, "snntorch": snntorch.__version__,
                     "neurobench": getattr(neurobench, "__version__", "2.3")},
        "synaptic_operations": synaptic_operations(args.samples, args.steps, args.repeats),
        "lfads_u55c": lfads(args),
        "truenorth": truenorth(args),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=float) + "\n")
    section = markdown(result, args)
    print(section)
    write_section(SECTION, section, BENCHMARKS)
    print(f"saved {RESULTS} and the hardware section of {BENCHMARKS}")


if __name__ == "__main__":
    main()
