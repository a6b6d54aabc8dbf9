"""Real digits as events -> a spiking network -> a linear readout; accuracy and a raster of one sample.

The scikit-learn digits become N-MNIST-like event streams (three saccades, ON/OFF events on a
12 x 12 sensor); each sample drives a random layer of LIF neurons, whose spike counts feed a
logistic-regression readout trained on the train split and scored on the test split.

    python examples/digits_events.py [--train 400] [--test 150] [--hidden 300] [--output digits_events.png]
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression

import ranvier as rv
from ranvier import datasets
from ranvier.units import ms, mV

plt.switch_backend("Agg")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--train", type=int, default=400, help="training samples")
parser.add_argument("--test", type=int, default=150, help="test samples")
parser.add_argument("--hidden", type=int, default=300, help="spiking neurons in the hidden layer (default 300)")
parser.add_argument("--backend", default="numba", help="simulation backend: numba, numpy or cuda (default numba)")
parser.add_argument("--output", default="digits_events.png",
                    help="where to save the figure (default digits_events.png)")
args = parser.parse_args()

train = datasets.digits_events(train=True)
test = datasets.digits_events(train=False)
duration = 0.32  # three saccades of 100 ms and the 1 ms start, with room for the last spikes

net = rv.Network(dt=1 * ms, seed=7)
inputs = net.population(datasets.from_tonic(train[0], train.sensor_size), name="input")
lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                     tau_syn={"exc": 5 * ms}, i_bias=0.0)
hidden = net.population(lif, n=args.hidden, name="hidden", init={"v": -65 * mV})
net.connect(inputs, hidden, rv.connect.Bernoulli(p=0.1), weight=rv.init.Uniform(0, 10 * mV), delay=1 * ms)

fit = datasets.run_samples(net, train, duration, "hidden", indices=range(min(args.train, len(train))),
                           backend=args.backend)
score = datasets.run_samples(net, test, duration, "hidden", indices=range(min(args.test, len(test))),
                             backend=args.backend)
readout = LogisticRegression(max_iter=2000).fit(np.log1p(fit.features), fit.labels)
accuracy = readout.score(np.log1p(score.features), score.labels)
print(f"{len(fit)} train / {len(score)} test samples, {fit.features.sum(axis=1).mean():.0f} hidden spikes per sample")
print(f"test accuracy {accuracy:.3f} (chance 0.1)")

events, label = test[0]
# the raster replays test sample 0 through the same network
datasets.replace_source(inputs, datasets.from_tonic(events, test.sensor_size, start=net.t + 1 * ms))
spikes = net.record(hidden, "spikes")
start = net.t
net.run(duration, backend=args.backend)
figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
top.scatter(events["t"] * 1e-3, (events["p"] * 12 + events["y"]) * 12 + events["x"], s=1,
            c=np.where(events["p"] == 1, "tab:red", "tab:blue"))
top.set_ylabel("input neuron")
top.set_title(f"digit {label}: ON (red) / OFF (blue) events")
bottom.scatter((spikes.times - start) * 1e3, spikes.ids, s=1, c="k")
bottom.set_ylabel("hidden neuron")
bottom.set_xlabel("time (ms)")
figure.tight_layout()
figure.savefig(args.output, dpi=120)
print(f"saved {args.output}")
