"""Spike-train statistics of Brian 2's CUBA network with Elephant: ISI CV and a cross-correlogram.

    python examples/elephant_statistics.py [--n 4000] [--duration 2.0] [--output elephant_statistics.png]

The recordings become Neo objects (``SpikeMonitor.to_neo()``: one ``neo.SpikeTrain`` per neuron,
in seconds; ``StateMonitor.to_neo()``: a ``neo.AnalogSignal`` in volts), and Elephant computes
the coefficient of variation of each neuron's inter-spike intervals (1 for a Poisson process,
0 for a clock) and the cross-correlogram of the pooled excitatory and inhibitory
spikes. Needs ``pip install 'ranvier[neo]'`` (neo, elephant).
"""

import argparse

import elephant.conversion
import elephant.spike_train_correlation
import elephant.statistics
import neo
import numpy as np
import quantities as pq

import ranvier as rv
from ranvier.plots import _pyplot
from ranvier.units import ms, second

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
parser.add_argument("--n", type=int, default=4000, help="number of neurons (4:1 excitatory:inhibitory)")
parser.add_argument("--duration", type=float, default=2.0, help="biological time (s)")
parser.add_argument("--bin", type=float, default=2.0, help="bin width of the cross-correlogram (ms)")
parser.add_argument("--window", type=int, default=25, help="half-width of the cross-correlogram (bins)")
parser.add_argument("--output", default="elephant_statistics.png", help="where to save the figure")
args = parser.parse_args()

net = rv.networks.cuba(n=args.n, seed=1)
exc, inh = (net.record(net[name], "spikes") for name in ("exc", "inh"))
v = net.record(net["exc"], "v", ids=[0, 1, 2], every=1 * ms)
net.run(args.duration * second)

trains = {"exc": exc.to_neo(), "inh": inh.to_neo()}
signal = v.to_neo()
print(f"{len(trains['exc'])} excitatory and {len(trains['inh'])} inhibitory neo.SpikeTrains; v of 3 neurons as a "
      f"neo.AnalogSignal of {signal.shape[0]} samples in {signal.units.dimensionality}")

cvs = {}
for name, population in trains.items():
    cvs[name] = np.array([elephant.statistics.cv(elephant.statistics.isi(train)) for train in population
                          if len(train) >= 3])
    rate = np.mean([elephant.statistics.mean_firing_rate(train).rescale("Hz").magnitude for train in population])
    print(f"  {name}: {len(cvs[name])} neurons with 3+ spikes, ISI CV mean {np.mean(cvs[name]):.2f} "
          f"(median {np.median(cvs[name]):.2f}), rate {rate:.2f} Hz")


def pooled(population: list) -> neo.SpikeTrain:
    times = np.sort(np.concatenate([train.magnitude for train in population]))
    return neo.SpikeTrain(times * pq.s, t_start=population[0].t_start, t_stop=population[0].t_stop)


binned = [elephant.conversion.BinnedSpikeTrain(pooled(trains[name]), bin_size=args.bin * pq.ms)
          for name in ("exc", "inh")]
histogram, lags = elephant.spike_train_correlation.cross_correlation_histogram(
    binned[0], binned[1], window=[-args.window, args.window], border_correction=False, binary=False,
    kernel=None, method="memory")
counts = histogram.magnitude[:, 0]
peak = lags[int(np.argmax(counts))] * args.bin
print(f"  exc x inh cross-correlogram: peak at {peak:+g} ms, {counts.max() / counts.mean():.2f}x its mean")

plt = _pyplot()
figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
for name, values in cvs.items():
    left.hist(values, bins=30, alpha=0.6, label=f"{name} (n={len(values)})")
left.axvline(1.0, color="k", linestyle=":", label="Poisson (CV = 1)")
left.set_xlabel("ISI coefficient of variation")
left.set_ylabel("neurons")
left.set_title("irregularity (elephant.statistics.cv)")
left.legend(fontsize="small")
right.bar(lags * args.bin, counts, width=args.bin, color="tab:purple")
right.set_xlabel("lag of inhibitory after excitatory spikes (ms)")
right.set_ylabel("coincidences")
right.set_title("pooled exc x inh cross-correlogram")
figure.suptitle(f"CUBA, {args.n} neurons, {args.duration:g} s: statistics by Elephant")
figure.tight_layout()
figure.savefig(args.output, dpi=120)
print(f"saved {args.output}")
