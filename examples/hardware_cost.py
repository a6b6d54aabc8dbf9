"""Hardware cost of Brian 2's CUBA network: cores, energy and latency on every target.

    python examples/hardware_cost.py [--n 4000] [--duration 0.5] [--output hardware_cost.png]

Runs the network, estimates its measured activity on each target that can run it (TrueNorth
cannot: a CUBA neuron reaches many cores, a TrueNorth neuron one), prints the Loihi 2 report
and plots energy per target and per population.
"""

import argparse

import ranvier as rv
from ranvier.units import second

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--n", type=int, default=4000)
parser.add_argument("--duration", type=float, default=0.5)
parser.add_argument("--output", default="hardware_cost.png")
args = parser.parse_args()

net = rv.networks.cuba(n=args.n, seed=1)
net.run(args.duration * second)

reports = rv.hardware.compare(net, path=args.output)
for report in reports:
    print(f"{report.target.name:>11}: {report.energy * 1e3:9.4g} mJ, {report.power * 1e3:9.4g} mW, "
          f"{report.step_time * 1e6:9.4g} us per step, {report.realtime_factor:8.3g}x real time")
loihi2 = next(r for r in reports if r.target.name == "loihi2")
print(loihi2.table())
by_population = args.output.replace(".png", "_loihi2.png")
loihi2.plot(by_population)
print(f"saved {args.output} and {by_population}")
