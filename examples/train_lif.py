"""Train a small LIF classifier on scikit-learn's digits with surrogate gradients, then run it in the engine.

The 8x8 images are latency-coded into spikes (brighter pixels spike earlier), a 64-H-10 LIF
network is declared with the ranvier API, trained in torch (BPTT or SLTT), its weights written
back, and the same test set is run through the event engine. Both accuracies are printed.

    python examples/train_lif.py [--hidden 64] [--epochs 8] [--method bptt|sltt] [--train 1200]
"""

import argparse

import matplotlib
import numpy as np
import torch
from sklearn.datasets import load_digits

import ranvier as rv
from ranvier.train import SpikingModule, latency_encode, simulate
from ranvier.units import ms, mV

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--hidden", type=int, default=64, help="hidden LIF neurons (default 64)")
parser.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
parser.add_argument("--steps", type=int, default=20, help="time steps per sample (default 20)")
parser.add_argument("--train", type=int, default=1200, help="training samples (default 1200)")
parser.add_argument("--method", choices=["bptt", "sltt"], default="bptt",
                    help="surrogate-gradient method: bptt or sltt (default bptt)")
parser.add_argument("--output", default="train_lif.png", help="where to save the figure (default train_lif.png)")
args = parser.parse_args()
torch.manual_seed(0)

digits = load_digits()
x = torch.from_numpy(latency_encode(digits.data / 16.0, args.steps))
y = torch.from_numpy(digits.target)
train, test = slice(0, args.train), slice(args.train, len(y))

net = rv.Network(dt=1 * ms, seed=0)
pixels = net.population(rv.neurons.SpikeSource([], [], n=64), name="input")
hidden = net.population(rv.neurons.LIF(tau_m=20 * ms, v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=0.0,
                                       tau_syn={"in": 5 * ms}), n=args.hidden, name="hidden")
# the readout never reaches its threshold: its membrane potential is the class score
readout = net.population(rv.neurons.LIF(tau_m=20 * ms, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0,
                                        tau_syn={"in": 5 * ms}), n=10, name="out")
net.connect(pixels, hidden, rv.connect.AllToAll(), weight=rv.init.Normal(1 * mV, 3 * mV))
net.connect(hidden, readout, rv.connect.AllToAll(), weight=rv.init.Normal(0.0, 3 * mV))

module = SpikingModule(net, "input")
optimiser = torch.optim.Adam(module.parameters(), 2e-3)
losses = []
for epoch in range(args.epochs):
    order = torch.randperm(args.train)
    for start in range(0, args.train, 50):
        batch = order[start:start + 50]
        optimiser.zero_grad()
        if args.method == "bptt":
            loss, _ = module.loss(x[:, batch], y[batch], "out")
            loss.backward()
            loss = float(loss.detach())
        else:
            loss, _ = module.sltt_backward(x[:, batch], y[batch], "out")
        optimiser.step()
        losses.append(loss)
    print(f"epoch {epoch + 1}: loss {np.mean(losses[-(args.train // 50):]):.3f}")

with torch.no_grad():
    torch_prediction = module(x[:, test]).v["out"].mean(0).argmax(1).numpy()
module.write_back()
engine = simulate(net, x[:, test].numpy(), "input", record_v=["out"])
engine_prediction = engine["out.v"].mean(0).argmax(1)
labels = y[test].numpy()
print(f"test accuracy: torch {np.mean(torch_prediction == labels) * 100:.1f}%, "
      f"event engine {np.mean(engine_prediction == labels) * 100:.1f}%, "
      f"agreement {np.mean(torch_prediction == engine_prediction) * 100:.1f}%")

figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
left.plot(losses)
left.set(xlabel="training step", ylabel="loss", title=f"{args.method.upper()} training")
steps, ids = np.nonzero(engine["hidden"][:, 0])
right.plot(steps, ids, "|k")
right.set(xlabel="step (ms)", ylabel="hidden neuron", title=f"engine, test digit {labels[0]}")
figure.tight_layout()
figure.savefig(args.output, dpi=100)
print(f"saved {args.output}")
