"""Kuramoto's transition to synchrony: the order parameter against the coupling strength.

``networks.kuramoto`` couples ``n`` phase oscillators all-to-all with Lorentzian natural frequencies of
half-width ``spread``; Kuramoto's mean-field theory gives incoherence (r = 0) below K_c = 2 * spread
and r = sqrt(1 - K_c / K) above it. The example sweeps K, runs each network, and plots the measured
steady-state order parameter over the theory, with one run's r(t). A third panel runs the same
all-to-all coupling on AKOrN units (Miyato et al. 2025): unit vectors on a 4-sphere whose order
parameter |mean x_i| rises the same way.

    python examples/kuramoto.py [--n 2000] [--duration 60] [--output kuramoto.png]
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np

import ranvier as rv
from ranvier.units import ms

plt.switch_backend("Agg")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--n", type=int, default=2000, help="oscillators")
parser.add_argument("--duration", type=float, default=60.0, help="simulated seconds per coupling")
parser.add_argument("--spread", type=float, default=0.5, help="Lorentzian half-width gamma (rad/s)")
parser.add_argument("--output", default="kuramoto.png", help="where to save the figure (default kuramoto.png)")
args = parser.parse_args()

critical = 2 * args.spread
couplings = np.linspace(0.25, 4.0, 8) * critical
measured, traces = [], {}
for coupling in couplings:
    net = rv.networks.kuramoto(n=args.n, coupling=coupling, spread=args.spread, seed=1, dt=10 * ms)
    order = net.record("osc", "order", every=0.1)
    net.run(args.duration)
    values = order.values[:, 0]
    measured.append(values[len(values) // 2:].mean())
    traces[coupling] = (order.t, values)
    theory = np.sqrt(max(0.0, 1 - critical / coupling))
    print(f"K = {coupling:5.2f}: r = {measured[-1]:.3f} (mean-field theory {theory:.3f})")

akorn_traces = {}
for coupling in (couplings[1], couplings[-1]):
    net = rv.Network(dt=10 * ms, seed=1)
    units = net.population(rv.neurons.AKOrN(dim=4, omega=rv.init.Cauchy(0.0, args.spread)), n=args.n, name="units")
    net.connect(units, units, rv.connect.AllToAll(), weight=coupling / args.n, receptor="coupling")
    order = net.record(units, "order", every=0.1)
    net.run(args.duration)
    akorn_traces[coupling] = (order.t, order.values[:, 0])
    print(f"AKOrN, K = {coupling:5.2f}: final |mean x| = {order.values[-1, 0]:.3f}")

figure, (left, right, akorn) = plt.subplots(1, 3, figsize=(14, 4))
fine = np.linspace(couplings[0], couplings[-1], 200)
left.plot(fine, np.sqrt(np.clip(1 - critical / fine, 0, None)), "k-", label="mean-field theory")
left.plot(couplings, measured, "o", label=f"ranvier, n = {args.n}")
left.set(xlabel="coupling K (rad/s)", ylabel="steady-state order parameter r", title="transition to synchrony")
left.legend()
for coupling in (couplings[1], couplings[-1]):
    right.plot(*traces[coupling], label=f"K = {coupling:.2f}")
right.set(xlabel="time (s)", ylabel="r(t)", title="order parameter over time")
right.legend()
for coupling, trace in akorn_traces.items():
    akorn.plot(*trace, label=f"K = {coupling:.2f}")
akorn.set(xlabel="time (s)", ylabel="|mean x|", title="AKOrN units on the 4-sphere")
akorn.legend()
figure.tight_layout()
figure.savefig(args.output, dpi=100)
print(f"saved {args.output}")
