"""One run, three rates: a Kuramoto pacemaker drives LIF neurons, a CfC population reads them out.

* ``pacemaker``: 50 Kuramoto oscillators (natural frequencies around 8 Hz, coupled strongly enough to
  synchronise) updating every 1 ms; each emits a pulse when its phase passes 2 pi.
* ``cells``: 400 LIF neurons at dt = 0.1 ms, driven by the pulses and by Poisson background.
* ``readout``: a CfC (or, with ``--readout ltc``, an LTC) network of 16 units updating every 10 ms on
  the cells' spike counts of its window.

The plot shows the pacemaker's order parameter, the cells' raster and the CfC units' outputs on one
time axis: three populations, three update rates, one event queue.

    python examples/mixed_rates.py [--duration 1.0] [--cells 400] [--readout cfc|ltc] [--output mixed_rates.png]
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np
import torch
from ncps.torch import LTC, CfC

import ranvier as rv
from ranvier.units import Hz, ms, mV

plt.switch_backend("Agg")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--duration", type=float, default=1.0, help="simulated seconds")
parser.add_argument("--cells", type=int, default=400, help="LIF neurons")
parser.add_argument("--readout", choices=["cfc", "ltc"], default="cfc", help="the liquid network reading out")
parser.add_argument("--backend", default="numba", help="simulation backend: numba, numpy or cuda (default numba)")
parser.add_argument("--output", default="mixed_rates.png", help="where to save the figure (default mixed_rates.png)")
args = parser.parse_args()

net = rv.Network(dt=0.1 * ms, seed=3)
pacemaker = net.population(rv.neurons.Kuramoto(omega=rv.init.Normal(2 * np.pi * 8, 2.0), pulses=True), n=50,
                           name="pacemaker", dt=1 * ms)
net.connect(pacemaker, pacemaker, rv.connect.AllToAll(), weight=20.0 / 50, receptor="coupling")

lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                     tau_syn={"exc": 5 * ms})
cells = net.population(lif, n=args.cells, name="cells", init={"v": rv.init.Uniform(-65 * mV, -55 * mV)})
background = net.population(rv.neurons.PoissonSource(rate=800 * Hz), n=args.cells, name="background")
net.connect(background, cells, rv.connect.OneToOne(), weight=1.0 * mV, delay=1 * ms)
net.connect(pacemaker, cells, rv.connect.Bernoulli(0.2), weight=8.0 * mV, delay=2 * ms)

torch.manual_seed(0)
if args.readout == "cfc":
    readout_model = rv.neurons.CfC.from_ncps(CfC(args.cells, 16))
else:
    readout_model = rv.neurons.LTC.from_ncps(LTC(args.cells, 16))
readout = net.population(readout_model, name="readout", dt=10 * ms)
net.connect(cells, readout, rv.connect.OneToOne(), weight=1.0, receptor="input")

order = net.record(pacemaker, "order")
spikes = net.record(cells, "spikes")
outputs = net.record(readout, "output")
net.run(args.duration, backend=args.backend, progress=True)

rates = {name: net.stats.rate(name, net[name].n) for name in ("pacemaker", "cells")}
print(f"pacemaker: final order parameter {order.values[-1, 0]:.2f}, {rates['pacemaker']:.1f} pulses/s per oscillator")
print(f"cells: {rates['cells']:.1f} Hz; readout: {len(outputs.t)} updates of {readout.n} "
      f"{args.readout.upper()} units")
print(f"neuron updates: {net.stats.neuron_updates_by_population}")

figure, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
axes[0].plot(order.t, order.values[:, 0])
axes[0].set(ylabel="order r", title="Kuramoto pacemaker (dt 1 ms)")
axes[1].plot(spikes.times, spikes.ids, "|k", markersize=2)
axes[1].set(ylabel="LIF neuron", title="LIF cells (dt 0.1 ms)")
axes[2].step(outputs.t, outputs.values, where="post", linewidth=0.8)
name = args.readout.upper()
axes[2].set(xlabel="time (s)", ylabel=f"{name} output", title=f"{name} readout (dt 10 ms)")
figure.tight_layout()
figure.savefig(args.output, dpi=100)
print(f"saved {args.output}")
