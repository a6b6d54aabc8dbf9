"""A hybrid ANN-SNN on real digits: a low-rate ANN sets the SNN's membranes, the SNN follows the events.

The scikit-learn digits become event streams (three saccades of 100 ms). A linear ANN, trained in
torch on the event counts of one saccade, runs once every 100 ms and sets the membrane potential
of ten spiking output neurons (one per class); between its updates the output neurons integrate
the events themselves, through the same weights, at 1 ms resolution. Each output neuron's spikes
are the network's running vote for its class. The example prints the accuracy of the SNN alone
(membranes never set: the events of one saccade rarely bring a membrane to threshold, so it mostly
stays silent) and of the hybrid, and plots one sample's membranes.

    python examples/hybrid_ann_snn.py [--train 600] [--test 200] [--epochs 200] [--output hybrid.png]
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np
import torch

import ranvier as rv
from ranvier import datasets
from ranvier.units import ms

plt.switch_backend("Agg")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--train", type=int, default=600, help="training samples for the ANN")
parser.add_argument("--test", type=int, default=200, help="test samples")
parser.add_argument("--epochs", type=int, default=200, help="training epochs of the ANN (default 200)")
parser.add_argument("--backend", default="numba", help="simulation backend: numba, numpy or cuda (default numba)")
parser.add_argument("--output", default="hybrid.png", help="where to save the figure (default hybrid.png)")
args = parser.parse_args()

train, test = datasets.digits_events(train=True), datasets.digits_events(train=False)
n_inputs = int(np.prod(train.sensor_size))
saccade, duration = 100 * ms, 0.3


def saccade_counts(dataset, indices):
    """Event counts per input neuron in each saccade of each sample, and its label (the ANN's data)."""
    rows, labels = [], []
    for index in indices:
        events, label = dataset[index]
        neuron = (events["p"] * train.sensor_size[1] + events["y"]) * train.sensor_size[0] + events["x"]
        which = events["t"] // round(saccade / 1e-6)
        for window in range(3):
            rows.append(np.bincount(neuron[which == window], minlength=n_inputs))
            labels.append(label)
    return torch.as_tensor(np.array(rows), dtype=torch.float32), torch.as_tensor(labels)


torch.manual_seed(0)
train_indices = np.arange(min(args.train, len(train)))
counts, labels = saccade_counts(train, train_indices)
ann = torch.nn.Linear(n_inputs, 10)
optimiser = torch.optim.Adam(ann.parameters(), lr=0.01)
for _ in range(args.epochs):
    optimiser.zero_grad()
    loss = torch.nn.functional.cross_entropy(ann(counts), labels)
    loss.backward()
    optimiser.step()
print(f"ANN trained on {len(train_indices)} samples, loss {loss.item():.3f}")

# the ANN's logits, scaled so the winning one is about the threshold, initialise v; its weights carry the
# events in between
with torch.no_grad():
    scale = 1.0 / float(ann(counts).max(dim=1).values.mean())
    ann.weight.mul_(scale)
    ann.bias.mul_(scale)
weights = ann.weight.detach().numpy().copy()

test_indices = range(min(args.test, len(test)))
accuracy = {}
for name, ann_dt in (("SNN alone", 1000.0), ("hybrid ANN-SNN", saccade)):  # 1000 s: the ANN never runs
    source = datasets.from_tonic(test[0], test.sensor_size)
    net = rv.networks.hybrid(ann, source, ann_dt=ann_dt, dt=1 * ms, input_weights=weights,
                             tau_m=50 * ms, seed=1)
    results = datasets.run_samples(net, test, duration, readout="snn", indices=test_indices, backend=args.backend,
                                   progress=False)
    predicted = results.features.argmax(axis=1)
    accuracy[name] = float(np.mean(predicted == results.labels))
    print(f"{name:>15}: test accuracy {accuracy[name]:.3f} on {len(results.labels)} samples")

source = datasets.from_tonic(test[0], test.sensor_size)
net = rv.networks.hybrid(ann, source, ann_dt=saccade, dt=1 * ms, input_weights=weights, tau_m=50 * ms, seed=1)
v = net.record("snn", "v")
net.run(duration, backend=args.backend)
figure, axis = plt.subplots(figsize=(8, 4))
axis.plot(v.t, v.values)
axis.axhline(1.0, color="k", linestyle=":", label="threshold")
for update in np.arange(saccade, duration, saccade):
    axis.axvline(update, color="grey", linewidth=0.5)
axis.set(xlabel="time (s)", ylabel="v (threshold units)",
         title=f"hybrid ANN-SNN, digit {test[0][1]}: ANN sets v every 100 ms (grey)")
figure.tight_layout()
figure.savefig(args.output, dpi=100)
print(f"saved {args.output}")
