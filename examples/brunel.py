"""Brunel (2000) model A in two regimes: synchronous regular (g=3) and asynchronous irregular (g=5).

    python examples/brunel.py [--n 12500] [--duration 0.3] [--output brunel.png]

Prints each regime's excitatory rate, the mean ISI CV (irregularity) and the coefficient of
variation of the population rate (synchrony), and saves rasters of both.
"""

import argparse

import numpy as np

import ranvier as rv
from ranvier.plots import population_rate, raster_and_rate

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--n", type=int, default=12500, help="number of neurons, 4:1 excitatory:inhibitory (default 12500)")
parser.add_argument("--duration", type=float, default=0.3, help="biological time of each regime, s (default 0.3)")
parser.add_argument("--output", default="brunel.png", help="where to save the figure (default brunel.png)")
args = parser.parse_args()


def isi_cv(monitor):
    trains = [t for t in monitor.spike_trains().values() if len(t) >= 3]
    return float(np.mean([np.diff(t).std() / np.diff(t).mean() for t in trains])) if trains else float("nan")


for label, g, eta in (("SR", 3.0, 2.0), ("AI", 5.0, 2.0)):
    net = rv.networks.brunel(n=args.n, g=g, eta=eta, seed=1)
    exc = net.record(net["exc"], "spikes")
    net.run(args.duration)
    _, rate = population_rate(exc, args.duration, bin_width=0.5e-3)
    synchrony = rate.std() / rate.mean() if rate.mean() else float("nan")
    print(f"{label} (g={g}, eta={eta}): {exc.num_spikes / net['exc'].n / args.duration:.1f} Hz, "
          f"ISI CV {isi_cv(exc):.2f}, population-rate CV {synchrony:.2f}")
    output = args.output.replace(".png", f"_{label}.png")
    raster_and_rate([exc], args.duration, output, title=f"Brunel model A, {label}: g={g}, eta={eta}", max_neurons=500)
    print(f"saved {output}")
