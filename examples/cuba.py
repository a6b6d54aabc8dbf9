"""Brian 2's CUBA network in ranvier: 4000 LIF neurons, 1 s, raster and rates.

    python examples/cuba.py [--n 4000] [--duration 1.0] [--output cuba.png]
"""

import argparse
import time

import ranvier as rv
from ranvier.plots import raster_and_rate
from ranvier.units import second

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
parser.add_argument("--n", type=int, default=4000, help="number of neurons (4:1 excitatory:inhibitory)")
parser.add_argument("--duration", type=float, default=1.0, help="biological time (s)")
parser.add_argument("--output", default="cuba.png", help="where to save the raster and rates")
args = parser.parse_args()

start = time.perf_counter()
net = rv.networks.cuba(n=args.n, seed=1)
exc = net.record(net["exc"], "spikes")
inh = net.record(net["inh"], "spikes")
net.run(args.duration * second)
elapsed = time.perf_counter() - start

print(f"{net.stats.spikes} spikes, {net.stats.synaptic_events} synaptic events in {elapsed:.2f} s")
for name, monitor in (("exc", exc), ("inh", inh)):
    print(f"  {name}: {monitor.num_spikes / net[name].n / args.duration:.2f} Hz")
raster_and_rate([exc, inh], args.duration, args.output, title=f"CUBA, {args.n} neurons")
print(f"saved {args.output}")
