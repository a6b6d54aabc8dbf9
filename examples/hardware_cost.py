"""Hardware cost of Brian 2's CUBA network: cores, energy and latency on every target.

    python examples/hardware_cost.py [--n 4000] [--duration 0.5] [--output hardware_cost.png]

Runs the network, estimates its measured activity on each target that can run it (TrueNorth
cannot: a CUBA neuron reaches many cores, a TrueNorth neuron one), prints the Loihi 2 report
and plots the energy of the whole run per target (log axis, beside each target's shares by
category) and per population on Loihi 2. A plain simulation is one "inference": the energies are
those of the run.
"""

import argparse

import ranvier as rv
from ranvier.units import second

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
parser.add_argument("--n", type=int, default=4000, help="number of neurons (4:1 excitatory:inhibitory)")
parser.add_argument("--duration", type=float, default=0.5, help="biological time (s) the estimate covers")
parser.add_argument("--output", default="hardware_cost.png",
                    help="where to save the per-target plot (the Loihi 2 one goes beside it)")
args = parser.parse_args()

net = rv.networks.cuba(n=args.n, seed=1)
net.run(args.duration * second)

reports = rv.hardware.compare(net, path=args.output)
for report in reports:
    print(f"{report.target.name:>11}: {report.energy * 1e3:9.4g} mJ, {report.power * 1e3:9.4g} mW, "
          f"{report.step_time * 1e6:9.4g} us per step, {rv.hardware.realtime_text(report.realtime_factor)}")
loihi2 = next(r for r in reports if r.target.name == "loihi2")
print(loihi2.table())
by_population = args.output.replace(".png", "_loihi2.png")
loihi2.plot(by_population)
print(f"saved {args.output} and {by_population}")
